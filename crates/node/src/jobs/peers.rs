//! Connections to the other nodes of the site, kept open: a TLS handshake
//! per call would cost more than the call.

use std::collections::HashMap;
use std::sync::Mutex;

use tonic::Status;
use tonic::transport::Channel;
use xtreem_directory::NodeRecord;
use xtreem_proto::jobs::job_exec_client::JobExecClient;
use xtreem_proto::jobs::jobs_client::JobsClient;
use xtreem_proto::vo::vo_client::VoClient;

use crate::daemon::NodeShared;

#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    fn channel(&self, shared: &NodeShared, endpoint: &str) -> Result<Channel, Status> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = channels.get(endpoint) {
            return Ok(c.clone());
        }
        let channel = shared.peer_channel(endpoint)?;
        channels.insert(endpoint.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Forgets the connection to `endpoint` after a failure, so the next
    /// call opens a fresh one.
    pub fn forget(&self, endpoint: &str) {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(endpoint);
    }

    pub fn exec(
        &self,
        shared: &NodeShared,
        endpoint: &str,
    ) -> Result<JobExecClient<Channel>, Status> {
        Ok(JobExecClient::new(self.channel(shared, endpoint)?)
            .max_decoding_message_size(xtreem_util::limits::RPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(xtreem_util::limits::RPC_MESSAGE_BYTES_MAX))
    }

    pub fn vo(&self, shared: &NodeShared, endpoint: &str) -> Result<VoClient<Channel>, Status> {
        Ok(VoClient::new(self.channel(shared, endpoint)?))
    }

    pub fn jobs(&self, shared: &NodeShared, endpoint: &str) -> Result<JobsClient<Channel>, Status> {
        Ok(JobsClient::new(self.channel(shared, endpoint)?)
            .max_decoding_message_size(xtreem_util::limits::RPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(xtreem_util::limits::RPC_MESSAGE_BYTES_MAX))
    }
}

/// A node of this site as the directory knows it.
pub fn node(shared: &NodeShared, name: &str) -> Option<NodeRecord> {
    shared.directory.view.read().ok()?.get(name).cloned()
}

/// The RPC endpoint of node `name` of this site.
pub fn endpoint_of(shared: &NodeShared, name: &str) -> Result<String, Status> {
    if name == shared.config.name.as_str() {
        return Ok(shared.rpc_endpoint.clone());
    }
    node(shared, name)
        .map(|r| r.descriptor.rpc_endpoint.clone())
        .ok_or_else(|| {
            Status::unavailable(format!("node {name} is not known to this node's directory"))
        })
}

/// Whether the directory holds `name` as alive (this node always is).
pub fn is_alive(shared: &NodeShared, name: &str) -> bool {
    name == shared.config.name.as_str() || node(shared, name).is_some_and(|r| r.alive)
}

/// Whether the directory knows `name` and holds it as dead. A node it does
/// not know yet (a view still forming after a restart) is not dead.
pub fn is_known_dead(shared: &NodeShared, name: &str) -> bool {
    name != shared.config.name.as_str() && node(shared, name).is_some_and(|r| !r.alive)
}

/// Names and endpoints of the alive nodes of this site, this node first.
pub fn alive_nodes(shared: &NodeShared) -> Vec<(String, String)> {
    let me = shared.config.name.to_string();
    let mut nodes = vec![(me.clone(), shared.rpc_endpoint.clone())];
    if let Ok(view) = shared.directory.view.read() {
        let site = shared.site_name().unwrap_or_default();
        nodes.extend(
            view.iter()
                .filter(|r| r.alive && r.descriptor.node != me && r.descriptor.site == site)
                .map(|r| (r.descriptor.node.clone(), r.descriptor.rpc_endpoint.clone())),
        );
    }
    nodes
}
