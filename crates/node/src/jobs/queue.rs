//! The home's queue of jobs waiting to be placed, and what this home has
//! placed on each node, kept as indexes so the scheduler never scans every
//! job it holds.
//!
//! A queued job is *ready* (the scheduler will try it), *parked* (its last
//! try found no room: the best few become ready again when a unit of this
//! home ends, and the best `depth` at each tick) or *waiting* (for
//! something other than room, such as a dependency or a reservation's
//! start: all of them are tried again at each tick). Retrying only the head
//! of a long queue for room is what Slurm's `default_queue_depth` does: a
//! home with 10,000 queued jobs otherwise tried every one of them each
//! second to learn that no node had room.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};

use super::record::{JobRecord, JobState, UnitRecord};

/// Order of placement: higher priority first, then older first.
type Key = (Reverse<i32>, u64, String);

fn key(job: &JobRecord) -> Key {
    (Reverse(job.priority), job.submitted_unix_ms, job.id.clone())
}

#[derive(Default)]
pub struct Queue {
    ready: BTreeSet<Key>,
    parked: BTreeSet<Key>,
    waiting: BTreeSet<Key>,
    /// Jobs being placed whose try ended waiting for something else than room.
    waits: HashSet<String>,
    /// Taken by a placement that has not finished.
    placing: HashMap<String, Key>,
    /// Cores and memory of this home's units running on each node.
    placed: HashMap<String, (u32, u64)>,
    /// Cores and memory that placements still waiting for a node's answer
    /// have asked of it: counted as taken, so concurrent placements do not
    /// all send their job to the one node that has just freed a slot.
    asked: HashMap<String, (u32, u64)>,
}

impl Queue {
    /// Brings the indexes in line with a job's change from `before` (None
    /// for a new job) to `after`.
    pub fn track(&mut self, before: Option<&JobRecord>, after: &JobRecord) {
        let was_queued = before.is_some_and(|b| b.state == JobState::Queued);
        let is_queued = after.state == JobState::Queued;
        if was_queued && !is_queued {
            let k = key(after);
            self.ready.remove(&k);
            self.parked.remove(&k);
            self.waiting.remove(&k);
            self.placing.remove(&after.id);
            self.waits.remove(&after.id);
        }
        if is_queued && !was_queued {
            self.ready.insert(key(after));
        }
        let holds = |u: &UnitRecord| !u.node.is_empty() && !u.state.is_over();
        if let Some(b) = before {
            for u in b.units.iter().filter(|u| holds(u)) {
                let slot = self.placed.entry(u.node.clone()).or_default();
                slot.0 = slot.0.saturating_sub(b.cores);
                slot.1 = slot.1.saturating_sub(b.memory_bytes);
            }
        }
        for u in after.units.iter().filter(|u| holds(u)) {
            let slot = self.placed.entry(u.node.clone()).or_default();
            slot.0 = slot.0.saturating_add(after.cores);
            slot.1 = slot.1.saturating_add(after.memory_bytes);
        }
    }

    /// Up to `n` ready jobs, best first; they leave the ready set while a
    /// placement works on them.
    pub fn take(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n.min(self.ready.len()));
        while out.len() < n {
            let Some(k) = self.ready.pop_first() else {
                break;
            };
            out.push(k.2.clone());
            self.placing.insert(k.2.clone(), k);
        }
        out
    }

    /// A placement is done with `id`: if the job is still queued (no room,
    /// or waiting for a dependency) it is parked until room may appear.
    pub fn finish(&mut self, id: &str) {
        let waits = self.waits.remove(id);
        if let Some(k) = self.placing.remove(id) {
            if waits {
                self.waiting.insert(k);
            } else {
                self.parked.insert(k);
            }
        }
    }

    /// The try of `id` under way waits for something else than room.
    pub fn mark_waiting(&mut self, id: &str) {
        if self.placing.contains_key(id) {
            self.waits.insert(id.to_owned());
        }
    }

    /// The periodic retry: every waiting job, and the `depth` best of those
    /// parked for room.
    pub fn unpark_on_tick(&mut self, depth: usize) {
        let waiting = std::mem::take(&mut self.waiting);
        self.ready.extend(waiting);
        self.unpark(depth);
    }

    /// Makes the `n` best parked jobs ready (a unit ended: room for a few).
    pub fn unpark(&mut self, n: usize) {
        for _ in 0..n {
            let Some(k) = self.parked.pop_first() else {
                break;
            };
            self.ready.insert(k);
        }
    }

    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    pub fn queued_len(&self) -> usize {
        self.ready.len() + self.parked.len() + self.waiting.len() + self.placing.len()
    }

    /// Cores and memory this home's units hold on `node`, with what
    /// placements in flight have asked of it.
    pub fn placed_on(&self, node: &str) -> (u32, u64) {
        let (c, m) = self.placed.get(node).copied().unwrap_or((0, 0));
        let (ac, am) = self.asked_of(node);
        (c.saturating_add(ac), m.saturating_add(am))
    }

    /// What placements in flight have asked of `node`.
    pub fn asked_of(&self, node: &str) -> (u32, u64) {
        self.asked.get(node).copied().unwrap_or((0, 0))
    }

    /// A placement asks `node` for `cores` and `memory`.
    pub fn ask(&mut self, node: &str, cores: u32, memory: u64) {
        let slot = self.asked.entry(node.to_owned()).or_default();
        slot.0 = slot.0.saturating_add(cores);
        slot.1 = slot.1.saturating_add(memory);
    }

    /// The node answered (or a unit record now holds what was asked).
    pub fn answered(&mut self, node: &str, cores: u32, memory: u64) {
        if let Some(slot) = self.asked.get_mut(node) {
            slot.0 = slot.0.saturating_sub(cores);
            slot.1 = slot.1.saturating_sub(memory);
            if *slot == (0, 0) {
                self.asked.remove(node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::record::{UnitState, sample_job as job};

    #[test]
    fn jobs_come_out_by_priority_then_age_and_parked_ones_wait_for_unpark() {
        let mut q = Queue::default();
        for j in [job("n.1", 0, 1), job("n.2", 5, 2), job("n.3", 0, 0)] {
            q.track(None, &j);
        }
        assert_eq!(q.take(2), ["n.2", "n.3"]);
        assert_eq!(q.take(5), ["n.1"]);
        q.unpark_on_tick(10);
        assert!(
            q.take(5).is_empty(),
            "jobs being placed are never taken twice"
        );
        for id in ["n.1", "n.2", "n.3"] {
            q.finish(id);
        }
        assert!(q.take(5).is_empty(), "finished tries wait parked");
        q.unpark_on_tick(10);
        assert_eq!(q.ready_len(), 3);
    }

    #[test]
    fn a_tick_retries_the_head_of_those_parked_for_room_and_all_that_wait_for_more() {
        let mut q = Queue::default();
        for i in 0..10u64 {
            q.track(None, &job(&format!("n.{i}"), 0, i));
        }
        let all = q.take(10);
        // n.8 and n.9 wait for a dependency; the rest found no room.
        q.mark_waiting("n.8");
        q.mark_waiting("n.9");
        for id in &all {
            q.finish(id);
        }
        q.mark_waiting("n.0"); // not being placed: no effect
        assert_eq!(q.queued_len(), 10);
        q.unpark(3);
        assert_eq!(
            q.take(10),
            ["n.0", "n.1", "n.2"],
            "a unit's end: the best parked"
        );
        for id in ["n.0", "n.1", "n.2"] {
            q.finish(id);
        }
        q.unpark_on_tick(2);
        assert_eq!(q.take(10), ["n.0", "n.1", "n.8", "n.9"]);
    }

    #[test]
    fn what_placements_in_flight_ask_counts_as_placed_until_answered() {
        let mut q = Queue::default();
        q.ask("b", 2, 10);
        q.ask("b", 1, 5);
        assert_eq!(q.placed_on("b"), (3, 15));
        assert_eq!(q.placed_on("c"), (0, 0));
        q.answered("b", 2, 10);
        assert_eq!(q.placed_on("b"), (1, 5));
        q.answered("b", 1, 5);
        q.answered("b", 1, 5);
        assert_eq!(
            q.placed_on("b"),
            (0, 0),
            "an extra answer never goes below zero"
        );
        assert!(q.asked.is_empty());
    }

    #[test]
    fn placed_resources_follow_units_and_leave_when_they_end() {
        let mut q = Queue::default();
        let queued = job("n.1", 0, 1);
        q.track(None, &queued);
        let mut running = queued.clone();
        running.state = JobState::Running;
        running.units[0].node = "b".into();
        running.units[0].state = UnitState::Running;
        q.track(Some(&queued), &running);
        assert_eq!(q.queued_len(), 0);
        assert_eq!(q.placed_on("b"), (2, 10));
        let mut ended = running.clone();
        ended.units[0].state = UnitState::Ended;
        ended.state = JobState::Done;
        q.track(Some(&running), &ended);
        assert_eq!(q.placed_on("b"), (0, 0));
    }
}
