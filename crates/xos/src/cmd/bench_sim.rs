//! The simulation part of `xos bench directory` (see the `xtreem-sim` crate
//! for what is simulated and what is the real code).

use super::bench_directory::line;
use xtreem_sim::{FederationScenario, SiteScenario, run_federation, run_site};

fn ms(v: u64) -> f64 {
    if v == u64::MAX {
        f64::INFINITY
    } else {
        v as f64
    }
}

pub fn site(nodes: u32) -> anyhow::Result<()> {
    let scenario = SiteScenario {
        nodes,
        ..SiteScenario::default()
    };
    // Above 1,000 nodes the site starts formed (warm start, descriptors
    // preloaded): real joins of 10,000 nodes would take hours.
    let r = run_site(&scenario);
    let p = format!("sim_site_{nodes}");
    line(
        &format!("{p}_membership_warm_started"),
        f64::from(u8::from(r.membership_warm_started)),
        "(1: formed at start, 0: real joins)",
    );
    line(
        &format!("{p}_warmup"),
        ms(r.warmup_sim_ms),
        "ms (simulated)",
    );
    line(
        &format!("{p}_warmup_membership_coverage"),
        r.warmup_membership_coverage * 100.0,
        "%",
    );
    line(
        &format!("{p}_warmup_descriptor_coverage"),
        r.warmup_descriptor_coverage * 100.0,
        "%",
    );
    line(
        &format!("{p}_change_reach_99pct"),
        ms(r.change_reach_99_ms),
        "ms (simulated)",
    );
    line(
        &format!("{p}_change_reach_all"),
        ms(r.change_reach_all_ms),
        "ms (simulated)",
    );
    line(
        &format!("{p}_failure_first_detect"),
        ms(r.failure_first_detect_ms),
        "ms (simulated)",
    );
    line(
        &format!("{p}_failure_detect_99pct"),
        ms(r.failure_detect_99_ms),
        "ms (simulated)",
    );
    line(
        &format!("{p}_gossip_per_node"),
        r.gossip_bytes_per_node_per_s / 1000.0,
        "KB/s (sent+received, mean)",
    );
    line(
        &format!("{p}_gossip_per_node_sent"),
        r.gossip_sent_bytes_per_node_per_s / 1000.0,
        "KB/s",
    );
    line(
        &format!("{p}_gossip_per_node_max"),
        r.gossip_bytes_per_node_per_s_max / 1000.0,
        "KB/s",
    );
    line(
        &format!("{p}_replica_ingest"),
        r.replica_ingest_bytes_per_s / 1000.0,
        "KB/s",
    );
    line(
        &format!("{p}_replica_query_p50"),
        r.query_p50_us / 1000.0,
        "ms",
    );
    line(
        &format!("{p}_replica_query_p99"),
        r.query_p99_us / 1000.0,
        "ms",
    );
    line(
        &format!("{p}_peak_rss"),
        r.peak_rss_bytes as f64 / (1 << 20) as f64,
        "MiB",
    );
    line(&format!("{p}_wall"), r.wall_secs, "s");
    Ok(())
}

pub fn federation() -> anyhow::Result<()> {
    let r = run_federation(&FederationScenario::default());
    let p = format!(
        "sim_federation_{}x{}",
        r.sites,
        r.nodes / u64::from(r.sites.max(1))
    );
    line(
        &format!("{p}_gossip_sites"),
        f64::from(r.gossip_sites),
        "sites",
    );
    line(&format!("{p}_query_p50"), r.query_p50_ms, "ms (simulated)");
    line(&format!("{p}_query_p99"), r.query_p99_ms, "ms (simulated)");
    line(
        &format!("{p}_sites_asked_mean"),
        r.sites_asked_mean,
        "sites",
    );
    line(
        &format!("{p}_summary_bytes_mean"),
        r.summary_bytes_mean,
        "bytes",
    );
    line(
        &format!("{p}_peak_rss"),
        r.peak_rss_bytes as f64 / (1 << 20) as f64,
        "MiB",
    );
    line(&format!("{p}_wall"), r.wall_secs, "s");
    Ok(())
}
