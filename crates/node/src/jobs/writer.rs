//! One writer for job state: commands from every task go through a channel
//! and are committed in batches (group commit), one disk sync per batch.
//!
//! Commands of one job are sent in the order their changes were made (the
//! caller sends while holding the lock under which it changed the record),
//! and the writer applies them in that order, so the store never goes back
//! to an older record. A caller that must not answer before its change is
//! durable (an acknowledged submit, a unit's end) awaits the reply.
//!
//! Two things keep the syncs few when the node is busy. A batch in which
//! nobody awaits durability is committed without a sync: it reaches the
//! disk with the next durable batch, or after `UNSYNCED_MAX_AGE` at the
//! latest (the window a crash can lose changes nobody waited for was
//! already "until the next batch"). And a writer whose last batch held
//! several commands waits for more before it commits (`LINGER`, or
//! `LINGER_SYNC` before a sync), as PostgreSQL's `commit_delay` does: one
//! sync then serves many changes, and an idle writer waits for nothing.
//! Nothing that makes room for jobs waits on a sync (a unit's end frees
//! its room in memory first), so the longer wait costs no throughput.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use xtreem_store::{Store, StoreError};

use super::machine::{JobCommand, JobMachine};

/// Commands applied in one transaction at most.
const BATCH_MAX: usize = 512;
/// How long a busy writer waits for more commands before it commits.
const LINGER: Duration = Duration::from_millis(1);
/// How long a busy writer waits for more before a batch that needs a disk
/// sync: one sync then serves more changes.
pub(crate) const LINGER_SYNC: Duration = Duration::from_millis(4);
/// A batch of at least this many commands marks the writer busy.
const BUSY_BATCH: usize = 2;
/// Changes nobody awaited are on disk at most this long after their commit.
const UNSYNCED_MAX_AGE: Duration = Duration::from_millis(50);

type Reply = oneshot::Sender<Result<Vec<String>, String>>;

/// What the sender of a command waits for.
enum Wait {
    /// Its batch is on disk: the batch is committed with a sync.
    Durable(Reply),
    /// Its batch is committed (readers of the store see it), synced or not.
    Applied(Reply),
}

impl Wait {
    fn needs_sync(&self) -> bool {
        matches!(self, Wait::Durable(_))
    }

    fn reply(self, result: Result<Vec<String>, String>) {
        let (Wait::Durable(reply) | Wait::Applied(reply)) = self;
        let _ = reply.send(result);
    }
}

type Item = (JobCommand, Option<Wait>);

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Item>,
}

impl Writer {
    /// Starts the writer task on `store`; it ends when every `Writer` is
    /// dropped, after writing what was sent.
    pub fn start(store: Arc<Store>) -> Writer {
        let (tx, rx) = mpsc::channel();
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
    pub fn write(&self, command: JobCommand) -> Written {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((command, Some(Wait::Durable(reply)))).is_err() {
            tracing::error!("the job writer has stopped; a job change is not saved");
        }
        Written(answer)
    }

    /// Queues `command` like [`Writer::send`] (no disk sync is asked for)
    /// and returns what to await for readers of the store to see it.
    pub fn apply(&self, command: JobCommand) -> Written {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((command, Some(Wait::Applied(reply)))).is_err() {
            tracing::error!("the job writer has stopped; a job change is not saved");
        }
        Written(answer)
    }
}

/// The promise that a queued command gets written: on disk for
/// [`Writer::write`], in the store for [`Writer::apply`].
pub struct Written(oneshot::Receiver<Result<Vec<String>, String>>);

impl Written {
    /// The machine's output once the command is written.
    pub async fn done(self) -> Result<Vec<String>, String> {
        self.0
            .await
            .map_err(|_| "the job writer stopped before writing".to_owned())?
    }
}

fn write_loop(store: &Store, rx: mpsc::Receiver<Item>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    let mut busy = false;
    // When the oldest commit not yet on disk was made.
    let mut unsynced_since: Option<Instant> = None;
    loop {
        let first = match unsynced_since {
            None => match rx.recv() {
                Ok(first) => first,
                Err(_) => return,
            },
            Some(since) => {
                match rx.recv_timeout(UNSYNCED_MAX_AGE.saturating_sub(since.elapsed())) {
                    Ok(first) => first,
                    Err(stop) => {
                        match store.sync() {
                            Ok(()) => unsynced_since = None,
                            Err(e) => tracing::error!(error = %e, "cannot sync the job store"),
                        }
                        if stop == RecvTimeoutError::Disconnected {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        batch.push(first);
        drain(&rx, &mut batch);
        if busy && batch.len() < BATCH_MAX {
            let sync = batch
                .iter()
                .any(|(_, wait)| wait.as_ref().is_some_and(Wait::needs_sync));
            std::thread::sleep(if sync { LINGER_SYNC } else { LINGER });
            drain(&rx, &mut batch);
        }
        busy = batch.len() >= BUSY_BATCH;
        let durable = batch
            .iter()
            .any(|(_, wait)| wait.as_ref().is_some_and(Wait::needs_sync))
            || unsynced_since.is_some_and(|t| t.elapsed() >= UNSYNCED_MAX_AGE);
        let (commands, replies): (Vec<JobCommand>, Vec<Option<Wait>>) = batch.drain(..).unzip();
        let written = if durable {
            store.execute_many(&JobMachine, &commands)
        } else {
            store.execute_many_unsynced(&JobMachine, &commands)
        };
        match written {
            Ok(outputs) => {
                if durable {
                    unsynced_since = None;
                } else {
                    unsynced_since.get_or_insert_with(Instant::now);
                }
                for (wait, output) in replies.into_iter().zip(outputs) {
                    if let Some(wait) = wait {
                        wait.reply(Ok(output));
                    }
                }
            }
            // A durable command commits what came before it too.
            Err(e) => {
                if write_one_by_one(store, commands, replies, &e) {
                    unsynced_since = None;
                }
            }
        }
    }
}

/// Moves what is queued into `batch`, up to `BATCH_MAX`.
fn drain(rx: &mpsc::Receiver<Item>, batch: &mut Vec<Item>) {
    while batch.len() < BATCH_MAX {
        match rx.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
}

/// A failed batch is retried command by command, so one bad command does
/// not take the others with it. Whether any of them was written (durably).
fn write_one_by_one(
    store: &Store,
    commands: Vec<JobCommand>,
    replies: Vec<Option<Wait>>,
    batch_error: &StoreError,
) -> bool {
    tracing::warn!(error = %batch_error, "a batch of job changes failed; writing them one by one");
    let mut any_written = false;
    for (command, reply) in commands.into_iter().zip(replies) {
        let result = store
            .execute(&JobMachine, command)
            .map_err(|e| e.to_string());
        match &result {
            Ok(_) => any_written = true,
            Err(e) => tracing::error!(error = %e, "a job change could not be saved"),
        }
        if let Some(wait) = reply {
            wait.reply(result);
        }
    }
    any_written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::machine::query;
    use crate::jobs::record::test_reservation;

    fn reservation(id: &str, cores: u32) -> crate::jobs::record::Reservation {
        test_reservation(id, cores, 0, 1)
    }

    fn held(store: &Store) -> Vec<(String, u32)> {
        store
            .read(query::held)
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.cores))
            .collect()
    }

    #[tokio::test]
    async fn an_awaited_write_lands_after_the_unawaited_ones_sent_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("jobs.redb")).unwrap());
        let writer = Writer::start(Arc::clone(&store));
        for cores in 1..=50 {
            writer.send(JobCommand::PutHeld {
                reservation: reservation("r-a", cores),
            });
        }
        writer
            .write(JobCommand::PutHeld {
                reservation: reservation("r-b", 7),
            })
            .done()
            .await
            .unwrap();
        assert_eq!(held(&store), vec![("r-a".into(), 50), ("r-b".into(), 7)]);
    }

    #[tokio::test]
    async fn an_applied_change_is_readable_once_its_promise_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("jobs.redb")).unwrap());
        let writer = Writer::start(Arc::clone(&store));
        for cores in 1..=20 {
            writer
                .apply(JobCommand::PutHeld {
                    reservation: reservation(&format!("r-{cores}"), cores),
                })
                .done()
                .await
                .unwrap();
            assert_eq!(held(&store).len(), cores as usize);
        }
    }

    #[tokio::test]
    async fn unawaited_changes_are_applied_without_any_awaited_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("jobs.redb")).unwrap());
        let writer = Writer::start(Arc::clone(&store));
        writer.send(JobCommand::PutHeld {
            reservation: reservation("r-a", 3),
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while held(&store).is_empty() {
            assert!(Instant::now() < deadline, "the change was never applied");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(held(&store), vec![("r-a".into(), 3)]);
        // The writer syncs it by itself once idle; a sync after that has
        // nothing left to do and succeeds.
        tokio::time::sleep(UNSYNCED_MAX_AGE * 2).await;
        store.sync().unwrap();
    }
}
