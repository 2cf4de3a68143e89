//! Node-signed items: a descriptor or a dynamic sample is accepted only
//! with the signature of the node it describes, so no member can publish or
//! change another member's state even though all share the site key.

use std::collections::HashMap;
use std::sync::Arc;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xtreem_directory::StaticDescriptor;

use crate::GossipError;

/// Largest signed item accepted from the network.
pub const MAX_ITEM_BYTES: usize = 1200;

const DOMAIN: &[u8] = b"xtreem-gossip-item-v1\0";

/// What a signed item holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemKind {
    Static,
    Dynamic,
}

/// A node's gossip signing key (Ed25519).
pub struct NodeKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey")
            .field("public", &hex_short(&self.public()))
            .finish()
    }
}

fn hex_short(bytes: &[u8]) -> String {
    bytes.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

impl NodeKey {
    /// A fresh key from the system's secure random source.
    pub fn generate() -> Result<NodeKey, GossipError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| GossipError::Key("the system random source failed".into()))?;
        NodeKey::from_pkcs8(pkcs8.as_ref())
    }

    /// A key from a 32-byte seed; the simulator uses this for reproducible runs.
    pub fn from_seed(seed: &[u8; 32]) -> Result<NodeKey, GossipError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| GossipError::Key("invalid Ed25519 seed".into()))?;
        Ok(NodeKey {
            pair,
            pkcs8: Vec::new(),
        })
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<NodeKey, GossipError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| GossipError::Key(format!("not an Ed25519 PKCS#8 key: {e}")))?;
        Ok(NodeKey {
            pair,
            pkcs8: pkcs8.to_vec(),
        })
    }

    /// The PKCS#8 document, to be stored by the caller (empty for seeded keys).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    pub fn sign(&self, node: &str, kind: ItemKind, version: u64, body: Vec<u8>) -> SignedItem {
        let message = signed_message(node, kind, version, &body);
        SignedItem {
            node: node.to_owned(),
            kind,
            version,
            body,
            signature: self.pair.sign(&message).as_ref().to_vec(),
        }
    }
}

fn signed_message(node: &str, kind: ItemKind, version: u64, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + node.len() + body.len() + 24);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&(node.len() as u32).to_be_bytes());
    m.extend_from_slice(node.as_bytes());
    m.push(kind as u8);
    m.extend_from_slice(&version.to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A descriptor or sample with its author's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedItem {
    pub node: String,
    pub kind: ItemKind,
    pub version: u64,
    pub body: Vec<u8>,
    pub signature: Vec<u8>,
}

impl SignedItem {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes without checking the signature: size-limited, never panics.
    pub fn decode(bytes: &[u8]) -> Result<SignedItem, GossipError> {
        if bytes.len() > MAX_ITEM_BYTES {
            return Err(GossipError::Oversized(bytes.len()));
        }
        postcard::from_bytes(bytes).map_err(|_| GossipError::Malformed("undecodable signed item"))
    }
}

/// Who may sign for which node: the site authority hands this out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    keys: HashMap<String, [u8; 32]>,
}

impl Roster {
    pub fn new(keys: impl IntoIterator<Item = (String, [u8; 32])>) -> Roster {
        Roster {
            keys: keys.into_iter().collect(),
        }
    }

    pub fn insert(&mut self, node: String, key: [u8; 32]) {
        self.keys.insert(node, key);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn key_of(&self, node: &str) -> Option<&[u8; 32]> {
        self.keys.get(node)
    }

    /// Checks `item`'s signature against the key registered for its node.
    pub fn verify(&self, item: &SignedItem) -> Result<(), GossipError> {
        let key = self
            .keys
            .get(&item.node)
            .ok_or_else(|| GossipError::UnknownSigner(item.node.clone()))?;
        let message = signed_message(&item.node, item.kind, item.version, &item.body);
        UnparsedPublicKey::new(&ED25519, key)
            .verify(&message, &item.signature)
            .map_err(|_| GossipError::BadSignature(item.node.clone()))
    }
}

const CACHE_LIMIT: usize = 65_536;

/// Verifies and decodes static descriptors, remembering results by the
/// hash of the signed bytes. Gossip delivers each descriptor to a node many
/// times; the cache turns every copy after the first into a lookup. The
/// simulator shares one verifier between all simulated nodes, which also
/// shares the decoded descriptors between them.
#[derive(Debug, Default)]
pub struct StaticVerifier {
    roster: Roster,
    verified: HashMap<[u8; 32], Arc<StaticDescriptor>>,
    /// Items signed for nodes the roster did not list yet, newest per node:
    /// offered again once the roster changes, so a newcomer's descriptor
    /// is accepted as soon as its key arrives rather than at a republish.
    unknown_signers: HashMap<String, Vec<u8>>,
}

const UNKNOWN_SIGNERS_LIMIT: usize = 1024;

impl StaticVerifier {
    pub fn new(roster: Roster) -> StaticVerifier {
        StaticVerifier {
            roster,
            verified: HashMap::new(),
            unknown_signers: HashMap::new(),
        }
    }

    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// Replaces the roster; results verified under the old one are forgotten.
    pub fn set_roster(&mut self, roster: Roster) {
        if roster != self.roster {
            self.roster = roster;
            self.verified.clear();
        }
    }

    /// Items held back for unknown signers that the roster now lists.
    pub fn take_retryable(&mut self) -> Vec<Vec<u8>> {
        let known: Vec<String> = self
            .unknown_signers
            .keys()
            .filter(|node| self.roster.key_of(node).is_some())
            .cloned()
            .collect();
        known
            .iter()
            .filter_map(|node| self.unknown_signers.remove(node))
            .collect()
    }

    /// The descriptor in `raw` (an encoded [`SignedItem`]) if it is signed by
    /// the node it describes and valid.
    pub fn verify(
        &mut self,
        raw: &[u8],
        item: &SignedItem,
    ) -> Result<Arc<StaticDescriptor>, GossipError> {
        let digest: [u8; 32] = Sha256::digest(raw).into();
        if let Some(hit) = self.verified.get(&digest) {
            return Ok(Arc::clone(hit));
        }
        if item.kind != ItemKind::Static {
            return Err(GossipError::Malformed("expected a static descriptor"));
        }
        if let Err(e) = self.roster.verify(item) {
            if matches!(e, GossipError::UnknownSigner(_))
                && self.unknown_signers.len() < UNKNOWN_SIGNERS_LIMIT
            {
                self.unknown_signers.insert(item.node.clone(), raw.to_vec());
            }
            return Err(e);
        }
        let descriptor = StaticDescriptor::decode(&item.body)
            .map_err(|e| GossipError::Invalid(e.to_string()))?;
        if descriptor.node != item.node || descriptor.version != item.version {
            return Err(GossipError::Invalid(
                "the descriptor's node or version differs from its signed envelope".into(),
            ));
        }
        let descriptor = Arc::new(descriptor);
        if self.verified.len() >= CACHE_LIMIT {
            self.verified.clear();
        }
        self.verified.insert(digest, Arc::clone(&descriptor));
        Ok(descriptor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_registered_key_signs_for_a_node() {
        let alice = NodeKey::from_seed(&[1; 32]).unwrap();
        let mallory = NodeKey::from_seed(&[2; 32]).unwrap();
        let roster = Roster::new([
            ("node-a".to_string(), alice.public()),
            ("node-m".to_string(), mallory.public()),
        ]);
        let good = alice.sign("node-a", ItemKind::Dynamic, 3, b"body".to_vec());
        roster.verify(&good).unwrap();
        let forged = mallory.sign("node-a", ItemKind::Dynamic, 4, b"body".to_vec());
        assert!(matches!(
            roster.verify(&forged),
            Err(GossipError::BadSignature(_))
        ));
        let mut changed = good.clone();
        changed.version = 9;
        assert!(roster.verify(&changed).is_err());
        let stranger = alice.sign("node-x", ItemKind::Dynamic, 1, vec![]);
        assert!(matches!(
            roster.verify(&stranger),
            Err(GossipError::UnknownSigner(_))
        ));
    }

    #[test]
    fn garbage_items_do_not_decode() {
        for len in 0..200 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = SignedItem::decode(&junk);
        }
        assert!(matches!(
            SignedItem::decode(&vec![0; MAX_ITEM_BYTES + 1]),
            Err(GossipError::Oversized(_))
        ));
    }
}
