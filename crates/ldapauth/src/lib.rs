//! LDAP as a second way to log in to Xtreem, beside the local accounts of
//! the VO service: a user name and password are accepted when an LDAP
//! server accepts a simple bind as that user.
//!
//! Main types: [`LdapConfig`] (server URL, bind DN template, timeout),
//! [`LdapAuthenticator`] (validates the config once, then
//! [`LdapAuthenticator::authenticate`] per login), [`Authenticated`] (the
//! user and the DN it bound as) and [`LdapAuthError`]. [`testing::Slapd`]
//! starts a real OpenLDAP server for tests.
//!
//! Only `ldap://` is supported for now: a password crosses the network in
//! clear text, so point it at a server on loopback or a trusted network.
//! `ldaps://` and StartTLS are refused with
//! [`LdapAuthError::TlsUnsupported`] until the workspace moves to an ldap3
//! with a rustls + ring TLS backend.
//!
//! Architecture invariant: ldapauth only binds as the user; it never stores
//! passwords or searches the directory with privileged credentials.
//!
//! ```no_run
//! use xtreem_ldapauth::{LdapAuthError, LdapAuthenticator, LdapConfig};
//!
//! # async fn example() -> Result<(), LdapAuthError> {
//! let config = LdapConfig::new(
//!     "ldap://127.0.0.1:389",
//!     "uid={user},ou=people,dc=example,dc=org",
//! );
//! let ldap = LdapAuthenticator::new(config)?;
//! match ldap.authenticate("alice", "correct horse").await {
//!     Ok(who) => println!("logged in as {}", who.dn),
//!     Err(LdapAuthError::InvalidCredentials) => println!("wrong user name or password"),
//!     Err(other) => return Err(other),
//! }
//! # Ok(())
//! # }
//! ```

mod auth;
mod config;
mod error;
pub mod testing;

pub use auth::{Authenticated, LdapAuthenticator};
pub use config::{
    DEFAULT_TIMEOUT, LdapConfig, TIMEOUT_MAX, USER_NAME_MAX_BYTES, USER_PLACEHOLDER,
    validate_user_name,
};
pub use error::{LdapAuthError, Result};
