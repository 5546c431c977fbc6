//! Commands on single fields: HSET, HSETNX, HMSET, HGET, HMGET, HDEL, HEXISTS, HLEN,
//! HSTRLEN.

use super::{limits, read_hash, reply_elem, write_hash};
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::Value;

/// HSET key field value [field value ...]
///
/// Replies the number of fields created.
pub fn hset(ctx: &mut Ctx, args: &Args) {
    set_pairs(ctx, args, "hset");
}

/// HMSET key field value [field value ...]
///
/// HSET that replies `+OK`.
pub fn hmset(ctx: &mut Ctx, args: &Args) {
    set_pairs(ctx, args, "hmset");
}

fn set_pairs(ctx: &mut Ctx, args: &Args, name: &str) {
    if args.len() % 2 == 1 {
        return ctx.out.error(&arity_error(name));
    }
    let key = args.get(1);
    let limits = limits(ctx.cfg);
    let created = write_hash(ctx, key, |h, _| {
        h.prepare_insert(args.iter().skip(2), &limits);
        (2..args.len()).step_by(2).filter(|&i| h.set(args.get(i), args.get(i + 1), &limits)).count()
    });
    let Ok(created) = created else { return };
    ctx.touch(key);
    // Redis counts one change per pair.
    ctx.dirty += (args.len() as u64 - 2) / 2 - 1;
    if name == "hset" {
        ctx.out.integer(created as i64);
    } else {
        ctx.out.ok();
    }
}

/// HSETNX key field value
///
/// Sets the field only if it does not exist: 1 if set, 0 if not.
pub fn hsetnx(ctx: &mut Ctx, args: &Args) {
    let (key, field, value) = (args.get(1), args.get(2), args.get(3));
    let limits = limits(ctx.cfg);
    let set = write_hash(ctx, key, |h, _| {
        if h.contains(field) {
            return false;
        }
        h.prepare_insert([field, value], &limits);
        h.set(field, value, &limits);
        true
    });
    match set {
        Ok(true) => {
            ctx.touch(key);
            ctx.out.integer(1);
        }
        Ok(false) => ctx.out.integer(0),
        Err(()) => {}
    }
}

/// HGET key field
pub fn hget(ctx: &mut Ctx, args: &Args) {
    let (key, field, now) = (args.get(1), args.get(2), ctx.now_ms);
    let db = ctx.keys.db(key);
    match read_hash(db, key, now, ctx.out) {
        Ok(Some(h)) => match h.get(field) {
            Some(v) => reply_elem(ctx.out, v),
            None => ctx.out.null(),
        },
        Ok(None) => ctx.out.null(),
        Err(()) => {}
    }
}

/// HMGET key field [field ...]
///
/// A value or null per field; all nulls when the key is missing.
pub fn hmget(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(1), ctx.now_ms);
    let db = ctx.keys.db(key);
    let Ok(h) = read_hash(db, key, now, ctx.out) else { return };
    ctx.out.array(args.len() - 2);
    for field in args.iter().skip(2) {
        match h.and_then(|h| h.get(field)) {
            Some(v) => reply_elem(ctx.out, v),
            None => ctx.out.null(),
        }
    }
}

/// HDEL key field [field ...]
///
/// Replies the number of fields removed; the key goes with its last field.
pub fn hdel(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(1), ctx.now_ms);
    let db = ctx.keys.db(key);
    let (deleted, emptied) = match db.get(key, now) {
        None => return ctx.out.integer(0),
        Some(e) => {
            let Value::Hash(h) = &mut e.value else { return ctx.out.error(ERR_WRONGTYPE) };
            let mut deleted = 0u64;
            for field in args.iter().skip(2) {
                if h.remove(field) {
                    deleted += 1;
                    if h.is_empty() {
                        break;
                    }
                }
            }
            (deleted, h.is_empty())
        }
    };
    if emptied {
        db.remove(key, now);
    }
    if deleted > 0 {
        ctx.touch(key);
        ctx.dirty += deleted - 1;
    }
    ctx.out.integer(deleted as i64);
}

/// HEXISTS key field
pub fn hexists(ctx: &mut Ctx, args: &Args) {
    let (key, field, now) = (args.get(1), args.get(2), ctx.now_ms);
    let db = ctx.keys.db(key);
    if let Ok(h) = read_hash(db, key, now, ctx.out) {
        ctx.out.integer(h.is_some_and(|h| h.contains(field)) as i64);
    }
}

/// HLEN key
pub fn hlen(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(1), ctx.now_ms);
    let db = ctx.keys.db(key);
    if let Ok(h) = read_hash(db, key, now, ctx.out) {
        ctx.out.integer(h.map_or(0, |h| h.len()) as i64);
    }
}

/// HSTRLEN key field
///
/// Length of the value, 0 when the field or key is missing.
pub fn hstrlen(ctx: &mut Ctx, args: &Args) {
    let (key, field, now) = (args.get(1), args.get(2), ctx.now_ms);
    let db = ctx.keys.db(key);
    if let Ok(h) = read_hash(db, key, now, ctx.out) {
        ctx.out.integer(h.and_then(|h| h.get(field)).map_or(0, |v| v.len()) as i64);
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    #[test]
    fn hset_creates_updates_and_counts() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("HSET k a 1 b 2 a 3"), ":2\r\n");
        assert_eq!(h.dirty, 3);
        assert_eq!(h.cmd("HGET k a"), "$1\r\n3\r\n");
        assert_eq!(h.cmd("HSET k b x c y"), ":1\r\n");
        assert_eq!(h.cmd("HMSET k d 4"), "+OK\r\n");
        assert_eq!(h.cmd("HLEN k"), ":4\r\n");
        assert_eq!(h.cmd("HSET k a"), "-ERR wrong number of arguments for 'hset' command\r\n");
        assert_eq!(h.cmd("HMSET k a 1 b"), "-ERR wrong number of arguments for 'hmset' command\r\n");
        assert_eq!(h.cmd("HSET k"), "-ERR wrong number of arguments for 'hset' command\r\n");
        assert_eq!(
            h.cmd("HGETALL k"),
            "*8\r\n$1\r\na\r\n$1\r\n3\r\n$1\r\nb\r\n$1\r\nx\r\n$1\r\nc\r\n$1\r\ny\r\n$1\r\nd\r\n$1\r\n4\r\n"
        );
        assert_eq!(h.cmd("TYPE k"), "+hash\r\n");
    }

    #[test]
    fn hset_keeps_ttl() {
        let mut h = Harness::new();
        h.cmd("HSET k a 1");
        h.cmd("EXPIRE k 100");
        h.cmd("HSET k b 2");
        assert_eq!(h.expire_at("k"), Some(h.now + 100_000));
    }

    #[test]
    fn encoding_follows_the_thresholds() {
        let mut h = Harness::new();
        h.cfg.hash_max_listpack_entries = 2;
        h.cfg.hash_max_listpack_value = 4;
        h.cmd("HSET k a 1 b 2");
        assert_eq!(h.encoding("k"), "listpack");
        h.cmd("HSET k c 3");
        assert_eq!(h.encoding("k"), "hashtable");
        h.cmd("HDEL k a b");
        assert_eq!(h.encoding("k"), "hashtable");

        h.cmd("HSET v a 1234");
        assert_eq!(h.encoding("v"), "listpack");
        // The check covers every argument before anything is inserted.
        h.cmd("HSET v b 1 c 12345");
        assert_eq!(h.encoding("v"), "hashtable");
        h.cmd("HSET f abcde 1");
        assert_eq!(h.encoding("f"), "hashtable");

        // HSETNX on an existing field changes nothing, not even the encoding.
        h.cmd("HSET n a 1");
        assert_eq!(h.cmd("HSETNX n a 123456789"), ":0\r\n");
        assert_eq!(h.encoding("n"), "listpack");
        assert_eq!(h.cmd("HSETNX n b 123456789"), ":1\r\n");
        assert_eq!(h.encoding("n"), "hashtable");
    }

    #[test]
    fn hsetnx() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("HSETNX k f v"), ":1\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("HSETNX k f w"), ":0\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.cmd("HGET k f"), "$1\r\nv\r\n");
    }

    #[test]
    fn reads_of_missing_keys_and_fields() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("HGET k f"), "$-1\r\n");
        assert_eq!(h.cmd("HMGET k f g"), "*2\r\n$-1\r\n$-1\r\n");
        assert_eq!(h.cmd("HLEN k"), ":0\r\n");
        assert_eq!(h.cmd("HEXISTS k f"), ":0\r\n");
        assert_eq!(h.cmd("HSTRLEN k f"), ":0\r\n");
        h.cmd("HSET k f -123 g hello");
        assert_eq!(h.cmd("HMGET k g x f"), "*3\r\n$5\r\nhello\r\n$-1\r\n$4\r\n-123\r\n");
        assert_eq!(h.cmd("HEXISTS k g"), ":1\r\n");
        assert_eq!(h.cmd("HSTRLEN k f"), ":4\r\n");
        assert_eq!(h.cmd("HSTRLEN k g"), ":5\r\n");
        assert_eq!(h.cmd("HSTRLEN k x"), ":0\r\n");
        let mut h3 = Harness::resp3();
        assert_eq!(h3.cmd("HGET k f"), "_\r\n");
        assert_eq!(h3.cmd("HMGET k f"), "*1\r\n_\r\n");
    }

    #[test]
    fn hdel_removes_fields_then_the_key() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("HDEL k a"), ":0\r\n");
        h.cmd("HSET k a 1 b 2 c 3");
        assert_eq!(h.cmd("HDEL k a x a"), ":1\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("HDEL k x"), ":0\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(h.cmd("HDEL k b c d"), ":2\r\n");
        assert_eq!(h.dirty, 2);
        assert_eq!(h.cmd("EXISTS k"), ":0\r\n");
    }

    #[test]
    fn integers_round_trip_as_text() {
        let mut h = Harness::new();
        for v in ["0", "-0", "007", "+1", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "1e3"] {
            h.cmd(&format!("HSET k {v} {v}"));
            assert_eq!(h.cmd(&format!("HGET k {v}")), format!("${}\r\n{v}\r\n", v.len()));
        }
        assert_eq!(h.cmd("HLEN k"), ":8\r\n");
        assert_eq!(h.cmd("HGET k 7"), "$-1\r\n");
        assert_eq!(h.cmd("HGET k 1"), "$-1\r\n");
    }
}
