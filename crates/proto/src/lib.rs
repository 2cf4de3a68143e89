//! Wire types of Xtreem, generated from the `.proto` files under `proto/`.
//!
//! This crate owns the network contract and nothing else: no logic, no IO.
//! Only these types cross a process boundary; every service converts them to
//! its own types at the edge, so internal types never need to be serializable
//! for the network.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

/// Node fabric: site bootstrap, enrollment, renewal, revocation, node list.
pub mod fabric {
    tonic::include_proto!("xtreem.fabric.v1");
}

/// Virtual Organizations: login, VO administration, delegation, site trust,
/// policy, accounts, audit.
pub mod vo {
    tonic::include_proto!("xtreem.vo.v1");
}

/// Directory (SRDS): discovery queries, service lookup, gossip membership
/// view, and site summaries exchanged between trusting sites.
pub mod directory {
    tonic::include_proto!("xtreem.directory.v1");
}

/// Jobs (AEM): submission, listing, control, logs and accounting for users;
/// launching units and reporting their end between nodes.
pub mod jobs {
    tonic::include_proto!("xtreem.jobs.v1");
}
