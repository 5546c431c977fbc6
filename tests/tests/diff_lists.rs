//! Differential tests of the list commands against redis-server 7.0.
//!
//! Two kinds:
//! - seeded random streams of every list command (blocking ones with short timeouts,
//!   so that they answer the same null after the same short wait on both servers when
//!   there is nothing to pop) mixed with string and key commands on the same keys
//!   (WRONGTYPE, OBJECT ENCODING, TTLs kept by in-place edits), edge arguments and
//!   CONFIG SET of `list-max-listpack-size`, over RESP2 and RESP3, one and two shards,
//!   pipelines and MULTI/EXEC (where blocking commands answer at once). List replies
//!   are deterministic: every one must be byte-identical.
//! - scripted wake-ups: a client blocks, others push, and the transcripts of both
//!   servers (every reply, in order, and the lists at the end) must be identical.
//!
//! Replay a stream: `FERROKV_SEED=n cargo test --release -p ferrokv-tests --test diff_lists -- <name>`.

use std::time::{Duration, Instant};

use ferrokv_tests::diff::{
    concat, for_each_seed, steps, w, Check, CommandGen, Differ, Gen, StreamOptions, EDGE_INTS, KEYS,
};
use ferrokv_tests::resp::show;
use ferrokv_tests::{Conn, Server};

const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6];

/// An element: mostly from a small pool (so LREM, LPOS and LINSERT find them),
/// integers (which Redis stores as integers in a listpack), empty and binary strings,
/// and long ones.
fn elem(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(20) {
        0..=11 => g.pick(&["a", "b", "c", "1", "-1", "007", "", "x y", "10"]),
        12..=14 => g.int_in(-5, 5),
        15..=17 => g.value(),
        18 => {
            let len = 1 + g.rng.below(8) as usize;
            g.rng.bytes(len, b"a\x00\r\n\xff")
        }
        _ => {
            let len = 200 + g.rng.below(3000) as usize;
            g.rng.bytes(len, b"abc")
        }
    }
}

fn elems(g: &mut Gen, lo: i64, hi: i64) -> Vec<Vec<u8>> {
    let n = g.rng.range(lo, hi);
    (0..n).map(|_| elem(g)).collect()
}

/// A list index: mostly near the ends, sometimes an edge integer or junk.
fn index(g: &mut Gen) -> Vec<u8> {
    if g.chance(85) {
        g.int_in(-12, 12)
    } else {
        g.pick(EDGE_INTS)
    }
}

fn end(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(40) {
        0 => g.pick(&["UP", "", "LEFTT", "right\0x"]),
        1..=19 => g.kw("LEFT"),
        _ => g.kw("RIGHT"),
    }
}

/// A blocking timeout: short ones (a miss waits that long on both servers), and
/// invalid ones. Never 0 or one that rounds to 0 (-0.001): that would block forever.
fn timeout(g: &mut Gen) -> Vec<u8> {
    if g.chance(80) {
        g.pick(&["0.01", "0.005", "0.02", "0.001", "1e-2", "0x1p-7"])
    } else {
        g.pick(&["abc", "", "-1", "-0.002", "inf", "-inf", "nan", "1e20", "9.3e15", " 1", "1e400"])
    }
}

fn count(g: &mut Gen) -> Vec<u8> {
    if g.chance(80) {
        g.int_in(0, 6)
    } else {
        g.pick(&["-1", "abc", "100", "9223372036854775807", "-9223372036854775808", "1.5", ""])
    }
}

fn push(g: &mut Gen, name: &str) -> Vec<Vec<u8>> {
    let mut args = vec![w(name), g.key()];
    args.extend(elems(g, 1, 5));
    args
}

/// A push of hundreds of elements: lists of several nodes.
fn push_many(g: &mut Gen) -> Vec<Vec<u8>> {
    let name = if g.chance(50) { "RPUSH" } else { "LPUSH" };
    let mut args = vec![w(name), g.key()];
    let n = 50 + g.rng.below(400) as usize;
    for i in 0..n {
        args.push(if i % 7 == 0 { elem(g) } else { format!("item-{}-{}", i, g.rng.below(5)).into_bytes() });
    }
    args
}

fn lpop(g: &mut Gen, name: &str) -> Vec<Vec<u8>> {
    let mut args = vec![w(name), g.key()];
    if g.chance(50) {
        args.push(count(g));
    }
    args
}

fn lpos(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("LPOS"), g.key(), elem(g)];
    let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
    if g.chance(50) {
        let rank = if g.chance(85) {
            g.pick(&["1", "2", "3", "-1", "-2", "-3", "0"])
        } else {
            g.pick(&["-9223372036854775808", "9223372036854775807", "abc", "1000"])
        };
        groups.push(vec![g.kw("RANK"), rank]);
    }
    if g.chance(50) {
        groups.push(vec![g.kw("COUNT"), count(g)]);
    }
    if g.chance(30) {
        groups.push(vec![g.kw("MAXLEN"), count(g)]);
    }
    if g.chance(5) {
        groups.push(vec![g.pick(&["RANK", "COUNT", "BOGUS"])]);
    }
    for i in (1..groups.len()).rev() {
        let j = g.rng.below(i as u64 + 1) as usize;
        groups.swap(i, j);
    }
    args.extend(groups.into_iter().flatten());
    args
}

/// `numkeys key... LEFT|RIGHT [COUNT n]`, numkeys sometimes wrong.
fn mpop_tail(g: &mut Gen) -> Vec<Vec<u8>> {
    let keys = g.keys(1, 3);
    let numkeys =
        if g.chance(90) { keys.len().to_string().into_bytes() } else { g.pick(&["0", "-1", "abc", "4", "9"]) };
    let mut args = vec![numkeys];
    args.extend(keys);
    args.push(end(g));
    if g.chance(50) {
        args.push(g.kw("COUNT"));
        args.push(count(g));
    }
    if g.chance(3) {
        args.push(g.pick(&["COUNT", "x"]));
    }
    args
}

/// The `list-max-listpack-size` of a seed's stream: node layouts differ, replies may not.
/// (Set before the stream: the stream's mutations would turn CONFIG SET into
/// arity errors whose wording is the server's business, not the lists'.)
fn fill_for(seed: u64) -> &'static str {
    ["-2", "1", "-1", "3", "-5", "2", "0", "128", "-6"][seed as usize % 9]
}

/// Commands on the same keys that are not list commands.
const BASICS: &[CommandGen] = &[
    CommandGen::new("SET", 1, |g| vec![w("SET"), g.key(), g.value()]),
    CommandGen::new("GET", 2, |g| vec![w("GET"), g.key()]),
    CommandGen::new("DEL", 3, |g| {
        let mut args = vec![w("DEL")];
        args.extend(g.keys(1, 2));
        args
    }),
    CommandGen::new("TYPE", 2, |g| vec![w("TYPE"), g.key()]),
    CommandGen::new("OBJECT ENCODING", 2, |g| vec![w("OBJECT"), w("ENCODING"), g.key()]),
    CommandGen::new("EXISTS", 1, |g| vec![w("EXISTS"), g.key()]),
    CommandGen::new("EXPIRE", 1, |g| vec![w("EXPIRE"), g.key(), g.pick(&["100", "1000"])]),
    CommandGen::new("PTTL", 1, |g| vec![w("PTTL"), g.key()]).check(Check::Within(1000)),
    CommandGen::new("PERSIST", 1, |g| vec![w("PERSIST"), g.key()]),
    CommandGen::new("RENAME", 1, |g| vec![w("RENAME"), g.key(), g.key()]),
    CommandGen::new("COPY", 1, |g| vec![w("COPY"), g.key(), g.key(), w("REPLACE")]),
];

const LISTS: &[CommandGen] = &[
    CommandGen::new("LPUSH", 14, |g| push(g, "LPUSH")),
    CommandGen::new("RPUSH", 14, |g| push(g, "RPUSH")),
    CommandGen::new("push many", 2, push_many),
    CommandGen::new("LPUSHX", 3, |g| push(g, "LPUSHX")),
    CommandGen::new("RPUSHX", 3, |g| push(g, "RPUSHX")),
    CommandGen::new("LPOP", 6, |g| lpop(g, "LPOP")),
    CommandGen::new("RPOP", 6, |g| lpop(g, "RPOP")),
    CommandGen::new("LLEN", 4, |g| vec![w("LLEN"), g.key()]),
    CommandGen::new("LRANGE", 10, |g| vec![w("LRANGE"), g.key(), index(g), index(g)]),
    CommandGen::new("LRANGE all", 4, |g| vec![w("LRANGE"), g.key(), w("0"), w("-1")]),
    CommandGen::new("LINDEX", 5, |g| vec![w("LINDEX"), g.key(), index(g)]),
    CommandGen::new("LSET", 4, |g| vec![w("LSET"), g.key(), index(g), elem(g)]),
    CommandGen::new("LINSERT", 5, |g| {
        let place = match g.rng.below(20) {
            0 => g.pick(&["MIDDLE", ""]),
            1..=10 => g.kw("BEFORE"),
            _ => g.kw("AFTER"),
        };
        vec![w("LINSERT"), g.key(), place, elem(g), elem(g)]
    }),
    CommandGen::new("LREM", 5, |g| {
        let n = if g.chance(85) { g.int_in(-3, 3) } else { g.pick(EDGE_INTS) };
        vec![w("LREM"), g.key(), n, elem(g)]
    }),
    CommandGen::new("LTRIM", 3, |g| {
        let (a, b) = if g.chance(70) { (g.int_in(-3, 3), g.int_in(-1, 200)) } else { (index(g), index(g)) };
        vec![w("LTRIM"), g.key(), a, b]
    }),
    CommandGen::new("LPOS", 6, lpos),
    CommandGen::new("LMOVE", 5, |g| vec![w("LMOVE"), g.key(), g.key(), end(g), end(g)]),
    CommandGen::new("RPOPLPUSH", 3, |g| vec![w("RPOPLPUSH"), g.key(), g.key()]),
    CommandGen::new("LMPOP", 5, |g| {
        let mut args = vec![w("LMPOP")];
        args.extend(mpop_tail(g));
        args
    }),
    CommandGen::new("BLPOP", 3, |g| {
        let mut args = vec![w("BLPOP")];
        args.extend(g.keys(1, 3));
        args.push(timeout(g));
        args
    }),
    CommandGen::new("BRPOP", 3, |g| {
        let mut args = vec![w("BRPOP")];
        args.extend(g.keys(1, 3));
        args.push(timeout(g));
        args
    }),
    CommandGen::new("BLMOVE", 2, |g| vec![w("BLMOVE"), g.key(), g.key(), end(g), end(g), timeout(g)]),
    CommandGen::new("BRPOPLPUSH", 2, |g| vec![w("BRPOPLPUSH"), g.key(), g.key(), timeout(g)]),
    CommandGen::new("BLMPOP", 3, |g| {
        let mut args = vec![w("BLMPOP"), timeout(g)];
        args.extend(mpop_tail(g));
        args
    }),
];

const TRANSACTIONS: &[CommandGen] = &[
    CommandGen::new("MULTI", 6, |_| vec![w("MULTI")]),
    CommandGen::new("EXEC", 6, |_| vec![w("EXEC")]),
    CommandGen::new("DISCARD", 1, |_| vec![w("DISCARD")]),
    CommandGen::new("WATCH", 2, |g| vec![w("WATCH"), g.key()]),
];

/// Runs the stream, then compares every key's whole list.
fn run(
    label: &str,
    ferrokv_args: &[&str],
    resp3: bool,
    connections: usize,
    options: StreamOptions,
    extra: &[CommandGen],
) {
    let steps = steps(2500);
    let mut table = concat(&[BASICS, LISTS, extra]);
    if !extra.is_empty() {
        // Inside EXEC a PTTL is compared exactly, as part of EXEC's reply.
        table.retain(|c| c.check == Check::Exact);
    }
    for_each_seed(SEEDS, |seed| {
        let mut d = Differ::new(label, seed, ferrokv_args, connections, resp3);
        d.check(0, &[w("CONFIG"), w("SET"), w("list-max-listpack-size"), w(fill_for(seed))], Check::Exact)?;
        d.run(&table, steps, &options)?;
        for key in KEYS.iter().chain(&["missing"]) {
            d.check(0, &[w("LRANGE"), w(key), w("0"), w("-1")], Check::Exact)?;
            d.check(0, &[w("OBJECT"), w("ENCODING"), w(key)], Check::Exact)?;
        }
        Ok(())
    });
}

#[test]
fn lists() {
    run("lists", &[], false, 1, StreamOptions::default(), &[]);
}

#[test]
fn lists_resp3() {
    run("lists_resp3", &[], true, 1, StreamOptions::default(), &[]);
}

/// Keys on two shards: LMOVE, RPOPLPUSH, LMPOP and the blocking forms cross them.
#[test]
fn lists_two_threads() {
    run("lists_two_threads", &["--server-threads", "2"], false, 1, StreamOptions::default(), &[]);
}

#[test]
fn lists_pipelined_two_threads() {
    let options = StreamOptions { pipeline: 16, ..StreamOptions::default() };
    run("lists_pipelined_two_threads", &["--server-threads", "2"], false, 1, options, &[]);
}

/// MULTI/EXEC on two connections: blocking commands inside answer at once (BLMOVE
/// and BRPOPLPUSH with a null bulk string, the others with a null array).
#[test]
fn lists_transactions() {
    let options = StreamOptions { mutate_percent: 2, final_check_keys: false, ..StreamOptions::default() };
    run("lists_transactions", &[], false, 2, options.clone(), TRANSACTIONS);
    run("lists_transactions_resp3_two_threads", &["--server-threads", "2"], true, 2, options, TRANSACTIONS);
}

// ---------------------------------------------------------------------------------
// Scripted wake-ups.

/// One step of a wake-up script; connections are numbered, 0 is also the observer.
enum Step {
    /// Send a command on a connection without reading its reply.
    Start(usize, &'static str),
    /// Wait until this many clients are blocked.
    Blocked(usize),
    /// Send a command and record its reply.
    Send(usize, &'static str),
    /// Read and record the reply of a started command.
    Read(usize),
    /// Send a command and check only that it did not fail (its reply differs by
    /// server, as HELLO's client id).
    Quiet(usize, &'static str),
}

use Step::*;

fn words(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

fn wait_blocked(conn: &mut Conn, n: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = String::from_utf8_lossy(&conn.send(&["INFO", "clients"])).to_string();
        if info.contains(&format!("blocked_clients:{n}\r\n")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("never saw {n} blocked clients"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `script` on `server` and returns one line per recorded reply, then every key's
/// list and type.
fn transcript(server: &Server, script: &[Step]) -> Vec<String> {
    let mut conns: Vec<Conn> = (0..4).map(|_| server.conn()).collect();
    let mut out = Vec::new();
    for step in script {
        match step {
            Start(c, line) => {
                let args = words(line);
                let frame = ferrokv_tests::resp::encode_command(&args);
                conns[*c].write_raw(&frame).expect("write");
            }
            Blocked(n) => {
                if let Err(e) = wait_blocked(&mut conns[3], *n) {
                    out.push(e);
                }
            }
            Quiet(c, line) => {
                let reply = conns[*c].send(&words(line));
                if reply.starts_with(b"-") {
                    out.push(format!("[{c}] {line} -> {}", show(&reply)));
                }
            }
            Send(c, line) => out.push(format!("[{c}] {line} -> {}", show(&conns[*c].send(&words(line))))),
            Read(c) => {
                conns[*c].set_timeout(Duration::from_secs(3));
                let reply = conns[*c].read_reply().map(|r| show(&r)).unwrap_or_else(|e| format!("<{e}>"));
                out.push(format!("[{c}] read -> {reply}"));
            }
        }
    }
    for key in ["a", "b", "c", "src", "dst", "{t}1", "{t}2"] {
        out.push(format!("{key}: {}", show(&conns[3].send(&["TYPE", key]))));
        if conns[3].send(&["TYPE", key]) == b"+list\r\n" {
            out.push(format!("  {}", show(&conns[3].send(&["LRANGE", key, "0", "-1"]))));
        }
    }
    out
}

const ONE_SHARD: &[&str] = &[];
const TWO_SHARDS: &[&str] = &["--server-threads", "2"];

/// Runs `script` on redis-server and on ferrokv-server (one and two shards) and
/// requires identical transcripts.
fn same_as_redis(name: &str, script: &[Step]) {
    same_as_redis_on(name, script, &[ONE_SHARD, TWO_SHARDS]);
}

fn same_as_redis_on(name: &str, script: &[Step], configs: &[&[&str]]) {
    let redis = Server::redis(&[]);
    let expected = transcript(&redis, script);
    for &args in configs {
        let ferrokv = Server::under_test(args);
        let got = transcript(&ferrokv, script);
        if got != expected {
            let mut report = format!("wake-up script `{name}` differs (ferrokv {args:?}):\n");
            for i in 0..got.len().max(expected.len()) {
                let (f, r) = (got.get(i).map_or("", |s| s), expected.get(i).map_or("", |s| s));
                let mark = if f == r { " " } else { "!" };
                report.push_str(&format!("{mark} ferrokv: {f}\n  redis:   {r}\n"));
            }
            panic!("{report}");
        }
    }
}

#[test]
fn woken_blpop_gets_key_and_element() {
    same_as_redis("blpop", &[Start(0, "BLPOP a b 5"), Blocked(1), Send(1, "RPUSH b x y"), Read(0), Send(1, "LLEN b")]);
}

/// Three clients blocked on one list, served oldest first until it is empty; the
/// last one waits for the next push.
const FIFO: &[Step] = &[
    Start(0, "BRPOP c 5"),
    Blocked(1),
    Start(1, "BLMPOP 5 1 c LEFT COUNT 2"),
    Blocked(2),
    Start(2, "BLPOP c 5"),
    Blocked(3),
    Send(3, "RPUSH c 1 2 3"),
    Read(0),
    Read(1),
    Blocked(1),
    Send(3, "RPUSH c 4 5"),
    Read(2),
];

#[test]
fn woken_clients_are_served_in_order_until_the_list_is_empty() {
    same_as_redis_on("fifo", FIFO, &[ONE_SHARD]);
}

/// With two shards, INFO counts a client blocked as soon as its home shard forwards
/// the command, before the key's shard has registered it: the next client may register
/// first, and is then served first.
#[test]
fn woken_clients_are_served_in_order_on_two_shards() {
    for _ in 0..10 {
        same_as_redis_on("fifo two shards", FIFO, &[TWO_SHARDS]);
    }
}

#[test]
fn woken_blmpop_pops_up_to_count() {
    same_as_redis("blmpop", &[Start(0, "BLMPOP 5 2 a b RIGHT COUNT 2"), Blocked(1), Send(1, "RPUSH b 1 2 3"), Read(0)]);
}

#[test]
fn woken_blmove_and_brpoplpush_move_the_element() {
    same_as_redis(
        "blmove",
        &[
            Start(0, "BLMOVE src {t}1 RIGHT LEFT 5"),
            Blocked(1),
            Send(1, "RPUSH src v w"),
            Read(0),
            Start(0, "BRPOPLPUSH dst dst 5"),
            Blocked(1),
            Send(1, "LPUSH dst only"),
            Read(0),
        ],
    );
}

#[test]
fn woken_blmove_onto_a_key_of_another_type_is_an_error() {
    same_as_redis(
        "blmove wrongtype",
        &[
            Start(0, "BLMOVE src dst LEFT LEFT 5"),
            Blocked(1),
            Send(1, "SET dst string"),
            Send(1, "RPUSH src v"),
            Read(0),
            Send(1, "LRANGE src 0 -1"),
        ],
    );
}

#[test]
fn a_push_undone_in_the_same_transaction_wakes_no_one() {
    same_as_redis(
        "multi undo",
        &[
            Start(0, "BLPOP a 5"),
            Blocked(1),
            Send(1, "MULTI"),
            Send(1, "RPUSH a x"),
            Send(1, "DEL a"),
            Send(1, "EXEC"),
            Blocked(1),
            Send(1, "LPUSH a y"),
            Read(0),
        ],
    );
}

#[test]
fn lmove_into_a_watched_key_wakes_its_waiter() {
    same_as_redis(
        "lmove wakes",
        &[
            Send(1, "RPUSH b 1 2"),
            Start(0, "BLPOP a 5"),
            Blocked(1),
            Send(1, "LMOVE b a LEFT LEFT"),
            Read(0),
            Send(1, "LRANGE b 0 -1"),
        ],
    );
}

#[test]
fn a_miss_times_out_with_a_null_array() {
    same_as_redis(
        "timeouts",
        &[
            Send(0, "BLPOP a 0.05"),
            Send(0, "BLMOVE a b LEFT LEFT 0.05"),
            Send(0, "BLMPOP 0.05 2 a b LEFT"),
            Quiet(0, "HELLO 3"),
            Send(0, "BRPOPLPUSH a b 0.05"),
        ],
    );
}

/// Redis serves a blocked list client only when a key it waits on becomes ready
/// *holding a list* (`handleClientsBlockedOnKeys` checks the type): SET on `a` leaves
/// it blocked, and the push on `b` serves it. ferrokv runs the command again on any
/// change of `a`, which then answers WRONGTYPE as a first run must.
#[test]
fn woken_blpop_skips_a_key_that_became_a_string() {
    same_as_redis(
        "ready key",
        &[Start(0, "BLPOP a b 5"), Blocked(1), Send(1, "SET a s"), Send(1, "RPUSH b x"), Read(0)],
    );
}

/// Redis serves ready keys in the order they became ready: `b` first here.
#[test]
fn woken_blpop_pops_from_the_key_that_became_ready_first() {
    same_as_redis(
        "ready order",
        &[
            Start(0, "BLPOP a b 5"),
            Blocked(1),
            Send(1, "MULTI"),
            Send(1, "RPUSH b 1"),
            Send(1, "RPUSH a 2"),
            Send(1, "EXEC"),
            Read(0),
        ],
    );
}

/// Redis serves blocked clients after the whole transaction: inside it, the pushed
/// element is still there.
#[test]
fn waiters_are_served_after_exec_not_inside_it() {
    same_as_redis(
        "serve after exec",
        &[
            Start(0, "BLPOP b 5"),
            Blocked(1),
            Send(1, "MULTI"),
            Send(1, "RPUSH b 1"),
            Send(1, "LLEN b"),
            Send(1, "LPOP b"),
            Send(1, "RPUSH b 2"),
            Send(1, "EXEC"),
            Read(0),
        ],
    );
}
