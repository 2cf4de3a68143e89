//! Execution of job units on a resource node.
//!
//! A *unit* is one program run for a job: `n1.42.0`. [`Executor::launch`]
//! writes its [`LaunchSpec`] into `ROOT/<unit>/` (0700 root) and has a
//! **supervisor** started for it: a separate process, in a session of its
//! own, that outlives the daemon. A daemon killed with SIGKILL and restarted
//! finds its units again with [`Executor::units`] and [`Executor::status`],
//! and [`Executor::wait`] works for them as for new ones. Supervisors are
//! forked by a small fork server the executor keeps (`<supervisor...>
//! --fork-server`; [`supervisor_command`] prefers the small
//! `xtreem-supervisor` program this crate builds), so a launch does not
//! exec the daemon's binary.
//!
//! The supervisor (see [`supervise`] and the `supervisor` module) puts the
//! job in:
//! - a cgroup `<parent>/<unit>` (v1: one per hierarchy; v2: one) with the
//!   [`Limits`]: CPU quota, memory (swap included), pids; the job is in it
//!   before it execs (v2: born there with `clone3(CLONE_INTO_CGROUP)`);
//! - a PID namespace in which the job is **pid 2**: pid 1 is the supervisor
//!   itself, outside the unit's cgroup, which reaps orphans; when the job
//!   ends it kills what is left in the cgroup, and its own exit ends the
//!   namespace and everything still in it;
//! - a mount namespace (slave of the host's, so host mounts still reach it)
//!   with a private tmpfs `/tmp` sized to the memory limit and its own
//!   `/proc`; a workdir under `/tmp` is bound back in place;
//! - the job's uid and gid (never 0, checked after the switch), with its
//!   files (stdin, stdout, stderr, workdir) opened with that identity, an
//!   environment that is exactly the spec's, and no descriptor but 0, 1, 2.
//!
//! It reports "started" (or why not) on a pipe the launcher reads, enforces
//! the walltime (SIGTERM, SIGKILL [`KILL_GRACE`] later), records
//! `started.json` and `exit.json` (state, reason, usage from the cgroup),
//! kills whatever the job left behind and reports the end on the same
//! pipe: [`Executor::wait`] reads it there for units this process
//! launched ([`Executor::launch_async`] awaits the start on the runtime),
//! and the files otherwise. The daemon freezes, thaws, signals and
//! measures units through their cgroups directly.
//!
//! [`floor`] measures, for benchmarks, what this isolation costs by itself
//! on the machine, with none of the executor's own work.
//!
//! The cgroup version is detected at [`Executor::open`]
//! ([`detect_cgroups`]): cgroup2 with the cpu, memory and pids controllers,
//! else the v1 hierarchies, else a bare cgroup2 (no limits, with a
//! warning). [`Executor::open_with`] can force one.

mod cgroup;
mod criu;
mod error;
mod executor;
mod files;
pub mod floor;
mod forkserver;
mod open_files;
mod report_pipe;
mod spec;
mod statedir;
mod status;
mod supervisor;

pub use cgroup::{
    CgroupBackend, CgroupConfig, CgroupV1, CgroupV2, CgroupVersion, FreezeState, MountEntry,
    SUPERVISORS, V1Hierarchy, detect as detect_cgroups, parse_mountinfo,
};
pub use criu::criu_available;
pub use error::ExecError;
pub use executor::{Executor, FREEZE_TIMEOUT, LAUNCH_TIMEOUT, SUPERVISOR_LOST};
pub use forkserver::FORK_SERVER_ARG;
pub use open_files::raise_open_files_limit;
pub use spec::{
    CPU_PERIOD_US, CREDENTIAL_PATH, CheckpointSignal, DEFAULT_PATH, DEFAULT_PIDS, KILL_GRACE,
    LaunchSpec, Limits, NOTE_BYTES_MAX, Secret, Stream, UNIT_NAME_MAX, validate_unit_name,
};
pub use statedir::{is_tmpfs, prepare_private_parent, state_dir_for};
pub use status::{LimitExceeded, UnitState, UnitStatus, Usage};
pub use supervisor::supervise;

/// The cgroup subtree of the node named `node` whose data lives in
/// `data_dir`: named after both, so several nodes on one host (tests,
/// demos) never share one, and anyone knowing the node can find it.
pub fn cgroup_parent_for(node: &str, data_dir: &std::path::Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    format!("xtreem-{node}-{}", hex::encode(&digest[..4]))
}

/// The standalone supervisor program this crate builds (`src/bin`).
pub const SUPERVISOR_PROGRAM: &str = "xtreem-supervisor";

/// The supervisor command for a daemon whose program is `daemon_exe`: the
/// standalone [`SUPERVISOR_PROGRAM`] installed beside it if there is one,
/// else `<daemon_exe> supervise` (the daemon's hidden subcommand).
///
/// Both run the same code. The standalone one is preferred because every
/// unit's supervisor is a fork of a process running it: a program a thirtieth
/// the daemon's size has fewer mappings and relocated pages to copy at each
/// fork, fault in afterwards and tear down at each exit.
pub fn supervisor_command(daemon_exe: &std::path::Path) -> Vec<std::ffi::OsString> {
    if let Some(dir) = daemon_exe.parent() {
        let standalone = dir.join(SUPERVISOR_PROGRAM);
        if is_executable_file(&standalone) {
            return vec![standalone.into_os_string()];
        }
    }
    vec![daemon_exe.as_os_str().to_owned(), "supervise".into()]
}

fn is_executable_file(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
