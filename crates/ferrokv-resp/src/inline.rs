//! Splitting an inline command line into arguments, as Redis's `sdssplitargs` does.
//!
//! Arguments are separated by blanks. A token may contain double-quoted parts, in
//! which `\n \r \t \b \a \\ \"` and `\xHH` are escapes (any other `\c` is `c`), and
//! single-quoted parts, in which only `\'` is an escape. A closing quote must be
//! followed by a blank or the end of the line; anything else, or a quote that is never
//! closed, makes the whole line invalid ("unbalanced quotes").
//!
//! Two quirks of the C code are kept on purpose because clients can observe them:
//! - Blanks *between* tokens are C's `isspace` (space, `\t`, `\n`, `\v`, `\f`, `\r`), but
//!   only space, `\t`, `\n` and `\r` *end* an unquoted token, so `a\vb` is one argument.
//! - The line is a C string: a NUL byte ends it. (The request parser never hands this
//!   module a line holding a NUL, because Redis's line search stops at NUL too.)

use crate::args::Span;

/// The line holds a quote that is not closed, or a closing quote followed by
/// something other than a blank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnbalancedQuotes;

/// C's `isspace` in the "C" locale.
#[inline]
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[inline]
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits `line` into arguments, appending one span per argument to `spans`.
///
/// An argument that is a plain run of bytes of `line` gets a span into `line` (offset
/// relative to `line`'s start); one that had quotes is rewritten into `scratch` and gets
/// a span with `in_scratch` set. On error, `spans` and `scratch` may hold a partial result.
pub fn split_into(line: &[u8], spans: &mut Vec<Span>, scratch: &mut Vec<u8>) -> Result<(), UnbalancedQuotes> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    // The byte at `i`, or 0 past the end, like reading a C string.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut p = 0;
    loop {
        while p < line.len() && is_blank(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(());
        }
        let start = p;
        // Set once the token must be rewritten: where it starts in `scratch`.
        let mut rewritten: Option<usize> = None;
        let mut in_double = false;
        let mut in_single = false;
        let end = loop {
            let c = at(p);
            if in_double {
                if c == b'\\' && at(p + 1) == b'x' {
                    if let (Some(hi), Some(lo)) = (hex_value(at(p + 2)), hex_value(at(p + 3))) {
                        scratch.push(hi * 16 + lo);
                        p += 4;
                        continue;
                    }
                }
                if c == b'\\' && at(p + 1) != 0 {
                    scratch.push(match at(p + 1) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    p += 2;
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_blank(at(p + 1)) {
                        return Err(UnbalancedQuotes);
                    }
                    p += 1;
                    break p;
                } else if c == 0 {
                    return Err(UnbalancedQuotes);
                } else {
                    scratch.push(c);
                    p += 1;
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    scratch.push(b'\'');
                    p += 2;
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_blank(at(p + 1)) {
                        return Err(UnbalancedQuotes);
                    }
                    p += 1;
                    break p;
                } else if c == 0 {
                    return Err(UnbalancedQuotes);
                } else {
                    scratch.push(c);
                    p += 1;
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        let end = p;
                        if c != 0 {
                            p += 1;
                        }
                        break end;
                    }
                    b'"' | b'\'' => {
                        if rewritten.is_none() {
                            rewritten = Some(scratch.len());
                            scratch.extend_from_slice(&line[start..p]);
                        }
                        in_double = c == b'"';
                        in_single = c == b'\'';
                        p += 1;
                    }
                    _ => {
                        if rewritten.is_some() {
                            scratch.push(c);
                        }
                        p += 1;
                    }
                }
            }
        };
        spans.push(match rewritten {
            Some(s) => Span { start: s as u32, len: (scratch.len() - s) as u32, in_scratch: true },
            None => Span { start: start as u32, len: (end - start) as u32, in_scratch: false },
        });
    }
}

/// Splits `line` into owned arguments: what `redis-cli` does with a typed command line.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
    let mut spans = Vec::new();
    let mut scratch = Vec::new();
    split_into(line, &mut spans, &mut scratch)?;
    Ok(crate::args::Args::new(line, &scratch, &spans).iter().map(|a| a.to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
        split_args(s)
    }

    fn ok(s: &[u8]) -> Vec<String> {
        split(s).expect("balanced").into_iter().map(|a| String::from_utf8_lossy(&a).into_owned()).collect()
    }

    #[test]
    fn plain_words_split_on_blanks() {
        assert_eq!(ok(b"SET  key\tvalue"), ["SET", "key", "value"]);
        assert_eq!(ok(b"  \x0b\x0cPING \r "), ["PING"]);
        assert!(ok(b"").is_empty());
        assert!(ok(b" \t ").is_empty());
    }

    #[test]
    fn vertical_tab_inside_a_token_is_kept() {
        assert_eq!(split(b"ECHO a\x0bb").unwrap(), vec![b"ECHO".to_vec(), b"a\x0bb".to_vec()]);
    }

    #[test]
    fn double_quotes_take_escapes() {
        assert_eq!(split(br#"ECHO "a\x41\n\r\t\b\a\\\"\q""#).unwrap()[1], b"aA\n\r\t\x08\x07\\\"q".to_vec());
        // \x needs two hex digits, otherwise it is a plain 'x'.
        assert_eq!(split(br#""\x4" "\xzz""#).unwrap(), vec![b"x4".to_vec(), b"xzz".to_vec()]);
        assert_eq!(split(br#""\xfF""#).unwrap(), vec![vec![0xff]]);
    }

    #[test]
    fn single_quotes_only_escape_the_quote() {
        assert_eq!(split(br"'a\'b\n'").unwrap(), vec![br"a'b\n".to_vec()]);
    }

    #[test]
    fn quotes_may_start_inside_a_token() {
        assert_eq!(ok(br#"ECHO a"b c""#), ["ECHO", "ab c"]);
        assert_eq!(ok(br#"x'y z' w"#), ["xy z", "w"]);
    }

    #[test]
    fn empty_quotes_are_an_empty_argument() {
        assert_eq!(ok(br#"ECHO "" ''"#), ["ECHO", "", ""]);
    }

    #[test]
    fn unbalanced_quotes_are_errors() {
        assert_eq!(split(br#"ECHO "a"#), Err(UnbalancedQuotes));
        assert_eq!(split(br#"ECHO 'a"#), Err(UnbalancedQuotes));
        assert_eq!(split(br#"SET a "b"c"#), Err(UnbalancedQuotes));
        assert_eq!(split(br#"SET a 'b'c"#), Err(UnbalancedQuotes));
        assert_eq!(split(br#"ECHO "a\"#), Err(UnbalancedQuotes));
        // A closing quote followed by a blank or the end is fine.
        assert_eq!(ok(b"\"a\"\x0b\"b\""), ["a", "b"]);
    }

    #[test]
    fn nul_ends_the_line() {
        assert_eq!(ok(b"GET a\0b c"), ["GET", "a"]);
        assert_eq!(split(b"GET \"a\0\""), Err(UnbalancedQuotes));
    }

    #[test]
    fn plain_tokens_borrow_the_line() {
        let mut spans = Vec::new();
        let mut scratch = Vec::new();
        split_into(b"GET \"k\" v", &mut spans, &mut scratch).unwrap();
        assert_eq!(
            spans,
            [
                Span { start: 0, len: 3, in_scratch: false },
                Span { start: 0, len: 1, in_scratch: true },
                Span { start: 8, len: 1, in_scratch: false },
            ]
        );
        assert_eq!(scratch, b"k");
    }
}
