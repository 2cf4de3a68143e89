//! What the home of a job keeps about it, and what a resource node keeps
//! about the units it runs.
//!
//! Both are plain data, changed only through [`super::machine::JobMachine`]
//! commands, so the home's records can later be replicated like any other
//! state machine.

use serde::{Deserialize, Serialize};
use xtreem_proto::jobs as pb;

/// Who submitted a job, from the credential checked at submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub subject: String,
    pub issuer: String,
    pub vo: String,
    pub groups: Vec<String>,
}

/// Where a job stands, as `xps` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Waiting for dependencies or for nodes; the reason says which.
    Queued,
    /// Kept from starting by `xos hold`.
    Held,
    Running,
    /// Every unit frozen by `xkill -s STOP`.
    Suspended,
    /// Every unit exited 0.
    Done,
    Failed,
    /// Killed by a user before it ended by itself.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Held,
        JobState::Running,
        JobState::Suspended,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Held => "held",
            JobState::Running => "running",
            JobState::Suspended => "suspended",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }

    /// Whether units of the job may be on nodes now.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Running | JobState::Suspended)
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn text(self) -> String {
        match self {
            Exit::Code(c) => format!("exit {c}"),
            Exit::Signal(s) => format!("signal {s}"),
        }
    }

    /// The exit code a shell would report: 128 + signal for a signal.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }

    pub fn is_success(self) -> bool {
        self == Exit::Code(0)
    }
}

/// Where a unit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitState {
    /// Not placed yet.
    Pending,
    Running,
    Suspended,
    /// Ended by itself or by a signal; `exit` says how.
    Ended,
    /// Could not start, or was ended by a limit; the reason says why.
    Failed,
    /// Its node died or forgot it.
    Lost,
}

impl UnitState {
    pub fn name(self) -> &'static str {
        match self {
            UnitState::Pending => "pending",
            UnitState::Running => "running",
            UnitState::Suspended => "suspended",
            UnitState::Ended => "ended",
            UnitState::Failed => "failed",
            UnitState::Lost => "lost",
        }
    }

    pub fn is_over(self) -> bool {
        matches!(self, UnitState::Ended | UnitState::Failed | UnitState::Lost)
    }
}

/// Resource use of a unit, from its cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_ns: u64,
    pub peak_memory_bytes: u64,
    pub io_read_bytes: u64,
    pub io_write_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRecord {
    pub rank: u32,
    /// Empty while pending.
    pub node: String,
    pub state: UnitState,
    pub exit: Option<Exit>,
    pub reason: String,
    pub started_unix_ms: u64,
    pub ended_unix_ms: u64,
    pub usage: Usage,
    /// Which placement of the job this unit belongs to (restarts count up).
    pub attempt: u32,
}

impl UnitRecord {
    pub fn pending(rank: u32) -> UnitRecord {
        UnitRecord {
            rank,
            node: String::new(),
            state: UnitState::Pending,
            exit: None,
            reason: String::new(),
            started_unix_ms: 0,
            ended_unix_ms: 0,
            usage: Usage::default(),
            attempt: 0,
        }
    }

    pub fn to_pb(&self) -> pb::UnitInfo {
        pb::UnitInfo {
            rank: self.rank,
            node: self.node.clone(),
            state: self.state.name().to_owned(),
            exit: self.exit.map(Exit::text).unwrap_or_default(),
            reason: self.reason.clone(),
            started_unix_ms: self.started_unix_ms,
            ended_unix_ms: self.ended_unix_ms,
            cpu_ns: self.usage.cpu_ns,
            peak_memory_bytes: self.usage.peak_memory_bytes,
            io_read_bytes: self.usage.io_read_bytes,
            io_write_bytes: self.usage.io_write_bytes,
            attempt: self.attempt,
        }
    }
}

/// One line of a job's timeline (`xos status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub unix_ms: u64,
    pub text: String,
}

/// Timelines are bounded so a job that is restarted again and again cannot
/// grow its record without end; the first events and the latest are kept.
pub const EVENTS_MAX: usize = 64;

/// A job as its home keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `HOME.SEQ` or `HOME.SEQ_INDEX`; set by the machine at submission.
    pub id: String,
    /// The job description as canonical JSON.
    pub spec: String,
    pub name: String,
    pub owner: Owner,
    /// The owner's credential, which resource nodes check and map to a local
    /// account. Dropped once the job has ended.
    pub token: String,
    pub state: JobState,
    pub reason: String,
    pub priority: i32,
    pub cores: u32,
    pub memory_bytes: u64,
    pub submitted_unix_ms: u64,
    pub started_unix_ms: u64,
    pub ended_unix_ms: u64,
    pub units: Vec<UnitRecord>,
    pub events: Vec<Event>,
    /// Placements so far; a unit reporting an older attempt is stale.
    pub attempt: u32,
    pub restarts: u32,
    /// Self-checkpointing as declared: the exit code that means "I saved my
    /// files, restart me", the signal that asks for it, and the files.
    pub checkpoint: Option<CheckpointDecl>,
    /// Checkpoint files this home holds, by rank.
    pub saved: Vec<SavedFile>,
    pub checkpoints: u32,
    /// A directory query the next placement must match (`xos migrate`).
    pub migrate_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointDecl {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    pub rank: u32,
    pub file: String,
    pub size: u64,
}

impl JobRecord {
    pub fn event(&mut self, unix_ms: u64, text: impl Into<String>) {
        if self.events.len() >= EVENTS_MAX {
            // Keep the opening of the timeline; drop the oldest of the rest.
            self.events.remove(EVENTS_MAX / 4);
        }
        self.events.push(Event {
            unix_ms,
            text: text.into(),
        });
    }

    /// Adds an event in time order (a decision may be recorded after events
    /// that happened later, such as a quick unit's end).
    pub fn event_at(&mut self, unix_ms: u64, text: impl Into<String>) {
        self.event(unix_ms, text);
        if let Some(last) = self.events.pop() {
            let at = self
                .events
                .iter()
                .rposition(|e| e.unix_ms <= last.unix_ms)
                .map_or(0, |i| i + 1);
            self.events.insert(at, last);
        }
    }

    /// The job's exit: the first unit that did not succeed, else unit 0's.
    pub fn exit(&self) -> Option<Exit> {
        self.units
            .iter()
            .filter_map(|u| u.exit)
            .find(|e| !e.is_success())
            .or_else(|| self.units.first().and_then(|u| u.exit))
    }

    pub fn to_pb(&self, with_events: bool) -> pb::JobInfo {
        let exit = self.exit();
        pb::JobInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            owner: self.owner.subject.clone(),
            vo: self.owner.vo.clone(),
            state: self.state.name().to_owned(),
            reason: self.reason.clone(),
            home: self.id.split('.').next().unwrap_or_default().to_owned(),
            submitted_unix_ms: self.submitted_unix_ms,
            started_unix_ms: self.started_unix_ms,
            ended_unix_ms: self.ended_unix_ms,
            exit: exit.map(Exit::text).unwrap_or_default(),
            exit_code: exit.map(Exit::code).unwrap_or(0),
            units: self.units.iter().map(UnitRecord::to_pb).collect(),
            events: if with_events {
                self.events
                    .iter()
                    .map(|e| pb::JobEvent {
                        unix_ms: e.unix_ms,
                        text: e.text.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            priority: self.priority,
            cores: self.cores,
            memory_bytes: self.memory_bytes,
            restarts: self.restarts,
            from_replica: false,
        }
    }
}

/// A unit as the resource node running it keeps it: enough to re-adopt it
/// after a daemon restart, to report its end to the home until the home
/// answers, and to show it in `xps` when the home is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalUnit {
    /// `JOB.RANK`: the executor's unit name.
    pub unit: String,
    pub job: String,
    pub home: String,
    pub name: String,
    pub owner: Owner,
    pub rank: u32,
    pub size: u32,
    pub attempt: u32,
    pub cores: u32,
    pub memory_bytes: u64,
    pub uid: u32,
    pub stdout: String,
    pub stderr: String,
    pub submitted_unix_ms: u64,
    pub record: UnitRecord,
    /// The home has acknowledged the unit's end.
    pub reported: bool,
    pub workdir: String,
    pub reservation: Option<String>,
    pub checkpoint: Option<CheckpointDecl>,
}

impl LocalUnit {
    /// The job as this node can describe it from one of its units.
    pub fn to_pb(&self) -> pb::JobInfo {
        let state = match self.record.state {
            UnitState::Running => "running",
            UnitState::Suspended => "suspended",
            UnitState::Ended if self.record.exit.is_some_and(Exit::is_success) => "done",
            UnitState::Pending => "queued",
            _ => "failed",
        };
        pb::JobInfo {
            id: self.job.clone(),
            name: self.name.clone(),
            owner: self.owner.subject.clone(),
            vo: self.owner.vo.clone(),
            state: state.to_owned(),
            reason: self.record.reason.clone(),
            home: self.home.clone(),
            submitted_unix_ms: self.submitted_unix_ms,
            started_unix_ms: self.record.started_unix_ms,
            ended_unix_ms: self.record.ended_unix_ms,
            exit: self.record.exit.map(Exit::text).unwrap_or_default(),
            exit_code: self.record.exit.map(Exit::code).unwrap_or(0),
            units: vec![self.record.to_pb()],
            events: Vec::new(),
            priority: 0,
            cores: self.cores,
            memory_bytes: self.memory_bytes,
            restarts: 0,
            from_replica: true,
        }
    }
}

/// A reservation (XtreemOS's xreservation): capacity on some nodes for a
/// window, for its owner's jobs. Kept by its home and by each node holding
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// `r-HOME.SEQ`.
    pub id: String,
    pub owner: Owner,
    pub nodes: Vec<String>,
    pub cores: u32,
    pub memory_bytes: u64,
    pub start_unix_ms: u64,
    pub end_unix_ms: u64,
    pub exclusive: bool,
    pub cancelled: bool,
}

impl Reservation {
    pub fn is_active_at(&self, now_ms: u64) -> bool {
        !self.cancelled && self.start_unix_ms <= now_ms && now_ms < self.end_unix_ms
    }

    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        !self.cancelled && self.start_unix_ms < end && start < self.end_unix_ms
    }

    pub fn state_at(&self, now_ms: u64) -> &'static str {
        if self.cancelled {
            "cancelled"
        } else if now_ms < self.start_unix_ms {
            "waiting"
        } else if now_ms < self.end_unix_ms {
            "active"
        } else {
            "ended"
        }
    }

    pub fn to_pb(&self, now_ms: u64) -> pb::ReservationInfo {
        pb::ReservationInfo {
            id: self.id.clone(),
            owner: self.owner.subject.clone(),
            vo: self.owner.vo.clone(),
            nodes: self.nodes.clone(),
            cores: self.cores,
            memory_bytes: self.memory_bytes,
            start_unix_ms: self.start_unix_ms,
            end_unix_ms: self.end_unix_ms,
            exclusive: self.exclusive,
            state: self.state_at(now_ms).to_owned(),
        }
    }

    pub fn from_pb(info: &pb::ReservationInfo, owner: Owner) -> Reservation {
        Reservation {
            id: info.id.clone(),
            owner,
            nodes: info.nodes.clone(),
            cores: info.cores,
            memory_bytes: info.memory_bytes,
            start_unix_ms: info.start_unix_ms,
            end_unix_ms: info.end_unix_ms,
            exclusive: info.exclusive,
            cancelled: info.state == "cancelled",
        }
    }
}

/// A queued one-unit job of alice (tests).
#[cfg(test)]
pub fn sample_job(id: &str, priority: i32, at: u64) -> JobRecord {
    JobRecord {
        id: id.into(),
        spec: String::new(),
        name: id.into(),
        owner: Owner {
            subject: "alice".into(),
            issuer: "i".into(),
            vo: "demo".into(),
            groups: Vec::new(),
        },
        token: String::new(),
        state: JobState::Queued,
        reason: String::new(),
        priority,
        cores: 2,
        memory_bytes: 10,
        submitted_unix_ms: at,
        started_unix_ms: 0,
        ended_unix_ms: 0,
        units: vec![UnitRecord::pending(0)],
        events: Vec::new(),
        attempt: 0,
        restarts: 0,
        checkpoint: None,
        saved: Vec::new(),
        checkpoints: 0,
        migrate_to: None,
    }
}

/// A reservation of alice (VO bio) on `n1`, for tests.
#[cfg(test)]
pub(crate) fn test_reservation(id: &str, cores: u32, start: u64, end: u64) -> Reservation {
    Reservation {
        id: id.into(),
        owner: Owner {
            subject: "alice".into(),
            issuer: String::new(),
            vo: "bio".into(),
            groups: Vec::new(),
        },
        nodes: vec!["n1".into()],
        cores,
        memory_bytes: 0,
        start_unix_ms: start,
        end_unix_ms: end,
        exclusive: false,
        cancelled: false,
    }
}
