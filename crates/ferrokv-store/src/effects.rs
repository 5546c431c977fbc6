//! The effects stream: what each shard's keyspace propagates, in order.
//!
//! Every command runs through one execution function (`ferrokv_commands::exec`), which
//! turns what the command did into *propagation records*: the command as Redis
//! propagates it to the AOF and to replicas (`SET k v PXAT <ms>` for a relative expiry,
//! `DEL k` for a key found expired, `SREM` for `SPOP`, nothing for a read). The records
//! of one execution unit — a command, a served blocked client, a whole EXEC — form one
//! [`Unit`], applied atomically: a consumer that feeds one Redis-compatible stream
//! wraps a unit of more than one record in `MULTI ... EXEC`, which is Redis 7.0's rule
//! (`propagatePendingCommands`).
//!
//! Each shard's [`Db`](crate::Db) keeps its own [`EffectLog`], appended to under the
//! shard's keyspace lock, so a shard's log is in the order its keyspace changed. A unit
//! that needed several shards' locks (a multi-shard command, an EXEC) is written whole
//! into the log of the lowest of those shards, tagged with a node-wide id taken while
//! every lock was held, and a [`Part::Joined`] marker with the same id goes into the
//! log of each other shard involved. The id order is consistent with every shard's
//! order, so [`merge`] can interleave the shards' logs into one serial stream that
//! replays to the same keyspace: a unit of one shard commutes with the units of the
//! other shards (they touch other keys), and a multi-shard unit waits until every
//! shard it locked has reached it.
//!
//! Consumers (see docs/architecture.md): the AOF and a Redis-compatible replication
//! stream read all shards through [`merge`]; a per-shard replication stream between two
//! ferrokv nodes ships each shard's log as it is, and the receiving node applies a
//! multi-shard unit when all its markers have arrived.
//!
//! The log is off until a consumer turns it on ([`crate::Db::enable_effects`]): with
//! it off, the execution function builds no records at all.

use std::collections::VecDeque;

/// A command as propagated: its arguments, name first.
pub type Argv = Vec<Vec<u8>>;

/// The records of one execution unit, applied atomically.
///
/// The records are kept encoded as the AOF and a replica receive them (RESP arrays of
/// bulk strings, one allocation per unit), encoded by the thread that ran the unit:
/// a consumer on another thread then frees one buffer instead of every argument (with
/// glibc's allocator, cross-thread frees of many small blocks cost a fifth of a
/// shard's CPU under an AOF write load).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// The records, back to back, each `*<n>\r\n$<len>\r\n<arg>\r\n...`.
    pub resp: Vec<u8>,
    /// How many records `resp` holds.
    pub count: usize,
    /// A unit that held several shards' locks.
    pub multi: Option<MultiTag>,
    /// False for a run of single-record units of one shard, coalesced in the log so
    /// that a write load appends to one buffer instead of allocating one per command:
    /// each record is then a unit of its own (no MULTI/EXEC around them).
    pub atomic: bool,
    /// The database the unit ran in (a consumer writes `SELECT` when it changes).
    pub db: usize,
    /// For replicas only, not the AOF: a PUBLISH outside cluster mode, which Redis
    /// forces into the replication stream (`PROPAGATE_REPL`) so that a replica's
    /// subscribers get it. Never coalesced with other units.
    pub repl_only: bool,
}

impl Unit {
    /// Whether a Redis-compatible stream wraps this unit in MULTI/EXEC.
    pub fn wrapped(&self) -> bool {
        self.atomic && self.count > 1
    }
}

/// `count` records encoded back to back in `resp`.
fn decode(resp: &[u8], count: usize) -> Vec<Argv> {
    let mut r = ferrokv_rdb::aof::CommandReader::new(resp);
    let mut out = Vec::with_capacity(count);
    while let Ok(Some(cmd)) = r.next_command() {
        out.push(cmd);
    }
    out
}

/// Records being gathered for a unit (a command's, or a whole EXEC's), encoded as they
/// come: the execution function writes a command propagated as called straight from
/// its arguments, with no copy of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    pub resp: Vec<u8>,
    pub count: usize,
}

impl Records {
    /// Empty records writing into `buf` (a buffer reused from an earlier unit).
    pub fn with_buffer(mut buf: Vec<u8>) -> Records {
        buf.clear();
        Records { resp: buf, count: 0 }
    }

    pub fn push(&mut self, argv: &[Vec<u8>]) {
        ferrokv_rdb::aof::write_command(&mut self.resp, argv);
        self.count += 1;
    }

    /// A record from borrowed arguments.
    pub fn push_args<'a>(&mut self, args: impl ExactSizeIterator<Item = &'a [u8]>) {
        ferrokv_rdb::aof::write_command_args(&mut self.resp, args);
        self.count += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// The records, decoded (tests and simulators).
    pub fn decode(&self) -> Vec<Argv> {
        decode(&self.resp, self.count)
    }
}

impl Unit {
    pub fn new(records: &[Argv], multi: Option<MultiTag>) -> Unit {
        let mut r = Records::default();
        for argv in records {
            r.push(argv);
        }
        Unit::of(r, multi)
    }

    /// A unit of gathered records (their buffer becomes the unit's).
    pub fn of(records: Records, multi: Option<MultiTag>) -> Unit {
        Unit { resp: records.resp, count: records.count, multi, atomic: true, db: 0, repl_only: false }
    }

    /// The unit, for replicas only (see [`Unit::repl_only`]).
    pub fn for_replicas_only(mut self) -> Unit {
        self.repl_only = true;
        self
    }

    /// The unit, as run in database `db`.
    pub fn in_db(mut self, db: usize) -> Unit {
        self.db = db;
        self
    }

    /// The records, decoded (tests and simulators).
    pub fn records(&self) -> Vec<Argv> {
        decode(&self.resp, self.count)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiTag {
    /// Node-wide, increasing in the order such units took their locks.
    pub id: u64,
    /// Every shard whose lock the unit held, ascending. The first holds the records.
    pub shards: Box<[u16]>,
}

/// An entry of one shard's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Unit(Unit),
    /// The multi-shard unit `id`, whose records are in the log of a lower shard, ran
    /// here at this point.
    Joined {
        id: u64,
    },
}

/// One shard's effects, oldest first.
#[derive(Default, Debug)]
pub struct EffectLog {
    parts: VecDeque<Part>,
    /// Keys deleted because they expired, not yet turned into records.
    expired: Vec<Box<[u8]>>,
}

impl EffectLog {
    pub fn push(&mut self, part: Part) {
        if let Part::Unit(u) = part {
            self.push_unit(u);
        } else {
            self.parts.push_back(part);
        }
    }

    /// Logs a unit. A single-record unit of this shard alone joins the run of such
    /// units at the end of the log: its bytes are copied and its buffer is handed back
    /// (emptied) for the caller to reuse.
    pub fn push_unit(&mut self, u: Unit) -> Option<Vec<u8>> {
        if u.count == 1 && u.multi.is_none() && !u.repl_only {
            if let Some(Part::Unit(last)) = self.parts.back_mut() {
                if last.multi.is_none()
                    && !last.repl_only
                    && last.db == u.db
                    && (!last.atomic || last.count == 1)
                    && last.resp.len() < 1 << 20
                {
                    last.resp.extend_from_slice(&u.resp);
                    last.count += 1;
                    last.atomic = false;
                    let mut buf = u.resp;
                    buf.clear();
                    return Some(buf);
                }
            }
        }
        self.parts.push_back(Part::Unit(u));
        None
    }

    /// Logs a single-record unit of this shard from its arguments, appended to the run
    /// at the end of the log when there is one (no allocation for the common write).
    pub fn push_single<'a>(&mut self, db: usize, args: impl ExactSizeIterator<Item = &'a [u8]>) {
        if let Some(Part::Unit(last)) = self.parts.back_mut() {
            if last.multi.is_none()
                && !last.repl_only
                && last.db == db
                && (!last.atomic || last.count == 1)
                && last.resp.len() < 1 << 20
            {
                ferrokv_rdb::aof::write_command_args(&mut last.resp, args);
                last.count += 1;
                last.atomic = false;
                return;
            }
        }
        let mut r = Records::default();
        r.push_args(args);
        self.parts.push_back(Part::Unit(Unit::of(r, None).in_db(db)));
    }

    /// Takes every part logged so far.
    pub fn drain(&mut self) -> VecDeque<Part> {
        std::mem::take(&mut self.parts)
    }

    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    pub(crate) fn note_expired(&mut self, key: &[u8]) {
        self.expired.push(key.into());
    }

    /// Keys deleted by expiry since the last call, as `DEL key` records (Redis 7.0
    /// propagates a lazily or actively expired key as DEL, with `lazyfree-lazy-expire
    /// no`, the default).
    pub fn take_expired(&mut self, out: &mut Records) {
        for k in self.expired.drain(..) {
            out.push_args([&b"DEL"[..], &k].into_iter());
        }
    }

    /// [`EffectLog::take_expired`], each key a unit of its own (the active expiry
    /// cycle's deletions in database `db`). Returns the keys.
    pub fn log_expired_units(&mut self, db: usize) -> Vec<Box<[u8]>> {
        let keys = std::mem::take(&mut self.expired);
        for k in &keys {
            self.push_single(db, [&b"DEL"[..], k].into_iter());
        }
        keys
    }
}

/// Why [`merge`] could not order the logs.
#[derive(Debug, PartialEq, Eq)]
pub enum MergeError {
    /// A multi-shard unit whose markers are missing from a shard it locked.
    Incomplete { id: u64, shard: usize },
    /// A marker with no unit, or parts out of the order their ids promise.
    Inconsistent(String),
}

/// Interleaves the shards' logs (index = shard) into one serial stream of units, the
/// order a single-threaded server could have run them in. Consumes what it orders;
/// returns an error if the logs break the rules above.
pub fn merge(logs: &mut [VecDeque<Part>]) -> Result<Vec<Unit>, MergeError> {
    let mut out = Vec::new();
    loop {
        // Units of a single shard go first: they commute with other shards' units.
        let mut progressed = false;
        for log in logs.iter_mut() {
            while let Some(Part::Unit(Unit { multi: None, .. })) = log.front() {
                if let Some(Part::Unit(u)) = log.pop_front() {
                    out.push(u);
                    progressed = true;
                }
            }
        }
        // Every head is now a multi-shard part (or the log is empty): the lowest id
        // must be complete on all of its shards.
        let mut lowest: Option<(u64, usize)> = None;
        for (s, log) in logs.iter().enumerate() {
            let id = match log.front() {
                Some(Part::Unit(Unit { multi: Some(t), .. })) => t.id,
                Some(Part::Joined { id }) => *id,
                _ => continue,
            };
            if lowest.is_none_or(|(l, _)| id < l) {
                lowest = Some((id, s));
            }
        }
        let Some((id, _)) = lowest else {
            if progressed {
                continue;
            }
            return Ok(out);
        };
        let leader =
            logs.iter().position(|l| matches!(l.front(), Some(Part::Unit(Unit { multi: Some(t), .. })) if t.id == id));
        let Some(leader) = leader else {
            return Err(MergeError::Inconsistent(format!(
                "marker of unit {id} at the head of a log, but not its records"
            )));
        };
        let Some(Part::Unit(unit)) = logs[leader].pop_front() else { unreachable!("checked above") };
        let shards = unit.multi.as_ref().map(|t| t.shards.clone()).unwrap_or_default();
        for &s in shards.iter().filter(|&&s| s as usize != leader) {
            match logs.get_mut(s as usize).and_then(|l| l.pop_front()) {
                Some(Part::Joined { id: j }) if j == id => {}
                Some(other) => {
                    return Err(MergeError::Inconsistent(format!(
                        "shard {s}: expected marker of unit {id}, found {other:?}"
                    )))
                }
                None => return Err(MergeError::Incomplete { id, shard: s as usize }),
            }
        }
        out.push(unit);
    }
}

/// [`merge`] for logs that arrive in pieces (the AOF writer, a replication feed): orders
/// into `out` every unit that can be ordered now and leaves the rest in `logs` — a
/// multi-shard unit waits, with everything behind it, until its records and the
/// markers of every shard it locked have arrived.
pub fn merge_ready(logs: &mut [VecDeque<Part>], out: &mut Vec<Unit>) -> Result<(), MergeError> {
    loop {
        for log in logs.iter_mut() {
            while let Some(Part::Unit(Unit { multi: None, .. })) = log.front() {
                if let Some(Part::Unit(u)) = log.pop_front() {
                    out.push(u);
                }
            }
        }
        let mut lowest: Option<u64> = None;
        for log in logs.iter() {
            let id = match log.front() {
                Some(Part::Unit(Unit { multi: Some(t), .. })) => t.id,
                Some(Part::Joined { id }) => *id,
                _ => continue,
            };
            if lowest.is_none_or(|l| id < l) {
                lowest = Some(id);
            }
        }
        let Some(id) = lowest else { return Ok(()) };
        let leader =
            logs.iter().position(|l| matches!(l.front(), Some(Part::Unit(Unit { multi: Some(t), .. })) if t.id == id));
        // Its records have not arrived yet.
        let Some(leader) = leader else { return Ok(()) };
        let shards = match logs[leader].front() {
            Some(Part::Unit(Unit { multi: Some(t), .. })) => t.shards.clone(),
            _ => unreachable!("checked above"),
        };
        for &s in shards.iter().filter(|&&s| s as usize != leader) {
            match logs.get(s as usize).and_then(|l| l.front()) {
                Some(Part::Joined { id: j }) if *j == id => {}
                None if (s as usize) < logs.len() => return Ok(()),
                other => {
                    return Err(MergeError::Inconsistent(format!(
                        "shard {s}: expected marker of unit {id}, found {other:?}"
                    )))
                }
            }
        }
        for &s in shards.iter().filter(|&&s| s as usize != leader) {
            logs[s as usize].pop_front();
        }
        if let Some(Part::Unit(u)) = logs[leader].pop_front() {
            out.push(u);
        }
    }
}

/// The commands a Redis-compatible stream carries for `units`: a unit of more than one
/// record inside `MULTI` ... `EXEC`, as Redis 7.0 wraps what one command propagated.
/// Appends `units` to `out` as the command stream a consumer replays: each unit's
/// records, a multi-record atomic unit wrapped in MULTI/EXEC (what `to_commands`
/// gives, without copying the records apart).
/// `db` is the stream's database so far: a unit of another one is preceded by
/// `SELECT`, as Redis's `feedAppendOnlyFile`/`replicationFeedSlaves` write it.
pub fn write_units(units: &[Unit], out: &mut Vec<u8>, db: &mut usize) {
    for u in units {
        // An empty unit only orders shards' logs (a slot handed between shards).
        if u.count == 0 {
            continue;
        }
        if u.db != *db {
            write_select(out, u.db);
            *db = u.db;
        }
        let wrap = u.wrapped();
        if wrap {
            out.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
        }
        out.extend_from_slice(&u.resp);
        if wrap {
            out.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
        }
    }
}

/// `SELECT <db>` as a stream carries it.
pub fn write_select(out: &mut Vec<u8>, db: usize) {
    let n = db.to_string();
    ferrokv_rdb::aof::write_command_args(out, [&b"SELECT"[..], n.as_bytes()].into_iter());
}

/// [`write_units`] as commands, for a stream that starts in database 0.
pub fn to_commands(units: &[Unit]) -> Vec<Argv> {
    let mut out = Vec::new();
    let mut db = 0;
    for u in units.iter().filter(|u| u.count > 0) {
        if u.db != db {
            out.push(vec![b"SELECT".to_vec(), u.db.to_string().into_bytes()]);
            db = u.db;
        }
        if u.wrapped() {
            out.push(vec![b"MULTI".to_vec()]);
            out.extend(u.records());
            out.push(vec![b"EXEC".to_vec()]);
        } else {
            out.extend(u.records());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(s: &str) -> Argv {
        s.split(' ').map(|a| a.as_bytes().to_vec()).collect()
    }

    fn single(s: &str) -> Part {
        Part::Unit(Unit::new(&[rec(s)], None))
    }

    fn multi(id: u64, shards: &[u16], recs: &[&str]) -> Part {
        let records: Vec<Argv> = recs.iter().map(|r| rec(r)).collect();
        Part::Unit(Unit::new(&records, Some(MultiTag { id, shards: shards.into() })))
    }

    #[test]
    fn multi_shard_units_wait_for_every_shard_they_locked() {
        let mut logs = vec![
            VecDeque::from([single("SET a 1"), multi(1, &[0, 1], &["SET a 2", "SET b 2"]), single("SET a 3")]),
            VecDeque::from([single("SET b 1"), Part::Joined { id: 1 }, single("SET b 3")]),
        ];
        let units = merge(&mut logs).unwrap();
        let cmds = to_commands(&units);
        let text: Vec<String> = cmds.iter().map(|c| String::from_utf8_lossy(&c.join(&b' ')).to_string()).collect();
        // Both singles before the transaction, the transaction wrapped, both after.
        let pos = |s: &str| text.iter().position(|t| t == s).unwrap();
        assert!(pos("SET a 1") < pos("MULTI") && pos("SET b 1") < pos("MULTI"));
        assert_eq!(&text[pos("MULTI")..pos("MULTI") + 4], ["MULTI", "SET a 2", "SET b 2", "EXEC"]);
        assert!(pos("EXEC") < pos("SET a 3") && pos("EXEC") < pos("SET b 3"));
    }

    /// Fed in pieces, in any split, the ready merge orders the same units as [`merge`]
    /// on the whole logs.
    #[test]
    fn ready_merge_of_pieces_equals_the_whole_merge() {
        let logs = vec![
            VecDeque::from([
                single("A1"),
                multi(1, &[0, 1], &["M1"]),
                single("A2"),
                multi(3, &[0, 2], &["M3"]),
                single("A3"),
            ]),
            VecDeque::from([single("B1"), Part::Joined { id: 1 }, multi(2, &[1, 2], &["M2"]), single("B2")]),
            VecDeque::from([single("C1"), Part::Joined { id: 2 }, Part::Joined { id: 3 }, single("C2")]),
        ];
        let names = |units: &[Unit]| -> Vec<String> {
            units.iter().map(|u| String::from_utf8_lossy(&u.records()[0][0]).to_string()).collect()
        };
        let whole = names(&merge(&mut logs.clone()).unwrap());
        for split in 0..64u32 {
            let mut pending: Vec<VecDeque<Part>> = vec![VecDeque::new(); 3];
            let mut out = Vec::new();
            let mut sources = logs.clone();
            let mut step = 0;
            while sources.iter().any(|l| !l.is_empty()) {
                let s = ((split >> (step % 5)) as usize + step) % 3;
                if let Some(p) = sources[s].pop_front() {
                    pending[s].push_back(p);
                }
                merge_ready(&mut pending, &mut out).unwrap();
                step += 1;
            }
            let got = names(&out);
            assert_eq!(got.len(), whole.len(), "split {split}");
            // Same per-shard order and same multi-unit order (singles of different
            // shards may interleave differently: they commute).
            let multis = |v: &[String]| v.iter().filter(|n| n.starts_with('M')).cloned().collect::<Vec<_>>();
            assert_eq!(multis(&got), multis(&whole));
            for p in ["A", "B", "C"] {
                let of = |v: &[String]| v.iter().filter(|n| n.starts_with(p)).cloned().collect::<Vec<_>>();
                assert_eq!(of(&got), of(&whole));
            }
            let pos = |n: &str| got.iter().position(|x| x == n).unwrap();
            assert!(pos("A1") < pos("M1") && pos("B1") < pos("M1") && pos("M1") < pos("A2"));
            assert!(pos("M2") < pos("B2") && pos("M3") < pos("C2") && pos("M2") < pos("M3"));
        }
    }

    /// Single-record units of one shard coalesce into one buffer, each still a unit of
    /// its own in the stream; a multi-record unit stays whole and wrapped.
    #[test]
    fn single_record_units_coalesce_without_wrapping() {
        let mut log = EffectLog::default();
        log.push(single("SET a 1"));
        log.push_single(0, [&b"SET"[..], b"b", b"2"].into_iter());
        log.push(single("DEL c"));
        let mut tx = Records::default();
        tx.push(&rec("INCR n"));
        tx.push(&rec("INCR m"));
        log.push(Part::Unit(Unit::of(tx, None)));
        log.push(single("SET d 4"));
        assert_eq!(log.len(), 3, "a run of three, the transaction, a new run");
        let units = merge(&mut [log.drain()]).unwrap();
        let text: Vec<String> =
            to_commands(&units).iter().map(|c| String::from_utf8_lossy(&c.join(&b' ')).to_string()).collect();
        assert_eq!(text, ["SET a 1", "SET b 2", "DEL c", "MULTI", "INCR n", "INCR m", "EXEC", "SET d 4"]);
    }

    #[test]
    fn a_missing_marker_is_reported() {
        let mut logs = vec![VecDeque::from([multi(7, &[0, 1], &["MSET a 1 b 1"])]), VecDeque::new()];
        assert_eq!(merge(&mut logs), Err(MergeError::Incomplete { id: 7, shard: 1 }));
        let mut logs = vec![VecDeque::from([Part::Joined { id: 3 }])];
        assert!(matches!(merge(&mut logs), Err(MergeError::Inconsistent(_))));
    }

    #[test]
    fn multi_units_merge_in_id_order_across_overlapping_shard_sets() {
        let mut logs = vec![
            VecDeque::from([multi(1, &[0, 1], &["X1"]), multi(3, &[0, 2], &["X3"])]),
            VecDeque::from([Part::Joined { id: 1 }, multi(2, &[1, 2], &["X2"])]),
            VecDeque::from([Part::Joined { id: 2 }, Part::Joined { id: 3 }]),
        ];
        let units = merge(&mut logs).unwrap();
        let names: Vec<Vec<u8>> = units.iter().map(|u| u.records()[0][0].clone()).collect();
        assert_eq!(names, [b"X1", b"X2", b"X3"]);
    }
}
