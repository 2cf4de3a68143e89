//! Accounting: what each unit used, and summaries per VO and user.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::id::JobId;

/// What one unit of a job used, written by the node that ran it when the
/// unit ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub job: JobId,
    pub rank: u32,
    pub user: String,
    pub vo: String,
    pub node: String,
    pub started_unix_ms: u64,
    pub ended_unix_ms: u64,
    /// User plus system CPU time.
    pub cpu_ns: u64,
    pub peak_memory_bytes: u64,
    pub io_read_bytes: u64,
    pub io_write_bytes: u64,
    /// How it ended, e.g. `exit 0`, `signal 9`, `node lost`.
    pub exit: String,
}

impl UsageRecord {
    /// Wall-clock time of the unit (0 if the clock went backwards).
    pub fn wall_ms(&self) -> u64 {
        self.ended_unix_ms.saturating_sub(self.started_unix_ms)
    }
}

/// Which records a summary covers; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcctFilter {
    pub vo: Option<String>,
    pub user: Option<String>,
    /// Only units that ended at or after this time.
    pub since_unix_ms: Option<u64>,
}

impl AcctFilter {
    pub fn matches(&self, r: &UsageRecord) -> bool {
        self.vo.as_ref().is_none_or(|vo| *vo == r.vo)
            && self.user.as_ref().is_none_or(|user| *user == r.user)
            && self
                .since_unix_ms
                .is_none_or(|since| r.ended_unix_ms >= since)
    }
}

/// The usage of one user in one VO.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcctLine {
    pub user: String,
    pub vo: String,
    /// Distinct job ids (each array element counts as a job).
    pub jobs: u64,
    /// Records, i.e. units run (a restarted unit counts each run).
    pub units: u64,
    pub cpu_ns: u64,
    /// Wall-clock time summed over units.
    pub wall_ms: u64,
    /// The largest peak of any unit.
    pub peak_memory_bytes: u64,
    pub io_read_bytes: u64,
    pub io_write_bytes: u64,
}

/// Sums the matching records per (VO, user), sorted by VO then user. Sums
/// saturate rather than wrap.
pub fn summarize<'a>(
    records: impl Iterator<Item = &'a UsageRecord>,
    filter: &AcctFilter,
) -> Vec<AcctLine> {
    let mut lines: BTreeMap<(&str, &str), (AcctLine, BTreeSet<&JobId>)> = BTreeMap::new();
    for r in records.filter(|r| filter.matches(r)) {
        let (line, jobs) = lines
            .entry((r.vo.as_str(), r.user.as_str()))
            .or_insert_with(|| {
                let line = AcctLine {
                    user: r.user.clone(),
                    vo: r.vo.clone(),
                    ..AcctLine::default()
                };
                (line, BTreeSet::new())
            });
        jobs.insert(&r.job);
        line.units += 1;
        line.cpu_ns = line.cpu_ns.saturating_add(r.cpu_ns);
        line.wall_ms = line.wall_ms.saturating_add(r.wall_ms());
        line.peak_memory_bytes = line.peak_memory_bytes.max(r.peak_memory_bytes);
        line.io_read_bytes = line.io_read_bytes.saturating_add(r.io_read_bytes);
        line.io_write_bytes = line.io_write_bytes.saturating_add(r.io_write_bytes);
    }
    lines
        .into_values()
        .map(|(mut line, jobs)| {
            line.jobs = jobs.len() as u64;
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(job: &str, rank: u32, user: &str, vo: &str, ended: u64) -> UsageRecord {
        UsageRecord {
            job: JobId::parse(job).unwrap(),
            rank,
            user: user.into(),
            vo: vo.into(),
            node: "n2".into(),
            started_unix_ms: ended - 1000,
            ended_unix_ms: ended,
            cpu_ns: 2_000_000_000,
            peak_memory_bytes: 100 + u64::from(rank),
            io_read_bytes: 10,
            io_write_bytes: 20,
            exit: "exit 0".into(),
        }
    }

    fn sample() -> Vec<UsageRecord> {
        vec![
            record("n1.1", 0, "bob", "physics", 10_000),
            record("n1.1", 1, "bob", "physics", 10_000),
            record("n1.2_1", 0, "bob", "physics", 20_000),
            record("n1.2_2", 0, "bob", "physics", 20_000),
            record("n1.3", 0, "alice", "physics", 30_000),
            record("n1.4", 0, "alice", "bio", 40_000),
        ]
    }

    #[test]
    fn sums_per_vo_and_user_sorted() {
        let records = sample();
        let lines = summarize(records.iter(), &AcctFilter::default());
        let keys: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l.vo.as_str(), l.user.as_str()))
            .collect();
        assert_eq!(
            keys,
            [("bio", "alice"), ("physics", "alice"), ("physics", "bob")]
        );
        let bob = &lines[2];
        assert_eq!(bob.jobs, 3);
        assert_eq!(bob.units, 4);
        assert_eq!(bob.cpu_ns, 8_000_000_000);
        assert_eq!(bob.wall_ms, 4000);
        assert_eq!(bob.peak_memory_bytes, 101);
        assert_eq!(bob.io_read_bytes, 40);
        assert_eq!(bob.io_write_bytes, 80);
    }

    #[test]
    fn filters_by_vo_user_and_time() {
        let records = sample();
        let only = |filter: AcctFilter| summarize(records.iter(), &filter);
        let physics = only(AcctFilter {
            vo: Some("physics".into()),
            ..AcctFilter::default()
        });
        assert_eq!(physics.len(), 2);
        let alice = only(AcctFilter {
            user: Some("alice".into()),
            ..AcctFilter::default()
        });
        assert_eq!(alice.len(), 2);
        let recent = only(AcctFilter {
            since_unix_ms: Some(20_000),
            ..AcctFilter::default()
        });
        let bob = recent.iter().find(|l| l.user == "bob").unwrap();
        assert_eq!((bob.jobs, bob.units), (2, 2));
        assert!(
            only(AcctFilter {
                vo: Some("none".into()),
                ..AcctFilter::default()
            })
            .is_empty()
        );
    }

    #[test]
    fn sums_saturate_and_clock_skew_is_zero() {
        let mut a = record("n1.1", 0, "u", "v", 5000);
        a.cpu_ns = u64::MAX;
        a.started_unix_ms = 9000;
        let b = record("n1.1", 1, "u", "v", 5000);
        let lines = summarize([a, b].iter(), &AcctFilter::default());
        assert_eq!(lines[0].cpu_ns, u64::MAX);
        assert_eq!(lines[0].wall_ms, 1000);
    }

    #[test]
    fn records_round_trip_through_json() {
        let r = record("n1.2_5", 3, "bob", "physics", 10_000);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"job\":\"n1.2_5\""));
        assert_eq!(serde_json::from_str::<UsageRecord>(&text).unwrap(), r);
    }
}
