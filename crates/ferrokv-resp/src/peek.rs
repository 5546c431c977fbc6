//! A look ahead into a read buffer: the second argument (for most commands, the key)
//! of each of the next complete multibulk commands, without parsing them for real.
//!
//! The server uses it to prefetch the keyspace memory a pipeline is about to touch
//! before running it, so that the cache misses of many lookups overlap. The answer is
//! only a hint: the scan stops at the first frame it does not understand (inline
//! commands, incomplete frames, anything malformed) and the real parser decides what
//! the bytes mean.

/// Fills `keys` with the second argument of each complete multibulk command at the
/// start of `buf` that has one, in order, until `keys` is full or a frame is not a
/// complete, well-formed multibulk. Returns how many it filled; commands with fewer
/// than two arguments are stepped over.
pub fn second_args<'a>(buf: &'a [u8], keys: &mut [&'a [u8]]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while n < keys.len() {
        let Some((count, mut p)) = number(buf, at, b'*') else { break };
        let mut second: Option<&[u8]> = None;
        let mut ok = true;
        for i in 0..count {
            match number(buf, p, b'$') {
                Some((len, start)) if start + len + 2 <= buf.len() && &buf[start + len..start + len + 2] == b"\r\n" => {
                    if i == 1 {
                        second = Some(&buf[start..start + len]);
                    }
                    p = start + len + 2;
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            break;
        }
        if let Some(k) = second {
            keys[n] = k;
            n += 1;
        }
        at = p;
    }
    n
}

/// `<prefix><decimal>\r\n` at `at`: the number and the offset after the line. At most
/// nine digits, so the number cannot overflow and an absurd count is refused early.
#[inline]
fn number(buf: &[u8], at: usize, prefix: u8) -> Option<(usize, usize)> {
    if *buf.get(at)? != prefix {
        return None;
    }
    let mut v = 0usize;
    let mut p = at + 1;
    while let Some(&c) = buf.get(p) {
        match c {
            b'0'..=b'9' if p - at <= 9 => v = v * 10 + (c - b'0') as usize,
            b'\r' if p > at + 1 => return (buf.get(p + 1) == Some(&b'\n')).then_some((v, p + 2)),
            _ => return None,
        }
        p += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peek(buf: &[u8]) -> Vec<Vec<u8>> {
        let mut keys = [&b""[..]; 4];
        let n = second_args(buf, &mut keys);
        keys[..n].iter().map(|k| k.to_vec()).collect()
    }

    #[test]
    fn finds_keys_of_complete_frames() {
        let wire = b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n";
        assert_eq!(peek(wire), vec![b"foo".to_vec(), b"k".to_vec(), b"".to_vec()]);
    }

    #[test]
    fn stops_at_what_it_does_not_understand() {
        assert!(peek(b"GET foo\r\n").is_empty());
        assert_eq!(peek(b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n*2\r\n$3\r\nGET\r\n$3\r\nba"), vec![b"foo".to_vec()]);
        assert!(peek(b"*2\r\n$3\r\nGET\r\n$3\r\nfooXX").is_empty());
        assert!(peek(b"*2\r\n$-1\r\n").is_empty());
        assert!(peek(b"*9999999999\r\n").is_empty());
        assert!(peek(b"*\r\n").is_empty());
        assert!(peek(b"*2\r").is_empty());
    }

    #[test]
    fn stops_when_full() {
        let one = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        assert_eq!(peek(&one.repeat(10)).len(), 4);
    }
}
