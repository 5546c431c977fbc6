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

/// Eight bytes folded into `crc` with eight lookups.
#[inline(always)]
fn fold8(crc: u64, w: &[u8]) -> u64 {
    let x = crc ^ u64::from_le_bytes(w.try_into().expect("eight bytes"));
    TABLES[7][(x & 0xff) as usize]
        ^ TABLES[6][((x >> 8) & 0xff) as usize]
        ^ TABLES[5][((x >> 16) & 0xff) as usize]
        ^ TABLES[4][((x >> 24) & 0xff) as usize]
        ^ TABLES[3][((x >> 32) & 0xff) as usize]
        ^ TABLES[2][((x >> 40) & 0xff) as usize]
        ^ TABLES[1][((x >> 48) & 0xff) as usize]
        ^ TABLES[0][(x >> 56) as usize]
}

/// Bytes per lane of the interleaved loop: a block is four lanes.
const LANE: usize = 1024;

/// `SHIFT[k][b]`: the register `b << 8k` after `LANE` zero bytes. The checksum has no
/// initial value or final xor, so it is linear: the register after `A‖B` is the
/// register after `A` moved through `|B|` zero bytes, xor the checksum of `B` alone —
/// and moving through `LANE` zero bytes is a linear map, applied bytewise by this table.
fn shift_table() -> &'static [[u64; 256]; 8] {
    static T: std::sync::OnceLock<Box<[[u64; 256]; 8]>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = Box::new([[0u64; 256]; 8]);
        let zeros = [0u8; 8];
        for (k, row) in t.iter_mut().enumerate() {
            for (b, e) in row.iter_mut().enumerate() {
                let mut crc = (b as u64) << (8 * k);
                for _ in 0..LANE / 8 {
                    crc = fold8(crc, &zeros);
                }
                *e = crc;
            }
        }
        t
    })
}

/// The register `crc` after `LANE` zero bytes.
#[inline(always)]
fn shift(t: &[[u64; 256]; 8], crc: u64) -> u64 {
    (0..8).fold(0, |acc, k| acc ^ t[k][((crc >> (8 * k)) & 0xff) as usize])
}

/// Continues the checksum `crc` over `data` (start with 0).
///
/// On x86-64 CPUs with carry-less multiplication (PCLMULQDQ), inputs of at least
/// [`clmul::MIN_LEN`] bytes are folded 64 bytes at a time (see [`clmul`]). Otherwise
/// slice-by-8, which is bound by the latency of its lookups, one chain through the
/// data: long inputs go four lanes at a time (four independent chains the CPU
/// overlaps), then the lanes' checksums are joined (see [`shift_table`]).
pub fn crc64(crc: u64, data: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= clmul::MIN_LEN && clmul::available() {
        // SAFETY: the CPU has the instructions (`available`, just above, checks them
        // at run time; this check is what must stay in front of the call).
        #[allow(unsafe_code)]
        return unsafe { clmul::crc64(crc, data) };
    }
    crc64_tables(crc, data)
}

/// `x^n mod P` (bit i: the coefficient of `x^i`).
const fn xpow_mod(n: u32) -> u64 {
    let mut r: u64 = 1;
    let mut i = 0;
    while i < n {
        let carry = r >> 63;
        r <<= 1;
        if carry != 0 {
            r ^= POLY;
        }
        i += 1;
    }
    r
}

/// Folding with carry-less multiplication, as Intel's white paper "Fast CRC
/// Computation for Generic Polynomials Using PCLMULQDQ" describes it for reflected
/// CRCs (written from the algebra here, constants computed at compile time).
///
/// The checksum of a message M (the initial register xored into its first eight
/// bytes) is `M·x^64 mod P`, and only M's residue mod P matters. Read 16 bytes as a
/// 128-bit register in reflected order (bit k is the coefficient of `x^(127-k)`): its
/// low half is the high-degree part H, its high half the low part L. Moving it 128·j
/// bits further along the message is `H·x^(128j+64) + L·x^(128j)`; each product of a
/// 64-bit half with the residue of that power has fewer than 128 bits, so one
/// PCLMULQDQ per half keeps the register at 128 bits while staying congruent. A
/// product of two reflected 64-bit values comes out multiplied by x, hence the
/// constants are the residues of `x^(n-1)`. Four registers fold in parallel (64 bytes
/// a step), are joined, and the last 128 bits are reduced by the table code (the
/// checksum of their 16 bytes from 0 is exactly `A·x^64 mod P`).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod clmul {
    use super::{crc64_tables, reflect, xpow_mod};
    use std::arch::x86_64::*;

    /// Shorter inputs stay on the table code (the fold's setup and final reduction
    /// cost about as much as 128 bytes of table steps).
    pub const MIN_LEN: usize = 128;

    /// The pair of constants that moves a register `bits` further: for H (low half)
    /// and for L (high half).
    const fn pair(bits: u32) -> (u64, u64) {
        (reflect(xpow_mod(bits + 64 - 1)), reflect(xpow_mod(bits - 1)))
    }
    const BY_128: (u64, u64) = pair(128);
    const BY_512: (u64, u64) = pair(512);

    pub fn available() -> bool {
        use std::sync::atomic::{AtomicU8, Ordering};
        // 0: not checked yet, 1: no, 2: yes.
        static HAVE: AtomicU8 = AtomicU8::new(0);
        match HAVE.load(Ordering::Relaxed) {
            0 => {
                let yes = is_x86_feature_detected!("pclmulqdq") && is_x86_feature_detected!("sse4.1");
                HAVE.store(1 + yes as u8, Ordering::Relaxed);
                yes
            }
            n => n == 2,
        }
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq,sse2,sse4.1")]
    fn konst(k: (u64, u64)) -> __m128i {
        _mm_set_epi64x(k.1 as i64, k.0 as i64)
    }

    /// `a` moved along by the distance of `k`, xor `next`.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse2,sse4.1")]
    fn fold(a: __m128i, k: __m128i, next: __m128i) -> __m128i {
        let h = _mm_clmulepi64_si128::<0x00>(a, k);
        let l = _mm_clmulepi64_si128::<0x11>(a, k);
        _mm_xor_si128(_mm_xor_si128(h, l), next)
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq,sse2,sse4.1")]
    fn load(d: &[u8]) -> __m128i {
        let b: &[u8; 16] = d[..16].try_into().expect("16 bytes");
        // SAFETY: 16 readable bytes; unaligned loads are allowed.
        unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
    }

    /// # Safety
    /// The CPU must have PCLMULQDQ and SSE4.1 ([`available`]); `data` has at least
    /// [`MIN_LEN`] bytes.
    #[target_feature(enable = "pclmulqdq,sse2,sse4.1")]
    pub unsafe fn crc64(crc: u64, data: &[u8]) -> u64 {
        debug_assert!(data.len() >= MIN_LEN);
        let (k128, k512) = (konst(BY_128), konst(BY_512));
        let mut a = [load(&data[0..]), load(&data[16..]), load(&data[32..]), load(&data[48..])];
        a[0] = _mm_xor_si128(a[0], _mm_set_epi64x(0, crc as i64));
        let mut rest = &data[64..];
        while rest.len() >= 64 {
            for (i, r) in a.iter_mut().enumerate() {
                *r = fold(*r, k512, load(&rest[16 * i..]));
            }
            rest = &rest[64..];
        }
        let mut acc = fold(a[0], k128, a[1]);
        acc = fold(acc, k128, a[2]);
        acc = fold(acc, k128, a[3]);
        while rest.len() >= 16 {
            acc = fold(acc, k128, load(rest));
            rest = &rest[16..];
        }
        let mut bytes = [0u8; 16];
        // SAFETY: 16 writable bytes.
        unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), acc) };
        crc64_tables(crc64_tables(0, &bytes), rest)
    }
}

/// [`crc64`] with tables only.
fn crc64_tables(mut crc: u64, mut data: &[u8]) -> u64 {
    if data.len() >= 4 * LANE {
        let t = shift_table();
        while data.len() >= 4 * LANE {
            let (a, rest) = data.split_at(LANE);
            let (b, rest) = rest.split_at(LANE);
            let (c, rest) = rest.split_at(LANE);
            let (d, rest) = rest.split_at(LANE);
            let (mut ca, mut cb, mut cc, mut cd) = (crc, 0, 0, 0);
            for i in (0..LANE).step_by(8) {
                ca = fold8(ca, &a[i..i + 8]);
                cb = fold8(cb, &b[i..i + 8]);
                cc = fold8(cc, &c[i..i + 8]);
                cd = fold8(cd, &d[i..i + 8]);
            }
            crc = shift(t, shift(t, shift(t, ca) ^ cb) ^ cc) ^ cd;
            data = rest;
        }
    }
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        crc = fold8(crc, w);
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
        let data: Vec<u8> = (0..20000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for start in 0..9 {
            for len in [
                0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 129, 143, 144, 191, 192, 500, 991, 4095, 4096, 4097,
                8200, 16384, 19990,
            ] {
                let d = &data[start..start + len];
                assert_eq!(crc64(0, d), bytewise(0, d), "start {start} len {len}");
                assert_eq!(crc64_tables(0, d), bytewise(0, d), "tables, start {start} len {len}");
                assert_eq!(crc64(0x1234_5678_9abc_def0, d), bytewise(0x1234_5678_9abc_def0, d));
            }
        }
        // Every length around the folding's 16- and 64-byte steps, split anywhere.
        for len in 0..700 {
            let d = &data[3..3 + len];
            let want = bytewise(0, d);
            assert_eq!(crc64(0, d), want, "len {len}");
            let cut = len * 7 / 11;
            assert_eq!(crc64(crc64(0, &d[..cut]), &d[cut..]), want, "len {len} cut {cut}");
        }
        // Continuing across calls that end inside and outside the interleaved blocks.
        let (a, b) = data.split_at(5000);
        assert_eq!(crc64(crc64(0, a), b), bytewise(0, &data));
    }

    /// Not a timed test's assertion: prints the speed (`cargo test --release -- --nocapture`).
    #[test]
    fn speed() {
        let data = vec![0x5au8; 16 << 20];
        crc64(0, &data[..4 * LANE]);
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let c = crc64(0, &data);
            let four = 16.0 / t.elapsed().as_secs_f64();
            // Chunks under a block go one chain at a time.
            let t = std::time::Instant::now();
            let one = data.chunks(4 * LANE - 8).fold(0, crc64_tables);
            let one_speed = 16.0 / t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            let tables = crc64_tables(0, &data);
            let tables_speed = 16.0 / t.elapsed().as_secs_f64();
            assert_eq!(c, one);
            assert_eq!(c, tables);
            eprintln!("crc64: {four:.0} MB/s; tables: four lanes {tables_speed:.0} MB/s, one {one_speed:.0} MB/s");
        }
    }
}
