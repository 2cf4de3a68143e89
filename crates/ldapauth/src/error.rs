//! Errors of LDAP authentication, worded for the person who reads them.
//!
//! A refused login says only "wrong user name or password": whether the user
//! exists or the password was wrong is not revealed, because telling them
//! apart lets an attacker enumerate accounts.

use std::time::Duration;

pub type Result<T, E = LdapAuthError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LdapAuthError {
    /// The configuration cannot work; found when the authenticator is built.
    #[error("invalid LDAP configuration: {0}")]
    InvalidConfig(String),

    /// The configuration asks for TLS, which this build cannot do yet.
    #[error(
        "LDAP over TLS ({what}) is not supported yet: use an ldap:// URL on a trusted \
         network (loopback) with starttls = false"
    )]
    TlsUnsupported { what: &'static str },

    /// The user name could change the meaning of the bind DN, or is not a
    /// name at all. Refused before any network traffic.
    #[error("the user name is not acceptable: {reason}")]
    InvalidUserName { reason: String },

    /// An empty password would make the simple bind an *unauthenticated*
    /// bind, which many servers accept as success. Refused before any
    /// network traffic.
    #[error("a password is required")]
    EmptyPassword,

    /// The server said the DN or the password is wrong (result code 49).
    #[error("wrong user name or password")]
    InvalidCredentials,

    // ldap3's error is boxed: it is large, and every `Result` carries it.
    /// No LDAP session could be opened: refused, unroutable, DNS, timeout.
    #[error("cannot reach the LDAP server at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },

    /// Connected, but the bind got no answer in time.
    #[error("the LDAP server at {url} did not answer the bind within {timeout:?}")]
    Timeout { url: String, timeout: Duration },

    /// The server answered the bind with an error other than "invalid
    /// credentials" (for example "unwilling to perform" or "busy").
    #[error("the LDAP server at {url} refused the bind: {message} (result code {code})")]
    Refused {
        url: String,
        code: u32,
        message: String,
    },

    /// The session broke during the bind (connection closed, bad answer).
    #[error("LDAP bind with the server at {url} failed: {source}")]
    Protocol {
        url: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
}
