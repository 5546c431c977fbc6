//! Streams of one data type's commands (hashes, sets, sorted sets) whose replies are
//! compared by meaning where Redis itself is not deterministic (listings of a hash
//! table, *SCAN cursors, random picks).
//!
//! A family's stream type wraps a [`Differ`] (opened with [`open`]) for the exact
//! comparisons and side connections for the others, and implements [`FamilyStream`];
//! [`run`] draws its commands from a table of [`Op`]s, seed by seed. The order of the
//! random draws is part of each stream: changing it changes every stream.

use std::collections::BTreeSet;
use std::fmt::Debug;

use super::{for_each_seed, mutate, steps, w, Differ, Gen};
use crate::conn::Conn;
use crate::resp::{parse_one, show, show_command, Reply};

/// How a table entry makes its command and picks its comparison.
#[derive(Clone, Copy)]
enum Make<C> {
    /// Always the same comparison.
    Fixed(fn(&mut Gen) -> Vec<Vec<u8>>, C),
    /// The generator picks it along with the command.
    Chosen(fn(&mut Gen) -> (Vec<Vec<u8>>, C)),
}

/// One command of a family's table; `C` is the family's comparison kind.
#[derive(Clone, Copy)]
pub struct Op<C> {
    /// Relative frequency within its table.
    pub weight: u32,
    make: Make<C>,
}

/// A table entry whose commands are always compared by `cmp`.
pub const fn op<C>(weight: u32, gen: fn(&mut Gen) -> Vec<Vec<u8>>, cmp: C) -> Op<C> {
    Op { weight, make: Make::Fixed(gen, cmp) }
}

/// A table entry whose generator picks the comparison of each command.
pub const fn op_choosing<C>(weight: u32, gen: fn(&mut Gen) -> (Vec<Vec<u8>>, C)) -> Op<C> {
    Op { weight, make: Make::Chosen(gen) }
}

impl<C: Copy> Op<C> {
    fn draw(&self, g: &mut Gen) -> (Vec<Vec<u8>>, C) {
        match self.make {
            Make::Fixed(gen, cmp) => (gen(g), cmp),
            Make::Chosen(gen) => gen(g),
        }
    }
}

/// A family's stream, stepped by [`run`].
pub trait FamilyStream {
    /// How a command's replies are compared.
    type Cmp: Copy;
    /// Commands stepped so far.
    fn index(&self) -> usize;
    /// Sends one command to both servers and compares the replies by `cmp`.
    fn step(&mut self, args: &[Vec<u8>], cmp: Self::Cmp) -> Result<(), String>;
    /// Runs after every drawn command.
    fn after_step(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// The end of a stream: the final state of every key (and statistics).
    fn finish(&mut self) -> Result<(), String>;
}

/// What a family's streams are made of.
pub struct Family<C: 'static> {
    pub seeds: &'static [u64],
    pub ops: &'static [Op<C>],
    /// Commands each stream starts with, before the drawn ones.
    pub setup: &'static [(&'static [&'static str], C)],
    /// Whether a drawn command may go through [`mutate`]; asked only when the 3 %
    /// draw says so.
    pub mutable: fn(&[Vec<u8>], C) -> bool,
    /// Environment variable that prints every stream command.
    pub log_var: &'static str,
}

/// Runs `steps(default_steps)` drawn commands for every seed on the stream `open`
/// makes for it: each command mutated now and then (when `mutable`), its name sent in
/// lower case now and then.
pub fn run<S: FamilyStream>(family: &Family<S::Cmp>, default_steps: usize, mut open: impl FnMut(u64) -> S) {
    let steps = steps(default_steps);
    let weights: Vec<u32> = family.ops.iter().map(|o| o.weight).collect();
    let log = std::env::var_os(family.log_var).is_some();
    for_each_seed(family.seeds, |seed| {
        let mut s = open(seed);
        for (args, cmp) in family.setup {
            let args: Vec<Vec<u8>> = args.iter().map(|a| w(a)).collect();
            s.step(&args, *cmp)?;
        }
        let mut g = Gen::new(seed);
        for _ in 0..steps {
            let (mut args, cmp) = family.ops[g.rng.weighted(&weights)].draw(&mut g);
            if g.chance(3) && (family.mutable)(&args, cmp) {
                mutate(&mut g, &mut args);
            }
            if g.chance(10) {
                args[0] = args[0].to_ascii_lowercase();
            }
            if log {
                eprintln!("#{} {}", s.index() + 1, show_command(&args));
            }
            s.step(&args, cmp)?;
            s.after_step()?;
        }
        s.finish()
    });
}

/// A [`Differ`] with one connection pair, and a side pair (`.0` to ferrokv, `.1` to
/// redis) in the same protocol for the comparisons the Differ cannot make.
pub fn open(label: &str, seed: u64, ferrokv_args: &[&str], resp3: bool) -> (Differ, (Conn, Conn)) {
    let d = Differ::new(label, seed, ferrokv_args, 1, resp3);
    let mut side = (d.ferrokv.conn(), d.redis.conn());
    if resp3 {
        side.0.send(&["HELLO", "3"]);
        side.1.send(&["HELLO", "3"]);
    }
    (d, side)
}

/// Prints a stream's statistics when `FERROKV_DIFF_STATS` is set.
pub fn print_stats(label: &str, seed: u64, stats: &impl Debug) {
    if std::env::var_os("FERROKV_DIFF_STATS").is_some() {
        eprintln!("{label} seed {seed}: {stats:?}");
    }
}

/// The first lines of a mismatch report on the `index`th `what` command.
pub fn report_head(d: &Differ, what: &str, index: usize, args: &[Vec<u8>], f: &[u8], r: &[u8], why: &str) -> String {
    format!(
        "differential mismatch in `{}`, seed {}, {what} command #{index} ({why})\n  command: {}\n  ferrokv: {}\n  redis:   {}\n",
        d.label,
        d.seed,
        show_command(args),
        show(f),
        show(r),
    )
}

/// The last line of a mismatch report: how to replay the stream of integration test
/// `test`.
pub fn report_replay(d: &Differ, test: &str) -> String {
    format!("replay: FERROKV_SEED={} cargo test --release -p ferrokv-tests --test {test} -- {}\n", d.seed, d.label)
}

/// The text of a bulk string reply (OBJECT ENCODING), empty for any other reply.
pub fn bulk_text(reply: &[u8]) -> String {
    match parse_one(reply) {
        Ok(Reply::Bulk(Some(e))) => String::from_utf8_lossy(&e).into_owned(),
        _ => String::new(),
    }
}

/// The count argument of a random pick (`HRANDFIELD key count ...`), None when there
/// is none or it is not an integer.
pub fn count_arg(args: &[Vec<u8>]) -> Option<i64> {
    args.get(2).and_then(|a| std::str::from_utf8(a).ok()?.parse().ok())
}

/// How many picks a count asks of a collection of `size`: all of a negative one
/// (repetitions allowed), at most `size` of a positive one.
pub fn picks_for(count: i64, size: usize) -> u64 {
    if count < 0 {
        count.unsigned_abs()
    } else {
        (count as u64).min(size as u64)
    }
}

/// The two replies to a command compared by meaning, and why they differ.
pub struct Mismatch {
    pub ferrokv: Vec<u8>,
    pub redis: Vec<u8>,
    pub why: String,
}

/// Compares a *SCAN (`name key cursor [options]`) on the side connections, whose
/// cursors differ between implementations: from cursor 0 both servers are iterated to
/// cursor 0 and the sets of items seen must be equal (`items` reads one step's items);
/// from another cursor only the reply shape must agree.
pub fn compare_scan<T: Ord + Debug>(
    side: &mut (Conn, Conn),
    args: &[Vec<u8>],
    name: &str,
    noun: &str,
    items: impl Fn(&Reply) -> Option<Vec<T>>,
) -> Result<(), Mismatch> {
    if args[2] != b"0" {
        let (f, r) = (side.0.send(args), side.1.send(args));
        if scan_shape(&f) != scan_shape(&r) {
            return Err(Mismatch { ferrokv: f, redis: r, why: format!("{name} shapes differ") });
        }
        return Ok(());
    }
    let f = full_scan(&mut side.0, args, noun, &items);
    let r = full_scan(&mut side.1, args, noun, &items);
    if f != r {
        return Err(Mismatch {
            ferrokv: f.into_bytes(),
            redis: r.into_bytes(),
            why: format!("full {name} iterations differ"),
        });
    }
    Ok(())
}

/// "scan" for a `[cursor, items]` reply, else the reply itself.
fn scan_shape(reply: &[u8]) -> String {
    match parse_one(reply) {
        Ok(Reply::Array(Some(parts))) if parts.len() == 2 => "scan".to_string(),
        _ => show(reply),
    }
}

/// Iterates a *SCAN from `args` (cursor 0) to cursor 0; returns the `noun` (items)
/// seen, or the first reply that is not a scan step, as text.
fn full_scan<T: Ord + Debug>(
    conn: &mut Conn,
    args: &[Vec<u8>],
    noun: &str,
    items: impl Fn(&Reply) -> Option<Vec<T>>,
) -> String {
    let mut args = args.to_vec();
    let mut seen = BTreeSet::new();
    for _ in 0..100_000 {
        let bytes = conn.send(&args);
        let Ok(Reply::Array(Some(parts))) = parse_one(&bytes) else { return show(&bytes) };
        let [Reply::Bulk(Some(cursor)), step] = parts.as_slice() else { return show(&bytes) };
        let Some(step) = items(step) else { return show(&bytes) };
        seen.extend(step);
        if cursor.as_slice() == b"0" {
            return format!("{} {noun}: {:?}", seen.len(), seen);
        }
        args[2] = cursor.clone();
    }
    "no end after 100000 calls".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_for_caps_positive_counts_only() {
        assert_eq!(picks_for(5, 3), 3);
        assert_eq!(picks_for(2, 3), 2);
        assert_eq!(picks_for(-5, 3), 5);
        assert_eq!(picks_for(0, 3), 0);
    }

    #[test]
    fn count_arg_reads_the_third_argument() {
        let args = |v: &[&str]| v.iter().map(|a| w(a)).collect::<Vec<_>>();
        assert_eq!(count_arg(&args(&["SRANDMEMBER", "k", "-3"])), Some(-3));
        assert_eq!(count_arg(&args(&["SRANDMEMBER", "k"])), None);
        assert_eq!(count_arg(&args(&["SRANDMEMBER", "k", "1.5"])), None);
    }

    #[test]
    fn scan_shape_hides_cursor_and_items_only() {
        let a = b"*2\r\n$1\r\n7\r\n*1\r\n$1\r\na\r\n";
        let b = b"*2\r\n$2\r\n12\r\n*0\r\n";
        assert_eq!(scan_shape(a), scan_shape(b));
        assert_ne!(scan_shape(a), scan_shape(b"-ERR invalid cursor\r\n"));
    }
}
