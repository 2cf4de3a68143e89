//! Tests of site summaries: aggregation, pruning and the wire form.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;
use crate::descriptor::{DynamicSample, ServiceEntry, StaticDescriptor};

fn add(dir: &mut Directory, name: &str, cores: u32, arch: &str, tags: &[&str], alive: bool) {
    let mut d = StaticDescriptor::example(name, "site-a");
    d.cores = cores;
    d.memory_bytes = u64::from(cores) << 30;
    d.arch = arch.into();
    d.tags = tags.iter().map(|t| t.to_string()).collect();
    d.vos.insert("physics".into());
    d.labels.insert("rack".into(), "r1".into());
    d.services.push(ServiceEntry {
        kind: "vo".into(),
        address: "h:1".into(),
        healthy: true,
    });
    d.services.push(ServiceEntry {
        kind: "osd".into(),
        address: "h:2".into(),
        healthy: false,
    });
    dir.upsert_static(Arc::new(d));
    dir.set_alive(name, alive);
}

fn sample(free_cores: f32, load: f32) -> DynamicSample {
    DynamicSample {
        seq: 1,
        sampled_unix_ms: 0,
        free_cores,
        free_memory_bytes: 1 << 30,
        load,
        running_jobs: 0,
        free_disk_bytes: 0,
    }
}

/// Site-a: 4 and 16 core x86_64 nodes alive (one with a gpu), a dead
/// 64-core arm64 node, and a node of another site.
fn site() -> SiteSummary {
    let mut dir = Directory::new();
    add(&mut dir, "n1", 4, "x86_64", &[], true);
    add(&mut dir, "n2", 16, "x86_64", &["gpu"], true);
    add(&mut dir, "n3", 64, "arm64", &["fpga"], false);
    let other = StaticDescriptor::example("m1", "site-b");
    dir.upsert_static(Arc::new(other));
    dir.upsert_dynamic("n1", sample(2.0, 0.5));
    dir.upsert_dynamic("n2", sample(8.0, 3.0));
    SiteSummary::of("site-a", &dir, 1_700_000_000)
}

fn may(s: &SiteSummary, q: &str) -> bool {
    s.may_match(&Query::parse(q).unwrap())
}

#[test]
fn aggregates_over_alive_nodes_of_the_site() {
    let s = site();
    assert_eq!((s.nodes_total, s.nodes_alive), (3, 2));
    assert_eq!(s.generated_unix, 1_700_000_000);
    assert_eq!(s.cores, Some((4, 16)));
    assert_eq!(s.memory_bytes, Some((4 << 30, 16 << 30)));
    assert_eq!(s.max_free_cores, Some(8.0));
    assert_eq!(s.max_free_memory_bytes, Some(1 << 30));
    assert_eq!(s.min_load, Some(0.5));
    assert_eq!(s.archs, BTreeSet::from(["x86_64".to_owned()]));
    assert_eq!(s.tags, BTreeSet::from(["gpu".to_owned()]));
    assert_eq!(s.label_keys, BTreeSet::from(["rack".to_owned()]));
    assert_eq!(s.roles, BTreeSet::from(["resource".to_owned()]));
    assert_eq!(
        s.service_kinds,
        BTreeSet::from(["vo".to_owned()]),
        "unhealthy osd left out"
    );
}

#[test]
fn an_empty_site_has_no_ranges_and_matches_nothing() {
    let s = SiteSummary::of("site-z", &Directory::new(), 0);
    assert_eq!((s.nodes_total, s.cores, s.max_free_cores), (0, None, None));
    assert!(!may(&s, ""));
}

#[test]
fn prunes_what_the_summary_rules_out() {
    let s = site();
    for q in [
        "cores>=64",
        "cores<4",
        "cores==8 && cores>100",
        "mem>1TiB",
        "arch==arm64",
        "arch in [arm64, riscv64]",
        "tag:fpga",
        "site in [site-b, site-c]",
        "site==site-b",
        "vo:chemistry",
        "service:osd",
        "role:core",
        "label:zone",
        "free_cores>8",
        "load<0.5",
        "state==dead",
        "tag:gpu && arch==arm64",
        "(cores>100 || tag:tpu) && tag:gpu",
        "!(site==site-a)",
        "!(cores>=4)",
        "cores in [3, 64]",
    ] {
        assert!(!may(&s, q), "{q} should be pruned");
    }
}

#[test]
fn keeps_whatever_the_summary_cannot_rule_out() {
    let s = site();
    for q in [
        "",
        "cores>=16",
        "cores>=4 && mem>=8GiB && arch==x86_64 && site in [site-a, x] && tag:gpu sort -load limit 5",
        "arch!=arm64",
        "tag:gpu || tag:fpga",
        "vo:physics && service:vo && role:resource",
        "label:rack==r2",
        "free_cores>=8",
        "load<=0.5",
        "load>1000",
        "jobs>5",
        "free_disk>1TiB",
        "kernel==7.0 && name==zzz",
        "!tag:gpu",
        "!(cores>=16)",
        "!(arch==arm64)",
        "cores!=4",
        "state==alive",
        "os==\"Linux\"",
        "cores in [8, 16]",
    ] {
        assert!(may(&s, q), "{q} should be kept");
    }
}

#[test]
fn overflowing_sets_keep_everything_possible() {
    let mut dir = Directory::new();
    for i in 0..100 {
        let mut d = StaticDescriptor::example(&format!("n{i}"), "site-a");
        d.tags.insert(format!("t{i}"));
        d.vos.insert(format!("vo{i}"));
        dir.upsert_static(Arc::new(d));
    }
    let s = SiteSummary::of("site-a", &dir, 0);
    assert_eq!(s.tags.len(), SUMMARY_SET_ENTRIES_MAX);
    assert!(s.tags.contains(""));
    assert!(may(&s, "tag:t99 && tag:whatever"));
    assert!(s.serves_any(&BTreeSet::from(["vo99".to_owned()])));
    assert!(s.encode().len() < MAX_SITE_SUMMARY_BYTES);
}

#[test]
fn serves_any_checks_the_vo_sets_overlap() {
    let s = site();
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert!(s.serves_any(&set(&["chemistry", "physics"])));
    assert!(!s.serves_any(&set(&["chemistry"])));
    assert!(!s.serves_any(&set(&[])));
}

#[test]
fn round_trips_and_refuses_bad_input() {
    let s = site();
    assert_eq!(SiteSummary::decode(&s.encode()).unwrap(), s);

    let too_big = vec![0u8; MAX_SITE_SUMMARY_BYTES + 1];
    assert!(matches!(
        SiteSummary::decode(&too_big),
        Err(DescriptorError::TooLarge { .. })
    ));
    assert!(matches!(
        SiteSummary::decode(&[1, 2, 3]),
        Err(DescriptorError::Decode { .. })
    ));
    let bad_site = SiteSummary {
        site: "Site A".into(),
        ..s.clone()
    };
    assert!(matches!(
        SiteSummary::decode(&bad_site.encode()),
        Err(DescriptorError::Invalid { field: "site", .. })
    ));
    let nan = SiteSummary {
        min_load: Some(f32::NAN),
        ..s.clone()
    };
    assert!(matches!(
        SiteSummary::decode(&nan.encode()),
        Err(DescriptorError::Invalid {
            field: "min_load",
            ..
        })
    ));
    let inverted = SiteSummary {
        cores: Some((16, 4)),
        ..s.clone()
    };
    assert!(SiteSummary::decode(&inverted.encode()).is_err());
    let more_alive = SiteSummary {
        nodes_alive: 9,
        ..s
    };
    assert!(SiteSummary::decode(&more_alive.encode()).is_err());
}
