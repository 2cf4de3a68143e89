//! Evaluating a predicate and sort keys against a node record. Runs once per
//! record per query, so it borrows everything and allocates nothing.

use super::ast::Expr;
use super::attribute::Attribute;
use crate::index::NodeRecord;

impl Expr {
    pub(crate) fn eval(&self, record: &NodeRecord) -> bool {
        let d = &*record.descriptor;
        match self {
            Expr::True => true,
            Expr::And(terms) => terms.iter().all(|t| t.eval(record)),
            Expr::Or(terms) => terms.iter().any(|t| t.eval(record)),
            Expr::Not(inner) => !inner.eval(record),
            Expr::Number { attr, cmp, value } => {
                number(record, *attr).is_some_and(|n| cmp.holds(n, *value))
            }
            Expr::NumberIn { attr, values } => {
                number(record, *attr).is_some_and(|n| values.contains(&n))
            }
            Expr::TextIn { attr, values } => {
                text(record, *attr).is_some_and(|t| values.iter().any(|v| v == t))
            }
            Expr::Tag(tag) => d.tags.contains(tag),
            Expr::Label { key, value } => d
                .labels
                .get(key)
                .is_some_and(|have| value.as_ref().is_none_or(|want| want == have)),
            Expr::Vo(vo) => d.vos.contains(vo),
            Expr::Service(kind) => d.services.iter().any(|s| s.healthy && s.kind == *kind),
            Expr::Role(role) => d.roles.iter().any(|r| r == role),
        }
    }
}

/// A numeric attribute's value; `None` for text attributes and for dynamic
/// attributes of a record without a sample.
pub(crate) fn number(record: &NodeRecord, attr: Attribute) -> Option<f64> {
    let d = &*record.descriptor;
    let s = record.dynamic.as_ref();
    match attr {
        Attribute::Cores => Some(f64::from(d.cores)),
        Attribute::Memory => Some(d.memory_bytes as f64),
        Attribute::Disk => Some(d.disk_bytes as f64),
        Attribute::FreeCores => s.map(|s| f64::from(s.free_cores)),
        Attribute::FreeMemory => s.map(|s| s.free_memory_bytes as f64),
        Attribute::FreeDisk => s.map(|s| s.free_disk_bytes as f64),
        Attribute::Load => s.map(|s| f64::from(s.load)),
        Attribute::Jobs => s.map(|s| f64::from(s.running_jobs)),
        _ => None,
    }
}

/// A text attribute's value; `None` for numeric attributes.
pub(crate) fn text(record: &NodeRecord, attr: Attribute) -> Option<&str> {
    let d = &*record.descriptor;
    Some(match attr {
        Attribute::Name => &d.node,
        Attribute::Site => &d.site,
        Attribute::Arch => &d.arch,
        Attribute::Os => &d.os,
        Attribute::Kernel => &d.kernel,
        Attribute::State if record.alive => "alive",
        Attribute::State => "dead",
        _ => return None,
    })
}
