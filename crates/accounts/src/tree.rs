//! File system work on directories that untrusted users wrote into:
//! removing a tree and creating a private directory, never following a
//! symbolic link and never changing anything through one.
//!
//! Everything below the trusted starting directory is reached with
//! `openat(..., O_NOFOLLOW | O_DIRECTORY)` relative to an already opened
//! parent, so a link planted anywhere in the tree (or swapped in while we
//! work) is removed as a link and its target is never touched. Trees are
//! walked with an explicit stack, not recursion, and only the nearest
//! [`FD_WINDOW`] levels keep their descriptors open (farther ancestors are
//! reached again through `..`, checked by inode), so a tree of any depth
//! neither overflows the stack nor exhausts descriptors.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, geteuid, unlinkat};

use crate::{AccountsError, Result};

/// Directory levels that keep an open descriptor during a walk.
const FD_WINDOW: usize = 32;
/// Times a directory is listed again when entries appear in it while it is
/// being emptied (only possible from a writer we did not kill).
const RELIST_MAX: u32 = 3;
/// Mode of a scratch root we create: others may pass through to their own
/// directory but not list the others.
const SCRATCH_ROOT_MODE: u32 = 0o711;
const SCRATCH_DIR_MODE: u32 = 0o700;

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn is_dir(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn c_name(name: &OsStr) -> Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| {
        AccountsError::io(
            "use",
            Path::new(name),
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        )
    })
}

/// Opens a directory the administrator configured; symlinks in that path
/// are the administrator's and are followed. `None` if it does not exist.
fn open_trusted(path: &Path) -> Result<Option<Dir>> {
    match Dir::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => Ok(Some(dir)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(AccountsError::io("open", path, e)),
    }
}

/// Names and types (when the file system tells) of the entries of `dir`,
/// without `.` and `..`.
fn read_entries(dir: &mut Dir, path: &Path) -> Result<Vec<(CString, Option<Type>)>> {
    let mut entries = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(|e| AccountsError::io("list", path, e))?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            entries.push((name.to_owned(), entry.file_type()));
        }
    }
    Ok(entries)
}

/// The walk keeps the top frame's descriptor open and reopens a parent
/// before using it; reaching a closed one is a bug, reported as an error so
/// the uid stays quarantined rather than taking the daemon down.
fn not_open(path: PathBuf) -> AccountsError {
    AccountsError::io(
        "walk",
        path,
        std::io::Error::other("directory descriptor not open (bug in the tree walk)"),
    )
}

/// One directory on the walk's stack.
struct Frame {
    /// Name inside the parent frame (or inside the base for the first).
    name: CString,
    /// Open for the top frame always, for the others while they are within
    /// [`FD_WINDOW`] levels of the top.
    dir: Option<Dir>,
    /// Inode, to check that the directory reached again through `..` is
    /// the one we left.
    ino: u64,
    /// Subdirectories found by the listing and not yet removed.
    pending: Vec<CString>,
    listed: bool,
    relisted: u32,
}

struct Walk<'a> {
    base: &'a Dir,
    base_path: &'a Path,
    /// Device of the tree's top: the walk never crosses into another file
    /// system mounted inside the tree.
    dev: u64,
    frames: Vec<Frame>,
    removed: u64,
}

/// Opens directory `name` of `parent` without following a link; refuses one
/// on another file system than `dev`. Returns it with its inode.
fn open_subdir(dev: u64, parent: &Dir, name: &CStr, path: &Path) -> Result<(Dir, u64)> {
    let fd = openat(parent, name, dir_flags(), Mode::empty())
        .map_err(|e| AccountsError::io("open", path, e))?;
    let stat = fstat(&fd).map_err(|e| AccountsError::io("inspect", path, e))?;
    if stat.st_dev != dev {
        return Err(AccountsError::MountInTree {
            path: path.to_owned(),
        });
    }
    let dir = Dir::from_fd(fd).map_err(|e| AccountsError::io("open", path, e))?;
    Ok((dir, stat.st_ino))
}

impl Walk<'_> {
    fn path(&self, depth: usize, extra: Option<&CStr>) -> PathBuf {
        let mut path = self.base_path.to_owned();
        for frame in &self.frames[..depth] {
            path.push(OsStr::from_bytes(frame.name.as_bytes()));
        }
        if let Some(extra) = extra {
            path.push(OsStr::from_bytes(extra.to_bytes()));
        }
        path
    }

    fn push(&mut self, name: CString, dir: Dir, ino: u64) {
        self.frames.push(Frame {
            name,
            dir: Some(dir),
            ino,
            pending: Vec::new(),
            listed: false,
            relisted: 0,
        });
        // Bound the descriptors held: ancestors far up are reopened through
        // `..` when the walk climbs back to them.
        if let Some(far) = self.frames.len().checked_sub(FD_WINDOW + 1) {
            self.frames[far].dir = None;
        }
    }

    /// Lists the top frame: removes everything that is not a directory and
    /// remembers the subdirectories.
    fn list_top(&mut self) -> Result<()> {
        let depth = self.frames.len();
        let dir_path = self.path(depth, None);
        let Some(frame) = self.frames.last_mut() else {
            return Ok(());
        };
        let Some(dir) = frame.dir.as_mut() else {
            return Err(not_open(dir_path));
        };
        let mut others = Vec::new();
        for (name, file_type) in read_entries(dir, &dir_path)? {
            let subdir = match file_type {
                Some(Type::Directory) => true,
                Some(_) => false,
                // Some file systems do not fill in the type.
                None => match fstatat(&*dir, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(stat) => is_dir(&stat),
                    Err(Errno::ENOENT) => continue,
                    Err(e) => {
                        return Err(AccountsError::io(
                            "inspect",
                            dir_path.join(OsStr::from_bytes(name.as_bytes())),
                            e,
                        ));
                    }
                },
            };
            if subdir {
                frame.pending.push(name);
            } else {
                others.push(name);
            }
        }
        for name in others {
            match unlinkat(&*dir, name.as_c_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) => self.removed += 1,
                Err(Errno::ENOENT) => {}
                Err(e) => {
                    return Err(AccountsError::io(
                        "remove",
                        dir_path.join(OsStr::from_bytes(name.as_bytes())),
                        e,
                    ));
                }
            }
        }
        frame.listed = true;
        Ok(())
    }

    fn run(mut self) -> Result<u64> {
        while let Some(top) = self.frames.len().checked_sub(1) {
            if !self.frames[top].listed {
                self.list_top()?;
            }
            match self.frames[top].pending.pop() {
                Some(sub) => self.descend(top, sub)?,
                None => self.remove_top()?,
            }
        }
        Ok(self.removed)
    }

    /// Enters subdirectory `sub` of the top frame, or removes it as a plain
    /// entry if it stopped being a directory since the listing.
    fn descend(&mut self, top: usize, sub: CString) -> Result<()> {
        let path = self.path(top + 1, Some(&sub));
        let Some(parent) = self.frames[top].dir.as_ref() else {
            return Err(not_open(self.path(top + 1, None)));
        };
        match open_subdir(self.dev, parent, &sub, &path) {
            Ok((dir, ino)) => {
                self.push(sub, dir, ino);
                Ok(())
            }
            Err(AccountsError::Io { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::ELOOP | libc::ENOTDIR | libc::ENOENT)
                ) =>
            {
                match unlinkat(parent, sub.as_c_str(), UnlinkatFlags::NoRemoveDir) {
                    Ok(()) => {
                        self.removed += 1;
                        Ok(())
                    }
                    Err(Errno::ENOENT) => Ok(()),
                    Err(e) => Err(AccountsError::io("remove", path, e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the emptied top directory from its parent, reopening the
    /// parent through `..` if its descriptor was given up.
    fn remove_top(&mut self) -> Result<()> {
        let depth = self.frames.len();
        let path = self.path(depth, None);
        let Some(mut frame) = self.frames.pop() else {
            return Ok(());
        };
        if let Some(parent) = self.frames.last_mut()
            && parent.dir.is_none()
            && let Some(child) = frame.dir.as_ref()
        {
            let parent_path = path.parent().unwrap_or(&path).to_owned();
            let (dir, ino) = open_subdir(self.dev, child, c"..", &parent_path)?;
            if ino != parent.ino {
                return Err(AccountsError::io(
                    "climb back to",
                    parent_path,
                    std::io::Error::other("the directory was moved while being removed"),
                ));
            }
            parent.dir = Some(dir);
        }
        let result = match self.frames.last() {
            Some(parent) => match parent.dir.as_ref() {
                Some(dir) => unlinkat(dir, frame.name.as_c_str(), UnlinkatFlags::RemoveDir),
                None => return Err(not_open(self.path(depth - 1, None))),
            },
            None => unlinkat(self.base, frame.name.as_c_str(), UnlinkatFlags::RemoveDir),
        };
        match result {
            Ok(()) => self.removed += 1,
            Err(Errno::ENOENT) => {}
            // Something was added meanwhile: list it again, a few times.
            Err(Errno::ENOTEMPTY | Errno::EEXIST) if frame.relisted < RELIST_MAX => {
                frame.relisted += 1;
                frame.listed = false;
                self.frames.push(frame);
            }
            Err(e) => return Err(AccountsError::io("remove", path, e)),
        }
        Ok(())
    }
}

/// Removes entry `name` of the trusted directory `base` (at `base_path`)
/// without following symbolic links: a link is unlinked, a directory is
/// emptied and removed. Returns how many entries (files, links,
/// directories) were removed; 0 if there was nothing.
fn remove_at(base: &Dir, base_path: &Path, name: &CStr) -> Result<u64> {
    let top_path = base_path.join(OsStr::from_bytes(name.to_bytes()));
    let stat = match fstatat(base, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::ENOENT) => return Ok(0),
        Err(e) => return Err(AccountsError::io("inspect", top_path, e)),
    };
    if !is_dir(&stat) {
        return match unlinkat(base, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(1),
            Err(Errno::ENOENT) => Ok(0),
            Err(e) => Err(AccountsError::io("remove", top_path, e)),
        };
    }
    let base_stat = fstat(base).map_err(|e| AccountsError::io("inspect", base_path, e))?;
    if base_stat.st_dev != stat.st_dev {
        return Err(AccountsError::MountInTree { path: top_path });
    }
    let (dir, ino) = open_subdir(stat.st_dev, base, name, &top_path)?;
    let mut walk = Walk {
        base,
        base_path,
        dev: stat.st_dev,
        frames: Vec::new(),
        removed: 0,
    };
    walk.push(name.to_owned(), dir, ino);
    walk.run()
}

/// Removes `<root>/<uid>` and everything in it. Returns entries removed.
pub fn remove_scratch(root: &Path, uid: u32) -> Result<u64> {
    let Some(base) = open_trusted(root)? else {
        return Ok(0);
    };
    let name = c_name(OsStr::new(&uid.to_string()))?;
    remove_at(&base, root, &name)
}

/// Removes every top-level entry of `dir` owned by `uid` (with whatever is
/// inside). Returns entries removed.
pub fn remove_owned_entries(dir: &Path, uid: u32) -> Result<u64> {
    let Some(mut base) = open_trusted(dir)? else {
        return Ok(0);
    };
    let mut owned = Vec::new();
    for (name, _) in read_entries(&mut base, dir)? {
        match fstatat(&base, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) if stat.st_uid == uid => owned.push(name),
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(e) => {
                return Err(AccountsError::io(
                    "inspect",
                    dir.join(OsStr::from_bytes(name.to_bytes())),
                    e,
                ));
            }
        }
    }
    let mut removed = 0;
    for name in owned {
        removed += remove_at(&base, dir, &name)?;
    }
    Ok(removed)
}

/// Creates (or reuses) `<root>/<uid>` as a directory of mode 0700 owned by
/// `uid:gid`, creating the root (mode 0711) if needed. Ownership and mode are
/// set on the opened directory, never through a path, so a link cannot
/// redirect them.
pub fn prepare_scratch(root: &Path, uid: u32, gid: u32) -> Result<PathBuf> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(SCRATCH_ROOT_MODE)
        .create(root)
        .map_err(|e| AccountsError::io("create", root, e))?;
    let Some(base) = open_trusted(root)? else {
        return Err(AccountsError::io(
            "open",
            root,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    };
    let name = uid.to_string();
    let path = root.join(&name);
    let created = match mkdirat(
        &base,
        name.as_str(),
        Mode::from_bits_truncate(SCRATCH_DIR_MODE),
    ) {
        Ok(()) => true,
        Err(Errno::EEXIST) => false,
        Err(e) => return Err(AccountsError::io("create", &path, e)),
    };
    let fd = match openat(&base, name.as_str(), dir_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ELOOP | Errno::ENOTDIR) => return Err(AccountsError::NotADirectory { path }),
        Err(e) => return Err(AccountsError::io("open", &path, e)),
    };
    let stat = fstat(&fd).map_err(|e| AccountsError::io("inspect", &path, e))?;
    if !created && stat.st_uid != uid {
        // Left by someone else: only an empty directory of ours (a crash
        // between mkdir and chown) is taken over; anything else may hold a
        // previous holder's files.
        let mut dir = Dir::from_fd(fd).map_err(|e| AccountsError::io("open", &path, e))?;
        let empty = read_entries(&mut dir, &path)?.is_empty();
        if stat.st_uid != geteuid().as_raw() || !empty {
            return Err(AccountsError::ScratchOwned {
                path,
                owner: stat.st_uid,
            });
        }
        return finish_scratch(dir.as_fd(), &path, uid, gid).map(|()| path);
    }
    // A job's every launch comes here: an existing directory already right
    // costs no writes.
    let right =
        stat.st_uid == uid && stat.st_gid == gid && stat.st_mode & 0o7777 == SCRATCH_DIR_MODE;
    if created || !right {
        finish_scratch(fd.as_fd(), &path, uid, gid)?;
    }
    Ok(path)
}

fn finish_scratch(fd: std::os::fd::BorrowedFd<'_>, path: &Path, uid: u32, gid: u32) -> Result<()> {
    fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .map_err(|e| AccountsError::io("chown", path, e))?;
    fchmod(fd, Mode::from_bits_truncate(SCRATCH_DIR_MODE))
        .map_err(|e| AccountsError::io("chmod", path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn count_entries(path: &Path) -> usize {
        std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
    }

    #[test]
    fn removes_a_tree_without_following_links() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "keep me").unwrap();
        std::fs::create_dir(outside.path().join("dir")).unwrap();
        std::fs::write(outside.path().join("dir/inner"), "keep me too").unwrap();

        let top = root.path().join("200000");
        std::fs::create_dir_all(top.join("a/b/c")).unwrap();
        std::fs::write(top.join("a/b/c/file"), "x").unwrap();
        std::fs::write(top.join("file"), "x").unwrap();
        symlink(&secret, top.join("link-to-file")).unwrap();
        symlink(outside.path().join("dir"), top.join("a/link-to-dir")).unwrap();
        symlink("/", top.join("a/b/root")).unwrap();

        let removed = remove_scratch(root.path(), 200_000).unwrap();
        // a, b, c, a/b/c/file, file, 3 links, the top itself.
        assert_eq!(removed, 9);
        assert!(!top.exists());
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "keep me");
        assert_eq!(
            std::fs::read_to_string(outside.path().join("dir/inner")).unwrap(),
            "keep me too"
        );
        // Nothing left is fine too.
        assert_eq!(remove_scratch(root.path(), 200_000).unwrap(), 0);
        assert_eq!(
            remove_scratch(&root.path().join("none"), 200_000).unwrap(),
            0
        );
    }

    #[test]
    fn a_top_level_link_is_unlinked_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("data"), "keep").unwrap();
        symlink(outside.path(), root.path().join("200001")).unwrap();
        assert_eq!(remove_scratch(root.path(), 200_001).unwrap(), 1);
        assert!(root.path().join("200001").symlink_metadata().is_err());
        assert_eq!(count_entries(outside.path()), 1);
    }

    #[test]
    fn removes_trees_deeper_than_the_descriptor_window() {
        let root = tempfile::tempdir().unwrap();
        let depth = FD_WINDOW * 3 + 5;
        let mut deep = root.path().join("200002");
        for i in 0..depth {
            deep.push(format!("d{i}"));
            // Several subdirectories per level make the walk climb back up
            // through reopened ancestors.
            std::fs::create_dir_all(deep.with_file_name(format!("s{i}"))).unwrap();
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), "x").unwrap();
        let removed = remove_scratch(root.path(), 200_002).unwrap();
        assert_eq!(removed, (depth as u64) * 2 + 2);
        assert_eq!(count_entries(root.path()), 0);
    }

    #[test]
    fn removes_only_entries_of_the_uid_from_shared_dirs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mine"), "x").unwrap();
        let me = nix::unistd::getuid().as_raw();
        // Everything here is ours; a uid that owns nothing removes nothing.
        assert_eq!(
            remove_owned_entries(dir.path(), me.wrapping_add(12_345)).unwrap(),
            0
        );
        assert_eq!(remove_owned_entries(dir.path(), me).unwrap(), 1);
        assert_eq!(count_entries(dir.path()), 0);
    }

    #[test]
    fn prepare_refuses_a_link_in_place_of_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("200003")).unwrap();
        let me = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let err = prepare_scratch(root.path(), 200_003, gid).unwrap_err();
        assert!(matches!(err, AccountsError::NotADirectory { .. }), "{err}");
        let path = prepare_scratch(&root.path().join("sub"), me, gid).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert_eq!(meta.uid(), me);
        // Preparing again keeps it.
        std::fs::write(path.join("f"), "x").unwrap();
        prepare_scratch(&root.path().join("sub"), me, gid).unwrap();
        assert!(path.join("f").exists());
        // ... and puts its mode right if it was changed.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_scratch(&root.path().join("sub"), me, gid).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    }
}
