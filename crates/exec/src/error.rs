//! The error type of the execution layer.

use std::path::PathBuf;

/// Why an executor operation failed. A job that ran and failed is not an
/// error: it is a [`crate::UnitStatus`] in state `Failed`, `Exited` or
/// `Signaled`.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The launch spec is unusable (what is wrong is in the text).
    #[error("invalid launch spec: {0}")]
    InvalidSpec(String),
    /// A unit name outside `[a-z0-9._-]{1,100}`.
    #[error("invalid unit name {name:?}: {why}")]
    InvalidUnit { name: String, why: &'static str },
    /// `launch` with the name of a unit that is still on disk.
    #[error("unit {0} already exists; remove it first")]
    UnitExists(String),
    /// No unit directory of that name.
    #[error("no unit {0}")]
    NoSuchUnit(String),
    /// `remove` (or another operation that needs an ended unit) on a unit that
    /// is still running.
    #[error("unit {0} is still running; wait for it to end or kill it first")]
    StillRunning(String),
    /// `freeze`/`thaw` on a unit that has ended.
    #[error("unit {0} is not running")]
    NotRunning(String),
    /// A request the executor refuses as asked (the text says what to do).
    #[error("{0}")]
    Refused(String),
    /// No usable cgroup hierarchy, or a cgroup file that cannot be used.
    #[error("cgroups: {0}")]
    Cgroup(String),
    /// The supervisor could not be started or did not report.
    #[error("supervisor: {0}")]
    Supervisor(String),
    /// A state file of a unit that does not parse.
    #[error("corrupt state file {}: {why}", path.display())]
    State { path: PathBuf, why: String },
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ExecError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> ExecError {
        ExecError::Io {
            context: context.into(),
            source,
        }
    }
}

/// `map_err` helper: `.map_err(io_err("reading x"))`.
pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExecError {
    let context = context.into();
    move |source| ExecError::Io { context, source }
}
