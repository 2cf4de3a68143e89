//! The audit log of Xtreem: every decision of consequence on a node (logins,
//! VO and membership changes, policy changes, delegation, job and file
//! actions) appended as one JSON line to a file on the node that decided.
//!
//! Records are hash-chained: each carries `prev`, the hash of the record
//! before it, and `hash`, SHA-256 over `prev` and its own canonical JSON.
//! Changing, removing, inserting or reordering a record breaks the chain at
//! that point, and [`verify`] names the first line where it breaks. The
//! chain alone does not stop someone who can write the file from
//! rewriting every record after a change; anchoring the latest hash
//! somewhere else is what closes that gap.
//!
//! Main types:
//! - [`AuditLog`]: opens a log (repairing a torn last line) and appends
//!   records, each flushed to disk before `append` returns.
//! - [`AuditEvent`] what a caller reports; [`AuditRecord`] what is stored.
//! - [`verify`] and its [`VerifyReport`].
//!
//! ```
//! use xtreem_audit::{AuditEvent, AuditLog, Decision, verify};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("audit.log");
//! let log = AuditLog::open(&path, "node-1").unwrap();
//! let rec = log
//!     .append(
//!         AuditEvent::new("alice", "vo.create", "vo/physics", Decision::Allow)
//!             .with_detail(serde_json::json!({ "members": 3 })),
//!     )
//!     .unwrap();
//! assert_eq!(rec.seq, 1);
//!
//! let report = verify(&path).unwrap();
//! assert_eq!(report.records, 1);
//! assert!(report.first_broken.is_none());
//! ```
//!
//! Architecture invariant: audit knows nothing of VOs or jobs; it stores
//! events. What an action or target means is the caller's business.

mod error;
mod lines;
mod log;
mod record;
#[cfg(test)]
mod testutil;
mod verify;

pub use error::{AuditError, Result};
pub use log::{Appended, AuditLog};
pub use record::{AuditEvent, AuditRecord, Decision, GENESIS_PREV, MAX_RECORD_BYTES};
pub use verify::{Broken, VerifyReport, verify};
