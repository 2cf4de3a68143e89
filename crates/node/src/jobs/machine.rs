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
const NEXT_SEQ: &str = "next_seq";
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
                for u in usage {
                    USAGE.insert(txn, &usage_key(u), u)?;
                }
                Ok(Vec::new())
            }
            JobCommand::PutUnit { unit } => {
                UNITS.insert(txn, &unit.unit, unit)?;
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
