//! cgroup v2: one directory per unit in the unified hierarchy, with the
//! `cpu`, `memory`, `pids` and `io` controllers enabled from the mount down
//! to our subtree.

use std::io;
use std::path::PathBuf;

use super::{
    CgroupBackend, CgroupVersion, FreezeState, Reuse, SUPERVISORS, cg_err, mkdir, parse,
    read_optional, read_procs, rmdir, signal_pids, write_if_present, write_value,
};
use crate::error::ExecError;
use crate::spec::{CPU_PERIOD_US, Limits, fmt_bytes};
use crate::status::Usage;

const CONTROLLERS: [&str; 4] = ["cpu", "memory", "pids", "io"];

/// The v2 backend.
#[derive(Debug)]
pub struct CgroupV2 {
    mount: PathBuf,
    /// `<mount>/<parent>`.
    parent: PathBuf,
}

impl CgroupV2 {
    pub fn new(mount: PathBuf, parent: &str) -> CgroupV2 {
        let parent_dir = mount.join(parent);
        CgroupV2 {
            mount,
            parent: parent_dir,
        }
    }

    fn dir(&self, unit: &str) -> PathBuf {
        self.parent.join(unit)
    }
}

impl CgroupBackend for CgroupV2 {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn setup_parent(&self) -> Result<Vec<String>, ExecError> {
        let mut warnings = Vec::new();
        std::fs::create_dir_all(&self.parent).map_err(cg_err(&self.parent))?;
        // Enable the controllers at every level from the mount down to our
        // subtree, so each unit's cgroup has them.
        let mut level = self.mount.clone();
        let relative = self
            .parent
            .strip_prefix(&self.mount)
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let mut levels = vec![level.clone()];
        for c in relative.components() {
            level.push(c);
            levels.push(level.clone());
        }
        let mut missing: Vec<&str> = Vec::new();
        for dir in &levels {
            let available = read_optional(&dir.join("cgroup.controllers"))
                .map_err(cg_err(dir))?
                .map(|t| parse::controllers(&t))
                .unwrap_or_default();
            let enable: Vec<String> = CONTROLLERS
                .iter()
                .filter(|c| available.iter().any(|a| a == *c))
                .map(|c| format!("+{c}"))
                .collect();
            for c in CONTROLLERS {
                if !available.iter().any(|a| a == c) && !missing.contains(&c) {
                    missing.push(c);
                }
            }
            if enable.is_empty() {
                continue;
            }
            let f = dir.join("cgroup.subtree_control");
            if let Err(e) = write_value(&f, &enable.join(" ")) {
                warnings.push(format!(
                    "cannot enable {} in {}: {e}",
                    enable.join(" "),
                    f.display()
                ));
            }
        }
        if !missing.is_empty() {
            warnings.push(format!(
                "cgroup v2 at {} lacks the {} controller(s): those limits and accounts are not available",
                self.mount.display(),
                missing.join(", ")
            ));
        }
        let sup = self.parent.join(SUPERVISORS);
        mkdir(&sup).map_err(cg_err(&sup))?;
        Ok(warnings)
    }

    fn create(
        &self,
        unit: &str,
        limits: &Limits,
        _reuse: Option<&Reuse>,
    ) -> Result<Vec<String>, ExecError> {
        let mut warnings = Vec::new();
        let dir = self.dir(unit);
        if let Err(e) = mkdir(&dir) {
            if e.kind() == io::ErrorKind::NotFound {
                std::fs::create_dir_all(&dir).map_err(cg_err(&dir))?;
            } else {
                return Err(cg_err(&dir)(e));
            }
        }
        if limits.cores > 0 {
            let f = dir.join("cpu.max");
            let value = format!(
                "{} {CPU_PERIOD_US}",
                u64::from(limits.cores) * CPU_PERIOD_US
            );
            if !write_if_present(&f, &value).map_err(cg_err(&f))? {
                warnings.push(format!(
                    "no cpu controller: {} cores not enforced",
                    limits.cores
                ));
            }
        }
        if limits.memory_bytes > 0 {
            let f = dir.join("memory.max");
            if write_if_present(&f, &limits.memory_bytes.to_string()).map_err(cg_err(&f))? {
                let f = dir.join("memory.swap.max");
                write_if_present(&f, "0").map_err(cg_err(&f))?;
            } else {
                warnings.push(format!(
                    "no memory controller: the {} limit is not enforced",
                    fmt_bytes(limits.memory_bytes)
                ));
            }
        }
        let f = dir.join("pids.max");
        let pids = if limits.pids == 0 {
            "max".to_string()
        } else {
            limits.pids.to_string()
        };
        if !write_if_present(&f, &pids).map_err(cg_err(&f))? && limits.pids > 0 {
            warnings.push(format!(
                "no pids controller: at most {} processes not enforced",
                limits.pids
            ));
        }
        Ok(warnings)
    }

    fn join_files(&self, unit: &str) -> Vec<PathBuf> {
        vec![self.dir(unit).join("cgroup.procs")]
    }

    fn supervisor_join_files(&self) -> Vec<PathBuf> {
        vec![self.parent.join(SUPERVISORS).join("cgroup.procs")]
    }

    fn clone_into(&self, unit: &str) -> Option<PathBuf> {
        Some(self.dir(unit))
    }

    fn procs(&self, unit: &str) -> io::Result<Vec<i32>> {
        read_procs(&self.dir(unit).join("cgroup.procs"))
    }

    fn set_frozen(&self, unit: &str, frozen: bool) -> io::Result<()> {
        write_value(
            &self.dir(unit).join("cgroup.freeze"),
            if frozen { "1" } else { "0" },
        )
    }

    fn freeze_state(&self, unit: &str) -> io::Result<FreezeState> {
        let dir = self.dir(unit);
        let Some(events) = read_optional(&dir.join("cgroup.events"))? else {
            return Ok(FreezeState::Thawed);
        };
        if parse::events_frozen(&events) {
            return Ok(FreezeState::Frozen);
        }
        let asked = read_optional(&dir.join("cgroup.freeze"))?
            .and_then(|t| parse::single_value(&t))
            .unwrap_or(0);
        Ok(if asked == 1 {
            FreezeState::Freezing
        } else {
            FreezeState::Thawed
        })
    }

    fn usage(&self, unit: &str) -> io::Result<Usage> {
        let dir = self.dir(unit);
        let mut u = Usage::default();
        if let Some(t) = read_optional(&dir.join("cpu.stat"))? {
            u.cpu_ns = parse::keyed_value(&t, "usage_usec")
                .unwrap_or(0)
                .saturating_mul(1000);
        }
        // memory.peak exists since Linux 5.19; before that only the current
        // value is known.
        for name in ["memory.peak", "memory.current"] {
            if let Some(t) = read_optional(&dir.join(name))? {
                u.peak_memory_bytes = parse::single_value(&t).unwrap_or(0);
                break;
            }
        }
        if let Some(t) = read_optional(&dir.join("io.stat"))? {
            (u.io_read_bytes, u.io_write_bytes) = parse::io_stat_bytes(&t);
        }
        Ok(u)
    }

    fn oom_kills(&self, unit: &str) -> io::Result<u64> {
        Ok(read_optional(&self.dir(unit).join("memory.events"))?
            .and_then(|t| parse::keyed_value(&t, "oom_kill"))
            .unwrap_or(0))
    }

    fn kill_all(&self, unit: &str) -> io::Result<u32> {
        let dir = self.dir(unit);
        let pids = self.procs(unit)?;
        if pids.is_empty() {
            return Ok(0);
        }
        // cgroup.kill (Linux 5.14) kills atomically, frozen or not.
        if !write_if_present(&dir.join("cgroup.kill"), "1")? {
            signal_pids(&pids, libc::SIGKILL);
            write_if_present(&dir.join("cgroup.freeze"), "0")?;
        }
        Ok(u32::try_from(pids.len()).unwrap_or(u32::MAX))
    }

    fn exists(&self, unit: &str) -> bool {
        self.dir(unit).is_dir()
    }

    fn remove(&self, unit: &str) -> io::Result<Option<usize>> {
        rmdir(&self.dir(unit)).map(|()| None)
    }

    fn remove_parent(&self) -> io::Result<()> {
        rmdir(&self.parent.join(SUPERVISORS))?;
        rmdir(&self.parent)
    }
}
