//! One member's gossip state machine: foca's SWIM plus sealing, signing and
//! the descriptor handler. It does no IO and reads no clock: the caller
//! feeds packets and timer events and carries out the [`Event`]s, which is
//! what lets the simulator run the very same code on simulated time.

use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foca::{Foca, Member, Notification, PeriodicParams, PostcardCodec, Runtime, Timer};
use rand010::rngs::SmallRng;
use rand010::{RngExt, SeedableRng};
use xtreem_directory::{DynamicSample, StaticDescriptor};

use crate::counters::Counters;
use crate::envelope::{ENVELOPE_OVERHEAD, Keyring, Kind};
use crate::handler::{DescriptorHandler, DescriptorSink};
use crate::signing::{ItemKind, MAX_ITEM_BYTES, NodeKey, SignedItem, StaticVerifier};
use crate::{GossipError, GossipId};

/// Timing of the membership protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct GossipConfig {
    pub probe_period: Duration,
    pub probe_rtt: Duration,
    pub suspect_to_down: Duration,
    pub gossip_interval: Duration,
    pub gossip_fanout: usize,
    /// Largest datagram sent, envelope included.
    pub max_packet_size: usize,
    /// How often a node re-offers its own descriptor, which heals nodes that
    /// missed it (e.g. joined while it spread).
    pub republish_interval: Duration,
    pub remove_down_after: Duration,
    /// How often a node announces itself to members it believes down.
    pub announce_to_down_interval: Duration,
    /// Expected site size; sets how often each update is retransmitted.
    pub cluster_size_hint: u32,
}

impl GossipConfig {
    /// Defaults for a site's LAN: a dead node is suspected within about a
    /// second and declared down two seconds later.
    ///
    /// The 250 ms probe period keeps the slowest detections of a
    /// 10,000-node site under 5 s (with 500 ms, 3 of 30 simulated failures
    /// took 5.1-5.3 s); it costs about 300 B/s more per node.
    pub fn lan(cluster_size_hint: u32) -> GossipConfig {
        GossipConfig {
            probe_period: Duration::from_millis(250),
            probe_rtt: Duration::from_millis(125),
            suspect_to_down: Duration::from_secs(2),
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            max_packet_size: 1400,
            republish_interval: Duration::from_secs(30),
            remove_down_after: Duration::from_secs(3600),
            announce_to_down_interval: Duration::from_secs(3),
            cluster_size_hint,
        }
    }

    fn foca(&self) -> foca::Config {
        let size = NonZeroU32::new(self.cluster_size_hint.max(1)).unwrap_or(NonZeroU32::MIN);
        let mut config = foca::Config::new_lan(size);
        config.probe_period = self.probe_period;
        config.probe_rtt = self.probe_rtt;
        config.suspect_to_down_after = self.suspect_to_down;
        config.remove_down_after = Some(self.remove_down_after);
        config.max_packet_size = NonZeroUsize::new(
            self.max_packet_size
                .saturating_sub(ENVELOPE_OVERHEAD + 1)
                .max(256),
        )
        .unwrap_or(NonZeroUsize::MIN);
        config.periodic_gossip = Some(PeriodicParams {
            frequency: self.gossip_interval,
            num_members: NonZeroUsize::new(self.gossip_fanout.max(1)).unwrap_or(NonZeroUsize::MIN),
        });
        // A healed partition merges again when either side announces to a
        // member it had declared down: do that every few seconds, not
        // memberlist's 65 s, so a site is one view again soon after.
        config.periodic_announce_to_down_members = Some(PeriodicParams {
            frequency: self.announce_to_down_interval,
            num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
        });
        // Retransmissions grow with log(size) as in memberlist; at least 4.
        let tx = config.max_transmissions.get().max(4);
        config.max_transmissions = NonZeroU8::new(tx).unwrap_or(NonZeroU8::MIN);
        config
    }
}

/// What the caller must do or may want to know after a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<I> {
    /// Send this sealed datagram to that member.
    Send {
        to: I,
        packet: Vec<u8>,
    },
    /// Call [`Agent::handle_timer`] with this after the delay.
    Timer {
        timer: Timer<I>,
        after: Duration,
    },
    MemberUp(I),
    MemberDown(I),
    /// This node was declared down while alive and rejoined under a new
    /// incarnation of its identity.
    Rejoined(I),
    /// This node lost contact with every member (or regained it).
    Isolated,
    Connected,
}

/// A verified dynamic sample pushed to this node.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicUpdate {
    pub node: String,
    pub sample: DynamicSample,
}

struct Outbox<'a, I> {
    keyring: &'a Keyring,
    nonces: &'a mut SmallRng,
    counters: &'a Counters,
    events: &'a mut Vec<Event<I>>,
}

impl<I: GossipId> Runtime<I> for Outbox<'_, I> {
    fn notify(&mut self, notification: Notification<'_, I>) {
        let event = match notification {
            Notification::MemberUp(id) => Event::MemberUp(id.clone()),
            Notification::MemberDown(id) => Event::MemberDown(id.clone()),
            Notification::Rename(_, new) => Event::MemberUp(new.clone()),
            Notification::Rejoin(id) => Event::Rejoined(id.clone()),
            Notification::Idle | Notification::Defunct => Event::Isolated,
            Notification::Active => Event::Connected,
        };
        self.events.push(event);
    }

    fn send_to(&mut self, to: I, data: &[u8]) {
        let nonce: [u8; 12] = self.nonces.random();
        let packet = self.keyring.seal(Kind::Swim, data, nonce);
        Counters::add(&self.counters.packets_out, 1);
        Counters::add(&self.counters.bytes_out, packet.len() as u64);
        self.events.push(Event::Send { to, packet });
    }

    fn submit_after(&mut self, timer: Timer<I>, after: Duration) {
        self.events.push(Event::Timer { timer, after });
    }
}

type Swim<I, S> = Foca<I, PostcardCodec, SmallRng, DescriptorHandler<S>>;

/// One gossip member.
pub struct Agent<I: GossipId, S: DescriptorSink> {
    foca: Swim<I, S>,
    config: GossipConfig,
    keyring: Keyring,
    verifier: Arc<Mutex<StaticVerifier>>,
    nonces: SmallRng,
    counters: Arc<Counters>,
    events: Vec<Event<I>>,
    own_item: Option<Vec<u8>>,
}

impl<I: GossipId, S: DescriptorSink> Agent<I, S> {
    /// `seed` makes the agent's random choices reproducible; daemons pass
    /// one from the system's random source.
    pub fn new(
        identity: I,
        config: GossipConfig,
        keyring: Keyring,
        verifier: Arc<Mutex<StaticVerifier>>,
        sink: S,
        counters: Arc<Counters>,
        seed: u64,
    ) -> Agent<I, S> {
        let handler = DescriptorHandler::new(
            identity.node_name().to_owned(),
            sink,
            Arc::clone(&verifier),
            Arc::clone(&counters),
        );
        let foca = Foca::with_custom_broadcast(
            identity,
            config.foca(),
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
            handler,
        );
        Agent {
            foca,
            config,
            keyring,
            verifier,
            nonces: SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            counters,
            events: Vec::new(),
            own_item: None,
        }
    }

    pub fn identity(&self) -> &I {
        self.foca.identity()
    }

    pub fn config(&self) -> &GossipConfig {
        &self.config
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn set_keyring(&mut self, keyring: Keyring) {
        self.keyring = keyring;
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Members currently believed alive (not this node).
    pub fn alive_members(&self) -> impl Iterator<Item = &I> {
        self.foca.iter_members().map(|m| m.id())
    }

    pub fn alive_count(&self) -> usize {
        self.foca.num_members()
    }

    /// Everything the caller must act on since the last call.
    pub fn take_events(&mut self) -> Vec<Event<I>> {
        std::mem::take(&mut self.events)
    }

    fn outbox(&mut self) -> (&mut Swim<I, S>, Outbox<'_, I>) {
        (
            &mut self.foca,
            Outbox {
                keyring: &self.keyring,
                nonces: &mut self.nonces,
                counters: &self.counters,
                events: &mut self.events,
            },
        )
    }

    /// Asks `seed` to let this node join its site's gossip.
    pub fn announce(&mut self, seed: I) -> Result<(), GossipError> {
        let (foca, mut out) = self.outbox();
        foca.announce(seed, &mut out).map_err(GossipError::from)
    }

    /// Installs an already-formed member list in one step: every identity
    /// given becomes a member believed alive at incarnation 0, without
    /// queueing a membership update per member for dissemination. Returns
    /// how many members are active afterwards.
    ///
    /// This is the state a node holds once a join to a formed site has
    /// completed (its seed's `Feed` plus the updates that followed), so
    /// starting there models "the site has been running" without
    /// replaying the join storm that led to it; the simulator uses it for
    /// large sites (a real join of N nodes costs about N³ with foca 2's
    /// member list). What it does not do:
    ///
    /// * It installs membership only, never descriptors: those still
    ///   arrive signed through gossip (or the caller's own already
    ///   verified store) and are checked against the roster as usual.
    /// * It tells nobody: the other members learn about this node from its
    ///   probes and gossip, as after any join. A daemon must not pass
    ///   identities it has not learned from the site (e.g. the roster
    ///   alone says who may join, not who is up), or it would probe and
    ///   then declare down nodes that never ran.
    ///
    /// This node's own identity is skipped; an earlier life of it (same
    /// address, other incarnation) is recorded as down, as foca does for
    /// any update about it. Like any update, a member already held in a
    /// newer state keeps it. The agent becomes connected (and asks for its
    /// probe and gossip timers through [`Event::Timer`]) when at least one
    /// member is active, and reports each new member as
    /// [`Event::MemberUp`].
    ///
    /// foca 2 still looks each identity up in its `Vec` of members, so
    /// seeding N members costs about N²/2 comparisons (some 20 ms at
    /// 10,000 members; a join costs that and more).
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use xtreem_directory::StaticDescriptor;
    /// # use xtreem_gossip::{Agent, Counters, DescriptorSink, Event, GossipConfig, Keyring, NodeId, Roster, SiteKey, StaticVerifier};
    /// # struct Sink;
    /// # impl DescriptorSink for Sink {
    /// #     fn known_version(&self, _: &str) -> Option<u64> { None }
    /// #     fn accept(&mut self, _: Arc<StaticDescriptor>) {}
    /// # }
    /// let id = |name: &str, port| NodeId { name: name.into(), addr: ([127, 0, 0, 1], port).into(), incarnation: 0 };
    /// let verifier = Arc::new(Mutex::new(StaticVerifier::new(Roster::new(Vec::<(String, [u8; 32])>::new()))));
    /// let mut agent = Agent::new(id("a", 1), GossipConfig::lan(3), Keyring::new(SiteKey::new(1, [1; 32]), None),
    ///     verifier, Sink, Arc::new(Counters::default()), 1);
    /// assert_eq!(agent.warm_start([id("a", 1), id("b", 2), id("c", 3)])?, 2);
    /// assert!(!agent.take_events().iter().any(|e| matches!(e, Event::Send { .. })));
    /// # Ok::<(), xtreem_gossip::GossipError>(())
    /// ```
    pub fn warm_start(
        &mut self,
        members: impl IntoIterator<Item = I>,
    ) -> Result<usize, GossipError> {
        let own = self.foca.identity().clone();
        let updates = members
            .into_iter()
            .filter(|id| *id != own)
            .map(Member::alive);
        let (foca, mut out) = self.outbox();
        foca.apply_many(updates, false, &mut out)?;
        Ok(foca.num_members())
    }

    /// Feeds a timer event previously asked for with [`Event::Timer`].
    pub fn handle_timer(&mut self, timer: Timer<I>) {
        let (foca, mut out) = self.outbox();
        if let Err(e) = foca.handle_timer(timer, &mut out) {
            tracing::debug!(error = %e, "gossip timer");
        }
    }

    /// Feeds one datagram. Returns a dynamic sample when the datagram
    /// carried one (only directory replicas receive those).
    pub fn handle_packet(&mut self, packet: &[u8]) -> Option<DynamicUpdate> {
        Counters::add(&self.counters.packets_in, 1);
        Counters::add(&self.counters.bytes_in, packet.len() as u64);
        let (kind, payload) = match self.keyring.open(packet) {
            Ok(opened) => opened,
            Err(GossipError::Unauthenticated) => {
                Counters::add(&self.counters.dropped_unauthenticated, 1);
                return None;
            }
            Err(_) => {
                Counters::add(&self.counters.dropped_malformed, 1);
                return None;
            }
        };
        match kind {
            Kind::Swim => {
                let (foca, mut out) = self.outbox();
                if let Err(e) = foca.handle_data(&payload, &mut out) {
                    // Data from ourselves or from a member we declared down
                    // is routine; anything else is a broken packet.
                    if !matches!(e, foca::Error::DataFromOurselves) {
                        Counters::add(&self.counters.dropped_malformed, 1);
                    }
                }
                None
            }
            Kind::Dynamic => self.open_dynamic(&payload),
            Kind::Descriptor => {
                // Through the broadcast path: checked like any piggybacked
                // descriptor, and spread further if it was news here.
                if payload.len() > MAX_ITEM_BYTES {
                    Counters::add(&self.counters.rejected_invalid, 1);
                } else if let Err(e) = self.foca.add_broadcast(&payload) {
                    tracing::debug!(error = %e, "descriptor datagram");
                }
                None
            }
        }
    }

    /// This node's sealed descriptor, to send straight to a member that
    /// just came up (see [`Kind::Descriptor`](crate::envelope::Kind)).
    pub fn descriptor_packet(&mut self) -> Option<Vec<u8>> {
        let item = self.own_item.as_ref()?;
        let nonce: [u8; 12] = self.nonces.random();
        let packet = self.keyring.seal(Kind::Descriptor, item, nonce);
        Counters::add(&self.counters.packets_out, 1);
        Counters::add(&self.counters.bytes_out, packet.len() as u64);
        Some(packet)
    }

    fn open_dynamic(&mut self, payload: &[u8]) -> Option<DynamicUpdate> {
        let item = match SignedItem::decode(payload) {
            Ok(item) if item.kind == ItemKind::Dynamic => item,
            _ => {
                Counters::add(&self.counters.dropped_malformed, 1);
                return None;
            }
        };
        let checked = match self.verifier.lock() {
            Ok(v) => v.roster().verify(&item),
            Err(_) => Err(GossipError::Key("verifier lock poisoned".into())),
        };
        match checked {
            Ok(()) => {}
            Err(GossipError::UnknownSigner(_)) => {
                Counters::add(&self.counters.rejected_unknown_signer, 1);
                return None;
            }
            Err(_) => {
                Counters::add(&self.counters.rejected_forged, 1);
                return None;
            }
        }
        match DynamicSample::decode(&item.body) {
            Ok(sample) if sample.seq == item.version => Some(DynamicUpdate {
                node: item.node,
                sample,
            }),
            _ => {
                Counters::add(&self.counters.rejected_invalid, 1);
                None
            }
        }
    }

    /// Signs and starts spreading this node's descriptor.
    pub fn publish(
        &mut self,
        descriptor: &StaticDescriptor,
        key: &NodeKey,
    ) -> Result<(), GossipError> {
        if descriptor.node != self.foca.identity().node_name() {
            return Err(GossipError::Invalid(format!(
                "descriptor names node `{}`, this agent is `{}`",
                descriptor.node,
                self.foca.identity().node_name()
            )));
        }
        let body = descriptor
            .encode()
            .map_err(|e| GossipError::Invalid(e.to_string()))?;
        let item = key
            .sign(&descriptor.node, ItemKind::Static, descriptor.version, body)
            .encode();
        let room = self
            .config
            .max_packet_size
            .saturating_sub(ENVELOPE_OVERHEAD + 64);
        if item.len() > MAX_ITEM_BYTES.min(room) {
            return Err(GossipError::Invalid(format!(
                "the signed descriptor is {} bytes; gossip carries at most {} (fewer tags, labels or services)",
                item.len(),
                MAX_ITEM_BYTES.min(room)
            )));
        }
        self.foca.add_broadcast(&item)?;
        self.own_item = Some(item);
        Ok(())
    }

    /// Offers again the descriptors that were refused only because the
    /// roster did not list their signer yet; call after a roster change.
    pub fn retry_unknown_signers(&mut self) {
        let retry = match self.verifier.lock() {
            Ok(mut v) => v.take_retryable(),
            Err(_) => Vec::new(),
        };
        for item in retry {
            if let Err(e) = self.foca.add_broadcast(&item) {
                tracing::debug!(error = %e, "retrying a descriptor");
            }
        }
    }

    /// Offers this node's descriptor again (see
    /// [`GossipConfig::republish_interval`]).
    pub fn republish(&mut self) {
        if let Some(item) = self.own_item.clone()
            && let Err(e) = self.foca.add_broadcast(&item)
        {
            tracing::debug!(error = %e, "republishing descriptor");
        }
    }

    /// A sealed, signed dynamic sample to send to each directory replica.
    pub fn dynamic_packet(&mut self, sample: &DynamicSample, key: &NodeKey) -> Vec<u8> {
        let item = key.sign(
            self.foca.identity().node_name(),
            ItemKind::Dynamic,
            sample.seq,
            sample.encode(),
        );
        let nonce: [u8; 12] = self.nonces.random();
        let packet = self.keyring.seal(Kind::Dynamic, &item.encode(), nonce);
        Counters::add(&self.counters.packets_out, 1);
        Counters::add(&self.counters.bytes_out, packet.len() as u64);
        packet
    }

    /// Tells the site this node is leaving on purpose.
    pub fn leave(&mut self) {
        let (foca, mut out) = self.outbox();
        if let Err(e) = foca.leave_cluster(&mut out) {
            tracing::debug!(error = %e, "leaving gossip");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::SiteKey;
    use crate::identity::NodeId;
    use crate::signing::Roster;

    #[derive(Default)]
    struct NoSink;

    impl DescriptorSink for NoSink {
        fn known_version(&self, _node: &str) -> Option<u64> {
            None
        }
        fn accept(&mut self, _descriptor: Arc<StaticDescriptor>) {}
    }

    fn id(name: &str, port: u16, incarnation: u16) -> NodeId {
        NodeId {
            name: name.to_owned(),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            incarnation,
        }
    }

    fn agent(me: NodeId) -> Agent<NodeId, NoSink> {
        let verifier = Arc::new(Mutex::new(StaticVerifier::new(Roster::new(Vec::<(
            String,
            [u8; 32],
        )>::new(
        )))));
        Agent::new(
            me,
            GossipConfig::lan(5),
            Keyring::new(SiteKey::new(1, [3; 32]), None),
            verifier,
            NoSink,
            Arc::new(Counters::default()),
            7,
        )
    }

    #[test]
    fn a_warm_start_installs_members_without_sending_anything() {
        let me = id("n1", 1001, 0);
        let mut a = agent(me.clone());
        let others: Vec<NodeId> = (2..=5).map(|i| id(&format!("n{i}"), 1000 + i, 0)).collect();
        // Our own identity and an earlier life of it are in the list too.
        let mut given = others.clone();
        given.push(me.clone());
        given.push(id("n1", 1001, u16::MAX));
        assert_eq!(a.warm_start(given).unwrap(), 4);
        assert_eq!(a.alive_count(), 4);
        let mut alive: Vec<&NodeId> = a.alive_members().collect();
        alive.sort_by_key(|m| m.addr);
        assert_eq!(alive, others.iter().collect::<Vec<_>>());
        // Nothing queued for dissemination and nothing sent: the site is
        // taken to know all of it already.
        assert_eq!(a.foca.updates_backlog(), 0);
        let events = a.take_events();
        assert!(!events.iter().any(|e| matches!(e, Event::Send { .. })));
        let ups = events
            .iter()
            .filter(|e| matches!(e, Event::MemberUp(_)))
            .count();
        assert_eq!(ups, 4);
        assert!(events.contains(&Event::Connected));
        // Connected: the probe timer is asked for.
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Timer {
                timer: Timer::ProbeRandomMember(_),
                ..
            }
        )));

        // Applying the same list again changes nothing.
        assert_eq!(a.warm_start(others).unwrap(), 4);
        assert!(a.take_events().is_empty());
    }

    #[test]
    fn a_warm_started_agent_probes_its_members() {
        let mut a = agent(id("n1", 1001, 0));
        a.warm_start([id("n2", 1002, 0)]).unwrap();
        let probe = a
            .take_events()
            .into_iter()
            .find_map(|e| match e {
                Event::Timer {
                    timer: timer @ Timer::ProbeRandomMember(_),
                    ..
                } => Some(timer),
                _ => None,
            })
            .unwrap();
        a.handle_timer(probe);
        let sent: Vec<NodeId> = a
            .take_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Send { to, .. } => Some(to),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec![id("n2", 1002, 0)]);
    }
}
