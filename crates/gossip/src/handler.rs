//! Static descriptors ride on foca's custom broadcasts: this is the part
//! that decides, for each item piggybacked on a SWIM packet, whether it is
//! new, authentic and sane, and hands it to the directory.

use std::sync::{Arc, Mutex};

use foca::{BroadcastHandler, Invalidates};
use xtreem_directory::StaticDescriptor;

use crate::counters::Counters;
use crate::signing::{ItemKind, SignedItem, StaticVerifier};
use crate::{GossipError, GossipId};

/// Where accepted descriptors go: the daemon's directory, or the
/// simulator's compact per-node view. foca owns the handler, so a sink is
/// a handle the caller shares (e.g. `Arc<RwLock<Directory>>`).
pub trait DescriptorSink {
    /// The version held for `node`, if any.
    fn known_version(&self, node: &str) -> Option<u64>;
    /// A descriptor newer than the one held (authentic and valid).
    fn accept(&mut self, descriptor: Arc<StaticDescriptor>);
}

/// Identifies a broadcast so that a newer version of a node's descriptor
/// replaces an older one still waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorKey {
    node: String,
    version: u64,
}

impl Invalidates for DescriptorKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.node == other.node && self.version >= other.version
    }
}

pub struct DescriptorHandler<S> {
    sink: S,
    /// This node's name: only its own descriptor is offered locally again
    /// at the same version (republishing).
    own: String,
    verifier: Arc<Mutex<StaticVerifier>>,
    counters: Arc<Counters>,
}

impl<S: DescriptorSink> DescriptorHandler<S> {
    pub fn new(
        own: String,
        sink: S,
        verifier: Arc<Mutex<StaticVerifier>>,
        counters: Arc<Counters>,
    ) -> Self {
        DescriptorHandler {
            own,
            sink,
            verifier,
            counters,
        }
    }

    fn receive(&mut self, data: &[u8], local: bool) -> Option<DescriptorKey> {
        let item = match SignedItem::decode(data) {
            Ok(item) if item.kind == ItemKind::Static => item,
            Ok(_) | Err(GossipError::Malformed(_)) => {
                Counters::add(&self.counters.dropped_malformed, 1);
                return None;
            }
            Err(_) => {
                Counters::add(&self.counters.rejected_invalid, 1);
                return None;
            }
        };
        let republishing = local && item.node == self.own;
        if !republishing
            && self
                .sink
                .known_version(&item.node)
                .is_some_and(|held| held >= item.version)
        {
            return None;
        }
        let verified = match self.verifier.lock() {
            Ok(mut verifier) => verifier.verify(data, &item),
            Err(_) => Err(GossipError::Key("verifier lock poisoned".into())),
        };
        match verified {
            Ok(descriptor) => {
                self.sink.accept(descriptor);
                Some(DescriptorKey {
                    node: item.node,
                    version: item.version,
                })
            }
            Err(GossipError::UnknownSigner(node)) => {
                tracing::debug!(%node, "descriptor from a node the roster does not list yet");
                Counters::add(&self.counters.rejected_unknown_signer, 1);
                None
            }
            Err(GossipError::BadSignature(node)) => {
                tracing::warn!(%node, "forged descriptor dropped");
                Counters::add(&self.counters.rejected_forged, 1);
                None
            }
            Err(e) => {
                tracing::warn!(node = %item.node, error = %e, "invalid descriptor dropped");
                Counters::add(&self.counters.rejected_invalid, 1);
                None
            }
        }
    }
}

impl<I: GossipId, S: DescriptorSink> BroadcastHandler<I> for DescriptorHandler<S> {
    type Key = DescriptorKey;
    type Error = GossipError;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&I>,
    ) -> Result<Option<DescriptorKey>, GossipError> {
        // Refusals are counted, never returned: an error would make foca
        // drop the rest of the packet, including other nodes' good items.
        Ok(self.receive(data, sender.is_none()))
    }
}
