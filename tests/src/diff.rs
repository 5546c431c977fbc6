//! Differential testing: the same seeded command stream goes to ferrokv-server and to
//! redis-server, command by command, and every pair of replies must be identical bytes.
//!
//! A stream is drawn from a table of [`CommandGen`]s (name, weight, argument generator,
//! how to compare). Only what cannot be equal is normalised ([`Check`]): TTLs within a
//! tolerance, key lists as sets, RANDOMKEY by shape. A mismatch reports the seed, the
//! command index, both replies and the commands before it, and the stream replays
//! exactly from the seed (`FERROKV_SEED=n`).
//!
//! Expiry times are kept far from "now" (≥ 100 s ahead, or in the past) so that no key
//! expires on one server and not on the other during a run.
//!
//! [`family`] has the streams of one data type compared by meaning where Redis is not
//! deterministic.

pub mod family;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::conn::Conn;
use crate::resp::{self, show, show_command, Reply};
use crate::rng::Rng;
use crate::server::{target_kind, Server};

/// How a pair of replies is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Identical bytes.
    Exact,
    /// Integer replies equal, or both non-negative and at most this far apart (TTLs,
    /// expiry times); anything else exact.
    Within(i64),
    /// Arrays equal as sorted lists (KEYS); anything else exact.
    Unordered,
    /// Same kind of reply: both nil or both a bulk string (RANDOMKEY); errors exact.
    Shape,
    /// The command is a `SCAN 0 ...`: each server is iterated to cursor 0 and the sets
    /// of keys returned must be equal.
    ScanAll,
}

/// One command of a stream table.
#[derive(Clone, Copy)]
pub struct CommandGen {
    pub name: &'static str,
    /// Relative frequency within its table.
    pub weight: u32,
    /// The full command (name first).
    pub gen: fn(&mut Gen) -> Vec<Vec<u8>>,
    pub check: Check,
    /// Sleep just over a millisecond first, so that a command comparing a new expiry
    /// with the current one (EXPIRE ... GT) never runs in the same millisecond as the
    /// command that set it on one server and not on the other.
    pub settle: bool,
}

impl CommandGen {
    pub const fn new(name: &'static str, weight: u32, gen: fn(&mut Gen) -> Vec<Vec<u8>>) -> CommandGen {
        CommandGen { name, weight, gen, check: Check::Exact, settle: false }
    }

    pub const fn check(mut self, check: Check) -> CommandGen {
        self.check = check;
        self
    }

    pub const fn settle(mut self) -> CommandGen {
        self.settle = true;
        self
    }
}

/// An argument from text.
pub fn w(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// One table of the tables `parts`, in order.
pub fn concat(parts: &[&[CommandGen]]) -> Vec<CommandGen> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

/// The keys streams use: few, so that commands collide.
pub const KEYS: &[&str] = &["a", "b", "c", "d", "{t}1", "{t}2", "key:with:a-longer-name"];

/// Argument generators over a seeded [`Rng`].
pub struct Gen {
    pub rng: Rng,
}

/// Integers around the edges of what Redis parses, and things that are not integers.
pub const EDGE_INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "7",
    "-7",
    "100",
    "-100",
    "255",
    "256",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "abc",
    "",
    " 1",
    "1 ",
    "+1",
    "01",
    "-0",
    "1.0",
    "1e3",
    "0x10",
    "1\x00",
];

/// Floats and float-like strings: exponents, infinities, nan, junk.
pub const EDGE_FLOATS: &[&str] = &[
    "0",
    "1",
    "-1",
    "0.1",
    "1.5",
    "-2.25",
    "3.0e3",
    "1e-5",
    "5.0e-324",
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "1e309",
    "inf",
    "-inf",
    "+inf",
    "infinity",
    "nan",
    "abc",
    "",
    " 1.5",
    "1.5 ",
    "10",
    "9223372036854775807",
    "0x1p3",
    "1.",
    ".5",
];

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen { rng: Rng::new(seed) }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.rng.chance(percent)
    }

    /// An integer in `lo..=hi` as text.
    pub fn int_in(&mut self, lo: i64, hi: i64) -> Vec<u8> {
        self.rng.range(lo, hi).to_string().into_bytes()
    }

    pub fn pick(&mut self, items: &[&str]) -> Vec<u8> {
        self.rng.pick(items).as_bytes().to_vec()
    }

    /// A keyword, in random case now and then (Redis matches them case-insensitively).
    pub fn kw(&mut self, word: &str) -> Vec<u8> {
        match self.rng.below(10) {
            0 => word.to_ascii_lowercase().into_bytes(),
            1 => word.bytes().enumerate().map(|(i, b)| if i % 2 == 0 { b.to_ascii_lowercase() } else { b }).collect(),
            _ => word.as_bytes().to_vec(),
        }
    }

    /// One of [`KEYS`], rarely a key nothing writes on purpose.
    pub fn key(&mut self) -> Vec<u8> {
        if self.rng.chance(3) {
            return b"missing".to_vec();
        }
        self.pick(KEYS)
    }

    /// `lo..=hi` keys (repetitions allowed).
    pub fn keys(&mut self, lo: i64, hi: i64) -> Vec<Vec<u8>> {
        let n = self.rng.range(lo, hi);
        (0..n).map(|_| self.key()).collect()
    }

    /// A value: integers (so counters work), edge numbers, short text, binary bytes,
    /// lengths around the 44-byte embstr/raw boundary, and some long ones.
    pub fn value(&mut self) -> Vec<u8> {
        match self.rng.below(100) {
            0..=24 => self.int_in(-1000, 1000),
            25..=29 => self.pick(EDGE_INTS),
            30..=34 => self.pick(EDGE_FLOATS),
            35..=69 => {
                let len = self.rng.below(12) as usize;
                self.rng.bytes(len, b"abcxyz01")
            }
            70..=79 => {
                let len = 1 + self.rng.below(20) as usize;
                self.rng.bytes(len, b"a\x00\r\n\xff\x80 \"'\\")
            }
            80..=93 => {
                let len = 40 + self.rng.below(10) as usize;
                self.rng.bytes(len, b"abcdefgh")
            }
            _ => {
                let len = 100 + self.rng.below(1500) as usize;
                self.rng.bytes(len, b"abcdefgh0123")
            }
        }
    }

    /// An integer argument: mostly small, sometimes an edge case.
    pub fn int(&mut self) -> Vec<u8> {
        if self.rng.chance(70) {
            self.int_in(-20, 20)
        } else {
            self.pick(EDGE_INTS)
        }
    }

    /// A float argument: mostly plain, sometimes an edge case.
    pub fn float(&mut self) -> Vec<u8> {
        match self.rng.below(10) {
            0..=3 => self.int_in(-50, 50),
            4..=5 => format!("{}.{}", self.rng.range(-50, 50), self.rng.below(1000)).into_bytes(),
            _ => self.pick(EDGE_FLOATS),
        }
    }

    /// A glob pattern for KEYS / SCAN MATCH.
    pub fn pattern(&mut self) -> Vec<u8> {
        self.pick(&["*", "a*", "?", "*1", "{t}*", "[a-c]", "[^a]*", "key:*", "nomatch", "\\{t\\}*", "*:*:*", "[abc"])
    }
}

/// Replaces or drops arguments now and then, to reach arity and syntax errors.
pub fn mutate(g: &mut Gen, args: &mut Vec<Vec<u8>>) {
    match g.rng.below(3) {
        0 if args.len() > 1 => {
            let keep = 1 + g.rng.below(args.len() as u64 - 1) as usize;
            args.truncate(keep);
        }
        1 => {
            let extra = g.pick(&["x", "1", "-1", "NX", "EX", "GET", ""]);
            args.push(extra);
        }
        _ if args.len() > 1 => {
            let i = 1 + g.rng.below(args.len() as u64 - 1) as usize;
            args[i] = g.pick(&["abc", "", "-1"]);
        }
        _ => {}
    }
}

/// Options of a stream run.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Percent of commands passed through [`mutate`].
    pub mutate_percent: u64,
    /// Percent of command names sent in lower or mixed case.
    pub case_percent: u64,
    /// GET every key at the end.
    pub final_check: bool,
    /// Also check every key's existence, type and TTL, and DBSIZE, at the end.
    pub final_check_keys: bool,
    /// Commands are sent in pipelines of 1 to this many (1: one at a time).
    pub pipeline: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions { mutate_percent: 3, case_percent: 10, final_check: true, final_check_keys: true, pipeline: 1 }
    }
}

struct Past {
    index: usize,
    conn: usize,
    command: String,
    reply: String,
}

/// A ferrokv-server and a redis-server with as many connections to each, fed the
/// same commands.
pub struct Differ {
    pub label: String,
    pub seed: u64,
    /// Connection pairs: `.0` to ferrokv, `.1` to redis.
    conns: Vec<(Conn, Conn)>,
    history: VecDeque<Past>,
    index: usize,
    /// Replies per command name and reply kind, printed with `FERROKV_DIFF_STATS=1`.
    stats: BTreeMap<(String, String), usize>,
    // Declared last: servers outlive the connections when dropped.
    pub ferrokv: Server,
    pub redis: Server,
}

impl Differ {
    /// Starts both servers (ferrokv with `ferrokv_args`; a second redis-server instead
    /// when `FERROKV_TARGET=redis`) and opens `connections` pairs.
    /// With `resp3`, each connection first switches with `HELLO 3`.
    pub fn new(label: &str, seed: u64, ferrokv_args: &[&str], connections: usize, resp3: bool) -> Differ {
        let ferrokv = Server::start(target_kind(), ferrokv_args).unwrap_or_else(|e| panic!("{e}"));
        let redis = Server::redis(&[]);
        let mut conns = Vec::new();
        for _ in 0..connections {
            let (mut f, mut r) = (ferrokv.conn(), redis.conn());
            if resp3 {
                for (conn, name) in [(&mut f, "ferrokv"), (&mut r, "redis")] {
                    let reply = conn.send(&["HELLO", "3"]);
                    assert!(
                        reply.starts_with(b"%"),
                        "{label} seed {seed}: HELLO 3 on {name} answered {}",
                        show(&reply)
                    );
                }
            }
            conns.push((f, r));
        }
        Differ {
            label: label.into(),
            seed,
            conns,
            history: VecDeque::new(),
            index: 0,
            stats: BTreeMap::new(),
            ferrokv,
            redis,
        }
    }

    /// Runs `steps` commands drawn from `table`, spread over the connections.
    pub fn run(&mut self, table: &[CommandGen], steps: usize, options: &StreamOptions) -> Result<(), String> {
        let mut g = Gen::new(self.seed);
        let weights: Vec<u32> = table.iter().map(|c| c.weight).collect();
        let mut batch: Vec<(Vec<Vec<u8>>, Check)> = Vec::new();
        let (mut batch_conn, mut batch_len) = (0, 1);
        for _ in 0..steps {
            let entry = &table[g.rng.weighted(&weights)];
            let mut args = (entry.gen)(&mut g);
            // A mutated SCAN cursor starts mid-table: its keys depend on table layout.
            if g.chance(options.mutate_percent) && entry.check != Check::ScanAll {
                mutate(&mut g, &mut args);
            }
            if g.chance(options.case_percent) {
                args[0] = args[0].to_ascii_lowercase();
            }
            if batch.is_empty() {
                batch_conn = if self.conns.len() > 1 { g.rng.below(self.conns.len() as u64) as usize } else { 0 };
                batch_len = 1 + g.rng.below(options.pipeline.max(1) as u64) as usize;
            }
            // Timing-sensitive commands and SCAN iterations go alone.
            if entry.settle || entry.check == Check::ScanAll {
                self.check_batch(batch_conn, &std::mem::take(&mut batch))?;
                if entry.settle {
                    std::thread::sleep(Duration::from_micros(1200));
                }
                self.check(batch_conn, &args, entry.check)?;
                continue;
            }
            batch.push((args, entry.check));
            if batch.len() >= batch_len {
                self.check_batch(batch_conn, &std::mem::take(&mut batch))?;
            }
        }
        self.check_batch(batch_conn, &std::mem::take(&mut batch))?;
        if options.final_check {
            self.final_state(options.final_check_keys)?;
        }
        if std::env::var_os("FERROKV_DIFF_STATS").is_some() {
            eprintln!("{} seed {}: replies by command and kind", self.label, self.seed);
            for ((name, kind), n) in &self.stats {
                eprintln!("  {name:<16} {kind:<60} {n}");
            }
        }
        Ok(())
    }

    /// Opens a new connection pair as pair 0 (the stream's may be inside MULTI, or in
    /// another database).
    pub fn fresh_pair(&mut self) {
        self.conns.insert(0, (self.ferrokv.conn(), self.redis.conn()));
    }

    /// Each key's value (and with `keys` its existence, type and TTL, and DBSIZE), on
    /// a new connection pair (the stream's may be inside MULTI).
    pub fn final_state(&mut self, keys: bool) -> Result<(), String> {
        self.conns.insert(0, (self.ferrokv.conn(), self.redis.conn()));
        for key in KEYS.iter().chain(&["missing"]) {
            let key = key.as_bytes().to_vec();
            self.check(0, &[b"GET".to_vec(), key.clone()], Check::Exact)?;
            if keys {
                self.check(0, &[b"EXISTS".to_vec(), key.clone()], Check::Exact)?;
                self.check(0, &[b"TYPE".to_vec(), key.clone()], Check::Exact)?;
                self.check(0, &[b"PTTL".to_vec(), key], Check::Within(1000))?;
            }
        }
        if keys {
            self.check(0, &[b"DBSIZE".to_vec()], Check::Exact)?;
        }
        Ok(())
    }

    /// Sends one command on connection pair `conn` and compares the replies.
    pub fn check(&mut self, conn: usize, args: &[Vec<u8>], check: Check) -> Result<(), String> {
        self.check_batch(conn, &[(args.to_vec(), check)])
    }

    /// Sends commands as one pipeline (one write) on connection pair `conn` and
    /// compares the replies in order. A `ScanAll` command must come alone.
    pub fn check_batch(&mut self, conn: usize, batch: &[(Vec<Vec<u8>>, Check)]) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let (f, r) = &mut self.conns[conn];
        let (f_replies, r_replies) = match batch {
            [(args, Check::ScanAll)] => (vec![scan_all(f, args)], vec![scan_all(r, args)]),
            _ => {
                assert!(batch.iter().all(|(_, c)| *c != Check::ScanAll), "SCAN iterations cannot be pipelined");
                (send_all(f, batch), send_all(r, batch))
            }
        };
        for (((args, check), fr), rr) in batch.iter().zip(f_replies).zip(r_replies) {
            let index = self.index;
            self.index += 1;
            let verdict = match (&fr, &rr) {
                (Ok(a), Ok(b)) => compare(*check, a, b),
                _ => Err("a connection failed".to_string()),
            };
            let command = show_command(args);
            if let Err(why) = verdict {
                let pipeline =
                    if batch.len() > 1 { format!(", in a pipeline of {}", batch.len()) } else { String::new() };
                let mut report = format!(
                    "differential mismatch in `{}`, seed {}, command #{index} on connection {conn}{pipeline} ({why})\n  \
                     command: {command}\n  ferrokv: {}\n  redis:   {}\n",
                    self.label,
                    self.seed,
                    fr.as_ref().map(|b| show(b)).unwrap_or_else(|e| format!("<{e}>")),
                    rr.as_ref().map(|b| show(b)).unwrap_or_else(|e| format!("<{e}>")),
                );
                if !self.history.is_empty() {
                    report.push_str("  before it (equal replies):\n");
                    for past in &self.history {
                        report.push_str(&format!(
                            "    #{} [c{}] {} -> {}\n",
                            past.index, past.conn, past.command, past.reply
                        ));
                    }
                }
                if self.ferrokv.try_wait().is_some() {
                    report.push_str(&format!("  ferrokv-server has exited; its output:\n{}\n", self.ferrokv.output()));
                }
                report.push_str(&format!(
                    "  replay: FERROKV_SEED={} cargo test --release -p ferrokv-tests --test differential -- {}\n",
                    self.seed, self.label
                ));
                return Err(report);
            }
            let kind = match rr.as_deref() {
                Ok([b'-', rest @ ..]) => show(&rest[..rest.len().saturating_sub(2)]),
                Ok([b'$', b'-', ..]) | Ok([b'*', b'-', ..]) | Ok([b'_', ..]) => "nil".into(),
                Ok([first, ..]) => (*first as char).to_string(),
                _ => "?".into(),
            };
            let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
            *self.stats.entry((name, kind)).or_default() += 1;
            let reply = rr.map(|b| show(&b)).unwrap_or_default();
            self.history.push_back(Past { index, conn, command, reply });
            if self.history.len() > 12 {
                self.history.pop_front();
            }
        }
        Ok(())
    }
}

/// Writes all commands at once, then reads one reply per command; after a failed
/// read the remaining replies carry the same error.
fn send_all(conn: &mut Conn, batch: &[(Vec<Vec<u8>>, Check)]) -> Vec<Result<Vec<u8>, String>> {
    let mut bytes = Vec::new();
    for (args, _) in batch {
        bytes.extend_from_slice(&resp::encode_command(args));
    }
    if let Err(e) = conn.write_raw(&bytes) {
        return batch.iter().map(|_| Err(format!("write failed: {e}"))).collect();
    }
    let mut failed: Option<String> = None;
    batch
        .iter()
        .map(|_| match &failed {
            Some(e) => Err(e.clone()),
            None => conn.read_reply().map_err(|e| {
                let e = e.to_string();
                failed = Some(e.clone());
                e
            }),
        })
        .collect()
}

/// Full SCAN iteration; `args` is `SCAN <cursor> [options]`. Returns a synthetic
/// reply: the sorted key set as an array (or the first error reply as it came).
fn scan_all(conn: &mut Conn, args: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let mut args = args.to_vec();
    let mut keys = BTreeSet::new();
    for _ in 0..100_000 {
        let bytes = conn.try_send(&args).map_err(|e| e.to_string())?;
        let reply = resp::parse_one(&bytes).map_err(|e| e.to_string())?;
        let Reply::Array(Some(parts)) = reply else { return Ok(bytes) };
        let [Reply::Bulk(Some(cursor)), Reply::Array(Some(batch))] = parts.as_slice() else {
            return Err(format!("SCAN reply is not [cursor, keys]: {}", show(&bytes)));
        };
        for key in batch {
            keys.insert(key.clone());
        }
        if cursor.as_slice() == b"0" {
            let list: Vec<Reply> = keys.into_iter().collect();
            return Ok(format!("SCAN keys {:?}", list).into_bytes());
        }
        if args.len() < 2 {
            return Ok(bytes);
        }
        args[1] = cursor.clone();
    }
    Err("SCAN did not return cursor 0 after 100000 calls".into())
}

fn compare(check: Check, a: &[u8], b: &[u8]) -> Result<(), String> {
    if a == b {
        return Ok(());
    }
    let decoded = || match (resp::parse_one(a), resp::parse_one(b)) {
        (Ok(x), Ok(y)) => Some((x, y)),
        _ => None,
    };
    let normalised_equal = match check {
        Check::Exact | Check::ScanAll => false,
        Check::Within(delta) => match decoded() {
            Some((Reply::Int(x), Reply::Int(y))) => x >= 0 && y >= 0 && (x - y).abs() <= delta,
            _ => false,
        },
        Check::Unordered => match decoded() {
            Some((Reply::Array(Some(mut x)), Reply::Array(Some(mut y)))) => {
                x.sort();
                y.sort();
                x == y
            }
            _ => false,
        },
        Check::Shape => match decoded() {
            Some((Reply::Bulk(x), Reply::Bulk(y))) => x.is_some() == y.is_some(),
            Some((Reply::Null, Reply::Null)) => true,
            _ => false,
        },
    };
    if normalised_equal {
        Ok(())
    } else {
        Err(match check {
            Check::Exact => "replies differ".to_string(),
            other => format!("replies differ under {other:?}"),
        })
    }
}

/// Seeds to run: `FERROKV_SEED` alone when set, else `defaults`.
pub fn seeds(defaults: &[u64]) -> Vec<u64> {
    match std::env::var("FERROKV_SEED") {
        Ok(s) => vec![s.trim().parse().unwrap_or_else(|_| panic!("FERROKV_SEED={s} is not an integer"))],
        Err(_) => defaults.to_vec(),
    }
}

/// Steps per seed: `FERROKV_STEPS` when set, else `default`.
pub fn steps(default: usize) -> usize {
    match std::env::var("FERROKV_STEPS") {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("FERROKV_STEPS={s} is not an integer")),
        Err(_) => default,
    }
}

/// Runs `f` for every seed and panics with the reports of all that failed.
pub fn for_each_seed(defaults: &[u64], mut f: impl FnMut(u64) -> Result<(), String>) {
    let seeds = seeds(defaults);
    let failures: Vec<String> = seeds.iter().filter_map(|&seed| f(seed).err()).collect();
    if !failures.is_empty() {
        panic!("{} of {} seeds failed:\n\n{}", failures.len(), seeds.len(), failures.join("\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_tolerates_only_nonnegative_integers() {
        assert!(compare(Check::Within(1), b":100\r\n", b":99\r\n").is_ok());
        assert!(compare(Check::Within(1), b":100\r\n", b":98\r\n").is_err());
        assert!(compare(Check::Within(5), b":-1\r\n", b":-2\r\n").is_err());
        assert!(compare(Check::Within(5), b":-2\r\n", b":-2\r\n").is_ok());
    }

    #[test]
    fn unordered_sorts_arrays_only() {
        let x = b"*2\r\n$1\r\na\r\n$1\r\nb\r\n";
        let y = b"*2\r\n$1\r\nb\r\n$1\r\na\r\n";
        let z = b"*2\r\n$1\r\nb\r\n$1\r\nc\r\n";
        assert!(compare(Check::Unordered, x, y).is_ok());
        assert!(compare(Check::Unordered, x, z).is_err());
        assert!(compare(Check::Exact, x, y).is_err());
    }

    #[test]
    fn shape_compares_nil_against_value() {
        assert!(compare(Check::Shape, b"$1\r\na\r\n", b"$1\r\nb\r\n").is_ok());
        assert!(compare(Check::Shape, b"$1\r\na\r\n", b"$-1\r\n").is_err());
        assert!(compare(Check::Shape, b"-ERR x\r\n", b"-ERR y\r\n").is_err());
    }

    #[test]
    fn generators_are_deterministic() {
        let mut a = Gen::new(42);
        let mut b = Gen::new(42);
        for _ in 0..100 {
            assert_eq!(a.value(), b.value());
            assert_eq!(a.kw("EX"), b.kw("EX"));
        }
    }

    #[test]
    fn mutate_keeps_the_command_name() {
        let mut g = Gen::new(5);
        for _ in 0..200 {
            let mut args = vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()];
            mutate(&mut g, &mut args);
            assert_eq!(args[0], b"SET");
            assert!(!args.is_empty());
        }
    }
}
