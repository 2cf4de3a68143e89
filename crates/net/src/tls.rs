//! rustls configurations: TLS 1.3 only, the `ring` provider, the site CA as
//! the only trust anchor, and verifiers that also refuse revoked serials.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::identity::identity_from_der;
use crate::{NetError, PrincipalKind, Result, RevocationSet};

/// ALPN for gRPC over HTTP/2.
const ALPN_H2: &[u8] = b"h2";

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses the first certificate of a PEM document.
pub fn cert_from_pem(pem: &str) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| NetError::Material(format!("bad certificate PEM: {e}")))
}

/// A certificate with its private key and the CA that signed it.
#[derive(Debug)]
pub struct TlsMaterial {
    pub ca: CertificateDer<'static>,
    pub cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        TlsMaterial {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsMaterial {
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<TlsMaterial> {
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| NetError::Material(format!("bad private key PEM: {e}")))?;
        Ok(TlsMaterial {
            ca: cert_from_pem(ca_pem)?,
            cert: cert_from_pem(cert_pem)?,
            key,
        })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>> {
        roots(&self.ca)
    }

    /// Server side of a node: presents the node certificate, asks for a
    /// client certificate but lets the handshake through without one (the
    /// enrollment endpoint needs that); each RPC then checks who called.
    pub fn server_config(&self, revoked: &RevocationSet) -> Result<Arc<ServerConfig>> {
        let inner = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| NetError::Material(format!("client verifier: {e}")))?;
        let verifier = Arc::new(RevocationCheckingClientVerifier {
            inner,
            revoked: revoked.clone(),
        });
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }

    /// Client side with this certificate: used node to node and by the CLI
    /// with an administrator certificate. The server must be a node of the
    /// same site whose certificate is not revoked.
    pub fn client_config(&self, revoked: &RevocationSet) -> Result<Arc<ClientConfig>> {
        let verifier = node_server_verifier(&self.ca, revoked)?;
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(vec![self.cert.clone()], self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| NetError::Material(format!("CA certificate: {e}")))?;
    Ok(Arc::new(roots))
}

fn node_server_verifier(
    ca: &CertificateDer<'static>,
    revoked: &RevocationSet,
) -> Result<Arc<RevocationCheckingServerVerifier>> {
    let inner = WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider())
        .build()
        .map_err(|e| NetError::Material(format!("server verifier: {e}")))?;
    Ok(Arc::new(RevocationCheckingServerVerifier {
        inner,
        revoked: revoked.clone(),
    }))
}

/// Client without a certificate of its own that trusts only `ca`: a joining
/// node uses it to send its join token once it has pinned the CA.
pub fn anonymous_client_config(ca: &CertificateDer<'static>) -> Result<Arc<ClientConfig>> {
    let verifier = node_server_verifier(ca, &RevocationSet::new())?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// Client that accepts any server certificate. Used for one thing only: a
/// joining node downloads the site CA with it and then compares the CA's
/// SHA-256 with the hash pinned in its join token before trusting anything
/// (as `kubeadm join --discovery-token-ca-cert-hash` does). Nothing secret is
/// sent over such a connection.
pub fn unverified_client_config() -> Result<Arc<ClientConfig>> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider())))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct RevocationCheckingClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: RevocationSet,
}

impl std::fmt::Debug for RevocationSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RevocationSet(v{}, {} serials)",
            self.version(),
            self.len()
        )
    }
}

fn check_identity(
    der: &CertificateDer<'_>,
    revoked: &RevocationSet,
    must_be_node: bool,
) -> Result<(), rustls::Error> {
    let identity = identity_from_der(der).map_err(|e| rustls::Error::General(e.to_string()))?;
    if revoked.is_revoked(&identity.serial) {
        return Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Revoked,
        ));
    }
    if must_be_node && identity.kind != PrincipalKind::Node {
        return Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ));
    }
    Ok(())
}

impl ClientCertVerifier for RevocationCheckingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_identity(end_entity, &self.revoked, false)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[derive(Debug)]
struct RevocationCheckingServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    revoked: RevocationSet,
}

impl ServerCertVerifier for RevocationCheckingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        check_identity(end_entity, &self.revoked, true)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
