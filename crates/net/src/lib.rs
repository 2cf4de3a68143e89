//! Transport of Xtreem: TLS 1.3 everywhere, mutual authentication between
//! nodes, peer identity taken from certificates, and the plumbing that puts
//! tonic gRPC on top.
//!
//! Main types:
//! - [`tls::TlsMaterial`]: a node's or administrator's certificate, key and
//!   site CA, turned into rustls server and client configs whose verifiers
//!   also consult a live [`RevocationSet`]. With federation the server also
//!   admits nodes of trusted sites ([`tls::ForeignCa`]), each CA vouching for
//!   its own site only.
//! - [`server::TlsAcceptor`]: the accept loop. Each handshake runs in its own
//!   task under a timeout and a bound on handshakes in flight, so garbage on
//!   the port closes that connection only; the RPC server sees only
//!   connections that finished a TLS 1.3 handshake.
//! - [`client::connect`]: a tonic channel over our own TLS connector.
//! - [`PeerIdentity`]: who is on the other end, from the SPIFFE-style URI
//!   (`spiffe://SITE/node/NAME`, `spiffe://SITE/admin/NAME`) in its certificate.
//!
//! Architecture invariant: `net` knows nothing of VOs, jobs or files, and
//! never reads the store.

pub mod client;
mod error;
mod identity;
mod revocation;
pub mod server;
pub mod tls;

pub use error::{CertRefusal, NetError, Result};
pub use identity::{PeerIdentity, PrincipalKind, identity_from_der, spiffe_uri};
pub use revocation::RevocationSet;
pub use server::ConnInfo;

/// The identity of the caller of a gRPC request, if it presented a client
/// certificate during the TLS handshake.
pub fn peer_identity<T>(request: &tonic::Request<T>) -> Option<&PeerIdentity> {
    request
        .extensions()
        .get::<ConnInfo>()
        .and_then(|info| info.peer.as_ref())
}
