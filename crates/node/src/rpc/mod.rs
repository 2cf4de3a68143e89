//! gRPC services of a node and the checks every request passes.

pub mod admin;
pub mod directory;
pub mod enrollment;
pub mod fabric;
pub mod jobs;
pub mod local_admin;
pub mod vo;

use tonic::{Request, Status};
use xtreem_net::{PeerIdentity, PrincipalKind, peer_identity};
use xtreem_proto::fabric as pb;
use xtreem_security::SecurityError;
use xtreem_util::roles::Role;

use crate::daemon::NodeShared;

/// Maps a refusal to the gRPC status a client sees; the message is the
/// refusal's own wording. Internal failures are logged and kept vague.
pub fn status(e: SecurityError) -> Status {
    use SecurityError as E;
    match e {
        E::UnknownToken(_)
        | E::TokenUsed { .. }
        | E::TokenExpired { .. }
        | E::TokenMismatch(_)
        | E::NodeRemoved(_)
        | E::CaMismatch { .. } => Status::permission_denied(e.to_string()),
        E::MalformedToken(_) | E::BadCsr(_) | E::Invalid { .. } => {
            Status::invalid_argument(e.to_string())
        }
        E::NodeExists(_) | E::SiteExists(_) => Status::already_exists(e.to_string()),
        E::UnknownNode(_) => Status::not_found(e.to_string()),
        E::NoSite => Status::failed_precondition(e.to_string()),
        E::Certificate(_) | E::Write { .. } | E::Read { .. } | E::Store(_) => {
            tracing::error!(error = %e, "internal failure while serving a request");
            Status::internal(format!("the node failed to serve the request: {e}"))
        }
    }
}

fn kind_name(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::Node => "node",
        PrincipalKind::Admin => "administrator",
    }
}

/// The authenticated caller, if it is a `kind` of this node's site whose
/// certificate is not revoked. Checked on every request, because an HTTP/2
/// connection opened before a revocation may still be open.
pub fn caller<T>(
    request: &Request<T>,
    shared: &NodeShared,
    kind: PrincipalKind,
    what: &str,
) -> Result<PeerIdentity, Status> {
    let peer = peer_identity(request).ok_or_else(|| {
        Status::unauthenticated(format!(
            "{what} requires a {} certificate of this site, and the client presented none",
            kind_name(kind)
        ))
    })?;
    let site = shared.site_name().unwrap_or_default();
    if peer.site != site {
        return Err(Status::permission_denied(format!(
            "{peer} is not of this node's site {site}"
        )));
    }
    if shared.tls.revoked.is_revoked(&peer.serial) {
        return Err(Status::permission_denied(format!(
            "the certificate of {peer} has been revoked"
        )));
    }
    if peer.kind != kind {
        return Err(Status::permission_denied(format!(
            "{what} requires a {} certificate, and {peer} presented a {} certificate",
            kind_name(kind),
            kind_name(peer.kind)
        )));
    }
    Ok(peer.clone())
}

pub fn role_to_pb(role: Role) -> i32 {
    match role {
        Role::Core => pb::Role::Core as i32,
        Role::Resource => pb::Role::Resource as i32,
        Role::Client => pb::Role::Client as i32,
    }
}

pub fn role_from_pb(value: i32) -> Result<Role, Status> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Core) => Ok(Role::Core),
        Ok(pb::Role::Resource) => Ok(Role::Resource),
        Ok(pb::Role::Client) => Ok(Role::Client),
        _ => Err(Status::invalid_argument(format!(
            "unknown role {value}: expected core, resource or client"
        ))),
    }
}

/// Checks `host:port` from a request.
pub fn endpoint_arg(endpoint: &str) -> Result<String, Status> {
    let ok = endpoint.len() <= 300
        && endpoint.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
    if ok {
        Ok(endpoint.to_owned())
    } else {
        Err(Status::invalid_argument(format!(
            "rpc_endpoint {:?} is not HOST:PORT",
            endpoint.chars().take(64).collect::<String>()
        )))
    }
}
