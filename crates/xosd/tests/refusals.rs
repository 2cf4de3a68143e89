//! What a node refuses at its RPC port, and that it keeps serving after.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use rand::RngCore;
use tonic::Code;
use xtreem_net::tls::TlsMaterial;
use xtreem_net::{PrincipalKind, RevocationSet};
use xtreem_proto::fabric as pb;
use xtreem_proto::fabric::enrollment_client::EnrollmentClient;
use xtreem_proto::fabric::node_admin_client::NodeAdminClient;
use xtreem_security::ca::{CertRequest, SiteCa};
use xtreem_security::keys::new_key_and_csr;
use xtreem_util::time::unix_now;

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_at_node_only_endpoints() {
    let grid = site(2).await;
    let endpoint = grid.node(1).rpc.clone();
    let status = ping(anonymous(&grid, &endpoint)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("requires a node certificate"),
        "{}",
        status.message()
    );
    let status = NodeAdminClient::new(anonymous(&grid, &endpoint))
        .list_nodes(pb::ListNodesRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("administrator certificate"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn an_administrator_certificate_cannot_act_as_a_node() {
    let grid = site(2).await;
    let creds = grid.credentials().unwrap();
    let material = TlsMaterial::from_pem(&creds.ca_pem, &creds.cert_pem, &creds.key_pem).unwrap();
    let channel = xtreem_net::client::connect(
        &grid.node(1).rpc,
        material.client_config(&RevocationSet::new()).unwrap(),
    )
    .unwrap();
    let status = ping(channel).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("requires a node certificate"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_in_the_handshake() {
    let grid = site(1).await;
    // A look-alike site "lab" with its own CA and an admin certificate from it.
    let site: xtreem_util::names::SiteName = "lab".parse().unwrap();
    let (foreign_ca, _) = SiteCa::create(&site, unix_now()).unwrap();
    let request = new_key_and_csr("admin").unwrap();
    let issued = foreign_ca
        .sign(
            &site,
            &CertRequest {
                csr_der: &request.csr_der,
                kind: PrincipalKind::Admin,
                name: "admin",
                hosts: &[],
                lifetime: Duration::from_secs(3600),
                now_unix: unix_now(),
            },
        )
        .unwrap();
    // It trusts the real CA (so the server is accepted) but presents a
    // certificate the real CA never signed.
    let real_ca = grid.credentials().unwrap().ca_pem.clone();
    let material = TlsMaterial::from_pem(&real_ca, &issued.pem, &request.key_pem).unwrap();
    let channel = xtreem_net::client::connect(
        &grid.node(0).rpc,
        material.client_config(&RevocationSet::new()).unwrap(),
    )
    .unwrap();
    let status = NodeAdminClient::new(channel)
        .list_nodes(pb::ListNodesRequest {})
        .await
        .unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    let text = format!("{status:?}");
    assert!(
        !text.contains("node-1"),
        "a foreign certificate got an answer: {text}"
    );
    // Through the client library the user is told what went wrong.
    let foreign = xtreem_client::Credentials {
        site: "lab".into(),
        endpoint: grid.node(0).rpc.clone(),
        ca_pem: real_ca,
        cert_pem: issued.pem.clone(),
        key_pem: request.key_pem.clone(),
    };
    let err = xtreem_client::Client::connect(&foreign.endpoint, &foreign)
        .unwrap()
        .list_nodes()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("the node refused your certificate"), "{err}");
    // The node still serves its own site.
    assert_eq!(names(&listing(&grid, 0).await), ["node-1"]);
}

#[tokio::test]
async fn garbage_on_the_rpc_port_closes_only_that_connection() {
    let grid = site(2).await;
    let endpoint = grid.node(0).rpc.clone();
    // One peer that connects and says nothing, holding its slot.
    let _silent = TcpStream::connect(&endpoint).unwrap();
    for _ in 0..50 {
        let mut garbage = vec![0u8; 4096];
        rand::rng().fill_bytes(&mut garbage);
        let mut s = TcpStream::connect(&endpoint).unwrap();
        let _ = s.write_all(&garbage);
    }
    // A TLS ClientHello-shaped header followed by nonsense.
    let mut s = TcpStream::connect(&endpoint).unwrap();
    let _ = s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3]);
    drop(s);
    assert_eq!(names(&listing(&grid, 0).await), ["node-1", "node-2"]);
    assert_eq!(names(&listing(&grid, 1).await), ["node-1", "node-2"]);
    let (code, metrics) = xtreem_testkit::http_get(&grid.node(0).http, "/metrics").unwrap();
    assert_eq!(code, 200);
    let failed: u64 = metrics
        .lines()
        .find(|l| l.starts_with("xtreem_tls_handshakes_total{result=\"failed\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no failed-handshake counter in:\n{metrics}"));
    assert!(failed >= 50, "only {failed} failed handshakes counted");
}

#[tokio::test]
async fn an_oversized_request_is_refused_and_the_node_keeps_serving() {
    let grid = site(1).await;
    let endpoint = grid.node(0).rpc.clone();
    let status = EnrollmentClient::new(anonymous(&grid, &endpoint))
        .enroll(pb::EnrollRequest {
            token_id: "x".into(),
            csr_der: vec![0u8; 2 * 1024 * 1024],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert_eq!(names(&listing(&grid, 0).await), ["node-1"]);
}

#[tokio::test]
async fn malformed_enrollment_requests_are_refused_with_the_field_named() {
    let grid = site(1).await;
    let endpoint = grid.node(0).rpc.clone();
    let mut client = EnrollmentClient::new(anonymous(&grid, &endpoint));
    let cases = [
        (
            pb::EnrollRequest {
                node: "Bad_Name".into(),
                roles: vec![2],
                rpc_endpoint: "127.0.0.1:1".into(),
                ..Default::default()
            },
            "invalid node name",
        ),
        (
            pb::EnrollRequest {
                node: "ok".into(),
                roles: vec![],
                rpc_endpoint: "127.0.0.1:1".into(),
                ..Default::default()
            },
            "at least one role",
        ),
        (
            pb::EnrollRequest {
                node: "ok".into(),
                roles: vec![99],
                rpc_endpoint: "127.0.0.1:1".into(),
                ..Default::default()
            },
            "unknown role",
        ),
        (
            pb::EnrollRequest {
                node: "ok".into(),
                roles: vec![2],
                rpc_endpoint: "nowhere".into(),
                ..Default::default()
            },
            "rpc_endpoint",
        ),
        (
            pb::EnrollRequest {
                node: "ok".into(),
                roles: vec![2],
                rpc_endpoint: "127.0.0.1:1".into(),
                token_id: "nope".into(),
                ..Default::default()
            },
            "unknown to this site",
        ),
    ];
    for (request, expected) in cases {
        let status = client.enroll(request).await.unwrap_err();
        assert!(
            status.message().contains(expected),
            "expected {expected:?}, got {status:?}"
        );
    }
    assert_eq!(names(&listing(&grid, 0).await), ["node-1"]);
}
