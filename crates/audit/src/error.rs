//! Errors of the audit log. Each names the file it is about, because an
//! operator reading one has to know which node's log to look at.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = AuditError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },

    #[error("cannot read audit log {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    /// No new record was logged.
    #[error("cannot write audit log {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },

    /// `fdatasync` failed after the line was written: the record may or may
    /// not survive a crash, so the caller must not count it as logged.
    #[error(
        "cannot flush audit log {}: {source}; the decision may not be durably logged and the log refuses new records until reopened",
        path.display()
    )]
    Flush { path: PathBuf, source: io::Error },

    #[error("audit log {} does not exist; check the node's data directory", path.display())]
    Missing { path: PathBuf },

    /// Opening refuses to extend a chain whose last record is unreadable or
    /// altered: new records would be chained to something untrustworthy.
    #[error(
        "audit log {} is damaged at line {line}: {reason}; run `xos audit verify` on it and move it aside before this node logs again",
        path.display()
    )]
    Damaged {
        path: PathBuf,
        line: u64,
        reason: String,
    },

    #[error(
        "audit record for action {action:?} would be {bytes} bytes, over the {limit}-byte limit; shorten its detail"
    )]
    TooLarge {
        action: String,
        bytes: usize,
        limit: usize,
    },

    #[error("cannot encode audit record for action {action:?}: {source}")]
    Encode {
        action: String,
        source: serde_json::Error,
    },

    /// After a failed flush the file's contents are unknown (the kernel may
    /// drop or keep the dirty pages), so appending more would risk a chain
    /// with a hole; reopening re-reads the tail and decides afresh.
    #[error(
        "audit log {} refuses new records after an earlier write failed; reopen it",
        path.display()
    )]
    Unusable { path: PathBuf },
}
