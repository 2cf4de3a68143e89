//! One node's life: open the store, bind the listeners, find out whether
//! the node belongs to a site (or join one, or wait for `xos site init`),
//! serve, and stop in order on request.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::transport::{Channel, Server};
use xtreem_net::server::{TlsAcceptor, TransportStats};
use xtreem_proto::fabric as pb;
use xtreem_proto::fabric::enrollment_server::EnrollmentServer;
use xtreem_proto::fabric::fabric_client::FabricClient;
use xtreem_proto::fabric::fabric_server::FabricServer;
use xtreem_proto::fabric::local_admin_server::LocalAdminServer;
use xtreem_proto::fabric::node_admin_server::NodeAdminServer;
use xtreem_security::SecurityError;
use xtreem_store::Store;
use xtreem_util::limits::{RPC_MESSAGE_BYTES_MAX, RPC_TIMEOUT};
use xtreem_util::names::SiteName;
use xtreem_util::roles::Role;

use crate::authority::{Authority, AuthorityParams};
use crate::config::NodeConfig;
use crate::directory::DirectoryState;
use crate::membership::{self, Membership, MembershipCommand, MembershipMachine};
use crate::metrics::Metrics;
use crate::paths::DataDir;
use crate::rpc::admin::NodeAdminService;
use crate::rpc::directory::DirectoryService;
use crate::rpc::enrollment::EnrollmentService;
use crate::rpc::fabric::FabricService;
use crate::rpc::local_admin::LocalAdminService;
use crate::rpc::vo::VoService;
use crate::rpc::{role_to_pb, status};
use crate::tls_state::TlsState;
use crate::vo::authority::VoAuthority;
use crate::vo::trust::{ForeignVos, PolicyEntry, TrustState, TrustedIssuer};
use crate::{http, member, metrics};
use xtreem_accounts::{AccountMapper, PoolConfig};
use xtreem_proto::jobs::job_exec_server::JobExecServer;
use xtreem_proto::jobs::jobs_server::JobsServer;

use crate::jobs::JobsState;
use crate::jobs::resource::{Capacity, ResourceSide};
use crate::rpc::jobs::{JobExecService, JobsService};
use xtreem_audit::{AuditEvent, AuditLog, Decision as AuditDecision};

use crate::audit_writer::AuditWriter;
use xtreem_gossip::{NodeId, NodeKey};
use xtreem_proto::directory::directory_server::DirectoryServer;
use xtreem_proto::vo::vo_server::VoServer;
use xtreem_security::site::{ServedVo, SiteCommand, SiteMachine, TrustedSite};

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A core node with no site yet: waiting for `xos site init`.
    AwaitingSite,
    /// Exchanging a join token for a certificate.
    Enrolling,
    /// Has a certificate and serves RPC.
    Ready,
    /// The site removed this node; it serves nothing until it rejoins.
    Removed,
    Stopping,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::AwaitingSite => "awaiting-site",
            Phase::Enrolling => "enrolling",
            Phase::Ready => "ready",
            Phase::Removed => "removed",
            Phase::Stopping => "stopping",
        }
    }

    pub fn is_ready(self) -> bool {
        self == Phase::Ready
    }
}

/// State shared by the servers, loops and handlers of one node.
pub struct NodeShared {
    pub config: NodeConfig,
    pub data: DataDir,
    pub store: Arc<Store>,
    pub tls: Arc<TlsState>,
    /// How others reach this node's RPC port.
    pub rpc_endpoint: String,
    pub metrics: Metrics,
    authority: RwLock<Option<Arc<Authority>>>,
    membership: RwLock<Option<Membership>>,
    phase: watch::Sender<Phase>,
    /// VO issuers, served VOs and policies this node decides with.
    pub trust: Arc<TrustState>,
    vo_authority: RwLock<Option<Arc<VoAuthority>>>,
    audit_log: Option<AuditWriter>,
    /// Dynamic account mapping (resource nodes).
    pub accounts: Option<Arc<AccountMapper>>,
    /// Gossip membership and the site's descriptors.
    pub directory: Arc<DirectoryState>,
    /// Jobs this node is home of, and units it runs.
    pub jobs: Arc<JobsState>,
}

impl NodeShared {
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.send_if_modified(|p| {
            let changed = *p != phase;
            *p = phase;
            changed
        });
    }

    pub fn authority(&self) -> Option<Arc<Authority>> {
        self.authority.read().ok()?.clone()
    }

    pub fn membership(&self) -> Option<Membership> {
        self.membership.read().ok()?.clone()
    }

    pub fn site_name(&self) -> Option<String> {
        self.membership().map(|m| m.site.to_string())
    }

    pub fn vo_authority(&self) -> Option<Arc<VoAuthority>> {
        self.vo_authority.read().ok()?.clone()
    }

    /// Appends a decision to the node's audit log. A failure is logged
    /// loudly: the decision stands but its record is missing.
    pub fn audit(&self, event: AuditEvent) {
        if let Some(log) = &self.audit_log
            && let Err(e) = log.append(event)
        {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }

    /// As [`audit`](Self::audit), without holding a thread while the disk
    /// works: the record is appended now and the future resolves once it
    /// is on disk (sharing its flush with those appended meanwhile). The
    /// caller awaits it before answering the request.
    pub fn audit_durably(&self, event: AuditEvent) -> impl Future<Output = ()> + Send + 'static {
        let flushed = self.audit_log.as_ref().map(|log| log.append_durably(event));
        async move {
            if let Some(flushed) = flushed
                && let Err(e) = flushed.await
            {
                tracing::error!(error = %e, "cannot append to the audit log");
            }
        }
    }

    /// Starts the VO authority beside the site authority.
    fn start_vo_authority(&self, site: &str) {
        let ldap = self.config.ldap.clone().and_then(|c| {
            match xtreem_ldapauth::LdapAuthenticator::new(c) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::error!(error = %e, "LDAP login disabled: bad [auth] settings");
                    None
                }
            }
        });
        let authority = Arc::new(VoAuthority::new(
            Arc::clone(&self.store),
            self.data.clone(),
            site.to_owned(),
            ldap,
        ));
        if let Ok(mut w) = self.vo_authority.write() {
            *w = Some(authority);
        }
        self.refresh_trust();
    }

    /// On the authority: rebuilds the trust document from the store and
    /// installs it; members fetch it with their next heartbeat.
    pub fn refresh_trust(&self) {
        let Some(authority) = self.vo_authority() else {
            return;
        };
        match authority.trust_document() {
            Ok(doc) => self.trust.install(doc),
            Err(e) => tracing::error!(error = %e.message(), "cannot build the trust document"),
        }
    }

    /// The trust document as JSON, for heartbeats.
    pub fn trust_json(&self) -> String {
        serde_json::to_string(&self.trust.current().doc).unwrap_or_default()
    }

    pub async fn serve_vo(
        &self,
        vo: &str,
        nodes: Vec<String>,
        max_cores: u32,
        stop: bool,
    ) -> Result<(), Status> {
        if self.vo_authority().is_none() {
            return Err(Status::failed_precondition(
                "the site's VO service runs on the site authority; use its endpoint",
            ));
        }
        let known = self.trust.current().doc.issuers.iter().any(|i| i.vo == vo);
        if !stop && !known {
            return Err(Status::not_found(format!(
                "VO {vo} is neither hosted here nor in a trusted site's bundle (see `xos site trust`)"
            )));
        }
        let command = if stop {
            SiteCommand::StopServingVo { vo: vo.to_owned() }
        } else {
            SiteCommand::ServeVo {
                served: ServedVo {
                    vo: vo.to_owned(),
                    nodes,
                    max_cores,
                },
            }
        };
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.execute(&SiteMachine, command))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(status)?;
        self.refresh_trust();
        Ok(())
    }

    /// This site's bundle: its CA and its VOs' issuers and keys.
    pub fn site_bundle(&self) -> Result<String, Status> {
        let vo = self
            .vo_authority()
            .ok_or_else(|| Status::failed_precondition("bundles are made by the site authority"))?;
        let authority = self
            .authority()
            .ok_or_else(|| Status::failed_precondition("bundles are made by the site authority"))?;
        let issuers = vo.own_issuers()?;
        let vo_policies = self
            .trust
            .current()
            .doc
            .policies
            .iter()
            .filter(|p| p.kind == "vo" && issuers.iter().any(|i| i.vo == p.name))
            .cloned()
            .collect();
        let bundle = SiteBundle {
            site: authority.site().to_string(),
            ca_cert_pem: authority.ca_pem().to_owned(),
            issuers,
            vo_policies,
            endpoint: self.rpc_endpoint.clone(),
        };
        serde_json::to_string_pretty(&bundle).map_err(|e| Status::internal(e.to_string()))
    }

    /// Trusts another site's bundle; returns its site name.
    pub async fn trust_site(&self, bundle: &str) -> Result<String, Status> {
        if self.vo_authority().is_none() {
            return Err(Status::failed_precondition(
                "sites are trusted at the site authority",
            ));
        }
        let bundle: SiteBundle = serde_json::from_str(bundle).map_err(|e| {
            Status::invalid_argument(format!("not a site bundle (from `xos site bundle`): {e}"))
        })?;
        xtreem_net::tls::cert_from_pem(&bundle.ca_cert_pem)
            .map_err(|e| Status::invalid_argument(format!("bundle CA: {e}")))?;
        for policy in &bundle.vo_policies {
            if policy.kind != "vo" || !bundle.issuers.iter().any(|i| i.vo == policy.name) {
                return Err(Status::invalid_argument(format!(
                    "bundle of site {} carries a {} policy for {}: a bundle carries only its own VOs' policies",
                    bundle.site, policy.kind, policy.name
                )));
            }
            xtreem_policy::PolicyStore::new()
                .check(&xtreem_policy::Level::Vo(policy.name.clone()), &policy.text)
                .map_err(|e| {
                    Status::invalid_argument(format!("bundle policy of VO {}: {e}", policy.name))
                })?;
        }
        for issuer in &bundle.issuers {
            if issuer.site != bundle.site {
                return Err(Status::invalid_argument(format!(
                    "bundle of site {} lists VO {} of site {}: a site vouches only for its own VOs",
                    bundle.site, issuer.vo, issuer.site
                )));
            }
        }
        let trusted = TrustedSite {
            site: bundle.site.clone(),
            ca_cert_pem: bundle.ca_cert_pem.clone(),
            vos_json: serde_json::to_string(&ForeignVos {
                issuers: bundle.issuers.clone(),
                policies: bundle.vo_policies.clone(),
            })
            .map_err(|e| Status::internal(e.to_string()))?,
            trusted_unix: xtreem_util::time::unix_now(),
            endpoint: bundle.endpoint.clone(),
        };
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            store.execute(&SiteMachine, SiteCommand::TrustSite { trusted })
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)?;
        self.refresh_trust();
        Ok(bundle.site)
    }

    fn authority_params(&self) -> AuthorityParams<'_> {
        AuthorityParams {
            store: Arc::clone(&self.store),
            data: &self.data,
            name: self.config.name.clone(),
            roles: self.config.roles.clone(),
            endpoint: self.rpc_endpoint.clone(),
            cert_lifetime: self.config.node_cert_lifetime,
            liveness_window: (self.config.heartbeat_interval * 3).max(Duration::from_secs(2)),
            revoked: self.tls.revoked.clone(),
        }
    }

    /// Records the site this node now belongs to.
    pub async fn record_membership(&self, m: Membership) -> Result<(), SecurityError> {
        let store = Arc::clone(&self.store);
        let command = MembershipCommand::Joined(m.clone());
        tokio::task::spawn_blocking(move || store.execute(&MembershipMachine, command))
            .await
            .map_err(|e| SecurityError::Certificate(format!("store task failed: {e}")))??;
        if let Ok(mut w) = self.membership.write() {
            *w = Some(m);
        }
        Ok(())
    }

    /// Creates a site with this node as its authority.
    pub async fn init_site(&self, site: SiteName) -> Result<Arc<Authority>, SecurityError> {
        let (authority, own) = Authority::init(self.authority_params(), site.clone()).await?;
        self.tls
            .save_and_install(&self.data, authority.ca_pem(), &own.cert_pem, &own.key_pem)?;
        self.record_membership(Membership {
            site,
            authority: self.config.name.clone(),
            authority_endpoint: self.rpc_endpoint.clone(),
        })
        .await?;
        let authority = Arc::new(authority);
        if let Ok(mut w) = self.authority.write() {
            *w = Some(Arc::clone(&authority));
        }
        self.start_vo_authority(authority.site().as_str());
        self.audit(AuditEvent::new(
            "local root",
            "site.init",
            authority.site().as_str(),
            AuditDecision::Done,
        ));
        tracing::info!(site = %authority.site(), "site created; this node is its authority");
        self.set_phase(Phase::Ready);
        Ok(authority)
    }

    /// A channel to another node, authenticated with this node's certificate.
    pub fn peer_channel(&self, endpoint: &str) -> Result<Channel, Status> {
        let config = self
            .tls
            .client_config()
            .ok_or_else(|| Status::unavailable("this node has no certificate yet"))?;
        xtreem_net::client::connect_from(endpoint, config, self.source_ip())
            .map_err(|e| Status::unavailable(e.to_string()))
    }

    /// The address outgoing connections leave from: the RPC listen
    /// address, unless that is the wildcard.
    pub fn source_ip(&self) -> Option<std::net::IpAddr> {
        let ip = self.config.listen_rpc.ip();
        (!ip.is_unspecified()).then_some(ip)
    }

    /// A channel to the site authority.
    pub fn authority_channel(&self) -> Result<Channel, Status> {
        let m = self.membership().ok_or_else(|| {
            Status::failed_precondition("this node does not belong to a site yet")
        })?;
        self.peer_channel(&m.authority_endpoint)
    }

    /// The node list as the authority knows it (authority only).
    pub fn local_node_list(&self) -> Result<pb::ListNodesResponse, Status> {
        let authority = self.authority().ok_or_else(|| {
            Status::failed_precondition("this node does not hold the site's node list")
        })?;
        let nodes = authority.list_nodes().map_err(status)?;
        Ok(pb::ListNodesResponse {
            site: authority.site().to_string(),
            answered_by: self.config.name.to_string(),
            nodes: nodes
                .into_iter()
                .map(|v| pb::NodeInfo {
                    name: v.record.name.to_string(),
                    roles: v.record.roles.iter().map(|r| role_to_pb(*r)).collect(),
                    state: v.state.to_owned(),
                    rpc_endpoint: v.record.endpoint.clone(),
                    enrolled_unix: v.record.enrolled_unix,
                    last_seen_unix: v.last_seen_unix,
                    certificate_expires_unix: v.record.cert_expires_unix(),
                })
                .collect(),
        })
    }

    /// The node list from any node: the authority answers itself, members
    /// ask it over node mTLS.
    pub async fn node_list(&self) -> Result<pb::ListNodesResponse, Status> {
        if self.authority().is_some() {
            return self.local_node_list();
        }
        let mut client = FabricClient::new(self.authority_channel()?);
        let mut list = client
            .list_nodes(pb::ListNodesRequest {})
            .await?
            .into_inner();
        list.answered_by = format!("{} (via {})", self.config.name, list.answered_by);
        Ok(list)
    }
}

fn prepare_data_dir(data: &DataDir) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(data.root())
        .with_context(|| format!("cannot create data_dir {}", data.root().display()))?;
    std::fs::set_permissions(data.root(), std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set the mode of data_dir {}", data.root().display()))?;
    Ok(())
}

fn open_store(data: &DataDir) -> anyhow::Result<Store> {
    Store::open(&data.store()).map_err(|e| {
        let hint = if e.to_string().contains("already open") {
            " (is another xosd running with this data_dir?)"
        } else {
            ""
        };
        anyhow::anyhow!("{e}{hint}")
    })
}

/// What `xos site bundle` prints and `xos site trust` reads.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SiteBundle {
    site: String,
    ca_cert_pem: String,
    issuers: Vec<TrustedIssuer>,
    /// The VOs' own policies, which travel with them.
    #[serde(default)]
    vo_policies: Vec<PolicyEntry>,
    /// Where the site's core node answers other sites (directory queries).
    #[serde(default)]
    endpoint: String,
}

/// The gossip signing key (made on first start, kept 0600) and a new
/// incarnation for this start, so the site tells this life from the last.
fn open_directory(
    config: &NodeConfig,
    data: &DataDir,
    socket: &UdpSocket,
    rpc_endpoint: &str,
) -> anyhow::Result<DirectoryState> {
    let key_path = data.root().join("gossip.key");
    let key = match std::fs::read(&key_path) {
        Ok(pkcs8) => NodeKey::from_pkcs8(&pkcs8).with_context(|| {
            format!(
                "{} is not a gossip key; delete it to make a new one",
                key_path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = NodeKey::generate()?;
            xtreem_security::files::write_private(&key_path, key.pkcs8())?;
            key
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", key_path.display())),
    };
    let incarnation_path = data.root().join("gossip.incarnation");
    let incarnation = std::fs::read_to_string(&incarnation_path)
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .map(|i| i.wrapping_add(1))
        .unwrap_or(0);
    xtreem_security::files::write_public(&incarnation_path, incarnation.to_string().as_bytes())?;
    let mut addr = socket.local_addr()?;
    if addr.ip().is_unspecified() {
        let host = rpc_endpoint
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or_default();
        addr.set_ip(host.trim_start_matches('[').trim_end_matches(']').parse().with_context(|| {
            format!("listen.gossip {addr} is unspecified and the advertised RPC host {host:?} is not an IP address; set listen.gossip to this node's IP")
        })?);
    }
    Ok(DirectoryState::new(
        key,
        NodeId {
            name: config.name.to_string(),
            addr,
            incarnation,
        },
    ))
}

fn open_accounts(
    config: &NodeConfig,
    data: &DataDir,
    store: &Arc<Store>,
) -> anyhow::Result<AccountMapper> {
    let mut pool = PoolConfig::for_data_dir(data.root());
    let a = &config.accounts;
    if let Some(v) = a.uid_min {
        pool.uid_min = v;
    }
    if let Some(v) = a.uid_max {
        pool.uid_max = v;
    }
    if let Some(v) = a.gid_min {
        pool.gid_min = v;
    }
    if let Some(v) = a.gid_max {
        pool.gid_max = v;
    }
    if let Some(v) = a.idle_timeout {
        pool.idle_timeout = v;
    }
    if let Some(v) = a.quarantine {
        pool.quarantine = v;
    }
    if let Some(v) = &a.scratch_root {
        pool.scratch_root = v.clone();
    }
    AccountMapper::open(Arc::clone(store), pool)
        .context("cannot start dynamic account mapping ([accounts] in the config)")
}

/// Releases idle leases (killing leftovers, removing scratch) and returns
/// quarantined uids to the pool, every 30 s.
async fn account_sweeper(
    mapper: Arc<AccountMapper>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        let m = Arc::clone(&mapper);
        match tokio::task::spawn_blocking(move || m.sweep(xtreem_util::time::unix_now())).await {
            Ok(Ok(report)) => {
                for r in &report.released {
                    tracing::info!(uid = r.uid, subject = %r.identity.subject, killed = r.processes_killed, files = r.files_removed, "account lease released");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "account sweep failed"),
            Err(e) => tracing::warn!(error = %e, "account sweep task failed"),
        }
    }
}

/// The addresses a node actually bound, for tools and the test harness.
#[derive(Debug, serde::Serialize)]
struct Endpoints<'a> {
    node: &'a str,
    rpc: &'a str,
    http: String,
    admin_socket: String,
    pid: u32,
}

/// Runs a node until `stop` is cancelled.
/// Answers listing many jobs may exceed the usual message bound.
const JOB_LIST_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The jobs state; on a resource node also the executor, whose units'
/// supervisors are `xtreem-supervisor` installed beside this binary, or
/// this binary run as `xosd supervise DIR`.
fn open_jobs(config: &NodeConfig, store: &Arc<Store>) -> anyhow::Result<JobsState> {
    let resource = if config.has_role(Role::Resource) {
        let exe = std::env::current_exe().context("cannot find this program to run supervisors")?;
        let state_dir =
            config.jobs.state_dir.clone().unwrap_or_else(|| {
                xtreem_exec::state_dir_for(config.name.as_str(), &config.data_dir)
            });
        let supervisor = xtreem_exec::supervisor_command(&exe);
        tracing::info!(command = ?supervisor, "unit supervisors");
        let exec = xtreem_exec::Executor::open(state_dir, supervisor, &cgroup_parent(config))
            .context("cannot set up job execution (cgroups, unit directory)")?;
        // Units whose end the home has are kept on disk only (for their
        // output), not in memory.
        let stored = store.read(crate::jobs::machine::query::units)?;
        let known: std::collections::HashSet<&str> =
            stored.iter().map(|u| u.unit.as_str()).collect();
        let found = crate::jobs::resource::adoptable(&exec, &known);
        for unit in &found {
            store.execute(
                &crate::jobs::machine::JobMachine,
                crate::jobs::machine::JobCommand::PutUnit { unit: unit.clone() },
            )?;
        }
        let units = stored
            .into_iter()
            .filter(|u| !u.reported)
            .chain(found)
            .collect();
        let mut capacity = host_capacity();
        capacity.cores = config.jobs.cores.unwrap_or(capacity.cores);
        capacity.memory_bytes = config.jobs.memory_bytes.unwrap_or(capacity.memory_bytes);
        let held = store.read(crate::jobs::machine::query::held)?;
        Some(ResourceSide::open(exec, capacity, units, held))
    } else {
        None
    };
    JobsState::open(Arc::clone(store), resource)
}

/// The node's cgroup subtree: named after the node and its data dir, so
/// several nodes on one host (tests, demos) never share one.
fn cgroup_parent(config: &NodeConfig) -> String {
    xtreem_exec::cgroup_parent_for(config.name.as_str(), &config.data_dir)
}

/// This machine's cores and memory, which its units share.
fn host_capacity() -> Capacity {
    let cores = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(1 << 30, |kib| kib * 1024);
    Capacity {
        cores,
        memory_bytes,
    }
}

pub async fn run(config: NodeConfig, stop: CancellationToken) -> anyhow::Result<()> {
    let data = DataDir::new(&config.data_dir);
    prepare_data_dir(&data)?;
    let store = Arc::new(open_store(&data)?);

    let rpc_listener = TcpListener::bind(config.listen_rpc)
        .await
        .with_context(|| format!("cannot listen on listen.rpc {}", config.listen_rpc))?;
    let http_listener = TcpListener::bind(config.listen_http)
        .await
        .with_context(|| format!("cannot listen on listen.http {}", config.listen_http))?;
    let rpc_endpoint = match &config.advertise {
        Some(a) => a.clone(),
        None => rpc_listener.local_addr()?.to_string(),
    };
    let http_addr = http_listener.local_addr()?;
    let gossip_socket = UdpSocket::bind(config.listen_gossip)
        .await
        .with_context(|| {
            format!(
                "cannot listen on listen.gossip {} (UDP)",
                config.listen_gossip
            )
        })?;
    let directory = Arc::new(open_directory(
        &config,
        &data,
        &gossip_socket,
        &rpc_endpoint,
    )?);

    let audit_log = AuditLog::open(&data.audit_log(), config.name.as_str())
        .context("cannot open the audit log")?;
    let audit_log = AuditWriter::start(audit_log).context("cannot start the audit flusher")?;
    let accounts = if config.has_role(Role::Resource) {
        Some(Arc::new(open_accounts(&config, &data, &store)?))
    } else {
        None
    };
    let jobs = Arc::new(open_jobs(&config, &store)?);
    let tls = Arc::new(TlsState::default());
    let has_identity = tls
        .load(&data)
        .context("cannot load this node's certificate")?;
    let saved_membership = store.read(membership::load)?;
    let (phase_tx, mut phase_rx) = watch::channel(Phase::Enrolling);
    let shared = Arc::new(NodeShared {
        config,
        data,
        store,
        tls: Arc::clone(&tls),
        rpc_endpoint,
        metrics: Metrics::default(),
        authority: RwLock::new(None),
        membership: RwLock::new(saved_membership),
        phase: phase_tx,
        trust: Arc::new(TrustState::default()),
        vo_authority: RwLock::new(None),
        audit_log: Some(audit_log),
        accounts,
        directory,
        jobs,
    });
    if let Ok(json) = std::fs::read_to_string(shared.data.trust_document())
        && let Err(e) = shared.trust.install_json(&json)
    {
        tracing::warn!(error = %e, "the kept trust document is unreadable; waiting for the authority's");
    }
    if shared.config.has_role(Role::Core)
        && let Some(authority) =
            Authority::load(shared.authority_params()).context("cannot load the site authority")?
        && let Ok(mut w) = shared.authority.write()
    {
        let site = authority.site().to_string();
        *w = Some(Arc::new(authority));
        drop(w);
        shared.start_vo_authority(&site);
    }

    let transport = Arc::new(TransportStats::default());
    let registry = metrics::registry(&shared.metrics, Arc::clone(&transport), Arc::clone(&tls));
    let mut tasks = tokio::task::JoinSet::new();

    let socket_path = shared.data.admin_socket();
    let _ = std::fs::remove_file(&socket_path);
    let uds = UnixListener::bind(&socket_path)
        .with_context(|| format!("cannot create the admin socket {}", socket_path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600))?;
    }
    let local_admin = LocalAdminServer::new(LocalAdminService {
        shared: Arc::clone(&shared),
    });
    let uds_stop = stop.clone();
    tasks.spawn(async move {
        Server::builder()
            .add_service(local_admin)
            .serve_with_incoming_shutdown(UnixListenerStream::new(uds), uds_stop.cancelled_owned())
            .await
            .map_err(std::io::Error::other)
    });

    // /healthz answers only once the admin socket exists, so a probe that
    // sees the node healthy can use it.
    tasks.spawn(http::serve(
        http_listener,
        Arc::clone(&shared),
        registry,
        stop.clone(),
    ));
    let endpoints = Endpoints {
        node: shared.config.name.as_str(),
        rpc: &shared.rpc_endpoint,
        http: http_addr.to_string(),
        admin_socket: socket_path.display().to_string(),
        pid: std::process::id(),
    };
    xtreem_security::files::write_public(
        &shared.data.endpoints(),
        serde_json::to_string_pretty(&endpoints)?.as_bytes(),
    )?;
    tracing::info!(node = %shared.config.name, rpc = %shared.rpc_endpoint, http = %http_addr, "xosd started");

    if has_identity {
        member::check_not_expired(&shared)?;
        shared.set_phase(Phase::Ready);
    } else if shared.config.join.is_some() {
        shared.set_phase(Phase::Enrolling);
        tokio::select! {
            result = member::enroll(&shared) => result?,
            _ = stop.cancelled() => {}
        }
    } else {
        shared.set_phase(Phase::AwaitingSite);
        tracing::info!(socket = %socket_path.display(), "no site yet: run `xos site init NAME` on this machine");
    }

    // Wait for a certificate (from enrollment or `xos site init`) or a stop.
    loop {
        if shared.phase() == Phase::Ready || stop.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = phase_rx.changed() => {}
            _ = stop.cancelled() => {}
        }
    }

    if !stop.is_cancelled() {
        let handle = tls
            .server_handle()
            .context("certificate installed but no TLS config")?;
        let incoming = TlsAcceptor::incoming(rpc_listener, handle, Arc::clone(&transport));
        let router = Server::builder()
            .timeout(RPC_TIMEOUT)
            .max_concurrent_streams(Some(256))
            .http2_max_header_list_size(Some(16 * 1024))
            .add_service(
                EnrollmentServer::new(EnrollmentService {
                    shared: Arc::clone(&shared),
                })
                .max_decoding_message_size(RPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(RPC_MESSAGE_BYTES_MAX),
            )
            .add_service(
                FabricServer::new(FabricService {
                    shared: Arc::clone(&shared),
                })
                .max_decoding_message_size(RPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(RPC_MESSAGE_BYTES_MAX),
            )
            .add_service(
                NodeAdminServer::new(NodeAdminService {
                    shared: Arc::clone(&shared),
                })
                .max_decoding_message_size(RPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(RPC_MESSAGE_BYTES_MAX),
            )
            .add_service(
                DirectoryServer::new(DirectoryService {
                    shared: Arc::clone(&shared),
                })
                .max_decoding_message_size(RPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(RPC_MESSAGE_BYTES_MAX),
            )
            .add_service(
                VoServer::new(VoService {
                    shared: Arc::clone(&shared),
                })
                .max_decoding_message_size(RPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(RPC_MESSAGE_BYTES_MAX),
            )
            .add_service(
                JobsServer::new(JobsService {
                    shared: Arc::clone(&shared),
                })
                .max_decoding_message_size(RPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(JOB_LIST_BYTES_MAX),
            )
            .add_service(
                JobExecServer::new(JobExecService {
                    shared: Arc::clone(&shared),
                })
                .max_decoding_message_size(RPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(JOB_LIST_BYTES_MAX),
            );
        let rpc_stop = stop.clone();
        tasks.spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, rpc_stop.cancelled_owned())
                .await
                .map_err(std::io::Error::other)
        });
        tasks.spawn(member::renewal_loop(Arc::clone(&shared), stop.clone()));
        if let Some(mapper) = shared.accounts.clone() {
            tasks.spawn(account_sweeper(mapper, stop.clone()));
        }
        if shared.authority().is_none() {
            tasks.spawn(member::heartbeat_loop(Arc::clone(&shared), stop.clone()));
        } else {
            tasks.spawn(crate::directory::federation::authority_loop(
                Arc::clone(&shared),
                stop.clone(),
            ));
        }
        crate::jobs::resource::start(&shared, &stop);
        {
            let shared = Arc::clone(&shared);
            let stop = stop.clone();
            tasks.spawn(async move {
                crate::jobs::home::scheduler(shared, stop).await;
                Ok(())
            });
        }
        {
            let shared = Arc::clone(&shared);
            let stop = stop.clone();
            tasks.spawn(async move {
                crate::jobs::retention::run(shared, stop).await;
                Ok(())
            });
        }
        tasks.spawn(crate::directory::driver::run(
            Arc::clone(&shared),
            Arc::clone(&shared.directory),
            gossip_socket,
            stop.clone(),
        ));
        tracing::info!(node = %shared.config.name, site = ?shared.site_name(), "serving RPC over TLS 1.3");
    }

    tokio::select! {
        _ = stop.cancelled() => {}
        Some(Ok(Err(e))) = tasks.join_next() => {
            stop.cancel();
            tracing::error!(error = %e, "a server failed; stopping");
        }
    }
    shared.set_phase(Phase::Stopping);
    tracing::info!("stopping");
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some tasks did not stop within 10 s; aborting them");
        tasks.abort_all();
    }
    let _ = std::fs::remove_file(&socket_path);
    let _ = std::fs::remove_file(shared.data.endpoints());
    if let Some(side) = shared.jobs.resource.as_ref() {
        // A node that stops with no unit left takes its cgroup subtree (the
        // idle pool, the fork server's group) along, as a service manager
        // would; with units to re-adopt after a restart, both stay.
        if side.exec.units().is_ok_and(|u| u.is_empty())
            && let Err(e) = side.exec.remove_cgroup_parent()
        {
            tracing::warn!(error = %e, "cannot remove the node's cgroups");
        }
        // The units' state directory lives on a tmpfs, outside the data dir:
        // a node that stops with no unit left takes it along (rmdir fails,
        // harmlessly, while units that must be re-adopted are in it).
        let _ = std::fs::remove_dir(side.exec.root());
    }
    tracing::info!("stopped");
    Ok(())
}
