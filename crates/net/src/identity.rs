//! Peer identity from an X.509 certificate.
//!
//! Every certificate the site CA signs carries exactly one URI SAN of the form
//! `spiffe://SITE/KIND/NAME`, KIND being `node` or `admin`. Only this URI is
//! trusted for authorization; the CN is for humans.

use std::fmt;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::NetError;

/// What a certificate holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// An enrolled `xosd`.
    Node,
    /// A site administrator (issued at `xos site init`).
    Admin,
}

impl PrincipalKind {
    fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Node => "node",
            PrincipalKind::Admin => "admin",
        }
    }
}

/// The authenticated identity of a TLS peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub kind: PrincipalKind,
    pub site: String,
    pub name: String,
    /// Certificate serial number, lower-case hex without leading zeros.
    pub serial: String,
    /// Start of validity of the certificate, Unix seconds.
    pub not_before_unix: u64,
    /// Expiry of the certificate, Unix seconds.
    pub not_after_unix: u64,
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} of site {}",
            self.kind.as_str(),
            self.name,
            self.site
        )
    }
}

/// The SAN URI for a principal.
pub fn spiffe_uri(site: &str, kind: PrincipalKind, name: &str) -> String {
    format!("spiffe://{site}/{}/{name}", kind.as_str())
}

fn parse_spiffe(uri: &str) -> Option<(PrincipalKind, String, String)> {
    let rest = uri.strip_prefix("spiffe://")?;
    let mut parts = rest.split('/');
    let site = parts.next()?;
    let kind = match parts.next()? {
        "node" => PrincipalKind::Node,
        "admin" => PrincipalKind::Admin,
        _ => return None,
    };
    let name = parts.next()?;
    if parts.next().is_some() || site.is_empty() || name.is_empty() {
        return None;
    }
    Some((kind, site.to_owned(), name.to_owned()))
}

/// Parses a DER certificate into the identity it asserts. Does not verify the
/// signature: call only on certificates that a verifier already accepted.
pub fn identity_from_der(der: &[u8]) -> Result<PeerIdentity, NetError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| NetError::Identity(format!("unparsable certificate: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| NetError::Identity(format!("bad subjectAltName: {e}")))?
        .ok_or_else(|| NetError::Identity("no subjectAltName".into()))?;
    let mut found = None;
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name
            && let Some(parsed) = parse_spiffe(uri)
        {
            if found.is_some() {
                return Err(NetError::Identity("more than one spiffe:// URI".into()));
            }
            found = Some(parsed);
        }
    }
    let (kind, site, name) =
        found.ok_or_else(|| NetError::Identity("no spiffe://SITE/KIND/NAME URI".into()))?;
    Ok(PeerIdentity {
        kind,
        site,
        name,
        serial: serial_hex(cert.raw_serial()),
        not_before_unix: u64::try_from(cert.validity().not_before.timestamp()).unwrap_or(0),
        not_after_unix: u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0),
    })
}

/// Serial numbers as the CA records them: hex, no leading zero bytes.
pub fn serial_hex(raw: &[u8]) -> String {
    let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    trimmed.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_well_formed_uris() {
        assert_eq!(
            parse_spiffe("spiffe://lab/node/n1"),
            Some((PrincipalKind::Node, "lab".into(), "n1".into()))
        );
        for bad in [
            "spiffe://lab/user/x",
            "spiffe://lab/node",
            "spiffe:///node/x",
            "spiffe://lab/node/x/y",
            "https://lab/node/x",
        ] {
            assert_eq!(parse_spiffe(bad), None, "{bad}");
        }
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(identity_from_der(b"\x30\x03garbage").is_err());
        assert!(identity_from_der(&[]).is_err());
        // Random bytes, and random bytes behind a DER SEQUENCE header: an
        // error every time, never a panic.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..2000usize {
            let mut bytes: Vec<u8> = (0..len % 300)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            if len % 2 == 0 && bytes.len() > 2 {
                bytes[0] = 0x30;
                bytes[1] = 0x82;
            }
            assert!(identity_from_der(&bytes).is_err());
        }
    }
}
