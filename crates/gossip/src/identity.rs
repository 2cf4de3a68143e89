//! Who a gossip member is.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// What the gossip layer needs from a member identity. Daemons use
/// [`NodeId`]; the simulator uses a compact one so that 10,000 simulated
/// nodes each knowing every other fit in memory.
pub trait GossipId:
    foca::Identity + Serialize + DeserializeOwned + std::hash::Hash + Send + 'static
{
    /// The node's name, which signed items are checked against.
    fn node_name(&self) -> &str;
}

/// A daemon's gossip identity. `incarnation` changes on every start so the
/// site sees a restarted node as a new life of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeId {
    pub name: String,
    pub addr: SocketAddr,
    pub incarnation: u16,
}

impl foca::Identity for NodeId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(NodeId {
            incarnation: self.incarnation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Serial-number arithmetic: the later life of a node wins even
        // across the u16 wrap.
        let ahead = self.incarnation.wrapping_sub(adversary.incarnation);
        ahead != 0 && ahead < u16::MAX / 2
    }
}

impl GossipId for NodeId {
    fn node_name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    #[test]
    fn a_later_life_wins_even_across_the_wrap() {
        let id = |incarnation| NodeId {
            name: "n".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            incarnation,
        };
        assert!(id(2).win_addr_conflict(&id(1)));
        assert!(!id(1).win_addr_conflict(&id(2)));
        assert!(id(0).win_addr_conflict(&id(u16::MAX)));
        assert_eq!(id(u16::MAX).renew().unwrap().incarnation, 0);
    }
}
