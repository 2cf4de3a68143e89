//! The VO service's state: Virtual Organizations with a hierarchy of groups,
//! roles, the membership lifecycle, local user accounts (argon2id), and each
//! VO's signing keys as they are published, used, and withdrawn.
//!
//! Main types:
//! - [`VoMachine`]: the state machine; every change is a [`VoCommand`]
//!   applied in order through the store. Rules that need the state (may this
//!   admin grant that role?) are checked inside `apply`, so they hold on
//!   every replica.
//! - [`Vo`], [`Member`], [`User`]: what the service shows.
//! - [`passwords`]: argon2id hashing and checking.
//!
//! Roles are ranked: `member` < any custom role < `admin`. An admin of a
//! group administers it and its subgroups, never its parents, and never
//! grants a role above their own.
//!
//! Architecture invariant: `vo` keeps public keys only; private signing keys
//! live in files owned by the node, and `vo` does no network IO.

mod error;
mod machine;
mod model;
pub mod passwords;

pub use error::VoError;
pub use machine::{Actor, VoCommand, VoMachine, query};
pub use model::{KeyState, Member, MemberState, User, Vo, VoKey, VoState, role_rank};
