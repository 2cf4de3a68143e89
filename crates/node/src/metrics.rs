//! Prometheus metrics of a node, served at `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use xtreem_net::server::TransportStats;

use crate::tls_state::TlsState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: String,
    pub code: String,
}

/// Counters updated on the request path.
#[derive(Default)]
pub struct Metrics {
    pub rpc_requests: Family<RpcLabels, Counter>,
}

impl Metrics {
    /// Counts one finished RPC.
    pub fn rpc(&self, method: &str, result: &Result<impl Sized, tonic::Status>) {
        let code = match result {
            Ok(_) => "ok".to_owned(),
            Err(status) => format!("{:?}", status.code()),
        };
        self.rpc_requests
            .get_or_create(&RpcLabels {
                method: method.to_owned(),
                code,
            })
            .inc();
    }
}

/// Values read at scrape time from the transport and the TLS identity.
#[derive(Debug)]
struct ScrapeCollector {
    transport: Arc<TransportStats>,
    tls: Arc<TlsState>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsState")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut family = encoder.encode_descriptor(
                "xtreem_tls_handshakes",
                "TLS handshakes on the RPC port by result",
                None,
                MetricType::Counter,
            )?;
            for (result, value) in [
                ("ok", &self.transport.handshakes_ok),
                ("failed", &self.transport.handshakes_failed),
                ("timeout", &self.transport.handshakes_timed_out),
            ] {
                let label = ResultLabel { result };
                ConstCounter::new(value.load(Ordering::Relaxed))
                    .encode(family.encode_family(&label)?)?;
            }
        }
        if let Some(identity) = self.tls.identity() {
            let gauge = encoder.encode_descriptor(
                "xtreem_node_certificate_expiry_timestamp_seconds",
                "Unix time at which the node certificate expires",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(identity.not_after_unix).unwrap_or(i64::MAX))
                .encode(gauge)?;
        }
        let revoked = encoder.encode_descriptor(
            "xtreem_revoked_certificates",
            "Revoked certificate serials this node refuses",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(self.tls.revoked.len()).unwrap_or(i64::MAX))
            .encode(revoked)?;
        Ok(())
    }
}

/// The registry a node serves.
pub fn registry(metrics: &Metrics, transport: Arc<TransportStats>, tls: Arc<TlsState>) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "xtreem_rpc_requests",
        "RPCs served by method and result",
        metrics.rpc_requests.clone(),
    );
    registry.register_collector(Box::new(ScrapeCollector { transport, tls }));
    registry
}
