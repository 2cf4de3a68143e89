//! The site's durable state as a state machine: the site record, join
//! tokens, enrolled nodes with their certificates, and the revocation list.
//!
//! Every command carries the time it was decided at (`now_unix`) and every
//! random value (serials, token secrets), so applying it is deterministic.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use xtreem_store::{ReadTxn, StateMachine, Table, WriteTxn};
use xtreem_util::names::{NodeName, SiteName};
use xtreem_util::roles::Role;

use crate::{Result, SecurityError};

const SITE: Table<SiteRecord> = Table::new("site");
const SITE_KEY: &str = "site";
const TOKENS: Table<TokenRecord> = Table::new("site_tokens");
const NODES: Table<NodeRecord> = Table::new("site_nodes");
const ADMINS: Table<AdminRecord> = Table::new("site_admins");
const REVOCATIONS: Table<RevocationList> = Table::new("site_revocations");
const REVOCATIONS_KEY: &str = "list";
const SERVED: Table<ServedVo> = Table::new("site_served_vos");
const TRUSTED: Table<TrustedSite> = Table::new("site_trusted_sites");
const GOSSIP: Table<GossipState> = Table::new("site_gossip");
const GOSSIP_KEY: &str = "gossip";

/// A VO this site lets use its nodes, and how much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedVo {
    pub vo: String,
    /// Empty: every node of the site.
    pub nodes: Vec<String>,
    /// 0: no cap beyond the nodes' own capacity.
    pub max_cores: u32,
}

/// Another site whose bundle this site trusts: its CA and its VO issuers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedSite {
    pub site: String,
    pub ca_cert_pem: String,
    /// The bundle's VO part as JSON (issuers and keys), kept as given.
    pub vos_json: String,
    pub trusted_unix: u64,
    /// `host:port` of the site's core node, where its directory answers.
    pub endpoint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteRecord {
    pub name: SiteName,
    pub ca_cert_pem: String,
    /// The node that holds the CA key and answers enrollment.
    pub authority: NodeName,
    pub created_unix: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub secret_hash: String,
    pub created_unix: u64,
    pub expires_unix: u64,
    pub used_by: Option<NodeName>,
    pub used_unix: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    pub serial: String,
    pub not_after_unix: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: NodeName,
    pub roles: Vec<Role>,
    pub endpoint: String,
    pub enrolled_unix: u64,
    pub removed_unix: Option<u64>,
    /// Certificates issued to the node that have not expired yet.
    pub certs: Vec<CertRecord>,
}

impl NodeRecord {
    pub fn is_removed(&self) -> bool {
        self.removed_unix.is_some()
    }

    /// Expiry of the newest certificate.
    pub fn cert_expires_unix(&self) -> u64 {
        self.certs
            .iter()
            .map(|c| c.not_after_unix)
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminRecord {
    pub name: String,
    pub certs: Vec<CertRecord>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RevocationList {
    pub version: u64,
    pub entries: Vec<RevokedCert>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokedCert {
    pub serial: String,
    pub not_after_unix: u64,
    pub node: String,
}

/// A node's gossip identity and signing key, as it registered them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipMemberRecord {
    pub node: String,
    pub endpoint: String,
    pub incarnation: u32,
    pub public_key: [u8; 32],
}

/// The site's gossip keyring and roster; `version` grows with every change
/// so nodes fetch them only when they differ.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GossipState {
    pub version: u64,
    /// (id, key): the key every datagram is sealed with.
    pub key: Option<(u8, [u8; 32])>,
    pub previous_key: Option<(u8, [u8; 32])>,
    pub roster: Vec<GossipMemberRecord>,
}

/// Changes to the site.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SiteCommand {
    Init {
        site: SiteName,
        ca_cert_pem: String,
        authority: NodeName,
        roles: Vec<Role>,
        endpoint: String,
        cert: CertRecord,
        now_unix: u64,
    },
    CreateToken {
        id: String,
        secret_hash: String,
        now_unix: u64,
        expires_unix: u64,
    },
    Enroll {
        token_id: String,
        secret_hash: String,
        node: NodeName,
        roles: Vec<Role>,
        endpoint: String,
        cert: CertRecord,
        now_unix: u64,
    },
    /// A renewed certificate of an enrolled node.
    RecordCertificate {
        node: NodeName,
        endpoint: String,
        cert: CertRecord,
        now_unix: u64,
    },
    RecordAdmin {
        name: String,
        cert: CertRecord,
        now_unix: u64,
    },
    RemoveNode {
        node: NodeName,
        now_unix: u64,
    },
    ServeVo {
        served: ServedVo,
    },
    StopServingVo {
        vo: String,
    },
    TrustSite {
        trusted: TrustedSite,
    },
    /// A new site gossip key (random bytes chosen by the authority); the
    /// current one stays accepted as the previous key.
    RotateGossipKey {
        key: [u8; 32],
    },
    /// A node registers (or re-registers after a restart) its gossip identity.
    RecordGossipMember {
        member: GossipMemberRecord,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteOutcome {
    Done,
    Revoked { certificates: u32 },
}

/// The site state machine.
pub struct SiteMachine;

fn keep_unexpired(certs: &mut Vec<CertRecord>, now_unix: u64) {
    certs.retain(|c| c.not_after_unix > now_unix);
}

impl StateMachine for SiteMachine {
    const NAME: &'static str = "site";
    type Command = SiteCommand;
    type Output = SiteOutcome;
    type Error = SecurityError;

    fn apply(&self, txn: &WriteTxn, command: &SiteCommand) -> Result<SiteOutcome> {
        match command {
            SiteCommand::Init {
                site,
                ca_cert_pem,
                authority,
                roles,
                endpoint,
                cert,
                now_unix,
            } => {
                if let Some(existing) = SITE.get_w(txn, SITE_KEY)? {
                    return Err(SecurityError::SiteExists(existing.name.to_string()));
                }
                SITE.insert(
                    txn,
                    SITE_KEY,
                    &SiteRecord {
                        name: site.clone(),
                        ca_cert_pem: ca_cert_pem.clone(),
                        authority: authority.clone(),
                        created_unix: *now_unix,
                    },
                )?;
                NODES.insert(
                    txn,
                    authority.as_str(),
                    &NodeRecord {
                        name: authority.clone(),
                        roles: roles.clone(),
                        endpoint: endpoint.clone(),
                        enrolled_unix: *now_unix,
                        removed_unix: None,
                        certs: vec![cert.clone()],
                    },
                )?;
                Ok(SiteOutcome::Done)
            }
            SiteCommand::CreateToken {
                id,
                secret_hash,
                now_unix,
                expires_unix,
            } => {
                require_site(txn)?;
                TOKENS.insert(
                    txn,
                    id,
                    &TokenRecord {
                        secret_hash: secret_hash.clone(),
                        created_unix: *now_unix,
                        expires_unix: *expires_unix,
                        used_by: None,
                        used_unix: None,
                    },
                )?;
                Ok(SiteOutcome::Done)
            }
            SiteCommand::Enroll {
                token_id,
                secret_hash,
                node,
                roles,
                endpoint,
                cert,
                now_unix,
            } => {
                require_site(txn)?;
                let mut token = check_token(
                    TOKENS.get_w(txn, token_id)?,
                    token_id,
                    secret_hash,
                    *now_unix,
                )?;
                if let Some(existing) = NODES.get_w(txn, node.as_str())?
                    && !existing.is_removed()
                {
                    return Err(SecurityError::NodeExists(node.to_string()));
                }
                token.used_by = Some(node.clone());
                token.used_unix = Some(*now_unix);
                TOKENS.insert(txn, token_id, &token)?;
                NODES.insert(
                    txn,
                    node.as_str(),
                    &NodeRecord {
                        name: node.clone(),
                        roles: roles.clone(),
                        endpoint: endpoint.clone(),
                        enrolled_unix: *now_unix,
                        removed_unix: None,
                        certs: vec![cert.clone()],
                    },
                )?;
                Ok(SiteOutcome::Done)
            }
            SiteCommand::RecordCertificate {
                node,
                endpoint,
                cert,
                now_unix,
            } => {
                let mut record = NODES
                    .get_w(txn, node.as_str())?
                    .ok_or_else(|| SecurityError::UnknownNode(node.to_string()))?;
                if record.is_removed() {
                    return Err(SecurityError::NodeRemoved(node.to_string()));
                }
                keep_unexpired(&mut record.certs, *now_unix);
                record.certs.push(cert.clone());
                record.endpoint = endpoint.clone();
                NODES.insert(txn, node.as_str(), &record)?;
                Ok(SiteOutcome::Done)
            }
            SiteCommand::RecordAdmin {
                name,
                cert,
                now_unix,
            } => {
                require_site(txn)?;
                let mut record = ADMINS.get_w(txn, name)?.unwrap_or(AdminRecord {
                    name: name.clone(),
                    certs: Vec::new(),
                });
                keep_unexpired(&mut record.certs, *now_unix);
                record.certs.push(cert.clone());
                ADMINS.insert(txn, name, &record)?;
                Ok(SiteOutcome::Done)
            }
            SiteCommand::RemoveNode { node, now_unix } => {
                let site = require_site(txn)?;
                if site.authority == *node {
                    return Err(SecurityError::Invalid {
                        what: "node",
                        reason: format!(
                            "{node} holds the site CA and cannot be removed from its own site"
                        ),
                    });
                }
                let mut record = NODES
                    .get_w(txn, node.as_str())?
                    .ok_or_else(|| SecurityError::UnknownNode(node.to_string()))?;
                if record.is_removed() {
                    return Err(SecurityError::NodeRemoved(node.to_string()));
                }
                keep_unexpired(&mut record.certs, *now_unix);
                let mut list = REVOCATIONS.get_w(txn, REVOCATIONS_KEY)?.unwrap_or_default();
                list.entries.retain(|e| e.not_after_unix > *now_unix);
                for cert in &record.certs {
                    list.entries.push(RevokedCert {
                        serial: cert.serial.clone(),
                        not_after_unix: cert.not_after_unix,
                        node: node.to_string(),
                    });
                }
                list.version += 1;
                let revoked = u32::try_from(record.certs.len()).unwrap_or(u32::MAX);
                record.removed_unix = Some(*now_unix);
                NODES.insert(txn, node.as_str(), &record)?;
                REVOCATIONS.insert(txn, REVOCATIONS_KEY, &list)?;
                if let Some(mut gossip) = GOSSIP.get_w(txn, GOSSIP_KEY)? {
                    gossip.roster.retain(|m| m.node != node.as_str());
                    gossip.version += 1;
                    GOSSIP.insert(txn, GOSSIP_KEY, &gossip)?;
                }
                Ok(SiteOutcome::Revoked {
                    certificates: revoked,
                })
            }
            SiteCommand::ServeVo { served } => {
                require_site(txn)?;
                for node in &served.nodes {
                    match NODES.get_w(txn, node)? {
                        Some(n) if !n.is_removed() => {}
                        _ => return Err(SecurityError::UnknownNode(node.clone())),
                    }
                }
                SERVED.insert(txn, &served.vo, served)?;
                Ok(SiteOutcome::Done)
            }
            SiteCommand::StopServingVo { vo } => {
                require_site(txn)?;
                SERVED.remove(txn, vo)?;
                Ok(SiteOutcome::Done)
            }
            SiteCommand::TrustSite { trusted } => {
                let site = require_site(txn)?;
                if trusted.site == site.name.as_str() {
                    return Err(SecurityError::Invalid {
                        what: "bundle",
                        reason: "it is this site's own bundle".into(),
                    });
                }
                TRUSTED.insert(txn, &trusted.site, trusted)?;
                Ok(SiteOutcome::Done)
            }
            SiteCommand::RotateGossipKey { key } => {
                require_site(txn)?;
                let mut state = GOSSIP.get_w(txn, GOSSIP_KEY)?.unwrap_or_default();
                let next_id = state.key.map(|(id, _)| id.wrapping_add(1)).unwrap_or(1);
                state.previous_key = state.key;
                state.key = Some((next_id, *key));
                state.version += 1;
                GOSSIP.insert(txn, GOSSIP_KEY, &state)?;
                Ok(SiteOutcome::Done)
            }
            SiteCommand::RecordGossipMember { member } => {
                require_site(txn)?;
                match NODES.get_w(txn, &member.node)? {
                    Some(n) if !n.is_removed() => {}
                    Some(_) => return Err(SecurityError::NodeRemoved(member.node.clone())),
                    None => return Err(SecurityError::UnknownNode(member.node.clone())),
                }
                let mut state = GOSSIP.get_w(txn, GOSSIP_KEY)?.unwrap_or_default();
                if state.roster.iter().any(|m| m == member) {
                    return Ok(SiteOutcome::Done);
                }
                state.roster.retain(|m| m.node != member.node);
                state.roster.push(member.clone());
                state.version += 1;
                GOSSIP.insert(txn, GOSSIP_KEY, &state)?;
                Ok(SiteOutcome::Done)
            }
        }
    }
}

fn require_site(txn: &WriteTxn) -> Result<SiteRecord> {
    SITE.get_w(txn, SITE_KEY)?.ok_or(SecurityError::NoSite)
}

/// Checks a presented token against the site's record of it. The secret is
/// compared first (in constant time), so only a holder of the whole token
/// learns whether it was used or has expired.
pub fn check_token(
    record: Option<TokenRecord>,
    id: &str,
    secret_hash: &str,
    now_unix: u64,
) -> Result<TokenRecord> {
    let record = record.ok_or_else(|| SecurityError::UnknownToken(id.to_owned()))?;
    if !bool::from(record.secret_hash.as_bytes().ct_eq(secret_hash.as_bytes())) {
        return Err(SecurityError::TokenMismatch(id.to_owned()));
    }
    if let Some(by) = &record.used_by {
        return Err(SecurityError::TokenUsed {
            id: id.to_owned(),
            by: by.to_string(),
        });
    }
    if now_unix >= record.expires_unix {
        return Err(SecurityError::TokenExpired {
            id: id.to_owned(),
            ago_secs: now_unix - record.expires_unix,
        });
    }
    Ok(record)
}

/// Read access to the site's state.
pub mod query {
    use super::*;

    pub fn site(r: &ReadTxn) -> Result<Option<SiteRecord>> {
        Ok(SITE.get(r, SITE_KEY)?)
    }

    pub fn nodes(r: &ReadTxn) -> Result<Vec<NodeRecord>> {
        Ok(NODES.list(r)?.into_iter().map(|(_, n)| n).collect())
    }

    pub fn node(r: &ReadTxn, name: &str) -> Result<Option<NodeRecord>> {
        Ok(NODES.get(r, name)?)
    }

    pub fn token(r: &ReadTxn, id: &str) -> Result<Option<TokenRecord>> {
        Ok(TOKENS.get(r, id)?)
    }

    pub fn revocations(r: &ReadTxn) -> Result<RevocationList> {
        Ok(REVOCATIONS.get(r, REVOCATIONS_KEY)?.unwrap_or_default())
    }

    pub fn served_vos(r: &ReadTxn) -> Result<Vec<ServedVo>> {
        Ok(SERVED.list(r)?.into_iter().map(|(_, v)| v).collect())
    }

    pub fn trusted_sites(r: &ReadTxn) -> Result<Vec<TrustedSite>> {
        Ok(TRUSTED.list(r)?.into_iter().map(|(_, v)| v).collect())
    }

    pub fn gossip(r: &ReadTxn) -> Result<GossipState> {
        Ok(GOSSIP.get(r, GOSSIP_KEY)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests;
