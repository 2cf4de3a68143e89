//! Offline verification: a node checks a credential against the JWKS it
//! holds, never calling the VO service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::{CLOCK_SKEW_SECS, Claims, PublicKey, TokenError};

/// The keys and audiences a node accepts.
///
/// A node sees the same credential on request after request, and one
/// Ed25519 check costs tens of microseconds on a small core, so credentials
/// that passed are remembered (by SHA-256 of the token) in a bounded cache.
/// A cache hit still checks expiry and not-before against the clock; a
/// credential that failed is never remembered; a node that learns of a
/// withdrawn key builds a new `Verifier`, whose cache starts empty.
#[derive(Clone, Default)]
pub struct Verifier {
    /// (issuer, kid) -> key
    keys: HashMap<(String, String), DecodingKey>,
    issuers: HashMap<String, usize>,
    audiences: Vec<String>,
    verified: Arc<Mutex<HashMap<[u8; 32], Claims>>>,
}

/// Credentials remembered as verified; past this, a part is forgotten.
const VERIFIED_CACHE_ENTRIES_MAX: usize = 16_384;

/// Credentials larger than this are refused before any parsing.
const TOKEN_BYTES_MAX: usize = 16 * 1024;

impl Verifier {
    pub fn new(audiences: Vec<String>) -> Verifier {
        Verifier {
            keys: HashMap::new(),
            issuers: HashMap::new(),
            audiences,
            verified: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Trusts `key` for credentials of `issuer`.
    pub fn trust(&mut self, issuer: &str, key: PublicKey) {
        let Ok(raw) = key.raw() else { return };
        if self
            .keys
            .insert(
                (issuer.to_owned(), key.kid.clone()),
                DecodingKey::from_ed_der(&raw),
            )
            .is_none()
        {
            *self.issuers.entry(issuer.to_owned()).or_default() += 1;
        }
    }

    pub fn trusts_issuer(&self, issuer: &str) -> bool {
        self.issuers.contains_key(issuer)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, xtreem_util::time::unix_now())
    }

    /// Verifies at time `now` (Unix seconds), from the cache of credentials
    /// already verified when possible.
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(TokenError::Malformed(format!(
                "longer than {TOKEN_BYTES_MAX} bytes"
            )));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self
            .verified
            .lock()
            .ok()
            .and_then(|c| c.get(&digest).cloned());
        let claims = match cached {
            Some(claims) => claims,
            None => {
                let claims = self.verify_uncached_at(token, now)?;
                if let Ok(mut cache) = self.verified.lock() {
                    if cache.len() >= VERIFIED_CACHE_ENTRIES_MAX {
                        // Forget the expired first, then anything, to stay bounded.
                        cache.retain(|_, c| c.exp + CLOCK_SKEW_SECS >= now);
                        if cache.len() >= VERIFIED_CACHE_ENTRIES_MAX {
                            cache.clear();
                        }
                    }
                    cache.insert(digest, claims.clone());
                }
                return Ok(claims);
            }
        };
        check_time(&claims, now)?;
        Ok(claims)
    }

    /// Verifies in full: parse, signature, claims. What a credential costs
    /// the first time a node sees it.
    pub fn verify_uncached_at(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(TokenError::Malformed(format!(
                "longer than {TOKEN_BYTES_MAX} bytes"
            )));
        }
        // Name the algorithm ourselves first: jsonwebtoken cannot even parse
        // a header saying `none`, and the holder deserves to hear why.
        let alg = unverified_header_alg(token)?;
        if alg != "EdDSA" {
            return Err(TokenError::Algorithm(alg));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // `none`, HS256 with no such variant, etc. land here or below.
            ErrorKind::InvalidAlgorithmName => TokenError::Algorithm("unknown".into()),
            _ => TokenError::Malformed(e.to_string()),
        })?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(TokenError::NoKeyId)?;
        // The issuer picks the key set; it is read unverified here and then
        // pinned in the validation, so a lie about it fails the signature.
        let issuer = unverified_issuer(token)?;
        if !self.trusts_issuer(&issuer) {
            return Err(TokenError::UnknownIssuer(issuer));
        }
        let key = self
            .keys
            .get(&(issuer.clone(), kid.clone()))
            .ok_or(TokenError::UnknownKey {
                issuer: issuer.clone(),
                kid,
            })?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.leeway = CLOCK_SKEW_SECS;
        // Time is checked below against `now`, so callers can pin it.
        validation.validate_nbf = false;
        validation.validate_exp = false;
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::InvalidAudience => TokenError::Audience(self.audiences.clone()),
            ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(static_claim(c)),
            ErrorKind::InvalidAlgorithm => TokenError::Algorithm(format!("{:?}", header.alg)),
            _ => TokenError::Malformed(e.to_string()),
        })?;
        let claims = data.claims;
        check_time(&claims, now)?;
        if claims.jti.is_empty() {
            return Err(TokenError::MissingClaim("jti"));
        }
        Ok(claims)
    }
}

/// Our own time checks, so tests and the bench can pin `now`.
fn check_time(claims: &Claims, now: u64) -> Result<(), TokenError> {
    if now > claims.exp + CLOCK_SKEW_SECS {
        return Err(TokenError::Expired(now - claims.exp));
    }
    if claims.nbf > now + CLOCK_SKEW_SECS {
        return Err(TokenError::NotYetValid(claims.nbf));
    }
    Ok(())
}

fn static_claim(name: &str) -> &'static str {
    match name {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "sub" => "sub",
        "aud" => "aud",
        _ => "a required claim",
    }
}

fn segment(token: &str, index: usize, what: &str) -> Result<Vec<u8>, TokenError> {
    use base64::Engine;
    let part = token
        .split('.')
        .nth(index)
        .ok_or_else(|| TokenError::Malformed("it does not have three parts".into()))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| TokenError::Malformed(format!("{what}: {e}")))
}

fn unverified_header_alg(token: &str) -> Result<String, TokenError> {
    #[derive(serde::Deserialize)]
    struct Alg {
        alg: Option<String>,
    }
    let bytes = segment(token, 0, "header")?;
    let alg: Alg = serde_json::from_slice(&bytes)
        .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
    alg.alg
        .ok_or_else(|| TokenError::Malformed("the header names no algorithm".into()))
}

fn unverified_issuer(token: &str) -> Result<String, TokenError> {
    let bytes = segment(token, 1, "payload")?;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let iss: Iss = serde_json::from_slice(&bytes)
        .map_err(|e| TokenError::Malformed(format!("payload: {e}")))?;
    iss.iss.ok_or(TokenError::MissingClaim("iss"))
}

#[cfg(test)]
mod tests;
