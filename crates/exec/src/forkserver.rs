//! The fork server: one small single-threaded process per [`crate::Executor`]
//! (`<supervisor...> --fork-server`) that forks a supervisor per unit, so a
//! launch costs a `fork` of an idle process instead of a `posix_spawn` and
//! an `exec` of the daemon's (large) binary.
//!
//! The executor sends each request on a `SOCK_SEQPACKET` socket (the fork
//! server's stdin): the unit directory as the payload and the write end of
//! the report pipe as `SCM_RIGHTS`. The forked child puts that pipe on its
//! stdout and becomes the unit's supervisor exactly as a spawned one would.
//! Each supervisor is forked into a new PID namespace, whose init it is:
//! the fork server unshares one for its next child and then returns to its
//! own (`setns`), which the kernel allows any number of times, where a
//! second `unshare` alone would be refused.
//! Once, right after it starts, the executor also hands it descriptors of
//! the cgroup subtree's directories (v1: one per hierarchy), which the
//! supervisors it forks inherit: they look their unit's cgroup files up
//! from there (see `cgroup::CgPath`) without opening anything more.
//! The fork server ignores SIGCHLD, so the kernel reaps the supervisors it
//! forked; it exits when the executor's end of the socket closes (the
//! executor was dropped or the daemon died). Supervisors never depend on it.

use std::ffi::{OsStr, OsString};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
    recvmsg, sendmsg, socketpair,
};

/// The argument that makes [`crate::supervise`] a fork server.
pub const FORK_SERVER_ARG: &str = "--fork-server";

/// Longest unit directory path the protocol carries.
const PATH_MAX: usize = 4096;
/// Most cgroup directories [`ForkServer::share_dirs`] hands over (v1 has
/// six hierarchies at most).
const SHARED_DIRS_MAX: usize = 8;

/// The executor's handle on its fork server.
#[derive(Debug)]
pub(crate) struct ForkServer {
    child: Child,
    socket: OwnedFd,
}

impl ForkServer {
    /// Starts `<supervisor...> --fork-server`.
    pub(crate) fn spawn(supervisor: &[OsString]) -> io::Result<ForkServer> {
        let (program, args) = supervisor
            .split_first()
            .ok_or_else(|| io::Error::other("no supervisor program"))?;
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let child = Command::new(program)
            .args(args)
            .arg(FORK_SERVER_ARG)
            .env_clear()
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(ForkServer {
            child,
            socket: ours,
        })
    }

    /// Asks for a supervisor of `unit_dir` reporting on `report`.
    pub(crate) fn request(&self, unit_dir: &Path, report: &OwnedFd) -> io::Result<()> {
        let path = unit_dir.as_os_str().as_bytes();
        if path.is_empty() || path.len() > PATH_MAX {
            return Err(io::Error::other("unit directory path too long"));
        }
        let fds = [report.as_raw_fd()];
        let sent = sendmsg::<UnixAddr>(
            self.socket.as_raw_fd(),
            &[IoSlice::new(path)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(io::Error::from)?;
        if sent != path.len() {
            return Err(io::Error::other("short send to the fork server"));
        }
        Ok(())
    }

    /// Hands the server descriptors of our cgroup subtree's directories
    /// (with their paths), for the supervisors it forks to inherit: one
    /// message, whose payload starts with a NUL (no unit directory path
    /// can), then the NUL-separated paths, in the order of the descriptors.
    pub(crate) fn share_dirs(&self, dirs: &[(PathBuf, RawFd)]) -> io::Result<()> {
        if dirs.is_empty() {
            return Ok(());
        }
        if dirs.len() > SHARED_DIRS_MAX {
            return Err(io::Error::other("too many cgroup directories to share"));
        }
        let mut payload = vec![0u8];
        for (i, (path, _)) in dirs.iter().enumerate() {
            if i > 0 {
                payload.push(0);
            }
            payload.extend_from_slice(path.as_os_str().as_bytes());
        }
        if payload.len() > PATH_MAX {
            return Err(io::Error::other("cgroup directory paths too long"));
        }
        let fds: Vec<RawFd> = dirs.iter().map(|(_, fd)| *fd).collect();
        let sent = sendmsg::<UnixAddr>(
            self.socket.as_raw_fd(),
            &[IoSlice::new(&payload)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(io::Error::from)?;
        if sent != payload.len() {
            return Err(io::Error::other("short send to the fork server"));
        }
        Ok(())
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs (reaps it if not).
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Closes the socket (the fork server exits) and returns the process to
    /// reap.
    pub(crate) fn into_child(self) -> Child {
        drop(self.socket);
        self.child
    }
}

/// The fork server's loop, on the socket at `socket` (its stdin). Called
/// by [`crate::supervise`]; never returns.
pub(crate) fn serve(socket: RawFd) -> ! {
    // SAFETY: setting dispositions in a single-threaded process. Ignoring
    // SIGCHLD makes the kernel reap the supervisors we fork.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    crate::supervisor::child::note_inherited_dispositions();
    let _ = std::env::set_current_dir("/");
    // Our own PID namespace, to return to after each fork; without it (or
    // without the privilege to unshare) the supervisor makes its namespace
    // itself, at the cost of one more process.
    let own_pid_ns = std::fs::File::open("/proc/self/ns/pid").ok();
    let mut buf = vec![0u8; PATH_MAX];
    loop {
        let mut cmsg = nix::cmsg_space!([RawFd; SHARED_DIRS_MAX]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let (len, fds) = match recvmsg::<UnixAddr>(
            socket,
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds: Vec<OwnedFd> = Vec::new();
                if let Ok(cmsgs) = msg.cmsgs() {
                    for m in cmsgs {
                        if let ControlMessageOwned::ScmRights(received) = m {
                            // SAFETY: descriptors the kernel just installed
                            // for us, owned by nobody else.
                            fds.extend(
                                received
                                    .into_iter()
                                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                            );
                        }
                    }
                }
                (msg.bytes, fds)
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::process::exit(0),
        };
        if len == 0 {
            // The executor is gone.
            std::process::exit(0);
        }
        crate::supervisor::note_fork_server_cgroups();
        if buf[0] == 0 {
            // The cgroup directories (see `share_dirs`).
            let paths: Vec<PathBuf> = buf[1..len]
                .split(|b| *b == 0)
                .map(|p| PathBuf::from(OsStr::from_bytes(p)))
                .collect();
            if paths.len() == fds.len() {
                crate::cgroup::inherit_dirs(paths.into_iter().zip(fds).collect());
            }
            continue;
        }
        // One descriptor per request: anything more is closed here.
        let Some(report) = fds.into_iter().next() else {
            continue;
        };
        let report = report.into_raw_fd();
        let dir = Path::new(OsStr::from_bytes(&buf[..len])).to_path_buf();
        // SAFETY: unshare(CLONE_NEWPID) only affects children created later.
        let new_ns = own_pid_ns.is_some() && unsafe { libc::unshare(libc::CLONE_NEWPID) } == 0;
        // SAFETY: we are single-threaded; the child goes on as a fresh
        // supervisor process would.
        let forked = unsafe { libc::fork() };
        if new_ns
            && forked != 0
            && let Some(ns) = &own_pid_ns
        {
            // SAFETY: setns on a namespace descriptor we own; returning to
            // our own namespace resets where the next child is born.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
                // The next unshare would fail: children would land in this
                // unit's (dead) namespace. Better to end and be restarted.
                std::process::exit(1);
            }
        }
        match forked {
            0 => {
                // SAFETY: descriptor and disposition changes in the child.
                unsafe {
                    libc::signal(libc::SIGCHLD, libc::SIG_DFL);
                    libc::dup2(report, 1);
                    libc::close(report);
                    // Our stderr is /dev/null: it replaces the socket on 0.
                    libc::dup2(2, socket);
                }
                crate::supervisor::supervise_unit(&dir)
            }
            // On failure the launcher reads EOF on its pipe and says so.
            _ => {
                // SAFETY: closing the descriptor we received.
                unsafe { libc::close(report) };
            }
        }
    }
}
