//! Regression test of the dynamic account mapping issue: uid reuse after a
//! lease is released does not expose the previous holder's files or
//! processes. Real processes run as the mapped uid, so this needs root; it
//! skips with a message otherwise.
//!
//! Releasing a uid kills every process of it on the machine, so each test
//! has its own pool (from 290000 up), apart from the other tests' pools and
//! from the unit tests' default pool.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xtreem_accounts::{AccountMapper, Mapping, PoolConfig, VoIdentity};
use xtreem_store::Store;
use xtreem_util::time::unix_now;

/// First uid of the pool of each test; pools are 10 uids wide.
const REUSE_POOL: u32 = 290_000;
const SAVED_UID_POOL: u32 = 290_100;
const PLANTED_LINK_POOL: u32 = 290_200;

fn running_as_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "skipped: this test runs processes as mapped uids and needs root (run `cargo test -p xtreem-accounts` as root)"
    );
    false
}

/// Live (not zombie) processes whose real, effective or saved uid is `uid`,
/// read straight from /proc: an oracle independent of the crate's own scan.
fn live_processes_of(uid: u32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap() {
        let entry = entry.unwrap();
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let zombie = status
            .lines()
            .any(|l| l.starts_with("State:") && (l.contains("Z (") || l.contains("X (")));
        let owned = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .is_some_and(|ids| {
                ids.split_whitespace()
                    .take(3)
                    .any(|id| id.parse::<u32>().ok() == Some(uid))
            });
        if owned && !zombie {
            pids.push(pid);
        }
    }
    pids
}

fn as_user(m: &Mapping, script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .uid(m.uid)
        .gid(m.gid)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn run_as(m: &Mapping, script: &str) {
    let status = as_user(m, script).status().unwrap();
    assert!(
        status.success(),
        "{script:?} as uid {} failed: {status}",
        m.uid
    );
}

fn output_as(m: &Mapping, script: &str) -> String {
    let out = as_user(m, script).stdout(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "{script:?} as uid {} failed", m.uid);
    String::from_utf8(out.stdout).unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Site {
    _dir: tempfile::TempDir,
    base: PathBuf,
    outside: PathBuf,
    shared_tmp: PathBuf,
    mapper: AccountMapper,
    quarantine: Duration,
}

impl Site {
    fn new(pool_min: u32) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_owned();
        // Pool users must be able to walk down to their scratch directory.
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let outside = base.join("outside");
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        std::fs::write(outside.join("target"), "not the user's").unwrap();
        std::fs::write(outside.join("dir/inner"), "not the user's either").unwrap();
        let shared_tmp = base.join("shared-tmp");
        std::fs::create_dir(&shared_tmp).unwrap();
        std::fs::set_permissions(&shared_tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::write(shared_tmp.join("roots-file"), "stays").unwrap();

        let quarantine = Duration::from_secs(2);
        let mut config = PoolConfig::for_data_dir(&base);
        config.uid_min = pool_min;
        config.uid_max = pool_min + 9;
        config.gid_min = pool_min;
        config.gid_max = pool_min + 9;
        config.idle_timeout = Duration::ZERO;
        config.quarantine = quarantine;
        config.shared_tmp_dirs = vec![shared_tmp.clone()];
        let store = Arc::new(Store::open(&base.join("state.redb")).unwrap());
        let mapper = AccountMapper::open(store, config).unwrap();
        Site {
            _dir: dir,
            base,
            outside,
            shared_tmp,
            mapper,
            quarantine,
        }
    }

    fn outside_is_intact(&self) {
        let target = self.outside.join("target");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "not the user's");
        assert_eq!(
            std::fs::metadata(&target).unwrap().uid(),
            0,
            "chowned through a link"
        );
        assert_eq!(
            std::fs::read_to_string(self.outside.join("dir/inner")).unwrap(),
            "not the user's either"
        );
        assert_eq!(
            std::fs::read_to_string(self.shared_tmp.join("roots-file")).unwrap(),
            "stays"
        );
    }
}

/// Kills what a failed run may leave behind, so it does not outlive the test.
struct Reaper(Vec<Child>, Vec<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for uid in &self.1 {
            let _ = xtreem_accounts::procs::kill_all(*uid);
        }
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn uid_reuse_after_release_exposes_no_files_or_processes_of_the_previous_holder() {
    if !running_as_root() {
        return;
    }
    let site = Site::new(REUSE_POOL);
    let alice_id = VoIdentity::new("https://vo.example", "/CN=alice", "bio");
    let alice = site.mapper.map(&alice_id).unwrap();
    assert_eq!(alice.uid, REUSE_POOL);
    let mut reaper = Reaper(Vec::new(), vec![alice.uid]);

    // Alice's scratch: private and hers.
    let scratch = site.mapper.prepare_scratch(&alice).unwrap();
    let meta = std::fs::metadata(&scratch).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (alice.uid, alice.gid));
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);

    // Alice's own processes fill it, plant links to files outside, and
    // leave files in the shared temporary directory.
    run_as(
        &alice,
        &format!(
            "set -e; cd {s}; mkdir -p a/b/c; echo secret > a/b/c/data; echo x > top; \
             ln -s {target} link-to-target; ln -s {outside} a/link-to-dir; ln -s / a/b/root; \
             mkfifo a/fifo; mkdir locked; echo y > locked/f; chmod 000 locked; \
             echo mine > {tmp}/alice-file; mkdir {tmp}/alice-dir; echo z > {tmp}/alice-dir/f",
            s = scratch.display(),
            target = site.outside.join("target").display(),
            outside = site.outside.display(),
            tmp = site.shared_tmp.display(),
        ),
    );
    assert!(scratch.join("a/b/c/data").exists());

    // Processes that outlive their job: a plain sleeper, a shell that keeps
    // forking sleepers (so new processes appear while we kill), and an
    // orphan that no parent of ours will reap.
    reaper
        .0
        .push(as_user(&alice, "exec sleep 300").spawn().unwrap());
    reaper.0.push(
        as_user(&alice, "while :; do sleep 300 & sleep 0.02; done")
            .spawn()
            .unwrap(),
    );
    run_as(&alice, "sleep 300 >/dev/null 2>&1 &");
    wait_for("alice's processes to start", || {
        live_processes_of(alice.uid).len() >= 4
    });

    // The lease is idle (timeout 0): the sweep releases and cleans it.
    let now = unix_now();
    let reports = site.mapper.release_idle(now).unwrap();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report.uid, alice.uid);
    assert_eq!(report.identity, alice_id);
    assert_eq!(report.cleanup_error, None);
    assert!(report.processes_killed >= 4, "{report:?}");
    // 11 entries in the scratch tree and itself, 3 in the shared directory.
    assert_eq!(report.files_removed, 12 + 3, "{report:?}");
    for child in &mut reaper.0 {
        child.wait().unwrap();
    }
    assert_eq!(live_processes_of(alice.uid), Vec::<i32>::new());
    assert!(scratch.symlink_metadata().is_err(), "scratch left behind");
    assert!(!site.shared_tmp.join("alice-file").exists());
    assert!(!site.shared_tmp.join("alice-dir").exists());
    site.outside_is_intact();

    // In quarantine: nobody gets the uid, not even alice again.
    let bob = site
        .mapper
        .map(&VoIdentity::new("https://vo.example", "/CN=bob", "chem"))
        .unwrap();
    assert_ne!(bob.uid, alice.uid);
    let alice_again = site.mapper.map(&alice_id).unwrap();
    assert_ne!(alice_again.uid, alice.uid);
    reaper.1.extend([bob.uid, alice_again.uid]);
    assert!(site.mapper.end_quarantines(unix_now()).unwrap().is_empty());

    // Quarantine over: the uid goes to a new identity.
    std::thread::sleep(site.quarantine + Duration::from_secs(1));
    assert_eq!(
        site.mapper.end_quarantines(unix_now()).unwrap(),
        [alice.uid]
    );
    let carol_id = VoIdentity::new("https://vo.example", "/CN=carol", "physics");
    let carol = site.mapper.map(&carol_id).unwrap();
    assert_eq!(carol.uid, alice.uid, "the lowest free uid is reused");
    assert_ne!(carol.gid, alice.gid, "another VO, another group");

    // Carol, running as the reused uid, finds nothing of alice's.
    assert_eq!(live_processes_of(carol.uid), Vec::<i32>::new());
    let carol_scratch = site.mapper.prepare_scratch(&carol).unwrap();
    assert_eq!(carol_scratch, scratch);
    let seen = output_as(
        &carol,
        &format!(
            "ls -A {s}; find {tmp} -user {uid}; ps -e -o uid= -o pid= 2>/dev/null | awk '$1 == {uid} {{ n++ }} END {{ print n + 0 }}'; \
             cat {s}/a/b/c/data 2>/dev/null || echo no-data",
            s = carol_scratch.display(),
            tmp = site.shared_tmp.display(),
            uid = carol.uid,
        ),
    );
    // Only carol's own shell and pipeline may show up as processes of the uid.
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.last(), Some(&"no-data"), "{seen}");
    assert!(lines.len() == 2, "carol sees files of alice: {seen}");
    let own_processes: u32 = lines[0].trim().parse().unwrap_or(0);
    assert!(own_processes <= 4, "{seen}");
    site.outside_is_intact();
    assert!(site.base.join("outside/target").exists());
}

#[test]
fn processes_whose_saved_or_effective_uid_is_the_leased_one_are_killed_too() {
    if !running_as_root() {
        return;
    }
    let site = Site::new(SAVED_UID_POOL);
    let dave = site
        .mapper
        .map(&VoIdentity::new("https://vo.example", "/CN=dave", "bio"))
        .unwrap();
    let mut reaper = Reaper(Vec::new(), vec![dave.uid]);
    // A process whose real uid is another one but whose effective uid is
    // dave's: `setpriv` sets them apart when available; otherwise this
    // case is skipped.
    let has_setpriv = Command::new("setpriv")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_setpriv {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    let child = Command::new("setpriv")
        .args([
            &format!("--ruid={}", dave.uid + 5),
            &format!("--euid={}", dave.uid),
            &format!("--regid={}", dave.gid),
            "--clear-groups",
            "sleep",
            "300",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    reaper.0.push(child);
    reaper.1.push(dave.uid + 5);
    wait_for("the setpriv'd sleeper", || {
        live_processes_of(dave.uid).len() == 1
    });
    let report = site.mapper.release(dave.uid, unix_now()).unwrap();
    assert_eq!(report.cleanup_error, None);
    assert_eq!(report.processes_killed, 1);
    reaper.0[0].wait().unwrap();
    assert_eq!(live_processes_of(dave.uid), Vec::<i32>::new());
}

#[test]
fn a_link_planted_in_place_of_the_scratch_directory_is_removed_not_followed() {
    if !running_as_root() {
        return;
    }
    let site = Site::new(PLANTED_LINK_POOL);
    let erin = site
        .mapper
        .map(&VoIdentity::new("https://vo.example", "/CN=erin", "bio"))
        .unwrap();
    let _reaper = Reaper(Vec::new(), vec![erin.uid]);
    let scratch_root = site.mapper.config().scratch_root.clone();
    std::fs::create_dir_all(&scratch_root).unwrap();
    let planted: &Path = &scratch_root.join(erin.uid.to_string());
    std::os::unix::fs::symlink(&site.outside, planted).unwrap();

    // Preparing refuses to hand the link's target to erin...
    let err = site.mapper.prepare_scratch(&erin).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    // ...and releasing unlinks it without touching what it points to.
    let report = site.mapper.release(erin.uid, unix_now()).unwrap();
    assert_eq!(report.cleanup_error, None);
    assert_eq!(report.files_removed, 1);
    assert!(planted.symlink_metadata().is_err());
    site.outside_is_intact();
}
