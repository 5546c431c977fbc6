//! Finding where one RESP2 reply ends without building it: the generator only needs to
//! know a reply's length, whether it is an error (and its text, for MOVED/ASK) and
//! whether a GET found its key. (`ferrokv_resp::parse_value` builds the value, which
//! allocates per bulk string; it serves the one-off CLUSTER SLOTS instead.)

/// What a complete reply was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `-...`: the text after the dash.
    Error(&'a [u8]),
    /// `$-1` or `*-1`.
    Nil,
    /// Anything else.
    Value,
}

/// The length and kind of the reply at the start of `buf`, `Ok(None)` when it is not
/// complete yet, `Err` when the bytes are not RESP2.
pub fn frame(buf: &[u8]) -> Result<Option<(usize, Kind<'_>)>, String> {
    let Some(line_end) = find_crlf(buf, 0) else { return Ok(None) };
    if line_end == 0 {
        return Err("empty reply line".into());
    }
    let line = &buf[1..line_end];
    let after = line_end + 2;
    match buf[0] {
        b'-' => Ok(Some((after, Kind::Error(line)))),
        b'+' | b':' => Ok(Some((after, Kind::Value))),
        b'$' => {
            let n = number(line)?;
            if n < 0 {
                return Ok(Some((after, Kind::Nil)));
            }
            let end = after + n as usize + 2;
            Ok((buf.len() >= end).then_some((end, Kind::Value)))
        }
        b'*' => {
            let n = number(line)?;
            if n < 0 {
                return Ok(Some((after, Kind::Nil)));
            }
            let mut at = after;
            for _ in 0..n {
                match frame(&buf[at..])? {
                    Some((len, _)) => at += len,
                    None => return Ok(None),
                }
            }
            Ok(Some((at, Kind::Value)))
        }
        other => Err(format!("unexpected reply type byte {:?}", other as char)),
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

fn number(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad length {:?}", String::from_utf8_lossy(line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(frame(b"+OK\r\n"), Ok(Some((5, Kind::Value))));
        assert_eq!(frame(b"+OK\r"), Ok(None));
        assert_eq!(frame(b"$-1\r\n+OK\r\n"), Ok(Some((5, Kind::Nil))));
        assert_eq!(frame(b"$3\r\nabc\r\n$1"), Ok(Some((9, Kind::Value))));
        assert_eq!(frame(b"$3\r\nabc\r"), Ok(None));
        assert_eq!(frame(b"-MOVED 1 h:1\r\n"), Ok(Some((14, Kind::Error(b"MOVED 1 h:1")))));
        assert_eq!(frame(b":12\r\n"), Ok(Some((5, Kind::Value))));
        assert_eq!(frame(b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n+x"), Ok(Some((19, Kind::Value))));
        assert_eq!(frame(b"*2\r\n$1\r\na\r\n*1\r\n"), Ok(None));
        assert_eq!(frame(b"*-1\r\n"), Ok(Some((5, Kind::Nil))));
        // A value holding CRLF is skipped by its length, not by searching.
        assert_eq!(frame(b"$4\r\n\r\n\r\n\r\n"), Ok(Some((10, Kind::Value))));
        assert!(frame(b"?x\r\n").is_err());
        assert!(frame(b"$x\r\n").is_err());
        assert!(frame(b"\r\n").is_err());
    }

    #[test]
    fn every_prefix_of_a_pipeline_is_incomplete_or_whole() {
        let stream: &[u8] = b"+OK\r\n$5\r\nhello\r\n$-1\r\n-ERR x\r\n*2\r\n:1\r\n$2\r\nab\r\n";
        let lens = [5, 11, 5, 8, 16];
        for cut in 0..=stream.len() {
            let mut at = 0;
            let mut seen = 0;
            while let Some((len, _)) = frame(&stream[at..cut]).unwrap() {
                assert_eq!(len, lens[seen]);
                at += len;
                seen += 1;
            }
            let whole: usize = lens[..seen].iter().sum();
            assert_eq!(at, whole);
            assert!(seen == lens.len() || whole + lens[seen] > cut);
        }
    }
}
