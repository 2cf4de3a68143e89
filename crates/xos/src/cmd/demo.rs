//! `xos demo`: a local grid on loopback that shows what Xtreem does. It
//! runs the same harness the integration tests use, so what it shows is
//! what the tests check.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use xtreem_client::{Client, Profile, VoClient};
use xtreem_proto::vo as pb;
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
    let total = 9;
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

    step(
        5,
        total,
        "a Virtual Organization: xos user add alice bob; xos vo create demo --admin alice; xos site serve demo",
    );
    let users = vo_demo(&grid).await?;

    step(
        6,
        total,
        "single sign-on: `xos login` once, then `xos whoami` on any node (verified offline there)",
    );
    for (name, dir) in &users {
        let profile = Profile::load(dir)?;
        let token = profile.token(None).context("saved credential")?;
        let target = if name == "alice" { 0 } else { 1 };
        let endpoint = grid.node(target).rpc.clone();
        let w = whoami_when_trusted(&profile, &endpoint, &token).await?;
        println!(
            "  $ XOS_CONFIG_DIR={} xos whoami --endpoint {endpoint}",
            dir.display()
        );
        println!(
            "    user {}  vo {}  groups {}  roles {}",
            w.subject,
            w.vo,
            w.groups.join(","),
            w.roles.join(",")
        );
        println!("    scopes {}", w.scope);
        println!(
            "    expires {}",
            crate::output::until(w.expires_unix, unix_now())
        );
        if w.uid >= 0 {
            println!(
                "    account uid {} gid {} ({}) on {}",
                w.uid, w.gid, w.local_user, w.node
            );
        }
    }

    step(
        7,
        total,
        "the directory: every node gossips its descriptor; alice finds her VO's nodes with a query",
    );
    directory_demo(&grid, &users).await?;

    step(
        8,
        total,
        "jobs: alice submits a 3-process job and an array; each job places itself (no central scheduler)",
    );
    jobs_demo(&mut grid, &users).await?;

    if args.keep {
        let admin_dir = grid.admin_dir();
        let rpc = grid.node(core).rpc.clone();
        let (dir, pids) = grid.keep();
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        step(9, total, "the grid keeps running");
        println!("  export XOS_CONFIG_DIR={}", admin_dir.display());
        println!("  xos node list                       # asks {rpc}");
        println!("  xos node join-token --ttl 10m");
        println!(
            "  XOS_CONFIG_DIR={}/alice xos whoami   # alice (VO admin), bob in .../bob; passwords in the demo source",
            dir.display()
        );
        println!(
            "  stop it: kill {}   (files stay in {})",
            pids.join(" "),
            dir.display()
        );
        return Ok(());
    }

    step(9, total, "stop every node with SIGTERM");
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

/// Demo passwords: a demo grid on loopback, not a secret.
const DEMO_PASSWORDS: [(&str, &str); 2] = [
    ("alice", "alice-demo-password"),
    ("bob", "bob-demo-password"),
];

/// Creates users alice and bob, VO demo with alice as admin, serves it;
/// bob asks to join and alice approves; both log in. Returns each user's
/// config dir.
async fn vo_demo(grid: &Grid) -> anyhow::Result<Vec<(String, std::path::PathBuf)>> {
    let admin_profile = Profile::load(&grid.admin_dir())?;
    let endpoint = admin_profile.endpoint.clone();
    let mut admin = VoClient::connect(&admin_profile, &endpoint, true, None)?;
    for (user, password) in DEMO_PASSWORDS {
        admin
            .add_user(pb::AddUserRequest {
                name: user.into(),
                password: password.into(),
            })
            .await?;
    }
    let vo = admin
        .create_vo(pb::CreateVoRequest {
            name: "demo".into(),
            first_admin: "alice".into(),
        })
        .await?;
    admin
        .serve_vo(pb::ServeVoRequest {
            vo: "demo".into(),
            ..Default::default()
        })
        .await?;
    println!(
        "  VO demo created, issuer {}, signing key {}",
        vo.issuer,
        vo.keys.first().map(|k| k.kid.as_str()).unwrap_or("-")
    );

    let mut dirs = Vec::new();
    for (user, _) in DEMO_PASSWORDS {
        let dir = grid.root().join(user);
        Profile::create(&dir, &admin_profile.site, &endpoint, &admin_profile.ca_pem)?;
        dirs.push((user.to_owned(), dir));
    }
    let login = |user: &'static str, password: &'static str, dir: std::path::PathBuf| {
        let endpoint = endpoint.clone();
        async move {
            let mut profile = Profile::load(&dir)?;
            let r = VoClient::connect(&profile, &endpoint, false, None)?
                .login(pb::LoginRequest {
                    user: user.into(),
                    password: password.into(),
                    vo: "demo".into(),
                    ttl_seconds: 12 * 3600,
                })
                .await?;
            profile.save_token(&r.vo, &r.token)?;
            println!(
                "  $ xos login --user {user} --vo demo   -> credential saved in {} (mode 0600)",
                dir.join("tokens/demo.jwt").display()
            );
            anyhow::Ok(profile)
        }
    };
    let (alice_pw, bob_pw) = (DEMO_PASSWORDS[0].1, DEMO_PASSWORDS[1].1);
    let alice = login("alice", alice_pw, dirs[0].1.clone()).await?;
    let bob_profile = Profile::load(&dirs[1].1)?;
    let member = VoClient::connect(&bob_profile, &endpoint, false, None)?
        .request_join(pb::RequestJoinRequest {
            vo: "demo".into(),
            user: "bob".into(),
            password: bob_pw.into(),
        })
        .await?;
    println!(
        "  $ xos vo join demo --user bob          -> {}",
        member.state
    );
    let member = VoClient::connect(&alice, &endpoint, false, alice.token(None))?
        .decide(pb::DecideRequest {
            vo: "demo".into(),
            user: "bob".into(),
            approve: true,
        })
        .await?;
    println!(
        "  $ xos vo approve demo bob   (as alice) -> {} {}",
        member.state,
        member.roles.join(" ")
    );
    login("bob", bob_pw, dirs[1].1.clone()).await?;
    Ok(dirs)
}

/// Whoami, retried while the node has not yet received the VO's key with
/// its heartbeat (at most a few seconds).
/// `xos nodes` as alice: all her VO's nodes, then a query with sort and limit.
async fn directory_demo(grid: &Grid, users: &[(String, std::path::PathBuf)]) -> anyhow::Result<()> {
    use xtreem_proto::directory as dpb;
    let Some((_, dir)) = users.iter().find(|(n, _)| n == "alice") else {
        return Ok(());
    };
    let profile = Profile::load(dir)?;
    let token = profile.token(None).context("saved credential")?;
    // Asked on node-2, which forwards to the core node (a directory replica).
    let asked = 1.min(grid.len() - 1);
    let endpoint = grid.node(asked).rpc.clone();
    let mut client =
        xtreem_client::DirectoryClient::connect(&profile, &endpoint, false, Some(token))?;
    let expected = (0..grid.len())
        .filter(|&i| grid.node(i).pid().is_some())
        .count();
    let deadline = Instant::now() + Duration::from_secs(15);
    // Descriptors and fresh samples arrive within a few seconds of a join.
    let all = loop {
        let answer = client
            .query(dpb::QueryRequest {
                query: "state==alive".into(),
                ..Default::default()
            })
            .await?;
        let fresh = answer.nodes.iter().filter(|r| r.dynamic.is_some()).count();
        if (answer.nodes.len() >= expected && fresh >= expected) || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "  $ XOS_CONFIG_DIR={} xos nodes --endpoint {endpoint}",
        dir.display()
    );
    for record in &all.nodes {
        let d = &record.descriptor;
        let (free, load) = record
            .dynamic
            .map(|s| (format!("{:.1}", s.free_cores), format!("{:.2}", s.load)))
            .unwrap_or(("-".into(), "-".into()));
        println!(
            "    {:<8} {:<6} {:<6} {} cores (free {free})  {} ({} free)  load {load}  vos {}",
            d.node,
            d.site,
            if record.alive { "alive" } else { "dead" },
            d.cores,
            xtreem_directory::format_bytes(d.memory_bytes),
            record
                .dynamic
                .map(|s| xtreem_directory::format_bytes(s.free_memory_bytes))
                .unwrap_or_else(|| "-".into()),
            d.vos.iter().cloned().collect::<Vec<_>>().join(",")
        );
    }
    let text = format!(
        "cores>=1 && mem>=1GiB && arch=={} && vo:demo sort -free_mem limit 2",
        std::env::consts::ARCH
    );
    let best = client
        .query(dpb::QueryRequest {
            query: text.clone(),
            ..Default::default()
        })
        .await?;
    println!("  $ xos nodes '{text}'");
    let names: Vec<&str> = best
        .nodes
        .iter()
        .map(|r| r.descriptor.node.as_str())
        .collect();
    println!("    -> {}", names.join(", "));
    let bad = "cores>=4 && mem>==8GiB";
    if let Err(e) = xtreem_directory::Query::parse(bad) {
        println!("  $ xos nodes '{bad}'   (refused before it leaves the CLI)");
        for line in e.render(bad).lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

/// Alice submits a multi-process job and an array, lists them with `xps`,
/// waits, and prints what they wrote.
async fn jobs_demo(grid: &mut Grid, users: &[(String, std::path::PathBuf)]) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        println!("  (skipped: running jobs under mapped accounts in cgroups needs root)");
        return Ok(());
    }
    let Some((_, dir)) = users.iter().find(|(n, _)| n == "alice") else {
        return Ok(());
    };
    let profile = Profile::load(dir)?;
    let token = profile.token(None).context("saved credential")?;
    let endpoint = grid.node(0).rpc.clone();
    let mut client = xtreem_client::JobsClient::connect(&profile, &endpoint, false, Some(token))?;
    let running = (0..grid.len())
        .filter(|&i| grid.node_mut(i).is_running())
        .count();
    let units = running.clamp(1, 3);
    let spec = format!(
        "name = \"hello\"\nexecutable = \"/bin/sh\"\nargs = [\"-c\", \"echo rank $XOS_RANK of $XOS_SIZE on $XOS_NODE as uid $(id -u); sleep 1\"]\ncount = {units}\nper_node = 1\n[resources]\ncores = 1\nmemory = \"64MiB\"\nwalltime = \"1m\"\n"
    );
    println!("  $ cat hello.toml");
    for line in spec.lines() {
        println!("    {line}");
    }
    let job = client.submit(&spec, None, false).await?;
    let job = job.first().cloned().context("no job id")?;
    println!("  $ xsub hello.toml\n    {job}");
    let array_spec = "name = \"square\"\nexecutable = \"/bin/sh\"\nargs = [\"-c\", \"echo $XOS_ARRAY_INDEX squared is $(($XOS_ARRAY_INDEX * $XOS_ARRAY_INDEX))\"]\n";
    let array = client.submit(array_spec, Some("1-4"), false).await?;
    println!(
        "  $ xsub --array 1-4 square.toml\n    4 jobs: {} .. {}",
        array.first().map(String::as_str).unwrap_or("-"),
        array.last().map(String::as_str).unwrap_or("-")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let listed = client
        .list(xtreem_proto::jobs::ListRequest::default())
        .await?;
    println!("  $ xps");
    let rows: Vec<Vec<String>> = listed
        .jobs
        .iter()
        .map(|j| {
            let mut nodes: Vec<&str> = j
                .units
                .iter()
                .map(|u| u.node.as_str())
                .filter(|n| !n.is_empty())
                .collect();
            nodes.sort_unstable();
            nodes.dedup();
            vec![
                j.id.clone(),
                j.name.clone(),
                j.owner.clone(),
                j.state.clone(),
                if nodes.is_empty() {
                    "-".into()
                } else {
                    nodes.join(",")
                },
                if j.exit.is_empty() {
                    "-".into()
                } else {
                    j.exit.clone()
                },
            ]
        })
        .collect();
    for line in render(&["ID", "NAME", "USER", "STATE", "NODES", "EXIT"], &rows) {
        println!("    {line}");
    }
    let info = tokio::time::timeout(Duration::from_secs(60), client.wait(&job))
        .await
        .context("the demo job did not end within 60 s")??;
    println!(
        "  $ xwait {job}\n    {}: {} ({})",
        info.id, info.state, info.exit
    );
    for rank in 0..units {
        let mut out = Vec::new();
        client
            .logs(&format!("{job}.{rank}"), false, false, &mut out)
            .await?;
        println!(
            "  $ xos logs {job}.{rank}\n    {}",
            String::from_utf8_lossy(&out).trim()
        );
    }
    for id in &array {
        tokio::time::timeout(Duration::from_secs(60), client.wait(id))
            .await
            .context("a demo array job did not end within 60 s")??;
        let mut out = Vec::new();
        client.logs(id, false, false, &mut out).await?;
        println!(
            "  $ xos logs {id}\n    {}",
            String::from_utf8_lossy(&out).trim()
        );
    }
    let status = client.status(&job).await?;
    println!("  $ xos status {job}   (timeline)");
    for e in &status.events {
        println!("    {}", e.text);
    }
    Ok(())
}

async fn whoami_when_trusted(
    profile: &Profile,
    endpoint: &str,
    token: &str,
) -> anyhow::Result<pb::WhoamiResponse> {
    let mut attempts = 0;
    loop {
        let result = VoClient::connect(profile, endpoint, false, Some(token.to_owned()))?
            .whoami(pb::WhoamiRequest {})
            .await;
        match result {
            Ok(w) if w.uid >= 0 || attempts >= 100 => return Ok(w),
            Ok(_) => {}
            Err(e) if attempts >= 100 => return Err(e.into()),
            Err(_) => {}
        }
        attempts += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
