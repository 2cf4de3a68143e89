//! A grid of `xosd` processes under one directory.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use xtreem_client::{Client, Credentials, local};

use crate::http::http_get;
use crate::node::{NodeProc, NodeSpec};

/// Mirrors `xtreem_node::member::JOIN_TOKEN_ENV`; cleared for children so a
/// token in the test's environment never leaks into a node.
pub(crate) const JOIN_TOKEN_ENV: &str = "XOSD_JOIN_TOKEN";

/// How long a node may take to become healthy or ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

enum Root {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

/// N `xosd` processes, their files, and the administrator's credentials.
pub struct Grid {
    root: Root,
    xosd: PathBuf,
    nodes: Vec<NodeProc>,
    admin: Option<Credentials>,
    fixed_ip: Option<Ipv4Addr>,
    /// The middle octets of this grid's loopback addresses.
    subnet: (u8, u8),
}

/// Middle octets for a new grid's loopback addresses (127.A.B.x): grids of
/// concurrent tests, in this process or another, get different addresses,
/// so a port one picked as free cannot be taken by another's node before
/// its own node binds it.
fn new_subnet() -> (u8, u8) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // Knuth's multiplicative hash spreads consecutive pids and grids.
    let mixed = (std::process::id() ^ n.wrapping_mul(0x9E37_79B9)).wrapping_mul(2_654_435_761);
    let [_, a, b, _] = mixed.to_be_bytes();
    // 127.0.0.x stays free for what listens on the usual loopback address.
    (a.max(1), b)
}

impl Grid {
    /// An empty grid in a new temporary directory, removed on drop.
    pub fn new(xosd: impl Into<PathBuf>) -> anyhow::Result<Grid> {
        let dir = tempfile::Builder::new().prefix("xtreem-grid-").tempdir()?;
        Ok(Grid {
            root: Root::Temp(dir),
            xosd: xosd.into(),
            nodes: Vec::new(),
            admin: None,
            fixed_ip: None,
            subnet: new_subnet(),
        })
    }

    /// An empty grid in `dir`, which is kept.
    pub fn in_dir(xosd: impl Into<PathBuf>, dir: &Path) -> anyhow::Result<Grid> {
        std::fs::create_dir_all(dir)?;
        Ok(Grid {
            root: Root::Kept(dir.to_owned()),
            xosd: xosd.into(),
            nodes: Vec::new(),
            admin: None,
            fixed_ip: None,
            subnet: new_subnet(),
        })
    }

    pub fn root(&self) -> &Path {
        match &self.root {
            Root::Temp(t) => t.path(),
            Root::Kept(p) => p,
        }
    }

    /// Where the administrator's credentials are saved (an `XOS_CONFIG_DIR`).
    pub fn admin_dir(&self) -> PathBuf {
        self.root().join("admin")
    }

    pub fn credentials(&self) -> anyhow::Result<&Credentials> {
        self.admin
            .as_ref()
            .context("no site initialised in this grid yet")
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &NodeProc {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut NodeProc {
        &mut self.nodes[i]
    }

    /// Puts every node added from now on `ip` (ports still differ).
    pub fn use_one_ip(&mut self, ip: Ipv4Addr) {
        self.fixed_ip = Some(ip);
    }

    /// A loopback address for the next node: 127.A.B.10, .11, ... (A.B
    /// this grid's own) unless [`Grid::use_one_ip`] was called.
    pub fn next_ip(&self) -> Ipv4Addr {
        if let Some(ip) = self.fixed_ip {
            return ip;
        }
        let (a, b) = self.subnet;
        Ipv4Addr::new(
            127,
            a,
            b,
            10 + u8::try_from(self.nodes.len() % 200).unwrap_or(0),
        )
    }

    /// Adds a node (not started); returns its index.
    pub fn add_node(&mut self, spec: NodeSpec) -> anyhow::Result<usize> {
        let node = NodeProc::new(spec, self.root())?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// Starts node `i` without a join table (a core node awaiting a site,
    /// or an already-initialised authority) and waits until it is healthy.
    pub async fn start_core(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].write_config(None)?;
        self.nodes[i].spawn(&self.xosd)?;
        self.wait_healthy(i).await
    }

    /// `xos site init` on node `i` through its admin socket; keeps the
    /// administrator credentials for later calls.
    pub async fn init_site(&mut self, i: usize, site: &str) -> anyhow::Result<Credentials> {
        let credentials = local::init_site(&self.nodes[i].admin_socket(), site, "admin").await?;
        credentials.save(&self.admin_dir())?;
        self.admin = Some(credentials.clone());
        self.wait_ready(i).await?;
        Ok(credentials)
    }

    /// A join token from the site authority.
    pub async fn join_token(&self, ttl: Duration) -> anyhow::Result<String> {
        let credentials = self.credentials()?;
        let mut client = Client::connect(&credentials.endpoint, credentials)?;
        Ok(client.create_join_token(ttl.as_secs()).await?.token)
    }

    /// Starts node `i` as a member joining at `core` with `token`, without
    /// waiting: for tests of refused enrollments.
    pub fn spawn_member(&mut self, i: usize, core: &str, token: &str) -> anyhow::Result<()> {
        self.nodes[i].write_config(Some((core, token)))?;
        self.nodes[i].spawn(&self.xosd)
    }

    /// Starts node `i` as a member enrolling with `token` at the authority,
    /// and waits until it is ready.
    pub async fn start_member(&mut self, i: usize, token: &str) -> anyhow::Result<()> {
        let core = self.credentials()?.endpoint.clone();
        self.spawn_member(i, &core, token)?;
        self.wait_ready(i).await
    }

    /// A site of `n` nodes: node-1 (core, resource, client) creates site
    /// `site`, node-2..node-n (resource, client) join with tokens.
    pub async fn start_site(&mut self, site: &str, n: usize) -> anyhow::Result<()> {
        let ip = self.next_ip();
        let core = self.add_node(NodeSpec::new("node-1", &["core", "resource", "client"], ip))?;
        self.start_core(core).await?;
        self.init_site(core, site).await?;
        for k in 2..=n {
            let ip = self.next_ip();
            let i = self.add_node(NodeSpec::new(
                &format!("node-{k}"),
                &["resource", "client"],
                ip,
            ))?;
            let token = self.join_token(Duration::from_secs(600)).await?;
            self.start_member(i, &token).await?;
        }
        Ok(())
    }

    /// A site from explicit specs: the first creates site `site` (give it
    /// the core role), the others join with tokens. Returns their indices.
    pub async fn start_site_with(
        &mut self,
        site: &str,
        specs: Vec<NodeSpec>,
    ) -> anyhow::Result<Vec<usize>> {
        let mut indices = Vec::new();
        for (k, spec) in specs.into_iter().enumerate() {
            let i = self.add_node(spec)?;
            if k == 0 {
                self.start_core(i).await?;
                self.init_site(i, site).await?;
            } else {
                let token = self.join_token(Duration::from_secs(600)).await?;
                self.start_member(i, &token).await?;
            }
            indices.push(i);
        }
        Ok(indices)
    }

    /// Polls `probe` every 50 ms until it returns `Some` or `timeout` passes.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut probe: impl FnMut(&mut Grid) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = probe(self) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_http(&mut self, i: usize, path: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !self.nodes[i].is_running() {
                let code = self.nodes[i].exit_code();
                bail!(
                    "xosd {} exited (code {code:?}) before {path} answered; its log:\n{}",
                    self.nodes[i].spec.name,
                    self.nodes[i].log()
                );
            }
            if let Ok((200, _)) = http_get(&self.nodes[i].http, path) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "xosd {} did not answer {path} within {START_TIMEOUT:?}; its log:\n{}",
                    self.nodes[i].spec.name,
                    self.nodes[i].log()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until node `i` serves `/healthz`.
    pub async fn wait_healthy(&mut self, i: usize) -> anyhow::Result<()> {
        self.wait_http(i, "/healthz").await
    }

    /// Waits until node `i` has its certificate and serves RPC (`/readyz`).
    pub async fn wait_ready(&mut self, i: usize) -> anyhow::Result<()> {
        self.wait_http(i, "/readyz").await
    }

    /// Waits for node `i` to exit by itself; returns its exit code.
    pub async fn wait_exit(&mut self, i: usize, timeout: Duration) -> anyhow::Result<i32> {
        let name = self.nodes[i].spec.name.clone();
        self.wait_for(timeout, &format!("{name} to exit"), |g| {
            g.nodes[i].exit_code()
        })
        .await
    }

    /// An administrator client connected to node `i`.
    pub fn admin_client(&self, i: usize) -> anyhow::Result<Client> {
        Ok(Client::connect(&self.nodes[i].rpc, self.credentials()?)?)
    }

    /// SIGKILL: the process dies with no chance to clean up.
    pub fn kill9(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].kill9()
    }

    /// SIGTERM; waits for the exit and returns the exit code.
    pub async fn stop(&mut self, i: usize) -> anyhow::Result<i32> {
        self.nodes[i].terminate(Duration::from_secs(20)).await
    }

    /// Starts a stopped or killed node again with its data dir and ports,
    /// and waits until it is ready.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].write_config(None)?;
        self.nodes[i].spawn(&self.xosd)?;
        self.wait_ready(i).await
    }

    /// SIGSTOP: the process is frozen, its sockets stay open.
    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].signal(Signal::SIGSTOP)
    }

    /// SIGCONT after [`Grid::pause`].
    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].signal(Signal::SIGCONT)
    }

    /// Stops every running node with SIGTERM; returns (name, exit code).
    pub async fn stop_all(&mut self) -> Vec<(String, anyhow::Result<i32>)> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            if node.is_running() {
                let code = node.terminate(Duration::from_secs(20)).await;
                out.push((node.spec.name.clone(), code));
            }
        }
        out
    }

    /// Leaves every process running and the directory in place; returns the
    /// directory and the PIDs of the nodes still running.
    pub fn keep(mut self) -> (PathBuf, Vec<u32>) {
        let pids = self
            .nodes
            .iter_mut()
            .filter_map(|n| if n.is_running() { n.pid() } else { None })
            .collect();
        // Nodes that already ended (such as one refused at enrollment) are
        // cleaned up as usual: nothing of theirs is left to keep.
        for node in &mut self.nodes {
            if node.is_running() {
                node.detach();
            }
        }
        let root = match std::mem::replace(&mut self.root, Root::Kept(PathBuf::new())) {
            Root::Temp(t) => t.keep(),
            Root::Kept(p) => p,
        };
        (root, pids)
    }
}
