//! Calls over a node's Unix admin socket: site bootstrap and administrator
//! certificates, for root on the node's own machine.

use std::path::Path;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Endpoint, Uri};
use xtreem_proto::fabric as pb;
use xtreem_proto::fabric::local_admin_client::LocalAdminClient;
use xtreem_security::keys;

use crate::{ClientError, Credentials, Result};

async fn connect(socket: &Path) -> Result<LocalAdminClient<tonic::transport::Channel>> {
    let path = socket.to_owned();
    let unreachable = |reason: String| ClientError::Unreachable {
        endpoint: socket.display().to_string(),
        reason,
    };
    if !path.exists() {
        return Err(unreachable(
            "no such socket; is xosd running, and is --data-dir (or --socket) the one in its config?".into(),
        ));
    }
    let endpoint = Endpoint::from_static("http://local.admin")
        .connect_timeout(std::time::Duration::from_secs(5));
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(LocalAdminClient::new(channel))
}

/// `xos site init`: creates the site, then an administrator certificate for
/// `admin` whose key is generated here and never leaves this process.
pub async fn init_site(socket: &Path, site: &str, admin: &str) -> Result<Credentials> {
    let mut client = connect(socket).await?;
    let endpoint = socket.display().to_string();
    client
        .init_site(pb::InitSiteRequest {
            site: site.to_owned(),
        })
        .await
        .map_err(|s| ClientError::from_status(&endpoint, s))?;
    issue_admin_with(&mut client, &endpoint, admin).await
}

/// A new administrator certificate from the site authority on this machine.
pub async fn issue_admin(socket: &Path, admin: &str) -> Result<Credentials> {
    let mut client = connect(socket).await?;
    issue_admin_with(&mut client, &socket.display().to_string(), admin).await
}

async fn issue_admin_with(
    client: &mut LocalAdminClient<tonic::transport::Channel>,
    endpoint: &str,
    admin: &str,
) -> Result<Credentials> {
    let request = keys::new_key_and_csr(admin)?;
    let response = client
        .issue_admin_certificate(pb::IssueAdminCertificateRequest {
            csr_der: request.csr_der,
            admin_name: admin.to_owned(),
        })
        .await
        .map_err(|s| ClientError::from_status(endpoint, s))?
        .into_inner();
    Ok(Credentials {
        site: response.site,
        endpoint: response.rpc_endpoint,
        ca_pem: response.ca_certificate_pem,
        cert_pem: response.certificate_pem,
        key_pem: request.key_pem,
    })
}
