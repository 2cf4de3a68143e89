//! Crashes, restarts, pauses and configs: the daemon's life as an operator sees it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use xtreem_net::tls::{anonymous_client_config, cert_from_pem};
use xtreem_proto::fabric as pb;
use xtreem_proto::fabric::enrollment_client::EnrollmentClient;
use xtreem_security::keys::new_key_and_csr;
use xtreem_security::token::JoinToken;

#[tokio::test]
async fn acknowledged_enrollments_survive_kill_9_of_the_core() {
    let mut grid = site(1).await;
    let core = grid.node(0).rpc.clone();
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(grid.join_token(Duration::from_secs(600)).await.unwrap());
    }
    let ca = cert_from_pem(&ca_pem(&grid, 0)).unwrap();
    let channel =
        xtreem_net::client::connect(&core, anonymous_client_config(&ca).unwrap()).unwrap();
    let mut client = EnrollmentClient::new(channel);
    let mut acknowledged = Vec::new();
    for (k, token) in tokens.iter().enumerate() {
        let token: JoinToken = token.parse().unwrap();
        let name = format!("burst-{k}");
        let csr = new_key_and_csr(&name).unwrap();
        client
            .enroll(pb::EnrollRequest {
                token_id: token.id,
                token_secret: token.secret,
                node: name.clone(),
                roles: vec![2],
                csr_der: csr.csr_der,
                rpc_endpoint: format!("127.0.0.1:{}", 20000 + k),
            })
            .await
            .expect("enrollment acknowledged");
        acknowledged.push(name);
    }
    // No grace: the process dies the instant the last answer arrived.
    grid.kill9(0).unwrap();
    grid.restart(0).await.unwrap();
    let listed = listing(&grid, 0).await;
    for name in &acknowledged {
        assert!(
            listed.iter().any(|(n, _)| n == name),
            "{name} lost after kill -9: {listed:?}"
        );
    }
    // And every used token stays used.
    let reuse = EnrollmentClient::new(
        xtreem_net::client::connect(&core, anonymous_client_config(&ca).unwrap()).unwrap(),
    )
    .enroll({
        let token: JoinToken = tokens[0].parse().unwrap();
        pb::EnrollRequest {
            token_id: token.id,
            token_secret: token.secret,
            node: "again".into(),
            roles: vec![2],
            csr_der: new_key_and_csr("again").unwrap().csr_der,
            rpc_endpoint: "127.0.0.1:1".into(),
        }
    })
    .await
    .unwrap_err();
    assert!(
        reuse.message().contains("already used by node burst-0"),
        "{reuse:?}"
    );
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_a_restart_resumes_from_the_data_dir() {
    let mut grid = site(3).await;
    assert_eq!(
        grid.stop(0).await.unwrap(),
        0,
        "core exit code; log:\n{}",
        grid.node(0).log()
    );
    assert_eq!(grid.stop(2).await.unwrap(), 0, "member exit code");
    assert!(grid.node(0).log().contains("stopped"));
    grid.restart(0).await.unwrap();
    grid.restart(2).await.unwrap();
    // Same site, same nodes, no new enrollment, and the member is back.
    grid.wait_for(SHORT, "node-3 ready again", |_| Some(()))
        .await
        .unwrap();
    let mut ready = false;
    for _ in 0..60 {
        let list = listing(&grid, 2).await;
        if list.iter().all(|(_, s)| s == "ready") && list.len() == 3 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ready, "{:?}", listing(&grid, 0).await);
}

#[tokio::test]
async fn a_paused_node_turns_unreachable_and_comes_back_when_resumed() {
    let mut grid = site(2).await;
    grid.pause(1).unwrap();
    let mut seen = Vec::new();
    for _ in 0..80 {
        let list = listing(&grid, 0).await;
        if list.contains(&("node-2".into(), "unreachable".into())) {
            seen.push("unreachable");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    grid.resume(1).unwrap();
    for _ in 0..80 {
        let list = listing(&grid, 0).await;
        if list.contains(&("node-2".into(), "ready".into())) {
            seen.push("ready");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(seen, ["unreachable", "ready"]);
}

#[test]
fn a_bad_config_names_file_line_and_key() {
    let dir = tempfile_dir();
    let path = dir.join("xosd.toml");
    std::fs::write(
        &path,
        "name = \"n1\"\ndata_dir = \"/tmp/x\"\nroles = [\"core\"]\n\n[listen]\nrpc = \"127.0.0.1:99999\"\nhttp = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xosd"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:6:", path.display());
    assert!(
        stderr.contains(&expected) && stderr.contains("key `listen.rpc`"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_xosd"))
        .arg("--config")
        .arg(dir.join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn health_and_metrics_endpoints_answer() {
    let grid = site(2).await;
    let (code, body) = xtreem_testkit::http_get(&grid.node(1).http, "/healthz").unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("\"state\":\"ready\"") && body.contains("\"site\":\"lab\""),
        "{body}"
    );
    let (code, metrics) = xtreem_testkit::http_get(&grid.node(0).http, "/metrics").unwrap();
    assert_eq!(code, 200);
    for name in [
        "xtreem_rpc_requests_total{method=\"Enrollment/Enroll\",code=\"ok\"} 1",
        "xtreem_node_certificate_expiry_timestamp_seconds",
        "xtreem_tls_handshakes_total{result=\"ok\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xosd-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
