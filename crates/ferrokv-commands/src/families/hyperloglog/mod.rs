//! HyperLogLog commands (Redis's hyperloglog.c): PFADD, PFCOUNT, PFMERGE, and the
//! debugging commands PFDEBUG and PFSELFTEST.
//!
//! A sketch is a string value in Redis's exact byte format ([`sketch`]), so GET
//! returns what redis-server returns after the same commands. Commands that change a
//! sketch leave the string `raw`, as Redis's `dbUnshareStringValue` does; even PFCOUNT
//! of one key does (it may store the computed cardinality in the header).

mod sketch;

use crate::table::{CommandSpec, Handler, KeyPositions};
use crate::util::ERR_WRONGTYPE;
use crate::Ctx;
use ferrokv_resp::{Args, ReplyBuf};
use ferrokv_store::Value;
use sketch::{Corrupt, Registers, DENSE, REGISTERS, SPARSE};

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: KeyPositions,
    acl: &'static [&'static str],
    f: crate::table::DataFn,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, keys, acl, Handler::Data(f))
}

/// Arity, flags, key positions and ACL categories as `COMMAND INFO` shows them on
/// redis-server 7.0.
pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        "pfadd",
        -2,
        &["write", "denyoom", "fast"],
        KeyPositions::new(1, 1, 1),
        &["@write", "@hyperloglog", "@fast"],
        pfadd,
    ),
    cmd("pfcount", -2, &["readonly"], KeyPositions::new(1, -1, 1), &["@read", "@hyperloglog", "@slow"], pfcount),
    cmd(
        "pfmerge",
        -2,
        &["write", "denyoom"],
        KeyPositions::new(1, -1, 1),
        &["@write", "@hyperloglog", "@slow"],
        pfmerge,
    ),
    cmd(
        "pfdebug",
        3,
        &["write", "denyoom", "admin"],
        KeyPositions::new(2, 2, 1),
        &["@write", "@hyperloglog", "@admin", "@slow", "@dangerous"],
        pfdebug,
    ),
    cmd(
        "pfselftest",
        1,
        &["admin"],
        KeyPositions::NONE,
        &["@hyperloglog", "@admin", "@slow", "@dangerous"],
        pfselftest,
    ),
];

const ERR_NOT_SKETCH: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const ERR_CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

/// The sketch a value holds, or None after replying why it holds none.
fn sketch_of<'a>(v: &'a Value, out: &mut ReplyBuf) -> Option<&'a [u8]> {
    match v {
        Value::Str { bytes, .. } if sketch::is_sketch(bytes) => Some(bytes),
        Value::Str { .. } | Value::Int(_) => {
            out.error(ERR_NOT_SKETCH);
            None
        }
        _ => {
            out.error(ERR_WRONGTYPE);
            None
        }
    }
}

/// [`sketch_of`] for a change: the string becomes `raw`.
fn sketch_of_mut<'a>(v: &'a mut Value, out: &mut ReplyBuf) -> Option<&'a mut Vec<u8>> {
    sketch_of(v, out)?;
    match v {
        Value::Str { bytes, raw } => {
            *raw = true;
            Some(bytes.as_vec())
        }
        _ => None,
    }
}

/// A new sketch as PFADD and PFMERGE create one.
fn new_value(bytes: Vec<u8>) -> Value {
    Value::Str { bytes: bytes.into(), raw: true }
}

/// Adds elements; returns how many changed a register. Stops at a corrupt sketch,
/// keeping the changes made before, as Redis does.
fn add_all<'a>(s: &mut Vec<u8>, elements: impl Iterator<Item = &'a [u8]>) -> Result<u64, Corrupt> {
    let mut updated = 0;
    for e in elements {
        updated += sketch::add(s, e)? as u64;
    }
    Ok(updated)
}

/// PFADD key [element ...]
///
/// Replies 1 when the key was created or a register changed, else 0.
pub fn pfadd(ctx: &mut Ctx, args: &Args) {
    let key = args.get(1);
    let now = ctx.now_ms;
    let elements = args.iter().skip(2);
    let db = ctx.keys.db(key);
    let updated = match db.get(key, now) {
        None => {
            let mut s = sketch::new_sparse();
            // A new sketch cannot be corrupt.
            let updated = 1 + add_all(&mut s, elements).unwrap_or(0);
            sketch::invalidate_cache(&mut s);
            db.set(key, new_value(s), 0);
            updated
        }
        Some(e) => {
            let Some(s) = sketch_of_mut(&mut e.value, ctx.out) else { return };
            match add_all(s, elements) {
                Err(Corrupt) => return ctx.out.error(ERR_CORRUPT),
                Ok(0) => 0,
                Ok(n) => {
                    sketch::invalidate_cache(s);
                    n
                }
            }
        }
    };
    if updated > 0 {
        ctx.touch(key);
        // Redis counts every changed register as a change.
        ctx.dirty += updated - 1;
    }
    ctx.out.integer((updated > 0) as i64);
}

/// PFCOUNT key [key ...]
///
/// One key: the cached cardinality, or a fresh one stored in the header (a change of
/// the value, signalled as such). Several keys: the cardinality of their union,
/// computed on a temporary register set; nothing is stored.
pub fn pfcount(ctx: &mut Ctx, args: &Args) {
    if args.len() > 2 {
        let Some((regs, _)) = union(ctx, args.iter().skip(1)) else { return };
        let count = sketch::estimate(&sketch::registers_histogram(&regs));
        return ctx.out.integer(count as i64);
    }
    let key = args.get(1);
    let now = ctx.now_ms;
    let Some(e) = ctx.keys.db(key).get(key, now) else {
        return ctx.out.integer(0);
    };
    let Some(s) = sketch_of_mut(&mut e.value, ctx.out) else { return };
    if let Some(count) = sketch::cached_count(s) {
        return ctx.out.integer(count as i64);
    }
    let Ok(count) = sketch::count(s) else {
        return ctx.out.error(ERR_CORRUPT);
    };
    sketch::set_cached_count(s, count);
    ctx.touch(key);
    ctx.out.integer(count as i64);
}

/// The register-wise maximum of the sketches at `keys` (missing keys count as empty)
/// and whether one of them is dense; None after an error reply.
fn union<'a>(ctx: &mut Ctx, keys: impl Iterator<Item = &'a [u8]>) -> Option<(Box<Registers>, bool)> {
    let now = ctx.now_ms;
    let mut regs = Box::new([0u8; REGISTERS]);
    let mut dense = false;
    for key in keys {
        let Some(e) = ctx.keys.db(key).read(key, now) else { continue };
        let s = sketch_of(&e.value, ctx.out)?;
        dense |= sketch::encoding(s) == DENSE;
        if sketch::merge_into(&mut regs, s).is_err() {
            ctx.out.error(ERR_CORRUPT);
            return None;
        }
    }
    Some((regs, dense))
}

/// Writes a union into the destination sketch, dense first when a source was.
fn store_union(s: &mut Vec<u8>, regs: &Registers, dense: bool) -> Result<(), Corrupt> {
    if dense {
        sketch::to_dense(s)?;
    }
    for (i, &r) in regs.iter().enumerate() {
        if r != 0 {
            // The destination was validated as a source: this cannot fail.
            let _ = sketch::set_register(s, i, r);
        }
    }
    sketch::invalidate_cache(s);
    Ok(())
}

/// PFMERGE destkey [sourcekey ...]
///
/// The destination takes part in the union as a source.
pub fn pfmerge(ctx: &mut Ctx, args: &Args) {
    let Some((regs, dense)) = union(ctx, args.iter().skip(1)) else { return };
    let dest = args.get(1);
    let now = ctx.now_ms;
    let db = ctx.keys.db(dest);
    let stored = match db.get(dest, now) {
        None => {
            let mut s = sketch::new_sparse();
            let stored = store_union(&mut s, &regs, dense);
            db.set(dest, new_value(s), 0);
            stored
        }
        Some(e) => match sketch_of_mut(&mut e.value, ctx.out) {
            Some(s) => store_union(s, &regs, dense),
            None => return,
        },
    };
    if stored.is_err() {
        return ctx.out.error(ERR_CORRUPT);
    }
    ctx.touch(dest);
    ctx.out.ok();
}

/// A subcommand name compared as Redis's `strcasecmp` does (up to a NUL byte).
fn is_sub(arg: &[u8], name: &str) -> bool {
    let c = arg.iter().position(|&b| b == 0).map_or(arg, |i| &arg[..i]);
    c.eq_ignore_ascii_case(name.as_bytes())
}

/// PFDEBUG GETREG | DECODE | ENCODING | TODENSE key
///
/// GETREG (which first makes the sketch dense) lists the 16384 registers; DECODE
/// prints the opcodes of a sparse sketch; ENCODING says `dense` or `sparse`; TODENSE
/// converts, replying 1 when it did.
pub fn pfdebug(ctx: &mut Ctx, args: &Args) {
    let (sub, key) = (args.get(1), args.get(2));
    let now = ctx.now_ms;
    let Some(e) = ctx.keys.db(key).get(key, now) else {
        return ctx.out.error("ERR The specified key does not exist");
    };
    let out = &mut *ctx.out;
    let Some(s) = sketch_of_mut(&mut e.value, out) else { return };
    let mut converted = false;
    if is_sub(sub, "getreg") || is_sub(sub, "todense") {
        if sketch::encoding(s) == SPARSE {
            if sketch::to_dense(s).is_err() {
                return out.error(ERR_CORRUPT);
            }
            converted = true;
        }
        if is_sub(sub, "getreg") {
            out.array(REGISTERS);
            for r in sketch::dense_registers(s) {
                out.integer(r as i64);
            }
        } else {
            out.integer(converted as i64);
        }
    } else if is_sub(sub, "decode") {
        if sketch::encoding(s) != SPARSE {
            return out.error("ERR HLL encoding is not sparse");
        }
        out.bulk(sketch::decode(s).as_bytes());
    } else if is_sub(sub, "encoding") {
        out.simple(if sketch::encoding(s) == DENSE { "dense" } else { "sparse" });
    } else {
        // Redis prints the name as a C string, with CR and LF turned into spaces.
        let name = sub.iter().take_while(|&&b| b != 0).map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b });
        let mut line = b"-ERR Unknown PFDEBUG subcommand '".to_vec();
        line.extend(name);
        line.extend_from_slice(b"'\r\n");
        out.raw(&line);
    }
    if converted {
        // A change of encoding counts as a change (for propagation), but Redis does
        // not signal it to WATCH.
        ctx.dirty += 1;
    }
}

/// PFSELFTEST
///
/// Checks the dense register packing with random values, then adds ten million
/// elements to a dense and a sparse sketch side by side, checking at every power of
/// ten that both count the same and stay within six standard errors.
pub fn pfselftest(ctx: &mut Ctx, _args: &Args) {
    match selftest(ctx.now_ms, 10_000_000) {
        Ok(()) => ctx.out.ok(),
        Err(why) => ctx.out.error(&why),
    }
}

fn selftest(seed: u64, elements: u64) -> Result<(), String> {
    let mut state = seed | 1;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut dense = sketch::new_sparse();
    sketch::to_dense(&mut dense).map_err(|_| "TESTFAILED sparse encoding not used".to_string())?;
    let mut want = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        for (i, w) in want.iter_mut().enumerate() {
            *w = (rand() & 63) as u8;
            sketch::put_register(&mut dense, i, *w);
        }
        for (i, (w, got)) in want.iter().zip(sketch::dense_registers(&dense)).enumerate() {
            if *w != got {
                return Err(format!("TESTFAILED Register {i} should be {w} but is {got}"));
            }
        }
    }

    for i in 0..REGISTERS {
        sketch::put_register(&mut dense, i, 0);
    }
    let mut sparse = sketch::new_sparse();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let base = rand();
    let mut checkpoint: u64 = 1;
    for j in 1..=elements {
        let e = (j ^ base).to_le_bytes();
        let _ = sketch::add(&mut dense, &e);
        let _ = sketch::add(&mut sparse, &e);
        if j != checkpoint {
            continue;
        }
        if (j as usize) < sketch::SPARSE_MAX_BYTES / 2 && sketch::encoding(&sparse) != SPARSE {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let count = sketch::count(&dense).unwrap_or(0);
        if sketch::count(&sparse).ok() != Some(count) {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = checkpoint.abs_diff(count);
        let maxerr = if j == 10 { 1 } else { (relerr * 6.0 * checkpoint as f64).ceil() as u64 };
        if abserr > maxerr {
            return Err(format!("TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;

    fn get(h: &mut Harness, key: &str) -> Vec<u8> {
        match &h.db.get(key.as_bytes(), h.now).expect("key").value {
            Value::Str { bytes, .. } => bytes.to_vec(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pfadd_creates_a_raw_sparse_string() {
        let mut h = Harness::new();
        assert_eq!(h.cmd("PFADD k"), ":1\r\n");
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("PFADD k"), ":0\r\n");
        assert_eq!(h.cmd("PFADD k a b c"), ":1\r\n");
        assert_eq!(h.dirty, 3);
        assert_eq!(h.cmd("PFADD k a b c"), ":0\r\n");
        assert_eq!(h.encoding("k"), "raw");
        assert_eq!(h.cmd("TYPE k").as_str(), "+string\r\n");
        let v = get(&mut h, "k");
        assert_eq!(&v[..4], b"HYLL");
        assert_eq!(v[15], 0x80, "cache marked stale");
    }

    #[test]
    fn pfcount_caches_the_cardinality_in_the_header() {
        let mut h = Harness::new();
        h.cmd("PFADD k a b c");
        h.db.watch(b"k");
        let before = h.version("k");
        assert_eq!(h.cmd("PFCOUNT k"), ":3\r\n");
        assert_eq!(h.dirty, 1);
        assert_ne!(h.version("k"), before);
        assert_eq!(&get(&mut h, "k")[8..16], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(h.cmd("PFCOUNT k"), ":3\r\n");
        assert_eq!(h.dirty, 0);
        h.cmd("PFADD k d");
        // Only the stale bit is set: the old count stays in the other bytes.
        assert_eq!(&get(&mut h, "k")[8..16], &[3, 0, 0, 0, 0, 0, 0, 0x80]);
        assert_eq!(h.cmd("PFCOUNT k"), ":4\r\n");
        assert_eq!(h.cmd("PFCOUNT nokey"), ":0\r\n");
    }

    #[test]
    fn pfcount_of_several_keys_counts_the_union_and_stores_nothing() {
        let mut h = Harness::new();
        h.cmd("PFADD x a b c");
        h.cmd("PFADD y c d e");
        assert_eq!(h.cmd("PFCOUNT x y nokey"), ":5\r\n");
        assert_eq!(h.dirty, 0);
        assert_eq!(get(&mut h, "x")[15], 0x80);
    }

    #[test]
    fn pfmerge_includes_the_destination() {
        let mut h = Harness::new();
        h.cmd("PFADD x a b c");
        h.cmd("PFADD d z");
        assert_eq!(h.cmd("PFMERGE d x nokey"), "+OK\r\n");
        assert_eq!(h.cmd("PFCOUNT d"), ":4\r\n");
        assert_eq!(h.cmd("PFMERGE new"), "+OK\r\n");
        assert_eq!(h.cmd("PFCOUNT new"), ":0\r\n");
        // The union of sparse sketches stays sparse and byte-identical to adding.
        h.cmd("PFADD e z a b c");
        h.cmd("PFMERGE m d");
        let (m, e) = (get(&mut h, "m"), get(&mut h, "e"));
        assert_eq!(&m[16..], &e[16..]);
        // A dense source makes the destination dense.
        h.cmd("PFADD big a");
        h.cmd("PFDEBUG TODENSE big");
        h.cmd("PFMERGE m big");
        assert_eq!(h.cmd("PFDEBUG ENCODING m"), "+dense\r\n");
        assert_eq!(h.cmd("PFCOUNT m"), ":4\r\n");
    }

    #[test]
    fn errors() {
        let mut h = Harness::new();
        h.cmd("SET s notahll");
        h.cmd("SET i 12");
        let not = "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n";
        assert_eq!(h.cmd("PFADD s a"), not);
        assert_eq!(h.cmd("PFADD i a"), not);
        assert_eq!(h.cmd("PFCOUNT s"), not);
        assert_eq!(h.cmd("PFCOUNT nokey s"), not);
        assert_eq!(h.cmd("PFMERGE d s"), not);
        assert_eq!(h.cmd("EXISTS d"), ":0\r\n");
        assert_eq!(h.cmd("PFDEBUG ENCODING nokey"), "-ERR The specified key does not exist\r\n");
        h.cmd("PFADD k a");
        assert_eq!(h.cmd("PFDEBUG NOPE k"), "-ERR Unknown PFDEBUG subcommand 'NOPE'\r\n");
        h.cmd("PFDEBUG TODENSE k");
        assert_eq!(h.cmd("PFDEBUG DECODE k"), "-ERR HLL encoding is not sparse\r\n");

        // A sparse sketch covering one register, its cached count stale.
        let mut bad = sketch::new_sparse();
        bad.truncate(16);
        bad.push(0);
        bad[15] = 0x80;
        h.db.set(b"bad", Value::Str { bytes: bad.into(), raw: false }, 0);
        let corrupt = "-INVALIDOBJ Corrupted HLL object detected\r\n";
        assert_eq!(h.cmd("PFCOUNT bad"), corrupt);
        assert_eq!(h.cmd("PFCOUNT bad k"), corrupt);
        assert_eq!(h.cmd("PFMERGE k bad"), corrupt);
        assert_eq!(h.cmd("PFADD bad a b c d e f g h i j"), corrupt);
        assert_eq!(h.encoding("bad"), "raw");
    }

    #[test]
    fn pfdebug_getreg_makes_the_sketch_dense() {
        let mut h = Harness::new();
        h.cmd("PFADD k a");
        let reply = h.run(&[b"PFDEBUG", b"GETREG", b"k"]);
        assert!(reply.starts_with(b"*16384\r\n:0\r\n"));
        assert_eq!(reply.split(|&b| b == b':').skip(1).filter(|r| !r.starts_with(b"0")).count(), 1);
        assert_eq!(h.dirty, 1);
        assert_eq!(h.cmd("PFDEBUG ENCODING k"), "+dense\r\n");
        assert_eq!(h.cmd("PFDEBUG TODENSE k"), ":0\r\n");
    }

    #[test]
    fn selftest_passes() {
        assert_eq!(selftest(42, 100_000), Ok(()));
    }
}
