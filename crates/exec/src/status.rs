//! The state of a unit as callers see it, and the records the supervisor
//! leaves in the unit directory.

use serde::{Deserialize, Serialize};

/// Where a unit is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitState {
    /// The supervisor is alive (the job is starting or running).
    Running,
    /// Running, and its cgroup is frozen.
    Frozen,
    /// The job process exited with this code.
    Exited { code: i32 },
    /// The job process was killed by this signal.
    Signaled { signal: i32 },
    /// The job never started (see the reason) or its supervisor was lost.
    Failed,
}

impl UnitState {
    /// Running or frozen: not ended.
    pub fn is_active(&self) -> bool {
        matches!(self, UnitState::Running | UnitState::Frozen)
    }
}

/// Which limit ended a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitExceeded {
    Walltime,
    Memory,
}

/// Resource usage of a unit (the whole cgroup).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_ns: u64,
    pub peak_memory_bytes: u64,
    pub io_read_bytes: u64,
    pub io_write_bytes: u64,
    pub wall_ms: u64,
}

/// What [`crate::Executor::status`] and friends answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitStatus {
    pub unit: String,
    pub state: UnitState,
    /// Why it ended, when that is not plain: "walltime 2s exceeded",
    /// "memory limit 64 MiB exceeded (OOM kill)", "cannot execute ...",
    /// "supervisor lost".
    pub reason: Option<String>,
    /// The limit that ended the unit, if one did.
    pub limit_exceeded: Option<LimitExceeded>,
    /// Host pid of the supervisor while it runs.
    pub supervisor_pid: Option<i32>,
    /// Host pid of the job process (pid 2 in its namespace).
    pub job_pid: Option<i32>,
    pub started_unix_ms: u64,
    pub ended_unix_ms: Option<u64>,
    pub usage: Usage,
}

/// `started.json`: written by the supervisor once the job process has exec'd.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StartedRecord {
    pub supervisor_pid: i32,
    pub job_pid: i32,
    pub started_unix_ms: u64,
}

/// `exit.json`: written by the supervisor when the unit has ended and every
/// process of it is gone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ExitRecord {
    pub state: UnitState,
    pub reason: Option<String>,
    pub limit_exceeded: Option<LimitExceeded>,
    pub job_pid: Option<i32>,
    pub started_unix_ms: u64,
    pub ended_unix_ms: u64,
    pub usage: Usage,
}

impl ExitRecord {
    pub(crate) fn into_status(self, unit: &str) -> UnitStatus {
        UnitStatus {
            unit: unit.to_string(),
            state: self.state,
            reason: self.reason,
            limit_exceeded: self.limit_exceeded,
            supervisor_pid: None,
            job_pid: self.job_pid,
            started_unix_ms: self.started_unix_ms,
            ended_unix_ms: Some(self.ended_unix_ms),
            usage: self.usage,
        }
    }
}

/// The lines the supervisor writes to the launcher's pipe: `Started` then
/// `Ended`, or `Failed` alone.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Report {
    Started(StartedRecord),
    Failed(ExitRecord),
    /// The unit's end, as `exit.json` has it (sent after writing it).
    Ended(ExitRecord),
}
