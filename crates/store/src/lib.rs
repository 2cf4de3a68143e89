//! The one embedded store of an Xtreem node: every piece of state that must
//! survive a crash goes through it.
//!
//! State changes are *commands* applied in order by a [`StateMachine`]: the
//! store appends the command to its log, lets the machine apply it to its
//! tables, and commits both in one durable redb transaction before the caller
//! gets an answer. If the machine refuses a command, nothing is written. A
//! core service written this way can later be replicated by putting a Raft log
//! in front of [`Store::execute`] without changing the machine.
//!
//! Architecture invariant: `store` never opens a socket and knows nothing of
//! the services that use it.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use xtreem_store::{Store, StateMachine, Table, WriteTxn, StoreError};
//!
//! const COUNTERS: Table<u64> = Table::new("counters");
//!
//! struct Counter;
//! #[derive(Serialize, Deserialize)]
//! struct Add(u64);
//!
//! impl StateMachine for Counter {
//!     const NAME: &'static str = "counter";
//!     type Command = Add;
//!     type Output = u64;
//!     type Error = StoreError;
//!     fn apply(&self, txn: &WriteTxn, cmd: &Add) -> Result<u64, StoreError> {
//!         let total = COUNTERS.get_w(txn, "total")?.unwrap_or(0) + cmd.0;
//!         COUNTERS.insert(txn, "total", &total)?;
//!         Ok(total)
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(&dir.path().join("state.redb")).unwrap();
//! assert_eq!(store.execute(&Counter, Add(2)).unwrap(), 2);
//! assert_eq!(store.execute(&Counter, Add(3)).unwrap(), 5);
//! assert_eq!(store.read(|r| COUNTERS.get(r, "total")).unwrap(), Some(5));
//! ```

mod error;
mod machine;
mod table;

pub use error::{Result, StoreError};
pub use machine::StateMachine;
pub use table::{ReadTxn, Table, WriteTxn};

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

/// Applied commands, by index. Kept (bounded) so that a replica could catch up.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("_log");
/// Store bookkeeping: the index of the last applied command.
const META: TableDefinition<&str, u64> = TableDefinition::new("_meta");
const META_APPLIED_INDEX: &str = "applied_index";

/// Bytes of pages the store keeps in memory.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Version byte in front of every encoded command in the log.
const LOG_ENCODING_V1: u8 = 1;

/// An open store. Cheap to share behind an `Arc`; redb serialises writers.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the store file at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        // redb caches up to 1 GiB by default; a node's memory should not
        // grow with its history (job records, logs), so the cache is
        // bounded and older pages come from the OS page cache.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| StoreError::open(path, e))?;
        let store = Store { db };
        // Create the bookkeeping tables so read transactions always find them.
        let txn = store.db.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(store)
    }

    /// Applies one command durably: log append, state change and applied
    /// index commit together, or not at all.
    pub fn execute<M: StateMachine>(
        &self,
        machine: &M,
        command: M::Command,
    ) -> std::result::Result<M::Output, M::Error> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let index = {
            let meta = txn.open_table(META).map_err(StoreError::from)?;
            let applied = meta
                .get(META_APPLIED_INDEX)
                .map_err(StoreError::from)?
                .map(|v| v.value())
                .unwrap_or(0);
            applied + 1
        };
        let write = WriteTxn { txn };
        let output = machine.apply(&write, &command)?;
        let txn = write.txn;
        {
            let mut log = txn.open_table(LOG).map_err(StoreError::from)?;
            log.insert(index, encode_log_entry(M::NAME, &command)?.as_slice())
                .map_err(StoreError::from)?;
            if index > xtreem_util::limits::STORE_LOG_RETAINED_ENTRIES {
                let oldest_kept = index - xtreem_util::limits::STORE_LOG_RETAINED_ENTRIES;
                log.retain_in(..oldest_kept, |_, _| false)
                    .map_err(StoreError::from)?;
            }
            let mut meta = txn.open_table(META).map_err(StoreError::from)?;
            meta.insert(META_APPLIED_INDEX, index)
                .map_err(StoreError::from)?;
        }
        txn.commit().map_err(StoreError::from)?;
        Ok(output)
    }

    /// Applies `commands` in order in one durable transaction (group
    /// commit): one disk sync for the lot. If the machine refuses any of
    /// them, nothing is written and the refusal is returned; callers that
    /// need each command's own answer retry them one by one.
    pub fn execute_many<M: StateMachine>(
        &self,
        machine: &M,
        commands: &[M::Command],
    ) -> std::result::Result<Vec<M::Output>, M::Error> {
        self.execute_batch(machine, commands, redb::Durability::Immediate)
    }

    /// Like [`execute_many`](Self::execute_many), without the disk sync:
    /// readers see the changes at once, and they reach the disk, in order
    /// and whole, with the next durable commit ([`sync`](Self::sync) or any
    /// durable execute). A crash before that loses them; it never tears a
    /// batch or reorders batches. For changes nobody waits on, so that a
    /// busy writer pays one sync for many batches.
    pub fn execute_many_unsynced<M: StateMachine>(
        &self,
        machine: &M,
        commands: &[M::Command],
    ) -> std::result::Result<Vec<M::Output>, M::Error> {
        self.execute_batch(machine, commands, redb::Durability::None)
    }

    /// Makes every commit so far durable (one disk sync).
    pub fn sync(&self) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.commit()?;
        Ok(())
    }

    fn execute_batch<M: StateMachine>(
        &self,
        machine: &M,
        commands: &[M::Command],
        durability: redb::Durability,
    ) -> std::result::Result<Vec<M::Output>, M::Error> {
        let mut txn = self.db.begin_write().map_err(StoreError::from)?;
        txn.set_durability(durability).map_err(StoreError::from)?;
        let mut index = {
            let meta = txn.open_table(META).map_err(StoreError::from)?;
            meta.get(META_APPLIED_INDEX)
                .map_err(StoreError::from)?
                .map(|v| v.value())
                .unwrap_or(0)
        };
        let write = WriteTxn { txn };
        let mut outputs = Vec::with_capacity(commands.len());
        for command in commands {
            outputs.push(machine.apply(&write, command)?);
        }
        let txn = write.txn;
        {
            let mut log = txn.open_table(LOG).map_err(StoreError::from)?;
            for command in commands {
                index += 1;
                log.insert(index, encode_log_entry(M::NAME, command)?.as_slice())
                    .map_err(StoreError::from)?;
            }
            if index > xtreem_util::limits::STORE_LOG_RETAINED_ENTRIES {
                let oldest_kept = index - xtreem_util::limits::STORE_LOG_RETAINED_ENTRIES;
                log.retain_in(..oldest_kept, |_, _| false)
                    .map_err(StoreError::from)?;
            }
            let mut meta = txn.open_table(META).map_err(StoreError::from)?;
            meta.insert(META_APPLIED_INDEX, index)
                .map_err(StoreError::from)?;
        }
        txn.commit().map_err(StoreError::from)?;
        Ok(outputs)
    }

    /// Runs `f` on a consistent snapshot.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&ReadTxn) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        f(&ReadTxn { txn })
    }

    /// Index of the last applied command (0 for a new store).
    pub fn applied_index(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta
            .get(META_APPLIED_INDEX)?
            .map(|v| v.value())
            .unwrap_or(0))
    }
}

fn encode_log_entry<C: Serialize>(machine: &str, command: &C) -> Result<Vec<u8>> {
    let mut out = vec![LOG_ENCODING_V1];
    out.extend(postcard::to_stdvec(&(machine, command)).map_err(StoreError::Encode)?);
    Ok(out)
}

#[cfg(test)]
mod tests;
