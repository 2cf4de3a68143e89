//! Runs the simulator's scenarios and prints their reports.
//!
//! `cargo run -p xtreem-sim --release --example bench -- site 1000`
//! `cargo run -p xtreem-sim --release --example bench -- site 10000 [seed] [steady_secs]`
//! `cargo run -p xtreem-sim --release --example bench -- federation 100 1000`
//! `cargo run -p xtreem-sim --release --example bench -- failures 10000 20 [seed]`
//!
//! `failures` warm-starts one site (membership formed, descriptors
//! preloaded, as `site` does above 1,000 nodes) and then kills `count`
//! non-replica nodes one after the other, printing for each how long the
//! first and 99% of the alive nodes took to declare it down: the spread of
//! detection times that one `site` run samples once. `--probe-ms=250`
//! tries another probe period (the rest of `GossipConfig::lan` unchanged).
//!
//! `--warm` / `--joins` force how a site's membership starts (warm start or
//! real joins); by default the scenario picks (warm start above
//! `WARM_START_ABOVE` nodes).
use std::time::{Duration, Instant};

use rand010::rngs::SmallRng;
use rand010::{RngExt, SeedableRng};
use xtreem_gossip::GossipConfig;
use xtreem_sim::clock::{MS, SEC, micros};
use xtreem_sim::descriptors::SiteProfile;
use xtreem_sim::network::NetworkConfig;
use xtreem_sim::report::reach;
use xtreem_sim::world::{SiteSetup, World};
use xtreem_sim::{
    FederationScenario, SiteOptions, SiteScenario, run_federation_with, run_site_with,
};

/// Kills `count` nodes of a warm-started site one after the other and
/// prints the detection times of each.
fn failures(nodes: u32, count: u32, seed: u64, probe_ms: Option<u64>) {
    let wall = Instant::now();
    let nodes = nodes.max(10);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x51_7e);
    let mut gossip = GossipConfig::lan(nodes);
    if let Some(ms) = probe_ms {
        gossip.probe_period = Duration::from_millis(ms.max(1));
        gossip.probe_rtt = gossip.probe_rtt.min(gossip.probe_period / 2);
    }
    println!(
        "probe period {:?}, probe rtt {:?}, suspect -> down {:?}",
        gossip.probe_period, gossip.probe_rtt, gossip.suspect_to_down
    );
    let setup = SiteSetup {
        nodes,
        replicas: 3,
        seed,
        network: NetworkConfig::default(),
        gossip,
        preload_descriptors: true,
    };
    let mut w = World::new(&setup, SiteProfile::draw(&mut rng, 0));
    // Within one probe period, not the 30 s `site` uses: detection does
    // not depend on the phases of republishing or announces, and it saves
    // simulating 30 s of a large site.
    w.warm_start_all(micros(setup.gossip.probe_period));
    let formed = w.run_while(250 * MS, 30 * SEC, |w| w.now() > 0 && w.converged());
    println!(
        "{nodes} nodes formed: {formed} at {} ms (simulated), {:.1} s wall",
        w.now() / MS,
        wall.elapsed().as_secs_f64()
    );
    let (sent0, recv0, t0) = (
        w.net.sent_bytes.iter().sum::<u64>(),
        w.net.received_bytes.iter().sum::<u64>(),
        w.now(),
    );
    let (mut firsts, mut nineties) = (Vec::new(), Vec::new());
    for k in 0..count {
        // A random instant, so failures fall at any phase of the probes.
        let gap = 2 * SEC + w.rng.random_range(0..SEC);
        w.run_until(w.now() + gap);
        let alive: Vec<u32> = (3..nodes).filter(|&i| w.nodes[i as usize].alive).collect();
        let Some(&victim) = alive.get(w.rng.random_range(0..alive.len().max(1))) else {
            break;
        };
        w.kill(victim);
        let start = w.now();
        w.run_while(50 * MS, start + 20 * SEC, |w| {
            w.down
                .as_ref()
                .is_some_and(|d| d.delays.len() as u32 >= w.alive_count())
        });
        let alive = w.alive_count();
        let Some(d) = &w.down else { break };
        let first = d.delays.iter().min().copied().unwrap_or(u64::MAX) / MS;
        let p99 = reach(&d.delays, alive, 0.99);
        let p99 = if p99 == u64::MAX { u64::MAX } else { p99 / MS };
        println!(
            "failure {k}: node {victim}: first {first} ms, 99% {p99} ms, detected by {}/{alive}",
            d.delays.len()
        );
        firsts.push(first);
        nineties.push(p99);
    }
    // Every node's traffic (replicas included, no dynamic pushes here).
    let secs = (w.now() - t0).max(1) as f64 / SEC as f64;
    let sent = (w.net.sent_bytes.iter().sum::<u64>() - sent0) as f64;
    let recv = (w.net.received_bytes.iter().sum::<u64>() - recv0) as f64;
    println!(
        "gossip per node over the failures, mean: {:.0} B/s sent + {:.0} B/s received",
        sent / secs / f64::from(nodes),
        recv / secs / f64::from(nodes)
    );
    nineties.sort_unstable();
    firsts.sort_unstable();
    let pick = |v: &[u64], q: f64| {
        v.get(((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1)) - 1)
            .copied()
            .unwrap_or(u64::MAX)
    };
    println!(
        "first detection ms: median {}, max {}; 99% detection ms: median {}, p90 {}, max {}; over 5 s: {} of {}; wall {:.1} s",
        pick(&firsts, 0.5),
        pick(&firsts, 1.0),
        pick(&nineties, 0.5),
        pick(&nineties, 0.9),
        pick(&nineties, 1.0),
        nineties.iter().filter(|&&t| t > 5_000).count(),
        nineties.len(),
        wall.elapsed().as_secs_f64()
    );
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let warm = all.iter().any(|a| a == "--warm");
    let joins = all.iter().any(|a| a == "--joins");
    let probe_ms = all
        .iter()
        .find_map(|a| a.strip_prefix("--probe-ms="))
        .and_then(|v| v.parse().ok());
    let args: Vec<&String> = all.iter().filter(|a| !a.starts_with("--")).collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    match args.first().map(|a| a.as_str()) {
        Some("failures") => failures(
            num(1, 10_000) as u32,
            num(2, 20) as u32,
            num(3, 1),
            probe_ms,
        ),
        Some("federation") => {
            let s = FederationScenario {
                sites: num(1, 100) as u32,
                nodes_per_site: num(2, 1000) as u32,
                queries: num(3, 1000) as u32,
                ..FederationScenario::default()
            };
            println!("{:#?}", run_federation_with(&s, num(4, 1) as u32));
        }
        _ => {
            let s = SiteScenario {
                nodes: num(1, 1000) as u32,
                seed: num(2, 1),
                steady_secs: num(3, 10),
                ..SiteScenario::default()
            };
            let mut o = SiteOptions::for_scenario(&s);
            if warm {
                o.warm_start = true;
            } else if joins {
                o.warm_start = false;
            }
            println!("{:#?}", run_site_with(&s, &o));
        }
    }
}
