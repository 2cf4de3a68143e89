//! The login itself: one connection, one simple bind as the user, unbind.
//!
//! Binding as the user is the whole check: the server compares the password
//! with its own hash, so Xtreem never sees a stored password and needs no
//! service account that could read the directory.

use ldap3::{LdapConnAsync, LdapConnSettings, LdapError};

use crate::config::LdapConfig;
use crate::error::{LdapAuthError, Result};

/// LDAP result code "invalidCredentials" (RFC 4511): wrong password, and on
/// most servers also an unknown DN, so that the two cannot be told apart.
const RC_INVALID_CREDENTIALS: u32 = 49;

/// A user whose password the LDAP server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The user name as given to [`LdapAuthenticator::authenticate`].
    pub user: String,
    /// The DN the user bound as.
    pub dn: String,
}

/// Checks user names and passwords by binding to one LDAP server.
#[derive(Debug, Clone)]
pub struct LdapAuthenticator {
    config: LdapConfig,
}

impl LdapAuthenticator {
    /// Validates `config`; nothing is contacted until the first login.
    pub fn new(config: LdapConfig) -> Result<Self> {
        config.validate()?;
        Ok(LdapAuthenticator { config })
    }

    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    /// Binds as `user` with `password` on a fresh connection.
    ///
    /// The user name and password are checked before any network traffic:
    /// a name that could alter the DN is refused, and so is an empty
    /// password, because an empty simple bind is an unauthenticated bind
    /// (RFC 4513 5.1.2) that many servers answer with success.
    pub async fn authenticate(&self, user: &str, password: &str) -> Result<Authenticated> {
        let dn = self.config.user_dn(user)?;
        if password.is_empty() {
            return Err(LdapAuthError::EmptyPassword);
        }
        let url = &self.config.url;
        let timeout = self.config.timeout;

        let settings = LdapConnSettings::new().set_conn_timeout(timeout);
        let (conn, mut ldap) =
            LdapConnAsync::with_settings(settings, url)
                .await
                .map_err(|source| {
                    tracing::warn!(%url, error = %source, "LDAP server unreachable");
                    LdapAuthError::Unreachable {
                        url: url.clone(),
                        source: Box::new(source),
                    }
                })?;
        // The connection is driven by its own task; it ends when the
        // connection closes after the unbind below (or when `ldap` drops).
        ldap3::drive!(conn);

        let bind = ldap.with_timeout(timeout).simple_bind(&dn, password).await;
        // Unbind whatever the outcome, so the server frees the session now
        // rather than at its idle timeout. Its failure changes nothing for
        // the caller: the bind's answer is already known.
        if let Err(e) = ldap.with_timeout(timeout).unbind().await {
            tracing::debug!(%url, error = %e, "LDAP unbind failed");
        }

        match bind {
            Ok(result) if result.rc == 0 => {
                tracing::debug!(user, %dn, "LDAP bind succeeded");
                Ok(Authenticated {
                    user: user.to_owned(),
                    dn,
                })
            }
            Ok(result) if result.rc == RC_INVALID_CREDENTIALS => {
                tracing::info!(user, "LDAP bind refused: invalid credentials");
                Err(LdapAuthError::InvalidCredentials)
            }
            Ok(result) => {
                tracing::warn!(user, rc = result.rc, text = %result.text, "LDAP bind refused");
                Err(LdapAuthError::Refused {
                    url: url.clone(),
                    code: result.rc,
                    message: if result.text.is_empty() {
                        "no reason given".to_owned()
                    } else {
                        result.text
                    },
                })
            }
            Err(LdapError::Timeout { .. }) => Err(LdapAuthError::Timeout {
                url: url.clone(),
                timeout,
            }),
            Err(source) => Err(LdapAuthError::Protocol {
                url: url.clone(),
                source: Box::new(source),
            }),
        }
    }
}
