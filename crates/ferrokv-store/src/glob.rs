//! Redis's glob matcher (`stringmatchlen` in util.c), used by KEYS, SCAN MATCH,
//! PSUBSCRIBE and the ACL key patterns.
//!
//! A pattern is a sequence of tokens. `*` matches any run of bytes; every other token
//! matches exactly one byte:
//! - `?` any byte;
//! - `[...]` a class: bytes, `a-z` ranges (reversed ranges count too), `\x` for a
//!   literal `x`, a leading `^` negates. An unclosed class extends to the end of the
//!   pattern; `[a-]` is a range from `a` to `]`, as in Redis;
//! - `\x` the byte `x` (a trailing `\` is itself);
//! - any other byte itself.
//!
//! Redis matches by recursion on each `*`. Because every other token consumes exactly
//! one byte, remembering only the latest `*` and retrying it one byte further on a
//! mismatch finds the same answers (a later `*` can absorb whatever an earlier one
//! could), so this matcher is iterative and takes O(pattern × string) time at worst,
//! never exponential.
//!
//! Redis's quirks kept here, byte for byte:
//! - the empty string matches only the empty pattern (`*` does not match "");
//! - class ranges compare bytes as C's signed `char`, so bytes >= 0x80 sort below 0;
//! - with `nocase`, only ASCII letters fold, and `\x` inside a class stays exact;
//! - Redis gives up (no match) past 1000 nested `*`: a pattern whose 1001st group of
//!   stars is followed by more tokens never matches.

/// Past this many nested `*` groups Redis answers "no match".
const MAX_STAR_NESTING: usize = 1000;

/// Whether `s` matches `pattern`. `nocase` folds ASCII letters.
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    if s.is_empty() {
        return pattern.is_empty();
    }
    if too_many_stars(pattern) {
        return false;
    }
    let (m, n) = (pattern.len(), s.len());
    let (mut p, mut i) = (0, 0);
    // The pattern position right after the latest star group, and where in `s` the
    // rest of the pattern is being tried from.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if i == n {
            while p < m && pattern[p] == b'*' {
                p += 1;
            }
            if p == m {
                return true;
            }
        } else if p < m && pattern[p] == b'*' {
            while p < m && pattern[p] == b'*' {
                p += 1;
            }
            if p == m {
                return true;
            }
            star = Some((p, i));
            continue;
        } else if p < m {
            let (hit, next) = match_one(pattern, p, s[i], nocase);
            if hit {
                p = next;
                i += 1;
                continue;
            }
        }
        // Mismatch: let the latest star swallow one more byte.
        match star {
            Some((sp, si)) if si + 1 < n => {
                star = Some((sp, si + 1));
                p = sp;
                i = si + 1;
            }
            _ => return false,
        }
    }
}

/// The pattern byte at `i`, or 0 past the end (Redis reads the terminating NUL).
#[inline]
fn at(pattern: &[u8], i: usize) -> u8 {
    pattern.get(i).copied().unwrap_or(0)
}

/// A byte as C's `char` on x86: signed.
#[inline]
fn signed(b: u8) -> i32 {
    b as i8 as i32
}

/// `tolower` in the C locale on a signed char value.
#[inline]
fn lower(c: i32) -> i32 {
    if (b'A' as i32..=b'Z' as i32).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// Matches the single-byte token at `p` (not a `*`) against `c`; returns whether it
/// matched and where the next token starts.
fn match_one(pattern: &[u8], p: usize, c: u8, nocase: bool) -> (bool, usize) {
    let m = pattern.len();
    match pattern[p] {
        b'?' => (true, p + 1),
        b'[' => {
            let mut q = p + 1;
            let not = at(pattern, q) == b'^';
            if not {
                q += 1;
            }
            let mut hit = false;
            loop {
                let rem = m - q;
                if at(pattern, q) == b'\\' && rem >= 2 {
                    q += 1;
                    if pattern[q] == c {
                        hit = true;
                    }
                } else if at(pattern, q) == b']' {
                    break;
                } else if rem == 0 {
                    // Unclosed class: it ends with the pattern.
                    q -= 1;
                    break;
                } else if rem >= 3 && pattern[q + 1] == b'-' {
                    let (mut start, mut end) = (signed(pattern[q]), signed(pattern[q + 2]));
                    let mut ch = signed(c);
                    if start > end {
                        std::mem::swap(&mut start, &mut end);
                    }
                    if nocase {
                        start = lower(start);
                        end = lower(end);
                        ch = lower(ch);
                    }
                    q += 2;
                    if ch >= start && ch <= end {
                        hit = true;
                    }
                } else if eq(pattern[q], c, nocase) {
                    hit = true;
                }
                q += 1;
            }
            (hit != not, q + 1)
        }
        b'\\' if m - p >= 2 => (eq(pattern[p + 1], c, nocase), p + 2),
        b => (eq(b, c, nocase), p + 1),
    }
}

#[inline]
fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Where the token at `p` (not a `*`) ends; the same walk as [`match_one`].
fn token_end(pattern: &[u8], p: usize) -> usize {
    match_one(pattern, p, 0, false).1
}

/// Whether the pattern has more than [`MAX_STAR_NESTING`] star groups with tokens
/// after the last one Redis would still recurse into.
fn too_many_stars(pattern: &[u8]) -> bool {
    let stars = pattern.iter().filter(|&&b| b == b'*').count();
    if stars <= MAX_STAR_NESTING {
        return false;
    }
    let (m, mut p, mut groups) = (pattern.len(), 0, 0);
    while p < m {
        if pattern[p] == b'*' {
            while p < m && pattern[p] == b'*' {
                p += 1;
            }
            groups += 1;
            if groups > MAX_STAR_NESTING {
                return p < m;
            }
        } else {
            p = token_end(pattern, p);
        }
    }
    false
}

/// The one hash slot every key matching `pattern` must live in, when the pattern
/// pins it: a literal prefix (no glob bytes, no `{`), then `{tag}` with a non-empty
/// literal tag. Lets KEYS visit one slot instead of all of them.
pub fn pattern_slot(pattern: &[u8]) -> Option<u16> {
    let special = |b: &u8| matches!(b, b'*' | b'?' | b'[' | b'\\');
    let open = pattern.iter().position(|&b| b == b'{' || special(&b))?;
    if pattern[open] != b'{' {
        return None;
    }
    let rest = &pattern[open + 1..];
    let close = rest.iter().position(|&b| b == b'}' || special(&b))?;
    if rest[close] != b'}' || close == 0 {
        return None;
    }
    Some(crate::slot::key_slot(&pattern[..open + 1 + close + 1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }

    #[test]
    fn stars_and_questions() {
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("a*", "a"));
        assert!(m("a**", "a"));
        assert!(m("*a", "a"));
        assert!(!m("*a", "ab"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYYcd"));
        assert!(m("*b*", "abc"));
        assert!(!m("abc", "ab"));
        assert!(!m("ab", "abc"));
    }

    #[test]
    fn empty_string_matches_only_empty_pattern() {
        assert!(m("", ""));
        assert!(!m("*", ""));
        assert!(!m("**", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn classes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        // Reversed ranges count.
        assert!(m("[z-a]", "q"));
        // `\` inside a class escapes.
        assert!(m("[\\]]", "]"));
        assert!(m("[\\-]", "-"));
        // `[a-]` is a range from 'a' down to ']' and the class stays open to the end.
        assert!(m("[a-]", "^"));
        assert!(!m("[a-]", "b"));
        // Unclosed classes extend to the end of the pattern.
        assert!(m("[abc", "b"));
        assert!(!m("[abc", "d"));
        assert!(!m("[", "["));
        assert!(!m("[", "a"));
        assert!(m("[^", "x"));
        assert!(!m("a[", "a"));
        // `]` right after `[` closes an empty class, which matches nothing.
        assert!(!m("[]a]", "a"));
        assert!(!m("[]a]", "]a]"));
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("\\?x", "?x"));
        assert!(m("a\\", "a\\"));
        assert!(m("\\[a]", "[a]"));
        assert!(m("*\\*", "abc*"));
        assert!(!m("*\\*", "abc"));
    }

    #[test]
    fn nocase() {
        assert!(glob_match(b"HeLLo", b"hello", true));
        assert!(glob_match(b"h[A-Z]llo", b"hello", true));
        assert!(!glob_match(b"h[A-Z]llo", b"hello", false));
        assert!(glob_match(b"[E]", b"e", true));
        // Escaped bytes in a class compare exactly even with nocase.
        assert!(!glob_match(b"[\\E]", b"e", true));
    }

    #[test]
    fn high_bytes_compare_as_signed_chars() {
        // 'a'..0xff as signed chars is -1..97: matches 0xff and bytes up to 'a'.
        assert!(glob_match(b"[a-\xff]", b"\xff", false));
        assert!(glob_match(b"[a-\xff]", b"0", false));
        assert!(!glob_match(b"[a-\xff]", b"b", false));
        assert!(!glob_match(b"[a-\xff]", b"\x80", false));
        assert!(glob_match(b"[\x80-\x90]", b"\x85", false));
    }

    #[test]
    fn no_exponential_blowup() {
        let s = vec![b'a'; 10_000];
        assert!(!glob_match(b"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &s, false));
        let mut p = b"a".repeat(0);
        for _ in 0..100 {
            p.extend_from_slice(b"*a");
        }
        p.push(b'b');
        assert!(!glob_match(&p, &s, false));
    }

    #[test]
    fn nesting_limit_as_redis() {
        let mut p = Vec::new();
        for _ in 0..1000 {
            p.extend_from_slice(b"*a");
        }
        let s = vec![b'a'; 1000];
        assert!(glob_match(&p, &s, false));
        let mut p2 = p.clone();
        p2.extend_from_slice(b"*");
        // The 1001st group is trailing: Redis matches without recursing.
        assert!(glob_match(&p2, &s, false));
        p2.extend_from_slice(b"a");
        let s2 = vec![b'a'; 1001];
        assert!(!glob_match(&p2, &s2, false));
    }

    #[test]
    fn pinned_slots() {
        use crate::slot::key_slot;
        assert_eq!(pattern_slot(b"user:{42}:*"), Some(key_slot(b"{42}")));
        assert_eq!(pattern_slot(b"{42}*"), Some(key_slot(b"42")));
        assert_eq!(pattern_slot(b"u*{42}"), None);
        assert_eq!(pattern_slot(b"{}*"), None);
        assert_eq!(pattern_slot(b"{4*2}"), None);
        assert_eq!(pattern_slot(b"abc"), None);
        assert_eq!(pattern_slot(b"a\\{b}"), None);
    }

    /// Cases recorded from KEYS on redis-server 7.0.15 (random patterns over a small
    /// alphabet rich in `*?[]^-\\` and high bytes).
    #[test]
    fn agrees_with_redis_server() {
        fn hex(s: &str) -> Vec<u8> {
            if s == "-" {
                return Vec::new();
            }
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
        }
        let mut n = 0;
        for line in include_str!("glob_cases.txt").lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split(' ').collect();
            let (p, k, want) = (hex(f[0]), hex(f[1]), f[2] == "1");
            assert_eq!(glob_match(&p, &k, false), want, "pattern {:?} key {:?}", f[0], f[1]);
            n += 1;
        }
        assert!(n > 2000);
    }

    /// Redis's recursive algorithm, transcribed for comparison (without the nesting
    /// limit, which the generated patterns never reach).
    fn reference(p: &[u8], s: &[u8], nocase: bool) -> bool {
        fn go(p: &[u8], mut pi: usize, s: &[u8], mut si: usize, nocase: bool) -> bool {
            while pi < p.len() && si < s.len() {
                if p[pi] == b'*' {
                    while pi + 1 < p.len() && p[pi + 1] == b'*' {
                        pi += 1;
                    }
                    if pi + 1 == p.len() {
                        return true;
                    }
                    while si < s.len() {
                        if go(p, pi + 1, s, si, nocase) {
                            return true;
                        }
                        si += 1;
                    }
                    return false;
                }
                let (hit, next) = match_one(p, pi, s[si], nocase);
                if !hit {
                    return false;
                }
                pi = next;
                si += 1;
                if si == s.len() {
                    while pi < p.len() && p[pi] == b'*' {
                        pi += 1;
                    }
                    break;
                }
            }
            pi == p.len() && si == s.len()
        }
        go(p, 0, s, 0, nocase)
    }

    proptest! {
        #[test]
        fn same_answers_as_recursive(
            p in proptest::collection::vec(prop::sample::select(b"ab*?[]^-\\c".to_vec()), 0..10),
            s in proptest::collection::vec(prop::sample::select(b"abc-]^*".to_vec()), 0..10),
            nocase in any::<bool>(),
        ) {
            prop_assert_eq!(glob_match(&p, &s, nocase), reference(&p, &s, nocase));
        }
    }
}
