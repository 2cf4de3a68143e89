//! Application execution management (AEM) on a node.
//!
//! Every node can be the **home** of jobs: the node that accepted a
//! submission keeps the job's record, places it (no global scheduler: each
//! home asks the directory, ranks a few candidates and asks them directly)
//! and follows it to its end ([`home`]). A **resource** node admits or
//! refuses units under its own capacity and site policy, runs each under a
//! supervisor that outlives the daemon, and reports each unit's end to the
//! home until the home acknowledges it ([`resource`]). Job ids name their
//! home (`n1.42`), so any node routes a request about a job there.

pub mod checkpoint;
pub mod credential;
pub mod home;
pub mod machine;
pub mod peers;
pub mod queue;
pub mod record;
pub mod reservation;
pub mod resource;
pub mod retention;
pub mod writer;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, watch};
use xtreem_job::{JobSpec, SpecError};
use xtreem_store::Store;

use self::machine::{JobCommand, query};
use self::record::JobRecord;
use self::resource::ResourceSide;
use self::writer::Writer;

/// Jobs state of one node.
pub struct JobsState {
    /// Jobs this node is home of that have not ended.
    active: Mutex<BTreeMap<String, JobRecord>>,
    /// The parsed descriptions of active jobs, so neither a placement nor
    /// this node's own launch parses the stored JSON again.
    specs: Mutex<HashMap<String, Arc<JobSpec>>>,
    /// Queued jobs by placement order, and this home's units per node.
    queue: Mutex<queue::Queue>,
    /// Jobs whose stored attempt number no node has heard of yet: accepted
    /// by this process with their first attempt reserved on disk, so their
    /// first placement needs no write of its own. Memory only: after a
    /// restart every queued job claims a new number.
    unsent_attempts: Mutex<HashSet<String>>,
    /// Bumped whenever a job of this home changes state.
    changed: watch::Sender<u64>,
    /// Wakes the scheduler (new job, freed node, released hold).
    pub wake: Notify,
    pub writer: Writer,
    pub store: Arc<Store>,
    /// Present on nodes with the resource role.
    pub resource: Option<ResourceSide>,
    pub peers: peers::Peers,
    /// The jobs' delegated credentials, per login.
    pub delegated: credential::Delegated,
}

/// A time for people: RFC 3339, to the second.
fn clock(unix_ms: u64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms),
    )
    .to_string()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl JobsState {
    /// Loads the jobs of this home that have not ended.
    pub fn open(store: Arc<Store>, resource: Option<ResourceSide>) -> anyhow::Result<JobsState> {
        let active: BTreeMap<String, JobRecord> = store
            .read(query::jobs)?
            .into_iter()
            .filter(|j| !j.state.is_terminal())
            .map(|j| (j.id.clone(), j))
            .collect();
        let mut queue = queue::Queue::default();
        for job in active.values() {
            queue.track(None, job);
        }
        Ok(JobsState {
            active: Mutex::new(active),
            specs: Mutex::new(HashMap::new()),
            queue: Mutex::new(queue),
            unsent_attempts: Mutex::new(HashSet::new()),
            changed: watch::channel(0).0,
            wake: Notify::new(),
            writer: Writer::start(Arc::clone(&store)),
            store,
            resource,
            peers: peers::Peers::default(),
            delegated: credential::Delegated::default(),
        })
    }

    /// A job of this home: from memory if it is active, else from the store.
    pub fn get(&self, id: &str) -> Option<JobRecord> {
        if let Some(job) = lock(&self.active).get(id) {
            return Some(job.clone());
        }
        self.store.read(|r| query::job(r, id)).ok().flatten()
    }

    /// The description of `job`: parsed once while the job is active (a
    /// job's description never changes after its submission).
    pub fn spec_of(&self, job: &JobRecord) -> Result<Arc<JobSpec>, SpecError> {
        if let Some(spec) = lock(&self.specs).get(&job.id) {
            return Ok(Arc::clone(spec));
        }
        let spec = Arc::new(JobSpec::from_json(&job.spec)?);
        // Under the lock of the active jobs, which their end takes to drop
        // the entry, so no entry outlives its job.
        let active = lock(&self.active);
        if active.contains_key(&job.id) {
            lock(&self.specs).insert(job.id.clone(), Arc::clone(&spec));
        }
        drop(active);
        Ok(spec)
    }

    /// The parsed description of active job `id`, if this node holds one.
    pub fn cached_spec(&self, id: &str) -> Option<Arc<JobSpec>> {
        lock(&self.specs).get(id).map(Arc::clone)
    }

    /// Every job of this home (active ones from memory).
    pub fn all(&self) -> Vec<JobRecord> {
        let mut jobs: BTreeMap<String, JobRecord> = self
            .store
            .read(query::jobs)
            .unwrap_or_default()
            .into_iter()
            .map(|j| (j.id.clone(), j))
            .collect();
        for (id, job) in lock(&self.active).iter() {
            jobs.insert(id.clone(), job.clone());
        }
        jobs.into_values().collect()
    }

    /// Active jobs matching `pick`, cloned.
    pub fn active_where(&self, pick: impl Fn(&JobRecord) -> bool) -> Vec<JobRecord> {
        lock(&self.active)
            .values()
            .filter(|j| pick(j))
            .cloned()
            .collect()
    }

    /// Adds newly accepted jobs, whose stored attempt no node has heard of,
    /// each with its description as parsed at the submission.
    pub fn insert_active(&self, jobs: Vec<(JobRecord, Arc<JobSpec>)>) {
        let mut active = lock(&self.active);
        let mut specs = lock(&self.specs);
        let mut queue = lock(&self.queue);
        let mut unsent = lock(&self.unsent_attempts);
        for (job, spec) in jobs {
            queue.track(None, &job);
            unsent.insert(job.id.clone());
            specs.insert(job.id.clone(), spec);
            active.insert(job.id.clone(), job);
        }
        drop(unsent);
        drop(specs);
        drop(queue);
        drop(active);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Changes an active job under the lock and queues the new record for
    /// the store in the same order. `change` returns false to leave the job
    /// as it was. Returns the new record, or None if the job is not active
    /// or was left unchanged.
    pub fn update(
        &self,
        id: &str,
        usage: Vec<xtreem_job::UsageRecord>,
        change: impl FnOnce(&mut JobRecord) -> bool,
    ) -> Option<JobRecord> {
        let (record, ()) = self.change(id, usage, change, |c| self.writer.send(c))?;
        self.changed.send_modify(|v| *v += 1);
        Some(record)
    }

    /// Like [`JobsState::update`], and returns once the change is durable.
    pub async fn update_durably(
        &self,
        id: &str,
        usage: Vec<xtreem_job::UsageRecord>,
        change: impl FnOnce(&mut JobRecord) -> bool,
    ) -> Result<Option<JobRecord>, String> {
        match self.update_then_persist(id, usage, change) {
            Some(pending) => pending.durable().await.map(Some),
            None => Ok(None),
        }
    }

    /// Like [`JobsState::update`]: the change is in memory (and in the
    /// queue's accounts) when this returns, and the caller awaits
    /// [`Persisting::durable`] before it answers for it. What the change
    /// freed may be used meanwhile: anything decided on it is written
    /// after it, so a crash never keeps the decision without the change.
    pub fn update_then_persist(
        &self,
        id: &str,
        usage: Vec<xtreem_job::UsageRecord>,
        change: impl FnOnce(&mut JobRecord) -> bool,
    ) -> Option<Persisting<'_>> {
        let (record, write) = self.change(id, usage, change, |c| self.writer.write(c))?;
        Some(Persisting {
            jobs: self,
            record,
            write,
        })
    }

    /// Applies `change` to active job `id` under the lock and hands the new
    /// record to `queue` (the writer) before the lock is released, so the
    /// store gets a job's records in the order they were made.
    fn change<W>(
        &self,
        id: &str,
        usage: Vec<xtreem_job::UsageRecord>,
        change: impl FnOnce(&mut JobRecord) -> bool,
        queue: impl FnOnce(JobCommand) -> W,
    ) -> Option<(JobRecord, W)> {
        let mut active = lock(&self.active);
        let job = active.get_mut(id)?;
        let before = job.clone();
        if !change(job) {
            return None;
        }
        let record = job.clone();
        lock(&self.queue).track(Some(&before), &record);
        if record.state.is_terminal() {
            active.remove(id);
            lock(&self.specs).remove(id);
            lock(&self.unsent_attempts).remove(id);
        }
        let queued = queue(JobCommand::Put {
            job: record.clone(),
            usage,
        });
        Some((record, queued))
    }

    /// Sets the reason of an active job in memory only: a reason is shown,
    /// not needed after a restart, and changes on every placement try.
    pub fn update_reason(&self, id: &str, reason: String) {
        if let Some(job) = lock(&self.active).get_mut(id) {
            job.reason = reason;
        }
    }

    /// Adds an event to the timeline of a job that is no longer active: it
    /// goes through the writer after the job's last record (sent before the
    /// job left the active set), so it lands on that record.
    pub fn add_event_after_end(&self, id: &str, attempt: u32, unix_ms: u64, text: String) {
        self.writer.send(JobCommand::AddEvent {
            id: id.to_owned(),
            attempt,
            unix_ms,
            text,
        });
    }

    /// Whether `id`'s stored attempt has not been sent to any node yet.
    pub fn has_unsent_attempt(&self, id: &str) -> bool {
        lock(&self.unsent_attempts).contains(id)
    }

    /// Takes the right to send `id`'s stored attempt number to nodes without
    /// writing a new one first: true once, for a job accepted by this
    /// process and never sent to any node since.
    pub fn take_unsent_attempt(&self, id: &str) -> bool {
        lock(&self.unsent_attempts).remove(id)
    }

    /// Up to `n` queued jobs to place now, best first.
    pub fn take_ready(&self, n: usize) -> Vec<String> {
        lock(&self.queue).take(n)
    }

    /// A placement is done with `id`; a job still queued is parked.
    pub fn finish_placing(&self, id: &str) {
        lock(&self.queue).finish(id);
    }

    /// The periodic retry (room may have appeared elsewhere, a dependency
    /// ended, a reservation started): see [`queue`].
    pub fn unpark_on_tick(&self, depth: usize) {
        lock(&self.queue).unpark_on_tick(depth);
    }

    /// The try of `id` under way waits for something else than room.
    pub fn mark_waiting(&self, id: &str) {
        lock(&self.queue).mark_waiting(id);
    }

    /// Makes the `n` best parked jobs ready again.
    pub fn unpark(&self, n: usize) {
        lock(&self.queue).unpark(n);
    }

    /// Cores and memory this home's running units hold on `node`.
    pub fn placed_on(&self, node: &str) -> (u32, u64) {
        lock(&self.queue).placed_on(node)
    }

    /// What placements in flight have asked of `node`.
    pub fn asked_of(&self, node: &str) -> (u32, u64) {
        lock(&self.queue).asked_of(node)
    }

    /// Counts `cores` and `memory` as taken on `node` until the returned
    /// guard is dropped: when the node has answered, and on admission once
    /// the job's record holds the unit.
    pub fn ask(self: &Arc<Self>, node: &str, cores: u32, memory: u64) -> Asked {
        lock(&self.queue).ask(node, cores, memory);
        Asked {
            jobs: Arc::clone(self),
            node: node.to_owned(),
            cores,
            memory,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// A job's change made in memory whose record is on its way to the disk.
pub struct Persisting<'a> {
    jobs: &'a JobsState,
    record: JobRecord,
    write: writer::Written,
}

impl Persisting<'_> {
    /// The new record, once it is durable.
    pub async fn durable(self) -> Result<JobRecord, String> {
        self.write.done().await?;
        self.jobs.changed.send_modify(|v| *v += 1);
        Ok(self.record)
    }
}

/// Resources a placement in flight has asked of a node; given back on drop.
pub struct Asked {
    jobs: Arc<JobsState>,
    node: String,
    cores: u32,
    memory: u64,
}

impl Drop for Asked {
    fn drop(&mut self) {
        lock(&self.jobs.queue).answered(&self.node, self.cores, self.memory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::record::{JobState, sample_job};

    fn spec(name: &str) -> JobSpec {
        JobSpec::parse(
            &format!("name = \"{name}\"\nexecutable = \"/bin/true\"\n"),
            None,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_description_is_parsed_once_while_its_job_is_active_and_dropped_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("jobs.redb")).unwrap());
        let jobs = JobsState::open(store, None).unwrap();
        let mut job = sample_job("n1.1", 0, 1);
        let parsed = spec("first");
        // Stored text that differs from what was parsed shows which one
        // an answer came from.
        job.spec = spec("stored").to_json();
        jobs.insert_active(vec![(job.clone(), Arc::new(parsed))]);
        assert_eq!(jobs.spec_of(&job).unwrap().name, "first");
        assert_eq!(jobs.cached_spec("n1.1").unwrap().name, "first");

        jobs.update("n1.1", Vec::new(), |j| {
            j.state = JobState::Done;
            true
        });
        assert!(
            jobs.cached_spec("n1.1").is_none(),
            "an ended job keeps no entry"
        );
        // An ended job's description is still readable, from its text, and
        // is not cached again.
        assert_eq!(jobs.spec_of(&job).unwrap().name, "stored");
        assert!(jobs.cached_spec("n1.1").is_none());
    }
}
