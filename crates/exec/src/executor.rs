//! [`Executor`]: the daemon's side. It launches supervisors, reads the
//! state they leave in the unit directories, and acts on the units'
//! cgroups (signals, freezer, usage). It keeps no state a restart would
//! lose: a new `Executor` on the same root sees the same units.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use xtreem_util::time::unix_now_millis;

use crate::cgroup::{self, CgroupBackend, CgroupConfig, CgroupVersion, FreezeState, Reuse};
use crate::error::{ExecError, io_err};
use crate::files::{self, EXIT, Liveness, SPEC, STARTED};
use crate::forkserver::ForkServer;
use crate::report_pipe::ReportPipe;
use crate::spec::{LaunchSpec, Limits, Stream, validate_unit_name};
use crate::status::{ExitRecord, Report, StartedRecord, UnitState, UnitStatus, Usage};
use crate::supervisor::SupervisorInput;

/// How long `launch` waits for the supervisor to report.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `freeze` waits for the cgroup to be frozen.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `remove` waits for a supervisor that has recorded the exit
/// to end.
const EXITING_SUPERVISOR_WAIT: Duration = Duration::from_secs(2);
/// Polling period of `wait` when a pidfd cannot be used.
const WAIT_POLL: Duration = Duration::from_millis(50);
/// How long `wait` trusts a supervisor's pidfd before looking at the lock
/// again: a supervisor killed while its job is frozen releases its lock at
/// once, but its pidfd stays silent until the frozen job can die (its PID
/// namespace cannot empty before it is thawed).
const PIDFD_RECHECK: Duration = Duration::from_secs(5);
/// The reason of a unit whose supervisor died without recording an exit.
pub const SUPERVISOR_LOST: &str = "supervisor lost";

/// Runs units on this node. See the crate documentation for the design.
#[derive(Debug)]
pub struct Executor {
    root: PathBuf,
    supervisor: Vec<OsString>,
    cgroup_config: CgroupConfig,
    cgroup: Box<dyn CgroupBackend>,
    warnings: Vec<String>,
    /// Units whose `launch` is in progress in this process.
    launching: Mutex<HashSet<String>>,
    /// Supervisors this process spawned and has not reaped yet.
    children: Mutex<HashMap<String, Child>>,
    /// Forks the supervisors (`None`: spawn each one).
    fork_server: Mutex<Option<ForkServer>>,
    /// The report pipes of units this process launched that run: their
    /// supervisors send the end there (see [`Executor::wait`]).
    reports: Mutex<HashMap<String, ReportPipe>>,
    /// Units whose supervisor `wait` saw end (its pipe closed, after its
    /// lock was released): `remove` need not look at the lock.
    gone: Mutex<HashSet<String>>,
    /// The cgroup limits of the units this process launched, until removed.
    limits: Mutex<HashMap<String, Limits>>,
    /// Idle cgroups this process parked, newest last: a launch hands one
    /// to its supervisor (see [`Reuse`]). Some may have been taken by a
    /// supervisor that listed them; it then lists the others.
    idle: Mutex<Vec<Reuse>>,
}

/// Most idle cgroups `idle` remembers (the pool itself is bounded too).
const IDLE_REMEMBERED: usize = 64;

/// A launch whose supervisor was asked for: its unit directory, the read
/// end of its report pipe and, if it was spawned, the process.
struct SupervisorStarted {
    dir: PathBuf,
    report: ReportPipe,
    child: Option<Child>,
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Supervisors outlive us; reap the ones we spawned as they end, so
        // none stays a zombie while this process lives.
        let mut children: Vec<Child> = match self.children.get_mut() {
            Ok(map) => map.drain().map(|(_, c)| c).collect(),
            Err(_) => return,
        };
        // Closing its socket ends the fork server.
        if let Ok(server) = self.fork_server.get_mut()
            && let Some(server) = server.take()
        {
            children.push(server.into_child());
        }
        if children.is_empty() {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("xtreem-exec-reaper".into())
            .spawn(move || {
                for mut child in children {
                    let _ = child.wait();
                }
            });
    }
}

/// Removes a unit from `launching` when `launch` returns.
struct LaunchGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    unit: String,
}

impl Drop for LaunchGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.unit);
        }
    }
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just gave us this descriptor.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl Executor {
    /// Opens (creating it, mode 0700) the directory holding one subdirectory
    /// per unit, detects the cgroup version and prepares our cgroup subtree.
    ///
    /// `supervisor` is the program and leading arguments that run the
    /// supervisor: it is invoked as `<supervisor...> <unit dir>` and must
    /// call [`crate::supervise`]. `cgroup_parent` names our subtree in every
    /// hierarchy (`xtreem`, `xtreem-<node>`: one per node on a shared host).
    pub fn open(
        root: PathBuf,
        supervisor: Vec<OsString>,
        cgroup_parent: &str,
    ) -> Result<Executor, ExecError> {
        Executor::open_with(root, supervisor, cgroup_parent, None)
    }

    /// As [`Executor::open`], with the cgroup version forced (`None`: detect).
    pub fn open_with(
        root: PathBuf,
        supervisor: Vec<OsString>,
        cgroup_parent: &str,
        version: Option<CgroupVersion>,
    ) -> Result<Executor, ExecError> {
        if supervisor.is_empty() {
            return Err(ExecError::Supervisor("no supervisor program given".into()));
        }
        crate::statedir::prepare_private_parent(&root)?;
        fs::create_dir_all(&root).map_err(io_err(format!("creating {}", root.display())))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("setting the mode of {}", root.display())))?;
        let cgroup_config = cgroup::detect(cgroup_parent, version)?;
        let mut cgroup = cgroup_config.backend()?;
        let warnings = cgroup.setup_parent()?;
        for w in &warnings {
            tracing::warn!(target: "xtreem_exec", "{w}");
        }
        // Held for our life, and handed to the fork server for the
        // supervisors: the units' cgroup files are looked up from there.
        cgroup.hold_dirs();
        let fork_server = match start_fork_server(&supervisor, cgroup.as_ref()) {
            Ok(server) => Some(server),
            Err(e) => {
                tracing::warn!(target: "xtreem_exec", "no fork server ({e}): spawning each supervisor");
                None
            }
        };
        Ok(Executor {
            fork_server: Mutex::new(fork_server),
            root,
            supervisor,
            cgroup_config,
            cgroup,
            warnings,
            launching: Mutex::new(HashSet::new()),
            children: Mutex::new(HashMap::new()),
            reports: Mutex::new(HashMap::new()),
            gone: Mutex::new(HashSet::new()),
            limits: Mutex::new(HashMap::new()),
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn cgroup_version(&self) -> CgroupVersion {
        self.cgroup.version()
    }

    /// What `open` found lacking (limits that cannot be enforced).
    pub fn cgroup_warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a unit (whether or not it exists).
    pub fn unit_dir(&self, unit: &str) -> Result<PathBuf, ExecError> {
        validate_unit_name(unit)?;
        Ok(self.root.join(unit))
    }

    fn existing_unit_dir(&self, unit: &str) -> Result<PathBuf, ExecError> {
        let dir = self.unit_dir(unit)?;
        if !dir.is_dir() {
            return Err(ExecError::NoSuchUnit(unit.to_string()));
        }
        Ok(dir)
    }

    /// The supervisor's lock state of a unit whose directory is not known
    /// to exist: only a missing lock file costs a look at the directory.
    fn unit_liveness(&self, unit: &str, dir: &Path) -> Result<Liveness, ExecError> {
        match files::lock_state(dir)? {
            Some(l) => Ok(l),
            None if dir.is_dir() => Ok(Liveness::Gone),
            None => Err(ExecError::NoSuchUnit(unit.to_string())),
        }
    }

    /// Reaps the unit's supervisor if this process spawned it and it ended.
    fn reap(&self, unit: &str) {
        if let Ok(mut children) = self.children.lock()
            && let Some(child) = children.get_mut(unit)
            && !matches!(child.try_wait(), Ok(None))
        {
            children.remove(unit);
        }
    }

    fn is_launching(&self, unit: &str) -> bool {
        self.launching
            .lock()
            .map(|s| s.contains(unit))
            .unwrap_or(false)
    }

    /// Starts a unit: writes its spec, spawns its supervisor (in a session of
    /// its own, so it outlives us; we reap it if we outlive it) and returns
    /// once the program runs (`Running`) or could not be started (`Failed`,
    /// with the reason, e.g. "cannot execute /nope: No such file or
    /// directory"). Blocking: a few milliseconds; in async code use
    /// [`Executor::launch_async`].
    pub fn launch(&self, spec: &LaunchSpec) -> Result<UnitStatus, ExecError> {
        let (_guard, mut started) = self.start_supervisor(spec)?;
        let line = started.report.line_blocking(LAUNCH_TIMEOUT);
        self.take_report(spec, started, line)
    }

    /// [`Executor::launch`] for async code: the files and the fork request
    /// are made on the calling thread (a unit directory on a tmpfs, a
    /// message to the fork server: microseconds), and the supervisor's
    /// report is awaited on the runtime, not on a blocking thread. Without
    /// a fork server the supervisor's spawn blocks for about a millisecond.
    pub async fn launch_async(&self, spec: &LaunchSpec) -> Result<UnitStatus, ExecError> {
        let (_guard, mut started) = self.start_supervisor(spec)?;
        let line = started.report.line(Some(LAUNCH_TIMEOUT)).await;
        self.take_report(spec, started, line)
    }

    /// `launch` up to the supervisor's report: checks, unit directory,
    /// spec and lock files, the supervisor asked for.
    fn start_supervisor(
        &self,
        spec: &LaunchSpec,
    ) -> Result<(LaunchGuard<'_>, SupervisorStarted), ExecError> {
        spec.validate()?;
        if !spec
            .workdir
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        {
            return Err(ExecError::InvalidSpec(format!(
                "workdir {} must be a normalized absolute path",
                spec.workdir.display()
            )));
        }
        if spec.workdir == Path::new("/tmp") {
            return Err(ExecError::InvalidSpec(
                "workdir must not be /tmp itself: the job gets a private /tmp".into(),
            ));
        }
        match fs::metadata(&spec.workdir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ExecError::InvalidSpec(format!(
                    "workdir {} is not a directory",
                    spec.workdir.display()
                )));
            }
            Err(e) => {
                return Err(ExecError::InvalidSpec(format!(
                    "workdir {}: {e}",
                    spec.workdir.display()
                )));
            }
        }
        let unit = spec.unit.as_str();
        let dir = self.unit_dir(unit)?;
        {
            let mut set = self
                .launching
                .lock()
                .map_err(|_| ExecError::Supervisor("launch lock poisoned".into()))?;
            if !set.insert(unit.to_string()) {
                return Err(ExecError::UnitExists(unit.to_string()));
            }
        }
        let guard = LaunchGuard {
            set: &self.launching,
            unit: unit.to_string(),
        };
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(ExecError::UnitExists(unit.to_string()));
            }
            Err(e) => return Err(ExecError::io(format!("creating {}", dir.display()), e)),
        }
        let input = SupervisorInput {
            spec: spec.clone(),
            cgroup: self.cgroup_config.clone(),
            reuse: self.idle_for(&spec.limits),
            open_files: crate::open_files::for_units(),
        };
        let bytes = serde_json::to_vec(&input).map_err(|e| ExecError::State {
            path: dir.join(SPEC),
            why: e.to_string(),
        })?;
        let spec_path = dir.join(SPEC);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&spec_path)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(io_err(format!("writing {}", spec_path.display())))?;
        files::create_lock(&dir)?;

        // Non-blocking: `wait` reads the end from the runtime. The
        // supervisor writes two short lines, which never fill the pipe.
        let (report_r, report_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| ExecError::io("pipe", io::Error::from(e)))?;
        let child = if self.request_fork(&dir, &report_w) {
            drop(report_w);
            None
        } else {
            Some(self.spawn_supervisor(&dir, report_w)?)
        };
        Ok((
            guard,
            SupervisorStarted {
                dir,
                report: ReportPipe::new(report_r),
                child,
            },
        ))
    }

    /// `launch` from the supervisor's first report line on.
    fn take_report(
        &self,
        spec: &LaunchSpec,
        started: SupervisorStarted,
        line: io::Result<Option<Vec<u8>>>,
    ) -> Result<UnitStatus, ExecError> {
        let unit = spec.unit.as_str();
        let SupervisorStarted {
            dir,
            report: pipe,
            child,
        } = started;
        let line = line.map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut => {
                ExecError::Supervisor(format!("no report within {} s", LAUNCH_TIMEOUT.as_secs()))
            }
            _ => ExecError::io("reading the supervisor's report", e),
        });
        if matches!(line, Ok(None)) {
            // It ended without a word: reap it now.
            if let Some(mut child) = child {
                let _ = child.wait();
            }
            return Err(ExecError::Supervisor(format!(
                "exited without reporting: {}",
                log_tail(&dir)
            )));
        }
        // A spawned supervisor stays our child until it ends or we do:
        // status, wait and remove reap it (and our Drop, for the rest).
        if let Some(child) = child
            && let Ok(mut children) = self.children.lock()
        {
            children.insert(unit.to_string(), child);
        }
        let Some(line) = line? else {
            return Err(ExecError::Supervisor("no report".into()));
        };
        let report: Report = serde_json::from_slice(&line).map_err(|e| {
            ExecError::Supervisor(format!(
                "unreadable report {:?}: {e}",
                String::from_utf8_lossy(&line)
            ))
        })?;
        Ok(match report {
            Report::Started(s) => {
                if let Ok(mut limits) = self.limits.lock() {
                    limits.insert(unit.to_string(), spec.limits.clone());
                }
                if let Ok(mut reports) = self.reports.lock() {
                    reports.insert(unit.to_string(), pipe);
                }
                running_status(unit, &s, Usage::default())
            }
            Report::Failed(rec) | Report::Ended(rec) => rec.into_status(unit),
        })
    }

    /// Asks the fork server for a supervisor of `dir` (restarting the server
    /// once if it died). `false`: spawn one instead.
    fn request_fork(&self, dir: &Path, report: &OwnedFd) -> bool {
        let Ok(mut server) = self.fork_server.lock() else {
            return false;
        };
        for attempt in 0..2 {
            let Some(current) = server.as_mut() else {
                return false;
            };
            match current.request(dir, report) {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(target: "xtreem_exec", "fork server: {e}");
                    let alive = current.alive();
                    if alive || attempt == 1 {
                        return false;
                    }
                    *server = start_fork_server(&self.supervisor, self.cgroup.as_ref())
                        .map_err(|e| {
                            tracing::warn!(target: "xtreem_exec", "cannot restart the fork server: {e}")
                        })
                        .ok();
                }
            }
        }
        false
    }

    /// Spawns `<supervisor...> <dir>` reporting on `report`.
    fn spawn_supervisor(&self, dir: &Path, report: OwnedFd) -> Result<Child, ExecError> {
        let mut cmd = Command::new(&self.supervisor[0]);
        cmd.args(&self.supervisor[1..])
            .arg(dir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(report))
            .stderr(Stdio::null());
        let spawned = cmd.spawn();
        // The command holds our copy of the pipe's write end: close it, so a
        // supervisor that dies without reporting shows as EOF.
        drop(cmd);
        spawned.map_err(|e| {
            // Nothing runs: leave no unit behind.
            let _ = fs::remove_dir_all(dir);
            ExecError::Supervisor(format!(
                "cannot start {}: {e}",
                PathBuf::from(&self.supervisor[0]).display()
            ))
        })
    }

    /// The units present (for re-adoption after a daemon restart).
    pub fn units(&self) -> Result<Vec<String>, ExecError> {
        let mut out = Vec::new();
        let entries =
            fs::read_dir(&self.root).map_err(io_err(format!("listing {}", self.root.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("listing {}", self.root.display())))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if validate_unit_name(&name).is_ok() && entry.path().is_dir() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The unit's spec as launched.
    pub fn spec(&self, unit: &str) -> Result<LaunchSpec, ExecError> {
        let dir = self.unit_dir(unit)?;
        match files::read_json::<SupervisorInput>(&dir, SPEC)? {
            Some(input) => Ok(input.spec),
            None if !dir.is_dir() => Err(ExecError::NoSuchUnit(unit.to_string())),
            None => Err(ExecError::State {
                path: dir.join(SPEC),
                why: "missing".into(),
            }),
        }
    }

    /// Where the unit's stdout or stderr goes.
    pub fn output_path(&self, unit: &str, stream: Stream) -> Result<PathBuf, ExecError> {
        Ok(self.spec(unit)?.output_path(stream).to_path_buf())
    }

    /// The unit's state, from its state files, its lock and its cgroup.
    pub fn status(&self, unit: &str) -> Result<UnitStatus, ExecError> {
        // No look at the directory first: a record or the lock in it says
        // it is there.
        let dir = self.unit_dir(unit)?;
        if let Some(rec) = files::read_json::<ExitRecord>(&dir, EXIT)? {
            self.reap(unit);
            return Ok(rec.into_status(unit));
        }
        let liveness = self.unit_liveness(unit, &dir)?;
        if liveness == Liveness::Gone {
            self.reap(unit);
        }
        let started: Option<StartedRecord> = files::read_json(&dir, STARTED)?;
        let alive = match liveness {
            Liveness::Alive(pid) => Some(pid),
            Liveness::Gone if self.is_launching(unit) => Some(None),
            Liveness::Gone => None,
        };
        if let Some(pid) = alive {
            let mut usage = self.live_usage(unit);
            let mut status = match &started {
                Some(s) => {
                    usage.wall_ms = unix_now_millis().saturating_sub(s.started_unix_ms);
                    running_status(unit, s, usage)
                }
                None => UnitStatus {
                    unit: unit.to_string(),
                    state: UnitState::Running,
                    reason: None,
                    limit_exceeded: None,
                    supervisor_pid: pid,
                    job_pid: None,
                    started_unix_ms: mtime_ms(&dir.join(SPEC)),
                    ended_unix_ms: None,
                    usage,
                },
            };
            if pid.is_some() {
                status.supervisor_pid = pid;
            }
            if self.cgroup.freeze_state(unit).ok() == Some(FreezeState::Frozen) {
                status.state = UnitState::Frozen;
            }
            return Ok(status);
        }
        // The supervisor may have written the exit and ended between our reads.
        if let Some(rec) = files::read_json::<ExitRecord>(&dir, EXIT)? {
            return Ok(rec.into_status(unit));
        }
        Ok(UnitStatus {
            unit: unit.to_string(),
            state: UnitState::Failed,
            reason: Some(SUPERVISOR_LOST.to_string()),
            limit_exceeded: None,
            supervisor_pid: None,
            job_pid: started.as_ref().map(|s| s.job_pid),
            started_unix_ms: started
                .as_ref()
                .map(|s| s.started_unix_ms)
                .unwrap_or_else(|| mtime_ms(&dir.join(SPEC))),
            ended_unix_ms: None,
            usage: self.live_usage(unit),
        })
    }

    fn live_usage(&self, unit: &str) -> Usage {
        // A missing cgroup reads as zero usage: no existence check first.
        self.cgroup.usage(unit).unwrap_or_else(|e| {
            tracing::debug!(target: "xtreem_exec", unit, "reading usage: {e}");
            Usage::default()
        })
    }

    /// Resolves when the unit has ended (also for units started before a
    /// daemon restart): waits on a pidfd of the supervisor, polling when
    /// that is not possible.
    ///
    /// A unit this process launched sends its end on its report pipe,
    /// which is read first; the unit directory is looked at only if the
    /// pipe ends without it (a supervisor killed, say).
    pub async fn wait(&self, unit: &str) -> Result<UnitStatus, ExecError> {
        // `status` says first if there is no such unit.
        let dir = self.unit_dir(unit)?;
        let pending = self.reports.lock().ok().and_then(|mut r| r.remove(unit));
        if let Some(pending) = pending
            && let Some((record, gone)) = read_end(pending).await
        {
            if gone && let Ok(mut set) = self.gone.lock() {
                set.insert(unit.to_string());
            }
            self.reap(unit);
            return Ok(record.into_status(unit));
        }
        loop {
            // Whether the unit has ended is all we need to know: the exit
            // record, else the supervisor's pid from its lock, without the
            // usage and the other records `status` reads.
            if let Some(rec) = files::read_json::<ExitRecord>(&dir, EXIT)? {
                self.reap(unit);
                return Ok(rec.into_status(unit));
            }
            if let Some(fd) = supervisor_pidfd(&dir)?
                && pidfd_ended(fd).await
            {
                continue;
            }
            let status = self.status(unit)?;
            if !status.state.is_active() {
                return Ok(status);
            }
            if let Some(fd) = status.supervisor_pid.and_then(pidfd_open) {
                // The pid could have been reused before pidfd_open: the lock,
                // still held now, proves the pidfd is our supervisor.
                if matches!(files::liveness(&dir)?, Liveness::Alive(_)) {
                    if pidfd_ended(fd).await {
                        continue;
                    }
                } else {
                    continue;
                }
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// Sends `signal` to every process of the unit's cgroup (the
    /// namespace's init is not in it); returns how many. SIGKILL also thaws
    /// a frozen unit so it dies. SIGSTOP and SIGCONT are refused: use
    /// [`Executor::freeze`] and [`Executor::thaw`].
    pub fn signal(&self, unit: &str, signal: i32) -> Result<u32, ExecError> {
        self.existing_unit_dir(unit)?;
        if signal == libc::SIGSTOP || signal == libc::SIGCONT {
            return Err(ExecError::Refused(
                "SIGSTOP and SIGCONT are not sent to units: freeze or thaw the unit instead".into(),
            ));
        }
        if !(0..=libc::SIGRTMAX()).contains(&signal) {
            return Err(ExecError::Refused(format!(
                "{signal} is not a signal number"
            )));
        }
        if signal == libc::SIGKILL {
            return self
                .cgroup
                .kill_all(unit)
                .map_err(io_err(format!("killing unit {unit}")));
        }
        let pids = self
            .cgroup
            .procs(unit)
            .map_err(io_err(format!("listing the processes of {unit}")))?;
        Ok(cgroup::signal_pids(&pids, signal))
    }

    fn require_running(&self, unit: &str) -> Result<(), ExecError> {
        let dir = self.unit_dir(unit)?;
        if files::read_json::<ExitRecord>(&dir, EXIT)?.is_some()
            || self.unit_liveness(unit, &dir)? == Liveness::Gone
        {
            return Err(ExecError::NotRunning(unit.to_string()));
        }
        Ok(())
    }

    /// Freezes every process of the unit (cgroup freezer) and returns once
    /// they are frozen.
    pub fn freeze(&self, unit: &str) -> Result<(), ExecError> {
        self.require_running(unit)?;
        self.cgroup
            .set_frozen(unit, true)
            .map_err(io_err(format!("freezing {unit}")))?;
        let until = Instant::now() + FREEZE_TIMEOUT;
        let mut pause = Duration::from_micros(100);
        loop {
            match self.cgroup.freeze_state(unit) {
                Ok(FreezeState::Frozen) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(ExecError::io(format!("reading the freezer of {unit}"), e)),
            }
            if Instant::now() >= until {
                return Err(ExecError::Cgroup(format!(
                    "unit {unit} is still freezing after {} s",
                    FREEZE_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// Thaws a frozen unit.
    pub fn thaw(&self, unit: &str) -> Result<(), ExecError> {
        self.require_running(unit)?;
        self.cgroup
            .set_frozen(unit, false)
            .map_err(io_err(format!("thawing {unit}")))
    }

    /// Live usage from the cgroup, or the final one recorded at exit.
    pub fn usage(&self, unit: &str) -> Result<Usage, ExecError> {
        Ok(self.status(unit)?.usage)
    }

    /// Deletes an ended unit: its cgroup and its directory. Refused while
    /// the supervisor lives. Collect the final status first.
    pub fn remove(&self, unit: &str) -> Result<(), ExecError> {
        let dir = self.unit_dir(unit)?;
        if self.is_launching(unit) {
            return Err(ExecError::StillRunning(unit.to_string()));
        }
        let seen_gone = self.gone.lock().is_ok_and(|mut set| set.remove(unit));
        if !seen_gone && matches!(self.unit_liveness(unit, &dir)?, Liveness::Alive(_)) {
            // A supervisor that recorded the exit is in its last moments.
            let ended = files::read_json::<ExitRecord>(&dir, EXIT)?.is_some();
            let until = Instant::now() + EXITING_SUPERVISOR_WAIT;
            loop {
                if !ended || Instant::now() >= until {
                    return Err(ExecError::StillRunning(unit.to_string()));
                }
                std::thread::sleep(Duration::from_millis(1));
                if files::liveness(&dir)? == Liveness::Gone {
                    break;
                }
            }
        }
        // The supervisor emptied the cgroup before it ended; only a lost
        // supervisor's unit may still have processes, and then the removal
        // fails (EBUSY): kill them and try again. An absent cgroup is fine.
        let parked = match self.cgroup.remove(unit) {
            Ok(parked) => parked,
            Err(_) => {
                let until = Instant::now() + Duration::from_secs(2);
                while self.cgroup.kill_all(unit).is_ok_and(|n| n > 0) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
                self.cgroup
                    .remove(unit)
                    .map_err(io_err(format!("removing the cgroup of {unit}")))?
            }
        };
        self.forget_removed(unit, &dir, parked)
    }

    /// [`Executor::remove`] without any wait, for async code: `None` when
    /// the removal might have to wait (the unit's end was not read from its
    /// supervisor's report pipe here, or its cgroup still has processes);
    /// then `remove` it on a blocking thread. The usual case is a few
    /// system calls on cgroupfs and a tmpfs, cheaper than a thread hand-off.
    pub fn try_remove_now(&self, unit: &str) -> Option<Result<(), ExecError>> {
        if self.is_launching(unit) || !self.gone.lock().is_ok_and(|set| set.contains(unit)) {
            return None;
        }
        let dir = match self.unit_dir(unit) {
            Ok(dir) => dir,
            Err(e) => return Some(Err(e)),
        };
        // A busy cgroup is left as it was, with the unit still marked gone,
        // for `remove` to kill what is in it.
        let parked = self.cgroup.remove(unit).ok()?;
        if let Ok(mut set) = self.gone.lock() {
            set.remove(unit);
        }
        Some(self.forget_removed(unit, &dir, parked))
    }

    /// The end of a removal, once the unit's cgroup is gone or parked at
    /// `parked`: the executor's memory of the unit and its directory.
    fn forget_removed(
        &self,
        unit: &str,
        dir: &Path,
        parked: Option<usize>,
    ) -> Result<(), ExecError> {
        self.reap(unit);
        if let Ok(mut reports) = self.reports.lock() {
            reports.remove(unit);
        }
        let limits = self.limits.lock().ok().and_then(|mut l| l.remove(unit));
        if let (Some(index), Some(limits)) = (parked, limits)
            && let Ok(mut idle) = self.idle.lock()
        {
            // Parked at `index` now: whatever was remembered there before
            // was taken since.
            idle.retain(|r| r.index != index);
            if idle.len() >= IDLE_REMEMBERED {
                idle.remove(0);
            }
            idle.push(Reuse { index, limits });
        }
        files::remove_unit_dir(dir).map_err(io_err(format!("removing {}", dir.display())))
    }

    /// An idle cgroup for a unit with `limits`, forgotten here as it is
    /// handed out: one with the same limits if there is.
    fn idle_for(&self, limits: &Limits) -> Option<Reuse> {
        let mut idle = self.idle.lock().ok()?;
        let at = idle
            .iter()
            .rposition(|r| r.same_limits(limits))
            .or_else(|| idle.len().checked_sub(1))?;
        Some(idle.remove(at))
    }

    /// Removes our cgroup subtree if no unit and no supervisor is left in it
    /// (tests, node decommissioning).
    /// The fork server lives in `_supervisors`: it is stopped first (later
    /// launches spawn their supervisors).
    pub fn remove_cgroup_parent(&self) -> Result<(), ExecError> {
        let server = self.fork_server.lock().ok().and_then(|mut s| s.take());
        if let Some(server) = server {
            let mut child = server.into_child();
            // It exits as soon as it sees its socket closed.
            let until = Instant::now() + Duration::from_secs(2);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.cgroup
            .remove_parent()
            .map_err(io_err("removing the cgroup parent"))
    }
}

/// Starts a fork server: in `<parent>/_supervisors`, holding our cgroup
/// directories (without them its supervisors use whole paths).
fn start_fork_server(
    supervisor: &[OsString],
    cgroup: &dyn CgroupBackend,
) -> io::Result<ForkServer> {
    let server = ForkServer::spawn(supervisor)?;
    place_fork_server(cgroup, &server);
    if let Err(e) = server.share_dirs(&cgroup.held_dirs()) {
        tracing::warn!(target: "xtreem_exec", "fork server: cannot hand it the cgroup directories: {e}");
    }
    Ok(server)
}

/// Moves the fork server into `<parent>/_supervisors`, so the supervisors
/// it forks are born there (no migration per unit) and leave the daemon's
/// cgroup (a restart of the daemon's service does not take them along).
fn place_fork_server(cgroup: &dyn CgroupBackend, server: &ForkServer) {
    let pid = server.pid().to_string();
    for f in cgroup.supervisor_join_files() {
        if let Err(e) = cgroup::write_value(&f, &pid) {
            tracing::warn!(target: "xtreem_exec", "moving the fork server to {}: {e}", f.display());
        }
    }
}

/// Waits until the process of pidfd `fd` has ended or [`PIDFD_RECHECK`]
/// has passed, whichever is first: true either way (the caller looks
/// again); false if the runtime cannot watch it (the caller then polls).
async fn pidfd_ended(fd: OwnedFd) -> bool {
    // SAFETY: the OwnedFd is a valid descriptor that stays open (owned by
    // the AsyncFd) while it is registered.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    match registered {
        Ok(afd) => {
            let _ = tokio::time::timeout(PIDFD_RECHECK, afd.readable()).await;
            true
        }
        Err(_) => false,
    }
}

/// A pidfd of the unit's supervisor, if it holds its lock and wrote its
/// pid in it. The pid could have been reused before `pidfd_open`: the
/// lock, still held after it, proves the pidfd is the supervisor's.
fn supervisor_pidfd(dir: &Path) -> Result<Option<OwnedFd>, ExecError> {
    let Some((lock, Liveness::Alive(Some(pid)))) = files::open_lock(dir)? else {
        return Ok(None);
    };
    let Some(fd) = pidfd_open(pid) else {
        return Ok(None);
    };
    let held = files::still_held(&lock)
        .map_err(io_err(format!("testing the lock in {}", dir.display())))?;
    Ok(held.then_some(fd))
}

fn running_status(unit: &str, s: &StartedRecord, usage: Usage) -> UnitStatus {
    UnitStatus {
        unit: unit.to_string(),
        state: UnitState::Running,
        reason: None,
        limit_exceeded: None,
        supervisor_pid: Some(s.supervisor_pid),
        job_pid: Some(s.job_pid),
        started_unix_ms: s.started_unix_ms,
        ended_unix_ms: None,
        usage,
    }
}

fn mtime_ms(path: &Path) -> u64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The last lines of the supervisor's log, for error messages.
fn log_tail(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join(files::LOG)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() {
        format!("nothing in {}", dir.join(files::LOG).display())
    } else {
        tail
    }
}

/// Reads a running unit's end from its report pipe: the exit record, and
/// whether the pipe then closed (the supervisor has released its lock and
/// is gone) within [`EXITING_SUPERVISOR_WAIT`]. `None` if the pipe ended
/// or failed without the record.
async fn read_end(mut pipe: ReportPipe) -> Option<(ExitRecord, bool)> {
    let line = pipe.line(None).await.ok()??;
    let Ok(Report::Ended(record)) = serde_json::from_slice::<Report>(&line) else {
        return None;
    };
    let gone = matches!(pipe.line(Some(EXITING_SUPERVISOR_WAIT)).await, Ok(None));
    Some((record, gone))
}
