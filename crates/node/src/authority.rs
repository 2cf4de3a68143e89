//! The site authority: the core node that holds the site CA. It initialises
//! the site, issues join tokens, enrolls nodes, renews and revokes their
//! certificates, and keeps the node list.
//!
//! Durable changes go through [`SiteMachine`] in the store; signing happens
//! before a command is applied and a refused command discards the signature.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xtreem_net::{PeerIdentity, PrincipalKind, RevocationSet};
use xtreem_security::ca::{CertRequest, IssuedCert, SiteCa};
use xtreem_security::site::{
    CertRecord, NodeRecord, SiteCommand, SiteMachine, SiteOutcome, check_token, query,
};
use xtreem_security::token::{JoinToken, secret_hash};
use xtreem_security::{SecurityError, files, keys};
use xtreem_store::Store;
use xtreem_util::limits::{JOIN_TOKEN_TTL_MAX, JOIN_TOKEN_TTL_MIN};
use xtreem_util::names::{NodeName, SiteName};
use xtreem_util::roles::Role;
use xtreem_util::time::unix_now;

use crate::paths::DataDir;

type Result<T> = std::result::Result<T, SecurityError>;

/// A node as `xos node list` shows it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub record: NodeRecord,
    pub state: &'static str,
    pub last_seen_unix: u64,
}

pub struct Authority {
    store: Arc<Store>,
    ca: SiteCa,
    site: SiteName,
    name: NodeName,
    cert_lifetime: Duration,
    /// A node is `ready` if heard from within this time.
    liveness_window: Duration,
    last_seen: Mutex<HashMap<String, u64>>,
    revoked: RevocationSet,
}

/// Runs a store command off the async runtime: commits fsync.
async fn execute(store: &Arc<Store>, command: SiteCommand) -> Result<SiteOutcome> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || store.execute(&SiteMachine, command))
        .await
        .map_err(|e| SecurityError::Certificate(format!("store task failed: {e}")))?
}

fn host_of(endpoint: &str) -> Vec<String> {
    endpoint
        .rsplit_once(':')
        .map(|(h, _)| vec![h.trim_start_matches('[').trim_end_matches(']').to_owned()])
        .unwrap_or_default()
}

/// Parameters the authority takes from the node config.
pub struct AuthorityParams<'a> {
    pub store: Arc<Store>,
    pub data: &'a DataDir,
    pub name: NodeName,
    pub roles: Vec<Role>,
    pub endpoint: String,
    pub cert_lifetime: Duration,
    pub liveness_window: Duration,
    pub revoked: RevocationSet,
}

/// A certificate with the key it was made for.
pub struct KeyedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Authority {
    /// Creates the site: a new CA, this node's own certificate, and the site
    /// record. Refused if this node already belongs to a site.
    pub async fn init(
        params: AuthorityParams<'_>,
        site: SiteName,
    ) -> Result<(Authority, KeyedCert)> {
        if let Some(existing) = params.store.read(query::site)? {
            return Err(SecurityError::SiteExists(existing.name.to_string()));
        }
        let now = unix_now();
        let (ca, ca_key_pem) = SiteCa::create(&site, now)?;
        let own = keys::new_key_and_csr(params.name.as_str())?;
        let issued = ca.sign(
            &site,
            &CertRequest {
                csr_der: &own.csr_der,
                kind: PrincipalKind::Node,
                name: params.name.as_str(),
                hosts: &host_of(&params.endpoint),
                lifetime: params.cert_lifetime,
                now_unix: now,
            },
        )?;
        // The key goes to disk before the site exists in the store: a crash in
        // between leaves a stray key file and no site, so `init` can be rerun.
        files::write_private(&params.data.ca_key(), ca_key_pem.as_bytes())?;
        execute(
            &params.store,
            SiteCommand::Init {
                site: site.clone(),
                ca_cert_pem: ca.cert_pem().to_owned(),
                authority: params.name.clone(),
                roles: params.roles.clone(),
                endpoint: params.endpoint.clone(),
                cert: CertRecord {
                    serial: issued.serial.clone(),
                    not_after_unix: issued.not_after_unix,
                },
                now_unix: now,
            },
        )
        .await?;
        let authority = Authority::new(params, ca, site);
        Ok((
            authority,
            KeyedCert {
                cert_pem: issued.pem,
                key_pem: own.key_pem,
            },
        ))
    }

    /// Loads the authority if this node holds its site's CA.
    pub fn load(params: AuthorityParams<'_>) -> Result<Option<Authority>> {
        let Some(site) = params.store.read(query::site)? else {
            return Ok(None);
        };
        if site.authority != params.name {
            return Ok(None);
        }
        let key_pem = files::read_to_string(&params.data.ca_key())?;
        let ca = SiteCa::load(&site.ca_cert_pem, &key_pem)?;
        let authority = Authority::new(params, ca, site.name);
        authority.reload_revocations()?;
        Ok(Some(authority))
    }

    fn new(params: AuthorityParams<'_>, ca: SiteCa, site: SiteName) -> Authority {
        Authority {
            store: params.store,
            ca,
            site,
            name: params.name,
            cert_lifetime: params.cert_lifetime,
            liveness_window: params.liveness_window,
            last_seen: Mutex::new(HashMap::new()),
            revoked: params.revoked,
        }
    }

    pub fn site(&self) -> &SiteName {
        &self.site
    }

    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    fn reload_revocations(&self) -> Result<()> {
        let list = self.store.read(query::revocations)?;
        self.revoked
            .replace(list.version, list.entries.into_iter().map(|e| e.serial));
        Ok(())
    }

    /// A new join token valid for `ttl`.
    pub async fn create_token(&self, ttl: Duration) -> Result<(JoinToken, u64)> {
        if !(JOIN_TOKEN_TTL_MIN..=JOIN_TOKEN_TTL_MAX).contains(&ttl) {
            return Err(SecurityError::Invalid {
                what: "ttl",
                reason: format!(
                    "a join token lives between {} and {}",
                    humantime::format_duration(JOIN_TOKEN_TTL_MIN),
                    humantime::format_duration(JOIN_TOKEN_TTL_MAX)
                ),
            });
        }
        let token = JoinToken::generate(&self.ca.fingerprint());
        let now = unix_now();
        let expires_unix = now + ttl.as_secs();
        execute(
            &self.store,
            SiteCommand::CreateToken {
                id: token.id.clone(),
                secret_hash: secret_hash(&token.secret),
                now_unix: now,
                expires_unix,
            },
        )
        .await?;
        Ok((token, expires_unix))
    }

    /// Exchanges a join token and CSR for a node certificate.
    pub async fn enroll(
        &self,
        token_id: &str,
        secret: &str,
        node: NodeName,
        roles: Vec<Role>,
        endpoint: String,
        csr_der: &[u8],
    ) -> Result<IssuedCert> {
        let now = unix_now();
        let hash = secret_hash(secret);
        // Cheap check first so garbage does not cost a signature.
        check_token(
            self.store.read(|r| query::token(r, token_id))?,
            token_id,
            &hash,
            now,
        )?;
        let issued = self.sign_node(csr_der, &node, &endpoint, now)?;
        execute(
            &self.store,
            SiteCommand::Enroll {
                token_id: token_id.to_owned(),
                secret_hash: hash,
                node: node.clone(),
                roles,
                endpoint,
                cert: CertRecord {
                    serial: issued.serial.clone(),
                    not_after_unix: issued.not_after_unix,
                },
                now_unix: now,
            },
        )
        .await?;
        self.touch(node.as_str());
        tracing::info!(node = %node, token = token_id, "node enrolled");
        Ok(issued)
    }

    /// A node certificate for `node` at `endpoint`, with this site's lifetime.
    fn sign_node(
        &self,
        csr_der: &[u8],
        node: &NodeName,
        endpoint: &str,
        now: u64,
    ) -> Result<IssuedCert> {
        self.ca.sign(
            &self.site,
            &CertRequest {
                csr_der,
                kind: PrincipalKind::Node,
                name: node.as_str(),
                hosts: &host_of(endpoint),
                lifetime: self.cert_lifetime,
                now_unix: now,
            },
        )
    }

    /// Renews the certificate of an enrolled node for a new CSR.
    pub async fn renew(
        &self,
        node: &NodeName,
        endpoint: String,
        csr_der: &[u8],
    ) -> Result<IssuedCert> {
        let record = self
            .store
            .read(|r| query::node(r, node.as_str()))?
            .ok_or_else(|| SecurityError::UnknownNode(node.to_string()))?;
        if record.is_removed() {
            return Err(SecurityError::NodeRemoved(node.to_string()));
        }
        let now = unix_now();
        let issued = self.sign_node(csr_der, node, &endpoint, now)?;
        execute(
            &self.store,
            SiteCommand::RecordCertificate {
                node: node.clone(),
                endpoint,
                cert: CertRecord {
                    serial: issued.serial.clone(),
                    not_after_unix: issued.not_after_unix,
                },
                now_unix: now,
            },
        )
        .await?;
        tracing::info!(node = %node, serial = %issued.serial, "node certificate renewed");
        Ok(issued)
    }

    /// Renews the authority's own certificate with a fresh key.
    pub async fn renew_self(&self, endpoint: String) -> Result<KeyedCert> {
        let own = keys::new_key_and_csr(self.name.as_str())?;
        let issued = self.renew(&self.name, endpoint, &own.csr_der).await?;
        Ok(KeyedCert {
            cert_pem: issued.pem,
            key_pem: own.key_pem,
        })
    }

    /// Signs an administrator certificate.
    pub async fn issue_admin(
        &self,
        admin: &str,
        csr_der: &[u8],
        lifetime: Duration,
    ) -> Result<IssuedCert> {
        let now = unix_now();
        let issued = self.ca.sign(
            &self.site,
            &CertRequest {
                csr_der,
                kind: PrincipalKind::Admin,
                name: admin,
                hosts: &[],
                lifetime,
                now_unix: now,
            },
        )?;
        execute(
            &self.store,
            SiteCommand::RecordAdmin {
                name: admin.to_owned(),
                cert: CertRecord {
                    serial: issued.serial.clone(),
                    not_after_unix: issued.not_after_unix,
                },
                now_unix: now,
            },
        )
        .await?;
        tracing::info!(admin, "administrator certificate issued");
        Ok(issued)
    }

    /// Removes a node and revokes its certificates; returns how many.
    pub async fn remove(&self, node: NodeName) -> Result<u32> {
        let outcome = execute(
            &self.store,
            SiteCommand::RemoveNode {
                node: node.clone(),
                now_unix: unix_now(),
            },
        )
        .await?;
        self.reload_revocations()?;
        // The removed node knew the gossip key: members move to a new one
        // (accepting the old one until the rotation has reached them all).
        self.rotate_gossip_key().await?;
        tracing::info!(node = %node, "node removed and its certificates revoked");
        Ok(match outcome {
            SiteOutcome::Revoked { certificates } => certificates,
            SiteOutcome::Done => 0,
        })
    }

    /// A fresh random site gossip key; the current one becomes the previous.
    pub async fn rotate_gossip_key(&self) -> Result<()> {
        let key: [u8; 32] = rand::random();
        execute(&self.store, SiteCommand::RotateGossipKey { key }).await?;
        Ok(())
    }

    /// The site's gossip keyring and roster, making a key if there is none.
    pub async fn gossip_state(&self) -> Result<xtreem_security::site::GossipState> {
        let state = self.store.read(query::gossip)?;
        if state.key.is_some() {
            return Ok(state);
        }
        self.rotate_gossip_key().await?;
        self.store.read(query::gossip)
    }

    /// Registers a node's gossip identity unless the roster already has it.
    pub async fn record_gossip_member(
        &self,
        member: xtreem_security::site::GossipMemberRecord,
    ) -> Result<()> {
        let state = self.store.read(query::gossip)?;
        if state.roster.contains(&member) {
            return Ok(());
        }
        execute(&self.store, SiteCommand::RecordGossipMember { member }).await?;
        Ok(())
    }

    /// The gossip state as stored, without creating a key.
    pub fn stored_gossip_state(&self) -> Result<xtreem_security::site::GossipState> {
        self.store.read(query::gossip)
    }

    fn touch(&self, node: &str) {
        if let Ok(mut seen) = self.last_seen.lock() {
            seen.insert(node.to_owned(), unix_now());
        }
    }

    /// Records a heartbeat from `peer` and returns the revocation list.
    pub fn heartbeat(&self, peer: &PeerIdentity) -> Result<(u64, Vec<String>)> {
        let record = self
            .store
            .read(|r| query::node(r, &peer.name))?
            .ok_or_else(|| SecurityError::UnknownNode(peer.name.clone()))?;
        if record.is_removed() {
            return Err(SecurityError::NodeRemoved(peer.name.clone()));
        }
        self.touch(&peer.name);
        let list = self.store.read(query::revocations)?;
        Ok((
            list.version,
            list.entries.into_iter().map(|e| e.serial).collect(),
        ))
    }

    /// Is `name` enrolled and not removed?
    pub fn is_active_node(&self, name: &str) -> Result<bool> {
        Ok(self
            .store
            .read(|r| query::node(r, name))?
            .is_some_and(|n| !n.is_removed()))
    }

    /// All nodes with their current state.
    pub fn list_nodes(&self) -> Result<Vec<NodeView>> {
        let nodes = self.store.read(query::nodes)?;
        let now = unix_now();
        let seen = self.last_seen.lock().map(|s| s.clone()).unwrap_or_default();
        Ok(nodes
            .into_iter()
            .map(|record| {
                let last_seen_unix = if record.name == self.name {
                    now
                } else {
                    seen.get(record.name.as_str()).copied().unwrap_or(0)
                };
                let state = if record.is_removed() {
                    "removed"
                } else if now.saturating_sub(last_seen_unix) <= self.liveness_window.as_secs() {
                    "ready"
                } else {
                    "unreachable"
                };
                NodeView {
                    record,
                    state,
                    last_seen_unix,
                }
            })
            .collect())
    }
}
