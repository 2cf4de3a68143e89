//! `xos node ...`

use serde::Serialize;
use xtreem_client::role_name;
use xtreem_util::time::unix_now;

use super::Context;
use crate::cli::NodeCommand;
use crate::output::{ago, json, table, until};

#[derive(Serialize)]
struct NodeRow {
    name: String,
    roles: Vec<&'static str>,
    state: String,
    endpoint: String,
    enrolled_unix: u64,
    last_seen_unix: u64,
    certificate_expires_unix: u64,
}

pub async fn run(ctx: &Context, command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::Accounts => return super::vo::accounts(ctx).await,
        NodeCommand::Members => return super::directory::members(ctx).await,
        _ => {}
    }
    let mut client = ctx.client()?;
    match command {
        NodeCommand::JoinToken { ttl } => {
            let token = client.create_join_token(ttl.as_secs()).await?;
            if ctx.json {
                return json(
                    &serde_json::json!({ "token": token.token, "expires_unix": token.expires_unix }),
                );
            }
            println!("{}", token.token);
            eprintln!(
                "valid once, expires {}; on the new node set it as `token` in [join] or XOSD_JOIN_TOKEN",
                until(token.expires_unix, unix_now())
            );
        }
        NodeCommand::List => {
            let list = client.list_nodes().await?;
            let rows: Vec<NodeRow> = list
                .nodes
                .iter()
                .map(|n| NodeRow {
                    name: n.name.clone(),
                    roles: n.roles.iter().map(|r| role_name(*r)).collect(),
                    state: n.state.clone(),
                    endpoint: n.rpc_endpoint.clone(),
                    enrolled_unix: n.enrolled_unix,
                    last_seen_unix: n.last_seen_unix,
                    certificate_expires_unix: n.certificate_expires_unix,
                })
                .collect();
            if ctx.json {
                return json(
                    &serde_json::json!({ "site": list.site, "answered_by": list.answered_by, "nodes": rows }),
                );
            }
            let now = unix_now();
            print_nodes(&rows, now);
            println!(
                "site {}, {} nodes, answered by {}",
                list.site,
                rows.len(),
                list.answered_by
            );
        }
        NodeCommand::Remove { node } => {
            let r = client.remove_node(&node).await?;
            if ctx.json {
                return json(
                    &serde_json::json!({ "node": node, "revoked_certificates": r.revoked_certificates }),
                );
            }
            println!(
                "node {node} removed; {} certificate(s) revoked, refused by every node from its next heartbeat",
                r.revoked_certificates
            );
        }
        NodeCommand::Ping { node, count } => {
            let r = client.probe_node(&node, count, 64).await?;
            let mut ns = r.round_trip_ns.clone();
            ns.sort_unstable();
            let pct = |p: f64| {
                ns.get(((ns.len() as f64 - 1.0) * p).round() as usize)
                    .copied()
                    .unwrap_or(0) as f64
                    / 1e6
            };
            if ctx.json {
                return json(
                    &serde_json::json!({ "node": node, "count": ns.len(), "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": pct(1.0) }),
                );
            }
            println!(
                "{} pings from {} to {node}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                ns.len(),
                client.endpoint(),
                pct(0.5),
                pct(0.99),
                pct(1.0)
            );
        }
        NodeCommand::Status => {
            let s = client.status().await?;
            let roles: Vec<&str> = s.roles.iter().map(|r| role_name(*r)).collect();
            if ctx.json {
                return json(&serde_json::json!({
                    "node": s.node, "site": s.site, "roles": roles, "version": s.version,
                    "certificate_expires_unix": s.certificate_expires_unix, "site_authority": s.site_authority,
                }));
            }
            println!("node      {}", s.node);
            println!(
                "site      {}{}",
                s.site,
                if s.site_authority {
                    " (holds the site CA)"
                } else {
                    ""
                }
            );
            println!("roles     {}", roles.join(","));
            println!("version   {}", s.version);
            println!(
                "cert      expires {}",
                until(s.certificate_expires_unix, unix_now())
            );
        }
        NodeCommand::Accounts | NodeCommand::Members => {}
    }
    Ok(())
}

fn print_nodes(rows: &[NodeRow], now: u64) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.roles.join(","),
                n.state.clone(),
                n.endpoint.clone(),
                ago(n.last_seen_unix, now),
                until(n.certificate_expires_unix, now),
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "ROLES",
            "STATE",
            "ENDPOINT",
            "LAST SEEN",
            "CERTIFICATE",
        ],
        &cells,
    );
}
