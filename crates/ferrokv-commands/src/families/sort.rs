//! SORT and SORT_RO (Redis's sort.c).
//!
//! `SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC | DESC] [ALPHA]
//! [STORE destination]` sorts the elements of a list, set or sorted set: as numbers
//! (each element, or the value its BY pattern names, read as a C `strtod` reads it), or
//! with ALPHA as strings. A BY pattern without `*` means "do not sort". GET patterns
//! replace each element in the output by the value they name (`#` is the element).
//!
//! # Matching Redis's order exactly
//! * Numeric sorting breaks ties by comparing the elements' bytes, so its order is
//!   total. ALPHA compares as C's `strcoll` in the C locale does (bytes up to the first
//!   NUL), or, with STORE, as `memcmp` does (all bytes); ALPHA BY puts elements whose
//!   BY key is missing first.
//! * Redis sorts with glibc's `qsort`, a stable merge sort: ties keep the load order,
//!   which the stable [`slice::sort_by`] reproduces. With BY and a LIMIT it uses its own
//!   partial quicksort (`pqsort`, Bentley and McIlroy's with ranges outside the limit
//!   left unsorted); [`partial_sort`] follows it step by step, because it decides the
//!   order of ties.
//! * A set without sorting (BY nosort) comes out in the set's iteration order, which
//!   for a `hashtable` set differs from Redis's; with STORE, Redis sorts it ALPHA.
//!
//! # Patterns and shards
//! BY and GET patterns name other keys, which Redis allows in non-cluster mode.
//! ferrokv runs a command on the shards of its declared keys only (the sorted key and
//! the STORE destination), so every key a pattern names must hash to the sorted key's
//! slot (use a hash tag: `SORT {u}ids BY {u}weight_*`); otherwise SORT replies
//! [`ERR_PATTERN_SLOT`]. Patterns without `*` and `#` name no key.

use crate::table::{CommandSpec, Handler, KeyPositions};
use crate::util::{ERR_NOT_INT, ERR_SYNTAX, ERR_WRONGTYPE};
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::list::ListValue;
use ferrokv_store::zset::{ZSetLimits, ZSetValue};
use ferrokv_store::{key_slot, Value};
use std::cmp::Ordering;

const fn cmd(
    name: &'static str,
    flags: &'static [&'static str],
    acl: &'static [&'static str],
    f: crate::table::DataFn,
    keys: fn(&Args) -> Vec<usize>,
) -> CommandSpec {
    CommandSpec::new(name, -2, flags, KeyPositions::new(1, 1, 1), acl, Handler::Data(f)).with_key_finder(keys)
}

/// As `COMMAND INFO` shows them on redis-server 7.0 (movablekeys comes from the key
/// finders).
pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        "sort",
        &["write", "denyoom"],
        &["@write", "@set", "@sortedset", "@list", "@slow", "@dangerous"],
        sort,
        sort_keys,
    ),
    cmd("sort_ro", &["readonly"], &["@read", "@set", "@sortedset", "@list", "@slow", "@dangerous"], sort_ro, |_| {
        vec![1]
    }),
];

pub const ERR_PATTERN_SLOT: &str = "ERR BY/GET patterns must hash to the same slot as the key in ferrokv";

/// The keys of a SORT: the sorted key and the last STORE destination, found as Redis's
/// `sortGetKeys` finds them (skipping the arguments of LIMIT, GET and BY).
fn sort_keys(args: &Args) -> Vec<usize> {
    let mut keys = vec![1];
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let a = args.get(i);
        if is_word(a, "limit") {
            i += 2;
        } else if is_word(a, "store") && i + 1 < args.len() {
            store = Some(i + 1);
        } else if is_word(a, "get") || is_word(a, "by") {
            i += 1;
        }
        i += 1;
    }
    keys.extend(store);
    keys
}

/// An argument as C code sees it: up to its first NUL.
fn c_str(a: &[u8]) -> &[u8] {
    a.iter().position(|&c| c == 0).map_or(a, |i| &a[..i])
}

/// An option name compared as `strcasecmp` compares it.
fn is_word(a: &[u8], word: &str) -> bool {
    c_str(a).eq_ignore_ascii_case(word.as_bytes())
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
/// [STORE destination]
pub fn sort(ctx: &mut Ctx, args: &Args) {
    sort_generic(ctx, args, false)
}

/// SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
pub fn sort_ro(ctx: &mut Ctx, args: &Args) {
    sort_generic(ctx, args, true)
}

/// The options of one SORT.
struct Options<'a> {
    desc: bool,
    alpha: bool,
    /// LIMIT offset and count, as given (count -1: no limit).
    limit: (i64, i64),
    by: Option<&'a [u8]>,
    /// BY names no key (no `*`): keep the collection's own order.
    dontsort: bool,
    gets: Vec<&'a [u8]>,
    store: Option<&'a [u8]>,
}

/// Parses the options after the key; None after an error reply.
fn parse<'a>(ctx: &mut Ctx, args: &Args<'a>, readonly: bool) -> Option<Options<'a>> {
    let mut o =
        Options { desc: false, alpha: false, limit: (0, -1), by: None, dontsort: false, gets: Vec::new(), store: None };
    let mut j = 2;
    while j < args.len() {
        let a = args.get(j);
        let left = args.len() - j - 1;
        if is_word(a, "asc") {
            o.desc = false;
        } else if is_word(a, "desc") {
            o.desc = true;
        } else if is_word(a, "alpha") {
            o.alpha = true;
        } else if is_word(a, "limit") && left >= 2 {
            let (Some(offset), Some(count)) = (parse_long(args.get(j + 1)), parse_long(args.get(j + 2))) else {
                ctx.out.error(ERR_NOT_INT);
                return None;
            };
            o.limit = (offset, count);
            j += 2;
        } else if !readonly && is_word(a, "store") && left >= 1 {
            o.store = Some(args.get(j + 1));
            j += 1;
        } else if is_word(a, "by") && left >= 1 {
            let pattern = args.get(j + 1);
            o.by = Some(pattern);
            o.dontsort = !c_str(pattern).contains(&b'*');
            if !o.dontsort && ctx.cfg.cluster_mode {
                ctx.out.error("ERR BY option of SORT denied in Cluster mode.");
                return None;
            }
            j += 1;
        } else if is_word(a, "get") && left >= 1 {
            if ctx.cfg.cluster_mode {
                ctx.out.error("ERR GET option of SORT denied in Cluster mode.");
                return None;
            }
            o.gets.push(args.get(j + 1));
            j += 1;
        } else {
            ctx.out.error(ERR_SYNTAX);
            return None;
        }
        j += 1;
    }
    Some(o)
}

fn parse_long(a: &[u8]) -> Option<i64> {
    crate::util::parse_i64(a)
}

/// What was sorted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    List,
    Set,
    ZSet,
}

/// One element being sorted, with what it sorts by.
struct Item {
    elem: Vec<u8>,
    score: f64,
    /// ALPHA BY: the value the pattern named (None when missing).
    by: Option<Vec<u8>>,
}

/// A pattern lookup that names a key in another slot than the sorted key.
struct WrongSlot;

fn sort_generic(ctx: &mut Ctx, args: &Args, readonly: bool) {
    let Some(mut o) = parse(ctx, args, readonly) else { return };
    let key = args.get(1);
    let now = ctx.now_ms;
    let script = ctx.caller.script;
    let loaded = match ctx.keys.db(key).get(key, now) {
        None => Some((Vec::new(), window(o.limit, 0))),
        Some(e) => load(&mut e.value, &mut o, script),
    };
    let Some((mut items, (start, end))) = loaded else {
        return ctx.out.error(ERR_WRONGTYPE);
    };

    let slot = key_slot(key);
    let mut not_a_number = false;
    if !o.dontsort {
        for it in items.iter_mut() {
            let by = match o.by {
                Some(pattern) => match lookup(ctx, slot, pattern, &it.elem) {
                    Err(WrongSlot) => return ctx.out.error(ERR_PATTERN_SLOT),
                    Ok(None) => continue,
                    Ok(Some(v)) => v,
                },
                None => {
                    if !o.alpha {
                        not_a_number |= score(&it.elem).map(|s| it.score = s).is_none();
                    }
                    continue;
                }
            };
            if o.alpha {
                it.by = Some(by);
            } else {
                not_a_number |= score(&by).map(|s| it.score = s).is_none();
            }
        }
        // Scores are what Redis compares; after a bad one it replies an error anyway.
        if !not_a_number {
            let order = Order { alpha: o.alpha, by: o.by.is_some(), binary: o.store.is_some(), desc: o.desc };
            let mut cmp = |a: &Item, b: &Item| order.compare(a, b);
            if o.by.is_some() && (start != 0 || end != items.len() as i64 - 1) {
                partial_sort(&mut items, start, end, &mut cmp);
            } else {
                items.sort_by(cmp);
            }
        }
    }
    if not_a_number {
        return ctx.out.error("ERR One or more scores can't be converted into double");
    }

    // The output: each element in the range, or the values its GET patterns name.
    let range = if end >= start { &items[start as usize..=end as usize] } else { &items[..0] };
    let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(range.len() * o.gets.len().max(1));
    for it in range {
        if o.gets.is_empty() {
            out.push(Some(it.elem.clone()));
        }
        for pattern in &o.gets {
            match lookup(ctx, slot, pattern, &it.elem) {
                Err(WrongSlot) => return ctx.out.error(ERR_PATTERN_SLOT),
                Ok(v) => out.push(v),
            }
        }
    }

    let Some(dest) = o.store else {
        ctx.out.array(out.len());
        for v in &out {
            match v {
                Some(b) => ctx.out.bulk(b),
                None => ctx.out.null(),
            }
        }
        return;
    };
    let n = out.len();
    if n > 0 {
        let list = new_list(out.into_iter().map(Option::unwrap_or_default), ctx.cfg);
        ctx.keys.db(dest).set(dest, list, 0);
        ctx.touch(dest);
        // Redis counts every stored element as a change.
        ctx.dirty += n as u64 - 1;
    } else if ctx.keys.db(dest).remove(dest, now).is_some() {
        ctx.touch(dest);
    }
    ctx.out.integer(n as i64);
}

fn item(elem: Vec<u8>) -> Item {
    Item { elem, score: 0.0, by: None }
}

/// How two items compare (Redis's `sortCompare`).
struct Order {
    alpha: bool,
    /// Sorting by the values of a BY pattern.
    by: bool,
    /// With STORE, ALPHA compares all bytes (`memcmp`); else as C strings.
    binary: bool,
    desc: bool,
}

impl Order {
    fn compare(&self, a: &Item, b: &Item) -> Ordering {
        let c = if !self.alpha {
            match a.score.partial_cmp(&b.score) {
                Some(Ordering::Equal) | None => a.elem.cmp(&b.elem),
                Some(c) => c,
            }
        } else if self.by {
            match (&a.by, &b.by) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => self.strings(x, y),
            }
        } else {
            self.strings(&a.elem, &b.elem)
        };
        if self.desc {
            c.reverse()
        } else {
            c
        }
    }

    fn strings(&self, a: &[u8], b: &[u8]) -> Ordering {
        if self.binary {
            a.cmp(b)
        } else {
            c_str(a).cmp(c_str(b))
        }
    }
}

/// Where a pattern points for one element (Redis's `lookupKeyByPattern`): `#` is the
/// element itself; otherwise the first `*` is replaced by the element, and a `->field`
/// after it names a hash field. A pattern without `*` names nothing.
#[derive(Debug, PartialEq, Eq)]
enum Target<'p> {
    Element,
    Nothing,
    Key { key: Vec<u8>, field: Option<&'p [u8]> },
}

fn target<'p>(pattern: &'p [u8], elem: &[u8]) -> Target<'p> {
    let c = c_str(pattern);
    if c == b"#" {
        return Target::Element;
    }
    let Some(star) = c.iter().position(|&b| b == b'*') else {
        return Target::Nothing;
    };
    // `->` after the star, followed by at least one byte (as a C string).
    let arrow = c[star + 1..].windows(2).position(|w| w == b"->").map(|i| star + 1 + i).filter(|&i| i + 2 < c.len());
    let (key_end, field) = match arrow {
        Some(i) => (i, Some(&pattern[i + 2..])),
        None => (pattern.len(), None),
    };
    let mut key = Vec::with_capacity(key_end + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(&pattern[star + 1..key_end]);
    Target::Key { key, field }
}

/// The value a pattern names for an element: a string key's value, or a hash field.
/// Keys of other types, missing keys and missing fields give None.
fn lookup(ctx: &mut Ctx, slot: u16, pattern: &[u8], elem: &[u8]) -> Result<Option<Vec<u8>>, WrongSlot> {
    let (key, field) = match target(pattern, elem) {
        Target::Element => return Ok(Some(elem.to_vec())),
        Target::Nothing => return Ok(None),
        Target::Key { key, field } => (key, field),
    };
    if key_slot(&key) != slot {
        return Err(WrongSlot);
    }
    let now = ctx.now_ms;
    let Some(e) = ctx.keys.db(&key).read(&key, now) else { return Ok(None) };
    Ok(match (&e.value, field) {
        (Value::Hash(h), Some(f)) => h.get(f).map(|v| v.to_vec()),
        (Value::Int(n), None) => Some(n.to_string().into_bytes()),
        (Value::Str { bytes, .. }, None) => Some(bytes.to_vec()),
        _ => None,
    })
}

/// A score as SORT reads one: C's `strtod` over the value up to its first NUL, which
/// must be consumed whole; NaN and out-of-range values are refused. An empty value
/// reads as 0 (strtod consumes nothing and stops on the terminator).
fn score(v: &[u8]) -> Option<f64> {
    let s = c_str(v);
    let (value, end, erange) = strtod(s);
    if end != s.len() || erange || value.is_nan() {
        return None;
    }
    Some(value)
}

/// C's `strtod` in the C locale: the value, how many bytes it consumed (0 when there is
/// no number), and whether it set ERANGE (overflow, or an inexact result below the
/// normal range).
fn strtod(s: &[u8]) -> (f64, usize, bool) {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let neg = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let sign = if neg { -1.0 } else { 1.0 };
    let rest = &s[i..];
    let starts = |w: &[u8]| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w);
    if starts(b"infinity") {
        return (sign * f64::INFINITY, i + 8, false);
    }
    if starts(b"inf") {
        return (sign * f64::INFINITY, i + 3, false);
    }
    if starts(b"nan") {
        let mut end = i + 3;
        if s.get(end) == Some(&b'(') {
            let close = s[end + 1..].iter().position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'));
            if let Some(k) = close {
                if s[end + 1 + k] == b')' {
                    end += k + 2;
                }
            }
        }
        return (f64::NAN, end, false);
    }
    let hex = starts(b"0x")
        && (rest.get(2).is_some_and(u8::is_ascii_hexdigit)
            || (rest.get(2) == Some(&b'.') && rest.get(3).is_some_and(u8::is_ascii_hexdigit)));
    let (magnitude, used, erange) = if hex { hex_float(&rest[2..]) } else { decimal(rest) };
    match used {
        0 => (0.0, 0, false),
        n => (sign * magnitude, i + n + if hex { 2 } else { 0 }, erange),
    }
}

/// A decimal mantissa with an optional exponent: (value, bytes used, ERANGE).
fn decimal(s: &[u8]) -> (f64, usize, bool) {
    let digits = |from: usize| s[from.min(s.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int = digits(0);
    let mut i = int;
    let mut frac = 0;
    if s.get(i) == Some(&b'.') {
        frac = digits(i + 1);
        if int + frac > 0 {
            i += 1 + frac;
        }
    }
    if int + frac == 0 {
        return (0.0, 0, false);
    }
    let nonzero = s[..i].iter().any(|c| (b'1'..=b'9').contains(c));
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(s.get(i + 1), Some(b'+' | b'-')));
        let exp = digits(i + 1 + sign);
        if exp > 0 {
            i += 1 + sign + exp;
        }
    }
    // Rust's parser rounds correctly, as glibc does.
    let text = std::str::from_utf8(&s[..i]).unwrap_or("0");
    let v: f64 = text.parse().unwrap_or(0.0);
    let erange = v.is_infinite() || (nonzero && v.abs() < f64::MIN_POSITIVE);
    (v, i, erange)
}

/// A hexadecimal mantissa (after `0x`) with an optional binary exponent `p`.
fn hex_float(s: &[u8]) -> (f64, usize, bool) {
    let mut mant: u64 = 0;
    let mut sticky = false;
    let mut exp: i64 = 0;
    let mut i = 0;
    let mut seen_dot = false;
    while i < s.len() {
        let c = s[i];
        if c == b'.' && !seen_dot {
            seen_dot = true;
        } else if let Some(d) = (c as char).to_digit(16) {
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
    if matches!(s.get(i), Some(b'p' | b'P')) {
        let sign = usize::from(matches!(s.get(i + 1), Some(b'+' | b'-')));
        let digits = s[(i + 1 + sign).min(s.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 {
            let text = &s[i + 1 + sign..i + 1 + sign + digits];
            let e = std::str::from_utf8(text).ok().and_then(|t| t.parse::<i64>().ok()).unwrap_or(i64::MAX / 4);
            let e = e.min(1 << 40);
            exp += if s[i + 1] == b'-' { -e } else { e };
            i += 1 + sign + digits;
        }
    }
    let (v, inexact) = scale_binary(mant, sticky, exp);
    let erange = v.is_infinite() || (inexact && v.abs() < f64::MIN_POSITIVE);
    (v, i, erange)
}

/// `mant × 2^exp` (plus a nonzero remainder below `mant` when `sticky`) rounded to
/// nearest-even f64; whether rounding lost anything.
fn scale_binary(mant: u64, sticky: bool, exp: i64) -> (f64, bool) {
    if mant == 0 {
        return (0.0, false);
    }
    let bits = 64 - mant.leading_zeros() as i64;
    // Exponent of the leading bit, and how many bits the result keeps.
    let top = exp + bits - 1;
    if top > 1023 {
        return (f64::INFINITY, true);
    }
    let keep = if top >= -1022 { 53 } else { 53 - (-1022 - top) };
    let drop = bits - keep;
    let (mut m, mut e, mut inexact) = (mant, exp, sticky);
    if drop > 64 {
        // Below half the smallest step: rounds to zero.
        return (0.0, true);
    }
    if drop > 0 {
        let drop = drop as u32;
        let kept = if drop == 64 { 0 } else { mant >> drop };
        let rem_bits = if drop == 64 { mant } else { mant & ((1u64 << drop) - 1) };
        let half = 1u64 << (drop - 1);
        inexact |= rem_bits != 0;
        let round_up = rem_bits > half || (rem_bits == half && (sticky || kept & 1 == 1));
        m = kept + round_up as u64;
        e = exp + drop as i64;
    }
    if m == 0 {
        return (0.0, inexact);
    }
    // m × 2^e is representable now: build it with exact power-of-two steps.
    let mut v = m as f64;
    while e > 1000 {
        v *= f64::from_bits(((1023 + 1000) as u64) << 52);
        e -= 1000;
    }
    while e < -1000 {
        v *= f64::from_bits(((1023 - 1000) as u64) << 52);
        e += 1000;
    }
    v *= f64::from_bits(((1023 + e) as u64) << 52);
    (v, inexact)
}

/// Redis's `pqsort`: Bentley and McIlroy's quicksort that leaves alone the partitions
/// lying wholly outside ranks `lrange..=rrange`. Reproduced step by step (pivot
/// choice, swaps) because the order it leaves ties in is visible in SORT's reply.
fn partial_sort<T>(v: &mut [T], lrange: i64, rrange: i64, cmp: &mut impl FnMut(&T, &T) -> Ordering) {
    quick(v, 0, v.len(), lrange, rrange, cmp);
}

fn med3<T>(v: &[T], a: usize, b: usize, c: usize, cmp: &mut impl FnMut(&T, &T) -> Ordering) -> usize {
    if cmp(&v[a], &v[b]).is_lt() {
        if cmp(&v[b], &v[c]).is_lt() {
            b
        } else if cmp(&v[a], &v[c]).is_lt() {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]).is_gt() {
        b
    } else if cmp(&v[a], &v[c]).is_lt() {
        a
    } else {
        c
    }
}

/// Swaps `n` elements from `a` with `n` from `b`, pairwise.
fn swap_run<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for k in 0..n {
        v.swap(a + k, b + k);
    }
}

/// Sorts `v[a..a+n]` as far as ranks `l..=r` need.
fn quick<T>(v: &mut [T], mut a: usize, mut n: usize, l: i64, r: i64, cmp: &mut impl FnMut(&T, &T) -> Ordering) {
    // Whether ranks l..=r touch v[lo..lo+len].
    let wanted = |lo: usize, len: usize| {
        let (lo, hi) = (lo as i64, (lo + len) as i64);
        !((l < lo && r < lo) || (l >= hi && r >= hi))
    };
    loop {
        if n < 7 {
            for pm in a + 1..a + n {
                let mut pl = pm;
                while pl > a && cmp(&v[pl - 1], &v[pl]).is_gt() {
                    v.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let c = cmp(&v[pb], &v[a]);
                if c.is_gt() {
                    break;
                }
                if c.is_eq() {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let c = cmp(&v[pc], &v[a]);
                if c.is_lt() {
                    break;
                }
                if c.is_eq() {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let k = (pa - a).min(pb - pa);
        swap_run(v, a, pb - k, k);
        let k = (pd - pc).min(pn - pd - 1);
        swap_run(v, pb, pn - k, k);
        let left = pb - pa;
        if left > 1 && wanted(a, left) {
            quick(v, a, left, l, r, cmp);
        }
        let right = pd - pc;
        if right > 1 && wanted(pn - right, right) {
            a = pn - right;
            n = right;
            continue;
        }
        return;
    }
}

/// LIMIT over `len` elements, as Redis clamps it: the output ranks `start..=end`
/// (none when `end < start`).
fn window(limit: (i64, i64), len: i64) -> (i64, i64) {
    let mut start = limit.0.clamp(0, len);
    let count = limit.1.clamp(-1, len);
    let mut end = if count < 0 { len - 1 } else { start + count - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

/// What SORT works on, read from the sorted key's value: the items with the output
/// window over them. All elements, in the order Redis loads them (a list's order, a
/// set's iteration order, a sorted set's rank order), except that a list or sorted set
/// left unsorted yields just its window (reversed by DESC). None for other types.
///
/// Like Redis, this turns a `listpack` sorted set into a `skiplist` one for good.
fn load(v: &mut Value, o: &mut Options, script: bool) -> Option<(Vec<Item>, (i64, i64))> {
    let (kind, len) = match v {
        Value::List(l) => (Kind::List, l.len()),
        Value::Set(s) => (Kind::Set, s.len()),
        Value::ZSet(z) => {
            if z.is_listpack() {
                let all = ZSetLimits { max_listpack_entries: 0, max_listpack_value: 0 };
                **z = ZSetValue::from_sorted(z.to_vec(), &all);
            }
            (Kind::ZSet, z.len())
        }
        _ => return None,
    };
    // An unsorted set has no stable order to store or to give a script: Redis sorts it
    // by its members.
    if o.dontsort && kind == Kind::Set && (o.store.is_some() || script) {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let (start, end) = window(o.limit, len as i64);
    if !o.dontsort || kind == Kind::Set {
        let items = match v {
            Value::List(l) => l.iter().map(|e| item(e.to_vec())).collect(),
            Value::Set(s) => s.iter().map(|m| item(m.to_vec())).collect(),
            Value::ZSet(z) => z.to_vec().into_iter().map(|(m, _)| item(m)).collect(),
            _ => Vec::new(),
        };
        return Some((items, (start, end)));
    }
    let (from, n) = if end >= start { (start as usize, (end - start + 1) as usize) } else { (0, 0) };
    let mut items = Vec::with_capacity(n);
    match v {
        Value::List(l) if o.desc => items.extend(l.range(len - from - n, len - from).rev().map(|e| item(e.to_vec()))),
        Value::List(l) => items.extend(l.range(from, from + n).map(|e| item(e.to_vec()))),
        // `walk` takes the head rank to start from, in either direction.
        Value::ZSet(z) if n > 0 => z.walk(if o.desc { len - 1 - from } else { from }, o.desc, &mut |m, _| {
            items.push(item(m.to_vec()));
            items.len() < n
        }),
        _ => {}
    }
    // The window now starts at the first item.
    Some((items, (0, end - start)))
}

/// A list of `elements`, as SORT ... STORE creates it.
fn new_list(elements: impl Iterator<Item = Vec<u8>>, cfg: &crate::ctx::ExecConfig) -> Value {
    let mut l = ListValue::new(cfg.list_max_listpack_size);
    for e in elements {
        l.push_back(&e);
    }
    Value::List(Box::new(l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;
    use ferrokv_resp::OwnedArgs;

    #[test]
    fn scores_read_as_strtod_reads_them() {
        assert_eq!(score(b""), Some(0.0));
        assert_eq!(score(b"  5"), Some(5.0));
        assert_eq!(score(b"\t-2.5e1"), Some(-25.0));
        assert_eq!(score(b"5 "), None);
        assert_eq!(score(b" "), None);
        assert_eq!(score(b"-"), None);
        assert_eq!(score(b"."), None);
        assert_eq!(score(b"+.5"), Some(0.5));
        assert_eq!(score(b"1."), Some(1.0));
        assert_eq!(score(b"1e"), None);
        assert_eq!(score(b"1e+"), None);
        assert_eq!(score(b"1\0junk"), Some(1.0));
        assert_eq!(score(b"\0junk"), Some(0.0));
        assert_eq!(score(b"abc"), None);
        assert_eq!(score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(score(b"Infinity"), Some(f64::INFINITY));
        assert_eq!(score(b"infinit"), None);
        assert_eq!(score(b"nan"), None);
        assert_eq!(score(b"1e400"), None);
        assert_eq!(score(b"1e-400"), None);
        assert_eq!(score(b"4.9e-324"), None, "subnormal: ERANGE");
        assert_eq!(score(b"0e-400"), Some(0.0));
        assert_eq!(score(b"2.2250738585072014e-308"), Some(f64::MIN_POSITIVE));
        assert_eq!(score(b"1.7976931348623157e308"), Some(f64::MAX));
        assert_eq!(score(b"0x10"), Some(16.0));
        assert_eq!(score(b"-0X1.8p1"), Some(-3.0));
        assert_eq!(score(b"0x.8"), Some(0.5));
        assert_eq!(score(b"0x"), None);
        assert_eq!(score(b"0x1p"), None);
        assert_eq!(score(b"0x1p-1074"), Some(f64::from_bits(1)), "exact subnormal: no ERANGE");
        assert_eq!(score(b"0x1p-1075"), None);
        assert_eq!(score(b"0x1p1024"), None);
        assert_eq!(score(b"0x1fffffffffffff8p-3"), Some(2f64.powi(54) - 1.0 - 0.0));
        assert_eq!(score(b"0x20000000000001"), Some(2f64.powi(53)), "ties to even");
        assert_eq!(score(b"0x20000000000003"), Some(2f64.powi(53) + 4.0), "ties to even");
        assert_eq!(score(b"9007199254740993"), Some(2f64.powi(53)));
    }

    #[test]
    fn pattern_targets() {
        let key = |k: &[u8], f: Option<&'static [u8]>| Target::Key { key: k.to_vec(), field: f };
        assert_eq!(target(b"#", b"x"), Target::Element);
        assert_eq!(target(b"#\0tail", b"x"), Target::Element);
        assert_eq!(target(b"nostar", b"x"), Target::Nothing);
        assert_eq!(target(b"w_\0*", b"x"), Target::Nothing);
        assert_eq!(target(b"w_*", b"x"), key(b"w_x", None));
        assert_eq!(target(b"*_*", b"x"), key(b"x_*", None));
        assert_eq!(target(b"h_*->f", b"x"), key(b"h_x", Some(b"f")));
        assert_eq!(target(b"h_*->", b"x"), key(b"h_x->", None));
        assert_eq!(target(b"h->*", b"x"), key(b"h->x", None));
        assert_eq!(target(b"h_*->a->b", b"x"), key(b"h_x", Some(b"a->b")));
        assert_eq!(target(b"h_*->f\0g", b"x"), key(b"h_x", Some(b"f\0g")));
    }

    #[test]
    fn store_key_found_as_redis_finds_it() {
        let keys = |line: &str| {
            let words: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            sort_keys(&OwnedArgs::from_slices(&words).args())
        };
        assert_eq!(keys("SORT k"), vec![1]);
        assert_eq!(keys("SORT k STORE d"), vec![1, 3]);
        assert_eq!(keys("SORT k STORE d store e"), vec![1, 5]);
        assert_eq!(keys("SORT k GET store STORE d"), vec![1, 5]);
        assert_eq!(keys("SORT k LIMIT 0 store BY x"), vec![1]);
        assert_eq!(keys("SORT k STORE"), vec![1]);
    }

    /// Vectors produced by Redis's pqsort.c on keys with ties; each number in the
    /// output is an element's original position.
    #[test]
    fn partial_sort_orders_ties_as_redis_pqsort() {
        let cases = [
            "59 37 40 1 1 1 1 2 2 2 1 2 1 0 1 0 2 0 0 2 0 2 1 2 1 2 2 1 2 1 2 0 0 1 0 1 0 1 0 0 0 2 2 0 0 1 1 1 2 0 2 \
             1 0 2 0 1 0 2 0 0 1 2 => 40 51 37 36 55 35 10 33 28 29 53 31 12 49 14 15 46 17 41 56 44 1 2 3 7 9 11 19 \
             21 24 26 30 32 34 42 43 0 48 52 57 39 18 6 54 5 45 16 47 4 13 50 8 27 58 25 23 22 38 20",
            "43 29 34 5 7 1 1 0 2 5 4 6 3 1 0 2 5 1 6 7 2 3 8 6 6 4 2 9 1 6 0 3 3 3 6 7 3 0 4 5 4 4 6 9 5 8 => 29 30 5 \
             35 33 34 6 7 41 9 10 11 12 13 14 2 38 17 18 37 3 4 22 23 36 25 0 27 28 26 8 15 20 21 31 39 24 19 16 42 \
             40 1 32",
            "14 0 6 7 0 4 2 4 0 7 7 3 3 1 6 6 7 => 5 1 10 3 8 9 4 2 11 12 13 6 7 0",
        ];
        for case in cases {
            let (input, want) = case.split_once(" => ").expect("case");
            let nums: Vec<i64> = input.split_whitespace().map(|x| x.parse().expect("int")).collect();
            let (n, l, r) = (nums[0] as usize, nums[1], nums[2]);
            let mut v: Vec<(i64, usize)> = nums[3..3 + n].iter().copied().zip(0..).collect();
            partial_sort(&mut v, l, r, &mut |a: &(i64, usize), b: &(i64, usize)| a.0.cmp(&b.0));
            let got: Vec<String> = v.iter().map(|x| x.1.to_string()).collect();
            assert_eq!(got.join(" "), want.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }

    #[test]
    fn partial_sort_sorts_the_requested_ranks() {
        let mut x = 7u64;
        for n in [0usize, 1, 6, 7, 8, 40, 41, 300] {
            let v: Vec<u64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % 1000
                })
                .collect();
            let mut full = v.clone();
            full.sort();
            for (l, r) in [(0i64, n as i64 - 1), (n as i64 / 3, n as i64 / 2), (0, 0)] {
                let mut p = v.clone();
                partial_sort(&mut p, l, r, &mut |a: &u64, b: &u64| a.cmp(b));
                for i in l.max(0)..=r.min(n as i64 - 1) {
                    assert_eq!(p[i as usize], full[i as usize], "n {n} ranks {l}..={r}");
                }
            }
        }
    }

    fn setup() -> Harness {
        let mut h = Harness::new();
        h.cmd("SADD {s}s 3 1 2 10");
        for (k, v) in [("w_1", "30"), ("w_2", "20"), ("w_3", "10"), ("w_10", "x")] {
            h.cmd(&format!("SET {{s}}{k} {v}"));
        }
        h.cmd("HSET {s}h_1 f one");
        h.cmd("HSET {s}h_2 f two");
        h
    }

    #[test]
    fn sorts_sets_numerically_alphabetically_and_by_patterns() {
        let mut h = setup();
        assert_eq!(h.cmd("SORT {s}s"), "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$2\r\n10\r\n");
        assert_eq!(h.cmd("SORT {s}s DESC LIMIT 1 2"), "*2\r\n$1\r\n3\r\n$1\r\n2\r\n");
        assert_eq!(h.cmd("SORT {s}s ALPHA"), "*4\r\n$1\r\n1\r\n$2\r\n10\r\n$1\r\n2\r\n$1\r\n3\r\n");
        assert_eq!(h.cmd("SORT {s}s BY {s}w_*"), "-ERR One or more scores can't be converted into double\r\n");
        assert_eq!(h.cmd("SORT {s}s BY {s}w_* LIMIT 0 2 ALPHA"), "*2\r\n$1\r\n3\r\n$1\r\n2\r\n");
        h.cmd("DEL {s}w_10");
        assert_eq!(h.cmd("SORT {s}s BY {s}w_* GET # GET {s}h_*->f"), {
            "*8\r\n$2\r\n10\r\n$-1\r\n$1\r\n3\r\n$-1\r\n$1\r\n2\r\n$3\r\ntwo\r\n$1\r\n1\r\n$3\r\none\r\n"
        });
        assert_eq!(h.cmd("SORT_RO {s}s BY nosort GET {s}w_* LIMIT 0 1"), "*1\r\n$2\r\n30\r\n");
        assert_eq!(h.cmd("SORT {s}s LIMIT 0 0"), "*0\r\n");
        assert_eq!(h.cmd("SORT {s}s LIMIT 5 10"), "*0\r\n");
        assert_eq!(h.cmd("SORT nokey"), "*0\r\n");
    }

    #[test]
    fn errors() {
        let mut h = setup();
        assert_eq!(h.cmd("SORT {s}w_1"), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
        assert_eq!(h.cmd("SORT {s}s LIMIT 0"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SORT {s}s LIMIT a 1"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SORT_RO {s}s STORE d"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SORT {s}s BY other_slot_*"), format!("-{ERR_PATTERN_SLOT}\r\n"));
        assert_eq!(h.cmd("SORT {s}s GET other_*"), format!("-{ERR_PATTERN_SLOT}\r\n"));
        assert_eq!(h.cmd("SORT {s}s BY nosort GET #"), "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$2\r\n10\r\n");
    }

    #[test]
    fn slot_check_passes_with_hash_tags() {
        let mut h = Harness::new();
        h.cmd("SADD {u}ids 1 2");
        h.cmd("SET {u}w_1 5");
        h.cmd("SET {u}w_2 4");
        assert_eq!(h.cmd("SORT {u}ids BY {u}w_*"), "*2\r\n$1\r\n2\r\n$1\r\n1\r\n");
    }

    fn put_list(h: &mut Harness, key: &str, elems: &[&str]) {
        let mut l = ListValue::new(-2);
        for e in elems {
            l.push_back(e.as_bytes());
        }
        h.db.set(key.as_bytes(), Value::List(Box::new(l)), 0);
    }

    fn bulks(items: &[&str]) -> String {
        let mut s = format!("*{}\r\n", items.len());
        for i in items {
            s.push_str(&format!("${}\r\n{i}\r\n", i.len()));
        }
        s
    }

    #[test]
    fn lists_keep_their_order_unsorted_and_store_sorted() {
        let mut h = Harness::new();
        put_list(&mut h, "l", &["3", "1", "2", "10", "2"]);
        assert_eq!(h.cmd("SORT l"), bulks(&["1", "2", "2", "3", "10"]));
        assert_eq!(h.cmd("SORT l BY nosort"), bulks(&["3", "1", "2", "10", "2"]));
        assert_eq!(h.cmd("SORT l BY nosort DESC"), bulks(&["2", "10", "2", "1", "3"]));
        assert_eq!(h.cmd("SORT l BY nosort LIMIT 1 2"), bulks(&["1", "2"]));
        assert_eq!(h.cmd("SORT l BY nosort DESC LIMIT 1 2"), bulks(&["10", "2"]));
        assert_eq!(h.cmd("SORT l BY nosort LIMIT 4 10"), bulks(&["2"]));
        assert_eq!(h.cmd("SORT l BY nosort LIMIT 2 0"), bulks(&[]));
        assert_eq!(h.cmd("SORT l ALPHA DESC"), bulks(&["3", "2", "2", "10", "1"]));

        h.cmd("SET d x EX 100");
        assert_eq!(h.cmd("SORT l STORE d"), ":5\r\n");
        assert_eq!(h.dirty, 5);
        assert_eq!(h.expire_at("d"), Some(0));
        assert_eq!(h.encoding("d"), "quicklist");
        assert_eq!(h.cmd("SORT d BY nosort"), bulks(&["1", "2", "2", "3", "10"]));
        assert_eq!(h.cmd("SORT l LIMIT 0 0 STORE d"), ":0\r\n");
        assert_eq!(h.cmd("EXISTS d"), ":0\r\n");
        assert_eq!(h.cmd("SORT l BY nosort GET nostar STORE d"), ":5\r\n");
        assert_eq!(h.cmd("SORT d BY nosort LIMIT 0 1"), bulks(&[""]));
    }

    #[test]
    fn alpha_compares_c_strings_unless_storing() {
        let mut h = Harness::new();
        put_list(&mut h, "l", &["a\0c", "b", "a\0b", "a"]);
        // Up to the NUL, "a\0c" and "a\0b" tie with "a": the stable sort keeps them in order.
        assert_eq!(h.cmd("SORT l ALPHA"), bulks(&["a\0c", "a\0b", "a", "b"]));
        h.cmd("SORT l ALPHA STORE d");
        assert_eq!(h.cmd("SORT d BY nosort"), bulks(&["a", "a\0b", "a\0c", "b"]));
    }

    #[test]
    fn sorted_sets_become_skiplists_and_walk_by_rank() {
        let mut h = Harness::new();
        let members = [("c", 1.0), ("a", 2.0), ("b", 3.0), ("10", 4.0)];
        let z = ZSetValue::from_sorted(
            members.iter().map(|(m, s)| (m.as_bytes().to_vec(), *s)).collect(),
            &ZSetLimits::default(),
        );
        h.db.set(b"z", Value::ZSet(Box::new(z)), 0);
        assert_eq!(h.encoding("z"), "listpack");
        assert_eq!(h.cmd("SORT_RO z BY nosort"), bulks(&["c", "a", "b", "10"]));
        assert_eq!(h.encoding("z"), "skiplist");
        assert_eq!(h.cmd("SORT z BY nosort DESC LIMIT 1 2"), bulks(&["b", "a"]));
        assert_eq!(h.cmd("SORT z BY nosort LIMIT 1 2"), bulks(&["a", "b"]));
        assert_eq!(h.cmd("SORT z ALPHA"), bulks(&["10", "a", "b", "c"]));
        assert_eq!(h.cmd("SORT z"), "-ERR One or more scores can't be converted into double\r\n");
    }
}
