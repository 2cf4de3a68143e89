//! Work only the site authority does for the directory: keep the site's
//! gossip key and roster, and exchange summaries with trusted sites.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::transport::Channel;
use xtreem_directory::SiteSummary;
use xtreem_net::tls::ForeignCa;
use xtreem_proto::directory as pb;
use xtreem_proto::directory::directory_client::DirectoryClient;
use xtreem_security::site::query as site_query;

use super::{GossipMaterial, RemoteSite};
use crate::daemon::NodeShared;

/// How often summaries of trusted sites are refreshed.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(2);

/// A channel to a trusted site's core node over site-to-site mTLS.
pub fn site_channel(shared: &NodeShared, site: &str, endpoint: &str) -> Result<Channel, Status> {
    let config = shared.tls.foreign_client_config(site).ok_or_else(|| {
        Status::unavailable(format!(
            "site {site} is not trusted here (see `xos site trust`)"
        ))
    })?;
    xtreem_net::client::connect_from(endpoint, config, shared.source_ip())
        .map_err(|e| Status::unavailable(e.to_string()))
}

/// Asks another site's core node for the nodes matching `request`.
pub async fn query_site(
    shared: &NodeShared,
    site: &str,
    endpoint: &str,
    request: pb::QueryRequest,
) -> Result<pb::QueryResponse, Status> {
    let channel = site_channel(shared, site, endpoint)?;
    let response = tokio::time::timeout(
        Duration::from_secs(3),
        DirectoryClient::new(channel).query(request),
    )
    .await
    .map_err(|_| Status::deadline_exceeded(format!("site {site} did not answer within 3 s")))??;
    Ok(response.into_inner())
}

async fn refresh_material(shared: &NodeShared) {
    let Some(authority) = shared.authority() else {
        return;
    };
    if let Err(e) = authority
        .record_gossip_member(shared.directory.own_record())
        .await
    {
        tracing::warn!(error = %e, "cannot register this node's gossip identity");
    }
    match authority.gossip_state().await {
        Ok(state) if state.version != shared.directory.material_version() => {
            shared
                .directory
                .install_material(GossipMaterial::from_state(&state));
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the site's gossip state"),
    }
}

/// Trusted sites with the endpoint their bundle names.
fn trusted_sites(shared: &NodeShared) -> Vec<(String, String, ForeignCa)> {
    let Ok(sites) = shared.store.read(site_query::trusted_sites) else {
        return Vec::new();
    };
    sites
        .into_iter()
        .filter_map(|t| {
            let ca = xtreem_net::tls::cert_from_pem(&t.ca_cert_pem).ok()?;
            Some((
                t.site.clone(),
                t.endpoint.clone(),
                ForeignCa { site: t.site, ca },
            ))
        })
        .collect()
}

async fn fetch_summary(
    shared: &NodeShared,
    site: &str,
    endpoint: &str,
    channels: &mut HashMap<String, DirectoryClient<Channel>>,
) -> Result<RemoteSite, Status> {
    if !channels.contains_key(site) {
        let channel = site_channel(shared, site, endpoint)?;
        channels.insert(site.to_owned(), DirectoryClient::new(channel));
    }
    let Some(client) = channels.get_mut(site) else {
        return Err(Status::internal("channel vanished"));
    };
    let response = tokio::time::timeout(
        Duration::from_secs(3),
        client.summary(pb::SummaryRequest {}),
    )
    .await
    .map_err(|_| Status::deadline_exceeded("no answer within 3 s"))??
    .into_inner();
    let summary = SiteSummary::decode(&response.summary)
        .map_err(|e| Status::invalid_argument(format!("summary of site {site}: {e}")))?;
    if summary.site != site {
        return Err(Status::permission_denied(format!(
            "site {site} sent a summary of site {}",
            summary.site
        )));
    }
    Ok(RemoteSite {
        summary,
        endpoint: if response.endpoint.is_empty() {
            endpoint.to_owned()
        } else {
            response.endpoint
        },
        fetched_unix: xtreem_util::time::unix_now(),
    })
}

/// Runs on the site authority until `stop`.
pub async fn authority_loop(
    shared: Arc<NodeShared>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut channels: HashMap<String, DirectoryClient<Channel>> = HashMap::new();
    let mut foreign_cas: Vec<ForeignCa> = Vec::new();
    let mut installed = false;
    let mut failing: HashMap<String, String> = HashMap::new();
    loop {
        refresh_material(&shared).await;
        let trusted = trusted_sites(&shared);
        let names: Vec<String> = trusted.iter().map(|(s, _, _)| s.clone()).collect();
        let cas: Vec<ForeignCa> = trusted.iter().map(|(_, _, ca)| ca.clone()).collect();
        // Compared by CA, not by name, so a site that re-issues its bundle
        // with a new CA is picked up; a failed install is retried next round.
        if cas != foreign_cas || !installed {
            match shared.tls.set_foreign(cas.clone()) {
                Ok(()) => installed = true,
                Err(e) => {
                    installed = false;
                    tracing::error!(error = %e, "cannot accept the trusted sites' certificates");
                }
            }
            channels.clear();
            foreign_cas = cas;
            shared.directory.forget_summaries_except(&names);
        }
        for (site, endpoint, _) in &trusted {
            if endpoint.is_empty() {
                continue;
            }
            match fetch_summary(&shared, site, endpoint, &mut channels).await {
                Ok(remote) => {
                    if failing.remove(site).is_some() {
                        tracing::info!(%site, "trusted site reachable again");
                    }
                    shared.directory.set_summary(site.clone(), remote);
                }
                Err(e) => {
                    channels.remove(site);
                    if failing
                        .insert(site.clone(), e.message().to_owned())
                        .is_none()
                    {
                        tracing::warn!(%site, error = %e.message(), "cannot fetch the summary of a trusted site");
                    }
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(SUMMARY_INTERVAL.min(shared.config.heartbeat_interval)) => {}
        }
    }
}
