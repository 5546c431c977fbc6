//! Parsing sorted set arguments exactly as Redis does: scores through C's `strtod`
//! (decimal, hexadecimal, `inf`/`infinity`, `nan` refused) under the rules of
//! `getDoubleFromObject` (the whole argument, no leading space, no overflow to
//! infinity or underflow to zero) or of `zslParseRange` (a C string, `(` for an
//! exclusive bound, leading spaces and overflow allowed), lex bounds as
//! `zslParseLexRangeItem`, and blocking timeouts as `getTimeoutFromObjectOrReply`.

use ferrokv_store::zset::{LexBound, LexRange, ScoreRange};

/// What `strtod` made of the start of a string.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Strtod {
    pub value: f64,
    /// Bytes consumed (0: no number).
    pub len: usize,
    /// `errno == ERANGE`: a finite number rounded to infinity, or a nonzero one to zero.
    pub range_error: bool,
}

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// C's `strtod` in the C locale over `s` (which ends at its first NUL, as a C string).
pub(super) fn strtod(s: &[u8]) -> Strtod {
    let none = Strtod { value: 0.0, len: 0, range_error: false };
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = 0;
    while is_c_space(at(i)) {
        i += 1;
    }
    let neg = at(i) == b'-';
    if matches!(at(i), b'+' | b'-') {
        i += 1;
    }
    let sign = |v: f64| if neg { -v } else { v };
    let word = |i: usize, w: &[u8]| s.len() >= i + w.len() && s[i..i + w.len()].eq_ignore_ascii_case(w);
    if word(i, b"infinity") {
        return Strtod { value: sign(f64::INFINITY), len: i + 8, range_error: false };
    }
    if word(i, b"inf") {
        return Strtod { value: sign(f64::INFINITY), len: i + 3, range_error: false };
    }
    if word(i, b"nan") {
        let mut len = i + 3;
        if at(len) == b'(' {
            let mut j = len + 1;
            while at(j).is_ascii_alphanumeric() || at(j) == b'_' {
                j += 1;
            }
            if at(j) == b')' {
                len = j + 1;
            }
        }
        return Strtod { value: f64::NAN, len, range_error: false };
    }
    if at(i) == b'0' && (at(i + 1) | 0x20) == b'x' {
        if let Some(r) = hex(s, i + 2, neg) {
            return r;
        }
        // "0x" without hex digits: just the "0".
        return Strtod { value: sign(0.0), len: i + 1, range_error: false };
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one mantissa digit.
    let start = i;
    let (mut digits, mut nonzero) = (0, false);
    while at(i).is_ascii_digit() {
        nonzero |= at(i) != b'0';
        digits += 1;
        i += 1;
    }
    if at(i) == b'.' {
        i += 1;
        while at(i).is_ascii_digit() {
            nonzero |= at(i) != b'0';
            digits += 1;
            i += 1;
        }
    }
    if digits == 0 {
        return none;
    }
    if (at(i) | 0x20) == b'e' {
        let mut j = i + 1;
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        if at(j).is_ascii_digit() {
            while at(j).is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    // Rust's parser rounds correctly, like glibc's; it wants no leading '.' quirks
    // beyond what it accepts ("1.", ".5" and exponents are fine).
    let text = std::str::from_utf8(&s[start..i]).unwrap_or("0");
    let v: f64 = text.parse().unwrap_or(0.0);
    let range_error = v.is_infinite() || (v == 0.0 && nonzero);
    Strtod { value: sign(v), len: i, range_error }
}

/// The hexadecimal form after `0x` at `i`: `hexdigits[.hexdigits][p[sign]digits]`.
fn hex(s: &[u8], mut i: usize, neg: bool) -> Option<Strtod> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let (mut mant, mut sticky, mut exp, mut digits) = (0u64, false, 0i64, 0);
    let mut seen_dot = false;
    loop {
        let c = at(i);
        if c == b'.' && !seen_dot {
            seen_dot = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            digits += 1;
            if mant >> 60 == 0 {
                mant = mant << 4 | d as u64;
                if seen_dot {
                    exp -= 4;
                }
            } else {
                sticky |= d != 0;
                if !seen_dot {
                    exp += 4;
                }
            }
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if (at(i) | 0x20) == b'p' {
        let mut j = i + 1;
        let eneg = at(j) == b'-';
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        if at(j).is_ascii_digit() {
            let mut e: i64 = 0;
            while at(j).is_ascii_digit() {
                e = (e * 10 + (at(j) - b'0') as i64).min(1 << 40);
                j += 1;
            }
            exp += if eneg { -e } else { e };
            i = j;
        }
    }
    let nonzero = mant != 0 || sticky;
    let v = compose(mant, sticky, exp);
    let range_error = v.is_infinite() || (v == 0.0 && nonzero);
    Some(Strtod { value: if neg { -v } else { v }, len: i, range_error })
}

/// `mant × 2^exp` (plus a little more when `sticky`) rounded to the nearest double,
/// ties to even, subnormals included.
fn compose(mant: u64, sticky: bool, exp: i64) -> f64 {
    if mant == 0 {
        return 0.0;
    }
    let lz = mant.leading_zeros();
    let mant = mant << lz;
    let e = exp - lz as i64 + 63; // the value is in [2^e, 2^(e+1))
    if e > 1023 {
        return f64::INFINITY;
    }
    let keep = if e >= -1022 { 53 } else { e + 1075 };
    if keep <= 0 {
        // Below half the smallest subnormal rounds to 0; above it, up to it.
        let above_half = keep == 0 && (mant > 1 << 63 || sticky);
        return if above_half { f64::from_bits(1) } else { 0.0 };
    }
    let shift = (64 - keep) as u32;
    let mut q = mant >> shift;
    let rem = mant & ((1u64 << shift) - 1);
    let half = 1u64 << (shift - 1);
    if rem > half || (rem == half && (sticky || q & 1 == 1)) {
        q += 1;
    }
    if keep < 53 {
        return f64::from_bits(q); // subnormal (or, after carrying, the smallest normal)
    }
    let mut e = e;
    if q == 1 << 53 {
        q >>= 1;
        e += 1;
        if e > 1023 {
            return f64::INFINITY;
        }
    }
    f64::from_bits(((e + 1023) as u64) << 52 | (q & ((1 << 52) - 1)))
}

/// A score or weight, as `getDoubleFromObject` (`string2d`) accepts it.
pub(super) fn parse_score(a: &[u8]) -> Option<f64> {
    if a.is_empty() || is_c_space(a[0]) {
        return None;
    }
    let r = strtod(a);
    if r.len != a.len() || r.value.is_nan() || (r.range_error && (r.value == 0.0 || r.value.is_infinite())) {
        return None;
    }
    Some(r.value)
}

/// The argument as C code sees it: up to its first NUL.
fn c_str(a: &[u8]) -> &[u8] {
    a.iter().position(|&c| c == 0).map_or(a, |i| &a[..i])
}

/// One bound of `zslParseRange`: (value, exclusive).
fn score_bound(a: &[u8]) -> Option<(f64, bool)> {
    let c = c_str(a);
    let (body, ex) = match c.first() {
        Some(b'(') => (&c[1..], true),
        _ => (c, false),
    };
    let r = strtod(body);
    (r.len == body.len() && !r.value.is_nan()).then_some((r.value, ex))
}

/// `zslParseRange`: None means "ERR min or max is not a float".
pub(super) fn score_range(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
    let (min, minex) = score_bound(min)?;
    let (max, maxex) = score_bound(max)?;
    Some(ScoreRange { min, max, minex, maxex })
}

pub(super) const ERR_SCORE_RANGE: &str = "ERR min or max is not a float";
pub(super) const ERR_LEX_RANGE: &str = "ERR min or max not valid string range item";

/// `zslParseLexRangeItem`.
fn lex_bound(a: &[u8]) -> Option<(LexBound, bool)> {
    match a.first().copied().unwrap_or(0) {
        b'+' if a.get(1).copied().unwrap_or(0) == 0 => Some((LexBound::Max, true)),
        b'-' if a.get(1).copied().unwrap_or(0) == 0 => Some((LexBound::Min, true)),
        b'(' => Some((LexBound::Value(a[1..].to_vec()), true)),
        b'[' => Some((LexBound::Value(a[1..].to_vec()), false)),
        _ => None,
    }
}

/// `zslParseLexRange`: None means "ERR min or max not valid string range item".
pub(super) fn lex_range(min: &[u8], max: &[u8]) -> Option<LexRange> {
    let (min, minex) = lex_bound(min)?;
    let (max, maxex) = lex_bound(max)?;
    Some(LexRange { min, minex, max, maxex })
}

/// `getTimeoutFromObjectOrReply`: one parser for every blocking command.
pub(super) use crate::families::lists::blocking::timeout_ms as parse_timeout;

pub(super) use crate::util::parse_scan_cursor as parse_cursor;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_as_string2d() {
        let ok = |s: &str, v: f64| assert_eq!(parse_score(s.as_bytes()).map(f64::to_bits), Some(v.to_bits()), "{s}");
        ok("1", 1.0);
        ok("-2.5", -2.5);
        ok("1.e1", 10.0);
        ok(".5", 0.5);
        ok("+3", 3.0);
        ok("inf", f64::INFINITY);
        ok("-Infinity", f64::NEG_INFINITY);
        ok("0x10", 16.0);
        ok("0x1.8p1", 3.0);
        ok("0x1p-1074", 5e-324);
        ok("0x1.8p-1074", 1e-323);
        ok("5e-324", 5e-324);
        ok("1.7976931348623157e308", f64::MAX);
        ok("-0", -0.0);
        ok("0.1", 0.1);
        ok("123456789012345678901234567890", 1.2345678901234568e29);
        for bad in [
            "",
            " 1",
            "1 ",
            "1e400",
            "1e-400",
            "0x1p-1075",
            "nan",
            "-nan",
            "1e",
            "0x",
            ".e1",
            "abc",
            "1\0",
            "inf1",
            "--1",
        ] {
            assert_eq!(parse_score(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn strtod_prefixes() {
        let len = |s: &str| strtod(s.as_bytes()).len;
        assert_eq!(len("1e5x"), 3);
        assert_eq!(len("1e+x"), 1);
        assert_eq!(len("  -1.5"), 6);
        assert_eq!(len("0xg"), 1);
        assert_eq!(len("infinit"), 3);
        assert_eq!(len("nan(abc_1)x"), 10);
        assert_eq!(len("nan(abc"), 3);
        assert_eq!(len("-"), 0);
        assert_eq!(len(""), 0);
        assert!(strtod(b"1e999").range_error);
        assert!(!strtod(b"0e999").range_error);
    }

    #[test]
    fn hex_rounding() {
        // 2^53 + 1 rounds to even (2^53); 2^53 + 3 rounds up.
        assert_eq!(parse_score(b"0x20000000000001"), Some(9007199254740992.0));
        assert_eq!(parse_score(b"0x20000000000003"), Some(9007199254740996.0));
        // Digits beyond 64 bits still decide a tie.
        assert_eq!(parse_score(b"0x200000000000010000000001"), Some(9007199254740994.0 * 16f64.powi(10)));
        assert_eq!(parse_score(b"0x1p1024"), None);
        assert_eq!(parse_score(b"0x1.fffffffffffffp1023"), Some(f64::MAX));
        assert_eq!(parse_score(b"0x.8p1"), Some(1.0));
    }

    #[test]
    fn score_ranges_as_zslparserange() {
        let r = score_range(b"(1", b"5").unwrap();
        assert_eq!((r.min, r.minex, r.max, r.maxex), (1.0, true, 5.0, false));
        let r = score_range(b"(", b"").unwrap();
        assert_eq!((r.min, r.minex, r.max, r.maxex), (0.0, true, 0.0, false));
        let r = score_range(b" 1", b"1e400").unwrap();
        assert_eq!((r.min, r.max), (1.0, f64::INFINITY));
        assert_eq!(score_range(b"1\0x", b"2").map(|r| r.min), Some(1.0));
        assert_eq!(score_range(b"(nan", b"1"), None);
        assert_eq!(score_range(b"0x", b"1"), None);
        assert_eq!(score_range(b"1", b"((2"), None);
    }

    #[test]
    fn lex_ranges_as_zslparselexrange() {
        assert!(lex_range(b"-", b"+").is_some());
        assert!(lex_range(b"+\0x", b"-").is_some());
        assert!(lex_range(b"-a", b"+").is_none());
        assert!(lex_range(b"", b"+").is_none());
        assert!(lex_range(b"a", b"+").is_none());
        let r = lex_range(b"(a\0b", b"[").unwrap();
        assert_eq!(r.min, LexBound::Value(b"a\0b".to_vec()));
        assert_eq!((r.max, r.maxex), (LexBound::Value(Vec::new()), false));
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"0"), Ok(0));
        assert_eq!(parse_timeout(b"1.5"), Ok(1500));
        assert_eq!(parse_timeout(b"0.0001"), Ok(1));
        assert_eq!(parse_timeout(b"-0.0001"), Ok(0));
        assert_eq!(parse_timeout(b"-1"), Err("ERR timeout is negative"));
        assert_eq!(parse_timeout(b"1e20"), Err("ERR timeout is negative"));
        assert_eq!(parse_timeout(b"inf"), Err("ERR timeout is negative"));
        assert_eq!(parse_timeout(b"1e-400"), Ok(1));
        assert_eq!(parse_timeout(b"abc"), Err("ERR timeout is not a float or out of range"));
        assert_eq!(parse_timeout(b""), Err("ERR timeout is not a float or out of range"));
    }

    #[test]
    fn cursors_as_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b" 1"), None);
        assert_eq!(parse_cursor(b"1x"), None);
        // strtoul stops at the NUL and Redis accepts the cursor (checked on 7.0.15).
        assert_eq!(parse_cursor(b"1\0"), Some(1));
    }
}
