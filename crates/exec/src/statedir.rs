//! Where the executor keeps its units' state directories.
//!
//! A unit's state (spec, lock, log, start and exit records) only has to
//! outlive the daemon, not the machine: the supervisors die with the host.
//! So it belongs in memory, as systemd's `RuntimeDirectory` does: on ext4,
//! creating and deleting the half-dozen small files of every unit cost
//! about as much CPU as the rest of a launch (`perf`: the inode allocator's
//! `recently_deleted` scan). The first tmpfs of `/run` and `/dev/shm` is
//! used; without one, the node's data directory.
//!
//! `/dev/shm` is writable by everyone, so the `xtreem` directory created
//! there must be ours alone: [`prepare_private_parent`] refuses one that
//! another user created or can write.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::ExecError;

/// Candidate in-memory bases, in order of preference.
const RUNTIME_BASES: [&str; 2] = ["/run", "/dev/shm"];

/// The state directory of the node `node` whose data lives in `data_dir`:
/// `<tmpfs>/xtreem/<cgroup parent>` on the first tmpfs of `/run` and
/// `/dev/shm`, else `<data_dir>/units`.
pub fn state_dir_for(node: &str, data_dir: &Path) -> PathBuf {
    let name = crate::cgroup_parent_for(node, data_dir);
    RUNTIME_BASES
        .iter()
        .map(Path::new)
        .find(|base| is_tmpfs(base))
        .map(|base| base.join("xtreem").join(&name))
        .unwrap_or_else(|| data_dir.join("units"))
}

/// Whether `path` is on a tmpfs.
pub fn is_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

/// Creates `root`'s parent (mode 0700) if missing and checks that it is a
/// real directory owned by this process's user that nobody else can write:
/// otherwise another local user could swap the unit directories the
/// supervisors (root) read their specs from.
pub fn prepare_private_parent(root: &Path) -> Result<(), ExecError> {
    let Some(parent) = root.parent() else {
        return Ok(());
    };
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(ExecError::io(format!("creating {}", parent.display()), e)),
    }
    let meta = fs::symlink_metadata(parent)
        .map_err(|e| ExecError::io(format!("inspecting {}", parent.display()), e))?;
    // SAFETY: geteuid has no side effects.
    let me = unsafe { libc::geteuid() };
    if !meta.file_type().is_dir() {
        return Err(unsafe_parent(parent, "is not a directory (a link?)"));
    }
    if meta.uid() != me {
        return Err(unsafe_parent(
            parent,
            &format!(
                "belongs to uid {}, not to this daemon's uid {me}",
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_parent(
            parent,
            &format!("is writable by others (mode {:o})", meta.mode() & 0o7777),
        ));
    }
    Ok(())
}

fn unsafe_parent(parent: &Path, why: &str) -> ExecError {
    ExecError::Refused(format!(
        "{} {why}: remove it (another user may have planted it) or set [jobs] state_dir",
        parent.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_state_dir_is_per_node_and_data_dir() {
        let a = state_dir_for("n1", Path::new("/var/lib/a"));
        let b = state_dir_for("n1", Path::new("/var/lib/b"));
        let c = state_dir_for("n2", Path::new("/var/lib/a"));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(
            a.ends_with(crate::cgroup_parent_for("n1", Path::new("/var/lib/a")))
                || a.ends_with("units")
        );
    }

    #[test]
    fn a_tmpfs_base_is_preferred_when_there_is_one() {
        let dir = state_dir_for("n1", Path::new("/var/lib/a"));
        let on_tmpfs = RUNTIME_BASES.iter().any(|b| is_tmpfs(Path::new(b)));
        assert_eq!(
            dir.starts_with("/var/lib/a"),
            !on_tmpfs,
            "{}",
            dir.display()
        );
    }

    #[test]
    fn a_parent_others_can_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("xtreem");
        let root = parent.join("node");
        prepare_private_parent(&root).unwrap();
        assert_eq!(fs::metadata(&parent).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare_private_parent(&root).unwrap_err().to_string();
        assert!(err.contains("writable by others"), "{err}");
    }

    #[test]
    fn a_link_in_place_of_the_parent_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
        let parent = tmp.path().join("xtreem");
        std::os::unix::fs::symlink(&elsewhere, &parent).unwrap();
        let err = prepare_private_parent(&parent.join("node"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a directory"), "{err}");
    }
}
