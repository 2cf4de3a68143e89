//! Join tokens: `xjt1.ID.SECRET.CAHASH`.
//!
//! ID names the token in the site's records and in error messages; SECRET is
//! 128 random bits, stored by the site only as a SHA-256 hash; CAHASH is the
//! SHA-256 of the site CA certificate, which the joining node checks before it
//! sends SECRET anywhere.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::SecurityError;

const PREFIX: &str = "xjt1";

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub id: String,
    pub secret: String,
    pub ca_hash: String,
}

// Never print the secret by accident.
impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinToken({})", self.id)
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}.{}.{}.{}", self.id, self.secret, self.ca_hash)
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FromStr for JoinToken {
    type Err = SecurityError;
    fn from_str(s: &str) -> Result<JoinToken, SecurityError> {
        let bad = |why: &str| {
            SecurityError::MalformedToken(format!(
                "{why}; a join token looks like xjt1.<12 hex>.<32 hex>.<64 hex>, as printed by `xos node join-token`"
            ))
        };
        let parts: Vec<&str> = s.trim().split('.').collect();
        let [prefix, id, secret, ca_hash] = parts.as_slice() else {
            return Err(bad("it does not have four dot-separated parts"));
        };
        if *prefix != PREFIX {
            return Err(bad("it does not start with xjt1"));
        }
        if !is_hex(id, 12) || !is_hex(secret, 32) || !is_hex(ca_hash, 64) {
            return Err(bad("a part has the wrong length or a non-hex character"));
        }
        Ok(JoinToken {
            id: (*id).to_owned(),
            secret: (*secret).to_owned(),
            ca_hash: (*ca_hash).to_owned(),
        })
    }
}

impl JoinToken {
    /// A fresh token for the CA with fingerprint `ca_hash`.
    pub fn generate(ca_hash: &str) -> JoinToken {
        let mut id = [0u8; 6];
        let mut secret = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        rand::rng().fill_bytes(&mut secret);
        JoinToken {
            id: hex::encode(id),
            secret: hex::encode(secret),
            ca_hash: ca_hash.to_owned(),
        }
    }
}

/// What the site stores instead of the secret.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_hide_the_secret_in_debug() {
        let t = JoinToken::generate(&"ab".repeat(32));
        let parsed: JoinToken = t.to_string().parse().unwrap();
        assert_eq!(parsed, t);
        assert!(!format!("{t:?}").contains(&t.secret));
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser() {
        let alphabet: Vec<char> = "xjt1.0123456789abcdefABCDEF-_ é\u{0}\n".chars().collect();
        let mut seed = 12345u64;
        for len in 0..3000usize {
            let text: String = (0..len % 140)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    alphabet[(seed >> 33) as usize % alphabet.len()]
                })
                .collect();
            let _ = text.parse::<JoinToken>();
        }
    }

    #[test]
    fn malformed_tokens_say_what_a_token_looks_like() {
        for bad in [
            "",
            "xjt1",
            "xjt2.aaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.cc",
            "xjt1.zz.b.c",
            "a.b.c.d.e",
        ] {
            let err = bad.parse::<JoinToken>().unwrap_err().to_string();
            assert!(err.contains("xos node join-token"), "{err}");
        }
    }
}
