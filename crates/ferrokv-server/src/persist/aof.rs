//! The append-only file, in Redis 7's multi-part layout: `dir/appenddirname/` holds a
//! base (an RDB image, `appendonly.aof.<n>.base.rdb`), incremental command files
//! (`appendonly.aof.<n>.incr.aof`) and `appendonly.aof.manifest`. With one shard or
//! many, the files are exactly Redis's: one incremental stream for the whole node.
//!
//! Writing: with `appendonly yes` every shard's keyspace logs its effects (the
//! execution function's propagation records, see `ferrokv_store::effects`). Each shard
//! drains its log once per loop iteration ([`shard_step`]) and hands the parts to the
//! writer thread, which merges the shards' logs into one serial stream
//! (`effects::merge_ready`: a multi-shard unit waits for every shard it locked, so it
//! replays atomically, wrapped in MULTI/EXEC), appends it to the incremental file and
//! fsyncs by `appendfsync`: `everysec` once a second and `no` never, on the writer
//! thread, so a slow disk never blocks a shard's event loop; `always` after every batch
//! the writer takes (a group commit of whatever the shards handed over meanwhile).
//!
//! Under `always` a reply leaves only once its records are durable: every hand-over
//! gets a sequence number (`sent`); the writer publishes how far it has fsynced
//! (`durable`: every number up to it); a shard holds the output of its connections
//! until `durable` reaches the `sent` it saw after handing over ([`shard_step`] also
//! drains the logs of other shards, where the multi-shard units its thread ran were
//! logged, and runs before replies go to other shards, so a forwarded write's records
//! are handed over before its reply reaches the client's shard).
//!
//! BGREWRITEAOF without fork: under every keyspace lock at once the shards' logs are
//! drained into the current incremental file, a new one is opened for what follows,
//! the manifest lists both (a crash mid-rewrite replays old base + both files), and a
//! copy-on-write snapshot of that same instant is written as the new base
//! (`crate::persist::start_background`). When the base is on disk the manifest drops
//! the old base and incremental file and they are deleted.
//!
//! Loading at start-up: the manifest's base (RDB, or a command stream), then its
//! incremental files in order, replayed through the execution function. A Redis 6
//! `appendonly.aof` in `dir` (with or without an RDB preamble) is loaded and moved into
//! the directory as the base, as Redis 7 upgrades it. A truncated last command is cut
//! off when `aof-load-truncated yes` (the default), else start-up stops.

use crate::dispatch::MultiDb;
use crate::node::lock;
use crate::node::{unix_ms, Node, ShardId};
use ferrokv_commands::{Env, Handler, Keyspace};
use ferrokv_rdb::aof::{CommandReader, FileKind, Manifest, ManifestFile, StreamError};
use ferrokv_resp::{OwnedArgs, ReplyBuf};
use ferrokv_store::effects::{self, Part};
use ferrokv_store::rdb::Limits;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// `SELECT 0`, which starts every incremental file (Redis writes it before the first
/// command of a database).
const SELECT_0: &[u8] = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n";

enum Msg {
    Parts {
        shard: ShardId,
        gen: u64,
        parts: VecDeque<Part>,
        seq: u64,
    },
    /// BGREWRITEAOF's instant: the parts logged before it, then a new incremental file.
    Rotate {
        pre: Vec<VecDeque<Part>>,
        seq: u64,
    },
    /// The new base is on disk (or failed).
    BaseDone {
        name: String,
        seq: u64,
        ok: bool,
    },
    /// Flush, fsync and stop (shutdown).
    Stop(mpsc::Sender<()>),
}

#[derive(Default)]
pub struct Aof {
    /// `appendonly yes` and the writer running.
    pub on: AtomicBool,
    /// Bumped at each rewrite's instant, under every keyspace lock.
    generation: AtomicU64,
    /// Hand-overs to the writer so far, and how many of them are durable (written,
    /// and fsynced under `always`): see the module docs.
    sent: AtomicU64,
    durable: AtomicU64,
    inbox: Inbox,
    stats: Mutex<Stats>,
    /// Bytes of the current incremental file and of the base (INFO).
    current_size: AtomicU64,
    base_size: AtomicU64,
    /// Size of base + incremental files right after the last rewrite (auto rewrite).
    size_at_rewrite: AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// CONFIG SET appendonly: 1 to turn on, 2 to turn off, at the next cron.
    wanted: std::sync::atomic::AtomicU8,
    /// `appendfsync always` (hand-overs wake the writer).
    always: AtomicBool,
}

#[derive(Default)]
struct Stats {
    rewriting: Option<Instant>,
    scheduled: bool,
    rewrites: u64,
    consecutive_failures: u64,
    last_rewrite_ok: bool,
    last_rewrite_secs: Option<u64>,
    last_write_ok: bool,
}

impl Aof {
    /// How far the AOF is durable (hand-over sequence numbers).
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Hands `parts` of `shard`'s log to the writer. Called under that shard's
    /// keyspace lock, so one shard's parts reach the writer in log order whichever
    /// thread drained them.
    fn hand_over(&self, shard: ShardId, mut parts: VecDeque<Part>) {
        // A PUBLISH's unit is for replicas only (Redis's PROPAGATE_REPL).
        parts.retain(|p| !matches!(p, Part::Unit(u) if u.repl_only));
        let gen = self.generation.load(Ordering::Acquire);
        let seq = self.sent.fetch_add(1, Ordering::AcqRel) + 1;
        self.inbox.send(Msg::Parts { shard, gen, parts, seq }, self.always.load(Ordering::Relaxed));
    }
}

/// The writer's inbox: messages in a vector under a mutex. A hand-over wakes the writer
/// only under `always` (its clients wait for it); otherwise the writer looks every
/// millisecond — a wake-up per event-loop iteration of every shard (a futex call each)
/// cost more than the records. Control messages always wake it.
#[derive(Default)]
struct Inbox {
    /// None while no writer runs.
    msgs: Mutex<Option<Vec<Msg>>>,
    ready: Condvar,
}

impl Inbox {
    fn open(&self) {
        *lock(&self.msgs) = Some(Vec::new());
    }

    fn is_open(&self) -> bool {
        lock(&self.msgs).is_some()
    }

    fn send(&self, m: Msg, wake: bool) {
        let mut g = lock(&self.msgs);
        if let Some(v) = g.as_mut() {
            v.push(m);
            drop(g);
            if wake {
                self.ready.notify_one();
            }
        }
    }

    fn close(&self) {
        *lock(&self.msgs) = None;
        self.ready.notify_all();
    }

    /// What arrived, waiting up to `timeout` for something; None once closed.
    fn take(&self, timeout: Duration) -> Option<Vec<Msg>> {
        let mut g = lock(&self.msgs);
        if g.as_ref().is_some_and(|v| v.is_empty()) {
            g = self.ready.wait_timeout(g, timeout).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        }
        g.as_mut().map(std::mem::take)
    }
}

impl Stats {
    /// A rewrite (BGREWRITEAOF, or the base of an AOF turned on) ended.
    fn rewrite_ended(&mut self, started: Instant, ok: bool) {
        self.rewriting = None;
        self.last_rewrite_ok = ok;
        self.last_rewrite_secs = Some(started.elapsed().as_secs());
        if ok {
            self.rewrites += 1;
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures += 1;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fsync {
    Always,
    EverySec,
    No,
}

fn fsync_policy(node: &Node) -> Fsync {
    match node.config().appendfsync.as_str() {
        "always" => Fsync::Always,
        "no" => Fsync::No,
        _ => Fsync::EverySec,
    }
}

struct Layout {
    dir: PathBuf,
    /// `appendfilename`: the prefix of every file's name.
    prefix: String,
}

impl Layout {
    fn of(node: &Node) -> Layout {
        let cfg = node.config();
        Layout { dir: PathBuf::from(&cfg.dir).join(&cfg.appenddirname), prefix: cfg.appendfilename.clone() }
    }
    fn manifest_path(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest", self.prefix))
    }
    fn base_name(&self, seq: u64) -> String {
        format!("{}.{seq}.base.rdb", self.prefix)
    }
    fn incr_name(&self, seq: u64) -> String {
        format!("{}.{seq}.incr.aof", self.prefix)
    }
    fn write_manifest(&self, m: &Manifest) -> std::io::Result<()> {
        let temp = self.dir.join(format!("temp-{}.manifest", self.prefix));
        let mut f = File::create(&temp)?;
        f.write_all(m.render().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&temp, self.manifest_path())?;
        File::open(&self.dir)?.sync_all()
    }
}

// ---- start-up ------------------------------------------------------------------

/// With `appendonly yes`: loads the AOF (instead of dump.rdb, as Redis 7 does), turns
/// every shard's effects log on and starts the writer. Runs before the shards serve.
pub fn start(node: &'static Node, limits: &Limits, owns: &dyn Fn(u16) -> bool) -> Result<(), String> {
    let layout = Layout::of(node);
    let truncated_ok = node.config().aof_load_truncated;
    let manifest_path = layout.manifest_path();
    let legacy = PathBuf::from(&node.config().dir).join(&layout.prefix);
    let mut manifest = if manifest_path.exists() {
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| format!("Fatal error: can't read the AOF manifest {}: {e}", manifest_path.display()))?;
        let m = Manifest::parse(&text).map_err(|e| format!("{e} ({})", manifest_path.display()))?;
        let files: Vec<&ManifestFile> = m.base().into_iter().chain(m.incrs()).collect();
        for (i, f) in files.iter().enumerate() {
            let last = i + 1 == files.len();
            load_file(node, &layout.dir.join(&f.name), f.kind == FileKind::Base, last && truncated_ok, limits, owns)?;
        }
        m
    } else if legacy.exists() {
        // A Redis 6 AOF: load it, then make it the base of a new directory.
        load_file(node, &legacy, true, truncated_ok, limits, owns)?;
        std::fs::create_dir_all(&layout.dir).map_err(|e| format!("Can't create the AOF directory: {e}"))?;
        let name = layout.prefix.clone();
        std::fs::rename(&legacy, layout.dir.join(&name)).map_err(|e| format!("Can't move the old AOF file: {e}"))?;
        tracing::info!("Successfully migrated an old-style AOF into the AOF directory");
        Manifest { files: vec![ManifestFile { name, seq: 1, kind: FileKind::Base }] }
    } else {
        // No AOF yet: an empty base (Redis creates its base at start-up too).
        std::fs::create_dir_all(&layout.dir).map_err(|e| format!("Can't create the AOF directory: {e}"))?;
        let name = layout.base_name(1);
        write_empty_base(&layout.dir.join(&name)).map_err(|e| format!("Can't create the AOF base file: {e}"))?;
        tracing::info!("Creating AOF base file {name} on server start");
        Manifest { files: vec![ManifestFile { name, seq: 1, kind: FileKind::Base }] }
    };
    // Append to the last incremental file, or start one.
    let incr_name = match manifest.incrs().last() {
        Some(f) => f.name.clone(),
        None => {
            let seq = manifest.files.iter().map(|f| f.seq).max().unwrap_or(0).max(1);
            let name = layout.incr_name(seq);
            manifest.files.push(ManifestFile { name: name.clone(), seq, kind: FileKind::Incr });
            name
        }
    };
    let incr_path = layout.dir.join(&incr_name);
    let fresh = !incr_path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&incr_path)
        .map_err(|e| format!("Can't open the append-only file {}: {e}", incr_path.display()))?;
    if fresh {
        file.write_all(SELECT_0).map_err(|e| format!("Can't write the append-only file: {e}"))?;
        tracing::info!("Creating AOF incr file {incr_name} on server start");
    }
    layout.write_manifest(&manifest).map_err(|e| format!("Can't write the AOF manifest: {e}"))?;
    let base_size =
        manifest.base().and_then(|b| std::fs::metadata(layout.dir.join(&b.name)).ok()).map_or(0, |m| m.len());
    let incr_size = file.metadata().map_or(0, |m| m.len());
    let aof = &node.aof;
    aof.base_size.store(base_size, Ordering::Relaxed);
    aof.size_at_rewrite.store(base_size + incr_size, Ordering::Relaxed);
    for s in 0..node.shard_count() {
        node.lock_db(s).enable_effects();
    }
    spawn_writer(node, layout, manifest, file, incr_name, incr_size, true)
}

/// Starts the writer on an open incremental file and turns hand-overs on.
fn spawn_writer(
    node: &'static Node,
    layout: Layout,
    manifest: Manifest,
    file: File,
    incr_name: String,
    incr_size: u64,
    on_now: bool,
) -> Result<(), String> {
    let aof = &node.aof;
    aof.current_size.store(incr_size, Ordering::Relaxed);
    lock(&aof.stats).last_write_ok = true;
    lock(&aof.stats).last_rewrite_ok = true;
    aof.inbox.open();
    // Turned on at run time, hand-overs start at the base's cut (see `turn_on`).
    if on_now {
        aof.on.store(true, Ordering::Release);
    }
    let shards = node.shard_count();
    let gen = aof.generation.load(Ordering::Acquire);
    // A file holding only its opening `SELECT 0` is in database 0; after other
    // content, the next unit selects its database again (as Redis's
    // `aof_selected_db = -1` after a restart).
    let db = if incr_size == SELECT_0.len() as u64 { 0 } else { usize::MAX };
    let incr =
        Incr { file, name: incr_name, pending: vec![VecDeque::new(); shards], gen, size: incr_size, last_stamp: 0, db };
    let writer = Writer {
        node,
        layout,
        manifest,
        cur: incr,
        old: None,
        last_fsync: Instant::now(),
        unsynced: false,
        rotate_failed: false,
        seen: Default::default(),
    };
    let handle = std::thread::Builder::new()
        .name("aof-writer".into())
        .spawn(move || writer.run())
        .map_err(|e| format!("Can't start the AOF writer: {e}"))?;
    *lock(&aof.writer) = Some(handle);
    Ok(())
}

fn write_empty_base(path: &Path) -> std::io::Result<()> {
    let mut bytes = crate::persist::file_head(0, 0, true);
    ferrokv_rdb::file::write_eof(&mut bytes);
    let mut crc = ferrokv_rdb::file::Checksum::default();
    crc.update(&bytes);
    bytes.extend_from_slice(&crc.trailer(true));
    let mut f = File::create(path)?;
    f.write_all(&bytes)?;
    f.sync_all()
}

/// Loads one file of the AOF: an RDB image (a base, or a Redis 6 file's preamble)
/// followed by commands, or commands alone.
fn load_file(
    node: &Node,
    path: &Path,
    may_be_rdb: bool,
    truncated_ok: bool,
    limits: &Limits,
    owns: &dyn Fn(u16) -> bool,
) -> Result<(), String> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        // An incremental file listed but never written (a crash right after the
        // manifest): nothing to replay.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !may_be_rdb => return Ok(()),
        Err(e) => return Err(format!("Fatal error: can't open the append only file {}: {e}", path.display())),
    };
    let mut start = 0;
    if may_be_rdb && data.starts_with(b"REDIS") {
        start = crate::persist::load_bytes(node, &data, path, limits, owns)?;
    }
    let replayed = replay(node, &data[start..], path, truncated_ok, start)?;
    tracing::info!("DB loaded from {}: {replayed} commands", path.display());
    Ok(())
}

/// Replays a command stream into the shards. Returns how many commands it applied.
fn replay(node: &Node, data: &[u8], path: &Path, truncated_ok: bool, base_offset: usize) -> Result<u64, String> {
    let name = path.display();
    let all: Vec<ShardId> = (0..node.shard_count()).collect();
    let mut ks = MultiDb::lock(node, &all);
    let cfg = node.exec_config();
    let mut reader = CommandReader::new(data);
    let mut out = ReplyBuf::new(ferrokv_resp::Proto::Resp2);
    let mut n = 0;
    loop {
        let args = match reader.next_command() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(StreamError::Truncated { offset }) => {
                let at = base_offset + offset;
                if !truncated_ok {
                    return Err(format!(
                        "Unexpected end of file reading the append only file {name} (offset {at}). You can: \
                         1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. \
                         2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
                    ));
                }
                tracing::warn!("!!! Warning: short read while loading the AOF file {name}!!!");
                tracing::warn!("!!! Truncating the AOF {name} at offset {at} !!!");
                let f = OpenOptions::new().write(true).open(path).map_err(|e| format!("Can't truncate {name}: {e}"))?;
                f.set_len(at as u64).map_err(|e| format!("Can't truncate {name}: {e}"))?;
                tracing::warn!("AOF {name} loaded anyway because aof-load-truncated is enabled");
                break;
            }
            Err(StreamError::Invalid { offset, what }) => {
                return Err(format!(
                    "Bad file format reading the append only file {name} (offset {}: {what}): make a backup of your \
                     AOF file, then use ./redis-check-aof --fix <filename.manifest>",
                    base_offset + offset
                ));
            }
        };
        let words = OwnedArgs::from_slices(&args);
        let argv = words.args();
        let cmd = String::from_utf8_lossy(argv.get(0)).to_ascii_lowercase();
        match cmd.as_str() {
            "multi" | "exec" => continue,
            "select" => {
                let databases = ks.guards.first().map_or(1, |g| g.1.databases());
                match std::str::from_utf8(argv.get(1)).ok().and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) if argv.len() == 2 && n < databases => ks.select(n),
                    _ => {
                        return Err(format!(
                            "{name}: SELECT {} of a database this server does not have ({databases} configured)",
                            String::from_utf8_lossy(argv.get(1))
                        ))
                    }
                }
                continue;
            }
            _ => {}
        }
        let Some(spec) = ferrokv_commands::lookup(argv.get(0)) else {
            return Err(format!("Unknown command '{cmd}' reading the append only file {name}"));
        };
        if !matches!(spec.handler, Handler::Data(_) | Handler::Blocking(..)) || !spec.arity_ok(argv.len()) {
            return Err(format!("Unknown command '{cmd}' reading the append only file {name}"));
        }
        out.clear();
        let env = Env::internal(&cfg, unix_ms());
        crate::dispatch::run_data(&mut ks, spec, &argv, env, &mut out, &mut Default::default());
        n += 1;
    }
    Ok(n)
}

// ---- the writer ----------------------------------------------------------------

struct Incr {
    file: File,
    name: String,
    /// Parts received per shard, not yet ordered.
    pending: Vec<VecDeque<Part>>,
    gen: u64,
    size: u64,
    /// The last `#TS:` annotation written (unix seconds).
    last_stamp: u64,
    /// The database the file's commands are in so far (usize::MAX: unknown).
    db: usize,
}

impl Incr {
    /// Orders what can be ordered and appends it.
    /// With `stamp` (`aof-timestamp-enabled`), a `#TS:<unix seconds>` annotation goes
    /// first when the second changed since the last one, as Redis writes it.
    fn write_ready(&mut self, buf: &mut Vec<u8>, stamp: bool) -> std::io::Result<()> {
        let mut units = Vec::new();
        if let Err(e) = effects::merge_ready(&mut self.pending, &mut units) {
            tracing::error!("AOF: effects of the shards do not merge: {e:?}");
        }
        if units.is_empty() {
            return Ok(());
        }
        buf.clear();
        if stamp {
            let now = unix_ms() / 1000;
            if now > self.last_stamp {
                self.last_stamp = now;
                buf.extend_from_slice(format!("#TS:{now}\r\n").as_bytes());
            }
        }
        effects::write_units(&units, buf, &mut self.db);
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }
}

struct Writer {
    node: &'static Node,
    layout: Layout,
    manifest: Manifest,
    cur: Incr,
    /// The file of the generation before a rewrite's instant, until its base is done.
    old: Option<Incr>,
    last_fsync: Instant,
    unsynced: bool,
    /// The last rotation failed: the running rewrite must not replace the base.
    rotate_failed: bool,
    /// Hand-over numbers processed but not yet counted as durable.
    seen: std::collections::BinaryHeap<std::cmp::Reverse<u64>>,
}

impl Writer {
    fn run(mut self) {
        let mut buf = Vec::new();
        let inbox = &self.node.aof.inbox;
        // A small ring of our own, only to wake sleeping shards whose replies wait for an
        // fsync (MSG_RING); without one they find out by polling.
        let mut waker = ferrokv_runtime::Ring::new(ferrokv_runtime::RingConfig {
            entries: 16,
            cq_entries: 64,
            batch: 1,
            min_wait: Duration::ZERO,
        })
        .map_err(|e| tracing::warn!("AOF writer: no ring to wake the shards ({e}); they will poll"))
        .ok();
        loop {
            let policy = fsync_policy(self.node);
            self.node.aof.always.store(policy == Fsync::Always, Ordering::Relaxed);
            // Under `always` hand-overs wake us; otherwise look every millisecond.
            let wait = if policy == Fsync::Always { Duration::from_millis(100) } else { Duration::from_millis(1) };
            // Everything that arrived: one write and one fsync for the batch.
            let Some(batch) = inbox.take(wait) else { break };
            let mut stop = None;
            for m in batch {
                match m {
                    Msg::Parts { shard, gen, parts, seq } => {
                        self.take(shard, gen, parts);
                        self.seen.push(std::cmp::Reverse(seq));
                    }
                    Msg::Rotate { pre, seq } => {
                        self.rotate(pre, &mut buf);
                        self.seen.push(std::cmp::Reverse(seq));
                    }
                    Msg::BaseDone { name, seq, ok } => self.base_done(name, seq, ok),
                    Msg::Stop(done) => stop = Some(done),
                }
            }
            let stamp = self.node.config().aof_timestamp_enabled;
            let mut result = self.cur.write_ready(&mut buf, stamp);
            if let Some(old) = self.old.as_mut() {
                result = result.and(old.write_ready(&mut buf, stamp));
            }
            self.unsynced |= result.is_ok();
            self.record_write(result);
            self.node.aof.current_size.store(self.cur.size, Ordering::Relaxed);
            let rewriting = lock(&self.node.aof.stats).rewriting.is_some();
            let skip = rewriting && self.node.config().no_appendfsync_on_rewrite;
            let due = match policy {
                Fsync::Always => true,
                Fsync::EverySec => self.last_fsync.elapsed() >= Duration::from_secs(1),
                Fsync::No => false,
            };
            if self.unsynced && (stop.is_some() || (due && !skip)) {
                let r = self.cur.file.sync_data();
                self.record_write(r);
                self.last_fsync = Instant::now();
                self.unsynced = false;
            }
            // Everything handed over and written (and synced, under `always`) is
            // durable; hand-overs arrive in any order, so only a gap-free prefix counts.
            if !self.unsynced || policy != Fsync::Always {
                let mut d = self.node.aof.durable.load(Ordering::Relaxed);
                let before = d;
                while self.seen.peek().is_some_and(|r| r.0 <= d + 1) {
                    if let Some(std::cmp::Reverse(s)) = self.seen.pop() {
                        d = d.max(s);
                    }
                }
                self.node.aof.durable.store(d, Ordering::Release);
                if d > before && policy == Fsync::Always {
                    if let Some(ring) = waker.as_mut() {
                        wake_shards(self.node, ring);
                    }
                }
            }
            if let Some(done) = stop {
                let _ = done.send(());
                return;
            }
        }
    }

    fn record_write(&self, r: std::io::Result<()>) {
        let ok = r.is_ok();
        if let Err(e) = r {
            tracing::warn!("Error writing to the AOF file: {e}");
        }
        lock(&self.node.aof.stats).last_write_ok = ok;
    }

    fn take(&mut self, shard: ShardId, gen: u64, parts: VecDeque<Part>) {
        let target = if gen == self.cur.gen {
            &mut self.cur
        } else if let Some(old) = self.old.as_mut().filter(|o| o.gen == gen) {
            old
        } else {
            // A generation whose file is closed: the rewrite's base already holds it.
            tracing::error!("AOF: effects of generation {gen} arrived after its file was closed");
            return;
        };
        target.pending[shard].extend(parts);
    }

    /// The rewrite's instant: finish the current file with what was logged before it,
    /// then open the next incremental file and list it in the manifest.
    fn rotate(&mut self, pre: Vec<VecDeque<Part>>, buf: &mut Vec<u8>) {
        for (s, parts) in pre.into_iter().enumerate() {
            self.cur.pending[s].extend(parts);
        }
        let stamp = self.node.config().aof_timestamp_enabled;
        let r = self.cur.write_ready(buf, stamp).and_then(|_| self.cur.file.sync_data());
        self.record_write(r);
        let seq = self.manifest.files.iter().filter(|f| f.kind == FileKind::Incr).map(|f| f.seq).max().unwrap_or(0) + 1;
        let name = self.layout.incr_name(seq);
        let opened = File::create(self.layout.dir.join(&name)).and_then(|mut f| f.write_all(SELECT_0).map(|_| f));
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                // Go on in the current file; the rewrite cannot complete (its base
                // would be followed by a file that repeats what it holds).
                tracing::warn!("Can't open the new AOF incr file {name}: {e}");
                self.cur.gen += 1;
                self.rotate_failed = true;
                return;
            }
        };
        let shards = self.cur.pending.len();
        let next = Incr {
            file,
            name: name.clone(),
            pending: vec![VecDeque::new(); shards],
            gen: self.cur.gen + 1,
            size: 0,
            last_stamp: 0,
            // The file starts with `SELECT 0`.
            db: 0,
        };
        self.old = Some(std::mem::replace(&mut self.cur, next));
        self.manifest.files.push(ManifestFile { name, seq, kind: FileKind::Incr });
        if let Err(e) = self.layout.write_manifest(&self.manifest) {
            tracing::warn!("Can't write the AOF manifest: {e}");
        }
    }

    /// The new base is on disk: the manifest now starts there; the files it replaces go.
    fn base_done(&mut self, name: String, seq: u64, ok: bool) {
        let old = self.old.take();
        if !ok || std::mem::take(&mut self.rotate_failed) {
            // The old base and every incremental file still replay the whole history.
            return;
        }
        let mut gone: Vec<String> = Vec::new();
        self.manifest.files.retain(|f| {
            let keep = f.kind == FileKind::Incr && f.name == self.cur.name;
            if !keep {
                gone.push(f.name.clone());
            }
            keep
        });
        self.manifest.files.insert(0, ManifestFile { name: name.clone(), seq, kind: FileKind::Base });
        gone.retain(|g| *g != name);
        if let Err(e) = self.layout.write_manifest(&self.manifest) {
            tracing::warn!("Can't write the AOF manifest: {e}");
            return;
        }
        drop(old);
        for g in gone {
            let _ = std::fs::remove_file(self.layout.dir.join(g));
        }
        let base_size = std::fs::metadata(self.layout.dir.join(&name)).map_or(0, |m| m.len());
        self.node.aof.base_size.store(base_size, Ordering::Relaxed);
        self.node.aof.size_at_rewrite.store(base_size + self.cur.size, Ordering::Relaxed);
        tracing::info!("Background AOF rewrite finished successfully");
    }
}

/// Wakes the shards that sleep (their held replies may go now).
fn wake_shards(node: &Node, ring: &mut ferrokv_runtime::Ring) {
    let mut queued = false;
    for s in node.shards.iter() {
        if let Some(fd) = s.mailbox.wake_fd() {
            let sqe = ferrokv_runtime::MailWaker::entry(fd, ferrokv_runtime::token::encode(crate::shard::K_WAKE, 0));
            // SAFETY: a MSG_RING entry points to no memory; the fd is a live shard ring.
            queued |= unsafe { ring.push(&sqe) }.is_ok();
        }
    }
    if queued {
        let _ = ring.enter(false, Duration::ZERO);
        // Failed wakes complete here (successes post nothing): drop them.
        for _ in ring.completions() {}
    }
}

// ---- the shards' side ----------------------------------------------------------

/// Once per loop iteration, before any reply leaves: hands this shard's logged
/// effects to the writer — under `appendfsync always` every shard's, and returns
/// `(sent, durable)` for holding replies (see the module docs).
///
/// The replication stream takes the same parts (`crate::repl`): the log is drained once
/// for both consumers.
/// `also`: other shards (a bit each, below 64) whose logs this shard's thread appended
/// to since its last step (`shard-hop lock`), drained too so their records do not wait
/// for their own thread's next iteration.
pub fn shard_step(node: &Node, shard: ShardId, also: u64) -> Option<(u64, u64)> {
    let aof = &node.aof;
    let aof_on = aof.on.load(Ordering::Acquire);
    let repl_on = node.repl.on.load(Ordering::Acquire);
    if !aof_on && !repl_on {
        return None;
    }
    let always = aof_on && fsync_policy(node) == Fsync::Always;
    let shards: Vec<ShardId> = if always {
        (0..node.shard_count()).collect()
    } else {
        std::iter::once(shard).chain((0..node.shard_count().min(64)).filter(|&s| also & (1 << s) != 0)).collect()
    };
    for s in shards {
        drain_to_consumers(node, s, aof_on, repl_on);
    }
    always.then(|| (aof.sent.load(Ordering::Acquire), aof.durable()))
}

/// Drains shard `s`'s effects log (under its lock) to the consumers that are on: the
/// AOF and the replication stream (also WAIT's `repl::flush_all`).
pub fn drain_to_consumers(node: &Node, s: ShardId, aof_on: bool, repl_on: bool) {
    let mut db = node.lock_db(s);
    let Some(log) = db.effects() else { return };
    if log.is_empty() {
        return;
    }
    let parts = log.drain();
    match (aof_on, repl_on) {
        (true, true) => {
            node.repl.feed(s, parts.clone());
            node.aof.hand_over(s, parts);
        }
        (true, false) => node.aof.hand_over(s, parts),
        (false, true) => node.repl.feed(s, parts),
        (false, false) => {}
    }
}

/// Hands drained parts to the AOF (when on) as well: for consumers that drain the
/// logs themselves (a replication sync's cut, WAIT). Called under shard `s`'s lock.
pub fn hand_over_parts(node: &Node, s: ShardId, parts: &VecDeque<Part>) {
    if node.aof.on.load(Ordering::Acquire) && !parts.is_empty() {
        node.aof.hand_over(s, parts.clone());
    }
}

/// Why BGREWRITEAOF did not start.
pub enum RewriteRefused {
    InProgress,
    /// A BGSAVE runs: the rewrite is scheduled for when it ends.
    Scheduled,
}

/// BGREWRITEAOF (and the automatic rewrite).
pub fn rewrite(node: &'static Node) -> Result<(), RewriteRefused> {
    let aof = &node.aof;
    // Lock order: the save state (`persist::running`) before the AOF's stats, as INFO.
    let saving = crate::persist::running(node).is_some();
    {
        let mut st = lock(&aof.stats);
        if st.rewriting.is_some() {
            return Err(RewriteRefused::InProgress);
        }
        if saving {
            st.scheduled = true;
            return Err(RewriteRefused::Scheduled);
        }
    }
    let layout = Layout::of(node);
    if let Err(e) = std::fs::create_dir_all(&layout.dir) {
        tracing::warn!("Can't create the AOF directory: {e}");
    }
    let seq = std::fs::read_to_string(layout.manifest_path())
        .ok()
        .and_then(|t| Manifest::parse(&t).ok())
        .and_then(|m| m.base().map(|b| b.seq))
        .unwrap_or(0)
        + 1;
    let name = layout.base_name(seq);
    let target = layout.dir.join(&name);
    let temp = layout.dir.join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
    let on = aof.on.load(Ordering::Acquire);
    let at_cut: crate::persist::AtCut<'static> = Box::new(move |dbs| {
        if !on {
            return;
        }
        let pre: Vec<VecDeque<Part>> =
            dbs.iter_mut().map(|(_, db)| db.effects().map(|l| l.drain()).unwrap_or_default()).collect();
        for (s, parts) in pre.iter().enumerate() {
            node.repl.feed(s, parts.clone());
        }
        aof.generation.fetch_add(1, Ordering::AcqRel);
        let seq = aof.sent.fetch_add(1, Ordering::AcqRel) + 1;
        aof.inbox.send(Msg::Rotate { pre, seq }, true);
    });
    let started = Instant::now();
    let manifest_layout = Layout::of(node);
    let base_name = name.clone();
    let on_done: crate::persist::OnDone = Box::new(move |node, result| {
        let ok = result.is_ok();
        if let Err(e) = &result {
            tracing::warn!("Background AOF rewrite failed: {e}");
        }
        if on {
            node.aof.inbox.send(Msg::BaseDone { name: base_name.clone(), seq, ok }, true);
        } else if ok {
            // No writer: the directory is this base and an empty incremental file.
            let incr = manifest_layout.incr_name(seq);
            let _ = File::create(manifest_layout.dir.join(&incr)).and_then(|mut f| f.write_all(SELECT_0));
            let m = Manifest {
                files: vec![
                    ManifestFile { name: base_name.clone(), seq, kind: FileKind::Base },
                    ManifestFile { name: incr, seq, kind: FileKind::Incr },
                ],
            };
            if let Err(e) = manifest_layout.write_manifest(&m) {
                tracing::warn!("Can't write the AOF manifest: {e}");
            }
        }
        lock(&node.aof.stats).rewrite_ended(started, ok);
    });
    lock(&aof.stats).rewriting = Some(started);
    match crate::persist::start_background(
        node,
        crate::persist::SnapshotPurpose::AofBase,
        target,
        temp,
        at_cut,
        on_done,
    ) {
        Ok(()) => Ok(()),
        Err(_) => {
            let mut st = lock(&aof.stats);
            st.rewriting = None;
            st.scheduled = true;
            Err(RewriteRefused::Scheduled)
        }
    }
}

/// Asks for a rewrite at the next cron (BGREWRITEAOF inside MULTI).
pub fn schedule(node: &Node) {
    lock(&node.aof.stats).scheduled = true;
}

/// CONFIG SET appendonly yes|no: done at the next cron (outside any keyspace lock, as
/// CONFIG SET may run inside EXEC).
pub fn request(node: &Node, on: bool) {
    node.aof.wanted.store(if on { 1 } else { 2 }, Ordering::Release);
}

/// Turns the AOF on at run time, as Redis's `startAppendOnly`: a new base from a
/// snapshot and a new incremental file that starts at the snapshot's instant; the
/// manifest names them once the base is on disk (until then the AOF is not loadable
/// and the files of an earlier AOF, if any, still describe an older state).
fn turn_on(node: &'static Node) -> Result<(), String> {
    let layout = Layout::of(node);
    std::fs::create_dir_all(&layout.dir).map_err(|e| format!("Can't create the AOF directory: {e}"))?;
    let old = std::fs::read_to_string(layout.manifest_path()).ok().and_then(|t| Manifest::parse(&t).ok());
    let seq = old.as_ref().and_then(|m| m.files.iter().map(|f| f.seq).max()).unwrap_or(0) + 1;
    let incr_name = layout.incr_name(seq);
    let mut file = File::create(layout.dir.join(&incr_name)).map_err(|e| format!("Can't open the AOF file: {e}"))?;
    file.write_all(SELECT_0).map_err(|e| format!("Can't write the AOF file: {e}"))?;
    let manifest = Manifest { files: vec![ManifestFile { name: incr_name.clone(), seq, kind: FileKind::Incr }] };
    let base = layout.base_name(seq);
    let target = layout.dir.join(&base);
    let temp = layout.dir.join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
    spawn_writer(node, layout, manifest, file, incr_name, SELECT_0.len() as u64, false)?;
    // Hand-overs start at the snapshot's instant, under every lock: effects on, and
    // what was logged before (for the replication stream) is not the AOF's.
    let at_cut: crate::persist::AtCut<'static> = Box::new(move |dbs| {
        for (s, db) in dbs.iter_mut() {
            if let Some(log) = db.effects() {
                node.repl.feed(*s, log.drain());
            }
            db.enable_effects();
        }
        node.aof.on.store(true, Ordering::Release);
    });
    let started = Instant::now();
    let on_done: crate::persist::OnDone = Box::new(move |node, result| {
        let ok = result.is_ok();
        node.aof.inbox.send(Msg::BaseDone { name: base, seq, ok }, true);
        lock(&node.aof.stats).rewrite_ended(started, ok);
        if ok {
            tracing::info!("Background AOF rewrite terminated with success; the AOF is on");
        } else {
            tracing::warn!("Background AOF rewrite failed: the AOF stays off");
            turn_off(node);
        }
    });
    lock(&node.aof.stats).rewriting = Some(started);
    if crate::persist::start_background(node, crate::persist::SnapshotPurpose::AofBase, target, temp, at_cut, on_done)
        .is_err()
    {
        lock(&node.aof.stats).rewriting = None;
        turn_off(node);
        return Err("a background save is in progress".into());
    }
    Ok(())
}

/// Turns the AOF off at run time: what is logged goes to the file, fsynced, and the
/// shards stop logging.
fn turn_off(node: &Node) {
    stop(node);
    for s in 0..node.shard_count() {
        let mut db = node.lock_db(s);
        // The replication stream may still want them.
        if !crate::repl::effects_wanted(node) {
            db.disable_effects();
        }
    }
}

/// Once per cron tick (shard 0): a scheduled rewrite, or the automatic one when the
/// AOF grew by `auto-aof-rewrite-percentage` past `auto-aof-rewrite-min-size`.
pub fn cron(node: &'static Node) {
    let aof = &node.aof;
    match aof.wanted.swap(0, Ordering::AcqRel) {
        1 if !aof.on.load(Ordering::Acquire) => {
            if crate::persist::running(node).is_some() {
                // Redis waits for the running save as well.
                aof.wanted.store(1, Ordering::Release);
                return;
            }
            if let Err(e) = turn_on(node) {
                tracing::warn!("Can't turn the AOF on: {e}");
            }
            return;
        }
        2 if aof.on.load(Ordering::Acquire) => {
            turn_off(node);
            tracing::info!("The AOF is off");
            return;
        }
        _ => {}
    }
    if crate::persist::running(node).is_some() {
        return;
    }
    let scheduled = {
        let st = lock(&aof.stats);
        if st.rewriting.is_some() {
            return;
        }
        st.scheduled
    };
    let due = aof.on.load(Ordering::Acquire) && {
        let cfg = node.config();
        let size = aof.base_size.load(Ordering::Relaxed) + aof.current_size.load(Ordering::Relaxed);
        let base = aof.size_at_rewrite.load(Ordering::Relaxed).max(1);
        cfg.auto_aof_rewrite_percentage > 0
            && size >= cfg.auto_aof_rewrite_min_size
            && (size.saturating_sub(base)) * 100 / base >= cfg.auto_aof_rewrite_percentage
    };
    if scheduled || due {
        lock(&aof.stats).scheduled = false;
        if due {
            tracing::info!("Starting automatic rewriting of AOF");
        }
        let _ = rewrite(node);
    }
}

/// Flushes and fsyncs the AOF and stops the writer (shutdown).
pub fn stop(node: &Node) {
    let aof = &node.aof;
    let was_on = aof.on.swap(false, Ordering::AcqRel);
    if !was_on && !aof.inbox.is_open() {
        return;
    }
    for s in (0..node.shard_count()).filter(|_| was_on) {
        let mut db = node.lock_db(s);
        let parts = db.effects().map(|l| l.drain()).unwrap_or_default();
        node.repl.feed(s, parts.clone());
        aof.hand_over(s, parts);
    }
    let (done_tx, done_rx) = mpsc::channel();
    if aof.inbox.is_open() {
        aof.inbox.send(Msg::Stop(done_tx), true);
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
        aof.inbox.close();
    }
    if let Some(h) = lock(&aof.writer).take() {
        let _ = h.join();
    }
}

/// INFO's AOF fields (after the RDB ones).
pub fn info_fields(node: &Node) -> String {
    let aof = &node.aof;
    let st = lock(&aof.stats);
    let on = aof.on.load(Ordering::Acquire);
    let mut s = format!(
        "aof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\n\
         aof_current_rewrite_time_sec:{}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\n\
         aof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\n\
         module_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        on as u8,
        st.rewriting.is_some() as u8,
        st.scheduled as u8,
        st.last_rewrite_secs.map_or(-1, |s| s as i64),
        st.rewriting.map_or(-1, |t| t.elapsed().as_secs() as i64),
        if st.last_rewrite_ok || st.rewrites + st.consecutive_failures == 0 { "ok" } else { "err" },
        st.rewrites,
        st.consecutive_failures,
        if st.last_write_ok || !on { "ok" } else { "err" },
    );
    if on {
        s.push_str(&format!(
            "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:0\r\naof_buffer_length:0\r\n\
             aof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\n",
            aof.base_size.load(Ordering::Relaxed) + aof.current_size.load(Ordering::Relaxed),
            aof.base_size.load(Ordering::Relaxed),
        ));
    }
    s
}
