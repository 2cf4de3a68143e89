//! Typed client of Xtreem for the CLI, the demo and the tests.
//!
//! - [`Credentials`]: what `xos site init` leaves in the user's config dir
//!   (site CA, administrator certificate and key at mode 0600, endpoint).
//! - [`Client`]: gRPC calls to a node over TLS with those credentials.
//! - [`local`]: calls over a node's Unix admin socket (site bootstrap).
//!
//! Architecture invariant: the client never talks to a node without TLS
//! except over the local Unix socket, whose peer the kernel vouches for.

mod call;
mod credentials;
pub mod directory;
mod error;
pub mod jobs;
pub mod local;
mod profile;
pub mod vo;

pub use credentials::{Credentials, config_dir};
pub use directory::{DirectoryClient, QueryAnswer};
pub use error::{ClientError, Result};
pub use jobs::JobsClient;
pub use profile::Profile;
pub use vo::VoClient;

use xtreem_net::RevocationSet;
use xtreem_net::tls::TlsMaterial;
use xtreem_proto::fabric as pb;
use xtreem_proto::fabric::node_admin_client::NodeAdminClient;

/// A connection to one node with administrator credentials.
pub struct Client {
    endpoint: String,
    admin: NodeAdminClient<tonic::transport::Channel>,
}

impl Client {
    /// Connects (lazily) to `endpoint` with `credentials`.
    pub fn connect(endpoint: &str, credentials: &Credentials) -> Result<Client> {
        let material = TlsMaterial::from_pem(
            &credentials.ca_pem,
            &credentials.cert_pem,
            &credentials.key_pem,
        )?;
        let config = material.client_config(&RevocationSet::new())?;
        let channel = xtreem_net::client::connect(endpoint, config)?;
        Ok(Client {
            endpoint: endpoint.to_owned(),
            admin: NodeAdminClient::new(channel),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn err(&self, status: tonic::Status) -> ClientError {
        ClientError::from_status(&self.endpoint, status)
    }

    pub async fn create_join_token(
        &mut self,
        ttl_seconds: u64,
    ) -> Result<pb::CreateJoinTokenResponse> {
        let r = self
            .admin
            .create_join_token(pb::CreateJoinTokenRequest { ttl_seconds })
            .await;
        r.map(|r| r.into_inner()).map_err(|s| self.err(s))
    }

    pub async fn list_nodes(&mut self) -> Result<pb::ListNodesResponse> {
        let r = self.admin.list_nodes(pb::ListNodesRequest {}).await;
        r.map(|r| r.into_inner()).map_err(|s| self.err(s))
    }

    pub async fn remove_node(&mut self, node: &str) -> Result<pb::RemoveNodeResponse> {
        let r = self
            .admin
            .remove_node(pb::RemoveNodeRequest {
                node: node.to_owned(),
            })
            .await;
        r.map(|r| r.into_inner()).map_err(|s| self.err(s))
    }

    pub async fn probe_node(
        &mut self,
        node: &str,
        count: u32,
        payload_bytes: u32,
    ) -> Result<pb::ProbeNodeResponse> {
        let r = self
            .admin
            .probe_node(pb::ProbeNodeRequest {
                node: node.to_owned(),
                count,
                payload_bytes,
            })
            .await;
        r.map(|r| r.into_inner()).map_err(|s| self.err(s))
    }

    pub async fn status(&mut self) -> Result<pb::StatusResponse> {
        let r = self.admin.status(pb::StatusRequest {}).await;
        r.map(|r| r.into_inner()).map_err(|s| self.err(s))
    }
}

/// Role names as the CLI prints them.
pub fn role_name(value: i32) -> &'static str {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Core) => "core",
        Ok(pb::Role::Resource) => "resource",
        Ok(pb::Role::Client) => "client",
        _ => "unknown",
    }
}
