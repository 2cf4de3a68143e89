//! The engine: one site's nodes, each running the real gossip [`Agent`],
//! driven by the event queue over the simulated network.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use foca::{Codec, Header, Message, PostcardCodec, Timer};
use rand010::rngs::SmallRng;
use rand010::{RngExt, SeedableRng};
use xtreem_directory::StaticDescriptor;
use xtreem_gossip::envelope::Kind;
use xtreem_gossip::{
    Agent, CounterSnapshot, Counters, Event, GossipConfig, ItemKind, Keyring, NodeKey, Roster,
    SiteKey, StaticVerifier,
};

use crate::clock::{EventQueue, MS, Micros, SEC, micros};
use crate::descriptors::{SiteProfile, sample};
use crate::id::{SimId, ensure_names, node_name};
use crate::network::{Network, NetworkConfig};
use crate::node::{SimNode, SimSink, View};

/// Simulated Unix time of the start of every run (2025-01-01), so that
/// samples carry plausible, reproducible timestamps.
pub const EPOCH_UNIX_MS: u64 = 1_735_689_600_000;

/// Share of (node, descriptor) pairs that must be held for the warm-up to
/// count as done: epidemic spreading with bounded retransmissions leaves a
/// few holes that only republishing heals, slowly (see the crate docs).
pub const WARM_DESCRIPTOR_COVERAGE: f64 = 0.999;

/// How to build a site.
#[derive(Debug, Clone)]
pub struct SiteSetup {
    pub nodes: u32,
    /// The first `replicas` nodes have the "core" role and keep a full
    /// directory.
    pub replicas: u32,
    pub seed: u64,
    pub network: NetworkConfig,
    pub gossip: GossipConfig,
    /// Fill every node's view with every node's first descriptor before
    /// the start, as if the site had been running (see the crate docs).
    pub preload_descriptors: bool,
}

/// What happens at an instant.
#[derive(Debug)]
pub enum Ev {
    Deliver {
        to: u32,
        packet: Vec<u8>,
    },
    Timer {
        node: u32,
        life: u32,
        timer: Timer<SimId>,
    },
    /// Publish the descriptor and announce to `seed` (none: first node).
    Start {
        node: u32,
        life: u32,
        seed: Option<u32>,
    },
    /// Publish the descriptor and install every alive node as a member
    /// ([`Agent::warm_start`]): a member of an already-formed site.
    WarmStart {
        node: u32,
        life: u32,
    },
    /// Announce again if the node still knows no member.
    JoinCheck {
        node: u32,
        life: u32,
    },
    Republish {
        node: u32,
        life: u32,
    },
    Dynamic {
        node: u32,
        life: u32,
    },
}

/// First time each node saw something, from a start instant.
#[derive(Debug, Clone)]
pub struct Watch {
    pub target: u32,
    pub version: u64,
    pub start: Micros,
    pub seen: Vec<bool>,
    /// Delays (from `start`) of the nodes that saw it, in the order seen.
    pub delays: Vec<Micros>,
}

impl Watch {
    fn new(target: u32, version: u64, start: Micros, n: usize) -> Watch {
        Watch {
            target,
            version,
            start,
            seen: vec![false; n],
            delays: Vec::new(),
        }
    }

    fn mark(&mut self, node: u32, now: Micros) {
        if let Some(seen) = self.seen.get_mut(node as usize)
            && !*seen
        {
            *seen = true;
            self.delays.push(now - self.start);
        }
    }
}

/// Counts of what happened in a run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    pub events: u64,
    pub delivered: u64,
    pub dropped_dead: u64,
    pub dynamic_accepted: u64,
    pub rejoined: u64,
    pub isolated: u64,
}

pub struct World {
    pub queue: EventQueue<Ev>,
    pub net: Network,
    pub nodes: Vec<SimNode>,
    pub rng: SmallRng,
    pub keyring: Keyring,
    pub verifier: Arc<Mutex<StaticVerifier>>,
    pub config: GossipConfig,
    pub replicas: Vec<u32>,
    pub profile: SiteProfile,
    /// Interval of dynamic pushes once started.
    pub dynamic_interval: Option<Micros>,
    pub change: Option<Watch>,
    pub down: Option<Watch>,
    pub stats: Stats,
}

fn key_seed(rng: &mut SmallRng) -> [u8; 32] {
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        chunk.copy_from_slice(&rng.random::<u64>().to_le_bytes());
    }
    seed
}

impl World {
    /// Builds the site; nothing runs until [`World::start_all`].
    pub fn new(setup: &SiteSetup, profile: SiteProfile) -> World {
        let n = setup.nodes.max(1);
        ensure_names(n);
        let mut rng = SmallRng::seed_from_u64(setup.seed);
        let site_key = SiteKey::new(1, key_seed(&mut rng));
        let keyring = Keyring::new(site_key, None);
        let mut keys = Vec::with_capacity(n as usize);
        let mut descriptors = Vec::with_capacity(n as usize);
        let replicas: Vec<u32> = (0..setup.replicas.min(n)).collect();
        for i in 0..n {
            // `from_seed` only fails for seeds ring refuses; 32 random bytes
            // are always a valid Ed25519 seed.
            let key = NodeKey::from_seed(&key_seed(&mut rng))
                .unwrap_or_else(|e| unreachable!("a 32-byte seed is a valid Ed25519 seed: {e}"));
            keys.push(Arc::new(key));
            descriptors.push(Arc::new(profile.descriptor(
                &mut rng,
                node_name(i),
                i < setup.replicas,
            )));
        }
        let roster = Roster::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (node_name(i as u32).to_owned(), k.public())),
        );
        let verifier = Arc::new(Mutex::new(StaticVerifier::new(roster)));
        let mut nodes = Vec::with_capacity(n as usize);
        for i in 0..n {
            let replica = i < setup.replicas;
            let view = Rc::new(RefCell::new(View::new(n, replica)));
            if setup.preload_descriptors {
                let mut v = view.borrow_mut();
                for d in &descriptors {
                    v.preload(Arc::clone(d));
                }
            }
            let counters = Arc::new(Counters::default());
            let agent = Agent::new(
                SimId::new(i),
                setup.gossip.clone(),
                keyring.clone(),
                Arc::clone(&verifier),
                SimSink(Rc::clone(&view)),
                Arc::clone(&counters),
                rng.random(),
            );
            nodes.push(SimNode {
                index: i,
                agent,
                view,
                key: Arc::clone(&keys[i as usize]),
                descriptor: Arc::clone(&descriptors[i as usize]),
                counters,
                replica,
                alive: false,
                life: 0,
                members_up: 0,
                dynamic_seq: 0,
            });
        }
        World {
            queue: EventQueue::new(),
            net: Network::new(setup.network.clone(), vec![0; n as usize]),
            nodes,
            rng,
            keyring,
            verifier,
            config: setup.gossip.clone(),
            replicas,
            profile,
            dynamic_interval: None,
            change: None,
            down: None,
            stats: Stats::default(),
        }
    }

    pub fn now(&self) -> Micros {
        self.queue.now()
    }

    pub fn len(&self) -> u32 {
        self.nodes.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Starts node 0 alone, the other replicas right after (announcing to
    /// node 0), and the rest in waves of `batch` every `spacing`, each
    /// announcing to one of the replicas.
    pub fn start_all(&mut self, batch: u32, spacing: Micros) {
        let n = self.len();
        let r = (self.replicas.len() as u32).max(1);
        for i in 0..n {
            let (at, seed) = if i == 0 {
                (0, None)
            } else if i < r {
                (MS, Some(0))
            } else {
                let wave = u64::from((i - r) / batch.max(1));
                (10 * MS + wave * spacing, Some(i % r))
            };
            self.nodes[i as usize].alive = true;
            self.queue.at(
                at,
                Ev::Start {
                    node: i,
                    life: 0,
                    seed,
                },
            );
        }
    }

    /// Starts every node as a member of a site that has already formed:
    /// at a random instant within `spread`, each node publishes its
    /// descriptor and gets every alive node as a member through
    /// [`Agent::warm_start`], without any join. Membership updates are not
    /// re-gossiped (the site is taken to know them); descriptors still
    /// travel signed by gossip unless the views were preloaded, and
    /// republishing starts at its steady rate. A node probed before its
    /// own instant learns the prober as from any packet (and starts its
    /// timers then).
    ///
    /// The spread sets the phases of each node's periodic timers (probe,
    /// gossip, foca's announce): spread over the longest period, they are
    /// as random as in a site that has been running, so bytes measured
    /// afterwards are the steady rate.
    pub fn warm_start_all(&mut self, spread: Micros) {
        for i in 0..self.len() {
            let n = &mut self.nodes[i as usize];
            n.alive = true;
            let life = n.life;
            let at = self.rng.random_range(0..spread.max(1));
            self.queue.at(at, Ev::WarmStart { node: i, life });
        }
    }

    /// Runs every event due up to `until`, then sets now to `until`.
    pub fn run_until(&mut self, until: Micros) {
        while let Some((_, ev)) = self.queue.pop_until(until) {
            self.stats.events += 1;
            self.dispatch(ev);
        }
        self.queue.advance_to(until);
    }

    /// Runs in steps of `step` until `done` holds or `limit` is reached;
    /// returns whether `done` held.
    pub fn run_while(
        &mut self,
        step: Micros,
        limit: Micros,
        mut done: impl FnMut(&World) -> bool,
    ) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.now() >= limit {
                return false;
            }
            let next = (self.now() + step).min(limit);
            self.run_until(next);
        }
    }

    fn live(&self, node: u32, life: u32) -> bool {
        self.nodes
            .get(node as usize)
            .is_some_and(|n| n.alive && n.life == life)
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { to, packet } => self.deliver(to, &packet),
            Ev::Timer { node, life, timer } => {
                if self.live(node, life) {
                    self.nodes[node as usize].agent.handle_timer(timer);
                    self.drain(node);
                }
            }
            Ev::Start { node, life, seed } => {
                if self.live(node, life) {
                    self.start_node(node, seed, false);
                }
            }
            Ev::WarmStart { node, life } => {
                if self.live(node, life) {
                    self.start_node(node, None, true);
                    self.warm_start_node(node);
                }
            }
            Ev::JoinCheck { node, life } => {
                if self.live(node, life) && self.nodes[node as usize].members_up == 0 {
                    let r = self.replicas.len().max(1) as u32;
                    let seed = self.rng.random_range(0..r);
                    if seed != node {
                        let id = self.current_id(seed);
                        let a = &mut self.nodes[node as usize].agent;
                        if a.announce(id).is_ok() {
                            self.drain(node);
                        }
                    }
                    self.queue.after(2 * SEC, Ev::JoinCheck { node, life });
                }
            }
            Ev::Republish { node, life } => {
                if self.live(node, life) {
                    self.nodes[node as usize].agent.republish();
                    self.drain(node);
                    let every = micros(self.config.republish_interval).max(SEC);
                    self.queue.after(every, Ev::Republish { node, life });
                }
            }
            Ev::Dynamic { node, life } => {
                if self.live(node, life) {
                    self.push_dynamic(node);
                    if let Some(every) = self.dynamic_interval {
                        self.queue.after(every, Ev::Dynamic { node, life });
                    }
                }
            }
        }
    }

    fn current_id(&self, node: u32) -> SimId {
        *self.nodes[node as usize].agent.identity()
    }

    /// Publishes the node's descriptor and, with a `seed`, announces to
    /// it. A joining node republishes first after one interval plus a
    /// random phase; a node of a formed site (`formed`) after a random
    /// phase within one interval, so that republishing runs at its steady
    /// rate from the start (every node republished at some point before).
    fn start_node(&mut self, node: u32, seed: Option<u32>, formed: bool) {
        let life = self.nodes[node as usize].life;
        {
            let n = &mut self.nodes[node as usize];
            let d = Arc::clone(&n.descriptor);
            let key = Arc::clone(&n.key);
            // Our own descriptors are valid and small by construction.
            if let Err(e) = n.agent.publish(&d, &key) {
                unreachable!("publishing a generated descriptor failed: {e}");
            }
        }
        if let Some(seed) = seed {
            let id = self.current_id(seed);
            if self.nodes[node as usize].agent.announce(id).is_ok() {
                self.queue.after(2 * SEC, Ev::JoinCheck { node, life });
            }
        }
        let every = micros(self.config.republish_interval).max(SEC);
        let phase = self.rng.random_range(0..every);
        let first = if formed { phase + 1 } else { every + phase };
        self.queue.after(first, Ev::Republish { node, life });
        self.drain(node);
        self.check_change(node);
    }

    fn warm_start_node(&mut self, node: u32) {
        let members: Vec<SimId> = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| *n.agent.identity())
            .collect();
        if let Err(e) = self.nodes[node as usize].agent.warm_start(members) {
            // Only an update about this node's own identity can fail, and
            // warm_start skips it.
            unreachable!("warm start of a simulated node failed: {e}");
        }
        self.drain(node);
    }

    fn deliver(&mut self, to: u32, packet: &[u8]) {
        let Some(n) = self.nodes.get_mut(to as usize) else {
            return;
        };
        if !n.alive {
            self.stats.dropped_dead += 1;
            return;
        }
        self.stats.delivered += 1;
        self.net.received(to, packet.len());
        if let Some(update) = n.agent.handle_packet(packet)
            && let Some(dir) = &mut n.view.borrow_mut().directory
            && dir.upsert_dynamic(&update.node, update.sample)
        {
            self.stats.dynamic_accepted += 1;
        }
        self.drain(to);
        self.check_change(to);
    }

    fn check_change(&mut self, node: u32) {
        let now = self.now();
        if let Some(w) = &mut self.change
            && !w.seen[node as usize]
            && self.nodes[node as usize].view.borrow().version_of(w.target) >= w.version
        {
            w.mark(node, now);
        }
    }

    /// Carries out what the node's agent asked for.
    fn drain(&mut self, node: u32) {
        let events = self.nodes[node as usize].agent.take_events();
        let life = self.nodes[node as usize].life;
        for event in events {
            match event {
                Event::Send { to, packet } => self.send(node, to.index, packet),
                Event::Timer { timer, after } => {
                    self.queue
                        .after(micros(after), Ev::Timer { node, life, timer });
                }
                Event::MemberUp(_) => self.nodes[node as usize].members_up += 1,
                Event::MemberDown(id) => {
                    let n = &mut self.nodes[node as usize];
                    n.members_up = n.members_up.saturating_sub(1);
                    let now = self.now();
                    if let Some(w) = &mut self.down
                        && w.target == id.index
                    {
                        w.mark(node, now);
                    }
                }
                Event::Rejoined(_) => self.stats.rejoined += 1,
                Event::Isolated => self.stats.isolated += 1,
                Event::Connected => {}
            }
        }
    }

    fn send(&mut self, from: u32, to: u32, packet: Vec<u8>) {
        if let Some(latency) = self.net.send(&mut self.rng, from, to, packet.len()) {
            self.queue.after(latency, Ev::Deliver { to, packet });
        }
    }

    fn push_dynamic(&mut self, node: u32) {
        let now_ms = EPOCH_UNIX_MS + self.now() / MS;
        let n = &mut self.nodes[node as usize];
        n.dynamic_seq += 1;
        let s = sample(&mut self.rng, &n.descriptor, n.dynamic_seq, now_ms);
        if n.replica {
            // A replica stores its own sample directly.
            if let Some(dir) = &mut n.view.borrow_mut().directory {
                dir.upsert_dynamic(&n.descriptor.node, s);
            }
        }
        let key = Arc::clone(&n.key);
        let packet = n.agent.dynamic_packet(&s, &key);
        for r in self.replicas.clone() {
            if r != node {
                self.send(node, r, packet.clone());
            }
        }
    }

    /// Starts every alive node's dynamic pushes, each at a random phase.
    pub fn start_dynamic(&mut self, every: Micros) {
        self.dynamic_interval = Some(every.max(1));
        for i in 0..self.len() {
            let n = &self.nodes[i as usize];
            if n.alive {
                let life = n.life;
                let phase = self.rng.random_range(0..every.max(1));
                self.queue.after(phase, Ev::Dynamic { node: i, life });
            }
        }
    }

    /// Whether every alive node knows every other alive node as up and at
    /// least [`WARM_DESCRIPTOR_COVERAGE`] of the (node, descriptor) pairs
    /// are held.
    pub fn converged(&self) -> bool {
        let alive = self.alive_count();
        self.nodes
            .iter()
            .filter(|n| n.alive)
            .all(|n| n.members_up + 1 >= alive)
            && self.coverage().1 >= WARM_DESCRIPTOR_COVERAGE
    }

    /// (share of member pairs up, share of descriptors held) over alive
    /// nodes.
    pub fn coverage(&self) -> (f64, f64) {
        let alive = u64::from(self.alive_count());
        let total = u64::from(self.len());
        let (mut up, mut known) = (0u64, 0u64);
        for n in self.nodes.iter().filter(|n| n.alive) {
            up += u64::from(n.members_up).min(alive.saturating_sub(1));
            known += u64::from(n.view.borrow().known());
        }
        let pairs = (alive * alive.saturating_sub(1)).max(1);
        (
            up as f64 / pairs as f64,
            known as f64 / (alive * total).max(1) as f64,
        )
    }

    pub fn alive_count(&self) -> u32 {
        self.nodes.iter().filter(|n| n.alive).count() as u32
    }

    /// Publishes a new version of `node`'s descriptor and watches it spread.
    pub fn change_descriptor(&mut self, node: u32) -> u64 {
        let now = self.now();
        let n = &mut self.nodes[node as usize];
        let mut d: StaticDescriptor = (*n.descriptor).clone();
        d.version += 1;
        d.labels.insert("changed".to_owned(), format!("at-{now}"));
        let version = d.version;
        let d = Arc::new(d);
        n.descriptor = Arc::clone(&d);
        let key = Arc::clone(&n.key);
        if let Err(e) = n.agent.publish(&d, &key) {
            unreachable!("publishing a generated descriptor failed: {e}");
        }
        self.change = Some(Watch::new(node, version, now, self.nodes.len()));
        self.drain(node);
        self.check_change(node);
        version
    }

    /// Kills `node` (its timers and the packets to it are dropped) and
    /// watches who declares it down.
    pub fn kill(&mut self, node: u32) {
        let now = self.now();
        let n = &mut self.nodes[node as usize];
        n.alive = false;
        n.life += 1;
        self.down = Some(Watch::new(node, 0, now, self.nodes.len()));
    }

    /// Restarts a killed node as a new life of its identity, with an empty
    /// membership and view, announcing to a replica.
    pub fn restart(&mut self, node: u32) {
        let total = self.len();
        let seed = self.rng.random();
        let n = &mut self.nodes[node as usize];
        if n.alive {
            return;
        }
        let id = n.agent.identity().renew_id();
        let view = Rc::new(RefCell::new(View::new(total, n.replica)));
        n.agent = Agent::new(
            id,
            self.config.clone(),
            self.keyring.clone(),
            Arc::clone(&self.verifier),
            SimSink(Rc::clone(&view)),
            Arc::clone(&n.counters),
            seed,
        );
        n.view = view;
        n.alive = true;
        n.life += 1;
        n.members_up = 0;
        let life = n.life;
        let r = self.replicas.len().max(1) as u32;
        let seed_node = (0..r).find(|&s| s != node && self.nodes[s as usize].alive);
        self.queue.after(
            0,
            Ev::Start {
                node,
                life,
                seed: seed_node,
            },
        );
    }

    /// Counters of every node added up.
    pub fn counters(&self) -> CounterSnapshot {
        let mut t = CounterSnapshot::default();
        for n in &self.nodes {
            let c = n.counters.snapshot();
            t.packets_in += c.packets_in;
            t.bytes_in += c.bytes_in;
            t.packets_out += c.packets_out;
            t.bytes_out += c.bytes_out;
            t.dropped_unauthenticated += c.dropped_unauthenticated;
            t.dropped_malformed += c.dropped_malformed;
            t.rejected_forged += c.rejected_forged;
            t.rejected_unknown_signer += c.rejected_unknown_signer;
            t.rejected_invalid += c.rejected_invalid;
        }
        t
    }

    /// A SWIM gossip packet from `from` to `to`, sealed with `keyring`,
    /// carrying one descriptor item: `victim`'s descriptor at `version`,
    /// signed with `signer`'s key. With `signer != victim` it is a forgery.
    pub fn crafted_descriptor_packet(
        &mut self,
        keyring: &Keyring,
        from: u32,
        to: u32,
        victim: u32,
        signer: u32,
        version: u64,
    ) -> Vec<u8> {
        let mut d: StaticDescriptor = (*self.nodes[victim as usize].descriptor).clone();
        d.version = version;
        d.tags.insert("forged".to_owned());
        let body = d.encode().unwrap_or_default();
        let item = self.nodes[signer as usize]
            .key
            .sign(&d.node, ItemKind::Static, version, body)
            .encode();
        let header = Header {
            src: self.current_id(from),
            src_incarnation: 0,
            dst: self.current_id(to),
            message: Message::Gossip,
        };
        let mut data = Vec::new();
        // Encoding into a Vec cannot run out of room.
        if PostcardCodec.encode_header(&header, &mut data).is_err() {
            unreachable!("encoding a foca header into a Vec failed");
        }
        data.extend_from_slice(&0u16.to_be_bytes());
        data.extend_from_slice(&(item.len() as u16).to_be_bytes());
        data.extend_from_slice(&item);
        let nonce: [u8; 12] = self.rng.random();
        keyring.seal(Kind::Swim, &data, nonce)
    }

    /// Puts a packet on the wire to `to`, from nobody in particular.
    pub fn inject(&mut self, to: u32, packet: Vec<u8>, delay: Micros) {
        self.queue.after(delay, Ev::Deliver { to, packet });
    }
}

/// The next life of an identity.
trait RenewId {
    fn renew_id(&self) -> SimId;
}

impl RenewId for SimId {
    fn renew_id(&self) -> SimId {
        SimId {
            index: self.index,
            incarnation: self.incarnation.wrapping_add(1),
        }
    }
}
