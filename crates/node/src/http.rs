//! Plain HTTP for probes and scrapers: `/healthz` (the process serves),
//! `/readyz` (the node has its certificate and serves RPC), `/metrics`, and
//! `/vo/NAME/jwks.json` (the VO keys this node accepts).
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
        .route("/vo/{vo}/jwks.json", get(jwks))
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

/// A VO's published keys as a JWKS document (RFC 7517), from the trust
/// document this node verifies with: the keys it accepts right now.
async fn jwks(
    State(s): State<Arc<HttpState>>,
    axum::extract::Path(vo): axum::extract::Path<String>,
) -> impl IntoResponse {
    let trusted = s.node.trust.current();
    match trusted.doc.issuers.iter().find(|i| i.vo == vo) {
        Some(issuer) => {
            let set = xtreem_token::Jwks {
                keys: issuer.keys.iter().map(|k| k.to_jwk()).collect(),
            };
            let body = serde_json::to_string_pretty(&set).unwrap_or_default();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/jwk-set+json")],
                body,
            )
        }
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("this node trusts no VO named {vo}\n"),
        ),
    }
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
