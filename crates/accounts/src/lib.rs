//! Dynamic account mapping on a resource node: a VO identity (issuer,
//! subject, VO) gets a local uid from a configured pool and the gid of its
//! VO's group, for as long as it uses them.
//!
//! This crate owns the node's account leases, VO groups and quarantined
//! uids (stored through [`xtreem_store`]), and the cleanup that stands
//! between two holders of a uid: killing the previous holder's processes and
//! removing its scratch files without following symbolic links.
//!
//! Main types:
//! - [`AccountMapper`]: `map` an identity to a [`Mapping`], `touch` it while
//!   in use, `list` for `xos node accounts`, and `sweep` (release idle
//!   leases, clean up, end quarantines) from a periodic worker.
//! - [`PoolConfig`]: the uid and gid pools (default 200000-299999), idle
//!   timeout (10 min), quarantine (1 h) and scratch root.
//! - [`VoIdentity`]: who asks for an account.
//! - [`AccountMachine`]: the durable state as a [`xtreem_store::StateMachine`].
//!
//! Architecture invariant: accounts never edits /etc/passwd or /etc/group
//! (it only reads them, to refuse a pool that overlaps local accounts); names
//! such as `xvo-bio-200000` exist for display only. Who may list mappings is
//! decided by the caller, not here.
//!
//! ```
//! use std::sync::Arc;
//! use xtreem_accounts::{AccountMapper, PoolConfig, VoIdentity};
//! use xtreem_store::Store;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
//! let mut config = PoolConfig::for_data_dir(dir.path());
//! config.shared_tmp_dirs.clear();
//! let mapper = AccountMapper::open(store, config).unwrap();
//!
//! let alice = VoIdentity::new("https://vo.example", "alice", "bio");
//! let account = mapper.map(&alice).unwrap();
//! assert_eq!((account.uid, account.gid), (200_000, 200_000));
//! assert_eq!(account.user_name, "xvo-bio-200000");
//! assert_eq!(account.group_name, "xvo-bio");
//! // The same identity keeps its account; another one gets the next uid
//! // in the same VO group.
//! assert_eq!(mapper.map(&alice).unwrap().uid, 200_000);
//! let bob = mapper.map(&VoIdentity::new("https://vo.example", "bob", "bio")).unwrap();
//! assert_eq!((bob.uid, bob.gid), (200_001, 200_000));
//! ```

mod cleanup;
pub mod config;
mod error;
pub mod identity;
pub mod machine;
mod mapper;
pub mod procs;
mod tree;

pub use cleanup::CleanupStats;
pub use config::PoolConfig;
pub use error::{AccountsError, Result};
pub use identity::VoIdentity;
pub use machine::{AccountCommand, AccountMachine};
pub use mapper::{AccountMapper, AccountState, Mapping, MappingView, ReleaseReport, SweepReport};
