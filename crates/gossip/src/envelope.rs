//! The sealed packet every gossip datagram travels in.
//!
//! Every datagram is encrypted and authenticated with the site's gossip key
//! (ChaCha20-Poly1305), as Serf does with its keyring: a host without the
//! key can neither read the membership traffic nor inject into it. The key
//! id lets a site rotate keys: nodes accept the current and the previous key
//! and always seal with the current one.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::GossipError;

const MAGIC: &[u8; 2] = b"XG";
const FORMAT: u8 = 1;
const HEADER_LEN: usize = MAGIC.len() + 2 + NONCE_LEN;
const TAG_LEN: usize = 16;

/// Bytes an envelope adds around its payload.
pub const ENVELOPE_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// What a sealed datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A foca (SWIM) packet: membership plus piggybacked descriptors.
    Swim = 1,
    /// A signed dynamic sample pushed to the site's directory replicas.
    Dynamic = 2,
    /// A node's signed descriptor sent straight to a member that just came
    /// up, which would otherwise learn it only at the next republish.
    Descriptor = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Swim),
            2 => Some(Kind::Dynamic),
            3 => Some(Kind::Descriptor),
            _ => None,
        }
    }
}

/// One 256-bit site gossip key and its id.
#[derive(Clone)]
pub struct SiteKey {
    id: u8,
    key: [u8; 32],
}

impl std::fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteKey").field("id", &self.id).finish()
    }
}

impl SiteKey {
    pub fn new(id: u8, key: [u8; 32]) -> SiteKey {
        SiteKey { id, key }
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    fn aead(&self) -> LessSafeKey {
        // CHACHA20_POLY1305 takes exactly 32 bytes, which the type guarantees.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &self.key)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is valid for ChaCha20-Poly1305"));
        LessSafeKey::new(unbound)
    }
}

/// The keys a node accepts: the current one (used to seal) and, during a
/// rotation, the previous one.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: SiteKey,
    current_aead: std::sync::Arc<LessSafeKey>,
    previous: Option<(SiteKey, std::sync::Arc<LessSafeKey>)>,
}

impl Keyring {
    pub fn new(current: SiteKey, previous: Option<SiteKey>) -> Keyring {
        let current_aead = std::sync::Arc::new(current.aead());
        let previous = previous.map(|k| {
            let aead = std::sync::Arc::new(k.aead());
            (k, aead)
        });
        Keyring {
            current,
            current_aead,
            previous,
        }
    }

    pub fn current(&self) -> &SiteKey {
        &self.current
    }

    /// Seals `payload` of `kind` with the current key. `nonce` must never
    /// repeat under one key; callers draw it from a random source.
    pub fn seal(&self, kind: Kind, payload: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let mut packet = Vec::with_capacity(HEADER_LEN + 1 + payload.len() + TAG_LEN);
        packet.extend_from_slice(MAGIC);
        packet.push(FORMAT);
        packet.push(self.current.id);
        packet.extend_from_slice(&nonce);
        let mut body = Vec::with_capacity(1 + payload.len() + TAG_LEN);
        body.push(kind as u8);
        body.extend_from_slice(payload);
        let aad = Aad::from(&packet[..MAGIC.len() + 2]);
        // Sealing only fails for inputs larger than ChaCha20's 256 GiB limit.
        if self
            .current_aead
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad, &mut body)
            .is_err()
        {
            return Vec::new();
        }
        packet.extend_from_slice(&body);
        packet
    }

    /// Opens a datagram; anything not sealed by a key of this ring is refused.
    pub fn open(&self, packet: &[u8]) -> Result<(Kind, Vec<u8>), GossipError> {
        if packet.len() < HEADER_LEN + TAG_LEN + 1 || &packet[..MAGIC.len()] != MAGIC {
            return Err(GossipError::Malformed("not a gossip packet"));
        }
        if packet[2] != FORMAT {
            return Err(GossipError::Malformed("unknown packet format"));
        }
        let key_id = packet[3];
        let aead = if key_id == self.current.id {
            &self.current_aead
        } else {
            match &self.previous {
                Some((key, aead)) if key.id == key_id => aead,
                _ => return Err(GossipError::Unauthenticated),
            }
        };
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&packet[4..HEADER_LEN]);
        let aad = Aad::from(&packet[..MAGIC.len() + 2]);
        let mut body = packet[HEADER_LEN..].to_vec();
        let plain = aead
            .open_in_place(Nonce::assume_unique_for_key(nonce), aad, &mut body)
            .map_err(|_| GossipError::Unauthenticated)?;
        let (&kind, payload) = plain
            .split_first()
            .ok_or(GossipError::Malformed("empty packet"))?;
        let kind = Kind::from_byte(kind).ok_or(GossipError::Malformed("unknown packet kind"))?;
        Ok((kind, payload.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: u8, byte: u8) -> Keyring {
        Keyring::new(SiteKey::new(id, [byte; 32]), None)
    }

    #[test]
    fn sealed_packets_open_with_the_same_key_only() {
        let a = ring(1, 7);
        let packet = a.seal(Kind::Swim, b"hello", [3; NONCE_LEN]);
        assert_eq!(a.open(&packet).unwrap(), (Kind::Swim, b"hello".to_vec()));
        assert!(matches!(
            ring(1, 8).open(&packet),
            Err(GossipError::Unauthenticated)
        ));
    }

    #[test]
    fn the_previous_key_is_accepted_during_a_rotation() {
        let old = SiteKey::new(1, [1; 32]);
        let packet = Keyring::new(old.clone(), None).seal(Kind::Dynamic, b"x", [0; NONCE_LEN]);
        let rotated = Keyring::new(SiteKey::new(2, [2; 32]), Some(old));
        assert_eq!(rotated.open(&packet).unwrap().0, Kind::Dynamic);
        let dropped = Keyring::new(SiteKey::new(3, [3; 32]), Some(SiteKey::new(2, [2; 32])));
        assert!(dropped.open(&packet).is_err());
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let a = ring(1, 7);
        let mut packet = a.seal(Kind::Swim, b"hello world", [9; NONCE_LEN]);
        let last = packet.len() - 1;
        packet[last] ^= 1;
        assert!(a.open(&packet).is_err());
        for len in 0..64 {
            assert!(a.open(&vec![0x58; len]).is_err());
        }
        use rand::RngCore;
        let mut rng = rand::rng();
        for _ in 0..2000 {
            let mut junk = vec![0u8; (rng.next_u32() % 1500) as usize];
            rng.fill_bytes(&mut junk);
            if junk.len() > 3 {
                junk[0] = b'X';
                junk[1] = b'G';
                junk[2] = FORMAT;
                junk[3] = 1;
            }
            assert!(a.open(&junk).is_err());
        }
    }
}
