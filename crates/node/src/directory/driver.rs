//! Runs the gossip agent on a UDP socket with tokio timers, samples the
//! node's dynamic attributes and pushes them to the directory replicas.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use xtreem_directory::{StaticDescriptor, probe_dynamic};
use xtreem_gossip::{Agent, Event, GossipConfig, NodeId, Timer};
use xtreem_util::roles::Role;

use super::{DirectoryState, MemberInfo, ViewSink, publish};
use crate::daemon::NodeShared;

/// Largest datagram read; anything longer is cut and then refused.
const RECV_BUFFER: usize = 2048;

struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    pending: HashMap<u64, Timer<NodeId>>,
    next: u64,
}

impl Timers {
    fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            pending: HashMap::new(),
            next: 0,
        }
    }

    fn add(&mut self, timer: Timer<NodeId>, after: Duration) {
        self.next += 1;
        self.heap.push(Reverse((Instant::now() + after, self.next)));
        self.pending.insert(self.next, timer);
    }

    fn deadline(&self) -> Instant {
        self.heap
            .peek()
            .map(|Reverse((at, _))| *at)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    fn due(&mut self) -> Vec<Timer<NodeId>> {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if let Some(t) = self.pending.remove(&id) {
                due.push(t);
            }
        }
        due
    }
}

struct Driver {
    shared: Arc<NodeShared>,
    state: Arc<DirectoryState>,
    socket: UdpSocket,
    agent: Agent<NodeId, ViewSink>,
    timers: Timers,
    /// The identity each member name currently has: a `down` for an older
    /// life of a restarted node must not mark the new life dead.
    current: HashMap<String, NodeId>,
    published: Option<StaticDescriptor>,
    seq: u64,
}

impl Driver {
    async fn flush(&mut self) {
        let mut changed = false;
        for event in self.agent.take_events() {
            match event {
                Event::Send { to, packet } => {
                    if let Err(e) = self.socket.send_to(&packet, to.addr).await {
                        tracing::debug!(to = %to.addr, error = %e, "gossip send");
                    }
                }
                Event::Timer { timer, after } => self.timers.add(timer, after),
                Event::MemberUp(id) => {
                    tracing::debug!(node = %id.name, incarnation = id.incarnation, "member up");
                    // The newcomer learns this node's descriptor now rather
                    // than at the next republish.
                    if let Some(packet) = self.agent.descriptor_packet()
                        && let Err(e) = self.socket.send_to(&packet, id.addr).await
                    {
                        tracing::debug!(to = %id.addr, error = %e, "descriptor to newcomer");
                    }
                    if let Ok(mut view) = self.state.view.write() {
                        view.set_alive(&id.name, true);
                    }
                    self.current.insert(id.name.clone(), id);
                    changed = true;
                }
                Event::MemberDown(id) => {
                    let is_current = self.current.get(&id.name).is_none_or(|c| *c == id);
                    if is_current {
                        tracing::info!(node = %id.name, "member down");
                        if let Ok(mut view) = self.state.view.write() {
                            view.set_alive(&id.name, false);
                        }
                        self.current.insert(id.name.clone(), id);
                        changed = true;
                    }
                }
                Event::Rejoined(id) => {
                    tracing::warn!(
                        incarnation = id.incarnation,
                        "declared down by the site while alive; rejoined"
                    );
                }
                Event::Isolated => tracing::info!("gossip: no other member reachable"),
                Event::Connected => tracing::info!("gossip: connected to the site"),
            }
        }
        if changed {
            self.state.set_members(
                self.current
                    .values()
                    .map(|id| MemberInfo {
                        id: id.clone(),
                        alive: self.agent.alive_members().any(|m| m == id),
                    })
                    .collect(),
            );
        }
    }

    fn publish_if_stale(&mut self) {
        let fresh = match &self.published {
            Some(p) => publish::still_current(&self.shared, p),
            None => false,
        };
        if fresh {
            return;
        }
        let version = xtreem_util::time::unix_now_millis().max(
            self.published
                .as_ref()
                .map(|p| p.version + 1)
                .unwrap_or_default(),
        );
        match publish::own_descriptor(&self.shared, version) {
            Ok(descriptor) => match self.agent.publish(&descriptor, &self.state.key) {
                Ok(()) => {
                    tracing::info!(version, vos = ?descriptor.vos, "published descriptor");
                    self.published = Some(descriptor);
                }
                Err(e) => tracing::error!(error = %e, "cannot publish this node's descriptor"),
            },
            Err(e) => tracing::error!(error = %e, "cannot probe this node's hardware"),
        }
    }

    async fn sample(&mut self) {
        let Some(published) = &self.published else {
            return;
        };
        self.seq = self.seq.max(xtreem_util::time::unix_now_millis()) + 1;
        // Cores held by units count as busy, so free cores are what a job
        // could still get here (what admission checks), not idle CPU.
        let (running, busy) = match self.shared.jobs.resource.as_ref() {
            Some(side) => {
                let (free, _) = side.free();
                (
                    side.running_units(),
                    side.capacity.cores.saturating_sub(free) as f32,
                )
            }
            None => (0, 0.0),
        };
        let sample = match probe_dynamic(
            &self.shared.config.data_dir,
            published.cores,
            running,
            busy,
            self.seq,
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot sample dynamic attributes");
                return;
            }
        };
        if let Ok(mut view) = self.state.view.write() {
            view.upsert_dynamic(&self.state.identity.name, sample);
        }
        let packet = self.agent.dynamic_packet(&sample, &self.state.key);
        for (_, addr) in self.state.replicas() {
            if let Err(e) = self.socket.send_to(&packet, addr).await {
                tracing::debug!(to = %addr, error = %e, "dynamic push");
            }
        }
    }

    fn announce(&mut self) {
        let material = self.state.material();
        for seed in material
            .seeds(&self.state.identity.name)
            .into_iter()
            .take(3)
        {
            if let Err(e) = self.agent.announce(seed) {
                tracing::debug!(error = %e, "gossip announce");
            }
        }
    }
}

/// Waits for the site's gossip key, then runs gossip until `stop`.
pub async fn run(
    shared: Arc<NodeShared>,
    state: Arc<DirectoryState>,
    socket: UdpSocket,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut material_rx = state.subscribe_material();
    let keyring = loop {
        if let Some(k) = state.material().keyring {
            break k;
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = material_rx.changed() => if r.is_err() { return Ok(()) },
        }
    };
    let size_hint = u32::try_from(state.material().roster.len())
        .unwrap_or(u32::MAX)
        .max(8);
    let agent = Agent::new(
        state.identity.clone(),
        GossipConfig::lan(size_hint),
        keyring,
        Arc::clone(&state.verifier),
        ViewSink(Arc::clone(&state.view)),
        Arc::clone(&state.counters),
        rand::random(),
    );
    let republish_every = agent.config().republish_interval;
    let mut driver = Driver {
        shared: Arc::clone(&shared),
        state: Arc::clone(&state),
        socket,
        agent,
        timers: Timers::new(),
        current: HashMap::new(),
        published: None,
        seq: 0,
    };
    driver.publish_if_stale();
    if let Ok(mut view) = state.view.write() {
        view.set_alive(&state.identity.name, true);
    }
    driver.announce();
    driver.flush().await;
    driver.sample().await;

    let replica = shared.config.has_role(Role::Core);
    let mut sample_tick = tokio::time::interval(shared.config.directory.sample_interval);
    let mut republish_tick = tokio::time::interval(republish_every);
    // Members that had not yet received this node's key from the authority
    // dropped its first broadcasts: offer it again 1, 2, 4, 8 and 16 s in.
    let started = Instant::now();
    let mut early_republish = (0..5)
        .map(|k| started + Duration::from_secs(1 << k))
        .peekable();
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let deadline = driver.timers.deadline();
        tokio::select! {
            _ = stop.cancelled() => {
                driver.agent.leave();
                driver.flush().await;
                return Ok(());
            }
            received = driver.socket.recv_from(&mut buf) => {
                match received {
                    Ok((len, _from)) => {
                        if let Some(update) = driver.agent.handle_packet(&buf[..len])
                            && replica
                            && let Ok(mut view) = state.view.write()
                        {
                            view.upsert_dynamic(&update.node, update.sample);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "gossip receive"),
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                for timer in driver.timers.due() {
                    driver.agent.handle_timer(timer);
                }
            }
            changed = material_rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                if let Some(keyring) = state.material().keyring {
                    driver.agent.set_keyring(keyring);
                }
                driver.agent.retry_unknown_signers();
                if driver.agent.alive_count() == 0 {
                    driver.announce();
                }
            }
            _ = sample_tick.tick() => {
                driver.publish_if_stale();
                driver.sample().await;
                if driver.agent.alive_count() == 0 {
                    driver.announce();
                }
            }
            _ = republish_tick.tick() => driver.agent.republish(),
            _ = tokio::time::sleep_until(early_republish.peek().copied().unwrap_or(started + Duration::from_secs(86_400 * 365))) => {
                early_republish.next();
                driver.agent.republish();
            }
        }
        driver.flush().await;
    }
}
