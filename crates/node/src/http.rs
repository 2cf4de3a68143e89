//! Plain HTTP for probes and scrapers: `/healthz` (the process serves),
//! `/readyz` (the node has its certificate and serves RPC), `/metrics`.
//! It carries no credentials and changes nothing, so it binds to loopback by
//! default; the RPC port is where authenticated traffic goes.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::daemon::NodeShared;

struct HttpState {
    node: Arc<NodeShared>,
    registry: Registry,
}

pub async fn serve(
    listener: TcpListener,
    node: Arc<NodeShared>,
    registry: Registry,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let state = Arc::new(HttpState { node, registry });
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

async fn healthz(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    let body = serde_json::json!({
        "node": s.node.config.name.as_str(),
        "state": s.node.phase().as_str(),
        "site": s.node.site_name(),
        "rpc": s.node.rpc_endpoint,
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn readyz(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    let phase = s.node.phase();
    let code = if phase.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, phase.as_str())
}

async fn metrics(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            "cannot encode metrics".to_owned(),
        ),
    }
}
