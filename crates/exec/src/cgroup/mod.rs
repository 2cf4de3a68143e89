//! Control groups behind one small trait, [`CgroupBackend`], with a v1 and a
//! v2 implementation that write the cgroup files directly.
//!
//! Layout: every hierarchy we use gets `<mount>/<parent>/<unit>` per unit and
//! `<mount>/<parent>/_supervisors` for the supervisors (a name no unit can
//! have), so supervisors leave the daemon's cgroup (a restart of the daemon's
//! service does not take them along) and are never counted in a unit. v1
//! also keeps up to 64 ended units' cgroups, reset, as `_idle-K` for the
//! next units to take (see `v1`).
//!
//! The v1 backend looks the units' files up from descriptors of
//! `<mount>/<parent>` held per hierarchy (see [`CgPath`]): the executor
//! opens them once and hands them to its fork server, whose supervisors
//! inherit them.
//!
//! Detection ([`detect`]), from `/proc/self/mountinfo`: a cgroup2 mount whose
//! root offers `cpu`, `memory` and `pids` wins; else v1 if `cpu`, `cpuacct`,
//! `memory`, `pids` and `freezer` are mounted (`blkio` is used if there); else
//! a bare cgroup2 mount, where freezing, signalling and CPU accounting work
//! but limits cannot be enforced (a warning says so).

mod parse;
mod v1;
mod v2;

use std::ffi::{CStr, CString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub use parse::{MountEntry, parse_mountinfo};

pub use v1::CgroupV1;
pub use v2::CgroupV2;

use crate::error::ExecError;
use crate::spec::Limits;
use crate::status::Usage;

/// The cgroup of the supervisors, beside the units' cgroups.
pub const SUPERVISORS: &str = "_supervisors";

/// Which cgroup interface is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The freezer's view of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreezeState {
    Thawed,
    Freezing,
    Frozen,
}

/// One v1 hierarchy we use: where it is mounted and its controllers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Hierarchy {
    pub mount: PathBuf,
    pub controllers: Vec<String>,
}

/// Everything needed to rebuild the backend without detecting again (the
/// executor hands it to each supervisor in `spec.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupConfig {
    pub version: CgroupVersion,
    /// Path of our subtree below each hierarchy's mount, e.g. `xtreem-n1`.
    pub parent: String,
    /// v1 hierarchies (empty for v2).
    pub v1: Vec<V1Hierarchy>,
    /// The cgroup2 mount (for v2).
    pub v2: Option<PathBuf>,
}

impl CgroupConfig {
    /// The backend this configuration describes.
    pub fn backend(&self) -> Result<Box<dyn CgroupBackend>, ExecError> {
        validate_parent(&self.parent)?;
        Ok(match self.version {
            CgroupVersion::V1 => Box::new(CgroupV1::new(self.v1.clone(), &self.parent)?),
            CgroupVersion::V2 => {
                let mount = self
                    .v2
                    .clone()
                    .ok_or_else(|| ExecError::Cgroup("v2 configuration without a mount".into()))?;
                Box::new(CgroupV2::new(mount, &self.parent))
            }
        })
    }
}

/// An idle cgroup the executor parked (v1: `_idle-<index>`), with the
/// limits it still has: a supervisor given it takes that one, without
/// listing the idle ones, and writes no limit that is already right.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reuse {
    pub index: usize,
    pub limits: Limits,
}

impl Reuse {
    /// Whether a unit with `limits` would write nothing into this cgroup's
    /// limit files (the walltime is not one of them).
    pub fn same_limits(&self, limits: &Limits) -> bool {
        self.limits.cores == limits.cores
            && self.limits.memory_bytes == limits.memory_bytes
            && self.limits.pids == limits.pids
    }
}

/// The operations the executor and the supervisor need. Implementations
/// are cheap to call from a freshly forked child (`join_files` is computed
/// before the fork).
pub trait CgroupBackend: Send + Sync + std::fmt::Debug {
    fn version(&self) -> CgroupVersion;
    /// Creates our subtree and its `_supervisors` leaf (v2: enables the
    /// controllers on the way down). Returns warnings.
    fn setup_parent(&self) -> Result<Vec<String>, ExecError>;
    /// Creates the unit's cgroup (v1: taking `reuse` or another idle one if
    /// there is; else reusing an empty leftover) and sets its limits.
    /// Returns warnings for limits that cannot be enforced.
    fn create(
        &self,
        unit: &str,
        limits: &Limits,
        reuse: Option<&Reuse>,
    ) -> Result<Vec<String>, ExecError>;
    /// The files a single-threaded process writes `0` into to join the
    /// unit. v1: `tasks`, which moves only the calling thread and so skips
    /// the kernel's global threadgroup lock (whose RCU grace period costs
    /// milliseconds); v2: `cgroup.procs`.
    fn join_files(&self, unit: &str) -> Vec<PathBuf>;
    /// As `join_files`, looked up from held directories where there are
    /// (see [`CgPath`]).
    fn join_paths(&self, unit: &str) -> Vec<CgPath> {
        self.join_files(unit)
            .into_iter()
            .map(CgPath::from)
            .collect()
    }
    /// Opens and keeps descriptors of our subtree's directories (after
    /// `setup_parent`), from which the units' files are then looked up.
    /// v1 only: v2 is one directory, looked up a few times per unit.
    fn hold_dirs(&mut self) {}
    /// The directories held (by `hold_dirs`, or inherited), with their
    /// paths: the executor hands them to its fork server.
    fn held_dirs(&self) -> Vec<(PathBuf, RawFd)> {
        Vec::new()
    }
    /// The same for the supervisors' cgroup.
    fn supervisor_join_files(&self) -> Vec<PathBuf>;
    /// v2: the unit's cgroup directory, for `clone3(CLONE_INTO_CGROUP)`: a
    /// process born in its cgroup needs no migration at all.
    fn clone_into(&self, _unit: &str) -> Option<PathBuf> {
        None
    }
    /// Host pids of the unit's processes (empty if the cgroup is gone).
    fn procs(&self, unit: &str) -> io::Result<Vec<i32>>;
    /// Asks the kernel to freeze or thaw; does not wait.
    fn set_frozen(&self, unit: &str, frozen: bool) -> io::Result<()>;
    fn freeze_state(&self, unit: &str) -> io::Result<FreezeState>;
    /// Usage from the cgroup (without `wall_ms`).
    fn usage(&self, unit: &str) -> io::Result<Usage>;
    /// How many processes the OOM killer killed in the cgroup since it was
    /// made: a reused v1 cgroup counts its earlier units' too, so compare
    /// with the value read right after `create`.
    fn oom_kills(&self, unit: &str) -> io::Result<u64>;
    /// SIGKILL to every process of the unit, thawing it so they can die.
    /// Returns how many processes there were: 0 says the cgroup is empty
    /// (or gone), and stays so, as no process can join it from outside.
    fn kill_all(&self, unit: &str) -> io::Result<u32>;
    fn exists(&self, unit: &str) -> bool;
    /// Removes the unit's (empty) cgroup, or (v1) resets it and keeps it
    /// idle for a later `create`, returning its index then; absent is fine.
    /// Fails (`EBUSY`) while processes are in it.
    fn remove(&self, unit: &str) -> io::Result<Option<usize>>;
    /// Removes the idle cgroups, `_supervisors` and our subtree if they are
    /// empty.
    fn remove_parent(&self) -> io::Result<()>;
}

/// Checks a cgroup parent path: `/`-separated components of
/// `[A-Za-z0-9._@:-]`, none empty, `.` or `..`.
pub fn validate_parent(parent: &str) -> Result<(), ExecError> {
    let ok = !parent.is_empty()
        && parent.len() <= 200
        && parent.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b':')
                })
        });
    if ok {
        Ok(())
    } else {
        Err(ExecError::Cgroup(format!(
            "invalid cgroup parent {parent:?}: use a relative path of [A-Za-z0-9._@:-] components"
        )))
    }
}

const V1_REQUIRED: [&str; 5] = ["cpu", "cpuacct", "memory", "pids", "freezer"];
const V1_WANTED: [&str; 6] = ["cpu", "cpuacct", "memory", "pids", "freezer", "blkio"];
const V2_REQUIRED: [&str; 3] = ["cpu", "memory", "pids"];

/// Detects the cgroup setup of this host. `force` picks a version (tests,
/// or an administrator who knows better); otherwise see the module doc.
pub fn detect(parent: &str, force: Option<CgroupVersion>) -> Result<CgroupConfig, ExecError> {
    validate_parent(parent)?;
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| ExecError::io("reading /proc/self/mountinfo", e))?;
    let mounts = parse_mountinfo(&text);
    let v2_mount = mounts
        .iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| m.mount_point.clone());
    let v2_controllers = v2_mount
        .as_ref()
        .and_then(|m| fs::read_to_string(m.join("cgroup.controllers")).ok())
        .map(|t| parse::controllers(&t))
        .unwrap_or_default();
    let mut v1: Vec<V1Hierarchy> = Vec::new();
    for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
        let controllers: Vec<String> = m
            .super_options
            .iter()
            .filter(|o| V1_WANTED.contains(&o.as_str()))
            .cloned()
            .collect();
        if controllers.is_empty() || v1.iter().any(|h| h.controllers == controllers) {
            continue;
        }
        v1.push(V1Hierarchy {
            mount: m.mount_point.clone(),
            controllers,
        });
    }
    let v1_complete = V1_REQUIRED
        .iter()
        .all(|c| v1.iter().any(|h| h.controllers.iter().any(|x| x == c)));
    let v2_complete = v2_mount.is_some()
        && V2_REQUIRED
            .iter()
            .all(|c| v2_controllers.iter().any(|x| x == c));
    let version = match force {
        Some(CgroupVersion::V1) if v1_complete => CgroupVersion::V1,
        Some(CgroupVersion::V1) => {
            return Err(ExecError::Cgroup(format!(
                "cgroup v1 asked for, but not all of {} are mounted",
                V1_REQUIRED.join(", ")
            )));
        }
        Some(CgroupVersion::V2) if v2_mount.is_some() => CgroupVersion::V2,
        Some(CgroupVersion::V2) => {
            return Err(ExecError::Cgroup(
                "cgroup v2 asked for, but no cgroup2 file system is mounted".into(),
            ));
        }
        None if v2_complete => CgroupVersion::V2,
        None if v1_complete => CgroupVersion::V1,
        None if v2_mount.is_some() => CgroupVersion::V2,
        None => {
            return Err(ExecError::Cgroup(
                "no usable cgroup hierarchy: mount cgroup2 (with cpu, memory, pids) or the v1 \
                 cpu, cpuacct, memory, pids and freezer hierarchies"
                    .into(),
            ));
        }
    };
    Ok(match version {
        CgroupVersion::V1 => CgroupConfig {
            version,
            parent: parent.to_string(),
            v1,
            v2: None,
        },
        CgroupVersion::V2 => CgroupConfig {
            version,
            parent: parent.to_string(),
            v1: Vec::new(),
            v2: v2_mount,
        },
    })
}

// ---- small file helpers shared by both backends ----

/// Descriptors of our subtree's directories (`<mount>/<parent>`) this
/// process got from the executor: the fork server gets them once, and the
/// supervisors it forks inherit them with its memory, so none opens them.
static INHERITED_DIRS: OnceLock<Vec<(PathBuf, OwnedFd)>> = OnceLock::new();

/// Keeps `dirs` as this process's inherited directories (the first call
/// wins; later ones close theirs).
pub(crate) fn inherit_dirs(dirs: Vec<(PathBuf, OwnedFd)>) {
    let _ = INHERITED_DIRS.set(dirs);
}

/// The inherited descriptor of `path`, if there is one.
pub(crate) fn inherited_dir(path: &Path) -> Option<RawFd> {
    INHERITED_DIRS
        .get()?
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, fd)| fd.as_raw_fd())
}

/// A cgroup file or directory of ours, by its whole path and, when a
/// descriptor of its hierarchy's `<mount>/<parent>` is held, by its path
/// from there: a lookup of a name or two instead of six, on kernfs, where
/// each name looked up costs. A lookup from the descriptor that finds
/// nothing is made again by the whole path: the descriptor may name a
/// subtree that was removed (and maybe made again) since it was opened, in
/// which nothing is ever found.
#[derive(Clone, Debug)]
pub struct CgPath {
    whole: PathBuf,
    held: Option<(RawFd, PathBuf)>,
}

impl CgPath {
    /// `whole`, which is `relative` from the directory `dir` is open on.
    pub(crate) fn held(dir: RawFd, relative: PathBuf, whole: PathBuf) -> CgPath {
        CgPath {
            whole,
            held: Some((dir, relative)),
        }
    }

    pub(crate) fn join(&self, name: impl AsRef<Path>) -> CgPath {
        let name = name.as_ref();
        CgPath {
            whole: self.whole.join(name),
            held: self.held.as_ref().map(|(fd, rel)| (*fd, rel.join(name))),
        }
    }

    pub(crate) fn whole(&self) -> &Path {
        &self.whole
    }

    /// The descriptor and the relative path, for a caller that cannot
    /// allocate (the job process before its exec).
    pub(crate) fn held_parts(&self) -> Option<(RawFd, &Path)> {
        self.held.as_ref().map(|(fd, rel)| (*fd, rel.as_path()))
    }

    /// Runs `op` with the held descriptor and the relative path. `None`:
    /// there is no descriptor, or `op` found nothing (ENOENT), and the
    /// whole path is to be used.
    fn try_held(&self, op: impl FnOnce(RawFd, &CStr) -> libc::c_int) -> Option<io::Result<i32>> {
        let (fd, rel) = self.held.as_ref()?;
        let rel = CString::new(rel.as_os_str().as_bytes()).ok()?;
        let rc = op(*fd, &rel);
        if rc >= 0 {
            return Some(Ok(rc));
        }
        let e = io::Error::last_os_error();
        (e.kind() != io::ErrorKind::NotFound).then_some(Err(e))
    }

    /// Opens the file for reading or (`write`) writing.
    pub(crate) fn open(&self, write: bool) -> io::Result<fs::File> {
        let flags = libc::O_CLOEXEC
            | if write {
                libc::O_WRONLY
            } else {
                libc::O_RDONLY
            };
        // SAFETY: openat with a descriptor and a C string that outlive it.
        match self.try_held(|fd, rel| unsafe { libc::openat(fd, rel.as_ptr(), flags) }) {
            // SAFETY: a descriptor openat just returned, ours alone.
            Some(Ok(fd)) => Ok(unsafe { fs::File::from_raw_fd(fd) }),
            Some(Err(e)) => Err(e),
            None => fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .open(&self.whole),
        }
    }

    /// `mkdir`, an existing directory is fine.
    pub(crate) fn mkdir(&self) -> io::Result<()> {
        // SAFETY: mkdirat with a descriptor and a C string that outlive it.
        let made = match self.try_held(|fd, rel| unsafe { libc::mkdirat(fd, rel.as_ptr(), 0o777) })
        {
            Some(r) => r.map(drop),
            None => fs::create_dir(&self.whole),
        };
        match made {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    }

    /// `rmdir`, an absent directory is fine.
    pub(crate) fn rmdir(&self) -> io::Result<()> {
        let removed = match self.try_held(|fd, rel| {
            // SAFETY: unlinkat with a descriptor and a C string that
            // outlive it.
            unsafe { libc::unlinkat(fd, rel.as_ptr(), libc::AT_REMOVEDIR) }
        }) {
            Some(r) => r.map(drop),
            None => fs::remove_dir(&self.whole),
        };
        match removed {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Whether it seems to be there, for a hint only: a held directory
    /// that was removed says no, without the second look by the whole
    /// path (`exists`) that a name not there would cost every time.
    pub(crate) fn probably_exists(&self) -> bool {
        match &self.held {
            Some((fd, rel)) => CString::new(rel.as_os_str().as_bytes()).is_ok_and(|rel| {
                // SAFETY: faccessat with a descriptor and a C string that
                // outlive it; no flags.
                unsafe { libc::faccessat(*fd, rel.as_ptr(), libc::F_OK, 0) == 0 }
            }),
            None => self.whole.exists(),
        }
    }

    /// Whether it exists.
    pub(crate) fn exists(&self) -> bool {
        // SAFETY: faccessat with a descriptor and a C string that outlive
        // it; no flags.
        match self.try_held(|fd, rel| unsafe { libc::faccessat(fd, rel.as_ptr(), libc::F_OK, 0) }) {
            Some(r) => r.is_ok(),
            None => self.whole.exists(),
        }
    }

    /// Renames it to `to` (ENOENT: it is not there).
    pub(crate) fn rename_to(&self, to: &CgPath) -> io::Result<()> {
        let to_held = to
            .held
            .as_ref()
            .and_then(|(fd, rel)| Some((*fd, CString::new(rel.as_os_str().as_bytes()).ok()?)));
        if let Some((to_fd, to_rel)) = &to_held {
            // SAFETY: renameat with descriptors and C strings that outlive
            // it.
            let renamed = self.try_held(|fd, rel| unsafe {
                libc::renameat(fd, rel.as_ptr(), *to_fd, to_rel.as_ptr())
            });
            if let Some(r) = renamed {
                return r.map(drop);
            }
        }
        fs::rename(&self.whole, &to.whole)
    }
}

impl From<PathBuf> for CgPath {
    fn from(whole: PathBuf) -> CgPath {
        CgPath { whole, held: None }
    }
}

/// Writes one value to a cgroup file in a single `write`.
pub(crate) fn write_value(path: &Path, value: &str) -> io::Result<()> {
    write_to(fs::OpenOptions::new().write(true).open(path), value)
}

/// As [`write_value`], by a [`CgPath`].
pub(crate) fn write_cg(path: &CgPath, value: &str) -> io::Result<()> {
    write_to(path.open(true), value)
}

fn write_to(file: io::Result<fs::File>, value: &str) -> io::Result<()> {
    file?.write_all(value.as_bytes())
}

/// Writes a value, turning a missing file into `Ok(false)`.
pub(crate) fn write_if_present(path: &Path, value: &str) -> io::Result<bool> {
    present(write_value(path, value))
}

/// As [`write_if_present`], by a [`CgPath`].
pub(crate) fn write_if_present_cg(path: &CgPath, value: &str) -> io::Result<bool> {
    present(write_cg(path, value))
}

fn present(written: io::Result<()>) -> io::Result<bool> {
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads a cgroup (or `/proc`) file the kernel renders as one record (a
/// value, a state, a few keyed lines: every file we read but
/// `cgroup.procs` and `mountinfo`); `None` if it does not exist. Such a
/// file comes whole in one `read` that fills less than the buffer, so
/// that one is all it costs: `fs::read_to_string` spends a `statx` for the
/// size (0 on kernfs) and `read`s until one returns nothing.
pub(crate) fn read_optional(path: &Path) -> io::Result<Option<String>> {
    read_kernfs(fs::File::open(path), false)
}

/// As [`read_optional`], by a [`CgPath`].
pub(crate) fn read_cg(path: &CgPath) -> io::Result<Option<String>> {
    read_kernfs(path.open(false), false)
}

/// Where a cgroup file is read first; a larger one grows it.
const READ_BUF: usize = 4096;

/// Reads a kernel file. `records`: it is a list the kernel renders record
/// by record (`cgroup.procs`), so a short `read` may only end a page of it
/// and the end is the `read` that returns nothing (at once, for an empty
/// list).
fn read_kernfs(file: io::Result<fs::File>, records: bool) -> io::Result<Option<String>> {
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = vec![0u8; READ_BUF];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if !records && len < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// `mkdir`, an existing directory is fine.
pub(crate) fn mkdir(path: &Path) -> io::Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// `rmdir`, an absent directory is fine.
pub(crate) fn rmdir(path: &Path) -> io::Result<()> {
    match fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Pids of a `cgroup.procs` file; a missing cgroup has none.
pub(crate) fn read_procs(path: &Path) -> io::Result<Vec<i32>> {
    pids_of(fs::File::open(path))
}

/// As [`read_procs`], by a [`CgPath`].
pub(crate) fn read_procs_cg(path: &CgPath) -> io::Result<Vec<i32>> {
    pids_of(path.open(false))
}

fn pids_of(file: io::Result<fs::File>) -> io::Result<Vec<i32>> {
    Ok(read_kernfs(file, true)?
        .map(|t| parse::pids(&t))
        .unwrap_or_default())
}

/// Sends `signal` to each pid; returns how many it reached.
pub(crate) fn signal_pids(pids: &[i32], signal: i32) -> u32 {
    let mut n = 0;
    for &pid in pids {
        if pid <= 1 {
            continue;
        }
        // SAFETY: kill(2) with a positive pid has no memory effects.
        if unsafe { libc::kill(pid, signal) } == 0 {
            n += 1;
        }
    }
    n
}

fn mb_context(path: &Path, e: io::Error) -> ExecError {
    ExecError::Cgroup(format!("{}: {e}", path.display()))
}

/// `map_err` helper naming the cgroup file.
pub(crate) fn cg_err(path: &Path) -> impl FnOnce(io::Error) -> ExecError + '_ {
    move |e| mb_context(path, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn a_held_directory_removed_and_made_again_falls_back_to_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("parent");
        fs::create_dir(&parent).unwrap();
        let held = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&parent)
            .unwrap();
        let at =
            |name: &str| CgPath::held(held.as_raw_fd(), PathBuf::from(name), parent.join(name));
        // Live: everything goes through the descriptor.
        at("u").mkdir().unwrap();
        fs::write(parent.join("u/f"), "1").unwrap();
        write_cg(&at("u").join("f"), "2").unwrap();
        assert_eq!(read_cg(&at("u").join("f")).unwrap().as_deref(), Some("2"));
        // Removed and made again: the descriptor names a deleted directory.
        fs::remove_dir_all(&parent).unwrap();
        fs::create_dir_all(parent.join("u")).unwrap();
        fs::write(parent.join("u/f"), "2").unwrap();
        assert!(at("u").exists());
        assert!(!at("u").probably_exists(), "the hint does not look twice");
        assert_eq!(read_cg(&at("u").join("f")).unwrap().as_deref(), Some("2"));
        assert_eq!(read_cg(&at("u").join("none")).unwrap(), None);
        write_cg(&at("u").join("f"), "3").unwrap();
        assert_eq!(fs::read_to_string(parent.join("u/f")).unwrap(), "3");
        fs::remove_file(parent.join("u/f")).unwrap();
        at("u").rename_to(&at("v")).unwrap();
        assert!(parent.join("v").is_dir());
        at("w").mkdir().unwrap();
        assert!(parent.join("w").is_dir());
        at("v").rmdir().unwrap();
        at("v").rmdir().unwrap();
        assert!(!parent.join("v").exists());
    }

    #[test]
    fn parents() {
        for good in [
            "xtreem",
            "xtreem-n1",
            "system.slice/xosd.service/units",
            "a@b:c",
        ] {
            validate_parent(good).unwrap();
        }
        for bad in ["", "/xtreem", "a//b", "a/../b", "..", "a b", "x/"] {
            assert!(validate_parent(bad).is_err(), "{bad:?} accepted");
        }
    }
}
