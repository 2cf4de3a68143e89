//! Logins against a real OpenLDAP slapd, one server per test: the right
//! password is accepted, everything else is refused with the right error,
//! and the checks that must happen before any network traffic do.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use xtreem_ldapauth::testing::Slapd;
use xtreem_ldapauth::{LdapAuthError, LdapAuthenticator, LdapConfig};

const BASE: &str = "dc=example,dc=org";
const TEMPLATE: &str = "uid={user},ou=people,dc=example,dc=org";

async fn server() -> Slapd {
    Slapd::start(BASE, &[("alice", "alice-secret"), ("bob", "hunter2")])
        .await
        .expect("slapd starts (apt-get install slapd ldap-utils)")
}

fn authenticator(url: &str) -> LdapAuthenticator {
    let mut config = LdapConfig::new(url, TEMPLATE);
    config.timeout = Duration::from_millis(500);
    LdapAuthenticator::new(config).unwrap()
}

/// A port that is listened on but never accepted from: any connection
/// attempt completes in the kernel and shows up in the backlog, so a test
/// can tell whether the authenticator tried to reach it.
fn witness() -> (TcpListener, String) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let url = format!("ldap://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn assert_never_contacted(listener: &TcpListener) {
    listener.set_nonblocking(true).unwrap();
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the server was contacted from {peer}"),
        Err(e) => panic!("accept failed: {e}"),
    }
}

#[tokio::test]
async fn correct_password_logs_in() {
    let slapd = server().await;
    let ldap = LdapAuthenticator::new(slapd.config()).unwrap();
    let who = ldap.authenticate("alice", "alice-secret").await.unwrap();
    assert_eq!(who.user, "alice");
    assert_eq!(who.dn, "uid=alice,ou=people,dc=example,dc=org");
    // The same authenticator serves later logins, each on its own connection.
    let who = ldap.authenticate("bob", "hunter2").await.unwrap();
    assert_eq!(who.dn, "uid=bob,ou=people,dc=example,dc=org");
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let slapd = server().await;
    let ldap = LdapAuthenticator::new(slapd.config()).unwrap();
    for password in ["wrong", "alice-secret ", "ALICE-SECRET", "hunter2"] {
        let err = ldap.authenticate("alice", password).await.unwrap_err();
        assert!(matches!(err, LdapAuthError::InvalidCredentials), "{err}");
        assert_eq!(err.to_string(), "wrong user name or password");
    }
    // A refusal leaves nothing behind: the right password still works.
    ldap.authenticate("alice", "alice-secret").await.unwrap();
}

#[tokio::test]
async fn unknown_user_is_refused_like_a_wrong_password() {
    let slapd = server().await;
    let ldap = LdapAuthenticator::new(slapd.config()).unwrap();
    let unknown = ldap
        .authenticate("mallory", "alice-secret")
        .await
        .unwrap_err();
    let wrong = ldap.authenticate("alice", "nope").await.unwrap_err();
    assert!(
        matches!(unknown, LdapAuthError::InvalidCredentials),
        "{unknown}"
    );
    assert_eq!(unknown.to_string(), wrong.to_string());
}

#[tokio::test]
async fn empty_password_is_refused_before_contacting_the_server() {
    let (listener, url) = witness();
    let err = authenticator(&url)
        .authenticate("alice", "")
        .await
        .unwrap_err();
    assert!(matches!(err, LdapAuthError::EmptyPassword), "{err}");
    assert_never_contacted(&listener);

    // The same against a real server. slapd would answer an empty bind with
    // "unwilling to perform", but other servers (Active Directory among
    // them) answer success, so the question must never be asked.
    let slapd = server().await;
    let ldap = LdapAuthenticator::new(slapd.config()).unwrap();
    let err = ldap.authenticate("alice", "").await.unwrap_err();
    assert!(matches!(err, LdapAuthError::EmptyPassword), "{err}");
}

#[tokio::test]
async fn user_names_with_dn_or_filter_metacharacters_are_refused() {
    let (listener, url) = witness();
    let ldap = authenticator(&url);
    for user in [
        "alice,ou=admins",
        "alice,ou=people,dc=example,dc=org",
        "*)(uid=*",
        "*",
        "alice+uid=bob",
        "alice\\,ou=admins",
        "alice;x",
        "alice\0",
        "",
        " alice",
        "#616c696365",
    ] {
        let err = ldap.authenticate(user, "alice-secret").await.unwrap_err();
        assert!(
            matches!(err, LdapAuthError::InvalidUserName { .. }),
            "{user:?}: {err}"
        );
    }
    let long = "a".repeat(xtreem_ldapauth::USER_NAME_MAX_BYTES + 1);
    let err = ldap.authenticate(&long, "x").await.unwrap_err();
    assert!(
        matches!(err, LdapAuthError::InvalidUserName { .. }),
        "{err}"
    );
    assert_never_contacted(&listener);

    // A real server would have accepted the injected DN's password check for
    // alice; the refusal comes first.
    let slapd = server().await;
    let ldap = LdapAuthenticator::new(slapd.config()).unwrap();
    let err = ldap
        .authenticate("alice,ou=people,dc=example,dc=org", "alice-secret")
        .await
        .unwrap_err();
    assert!(
        matches!(err, LdapAuthError::InvalidUserName { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn server_down_is_reported_as_unreachable_with_its_url() {
    // A server that ran and was stopped: its port is closed now.
    let slapd = server().await;
    let url = slapd.url();
    drop(slapd);
    let err = authenticator(&url)
        .authenticate("alice", "alice-secret")
        .await
        .unwrap_err();
    assert!(matches!(err, LdapAuthError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Connections complete in the kernel's backlog, but nothing reads them.
    let (_listener, url) = witness();
    let started = std::time::Instant::now();
    let err = authenticator(&url)
        .authenticate("alice", "alice-secret")
        .await
        .unwrap_err();
    assert!(matches!(err, LdapAuthError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn tls_settings_are_refused_until_supported() {
    let ldaps = LdapConfig::new("ldaps://127.0.0.1:636", TEMPLATE);
    let err = LdapAuthenticator::new(ldaps).unwrap_err();
    assert!(matches!(err, LdapAuthError::TlsUnsupported { .. }), "{err}");
}
