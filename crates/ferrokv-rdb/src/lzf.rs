//! LZF, as Redis stores strings longer than 20 bytes with `rdbcompression yes`
//! (`RDB_ENC_LZF`).
//!
//! An LZF stream is a sequence of runs, each opened by a control byte: below 32, a
//! literal run of `ctrl + 1` bytes follows; otherwise a back reference of
//! `(ctrl >> 5) + 2` bytes (7 means one more length byte follows and is added) to an
//! offset of `((ctrl & 31) << 8) + next byte + 1` bytes behind the output's end.

use crate::DecodeError;

/// Hash table size (log2) and the format's limits: literal runs of up to 32 bytes,
/// back references up to 8 KiB behind and 264 bytes long.
const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

#[inline]
fn frst(d: &[u8], p: usize) -> u32 {
    ((d[p] as u32) << 8) | d[p + 1] as u32
}

#[inline]
fn next(v: u32, d: &[u8], p: usize) -> u32 {
    (v << 8) | d[p + 2] as u32
}

#[inline]
fn idx(h: u32) -> usize {
    ((h >> (24 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// Compresses `input` into at most `out_len` bytes, making the same choices as the
/// liblzf Redis 7.0 embeds (its "very fast" mode: a 64 Ki-entry table of the last
/// position of each 3-byte hash, two positions re-hashed after each match), so the
/// bytes equal Redis's (except where Redis's table, which it leaves uninitialised,
/// held a stale position that happened to match). None when it does not fit.
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    if input.len() < 3 || out_len == 0 {
        return None;
    }
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let t = &mut *t;
        if t.slots.is_empty() {
            t.slots = vec![0; HSIZE];
        }
        t.epoch = t.epoch.wrapping_add(1);
        if t.epoch == 0 {
            t.slots.fill(0);
            t.epoch = 1;
        }
        compress_with(input, out_len, &mut t.slots, t.epoch)
    })
}

/// The hash table, kept per thread between calls: filling 64 Ki entries for every
/// value compressed cost more than the compression (two thirds of a snapshot's CPU was
/// that memset). An entry is valid only when it carries the current call's epoch.
struct Table {
    slots: Vec<u64>,
    epoch: u32,
}

thread_local! {
    static TABLE: std::cell::RefCell<Table> = const { std::cell::RefCell::new(Table { slots: Vec::new(), epoch: 0 }) };
}

fn compress_with(input: &[u8], out_len: usize, table: &mut [u64], epoch: u32) -> Option<Vec<u8>> {
    let in_len = input.len();
    let tag = (epoch as u64) << 32;
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut run = Run::open(&mut out);
    let mut ip = 0usize;
    let mut hval = frst(input, ip);
    while ip < in_len - 2 {
        hval = next(hval, input, ip);
        let slot = idx(hval);
        let entry = table[slot];
        table[slot] = tag | ip as u64;
        let prev = (entry as u32) as usize;
        let found = entry >> 32 == epoch as u64 && {
            let r = prev;
            let off = ip - r - 1;
            off < MAX_OFF
                && r > 0
                && input[r + 2] == input[ip + 2]
                && input[r] == input[ip]
                && input[r + 1] == input[ip + 1]
        };
        if found {
            let r = prev;
            let off = ip - r - 1;
            let mut len = 2usize;
            let maxlen = (in_len - ip - len).min(MAX_REF);
            if out.len() + 4 >= out_len && out.len() - (run.lit == 0) as usize + 4 >= out_len {
                return None;
            }
            run.close(&mut out);
            // As liblzf: up to 16 bytes compared without the bound when more than 16
            // may match, then byte by byte up to the bound.
            let mut done = false;
            if maxlen > 16 {
                for _ in 0..16 {
                    len += 1;
                    if input[r + len] != input[ip + len] {
                        done = true;
                        break;
                    }
                }
            }
            if !done {
                loop {
                    len += 1;
                    if !(len < maxlen && input[r + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2;
            ip += 1;
            if len < 7 {
                out.push(((off >> 8) + (len << 5)) as u8);
            } else {
                out.push(((off >> 8) + (7 << 5)) as u8);
                out.push((len - 7) as u8);
            }
            out.push(off as u8);
            run = Run::open(&mut out);
            ip += len + 1;
            if ip >= in_len - 2 {
                break;
            }
            ip -= 2;
            hval = frst(input, ip);
            hval = next(hval, input, ip);
            table[idx(hval)] = tag | ip as u64;
            ip += 1;
            hval = next(hval, input, ip);
            table[idx(hval)] = tag | ip as u64;
            ip += 1;
        } else {
            if out.len() >= out_len {
                return None;
            }
            run.literal(&mut out, input[ip]);
            ip += 1;
        }
    }
    if out.len() + 3 > out_len {
        return None;
    }
    for &b in &input[ip..] {
        run.literal(&mut out, b);
    }
    run.close(&mut out);
    Some(out)
}

/// The literal run being written: where its control byte is and how many bytes it has.
struct Run {
    ctrl: usize,
    lit: usize,
}

impl Run {
    /// Starts a run: a placeholder control byte.
    fn open(out: &mut Vec<u8>) -> Run {
        out.push(0);
        Run { ctrl: out.len() - 1, lit: 0 }
    }

    /// Appends a literal byte; a full run (32 bytes) is closed and a new one opened.
    fn literal(&mut self, out: &mut Vec<u8>, b: u8) {
        self.lit += 1;
        out.push(b);
        if self.lit == MAX_LIT {
            self.close(out);
            *self = Run::open(out);
        }
    }

    /// Ends the run: its control byte says its length, or an empty run is removed.
    fn close(&self, out: &mut Vec<u8>) {
        if self.lit == 0 {
            out.pop();
        } else {
            out[self.ctrl] = (self.lit - 1) as u8;
        }
    }
}

/// Room reserved before decompressing `input` into `len` bytes: no more than the input
/// itself, then more as the output grows ([`grow`]). A declared length is not trusted
/// until the bytes are there, nor is what the input could expand to (up to 88 times):
/// reserving 256 times the input let 1 MiB claiming 4 GiB take 256 MiB before its first
/// bad byte.
fn initial_room(input: &[u8], len: usize) -> usize {
    len.min(input.len())
}

/// Makes room in `out` for `n` more bytes of the `len` it is checked to stay within:
/// twice the room as the output grows, never more than `len` in all.
fn grow(out: &mut Vec<u8>, n: usize, len: usize) {
    if out.capacity() - out.len() < n {
        out.reserve_exact(out.capacity().max(n).min(len - out.len()));
    }
}

/// Decompresses `input` into exactly `len` bytes.
pub fn decompress(input: &[u8], len: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out: Vec<u8> = Vec::with_capacity(initial_room(input, len));
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let lit = input.get(i..i + run).ok_or(DecodeError::Truncated)?;
            if out.len() + run > len {
                return Err(DecodeError::Invalid("LZF length"));
            }
            grow(&mut out, run, len);
            out.extend_from_slice(lit);
            i += run;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += *input.get(i).ok_or(DecodeError::Truncated)? as usize;
                i += 1;
            }
            let low = *input.get(i).ok_or(DecodeError::Truncated)? as usize;
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            let n = n + 2;
            if back > out.len() {
                return Err(DecodeError::Invalid("LZF back reference"));
            }
            if out.len() + n > len {
                return Err(DecodeError::Invalid("LZF length"));
            }
            grow(&mut out, n, len);
            let start = out.len() - back;
            // The reference may overlap what it produces (a run of one repeated byte).
            for k in 0..n {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    if out.len() != len {
        return Err(DecodeError::Invalid("LZF length"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// The table reused between calls holds nothing of an earlier call: the output is
    /// the same as on a thread that never compressed.
    #[test]
    fn earlier_calls_do_not_leak_into_later_ones() {
        let a: Vec<u8> = b"abcabcabcabc the quick brown fox abcabc".repeat(20);
        let b: Vec<u8> = b"the quick brown fox jumps over abcabcabc".repeat(20);
        let fresh = std::thread::spawn({
            let b = b.clone();
            move || compress(&b, b.len())
        })
        .join()
        .unwrap();
        let _ = compress(&a, a.len());
        assert_eq!(compress(&b, b.len()), fresh);
        assert_eq!(decompress(&fresh.unwrap(), b.len()).unwrap(), b);
    }

    use super::*;

    #[test]
    fn literals_and_overlapping_references() {
        // "abc" literal, then a 6-byte reference 3 back: "abcabcabc".
        let input = [2, b'a', b'b', b'c', (4 << 5), 2];
        assert_eq!(decompress(&input, 9).unwrap(), b"abcabcabc");
        // A reference 1 back repeats the last byte: "aaaaaaaaaaa" (1 + 10).
        let input = [0, b'a', (7 << 5), 1, 0];
        assert_eq!(decompress(&input, 11).unwrap(), b"aaaaaaaaaaa");
    }

    #[test]
    fn compress_then_decompress() {
        let runs: Vec<u8> = (0..5000).map(|i| b"abcdefg"[i % 7]).collect();
        let c = compress(&runs, runs.len() - 4).expect("compressible");
        assert!(c.len() < runs.len() / 10, "{} bytes", c.len());
        assert_eq!(decompress(&c, runs.len()).unwrap(), runs);
        // Noise does not fit in len - 4 bytes.
        let mut x = 1u64;
        let noise: Vec<u8> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(compress(&noise, noise.len() - 4), None);
    }

    proptest::proptest! {
        #[test]
        fn round_trips(data in proptest::collection::vec(0u8..4, 3..2000)) {
            if let Some(c) = compress(&data, data.len() + 64) {
                proptest::prop_assert_eq!(decompress(&c, data.len()).unwrap(), data);
            }
        }
    }

    #[test]
    fn room_is_backed_by_the_input_and_bounded_by_the_length() {
        // 1 MiB claiming 4 GiB reserved 256 MiB (a 1 MiB input tripped fuzz/containers'
        // -malloc_limit_mb=256); now the input's size.
        let mib = vec![0x1f; 1 << 20];
        assert_eq!(initial_room(&mib, u32::MAX as usize), 1 << 20);
        assert_eq!(initial_room(&mib, 10), 10);
        // A stream that expands 88 times grows to exactly its length.
        let mut stream = vec![0, b'a'];
        for _ in 0..100 {
            stream.extend_from_slice(&[(7 << 5), 255, 0]);
        }
        let len = 1 + 100 * 264;
        let out = decompress(&stream, len).unwrap();
        assert_eq!(out, vec![b'a'; len]);
        assert_eq!(out.capacity(), len);
        let runs: Vec<u8> = (0..5000).map(|i| b"abcdefg"[i % 7]).collect();
        let c = compress(&runs, runs.len()).unwrap();
        assert_eq!(decompress(&c, runs.len()).unwrap().capacity(), runs.len());
    }

    #[test]
    fn bad_streams_are_errors_not_panics() {
        assert_eq!(decompress(&[5, b'a'], 6), Err(DecodeError::Truncated));
        assert_eq!(decompress(&[(1 << 5), 9], 3), Err(DecodeError::Invalid("LZF back reference")));
        assert_eq!(decompress(&[0, b'a'], 2), Err(DecodeError::Invalid("LZF length")));
        assert_eq!(decompress(&[1, b'a', b'b'], 1), Err(DecodeError::Invalid("LZF length")));
        assert!(decompress(&[0, b'a', 0xe0], usize::MAX).is_err());
    }
}
