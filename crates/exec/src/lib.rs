//! Execution of job units on a resource node.
//!
//! A *unit* is one program run for a job: `n1.42.0`. [`Executor::launch`]
//! writes its [`LaunchSpec`] into `ROOT/<unit>/` (0700 root) and starts a
//! **supervisor** for it, a separate process in its own session that
//! outlives the daemon: a daemon killed with SIGKILL and restarted finds its
//! units again with [`Executor::units`] and [`Executor::status`], and
//! [`Executor::wait`] works for them as for new ones.
//!
//! The supervisor (see [`supervise`] and the `supervisor` module) puts the
//! job in:
//! - a cgroup `<parent>/<unit>` (v1: one per hierarchy; v2: one) with the
//!   [`Limits`]: CPU quota, memory (swap included), pids; joined before exec;
//! - a PID namespace in which the job is **pid 2** (pid 1 is a tiny init
//!   outside the cgroup that reaps orphans; when the job ends, the init is
//!   killed and with it everything left in the namespace);
//! - a mount namespace with a private tmpfs `/tmp` (sized to the memory
//!   limit) and its own `/proc`; a workdir under `/tmp` is bound back in
//!   place;
//! - the job's uid and gid (never 0, checked after the switch), with its
//!   files (stdin, stdout, stderr, workdir) opened with that identity, an
//!   environment that is exactly the spec's, and no descriptor but 0, 1, 2.
//!
//! It enforces the walltime (SIGTERM, SIGKILL [`KILL_GRACE`] later), records
//! `started.json` and `exit.json` (state, reason, usage from the cgroup)
//! and kills whatever the job left behind. The daemon freezes, thaws,
//! signals and measures units through the cgroup directly.

mod cgroup;
mod criu;
mod error;
mod executor;
mod files;
mod spec;
mod status;
mod supervisor;

pub use cgroup::{
    CgroupBackend, CgroupConfig, CgroupV1, CgroupV2, CgroupVersion, FreezeState, MountEntry,
    SUPERVISORS, V1Hierarchy, detect as detect_cgroups, parse_mountinfo,
};
pub use criu::criu_available;
pub use error::ExecError;
pub use executor::{Executor, FREEZE_TIMEOUT, LAUNCH_TIMEOUT, SUPERVISOR_LOST};
pub use spec::{
    CPU_PERIOD_US, CheckpointSignal, DEFAULT_PATH, DEFAULT_PIDS, KILL_GRACE, LaunchSpec, Limits,
    Stream, UNIT_NAME_MAX, validate_unit_name,
};
pub use status::{LimitExceeded, UnitState, UnitStatus, Usage};
pub use supervisor::supervise;
