//! Calls to the VO service, as a site administrator (certificate) or as a
//! VO user (bearer credential over server-authenticated TLS).

use tonic::Request;
use xtreem_proto::vo as pb;
use xtreem_proto::vo::vo_client::VoClient as Raw;

use crate::{ClientError, Profile, Result};

pub struct VoClient {
    endpoint: String,
    raw: Raw<tonic::transport::Channel>,
    bearer: Option<String>,
}

impl VoClient {
    /// Connects to `endpoint`: with the administrator certificate if the
    /// profile has one and `as_admin`, sending `bearer` if given.
    pub fn connect(
        profile: &Profile,
        endpoint: &str,
        as_admin: bool,
        bearer: Option<String>,
    ) -> Result<VoClient> {
        let channel = crate::call::channel(profile, endpoint, as_admin)?;
        Ok(VoClient {
            endpoint: endpoint.to_owned(),
            raw: Raw::new(channel),
            bearer,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn request<T>(&self, message: T) -> Result<Request<T>> {
        crate::call::request(message, self.bearer.as_deref())
    }

    fn err(&self, status: tonic::Status) -> ClientError {
        ClientError::from_status(&self.endpoint, status)
    }
}

macro_rules! calls {
    ($($name:ident($req:ty) -> $resp:ty;)*) => {
        impl VoClient {
            $(
                pub async fn $name(&mut self, message: $req) -> Result<$resp> {
                    let request = self.request(message)?;
                    match self.raw.$name(request).await {
                        Ok(r) => Ok(r.into_inner()),
                        Err(s) => Err(self.err(s)),
                    }
                }
            )*
        }
    };
}

calls! {
    login(pb::LoginRequest) -> pb::LoginResponse;
    whoami(pb::WhoamiRequest) -> pb::WhoamiResponse;
    delegate(pb::DelegateRequest) -> pb::DelegateResponse;
    add_user(pb::AddUserRequest) -> pb::Empty;
    create_vo(pb::CreateVoRequest) -> pb::VoInfo;
    delete_vo(pb::VoName) -> pb::Empty;
    set_vo_state(pb::SetVoStateRequest) -> pb::VoInfo;
    list_vos(pb::Empty) -> pb::ListVosResponse;
    show_vo(pb::VoName) -> pb::VoDetail;
    create_group(pb::CreateGroupRequest) -> pb::VoInfo;
    request_join(pb::RequestJoinRequest) -> pb::MemberInfo;
    decide(pb::DecideRequest) -> pb::MemberInfo;
    remove_member(pb::MemberName) -> pb::MemberInfo;
    grant_role(pb::RoleRequest) -> pb::MemberInfo;
    revoke_role(pb::RoleRequest) -> pb::MemberInfo;
    rotate_key(pb::RotateKeyRequest) -> pb::VoInfo;
    withdraw_key(pb::WithdrawKeyRequest) -> pb::VoInfo;
    serve_vo(pb::ServeVoRequest) -> pb::Empty;
    site_bundle(pb::Empty) -> pb::SiteBundleResponse;
    trust_site(pb::TrustSiteRequest) -> pb::Empty;
    set_policy(pb::SetPolicyRequest) -> pb::PolicyText;
    show_policy(pb::PolicyLevel) -> pb::PolicyText;
    test_policy(pb::TestPolicyRequest) -> pb::TestPolicyResponse;
    list_accounts(pb::Empty) -> pb::ListAccountsResponse;
    audit_verify(pb::Empty) -> pb::AuditVerifyResponse;
}
