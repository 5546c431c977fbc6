//! CRC-64 with the Jones polynomial as Redis computes it (reflected input and output,
//! initial value 0, no final xor): the checksum of RDB files and DUMP payloads.

const POLY: u64 = 0xad93_d235_94c9_35a9;

const fn reflect(mut x: u64) -> u64 {
    let mut r = 0;
    let mut i = 0;
    while i < 64 {
        r = (r << 1) | (x & 1);
        x >>= 1;
        i += 1;
    }
    r
}

const TABLE: [u64; 256] = {
    let poly = reflect(POLY);
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut b = 0;
        while b < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ poly } else { crc >> 1 };
            b += 1;
        }
        t[i] = crc;
        i += 1;
    }
    t
};

/// `TABLES[k][b]`: the table step applied to byte `b` followed by `k` zero bytes, so
/// that eight bytes are folded with eight lookups at once ("slice-by-8").
const TABLES: [[u64; 256]; 8] = {
    let mut t = [[0u64; 256]; 8];
    t[0] = TABLE;
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ TABLE[(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// Continues the checksum `crc` over `data` (start with 0).
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let x = crc ^ u64::from_le_bytes(w.try_into().expect("eight bytes"));
        crc = TABLES[7][(x & 0xff) as usize]
            ^ TABLES[6][((x >> 8) & 0xff) as usize]
            ^ TABLES[5][((x >> 16) & 0xff) as usize]
            ^ TABLES[4][((x >> 24) & 0xff) as usize]
            ^ TABLES[3][((x >> 32) & 0xff) as usize]
            ^ TABLES[2][((x >> 40) & 0xff) as usize]
            ^ TABLES[1][((x >> 48) & 0xff) as usize]
            ^ TABLES[0][(x >> 56) as usize];
    }
    for &b in words.remainder() {
        crc = TABLE[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_and_continuation() {
        // The check value Redis's own crc64 test uses.
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        assert_eq!(crc64(crc64(0, b"1234"), b"56789"), crc64(0, b"123456789"));
        assert_eq!(crc64(0, b""), 0);
    }

    #[test]
    fn slices_agree_with_the_bytewise_definition() {
        let bytewise = |mut crc: u64, data: &[u8]| {
            for &b in data {
                crc = TABLE[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
            }
            crc
        };
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let data: Vec<u8> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for start in 0..9 {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 500, 991] {
                let d = &data[start..start + len];
                assert_eq!(crc64(0, d), bytewise(0, d), "start {start} len {len}");
                assert_eq!(crc64(0x1234_5678_9abc_def0, d), bytewise(0x1234_5678_9abc_def0, d));
            }
        }
    }
}
