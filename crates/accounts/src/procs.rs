//! Finding and killing every process of a uid, through `/proc`.
//!
//! A process is the uid's if its real, effective or saved uid is that uid:
//! real and effective are who it is and acts as, and a saved uid lets it
//! switch back, so any of the three lets it reach the next holder's files.
//!
//! Each process is inspected and signalled through a descriptor of its
//! `/proc/<pid>` directory, which the kernel accepts as a pidfd: if the
//! process exits and its pid is reused between the check and the kill, the
//! signal fails instead of hitting the newcomer.

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::Mode;

use crate::{AccountsError, Result};

const PROC: &str = "/proc";
/// Rounds of scan-and-kill before giving up. Processes can fork between a
/// scan and the kill; each round kills what the previous one missed.
const KILL_ROUNDS_MAX: u32 = 50;
/// Pause between rounds, doubling from 1 ms up to this, so that SIGKILL is
/// delivered before we look again (about 4.5 s over all rounds).
const KILL_ROUND_PAUSE_MAX: Duration = Duration::from_millis(100);

/// What `/proc/<pid>/status` says about ownership and liveness.
#[derive(Debug, PartialEq, Eq)]
struct Status {
    /// Real, effective, saved and file-system uid.
    uids: [u32; 4],
    /// Exited and waiting to be reaped: holds no files and runs nothing.
    zombie: bool,
}

fn parse_status(text: &str) -> Option<Status> {
    let mut uids = None;
    let mut zombie = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("State:") {
            let state = rest.trim_start();
            zombie = state.starts_with('Z') || state.starts_with('X');
        } else if let Some(rest) = line.strip_prefix("Uid:") {
            let mut ids = rest.split_whitespace().map(|f| f.parse::<u32>());
            let mut next = || ids.next()?.ok();
            uids = Some([next()?, next()?, next()?, next()?]);
        }
    }
    Some(Status {
        uids: uids?,
        zombie,
    })
}

fn belongs_to(status: &Status, uid: u32) -> bool {
    !status.zombie && status.uids[..3].contains(&uid)
}

/// A live process of the uid, with its `/proc/<pid>` descriptor.
struct Found {
    pid: i32,
    dir: OwnedFd,
}

/// Live processes of `uid`. Processes that exit while we look are skipped.
fn scan(uid: u32) -> Result<Vec<Found>> {
    let own_pid = std::process::id();
    let entries = std::fs::read_dir(PROC).map_err(|e| AccountsError::io("list", PROC, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AccountsError::io("list", PROC, e))?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if u32::try_from(pid).is_ok_and(|p| p == own_pid) {
            continue;
        }
        let dir = match open(
            &entry.path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(dir) => dir,
            // Exited since the listing.
            Err(Errno::ENOENT | Errno::ESRCH) => continue,
            Err(e) => return Err(AccountsError::io("open", entry.path(), e)),
        };
        let Some(status) = read_status(&dir, &entry.path())? else {
            continue;
        };
        if belongs_to(&status, uid) {
            found.push(Found { pid, dir });
        }
    }
    Ok(found)
}

/// `None` if the process is gone.
fn read_status(dir: &OwnedFd, path: &Path) -> Result<Option<Status>> {
    let fd = match openat(
        dir,
        "status",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ESRCH) => return Ok(None),
        Err(e) => return Err(AccountsError::io("open", path.join("status"), e)),
    };
    let mut text = String::new();
    match std::fs::File::from(fd).read_to_string(&mut text) {
        Ok(_) => Ok(parse_status(&text)),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(e) => Err(AccountsError::io("read", path.join("status"), e)),
    }
}

/// Sends SIGKILL to the process behind `found.dir`. `Ok(false)` if it had
/// already exited.
fn kill(found: &Found) -> Result<bool> {
    // SAFETY: pidfd_send_signal takes a descriptor we own for the whole call,
    // a signal number, a null siginfo (allowed: the kernel fills in one as for
    // kill(2)) and zero flags; it touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            found.dir.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0_u32,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ESRCH) => Ok(false),
        // Kernels before 5.1 lack pidfd_send_signal: fall back to kill(2),
        // with the (tiny) pid-reuse race it has.
        Some(libc::ENOSYS) => {
            match nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(found.pid),
                nix::sys::signal::Signal::SIGKILL,
            ) {
                Ok(()) => Ok(true),
                Err(Errno::ESRCH) => Ok(false),
                Err(e) => Err(AccountsError::io(
                    "kill",
                    format!("process {}", found.pid),
                    e,
                )),
            }
        }
        _ => Err(AccountsError::io(
            "kill",
            format!("process {}", found.pid),
            err,
        )),
    }
}

/// Pids of the live processes of `uid`.
pub fn processes_of(uid: u32) -> Result<Vec<i32>> {
    Ok(scan(uid)?.into_iter().map(|f| f.pid).collect())
}

/// Kills every process of `uid` and waits until none is left; returns how
/// many were killed. Fails if some survive all rounds (a process stuck in
/// uninterruptible IO ignores SIGKILL until the IO ends).
pub fn kill_all(uid: u32) -> Result<u32> {
    // Distinct pids: a process that is dying but not yet a zombie shows up
    // (and is signalled) again in the next round.
    let mut killed = HashSet::new();
    let count = |killed: &HashSet<i32>| u32::try_from(killed.len()).unwrap_or(u32::MAX);
    let mut pause = Duration::from_millis(1);
    for _ in 0..KILL_ROUNDS_MAX {
        let found = scan(uid)?;
        if found.is_empty() {
            return Ok(count(&killed));
        }
        for process in &found {
            if kill(process)? {
                killed.insert(process.pid);
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(KILL_ROUND_PAUSE_MAX);
    }
    let pids = processes_of(uid)?;
    if pids.is_empty() {
        return Ok(count(&killed));
    }
    Err(AccountsError::ProcessesSurvived {
        uid,
        count: pids.len(),
        pids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_uid_and_state_lines() {
        let text = "Name:\tsleep\nState:\tS (sleeping)\nUid:\t200000\t200001\t200002\t200003\nGid:\t1\t1\t1\t1\n";
        let status = parse_status(text).unwrap();
        assert_eq!(status.uids, [200_000, 200_001, 200_002, 200_003]);
        assert!(!status.zombie);
        for uid in [200_000, 200_001, 200_002] {
            assert!(belongs_to(&status, uid));
        }
        // The file-system uid follows the effective one; alone it does not
        // make the process the uid's.
        assert!(!belongs_to(&status, 200_003));

        let zombie = parse_status("State:\tZ (zombie)\nUid:\t5\t5\t5\t5\n").unwrap();
        assert!(!belongs_to(&zombie, 5));
        assert_eq!(parse_status("State:\tR\nUid:\t1\t2\n"), None);
        assert_eq!(parse_status("garbage"), None);
    }

    #[test]
    fn finds_no_process_of_an_unused_uid_and_skips_itself() {
        assert!(processes_of(299_998).unwrap().is_empty());
        assert_eq!(kill_all(299_998).unwrap(), 0);
        // This test process runs as some uid; it is never its own victim.
        let own = nix::unistd::getuid().as_raw();
        let pids = processes_of(own).unwrap();
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(!pids.contains(&me));
    }
}
