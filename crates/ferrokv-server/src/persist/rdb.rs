//! dump.rdb: SAVE, BGSAVE, LASTSAVE, save points, the save at shutdown and loading at
//! start-up.
//!
//! BGSAVE without fork. Under every shard's keyspace lock at once (one instant, the
//! same cut for all shards), each shard's [`Db`] begins a copy-on-write snapshot
//! ([`Db::begin_snapshot`]) and a writer thread opens `temp-bgsave-<pid>.rdb` with the
//! header, AUX fields, SELECTDB and RESIZEDB. From then on each shard, once per loop
//! iteration ([`shard_step`]), serialises a budget of its pending slots and ships the
//! records (and whatever its writes copied on write meanwhile) to the writer over a
//! channel; the writer appends them in arrival order — records of different shards
//! interleave, which RDB allows: each is a self-contained key — checksums them, and
//! when every shard reported its end writes EOF and the CRC-64, fsyncs and renames the
//! file over `dbfilename`. Shards stop walking while more than [`IN_FLIGHT_MAX`] bytes
//! wait for the writer, so a slow disk bounds memory instead of growing it.
//!
//! SAVE (and the save at shutdown) takes every lock and writes the whole file on the
//! calling thread, blocking the node as Redis's SAVE blocks redis-server.
//!
//! Lock order: the save state (`Persist::state`), then keyspace locks (ascending),
//! then the AOF's inbox; the AOF's stats are never held while taking the save state
//! (INFO holds the save state while reading them).

use crate::node::lock;
use crate::node::{unix_ms, Node, ShardId};
use ferrokv_rdb::file::{self as rdbfile, Checksum};
use ferrokv_store::rdb::{build_value, BuildError, Limits};
use ferrokv_store::Db;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

/// Bytes shipped to the writer and not yet written above which shards stop walking
/// (copy-on-write output still ships: it must).
const IN_FLIGHT_MAX: u64 = 32 << 20;
/// The most a shard serialises per loop iteration; and how long it may spend: as long
/// as it spent serving clients in that iteration (so a save under load takes at most
/// half the shard's time), at least [`STEP_MIN_TIME`], and [`STEP_IDLE_TIME`] when it
/// had nothing else to do.
const STEP_BYTES: usize = 4 << 20;
const STEP_MIN_TIME: std::time::Duration = std::time::Duration::from_micros(20);
const STEP_IDLE_TIME: std::time::Duration = std::time::Duration::from_millis(1);
/// Redis retries a failed automatic BGSAVE only after this many seconds.
const BGSAVE_RETRY_DELAY: u64 = 5;

enum Chunk {
    /// Records of a shard's databases `first_db`..=`last_db` (a SELECTDB record where
    /// the database changes within them).
    Records {
        bytes: Vec<u8>,
        first_db: usize,
        last_db: usize,
    },
    Done {
        keys: u64,
    },
}

/// Node-wide persistence state.
#[derive(Default)]
pub struct Persist {
    /// A BGSAVE is running: shards ship their snapshot output ([`shard_step`]).
    pub active: AtomicBool,
    /// Bytes shipped to the writer, not yet written.
    in_flight: AtomicU64,
    sender: Mutex<Option<mpsc::Sender<Chunk>>>,
    state: Mutex<SaveState>,
    /// Writes are refused with MISCONF (the last BGSAVE failed, save points are set and
    /// `stop-writes-on-bgsave-error yes`).
    pub misconf: AtomicBool,
    /// Unix seconds of the last successful save (LASTSAVE), or of start-up.
    pub lastsave: AtomicU64,
    /// The node's change counter when the last successful save began.
    dirty_at_last_save: AtomicU64,
    /// Keys saved so far by the running BGSAVE.
    keys_processed: AtomicU64,
    /// The running BGSAVE was stopped on purpose (FLUSHALL, shutdown): its end is
    /// not a failure (as Redis's SIGUSR1 to its child is not).
    abandoned: AtomicBool,
    /// What loading at start-up found.
    pub loaded_keys: AtomicU64,
    pub loaded_expired: AtomicU64,
}

impl Persist {
    pub fn new() -> Persist {
        let p = Persist::default();
        // Redis's LASTSAVE before any save is the start-up time.
        p.lastsave.store(unix_ms() / 1000, Ordering::Relaxed);
        p
    }
}

#[derive(Default)]
struct SaveState {
    running: Option<Running>,
    last_ok: Option<bool>,
    last_duration_secs: Option<u64>,
    saves: u64,
    /// BGSAVE SCHEDULE (or inside MULTI): start at the next cron.
    scheduled: bool,
    /// Unix seconds of the last BGSAVE attempt (for the retry delay).
    last_try: u64,
}

struct Running {
    started: Instant,
    dirty_at_start: u64,
    keys_total: u64,
    /// BGSAVE (else an AOF rewrite, which INFO reports apart).
    rdb: bool,
}

/// The node's change counter (Redis's `server.dirty`): changes made by commands.
pub fn dirty(node: &Node) -> u64 {
    node.shards.iter().map(|s| s.dirty.load(Ordering::Relaxed)).sum()
}

/// `dir`/`dbfilename` and the temporary file a save writes first.
fn paths(node: &Node, temp_prefix: &str) -> (PathBuf, PathBuf) {
    let cfg = node.config();
    let dir = PathBuf::from(&cfg.dir);
    let target = dir.join(&cfg.dbfilename);
    let temp = dir.join(format!("{temp_prefix}-{}.rdb", std::process::id()));
    (target, temp)
}

/// The start of a file: header, AUX fields, then (unless the keyspace is empty, which
/// Redis writes no database for) SELECTDB 0 and RESIZEDB. `aof_base`: the file is an
/// AOF's base (Redis's `aof-base` AUX field).
pub fn file_head(keys: u64, expires: u64, aof_base: bool) -> Vec<u8> {
    let mut out = Vec::new();
    rdbfile::write_header(&mut out);
    rdbfile::write_aux(&mut out, "redis-ver", crate::cmds::REDIS_VERSION.as_bytes());
    rdbfile::write_aux_int(&mut out, "redis-bits", 64);
    rdbfile::write_aux_int(&mut out, "ctime", (unix_ms() / 1000) as i64);
    rdbfile::write_aux_int(&mut out, "used-mem", crate::memory::allocated() as i64);
    rdbfile::write_aux_int(&mut out, "aof-base", aof_base as i64);
    // Function libraries come before the keyspace, as Redis's rdbSaveFunctions writes them.
    for code in ferrokv_commands::scripting::functions::all_codes() {
        rdbfile::write_function(&mut out, &code);
    }
    if keys > 0 {
        rdbfile::write_select_db(&mut out, 0);
        rdbfile::write_resize_db(&mut out, keys, expires);
    }
    out
}

/// A file being written: checksummed, then synced and renamed into place.
struct FileOut {
    file: std::io::BufWriter<File>,
    crc: Checksum,
    temp: PathBuf,
}

impl FileOut {
    fn create(temp: &Path) -> std::io::Result<FileOut> {
        let file = File::create(temp)?;
        Ok(FileOut {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            crc: Checksum::default(),
            temp: temp.into(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.file.write_all(bytes)
    }

    /// EOF, checksum, fsync, rename over `target`, fsync of the directory.
    fn finish(mut self, target: &Path, checksum: bool) -> std::io::Result<()> {
        let mut tail = Vec::new();
        rdbfile::write_eof(&mut tail);
        self.write(&tail)?;
        let trailer = self.crc.trailer(checksum);
        self.file.write_all(&trailer)?;
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.temp, target)?;
        if let Some(dir) = target.parent() {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Every shard's keyspace, locked in order.
fn lock_all(node: &Node) -> Vec<(ShardId, crate::node::DbGuard<'_>)> {
    let all: Vec<ShardId> = (0..node.shard_count()).collect();
    node.lock_dbs(&all)
}

/// SAVE: the whole keyspace written on this thread under every lock.
pub fn save(node: &Node) -> Result<(), String> {
    if lock(&node.persist.state).running.is_some() {
        return Err("ERR Background save already in progress".into());
    }
    let (target, temp) = paths(node, "temp");
    let (compress, checksum) = {
        let cfg = node.config();
        (cfg.rdbcompression, cfg.rdbchecksum)
    };
    let started = Instant::now();
    let mut dbs = lock_all(node);
    let dirty_at_start = dirty(node);
    let now = unix_ms();
    let starts: Vec<_> = dbs.iter_mut().map(|(_, db)| db.begin_snapshot(now, compress)).collect();
    let result = (|| -> std::io::Result<()> {
        let mut out = FileOut::create(&temp)?;
        out.write(&file_head(starts.iter().map(|s| s.keys).sum(), starts.iter().map(|s| s.expires).sum(), false))?;
        let mut file_db = 0;
        for (_, db) in dbs.iter_mut() {
            loop {
                db.snapshot_step(4 << 20);
                let o = db.take_snapshot_output();
                if let Some(first) = o.first_db {
                    out.write(&select_if_needed(&mut file_db, first, o.last_db))?;
                    out.write(&o.bytes)?;
                }
                if o.done || !db.snapshot_active() {
                    break;
                }
            }
        }
        out.finish(&target, checksum)
    })();
    for (_, db) in dbs.iter_mut() {
        db.abort_snapshot();
    }
    drop(dbs);
    match result {
        Ok(()) => {
            tracing::info!("DB saved on disk");
            saved(node, dirty_at_start, started, true);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            tracing::warn!("Failed saving the DB: {e}");
            saved(node, dirty_at_start, started, false);
            Err("ERR".into())
        }
    }
}

/// The SELECTDB record to write before records of databases `first..=last` when the
/// file is in database `file_db` (empty when it is already there); `file_db` becomes
/// `last`.
fn select_if_needed(file_db: &mut usize, first: usize, last: usize) -> Vec<u8> {
    let mut out = Vec::new();
    if first != *file_db {
        rdbfile::write_select_db(&mut out, first as u64);
    }
    *file_db = last;
    out
}

/// Records the end of a save (SAVE or BGSAVE).
fn saved(node: &Node, dirty_at_start: u64, started: Instant, ok: bool) {
    let p = &node.persist;
    let mut st = lock(&p.state);
    st.last_ok = Some(ok);
    st.last_duration_secs = Some(started.elapsed().as_secs());
    if ok {
        st.saves += 1;
        p.dirty_at_last_save.store(dirty_at_start, Ordering::Relaxed);
        p.lastsave.store(unix_ms() / 1000, Ordering::Relaxed);
    }
    let cfg = node.config();
    let refuse = !ok && cfg.stop_writes_on_bgsave_error && !save_points(&cfg.save).is_empty();
    p.misconf.store(refuse, Ordering::Relaxed);
}

/// Why BGSAVE did not start.
pub enum BgsaveRefused {
    InProgress,
}

/// What a background snapshot is for.
pub enum SnapshotPurpose {
    /// BGSAVE: dump.rdb.
    Rdb,
    /// BGREWRITEAOF: a new AOF base (see `crate::aof`).
    AofBase,
    /// A diskless full sync: the image goes to replicas (see `crate::repl`).
    Replicas,
}

/// Called under every keyspace lock at the snapshot's instant (the AOF rewrite cuts
/// its command stream there), and when the file is complete (or failed).
pub type AtCut<'a> = Box<dyn FnOnce(&mut [(ShardId, crate::node::DbGuard<'_>)]) + 'a>;
pub type OnDone = Box<dyn FnOnce(&Node, Result<(), String>) + Send>;

/// BGSAVE: starts a background save (see the module docs).
pub fn bgsave(node: &'static Node) -> Result<(), BgsaveRefused> {
    let (target, temp) = paths(node, "temp-bgsave");
    start_background(node, SnapshotPurpose::Rdb, target, temp, Box::new(|_| {}), Box::new(|_, _| {}))
}

/// Where a background snapshot goes: a file (written as `temp`, then renamed over
/// `target`), or a stream of bytes (a diskless full sync's replicas).
pub enum Dest {
    File { target: PathBuf, temp: PathBuf },
    Stream(Box<dyn RdbStream>),
}

/// The receiver of a snapshot written as a stream: the whole RDB image, in order, then
/// `finish` (or nothing, if the snapshot failed).
pub trait RdbStream: Send {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    fn finish(&mut self) -> std::io::Result<()>;
}

/// Starts a background snapshot into `target` (written as `temp` first).
pub fn start_background(
    node: &'static Node,
    purpose: SnapshotPurpose,
    target: PathBuf,
    temp: PathBuf,
    at_cut: AtCut<'_>,
    on_done: OnDone,
) -> Result<(), BgsaveRefused> {
    start_background_to(node, purpose, Dest::File { target, temp }, at_cut, on_done)
}

/// Starts a background snapshot into `dest` (see the module docs).
pub fn start_background_to(
    node: &'static Node,
    purpose: SnapshotPurpose,
    dest: Dest,
    at_cut: AtCut<'_>,
    on_done: OnDone,
) -> Result<(), BgsaveRefused> {
    let p = &node.persist;
    let mut st = lock(&p.state);
    if st.running.is_some() {
        return Err(BgsaveRefused::InProgress);
    }
    if matches!(purpose, SnapshotPurpose::Rdb) {
        st.scheduled = false;
        st.last_try = unix_ms() / 1000;
    }
    let (compress, checksum) = {
        let cfg = node.config();
        (cfg.rdbcompression, cfg.rdbchecksum)
    };
    let (tx, rx) = mpsc::channel();
    let mut dbs = lock_all(node);
    let dirty_at_start = dirty(node);
    let now = unix_ms();
    let starts: Vec<_> = dbs.iter_mut().map(|(_, db)| db.begin_snapshot(now, compress)).collect();
    at_cut(&mut dbs);
    let keys_total = starts.iter().map(|s| s.keys).sum();
    let rdb = matches!(purpose, SnapshotPurpose::Rdb);
    let aof_base = matches!(purpose, SnapshotPurpose::AofBase);
    let head = file_head(keys_total, starts.iter().map(|s| s.expires).sum(), aof_base);
    *lock(&p.sender) = Some(tx);
    p.keys_processed.store(0, Ordering::Relaxed);
    p.active.store(true, Ordering::Release);
    drop(dbs);
    let started = Instant::now();
    st.running = Some(Running { started, dirty_at_start, keys_total, rdb });
    drop(st);
    match purpose {
        SnapshotPurpose::Rdb => tracing::info!("Background saving started"),
        SnapshotPurpose::AofBase => tracing::info!("Background append only file rewriting started"),
        SnapshotPurpose::Replicas => tracing::info!("Starting BGSAVE for SYNC with target: replicas sockets"),
    }
    let shards = node.shard_count();
    let spawned = std::thread::Builder::new().name("rdb-writer".into()).spawn(move || {
        let result = match dest {
            Dest::File { target, temp } => {
                let out = FileOut::create(&temp).map(|f| Out::File(f, target));
                let r = write_background(node, out, head, rx, shards, checksum);
                if r.is_err() {
                    let _ = std::fs::remove_file(&temp);
                }
                r
            }
            Dest::Stream(s) => {
                let out = Ok(Out::Stream(s, Checksum::default()));
                write_background(node, out, head, rx, shards, checksum)
            }
        };
        let result = result.map(|_| ()).map_err(|e| e.to_string());
        end_background(node, result.clone());
        on_done(node, result);
    });
    if let Err(e) = spawned {
        tracing::warn!("Can't save in background: {e}");
        end_background(node, Err(e.to_string()));
    }
    Ok(())
}

/// A background snapshot's output.
enum Out {
    File(FileOut, PathBuf),
    Stream(Box<dyn RdbStream>, Checksum),
}

impl Out {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Out::File(f, _) => f.write(bytes),
            Out::Stream(s, crc) => {
                crc.update(bytes);
                s.write(bytes)
            }
        }
    }

    fn finish(self, checksum: bool) -> std::io::Result<()> {
        match self {
            Out::File(f, target) => f.finish(&target, checksum),
            Out::Stream(mut s, mut crc) => {
                let mut tail = Vec::new();
                rdbfile::write_eof(&mut tail);
                crc.update(&tail);
                tail.extend_from_slice(&crc.trailer(checksum));
                s.write(&tail)?;
                s.finish()
            }
        }
    }
}

/// The writer thread: the head, then chunks as they arrive, until every shard is done.
fn write_background(
    node: &Node,
    mut out: std::io::Result<Out>,
    head: Vec<u8>,
    rx: mpsc::Receiver<Chunk>,
    shards: usize,
    checksum: bool,
) -> std::io::Result<u64> {
    let mut failed: Option<std::io::Error> = None;
    if let Ok(o) = out.as_mut() {
        if let Err(e) = o.write(&head) {
            failed = Some(e);
        }
    }
    let mut done = 0;
    let mut keys = 0;
    // The head selects database 0 (when there are keys at all).
    let mut file_db = 0;
    while done < shards {
        match rx.recv() {
            Ok(Chunk::Records { bytes, first_db, last_db }) => {
                node.persist.in_flight.fetch_sub(bytes.len() as u64, Ordering::Relaxed);
                let select = select_if_needed(&mut file_db, first_db, last_db);
                if let (Ok(o), None) = (out.as_mut(), &failed) {
                    if let Err(e) = o.write(&select).and_then(|_| o.write(&bytes)) {
                        failed = Some(e);
                    }
                }
            }
            Ok(Chunk::Done { keys: k }) => {
                done += 1;
                keys += k;
            }
            Err(_) => {
                return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "save abandoned (shutting down)"))
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    out?.finish(checksum)?;
    Ok(keys)
}

fn end_background(node: &Node, result: Result<(), String>) {
    let p = &node.persist;
    p.active.store(false, Ordering::Release);
    *lock(&p.sender) = None;
    p.in_flight.store(0, Ordering::Relaxed);
    let running = lock(&p.state).running.take();
    let Some(r) = running else { return };
    if !r.rdb || p.abandoned.swap(false, Ordering::AcqRel) {
        return;
    }
    match &result {
        Ok(()) => {
            tracing::info!("DB saved on disk");
            tracing::info!("Background saving terminated with success");
        }
        Err(e) => tracing::warn!("Background saving error: {e}"),
    }
    saved(node, r.dirty_at_start, r.started, result.is_ok());
    // The shards' snapshots end by themselves; a failed save leaves none behind
    // because every shard ran to its end before the writer returned.
}

/// A shard's share of a running BGSAVE, once per loop iteration: walk a budget of
/// pending slots (unless the writer is behind), ship the records and what writes
/// copied. `served` is the time this loop iteration spent on clients. Returns whether the
/// shard has snapshot work left (then it should not sleep).
pub fn shard_step(node: &Node, shard: ShardId, served: std::time::Duration) -> bool {
    let p = &node.persist;
    if !p.active.load(Ordering::Acquire) {
        return false;
    }
    let behind = p.in_flight.load(Ordering::Relaxed) > IN_FLIGHT_MAX;
    let budget = if behind { 0 } else { STEP_BYTES };
    let time = if served < STEP_MIN_TIME { STEP_IDLE_TIME } else { served };
    let deadline = Instant::now() + time;
    let (done, records, keys) = {
        let mut db = node.lock_db(shard);
        if !db.snapshot_active() {
            return false;
        }
        db.snapshot_step_until(budget, Some(deadline));
        // The take says when the snapshot ended (the step may stop at its deadline
        // right after saving the last slot).
        let o = db.take_snapshot_output();
        let keys = o.keys;
        (o.done, o, keys)
    };
    let sender = lock(&p.sender);
    let Some(tx) = sender.as_ref() else { return false };
    if let Some(first_db) = records.first_db {
        p.in_flight.fetch_add(records.bytes.len() as u64, Ordering::Relaxed);
        let _ = tx.send(Chunk::Records { bytes: records.bytes, first_db, last_db: records.last_db });
    }
    p.keys_processed.fetch_add(keys, Ordering::Relaxed);
    if done {
        let _ = tx.send(Chunk::Done { keys });
    }
    !done && !behind
}

/// `save` as pairs of (seconds, changes).
pub fn save_points(spec: &str) -> Vec<(u64, u64)> {
    let words: Vec<u64> = spec.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    words.chunks_exact(2).map(|c| (c[0], c[1])).collect()
}

/// Once per cron tick (shard 0): starts a BGSAVE when a save point is reached, or one
/// that was scheduled.
pub fn cron(node: &'static Node) {
    let now = unix_ms() / 1000;
    let p = &node.persist;
    let (scheduled, last_ok, last_try) = {
        let st = lock(&p.state);
        if st.running.is_some() {
            return;
        }
        (st.scheduled, st.last_ok, st.last_try)
    };
    let changes = dirty(node).saturating_sub(p.dirty_at_last_save.load(Ordering::Relaxed));
    let since = now.saturating_sub(p.lastsave.load(Ordering::Relaxed));
    let points = save_points(&node.config().save);
    let due = points.iter().any(|&(secs, min_changes)| changes >= min_changes && since >= secs);
    // After a failure, Redis waits a little before trying again.
    let may_retry = last_ok != Some(false) || now.saturating_sub(last_try) > BGSAVE_RETRY_DELAY;
    if scheduled || (due && may_retry) {
        if due {
            tracing::info!("{changes} changes in {since} seconds. Saving...");
        }
        let _ = bgsave(node);
    }
}

/// Asks for a BGSAVE at the next cron (BGSAVE SCHEDULE, BGSAVE inside MULTI).
pub fn schedule(node: &Node) {
    lock(&node.persist.state).scheduled = true;
}

/// The background snapshot running: `Some(true)` a BGSAVE, `Some(false)` an AOF
/// rewrite.
pub fn running(node: &Node) -> Option<bool> {
    lock(&node.persist.state).running.as_ref().map(|r| r.rdb)
}

pub fn bgsave_running(node: &Node) -> bool {
    lock(&node.persist.state).running.is_some()
}

/// INFO's persistence section (the RDB and AOF fields Redis prints).
pub fn info(node: &Node, o: &mut String) {
    use std::fmt::Write as _;
    let p = &node.persist;
    let st = lock(&p.state);
    let changes = dirty(node).saturating_sub(p.dirty_at_last_save.load(Ordering::Relaxed));
    let (in_progress, current, keys_total) = match &st.running {
        Some(r) if r.rdb => (1, r.started.elapsed().as_secs() as i64, r.keys_total),
        _ => (0, -1, 0),
    };
    let status = if st.last_ok == Some(false) { "err" } else { "ok" };
    let last_time = st.last_duration_secs.map_or(-1, |s| s as i64);
    let _ = write!(
        o,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\n\
         current_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:{}\r\n\
         current_save_keys_total:{keys_total}\r\nrdb_changes_since_last_save:{changes}\r\n\
         rdb_bgsave_in_progress:{in_progress}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{status}\r\n\
         rdb_last_bgsave_time_sec:{last_time}\r\nrdb_current_bgsave_time_sec:{current}\r\nrdb_saves:{}\r\n\
         rdb_last_cow_size:0\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\n{}",
        if in_progress == 1 { p.keys_processed.load(Ordering::Relaxed) } else { 0 },
        p.lastsave.load(Ordering::Relaxed),
        st.saves,
        p.loaded_expired.load(Ordering::Relaxed),
        p.loaded_keys.load(Ordering::Relaxed),
        crate::aof::info_fields(node),
    );
}

/// Loads `dir`/`dbfilename` into the shards (before they start serving). `owns`
/// says whether this node serves a slot (cluster mode; always true standalone):
/// keys of other slots are dropped with a log line. A missing file is an empty
/// dataset; a corrupt one is an error naming the file and the offset.
pub fn load(node: &Node, limits: &Limits, owns: &dyn Fn(u16) -> bool) -> Result<(), String> {
    let (target, _) = paths(node, "temp");
    let data = match std::fs::read(&target) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("Fatal error loading the DB {}: {e}. Exiting.", target.display())),
    };
    load_bytes(node, &data, &target, limits, owns).map(|_| ())
}

/// Loads an RDB image (a dump.rdb, or an AOF's base or preamble) into the shards.
/// Returns the offset just past its checksum (an AOF preamble's commands follow).
pub fn load_bytes(
    node: &Node,
    data: &[u8],
    name: &Path,
    limits: &Limits,
    owns: &dyn Fn(u16) -> bool,
) -> Result<usize, String> {
    let fail = |e: &dyn std::fmt::Display| format!("Fatal error loading the DB {}: {e}. Exiting.", name.display());
    let mut reader = rdbfile::FileReader::new(data).map_err(|e| fail(&e))?;
    load_records(node, name, limits, owns, || match reader.next_raw() {
        Ok(rdbfile::RawRecord::Other(o)) => Ok(Some(Loaded::Other(o))),
        Ok(rdbfile::RawRecord::Entry { key, t, value, meta, offset }) => {
            Ok(Some(Loaded::Entry(Entry { db: 0, key, t, value, meta, offset })))
        }
        Err(e) => Err(e.to_string()),
    })?;
    Ok(reader.offset())
}

/// Loads an RDB image read from `input` as it arrives (a replica's full sync): only
/// the record being read is held, never the whole image. `on_read` sees the count of
/// bytes read so far (progress).
/// Returns the bytes the image took (what `input` gave beyond it was not its).
pub fn load_stream(
    node: &Node,
    input: &mut dyn std::io::Read,
    name: &Path,
    limits: &Limits,
    on_read: &mut dyn FnMut(u64),
) -> Result<usize, String> {
    let mut reader = rdbfile::StreamReader::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    load_records(node, name, limits, &|_| true, || loop {
        match reader.next_record() {
            Ok(Some(rdbfile::OwnedRecord::Other(o))) => return Ok(Some(Loaded::Other(o))),
            Ok(Some(rdbfile::OwnedRecord::Entry { key, t, value, meta, offset })) => {
                return Ok(Some(Loaded::Entry(Entry { db: 0, key, t, value, meta, offset })))
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let n = input.read(&mut buf).map_err(|e| format!("reading the image: {e}"))?;
        if n == 0 {
            return Err(format!("the image ended early (at offset {})", reader.offset()));
        }
        total += n as u64;
        on_read(total);
        reader.feed(&buf[..n]);
    })?;
    Ok(reader.offset())
}

/// A key's record, its value still encoded (borrowed from a file or owned).
struct Entry<V> {
    /// The database it goes to (the last SELECTDB before it).
    db: usize,
    key: Vec<u8>,
    t: u8,
    value: V,
    meta: rdbfile::KeyMeta,
    offset: usize,
}

enum Loaded<V> {
    Entry(Entry<V>),
    Other(rdbfile::Record),
}

/// Every shard loads its own keys in parallel: `next` steps over the records without
/// decoding their values and this thread hands each key to a loader thread per shard,
/// which decodes the value, builds it and inserts it. Stops at the EOF record.
fn load_records<V: AsRef<[u8]> + Send>(
    node: &Node,
    name: &Path,
    limits: &Limits,
    owns: &dyn Fn(u16) -> bool,
    mut next: impl FnMut() -> Result<Option<Loaded<V>>, String>,
) -> Result<(), String> {
    const BATCH: usize = 512;
    let started = Instant::now();
    let fail = |e: &dyn std::fmt::Display| format!("Fatal error loading the DB {}: {e}. Exiting.", name.display());
    let now = unix_ms();
    let (mut expired, mut foreign) = (0u64, 0u64);
    let mut function_errors = Vec::new();
    // The image's libraries replace the node's (a replica's full sync, or start-up).
    ferrokv_commands::scripting::functions::flush();
    let loaded = AtomicU64::new(0);
    let empty = AtomicU64::new(0);
    let error: Mutex<Option<String>> = Mutex::new(None);
    let failed = |e: String| {
        lock(&error).get_or_insert(e);
    };
    std::thread::scope(|scope| {
        let mut senders = Vec::new();
        for shard in 0..node.shard_count() {
            let (tx, rx) = mpsc::sync_channel::<Vec<Entry<V>>>(8);
            senders.push(tx);
            let (loaded, empty, failed, fail) = (&loaded, &empty, &failed, &fail);
            scope.spawn(move || {
                for batch in rx {
                    let mut db = node.lock_db(shard);
                    for Entry { db: dbi, key, t, value, meta, offset } in batch {
                        let decoded = match rdbfile::decode_value(t, value.as_ref()) {
                            Ok(v) => v,
                            Err(e) => return failed(fail(&format!("{e} at offset {offset}"))),
                        };
                        let value = match build_value(decoded, limits) {
                            Ok(v) => v,
                            Err(BuildError::Empty) => {
                                empty.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            Err(BuildError::Duplicate) => {
                                return failed(fail(&format!(
                                    "duplicate members in the value of a key (offset {offset})"
                                )))
                            }
                        };
                        let db: &mut Db = &mut db;
                        db.select(dbi);
                        db.set(&key, value, meta.expire_ms.map_or(0, |ms| ms as u64));
                        db.set_access_history(&key, meta.idle_secs, meta.freq);
                        loaded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let mut batches: Vec<Vec<Entry<V>>> = (0..senders.len()).map(|_| Vec::new()).collect();
        let mut db_index = 0;
        let databases = node.lock_db(0).databases() as u64;
        loop {
            let rec = match next() {
                Ok(Some(r)) => r,
                Ok(None) => return failed(fail(&"the image ended before its EOF record")),
                Err(e) => return failed(fail(&e)),
            };
            match rec {
                Loaded::Other(rdbfile::Record::End) => break,
                Loaded::Other(rdbfile::Record::SelectDb(n)) => db_index = n,
                Loaded::Other(rdbfile::Record::Function(code)) => {
                    if let Err(e) = ferrokv_commands::scripting::functions::load(&code, true) {
                        function_errors.push(e);
                    }
                }
                Loaded::Other(_) => {}
                Loaded::Entry(mut e) => {
                    if db_index >= databases {
                        return failed(fail(&format!(
                            "a key in database {db_index} (offset {}): this server has {databases} database{} \
                             ('databases'{})",
                            e.offset,
                            if databases == 1 { "" } else { "s" },
                            if node.cluster.is_some() { "; cluster mode serves database 0 only" } else { "" }
                        )));
                    }
                    e.db = db_index as usize;
                    if e.meta.expire_ms.is_some_and(|ms| ms <= now as i64) {
                        expired += 1;
                        continue;
                    }
                    let slot = ferrokv_store::key_slot(&e.key);
                    if !owns(slot) {
                        foreign += 1;
                        continue;
                    }
                    let shard = node.shard_of_slot(slot);
                    batches[shard].push(e);
                    if batches[shard].len() >= BATCH {
                        // A loader that stopped on an error drops its end: stop too.
                        if senders[shard].send(std::mem::take(&mut batches[shard])).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        for (tx, batch) in senders.iter().zip(batches) {
            let _ = tx.send(batch);
        }
    });
    if let Some(e) = lock(&error).take() {
        return Err(e);
    }
    for s in 0..node.shard_count() {
        let db = node.lock_db(s);
        node.shards[s].publish(&db);
    }
    let (loaded, empty) = (loaded.into_inner(), empty.into_inner());
    if foreign > 0 {
        tracing::warn!("{foreign} keys in slots this node does not serve were not loaded");
    }
    for e in &function_errors {
        tracing::warn!("a function library in the file could not be loaded: {e}");
    }
    if empty > 0 {
        tracing::warn!("{empty} empty keys skipped");
    }
    tracing::info!("Done loading RDB, keys loaded: {loaded}, keys expired: {expired}.");
    tracing::info!("DB loaded from disk: {:.3} seconds", started.elapsed().as_secs_f64());
    node.persist.loaded_keys.fetch_add(loaded, Ordering::Relaxed);
    node.persist.loaded_expired.fetch_add(expired, Ordering::Relaxed);
    Ok(())
}

/// After FLUSHALL: a running BGSAVE is abandoned and, with save points set, the empty
/// dataset is saved at once (Redis's `flushAllDataAndResetRDB`).
pub fn after_flushall(node: &Node) {
    if running(node) == Some(true) {
        abandon_bgsave(node);
    }
    if !save_points(&node.config().save).is_empty() {
        if let Err(e) = save(node) {
            tracing::warn!("Saving after FLUSHALL failed: {e}");
        }
    }
}

/// The save at shutdown (SHUTDOWN, SIGTERM): when save points are set, or asked
/// for. A running BGSAVE is abandoned first.
pub fn save_on_shutdown(node: &Node, force: Option<bool>) -> Result<(), String> {
    let wanted = force.unwrap_or_else(|| !save_points(&node.config().save).is_empty());
    if !wanted {
        return Ok(());
    }
    abandon_bgsave(node);
    tracing::info!("Saving the final RDB snapshot before exiting.");
    save(node).map_err(|_| "Error trying to save the DB, can't exit.".to_string())
}

/// Stops a running BGSAVE: the writer sees the channel close and removes its file.
fn abandon_bgsave(node: &Node) {
    let p = &node.persist;
    if !p.active.load(Ordering::Acquire) {
        return;
    }
    let mut dbs = lock_all(node);
    for (_, db) in dbs.iter_mut() {
        db.abort_snapshot();
    }
    p.abandoned.store(true, Ordering::Release);
    p.active.store(false, Ordering::Release);
    *lock(&p.sender) = None;
    drop(dbs);
    // The writer ends the save (and clears `running`) when it sees the channel close.
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while bgsave_running(node) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
