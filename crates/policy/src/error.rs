//! Errors of the policy crate. Every refusal names the level it concerns and,
//! for policy text, quotes Cedar's own diagnostics with line and column so an
//! administrator can fix the text without guessing.

use crate::level::Level;

pub type Result<T, E = PolicyError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid policy level {text:?}: {reason}; write vo:NAME, site:NAME or user:SUBJECT")]
    InvalidLevel { text: String, reason: String },
    #[error("policy for {level} is {bytes} bytes; at most {max} bytes are accepted")]
    TooLarge {
        level: Level,
        bytes: usize,
        max: usize,
    },
    #[error("policy for {level} holds {count} policies; at most {max} are accepted per level")]
    TooMany {
        level: Level,
        count: usize,
        max: usize,
    },
    #[error("policy for {level} does not parse; nothing was changed:\n{diagnostics}")]
    Syntax { level: Level, diagnostics: String },
    #[error(
        "policy for {level} does not fit the Xtreem schema (strict validation); nothing was changed:\n{diagnostics}"
    )]
    Invalid { level: Level, diagnostics: String },
    #[error(
        "policy for {level} contains a template ({id}); templates with ?principal or ?resource are not supported, write the entity out"
    )]
    Template { level: Level, id: String },
    #[error(
        "policy {id} for {level} is a forbid; user-level policies may only permit (share access to the user's own resources), ask a VO or site administrator to forbid"
    )]
    UserForbid { level: Level, id: String },
    #[error(
        "policy for {level} uses the id {id:?} twice; every @id(\"...\") annotation must be unique within a level"
    )]
    DuplicateId { level: Level, id: String },
}
