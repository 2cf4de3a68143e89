//! Checking a whole log: every line parses, its hash covers its bytes, seq
//! counts up by one from 1 and each prev is the hash before it. Reading
//! only; a torn last line is reported here and repaired by
//! `AuditLog::open`, so `verify` shows what is on disk.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use serde::Serialize;

use crate::error::{AuditError, Result};
use crate::lines::{Line, next_line};
use crate::record::{self, GENESIS_PREV, MAX_RECORD_BYTES};

/// The outcome of `verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records that checked out, in order from the first; when the chain is
    /// broken, those before the break.
    pub records: u64,
    /// The first line that breaks the chain; nothing after it is trusted,
    /// so nothing after it is checked.
    pub first_broken: Option<Broken>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Where and why the chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// 1-based line number in the file.
    pub line: u64,
    /// The line's `seq`, when it can be read.
    pub seq: Option<u64>,
    pub reason: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "line {} (seq {seq}): {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// Checks the log at `path`. A missing file is an error (a node that has
/// decided anything has a log, so its absence is worth a question); an
/// empty one is an intact log of 0 records.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    let read_err = |source| AuditError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(AuditError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(read_err(e)),
    };
    let mut reader = BufReader::new(file);
    let mut chain = Chain::new();
    while let Some(line) = next_line(&mut reader).map_err(read_err)? {
        if let Err(broken) = chain.push(line) {
            return Ok(VerifyReport {
                records: chain.records,
                first_broken: Some(broken),
            });
        }
    }
    Ok(VerifyReport {
        records: chain.records,
        first_broken: None,
    })
}

/// The state carried from one line to the next.
struct Chain {
    line: u64,
    records: u64,
    seq: u64,
    hash: String,
}

impl Chain {
    fn new() -> Chain {
        Chain {
            line: 0,
            records: 0,
            seq: 0,
            hash: GENESIS_PREV.to_owned(),
        }
    }

    fn push(&mut self, line: Line) -> std::result::Result<(), Broken> {
        self.line += 1;
        let broken = |seq: Option<u64>, reason: String| Broken {
            line: self.line,
            seq,
            reason,
        };
        let bytes = match line {
            Line::Complete(bytes) => bytes,
            Line::Torn(_) => {
                return Err(broken(
                    None,
                    "incomplete last line (no newline): a write was interrupted; \
                     opening the log to append removes it"
                        .to_owned(),
                ));
            }
            Line::TooLong => {
                return Err(broken(
                    None,
                    format!("line is longer than the {MAX_RECORD_BYTES}-byte record limit"),
                ));
            }
        };
        // The record's own hash first: an altered record is the most useful
        // thing to report, and its seq and prev mean nothing if altered.
        let rec = record::check_line(&bytes).map_err(|f| broken(f.seq, f.reason))?;
        let expected = self.seq + 1;
        if rec.seq != expected {
            let reason = if self.seq == 0 {
                format!(
                    "the first record has seq {}, expected 1: the start of the log was removed",
                    rec.seq
                )
            } else if rec.seq > expected {
                format!(
                    "seq {} follows {}: a record was removed or reordered",
                    rec.seq, self.seq
                )
            } else {
                format!(
                    "seq {} follows {}: a record was inserted, duplicated or reordered",
                    rec.seq, self.seq
                )
            };
            return Err(broken(Some(rec.seq), reason));
        }
        if rec.prev != self.hash {
            let reason = if self.seq == 0 {
                "prev of the first record is not 64 zeros: the log does not start at its beginning"
                    .to_owned()
            } else {
                format!(
                    "prev does not match record {}: a record was replaced, removed or reordered",
                    self.seq
                )
            };
            return Err(broken(Some(rec.seq), reason));
        }
        self.records += 1;
        self.seq = rec.seq;
        self.hash = rec.hash;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditRecord;
    use crate::record::encode;
    use crate::testutil::{event, log_with, read_lines, write_lines};

    /// Builds a log of `n` records, lets `edit` change its lines, and
    /// returns what verify says.
    fn check_edit(n: u64, edit: impl FnOnce(&mut Vec<String>)) -> VerifyReport {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), n);
        let mut lines = read_lines(&path);
        edit(&mut lines);
        write_lines(&path, &lines);
        verify(&path).unwrap()
    }

    fn expect_broken(report: &VerifyReport, line: u64, seq: Option<u64>, reason: &str) {
        let broken = report
            .first_broken
            .as_ref()
            .expect("the chain should be broken");
        assert_eq!((broken.line, broken.seq), (line, seq), "{broken}");
        assert!(broken.reason.contains(reason), "{broken}");
        assert_eq!(report.records, line - 1, "records before the break");
    }

    fn parse(line: &str) -> AuditRecord {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn a_missing_file_is_an_error_and_an_empty_one_is_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.log");
        let err = verify(&path).unwrap_err();
        assert!(matches!(err, AuditError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("nope.log"), "{err}");

        std::fs::write(&path, b"").unwrap();
        let report = verify(&path).unwrap();
        assert_eq!(report.records, 0);
        assert!(report.is_intact());
    }

    #[test]
    fn a_changed_decision_is_named_as_altered() {
        let report = check_edit(5, |lines| {
            assert!(lines[2].contains("\"decision\":\"deny\""));
            lines[2] = lines[2].replace("\"decision\":\"deny\"", "\"decision\":\"allow\"");
        });
        expect_broken(&report, 3, Some(3), "hash mismatch: the record was altered");
    }

    #[test]
    fn a_deleted_middle_line_is_named() {
        let report = check_edit(5, |lines| {
            lines.remove(2);
        });
        expect_broken(&report, 3, Some(4), "seq 4 follows 2");
    }

    #[test]
    fn swapped_lines_are_named() {
        let report = check_edit(5, |lines| lines.swap(2, 3));
        expect_broken(&report, 3, Some(4), "seq 4 follows 2");
    }

    #[test]
    fn a_duplicated_line_is_named() {
        let report = check_edit(5, |lines| {
            let copy = lines[1].clone();
            lines.insert(2, copy);
        });
        expect_broken(&report, 3, Some(2), "seq 2 follows 2");
    }

    #[test]
    fn a_naively_inserted_line_is_named_as_altered() {
        let report = check_edit(5, |lines| {
            let fake = lines[1].replace("user2", "root");
            lines.insert(2, fake);
        });
        expect_broken(&report, 3, Some(2), "hash mismatch");
    }

    #[test]
    fn a_forged_insert_with_a_valid_hash_breaks_the_next_line() {
        // Whoever knows the format can chain a record of their own; the
        // record after it then no longer fits.
        let report = check_edit(5, |lines| {
            let prev = parse(&lines[1]).hash;
            let forged = encode(3, 0, "node-1", event(99), &prev).unwrap();
            let text = String::from_utf8(forged.line).unwrap();
            lines.insert(2, text.trim_end().to_owned());
        });
        expect_broken(
            &report,
            4,
            Some(3),
            "seq 3 follows 3: a record was inserted, duplicated or reordered",
        );
    }

    #[test]
    fn a_replaced_record_with_a_wrong_prev_is_named() {
        let report = check_edit(5, |lines| {
            let wrong_prev = parse(&lines[0]).hash;
            let forged = encode(3, 0, "node-1", event(3), &wrong_prev).unwrap();
            lines[2] = String::from_utf8(forged.line)
                .unwrap()
                .trim_end()
                .to_owned();
        });
        expect_broken(&report, 3, Some(3), "prev does not match record 2");
    }

    #[test]
    fn a_removed_first_line_is_named() {
        let report = check_edit(3, |lines| {
            lines.remove(0);
        });
        expect_broken(
            &report,
            1,
            Some(2),
            "the first record has seq 2, expected 1",
        );
    }

    #[test]
    fn a_garbage_line_is_named() {
        let report = check_edit(4, |lines| lines[1] = "}{".to_owned());
        expect_broken(&report, 2, None, "not valid JSON");
    }

    #[test]
    fn an_overlong_line_is_named() {
        let report = check_edit(2, |lines| lines.insert(1, "x".repeat(MAX_RECORD_BYTES + 1)));
        expect_broken(&report, 2, None, "longer than the 65536-byte record limit");
    }

    #[test]
    fn records_removed_from_the_end_go_unnoticed_by_the_chain_alone() {
        // Documented limit: only an anchor kept elsewhere (the latest seq
        // and hash) reveals a shortened log.
        let report = check_edit(5, |lines| lines.truncate(3));
        assert_eq!(report.records, 3);
        assert!(report.is_intact());
    }

    #[test]
    fn broken_displays_line_seq_and_reason() {
        let broken = Broken {
            line: 3,
            seq: Some(3),
            reason: "hash mismatch: the record was altered".to_owned(),
        };
        assert_eq!(
            broken.to_string(),
            "line 3 (seq 3): hash mismatch: the record was altered"
        );
    }
}
