//! `xos nodes`, `xos services` and `xos node members`.

use xtreem_client::DirectoryClient;
use xtreem_directory::{NodeRecord, format_bytes};
use xtreem_proto::directory as pb;

use super::Context;
use crate::cli::NodesArgs;
use crate::output::{json, table};

impl Context {
    /// A directory client: with the user's VO credential if there is one,
    /// else with the site administrator certificate.
    fn directory_client(&self, vo: Option<&str>) -> anyhow::Result<DirectoryClient> {
        let (profile, endpoint, as_admin, token) = self.user_or_admin(vo)?;
        Ok(DirectoryClient::connect(
            &profile, &endpoint, as_admin, token,
        )?)
    }
}

#[derive(serde::Serialize)]
struct NodeJson<'a> {
    name: &'a str,
    site: &'a str,
    state: &'static str,
    descriptor: &'a xtreem_directory::StaticDescriptor,
    dynamic: Option<&'a xtreem_directory::DynamicSample>,
}

fn state(record: &NodeRecord) -> &'static str {
    if record.alive { "alive" } else { "dead" }
}

fn row(record: &NodeRecord) -> Vec<String> {
    let d = &record.descriptor;
    let (free_cores, free_mem, load, jobs) = match &record.dynamic {
        Some(s) => (
            format!("{:.1}", s.free_cores),
            format_bytes(s.free_memory_bytes),
            format!("{:.2}", s.load),
            s.running_jobs.to_string(),
        ),
        None => ("-".into(), "-".into(), "-".into(), "-".into()),
    };
    let mut tags: Vec<String> = d.tags.iter().cloned().collect();
    tags.extend(d.labels.iter().map(|(k, v)| format!("{k}={v}")));
    vec![
        d.node.clone(),
        d.site.clone(),
        state(record).into(),
        d.arch.clone(),
        d.cores.to_string(),
        free_cores,
        format_bytes(d.memory_bytes),
        free_mem,
        load,
        jobs,
        d.vos.iter().cloned().collect::<Vec<_>>().join(","),
        if tags.is_empty() {
            "-".into()
        } else {
            tags.join(",")
        },
    ]
}

/// Refuses a bad query before any network traffic, pointing at the token.
fn check_query(query: &str, sort: &[String]) {
    if let Err(e) = xtreem_directory::Query::parse(query) {
        eprintln!("xos: bad query {}\n{}", e, e.render(query));
        std::process::exit(i32::from(crate::exit::USAGE));
    }
    for key in sort {
        if let Err(e) = xtreem_directory::SortKey::parse(key) {
            eprintln!("xos: bad --sort key {key:?}: {e}");
            std::process::exit(i32::from(crate::exit::USAGE));
        }
    }
}

pub async fn nodes(ctx: &Context, args: NodesArgs) -> anyhow::Result<()> {
    check_query(args.query.as_deref().unwrap_or(""), &args.sort);
    let mut client = ctx.directory_client(args.vo.as_deref())?;
    let answer = client
        .query(pb::QueryRequest {
            query: args.query.unwrap_or_default(),
            sort: args.sort,
            limit: args.limit.unwrap_or(0),
            scope: if args.local {
                pb::Scope::Site as i32
            } else {
                pb::Scope::Grid as i32
            },
            on_behalf_of: String::new(),
        })
        .await?;
    if ctx.json {
        let nodes: Vec<NodeJson> = answer
            .nodes
            .iter()
            .map(|r| NodeJson {
                name: &r.descriptor.node,
                site: &r.descriptor.site,
                state: state(r),
                descriptor: &r.descriptor,
                dynamic: r.dynamic.as_ref(),
            })
            .collect();
        return json(&serde_json::json!({
            "nodes": nodes,
            "sites": answer.sites,
            "notes": answer.notes,
        }));
    }
    let rows: Vec<Vec<String>> = answer.nodes.iter().map(row).collect();
    table(
        &[
            "NAME", "SITE", "STATE", "ARCH", "CORES", "FREE", "MEM", "FREE_MEM", "LOAD", "JOBS",
            "VOS", "TAGS",
        ],
        &rows,
    );
    for note in &answer.notes {
        eprintln!("note: {note}");
    }
    if answer.nodes.is_empty() {
        eprintln!(
            "no node matches (sites searched: {})",
            if answer.sites.is_empty() {
                "none".into()
            } else {
                answer.sites.join(", ")
            }
        );
    }
    Ok(())
}

pub async fn services(ctx: &Context, kind: Option<String>) -> anyhow::Result<()> {
    let mut client = ctx.directory_client(None)?;
    let response = client.services(kind.as_deref().unwrap_or("")).await?;
    if ctx.json {
        let list: Vec<serde_json::Value> = response
            .services
            .iter()
            .map(|s| {
                serde_json::json!({"kind": s.kind, "node": s.node, "address": s.address,
                    "healthy": s.healthy, "node_alive": s.node_alive})
            })
            .collect();
        return json(&list);
    }
    let rows: Vec<Vec<String>> = response
        .services
        .iter()
        .map(|s| {
            vec![
                s.kind.clone(),
                s.node.clone(),
                s.address.clone(),
                match (s.node_alive, s.healthy) {
                    (true, true) => "healthy".into(),
                    (true, false) => "unhealthy".into(),
                    (false, _) => "node dead".into(),
                },
            ]
        })
        .collect();
    table(&["KIND", "NODE", "ADDRESS", "HEALTH"], &rows);
    Ok(())
}

pub async fn members(ctx: &Context) -> anyhow::Result<()> {
    let mut client = ctx.directory_client(None)?;
    let response = client.members().await?;
    if ctx.json {
        let members: Vec<serde_json::Value> = response
            .members
            .iter()
            .map(|m| {
                serde_json::json!({"node": m.node, "endpoint": m.endpoint, "incarnation": m.incarnation,
                    "alive": m.alive, "descriptor_version": m.descriptor_version})
            })
            .collect();
        return json(&serde_json::json!({
            "node": response.node,
            "members": members,
            "counters": response.counters,
        }));
    }
    let rows: Vec<Vec<String>> = response
        .members
        .iter()
        .map(|m| {
            vec![
                m.node.clone(),
                m.endpoint.clone(),
                m.incarnation.to_string(),
                if m.alive {
                    "alive".into()
                } else {
                    "dead".into()
                },
            ]
        })
        .collect();
    println!("gossip view of {}", response.node);
    table(&["NODE", "GOSSIP", "INCARNATION", "STATE"], &rows);
    let mut counters: Vec<_> = response.counters.iter().collect();
    counters.sort();
    for (name, value) in counters {
        println!("{name:<26} {value}");
    }
    Ok(())
}
