//! Errors of sites, tokens and certificates. Refusals are worded for the
//! person who will read them: what is wrong and what to do.

use xtreem_store::StoreError;

pub type Result<T, E = SecurityError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("this node already belongs to site {0}; a node serves one site")]
    SiteExists(String),
    #[error(
        "no site has been initialised on this node; run `xos site init NAME` on a core node first"
    )]
    NoSite,
    #[error(
        "join token {0} is unknown to this site; ask a site administrator for a new one (`xos node join-token`)"
    )]
    UnknownToken(String),
    #[error(
        "join token {id} was already used by node {by}; join tokens are single-use, ask for a new one"
    )]
    TokenUsed { id: String, by: String },
    #[error(
        "join token {id} expired {ago_secs} s ago; ask a site administrator for a new one (`xos node join-token --ttl ...`)"
    )]
    TokenExpired { id: String, ago_secs: u64 },
    #[error("join token {0} does not match; check that it was copied whole")]
    TokenMismatch(String),
    #[error("malformed join token: {0}")]
    MalformedToken(String),
    #[error(
        "a node named {0} is already enrolled in this site; remove it first (`xos node remove {0}`) or pick another name"
    )]
    NodeExists(String),
    #[error("no node named {0} in this site")]
    UnknownNode(String),
    #[error("node {0} was removed from the site; it must rejoin with a new join token")]
    NodeRemoved(String),
    #[error(
        "the site CA certificate does not match the hash pinned in the join token: expected {expected}, got {actual}; the address may point at another site"
    )]
    CaMismatch { expected: String, actual: String },
    #[error("certificate request refused: {0}")]
    BadCsr(String),
    #[error("certificate error: {0}")]
    Certificate(String),
    #[error("invalid value for {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rcgen::Error> for SecurityError {
    fn from(e: rcgen::Error) -> Self {
        SecurityError::Certificate(e.to_string())
    }
}
