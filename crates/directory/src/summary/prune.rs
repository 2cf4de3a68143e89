//! Deciding from a summary alone whether a query may match at a site.
//!
//! Two conservative judgements over the site's alive nodes: `possible` (some
//! node might satisfy the expression) and `certain` (every node surely does).
//! Negation swaps them: `!e` is possible unless `e` is certain. Anything the
//! summary does not describe is possible and never certain.

use std::collections::BTreeSet;

use super::SiteSummary;
use crate::query::{Attribute, Cmp, Expr};

/// What the summary knows about a numeric attribute over alive nodes.
enum Bounds {
    /// Every alive node's value lies in `lo..=hi`.
    Range(f64, f64),
    /// Values of nodes with a sample are at most this (dynamic attributes:
    /// some nodes may have no value at all).
    AtMost(f64),
    /// Values of nodes with a sample are at least this.
    AtLeast(f64),
    Unknown,
}

fn bounds(s: &SiteSummary, attr: Attribute) -> Bounds {
    let range = |r: Option<(f64, f64)>| r.map_or(Bounds::Unknown, |(lo, hi)| Bounds::Range(lo, hi));
    match attr {
        Attribute::Cores => range(s.cores.map(|(a, b)| (f64::from(a), f64::from(b)))),
        Attribute::Memory => range(s.memory_bytes.map(|(a, b)| (a as f64, b as f64))),
        Attribute::Disk => range(s.disk_bytes.map(|(a, b)| (a as f64, b as f64))),
        Attribute::FreeCores => s
            .max_free_cores
            .map_or(Bounds::Unknown, |m| Bounds::AtMost(f64::from(m))),
        Attribute::FreeMemory => s
            .max_free_memory_bytes
            .map_or(Bounds::Unknown, |m| Bounds::AtMost(m as f64)),
        Attribute::Load => s
            .min_load
            .map_or(Bounds::Unknown, |m| Bounds::AtLeast(f64::from(m))),
        _ => Bounds::Unknown,
    }
}

fn number_possible(b: &Bounds, cmp: Cmp, v: f64) -> bool {
    let (lo, hi) = match *b {
        Bounds::Range(lo, hi) => (lo, hi),
        Bounds::AtMost(hi) => (f64::NEG_INFINITY, hi),
        Bounds::AtLeast(lo) => (lo, f64::INFINITY),
        Bounds::Unknown => return true,
    };
    match cmp {
        Cmp::Eq => lo <= v && v <= hi,
        Cmp::Ne => !(lo == v && hi == v),
        Cmp::Lt => lo < v,
        Cmp::Le => lo <= v,
        Cmp::Gt => hi > v,
        Cmp::Ge => hi >= v,
    }
}

fn number_certain(b: &Bounds, cmp: Cmp, v: f64) -> bool {
    // Only static ranges cover every node; a dynamic value may be missing.
    let Bounds::Range(lo, hi) = *b else {
        return false;
    };
    match cmp {
        Cmp::Eq => lo == v && hi == v,
        Cmp::Ne => v < lo || v > hi,
        Cmp::Lt => hi < v,
        Cmp::Le => hi <= v,
        Cmp::Gt => lo > v,
        Cmp::Ge => lo >= v,
    }
}

/// The set of values the site's alive nodes have for a text attribute, or
/// `None` when the summary does not say (or overflowed).
fn text_set(s: &SiteSummary, attr: Attribute) -> Option<TextSet<'_>> {
    let set = match attr {
        Attribute::Arch => &s.archs,
        Attribute::Os => &s.oses,
        Attribute::Site => return Some(TextSet::One(&s.site)),
        Attribute::State => return Some(TextSet::One("alive")),
        _ => return None,
    };
    (!set.contains("")).then_some(TextSet::Many(set))
}

enum TextSet<'a> {
    One(&'a str),
    Many(&'a BTreeSet<String>),
}

impl TextSet<'_> {
    fn any_in(&self, values: &[String]) -> bool {
        match self {
            TextSet::One(one) => values.iter().any(|v| v == one),
            TextSet::Many(set) => values.iter().any(|v| set.contains(v)),
        }
    }

    fn all_in(&self, values: &[String]) -> bool {
        match self {
            TextSet::One(one) => values.iter().any(|v| v == one),
            TextSet::Many(set) => set.iter().all(|have| values.contains(have)),
        }
    }
}

/// Whether `value` may occur in a summary set (always, if it overflowed).
fn may_contain(set: &BTreeSet<String>, value: &str) -> bool {
    set.contains(value) || set.contains("")
}

pub(super) fn possible(s: &SiteSummary, e: &Expr) -> bool {
    match e {
        Expr::True => true,
        Expr::And(terms) => terms.iter().all(|t| possible(s, t)),
        Expr::Or(terms) => terms.iter().any(|t| possible(s, t)),
        Expr::Not(inner) => !certain(s, inner),
        Expr::Number { attr, cmp, value } => number_possible(&bounds(s, *attr), *cmp, *value),
        Expr::NumberIn { attr, values } => {
            let b = bounds(s, *attr);
            values.iter().any(|v| number_possible(&b, Cmp::Eq, *v))
        }
        Expr::TextIn { attr, values } => text_set(s, *attr).is_none_or(|set| set.any_in(values)),
        Expr::Tag(tag) => may_contain(&s.tags, tag),
        Expr::Label { key, .. } => may_contain(&s.label_keys, key),
        Expr::Vo(vo) => may_contain(&s.vos, vo),
        Expr::Service(kind) => may_contain(&s.service_kinds, kind),
        Expr::Role(role) => may_contain(&s.roles, role),
    }
}

fn certain(s: &SiteSummary, e: &Expr) -> bool {
    match e {
        Expr::True => true,
        Expr::And(terms) => terms.iter().all(|t| certain(s, t)),
        Expr::Or(terms) => terms.iter().any(|t| certain(s, t)),
        Expr::Not(inner) => !possible(s, inner),
        Expr::Number { attr, cmp, value } => number_certain(&bounds(s, *attr), *cmp, *value),
        Expr::TextIn { attr, values } => text_set(s, *attr).is_some_and(|set| set.all_in(values)),
        // Sets say what some node has, never what all nodes have.
        _ => false,
    }
}
