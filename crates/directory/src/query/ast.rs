//! The parsed form of a query predicate, resolved so that evaluating it per
//! record needs no allocation and no name lookups.

use super::attribute::Attribute;

/// A numeric comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub(crate) fn from_op(op: &str) -> Option<Cmp> {
        Some(match op {
            "==" | "=" => Cmp::Eq,
            "!=" => Cmp::Ne,
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            ">=" => Cmp::Ge,
            _ => return None,
        })
    }

    pub(crate) fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Cmp::Eq => left == right,
            Cmp::Ne => left != right,
            Cmp::Lt => left < right,
            Cmp::Le => left <= right,
            Cmp::Gt => left > right,
            Cmp::Ge => left >= right,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// The empty query.
    True,
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// False when the record lacks the value (no dynamic sample), whatever
    /// the operator: "unknown" never satisfies a comparison.
    Number {
        attr: Attribute,
        cmp: Cmp,
        value: f64,
    },
    NumberIn {
        attr: Attribute,
        values: Vec<f64>,
    },
    /// `attr == v` and `attr in [...]`; `!=` is `Not` of this, since text
    /// attributes are never missing.
    TextIn {
        attr: Attribute,
        values: Vec<String>,
    },
    Tag(String),
    Label {
        key: String,
        value: Option<String>,
    },
    Vo(String),
    /// A healthy service of this kind.
    Service(String),
    Role(String),
}
