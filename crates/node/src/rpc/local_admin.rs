//! Local administration over the node's Unix socket. The kernel tells us who
//! is calling (SO_PEERCRED); only root or the daemon's own user may. This is
//! how a site is bootstrapped: before `xos site init` there is no CA, so
//! there can be no TLS.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};
use xtreem_proto::fabric as pb;
use xtreem_proto::fabric::local_admin_server::LocalAdmin;
use xtreem_util::names::SiteName;
use xtreem_util::roles::Role;

use super::status;
use crate::daemon::NodeShared;

/// Lifetime of an administrator certificate.
const ADMIN_CERT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

pub struct LocalAdminService {
    pub shared: Arc<NodeShared>,
}

fn require_local_root<T>(request: &Request<T>) -> Result<(), Status> {
    let uid = request
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|info| info.peer_cred)
        .map(|cred| cred.uid());
    let own = nix::unistd::geteuid().as_raw();
    match uid {
        Some(uid) if uid == 0 || uid == own => Ok(()),
        Some(uid) => Err(Status::permission_denied(format!(
            "uid {uid} may not administer this node locally; run as root or as the user xosd runs as"
        ))),
        None => Err(Status::permission_denied(
            "cannot tell who is calling on the admin socket",
        )),
    }
}

#[tonic::async_trait]
impl LocalAdmin for LocalAdminService {
    async fn init_site(
        &self,
        request: Request<pb::InitSiteRequest>,
    ) -> Result<Response<pb::InitSiteResponse>, Status> {
        let result = self.init(request).await;
        self.shared.metrics.rpc("LocalAdmin/InitSite", &result);
        result
    }

    async fn issue_admin_certificate(
        &self,
        request: Request<pb::IssueAdminCertificateRequest>,
    ) -> Result<Response<pb::IssueAdminCertificateResponse>, Status> {
        let result = self.issue_admin(request).await;
        self.shared
            .metrics
            .rpc("LocalAdmin/IssueAdminCertificate", &result);
        result
    }
}

impl LocalAdminService {
    async fn init(
        &self,
        request: Request<pb::InitSiteRequest>,
    ) -> Result<Response<pb::InitSiteResponse>, Status> {
        require_local_root(&request)?;
        let site: SiteName = request
            .get_ref()
            .site
            .parse()
            .map_err(|e: xtreem_util::names::NameError| Status::invalid_argument(e.to_string()))?;
        if !self.shared.config.has_role(Role::Core) {
            return Err(Status::failed_precondition(
                "a site is created on a core node, and this node does not have the core role (see `roles` in its config)",
            ));
        }
        if let Some(existing) = self.shared.site_name() {
            return Err(Status::already_exists(format!(
                "this node already belongs to site {existing}"
            )));
        }
        let authority = self.shared.init_site(site).await.map_err(status)?;
        Ok(Response::new(pb::InitSiteResponse {
            site: authority.site().to_string(),
            ca_certificate_pem: authority.ca_pem().to_owned(),
            rpc_endpoint: self.shared.rpc_endpoint.clone(),
            node: self.shared.config.name.to_string(),
        }))
    }

    async fn issue_admin(
        &self,
        request: Request<pb::IssueAdminCertificateRequest>,
    ) -> Result<Response<pb::IssueAdminCertificateResponse>, Status> {
        require_local_root(&request)?;
        let authority = self.shared.authority().ok_or_else(|| {
            Status::failed_precondition("administrator certificates are issued by the node that holds the site CA; this node does not")
        })?;
        let req = request.into_inner();
        let admin: xtreem_util::names::NodeName =
            req.admin_name
                .parse()
                .map_err(|e: xtreem_util::names::NameError| {
                    Status::invalid_argument(format!("administrator name: {e}"))
                })?;
        let issued = authority
            .issue_admin(admin.as_str(), &req.csr_der, ADMIN_CERT_LIFETIME)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::IssueAdminCertificateResponse {
            certificate_pem: issued.pem,
            ca_certificate_pem: authority.ca_pem().to_owned(),
            site: authority.site().to_string(),
            rpc_endpoint: self.shared.rpc_endpoint.clone(),
        }))
    }
}
