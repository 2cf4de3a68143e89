//! Administration over TLS with an administrator certificate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};
use xtreem_net::PrincipalKind;
use xtreem_proto::fabric as pb;
use xtreem_proto::fabric::fabric_client::FabricClient;
use xtreem_proto::fabric::node_admin_server::NodeAdmin;
use xtreem_util::limits::{PROBE_COUNT_MAX, PROBE_PAYLOAD_BYTES_MAX};
use xtreem_util::names::NodeName;

use super::{caller, role_to_pb, status};
use crate::daemon::NodeShared;

pub struct NodeAdminService {
    pub shared: Arc<NodeShared>,
}

#[tonic::async_trait]
impl NodeAdmin for NodeAdminService {
    async fn create_join_token(
        &self,
        request: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::CreateJoinTokenResponse>, Status> {
        let result = self.do_create_join_token(request).await;
        self.shared
            .metrics
            .rpc("NodeAdmin/CreateJoinToken", &result);
        result
    }

    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let result = match caller(
            &request,
            &self.shared,
            PrincipalKind::Admin,
            "listing nodes",
        ) {
            Ok(_) => self.shared.node_list().await,
            Err(e) => Err(e),
        };
        self.shared.metrics.rpc("NodeAdmin/ListNodes", &result);
        result.map(Response::new)
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        let result = self.do_remove(request).await;
        self.shared.metrics.rpc("NodeAdmin/RemoveNode", &result);
        result
    }

    async fn probe_node(
        &self,
        request: Request<pb::ProbeNodeRequest>,
    ) -> Result<Response<pb::ProbeNodeResponse>, Status> {
        let result = self.do_probe(request).await;
        self.shared.metrics.rpc("NodeAdmin/ProbeNode", &result);
        result
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let result =
            caller(&request, &self.shared, PrincipalKind::Admin, "node status").map(|_| {
                let identity = self.shared.tls.identity();
                Response::new(pb::StatusResponse {
                    node: self.shared.config.name.to_string(),
                    site: self.shared.site_name().unwrap_or_default(),
                    roles: self
                        .shared
                        .config
                        .roles
                        .iter()
                        .map(|r| role_to_pb(*r))
                        .collect(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    certificate_expires_unix: identity.map(|i| i.not_after_unix).unwrap_or(0),
                    site_authority: self.shared.authority().is_some(),
                })
            });
        self.shared.metrics.rpc("NodeAdmin/Status", &result);
        result
    }
}

impl NodeAdminService {
    fn authority_only(&self, what: &str) -> Status {
        match self.shared.membership() {
            Some(m) => Status::failed_precondition(format!(
                "{what} is done by the site authority {} at {}; this node is {}",
                m.authority, m.authority_endpoint, self.shared.config.name
            )),
            None => Status::failed_precondition(format!("{what} needs a site; this node has none")),
        }
    }

    async fn do_create_join_token(
        &self,
        request: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::CreateJoinTokenResponse>, Status> {
        caller(
            &request,
            &self.shared,
            PrincipalKind::Admin,
            "creating join tokens",
        )?;
        let authority = self
            .shared
            .authority()
            .ok_or_else(|| self.authority_only("creating join tokens"))?;
        let ttl = Duration::from_secs(request.get_ref().ttl_seconds);
        let (token, expires_unix) = authority.create_token(ttl).await.map_err(status)?;
        Ok(Response::new(pb::CreateJoinTokenResponse {
            token: token.to_string(),
            expires_unix,
        }))
    }

    async fn do_remove(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        caller(
            &request,
            &self.shared,
            PrincipalKind::Admin,
            "removing nodes",
        )?;
        let authority = self
            .shared
            .authority()
            .ok_or_else(|| self.authority_only("removing nodes"))?;
        let node: NodeName = request
            .get_ref()
            .node
            .parse()
            .map_err(|e: xtreem_util::names::NameError| Status::invalid_argument(e.to_string()))?;
        let revoked_certificates = authority.remove(node).await.map_err(status)?;
        Ok(Response::new(pb::RemoveNodeResponse {
            revoked_certificates,
        }))
    }

    async fn do_probe(
        &self,
        request: Request<pb::ProbeNodeRequest>,
    ) -> Result<Response<pb::ProbeNodeResponse>, Status> {
        caller(
            &request,
            &self.shared,
            PrincipalKind::Admin,
            "probing nodes",
        )?;
        let req = request.into_inner();
        if req.count == 0 || req.count > PROBE_COUNT_MAX {
            return Err(Status::invalid_argument(format!(
                "count must be 1 to {PROBE_COUNT_MAX}"
            )));
        }
        if req.payload_bytes > PROBE_PAYLOAD_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "payload_bytes must be at most {PROBE_PAYLOAD_BYTES_MAX}"
            )));
        }
        let nodes = self.shared.node_list().await?;
        let target = nodes
            .nodes
            .iter()
            .find(|n| n.name == req.node)
            .ok_or_else(|| {
                Status::not_found(format!("no node named {:?} in this site", req.node))
            })?;
        let channel = self.shared.peer_channel(&target.rpc_endpoint)?;
        let mut client = FabricClient::new(channel);
        let payload = vec![0x5a; req.payload_bytes as usize];
        // One unmeasured call to set up TCP, TLS and HTTP/2.
        client
            .ping(pb::PingRequest {
                payload: payload.clone(),
            })
            .await?;
        let mut round_trip_ns = Vec::with_capacity(req.count as usize);
        for _ in 0..req.count {
            let start = Instant::now();
            client
                .ping(pb::PingRequest {
                    payload: payload.clone(),
                })
                .await?;
            round_trip_ns.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        Ok(Response::new(pb::ProbeNodeResponse { round_trip_ns }))
    }
}
