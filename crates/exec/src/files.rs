//! The unit directory: file names, atomic JSON records, and the
//! supervisor's lock (held for its whole life: a lock that can be taken
//! means the supervisor is gone, whatever happened to its pid).

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ExecError;

/// The supervisor's input: the spec and where the cgroups are.
pub(crate) const SPEC: &str = "spec.json";
/// Held (flock) by the supervisor while it lives; holds its pid.
pub(crate) const LOCK: &str = "supervisor.lock";
/// The supervisor's own messages.
pub(crate) const LOG: &str = "supervisor.log";
pub(crate) const STARTED: &str = "started.json";
pub(crate) const EXIT: &str = "exit.json";

/// Writes `value` as JSON to `dir/name` atomically (temporary file, then
/// rename). No fsync: a unit does not outlive a crash of its host.
pub(crate) fn write_json_atomic<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
) -> Result<(), ExecError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ExecError::State {
        path: dir.join(name),
        why: e.to_string(),
    })?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| ExecError::io(format!("creating {}", tmp.display()), e))?;
    f.write_all(&bytes)
        .map_err(|e| ExecError::io(format!("writing {}", tmp.display()), e))?;
    drop(f);
    fs::rename(&tmp, &target)
        .map_err(|e| ExecError::io(format!("renaming to {}", target.display()), e))
}

/// Reads `dir/name` as JSON; `None` if it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> Result<Option<T>, ExecError> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ExecError::io(format!("reading {}", path.display()), e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ExecError::State {
            path,
            why: e.to_string(),
        })
}

/// What the lock file says about the supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Locked: the supervisor lives; its pid if it wrote it yet.
    Alive(Option<i32>),
    /// Unlocked (or no lock file): no supervisor.
    Gone,
}

/// Tests the supervisor's lock without waiting.
pub(crate) fn liveness(dir: &Path) -> Result<Liveness, ExecError> {
    let path = dir.join(LOCK);
    let mut f = match fs::OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Liveness::Gone),
        Err(e) => return Err(ExecError::io(format!("opening {}", path.display()), e)),
    };
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if rc == 0 {
        // We got it: nobody holds it. Closing the file releases it.
        return Ok(Liveness::Gone);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
        return Err(ExecError::io(
            format!("testing the lock {}", path.display()),
            err,
        ));
    }
    let mut text = String::new();
    let pid = match f.read_to_string(&mut text) {
        Ok(_) => text.trim().parse::<i32>().ok().filter(|p| *p > 0),
        Err(_) => None,
    };
    Ok(Liveness::Alive(pid))
}

/// Creates the (empty) lock file the supervisor will hold.
pub(crate) fn create_lock(dir: &Path) -> Result<PathBuf, ExecError> {
    let path = dir.join(LOCK);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ExecError::io(format!("creating {}", path.display()), e))?;
    Ok(path)
}
