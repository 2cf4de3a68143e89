//! Sites and node enrollment, as an administrator meets them.

mod common;

use std::time::Duration;

use common::*;
use xtreem_testkit::NodeSpec;

#[tokio::test]
async fn three_nodes_enroll_and_every_node_lists_all_of_them() {
    let grid = site(3).await;
    for i in 0..3 {
        let list = grid.admin_client(i).unwrap().list_nodes().await.unwrap();
        assert_eq!(list.site, "lab");
        let mut rows: Vec<(String, Vec<&str>, String)> = list
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    n.roles
                        .iter()
                        .map(|r| xtreem_client::role_name(*r))
                        .collect(),
                    n.state.clone(),
                )
            })
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                (
                    "node-1".into(),
                    vec!["core", "resource", "client"],
                    "ready".into()
                ),
                ("node-2".into(), vec!["resource", "client"], "ready".into()),
                ("node-3".into(), vec!["resource", "client"], "ready".into()),
            ],
            "as listed by node {i}"
        );
    }
}

#[tokio::test]
async fn a_reused_join_token_is_refused_and_changes_nothing() {
    let mut grid = site(2).await;
    let token = grid.join_token(Duration::from_secs(600)).await.unwrap();
    let n3 = grid
        .add_node(NodeSpec::new("node-3", &["resource"], grid.next_ip()))
        .unwrap();
    grid.start_member(n3, &token).await.unwrap();
    let n4 = grid
        .add_node(NodeSpec::new("node-4", &["resource"], grid.next_ip()))
        .unwrap();
    let core = grid.node(0).rpc.clone();
    grid.spawn_member(n4, &core, &token).unwrap();
    let code = grid.wait_exit(n4, SHORT).await.unwrap();
    assert_ne!(code, 0);
    let log = grid.node(n4).log();
    assert!(log.contains("was already used by node node-3"), "{log}");
    assert_eq!(
        names(&listing(&grid, 0).await),
        ["node-1", "node-2", "node-3"]
    );
}

#[tokio::test]
async fn an_expired_join_token_is_refused_and_changes_nothing() {
    let mut grid = site(1).await;
    let token = grid.join_token(Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let n = grid
        .add_node(NodeSpec::new("late", &["resource"], grid.next_ip()))
        .unwrap();
    let core = grid.node(0).rpc.clone();
    grid.spawn_member(n, &core, &token).unwrap();
    assert_ne!(grid.wait_exit(n, SHORT).await.unwrap(), 0);
    let log = grid.node(n).log();
    assert!(
        log.contains("expired") && log.contains("xos node join-token"),
        "{log}"
    );
    assert_eq!(names(&listing(&grid, 0).await), ["node-1"]);
    // The token is still unused: the refusal wrote nothing.
    assert!(!grid.node(n).data_dir().join("tls/node.pem").exists());
}

#[tokio::test]
async fn a_token_pinned_to_another_ca_is_refused_before_the_secret_is_sent() {
    let mut grid = site(1).await;
    let token = grid.join_token(Duration::from_secs(600)).await.unwrap();
    // Same id and secret, but the CA hash of some other site.
    let mut parts: Vec<&str> = token.split('.').collect();
    let other = "0".repeat(64);
    parts[3] = &other;
    let forged = parts.join(".");
    let n = grid
        .add_node(NodeSpec::new("node-2", &["resource"], grid.next_ip()))
        .unwrap();
    let core = grid.node(0).rpc.clone();
    grid.spawn_member(n, &core, &forged).unwrap();
    assert_ne!(grid.wait_exit(n, SHORT).await.unwrap(), 0);
    let log = grid.node(n).log();
    assert!(
        log.contains("does not match the hash pinned in the join token"),
        "{log}"
    );
    // The genuine token still works: it was never presented.
    grid.start_member(n, &token).await.unwrap();
    assert_eq!(names(&listing(&grid, 0).await), ["node-1", "node-2"]);
}

#[tokio::test]
async fn a_removed_node_is_refused_by_every_node() {
    let mut grid = site(3).await;
    let node2 = grid.node(1).rpc.clone();
    // Before removal node-3 may talk to node-2.
    assert_eq!(
        ping(as_node(&grid, 2, &node2)).await.unwrap().node,
        "node-2"
    );

    let removed = grid
        .admin_client(0)
        .unwrap()
        .remove_node("node-3")
        .await
        .unwrap();
    assert_eq!(removed.revoked_certificates, 1);

    // Within a few heartbeats every node refuses node-3's certificate. In
    // TLS 1.3 the client may see the certificate_revoked alert or only a
    // closed connection, so the refusal is confirmed on the server side: its
    // count of failed handshakes goes up.
    for i in [0, 1] {
        let endpoint = grid.node(i).rpc.clone();
        let mut refused = None;
        for _ in 0..100 {
            let failed_before = failed_handshakes(&grid, i);
            match ping(as_node(&grid, 2, &endpoint)).await {
                Err(status) => {
                    refused = Some((status, failed_before));
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let (status, failed_before) =
            refused.unwrap_or_else(|| panic!("node {i} still accepts node-3 after its removal"));
        assert!(
            failed_handshakes(&grid, i) > failed_before,
            "node {i} refused node-3 but not in the TLS handshake: {status:?}"
        );
        // And node-3 is still refused on the next attempt.
        assert!(ping(as_node(&grid, 2, &endpoint)).await.is_err());
    }
    let state = listing(&grid, 1).await;
    assert!(
        state.contains(&("node-3".into(), "removed".into())),
        "{state:?}"
    );
    // node-3 learns it was removed and stops claiming readiness.
    grid.wait_for(SHORT, "node-3 to report removal", |g| {
        let (code, body) = xtreem_testkit::http_get(&g.node(2).http, "/readyz").ok()?;
        (code == 503 && body.contains("removed")).then_some(())
    })
    .await
    .unwrap();
}

fn failed_handshakes(grid: &xtreem_testkit::Grid, i: usize) -> u64 {
    let (_, metrics) = xtreem_testkit::http_get(&grid.node(i).http, "/metrics").unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with("xtreem_tls_handshakes_total{result=\"failed\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn removing_an_unknown_node_names_it() {
    let grid = site(1).await;
    let err = grid
        .admin_client(0)
        .unwrap()
        .remove_node("ghost")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no node named ghost"), "{err}");
}

#[tokio::test]
async fn certificates_renew_well_before_expiry() {
    let mut grid = grid();
    let core = grid
        .add_node({
            let mut s = NodeSpec::new("node-1", &["core"], grid.next_ip());
            s.node_cert_lifetime = "12s".into();
            s
        })
        .unwrap();
    grid.start_core(core).await.unwrap();
    grid.init_site(core, "lab").await.unwrap();
    let token = grid.join_token(Duration::from_secs(600)).await.unwrap();
    let member = grid
        .add_node(NodeSpec::new("node-2", &["resource"], grid.next_ip()))
        .unwrap();
    grid.start_member(member, &token).await.unwrap();

    let expiry = |list: &xtreem_proto::fabric::ListNodesResponse, name: &str| {
        list.nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.certificate_expires_unix)
            .unwrap_or(0)
    };
    let first = grid.admin_client(0).unwrap().list_nodes().await.unwrap();
    let (first_core, first_member) = (expiry(&first, "node-1"), expiry(&first, "node-2"));
    // Renewal happens at half the lifetime, about 6 s in; wait up to 20 s.
    let mut renewed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = grid.admin_client(0).unwrap().list_nodes().await.unwrap();
        if expiry(&now, "node-1") > first_core && expiry(&now, "node-2") > first_member {
            renewed = true;
            break;
        }
    }
    assert!(
        renewed,
        "certificates were not renewed; member log:\n{}",
        grid.node(member).log()
    );
    // Past the first certificates' expiry the nodes still talk to each other.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let list = listing(&grid, 1).await;
    assert_eq!(
        list,
        [
            ("node-1".into(), "ready".into()),
            ("node-2".into(), "ready".into())
        ]
    );
    // Renewal happens once per half lifetime, not in a loop: about 15 s of
    // 12 s certificates is two or three renewals.
    let renewals = grid
        .node(member)
        .log()
        .matches("node certificate renewed")
        .count();
    assert!((1..=4).contains(&renewals), "{renewals} renewals in ~15 s");
}

#[tokio::test]
async fn a_site_is_created_once_and_only_on_a_core_node() {
    let mut grid = site(2).await;
    let again =
        xtreem_client::local::init_site(&grid.node(0).admin_socket(), "other", "admin").await;
    let err = again.unwrap_err().to_string();
    assert!(err.contains("already belongs to site lab"), "{err}");
    let on_member =
        xtreem_client::local::init_site(&grid.node(1).admin_socket(), "other", "admin").await;
    let err = on_member.unwrap_err().to_string();
    assert!(err.contains("core role"), "{err}");
    assert_eq!(names(&listing(&grid, 0).await), ["node-1", "node-2"]);
    // And the failed attempts left the grid serving.
    grid.wait_ready(0).await.unwrap();
}
