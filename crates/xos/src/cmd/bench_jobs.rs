//! `xos bench jobs`: a 4-node grid on loopback and this machine's raw
//! fork+exec rate of /bin/true, measured in the same run so their ratio is
//! the figure that counts, beside the isolation floor (what a unit's
//! namespaces, mounts and cgroups cost with nothing of ours) and the
//! executor alone; then submit-to-start latency on an idle grid,
//! throughput of back-to-back submissions, `xps` and `xos status` latency
//! with that many jobs in the system, and the home's memory per finished
//! job record.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use xtreem_client::{JobsClient, Profile, VoClient};
use xtreem_proto::jobs as jpb;
use xtreem_proto::vo as pb;
use xtreem_testkit::{Grid, NodeSpec, xosd_next_to_current_exe};
use xtreem_util::time::unix_now_millis;

use super::bench_directory::line;

const PASSWORD: &str = "bench password";
const TRIVIAL: &str = "executable = \"/bin/true\"\n[resources]\nmemory = \"16MiB\"\n";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Raw fork+exec+wait of /bin/true, one after another.
fn raw_fork_exec_rate(count: u32) -> anyhow::Result<f64> {
    let started = Instant::now();
    for _ in 0..count {
        let status = Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run /bin/true")?;
        ensure!(status.success(), "/bin/true failed");
    }
    Ok(f64::from(count) / started.elapsed().as_secs_f64())
}

/// [`xtreem_exec::floor`]: what the isolation a unit gets costs by itself
/// on this machine, with none of the executor's or the daemons' work.
/// Returns runs per second and machine CPU per run.
fn isolation_floor(count: u32) -> anyhow::Result<(f64, f64)> {
    let out = tempfile::Builder::new()
        .prefix("xtreem-bench-floor-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    let busy_start = super::bench::machine_busy_ms()?;
    let floor = xtreem_exec::floor::run(count, BENCH_UID, out.path())?;
    let cpu = (super::bench::machine_busy_ms()? - busy_start) / f64::from(count);
    Ok((floor.rate, cpu))
}

/// An unused uid for the supervised launches (as the executor's tests use).
const BENCH_UID: u32 = 61_000;

/// The executor alone, one unit after another, as a resource node runs
/// them: supervisor, PID and mount namespaces, cgroups, output files on
/// disk, removal. Returns units per second and machine CPU per unit, to set
/// beside raw fork+exec: what isolation costs before any daemon work.
/// The executor's `launch_rate` example (`churn`) measures the same loop
/// on its own with a chosen cgroup version; this one runs the daemon's
/// supervisor binary and state directory, in the same run as the grid.
///
/// Also returns the directory of the units' output files, for the caller
/// to remove after the grid's run: on an ext4 without a journal, files
/// deleted in the last minutes make every new inode dearer (the kernel
/// skips recently deleted ones one by one), and the grid creates three per
/// job.
async fn supervised_launches(count: u32) -> anyhow::Result<(f64, f64, tempfile::TempDir)> {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::Builder::new()
        .prefix("xtreem-bench-exec-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    let work = tmp.path().join("work");
    std::fs::create_dir(&work)?;
    std::os::unix::fs::chown(&work, Some(BENCH_UID), Some(BENCH_UID))?;
    let node = format!("bench-exec-{}", std::process::id());
    let state_dir = xtreem_exec::state_dir_for(&node, tmp.path());
    let exec = xtreem_exec::Executor::open(
        state_dir.clone(),
        xtreem_exec::supervisor_command(&xosd_next_to_current_exe()?),
        &xtreem_exec::cgroup_parent_for(&node, tmp.path()),
    )?;
    let run = async {
        let busy_start = super::bench::machine_busy_ms()?;
        let started = Instant::now();
        for k in 0..count {
            let unit = format!("u{k}");
            let spec = xtreem_exec::LaunchSpec {
                unit: unit.clone(),
                argv: vec!["/bin/true".into()],
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                workdir: work.clone(),
                stdin: None,
                stdout: work.join(format!("{unit}.out")),
                stderr: work.join(format!("{unit}.err")),
                uid: BENCH_UID,
                gid: BENCH_UID,
                limits: xtreem_exec::Limits {
                    memory_bytes: 16 << 20,
                    ..Default::default()
                },
                credential: None,
                note: None,
            };
            exec.launch_async(&spec).await?;
            let status = exec.wait(&unit).await?;
            ensure!(
                status.state == xtreem_exec::UnitState::Exited { code: 0 },
                "supervised /bin/true ended {:?}: {:?}",
                status.state,
                status.reason
            );
            exec.remove(&unit)?;
        }
        let rate = f64::from(count) / started.elapsed().as_secs_f64();
        let busy = super::bench::machine_busy_ms()? - busy_start;
        anyhow::Ok((rate, busy / f64::from(count)))
    };
    let result = run.await;
    // A unit left by a failed run goes first, so its cgroup can go too.
    for unit in exec.units().unwrap_or_default() {
        let _ = exec.signal(&unit, nix::libc::SIGKILL);
        let _ = tokio::time::timeout(Duration::from_secs(5), exec.wait(&unit)).await;
        let _ = exec.remove(&unit);
    }
    if let Err(e) = exec.remove_cgroup_parent() {
        eprintln!("# cannot remove the benchmark's cgroups: {e}");
    }
    // On a tmpfs outside `tmp` (as a node's): not removed with it.
    if let Err(e) = std::fs::remove_dir_all(&state_dir) {
        eprintln!("# cannot remove {}: {e}", state_dir.display());
    }
    result.map(|(rate, cpu)| (rate, cpu, tmp))
}

/// Four nodes; `slots` declares the job cores of each (`[jobs] cores`),
/// None for the machine's own.
async fn grid_with_alice(slots: Option<u32>) -> anyhow::Result<(Grid, JobsClient)> {
    let mut grid = Grid::new(xosd_next_to_current_exe()?)?;
    let specs = (1..=4)
        .map(|k| {
            let roles: &[&'static str] = if k == 1 {
                &["core", "resource", "client"]
            } else {
                &["resource", "client"]
            };
            let mut spec = NodeSpec::new(&format!("node-{k}"), roles, grid.next_ip());
            if let Some(n) = slots {
                spec.extra_config = format!("\n[jobs]\ncores = {n}\n");
            }
            spec
        })
        .collect();
    grid.start_site_with("bench", specs).await?;
    let profile = Profile::load(&grid.admin_dir())?;
    let endpoint = grid.node(0).rpc.clone();
    let mut admin = VoClient::connect(&profile, &endpoint, true, None)?;
    admin
        .add_user(pb::AddUserRequest {
            name: "alice".into(),
            password: PASSWORD.into(),
        })
        .await?;
    admin
        .create_vo(pb::CreateVoRequest {
            name: "bench".into(),
            first_admin: "alice".into(),
        })
        .await?;
    admin
        .serve_vo(pb::ServeVoRequest {
            vo: "bench".into(),
            ..Default::default()
        })
        .await?;
    let token = VoClient::connect(&profile, &endpoint, false, None)?
        .login(pb::LoginRequest {
            user: "alice".into(),
            password: PASSWORD.into(),
            vo: "bench".into(),
            ttl_seconds: 3600,
        })
        .await?
        .token;
    // Every node must be in the home's directory, serving the VO.
    let mut dir =
        xtreem_client::DirectoryClient::connect(&profile, &endpoint, false, Some(token.clone()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = dir
            .query(xtreem_proto::directory::QueryRequest {
                query: "state==alive".into(),
                ..Default::default()
            })
            .await?
            .nodes
            .len();
        if seen == 4 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {seen} of 4 nodes serve the VO after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = JobsClient::connect(&profile, &endpoint, false, Some(token))?;
    Ok((grid, client))
}

/// Sequential jobs on an idle grid: from the client's submit to the
/// supervisor starting the process.
async fn submit_to_start(client: &mut JobsClient, count: u32) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    for _ in 0..count {
        let submitted = unix_now_millis();
        let ids = client.submit(TRIVIAL, None, false).await?;
        let id = ids.first().context("no id")?;
        let info = client.wait(id).await?;
        ensure!(
            info.state == "done",
            "job {id} ended {}: {}",
            info.state,
            info.reason
        );
        let started = info.units.first().map_or(0, |u| u.started_unix_ms);
        latencies.push(started.saturating_sub(submitted) as f64);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

/// Jobs of the home that have not ended.
async fn unfinished(client: &mut JobsClient) -> anyhow::Result<usize> {
    Ok(client
        .list(jpb::ListRequest {
            states: vec![
                "queued".into(),
                "running".into(),
                "held".into(),
                "suspended".into(),
            ],
            local: true,
            ..Default::default()
        })
        .await?
        .jobs
        .len())
}

/// Submits `jobs` trivial jobs with `in_flight` outstanding and waits until
/// all have ended; returns their ids, the submit rate and the throughput.
async fn batch(
    client: &JobsClient,
    jobs: u32,
    in_flight: usize,
) -> anyhow::Result<(Vec<String>, f64, f64)> {
    let mut client = client.clone();
    let started = Instant::now();
    let mut submitted = 0u32;
    let mut ids = Vec::with_capacity(jobs as usize);
    let mut pending = tokio::task::JoinSet::new();
    while submitted < jobs || !pending.is_empty() {
        while submitted < jobs && pending.len() < in_flight {
            let mut c = client.clone();
            pending.spawn(async move { c.submit(TRIVIAL, None, false).await });
            submitted += 1;
        }
        if let Some(done) = pending.join_next().await {
            ids.extend(done??);
        }
    }
    let submit_rate = f64::from(jobs) / started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(1800);
    // Jobs of one priority start in submission order, so when the last one
    // has ended nearly all have. Waiting on it is one long poll; listing
    // every unfinished job four times a second meanwhile would cost the
    // home thousands of records per listing, counted against the grid.
    if let Some(last) = ids.last() {
        tokio::time::timeout(Duration::from_secs(1800), client.wait(last))
            .await
            .context("the last job did not end within 30 minutes")??;
    }
    loop {
        let left = unfinished(&mut client).await?;
        if left == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{left} jobs still unfinished after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok((
        ids,
        submit_rate,
        f64::from(jobs) / started.elapsed().as_secs_f64(),
    ))
}

pub async fn run(
    jobs: u32,
    in_flight: usize,
    latency_samples: u32,
    slots: Option<u32>,
) -> anyhow::Result<()> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "xos bench jobs runs real jobs under mapped accounts in cgroups: run it as root"
    );
    let busy_start = super::bench::machine_busy_ms()?;
    let raw = raw_fork_exec_rate(2_000)?;
    let raw_cpu = (super::bench::machine_busy_ms()? - busy_start) / 2_000.0;
    line("raw fork+exec of /bin/true", raw, "per s");
    line("raw fork+exec machine CPU per run", raw_cpu, "ms");
    // A reference only: the grid's figures do not need it.
    match isolation_floor(1_000) {
        Ok((floor, floor_cpu)) => {
            line(
                "isolation floor (namespaces, mounts, cgroup joins, files, uid; nothing of ours)",
                floor,
                "per s",
            );
            line("isolation floor machine CPU per run", floor_cpu, "ms");
        }
        Err(e) => println!("# isolation floor not measured: {e:#}"),
    }
    let (supervised, supervised_cpu, supervised_outputs) = supervised_launches(1_000).await?;
    line(
        "supervised launch of /bin/true, executor alone, one at a time",
        supervised,
        "per s",
    );
    line(
        "supervised launch machine CPU per unit (executor alone)",
        supervised_cpu,
        "ms",
    );

    let (grid, mut client) = grid_with_alice(slots).await?;
    let home_pid = grid.node(0).pid().context("home pid")?;
    line(
        "job cores per node",
        f64::from(slots.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
        })),
        "cores",
    );

    let latencies = submit_to_start(&mut client, latency_samples).await?;
    line(
        "submit-to-start p50 (idle grid)",
        percentile(&latencies, 0.5),
        "ms",
    );
    line(
        "submit-to-start p99 (idle grid)",
        percentile(&latencies, 0.99),
        "ms",
    );

    // Two batches: the first also grows the daemon's allocator to its peak
    // (thousands of jobs in flight); growth over the second is what
    // finished records keep.
    let daemon_pids = (0..4)
        .map(|k| grid.node(k).pid().context("daemon pid"))
        .collect::<anyhow::Result<Vec<u32>>>()?;
    let daemons_cpu_ms = || -> anyhow::Result<f64> {
        daemon_pids
            .iter()
            .map(|&pid| super::bench::process_cpu_ms(pid))
            .sum()
    };
    let rss_start = super::bench::rss_kib(home_pid)?;
    let busy_start = super::bench::machine_busy_ms()?;
    let daemons_start = daemons_cpu_ms()?;
    let (mut ids, submit_rate, throughput) = batch(&client, jobs, in_flight).await?;
    let busy = super::bench::machine_busy_ms()? - busy_start;
    let daemons = daemons_cpu_ms()? - daemons_start;
    let rss_first = super::bench::rss_kib(home_pid)?;
    line("submissions acknowledged", submit_rate, "per s");
    line("jobs run to completion", throughput, "per s");
    line("throughput / raw fork+exec", 100.0 * throughput / raw, "%");
    // The cost per job, all processes together (daemons, supervisors, jobs,
    // this client): steadier than the rate when the machine's speed varies.
    line(
        "machine CPU per job, first batch (all processes)",
        busy / f64::from(jobs),
        "ms",
    );
    // Of that, the four daemons' own threads (RPC, placement, store); the
    // rest is supervisors, jobs, this client and the kernel's threads.
    line(
        "daemon CPU per job, first batch (4 xosd, all threads)",
        daemons / f64::from(jobs),
        "ms",
    );
    let (more, _, throughput2) = batch(&client, jobs, in_flight).await?;
    ids.extend(more);
    let rss_second = super::bench::rss_kib(home_pid)?;
    line("jobs run to completion, second batch", throughput2, "per s");
    line(
        "home daemon memory growth per job, first batch (includes the in-flight peak)",
        rss_first.saturating_sub(rss_start) as f64 * 1024.0 / f64::from(jobs),
        "bytes",
    );
    line(
        "home daemon memory per finished job record (growth over the second batch)",
        rss_second.saturating_sub(rss_first) as f64 * 1024.0 / f64::from(jobs),
        "bytes",
    );
    let failed = client
        .list(jpb::ListRequest {
            states: vec!["failed".into(), "cancelled".into()],
            local: true,
            ..Default::default()
        })
        .await?
        .jobs;
    ensure!(
        failed.is_empty(),
        "{} jobs failed, first: {:?}",
        failed.len(),
        failed.first().map(|j| &j.reason)
    );

    let mut xps = Vec::new();
    let mut listed = 0;
    for _ in 0..5 {
        let t = Instant::now();
        listed = client.list(jpb::ListRequest::default()).await?.jobs.len();
        xps.push(t.elapsed().as_secs_f64() * 1e3);
    }
    xps.sort_by(f64::total_cmp);
    line("jobs listed by xps", listed as f64, "jobs");
    line(
        "xps with all jobs listed, median of 5",
        percentile(&xps, 0.5),
        "ms",
    );

    let mut status = Vec::new();
    let (mut placements, mut refusals) = (0u32, 0u32);
    for k in 0..1000usize {
        let id = &ids[(k * 7919) % ids.len()];
        let t = Instant::now();
        let info = client.status(id).await?;
        status.push(t.elapsed().as_secs_f64() * 1e3);
        for e in &info.events {
            if let Some(k) = refused_before_placement(&e.text) {
                placements += 1;
                refusals += k;
            }
        }
    }
    status.sort_by(f64::total_cmp);
    line("status of one job p50", percentile(&status, 0.5), "ms");
    line("status of one job p99", percentile(&status, 0.99), "ms");
    // Nodes that said no before one took the job: each no is a Launch
    // round trip both ends pay for nothing.
    line(
        "launch refusals before a node took the job (status sample)",
        f64::from(refusals) / f64::from(placements.max(1)),
        "per placement",
    );
    drop(grid);
    drop(supervised_outputs);
    Ok(())
}

/// How many candidates refused a job before the one that took it, from
/// its timeline's placement event (`placed on N (candidate K of M...)`).
fn refused_before_placement(event: &str) -> Option<u32> {
    let rest = event.strip_prefix("placed on ")?;
    let (_, after) = rest.split_once("(candidate ")?;
    let (k, _) = after.split_once(" of ")?;
    k.parse::<u32>().ok().map(|k| k.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::refused_before_placement;

    #[test]
    fn refusals_are_read_from_the_placement_event() {
        assert_eq!(
            refused_before_placement("placed on node-2 (candidate 1 of 4)"),
            Some(0)
        );
        assert_eq!(
            refused_before_placement(
                "placed on node-3 (candidate 3 of 4; refused by node-1: busy; node-2: busy)"
            ),
            Some(2)
        );
        assert_eq!(refused_before_placement("submitted by alice"), None);
    }
}
