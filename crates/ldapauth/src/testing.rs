//! A real OpenLDAP `slapd` for tests, in a scratch directory on a free
//! loopback port, killed when dropped.
//!
//! Test helper, public so that other crates' integration tests can log in
//! through LDAP too; nothing in Xtreem's daemons uses it. It needs the
//! Debian packages `slapd` and `ldap-utils` (`.ci/run` installs them); when
//! they are missing, [`Slapd::start`] fails with a message saying so rather
//! than letting the tests skip.
//!
//! The server is set up the way an operator's would be, only smaller: a
//! `slapd.conf` with the standard schemas and one `mdb` database, entries
//! loaded offline with `slapadd`, passwords stored as `{SSHA}` hashes made
//! by `slappasswd`. It never touches the system's own slapd or its files.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings};

use crate::config::LdapConfig;

/// How long slapd may take to accept a bind. It needs well under a second;
/// the margin is for a loaded CI machine.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between readiness probes.
const READY_POLL: Duration = Duration::from_millis(20);
/// A free port is found by binding port 0 and closing it; another process
/// may take it before slapd binds it, so starting is retried a few times.
const PORT_ATTEMPTS: usize = 5;
/// Where distributions keep the slapd programs, which are often not on a
/// non-root user's PATH.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin"];
/// Where Debian (first) and other distributions keep the schema files.
const SCHEMA_DIRS: &[&str] = &["/etc/ldap/schema", "/etc/openldap/schema"];
/// Where slapd's loadable backends live; back_mdb may also be built in.
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/ldap",
    "/usr/lib64/openldap",
    "/usr/lib/openldap",
    "/usr/libexec/openldap",
];

const INSTALL_HINT: &str = "install it with `apt-get install slapd ldap-utils`";

#[derive(Debug, thiserror::Error)]
pub enum SlapdError {
    #[error("`{program}` not found on PATH or in /usr/sbin: {INSTALL_HINT}")]
    NotInstalled { program: &'static str },
    #[error("no OpenLDAP schema directory found (looked in {SCHEMA_DIRS:?}): {INSTALL_HINT}")]
    NoSchema,
    #[error("cannot use base DN {0:?}: expected attr=value,... starting with dc=, o= or ou=")]
    BadBaseDn(String),
    #[error("cannot create test user {user:?}: {reason}")]
    BadUser { user: String, reason: &'static str },
    #[error("{what} failed: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {output}")]
    Command {
        program: &'static str,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("slapd exited at start ({status}); its log says:\n{log}")]
    Exited {
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("slapd did not accept a bind within {READY_TIMEOUT:?}; its log says:\n{log}")]
    NotReady { log: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SlapdError {
    let what = what.into();
    move |source| SlapdError::Io { what, source }
}

/// A running slapd holding `base_dn`, `ou=people` below it and one
/// `inetOrgPerson` per user, `uid=NAME,ou=people,BASE`. Dropping it kills
/// slapd and deletes its database.
#[derive(Debug)]
pub struct Slapd {
    // Declared before `dir`, so slapd is dead before its directory goes.
    child: KillOnDrop,
    port: u16,
    base_dn: String,
    admin_password: String,
    dir: tempfile::TempDir,
}

impl Slapd {
    /// Starts slapd with the given users (`(name, password)`) and returns
    /// once it has answered a bind.
    pub async fn start(base_dn: &str, users: &[(&str, &str)]) -> Result<Slapd, SlapdError> {
        let slapd = find_program("slapd")?;
        let slapadd = find_program("slapadd")?;
        let slappasswd = find_program("slappasswd")?;
        let base_entry = base_entry(base_dn)?;
        for (user, password) in users {
            check_test_user(user, password)?;
        }

        let dir = tempfile::Builder::new()
            .prefix("xtreem-slapd-")
            .tempdir()
            .map_err(io("creating the slapd scratch directory"))?;
        let db_dir = dir.path().join("db");
        std::fs::create_dir(&db_dir).map_err(io("creating the slapd database directory"))?;

        let admin_dn = format!("cn=admin,{base_dn}");
        let admin_password = random_secret();
        let conf = dir.path().join("slapd.conf");
        let conf_text = slapd_conf(dir.path(), &db_dir, base_dn, &admin_dn, &admin_password)?;
        std::fs::write(&conf, conf_text).map_err(io("writing slapd.conf"))?;

        let mut ldif = base_entry;
        let _ = write!(
            ldif,
            "\ndn: ou=people,{base_dn}\nobjectClass: organizationalUnit\nou: people\n"
        );
        for (user, password) in users {
            let hash = hash_password(&slappasswd, password).await?;
            let _ = write!(
                ldif,
                "\ndn: uid={user},ou=people,{base_dn}\nobjectClass: inetOrgPerson\n\
                 uid: {user}\ncn: {user}\nsn: {user}\nuserPassword: {hash}\n"
            );
        }
        let ldif_path = dir.path().join("data.ldif");
        std::fs::write(&ldif_path, ldif).map_err(io("writing the LDIF"))?;
        // Loading offline is quicker and simpler than ldapadd over the wire,
        // and needs no server yet.
        run(
            "slapadd",
            tokio::process::Command::new(&slapadd)
                .arg("-f")
                .arg(&conf)
                .arg("-l")
                .arg(&ldif_path),
        )
        .await?;

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let mut child = KillOnDrop(spawn_slapd(&slapd, &conf, dir.path(), port)?);
            match wait_ready(&mut child.0, port, dir.path(), &admin_dn, &admin_password).await {
                Ok(()) => {
                    return Ok(Slapd {
                        child,
                        port,
                        base_dn: base_dn.to_owned(),
                        admin_password,
                        dir,
                    });
                }
                Err(e @ SlapdError::Exited { .. }) if e.to_string().contains(PORT_IN_USE) => {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(SlapdError::NotReady { log: String::new() }))
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn base_dn(&self) -> &str {
        &self.base_dn
    }

    /// `uid={user},ou=people,BASE`.
    pub fn user_dn_template(&self) -> String {
        format!("uid={{user}},ou=people,{}", self.base_dn)
    }

    /// A configuration for [`crate::LdapAuthenticator`] that logs in here.
    pub fn config(&self) -> LdapConfig {
        LdapConfig::new(self.url(), self.user_dn_template())
    }

    /// The root DN, which may do anything in this database (for tests that
    /// change entries while the server runs).
    pub fn admin_dn(&self) -> String {
        format!("cn=admin,{}", self.base_dn)
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// slapd's output so far (errors only, at the debug level used).
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// The process id, for tests that signal slapd (SIGSTOP to make it hang).
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// Kills and reaps slapd when dropped, also when `Slapd::start` fails or its
/// future is dropped halfway, so no test leaves a server behind.
#[derive(Debug)]
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SIGKILL: the database is thrown away, so a clean shutdown buys
        // nothing, and it cannot be ignored (nor delayed by SIGSTOP).
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What slapd logs when another process took the port first.
const PORT_IN_USE: &str = "Address already in use";

/// Polls until an admin bind succeeds. An open port alone is not enough:
/// slapd listens a moment before its database is open.
async fn wait_ready(
    child: &mut Child,
    port: u16,
    dir: &Path,
    admin_dn: &str,
    admin_password: &str,
) -> Result<(), SlapdError> {
    let url = format!("ldap://127.0.0.1:{port}");
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(io("checking on slapd"))? {
            return Err(SlapdError::Exited {
                status,
                log: read_log(dir),
            });
        }
        // Connects over TCP first, so a port not yet listening fails fast.
        if bind_ok(&url, admin_dn, admin_password).await {
            return Ok(());
        }
        tokio::time::sleep(READY_POLL).await;
    }
    Err(SlapdError::NotReady { log: read_log(dir) })
}

async fn bind_ok(url: &str, dn: &str, password: &str) -> bool {
    let limit = Duration::from_secs(1);
    let settings = LdapConnSettings::new().set_conn_timeout(limit);
    let Ok((conn, mut ldap)) = LdapConnAsync::with_settings(settings, url).await else {
        return false;
    };
    ldap3::drive!(conn);
    let bound = ldap.with_timeout(limit).simple_bind(dn, password).await;
    let _ = ldap.with_timeout(limit).unbind().await;
    matches!(bound, Ok(result) if result.rc == 0)
}

fn find_program(program: &'static str) -> Result<PathBuf, SlapdError> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(SlapdError::NotInstalled { program })
}

/// The first entry of the LDIF: the base DN itself, whose object class
/// follows from its first attribute.
fn base_entry(base_dn: &str) -> Result<String, SlapdError> {
    let bad = || SlapdError::BadBaseDn(base_dn.to_owned());
    let mut rdns = Vec::new();
    for rdn in base_dn.split(',') {
        let (attr, value) = rdn.split_once('=').ok_or_else(bad)?;
        let attr_ok = !attr.is_empty() && attr.chars().all(|c| c.is_ascii_alphanumeric());
        if !attr_ok || !is_plain(value) {
            return Err(bad());
        }
        rdns.push((attr.to_ascii_lowercase(), value));
    }
    let (attr, value) = rdns.first().ok_or_else(bad)?;
    let entry = match attr.as_str() {
        "dc" => format!(
            "dn: {base_dn}\nobjectClass: dcObject\nobjectClass: organization\ndc: {value}\no: {value}\n"
        ),
        "o" => format!("dn: {base_dn}\nobjectClass: organization\no: {value}\n"),
        "ou" => format!("dn: {base_dn}\nobjectClass: organizationalUnit\nou: {value}\n"),
        _ => return Err(bad()),
    };
    Ok(entry)
}

/// Test users go into LDIF unescaped, so they are kept to characters that
/// need no escaping there or in a DN. slappasswd refuses to hash an empty
/// password, and a user without one could not log in anyway.
fn check_test_user(user: &str, password: &str) -> Result<(), SlapdError> {
    let bad = |reason| {
        Err(SlapdError::BadUser {
            user: user.to_owned(),
            reason,
        })
    };
    if !is_plain(user) {
        return bad("use letters, digits, '.', '-' and '_'");
    }
    if password.is_empty() {
        return bad("the password must not be empty");
    }
    Ok(())
}

/// Whether `value` can go into both a DN and an LDIF line as it is.
fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn slapd_conf(
    dir: &Path,
    db_dir: &Path,
    base_dn: &str,
    admin_dn: &str,
    admin_password: &str,
) -> Result<String, SlapdError> {
    let schema_dir = SCHEMA_DIRS
        .iter()
        .map(Path::new)
        .find(|d| d.join("core.schema").is_file())
        .ok_or(SlapdError::NoSchema)?;
    let mut conf = String::new();
    for schema in ["core", "cosine", "inetorgperson"] {
        let _ = writeln!(
            conf,
            "include {}",
            schema_dir.join(format!("{schema}.schema")).display()
        );
    }
    // Debian builds back_mdb as a module; some builds link it in, and then
    // there is nothing to load.
    if let Some(module_dir) = MODULE_DIRS
        .iter()
        .map(Path::new)
        .find(|d| d.join("back_mdb.la").is_file() || d.join("back_mdb.so").is_file())
    {
        let _ = writeln!(
            conf,
            "modulepath {}\nmoduleload back_mdb",
            module_dir.display()
        );
    }
    // pid and args files default to /var/run, which a non-root test cannot
    // write and which the system slapd uses.
    let _ = writeln!(conf, "pidfile {}", dir.join("slapd.pid").display());
    let _ = writeln!(conf, "argsfile {}", dir.join("slapd.args").display());
    let _ = writeln!(conf, "database mdb");
    // A small map: the mdb file is sparse, but 16 MiB is plenty for tests.
    let _ = writeln!(conf, "maxsize 16777216");
    let _ = writeln!(conf, "suffix \"{base_dn}\"");
    let _ = writeln!(conf, "rootdn \"{admin_dn}\"");
    // Clear text is acceptable here: the file is in a 0700 scratch directory
    // and the password random.
    let _ = writeln!(conf, "rootpw \"{admin_password}\"");
    let _ = writeln!(conf, "directory {}", db_dir.display());
    Ok(conf)
}

async fn hash_password(slappasswd: &Path, password: &str) -> Result<String, SlapdError> {
    let output = run(
        "slappasswd",
        tokio::process::Command::new(slappasswd)
            .arg("-h")
            .arg("{SSHA}")
            .arg("-s")
            .arg(password),
    )
    .await?;
    Ok(output.trim().to_owned())
}

/// Runs a one-shot command and returns its stdout, or an error with its
/// output.
async fn run(
    program: &'static str,
    command: &mut tokio::process::Command,
) -> Result<String, SlapdError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(io(format!("running {program}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(SlapdError::Command {
            program,
            status: output.status,
            output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        })
    }
}

fn free_port() -> Result<u16, SlapdError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port())
}

fn spawn_slapd(slapd: &Path, conf: &Path, dir: &Path, port: u16) -> Result<Child, SlapdError> {
    let log = std::fs::File::create(dir.join("slapd.log")).map_err(io("creating slapd.log"))?;
    let log2 = log.try_clone().map_err(io("opening slapd.log"))?;
    // `-d none` keeps slapd in the foreground, so it stays our child and is
    // killed with us, while printing only errors (to the log file, not a
    // pipe that nobody drains).
    Command::new(slapd)
        .arg("-f")
        .arg(conf)
        .arg("-h")
        .arg(format!("ldap://127.0.0.1:{port}/"))
        .arg("-d")
        .arg("none")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(io("starting slapd"))
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("slapd.log")).unwrap_or_default()
}

/// A password nobody can guess, without a dependency on a random number
/// crate: std seeds each `RandomState` from the operating system.
fn random_secret() -> String {
    (0..2)
        .map(|_| format!("{:016x}", RandomState::new().build_hasher().finish()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_entry_follows_the_first_rdn() {
        let dc = base_entry("dc=example,dc=org").unwrap();
        assert!(
            dc.starts_with("dn: dc=example,dc=org\nobjectClass: dcObject\n"),
            "{dc}"
        );
        assert!(dc.contains("\ndc: example\n"), "{dc}");
        let o = base_entry("o=Grid").unwrap();
        assert!(o.contains("objectClass: organization\no: Grid\n"), "{o}");
        let ou = base_entry("ou=Tests,o=Grid").unwrap();
        assert!(
            ou.contains("objectClass: organizationalUnit\nou: Tests\n"),
            "{ou}"
        );
        for bad in [
            "",
            "example",
            "cn=x,dc=org",
            "dc=a\nb",
            "dc=a,=b",
            "dc=a,dc=b;c",
            "o=a b",
        ] {
            assert!(
                matches!(base_entry(bad), Err(SlapdError::BadBaseDn(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn test_users_are_plain_names_with_passwords() {
        check_test_user("alice.b-2_c", "pw").unwrap();
        for (user, password) in [("", "pw"), ("a b", "pw"), ("a:b", "pw"), ("alice", "")] {
            assert!(check_test_user(user, password).is_err(), "{user:?}");
        }
    }

    #[test]
    fn a_missing_program_says_how_to_install_it() {
        let err = find_program("xtreem-no-such-slapd").unwrap_err();
        assert!(
            err.to_string().contains("apt-get install slapd ldap-utils"),
            "{err}"
        );
    }
}
