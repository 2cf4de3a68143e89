//! What the VO service stores and shows.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoState {
    Active,
    Suspended,
}

/// A signing key's life: published ahead of use (`Next`), used to sign
/// (`Active`, one per VO), still published so older credentials verify
/// (`Retired`), or withdrawn: refused at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Next,
    Active,
    Retired,
    Withdrawn,
}

impl KeyState {
    /// Keys that nodes trust.
    pub fn is_published(self) -> bool {
        !matches!(self, KeyState::Withdrawn)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoKey {
    pub kid: String,
    /// Ed25519 public key, base64url (JWK `x`).
    pub x: String,
    pub state: KeyState,
    pub created_unix: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vo {
    pub name: String,
    pub issuer: String,
    pub state: VoState,
    pub created_unix: u64,
    /// Group paths, the VO's root `/NAME` first.
    pub groups: BTreeSet<String>,
    pub keys: Vec<VoKey>,
}

impl Vo {
    pub fn root(&self) -> String {
        format!("/{}", self.name)
    }

    pub fn active_key(&self) -> Option<&VoKey> {
        self.keys.iter().find(|k| k.state == KeyState::Active)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    Requested,
    Active,
    Rejected,
    Removed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub vo: String,
    pub user: String,
    pub state: MemberState,
    /// Group path -> roles held there.
    pub roles: BTreeMap<String, BTreeSet<String>>,
    pub since_unix: u64,
}

impl Member {
    /// The highest rank this member holds on `group` or an ancestor.
    pub fn rank_on(&self, group: &str) -> u8 {
        self.roles
            .iter()
            .filter(|(g, _)| group == g.as_str() || group.starts_with(&format!("{g}/")))
            .flat_map(|(_, roles)| roles.iter().map(|r| role_rank(r)))
            .max()
            .unwrap_or(0)
    }

    /// `GROUP:ROLE` pairs for a credential.
    pub fn role_claims(&self) -> Vec<String> {
        self.roles
            .iter()
            .flat_map(|(g, roles)| roles.iter().map(move |r| format!("{g}:{r}")))
            .collect()
    }

    pub fn groups(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }
}

/// `member` < custom roles < `admin`.
pub fn role_rank(role: &str) -> u8 {
    match role {
        "admin" => 3,
        "member" => 1,
        _ => 2,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// argon2id PHC string; never leaves the service.
    pub password_hash: String,
    pub created_unix: u64,
}
