//! Shared fixture of the executor's integration tests: a temporary root,
//! a workdir owned by an unused uid, and a cgroup subtree of its own.

#![allow(dead_code)]

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xtreem_exec::{CgroupVersion, Executor, LaunchSpec, Limits, UnitStatus};

/// An unused uid/gid (not in /etc/passwd on the test hosts).
pub const UID: u32 = 61_000;
pub const GID: u32 = 61_000;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no side effects.
    unsafe { libc::geteuid() == 0 }
}

/// Returns early (passing) with a message when not root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("SKIPPED: this test needs root (cgroups, namespaces, setuid)");
            return;
        }
    };
}

pub fn supervisor() -> Vec<OsString> {
    vec![OsString::from(env!("CARGO_BIN_EXE_xtreem-supervisor"))]
}

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub work: PathBuf,
    pub parent: String,
    pub exec: Executor,
}

impl Fixture {
    pub fn new(name: &str) -> Fixture {
        Fixture::with_version(name, None)
    }

    pub fn with_version(name: &str, version: Option<CgroupVersion>) -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("xtreem-exec-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let work = tmp.path().join("work");
        std::fs::create_dir(&work).unwrap();
        std::os::unix::fs::chown(&work, Some(UID), Some(GID)).unwrap();
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = tmp.path().join("units");
        let parent = format!("xtreem-test-{}-{name}", std::process::id());
        let exec = Executor::open_with(root.clone(), supervisor(), &parent, version).unwrap();
        Fixture {
            tmp,
            root,
            work,
            parent,
            exec,
        }
    }

    pub fn spec(&self, unit: &str, argv: &[&str]) -> LaunchSpec {
        LaunchSpec {
            unit: unit.to_string(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("HOME".into(), self.work.display().to_string()),
            ],
            workdir: self.work.clone(),
            stdin: None,
            stdout: self.work.join(format!("{unit}.out")),
            stderr: self.work.join(format!("{unit}.err")),
            uid: UID,
            gid: GID,
            limits: Limits::default(),
            credential: None,
            note: None,
        }
    }

    pub fn stdout(&self, unit: &str) -> String {
        std::fs::read_to_string(self.work.join(format!("{unit}.out"))).unwrap_or_default()
    }

    pub fn stderr(&self, unit: &str) -> String {
        std::fs::read_to_string(self.work.join(format!("{unit}.err"))).unwrap_or_default()
    }

    /// `wait` on a small runtime of its own, with a deadline.
    pub fn wait(&self, unit: &str, limit: Duration) -> UnitStatus {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(limit, self.exec.wait(unit))
                .await
                .unwrap_or_else(|_| panic!("{unit} did not end within {limit:?}"))
                .unwrap()
        })
    }
}

/// Polls `f` until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Leave nothing behind, even when a test failed half-way.
        if let Ok(units) = self.exec.units() {
            for unit in units {
                let _ = self.exec.signal(&unit, libc::SIGKILL);
                eventually(Duration::from_secs(5), || {
                    self.exec
                        .status(&unit)
                        .map(|s| !s.state.is_active())
                        .unwrap_or(true)
                });
                eventually(Duration::from_secs(3), || self.exec.remove(&unit).is_ok());
            }
        }
        eventually(Duration::from_secs(2), || {
            self.exec.remove_cgroup_parent().is_ok()
        });
    }
}

pub fn cgroup_dir_exists(v1_controller: &str, parent: &str, unit: &str) -> bool {
    Path::new("/sys/fs/cgroup")
        .join(v1_controller)
        .join(parent)
        .join(unit)
        .is_dir()
}
