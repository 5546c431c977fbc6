//! HRANDFIELD: random fields, with Redis's cases. Without a count, one field (null
//! when the key is missing). With a count `n`: `n < 0` picks `-n` fields independently
//! (repeats allowed); `n > 0` picks `min(n, len)` distinct fields, the whole hash in
//! its own order when `n >= len`. WITHVALUES pairs each field with its value: flat in
//! RESP2, two-element arrays in RESP3.

use super::{is_opt, read_hash, reply_elem};
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::{Args, ReplyBuf};
use ferrokv_store::hash::Elem;

/// HRANDFIELD key [count [WITHVALUES]]
pub fn hrandfield(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(1), ctx.now_ms);
    if args.len() >= 3 {
        let Some(count) = parse_i64(args.get(2)) else {
            return ctx.out.error(ERR_NOT_INT);
        };
        if count == i64::MIN {
            return ctx
                .out
                .error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807");
        }
        let with_values = match args.len() {
            3 => false,
            4 if is_opt(args.get(3), "withvalues") => true,
            _ => return ctx.out.error(ERR_SYNTAX),
        };
        // Room for the doubled reply length.
        if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
            return ctx.out.error("ERR value is out of range");
        }
        return with_count(ctx, key, count, with_values);
    }
    let db = ctx.keys.db(key);
    let mut rng = splitmix(db.random_u64());
    match read_hash(db, key, now, ctx.out) {
        Ok(Some(h)) => match h.random_pair(&mut rng) {
            Some((f, _)) => reply_elem(ctx.out, f),
            None => ctx.out.null(),
        },
        Ok(None) => ctx.out.null(),
        Err(()) => {}
    }
}

fn with_count(ctx: &mut Ctx, key: &[u8], count: i64, with_values: bool) {
    let now = ctx.now_ms;
    let db = ctx.keys.db(key);
    let mut rng = splitmix(db.random_u64());
    let h = match read_hash(db, key, now, ctx.out) {
        Err(()) => return,
        Ok(None) => return ctx.out.array(0),
        Ok(Some(h)) => h,
    };
    let out = &mut *ctx.out;
    let n = count.unsigned_abs();
    if n == 0 {
        return out.array(0);
    }
    let flat = with_values && !out.resp3();
    if count < 0 || n == 1 {
        out.array(if flat { n as usize * 2 } else { n as usize });
        h.random_pairs(n, &mut rng, &mut |f, v| reply_pair(out, f, v, with_values));
        return;
    }
    let len = h.len();
    let shown = (n as usize).min(len);
    out.array(if flat { shown * 2 } else { shown });
    if n as usize >= len {
        for (f, v) in h.iter() {
            reply_pair(out, f, v, with_values);
        }
        return;
    }
    for (f, v) in h.random_distinct(shown, &mut rng) {
        reply_pair(out, f, v, with_values);
    }
}

fn reply_pair(out: &mut ReplyBuf, f: Elem, v: Elem, with_values: bool) {
    if with_values && out.resp3() {
        out.array(2);
    }
    reply_elem(out, f);
    if with_values {
        reply_elem(out, v);
    }
}

/// A small generator (SplitMix64) seeded from the Db's, so that picking many fields
/// needs no second borrow of the Db that holds the hash.
fn splitmix(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;
    use std::collections::BTreeSet;

    /// The bulk strings of a reply, in order.
    fn bulks(reply: &str) -> Vec<String> {
        let lines: Vec<&str> = reply.split("\r\n").collect();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with('$') && !l.starts_with("$-") {
                out.push(lines[i + 1].to_string());
            }
        }
        out
    }

    #[test]
    fn errors_and_empty_replies() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("HRANDFIELD k"), "$-1\r\n");
        assert_eq!(h.cmd("HRANDFIELD k 5"), "*0\r\n");
        assert_eq!(h.cmd("HRANDFIELD k -5 WITHVALUES"), "*0\r\n");
        h.cmd("HSET k a 1");
        assert_eq!(h.cmd("HRANDFIELD k 0"), "*0\r\n");
        assert_eq!(h.cmd("HRANDFIELD k x"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(
            h.cmd("HRANDFIELD k -9223372036854775808"),
            "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n"
        );
        assert_eq!(h.cmd("HRANDFIELD k 4611686018427387904 WITHVALUES"), "-ERR value is out of range\r\n");
        assert_eq!(h.cmd("HRANDFIELD k -4611686018427387904 WITHVALUES"), "-ERR value is out of range\r\n");
        assert_eq!(h.cmd("HRANDFIELD k 4611686018427387903 WITHVALUES"), "*2\r\n$1\r\na\r\n$1\r\n1\r\n");
        assert_eq!(h.cmd("HRANDFIELD k 1 WITHVALUE"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("HRANDFIELD k 1 WITHVALUES x"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("HRANDFIELD missing x"), "-ERR value is not an integer or out of range\r\n");
        let mut h3 = Harness::resp3();
        assert_eq!(h3.cmd("HRANDFIELD k"), "_\r\n");
        assert_eq!(h3.cmd("HRANDFIELD k 3"), "*0\r\n");
    }

    #[test]
    fn counts() {
        let mut h = Harness::new();
        h.cmd("HSET k a 1 b 2 c 3 d 4 e 5");
        let fields: BTreeSet<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
        let one = bulks(&h.cmd("HRANDFIELD k"));
        assert!(fields.contains(&one[0]));
        // Count at least the size: the whole hash in order.
        assert_eq!(bulks(&h.cmd("HRANDFIELD k 5")), ["a", "b", "c", "d", "e"]);
        assert_eq!(bulks(&h.cmd("HRANDFIELD k 99 WITHVALUES")), ["a", "1", "b", "2", "c", "3", "d", "4", "e", "5"]);
        for count in 1..5 {
            let got = bulks(&h.cmd(&format!("HRANDFIELD k {count}")));
            let unique: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!((got.len(), unique.len()), (count, count));
            assert!(unique.is_subset(&fields));
        }
        let many = bulks(&h.cmd("HRANDFIELD k -100"));
        assert_eq!(many.len(), 100);
        let unique: BTreeSet<String> = many.into_iter().collect();
        assert_eq!(unique, fields, "100 picks of 5 fields hit each");
        let pairs = bulks(&h.cmd("HRANDFIELD k -7 WITHVALUES"));
        assert_eq!(pairs.len(), 14);
        for p in pairs.chunks(2) {
            assert_eq!(p[1].as_bytes()[0] - b'0', p[0].as_bytes()[0] - b'a' + 1);
        }
    }

    #[test]
    fn resp3_pairs_are_nested() {
        let mut h = Harness::resp3();
        h.cmd("HSET k a 1");
        assert_eq!(h.cmd("HRANDFIELD k 1 WITHVALUES"), "*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n");
        assert_eq!(
            h.cmd("HRANDFIELD k -2 WITHVALUES"),
            "*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n"
        );
        assert_eq!(h.cmd("HRANDFIELD k 2"), "*1\r\n$1\r\na\r\n");
    }

    #[test]
    fn tables_pick_distinct_fields() {
        let mut h = Harness::new();
        h.cfg.hash_max_listpack_entries = 128;
        for i in 0..300 {
            h.cmd(&format!("HSET k f{i} {i}"));
        }
        assert_eq!(h.encoding("k"), "hashtable");
        for count in [1usize, 10, 99, 100, 101, 250, 299] {
            let got = bulks(&h.cmd(&format!("HRANDFIELD k {count} WITHVALUES")));
            assert_eq!(got.len(), 2 * count);
            let unique: BTreeSet<&String> = got.iter().step_by(2).collect();
            assert_eq!(unique.len(), count);
            for p in got.chunks(2) {
                assert_eq!(p[0][1..], p[1]);
            }
        }
        assert_eq!(bulks(&h.cmd("HRANDFIELD k -1000")).len(), 1000);
        assert_eq!(bulks(&h.cmd("HRANDFIELD k 1000")).len(), 300);
    }
}
