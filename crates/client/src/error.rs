//! Client errors, each mapped to an exit code by the CLI.

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached or the TLS handshake failed.
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// The node refused the request; `message` is its explanation.
    #[error("{endpoint} refused: {message}")]
    Refused {
        endpoint: String,
        code: tonic::Code,
        message: String,
    },
    #[error("no credentials in {dir}: {hint}")]
    NoCredentials { dir: String, hint: String },
    #[error("{0}")]
    Local(String),
    #[error(transparent)]
    Net(#[from] xtreem_net::NetError),
    #[error(transparent)]
    Security(#[from] xtreem_security::SecurityError),
}

impl ClientError {
    pub fn from_status(endpoint: &str, status: tonic::Status) -> ClientError {
        match status.code() {
            tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled => ClientError::Unreachable {
                endpoint: endpoint.to_owned(),
                reason: describe_transport(&status),
            },
            code => ClientError::Refused {
                endpoint: endpoint.to_owned(),
                code,
                message: status.message().to_owned(),
            },
        }
    }
}

/// The deepest cause of a transport failure, which is where TLS says what it
/// did not like (unknown CA, revoked certificate, ...).
fn describe_transport(status: &tonic::Status) -> String {
    let mut reason = status.message().to_owned();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(status);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    if reason.contains("invalid peer certificate") {
        reason.push_str(
            " (the node's certificate was not issued by the site CA in your credentials, or has expired or been revoked: \
             is this endpoint a node of your site?)",
        );
    } else if reason.contains("received fatal alert") {
        reason.push_str(
            " (the node refused your certificate: it was not issued by this site's CA, or has expired or been revoked)",
        );
    }
    reason
}
