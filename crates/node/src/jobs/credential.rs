//! The credential a job carries so it can call the grid as its owner: not
//! the owner's login token itself but one exchanged for it (token exchange,
//! RFC 8693, as `xos delegate` does) in which the job's home acts for the
//! owner. It is signed by the VO like any credential, so every service
//! accepts it, shows the delegation (`act`) and never outlives the login.
//! The exchange happens at the VO authority (in process on the site
//! authority node, over node mTLS from any other home) once per login
//! token: the delegated credential names the home, not the job, so every
//! job of that login shares it (and every node's verifier caches one
//! credential, not one per job).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};

use xtreem_proto::vo as pb;
use xtreem_token::{Claims, DelegationRequest};
use xtreem_util::time::unix_now;

use crate::daemon::NodeShared;

/// Kept off the end of the owner's credential: the authority's clock reads
/// later than ours, and a delegated credential may not outlive its parent.
const EXPIRY_MARGIN_SECS: u64 = 30;

/// How long a member home waits for the authority.
const AUTHORITY_TIMEOUT: Duration = Duration::from_secs(5);

/// Delegated credentials kept at most; the cache starts over when full.
const CACHED_MAX: usize = 1024;

/// Delegated credentials by the SHA-256 of the login token they came from.
#[derive(Default)]
pub struct Delegated {
    by_parent: Mutex<HashMap<[u8; 32], (String, u64)>>,
}

impl Delegated {
    fn get(&self, parent: &[u8; 32], now: u64) -> Option<String> {
        let cache = self
            .by_parent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache
            .get(parent)
            .filter(|(_, exp)| *exp > now.saturating_add(EXPIRY_MARGIN_SECS))
            .map(|(token, _)| token.clone())
    }

    fn put(&self, parent: [u8; 32], token: String, exp: u64) {
        let mut cache = self
            .by_parent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHED_MAX {
            cache.clear();
        }
        cache.insert(parent, (token, exp));
    }
}

/// Who acts for the owner in the jobs' credentials of `home`.
pub fn actor(home: &str) -> String {
    format!("jobs@{home}")
}

/// The owner's `token` (with `claims`, for VO `vo`) exchanged for the
/// credential its jobs get.
pub async fn delegate(
    shared: &Arc<NodeShared>,
    claims: &Claims,
    vo: &str,
    token: &str,
) -> Result<String, String> {
    let now = unix_now();
    let parent: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if let Some(cached) = shared.jobs.delegated.get(&parent, now) {
        return Ok(cached);
    }
    let delegated = exchange(shared, claims, vo, token, now).await?;
    let expires = claims.exp.saturating_sub(EXPIRY_MARGIN_SECS);
    shared
        .jobs
        .delegated
        .put(parent, delegated.clone(), expires);
    Ok(delegated)
}

async fn exchange(
    shared: &Arc<NodeShared>,
    claims: &Claims,
    vo: &str,
    token: &str,
    now: u64,
) -> Result<String, String> {
    let ttl = claims
        .exp
        .saturating_sub(now)
        .saturating_sub(EXPIRY_MARGIN_SECS);
    if ttl == 0 {
        return Err("the owner's credential expires within 30 s".into());
    }
    let ask = DelegationRequest {
        scopes: claims.scopes().map(str::to_owned).collect(),
        ttl_secs: ttl,
        audience: None,
        actor: actor(shared.config.name.as_str()),
    };
    if let Some(authority) = shared.vo_authority() {
        return authority
            .delegate(claims, vo, &ask)
            .map(|(token, _)| token)
            .map_err(|s| s.message().to_owned());
    }
    let endpoint = shared
        .membership()
        .map(|m| m.authority_endpoint)
        .ok_or("this node belongs to no site")?;
    let mut client = shared
        .jobs
        .peers
        .vo(shared, &endpoint)
        .map_err(|s| s.message().to_owned())?;
    let mut request = tonic::Request::new(pb::DelegateRequest {
        scopes: ask.scopes,
        ttl_seconds: ask.ttl_secs,
        audience: String::new(),
        actor: ask.actor,
    });
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the owner's credential is not a valid header value".to_owned())?;
    request.metadata_mut().insert("authorization", bearer);
    let answer = tokio::time::timeout(AUTHORITY_TIMEOUT, client.delegate(request))
        .await
        .map_err(|_| "the VO authority did not answer within 5 s".to_owned())?;
    match answer {
        Ok(r) => Ok(r.into_inner().token),
        Err(status) => {
            shared.jobs.peers.forget(&endpoint);
            Err(format!("the VO authority refused: {}", status.message()))
        }
    }
}
