//! What every typed client does before a call: open a channel as the site
//! administrator (certificate) or as a user (server-authenticated TLS), and
//! attach the user's bearer credential.

use std::sync::Arc;

use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use xtreem_net::RevocationSet;
use xtreem_net::tls::{TlsMaterial, anonymous_client_config, cert_from_pem};

use crate::{ClientError, Profile, Result};

/// A channel to `endpoint`, with the administrator certificate when
/// `as_admin` and the profile has one.
pub(crate) fn channel(profile: &Profile, endpoint: &str, as_admin: bool) -> Result<Channel> {
    let config = match (&profile.admin, as_admin) {
        (Some(admin), true) => {
            TlsMaterial::from_pem(&admin.ca_pem, &admin.cert_pem, &admin.key_pem)?
                .client_config(&RevocationSet::new())?
        }
        _ => anonymous_client_config(&cert_from_pem(&profile.ca_pem)?)?,
    };
    Ok(xtreem_net::client::connect(endpoint, Arc::clone(&config))?)
}

/// `message` as a request carrying `bearer`, if any.
pub(crate) fn request<T>(message: T, bearer: Option<&str>) -> Result<Request<T>> {
    let mut request = Request::new(message);
    if let Some(token) = bearer {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().map_err(|_| {
            ClientError::Local(
                "the saved credential is not valid text; run `xos login` again".into(),
            )
        })?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}
