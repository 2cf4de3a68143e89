//! Simulated time and the event queue.
//!
//! Time is a `u64` count of microseconds since the start of a run. Events
//! are ordered by `(time, seq)` where `seq` is the order they were
//! scheduled in, so two events at the same instant always run in the same
//! order: the run depends on nothing but its seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

/// Simulated microseconds since the start of a run.
pub type Micros = u64;

pub const MS: Micros = 1_000;
pub const SEC: Micros = 1_000_000;

/// A `Duration` in simulated microseconds, rounded up so that a timer asked
/// for "after 1 ns" never fires at the very instant it was set.
pub fn micros(d: Duration) -> Micros {
    let us = d.as_micros();
    let rounded = if !d.subsec_nanos().is_multiple_of(1_000) {
        us + 1
    } else {
        us
    };
    u64::try_from(rounded).unwrap_or(u64::MAX)
}

struct Entry<E> {
    time: Micros,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// The pending events of a run, earliest first.
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
    now: Micros,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
            now: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The time of the event last popped (the simulated "now").
    pub fn now(&self) -> Micros {
        self.now
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Schedules `event` at absolute time `at` (never before now).
    pub fn at(&mut self, at: Micros, event: E) {
        let time = at.max(self.now);
        self.seq += 1;
        self.heap.push(Entry {
            time,
            seq: self.seq,
            event,
        });
    }

    /// Schedules `event` `delay` microseconds from now.
    pub fn after(&mut self, delay: Micros, event: E) {
        self.at(self.now.saturating_add(delay), event);
    }

    /// Time of the next event, if any.
    pub fn peek_time(&self) -> Option<Micros> {
        self.heap.peek().map(|e| e.time)
    }

    /// Pops the next event if it is due at or before `until`, advancing now.
    pub fn pop_until(&mut self, until: Micros) -> Option<(Micros, E)> {
        if self.heap.peek()?.time > until {
            return None;
        }
        let entry = self.heap.pop()?;
        self.now = entry.time;
        Some((entry.time, entry.event))
    }

    /// Moves now forward to `t` (used when the queue runs dry before `t`).
    pub fn advance_to(&mut self, t: Micros) {
        self.now = self.now.max(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_by_scheduling_order() {
        let mut q = EventQueue::new();
        q.at(20, "c");
        q.at(10, "a");
        q.at(10, "b");
        q.at(5, "first");
        let mut out = Vec::new();
        while let Some((t, e)) = q.pop_until(u64::MAX) {
            out.push((t, e));
        }
        assert_eq!(out, vec![(5, "first"), (10, "a"), (10, "b"), (20, "c")]);
        assert_eq!(q.now(), 20);
    }

    #[test]
    fn durations_round_up_to_whole_microseconds() {
        assert_eq!(micros(Duration::from_nanos(1)), 1);
        assert_eq!(micros(Duration::from_millis(2)), 2_000);
    }
}
