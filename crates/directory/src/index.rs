//! The in-memory directory: one record per node, updated from gossip and
//! queried by clients.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::descriptor::{DynamicSample, ServiceEntry, StaticDescriptor};
use crate::query::{Query, sorted_indices};

/// What the directory knows about one node.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    /// Shared so that query results and gossip copies do not duplicate it.
    pub descriptor: Arc<StaticDescriptor>,
    pub dynamic: Option<DynamicSample>,
    pub alive: bool,
}

/// All known nodes, keyed by node name.
#[derive(Debug, Default)]
pub struct Directory {
    /// Ordered by name so that queries get their default order for free
    /// and stop early at a limit.
    nodes: BTreeMap<String, NodeRecord>,
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces a node's descriptor. True if the node is new
    /// (it then counts as alive: we just heard from it) or the version is
    /// higher; liveness and the dynamic sample are kept, unless the sample
    /// no longer fits the new descriptor (e.g. fewer cores). The descriptor
    /// is taken as valid: [`StaticDescriptor::decode`] has checked it.
    pub fn upsert_static(&mut self, d: Arc<StaticDescriptor>) -> bool {
        match self.nodes.get_mut(&d.node) {
            Some(record) if record.descriptor.version >= d.version => false,
            Some(record) => {
                if record.dynamic.is_some_and(|s| s.validate(&d).is_err()) {
                    record.dynamic = None;
                }
                record.descriptor = d;
                true
            }
            None => {
                self.nodes.insert(
                    d.node.clone(),
                    NodeRecord {
                        descriptor: d,
                        dynamic: None,
                        alive: true,
                    },
                );
                true
            }
        }
    }

    /// Stores a sample if the node is known, the sample fits its descriptor,
    /// and its sequence number is higher than the one held.
    pub fn upsert_dynamic(&mut self, node: &str, s: DynamicSample) -> bool {
        let Some(record) = self.nodes.get_mut(node) else {
            return false;
        };
        if record.dynamic.is_some_and(|old| old.seq >= s.seq)
            || s.validate(&record.descriptor).is_err()
        {
            return false;
        }
        record.dynamic = Some(s);
        true
    }

    /// True if the node is known and its liveness changed.
    pub fn set_alive(&mut self, node: &str, alive: bool) -> bool {
        match self.nodes.get_mut(node) {
            Some(record) if record.alive != alive => {
                record.alive = alive;
                true
            }
            _ => false,
        }
    }

    pub fn remove(&mut self, node: &str) -> Option<NodeRecord> {
        self.nodes.remove(node)
    }

    pub fn get(&self, node: &str) -> Option<&NodeRecord> {
        self.nodes.get(node)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Records in name order.
    pub fn iter(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values()
    }

    /// Records matching `q` that `visible` allows (e.g. VO policy), sorted by
    /// the query's keys, ties and the default by name, and cut to its limit.
    /// Only the returned records are cloned, and those share descriptors.
    pub fn query(&self, q: &Query, visible: impl Fn(&NodeRecord) -> bool) -> Vec<NodeRecord> {
        // The map iterates in name order, which is the default order and
        // the tie-break of every other.
        let matching = self.nodes.values().filter(|r| q.matches(r) && visible(r));
        if q.sort_keys().is_empty() {
            return matching
                .take(q.limit().unwrap_or(usize::MAX))
                .cloned()
                .collect();
        }
        let found: Vec<&NodeRecord> = matching.collect();
        sorted_indices(q.sort_keys(), &found, q.limit())
            .into_iter()
            .filter_map(|i| found.get(i).map(|r| (*r).clone()))
            .collect()
    }

    /// Every service of `kind`: healthy ones on alive nodes first, then the
    /// rest, each group by node name.
    pub fn services(&self, kind: &str) -> Vec<(String, ServiceEntry)> {
        let mut found: Vec<(bool, &str, &ServiceEntry)> = self
            .nodes
            .values()
            .flat_map(|r| {
                r.descriptor
                    .services
                    .iter()
                    .filter(|s| s.kind == kind)
                    .map(move |s| (!(r.alive && s.healthy), r.descriptor.node.as_str(), s))
            })
            .collect();
        found.sort_by(|a, b| (a.0, a.1, &a.2.address).cmp(&(b.0, b.1, &b.2.address)));
        found
            .into_iter()
            .map(|(_, node, s)| (node.to_owned(), s.clone()))
            .collect()
    }
}

/// Orders records gathered from several sites as [`Directory::query`]
/// orders one site's (sort keys, then name, then site) and cuts to the
/// query's limit: how a federated answer is merged.
pub fn sort_and_limit(mut records: Vec<NodeRecord>, q: &Query) -> Vec<NodeRecord> {
    records.sort_by(|a, b| {
        (a.descriptor.node.as_str(), a.descriptor.site.as_str())
            .cmp(&(b.descriptor.node.as_str(), b.descriptor.site.as_str()))
    });
    let refs: Vec<&NodeRecord> = records.iter().collect();
    let order = sorted_indices(q.sort_keys(), &refs, q.limit());
    order
        .into_iter()
        .filter_map(|i| records.get(i).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cores: u32, version: u64) -> Arc<StaticDescriptor> {
        let mut d = StaticDescriptor::example(name, "site-a");
        d.cores = cores;
        d.version = version;
        Arc::new(d)
    }

    fn sample(seq: u64, load: f32) -> DynamicSample {
        DynamicSample {
            seq,
            sampled_unix_ms: 0,
            free_cores: 1.0,
            free_memory_bytes: 1 << 20,
            load,
            running_jobs: 0,
            free_disk_bytes: 0,
        }
    }

    fn names(records: &[NodeRecord]) -> Vec<&str> {
        records.iter().map(|r| r.descriptor.node.as_str()).collect()
    }

    #[test]
    fn higher_versions_replace_and_keep_liveness_and_sample() {
        let mut dir = Directory::new();
        assert!(dir.is_empty());
        assert!(dir.upsert_static(node("n1", 4, 2)));
        assert!(dir.get("n1").unwrap().alive);
        assert!(dir.upsert_dynamic("n1", sample(1, 0.5)));
        assert!(dir.set_alive("n1", false));
        assert!(!dir.upsert_static(node("n1", 8, 2)), "equal version");
        assert!(!dir.upsert_static(node("n1", 8, 1)), "stale version");
        assert_eq!(dir.get("n1").unwrap().descriptor.cores, 4);
        assert!(dir.upsert_static(node("n1", 8, 3)));
        let r = dir.get("n1").unwrap();
        assert_eq!((r.descriptor.cores, r.alive), (8, false));
        assert_eq!(r.dynamic.map(|s| s.seq), Some(1));
        assert_eq!(dir.len(), 1);
    }

    #[test]
    fn a_sample_that_no_longer_fits_is_dropped() {
        let mut dir = Directory::new();
        dir.upsert_static(node("n1", 4, 1));
        let mut s = sample(1, 0.5);
        s.free_cores = 3.0;
        assert!(dir.upsert_dynamic("n1", s));
        dir.upsert_static(node("n1", 2, 2));
        assert_eq!(dir.get("n1").unwrap().dynamic, None);
    }

    #[test]
    fn samples_need_a_known_node_a_higher_seq_and_validity() {
        let mut dir = Directory::new();
        assert!(!dir.upsert_dynamic("n1", sample(1, 0.5)));
        dir.upsert_static(node("n1", 4, 1));
        assert!(dir.upsert_dynamic("n1", sample(5, 0.5)));
        assert!(!dir.upsert_dynamic("n1", sample(5, 0.9)));
        assert!(!dir.upsert_dynamic("n1", sample(4, 0.9)));
        assert!(!dir.upsert_dynamic("n1", sample(6, f32::NAN)));
        assert!(dir.upsert_dynamic("n1", sample(6, 0.9)));
        assert_eq!(dir.get("n1").unwrap().dynamic.map(|s| s.load), Some(0.9));
    }

    #[test]
    fn set_alive_reports_changes_only() {
        let mut dir = Directory::new();
        assert!(!dir.set_alive("n1", false));
        dir.upsert_static(node("n1", 4, 1));
        assert!(!dir.set_alive("n1", true));
        assert!(dir.set_alive("n1", false));
        assert!(!dir.set_alive("n1", false));
        assert!(dir.remove("n1").is_some());
        assert!(dir.remove("n1").is_none());
        assert_eq!(dir.iter().count(), 0);
    }

    #[test]
    fn query_filters_sorts_and_limits() {
        let mut dir = Directory::new();
        for (name, cores) in [("c", 8), ("a", 2), ("b", 16), ("d", 8)] {
            dir.upsert_static(node(name, cores, 1));
        }
        let all = dir.query(&Query::parse("").unwrap(), |_| true);
        assert_eq!(names(&all), ["a", "b", "c", "d"]);
        let big = dir.query(&Query::parse("cores>=8 sort -cores").unwrap(), |_| true);
        assert_eq!(names(&big), ["b", "c", "d"]);
        let top = dir.query(&Query::parse("sort cores limit 2").unwrap(), |_| true);
        assert_eq!(names(&top), ["a", "c"]);
        let hidden = dir.query(&Query::parse("").unwrap(), |r| r.descriptor.node != "b");
        assert_eq!(names(&hidden), ["a", "c", "d"]);
        let one = dir.query(&Query::parse("limit 1").unwrap().with_limit(3), |_| true);
        assert_eq!(names(&one), ["a", "b", "c"]);
    }

    #[test]
    fn records_without_samples_sort_last_both_ways() {
        let mut dir = Directory::new();
        for name in ["a", "b", "c"] {
            dir.upsert_static(node(name, 4, 1));
        }
        dir.upsert_dynamic("b", sample(1, 2.0));
        dir.upsert_dynamic("c", sample(1, 1.0));
        let up = dir.query(&Query::parse("sort load").unwrap(), |_| true);
        assert_eq!(names(&up), ["c", "b", "a"]);
        let down = dir.query(&Query::parse("sort -load").unwrap(), |_| true);
        assert_eq!(names(&down), ["b", "c", "a"]);
        let low = dir.query(&Query::parse("load<5").unwrap(), |_| true);
        assert_eq!(names(&low), ["b", "c"]);
    }

    #[test]
    fn services_list_healthy_alive_ones_first() {
        let mut dir = Directory::new();
        for (name, healthy, alive) in [("a", false, true), ("b", true, false), ("c", true, true)] {
            let mut d = StaticDescriptor::example(name, "site-a");
            d.services.push(ServiceEntry {
                kind: "vo".into(),
                address: format!("{name}:1"),
                healthy,
            });
            d.services.push(ServiceEntry {
                kind: "site-ca".into(),
                address: format!("{name}:2"),
                healthy: true,
            });
            dir.upsert_static(Arc::new(d));
            dir.set_alive(name, alive);
        }
        let vo: Vec<String> = dir.services("vo").into_iter().map(|(n, _)| n).collect();
        assert_eq!(vo, ["c", "a", "b"]);
        assert!(dir.services("vo").iter().all(|(_, s)| s.kind == "vo"));
        assert!(dir.services("osd").is_empty());
    }
}
