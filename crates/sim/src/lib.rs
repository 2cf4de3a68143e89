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
//! * Up to [`scenarios::WARM_START_ABOVE`] nodes, membership forms by
//!   real joins: nodes start in waves of 50 every 100 ms and announce to a
//!   replica; SWIM spreads them. foca 2.0 keeps members in a `Vec` and
//!   looks every received update up linearly (`Members::apply`), so a join
//!   storm costs about N² · max_transmissions lookups of O(N) each:
//!   seconds at 400 nodes, minutes at 1,000-4,000, hours at 10,000.
//! * Above it, the site starts formed ([`world::World::warm_start_all`]):
//!   each node, at a random instant within 30 s (the longest periodic
//!   interval, so timers have random phases as in a running site), gets
//!   every node as an alive member through [`xtreem_gossip::Agent::warm_start`]
//!   (foca's `apply_many(.., do_broadcast: false, ..)`: nothing is
//!   re-gossiped, as in a site whose joins finished long ago). That still
//!   costs N²/2 comparisons per node, N³/2 in all: about 200 s of the
//!   ~4 minutes a 10,000-node run takes. It installs membership only;
//!   descriptors come from the preload below or signed by gossip, and a
//!   change always spreads by gossip. What this leaves unmeasured is the
//!   formation of a large site (the join storm), not its steady state.
//! * foca's `Broadcasts::fill_with_len_prefix` pops the whole custom
//!   broadcast backlog whenever a packet has room left that no item fits,
//!   so while descriptors flood (N items in every node's backlog) every
//!   packet sent costs O(N log N): most of the CPU of a from-scratch
//!   warm-up.
//! * Above [`scenarios::PRELOAD_ABOVE`] nodes, views start holding every
//!   node's first descriptor (as if the site had been running): spreading
//!   N descriptors from scratch is N² deliveries, and when N nodes publish
//!   at once each node's backlog holds N items that leave a few per
//!   packet, so the flood lasts minutes at 1,000 nodes (tens of KB/s per
//!   node meanwhile). Nodes still publish and republish over gossip, and
//!   changes always spread by gossip.
//! * The warm-up ends when every node holds every other as up and
//!   [`world::WARM_DESCRIPTOR_COVERAGE`] of the descriptors are held:
//!   epidemic spreading with bounded retransmissions leaves a few holes,
//!   and a republished descriptor only reaches about max_transmissions
//!   nodes (holders do not forward a version they have), so holes heal
//!   slowly. The report gives the coverage reached.
//! * Federation: only [`scenarios::FEDERATION_GOSSIP_SITES`] sites run
//!   gossip; the other replicas are filled directly. Query latency is
//!   computed from the network model plus the real CPU time of each
//!   replica's `Directory::query` (so it varies a little between runs;
//!   nothing else does).
//! * Peak RSS is the process's VmHWM: a second scenario in one process
//!   reports at least the first one's peak.
//! * Node names live in a process-wide table (see [`id`]); a run is
//!   single-threaded and several runs may go on in parallel threads.

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
