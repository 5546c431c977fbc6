//! A small RESP2/RESP3 reply reader for tests.
//!
//! Tests compare servers by the exact bytes of each reply, so the reader's main job is
//! framing: finding where one reply ends ([`frame_len`]). [`parse`] also decodes a
//! frame into a [`Reply`] tree for the few comparisons that cannot be byte-exact
//! (TTLs, unordered key lists) and for readable assertions.

use std::fmt;

/// One decoded reply. Bulk-like payloads keep their raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reply {
    /// `+OK`
    Simple(Vec<u8>),
    /// `-ERR ...` (the text after `-`)
    Error(Vec<u8>),
    /// `:42`
    Int(i64),
    /// `$3\r\nfoo` or `$-1` (None)
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...` or `*-1` (None)
    Array(Option<Vec<Reply>>),
    /// RESP3 `_`
    Null,
    /// RESP3 `,1.5` (kept as text: `inf`, `nan`, exponent forms)
    Double(Vec<u8>),
    /// RESP3 `#t` / `#f`
    Bool(bool),
    /// RESP3 `(12345678901234567890`
    BigNumber(Vec<u8>),
    /// RESP3 `!5\r\nERR x` (bulk error)
    BulkError(Vec<u8>),
    /// RESP3 `=7\r\ntxt:abc` (format and text together)
    Verbatim(Vec<u8>),
    /// RESP3 `%1\r\n...`
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `~2\r\n...`
    Set(Vec<Reply>),
    /// RESP3 `>3\r\n...`
    Push(Vec<Reply>),
    /// RESP3 `|1\r\n...` attributes followed by the reply they annotate.
    Attributed(Vec<(Reply, Reply)>, Box<Reply>),
}

/// Why some bytes are not a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError(pub String);

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed reply: {}", self.0)
    }
}

impl std::error::Error for FrameError {}

/// Length of the first complete reply frame in `buf`, `None` if more bytes are needed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    Ok(parse(buf)?.map(|(_, len)| len))
}

/// Decodes the first complete reply in `buf` and returns it with its length in bytes.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, FrameError> {
    let mut pos = 0;
    match parse_at(buf, &mut pos)? {
        Some(reply) => Ok(Some((reply, pos))),
        None => Ok(None),
    }
}

/// Decodes a buffer that must hold exactly one complete reply.
pub fn parse_one(buf: &[u8]) -> Result<Reply, FrameError> {
    match parse(buf)? {
        Some((reply, len)) if len == buf.len() => Ok(reply),
        Some((_, len)) => Err(FrameError(format!("{} trailing bytes after the reply", buf.len() - len))),
        None => Err(FrameError(format!("incomplete reply {}", show(buf)))),
    }
}

fn line(buf: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let rest = buf.get(*pos..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let text = rest[..end].to_vec();
    *pos += end + 2;
    Some(text)
}

fn number(text: &[u8], what: char) -> Result<i64, FrameError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| FrameError(format!("bad {what} header {}", show(text))))
}

fn blob(buf: &[u8], pos: &mut usize, len: i64) -> Result<Option<Vec<u8>>, FrameError> {
    let len = usize::try_from(len).map_err(|_| FrameError(format!("negative length {len}")))?;
    let start = *pos;
    if buf.len() < start + len + 2 {
        return Ok(None);
    }
    if &buf[start + len..start + len + 2] != b"\r\n" {
        return Err(FrameError(format!("payload of {len} bytes not followed by CRLF")));
    }
    *pos = start + len + 2;
    Ok(Some(buf[start..start + len].to_vec()))
}

fn items(buf: &[u8], pos: &mut usize, count: i64) -> Result<Option<Vec<Reply>>, FrameError> {
    let count = usize::try_from(count).map_err(|_| FrameError(format!("negative count {count}")))?;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        match parse_at(buf, pos)? {
            Some(item) => out.push(item),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

fn pairs(buf: &[u8], pos: &mut usize, count: i64) -> Result<Option<Vec<(Reply, Reply)>>, FrameError> {
    let Some(flat) = items(buf, pos, count.saturating_mul(2))? else { return Ok(None) };
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(Some(out))
}

fn parse_at(buf: &[u8], pos: &mut usize) -> Result<Option<Reply>, FrameError> {
    let Some(&kind) = buf.get(*pos) else { return Ok(None) };
    let start = *pos;
    *pos += 1;
    let Some(head) = line(buf, pos) else {
        *pos = start;
        return Ok(None);
    };
    let kind = kind as char;
    let reply = match kind {
        '+' => Some(Reply::Simple(head)),
        '-' => Some(Reply::Error(head)),
        ':' => Some(Reply::Int(number(&head, kind)?)),
        '_' if head.is_empty() => Some(Reply::Null),
        ',' => Some(Reply::Double(head)),
        '#' if head == b"t" => Some(Reply::Bool(true)),
        '#' if head == b"f" => Some(Reply::Bool(false)),
        '(' => Some(Reply::BigNumber(head)),
        '$' | '!' | '=' => {
            let len = number(&head, kind)?;
            if len == -1 && kind == '$' {
                Some(Reply::Bulk(None))
            } else {
                blob(buf, pos, len)?.map(|data| match kind {
                    '$' => Reply::Bulk(Some(data)),
                    '!' => Reply::BulkError(data),
                    _ => Reply::Verbatim(data),
                })
            }
        }
        '*' | '~' | '>' => {
            let count = number(&head, kind)?;
            if count == -1 && kind == '*' {
                Some(Reply::Array(None))
            } else {
                items(buf, pos, count)?.map(|list| match kind {
                    '*' => Reply::Array(Some(list)),
                    '~' => Reply::Set(list),
                    _ => Reply::Push(list),
                })
            }
        }
        '%' => pairs(buf, pos, number(&head, kind)?)?.map(Reply::Map),
        '|' => match pairs(buf, pos, number(&head, kind)?)? {
            Some(attrs) => parse_at(buf, pos)?.map(|inner| Reply::Attributed(attrs, Box::new(inner))),
            None => None,
        },
        _ => return Err(FrameError(format!("unknown type byte {}", show(&buf[start..*pos])))),
    };
    if reply.is_none() {
        *pos = start;
    }
    Ok(reply)
}

/// Encodes a command as a RESP multibulk request.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Bytes as a quoted, escaped string that fits on a terminal line (long payloads are
/// cut in the middle).
pub fn show(bytes: &[u8]) -> String {
    const LIMIT: usize = 400;
    let mut out = String::from("\"");
    let escape = |out: &mut String, part: &[u8]| {
        for &b in part {
            match b {
                b'\r' => out.push_str("\\r"),
                b'\n' => out.push_str("\\n"),
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\x{b:02x}")),
            }
        }
    };
    if bytes.len() > LIMIT {
        escape(&mut out, &bytes[..LIMIT / 2]);
        out.push_str(&format!("\"...<{} bytes>...\"", bytes.len() - LIMIT));
        escape(&mut out, &bytes[bytes.len() - LIMIT / 2..]);
    } else {
        escape(&mut out, bytes);
    }
    out.push('"');
    out
}

/// A command as it would be typed: arguments escaped and space-separated.
pub fn show_command<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.iter().map(|a| show(a.as_ref())).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_resp2_types() {
        assert_eq!(frame_len(b"+OK\r\n"), Ok(Some(5)));
        assert_eq!(frame_len(b"+OK\r\n+OK\r\n"), Ok(Some(5)));
        assert_eq!(frame_len(b"+OK\r"), Ok(None));
        assert_eq!(frame_len(b"$3\r\nfoo\r\n"), Ok(Some(9)));
        assert_eq!(frame_len(b"$3\r\nfoo\r"), Ok(None));
        assert_eq!(frame_len(b"$-1\r\n"), Ok(Some(5)));
        assert_eq!(frame_len(b"*2\r\n:1\r\n$1\r\nx\r\n"), Ok(Some(15)));
        assert_eq!(frame_len(b"*2\r\n:1\r\n$1\r\nx"), Ok(None));
        assert_eq!(frame_len(b"*-1\r\n"), Ok(Some(5)));
        assert_eq!(frame_len(b""), Ok(None));
    }

    #[test]
    fn bulk_payload_may_contain_crlf() {
        let (reply, len) = parse(b"$4\r\na\r\nb\r\n").unwrap().unwrap();
        assert_eq!(len, 10);
        assert_eq!(reply, Reply::Bulk(Some(b"a\r\nb".to_vec())));
    }

    #[test]
    fn decodes_resp3_types() {
        let buf = b"%2\r\n+a\r\n,1.5\r\n+b\r\n~2\r\n#t\r\n_\r\n";
        let reply = parse_one(buf).unwrap();
        assert_eq!(
            reply,
            Reply::Map(vec![
                (Reply::Simple(b"a".to_vec()), Reply::Double(b"1.5".to_vec())),
                (Reply::Simple(b"b".to_vec()), Reply::Set(vec![Reply::Bool(true), Reply::Null])),
            ])
        );
        assert_eq!(frame_len(b"|1\r\n+k\r\n+v\r\n:1\r\n"), Ok(Some(16)));
        assert_eq!(frame_len(b"|1\r\n+k\r\n+v\r\n"), Ok(None));
        assert_eq!(parse_one(b"=7\r\ntxt:abc\r\n"), Ok(Reply::Verbatim(b"txt:abc".to_vec())));
        assert_eq!(parse_one(b"!3\r\nERR\r\n"), Ok(Reply::BulkError(b"ERR".to_vec())));
    }

    #[test]
    fn rejects_garbage() {
        assert!(frame_len(b"?what\r\n").is_err());
        assert!(frame_len(b":12a\r\n").is_err());
        assert!(frame_len(b"$3\r\nfooXX").is_err());
        assert!(parse_one(b"+OK\r\n+OK\r\n").is_err());
    }

    #[test]
    fn encodes_and_shows() {
        assert_eq!(encode_command(&["GET", "k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(show(b"a\r\n\x00\""), "\"a\\r\\n\\x00\\\"\"");
        assert!(show(&[b'x'; 1000]).contains("<600 bytes>"));
    }
}
