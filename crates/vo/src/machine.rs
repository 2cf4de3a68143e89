//! The VO state machine. Who may do what is decided here, from the state,
//! so the rule holds wherever the command is applied.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use xtreem_store::{ReadTxn, StateMachine, Table, WriteTxn};

use crate::VoError;
use crate::model::{KeyState, Member, MemberState, User, Vo, VoKey, VoState, role_rank};

const VOS: Table<Vo> = Table::new("vo_vos");
const MEMBERS: Table<Member> = Table::new("vo_members");
const USERS: Table<User> = Table::new("vo_users");

/// Who asks for a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// Holder of a site administrator certificate.
    SiteAdmin(String),
    /// A VO user, as authenticated by a credential.
    User(String),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::SiteAdmin(n) => write!(f, "site admin {n}"),
            Actor::User(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum VoCommand {
    CreateVo {
        name: String,
        issuer: String,
        first_admin: Option<String>,
        key: VoKey,
        by: Actor,
        now_unix: u64,
    },
    DeleteVo {
        name: String,
        by: Actor,
    },
    SetState {
        name: String,
        state: VoState,
        by: Actor,
    },
    CreateGroup {
        vo: String,
        path: String,
        by: Actor,
    },
    AddUser {
        name: String,
        password_hash: String,
        now_unix: u64,
    },
    RequestJoin {
        vo: String,
        user: String,
        now_unix: u64,
    },
    Decide {
        vo: String,
        user: String,
        approve: bool,
        by: Actor,
        now_unix: u64,
    },
    RemoveMember {
        vo: String,
        user: String,
        by: Actor,
    },
    GrantRole {
        vo: String,
        user: String,
        group: String,
        role: String,
        by: Actor,
    },
    RevokeRole {
        vo: String,
        user: String,
        group: String,
        role: String,
        by: Actor,
    },
    AddKey {
        vo: String,
        key: VoKey,
        by: Actor,
    },
    ActivateKey {
        vo: String,
        kid: String,
        by: Actor,
    },
    WithdrawKey {
        vo: String,
        kid: String,
        by: Actor,
    },
}

pub struct VoMachine;

fn member_key(vo: &str, user: &str) -> String {
    format!("{vo}/{user}")
}

fn check_name(what: &'static str, name: &str) -> Result<(), VoError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(VoError::Invalid {
            what,
            reason: format!("{name:?}: use 1-63 of a-z, 0-9, '-', '_', '.'"),
        })
    }
}

fn load_vo(txn: &WriteTxn, name: &str) -> Result<Vo, VoError> {
    VOS.get_w(txn, name)?
        .ok_or_else(|| VoError::UnknownVo(name.to_owned()))
}

fn active_vo(txn: &WriteTxn, name: &str) -> Result<Vo, VoError> {
    let vo = load_vo(txn, name)?;
    if vo.state == VoState::Suspended {
        return Err(VoError::Suspended(name.to_owned()));
    }
    Ok(vo)
}

/// The rank `by` holds on `group` of `vo` (site admins hold every rank).
fn rank_of(txn: &WriteTxn, vo: &str, group: &str, by: &Actor) -> Result<u8, VoError> {
    match by {
        Actor::SiteAdmin(_) => Ok(u8::MAX),
        Actor::User(user) => Ok(match MEMBERS.get_w(txn, &member_key(vo, user))? {
            Some(m) if m.state == MemberState::Active => m.rank_on(group),
            _ => 0,
        }),
    }
}

fn require_admin(
    txn: &WriteTxn,
    vo: &str,
    group: &str,
    by: &Actor,
    doing: &str,
) -> Result<(), VoError> {
    if rank_of(txn, vo, group, by)? >= role_rank("admin") {
        Ok(())
    } else {
        Err(VoError::Denied(format!(
            "{doing} needs the admin role on {group}, which {by} does not hold"
        )))
    }
}

fn active_member(txn: &WriteTxn, vo: &str, user: &str) -> Result<Member, VoError> {
    match MEMBERS.get_w(txn, &member_key(vo, user))? {
        Some(m) if m.state == MemberState::Active => Ok(m),
        _ => Err(VoError::NotMember {
            user: user.to_owned(),
            vo: vo.to_owned(),
        }),
    }
}

impl StateMachine for VoMachine {
    const NAME: &'static str = "vo";
    type Command = VoCommand;
    type Output = ();
    type Error = VoError;

    fn apply(&self, txn: &WriteTxn, command: &VoCommand) -> Result<(), VoError> {
        match command {
            VoCommand::CreateVo {
                name,
                issuer,
                first_admin,
                key,
                by,
                now_unix,
            } => {
                if !matches!(by, Actor::SiteAdmin(_)) {
                    return Err(VoError::Denied(
                        "only a site administrator creates VOs".into(),
                    ));
                }
                check_name("VO name", name)?;
                if VOS.get_w(txn, name)?.is_some() {
                    return Err(VoError::VoExists(name.clone()));
                }
                let root = format!("/{name}");
                let mut active_key = key.clone();
                active_key.state = KeyState::Active;
                VOS.insert(
                    txn,
                    name,
                    &Vo {
                        name: name.clone(),
                        issuer: issuer.clone(),
                        state: VoState::Active,
                        created_unix: *now_unix,
                        groups: BTreeSet::from([root.clone()]),
                        keys: vec![active_key],
                    },
                )?;
                if let Some(admin) = first_admin {
                    if USERS.get_w(txn, admin)?.is_none() {
                        return Err(VoError::UnknownUser(admin.clone()));
                    }
                    let roles = BTreeMap::from([(
                        root,
                        BTreeSet::from(["admin".to_owned(), "member".to_owned()]),
                    )]);
                    MEMBERS.insert(
                        txn,
                        &member_key(name, admin),
                        &Member {
                            vo: name.clone(),
                            user: admin.clone(),
                            state: MemberState::Active,
                            roles,
                            since_unix: *now_unix,
                        },
                    )?;
                }
                Ok(())
            }
            VoCommand::DeleteVo { name, by } => {
                let vo = load_vo(txn, name)?;
                require_admin(txn, name, &vo.root(), by, "deleting a VO")?;
                for (key, member) in MEMBERS.list_w(txn)? {
                    if member.vo == *name {
                        MEMBERS.remove(txn, &key)?;
                    }
                }
                VOS.remove(txn, name)?;
                Ok(())
            }
            VoCommand::SetState { name, state, by } => {
                let mut vo = load_vo(txn, name)?;
                require_admin(txn, name, &vo.root(), by, "suspending or resuming a VO")?;
                vo.state = *state;
                VOS.insert(txn, name, &vo)?;
                Ok(())
            }
            VoCommand::CreateGroup { vo, path, by } => {
                let mut record = active_vo(txn, vo)?;
                let (parent, leaf) = path.rsplit_once('/').ok_or_else(|| VoError::Invalid {
                    what: "group",
                    reason: format!("{path:?} is not a path like /{vo}/group"),
                })?;
                check_name("group name", leaf)?;
                if !record.groups.contains(parent) {
                    return Err(VoError::UnknownGroup(parent.to_owned()));
                }
                if record.groups.contains(path) {
                    return Err(VoError::GroupExists(path.clone()));
                }
                require_admin(
                    txn,
                    vo,
                    parent,
                    by,
                    &format!("creating a group under {parent}"),
                )?;
                record.groups.insert(path.clone());
                VOS.insert(txn, vo, &record)?;
                Ok(())
            }
            VoCommand::AddUser {
                name,
                password_hash,
                now_unix,
            } => {
                check_name("user name", name)?;
                if USERS.get_w(txn, name)?.is_some() {
                    return Err(VoError::UserExists(name.clone()));
                }
                USERS.insert(
                    txn,
                    name,
                    &User {
                        name: name.clone(),
                        password_hash: password_hash.clone(),
                        created_unix: *now_unix,
                    },
                )?;
                Ok(())
            }
            VoCommand::RequestJoin { vo, user, now_unix } => {
                active_vo(txn, vo)?;
                if USERS.get_w(txn, user)?.is_none() {
                    return Err(VoError::UnknownUser(user.clone()));
                }
                let key = member_key(vo, user);
                if let Some(m) = MEMBERS.get_w(txn, &key)?
                    && matches!(m.state, MemberState::Requested | MemberState::Active)
                {
                    return Err(VoError::AlreadyRequested {
                        user: user.clone(),
                        vo: vo.clone(),
                    });
                }
                MEMBERS.insert(
                    txn,
                    &key,
                    &Member {
                        vo: vo.clone(),
                        user: user.clone(),
                        state: MemberState::Requested,
                        roles: BTreeMap::new(),
                        since_unix: *now_unix,
                    },
                )?;
                Ok(())
            }
            VoCommand::Decide {
                vo,
                user,
                approve,
                by,
                now_unix,
            } => {
                let record = active_vo(txn, vo)?;
                require_admin(txn, vo, &record.root(), by, "deciding on membership")?;
                let key = member_key(vo, user);
                let mut m = match MEMBERS.get_w(txn, &key)? {
                    Some(m) if m.state == MemberState::Requested => m,
                    _ => {
                        return Err(VoError::NoRequest {
                            user: user.clone(),
                            vo: vo.clone(),
                        });
                    }
                };
                m.since_unix = *now_unix;
                if *approve {
                    m.state = MemberState::Active;
                    m.roles =
                        BTreeMap::from([(record.root(), BTreeSet::from(["member".to_owned()]))]);
                } else {
                    m.state = MemberState::Rejected;
                }
                MEMBERS.insert(txn, &key, &m)?;
                Ok(())
            }
            VoCommand::RemoveMember { vo, user, by } => {
                let record = load_vo(txn, vo)?;
                let leaving = matches!(by, Actor::User(u) if u == user);
                if !leaving {
                    require_admin(txn, vo, &record.root(), by, "removing members")?;
                }
                let mut m = active_member(txn, vo, user)?;
                m.state = MemberState::Removed;
                m.roles.clear();
                MEMBERS.insert(txn, &member_key(vo, user), &m)?;
                Ok(())
            }
            VoCommand::GrantRole {
                vo,
                user,
                group,
                role,
                by,
            } => {
                let record = active_vo(txn, vo)?;
                check_name("role", role)?;
                if !record.groups.contains(group) {
                    return Err(VoError::UnknownGroup(group.clone()));
                }
                let own = rank_of(txn, vo, group, by)?;
                if own < role_rank("admin") {
                    return Err(VoError::Denied(format!(
                        "granting roles on {group} needs the admin role there, which {by} does not hold"
                    )));
                }
                if role_rank(role) > own {
                    return Err(VoError::Denied(format!(
                        "{by} cannot grant {role}, a role above their own on {group}"
                    )));
                }
                let mut m = active_member(txn, vo, user)?;
                m.roles
                    .entry(group.clone())
                    .or_default()
                    .insert(role.clone());
                m.roles
                    .entry(group.clone())
                    .or_default()
                    .insert("member".to_owned());
                MEMBERS.insert(txn, &member_key(vo, user), &m)?;
                Ok(())
            }
            VoCommand::RevokeRole {
                vo,
                user,
                group,
                role,
                by,
            } => {
                active_vo(txn, vo)?;
                require_admin(txn, vo, group, by, &format!("revoking roles on {group}"))?;
                let mut m = active_member(txn, vo, user)?;
                if let Some(roles) = m.roles.get_mut(group) {
                    roles.remove(role);
                    if roles.is_empty() {
                        m.roles.remove(group);
                    }
                }
                MEMBERS.insert(txn, &member_key(vo, user), &m)?;
                Ok(())
            }
            VoCommand::AddKey { vo, key, by } => {
                let mut record = active_vo(txn, vo)?;
                require_admin(txn, vo, &record.root(), by, "rotating keys")?;
                if record.keys.iter().any(|k| k.kid == key.kid) {
                    return Err(VoError::Invalid {
                        what: "key",
                        reason: format!("key id {} is taken", key.kid),
                    });
                }
                // One key waits in line at a time.
                for k in &mut record.keys {
                    if k.state == KeyState::Next {
                        k.state = KeyState::Retired;
                    }
                }
                let mut next = key.clone();
                next.state = KeyState::Next;
                record.keys.push(next);
                VOS.insert(txn, vo, &record)?;
                Ok(())
            }
            VoCommand::ActivateKey { vo, kid, by } => {
                let mut record = active_vo(txn, vo)?;
                require_admin(txn, vo, &record.root(), by, "rotating keys")?;
                let target = record
                    .keys
                    .iter()
                    .position(|k| k.kid == *kid)
                    .ok_or_else(|| VoError::UnknownKey {
                        vo: vo.clone(),
                        kid: kid.clone(),
                    })?;
                if record.keys[target].state == KeyState::Withdrawn {
                    return Err(VoError::Invalid {
                        what: "key",
                        reason: format!("{kid} was withdrawn and cannot sign again"),
                    });
                }
                for k in &mut record.keys {
                    if k.state == KeyState::Active {
                        k.state = KeyState::Retired;
                    }
                }
                record.keys[target].state = KeyState::Active;
                VOS.insert(txn, vo, &record)?;
                Ok(())
            }
            VoCommand::WithdrawKey { vo, kid, by } => {
                let mut record = load_vo(txn, vo)?;
                require_admin(txn, vo, &record.root(), by, "withdrawing keys")?;
                let key = record
                    .keys
                    .iter_mut()
                    .find(|k| k.kid == *kid)
                    .ok_or_else(|| VoError::UnknownKey {
                        vo: vo.clone(),
                        kid: kid.clone(),
                    })?;
                if key.state == KeyState::Active {
                    return Err(VoError::Invalid {
                        what: "key",
                        reason: format!(
                            "{kid} is the key in use; activate another key first (`xos vo rotate-key {vo} --activate`)"
                        ),
                    });
                }
                key.state = KeyState::Withdrawn;
                VOS.insert(txn, vo, &record)?;
                Ok(())
            }
        }
    }
}

/// Read access to the VO service's state.
pub mod query {
    use super::*;

    pub fn vo(r: &ReadTxn, name: &str) -> Result<Option<Vo>, VoError> {
        Ok(VOS.get(r, name)?)
    }

    pub fn vos(r: &ReadTxn) -> Result<Vec<Vo>, VoError> {
        Ok(VOS.list(r)?.into_iter().map(|(_, v)| v).collect())
    }

    pub fn member(r: &ReadTxn, vo: &str, user: &str) -> Result<Option<Member>, VoError> {
        Ok(MEMBERS.get(r, &member_key(vo, user))?)
    }

    pub fn members(r: &ReadTxn, vo: &str) -> Result<Vec<Member>, VoError> {
        Ok(MEMBERS
            .list(r)?
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| m.vo == vo)
            .collect())
    }

    pub fn memberships(r: &ReadTxn, user: &str) -> Result<Vec<Member>, VoError> {
        Ok(MEMBERS
            .list(r)?
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| m.user == user && m.state == MemberState::Active)
            .collect())
    }

    pub fn user(r: &ReadTxn, name: &str) -> Result<Option<User>, VoError> {
        Ok(USERS.get(r, name)?)
    }
}

#[cfg(test)]
mod tests;
