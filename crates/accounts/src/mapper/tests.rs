//! Allocation, persistence and quarantine of the mapper, on a real store.
//! Nothing here needs root: cleanup runs on uids that own no process and
//! on a scratch root inside a temporary directory.

use std::time::Duration;

use super::*;

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        Node {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> PoolConfig {
        let mut config = PoolConfig::for_data_dir(self.dir.path());
        config.shared_tmp_dirs.clear();
        config
    }

    fn store(&self) -> Arc<Store> {
        Arc::new(Store::open(&self.dir.path().join("state.redb")).unwrap())
    }

    fn open_with(&self, config: PoolConfig) -> AccountMapper {
        AccountMapper::open(self.store(), config).unwrap()
    }

    fn open(&self) -> AccountMapper {
        self.open_with(self.config())
    }
}

fn who(subject: &str, vo: &str) -> VoIdentity {
    VoIdentity::new("https://vo.example", subject, vo)
}

/// Checks the (uid, gid) each identity maps to, in order.
fn check_maps(mapper: &AccountMapper, expected: &[(&str, &str, u32, u32)]) {
    for &(subject, vo, uid, gid) in expected {
        let m = mapper.map(&who(subject, vo)).unwrap();
        assert_eq!((m.uid, m.gid), (uid, gid), "{subject} in {vo}");
    }
}

#[test]
fn allocates_the_lowest_free_uid_and_one_group_per_vo() {
    let node = Node::new();
    let mapper = node.open();
    check_maps(
        &mapper,
        &[
            ("alice", "bio", 200_000, 200_000),
            ("bob", "bio", 200_001, 200_000),
            ("alice", "chem", 200_002, 200_001),
            ("carol", "bio", 200_003, 200_000),
            // Known identities keep their accounts.
            ("bob", "bio", 200_001, 200_000),
            ("alice", "chem", 200_002, 200_001),
        ],
    );
    let m = mapper.map(&who("alice", "chem")).unwrap();
    assert_eq!(m.user_name, "xvo-chem-200002");
    assert_eq!(m.group_name, "xvo-chem");
    assert_eq!(
        mapper.get(200_002).unwrap().unwrap().identity,
        who("alice", "chem")
    );
    assert_eq!(mapper.get(200_010).unwrap(), None);
}

#[test]
fn refuses_invalid_identities() {
    let node = Node::new();
    let mapper = node.open();
    let err = mapper.map(&who("", "bio")).unwrap_err();
    assert!(err.to_string().contains("subject is empty"), "{err}");
}

#[test]
fn says_when_the_pool_is_exhausted() {
    let node = Node::new();
    let mut config = node.config();
    config.uid_max = config.uid_min + 1;
    let mapper = node.open_with(config);
    check_maps(
        &mapper,
        &[
            ("a", "bio", 200_000, 200_000),
            ("b", "bio", 200_001, 200_000),
        ],
    );
    let err = mapper.map(&who("c", "bio")).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, AccountsError::UidPoolExhausted { leased: 2, .. }),
        "{text}"
    );
    assert!(
        text.contains("no free uid in the account pool 200000-200001"),
        "{text}"
    );

    // Quarantined uids count as taken too, and the message says so.
    mapper.release(200_000, 1_000).unwrap();
    let err = mapper.map(&who("c", "bio")).unwrap_err();
    assert!(
        matches!(
            err,
            AccountsError::UidPoolExhausted {
                leased: 1,
                quarantined: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn says_when_the_group_pool_is_exhausted() {
    let node = Node::new();
    let mut config = node.config();
    config.gid_max = config.gid_min;
    let mapper = node.open_with(config);
    check_maps(&mapper, &[("a", "bio", 200_000, 200_000)]);
    let err = mapper.map(&who("a", "chem")).unwrap_err();
    assert!(err.to_string().contains("no free gid"), "{err}");
    // A failed allocation leaves nothing behind: the next identity of a
    // known VO gets the uid that was not used.
    check_maps(&mapper, &[("b", "bio", 200_001, 200_000)]);
}

#[test]
fn leases_and_groups_survive_a_reopen_of_the_store() {
    let node = Node::new();
    {
        let mapper = node.open();
        check_maps(
            &mapper,
            &[
                ("alice", "bio", 200_000, 200_000),
                ("bob", "chem", 200_001, 200_001),
            ],
        );
        mapper.release(200_000, unix_now()).unwrap();
    }
    let mapper = node.open();
    check_maps(
        &mapper,
        &[
            ("bob", "chem", 200_001, 200_001),
            // 200000 is in quarantine; the bio group is kept.
            ("carol", "bio", 200_002, 200_000),
        ],
    );
    let views = mapper.list().unwrap();
    let uids: Vec<u32> = views.iter().map(|v| v.uid).collect();
    assert_eq!(uids, [200_000, 200_001, 200_002]);
    assert!(matches!(
        views[0].state,
        AccountState::Quarantined { cleaned: true, .. }
    ));
    assert_eq!(views[0].identity, who("alice", "bio"));
    assert_eq!(views[0].group_name, "xvo-bio");
    assert!(matches!(views[1].state, AccountState::Leased { .. }));
}

#[test]
fn a_restart_counts_as_use_so_it_never_hastens_a_release() {
    let node = Node::new();
    let mut config = node.config();
    config.idle_timeout = Duration::from_secs(600);
    {
        let mapper = node.open_with(config.clone());
        mapper.map(&who("alice", "bio")).unwrap();
    }
    let mapper = node.open_with(config);
    let now = unix_now();
    assert!(mapper.release_idle(now + 599).unwrap().is_empty());
    assert_eq!(mapper.release_idle(now + 601).unwrap().len(), 1);
}

#[test]
fn touch_postpones_release_and_unknown_uids_are_refused() {
    let node = Node::new();
    let mut config = node.config();
    config.idle_timeout = Duration::from_secs(60);
    let mapper = node.open_with(config);
    let a = mapper.map(&who("alice", "bio")).unwrap();
    let now = unix_now();
    assert!(mapper.release_idle(now + 30).unwrap().is_empty());
    mapper.touch(a.uid).unwrap();
    let released = mapper.release_idle(now + 120).unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].identity, who("alice", "bio"));
    assert_eq!(released[0].cleanup_error, None);
    let err = mapper.touch(a.uid).unwrap_err();
    assert!(matches!(err, AccountsError::UnknownLease(200_000)), "{err}");
    let err = mapper.release(a.uid, now).unwrap_err();
    assert!(matches!(err, AccountsError::UnknownLease(200_000)), "{err}");
}

#[test]
fn quarantine_blocks_reuse_until_it_ends_then_the_uid_is_reused() {
    let node = Node::new();
    let mut config = node.config();
    config.idle_timeout = Duration::ZERO;
    config.quarantine = Duration::from_secs(100);
    let mapper = node.open_with(config);
    check_maps(&mapper, &[("alice", "bio", 200_000, 200_000)]);

    let now = unix_now();
    let released = mapper.release_idle(now).unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].quarantine_until_unix, now + 100);

    // The same identity comes back: it gets a fresh uid, not its old one.
    check_maps(&mapper, &[("alice", "bio", 200_001, 200_000)]);
    check_maps(&mapper, &[("bob", "bio", 200_002, 200_000)]);
    assert!(mapper.end_quarantines(now + 99).unwrap().is_empty());
    check_maps(&mapper, &[("carol", "bio", 200_003, 200_000)]);

    assert_eq!(mapper.end_quarantines(now + 100).unwrap(), [200_000]);
    check_maps(&mapper, &[("dave", "chem", 200_000, 200_001)]);
    let m = mapper.get(200_000).unwrap().unwrap();
    assert_eq!(m.identity, who("dave", "chem"));
}

#[test]
fn sweep_releases_idle_leases_and_ends_quarantines() {
    let node = Node::new();
    let mut config = node.config();
    config.idle_timeout = Duration::from_secs(10);
    config.quarantine = Duration::from_secs(10);
    let mapper = node.open_with(config);
    mapper.map(&who("alice", "bio")).unwrap();
    let now = unix_now();
    let first = mapper.sweep(now + 10).unwrap();
    assert_eq!(first.released.len(), 1);
    assert!(first.returned_to_pool.is_empty());
    let second = mapper.sweep(now + 20).unwrap();
    assert!(second.released.is_empty());
    assert_eq!(second.returned_to_pool, [200_000]);
    assert!(mapper.list().unwrap().is_empty());
}

#[test]
fn scratch_is_only_prepared_for_a_current_lease() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: preparing a scratch directory for a pool uid needs root (chown)");
        return;
    }
    let node = Node::new();
    let mapper = node.open();
    let m = mapper.map(&who("alice", "bio")).unwrap();
    let path = mapper.prepare_scratch(&m).unwrap();
    assert_eq!(path, mapper.scratch_dir(&m));
    assert_eq!(
        path,
        node.dir.path().join("scratch").join(m.uid.to_string())
    );
    std::fs::write(path.join("result"), "x").ok();
    let report = mapper.release(m.uid, unix_now()).unwrap();
    assert_eq!(report.cleanup_error, None);
    assert!(!path.exists());
    let err = mapper.prepare_scratch(&m).unwrap_err();
    assert!(matches!(err, AccountsError::UnknownLease(_)), "{err}");
}

#[test]
fn a_release_whose_cleanup_never_ran_is_cleaned_before_the_uid_returns() {
    let node = Node::new();
    let mut config = node.config();
    config.quarantine = Duration::ZERO;
    let store = node.store();
    let mapper = AccountMapper::open(store.clone(), config.clone()).unwrap();
    let m = mapper.map(&who("alice", "bio")).unwrap();
    // What a crash right after recording the release leaves: the uid is
    // quarantined, nothing was cleaned, files are still there.
    let scratch = config.scratch_root.join(m.uid.to_string());
    std::fs::create_dir_all(scratch.join("sub")).unwrap();
    std::fs::write(scratch.join("sub/data"), "alice's").unwrap();
    let now = unix_now();
    store
        .execute(
            &AccountMachine,
            AccountCommand::Release {
                uid: m.uid,
                now_unix: now,
                quarantine_until_unix: now,
            },
        )
        .unwrap();
    drop(mapper);

    let mapper = AccountMapper::open(store, config).unwrap();
    assert!(matches!(
        mapper.list().unwrap()[0].state,
        AccountState::Quarantined { cleaned: false, .. }
    ));
    // The uid is not handed out while its files are there.
    check_maps(&mapper, &[("bob", "bio", 200_001, 200_000)]);
    assert_eq!(mapper.end_quarantines(now).unwrap(), [m.uid]);
    assert!(!scratch.exists());
    check_maps(&mapper, &[("carol", "bio", 200_000, 200_000)]);
}

#[test]
fn the_mapper_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<AccountMapper>();
}
