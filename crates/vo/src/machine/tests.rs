use xtreem_store::Store;

use super::*;

fn site() -> Actor {
    Actor::SiteAdmin("root".into())
}

fn user(name: &str) -> Actor {
    Actor::User(name.into())
}

fn key(kid: &str) -> VoKey {
    VoKey {
        kid: kid.into(),
        x: "x".into(),
        state: KeyState::Next,
        created_unix: 1,
    }
}

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    for name in ["alice", "bob", "carol"] {
        run(
            &store,
            VoCommand::AddUser {
                name: name.into(),
                password_hash: "h".into(),
                now_unix: 1,
            },
        )
        .unwrap();
    }
    run(
        &store,
        VoCommand::CreateVo {
            name: "demo".into(),
            issuer: "xtreem://lab/vo/demo".into(),
            first_admin: Some("alice".into()),
            key: key("demo-1"),
            by: site(),
            now_unix: 1,
        },
    )
    .unwrap();
    (dir, store)
}

fn run(store: &Store, command: VoCommand) -> Result<(), VoError> {
    store.execute(&VoMachine, command)
}

fn join(store: &Store, who: &str) {
    run(
        store,
        VoCommand::RequestJoin {
            vo: "demo".into(),
            user: who.into(),
            now_unix: 2,
        },
    )
    .unwrap();
    run(
        store,
        VoCommand::Decide {
            vo: "demo".into(),
            user: who.into(),
            approve: true,
            by: user("alice"),
            now_unix: 3,
        },
    )
    .unwrap();
}

fn member(store: &Store, who: &str) -> Member {
    store
        .read(|r| query::member(r, "demo", who))
        .unwrap()
        .unwrap()
}

#[test]
fn membership_goes_from_request_to_approval_to_removal() {
    let (_d, store) = setup();
    run(
        &store,
        VoCommand::RequestJoin {
            vo: "demo".into(),
            user: "bob".into(),
            now_unix: 2,
        },
    )
    .unwrap();
    assert_eq!(member(&store, "bob").state, MemberState::Requested);
    let again = run(
        &store,
        VoCommand::RequestJoin {
            vo: "demo".into(),
            user: "bob".into(),
            now_unix: 2,
        },
    );
    assert!(matches!(again, Err(VoError::AlreadyRequested { .. })));
    run(
        &store,
        VoCommand::Decide {
            vo: "demo".into(),
            user: "bob".into(),
            approve: true,
            by: user("alice"),
            now_unix: 3,
        },
    )
    .unwrap();
    assert_eq!(member(&store, "bob").role_claims(), ["/demo:member"]);
    run(
        &store,
        VoCommand::RemoveMember {
            vo: "demo".into(),
            user: "bob".into(),
            by: user("alice"),
        },
    )
    .unwrap();
    assert_eq!(member(&store, "bob").state, MemberState::Removed);
}

#[test]
fn a_rejected_request_grants_nothing() {
    let (_d, store) = setup();
    run(
        &store,
        VoCommand::RequestJoin {
            vo: "demo".into(),
            user: "bob".into(),
            now_unix: 2,
        },
    )
    .unwrap();
    run(
        &store,
        VoCommand::Decide {
            vo: "demo".into(),
            user: "bob".into(),
            approve: false,
            by: user("alice"),
            now_unix: 3,
        },
    )
    .unwrap();
    let m = member(&store, "bob");
    assert_eq!((m.state, m.roles.len()), (MemberState::Rejected, 0));
}

#[test]
fn a_member_cannot_do_admin_actions_and_nothing_changes() {
    let (_d, store) = setup();
    join(&store, "bob");
    run(
        &store,
        VoCommand::RequestJoin {
            vo: "demo".into(),
            user: "carol".into(),
            now_unix: 2,
        },
    )
    .unwrap();
    let applied = store.applied_index().unwrap();
    for command in [
        VoCommand::Decide {
            vo: "demo".into(),
            user: "carol".into(),
            approve: true,
            by: user("bob"),
            now_unix: 4,
        },
        VoCommand::CreateGroup {
            vo: "demo".into(),
            path: "/demo/x".into(),
            by: user("bob"),
        },
        VoCommand::GrantRole {
            vo: "demo".into(),
            user: "bob".into(),
            group: "/demo".into(),
            role: "admin".into(),
            by: user("bob"),
        },
        VoCommand::SetState {
            name: "demo".into(),
            state: VoState::Suspended,
            by: user("bob"),
        },
        VoCommand::AddKey {
            vo: "demo".into(),
            key: key("demo-2"),
            by: user("bob"),
        },
    ] {
        let err = run(&store, command).unwrap_err();
        assert!(matches!(err, VoError::Denied(_)), "{err}");
    }
    assert_eq!(store.applied_index().unwrap(), applied);
}

#[test]
fn a_subgroup_admin_cannot_grant_above_their_own_role() {
    let (_d, store) = setup();
    join(&store, "bob");
    join(&store, "carol");
    run(
        &store,
        VoCommand::CreateGroup {
            vo: "demo".into(),
            path: "/demo/analysis".into(),
            by: user("alice"),
        },
    )
    .unwrap();
    run(
        &store,
        VoCommand::GrantRole {
            vo: "demo".into(),
            user: "bob".into(),
            group: "/demo/analysis".into(),
            role: "admin".into(),
            by: user("alice"),
        },
    )
    .unwrap();
    // bob administers /demo/analysis and may grant there, even admin...
    run(
        &store,
        VoCommand::GrantRole {
            vo: "demo".into(),
            user: "carol".into(),
            group: "/demo/analysis".into(),
            role: "shifter".into(),
            by: user("bob"),
        },
    )
    .unwrap();
    // ...but never on the VO root above him.
    let err = run(
        &store,
        VoCommand::GrantRole {
            vo: "demo".into(),
            user: "carol".into(),
            group: "/demo".into(),
            role: "admin".into(),
            by: user("bob"),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("admin role there"), "{err}");
    let err = run(
        &store,
        VoCommand::GrantRole {
            vo: "demo".into(),
            user: "bob".into(),
            group: "/demo".into(),
            role: "admin".into(),
            by: user("bob"),
        },
    )
    .unwrap_err();
    assert!(matches!(err, VoError::Denied(_)));
    assert!(
        member(&store, "carol")
            .role_claims()
            .contains(&"/demo/analysis:shifter".to_owned())
    );
}

#[test]
fn key_rotation_publishes_before_use_and_withdrawal_is_final() {
    let (_d, store) = setup();
    run(
        &store,
        VoCommand::AddKey {
            vo: "demo".into(),
            key: key("demo-2"),
            by: user("alice"),
        },
    )
    .unwrap();
    let vo = store.read(|r| query::vo(r, "demo")).unwrap().unwrap();
    assert_eq!(vo.active_key().unwrap().kid, "demo-1");
    assert!(
        vo.keys
            .iter()
            .any(|k| k.kid == "demo-2" && k.state == KeyState::Next)
    );
    let err = run(
        &store,
        VoCommand::WithdrawKey {
            vo: "demo".into(),
            kid: "demo-1".into(),
            by: user("alice"),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("the key in use"), "{err}");
    run(
        &store,
        VoCommand::ActivateKey {
            vo: "demo".into(),
            kid: "demo-2".into(),
            by: user("alice"),
        },
    )
    .unwrap();
    run(
        &store,
        VoCommand::WithdrawKey {
            vo: "demo".into(),
            kid: "demo-1".into(),
            by: user("alice"),
        },
    )
    .unwrap();
    let vo = store.read(|r| query::vo(r, "demo")).unwrap().unwrap();
    assert_eq!(vo.active_key().unwrap().kid, "demo-2");
    let err = run(
        &store,
        VoCommand::ActivateKey {
            vo: "demo".into(),
            kid: "demo-1".into(),
            by: user("alice"),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("withdrawn"), "{err}");
}

#[test]
fn a_suspended_vo_accepts_no_changes_until_resumed() {
    let (_d, store) = setup();
    run(
        &store,
        VoCommand::SetState {
            name: "demo".into(),
            state: VoState::Suspended,
            by: user("alice"),
        },
    )
    .unwrap();
    let err = run(
        &store,
        VoCommand::RequestJoin {
            vo: "demo".into(),
            user: "bob".into(),
            now_unix: 2,
        },
    )
    .unwrap_err();
    assert!(matches!(err, VoError::Suspended(_)));
    run(
        &store,
        VoCommand::SetState {
            name: "demo".into(),
            state: VoState::Active,
            by: site(),
        },
    )
    .unwrap();
    run(
        &store,
        VoCommand::RequestJoin {
            vo: "demo".into(),
            user: "bob".into(),
            now_unix: 2,
        },
    )
    .unwrap();
}

#[test]
fn only_site_admins_create_vos_and_names_are_checked() {
    let (_d, store) = setup();
    let err = run(
        &store,
        VoCommand::CreateVo {
            name: "x".into(),
            issuer: "i".into(),
            first_admin: None,
            key: key("x-1"),
            by: user("alice"),
            now_unix: 1,
        },
    )
    .unwrap_err();
    assert!(matches!(err, VoError::Denied(_)));
    let err = run(
        &store,
        VoCommand::CreateVo {
            name: "Bad Name".into(),
            issuer: "i".into(),
            first_admin: None,
            key: key("x-1"),
            by: site(),
            now_unix: 1,
        },
    )
    .unwrap_err();
    assert!(matches!(err, VoError::Invalid { .. }));
    let err = run(
        &store,
        VoCommand::CreateVo {
            name: "demo".into(),
            issuer: "i".into(),
            first_admin: None,
            key: key("x-1"),
            by: site(),
            now_unix: 1,
        },
    )
    .unwrap_err();
    assert!(matches!(err, VoError::VoExists(_)));
}
