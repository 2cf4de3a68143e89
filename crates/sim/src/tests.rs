//! Scenario-level tests: determinism, spreading, failure detection and the
//! refusal of forged or foreign packets, on small sites.

use rand010::SeedableRng;
use rand010::rngs::SmallRng;
use xtreem_gossip::{GossipConfig, Keyring, SiteKey};

use crate::clock::{MS, SEC};
use crate::descriptors::SiteProfile;
use crate::network::NetworkConfig;
use crate::report::SiteReport;
use crate::scenarios::{
    FederationScenario, SiteOptions, SiteScenario, run_federation_with, run_site_with,
};
use crate::world::{SiteSetup, World};

fn small_site(nodes: u32, seed: u64) -> World {
    let mut rng = SmallRng::seed_from_u64(seed);
    let setup = SiteSetup {
        nodes,
        replicas: 3,
        seed,
        network: NetworkConfig::default(),
        gossip: GossipConfig::lan(nodes),
        preload_descriptors: false,
    };
    let mut w = World::new(&setup, SiteProfile::draw(&mut rng, 0));
    w.start_all(25, 100 * MS);
    let ok = w.run_while(250 * MS, 120 * SEC, |w| {
        let (members, descriptors) = w.coverage();
        w.now() > 0 && members >= 1.0 && descriptors >= 0.99
    });
    assert!(ok, "the site did not converge: {:?}", w.coverage());
    w
}

/// A small site with a short steady window, as the tests run it.
fn test_scenario(nodes: u32, seed: u64) -> SiteScenario {
    SiteScenario {
        nodes,
        seed,
        replicas: 3,
        dynamic_interval_ms: 2000,
        steady_secs: 3,
    }
}

fn quick(nodes: u32, seed: u64) -> SiteReport {
    let s = test_scenario(nodes, seed);
    let mut o = SiteOptions::for_scenario(&s);
    o.warmup_limit_secs = 60;
    o.observe_limit_secs = 20;
    run_site_with(&s, &o)
}

fn without_host_measures(mut r: SiteReport) -> SiteReport {
    r.wall_secs = 0.0;
    r.peak_rss_bytes = 0;
    r.query_p50_us = 0.0;
    r.query_p99_us = 0.0;
    r
}

#[test]
fn same_seed_same_report() {
    let a = without_host_measures(quick(120, 7));
    let b = without_host_measures(quick(120, 7));
    assert_eq!(a, b);
    let c = without_host_measures(quick(120, 8));
    assert_ne!(a, c, "another seed should give another run");
}

#[test]
fn a_change_reaches_every_node_and_a_failure_is_detected() {
    let r = quick(150, 3);
    assert!(r.warmup_converged, "{r:#?}");
    assert_eq!(r.change_reached_count, 150, "{r:#?}");
    assert!(r.change_reach_all_ms < 5_000, "{r:#?}");
    // Every other alive node declares the killed one down.
    assert_eq!(r.failure_detected_count, 149, "{r:#?}");
    assert!(
        r.failure_first_detect_ms <= r.failure_detect_99_ms,
        "{r:#?}"
    );
    assert!(r.failure_detect_99_ms < 10_000, "{r:#?}");
    assert!(r.gossip_bytes_per_node_per_s > 0.0);
    assert!(r.replica_ingest_bytes_per_s > r.gossip_bytes_per_node_per_s);
    assert_eq!(r.replica_directory_nodes, 150);
    assert_eq!(r.replica_directory_with_dynamic, 150);
    assert_eq!(r.rejected_forged, 0);
}

#[test]
fn forged_descriptors_are_rejected_by_every_node() {
    let mut w = small_site(60, 11);
    let before = w.counters();
    let victim = 10;
    let n = w.len();
    for to in 0..n {
        // Node 20 signs a descriptor claiming to be node 10's, and every
        // node gets it from some member in a well-sealed gossip packet.
        let from = if to == 30 { 31 } else { 30 };
        let keyring = w.keyring.clone();
        let packet = w.crafted_descriptor_packet(&keyring, from, to, victim, 20, 99);
        w.inject(to, packet, MS);
    }
    let until = w.now() + 5 * SEC;
    w.run_until(until);
    let after = w.counters();
    assert_eq!(after.rejected_forged - before.rejected_forged, u64::from(n));
    for node in &w.nodes {
        assert!(node.view.borrow().version_of(victim) < 99);
        if let Some(dir) = &node.view.borrow().directory {
            let held = dir
                .get(crate::id::node_name(victim))
                .map(|r| r.descriptor.version);
            assert!(held.is_some_and(|v| v < 99));
        }
    }

    // The real owner's signature on the same kind of item is accepted, so
    // the refusal above is about the key, not the packet.
    let keyring = w.keyring.clone();
    let genuine = w.crafted_descriptor_packet(&keyring, 30, 40, victim, victim, 99);
    w.inject(40, genuine, MS);
    let until = w.now() + SEC;
    w.run_until(until);
    assert_eq!(w.nodes[40].view.borrow().version_of(victim), 99);
}

#[test]
fn packets_sealed_with_another_site_key_are_dropped() {
    let mut w = small_site(40, 12);
    let before = w.counters();
    let foreign = Keyring::new(SiteKey::new(1, [0x5a; 32]), None);
    for to in 0..w.len() {
        // Even a genuinely signed descriptor does not get in without the
        // site key.
        let packet = w.crafted_descriptor_packet(&foreign, 5, to, 7, 7, 50);
        w.inject(to, packet, MS);
    }
    let until = w.now() + 2 * SEC;
    w.run_until(until);
    let after = w.counters();
    assert_eq!(
        after.dropped_unauthenticated - before.dropped_unauthenticated,
        u64::from(w.len())
    );
    assert!(w.nodes.iter().all(|n| n.view.borrow().version_of(7) < 50));
}

#[test]
fn a_killed_node_stops_and_a_restarted_one_rejoins() {
    let mut w = small_site(40, 13);
    w.kill(9);
    let until = w.now() + 15 * SEC;
    w.run_until(until);
    let down = w.down.as_ref().map_or(0, |d| d.delays.len());
    assert_eq!(down, 39);
    w.restart(9);
    let limit = w.now() + 30 * SEC;
    let ok = w.run_while(250 * MS, limit, |w| {
        w.nodes.iter().all(|n| n.members_up >= 39)
    });
    let ups: Vec<u32> = w.nodes.iter().map(|n| n.members_up).collect();
    assert!(
        ok,
        "the restarted node did not rejoin everywhere: {ups:?} {:?}",
        w.stats
    );
}

#[test]
fn partitions_and_loss_are_survivable() {
    let mut w = small_site(40, 14);
    w.net.config.loss = 0.05;
    w.change_descriptor(15);
    let until = w.now() + 10 * SEC;
    w.run_until(until);
    let reached = w.change.as_ref().map_or(0, |c| c.delays.len());
    assert!(
        reached >= 39,
        "only {reached} nodes got the change with 5% loss"
    );
    // A partition cuts the two halves off: each declares the other down.
    w.net.config.loss = 0.0;
    w.net
        .set_partition(Some((0..40).map(|i| u16::from(i >= 20)).collect()));
    let until = w.now() + 20 * SEC;
    w.run_until(until);
    assert!(w.nodes.iter().all(|n| n.members_up < 39));
}

#[test]
fn a_small_federation_prunes_sites() {
    let s = FederationScenario {
        sites: 12,
        nodes_per_site: 60,
        inter_site_latency_ms: 50,
        queries: 200,
        seed: 5,
    };
    let r = run_federation_with(&s, 1);
    assert_eq!(r.nodes, 720);
    assert_eq!(r.gossip_sites, 1);
    assert_eq!(r.queries, 200);
    assert!(r.sites_asked_mean < 11.0, "{r:#?}");
    assert!(r.query_p50_ms >= 0.0 && r.query_p99_ms >= r.query_p50_ms);
    assert!(
        r.query_p99_ms > 100.0,
        "forwarded queries pay two inter-site trips: {r:#?}"
    );
}

fn warm(nodes: u32, seed: u64) -> SiteReport {
    let s = test_scenario(nodes, seed);
    let mut o = SiteOptions::for_scenario(&s);
    // As run_site does for large sites: membership formed, views holding
    // every node's first descriptor.
    o.warm_start = true;
    o.preload_descriptors = true;
    o.warmup_limit_secs = 30;
    o.observe_limit_secs = 20;
    run_site_with(&s, &o)
}

#[test]
fn a_warm_started_site_spreads_a_change_and_detects_a_failure() {
    let r = warm(300, 21);
    assert!(r.membership_warm_started && r.descriptors_preloaded);
    assert!(r.warmup_converged, "{r:#?}");
    assert_eq!(r.warmup_membership_coverage, 1.0, "{r:#?}");
    // The warm-up is only the nodes' start instants (spread over 30 s).
    assert!(r.warmup_sim_ms <= 30_250, "{r:#?}");
    // The new version travels signed by gossip to every node.
    assert_eq!(r.change_reached_count, 300, "{r:#?}");
    assert!(r.change_reach_99_ms <= 3_000, "{r:#?}");
    assert_eq!(r.failure_detected_count, 299, "{r:#?}");
    assert!(
        r.failure_first_detect_ms <= r.failure_detect_99_ms,
        "{r:#?}"
    );
    assert!(r.failure_detect_99_ms <= 10_000, "{r:#?}");
    // Steady traffic (probes, republishing, announces, dynamic pushes)
    // stays below the 10 KB/s goal even for the busiest node.
    assert!(r.gossip_bytes_per_node_per_s > 0.0);
    assert!(r.gossip_bytes_per_node_per_s < 2_000.0, "{r:#?}");
    assert!(r.gossip_bytes_per_node_per_s_max < 10_000.0, "{r:#?}");
    assert_eq!(r.replica_directory_nodes, 300);
    assert_eq!(r.replica_directory_with_dynamic, 300);
    assert_eq!(
        (
            r.rejected_forged,
            r.dropped_unauthenticated,
            r.dropped_malformed
        ),
        (0, 0, 0)
    );
    // The same seed gives the same run.
    assert_eq!(
        without_host_measures(r),
        without_host_measures(warm(300, 21))
    );
}

#[test]
fn a_warm_start_joins_nobody_and_descriptors_still_come_by_gossip() {
    let mut rng = SmallRng::seed_from_u64(4);
    let setup = SiteSetup {
        nodes: 60,
        replicas: 3,
        seed: 4,
        network: NetworkConfig::default(),
        gossip: GossipConfig::lan(60),
        preload_descriptors: false,
    };
    let mut w = World::new(&setup, SiteProfile::draw(&mut rng, 0));
    w.warm_start_all(500 * MS);
    // Within the spread every node holds every other as up, without any
    // announce.
    w.run_until(500 * MS);
    assert!(w.nodes.iter().all(|n| n.members_up == 59));
    assert!(w.nodes.iter().all(|n| n.agent.alive_count() == 59));
    assert_eq!(w.coverage().0, 1.0);
    assert_eq!(w.stats.rejoined, 0);
    // Membership is all a warm start installs: the descriptors arrive by
    // gossip, each checked against the roster.
    let held = w.coverage().1;
    assert!(held < 0.5, "descriptors appeared without gossip: {held}");
    let ok = w.run_while(250 * MS, 30 * SEC, |w| w.coverage().1 >= 0.999);
    assert!(ok, "descriptors did not spread: {:?}", w.coverage());
    let c = w.counters();
    assert_eq!((c.rejected_forged, c.dropped_malformed), (0, 0));
}
