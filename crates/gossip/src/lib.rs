//! Gossip inside a site: SWIM membership (the `foca` crate) with
//! authenticated packets and node-signed descriptors.
//!
//! * Every datagram is sealed with the site's gossip key
//!   ([`envelope::Keyring`], ChaCha20-Poly1305): hosts outside the site can
//!   neither read nor inject; garbage is dropped and counted.
//! * A node's static descriptor is signed with that node's own Ed25519 key
//!   and checked against the site's [`Roster`]: members share the site key
//!   but none can publish or change another member's descriptor.
//! * [`Agent`] does no IO and reads no clock. The daemon drives it with a
//!   UDP socket and tokio timers; the simulator with simulated ones.
//!
//! ```
//! use xtreem_gossip::envelope::{Keyring, Kind, SiteKey};
//! let ring = Keyring::new(SiteKey::new(1, [7; 32]), None);
//! let packet = ring.seal(Kind::Swim, b"ping", [0; 12]);
//! assert_eq!(ring.open(&packet).unwrap().1, b"ping");
//! assert!(Keyring::new(SiteKey::new(1, [8; 32]), None).open(&packet).is_err());
//! ```

pub mod agent;
pub mod counters;
pub mod envelope;
pub mod handler;
pub mod identity;
pub mod signing;

pub use agent::{Agent, DynamicUpdate, Event, GossipConfig};
pub use counters::{CounterSnapshot, Counters};
pub use envelope::{Keyring, SiteKey};
pub use foca::Timer;
pub use handler::{DescriptorKey, DescriptorSink};
pub use identity::{GossipId, NodeId};
pub use signing::{ItemKind, NodeKey, Roster, SignedItem, StaticVerifier};

#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    #[error("packet not sealed with this site's gossip key")]
    Unauthenticated,
    #[error("malformed gossip data: {0}")]
    Malformed(&'static str),
    #[error("gossip item of {0} bytes is larger than allowed")]
    Oversized(usize),
    #[error("no gossip key registered for node `{0}`")]
    UnknownSigner(String),
    #[error("signature does not match node `{0}`'s key")]
    BadSignature(String),
    #[error("invalid gossip item: {0}")]
    Invalid(String),
    #[error("gossip key: {0}")]
    Key(String),
    #[error("membership protocol: {0}")]
    Protocol(String),
}

impl From<foca::Error> for GossipError {
    fn from(e: foca::Error) -> Self {
        GossipError::Protocol(e.to_string())
    }
}
