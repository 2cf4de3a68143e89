//! Node-to-node calls: only enrolled, unrevoked nodes of the site.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use xtreem_net::PrincipalKind;
use xtreem_proto::fabric as pb;
use xtreem_proto::fabric::fabric_server::Fabric;
use xtreem_util::names::NodeName;

use super::{caller, endpoint_arg, status};
use crate::daemon::NodeShared;

pub struct FabricService {
    pub shared: Arc<NodeShared>,
}

fn not_authority() -> Status {
    Status::failed_precondition(
        "this node does not hold the site CA; send this to the site authority",
    )
}

#[tonic::async_trait]
impl Fabric for FabricService {
    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let result = self.do_heartbeat(request).await;
        self.shared.metrics.rpc("Fabric/Heartbeat", &result);
        result
    }

    async fn renew_certificate(
        &self,
        request: Request<pb::RenewCertificateRequest>,
    ) -> Result<Response<pb::RenewCertificateResponse>, Status> {
        let result = self.do_renew(request).await;
        self.shared.metrics.rpc("Fabric/RenewCertificate", &result);
        result
    }

    async fn ping(
        &self,
        request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        let result = caller(&request, &self.shared, PrincipalKind::Node, "Ping").map(|_| {
            Response::new(pb::PingResponse {
                payload: request.into_inner().payload,
                node: self.shared.config.name.to_string(),
            })
        });
        self.shared.metrics.rpc("Fabric/Ping", &result);
        result
    }

    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let result = match caller(&request, &self.shared, PrincipalKind::Node, "ListNodes") {
            Ok(_) => self.shared.local_node_list(),
            Err(e) => Err(e),
        };
        self.shared.metrics.rpc("Fabric/ListNodes", &result);
        result.map(Response::new)
    }
}

impl FabricService {
    async fn do_heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let peer = caller(&request, &self.shared, PrincipalKind::Node, "Heartbeat")?;
        let authority = self.shared.authority().ok_or_else(not_authority)?;
        let (version, serials) = authority.heartbeat(&peer).map_err(status)?;
        if let Some(member) = &request.get_ref().gossip {
            let record = gossip_record(member, &peer.name)?;
            authority
                .record_gossip_member(record)
                .await
                .map_err(status)?;
        }
        let gossip = authority.gossip_state().await.map_err(status)?;
        let send_gossip = request.get_ref().gossip_version != gossip.version;
        // Nothing to send if the node already has this version.
        let revoked_serials = if request.get_ref().revocations_version == version {
            Vec::new()
        } else {
            serials
        };
        let trust_version = self.shared.trust.version();
        let trust_document = if request.get_ref().trust_version == trust_version {
            String::new()
        } else {
            self.shared.trust_json()
        };
        Ok(Response::new(pb::HeartbeatResponse {
            revocations_version: version,
            revoked_serials,
            trust_version,
            trust_document,
            gossip_version: gossip.version,
            gossip_roster: if send_gossip {
                gossip
                    .roster
                    .iter()
                    .map(|m| pb::GossipMember {
                        node: m.node.clone(),
                        endpoint: m.endpoint.clone(),
                        incarnation: m.incarnation,
                        public_key: m.public_key.to_vec(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            gossip_key: gossip
                .key
                .filter(|_| send_gossip)
                .map(|(id, key)| pb::GossipKey {
                    id: u32::from(id),
                    key: key.to_vec(),
                }),
            gossip_previous_key: gossip
                .previous_key
                .filter(|_| send_gossip)
                .map(|(id, key)| pb::GossipKey {
                    id: u32::from(id),
                    key: key.to_vec(),
                }),
        }))
    }

    async fn do_renew(
        &self,
        request: Request<pb::RenewCertificateRequest>,
    ) -> Result<Response<pb::RenewCertificateResponse>, Status> {
        let peer = caller(
            &request,
            &self.shared,
            PrincipalKind::Node,
            "RenewCertificate",
        )?;
        let authority = self.shared.authority().ok_or_else(not_authority)?;
        let node: NodeName = peer
            .name
            .parse()
            .map_err(|e: xtreem_util::names::NameError| Status::invalid_argument(e.to_string()))?;
        let endpoint = match authority
            .list_nodes()
            .map_err(status)?
            .into_iter()
            .find(|n| n.record.name == node)
        {
            Some(view) => endpoint_arg(&view.record.endpoint)?,
            None => {
                return Err(Status::not_found(format!(
                    "no node named {node} in this site"
                )));
            }
        };
        let issued = authority
            .renew(&node, endpoint, &request.get_ref().csr_der)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RenewCertificateResponse {
            certificate_pem: issued.pem,
        }))
    }
}

/// Checks a node's gossip registration: only its own, well-formed.
fn gossip_record(
    member: &pb::GossipMember,
    peer: &str,
) -> Result<xtreem_security::site::GossipMemberRecord, Status> {
    if member.node != peer {
        return Err(Status::permission_denied(format!(
            "{peer} may register only its own gossip identity, not {}",
            member.node
        )));
    }
    let public_key: [u8; 32] = member.public_key.as_slice().try_into().map_err(|_| {
        Status::invalid_argument("gossip.public_key: expected a 32-byte Ed25519 public key")
    })?;
    member
        .endpoint
        .parse::<std::net::SocketAddr>()
        .map_err(|_| Status::invalid_argument("gossip.endpoint: expected IP:PORT"))?;
    if member.incarnation > u32::from(u16::MAX) {
        return Err(Status::invalid_argument(
            "gossip.incarnation: expected at most 65535",
        ));
    }
    Ok(xtreem_security::site::GossipMemberRecord {
        node: member.node.clone(),
        endpoint: member.endpoint.clone(),
        incarnation: member.incarnation,
        public_key,
    })
}
