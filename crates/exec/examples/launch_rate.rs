//! Measures the executor's per-unit overhead: launches N `/bin/true` units
//! back to back and prints the launch rate and the launch (submit-to-start)
//! latency percentiles, next to the raw fork+exec rate of `/bin/true` on
//! the same machine. Needs root.
//!
//! `cargo run --release -p xtreem-exec --example launch_rate -- [N] [v1|v2] [churn]`
//!
//! With `churn`, it then also runs N units one at a time (launch, wait,
//! remove), the pattern where a v1 unit takes the cgroup the previous one
//! left idle.
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

/// The least the isolation a unit gets can cost, with nothing of ours:
/// a child in new PID and mount namespaces (as the supervisor), which
/// mounts a private `/tmp` and `/proc`, joins one cgroup per v1 hierarchy
/// (or the v2 one), opens two output files, and vforks a grandchild that
/// takes a pool uid and execs `/bin/true`; the parent waits. No state
/// files, limits, usage or reuse: what is above this in the executor's own
/// figure is the executor's doing.
struct Floor {
    what: &'static str,
    rate: f64,
    cpu_ms: f64,
}

fn isolation_floor(n: usize) -> Result<Floor, Box<dyn std::error::Error>> {
    use std::ffi::CString;
    let base = Path::new("/sys/fs/cgroup");
    let v1 = base.join("freezer").is_dir();
    let hierarchies: Vec<&str> = if v1 {
        vec!["cpu,cpuacct", "memory", "pids", "freezer", "blkio"]
    } else {
        vec![""]
    };
    let name = format!("xtreem-floor-{}", std::process::id());
    let mut dirs = Vec::new();
    for h in &hierarchies {
        let dir = base.join(h).join(&name);
        if base.join(h).is_dir() {
            std::fs::create_dir(&dir)?;
            dirs.push(dir);
        }
    }
    let tasks: Vec<CString> = dirs
        .iter()
        .map(|d| CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()))
        .collect::<Result<_, _>>()?;
    let out_dir = tempfile::Builder::new().prefix("floor-").tempdir()?;
    let out = CString::new(
        out_dir
            .path()
            .join("out")
            .into_os_string()
            .into_encoded_bytes(),
    )?;
    let err = CString::new(
        out_dir
            .path()
            .join("err")
            .into_os_string()
            .into_encoded_bytes(),
    )?;
    let exec = FloorExec {
        argv: [c"/bin/true".as_ptr(), std::ptr::null()],
        envp: [c"PATH=/usr/bin:/bin".as_ptr(), std::ptr::null()],
    };
    let mut stack = vec![0u8; 64 * 1024];
    let busy = machine_busy_ms()?;
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: this process is single-threaded here; the child only
        // makes system calls on data prepared before the clone, then exits.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::SIGCHLD,
                0,
                0,
                0,
                0,
            )
        };
        if pid == 0 {
            // SAFETY: as above (the child of the clone).
            unsafe { floor_child(&tasks, &out, &err, &exec, &mut stack) };
        }
        if pid < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            return Err(format!("isolation floor: the child ended with status {status:#x}").into());
        }
    }
    let elapsed = t.elapsed();
    let cpu_ms = (machine_busy_ms()? - busy) / n as f64;
    for dir in dirs {
        std::fs::remove_dir(&dir)?;
    }
    Ok(Floor {
        what: if v1 { "v1" } else { "v2" },
        rate: n as f64 / elapsed.as_secs_f64(),
        cpu_ms,
    })
}

/// What the floor's job process execs.
struct FloorExec {
    argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 2],
}

extern "C" fn floor_job(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `FloorExec` of our suspended parent.
    unsafe {
        let exec = &*(arg as *const FloorExec);
        if libc::setgid(UID) != 0 || libc::setuid(UID) != 0 {
            libc::_exit(93);
        }
        libc::execve(exec.argv[0], exec.argv.as_ptr(), exec.envp.as_ptr());
        libc::_exit(127)
    }
}

/// The supervisor's part of the floor; exits 0 if the grandchild did.
///
/// # Safety
/// Only in the child of a clone of a single-threaded process.
unsafe fn floor_child(
    tasks: &[std::ffi::CString],
    out: &std::ffi::CStr,
    err: &std::ffi::CStr,
    exec: &FloorExec,
    stack: &mut [u8],
) -> ! {
    // SAFETY: plain system calls on prepared, NUL-terminated data.
    unsafe {
        let null = std::ptr::null();
        if libc::mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_SLAVE,
            null.cast(),
        ) != 0
            || libc::mount(
                c"tmpfs".as_ptr(),
                c"/tmp".as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"size=16m".as_ptr().cast(),
            ) != 0
            || libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                null.cast(),
            ) != 0
        {
            libc::_exit(90);
        }
        for t in tasks {
            let fd = libc::open(t.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(91);
            }
            libc::close(fd);
        }
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        let o = libc::open(out.as_ptr(), flags, 0o600);
        let e = libc::open(err.as_ptr(), flags, 0o600);
        if o < 0 || e < 0 || libc::dup2(o, 1) < 0 || libc::dup2(e, 2) < 0 {
            libc::_exit(92);
        }
        // The grandchild shares our memory until it execs, as posix_spawn
        // (and the executor's job process) do; its stack was made before.
        let job = libc::clone(
            floor_job,
            stack.as_mut_ptr().add(stack.len()).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(exec).cast_mut().cast(),
        );
        let mut status = 0;
        if job < 0 || libc::waitpid(job, &mut status, 0) != job {
            libc::_exit(94);
        }
        libc::_exit(if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            95
        });
    }
}

/// Busy time of all CPUs so far (`/proc/stat`: user, nice, system, irq,
/// softirq, steal), in ms: what the machine spent, whichever process.
fn machine_busy_ms() -> Result<f64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().ok_or("empty /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| ticks.get(i).copied().unwrap_or(0))
        .sum();
    // SAFETY: sysconf has no side effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(busy as f64 * 1000.0 / hz as f64)
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
    let churn = args.get(3).is_some_and(|a| a == "churn");

    // Raw fork+exec of /bin/true, the floor.
    let busy = machine_busy_ms()?;
    let t = Instant::now();
    for _ in 0..n {
        Command::new("/bin/true").status()?;
    }
    let raw = t.elapsed();
    let raw_cpu = (machine_busy_ms()? - busy) / n as f64;
    let raw_rate = n as f64 / raw.as_secs_f64();
    let floor = isolation_floor(n)?;

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
    };
    let mut latencies = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
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
    for i in 0..n {
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
        let busy = machine_busy_ms()?;
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
        churn_cpu = (machine_busy_ms()? - busy) / n as f64;
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
    println!("raw fork+exec of /bin/true: {raw_rate:.0}/s, machine CPU {raw_cpu:.3} ms per run");
    println!(
        "isolation floor ({}): {:.0}/s, machine CPU {:.3} ms per run",
        floor.what, floor.rate, floor.cpu_ms
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
    if churn {
        println!(
            "one at a time (launch, wait, remove): {:.0} units/s ({} per unit), machine CPU {churn_cpu:.3} ms per unit",
            n as f64 / churned.as_secs_f64(),
            ms(churned / n as u32)
        );
    }
    Ok(())
}
