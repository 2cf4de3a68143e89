//! cgroup v1: one directory per unit in each hierarchy we use (cpu, cpuacct,
//! memory, pids, freezer, blkio; co-mounted controllers share one).

use std::io;
use std::path::PathBuf;

use super::{
    CgroupBackend, CgroupVersion, FreezeState, SUPERVISORS, V1Hierarchy, cg_err, mkdir, parse,
    read_optional, read_procs, rmdir, signal_pids, write_if_present, write_value,
};
use crate::error::ExecError;
use crate::spec::{CPU_PERIOD_US, Limits, fmt_bytes};
use crate::status::Usage;

/// The v1 backend.
#[derive(Debug)]
pub struct CgroupV1 {
    /// `<mount>/<parent>` of each hierarchy, with its controllers.
    parents: Vec<(PathBuf, Vec<String>)>,
}

impl CgroupV1 {
    pub fn new(hierarchies: Vec<V1Hierarchy>, parent: &str) -> Result<CgroupV1, ExecError> {
        let parents: Vec<(PathBuf, Vec<String>)> = hierarchies
            .into_iter()
            .map(|h| (h.mount.join(parent), h.controllers))
            .collect();
        let cg = CgroupV1 { parents };
        for c in ["memory", "freezer", "cpuacct", "pids"] {
            if cg.parent_of(c).is_none() {
                return Err(ExecError::Cgroup(format!(
                    "cgroup v1 hierarchy {c} is not mounted"
                )));
            }
        }
        Ok(cg)
    }

    fn parent_of(&self, controller: &str) -> Option<&PathBuf> {
        self.parents
            .iter()
            .find(|(_, cs)| cs.iter().any(|c| c == controller))
            .map(|(p, _)| p)
    }

    /// `<mount>/<parent>/<unit>` of the hierarchy holding `controller`.
    fn dir(&self, controller: &str, unit: &str) -> Option<PathBuf> {
        self.parent_of(controller).map(|p| p.join(unit))
    }

    /// The directory of a controller every setup has.
    fn required(&self, controller: &str, unit: &str) -> PathBuf {
        // `new` checked that memory, freezer, cpuacct and pids exist.
        self.dir(controller, unit)
            .unwrap_or_else(|| PathBuf::from("/nonexistent").join(unit))
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

    fn create(&self, unit: &str, limits: &Limits) -> Result<Vec<String>, ExecError> {
        let mut warnings = Vec::new();
        for (parent, _) in &self.parents {
            let dir = parent.join(unit);
            if let Err(e) = mkdir(&dir) {
                if e.kind() == io::ErrorKind::NotFound {
                    // Someone removed our subtree: make it again.
                    std::fs::create_dir_all(&dir).map_err(cg_err(&dir))?;
                } else {
                    return Err(cg_err(&dir)(e));
                }
            }
        }
        if limits.cores > 0 {
            match self.dir("cpu", unit) {
                Some(dir) => {
                    let quota = u64::from(limits.cores) * CPU_PERIOD_US;
                    let f = dir.join("cpu.cfs_period_us");
                    write_value(&f, &CPU_PERIOD_US.to_string()).map_err(cg_err(&f))?;
                    let f = dir.join("cpu.cfs_quota_us");
                    write_value(&f, &quota.to_string()).map_err(cg_err(&f))?;
                }
                None => warnings.push(format!(
                    "cpu controller not mounted: {} cores not enforced",
                    limits.cores
                )),
            }
        }
        let mem = self.required("memory", unit);
        if limits.memory_bytes > 0 {
            let f = mem.join("memory.limit_in_bytes");
            write_value(&f, &limits.memory_bytes.to_string()).map_err(cg_err(&f))?;
            // RAM + swap: without it the job would swap instead of hitting
            // the limit. Absent when the kernel does not account swap.
            let f = mem.join("memory.memsw.limit_in_bytes");
            if !write_if_present(&f, &limits.memory_bytes.to_string()).map_err(cg_err(&f))? {
                warnings.push(format!(
                    "swap is not accounted: the {} limit covers RAM only",
                    fmt_bytes(limits.memory_bytes)
                ));
            }
        }
        let f = self.required("pids", unit).join("pids.max");
        let pids = if limits.pids == 0 {
            "max".to_string()
        } else {
            limits.pids.to_string()
        };
        write_value(&f, &pids).map_err(cg_err(&f))?;
        Ok(warnings)
    }

    fn join_files(&self, unit: &str) -> Vec<PathBuf> {
        self.parents
            .iter()
            .map(|(p, _)| p.join(unit).join("tasks"))
            .collect()
    }

    fn supervisor_join_files(&self) -> Vec<PathBuf> {
        self.parents
            .iter()
            .map(|(p, _)| p.join(SUPERVISORS).join("tasks"))
            .collect()
    }

    fn procs(&self, unit: &str) -> io::Result<Vec<i32>> {
        read_procs(&self.required("freezer", unit).join("cgroup.procs"))
    }

    fn set_frozen(&self, unit: &str, frozen: bool) -> io::Result<()> {
        let f = self.required("freezer", unit).join("freezer.state");
        write_value(&f, if frozen { "FROZEN" } else { "THAWED" })
    }

    fn freeze_state(&self, unit: &str) -> io::Result<FreezeState> {
        let f = self.required("freezer", unit).join("freezer.state");
        Ok(match read_optional(&f)?.as_deref().map(str::trim) {
            Some("FROZEN") => FreezeState::Frozen,
            Some("FREEZING") => FreezeState::Freezing,
            _ => FreezeState::Thawed,
        })
    }

    fn usage(&self, unit: &str) -> io::Result<Usage> {
        let mut u = Usage::default();
        let cpuacct = self.required("cpuacct", unit);
        if let Some(t) = read_optional(&cpuacct.join("cpuacct.usage"))? {
            u.cpu_ns = parse::single_value(&t).unwrap_or(0);
        }
        let mem = self.required("memory", unit);
        if let Some(t) = read_optional(&mem.join("memory.max_usage_in_bytes"))? {
            u.peak_memory_bytes = parse::single_value(&t).unwrap_or(0);
        }
        if let Some(blkio) = self.dir("blkio", unit) {
            for name in [
                "blkio.throttle.io_service_bytes",
                "blkio.io_service_bytes_recursive",
            ] {
                if let Some(t) = read_optional(&blkio.join(name))? {
                    (u.io_read_bytes, u.io_write_bytes) = parse::blkio_service_bytes(&t);
                    break;
                }
            }
        }
        Ok(u)
    }

    fn oom_kills(&self, unit: &str) -> io::Result<u64> {
        let f = self.required("memory", unit).join("memory.oom_control");
        Ok(read_optional(&f)?
            .and_then(|t| parse::keyed_value(&t, "oom_kill"))
            .unwrap_or(0))
    }

    fn kill_all(&self, unit: &str) -> io::Result<u32> {
        let pids = self.procs(unit)?;
        signal_pids(&pids, libc::SIGKILL);
        // v1 frozen tasks do not die of SIGKILL until thawed.
        if self.freeze_state(unit)? != FreezeState::Thawed {
            self.set_frozen(unit, false)?;
        }
        Ok(u32::try_from(pids.len()).unwrap_or(u32::MAX))
    }

    fn exists(&self, unit: &str) -> bool {
        self.required("freezer", unit).is_dir()
    }

    fn remove(&self, unit: &str) -> io::Result<()> {
        for (parent, _) in &self.parents {
            rmdir(&parent.join(unit))?;
        }
        Ok(())
    }

    fn remove_parent(&self) -> io::Result<()> {
        for (parent, _) in &self.parents {
            rmdir(&parent.join(SUPERVISORS))?;
            rmdir(parent)?;
        }
        Ok(())
    }
}
