//! Differential tests of the hash commands: seeded random streams of HSET ... HSCAN
//! mixed with string and key commands on the same keys (WRONGTYPE), edge arguments
//! and CONFIG SET of `hash-max-listpack-entries` / `hash-max-listpack-value`, sent to
//! ferrokv-server and redis-server 7.0 side by side.
//!
//! Most replies must be byte-identical, OBJECT ENCODING included (it shows every
//! listpack → hashtable conversion). What cannot be identical is compared by meaning:
//! - HKEYS, HVALS, HGETALL of a `hashtable` hash: Redis lists its dict in an order no
//!   one can reproduce, so these compare as multisets (pairs for HGETALL). A
//!   `listpack` hash must list in exactly Redis's order.
//! - HSCAN of a `hashtable` hash from cursor 0: each server is iterated to cursor 0
//!   and the sets of pairs must be equal (other cursors: the reply shape). A
//!   `listpack` hash answers in one exact reply.
//! - HRANDFIELD: the same reply kind and length, members of the hash with their
//!   values, distinct for positive counts; the whole hash in order when the count
//!   covers a `listpack` hash.
//!
//! Replay: `FERROKV_SEED=n cargo test --release -p ferrokv-tests --test diff_hashes -- <name>`;
//! `FERROKV_HASH_LOG=1` prints every stream command (with `--nocapture`).

use std::collections::{BTreeMap, BTreeSet};

use ferrokv_tests::diff::family::{self, op, Family, FamilyStream, Op};
use ferrokv_tests::diff::{w, Check, Differ, Gen, KEYS};
use ferrokv_tests::resp::{parse_one, show};
use ferrokv_tests::{Conn, Reply};

const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6];

/// How a command's replies are compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Exact,
    /// TTLs: within a second.
    Ttl,
    /// HKEYS / HVALS / HGETALL.
    Listing,
    /// HSCAN.
    Scan,
    /// HRANDFIELD.
    Random,
}

/// A field: often from a small pool (so that commands meet), else many distinct ones
/// (to pass the entry limit), integers (stored as such in a listpack), binary bytes,
/// and lengths around the 64-byte value limit.
fn field(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(20) {
        0..=8 => g.pick(&["f1", "f2", "f3", "f4", "name", "1", "-1", "100", "007", "", "12345678901"]),
        9..=12 => format!("g{}", g.rng.below(300)).into_bytes(),
        13..=14 => {
            let len = 1 + g.rng.below(10) as usize;
            g.rng.bytes(len, b"a\x00\r\n\xff ")
        }
        15..=16 => g.int_in(-200, 200),
        17..=18 => {
            let len = 60 + g.rng.below(8) as usize;
            g.rng.bytes(len, b"xy")
        }
        _ => {
            let len = 100 + g.rng.below(200) as usize;
            g.rng.bytes(len, b"long")
        }
    }
}

/// A value: the shared generator (numbers, text, binary, long strings) or lengths
/// around the 64-byte limit.
fn value(g: &mut Gen) -> Vec<u8> {
    if g.chance(10) {
        let len = 60 + g.rng.below(8) as usize;
        return g.rng.bytes(len, b"vw");
    }
    g.value()
}

/// A field holding a counter more often than not.
fn counter_field(g: &mut Gen) -> Vec<u8> {
    if g.chance(70) {
        g.pick(&["c1", "c2", "f1", "1"])
    } else {
        field(g)
    }
}

fn fields(g: &mut Gen, lo: i64, hi: i64) -> Vec<Vec<u8>> {
    let n = g.rng.range(lo, hi);
    (0..n).map(|_| field(g)).collect()
}

fn hset(g: &mut Gen, name: &str) -> Vec<Vec<u8>> {
    let mut args = vec![w(name), g.key()];
    for _ in 0..g.rng.range(1, 4) {
        args.push(field(g));
        args.push(value(g));
    }
    args
}

/// Many new fields at once: past the entry limit in one command.
fn hset_many(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("HSET"), g.key()];
    let base = g.rng.below(1000);
    for i in 0..g.rng.range(20, 160) as u64 {
        args.push(format!("m{}", base + i).into_bytes());
        args.push(g.int_in(0, 100000));
    }
    args
}

fn hrandfield(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("HRANDFIELD"), g.key()];
    if g.chance(20) {
        return args;
    }
    let with_values = g.chance(50);
    let count = match g.rng.below(10) {
        0..=6 => g.int_in(-12, 12),
        7 => g.int_in(-300, 300),
        // No huge negative count that succeeds: it would build a reply of that size.
        _ if with_values => g.pick(&[
            "9223372036854775807",
            "4611686018427387903",
            "4611686018427387904",
            "-4611686018427387904",
            "-9223372036854775808",
            "abc",
            "1.5",
        ]),
        _ => g.pick(&["9223372036854775807", "4611686018427387904", "-9223372036854775808", "abc", "", "1.5"]),
    };
    args.push(count);
    if with_values {
        args.push(g.pick(&["WITHVALUES", "withvalues", "WithValues", "WITHVALUE", "x"]));
        if g.chance(3) {
            args.push(g.kw("WITHVALUES"));
        }
    }
    args
}

fn hscan(g: &mut Gen) -> Vec<Vec<u8>> {
    let cursor = if g.chance(90) { w("0") } else { g.pick(&["1", "-1", "abc", "", " 0", "18446744073709551616", "7"]) };
    let mut args = vec![w("HSCAN"), g.key(), cursor];
    let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
    if g.chance(40) {
        groups.push(vec![g.kw("MATCH"), g.pick(&["*", "f*", "g1*", "?", "*1", "[a-f]*", "m*", "nomatch", "[abc"])]);
    }
    if g.chance(40) {
        groups.push(vec![g.kw("COUNT"), g.pick(&["1", "2", "5", "10", "100", "1000", "0", "-1", "abc"])]);
    }
    if g.chance(3) {
        groups.push(vec![g.kw("TYPE"), w("hash")]);
    }
    if g.chance(50) {
        groups.reverse();
    }
    args.extend(groups.into_iter().flatten());
    args
}

fn config_set(g: &mut Gen) -> Vec<Vec<u8>> {
    if g.chance(50) {
        let n = g.pick(&["0", "1", "2", "4", "8", "16", "128", "512"]);
        vec![w("CONFIG"), w("SET"), w("hash-max-listpack-entries"), n]
    } else {
        let n = g.pick(&["0", "1", "4", "8", "16", "64", "100"]);
        vec![w("CONFIG"), w("SET"), w("hash-max-listpack-value"), n]
    }
}

const OPS: &[Op<Cmp>] = &[
    op(12, |g| hset(g, "HSET"), Cmp::Exact),
    op(2, hset_many, Cmp::Exact),
    op(3, |g| hset(g, "HMSET"), Cmp::Exact),
    op(3, |g| vec![w("HSETNX"), g.key(), field(g), value(g)], Cmp::Exact),
    op(8, |g| vec![w("HGET"), g.key(), field(g)], Cmp::Exact),
    op(
        4,
        |g| {
            let mut args = vec![w("HMGET"), g.key()];
            args.extend(fields(g, 1, 5));
            args
        },
        Cmp::Exact,
    ),
    op(
        6,
        |g| {
            let mut args = vec![w("HDEL"), g.key()];
            args.extend(fields(g, 1, 4));
            args
        },
        Cmp::Exact,
    ),
    op(3, |g| vec![w("HEXISTS"), g.key(), field(g)], Cmp::Exact),
    op(3, |g| vec![w("HLEN"), g.key()], Cmp::Exact),
    op(3, |g| vec![w("HSTRLEN"), g.key(), field(g)], Cmp::Exact),
    op(3, |g| vec![w("HKEYS"), g.key()], Cmp::Listing),
    op(3, |g| vec![w("HVALS"), g.key()], Cmp::Listing),
    op(5, |g| vec![w("HGETALL"), g.key()], Cmp::Listing),
    op(5, |g| vec![w("HINCRBY"), g.key(), counter_field(g), g.int()], Cmp::Exact),
    op(5, |g| vec![w("HINCRBYFLOAT"), g.key(), counter_field(g), g.float()], Cmp::Exact),
    op(4, hrandfield, Cmp::Random),
    op(3, hscan, Cmp::Scan),
    op(1, config_set, Cmp::Exact),
    // Other types and whole keys on the same keys.
    op(3, |g| vec![w("SET"), g.key(), g.value()], Cmp::Exact),
    op(2, |g| vec![w("GET"), g.key()], Cmp::Exact),
    op(2, |g| vec![w("DEL"), g.key()], Cmp::Exact),
    op(1, |g| vec![w("TYPE"), g.key()], Cmp::Exact),
    op(4, |g| vec![w("OBJECT"), g.kw("ENCODING"), g.key()], Cmp::Exact),
    op(1, |g| vec![w("EXISTS"), g.key()], Cmp::Exact),
    op(1, |g| vec![w("EXPIRE"), g.key(), g.pick(&["100", "1000", "10000"])], Cmp::Exact),
    op(1, |g| vec![w("TTL"), g.key()], Cmp::Ttl),
    op(1, |g| vec![w("RENAME"), g.key(), g.key()], Cmp::Exact),
    op(1, |g| vec![w("COPY"), g.key(), g.key(), w("REPLACE")], Cmp::Exact),
];

/// A Differ plus a side connection pair for the comparisons it cannot make.
struct Stream {
    d: Differ,
    /// `.0` to ferrokv, `.1` to redis.
    side: (Conn, Conn),
    resp3: bool,
    index: usize,
    /// Comparisons by kind, printed with `FERROKV_DIFF_STATS=1`.
    stats: BTreeMap<&'static str, usize>,
}

impl Stream {
    fn new(label: &str, seed: u64, ferrokv_args: &[&str], resp3: bool) -> Stream {
        let (d, side) = family::open(label, seed, ferrokv_args, resp3);
        Stream { d, side, resp3, index: 0, stats: BTreeMap::new() }
    }

    fn send(&mut self, args: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        (self.side.0.send(args), self.side.1.send(args))
    }

    /// A mismatch report, with the contents of the command's key on both servers.
    fn fail(&mut self, args: &[Vec<u8>], f: &[u8], r: &[u8], why: &str) -> String {
        let mut report = family::report_head(&self.d, "hash", self.index, args, f, r, why);
        if let Some(key) = args.get(1).filter(|_| args.len() > 2 || !args[0].eq_ignore_ascii_case(b"OBJECT")) {
            let key = if args[0].eq_ignore_ascii_case(b"OBJECT") { args[2].clone() } else { key.clone() };
            let dump = [b"HGETALL".to_vec(), key.clone()];
            let (f, r) = self.send(&dump);
            report += &format!("  key {}:\n    ferrokv: {}\n    redis:   {}\n", show(&key), show(&f), show(&r));
        }
        report += &family::report_replay(&self.d, "diff_hashes");
        report
    }

    /// The key's OBJECT ENCODING, which must be the same on both servers.
    fn encoding(&mut self, key: &[u8]) -> Result<String, String> {
        let args = vec![w("OBJECT"), w("ENCODING"), key.to_vec()];
        let (f, r) = self.send(&args);
        if f != r {
            return Err(self.fail(&args, &f, &r, "encodings differ"));
        }
        Ok(family::bulk_text(&r))
    }

    /// The hash at `key` on redis, field → value.
    fn contents(&mut self, key: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let reply = parse_one(&self.side.1.send(&[b"HGETALL".as_slice(), key])).unwrap_or(Reply::Null);
        pairs_of(&reply).unwrap_or_default().into_iter().collect()
    }

    fn step(&mut self, args: &[Vec<u8>], cmp: Cmp) -> Result<(), String> {
        self.index += 1;
        match cmp {
            Cmp::Exact if args[0].eq_ignore_ascii_case(b"CONFIG") => {
                self.d.check(0, args, Check::Exact)?;
                // Other shards pick up a CONFIG SET at their next tick (hz 10), not
                // before the next command they run for another shard's client: wait
                // for it. Drop this when the server refreshes its config per command.
                std::thread::sleep(std::time::Duration::from_millis(120));
                Ok(())
            }
            Cmp::Exact => self.d.check(0, args, Check::Exact),
            Cmp::Ttl => self.d.check(0, args, Check::Within(1)),
            Cmp::Listing => self.listing(args),
            Cmp::Scan => self.scan(args),
            Cmp::Random => self.random(args),
        }
    }

    fn listing(&mut self, args: &[Vec<u8>]) -> Result<(), String> {
        if args.len() != 2 || self.encoding(&args[1])? != "hashtable" {
            return self.d.check(0, args, Check::Exact);
        }
        *self.stats.entry("hashtable listings").or_default() += 1;
        let (f, r) = self.send(args);
        if f == r {
            return Ok(());
        }
        let hgetall = args[0].eq_ignore_ascii_case(b"HGETALL");
        let (fr, rr) = (parse_one(&f), parse_one(&r));
        let same = match (&fr, &rr) {
            _ if f[0] != r[0] => false,
            (Ok(x), Ok(y)) if hgetall => sorted_pairs(x).is_some() && sorted_pairs(x) == sorted_pairs(y),
            (Ok(Reply::Array(Some(x))), Ok(Reply::Array(Some(y)))) => {
                let (mut x, mut y) = (x.clone(), y.clone());
                x.sort();
                y.sort();
                x == y
            }
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(self.fail(args, &f, &r, "different contents of a hashtable hash"))
        }
    }

    fn scan(&mut self, args: &[Vec<u8>]) -> Result<(), String> {
        if args.len() < 3 || self.encoding(&args[1])? != "hashtable" {
            return self.d.check(0, args, Check::Exact);
        }
        if args[2] == b"0" {
            *self.stats.entry("hashtable full scans").or_default() += 1;
        }
        family::compare_scan(&mut self.side, args, "HSCAN", "pairs", pairs_of)
            .map_err(|m| self.fail(args, &m.ferrokv, &m.redis, &m.why))
    }

    fn random(&mut self, args: &[Vec<u8>]) -> Result<(), String> {
        let (f, r) = self.send(args);
        if f == r {
            return Ok(());
        }
        *self.stats.entry("random picks compared by membership").or_default() += 1;
        let key = args[1].clone();
        let contents = self.contents(&key);
        let encoding = self.encoding(&key)?;
        let resp3 = self.resp3;
        let check = |bytes: &[u8]| -> Result<(usize, Vec<Vec<u8>>), String> {
            let reply = parse_one(bytes).map_err(|e| e.to_string())?;
            let member = |f: &[u8], v: Option<&[u8]>| -> Result<(), String> {
                match contents.get(f) {
                    None => Err(format!("{} is not a field", show(f))),
                    Some(x) if v.is_some_and(|v| v != x.as_slice()) => Err(format!("wrong value for {}", show(f))),
                    _ => Ok(()),
                }
            };
            match reply {
                Reply::Bulk(Some(field)) if args.len() == 2 => {
                    member(&field, None)?;
                    Ok((1, vec![field]))
                }
                Reply::Array(Some(items)) if args.len() >= 3 => {
                    let with_values = args.len() == 4;
                    let mut picked = Vec::new();
                    if with_values && !resp3 {
                        for pair in items.chunks(2) {
                            let [Reply::Bulk(Some(f)), Reply::Bulk(Some(v))] = pair else {
                                return Err("not field/value bulks".into());
                            };
                            member(f, Some(v))?;
                            picked.push(f.clone());
                        }
                    } else {
                        for item in &items {
                            match item {
                                Reply::Array(Some(pair)) if with_values => {
                                    let [Reply::Bulk(Some(f)), Reply::Bulk(Some(v))] = pair.as_slice() else {
                                        return Err("not a [field, value] pair".into());
                                    };
                                    member(f, Some(v))?;
                                    picked.push(f.clone());
                                }
                                Reply::Bulk(Some(f)) if !with_values => {
                                    member(f, None)?;
                                    picked.push(f.clone());
                                }
                                _ => return Err("unexpected element".into()),
                            }
                        }
                    }
                    Ok((items.len(), picked))
                }
                _ => Err("replies differ and are not random picks".into()),
            }
        };
        let verdict = (|| {
            let (fl, fp) = check(&f)?;
            let (rl, _) = check(&r).map_err(|e| format!("redis: {e}"))?;
            if fl != rl {
                return Err("different lengths".to_string());
            }
            let count = family::count_arg(args).unwrap_or(0);
            if count > 0 {
                let unique: BTreeSet<&Vec<u8>> = fp.iter().collect();
                if unique.len() != fp.len() {
                    return Err("repeated fields for a positive count".to_string());
                }
                if count as usize >= contents.len() && encoding == "listpack" {
                    return Err("a count covering a listpack hash must list it in order".to_string());
                }
            }
            Ok(())
        })();
        verdict.map_err(|why| self.fail(args, &f, &r, &why))
    }

    /// Every key's encoding and contents.
    fn final_state(&mut self) -> Result<(), String> {
        for key in KEYS.iter().chain(&["missing"]) {
            let key = w(key);
            self.step(&[w("OBJECT"), w("ENCODING"), key.clone()], Cmp::Exact)?;
            self.step(&[w("HLEN"), key.clone()], Cmp::Exact)?;
            self.step(&[w("HGETALL"), key.clone()], Cmp::Listing)?;
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
        self.final_state()?;
        family::print_stats(&self.d.label, self.d.seed, &self.stats);
        Ok(())
    }
}

/// The field/value pairs of an HGETALL-like reply (flat array or map), None for other
/// replies.
fn pairs_of(reply: &Reply) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let bulk = |r: &Reply| match r {
        Reply::Bulk(Some(b)) => Some(b.clone()),
        _ => None,
    };
    match reply {
        Reply::Array(Some(items)) if items.len() % 2 == 0 => {
            items.chunks(2).map(|p| Some((bulk(&p[0])?, bulk(&p[1])?))).collect()
        }
        Reply::Map(pairs) => pairs.iter().map(|(k, v)| Some((bulk(k)?, bulk(v)?))).collect(),
        _ => None,
    }
}

fn sorted_pairs(reply: &Reply) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut pairs = pairs_of(reply)?;
    pairs.sort();
    Some(pairs)
}

const HASHES: Family<Cmp> = Family {
    seeds: SEEDS,
    ops: OPS,
    // Redis 7.0's built-in default, set explicitly so that a wrong default in ferrokv
    // fails `default_thresholds` alone.
    setup: &[(&["CONFIG", "SET", "hash-max-listpack-entries", "512"], Cmp::Exact)],
    // CONFIG SET's own argument errors are not what this stream tests.
    mutable: |args, _| args[0] != b"CONFIG",
    log_var: "FERROKV_HASH_LOG",
};

fn run(label: &str, ferrokv_args: &[&str], resp3: bool, default_steps: usize) {
    family::run(&HASHES, default_steps, |seed| Stream::new(label, seed, ferrokv_args, resp3));
}

#[test]
fn hashes() {
    run("hashes", &[], false, 3000);
}

#[test]
fn hashes_resp3() {
    run("hashes_resp3", &[], true, 3000);
}

/// Keys on two shards: RENAME and COPY move hashes between them.
#[test]
fn hashes_two_threads() {
    run("hashes_two_threads", &["--server-threads", "2"], false, 2000);
}

/// The thresholds' defaults (512 entries, 64 bytes in Redis 7.0) and where they
/// convert a hash.
#[test]
fn default_thresholds() {
    let mut s = Stream::new("default_thresholds", 0, &[], false);
    let run = |s: &mut Stream| -> Result<(), String> {
        for name in ["hash-max-listpack-entries", "hash-max-listpack-value"] {
            s.step(&[w("CONFIG"), w("GET"), w(name)], Cmp::Exact)?;
        }
        for n in [64usize, 65, 128, 129, 512, 513] {
            let key = format!("h{n}").into_bytes();
            let mut args = vec![w("HSET"), key.clone()];
            for i in 0..n {
                args.push(format!("f{i}").into_bytes());
                args.push(w("v"));
            }
            s.step(&args, Cmp::Exact)?;
            s.step(&[w("OBJECT"), w("ENCODING"), key.clone()], Cmp::Exact)?;
            s.step(&[w("HSET"), key.clone(), w("long"), vec![b'x'; n]], Cmp::Exact)?;
            s.step(&[w("OBJECT"), w("ENCODING"), key], Cmp::Exact)?;
        }
        Ok(())
    };
    if let Err(report) = run(&mut s) {
        panic!("{report}");
    }
}
