//! Refusals of the VO service, worded for the person reading them.

use xtreem_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum VoError {
    #[error("no VO named {0}")]
    UnknownVo(String),
    #[error("a VO named {0} exists already")]
    VoExists(String),
    #[error("VO {0} is suspended; a site or VO admin must resume it")]
    Suspended(String),
    #[error("no group {0}")]
    UnknownGroup(String),
    #[error("group {0} exists already")]
    GroupExists(String),
    #[error("no user named {0}; a site admin adds users with `xos user add`")]
    UnknownUser(String),
    #[error("user {0} exists already")]
    UserExists(String),
    #[error("{user} is not a member of VO {vo}")]
    NotMember { user: String, vo: String },
    #[error("{user} already asked to join or is a member of VO {vo}")]
    AlreadyRequested { user: String, vo: String },
    #[error("{user} has no pending request to join VO {vo}")]
    NoRequest { user: String, vo: String },
    #[error("permission denied: {0}")]
    Denied(String),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("no key {kid} in VO {vo}")]
    UnknownKey { vo: String, kid: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}
