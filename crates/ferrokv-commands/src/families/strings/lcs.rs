//! LCS: the longest common subsequence of two strings.
//!
//! The classic dynamic-programming table `L[i][j]` (LCS length of the first `i` bytes
//! of A and the first `j` of B) is filled, then walked back from the end: equal bytes
//! belong to the LCS, otherwise the walk moves towards the larger neighbour (towards
//! shorter B on ties). IDX reports the matched ranges in that backward order. The table
//! and the tie rule are Redis's, so the LCS chosen among equals is the one Redis picks.

use super::{is_opt, string_bytes};
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;

/// A run of consecutive matched bytes: inclusive ranges in A and B.
struct Match {
    a: (u32, u32),
    b: (u32, u32),
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN min-match-len] [WITHMATCHLEN]
pub fn lcs(ctx: &mut Ctx, args: &Args) {
    let Some(a) = string_copy(ctx, args.get(1)) else {
        return ctx.out.error("ERR The specified keys must contain string values");
    };
    let Some(b) = string_copy(ctx, args.get(2)) else {
        return ctx.out.error("ERR The specified keys must contain string values");
    };
    let (mut get_len, mut get_idx, mut with_match_len, mut min_match_len) = (false, false, false, 0u64);
    let mut j = 3;
    while j < args.len() {
        let opt = args.get(j);
        let more = j + 1 < args.len();
        if is_opt(opt, "IDX") {
            get_idx = true;
        } else if is_opt(opt, "LEN") {
            get_len = true;
        } else if is_opt(opt, "WITHMATCHLEN") {
            with_match_len = true;
        } else if is_opt(opt, "MINMATCHLEN") && more {
            let Some(n) = parse_i64(args.get(j + 1)) else {
                return ctx.out.error(ERR_NOT_INT);
            };
            min_match_len = n.max(0) as u64;
            j += 1;
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
        j += 1;
    }
    if get_len && get_idx {
        return ctx.out.error("ERR If you want both the length and indexes, please just use IDX.");
    }
    if a.len() >= u32::MAX as usize - 1 || b.len() >= u32::MAX as usize - 1 {
        return ctx.out.error("ERR String too long for LCS");
    }
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells.saturating_mul(4) > ctx.cfg.proto_max_bulk_len {
        return ctx.out.error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    let Some(table) = lcs_table(&a, &b) else {
        return ctx.out.error("ERR Insufficient memory, failed allocating transient memory for LCS");
    };
    let width = b.len() + 1;
    let at = |i: usize, j: usize| table[i * width + j];
    let total = at(a.len(), b.len());
    if get_len {
        return ctx.out.integer(total as i64);
    }

    // Walk back from the end, building the LCS right to left and collecting the runs.
    let mut lcs = vec![0u8; total as usize];
    let mut matches = Vec::new();
    let mut run: Option<Match> = None;
    let (mut i, mut j, mut k) = (a.len(), b.len(), total as usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            lcs[k - 1] = a[i - 1];
            let (ai, bj) = ((i - 1) as u32, (j - 1) as u32);
            match &mut run {
                None => run = Some(Match { a: (ai, ai), b: (bj, bj) }),
                // Extend the current run backwards while it stays contiguous in both.
                Some(m) if m.a.0 == ai + 1 && m.b.0 == bj + 1 => {
                    m.a.0 = ai;
                    m.b.0 = bj;
                }
                Some(_) => emit = true,
            }
            if ai == 0 || bj == 0 {
                emit = true;
            }
            i -= 1;
            j -= 1;
            k -= 1;
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = run.is_some();
        }
        if emit {
            if let Some(m) = run.take() {
                let len = m.a.1 - m.a.0 + 1;
                if min_match_len == 0 || len as u64 >= min_match_len {
                    matches.push(m);
                }
            }
        }
    }

    if !get_idx {
        return ctx.out.bulk(&lcs);
    }
    let out = &mut *ctx.out;
    out.map(2);
    out.bulk(b"matches");
    out.array(matches.len());
    for m in &matches {
        out.array(2 + with_match_len as usize);
        out.array(2);
        out.integer(m.a.0 as i64);
        out.integer(m.a.1 as i64);
        out.array(2);
        out.integer(m.b.0 as i64);
        out.integer(m.b.1 as i64);
        if with_match_len {
            out.integer((m.a.1 - m.a.0 + 1) as i64);
        }
    }
    out.bulk(b"len");
    out.integer(total as i64);
}

/// The bytes of a string key (empty when missing); None when it holds another type.
fn string_copy(ctx: &mut Ctx, key: &[u8]) -> Option<Vec<u8>> {
    let now = ctx.now_ms;
    match ctx.keys.db(key).read(key, now) {
        None => Some(Vec::new()),
        Some(e) if !e.value.is_string() => None,
        Some(e) => Some(string_bytes(&e.value, &mut [0; 20]).to_vec()),
    }
}

/// `L[i][j]` for all prefixes, row-major with rows of `b.len() + 1`; None when the
/// memory cannot be had.
fn lcs_table(a: &[u8], b: &[u8]) -> Option<Vec<u32>> {
    let width = b.len() + 1;
    let cells = (a.len() + 1).checked_mul(width)?;
    let mut t: Vec<u32> = Vec::new();
    t.try_reserve_exact(cells).ok()?;
    t.resize(cells, 0);
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i * width + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * width + j - 1] + 1
            } else {
                t[(i - 1) * width + j].max(t[i * width + j - 1])
            };
        }
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;

    fn with_keys(h: &mut Harness) {
        h.cmd("MSET a ohmytext b mynewtext");
    }

    #[test]
    fn string_and_len() {
        let mut h = Harness::new();
        with_keys(&mut h);
        assert_eq!(h.cmd("LCS a b"), "$6\r\nmytext\r\n");
        assert_eq!(h.cmd("LCS a b LEN"), ":6\r\n");
        assert_eq!(h.cmd("LCS a missing"), "$0\r\n\r\n");
        assert_eq!(h.cmd("LCS x y LEN"), ":0\r\n");
        h.cmd("MSET n 12345 m 2x4");
        assert_eq!(h.cmd("LCS n m"), "$2\r\n24\r\n");
        h.cmd("MSET p ABCBDAB q BDCABA");
        assert_eq!(h.cmd("LCS p q"), "$4\r\nBDAB\r\n");
        assert_eq!(
            h.cmd("LCS p q idx withmatchlen"),
            "*4\r\n$7\r\nmatches\r\n*2\r\n*3\r\n*2\r\n:5\r\n:6\r\n*2\r\n:3\r\n:4\r\n:2\r\n\
             *3\r\n*2\r\n:3\r\n:4\r\n*2\r\n:0\r\n:1\r\n:2\r\n$3\r\nlen\r\n:4\r\n"
        );
    }

    #[test]
    fn idx_shapes() {
        let mut h = Harness::new();
        with_keys(&mut h);
        assert_eq!(
            h.cmd("LCS a b IDX"),
            "*4\r\n$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n*2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n$3\r\nlen\r\n:6\r\n"
        );
        assert_eq!(
            h.cmd("LCS a b IDX MINMATCHLEN 4 WITHMATCHLEN"),
            "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n"
        );
        assert_eq!(
            h.cmd("LCS a b IDX MINMATCHLEN -3 WITHMATCHLEN"),
            "*4\r\n$7\r\nmatches\r\n*2\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n\
             *3\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n:2\r\n$3\r\nlen\r\n:6\r\n"
        );
        let mut h3 = Harness::resp3();
        with_keys(&mut h3);
        assert_eq!(h3.cmd("LCS a b IDX MINMATCHLEN 5"), "%2\r\n$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:6\r\n");
        assert_eq!(h.cmd("LCS x y IDX"), "*4\r\n$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:0\r\n");
    }

    #[test]
    fn errors() {
        let mut h = Harness::new();
        with_keys(&mut h);
        assert_eq!(h.cmd("LCS a b IDX LEN"), "-ERR If you want both the length and indexes, please just use IDX.\r\n");
        assert_eq!(h.cmd("LCS a b FOO"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("LCS a b MINMATCHLEN"), "-ERR syntax error\r\n");
        assert_eq!(h.cmd("LCS a b MINMATCHLEN x"), "-ERR value is not an integer or out of range\r\n");
        h.cfg.proto_max_bulk_len = 100;
        assert_eq!(
            h.cmd("LCS a b"),
            "-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n"
        );
    }
}
