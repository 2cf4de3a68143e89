//! The VO authority: runs on the site authority and owns the VO state
//! machine, the VOs' private signing keys (files of mode 0600 under
//! `data_dir/vo-keys`), password and LDAP login, and token exchange.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::Status;
use xtreem_ldapauth::{LdapAuthError, LdapAuthenticator};
use xtreem_security::files;
use xtreem_security::site::query as site_query;
use xtreem_store::Store;
use xtreem_token::{Audience, Claims, DelegationRequest, SigningKey, delegate};
use xtreem_util::time::unix_now;
use xtreem_vo::{
    Actor, KeyState, Member, MemberState, Vo, VoCommand, VoKey, VoMachine, VoState, passwords,
    query,
};

use super::policies::{self, PolicyCommand, PolicyMachine};
use super::trust::{ForeignVos, PolicyEntry, TrustDocument, TrustedIssuer};
use super::vo_status;
use crate::paths::DataDir;

/// Longest credential a login hands out, and the default.
pub const LOGIN_TTL_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
pub const LOGIN_TTL_DEFAULT: Duration = Duration::from_secs(12 * 3600);

/// Scopes every member's credential carries; admins of the VO root also get `vo.admin`.
const MEMBER_SCOPES: &str = "compute.create compute.read compute.modify compute.cancel storage.read:/ storage.modify:/ vo.read";

/// Password stored for users whose password lives in LDAP.
const LDAP_USER_MARK: &str = "ldap";

pub struct VoAuthority {
    store: Arc<Store>,
    data: DataDir,
    site: String,
    keys: Mutex<HashMap<String, Arc<SigningKey>>>,
    ldap: Option<LdapAuthenticator>,
}

async fn execute(store: &Arc<Store>, command: VoCommand) -> Result<(), Status> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || store.execute(&VoMachine, command))
        .await
        .map_err(|e| Status::internal(format!("store task failed: {e}")))?
        .map_err(vo_status)
}

fn read<T>(
    store: &Store,
    f: impl FnOnce(&xtreem_store::ReadTxn) -> Result<T, xtreem_vo::VoError>,
) -> Result<T, Status> {
    store.read(f).map_err(vo_status)
}

impl VoAuthority {
    pub fn new(
        store: Arc<Store>,
        data: DataDir,
        site: String,
        ldap: Option<LdapAuthenticator>,
    ) -> VoAuthority {
        VoAuthority {
            store,
            data,
            site,
            keys: Mutex::new(HashMap::new()),
            ldap,
        }
    }

    pub fn issuer(&self, vo: &str) -> String {
        format!("xtreem://{}/vo/{vo}", self.site)
    }

    fn key_path(&self, kid: &str) -> std::path::PathBuf {
        self.data.root().join("vo-keys").join(format!("{kid}.key"))
    }

    fn new_key(&self, vo: &str) -> Result<(SigningKey, VoKey), Status> {
        let kid = format!("{vo}-{}-{}", unix_now(), &hex::encode(rand_bytes())[..6]);
        let key = SigningKey::generate(&kid).map_err(|e| Status::internal(e.to_string()))?;
        files::write_private(&self.key_path(&kid), key.pkcs8())
            .map_err(|e| Status::internal(e.to_string()))?;
        let public = key.public();
        Ok((
            key,
            VoKey {
                kid,
                x: public.x,
                state: KeyState::Next,
                created_unix: unix_now(),
            },
        ))
    }

    fn signing_key(&self, kid: &str) -> Result<Arc<SigningKey>, Status> {
        if let Ok(keys) = self.keys.lock()
            && let Some(k) = keys.get(kid)
        {
            return Ok(Arc::clone(k));
        }
        let pkcs8 = std::fs::read(self.key_path(kid))
            .map_err(|e| Status::internal(format!("signing key {kid}: {e}")))?;
        let key = Arc::new(
            SigningKey::from_pkcs8(kid, &pkcs8).map_err(|e| Status::internal(e.to_string()))?,
        );
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(kid.to_owned(), Arc::clone(&key));
        }
        Ok(key)
    }

    /// The trust document of this site, from the store.
    pub fn trust_document(&self) -> Result<TrustDocument, Status> {
        let vos = read(&self.store, query::vos)?;
        let mut issuers: Vec<TrustedIssuer> = vos
            .iter()
            .map(|vo| TrustedIssuer {
                vo: vo.name.clone(),
                issuer: vo.issuer.clone(),
                site: self.site.clone(),
                keys: vo
                    .keys
                    .iter()
                    .filter(|k| k.state.is_published())
                    .map(|k| xtreem_token::PublicKey {
                        kid: k.kid.clone(),
                        x: k.x.clone(),
                    })
                    .collect(),
            })
            .collect();
        let sec = |e: xtreem_security::SecurityError| Status::internal(e.to_string());
        let mut foreign_policies: Vec<PolicyEntry> = Vec::new();
        for trusted in self.store.read(site_query::trusted_sites).map_err(sec)? {
            match serde_json::from_str::<ForeignVos>(&trusted.vos_json) {
                Ok(foreign) => {
                    issuers.extend(foreign.issuers);
                    foreign_policies.extend(foreign.policies);
                }
                Err(e) => {
                    tracing::error!(site = %trusted.site, error = %e, "stored bundle unreadable; its VOs are not trusted")
                }
            }
        }
        let served = self.store.read(site_query::served_vos).map_err(sec)?;
        let mut policies = self.store.read(policies::all).map_err(sec)?;
        // A foreign VO's policy comes from its home site; one this site set
        // for the same VO is kept instead.
        for p in foreign_policies {
            if !policies
                .iter()
                .any(|q| q.kind == p.kind && q.name == p.name)
            {
                policies.push(p);
            }
        }
        Ok(TrustDocument {
            site: self.site.clone(),
            issuers,
            served,
            policies,
        })
    }

    /// This site's VO issuers and keys, for another site to trust.
    pub fn own_issuers(&self) -> Result<Vec<TrustedIssuer>, Status> {
        let doc = self.trust_document()?;
        Ok(doc
            .issuers
            .into_iter()
            .filter(|i| i.site == self.site)
            .collect())
    }

    pub async fn add_user(&self, name: &str, password: &str) -> Result<(), Status> {
        let hash = passwords::hash(password).map_err(vo_status)?;
        execute(
            &self.store,
            VoCommand::AddUser {
                name: name.to_owned(),
                password_hash: hash,
                now_unix: unix_now(),
            },
        )
        .await
    }

    /// Checks a password against the local account, or LDAP for users that
    /// are not local. Registers LDAP users on first success.
    pub async fn authenticate(&self, user: &str, password: &str) -> Result<(), Status> {
        let refused = || Status::unauthenticated("wrong user name or password");
        if let Some(record) = read(&self.store, |r| query::user(r, user))?
            && record.password_hash != LDAP_USER_MARK
        {
            let hash = record.password_hash.clone();
            let password = password.to_owned();
            let ok = tokio::task::spawn_blocking(move || passwords::check(&password, &hash))
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
            return if ok { Ok(()) } else { Err(refused()) };
        }
        let Some(ldap) = &self.ldap else {
            return Err(refused());
        };
        match ldap.authenticate(user, password).await {
            Ok(_) => {
                if read(&self.store, |r| query::user(r, user))?.is_none() {
                    execute(
                        &self.store,
                        VoCommand::AddUser {
                            name: user.to_owned(),
                            password_hash: LDAP_USER_MARK.to_owned(),
                            now_unix: unix_now(),
                        },
                    )
                    .await?;
                }
                Ok(())
            }
            Err(
                LdapAuthError::InvalidCredentials
                | LdapAuthError::EmptyPassword
                | LdapAuthError::InvalidUserName { .. },
            ) => Err(refused()),
            Err(e) => Err(Status::unavailable(format!(
                "the directory could not check the password: {e}"
            ))),
        }
    }

    /// Password login: a credential for `vo` (or the user's only VO).
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        vo: &str,
        ttl: Duration,
    ) -> Result<(String, Claims), Status> {
        if ttl > LOGIN_TTL_MAX {
            return Err(Status::invalid_argument(format!(
                "a login lasts at most {}",
                humantime::format_duration(LOGIN_TTL_MAX)
            )));
        }
        self.authenticate(user, password).await?;
        let memberships = read(&self.store, |r| query::memberships(r, user))?;
        let member: Member = if vo.is_empty() {
            match memberships.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(Status::permission_denied(format!(
                        "{user} is not a member of any VO; ask to join one with `xos vo join VO`"
                    )));
                }
                many => {
                    let names: Vec<&str> = many.iter().map(|m| m.vo.as_str()).collect();
                    return Err(Status::invalid_argument(format!(
                        "{user} belongs to several VOs ({}); choose one with --vo",
                        names.join(", ")
                    )));
                }
            }
        } else {
            memberships
                .into_iter()
                .find(|m| m.vo == vo)
                .ok_or_else(|| {
                    Status::permission_denied(format!("{user} is not a member of VO {vo}"))
                })?
        };
        let record = read(&self.store, |r| query::vo(r, &member.vo))?
            .ok_or_else(|| Status::not_found(format!("no VO {}", member.vo)))?;
        if record.state == VoState::Suspended {
            return Err(Status::failed_precondition(format!(
                "VO {} is suspended",
                record.name
            )));
        }
        let claims = self.claims_for(&record, &member, ttl.as_secs());
        let token = self.sign(&record, &claims)?;
        Ok((token, claims))
    }

    fn claims_for(&self, vo: &Vo, member: &Member, ttl_secs: u64) -> Claims {
        let mut scope = MEMBER_SCOPES.to_owned();
        if member.rank_on(&vo.root()) >= xtreem_vo::role_rank("admin") {
            scope.push_str(" vo.admin");
        }
        Claims::new(
            &vo.issuer,
            &member.user,
            Audience::ANY_SITE,
            unix_now(),
            ttl_secs,
        )
        .with_groups(member.groups())
        .with_roles(member.role_claims())
        .with_scope(&scope)
    }

    fn sign(&self, vo: &Vo, claims: &Claims) -> Result<String, Status> {
        let active = vo.active_key().ok_or_else(|| {
            Status::failed_precondition(format!("VO {} has no active signing key", vo.name))
        })?;
        self.signing_key(&active.kid)?
            .sign(claims)
            .map_err(|e| Status::internal(e.to_string()))
    }

    /// Token exchange for a verified credential.
    pub fn delegate(
        &self,
        parent: &Claims,
        vo: &str,
        request: &DelegationRequest,
    ) -> Result<(String, Claims), Status> {
        let record = read(&self.store, |r| query::vo(r, vo))?
            .ok_or_else(|| Status::not_found(format!("no VO {vo}")))?;
        let child = delegate(parent, request, unix_now())
            .map_err(|e| Status::permission_denied(e.to_string()))?;
        let token = self.sign(&record, &child)?;
        Ok((token, child))
    }

    pub async fn create_vo(
        &self,
        name: &str,
        first_admin: Option<String>,
        by: Actor,
    ) -> Result<Vo, Status> {
        let (_, key) = self.new_key(name)?;
        execute(
            &self.store,
            VoCommand::CreateVo {
                name: name.to_owned(),
                issuer: self.issuer(name),
                first_admin,
                key,
                by,
                now_unix: unix_now(),
            },
        )
        .await?;
        // Members of a new VO may log in and use what the site serves them;
        // the VO's admins narrow or widen this with `xos policy set`.
        let baseline = format!(
            "// Baseline of VO {name}: its members may log in, run jobs and use nodes;\n\
             // owners read and signal their own jobs; members see the VO.\n\
             permit(principal, action in [Xtreem::Action::\"login\", Xtreem::Action::\"submit_job\", Xtreem::Action::\"use_node\"], resource)\n  when {{ principal.vo == \"{name}\" }};\n\
             permit(principal, action in [Xtreem::Action::\"read_job\", Xtreem::Action::\"signal_job\"], resource)\n  when {{ resource.owner == principal.subject && resource.vo == \"{name}\" }};\n\
             permit(principal, action == Xtreem::Action::\"read_vo\", resource == Xtreem::Vo::\"{name}\")\n  when {{ principal.vo == \"{name}\" }};\n"
        );
        self.set_policy(PolicyEntry {
            kind: "vo".into(),
            name: name.to_owned(),
            text: baseline,
        })
        .await?;
        read(&self.store, |r| query::vo(r, name))?
            .ok_or_else(|| Status::internal("VO vanished after creation"))
    }

    pub async fn run(&self, command: VoCommand) -> Result<(), Status> {
        execute(&self.store, command).await
    }

    /// Publishes a new key for `vo` (`activate`: and signs with the newest published key from now on).
    pub async fn rotate_key(&self, vo: &str, activate: bool, by: Actor) -> Result<Vo, Status> {
        let record = read(&self.store, |r| query::vo(r, vo))?
            .ok_or_else(|| Status::not_found(format!("no VO {vo}")))?;
        let pending = record
            .keys
            .iter()
            .find(|k| k.state == KeyState::Next)
            .map(|k| k.kid.clone());
        match (activate, pending) {
            (true, Some(kid)) => {
                execute(
                    &self.store,
                    VoCommand::ActivateKey {
                        vo: vo.to_owned(),
                        kid,
                        by,
                    },
                )
                .await?
            }
            (true, None) => {
                return Err(Status::failed_precondition(format!(
                    "VO {vo} has no published next key; run `xos vo rotate-key {vo}` first, wait for nodes to fetch it, then --activate"
                )));
            }
            (false, _) => {
                let (_, key) = self.new_key(vo)?;
                execute(
                    &self.store,
                    VoCommand::AddKey {
                        vo: vo.to_owned(),
                        key,
                        by,
                    },
                )
                .await?;
            }
        }
        read(&self.store, |r| query::vo(r, vo))?.ok_or_else(|| Status::internal("VO vanished"))
    }

    pub fn vo(&self, name: &str) -> Result<Vo, Status> {
        read(&self.store, |r| query::vo(r, name))?
            .ok_or_else(|| Status::not_found(format!("no VO named {name}")))
    }

    pub fn vos(&self) -> Result<Vec<Vo>, Status> {
        read(&self.store, query::vos)
    }

    pub fn members(&self, vo: &str) -> Result<Vec<Member>, Status> {
        read(&self.store, |r| query::members(r, vo))
    }

    pub fn member(&self, vo: &str, user: &str) -> Result<Member, Status> {
        read(&self.store, |r| query::member(r, vo, user))?
            .ok_or_else(|| Status::not_found(format!("{user} is not in VO {vo}")))
    }

    /// Is `user` an active admin of `vo`'s root?
    pub fn is_vo_admin(&self, vo: &str, user: &str) -> Result<bool, Status> {
        let record = self.vo(vo)?;
        Ok(
            read(&self.store, |r| query::member(r, vo, user))?.is_some_and(|m| {
                m.state == MemberState::Active
                    && m.rank_on(&record.root()) >= xtreem_vo::role_rank("admin")
            }),
        )
    }

    pub async fn set_policy(&self, entry: PolicyEntry) -> Result<(), Status> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            store.execute(&PolicyMachine, PolicyCommand::Set(entry))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))
    }

    pub fn policy(&self, kind: &str, name: &str) -> Result<Option<PolicyEntry>, Status> {
        self.store
            .read(|r| policies::get(r, kind, name))
            .map_err(|e| Status::internal(e.to_string()))
    }
}

fn rand_bytes() -> [u8; 8] {
    let mut b = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    b
}
