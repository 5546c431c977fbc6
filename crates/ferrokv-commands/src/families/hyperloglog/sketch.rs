//! The HyperLogLog sketch, in Redis's string format byte for byte (hyperloglog.c).
//!
//! A sketch is a plain string value, so GET, SET, DUMP and replication carry it as
//! bytes, and a client may store one it read from Redis. The layout:
//!
//! ```text
//! +------+---+-----+---------+-------------------+
//! | HYLL | E | 0 0 0 | card (8) | registers ...   |
//! +------+---+-----+---------+-------------------+
//! ```
//!
//! `E` is the encoding (0 dense, 1 sparse). `card` caches the last computed
//! cardinality, little endian; the top bit of its last byte set means "stale". Only
//! that bit is set on a change, so the other seven bytes keep the old count: GET shows
//! them, and they must match Redis's.
//!
//! There are 16384 registers (the low 14 bits of the element's MurmurHash64A pick one)
//! holding the length of the run of zero bits, plus one, in the remaining 50 bits.
//!
//! * Dense: 16384 six-bit registers packed from the least significant bit of each byte
//!   up (12288 bytes).
//! * Sparse: run-length opcodes. `00xxxxxx` ZERO: 1..64 zero registers. `01xxxxxx
//!   yyyyyyyy` XZERO: 1..16384 zero registers (14-bit length). `1vvvvvxx` VAL: 1..4
//!   registers of value 1..32. A new sketch is one XZERO:16384. A register above 32,
//!   or a sparse form that would grow past [`SPARSE_MAX_BYTES`], turns the sketch
//!   dense for good.
//!
//! Updating the sparse form follows Redis's in-place algorithm exactly (split the
//! opcode covering the register into at most three, then merge equal neighbouring VAL
//! opcodes in a window of five), because the resulting bytes are visible to GET. The
//! cardinality is Ertl's improved estimator over the register histogram ("New
//! cardinality estimation algorithms for HyperLogLog sketches", arXiv:1702.01284),
//! as Redis 7 computes it, with the same floating point operations in the same order.

/// Header bytes before the registers.
pub const HDR: usize = 16;
/// Bits of the hash that select the register.
const P: u32 = 14;
/// Bits of the hash left for the run of zeros.
const Q: usize = 64 - P as usize;
pub const REGISTERS: usize = 1 << P;
const P_MASK: u64 = REGISTERS as u64 - 1;
const REGISTER_MAX: u8 = 63;
/// Length of a dense sketch: the header and 16384 six-bit registers.
pub const DENSE_SIZE: usize = HDR + (REGISTERS * 6).div_ceil(8);
pub const DENSE: u8 = 0;
pub const SPARSE: u8 = 1;
/// Redis's `hll-sparse-max-bytes` at its default: a sparse sketch that would grow past
/// this many bytes (header included) becomes dense. ferrokv has no such option yet.
pub const SPARSE_MAX_BYTES: usize = 3000;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
/// The seed Redis hashes elements with.
const SEED: u32 = 0xadc8_3b19;
/// 0.5 / ln(2), the constant of the estimator.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The sparse form does not add up to 16384 registers (Redis's "-INVALIDOBJ").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt;

/// MurmurHash2, 64-bit variant (MurmurHash64A), reading 8-byte blocks little endian,
/// as Redis does on every architecture.
pub fn murmur64a(data: &[u8], seed: u32) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed as u64 ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut k = u64::from_le_bytes(block.try_into().unwrap_or([0; 8]));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element falls in and the value it offers: the length of the
/// `000...1` pattern in the hash bits above the index (1..=51).
pub fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, SEED);
    let index = (hash & P_MASK) as usize;
    // The guard bit caps the count at Q + 1.
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

// ---------------------------------------------------------------------------------
// Header

/// A new, empty sketch: sparse, one XZERO covering every register, cached count 0.
pub fn new_sparse() -> Vec<u8> {
    let mut s = Vec::with_capacity(HDR + 2);
    s.extend_from_slice(b"HYLL");
    s.push(SPARSE);
    s.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(XZERO_MAX_LEN);
        s.extend_from_slice(&xzero(run));
        left -= run;
    }
    s
}

/// Whether a string value has the shape of a sketch, as Redis's `isHLLObjectOrReply`
/// checks it: magic, known encoding, and the exact length when dense. The sparse
/// opcodes are checked only when they are walked.
pub fn is_sketch(s: &[u8]) -> bool {
    s.len() >= HDR && &s[..4] == b"HYLL" && s[4] <= SPARSE && (s[4] != DENSE || s.len() == DENSE_SIZE)
}

/// The encoding byte of a sketch that passed [`is_sketch`].
pub fn encoding(s: &[u8]) -> u8 {
    s[4]
}

/// The cached cardinality, when it is not stale.
pub fn cached_count(s: &[u8]) -> Option<u64> {
    if s[15] & 0x80 != 0 {
        return None;
    }
    let mut card = [0; 8];
    card.copy_from_slice(&s[8..16]);
    Some(u64::from_le_bytes(card))
}

pub fn set_cached_count(s: &mut [u8], count: u64) {
    s[8..16].copy_from_slice(&count.to_le_bytes());
}

/// Marks the cached cardinality stale, leaving its other bits as they are.
pub fn invalidate_cache(s: &mut [u8]) {
    s[15] |= 0x80;
}

// ---------------------------------------------------------------------------------
// Dense registers

/// Register `index` of packed six-bit registers. The last register ends inside the
/// last byte; the byte after it reads as zero (Redis reads the string's terminator).
fn dense_get(regs: &[u8], index: usize) -> u8 {
    let byte = index * 6 / 8;
    let fb = (index * 6) & 7;
    let b0 = regs[byte] as u32;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & REGISTER_MAX as u32) as u8
}

fn dense_put(regs: &mut [u8], index: usize, value: u8) {
    let byte = index * 6 / 8;
    let fb = (index * 6) & 7;
    let v = value as u32;
    let m = REGISTER_MAX as u32;
    regs[byte] = ((regs[byte] as u32 & !(m << fb)) | (v << fb)) as u8;
    if let Some(b1) = regs.get_mut(byte + 1) {
        *b1 = ((*b1 as u32 & !(m >> (8 - fb))) | (v >> (8 - fb))) as u8;
    }
}

/// Sets register `index` of a dense sketch to `value`, whatever it was (PFSELFTEST).
pub fn put_register(s: &mut [u8], index: usize, value: u8) {
    dense_put(&mut s[HDR..], index, value)
}

/// Raises register `index` of a dense sketch to `count`; whether it changed.
fn dense_set(s: &mut [u8], index: usize, count: u8) -> bool {
    let regs = &mut s[HDR..];
    if count > dense_get(regs, index) {
        dense_put(regs, index, count);
        true
    } else {
        false
    }
}

// ---------------------------------------------------------------------------------
// Sparse opcodes

#[inline]
fn is_zero(op: u8) -> bool {
    op & 0xc0 == 0
}

#[inline]
fn is_xzero(op: u8) -> bool {
    op & 0xc0 == 0x40
}

#[inline]
fn is_val(op: u8) -> bool {
    op & 0x80 != 0
}

#[inline]
fn zero_len(op: u8) -> usize {
    (op & 0x3f) as usize + 1
}

/// The length of the XZERO at `p`; a second byte past the end reads as zero.
#[inline]
fn xzero_len(s: &[u8], p: usize) -> usize {
    ((((s[p] & 0x3f) as usize) << 8) | s.get(p + 1).copied().unwrap_or(0) as usize) + 1
}

#[inline]
fn val_value(op: u8) -> u8 {
    ((op >> 2) & 0x1f) + 1
}

#[inline]
fn val_len(op: u8) -> usize {
    (op & 0x3) as usize + 1
}

#[inline]
fn val(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (len as u8 - 1)
}

#[inline]
fn zero(len: usize) -> u8 {
    len as u8 - 1
}

#[inline]
fn xzero(len: usize) -> [u8; 2] {
    let l = len - 1;
    [0x40 | (l >> 8) as u8, (l & 0xff) as u8]
}

/// One decoded opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    Zeros(usize),
    Values(u8, usize),
}

/// Walks the opcodes of a sparse register area, with the byte length of each.
fn runs(area: &[u8]) -> impl Iterator<Item = (Run, usize)> + '_ {
    let mut p = 0;
    std::iter::from_fn(move || {
        let op = *area.get(p)?;
        let item = if is_zero(op) {
            (Run::Zeros(zero_len(op)), 1)
        } else if is_xzero(op) {
            (Run::Zeros(xzero_len(area, p)), 2)
        } else {
            (Run::Values(val_value(op), val_len(op)), 1)
        };
        p += item.1;
        Some(item)
    })
}

/// Calls `f(first register, run)` for each opcode of a sparse sketch. Corrupt when a
/// run would pass the last register or the runs fall short of it: the checks of
/// Redis 7.0.15 as Debian ships it, patched for CVE-2025-32023 (upstream 7.0.15 let
/// a last VAL run overflow).
fn for_each_run(s: &[u8], mut f: impl FnMut(usize, Run)) -> Result<(), Corrupt> {
    let mut idx = 0;
    for (run, _) in runs(&s[HDR..]) {
        let (Run::Zeros(n) | Run::Values(_, n)) = run;
        if idx + n > REGISTERS {
            return Err(Corrupt);
        }
        f(idx, run);
        idx += n;
    }
    if idx == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// Rewrites a sparse sketch as dense, keeping its header but for the encoding.
pub fn to_dense(s: &mut Vec<u8>) -> Result<(), Corrupt> {
    if s[4] == DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR].copy_from_slice(&s[..HDR]);
    dense[4] = DENSE;
    for_each_run(s, |first, run| {
        if let Run::Values(v, n) = run {
            for i in first..first + n {
                dense_put(&mut dense[HDR..], i, v);
            }
        }
    })?;
    *s = dense;
    Ok(())
}

/// Raises register `index` of a sparse sketch to `count`, in place, as Redis's
/// `hllSparseSet`: returns whether it changed. The sketch turns dense when `count`
/// does not fit a VAL opcode or the sparse form would outgrow [`SPARSE_MAX_BYTES`].
fn sparse_set(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    if count > VAL_MAX_VALUE {
        return promote(s, index, count);
    }

    // Find the opcode covering `index`.
    let end = s.len();
    let mut p = HDR;
    let mut first = 0usize;
    let mut prev = None;
    let mut span = 0usize;
    while p < end {
        let op = s[p];
        let mut oplen = 1;
        span = if is_zero(op) {
            zero_len(op)
        } else if is_val(op) {
            val_len(op)
        } else {
            oplen = 2;
            xzero_len(s, p)
        };
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(Corrupt);
    }
    let op = s[p];
    let runlen = span;

    if is_val(op) {
        let old = val_value(op);
        if old >= count {
            return Ok(false);
        }
        if runlen == 1 {
            s[p] = val(count, 1);
            merge_values(s, prev);
            return Ok(true);
        }
    }
    if is_zero(op) && runlen == 1 {
        s[p] = val(count, 1);
        merge_values(s, prev);
        return Ok(true);
    }

    // Split the opcode into up to three: what precedes the register, the register,
    // what follows it.
    let mut seq = [0u8; 5];
    let mut n = 0;
    let last = first + span - 1;
    let zeros = |seq: &mut [u8; 5], n: &mut usize, len: usize| {
        if len > ZERO_MAX_LEN {
            seq[*n..*n + 2].copy_from_slice(&xzero(len));
            *n += 2;
        } else {
            seq[*n] = zero(len);
            *n += 1;
        }
    };
    if is_val(op) {
        let current = val_value(op);
        if index != first {
            seq[n] = val(current, index - first);
            n += 1;
        }
        seq[n] = val(count, 1);
        n += 1;
        if index != last {
            seq[n] = val(current, last - index);
            n += 1;
        }
    } else {
        if index != first {
            zeros(&mut seq, &mut n, index - first);
        }
        seq[n] = val(count, 1);
        n += 1;
        if index != last {
            zeros(&mut seq, &mut n, last - index);
        }
    }

    let oldlen = if is_xzero(op) { 2 } else { 1 };
    let new_len = (end + n) as isize - oldlen as isize;
    if n > oldlen && new_len as usize > SPARSE_MAX_BYTES {
        return promote(s, index, count);
    }
    // An XZERO cut in half by the end of the string (only a hand-made sketch has one)
    // loses the last byte of what replaces it. Redis writes that byte over the NUL
    // after its string and reads it back as the XZERO's second byte on the next
    // update; ferrokv keeps no byte past the end and reads 0 there, so from the second
    // update of such a sketch on the two may differ.
    let replaced_end = (p + oldlen).min(end);
    s.splice(p..replaced_end, seq[..n].iter().copied());
    s.truncate(new_len as usize);
    merge_values(s, prev);
    Ok(true)
}

/// After an update: merges adjacent VAL opcodes of equal value (runs up to 4),
/// scanning at most five opcodes from the one before the update, then marks the
/// cached cardinality stale.
fn merge_values(s: &mut Vec<u8>, prev: Option<usize>) {
    let mut p = prev.unwrap_or(HDR);
    let mut scan = 5;
    while p < s.len() && scan > 0 {
        scan -= 1;
        let op = s[p];
        if is_xzero(op) {
            p += 2;
            continue;
        }
        if is_zero(op) {
            p += 1;
            continue;
        }
        if p + 1 < s.len() && is_val(s[p + 1]) {
            let next = s[p + 1];
            if val_value(op) == val_value(next) {
                let len = val_len(op) + val_len(next);
                if len <= VAL_MAX_LEN {
                    s[p + 1] = val(val_value(op), len);
                    s.remove(p);
                    // Stay: the merged opcode may merge with the next one.
                    continue;
                }
            }
        }
        p += 1;
    }
    invalidate_cache(s);
}

/// Converts to dense and sets the register there (which always changes it).
fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(s)?;
    dense_set(s, index, count);
    Ok(true)
}

/// Raises register `index` to `count` in either encoding; whether it changed. A
/// sparse sketch marks its cached cardinality stale itself; callers do it for dense.
pub fn set_register(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    if s[4] == DENSE {
        Ok(dense_set(s, index, count))
    } else {
        sparse_set(s, index, count)
    }
}

/// PFADD of one element: whether a register changed.
pub fn add(s: &mut Vec<u8>, element: &[u8]) -> Result<bool, Corrupt> {
    let (index, count) = pattern(element);
    set_register(s, index, count)
}

// ---------------------------------------------------------------------------------
// Merging and counting

/// Registers as one byte each, for unions (PFCOUNT of several keys, PFMERGE).
pub type Registers = [u8; REGISTERS];

/// `max[i] = max(max[i], register i of s)`.
pub fn merge_into(max: &mut Registers, s: &[u8]) -> Result<(), Corrupt> {
    if s[4] == DENSE {
        let regs = &s[HDR..];
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(dense_get(regs, i));
        }
        return Ok(());
    }
    // A corrupt sketch leaves `max` half merged: callers drop it.
    for_each_run(s, |first, run| {
        if let Run::Values(v, n) = run {
            for m in &mut max[first..first + n] {
                *m = (*m).max(v);
            }
        }
    })
}

/// How many registers hold each value. Register values reach 63 in a dense sketch
/// (only 0..=51 can come from a hash; a stored string may hold more).
pub type Histogram = [u64; 64];

/// The register histogram of a sketch; a sparse one must cover exactly 16384
/// registers.
pub fn histogram(s: &[u8]) -> Result<Histogram, Corrupt> {
    let mut h = [0u64; 64];
    if s[4] == DENSE {
        let regs = &s[HDR..];
        for i in 0..REGISTERS {
            h[dense_get(regs, i) as usize] += 1;
        }
        return Ok(h);
    }
    for_each_run(s, |_, run| match run {
        Run::Zeros(n) => h[0] += n as u64,
        Run::Values(v, n) => h[v as usize] += n as u64,
    })?;
    Ok(h)
}

/// The histogram of registers held one per byte.
pub fn registers_histogram(regs: &Registers) -> Histogram {
    let mut h = [0u64; 64];
    for &r in regs.iter() {
        h[(r & 63) as usize] += 1;
    }
    h
}

/// Ertl's sigma function.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_prev = z;
        z += x * y;
        y += y;
        if z_prev == z {
            return z;
        }
    }
}

/// Ertl's tau function.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_prev = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if z_prev == z {
            return z / 3.0;
        }
    }
}

/// The estimated cardinality from a register histogram (Redis 7's `hllCount`).
pub fn estimate(h: &Histogram) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - h[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += h[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(h[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The cardinality of one sketch, computed (the cache is the caller's business).
pub fn count(s: &[u8]) -> Result<u64, Corrupt> {
    histogram(s).map(|h| estimate(&h))
}

/// The opcodes of a sparse sketch as PFDEBUG DECODE prints them.
pub fn decode(s: &[u8]) -> String {
    let mut out = Vec::new();
    for (run, len) in runs(&s[HDR..]) {
        out.push(match (run, len) {
            (Run::Zeros(n), 1) => format!("z:{n}"),
            (Run::Zeros(n), _) => format!("Z:{n}"),
            (Run::Values(v, n), _) => format!("v:{v},{n}"),
        });
    }
    out.join(" ")
}

/// Every register of a dense sketch, in order.
pub fn dense_registers(s: &[u8]) -> impl Iterator<Item = u8> + '_ {
    (0..REGISTERS).map(move |i| dense_get(&s[HDR..], i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Register values as a map from index, read through the dense form.
    fn registers(s: &[u8]) -> Vec<u8> {
        let mut d = s.to_vec();
        to_dense(&mut d).expect("valid");
        dense_registers(&d).collect()
    }

    #[test]
    fn murmur_matches_redis() {
        // Registers and run lengths that redis-server 7.0 reports for these elements
        // (PFADD k a b c; PFDEBUG DECODE k: Z:8436 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603).
        let mut got: Vec<(usize, u8)> = [b"a", b"b", b"c"].iter().map(|e| pattern(*e)).collect();
        got.sort();
        assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), vec![8436, 12711, 15780]);
        // Which element went where depends on the hash; the values are 1, 2, 1.
        assert_eq!(got.iter().map(|p| p.1).collect::<Vec<_>>(), vec![1, 2, 1]);
        assert_ne!(murmur64a(b"", 0), murmur64a(b"", 1));
        assert_ne!(murmur64a(b"12345678", SEED), murmur64a(b"12345679", SEED));
    }

    #[test]
    fn bytes_after_three_adds_match_redis() {
        let mut s = new_sparse();
        assert_eq!(hex(&s), "48594c4c0100000000000000000000007fff");
        for e in [b"a", b"b", b"c"] {
            assert_eq!(add(&mut s, e), Ok(true));
        }
        // GET after `PFADD k a b c` on redis-server 7.0.15.
        assert_eq!(hex(&s), "48594c4c01000000000000000000008060f38050b1844bfb80425a");
        assert_eq!(decode(&s), "Z:8436 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603");
        assert_eq!(add(&mut s, b"a"), Ok(false));
        assert_eq!(count(&s), Ok(3));
    }

    #[test]
    fn dense_registers_round_trip_without_touching_neighbours() {
        let mut regs = vec![0u8; DENSE_SIZE - HDR];
        let mut x = 12345u64;
        let mut want = vec![0u8; REGISTERS];
        for round in 0..3 {
            for (i, w) in want.iter_mut().enumerate() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407 + round);
                *w = (x >> 58) as u8;
                dense_put(&mut regs, i, *w);
            }
            for (i, w) in want.iter().enumerate() {
                assert_eq!(dense_get(&regs, i), *w, "register {i}");
            }
        }
    }

    #[test]
    fn sparse_split_and_merge() {
        let mut s = new_sparse();
        assert_eq!(sparse_set(&mut s, 100, 3), Ok(true));
        assert_eq!(decode(&s), "Z:100 v:3,1 Z:16283");
        assert_eq!(sparse_set(&mut s, 101, 3), Ok(true));
        assert_eq!(decode(&s), "Z:100 v:3,2 Z:16282");
        assert_eq!(sparse_set(&mut s, 103, 3), Ok(true));
        assert_eq!(decode(&s), "Z:100 v:3,2 z:1 v:3,1 Z:16280");
        // Filling the gap merges the three VALs into one of length 4.
        assert_eq!(sparse_set(&mut s, 102, 3), Ok(true));
        assert_eq!(decode(&s), "Z:100 v:3,4 Z:16280");
        // Raising one register in the middle of a VAL run splits it.
        assert_eq!(sparse_set(&mut s, 101, 5), Ok(true));
        assert_eq!(decode(&s), "Z:100 v:3,1 v:5,1 v:3,2 Z:16280");
        assert_eq!(sparse_set(&mut s, 101, 4), Ok(false));
        // Short zero runs use ZERO, long ones XZERO.
        assert_eq!(sparse_set(&mut s, 170, 1), Ok(true));
        assert_eq!(decode(&s), "Z:100 v:3,1 v:5,1 v:3,2 Z:66 v:1,1 Z:16213");
        assert_eq!(sparse_set(&mut s, 16383, 2), Ok(true));
        assert!(decode(&s).ends_with("Z:16212 v:2,1"));
        assert_eq!(sparse_set(&mut s, 0, 1), Ok(true));
        assert!(decode(&s).starts_with("v:1,1 Z:99 v:3,1"));
        let regs = registers(&s);
        assert_eq!((regs[0], regs[100], regs[101], regs[103], regs[170], regs[16383]), (1, 3, 5, 3, 1, 2));
        assert_eq!(regs.iter().filter(|&&r| r != 0).count(), 7);
        assert_eq!(s[15] & 0x80, 0x80);
    }

    #[test]
    fn big_values_and_size_promote_to_dense() {
        let mut s = new_sparse();
        add(&mut s, b"x").expect("valid");
        assert_eq!(sparse_set(&mut s, 7, 33), Ok(true));
        assert_eq!((s.len(), encoding(&s)), (DENSE_SIZE, DENSE));
        let regs = registers(&s);
        assert_eq!(regs[7], 33);
        assert_eq!(regs.iter().filter(|&&r| r != 0).count(), 2);

        let mut s = new_sparse();
        let mut i = 0u64;
        while encoding(&s) == SPARSE {
            assert!(s.len() <= SPARSE_MAX_BYTES);
            add(&mut s, &i.to_le_bytes()).expect("valid");
            i += 1;
        }
        assert!(i > 1000 && i < 3000, "promoted after {i} elements");
    }

    #[test]
    fn dense_and_sparse_count_alike_and_close_to_the_truth() {
        let mut sparse = new_sparse();
        let mut dense = new_sparse();
        to_dense(&mut dense).expect("valid");
        for n in 1..=20_000u32 {
            let e = n.to_string();
            add(&mut sparse, e.as_bytes()).expect("valid");
            add(&mut dense, e.as_bytes()).expect("valid");
            if [1, 10, 100, 1000, 10_000, 20_000].contains(&n) {
                let (a, b) = (count(&sparse).expect("valid"), count(&dense).expect("valid"));
                assert_eq!(a, b, "at {n}");
                let err = (a as f64 - n as f64).abs() / n as f64;
                assert!(err < 0.05, "{a} for {n}");
            }
        }
        assert_eq!(count(&new_sparse()), Ok(0));
        let mut max = [0u8; REGISTERS];
        merge_into(&mut max, &sparse).expect("valid");
        assert_eq!(estimate(&registers_histogram(&max)), count(&dense).expect("valid"));
    }

    #[test]
    fn corrupt_sparse_forms_are_rejected() {
        let mut s = new_sparse();
        s.truncate(HDR);
        assert_eq!(add(&mut s, b"a"), Err(Corrupt));
        assert_eq!(count(&s), Err(Corrupt));
        let mut s = new_sparse();
        s.push(0); // one register too many
        assert_eq!(count(&s), Err(Corrupt));
        // A last VAL run passing the end is corrupt too (the CVE-2025-32023 checks).
        let mut s = new_sparse();
        s.truncate(HDR);
        s.extend_from_slice(&xzero(16383));
        s.push(val(1, 2));
        assert_eq!(count(&s), Err(Corrupt));
        assert_eq!(merge_into(&mut [0; REGISTERS], &s), Err(Corrupt));
        assert_eq!(to_dense(&mut s.clone()), Err(Corrupt));
        // A lone XZERO byte (its second byte missing) reads the missing byte as 0.
        // Such an XZERO split at register 5 loses the last byte of what replaces it.
        let mut s = new_sparse();
        s.truncate(HDR + 1);
        assert_eq!(count(&s), Err(Corrupt));
        assert_eq!(set_register(&mut s, 16129, 1), Err(Corrupt));
        assert_eq!(set_register(&mut s, 5, 2), Ok(true));
        assert_eq!(&s[HDR..], &[0x04, 0x84, 0x7e]);
    }

    #[test]
    fn cache_bits() {
        let mut s = new_sparse();
        assert_eq!(cached_count(&s), Some(0));
        set_cached_count(&mut s, 0x0102);
        invalidate_cache(&mut s);
        assert_eq!(cached_count(&s), None);
        assert_eq!(&s[8..16], &[2, 1, 0, 0, 0, 0, 0, 0x80]);
        assert!(is_sketch(&s));
        assert!(!is_sketch(b"HYLL"));
        let mut d = s.clone();
        to_dense(&mut d).expect("valid");
        assert!(is_sketch(&d));
        d.push(0);
        assert!(!is_sketch(&d));
        s[4] = 2;
        assert!(!is_sketch(&s));
    }
}
