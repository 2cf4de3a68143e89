//! The scenarios `xos bench directory` runs: one site, and a federation.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use rand010::rngs::SmallRng;
use rand010::{RngExt, SeedableRng};
use xtreem_directory::{Directory, Query, SiteSummary};
use xtreem_gossip::GossipConfig;

use crate::clock::{MS, Micros, SEC, micros};
use crate::descriptors::{SiteProfile, sample, site_name};
use crate::id::{ensure_names, node_name};
use crate::network::NetworkConfig;
use crate::report::{FederationReport, SiteReport, peak_rss_bytes, percentile, reach};
use crate::world::{EPOCH_UNIX_MS, SiteSetup, World};

/// One site: warm-up, steady traffic, a descriptor change, a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteScenario {
    pub nodes: u32,
    pub seed: u64,
    /// Directory replicas (the first nodes, role "core"); 3 in production.
    pub replicas: u32,
    /// How often every node pushes a dynamic sample to each replica.
    pub dynamic_interval_ms: u64,
    /// Length of the window bandwidth is measured over.
    pub steady_secs: u64,
}

impl Default for SiteScenario {
    fn default() -> Self {
        SiteScenario {
            nodes: 1000,
            seed: 1,
            replicas: 3,
            dynamic_interval_ms: 2000,
            steady_secs: 10,
        }
    }
}

/// Knobs of [`run_site_with`] that [`run_site`] picks itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteOptions {
    /// Start views holding every node's first descriptor (see the crate
    /// docs). [`run_site`] does so above [`PRELOAD_ABOVE`] nodes.
    pub preload_descriptors: bool,
    /// Start every node as a member of an already-formed site
    /// ([`World::warm_start_all`], foca's `apply_many` without
    /// re-gossiping) instead of forming membership by real joins.
    /// [`run_site`] does so above [`WARM_START_ABOVE`] nodes.
    pub warm_start: bool,
    /// Nodes joining per wave, and time between waves (real joins only).
    pub join_batch: u32,
    pub join_spacing_ms: u64,
    /// Give up waiting for convergence after this much simulated time.
    pub warmup_limit_secs: u64,
    /// How long to watch the change and the failure.
    pub observe_limit_secs: u64,
    pub network: NetworkConfig,
}

/// Above this many nodes [`run_site`] preloads descriptors: spreading
/// N descriptors to N nodes from scratch is N² deliveries.
pub const PRELOAD_ABOVE: u32 = 1000;

/// Period of foca's own periodic announce (its `Config::new_lan`, which
/// [`GossipConfig`] keeps): each node asks one member for a `Feed` this
/// often.
const FOCA_PERIODIC_ANNOUNCE: Micros = 30 * SEC;

/// Above this many nodes [`run_site`] warm-starts membership: real joins
/// cost about N³ with foca 2's member list (minutes at 4,000 nodes, hours
/// at 10,000; see the crate docs).
pub const WARM_START_ABOVE: u32 = 1000;

impl SiteOptions {
    pub fn for_scenario(s: &SiteScenario) -> SiteOptions {
        SiteOptions {
            preload_descriptors: s.nodes > PRELOAD_ABOVE,
            warm_start: s.nodes > WARM_START_ABOVE,
            join_batch: 50,
            join_spacing_ms: 100,
            warmup_limit_secs: 120,
            observe_limit_secs: 60,
            network: NetworkConfig::default(),
        }
    }
}

/// Runs [`SiteScenario`] with the options [`SiteOptions::for_scenario`]
/// picks.
pub fn run_site(s: &SiteScenario) -> SiteReport {
    run_site_with(s, &SiteOptions::for_scenario(s))
}

/// Builds a site's world (used by both scenarios).
fn site_world(s: &SiteScenario, o: &SiteOptions, profile: SiteProfile) -> World {
    let setup = SiteSetup {
        nodes: s.nodes.max(2),
        replicas: s.replicas.clamp(1, s.nodes.max(2)),
        seed: s.seed,
        network: o.network.clone(),
        gossip: GossipConfig::lan(s.nodes.max(2)),
        preload_descriptors: o.preload_descriptors,
    };
    World::new(&setup, profile)
}

/// Starts the world and runs it until it converges (or the limit);
/// returns (converged, warm-up time).
fn warm_up(w: &mut World, o: &SiteOptions) -> (bool, Micros) {
    if o.warm_start {
        // Start instants over the longest periodic interval, so that every
        // periodic exchange (probes, republishing, foca's announce) has
        // random phases as in a running site.
        let c = &w.config;
        let longest = c
            .probe_period
            .max(c.republish_interval)
            .max(c.announce_to_down_interval);
        let spread = micros(longest).max(FOCA_PERIODIC_ANNOUNCE);
        w.warm_start_all(spread);
    } else {
        w.start_all(o.join_batch, o.join_spacing_ms * MS);
    }
    let limit = o.warmup_limit_secs * SEC;
    let converged = w.run_while(250 * MS, limit, |w| w.now() > 0 && w.converged());
    (converged, w.now())
}

pub fn run_site_with(s: &SiteScenario, o: &SiteOptions) -> SiteReport {
    let wall = Instant::now();
    let mut rng = SmallRng::seed_from_u64(s.seed ^ 0x51_7e);
    let profile = SiteProfile::draw(&mut rng, 0);
    let mut w = site_world(s, o, profile);
    let n = w.len();
    let (converged, warmup) = warm_up(&mut w, o);
    let (membership_coverage, descriptor_coverage) = w.coverage();

    // Steady traffic: dynamic pushes on top of SWIM, after one interval
    // to let every node's first push happen.
    let interval = s.dynamic_interval_ms.max(1) * MS;
    w.start_dynamic(interval);
    w.run_until(w.now() + interval + SEC);
    let sent0 = w.net.sent_bytes.clone();
    let recv0 = w.net.received_bytes.clone();
    let window = s.steady_secs.max(1) * SEC;
    w.run_until(w.now() + window);
    let secs = window as f64 / SEC as f64;
    let rate = |now: &[u64], then: &[u64], i: usize| (now[i] - then[i]) as f64 / secs;
    let (mut sent_sum, mut recv_sum, mut max_total, mut members) = (0.0, 0.0, 0.0f64, 0u32);
    let (mut rep_in, mut rep_out) = (0.0, 0.0);
    for i in 0..n as usize {
        let sent = rate(&w.net.sent_bytes, &sent0, i);
        let recv = rate(&w.net.received_bytes, &recv0, i);
        if w.nodes[i].replica {
            rep_in += recv;
            rep_out += sent;
        } else {
            sent_sum += sent;
            recv_sum += recv;
            max_total = max_total.max(sent + recv);
            members += 1;
        }
    }
    let members_f = f64::from(members.max(1));
    let replicas_f = w.replicas.len().max(1) as f64;

    // A descriptor change, from a non-replica node.
    let observe = o.observe_limit_secs * SEC;
    let first = w.replicas.len() as u32;
    let changer = if n > first {
        w.rng.random_range(first..n)
    } else {
        0
    };
    w.change_descriptor(changer);
    let start = w.now();
    w.run_while(50 * MS, start + observe, |w| {
        w.change
            .as_ref()
            .is_some_and(|c| c.delays.len() as u32 >= w.alive_count())
    });
    let alive = w.alive_count();
    let (change_99, change_all, change_count) = match &w.change {
        Some(c) => (
            reach(&c.delays, alive, 0.99) / MS.max(1),
            reach(&c.delays, alive, 1.0) / MS.max(1),
            c.delays.len() as u32,
        ),
        None => (u64::MAX, u64::MAX, 0),
    };

    // A failure of another non-replica node.
    let mut victim = if n > first {
        w.rng.random_range(first..n)
    } else {
        n - 1
    };
    if victim == changer && n > first + 1 {
        victim = if victim + 1 < n { victim + 1 } else { first };
    }
    w.kill(victim);
    let start = w.now();
    w.run_while(50 * MS, start + observe, |w| {
        w.down
            .as_ref()
            .is_some_and(|d| d.delays.len() as u32 >= w.alive_count())
    });
    let alive = w.alive_count();
    let (first_detect, detect_99, detected) = match &w.down {
        Some(d) => (
            d.delays.iter().min().copied().map_or(u64::MAX, |t| t / MS),
            reach(&d.delays, alive, 0.99) / MS.max(1),
            d.delays.len() as u32,
        ),
        None => (u64::MAX, u64::MAX, 0),
    };
    let never = |v: u64| if v == u64::MAX / MS { u64::MAX } else { v };

    // Query CPU time on a replica's directory.
    let (p50, p99, dir_nodes, with_dynamic) = {
        let replica = w.replicas.first().copied().unwrap_or(0);
        let view = w.nodes[replica as usize].view.borrow();
        match &view.directory {
            Some(dir) => {
                let mut qrng = SmallRng::seed_from_u64(s.seed ^ 0x9e7);
                let sites: Vec<String> = vec![site_name(0), site_name(1)];
                let times = time_queries(dir, &mut qrng, &sites, 400);
                (
                    percentile(&times, 0.5),
                    percentile(&times, 0.99),
                    dir.len() as u32,
                    dir.iter().filter(|r| r.dynamic.is_some()).count() as u32,
                )
            }
            None => (0.0, 0.0, 0, 0),
        }
    };
    let counters = w.counters();
    SiteReport {
        nodes: n,
        warmup_sim_ms: warmup / MS,
        warmup_converged: converged,
        descriptors_preloaded: o.preload_descriptors,
        membership_warm_started: o.warm_start,
        warmup_membership_coverage: membership_coverage,
        warmup_descriptor_coverage: descriptor_coverage,
        change_reach_99_ms: never(change_99),
        change_reach_all_ms: never(change_all),
        change_reached_count: change_count,
        failure_first_detect_ms: first_detect,
        failure_detect_99_ms: never(detect_99),
        failure_detected_count: detected,
        gossip_bytes_per_node_per_s: (sent_sum + recv_sum) / members_f,
        gossip_sent_bytes_per_node_per_s: sent_sum / members_f,
        gossip_received_bytes_per_node_per_s: recv_sum / members_f,
        gossip_bytes_per_node_per_s_max: max_total,
        replica_ingest_bytes_per_s: rep_in / replicas_f,
        replica_sent_bytes_per_s: rep_out / replicas_f,
        query_p50_us: p50,
        query_p99_us: p99,
        replica_directory_nodes: dir_nodes,
        replica_directory_with_dynamic: with_dynamic,
        rejected_forged: counters.rejected_forged,
        dropped_unauthenticated: counters.dropped_unauthenticated,
        dropped_malformed: counters.dropped_malformed,
        events: w.stats.events,
        sim_ms: w.now() / MS,
        peak_rss_bytes: peak_rss_bytes(),
        wall_secs: wall.elapsed().as_secs_f64(),
    }
}

const VO_NAMES: [&str; 8] = [
    "cms", "atlas", "alice", "lhcb", "bio", "astro", "climate", "chem",
];

/// A representative query, drawn from a fixed mix.
pub fn representative_query(rng: &mut SmallRng, sites: &[String]) -> String {
    let pick = |rng: &mut SmallRng, xs: &[&str]| xs[rng.random_range(0..xs.len())].to_owned();
    let site = |rng: &mut SmallRng| sites[rng.random_range(0..sites.len().max(1))].clone();
    match rng.random_range(0..6u32) {
        0 => format!("cores>={} && tag:gpu", pick(rng, &["16", "32", "64"])),
        1 => format!(
            "site in [{},{}] && mem>={}GiB",
            site(rng),
            site(rng),
            pick(rng, &["64", "128", "256"])
        ),
        2 => "arch==aarch64".to_owned(),
        3 => format!(
            "vo:{} && free_cores>={}",
            pick(rng, &VO_NAMES),
            pick(rng, &["4", "8", "16"])
        ),
        4 => format!(
            "tag:highmem && vo:{} sort -free_cores limit 10",
            pick(rng, &VO_NAMES)
        ),
        _ => format!(
            "arch==ppc64le || (tag:infiniband && cores>={})",
            pick(rng, &["32", "64"])
        ),
    }
}

/// CPU microseconds of `count` representative queries on `dir`.
fn time_queries(dir: &Directory, rng: &mut SmallRng, sites: &[String], count: u32) -> Vec<f64> {
    let mut times = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let text = representative_query(rng, sites);
        let Ok(q) = Query::parse(&text) else { continue };
        let t = Instant::now();
        let found = dir.query(&q, |_| true);
        let us = t.elapsed().as_secs_f64() * 1e6;
        std::hint::black_box(found);
        times.push(us);
    }
    times.sort_by(f64::total_cmp);
    times
}

/// Many sites, each with a directory replica and a summary; queries go
/// from a client to its local replica, which forwards them in parallel to
/// the sites whose summaries may match and merges the answers.
#[derive(Debug, Clone, PartialEq)]
pub struct FederationScenario {
    pub sites: u32,
    pub nodes_per_site: u32,
    pub inter_site_latency_ms: u64,
    pub queries: u32,
    pub seed: u64,
}

impl Default for FederationScenario {
    fn default() -> Self {
        FederationScenario {
            sites: 100,
            nodes_per_site: 1000,
            inter_site_latency_ms: 50,
            queries: 1000,
            seed: 1,
        }
    }
}

/// How many sites of a federation run real gossip ([`run_federation`]):
/// one 1,000-node site takes tens of seconds of CPU, so running all 100
/// would not fit the bench's budget. The others' replicas are built
/// directly from the same kind of descriptors and samples.
pub const FEDERATION_GOSSIP_SITES: u32 = 1;

pub fn run_federation(s: &FederationScenario) -> FederationReport {
    run_federation_with(s, FEDERATION_GOSSIP_SITES)
}

pub fn run_federation_with(s: &FederationScenario, gossip_sites: u32) -> FederationReport {
    let wall = Instant::now();
    let sites = s.sites.max(1);
    let per_site = s.nodes_per_site.max(2);
    ensure_names(per_site);
    let mut rng = SmallRng::seed_from_u64(s.seed);
    let profiles: Vec<SiteProfile> = (0..sites).map(|i| SiteProfile::draw(&mut rng, i)).collect();
    let gossip_sites = gossip_sites.min(sites);
    let now_unix = EPOCH_UNIX_MS / 1000;

    let mut dirs: Vec<Directory> = Vec::with_capacity(sites as usize);
    for (i, profile) in profiles.iter().enumerate() {
        let site_seed = s.seed ^ ((i as u64 + 1) << 20);
        if (i as u32) < gossip_sites {
            let sc = SiteScenario {
                nodes: per_site,
                seed: site_seed,
                ..SiteScenario::default()
            };
            let o = SiteOptions::for_scenario(&sc);
            let mut w = site_world(&sc, &o, profile.clone());
            warm_up(&mut w, &o);
            let interval = sc.dynamic_interval_ms * MS;
            w.start_dynamic(interval);
            w.run_until(w.now() + interval + SEC);
            let dir = w.nodes[0]
                .view
                .borrow_mut()
                .directory
                .take()
                .unwrap_or_default();
            dirs.push(dir);
        } else {
            let mut srng = SmallRng::seed_from_u64(site_seed);
            let mut dir = Directory::new();
            for n in 0..per_site {
                let d = Arc::new(profile.descriptor(&mut srng, node_name(n), n < 3));
                let sm = sample(&mut srng, &d, 1, EPOCH_UNIX_MS);
                let name = d.node.clone();
                dir.upsert_static(d);
                dir.upsert_dynamic(&name, sm);
            }
            dirs.push(dir);
        }
    }
    let names: Vec<String> = (0..sites).map(site_name).collect();
    let summaries: Vec<SiteSummary> = names
        .iter()
        .zip(&dirs)
        .map(|(name, dir)| SiteSummary::of(name, dir, now_unix))
        .collect();
    let summary_bytes_mean = summaries
        .iter()
        .map(|x| x.encode().len() as f64)
        .sum::<f64>()
        / f64::from(sites);

    let net = NetworkConfig {
        inter_site_us: s.inter_site_latency_ms * MS,
        jitter_us: 50,
        ..NetworkConfig::default()
    };
    let one_way = |rng: &mut SmallRng, base: Micros| -> Micros {
        let j = net.jitter_us.min(base);
        base - j + rng.random_range(0..=2 * j)
    };
    let mut latencies = Vec::with_capacity(s.queries as usize);
    let mut cpu = Vec::new();
    let (mut asked_total, mut matched_total) = (0u64, 0u64);
    let mut qrng = SmallRng::seed_from_u64(s.seed ^ 0xfed);
    for _ in 0..s.queries {
        let text = representative_query(&mut qrng, &names);
        let Ok(q) = Query::parse(&text) else { continue };
        let local = qrng.random_range(0..sites) as usize;
        let named: Option<BTreeSet<String>> = q.named_sites();
        let run = |dir: &Directory| -> (usize, Micros) {
            let t = Instant::now();
            let found = dir.query(&q, |_| true);
            let us = t.elapsed().as_micros() as Micros;
            (found.len(), us)
        };
        let mut matched = 0u64;
        let (local_found, local_us) = run(&dirs[local]);
        cpu.push(local_us as f64);
        matched += u64::from(local_found > 0);
        let mut slowest_remote: Micros = 0;
        for (i, summary) in summaries.iter().enumerate() {
            if i == local
                || named.as_ref().is_some_and(|set| !set.contains(&names[i]))
                || !summary.may_match(&q)
            {
                continue;
            }
            asked_total += 1;
            let (found, us) = run(&dirs[i]);
            cpu.push(us as f64);
            matched += u64::from(found > 0);
            let there = one_way(&mut qrng, net.inter_site_us);
            let back = one_way(&mut qrng, net.inter_site_us);
            slowest_remote = slowest_remote.max(there + us + back);
        }
        matched_total += matched;
        let to_replica = one_way(&mut qrng, net.intra_site_us);
        let to_client = one_way(&mut qrng, net.intra_site_us);
        let total = to_replica + local_us.max(slowest_remote) + to_client;
        latencies.push(total as f64 / MS as f64);
    }
    latencies.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let nq = latencies.len().max(1) as f64;
    FederationReport {
        sites,
        nodes: u64::from(sites) * u64::from(per_site),
        gossip_sites,
        query_p50_ms: percentile(&latencies, 0.5),
        query_p99_ms: percentile(&latencies, 0.99),
        sites_asked_mean: asked_total as f64 / nq,
        sites_matched_mean: matched_total as f64 / nq,
        replica_query_p50_us: percentile(&cpu, 0.5),
        replica_query_p99_us: percentile(&cpu, 0.99),
        summary_bytes_mean,
        queries: latencies.len() as u32,
        wall_secs: wall.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
    }
}
