//! What a node does to belong to its site: enroll with a join token, send
//! heartbeats that bring back the revocation list, renew its certificate
//! well before it expires.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use xtreem_net::tls::{anonymous_client_config, cert_from_pem, unverified_client_config};
use xtreem_proto::fabric as pb;
use xtreem_proto::fabric::enrollment_client::EnrollmentClient;
use xtreem_proto::fabric::fabric_client::FabricClient;
use xtreem_security::ca::fingerprint;
use xtreem_security::keys;
use xtreem_security::token::JoinToken;
use xtreem_util::limits::CERT_CLOCK_SKEW_ALLOWANCE;
use xtreem_util::time::unix_now;

use crate::daemon::{NodeShared, Phase};
use crate::membership::Membership;
use crate::rpc::role_to_pb;

/// Environment variable that may carry the join token instead of the config.
pub const JOIN_TOKEN_ENV: &str = "XOSD_JOIN_TOKEN";

/// Refusals that retrying cannot fix.
fn is_final(code: Code) -> bool {
    matches!(
        code,
        Code::PermissionDenied
            | Code::InvalidArgument
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::Unauthenticated
    )
}

/// Refuses to start on an expired certificate: nobody would talk to us.
pub fn check_not_expired(shared: &NodeShared) -> anyhow::Result<()> {
    let identity = shared.tls.identity().context("no certificate loaded")?;
    if identity.not_after_unix <= unix_now() {
        bail!(
            "this node's certificate expired at Unix time {} while the node was down; to rejoin, delete {} and start xosd with a new join token",
            identity.not_after_unix,
            shared.data.node_identity().display()
        );
    }
    Ok(())
}

/// Exchanges the join token for a certificate. Retries while the authority
/// cannot be reached; gives up at once on a refusal.
pub async fn enroll(shared: &Arc<NodeShared>) -> anyhow::Result<()> {
    let join = shared
        .config
        .join
        .clone()
        .context("no [join] table in the config")?;
    let token_text = match (join.token, std::env::var(JOIN_TOKEN_ENV).ok()) {
        (_, Some(env)) if !env.trim().is_empty() => env,
        (Some(t), _) => t,
        _ => bail!(
            "this node is not enrolled and has no join token: set `token` in [join], or {JOIN_TOKEN_ENV}; an administrator prints one with `xos node join-token`"
        ),
    };
    let token: JoinToken = token_text.parse()?;
    let mut delay = Duration::from_millis(200);
    loop {
        match try_enroll(shared, &join.core, &token).await {
            Ok(()) => return Ok(()),
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Retry(e)) => {
                tracing::warn!(core = %join.core, error = %e, "cannot enroll yet; retrying in {:?}", delay);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

enum Attempt {
    Final(anyhow::Error),
    Retry(anyhow::Error),
}

fn from_status(core: &str, s: tonic::Status) -> Attempt {
    let e = anyhow::anyhow!("enrollment at {core} refused: {}", s.message());
    if is_final(s.code()) {
        Attempt::Final(e)
    } else {
        Attempt::Retry(e)
    }
}

async fn try_enroll(
    shared: &Arc<NodeShared>,
    core: &str,
    token: &JoinToken,
) -> Result<(), Attempt> {
    let config = unverified_client_config().map_err(|e| Attempt::Final(e.into()))?;
    let channel =
        xtreem_net::client::connect(core, config).map_err(|e| Attempt::Final(e.into()))?;
    let info = EnrollmentClient::new(channel)
        .get_site_info(pb::GetSiteInfoRequest {})
        .await
        .map_err(|s| from_status(core, s))?
        .into_inner();
    let ca = cert_from_pem(&info.ca_certificate_pem).map_err(|e| Attempt::Final(e.into()))?;
    let actual = fingerprint(&ca);
    if actual != token.ca_hash {
        return Err(Attempt::Final(
            xtreem_security::SecurityError::CaMismatch {
                expected: token.ca_hash.clone(),
                actual,
            }
            .into(),
        ));
    }
    // From here on the server must prove it holds a certificate of that CA.
    let config = anonymous_client_config(&ca).map_err(|e| Attempt::Final(e.into()))?;
    let channel =
        xtreem_net::client::connect(core, config).map_err(|e| Attempt::Final(e.into()))?;
    let request =
        keys::new_key_and_csr(shared.config.name.as_str()).map_err(|e| Attempt::Final(e.into()))?;
    let response = EnrollmentClient::new(channel)
        .enroll(pb::EnrollRequest {
            token_id: token.id.clone(),
            token_secret: token.secret.clone(),
            node: shared.config.name.to_string(),
            roles: shared.config.roles.iter().map(|r| role_to_pb(*r)).collect(),
            csr_der: request.csr_der,
            rpc_endpoint: shared.rpc_endpoint.clone(),
        })
        .await
        .map_err(|s| from_status(core, s))?
        .into_inner();
    let site = info
        .site
        .parse()
        .map_err(|e: xtreem_util::names::NameError| Attempt::Final(e.into()))?;
    let authority = info
        .authority
        .parse()
        .map_err(|e: xtreem_util::names::NameError| Attempt::Final(e.into()))?;
    shared
        .tls
        .save_and_install(
            &shared.data,
            &response.ca_certificate_pem,
            &response.certificate_pem,
            &request.key_pem,
        )
        .map_err(|e| Attempt::Final(e.into()))?;
    shared
        .record_membership(Membership {
            site,
            authority,
            authority_endpoint: core.to_owned(),
        })
        .await
        .map_err(|e| Attempt::Final(e.into()))?;
    tracing::info!(site = %info.site, authority = %info.authority, "enrolled");
    shared.set_phase(Phase::Ready);
    Ok(())
}

/// Reports to the authority every heartbeat interval and installs the
/// revocation list it answers with.
pub async fn heartbeat_loop(
    shared: Arc<NodeShared>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut client = None;
    let mut generation = 0;
    let mut warned = false;
    loop {
        if generation != shared.tls.generation() {
            client = None;
            generation = shared.tls.generation();
        }
        if client.is_none() {
            client = shared.authority_channel().ok().map(FabricClient::new);
        }
        if let Some(c) = client.as_mut() {
            let request = pb::HeartbeatRequest {
                rpc_endpoint: shared.rpc_endpoint.clone(),
                revocations_version: shared.tls.revoked.version(),
                trust_version: shared.trust.version(),
                gossip: Some(gossip_member(&shared.directory.own_record())),
                gossip_version: shared.directory.material_version(),
            };
            // A stop must not wait for an RPC to a node that is already gone.
            let result = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                r = c.heartbeat(request) => r,
            };
            match result {
                Ok(r) => {
                    let r = r.into_inner();
                    install_gossip(&shared, &r);
                    if r.revocations_version != shared.tls.revoked.version() {
                        shared
                            .tls
                            .revoked
                            .replace(r.revocations_version, r.revoked_serials);
                        tracing::info!(version = r.revocations_version, "revocation list updated");
                    }
                    if !r.trust_document.is_empty() {
                        match shared.trust.install_json(&r.trust_document) {
                            Ok(()) => {
                                tracing::info!(version = %r.trust_version, "trust document updated");
                                // Kept so a restarted node verifies credentials
                                // before its first heartbeat.
                                if let Err(e) = xtreem_security::files::write_public(
                                    &shared.data.trust_document(),
                                    r.trust_document.as_bytes(),
                                ) {
                                    tracing::warn!(error = %e, "cannot keep the trust document on disk");
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "unreadable trust document from the site authority; keeping the old one")
                            }
                        }
                    }
                    if shared.phase() == Phase::Removed {
                        shared.set_phase(Phase::Ready);
                    }
                    warned = false;
                }
                Err(s) if s.code() == Code::PermissionDenied => {
                    if shared.phase() != Phase::Removed {
                        tracing::error!(reason = %s.message(), "the site authority refuses this node; it was removed from the site");
                        shared.set_phase(Phase::Removed);
                    }
                }
                Err(s) => {
                    if !warned {
                        tracing::warn!(error = %s.message(), "heartbeat to the site authority failed");
                        warned = true;
                    }
                    client = None;
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(shared.config.heartbeat_interval) => {}
        }
    }
}

fn gossip_member(record: &xtreem_security::site::GossipMemberRecord) -> pb::GossipMember {
    pb::GossipMember {
        node: record.node.clone(),
        endpoint: record.endpoint.clone(),
        incarnation: record.incarnation,
        public_key: record.public_key.to_vec(),
    }
}

/// Installs the site's gossip key and roster when the authority sent them.
fn install_gossip(shared: &NodeShared, r: &pb::HeartbeatResponse) {
    if r.gossip_version == shared.directory.material_version() {
        return;
    }
    let key = |k: &pb::GossipKey| -> Option<(u8, [u8; 32])> {
        Some((u8::try_from(k.id).ok()?, k.key.as_slice().try_into().ok()?))
    };
    let Some(current) = r.gossip_key.as_ref().and_then(key) else {
        return;
    };
    let roster = r
        .gossip_roster
        .iter()
        .filter_map(|m| {
            Some(xtreem_security::site::GossipMemberRecord {
                node: m.node.clone(),
                endpoint: m.endpoint.clone(),
                incarnation: m.incarnation,
                public_key: m.public_key.as_slice().try_into().ok()?,
            })
        })
        .collect();
    let state = xtreem_security::site::GossipState {
        version: r.gossip_version,
        key: Some(current),
        previous_key: r.gossip_previous_key.as_ref().and_then(key),
        roster,
    };
    shared
        .directory
        .install_material(crate::directory::GossipMaterial::from_state(&state));
    tracing::debug!(version = r.gossip_version, "gossip roster updated");
}

/// Renews the node certificate once half its lifetime has passed.
pub async fn renewal_loop(shared: Arc<NodeShared>, stop: CancellationToken) -> std::io::Result<()> {
    loop {
        let Some(identity) = shared.tls.identity() else {
            return Ok(());
        };
        // not_before is back-dated for clock skew; the issue time is later.
        let issued = identity.not_before_unix + CERT_CLOCK_SKEW_ALLOWANCE.as_secs();
        let lifetime = identity.not_after_unix.saturating_sub(issued).max(1);
        let renew_at = issued + lifetime / 2;
        let now = unix_now();
        if now >= renew_at && shared.phase() == Phase::Ready {
            let result = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                r = renew(&shared) => r,
            };
            match result {
                Ok(()) => continue,
                Err(e) => tracing::warn!(error = %e, "certificate renewal failed; will retry"),
            }
        }
        let wait = Duration::from_secs(renew_at.saturating_sub(now).clamp(1, 30));
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn renew(shared: &Arc<NodeShared>) -> anyhow::Result<()> {
    let ca_pem = std::fs::read_to_string(shared.data.ca_cert())?;
    if let Some(authority) = shared.authority() {
        let own = authority.renew_self(shared.rpc_endpoint.clone()).await?;
        shared
            .tls
            .save_and_install(&shared.data, &ca_pem, &own.cert_pem, &own.key_pem)?;
    } else {
        let request = keys::new_key_and_csr(shared.config.name.as_str())?;
        let mut client = FabricClient::new(shared.authority_channel()?);
        let response = client
            .renew_certificate(pb::RenewCertificateRequest {
                csr_der: request.csr_der,
            })
            .await?
            .into_inner();
        shared.tls.save_and_install(
            &shared.data,
            &ca_pem,
            &response.certificate_pem,
            &request.key_pem,
        )?;
    }
    let expiry = shared.tls.identity().map(|i| i.not_after_unix).unwrap_or(0);
    tracing::info!(expires_unix = expiry, "node certificate renewed");
    Ok(())
}
