//! Commands that read lists: LLEN, LINDEX, LRANGE, LPOS.

use super::*;

/// LLEN key
pub fn llen(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now_ms;
    if let Ok(found) = read_list(ctx.keys.db(key), key, now, ctx.out) {
        ctx.out.integer(found.map_or(0, |l| l.len() as i64));
    }
}

/// LINDEX key index: the key is looked up before the index is parsed.
pub fn lindex(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now_ms;
    let Ok(found) = read_list(ctx.keys.db(key), key, now, ctx.out) else { return };
    let Some(l) = found else { return ctx.out.null() };
    let Some(index) = parse_int(ctx.out, args.get(2)) else { return };
    match resolve_index(index, l.len()).and_then(|i| l.get(i)) {
        Some(v) => ctx.out.bulk(v),
        None => ctx.out.null(),
    }
}

/// LRANGE key start stop: the indexes are parsed before the key is looked up.
pub fn lrange(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let Some(start) = parse_int(ctx.out, args.get(2)) else { return };
    let Some(stop) = parse_int(ctx.out, args.get(3)) else { return };
    let now = ctx.now_ms;
    let Ok(found) = read_list(ctx.keys.db(key), key, now, ctx.out) else { return };
    match found.and_then(|l| clamp_range(start, stop, l.len()).map(|(from, to)| l.range(from, to))) {
        Some(items) => reply_elements(ctx.out, items),
        None => ctx.out.array(0),
    }
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
///
/// Without COUNT: the index of the `rank`-th match (from the tail when negative), or
/// null. With COUNT: an array of up to `num-matches` indexes (0: all) from that match
/// on. MAXLEN bounds how many elements are compared.
pub fn lpos(ctx: &mut Ctx, args: &Args) {
    let (key, element) = (args.get(1), args.get(2));
    let (mut rank, mut count, mut maxlen) = (1i64, None::<i64>, 0i64);
    let mut j = 3;
    while j < args.len() {
        let (opt, more) = (args.get(j), j + 1 < args.len());
        if is_opt(opt, "rank") && more {
            j += 1;
            let Some(r) = parse_int(ctx.out, args.get(j)) else { return };
            if r == 0 {
                return ctx.out.error(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... \
                     or use negative to start from the end of the list",
                );
            }
            rank = r;
        } else if is_opt(opt, "count") && more {
            j += 1;
            let Some(c) = parse_at_least(ctx.out, args.get(j), 0, "ERR COUNT can't be negative") else { return };
            count = Some(c);
        } else if is_opt(opt, "maxlen") && more {
            j += 1;
            let Some(m) = parse_at_least(ctx.out, args.get(j), 0, "ERR MAXLEN can't be negative") else { return };
            maxlen = m;
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
        j += 1;
    }
    // A negative rank searches from the tail. Redis negates it in a C long, so
    // i64::MIN stays negative: every match then qualifies and COUNT never stops it.
    let from_tail = rank < 0;
    if from_tail {
        rank = rank.wrapping_neg();
    }
    let now = ctx.now_ms;
    let Ok(found) = read_list(ctx.keys.db(key), key, now, ctx.out) else { return };
    let Some(l) = found else {
        return match count {
            Some(_) => ctx.out.array(0),
            None => ctx.out.null(),
        };
    };
    let len = l.len();
    let mut hits = Vec::new();
    let mut matches = 0i64;
    let items: Box<dyn Iterator<Item = &[u8]>> = if from_tail { Box::new(l.iter().rev()) } else { Box::new(l.iter()) };
    for (index, v) in items.enumerate() {
        if maxlen != 0 && index as i64 >= maxlen {
            break;
        }
        if v != element {
            continue;
        }
        matches += 1;
        if matches < rank {
            continue;
        }
        hits.push(if from_tail { len - index - 1 } else { index });
        match count {
            None => break,
            Some(c) if c != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= c => break,
            Some(_) => {}
        }
    }
    match count {
        Some(_) => {
            ctx.out.array(hits.len());
            for i in hits {
                ctx.out.integer(i as i64);
            }
        }
        None => match hits.first() {
            Some(&i) => ctx.out.integer(i as i64),
            None => ctx.out.null(),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    fn arr(items: &[&str]) -> String {
        let mut s = format!("*{}\r\n", items.len());
        for i in items {
            s.push_str(&format!("${}\r\n{}\r\n", i.len(), i));
        }
        s
    }

    #[test]
    fn llen_lindex_on_missing_and_present_keys() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("LLEN l"), ":0\r\n");
        assert_eq!(h.cmd("LINDEX l abc"), "$-1\r\n");
        h.cmd("RPUSH l a b c");
        assert_eq!(h.cmd("LLEN l"), ":3\r\n");
        assert_eq!(h.cmd("LINDEX l abc"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("LINDEX l -1"), "$1\r\nc\r\n");
        assert_eq!(h.cmd("LINDEX l 3"), "$-1\r\n");
        assert_eq!(h.cmd("LINDEX l -4"), "$-1\r\n");
        let mut h3 = Harness::resp3();
        h3.cmd("RPUSH l a");
        assert_eq!(h3.cmd("LINDEX l 5"), "_\r\n");
    }

    #[test]
    fn lrange_clamps_like_redis() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("LRANGE l a 1"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("LRANGE l 0 -1"), "*0\r\n");
        h.cmd("RPUSH l a b c d");
        assert_eq!(h.cmd("LRANGE l 0 -1"), arr(&["a", "b", "c", "d"]));
        assert_eq!(h.cmd("LRANGE l -2 100"), arr(&["c", "d"]));
        assert_eq!(h.cmd("LRANGE l -100 0"), arr(&["a"]));
        assert_eq!(h.cmd("LRANGE l 3 2"), "*0\r\n");
        assert_eq!(h.cmd("LRANGE l 4 10"), "*0\r\n");
        assert_eq!(h.cmd("LRANGE l -9223372036854775808 9223372036854775807"), arr(&["a", "b", "c", "d"]));
    }

    #[test]
    fn lpos_options_and_errors() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("LPOS l a"), "$-1\r\n");
        assert_eq!(h.cmd("LPOS l a COUNT 1"), "*0\r\n");
        assert!(h.cmd("LPOS l a RANK 0").starts_with("-ERR RANK can't be zero: use 1 to start"));
        h.cmd("RPUSH l a b c a b c");
        assert_eq!(h.cmd("LPOS l a"), ":0\r\n");
        assert_eq!(h.cmd("LPOS l a RANK 2"), ":3\r\n");
        assert_eq!(h.cmd("LPOS l a RANK 3"), "$-1\r\n");
        assert_eq!(h.cmd("LPOS l a RANK -1"), ":3\r\n");
        assert_eq!(h.cmd("LPOS l a COUNT 0"), "*2\r\n:0\r\n:3\r\n");
        assert_eq!(h.cmd("LPOS l a RANK -1 COUNT 0"), "*2\r\n:3\r\n:0\r\n");
        assert_eq!(h.cmd("LPOS l c RANK 1 COUNT 1"), "*1\r\n:2\r\n");
        assert_eq!(h.cmd("LPOS l a MAXLEN 1"), ":0\r\n");
        assert_eq!(h.cmd("LPOS l b MAXLEN 1"), "$-1\r\n");
        assert_eq!(h.cmd("LPOS l c MAXLEN 3 RANK -1"), ":5\r\n");
        assert_eq!(h.cmd("LPOS l a RANK -9223372036854775808"), ":3\r\n");
        assert_eq!(h.cmd("LPOS l a RANK -9223372036854775808 COUNT 1"), "*2\r\n:3\r\n:0\r\n");
        assert_eq!(h.cmd("LPOS l a RANK 9223372036854775807"), "$-1\r\n");
        assert_eq!(h.cmd("LPOS l a COUNT abc"), "-ERR COUNT can't be negative\r\n");
        assert_eq!(h.cmd("LPOS l a COUNT -1"), "-ERR COUNT can't be negative\r\n");
        assert_eq!(h.cmd("LPOS l a MAXLEN -1"), "-ERR MAXLEN can't be negative\r\n");
        assert_eq!(h.cmd("LPOS l a RANK abc"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.cmd("LPOS l a RANK"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("LPOS l a bogus 1"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("LPOS l a count 1 count 2"), "*2\r\n:0\r\n:3\r\n");
    }
}
