//! Whole-slot migration between ferrokv nodes: Redis 8.4's `CLUSTER MIGRATION
//! IMPORT|STATUS|CANCEL` on the target, and the ferrokv-only `CLUSTER MIGRATION-SYNC`
//! the target's task sends to the source.
//!
//! # The flow of one task (target T imports slots S from source O)
//!
//! 1. `CLUSTER MIGRATION IMPORT <ranges>` on T checks that every slot of S belongs to
//!    one other master O, records a task and starts a thread for it, and answers the
//!    task id. The thread opens two client connections: one to O, one to T itself (for
//!    the steps that go through T's bus).
//! 2. On T: `CLUSTER SETSLOT s IMPORTING O` for every slot (so T accepts the restores
//!    with ASKING; clients are still sent to O). Then `MIGRATION-SYNC <id> START <T>
//!    <ranges>` on O: O checks it owns S and starts its export, with a task record of
//!    its own (operation `migrate` in STATUS; a new START of the same task, a retry,
//!    reuses it).
//! 3. Per group of slots: `MIGRATION-SYNC <id> BEGIN s...` on O serialises every key of a slot
//!    under its shard's keyspace lock (a consistent snapshot of that slot) and starts
//!    capturing the slot's changes at that same instant (`Db::capture_start`). T's task
//!    thread applies each key as `RESTORE key <abs-ms> payload REPLACE ABSTTL` through
//!    the execution function, in-process (so T's AOF and replicas get it).
//! 4. `MIGRATION-SYNC <id> DELTA` (repeated while much changed) hands over the keys
//!    changed since, as their *current* values (or absence: DEL), and slots emptied
//!    whole; T applies them.
//! 5. `MIGRATION-SYNC <id> PAUSE`: O holds client writes to S (the connection stalls,
//!    as under a manual failover's pause; a write that got past the check runs into it
//!    again under the executing shard's lock and gets TRYAGAIN), then a last DELTA under
//!    the pause: T now holds every write O acknowledged.
//! 6. T claims the slots (`MIGRATION-SYNC <id> CLAIM <ranges>` on itself: as `SETSLOT s
//!    NODE T` for each, with one nodes.conf save and one PONG broadcast; the config
//!    epoch bump without consensus the claim needs was taken at step 2, with its fsync,
//!    outside the pause — the claim bumps again only if a node took a greater one
//!    since), then tells O directly (`HANDOFF <T> <epoch>
//!    <ranges>`, applied as T's UPDATE message would be) instead of waiting for the
//!    bus. O's keys of S are deleted in the background (the dirty-slot rule; see
//!    "deleting the keys of slots this node lost" below).
//! 7. `MIGRATION-SYNC <id> END` on O: answered once O's view shows S owned elsewhere;
//!    O then stops capturing and lifts the pause; the held writes run and get MOVED.
//!
//! # Failures and the guarantee
//!
//! Ownership only ever moves in step 6, by the bus's epoch rules, so a slot has exactly
//! one owner whatever crashes. Until step 6 the source owns S and every write it
//! acknowledged is in its own keyspace; from step 5 on it acknowledges no write to S
//! (they are held) and everything it acknowledged before is on T before T claims. A
//! failure before step 6 (O or T gone, an error) ends the attempt on T: it sends
//! `ABORT` to O when it can (capture stopped, pause lifted), deletes what it restored
//! and marks the slots stable; then, as Redis 8.4 does, the task shows `failed` with
//! the error and tries again a second later (STATUS `retries` counts the attempts),
//! from whichever node then serves the slots, until it completes or is canceled
//! (CANCEL, a FLUSHALL or FLUSHDB on T, or the slots' owners changing so that the
//! import no longer makes sense: "slots configuration updated"). The pause on O is lifted by END, ABORT, a CANCEL on O,
//! O's view showing S owned elsewhere (checked every tick), or — as Redis 8.4 does —
//! `cluster-slot-migration-write-pause-timeout` (10 s) running out, the target being
//! taken for dead. T claims only if it got the final delta within half of that window,
//! so a live T's claim has the other half to reach O. The one case that loses writes:
//! T crashes in the instant between making its claim durable (nodes.conf) and sending
//! it, O's pause runs out and O acknowledges writes to S, and T later restarts with its
//! claim, which wins by its higher epoch. Redis 8.4 has the same window.
//!
//! Failovers: a replica of O that takes the slots over before the claim (O died, or a
//! manual failover) makes the claim fail — the bus refuses to claim a slot whose owner
//! is no longer the node it is imported from — and the task undoes. A manual failover of
//! O is refused while the pause holds (the bus reads `pausing()` before every input), and
//! PAUSE is refused while one runs, so O cannot both hand its last writes to T and its
//! slots to a replica; a claim is refused while a manual failover runs on T (its epoch
//! could collide). The seeded simulator (`ferrokv-cluster`'s
//! `tests/slot_migration_sim.rs`) runs the task's steps against the real bus state
//! machine with crashes and restarts of either side, a source killed for good, and manual
//! failovers of either side, and checks one owner per slot and every acknowledged write
//! on it; it found the manual-failover and refused-claim cases above.
//!
//! Big keys (over 4096 elements, or strings over 1 MiB) are not in BEGIN's or DELTA's
//! payloads: T pulls each in pieces (`MIGRATION-SYNC <id> CHUNK <key> <cursor>`, 1024
//! elements or 256 KiB a piece, read with a scan cursor) and rebuilds it with DEL, then
//! RPUSH/HSET/SADD/ZADD/APPEND per piece and its expiry, so neither side's shard stalls
//! for the whole key (see `pull_big`).
//!
//! Limits of this slice: one running task per source, one source per task, with passwords the task authenticates
//! to the source as a replica would (`masteruser`, `masterauth`) and to T itself with
//! `requirepass`, and a task is not resumed after a restart of T (as in Redis 8.4,
//! whose tasks live in memory only).

use crate::conn::Conn;
use crate::dispatch::{run_internal, run_internal_args, Flow, Held, MultiDb, ShardCore};
use crate::node::lock;
use crate::node::Node;
use crate::pace::{Pace, Step};
use ferrokv_commands::util::eq_ic;
use ferrokv_resp::{Args, ReplyBuf, Span, Value, ValueReader};
use ferrokv_store::SLOTS;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Node-wide state: the export this node serves as a source, the pause on its slots,
/// and the import tasks it runs as a target.
pub struct SlotMigration {
    pausing: AtomicBool,
    /// An export is served (the tick then looks at it).
    exporting: AtomicBool,
    export: Mutex<Option<Export>>,
    tasks: Mutex<Vec<Arc<Task>>>,
    next_id: AtomicU64,
    /// Slots this node lost while holding keys of them, until it owns or imports them
    /// again: a command that reaches their keys late (routed by an older view, or
    /// forwarded from another shard) is redirected, never answered from a keyspace
    /// that is being trimmed. Bits are set and cleared on the bus's thread.
    lost: ferrokv_store::SlotSet,
    trim: TrimStats,
    /// Slots whose keys KEYS, SCAN, RANDOMKEY, DBSIZE, COUNTKEYSINSLOT and
    /// GETKEYSINSLOT leave out, as Redis 8.4 does: those a task here is importing (until
    /// its claim, or its undo), and lost slots until their trim ends. Every shard's
    /// keyspace shares it (`Db::set_hidden_slots`).
    pub hidden: Arc<ferrokv_store::SlotSet>,
    /// DEBUG SLOT-MIGRATION-HOLD: tasks wait before their write pause, streaming.
    pub hold: AtomicBool,
    /// Import tasks here inside their write pause (PAUSE sent, END not yet answered):
    /// the other tasks' snapshot and delta steps wait meanwhile (see `yield_to_pauses`).
    switching: std::sync::atomic::AtomicUsize,
}

/// Redis 8.4's trim counters (CLUSTER INFO `cluster_slot_migration_*trim*`): a trim
/// job here is one lost slot's keys.
#[derive(Default)]
struct TrimStats {
    started: AtomicU64,
    completed: AtomicU64,
    /// Keys the jobs still queued or running held when they were scheduled, and how
    /// many of those are deleted; both restart from 0 once no job is left.
    job_keys: AtomicU64,
    trimmed: AtomicU64,
}

impl Default for SlotMigration {
    fn default() -> Self {
        SlotMigration {
            pausing: AtomicBool::new(false),
            exporting: AtomicBool::new(false),
            export: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            lost: Default::default(),
            trim: TrimStats::default(),
            hidden: Default::default(),
            hold: AtomicBool::new(false),
            switching: Default::default(),
        }
    }
}

struct Export {
    id: Vec<u8>,
    slots: Vec<u16>,
    paused: Vec<u64>,
    /// When the pause began (unix ms; 0: not paused).
    paused_at: u64,
    /// The target's last MIGRATION-SYNC call (unix ms): an export it stopped calling
    /// for [`EXPORT_IDLE_PAUSES`] write-pause timeouts ends (the target is gone).
    last_seen: u64,
    /// This export's task record (operation `migrate` in CLUSTER MIGRATION STATUS).
    record: Arc<Task>,
}

/// How many `cluster-slot-migration-write-pause-timeout`s an export waits for its
/// target's next call before it ends (capture stopped), the target taken for gone.
const EXPORT_IDLE_PAUSES: u64 = 3;

/// Ended tasks kept for CLUSTER MIGRATION STATUS, newest first.
const ENDED_TASKS_KEPT: usize = 128;

/// A failed import is tried again after this long, until it completes or is canceled
/// (as Redis 8.4 retries it every second).
const RETRY_DELAY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Progress {
    state: &'static str,
    last_error: String,
    /// The source node: an import's may change between attempts (a failover of the
    /// source hands the slots to its replica, and the next attempt pulls from it).
    source: String,
    retries: u64,
    /// Why a cancel was asked for (set with the task's `cancel` flag).
    cancel_reason: String,
    create_ms: u64,
    start_ms: u64,
    end_ms: u64,
    write_pause_ms: u64,
    slots_done: usize,
    keys: u64,
    /// Key names, payloads and big keys' elements received.
    bytes: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operation {
    /// This node is the target: its task thread pulls the slots.
    Import,
    /// This node is the source: the record of an export (see [`Export`]).
    Migrate,
}

/// One slot migration task as CLUSTER MIGRATION STATUS shows it, on either side.
pub struct Task {
    id: String,
    op: Operation,
    dest: String,
    ranges: Vec<(u16, u16)>,
    cancel: AtomicBool,
    progress: Mutex<Progress>,
}

impl Task {
    fn new(
        id: String,
        op: Operation,
        source: String,
        dest: String,
        ranges: Vec<(u16, u16)>,
        state: &'static str,
    ) -> Task {
        let now = crate::node::unix_ms();
        Task {
            id,
            op,
            dest,
            ranges,
            cancel: AtomicBool::new(false),
            progress: Mutex::new(Progress { state, source, create_ms: now, start_ms: now, ..Default::default() }),
        }
    }

    /// Not yet ended (a failed import waiting for its next attempt has not ended).
    fn live(&self) -> bool {
        lock(&self.progress).end_ms == 0
    }

    /// Running now: live, and not a failed import between two attempts.
    fn running(&self) -> bool {
        let p = lock(&self.progress);
        p.end_ms == 0 && p.state != "failed"
    }

    /// Asks a live task to end as canceled, `reason` as Redis words it ("user
    /// request", "flush", ...); false if it had ended or was being canceled already.
    fn request_cancel(&self, reason: &str) -> bool {
        let mut p = lock(&self.progress);
        if p.end_ms != 0 || self.cancel.load(Ordering::Acquire) {
            return false;
        }
        p.cancel_reason = format!("Cancelled due to {reason}");
        self.cancel.store(true, Ordering::Release);
        true
    }

    fn slots(&self) -> impl Iterator<Item = u16> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..=b)
    }

    fn overlaps(&self, ranges: &[(u16, u16)]) -> bool {
        self.ranges.iter().any(|&(a, b)| ranges.iter().any(|&(c, d)| a <= d && c <= b))
    }

    /// Ends the task: `state` is completed, failed or canceled; `error` (if any) is
    /// shown as Redis shows it, with the state the task was in.
    fn end(&self, state: &'static str, error: Option<&str>) {
        let mut p = lock(&self.progress);
        if p.end_ms != 0 {
            return;
        }
        if let Some(e) = error {
            p.last_error = format!("{e} (state: {})", p.state);
        }
        p.state = state;
        p.end_ms = crate::node::unix_ms().max(1);
    }

    /// Ends a task whose cancel was asked for, with the reason given then.
    fn end_canceled(&self) {
        let why = lock(&self.progress).cancel_reason.clone();
        self.end("canceled", Some(&why));
    }
}

impl SlotMigration {
    /// Some slot of this node has its writes held.
    #[inline]
    pub fn pausing(&self) -> bool {
        self.pausing.load(Ordering::Acquire)
    }

    /// An import task of this node is inside its write pause, or an export of it has
    /// its writes held: work that can wait (spreading slots over the cores) waits.
    pub fn in_pause(&self) -> bool {
        self.pausing() || self.switching.load(Ordering::Acquire) > 0
    }

    /// Writes to `slot` are held now.
    pub fn slot_paused(&self, slot: u16) -> bool {
        if !self.pausing() {
            return false;
        }
        lock(&self.export).as_ref().is_some_and(|e| e.paused[slot as usize / 64] & (1 << (slot % 64)) != 0)
    }

    /// Whether a whole-slot migration (an export or an import) is running, or `slot`
    /// is one this node lost and still trims: a slot handoff between this node's cores
    /// then waits (both walk slots of one shard's keyspace).
    pub fn blocks_handoff(&self, slot: u16) -> bool {
        self.exporting.load(Ordering::Acquire)
            || lock(&self.tasks).iter().any(|t| t.op == Operation::Import && t.running())
            || self.slot_lost(slot)
    }

    /// Whether some slot is marked lost (then [`slot_lost`](Self::slot_lost) is worth asking).
    #[inline]
    pub fn has_lost(&self) -> bool {
        !self.lost.is_empty()
    }

    /// Whether `slot` is one this node lost and has not regained (see `lost`).
    #[inline]
    pub fn slot_lost(&self, slot: u16) -> bool {
        self.lost.contains(slot)
    }

    /// Ends the export (capture stopped, pause lifted) and its record: `state` is
    /// completed, failed or canceled.
    fn stop_export(&self, node: &Node, state: &'static str, error: Option<&str>) {
        let e = lock(&self.export).take();
        self.pausing.store(false, Ordering::Release);
        self.exporting.store(false, Ordering::Release);
        if let Some(e) = e {
            for s in 0..node.shard_count() {
                node.lock_db(s).capture_stop();
            }
            if state == "completed" && e.paused_at != 0 {
                lock(&e.record.progress).write_pause_ms = crate::node::unix_ms().saturating_sub(e.paused_at);
            }
            e.record.end(state, error);
        }
    }

    /// From the tick: a pause whose slots this node no longer owns (the target
    /// claimed them, and END never came) is lifted, and so is one that outlived
    /// `cluster-slot-migration-write-pause-timeout` (the target is taken to have
    /// failed; see the module docs for why that is safe but for one case); an export
    /// whose target stopped calling ends.
    pub fn lift_if_lost(&self, node: &Node) {
        if !self.exporting.load(Ordering::Acquire) {
            return;
        }
        let Some(c) = node.cluster.as_ref() else { return };
        let timeout = node.config().cluster_slot_migration_write_pause_timeout;
        let view = c.view();
        let now = crate::node::unix_ms();
        let (gone, timed_out, idle) = match lock(&self.export).as_ref() {
            None => return,
            Some(e) => (
                e.paused_at != 0 && e.slots.iter().all(|&s| view.slot_owner_index(s) != Some(view.myself)),
                e.paused_at != 0 && now.saturating_sub(e.paused_at) >= timeout,
                now.saturating_sub(e.last_seen) >= timeout.saturating_mul(EXPORT_IDLE_PAUSES),
            ),
        };
        if gone {
            self.stop_export(node, "completed", None);
        } else if timed_out {
            self.stop_export(node, "failed", Some("Server paused timeout"));
        } else if idle {
            tracing::warn!("slot migration: the export's target has not called for a while; ending the export");
            self.stop_export(node, "failed", Some("the target stopped calling"));
        }
    }

    /// Records `t` (newest last) and forgets the oldest ended tasks beyond
    /// [`ENDED_TASKS_KEPT`].
    fn record(&self, t: Arc<Task>) {
        let mut tasks = lock(&self.tasks);
        tasks.push(t);
        let ended = tasks.iter().filter(|t| !t.live()).count();
        if ended > ENDED_TASKS_KEPT {
            let mut drop_n = ended - ENDED_TASKS_KEPT;
            tasks.retain(|t| {
                let keep = drop_n == 0 || t.live();
                if !keep {
                    drop_n -= 1;
                }
                keep
            });
        }
    }

    /// FLUSHALL or FLUSHDB ran here: the imports running here are canceled, as Redis
    /// 8.4 cancels them (what they restored so far is gone, and a claim would hand out
    /// slots missing keys the source had).
    pub fn flushed(&self) {
        for t in lock(&self.tasks).iter().filter(|t| t.op == Operation::Import && t.live()) {
            t.request_cancel("flush");
        }
    }
}

/// Redis 8.4's slot migration fields of CLUSTER INFO, then ferrokv's progress of the
/// imports running here (also in INFO's Cluster section).
pub fn info_fields(node: &Node, out: &mut String) {
    use std::fmt::Write as _;
    let sm = &node.slot_migration;
    let (mut active, mut done, mut total, mut keys) = (0, 0, 0, 0);
    for t in lock(&sm.tasks).iter().filter(|t| t.live()) {
        active += 1;
        if t.op == Operation::Import {
            let p = lock(&t.progress);
            done += p.slots_done;
            total += t.slots().count();
            keys += p.keys;
        }
    }
    let running: usize = node.shards.iter().map(|s| lock(&s.trim).len()).sum();
    let tr = &sm.trim;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let _ = write!(
        out,
        "cluster_slot_migration_active_tasks:{active}\r\n\
         cluster_slot_migration_active_trim_running:{running}\r\n\
         cluster_slot_migration_active_trim_current_job_keys:{}\r\n\
         cluster_slot_migration_active_trim_current_job_trimmed:{}\r\n\
         cluster_slot_migration_stats_active_trim_started:{}\r\n\
         cluster_slot_migration_stats_active_trim_completed:{}\r\n\
         cluster_slot_migration_stats_active_trim_cancelled:0\r\n\
         cluster_slot_migration_import_slots_done:{done}\r\n\
         cluster_slot_migration_import_slots_total:{total}\r\n\
         cluster_slot_migration_import_keys:{keys}\r\n",
        get(&tr.job_keys),
        get(&tr.trimmed).min(get(&tr.job_keys)),
        get(&tr.started),
        get(&tr.completed),
    );
}

/// The slot of a command's first key (cluster mode: all its keys share it).
pub fn write_slot(spec: &ferrokv_commands::CommandSpec, args: &Args) -> Option<u16> {
    let mut idx = Vec::new();
    spec.key_indexes(args, &mut idx);
    idx.first().map(|&i| ferrokv_store::key_slot(args.get(i)))
}

pub const PAUSED: &str = "TRYAGAIN Slot is being migrated, writes are paused";

fn parse_ranges(args: &Args, from: usize) -> Result<Vec<(u16, u16)>, String> {
    let n = args.len() - from;
    if n == 0 || !n.is_multiple_of(2) {
        return Err("ERR wrong number of arguments for 'cluster|migration' command".into());
    }
    let mut out = Vec::new();
    for j in (from..args.len()).step_by(2) {
        let (Some(a), Some(b)) =
            (ferrokv_cluster::parse_slot(args.get(j)), ferrokv_cluster::parse_slot(args.get(j + 1)))
        else {
            return Err("ERR Invalid or out of range slot".into());
        };
        if a > b {
            return Err(format!("ERR start slot number {a} is greater than end slot number {b}"));
        }
        out.push((a, b));
    }
    Ok(out)
}

/// Sorts `ranges` and merges adjacent ones, as Redis 8.4 shows a task's slots
/// ("7000-7005 7010-7051"); a slot given twice is an error.
fn merge_ranges(mut ranges: Vec<(u16, u16)>) -> Result<Vec<(u16, u16)>, String> {
    ranges.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1 => return Err(format!("ERR Slot {a} specified multiple times")),
            Some(last) if a == last.1 + 1 => last.1 = b,
            _ => out.push((a, b)),
        }
    }
    Ok(out)
}

/// Checks that this node may import `ranges` now and returns the index (in `view`)
/// of the one node that serves them all, with Redis 8.4's error texts. `current` is
/// the task asking again before an attempt (its own slots do not count as an
/// overlapping import or a manual migration).
fn import_source(
    sm: &SlotMigration,
    view: &ferrokv_cluster::ClusterView,
    ranges: &[(u16, u16)],
    current: Option<&Task>,
) -> Result<usize, String> {
    if !view.me().is_master() {
        return Err("ERR slot migration not allowed on replica.".into());
    }
    let tasks = lock(&sm.tasks);
    let ours = |slot: u16| tasks.iter().any(|t| t.op == Operation::Import && t.live() && t.overlaps(&[(slot, slot)]));
    // Slots opened by hand (SETSLOT IMPORTING/MIGRATING), not by a task here.
    if !view.migrating.is_empty() || view.importing.iter().any(|&(s, _)| !ours(s)) {
        return Err("ERR all slot states must be STABLE to start a slot migration task.".into());
    }
    let mut source = None;
    for &(a, b) in ranges {
        let other = tasks.iter().find(|t| {
            t.op == Operation::Import && t.live() && t.overlaps(&[(a, b)]) && current.is_none_or(|c| c.id != t.id)
        });
        if other.is_some() {
            return Err(format!("ERR overlapping import exists for slot range: {a}-{b}"));
        }
        for s in a..=b {
            match view.slot_owner_index(s) {
                None => return Err(format!("ERR slot has no owner: {s}")),
                Some(o) if source.is_some_and(|x| x != o) => {
                    return Err("ERR slots belong to different source nodes".into());
                }
                Some(o) => source = Some(o),
            }
        }
    }
    match source {
        Some(o) if o == view.myself => Err("ERR this node is already the owner of the slot range".into()),
        Some(o) => Ok(o),
        None => Err("ERR wrong number of arguments for 'cluster|migration' command".into()),
    }
}

/// `CLUSTER MIGRATION IMPORT|STATUS|CANCEL ...` (Redis 8.4's surface).
pub fn migration_command(core: &mut ShardCore, c: &mut Conn, args: &Args) -> Flow {
    const ARITY: &str = "ERR wrong number of arguments for 'cluster|migration' command";
    let node = core.node;
    let sm = &node.slot_migration;
    if args.len() < 4 {
        c.error(ARITY);
        return Flow::Done;
    }
    let op = args.get(2);
    if eq_ic(op, "import") {
        let ranges = match parse_ranges(args, 3).and_then(merge_ranges) {
            Ok(r) => r,
            Err(e) => {
                c.error(&e);
                return Flow::Done;
            }
        };
        let view = core.cluster_view();
        let src = match import_source(sm, &view, &ranges, None) {
            Ok(s) => s,
            Err(e) => {
                c.error(&e);
                return Flow::Done;
            }
        };
        let n = &view.nodes[src];
        // Tasks run at once when their sources differ (a source serves one export).
        if lock(&sm.tasks)
            .iter()
            .any(|t| t.op == Operation::Import && t.live() && lock(&t.progress).source == n.id.as_str())
        {
            c.error(
                "ERR another slot migration task from this source is already in progress (ferrokv: one per source)",
            );
            return Flow::Done;
        }
        let me = view.me().id.as_str().to_string();
        let id = task_id(&me, sm.next_id.fetch_add(1, Ordering::Relaxed));
        let task =
            Arc::new(Task::new(id.clone(), Operation::Import, n.id.as_str().to_string(), me, ranges, "connecting"));
        sm.record(task.clone());
        let spawned = std::thread::Builder::new().name("slot-import".into()).spawn(move || run_task(node, task));
        if spawned.is_err() {
            c.error("ERR can't start the migration thread");
            return Flow::Done;
        }
        c.reply(|r| r.bulk(id.as_bytes()));
        return Flow::Done;
    }
    if !eq_ic(op, "status") && !eq_ic(op, "cancel") {
        c.error("ERR unknown argument");
        return Flow::Done;
    }
    let filter: Option<Vec<u8>> = if eq_ic(args.get(3), "id") {
        if args.len() != 5 {
            c.error(ARITY);
            return Flow::Done;
        }
        Some(args.get(4).to_vec())
    } else if eq_ic(args.get(3), "all") {
        if args.len() != 4 {
            c.error(ARITY);
            return Flow::Done;
        }
        None
    } else {
        c.error("ERR unknown argument");
        return Flow::Done;
    };
    let tasks: Vec<Arc<Task>> =
        lock(&sm.tasks).iter().filter(|t| filter.as_ref().is_none_or(|f| f == t.id.as_bytes())).cloned().collect();
    if eq_ic(op, "cancel") {
        let mut n = 0;
        for t in &tasks {
            match t.op {
                Operation::Import => n += t.request_cancel("user request") as usize,
                Operation::Migrate if t.live() => {
                    let current = lock(&sm.export).as_ref().is_some_and(|e| Arc::ptr_eq(&e.record, t));
                    if current {
                        sm.stop_export(node, "canceled", Some("Cancelled due to user request"));
                        n += 1;
                    }
                }
                Operation::Migrate => {}
            }
        }
        c.reply(|r| r.integer(n as i64));
    } else {
        // As Redis lists them: the live tasks in the order they began, then the ended
        // ones, the last to end first.
        let (mut live, mut ended): (Vec<_>, Vec<_>) = tasks.into_iter().partition(|t| t.live());
        ended.sort_by_key(|t| std::cmp::Reverse(lock(&t.progress).end_ms));
        live.extend(ended);
        c.reply(|r| {
            r.array(live.len());
            for t in &live {
                status_reply(r, t);
            }
        });
    }
    Flow::Done
}

/// A task id as Redis shows them: 40 hex characters, unique per node and run.
fn task_id(node_id: &str, seq: u64) -> String {
    // FNV-1a over the node id, the time and a sequence number, four times salted.
    let seed = format!("{node_id}:{}:{seq}:{}", crate::node::unix_ms(), std::process::id());
    let mut out = String::with_capacity(40);
    for salt in 0u8..3 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt as u64;
        for b in seed.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(40);
    out
}

fn status_reply(r: &mut ReplyBuf, t: &Task) {
    let p = lock(&t.progress);
    let ranges: Vec<String> = t.ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    let total = t.slots().count();
    let (source, dest) = (p.source.clone(), t.dest.clone());
    let op = if t.op == Operation::Import { "import" } else { "migrate" };
    let fields: [(&str, String); 13] = [
        ("id", t.id.clone()),
        ("slots", ranges.join(" ")),
        ("source", source),
        ("dest", dest),
        ("operation", op.into()),
        ("state", p.state.into()),
        ("last_error", p.last_error.clone()),
        ("retries", p.retries.to_string()),
        ("create_time", p.create_ms.to_string()),
        ("start_time", p.start_ms.to_string()),
        ("end_time", p.end_ms.to_string()),
        ("write_pause_ms", p.write_pause_ms.to_string()),
        ("progress", format!("{}/{} slots, {} keys, {} bytes", p.slots_done, total, p.keys, p.bytes)),
    ];
    r.map(fields.len());
    for (k, v) in fields {
        r.bulk(k.as_bytes());
        r.bulk(v.as_bytes());
    }
}

/// `CLUSTER MIGRATION-SYNC <id> BEGIN <slot> | DELTA | PAUSE | END | ABORT` — ferrokv
/// only, sent by a target's import task to the source (see the module docs).
pub fn sync_command(core: &mut ShardCore, c: &mut Conn, args: &Args, held: &mut Held) -> Flow {
    let node = core.node;
    let sm = &node.slot_migration;
    if args.len() < 4 {
        c.error("ERR wrong number of arguments for 'cluster|migration-sync' command");
        return Flow::Done;
    }
    let id = args.get(2).to_vec();
    let op = args.get(3);
    let now = crate::node::unix_ms();
    let view = core.cluster_view();
    if eq_ic(op, "start") && args.len() >= 7 {
        // START <dest-id> <ranges>: an attempt of the target's task begins; the
        // export it asks for replaces any other (that one's target is gone, or this
        // is the same task trying again).
        let ranges = match parse_ranges(args, 5) {
            Ok(r) => r,
            Err(e) => {
                c.error(&e);
                return Flow::Done;
            }
        };
        let slots: Vec<u16> = ranges.iter().flat_map(|&(a, b)| a..=b).collect();
        if slots.iter().any(|&s| view.slot_owner_index(s) != Some(view.myself)) {
            c.error("ERR This node is not the owner of the slots");
            return Flow::Done;
        }
        if lock(&sm.export).is_some() {
            sm.stop_export(node, "failed", Some("another attempt or task took over"));
        }
        let id_text = String::from_utf8_lossy(&id).into_owned();
        let dest = String::from_utf8_lossy(args.get(4)).into_owned();
        let old = lock(&sm.tasks).iter().find(|t| t.op == Operation::Migrate && t.id == id_text).cloned();
        let record = match old {
            Some(t) => {
                let mut p = lock(&t.progress);
                if p.end_ms != 0 {
                    p.retries += 1;
                }
                p.state = "send-bulk-and-stream";
                p.end_ms = 0;
                p.start_ms = now;
                drop(p);
                t.cancel.store(false, Ordering::Release);
                t
            }
            None => {
                let me = view.me().id.as_str().to_string();
                let t = Arc::new(Task::new(id_text, Operation::Migrate, me, dest, ranges, "send-bulk-and-stream"));
                sm.record(t.clone());
                t
            }
        };
        *lock(&sm.export) =
            Some(Export { id: id.clone(), slots, paused: vec![0; SLOTS / 64], paused_at: 0, last_seen: now, record });
        sm.exporting.store(true, Ordering::Release);
        c.reply(|r| r.ok());
        return Flow::Done;
    }
    if eq_ic(op, "begin") && args.len() >= 5 {
        // BEGIN <slot> [<slot> ...]: each slot cut under its own shard's lock.
        let mut slots = Vec::with_capacity(args.len() - 4);
        for i in 4..args.len() {
            let Some(slot) = ferrokv_cluster::parse_slot(args.get(i)) else {
                c.error("ERR Invalid slot");
                return Flow::Done;
            };
            if view.slot_owner_index(slot) != Some(view.myself) {
                c.error(&format!("ERR I'm not the owner of hash slot {slot}"));
                return Flow::Done;
            }
            slots.push(slot);
        }
        let record = match lock(&sm.export).as_mut() {
            Some(e) if e.id == id && slots.iter().all(|s| e.slots.contains(s)) => {
                e.last_seen = now;
                e.record.clone()
            }
            _ => {
                c.error("ERR No such slot migration export on this node");
                return Flow::Done;
            }
        };
        let mut keys = Vec::new();
        for &slot in &slots {
            keys.extend(held.with_db(node, node.shard_of_slot(slot), |db| {
                db.capture_start(slot);
                db.slot_dump(slot, now)
            }));
        }
        {
            let mut p = lock(&record.progress);
            p.slots_done += slots.len();
            p.keys += keys.len() as u64;
            p.bytes += keys.iter().map(|(k, _, v)| (k.len() + v.as_ref().map_or(0, |v| v.len())) as u64).sum::<u64>();
        }
        c.reply(|r| {
            r.array(keys.len() * 3);
            for (k, at, payload) in &keys {
                r.bulk(k);
                key_record(r, Some((*at, payload.as_deref())));
            }
        });
        return Flow::Done;
    }
    // The target's own steps, for many slots in one bus command.
    let local = if eq_ic(op, "importing") && args.len() >= 7 {
        parse_ranges(args, 5).map(|r| (ferrokv_cluster::SlotMigrationOp::Importing(args.get(4).to_vec()), r))
    } else if eq_ic(op, "claim") {
        parse_ranges(args, 4).map(|r| (ferrokv_cluster::SlotMigrationOp::Claim, r))
    } else if eq_ic(op, "stable") {
        parse_ranges(args, 4).map(|r| (ferrokv_cluster::SlotMigrationOp::Stable, r))
    } else if eq_ic(op, "handoff") && args.len() >= 8 {
        match ferrokv_cluster::commands::parse_i64_strict(args.get(5)).filter(|&e| e > 0) {
            Some(epoch) => parse_ranges(args, 6).map(|r| {
                let op = ferrokv_cluster::SlotMigrationOp::Handoff {
                    node: args.get(4).to_vec(),
                    config_epoch: epoch as u64,
                };
                (op, r)
            }),
            None => Err("ERR Invalid config epoch".into()),
        }
    } else {
        Err(String::new())
    };
    match local {
        Ok((op, ranges)) => {
            let slots = ranges.iter().flat_map(|&(a, b)| a..=b).collect();
            let seq = c.push_pending();
            c.barrier = Some(seq);
            let cmd = ferrokv_cluster::Command::SlotMigration { op, slots };
            core.send(0, crate::msg::Msg::Cluster { from: core.id, token: c.token, seq, proto: c.proto, cmd });
            return Flow::Done;
        }
        Err(e) if !e.is_empty() => {
            c.error(&e);
            return Flow::Done;
        }
        Err(_) => {}
    }
    // END after the tick already ended the export (it saw the claim first) is done.
    if eq_ic(op, "end") && lock(&sm.export).is_none() {
        c.reply(|r| r.ok());
        return Flow::Done;
    }
    match lock(&sm.export).as_mut() {
        Some(e) if e.id == id => e.last_seen = now,
        _ => {
            c.error("ERR No such slot migration export on this node");
            return Flow::Done;
        }
    }
    if eq_ic(op, "delta") {
        let mut flushed = Vec::new();
        let mut keys = Vec::new();
        for s in 0..node.shard_count() {
            held.with_db(node, s, |db| {
                let got = db.take_captured();
                flushed.extend(got.flushed);
                for k in got.keys {
                    let v = db.key_dump(&k, now);
                    keys.push((k, v));
                }
            });
        }
        c.reply(|r| {
            r.array(2);
            r.array(flushed.len());
            for s in &flushed {
                r.integer(*s as i64);
            }
            r.array(keys.len() * 3);
            for (k, v) in &keys {
                r.bulk(k);
                key_record(r, v.as_ref().map(|(at, p)| (*at, p.as_deref())));
            }
        });
    } else if eq_ic(op, "chunk") && args.len() == 6 {
        // CHUNK <key> <cursor>: a piece of a big key (see `pull_big`).
        let key = args.get(4);
        let Some(cursor) = std::str::from_utf8(args.get(5)).ok().and_then(|t| t.parse::<u64>().ok()) else {
            c.error("ERR invalid cursor");
            return Flow::Done;
        };
        let shard = node.shard_of_slot(ferrokv_store::key_slot(key));
        let piece = held.with_db(node, shard, |db| db.key_chunk(key, cursor, now));
        c.reply(|r| match &piece {
            None => r.null(),
            Some(p) => {
                r.array(4);
                r.bulk(p.kind.name().as_bytes());
                r.integer(p.expire_at as i64);
                // A scan cursor is a position in a 64-bit hash space: as text.
                r.bulk(p.next.to_string().as_bytes());
                r.array(p.elems.len());
                for e in &p.elems {
                    r.bulk(e);
                }
            }
        });
    } else if eq_ic(op, "pause") {
        // A manual failover in progress would hand the slots to a replica while the
        // target claims them (the bus refuses a failover while the pause holds).
        if node.repl.writes_paused(now) {
            c.error("ERR A manual failover is in progress");
            return Flow::Done;
        }
        if let Some(e) = lock(&sm.export).as_mut() {
            for &s in &e.slots {
                e.paused[s as usize / 64] |= 1 << (s % 64);
            }
            e.paused_at = now;
            lock(&e.record.progress).state = "handoff";
        }
        sm.pausing.store(true, Ordering::Release);
        c.reply(|r| r.ok());
    } else if eq_ic(op, "end") {
        let still_mine = lock(&sm.export)
            .as_ref()
            .is_some_and(|e| e.slots.iter().any(|&s| view.slot_owner_index(s) == Some(view.myself)));
        if still_mine {
            c.error("TRYAGAIN the new owner's claim has not reached this node yet");
        } else {
            sm.stop_export(node, "completed", None);
            c.reply(|r| r.ok());
        }
    } else if eq_ic(op, "abort") {
        sm.stop_export(node, "failed", Some("the target ended the task"));
        c.reply(|r| r.ok());
    } else {
        c.error("ERR syntax error");
    }
    Flow::Done
}

/// A key's record after its name in BEGIN's and DELTA's replies: its absolute expiry
/// and DUMP payload; -2 and a null for a big key the target pulls in pieces; -1 and a
/// null for a key that is gone.
fn key_record(r: &mut ReplyBuf, v: Option<(u64, Option<&[u8]>)>) {
    match v {
        Some((at, Some(p))) => {
            r.integer(at as i64);
            r.bulk(p);
        }
        Some((_, None)) => {
            r.integer(BIG);
            r.null();
        }
        None => {
            r.integer(-1);
            r.null();
        }
    }
}

/// The expiry field of a big key's record.
const BIG: i64 = -2;

// ---- the target's task thread ----

/// Slots per BEGIN: one round trip carries this many slots' snapshots.
const SLOTS_PER_BEGIN: usize = 32;

/// Bytes a read asks the socket for at least.
const READ_CHUNK: usize = 256 << 10;

/// A blocking RESP client of the task thread (to the source, and to this node for the
/// steps that go through its bus).
struct Client {
    s: TcpStream,
    /// Read bytes: `buf[head..filled]` are not consumed yet. The buffer is zeroed
    /// once as it grows and reused, so a read copies each byte once.
    buf: Vec<u8>,
    head: usize,
    filled: usize,
    reader: ValueReader,
}

impl Client {
    fn connect(addr: &str) -> std::io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client { s, buf: Vec::new(), head: 0, filled: 0, reader: ValueReader::new() })
    }

    /// Connects and authenticates: to the source with `masteruser`/`masterauth` (as a
    /// replica does to its master; Redis 8.4's migration does the same), to this node
    /// itself with `requirepass`.
    fn open(node: &Node, addr: &str, to_self: bool) -> Result<Client, String> {
        let what = if to_self { "myself" } else { "the source" };
        let mut c = Client::connect(addr).map_err(|e| format!("connecting to {what}: {e}"))?;
        let (user, pass) = {
            let cfg = node.config();
            if to_self {
                (String::new(), cfg.requirepass.clone())
            } else {
                (cfg.masteruser.clone(), cfg.masterauth.clone())
            }
        };
        if !pass.is_empty() {
            let r = if user.is_empty() {
                c.call(&[b"AUTH", pass.as_bytes()])
            } else {
                c.call(&[b"AUTH", user.as_bytes(), pass.as_bytes()])
            };
            r.map_err(|e| format!("authenticating to {what}: {e}"))?;
        }
        Ok(c)
    }

    /// Reads until a whole reply is in the buffer and returns where it is, without
    /// consuming it ([`consume`](Self::consume) does, once the caller is done with it).
    fn raw(&mut self) -> Result<std::ops::Range<usize>, String> {
        if self.head == self.filled {
            (self.head, self.filled) = (0, 0);
        } else if self.head > 0 {
            self.buf.copy_within(self.head..self.filled, 0);
            self.filled -= self.head;
            self.head = 0;
        }
        loop {
            match self.reader.complete(&self.buf[..self.filled]) {
                Ok(Some(end)) => return Ok(0..end),
                Ok(None) => {}
                Err(e) => return Err(format!("bad reply: {}", e.0)),
            }
            if self.buf.len() - self.filled < READ_CHUNK {
                let grown = (self.buf.len() * 2).max(self.filled + READ_CHUNK);
                self.buf.resize(grown, 0);
            }
            let n = match self.s.read(&mut self.buf[self.filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.reader.reset();
                    return Err(e.to_string());
                }
            };
            if n == 0 {
                self.reader.reset();
                return Err("connection closed".into());
            }
            self.filled += n;
        }
    }

    fn consume(&mut self, reply: std::ops::Range<usize>) {
        self.head = reply.end;
    }

    fn read(&mut self) -> Result<Value, String> {
        let r = self.raw()?;
        let v = match ferrokv_resp::parse_value(&self.buf[r.clone()]) {
            Ok(Some((v, _))) => v,
            Ok(None) => return Err("bad reply: it ended early".into()),
            Err(e) => return Err(format!("bad reply: {}", e.0)),
        };
        self.consume(r);
        Ok(v)
    }

    /// Sends one command and reads its reply; an error reply is `Err`.
    fn call(&mut self, args: &[&[u8]]) -> Result<Value, String> {
        self.send(&[args])?;
        self.reply()
    }

    /// Sends two commands at once (one round trip, for the steps of the write pause)
    /// and reads both replies; `Err` in the outer result means the connection failed.
    fn call_two(&mut self, a: &[&[u8]], b: &[&[u8]]) -> Result<(Result<Value, String>, Result<Value, String>), String> {
        self.send(&[a, b])?;
        let first = match self.read()? {
            Value::Error(e) => Err(e),
            v => Ok(v),
        };
        Ok((first, self.reply()))
    }

    fn send(&mut self, cmds: &[&[&[u8]]]) -> Result<(), String> {
        let mut out = Vec::new();
        for args in cmds {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in *args {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a);
                out.extend_from_slice(b"\r\n");
            }
        }
        self.s.write_all(&out).map_err(|e| e.to_string())
    }

    fn reply(&mut self) -> Result<Value, String> {
        match self.read()? {
            Value::Error(e) => Err(e),
            v => Ok(v),
        }
    }
}

fn set_state(t: &Task, s: &'static str) {
    lock(&t.progress).state = s;
}

/// The task's thread: attempts until one completes, or the task is canceled, or the
/// slots' owners change so that the task cannot go on; a failed attempt is undone and
/// tried again after [`RETRY_DELAY`] (Redis 8.4's retries), from the slots' owner at
/// that time (a failover of the source hands them to its replica).
fn run_task(node: &'static Node, t: Arc<Task>) {
    loop {
        let Some(view) = node.cluster.as_ref().map(|c| c.view()) else { return };
        let src = match import_source(&node.slot_migration, &view, &t.ranges, Some(&t)) {
            Ok(src) => src,
            Err(e) => {
                let e = e.strip_prefix("ERR ").unwrap_or(&e);
                tracing::warn!("slot migration {}: canceled before an attempt: {e}", t.id);
                t.end("canceled", Some(&format!("Cancelled due to slots configuration updated: {e}")));
                return;
            }
        };
        let n = &view.nodes[src];
        let src_addr = format!("{}:{}", n.ip, n.port);
        let self_addr = format!("127.0.0.1:{}", view.me().port);
        {
            let mut p = lock(&t.progress);
            p.source = n.id.as_str().to_string();
            p.start_ms = crate::node::unix_ms();
            p.state = "connecting";
            (p.slots_done, p.keys, p.bytes) = (0, 0, 0);
        }
        let mut claimed = false;
        let res = attempt(node, &t, &src_addr, &self_addr, &mut claimed);
        match res {
            Ok(()) => return t.end("completed", None),
            Err(e) if claimed => {
                // The slots are ours: the source lifts its pause when it sees the claim.
                lock(&t.progress).last_error = e;
                return t.end("completed", None);
            }
            Err(e) => {
                // The state says the attempt ended only once the undo is done.
                let slots: Vec<u16> = t.slots().collect();
                undo(node, &t, &src_addr, &self_addr, &slots);
                if t.cancel.load(Ordering::Acquire) {
                    return t.end_canceled();
                }
                tracing::warn!("slot migration {}: attempt failed ({e}); trying again", t.id);
                let mut p = lock(&t.progress);
                p.last_error = format!("{e} (state: {})", p.state);
                p.state = "failed";
            }
        }
        let wake = Instant::now() + RETRY_DELAY;
        while Instant::now() < wake {
            if t.cancel.load(Ordering::Acquire) {
                return t.end_canceled();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        lock(&t.progress).retries += 1;
    }
}

/// One attempt of an import task (see the module docs' steps); `claimed` is set once
/// the claim may have moved the slots (then nothing is undone).
fn attempt(node: &Node, t: &Task, src_addr: &str, self_addr: &str, claimed: &mut bool) -> Result<(), String> {
    let slots: Vec<u16> = t.slots().collect();
    let mut src = Client::open(node, src_addr, false)?;
    let mut me = Client::open(node, self_addr, true)?;
    let id = t.id.as_bytes();
    let ranges: Vec<Vec<u8>> =
        t.ranges.iter().flat_map(|&(a, b)| [a.to_string().into_bytes(), b.to_string().into_bytes()]).collect();
    let source = lock(&t.progress).source.clone().into_bytes();
    let source = source.as_slice();
    let local = |verb: &'static [u8], with_source: bool| {
        let mut v: Vec<&[u8]> = vec![b"CLUSTER", b"MIGRATION-SYNC", id, verb];
        if with_source {
            v.push(source);
        }
        v.extend(ranges.iter().map(|r| r.as_slice()));
        v
    };
    me.call(&local(b"IMPORTING", true))?;
    for &s in &slots {
        node.slot_migration.hidden.insert(s);
    }
    set_state(t, "snapshot");
    let mut start: Vec<&[u8]> = vec![b"CLUSTER", b"MIGRATION-SYNC", id, b"START", t.dest.as_bytes()];
    start.extend(ranges.iter().map(|r| r.as_slice()));
    src.call(&start)?;
    // Slots in groups: a round trip per group, not per slot.
    for group in slots.chunks(SLOTS_PER_BEGIN) {
        yield_to_pauses(&node.slot_migration);
        if t.cancel.load(Ordering::Acquire) {
            return Err("canceled".into());
        }
        let names: Vec<String> = group.iter().map(|s| s.to_string()).collect();
        let mut begin: Vec<&[u8]> = vec![b"CLUSTER", b"MIGRATION-SYNC", id, b"BEGIN"];
        begin.extend(names.iter().map(|s| s.as_bytes()));
        src.send(&[&begin])?;
        let (n, bytes) = apply_reply(node, &mut src, id, false)?;
        let mut p = lock(&t.progress);
        p.slots_done += group.len();
        p.keys += n;
        p.bytes += bytes;
    }
    set_state(t, "streaming");
    for _ in 0..8 {
        yield_to_pauses(&node.slot_migration);
        if t.cancel.load(Ordering::Acquire) {
            return Err("canceled".into());
        }
        if delta(node, &mut src, id, t)? < 1000 {
            break;
        }
    }
    while node.slot_migration.hold.load(Ordering::Relaxed) && !t.cancel.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(50));
        delta(node, &mut src, id, t)?;
    }
    if t.cancel.load(Ordering::Acquire) {
        return Err("canceled".into());
    }
    yield_to_pauses(&node.slot_migration);
    set_state(t, "paused");
    let _switching = Switching::enter(&node.slot_migration);
    let t0 = Instant::now();
    // PAUSE and the last DELTA in one round trip (the source answers in order).
    src.send(&[&[b"CLUSTER", b"MIGRATION-SYNC", id, b"PAUSE"], &[b"CLUSTER", b"MIGRATION-SYNC", id, b"DELTA"]])?;
    let paused = src.reply();
    let last = apply_reply(node, &mut src, id, true);
    paused?;
    add_progress(t, last?);
    let t_delta = t0.elapsed();
    // The source lifts its pause after the write-pause timeout, counted from
    // before the PAUSE reply reached here: claim only well inside it, so the claim
    // has the rest of the window to reach the source.
    let window = node.config().cluster_slot_migration_write_pause_timeout;
    if t0.elapsed().as_millis() as u64 >= window / 2 {
        return Err(format!("the final delta took longer than half of the {window} ms write pause"));
    }
    // The point of no return: the claim (a config epoch bump) moves the slots. An
    // error reply means nothing was claimed (the bus refused: the source's replica
    // took the slots over meanwhile, or a manual failover runs here), and the task
    // undoes; a lost connection leaves it unknown, so nothing is undone.
    if t.cancel.load(Ordering::Acquire) {
        return Err("canceled".into());
    }
    set_state(t, "switching");
    let claim = me.call(&local(b"CLAIM", false));
    let t_claim = t0.elapsed();
    *claimed = !matches!(&claim, Err(e) if e.starts_with("ERR"));
    if *claimed {
        for &s in &slots {
            node.slot_migration.hidden.remove(s);
        }
    }
    let Value::Int(epoch) = claim? else {
        return Err("bad CLAIM reply".into());
    };
    // Tell the source at once rather than wait for the bus to carry the claim.
    let epoch = epoch.to_string();
    let mut handoff: Vec<&[u8]> = vec![b"CLUSTER", b"MIGRATION-SYNC", id, b"HANDOFF", t.dest.as_bytes()];
    handoff.push(epoch.as_bytes());
    handoff.extend(ranges.iter().map(|r| r.as_slice()));
    // HANDOFF and END in one round trip: the source answers END after HANDOFF's
    // answer, so END finds the slots handed off unless HANDOFF failed.
    let end: &[&[u8]] = &[b"CLUSTER", b"MIGRATION-SYNC", id, b"END"];
    let (handed, mut ended) = src.call_two(&handoff, end)?;
    if let Err(e) = handed {
        tracing::warn!("slot migration {}: handoff to the source failed ({e}); the bus will carry the claim", t.id);
    }
    let t_handoff = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ended {
            Ok(_) => break,
            Err(e) if e.starts_with("TRYAGAIN") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
                ended = src.call(end);
            }
            Err(e) => return Err(e),
        }
    }
    let pause = t0.elapsed();
    lock(&t.progress).write_pause_ms = pause.as_millis() as u64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    tracing::info!(
        "slot migration {}: write pause {:.1} ms (pause and last delta {:.1}, claim {:.1}, handoff and end {:.1}, end again {:.1})",
        t.id,
        ms(pause),
        ms(t_delta),
        ms(t_claim - t_delta),
        ms(t_handoff - t_claim),
        ms(pause - t_handoff)
    );
    Ok(())
}

/// While another import task here is inside its write pause, a task's snapshot and
/// delta steps wait (up to 200 ms at a time, so a pause stuck on a dead source only
/// slows them): the pause is the latency clients see, and with several tasks running
/// into one node on few cores, their copying would otherwise stretch it.
fn yield_to_pauses(sm: &SlotMigration) {
    let until = Instant::now() + Duration::from_millis(200);
    while sm.switching.load(Ordering::Acquire) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A task inside its write pause, counted in `SlotMigration::switching` while alive.
struct Switching<'a>(&'a SlotMigration);

impl<'a> Switching<'a> {
    fn enter(sm: &'a SlotMigration) -> Self {
        sm.switching.fetch_add(1, Ordering::AcqRel);
        Switching(sm)
    }
}

impl Drop for Switching<'_> {
    fn drop(&mut self) {
        self.0.switching.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A reader over a reply in the read buffer: headers parsed, bodies borrowed where
/// they lie.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A header line: its type byte and number.
    fn header(&mut self) -> Result<(u8, i64), String> {
        let rest = &self.buf[self.pos..];
        let end = rest.windows(2).position(|w| w == b"\r\n").ok_or("bad reply: no line end")?;
        let kind = *rest.first().ok_or("bad reply: empty")?;
        let n = std::str::from_utf8(&rest[1..end]).ok().and_then(|t| t.parse().ok());
        self.pos += end + 2;
        match (kind, n) {
            (b'-', _) => Err(String::from_utf8_lossy(&rest[1..end]).into_owned()),
            (b'_', _) => Ok((b'_', -1)),
            (k, Some(n)) => Ok((k, n)),
            _ => Err("bad reply: not a number".into()),
        }
    }

    fn array(&mut self) -> Result<usize, String> {
        match self.header()? {
            (b'*', n) if n >= 0 => Ok(n as usize),
            _ => Err("bad reply: not an array".into()),
        }
    }

    fn int(&mut self) -> Result<i64, String> {
        match self.header()? {
            (b':', n) => Ok(n),
            _ => Err("bad reply: not an integer".into()),
        }
    }

    /// A bulk string's place in the buffer, or `None` for a null.
    fn bulk(&mut self) -> Result<Option<Span>, String> {
        match self.header()? {
            (b'$', n) if n >= 0 => {
                let span = Span { start: self.pos as u32, len: n as u32, in_scratch: false };
                self.pos += n as usize + 2;
                if self.pos > self.buf.len() {
                    return Err("bad reply: short bulk".into());
                }
                Ok(Some(span))
            }
            (b'$' | b'_', _) => Ok(None),
            _ => Err("bad reply: not a bulk string".into()),
        }
    }

    fn get(&self, s: Span) -> &'a [u8] {
        &self.buf[s.start as usize..(s.start + s.len) as usize]
    }
}

/// Reads the reply to a BEGIN (`delta` false) or DELTA sent before, in place, and
/// applies its keys (key, abs ms or -1 = absent or -2 = big, payload) to this node's
/// keyspace, each as a `RESTORE key <abs-ms> payload REPLACE ABSTTL` (or a DEL, or
/// the pieces of a big key pulled from the source) through the execution function, so
/// this node's AOF and replicas get them. A DELTA also carries slots emptied whole,
/// which are emptied here first. Returns how many keys and how many bytes (names,
/// payloads, elements).
fn apply_reply(node: &Node, src: &mut Client, id: &[u8], delta: bool) -> Result<(u64, u64), String> {
    let reply = src.raw()?;
    let cfg = node.exec_config();
    let now = crate::node::unix_ms();
    let mut big = Vec::new();
    let applied = (|| {
        let mut c = Cursor { buf: &src.buf[reply.clone()], pos: 0 };
        if delta {
            if c.array()? != 2 {
                return Err("bad DELTA reply".to_string());
            }
            for _ in 0..c.array()? {
                clear_slot(node, c.int()? as u16);
            }
        }
        let n = c.array()?;
        if n % 3 != 0 {
            return Err("bad key records".into());
        }
        let (mut scratch, mut bytes) = (Vec::with_capacity(64), 0u64);
        for _ in 0..n / 3 {
            let key = c.bulk()?.ok_or("bad key record")?;
            let at = c.int()?;
            let payload = c.bulk()?;
            bytes += key.len as u64;
            match payload {
                Some(p) if at >= 0 => {
                    bytes += p.len as u64;
                    // RESTORE <key> <at> <payload> REPLACE ABSTTL: the key and the
                    // payload where they were read, the rest in `scratch`.
                    scratch.clear();
                    scratch.extend_from_slice(b"RESTOREREPLACEABSTTL");
                    scratch.extend_from_slice(at.to_string().as_bytes());
                    let word = |start: u32, len: u32| Span { start, len, in_scratch: true };
                    let spans = [word(0, 7), key, word(20, scratch.len() as u32 - 20), p, word(7, 7), word(14, 6)];
                    let k = c.get(key);
                    let mut ks = MultiDb::lock(node, &[node.shard_of_slot(ferrokv_store::key_slot(k))]);
                    let out = run_internal_args(&mut ks, &Args::new(c.buf, &scratch, &spans), &cfg, now);
                    if let Some(e) = out.buf.strip_prefix(b"-") {
                        return Err(String::from_utf8_lossy(e.trim_ascii_end()).into_owned());
                    }
                }
                _ if at == BIG => big.push(c.get(key).to_vec()),
                _ => run_on_key(node, &[b"DEL", c.get(key)])?,
            }
        }
        Ok((n as u64 / 3, bytes))
    })();
    src.consume(reply);
    let (n, mut bytes) = applied?;
    for k in &big {
        bytes += pull_big(node, src, id, k)?;
    }
    Ok((n, bytes))
}

/// Runs `words` (a command whose key is `words[1]`) through the execution function under
/// the key's shard lock.
fn run_on_key(node: &Node, words: &[&[u8]]) -> Result<(), String> {
    let shard = node.shard_of_slot(ferrokv_store::key_slot(words[1]));
    let mut ks = MultiDb::lock(node, &[shard]);
    let out = run_internal(&mut ks, words, &node.exec_config(), crate::node::unix_ms());
    match out.buf.strip_prefix(b"-") {
        Some(e) => Err(String::from_utf8_lossy(e.trim_ascii_end()).into_owned()),
        None => Ok(()),
    }
}

/// Pulls a big key from the source piece by piece (`CHUNK <key> <cursor>`) and rebuilds
/// it here: a DEL, then per piece an APPEND, RPUSH, HSET, SADD or ZADD of its elements,
/// then its expiry. Each piece holds a shard lock on either side only for its own
/// elements. The pieces need not agree with each other (the key may change between
/// them): a change after the capture began is sent again whole (module docs of
/// `ferrokv_store`'s `db/capture.rs`). A piece of another type than the first means the
/// key was replaced meanwhile; the pull then starts over. Returns the bytes pulled.
fn pull_big(node: &Node, src: &mut Client, id: &[u8], key: &[u8]) -> Result<u64, String> {
    use ferrokv_store::ChunkKind;
    let (mut cursor, mut kind, mut restarts, mut bytes) = (0u64, None, 0, 0u64);
    loop {
        let at = cursor.to_string();
        let piece = src.call(&[b"CLUSTER", b"MIGRATION-SYNC", id, b"CHUNK", key, at.as_bytes()])?;
        let parts = match piece {
            Value::Nil | Value::NilArray | Value::Null => return run_on_key(node, &[b"DEL", key]).map(|()| bytes),
            Value::Array(parts) => parts,
            _ => return Err("bad CHUNK reply".into()),
        };
        let [Value::Bulk(name), Value::Int(expire_at), Value::Bulk(next), Value::Array(elems)] = &parts[..] else {
            return Err("bad CHUNK reply".into());
        };
        let this = ChunkKind::parse(name).ok_or("bad CHUNK reply")?;
        let next: u64 = std::str::from_utf8(next).ok().and_then(|t| t.parse().ok()).ok_or("bad CHUNK reply")?;
        if cursor != 0 && kind != Some(this) {
            restarts += 1;
            if restarts > 16 {
                return Err("a big key kept changing its type while it was sent".into());
            }
            (cursor, kind) = (0, None);
            continue;
        }
        if cursor == 0 {
            run_on_key(node, &[b"DEL", key])?;
            kind = Some(this);
        }
        let mut words: Vec<&[u8]> = Vec::with_capacity(elems.len() + 2);
        words.push(match this {
            ChunkKind::String => b"APPEND",
            ChunkKind::List => b"RPUSH",
            ChunkKind::Hash => b"HSET",
            ChunkKind::Set => b"SADD",
            ChunkKind::ZSet => b"ZADD",
        });
        words.push(key);
        let elems: Vec<&[u8]> = elems
            .iter()
            .map(|e| if let Value::Bulk(b) = e { Ok(b.as_slice()) } else { Err("bad CHUNK reply") })
            .collect::<Result<_, _>>()?;
        bytes += elems.iter().map(|e| e.len() as u64).sum::<u64>();
        if this == ChunkKind::ZSet {
            // Pieces carry member, score; ZADD takes score, member.
            for pair in elems.chunks(2) {
                words.extend(pair.iter().rev());
            }
        } else {
            words.extend(&elems);
        }
        if words.len() > 2 {
            run_on_key(node, &words)?;
        }
        if next == 0 {
            if *expire_at > 0 {
                run_on_key(node, &[b"PEXPIREAT", key, expire_at.to_string().as_bytes()])?;
            }
            return Ok(bytes);
        }
        cursor = next;
    }
}

/// One DELTA from the source applied here; returns how many keys it carried.
fn delta(node: &Node, src: &mut Client, id: &[u8], t: &Task) -> Result<u64, String> {
    src.send(&[&[b"CLUSTER", b"MIGRATION-SYNC", id, b"DELTA"]])?;
    let (keys, bytes) = apply_reply(node, src, id, true)?;
    add_progress(t, (keys, bytes));
    Ok(keys)
}

fn add_progress(t: &Task, (keys, bytes): (u64, u64)) {
    let mut p = lock(&t.progress);
    p.keys += keys;
    p.bytes += bytes;
}

/// Deletes every key of `slot` on this node.
fn clear_slot(node: &Node, slot: u16) {
    while delete_batch(node, node.shard_of_slot(slot), slot) != 0 {}
}

/// A task that ended before its claim: the source's export ends, what was restored
/// here is deleted and the slots are stable again.
fn undo(node: &Node, t: &Task, src_addr: &str, self_addr: &str, slots: &[u16]) {
    if let Ok(mut src) = Client::open(node, src_addr, false) {
        let _ = src.call(&[b"CLUSTER", b"MIGRATION-SYNC", t.id.as_bytes(), b"ABORT"]);
    }
    for &s in slots {
        clear_slot(node, s);
        if !node.slot_migration.slot_lost(s) {
            node.slot_migration.hidden.remove(s);
        }
    }
    let Ok(mut me) = Client::open(node, self_addr, true) else { return };
    let mut args: Vec<Vec<u8>> = vec![b"CLUSTER".to_vec(), b"MIGRATION-SYNC".to_vec(), t.id.clone().into_bytes()];
    args.push(b"STABLE".to_vec());
    for &(a, b) in &t.ranges {
        args.push(a.to_string().into_bytes());
        args.push(b.to_string().into_bytes());
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    let _ = me.call(&refs);
}

// ---- deleting the keys of slots this node lost ----
//
// When the bus takes slots away from this node (a migration's claim, a failover, an
// UPDATE), their keys are deleted in the background: each shard deletes a batch per
// loop iteration through the execution function (a DEL, so the AOF and the replicas
// drop them too, as Redis 7's `delKeysInSlot` propagates), while clients already get
// MOVED for those slots. A slot this node gains back (or starts importing) before its
// trim ended is trimmed whole at once first, so no stale key reappears.

/// Keys deleted per shard per loop iteration.
const TRIM_BATCH: usize = 512;

/// Queues the keys of `slots` for deletion on their shards (after the view that took
/// them away is published).
pub fn schedule_trim(node: &Node, slots: &[u16]) {
    let sm = &node.slot_migration;
    for &s in slots {
        sm.lost.insert(s);
    }
    for &s in slots {
        let shard = &node.shards[node.shard_of_slot(s)];
        let mut list = lock(&shard.trim);
        if !list.contains(&s) {
            list.push(s);
            sm.hidden.insert(s);
            let keys = node.lock_db(node.shard_of_slot(s)).slot_len(s);
            sm.trim.started.fetch_add(1, Ordering::Relaxed);
            sm.trim.job_keys.fetch_add(keys as u64, Ordering::Relaxed);
        }
        shard.trimming.store(true, Ordering::Release);
    }
}

/// A trim job (a slot) ended; the key counts restart once none is left.
fn trim_job_done(node: &Node) {
    let t = &node.slot_migration.trim;
    t.completed.fetch_add(1, Ordering::Relaxed);
    if node.shards.iter().all(|s| !s.trimming.load(Ordering::Acquire)) {
        t.job_keys.store(0, Ordering::Relaxed);
        t.trimmed.store(0, Ordering::Relaxed);
    }
}

/// Batches of `shard`'s trim, within its share of the time (see `crate::pace`).
pub fn trim_step(node: &Node, shard: crate::node::ShardId, pace: &mut Pace) -> Step {
    let sh = &node.shards[shard];
    if !sh.trimming.load(Ordering::Acquire) {
        return Step::Idle;
    }
    let until = match pace.slice() {
        Ok(until) => until,
        Err(next) => return Step::At(next),
    };
    let start = Instant::now();
    let mut list = lock(&sh.trim);
    // Batches (a small slot is one) until the slice is over.
    while let Some(&slot) = list.last() {
        if delete_batch(node, shard, slot) == 0 {
            list.pop();
            node.slot_migration.hidden.remove(slot);
            sh.trimming.store(!list.is_empty(), Ordering::Release);
            trim_job_done(node);
        }
        if Instant::now() >= until {
            break;
        }
    }
    sh.trimming.store(!list.is_empty(), Ordering::Release);
    pace.done(start, !list.is_empty())
}

/// Trims now, whole, each of `slots` still queued, and forgets that they were lost
/// (the bus gives them back, before the view saying so is published).
pub fn trim_now(node: &Node, slots: impl Iterator<Item = u16>) {
    let sm = &node.slot_migration;
    if !sm.has_lost() {
        return;
    }
    for s in slots {
        if !sm.slot_lost(s) {
            continue;
        }
        sm.lost.remove(s);
        let shard = node.shard_of_slot(s);
        let sh = &node.shards[shard];
        if !sh.trimming.load(Ordering::Acquire) {
            continue;
        }
        let mut list = lock(&sh.trim);
        if let Some(i) = list.iter().position(|&x| x == s) {
            while delete_batch(node, shard, s) != 0 {}
            list.swap_remove(i);
            sm.hidden.remove(s);
            sh.trimming.store(!list.is_empty(), Ordering::Release);
            trim_job_done(node);
        }
        sh.trimming.store(!list.is_empty(), Ordering::Release);
    }
}

/// Deletes up to [`TRIM_BATCH`] keys of `slot` with one DEL; returns how many keys
/// the slot still has.
fn delete_batch(node: &Node, shard: crate::node::ShardId, slot: u16) -> usize {
    let mut ks = MultiDb::lock(node, &[shard]);
    let db = &mut ks.guards[0].1;
    let before = db.slot_len(slot);
    if before == 0 {
        return 0;
    }
    let keys = db.slot_keys_any(slot, TRIM_BATCH);
    let mut words: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
    words.push(b"DEL");
    words.extend(keys.iter().map(|k| k.as_slice()));
    let cfg = node.exec_cfg.read().unwrap_or_else(|p| p.into_inner());
    run_internal(&mut ks, &words, &cfg, crate::node::unix_ms());
    drop(cfg);
    let db = &mut ks.guards[0].1;
    let left = db.slot_len(slot);
    node.slot_migration.trim.trimmed.fetch_add(before.saturating_sub(left) as u64, Ordering::Relaxed);
    if left >= before {
        // Nothing went (keys that expired meanwhile are not DEL's to delete): drop the
        // rest silently rather than loop.
        db.clear_slot(slot);
        return 0;
    }
    left
}
