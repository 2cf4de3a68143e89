//! The VO service over gRPC. Callers are a site administrator (certificate)
//! or a VO user (`authorization: Bearer <credential>`, verified offline
//! against this node's trust document). VO administration runs on the site
//! authority; `whoami`, policy tests, accounts and audit answer on any node.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use xtreem_audit::{AuditEvent, Decision as AuditDecision};
use xtreem_net::{PrincipalKind, peer_identity};
use xtreem_policy::{
    Action, AuthzRequest, Level, PolicyStore, RequestContext, Resource, UserFacts,
};
use xtreem_proto::vo as pb;
use xtreem_proto::vo::vo_server;
use xtreem_token::{Claims, DelegationRequest};
use xtreem_util::time::unix_now;
use xtreem_vo::{Actor, MemberState, VoCommand, VoState};

use crate::daemon::NodeShared;
use crate::vo::authority::{LOGIN_TTL_DEFAULT, VoAuthority};
use crate::vo::trust::PolicyEntry;

pub struct VoService {
    pub shared: Arc<NodeShared>,
}

/// Who is calling.
enum Caller {
    SiteAdmin(String),
    User { claims: Box<Claims>, vo: String },
}

impl Caller {
    fn actor(&self) -> Actor {
        match self {
            Caller::SiteAdmin(n) => Actor::SiteAdmin(n.clone()),
            Caller::User { claims, .. } => Actor::User(claims.sub.clone()),
        }
    }

    fn name(&self) -> String {
        self.actor().to_string()
    }
}

/// The bearer credential of a request, if it carries one.
pub(crate) fn bearer<T>(request: &Request<T>) -> Option<String> {
    let value = request.metadata().get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

/// The VO a user credential speaks for, after checking that every group it
/// claims belongs to the VO of its issuer.
pub(crate) fn credential_vo(shared: &NodeShared, claims: &Claims) -> Result<String, Status> {
    let trusted = shared.trust.current();
    let vo = trusted.vo_of_issuer(&claims.iss).ok_or_else(|| {
        Status::unauthenticated(format!("issuer {} is not trusted here", claims.iss))
    })?;
    for group in &claims.groups {
        if !(group == &format!("/{vo}") || group.starts_with(&format!("/{vo}/"))) {
            return Err(Status::permission_denied(format!(
                "the credential of VO {vo} claims group {group} of another VO; refused"
            )));
        }
    }
    Ok(vo.to_owned())
}

impl VoService {
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        if let Some(peer) = peer_identity(request)
            && peer.kind == PrincipalKind::Admin
        {
            let admin =
                crate::rpc::caller(request, &self.shared, PrincipalKind::Admin, "this request")?;
            return Ok(Caller::SiteAdmin(admin.name));
        }
        let Some(token) = bearer(request) else {
            return Err(Status::unauthenticated(
                "this request needs a VO credential (run `xos login`) or a site administrator certificate",
            ));
        };
        let trusted = self.shared.trust.current();
        let claims = trusted
            .verifier
            .verify(&token)
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        let vo = credential_vo(&self.shared, &claims)?;
        Ok(Caller::User {
            claims: Box::new(claims),
            vo,
        })
    }

    fn authority(&self) -> Result<Arc<VoAuthority>, Status> {
        self.shared
            .vo_authority()
            .ok_or_else(|| match self.shared.membership() {
                Some(m) => Status::failed_precondition(format!(
                    "VOs are administered at the site authority {} ({}); use --endpoint {}",
                    m.authority, m.authority_endpoint, m.authority_endpoint
                )),
                None => Status::failed_precondition("this node belongs to no site yet"),
            })
    }

    /// A user acting on VO `vo` must hold a credential of that VO.
    fn same_vo(caller: &Caller, vo: &str) -> Result<(), Status> {
        match caller {
            Caller::User { vo: own, .. } if own != vo => Err(Status::permission_denied(format!(
                "your credential is for VO {own}, not VO {vo}; run `xos login --vo {vo}`"
            ))),
            _ => Ok(()),
        }
    }

    fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        result: &Result<impl Sized, Status>,
        detail: serde_json::Value,
    ) {
        let decision = if result.is_ok() {
            AuditDecision::Allow
        } else {
            AuditDecision::Deny
        };
        let detail = match result {
            Err(e) => serde_json::json!({ "refused": e.message(), "detail": detail }),
            Ok(_) => detail,
        };
        self.shared
            .audit(AuditEvent::new(actor, action, target, decision).with_detail(detail));
    }

    /// Runs a VO command for the caller and refreshes trust and audit.
    async fn vo_command(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        command: VoCommand,
    ) -> Result<(), Status> {
        let result = match self.authority() {
            Ok(a) => a.run(command).await,
            Err(e) => Err(e),
        };
        self.audit(
            &caller.name(),
            action,
            target,
            &result,
            serde_json::Value::Null,
        );
        if result.is_ok() {
            self.shared.refresh_trust();
        }
        result
    }

    fn vo_info(&self, vo: &xtreem_vo::Vo) -> pb::VoInfo {
        pb::VoInfo {
            name: vo.name.clone(),
            issuer: vo.issuer.clone(),
            state: match vo.state {
                VoState::Active => "active".into(),
                VoState::Suspended => "suspended".into(),
            },
            groups: vo.groups.iter().cloned().collect(),
            keys: vo
                .keys
                .iter()
                .map(|k| pb::KeyInfo {
                    kid: k.kid.clone(),
                    state: format!("{:?}", k.state).to_lowercase(),
                })
                .collect(),
            created_unix: vo.created_unix,
        }
    }

    fn member_info(&self, vo: &str, user: &str) -> Result<pb::MemberInfo, Status> {
        let m = self.authority()?.member(vo, user)?;
        Ok(member_info(&m))
    }
}

fn member_info(m: &xtreem_vo::Member) -> pb::MemberInfo {
    pb::MemberInfo {
        vo: m.vo.clone(),
        user: m.user.clone(),
        state: match m.state {
            MemberState::Requested => "requested",
            MemberState::Active => "active",
            MemberState::Rejected => "rejected",
            MemberState::Removed => "removed",
        }
        .into(),
        roles: m.role_claims(),
    }
}

fn level_of(level: &Option<pb::PolicyLevel>, caller: &Caller, site: &str) -> Result<Level, Status> {
    let level = level
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("name a policy level: vo, site or user"))?;
    match level.level.as_str() {
        "vo" => {
            let name = match (level.name.is_empty(), caller) {
                (false, _) => level.name.clone(),
                (true, Caller::User { vo, .. }) => vo.clone(),
                (true, Caller::SiteAdmin(_)) => {
                    return Err(Status::invalid_argument("name the VO"));
                }
            };
            Ok(Level::Vo(name))
        }
        "site" => Ok(Level::Site(if level.name.is_empty() {
            site.to_owned()
        } else {
            level.name.clone()
        })),
        "user" => {
            let name = match (level.name.is_empty(), caller) {
                (false, _) => level.name.clone(),
                (true, Caller::User { claims, .. }) => claims.sub.clone(),
                (true, Caller::SiteAdmin(_)) => {
                    return Err(Status::invalid_argument("name the user"));
                }
            };
            Ok(Level::User(name))
        }
        other => Err(Status::invalid_argument(format!(
            "unknown policy level {other:?}: use vo, site or user"
        ))),
    }
}

fn action_from(name: &str) -> Result<Action, Status> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
        let all: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        Status::invalid_argument(format!(
            "unknown action {name:?}: one of {}",
            all.join(", ")
        ))
    })
}

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl vo_server::Vo for VoService {
    async fn login(&self, request: Request<pb::LoginRequest>) -> R<pb::LoginResponse> {
        let req = request.into_inner();
        let ttl = if req.ttl_seconds == 0 {
            LOGIN_TTL_DEFAULT
        } else {
            Duration::from_secs(req.ttl_seconds)
        };
        let result = match self.authority() {
            Ok(a) => a.login(&req.user, &req.password, &req.vo, ttl).await,
            Err(e) => Err(e),
        };
        let vo = result
            .as_ref()
            .ok()
            .and_then(|(_, c)| c.vo().map(str::to_owned))
            .unwrap_or(req.vo.clone());
        self.audit(
            &req.user,
            "login",
            &format!("vo {vo}"),
            &result,
            serde_json::Value::Null,
        );
        self.shared.metrics.rpc("Vo/Login", &result);
        let (token, claims) = result?;
        Ok(Response::new(pb::LoginResponse {
            token,
            vo,
            expires_unix: claims.exp,
        }))
    }

    async fn whoami(&self, request: Request<pb::WhoamiRequest>) -> R<pb::WhoamiResponse> {
        let caller = self.caller(&request)?;
        let Caller::User { claims, vo } = caller else {
            return Err(Status::invalid_argument(
                "whoami shows a VO credential; run `xos login` first",
            ));
        };
        let mut response = pb::WhoamiResponse {
            subject: claims.sub.clone(),
            issuer: claims.iss.clone(),
            vo: vo.clone(),
            groups: claims.groups.clone(),
            roles: claims.roles.clone(),
            scope: claims.scope.clone(),
            expires_unix: claims.exp,
            actors: claims.act.as_ref().map(|a| a.chain()).unwrap_or_default(),
            node: self.shared.config.name.to_string(),
            uid: -1,
            gid: -1,
            ..Default::default()
        };
        match crate::access::local_account(&self.shared, &claims, &vo, 0) {
            Ok(Some(m)) => {
                response.uid = i64::from(m.uid);
                response.gid = i64::from(m.gid);
                response.local_user = m.user_name;
            }
            Ok(None) => {}
            Err(note) => response.account_note = note,
        }
        Ok(Response::new(response))
    }

    async fn delegate(&self, request: Request<pb::DelegateRequest>) -> R<pb::DelegateResponse> {
        let caller = self.caller(&request)?;
        let Caller::User { claims, vo } = &caller else {
            return Err(Status::invalid_argument(
                "delegation exchanges a VO credential; run `xos login` first",
            ));
        };
        let req = request.into_inner();
        let ask = DelegationRequest {
            scopes: req.scopes.clone(),
            ttl_secs: req.ttl_seconds,
            audience: (!req.audience.is_empty()).then(|| req.audience.clone()),
            actor: if req.actor.is_empty() {
                claims.sub.clone()
            } else {
                req.actor.clone()
            },
        };
        let result = self.authority().and_then(|a| a.delegate(claims, vo, &ask));
        self.audit(
            &caller.name(),
            "delegate",
            &format!("vo {vo}"),
            &result,
            serde_json::json!({ "scopes": req.scopes, "ttl_seconds": req.ttl_seconds, "audience": req.audience, "actor": ask.actor }),
        );
        let (token, child) = result?;
        Ok(Response::new(pb::DelegateResponse {
            token,
            expires_unix: child.exp,
        }))
    }

    async fn add_user(&self, request: Request<pb::AddUserRequest>) -> R<pb::Empty> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let result = match &caller {
            Caller::SiteAdmin(_) => match self.authority() {
                Ok(a) => a.add_user(&req.name, &req.password).await,
                Err(e) => Err(e),
            },
            Caller::User { .. } => Err(Status::permission_denied(
                "only a site administrator adds users",
            )),
        };
        self.audit(
            &caller.name(),
            "user.add",
            &req.name,
            &result,
            serde_json::Value::Null,
        );
        result.map(|_| Response::new(pb::Empty {}))
    }

    async fn create_vo(&self, request: Request<pb::CreateVoRequest>) -> R<pb::VoInfo> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let first_admin = (!req.first_admin.is_empty()).then(|| req.first_admin.clone());
        let result = match self.authority() {
            Ok(a) => a.create_vo(&req.name, first_admin, caller.actor()).await,
            Err(e) => Err(e),
        };
        self.audit(
            &caller.name(),
            "vo.create",
            &req.name,
            &result,
            serde_json::json!({ "first_admin": req.first_admin }),
        );
        self.shared.refresh_trust();
        Ok(Response::new(self.vo_info(&result?)))
    }

    async fn delete_vo(&self, request: Request<pb::VoName>) -> R<pb::Empty> {
        let caller = self.caller(&request)?;
        let name = request.into_inner().name;
        Self::same_vo(&caller, &name)?;
        self.vo_command(
            &caller,
            "vo.delete",
            &name,
            VoCommand::DeleteVo {
                name: name.clone(),
                by: caller.actor(),
            },
        )
        .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn set_vo_state(&self, request: Request<pb::SetVoStateRequest>) -> R<pb::VoInfo> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Self::same_vo(&caller, &req.name)?;
        let state = if req.suspended {
            VoState::Suspended
        } else {
            VoState::Active
        };
        let action = if req.suspended {
            "vo.suspend"
        } else {
            "vo.resume"
        };
        self.vo_command(
            &caller,
            action,
            &req.name,
            VoCommand::SetState {
                name: req.name.clone(),
                state,
                by: caller.actor(),
            },
        )
        .await?;
        Ok(Response::new(
            self.vo_info(&self.authority()?.vo(&req.name)?),
        ))
    }

    async fn list_vos(&self, request: Request<pb::Empty>) -> R<pb::ListVosResponse> {
        let caller = self.caller(&request)?;
        let vos = self.authority()?.vos()?;
        let visible = vos
            .iter()
            .filter(|v| match &caller {
                Caller::SiteAdmin(_) => true,
                Caller::User { vo, .. } => &v.name == vo,
            })
            .map(|v| self.vo_info(v))
            .collect();
        Ok(Response::new(pb::ListVosResponse { vos: visible }))
    }

    async fn show_vo(&self, request: Request<pb::VoName>) -> R<pb::VoDetail> {
        let caller = self.caller(&request)?;
        let name = request.into_inner().name;
        Self::same_vo(&caller, &name)?;
        let authority = self.authority()?;
        let vo = authority.vo(&name)?;
        let members = authority.members(&name)?.iter().map(member_info).collect();
        Ok(Response::new(pb::VoDetail {
            vo: Some(self.vo_info(&vo)),
            members,
        }))
    }

    async fn create_group(&self, request: Request<pb::CreateGroupRequest>) -> R<pb::VoInfo> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Self::same_vo(&caller, &req.vo)?;
        self.vo_command(
            &caller,
            "vo.group.create",
            &req.path,
            VoCommand::CreateGroup {
                vo: req.vo.clone(),
                path: req.path.clone(),
                by: caller.actor(),
            },
        )
        .await?;
        Ok(Response::new(self.vo_info(&self.authority()?.vo(&req.vo)?)))
    }

    async fn request_join(&self, request: Request<pb::RequestJoinRequest>) -> R<pb::MemberInfo> {
        let req = request.into_inner();
        let authority = self.authority()?;
        let result = match authority.authenticate(&req.user, &req.password).await {
            Ok(()) => {
                authority
                    .run(VoCommand::RequestJoin {
                        vo: req.vo.clone(),
                        user: req.user.clone(),
                        now_unix: unix_now(),
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        self.audit(
            &req.user,
            "vo.join.request",
            &req.vo,
            &result,
            serde_json::Value::Null,
        );
        result?;
        Ok(Response::new(self.member_info(&req.vo, &req.user)?))
    }

    async fn decide(&self, request: Request<pb::DecideRequest>) -> R<pb::MemberInfo> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Self::same_vo(&caller, &req.vo)?;
        let action = if req.approve {
            "vo.join.approve"
        } else {
            "vo.join.reject"
        };
        self.vo_command(
            &caller,
            action,
            &format!("{} in {}", req.user, req.vo),
            VoCommand::Decide {
                vo: req.vo.clone(),
                user: req.user.clone(),
                approve: req.approve,
                by: caller.actor(),
                now_unix: unix_now(),
            },
        )
        .await?;
        Ok(Response::new(self.member_info(&req.vo, &req.user)?))
    }

    async fn remove_member(&self, request: Request<pb::MemberName>) -> R<pb::MemberInfo> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Self::same_vo(&caller, &req.vo)?;
        self.vo_command(
            &caller,
            "vo.member.remove",
            &format!("{} in {}", req.user, req.vo),
            VoCommand::RemoveMember {
                vo: req.vo.clone(),
                user: req.user.clone(),
                by: caller.actor(),
            },
        )
        .await?;
        Ok(Response::new(self.member_info(&req.vo, &req.user)?))
    }

    async fn grant_role(&self, request: Request<pb::RoleRequest>) -> R<pb::MemberInfo> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Self::same_vo(&caller, &req.vo)?;
        self.vo_command(
            &caller,
            "vo.role.grant",
            &format!("{} {}:{}", req.user, req.group, req.role),
            VoCommand::GrantRole {
                vo: req.vo.clone(),
                user: req.user.clone(),
                group: req.group.clone(),
                role: req.role.clone(),
                by: caller.actor(),
            },
        )
        .await?;
        Ok(Response::new(self.member_info(&req.vo, &req.user)?))
    }

    async fn revoke_role(&self, request: Request<pb::RoleRequest>) -> R<pb::MemberInfo> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Self::same_vo(&caller, &req.vo)?;
        self.vo_command(
            &caller,
            "vo.role.revoke",
            &format!("{} {}:{}", req.user, req.group, req.role),
            VoCommand::RevokeRole {
                vo: req.vo.clone(),
                user: req.user.clone(),
                group: req.group.clone(),
                role: req.role.clone(),
                by: caller.actor(),
            },
        )
        .await?;
        Ok(Response::new(self.member_info(&req.vo, &req.user)?))
    }

    async fn rotate_key(&self, request: Request<pb::RotateKeyRequest>) -> R<pb::VoInfo> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Self::same_vo(&caller, &req.vo)?;
        let result = match self.authority() {
            Ok(a) => a.rotate_key(&req.vo, req.activate, caller.actor()).await,
            Err(e) => Err(e),
        };
        self.audit(
            &caller.name(),
            if req.activate {
                "vo.key.activate"
            } else {
                "vo.key.publish"
            },
            &req.vo,
            &result,
            serde_json::Value::Null,
        );
        self.shared.refresh_trust();
        Ok(Response::new(self.vo_info(&result?)))
    }

    async fn withdraw_key(&self, request: Request<pb::WithdrawKeyRequest>) -> R<pb::VoInfo> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        Self::same_vo(&caller, &req.vo)?;
        self.vo_command(
            &caller,
            "vo.key.withdraw",
            &req.kid,
            VoCommand::WithdrawKey {
                vo: req.vo.clone(),
                kid: req.kid.clone(),
                by: caller.actor(),
            },
        )
        .await?;
        Ok(Response::new(self.vo_info(&self.authority()?.vo(&req.vo)?)))
    }

    async fn serve_vo(&self, request: Request<pb::ServeVoRequest>) -> R<pb::Empty> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let result = match &caller {
            Caller::SiteAdmin(_) => {
                self.shared
                    .serve_vo(&req.vo, req.nodes.clone(), req.max_cores, req.stop)
                    .await
            }
            Caller::User { .. } => Err(Status::permission_denied(
                "only a site administrator decides which VOs the site serves",
            )),
        };
        self.audit(
            &caller.name(),
            if req.stop {
                "site.serve.stop"
            } else {
                "site.serve"
            },
            &req.vo,
            &result,
            serde_json::json!({ "nodes": req.nodes, "max_cores": req.max_cores }),
        );
        result.map(|_| Response::new(pb::Empty {}))
    }

    async fn site_bundle(&self, request: Request<pb::Empty>) -> R<pb::SiteBundleResponse> {
        match self.caller(&request)? {
            Caller::SiteAdmin(_) => Ok(Response::new(pb::SiteBundleResponse {
                bundle: self.shared.site_bundle()?,
            })),
            Caller::User { .. } => Err(Status::permission_denied(
                "only a site administrator exports the site bundle",
            )),
        }
    }

    async fn trust_site(&self, request: Request<pb::TrustSiteRequest>) -> R<pb::Empty> {
        let caller = self.caller(&request)?;
        let bundle = request.into_inner().bundle;
        let result = match &caller {
            Caller::SiteAdmin(_) => self.shared.trust_site(&bundle).await,
            Caller::User { .. } => Err(Status::permission_denied(
                "only a site administrator decides which sites to trust",
            )),
        };
        let site = result.clone().unwrap_or_default();
        self.audit(
            &caller.name(),
            "site.trust",
            &site,
            &result,
            serde_json::Value::Null,
        );
        result.map(|_| Response::new(pb::Empty {}))
    }

    async fn set_policy(&self, request: Request<pb::SetPolicyRequest>) -> R<pb::PolicyText> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let site = self.shared.site_name().unwrap_or_default();
        let level = level_of(&req.level, &caller, &site)?;
        let result = self.set_policy_checked(&caller, &level, &req.text).await;
        self.audit(
            &caller.name(),
            "policy.set",
            &format!("{} {}", level.kind(), level.name()),
            &result,
            serde_json::json!({ "text": req.text }),
        );
        result?;
        Ok(Response::new(pb::PolicyText {
            level: req.level,
            text: req.text,
        }))
    }

    async fn show_policy(&self, request: Request<pb::PolicyLevel>) -> R<pb::PolicyText> {
        let caller = self.caller(&request)?;
        let wanted = Some(request.into_inner());
        let site = self.shared.site_name().unwrap_or_default();
        let level = level_of(&wanted, &caller, &site)?;
        let trusted = self.shared.trust.current();
        let text = trusted.policy.show(&level).unwrap_or("").to_owned();
        Ok(Response::new(pb::PolicyText {
            level: wanted,
            text,
        }))
    }

    async fn test_policy(
        &self,
        request: Request<pb::TestPolicyRequest>,
    ) -> R<pb::TestPolicyResponse> {
        let caller = self.caller(&request)?;
        let req = request.into_inner();
        let principal = match &caller {
            Caller::SiteAdmin(_) => UserFacts {
                subject: req.user.clone(),
                vo: req.vo.clone(),
                groups: if req.groups.is_empty() {
                    vec![format!("/{}", req.vo)]
                } else {
                    req.groups.clone()
                },
                roles: Vec::new(),
                site: self.shared.site_name().unwrap_or_default(),
            },
            Caller::User { claims, vo } => crate::access::user_facts(&self.shared, claims, vo),
        };
        let action = action_from(&req.action)?;
        let resource = if req.node.is_empty() || req.node == self.shared.config.name.as_str() {
            crate::access::this_node(&self.shared)
        } else {
            Resource::Node {
                name: req.node.clone(),
                site: self.shared.site_name().unwrap_or_default(),
                tags: Vec::new(),
            }
        };
        let decision = self.shared.trust.current().policy.authorize(&AuthzRequest {
            principal,
            action,
            resource,
            context: RequestContext {
                time_unix: i64::try_from(unix_now()).unwrap_or(i64::MAX),
                cores: 0,
            },
        });
        Ok(Response::new(pb::TestPolicyResponse {
            allowed: decision.allowed,
            reasons: decision.reasons,
            errors: decision.errors,
        }))
    }

    async fn list_accounts(&self, request: Request<pb::Empty>) -> R<pb::ListAccountsResponse> {
        crate::rpc::caller(
            &request,
            &self.shared,
            PrincipalKind::Admin,
            "listing local accounts",
        )?;
        let Some(mapper) = self.shared.accounts.as_ref() else {
            return Ok(Response::new(pb::ListAccountsResponse {
                accounts: Vec::new(),
                node: self.shared.config.name.to_string(),
            }));
        };
        let list = mapper.list().map_err(|e| Status::internal(e.to_string()))?;
        let accounts = list
            .into_iter()
            .map(|m| {
                let (leased, used) = match m.state {
                    xtreem_accounts::AccountState::Leased {
                        leased_unix,
                        last_used_unix,
                    } => (leased_unix, last_used_unix),
                    xtreem_accounts::AccountState::Quarantined { released_unix, .. } => {
                        (0, released_unix)
                    }
                };
                pb::AccountInfo {
                    issuer: m.identity.issuer,
                    subject: m.identity.subject,
                    vo: m.identity.vo,
                    uid: i64::from(m.uid),
                    gid: i64::from(m.gid),
                    local_user: m.user_name,
                    leased_unix: leased,
                    last_used_unix: used,
                }
            })
            .collect();
        Ok(Response::new(pb::ListAccountsResponse {
            accounts,
            node: self.shared.config.name.to_string(),
        }))
    }

    async fn audit_verify(&self, request: Request<pb::Empty>) -> R<pb::AuditVerifyResponse> {
        crate::rpc::caller(
            &request,
            &self.shared,
            PrincipalKind::Admin,
            "verifying the audit log",
        )?;
        let path = self.shared.data.audit_log();
        let report = xtreem_audit::verify(&path).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::AuditVerifyResponse {
            records: report.records,
            intact: report.first_broken.is_none(),
            first_broken: report
                .first_broken
                .map(|b| b.to_string())
                .unwrap_or_default(),
            node: self.shared.config.name.to_string(),
            path: path.display().to_string(),
        }))
    }
}

impl VoService {
    async fn set_policy_checked(
        &self,
        caller: &Caller,
        level: &Level,
        text: &str,
    ) -> Result<(), Status> {
        let authority = self.authority()?;
        match (level, caller) {
            (_, Caller::SiteAdmin(_)) => {}
            (Level::Vo(vo), Caller::User { claims, vo: own }) => {
                if vo != own || !authority.is_vo_admin(vo, &claims.sub)? {
                    return Err(Status::permission_denied(format!(
                        "setting the policy of VO {vo} needs the admin role on /{vo}"
                    )));
                }
            }
            (Level::User(subject), Caller::User { claims, .. }) if *subject == claims.sub => {}
            (Level::User(subject), Caller::User { .. }) => {
                return Err(Status::permission_denied(format!(
                    "only {subject} sets {subject}'s own policy"
                )));
            }
            (Level::Site(_), Caller::User { .. }) => {
                return Err(Status::permission_denied(
                    "only a site administrator sets the site policy",
                ));
            }
        }
        if !text.trim().is_empty() {
            PolicyStore::new().check(level, text).map_err(|e| {
                Status::invalid_argument(format!("policy refused, nothing changed: {e}"))
            })?;
        }
        authority
            .set_policy(PolicyEntry {
                kind: level.kind().to_owned(),
                name: level.name().to_owned(),
                text: text.to_owned(),
            })
            .await?;
        self.shared.refresh_trust();
        Ok(())
    }
}
