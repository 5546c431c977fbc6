//! Node IDs: 40 characters, as Redis names its nodes (random hex when generated).

use crate::rng::Rng;
use std::fmt;

/// A cluster node ID: 40 bytes of `[a-z0-9]` (Redis generates hex; it accepts `a-z`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId([u8; NodeId::LEN]);

impl NodeId {
    pub const LEN: usize = 40;

    /// Validates like Redis's `verifyClusterNodeId`: exactly 40 bytes of `a-z` or `0-9`.
    pub fn parse(bytes: &[u8]) -> Option<NodeId> {
        if bytes.len() != Self::LEN || !bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            return None;
        }
        let mut id = [0u8; Self::LEN];
        id.copy_from_slice(bytes);
        Some(NodeId(id))
    }

    /// A fresh random ID of 40 lowercase hex digits.
    pub fn random(rng: &mut Rng) -> NodeId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = [0u8; Self::LEN];
        for chunk in id.chunks_mut(16) {
            let mut r = rng.next_u64();
            for b in chunk {
                *b = HEX[(r & 15) as usize];
                r >>= 4;
            }
        }
        NodeId(id)
    }

    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `parse` and `random`).
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", &self.as_str()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_forty_lowercase_alphanumerics() {
        let ok = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(NodeId::parse(ok.as_bytes()).map(|i| i.to_string()), Some(ok.to_string()));
        assert!(NodeId::parse(&ok.as_bytes()[..39]).is_none());
        assert!(NodeId::parse(b"0123456789ABCDEF0123456789abcdef01234567").is_none());
        assert!(NodeId::parse(b"0123456789abcdef0123456789abcdef0123456-").is_none());
        // Redis accepts the whole a-z range, not only hex digits.
        assert!(NodeId::parse(b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz").is_some());
    }

    #[test]
    fn random_ids_are_hex_and_differ() {
        let mut rng = Rng::new(7);
        let a = NodeId::random(&mut rng);
        let b = NodeId::random(&mut rng);
        assert_ne!(a, b);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(NodeId::parse(a.as_bytes()), Some(a));
    }
}
