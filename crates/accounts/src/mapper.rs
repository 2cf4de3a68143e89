//! The account mapper of a node: hands out leases, tracks their use, and
//! releases, cleans and recycles uids.
//!
//! Durable state (leases, VO groups, quarantine) changes only through
//! [`AccountMachine`] commands. Last-use times are soft state kept in
//! memory: they change on every job, and writing each one would put the
//! store on the path of every job start. After a restart every lease counts
//! as used at that moment, so a restart can delay a release by at most one
//! idle timeout and never hastens one.
//!
//! A uid's life: free → leased (`map`) → quarantined, not yet cleaned
//! (`release`, `release_idle`) → quarantined and cleaned (processes killed,
//! scratch removed) → free again (`end_quarantines`, which cleans once more
//! before giving the uid back).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use xtreem_store::Store;
use xtreem_util::time::unix_now;

use crate::cleanup::{CleanupStats, clean_uid};
use crate::config::{PoolConfig, check_host_accounts, is_system_id};
use crate::identity::{group_name, user_name};
use crate::machine::{
    AccountCommand, AccountMachine, AccountOutcome, LeaseRecord, QuarantineRecord, query,
};
use crate::{AccountsError, Result, VoIdentity, tree};

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// A leased local account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub uid: u32,
    pub gid: u32,
    /// `xvo-<vo>-<uid>`; for display and logs, not in /etc/passwd.
    pub user_name: String,
    /// `xvo-<vo>`; for display and logs, not in /etc/group.
    pub group_name: String,
    pub identity: VoIdentity,
    pub leased_unix: u64,
    pub last_used_unix: u64,
}

/// Where an account listed by [`AccountMapper::list`] stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountState {
    Leased {
        leased_unix: u64,
        last_used_unix: u64,
    },
    /// Released; the uid waits before reuse.
    Quarantined {
        released_unix: u64,
        until_unix: u64,
        /// Whether its processes and files were found gone.
        cleaned: bool,
    },
}

/// One line of `xos node accounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingView {
    pub uid: u32,
    pub gid: u32,
    pub user_name: String,
    pub group_name: String,
    /// The holder, or for a quarantined uid the last holder.
    pub identity: VoIdentity,
    pub state: AccountState,
}

/// What releasing one lease did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseReport {
    pub uid: u32,
    pub identity: VoIdentity,
    pub quarantine_until_unix: u64,
    pub processes_killed: u32,
    pub files_removed: u64,
    /// Why the cleanup did not finish, if it did not. The uid stays in
    /// quarantine and later sweeps retry until it succeeds.
    pub cleanup_error: Option<String>,
}

/// What one periodic sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub released: Vec<ReleaseReport>,
    /// uids whose quarantine ended: they may be leased again.
    pub returned_to_pool: Vec<u32>,
}

/// Maps VO identities to local accounts on this node. One per node and
/// store: the in-memory last-use times assume no other mapper changes the
/// same tables.
pub struct AccountMapper {
    store: Arc<Store>,
    config: PoolConfig,
    /// Last use of each leased uid. Its lock also serialises lease and
    /// release decisions, so an id chosen from a snapshot is still free when
    /// its command applies and a lease being used is not released.
    last_used: Mutex<HashMap<u32, u64>>,
}

impl AccountMapper {
    /// Validates `config`, refuses a pool that overlaps accounts in
    /// /etc/passwd or /etc/group (read only), and loads the leases.
    pub fn open(store: Arc<Store>, config: PoolConfig) -> Result<AccountMapper> {
        config.validate()?;
        check_host_accounts(&config, Path::new(PASSWD), Path::new(GROUP))?;
        warn_if_unreachable(&config.scratch_root);
        let now = unix_now();
        let leases = store.read(query::leases)?;
        let last_used = leases.iter().map(|l| (l.uid, now)).collect();
        Ok(AccountMapper {
            store,
            config,
            last_used: Mutex::new(last_used),
        })
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, u64>> {
        // The map holds plain timestamps; one left half-updated by a panic
        // is still usable.
        self.last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The account of `identity`: its current lease (which counts as a use),
    /// or a new lease of the lowest uid that is neither leased nor
    /// quarantined, in the group of the identity's VO (created with the
    /// lowest free gid for a VO new to this node).
    pub fn map(&self, identity: &VoIdentity) -> Result<Mapping> {
        identity.validate()?;
        let now = unix_now();
        let mut last_used = self.lock();
        if let Some(lease) = self.store.read(|r| query::lease_of(r, identity))? {
            let used = last_used.entry(lease.uid).or_insert(now);
            *used = (*used).max(now);
            return Ok(mapping(&lease, *used));
        }
        let (uid, new_vo_gid) = self.store.read(|r| self.choose(r, identity))?;
        let outcome = self.store.execute(
            &AccountMachine,
            AccountCommand::Lease {
                identity: identity.clone(),
                uid,
                new_vo_gid,
                now_unix: now,
            },
        )?;
        let AccountOutcome::Leased(lease) = outcome else {
            unreachable!("a lease command answers with the lease");
        };
        last_used.insert(uid, now);
        tracing::info!(uid, gid = lease.gid, identity = %identity, "account leased");
        Ok(mapping(&lease, now))
    }

    /// Picks the lowest free uid and, for a VO without a group, the lowest
    /// free gid.
    fn choose(
        &self,
        r: &xtreem_store::ReadTxn,
        identity: &VoIdentity,
    ) -> Result<(u32, Option<u32>)> {
        let leases = query::leases(r)?;
        let quarantined = query::quarantined(r)?;
        let taken: BTreeSet<u32> = leases
            .iter()
            .map(|l| l.uid)
            .chain(quarantined.iter().map(|q| q.uid))
            .collect();
        let uid = lowest_free(self.config.uid_min, self.config.uid_max, &taken).ok_or(
            AccountsError::UidPoolExhausted {
                min: self.config.uid_min,
                max: self.config.uid_max,
                leased: leases.len(),
                quarantined: quarantined.len(),
            },
        )?;
        if query::vo_group(r, &identity.vo)?.is_some() {
            return Ok((uid, None));
        }
        let groups = query::vo_groups(r)?;
        let used: BTreeSet<u32> = groups.iter().map(|g| g.gid).collect();
        let gid = lowest_free(self.config.gid_min, self.config.gid_max, &used).ok_or(
            AccountsError::GidPoolExhausted {
                min: self.config.gid_min,
                max: self.config.gid_max,
                groups: groups.len(),
            },
        )?;
        Ok((uid, Some(gid)))
    }

    /// Marks `uid` as used now, postponing its release. The job layer calls
    /// it while it runs work for the account.
    pub fn touch(&self, uid: u32) -> Result<()> {
        let now = unix_now();
        match self.lock().get_mut(&uid) {
            Some(used) => {
                *used = (*used).max(now);
                Ok(())
            }
            None => Err(AccountsError::UnknownLease(uid)),
        }
    }

    /// The current lease of `uid`, if any.
    pub fn get(&self, uid: u32) -> Result<Option<Mapping>> {
        let Some(lease) = self.store.read(|r| query::lease(r, uid))? else {
            return Ok(None);
        };
        let used = self.lock().get(&uid).copied().unwrap_or(lease.leased_unix);
        Ok(Some(mapping(&lease, used)))
    }

    /// Leases and quarantined uids in uid order, for `xos node accounts`.
    /// Who may see it (site administrators) is the caller's check.
    pub fn list(&self) -> Result<Vec<MappingView>> {
        let (leases, quarantined, groups) = self.store.read(|r| {
            Ok::<_, AccountsError>((
                query::leases(r)?,
                query::quarantined(r)?,
                query::vo_groups(r)?,
            ))
        })?;
        let last_used = self.lock().clone();
        let group_of = |vo: &str, gid: u32| {
            // A quarantined uid's group is still its VO's.
            groups
                .iter()
                .find(|g| g.vo == vo)
                .map_or_else(|| group_name(vo, gid), |g| group_name(&g.vo, g.gid))
        };
        let mut views: Vec<MappingView> = leases
            .into_iter()
            .map(|l| MappingView {
                uid: l.uid,
                gid: l.gid,
                user_name: user_name(&l.identity.vo, l.uid),
                group_name: group_of(&l.identity.vo, l.gid),
                state: AccountState::Leased {
                    leased_unix: l.leased_unix,
                    last_used_unix: last_used.get(&l.uid).copied().unwrap_or(l.leased_unix),
                },
                identity: l.identity,
            })
            .collect();
        views.extend(quarantined.into_iter().map(|q| MappingView {
            uid: q.uid,
            gid: q.gid,
            user_name: user_name(&q.identity.vo, q.uid),
            group_name: group_of(&q.identity.vo, q.gid),
            state: AccountState::Quarantined {
                released_unix: q.released_unix,
                until_unix: q.until_unix,
                cleaned: q.cleaned_unix.is_some(),
            },
            identity: q.identity,
        }));
        views.sort_by_key(|v| v.uid);
        Ok(views)
    }

    /// Releases the lease of `uid` now, whether idle or not: records the
    /// release and quarantine, then kills the uid's processes and removes its
    /// files.
    pub fn release(&self, uid: u32, now_unix: u64) -> Result<ReleaseReport> {
        let released = {
            let mut last_used = self.lock();
            let released = self.record_release(uid, now_unix)?;
            last_used.remove(&uid);
            released
        };
        Ok(self.clean_released(released, now_unix))
    }

    /// Releases every lease unused for at least the idle timeout (with a
    /// zero timeout, every lease), then cleans up after each.
    pub fn release_idle(&self, now_unix: u64) -> Result<Vec<ReleaseReport>> {
        let idle_secs = self.config.idle_timeout.as_secs();
        let released = {
            let mut last_used = self.lock();
            let mut idle: Vec<u32> = last_used
                .iter()
                .filter(|&(_, &used)| now_unix.saturating_sub(used) >= idle_secs)
                .map(|(&uid, _)| uid)
                .collect();
            idle.sort_unstable();
            let mut released = Vec::with_capacity(idle.len());
            for uid in idle {
                released.push(self.record_release(uid, now_unix)?);
                last_used.remove(&uid);
            }
            released
        };
        // Cleanup may take seconds (processes to kill, trees to remove); it
        // runs without the lock so leases go on meanwhile. The uids are
        // quarantined already, so nobody can get them in between.
        Ok(released
            .into_iter()
            .map(|r| self.clean_released(r, now_unix))
            .collect())
    }

    /// Records the release of a lease; the caller holds the lock.
    fn record_release(&self, uid: u32, now_unix: u64) -> Result<QuarantineRecord> {
        let until = now_unix.saturating_add(self.config.quarantine.as_secs());
        let outcome = self.store.execute(
            &AccountMachine,
            AccountCommand::Release {
                uid,
                now_unix,
                quarantine_until_unix: until,
            },
        )?;
        let AccountOutcome::Released(q) = outcome else {
            unreachable!("a release command answers with the quarantine record");
        };
        tracing::info!(uid, until_unix = until, identity = %q.identity, "account lease released");
        Ok(q)
    }

    /// Cleans up after a released lease and records success.
    fn clean_released(&self, released: QuarantineRecord, now_unix: u64) -> ReleaseReport {
        let uid = released.uid;
        let (stats, cleanup_error) = match self.clean(uid, now_unix) {
            Ok(stats) => (stats, None),
            Err(e) => (CleanupStats::default(), Some(e.to_string())),
        };
        ReleaseReport {
            uid,
            identity: released.identity,
            quarantine_until_unix: released.until_unix,
            processes_killed: stats.processes_killed,
            files_removed: stats.files_removed,
            cleanup_error,
        }
    }

    fn clean(&self, uid: u32, now_unix: u64) -> Result<CleanupStats> {
        let stats = clean_uid(&self.config, uid)?;
        self.store.execute(
            &AccountMachine,
            AccountCommand::MarkCleaned { uid, now_unix },
        )?;
        tracing::info!(
            uid,
            processes_killed = stats.processes_killed,
            files_removed = stats.files_removed,
            "released account cleaned"
        );
        Ok(stats)
    }

    /// Returns to the pool every quarantined uid whose quarantine is over,
    /// after cleaning it once more (anything started in between, such as a
    /// cleanup that failed or a crash before it ran, is caught here). Also
    /// retries cleanups that failed for uids still in quarantine. Returns
    /// the uids returned to the pool; uids that still cannot be cleaned stay
    /// quarantined and are logged.
    pub fn end_quarantines(&self, now_unix: u64) -> Result<Vec<u32>> {
        let quarantined = self.store.read(query::quarantined)?;
        let mut returned = Vec::new();
        for q in quarantined {
            let over = q.until_unix <= now_unix;
            if !over && q.cleaned_unix.is_some() {
                continue;
            }
            if let Err(e) = self.clean(q.uid, now_unix) {
                tracing::warn!(uid = q.uid, error = %e, "quarantined uid could not be cleaned; it stays quarantined");
                continue;
            }
            if over {
                self.store.execute(
                    &AccountMachine,
                    AccountCommand::EndQuarantine {
                        uid: q.uid,
                        now_unix,
                    },
                )?;
                tracing::info!(uid = q.uid, "quarantine over; uid back in the pool");
                returned.push(q.uid);
            }
        }
        Ok(returned)
    }

    /// One periodic pass: release idle leases, then end quarantines.
    ///
    /// Blocking (it kills processes, waits for them to die and removes
    /// trees; seconds in the worst case): an async caller runs it on a
    /// blocking thread, from one worker, since two concurrent cleanups of
    /// the same uid would only get in each other's way.
    pub fn sweep(&self, now_unix: u64) -> Result<SweepReport> {
        let released = self.release_idle(now_unix)?;
        let returned_to_pool = self.end_quarantines(now_unix)?;
        Ok(SweepReport {
            released,
            returned_to_pool,
        })
    }

    /// `<scratch_root>/<uid>`: the account's node-local scratch directory.
    pub fn scratch_dir(&self, mapping: &Mapping) -> PathBuf {
        self.config.scratch_root.join(mapping.uid.to_string())
    }

    /// Creates the account's scratch directory, mode 0700, owned by its uid
    /// and gid. Refused unless `mapping` is still the uid's lease, so a stale
    /// mapping cannot create files for a quarantined uid.
    pub fn prepare_scratch(&self, mapping: &Mapping) -> Result<PathBuf> {
        match self.store.read(|r| query::lease(r, mapping.uid))? {
            Some(lease) if lease.identity == mapping.identity && lease.gid == mapping.gid => {}
            _ => return Err(AccountsError::UnknownLease(mapping.uid)),
        }
        tree::prepare_scratch(&self.config.scratch_root, mapping.uid, mapping.gid)
    }
}

fn mapping(lease: &LeaseRecord, last_used_unix: u64) -> Mapping {
    Mapping {
        uid: lease.uid,
        gid: lease.gid,
        user_name: user_name(&lease.identity.vo, lease.uid),
        group_name: group_name(&lease.identity.vo, lease.gid),
        identity: lease.identity.clone(),
        leased_unix: lease.leased_unix,
        last_used_unix,
    }
}

/// Lowest id in `min..=max` not in `taken` and not a system id.
fn lowest_free(min: u32, max: u32, taken: &BTreeSet<u32>) -> Option<u32> {
    (min..=max).find(|id| !taken.contains(id) && !is_system_id(*id))
}

/// Mapped users must traverse every parent of the scratch root; say so early
/// if one of them forbids it (such as a data dir of mode 0700).
fn warn_if_unreachable(scratch_root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for dir in scratch_root.ancestors().skip(1) {
        if let Ok(meta) = std::fs::metadata(dir)
            && meta.permissions().mode() & 0o001 == 0
        {
            tracing::warn!(
                scratch_root = %scratch_root.display(),
                blocking = %dir.display(),
                "mapped accounts cannot reach their scratch directories: a parent directory is not searchable by others; set scratch_root elsewhere"
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests;
