//! `xos bench ...`: benchmark programs. Each figure is printed as a line
//! `name: value unit`; docs/PERFORMANCE.md records them.

use std::process::Command;
use std::time::{Duration, Instant};

use xtreem_testkit::{Grid, xosd_next_to_current_exe};

use super::Context;
use crate::cli::BenchCommand;

pub async fn run(_ctx: &Context, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Fabric { count } => fabric(count).await,
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

async fn fabric(count: u32) -> anyhow::Result<()> {
    let xosd = xosd_next_to_current_exe()?;
    let mut grid = Grid::new(&xosd)?;
    grid.start_site("bench", 2).await?;
    println!(
        "# 2 xosd on loopback; node-1 pings node-2 over node mTLS (TLS 1.3, gRPC, 64-byte payload)"
    );

    let mut client = grid.admin_client(0)?;
    let mut ns = client.probe_node("node-2", count, 64).await?.round_trip_ns;
    ns.sort_unstable();
    let mean = ns.iter().sum::<u64>() as f64 / ns.len().max(1) as f64;
    println!("mtls_round_trips: {} count", ns.len());
    println!("mtls_round_trip_p50: {:.1} us", percentile(&ns, 0.50) / 1e3);
    println!("mtls_round_trip_p99: {:.1} us", percentile(&ns, 0.99) / 1e3);
    println!("mtls_round_trip_mean: {:.1} us", mean / 1e3);
    println!(
        "mtls_round_trips_per_second: {:.0} 1/s",
        1e9 / mean.max(1.0)
    );

    // Idle memory: let both daemons settle, then read their resident size.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut rss = Vec::new();
    for i in 0..grid.len() {
        if let Some(pid) = grid.node(i).pid() {
            rss.push(rss_kib(pid)?);
        }
    }
    let max_rss = rss.iter().copied().max().unwrap_or(0);
    println!("xosd_idle_rss_max: {:.1} MiB", max_rss as f64 / 1024.0);

    // CLI start-up: `xos --version`, spawned and waited for, many times.
    let xos = std::env::current_exe()?;
    let runs = 200;
    let mut startup = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let out = Command::new(&xos).arg("--version").output()?;
        anyhow::ensure!(out.status.success(), "xos --version failed");
        startup.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    startup.sort_unstable();
    println!(
        "xos_version_startup_p50: {:.2} ms",
        percentile(&startup, 0.50) / 1e6
    );
    println!(
        "xos_version_startup_p99: {:.2} ms",
        percentile(&startup, 0.99) / 1e6
    );

    grid.stop_all().await;
    Ok(())
}
