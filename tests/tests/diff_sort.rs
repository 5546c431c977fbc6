//! Differential tests of SORT and SORT_RO: seeded random streams that build lists,
//! sets and sorted sets, weight strings and hashes, then sort them with every option
//! (BY with `*` and `->field`, BY nosort, LIMIT, GET `#` and patterns, ASC/DESC,
//! ALPHA, STORE), on ferrokv-server and redis-server 7.0 side by side.
//!
//! Every key lives in the slot of the hash tag `{s}`: ferrokv requires the keys BY and
//! GET patterns name to share the sorted key's slot (SORT replies an error otherwise,
//! where Redis would look them up; see families/sort.rs).
//!
//! What Redis leaves to its hash table's iteration order is kept out of the streams:
//! a `hashtable` set is never output unsorted (BY nosort) except through STORE (which
//! sorts it) or compared as an unordered array, and is never sorted ALPHA BY a
//! pattern (ties keep the iteration order); a sorted set is never sorted ALPHA BY a
//! pattern either (Redis loads it from its dict). Lists and `intset` sets iterate the
//! same way in both, so they get every option, ties included (which the stable sort
//! and the partial quicksort of BY ... LIMIT must order exactly as Redis does).
//!
//! No value reads out of range (`1e400`, `1e-320`): Redis checks `errno == ERANGE`
//! after `strtod` without clearing errno first, so after one such value every numeric
//! SORT fails until some other call happens to reset errno. ferrokv refuses exactly the
//! out-of-range values themselves.
//!
//! Replay: `FERROKV_SEED=n cargo test --release -p ferrokv-tests --test diff_sort -- <name>`.

use ferrokv_tests::diff::{concat, for_each_seed, steps, w, Check, CommandGen, Differ, Gen, StreamOptions};

const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8];

const LISTS: &[&str] = &["{s}list1", "{s}list2"];
/// Integer members only, few: always `intset`.
const INTSETS: &[&str] = &["{s}ints"];
/// String members: `hashtable`.
const SETS: &[&str] = &["{s}set"];
const ZSETS: &[&str] = &["{s}zset"];
/// Takes any type, strings included.
const ANY: &str = "{s}any";
const DEST: &[&str] = &["{s}dst", "{s}list1", "{s}any"];

/// List elements: numbers, number-like strings, words, NULs, duplicates.
fn list_elem(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(20) {
        0..=9 => g.int_in(-5, 25),
        10..=11 => g.pick(&["1.5", "-0.5", "1e1", " 3", "3 ", "", "0x10", "inf", "-inf", "1e308", "2.0"]),
        12 => g.pick(&["nan", "a", "b", "B", "ab", "abc", "a b", "zz", "\u{e9}", "10a"]),
        13 => g.pick(&["a\0b", "a\0c", "\0", "x\0", "1\0x"]),
        _ => g.int_in(0, 9),
    }
}

/// Members of the hashtable set: no NULs (ALPHA compares up to a NUL, and equal
/// prefixes would tie in iteration order).
fn set_elem(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(10) {
        0..=4 => g.int_in(-5, 25),
        5 => g.pick(&["1.5", "-0.5", "1e1", "inf", "2.0"]),
        _ => g.pick(&["a", "b", "B", "ab", "abc", "a b", "zz", "\u{e9}", "10a"]),
    }
}

/// A value for a weight key or hash field: mostly numbers (one word among the weights
/// a numeric SORT reads fails it), with ties.
fn weight(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(40) {
        0..=23 => g.int_in(-10, 10),
        24..=29 => format!("{}.{}", g.rng.range(-5, 5), g.rng.below(100)).into_bytes(),
        30..=33 => g.int_in(0, 3),
        34..=36 => {
            g.pick(&["0.1", "-2.25", "3.0e3", "1e-5", "1e308", "-1e308", "inf", "-inf", "+inf", "infinity", ".5"])
        }
        37 => g.pick(&["", " 1", "\t2", "1\0x", "0x1p3", "0x1p-1074", "-0", "1."]),
        _ => g.pick(&["a", "b", "B", "ab", "z", "nan", "1 ", "0x"]),
    }
}

/// The element a weight or hash key is named after.
fn weight_elem(g: &mut Gen) -> Vec<u8> {
    if g.chance(70) {
        g.int_in(-5, 25)
    } else {
        list_elem(g)
    }
}

fn named(prefix: &str, elem: &[u8]) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    k.extend_from_slice(elem);
    k
}

fn push(g: &mut Gen) -> Vec<Vec<u8>> {
    let cmd = g.pick(&["RPUSH", "LPUSH"]);
    let mut args = vec![cmd, g.pick(LISTS)];
    for _ in 0..g.rng.range(1, 12) {
        args.push(list_elem(g));
    }
    args
}

fn sadd_ints(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("SADD"), g.pick(INTSETS)];
    for _ in 0..g.rng.range(1, 8) {
        args.push(g.int_in(-5, 25));
    }
    args
}

fn sadd(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("SADD"), g.pick(SETS)];
    for _ in 0..g.rng.range(1, 8) {
        args.push(set_elem(g));
    }
    args
}

fn zadd(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("ZADD"), g.pick(ZSETS)];
    for _ in 0..g.rng.range(1, 6) {
        args.push(g.int_in(-3, 3));
        args.push(set_elem(g));
    }
    args
}

/// Puts a value of some type at the key that takes any.
fn any(g: &mut Gen) -> Vec<Vec<u8>> {
    match g.rng.below(5) {
        0 => vec![w("DEL"), w(ANY)],
        1 => vec![w("SET"), w(ANY), g.value()],
        2 => vec![w("RPUSH"), w(ANY), list_elem(g), list_elem(g)],
        3 => vec![w("SADD"), w(ANY), g.int_in(0, 9)],
        _ => vec![w("HSET"), w(ANY), w("f"), weight(g)],
    }
}

fn set_weight(g: &mut Gen) -> Vec<Vec<u8>> {
    let prefix = g.pick(&["{s}w_", "{s}v_"]);
    let elem = weight_elem(g);
    let key = named(std::str::from_utf8(&prefix).unwrap_or("{s}w_"), &elem);
    if g.chance(10) {
        return vec![w("DEL"), key];
    }
    if g.chance(5) {
        return vec![w("SADD"), key, w("1")];
    }
    vec![w("SET"), key, weight(g)]
}

fn set_field(g: &mut Gen) -> Vec<Vec<u8>> {
    let elem = weight_elem(g);
    let key = named("{s}h_", &elem);
    let field = g.pick(&["f", "g", "a->b"]);
    if g.chance(10) {
        return vec![w("HDEL"), key, field];
    }
    vec![w("HSET"), key, field, weight(g)]
}

/// What kind of collection a SORT runs on: decides which options are deterministic.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sorted {
    /// Lists and intsets: every option.
    Ordered,
    /// Hashtable sets: no unsorted output, no ALPHA BY pattern.
    HashSet,
    /// Sorted sets: no ALPHA BY pattern.
    ZSet,
}

fn by_pattern(g: &mut Gen) -> Vec<u8> {
    g.pick(&["{s}w_*", "{s}v_*", "{s}h_*->f", "{s}h_*->g", "{s}h_*->a->b", "{s}w_*x", "{s}nokey_*", "{s}h_*->"])
}

fn get_pattern(g: &mut Gen) -> Vec<u8> {
    g.pick(&["#", "{s}w_*", "{s}h_*->f", "{s}h_*->a->b", "{s}v_*", "{s}nokey_*", "nostar", "{s}h_*->nofield"])
}

/// The options of one SORT, in random order, keeping the output order defined for
/// `kind` (see the module comment).
fn sort_options(g: &mut Gen, kind: Sorted, readonly: bool) -> Vec<Vec<u8>> {
    let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
    let store = !readonly && g.chance(25);
    let mut alpha = g.chance(40);
    if g.chance(55) {
        let nosort = g.chance(20);
        let pattern = if nosort { g.pick(&["nosort", "constant", "w_\0*"]) } else { by_pattern(g) };
        if nosort && kind == Sorted::HashSet && !store {
            groups.push(vec![g.kw("BY"), by_pattern(g)]);
            alpha = false;
        } else {
            groups.push(vec![g.kw("BY"), pattern]);
            if !nosort && kind != Sorted::Ordered {
                alpha = false;
            }
        }
    }
    if g.chance(40) {
        let offset = if g.chance(85) {
            g.int_in(-2, 12)
        } else {
            g.pick(&["abc", "9223372036854775807", "-9223372036854775808"])
        };
        let count = if g.chance(85) { g.int_in(-2, 12) } else { g.pick(&["abc", "9223372036854775807", "1.5"]) };
        groups.push(vec![g.kw("LIMIT"), offset, count]);
    }
    for _ in 0..g.rng.below(4) {
        groups.push(vec![g.kw("GET"), get_pattern(g)]);
    }
    match g.rng.below(4) {
        0 => groups.push(vec![g.kw("ASC")]),
        1 => groups.push(vec![g.kw("DESC")]),
        _ => {}
    }
    if alpha {
        groups.push(vec![g.kw("ALPHA")]);
    }
    if store {
        groups.push(vec![g.kw("STORE"), g.pick(DEST)]);
    }
    // Options in any order (each group stays whole).
    for i in (1..groups.len()).rev() {
        let j = g.rng.below(i as u64 + 1) as usize;
        groups.swap(i, j);
    }
    groups.into_iter().flatten().collect()
}

/// A SORT or SORT_RO of `key`, a collection of `kind`.
fn sort_cmd(g: &mut Gen, key: Vec<u8>, kind: Sorted) -> Vec<Vec<u8>> {
    let readonly = g.chance(20);
    let mut args = vec![w(if readonly { "SORT_RO" } else { "SORT" }), key];
    args.extend(sort_options(g, kind, readonly));
    args
}

const COLLECTIONS: &[CommandGen] = &[
    CommandGen::new("RPUSH/LPUSH", 6, push),
    CommandGen::new("SADD ints", 4, sadd_ints),
    CommandGen::new("SADD", 4, sadd),
    CommandGen::new("ZADD", 4, zadd),
    CommandGen::new("any type", 2, any),
    CommandGen::new("SET weight", 10, set_weight),
    CommandGen::new("HSET field", 6, set_field),
    CommandGen::new("LPOP", 2, |g| vec![w("LPOP"), g.pick(LISTS), w("3")]),
    CommandGen::new("SREM", 1, |g| vec![w("SREM"), g.pick(INTSETS), g.int_in(-5, 25), g.int_in(-5, 25)]),
    CommandGen::new("DEL", 1, |g| vec![w("DEL"), g.pick(&["{s}list1", "{s}ints", "{s}set", "{s}zset", "{s}dst"])]),
    CommandGen::new("LRANGE dst", 3, |g| vec![w("LRANGE"), g.pick(DEST), w("0"), w("-1")]),
    CommandGen::new("TYPE", 1, |g| vec![w("TYPE"), g.pick(DEST)]),
    CommandGen::new("OBJECT ENCODING", 1, |g| {
        vec![w("OBJECT"), w("ENCODING"), g.pick(&["{s}zset", "{s}dst", "{s}ints"])]
    }),
];

/// Malformed SORTs.
fn bad_sort(g: &mut Gen) -> Vec<Vec<u8>> {
    let key = g.pick(&["{s}list1", "{s}ints", "{s}set", "{s}nokey"]);
    let tail: &[&str] = match g.rng.below(9) {
        0 => &["LIMIT", "0"],
        1 => &["LIMIT"],
        2 => &["BY"],
        3 => &["GET"],
        4 => &["STORE"],
        5 => &["NOSUCHOPTION"],
        6 => &["LIMIT", "0", "1", "2"],
        7 => &["ASC", "ALPHA", "x"],
        _ => &["LIMIT", "1", "abc", "BY"],
    };
    let mut args = vec![g.pick(&["SORT", "SORT_RO", "sort"]), key];
    args.extend(tail.iter().map(|t| w(t)));
    if g.chance(10) {
        args.truncate(1);
    }
    args
}

const SORTS: &[CommandGen] = &[
    CommandGen::new("SORT malformed", 1, bad_sort),
    CommandGen::new("SORT list", 8, |g| {
        let key = g.pick(LISTS);
        sort_cmd(g, key, Sorted::Ordered)
    }),
    CommandGen::new("SORT intset", 5, |g| {
        let key = g.pick(INTSETS);
        sort_cmd(g, key, Sorted::Ordered)
    }),
    CommandGen::new("SORT any", 2, |g| sort_cmd(g, w(ANY), Sorted::Ordered)),
    CommandGen::new("SORT missing", 1, |g| sort_cmd(g, w("{s}nokey"), Sorted::Ordered)),
];

/// Sorts of hashtable sets and sorted sets.
const SORTS_UNORDERED: &[CommandGen] = &[
    CommandGen::new("SORT set", 5, |g| {
        let key = g.pick(SETS);
        sort_cmd(g, key, Sorted::HashSet)
    }),
    // Members in the set's own order: compared as unordered arrays.
    CommandGen::new("SORT set nosort", 2, |g| {
        let mut args = vec![g.pick(&["SORT", "SORT_RO"]), g.pick(SETS), w("BY"), w("nosort")];
        if g.chance(50) {
            args.extend([w("GET"), w("#")]);
        }
        if g.chance(50) {
            args.push(w("DESC"));
        }
        args
    })
    .check(Check::Unordered),
    CommandGen::new("SORT zset", 5, |g| {
        let key = g.pick(ZSETS);
        sort_cmd(g, key, Sorted::ZSet)
    }),
];

fn run(label: &str, tables: &[&[CommandGen]], ferrokv_args: &[&str], resp3: bool) {
    let steps = steps(2000);
    let table = concat(tables);
    // The final GETs cover keys outside the `{s}` slot only; the streams check their
    // collections with LRANGE and SORT itself. No random argument changes: one could
    // put a string into the intset, or leave a hashtable set unsorted (SYNTAX has the
    // malformed commands instead).
    let options = StreamOptions { final_check: false, mutate_percent: 0, ..StreamOptions::default() };
    for_each_seed(SEEDS, |seed| Differ::new(label, seed, ferrokv_args, 1, resp3).run(&table, steps, &options));
}

#[test]
fn sort_lists_and_intsets() {
    run("sort_lists_and_intsets", &[COLLECTIONS, SORTS], &[], false);
}

#[test]
fn sort_sets_and_zsets() {
    run("sort_sets_and_zsets", &[COLLECTIONS, SORTS_UNORDERED], &[], false);
}

#[test]
fn sort_resp3_two_threads() {
    run("sort_resp3_two_threads", &[COLLECTIONS, SORTS, SORTS_UNORDERED], &["--server-threads", "2"], true);
}
