//! The discovery query language: which nodes a client wants, in which order,
//! and how many.
//!
//! ```text
//! cores>=4 && mem>=8GiB && arch==x86_64 && site in [a,b] && tag:gpu sort -load limit 5
//! ```
//!
//! Grammar (the empty query matches every node):
//!
//! ```text
//! query  := [expr] [sort KEY(,KEY)*] [limit N]     (clauses in either order)
//! expr   := and ('||' and)*
//! and    := unary ('&&' unary)*
//! unary  := '!' unary | '(' expr ')' | atom
//! atom   := ATTR OP VALUE | ATTR in [VALUE, ...]
//!         | tag:NAME | label:KEY | label:KEY==VALUE | vo:NAME | service:KIND | role:NAME
//! OP     := == | = | != | < | <= | > | >=
//! ```
//!
//! Dynamic attributes (`free_*`, `load`, `jobs`) compare false on a record
//! without a dynamic sample, whatever the operator.

mod ast;
mod attribute;
mod error;
mod eval;
mod lexer;
mod order;
mod parser;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

pub use attribute::{Attribute, AttributeKind};
pub use error::QueryError;
pub use parser::MAX_QUERY_DEPTH;

pub(crate) use ast::{Cmp, Expr};
pub(crate) use order::sorted_indices;

use crate::index::NodeRecord;

/// Longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;

/// A parsed query: predicate, sort keys and limit, plus the text it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    text: String,
    expr: Expr,
    sort: Vec<SortKey>,
    limit: Option<usize>,
}

/// One sort key: `load` ascending, `-load` descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub attribute: Attribute,
    pub descending: bool,
}

impl Query {
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        let parsed = parser::parse(text)?;
        Ok(Query {
            text: text.to_owned(),
            expr: parsed.expr,
            sort: parsed.sort,
            limit: parsed.limit,
        })
    }

    /// Whether the record satisfies the predicate (sort and limit aside).
    pub fn matches(&self, node: &NodeRecord) -> bool {
        self.expr.eval(node)
    }

    pub fn sort_keys(&self) -> &[SortKey] {
        &self.sort
    }

    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// Replaces the sort keys (e.g. from a command-line flag). [`Query::text`]
    /// keeps the original text.
    pub fn with_sort(mut self, keys: Vec<SortKey>) -> Self {
        self.sort = keys;
        self
    }

    /// Replaces the limit. [`Query::text`] keeps the original text.
    pub fn with_limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// The sites a matching node must belong to, when the predicate says so:
    /// `site == a && ...` gives `{a}`, `site in [a, b] && site != b` gives
    /// `{a, b}` (only positive constraints count), `site == a || site == b`
    /// gives `{a, b}`. `None` when some node of any site might match.
    pub fn named_sites(&self) -> Option<BTreeSet<String>> {
        required_sites(&self.expr)
    }

    /// The text the query was parsed from, for forwarding to another site.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn expr(&self) -> &Expr {
        &self.expr
    }
}

fn required_sites(expr: &Expr) -> Option<BTreeSet<String>> {
    match expr {
        Expr::TextIn {
            attr: Attribute::Site,
            values,
        } => Some(values.iter().cloned().collect()),
        Expr::And(terms) => terms
            .iter()
            .filter_map(required_sites)
            .reduce(|a, b| a.intersection(&b).cloned().collect()),
        Expr::Or(terms) => terms
            .iter()
            .map(required_sites)
            .reduce(|a, b| Some(a?.union(&b?).cloned().collect()))
            .flatten(),
        _ => None,
    }
}

impl FromStr for Query {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Query, QueryError> {
        Query::parse(s)
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl SortKey {
    /// `-load` sorts by load descending, `cores` by cores ascending.
    pub fn parse(s: &str) -> Result<SortKey, QueryError> {
        let (descending, name, offset) = match s.strip_prefix('-') {
            Some(rest) => (true, rest, 1),
            None => (false, s, 0),
        };
        if name.is_empty() {
            return Err(QueryError::new(
                offset,
                name,
                "expected an attribute to sort by, such as `-load`",
            ));
        }
        let attribute = Attribute::from_name(name).ok_or_else(|| {
            QueryError::new(
                offset,
                name,
                format!(
                    "unknown attribute; known attributes: {}",
                    Attribute::known_list()
                ),
            )
        })?;
        Ok(SortKey {
            attribute,
            descending,
        })
    }
}

impl FromStr for SortKey {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<SortKey, QueryError> {
        SortKey::parse(s)
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.descending { "-" } else { "" };
        write!(f, "{sign}{}", self.attribute)
    }
}
