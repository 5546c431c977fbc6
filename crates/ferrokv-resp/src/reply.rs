//! Reply encoding. Commands write replies through [`ReplyBuf`], which knows the
//! connection's protocol version and picks the RESP2 or RESP3 shape: a map is a flat
//! array in RESP2, a double a bulk string, a null `$-1`/`*-1` or `_`.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Proto {
    #[default]
    Resp2,
    Resp3,
}

/// An output buffer of encoded replies.
#[derive(Default, Debug)]
pub struct ReplyBuf {
    pub buf: Vec<u8>,
    pub proto: Proto,
    /// Error replies written through this buffer, and where the last one starts: the
    /// execution function learns from them that a command failed, and how.
    pub errors: u32,
    pub last_error_at: usize,
}

impl ReplyBuf {
    pub fn new(proto: Proto) -> Self {
        ReplyBuf { buf: Vec::new(), proto, errors: 0, last_error_at: 0 }
    }

    pub fn with_buf(buf: Vec<u8>, proto: Proto) -> Self {
        ReplyBuf { buf, proto, errors: 0, last_error_at: 0 }
    }

    #[inline]
    pub fn resp3(&self) -> bool {
        self.proto == Proto::Resp3
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Appends bytes that are already encoded replies.
    #[inline]
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// `+s`. `s` must not contain CR or LF.
    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `-msg`: `msg` starts with the error word, e.g. `ERR syntax error`,
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`.
    /// CR and LF inside `msg` become spaces, as Redis does.
    pub fn error(&mut self, msg: &str) {
        self.errors += 1;
        self.last_error_at = self.buf.len();
        self.buf.push(b'-');
        for &c in msg.as_bytes() {
            self.buf.push(if c == b'\r' || c == b'\n' { b' ' } else { c });
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn integer(&mut self, n: i64) {
        self.prefixed_len(b':', n);
    }

    #[inline]
    pub fn bulk(&mut self, b: &[u8]) {
        self.prefixed_len(b'$', b.len() as i64);
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A bulk string holding the decimal form of `n`.
    pub fn bulk_integer(&mut self, n: i64) {
        let mut tmp = itoa_buf();
        let s = fmt_i64(&mut tmp, n);
        self.bulk(s);
    }

    /// The null bulk string: `$-1` (RESP2) or `_` (RESP3).
    pub fn null(&mut self) {
        self.buf.extend_from_slice(if self.resp3() { b"_\r\n" } else { b"$-1\r\n" });
    }

    /// The null array: `*-1` (RESP2) or `_` (RESP3).
    pub fn null_array(&mut self) {
        self.buf.extend_from_slice(if self.resp3() { b"_\r\n" } else { b"*-1\r\n" });
    }

    #[inline]
    pub fn array(&mut self, n: usize) {
        self.prefixed_len(b'*', n as i64);
    }

    /// A map of `n` pairs: `%n` in RESP3, an array of `2n` in RESP2.
    pub fn map(&mut self, n: usize) {
        if self.resp3() {
            self.prefixed_len(b'%', n as i64);
        } else {
            self.prefixed_len(b'*', 2 * n as i64);
        }
    }

    /// A set of `n`: `~n` in RESP3, an array in RESP2.
    pub fn set(&mut self, n: usize) {
        self.prefixed_len(if self.resp3() { b'~' } else { b'*' }, n as i64);
    }

    /// A push frame header: `>n` in RESP3, an array in RESP2.
    pub fn push(&mut self, n: usize) {
        self.prefixed_len(if self.resp3() { b'>' } else { b'*' }, n as i64);
    }

    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    pub fn boolean(&mut self, b: bool) {
        if self.resp3() {
            self.buf.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.integer(b as i64);
        }
    }

    /// A double: `,x` in RESP3, a bulk string in RESP2, both formatted as Redis's
    /// `%.17g` (see [`format_double`]).
    pub fn double(&mut self, d: f64) {
        let s = format_double(d);
        if self.resp3() {
            self.buf.push(b',');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s.as_bytes());
        }
    }

    /// Verbatim text (`=len\r\ntxt:...`) in RESP3, a bulk string in RESP2.
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3() {
            self.prefixed_len(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    #[inline]
    fn prefixed_len(&mut self, prefix: u8, n: i64) {
        self.buf.push(prefix);
        let mut tmp = itoa_buf();
        let s = fmt_i64(&mut tmp, n);
        self.buf.extend_from_slice(s);
        self.buf.extend_from_slice(b"\r\n");
    }
}

fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

/// Formats `n` into `tmp` and returns the digits.
#[inline]
fn fmt_i64(tmp: &mut [u8; 20], n: i64) -> &[u8] {
    let mut v = n.unsigned_abs();
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        tmp[i] = b'-';
    }
    &tmp[i..]
}

/// A double as Redis prints one in replies: `%.17g`, with `inf`, `-inf` and `nan`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    format_g(d, 17)
}

/// C's `%.{prec}g` for a finite double.
pub fn format_g(d: f64, prec: usize) -> String {
    let prec = prec.max(1);
    if d == 0.0 {
        return if d.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // `{:.*e}` rounds correctly to prec significant digits; its exponent decides the style.
    let e = format!("{:.*e}", prec - 1, d);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mant = trim_fraction_zeros(mant);
        let mut s = String::with_capacity(mant.len() + 5);
        s.push_str(mant);
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(s, "{:02}", exp.unsigned_abs());
        s
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        let f = format!("{:.*}", decimals, d);
        trim_fraction_zeros(&f).to_string()
    }
}

fn trim_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_redis() {
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.0e-5), "1.0000000000000001e-05");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(format_double(0.0001), "0.0001");
    }

    #[test]
    fn shapes_follow_protocol() {
        let mut r = ReplyBuf::new(Proto::Resp2);
        r.map(2);
        r.null();
        r.double(1.5);
        assert_eq!(r.buf, b"*4\r\n$-1\r\n$3\r\n1.5\r\n");
        let mut r = ReplyBuf::new(Proto::Resp3);
        r.map(2);
        r.null();
        r.double(1.5);
        r.integer(-12);
        assert_eq!(r.buf, b"%2\r\n_\r\n,1.5\r\n:-12\r\n");
    }
}
