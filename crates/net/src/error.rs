//! Transport errors.

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
