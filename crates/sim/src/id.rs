//! The compact gossip identity of a simulated node, and node names.
//!
//! Node names come from a process-wide, append-only table of leaked
//! strings: index `i` is always named `n00042`-style (`n` and at least five
//! digits), in every run and every thread, so the table can be shared by
//! concurrent runs (e.g. parallel tests) and only ever grows to the largest
//! index used (about 10 bytes a node; 100 KiB for 10,000 nodes). Names sort
//! like their indices up to 100,000 nodes.

use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use xtreem_gossip::GossipId;

static NAMES: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());

fn format_name(index: u32) -> String {
    format!("n{index:05}")
}

/// Makes sure names exist for indices `0..count`.
pub fn ensure_names(count: u32) {
    let have = NAMES.read().map(|t| t.len()).unwrap_or(0);
    if have >= count as usize {
        return;
    }
    // A poisoned lock only means another thread panicked while pushing
    // leaked strings; the table itself is still a valid prefix.
    let mut table = NAMES.write().unwrap_or_else(|p| p.into_inner());
    while table.len() < count as usize {
        let i = table.len() as u32;
        table.push(Box::leak(format_name(i).into_boxed_str()));
    }
}

/// The name of node `index`.
pub fn node_name(index: u32) -> &'static str {
    if let Some(name) = NAMES
        .read()
        .ok()
        .and_then(|t| t.get(index as usize).copied())
    {
        return name;
    }
    ensure_names(index.saturating_add(1));
    NAMES
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(index as usize)
        .copied()
        .unwrap_or("n-unnamed")
}

/// The index named by `name`, if it is a simulator name.
pub fn name_index(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('n')?;
    if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index: u32 = digits.parse().ok()?;
    (format_name(index).len() == name.len()).then_some(index)
}

/// A simulated node's gossip identity: 8 bytes instead of a name and a
/// socket address, which keeps 10,000 member lists of 10,000 in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SimId {
    pub index: u32,
    pub incarnation: u16,
}

impl SimId {
    pub fn new(index: u32) -> SimId {
        ensure_names(index.saturating_add(1));
        SimId {
            index,
            incarnation: 0,
        }
    }
}

impl foca::Identity for SimId {
    type Addr = u32;

    fn renew(&self) -> Option<Self> {
        Some(SimId {
            index: self.index,
            incarnation: self.incarnation.wrapping_add(1),
        })
    }

    fn addr(&self) -> u32 {
        self.index
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // The later life wins, also across the u16 wrap (as NodeId does).
        let ahead = self.incarnation.wrapping_sub(adversary.incarnation);
        ahead != 0 && ahead < u16::MAX / 2
    }
}

impl GossipId for SimId {
    fn node_name(&self) -> &str {
        node_name(self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    #[test]
    fn names_round_trip_and_are_valid_node_names() {
        let id = SimId::new(42);
        assert_eq!(id.node_name(), "n00042");
        assert_eq!(name_index("n00042"), Some(42));
        assert_eq!(name_index("n0042"), None);
        assert_eq!(name_index("n000042"), None);
        assert_eq!(name_index("x00042"), None);
        assert!("n00042".parse::<xtreem_util::names::NodeName>().is_ok());
    }

    #[test]
    fn a_later_life_wins() {
        let a = SimId::new(3);
        let b = a.renew().unwrap();
        assert!(b.win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&b));
        assert_eq!(a.addr(), b.addr());
    }
}
