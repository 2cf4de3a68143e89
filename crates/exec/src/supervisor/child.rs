//! The code that runs between the job process's creation and its `exec`.
//!
//! The job process shares the supervisor's memory until it execs
//! ([`vfork_job`], as `posix_spawn` does) unless it is born in its v2
//! cgroup by `clone3`: either way everything it needs is prepared before
//! ([`ChildPlan`]), and it makes raw system calls only, never allocating.

use std::ffi::{CString, c_int};
use std::os::fd::RawFd;
use std::path::{Component, Path};

use crate::cgroup::CgPath;
use crate::spec::LaunchSpec;

/// Where the job process failed before running the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    JoinCgroup = 1,
    MountNamespace = 2,
    OpenStdin = 3,
    OpenStdout = 4,
    OpenStderr = 5,
    Workdir = 6,
    Tmp = 7,
    Proc = 8,
    Stdio = 9,
    Ids = 10,
    Chdir = 11,
    Exec = 12,
    Credential = 13,
}

impl Stage {
    pub(crate) fn from_u32(v: u32) -> Option<Stage> {
        use Stage::*;
        Some(match v {
            1 => JoinCgroup,
            2 => MountNamespace,
            3 => OpenStdin,
            4 => OpenStdout,
            5 => OpenStderr,
            6 => Workdir,
            7 => Tmp,
            8 => Proc,
            9 => Stdio,
            10 => Ids,
            11 => Chdir,
            12 => Exec,
            13 => Credential,
            _ => return None,
        })
    }
}

/// A cgroup file the job process writes `0` into to join: from a held
/// directory (`dir`, -1 for none) by `relative`, else (or when that finds
/// nothing: see `CgPath`) by `whole`.
struct JoinFile {
    dir: c_int,
    relative: CString,
    whole: CString,
}

/// Everything the job process needs, as C strings, built before the fork.
pub(crate) struct ChildPlan {
    join: Vec<JoinFile>,
    uid: libc::uid_t,
    gid: libc::gid_t,
    stdin: CString,
    stdout: CString,
    stderr: CString,
    workdir: CString,
    /// Directories to create in the new `/tmp` so the workdir, when it lives
    /// under `/tmp`, is bind-mounted back at its own path (the last one is
    /// the mount point).
    tmp_bind: Vec<CString>,
    tmpfs_options: CString,
    /// Where in the private `/tmp` ([`crate::CREDENTIAL_PATH`]) and what.
    credential: Option<(CString, Vec<u8>)>,
    /// Signals to set back to their default action before the exec.
    reset_signals: Vec<c_int>,
    /// The limit on open files to set before the exec, if not the inherited.
    open_files: Option<libc::rlimit>,
    candidates: Vec<CString>,
    /// Own what `argv_ptrs` and `envp_ptrs` point into.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    /// Null-terminated pointers into `_argv` and `_envp` (their heap
    /// buffers never move), built before the job process exists.
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

fn cstring(what: &str, s: impl Into<Vec<u8>>) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

fn cpath(what: &str, p: &Path) -> Result<CString, String> {
    cstring(what, p.as_os_str().as_encoded_bytes().to_vec())
}

impl ChildPlan {
    pub(crate) fn new(
        spec: &LaunchSpec,
        join: &[CgPath],
        open_files: Option<u64>,
    ) -> Result<ChildPlan, String> {
        let program = spec.argv.first().ok_or("argv is empty")?;
        let candidates = if program.contains('/') {
            vec![cstring("argv[0]", program.as_str())?]
        } else {
            spec.search_path()
                .split(':')
                .map(|dir| {
                    let dir = if dir.is_empty() { "." } else { dir };
                    cstring("PATH", format!("{}/{program}", dir.trim_end_matches('/')))
                })
                .collect::<Result<_, _>>()?
        };
        let mut tmp_bind = Vec::new();
        if let Ok(rest) = spec.workdir.strip_prefix("/tmp") {
            let mut at = std::path::PathBuf::from("/tmp");
            for c in rest.components() {
                match c {
                    Component::Normal(name) => {
                        at.push(name);
                        tmp_bind.push(cpath("workdir", &at)?);
                    }
                    _ => return Err("workdir must be a normalized absolute path".into()),
                }
            }
            if tmp_bind.is_empty() {
                return Err("workdir must not be /tmp itself: the job gets a private /tmp".into());
            }
        }
        let mut tmpfs_options = String::from("mode=1777");
        if spec.limits.memory_bytes > 0 {
            tmpfs_options.push_str(&format!(",size={}", spec.limits.memory_bytes));
        }
        let argv: Vec<CString> = spec
            .argv
            .iter()
            .map(|a| cstring("an argument", a.as_str()))
            .collect::<Result<_, _>>()?;
        let envp: Vec<CString> = spec
            .env
            .iter()
            .map(|(k, v)| cstring("the environment", format!("{k}={v}")))
            .collect::<Result<_, _>>()?;
        Ok(ChildPlan {
            argv_ptrs: null_terminated(&argv),
            envp_ptrs: null_terminated(&envp),
            _argv: argv,
            _envp: envp,
            join: join
                .iter()
                .map(|p| {
                    let (dir, relative) = match p.held_parts() {
                        Some((fd, rel)) => (fd, cpath("cgroup file", rel)?),
                        None => (-1, CString::default()),
                    };
                    Ok::<_, String>(JoinFile {
                        dir,
                        relative,
                        whole: cpath("cgroup file", p.whole())?,
                    })
                })
                .collect::<Result<_, _>>()?,
            uid: spec.uid,
            gid: spec.gid,
            stdin: cpath(
                "stdin",
                spec.stdin.as_deref().unwrap_or(Path::new("/dev/null")),
            )?,
            stdout: cpath("stdout", &spec.stdout)?,
            stderr: cpath("stderr", &spec.stderr)?,
            workdir: cpath("workdir", &spec.workdir)?,
            tmp_bind,
            tmpfs_options: cstring("tmpfs options", tmpfs_options)?,
            credential: match &spec.credential {
                Some(c) => Some((
                    cstring("credential path", crate::CREDENTIAL_PATH)?,
                    c.0.as_bytes().to_vec(),
                )),
                None => None,
            },
            candidates,
            reset_signals: signals_to_reset(),
            open_files: open_files
                .map(crate::open_files::job_limit)
                .transpose()
                .map_err(|e| format!("cannot read the open-files limit: {e}"))?,
        })
    }
}

/// Signals this process found not at their default action when it first
/// looked (see [`note_inherited_dispositions`]).
static INHERITED_DISPOSITIONS: std::sync::OnceLock<Vec<c_int>> = std::sync::OnceLock::new();

/// Signals whose disposition is not the default in this process. Only those
/// need resetting before the job's exec (an exec resets handlers but keeps
/// ignored signals), which saves the job process one `rt_sigaction` per
/// signal (about 60) on every start.
fn scan_dispositions() -> Vec<c_int> {
    (1..=libc::SIGRTMAX())
        .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
        .filter(|&sig| {
            let mut old = KernelSigaction::default();
            // The system call itself: glibc's wrapper hides its own
            // real-time signals, which a job must not inherit ignored either.
            // SAFETY: querying only (no new action) into a struct we own,
            // of the kernel's layout and size.
            let queried = unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    std::ptr::null::<KernelSigaction>(),
                    &mut old as *mut KernelSigaction,
                    KERNEL_SIGSET_BYTES,
                )
            } == 0;
            queried && old.handler != libc::SIG_DFL
        })
        .collect()
}

/// The kernel's `struct sigaction` on x86_64 and aarch64 (handler, flags,
/// restorer, mask), which `rt_sigaction` takes without glibc in between.
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// The size of the kernel's signal set.
const KERNEL_SIGSET_BYTES: usize = 8;

/// Sets `sig` back to its default action by the system call (no allocation,
/// no glibc filtering), for the job process before its exec.
fn reset_to_default(sig: c_int) {
    let default = KernelSigaction::default();
    // SAFETY: a new action of the kernel's layout, on our stack.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &default as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            KERNEL_SIGSET_BYTES,
        )
    };
}

/// Records which signals are not at their default action, once per process.
/// The fork server calls it before its first fork, so no supervisor it forks
/// pays for the scan again.
pub(crate) fn note_inherited_dispositions() {
    INHERITED_DISPOSITIONS.get_or_init(scan_dispositions);
}

/// What the job process resets: what was inherited, plus every signal the
/// supervisor code itself changes (SIGHUP, SIGCHLD) and the ones the Rust
/// runtime handles (SIGPIPE, SIGSEGV, SIGBUS), in case they changed after
/// the scan. Resetting a signal already at its default is harmless.
fn signals_to_reset() -> Vec<c_int> {
    let mut set = INHERITED_DISPOSITIONS
        .get_or_init(scan_dispositions)
        .clone();
    set.extend([
        libc::SIGHUP,
        libc::SIGCHLD,
        libc::SIGPIPE,
        libc::SIGSEGV,
        libc::SIGBUS,
    ]);
    set.sort_unstable();
    set.dedup();
    set
}

fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The tag of the message that carries the job's host pid; failures carry
/// their [`Stage`] (never 0).
const HOST_PID: u32 = 0;

/// The most the job process writes on the error pipe: its host pid, then
/// possibly one failure.
pub(crate) const MESSAGES_MAX: usize = 16;

/// Writes one 8-byte message (tag, value) on the error pipe.
fn send(err_fd: RawFd, tag: u32, value: i32) {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&tag.to_le_bytes());
    msg[4..].copy_from_slice(&value.to_le_bytes());
    // SAFETY: a plain system call on a buffer we own.
    unsafe { libc::write(err_fd, msg.as_ptr().cast(), msg.len()) };
}

/// Reports `stage`/`errno` on the error pipe and ends the process.
fn fail(err_fd: RawFd, stage: Stage, errno: c_int) -> ! {
    send(err_fd, stage as u32, errno);
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(127) }
}

/// What the job process wrote on the error pipe before its exec closed it
/// (or it ended): its host pid, and the failure if there was one.
#[derive(Debug, Default)]
pub(crate) struct Messages {
    pub host_pid: Option<i32>,
    pub failure: Option<(Stage, i32)>,
    /// Bytes that are no message we know.
    pub garbled: bool,
}

/// Parses what [`job`] wrote.
pub(crate) fn decode_messages(bytes: &[u8]) -> Messages {
    let mut out = Messages::default();
    let mut chunks = bytes.chunks_exact(8);
    for msg in &mut chunks {
        let (tag, value) = msg.split_at(4);
        let tag = u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]]);
        let value = i32::from_le_bytes([value[0], value[1], value[2], value[3]]);
        match (tag, Stage::from_u32(tag)) {
            (HOST_PID, _) => out.host_pid = Some(value),
            (_, Some(stage)) => out.failure = Some((stage, value)),
            (_, None) => out.garbled = true,
        }
    }
    if !chunks.remainder().is_empty() {
        out.garbled = true;
    }
    out
}

/// Our pid as the host sees it, from `/proc/self` of the host's /proc
/// (still mounted: we have not unshared the mount namespace yet), without
/// allocating, so the job process can call it too. 0 if it cannot be read.
pub(crate) fn host_pid() -> i32 {
    let mut buf = [0u8; 16];
    // SAFETY: readlink into a buffer we own, with its length.
    let n = unsafe { libc::readlink(c"/proc/self".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return 0;
    }
    let mut pid: i32 = 0;
    for &b in &buf[..n as usize] {
        if !b.is_ascii_digit() {
            return 0;
        }
        pid = pid.saturating_mul(10).saturating_add(i32::from(b - b'0'));
    }
    pid
}

fn null_terminated(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The job process: joins the cgroup, gets a private mount namespace with
/// its own `/tmp` and `/proc`, opens its files as the job's user, drops to
/// that user for good, and execs. Never returns; failures go to `err_fd`
/// (close-on-exec, so a successful exec closes it: the supervisor reads EOF).
pub(crate) fn job(plan: &ChildPlan, in_cgroup: bool, err_fd: RawFd) -> ! {
    // The supervisor is the namespace's init and sees us as pid 2; the
    // executor needs the host's pid.
    send(err_fd, HOST_PID, host_pid());
    // SAFETY: the process is a fresh fork of the single-threaded supervisor;
    // every pointer passed below comes from a CString or a local that
    // outlives the call.
    unsafe {
        // The supervisor blocks signals and Rust ignores SIGPIPE: the job
        // starts with defaults.
        for &sig in &plan.reset_signals {
            reset_to_default(sig);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());

        // 1. Into the unit's cgroup before anything else runs (unless born
        //    there by clone3).
        let join: &[JoinFile] = if in_cgroup { &[] } else { &plan.join };
        for f in join {
            let mut fd = -1;
            if f.dir >= 0 {
                fd = libc::openat(f.dir, f.relative.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 && errno() != libc::ENOENT {
                    fail(err_fd, Stage::JoinCgroup, errno());
                }
            }
            if fd < 0 {
                fd = libc::open(f.whole.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            }
            if fd < 0 {
                fail(err_fd, Stage::JoinCgroup, errno());
            }
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(err_fd, Stage::JoinCgroup, errno());
            }
            libc::close(fd);
        }

        // 2. A mount namespace of its own; host mounts still propagate in
        //    (slave), ours never out.
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            fail(err_fd, Stage::MountNamespace, errno());
        }
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) != 0
        {
            fail(err_fd, Stage::MountNamespace, errno());
        }

        // 3. Open the job's files with the job's file-system identity, so a
        //    symlink planted by the user cannot make root open anything.
        let groups = [plan.gid];
        // Raw system calls for the ids: glibc's wrappers would try to
        // change every thread of a process whose memory we share.
        if libc::syscall(libc::SYS_setgroups, 1, groups.as_ptr()) != 0 {
            fail(err_fd, Stage::Ids, errno());
        }
        libc::setfsgid(plan.gid);
        libc::setfsuid(plan.uid);
        if libc::setfsuid(plan.uid) != plan.uid as c_int
            || libc::setfsgid(plan.gid) != plan.gid as c_int
        {
            fail(err_fd, Stage::Ids, libc::EPERM);
        }
        let flags_out =
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NOCTTY | libc::O_CLOEXEC;
        let stdin = libc::open(
            plan.stdin.as_ptr(),
            libc::O_RDONLY | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if stdin < 0 {
            fail(err_fd, Stage::OpenStdin, errno());
        }
        let stdout = libc::open(plan.stdout.as_ptr(), flags_out, 0o600 as libc::c_uint);
        if stdout < 0 {
            fail(err_fd, Stage::OpenStdout, errno());
        }
        let stderr = libc::open(plan.stderr.as_ptr(), flags_out, 0o600 as libc::c_uint);
        if stderr < 0 {
            fail(err_fd, Stage::OpenStderr, errno());
        }
        let workdir = libc::open(
            plan.workdir.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if workdir < 0 {
            fail(err_fd, Stage::Workdir, errno());
        }
        libc::setfsuid(0);
        libc::setfsgid(0);

        // 4. A private /tmp, sized to the memory limit (its pages are charged
        //    to the unit). A workdir under /tmp is bound back in place.
        if libc::mount(
            c"tmpfs".as_ptr(),
            c"/tmp".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            plan.tmpfs_options.as_ptr().cast(),
        ) != 0
        {
            fail(err_fd, Stage::Tmp, errno());
        }
        if let Some(target) = plan.tmp_bind.last() {
            for dir in &plan.tmp_bind {
                if libc::mkdir(dir.as_ptr(), 0o755) != 0 && errno() != libc::EEXIST {
                    fail(err_fd, Stage::Tmp, errno());
                }
            }
            // "/proc/self/fd/N" of the host /proc, still mounted here.
            let mut src = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
            let mut n = workdir as u32;
            let mut digits = [0u8; 10];
            let mut len = 0;
            loop {
                digits[len] = b'0' + (n % 10) as u8;
                len += 1;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            for i in 0..len {
                src[14 + i] = digits[len - 1 - i];
            }
            if libc::mount(
                src.as_ptr().cast(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ) != 0
            {
                fail(err_fd, Stage::Tmp, errno());
            }
        }

        // The credential, in memory only and the job's alone.
        if let Some((path, credential)) = &plan.credential {
            libc::setfsgid(plan.gid);
            libc::setfsuid(plan.uid);
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o400 as libc::c_uint,
            );
            if fd < 0 {
                fail(err_fd, Stage::Credential, errno());
            }
            let mut written = 0;
            while written < credential.len() {
                let n = libc::write(
                    fd,
                    credential[written..].as_ptr().cast(),
                    credential.len() - written,
                );
                if n <= 0 {
                    fail(err_fd, Stage::Credential, errno());
                }
                written += n as usize;
            }
            libc::close(fd);
            libc::setfsuid(0);
            libc::setfsgid(0);
        }

        // 5. /proc of the new PID namespace.
        if libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ) != 0
        {
            fail(err_fd, Stage::Proc, errno());
        }

        // 6. Standard streams (dup2 clears close-on-exec on the copies).
        if libc::dup2(stdin, 0) < 0 || libc::dup2(stdout, 1) < 0 || libc::dup2(stderr, 2) < 0 {
            fail(err_fd, Stage::Stdio, errno());
        }

        // 7. The job's identity, for good.
        if libc::syscall(libc::SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0 {
            fail(err_fd, Stage::Ids, errno());
        }
        if libc::syscall(libc::SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0 {
            fail(err_fd, Stage::Ids, errno());
        }
        if libc::getuid() == 0
            || libc::geteuid() == 0
            || libc::getgid() == 0
            || libc::getegid() == 0
        {
            fail(err_fd, Stage::Ids, libc::EPERM);
        }

        // 8. Working directory, checked with the job's permissions.
        if libc::fchdir(workdir) != 0 {
            fail(err_fd, Stage::Chdir, errno());
        }
        libc::umask(0o022);
        // Lowering a soft limit cannot fail.
        if let Some(limit) = &plan.open_files {
            libc::setrlimit(libc::RLIMIT_NOFILE, limit);
        }
        // Nothing but 0, 1, 2 (and the error pipe until exec) crosses exec.
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );

        // 9. Exec, searching PATH like execvp (but never via /bin/sh).
        let mut last = libc::ENOENT;
        let mut denied = false;
        for path in &plan.candidates {
            libc::execve(
                path.as_ptr(),
                plan.argv_ptrs.as_ptr(),
                plan.envp_ptrs.as_ptr(),
            );
            last = errno();
            match last {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ELOOP | libc::ENAMETOOLONG
                    if plan.candidates.len() > 1 => {}
                _ => break,
            }
        }
        if denied && matches!(last, libc::ENOENT | libc::ENOTDIR | libc::ESTALE) {
            last = libc::EACCES;
        }
        fail(err_fd, Stage::Exec, last)
    }
}

/// Stack of the job process between its creation and its exec: a few
/// system calls, but guarded.
const JOB_STACK: usize = 256 * 1024;

/// What [`vfork_entry`] gets.
struct VforkArgs<'a> {
    plan: &'a ChildPlan,
    err_fd: RawFd,
}

extern "C" fn vfork_entry(arg: *mut libc::c_void) -> c_int {
    // SAFETY: `arg` is the `VforkArgs` that `vfork_job` keeps alive (its
    // caller is suspended until we exec or end).
    let args = unsafe { &*(arg as *const VforkArgs) };
    job(args.plan, false, args.err_fd)
}

/// Starts [`job`] sharing our memory (`CLONE_VM | CLONE_VFORK`, as
/// `posix_spawn` does): no page tables to copy or tear down at exec, and we
/// resume once it has exec'd or ended. It runs on a stack of its own with a
/// guard page. Returns its pid (in our PID namespace) or the errno.
///
/// # Safety
/// The caller must be single-threaded; `plan` must stay untouched until the
/// call returns (it does: we are suspended meanwhile).
pub(crate) unsafe fn vfork_job(plan: &ChildPlan, err_fd: RawFd) -> Result<libc::pid_t, c_int> {
    // SAFETY: a private anonymous mapping we unmap below; the lowest page
    // becomes the guard.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            JOB_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(errno());
    }
    // SAFETY: the first page of the mapping we just made.
    unsafe { libc::mprotect(stack, 4096, libc::PROT_NONE) };
    let args = VforkArgs { plan, err_fd };
    // SAFETY: the stack grows down from the end of the mapping; the child
    // only makes system calls and execs or _exits; `args` outlives it.
    let pid = unsafe {
        libc::clone(
            vfork_entry,
            stack.cast::<u8>().add(JOB_STACK).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&args as *const VforkArgs).cast_mut().cast(),
        )
    };
    let result = if pid < 0 { Err(errno()) } else { Ok(pid) };
    // SAFETY: the child has exec'd or ended: nothing uses the stack now.
    unsafe { libc::munmap(stack, JOB_STACK) };
    result
}

/// `clone3` arguments (Linux 5.7 layout, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `fork`, the child being born in the cgroup `cgroup_fd` (v2): no
/// migration. Returns 0 in the child, its pid in the parent, or the errno
/// (no clone3, kernel before 5.7, cgroup not usable): fall back to `fork`.
///
/// # Safety
/// Like `fork`, and more: glibc's fork bookkeeping is skipped, so the child
/// must only make raw system calls until it execs or `_exit`s.
pub(crate) unsafe fn fork_into_cgroup(cgroup_fd: RawFd) -> Result<libc::pid_t, c_int> {
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_fd as u64,
        ..CloneArgs::default()
    };
    // SAFETY: the caller upholds fork's rules; `args` outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(rc as libc::pid_t)
    }
}
