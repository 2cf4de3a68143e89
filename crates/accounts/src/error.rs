//! Errors of account mapping. Refusals are worded for the person who will
//! read them: what is wrong and what to do about it.

use std::path::PathBuf;

use xtreem_store::StoreError;

pub type Result<T, E = AccountsError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("invalid account pool setting {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },

    #[error(
        "{kind} {name} (id {id}) in {file} lies inside the account pool {min}-{max}; mapped accounts would share its files and processes, so choose a pool that no local account uses"
    )]
    HostAccountInPool {
        kind: &'static str,
        name: String,
        id: u32,
        file: PathBuf,
        min: u32,
        max: u32,
    },

    #[error("invalid VO identity: {field} {reason}")]
    InvalidIdentity { field: &'static str, reason: String },

    #[error(
        "no free uid in the account pool {min}-{max}: {leased} leased and {quarantined} in quarantine; widen the pool (uid_min/uid_max) or shorten idle_timeout or quarantine"
    )]
    UidPoolExhausted {
        min: u32,
        max: u32,
        leased: usize,
        quarantined: usize,
    },

    #[error(
        "no free gid in the group pool {min}-{max}: all {groups} are held by VOs; widen the pool (gid_min/gid_max)"
    )]
    GidPoolExhausted { min: u32, max: u32, groups: usize },

    #[error("uid {0} is not leased on this node")]
    UnknownLease(u32),

    #[error("uid {uid} is already leased (to {holder})")]
    UidLeased { uid: u32, holder: String },

    #[error("uid {uid} is in quarantine until unix time {until_unix} and cannot be leased")]
    UidQuarantined { uid: u32, until_unix: u64 },

    #[error("{identity} already holds uid {uid} on this node")]
    IdentityLeased { identity: String, uid: u32 },

    #[error("id {0} is a system id (below 1000, or 65534/65535) and is never leased")]
    SystemId(u32),

    #[error("group of VO {vo}: {reason}")]
    VoGroup { vo: String, reason: String },

    #[error("uid {0} is not in quarantine")]
    NotQuarantined(u32),

    #[error("the quarantine of uid {uid} lasts {remaining_secs} s more")]
    QuarantineNotOver { uid: u32, remaining_secs: u64 },

    #[error(
        "uid {0} has not been cleaned up since its release; its processes and scratch files must be gone before it is reused"
    )]
    NotCleaned(u32),

    #[error(
        "{count} processes of uid {uid} still run after repeated SIGKILL (pids {pids:?}, perhaps stuck in uninterruptible IO); the uid stays in quarantine and cleanup is retried"
    )]
    ProcessesSurvived {
        uid: u32,
        count: usize,
        pids: Vec<i32>,
    },

    #[error(
        "{path} is on another file system than the scratch tree (something is mounted there); it was left in place, unmount it and retry"
    )]
    MountInTree { path: PathBuf },

    #[error(
        "{path} is a symbolic link or not a directory; refusing to use it as a scratch directory"
    )]
    NotADirectory { path: PathBuf },

    #[error(
        "scratch directory {path} already exists and belongs to uid {owner}; it may hold someone else's files, so it is not handed over; remove it by hand if it is stale"
    )]
    ScratchOwned { path: PathBuf, owner: u32 },

    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AccountsError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<std::io::Error>,
    ) -> Self {
        AccountsError::Io {
            action,
            path: path.into(),
            source: source.into(),
        }
    }
}
