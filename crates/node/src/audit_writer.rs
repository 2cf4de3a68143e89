//! The node's audit log behind one flushing thread. A request appends its
//! record at once (so records keep the order of decisions) and awaits the
//! flush; one `fdatasync` then serves every record appended meanwhile.
//! Blocking in [`AuditLog::append`] instead holds a runtime thread for each
//! request while the disk works, so with two runtime threads at most two
//! records share a flush.
//!
//! A busy flusher (its last flush served several requests) waits a moment
//! for more before it flushes, as the job writer does before a sync: under a
//! stream of submissions one `fdatasync` then serves many more records, and
//! the wait overlaps the job store's own, which a submission awaits too. An
//! idle flusher waits for nothing.

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;
use xtreem_audit::{AuditError, AuditEvent, AuditLog, AuditRecord};

type FlushWaiter = (u64, oneshot::Sender<Result<(), String>>);

/// How long a busy flusher waits for more records before it flushes: the
/// job writer's wait before a sync, which a submission awaits as well.
const LINGER: std::time::Duration = crate::jobs::writer::LINGER_SYNC;
/// A flush that served at least this many requests marks the flusher busy.
const BUSY_WAITERS: usize = 2;

pub struct AuditWriter {
    log: Arc<AuditLog>,
    flushes: mpsc::Sender<FlushWaiter>,
}

impl AuditWriter {
    /// Starts the flushing thread; it ends when the writer is dropped.
    pub fn start(log: AuditLog) -> std::io::Result<AuditWriter> {
        let log = Arc::new(log);
        let (flushes, waiting) = mpsc::channel();
        let flusher = Arc::clone(&log);
        std::thread::Builder::new()
            .name("audit-flusher".into())
            .spawn(move || flush_loop(&flusher, &waiting))?;
        Ok(AuditWriter { log, flushes })
    }

    /// Appends `event` and returns once it is on disk, blocking the thread.
    pub fn append(&self, event: AuditEvent) -> Result<AuditRecord, AuditError> {
        self.log.append(event)
    }

    /// Appends `event` now; the future resolves once it is on disk, or with
    /// the reason it may not be.
    pub fn append_durably(
        &self,
        event: AuditEvent,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let queued = self.log.append_unsynced(event).map(|appended| {
            let (done, flushed) = oneshot::channel();
            let sent = self.flushes.send((appended.end, done)).is_ok();
            (flushed, sent)
        });
        async move {
            let (flushed, sent) = queued.map_err(|e| e.to_string())?;
            if !sent {
                return Err("the audit flusher has stopped".to_owned());
            }
            flushed
                .await
                .map_err(|_| "the audit flusher stopped before flushing".to_owned())?
        }
    }
}

fn flush_loop(log: &AuditLog, waiting: &mpsc::Receiver<FlushWaiter>) {
    let mut busy = false;
    while let Ok((first_end, first)) = waiting.recv() {
        let mut end = first_end;
        let mut waiters = vec![first];
        drain(waiting, &mut end, &mut waiters);
        if busy {
            std::thread::sleep(LINGER);
            drain(waiting, &mut end, &mut waiters);
        }
        busy = waiters.len() >= BUSY_WAITERS;
        let result = log.sync_through(end).map_err(|e| e.to_string());
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

/// Takes the waiters queued now, extending `end` to the furthest record.
fn drain(
    waiting: &mpsc::Receiver<FlushWaiter>,
    end: &mut u64,
    waiters: &mut Vec<oneshot::Sender<Result<(), String>>>,
) {
    while let Ok((e, w)) = waiting.try_recv() {
        *end = (*end).max(e);
        waiters.push(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtreem_audit::Decision;

    #[tokio::test]
    async fn concurrent_durable_appends_form_one_chain_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let writer =
            Arc::new(AuditWriter::start(AuditLog::open(&path, "node-1").unwrap()).unwrap());
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let flushed = writer.append_durably(AuditEvent::new(
                    "alice",
                    "submit_job",
                    format!("job-{i}"),
                    Decision::Allow,
                ));
                tokio::spawn(flushed)
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let report = xtreem_audit::verify(&path).unwrap();
        assert_eq!(report.records, 200);
        assert!(report.is_intact(), "{report:?}");
    }
}
