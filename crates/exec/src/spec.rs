//! What to run: [`LaunchSpec`] and its [`Limits`], with validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ExecError;

/// Default `pids` limit of a unit.
pub const DEFAULT_PIDS: u32 = 4096;
/// Time between SIGTERM and SIGKILL when a walltime is exceeded.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// The search path for a bare `argv[0]` when the spec's environment has no `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Longest unit name.
pub const UNIT_NAME_MAX: usize = 100;
/// Most arguments plus environment entries of one spec.
pub const ARGS_MAX: usize = 65_536;
/// The CFS period the CPU quota is expressed in (microseconds).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Resource limits of a unit. Zero means "no limit" for `cores`,
/// `memory_bytes` and `pids`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU quota: `cores` x the period (`cpu.cfs_quota_us` in v1, `cpu.max` in v2).
    pub cores: u32,
    /// Memory (RAM + swap in v1, RAM with swap off in v2). The private `/tmp`
    /// is a tmpfs of this size, charged to the same limit.
    pub memory_bytes: u64,
    /// Most processes and threads at once.
    pub pids: u32,
    /// Wall-clock limit from the start of the job: SIGTERM to every process of
    /// the unit when reached, SIGKILL [`KILL_GRACE`] later.
    pub walltime: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cores: 0,
            memory_bytes: 0,
            pids: DEFAULT_PIDS,
            walltime: None,
        }
    }
}

/// The signal a job asks for when it should checkpoint itself
/// (application-level checkpointing, e.g. SIGUSR1); the caller delivers it
/// with [`crate::Executor::signal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSignal(pub i32);

/// Which output stream of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One unit to run. Serialized into the unit directory (`spec.json`) for the
/// supervisor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// `[a-z0-9._-]`, at most 100 characters, not starting with a dot; names
    /// the unit directory and the cgroup.
    pub unit: String,
    /// `argv[0]` is the executable: an absolute path, or a name without `/`
    /// searched in `PATH` of `env` (default [`DEFAULT_PATH`]).
    pub argv: Vec<String>,
    /// The whole environment of the job; nothing is inherited.
    pub env: Vec<(String, String)>,
    /// Absolute path of an existing directory the job runs in.
    pub workdir: PathBuf,
    /// Default `/dev/null`. Opened as the job's uid.
    pub stdin: Option<PathBuf>,
    /// Created if missing (mode 0600) and appended to, as the job's uid: the
    /// directory must be writable by it.
    pub stdout: PathBuf,
    /// As `stdout` (may be the same file).
    pub stderr: PathBuf,
    /// Never 0.
    pub uid: u32,
    /// Never 0; the job's only group.
    pub gid: u32,
    pub limits: Limits,
    /// Written to [`CREDENTIAL_PATH`] in the unit's private `/tmp`, owned
    /// by the job's uid, mode 0400: the job's way to call the grid. It
    /// never touches a disk and goes with the unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Secret>,
    /// The caller's own record of the unit, kept with it and given back by
    /// [`crate::Executor::spec`]: what a daemon that holds no copy of it
    /// (after a stop or a crash) needs to adopt the unit again. At most
    /// [`NOTE_BYTES_MAX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Longest [`LaunchSpec::note`].
pub const NOTE_BYTES_MAX: usize = 64 * 1024;

/// Where a unit finds its [`LaunchSpec::credential`].
pub const CREDENTIAL_PATH: &str = "/tmp/.xos-token";

/// A secret that `Debug` does not print.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Checks a unit name: `[a-z0-9._-]{1,100}`, not starting with `.`.
pub fn validate_unit_name(name: &str) -> Result<(), ExecError> {
    let bad = |why| {
        Err(ExecError::InvalidUnit {
            name: name.chars().take(120).collect(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > UNIT_NAME_MAX {
        return bad("longer than 100 characters");
    }
    if name.starts_with('.') {
        return bad("starts with a dot");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only a-z, 0-9, '.', '_' and '-' are allowed");
    }
    Ok(())
}

fn no_nul(what: &str, s: &str) -> Result<(), ExecError> {
    if s.contains('\0') {
        return Err(ExecError::InvalidSpec(format!(
            "{what} contains a NUL byte"
        )));
    }
    Ok(())
}

fn absolute(what: &str, p: &Path) -> Result<(), ExecError> {
    if !p.is_absolute() {
        return Err(ExecError::InvalidSpec(format!(
            "{what} {} is not an absolute path",
            p.display()
        )));
    }
    if p.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(ExecError::InvalidSpec(format!(
            "{what} contains a NUL byte"
        )));
    }
    Ok(())
}

impl LaunchSpec {
    /// Checks everything that can be checked without touching the file
    /// system (the workdir's existence is checked by `launch`).
    pub fn validate(&self) -> Result<(), ExecError> {
        validate_unit_name(&self.unit)?;
        if self.uid == 0 {
            return Err(ExecError::InvalidSpec(
                "uid 0 is refused: jobs never run as root".into(),
            ));
        }
        if self.gid == 0 {
            return Err(ExecError::InvalidSpec(
                "gid 0 is refused: jobs never run in the root group".into(),
            ));
        }
        if self.uid == u32::MAX || self.gid == u32::MAX {
            return Err(ExecError::InvalidSpec("uid/gid -1 is not an id".into()));
        }
        let Some(program) = self.argv.first() else {
            return Err(ExecError::InvalidSpec("argv is empty".into()));
        };
        if program.is_empty() {
            return Err(ExecError::InvalidSpec("argv[0] is empty".into()));
        }
        if program.contains('/') && !program.starts_with('/') {
            return Err(ExecError::InvalidSpec(format!(
                "argv[0] {program:?} must be an absolute path or a bare name searched in PATH"
            )));
        }
        if self.argv.len() + self.env.len() > ARGS_MAX {
            return Err(ExecError::InvalidSpec(format!(
                "more than {ARGS_MAX} arguments and environment entries"
            )));
        }
        for a in &self.argv {
            no_nul("an argument", a)?;
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') {
                return Err(ExecError::InvalidSpec(format!(
                    "environment name {k:?} is empty or contains '='"
                )));
            }
            no_nul("an environment name", k)?;
            no_nul("an environment value", v)?;
        }
        absolute("workdir", &self.workdir)?;
        if let Some(stdin) = &self.stdin {
            absolute("stdin", stdin)?;
        }
        absolute("stdout", &self.stdout)?;
        absolute("stderr", &self.stderr)?;
        if self.note.as_ref().is_some_and(|n| n.len() > NOTE_BYTES_MAX) {
            return Err(ExecError::InvalidSpec(format!(
                "the note is longer than {NOTE_BYTES_MAX} bytes"
            )));
        }
        Ok(())
    }

    /// The `PATH` the executable is searched in.
    pub(crate) fn search_path(&self) -> &str {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(DEFAULT_PATH)
    }

    pub fn output_path(&self, stream: Stream) -> &Path {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }
}

/// "2s", "1m30s", "250ms": for reasons.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// "64 MiB", "1 GiB", "1000000 bytes": for reasons.
pub(crate) fn fmt_bytes(b: u64) -> String {
    const KIB: u64 = 1024;
    for (unit, size) in [("GiB", KIB * KIB * KIB), ("MiB", KIB * KIB), ("KiB", KIB)] {
        if b >= size && b.is_multiple_of(size) {
            return format!("{} {unit}", b / size);
        }
    }
    format!("{b} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            unit: "n1.42.0".into(),
            argv: vec!["true".into()],
            env: vec![],
            workdir: "/tmp".into(),
            stdin: None,
            stdout: "/tmp/out".into(),
            stderr: "/tmp/err".into(),
            uid: 61000,
            gid: 61000,
            limits: Limits::default(),
            credential: None,
            note: None,
        }
    }

    #[test]
    fn unit_names() {
        for good in ["n1.42.0", "a", "x_y-z.9", &"a".repeat(100)] {
            validate_unit_name(good).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            ".x",
            "A",
            "a/b",
            "a b",
            &"a".repeat(101),
            "_é",
        ] {
            assert!(validate_unit_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn root_is_refused() {
        let mut s = spec();
        s.validate().unwrap();
        s.uid = 0;
        assert!(s.validate().unwrap_err().to_string().contains("uid 0"));
        let mut s = spec();
        s.gid = 0;
        assert!(s.validate().unwrap_err().to_string().contains("gid 0"));
    }

    #[test]
    fn argv_and_paths() {
        let mut s = spec();
        s.argv = vec!["bin/x".into()];
        assert!(s.validate().is_err());
        s.argv = vec![];
        assert!(s.validate().is_err());
        let mut s = spec();
        s.workdir = "rel".into();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.env = vec![("A=B".into(), "c".into())];
        assert!(s.validate().is_err());
        let mut s = spec();
        s.env = vec![("PATH".into(), "/opt/bin".into())];
        assert_eq!(s.search_path(), "/opt/bin");
        assert_eq!(spec().search_path(), DEFAULT_PATH);
    }

    #[test]
    fn a_note_is_bounded() {
        let mut s = spec();
        s.note = Some("n".repeat(NOTE_BYTES_MAX));
        s.validate().unwrap();
        s.note = Some("n".repeat(NOTE_BYTES_MAX + 1));
        assert!(s.validate().unwrap_err().to_string().contains("note"));
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_duration(Duration::from_secs(2)), "2s");
        assert_eq!(fmt_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(fmt_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(fmt_bytes(64 << 20), "64 MiB");
        assert_eq!(fmt_bytes(2 << 30), "2 GiB");
        assert_eq!(fmt_bytes(1000), "1000 bytes");
    }
}
