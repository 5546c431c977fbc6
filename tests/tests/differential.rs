//! Differential tests: seeded random command streams sent to ferrokv-server and to
//! redis-server side by side; every reply must be byte-identical (see
//! `ferrokv_tests::diff` for what is normalised and how failures are reported).
//!
//! To add a command, add a `CommandGen` to the table of its family below (or a new
//! table plus a test fn); a generator returns the whole command, name first. Keep
//! arguments small (no 512 MB offsets that succeed) and expiry times far from now.
//!
//! Knobs: `FERROKV_SEED=n` runs one seed, `FERROKV_STEPS=n` sets the stream length,
//! `FERROKV_TARGET=redis` runs redis against redis (checks the tests themselves).

use ferrokv_tests::diff::{for_each_seed, steps, w, Check, CommandGen, Differ, Gen, StreamOptions, EDGE_INTS};

const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6];

/// Relative expiry in seconds: far from now, zero/negative (delete), or invalid.
fn expire_secs(g: &mut Gen) -> Vec<u8> {
    if g.chance(75) {
        g.pick(&["100", "1000", "10000", "100000"])
    } else {
        g.pick(&[
            "0",
            "-1",
            "abc",
            "",
            "1.5",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775",
            "4611686018427387",
        ])
    }
}

fn expire_ms(g: &mut Gen) -> Vec<u8> {
    if g.chance(75) {
        g.pick(&["100000", "1000000", "10000000", "100000000"])
    } else {
        g.pick(&["0", "-1", "abc", "1.5", "9223372036854775807", "-9223372036854775808", "9223372036854775"])
    }
}

/// Absolute expiry in Unix seconds: far future, invalid, or (`past`) long past.
fn unix_secs(g: &mut Gen, past: bool) -> Vec<u8> {
    if past && g.chance(30) {
        return g.pick(&["1", "1000"]);
    }
    g.pick(&["4000000000", "4000000001", "3000000000", "0", "-1", "abc", "9223372036854775807"])
}

fn unix_ms(g: &mut Gen, past: bool) -> Vec<u8> {
    if past && g.chance(30) {
        return g.pick(&["1", "1000"]);
    }
    g.pick(&["4000000000000", "4000000001000", "3000000000000", "0", "-1", "abc", "9223372036854775807"])
}

/// Option groups in random order, now and then one repeated.
fn options(g: &mut Gen, mut groups: Vec<Vec<Vec<u8>>>) -> Vec<Vec<u8>> {
    for i in (1..groups.len()).rev() {
        let j = g.rng.below(i as u64 + 1) as usize;
        groups.swap(i, j);
    }
    if !groups.is_empty() && g.chance(3) {
        let dup = groups[g.rng.below(groups.len() as u64) as usize].clone();
        groups.push(dup);
    }
    groups.into_iter().flatten().collect()
}

/// `[EX s | PX ms | EXAT t | PXAT t | KEEPTTL]` (or nothing), as SET takes it. SET
/// with a past EXAT keeps the key until it is next touched (DBSIZE still counts it,
/// and when it goes depends on the active expiry cycle), so SET gets no past times;
/// GETEX deletes at once and gets them.
fn set_expiry(g: &mut Gen, for_set: bool) -> Option<Vec<Vec<u8>>> {
    let past_ok = !for_set;
    Some(match g.rng.below(12) {
        0 => vec![g.kw("EX"), expire_secs(g)],
        1 => vec![g.kw("PX"), expire_ms(g)],
        2 => vec![g.kw("EXAT"), unix_secs(g, past_ok)],
        3 => vec![g.kw("PXAT"), unix_ms(g, past_ok)],
        4 if for_set => vec![g.kw("KEEPTTL")],
        4 => vec![g.kw("PERSIST")],
        _ => return None,
    })
}

fn set(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut groups = Vec::new();
    match g.rng.below(8) {
        0 => groups.push(vec![g.kw("NX")]),
        1 => groups.push(vec![g.kw("XX")]),
        _ => {}
    }
    if g.chance(20) {
        groups.push(vec![g.kw("GET")]);
    }
    groups.extend(set_expiry(g, true));
    if g.chance(3) {
        // Conflicting options: NX with XX, two expiries.
        groups.push(match g.rng.below(3) {
            0 => vec![g.kw("XX")],
            1 => vec![g.kw("EX"), w("100")],
            _ => vec![g.kw("KEEPTTL")],
        });
    }
    let mut args = vec![w("SET"), g.key(), g.value()];
    args.extend(options(g, groups));
    args
}

fn getex(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("GETEX"), g.key()];
    args.extend(set_expiry(g, false).into_iter().flatten());
    args
}

fn mset(g: &mut Gen, name: &str) -> Vec<Vec<u8>> {
    let mut args = vec![w(name)];
    for _ in 0..g.rng.range(1, 4) {
        args.push(g.key());
        args.push(g.value());
    }
    args
}

fn range_int(g: &mut Gen) -> Vec<u8> {
    if g.chance(85) {
        g.int_in(-60, 60)
    } else {
        g.pick(EDGE_INTS)
    }
}

fn setrange_offset(g: &mut Gen) -> Vec<u8> {
    // 536870912 and up always exceed the 512 MB limit: errors, never allocations.
    g.pick(&["0", "1", "3", "10", "44", "45", "100", "1000", "-1", "abc", "536870912", "4294967296"])
}

fn bit_offset(g: &mut Gen) -> Vec<u8> {
    if g.chance(85) {
        g.int_in(0, 400)
    } else {
        // 4294967296 and up are out of range (errors); nothing here allocates 512 MB.
        g.pick(&["-1", "abc", "1.5", "4294967296", "18446744073709551616", ""])
    }
}

fn start_end(g: &mut Gen) -> Vec<Vec<u8>> {
    vec![range_int(g), range_int(g)]
}

fn bitfield_type(g: &mut Gen) -> Vec<u8> {
    if g.chance(90) {
        g.pick(&["i1", "i4", "i8", "u8", "i16", "u16", "i32", "u32", "i63", "i64", "u1", "u63", "u5", "i7"])
    } else {
        g.pick(&["u64", "i65", "i0", "x8", "8", "I8", "U8", ""])
    }
}

fn bitfield_offset(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(10) {
        0..=5 => g.int_in(0, 100),
        6..=8 => format!("#{}", g.rng.below(8)).into_bytes(),
        _ => g.pick(&["-1", "abc", "#-1", "#", "4294967296"]),
    }
}

fn bitfield(g: &mut Gen, read_only: bool) -> Vec<Vec<u8>> {
    let mut args = vec![w(if read_only { "BITFIELD_RO" } else { "BITFIELD" }), g.key()];
    for _ in 0..g.rng.range(if read_only { 0 } else { 1 }, 4) {
        let op = if read_only { 0 } else { g.rng.below(4) };
        match op {
            0 => args.extend([g.kw("GET"), bitfield_type(g), bitfield_offset(g)]),
            1 => args.extend([g.kw("SET"), bitfield_type(g), bitfield_offset(g), g.int()]),
            2 => args.extend([g.kw("INCRBY"), bitfield_type(g), bitfield_offset(g), g.int()]),
            _ => {
                let mode = g.pick(&["WRAP", "SAT", "FAIL", "wrap", "BAD"]);
                args.extend([g.kw("OVERFLOW"), mode]);
            }
        }
    }
    args
}

fn lcs(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut groups = Vec::new();
    if g.chance(30) {
        groups.push(vec![g.kw("LEN")]);
    }
    if g.chance(40) {
        groups.push(vec![g.kw("IDX")]);
    }
    if g.chance(25) {
        let n = if g.chance(80) { g.int_in(0, 4) } else { g.int() };
        groups.push(vec![g.kw("MINMATCHLEN"), n]);
    }
    if g.chance(25) {
        groups.push(vec![g.kw("WITHMATCHLEN")]);
    }
    let mut args = vec![w("LCS"), g.key(), g.key()];
    args.extend(options(g, groups));
    args
}

fn expire_flags(g: &mut Gen) -> Vec<Vec<u8>> {
    match g.rng.below(20) {
        0..=9 => vec![],
        10..=17 => {
            let flag = g.pick(&["NX", "XX", "GT", "LT"]);
            vec![g.kw(std::str::from_utf8(&flag).unwrap_or("NX"))]
        }
        18 => vec![w("XX"), w("GT")],
        _ => {
            let pair = g.pick(&["NX XX", "GT LT", "NX GT", "LT NX", "XX LT"]);
            pair.split(|&b| b == b' ').map(|p| p.to_vec()).collect()
        }
    }
}

fn expire_cmd(g: &mut Gen, name: &str, time: fn(&mut Gen) -> Vec<u8>) -> Vec<Vec<u8>> {
    let mut args = vec![w(name), g.key(), time(g)];
    args.extend(expire_flags(g));
    args
}

/// Plain reads and writes, shared by every stream so that keys hold values. Only
/// string commands, so that the string families are tested even before the keyspace
/// commands exist.
const BASICS: &[CommandGen] = &[
    CommandGen::new("SET", 12, set),
    CommandGen::new("GET", 10, |g| vec![w("GET"), g.key()]),
    CommandGen::new("DEL", 3, |g| {
        let mut args = vec![w("DEL")];
        args.extend(g.keys(1, 3));
        args
    }),
];

/// Key inspection, mixed into every stream that tests keyspace commands.
const INSPECT: &[CommandGen] = &[
    CommandGen::new("EXISTS", 2, |g| {
        let mut args = vec![w("EXISTS")];
        args.extend(g.keys(1, 4));
        args
    }),
    CommandGen::new("TYPE", 1, |g| vec![w("TYPE"), g.key()]),
    CommandGen::new("OBJECT ENCODING", 3, |g| vec![w("OBJECT"), g.kw("ENCODING"), g.key()]),
];

const STRINGS: &[CommandGen] = &[
    CommandGen::new("GETEX", 3, getex),
    CommandGen::new("GETDEL", 2, |g| vec![w("GETDEL"), g.key()]),
    CommandGen::new("GETSET", 2, |g| vec![w("GETSET"), g.key(), g.value()]),
    CommandGen::new("MGET", 3, |g| {
        let mut args = vec![w("MGET")];
        args.extend(g.keys(1, 5));
        args
    }),
    CommandGen::new("MSET", 3, |g| mset(g, "MSET")),
    CommandGen::new("MSETNX", 2, |g| mset(g, "MSETNX")),
    CommandGen::new("SETNX", 2, |g| vec![w("SETNX"), g.key(), g.value()]),
    CommandGen::new("SETEX", 2, |g| vec![w("SETEX"), g.key(), expire_secs(g), g.value()]),
    CommandGen::new("PSETEX", 2, |g| vec![w("PSETEX"), g.key(), expire_ms(g), g.value()]),
    CommandGen::new("APPEND", 4, |g| vec![w("APPEND"), g.key(), g.value()]),
    CommandGen::new("STRLEN", 2, |g| vec![w("STRLEN"), g.key()]),
];

const COUNTERS: &[CommandGen] = &[
    CommandGen::new("INCR", 4, |g| vec![w("INCR"), g.key()]),
    CommandGen::new("DECR", 3, |g| vec![w("DECR"), g.key()]),
    CommandGen::new("INCRBY", 4, |g| vec![w("INCRBY"), g.key(), g.int()]),
    CommandGen::new("DECRBY", 3, |g| vec![w("DECRBY"), g.key(), g.int()]),
    CommandGen::new("INCRBYFLOAT", 5, |g| vec![w("INCRBYFLOAT"), g.key(), g.float()]),
    CommandGen::new("APPEND", 1, |g| vec![w("APPEND"), g.key(), g.value()]),
    CommandGen::new("STRLEN", 1, |g| vec![w("STRLEN"), g.key()]),
];

const BITS_AND_RANGES: &[CommandGen] = &[
    CommandGen::new("SETRANGE", 4, |g| {
        let value = if g.chance(10) { Vec::new() } else { g.value() };
        vec![w("SETRANGE"), g.key(), setrange_offset(g), value]
    }),
    CommandGen::new("GETRANGE", 4, |g| {
        let mut args = vec![w("GETRANGE"), g.key()];
        args.extend(start_end(g));
        args
    }),
    CommandGen::new("LCS", 3, lcs),
    CommandGen::new("SETBIT", 5, |g| {
        let bit = if g.chance(90) { g.pick(&["0", "1"]) } else { g.pick(&["2", "-1", "abc", ""]) };
        vec![w("SETBIT"), g.key(), bit_offset(g), bit]
    }),
    CommandGen::new("GETBIT", 3, |g| vec![w("GETBIT"), g.key(), bit_offset(g)]),
    CommandGen::new("BITCOUNT", 4, |g| {
        let mut args = vec![w("BITCOUNT"), g.key()];
        if g.chance(60) {
            args.extend(start_end(g));
            if g.chance(40) {
                let unit = g.pick(&["BYTE", "BIT", "bit", "WORD"]);
                args.push(unit);
            }
        }
        args
    }),
    CommandGen::new("BITPOS", 4, |g| {
        let bit = if g.chance(90) { g.pick(&["0", "1"]) } else { g.pick(&["2", "abc"]) };
        let mut args = vec![w("BITPOS"), g.key(), bit];
        if g.chance(60) {
            args.push(range_int(g));
            if g.chance(60) {
                args.push(range_int(g));
                if g.chance(40) {
                    let unit = g.pick(&["BYTE", "BIT", "bit", "WORD"]);
                    args.push(unit);
                }
            }
        }
        args
    }),
    CommandGen::new("BITOP", 3, |g| {
        let op = g.pick(&["AND", "OR", "XOR", "NOT", "and", "NAND"]);
        let mut args = vec![w("BITOP"), op, g.key()];
        args.extend(g.keys(1, 3));
        args
    }),
    CommandGen::new("BITFIELD", 5, |g| bitfield(g, false)),
    CommandGen::new("BITFIELD_RO", 2, |g| bitfield(g, true)),
    CommandGen::new("APPEND", 2, |g| vec![w("APPEND"), g.key(), g.value()]),
    CommandGen::new("STRLEN", 1, |g| vec![w("STRLEN"), g.key()]),
];

const KEYSPACE: &[CommandGen] = &[
    CommandGen::new("MSET", 3, |g| mset(g, "MSET")),
    CommandGen::new("UNLINK", 2, |g| {
        let mut args = vec![w("UNLINK")];
        args.extend(g.keys(1, 3));
        args
    }),
    CommandGen::new("TOUCH", 2, |g| {
        let mut args = vec![w("TOUCH")];
        args.extend(g.keys(1, 3));
        args
    }),
    CommandGen::new("RENAME", 3, |g| vec![w("RENAME"), g.key(), g.key()]),
    CommandGen::new("RENAMENX", 3, |g| vec![w("RENAMENX"), g.key(), g.key()]),
    CommandGen::new("COPY", 3, |g| {
        let mut args = vec![w("COPY"), g.key(), g.key()];
        if g.chance(40) {
            args.push(g.kw("REPLACE"));
        }
        if g.chance(5) {
            args.extend([g.kw("DB"), w("0")]);
        }
        args
    }),
    CommandGen::new("DBSIZE", 2, |_| vec![w("DBSIZE")]),
    CommandGen::new("KEYS", 2, |g| vec![w("KEYS"), g.pattern()]).check(Check::Unordered),
    CommandGen::new("SCAN", 2, |g| {
        let mut groups = Vec::new();
        if g.chance(50) {
            groups.push(vec![g.kw("MATCH"), g.pattern()]);
        }
        if g.chance(50) {
            let count = g.pick(&["1", "2", "3", "10", "1000"]);
            groups.push(vec![g.kw("COUNT"), count]);
        }
        if g.chance(20) {
            let kind = g.pick(&["string", "STRING", "list", "nosuchtype"]);
            groups.push(vec![g.kw("TYPE"), kind]);
        }
        let mut args = vec![w("SCAN"), w("0")];
        args.extend(options(g, groups));
        args
    })
    .check(Check::ScanAll),
    CommandGen::new("RANDOMKEY", 1, |_| vec![w("RANDOMKEY")]).check(Check::Shape),
    CommandGen::new("FLUSHDB", 1, |g| {
        let mut args = vec![w("FLUSHDB")];
        if g.chance(30) {
            args.push(g.pick(&["SYNC", "ASYNC"]));
        }
        args
    }),
];

const EXPIRY: &[CommandGen] = &[
    CommandGen::new("EXPIRE", 4, |g| expire_cmd(g, "EXPIRE", expire_secs)).settle(),
    CommandGen::new("PEXPIRE", 3, |g| expire_cmd(g, "PEXPIRE", expire_ms)).settle(),
    CommandGen::new("EXPIREAT", 3, |g| expire_cmd(g, "EXPIREAT", |g| unix_secs(g, true))),
    CommandGen::new("PEXPIREAT", 3, |g| expire_cmd(g, "PEXPIREAT", |g| unix_ms(g, true))),
    CommandGen::new("TTL", 4, |g| vec![w("TTL"), g.key()]).check(Check::Within(1)),
    CommandGen::new("PTTL", 3, |g| vec![w("PTTL"), g.key()]).check(Check::Within(1000)),
    CommandGen::new("EXPIRETIME", 2, |g| vec![w("EXPIRETIME"), g.key()]).check(Check::Within(1)),
    CommandGen::new("PEXPIRETIME", 2, |g| vec![w("PEXPIRETIME"), g.key()]).check(Check::Within(1000)),
    CommandGen::new("PERSIST", 3, |g| vec![w("PERSIST"), g.key()]),
    CommandGen::new("GETEX", 3, getex),
    CommandGen::new("SETEX", 2, |g| vec![w("SETEX"), g.key(), expire_secs(g), g.value()]),
    CommandGen::new("RENAME", 1, |g| vec![w("RENAME"), g.key(), g.key()]),
    CommandGen::new("COPY", 1, |g| vec![w("COPY"), g.key(), g.key(), w("REPLACE")]),
];

fn table(parts: &[&[CommandGen]]) -> Vec<CommandGen> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

fn all() -> Vec<CommandGen> {
    table(&[BASICS, INSPECT, STRINGS, COUNTERS, BITS_AND_RANGES, KEYSPACE, EXPIRY])
}

fn run(label: &str, ferrokv_args: &[&str], table: &[CommandGen], default_steps: usize) {
    run_pipelined(label, ferrokv_args, table, default_steps, 1);
}

fn run_pipelined(label: &str, ferrokv_args: &[&str], table: &[CommandGen], default_steps: usize, pipeline: usize) {
    let steps = steps(default_steps);
    // Streams without keyspace commands end with GETs only.
    let uses_keyspace = table.iter().any(|c| c.name == "EXISTS");
    let options = StreamOptions { final_check_keys: uses_keyspace, pipeline, ..StreamOptions::default() };
    for_each_seed(SEEDS, |seed| Differ::new(label, seed, ferrokv_args, 1, false).run(table, steps, &options));
}

#[test]
fn strings() {
    run("strings", &[], &table(&[BASICS, STRINGS]), 2000);
}

#[test]
fn counters() {
    run("counters", &[], &table(&[BASICS, COUNTERS]), 2000);
}

#[test]
fn bits_and_ranges() {
    run("bits_and_ranges", &[], &table(&[BASICS, BITS_AND_RANGES]), 2000);
}

#[test]
fn keyspace() {
    run("keyspace", &[], &table(&[BASICS, INSPECT, KEYSPACE]), 2000);
}

#[test]
fn expiry() {
    run("expiry", &[], &table(&[BASICS, INSPECT, EXPIRY]), 2000);
}

#[test]
fn everything() {
    run("everything", &[], &all(), 3000);
}

/// Keys spread over two shards: multi-key commands cross them.
#[test]
fn everything_two_threads() {
    run("everything_two_threads", &["--server-threads", "2"], &all(), 3000);
}

/// Pipelines of up to 32 commands per write: replies must keep request order.
#[test]
fn everything_pipelined() {
    run_pipelined("everything_pipelined", &[], &all(), 3000, 32);
}

/// Pipelines whose commands go to both shards: forwarded replies must keep order.
#[test]
fn everything_pipelined_two_threads() {
    run_pipelined("everything_pipelined_two_threads", &["--server-threads", "2"], &all(), 3000, 32);
}

/// `shard-hop forward` (the default is `lock`): a command for the other shard travels to
/// that shard's thread; pipelined, with multi-shard commands between them: replies keep
/// request order and every reply matches redis-server's.
#[test]
fn everything_pipelined_two_threads_shard_hop_forward() {
    let args = ["--server-threads", "2", "--shard-hop", "forward"];
    run_pipelined("everything_pipelined_two_threads_shard_hop_forward", &args, &all(), 3000, 32);
}

#[test]
fn transactions_two_threads_shard_hop_forward() {
    let steps = steps(3000);
    let table = table(&[BASICS, TRANSACTIONS]);
    let args = ["--server-threads", "2", "--shard-hop", "forward"];
    for_each_seed(SEEDS, |seed| {
        let options = StreamOptions { mutate_percent: 2, final_check_keys: false, ..StreamOptions::default() };
        Differ::new("transactions_two_threads_shard_hop_forward", seed, &args, 2, false).run(&table, steps, &options)
    });
}

fn run_resp3(label: &str, table: &[CommandGen]) {
    let steps = steps(2000);
    let uses_keyspace = table.iter().any(|c| c.name == "EXISTS");
    let options = StreamOptions { final_check_keys: uses_keyspace, ..StreamOptions::default() };
    for_each_seed(SEEDS, |seed| Differ::new(label, seed, &[], 1, true).run(table, steps, &options));
}

/// String commands over RESP3 (after HELLO 3 on both servers): nulls, and replies
/// that change type with the protocol.
#[test]
fn resp3_strings() {
    run_resp3("resp3_strings", &table(&[BASICS, STRINGS, COUNTERS]));
}

#[test]
fn resp3_everything() {
    run_resp3("resp3_everything", &all());
}

/// MULTI/EXEC/DISCARD/WATCH/UNWATCH interleaved on two connections, with queued
/// syntax errors (EXECABORT), runtime errors inside EXEC and WATCHed keys touched by
/// the other connection.
const TRANSACTIONS: &[CommandGen] = &[
    CommandGen::new("MULTI", 8, |_| vec![w("MULTI")]),
    CommandGen::new("EXEC", 8, |_| vec![w("EXEC")]),
    CommandGen::new("DISCARD", 2, |_| vec![w("DISCARD")]),
    CommandGen::new("WATCH", 5, |g| {
        let mut args = vec![w("WATCH")];
        args.extend(g.keys(1, 3));
        args
    }),
    CommandGen::new("UNWATCH", 2, |_| vec![w("UNWATCH")]),
    CommandGen::new("unknown command", 1, |g| vec![w("NOSUCHCOMMAND"), g.key()]),
    CommandGen::new("GET without key", 1, |_| vec![w("GET")]),
    CommandGen::new("SET bad option", 1, |g| vec![w("SET"), g.key(), g.value(), w("BADOPTION")]),
    CommandGen::new("INCR", 4, |g| vec![w("INCR"), g.key()]),
    CommandGen::new("INCRBYFLOAT", 2, |g| vec![w("INCRBYFLOAT"), g.key(), g.float()]),
    CommandGen::new("APPEND", 3, |g| vec![w("APPEND"), g.key(), g.value()]),
    CommandGen::new("MSET", 2, |g| mset(g, "MSET")),
    CommandGen::new("MGET", 2, |g| {
        let mut args = vec![w("MGET")];
        args.extend(g.keys(1, 4));
        args
    }),
    CommandGen::new("GETSET", 1, |g| vec![w("GETSET"), g.key(), g.value()]),
    CommandGen::new("SETNX", 1, |g| vec![w("SETNX"), g.key(), g.value()]),
    CommandGen::new("RENAME", 1, |g| vec![w("RENAME"), g.key(), g.key()]),
    CommandGen::new("PING", 1, |_| vec![w("PING")]),
];

#[test]
fn transactions() {
    let steps = steps(3000);
    let table = table(&[BASICS, TRANSACTIONS]);
    for_each_seed(SEEDS, |seed| {
        let options = StreamOptions { mutate_percent: 2, final_check_keys: false, ..StreamOptions::default() };
        Differ::new("transactions", seed, &[], 2, false).run(&table, steps, &options)
    });
}

#[test]
fn transactions_two_threads() {
    let steps = steps(3000);
    let table = table(&[BASICS, TRANSACTIONS]);
    for_each_seed(SEEDS, |seed| {
        let options = StreamOptions { mutate_percent: 2, final_check_keys: false, ..StreamOptions::default() };
        Differ::new("transactions_two_threads", seed, &["--server-threads", "2"], 2, false).run(&table, steps, &options)
    });
}

#[test]
fn transactions_pipelined_two_threads() {
    let steps = steps(3000);
    let table = table(&[BASICS, TRANSACTIONS]);
    for_each_seed(SEEDS, |seed| {
        let options =
            StreamOptions { mutate_percent: 2, final_check_keys: false, pipeline: 8, ..StreamOptions::default() };
        Differ::new("transactions_pipelined_two_threads", seed, &["--server-threads", "2"], 2, false)
            .run(&table, steps, &options)
    });
}
