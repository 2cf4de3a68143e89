//! The node daemon's library: everything `xosd` does, so the binary only
//! parses arguments and handles signals.
//!
//! - [`config`]: the TOML config, checked in two stages with errors that name
//!   the file, line and key.
//! - [`daemon::run`]: one node's life: store, listeners, site membership,
//!   servers, orderly stop.
//! - [`authority`]: the site authority (the core node holding the site CA).
//! - [`member`]: enrollment, heartbeats, certificate renewal.
//! - [`directory`]: gossip membership, the site's descriptors, dynamic
//!   samples and federation with trusted sites.
//! - [`jobs`]: application execution: job homes (submission, self-scheduling,
//!   control, restart) and resource nodes (admission, supervised units).
//! - [`access`]: the policy facts of a user and the local account a node gives.
//! - [`rpc`]: the gRPC services and the checks every request passes.
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`.
//!
//! Architecture invariant: only this crate composes services; the crates
//! below it never know which roles a node has.

pub mod access;
mod audit_writer;
pub mod authority;
pub mod config;
pub mod daemon;
pub mod directory;
mod http;
pub mod jobs;
pub mod member;
pub mod membership;
mod metrics;
pub mod paths;
pub mod rpc;
pub mod tls_state;
pub mod vo;

pub use config::NodeConfig;
pub use daemon::run;
