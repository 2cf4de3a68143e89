//! Federation of sites at the TLS layer: each CA vouches for its own site
//! only, foreign sites are admitted for their nodes only, and a node reaches
//! a federated site trusting that site's CA alone.
//!
//! Most cases run rustls connections in memory, which surfaces the exact
//! error of the side that refused; two run over loopback through the real
//! accept loop to show the identity the RPC layer sees.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tonic::transport::server::Connected;
use xtreem_net::server::{ServerConfigHandle, TlsAcceptor, TransportStats};
use xtreem_net::tls::{ForeignCa, TlsMaterial};
use xtreem_net::{
    CertRefusal, NetError, PeerIdentity, PrincipalKind, RevocationSet, identity_from_der,
    spiffe_uri,
};

const LOOPBACK: &str = "127.0.0.1";

/// A site CA made the way `xtreem-security` makes them, in miniature.
struct TestCa {
    site: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(site: &str) -> TestCa {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Xtreem site CA {site}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, site);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            site: site.to_owned(),
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    fn foreign(&self) -> ForeignCa {
        ForeignCa {
            site: self.site.clone(),
            ca: self.der(),
        }
    }

    /// A certificate of this site's own principal `name`.
    fn issue(&self, kind: PrincipalKind, name: &str) -> TlsMaterial {
        self.issue_claiming(&self.site, kind, name)
    }

    /// A certificate signed by this CA whose SPIFFE URI names `site`, which
    /// need not be ours: what a rogue or careless CA would produce.
    fn issue_claiming(&self, site: &str, kind: PrincipalKind, name: &str) -> TlsMaterial {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        let uri = spiffe_uri(site, kind, name);
        params.subject_alt_names = vec![SanType::URI(uri.try_into().expect("URI"))];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        match kind {
            PrincipalKind::Node => {
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ];
                params
                    .subject_alt_names
                    .push(SanType::IpAddress(LOOPBACK.parse().expect("IP")));
            }
            PrincipalKind::Admin => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        TlsMaterial::from_pem(&self.issuer.pem(), &cert.pem(), &key.serialize_pem())
            .expect("material")
    }
}

/// Which side of an in-memory handshake refused, and why.
#[derive(Debug)]
enum Refused {
    ByServer(rustls::Error),
    ByClient(rustls::Error),
}

impl Refused {
    fn by_server(self) -> rustls::Error {
        match self {
            Refused::ByServer(e) => e,
            Refused::ByClient(e) => panic!("expected the server to refuse, the client did: {e}"),
        }
    }

    fn by_client(self) -> rustls::Error {
        match self {
            Refused::ByClient(e) => e,
            Refused::ByServer(e) => panic!("expected the client to refuse, the server did: {e}"),
        }
    }
}

/// Moves everything `from` has to send into `to`, processing it as it goes.
fn transfer(
    from: &mut rustls::Connection,
    to: &mut rustls::Connection,
) -> Result<bool, rustls::Error> {
    let mut moved = false;
    while from.wants_write() {
        let mut wire = Vec::new();
        from.write_tls(&mut wire).expect("write to a Vec");
        let mut rest = wire.as_slice();
        while !rest.is_empty() {
            to.read_tls(&mut rest).expect("read from a slice");
            to.process_new_packets()?;
            moved = true;
        }
    }
    Ok(moved)
}

/// Runs a TLS handshake in memory to `127.0.0.1`; on success returns the
/// identity the server derived from the client certificate, if one was sent.
fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
) -> Result<Option<PeerIdentity>, Refused> {
    let name = ServerName::try_from(LOOPBACK).expect("server name");
    let mut c: rustls::Connection = ClientConnection::new(client, name)
        .expect("client connection")
        .into();
    let mut s: rustls::Connection = ServerConnection::new(server)
        .expect("server connection")
        .into();
    while c.is_handshaking() || s.is_handshaking() {
        let to_server = transfer(&mut c, &mut s).map_err(Refused::ByServer)?;
        let to_client = transfer(&mut s, &mut c).map_err(Refused::ByClient)?;
        assert!(to_server || to_client, "handshake stalled");
    }
    Ok(s.peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| identity_from_der(cert).expect("accepted certificates carry an identity")))
}

fn refusal(err: &rustls::Error) -> &CertRefusal {
    CertRefusal::from_rustls(err).unwrap_or_else(|| panic!("not a CertRefusal: {err}"))
}

/// Two federated sites and an outsider, with a core node each.
struct World {
    a: TestCa,
    b: TestCa,
    c: TestCa,
    a_node: TlsMaterial,
    b_node: TlsMaterial,
}

fn world() -> World {
    let a = TestCa::new("site-a");
    let b = TestCa::new("site-b");
    let c = TestCa::new("site-c");
    World {
        a_node: a.issue(PrincipalKind::Node, "core-a"),
        b_node: b.issue(PrincipalKind::Node, "core-b"),
        a,
        b,
        c,
    }
}

fn server_trusting(node: &TlsMaterial, foreign: &[ForeignCa]) -> Arc<ServerConfig> {
    node.server_config_with_foreign(&RevocationSet::new(), foreign)
        .expect("server config")
}

/// The client config with which `client`, a node of another site, calls
/// `server`: it trusts the server's CA only.
fn calling(client: &TlsMaterial, server: &TlsMaterial) -> Arc<ClientConfig> {
    client
        .client_config_for_foreign(&server.ca)
        .expect("client config")
}

#[test]
fn a_node_of_a_trusted_site_is_admitted_as_that_site() {
    let w = world();
    let server = server_trusting(&w.a_node, &[w.b.foreign()]);
    let peer = handshake(calling(&w.b_node, &w.a_node), server)
        .expect("accepted")
        .expect("client certificate seen");
    assert_eq!(
        (peer.kind, peer.site.as_str(), peer.name.as_str()),
        (PrincipalKind::Node, "site-b", "core-b")
    );
}

#[test]
fn a_node_of_an_untrusted_site_is_refused() {
    let w = world();
    for foreign in [vec![], vec![w.c.foreign()]] {
        let server = server_trusting(&w.a_node, &foreign);
        let err = handshake(calling(&w.b_node, &w.a_node), server)
            .expect_err("refused")
            .by_server();
        assert_eq!(
            refusal(&err),
            &CertRefusal::UntrustedSite {
                site: "site-b".into()
            }
        );
    }
}

#[test]
fn a_ca_vouches_for_its_own_site_only() {
    let w = world();
    let server = server_trusting(&w.a_node, &[w.b.foreign(), w.c.foreign()]);

    // B's CA passing off one of its certificates as a node of ours: checked
    // against our CA, which did not sign it.
    let as_ours =
        w.b.issue_claiming("site-a", PrincipalKind::Node, "impostor");
    let err = handshake(calling(&as_ours, &w.a_node), Arc::clone(&server))
        .expect_err("refused")
        .by_server();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{err}"
    );

    // ... or as a node of C, which we trust too: checked against C's CA.
    let as_c =
        w.b.issue_claiming("site-c", PrincipalKind::Node, "impostor");
    let err = handshake(calling(&as_c, &w.a_node), Arc::clone(&server))
        .expect_err("refused")
        .by_server();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{err}"
    );

    // ... or as a node of a site nobody trusts.
    let as_d =
        w.b.issue_claiming("site-d", PrincipalKind::Node, "impostor");
    let err = handshake(calling(&as_d, &w.a_node), Arc::clone(&server))
        .expect_err("refused")
        .by_server();
    assert_eq!(
        refusal(&err),
        &CertRefusal::UntrustedSite {
            site: "site-d".into()
        }
    );

    // The binding holds the other way round: our own CA cannot vouch for B.
    let ours_as_b =
        w.a.issue_claiming("site-b", PrincipalKind::Node, "impostor");
    let err = handshake(calling(&ours_as_b, &w.a_node), server)
        .expect_err("refused")
        .by_server();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{err}"
    );
}

#[test]
fn administrators_of_a_trusted_site_are_refused() {
    let w = world();
    let server = server_trusting(&w.a_node, &[w.b.foreign()]);
    let b_admin = w.b.issue(PrincipalKind::Admin, "alice");
    let err = handshake(calling(&b_admin, &w.a_node), server)
        .expect_err("refused")
        .by_server();
    assert_eq!(
        refusal(&err),
        &CertRefusal::ForeignNotNode {
            site: "site-b".into(),
            kind: PrincipalKind::Admin
        }
    );
}

#[test]
fn own_site_certificates_still_work_and_revoked_ones_are_refused() {
    let w = world();
    let revoked = RevocationSet::new();
    let server = w
        .a_node
        .server_config_with_foreign(&revoked, &[w.b.foreign()])
        .expect("server config");
    let own_node = w.a.issue(PrincipalKind::Node, "worker-a");
    let own_admin = w.a.issue(PrincipalKind::Admin, "root");
    for material in [&own_node, &own_admin] {
        let config = material.client_config(&revoked).expect("client config");
        let peer = handshake(config, Arc::clone(&server))
            .expect("accepted")
            .expect("client certificate seen");
        assert_eq!(peer.site, "site-a");
    }
    // A client without a certificate still gets through (enrollment).
    let anonymous = xtreem_net::tls::anonymous_client_config(&w.a.der()).expect("config");
    assert_eq!(
        handshake(anonymous, Arc::clone(&server)).expect("accepted"),
        None
    );

    // The set is live: revoking after the config was built takes effect.
    let serial = identity_from_der(&own_node.cert).expect("identity").serial;
    revoked.replace(1, [serial]);
    let config = own_node.client_config(&revoked).expect("client config");
    let err = handshake(config, Arc::clone(&server))
        .expect_err("refused")
        .by_server();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::Revoked)
        ),
        "{err}"
    );
    // Our list is about our serials only; B's nodes are unaffected.
    let peer = handshake(calling(&w.b_node, &w.a_node), Arc::clone(&server))
        .expect("accepted")
        .expect("client certificate seen");
    assert_eq!(peer.site, "site-b");

    // The foreign-less config is the same verifier with no foreign CA.
    let plain = w.a_node.server_config(&revoked).expect("server config");
    let config = own_admin.client_config(&revoked).expect("client config");
    assert!(handshake(config, Arc::clone(&plain)).is_ok());
    let err = handshake(calling(&w.b_node, &w.a_node), plain)
        .expect_err("refused")
        .by_server();
    assert!(matches!(refusal(&err), CertRefusal::UntrustedSite { .. }));
}

#[test]
fn foreign_client_config_trusts_the_foreign_ca_only() {
    let w = world();
    // B trusts A; A's node calls B's node with B's CA.
    let b_server = server_trusting(&w.b_node, &[w.a.foreign()]);
    let client = w
        .a_node
        .client_config_for_foreign(&w.b.der())
        .expect("client config");
    let peer = handshake(Arc::clone(&client), b_server)
        .expect("accepted")
        .expect("client certificate seen");
    assert_eq!(peer.site, "site-a");

    // A server of a third CA cannot answer in B's place ...
    let c_node = w.c.issue(PrincipalKind::Node, "core-c");
    let c_server = server_trusting(&c_node, &[w.a.foreign()]);
    let err = handshake(Arc::clone(&client), c_server)
        .expect_err("refused")
        .by_client();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{err}"
    );
    // ... nor can a node of our own site.
    let a_server = server_trusting(&w.a_node, &[]);
    let err = handshake(client, a_server)
        .expect_err("refused")
        .by_client();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{err}"
    );
}

#[test]
fn foreign_client_config_for_a_site_checks_the_server_names_it() {
    let w = world();
    let client = w
        .a_node
        .client_config_for_foreign_site("site-b", &[w.c.foreign(), w.b.foreign()])
        .expect("client config");
    let b_server = server_trusting(&w.b_node, &[w.a.foreign()]);
    assert!(handshake(Arc::clone(&client), b_server).is_ok());

    let misnamed = w.b.issue_claiming("site-c", PrincipalKind::Node, "core-b");
    let server = server_trusting(&misnamed, &[w.a.foreign()]);
    let err = handshake(client, server).expect_err("refused").by_client();
    assert_eq!(
        refusal(&err),
        &CertRefusal::WrongSite {
            expected: "site-b".into(),
            found: "site-c".into()
        }
    );

    // The CA listed for C is not trusted for B: a node of C cannot answer.
    let c_node = w.c.issue(PrincipalKind::Node, "core-c");
    let client = w
        .a_node
        .client_config_for_foreign_site("site-b", &[w.c.foreign(), w.b.foreign()])
        .expect("client config");
    let err = handshake(client, server_trusting(&c_node, &[w.a.foreign()]))
        .expect_err("refused")
        .by_client();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{err}"
    );

    let err = w
        .a_node
        .client_config_for_foreign_site("site-d", &[w.b.foreign()])
        .expect_err("no CA for site-d");
    assert!(matches!(err, NetError::Material(_)), "{err}");
}

#[test]
fn a_foreign_ca_cannot_be_trusted_for_our_own_site() {
    let w = world();
    for site in ["site-a", ""] {
        let foreign = ForeignCa {
            site: site.into(),
            ca: w.b.der(),
        };
        let err = w
            .a_node
            .server_config_with_foreign(&RevocationSet::new(), &[foreign])
            .expect_err("refused");
        assert!(matches!(err, NetError::Material(_)), "{err}");
    }
}

#[test]
fn a_site_may_be_trusted_with_several_cas() {
    let w = world();
    // B rolls its CA over: both the old and the new one are trusted for B.
    let b_new = TestCa::new("site-b");
    let server = server_trusting(&w.a_node, &[w.b.foreign(), b_new.foreign()]);
    for node in [&w.b_node, &b_new.issue(PrincipalKind::Node, "core-b2")] {
        let peer = handshake(calling(node, &w.a_node), Arc::clone(&server))
            .expect("accepted")
            .expect("client certificate seen");
        assert_eq!(peer.site, "site-b");
    }
}

#[test]
fn foreign_ca_from_pem() {
    let b = TestCa::new("site-b");
    let parsed = ForeignCa::from_pem("site-b", &b.issuer.pem()).expect("PEM");
    assert_eq!(parsed, b.foreign());
    assert!(ForeignCa::from_pem("site-b", "not PEM").is_err());
}

/// A's node calls B's node over loopback through B's real accept loop, the
/// way the node wires it; B's RPC layer sees a node of site A.
#[tokio::test]
async fn federated_nodes_handshake_over_loopback() {
    let w = world();
    let listener = TcpListener::bind((LOOPBACK, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let handle = ServerConfigHandle::new(server_trusting(&w.b_node, &[w.a.foreign()]));
    let mut incoming = TlsAcceptor::incoming(
        listener,
        handle.clone(),
        Arc::new(TransportStats::default()),
    );

    let connect = |config: Arc<ClientConfig>| async move {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(LOOPBACK).expect("server name");
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        // In TLS 1.3 a refusal of the client certificate arrives after the
        // client's side of the handshake is done: exchange a byte to see it.
        tls.write_all(b"?").await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        Ok::<_, std::io::Error>(tls)
    };

    let client = w
        .a_node
        .client_config_for_foreign_site("site-b", &[w.c.foreign(), w.b.foreign()])
        .expect("client config");
    let (conn, tls) = tokio::join!(
        async {
            let mut conn = incoming.next().await.expect("a connection").expect("TLS");
            let info = conn.connect_info();
            let mut byte = [0u8; 1];
            conn.read_exact(&mut byte).await.expect("read");
            conn.write_all(b"!").await.expect("write");
            info
        },
        connect(client)
    );
    tls.expect("A reaches B");
    let peer = conn.peer.expect("client certificate seen");
    assert_eq!(
        (peer.site.as_str(), peer.name.as_str()),
        ("site-a", "core-a")
    );

    // Once B no longer trusts A, new connections from A are refused.
    handle.replace(server_trusting(&w.b_node, &[]));
    let client = w
        .a_node
        .client_config_for_foreign(&w.b.der())
        .expect("client config");
    assert!(connect(client).await.is_err());
}
