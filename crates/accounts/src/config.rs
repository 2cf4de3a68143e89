//! The account pool a node leases from, its defaults, and the checks that
//! keep it clear of system accounts and of accounts the host already has.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{AccountsError, Result};

/// Ids up to this one belong to the distribution's system accounts.
pub const SYSTEM_ID_MAX: u32 = 999;
/// `nobody`/`nogroup`, and the 16-bit "no id" value that old interfaces
/// still treat specially. Never leased.
pub const RESERVED_IDS: [u32; 2] = [65_534, 65_535];
/// Largest id a pool may contain. Some software stores ids in a signed 32-bit
/// integer, and `(uid_t)-1` means "no change" to `chown`.
pub const ID_MAX: u32 = i32::MAX as u32;

pub const DEFAULT_ID_MIN: u32 = 200_000;
pub const DEFAULT_ID_MAX: u32 = 299_999;
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_QUARANTINE: Duration = Duration::from_secs(3600);
/// Longest idle timeout or quarantine accepted; longer values are surely a
/// unit mistake.
pub const DURATION_MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Where the pool of local accounts comes from and how leases age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub uid_min: u32,
    pub uid_max: u32,
    pub gid_min: u32,
    pub gid_max: u32,
    /// A lease not used for this long is released by the next sweep.
    pub idle_timeout: Duration,
    /// How long a released uid waits before another identity may get it.
    pub quarantine: Duration,
    /// Parent of the per-uid scratch directories `<scratch_root>/<uid>`.
    pub scratch_root: PathBuf,
    /// World-writable directories (such as `/tmp`) in which entries owned by
    /// a released uid are removed too, so the next holder cannot find them.
    /// Only top-level entries are checked: deeper files in other users'
    /// directories are out of reach without a full file system scan.
    pub shared_tmp_dirs: Vec<PathBuf>,
}

impl PoolConfig {
    /// The defaults: ids 200000-299999, 10 min idle timeout, 1 h quarantine,
    /// scratch under `<data_dir>/scratch`, and `/tmp`, `/var/tmp`, `/dev/shm`
    /// swept on release.
    ///
    /// Mapped users must be able to traverse every parent of the scratch
    /// root; a data dir of mode 0700 prevents that, so such nodes set
    /// `scratch_root` elsewhere.
    pub fn for_data_dir(data_dir: &Path) -> PoolConfig {
        PoolConfig {
            uid_min: DEFAULT_ID_MIN,
            uid_max: DEFAULT_ID_MAX,
            gid_min: DEFAULT_ID_MIN,
            gid_max: DEFAULT_ID_MAX,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            quarantine: DEFAULT_QUARANTINE,
            scratch_root: data_dir.join("scratch"),
            shared_tmp_dirs: ["/tmp", "/var/tmp", "/dev/shm"]
                .iter()
                .map(PathBuf::from)
                .collect(),
        }
    }

    /// Checks the settings on their own and together.
    pub fn validate(&self) -> Result<()> {
        check_range("uid_min/uid_max", self.uid_min, self.uid_max)?;
        check_range("gid_min/gid_max", self.gid_min, self.gid_max)?;
        check_duration("idle_timeout", self.idle_timeout)?;
        check_duration("quarantine", self.quarantine)?;
        if !self.scratch_root.is_absolute() {
            return Err(invalid(
                "scratch_root",
                format!("{} is not an absolute path", self.scratch_root.display()),
            ));
        }
        if self.scratch_root.parent().is_none() {
            return Err(invalid(
                "scratch_root",
                "the root directory cannot hold scratch directories".into(),
            ));
        }
        for dir in &self.shared_tmp_dirs {
            if !dir.is_absolute() {
                return Err(invalid(
                    "shared_tmp_dirs",
                    format!("{} is not an absolute path", dir.display()),
                ));
            }
        }
        Ok(())
    }

    pub fn contains_uid(&self, uid: u32) -> bool {
        (self.uid_min..=self.uid_max).contains(&uid)
    }

    pub fn contains_gid(&self, gid: u32) -> bool {
        (self.gid_min..=self.gid_max).contains(&gid)
    }

    /// Number of uids in the pool.
    pub fn uid_count(&self) -> u64 {
        u64::from(self.uid_max.saturating_sub(self.uid_min)) + 1
    }
}

/// Whether `id` may never be leased, whatever the pool says.
pub fn is_system_id(id: u32) -> bool {
    id <= SYSTEM_ID_MAX || RESERVED_IDS.contains(&id) || id > ID_MAX
}

fn invalid(field: &'static str, reason: String) -> AccountsError {
    AccountsError::InvalidConfig { field, reason }
}

fn check_range(field: &'static str, min: u32, max: u32) -> Result<()> {
    if min > max {
        return Err(invalid(
            field,
            format!("the range {min}-{max} is empty (min is above max)"),
        ));
    }
    if min <= SYSTEM_ID_MAX {
        return Err(invalid(
            field,
            format!(
                "the range {min}-{max} reaches into system ids (0-{SYSTEM_ID_MAX}); start it at 1000 or above (default {DEFAULT_ID_MIN})"
            ),
        ));
    }
    if let Some(reserved) = RESERVED_IDS.iter().find(|id| (min..=max).contains(*id)) {
        return Err(invalid(
            field,
            format!(
                "the range {min}-{max} contains {reserved}, which is reserved (nobody/nogroup); keep the range below 65534 or above 65535"
            ),
        ));
    }
    if max > ID_MAX {
        return Err(invalid(
            field,
            format!(
                "the range {min}-{max} goes beyond {ID_MAX}, the largest id software handles reliably"
            ),
        ));
    }
    Ok(())
}

fn check_duration(field: &'static str, value: Duration) -> Result<()> {
    if value > DURATION_MAX {
        return Err(invalid(
            field,
            format!(
                "{} s is longer than the limit of {} s (one year)",
                value.as_secs(),
                DURATION_MAX.as_secs()
            ),
        ));
    }
    Ok(())
}

/// Refuses a pool that overlaps an account or group the host already has in
/// its local files. Only reads them: accounts never edits /etc/passwd or
/// /etc/group. A missing file counts as empty.
pub fn check_host_accounts(config: &PoolConfig, passwd: &Path, group: &Path) -> Result<()> {
    for (name, id) in read_id_file(passwd)? {
        if config.contains_uid(id) {
            return Err(AccountsError::HostAccountInPool {
                kind: "user",
                name,
                id,
                file: passwd.to_owned(),
                min: config.uid_min,
                max: config.uid_max,
            });
        }
    }
    for (name, id) in read_id_file(group)? {
        if config.contains_gid(id) {
            return Err(AccountsError::HostAccountInPool {
                kind: "group",
                name,
                id,
                file: group.to_owned(),
                min: config.gid_min,
                max: config.gid_max,
            });
        }
    }
    Ok(())
}

/// Names and ids (third field) of a passwd- or group-format file; lines that
/// are not in that format (comments, NIS `+` entries) are skipped.
fn read_id_file(path: &Path) -> Result<Vec<(String, u32)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AccountsError::io("read", path, e)),
    };
    Ok(parse_id_lines(&text))
}

fn parse_id_lines(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.trim().parse().ok()?;
            Some((name.to_owned(), id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PoolConfig {
        PoolConfig::for_data_dir(Path::new("/var/lib/xtreem"))
    }

    #[test]
    fn defaults_are_valid() {
        let c = config();
        c.validate().unwrap();
        assert_eq!((c.uid_min, c.uid_max), (200_000, 299_999));
        assert_eq!(c.scratch_root, Path::new("/var/lib/xtreem/scratch"));
        assert_eq!(c.uid_count(), 100_000);
    }

    #[test]
    fn refuses_bad_ranges_with_the_field_named() {
        let cases: &[(u32, u32, &str)] = &[
            (300, 400, "system ids"),
            (1000, 999, "empty"),
            (60_000, 70_000, "65534"),
            (65_535, 65_535, "65535"),
            (1 << 31, u32::MAX, "beyond"),
        ];
        for &(min, max, expected) in cases {
            let mut c = config();
            c.uid_min = min;
            c.uid_max = max;
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("uid_min/uid_max"), "{err}");
            assert!(err.contains(expected), "{err}");
        }
        let mut c = config();
        c.gid_min = 10;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("gid_min/gid_max"), "{err}");
    }

    #[test]
    fn refuses_relative_paths_and_absurd_durations() {
        let mut c = config();
        c.scratch_root = PathBuf::from("scratch");
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("scratch_root")
        );
        let mut c = config();
        c.shared_tmp_dirs.push(PathBuf::from("tmp"));
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("shared_tmp_dirs")
        );
        let mut c = config();
        c.quarantine = Duration::from_secs(400 * 24 * 3600);
        assert!(c.validate().unwrap_err().to_string().contains("quarantine"));
    }

    #[test]
    fn refuses_a_pool_overlapping_host_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let group = dir.path().join("group");
        std::fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\n# comment\n+nis\nbob:x:200007:100::/home/bob:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(&group, "root:x:0:\n").unwrap();
        let err = check_host_accounts(&config(), &passwd, &group).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("user bob (id 200007)"), "{text}");

        std::fs::write(&passwd, "root:x:0:0::/root:/bin/sh\n").unwrap();
        check_host_accounts(&config(), &passwd, &group).unwrap();
        std::fs::write(&group, "grid:x:250000:\n").unwrap();
        let text = check_host_accounts(&config(), &passwd, &group)
            .unwrap_err()
            .to_string();
        assert!(text.contains("group grid"), "{text}");
        // Missing files count as empty.
        check_host_accounts(
            &config(),
            &dir.path().join("none"),
            &dir.path().join("none"),
        )
        .unwrap();
    }

    #[test]
    fn system_ids_are_recognised() {
        for id in [0, 999, 65_534, 65_535, u32::MAX] {
            assert!(is_system_id(id), "{id}");
        }
        for id in [1000, 200_000] {
            assert!(!is_system_id(id), "{id}");
        }
    }
}
