//! Key → hash slot, as Redis Cluster defines it: CRC16 (XMODEM) of the key, or of the
//! part between the first `{` and the next `}` when that part is non-empty, mod 16384.
//!
//! The CRC is computed four bytes per step with four tables (slicing-by-4): every
//! command computes it at least twice (prefetch, then lookup), and the byte-at-a-time
//! loop of the `crc16` crate, one dependent table load per byte, was 4-7% of the
//! server's CPU at pipeline 16. The crate stays as the reference in the tests.

pub const SLOTS: usize = 16384;

/// XMODEM: polynomial 0x1021, initial value 0, no reflection.
const POLY: u16 = 0x1021;

/// `TABLES[k][x]`: the CRC of byte `x` followed by `k` zero bytes, from state 0.
static TABLES: [[u16; 256]; 4] = tables();

const fn tables() -> [[u16; 256]; 4] {
    let mut t = [[0u16; 256]; 4];
    let mut x = 0;
    while x < 256 {
        let mut crc = (x as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ POLY } else { crc << 1 };
            bit += 1;
        }
        t[0][x] = crc;
        x += 1;
    }
    let mut k = 1;
    while k < 4 {
        let mut x = 0;
        while x < 256 {
            // One more zero byte after the CRC of the previous table.
            let prev = t[k - 1][x];
            t[k][x] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            x += 1;
        }
        k += 1;
    }
    t
}

/// CRC16-XMODEM of `data`.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        crc = TABLES[3][(c[0] ^ (crc >> 8) as u8) as usize]
            ^ TABLES[2][(c[1] ^ crc as u8) as usize]
            ^ TABLES[1][c[2] as usize]
            ^ TABLES[0][c[3] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc << 8) ^ TABLES[0][(b ^ (crc >> 8) as u8) as usize];
    }
    crc
}

pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&c| c == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&c| c == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) & (SLOTS as u16 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"123456789"), 0x31C3 & 16383);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    proptest! {
        #[test]
        fn crc_matches_the_reference(data in proptest::collection::vec(any::<u8>(), 0..70)) {
            prop_assert_eq!(crc16(&data), crc16::State::<crc16::XMODEM>::calculate(&data));
        }
    }
}
