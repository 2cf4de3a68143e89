//! rustls configurations: TLS 1.3 only, the `ring` provider, the site CA as
//! trust anchor, and verifiers that also refuse revoked serials.
//!
//! Federation adds the CAs of other sites ([`ForeignCa`]). A trust anchor
//! then vouches for one site only: a client certificate is checked against
//! the CA of the site its SPIFFE URI names, so a trusted foreign CA cannot
//! mint certificates that pass as ours or as a third site's.

use std::collections::BTreeMap;
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
use crate::{CertRefusal, NetError, PeerIdentity, PrincipalKind, Result, RevocationSet};

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

/// The CA of another site that this site trusts (`xos site trust`), bound to
/// the name of that site: certificates it signs are accepted only if they
/// name `site`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignCa {
    pub site: String,
    pub ca: CertificateDer<'static>,
}

impl ForeignCa {
    /// The first certificate of `ca_pem` (a trust bundle stores PEM) as the
    /// CA of `site`.
    pub fn from_pem(site: impl Into<String>, ca_pem: &str) -> Result<ForeignCa> {
        Ok(ForeignCa {
            site: site.into(),
            ca: cert_from_pem(ca_pem)?,
        })
    }
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

    /// Server side of a node without federation: only certificates of our
    /// own site are accepted. Same as [`Self::server_config_with_foreign`]
    /// with no foreign CA.
    pub fn server_config(&self, revoked: &RevocationSet) -> Result<Arc<ServerConfig>> {
        self.server_config_with_foreign(revoked, &[])
    }

    /// Server side of a node: presents the node certificate, asks for a
    /// client certificate but lets the handshake through without one (the
    /// enrollment endpoint needs that); each RPC then checks who called.
    ///
    /// A client certificate is accepted if it names our own site and chains
    /// to our CA, or names a site of `foreign` and chains to that site's CA
    /// and is a node certificate (foreign administrators administer their own
    /// site, not ours). Our own site is the one our certificate names, so
    /// this material must carry a SPIFFE identity.
    ///
    /// Revoked serials are refused for our own site only: `revoked` is our
    /// CA's list, and the revocations of foreign CAs are not known here. A
    /// foreign node is cut off by distrusting its whole site.
    ///
    /// Fails if a foreign entry names our own site (that would let another
    /// CA issue certificates for our site) or an empty site.
    pub fn server_config_with_foreign(
        &self,
        revoked: &RevocationSet,
        foreign: &[ForeignCa],
    ) -> Result<Arc<ServerConfig>> {
        let own_site = identity_from_der(&self.cert)?.site;
        let verifier = Arc::new(SiteBoundClientVerifier::new(
            own_site, &self.ca, revoked, foreign,
        )?);
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

    /// Client side towards a node of a federated site: presents this
    /// certificate (the other site admits it if it trusts our CA) and trusts
    /// `foreign_ca` only, so a node of our own site or of any other site
    /// cannot answer in its place. The server must hold a node certificate;
    /// which site it names is not checked, see
    /// [`Self::client_config_for_foreign_site`] for that.
    pub fn client_config_for_foreign(
        &self,
        foreign_ca: &CertificateDer<'static>,
    ) -> Result<Arc<ClientConfig>> {
        self.foreign_client(roots(foreign_ca)?, None)
    }

    /// As [`Self::client_config_for_foreign`] towards `site`, trusting every
    /// CA that `foreign` lists for it (a site rolling its CA over is listed
    /// with both), and the server's certificate must also name `site`: the
    /// binding of CA to site that our server applies to clients.
    ///
    /// Fails if `foreign` lists no CA for `site`.
    pub fn client_config_for_foreign_site(
        &self,
        site: &str,
        foreign: &[ForeignCa],
    ) -> Result<Arc<ClientConfig>> {
        let mut store = RootCertStore::empty();
        for f in foreign.iter().filter(|f| f.site == site) {
            store
                .add(f.ca.clone())
                .map_err(|e| NetError::Material(format!("CA of site {site}: {e}")))?;
        }
        if store.is_empty() {
            return Err(NetError::Material(format!(
                "no CA is trusted for site {site:?}"
            )));
        }
        self.foreign_client(Arc::new(store), Some(site.to_owned()))
    }

    fn foreign_client(
        &self,
        roots: Arc<RootCertStore>,
        site: Option<String>,
    ) -> Result<Arc<ClientConfig>> {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| NetError::Material(format!("server verifier: {e}")))?;
        let verifier = Arc::new(ForeignServerVerifier { inner, site });
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

/// The identity a certificate claims. Parsing comes before chain validation
/// in [`SiteBoundClientVerifier`] (the claimed site picks the CA), so this
/// must cope with hostile input: `identity_from_der` returns errors, never
/// panics.
fn claimed_identity(der: &CertificateDer<'_>) -> Result<PeerIdentity, rustls::Error> {
    identity_from_der(der).map_err(|e| CertRefusal::NoIdentity(e.to_string()).into())
}

fn check_identity(
    der: &CertificateDer<'_>,
    revoked: &RevocationSet,
    must_be_node: bool,
) -> Result<PeerIdentity, rustls::Error> {
    let identity = claimed_identity(der)?;
    if revoked.is_revoked(&identity.serial) {
        return Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Revoked,
        ));
    }
    if must_be_node && identity.kind != PrincipalKind::Node {
        return Err(CertRefusal::ServerNotNode {
            kind: identity.kind,
            name: identity.name,
        }
        .into());
    }
    Ok(identity)
}

fn client_verifier(roots: Arc<RootCertStore>) -> Result<Arc<dyn ClientCertVerifier>> {
    WebPkiClientVerifier::builder_with_provider(roots, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| NetError::Material(format!("client verifier: {e}")))
}

/// Client-certificate verifier of a node's server: each trust anchor vouches
/// for one site only.
///
/// The site named in the certificate picks the one verifier the chain is
/// checked against, so a certificate is accepted only if the CA of the site
/// it claims signed it. Checking against all CAs at once and reading the
/// site afterwards would let any trusted foreign CA issue certificates that
/// pass as our own nodes or administrators.
#[derive(Debug)]
struct SiteBoundClientVerifier {
    own_site: String,
    own: Arc<dyn ClientCertVerifier>,
    /// Our CA's revocation list; applies to `own_site` only.
    revoked: RevocationSet,
    /// Per trusted foreign site, a verifier over that site's CAs (a site may
    /// be listed with several, e.g. while it rolls its CA over).
    foreign: BTreeMap<String, Arc<dyn ClientCertVerifier>>,
    /// Subjects of every CA we accept, sent to clients as a hint.
    hints: Vec<DistinguishedName>,
}

impl SiteBoundClientVerifier {
    fn new(
        own_site: String,
        own_ca: &CertificateDer<'static>,
        revoked: &RevocationSet,
        foreign: &[ForeignCa],
    ) -> Result<Self> {
        let own_roots = roots(own_ca)?;
        let mut hints = own_roots.subjects();
        let mut by_site: BTreeMap<String, RootCertStore> = BTreeMap::new();
        for f in foreign {
            if f.site.is_empty() || f.site == own_site {
                return Err(NetError::Material(format!(
                    "a foreign CA cannot be trusted for site {:?}: it is empty or our own",
                    f.site
                )));
            }
            by_site
                .entry(f.site.clone())
                .or_insert_with(RootCertStore::empty)
                .add(f.ca.clone())
                .map_err(|e| NetError::Material(format!("CA of site {}: {e}", f.site)))?;
        }
        let mut foreign = BTreeMap::new();
        for (site, store) in by_site {
            hints.extend(store.subjects());
            foreign.insert(site, client_verifier(Arc::new(store))?);
        }
        Ok(SiteBoundClientVerifier {
            own_site,
            own: client_verifier(own_roots)?,
            revoked: revoked.clone(),
            foreign,
            hints,
        })
    }
}

impl ClientCertVerifier for SiteBoundClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let claimed = claimed_identity(end_entity)?;
        if claimed.site == self.own_site {
            let verified = self
                .own
                .verify_client_cert(end_entity, intermediates, now)?;
            if self.revoked.is_revoked(&claimed.serial) {
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Revoked,
                ));
            }
            return Ok(verified);
        }
        let verifier =
            self.foreign
                .get(&claimed.site)
                .ok_or_else(|| CertRefusal::UntrustedSite {
                    site: claimed.site.clone(),
                })?;
        let verified = verifier.verify_client_cert(end_entity, intermediates, now)?;
        if claimed.kind != PrincipalKind::Node {
            return Err(CertRefusal::ForeignNotNode {
                site: claimed.site,
                kind: claimed.kind,
            }
            .into());
        }
        Ok(verified)
    }

    // Handshake signatures are checked against the key of the certificate
    // that `verify_client_cert` accepted; trust anchors play no part, so the
    // own-site verifier serves for every site.

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.own.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.own.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.own.supported_verify_schemes()
    }
}

/// Server verifier towards a federated site: the chain must lead to that
/// site's CA, the server must be a node and, if `site` is set, name it.
/// Foreign revocation lists are not known here.
#[derive(Debug)]
struct ForeignServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    site: Option<String>,
}

impl ServerCertVerifier for ForeignServerVerifier {
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
        let identity = check_identity(end_entity, &RevocationSet::new(), true)?;
        if let Some(expected) = &self.site
            && identity.site != *expected
        {
            return Err(CertRefusal::WrongSite {
                expected: expected.clone(),
                found: identity.site,
            }
            .into());
        }
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
