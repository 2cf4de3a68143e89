//! Virtual Organizations on a node: the VO authority (on the site authority:
//! users, VOs, membership, signing keys, login, delegation), the trust
//! document every node verifies credentials with, and stored policies.

pub mod authority;
pub mod policies;
pub mod trust;

use tonic::Status;
use xtreem_vo::VoError;

/// Maps a VO refusal to the status a client sees.
pub fn vo_status(e: VoError) -> Status {
    use VoError as E;
    match e {
        E::UnknownVo(_)
        | E::UnknownGroup(_)
        | E::UnknownUser(_)
        | E::UnknownKey { .. }
        | E::NotMember { .. }
        | E::NoRequest { .. } => Status::not_found(e.to_string()),
        E::VoExists(_) | E::GroupExists(_) | E::UserExists(_) | E::AlreadyRequested { .. } => {
            Status::already_exists(e.to_string())
        }
        E::Suspended(_) => Status::failed_precondition(e.to_string()),
        E::Denied(_) => Status::permission_denied(e.to_string()),
        E::Invalid { .. } => Status::invalid_argument(e.to_string()),
        E::Store(_) => {
            tracing::error!(error = %e, "VO store failure");
            Status::internal(format!("the VO service failed: {e}"))
        }
    }
}
