//! The resource directory of Xtreem (the SRDS): what each node offers, how
//! clients ask for nodes, and what a site tells other sites about itself.
//!
//! Everything here is pure data and logic; gossip, RPC and persistence live
//! in other crates. The parts:
//!
//! - [`StaticDescriptor`] and [`DynamicSample`]: what a node publishes about
//!   itself (hardware, tags, services; and its current load). Both are
//!   validated on decode, because they arrive from other machines.
//! - [`host`]: probes this Linux machine to fill them in.
//! - [`Query`]: the discovery query language, e.g.
//!   `cores>=4 && mem>=8GiB && tag:gpu sort -load limit 5`.
//! - [`Directory`]: the in-memory index of [`NodeRecord`]s a query runs over.
//! - [`SiteSummary`]: the aggregate a site sends to other sites, so that a
//!   federated query skips sites that cannot possibly match.
//!
//! ```
//! use std::sync::Arc;
//! use xtreem_directory::{Directory, Query, StaticDescriptor};
//!
//! let mut node = StaticDescriptor::example("n1", "site-a");
//! node.cores = 8;
//! node.tags.insert("gpu".into());
//! let mut dir = Directory::new();
//! dir.upsert_static(Arc::new(node));
//!
//! let q = Query::parse("cores>=4 && tag:gpu sort -cores limit 5").unwrap();
//! let found = dir.query(&q, |_| true);
//! assert_eq!(found.len(), 1);
//! assert_eq!(found[0].descriptor.node, "n1");
//!
//! let err = Query::parse("cores>=4 && mem>==8GiB").unwrap_err();
//! assert_eq!(err.to_string(), "at 15 (`>==`): expected a value after `>=`");
//! ```

mod descriptor;
mod error;
mod format;
pub mod host;
mod index;
pub mod query;
mod summary;
mod validate;

pub use descriptor::{
    DynamicSample, MAX_DYNAMIC_SAMPLE_BYTES, MAX_STATIC_DESCRIPTOR_BYTES, ServiceEntry,
    StaticDescriptor,
};
pub use error::DescriptorError;
pub use format::format_bytes;
pub use host::{StaticBase, probe_dynamic, probe_static};
pub use index::{Directory, NodeRecord, sort_and_limit};
pub use query::{Attribute, Query, QueryError, SortKey};
pub use summary::{MAX_SITE_SUMMARY_BYTES, SUMMARY_SET_ENTRIES_MAX, SiteSummary};
