//! The node's audit log behind one flushing thread. A request appends its
//! record at once (so records keep the order of decisions) and awaits the
//! flush; one `fdatasync` then serves every record appended meanwhile.
//! Blocking in [`AuditLog::append`] instead holds a runtime thread for each
//! request while the disk works, so with two runtime threads at most two
//! records share a flush.

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;
use xtreem_audit::{AuditError, AuditEvent, AuditLog, AuditRecord};

type FlushWaiter = (u64, oneshot::Sender<Result<(), String>>);

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
    while let Ok((first_end, first)) = waiting.recv() {
        let mut end = first_end;
        let mut waiters = vec![first];
        while let Ok((e, w)) = waiting.try_recv() {
            end = end.max(e);
            waiters.push(w);
        }
        let result = log.sync_through(end).map_err(|e| e.to_string());
        for w in waiters {
            let _ = w.send(result.clone());
        }
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
