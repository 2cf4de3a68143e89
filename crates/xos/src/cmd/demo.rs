//! `xos demo`: a local grid on loopback that shows what Xtreem does. It
//! runs the same harness the integration tests use, so what it shows is
//! what the tests check.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use xtreem_client::Client;
use xtreem_testkit::{Grid, NodeSpec, xosd_next_to_current_exe};
use xtreem_util::time::unix_now;

use super::Context;
use crate::cli::DemoArgs;

fn step(n: u32, total: u32, text: &str) {
    println!("\n[{n}/{total}] {text}");
}

pub async fn run(_ctx: &Context, args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let xosd = xosd_next_to_current_exe()?;
    let mut grid = match &args.dir {
        Some(dir) => Grid::in_dir(&xosd, dir)?,
        None => Grid::new(&xosd)?,
    };
    grid.use_one_ip(Ipv4Addr::LOCALHOST);
    let total = 5;
    println!(
        "Xtreem demo: a grid of {} xosd processes on 127.0.0.1, files in {}",
        args.nodes,
        grid.root().display()
    );

    step(
        1,
        total,
        "start the first node, with roles core, resource and client",
    );
    let core = grid.add_node(NodeSpec::new(
        "node-1",
        &["core", "resource", "client"],
        grid.next_ip(),
    ))?;
    grid.start_core(core).await?;
    println!(
        "  xosd node-1 pid {} rpc {} (TLS 1.3) http {} (/healthz, /metrics)",
        grid.node(core).pid().unwrap_or(0),
        grid.node(core).rpc,
        grid.node(core).http
    );

    step(
        2,
        total,
        "xos site init demo   (creates the site CA on node-1; admin key stays here, mode 0600)",
    );
    let credentials = grid.init_site(core, "demo").await?;
    println!(
        "  site {} created; administrator credentials in {}",
        credentials.site,
        grid.admin_dir().display()
    );

    step(3, total, "enroll the other nodes with one-time join tokens");
    let mut first_token = None;
    for k in 2..=args.nodes {
        let name = format!("node-{k}");
        let i = grid.add_node(NodeSpec::new(
            &name,
            &["resource", "client"],
            grid.next_ip(),
        ))?;
        let token = grid.join_token(Duration::from_secs(600)).await?;
        println!(
            "  xos node join-token -> {}…",
            &token[..token.len().min(22)]
        );
        grid.start_member(i, &token).await?;
        println!(
            "  xosd {name} generated its key, enrolled, and serves mTLS at {}",
            grid.node(i).rpc
        );
        first_token.get_or_insert(token);
    }
    if let Some(used) = first_token {
        let i = grid.add_node(NodeSpec::new("intruder", &["resource"], grid.next_ip()))?;
        let core_rpc = grid.node(core).rpc.clone();
        grid.spawn_member(i, &core_rpc, &used)?;
        let code = grid.wait_exit(i, Duration::from_secs(20)).await?;
        let log = grid.node(i).log();
        let reason = log
            .lines()
            .rev()
            .find(|l| l.contains("refused"))
            .unwrap_or("")
            .trim();
        println!("  a node reusing node-2's token is turned away (exit {code}):\n    {reason}");
    }

    step(
        4,
        total,
        "xos node list, asked of every node (members ask node-1 over node mTLS)",
    );
    let members: Vec<usize> = (0..grid.len())
        .filter(|&i| grid.node(i).spec.name != "intruder")
        .collect();
    for &i in &members {
        let endpoint = grid.node(i).rpc.clone();
        let mut client = Client::connect(&endpoint, grid.credentials()?)?;
        let list = client
            .list_nodes()
            .await
            .with_context(|| format!("node list from {endpoint}"))?;
        println!("  $ xos node list --endpoint {endpoint}");
        let now = unix_now();
        let rows: Vec<Vec<String>> = list
            .nodes
            .iter()
            .map(|n| {
                vec![
                    n.name.clone(),
                    n.roles
                        .iter()
                        .map(|r| xtreem_client::role_name(*r))
                        .collect::<Vec<_>>()
                        .join(","),
                    n.state.clone(),
                    n.rpc_endpoint.clone(),
                    crate::output::until(n.certificate_expires_unix, now),
                ]
            })
            .collect();
        for line in render(
            &["NODE", "ROLES", "STATE", "ENDPOINT", "CERTIFICATE"],
            &rows,
        ) {
            println!("    {line}");
        }
        println!("    (answered by {})", list.answered_by);
    }

    if args.keep {
        let admin_dir = grid.admin_dir();
        let rpc = grid.node(core).rpc.clone();
        let (dir, pids) = grid.keep();
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        step(5, total, "the grid keeps running");
        println!("  export XOS_CONFIG_DIR={}", admin_dir.display());
        println!("  xos node list                       # asks {rpc}");
        println!("  xos node join-token --ttl 10m");
        println!(
            "  stop it: kill {}   (files stay in {})",
            pids.join(" "),
            dir.display()
        );
        return Ok(());
    }

    step(5, total, "stop every node with SIGTERM");
    for (name, code) in grid.stop_all().await {
        match code {
            Ok(c) => println!("  {name}: exited with code {c}"),
            Err(e) => println!("  {name}: {e}"),
        }
    }
    println!(
        "\ndemo finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn render(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    std::iter::once(header.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .chain(rows.iter().cloned())
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect()
}
