//! One `xosd` process of a test grid.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How to configure a node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub roles: Vec<&'static str>,
    /// Loopback address the node binds, e.g. 127.83.21.11.
    pub ip: Ipv4Addr,
    pub heartbeat_interval: String,
    pub node_cert_lifetime: String,
    /// `[runtime] worker_threads`: 1, as several daemons share the machine.
    pub worker_threads: u32,
    /// TOML tables appended to the generated config (e.g. `[auth]`).
    pub extra_config: String,
}

impl NodeSpec {
    pub fn new(name: &str, roles: &[&'static str], ip: Ipv4Addr) -> NodeSpec {
        NodeSpec {
            name: name.to_owned(),
            roles: roles.to_vec(),
            ip,
            heartbeat_interval: "500ms".into(),
            node_cert_lifetime: "1h".into(),
            worker_threads: 1,
            extra_config: String::new(),
        }
    }
}

/// A running (or stopped) `xosd` with its files.
pub struct NodeProc {
    pub spec: NodeSpec,
    pub dir: PathBuf,
    pub rpc: String,
    pub http: String,
    /// UDP address of the node's gossip.
    pub gossip: String,
    child: Option<Child>,
    /// Left running on purpose (`Grid::keep`): its jobs stay too.
    detached: bool,
    join_core: Option<String>,
}

fn uid_block() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    200_000 + ((std::process::id().wrapping_mul(7) + n) % 90) * 1000
}

/// Two different TCP ports on `ip` that were free a moment ago (both are
/// held while the second is picked, so they differ). The node keeps them
/// across restarts so that others can still find it.
fn free_ports(ip: Ipv4Addr) -> anyhow::Result<(u16, u16)> {
    let bind = || TcpListener::bind((ip, 0)).with_context(|| format!("cannot bind {ip}:0"));
    let first = bind()?;
    let second = bind()?;
    Ok((first.local_addr()?.port(), second.local_addr()?.port()))
}

/// A UDP port on `ip` that was free a moment ago (for gossip).
fn free_udp_port(ip: Ipv4Addr) -> anyhow::Result<u16> {
    let socket =
        std::net::UdpSocket::bind((ip, 0)).with_context(|| format!("cannot bind UDP {ip}:0"))?;
    Ok(socket.local_addr()?.port())
}

impl NodeProc {
    pub(crate) fn new(spec: NodeSpec, root: &Path) -> anyhow::Result<NodeProc> {
        let dir = root.join(&spec.name);
        fs::create_dir_all(&dir)?;
        // Jobs run under mapped uids, which must traverse to their scratch
        // directory below the node's directory: search-only for others.
        {
            use std::os::unix::fs::PermissionsExt;
            for d in [root, dir.as_path()] {
                fs::set_permissions(d, fs::Permissions::from_mode(0o711))?;
            }
        }
        let (rpc_port, http_port) = free_ports(spec.ip)?;
        let rpc = format!("{}:{rpc_port}", spec.ip);
        let http = format!("{}:{http_port}", spec.ip);
        let gossip = format!("{}:{}", spec.ip, free_udp_port(spec.ip)?);
        Ok(NodeProc {
            spec,
            dir,
            rpc,
            http,
            gossip,
            child: None,
            detached: false,
            join_core: None,
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("xosd.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("xosd.log")
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.data_dir().join("admin.sock")
    }

    /// The node's log so far (stderr and stdout).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn write_config(&mut self, join: Option<(&str, &str)>) -> anyhow::Result<()> {
        let roles: Vec<String> = self.spec.roles.iter().map(|r| format!("{r:?}")).collect();
        let mut text = format!(
            "name = {:?}\ndata_dir = {:?}\nroles = [{}]\n\n[listen]\nrpc = {:?}\nhttp = {:?}\ngossip = {:?}\n\n[site]\nnode_cert_lifetime = {:?}\n\n[fabric]\nheartbeat_interval = {:?}\n\n[runtime]\nworker_threads = {}\n",
            self.spec.name,
            self.data_dir().display().to_string(),
            roles.join(", "),
            self.rpc,
            self.http,
            self.gossip,
            self.spec.node_cert_lifetime,
            self.spec.heartbeat_interval,
            self.spec.worker_threads,
        );
        // Each node of each grid on this machine gets its own block of the
        // uid pool, as separate machines would have in effect.
        let block = uid_block();
        text.push_str(&format!(
            "\n[accounts]\nuid_min = {}\nuid_max = {}\ngid_min = {}\ngid_max = {}\nquarantine = \"2s\"\nscratch_root = {:?}\n",
            block,
            block + 999,
            block,
            block + 999,
            self.dir.join("scratch").display().to_string(),
        ));
        text.push_str(&self.spec.extra_config);
        text.push('\n');
        if let Some((core, token)) = join {
            text.push_str(&format!("\n[join]\ncore = {core:?}\ntoken = {token:?}\n"));
            self.join_core = Some(core.to_owned());
        } else if let Some(core) = &self.join_core {
            // Restarts keep [join] so the config stays valid for a member;
            // the token is no longer needed once enrolled.
            text.push_str(&format!("\n[join]\ncore = {core:?}\n"));
        }
        fs::write(self.config_path(), text)?;
        Ok(())
    }

    pub(crate) fn spawn(&mut self, xosd: &Path) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("node {} is already running", self.spec.name);
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(xosd)
            .arg("--config")
            .arg(self.config_path())
            .env(
                "XOSD_LOG",
                std::env::var("XOSD_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove(crate::grid::JOIN_TOKEN_ENV)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", xosd.display()))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Exit status if the process has ended.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .and_then(|s| s.code())
    }

    pub(crate) fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self.child.as_ref().context("node is not running")?.id();
        kill(Pid::from_raw(i32::try_from(pid)?), signal)?;
        Ok(())
    }

    pub(crate) fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// SIGTERM, then waits (asynchronously, so the caller's runtime keeps
    /// serving its own connections) for the exit; returns the exit code.
    pub(crate) async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<i32> {
        let Some(mut child) = self.child.take() else {
            bail!("node {} is not running", self.spec.name);
        };
        kill(Pid::from_raw(i32::try_from(child.id())?), Signal::SIGTERM)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return status
                    .code()
                    .context("xosd ended by a signal, not by exiting");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "node {} did not stop within {:?} of SIGTERM",
                    self.spec.name,
                    timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Leaves the process running after the harness is dropped.
    pub(crate) fn detach(&mut self) {
        self.child = None;
        self.detached = true;
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        // Never leave an orphan daemon behind a test; a paused one must be
        // resumed first or SIGKILL would wait for nothing.
        if let Some(child) = self.child.as_mut() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.detached {
            kill_supervisors(&self.spec.name, &self.data_dir());
        }
    }
}

/// Job supervisors outlive their daemon by design; a test's must not
/// outlive the test. Every process in the node's cgroup subtree (the
/// supervisors and the jobs) is killed, then the emptied cgroups and the
/// units' state directory removed.
fn kill_supervisors(name: &str, data_dir: &Path) {
    let parent = xtreem_exec::cgroup_parent_for(name, data_dir);
    let marker = format!("/{parent}/");
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cgroups) = fs::read_to_string(entry.path().join("cgroup")) else {
            continue;
        };
        if cgroups.lines().any(|l| l.contains(&marker)) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed += 1;
        }
    }
    if killed > 0 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        remove_cgroup_tree(&h.path().join(&parent));
    }
    // The units' state lives in memory (tmpfs), outside the data dir.
    let _ = fs::remove_dir_all(xtreem_exec::state_dir_for(name, data_dir));
}

/// Removes `dir` and the cgroups below it. A killed process leaves its
/// cgroup only once it has fully exited, so an rmdir refused as busy is
/// tried again for a while: a tree given up at once stays on the machine
/// for good, and dead memory cgroups behind it slow all cgroup work.
fn remove_cgroup_tree(dir: &Path) {
    let Ok(children) = fs::read_dir(dir) else {
        return;
    };
    for child in children.flatten() {
        if child.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&child.path());
        }
    }
    let until = Instant::now() + Duration::from_secs(3);
    while let Err(e) = fs::remove_dir(dir) {
        if e.raw_os_error() != Some(nix::libc::EBUSY) || Instant::now() >= until {
            eprintln!("# cannot remove the test cgroup {}: {e}", dir.display());
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
