//! Sites and node enrollment: the seeds' resource certification authority.
//!
//! Main types:
//! - [`ca::SiteCa`]: the site's certificate authority; signs node and
//!   administrator certificates from CSRs, so private keys never leave the
//!   machine that made them.
//! - [`token::JoinToken`]: the one-time, expiring secret an administrator
//!   hands to a new node; it also pins the hash of the site CA.
//! - [`site::SiteMachine`]: the site's durable state (tokens, nodes,
//!   certificates, revocations) as a [`xtreem_store::StateMachine`].
//! - [`keys`]: key generation and CSRs for the side that wants a certificate.
//!
//! Architecture invariant: `security` does no network IO; the node crate
//! carries its requests and answers.

pub mod ca;
mod error;
pub mod files;
pub mod keys;
pub mod site;
pub mod token;

pub use error::{Result, SecurityError};
