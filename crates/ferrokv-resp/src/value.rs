//! Replies as values: a RESP2/RESP3 reply parser, encoder and redis-cli-style printer,
//! for clients, tests and the CLI (the server writes replies with [`crate::ReplyBuf`]).
//!
//! [`parse_value`] parses one reply from the start of a buffer in one go.
//! [`ValueReader`] does the same for a reply that arrives in pieces: it remembers how
//! far it has checked the frame, so a large reply costs time linear in its size, and
//! builds the value once the frame is whole.
//!
//! Besides the types of [`Value`], the parser accepts RESP3 blob errors (`!`, read as
//! [`Value::Error`]) and attributes (`|`, skipped: the value that follows them is
//! returned), and `-1` counts for every aggregate type (`*-1` is [`Value::NilArray`],
//! the others [`Value::Null`]), as hiredis does. Nesting deeper than [`MAX_DEPTH`] is
//! refused so that no operation on a value can exhaust the stack.

use crate::parser::ProtocolError;
use crate::reply::format_double;

/// Aggregates nested deeper than this are refused by the parsers.
pub const MAX_DEPTH: usize = 512;

/// Elements reserved up front at most, whatever count a header declares.
const MAX_RESERVED: usize = 1024;

/// One reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `+OK`
    Simple(String),
    /// `-ERR message` (also a RESP3 blob error `!`).
    Error(String),
    /// `:12`
    Int(i64),
    /// `$3\r\nfoo`
    Bulk(Vec<u8>),
    /// `$-1`, the RESP2 null bulk string.
    Nil,
    /// `*2\r\n...`
    Array(Vec<Value>),
    /// `*-1`, the RESP2 null array.
    NilArray,
    /// `%1\r\n<key><value>` (RESP3).
    Map(Vec<(Value, Value)>),
    /// `~2\r\n...` (RESP3).
    Set(Vec<Value>),
    /// `,1.5` (RESP3). Encoded and printed as Redis 7.0 prints doubles (`%.17g`).
    Double(f64),
    /// `#t` / `#f` (RESP3).
    Bool(bool),
    /// `=8\r\ntxt:text` (RESP3); `format` is the three bytes before the colon.
    Verbatim { format: String, text: Vec<u8> },
    /// `(12345678901234567890` (RESP3).
    BigNumber(String),
    /// `>3\r\n...` (RESP3 out-of-band data: pub/sub messages, invalidations).
    Push(Vec<Value>),
    /// `_` (RESP3).
    Null,
}

fn err(text: &str) -> ProtocolError {
    ProtocolError(format!("Protocol error: {text}"))
}

/// The `\r\n` that ends the line containing `from`, or `Err(n)` when there is none yet
/// and `buf[..n]` need not be searched again.
fn find_crlf(buf: &[u8], from: usize) -> Result<usize, usize> {
    let mut i = from;
    loop {
        let Some(r) = buf.get(i..).and_then(|rest| rest.iter().position(|&b| b == b'\r')) else {
            return Err(buf.len().max(from));
        };
        let cr = i + r;
        match buf.get(cr + 1) {
            None => return Err(cr),
            Some(b'\n') => return Ok(cr),
            Some(_) => i = cr + 1,
        }
    }
}

/// What the header line of a reply says.
enum Header<'a> {
    /// A reply that is all in its line (`+ - : , # ( _`): type byte and content.
    Line(u8, &'a [u8]),
    /// `$ = !` with their length; the body starts after the header.
    Blob(u8, usize),
    /// `$-1`
    NilBlob,
    /// `* % ~ > |` with their number of elements (pairs count twice).
    Aggregate(u8, usize),
    /// A `-1` aggregate count.
    NilAggregate(u8),
}

fn parse_len(s: &[u8], what: &str) -> Result<Option<usize>, ProtocolError> {
    let n: i64 = std::str::from_utf8(s).ok().and_then(|s| s.parse().ok()).ok_or_else(|| err(what))?;
    match n {
        -1 => Ok(None),
        n if n >= 0 => usize::try_from(n).map(Some).map_err(|_| err(what)),
        _ => Err(err(what)),
    }
}

/// Reads the header line at `pos`: the header and the offset after its line.
fn header(buf: &[u8], pos: usize, line_end: usize) -> Result<(Header<'_>, usize), ProtocolError> {
    let kind = buf.get(pos).copied().unwrap_or(b'\r');
    let content = buf.get(pos + 1..line_end).unwrap_or(&[]);
    let next = line_end + 2;
    let h = match kind {
        b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => {
            check_line(kind, content)?;
            Header::Line(kind, content)
        }
        b'$' | b'=' | b'!' => match parse_len(content, "invalid bulk length")? {
            Some(len) => {
                if kind == b'=' && len < 4 {
                    return Err(err("verbatim string shorter than its format"));
                }
                Header::Blob(kind, len)
            }
            None if kind == b'$' => Header::NilBlob,
            None => return Err(err("invalid bulk length")),
        },
        b'*' | b'%' | b'~' | b'>' | b'|' => match parse_len(content, "invalid multibulk length")? {
            Some(n) if matches!(kind, b'%' | b'|') => {
                Header::Aggregate(kind, n.checked_mul(2).ok_or_else(|| err("invalid multibulk length"))?)
            }
            Some(n) => Header::Aggregate(kind, n),
            None if kind == b'|' => return Err(err("invalid multibulk length")),
            None => Header::NilAggregate(kind),
        },
        other => return Err(ProtocolError(format!("Protocol error: unknown reply type '{}'", char::from(other)))),
    };
    Ok((h, next))
}

/// Validates the content of a one-line reply, so that [`line_value`] cannot fail.
fn check_line(kind: u8, content: &[u8]) -> Result<(), ProtocolError> {
    let ok = match kind {
        b':' => std::str::from_utf8(content).ok().and_then(|s| s.parse::<i64>().ok()).is_some(),
        b',' => std::str::from_utf8(content).ok().and_then(|s| s.parse::<f64>().ok()).is_some(),
        b'#' => content == b"t" || content == b"f",
        b'(' => {
            let digits = content.strip_prefix(b"-").unwrap_or(content);
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
        }
        b'_' => content.is_empty(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(ProtocolError(format!("Protocol error: invalid '{}' reply", char::from(kind))))
    }
}

fn line_value(kind: u8, content: &[u8]) -> Value {
    let text = || String::from_utf8_lossy(content).into_owned();
    let parsed = || std::str::from_utf8(content).unwrap_or("");
    match kind {
        b'+' => Value::Simple(text()),
        b'-' => Value::Error(text()),
        b':' => Value::Int(parsed().parse().unwrap_or(0)),
        b',' => Value::Double(parsed().parse().unwrap_or(0.0)),
        b'#' => Value::Bool(content == b"t"),
        b'(' => Value::BigNumber(text()),
        _ => Value::Null,
    }
}

/// A blob body of `len` bytes at `start`: `None` if not all there yet.
fn blob_body(buf: &[u8], kind: u8, start: usize, len: usize) -> Result<Option<&[u8]>, ProtocolError> {
    let Some(end) = start.checked_add(len) else {
        return Err(err("invalid bulk length"));
    };
    if buf.len() < end.saturating_add(2) {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(err("bulk string not followed by CRLF"));
    }
    let body = &buf[start..end];
    if kind == b'=' && body.get(3) != Some(&b':') {
        return Err(err("verbatim string without a format"));
    }
    Ok(Some(body))
}

fn blob_value(kind: u8, body: &[u8]) -> Value {
    match kind {
        b'=' => Value::Verbatim {
            format: String::from_utf8_lossy(&body[..3]).into_owned(),
            // blob_body checked the 4 bytes of format and separator.
            text: body[4..].to_vec(),
        },
        b'!' => Value::Error(String::from_utf8_lossy(body).into_owned()),
        _ => Value::Bulk(body.to_vec()),
    }
}

/// Parses one reply at the start of `buf`: the value and the bytes it took, or
/// `None` if the reply is not complete yet.
pub fn parse_value(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], mut pos: usize, depth: usize) -> Result<Option<(Value, usize)>, ProtocolError> {
    // Attributes annotate the reply that follows them: they are read and dropped.
    loop {
        if depth > MAX_DEPTH {
            return Err(err("reply nested too deeply"));
        }
        if pos >= buf.len() {
            return Ok(None);
        }
        let Ok(line_end) = find_crlf(buf, pos) else {
            return Ok(None);
        };
        let (h, next) = header(buf, pos, line_end)?;
        let (kind, n) = match h {
            Header::Line(kind, content) => return Ok(Some((line_value(kind, content), next))),
            Header::NilBlob => return Ok(Some((Value::Nil, next))),
            Header::NilAggregate(b'*') => return Ok(Some((Value::NilArray, next))),
            Header::NilAggregate(_) => return Ok(Some((Value::Null, next))),
            Header::Blob(kind, len) => {
                let Some(body) = blob_body(buf, kind, next, len)? else {
                    return Ok(None);
                };
                return Ok(Some((blob_value(kind, body), next + len + 2)));
            }
            Header::Aggregate(kind, n) => (kind, n),
        };
        let mut items = Vec::with_capacity(n.min(MAX_RESERVED));
        let mut at = next;
        for _ in 0..n {
            let Some((v, after)) = parse_at(buf, at, depth + 1)? else {
                return Ok(None);
            };
            items.push(v);
            at = after;
        }
        let v = match kind {
            b'%' => Value::Map(pairs(items)),
            b'~' => Value::Set(items),
            b'>' => Value::Push(items),
            b'|' => {
                pos = at;
                continue;
            }
            _ => Value::Array(items),
        };
        return Ok(Some((v, at)));
    }
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

/// A reply parser for replies that arrive in pieces. Each [`parse`](Self::parse) call
/// gets the buffer from the start of the reply, with more bytes than the call before;
/// the reader checks only the new bytes, and builds the value once it is complete.
#[derive(Default, Debug)]
pub struct ValueReader {
    /// Offset of the next header to read.
    pos: usize,
    /// Where to resume the search for the end of the header line at `pos`.
    line_from: usize,
    /// Elements still to read at each open nesting level, innermost last; empty
    /// between replies.
    open: Vec<usize>,
    /// Set while waiting for the body of a blob at `pos`: its kind, length and start.
    blob: Option<(u8, usize, usize)>,
}

impl ValueReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets a partly read reply.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Like [`parse_value`]; after `Ok(None)` call again with the same bytes and more.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
        match self.scan(buf) {
            Ok(Some(end)) => {
                self.reset();
                match parse_value(&buf[..end])? {
                    Some(found) => Ok(Some(found)),
                    None => Err(err("reply ended early")),
                }
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.reset();
                Err(e)
            }
        }
    }

    /// Where the reply at the start of `buf` ends, once it is complete (`None`: call
    /// again with the same bytes and more), without building a value: for callers that
    /// read the reply in place.
    pub fn complete(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let r = self.scan(buf);
        if !matches!(r, Ok(None)) {
            self.reset();
        }
        r
    }

    /// Checks the frame up to its end, resuming where the last call stopped.
    fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        if self.open.is_empty() {
            self.pos = 0;
            self.line_from = 0;
            self.blob = None;
            self.open.push(1);
        }
        loop {
            while self.open.last() == Some(&0) {
                self.open.pop();
            }
            if self.open.is_empty() {
                return Ok(Some(self.pos));
            }
            if let Some((kind, len, start)) = self.blob {
                if blob_body(buf, kind, start, len)?.is_none() {
                    return Ok(None);
                }
                self.blob = None;
                self.finish_element(start + len + 2);
                continue;
            }
            if self.open.len() - 1 > MAX_DEPTH {
                return Err(err("reply nested too deeply"));
            }
            if self.pos >= buf.len() {
                return Ok(None);
            }
            let line_end = match find_crlf(buf, self.line_from.max(self.pos)) {
                Ok(e) => e,
                Err(scanned) => {
                    self.line_from = scanned;
                    return Ok(None);
                }
            };
            let (h, next) = header(buf, self.pos, line_end)?;
            match h {
                Header::Line(..) | Header::NilBlob | Header::NilAggregate(_) => self.finish_element(next),
                Header::Blob(kind, len) => self.blob = Some((kind, len, next)),
                Header::Aggregate(kind, n) => {
                    if kind != b'|' {
                        // An attribute does not count as an element of its parent.
                        self.count_down();
                    }
                    self.open.push(n);
                    self.pos = next;
                    self.line_from = next;
                }
            }
        }
    }

    fn count_down(&mut self) {
        if let Some(left) = self.open.last_mut() {
            *left = left.saturating_sub(1);
        }
    }

    fn finish_element(&mut self, next: usize) {
        self.count_down();
        self.pos = next;
        self.line_from = next;
    }
}

/// Appends the RESP encoding of `v` to `out`. Simple strings have CR and LF replaced by
/// spaces (they cannot hold them); errors holding them are sent as blob errors (`!`);
/// a verbatim format is cut or padded to its 3 bytes.
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    fn head(out: &mut Vec<u8>, kind: u8, n: usize) {
        out.push(kind);
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    fn line(out: &mut Vec<u8>, kind: u8, text: &[u8]) {
        out.push(kind);
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    }
    match v {
        Value::Simple(s) => {
            let clean: Vec<u8> = s.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }).collect();
            line(out, b'+', &clean);
        }
        Value::Error(s) if s.contains(['\r', '\n']) => {
            head(out, b'!', s.len());
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Value::Error(s) => line(out, b'-', s.as_bytes()),
        Value::Int(n) => line(out, b':', n.to_string().as_bytes()),
        Value::Bulk(b) => {
            head(out, b'$', b.len());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Value::Nil => out.extend_from_slice(b"$-1\r\n"),
        Value::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Value::Null => out.extend_from_slice(b"_\r\n"),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            let kind = match v {
                Value::Set(_) => b'~',
                Value::Push(_) => b'>',
                _ => b'*',
            };
            head(out, kind, items.len());
            for i in items {
                encode_value(i, out);
            }
        }
        Value::Map(pairs) => {
            head(out, b'%', pairs.len());
            for (k, v) in pairs {
                encode_value(k, out);
                encode_value(v, out);
            }
        }
        Value::Double(d) => line(out, b',', format_double(*d).as_bytes()),
        Value::Bool(b) => line(out, b'#', if *b { b"t" } else { b"f" }),
        Value::Verbatim { format, text } => {
            head(out, b'=', text.len() + 4);
            let mut f = [b' '; 3];
            for (dst, src) in f.iter_mut().zip(format.bytes()) {
                *dst = src;
            }
            out.extend_from_slice(&f);
            out.push(b':');
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
        Value::BigNumber(n) => line(out, b'(', n.as_bytes()),
    }
}

/// `v` as redis-cli prints a reply on a terminal, e.g. `(integer) 1`, `"bar"`, `(nil)`,
/// `1) "a"` for arrays (nested ones indented), `1# "k" => "v"` for maps, `1~ "m"` for
/// sets, `(error) ERR ...`. Every line ends with `\n`, the last one included.
pub fn format_for_humans(v: &Value) -> String {
    let mut out = String::new();
    human(v, "", &mut out);
    out
}

fn human(v: &Value, prefix: &str, out: &mut String) {
    use std::fmt::Write as _;
    match v {
        Value::Error(e) => {
            out.push_str("(error) ");
            out.push_str(e);
        }
        Value::Simple(s) => out.push_str(s),
        Value::Int(n) => {
            let _ = write!(out, "(integer) {n}");
        }
        Value::Double(d) => {
            out.push_str("(double) ");
            out.push_str(&format_double(*d));
        }
        Value::Bulk(b) => quote_into(b, out),
        Value::Verbatim { text, .. } => out.push_str(&String::from_utf8_lossy(text)),
        Value::BigNumber(n) => {
            out.push_str("(big number) ");
            out.push_str(n);
        }
        Value::Nil | Value::NilArray | Value::Null => out.push_str("(nil)"),
        Value::Bool(b) => out.push_str(if *b { "(true)" } else { "(false)" }),
        Value::Array(items) | Value::Set(items) | Value::Push(items) if items.is_empty() => out.push_str(match v {
            Value::Set(_) => "(empty set)",
            Value::Push(_) => "(empty push)",
            _ => "(empty array)",
        }),
        Value::Map(pairs) if pairs.is_empty() => out.push_str("(empty hash)"),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            let sep = if matches!(v, Value::Set(_)) { '~' } else { ')' };
            let width = items.len().to_string().len();
            let inner = format!("{prefix}{}", " ".repeat(width + 2));
            for (i, item) in items.iter().enumerate() {
                let _ = write!(out, "{}{:>width$}{sep} ", if i == 0 { "" } else { prefix }, i + 1);
                human(item, &inner, out);
            }
            // Every element ended its own line.
            return;
        }
        Value::Map(pairs) => {
            let width = pairs.len().to_string().len();
            let inner = format!("{prefix}{}", " ".repeat(width + 2));
            for (i, (k, val)) in pairs.iter().enumerate() {
                let _ = write!(out, "{}{:>width$}# ", if i == 0 { "" } else { prefix }, i + 1);
                human(k, &inner, out);
                out.pop();
                out.push_str(" => ");
                if is_multiline(val) {
                    out.push('\n');
                    out.push_str(&inner);
                }
                human(val, &inner, out);
            }
            return;
        }
    }
    out.push('\n');
}

/// redis-cli's `cliIsMultilineValueTTY`: whether a map value starts on its own line.
fn is_multiline(v: &Value) -> bool {
    match v {
        Value::Array(items) | Value::Set(items) | Value::Push(items) => match items.len() {
            0 => false,
            1 => is_multiline(&items[0]),
            _ => true,
        },
        Value::Map(pairs) => match pairs.len() {
            0 => false,
            1 => is_multiline(&pairs[0].1),
            _ => true,
        },
        _ => false,
    }
}

/// Redis's `sdscatrepr`: a double-quoted string with C escapes and `\xHH`.
fn quote_into(b: &[u8], out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(char::from(c)),
            _ => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(buf: &[u8]) -> Value {
        match parse_value(buf) {
            Ok(Some((v, n))) => {
                assert_eq!(n, buf.len(), "{:?}", String::from_utf8_lossy(buf));
                v
            }
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    /// Replies captured from redis-server 7.0.15, and what `redis-cli --no-raw` printed.
    const FROM_REDIS: &[(&[u8], &str)] = &[
        (b"$-1\r\n", "(nil)\n"),
        (b"_\r\n", "(nil)\n"),
        (b"+PONG\r\n", "PONG\n"),
        (b":1\r\n", "(integer) 1\n"),
        (b",1.5\r\n", "(double) 1.5\n"),
        (b",1e+20\r\n", "(double) 1e+20\n"),
        (b"#t\r\n", "(true)\n"),
        (b"*0\r\n", "(empty array)\n"),
        (b"%0\r\n", "(empty hash)\n"),
        (b"~0\r\n", "(empty set)\n"),
        (b"$8\r\na\"b\\\n\x01\xc3\xbf\r\n", "\"a\\\"b\\\\\\n\\x01\\xc3\\xbf\"\n"),
        (
            b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n",
            "(error) ERR unknown command 'NOSUCH', with args beginning with: \n",
        ),
        (
            b"*12\r\n$1\r\n0\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n$1\r\n5\r\n$1\r\n6\r\n$1\r\n7\r\n$1\r\n8\r\n$1\r\n9\r\n$2\r\n10\r\n$2\r\n11\r\n",
            " 1) \"0\"\n 2) \"1\"\n 3) \"2\"\n 4) \"3\"\n 5) \"4\"\n 6) \"5\"\n 7) \"6\"\n 8) \"7\"\n 9) \"8\"\n10) \"9\"\n11) \"10\"\n12) \"11\"\n",
        ),
        (b"%2\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n", "1# \"f1\" => \"v1\"\n2# \"f2\" => \"v2\"\n"),
        (b"~1\r\n$2\r\nm1\r\n", "1~ \"m1\"\n"),
        (
            b"%3\r\n$1\r\na\r\n*2\r\n:1\r\n:2\r\n$1\r\nd\r\n*0\r\n$1\r\nb\r\n%1\r\n$1\r\nc\r\n:1\r\n",
            "1# \"a\" => \n   1) (integer) 1\n   2) (integer) 2\n2# \"d\" => (empty array)\n3# \"b\" => 1# \"c\" => (integer) 1\n",
        ),
        (
            b"%1\r\n$1\r\na\r\n%2\r\n$1\r\ny\r\n*1\r\n:1\r\n$1\r\nx\r\n:1\r\n",
            "1# \"a\" => \n   1# \"y\" => 1) (integer) 1\n   2# \"x\" => (integer) 1\n",
        ),
        (
            b"*4\r\n:1\r\n*2\r\n:2\r\n*2\r\n:3\r\n*0\r\n$1\r\nx\r\n-ERR boom\r\n",
            "1) (integer) 1\n2) 1) (integer) 2\n   2) 1) (integer) 3\n      2) (empty array)\n3) \"x\"\n4) (error) ERR boom\n",
        ),
    ];

    #[test]
    fn prints_like_redis_cli() {
        for (wire, printed) in FROM_REDIS {
            assert_eq!(format_for_humans(&parse_all(wire)), *printed, "{:?}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn redis_replies_encode_back_to_the_same_bytes() {
        for (wire, _) in FROM_REDIS {
            let mut out = Vec::new();
            encode_value(&parse_all(wire), &mut out);
            assert_eq!(&out[..], *wire);
        }
    }

    #[test]
    fn parses_every_type() {
        assert_eq!(parse_all(b"+OK\r\n"), Value::Simple("OK".into()));
        assert_eq!(parse_all(b"-ERR x\r\n"), Value::Error("ERR x".into()));
        assert_eq!(parse_all(b"!5\r\nERR\r\n\r\n"), Value::Error("ERR\r\n".into()));
        assert_eq!(parse_all(b":-7\r\n"), Value::Int(-7));
        assert_eq!(parse_all(b"$0\r\n\r\n"), bulk(""));
        assert_eq!(parse_all(b"$4\r\na\r\nb\r\n"), bulk("a\r\nb"));
        assert_eq!(parse_all(b"$-1\r\n"), Value::Nil);
        assert_eq!(parse_all(b"*-1\r\n"), Value::NilArray);
        assert_eq!(parse_all(b"%-1\r\n"), Value::Null);
        assert_eq!(parse_all(b"_\r\n"), Value::Null);
        assert_eq!(parse_all(b"*2\r\n$1\r\na\r\n*0\r\n"), Value::Array(vec![bulk("a"), Value::Array(vec![])]));
        assert_eq!(parse_all(b"%1\r\n+k\r\n:1\r\n"), Value::Map(vec![(Value::Simple("k".into()), Value::Int(1))]));
        assert_eq!(parse_all(b"~1\r\n#f\r\n"), Value::Set(vec![Value::Bool(false)]));
        assert_eq!(
            parse_all(b">2\r\n+a\r\n+b\r\n"),
            Value::Push(vec![Value::Simple("a".into()), Value::Simple("b".into())])
        );
        assert_eq!(parse_all(b",-inf\r\n"), Value::Double(f64::NEG_INFINITY));
        assert!(matches!(parse_all(b",nan\r\n"), Value::Double(d) if d.is_nan()));
        assert_eq!(
            parse_all(b"(-123456789012345678901234567890\r\n"),
            Value::BigNumber("-123456789012345678901234567890".into())
        );
        assert_eq!(
            parse_all(b"=8\r\ntxt:a\r\nb\r\n"),
            Value::Verbatim { format: "txt".into(), text: b"a\r\nb".to_vec() }
        );
    }

    #[test]
    fn attributes_are_skipped() {
        assert_eq!(parse_all(b"|1\r\n+ttl\r\n:3\r\n|0\r\n:5\r\n"), Value::Int(5));
        assert_eq!(
            parse_all(b"*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n"),
            Value::Array(vec![Value::Int(1), Value::Int(2)])
        );
    }

    #[test]
    fn incomplete_replies() {
        for buf in [
            &b""[..],
            b"+OK",
            b"+OK\r",
            b"$3\r\nfo",
            b"$3\r\nfoo\r",
            b"*2\r\n:1\r\n",
            b"%1\r\n:1\r\n",
            b"|1\r\n:1\r\n:1\r\n",
        ] {
            assert_eq!(parse_value(buf), Ok(None), "{:?}", String::from_utf8_lossy(buf));
        }
    }

    #[test]
    fn malformed_replies() {
        for buf in [
            &b"?\r\n"[..],
            b"\r\n",
            b":x\r\n",
            b":\r\n",
            b"#x\r\n",
            b"_x\r\n",
            b"(1.5\r\n",
            b",one\r\n",
            b"$-2\r\n",
            b"$x\r\n",
            b"$3\r\nfooXY",
            b"=3\r\ntxt\r\n",
            b"=5\r\ntxt-x\r\n",
            b"*-2\r\n",
            b"|-1\r\n",
        ] {
            assert!(parse_value(buf).is_err(), "{:?}", String::from_utf8_lossy(buf));
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = b"*1\r\n".repeat(100_000);
        assert!(parse_value(&deep).is_err());
        assert!(ValueReader::new().parse(&deep).is_err());
        let mut ok = b"*1\r\n".repeat(MAX_DEPTH);
        ok.extend_from_slice(b":1\r\n");
        assert!(parse_value(&ok).unwrap().is_some());
        assert!(ValueReader::new().parse(&ok).unwrap().is_some());
        // A long chain of attributes nests nothing, but must not recurse either.
        let mut attrs = b"|0\r\n".repeat(100_000);
        attrs.extend_from_slice(b":1\r\n");
        assert_eq!(parse_value(&attrs).unwrap().map(|(v, _)| v), Some(Value::Int(1)));
    }

    #[test]
    fn declared_sizes_are_not_reserved() {
        assert_eq!(parse_value(b"*2147483647\r\n:1\r\n"), Ok(None));
        assert_eq!(parse_value(b"$9223372036854775807\r\n"), Ok(None));
        assert!(parse_value(b"$9223372036854775807\r\nab").is_ok());
    }

    #[test]
    fn reader_takes_pieces() {
        let wire = FROM_REDIS[16].0;
        let mut r = ValueReader::new();
        for n in 0..wire.len() {
            assert_eq!(r.parse(&wire[..n]), Ok(None), "at {n}");
        }
        assert_eq!(r.parse(wire), Ok(Some((parse_all(wire), wire.len()))));
        // And then the next reply from scratch.
        assert_eq!(r.parse(b":1\r\n+x"), Ok(Some((Value::Int(1), 4))));
    }

    #[test]
    fn encodes_resp3_types() {
        let v = Value::Array(vec![
            Value::Map(vec![(Value::Simple("a\r\nb".into()), Value::Double(0.1))]),
            Value::Set(vec![Value::Bool(true), Value::Null]),
            Value::Push(vec![Value::BigNumber("12".into())]),
            Value::Verbatim { format: "markdown".into(), text: b"x".to_vec() },
            Value::Error("ERR a\nb".into()),
            Value::Nil,
            Value::NilArray,
        ]);
        let mut out = Vec::new();
        encode_value(&v, &mut out);
        assert_eq!(
            out,
            b"*7\r\n%1\r\n+a  b\r\n,0.10000000000000001\r\n~2\r\n#t\r\n_\r\n>1\r\n(12\r\n=5\r\nmar:x\r\n!7\r\nERR a\nb\r\n$-1\r\n*-1\r\n"
        );
    }

    #[test]
    fn prints_other_types() {
        let v = Value::Push(vec![
            Value::Verbatim { format: "txt".into(), text: b"plain\ttext".to_vec() },
            Value::BigNumber("1".into()),
            Value::Bool(false),
            Value::NilArray,
            Value::Set(vec![]),
            Value::Push(vec![]),
            Value::Simple("OK".into()),
        ]);
        assert_eq!(
            format_for_humans(&v),
            "1) plain\ttext\n2) (big number) 1\n3) (false)\n4) (nil)\n5) (empty set)\n6) (empty push)\n7) OK\n"
        );
    }
}
