//! The set of revoked certificate serials a node refuses, shared by its TLS
//! verifiers and updated from the site authority while the node runs.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// Revoked serial numbers (hex), with the version of the list they came from.
#[derive(Clone, Default)]
pub struct RevocationSet {
    inner: Arc<RwLock<Revoked>>,
}

#[derive(Default)]
struct Revoked {
    version: u64,
    serials: HashSet<String>,
}

impl RevocationSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_revoked(&self, serial: &str) -> bool {
        // A poisoned lock means a writer panicked mid-update: refuse everyone
        // rather than trust a half-written list.
        match self.inner.read() {
            Ok(r) => r.serials.contains(serial),
            Err(_) => true,
        }
    }

    pub fn version(&self) -> u64 {
        self.inner.read().map(|r| r.version).unwrap_or(0)
    }

    /// Replaces the list if `version` is newer than the one held.
    pub fn replace(&self, version: u64, serials: impl IntoIterator<Item = String>) {
        if let Ok(mut w) = self.inner.write()
            && version > w.version
        {
            w.version = version;
            w.serials = serials.into_iter().collect();
        }
    }

    pub fn len(&self) -> usize {
        self.inner.read().map(|r| r.serials.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
