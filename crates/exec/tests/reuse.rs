//! cgroup v1 reuse: `remove` parks an ended unit's cgroups as `_idle-K`
//! and the next unit takes them. What a unit sees must not depend on
//! whether its cgroup is new or reused: usage, OOM kills, limits.
//! Every test needs root and cgroup v1, and says so when skipped.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Fixture, cgroup_dir_exists};
use xtreem_exec::{CgroupVersion, LimitExceeded, Limits, UnitState};

const WAIT: Duration = Duration::from_secs(10);

/// The v1 fixture, or `None` (the test is skipped) without cgroup v1.
fn v1_fixture(name: &str) -> Option<Fixture> {
    if xtreem_exec::detect_cgroups("xtreem-probe", Some(CgroupVersion::V1)).is_err() {
        eprintln!("SKIPPED: cgroup reuse is a v1 feature and this host has no v1 hierarchies");
        return None;
    }
    Some(Fixture::with_version(name, Some(CgroupVersion::V1)))
}

/// `<mount>/<parent>` of every v1 hierarchy we use, in the backend's order.
fn parent_dirs(fx: &Fixture) -> Vec<PathBuf> {
    let config = xtreem_exec::detect_cgroups(&fx.parent, Some(CgroupVersion::V1)).unwrap();
    config.v1.iter().map(|h| h.mount.join(&fx.parent)).collect()
}

/// `<mount>/<parent>` of the v1 hierarchy holding `controller`.
fn parent_dir(fx: &Fixture, controller: &str) -> PathBuf {
    let config = xtreem_exec::detect_cgroups(&fx.parent, Some(CgroupVersion::V1)).unwrap();
    let h = config
        .v1
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == controller))
        .unwrap_or_else(|| panic!("no {controller} hierarchy"));
    h.mount.join(&fx.parent)
}

/// The sub-cgroups of `dir`.
fn subdirs(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect()
}

fn idle(fx: &Fixture) -> usize {
    subdirs(&parent_dir(fx, "memory"))
        .iter()
        .filter(|n| n.starts_with("_idle-"))
        .count()
}

fn read(fx: &Fixture, controller: &str, cgroup: &str, file: &str) -> String {
    std::fs::read_to_string(parent_dir(fx, controller).join(cgroup).join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// Runs a unit to its end and removes it; returns its final status.
fn run_and_remove(
    fx: &Fixture,
    unit: &str,
    argv: &[&str],
    limits: Limits,
) -> xtreem_exec::UnitStatus {
    let mut spec = fx.spec(unit, argv);
    spec.limits = limits;
    fx.exec.launch(&spec).unwrap();
    let end = fx.wait(unit, WAIT);
    fx.exec.remove(unit).unwrap();
    end
}

fn has_perl() -> bool {
    if PathBuf::from("/usr/bin/perl").exists() {
        return true;
    }
    eprintln!("SKIPPED: needs /usr/bin/perl to allocate memory");
    false
}

#[test]
fn a_reused_cgroup_counts_only_its_own_usage() {
    require_root!();
    let Some(fx) = v1_fixture("reuse-usage") else {
        return;
    };
    let busy = run_and_remove(
        &fx,
        "busy",
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done",
        ],
        Limits::default(),
    );
    assert_eq!(busy.state, UnitState::Exited { code: 0 }, "{busy:?}");
    assert!(
        busy.usage.cpu_ns > 100_000_000,
        "the first unit must burn CPU for this test to mean anything: {:?}",
        busy.usage
    );
    assert_eq!(idle(&fx), 1, "the ended unit's cgroup is kept");
    assert!(!cgroup_dir_exists("memory", &fx.parent, "busy"));

    fx.exec.launch(&fx.spec("light", &["/bin/true"])).unwrap();
    assert_eq!(idle(&fx), 0, "the next unit takes the idle cgroup");
    let light = fx.wait("light", WAIT);
    assert_eq!(light.state, UnitState::Exited { code: 0 }, "{light:?}");
    assert!(
        light.usage.cpu_ns < 100_000_000,
        "the reused cgroup still counts the previous unit's CPU: {:?} (previous {:?})",
        light.usage,
        busy.usage
    );
    assert_eq!(fx.exec.usage("light").unwrap().cpu_ns, light.usage.cpu_ns);

    // Decommissioning removes the idle cgroups with the subtree.
    fx.exec.remove("light").unwrap();
    assert_eq!(idle(&fx), 1);
    fx.exec.remove_cgroup_parent().unwrap();
    for dir in parent_dirs(&fx) {
        assert!(!dir.exists(), "{}", dir.display());
    }
}

#[test]
fn an_oom_kill_does_not_follow_the_cgroup() {
    require_root!();
    if !has_perl() {
        return;
    }
    let Some(fx) = v1_fixture("reuse-oom") else {
        return;
    };
    let oom = run_and_remove(
        &fx,
        "oom",
        &["/usr/bin/perl", "-e", "my $x = 'a' x (200 * 1024 * 1024);"],
        Limits {
            memory_bytes: 32 << 20,
            ..Limits::default()
        },
    );
    assert_eq!(oom.limit_exceeded, Some(LimitExceeded::Memory), "{oom:?}");
    assert_eq!(idle(&fx), 1);

    fx.exec
        .launch(&fx.spec("after", &["sh", "-c", "exit 0"]))
        .unwrap();
    assert_eq!(idle(&fx), 0, "the OOM-killed unit's cgroup is reused");
    let after = fx.wait("after", WAIT);
    assert_eq!(after.state, UnitState::Exited { code: 0 });
    assert_eq!(after.limit_exceeded, None, "{after:?}");
    assert_eq!(after.reason, None, "{after:?}");
}

#[test]
fn a_smaller_memory_limit_does_not_follow_the_cgroup() {
    require_root!();
    if !has_perl() {
        return;
    }
    let Some(fx) = v1_fixture("reuse-mem") else {
        return;
    };
    let alloc = ["/usr/bin/perl", "-e", "$x = 'a' x (64 * 1024 * 1024)"];
    let small = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    // A larger limit, then none, each time on the cgroup of a unit that
    // had 16 MiB.
    for (unit, limits) in [
        (
            "larger",
            Limits {
                memory_bytes: 256 << 20,
                ..Limits::default()
            },
        ),
        ("unlimited", Limits::default()),
    ] {
        let small_unit = format!("small-{unit}");
        let end = run_and_remove(&fx, &small_unit, &["true"], small.clone());
        assert_eq!(end.state, UnitState::Exited { code: 0 }, "{end:?}");
        assert_eq!(idle(&fx), 1);
        let mut spec = fx.spec(unit, &alloc);
        spec.limits = limits;
        let st = fx.exec.launch(&spec).unwrap();
        assert_eq!(st.reason, None, "{st:?}");
        assert_eq!(idle(&fx), 0, "{unit} reuses the 16 MiB unit's cgroup");
        let end = fx.wait(unit, WAIT);
        assert_eq!(
            end.state,
            UnitState::Exited { code: 0 },
            "{unit}: {end:?} {}",
            fx.stderr(unit)
        );
        assert_eq!(end.limit_exceeded, None, "{unit}: {end:?}");
        assert!(
            end.usage.peak_memory_bytes > 16 << 20,
            "{unit}: {:?}",
            end.usage
        );
        fx.exec.remove(unit).unwrap();
    }
}

#[test]
fn limits_do_not_follow_the_cgroup() {
    require_root!();
    let Some(fx) = v1_fixture("reuse-limits") else {
        return;
    };
    let end = run_and_remove(
        &fx,
        "limited",
        &["true"],
        Limits {
            cores: 1,
            memory_bytes: 64 << 20,
            pids: 7,
            walltime: None,
        },
    );
    assert_eq!(end.state, UnitState::Exited { code: 0 }, "{end:?}");
    assert_eq!(idle(&fx), 1);
    let mut spec = fx.spec("free", &["sleep", "30"]);
    spec.limits.pids = 0;
    fx.exec.launch(&spec).unwrap();
    assert_eq!(idle(&fx), 0, "free reuses the limited unit's cgroup");
    assert_eq!(read(&fx, "cpu", "free", "cpu.cfs_quota_us"), "-1");
    assert_eq!(read(&fx, "pids", "free", "pids.max"), "max");
    // Unlimited as the never limited supervisors' cgroup.
    let unlimited = read(&fx, "memory", "_supervisors", "memory.limit_in_bytes");
    assert_eq!(
        read(&fx, "memory", "free", "memory.limit_in_bytes"),
        unlimited
    );
    if parent_dir(&fx, "memory")
        .join("free/memory.memsw.limit_in_bytes")
        .exists()
    {
        assert_eq!(
            read(&fx, "memory", "free", "memory.memsw.limit_in_bytes"),
            read(&fx, "memory", "_supervisors", "memory.memsw.limit_in_bytes")
        );
    }
    fx.exec.signal("free", libc::SIGKILL).unwrap();
    fx.wait("free", WAIT);
}

#[test]
fn a_unit_with_the_same_limits_has_them_on_a_reused_cgroup() {
    require_root!();
    let Some(fx) = v1_fixture("reuse-same-limits") else {
        return;
    };
    let limits = Limits {
        cores: 1,
        memory_bytes: 64 << 20,
        pids: 7,
        walltime: None,
    };
    let end = run_and_remove(&fx, "first", &["true"], limits.clone());
    assert_eq!(end.state, UnitState::Exited { code: 0 }, "{end:?}");
    assert_eq!(idle(&fx), 1);
    // The executor hands the parked cgroup to the next supervisor, which
    // writes no limit that is already right: they must still be there.
    let mut spec = fx.spec("second", &["sleep", "30"]);
    spec.limits = limits;
    fx.exec.launch(&spec).unwrap();
    assert_eq!(idle(&fx), 0, "second reuses first's cgroup");
    let period: u64 = read(&fx, "cpu", "second", "cpu.cfs_period_us")
        .parse()
        .unwrap();
    assert_eq!(
        read(&fx, "cpu", "second", "cpu.cfs_quota_us"),
        period.to_string()
    );
    assert_eq!(read(&fx, "pids", "second", "pids.max"), "7");
    assert_eq!(
        read(&fx, "memory", "second", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    fx.exec.signal("second", libc::SIGKILL).unwrap();
    fx.wait("second", WAIT);
}

#[test]
fn concurrent_reuse_keeps_the_hierarchies_consistent() {
    require_root!();
    let Some(fx) = v1_fixture("reuse-many") else {
        return;
    };
    std::thread::scope(|s| {
        for t in 0..4 {
            let fx = &fx;
            s.spawn(move || {
                for i in 0..8 {
                    let unit = format!("c{t}-{i}");
                    let end = run_and_remove(fx, &unit, &["true"], Limits::default());
                    assert_eq!(end.state, UnitState::Exited { code: 0 }, "{end:?}");
                }
            });
        }
    });
    let idle_cgroups = subdirs(&parent_dir(&fx, "memory"));
    assert!(
        (1..=4).contains(&idle(&fx)),
        "at most one idle cgroup per thread: {idle_cgroups:?}"
    );
    assert!(
        idle_cgroups
            .iter()
            .all(|n| n.starts_with("_idle-") || n == "_supervisors"),
        "{idle_cgroups:?}"
    );
    for dir in parent_dirs(&fx) {
        assert_eq!(subdirs(&dir), idle_cgroups, "{}", dir.display());
    }
}
