//! Differential tests of the HyperLogLog commands: seeded random streams of PFADD,
//! PFCOUNT, PFMERGE and PFDEBUG mixed with string commands on the same keys, sent to
//! ferrokv-server and redis-server 7.0; every reply must be byte-identical, GET of a
//! sketch included (the sparse opcodes, the promotion to dense and the cached
//! cardinality bytes of the header all show there).
//!
//! Streams also SET hand-made sketches: valid and invalid sparse opcode sequences,
//! dense register areas with values no hash produces, bad magic, bad encodings and
//! wrong lengths, and corrupt them further with SETRANGE and APPEND.
//!
//! Replay: `FERROKV_SEED=n cargo test --release -p ferrokv-tests --test diff_hll -- <name>`.

use ferrokv_tests::diff::{for_each_seed, steps, w, CommandGen, Differ, Gen, StreamOptions};

const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8];

/// One element: often from a small pool (so that elements repeat), else numbers,
/// short binary strings and the empty string.
fn element(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(10) {
        0..=3 => format!("e{}", g.rng.below(60)).into_bytes(),
        4..=6 => g.rng.below(1_000_000).to_string().into_bytes(),
        7 => Vec::new(),
        _ => {
            let len = 1 + g.rng.below(24) as usize;
            g.rng.bytes(len, b"ab\x00\xff\r\n 7")
        }
    }
}

/// Element counts: mostly a few, sometimes enough to fill a sketch past the sparse
/// limit in one command.
fn batch(g: &mut Gen) -> u64 {
    match g.rng.below(20) {
        0..=11 => g.rng.below(6),
        12..=17 => 10 + g.rng.below(200),
        18 => 300 + g.rng.below(700),
        _ => 1000 + g.rng.below(3000),
    }
}

fn pfadd(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("PFADD"), g.key()];
    for _ in 0..batch(g) {
        args.push(element(g));
    }
    args
}

/// Numbered elements from a per-command offset: many distinct ones, for dense sketches.
fn pfadd_many(g: &mut Gen) -> Vec<Vec<u8>> {
    let base = g.rng.below(100_000);
    let n = 500 + g.rng.below(2500);
    let mut args = vec![w("PFADD"), g.key()];
    args.extend((base..base + n).map(|i| i.to_string().into_bytes()));
    args
}

fn pfcount(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("PFCOUNT")];
    let n = if g.chance(60) { 1 } else { 2 + g.rng.below(3) as i64 };
    args.extend(g.keys(n, n));
    args
}

fn pfmerge(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut args = vec![w("PFMERGE")];
    args.extend(g.keys(1, 4));
    args
}

fn pfdebug(g: &mut Gen) -> Vec<Vec<u8>> {
    let sub = g.pick(&["ENCODING", "DECODE", "TODENSE", "GETREG", "encoding", "decode", "nosuch"]);
    vec![w("PFDEBUG"), sub, g.key()]
}

/// The 16 header bytes: magic, encoding, three unused bytes, cached cardinality.
fn header(g: &mut Gen, encoding: u8) -> Vec<u8> {
    let mut h = b"HYLL".to_vec();
    h.push(encoding);
    if g.chance(10) {
        h.extend_from_slice(&[1, 2, 3]);
    } else {
        h.extend_from_slice(&[0, 0, 0]);
    }
    let card: u64 = match g.rng.below(4) {
        0 => 0,
        1 => g.rng.below(5000),
        2 => 1 << 63 | g.rng.below(5000),
        _ => g.rng.next_u64(),
    };
    h.extend_from_slice(&card.to_le_bytes());
    h
}

/// A sparse register area: ZERO, XZERO and VAL opcodes adding up to 16384 registers,
/// or now and then to a wrong total.
fn sparse_area(g: &mut Gen) -> Vec<u8> {
    let target: i64 = match g.rng.below(12) {
        0 => 16383,
        1 => 16385,
        2 => 20000,
        _ => 16384,
    };
    let mut covered = 0i64;
    let mut area = Vec::new();
    while covered < target {
        let left = target - covered;
        match g.rng.below(10) {
            0..=3 => {
                let n = (1 + g.rng.below(4) as i64).min(left);
                let v = 1 + g.rng.below(32) as u8;
                area.push(0x80 | (v - 1) << 2 | (n as u8 - 1));
                covered += n;
            }
            4..=6 => {
                let n = (1 + g.rng.below(64) as i64).min(left);
                area.push(n as u8 - 1);
                covered += n;
            }
            _ => {
                let n = (1 + g.rng.below(2000) as i64).min(left).min(16384);
                let l = n as u16 - 1;
                area.push(0x40 | (l >> 8) as u8);
                area.push(l as u8);
                covered += n;
            }
        }
    }
    area
}

/// A string that is, or almost is, a sketch.
fn crafted(g: &mut Gen) -> Vec<u8> {
    match g.rng.below(12) {
        0..=4 => {
            let mut s = header(g, 1);
            s.extend(sparse_area(g));
            s
        }
        5..=6 => {
            let mut s = header(g, 0);
            // Registers up to 63 (bytes of any value), or only small ones.
            let alphabet: &[u8] = if g.chance(50) { b"\x00\x01\x02\x41\x10\x04" } else { b"\x00\xff\x3f\xc0\x55" };
            s.extend(g.rng.bytes(12288, alphabet));
            if g.chance(10) {
                s.push(0);
            }
            s
        }
        7 => {
            let mut s = header(g, 0);
            s.extend(vec![0; 100]);
            s
        }
        8 => {
            let encoding = 2 + g.rng.below(3) as u8;
            let mut s = header(g, encoding);
            s.extend_from_slice(&[0x7f, 0xff]);
            s
        }
        9 => {
            let mut s = header(g, 1);
            s[3] = b'X';
            s.extend_from_slice(&[0x7f, 0xff]);
            s
        }
        10 => b"HYLL\x01".to_vec(),
        _ => {
            // The header alone: no opcodes at all.
            header(g, 1)
        }
    }
}

/// SETRANGE on the header: the encoding byte, the cache bytes (a valid cached count
/// over other registers), or a register byte.
fn setrange(g: &mut Gen) -> Vec<Vec<u8>> {
    let (offset, value): (&str, &[u8]) = match g.rng.below(6) {
        0 => ("4", b"\x00"),
        1 => ("4", b"\x01"),
        2 => ("15", b"\x00"),
        3 => ("8", b"\x07\x00"),
        4 => ("16", b"\x80"),
        _ => ("17", b"\x3f"),
    };
    vec![w("SETRANGE"), g.key(), w(offset), value.to_vec()]
}

const HLL: &[CommandGen] = &[
    CommandGen::new("PFADD", 20, pfadd),
    CommandGen::new("PFADD many", 2, pfadd_many),
    CommandGen::new("PFCOUNT", 12, pfcount),
    CommandGen::new("PFMERGE", 6, pfmerge),
    CommandGen::new("PFDEBUG", 3, pfdebug),
    CommandGen::new("GET", 10, |g| vec![w("GET"), g.key()]),
    CommandGen::new("SET", 1, |g| vec![w("SET"), g.key(), g.value()]),
    CommandGen::new("SET sketch", 3, |g| vec![w("SET"), g.key(), crafted(g)]),
    CommandGen::new("SETRANGE", 2, setrange),
    // No lone XZERO byte (0x40..=0x7f) at the end: splitting one makes Redis write the
    // byte past the end of its string, which ferrokv does not keep (see sketch.rs).
    CommandGen::new("APPEND", 1, |g| {
        let tail = g.rng.pick(&[&b"\x00"[..], b"\x7f\xff", b"\x80", b"\x3f"]).to_vec();
        vec![w("APPEND"), g.key(), tail]
    }),
    CommandGen::new("DEL", 2, |g| {
        let mut args = vec![w("DEL")];
        args.extend(g.keys(1, 2));
        args
    }),
    CommandGen::new("TYPE", 1, |g| vec![w("TYPE"), g.key()]),
    CommandGen::new("OBJECT ENCODING", 2, |g| vec![w("OBJECT"), w("ENCODING"), g.key()]),
    CommandGen::new("EXISTS", 1, |g| vec![w("EXISTS"), g.key()]),
    CommandGen::new("STRLEN", 1, |g| vec![w("STRLEN"), g.key()]),
];

fn run(label: &str, ferrokv_args: &[&str], resp3: bool, pipeline: usize) {
    let steps = steps(1500);
    let options = StreamOptions { pipeline, ..StreamOptions::default() };
    for_each_seed(SEEDS, |seed| Differ::new(label, seed, ferrokv_args, 1, resp3).run(HLL, steps, &options));
}

#[test]
fn hyperloglog() {
    run("hyperloglog", &[], false, 1);
}

/// Keys on two shards: PFCOUNT and PFMERGE of several keys cross them.
#[test]
fn hyperloglog_two_threads() {
    run("hyperloglog_two_threads", &["--server-threads", "2"], false, 8);
}

#[test]
fn hyperloglog_resp3() {
    run("hyperloglog_resp3", &[], true, 1);
}
