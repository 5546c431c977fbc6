//! Differential tests of the sorted set commands: seeded random streams of ZADD ...
//! ZSCAN mixed with string, set and key commands on the same keys (WRONGTYPE, sets as
//! ZUNION inputs), edge arguments (infinities, hexadecimal and invalid floats,
//! exclusive bounds, negative indexes, huge counts), CONFIG SET of
//! `zset-max-listpack-entries` and `zset-max-listpack-value`, in RESP2 and RESP3, sent
//! to ferrokv-server and redis-server 7.0 side by side.
//!
//! Replies must be byte-identical, OBJECT ENCODING included, except where Redis itself
//! is not deterministic:
//! - ZRANDMEMBER: same reply type and length, members (and their scores) of the set,
//!   distinct for a positive count; a count covering the whole set lists it in order,
//!   which must be identical.
//! - ZSCAN of a `skiplist` set: from cursor 0 both servers are iterated to cursor 0 and
//!   the (member, score) pairs seen must be equal; from another cursor only the shape.
//! - Lex ranges over a `skiplist` set whose scores differ: Redis's answer depends on
//!   its skiplist's random levels. Reads are then compared by reply type only, and
//!   writes (ZREMRANGEBYLEX, ZRANGESTORE BYLEX) are not sent. Over a `listpack` set
//!   Redis scans linearly, and that answer must be identical. One key, `zset-lex`, only
//!   ever gets score 0, so lex ranges over it are always compared.
//! - Blocking pops use timeouts of a few milliseconds, so that an empty key times out
//!   on both servers.
//!
//! Replay: `FERROKV_SEED=n cargo test --release -p ferrokv-tests --test diff_zsets -- <name>`;
//! `FERROKV_ZSET_LOG=1` prints every stream command, `FERROKV_ZSET_STATS=1` redis's
//! command statistics at the end of each stream (with `--nocapture`).

use std::collections::{BTreeMap, BTreeSet};

// Every generator here picks its command's comparison.
use ferrokv_tests::diff::family::{self, op_choosing as op, Family, FamilyStream, Op};
use ferrokv_tests::diff::{w, Check, Differ, Gen, EDGE_FLOATS, EDGE_INTS, KEYS};
use ferrokv_tests::resp::{parse_one, show};
use ferrokv_tests::{Conn, Reply};

const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6];

/// How a command's replies are compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Exact,
    /// Not mutated (a mutation could turn a timeout into a long one).
    Blocking,
    Config,
    Ttl,
    /// A lex range read over the key at the given argument index.
    LexRead(usize),
    /// A lex range write (source key at the given index).
    LexWrite(usize),
    RandMember,
    Scan,
}

/// A member: single letters (lex ranges), a pool of names, integers (which a listpack
/// packs as integers), integer look-alikes, binary bytes, and lengths around 64.
fn member(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(100) {
        0..=29 => g.pick(&["a", "b", "c", "d", "e", "f", "g", "h", "aa", "ab", "b\x00", "B"]),
        30..=54 => format!("m{}", g.rng.below(40)).into_bytes(),
        55..=74 => g.int_in(-5, 30),
        75..=82 => g.pick(&[
            "-0",
            "01",
            "+1",
            " 1",
            "",
            "1.0",
            "9223372036854775807",
            "-9223372036854775808",
            "4611686018427387904",
        ]),
        83..=89 => {
            let len = 1 + g.rng.below(8) as usize;
            g.rng.bytes(len, b"a\x00\r\n\xff\x80 (-+[")
        }
        _ => {
            let len = 60 + g.rng.below(10) as usize;
            g.rng.bytes(len, b"xy")
        }
    }
}

/// A score: often 0 (so that lex ranges apply), small integers and decimals, edge
/// floats and forms only `strtod` reads.
fn score(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(100) {
        0..=29 => w("0"),
        30..=64 => g.int_in(-10, 10),
        65..=77 => format!("{}.{}", g.rng.range(-10, 10), g.rng.below(100)).into_bytes(),
        78..=93 => {
            g.pick(&["inf", "-inf", "+inf", "-0", "1e17", "1e-5", "0.1", "4611686018427387904", "0x10", "1e300"])
        }
        _ => g.pick(EDGE_FLOATS),
    }
}

/// A score range bound: plain, exclusive, infinite, and invalid.
fn bound(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(100) {
        0..=39 => g.int_in(-5, 10),
        40..=59 => format!("({}", g.rng.range(-5, 10)).into_bytes(),
        60..=74 => g.pick(&["-inf", "+inf", "(-inf", "(+inf", "inf"]),
        75..=84 => g.pick(&["0", "(0", "1.5", "(1.5", "-0", "1e17"]),
        _ => g.pick(&["(", "", " 1", "((1", "abc", "nan", "(nan", "0x1p1", "1e400", "[1"]),
    }
}

/// A lex range bound.
fn lex_bound(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(100) {
        0..=19 => g.pick(&["-", "+"]),
        20..=84 => {
            let m = g.pick(&["a", "b", "c", "d", "e", "h", "aa", "m1", "m", "1", ""]);
            [if g.chance(50) { b"[".as_slice() } else { b"(".as_slice() }, &m].concat()
        }
        _ => g.pick(&["a", "", "-a", "+\x00", "x", "[", "("]),
    }
}

/// A rank index.
fn index(g: &mut Gen) -> Vec<u8> {
    if g.chance(85) {
        g.int_in(-12, 12)
    } else {
        g.pick(EDGE_INTS)
    }
}

fn key(g: &mut Gen) -> Vec<u8> {
    g.key()
}

/// A key only ever given score 0, so that lex ranges over it are defined whatever its
/// encoding.
const LEX_KEY: &str = "zset-lex";

/// The key of a lex range command: often [`LEX_KEY`].
fn lex_key(g: &mut Gen) -> Vec<u8> {
    if g.chance(40) {
        w(LEX_KEY)
    } else {
        g.key()
    }
}

/// ZADD to [`LEX_KEY`]: members at score 0, sometimes many (past 128).
fn zadd_lex(g: &mut Gen) -> (Vec<Vec<u8>>, Cmp) {
    let mut args = vec![w("ZADD"), w(LEX_KEY)];
    if g.chance(10) {
        for i in 0..g.rng.range(50, 140) {
            args.extend([w("0"), format!("n{i}").into_bytes()]);
        }
    } else {
        for _ in 0..g.rng.range(1, 5) {
            args.extend([w("0"), member(g)]);
        }
    }
    (args, Cmp::Exact)
}

fn pairs(g: &mut Gen, args: &mut Vec<Vec<u8>>, lo: i64, hi: i64) {
    for _ in 0..g.rng.range(lo, hi) {
        args.push(score(g));
        args.push(member(g));
    }
}

fn zadd(g: &mut Gen) -> (Vec<Vec<u8>>, Cmp) {
    let mut args = vec![w("ZADD"), key(g)];
    for opt in ["NX", "XX", "GT", "LT", "CH", "INCR"] {
        if g.chance(12) {
            args.push(g.kw(opt));
        }
    }
    let incr = args.iter().any(|a| a.eq_ignore_ascii_case(b"incr"));
    let most = if incr && g.chance(80) { 1 } else { 5 };
    pairs(g, &mut args, 1, most);
    (args, Cmp::Exact)
}

/// Many members at once: crosses the 128-entry listpack limit now and then.
fn zadd_many(g: &mut Gen) -> (Vec<Vec<u8>>, Cmp) {
    let mut args = vec![w("ZADD"), key(g)];
    let n = g.rng.range(10, 150);
    let base = g.rng.below(100);
    for i in 0..n {
        args.push(if g.chance(50) { w("0") } else { g.int_in(-100, 100) });
        args.push(format!("n{}", base + i as u64).into_bytes());
    }
    (args, Cmp::Exact)
}

fn limit(g: &mut Gen, args: &mut Vec<Vec<u8>>) {
    if g.chance(30) {
        args.push(g.kw("LIMIT"));
        args.push(if g.chance(80) { g.int_in(-1, 5) } else { g.pick(EDGE_INTS) });
        args.push(if g.chance(80) { g.int_in(-2, 6) } else { g.pick(EDGE_INTS) });
    }
}

/// ZRANGE and ZRANGESTORE with any of BYSCORE, BYLEX, REV, LIMIT, WITHSCORES.
fn zrange(g: &mut Gen, store: bool) -> (Vec<Vec<u8>>, Cmp) {
    let by = g.rng.below(3);
    let src_key = if by == 2 { lex_key(g) } else { key(g) };
    let mut args = if store { vec![w("ZRANGESTORE"), key(g), src_key] } else { vec![w("ZRANGE"), src_key] };
    let src = if store { 2 } else { 1 };
    match by {
        0 => args.extend([index(g), index(g)]),
        1 => args.extend([bound(g), bound(g)]),
        _ => args.extend([lex_bound(g), lex_bound(g)]),
    }
    let mut opts: Vec<Vec<Vec<u8>>> = Vec::new();
    match by {
        1 => opts.push(vec![g.kw("BYSCORE")]),
        2 => opts.push(vec![g.kw("BYLEX")]),
        _ if g.chance(5) => opts.push(vec![g.kw("BYSCORE")]),
        _ => {}
    }
    if g.chance(40) {
        opts.push(vec![g.kw("REV")]);
    }
    if g.chance(40) && (!store || g.chance(5)) {
        opts.push(vec![g.kw("WITHSCORES")]);
    }
    let mut lim = Vec::new();
    limit(g, &mut lim);
    if !lim.is_empty() {
        opts.push(lim);
    }
    for i in (1..opts.len()).rev() {
        let j = g.rng.below(i as u64 + 1) as usize;
        opts.swap(i, j);
    }
    args.extend(opts.into_iter().flatten());
    let cmp = match (by, store) {
        (2, false) => Cmp::LexRead(src),
        (2, true) => Cmp::LexWrite(src),
        _ => Cmp::Exact,
    };
    (args, cmp)
}

/// ZREVRANGE / ZRANGEBYSCORE / ZREVRANGEBYSCORE / ZRANGEBYLEX / ZREVRANGEBYLEX.
fn old_range(g: &mut Gen) -> (Vec<Vec<u8>>, Cmp) {
    let name = *g.rng.pick(&["ZREVRANGE", "ZRANGEBYSCORE", "ZREVRANGEBYSCORE", "ZRANGEBYLEX", "ZREVRANGEBYLEX"]);
    let lex = name.ends_with("LEX");
    let mut args = vec![w(name), if lex { lex_key(g) } else { key(g) }];
    match name {
        "ZREVRANGE" => args.extend([index(g), index(g)]),
        _ if lex => args.extend([lex_bound(g), lex_bound(g)]),
        _ => args.extend([bound(g), bound(g)]),
    }
    if !lex && g.chance(40) {
        args.push(g.kw("WITHSCORES"));
    }
    if name != "ZREVRANGE" {
        limit(g, &mut args);
    }
    (args, if lex { Cmp::LexRead(1) } else { Cmp::Exact })
}

fn with_members(mut args: Vec<Vec<u8>>, g: &mut Gen, lo: i64, hi: i64) -> Vec<Vec<u8>> {
    for _ in 0..g.rng.range(lo, hi) {
        args.push(member(g));
    }
    args
}

/// `numkeys key ...` (numkeys sometimes wrong).
fn numkeys(g: &mut Gen, args: &mut Vec<Vec<u8>>) -> usize {
    let n = g.rng.range(1, 4) as usize;
    args.push(if g.chance(95) { n.to_string().into_bytes() } else { g.pick(&["0", "-1", "5", "abc"]) });
    for _ in 0..n {
        args.push(key(g));
    }
    n
}

/// ZUNION/ZINTER/ZDIFF, their STORE forms, ZINTERCARD.
fn algebra(g: &mut Gen) -> (Vec<Vec<u8>>, Cmp) {
    let name = *g.rng.pick(&["ZUNION", "ZINTER", "ZDIFF", "ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE", "ZINTERCARD"]);
    let mut args = vec![w(name)];
    if name.ends_with("STORE") {
        args.push(key(g));
    }
    let n = numkeys(g, &mut args);
    let diff = name.starts_with("ZDIFF");
    if name == "ZINTERCARD" {
        if g.chance(50) {
            args.push(g.kw("LIMIT"));
            args.push(g.pick(&["0", "1", "2", "-1", "abc", "100"]));
        }
        return (args, Cmp::Exact);
    }
    if !diff && g.chance(40) {
        args.push(g.kw("WEIGHTS"));
        for _ in 0..n {
            args.push(g.pick(&["1", "2", "0", "-1", "0.5", "inf", "-inf", "abc", "1e400", "nan"]));
        }
    }
    if !diff && g.chance(40) {
        args.push(g.kw("AGGREGATE"));
        args.push(g.pick(&["SUM", "MIN", "MAX", "min", "avg"]));
    }
    if !name.ends_with("STORE") && g.chance(50) {
        args.push(g.kw("WITHSCORES"));
    }
    (args, Cmp::Exact)
}

fn count_arg(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(10) {
        0..=6 => g.int_in(0, 6),
        7 => g.int_in(100, 200),
        _ => g.pick(&["-1", "abc", "9223372036854775807", ""]),
    }
}

fn pop(g: &mut Gen) -> (Vec<Vec<u8>>, Cmp) {
    match g.rng.below(6) {
        0 | 1 => {
            let mut args = vec![w(if g.chance(50) { "ZPOPMIN" } else { "ZPOPMAX" }), key(g)];
            if g.chance(50) {
                args.push(count_arg(g));
            }
            (args, Cmp::Exact)
        }
        2 => {
            let mut args = vec![w("ZMPOP")];
            numkeys(g, &mut args);
            args.push(g.pick(&["MIN", "MAX", "min", "max", "LEFT"]));
            if g.chance(50) {
                args.push(g.kw("COUNT"));
                args.push(count_arg(g));
            }
            (args, Cmp::Exact)
        }
        3 | 4 => {
            let mut args = vec![w(if g.chance(50) { "BZPOPMIN" } else { "BZPOPMAX" })];
            for _ in 0..g.rng.range(1, 3) {
                args.push(key(g));
            }
            args.push(timeout(g));
            (args, Cmp::Blocking)
        }
        _ => {
            let mut args = vec![w("BZMPOP"), timeout(g)];
            numkeys(g, &mut args);
            args.push(g.pick(&["MIN", "MAX", "min", "RIGHT"]));
            if g.chance(50) {
                args.push(g.kw("COUNT"));
                args.push(g.pick(&["1", "2", "10", "0", "-1", "abc"]));
            }
            (args, Cmp::Blocking)
        }
    }
}

/// A timeout short enough to expire quickly on an empty key, or an invalid one.
fn timeout(g: &mut Gen) -> Vec<u8> {
    if g.chance(85) {
        g.pick(&["0.01", "0.005", "0.02"])
    } else {
        g.pick(&["-1", "abc", "inf", "1e20", "", "-0.5"])
    }
}

fn zrandmember(g: &mut Gen) -> (Vec<Vec<u8>>, Cmp) {
    let mut args = vec![w("ZRANDMEMBER"), key(g)];
    if g.chance(75) {
        args.push(match g.rng.below(10) {
            0..=5 => g.int_in(-6, 8),
            6 | 7 => g.int_in(100, 160),
            _ => g.pick(&["abc", "-9223372036854775808", "9223372036854775807", "-200"]),
        });
        if g.chance(50) {
            args.push(g.pick(&["WITHSCORES", "withscores", "junk"]));
        }
    }
    (args, Cmp::RandMember)
}

fn zscan(g: &mut Gen) -> (Vec<Vec<u8>>, Cmp) {
    let mut args = vec![w("ZSCAN"), key(g), if g.chance(85) { w("0") } else { g.pick(&["1", "7", "abc", "-1", ""]) }];
    if g.chance(40) {
        args.push(g.kw("MATCH"));
        args.push(g.pick(&["*", "a*", "m?", "*1*", "[a-c]", "n*"]));
    }
    if g.chance(40) {
        args.push(g.kw("COUNT"));
        args.push(g.pick(&["1", "5", "100", "0", "abc"]));
    }
    (args, Cmp::Scan)
}

fn config_set(g: &mut Gen) -> (Vec<Vec<u8>>, Cmp) {
    let args = if g.chance(60) {
        vec![w("CONFIG"), w("SET"), w("zset-max-listpack-entries"), g.pick(&["0", "1", "2", "4", "8", "16", "128"])]
    } else {
        vec![w("CONFIG"), w("SET"), w("zset-max-listpack-value"), g.pick(&["0", "1", "3", "8", "64"])]
    };
    (args, Cmp::Config)
}

fn exact(args: Vec<Vec<u8>>) -> (Vec<Vec<u8>>, Cmp) {
    (args, Cmp::Exact)
}

const OPS: &[Op<Cmp>] = &[
    op(16, zadd),
    op(2, zadd_many),
    op(4, |g| exact(vec![w("ZINCRBY"), key(g), score(g), member(g)])),
    op(6, |g| exact(with_members(vec![w("ZREM"), key(g)], g, 1, 4))),
    op(3, |g| exact(vec![w("ZCARD"), key(g)])),
    op(4, |g| exact(vec![w("ZSCORE"), key(g), member(g)])),
    op(2, |g| exact(with_members(vec![w("ZMSCORE"), key(g)], g, 1, 4))),
    op(3, |g| exact(vec![w(if g.chance(50) { "ZRANK" } else { "ZREVRANK" }), key(g), member(g)])),
    op(3, |g| exact(vec![w("ZCOUNT"), key(g), bound(g), bound(g)])),
    op(3, |g| (vec![w("ZLEXCOUNT"), lex_key(g), lex_bound(g), lex_bound(g)], Cmp::LexRead(1))),
    op(4, zadd_lex),
    op(1, |g| exact(with_members(vec![w("ZREM"), w(LEX_KEY)], g, 1, 4))),
    op(10, |g| zrange(g, false)),
    op(3, |g| zrange(g, true)),
    op(6, old_range),
    op(2, |g| exact(vec![w("ZREMRANGEBYRANK"), key(g), index(g), index(g)])),
    op(2, |g| exact(vec![w("ZREMRANGEBYSCORE"), key(g), bound(g), bound(g)])),
    op(2, |g| (vec![w("ZREMRANGEBYLEX"), lex_key(g), lex_bound(g), lex_bound(g)], Cmp::LexWrite(1))),
    op(6, pop),
    op(4, zrandmember),
    op(7, algebra),
    op(3, zscan),
    op(1, config_set),
    // Sets are inputs of ZUNION and friends; other types give WRONGTYPE.
    op(2, |g| exact(with_members(vec![w("SADD"), key(g)], g, 1, 4))),
    op(1, |g| exact(vec![w("SET"), key(g), g.value()])),
    op(1, |g| exact(vec![w("HSET"), key(g), w("f"), w("v")])),
    op(1, |g| exact(vec![w("GET"), key(g)])),
    op(4, |g| exact(vec![w("DEL"), key(g)])),
    op(1, |g| exact(vec![w("TYPE"), key(g)])),
    op(5, |g| exact(vec![w("OBJECT"), g.kw("ENCODING"), key(g)])),
    op(1, |g| exact(vec![w("EXPIRE"), key(g), g.pick(&["100", "1000"])])),
    op(1, |g| (vec![w("TTL"), key(g)], Cmp::Ttl)),
    op(1, |g| exact(vec![w("RENAME"), key(g), key(g)])),
    op(1, |g| exact(vec![w("COPY"), key(g), key(g), w("REPLACE")])),
];

/// The bulk strings of a flat array, or of an array of pairs.
fn flatten(reply: &Reply) -> Option<Vec<Vec<u8>>> {
    let Reply::Array(Some(items)) = reply else { return None };
    let mut out = Vec::new();
    for item in items {
        match item {
            Reply::Bulk(Some(b)) | Reply::Double(b) => out.push(b.clone()),
            Reply::Array(Some(pair)) => {
                for p in pair {
                    match p {
                        Reply::Bulk(Some(b)) | Reply::Double(b) => out.push(b.clone()),
                        _ => return None,
                    }
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A Differ plus side connections: `side` speaks the stream's protocol (commands whose
/// replies are compared by meaning), `probe` RESP2 (state queries).
struct Stream {
    d: Differ,
    side: (Conn, Conn),
    probe: (Conn, Conn),
    index: usize,
    /// How often each comparison path ran (printed with `FERROKV_ZSET_STATS`).
    paths: BTreeMap<&'static str, usize>,
}

impl Stream {
    fn new(label: &str, seed: u64, ferrokv_args: &[&str], resp3: bool) -> Stream {
        let (d, side) = family::open(label, seed, ferrokv_args, resp3);
        let probe = (d.ferrokv.conn(), d.redis.conn());
        Stream { d, side, probe, index: 0, paths: BTreeMap::new() }
    }

    fn send(&mut self, args: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        (self.side.0.send(args), self.side.1.send(args))
    }

    /// A state query on both servers, whose answers must be identical.
    fn probe_same(&mut self, args: &[Vec<u8>]) -> Result<Vec<u8>, String> {
        let (f, r) = (self.probe.0.send(args), self.probe.1.send(args));
        if f != r {
            return Err(self.fail(args, &f, &r, "probe replies differ"));
        }
        Ok(r)
    }

    fn fail(&mut self, args: &[Vec<u8>], f: &[u8], r: &[u8], why: &str) -> String {
        let mut report = family::report_head(&self.d, "zset", self.index, args, f, r, why);
        let named: BTreeSet<Vec<u8>> =
            args.iter().filter(|a| KEYS.iter().any(|k| k.as_bytes() == a.as_slice())).cloned().collect();
        for key in named {
            let q = [w("ZRANGE"), key.clone(), w("0"), w("-1"), w("WITHSCORES")];
            let (f, r) = (self.probe.0.send(&q), self.probe.1.send(&q));
            let e = [w("OBJECT"), w("ENCODING"), key.clone()];
            let (fe, re) = (self.probe.0.send(&e), self.probe.1.send(&e));
            report += &format!(
                "  key {}:\n    ferrokv: {} {}\n    redis:   {} {}\n",
                show(&key),
                show(&fe),
                show(&f),
                show(&re),
                show(&r)
            );
        }
        report += &family::report_replay(&self.d, "diff_zsets");
        report
    }

    fn encoding(&mut self, key: &[u8]) -> Result<String, String> {
        let r = self.probe_same(&[w("OBJECT"), w("ENCODING"), key.to_vec()])?;
        Ok(family::bulk_text(&r))
    }

    /// The members and scores (as text) of the sorted set at `key` on redis.
    fn contents(&mut self, key: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let q = [w("ZRANGE"), key.to_vec(), w("0"), w("-1"), w("WITHSCORES")];
        let reply = parse_one(&self.probe.1.send(&q)).unwrap_or(Reply::Null);
        let flat = flatten(&reply).unwrap_or_default();
        flat.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].clone(), c[1].clone())).collect()
    }

    /// Whether Redis answers lex ranges over `key` deterministically: not a
    /// `skiplist` whose scores differ.
    fn lex_deterministic(&mut self, key: &[u8]) -> Result<bool, String> {
        if self.encoding(key)? != "skiplist" {
            return Ok(true);
        }
        *self.paths.entry("lex over a skiplist").or_default() += 1;
        let first = self.probe_same(&[w("ZRANGE"), key.to_vec(), w("0"), w("0"), w("WITHSCORES")])?;
        let last = self.probe_same(&[w("ZRANGE"), key.to_vec(), w("-1"), w("-1"), w("WITHSCORES")])?;
        let score = |b: &[u8]| flatten(&parse_one(b).unwrap_or(Reply::Null)).and_then(|v| v.get(1).cloned());
        Ok(score(&first) == score(&last))
    }

    fn step(&mut self, args: &[Vec<u8>], cmp: Cmp) -> Result<(), String> {
        self.index += 1;
        match cmp {
            Cmp::Exact | Cmp::Blocking => self.d.check(0, args, Check::Exact),
            Cmp::Config => {
                self.d.check(0, args, Check::Exact)?;
                // Other shards pick up a CONFIG SET at their next tick: wait for it.
                std::thread::sleep(std::time::Duration::from_millis(120));
                Ok(())
            }
            Cmp::Ttl => self.d.check(0, args, Check::Within(1)),
            Cmp::LexRead(src) | Cmp::LexWrite(src) => {
                let key = args.get(src).cloned().unwrap_or_default();
                if self.lex_deterministic(&key)? {
                    *self.paths.entry("lex exact").or_default() += 1;
                    return self.d.check(0, args, Check::Exact);
                }
                *self.paths.entry("lex over mixed skiplist scores").or_default() += 1;
                if matches!(cmp, Cmp::LexWrite(_)) {
                    return Ok(());
                }
                let (f, r) = self.send(args);
                if f.first() != r.first() {
                    return Err(self.fail(args, &f, &r, "different reply types"));
                }
                Ok(())
            }
            Cmp::RandMember => self.random(args),
            Cmp::Scan => self.scan(args),
        }
    }

    fn random(&mut self, args: &[Vec<u8>]) -> Result<(), String> {
        let key = args[1].clone();
        let before = self.contents(&key);
        let (f, r) = self.send(args);
        if f == r {
            *self.paths.entry("zrandmember identical").or_default() += 1;
            return Ok(());
        }
        *self.paths.entry("zrandmember by membership").or_default() += 1;
        let count = family::count_arg(args);
        let withscores = args.len() == 4;
        let check = |bytes: &[u8]| -> Result<(), String> {
            let reply = parse_one(bytes).map_err(|e| e.to_string())?;
            let Some(n) = count else {
                return match reply {
                    Reply::Bulk(Some(m)) if before.contains_key(&m) => Ok(()),
                    _ => Err("not a member".into()),
                };
            };
            let flat = flatten(&reply).ok_or("not a list of members")?;
            let picked: Vec<Vec<u8>> = if withscores {
                for pair in flat.chunks(2) {
                    if pair.len() != 2 || before.get(&pair[0]) != Some(&pair[1]) {
                        return Err(format!("{} is not a member with that score", show(&pair[0])));
                    }
                }
                flat.chunks(2).map(|p| p[0].clone()).collect()
            } else {
                flat
            };
            if let Some(m) = picked.iter().find(|m| !before.contains_key(*m)) {
                return Err(format!("{} is not a member", show(m)));
            }
            let expected = family::picks_for(n, before.len());
            if picked.len() as u64 != expected {
                return Err(format!("{} members for a count of {n}", picked.len()));
            }
            if n >= 0 && picked.iter().collect::<BTreeSet<_>>().len() != picked.len() {
                return Err("repeated members for a positive count".into());
            }
            if n >= 0 && n as u64 >= before.len() as u64 {
                return Err("a count covering the set lists it in order".into());
            }
            Ok(())
        };
        if f.first() != r.first() {
            return Err(self.fail(args, &f, &r, "different reply types"));
        }
        if let Err(why) = check(&r) {
            return Err(self.fail(args, &f, &r, &format!("redis: {why}")));
        }
        check(&f).map_err(|why| self.fail(args, &f, &r, &why))
    }

    fn scan(&mut self, args: &[Vec<u8>]) -> Result<(), String> {
        if self.encoding(&args[1])? != "skiplist" {
            *self.paths.entry("zscan exact").or_default() += 1;
            return self.d.check(0, args, Check::Exact);
        }
        *self.paths.entry("zscan of a skiplist").or_default() += 1;
        let pairs = |items: &Reply| flatten(items).map(|v| v.chunks(2).map(|c| c.to_vec()).collect::<Vec<_>>());
        family::compare_scan(&mut self.side, args, "ZSCAN", "pairs", pairs)
            .map_err(|m| self.fail(args, &m.ferrokv, &m.redis, &m.why))
    }

    /// Every key's encoding and contents.
    fn final_state(&mut self) -> Result<(), String> {
        if std::env::var_os("FERROKV_ZSET_STATS").is_some() {
            // What the stream made redis do: calls and failures per command.
            let info = self.probe.1.send(&[w("INFO"), w("commandstats")]);
            eprintln!("{} seed {}: {:?}\n{}", self.d.label, self.d.seed, self.paths, String::from_utf8_lossy(&info));
        }
        for key in KEYS.iter().chain(&["missing", LEX_KEY]) {
            let key = w(key);
            self.step(&[w("OBJECT"), w("ENCODING"), key.clone()], Cmp::Exact)?;
            self.step(&[w("ZCARD"), key.clone()], Cmp::Exact)?;
            self.step(&[w("ZRANGE"), key.clone(), w("0"), w("-1"), w("WITHSCORES")], Cmp::Exact)?;
        }
        self.d.final_state(true)
    }
}

impl FamilyStream for Stream {
    type Cmp = Cmp;

    fn index(&self) -> usize {
        self.index
    }

    fn step(&mut self, args: &[Vec<u8>], cmp: Cmp) -> Result<(), String> {
        Stream::step(self, args, cmp)
    }

    fn finish(&mut self) -> Result<(), String> {
        self.final_state()
    }
}

const ZSETS: Family<Cmp> = Family {
    seeds: SEEDS,
    ops: OPS,
    setup: &[],
    mutable: |_, cmp| matches!(cmp, Cmp::Exact | Cmp::LexRead(_)),
    log_var: "FERROKV_ZSET_LOG",
};

fn run(label: &str, ferrokv_args: &[&str], resp3: bool, default_steps: usize) {
    family::run(&ZSETS, default_steps, |seed| Stream::new(label, seed, ferrokv_args, resp3));
}

#[test]
fn zsets() {
    run("zsets", &[], false, 3000);
}

#[test]
fn zsets_resp3() {
    run("zsets_resp3", &[], true, 3000);
}

/// Keys on two shards: ZUNIONSTORE and friends, ZRANGESTORE, ZMPOP, RENAME and COPY
/// cross them.
#[test]
fn zsets_two_threads() {
    run("zsets_two_threads", &["--server-threads", "2"], false, 2000);
}
