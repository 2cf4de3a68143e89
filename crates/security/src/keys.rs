//! The requesting side of a certificate: a fresh key pair that stays local,
//! and a CSR that carries only its public half.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use crate::Result;

/// A new private key (PEM) and a CSR (DER) for it.
pub struct KeyAndCsr {
    pub key_pem: String,
    pub csr_der: Vec<u8>,
}

/// Generates an ECDSA P-256 key and a CSR naming `common_name`. The CA
/// ignores everything in the CSR except the public key and its signature.
pub fn new_key_and_csr(common_name: &str) -> Result<KeyAndCsr> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok(KeyAndCsr {
        key_pem: key.serialize_pem(),
        csr_der: csr.der().to_vec(),
    })
}

/// A CSR for an existing key (certificate renewal keeps the node's key).
pub fn csr_for_key(key_pem: &str, common_name: &str) -> Result<Vec<u8>> {
    let key = KeyPair::from_pem(key_pem)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    Ok(params.serialize_request(&key)?.der().to_vec())
}
