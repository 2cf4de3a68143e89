use xtreem_store::Store;

use super::*;
use crate::token::secret_hash;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    (dir, store)
}

fn cert(serial: &str, not_after_unix: u64) -> CertRecord {
    CertRecord {
        serial: serial.into(),
        not_after_unix,
    }
}

fn init(store: &Store) {
    store
        .execute(
            &SiteMachine,
            SiteCommand::Init {
                site: "lab".parse().unwrap(),
                ca_cert_pem: "pem".into(),
                authority: "core".parse().unwrap(),
                roles: vec![Role::Core],
                endpoint: "127.0.0.1:1".into(),
                cert: cert("01", 2_000),
                now_unix: 1_000,
            },
        )
        .unwrap();
    store
        .execute(
            &SiteMachine,
            SiteCommand::CreateToken {
                id: "t1".into(),
                secret_hash: secret_hash("s1"),
                now_unix: 1_000,
                expires_unix: 1_100,
            },
        )
        .unwrap();
}

fn enroll(store: &Store, secret: &str, node: &str, now_unix: u64) -> Result<SiteOutcome> {
    store.execute(
        &SiteMachine,
        SiteCommand::Enroll {
            token_id: "t1".into(),
            secret_hash: secret_hash(secret),
            node: node.parse().unwrap(),
            roles: vec![Role::Resource],
            endpoint: "127.0.0.1:2".into(),
            cert: cert("02", 2_000),
            now_unix,
        },
    )
}

fn node_names(store: &Store) -> Vec<String> {
    store
        .read(|r| {
            Ok::<_, SecurityError>(
                query::nodes(r)?
                    .into_iter()
                    .map(|n| n.name.to_string())
                    .collect::<Vec<_>>(),
            )
        })
        .unwrap()
}

#[test]
fn a_token_enrolls_exactly_one_node() {
    let (_d, store) = store();
    init(&store);
    enroll(&store, "s1", "n1", 1_010).unwrap();
    let err = enroll(&store, "s1", "n2", 1_020).unwrap_err();
    assert!(
        matches!(&err, SecurityError::TokenUsed { by, .. } if by == "n1"),
        "{err}"
    );
    assert_eq!(node_names(&store), ["core", "n1"]);
}

#[test]
fn expired_or_wrong_tokens_change_nothing() {
    let (_d, store) = store();
    init(&store);
    let applied = store.applied_index().unwrap();
    assert!(matches!(
        enroll(&store, "s1", "n1", 1_100),
        Err(SecurityError::TokenExpired { .. })
    ));
    assert!(matches!(
        enroll(&store, "nope", "n1", 1_010),
        Err(SecurityError::TokenMismatch(_))
    ));
    assert_eq!(store.applied_index().unwrap(), applied);
    assert_eq!(node_names(&store), ["core"]);
    let token = store.read(|r| query::token(r, "t1")).unwrap().unwrap();
    assert_eq!(token.used_by, None);
}

#[test]
fn removal_revokes_live_certificates_and_bumps_the_list() {
    let (_d, store) = store();
    init(&store);
    enroll(&store, "s1", "n1", 1_010).unwrap();
    let out = store
        .execute(
            &SiteMachine,
            SiteCommand::RemoveNode {
                node: "n1".parse().unwrap(),
                now_unix: 1_050,
            },
        )
        .unwrap();
    assert_eq!(out, SiteOutcome::Revoked { certificates: 1 });
    let list = store.read(query::revocations).unwrap();
    assert_eq!(list.version, 1);
    assert_eq!(list.entries[0].serial, "02");
    let again = store.execute(
        &SiteMachine,
        SiteCommand::RemoveNode {
            node: "n1".parse().unwrap(),
            now_unix: 1_060,
        },
    );
    assert!(matches!(again, Err(SecurityError::NodeRemoved(_))));
    let authority = store.execute(
        &SiteMachine,
        SiteCommand::RemoveNode {
            node: "core".parse().unwrap(),
            now_unix: 1_060,
        },
    );
    assert!(matches!(authority, Err(SecurityError::Invalid { .. })));
}

#[test]
fn an_active_name_cannot_be_enrolled_twice() {
    let (_d, store) = store();
    init(&store);
    let err = enroll(&store, "s1", "core", 1_010).unwrap_err();
    assert!(matches!(err, SecurityError::NodeExists(_)), "{err}");
}
