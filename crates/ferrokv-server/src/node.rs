//! State shared by the shards of one node: immutable layout (slot → shard), each
//! shard's keyspace lock and mailbox, configuration, counters and the client registry.
//!
//! A shard's [`Db`] sits behind a mutex that only its own thread takes on the request
//! path (uncontended: a couple of atomic operations). Other threads take it only for
//! commands that must be atomic across shards (MSET over several shards, EXEC, KEYS,
//! FLUSHALL...): they lock every shard involved in ascending shard order, run the
//! command, and unlock, so no client sees half of it. Ordered locking and the rule that
//! the request path never holds its own lock while taking another make this
//! deadlock-free.

use crate::config::Config;
use crate::msg::Msg;
use ferrokv_commands::{CommandSpec, ExecConfig};
use ferrokv_runtime::Mailbox;
use ferrokv_store::{Db, SLOTS};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

pub type ShardId = usize;

/// The shard that owns `slot` at start-up among `threads` (contiguous ranges). The
/// cluster bus advertises the same table (`core-ports`), built before the node.
pub fn initial_shard_of_slot(slot: u16, threads: usize) -> ShardId {
    slot as usize * threads / SLOTS
}
/// The most databases a node keeps (a database never used costs a few bytes, one
/// used ~0.5 MB of slot headers per shard).
pub const MAX_DATABASES: u64 = 1 << 16;

pub struct ShardShared {
    pub db: Mutex<Db>,
    /// Bytes of the keyspace's record chunks no key uses (`Db::record_slack`): left out
    /// of `maxmemory` (see `crate::maxmemory`).
    pub record_slack: std::sync::Arc<AtomicU64>,
    pub mailbox: Mailbox<Msg>,
    pub connected_clients: AtomicU64,
    pub commands_processed: AtomicU64,
    pub expired_keys: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    /// Keys and keys with a TTL, published by whoever last changed this keyspace
    /// (all databases).
    pub keys: AtomicU64,
    pub expires: AtomicU64,
    /// The same per database (INFO keyspace), once a database other than 0 was used;
    /// before, database 0's are `keys` and `expires`.
    pub db_counts: Box<[(AtomicU64, AtomicU64)]>,
    /// A database other than 0 was used on this shard (then `db_counts` is kept).
    pub multi_db: AtomicBool,
    /// Per database: the active expiry cycle's TTL estimate (ms), INFO keyspace's
    /// `avg_ttl`, published every tick.
    pub avg_ttl: Box<[AtomicU64]>,
    /// Waiters on this shard's keys. Lock order: this shard's `db` first.
    pub waiters: Mutex<crate::blocking::Waiters>,
    /// Connections of this shard blocked in a command.
    pub blocked_clients: AtomicU64,
    /// Connections of this shard blocked with a timeout.
    pub timeout_clients: AtomicU64,
    /// Changes made by commands run on this shard (Redis's `server.dirty`; only this
    /// shard's thread adds to it).
    pub dirty: AtomicU64,
    /// Per command id (`ferrokv_commands::table::CommandId`): INFO commandstats.
    pub cmdstats: Box<[CmdStat]>,
    /// Error replies by error code (the first word): INFO errorstats.
    pub errorstats: Mutex<BTreeMap<String, u64>>,
    /// This shard's connections' subscriptions (see `crate::pubsub`).
    pub pubsub: crate::pubsub::PubSubShared,
    /// Slots this node lost whose keys are still to be deleted, a batch per loop
    /// iteration (`slot_migration::trim_step`). Lock order: this before any `db`.
    pub trim: Mutex<Vec<u16>>,
    /// `trim` is not empty (checked every iteration without the lock).
    pub trimming: std::sync::atomic::AtomicBool,
    /// CLUSTER SLOT-STATS counters of the commands this shard ran.
    pub slot_stats: crate::slot_stats::SlotStats,
    /// Its connections' memory and evictions (see `crate::client_mem`).
    pub clients: crate::client_mem::ShardClients,
    /// Where this shard's traffic went (INFO shards): see [`Routing`].
    pub routing: Routing,
    /// The load this shard's keyspace carries (the hot-slot balancer, INFO shards).
    pub load: crate::balance::Load,
    /// Slots handed to this shard and away from it (INFO shards).
    pub handoffs_in: AtomicU64,
    pub handoffs_out: AtomicU64,
    /// Keys and (key, client) entries in this keyspace's tracking table, published by
    /// whoever last changed it (INFO's tracking_total_keys/items).
    pub tracking_keys: AtomicU64,
    pub tracking_items: AtomicU64,
    /// Compaction of this shard's records (INFO's `active_defrag_*`).
    pub defrag: crate::defrag::DefragStats,
}

/// Routing counters of one shard (INFO shards), written by its own thread only: they
/// show whether clients reach the core that owns their keys (direct-to-core routing)
/// or pay a hop.
#[derive(Default)]
pub struct Routing {
    /// Data commands of this shard's connections run here, their keys being here.
    pub local: AtomicU64,
    /// Data commands of this shard's connections sent to the shard owning their keys.
    pub forwarded: AtomicU64,
    /// Data commands other shards forwarded here and this shard ran.
    pub received: AtomicU64,
    /// Data commands of this shard's connections run here under the owning shard's
    /// lock (`shard-hop lock`).
    pub locked: AtomicU64,
    /// Data commands of this shard's connections whose keys span shards (run here
    /// under several shards' locks).
    pub multi: AtomicU64,
    /// Connections accepted on this shard's own port (`core-ports`) now open.
    pub core_port_clients: AtomicU64,
    /// Commands read from those connections.
    pub core_port_commands: AtomicU64,
}

/// One command's statistics on one shard. Only that shard's thread writes them.
#[derive(Default)]
pub struct CmdStat {
    pub calls: AtomicU64,
    /// Time spent executing, in [`cycles`] units.
    pub cycles: AtomicU64,
    /// Refused before running (arity, NOAUTH, a cluster redirect...).
    pub rejected: AtomicU64,
    /// Ran and replied an error.
    pub failed: AtomicU64,
}

impl CmdStat {
    pub fn reset(&self) {
        for c in [&self.calls, &self.cycles, &self.rejected, &self.failed] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// A cheap clock for timing commands: the CPU's time-stamp counter where there is one
/// (a few nanoseconds a read, against ~20 for the system clock), else nanoseconds.
#[inline]
pub fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// [`cycles`] per microsecond, measured once against the system clock.
pub fn cycles_per_us() -> f64 {
    static RATE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        let (t0, c0) = (Instant::now(), cycles());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (dt, dc) = (t0.elapsed().as_secs_f64() * 1e6, cycles().wrapping_sub(c0));
        if dt > 0.0 && dc > 0 {
            dc as f64 / dt
        } else {
            1000.0
        }
    })
}

impl ShardShared {
    /// Publishes the keyspace's counts. The single-database case stores two numbers;
    /// once other databases were used, every database's.
    #[inline]
    pub fn publish(&self, db: &Db) {
        if !db.multi_database() {
            self.keys.store(db.len() as u64, Ordering::Relaxed);
            self.expires.store(db.expire_keys_count() as u64, Ordering::Relaxed);
            return;
        }
        self.publish_each(db);
    }

    #[inline(never)]
    fn publish_each(&self, db: &Db) {
        self.multi_db.store(true, Ordering::Relaxed);
        let (mut keys, mut expires) = (0, 0);
        for (i, (k, e)) in self.db_counts.iter().enumerate() {
            let (dk, de) = (db.database_len(i) as u64, db.database_expires(i) as u64);
            k.store(dk, Ordering::Relaxed);
            e.store(de, Ordering::Relaxed);
            keys += dk;
            expires += de;
        }
        self.keys.store(keys, Ordering::Relaxed);
        self.expires.store(expires, Ordering::Relaxed);
    }

    /// Keys and keys with a TTL of database `n` on this shard, as last published.
    pub fn counts_of(&self, n: usize) -> (u64, u64) {
        if !self.multi_db.load(Ordering::Relaxed) {
            if n == 0 {
                return (self.keys.load(Ordering::Relaxed), self.expires.load(Ordering::Relaxed));
            }
            return (0, 0);
        }
        self.db_counts.get(n).map_or((0, 0), |(k, e)| (k.load(Ordering::Relaxed), e.load(Ordering::Relaxed)))
    }
}

pub struct Node {
    pub shards: Box<[ShardShared]>,
    /// Slot → shard. Changed only by a slot handoff (`crate::balance`), which holds both
    /// shards' keyspace locks while it stores: whoever locks a shard's keyspace and then
    /// finds the slot still mapped to it knows the slot's keys are there (see
    /// [`Node::lock_db_of_slot`]). A relaxed load elsewhere is a routing hint only.
    slot_shard: Box<[AtomicU16]>,
    /// Bumped by every slot handoff: a connection whose forwarded commands were routed
    /// before a handoff waits for them before routing more (see `dispatch::route`).
    pub route_epoch: AtomicU64,
    /// A handoff changed the slot → shard table since the bus last advertised it.
    pub cores_changed: AtomicBool,
    /// Held by a slot handoff throughout (one at a time, see `set_shard_of_slot`).
    pub handoff_lock: Mutex<()>,
    pub config: RwLock<Config>,
    /// Bumped on every CONFIG SET so shards refresh their copies.
    pub config_version: AtomicU64,
    pub exec_cfg: RwLock<ExecConfig>,
    pub next_client_id: AtomicU64,
    pub shutdown: AtomicBool,
    pub started: Instant,
    pub run_id: String,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    /// Keys evicted by `maxmemory` (INFO's `evicted_keys`), added by whichever shard evicted.
    pub evicted_keys: AtomicU64,
    pub clients: Mutex<BTreeMap<u64, Arc<ClientMeta>>>,
    pub stat_reset_commands: AtomicU64,
    /// Ids of multi-shard units in the effects stream (see `ferrokv_store::effects`).
    pub next_unit_id: AtomicU64,
    /// Cluster mode: the published view. None when `cluster-enabled no`.
    pub cluster: Option<crate::cluster::ClusterShared>,
    /// The cluster state machine until shard 0 takes it to run the bus.
    pub cluster_state: Mutex<Option<ferrokv_cluster::ClusterState>>,
    /// dump.rdb: saves in progress, their outcome, LASTSAVE.
    pub persist: crate::persist::Persist,
    /// The append-only file.
    pub aof: crate::aof::Aof,
    /// Replication: the backlog, this node's replicas, its master.
    pub repl: crate::repl::Repl,
    /// A shutdown under way (SHUTDOWN waiting for replicas, a signal not acted on).
    pub shutdown_state: crate::shutdown::State,
    /// The active expiry cycle runs (DEBUG SET-ACTIVE-EXPIRE).
    pub active_expire: AtomicBool,
    /// MIGRATE's thread and its cached connections to targets.
    pub migrate: crate::migrate::Migrator,
    /// Whole-slot migration: this node's export as a source, import tasks as a target.
    pub slot_migration: crate::slot_migration::SlotMigration,
    /// Client-side caching: tracking clients and the BCAST prefixes.
    pub tracking: crate::tracking::TrackingShared,
}

/// What CLIENT LIST/INFO/KILL need of a connection, readable from any shard. The
/// owning shard updates the atomics as commands run; everything here is cheap to write.
pub struct ClientMeta {
    pub id: u64,
    pub shard: ShardId,
    pub token: u64,
    pub fd: i32,
    pub addr: String,
    pub laddr: String,
    pub created: Instant,
    pub last_ms: AtomicU64,
    pub name: Mutex<Option<Vec<u8>>>,
    /// The last command run, for CLIENT LIST's `cmd=` (null: none yet).
    pub last_cmd: AtomicPtr<CommandSpec>,
    pub resp: AtomicU32,
    pub multi: AtomicI64,
    pub qbuf: AtomicU64,
    pub omem: AtomicU64,
    /// A replica of this node (after PSYNC/SYNC): CLIENT LIST's `S` flag and TYPE.
    pub replica: AtomicBool,
    /// Channels, patterns and shard channels subscribed to (CLIENT LIST's sub, psub,
    /// ssub).
    pub pubsub: [AtomicU32; 3],
    /// Memory figures and CLIENT NO-EVICT (see `crate::client_mem`).
    pub mem: crate::client_mem::ClientMemStats,
    /// CLIENT TRACKING as CLIENT LIST shows it: `crate::tracking::META_*` flags and the
    /// client invalidations are redirected to (`redir=`).
    pub tracking: AtomicU32,
    pub tracking_redir: AtomicU64,
    /// The selected database (CLIENT LIST's `db=`).
    pub db: AtomicU32,
}

impl ClientMeta {
    /// A new client's figures: nothing run, subscribed or tracked yet, RESP2, db 0.
    pub fn new(id: u64, shard: ShardId, token: u64, fd: i32, addr: String, laddr: String, now_ms: u64) -> ClientMeta {
        ClientMeta {
            id,
            shard,
            token,
            fd,
            addr,
            laddr,
            created: Instant::now(),
            last_ms: AtomicU64::new(now_ms),
            name: Mutex::new(None),
            last_cmd: AtomicPtr::new(std::ptr::null_mut()),
            resp: AtomicU32::new(2),
            multi: AtomicI64::new(-1),
            qbuf: AtomicU64::new(0),
            omem: AtomicU64::new(0),
            replica: AtomicBool::new(false),
            pubsub: Default::default(),
            mem: Default::default(),
            tracking: AtomicU32::new(0),
            tracking_redir: AtomicU64::new(0),
            db: AtomicU32::new(0),
        }
    }

    pub fn set_last_cmd(&self, spec: &'static CommandSpec) {
        self.last_cmd.store(spec as *const CommandSpec as *mut CommandSpec, Ordering::Relaxed);
    }

    pub fn last_cmd_name(&self) -> &'static str {
        let p = self.last_cmd.load(Ordering::Relaxed);
        // SAFETY: only ever set from `&'static CommandSpec`.
        if p.is_null() {
            "NULL"
        } else {
            unsafe { (*p).name }
        }
    }
}

/// Adds to a counter that only its own shard writes (a plain store, no locked RMW).
#[inline]
pub fn bump(c: &AtomicU64) {
    add(c, 1);
}

/// [`bump`] by `n`.
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Redis counts at most this many distinct error codes in INFO errorstats.
const ERRORSTATS_MAX: usize = 128;

impl ShardShared {
    /// Counts an error reply (with or without its `-`) under its code, the first word,
    /// as Redis's `afterErrorReply` does.
    pub fn count_error(&self, reply: &[u8]) {
        let text = reply.strip_prefix(b"-").unwrap_or(reply);
        let end = text.iter().position(|&b| b == b' ' || b == b'\r').unwrap_or(text.len());
        let code = String::from_utf8_lossy(&text[..end]);
        let mut stats = self.errorstats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = stats.get_mut(code.as_ref()) {
            *n += 1;
        } else if stats.len() < ERRORSTATS_MAX {
            stats.insert(code.into_owned(), 1);
        }
    }
}

impl Node {
    /// A node lives as long as the process: shards and the bus hold a plain
    /// `&'static` to it, so the request path pays no reference counting (an `Arc`
    /// clone and drop per command was two locked instructions, ~2% of CPU at
    /// pipeline 16).
    pub fn new(cfg: Config, threads: usize, cluster: Option<ferrokv_cluster::ClusterState>) -> &'static Node {
        // Cluster mode serves database 0 only, as Redis.
        let databases = if cluster.is_some() { 1 } else { cfg.databases.clamp(1, MAX_DATABASES) as usize };
        let shards: Box<[ShardShared]> = (0..threads)
            .map(|_| {
                let mut db = Db::new();
                db.set_databases(databases);
                ShardShared {
                    record_slack: db.record_slack(),
                    db: Mutex::new(db),
                    db_counts: (0..databases).map(|_| Default::default()).collect(),
                    avg_ttl: (0..databases).map(|_| Default::default()).collect(),
                    multi_db: AtomicBool::new(false),
                    // A lane per shard, and one for threads that are not shards.
                    mailbox: Mailbox::new(threads + 1),
                    connected_clients: AtomicU64::new(0),
                    commands_processed: AtomicU64::new(0),
                    expired_keys: AtomicU64::new(0),
                    keyspace_hits: AtomicU64::new(0),
                    keyspace_misses: AtomicU64::new(0),
                    keys: AtomicU64::new(0),
                    expires: AtomicU64::new(0),
                    waiters: Mutex::new(Default::default()),
                    blocked_clients: AtomicU64::new(0),
                    timeout_clients: AtomicU64::new(0),
                    dirty: AtomicU64::new(0),
                    cmdstats: (0..ferrokv_commands::table::id_count()).map(|_| CmdStat::default()).collect(),
                    errorstats: Mutex::new(BTreeMap::new()),
                    pubsub: Default::default(),
                    trim: Mutex::new(Vec::new()),
                    trimming: Default::default(),
                    slot_stats: Default::default(),
                    routing: Default::default(),
                    load: Default::default(),
                    handoffs_in: AtomicU64::new(0),
                    handoffs_out: AtomicU64::new(0),
                    clients: Default::default(),
                    tracking_keys: AtomicU64::new(0),
                    tracking_items: AtomicU64::new(0),
                    defrag: Default::default(),
                }
            })
            .collect();
        // A table so slots can move later: in cluster mode the slots the node serves
        // (from nodes.conf) spread over its cores, the rest in contiguous ranges.
        let table: Vec<ShardId> = match &cluster {
            Some(st) => crate::balance::initial_table(&crate::balance::served_slots(&st.view()), threads),
            None => (0..SLOTS).map(|s| initial_shard_of_slot(s as u16, threads)).collect(),
        };
        let spread = table.iter().enumerate().any(|(s, &c)| c != initial_shard_of_slot(s as u16, threads));
        let slot_shard = table.iter().map(|&c| AtomicU16::new(c as u16)).collect();
        let exec = cfg.exec_config();
        let node: &'static Node = Box::leak(Box::new(Node {
            shards,
            slot_shard,
            route_epoch: AtomicU64::new(0),
            // The bus was configured with contiguous ranges (it is built first).
            cores_changed: AtomicBool::new(spread),
            handoff_lock: Mutex::new(()),
            config: RwLock::new(cfg),
            config_version: AtomicU64::new(0),
            exec_cfg: RwLock::new(exec),
            next_client_id: AtomicU64::new(1),
            shutdown: AtomicBool::new(false),
            started: Instant::now(),
            run_id: random_hex(40),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            evicted_keys: AtomicU64::new(0),
            clients: Mutex::new(BTreeMap::new()),
            stat_reset_commands: AtomicU64::new(0),
            next_unit_id: AtomicU64::new(1),
            cluster: cluster.as_ref().map(|st| crate::cluster::ClusterShared::new(Arc::new(st.view()))),
            cluster_state: Mutex::new(cluster),
            persist: crate::persist::Persist::new(),
            aof: crate::aof::Aof::default(),
            repl: crate::repl::Repl::new(threads),
            shutdown_state: Default::default(),
            active_expire: AtomicBool::new(true),
            migrate: Default::default(),
            slot_migration: Default::default(),
            tracking: Default::default(),
        }));
        install_script_hooks(node);
        if node.cluster.is_some() {
            for s in 0..threads {
                node.lock_db(s).set_hidden_slots(node.slot_migration.hidden.clone());
            }
        }
        node
    }

    #[inline]
    pub fn shard_of_slot(&self, slot: u16) -> ShardId {
        self.slot_shard[slot as usize].load(Ordering::Relaxed) as ShardId
    }

    /// Moves `slot` to `shard` in the table; only the handoff calls it, holding both
    /// shards' keyspace locks.
    ///
    /// `route_epoch` is a sequence lock around the store (odd while it happens; the
    /// handoffs are serialised by `handoff_lock`): [`Node::routed`] reads the table
    /// and the epoch it belongs to consistently.
    pub(crate) fn set_shard_of_slot(&self, slot: u16, shard: ShardId) {
        self.route_epoch.fetch_add(1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        self.slot_shard[slot as usize].store(shard as u16, Ordering::Relaxed);
        self.route_epoch.fetch_add(1, Ordering::Release);
        self.cores_changed.store(true, Ordering::Release);
    }

    /// Runs `route` (which reads the slot → shard table) and returns its result with
    /// the handoff epoch the table was at: no handoff changed the table while `route`
    /// read it. A connection compares it with the epoch of its forwarded commands.
    #[inline]
    pub fn routed<R>(&self, mut route: impl FnMut() -> R) -> (u64, R) {
        loop {
            let e1 = self.route_epoch.load(Ordering::Acquire);
            if e1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let r = route();
            std::sync::atomic::fence(Ordering::Acquire);
            if self.route_epoch.load(Ordering::Relaxed) == e1 {
                return (e1, r);
            }
        }
    }

    /// Locks the keyspace that owns `slot`: looked up, locked, and looked up again
    /// under the lock (a handoff may have moved the slot in between; it cannot while
    /// the lock is held).
    pub fn lock_db_of_slot(&self, slot: u16) -> (ShardId, DbGuard<'_>) {
        loop {
            let s = self.shard_of_slot(slot);
            let g = self.lock_db(s);
            if self.shard_of_slot(slot) == s {
                return (s, g);
            }
        }
    }

    /// Whether every key at `idx` of `args` still lives on a shard of `shards` (checked
    /// under those shards' locks after routing by a table read before them).
    pub fn keys_still_on(&self, args: &ferrokv_resp::Args, idx: &[usize], shards: &[ShardId]) -> bool {
        self.shard_count() == 1 || idx.iter().all(|&i| shards.contains(&self.shard_of_key(args.get(i))))
    }

    /// Whether every key of the blocked command `w` (a move's destination included)
    /// lives on `shard`.
    pub fn waiter_keys_on(&self, w: &crate::blocking::Waiter, shard: ShardId) -> bool {
        let args = w.args.args();
        let mut idx = Vec::new();
        w.spec.key_indexes(&args, &mut idx);
        idx.iter().all(|&i| self.shard_of_key(args.get(i)) == shard)
    }

    /// [`keys_still_on`](Self::keys_still_on) for keys whose slots are known.
    #[inline]
    pub fn slots_still_on(&self, slots: &[u16], shards: &[ShardId]) -> bool {
        self.shard_count() == 1 || slots.iter().all(|&s| shards.contains(&self.shard_of_slot(s)))
    }

    #[inline]
    pub fn shard_of_key(&self, key: &[u8]) -> ShardId {
        self.shard_of_slot(ferrokv_store::key_slot(key))
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The mailbox lane of senders that are not shards (the migration thread, a
    /// replica's link).
    pub fn outside_lane(&self) -> usize {
        self.shards.len()
    }

    /// A ring for a thread that is no shard, only to wake sleeping shards (MSG_RING);
    /// None (logged) when the kernel gives none: the messages then wait for the
    /// shard's next tick.
    pub fn waker_ring(who: &str) -> Option<ferrokv_runtime::Ring> {
        ferrokv_runtime::Ring::new(ferrokv_runtime::RingConfig {
            entries: 16,
            cq_entries: 64,
            batch: 1,
            min_wait: std::time::Duration::ZERO,
        })
        .map_err(|e| tracing::warn!("{who}: no ring to wake the shards ({e}); messages wait for their tick"))
        .ok()
    }

    /// Hands `batch` to shard `dest` on the outside lane, from a thread that is no
    /// shard; wakes the shard through `waker` when it sleeps.
    pub fn send_from_outside(&self, dest: ShardId, mut batch: Vec<Msg>, waker: &mut Option<ferrokv_runtime::Ring>) {
        let Some(fd) = self.shards[dest].mailbox.send(self.outside_lane(), &mut batch) else { return };
        let Some(ring) = waker.as_mut() else { return };
        let sqe = ferrokv_runtime::MailWaker::entry(fd, ferrokv_runtime::token::encode(crate::shard::K_WAKE, 0));
        // SAFETY: a MSG_RING entry points to no memory; the fd is a live shard ring.
        if unsafe { ring.push(&sqe) }.is_ok() {
            let _ = ring.enter(false, std::time::Duration::ZERO);
            for _ in ring.completions() {}
        }
    }

    pub fn lock_waiters(&self, shard: ShardId) -> MutexGuard<'_, crate::blocking::Waiters> {
        self.shards[shard].waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks `shard`'s keyspace. Taking a lock this thread already holds would wait
    /// forever (see the lock rule at [`crate::dispatch::Held`]); it is a bug, caught
    /// here as a panic naming the shard instead of a silent hang.
    pub fn lock_db(&self, shard: ShardId) -> DbGuard<'_> {
        // Shards 0..64 are tracked (one bit each); beyond, there is no check rather
        // than a bit shared with a lower shard, which would report a false second lock.
        let bit = if shard < 64 { 1u64 << shard } else { 0 };
        let held = HELD_DBS.with(|h| h.get());
        if held & bit != 0 {
            panic!("shard {shard}'s keyspace lock taken twice by one thread");
        }
        let guard = self.shards[shard].db.lock().unwrap_or_else(|p| p.into_inner());
        HELD_DBS.with(|h| h.set(held | bit));
        DbGuard { guard, bit }
    }

    /// Takes `shard`'s keyspace lock if it is free (or this thread holds it: None).
    pub fn try_lock_db(&self, shard: ShardId) -> Option<DbGuard<'_>> {
        let bit = if shard < 64 { 1u64 << shard } else { 0 };
        let held = HELD_DBS.with(|h| h.get());
        if held & bit != 0 {
            return None;
        }
        let guard = match self.shards[shard].db.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        HELD_DBS.with(|h| h.set(held | bit));
        Some(DbGuard { guard, bit })
    }

    /// Locks the given shards (sorted, deduplicated) in ascending order.
    pub fn lock_dbs(&self, shards: &[ShardId]) -> Vec<(ShardId, DbGuard<'_>)> {
        debug_assert!(shards.windows(2).all(|w| w[0] < w[1]));
        shards.iter().map(|&s| (s, self.lock_db(s))).collect()
    }

    pub fn config(&self) -> std::sync::RwLockReadGuard<'_, Config> {
        self.config.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn exec_config(&self) -> ExecConfig {
        self.exec_cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }

    pub fn connected_clients(&self) -> u64 {
        self.shards.iter().map(|s| s.connected_clients.load(Ordering::Relaxed)).sum()
    }

    pub fn register_client(&self, meta: Arc<ClientMeta>) {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).insert(meta.id, meta);
    }

    pub fn unregister_client(&self, id: u64) {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    pub fn client_list(&self) -> Vec<Arc<ClientMeta>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
}

thread_local! {
    /// The shards (below 64) whose keyspace lock this thread holds.
    static HELD_DBS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A held keyspace lock (see [`Node::lock_db`]).
pub struct DbGuard<'a> {
    guard: MutexGuard<'a, Db>,
    bit: u64,
}

impl Drop for DbGuard<'_> {
    fn drop(&mut self) {
        // Whoever takes the lock next finds database 0 selected unless it selects
        // another (commands select their client's).
        self.guard.select(0);
        HELD_DBS.with(|h| h.set(h.get() & !self.bit));
    }
}

impl std::ops::Deref for DbGuard<'_> {
    type Target = Db;
    #[inline]
    fn deref(&self) -> &Db {
        &self.guard
    }
}

impl std::ops::DerefMut for DbGuard<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Db {
        &mut self.guard
    }
}

/// Locks `m`, also after a thread panicked holding it: the node's mutexes guard
/// bookkeeping that stays consistent at every await-free step, and a panic in a
/// command aborts the node anyway (see `dispatch::abort_after_panic`).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub fn unix_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Bytes from the kernel's random source (getrandom(2)), as Redis seeds its run ID and
/// node IDs from /dev/urandom. A failing source would make IDs guessable and, worse,
/// equal across nodes started together: start-up stops instead.
pub fn os_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: writes at most rest.len() bytes into rest.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            panic!("cannot read the kernel's random source: {e}");
        }
        filled += n as usize;
    }
}

pub fn os_random_u64() -> u64 {
    let mut b = [0u8; 8];
    os_random(&mut b);
    u64::from_le_bytes(b)
}

/// `n` random hex digits (the run ID).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n.div_ceil(2)];
    os_random(&mut bytes);
    let mut s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(n);
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_second_lock_of_one_shard_panics_and_high_shards_share_no_bit() {
        let node = super::Node::new(crate::config::Config::default(), 65, None);
        {
            let _high = node.lock_db(64);
            let _low = node.lock_db(0);
        }
        let twice = std::panic::catch_unwind(|| {
            let _a = node.lock_db(3);
            let _b = node.lock_db(3);
        });
        assert!(twice.is_err());
    }

    #[test]
    fn run_ids_are_hex_and_differ() {
        let a = super::random_hex(40);
        let b = super::random_hex(40);
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}

/// Microseconds as [`cycles`] (statistics of commands timed with the system clock).
pub fn micros_to_cycles(us: u64) -> u64 {
    (us as f64 * cycles_per_us()) as u64
}

/// The node scripts ask about (the first one made in this process).
static SCRIPT_NODE: std::sync::OnceLock<&'static Node> = std::sync::OnceLock::new();

/// Tells scripting about this node: replica state, cluster slots, the log.
fn install_script_hooks(node: &'static Node) {
    if SCRIPT_NODE.set(node).is_err() {
        return;
    }
    ferrokv_commands::scripting::set_hooks(ferrokv_commands::scripting::Hooks {
        read_only_replica: || {
            SCRIPT_NODE.get().is_some_and(|n| n.repl.is_replica.load(Ordering::Relaxed) && n.config().replica_read_only)
        },
        too_few_replicas: || SCRIPT_NODE.get().is_some_and(|n| !crate::repl::master::enough_replicas(n)),
        slot_is_local: |slot| {
            let Some(cluster) = SCRIPT_NODE.get().and_then(|n| n.cluster.as_ref()) else { return true };
            let view = cluster.view();
            view.slot_owner_index(slot) == Some(view.myself)
        },
        log: |level, msg| match level {
            0 => tracing::debug!("{msg}"),
            1 | 2 => tracing::info!("{msg}"),
            _ => tracing::warn!("{msg}"),
        },
        over_maxmemory: || SCRIPT_NODE.get().is_some_and(|n| crate::maxmemory::node_over(n)),
        server_command: |cmd, args, out| match SCRIPT_NODE.get() {
            Some(n) => crate::cmds::from_script(n, cmd, args, out),
            None => false,
        },
        receivers: |shard, channel| {
            let space = if shard { crate::pubsub::Space::Shard } else { crate::pubsub::Space::Global };
            SCRIPT_NODE.get().map_or(0, |n| crate::pubsub::receivers(n, space, channel))
        },
        while_busy: crate::busy::serve,
    });
}
