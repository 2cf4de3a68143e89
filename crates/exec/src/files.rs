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
    let reading = |e| ExecError::io(format!("reading {}", path.display()), e);
    let mut file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(reading(e)),
    };
    let mut bytes = Vec::new();
    read_until_short(&mut file, &mut bytes).map_err(reading)?;
    let parsed = match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(v),
        // A short read ends a regular file on the file systems the state
        // lives on, and the records are written whole (then renamed), so
        // this is a truly bad file; but a file system that reads short
        // before the end gets the rest read now.
        Err(_) if file.read_to_end(&mut bytes).map_err(reading)? > 0 => {
            serde_json::from_slice(&bytes)
        }
        Err(e) => Err(e),
    };
    parsed.map(Some).map_err(|e| ExecError::State {
        path: path.clone(),
        why: e.to_string(),
    })
}

/// Where a state file is read first: every record is smaller.
const READ_BUF: usize = 4096;

/// Appends `file` to `buf` up to the first `read` that fills less than it
/// was given, the end of a regular file: for a small file that is one
/// `read`, where `fs::read` spends a `statx` for the size and a second
/// `read` that returns nothing.
fn read_until_short(file: &mut fs::File, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut len = buf.len();
    loop {
        buf.resize(len + READ_BUF.max(len), 0);
        let want = buf.len() - len;
        match file.read(&mut buf[len..]) {
            Ok(n) => {
                len += n;
                if n < want {
                    buf.truncate(len);
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        }
    }
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
    Ok(lock_state(dir)?.unwrap_or(Liveness::Gone))
}

/// As [`liveness`], `None` when there is no lock file: then the unit
/// directory may be missing too (a lock file in it proves it is there).
pub(crate) fn lock_state(dir: &Path) -> Result<Option<Liveness>, ExecError> {
    Ok(open_lock(dir)?.map(|(_, liveness)| liveness))
}

/// As [`lock_state`], with the lock file still open, for [`still_held`].
pub(crate) fn open_lock(dir: &Path) -> Result<Option<(fs::File, Liveness)>, ExecError> {
    let path = dir.join(LOCK);
    let mut f = match fs::OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ExecError::io(format!("opening {}", path.display()), e)),
    };
    if !still_held(&f)
        .map_err(|e| ExecError::io(format!("testing the lock {}", path.display()), e))?
    {
        return Ok(Some((f, Liveness::Gone)));
    }
    // A pid is a few digits: one `read` (the supervisor may not have
    // written it yet, or be writing it: then no pid).
    let mut buf = [0u8; 32];
    let pid = match f.read(&mut buf) {
        Ok(n) => std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .filter(|p| *p > 0),
        Err(_) => None,
    };
    Ok(Some((f, Liveness::Alive(pid))))
}

/// Whether the supervisor holds the lock `f` is open on (tested again
/// without opening it again). When nobody does, this takes it: closing
/// `f` releases it.
pub(crate) fn still_held(f: &fs::File) -> io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        return Ok(false);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(true)
    } else {
        Err(err)
    }
}

/// The files a unit directory holds once its supervisor is done.
const UNIT_FILES: [&str; 5] = [SPEC, LOCK, LOG, STARTED, EXIT];

/// Deletes a unit directory. The files it holds are known: deleting them
/// by name spares `remove_dir_all`'s stat, open and listing of the
/// directory; anything else in it (a temporary record a supervisor left)
/// is found by `remove_dir_all` after all.
pub(crate) fn remove_unit_dir(dir: &Path) -> io::Result<()> {
    for name in UNIT_FILES {
        match fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => return fs::remove_dir_all(dir),
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => fs::remove_dir_all(dir),
        other => other,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_larger_than_the_first_read_are_read_whole() {
        let tmp = tempfile::tempdir().unwrap();
        for len in [0, 1, READ_BUF - 3, READ_BUF - 2, READ_BUF, 3 * READ_BUF + 7] {
            let value = "x".repeat(len);
            write_json_atomic(tmp.path(), "r.json", &value).unwrap();
            let back: Option<String> = read_json(tmp.path(), "r.json").unwrap();
            assert_eq!(back.as_deref(), Some(value.as_str()), "{len}");
        }
        assert!(
            read_json::<String>(tmp.path(), "none.json")
                .unwrap()
                .is_none()
        );
        fs::write(tmp.path().join("bad.json"), b"{\"a\":").unwrap();
        assert!(matches!(
            read_json::<String>(tmp.path(), "bad.json"),
            Err(ExecError::State { .. })
        ));
    }
}
