//! The node's account leases as a state machine: leases, VO groups and
//! quarantined uids.
//!
//! Every command carries the time it was decided at and the ids chosen for
//! it, so applying is deterministic; `apply` checks that the choice is still
//! valid (the uid free, the gid unused) instead of choosing. Last-use times
//! are not here: they change on every job and live in memory (see
//! [`crate::AccountMapper`]).

use serde::{Deserialize, Serialize};
use xtreem_store::{ReadTxn, StateMachine, Table, WriteTxn};

use crate::config::is_system_id;
use crate::{AccountsError, Result, VoIdentity};

/// Leases by uid.
const LEASES: Table<LeaseRecord> = Table::new("accounts_leases");
/// uid of each leased identity, by [`VoIdentity::store_key`].
const BY_IDENTITY: Table<u32> = Table::new("accounts_identities");
/// The group of each VO that ever had a lease here, by VO name. Groups are
/// kept when leases end so a VO's files keep one gid.
const VO_GROUPS: Table<VoGroupRecord> = Table::new("accounts_vo_groups");
/// Released uids waiting before reuse, by uid.
const QUARANTINE: Table<QuarantineRecord> = Table::new("accounts_quarantine");

/// Table key of a uid: fixed width, so key order is numeric order.
fn uid_key(uid: u32) -> String {
    format!("{uid:010}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub identity: VoIdentity,
    pub uid: u32,
    pub gid: u32,
    pub leased_unix: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoGroupRecord {
    pub vo: String,
    pub gid: u32,
    pub created_unix: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub uid: u32,
    pub gid: u32,
    /// The identity that held the uid last.
    pub identity: VoIdentity,
    pub released_unix: u64,
    pub until_unix: u64,
    /// When processes and files of the uid were last found gone; `None`
    /// until a cleanup succeeds (for instance after a crash right after the
    /// release was recorded).
    pub cleaned_unix: Option<u64>,
}

/// Changes to the account leases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AccountCommand {
    /// Lease `uid` to `identity`. `new_vo_gid` is the gid chosen for the VO
    /// when it has no group yet, and `None` when it has one.
    Lease {
        identity: VoIdentity,
        uid: u32,
        new_vo_gid: Option<u32>,
        now_unix: u64,
    },
    /// End the lease of `uid` and quarantine it until `quarantine_until_unix`.
    Release {
        uid: u32,
        now_unix: u64,
        quarantine_until_unix: u64,
    },
    /// Processes and files of the quarantined `uid` were found gone.
    MarkCleaned { uid: u32, now_unix: u64 },
    /// Return a cleaned uid whose quarantine is over to the pool.
    EndQuarantine { uid: u32, now_unix: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountOutcome {
    Leased(LeaseRecord),
    Released(QuarantineRecord),
    Cleaned,
    QuarantineEnded,
}

/// The account lease state machine.
pub struct AccountMachine;

impl StateMachine for AccountMachine {
    const NAME: &'static str = "accounts";
    type Command = AccountCommand;
    type Output = AccountOutcome;
    type Error = AccountsError;

    fn apply(&self, txn: &WriteTxn, command: &AccountCommand) -> Result<AccountOutcome> {
        match command {
            AccountCommand::Lease {
                identity,
                uid,
                new_vo_gid,
                now_unix,
            } => lease(txn, identity, *uid, *new_vo_gid, *now_unix),
            AccountCommand::Release {
                uid,
                now_unix,
                quarantine_until_unix,
            } => {
                let key = uid_key(*uid);
                let lease = LEASES
                    .get_w(txn, &key)?
                    .ok_or(AccountsError::UnknownLease(*uid))?;
                LEASES.remove(txn, &key)?;
                BY_IDENTITY.remove(txn, &lease.identity.store_key())?;
                let record = QuarantineRecord {
                    uid: *uid,
                    gid: lease.gid,
                    identity: lease.identity,
                    released_unix: *now_unix,
                    until_unix: *quarantine_until_unix,
                    cleaned_unix: None,
                };
                QUARANTINE.insert(txn, &key, &record)?;
                Ok(AccountOutcome::Released(record))
            }
            AccountCommand::MarkCleaned { uid, now_unix } => {
                let key = uid_key(*uid);
                let mut record = QUARANTINE
                    .get_w(txn, &key)?
                    .ok_or(AccountsError::NotQuarantined(*uid))?;
                record.cleaned_unix = Some(*now_unix);
                QUARANTINE.insert(txn, &key, &record)?;
                Ok(AccountOutcome::Cleaned)
            }
            AccountCommand::EndQuarantine { uid, now_unix } => {
                let key = uid_key(*uid);
                let record = QUARANTINE
                    .get_w(txn, &key)?
                    .ok_or(AccountsError::NotQuarantined(*uid))?;
                if *now_unix < record.until_unix {
                    return Err(AccountsError::QuarantineNotOver {
                        uid: *uid,
                        remaining_secs: record.until_unix - now_unix,
                    });
                }
                // The one invariant that protects the next holder: a uid
                // whose cleanup never succeeded is not handed out again.
                if record.cleaned_unix.is_none() {
                    return Err(AccountsError::NotCleaned(*uid));
                }
                QUARANTINE.remove(txn, &key)?;
                Ok(AccountOutcome::QuarantineEnded)
            }
        }
    }
}

fn lease(
    txn: &WriteTxn,
    identity: &VoIdentity,
    uid: u32,
    new_vo_gid: Option<u32>,
    now_unix: u64,
) -> Result<AccountOutcome> {
    identity.validate()?;
    if is_system_id(uid) {
        return Err(AccountsError::SystemId(uid));
    }
    let identity_key = identity.store_key();
    if let Some(held) = BY_IDENTITY.get_w(txn, &identity_key)? {
        return Err(AccountsError::IdentityLeased {
            identity: identity.to_string(),
            uid: held,
        });
    }
    let key = uid_key(uid);
    if let Some(existing) = LEASES.get_w(txn, &key)? {
        return Err(AccountsError::UidLeased {
            uid,
            holder: existing.identity.to_string(),
        });
    }
    if let Some(q) = QUARANTINE.get_w(txn, &key)? {
        return Err(AccountsError::UidQuarantined {
            uid,
            until_unix: q.until_unix,
        });
    }
    let gid = match (VO_GROUPS.get_w(txn, &identity.vo)?, new_vo_gid) {
        (Some(group), None) => group.gid,
        (Some(group), Some(_)) => {
            return Err(AccountsError::VoGroup {
                vo: identity.vo.clone(),
                reason: format!("it already has gid {}", group.gid),
            });
        }
        (None, None) => {
            return Err(AccountsError::VoGroup {
                vo: identity.vo.clone(),
                reason: "it has no group yet and none was chosen".into(),
            });
        }
        (None, Some(gid)) => {
            if is_system_id(gid) {
                return Err(AccountsError::SystemId(gid));
            }
            if let Some((_, other)) = VO_GROUPS
                .list_w(txn)?
                .into_iter()
                .find(|(_, g)| g.gid == gid)
            {
                return Err(AccountsError::VoGroup {
                    vo: identity.vo.clone(),
                    reason: format!("gid {gid} already belongs to VO {}", other.vo),
                });
            }
            VO_GROUPS.insert(
                txn,
                &identity.vo,
                &VoGroupRecord {
                    vo: identity.vo.clone(),
                    gid,
                    created_unix: now_unix,
                },
            )?;
            gid
        }
    };
    let record = LeaseRecord {
        identity: identity.clone(),
        uid,
        gid,
        leased_unix: now_unix,
    };
    LEASES.insert(txn, &key, &record)?;
    BY_IDENTITY.insert(txn, &identity_key, &uid)?;
    Ok(AccountOutcome::Leased(record))
}

/// Read access to the account state.
pub mod query {
    use super::*;

    /// All leases in uid order.
    pub fn leases(r: &ReadTxn) -> Result<Vec<LeaseRecord>> {
        Ok(LEASES.list(r)?.into_iter().map(|(_, l)| l).collect())
    }

    pub fn lease(r: &ReadTxn, uid: u32) -> Result<Option<LeaseRecord>> {
        Ok(LEASES.get(r, &uid_key(uid))?)
    }

    pub fn lease_of(r: &ReadTxn, identity: &VoIdentity) -> Result<Option<LeaseRecord>> {
        match BY_IDENTITY.get(r, &identity.store_key())? {
            Some(uid) => lease(r, uid),
            None => Ok(None),
        }
    }

    /// All quarantined uids in uid order.
    pub fn quarantined(r: &ReadTxn) -> Result<Vec<QuarantineRecord>> {
        Ok(QUARANTINE.list(r)?.into_iter().map(|(_, q)| q).collect())
    }

    pub fn vo_groups(r: &ReadTxn) -> Result<Vec<VoGroupRecord>> {
        Ok(VO_GROUPS.list(r)?.into_iter().map(|(_, g)| g).collect())
    }

    pub fn vo_group(r: &ReadTxn, vo: &str) -> Result<Option<VoGroupRecord>> {
        Ok(VO_GROUPS.get(r, vo)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtreem_store::Store;

    fn alice() -> VoIdentity {
        VoIdentity::new("ca", "alice", "bio")
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        (dir, store)
    }

    fn lease_cmd(identity: VoIdentity, uid: u32, gid: Option<u32>) -> AccountCommand {
        AccountCommand::Lease {
            identity,
            uid,
            new_vo_gid: gid,
            now_unix: 100,
        }
    }

    #[test]
    fn refuses_a_taken_uid_a_second_lease_and_a_system_uid() {
        let (_d, s) = store();
        s.execute(&AccountMachine, lease_cmd(alice(), 200_000, Some(200_000)))
            .unwrap();
        let bob = VoIdentity::new("ca", "bob", "bio");
        let err = s
            .execute(&AccountMachine, lease_cmd(bob.clone(), 200_000, None))
            .unwrap_err();
        assert!(
            matches!(err, AccountsError::UidLeased { uid: 200_000, .. }),
            "{err}"
        );
        let err = s
            .execute(&AccountMachine, lease_cmd(alice(), 200_001, None))
            .unwrap_err();
        assert!(matches!(err, AccountsError::IdentityLeased { .. }), "{err}");
        let err = s
            .execute(&AccountMachine, lease_cmd(bob.clone(), 65_534, None))
            .unwrap_err();
        assert!(matches!(err, AccountsError::SystemId(65_534)), "{err}");
        // The VO already has a group: choosing another is refused.
        let err = s
            .execute(&AccountMachine, lease_cmd(bob, 200_001, Some(200_001)))
            .unwrap_err();
        assert!(matches!(err, AccountsError::VoGroup { .. }), "{err}");
    }

    #[test]
    fn refuses_a_gid_held_by_another_vo() {
        let (_d, s) = store();
        s.execute(&AccountMachine, lease_cmd(alice(), 200_000, Some(200_000)))
            .unwrap();
        let carol = VoIdentity::new("ca", "carol", "chem");
        let err = s
            .execute(&AccountMachine, lease_cmd(carol, 200_001, Some(200_000)))
            .unwrap_err();
        assert!(
            err.to_string().contains("already belongs to VO bio"),
            "{err}"
        );
    }

    #[test]
    fn quarantine_ends_only_when_over_and_cleaned() {
        let (_d, s) = store();
        s.execute(&AccountMachine, lease_cmd(alice(), 200_000, Some(200_000)))
            .unwrap();
        let released = s
            .execute(
                &AccountMachine,
                AccountCommand::Release {
                    uid: 200_000,
                    now_unix: 200,
                    quarantine_until_unix: 300,
                },
            )
            .unwrap();
        assert!(matches!(released, AccountOutcome::Released(ref q) if q.identity == alice()));
        let bob = VoIdentity::new("ca", "bob", "bio");
        let err = s
            .execute(&AccountMachine, lease_cmd(bob.clone(), 200_000, None))
            .unwrap_err();
        assert!(matches!(err, AccountsError::UidQuarantined { .. }), "{err}");
        let end = |now_unix| AccountCommand::EndQuarantine {
            uid: 200_000,
            now_unix,
        };
        let err = s.execute(&AccountMachine, end(299)).unwrap_err();
        assert!(
            matches!(
                err,
                AccountsError::QuarantineNotOver {
                    remaining_secs: 1,
                    ..
                }
            ),
            "{err}"
        );
        let err = s.execute(&AccountMachine, end(300)).unwrap_err();
        assert!(matches!(err, AccountsError::NotCleaned(200_000)), "{err}");
        s.execute(
            &AccountMachine,
            AccountCommand::MarkCleaned {
                uid: 200_000,
                now_unix: 250,
            },
        )
        .unwrap();
        s.execute(&AccountMachine, end(300)).unwrap();
        s.execute(&AccountMachine, lease_cmd(bob, 200_000, None))
            .unwrap();
        let leases = s.read(query::leases).unwrap();
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0].identity.subject, "bob");
        assert_eq!(leases[0].gid, 200_000);
    }
}
