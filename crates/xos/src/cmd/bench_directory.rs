//! `xos bench directory`: the real gossip on a 5-process grid, the local
//! query and memory cost of the directory, and the deterministic simulation
//! of one site (1,000 nodes by default) and of 100 sites x 1,000 nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xtreem_client::{DirectoryClient, Profile};
use xtreem_directory::{Directory, DynamicSample, Query, StaticDescriptor};
use xtreem_testkit::{Grid, NodeSpec, xosd_next_to_current_exe};

/// One `name: value unit` line of a benchmark's output.
pub(super) fn line(name: &str, value: f64, unit: &str) {
    println!("{name}: {value:.3} {unit}");
}

fn rss_bytes() -> u64 {
    super::bench::rss_kib(std::process::id()).unwrap_or(0) * 1024
}

/// A varied but reproducible descriptor for node `i`.
fn descriptor(i: u32) -> StaticDescriptor {
    let mut d = StaticDescriptor::example(&format!("node-{i}"), "bench");
    d.cores = [2, 4, 8, 16, 32, 64][(i % 6) as usize];
    d.memory_bytes = (u64::from(d.cores) * 4) << 30;
    d.arch = if i.is_multiple_of(5) {
        "aarch64"
    } else {
        "x86_64"
    }
    .into();
    d.tags = if i.is_multiple_of(7) {
        BTreeSet::from(["gpu".to_string()])
    } else {
        BTreeSet::new()
    };
    d.labels = BTreeMap::from([("rack".to_string(), format!("r{}", i % 40))]);
    d.vos = BTreeSet::from([["cms", "atlas", "bio"][(i % 3) as usize].to_string()]);
    d.rpc_endpoint = format!("10.{}.{}.{}:7100", i >> 16 & 255, i >> 8 & 255, i & 255);
    d.version = 1;
    d
}

/// Local queries over `n` descriptors, and what each known node costs.
fn local(n: u32, rounds: u32) -> anyhow::Result<()> {
    let before = rss_bytes();
    let mut dir = Directory::new();
    let mut roster = xtreem_gossip::Roster::default();
    let mut members = Vec::new();
    for i in 0..n {
        let d = descriptor(i);
        let cores = d.cores;
        let name = d.node.clone();
        dir.upsert_static(Arc::new(d));
        dir.upsert_dynamic(
            &name,
            DynamicSample {
                seq: 1,
                sampled_unix_ms: 0,
                free_cores: (i % cores) as f32,
                free_memory_bytes: 1 << 30,
                load: (i % 100) as f32 / 10.0,
                running_jobs: i % 4,
                free_disk_bytes: 1 << 30,
            },
        );
        roster.insert(name.clone(), [7; 32]);
        members.push(xtreem_gossip::NodeId {
            name,
            addr: "10.0.0.1:7101".parse()?,
            incarnation: 0,
        });
    }
    let per_node = rss_bytes().saturating_sub(before) as f64 / f64::from(n);
    let queries = [
        "cores>=16 && tag:gpu",
        "cores>=4 && mem>=8GiB && arch==x86_64 && site in [bench,other] sort -load limit 10",
        "vo:cms && free_cores>=4 sort -free_cores limit 5",
        "label:rack==r7 || arch==aarch64",
        "",
    ];
    let mut times = Vec::new();
    for _ in 0..rounds {
        for text in queries {
            let q = Query::parse(text)?;
            let start = Instant::now();
            let found = dir.query(&q, |_| true);
            times.push(start.elapsed());
            std::hint::black_box(found);
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    line(&format!("local_query_{n}_p50"), pct(0.5), "ms");
    line(&format!("local_query_{n}_p99"), pct(0.99), "ms");
    line("memory_per_known_node", per_node / 1024.0, "KiB");
    std::hint::black_box((roster, members));
    Ok(())
}

async fn members_with_descriptors(grid: &Grid, i: usize) -> usize {
    let Ok(profile) = Profile::load(&grid.admin_dir()) else {
        return 0;
    };
    let Ok(mut c) = DirectoryClient::connect(&profile, &grid.node(i).rpc, true, None) else {
        return 0;
    };
    match c.members().await {
        Ok(m) => m
            .members
            .iter()
            .filter(|m| m.alive && m.descriptor_version > 0)
            .count(),
        Err(_) => 0,
    }
}

/// Time from a node's enrollment until all five processes see each other
/// alive with descriptors.
async fn real_grid() -> anyhow::Result<()> {
    let mut grid = Grid::new(xosd_next_to_current_exe()?)?;
    grid.start_site("bench", 4).await?;
    let ip = grid.next_ip();
    let i = grid.add_node(NodeSpec::new("node-5", &["resource", "client"], ip))?;
    let token = grid.join_token(Duration::from_secs(600)).await?;
    grid.start_member(i, &token).await?;
    let ready = Instant::now();
    loop {
        let mut done = true;
        for k in 0..5 {
            if members_with_descriptors(&grid, k).await < 4 {
                done = false;
                break;
            }
        }
        if done {
            break;
        }
        if ready.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("the 5-node grid did not converge within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    line(
        "real_grid_5_converged_after_join",
        ready.elapsed().as_secs_f64() * 1e3,
        "ms",
    );
    grid.stop_all().await;
    Ok(())
}

pub async fn run(nodes: u32, federation: bool, sim: bool) -> anyhow::Result<()> {
    real_grid().await?;
    local(10_000, 200)?;
    if !sim {
        return Ok(());
    }
    crate::cmd::bench_sim::site(nodes)?;
    if federation {
        crate::cmd::bench_sim::federation()?;
    }
    Ok(())
}
