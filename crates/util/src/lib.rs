//! Shared basics of Xtreem: validated names, limits, and time helpers.
//!
//! This crate sits at the bottom of the workspace: it depends on no other
//! Xtreem crate and does no IO. Everything here is small and pure so that any
//! crate may use it.
//!
//! ```
//! use xtreem_util::names::NodeName;
//! let name: NodeName = "node-1".parse().unwrap();
//! assert_eq!(name.as_str(), "node-1");
//! assert!("Node_1".parse::<NodeName>().is_err());
//! ```

pub mod limits;
pub mod names;
pub mod roles;
pub mod time;
