//! One writer for job state: commands from every task go through a channel
//! and are committed in batches (group commit), one disk sync per batch.
//!
//! Commands of one job are sent in the order their changes were made (the
//! caller sends while holding the lock under which it changed the record),
//! and the writer applies them in that order, so the store never goes back
//! to an older record. A caller that must not answer before its change is
//! durable (an acknowledged submit, a unit's end) awaits the reply.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use xtreem_store::{Store, StoreError};

use super::machine::{JobCommand, JobMachine};

/// Commands applied in one transaction at most.
const BATCH_MAX: usize = 512;

type Reply = oneshot::Sender<Result<Vec<String>, String>>;

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<(JobCommand, Option<Reply>)>,
}

impl Writer {
    /// Starts the writer task on `store`; it ends when every `Writer` is
    /// dropped, after writing what was sent.
    pub fn start(store: Arc<Store>) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("job-writer".into())
            .spawn(move || write_loop(&store, rx))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the job writer"));
        Writer { tx }
    }

    /// Queues `command`; it is written with the next batch.
    pub fn send(&self, command: JobCommand) {
        if self.tx.send((command, None)).is_err() {
            tracing::error!("the job writer has stopped; a job change is not saved");
        }
    }

    /// Queues `command` now (so it keeps its place in the order of changes)
    /// and returns what to await for it to be durable.
    pub fn write(&self, command: JobCommand) -> Durable {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((command, Some(reply))).is_err() {
            tracing::error!("the job writer has stopped; a job change is not saved");
        }
        Durable(answer)
    }
}

/// The promise that a queued command gets written.
pub struct Durable(oneshot::Receiver<Result<Vec<String>, String>>);

impl Durable {
    /// The machine's output once the command is on disk.
    pub async fn done(self) -> Result<Vec<String>, String> {
        self.0
            .await
            .map_err(|_| "the job writer stopped before writing".to_owned())?
    }
}

fn write_loop(store: &Store, mut rx: mpsc::UnboundedReceiver<(JobCommand, Option<Reply>)>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (commands, replies): (Vec<JobCommand>, Vec<Option<Reply>>) = batch.drain(..).unzip();
        match store.execute_many(&JobMachine, &commands) {
            Ok(outputs) => {
                for (reply, output) in replies.into_iter().zip(outputs) {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(output));
                    }
                }
            }
            Err(e) => write_one_by_one(store, commands, replies, &e),
        }
    }
}

/// A failed batch is retried command by command, so one bad command does
/// not take the others with it.
fn write_one_by_one(
    store: &Store,
    commands: Vec<JobCommand>,
    replies: Vec<Option<Reply>>,
    batch_error: &StoreError,
) {
    tracing::warn!(error = %batch_error, "a batch of job changes failed; writing them one by one");
    for (command, reply) in commands.into_iter().zip(replies) {
        let result = store
            .execute(&JobMachine, command)
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "a job change could not be saved");
        }
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
}
