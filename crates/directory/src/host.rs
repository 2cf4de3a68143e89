//! Probing this (Linux) machine to fill in its descriptor and samples.
//!
//! The probes report what the host is; they do not validate. A node calls
//! [`StaticDescriptor::encode`], which validates, before publishing.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::statvfs::statvfs;

use crate::descriptor::{DynamicSample, ServiceEntry, StaticDescriptor};
use crate::validate::LOAD_MAX;

/// What the node's configuration supplies; the probe adds the hardware.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticBase {
    pub node: String,
    pub site: String,
    pub roles: Vec<String>,
    pub rpc_endpoint: String,
    pub tags: BTreeSet<String>,
    pub labels: BTreeMap<String, String>,
    pub vos: BTreeSet<String>,
    pub services: Vec<ServiceEntry>,
    /// File system whose size is reported as the node's disk.
    pub disk_path: PathBuf,
    pub version: u64,
}

/// Builds the static descriptor from `base` plus this machine's architecture,
/// OS, kernel, cores, memory and the size of `base.disk_path`'s file system.
pub fn probe_static(base: StaticBase) -> io::Result<StaticDescriptor> {
    let disk = statvfs(base.disk_path.as_path()).map_err(io::Error::from)?;
    let cores = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let memory_bytes = meminfo_bytes(&std::fs::read_to_string("/proc/meminfo")?, "MemTotal")?;
    Ok(StaticDescriptor {
        node: base.node,
        site: base.site,
        version: base.version,
        roles: base.roles,
        rpc_endpoint: base.rpc_endpoint,
        arch: std::env::consts::ARCH.to_owned(),
        os: std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| pretty_name(&text))
            .unwrap_or_else(|| "Linux".to_owned()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_owned()),
        cores,
        memory_bytes,
        disk_bytes: (disk.blocks() as u64).saturating_mul(disk.fragment_size() as u64),
        tags: base.tags,
        labels: base.labels,
        vos: base.vos,
        services: base.services,
    })
}

/// Samples free memory (MemAvailable), the 1-minute load, free disk space of
/// `disk_path` for unprivileged users, and the caller's view of its jobs.
/// `busy_cores` is what running jobs hold; free cores are clamped to
/// `0..=cores`, and a non-finite `busy_cores` counts as all cores busy so
/// that a bad figure never attracts more work.
pub fn probe_dynamic(
    disk_path: &Path,
    cores: u32,
    running_jobs: u32,
    busy_cores: f32,
    seq: u64,
) -> io::Result<DynamicSample> {
    let free_memory_bytes =
        meminfo_bytes(&std::fs::read_to_string("/proc/meminfo")?, "MemAvailable")?;
    let load = loadavg_1min(&std::fs::read_to_string("/proc/loadavg")?)?;
    let disk = statvfs(disk_path).map_err(io::Error::from)?;
    let sampled_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Ok(DynamicSample {
        seq,
        sampled_unix_ms,
        free_cores: free_cores(cores, busy_cores),
        free_memory_bytes,
        load,
        running_jobs,
        free_disk_bytes: (disk.blocks_available() as u64)
            .saturating_mul(disk.fragment_size() as u64),
    })
}

fn free_cores(cores: u32, busy_cores: f32) -> f32 {
    let cores = cores as f32;
    let busy = if busy_cores.is_finite() {
        busy_cores
    } else {
        cores
    };
    (cores - busy).clamp(0.0, cores)
}

fn invalid_data(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A `/proc/meminfo` line such as `MemTotal:  16318440 kB`, in bytes.
fn meminfo_bytes(meminfo: &str, key: &str) -> io::Result<u64> {
    meminfo
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(key)?.strip_prefix(':')?;
            let mut words = rest.split_whitespace();
            let number: u64 = words.next()?.parse().ok()?;
            match words.next() {
                Some("kB") => Some(number.saturating_mul(1024)),
                None => Some(number),
                Some(_) => None,
            }
        })
        .ok_or_else(|| invalid_data(format!("/proc/meminfo has no readable {key}")))
}

fn loadavg_1min(loadavg: &str) -> io::Result<f32> {
    loadavg
        .split_whitespace()
        .next()
        .and_then(|w| w.parse::<f32>().ok())
        .filter(|l| l.is_finite())
        // Clamped so that the sample stays valid on a pathological host.
        .map(|l| l.clamp(0.0, LOAD_MAX))
        .ok_or_else(|| invalid_data(format!("/proc/loadavg is unreadable: {loadavg:?}")))
}

/// `PRETTY_NAME` of os-release, unquoted.
fn pretty_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|l| l.trim().strip_prefix("PRETTY_NAME="))?
        .trim();
    let unquoted = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    let name: String = unquoted
        .chars()
        .filter(|c| !c.is_control())
        .take(128)
        .collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_fields_in_bytes() {
        let text = "MemTotal:       16318440 kB\nMemFree:  100 kB\nMemAvailable:   8000000 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal").unwrap(), 16_318_440 * 1024);
        assert_eq!(
            meminfo_bytes(text, "MemAvailable").unwrap(),
            8_000_000 * 1024
        );
        assert!(meminfo_bytes(text, "SwapTotal").is_err());
        assert!(meminfo_bytes("MemTotal: lots kB", "MemTotal").is_err());
    }

    #[test]
    fn reads_the_one_minute_load() {
        assert_eq!(loadavg_1min("0.52 0.58 0.59 1/467 12345\n").unwrap(), 0.52);
        assert!(loadavg_1min("").is_err());
        assert!(loadavg_1min("NaN 1 1").is_err());
    }

    #[test]
    fn reads_pretty_name_quoted_or_not() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(pretty_name("PRETTY_NAME=Alpine").as_deref(), Some("Alpine"));
        assert_eq!(pretty_name("NAME=x"), None);
        assert_eq!(pretty_name("PRETTY_NAME=\"\""), None);
    }

    #[test]
    fn free_cores_are_clamped() {
        assert_eq!(free_cores(8, 3.0), 5.0);
        assert_eq!(free_cores(8, 9.5), 0.0);
        assert_eq!(free_cores(8, -2.0), 8.0);
        assert_eq!(free_cores(8, f32::NAN), 0.0);
    }

    fn base() -> StaticBase {
        StaticBase {
            node: "n1".into(),
            site: "site-a".into(),
            roles: vec!["resource".into()],
            rpc_endpoint: "127.0.0.1:7000".into(),
            tags: BTreeSet::from(["gpu".to_owned()]),
            labels: BTreeMap::new(),
            vos: BTreeSet::new(),
            services: Vec::new(),
            disk_path: std::env::temp_dir(),
            version: 4,
        }
    }

    #[test]
    fn probes_this_machine_into_a_valid_descriptor_and_sample() {
        let d = probe_static(base()).unwrap();
        assert_eq!(d.version, 4);
        assert_eq!(d.arch, std::env::consts::ARCH);
        assert!(d.tags.contains("gpu"));
        assert!(d.cores >= 1 && d.memory_bytes > 0 && d.disk_bytes > 0);
        assert_eq!(d.validate(), Ok(()));

        let s = probe_dynamic(&std::env::temp_dir(), d.cores, 2, 0.5, 9).unwrap();
        assert_eq!((s.seq, s.running_jobs), (9, 2));
        assert!(s.free_cores <= d.cores as f32 - 0.5);
        assert!(s.sampled_unix_ms > 0);
        assert_eq!(s.validate(&d), Ok(()));
    }

    #[test]
    fn a_missing_disk_path_is_an_io_error() {
        let mut b = base();
        b.disk_path = PathBuf::from("/nonexistent/xtreem/disk");
        assert_eq!(probe_static(b).unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
