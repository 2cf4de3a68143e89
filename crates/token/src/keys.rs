//! A VO's Ed25519 signing keys and their public JWKs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::{Claims, TokenError};

/// The public half of a signing key, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub kid: String,
    /// The raw 32-byte Ed25519 public key, base64url without padding (JWK `x`).
    pub x: String,
}

impl PublicKey {
    pub fn to_jwk(&self) -> Jwk {
        Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                key_id: Some(self.kid.clone()),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: self.x.clone(),
            }),
        }
    }

    /// The key of an Ed25519 JWK; other key types are refused.
    pub fn from_jwk(jwk: &Jwk) -> Result<PublicKey, TokenError> {
        let kid = jwk.common.key_id.clone().ok_or(TokenError::NoKeyId)?;
        match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                let raw = URL_SAFE_NO_PAD
                    .decode(&p.x)
                    .map_err(|e| TokenError::Key(format!("JWK {kid}: bad x: {e}")))?;
                if raw.len() != 32 {
                    return Err(TokenError::Key(format!(
                        "JWK {kid}: an Ed25519 key is 32 bytes, not {}",
                        raw.len()
                    )));
                }
                Ok(PublicKey {
                    kid,
                    x: p.x.clone(),
                })
            }
            _ => Err(TokenError::Key(format!(
                "JWK {kid}: only Ed25519 (OKP) keys are accepted"
            ))),
        }
    }

    pub(crate) fn raw(&self) -> Result<Vec<u8>, TokenError> {
        URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|e| TokenError::Key(format!("key {}: {e}", self.kid)))
    }
}

/// A JWKS document: what a VO publishes for nodes to verify offline.
pub type Jwks = JwkSet;

/// An Ed25519 private key with its key id.
pub struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    public: PublicKey,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

impl SigningKey {
    pub fn generate(kid: &str) -> Result<SigningKey, TokenError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| TokenError::Key(e.to_string()))?;
        SigningKey::from_pkcs8(kid, pkcs8.as_ref())
    }

    /// Loads a key saved with [`SigningKey::pkcs8`].
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Result<SigningKey, TokenError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| TokenError::Key(format!("key {kid}: {e}")))?;
        let public = PublicKey {
            kid: kid.to_owned(),
            x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        };
        Ok(SigningKey {
            kid: kid.to_owned(),
            pkcs8: pkcs8.to_vec(),
            public,
            encoding: EncodingKey::from_ed_der(pkcs8),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key (PKCS#8 DER), for a file of mode 0600.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| TokenError::Key(e.to_string()))
    }
}
