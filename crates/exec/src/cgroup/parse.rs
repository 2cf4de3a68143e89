//! Parsers for `/proc/self/mountinfo` and the cgroup files we read. Pure
//! functions over text, so they are unit-tested on samples.

use std::path::PathBuf;

/// One line of `/proc/self/mountinfo`, the fields we use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// Root of the mount within its file system (`/` unless a bind mount or a
    /// cgroup namespace shows a subtree).
    pub root: String,
    pub mount_point: PathBuf,
    pub fstype: String,
    /// Super-block options: for cgroup v1 they name the controllers.
    pub super_options: Vec<String>,
}

/// Undoes the octal escapes (`\040` for a space) of mountinfo paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 4 {
            continue;
        }
        out.push(MountEntry {
            root: unescape(fields[3]),
            mount_point: PathBuf::from(unescape(fields[4])),
            fstype: fields[sep + 1].to_string(),
            super_options: fields[sep + 3].split(',').map(str::to_string).collect(),
        });
    }
    out
}

/// The value of `key` in a flat keyed file (`key value` lines: `cpu.stat`,
/// `memory.events`, `memory.oom_control`).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut it = line.split_ascii_whitespace();
        if it.next()? == key {
            it.next()?.parse().ok()
        } else {
            None
        }
    })
}

/// A single number (`cpuacct.usage`, `memory.peak`); `max` is `None`.
pub fn single_value(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Sums the `Read` and `Write` lines of v1 `blkio.*io_service_bytes`
/// (`MAJ:MIN Read N`, ..., `Total N`) over devices.
pub fn blkio_service_bytes(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let Ok(n) = f[2].parse::<u64>() else {
            continue;
        };
        match f[1] {
            "Read" => read = read.saturating_add(n),
            "Write" => write = write.saturating_add(n),
            _ => {}
        }
    }
    (read, write)
}

/// Sums `rbytes=` and `wbytes=` of v2 `io.stat` over devices.
pub fn io_stat_bytes(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for line in text.lines() {
        for kv in line.split_ascii_whitespace().skip(1) {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(n) = v.parse::<u64>() else {
                continue;
            };
            match k {
                "rbytes" => read = read.saturating_add(n),
                "wbytes" => write = write.saturating_add(n),
                _ => {}
            }
        }
    }
    (read, write)
}

/// Pids of a `cgroup.procs` file.
pub fn pids(text: &str) -> Vec<i32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Controller names of `cgroup.controllers` / `cgroup.subtree_control`.
pub fn controllers(text: &str) -> Vec<String> {
    text.split_ascii_whitespace().map(str::to_string).collect()
}

/// v2 `cgroup.events`: is `frozen 1`?
pub fn events_frozen(text: &str) -> bool {
    keyed_value(text, "frozen") == Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 24 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:29 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
35 24 0:30 / /mnt/with\\040space rw - ext4 /dev/sda1 rw
bad line
";

    #[test]
    fn mountinfo() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 6);
        assert_eq!(m[2].fstype, "cgroup");
        assert_eq!(m[2].mount_point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(m[3].super_options, vec!["rw", "cpu", "cpuacct"]);
        assert_eq!(m[4].fstype, "cgroup2");
        assert_eq!(m[4].root, "/");
        assert_eq!(m[5].mount_point, PathBuf::from("/mnt/with space"));
    }

    #[test]
    fn v2_cpu_stat() {
        let text = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 0\n";
        assert_eq!(keyed_value(text, "usage_usec"), Some(1_234_567));
        assert_eq!(keyed_value(text, "user"), None);
        assert_eq!(keyed_value(text, "nope"), None);
    }

    #[test]
    fn memory_events_and_oom_control() {
        let v2 = "low 0\nhigh 0\nmax 17\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed_value(v2, "oom_kill"), Some(1));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(v1, "oom_kill"), Some(3));
        assert_eq!(
            keyed_value("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"),
            None
        );
    }

    #[test]
    fn blkio() {
        let text = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\n\
                    8:16 Read 1\n8:16 Write 2\n8:16 Total 3\nTotal 12291\n";
        assert_eq!(blkio_service_bytes(text), (4097, 8194));
        assert_eq!(blkio_service_bytes("Total 0\n"), (0, 0));
    }

    #[test]
    fn io_stat() {
        let text = "8:0 rbytes=4096 wbytes=100 rios=1 wios=2 dbytes=0 dios=0\n\
                    253:0 rbytes=10 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(io_stat_bytes(text), (4106, 120));
        assert_eq!(io_stat_bytes(""), (0, 0));
    }

    #[test]
    fn singles_and_lists() {
        assert_eq!(single_value("123\n"), Some(123));
        assert_eq!(single_value("max\n"), None);
        assert_eq!(pids("12\n345\n\n"), vec![12, 345]);
        assert_eq!(
            controllers("cpu io memory pids\n"),
            vec!["cpu", "io", "memory", "pids"]
        );
        assert!(events_frozen("populated 1\nfrozen 1\n"));
        assert!(!events_frozen("populated 1\nfrozen 0\n"));
    }
}
