//! Differential tests of the set commands: seeded random streams of SADD ... SSCAN mixed
//! with string and key commands on the same keys (WRONGTYPE), edge arguments, CONFIG
//! SET of `set-max-intset-entries`, in RESP2 and RESP3, sent to ferrokv-server and
//! redis-server 7.0 side by side.
//!
//! Most replies must be byte-identical, OBJECT ENCODING included (it shows every intset
//! → hashtable conversion, and which encoding a STORE or SPOP leaves). What cannot be
//! identical is compared by meaning:
//! - listings of a `hashtable` set (SMEMBERS, SINTER, SUNION, SDIFF, SSCAN): Redis lists
//!   its dict in an order no one can reproduce, so they compare as sets, of the same
//!   reply type. Where Redis's order comes from an intset (SMEMBERS of an intset, SINTER
//!   led by an intset, a union or difference that Redis builds as an intset, which a
//!   STORE of the same command into a scratch key shows) the order must be identical:
//!   ascending.
//! - SSCAN of a `hashtable` set from cursor 0 iterates both servers to cursor 0 and
//!   compares the members seen; from another cursor only the reply shape.
//! - SRANDMEMBER and SPOP: the same reply type and length, members of the set, distinct
//!   where Redis makes them distinct. After an SPOP that popped different members, both
//!   servers get `SADD key <both pops>` then `SREM key <redis's pop>`, which leaves them
//!   equal again (and each in the encoding Redis would have).
//!
//! Replay: `FERROKV_SEED=n cargo test --release -p ferrokv-tests --test diff_sets -- <name>`;
//! `FERROKV_SET_LOG=1` prints every stream command (with `--nocapture`);
//! `FERROKV_SET_PARANOID=1` compares every key's encoding after every command.

use std::collections::BTreeSet;

use ferrokv_tests::diff::family::{self, op, Family, FamilyStream, Op};
use ferrokv_tests::diff::{w, Check, Differ, Gen, KEYS};
use ferrokv_tests::resp::{parse_one, show};
use ferrokv_tests::{Conn, Reply};

const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6];

/// A key no stream command names: SUNIONSTORE / SDIFFSTORE into it show which
/// encoding Redis builds a result in.
const SCRATCH: &str = "diff-sets-scratch";

/// How a command's replies are compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Exact,
    /// TTLs: within a second.
    Ttl,
    /// SMEMBERS and SINTER: the order of the set that leads.
    Intersection,
    /// SUNION and SDIFF: the order of the result Redis builds.
    Built,
    Scan,
    RandMember,
    Pop,
}

/// A member: mostly from small pools (so that commands meet), integers around what
/// `string2ll` accepts, many distinct integers (to pass the intset limit), binary
/// bytes and long strings.
fn member(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(100) {
        0..=39 => g.int_in(-5, 25),
        40..=47 => g.pick(&[
            "-0",
            "01",
            "+1",
            " 1",
            "1 ",
            "1.0",
            "",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "65535",
            "-32769",
            "4294967296",
        ]),
        48..=72 => g.pick(&["a", "b", "c", "d", "e", "foo", "bar", "x1", "1x", "A"]),
        73..=87 => g.int_in(-100_000, 100_000),
        88..=93 => {
            let len = 1 + g.rng.below(12) as usize;
            g.rng.bytes(len, b"a\x00\r\n\xff\x80 *?[")
        }
        _ => {
            let len = 60 + g.rng.below(20) as usize;
            g.rng.bytes(len, b"abcdef")
        }
    }
}

fn members(g: &mut Gen, lo: i64, hi: i64) -> Vec<Vec<u8>> {
    let n = g.rng.range(lo, hi);
    (0..n).map(|_| member(g)).collect()
}

fn with_members(mut args: Vec<Vec<u8>>, g: &mut Gen, lo: i64, hi: i64) -> Vec<Vec<u8>> {
    args.extend(members(g, lo, hi));
    args
}

/// SADD of many integers (or a mix) at once, to cross the intset limit.
fn sadd_many(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("SADD"), g.key()];
    let n = g.rng.range(10, 70);
    let strings = g.chance(20);
    for _ in 0..n {
        args.push(if strings && g.chance(10) { member(g) } else { g.int_in(-1000, 1000) });
    }
    args
}

fn count(g: &mut Gen) -> Vec<u8> {
    if g.chance(85) {
        g.pick(&["0", "1", "2", "3", "5", "8", "20", "100", "-1", "-2", "-5", "-30"])
    } else {
        g.pick(&["abc", "", "1.5", "-9223372036854775808", "9223372036854775807", "01"])
    }
}

fn srandmember(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("SRANDMEMBER"), g.key()];
    if g.chance(75) {
        args.push(count(g));
    }
    args
}

fn spop(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("SPOP"), g.key()];
    if g.chance(60) {
        // SPOP takes no negative counts: those are errors.
        args.push(count(g));
    }
    args
}

fn keys(g: &mut Gen, name: &str, store: bool) -> Vec<Vec<u8>> {
    let mut args = vec![w(name)];
    if store {
        args.push(g.key());
    }
    args.extend(g.keys(1, 4));
    args
}

fn sintercard(g: &mut Gen) -> Vec<Vec<u8>> {
    let keys = g.keys(1, 4);
    let numkeys = if g.chance(90) { keys.len().to_string().into_bytes() } else { g.pick(&["0", "-1", "abc", "9"]) };
    let mut args = vec![w("SINTERCARD"), numkeys];
    args.extend(keys);
    if g.chance(40) {
        args.push(g.kw("LIMIT"));
        args.push(g.pick(&["0", "1", "2", "5", "-1", "abc"]));
    }
    args
}

fn sscan(g: &mut Gen) -> Vec<Vec<u8>> {
    let cursor = if g.chance(85) { w("0") } else { g.pick(&["1", "17", "abc", "-1", " 0", "18446744073709551616"]) };
    let mut args = vec![w("SSCAN"), g.key(), cursor];
    if g.chance(40) {
        args.push(g.kw("MATCH"));
        args.push(g.pick(&["*", "1*", "a*", "?", "[a-c]*", "*x*", "-*", "nomatch"]));
    }
    if g.chance(40) {
        args.push(g.kw("COUNT"));
        args.push(g.pick(&["1", "2", "5", "10", "100", "0", "-1", "abc"]));
    }
    args
}

fn config_set(g: &mut Gen) -> Vec<Vec<u8>> {
    let n = g.pick(&["0", "1", "2", "4", "8", "16", "64", "512"]);
    vec![w("CONFIG"), w("SET"), w("set-max-intset-entries"), n]
}

const OPS: &[Op<Cmp>] = &[
    op(14, |g| with_members(vec![w("SADD"), g.key()], g, 1, 5), Cmp::Exact),
    op(3, sadd_many, Cmp::Exact),
    op(7, |g| with_members(vec![w("SREM"), g.key()], g, 1, 5), Cmp::Exact),
    op(3, |g| vec![w("SCARD"), g.key()], Cmp::Exact),
    op(4, |g| vec![w("SISMEMBER"), g.key(), member(g)], Cmp::Exact),
    op(3, |g| with_members(vec![w("SMISMEMBER"), g.key()], g, 1, 4), Cmp::Exact),
    op(5, |g| vec![w("SMOVE"), g.key(), g.key(), member(g)], Cmp::Exact),
    op(5, |g| vec![w("SMEMBERS"), g.key()], Cmp::Intersection),
    op(4, |g| keys(g, "SINTER", false), Cmp::Intersection),
    op(3, sintercard, Cmp::Exact),
    op(3, |g| keys(g, "SINTERSTORE", true), Cmp::Exact),
    op(4, |g| keys(g, "SUNION", false), Cmp::Built),
    op(3, |g| keys(g, "SUNIONSTORE", true), Cmp::Exact),
    op(4, |g| keys(g, "SDIFF", false), Cmp::Built),
    op(3, |g| keys(g, "SDIFFSTORE", true), Cmp::Exact),
    op(4, srandmember, Cmp::RandMember),
    op(4, spop, Cmp::Pop),
    op(3, sscan, Cmp::Scan),
    op(1, config_set, Cmp::Exact),
    // Other types and whole keys on the same keys.
    op(3, |g| vec![w("SET"), g.key(), g.value()], Cmp::Exact),
    op(2, |g| vec![w("GET"), g.key()], Cmp::Exact),
    op(2, |g| vec![w("DEL"), g.key()], Cmp::Exact),
    op(1, |g| vec![w("TYPE"), g.key()], Cmp::Exact),
    op(5, |g| vec![w("OBJECT"), g.kw("ENCODING"), g.key()], Cmp::Exact),
    op(1, |g| vec![w("EXISTS"), g.key()], Cmp::Exact),
    op(1, |g| vec![w("EXPIRE"), g.key(), g.pick(&["100", "1000", "10000"])], Cmp::Exact),
    op(1, |g| vec![w("TTL"), g.key()], Cmp::Ttl),
    op(1, |g| vec![w("RENAME"), g.key(), g.key()], Cmp::Exact),
    op(1, |g| vec![w("COPY"), g.key(), g.key(), w("REPLACE")], Cmp::Exact),
];

/// The members of a set-like reply (array or RESP3 set of bulk strings).
fn bulks(reply: &Reply) -> Option<Vec<Vec<u8>>> {
    let items = match reply {
        Reply::Array(Some(items)) | Reply::Set(items) => items,
        _ => return None,
    };
    items
        .iter()
        .map(|r| match r {
            Reply::Bulk(Some(b)) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// A Differ plus a side connection pair for the comparisons it cannot make.
struct Stream {
    d: Differ,
    /// `.0` to ferrokv, `.1` to redis.
    side: (Conn, Conn),
    index: usize,
    /// How often each comparison by meaning happened (printed with
    /// `FERROKV_DIFF_STATS=1`), to see that the streams reach them.
    seen: std::collections::BTreeMap<&'static str, usize>,
    /// Compare every key's encoding after every command (`FERROKV_SET_PARANOID=1`).
    paranoid: bool,
}

impl Stream {
    fn new(label: &str, seed: u64, ferrokv_args: &[&str], resp3: bool) -> Stream {
        let (d, side) = family::open(label, seed, ferrokv_args, resp3);
        let paranoid = std::env::var_os("FERROKV_SET_PARANOID").is_some();
        Stream { d, side, index: 0, seen: Default::default(), paranoid }
    }

    fn send(&mut self, args: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        (self.side.0.send(args), self.side.1.send(args))
    }

    /// Sends on both side connections; the replies must be identical.
    fn send_same(&mut self, args: &[Vec<u8>]) -> Result<Vec<u8>, String> {
        let (f, r) = self.send(args);
        if f != r {
            return Err(self.fail(args, &f, &r, "replies differ"));
        }
        Ok(r)
    }

    /// A mismatch report, with the members of the command's keys on both servers.
    fn fail(&mut self, args: &[Vec<u8>], f: &[u8], r: &[u8], why: &str) -> String {
        let mut report = family::report_head(&self.d, "set", self.index, args, f, r, why);
        let named: BTreeSet<Vec<u8>> =
            args.iter().filter(|a| KEYS.iter().any(|k| k.as_bytes() == a.as_slice())).cloned().collect();
        for key in named {
            let (f, r) = self.send(&[w("SMEMBERS"), key.clone()]);
            let (fe, re) = self.send(&[w("OBJECT"), w("ENCODING"), key.clone()]);
            report += &format!(
                "  key {}:\n    ferrokv: {} {}\n    redis:   {} {}\n",
                show(&key),
                show(&fe),
                show(&f),
                show(&re),
                show(&r)
            );
        }
        report += &family::report_replay(&self.d, "diff_sets");
        report
    }

    /// The key's OBJECT ENCODING, which must be the same on both servers.
    fn encoding(&mut self, key: &[u8]) -> Result<String, String> {
        let r = self.send_same(&[w("OBJECT"), w("ENCODING"), key.to_vec()])?;
        Ok(family::bulk_text(&r))
    }

    /// The members of the set at `key` on redis (empty for a missing key or another
    /// type).
    fn contents(&mut self, key: &[u8]) -> BTreeSet<Vec<u8>> {
        let reply = parse_one(&self.side.1.send(&[b"SMEMBERS".as_slice(), key])).unwrap_or(Reply::Null);
        bulks(&reply).unwrap_or_default().into_iter().collect()
    }

    fn step(&mut self, args: &[Vec<u8>], cmp: Cmp) -> Result<(), String> {
        self.index += 1;
        match cmp {
            Cmp::Exact if args[0].eq_ignore_ascii_case(b"CONFIG") => {
                self.d.check(0, args, Check::Exact)?;
                // Other shards pick up a CONFIG SET at their next tick: wait for it.
                std::thread::sleep(std::time::Duration::from_millis(120));
                Ok(())
            }
            Cmp::Exact => self.d.check(0, args, Check::Exact),
            Cmp::Ttl => self.d.check(0, args, Check::Within(1)),
            Cmp::Intersection => {
                let ordered = self.intersection_is_ordered(&args[1..])?;
                self.listing(args, ordered)
            }
            Cmp::Built => {
                let ordered = self.result_is_intset(args)?;
                self.listing(args, ordered)
            }
            Cmp::Scan => self.scan(args),
            Cmp::RandMember => self.random(args, false),
            Cmp::Pop => self.random(args, true),
        }
    }

    /// Whether Redis's SINTER of `keys` lists in a defined order: when the set it walks,
    /// the first of the smallest, is an intset. (Missing keys and errors give replies
    /// that must be identical anyway.)
    fn intersection_is_ordered(&mut self, keys: &[Vec<u8>]) -> Result<bool, String> {
        let mut lead: Option<(i64, Vec<u8>)> = None;
        for key in keys {
            let card = match parse_one(&self.send_same(&[w("SCARD"), key.clone()])?) {
                Ok(Reply::Int(n)) if n > 0 => n,
                _ => return Ok(true),
            };
            if lead.as_ref().is_none_or(|(n, _)| card < *n) {
                lead = Some((card, key.clone()));
            }
        }
        match lead {
            Some((_, key)) => Ok(self.encoding(&key)? == "intset"),
            None => Ok(true),
        }
    }

    /// Whether Redis builds the result of SUNION/SDIFF `args` as an intset (then it lists
    /// in ascending order): the STORE form into a scratch key shows it.
    fn result_is_intset(&mut self, args: &[Vec<u8>]) -> Result<bool, String> {
        let mut store = vec![[args[0].as_slice(), b"STORE"].concat(), w(SCRATCH)];
        store.extend(args[1..].iter().cloned());
        let reply = self.send_same(&store)?;
        if reply.starts_with(b"-") {
            return Ok(true);
        }
        let encoding = self.encoding(SCRATCH.as_bytes())?;
        self.send_same(&[w("DEL"), w(SCRATCH)])?;
        Ok(encoding != "hashtable")
    }

    /// A listing: identical when `ordered`, else the same reply type and members.
    fn listing(&mut self, args: &[Vec<u8>], ordered: bool) -> Result<(), String> {
        let (f, r) = self.send(args);
        if f == r {
            return Ok(());
        }
        if ordered {
            return Err(self.fail(args, &f, &r, "an intset lists in ascending order"));
        }
        *self.seen.entry("listings compared as sets").or_default() += 1;
        let same = f[0] == r[0]
            && match (parse_one(&f), parse_one(&r)) {
                (Ok(x), Ok(y)) => bulks(&x).map(sorted).is_some_and(|x| Some(x) == bulks(&y).map(sorted)),
                _ => false,
            };
        if same {
            Ok(())
        } else {
            Err(self.fail(args, &f, &r, "different members"))
        }
    }

    fn scan(&mut self, args: &[Vec<u8>]) -> Result<(), String> {
        if self.encoding(&args[1])? != "hashtable" {
            return self.d.check(0, args, Check::Exact);
        }
        if args[2] == b"0" {
            *self.seen.entry("full SSCAN iterations").or_default() += 1;
        }
        family::compare_scan(&mut self.side, args, "SSCAN", "members", bulks)
            .map_err(|m| self.fail(args, &m.ferrokv, &m.redis, &m.why))
    }

    /// SRANDMEMBER, or SPOP (`pop`) followed by the resynchronisation of the two sets.
    fn random(&mut self, args: &[Vec<u8>], pop: bool) -> Result<(), String> {
        let key = args[1].clone();
        let before = self.contents(&key);
        let largest = self.seen.entry("largest set drawn from").or_default();
        *largest = (*largest).max(before.len());
        let encoding = self.encoding(&key)?;
        let (f, r) = self.send(args);
        if f == r {
            return Ok(());
        }
        let count = family::count_arg(args);
        let check = |bytes: &[u8]| -> Result<Vec<Vec<u8>>, String> {
            let reply = parse_one(bytes).map_err(|e| e.to_string())?;
            let picked = match (&reply, count) {
                (Reply::Bulk(Some(m)), None) => vec![m.clone()],
                (_, Some(_)) => bulks(&reply).ok_or("not a list of members")?,
                _ => return Err("replies differ and are not random picks".into()),
            };
            if let Some(m) = picked.iter().find(|m| !before.contains(*m)) {
                return Err(format!("{} is not a member", show(m)));
            }
            let distinct = picked.iter().collect::<BTreeSet<_>>().len() == picked.len();
            let Some(n) = count else { return Ok(picked) };
            // A negative count repeats members (SRANDMEMBER only; SPOP refuses it).
            let expected = family::picks_for(n, before.len());
            if n >= 0 && !distinct {
                Err("repeated members for a positive count".into())
            } else if picked.len() as u64 != expected {
                Err(format!("{} members for a count of {n}", picked.len()))
            } else {
                Ok(picked)
            }
        };
        let (fp, rp) = match (check(&f), check(&r)) {
            (Ok(fp), Ok(rp)) => (fp, rp),
            (Err(why), _) => return Err(self.fail(args, &f, &r, &why)),
            (_, Err(why)) => return Err(self.fail(args, &f, &r, &format!("redis: {why}"))),
        };
        if f[0] != r[0] {
            return Err(self.fail(args, &f, &r, "different reply types"));
        }
        if !pop && count.is_some_and(|n| n >= 0 && n as u64 >= before.len() as u64) && encoding == "intset" {
            return Err(self.fail(args, &f, &r, "a count covering an intset lists it in order"));
        }
        let (fs, rs): (BTreeSet<Vec<u8>>, BTreeSet<Vec<u8>>) = (fp.into_iter().collect(), rp.into_iter().collect());
        *self.seen.entry(if pop { "different pops" } else { "different random members" }).or_default() += 1;
        if pop && fs != rs {
            // Put back what either popped, then pop what redis popped.
            let mut sadd = vec![w("SADD"), key.clone()];
            sadd.extend(fs.union(&rs).cloned());
            self.send_same(&sadd)?;
            let mut srem = vec![w("SREM"), key.clone()];
            srem.extend(rs.iter().cloned());
            self.send_same(&srem)?;
            self.encoding(&key)?;
        }
        Ok(())
    }

    /// Every key's encoding and members.
    fn final_state(&mut self) -> Result<(), String> {
        for key in KEYS.iter().chain(&["missing"]) {
            let key = w(key);
            self.step(&[w("OBJECT"), w("ENCODING"), key.clone()], Cmp::Exact)?;
            self.step(&[w("SCARD"), key.clone()], Cmp::Exact)?;
            self.step(&[w("SMEMBERS"), key.clone()], Cmp::Intersection)?;
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

    fn after_step(&mut self) -> Result<(), String> {
        if self.paranoid {
            for key in KEYS {
                self.encoding(key.as_bytes())?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        family::print_stats(&self.d.label, self.d.seed, &self.seen);
        self.final_state()
    }
}

const SETS: Family<Cmp> = Family {
    seeds: SEEDS,
    ops: OPS,
    setup: &[],
    // CONFIG SET's own argument errors are not what this stream tests; a mutated
    // SPOP/SRANDMEMBER could ask for a huge negative count.
    mutable: |args, cmp| cmp == Cmp::Exact && !args[0].eq_ignore_ascii_case(b"CONFIG"),
    log_var: "FERROKV_SET_LOG",
};

fn run(label: &str, ferrokv_args: &[&str], resp3: bool, default_steps: usize) {
    family::run(&SETS, default_steps, |seed| Stream::new(label, seed, ferrokv_args, resp3));
}

#[test]
fn sets() {
    run("sets", &[], false, 3000);
}

#[test]
fn sets_resp3() {
    run("sets_resp3", &[], true, 3000);
}

/// Keys on two shards: SMOVE, the set algebra, RENAME and COPY cross them.
#[test]
fn sets_two_threads() {
    run("sets_two_threads", &["--server-threads", "2"], false, 2000);
}
