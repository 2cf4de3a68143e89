//! Measures the executor's per-unit overhead: launches N `/bin/true` units
//! back to back and prints the launch rate and the launch (submit-to-start)
//! latency percentiles, next to the raw fork+exec rate of `/bin/true` on
//! the same machine. Needs root.
//!
//! `cargo run --release -p xtreem-exec --example launch_rate -- [N] [v1|v2] [churn|churn-only]`
//!
//! With `churn`, it then also runs N units one at a time (launch, wait,
//! remove), the pattern where a v1 unit takes the cgroup the previous one
//! left idle; `churn-only` runs nothing else (to profile that loop).
//!
//! The example is its own supervisor (`launch_rate supervise DIR`), as
//! `xosd supervise DIR` is in the daemon.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use xtreem_exec::{CgroupVersion, Executor, LaunchSpec, Limits};

const UID: u32 = 61_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "supervise") {
        let Some(dir) = args.get(2) else {
            return Err("usage: launch_rate supervise DIR".into());
        };
        xtreem_exec::supervise(Path::new(dir));
    }
    // SAFETY: geteuid has no side effects.
    if unsafe { libc::geteuid() } != 0 {
        return Err("launch_rate needs root (cgroups, namespaces, setuid)".into());
    }
    let n: usize = args
        .get(1)
        .and_then(|a| a.to_str())
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let version = match args.get(2).and_then(|a| a.to_str()) {
        Some("v1") => Some(CgroupVersion::V1),
        Some("v2") => Some(CgroupVersion::V2),
        _ => None,
    };
    let churn_only = args.get(3).is_some_and(|a| a == "churn-only");
    let churn = churn_only || args.get(3).is_some_and(|a| a == "churn");
    // Only the one-at-a-time loop (for profiling it): no other phase runs.
    let phase = |n: usize| if churn_only { 0 } else { n };

    // Raw fork+exec of /bin/true, the floor.
    let busy = xtreem_exec::floor::machine_busy_ms()?;
    let t = Instant::now();
    for _ in 0..phase(n) {
        Command::new("/bin/true").status()?;
    }
    let raw = t.elapsed();
    let raw_cpu = (xtreem_exec::floor::machine_busy_ms()? - busy) / n as f64;
    let raw_rate = n as f64 / raw.as_secs_f64();
    let floor_out = tempfile::Builder::new().prefix("floor-").tempdir()?;
    let busy = xtreem_exec::floor::machine_busy_ms()?;
    let floor = xtreem_exec::floor::run(phase(n).max(1) as u32, UID, floor_out.path())?;
    let floor_cpu = (xtreem_exec::floor::machine_busy_ms()? - busy) / n as f64;

    let tmp = tempfile::Builder::new().prefix("launch-rate-").tempdir()?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    let work = tmp.path().join("work");
    std::fs::create_dir(&work)?;
    std::os::unix::fs::chown(&work, Some(UID), Some(UID))?;
    let me = std::env::current_exe()?;
    let parent = format!("xtreem-launch-rate-{}", std::process::id());
    let exec = Executor::open_with(
        tmp.path().join("units"),
        vec![me.into_os_string(), "supervise".into()],
        &parent,
        version,
    )?;

    let spec = |unit: &str| LaunchSpec {
        unit: unit.to_string(),
        argv: vec!["/bin/true".into()],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        workdir: work.clone(),
        stdin: None,
        stdout: work.join("out"),
        stderr: work.join("err"),
        uid: UID,
        gid: UID,
        limits: Limits {
            cores: 1,
            memory_bytes: 256 << 20,
            pids: 64,
            walltime: Some(Duration::from_secs(60)),
        },
        credential: None,
        note: None,
    };
    let mut latencies = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..phase(n) {
        let unit = format!("lr-{i}");
        let spec = spec(&unit);
        let t0 = Instant::now();
        let status = exec.launch(&spec)?;
        latencies.push(t0.elapsed());
        if status.reason.is_some() {
            return Err(format!("{unit}: {status:?}").into());
        }
    }
    let launched = t.elapsed();

    // Let them end and clean up (not part of the launch figures).
    let t = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for i in 0..phase(n) {
        let unit = format!("lr-{i}");
        let status = rt.block_on(exec.wait(&unit))?;
        if status.state != (xtreem_exec::UnitState::Exited { code: 0 }) {
            return Err(format!("{unit} ended {status:?}").into());
        }
        exec.remove(&unit)?;
    }
    let drained = t.elapsed();

    let mut churned = Duration::ZERO;
    let mut churn_cpu = 0.0;
    if churn {
        let busy = xtreem_exec::floor::machine_busy_ms()?;
        let t = Instant::now();
        for i in 0..n {
            let unit = format!("ch-{i}");
            let status = exec.launch(&spec(&unit))?;
            if status.reason.is_some() {
                return Err(format!("{unit}: {status:?}").into());
            }
            let status = rt.block_on(exec.wait(&unit))?;
            if status.state != (xtreem_exec::UnitState::Exited { code: 0 }) {
                return Err(format!("{unit} ended {status:?}").into());
            }
            exec.remove(&unit)?;
        }
        churned = t.elapsed();
        churn_cpu = (xtreem_exec::floor::machine_busy_ms()? - busy) / n as f64;
    }
    for _ in 0..200 {
        if exec.remove_cgroup_parent().is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    latencies.sort();
    let rate = n as f64 / launched.as_secs_f64();
    println!("cgroup {:?}, {n} units", exec.cgroup_version());
    if !churn_only {
        println!(
            "raw fork+exec of /bin/true: {raw_rate:.0}/s, machine CPU {raw_cpu:.3} ms per run"
        );
        println!(
            "isolation floor (cgroup {:?}): {:.0}/s, machine CPU {floor_cpu:.3} ms per run",
            floor.version, floor.rate
        );
        println!(
            "launch rate: {rate:.0} units/s ({:.1}x the raw fork+exec time per unit)",
            raw_rate / rate
        );
        println!(
            "launch latency (submit to started): p50 {}  p99 {}  max {}",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(percentile(&latencies, 1.0))
        );
        println!(
            "wait + remove of all units afterwards: {} ({} per unit)",
            ms(drained),
            ms(drained / n as u32)
        );
    }
    if churn {
        println!(
            "one at a time (launch, wait, remove): {:.0} units/s ({} per unit), machine CPU {churn_cpu:.3} ms per unit",
            n as f64 / churned.as_secs_f64(),
            ms(churned / n as u32)
        );
    }
    Ok(())
}
