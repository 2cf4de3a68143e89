//! What a gossip agent counts: traffic, and every packet or item it refused.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counters {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Not sealed with a key of the site's keyring.
    pub dropped_unauthenticated: AtomicU64,
    /// Sealed correctly but not decodable.
    pub dropped_malformed: AtomicU64,
    /// Signed by a key that is not the named node's, or by no known key.
    pub rejected_forged: AtomicU64,
    /// Signed for a node the roster does not list (yet).
    pub rejected_unknown_signer: AtomicU64,
    /// Correctly signed but absurd or larger than allowed.
    pub rejected_invalid: AtomicU64,
}

/// A plain copy of [`Counters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub dropped_unauthenticated: u64,
    pub dropped_malformed: u64,
    pub rejected_forged: u64,
    pub rejected_unknown_signer: u64,
    pub rejected_invalid: u64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            packets_in: get(&self.packets_in),
            bytes_in: get(&self.bytes_in),
            packets_out: get(&self.packets_out),
            bytes_out: get(&self.bytes_out),
            dropped_unauthenticated: get(&self.dropped_unauthenticated),
            dropped_malformed: get(&self.dropped_malformed),
            rejected_forged: get(&self.rejected_forged),
            rejected_unknown_signer: get(&self.rejected_unknown_signer),
            rejected_invalid: get(&self.rejected_invalid),
        }
    }
}
