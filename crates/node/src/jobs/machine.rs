//! The durable state of jobs on a node: the records of the jobs it is home
//! of, the units it runs for other homes, and usage records.
//!
//! The home decides each transition (placement, a unit's end, a restart)
//! and applies it as one command that writes the whole new record, so
//! replaying the log gives the same records without re-running decisions.

use serde::{Deserialize, Serialize};
use xtreem_job::UsageRecord;
use xtreem_store::{ReadTxn, StateMachine, StoreError, Table, WriteTxn};

use super::record::{JobRecord, LocalUnit, Reservation};

const JOBS: Table<JobRecord> = Table::new("jobs");
const META: Table<u64> = Table::new("jobs_meta");
const UNITS: Table<LocalUnit> = Table::new("job_units");
const USAGE: Table<UsageRecord> = Table::new("job_usage");
const RESERVATIONS: Table<Reservation> = Table::new("job_reservations");
/// Reservations this node holds capacity for, as a resource node.
const HELD: Table<Reservation> = Table::new("job_reservations_held");
/// Ended jobs of this home and reported units of this resource node, keyed
/// `ENDED_MS/ID` (the time zero-padded, so key order is time order): what
/// retention forgets, found without reading every record.
const JOBS_ENDED: Table<String> = Table::new("jobs_ended");
const UNITS_ENDED: Table<String> = Table::new("job_units_ended");
const NEXT_SEQ: &str = "next_seq";
/// Set once the ended-indexes cover the records written before they existed.
const ENDED_INDEXED: &str = "ended_indexed";
const NEXT_RESERVATION: &str = "next_reservation";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JobCommand {
    /// New jobs of one submission (one, or the elements of an array): the
    /// machine gives them the next sequence number of `home`.
    Submit {
        home: String,
        jobs: Vec<(Option<u32>, JobRecord)>,
    },
    /// A job's new record, with the usage of units that ended in this step.
    Put {
        job: JobRecord,
        usage: Vec<UsageRecord>,
    },
    PutUnit {
        unit: LocalUnit,
    },
    /// The home has a unit's end (`unit.reported`), since `at_unix_ms`: its
    /// record is kept `retention` from the later of its end and that.
    UnitReported {
        unit: LocalUnit,
        at_unix_ms: u64,
    },
    ForgetUnit {
        unit: String,
    },
    /// A new reservation of `home`: the machine names it `r-HOME.SEQ`.
    NewReservation {
        home: String,
        reservation: Reservation,
    },
    /// A reservation as this node holds it (home or resource node).
    PutReservation {
        reservation: Reservation,
    },
    RemoveReservation {
        id: String,
    },
    PutHeld {
        reservation: Reservation,
    },
    RemoveHeld {
        id: String,
    },
    /// Forgets, at most `limit` of each kind, the jobs that ended and the
    /// units whose end their home has that ended before `before_unix_ms`,
    /// and the reservations (held or of this home) that ended by then.
    /// Usage records stay for accounting. Output: what was forgotten, as
    /// `job:ID`, `unit:NAME`, `reservation:ID` and `held:ID`.
    ForgetEnded {
        before_unix_ms: u64,
        limit: usize,
        /// Ended jobs that jobs still waiting depend on: kept, so a
        /// dependency that was met does not turn into "does not exist".
        keep: Vec<String>,
    },
    /// An event for the timeline of a job whose record may be on its way
    /// to the store (a quick unit's end can close the job before its
    /// placement is written down); kept only while `attempt` is the job's.
    AddEvent {
        id: String,
        attempt: u32,
        unix_ms: u64,
        text: String,
    },
}

pub struct JobMachine;

impl StateMachine for JobMachine {
    const NAME: &'static str = "jobs";
    type Command = JobCommand;
    /// Ids of submitted jobs; empty for other commands.
    type Output = Vec<String>;
    type Error = StoreError;

    fn apply(&self, txn: &WriteTxn, command: &JobCommand) -> Result<Vec<String>, StoreError> {
        match command {
            JobCommand::Submit { home, jobs } => {
                let seq = META.get_w(txn, NEXT_SEQ)?.unwrap_or(1);
                META.insert(txn, NEXT_SEQ, &(seq + 1))?;
                let mut ids = Vec::with_capacity(jobs.len());
                for (index, job) in jobs {
                    let id = match index {
                        Some(i) => format!("{home}.{seq}_{i}"),
                        None => format!("{home}.{seq}"),
                    };
                    let mut job = job.clone();
                    job.id = id.clone();
                    JOBS.insert(txn, &id, &job)?;
                    ids.push(id);
                }
                Ok(ids)
            }
            JobCommand::Put { job, usage } => {
                JOBS.insert(txn, &job.id, job)?;
                if let Some(key) = job_ended_key(job) {
                    JOBS_ENDED.insert(txn, &key, &job.id)?;
                }
                for u in usage {
                    USAGE.insert(txn, &usage_key(u), u)?;
                }
                Ok(Vec::new())
            }
            JobCommand::PutUnit { unit } => {
                UNITS.insert(txn, &unit.unit, unit)?;
                Ok(Vec::new())
            }
            JobCommand::UnitReported { unit, at_unix_ms } => {
                UNITS.insert(txn, &unit.unit, unit)?;
                if unit.reported && unit.record.state.is_over() {
                    let since = unit.record.ended_unix_ms.max(*at_unix_ms);
                    UNITS_ENDED.insert(txn, &ended_key(since, &unit.unit), &unit.unit)?;
                }
                Ok(Vec::new())
            }
            JobCommand::ForgetUnit { unit } => {
                UNITS.remove(txn, unit)?;
                Ok(Vec::new())
            }
            JobCommand::NewReservation { home, reservation } => {
                let seq = META.get_w(txn, NEXT_RESERVATION)?.unwrap_or(1);
                META.insert(txn, NEXT_RESERVATION, &(seq + 1))?;
                let id = format!("r-{home}.{seq}");
                let mut r = reservation.clone();
                r.id = id.clone();
                RESERVATIONS.insert(txn, &id, &r)?;
                Ok(vec![id])
            }
            JobCommand::PutReservation { reservation } => {
                RESERVATIONS.insert(txn, &reservation.id, reservation)?;
                Ok(Vec::new())
            }
            JobCommand::RemoveReservation { id } => {
                RESERVATIONS.remove(txn, id)?;
                Ok(Vec::new())
            }
            JobCommand::PutHeld { reservation } => {
                HELD.insert(txn, &reservation.id, reservation)?;
                Ok(Vec::new())
            }
            JobCommand::RemoveHeld { id } => {
                HELD.remove(txn, id)?;
                Ok(Vec::new())
            }
            JobCommand::ForgetEnded {
                before_unix_ms,
                limit,
                keep,
            } => forget_ended(txn, *before_unix_ms, *limit, keep),
            JobCommand::AddEvent {
                id,
                attempt,
                unix_ms,
                text,
            } => {
                if let Some(mut job) = JOBS.get_w(txn, id)?
                    && job.attempt == *attempt
                {
                    job.event_at(*unix_ms, text.clone());
                    JOBS.insert(txn, id, &job)?;
                }
                Ok(Vec::new())
            }
        }
    }
}

/// `ENDED_MS/ID`, zero-padded so that key order is time order.
fn ended_key(ended_unix_ms: u64, id: &str) -> String {
    format!("{ended_unix_ms:020}/{id}")
}

fn job_ended_key(job: &JobRecord) -> Option<String> {
    job.state
        .is_terminal()
        .then(|| ended_key(job.ended_unix_ms, &job.id))
}

fn forget_ended(
    txn: &WriteTxn,
    before: u64,
    limit: usize,
    keep: &[String],
) -> Result<Vec<String>, StoreError> {
    if META.get_w(txn, ENDED_INDEXED)?.is_none() {
        // Records written before the indexes existed.
        for (_, job) in JOBS.list_w(txn)? {
            if let Some(key) = job_ended_key(&job) {
                JOBS_ENDED.insert(txn, &key, &job.id)?;
            }
        }
        // When their home got their end is not recorded: kept one more
        // retention from this first sweep, to be safe.
        for (_, unit) in UNITS.list_w(txn)? {
            if unit.reported && unit.record.state.is_over() {
                let key = ended_key(unit.record.ended_unix_ms.max(before), &unit.unit);
                UNITS_ENDED.insert(txn, &key, &unit.unit)?;
            }
        }
        META.insert(txn, ENDED_INDEXED, &1)?;
    }
    let end = ended_key(before, "");
    let mut forgotten = Vec::new();
    for (key, id) in JOBS_ENDED.list_before_w(txn, &end, limit)? {
        // The index may be older than the record (a job's end time can be
        // rewritten): the record decides.
        if keep.contains(&id) {
            // Looked at again at the next sweep.
            continue;
        }
        JOBS_ENDED.remove(txn, &key)?;
        if let Some(job) = JOBS.get_w(txn, &id)?
            && job_ended_key(&job).is_some_and(|k| k < end)
        {
            JOBS.remove(txn, &id)?;
            forgotten.push(format!("job:{id}"));
        }
    }
    for (key, name) in UNITS_ENDED.list_before_w(txn, &end, limit)? {
        UNITS_ENDED.remove(txn, &key)?;
        // The key holds when the home got the end, which the record does
        // not: it decides, as long as the record is still a reported one.
        if let Some(unit) = UNITS.get_w(txn, &name)?
            && unit.reported
            && unit.record.state.is_over()
        {
            UNITS.remove(txn, &name)?;
            forgotten.push(format!("unit:{name}"));
        }
    }
    // Reservations are few: a scan is cheaper than an index.
    for (table, kind) in [(RESERVATIONS, "reservation"), (HELD, "held")] {
        let ended: Vec<String> = table
            .list_w(txn)?
            .into_iter()
            .filter(|(_, r)| r.end_unix_ms < before)
            .map(|(id, _)| id)
            .take(limit)
            .collect();
        for id in ended {
            table.remove(txn, &id)?;
            forgotten.push(format!("{kind}:{id}"));
        }
    }
    Ok(forgotten)
}

fn usage_key(u: &UsageRecord) -> String {
    format!("{}.{}.{}", u.job, u.rank, u.started_unix_ms)
}

pub mod query {
    use super::*;

    pub fn job(r: &ReadTxn, id: &str) -> Result<Option<JobRecord>, StoreError> {
        JOBS.get(r, id)
    }

    pub fn jobs(r: &ReadTxn) -> Result<Vec<JobRecord>, StoreError> {
        Ok(JOBS.list(r)?.into_iter().map(|(_, j)| j).collect())
    }

    pub fn unit(r: &ReadTxn, unit: &str) -> Result<Option<LocalUnit>, StoreError> {
        UNITS.get(r, unit)
    }

    pub fn units(r: &ReadTxn) -> Result<Vec<LocalUnit>, StoreError> {
        Ok(UNITS.list(r)?.into_iter().map(|(_, u)| u).collect())
    }

    pub fn reservations(r: &ReadTxn) -> Result<Vec<Reservation>, StoreError> {
        Ok(RESERVATIONS.list(r)?.into_iter().map(|(_, v)| v).collect())
    }

    pub fn reservation(r: &ReadTxn, id: &str) -> Result<Option<Reservation>, StoreError> {
        RESERVATIONS.get(r, id)
    }

    pub fn held(r: &ReadTxn) -> Result<Vec<Reservation>, StoreError> {
        Ok(HELD.list(r)?.into_iter().map(|(_, v)| v).collect())
    }

    pub fn usage(r: &ReadTxn) -> Result<Vec<UsageRecord>, StoreError> {
        Ok(USAGE.list(r)?.into_iter().map(|(_, u)| u).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use xtreem_store::Store;

    use super::*;
    use crate::jobs::record::{JobState, UnitRecord, UnitState, sample_job};

    fn store() -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("s.redb")).expect("open");
        (dir, Arc::new(store))
    }

    fn job_in(id: &str, state: JobState, ended_unix_ms: u64) -> JobRecord {
        let mut job = sample_job(id, 0, 1);
        job.state = state;
        job.ended_unix_ms = ended_unix_ms;
        job
    }

    fn unit(name: &str, reported: bool, ended_unix_ms: u64) -> LocalUnit {
        let job = sample_job("h.1", 0, 1);
        LocalUnit {
            unit: name.into(),
            job: job.id.clone(),
            home: "h".into(),
            name: job.name.clone(),
            owner: job.owner.clone(),
            rank: 0,
            size: 1,
            attempt: 1,
            cores: 1,
            memory_bytes: 1,
            uid: 60_000,
            stdout: String::new(),
            stderr: String::new(),
            submitted_unix_ms: 1,
            record: UnitRecord {
                state: UnitState::Ended,
                ended_unix_ms,
                ..UnitRecord::pending(0)
            },
            reported,
            workdir: String::new(),
            reservation: None,
            checkpoint: None,
        }
    }

    fn reservation(id: &str, end_unix_ms: u64) -> Reservation {
        let job = sample_job("h.1", 0, 1);
        Reservation {
            id: id.into(),
            owner: job.owner,
            nodes: vec!["a".into()],
            cores: 1,
            memory_bytes: 1,
            start_unix_ms: 0,
            end_unix_ms,
            exclusive: false,
            cancelled: false,
        }
    }

    fn forget(store: &Store, before_unix_ms: u64, limit: usize) -> Vec<String> {
        forget_keeping(store, before_unix_ms, limit, &[])
    }

    fn forget_keeping(
        store: &Store,
        before_unix_ms: u64,
        limit: usize,
        keep: &[&str],
    ) -> Vec<String> {
        store
            .execute(
                &JobMachine,
                JobCommand::ForgetEnded {
                    before_unix_ms,
                    limit,
                    keep: keep.iter().map(|k| (*k).to_owned()).collect(),
                },
            )
            .expect("forget")
    }

    #[test]
    fn retention_forgets_what_ended_before_the_cutoff_and_keeps_the_rest() {
        let (_dir, store) = store();
        let usage = UsageRecord {
            job: xtreem_job::JobId::parse("h.1").expect("id"),
            rank: 0,
            user: "alice".into(),
            vo: "demo".into(),
            node: "a".into(),
            started_unix_ms: 1,
            ended_unix_ms: 100,
            cpu_ns: 5,
            peak_memory_bytes: 0,
            io_read_bytes: 0,
            io_write_bytes: 0,
            exit: "exit 0".into(),
        };
        let commands = vec![
            JobCommand::Put {
                job: job_in("h.1", JobState::Done, 100),
                usage: vec![usage],
            },
            JobCommand::Put {
                job: job_in("h.2", JobState::Failed, 5_000),
                usage: Vec::new(),
            },
            // Running: never forgotten, whatever its times say.
            JobCommand::Put {
                job: job_in("h.3", JobState::Running, 0),
                usage: Vec::new(),
            },
            JobCommand::UnitReported {
                unit: unit("u-reported", true, 200),
                at_unix_ms: 150,
            },
            // Ended long ago, but its home got the end only now (it was
            // down): kept from then.
            JobCommand::UnitReported {
                unit: unit("u-reported-late", true, 200),
                at_unix_ms: 5_000,
            },
            // Its end has not reached the home: this is the only record.
            JobCommand::PutUnit {
                unit: unit("u-unreported", false, 200),
            },
            JobCommand::PutReservation {
                reservation: reservation("r-h.1", 300),
            },
            JobCommand::PutHeld {
                reservation: reservation("r-h.2", 9_000),
            },
        ];
        store.execute_many(&JobMachine, &commands).expect("write");

        let mut forgotten = forget(&store, 1_000, 100);
        forgotten.sort();
        assert_eq!(
            forgotten,
            ["job:h.1", "reservation:r-h.1", "unit:u-reported"]
        );
        let jobs: Vec<String> = store
            .read(query::jobs)
            .expect("jobs")
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(jobs, ["h.2", "h.3"]);
        let units: Vec<String> = store
            .read(query::units)
            .expect("units")
            .into_iter()
            .map(|u| u.unit)
            .collect();
        assert_eq!(units, ["u-reported-late", "u-unreported"]);
        assert_eq!(
            store.read(query::usage).expect("usage").len(),
            1,
            "usage records stay for accounting"
        );
        assert!(forget(&store, 1_000, 100).is_empty(), "nothing twice");

        // Ended again later (a restart rewrote its end): the record decides.
        store
            .execute(
                &JobMachine,
                JobCommand::Put {
                    job: job_in("h.2", JobState::Failed, 20_000),
                    usage: Vec::new(),
                },
            )
            .expect("rewrite");
        assert_eq!(
            forget(&store, 10_000, 100),
            ["unit:u-reported-late", "held:r-h.2"]
        );
        // A job another one waits on is kept until nobody does.
        assert!(forget_keeping(&store, 30_000, 100, &["h.2"]).is_empty());
        assert_eq!(forget(&store, 30_000, 100), ["job:h.2"]);
    }

    #[test]
    fn retention_indexes_records_written_before_the_index_existed() {
        let (_dir, store) = store();
        // A store from before: records, no index entries, no flag.
        struct Legacy;
        impl StateMachine for Legacy {
            const NAME: &'static str = "jobs";
            type Command = Vec<JobRecord>;
            type Output = ();
            type Error = StoreError;
            fn apply(&self, txn: &WriteTxn, jobs: &Vec<JobRecord>) -> Result<(), StoreError> {
                for job in jobs {
                    JOBS.insert(txn, &job.id, job)?;
                }
                Ok(())
            }
        }
        let old: Vec<JobRecord> = (1..=5)
            .map(|k| job_in(&format!("h.{k}"), JobState::Done, k * 10))
            .collect();
        store.execute(&Legacy, old).expect("legacy write");
        assert_eq!(forget(&store, 35, 2), ["job:h.1", "job:h.2"]);
        assert_eq!(forget(&store, 35, 2), ["job:h.3"]);
        assert_eq!(store.read(query::jobs).expect("jobs").len(), 2);
    }
}
