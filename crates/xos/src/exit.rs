//! Exit codes of `xos`, so scripts can tell failures apart.

use xtreem_client::ClientError;

/// Bad command line (clap's own code).
pub const USAGE: u8 = 2;
/// The node could not be reached, or TLS failed.
pub const UNREACHABLE: u8 = 3;
/// The node refused: not authenticated or not allowed.
pub const DENIED: u8 = 4;
/// The named thing does not exist.
pub const NOT_FOUND: u8 = 5;
/// The request conflicts with the current state or is invalid.
pub const CONFLICT: u8 = 6;
/// No credentials: run `xos site init` first.
pub const NO_CREDENTIALS: u8 = 7;

pub const HELP: &str = "Exit codes: 0 ok, 1 other failure, 2 bad usage, 3 node unreachable or TLS failure, \
4 denied, 5 not found, 6 conflict or invalid request, 7 no credentials.";

pub fn code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return match c {
                ClientError::Unreachable { .. } | ClientError::Net(_) => UNREACHABLE,
                ClientError::NoCredentials { .. } => NO_CREDENTIALS,
                ClientError::Refused { code, .. } => match code {
                    tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => DENIED,
                    tonic::Code::NotFound => NOT_FOUND,
                    _ => CONFLICT,
                },
                _ => 1,
            };
        }
    }
    1
}
