//! Password hashing with argon2id. Parameters follow OWASP's minimum for
//! argon2id (19 MiB, 2 passes, 1 lane), which keeps a login in the tens of
//! milliseconds on a small core.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::VoError;

/// Shortest password accepted for a local account.
pub const PASSWORD_CHARS_MIN: usize = 8;
const PASSWORD_BYTES_MAX: usize = 1024;

fn argon2() -> Result<Argon2<'static>, VoError> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| VoError::Invalid {
        what: "argon2 parameters",
        reason: e.to_string(),
    })?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash(password: &str) -> Result<String, VoError> {
    if password.chars().count() < PASSWORD_CHARS_MIN || password.len() > PASSWORD_BYTES_MAX {
        return Err(VoError::Invalid {
            what: "password",
            reason: format!("use {PASSWORD_CHARS_MIN} to {PASSWORD_BYTES_MAX} characters"),
        });
    }
    let mut salt_bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| VoError::Invalid {
        what: "password salt",
        reason: e.to_string(),
    })?;
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| VoError::Invalid {
            what: "password",
            reason: e.to_string(),
        })
}

/// Checks `password` against a stored hash; any malformed hash is a "no".
pub fn check(password: &str, stored: &str) -> bool {
    if password.len() > PASSWORD_BYTES_MAX {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    argon2().is_ok_and(|a| a.verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_checks_only_its_password() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(check("correct horse", &h));
        assert!(!check("wrong horse", &h));
        assert!(!check("correct horse", "garbage"));
        assert!(hash("short").is_err());
    }
}
