//! Calls to the VO service, as a site administrator (certificate) or as a
//! VO user (bearer credential over server-authenticated TLS).

use std::sync::Arc;

use tonic::Request;
use tonic::metadata::MetadataValue;
use xtreem_net::RevocationSet;
use xtreem_net::tls::{TlsMaterial, anonymous_client_config, cert_from_pem};
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
        let config = match (&profile.admin, as_admin) {
            (Some(admin), true) => {
                TlsMaterial::from_pem(&admin.ca_pem, &admin.cert_pem, &admin.key_pem)?
                    .client_config(&RevocationSet::new())?
            }
            _ => anonymous_client_config(&cert_from_pem(&profile.ca_pem)?)?,
        };
        let channel = xtreem_net::client::connect(endpoint, Arc::clone(&config))?;
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
        let mut request = Request::new(message);
        if let Some(token) = &self.bearer {
            let value: MetadataValue<_> = format!("Bearer {token}").parse().map_err(|_| {
                ClientError::Local(
                    "the saved credential is not valid text; run `xos login` again".into(),
                )
            })?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
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
