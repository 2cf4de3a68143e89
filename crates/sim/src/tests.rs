use crate::scenarios::{SiteOptions, SiteScenario};
use crate::world::World;

#[test]
#[ignore]
fn debug_warmup() {
    let s = SiteScenario {
        nodes: 200,
        ..SiteScenario::default()
    };
    let o = SiteOptions::for_scenario(&s);
    let mut rng = <rand010::rngs::SmallRng as rand010::SeedableRng>::seed_from_u64(1);
    let profile = crate::descriptors::SiteProfile::draw(&mut rng, 0);
    let setup = crate::world::SiteSetup {
        nodes: 200,
        replicas: 3,
        seed: 1,
        network: o.network.clone(),
        gossip: xtreem_gossip::GossipConfig::lan(200),
        preload_descriptors: false,
    };
    let mut w = World::new(&setup, profile);
    w.start_all(50, 100_000);
    for t in [5u64, 10, 20, 40, 80] {
        w.run_until(t * 1_000_000);
        let ups: Vec<u32> = w.nodes.iter().map(|n| n.members_up).collect();
        let known: Vec<u32> = w.nodes.iter().map(|n| n.view.borrow().known()).collect();
        let alive: Vec<usize> = w.nodes.iter().map(|n| n.agent.alive_count()).collect();
        eprintln!(
            "t={t} ups min {:?} max {:?} known min {:?} alive_count min {:?} max {:?}",
            ups.iter().min(),
            ups.iter().max(),
            known.iter().min(),
            alive.iter().min(),
            alive.iter().max()
        );
        let worst = (0..200usize)
            .min_by_key(|&i| w.nodes[i].view.borrow().known())
            .unwrap();
        eprintln!("worst {worst}");
        let v = w.nodes[worst].view.borrow();
        let missing: Vec<u32> = (0..200).filter(|&i| v.version_of(i) == 0).collect();
        eprintln!("node5 missing {missing:?}; counters {:?}", w.counters());
    }
}
