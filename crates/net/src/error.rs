//! Transport errors.

use crate::PrincipalKind;

pub type Result<T, E = NetError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid TLS material: {0}")]
    Material(String),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("certificate has no Xtreem identity: {0}")]
    Identity(String),
    #[error("cannot reach {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a verifier refused a peer certificate on Xtreem's own rules (as
/// opposed to a broken chain, which rustls reports itself).
///
/// It travels inside `rustls::CertificateError::Other`, so that the handshake
/// failure logged by the accept loop, and the error a client sees, name the
/// rule that failed instead of a bare "bad certificate".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertRefusal {
    /// The certificate carries no parsable `spiffe://SITE/KIND/NAME` URI, so
    /// there is no site to bind it to.
    #[error("certificate has no Xtreem identity: {0}")]
    NoIdentity(String),
    /// The certificate claims a site for which we hold no CA: neither our own
    /// site nor one trusted with `xos site trust`.
    #[error("certificate names site {site:?}, which this site does not trust")]
    UntrustedSite { site: String },
    /// Federation admits the nodes of a trusted site, never its
    /// administrators: those administer their own site only.
    #[error("{kind} certificate of foreign site {site:?}: only nodes of other sites are admitted")]
    ForeignNotNode { site: String, kind: PrincipalKind },
    /// A server certificate that is not a node's: only nodes serve.
    #[error("server certificate belongs to {kind} {name:?}, not to a node")]
    ServerNotNode { kind: PrincipalKind, name: String },
    /// A foreign server whose certificate chains to the CA we trust for
    /// `expected` but names another site.
    #[error("server certificate names site {found:?}, expected site {expected:?}")]
    WrongSite { expected: String, found: String },
}

impl From<CertRefusal> for rustls::Error {
    fn from(refusal: CertRefusal) -> Self {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(refusal),
        )))
    }
}

impl CertRefusal {
    /// The refusal inside a rustls error, if one of our verifiers raised it.
    pub fn from_rustls(err: &rustls::Error) -> Option<&CertRefusal> {
        match err {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                other.0.downcast_ref::<CertRefusal>()
            }
            _ => None,
        }
    }
}
