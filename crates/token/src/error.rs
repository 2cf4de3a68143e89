//! Why a credential was refused, in words for the person holding it.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the credential is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the credential uses algorithm {0}; only EdDSA (Ed25519) is accepted")]
    Algorithm(String),
    #[error("the credential names no key id (kid)")]
    NoKeyId,
    #[error(
        "the credential was signed by key {kid} of {issuer}, which this node does not trust (unknown, or withdrawn)"
    )]
    UnknownKey { issuer: String, kid: String },
    #[error("the credential's issuer {0} is not trusted here")]
    UnknownIssuer(String),
    #[error("the credential's signature is invalid")]
    Signature,
    #[error("the credential expired {0} s ago; run `xos login` again")]
    Expired(u64),
    #[error("the credential is not valid before Unix time {0} (more than 60 s in the future)")]
    NotYetValid(u64),
    #[error("the credential's audience is not one this service accepts ({0:?})")]
    Audience(Vec<String>),
    #[error("the credential lacks claim {0}")]
    MissingClaim(&'static str),
    #[error("delegation refused: {0}")]
    Delegation(String),
    #[error("cannot make a key: {0}")]
    Key(String),
}
