//! `xosd`'s TOML config, parsed in two stages: serde reads the raw file
//! (unknown keys and bad values are refused with their line), then
//! [`NodeConfig::validate`] checks how the keys fit together.
//!
//! ```toml
//! name = "node-1"
//! data_dir = "/var/lib/xtreem"
//! roles = ["core", "resource", "client"]
//!
//! [listen]
//! rpc = "127.0.0.1:7100"       # TLS gRPC for nodes and the CLI
//! http = "127.0.0.1:9100"      # /healthz, /readyz, /metrics (plain HTTP, keep it local)
//! advertise = "127.0.0.1:7100" # how others reach rpc, if it differs
//!
//! [join]                       # members only: where the site authority listens
//! core = "127.0.0.1:7100"
//! token = "xjt1...."           # or token_file = "/path"; or XOSD_JOIN_TOKEN
//!
//! [site]                       # used by the node that holds the site CA
//! node_cert_lifetime = "24h"
//!
//! [fabric]
//! heartbeat_interval = "2s"
//!
//! [directory]                  # what this node publishes about itself
//! tags = ["gpu"]               # admin tags, matched by `tag:gpu`
//! labels = { rack = "r12" }    # matched by `label:rack==r12`
//! sample_interval = "2s"       # dynamic attributes (load, free memory...)
//!
//! [jobs]                       # resource nodes: what jobs may use here
//! cores = 8                    # default: the machine's cores (more oversubscribes)
//! memory = "16GiB"             # default: the machine's memory
//! state_dir = "/run/xtreem/n1"  # units' state; default: a tmpfs (/run, /dev/shm)
//! retention = "7d"             # ended jobs, units and reservations are then forgotten
//! ```
//!
//! `[listen] gossip` is the UDP address of the site's gossip (default: the
//! RPC address with port + 1).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;
use xtreem_util::limits::{NODE_CERT_LIFETIME_MAX, NODE_CERT_LIFETIME_MIN};
use xtreem_util::names::NodeName;
use xtreem_util::roles::Role;

/// A config that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}{location}: {message}")]
pub struct ConfigError {
    pub path: String,
    /// `:LINE:COL` and the key, when known.
    pub location: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: NodeName,
    data_dir: PathBuf,
    roles: Spanned<Vec<Role>>,
    listen: RawListen,
    join: Option<Spanned<RawJoin>>,
    #[serde(default)]
    site: RawSite,
    #[serde(default)]
    fabric: RawFabric,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    accounts: RawAccounts,
    #[serde(default)]
    directory: RawDirectory,
    #[serde(default)]
    jobs: RawJobs,
    #[serde(default)]
    runtime: RawRuntime,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    worker_threads: Option<Spanned<u32>>,
}

/// Async worker threads when the config does not say: enough for the
/// daemon's own work on a node whose cores are for jobs.
pub const DEFAULT_WORKER_THREADS: usize = 2;
/// The most async worker threads a config may ask for.
pub const WORKER_THREADS_MAX: u32 = 256;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobs {
    cores: Option<Spanned<u32>>,
    memory: Option<Spanned<String>>,
    state_dir: Option<Spanned<PathBuf>>,
    #[serde(default, deserialize_with = "optional_duration_spanned")]
    retention: Option<Spanned<Duration>>,
}

/// How long ended things are kept when the config does not say.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What units may use on a resource node; None is the machine's own.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub cores: Option<u32>,
    pub memory_bytes: Option<u64>,
    /// Where the executor keeps its units' state; None: a tmpfs when the
    /// machine has one (`xtreem_exec::state_dir_for`).
    pub state_dir: Option<PathBuf>,
    /// How long this node keeps ended jobs (as their home), the records of
    /// ended units whose home has them (as a resource node) and ended
    /// reservations, before forgetting them; usage records stay.
    pub retention: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            cores: None,
            memory_bytes: None,
            state_dir: None,
            retention: DEFAULT_RETENTION,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    tags: Option<Spanned<Vec<String>>>,
    labels: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    #[serde(default, deserialize_with = "optional_duration_spanned")]
    sample_interval: Option<Spanned<Duration>>,
}

fn optional_duration_spanned<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Spanned<Duration>>, D::Error> {
    duration(d).map(Some)
}

/// What a node publishes about itself in the directory.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    pub tags: std::collections::BTreeSet<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// How often dynamic attributes are sampled and pushed (at most 5 s, so
    /// the directory is never more than 5 s stale).
    pub sample_interval: Duration,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    ldap_url: Option<String>,
    ldap_user_dn_template: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    uid_min: Option<u32>,
    uid_max: Option<u32>,
    gid_min: Option<u32>,
    gid_max: Option<u32>,
    #[serde(default, deserialize_with = "optional_duration")]
    idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    quarantine: Option<Duration>,
    scratch_root: Option<PathBuf>,
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(|s| Some(s.into_inner()))
}

/// Dynamic account pool settings; `None` keeps the default.
#[derive(Debug, Clone, Default)]
pub struct AccountsConfig {
    pub uid_min: Option<u32>,
    pub uid_max: Option<u32>,
    pub gid_min: Option<u32>,
    pub gid_max: Option<u32>,
    pub idle_timeout: Option<Duration>,
    pub quarantine: Option<Duration>,
    pub scratch_root: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    rpc: SocketAddr,
    http: SocketAddr,
    gossip: Option<SocketAddr>,
    advertise: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJoin {
    core: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    #[serde(default = "default_cert_lifetime", deserialize_with = "duration")]
    node_cert_lifetime: Spanned<Duration>,
}

impl Default for RawSite {
    fn default() -> Self {
        RawSite {
            node_cert_lifetime: default_cert_lifetime(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFabric {
    #[serde(default = "default_heartbeat", deserialize_with = "duration")]
    heartbeat_interval: Spanned<Duration>,
}

impl Default for RawFabric {
    fn default() -> Self {
        RawFabric {
            heartbeat_interval: default_heartbeat(),
        }
    }
}

fn default_cert_lifetime() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(24 * 3600))
}

fn default_heartbeat() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(2))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Spanned<Duration>, D::Error> {
    let raw = Spanned::<String>::deserialize(d)?;
    let span = raw.span();
    humantime::parse_duration(raw.get_ref())
        .map(|v| Spanned::new(span, v))
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "expected a duration such as \"30s\", \"5m\" or \"24h\": {e}"
            ))
        })
}

/// Where a joining node finds its site.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// `host:port` of the site authority's RPC listener.
    pub core: String,
    pub token: Option<String>,
}

/// A validated node config.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: NodeName,
    pub data_dir: PathBuf,
    pub roles: Vec<Role>,
    pub listen_rpc: SocketAddr,
    pub listen_http: SocketAddr,
    /// UDP address of the site gossip.
    pub listen_gossip: SocketAddr,
    /// How others reach the RPC port; `None` means "the bound address".
    pub advertise: Option<String>,
    pub join: Option<JoinConfig>,
    pub node_cert_lifetime: Duration,
    pub heartbeat_interval: Duration,
    /// LDAP simple-bind login, as a second backend beside local accounts.
    pub ldap: Option<xtreem_ldapauth::LdapConfig>,
    pub accounts: AccountsConfig,
    pub directory: DirectoryConfig,
    /// What jobs may use on this node.
    pub jobs: JobsConfig,
    /// Threads of the daemon's async runtime (`[runtime] worker_threads`);
    /// 1 runs every task on the daemon's main thread (tokio's current-thread
    /// runtime). Several daemons sharing one machine (a test grid) are
    /// cheaper with one each: no work stealing, no wake-ups across threads.
    /// Blocking work (stores, password hashes, file trees) has its own
    /// threads either way.
    pub worker_threads: usize,
}

impl NodeConfig {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            location: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<NodeConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let location = e.span().map(|s| locate(text, s.start)).unwrap_or_default();
            ConfigError {
                path: origin.to_owned(),
                location,
                message: e.message().to_owned(),
            }
        })?;
        let refuse = |span: std::ops::Range<usize>, message: String| ConfigError {
            path: origin.to_owned(),
            location: if span.is_empty() {
                String::new()
            } else {
                locate(text, span.start)
            },
            message,
        };

        let roles_span = raw.roles.span();
        let mut roles = raw.roles.into_inner();
        if roles.is_empty() {
            return Err(refuse(
                roles_span,
                "expected at least one of \"core\", \"resource\", \"client\"".into(),
            ));
        }
        roles.sort();
        roles.dedup();

        let join = match raw.join {
            Some(join) => {
                let span = join.span();
                let join = join.into_inner();
                let token = match (join.token, join.token_file) {
                    (Some(_), Some(_)) => {
                        return Err(refuse(
                            span,
                            "give either token or token_file, not both".into(),
                        ));
                    }
                    (Some(t), None) => Some(t),
                    (None, Some(file)) => Some(
                        std::fs::read_to_string(&file)
                            .map(|t| t.trim().to_owned())
                            .map_err(|e| {
                                refuse(
                                    span.clone(),
                                    format!("cannot read token_file {}: {e}", file.display()),
                                )
                            })?,
                    ),
                    (None, None) => None,
                };
                Some(JoinConfig {
                    core: join.core,
                    token,
                })
            }
            None => None,
        };
        if join.is_none() && !roles.contains(&Role::Core) {
            return Err(ConfigError {
                path: origin.to_owned(),
                location: String::new(),
                message: "a node without the core role needs a [join] table with `core = \"HOST:PORT\"` of its site's core node".into(),
            });
        }

        let advertise = match raw.listen.advertise {
            Some(a) => {
                let span = a.span();
                let a = a.into_inner();
                if a.rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    return Err(refuse(
                        span,
                        format!("key `listen.advertise`: expected HOST:PORT, got {a:?}"),
                    ));
                }
                Some(a)
            }
            None if raw.listen.rpc.ip().is_unspecified() => {
                return Err(ConfigError {
                    path: origin.to_owned(),
                    location: String::new(),
                    message: format!(
                        "listen.rpc is {}, which others cannot dial: set `advertise = \"HOST:PORT\"` in [listen]",
                        raw.listen.rpc
                    ),
                });
            }
            None => None,
        };

        let lifetime_span = raw.site.node_cert_lifetime.span();
        let node_cert_lifetime = raw.site.node_cert_lifetime.into_inner();
        if !(NODE_CERT_LIFETIME_MIN..=NODE_CERT_LIFETIME_MAX).contains(&node_cert_lifetime) {
            return Err(refuse(
                lifetime_span,
                format!(
                    "key `site.node_cert_lifetime`: expected between {} and {}",
                    humantime::format_duration(NODE_CERT_LIFETIME_MIN),
                    humantime::format_duration(NODE_CERT_LIFETIME_MAX)
                ),
            ));
        }
        let hb_span = raw.fabric.heartbeat_interval.span();
        let heartbeat_interval = raw.fabric.heartbeat_interval.into_inner();
        if heartbeat_interval < Duration::from_millis(100)
            || heartbeat_interval > Duration::from_secs(600)
        {
            return Err(refuse(
                hb_span,
                "key `fabric.heartbeat_interval`: expected between 100ms and 10m".into(),
            ));
        }

        let ldap = match (raw.auth.ldap_url, raw.auth.ldap_user_dn_template) {
            (None, None) => None,
            (Some(url), Some(template)) => {
                let c = xtreem_ldapauth::LdapConfig::new(url, template);
                c.validate().map_err(|e| ConfigError {
                    path: origin.to_owned(),
                    location: String::new(),
                    message: format!("[auth]: {e}"),
                })?;
                Some(c)
            }
            _ => {
                return Err(ConfigError {
                    path: origin.to_owned(),
                    location: String::new(),
                    message: "[auth] needs both ldap_url and ldap_user_dn_template (e.g. \"uid={user},ou=people,dc=example,dc=org\")".into(),
                });
            }
        };
        let accounts = AccountsConfig {
            uid_min: raw.accounts.uid_min,
            uid_max: raw.accounts.uid_max,
            gid_min: raw.accounts.gid_min,
            gid_max: raw.accounts.gid_max,
            idle_timeout: raw.accounts.idle_timeout,
            quarantine: raw.accounts.quarantine,
            scratch_root: raw.accounts.scratch_root,
        };

        let directory = directory_config(raw.directory, &refuse)?;
        let jobs = JobsConfig {
            cores: match raw.jobs.cores {
                Some(c) if !(1..=65_536).contains(c.get_ref()) => {
                    return Err(refuse(
                        c.span(),
                        format!(
                            "key `jobs.cores`: expected 1 to 65536 cores, got {}",
                            c.get_ref()
                        ),
                    ));
                }
                c => c.map(Spanned::into_inner),
            },
            memory_bytes: match raw.jobs.memory {
                Some(m) => {
                    Some(xtreem_job::parse_size(m.get_ref()).map_err(|e| {
                        refuse(m.span(), format!("key `jobs.memory`: {}", e.message))
                    })?)
                }
                None => None,
            },
            state_dir: match raw.jobs.state_dir {
                Some(d) if !d.get_ref().is_absolute() => {
                    return Err(refuse(
                        d.span(),
                        format!(
                            "key `jobs.state_dir`: expected an absolute path, got {:?}",
                            d.get_ref()
                        ),
                    ));
                }
                d => d.map(Spanned::into_inner),
            },
            retention: match raw.jobs.retention {
                Some(r) if *r.get_ref() < Duration::from_secs(1) => {
                    return Err(refuse(
                            r.span(),
                            "key `jobs.retention`: expected at least \"1s\" (ended jobs are kept that long)".to_owned(),
                        ));
                }
                Some(r) => r.into_inner(),
                None => DEFAULT_RETENTION,
            },
        };
        let worker_threads = match raw.runtime.worker_threads {
            Some(n) if !(1..=WORKER_THREADS_MAX).contains(n.get_ref()) => {
                return Err(refuse(
                    n.span(),
                    format!(
                        "key `runtime.worker_threads`: expected 1 to {WORKER_THREADS_MAX} threads, got {}",
                        n.get_ref()
                    ),
                ));
            }
            Some(n) => n.into_inner() as usize,
            None => DEFAULT_WORKER_THREADS,
        };
        let listen_gossip = raw.listen.gossip.unwrap_or_else(|| {
            let port = match raw.listen.rpc.port() {
                0 => 0,
                p => p.wrapping_add(1),
            };
            SocketAddr::new(raw.listen.rpc.ip(), port)
        });

        Ok(NodeConfig {
            listen_gossip,
            directory,
            jobs,
            ldap,
            accounts,
            name: raw.name,
            data_dir: raw.data_dir,
            roles,
            listen_rpc: raw.listen.rpc,
            listen_http: raw.listen.http,
            advertise,
            join,
            node_cert_lifetime,
            heartbeat_interval,
            worker_threads,
        })
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

fn directory_config(
    raw: RawDirectory,
    refuse: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<DirectoryConfig, ConfigError> {
    let (span, tags) = raw
        .tags
        .map(|t| (t.span(), t.into_inner()))
        .unwrap_or_default();
    if tags.len() > 64 {
        return Err(refuse(span, "key `directory.tags`: at most 64 tags".into()));
    }
    if let Some(bad) = tags.iter().find(|t| !is_word(t)) {
        return Err(refuse(
            span,
            format!(
                "key `directory.tags`: {bad:?} is not a tag (lowercase letters, digits, - and _, at most 63)"
            ),
        ));
    }
    let (span, labels) = raw
        .labels
        .map(|l| (l.span(), l.into_inner()))
        .unwrap_or_default();
    if labels.len() > 64 {
        return Err(refuse(
            span,
            "key `directory.labels`: at most 64 labels".into(),
        ));
    }
    for (key, value) in &labels {
        if !is_word(key) {
            return Err(refuse(
                span.clone(),
                format!(
                    "key `directory.labels`: {key:?} is not a label key (lowercase letters, digits, - and _, at most 63)"
                ),
            ));
        }
        if value.len() > 256 || value.chars().any(char::is_control) {
            return Err(refuse(
                span.clone(),
                format!("key `directory.labels.{key}`: values are printable and at most 256 bytes"),
            ));
        }
    }
    let sample_interval = match raw.sample_interval {
        None => Duration::from_secs(2),
        Some(v) => {
            let span = v.span();
            let v = v.into_inner();
            if v < Duration::from_millis(100) || v > Duration::from_secs(5) {
                return Err(refuse(
                    span,
                    "key `directory.sample_interval`: expected between 100ms and 5s (the directory must never be more than 5 s stale)".into(),
                ));
            }
            v
        }
    };
    Ok(DirectoryConfig {
        tags: tags.into_iter().collect(),
        labels,
        sample_interval,
    })
}

/// `:LINE:COL (key `table.key`)` for a byte offset in `text`.
fn locate(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    let key = key_at(text, line_start);
    match key {
        Some(k) => format!(":{line}:{col}: key `{k}`"),
        None => format!(":{line}:{col}"),
    }
}

/// The dotted key on the line starting at `line_start`, with its table.
fn key_at(text: &str, line_start: usize) -> Option<String> {
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_owned(),
    })
}

#[cfg(test)]
mod tests;
