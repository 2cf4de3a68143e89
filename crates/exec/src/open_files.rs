//! The open-files limit. A daemon holds a descriptor for each unit it runs
//! (the supervisor's report pipe) beside its sockets and stores, so with
//! the usual soft limit of 1024 a node running ~1,000 units would fail
//! launches with EMFILE. [`raise_open_files_limit`] lifts the daemon's soft
//! limit to its hard one at start; the units it launches get back the soft
//! limit the daemon started with, as programs that use `select(2)` fail on
//! descriptors above 1024.

use std::io;
use std::sync::OnceLock;

/// The soft limit this process started with, once it raised its own.
static STARTED_WITH: OnceLock<u64> = OnceLock::new();

fn get() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// Raises this process's soft limit on open files to its hard limit and
/// remembers the soft one for the units launched from now on. Returns the
/// soft limit before and after. Call it once, early, before any executor
/// launches.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let limit = get()?;
    let before = limit.rlim_cur;
    if limit.rlim_cur >= limit.rlim_max {
        // Units inherit the limit unchanged: nothing to give back to them.
        return Ok((before, before));
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let _ = STARTED_WITH.set(before);
    Ok((before, raised.rlim_cur))
}

/// The soft limit units get: the one this process started with, if it
/// raised its own (else they inherit it as it is).
pub(crate) fn for_units() -> Option<u64> {
    STARTED_WITH.get().copied()
}

/// `soft` as a whole limit for a job process: never above the hard limit it
/// inherits, which stays as it is.
pub(crate) fn job_limit(soft: u64) -> io::Result<libc::rlimit> {
    let current = get()?;
    Ok(libc::rlimit {
        rlim_cur: soft.min(current.rlim_max),
        rlim_max: current.rlim_max,
    })
}
