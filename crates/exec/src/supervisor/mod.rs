//! The supervisor: one process per unit, that outlives the daemon. The
//! executor's fork server forks it (or, without one, the executor spawns
//! `<supervisor...> <unit dir>`).
//!
//! Process tree (host view):
//!
//! ```text
//! daemon ─spawn─> fork server ─fork─> S  supervisor: own session, pid 1 of the unit's PID namespace;
//!                                     │  v2: cgroup <parent>/_supervisors
//!                                     └─ J  job, pid 2 of that namespace, in the unit cgroup; execs the program
//! ```
//!
//! S's parent (the fork server, which ignores SIGCHLD, or the spawning
//! executor) reaps it; if that parent dies first, S is an orphan like any
//! other and carries on.
//!
//! S is born as the init of a new PID namespace (the fork server unshares
//! one for each supervisor it forks; a spawned supervisor unshares one and
//! forks itself, the parent only waiting for it): it learns J's exact wait
//! status from `waitpid`, reaps orphans, and when it ends, the kernel kills
//! every process left in the namespace. Being init, it is not the job's
//! business: the job runs as another uid, so it cannot signal S. J shares
//! S's memory until it execs (`CLONE_VM | CLONE_VFORK`; v2: it is born in
//! its cgroup by `clone3(CLONE_INTO_CGROUP)` instead); v1: it writes `0` to
//! each hierarchy's `tasks`, which moves one thread without the kernel's
//! global threadgroup lock. It unshares a mount namespace (private `/tmp`,
//! its own `/proc`), opens its files as the job's user, drops to that user
//! and execs; its host pid and an exec failure travel back on a
//! close-on-exec pipe (EOF after the pid means the exec succeeded).
//!
//! S reports to the launcher on its stdout (a pipe) with JSON lines (the
//! start, then the end; or the failure to start), and records
//! `started.json` and `exit.json` in the unit directory (temporary file +
//! rename). It holds an flock on `supervisor.lock` for its whole life:
//! whoever can take that lock knows the supervisor is gone. It releases the
//! lock before it closes the pipe, so a launcher that reads the pipe to its
//! end knows that too.

pub(crate) mod child;

use std::ffi::c_int;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use xtreem_util::time::unix_now_millis;

use crate::cgroup::{CgroupBackend, CgroupConfig, CgroupVersion, FreezeState, Reuse, SUPERVISORS};
use crate::files::{self, EXIT, LOCK, LOG, SPEC, STARTED};
use crate::spec::{KILL_GRACE, LaunchSpec, fmt_bytes, fmt_duration};
use crate::status::{ExitRecord, LimitExceeded, Report, StartedRecord, UnitState, Usage};
use child::{ChildPlan, Stage};

/// `spec.json`: what the executor hands the supervisor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SupervisorInput {
    pub spec: LaunchSpec,
    pub cgroup: CgroupConfig,
    /// An idle cgroup to take (v1), as the executor parked it.
    #[serde(default)]
    pub reuse: Option<Reuse>,
    /// The soft limit on open files the job gets (the daemon raised its
    /// own: see `open_files`); None keeps the inherited one.
    #[serde(default)]
    pub open_files: Option<u64>,
}

/// How long the supervisor waits for the processes of an ended unit to
/// leave its cgroup before recording the exit anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The supervisor's main. The daemon binary calls it from a hidden
/// `xosd supervise DIR` subcommand, before starting any thread (it forks)
/// and without touching stdout (the launcher's pipe). Never returns.
///
/// Given `--fork-server` instead of a directory, it becomes the executor's
/// fork server (see `forkserver`): the executor starts one per `Executor`
/// as `<supervisor...> --fork-server`, so the supervisor program must pass
/// its argument through unchanged.
pub fn supervise(unit_dir: &Path) -> ! {
    if unit_dir.as_os_str() == crate::forkserver::FORK_SERVER_ARG {
        crate::forkserver::serve(0)
    }
    supervise_unit(unit_dir)
}

/// The supervisor proper (spawned, or forked by the fork server).
pub(crate) fn supervise_unit(unit_dir: &Path) -> ! {
    // A session of its own: killing the daemon's process group (or its
    // terminal hanging up) does not reach the unit.
    // SAFETY: setsid has no memory effects. We are spawned in the daemon's
    // process group or forked by the fork server, so we are not a group
    // leader and it succeeds.
    unsafe { libc::setsid() };
    let code = match run(unit_dir) {
        Ok(()) => 0,
        Err(e) => {
            log(&format!("giving up: {e}"));
            1
        }
    };
    exit_now(code)
}

/// Ends the process without running exit handlers: nothing of ours is
/// buffered (the log is written unbuffered, stdout is /dev/null), and the
/// handlers (the runtime's cleanup, the loader's destructors) are work a
/// unit's end pays for nothing.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; no Rust state outlives it.
    unsafe { libc::_exit(code) }
}

/// The unit's `supervisor.log`, once `setup_descriptors` knows the unit.
static LOG_PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Appends a line to the unit's log, made on its first line: most units
/// have nothing to log, and an empty log would be a file to create and
/// delete for each of them. Before the unit is known, to stderr.
fn log(msg: &str) {
    let line = format!(
        "{} xtreem-supervisor[{}]: {msg}\n",
        unix_now_millis(),
        host_pid()
    );
    let written = LOG_PATH.get().map(|path| {
        fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
    });
    if !matches!(written, Some(Ok(()))) {
        let _ = io::stderr().write_all(line.as_bytes());
    }
}

/// Our pid as the host sees it: `getpid` says 1 in our own namespace, but
/// `/proc` is still the host's. Not cached: a process that forks must not
/// hand its value down.
fn host_pid() -> i32 {
    match child::host_pid() {
        0 => std::process::id() as i32,
        pid => pid,
    }
}

/// Makes this process the init of a new PID namespace unless it already is
/// (the fork server forks supervisors that are): unshares one and forks;
/// the child goes on as the supervisor, this process only waits for it
/// and ends with its exit code.
fn become_namespace_init() -> Result<(), String> {
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } == 1 {
        return Ok(());
    }
    // SAFETY: unshare(CLONE_NEWPID) only affects children created later.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        return Err(format!(
            "cannot create a PID namespace: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: we are single-threaded.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", io::Error::last_os_error())),
        0 => Ok(()),
        child => {
            // Keep no copy of the launcher's pipe or the lock: the child's
            // end must be seen as theirs.
            // SAFETY: closing descriptors above stderr of this process,
            // which only waits from now on.
            unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    3 as libc::c_uint,
                    libc::c_uint::MAX,
                    0 as libc::c_uint,
                )
            };
            let code = match wait_child(child) {
                Some(Ended::Code(code)) => code,
                _ => 1,
            };
            exit_now(code)
        }
    }
}

fn errno_text(errno: i32) -> &'static str {
    nix::errno::Errno::from_raw(errno).desc()
}

/// The pipe to the launcher (our stdout at start), moved off fd 1. Kept
/// open for the whole unit: after the start (or the failure) it carries the
/// end, and its closing, after the lock's, tells the launcher we are gone.
struct Reporter(Option<fs::File>);

impl Reporter {
    fn send(&mut self, report: &Report) {
        let Some(file) = self.0.as_mut() else {
            return;
        };
        let mut line = match serde_json::to_vec(report) {
            Ok(l) => l,
            Err(e) => {
                log(&format!("cannot encode the report: {e}"));
                return;
            }
        };
        line.push(b'\n');
        // The launcher may be gone (the daemon died or restarted): nothing
        // more to tell it then.
        if let Err(e) = file.write_all(&line) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                log(&format!("cannot report to the launcher: {e}"));
            }
            self.0 = None;
        }
    }
}

/// Rearranges the standard descriptors: the launcher's pipe moves to a
/// close-on-exec descriptor, and stdin, stdout and stderr become /dev/null:
/// `log` and the panic hook write the unit's log.
fn setup_descriptors(dir: &Path) -> Result<Reporter, String> {
    // SAFETY: fcntl/dup2 on the standard descriptors we were started with.
    let report = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    let report = if report >= 0 {
        // SAFETY: a descriptor fcntl just created and nobody else owns.
        Some(fs::File::from(unsafe { OwnedFd::from_raw_fd(report) }))
    } else {
        None
    };
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("opening /dev/null: {e}"))?;
    // A copy above 2 first, so no dup2 below overwrites the source.
    let null = above_stdio(null.into());
    // SAFETY: dup2 onto the standard descriptors; the copy closes on drop.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(null.as_raw_fd(), 2);
    }
    let _ = LOG_PATH.set(dir.join(LOG));
    // What would have gone to stderr goes to the log.
    std::panic::set_hook(Box::new(|info| log(&format!("panic: {info}"))));
    Ok(Reporter(report))
}

/// `fd`, or a close-on-exec copy of it numbered above 2.
fn above_stdio(fd: OwnedFd) -> OwnedFd {
    if fd.as_raw_fd() > 2 {
        return fd;
    }
    // SAFETY: fcntl on a descriptor we own.
    let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return fd;
    }
    // SAFETY: a descriptor fcntl just created.
    unsafe { OwnedFd::from_raw_fd(copy) }
}

/// Takes the supervisor's lock for the rest of its life and writes its pid
/// (`me`, as the host sees it) into it.
fn hold_lock(dir: &Path, me: i32) -> Result<fs::File, String> {
    let path = dir.join(LOCK);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "{} is held: another supervisor runs this unit",
            path.display()
        ));
    }
    f.set_len(0)
        .and_then(|_| f.write_all(me.to_string().as_bytes()))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(f)
}

fn run(dir: &Path) -> Result<(), String> {
    // SAFETY: setting a disposition; a hangup is no reason to kill a unit.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let mut reporter = setup_descriptors(dir)?;
    // Do not pin whatever directory the daemon ran in.
    let _ = std::env::set_current_dir("/");
    become_namespace_init()?;
    // Our pid stays the same from here on: looked up once for the lock and
    // the start record (the job process, which has another, looks up its
    // own).
    let me = host_pid();
    let lock = hold_lock(dir, me)?;
    let launched_ms = unix_now_millis();
    let input: SupervisorInput = match files::read_json(dir, SPEC) {
        Ok(Some(input)) => input,
        Ok(None) => return Err(format!("{} is missing", dir.join(SPEC).display())),
        Err(e) => return Err(e.to_string()),
    };
    let cgroup = match input.cgroup.backend() {
        Ok(c) => c,
        Err(e) => {
            let record = failed(launched_ms, format!("{e}"), Usage::default());
            return finish_failed(dir, &mut reporter, record);
        }
    };
    let sup = Supervisor {
        spec: &input.spec,
        cgroup: cgroup.as_ref(),
        reuse: input.reuse.as_ref(),
        open_files: input.open_files,
    };
    match sup.start() {
        Ok(running) => {
            let started = StartedRecord {
                supervisor_pid: me,
                job_pid: running.job_host_pid,
                started_unix_ms: running.started_ms,
            };
            if let Err(e) = files::write_json_atomic(dir, STARTED, &started) {
                log(&format!("cannot record the start: {e}"));
            }
            reporter.send(&Report::Started(started));

            sup.leave_daemon_cgroup();
            let record = sup.watch(running);
            files::write_json_atomic(dir, EXIT, &record).map_err(|e| e.to_string())?;
            // The launcher learns the end without reading the file, and
            // then, from the pipe's end, that we are gone: so the lock is
            // released first.
            reporter.send(&Report::Ended(record));
            drop(lock);
            drop(reporter);
            Ok(())
        }
        Err(reason) => {
            log(&reason);
            let usage = cgroup.usage(&input.spec.unit).unwrap_or_default();
            finish_failed(dir, &mut reporter, failed(launched_ms, reason, usage))
        }
    }
}

fn failed(started_ms: u64, reason: String, usage: Usage) -> ExitRecord {
    ExitRecord {
        state: UnitState::Failed,
        reason: Some(reason),
        limit_exceeded: None,
        job_pid: None,
        started_unix_ms: started_ms,
        ended_unix_ms: unix_now_millis(),
        usage,
    }
}

fn finish_failed(dir: &Path, reporter: &mut Reporter, record: ExitRecord) -> Result<(), String> {
    let written = files::write_json_atomic(dir, EXIT, &record).map_err(|e| e.to_string());
    reporter.send(&Report::Failed(record));
    written
}

/// A started unit.
struct Running {
    /// The job process's pid in our namespace (2).
    job: i32,
    /// ... and on the host, as it told us.
    job_host_pid: i32,
    started_ms: u64,
    started_at: Instant,
    /// The cgroup's OOM kill count at the start: a reused cgroup counts
    /// its earlier units' kills too.
    oom_baseline: u64,
}

struct Supervisor<'a> {
    spec: &'a LaunchSpec,
    cgroup: &'a dyn CgroupBackend,
    reuse: Option<&'a Reuse>,
    open_files: Option<u64>,
}

/// The signals the supervisor handles synchronously.
fn handled_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialize the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Waits for one of `set` (blocked) for at most `timeout`.
fn wait_signal(set: &libc::sigset_t, timeout: Option<Duration>) -> Option<c_int> {
    // SAFETY: sigtimedwait/sigwaitinfo with valid pointers.
    let rc = unsafe {
        match timeout {
            Some(t) => {
                let ts = libc::timespec {
                    tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
                    tv_nsec: t.subsec_nanos() as libc::c_long,
                };
                libc::sigtimedwait(set, std::ptr::null_mut(), &ts)
            }
            None => libc::sigwaitinfo(set, std::ptr::null_mut()),
        }
    };
    (rc > 0).then_some(rc)
}

/// How a child ended.
#[derive(Clone, Copy, Debug)]
enum Ended {
    Code(i32),
    Signal(i32),
}

/// Reaps every ended child without blocking.
fn reap(mut each: impl FnMut(i32, Ended)) {
    loop {
        let mut status: c_int = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if libc::WIFEXITED(status) {
            each(pid, Ended::Code(libc::WEXITSTATUS(status)));
        } else if libc::WIFSIGNALED(status) {
            each(pid, Ended::Signal(libc::WTERMSIG(status)));
        }
    }
}

/// Blocks until `pid` (a child) has ended.
fn wait_child(pid: i32) -> Option<Ended> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: waitpid with a valid status pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            if libc::WIFEXITED(status) {
                return Some(Ended::Code(libc::WEXITSTATUS(status)));
            }
            if libc::WIFSIGNALED(status) {
                return Some(Ended::Signal(libc::WTERMSIG(status)));
            }
            continue;
        }
        if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

/// `/proc/self/cgroup` of the fork server, read once before its first
/// fork: a process is born in its parent's cgroups, and the executor has
/// placed the server before it sends it anything (and never moves it
/// again), so the supervisors it forks know theirs without a look.
static FORK_SERVER_CGROUPS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// For the fork server, on each message it gets (only the first reads).
pub(crate) fn note_fork_server_cgroups() {
    FORK_SERVER_CGROUPS.get_or_init(own_cgroups);
}

/// `/proc/self/cgroup` (one record: one `read`); empty if unreadable.
fn own_cgroups() -> String {
    crate::cgroup::read_optional(Path::new("/proc/self/cgroup"))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Whether this process is in `<parent>/_supervisors` already (forked by
/// the fork server, which lives there): per `/proc/self/cgroup`, the
/// unified line for v2, the memory hierarchy's for v1.
fn in_supervisors_cgroup(v2: bool) -> bool {
    let text = match FORK_SERVER_CGROUPS.get() {
        Some(text) => text.clone(),
        None => own_cgroups(),
    };
    text.lines().any(|line| {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        let ours = if v2 {
            id == "0" && controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == "memory")
        };
        ours && path.ends_with(&format!("/{SUPERVISORS}"))
    })
}

/// Opens a cgroup directory for clone3; `None` (fall back to fork) if it
/// cannot be opened.
fn open_dir(dir: &Path) -> Option<OwnedFd> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map(OwnedFd::from)
        .map_err(|e| log(&format!("cannot open {}: {e}; using fork", dir.display())))
        .ok()
}

/// Starts the job process: born in the cgroup `cgroup` by `clone3` if
/// given and the kernel can, else sharing our memory until it execs.
/// Returns its pid in our namespace.
///
/// # Safety
/// The caller must be single-threaded.
unsafe fn spawn_job(plan: &ChildPlan, cgroup: Option<&OwnedFd>, err_fd: i32) -> io::Result<i32> {
    if let Some(fd) = cgroup {
        // SAFETY: single-threaded (the caller's promise); the child only
        // makes system calls until it execs.
        match unsafe { child::fork_into_cgroup(fd.as_raw_fd()) } {
            Ok(0) => child::job(plan, true, err_fd),
            Ok(pid) => return Ok(pid),
            Err(errno) => log(&format!(
                "clone3 into a cgroup failed ({}); joining it after the start",
                errno_text(errno)
            )),
        }
    }
    // SAFETY: as above; `plan` is not touched until the call returns.
    unsafe { child::vfork_job(plan, err_fd) }.map_err(io::Error::from_raw_os_error)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {}", e.desc()))
}

impl Supervisor<'_> {
    fn unit(&self) -> &str {
        &self.spec.unit
    }

    /// Creates the cgroup, the namespaces and the processes; returns once
    /// the program is running (exec succeeded) or with the reason it is not.
    fn start(&self) -> Result<Running, String> {
        let unit = self.unit();
        let warnings = self
            .cgroup
            .create(unit, &self.spec.limits, self.reuse)
            .map_err(|e| format!("cannot create the unit's cgroup: {e}"))?;
        for w in warnings {
            log(&w);
        }
        let oom_baseline = self.cgroup.oom_kills(unit).unwrap_or(0);
        let v2 = self.cgroup.version() == CgroupVersion::V2;
        if !v2 && !in_supervisors_cgroup(false) {
            // Spawned, not forked by the fork server (which lives there).
            // Cheap in v1 (one thread, no global lock).
            self.join_supervisors();
        }
        // v2: the job is born in its cgroup (clone3), no migration.
        let unit_fd = self.cgroup.clone_into(unit).and_then(|d| open_dir(&d));
        let plan = ChildPlan::new(self.spec, &self.cgroup.join_paths(unit), self.open_files)?;
        let set = handled_signals();
        // SAFETY: blocking signals of our only thread.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        let (err_r, err_w) = pipe()?;
        // SAFETY: we are single-threaded.
        let job = unsafe { spawn_job(&plan, unit_fd.as_ref(), err_w.as_raw_fd()) }
            .map_err(|e| format!("cannot start the job process: {e}"))?;
        drop(err_w);
        // EOF after the pid: the exec succeeded (the pipe is close-on-exec).
        let mut msg = [0u8; child::MESSAGES_MAX];
        let mut got = 0;
        let mut file = fs::File::from(err_r);
        while got < msg.len() {
            match io::Read::read(&mut file, &mut msg[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log(&format!("reading the error pipe: {e}"));
                    break;
                }
            }
        }
        let started_at = Instant::now();
        let started_ms = unix_now_millis();
        let messages = child::decode_messages(&msg[..got]);
        if messages.failure.is_none() && !messages.garbled {
            return Ok(Running {
                job,
                job_host_pid: messages.host_pid.unwrap_or(0),
                started_ms,
                started_at,
                oom_baseline,
            });
        }
        wait_child(job);
        Err(match messages.failure {
            Some((stage, errno)) => self.failure_text(stage, errno),
            None => "the job process failed before exec".to_string(),
        })
    }

    /// Moves the supervisor into `<parent>/_supervisors`.
    fn join_supervisors(&self) {
        for f in self.cgroup.supervisor_join_files() {
            if let Err(e) = crate::cgroup::write_value(&f, "0") {
                log(&format!("cannot join {}: {e}", f.display()));
            }
        }
    }

    /// v2, after the start was reported (a migration may wait for an RCU
    /// grace period): a spawned supervisor leaves the daemon's cgroup.
    fn leave_daemon_cgroup(&self) {
        if self.cgroup.version() == CgroupVersion::V2 && !in_supervisors_cgroup(true) {
            self.join_supervisors();
        }
    }

    fn failure_text(&self, stage: Stage, errno: i32) -> String {
        let e = errno_text(errno);
        let s = self.spec;
        let ids = format!("uid {} gid {}", s.uid, s.gid);
        match stage {
            Stage::JoinCgroup => format!("cannot join the unit's cgroup: {e}"),
            Stage::MountNamespace => format!("cannot set up the job's mount namespace: {e}"),
            Stage::OpenStdin => format!(
                "cannot open stdin {} as {ids}: {e}",
                s.stdin
                    .as_deref()
                    .unwrap_or(Path::new("/dev/null"))
                    .display()
            ),
            Stage::OpenStdout => format!("cannot open stdout {} as {ids}: {e}", s.stdout.display()),
            Stage::OpenStderr => format!("cannot open stderr {} as {ids}: {e}", s.stderr.display()),
            Stage::Workdir => format!("cannot open workdir {} as {ids}: {e}", s.workdir.display()),
            Stage::Tmp => format!("cannot mount the private /tmp: {e}"),
            Stage::Credential => format!(
                "cannot write the credential {} as {ids}: {e}",
                crate::CREDENTIAL_PATH
            ),
            Stage::Proc => format!("cannot mount /proc: {e}"),
            Stage::Stdio => format!("cannot redirect the standard streams: {e}"),
            Stage::Ids => format!("cannot switch to {ids}: {e}"),
            Stage::Chdir => format!("cannot enter workdir {} as {ids}: {e}", s.workdir.display()),
            Stage::Exec => {
                let program = s.argv.first().map(String::as_str).unwrap_or("");
                if program.contains('/') {
                    format!("cannot execute {program}: {e}")
                } else {
                    format!(
                        "cannot execute {program}: {e} (searched PATH {})",
                        s.search_path()
                    )
                }
            }
        }
    }

    /// Sends `signal` to every process of the unit; thaws it first so the
    /// signal can act.
    fn signal_unit(&self, signal: c_int) {
        let unit = self.unit();
        if matches!(
            self.cgroup.freeze_state(unit),
            Ok(FreezeState::Frozen | FreezeState::Freezing)
        ) {
            let _ = self.cgroup.set_frozen(unit, false);
        }
        if let Ok(pids) = self.cgroup.procs(unit) {
            crate::cgroup::signal_pids(&pids, signal);
        }
    }

    /// Waits for the job to end, enforcing the walltime, then cleans up and
    /// returns the exit record.
    fn watch(&self, running: Running) -> ExitRecord {
        let unit = self.unit();
        let set = handled_signals();
        let walltime = self.spec.limits.walltime;
        let mut term_at = walltime.map(|w| running.started_at + w);
        let mut kill_at: Option<Instant> = None;
        let mut walltime_hit = false;
        let mut stopped_by: Option<c_int> = None;
        let mut job_end: Option<Ended> = None;
        loop {
            // As the namespace's init we also reap the job's orphans.
            reap(|pid, how| {
                if pid == running.job {
                    job_end = Some(how);
                }
            });
            if job_end.is_some() {
                break;
            }
            let now = Instant::now();
            if term_at.is_some_and(|t| now >= t) {
                term_at = None;
                walltime_hit = true;
                log(&format!(
                    "walltime {} exceeded: SIGTERM to the unit",
                    walltime.map(fmt_duration).unwrap_or_default()
                ));
                self.signal_unit(libc::SIGTERM);
                kill_at = Some(now + KILL_GRACE);
            }
            if kill_at.is_some_and(|t| now >= t) {
                kill_at = None;
                log("grace period over: SIGKILL to the unit");
                let _ = self.cgroup.kill_all(unit);
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(running.job, libc::SIGKILL) };
            }
            let next = [term_at, kill_at].into_iter().flatten().min();
            let timeout = next.map(|t| t.saturating_duration_since(Instant::now()));
            if let Some(sig) = wait_signal(&set, timeout)
                && sig != libc::SIGCHLD
                && stopped_by.is_none()
            {
                stopped_by = Some(sig);
                log(&format!("received signal {sig}: killing the unit"));
                let _ = self.cgroup.kill_all(unit);
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(running.job, libc::SIGKILL) };
            }
        }
        let ended_ms = unix_now_millis();
        // Whatever the job left behind goes now: SIGKILL to the cgroup, and
        // our own end kills the rest of the namespace.
        // Usually the job was alone and the cgroup is empty already: that
        // one read of its processes is all the drain costs.
        let left = self.cgroup.kill_all(unit).unwrap_or(1);
        let drain_until = Instant::now() + DRAIN_TIMEOUT;
        let mut pause = Duration::from_micros(200);
        while left > 0 && self.cgroup.procs(unit).is_ok_and(|p| !p.is_empty()) {
            if Instant::now() >= drain_until {
                log("processes are still in the unit's cgroup; recording the exit anyway");
                break;
            }
            let _ = self.cgroup.kill_all(unit);
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        let mut usage = self.cgroup.usage(unit).unwrap_or_else(|e| {
            log(&format!("cannot read the unit's usage: {e}"));
            Usage::default()
        });
        usage.wall_ms = ended_ms.saturating_sub(running.started_ms);
        let oom_kills = self
            .cgroup
            .oom_kills(unit)
            .unwrap_or(0)
            .saturating_sub(running.oom_baseline);
        let state = match job_end {
            Some(Ended::Code(code)) => UnitState::Exited { code },
            Some(Ended::Signal(signal)) => UnitState::Signaled { signal },
            None => UnitState::Failed,
        };
        let limits = &self.spec.limits;
        let (reason, limit_exceeded) = if let Some(sig) = stopped_by {
            (
                Some(format!(
                    "the supervisor was stopped by signal {sig}; the job was killed"
                )),
                None,
            )
        } else if walltime_hit {
            (
                Some(format!(
                    "walltime {} exceeded",
                    limits.walltime.map(fmt_duration).unwrap_or_default()
                )),
                Some(LimitExceeded::Walltime),
            )
        } else if oom_kills > 0 {
            if limits.memory_bytes > 0 {
                (
                    Some(format!(
                        "memory limit {} exceeded (OOM kill)",
                        fmt_bytes(limits.memory_bytes)
                    )),
                    Some(LimitExceeded::Memory),
                )
            } else {
                (
                    Some("killed by the kernel's OOM killer (the host ran out of memory)".into()),
                    None,
                )
            }
        } else {
            (None, None)
        };
        ExitRecord {
            state,
            reason,
            limit_exceeded,
            job_pid: Some(running.job_host_pid),
            started_unix_ms: running.started_ms,
            ended_unix_ms: ended_ms,
            usage,
        }
    }
}
