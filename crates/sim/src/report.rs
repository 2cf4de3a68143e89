//! What a scenario measured.

/// Result of [`crate::run_site`]. Times are simulated milliseconds unless
/// the name says otherwise; a time that was never reached within the
/// scenario's limit is `u64::MAX` (see the `*_count` fields).
#[derive(Debug, Clone, PartialEq)]
pub struct SiteReport {
    pub nodes: u32,
    /// Simulated time from the first start until every node knew every
    /// other as up and held every descriptor (or the warm-up limit).
    pub warmup_sim_ms: u64,
    pub warmup_converged: bool,
    /// Whether views started with every node's first descriptor (see the
    /// crate docs).
    pub descriptors_preloaded: bool,
    /// Whether membership started formed ([`crate::world::World::warm_start_all`])
    /// instead of by real joins; the warm-up is then only the nodes'
    /// start instants, spread over the longest periodic interval (30 s)
    /// so that periodic traffic runs at its steady rate.
    pub membership_warm_started: bool,
    /// At the end of the warm-up: the share of (node, other alive node)
    /// pairs where the first holds the second as up, and the share of
    /// (node, descriptor) pairs held. Epidemic spreading with a bounded
    /// number of transmissions misses a few pairs, which republishing
    /// only slowly heals.
    pub warmup_membership_coverage: f64,
    pub warmup_descriptor_coverage: f64,
    /// From publishing a new descriptor version until 99% / all alive
    /// nodes' sinks held it.
    pub change_reach_99_ms: u64,
    pub change_reach_all_ms: u64,
    /// Alive nodes holding the new version at the end of the window.
    pub change_reached_count: u32,
    /// From killing a node until the first / 99% of the alive nodes got
    /// `MemberDown` for it.
    pub failure_first_detect_ms: u64,
    pub failure_detect_99_ms: u64,
    pub failure_detected_count: u32,
    /// Mean over non-replica nodes of bytes sent plus bytes received per
    /// second in the steady window (gossip, probes, dynamic pushes).
    pub gossip_bytes_per_node_per_s: f64,
    /// Mean over non-replica nodes, bytes sent per second.
    pub gossip_sent_bytes_per_node_per_s: f64,
    /// Mean over non-replica nodes, bytes received per second.
    pub gossip_received_bytes_per_node_per_s: f64,
    /// Largest sent plus received rate of one non-replica node.
    pub gossip_bytes_per_node_per_s_max: f64,
    /// Mean over replicas of bytes received per second (gossip plus every
    /// node's dynamic pushes).
    pub replica_ingest_bytes_per_s: f64,
    /// Mean over replicas of bytes sent per second.
    pub replica_sent_bytes_per_s: f64,
    /// Real CPU time of `Directory::query` on a replica's directory (which
    /// holds every node of the site), over a set of representative queries.
    pub query_p50_us: f64,
    pub query_p99_us: f64,
    /// Records in the replica's directory the queries ran over, and how many
    /// of them had a dynamic sample.
    pub replica_directory_nodes: u32,
    pub replica_directory_with_dynamic: u32,
    /// Refusals counted by all agents together.
    pub rejected_forged: u64,
    pub dropped_unauthenticated: u64,
    pub dropped_malformed: u64,
    /// Simulated events processed.
    pub events: u64,
    /// Simulated time at the end of the run.
    pub sim_ms: u64,
    /// Process-wide peak resident set (VmHWM): includes earlier runs in the
    /// same process.
    pub peak_rss_bytes: u64,
    pub wall_secs: f64,
}

/// Result of [`crate::run_federation`].
#[derive(Debug, Clone, PartialEq)]
pub struct FederationReport {
    pub sites: u32,
    pub nodes: u64,
    /// Sites whose directory replica was filled by running the site's real
    /// gossip; the others' replicas were built directly from their
    /// descriptors and samples.
    pub gossip_sites: u32,
    /// Simulated end-to-end latency of a federated query.
    pub query_p50_ms: f64,
    pub query_p99_ms: f64,
    /// Other sites a query was forwarded to (those whose summary may
    /// match), on average.
    pub sites_asked_mean: f64,
    /// Sites that returned at least one node, on average (local included).
    pub sites_matched_mean: f64,
    /// Real CPU time of one `Directory::query` on one site's replica.
    pub replica_query_p50_us: f64,
    pub replica_query_p99_us: f64,
    /// Mean encoded size of a site summary.
    pub summary_bytes_mean: f64,
    pub queries: u32,
    pub wall_secs: f64,
    pub peak_rss_bytes: u64,
}

/// Peak resident set of this process so far (VmHWM of /proc/self/status),
/// 0 where unavailable.
pub fn peak_rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// The value below which `q` (0..=1) of `sorted` lies (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The delay by which `share` of `population` had seen something, given the
/// delays of those that did; `u64::MAX` if too few did.
pub fn reach(delays: &[u64], population: u32, share: f64) -> u64 {
    let needed = ((share * f64::from(population)).ceil() as usize).max(1);
    let mut sorted = delays.to_vec();
    sorted.sort_unstable();
    sorted.get(needed - 1).copied().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_reach() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(reach(&[5, 1, 3], 3, 1.0), 5);
        assert_eq!(reach(&[5, 1, 3], 4, 1.0), u64::MAX);
        assert_eq!(reach(&[5, 1, 3], 100, 0.01), 1);
        assert!(peak_rss_bytes() > 0);
    }
}
