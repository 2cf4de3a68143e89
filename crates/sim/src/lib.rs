//! Deterministic simulation of Xtreem's directory (SRDS).
//!
//! # What is real
//!
//! Every simulated node runs the real [`xtreem_gossip::Agent`] (foca's
//! SWIM, ChaCha20-Poly1305 sealing with the site key, Ed25519-signed
//! descriptors checked against the roster, the descriptor handler), and
//! directory replicas keep a real [`xtreem_directory::Directory`]; site
//! summaries are [`xtreem_directory::SiteSummary::of`] and queries are
//! parsed and evaluated by the real query code. Packets are the real bytes,
//! so byte counts are what a UDP socket would carry (without IP/UDP
//! headers).
//!
//! # What is simulated
//!
//! * Time: a virtual clock in microseconds and an event queue ordered by
//!   `(time, scheduling order)` ([`clock`]). No wall clock is read except to
//!   measure the CPU cost of queries and the run's own duration, which
//!   never feed back into the simulation.
//! * The network ([`network`]): one-way latency per packet (200 µs ± 50 µs
//!   inside a site, 50 ms between sites), optional loss, partitions.
//!   No bandwidth limit and no queueing: packets never wait for each other.
//! * Nodes ([`node`], [`world`]): killed nodes lose their pending timers
//!   and the packets sent to them; a restarted node is a new life
//!   (incarnation + 1) with empty state. CPU time inside a node is zero
//!   in simulated time (except for federated queries, below).
//! * Identity: [`id::SimId`] is 8 bytes (index, incarnation); node names
//!   (`n00042`) come from a process-wide append-only table of leaked
//!   strings, identical in every run (see [`id`]).
//! * A node's descriptor sink is a compact [`node::View`] (a version per
//!   node index); replicas also keep the full directory. One
//!   `StaticVerifier` is shared by all nodes of a site, which shares the
//!   decoded descriptors (hash-consing) and checks each signature once.
//!
//! Everything random comes from seeded `SmallRng`s and only ordered
//! collections decide what happens, so a seed gives the same run.
//!
//! # Limits
//!
//! * Membership always forms by real joins: nodes start in waves and
//!   announce to a replica; SWIM spreads them. foca 2.0 keeps members in a
//!   `Vec` and looks each update up linearly, so a join storm costs about
//!   N² · max_transmissions lookups of O(N): fine at 1,000 nodes, far too
//!   slow at 10,000 (the gossip crate exposes no way to seed a member list,
//!   see the crate's report).
//! * Above [`scenarios::PRELOAD_ABOVE`] nodes, views start holding every
//!   node's first descriptor (as if the site had been running): spreading
//!   N descriptors from scratch is N² deliveries. Nodes still publish and
//!   republish over gossip, and changes always spread by gossip.
//! * Federation: only [`scenarios::FEDERATION_GOSSIP_SITES`] sites run
//!   gossip; the other replicas are filled directly. Query latency is
//!   computed from the network model plus the real CPU time of each
//!   replica's `Directory::query` (so its low percentiles vary a little
//!   between runs; everything else does not).
//! * Peak RSS is the process's VmHWM: a second scenario in one process
//!   reports at least the first one's peak.

pub mod clock;
pub mod descriptors;
pub mod id;
pub mod network;
pub mod node;
pub mod report;
pub mod scenarios;
pub mod world;

pub use id::SimId;
pub use report::{FederationReport, SiteReport};
pub use scenarios::{
    FederationScenario, SiteOptions, SiteScenario, run_federation, run_federation_with, run_site,
    run_site_with,
};

#[cfg(test)]
mod tests;
