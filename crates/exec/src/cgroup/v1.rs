//! cgroup v1: one directory per unit in each hierarchy we use (cpu, cpuacct,
//! memory, pids, freezer, blkio; co-mounted controllers share one).
//!
//! Making and removing a cgroup in every hierarchy costs about as much as
//! the fork and exec of a small job, so `remove` keeps an ended unit's
//! cgroups, reset, as `<parent>/_idle-K` (v1 allows renaming a cgroup within
//! its parent) and `create` renames one back instead of making new ones.
//! No unit name starts with `_`, so these names cannot collide with a unit.
//!
//! `create` looks for idle cgroups in the first hierarchy and takes one by
//! renaming it there first (ENOENT: another supervisor was faster), then in
//! the other hierarchies in order. `remove` renames in the reverse order, the
//! first hierarchy last, so an idle cgroup shows there only once complete.
//! The first rename of `remove` (in the last hierarchy, the last one a
//! taker renames) claims the index: EEXIST means another remover or an
//! unfinished taker holds it, and it tries another index.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{
    CgPath, CgroupBackend, CgroupVersion, FreezeState, Reuse, SUPERVISORS, V1Hierarchy, cg_err,
    inherited_dir, mkdir, parse, read_cg, read_procs_cg, rmdir, signal_pids, write_cg,
    write_if_present_cg,
};
use crate::error::ExecError;
use crate::spec::{CPU_PERIOD_US, Limits, fmt_bytes};
use crate::status::Usage;

/// Whether `blkio.reset_stats` has been seen to zero the statistics
/// `usage` reports (see `reset_for_reuse`).
static BLKIO_RESET_WORKS: AtomicBool = AtomicBool::new(false);

/// Prefix of the idle cgroups kept for reuse.
const IDLE_PREFIX: &str = "_idle-";
/// At most this many idle cgroups are kept; `remove` deletes the others.
const POOL_MAX: usize = 64;
/// How many indices `remove` looks up for a free one before it deletes the
/// cgroups instead: a full pool then costs a few lookups per unit, at the
/// price of deleting some cgroups before the pool is quite full.
const PARK_PROBES: usize = 8;
/// Memory still charged to an emptied cgroup (kernel objects that cannot
/// be reclaimed) above which it is not reused: the next unit's memory limit
/// would count it.
const REUSE_MAX_RESIDUAL_BYTES: u64 = 1 << 20;
/// Above this much memory still charged, `remove` does not reclaim it
/// (synchronously, with `memory.force_empty`) to reuse the cgroup: that
/// would cost more than a new cgroup, and `rmdir` leaves the reclaim to
/// the kernel.
const FORCE_EMPTY_MAX_BYTES: u64 = 64 << 20;

fn idle_name(k: usize) -> String {
    format!("{IDLE_PREFIX}{k}")
}

/// The index of an idle cgroup's name.
fn idle_index(name: &str) -> Option<usize> {
    name.strip_prefix(IDLE_PREFIX)?.parse().ok()
}

fn cpu_not_mounted(cores: u32) -> String {
    format!("cpu controller not mounted: {cores} cores not enforced")
}

fn swap_not_accounted(memory_bytes: u64) -> String {
    format!(
        "swap is not accounted: the {} limit covers RAM only",
        fmt_bytes(memory_bytes)
    )
}

/// A cheap, stable spread of a name over `0..n` (FNV-1a), so concurrent
/// removers rarely try the same free index first.
fn spread(name: &str, n: usize) -> usize {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    usize::try_from(h % n.max(1) as u64).unwrap_or(0)
}

fn read_number(path: &CgPath) -> io::Result<Option<u64>> {
    Ok(read_cg(path)?.and_then(|t| parse::single_value(&t)))
}

/// The longest entry `getdents64` returns: its header and a name of
/// NAME_MAX bytes with its NUL, aligned to 8.
const DIRENT_MAX: usize = (19 + 255 + 1 + 7) & !7;

/// As `CgroupV1::idle_indices`, in the held directory `dir`, with raw
/// `getdents64`: `fs::read_dir` adds a `fstat` of the directory and a
/// last call that returns nothing. The kernel fills the buffer until the
/// next entry does not fit, so a call that left room for the longest
/// entry has listed all of them. (A pending signal can end one early: an
/// idle cgroup missed is only not reused this time.) A held directory that
/// was removed lists empty: no reuse, and `create` makes the cgroup by its
/// path.
fn idle_indices_in(dir: RawFd) -> io::Result<Vec<usize>> {
    // SAFETY: fstat into a struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above, on a descriptor we hold.
    if unsafe { libc::fstat(dir, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Listing costs in proportion to the cgroups there (about 0.25 ms for
    // 1000); a cgroup directory's link count (2 + subdirectories) says for
    // one stat when `_supervisors` is all there is.
    if st.st_nlink <= 3 {
        return Ok(Vec::new());
    }
    // SAFETY: openat of "." from a descriptor we hold.
    let fd = unsafe {
        libc::openat(
            dir,
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor openat just returned, ours alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = Vec::new();
    loop {
        // SAFETY: getdents64 into a buffer we own, with its length.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        let n = match usize::try_from(n) {
            Ok(0) => break,
            Ok(n) => n.min(buf.len()),
            Err(_) => return Err(io::Error::last_os_error()),
        };
        let mut at = 0;
        // Each entry: inode (8), offset (8), length (2), type (1), name.
        while at + 19 < n {
            let len = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            if len < 20 || at + len > n {
                break;
            }
            let name = &buf[at + 19..at + len];
            let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
            if let Some(k) = std::str::from_utf8(name).ok().and_then(idle_index) {
                out.push(k);
            }
            at += len;
        }
        if n + DIRENT_MAX <= buf.len() {
            break;
        }
    }
    Ok(out)
}

/// The v1 backend.
#[derive(Debug)]
pub struct CgroupV1 {
    /// `<mount>/<parent>` of each hierarchy, with its controllers.
    parents: Vec<(PathBuf, Vec<String>)>,
    /// Per hierarchy, a descriptor of its `<mount>/<parent>` if one is held
    /// (see `CgPath`): inherited from the fork server, or opened by
    /// `hold_dirs`.
    dirs: Vec<Option<RawFd>>,
    /// The ones `hold_dirs` opened (inherited ones belong to the process).
    owned: Vec<OwnedFd>,
}

impl CgroupV1 {
    pub fn new(hierarchies: Vec<V1Hierarchy>, parent: &str) -> Result<CgroupV1, ExecError> {
        let parents: Vec<(PathBuf, Vec<String>)> = hierarchies
            .into_iter()
            .map(|h| (h.mount.join(parent), h.controllers))
            .collect();
        let dirs = parents.iter().map(|(p, _)| inherited_dir(p)).collect();
        let cg = CgroupV1 {
            parents,
            dirs,
            owned: Vec::new(),
        };
        for c in ["memory", "freezer", "cpuacct", "pids"] {
            if cg.parent_of(c).is_none() {
                return Err(ExecError::Cgroup(format!(
                    "cgroup v1 hierarchy {c} is not mounted"
                )));
            }
        }
        Ok(cg)
    }

    fn parent_of(&self, controller: &str) -> Option<usize> {
        self.parents
            .iter()
            .position(|(_, cs)| cs.iter().any(|c| c == controller))
    }

    /// `<mount>/<parent>/<name>` of hierarchy `i`.
    fn at(&self, i: usize, name: &str) -> CgPath {
        let whole = self.parents[i].0.join(name);
        match self.dirs.get(i).copied().flatten() {
            Some(fd) => CgPath::held(fd, PathBuf::from(name), whole),
            None => whole.into(),
        }
    }

    /// `<mount>/<parent>/<unit>` of the hierarchy holding `controller`.
    fn dir(&self, controller: &str, unit: &str) -> Option<CgPath> {
        self.parent_of(controller).map(|i| self.at(i, unit))
    }

    /// The directory of a controller every setup has.
    fn required(&self, controller: &str, unit: &str) -> CgPath {
        // `new` checked that memory, freezer, cpuacct and pids exist.
        self.dir(controller, unit)
            .unwrap_or_else(|| PathBuf::from("/nonexistent").join(unit).into())
    }

    /// Indices of the idle cgroups, as the first hierarchy shows them.
    fn idle_indices(&self) -> io::Result<Vec<usize>> {
        let Some((first, _)) = self.parents.first() else {
            return Ok(Vec::new());
        };
        if let Some(Some(dir)) = self.dirs.first() {
            return idle_indices_in(*dir);
        }
        // Listing costs in proportion to the cgroups there (about 0.25 ms
        // for 1000); a cgroup directory's link count (2 + subdirectories)
        // says for one stat when `_supervisors` is all there is.
        if fs::metadata(first)?.nlink() <= 3 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in fs::read_dir(first)? {
            if let Some(k) = entry?.file_name().to_str().and_then(idle_index) {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// Renames an idle cgroup to `unit`. Returns, per hierarchy, whether
    /// `unit` is in place there (all false: none could be taken).
    fn take_idle(&self, unit: &str) -> Vec<bool> {
        let mut placed = vec![false; self.parents.len()];
        if self.parents.is_empty() {
            return placed;
        }
        let idle = self.idle_indices().unwrap_or_default();
        if idle.is_empty() {
            return placed;
        }
        // Concurrent supervisors start at different candidates: by the
        // unit's name, as every supervisor's own pid is 1.
        let start = spread(unit, idle.len());
        for i in 0..idle.len() {
            let name = idle_name(idle[(start + i) % idle.len()]);
            match self.at(0, &name).rename_to(&self.at(0, unit)) {
                Ok(()) => {
                    self.take_rest(unit, &name, &mut placed);
                    return placed;
                }
                // Another supervisor took it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                // E.g. a leftover `unit`: `create` makes do with that.
                Err(_) => return placed,
            }
        }
        placed
    }

    /// Renames the idle cgroup `name` to `unit`, as `take_idle` does with
    /// one it found. `None`: `name` is not there (taken by another
    /// supervisor), so the caller looks for another.
    fn take_named(&self, unit: &str, name: &str) -> Option<Vec<bool>> {
        let mut placed = vec![false; self.parents.len()];
        if self.parents.is_empty() {
            return Some(placed);
        }
        match self.at(0, name).rename_to(&self.at(0, unit)) {
            Ok(()) => {
                self.take_rest(unit, name, &mut placed);
                Some(placed)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            // E.g. a leftover `unit`: `create` makes do with that.
            Err(_) => Some(placed),
        }
    }

    /// After the first hierarchy's rename of `name` to `unit`: the others.
    fn take_rest(&self, unit: &str, name: &str, placed: &mut [bool]) {
        let name = name.to_owned();
        placed[0] = true;
        for (i, placed) in placed.iter_mut().enumerate().skip(1) {
            let from = self.at(i, &name);
            match from.rename_to(&self.at(i, unit)) {
                Ok(()) => *placed = true,
                Err(_) => {
                    // Missing here (a supervisor died half-way through a
                    // take) or a leftover `unit`: the caller makes or reuses
                    // `unit`. The index is ours now, so nobody else uses
                    // whatever `_idle-K` is left here.
                    let _ = from.rmdir();
                }
            }
        }
    }

    /// Whether an ended unit's cgroups can be parked for reuse, resetting
    /// its counters on the way: present, empty, thawed, and with (almost)
    /// no memory still charged.
    fn reset_for_reuse(&self, unit: &str) -> io::Result<bool> {
        // One hierarchy says for all. The files that move a process between
        // cgroups are root's, and a job runs as a pool uid: its processes
        // are where the job process put itself before its exec, in every
        // hierarchy at once, and their children are born there. The one
        // root process that joins is the job process before its exec, and
        // while it lives it holds the supervisor's lock (a copy of the
        // descriptor), so no remover gets here before its joins are done.
        // So a process in the unit's cgroup of one hierarchy is in it in
        // all, and the freezer's is the one `procs` and `kill_all` read.
        // (A cgroup that is gone reads as empty here; the freezer state
        // below is then missing, which answers no.)
        if !read_procs_cg(&self.required("freezer", unit).join("cgroup.procs"))?.is_empty() {
            return Ok(false);
        }
        let freezer = self.required("freezer", unit).join("freezer.state");
        if read_cg(&freezer)?.as_deref().map(str::trim) != Some("THAWED") {
            return Ok(false);
        }
        let mem = self.required("memory", unit);
        let usage = mem.join("memory.usage_in_bytes");
        let charged = read_number(&usage)?.unwrap_or(0);
        if charged > FORCE_EMPTY_MAX_BYTES {
            return Ok(false);
        }
        // Even `/bin/true` leaves 100-400 KiB charged (kernel objects, the
        // per-CPU charge cache), and force_empty drains every CPU's caches:
        // 1-5 ms of waiting, more than a new cgroup costs. So only when
        // there is more than we accept anyway.
        if charged > REUSE_MAX_RESIDUAL_BYTES {
            // Page cache the unit left would count against the next one.
            write_if_present_cg(&mem.join("memory.force_empty"), "0")?;
            if read_number(&usage)?.unwrap_or(0) > REUSE_MAX_RESIDUAL_BYTES {
                return Ok(false);
            }
        }
        // After force_empty, so the peak restarts from what is left. Only
        // the counters `usage` reports: each write is an open, a write and
        // a close of a cgroup file, per unit.
        write_if_present_cg(&mem.join("memory.max_usage_in_bytes"), "0")?;
        write_if_present_cg(&self.required("cpuacct", unit).join("cpuacct.usage"), "0")?;
        if let Some(blkio) = self.dir("blkio", unit) {
            write_if_present_cg(&blkio.join("blkio.reset_stats"), "0")?;
            // Not every kernel resets the throttling statistics we report:
            // checked until it has once, as the kernel does not change.
            if !BLKIO_RESET_WORKS.load(Ordering::Relaxed) {
                if self.io_bytes(unit)? != (0, 0) {
                    return Ok(false);
                }
                BLKIO_RESET_WORKS.store(true, Ordering::Relaxed);
            }
        }
        Ok(true)
    }

    /// Parks an ended unit's cgroups as `_idle-K`, returning K. `Ok(None)`:
    /// they are not reusable or the pool is full; the caller removes them.
    /// On an error, the ones renamed already are removed.
    fn park(&self, unit: &str) -> io::Result<Option<usize>> {
        // The first hierarchy last: see the module documentation.
        let order: Vec<usize> = (0..self.parents.len()).rev().collect();
        let Some((&claim, others)) = order.split_first() else {
            return Ok(None);
        };
        // A free index is one whose name is free where the claim is made.
        // Looking names up rather than listing the parent keeps the cost
        // bounded when many ended units are still there.
        let start = spread(unit, POOL_MAX);
        let mut free = (0..PARK_PROBES)
            .map(|i| (start + i) % POOL_MAX)
            // A hint: the rename below decides.
            .filter(|&k| !self.at(claim, &idle_name(k)).probably_exists())
            .peekable();
        if free.peek().is_none() || !self.reset_for_reuse(unit)? {
            return Ok(None);
        }
        for k in free {
            let name = idle_name(k);
            match self.at(claim, unit).rename_to(&self.at(claim, &name)) {
                Ok(()) => {}
                // Held by another remover, by a taker still renaming, or
                // left by a supervisor that died half-way: try another.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
            for (i, &h) in others.iter().enumerate() {
                if let Err(e) = self.at(h, unit).rename_to(&self.at(h, &name)) {
                    // The caller removes what is still named `unit`.
                    for &done in std::iter::once(&claim).chain(&others[..i]) {
                        let _ = self.at(done, &name).rmdir();
                    }
                    return Err(e);
                }
            }
            return Ok(Some(k));
        }
        Ok(None)
    }

    /// The warnings `create` gives for `limits` where a unit's cgroup has
    /// them in place already (taken from the idle ones): what this setup
    /// cannot enforce.
    fn limit_warnings(&self, unit: &str, limits: &Limits) -> Vec<String> {
        let mut warnings = Vec::new();
        if limits.cores > 0 && self.dir("cpu", unit).is_none() {
            warnings.push(cpu_not_mounted(limits.cores));
        }
        if limits.memory_bytes > 0
            && !self
                .required("memory", unit)
                .join("memory.memsw.limit_in_bytes")
                .probably_exists()
        {
            warnings.push(swap_not_accounted(limits.memory_bytes));
        }
        warnings
    }

    /// Bytes read and written, from the blkio hierarchy (zeros without it).
    fn io_bytes(&self, unit: &str) -> io::Result<(u64, u64)> {
        if let Some(blkio) = self.dir("blkio", unit) {
            for name in [
                "blkio.throttle.io_service_bytes",
                "blkio.io_service_bytes_recursive",
            ] {
                if let Some(t) = read_cg(&blkio.join(name))? {
                    return Ok(parse::blkio_service_bytes(&t));
                }
            }
        }
        Ok((0, 0))
    }
}

impl CgroupBackend for CgroupV1 {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn setup_parent(&self) -> Result<Vec<String>, ExecError> {
        for (parent, _) in &self.parents {
            std::fs::create_dir_all(parent).map_err(cg_err(parent))?;
            let sup = parent.join(SUPERVISORS);
            mkdir(&sup).map_err(cg_err(&sup))?;
        }
        Ok(Vec::new())
    }

    fn create(
        &self,
        unit: &str,
        limits: &Limits,
        reuse: Option<&Reuse>,
    ) -> Result<Vec<String>, ExecError> {
        let named = reuse.and_then(|r| Some((self.take_named(unit, &idle_name(r.index))?, r)));
        let (placed, limits_in_place) = match named {
            Some((placed, r)) => {
                let whole = placed.iter().all(|p| *p);
                (placed, whole && r.same_limits(limits))
            }
            None => (self.take_idle(unit), false),
        };
        if limits_in_place {
            return Ok(self.limit_warnings(unit, limits));
        }
        let mut warnings = Vec::new();
        for (i, placed) in placed.into_iter().enumerate() {
            if placed {
                continue;
            }
            let dir = self.at(i, unit);
            if let Err(e) = dir.mkdir() {
                if e.kind() == io::ErrorKind::NotFound {
                    // Someone removed our subtree: make it again.
                    std::fs::create_dir_all(dir.whole()).map_err(cg_err(dir.whole()))?;
                } else {
                    return Err(cg_err(dir.whole())(e));
                }
            }
        }
        // Every limit is written, also "none": a reused cgroup still has the
        // previous unit's.
        match self.dir("cpu", unit) {
            Some(dir) if limits.cores > 0 => {
                let quota = u64::from(limits.cores) * CPU_PERIOD_US;
                let f = dir.join("cpu.cfs_period_us");
                write_cg(&f, &CPU_PERIOD_US.to_string()).map_err(cg_err(f.whole()))?;
                let f = dir.join("cpu.cfs_quota_us");
                write_cg(&f, &quota.to_string()).map_err(cg_err(f.whole()))?;
            }
            Some(dir) => {
                let f = dir.join("cpu.cfs_quota_us");
                write_cg(&f, "-1").map_err(cg_err(f.whole()))?;
            }
            None if limits.cores > 0 => warnings.push(cpu_not_mounted(limits.cores)),
            None => {}
        }
        let mem = self.required("memory", unit);
        // RAM + swap must stay at least the RAM limit: lift it before the
        // RAM limit changes (the previous unit's may be below the new one).
        // Absent when the kernel does not account swap.
        let memsw = mem.join("memory.memsw.limit_in_bytes");
        let swap_accounted = write_if_present_cg(&memsw, "-1").map_err(cg_err(memsw.whole()))?;
        let f = mem.join("memory.limit_in_bytes");
        let limit = if limits.memory_bytes > 0 {
            limits.memory_bytes.to_string()
        } else {
            "-1".to_string()
        };
        write_cg(&f, &limit).map_err(cg_err(f.whole()))?;
        if limits.memory_bytes > 0 {
            if swap_accounted {
                // Without it the job would swap instead of hitting the limit.
                write_cg(&memsw, &limit).map_err(cg_err(memsw.whole()))?;
            } else {
                warnings.push(swap_not_accounted(limits.memory_bytes));
            }
        }
        let f = self.required("pids", unit).join("pids.max");
        let pids = if limits.pids == 0 {
            "max".to_string()
        } else {
            limits.pids.to_string()
        };
        write_cg(&f, &pids).map_err(cg_err(f.whole()))?;
        Ok(warnings)
    }

    fn join_files(&self, unit: &str) -> Vec<PathBuf> {
        self.parents
            .iter()
            .map(|(p, _)| p.join(unit).join("tasks"))
            .collect()
    }

    fn join_paths(&self, unit: &str) -> Vec<CgPath> {
        (0..self.parents.len())
            .map(|i| self.at(i, unit).join("tasks"))
            .collect()
    }

    fn hold_dirs(&mut self) {
        for (i, (parent, _)) in self.parents.iter().enumerate() {
            if self.dirs[i].is_some() {
                continue;
            }
            // O_PATH: only a place to look names up from.
            match fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(parent)
            {
                Ok(f) => {
                    let fd = OwnedFd::from(f);
                    self.dirs[i] = Some(fd.as_raw_fd());
                    self.owned.push(fd);
                }
                Err(e) => tracing::debug!(
                    target: "xtreem_exec",
                    "cannot hold {}: {e}; using its path",
                    parent.display()
                ),
            }
        }
    }

    fn held_dirs(&self) -> Vec<(PathBuf, RawFd)> {
        self.parents
            .iter()
            .zip(&self.dirs)
            .filter_map(|((p, _), fd)| Some((p.clone(), (*fd)?)))
            .collect()
    }

    fn supervisor_join_files(&self) -> Vec<PathBuf> {
        self.parents
            .iter()
            .map(|(p, _)| p.join(SUPERVISORS).join("tasks"))
            .collect()
    }

    fn procs(&self, unit: &str) -> io::Result<Vec<i32>> {
        read_procs_cg(&self.required("freezer", unit).join("cgroup.procs"))
    }

    fn set_frozen(&self, unit: &str, frozen: bool) -> io::Result<()> {
        let f = self.required("freezer", unit).join("freezer.state");
        write_cg(&f, if frozen { "FROZEN" } else { "THAWED" })
    }

    fn freeze_state(&self, unit: &str) -> io::Result<FreezeState> {
        let f = self.required("freezer", unit).join("freezer.state");
        Ok(match read_cg(&f)?.as_deref().map(str::trim) {
            Some("FROZEN") => FreezeState::Frozen,
            Some("FREEZING") => FreezeState::Freezing,
            _ => FreezeState::Thawed,
        })
    }

    fn usage(&self, unit: &str) -> io::Result<Usage> {
        let mut u = Usage::default();
        let cpuacct = self.required("cpuacct", unit);
        let Some(t) = read_cg(&cpuacct.join("cpuacct.usage"))? else {
            // The cgroup is gone: nothing else to read.
            return Ok(u);
        };
        u.cpu_ns = parse::single_value(&t).unwrap_or(0);
        let mem = self.required("memory", unit);
        if let Some(t) = read_cg(&mem.join("memory.max_usage_in_bytes"))? {
            u.peak_memory_bytes = parse::single_value(&t).unwrap_or(0);
        }
        (u.io_read_bytes, u.io_write_bytes) = self.io_bytes(unit)?;
        Ok(u)
    }

    fn oom_kills(&self, unit: &str) -> io::Result<u64> {
        let f = self.required("memory", unit).join("memory.oom_control");
        Ok(read_cg(&f)?
            .and_then(|t| parse::keyed_value(&t, "oom_kill"))
            .unwrap_or(0))
    }

    fn kill_all(&self, unit: &str) -> io::Result<u32> {
        let pids = self.procs(unit)?;
        if pids.is_empty() {
            // Nobody to kill, and none can come: a thaw would change nothing.
            return Ok(0);
        }
        signal_pids(&pids, libc::SIGKILL);
        // v1 frozen tasks do not die of SIGKILL until thawed.
        if self.freeze_state(unit)? != FreezeState::Thawed {
            self.set_frozen(unit, false)?;
        }
        Ok(u32::try_from(pids.len()).unwrap_or(u32::MAX))
    }

    fn exists(&self, unit: &str) -> bool {
        self.required("freezer", unit).exists()
    }

    fn remove(&self, unit: &str) -> io::Result<Option<usize>> {
        match self.park(unit) {
            Ok(Some(k)) => return Ok(Some(k)),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(target: "xtreem_exec", unit, "cannot keep the cgroup for reuse: {e}")
            }
        }
        for i in 0..self.parents.len() {
            self.at(i, unit).rmdir()?;
        }
        Ok(None)
    }

    fn remove_parent(&self) -> io::Result<()> {
        for (parent, _) in &self.parents {
            let entries = match fs::read_dir(parent) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            // Every hierarchy, not only the first: a supervisor that died
            // half-way through a take may have left some elsewhere.
            for entry in entries {
                let entry = entry?;
                if entry.file_name().to_str().and_then(idle_index).is_some() {
                    rmdir(&entry.path())?;
                }
            }
            rmdir(&parent.join(SUPERVISORS))?;
            rmdir(parent)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_cgroups_are_all_listed_however_many_calls_it_takes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let open = || {
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(dir)
                .unwrap()
        };
        fs::create_dir(dir.join(SUPERVISORS)).unwrap();
        assert!(idle_indices_in(open().as_raw_fd()).unwrap().is_empty());
        // Far more entries than one 32 KiB call returns, with long names
        // among them.
        let long = "u".repeat(200);
        for k in 0..3000 {
            fs::create_dir(dir.join(idle_name(k))).unwrap();
            fs::create_dir(dir.join(format!("{long}-{k}"))).unwrap();
        }
        let mut got = idle_indices_in(open().as_raw_fd()).unwrap();
        got.sort_unstable();
        assert_eq!(got, (0..3000).collect::<Vec<_>>());
    }
}
