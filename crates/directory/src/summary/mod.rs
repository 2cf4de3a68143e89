//! What a site tells other sites about itself: counts, ranges and the sets
//! of values its alive nodes have, so that a federated query can skip sites
//! that cannot match without asking them.

mod prune;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use xtreem_util::names::SiteName;

use crate::descriptor::{check_size, decode_exact};
use crate::error::DescriptorError;
use crate::index::{Directory, NodeRecord};
use crate::query::Query;

/// Largest encoded summary accepted from another site.
pub const MAX_SITE_SUMMARY_BYTES: usize = 64 * 1024;

/// Entries kept per set, so that the encoding stays under
/// [`MAX_SITE_SUMMARY_BYTES`] however varied a site's nodes are. A set that
/// would hold more keeps this many minus one and the empty string, which no
/// valid value can be and which means "and others": [`SiteSummary::may_match`]
/// then treats every value as possible.
pub const SUMMARY_SET_ENTRIES_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteSummary {
    pub site: String,
    pub generated_unix: u64,
    pub nodes_total: u32,
    pub nodes_alive: u32,
    /// (min, max) over alive nodes; `None` when none is alive.
    pub cores: Option<(u32, u32)>,
    pub memory_bytes: Option<(u64, u64)>,
    pub disk_bytes: Option<(u64, u64)>,
    /// Over alive nodes with a dynamic sample; `None` when none has one.
    pub max_free_cores: Option<f32>,
    pub max_free_memory_bytes: Option<u64>,
    pub min_load: Option<f32>,
    pub archs: BTreeSet<String>,
    pub oses: BTreeSet<String>,
    pub tags: BTreeSet<String>,
    pub label_keys: BTreeSet<String>,
    pub vos: BTreeSet<String>,
    pub roles: BTreeSet<String>,
    /// Kinds of the healthy services of alive nodes.
    pub service_kinds: BTreeSet<String>,
}

/// Min and max of an optional running range.
fn widen<T: PartialOrd + Copy>(range: &mut Option<(T, T)>, value: T) {
    *range = Some(match *range {
        None => (value, value),
        Some((lo, hi)) => (
            if value < lo { value } else { lo },
            if value > hi { value } else { hi },
        ),
    });
}

fn extend_max<T: PartialOrd + Copy>(slot: &mut Option<T>, value: T, keep_larger: bool) {
    let better = match *slot {
        None => true,
        Some(old) if keep_larger => value > old,
        Some(old) => value < old,
    };
    if better {
        *slot = Some(value);
    }
}

/// Adds values to a bounded set; see [`SUMMARY_SET_ENTRIES_MAX`].
fn insert_bounded<'a>(set: &mut BTreeSet<String>, values: impl IntoIterator<Item = &'a String>) {
    for value in values {
        if set.contains(value) {
            continue;
        }
        if set.len() + 1 >= SUMMARY_SET_ENTRIES_MAX {
            set.insert(String::new());
            return;
        }
        set.insert(value.clone());
    }
}

impl SiteSummary {
    /// Summarizes the nodes of `site` in `dir`; ranges and sets are over the
    /// alive ones.
    pub fn of(site: &str, dir: &Directory, now_unix: u64) -> SiteSummary {
        let mut s = SiteSummary {
            site: site.to_owned(),
            generated_unix: now_unix,
            nodes_total: 0,
            nodes_alive: 0,
            cores: None,
            memory_bytes: None,
            disk_bytes: None,
            max_free_cores: None,
            max_free_memory_bytes: None,
            min_load: None,
            archs: BTreeSet::new(),
            oses: BTreeSet::new(),
            tags: BTreeSet::new(),
            label_keys: BTreeSet::new(),
            vos: BTreeSet::new(),
            roles: BTreeSet::new(),
            service_kinds: BTreeSet::new(),
        };
        for record in dir.iter().filter(|r| r.descriptor.site == site) {
            s.nodes_total = s.nodes_total.saturating_add(1);
            if record.alive {
                s.nodes_alive = s.nodes_alive.saturating_add(1);
                s.add_alive(record);
            }
        }
        s
    }

    fn add_alive(&mut self, record: &NodeRecord) {
        let d = &*record.descriptor;
        widen(&mut self.cores, d.cores);
        widen(&mut self.memory_bytes, d.memory_bytes);
        widen(&mut self.disk_bytes, d.disk_bytes);
        if let Some(sample) = &record.dynamic {
            extend_max(&mut self.max_free_cores, sample.free_cores, true);
            extend_max(
                &mut self.max_free_memory_bytes,
                sample.free_memory_bytes,
                true,
            );
            extend_max(&mut self.min_load, sample.load, false);
        }
        insert_bounded(&mut self.archs, [&d.arch]);
        insert_bounded(&mut self.oses, [&d.os]);
        insert_bounded(&mut self.tags, &d.tags);
        insert_bounded(&mut self.label_keys, d.labels.keys());
        insert_bounded(&mut self.vos, &d.vos);
        insert_bounded(&mut self.roles, &d.roles);
        insert_bounded(
            &mut self.service_kinds,
            d.services.iter().filter(|s| s.healthy).map(|s| &s.kind),
        );
    }

    /// False only when the summary proves that no alive node of the site
    /// can match `q`; true whenever in doubt.
    pub fn may_match(&self, q: &Query) -> bool {
        self.nodes_alive > 0 && prune::possible(self, q.expr())
    }

    /// Whether the site's alive nodes serve any of `vos`.
    pub fn serves_any(&self, vos: &BTreeSet<String>) -> bool {
        self.vos.contains("") || !self.vos.is_disjoint(vos)
    }

    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: only strings, numbers and sets.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Decodes a summary from another site: size first, then postcard, then
    /// the site name and counts.
    pub fn decode(b: &[u8]) -> Result<Self, DescriptorError> {
        check_size("site summary", b.len(), MAX_SITE_SUMMARY_BYTES)?;
        let summary: SiteSummary = decode_exact("site summary", b)?;
        summary
            .site
            .parse::<SiteName>()
            .map_err(|e| DescriptorError::invalid("site", e.to_string()))?;
        summary.check_figures()?;
        Ok(summary)
    }

    /// Figures that would make `may_match` wrongly refuse: NaN compares
    /// false with everything, and an inverted range contains nothing.
    fn check_figures(&self) -> Result<(), DescriptorError> {
        if self.nodes_alive > self.nodes_total {
            return Err(DescriptorError::invalid(
                "nodes_alive",
                format!(
                    "{} is more than nodes_total {}",
                    self.nodes_alive, self.nodes_total
                ),
            ));
        }
        let ordered = |field: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(DescriptorError::invalid(field, "minimum is above maximum"))
            }
        };
        ordered("cores", self.cores.is_none_or(|(lo, hi)| lo <= hi))?;
        ordered(
            "memory_bytes",
            self.memory_bytes.is_none_or(|(lo, hi)| lo <= hi),
        )?;
        ordered(
            "disk_bytes",
            self.disk_bytes.is_none_or(|(lo, hi)| lo <= hi),
        )?;
        for (field, value) in [
            ("max_free_cores", self.max_free_cores),
            ("min_load", self.min_load),
        ] {
            if value.is_some_and(|v| !v.is_finite()) {
                return Err(DescriptorError::invalid(field, "not a finite number"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
