//! The writer: one open log file per node, appended under a mutex and
//! flushed before a record is acknowledged. Flushes are shared (group
//! commit): records appended while one `fdatasync` runs are flushed
//! together by the next, so concurrent requests do not queue behind one
//! flush each.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{AuditError, Result};
use crate::lines::count_lines;
use crate::record::{self, AuditEvent, AuditRecord, GENESIS_PREV, MAX_RECORD_BYTES};

/// An append-only, hash-chained log of decisions taken on one node.
///
/// One process should hold a given file open at a time: two writers would
/// each continue the chain from what they last saw and fork it.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    node: String,
    state: Mutex<State>,
    /// Signalled when a flush ends.
    flushed: Condvar,
    /// A second descriptor of the file, flushed without holding `state`.
    flusher: File,
}

/// A record written but not yet known to be on disk.
#[derive(Debug)]
pub struct Appended {
    pub record: AuditRecord,
    /// The file's length up to the end of this record.
    pub end: u64,
}

#[derive(Debug)]
struct State {
    file: File,
    /// `seq` and `hash` of the last record on disk (0 and zeros when empty).
    seq: u64,
    hash: String,
    /// Length of the file up to the end of the last complete record; a
    /// failed write is cut back to it.
    len: u64,
    /// False after a failure that left the file's contents in doubt.
    usable: bool,
    /// Length known to be on disk.
    synced_len: u64,
    /// A flush is running.
    flushing: bool,
}

impl AuditLog {
    /// Opens the log at `path`, creating it (mode 0600) and its directory if
    /// needed, and continues the chain from its last record. A torn last
    /// line (no newline: the process died mid-write, so the record was never
    /// acknowledged) is cut off. A last record that does not parse or whose
    /// hash does not match refuses the open, naming its line.
    pub fn open(path: &Path, node: &str) -> Result<AuditLog> {
        let open_err = |source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        };
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent {
            fs::create_dir_all(dir).map_err(open_err)?;
        }
        // O_APPEND: every write lands at the end whatever the file offset.
        let mut options = OpenOptions::new();
        options.read(true).append(true).mode(0o600);
        let file = match options.clone().create_new(true).open(path) {
            Ok(file) => {
                // Without this the directory entry, and with it every record
                // acknowledged so far, may be lost in a crash.
                File::open(parent.unwrap_or(Path::new(".")))
                    .and_then(|d| d.sync_all())
                    .map_err(open_err)?;
                file
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                options.open(path).map_err(open_err)?
            }
            Err(e) => return Err(open_err(e)),
        };

        let read_err = |source| AuditError::Read {
            path: path.to_path_buf(),
            source,
        };
        let len = file.metadata().map_err(read_err)?.len();
        let tail = read_tail(&file, len).map_err(read_err)?;
        let damaged = |line_end: u64, extra: u64, reason: String| -> AuditError {
            match count_lines(&file, line_end) {
                Ok(n) => AuditError::Damaged {
                    path: path.to_path_buf(),
                    line: n + extra,
                    reason,
                },
                Err(source) => read_err(source),
            }
        };
        let (complete_len, last_line) = match tail {
            Tail::Good {
                complete_len,
                last_line,
            } => (complete_len, last_line),
            Tail::Bad {
                line_end,
                extra,
                reason,
            } => return Err(damaged(line_end, extra, reason.to_owned())),
        };
        let (seq, hash) = match last_line {
            None => (0, GENESIS_PREV.to_owned()),
            Some(line) => match record::check_line(&line) {
                Ok(rec) => (rec.seq, rec.hash),
                Err(fault) => return Err(damaged(complete_len, 0, fault.reason)),
            },
        };
        // Only now, with the chain's end known to be sound, is anything cut.
        if complete_len < len {
            file.set_len(complete_len)
                .and_then(|()| file.sync_data())
                .map_err(|source| AuditError::Write {
                    path: path.to_path_buf(),
                    source,
                })?;
            tracing::warn!(
                path = %path.display(),
                bytes = len - complete_len,
                "audit log ended in an incomplete record (a write was interrupted); removed it",
            );
        }
        let flusher = file.try_clone().map_err(open_err)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            node: node.to_owned(),
            state: Mutex::new(State {
                file,
                seq,
                hash,
                len: complete_len,
                usable: true,
                synced_len: complete_len,
                flushing: false,
            }),
            flushed: Condvar::new(),
            flusher,
        })
    }

    /// Appends `event` as the next record and returns it once it is on disk
    /// (`fdatasync`), so an acknowledged decision survives a crash. A record
    /// whose line would exceed `MAX_RECORD_BYTES` is refused and nothing is
    /// written.
    pub fn append(&self, event: AuditEvent) -> Result<AuditRecord> {
        let appended = self.append_unsynced(event)?;
        self.sync_through(appended.end)?;
        Ok(appended.record)
    }

    /// Appends `event` as the next record without waiting for the disk: the
    /// caller must not acknowledge the decision before
    /// [`sync_through`](Self::sync_through) of the returned end has
    /// returned. Lets one flushing thread make the records of many
    /// concurrent requests durable with one `fdatasync`, where each caller
    /// blocking in [`append`](Self::append) would hold a thread each.
    pub fn append_unsynced(&self, event: AuditEvent) -> Result<Appended> {
        // Poisoning needs a panic while the lock is held, and nothing here
        // panics; if it ever happens the file's state is unknown.
        let mut guard = self.state.lock().map_err(|_| self.unusable())?;
        let state = &mut *guard;
        if !state.usable {
            return Err(self.unusable());
        }
        let seq = state.seq + 1;
        // Taken under the lock so that time order follows seq order (as far
        // as the wall clock allows).
        let encoded = record::encode(seq, now_ms(), &self.node, event, &state.hash)?;

        if let Err(source) = state.file.write_all(&encoded.line) {
            // A partial line would sit between this record and the next and
            // break the chain; cut back to the last good record if we can.
            state.usable = state
                .file
                .set_len(state.len)
                .and_then(|()| state.file.sync_data())
                .is_ok();
            return Err(AuditError::Write {
                path: self.path.clone(),
                source,
            });
        }
        state.len += encoded.line.len() as u64;
        state.seq = seq;
        state.hash.clone_from(&encoded.record.hash);
        Ok(Appended {
            record: encoded.record,
            end: state.len,
        })
    }

    /// Returns once the file is on disk up to `end` (an
    /// [`Appended::end`]); an error means the records up to there may be
    /// lost, and the log refuses further records.
    pub fn sync_through(&self, end: u64) -> Result<()> {
        let guard = self.state.lock().map_err(|_| self.unusable())?;
        self.flush_through(guard, end)
    }

    /// Returns once the file is on disk up to `end`: flushes it, or waits
    /// for the flush that is running and then flushes what came after.
    fn flush_through<'a>(
        &'a self,
        mut guard: std::sync::MutexGuard<'a, State>,
        end: u64,
    ) -> Result<()> {
        loop {
            if guard.synced_len >= end {
                return Ok(());
            }
            if !guard.usable {
                return Err(self.unusable());
            }
            if guard.flushing {
                guard = self.flushed.wait(guard).map_err(|_| self.unusable())?;
                continue;
            }
            guard.flushing = true;
            let target = guard.len;
            drop(guard);
            let result = self.flusher.sync_data();
            guard = self.state.lock().map_err(|_| self.unusable())?;
            guard.flushing = false;
            match result {
                Ok(()) => guard.synced_len = guard.synced_len.max(target),
                // After a failed fsync the kernel may have dropped the dirty
                // pages or may still write them; a retry can falsely succeed.
                // Refuse further records until a reopen re-reads the tail.
                Err(source) => {
                    guard.usable = false;
                    self.flushed.notify_all();
                    return Err(AuditError::Flush {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
            self.flushed.notify_all();
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn unusable(&self) -> AuditError {
        AuditError::Unusable {
            path: self.path.clone(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What the end of the file holds.
#[derive(Debug, PartialEq, Eq)]
enum Tail {
    Good {
        /// Length up to and including the last newline.
        complete_len: u64,
        /// The last complete line without its newline; `None` if there is none.
        last_line: Option<Vec<u8>>,
    },
    /// The damaged line is line `count_lines(line_end) + extra`.
    Bad {
        line_end: u64,
        extra: u64,
        reason: &'static str,
    },
}

/// Reads only the end of the file. A torn fragment holds at most
/// `MAX_RECORD_BYTES` and the last complete line at most as much plus its
/// newline, so this window always holds both and the newline before them.
fn read_tail(file: &File, len: u64) -> io::Result<Tail> {
    let window = 2 * (MAX_RECORD_BYTES as u64 + 1);
    let start = len.saturating_sub(window);
    let mut buf = vec![0u8; usize::try_from(len - start).unwrap_or(usize::MAX)];
    file.read_exact_at(&mut buf, start)?;

    let complete = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if start == 0 => 0,
        None => buf.len() + 1,
    };
    if buf.len().saturating_sub(complete) > MAX_RECORD_BYTES || complete > buf.len() {
        return Ok(Tail::Bad {
            line_end: len,
            extra: 1,
            reason: "the last line has no newline and is longer than any record: \
                     this is not an interrupted write",
        });
    }
    let complete_len = start + complete as u64;
    let Some((_newline, body)) = buf[..complete].split_last() else {
        return Ok(Tail::Good {
            complete_len,
            last_line: None,
        });
    };
    let line_start = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if start == 0 => 0,
        None => body.len() + 1,
    };
    if body.len().saturating_sub(line_start) > MAX_RECORD_BYTES || line_start > body.len() {
        return Ok(Tail::Bad {
            line_end: complete_len,
            extra: 0,
            reason: "the last record is longer than the 64 KiB limit",
        });
    }
    Ok(Tail::Good {
        complete_len,
        last_line: Some(body[line_start..].to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{event, log_with, read_lines, write_lines};
    use crate::verify;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn unsynced_appends_are_made_durable_by_one_sync_through_the_last_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path, "node-1").unwrap();
        let ends: Vec<u64> = (0..5)
            .map(|i| log.append_unsynced(event(i)).unwrap().end)
            .collect();
        assert!(ends.windows(2).all(|w| w[0] < w[1]), "{ends:?}");
        assert!(log.state.lock().unwrap().synced_len < ends[4]);
        log.sync_through(ends[4]).unwrap();
        assert_eq!(log.state.lock().unwrap().synced_len, ends[4]);
        // An earlier end is already covered: no second flush is needed.
        log.sync_through(ends[1]).unwrap();
        let report = verify(&path).unwrap();
        assert_eq!(report.records, 5);
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), ends[4]);
    }

    #[test]
    fn concurrent_appends_share_flushes_and_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = std::sync::Arc::new(AuditLog::open(&path, "node-1").unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = std::sync::Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        log.append(event(t * 100 + i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(read_lines(&path).len(), 400);
        let report = verify(&path).unwrap();
        assert_eq!(report.records, 400);
        assert!(report.is_intact(), "{report:?}");
        let state = log.state.lock().unwrap();
        assert_eq!(
            state.synced_len, state.len,
            "every acknowledged record is flushed"
        );
    }

    #[test]
    fn appended_records_form_a_chain_that_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path, "node-1").unwrap();
        let mut prev = GENESIS_PREV.to_owned();
        for i in 1..=10 {
            let rec = log.append(event(i)).unwrap();
            assert_eq!(rec.seq, i);
            assert_eq!(rec.prev, prev);
            assert_eq!(rec.node, "node-1");
            prev = rec.hash;
        }
        assert_eq!(read_lines(&path).len(), 10);
        let report = verify(&path).unwrap();
        assert_eq!(report.records, 10);
        assert!(report.is_intact(), "{report:?}");
    }

    #[test]
    fn reopening_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 3);
        let last_hash = {
            let lines = read_lines(&path);
            let last: AuditRecord = serde_json::from_str(&lines[2]).unwrap();
            last.hash
        };
        let log = AuditLog::open(&path, "node-1").unwrap();
        let rec = log.append(event(4)).unwrap();
        assert_eq!(rec.seq, 4);
        assert_eq!(rec.prev, last_hash);
        drop(log);
        let log = AuditLog::open(&path, "node-1").unwrap();
        assert_eq!(log.append(event(5)).unwrap().seq, 5);
        assert_eq!(verify(&path).unwrap().records, 5);
        assert!(verify(&path).unwrap().is_intact());
    }

    #[test]
    fn file_is_private_and_its_directory_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/audit.log");
        let log = AuditLog::open(&path, "node-1").unwrap();
        log.append(event(1)).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(log.path(), path);
    }

    #[test]
    fn an_existing_empty_file_starts_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        fs::write(&path, b"").unwrap();
        let log = AuditLog::open(&path, "node-1").unwrap();
        let rec = log.append(event(1)).unwrap();
        assert_eq!((rec.seq, rec.prev.as_str()), (1, GENESIS_PREV));
    }

    #[test]
    fn a_torn_last_line_is_reported_by_verify_and_cut_by_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 3);
        let intact = fs::read(&path).unwrap();
        let mut torn = intact.clone();
        torn.extend_from_slice(br#"{"seq":4,"time_ms":17"#);
        fs::write(&path, &torn).unwrap();

        let report = verify(&path).unwrap();
        assert_eq!(report.records, 3);
        let broken = report.first_broken.unwrap();
        assert_eq!((broken.line, broken.seq), (4, None));
        assert!(broken.reason.contains("incomplete last line"), "{broken}");

        let log = AuditLog::open(&path, "node-1").unwrap();
        assert_eq!(fs::read(&path).unwrap(), intact);
        assert_eq!(log.append(event(4)).unwrap().seq, 4);
        let report = verify(&path).unwrap();
        assert_eq!(report.records, 4);
        assert!(report.is_intact(), "{report:?}");
    }

    #[test]
    fn a_torn_first_line_leaves_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        fs::write(&path, br#"{"seq":1,"ti"#).unwrap();
        let log = AuditLog::open(&path, "node-1").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(log.append(event(1)).unwrap().seq, 1);
    }

    #[test]
    fn open_refuses_a_last_record_that_does_not_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 3);
        let mut lines = read_lines(&path);
        lines.push("this is not json".to_owned());
        write_lines(&path, &lines);
        let before = fs::read(&path).unwrap();

        let err = AuditLog::open(&path, "node-1").unwrap_err();
        match &err {
            AuditError::Damaged { line, reason, .. } => {
                assert_eq!(*line, 4);
                assert!(reason.starts_with("not valid JSON"), "{reason}");
            }
            other => panic!("expected Damaged, got {other}"),
        }
        assert!(err.to_string().contains("line 4"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before);
    }

    #[test]
    fn open_refuses_an_altered_last_record_and_leaves_a_torn_tail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 3);
        let mut lines = read_lines(&path);
        lines[2] = lines[2].replace("\"deny\"", "\"allow\"");
        write_lines(&path, &lines);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"seq\":4");
        fs::write(&path, &bytes).unwrap();

        match AuditLog::open(&path, "node-1").unwrap_err() {
            AuditError::Damaged { line, reason, .. } => {
                assert_eq!(line, 3);
                assert_eq!(reason, "hash mismatch: the record was altered");
            }
            other => panic!("expected Damaged, got {other}"),
        }
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn open_refuses_a_huge_unterminated_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 2);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend(std::iter::repeat_n(b'x', 3 * MAX_RECORD_BYTES));
        fs::write(&path, &bytes).unwrap();
        match AuditLog::open(&path, "node-1").unwrap_err() {
            AuditError::Damaged { line, .. } => assert_eq!(line, 3),
            other => panic!("expected Damaged, got {other}"),
        }
        assert_eq!(fs::read(&path).unwrap().len(), bytes.len());
    }

    #[test]
    fn an_oversized_record_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), 2);
        let before = fs::read(&path).unwrap();
        let log = AuditLog::open(&path, "node-1").unwrap();
        let huge = event(3).with_detail(serde_json::json!({ "blob": "x".repeat(70_000) }));
        let err = log.append(huge).unwrap_err();
        assert!(matches!(err, AuditError::TooLarge { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before);
        // The refused record used no sequence number.
        assert_eq!(log.append(event(3)).unwrap().seq, 3);
        assert!(verify(&path).unwrap().is_intact());
    }

    #[test]
    fn concurrent_appends_form_one_valid_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path, "node-1").unwrap();
        let threads = 8;
        let per_thread = 25;
        let mut seqs: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let log = &log;
                    s.spawn(move || {
                        (0..per_thread)
                            .map(|i| log.append(event(t * 100 + i)).unwrap().seq)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=threads * per_thread).collect::<Vec<_>>());
        let report = verify(&path).unwrap();
        assert_eq!(report.records, threads * per_thread);
        assert!(report.is_intact(), "{report:?}");
    }
}
