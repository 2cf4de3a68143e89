//! The site certificate authority.
//!
//! It signs node and administrator certificates from CSRs. Only the public key
//! and the CSR's signature are taken from a request: names, lifetime and
//! usages are decided here, so a requester cannot ask for more than it gets.

use std::time::Duration;

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use xtreem_net::{PrincipalKind, spiffe_uri};
use xtreem_util::names::SiteName;

use crate::{Result, SecurityError};

/// Lifetime of a site CA certificate.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
use xtreem_util::limits::CERT_CLOCK_SKEW_ALLOWANCE as CLOCK_SKEW_ALLOWANCE;

/// A site's CA: its certificate and signing key.
pub struct SiteCa {
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// What the CA is asked to certify.
pub struct CertRequest<'a> {
    pub csr_der: &'a [u8],
    pub kind: PrincipalKind,
    pub name: &'a str,
    /// IP addresses or DNS names the holder serves on (nodes only).
    pub hosts: &'a [String],
    pub lifetime: Duration,
    pub now_unix: u64,
}

/// A signed certificate and the facts the site records about it.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub pem: String,
    pub serial: String,
    pub not_after_unix: u64,
}

fn timestamp(unix: u64) -> Result<OffsetDateTime> {
    let secs =
        i64::try_from(unix).map_err(|_| SecurityError::Certificate("time out of range".into()))?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| SecurityError::Certificate(e.to_string()))
}

/// A random positive serial of 16 bytes whose first byte is non-zero, so its
/// hex form is the same however a parser trims it.
fn random_serial() -> (SerialNumber, String) {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f).max(1);
    let hex = hex::encode(bytes);
    (SerialNumber::from_slice(&bytes), hex)
}

/// SHA-256 of a certificate's DER, lower-case hex: what join tokens pin.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

impl SiteCa {
    /// Makes a new CA for `site`; returns it with its private key PEM.
    pub fn create(site: &SiteName, now_unix: u64) -> Result<(SiteCa, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("Xtreem site CA {site}"));
        dn.push(DnType::OrganizationName, site.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = timestamp(now_unix.saturating_sub(CLOCK_SKEW_ALLOWANCE.as_secs()))?;
        params.not_after = timestamp(now_unix + CA_LIFETIME.as_secs())?;
        params.serial_number = Some(random_serial().0);
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        let ca = SiteCa::load(&cert.pem(), &key_pem)?;
        Ok((ca, key_pem))
    }

    /// Loads a CA from its certificate and key PEM.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<SiteCa> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        let cert_der = xtreem_net::tls::cert_from_pem(cert_pem)
            .map_err(|e| SecurityError::Certificate(e.to_string()))?
            .to_vec();
        Ok(SiteCa {
            cert_pem: cert_pem.to_owned(),
            cert_der,
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// Signs a certificate for the public key in `req.csr_der`.
    pub fn sign(&self, site: &SiteName, req: &CertRequest<'_>) -> Result<IssuedCert> {
        let csr = CertificateSigningRequestParams::from_der(&req.csr_der.to_vec().into()).map_err(
            |e| {
                SecurityError::BadCsr(format!(
                    "{e}; the request must be a DER PKCS#10 CSR signed by its key"
                ))
            },
        )?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, req.name);
        dn.push(DnType::OrganizationName, site.as_str());
        params.distinguished_name = dn;
        let uri = spiffe_uri(site.as_str(), req.kind, req.name);
        params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        match req.kind {
            PrincipalKind::Node => {
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ];
                params
                    .subject_alt_names
                    .push(SanType::DnsName(req.name.try_into()?));
                for host in req.hosts {
                    match host.parse::<std::net::IpAddr>() {
                        Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
                        Err(_) => params
                            .subject_alt_names
                            .push(SanType::DnsName(host.as_str().try_into()?)),
                    }
                }
            }
            PrincipalKind::Admin => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        params.use_authority_key_identifier_extension = true;
        let not_after_unix = req.now_unix + req.lifetime.as_secs();
        params.not_before = timestamp(req.now_unix.saturating_sub(CLOCK_SKEW_ALLOWANCE.as_secs()))?;
        params.not_after = timestamp(not_after_unix)?;
        let (serial, serial_hex) = random_serial();
        params.serial_number = Some(serial);
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(IssuedCert {
            pem: cert.pem(),
            serial: serial_hex,
            not_after_unix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::new_key_and_csr;

    #[test]
    fn signed_certificates_carry_the_identity_and_chain_to_the_ca() {
        let site: SiteName = "lab".parse().unwrap();
        let (ca, key_pem) = SiteCa::create(&site, 1_800_000_000).unwrap();
        let reloaded = SiteCa::load(ca.cert_pem(), &key_pem).unwrap();
        assert_eq!(reloaded.fingerprint(), ca.fingerprint());
        let req = new_key_and_csr("n1").unwrap();
        let issued = ca
            .sign(
                &site,
                &CertRequest {
                    csr_der: &req.csr_der,
                    kind: PrincipalKind::Node,
                    name: "n1",
                    hosts: &["127.0.0.1".to_owned()],
                    lifetime: Duration::from_secs(3600),
                    now_unix: 1_800_000_000,
                },
            )
            .unwrap();
        let der = xtreem_net::tls::cert_from_pem(&issued.pem).unwrap();
        let id = xtreem_net::identity_from_der(&der).unwrap();
        assert_eq!(
            (id.kind, id.site.as_str(), id.name.as_str()),
            (PrincipalKind::Node, "lab", "n1")
        );
        assert_eq!(id.serial, issued.serial);
        assert_eq!(id.not_after_unix, 1_800_003_600);
    }

    #[test]
    fn a_csr_with_a_broken_signature_is_refused() {
        let site: SiteName = "lab".parse().unwrap();
        let (ca, _) = SiteCa::create(&site, 1_800_000_000).unwrap();
        let mut req = new_key_and_csr("n1").unwrap();
        let last = req.csr_der.len() - 1;
        req.csr_der[last] ^= 0xff;
        for csr in [req.csr_der.as_slice(), b"garbage".as_slice(), &[]] {
            let err = ca
                .sign(
                    &site,
                    &CertRequest {
                        csr_der: csr,
                        kind: PrincipalKind::Node,
                        name: "n1",
                        hosts: &[],
                        lifetime: Duration::from_secs(60),
                        now_unix: 1_800_000_000,
                    },
                )
                .unwrap_err();
            assert!(matches!(err, SecurityError::BadCsr(_)), "{err}");
        }
    }
}
