//! An owned key that keeps short keys without an allocation: what a keyspace hands
//! back when a key leaves it (a deletion's key for WATCH and notifications, a taken
//! entry's). Stored keys live in the records of `db/arena.rs`, inline up to 255 bytes.

use std::ops::Deref;

/// Longest key kept inline.
pub const INLINE: usize = 22;

#[derive(Clone)]
pub enum KeyBytes {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl From<&[u8]> for KeyBytes {
    #[inline]
    fn from(k: &[u8]) -> Self {
        if k.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..k.len()].copy_from_slice(k);
            KeyBytes::Inline { len: k.len() as u8, buf }
        } else {
            KeyBytes::Heap(k.into())
        }
    }
}

impl Deref for KeyBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            KeyBytes::Inline { len, buf } => &buf[..*len as usize],
            KeyBytes::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_inline_and_round_trip() {
        assert_eq!(std::mem::size_of::<KeyBytes>(), 24);
        for len in [0, 1, 16, INLINE, INLINE + 1, 100] {
            let k: Vec<u8> = (0..len as u8).collect();
            let kb = KeyBytes::from(&k[..]);
            assert_eq!(&*kb, &k[..]);
            assert_eq!(matches!(kb, KeyBytes::Inline { .. }), len <= INLINE);
        }
    }
}
