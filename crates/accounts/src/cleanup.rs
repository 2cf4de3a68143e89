//! What a released uid leaves behind, removed before anyone else may get the
//! uid: its processes, its scratch directory, and its entries in shared
//! temporary directories.

use crate::config::PoolConfig;
use crate::{Result, procs, tree};

/// What one cleanup found and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupStats {
    pub processes_killed: u32,
    /// Files, links and directories removed.
    pub files_removed: u64,
}

/// Kills every process of `uid`, then removes its scratch directory and its
/// entries in the shared temporary directories.
///
/// Processes go first so that none of them can write new files while the
/// directories are emptied. A failure in one directory does not stop the
/// others; the first error is returned after all were tried, and the caller
/// keeps the uid quarantined so the cleanup runs again.
pub fn clean_uid(config: &PoolConfig, uid: u32) -> Result<CleanupStats> {
    let processes_killed = procs::kill_all(uid)?;
    let mut files_removed = 0;
    let mut first_error = None;
    let mut attempt = |result: Result<u64>| match result {
        Ok(n) => files_removed += n,
        Err(e) => {
            tracing::warn!(uid, error = %e, "cleanup of a released uid is incomplete");
            first_error.get_or_insert(e);
        }
    };
    attempt(tree::remove_scratch(&config.scratch_root, uid));
    for dir in &config.shared_tmp_dirs {
        attempt(tree::remove_owned_entries(dir, uid));
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(CleanupStats {
        processes_killed,
        files_removed,
    })
}
