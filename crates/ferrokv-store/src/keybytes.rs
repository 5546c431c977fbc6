//! Key bytes stored in the table node itself when short.
//!
//! A lookup that must follow a pointer to compare the key pays one more cache miss;
//! profiles at pipeline 16 showed the key comparison as one of the three dependent
//! misses per lookup. Keys up to [`INLINE`] bytes (most real keys: `user:1000`,
//! `key:000000012345`) live inline and also save an allocation.

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
