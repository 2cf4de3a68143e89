//! Enrollment: open to anyone who reaches the RPC port over TLS; the join
//! token is the credential.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use xtreem_proto::fabric as pb;
use xtreem_proto::fabric::enrollment_server::Enrollment;
use xtreem_util::names::NodeName;

use super::{endpoint_arg, role_from_pb, status};
use crate::daemon::NodeShared;

pub struct EnrollmentService {
    pub shared: Arc<NodeShared>,
}

#[tonic::async_trait]
impl Enrollment for EnrollmentService {
    async fn get_site_info(
        &self,
        _request: Request<pb::GetSiteInfoRequest>,
    ) -> Result<Response<pb::GetSiteInfoResponse>, Status> {
        let result = self.site_info();
        self.shared.metrics.rpc("Enrollment/GetSiteInfo", &result);
        result
    }

    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let result = self.do_enroll(request.into_inner()).await;
        self.shared.metrics.rpc("Enrollment/Enroll", &result);
        if let Err(e) = &result {
            tracing::warn!(error = %e.message(), "enrollment refused");
        }
        result
    }
}

impl EnrollmentService {
    fn site_info(&self) -> Result<Response<pb::GetSiteInfoResponse>, Status> {
        let authority = self
            .shared
            .authority()
            .ok_or_else(|| self.not_authority())?;
        Ok(Response::new(pb::GetSiteInfoResponse {
            site: authority.site().to_string(),
            ca_certificate_pem: authority.ca_pem().to_owned(),
            authority: self.shared.config.name.to_string(),
        }))
    }

    fn not_authority(&self) -> Status {
        match self.shared.membership() {
            Some(m) => Status::failed_precondition(format!(
                "this node does not hold the site CA; enroll at {} ({})",
                m.authority, m.authority_endpoint
            )),
            None => Status::failed_precondition("this node does not hold a site CA"),
        }
    }

    async fn do_enroll(
        &self,
        req: pb::EnrollRequest,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let authority = self
            .shared
            .authority()
            .ok_or_else(|| self.not_authority())?;
        let node: NodeName = req
            .node
            .parse()
            .map_err(|e: xtreem_util::names::NameError| Status::invalid_argument(e.to_string()))?;
        let mut roles = req
            .roles
            .iter()
            .map(|r| role_from_pb(*r))
            .collect::<Result<Vec<_>, _>>()?;
        roles.sort();
        roles.dedup();
        if roles.is_empty() {
            return Err(Status::invalid_argument("a node needs at least one role"));
        }
        let endpoint = endpoint_arg(&req.rpc_endpoint)?;
        let issued = authority
            .enroll(
                &req.token_id,
                &req.token_secret,
                node,
                roles,
                endpoint,
                &req.csr_der,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::EnrollResponse {
            certificate_pem: issued.pem,
            ca_certificate_pem: authority.ca_pem().to_owned(),
            site: authority.site().to_string(),
        }))
    }
}
