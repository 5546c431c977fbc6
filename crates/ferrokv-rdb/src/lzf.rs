//! LZF decompression, for strings Redis stored compressed (`RDB_ENC_LZF`).
//!
//! An LZF stream is a sequence of runs, each opened by a control byte: below 32, a
//! literal run of `ctrl + 1` bytes follows; otherwise a back reference of
//! `(ctrl >> 5) + 2` bytes (7 means one more length byte follows and is added) to an
//! offset of `((ctrl & 31) << 8) + next byte + 1` bytes behind the output's end.

use crate::DecodeError;

/// Decompresses `input` into exactly `len` bytes.
pub fn decompress(input: &[u8], len: usize) -> Result<Vec<u8>, DecodeError> {
    // Never reserve more than the input could expand to: a declared length is not
    // trusted until the bytes are there.
    let mut out: Vec<u8> = Vec::with_capacity(len.min(input.len().saturating_mul(256)));
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
    fn bad_streams_are_errors_not_panics() {
        assert_eq!(decompress(&[5, b'a'], 6), Err(DecodeError::Truncated));
        assert_eq!(decompress(&[(1 << 5), 9], 3), Err(DecodeError::Invalid("LZF back reference")));
        assert_eq!(decompress(&[0, b'a'], 2), Err(DecodeError::Invalid("LZF length")));
        assert_eq!(decompress(&[1, b'a', b'b'], 1), Err(DecodeError::Invalid("LZF length")));
        assert!(decompress(&[0, b'a', 0xe0], usize::MAX).is_err());
    }
}
