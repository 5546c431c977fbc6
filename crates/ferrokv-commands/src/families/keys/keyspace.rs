//! Commands on the keyspace as a whole: KEYS, SCAN, RANDOMKEY, DBSIZE, FLUSHDB,
//! FLUSHALL. They name no key, so the server gives them every shard's database
//! (see [`ALL_SHARDS`](super::ALL_SHARDS)).
//!
//! # SCAN cursors
//! Redis's cursor is a position in one hash table, reverse-binary so that a table
//! resized mid-scan still yields every key. Here the keyspace is split into hash
//! slots, possibly held by several shards, so the cursor is simply the next slot to
//! visit: 0 starts, and a returned 0 means done. One call returns *every* live key of
//! each slot it visits, and visits slots until it has at least COUNT keys (before
//! MATCH and TYPE filter them) or runs out of slots. So a full iteration returns every
//! key that exists for its whole duration, wherever it lives, exactly once (a key
//! moved between slots meanwhile may be missed or repeated, as Redis allows), and
//! COUNT is a hint, as in Redis: a big slot comes back whole. The cursor is a plain
//! number below 16384 that any client can hold; larger cursors end the scan.

use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::glob::glob_match;
use ferrokv_store::{key_slot, SLOTS};

/// KEYS pattern
///
/// Every live key matching the glob `pattern`, in no particular order.
pub fn keys(ctx: &mut Ctx, args: &Args) {
    let (pattern, now) = (args.get(1), ctx.now_ms);
    let mut found = Vec::new();
    ctx.keys.each_db(&mut |db| {
        let from = found.len();
        db.keys_matching(pattern, now, &mut found);
        if db.any_hidden() {
            let mut i = from;
            while i < found.len() {
                if db.slot_hidden(key_slot(&found[i])) {
                    found.swap_remove(i);
                } else {
                    i += 1;
                }
            }
        }
    });
    ctx.out.array(found.len());
    for k in &found {
        ctx.out.bulk(k);
    }
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
///
/// Replies `[next-cursor, [key ...]]`; see the module comment for what the cursor
/// is. TYPE compares type names case-insensitively; an unknown name matches nothing.
pub fn scan(ctx: &mut Ctx, args: &Args) {
    let Some(cursor) = parse_cursor(args.get(1)) else {
        return ctx.out.error("ERR invalid cursor");
    };
    let mut count: i64 = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut type_name: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let (opt, has_value) = (args.get(i), args.len() - i >= 2);
        if eq_ic(opt, "count") && has_value {
            match parse_i64(args.get(i + 1)) {
                None => return ctx.out.error(ERR_NOT_INT),
                Some(n) if n < 1 => return ctx.out.error(ERR_SYNTAX),
                Some(n) => count = n,
            }
        } else if eq_ic(opt, "match") && has_value {
            let p = args.get(i + 1);
            pattern = if p == b"*" { None } else { Some(p) };
        } else if eq_ic(opt, "type") && has_value {
            type_name = Some(args.get(i + 1));
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
        i += 2;
    }

    let now = ctx.now_ms;
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut visited = 0i64;
    let mut slot = cursor.min(SLOTS as u64) as usize;
    while slot < SLOTS && visited < count {
        let db = ctx.keys.db_for_slot(slot as u16);
        if db.slot_hidden(slot as u16) {
            slot += 1;
            continue;
        }
        for (key, type_of) in db.slot_types(slot as u16, now) {
            visited += 1;
            if pattern.is_some_and(|p| !glob_match(p, key, false)) {
                continue;
            }
            if type_name.is_some_and(|t| !t.eq_ignore_ascii_case(type_of.as_bytes())) {
                continue;
            }
            found.push(key.to_vec());
        }
        slot += 1;
    }
    let next = if slot >= SLOTS { 0 } else { slot };
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(found.len());
    for k in &found {
        ctx.out.bulk(k);
    }
}

use crate::util::parse_scan_cursor as parse_cursor;

/// RANDOMKEY
///
/// A random live key, or null when there is none. Each key is about equally likely,
/// whichever shard holds it. Keys of hidden slots (see `Db::set_hidden_slots`) are
/// drawn again; after many such draws in a row the first visible slot's first key is
/// taken instead, so a keyspace that is mostly hidden does not make it loop long.
pub fn randomkey(ctx: &mut Ctx, _args: &Args) {
    let now = ctx.now_ms;
    let mut hidden_draws = 0;
    loop {
        let mut sizes = Vec::new();
        let mut roll = None;
        ctx.keys.each_db(&mut |db| {
            sizes.push(db.visible_len() as u64);
            roll.get_or_insert_with(|| db.random_u64());
        });
        let total: u64 = sizes.iter().sum();
        let Some(roll) = roll.filter(|_| total > 0) else {
            return ctx.out.null();
        };
        // Pick a database weighted by its size, then a key in it.
        let mut target = roll % total;
        let (mut i, mut picked) = (0, None);
        ctx.keys.each_db(&mut |db| {
            if picked.is_none() {
                if target < sizes[i] {
                    picked = Some(db.random_key(now));
                } else {
                    target -= sizes[i];
                }
            }
            i += 1;
        });
        // `Some(None)`: that database held only expired keys, now deleted. Try again.
        let Some(Some(key)) = picked else { continue };
        let mut hidden = false;
        ctx.keys.each_db(&mut |db| hidden |= db.slot_hidden(key_slot(&key)));
        if !hidden {
            return ctx.out.bulk(&key);
        }
        hidden_draws += 1;
        if hidden_draws == 64 {
            return match first_visible_key(ctx) {
                Some(key) => ctx.out.bulk(&key),
                None => ctx.out.null(),
            };
        }
    }
}

/// The first live key of the first slot that is not hidden, if any.
fn first_visible_key(ctx: &mut Ctx) -> Option<Vec<u8>> {
    let now = ctx.now_ms;
    (0..SLOTS as u16).find_map(|slot| {
        let db = ctx.keys.db_for_slot(slot);
        if db.slot_hidden(slot) || db.slot_len(slot) == 0 {
            return None;
        }
        db.slot_types(slot, now).next().map(|(k, _)| k.to_vec())
    })
}

/// DBSIZE
///
/// The number of keys, counting expired ones not yet deleted, as Redis does (and, as
/// Redis 8.4, not the keys of slots being imported or trimmed).
pub fn dbsize(ctx: &mut Ctx, _args: &Args) {
    let mut n = 0;
    ctx.keys.each_db(&mut |db| n += db.visible_len());
    ctx.out.integer(n as i64);
}

/// FLUSHDB [ASYNC | SYNC]
///
/// Deletes every key. ASYNC and SYNC are accepted; freeing happens in place.
pub fn flushdb(ctx: &mut Ctx, args: &Args) {
    if !flush_options_ok(args) {
        return ctx.out.error(ERR_SYNTAX);
    }
    ctx.dirty += clear_all(ctx);
    // Propagated even on an empty keyspace, as Redis forces it.
    ctx.force_propagation();
    ctx.out.ok();
}

/// FLUSHALL [ASYNC | SYNC]
///
/// FLUSHDB for every database. Redis counts one more change than keys deleted, so
/// the command propagates even on an empty keyspace.
pub fn flushall(ctx: &mut Ctx, args: &Args) {
    if !flush_options_ok(args) {
        return ctx.out.error(ERR_SYNTAX);
    }
    let mut n = 0;
    ctx.keys.each_db(&mut |db| n += db.clear_all() as u64);
    ctx.dirty += n + 1;
    ctx.out.ok();
}

/// SWAPDB index1 index2
///
/// Exchanges the keys of two databases (on every shard, under every lock). Clients
/// stay in the database they selected: their watched keys present in either database
/// count as changed, and blocked clients are offered the keys they wait on.
pub fn swapdb(ctx: &mut Ctx, args: &Args) {
    if ctx.cfg.cluster_mode {
        return ctx.out.error("ERR SWAPDB is not allowed in cluster mode");
    }
    let Some(a) = parse_i64(args.get(1)).filter(|n| i32::try_from(*n).is_ok()) else {
        return ctx.out.error("ERR invalid first DB index");
    };
    let Some(b) = parse_i64(args.get(2)).filter(|n| i32::try_from(*n).is_ok()) else {
        return ctx.out.error("ERR invalid second DB index");
    };
    let n = ctx.cfg.databases as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return ctx.out.error("ERR DB index is out of range");
    }
    ctx.keys.each_db(&mut |db| db.swap_databases(a as usize, b as usize));
    ctx.dirty += 1;
    ctx.out.ok();
}

fn flush_options_ok(args: &Args) -> bool {
    match args.len() {
        1 => true,
        2 => eq_ic(args.get(1), "sync") || eq_ic(args.get(1), "async"),
        _ => false,
    }
}

/// Empties every database; returns how many keys there were.
fn clear_all(ctx: &mut Ctx) -> u64 {
    let mut n = 0;
    ctx.keys.each_db(&mut |db| n += db.clear() as u64);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Harness, TwoDbs};
    use ferrokv_resp::Proto;
    use std::collections::BTreeSet;

    /// Splits a SCAN reply into its cursor and keys.
    fn parse_scan(reply: &str) -> (u64, Vec<String>) {
        let lines: Vec<&str> = reply.split("\r\n").collect();
        assert_eq!(lines[0], "*2", "{reply}");
        let cursor = lines[2].parse().unwrap();
        let n: usize = lines[3][1..].parse().unwrap();
        let keys = (0..n).map(|i| lines[5 + 2 * i].to_string()).collect();
        (cursor, keys)
    }

    fn sorted_keys(reply: &str) -> Vec<String> {
        let lines: Vec<&str> = reply.split("\r\n").collect();
        let mut keys: Vec<String> =
            lines.iter().skip(2).step_by(2).filter(|l| !l.is_empty()).map(|l| l.to_string()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn keys_by_pattern() {
        let mut h = Harness::with_seed(42);
        for k in ["user:1", "user:2", "other", "u"] {
            h.cmd(&format!("SET {k} v"));
        }
        h.cmd("PEXPIRE user:2 10");
        assert_eq!(sorted_keys(&h.cmd("KEYS user:*")), ["user:1", "user:2"]);
        h.now += 10;
        assert_eq!(h.cmd("KEYS user:*"), "*1\r\n$6\r\nuser:1\r\n");
        assert_eq!(sorted_keys(&h.cmd("KEYS *")), ["other", "u", "user:1"]);
        assert_eq!(h.cmd("KEYS ["), "*0\r\n");
        assert_eq!(h.cmd("KEYS u?er:[0-9]"), "*1\r\n$6\r\nuser:1\r\n");
    }

    #[test]
    fn keys_across_databases() {
        let mut t = TwoDbs::new();
        let (a, b) = t.keys_in_different_dbs();
        t.run(&["SET", &a, "1"]);
        t.run(&["SET", &b, "1"]);
        assert_eq!(sorted_keys(&t.run(&["KEYS", "*"])), [a.clone(), b.clone()]);
        assert_eq!(t.run(&["DBSIZE"]), ":2\r\n");
        assert_eq!(t.run(&["FLUSHALL"]), "+OK\r\n");
        assert_eq!(t.run(&["DBSIZE"]), ":0\r\n");
    }

    #[test]
    fn cursor_parsing_follows_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+0"), Some(0));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b"abc"), None);
        assert_eq!(parse_cursor(b" 0"), None);
        assert_eq!(parse_cursor(b"0 "), None);
        assert_eq!(parse_cursor(b"+"), None);
        assert_eq!(parse_cursor(b"12\x00x"), Some(12));
    }

    #[test]
    fn scan_errors() {
        let mut h = Harness::with_seed(42);
        assert_eq!(h.cmd("SCAN abc"), "-ERR invalid cursor\r\n");
        assert_eq!(h.cmd("SCAN 18446744073709551616"), "-ERR invalid cursor\r\n");
        assert_eq!(h.cmd("SCAN 0 COUNT 0"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SCAN 0 COUNT -1"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SCAN 0 COUNT abc"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("SCAN 0 COUNT"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SCAN 0 MATCH"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SCAN 0 foo bar"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("SCAN abc COUNT 0"), "-ERR invalid cursor\r\n");
        assert_eq!(h.cmd("SCAN"), "-ERR wrong number of arguments for 'scan' command\r\n");
    }

    #[test]
    fn scan_small_keyspace_in_one_call() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a 1");
        h.cmd("SET b x");
        let (cursor, mut keys) = parse_scan(&h.cmd("SCAN 0"));
        keys.sort();
        assert_eq!((cursor, keys), (0, vec!["a".to_string(), "b".to_string()]));
        assert_eq!(parse_scan(&h.cmd("SCAN 0 MATCH a")).1, ["a"]);
        assert_eq!(parse_scan(&h.cmd("SCAN 0 TYPE STRING MATCH b")).1, ["b"]);
        assert_eq!(h.cmd("SCAN 0 TYPE foo"), "*2\r\n$1\r\n0\r\n*0\r\n");
        assert_eq!(h.cmd("SCAN -1"), "*2\r\n$1\r\n0\r\n*0\r\n");
        assert_eq!(h.cmd("SCAN 16384"), "*2\r\n$1\r\n0\r\n*0\r\n");
        h.proto = Proto::Resp3;
        assert_eq!(h.cmd("SCAN 16384"), "*2\r\n$1\r\n0\r\n*0\r\n");
    }

    #[test]
    fn scan_returns_every_key_once_across_databases() {
        let mut t = TwoDbs::new();
        let mut want = BTreeSet::new();
        for i in 0..500 {
            let k = format!("k{i}");
            t.run(&["SET", &k, "v"]);
            want.insert(k);
        }
        // A big slot comes back whole.
        for i in 0..50 {
            let k = format!("{{tag}}{i}");
            t.run(&["SET", &k, "v"]);
            want.insert(k);
        }
        t.run(&["PEXPIRE", "k0", "1"]);
        t.now += 1;
        want.remove("k0");
        let mut got = BTreeSet::new();
        let (mut cursor, mut calls) = (0u64, 0);
        loop {
            let (next, keys) = parse_scan(&t.run(&["SCAN", &cursor.to_string(), "COUNT", "7"]));
            calls += 1;
            for k in keys {
                assert!(got.insert(k.clone()), "{k} twice");
            }
            if next == 0 {
                break;
            }
            assert!(next > cursor && next < 16384);
            cursor = next;
        }
        assert_eq!(got, want);
        assert!(calls > 50, "{calls}");
    }

    #[test]
    fn scan_count_is_a_hint() {
        let mut h = Harness::with_seed(42);
        for i in 0..30 {
            h.cmd(&format!("SET {{t}}{i} v"));
        }
        h.cmd("SET other v");
        let (_, keys) = parse_scan(&h.cmd("SCAN 0 COUNT 1 MATCH {t}*"));
        // Every key of the first non-empty slot, all of it: either "other" alone
        // (filtered out to nothing) or the 30 tagged keys.
        assert!(keys.is_empty() || keys.len() == 30, "{keys:?}");
    }

    /// Keys of hidden slots (being imported or trimmed) are left out by KEYS, SCAN,
    /// RANDOMKEY and DBSIZE, on every shard, and come back when the slot is shown.
    #[test]
    fn hidden_slots_are_left_out() {
        let mut t = TwoDbs::new();
        let hidden = std::sync::Arc::new(ferrokv_store::SlotSet::default());
        t.dbs.iter_mut().for_each(|d| d.set_hidden_slots(hidden.clone()));
        let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
        for k in &keys {
            assert_eq!(t.run(&["SET", k, "v"]), "+OK\r\n");
        }
        // Hide the slots of a quarter of the keys, on both halves of the keyspace.
        let hide: BTreeSet<u16> = keys.iter().step_by(4).map(|k| key_slot(k.as_bytes())).collect();
        assert!(hide.iter().any(|&s| s < 8192) && hide.iter().any(|&s| s >= 8192));
        hide.iter().for_each(|&s| hidden.insert(s));
        let visible: BTreeSet<String> =
            keys.iter().filter(|k| !hide.contains(&key_slot(k.as_bytes()))).cloned().collect();
        assert_eq!(t.run(&["DBSIZE"]), format!(":{}\r\n", visible.len()));
        let listed: BTreeSet<String> = sorted_keys(&t.run(&["KEYS", "*"])).into_iter().collect();
        assert_eq!(listed, visible);
        let (mut cursor, mut scanned) = (0, BTreeSet::new());
        loop {
            let (next, keys) = parse_scan(&t.run(&["SCAN", &cursor.to_string(), "COUNT", "50"]));
            scanned.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(scanned, visible);
        for _ in 0..50 {
            let r = t.run(&["RANDOMKEY"]);
            let key = r.split("\r\n").nth(1).unwrap().to_string();
            assert!(visible.contains(&key), "{key} is hidden");
        }
        // Only hidden keys left: RANDOMKEY answers null rather than loop.
        for k in &visible {
            t.run(&["DEL", k]);
        }
        assert_eq!(t.run(&["RANDOMKEY"]), "$-1\r\n");
        assert_eq!(t.run(&["DBSIZE"]), ":0\r\n");
        hide.iter().for_each(|&s| hidden.remove(s));
        assert_eq!(t.run(&["DBSIZE"]), format!(":{}\r\n", keys.len() - visible.len()));
    }

    #[test]
    fn randomkey() {
        let mut h = Harness::with_seed(42);
        assert_eq!(h.cmd("RANDOMKEY"), "$-1\r\n");
        h.proto = Proto::Resp3;
        assert_eq!(h.cmd("RANDOMKEY"), "_\r\n");
        let mut h = Harness::with_seed(42);
        h.cmd("SET only v");
        assert_eq!(h.cmd("RANDOMKEY"), "$4\r\nonly\r\n");
        h.cmd("PEXPIRE only 5");
        h.now += 5;
        assert_eq!(h.cmd("RANDOMKEY"), "$-1\r\n");
        assert_eq!(h.db.len(), 0);
    }

    #[test]
    fn randomkey_reaches_every_database() {
        let mut t = TwoDbs::new();
        let (a, b) = t.keys_in_different_dbs();
        t.run(&["SET", &a, "1"]);
        t.run(&["SET", &b, "1"]);
        let mut seen = BTreeSet::new();
        for _ in 0..100 {
            seen.insert(t.run(&["RANDOMKEY"]));
        }
        assert_eq!(seen.len(), 2);
        // A database of expired keys only: they are deleted and the other answers.
        t.run(&["PEXPIRE", &a, "1"]);
        t.now += 1;
        for _ in 0..20 {
            assert_eq!(t.run(&["RANDOMKEY"]), format!("${}\r\n{b}\r\n", b.len()));
        }
    }

    #[test]
    fn flush() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a 1");
        h.cmd("SET b 1");
        h.db.watch(b"a");
        h.db.watch(b"zz");
        assert_eq!(h.cmd("DBSIZE"), ":2\r\n");
        assert_eq!(h.cmd("FLUSHDB"), "+OK\r\n");
        assert_eq!(h.dirty, 2);
        assert_eq!((h.db.watch_version(b"a"), h.db.watch_version(b"zz")), (1, 0));
        assert_eq!(h.cmd("DBSIZE"), ":0\r\n");
        h.cmd("SET a 1");
        assert_eq!(h.cmd("FLUSHALL ASYNC"), "+OK\r\n");
        assert_eq!(h.dirty, 2);
        assert_eq!(h.cmd("FLUSHALL sync"), "+OK\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("FLUSHDB async"), "+OK\r\n");
        assert_eq!(h.cmd("FLUSHALL foo"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("FLUSHALL sync async"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("FLUSHDB x y"), "-ERR syntax error\r\n");
    }
}
