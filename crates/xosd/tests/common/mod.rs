//! Shared helpers of the fabric tests: a grid on the xosd built with them,
//! and channels that present a chosen identity (or none).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;
use xtreem_net::RevocationSet;
use xtreem_net::tls::{TlsMaterial, anonymous_client_config, cert_from_pem};
use xtreem_proto::fabric as pb;
use xtreem_proto::fabric::fabric_client::FabricClient;
use xtreem_testkit::Grid;

pub fn grid() -> Grid {
    Grid::new(env!("CARGO_BIN_EXE_xosd")).expect("grid")
}

/// A grid of `n` nodes in site `lab`, all ready.
pub async fn site(n: usize) -> Grid {
    let mut g = grid();
    g.start_site("lab", n).await.expect("site starts");
    g
}

/// The site CA certificate as node `i` stores it.
pub fn ca_pem(grid: &Grid, i: usize) -> String {
    std::fs::read_to_string(grid.node(i).data_dir().join("tls/ca.crt")).expect("ca.crt")
}

/// A channel to `endpoint` that presents node `i`'s own certificate.
pub fn as_node(grid: &Grid, i: usize, endpoint: &str) -> Channel {
    let bundle =
        std::fs::read_to_string(grid.node(i).data_dir().join("tls/node.pem")).expect("node.pem");
    let material = TlsMaterial::from_pem(&ca_pem(grid, i), &bundle, &bundle).expect("material");
    let config = material
        .client_config(&RevocationSet::new())
        .expect("config");
    xtreem_net::client::connect(endpoint, config).expect("channel")
}

/// A channel that trusts the site CA but presents no certificate.
pub fn anonymous(grid: &Grid, endpoint: &str) -> Channel {
    let ca = cert_from_pem(&ca_pem(grid, 0)).expect("ca");
    let config: Arc<_> = anonymous_client_config(&ca).expect("config");
    xtreem_net::client::connect(endpoint, config).expect("channel")
}

pub async fn ping(channel: Channel) -> Result<pb::PingResponse, tonic::Status> {
    FabricClient::new(channel)
        .ping(pb::PingRequest {
            payload: b"hi".to_vec(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Node names and states as node `i` lists them.
pub async fn listing(grid: &Grid, i: usize) -> Vec<(String, String)> {
    let list = grid
        .admin_client(i)
        .expect("client")
        .list_nodes()
        .await
        .expect("list");
    list.nodes.into_iter().map(|n| (n.name, n.state)).collect()
}

pub fn names(listing: &[(String, String)]) -> Vec<&str> {
    listing.iter().map(|(n, _)| n.as_str()).collect()
}

pub const SHORT: Duration = Duration::from_secs(15);
