//! The request parser: what Redis's `processMultibulkBuffer` and `processInlineBuffer`
//! (networking.c) do, as a resumable state machine over a byte buffer.
//!
//! A request whose first byte is `*` is a multibulk frame:
//! `*<count>\r\n` then `count` times `$<len>\r\n<len bytes>\r\n`. Anything else is an
//! inline command: one line ending at `\n` (a `\r` before it is dropped), split into
//! arguments like a shell would (see [`crate::inline`]).
//!
//! The caller owns the buffer. [`RequestParser::parse`] always looks at the buffer from
//! the first byte of the frame being parsed. When the frame is incomplete it remembers
//! how far it got (the count, the arguments found, the offset reached, how much of a
//! line has been searched for its end), so that the next call, given the same bytes
//! with more appended, continues where it stopped: a frame arriving in many pieces costs
//! time linear in its size.
//!
//! Quirks of Redis kept on purpose, because a client can see them:
//! - Lines are found by searching for `\r` (multibulk) or `\n` (inline) with C's
//!   `strchr` on a NUL-terminated buffer, so a NUL byte before the line end hides the end
//!   forever: the request stays incomplete until the line limit below is passed.
//! - The byte after a header's `\r` and the two bytes after a bulk body are skipped
//!   unchecked: `$3\r\nfooXY` is a valid argument.
//! - `*0`, `*-1` (any count ≤ 0) and a blank inline line are valid and do nothing.
//!
//! One deliberate difference: Redis rejects a line longer than 64 KiB only when the
//! bytes it has read so far hold no line end, so the outcome depends on how the line was
//! split across reads. Here the rule depends on the bytes alone: a line whose end is not
//! among its first 64 KiB + 1 bytes is too big. Only the error text of pathological
//! lines can differ from Redis; both close the connection.

use crate::args::{Args, Span};
use crate::inline;

/// What a connection is allowed to send (Redis: `proto-max-bulk-len`, and whether the
/// client still has to authenticate, which caps requests at 10 arguments of 16 KiB).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bulk_len: usize,
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bulk_len: 512 * 1024 * 1024, authenticated: true }
    }
}

/// A malformed request. The text is Redis's, e.g. `Protocol error: invalid bulk length`;
/// the server replies `-ERR <text>` and closes the connection after the reply.
///
/// One message quotes a byte of the request (`expected '$', got 'X'`); a byte ≥ 0x80 is
/// stored as the char with that code point (Latin-1). Redis sends the raw byte: use
/// [`ProtocolError::reply`] to get the exact reply bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(text: &str) -> Self {
        ProtocolError(text.to_string())
    }

    /// The error reply Redis sends: `-ERR <text>\r\n`, with Latin-1 chars as raw bytes.
    pub fn reply(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + 7);
        out.extend_from_slice(b"-ERR ");
        for c in self.0.chars() {
            match u8::try_from(u32::from(c)) {
                Ok(b) => out.push(b),
                Err(_) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// The outcome of one [`RequestParser::parse`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole command of `consumed` bytes; its arguments are [`RequestParser::args`].
    Command { consumed: usize },
    /// A frame that holds no command (`*0`, `*-1`, a blank inline line): skip it.
    Empty { consumed: usize },
    /// More bytes are needed. Call again with the same bytes and more appended.
    Incomplete,
}

/// Redis's PROTO_INLINE_MAX_SIZE: the longest line searched for its end.
const MAX_LINE: usize = 64 * 1024;
/// Before authentication a request has at most this many arguments...
const UNAUTH_MAX_COUNT: i64 = 10;
/// ...of at most this many bytes each.
const UNAUTH_MAX_BULK: i64 = 16 * 1024;
/// Spans reserved up front at most, whatever count a header declares.
const MAX_RESERVED_SPANS: usize = 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Between frames.
    #[default]
    Idle,
    /// An inline line: `buf[..scanned]` holds no `\n`.
    Inline { scanned: usize },
    /// The `*<count>` line: `buf[..scanned]` holds no `\r`.
    Count { scanned: usize },
    /// Inside a multibulk frame: `left` arguments to go, the next one starting at `pos`.
    /// `body` is the length of the current argument once its `$<len>` line has been read;
    /// until then `buf[pos..scanned]` holds no `\r`.
    Bulks { left: usize, pos: usize, body: Option<usize>, scanned: usize },
}

/// The parser of one connection's requests. See the module documentation.
#[derive(Default, Debug)]
pub struct RequestParser {
    /// The arguments of the last command returned, as offsets into the buffer given to
    /// [`parse`](Self::parse) (or into `scratch`).
    pub spans: Vec<Span>,
    /// Inline arguments that had to be rewritten (quotes and escapes).
    pub scratch: Vec<u8>,
    state: State,
}

/// Where the search for a line's end stopped.
enum LineEnd {
    /// The terminator is at this offset.
    At(usize),
    /// Not found yet; the bytes before this offset need no second look.
    NotYet(usize),
    /// Not among the first `MAX_LINE + 1` bytes of the line.
    TooLong,
}

/// Looks for `term` in the line that starts at `start`, resuming the search at `from`.
/// A NUL byte stops the search for good, as it stops C's `strchr`.
fn find_line_end(buf: &[u8], start: usize, from: usize, term: u8) -> LineEnd {
    let window_end = buf.len().min(start.saturating_add(MAX_LINE + 1));
    let from = from.max(start);
    let mut stuck_at = None;
    if from < window_end {
        for (i, &b) in buf[from..window_end].iter().enumerate() {
            if b == term {
                return LineEnd::At(from + i);
            }
            if b == 0 {
                stuck_at = Some(from + i);
                break;
            }
        }
    }
    if buf.len() - start.min(buf.len()) > MAX_LINE {
        LineEnd::TooLong
    } else {
        LineEnd::NotYet(stuck_at.unwrap_or(window_end.max(from)))
    }
}

/// Redis's `string2ll`: an optional `-`, then digits without a leading zero (or just
/// `0`), at most 20 bytes, fitting an i64. No `+`, no blanks, no `-0`.
pub(crate) fn parse_ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the frame at the start of `buf`. See [`Parsed`] for the outcomes.
    ///
    /// After `Incomplete`, the next call must pass a buffer that starts with the same
    /// bytes (it may have moved in memory) with more appended; otherwise call
    /// [`reset`](Self::reset) first. After an error the server replies and closes the
    /// connection, as Redis does; the parser itself is left between frames.
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
        if self.state == State::Idle {
            self.spans.clear();
            self.scratch.clear();
            match buf.first() {
                None => return Ok(Parsed::Incomplete),
                Some(b'*') => self.state = State::Count { scanned: 0 },
                Some(_) => self.state = State::Inline { scanned: 0 },
            }
        }
        let result = match self.state {
            State::Inline { scanned } => self.parse_inline(buf, scanned),
            _ => self.parse_multibulk(buf, limits),
        };
        if result.is_err() {
            self.state = State::Idle;
        }
        result
    }

    /// The arguments of the command that the last call returned, `buf` being the buffer
    /// given to that call.
    pub fn args<'a>(&'a self, buf: &'a [u8]) -> Args<'a> {
        Args::new(buf, &self.scratch, &self.spans)
    }

    /// Forgets any partly parsed frame.
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.spans.clear();
        self.scratch.clear();
    }

    /// Whether a frame has been started but not finished.
    pub fn in_frame(&self) -> bool {
        self.state != State::Idle
    }

    /// While waiting for the body of a bulk argument: the buffer length (from the frame
    /// start) that completes it. A server may use it to grow its read buffer once,
    /// as Redis does for arguments of 32 KiB or more, instead of by doubling.
    pub fn bulk_end(&self) -> Option<usize> {
        match self.state {
            State::Bulks { pos, body: Some(len), .. } => pos.checked_add(len)?.checked_add(2),
            _ => None,
        }
    }

    fn parse_inline(&mut self, buf: &[u8], scanned: usize) -> Result<Parsed, ProtocolError> {
        let newline = match find_line_end(buf, 0, scanned, b'\n') {
            LineEnd::At(i) => i,
            LineEnd::NotYet(scanned) => {
                self.state = State::Inline { scanned };
                return Ok(Parsed::Incomplete);
            }
            LineEnd::TooLong => return Err(ProtocolError::new("Protocol error: too big inline request")),
        };
        self.state = State::Idle;
        let end = if newline > 0 && buf[newline - 1] == b'\r' { newline - 1 } else { newline };
        if inline::split_into(&buf[..end], &mut self.spans, &mut self.scratch).is_err() {
            return Err(ProtocolError::new("Protocol error: unbalanced quotes in request"));
        }
        let consumed = newline + 1;
        Ok(if self.spans.is_empty() { Parsed::Empty { consumed } } else { Parsed::Command { consumed } })
    }

    fn parse_multibulk(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
        if let State::Count { scanned } = self.state {
            let cr = match find_line_end(buf, 0, scanned, b'\r') {
                LineEnd::At(cr) => cr,
                LineEnd::NotYet(scanned) => {
                    self.state = State::Count { scanned };
                    return Ok(Parsed::Incomplete);
                }
                LineEnd::TooLong => return Err(ProtocolError::new("Protocol error: too big mbulk count string")),
            };
            // Redis wants one byte after the '\r' and skips it unchecked.
            if cr + 1 >= buf.len() {
                self.state = State::Count { scanned: cr };
                return Ok(Parsed::Incomplete);
            }
            let count = match buf.get(1..cr).and_then(parse_ll) {
                Some(n) if n <= i64::from(i32::MAX) => n,
                _ => return Err(ProtocolError::new("Protocol error: invalid multibulk length")),
            };
            if count > UNAUTH_MAX_COUNT && !limits.authenticated {
                return Err(ProtocolError::new("Protocol error: unauthenticated multibulk length"));
            }
            let pos = cr + 2;
            if count <= 0 {
                self.state = State::Idle;
                return Ok(Parsed::Empty { consumed: pos });
            }
            let count = count as usize;
            self.spans.reserve(count.min(MAX_RESERVED_SPANS));
            self.state = State::Bulks { left: count, pos, body: None, scanned: pos };
        }
        let State::Bulks { mut left, mut pos, mut body, mut scanned } = self.state else {
            // parse() only calls here in the Count and Bulks states.
            self.state = State::Idle;
            return Ok(Parsed::Incomplete);
        };
        while left > 0 {
            let len = match body {
                Some(len) => len,
                None => {
                    let cr = match find_line_end(buf, pos, scanned, b'\r') {
                        LineEnd::At(cr) => cr,
                        LineEnd::NotYet(s) => {
                            scanned = s;
                            break;
                        }
                        LineEnd::TooLong => {
                            return Err(ProtocolError::new("Protocol error: too big bulk count string"));
                        }
                    };
                    if cr + 1 >= buf.len() {
                        scanned = cr;
                        break;
                    }
                    if buf[pos] != b'$' {
                        return Err(expected_dollar(buf[pos]));
                    }
                    let len = match parse_ll(&buf[pos + 1..cr]) {
                        Some(n) if n >= 0 && n as u64 <= limits.max_bulk_len as u64 => n,
                        _ => return Err(ProtocolError::new("Protocol error: invalid bulk length")),
                    };
                    if len > UNAUTH_MAX_BULK && !limits.authenticated {
                        return Err(ProtocolError::new("Protocol error: unauthenticated bulk length"));
                    }
                    pos = cr + 2;
                    let len = len as usize;
                    body = Some(len);
                    len
                }
            };
            // `len` is at most max_bulk_len, but a frame must also fit the u32 spans.
            let Some(end) = pos.checked_add(len).filter(|&e| e <= u32::MAX as usize) else {
                return Err(ProtocolError::new("Protocol error: too big request"));
            };
            // The two bytes after the body are skipped unchecked, as Redis does.
            if buf.len() < end + 2 {
                break;
            }
            self.spans.push(Span { start: pos as u32, len: len as u32, in_scratch: false });
            pos = end + 2;
            scanned = pos;
            body = None;
            left -= 1;
        }
        if left > 0 {
            self.state = State::Bulks { left, pos, body, scanned };
            return Ok(Parsed::Incomplete);
        }
        self.state = State::Idle;
        Ok(Parsed::Command { consumed: pos })
    }
}

/// `expected '$', got 'X'`. Redis formats the message with `%c` and then turns CR and LF
/// into spaces.
fn expected_dollar(got: u8) -> ProtocolError {
    let got = match got {
        b'\r' | b'\n' => ' ',
        b => char::from(b),
    };
    ProtocolError(format!("Protocol error: expected '$', got '{got}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: Limits = Limits { max_bulk_len: 512 * 1024 * 1024, authenticated: true };
    const NOAUTH: Limits = Limits { max_bulk_len: 512 * 1024 * 1024, authenticated: false };

    fn args_of(p: &RequestParser, buf: &[u8]) -> Vec<Vec<u8>> {
        p.args(buf).iter().map(|a| a.to_vec()).collect()
    }

    /// Each frame's arguments, `None` for an empty frame.
    type Frames = Vec<Option<Vec<Vec<u8>>>>;

    /// Parses every frame of `input` in one go; also returns the offset where it stopped.
    fn frames(input: &[u8], limits: &Limits) -> Result<(Frames, usize), ProtocolError> {
        let mut p = RequestParser::new();
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            match p.parse(&input[at..], limits)? {
                Parsed::Command { consumed } => {
                    out.push(Some(args_of(&p, &input[at..])));
                    at += consumed;
                }
                Parsed::Empty { consumed } => {
                    out.push(None);
                    at += consumed;
                }
                Parsed::Incomplete => return Ok((out, at)),
            }
        }
    }

    fn one(input: &[u8]) -> Vec<Vec<u8>> {
        let mut p = RequestParser::new();
        match p.parse(input, &AUTH) {
            Ok(Parsed::Command { consumed }) => {
                assert_eq!(consumed, input.len(), "{:?}", String::from_utf8_lossy(input));
                args_of(&p, input)
            }
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(input)),
        }
    }

    fn err(input: &[u8], limits: &Limits) -> String {
        match RequestParser::new().parse(input, limits) {
            Err(ProtocolError(e)) => e,
            other => panic!("expected an error, got {other:?} for {:?}", String::from_utf8_lossy(input)),
        }
    }

    fn incomplete(input: &[u8]) -> bool {
        RequestParser::new().parse(input, &AUTH) == Ok(Parsed::Incomplete)
    }

    #[test]
    fn multibulk_command() {
        assert_eq!(one(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"), [&b"SET"[..], b"k", b""]);
        assert_eq!(one(b"*1\r\n$4\r\nPI\0G\r\n"), [b"PI\0G"]);
        assert_eq!(one(b"*1\r\n$4\r\nA\r\nB\r\n"), [b"A\r\nB"]);
    }

    #[test]
    fn bytes_after_header_and_body_are_not_checked() {
        assert_eq!(one(b"*1\rX$4\rXPINGXY"), [b"PING"]);
    }

    #[test]
    fn pipelined_frames_each_report_their_length() {
        let input = b"*1\r\n$4\r\nPING\r\n*0\r\nECHO hi\r\n*-1\r\n\n*2\r\n$1\r\na";
        let (got, at) = frames(input, &AUTH).unwrap();
        assert_eq!(
            got,
            vec![Some(vec![b"PING".to_vec()]), None, Some(vec![b"ECHO".to_vec(), b"hi".to_vec()]), None, None,]
        );
        assert_eq!(&input[at..], b"*2\r\n$1\r\na");
    }

    #[test]
    fn empty_frames() {
        for (input, len) in
            [(&b"*0\r\n"[..], 4), (b"*-1\r\n", 5), (b"*-99\r\n", 6), (b"\r\n", 2), (b"\n", 1), (b" \t \r\n", 5)]
        {
            assert_eq!(RequestParser::new().parse(input, &AUTH), Ok(Parsed::Empty { consumed: len }));
        }
        // A count ≤ 0 is not checked against the unauthenticated limit.
        assert_eq!(RequestParser::new().parse(b"*-1\r\n", &NOAUTH), Ok(Parsed::Empty { consumed: 5 }));
    }

    #[test]
    fn incomplete_frames() {
        for input in [
            &b""[..],
            b"*",
            b"*1",
            b"*1\r",
            b"*1\r\n",
            b"*1\r\n$",
            b"*1\r\n$3\r",
            b"*1\r\n$3\r\n",
            b"*1\r\n$3\r\nfoo",
            b"*1\r\n$3\r\nfoo\r",
            b"*1\r\nX",
            b"PING",
            b"PING\r",
        ] {
            assert!(incomplete(input), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn nul_hides_the_line_end_like_strchr() {
        assert!(incomplete(b"*1\0\r\n$4\r\nPING\r\n"));
        assert!(incomplete(b"*1\r\n$4\0\r\nPING\r\n"));
        assert!(incomplete(b"PING\0\r\n"));
        // ...until the buffer passes the line limit.
        let mut big = b"PING\0\r\n".to_vec();
        big.resize(MAX_LINE + 1, b'x');
        assert_eq!(err(&big, &AUTH), "Protocol error: too big inline request");
        let mut big = b"*1\0\r\n".to_vec();
        big.resize(MAX_LINE + 1, b'x');
        assert_eq!(err(&big, &AUTH), "Protocol error: too big mbulk count string");
    }

    #[test]
    fn invalid_multibulk_length() {
        for input in [&b"*\r\n"[..], b"*x\r\n", b"*01\r\n", b"*+1\r\n", b"*-0\r\n", b"*1 \r\n", b"*2147483648\r\n"] {
            assert_eq!(err(input, &AUTH), "Protocol error: invalid multibulk length", "{input:?}");
        }
        // i32::MAX is accepted: nothing is reserved for it.
        let mut p = RequestParser::new();
        assert_eq!(p.parse(b"*2147483647\r\n$1\r\na\r\n", &AUTH), Ok(Parsed::Incomplete));
        assert!(p.spans.capacity() <= MAX_RESERVED_SPANS);
    }

    #[test]
    fn too_big_mbulk_count_string() {
        let mut input = b"*".to_vec();
        input.resize(MAX_LINE + 1, b'1');
        assert_eq!(err(&input, &AUTH), "Protocol error: too big mbulk count string");
        input.truncate(MAX_LINE);
        assert!(incomplete(&input));
    }

    #[test]
    fn unauthenticated_multibulk_length() {
        assert_eq!(err(b"*11\r\n", &NOAUTH), "Protocol error: unauthenticated multibulk length");
        assert!(RequestParser::new().parse(b"*10\r\n", &NOAUTH).is_ok());
        assert!(RequestParser::new().parse(b"*11\r\n", &AUTH).is_ok());
    }

    #[test]
    fn expected_dollar() {
        assert_eq!(err(b"*1\r\nX4\r\n", &AUTH), "Protocol error: expected '$', got 'X'");
        assert_eq!(err(b"*1\r\n\r\n", &AUTH), "Protocol error: expected '$', got ' '");
        assert_eq!(err(b"*1\r\n\n\r\n", &AUTH), "Protocol error: expected '$', got ' '");
        assert_eq!(err(b"*2\r\n$1\r\na\r\n:1\r\n", &AUTH), "Protocol error: expected '$', got ':'");
        let e = RequestParser::new().parse(b"*1\r\n\xff\r\n", &AUTH).unwrap_err();
        assert_eq!(e.reply(), b"-ERR Protocol error: expected '$', got '\xff'\r\n");
    }

    #[test]
    fn invalid_bulk_length() {
        for input in [
            &b"*1\r\n$\r\n"[..],
            b"*1\r\n$-1\r\n",
            b"*1\r\n$-0\r\n",
            b"*1\r\n$00\r\n",
            b"*1\r\n$1x\r\n",
            b"*1\r\n$999999999999\r\n",
            b"*1\r\n$99999999999999999999\r\n",
        ] {
            assert_eq!(err(input, &AUTH), "Protocol error: invalid bulk length", "{input:?}");
        }
        let small = Limits { max_bulk_len: 5, authenticated: true };
        assert_eq!(err(b"*1\r\n$6\r\n", &small), "Protocol error: invalid bulk length");
        assert!(RequestParser::new().parse(b"*1\r\n$5\r\n", &small).is_ok());
    }

    #[test]
    fn too_big_bulk_count_string() {
        let mut input = b"*1\r\n$".to_vec();
        input.resize(4 + MAX_LINE + 1, b'1');
        assert_eq!(err(&input, &AUTH), "Protocol error: too big bulk count string");
        input.pop();
        assert!(incomplete(&input));
    }

    #[test]
    fn unauthenticated_bulk_length() {
        assert_eq!(err(b"*1\r\n$16385\r\n", &NOAUTH), "Protocol error: unauthenticated bulk length");
        assert_eq!(RequestParser::new().parse(b"*1\r\n$16384\r\n", &NOAUTH), Ok(Parsed::Incomplete));
    }

    #[test]
    fn declared_sizes_are_not_reserved() {
        let mut p = RequestParser::new();
        assert_eq!(p.parse(b"*1\r\n$536870912\r\n", &AUTH), Ok(Parsed::Incomplete));
        assert_eq!(p.bulk_end(), Some(16 + 536870912 + 2));
        assert!(p.spans.capacity() < 1024 && p.scratch.capacity() == 0);
    }

    #[test]
    fn inline_commands() {
        assert_eq!(one(b"SET k v\r\n"), [&b"SET"[..], b"k", b"v"]);
        assert_eq!(one(b"SET k v\n"), [&b"SET"[..], b"k", b"v"]);
        assert_eq!(one(b"ECHO \"a b\\x00\"\n"), [&b"ECHO"[..], b"a b\0"]);
        // Only one '\r' is stripped; a lone '\r' elsewhere is a blank.
        assert_eq!(one(b"ECHO a\rb\r\r\n"), [&b"ECHO"[..], b"a", b"b"]);
        assert_eq!(one(b"ECHO \"a\r\"\r\n"), [&b"ECHO"[..], b"a\r"]);
    }

    #[test]
    fn inline_unbalanced_quotes() {
        assert_eq!(err(b"ECHO \"a\r\n", &AUTH), "Protocol error: unbalanced quotes in request");
        assert_eq!(err(b"SET a \"b\"c\r\n", &AUTH), "Protocol error: unbalanced quotes in request");
    }

    #[test]
    fn too_big_inline_request() {
        let mut input = vec![b'a'; MAX_LINE + 1];
        assert_eq!(err(&input, &AUTH), "Protocol error: too big inline request");
        input.pop();
        assert!(incomplete(&input));
        input.push(b'\n');
        assert_eq!(RequestParser::new().parse(&input, &AUTH), Ok(Parsed::Command { consumed: MAX_LINE + 1 }));
    }

    #[test]
    fn inline_args_with_quotes_live_in_scratch() {
        let mut p = RequestParser::new();
        let buf = b"SET \"k 1\" v\n";
        assert_eq!(p.parse(buf, &AUTH), Ok(Parsed::Command { consumed: buf.len() }));
        assert!(p.spans[1].in_scratch && !p.spans[0].in_scratch && !p.spans[2].in_scratch);
        assert_eq!(args_of(&p, buf), [&b"SET"[..], b"k 1", b"v"]);
    }

    #[test]
    fn resumes_without_rescanning() {
        // Byte by byte, every intermediate call is Incomplete and the end is right.
        let input = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
        let mut p = RequestParser::new();
        for n in 0..input.len() {
            assert_eq!(p.parse(&input[..n], &AUTH), Ok(Parsed::Incomplete), "at {n}");
        }
        assert_eq!(p.parse(input, &AUTH), Ok(Parsed::Command { consumed: input.len() }));
        assert_eq!(args_of(&p, input), [&b"GET"[..], b"hello"]);
        // The state is kept: a buffer with the same prefix completes the frame even
        // when the parser does not look at the prefix again.
        let mut p = RequestParser::new();
        assert_eq!(p.parse(&input[..13], &AUTH), Ok(Parsed::Incomplete));
        let mut changed = input.to_vec();
        changed[8..11].copy_from_slice(b"XYZ");
        assert_eq!(p.parse(&changed, &AUTH), Ok(Parsed::Command { consumed: input.len() }));
        assert_eq!(args_of(&p, &changed), [&b"XYZ"[..], b"hello"]);
    }

    #[test]
    fn reset_forgets_a_partial_frame() {
        let mut p = RequestParser::new();
        assert_eq!(p.parse(b"*2\r\n$3\r\nGET\r\n", &AUTH), Ok(Parsed::Incomplete));
        assert!(p.in_frame());
        p.reset();
        assert!(!p.in_frame());
        assert_eq!(p.parse(b"PING\r\n", &AUTH), Ok(Parsed::Command { consumed: 6 }));
        assert_eq!(args_of(&p, b"PING\r\n"), [b"PING"]);
    }

    #[test]
    fn a_shorter_buffer_than_promised_does_not_panic() {
        let mut p = RequestParser::new();
        assert_eq!(p.parse(b"*2\r\n$3\r\nGET\r\n$5\r\nhel", &AUTH), Ok(Parsed::Incomplete));
        assert_eq!(p.parse(b"*2", &AUTH), Ok(Parsed::Incomplete));
        assert_eq!(p.parse(b"", &AUTH), Ok(Parsed::Incomplete));
    }

    #[test]
    fn parse_ll_is_string2ll() {
        for (s, v) in [
            (&b"0"[..], Some(0)),
            (b"1", Some(1)),
            (b"-1", Some(-1)),
            (b"9223372036854775807", Some(i64::MAX)),
            (b"-9223372036854775808", Some(i64::MIN)),
            (b"9223372036854775808", None),
            (b"-9223372036854775809", None),
            (b"18446744073709551616", None),
            (b"", None),
            (b"-", None),
            (b"-0", None),
            (b"01", None),
            (b"+1", None),
            (b" 1", None),
            (b"1 ", None),
            (b"1a", None),
            (b"000000000000000000001", None),
        ] {
            assert_eq!(parse_ll(s), v, "{:?}", String::from_utf8_lossy(s));
        }
    }
}
