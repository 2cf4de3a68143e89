//! Virtual Organizations as their users and admins meet them: real daemons,
//! credentials verified offline on every node, refusals with clear errors.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use tonic::Code;
use xtreem_client::{ClientError, Profile, VoClient};
use xtreem_proto::vo as pb;
use xtreem_testkit::{Grid, NodeSpec};
use xtreem_token::{Audience, Claims, SigningKey};

const PASSWORD: &str = "correct horse battery";

/// A 2-node site with users alice (admin of VO demo), bob and carol, VO demo
/// served on every node.
async fn vo_site() -> Grid {
    let grid = site(2).await;
    let mut admin = admin_client(&grid, 0);
    for user in ["alice", "bob", "carol"] {
        admin
            .add_user(pb::AddUserRequest {
                name: user.into(),
                password: PASSWORD.into(),
            })
            .await
            .unwrap();
    }
    admin
        .create_vo(pb::CreateVoRequest {
            name: "demo".into(),
            first_admin: "alice".into(),
        })
        .await
        .unwrap();
    admin
        .serve_vo(pb::ServeVoRequest {
            vo: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    grid
}

fn profile(grid: &Grid) -> Profile {
    Profile::load(&grid.admin_dir()).unwrap()
}

fn admin_client(grid: &Grid, node: usize) -> VoClient {
    VoClient::connect(&profile(grid), &grid.node(node).rpc, true, None).unwrap()
}

/// A client that presents `token` (no certificate) to node `i`.
fn user_client(grid: &Grid, node: usize, token: Option<&str>) -> VoClient {
    VoClient::connect(
        &profile(grid),
        &grid.node(node).rpc,
        false,
        token.map(str::to_owned),
    )
    .unwrap()
}

async fn login(grid: &Grid, user: &str, vo: &str) -> String {
    user_client(grid, 0, None)
        .login(pb::LoginRequest {
            user: user.into(),
            password: PASSWORD.into(),
            vo: vo.into(),
            ttl_seconds: 3600,
        })
        .await
        .unwrap()
        .token
}

async fn join(grid: &Grid, user: &str, admin_token: &str) {
    user_client(grid, 0, None)
        .request_join(pb::RequestJoinRequest {
            vo: "demo".into(),
            user: user.into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    user_client(grid, 0, Some(admin_token))
        .decide(pb::DecideRequest {
            vo: "demo".into(),
            user: user.into(),
            approve: true,
        })
        .await
        .unwrap();
}

/// Whoami on node `i`, retried until the node's trust document has caught
/// up (heartbeats every 500 ms) or 10 s passed; returns the last answer.
async fn whoami_eventually(
    grid: &Grid,
    i: usize,
    token: &str,
    done: impl Fn(&Result<pb::WhoamiResponse, ClientError>) -> bool,
) -> Result<pb::WhoamiResponse, ClientError> {
    let mut last = user_client(grid, i, Some(token))
        .whoami(pb::WhoamiRequest {})
        .await;
    for _ in 0..100 {
        if done(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = user_client(grid, i, Some(token))
            .whoami(pb::WhoamiRequest {})
            .await;
    }
    last
}

fn refused(result: Result<impl std::fmt::Debug, ClientError>, code: Code, words: &str) {
    match result {
        Err(ClientError::Refused {
            code: c, message, ..
        }) => {
            assert_eq!(c, code, "{message}");
            assert!(message.contains(words), "expected {words:?} in {message:?}");
        }
        other => panic!("expected a refusal containing {words:?}, got {other:?}"),
    }
}

/// The VO's current signing key, read from the authority's data dir, to
/// forge credentials that only the signature or claims make wrong.
fn vo_key(grid: &Grid) -> SigningKey {
    let dir = grid.node(0).data_dir().join("vo-keys");
    let mut keys: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    keys.sort();
    let path = keys.last().unwrap();
    let kid = path.file_stem().unwrap().to_str().unwrap().to_owned();
    SigningKey::from_pkcs8(&kid, &std::fs::read(path).unwrap()).unwrap()
}

fn demo_claims(now: u64) -> Claims {
    Claims::new(
        "xtreem://lab/vo/demo",
        "alice",
        Audience::ANY_SITE,
        now,
        600,
    )
    .with_groups(vec!["/demo".into()])
    .with_scope("compute.read vo.read")
}

#[tokio::test]
async fn one_login_is_verified_offline_on_every_node_and_maps_a_pool_uid() {
    let grid = vo_site().await;
    let token = login(&grid, "alice", "demo").await;
    for i in 0..2 {
        let w = whoami_eventually(&grid, i, &token, |r| r.as_ref().is_ok_and(|w| w.uid >= 0))
            .await
            .unwrap();
        assert_eq!((w.subject.as_str(), w.vo.as_str()), ("alice", "demo"));
        assert_eq!(w.groups, ["/demo"]);
        assert!(w.roles.contains(&"/demo:admin".to_owned()), "{:?}", w.roles);
        assert!(w.scope.contains("vo.admin"));
        assert!(
            (200_000..300_000).contains(&w.uid),
            "uid {} on node {i}",
            w.uid
        );
        assert_eq!(w.node, format!("node-{}", i + 1));
    }
    // Every node publishes the VO's keys as a JWKS document.
    let (code, body) = xtreem_testkit::http_get(&grid.node(1).http, "/vo/demo/jwks.json").unwrap();
    assert_eq!(code, 200, "{body}");
    let jwks: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert_eq!(
        xtreem_testkit::http_get(&grid.node(1).http, "/vo/nope/jwks.json")
            .unwrap()
            .0,
        404
    );
    // The site admin sees the mapping on node-2.
    let accounts = admin_client(&grid, 1)
        .list_accounts(pb::Empty {})
        .await
        .unwrap();
    assert!(
        accounts
            .accounts
            .iter()
            .any(|a| a.subject == "alice" && a.vo == "demo"),
        "{accounts:?}"
    );
}

#[tokio::test]
async fn forged_or_stale_credentials_are_refused_on_every_node() {
    let grid = vo_site().await;
    let key = vo_key(&grid);
    let now = xtreem_util::time::unix_now();
    let good = key.sign(&demo_claims(now)).unwrap();
    whoami_eventually(&grid, 1, &good, |r| r.is_ok())
        .await
        .unwrap();

    let mut expired = demo_claims(now - 4000);
    expired.exp = now - 120;
    let mut future = demo_claims(now);
    future.nbf = now + 300;
    let mut other_aud = demo_claims(now);
    other_aud.aud = vec!["https://another-grid".into()];
    let mut other_vo_group = demo_claims(now);
    other_vo_group.groups = vec!["/demo".into(), "/other".into()];
    let stranger = SigningKey::generate(key.kid()).unwrap();
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let payload = serde_json::to_string(&demo_claims(now)).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (key.sign(&expired).unwrap(), "expired"),
        (key.sign(&future).unwrap(), "not valid before"),
        (key.sign(&other_aud).unwrap(), "audience"),
        (
            stranger.sign(&demo_claims(now)).unwrap(),
            "signature is invalid",
        ),
        (
            format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&payload)),
            "only EdDSA",
        ),
        (
            format!(
                "{}.{}.c2ln",
                b64(r#"{"alg":"HS256","typ":"JWT","kid":"x"}"#),
                b64(&payload)
            ),
            "only EdDSA",
        ),
        (key.sign(&other_vo_group).unwrap(), "another VO"),
    ];
    for i in 0..2 {
        for (token, words) in &cases {
            let code = if words == &"another VO" {
                Code::PermissionDenied
            } else {
                Code::Unauthenticated
            };
            refused(
                user_client(&grid, i, Some(token))
                    .whoami(pb::WhoamiRequest {})
                    .await,
                code,
                words,
            );
        }
    }
}

#[tokio::test]
async fn vo_roles_are_enforced_and_a_credential_of_one_vo_cannot_act_on_another() {
    let grid = vo_site().await;
    admin_client(&grid, 0)
        .create_vo(pb::CreateVoRequest {
            name: "other".into(),
            first_admin: "carol".into(),
        })
        .await
        .unwrap();
    let alice = login(&grid, "alice", "demo").await;
    join(&grid, "bob", &alice).await;
    let bob = login(&grid, "bob", "demo").await;

    // A member doing an admin action.
    user_client(&grid, 0, None)
        .request_join(pb::RequestJoinRequest {
            vo: "demo".into(),
            user: "carol".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    refused(
        user_client(&grid, 0, Some(&bob))
            .decide(pb::DecideRequest {
                vo: "demo".into(),
                user: "carol".into(),
                approve: true,
            })
            .await,
        Code::PermissionDenied,
        "needs the admin role on /demo",
    );
    // A VO admin of a subgroup granting a role above their own.
    user_client(&grid, 0, Some(&alice))
        .create_group(pb::CreateGroupRequest {
            vo: "demo".into(),
            path: "/demo/analysis".into(),
        })
        .await
        .unwrap();
    user_client(&grid, 0, Some(&alice))
        .grant_role(pb::RoleRequest {
            vo: "demo".into(),
            user: "bob".into(),
            group: "/demo/analysis".into(),
            role: "admin".into(),
        })
        .await
        .unwrap();
    let bob = login(&grid, "bob", "demo").await;
    refused(
        user_client(&grid, 0, Some(&bob))
            .grant_role(pb::RoleRequest {
                vo: "demo".into(),
                user: "bob".into(),
                group: "/demo".into(),
                role: "admin".into(),
            })
            .await,
        Code::PermissionDenied,
        "admin role there",
    );
    // A token of VO demo used for a VO other action.
    refused(
        user_client(&grid, 0, Some(&alice))
            .show_vo(pb::VoName {
                name: "other".into(),
            })
            .await,
        Code::PermissionDenied,
        "your credential is for VO demo, not VO other",
    );
    // Nothing changed: carol is still only a requester, bob not an admin of /demo.
    let detail = admin_client(&grid, 0)
        .show_vo(pb::VoName {
            name: "demo".into(),
        })
        .await
        .unwrap();
    let carol = detail.members.iter().find(|m| m.user == "carol").unwrap();
    assert_eq!(carol.state, "requested");
    let bob_roles = &detail
        .members
        .iter()
        .find(|m| m.user == "bob")
        .unwrap()
        .roles;
    assert!(
        !bob_roles.contains(&"/demo:admin".to_owned()),
        "{bob_roles:?}"
    );
}

#[tokio::test]
async fn delegation_only_narrows_and_records_the_actor() {
    let grid = vo_site().await;
    let alice = login(&grid, "alice", "demo").await;
    let narrower = user_client(&grid, 0, Some(&alice))
        .delegate(pb::DelegateRequest {
            scopes: vec!["compute.read".into()],
            ttl_seconds: 300,
            audience: Audience::site("lab"),
            actor: "node-2".into(),
        })
        .await
        .unwrap();
    let w = whoami_eventually(&grid, 1, &narrower.token, |r| r.is_ok())
        .await
        .unwrap();
    assert_eq!(
        (w.scope.as_str(), w.actors.as_slice()),
        ("compute.read", ["node-2".to_owned()].as_slice())
    );
    refused(
        user_client(&grid, 0, Some(&alice))
            .delegate(pb::DelegateRequest {
                scopes: vec!["compute.read".into(), "storage.admin".into()],
                ttl_seconds: 60,
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "never widens a scope",
    );
    refused(
        user_client(&grid, 0, Some(&alice))
            .delegate(pb::DelegateRequest {
                scopes: vec!["compute.read".into()],
                ttl_seconds: 10 * 3600,
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "outlive the original",
    );
    refused(
        user_client(&grid, 0, Some(&narrower.token))
            .delegate(pb::DelegateRequest {
                scopes: vec!["compute.read".into()],
                ttl_seconds: 60,
                audience: "xtreem:elsewhere".into(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
        "not allowed by the original",
    );
}

#[tokio::test]
async fn rotated_keys_keep_old_credentials_until_withdrawn_then_refuse_them() {
    let grid = vo_site().await;
    let old = login(&grid, "alice", "demo").await;
    let rotated = user_client(&grid, 0, Some(&old))
        .rotate_key(pb::RotateKeyRequest {
            vo: "demo".into(),
            activate: false,
        })
        .await
        .unwrap();
    assert!(rotated.keys.iter().any(|k| k.state == "next"));
    user_client(&grid, 0, Some(&old))
        .rotate_key(pb::RotateKeyRequest {
            vo: "demo".into(),
            activate: true,
        })
        .await
        .unwrap();
    let new = login(&grid, "alice", "demo").await;
    // Both verify everywhere while the old key is still published.
    for i in 0..2 {
        whoami_eventually(&grid, i, &new, |r| r.is_ok())
            .await
            .unwrap();
        whoami_eventually(&grid, i, &old, |r| r.is_ok())
            .await
            .unwrap();
    }
    let vo = admin_client(&grid, 0)
        .show_vo(pb::VoName {
            name: "demo".into(),
        })
        .await
        .unwrap()
        .vo
        .unwrap();
    let retired = vo
        .keys
        .iter()
        .find(|k| k.state == "retired")
        .unwrap()
        .kid
        .clone();
    user_client(&grid, 0, Some(&new))
        .withdraw_key(pb::WithdrawKeyRequest {
            vo: "demo".into(),
            kid: retired,
        })
        .await
        .unwrap();
    // The authority refuses at once; node-2 from its next heartbeat.
    refused(
        user_client(&grid, 0, Some(&old))
            .whoami(pb::WhoamiRequest {})
            .await,
        Code::Unauthenticated,
        "does not trust",
    );
    let r = whoami_eventually(&grid, 1, &old, |r| r.is_err()).await;
    refused(r, Code::Unauthenticated, "does not trust");
    whoami_eventually(&grid, 1, &new, |r| r.is_ok())
        .await
        .unwrap();
}

#[tokio::test]
async fn policy_levels_combine_with_forbid_winning_and_errors_denying() {
    let grid = vo_site().await;
    let alice = login(&grid, "alice", "demo").await;
    let test = |grid: &Grid| {
        let mut c = admin_client(grid, 1);
        async move {
            c.test_policy(pb::TestPolicyRequest {
                user: "alice".into(),
                vo: "demo".into(),
                action: "use_node".into(),
                ..Default::default()
            })
            .await
            .unwrap()
        }
    };
    assert!(
        whoami_eventually(&grid, 1, &alice, |r| r.as_ref().is_ok_and(|w| w.uid >= 0))
            .await
            .unwrap()
            .uid
            >= 0
    );
    assert!(test(&grid).await.allowed);

    // A policy that fails validation is refused and nothing changes.
    let bad = user_client(&grid, 0, Some(&alice))
        .set_policy(pb::SetPolicyRequest {
            level: Some(pb::PolicyLevel {
                level: "vo".into(),
                name: "demo".into(),
            }),
            text: "permit(principal, action == Xtreem::Action::\"fly\", resource);".into(),
        })
        .await;
    refused(bad, Code::InvalidArgument, "nothing changed");

    // A site forbid beats the VO's permit, on every node.
    admin_client(&grid, 0)
        .set_policy(pb::SetPolicyRequest {
            level: Some(pb::PolicyLevel { level: "site".into(), name: String::new() }),
            text: "forbid(principal, action == Xtreem::Action::\"use_node\", resource) when { principal.vo == \"demo\" };".into(),
        })
        .await
        .unwrap();
    let mut denied = false;
    for _ in 0..100 {
        if !test(&grid).await.allowed {
            denied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(denied, "node-2 still allows use_node after the site forbid");
    let w = user_client(&grid, 1, Some(&alice))
        .whoami(pb::WhoamiRequest {})
        .await
        .unwrap();
    assert!(
        w.uid < 0 && w.account_note.contains("policy denies use_node"),
        "{w:?}"
    );

    // Remove the forbid; a VO policy that errors at evaluation denies.
    admin_client(&grid, 0)
        .set_policy(pb::SetPolicyRequest {
            level: Some(pb::PolicyLevel {
                level: "site".into(),
                name: String::new(),
            }),
            text: String::new(),
        })
        .await
        .unwrap();
    user_client(&grid, 0, Some(&alice))
        .set_policy(pb::SetPolicyRequest {
            level: Some(pb::PolicyLevel { level: "vo".into(), name: "demo".into() }),
            text: "permit(principal, action == Xtreem::Action::\"use_node\", resource) when { context.time_unix * 4611686018427387904 > 0 };".into(),
        })
        .await
        .unwrap();
    let mut last = None;
    for _ in 0..100 {
        let d = test(&grid).await;
        if !d.errors.is_empty() {
            last = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = last.expect("the erroring policy reached node-2");
    assert!(!d.allowed, "an evaluation error must deny: {d:?}");
}

#[tokio::test]
async fn a_tampered_audit_log_is_found_and_named() {
    let grid = vo_site().await;
    let alice = login(&grid, "alice", "demo").await;
    join(&grid, "bob", &alice).await;
    let report = admin_client(&grid, 0)
        .audit_verify(pb::Empty {})
        .await
        .unwrap();
    assert!(report.intact && report.records >= 6, "{report:?}");
    // Turn a refused or granted decision into its opposite on line 3.
    let path = grid.node(0).data_dir().join("audit.log");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[2] = lines[2]
        .replace("\"decision\":\"allow\"", "\"decision\":\"deny\"")
        .replace("\"decision\":\"done\"", "\"decision\":\"allow\"");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let report = admin_client(&grid, 0)
        .audit_verify(pb::Empty {})
        .await
        .unwrap();
    assert!(!report.intact);
    assert!(
        report.first_broken.contains("line 3"),
        "{}",
        report.first_broken
    );
}

#[tokio::test]
async fn acknowledged_membership_changes_survive_kill_9_of_the_vo_node_mid_burst() {
    let mut grid = vo_site().await;
    let mut admin = admin_client(&grid, 0);
    let users: Vec<String> = (0..40).map(|k| format!("user{k}")).collect();
    for u in &users {
        admin
            .add_user(pb::AddUserRequest {
                name: u.clone(),
                password: PASSWORD.into(),
            })
            .await
            .unwrap();
    }
    let alice = login(&grid, "alice", "demo").await;
    // A burst of requests and approvals; each acknowledgement is recorded as
    // it arrives, and the node is killed while the burst is still going.
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<(String, &'static str)>();
    let profile = profile(&grid);
    let endpoint = grid.node(0).rpc.clone();
    let burst = {
        let users = users.clone();
        tokio::spawn(async move {
            for u in users {
                let mut anon = VoClient::connect(&profile, &endpoint, false, None).unwrap();
                if anon
                    .request_join(pb::RequestJoinRequest {
                        vo: "demo".into(),
                        user: u.clone(),
                        password: PASSWORD.into(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = acked_tx.send((u.clone(), "requested"));
                let mut admin =
                    VoClient::connect(&profile, &endpoint, false, Some(alice.clone())).unwrap();
                if admin
                    .decide(pb::DecideRequest {
                        vo: "demo".into(),
                        user: u.clone(),
                        approve: true,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = acked_tx.send((u, "active"));
            }
        })
    };
    let mut acked = Vec::new();
    while acked.len() < 12 {
        acked.push(acked_rx.recv().await.expect("burst ended early"));
    }
    grid.kill9(0).unwrap();
    let _ = burst.await;
    while let Ok(a) = acked_rx.try_recv() {
        acked.push(a);
    }
    grid.restart(0).await.unwrap();
    let detail = admin_client(&grid, 0)
        .show_vo(pb::VoName {
            name: "demo".into(),
        })
        .await
        .unwrap();
    for (user, state) in &acked {
        let m = detail
            .members
            .iter()
            .find(|m| &m.user == user)
            .unwrap_or_else(|| panic!("acknowledged {state} of {user} lost"));
        if *state == "active" {
            assert_eq!(m.state, "active", "{user}");
        }
    }
    assert!(
        acked.len() < users.len() * 2,
        "the kill came after the burst; the test proved nothing"
    );
    // The VO key survived too: a new login verifies on node-2.
    let approved = acked
        .iter()
        .find(|(_, s)| *s == "active")
        .map(|(u, _)| u.clone())
        .unwrap();
    let token = login(&grid, &approved, "demo").await;
    whoami_eventually(&grid, 1, &token, |r| r.is_ok())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_suspended_vo_refuses_logins_until_resumed() {
    let grid = vo_site().await;
    let alice = login(&grid, "alice", "demo").await;
    user_client(&grid, 0, Some(&alice))
        .set_vo_state(pb::SetVoStateRequest {
            name: "demo".into(),
            suspended: true,
        })
        .await
        .unwrap();
    let r = user_client(&grid, 0, None)
        .login(pb::LoginRequest {
            user: "alice".into(),
            password: PASSWORD.into(),
            vo: "demo".into(),
            ttl_seconds: 60,
        })
        .await;
    refused(r, Code::FailedPrecondition, "suspended");
    admin_client(&grid, 0)
        .set_vo_state(pb::SetVoStateRequest {
            name: "demo".into(),
            suspended: false,
        })
        .await
        .unwrap();
    login(&grid, "alice", "demo").await;
    let wrong = user_client(&grid, 0, None)
        .login(pb::LoginRequest {
            user: "alice".into(),
            password: "not the password".into(),
            vo: "demo".into(),
            ttl_seconds: 60,
        })
        .await;
    refused(wrong, Code::Unauthenticated, "wrong user name or password");
}

#[tokio::test]
async fn ldap_users_log_in_and_a_wrong_ldap_password_is_refused() {
    let slapd = xtreem_ldapauth::testing::Slapd::start(
        "dc=example,dc=org",
        &[("dave", "dave-ldap-secret")],
    )
    .await
    .unwrap();
    let mut grid = grid();
    let mut spec = NodeSpec::new("node-1", &["core", "resource"], grid.next_ip());
    spec.extra_config = format!(
        "[auth]\nldap_url = {:?}\nldap_user_dn_template = {:?}\n",
        slapd.url(),
        slapd.user_dn_template()
    );
    let core = grid.add_node(spec).unwrap();
    grid.start_core(core).await.unwrap();
    grid.init_site(core, "lab").await.unwrap();
    let mut admin = admin_client(&grid, 0);
    // dave is unknown until his first LDAP login registers him.
    let anon = |grid: &Grid| user_client(grid, 0, None);
    let r = anon(&grid)
        .request_join(pb::RequestJoinRequest {
            vo: "ldapvo".into(),
            user: "dave".into(),
            password: "wrong".into(),
        })
        .await;
    refused(r, Code::Unauthenticated, "wrong user name or password");
    admin
        .create_vo(pb::CreateVoRequest {
            name: "ldapvo".into(),
            first_admin: String::new(),
        })
        .await
        .unwrap();
    anon(&grid)
        .request_join(pb::RequestJoinRequest {
            vo: "ldapvo".into(),
            user: "dave".into(),
            password: "dave-ldap-secret".into(),
        })
        .await
        .unwrap();
    admin
        .decide(pb::DecideRequest {
            vo: "ldapvo".into(),
            user: "dave".into(),
            approve: true,
        })
        .await
        .unwrap();
    let ok = anon(&grid)
        .login(pb::LoginRequest {
            user: "dave".into(),
            password: "dave-ldap-secret".into(),
            vo: "ldapvo".into(),
            ttl_seconds: 60,
        })
        .await
        .unwrap();
    assert!(!ok.token.is_empty());
    let bad = anon(&grid)
        .login(pb::LoginRequest {
            user: "dave".into(),
            password: "nope-nope".into(),
            vo: "ldapvo".into(),
            ttl_seconds: 60,
        })
        .await;
    refused(bad, Code::Unauthenticated, "wrong user name or password");
}

#[tokio::test]
async fn a_trusted_site_serves_another_sites_vo() {
    let grid_a = vo_site().await;
    let alice = login(&grid_a, "alice", "demo").await;
    let mut grid_b = grid();
    grid_b.start_site("lab-b", 1).await.unwrap();
    // Before trust, site B cannot check the credential at all.
    refused(
        user_client(&grid_b, 0, Some(&alice))
            .whoami(pb::WhoamiRequest {})
            .await,
        Code::Unauthenticated,
        "not trusted",
    );
    let bundle = admin_client(&grid_a, 0)
        .site_bundle(pb::Empty {})
        .await
        .unwrap()
        .bundle;
    let mut admin_b = admin_client(&grid_b, 0);
    admin_b
        .trust_site(pb::TrustSiteRequest { bundle })
        .await
        .unwrap();
    // Trusted but not served: identity yes, account no.
    let w = user_client(&grid_b, 0, Some(&alice))
        .whoami(pb::WhoamiRequest {})
        .await
        .unwrap();
    assert!(
        w.uid < 0 && w.account_note.contains("does not serve VO demo"),
        "{w:?}"
    );
    admin_b
        .serve_vo(pb::ServeVoRequest {
            vo: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let w = user_client(&grid_b, 0, Some(&alice))
        .whoami(pb::WhoamiRequest {})
        .await
        .unwrap();
    assert!(w.uid >= 0 && w.node == "node-1", "{w:?}");
}
