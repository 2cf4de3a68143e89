//! Where the LDAP server is and how a user name becomes a bind DN, checked
//! once when the authenticator is built so that a bad setting fails at
//! start, not at the first login.
//!
//! The user name is the one piece of untrusted input that reaches the
//! directory. [`validate_user_name`] refuses every character that has a
//! meaning in a distinguished name (RFC 4514) or in a search filter
//! (RFC 4515), so a name is always one attribute value and can never add an
//! RDN, end the DN early or widen a filter: no LDAP injection, and no need
//! for escaping whose rules differ between servers.

use std::time::Duration;

use crate::error::{LdapAuthError, Result};

/// The placeholder in [`LdapConfig::user_dn_template`].
pub const USER_PLACEHOLDER: &str = "{user}";
/// Longest accepted user name. Real uids are far shorter; the bound keeps a
/// login request from carrying an arbitrarily large DN to the server.
pub const USER_NAME_MAX_BYTES: usize = 256;
/// Longest accepted DN template.
pub const TEMPLATE_MAX_BYTES: usize = 1024;
/// Default for [`LdapConfig::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest accepted [`LdapConfig::timeout`]: a login that waits longer is
/// better refused so the caller can report the server as down.
pub const TIMEOUT_MAX: Duration = Duration::from_secs(300);

/// Characters refused anywhere in a user name: the DN specials of RFC 4514
/// (`, + " \ < > ; =`) and the filter specials of RFC 4515 (`* ( )`), which
/// are harmless in a DN but would be dangerous to whoever later puts the
/// name in a search filter.
const FORBIDDEN_IN_USER_NAME: &[char] = &[',', '+', '"', '\\', '<', '>', ';', '=', '*', '(', ')'];

/// How to reach the LDAP server and which DN a user binds as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// `ldap://host[:port]` (default port 389). `ldaps://` is recognised but
    /// refused for now: see [`LdapAuthError::TlsUnsupported`].
    pub url: String,
    /// The bind DN with [`USER_PLACEHOLDER`] where the user name goes, for
    /// example `uid={user},ou=people,dc=example,dc=org`.
    pub user_dn_template: String,
    /// Limit for opening the connection and, separately, for the bind.
    pub timeout: Duration,
    /// Upgrade the connection with StartTLS before binding. Refused for now.
    pub starttls: bool,
}

impl LdapConfig {
    /// A configuration with the default timeout and no StartTLS.
    pub fn new(url: impl Into<String>, user_dn_template: impl Into<String>) -> Self {
        LdapConfig {
            url: url.into(),
            user_dn_template: user_dn_template.into(),
            timeout: DEFAULT_TIMEOUT,
            starttls: false,
        }
    }

    /// Checks every field and how they fit together.
    pub fn validate(&self) -> Result<()> {
        let scheme = parse_url(&self.url)?;
        if scheme == Scheme::Ldaps {
            return Err(LdapAuthError::TlsUnsupported { what: "ldaps://" });
        }
        if self.starttls {
            return Err(LdapAuthError::TlsUnsupported { what: "StartTLS" });
        }
        validate_template(&self.user_dn_template)?;
        if self.timeout.is_zero() || self.timeout > TIMEOUT_MAX {
            return Err(invalid(format!(
                "timeout must be more than 0 and at most {TIMEOUT_MAX:?}, not {:?}",
                self.timeout
            )));
        }
        Ok(())
    }

    /// The DN `user` binds as. The name is checked first, so the result has
    /// exactly the structure of the template.
    pub fn user_dn(&self, user: &str) -> Result<String> {
        validate_user_name(user)?;
        Ok(self.user_dn_template.replacen(USER_PLACEHOLDER, user, 1))
    }
}

/// Refuses a user name that is empty, too long, or holds a character that is
/// special in a DN or filter, a control character, a leading `#` or leading
/// or trailing white space (those three would need escaping in a DN).
pub fn validate_user_name(user: &str) -> Result<()> {
    let refuse = |reason: String| Err(LdapAuthError::InvalidUserName { reason });
    if user.is_empty() {
        return refuse("it is empty".into());
    }
    if user.len() > USER_NAME_MAX_BYTES {
        return refuse(format!("it is longer than {USER_NAME_MAX_BYTES} bytes"));
    }
    if let Some(c) = user.chars().find(|c| FORBIDDEN_IN_USER_NAME.contains(c)) {
        return refuse(format!("it contains {c:?}, which LDAP gives a meaning"));
    }
    if user.chars().any(char::is_control) {
        return refuse("it contains a control character".into());
    }
    if user.starts_with('#') {
        return refuse("it starts with '#'".into());
    }
    if user.starts_with(char::is_whitespace) || user.ends_with(char::is_whitespace) {
        return refuse("it starts or ends with white space".into());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Ldap,
    Ldaps,
}

/// Accepts `scheme://host[:port][/]` and nothing more: an LDAP URL may also
/// carry a base DN, attributes and a filter, none of which a bind uses, so
/// they are refused rather than silently ignored.
fn parse_url(url: &str) -> Result<Scheme> {
    let bad = |why: &str| invalid(format!("url {url:?} {why}; expected ldap://host[:port]"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ldap" => Scheme::Ldap,
        "ldaps" => Scheme::Ldaps,
        _ => return Err(bad("is neither ldap:// nor ldaps://")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(bad("has a path, query or user part"));
    }
    // An IPv6 address is bracketed and full of colons; the port follows `]`.
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (ip, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("has an unclosed '['"))?;
        if ip.is_empty()
            || !ip
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(bad("has a malformed IPv6 address"));
        }
        match after {
            "" => (ip, None),
            _ => (
                ip,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("has junk after ']'"))?,
                ),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    if host.is_empty() || !host.chars().all(host_ok) {
        return Err(bad("has no valid host"));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(bad("has an invalid port")),
        }
    }
    Ok(scheme)
}

fn validate_template(template: &str) -> Result<()> {
    if template.len() > TEMPLATE_MAX_BYTES {
        return Err(invalid(format!(
            "user_dn_template is longer than {TEMPLATE_MAX_BYTES} bytes"
        )));
    }
    if template.matches(USER_PLACEHOLDER).count() != 1 {
        return Err(invalid(format!(
            "user_dn_template {template:?} must contain {USER_PLACEHOLDER} exactly once"
        )));
    }
    // Any other brace is a misspelt placeholder ("{User}", "{username}")
    // that would otherwise be sent to the server literally.
    if template
        .replacen(USER_PLACEHOLDER, "", 1)
        .contains(['{', '}'])
    {
        return Err(invalid(format!(
            "user_dn_template {template:?} has a brace outside {USER_PLACEHOLDER}"
        )));
    }
    if template.chars().any(char::is_control) {
        return Err(invalid(
            "user_dn_template contains a control character".into(),
        ));
    }
    Ok(())
}

fn invalid(message: String) -> LdapAuthError {
    LdapAuthError::InvalidConfig(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "uid={user},ou=people,dc=example,dc=org";

    fn config(url: &str) -> LdapConfig {
        LdapConfig::new(url, TEMPLATE)
    }

    #[test]
    fn accepts_plain_ldap_urls() {
        for url in [
            "ldap://127.0.0.1:389",
            "ldap://ldap.example.org",
            "LDAP://ldap.example.org:10389/",
            "ldap://[::1]:389",
            "ldap://[::1]",
        ] {
            config(url)
                .validate()
                .unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn refuses_bad_urls() {
        for url in [
            "",
            "ldap.example.org",
            "http://ldap.example.org",
            "ldapi://%2Frun%2Fslapd.sock",
            "ldap://",
            "ldap://:389",
            "ldap://host:0",
            "ldap://host:65536",
            "ldap://host:port",
            "ldap://host/dc=example,dc=org",
            "ldap://user@host",
            "ldap://host?uid",
            "ldap://[::1",
            "ldap://[::1]x",
            "ldap://ho st",
        ] {
            let err = config(url).validate().expect_err(url);
            assert!(
                matches!(err, LdapAuthError::InvalidConfig(_)),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn refuses_tls_until_supported() {
        let err = config("ldaps://ldap.example.org").validate().unwrap_err();
        assert!(matches!(err, LdapAuthError::TlsUnsupported { .. }), "{err}");
        let mut starttls = config("ldap://ldap.example.org");
        starttls.starttls = true;
        let err = starttls.validate().unwrap_err();
        assert!(matches!(err, LdapAuthError::TlsUnsupported { .. }), "{err}");
    }

    #[test]
    fn template_needs_the_placeholder_exactly_once() {
        for template in [
            "ou=people,dc=example,dc=org",
            "uid={user},cn={user},dc=example,dc=org",
            "uid={User},dc=example,dc=org",
            "uid={username},dc=example,dc=org",
            "uid={user},cn={x},dc=org",
        ] {
            let err = LdapConfig::new("ldap://h", template)
                .validate()
                .expect_err(template);
            assert!(matches!(err, LdapAuthError::InvalidConfig(_)), "{err}");
        }
        // Not a DN but a valid bind name for Active Directory.
        LdapConfig::new("ldap://h", "{user}@example.org")
            .validate()
            .unwrap();
    }

    #[test]
    fn timeout_is_bounded() {
        let mut c = config("ldap://h");
        c.timeout = Duration::ZERO;
        assert!(c.validate().is_err());
        c.timeout = TIMEOUT_MAX + Duration::from_secs(1);
        assert!(c.validate().is_err());
        c.timeout = TIMEOUT_MAX;
        c.validate().unwrap();
    }

    #[test]
    fn user_dn_substitutes_a_valid_name() {
        let c = config("ldap://h");
        assert_eq!(
            c.user_dn("alice").unwrap(),
            "uid=alice,ou=people,dc=example,dc=org"
        );
        assert_eq!(
            c.user_dn("j.doe-2_x").unwrap(),
            "uid=j.doe-2_x,ou=people,dc=example,dc=org"
        );
        assert_eq!(
            c.user_dn("zoë").unwrap(),
            "uid=zoë,ou=people,dc=example,dc=org"
        );
    }

    #[test]
    fn user_names_that_could_change_the_dn_are_refused() {
        let long = "a".repeat(USER_NAME_MAX_BYTES + 1);
        for user in [
            "",
            long.as_str(),
            "alice,ou=admins",
            "alice+cn=x",
            "*)(uid=*",
            "*",
            "a(b",
            "a)b",
            "a\"b",
            "a\\2cb",
            "a<b",
            "a>b",
            "a;b",
            "uid=alice",
            "a\0b",
            "a\nb",
            "a\u{7f}b",
            "#alice",
            " alice",
            "alice ",
        ] {
            let err = validate_user_name(user).expect_err(user);
            assert!(
                matches!(err, LdapAuthError::InvalidUserName { .. }),
                "{user:?}: {err}"
            );
        }
        validate_user_name(&"a".repeat(USER_NAME_MAX_BYTES)).unwrap();
    }
}
