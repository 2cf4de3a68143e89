//! The isolation floor: the least the isolation a unit gets can cost on
//! this machine, with none of the executor's own work. A child in new PID
//! and mount namespaces (as a supervisor is) mounts a private `/tmp` and
//! `/proc`, joins one cgroup per v1 hierarchy (or the v2 one), opens two
//! output files (the same two each run, truncated: a unit's new files cost
//! two inodes more) and has a grandchild, sharing its memory until exec as the
//! job process does, take a pool uid and exec `/bin/true`; the parent
//! waits. No state files, limits, usage, reuse or fork server: what the
//! executor costs above this is its own doing. For benchmarks
//! (`xos bench jobs`, the `launch_rate` example); needs root.

use std::ffi::{CStr, CString};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::ExecError;
use crate::cgroup::CgroupVersion;

#[cfg(test)]
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Stack of the grandchild until its exec.
const JOB_STACK: usize = 64 * 1024;

/// What [`run`] measured.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// Which cgroups the children joined.
    pub version: CgroupVersion,
    /// Runs per second, one after another.
    pub rate: f64,
}

/// Runs the floor `count` times one after another, the job as `uid`,
/// its output files in `out_dir`.
pub fn run(count: u32, uid: u32, out_dir: &Path) -> Result<Floor, ExecError> {
    // The hierarchies the executor would use, found as it finds them: the
    // floor joins exactly what a unit joins.
    let name = format!("xtreem-floor-{}", std::process::id());
    let setup = crate::cgroup::detect(&name, None)?;
    let version = setup.version;
    let dirs: Vec<PathBuf> = match version {
        CgroupVersion::V1 => setup.v1.iter().map(|h| h.mount.join(&name)).collect(),
        CgroupVersion::V2 => setup.v2.iter().map(|m| m.join(&name)).collect(),
    };
    let cgroups = Cgroups::make(dirs)?;
    let procs = cgroups
        .0
        .iter()
        .map(|d| c_path(&d.join("cgroup.procs")))
        .collect::<Result<Vec<_>, _>>()?;
    let out = c_path(&out_dir.join("floor.out"))?;
    let err = c_path(&out_dir.join("floor.err"))?;
    let exec = JobExec {
        argv: [c"/bin/true".as_ptr(), std::ptr::null()],
        envp: [c"PATH=/usr/bin:/bin".as_ptr(), std::ptr::null()],
        uid,
    };
    let mut stack = vec![0u8; JOB_STACK];
    let started = Instant::now();
    for _ in 0..count {
        // SAFETY: the child only makes async-signal-safe system calls on
        // data prepared before the clone, then exits: safe even if this
        // process has other threads.
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
            // SAFETY: as above, in the child of the clone.
            unsafe { supervisor_part(&procs, &out, &err, &exec, &mut stack) };
        }
        if pid < 0 {
            return Err(ExecError::io("clone", io::Error::last_os_error()));
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            return Err(ExecError::Supervisor(format!(
                "isolation floor: the child ended with status {status:#x} (90-95: a step failed)"
            )));
        }
    }
    Ok(Floor {
        version,
        rate: f64::from(count) / started.elapsed().as_secs_f64(),
    })
}

/// CPU time the whole machine has spent busy since boot (user, nice,
/// system, irq, softirq, steal), in milliseconds, from `/proc/stat`: what
/// every process of a benchmark costs together, set beside the floor's.
pub fn machine_busy_ms() -> io::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let cpu = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no cpu line in /proc/stat"))?;
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| ticks.get(i).copied().unwrap_or(0))
        .sum();
    // SAFETY: sysconf has no side effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return Err(io::Error::other("cannot read the clock tick rate"));
    }
    Ok(busy as f64 * 1000.0 / hz as f64)
}

fn c_path(path: &Path) -> Result<CString, ExecError> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| ExecError::InvalidSpec(format!("{} has a NUL byte", path.display())))
}

/// The floor's cgroups, removed on drop.
struct Cgroups(Vec<PathBuf>);

impl Cgroups {
    fn make(dirs: Vec<PathBuf>) -> Result<Self, ExecError> {
        let mut made = Cgroups(Vec::new());
        for dir in dirs {
            std::fs::create_dir(&dir)
                .map_err(|e| ExecError::io(format!("creating {}", dir.display()), e))?;
            made.0.push(dir);
        }
        Ok(made)
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// What the grandchild execs, and as whom.
struct JobExec {
    argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 2],
    uid: u32,
}

extern "C" fn job_part(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `JobExec` of our parent, suspended until we exec
    // or exit (CLONE_VFORK); only system calls follow.
    unsafe {
        let exec = &*(arg as *const JobExec);
        if libc::setgid(exec.uid) != 0 || libc::setuid(exec.uid) != 0 {
            libc::_exit(93);
        }
        libc::execve(exec.argv[0], exec.argv.as_ptr(), exec.envp.as_ptr());
        libc::_exit(127)
    }
}

/// The supervisor's share; exits 0 if the job did.
///
/// # Safety
/// Only in the child of a clone, making system calls only.
unsafe fn supervisor_part(
    procs: &[CString],
    out: &CStr,
    err: &CStr,
    exec: &JobExec,
    stack: &mut [u8],
) -> ! {
    // SAFETY: system calls on prepared, NUL-terminated data; the
    // grandchild runs on `stack`, which nothing else uses.
    unsafe {
        let null = std::ptr::null();
        if libc::mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_SLAVE,
            null.cast(),
        ) != 0
        {
            libc::_exit(90);
        }
        // Before the private /tmp hides them (as the job process does).
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        let o = libc::open(out.as_ptr(), flags, 0o600);
        let e = libc::open(err.as_ptr(), flags, 0o600);
        if o < 0 || e < 0 || libc::dup2(o, 1) < 0 || libc::dup2(e, 2) < 0 {
            libc::_exit(92);
        }
        if libc::mount(
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
        for file in procs {
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(91);
            }
            libc::close(fd);
        }
        let job = libc::clone(
            job_part,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_busy_time_is_read_and_only_grows() {
        let first = machine_busy_ms().unwrap();
        // Some work, so the kernel's tick counters can move on.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let second = machine_busy_ms().unwrap();
        assert!(first > 0.0, "{first}");
        assert!(second >= first, "{first} then {second}");
    }

    #[test]
    fn the_floor_runs_true_in_its_namespaces() {
        // SAFETY: geteuid has no side effects.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: the isolation floor needs root (namespaces, cgroups, setuid)");
            return;
        }
        let out = tempfile::tempdir().unwrap();
        let floor = run(3, 61_000, out.path()).unwrap();
        assert!(floor.rate > 0.0);
        // The job's stdout was the floor's file, created by the child.
        assert!(out.path().join("floor.out").is_file());
        // Its cgroups are gone again.
        let name = format!("xtreem-floor-{}", std::process::id());
        assert!(!Path::new(CGROUP_ROOT).join("memory").join(&name).exists());
        assert!(!Path::new(CGROUP_ROOT).join(&name).exists());
    }
}
