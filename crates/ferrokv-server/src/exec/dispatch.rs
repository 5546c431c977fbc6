//! From parsed arguments to a reply: lookup, arity, auth, MULTI queueing, and routing
//! of data commands to the shard(s) that own their keys.
//!
//! Routing, per command:
//! - every key on this shard → run here, under this shard's (uncontended) lock;
//! - every key on one other shard → run here under that shard's lock (`shard-hop lock`,
//!   the default), or forward over the mailbox, reply slot reserved (blocking commands,
//!   scripts, a forwarded command of the connection still in flight, `shard-hop forward`);
//! - keys on several shards, or a command over the whole keyspace → wait until this
//!   connection has no forwarded command in flight (so its own commands keep their
//!   order), then lock the shards involved in ascending order and run it here.
//!
//! A connection's replies always leave in request order.

use crate::blocking::Waiter;
use crate::conn::{BlockState, Conn, QueuedCommand};
use crate::msg::{Forward, Msg};
use crate::node::{cycles, unix_ms, Node, ShardId};
use ferrokv_commands::exec::Caller;
use ferrokv_commands::table::{lookup_id, lookup_sub, sub_id, Blocked, CommandId, Flags, ServerCmd, Wakes};
use ferrokv_commands::{execute, CommandError, CommandSpec, Env, ExecConfig, Handler, Keyspace, Outcome, SingleDb};
use ferrokv_resp::{Args, Limits, Proto, ReplyBuf};
use ferrokv_store::effects::Records;
use ferrokv_store::Db;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub enum Flow {
    Done,
    /// Not run: retry once the connection has no forwarded command in flight.
    Stall,
}

pub struct ShardCore {
    pub node: &'static Node,
    pub id: ShardId,
    /// Messages for each shard, handed over once per loop iteration.
    pub outbox: Vec<Vec<Msg>>,
    /// This shard's connections that CLIENT KILL asked to close.
    pub local_kills: Vec<u64>,
    /// Connections holding a write until the write pause ends (tokens).
    pub paused: Vec<u64>,
    pub exec_cfg: ExecConfig,
    cfg_version: u64,
    pub query_buffer_limit: u64,
    max_bulk_len: usize,
    pub requirepass: String,
    /// `min-replicas-to-write`, `replica-read-only`, `replica-serve-stale-data`.
    min_replicas_to_write: u64,
    replica_read_only: bool,
    replica_serve_stale_data: bool,
    /// `cluster-slot-stats-enabled` (in cluster mode).
    slot_stats: bool,
    /// `shard-hop lock`: a single-shard command whose keys live on another shard runs
    /// on this thread under that shard's lock instead of being forwarded.
    hop_lock: bool,
    /// `shard-balance`: the keyspace load is counted per slot for the balancer.
    balance: bool,
    /// The balancer's state (shard 0 runs it).
    pub balancer: crate::balance::Balancer,
    /// `CLUSTER SLOT-CORE` handoffs this shard's connections wait for (another handoff,
    /// a full sync or a snapshot held them off); retried every tick.
    pub slot_core_waits: Vec<crate::cluster::SlotCoreWait>,
    /// Shards (a bit each, below 64) whose keyspace this thread ran a command in under
    /// `shard-hop lock` since the last loop step: their effects logs are drained by this
    /// thread's step too (`aof::shard_step`).
    pub wrote_elsewhere: u64,
    /// Unix ms, read once per loop iteration: commands of one batch share a clock,
    /// as Redis caches its clock per command.
    pub now_ms: u64,
    key_idx: Vec<usize>,
    /// The slots of the keys at `key_idx`, when [`ShardCore::shards_of`] hashed them
    /// (a handoff moves slots, never keys between slots: re-checking where they live
    /// under the lock needs no second hash).
    key_slots: Vec<u16>,
    shard_set: Vec<ShardId>,
    /// This shard's copy of the cluster view and its version.
    view: Option<(u64, Arc<ferrokv_cluster::ClusterView>)>,
    /// Blocked connections whose timeout started: (deadline ms, token, seq).
    pub deadlines: std::collections::BinaryHeap<std::cmp::Reverse<(u64, u64, u64)>>,
    /// Every execution, for the request-path simulator's model check (None in the
    /// server: one branch per command).
    pub trace: Option<Trace>,
    /// Pub/sub messages for this shard's connections, in publication order; the event
    /// loop writes them once the read or message batch that published them is done.
    pub deliveries: Vec<crate::pubsub::Delivery>,
    /// PUBLISH / SPUBLISH records for this node's replicas (outside cluster mode),
    /// logged at the end of the loop iteration (`pubsub::log_for_replicas`).
    pub repl_publishes: Vec<ferrokv_store::effects::Unit>,
    /// Connections over their output limit: closed by the event loop, output dropped.
    pub overflowed: Vec<u64>,
    /// `client-output-buffer-limit normal` and `pubsub` (see `crate::client_mem`).
    pub output_limits: crate::client_mem::ClassLimits,
    /// `maxmemory-clients` in bytes (0: no client eviction).
    pub client_evict_limit: u64,
    /// `notify-keyspace-events` classes (0: off).
    pub notify: u16,
    /// The cluster view version this shard's shard-channel subscriptions were last
    /// checked against (see `pubsub::drop_moved_shard_channels`).
    pub shard_channels_view: u64,
    /// `maxmemory` and eviction (see `exec/maxmemory.rs`).
    pub mem: crate::maxmemory::Limit,
    /// LFU settings the keyspace has yet to take (see [`ShardCore::sync_db_settings`]).
    db_settings: Option<(u32, u32)>,
    /// Client tracking work of this shard (see `crate::tracking`).
    pub tracking: crate::tracking::CoreTracking,
    /// `tracking-table-max-keys` (0: no limit).
    pub tracking_max_keys: u64,
}

/// Where the simulator's model check hears of every execution (see [`TraceEvent`]).
pub type Trace = std::rc::Rc<std::cell::RefCell<Vec<TraceEvent>>>;

/// One step of the request path that changed or read the keyspace, in the order it
/// happened across all shards.
#[derive(Clone, Debug)]
pub enum TraceEvent {
    /// A data command ran through the execution function.
    Exec {
        /// The connection's home shard and token.
        client: (ShardId, u64),
        args: Vec<Vec<u8>>,
        reply: Vec<u8>,
        /// It found nothing and waits (a blocking command).
        waits: bool,
        /// Run by EXEC (may not block).
        in_exec: bool,
        /// A blocked client's command run again because a key it waits on changed.
        retry: bool,
        now_ms: u64,
    },
    /// The active expiry cycle deleted these keys.
    Expired { keys: Vec<Vec<u8>> },
    /// EXEC ran its queued commands (`ran`), or not because a watched key changed.
    Transaction { client: (ShardId, u64), ran: bool },
}

impl ShardCore {
    /// The environment of a command this shard runs for a client.
    fn env(&self, now_ms: u64, may_block: bool, caller: Caller) -> Env<'_> {
        Env { cfg: &self.exec_cfg, now_ms, may_block, track_keys: false, notify: self.notify, caller }
    }

    pub fn new(node: &'static Node, id: ShardId) -> Self {
        let n = node.shard_count();
        let mut core = ShardCore {
            node,
            id,
            outbox: (0..n).map(|_| Vec::new()).collect(),
            local_kills: Vec::new(),
            paused: Vec::new(),
            exec_cfg: ExecConfig::default(),
            cfg_version: u64::MAX,
            query_buffer_limit: 0,
            max_bulk_len: 0,
            requirepass: String::new(),
            min_replicas_to_write: 0,
            replica_read_only: true,
            replica_serve_stale_data: true,
            slot_stats: false,
            hop_lock: false,
            balance: false,
            balancer: Default::default(),
            slot_core_waits: Vec::new(),
            wrote_elsewhere: 0,
            now_ms: unix_ms(),
            key_idx: Vec::new(),
            key_slots: Vec::new(),
            shard_set: Vec::new(),
            view: None,
            deadlines: Default::default(),
            trace: None,
            deliveries: Vec::new(),
            repl_publishes: Vec::new(),
            overflowed: Vec::new(),
            output_limits: Default::default(),
            client_evict_limit: 0,
            shard_channels_view: 0,
            mem: crate::maxmemory::Limit::of_shard(id),
            db_settings: None,
            notify: 0,
            tracking: Default::default(),
            tracking_max_keys: 1_000_000,
        };
        core.refresh_config();
        core.sync_db_settings();
        core
    }

    /// Picks up CONFIG SET changes.
    pub fn refresh_config(&mut self) {
        let v = self.node.config_version.load(Ordering::Acquire);
        if v == self.cfg_version {
            return;
        }
        self.cfg_version = v;
        let cfg = self.node.config();
        self.query_buffer_limit = cfg.client_query_buffer_limit;
        self.max_bulk_len = cfg.proto_max_bulk_len as usize;
        self.requirepass = cfg.requirepass.clone();
        self.min_replicas_to_write = cfg.min_replicas_to_write;
        self.replica_read_only = cfg.replica_read_only;
        self.replica_serve_stale_data = cfg.replica_serve_stale_data;
        self.slot_stats = cfg.cluster_slot_stats_enabled && self.node.cluster.is_some();
        self.output_limits = crate::client_mem::ClassLimits::from_config(&cfg);
        self.client_evict_limit = crate::client_mem::eviction_limit(&cfg);
        self.hop_lock = cfg.shard_hop == "lock";
        self.balance = cfg.shard_balance && self.node.shard_count() > 1;
        ferrokv_commands::scripting::running::set_busy_threshold_ms(cfg.busy_reply_threshold);
        let m = &mut self.mem;
        m.maxmemory = cfg.maxmemory;
        m.policy = crate::maxmemory::Policy::parse(&cfg.maxmemory_policy);
        m.samples = cfg.maxmemory_samples as usize;
        m.tenacity = cfg.maxmemory_eviction_tenacity;
        m.lazy = cfg.lazyfree_lazy_eviction;
        m.replica_ignore = cfg.replica_ignore_maxmemory;
        let (log_factor, decay) = (cfg.lfu_log_factor as u32, cfg.lfu_decay_time as u32);
        self.notify = cfg.notify_flags();
        self.tracking_max_keys = cfg.tracking_table_max_keys;
        drop(cfg);
        self.exec_cfg = self.node.exec_config();
        // The keyspace's copy is set where no keyspace lock is held (a CONFIG SET run
        // by EXEC refreshes while EXEC holds every lock).
        self.db_settings = Some((log_factor, decay));
    }

    /// Brings this shard's keyspace in line with the policy after a configuration
    /// change: OBJECT FREQ/IDLETIME, the LFU counter's growth and decay, and whether
    /// small integers count as shared. Call with no keyspace lock held.
    pub fn sync_db_settings(&mut self) {
        let Some((log_factor, decay)) = self.db_settings.take() else { return };
        let policy = self.mem.policy;
        let mut db = self.node.lock_db(self.id);
        db.lfu_policy = policy.lfu();
        db.lfu_log_factor = log_factor;
        db.lfu_decay_time = decay;
        db.shared_integers = !(self.mem.maxmemory != 0 && policy.needs_access_data());
        drop(db);
        self.mem.resync(self.node);
    }

    /// Redis's maxmemory check in `processCommand`: evicts while the node is over the
    /// limit; if it stays over, refuses commands flagged `denyoom` (and an EXEC that
    /// queued one), and anything but EXEC/DISCARD/QUIT/RESET inside MULTI.
    fn oom_refusal(&mut self, c: &mut Conn, spec: &CommandSpec, args: &Args) -> Option<&'static str> {
        let node = self.node;
        let exempt = (self.mem.replica_ignore && node.repl.is_replica.load(Ordering::Relaxed))
            || node.repl.writes_paused(self.now_ms);
        let state = self.evict(exempt);
        // Readers of evicted keys hear of it before this command's reply, as in Redis.
        self.settle_evictions(Some(c));
        if state == crate::maxmemory::State::Ok {
            return None;
        }
        let is_exec = matches!(spec.handler, Handler::Server(ServerCmd::Exec));
        // A script's own flags decide for EVAL/FCALL (`denies_oom`).
        let denies = ferrokv_commands::scripting::denies_oom;
        let denyoom = denies(spec, args)
            || (is_exec && c.multi().is_some_and(|m| m.queued.iter().any(|q| denies(q.spec, &q.args.args()))));
        let in_multi = c.multi().is_some()
            && !matches!(
                spec.handler,
                Handler::Server(ServerCmd::Exec | ServerCmd::Discard | ServerCmd::Quit | ServerCmd::Reset)
            );
        (denyoom || in_multi).then_some(OOM)
    }

    /// The current cluster view (cluster mode only).
    pub fn cluster_view(&mut self) -> Arc<ferrokv_cluster::ClusterView> {
        let shared = self.node.cluster.as_ref().expect("cluster mode");
        let v = shared.version();
        match &self.view {
            Some((have, view)) if *have == v => view.clone(),
            _ => {
                let view = shared.view();
                self.view = Some((v, view.clone()));
                view
            }
        }
    }

    /// The current cluster view, borrowed (no reference count taken; cluster mode only).
    pub fn cluster_view_ref(&mut self) -> &ferrokv_cluster::ClusterView {
        let shared = self.node.cluster.as_ref().expect("cluster mode");
        let v = shared.version();
        if !matches!(&self.view, Some((have, _)) if *have == v) {
            self.view = Some((v, shared.view()));
        }
        match &self.view {
            Some((_, view)) => view,
            None => unreachable!("set above"),
        }
    }

    /// In cluster mode: the error or redirect a data command gets instead of running
    /// (Err), or the one slot of its keys (routing then needs no second hash; None: no
    /// keys).
    fn cluster_refusal(&mut self, c: &mut Conn, spec: &CommandSpec, args: &Args) -> Result<Option<u16>, String> {
        let slot = match crate::cluster::slot_of(spec, args, &mut self.key_idx)? {
            None => return Ok(None),
            Some(s) => s,
        };
        if let Some(m) = c.multi_mut() {
            // A transaction's keys must all be in one slot.
            match m.slot {
                Some(prev) if prev != slot => return Err(crate::cluster::CROSSSLOT.into()),
                _ => m.slot = Some(slot),
            }
        }
        self.cluster_route(c, spec, args, slot)?;
        Ok(Some(slot))
    }

    /// Records an execution for the simulator (no-op in the server).
    #[inline]
    pub fn traced(&self, client: (ShardId, u64), args: &Args, reply: &[u8], waits: bool, in_exec: bool, retry: bool) {
        if let Some(t) = &self.trace {
            t.borrow_mut().push(TraceEvent::Exec {
                client,
                args: args.iter().map(|a| a.to_vec()).collect(),
                reply: reply.to_vec(),
                waits,
                in_exec,
                retry,
                now_ms: self.now_ms,
            });
        }
    }

    pub fn limits(&self, authenticated: bool) -> Limits {
        Limits { max_bulk_len: self.max_bulk_len, authenticated }
    }

    pub fn send(&mut self, to: ShardId, m: Msg) {
        self.outbox[to].push(m);
    }

    pub fn outbox_empty(&self) -> bool {
        self.outbox.iter().all(|o| o.is_empty())
    }

    /// Prefetches the keyspace memory that the next pipelined commands at the start
    /// of `buf` will touch, for the keys this shard owns ([`Db::prefetch`]). Returns
    /// how many commands it looked at; below two there is nothing to overlap and
    /// nothing is fetched.
    pub fn prefetch(&mut self, buf: &[u8]) -> usize {
        let mut keys = [&b""[..]; 16];
        let n = ferrokv_resp::peek::second_args(buf, &mut keys);
        if n < 2 {
            return n;
        }
        let mut local = 0;
        for i in 0..n {
            if self.node.shard_count() == 1 || self.node.shard_of_key(keys[i]) == self.id {
                keys[local] = keys[i];
                local += 1;
            }
        }
        if local > 0 {
            self.node.lock_db(self.id).prefetch(&keys[..local]);
        }
        n
    }

    pub fn run_command(&mut self, c: &mut Conn, args: &Args) -> Flow {
        self.refresh_config();
        self.sync_db_settings();
        if self.node.tracking.on() {
            self.limit_tracking(Some(c));
        }
        let m = &mut c.reply_mode;
        m.silent = m.off || m.skip;
        let flow = self.run_command_checked(c, args);
        if !matches!(flow, Flow::Stall) {
            if c.tracking.is_some() {
                crate::tracking::after_command(c, args);
            }
            // Redis's resetClient: SKIP silences the command after CLIENT REPLY SKIP.
            let m = &mut c.reply_mode;
            m.skip = std::mem::take(&mut m.skip_next);
        }
        c.reply_mode.silent = c.reply_mode.off;
        flow
    }

    fn run_command_checked(&mut self, c: &mut Conn, args: &Args) -> Flow {
        let (spec, id) = match admit(self.node, c, args) {
            Ok(found) => found,
            Err(Refusal { spec: Some((spec, id)), error }) => return self.reject_spec(c, spec, id, error),
            Err(Refusal { spec: None, error }) => return self.reject(c, None, error),
        };
        // A manual failover holds client writes (queueing inside MULTI is not one); they
        // run when the pause ends, and then meet the new cluster view (a MOVED).
        if self.node.repl.writes_paused(self.now_ms)
            && (c.multi().is_none() || matches!(spec.handler, Handler::Server(ServerCmd::Exec)))
            && Self::writes(c, spec)
        {
            if !self.paused.contains(&c.token) {
                self.paused.push(c.token);
            }
            return Flow::Stall;
        }
        // A whole-slot migration's final step holds writes to its slots (same rule).
        if self.node.slot_migration.pausing() && Self::writes(c, spec) && self.slot_write_held(c, spec, args) {
            if !self.paused.contains(&c.token) {
                self.paused.push(c.token);
            }
            return Flow::Stall;
        }
        if ferrokv_commands::scripting::running::busy()
            && !spec.has(Flags::ALLOW_BUSY)
            && !Self::busy_exempt(spec, args)
        {
            let e = ferrokv_commands::scripting::running::busy_error();
            return self.reject_spec(c, spec, id, e.into());
        }
        let asking = std::mem::take(&mut c.asking);
        // Shard channels are routed like keys (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH).
        let routed = !matches!(spec.handler, Handler::Server(_))
            || matches!(spec.handler, Handler::Server(ServerCmd::Migrate))
            || (spec.has(Flags::PUBSUB) && spec.keys.first > 0);
        let mut slot = None;
        if routed && self.node.cluster.is_some() {
            c.asking = asking;
            let refused = self.cluster_refusal(c, spec, args);
            c.asking = false;
            match refused {
                Err(e) => return self.reject(c, Some(id), e),
                Ok(s) => slot = s,
            }
        }
        if self.mem.maybe_over() {
            if let Some(e) = self.oom_refusal(c, spec, args) {
                return self.reject_spec(c, spec, id, e.into());
            }
        }
        if self.node.persist.misconf.load(Ordering::Relaxed) && self.refused_by_disk_error(c, spec) {
            return self.reject_spec(c, spec, id, MISCONF.into());
        }
        if let Some(e) = self.replication_refusal(c, spec) {
            return self.reject_spec(c, spec, id, e.into());
        }
        if c.resp2_subscribed() {
            let cmd = match spec.handler {
                Handler::Server(cmd) => Some(cmd),
                _ => None,
            };
            if !crate::pubsub::allowed_while_subscribed(cmd) {
                return self.reject(c, Some(id), crate::pubsub::restricted_error(spec.name));
            }
        }
        let controls_multi = matches!(
            spec.handler,
            Handler::Server(
                ServerCmd::Exec
                    | ServerCmd::Discard
                    | ServerCmd::Multi
                    | ServerCmd::Watch
                    | ServerCmd::Quit
                    | ServerCmd::Reset
            )
        );
        if c.multi().is_some() && !controls_multi {
            if spec.has(Flags::NO_MULTI) {
                return self.reject(c, Some(id), "ERR Command not allowed inside a transaction");
            }
            // CLIENT LIST's cmd= names the last command queued, as Redis's lastcmd.
            c.meta.set_last_cmd(spec);
            if let Some(m) = c.multi_mut() {
                m.argv_mem += crate::client_mem::queued_len(args);
                m.queued.push(QueuedCommand { spec, id, args: args.to_owned_args() });
                let n = m.queued.len() as i64;
                c.meta.multi.store(n, Ordering::Relaxed);
            }
            c.reply(|r| r.simple("QUEUED"));
            return Flow::Done;
        }
        let now = self.now_ms;
        if c.last_ms != now {
            c.last_ms = now;
            c.meta.last_ms.store(now, Ordering::Relaxed);
        }
        c.meta.set_last_cmd(spec);
        crate::node::bump(&self.node.shards[self.id].commands_processed);
        if c.core_port {
            crate::node::bump(&self.node.shards[self.id].routing.core_port_commands);
        }
        match spec.handler {
            Handler::Server(cmd) => {
                let (mark, start) = (c.reply_mark(), cycles());
                let flow = crate::cmds::run(self, c, cmd, args, Held::Nothing);
                if !matches!(flow, Flow::Stall) {
                    self.record_server(id, start, c, mark);
                }
                flow
            }
            Handler::Data(_) | Handler::Blocking(..) => self.route(c, spec, id, args, slot),
        }
    }

    /// Whether this write (or EXEC's queued writes) touches a slot whose writes a
    /// whole-slot migration holds.
    fn slot_write_held(&self, c: &Conn, spec: &CommandSpec, args: &Args) -> bool {
        let sm = &self.node.slot_migration;
        if let Some(m) = c.multi().filter(|_| matches!(spec.handler, Handler::Server(ServerCmd::Exec))) {
            return m.queued.iter().any(|q| {
                let a = q.args.args();
                crate::slot_migration::write_slot(q.spec, &a).is_some_and(|s| sm.slot_paused(s))
            });
        }
        crate::slot_migration::write_slot(spec, args).is_some_and(|s| sm.slot_paused(s))
    }

    /// Commands other clients may still send while a script is busy, besides the
    /// `allow_busy` ones: SHUTDOWN NOSAVE (Redis's `processCommand` exception).
    fn busy_exempt(spec: &CommandSpec, args: &Args) -> bool {
        matches!(spec.handler, Handler::Server(ServerCmd::Shutdown))
            && args.len() == 2
            && args.get(1).eq_ignore_ascii_case(b"nosave")
    }

    /// Whether a failed BGSAVE bars this command (Redis's `writeCommandsDeniedByDiskError`
    /// check): writes, EXEC of a transaction with a write, and PING.
    fn refused_by_disk_error(&self, c: &Conn, spec: &CommandSpec) -> bool {
        matches!(spec.handler, Handler::Server(ServerCmd::Ping)) || Self::writes(c, spec)
    }

    /// A write command, or an EXEC with one queued (Redis's `is_write_command`).
    fn writes(c: &Conn, spec: &CommandSpec) -> bool {
        match spec.handler {
            Handler::Server(ServerCmd::Exec) => {
                c.multi().is_some_and(|m| m.queued.iter().any(|q| q.spec.has(Flags::WRITE)))
            }
            _ => spec.has(Flags::WRITE),
        }
    }

    /// Redis's replication refusals, in its order: NOREPLICAS on a master short of
    /// good replicas, READONLY on a read-only replica, MASTERDOWN on a replica whose
    /// link is down when it may not serve stale data.
    fn replication_refusal(&self, c: &Conn, spec: &CommandSpec) -> Option<&'static str> {
        let repl = &self.node.repl;
        if !repl.is_replica.load(Ordering::Relaxed) {
            if self.min_replicas_to_write > 0
                && Self::writes(c, spec)
                && !crate::repl::master::enough_replicas(self.node)
            {
                return Some("NOREPLICAS Not enough good replicas to write.");
            }
            return None;
        }
        if repl.loading.load(Ordering::Relaxed) && !spec.has(Flags::LOADING) {
            return Some("LOADING Redis is loading the dataset in memory");
        }
        if self.replica_read_only && Self::writes(c, spec) {
            return Some("READONLY You can't write against a read only replica.");
        }
        if !self.replica_serve_stale_data && !spec.has(Flags::STALE) && !crate::repl::replica::link_up(self.node) {
            return Some("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.");
        }
        None
    }

    /// Counts one execution of command `id` on this shard (INFO commandstats).
    #[inline]
    pub fn record(&self, id: CommandId, cycles: u64, failed: bool) {
        if let Some(st) = self.node.shards[self.id].cmdstats.get(id.0 as usize) {
            crate::node::bump(&st.calls);
            crate::node::add(&st.cycles, cycles);
            if failed {
                crate::node::bump(&st.failed);
            }
        }
    }

    /// After a server command that started at `start` and replied on `c` since `mark`:
    /// counts its execution and, when it replied an error, that error.
    pub fn record_server(&self, id: CommandId, start: u64, c: &Conn, mark: (usize, usize)) {
        let reply = c.replied_since(mark);
        let failed = reply.first() == Some(&b'-');
        if failed {
            self.node.shards[self.id].count_error(reply);
        }
        self.record(id, cycles().wrapping_sub(start), failed);
    }

    /// After a data command ran into `out` with outcome `o`: counts its execution and,
    /// when it failed, its error (by the exact word it replied).
    #[inline]
    pub fn record_data(&self, id: CommandId, cycles: u64, o: &Outcome, out: &ReplyBuf) {
        if o.dirty != 0 {
            crate::node::add(&self.node.shards[self.id].dirty, o.dirty);
        }
        if o.error.is_some() && !o.error_counted {
            self.node.shards[self.id].count_error(&out.buf[out.last_error_at..]);
        }
        self.record(id, cycles, o.error.is_some());
        for n in &o.nested {
            self.record_nested(n);
        }
    }

    /// CLUSTER SLOT-STATS's counters, when enabled.
    #[inline]
    fn record_slot(&self, spec: &CommandSpec, args: &Args, cycles: u64, reply_bytes: usize) {
        if self.slot_stats {
            self.node.shards[self.id].slot_stats.add(spec, args, cycles, reply_bytes);
        }
    }

    /// The load of `shard`'s keyspace (INFO shards; per slot for the balancer). Called
    /// under that keyspace's lock.
    #[inline]
    fn record_load(&self, shard: ShardId, spec: &CommandSpec, args: &Args, cycles: u64) {
        let slot = if self.balance { crate::slot_migration::write_slot(spec, args) } else { None };
        self.node.shards[shard].load.add(cycles, slot);
    }

    /// Counts a command a script ran (`redis.call`), as Redis's `call()` counts it.
    #[cold]
    fn record_nested(&self, n: &ferrokv_commands::scripting::call::NestedCall) {
        let shard = &self.node.shards[self.id];
        if let Some(e) = &n.error {
            shard.count_error(e.as_bytes());
        }
        let Some(st) = shard.cmdstats.get(n.id.0 as usize) else { return };
        if n.rejected {
            crate::node::bump(&st.rejected);
            return;
        }
        crate::node::bump(&st.calls);
        crate::node::add(&st.cycles, crate::node::micros_to_cycles(n.micros));
        if n.error.is_some() {
            crate::node::bump(&st.failed);
        }
    }

    /// As [`reject`](Self::reject); a refused EXEC also discards the transaction and
    /// says so (`EXECABORT Transaction discarded because of: ...`), as Redis does.
    fn reject_spec(&mut self, c: &mut Conn, spec: &CommandSpec, id: CommandId, e: CommandError) -> Flow {
        if !matches!(spec.handler, Handler::Server(ServerCmd::Exec)) {
            return self.reject(c, Some(id), e);
        }
        let msg = e.text();
        c.take_multi();
        c.meta.multi.store(-1, Ordering::Relaxed);
        self.release_watches(c);
        let why = msg.strip_prefix("ERR ").unwrap_or(msg);
        self.reject(c, Some(id), format!("EXECABORT Transaction discarded because of: {why}"))
    }

    /// Replies an error for a command that was refused before running (counted as a
    /// rejected call of `id`, when the command is known); inside MULTI that also dooms
    /// the transaction (EXECABORT), as in Redis.
    fn reject(&mut self, c: &mut Conn, id: Option<CommandId>, e: impl Into<CommandError>) -> Flow {
        reject_on(self.node, self.id, c, id, e.into());
        Flow::Done
    }

    /// The shards the keys of this invocation live on, sorted and deduplicated, into
    /// `self.shard_set`. Commands over the whole keyspace get every shard.
    fn shards_of(&mut self, spec: &CommandSpec, args: &Args) {
        self.shard_set.clear();
        self.key_idx.clear();
        if self.node.shard_count() == 1 {
            // One shard owns every slot: no need to hash the keys to route them.
            self.shard_set.push(0);
            return;
        }
        if spec.all_shards {
            self.shard_set.extend(0..self.node.shard_count());
            return;
        }
        spec.key_indexes(args, &mut self.key_idx);
        self.key_slots.clear();
        for &i in &self.key_idx {
            let slot = ferrokv_store::key_slot(args.get(i));
            self.key_slots.push(slot);
            let s = self.node.shard_of_slot(slot);
            if !self.shard_set.contains(&s) {
                self.shard_set.push(s);
            }
        }
        if self.shard_set.is_empty() {
            self.shard_set.push(self.id);
        }
        self.shard_set.sort_unstable();
    }

    /// [`shards_of`](Self::shards_of) for a command whose keys (at `key_idx`) the
    /// cluster check found all in `slot`.
    fn shard_of_known_slot(&mut self, slot: u16) {
        self.shard_set.clear();
        self.shard_set.push(self.node.shard_of_slot(slot));
        self.key_slots.clear();
        self.key_slots.push(slot);
    }

    /// Runs a data command here, under another shard's lock, or forwards it (see
    /// docs/architecture.md, "Request path"). `slot`: the one slot of its keys, when the
    /// cluster check hashed them already (`key_idx` then holds their positions).
    fn route(
        &mut self,
        c: &mut Conn,
        spec: &'static CommandSpec,
        id: CommandId,
        args: &Args,
        slot: Option<u16>,
    ) -> Flow {
        let h = spec.handler;
        // A script may reach any shard (it takes an undeclared key's shard as it goes):
        // it waits, as a multi-shard command does, until this connection's forwarded
        // commands have run, so it reads the client's own earlier writes.
        if spec.has(Flags::NO_MANDATORY_KEYS) && c.inflight() > 0 {
            return Flow::Stall;
        }
        let node = self.node;
        let epoch = if node.shard_count() == 1 {
            self.shards_of(spec, args);
            0
        } else if let Some(slot) = slot.filter(|_| !spec.all_shards) {
            node.routed(|| self.shard_of_known_slot(slot)).0
        } else {
            node.routed(|| self.shards_of(spec, args)).0
        };
        // A slot handoff since this connection's forwarded commands were routed: they
        // may be on their way to the slot's new shard; wait for them, or this one could
        // overtake them there.
        if c.inflight() > 0 && c.route_epoch != epoch {
            return Flow::Stall;
        }
        if self.shard_set.len() == 1 {
            let target = self.shard_set[0];
            if target == self.id && spec.has(Flags::NO_MANDATORY_KEYS) {
                return self.run_script_here(c, spec, id, args);
            }
            // `shard-hop lock`: a command for another shard runs here under its lock,
            // unless it may block (its waiter belongs to that shard) or may grow to other
            // shards (a script), or something forwarded is still in flight (it would
            // overtake it).
            let here = target == self.id
                || (self.hop_lock
                    && c.inflight() == 0
                    && !matches!(h, Handler::Blocking(..))
                    && !spec.has(Flags::NO_MANDATORY_KEYS));
            if here {
                let routing = &node.shards[self.id].routing;
                crate::node::bump(if target == self.id { &routing.local } else { &routing.locked });
                if target != self.id && target < 64 {
                    self.wrote_elsewhere |= 1 << target;
                }
                let now = self.now_ms;
                let mut db = node.lock_db(target);
                if !node.slots_still_on(&self.key_slots, &[target]) {
                    // A slot handoff moved them meanwhile: route again.
                    drop(db);
                    return self.route(c, spec, id, args, slot);
                }
                db.select(c.db);
                if let Some(e) = self.migrating_refusal(spec, args, &mut db) {
                    drop(db);
                    return self.reject(c, Some(id), e);
                }
                db.keep_expired_notes(self.expired_events());
                let caller = crate::tracking::caller(c, self.id);
                let env = self.env(now, true, caller);
                let client = (self.id, c.token);
                let mut r = c.reply(|out| {
                    let start = out.buf.len();
                    let t0 = cycles();
                    let r = run_unit(&mut SingleDb(&mut db), spec, args, env, out);
                    let dt = cycles().wrapping_sub(t0);
                    self.record_data(id, dt, &r, out);
                    self.record_slot(spec, args, dt, out.buf.len() - start);
                    self.record_load(target, spec, args, dt);
                    self.traced(client, args, &out.buf[start..], r.blocked != Blocked::Served, false, false);
                    r
                });
                if !r.events.is_empty() {
                    self.publish_events(std::mem::take(&mut r.events), c.db);
                }
                self.settle_tracking(target, &mut db, Some(c));
                if let Blocked::Wait { timeout_ms } = r.blocked {
                    let w = self.block(c, spec, args, false, timeout_ms);
                    let mut reg = node.lock_waiters(target);
                    for k in &w.keys {
                        reg.register(&mut db, k, &w);
                    }
                }
                self.after_exec(target, &mut db);
                drop(db);
                self.after_flushall(spec, &r);
            } else {
                let seq = c.push_pending();
                if spec.has(Flags::NO_MANDATORY_KEYS) {
                    // A script may take this connection's home shard as it runs: the
                    // commands after it wait for its reply, or it could see them.
                    c.barrier = Some(seq);
                }
                let waiter = match h {
                    Handler::Blocking(..) => {
                        let w = self.new_waiter(c, spec, args, seq, false);
                        // Counted when the key's shard reports it registered (Msg::Blocked).
                        c.mode = crate::conn::Mode::Blocked(BlockState {
                            seq,
                            waiter: w.clone(),
                            counted: false,
                            timed: false,
                        });
                        Some(w)
                    }
                    _ => None,
                };
                crate::node::bump(&node.shards[self.id].routing.forwarded);
                c.route_epoch = epoch;
                let m = Msg::Exec(Forward {
                    from: self.id,
                    token: c.token,
                    seq,
                    db: c.db,
                    proto: c.proto,
                    spec,
                    id,
                    args: args.to_owned_args(),
                    waiter,
                    caller: crate::tracking::caller(c, self.id),
                });
                self.send(target, m);
            }
            return Flow::Done;
        }
        if c.inflight() > 0 {
            return Flow::Stall;
        }
        crate::node::bump(&node.shards[self.id].routing.multi);
        let Some(mut ks) = MultiDb::lock_unless_busy(node, &self.shard_set) else {
            return self.reject(c, Some(id), ferrokv_commands::scripting::running::busy_error());
        };
        if !node.slots_still_on(&self.key_slots, &self.shard_set) {
            drop(ks);
            return self.route(c, spec, id, args, slot);
        }
        ks.select(c.db);
        let caller = crate::tracking::caller(c, self.id);
        let env = self.env(self.now_ms, true, caller);
        let client = (self.id, c.token);
        let me = &*self;
        let mut r = c.reply(|out| {
            let start = out.buf.len();
            let t0 = cycles();
            let r = run_unit(&mut ks, spec, args, env, out);
            me.record_data(id, cycles().wrapping_sub(t0), &r, out);
            me.record_slot(spec, args, cycles().wrapping_sub(t0), out.buf.len() - start);
            me.traced(client, args, &out.buf[start..], r.blocked != Blocked::Served, false, false);
            r
        });
        if !r.events.is_empty() {
            self.publish_events(std::mem::take(&mut r.events), c.db);
        }
        self.settle_tracking_all(&mut ks, Some(c));
        if let Blocked::Wait { timeout_ms } = r.blocked {
            let w = self.block(c, spec, args, true, timeout_ms);
            for k in &w.keys {
                let s = node.shard_of_key(k);
                if let Some(db) = ks.db_of_shard(s) {
                    node.lock_waiters(s).register(db, k, &w);
                }
            }
        }
        self.after_multi(&mut ks);
        drop(ks);
        self.after_flushall(spec, &r);
        Flow::Done
    }

    /// A script (EVAL, FCALL) whose declared keys are all on this shard, or that
    /// declares none: it starts with this shard's lock and takes another shard's when
    /// it first touches a key there (see [`MultiDb::holds`]).
    fn run_script_here(&mut self, c: &mut Conn, spec: &'static CommandSpec, id: CommandId, args: &Args) -> Flow {
        let node = self.node;
        let mut ks = MultiDb::lock(node, &[self.id]);
        if !node.keys_still_on(args, &self.key_idx, &[self.id]) {
            drop(ks);
            return self.route(c, spec, id, args, None);
        }
        ks.select(c.db);
        if let Some(db) = ks.db_of_shard(self.id) {
            if let Some(e) = self.migrating_refusal(spec, args, db) {
                drop(ks);
                return self.reject(c, Some(id), e);
            }
        }
        let caller = crate::tracking::caller(c, self.id);
        let env = self.env(self.now_ms, false, caller);
        let client = (self.id, c.token);
        let me = &*self;
        let events = c.reply(|out| {
            let start = out.buf.len();
            let t0 = cycles();
            let mut r = run_unit(&mut ks, spec, args, env, out);
            me.record_data(id, cycles().wrapping_sub(t0), &r, out);
            me.traced(client, args, &out.buf[start..], false, false, false);
            std::mem::take(&mut r.events)
        });
        if !events.is_empty() {
            self.publish_events(events, c.db);
        }
        self.settle_tracking_all(&mut ks, Some(c));
        self.after_multi(&mut ks);
        Flow::Done
    }

    /// FLUSHALL then saves dump.rdb when save points are set (a running BGSAVE is
    /// abandoned), as Redis's `flushAllDataAndResetRDB` does; FLUSHALL and FLUSHDB
    /// cancel the slot imports running here. No keyspace lock is held.
    fn after_flushall(&self, spec: &CommandSpec, r: &Outcome) {
        if r.error.is_some() || !matches!(spec.name, "flushall" | "flushdb") {
            return;
        }
        self.node.slot_migration.flushed();
        if spec.name == "flushall" {
            crate::persist::after_flushall(self.node);
        }
    }

    /// The keys a blocking command waits on: its keys, but only the source of a move.
    fn blocking_keys(&mut self, spec: &CommandSpec, args: &Args) -> Vec<Vec<u8>> {
        spec.key_indexes(args, &mut self.key_idx);
        let n = if matches!(spec.handler, Handler::Blocking(_, Wakes::ListMove)) { 1 } else { self.key_idx.len() };
        self.key_idx.iter().take(n).map(|&i| args.get(i).to_vec()).collect()
    }

    fn new_waiter(&mut self, c: &Conn, spec: &'static CommandSpec, args: &Args, seq: u64, multi: bool) -> Arc<Waiter> {
        let keys = self.blocking_keys(spec, args);
        // A blocked client keeps its arguments (CLIENT LIST's argv-mem).
        c.meta.mem.argv.store(crate::client_mem::argv_len(args), Ordering::Relaxed);
        Arc::new(Waiter {
            home: self.id,
            token: c.token,
            seq,
            proto: c.proto,
            spec,
            args: args.to_owned_args(),
            claimed: AtomicBool::new(false),
            multi_shard: multi,
            keys,
            db: c.db,
        })
    }

    /// Parks `c` in a blocking command that runs here; returns the waiter to register.
    fn block(
        &mut self,
        c: &mut Conn,
        spec: &'static CommandSpec,
        args: &Args,
        multi: bool,
        timeout_ms: u64,
    ) -> Arc<Waiter> {
        let seq = c.push_pending();
        let w = self.new_waiter(c, spec, args, seq, multi);
        c.mode =
            crate::conn::Mode::Blocked(BlockState { seq, waiter: w.clone(), counted: true, timed: timeout_ms > 0 });
        self.count_blocked(1);
        if timeout_ms > 0 {
            self.count_timed(1);
        }
        self.start_timeout(c.token, seq, timeout_ms);
        w
    }

    pub fn start_timeout(&mut self, token: u64, seq: u64, timeout_ms: u64) {
        if timeout_ms > 0 {
            self.deadlines.push(std::cmp::Reverse((self.now_ms.saturating_add(timeout_ms), token, seq)));
        }
    }

    pub fn count_blocked(&self, delta: i64) {
        let c = &self.node.shards[self.id].blocked_clients;
        c.store((c.load(Ordering::Relaxed) as i64 + delta).max(0) as u64, Ordering::Relaxed);
    }

    /// Clients blocked with a timeout (INFO's `clients_in_timeout_table`).
    pub fn count_timed(&self, delta: i64) {
        let c = &self.node.shards[self.id].timeout_clients;
        c.store((c.load(Ordering::Relaxed) as i64 + delta).max(0) as u64, Ordering::Relaxed);
    }

    /// A blocked client leaves its state: out of the counts it was in.
    pub fn uncount_blocked(&self, b: &BlockState) {
        if b.counted {
            self.count_blocked(-1);
        }
        if b.timed {
            self.count_timed(-1);
        }
    }

    /// After a command ran on `shard`'s Db: publish its counts and serve clients
    /// blocked on keys it made ready.
    pub fn after_exec(&mut self, shard: ShardId, db: &mut Db) {
        if db.has_ready() {
            self.serve_ready(shard, db);
        }
        self.settle_tracking(shard, db, None);
        self.node.shards[shard].publish(db);
    }

    pub fn after_multi(&mut self, ks: &mut MultiDb) {
        for (s, db) in ks.guards.iter_mut() {
            if db.has_ready() {
                self.serve_ready(*s, db);
            }
        }
        self.settle_tracking_all(ks, None);
    }

    /// Serves the waiters of `db`'s ready keys, oldest first, by running their command
    /// again; replies go to their home shards.
    pub fn serve_ready(&mut self, shard: ShardId, db: &mut Db) {
        let node = self.node;
        let was = db.selected();
        loop {
            let ready = db.take_ready();
            if ready.is_empty() {
                db.select(was);
                return;
            }
            for (dbi, key) in ready {
                db.select(dbi);
                let waiters = node.lock_waiters(shard).live(db, dbi, &key);
                for w in waiters {
                    let now = self.now_ms;
                    if !w.serves_from(db.peek(&key, now).map(|e| &e.value)) {
                        continue;
                    }
                    // A move (BLMOVE, BRPOPLPUSH) whose destination a slot handoff
                    // put on another shard since it blocked writes there too: it runs
                    // from home under both locks, as one that blocked so.
                    if w.retried_at_home() || (w.wakes() == Some(Wakes::ListMove) && !node.waiter_keys_on(&w, shard)) {
                        self.send(w.home, Msg::Retry { token: w.token, seq: w.seq });
                        continue;
                    }
                    if !w.claim() {
                        continue;
                    }
                    let mut out = ReplyBuf::new(w.proto);
                    let restricted = w.args_for(&key);
                    let args = restricted.args();
                    // Restricted to the ready key, the command touches only this shard.
                    let env = self.env(now, true, Caller::NONE);
                    let mut r = run_unit(&mut SingleDb(db), w.spec, &args, env, &mut out);
                    self.traced((w.home, w.token), &args, &out.buf, r.blocked != Blocked::Served, false, true);
                    if !r.events.is_empty() {
                        self.publish_events(std::mem::take(&mut r.events), dbi);
                    }
                    match r.blocked {
                        Blocked::Served => {
                            let mut reg = node.lock_waiters(shard);
                            for k in w.keys.iter().filter(|k| node.shard_of_key(k) == shard) {
                                reg.remove(db, k, &w);
                            }
                            drop(reg);
                            self.send(w.home, Msg::Reply { token: w.token, seq: w.seq, bytes: out.buf });
                        }
                        Blocked::Wait { .. } => w.unclaim(),
                    }
                }
            }
        }
    }

    /// Retries a multi-shard waiter of this shard's connection `c` under the locks of
    /// all its shards. Returns its reply when it was served.
    pub fn retry_blocked(&mut self, c: &mut Conn) -> Option<Vec<u8>> {
        let w = c.blocked()?.waiter.clone();
        let args = w.args.args();
        let node = self.node;
        let mut ks = loop {
            self.shards_of(w.spec, &args);
            let ks = MultiDb::lock(node, &self.shard_set);
            if node.keys_still_on(&args, &self.key_idx, &self.shard_set) {
                break ks;
            }
        };
        ks.select(w.db);
        if !w.claim() {
            return None;
        }
        let mut out = ReplyBuf::new(w.proto);
        let env = self.env(self.now_ms, true, Caller::NONE);
        let mut r = run_unit(&mut ks, w.spec, &args, env, &mut out);
        self.traced((w.home, w.token), &args, &out.buf, r.blocked != Blocked::Served, false, true);
        if !r.events.is_empty() {
            self.publish_events(std::mem::take(&mut r.events), w.db);
        }
        let served = match r.blocked {
            Blocked::Served => {
                for k in &w.keys {
                    let s = node.shard_of_key(k);
                    if let Some(db) = ks.db_of_shard(s) {
                        node.lock_waiters(s).remove(db, k, &w);
                    }
                }
                Some(out.buf)
            }
            Blocked::Wait { .. } => {
                w.unclaim();
                None
            }
        };
        self.after_multi(&mut ks);
        served
    }

    /// Runs a command forwarded by another shard; returns its encoded reply, or None
    /// when a blocking command now waits here (its reply comes when it is served).
    pub fn exec_forwarded(&mut self, f: Forward) -> Option<Vec<u8>> {
        let node = self.node;
        crate::node::bump(&node.shards[self.id].routing.received);
        let args = &f.args.args();
        let mut db = node.lock_db(self.id);
        if node.shard_count() > 1 {
            f.spec.key_indexes(args, &mut self.key_idx);
            if !node.keys_still_on(args, &self.key_idx, &[self.id]) {
                // A slot handoff moved its keys since the home shard routed it.
                drop(db);
                return self.rerouted_forward(f);
            }
        }
        let Forward { from, token, seq, db: dbi, proto, spec, id, waiter, caller, .. } = f;
        let mut out = ReplyBuf::new(proto);
        db.select(dbi);
        if let Some(e) = self.migrating_refusal(spec, args, &mut db) {
            // A key moved away since the home shard routed the command (see there).
            drop(db);
            out.error(&e);
            return Some(out.buf);
        }
        let env = self.env(self.now_ms, true, caller);
        let t0 = cycles();
        db.keep_expired_notes(self.expired_events());
        let mut r = if spec.has(Flags::NO_MANDATORY_KEYS) {
            // A script: its keyspace may grow to other shards (see MultiDb::holds).
            let mut ks = MultiDb { node, guards: vec![(self.id, db)], db: dbi };
            let r = run_unit(&mut ks, spec, args, env, &mut out);
            let mut own = crate::tracking::Own::Forwarded { home: from, token, caller, out: &mut out };
            self.settle_tracking_all_to(&mut ks, &mut own);
            self.after_multi(&mut ks);
            drop(ks);
            db = node.lock_db(self.id);
            db.select(dbi);
            r
        } else {
            let r = run_unit(&mut SingleDb(&mut db), spec, args, env, &mut out);
            let mut own = crate::tracking::Own::Forwarded { home: from, token, caller, out: &mut out };
            self.settle_tracking_to(self.id, &mut db, &mut own);
            r
        };
        let dt = cycles().wrapping_sub(t0);
        self.record_data(id, dt, &r, &out);
        self.record_slot(spec, args, dt, out.buf.len());
        self.record_load(self.id, spec, args, dt);
        self.traced((from, token), args, &out.buf, r.blocked != Blocked::Served, false, false);
        if !r.events.is_empty() {
            self.publish_events(std::mem::take(&mut r.events), dbi);
        }
        let reply = match (r.blocked, waiter) {
            (Blocked::Wait { timeout_ms }, Some(w)) => {
                let mut reg = node.lock_waiters(self.id);
                for k in &w.keys {
                    reg.register(&mut db, k, &w);
                }
                drop(reg);
                self.send(from, Msg::Blocked { token, seq, timeout_ms });
                None
            }
            _ => Some(out.buf),
        };
        self.after_exec(self.id, &mut db);
        reply
    }

    /// A forwarded command whose keys a slot handoff moved away after its home shard
    /// routed it: on to their new shard when they are all on one (the lane from here
    /// is FIFO, so what the connection forwarded after it follows it there), or run
    /// here under the locks of the shards they now span (only standalone multi-key
    /// commands can be split so). Returns the reply when it ran here.
    #[cold]
    fn rerouted_forward(&mut self, f: Forward) -> Option<Vec<u8>> {
        let node = self.node;
        loop {
            let args = &f.args.args();
            self.shards_of(f.spec, args);
            if self.shard_set.len() == 1 && self.shard_set[0] != self.id {
                let to = self.shard_set[0];
                self.send(to, Msg::Exec(f));
                return None;
            }
            let Forward { from, token, seq, db: dbi, proto, spec, id, ref waiter, caller, .. } = f;
            let shards = self.shard_set.clone();
            let mut ks = MultiDb::lock(node, &shards);
            if !node.keys_still_on(args, &self.key_idx, &shards) {
                continue;
            }
            ks.select(dbi);
            let env = Env {
                cfg: &self.exec_cfg,
                now_ms: self.now_ms,
                may_block: waiter.is_some(),
                track_keys: false,
                notify: self.notify,
                caller,
            };
            let mut out = ReplyBuf::new(proto);
            let t0 = cycles();
            let mut r = run_unit(&mut ks, spec, args, env, &mut out);
            self.record_data(id, cycles().wrapping_sub(t0), &r, &out);
            self.traced((from, token), args, &out.buf, r.blocked != Blocked::Served, false, false);
            if !r.events.is_empty() {
                self.publish_events(std::mem::take(&mut r.events), dbi);
            }
            let mut own = crate::tracking::Own::Forwarded { home: from, token, caller, out: &mut out };
            self.settle_tracking_all_to(&mut ks, &mut own);
            let reply = match (r.blocked, waiter) {
                (Blocked::Wait { timeout_ms }, Some(w)) => {
                    for k in &w.keys {
                        let s = node.shard_of_key(k);
                        if let Some(db) = ks.db_of_shard(s) {
                            node.lock_waiters(s).register(db, k, w);
                        }
                    }
                    self.send(from, Msg::Blocked { token, seq, timeout_ms });
                    None
                }
                _ => Some(out.buf),
            };
            self.after_multi(&mut ks);
            return reply;
        }
    }

    /// The shards a set of queued commands and watched keys touch (for EXEC).
    pub fn shards_of_transaction(&mut self, c: &Conn) -> Vec<ShardId> {
        let mut all = Vec::new();
        if let Some(m) = c.multi() {
            for q in &m.queued {
                if !matches!(q.spec.handler, Handler::Server(_)) {
                    self.shards_of(q.spec, &q.args.args());
                    all.extend_from_slice(&self.shard_set);
                }
            }
        }
        // A watched key's shard is where it is now (a slot handoff moves its version).
        all.extend(c.watched.iter().map(|w| self.node.shard_of_key(&w.key)));
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Forgets this connection's WATCHes.
    pub fn release_watches(&mut self, c: &mut Conn) {
        for w in c.watched.drain(..) {
            let (_, mut db) = self.node.lock_db_of_slot(ferrokv_store::key_slot(&w.key));
            db.select(w.db);
            db.unwatch(&w.key);
        }
    }

    /// Eviction between commands: once per tick, while the node is over `maxmemory`.
    pub fn evict_in_background(&mut self) {
        if self.mem.maxmemory == 0 {
            return;
        }
        let node = self.node;
        self.mem.resync(node);
        let exempt = (self.mem.replica_ignore && node.repl.is_replica.load(Ordering::Relaxed))
            || node.repl.writes_paused(self.now_ms);
        self.evict(exempt);
        self.settle_evictions(None);
    }

    /// Evicts while the node is over `maxmemory` and publishes an `evicted` event per
    /// key when class `e` is on, as Redis's `performEvictions` does at each deletion.
    fn evict(&mut self, exempt: bool) -> crate::maxmemory::State {
        use ferrokv_commands::notify::{class, KeyEvent};
        let wanted = self.notify & class::EVICTED != 0 && self.notify & (class::KEYSPACE | class::KEYEVENT) != 0;
        let mut notes = Vec::new();
        let state = self.mem.perform(self.node, exempt, wanted.then_some(&mut notes));
        if notes.is_empty() {
            return state;
        }
        let before = crate::memory::thread_delta();
        for (dbi, key) in notes {
            let e = KeyEvent { class: class::EVICTED, event: "evicted", key, db: Some(dbi), message: None };
            self.publish_events(vec![e], dbi);
        }
        self.mem.events_in_flight(self.node, crate::memory::thread_delta() - before);
        state
    }

    /// After eviction (which locks one shard at a time, any of them): what the evicted
    /// keys owe tracking clients.
    fn settle_evictions(&mut self, mut own: Option<&mut Conn>) {
        let node = self.node;
        if !node.tracking.on() {
            return;
        }
        for s in 0..node.shard_count() {
            let mut db = node.lock_db(s);
            if db.tracking.owes() {
                self.settle_tracking(s, &mut db, own.as_deref_mut());
            }
        }
    }

    /// Whether expiry must keep the keys it deletes for `expired` events (applied to
    /// this shard's Db whenever its thread holds the lock: each tick and command).
    fn expired_events(&self) -> bool {
        use ferrokv_commands::notify::class;
        self.notify & class::EXPIRED != 0 && self.notify & (class::KEYSPACE | class::KEYEVENT) != 0
    }

    /// Publishes the keyspace notifications of a command run in database `db`
    /// (`__keyspace@<db>__:<key>` with the event, `__keyevent@<db>__:<event>` with
    /// the key), to this node's subscribers.
    pub fn publish_events(&mut self, events: Vec<ferrokv_commands::notify::KeyEvent>, db: usize) {
        use ferrokv_commands::notify::class;
        for e in events {
            if let Some(message) = &e.message {
                let space =
                    if e.event == "spublish" { crate::pubsub::Space::Shard } else { crate::pubsub::Space::Global };
                crate::pubsub::publish_from_script(self, space, &e.key, message, db);
                continue;
            }
            let n = e.db.unwrap_or(db);
            if self.notify & class::KEYSPACE != 0 {
                let mut ch = format!("__keyspace@{n}__:").into_bytes();
                ch.extend_from_slice(&e.key);
                crate::pubsub::publish(self, crate::pubsub::Space::Global, &ch, e.event.as_bytes());
            }
            if self.notify & class::KEYEVENT != 0 {
                let ch = format!("__keyevent@{n}__:{}", e.event);
                crate::pubsub::publish(self, crate::pubsub::Space::Global, ch.as_bytes(), &e.key);
            }
        }
    }

    /// Active expiry of this shard's keys within `budget`.
    /// Active expiry of this shard's keys within `budget`, every database with keys
    /// that expire getting a share of it.
    pub fn active_expire(&mut self, budget: std::time::Duration) {
        let mut db = self.node.lock_db(self.id);
        db.keep_expired_notes(self.expired_events());
        let now = self.now_ms;
        // The LRU clock has a resolution of seconds: once per tick keeps SET's stamps fresh.
        db.set_clock(now);
        self.node.lock_waiters(self.id).sweep(&mut db);
        // While writes are held (a failover's or a shutdown's pause) the dataset stays
        // still, expiry included, as Redis's activeExpireCycle under a client pause.
        // DEBUG SET-ACTIVE-EXPIRE 0 turns the cycle off.
        if self.node.repl.writes_paused(now) || !self.node.active_expire.load(Ordering::Relaxed) {
            return;
        }
        let dbs: Vec<usize> = if db.multi_database() {
            (0..db.databases()).filter(|&i| db.database_expires(i) > 0).collect()
        } else {
            vec![0]
        };
        let share = budget / dbs.len().max(1) as u32;
        let mut total = 0;
        for dbi in dbs {
            db.select(dbi);
            let n = db.active_expire(now, share);
            total += n;
            let expired = db.take_expired_notes();
            if !expired.is_empty() {
                use ferrokv_commands::notify::{class, KeyEvent};
                let ev = expired
                    .into_iter()
                    .map(|key| KeyEvent { class: class::EXPIRED, event: "expired", key, db: None, message: None })
                    .collect();
                self.publish_events(ev, dbi);
            }
            if n > 0 {
                // Each key the cycle deleted propagates as a DEL of its own, as in Redis.
                let keys = db.effects().map(|log| log.log_expired_units(dbi)).unwrap_or_default();
                if let Some(t) = &self.trace {
                    t.borrow_mut().push(TraceEvent::Expired { keys: keys.iter().map(|k| k.to_vec()).collect() });
                }
            }
        }
        let shared = &self.node.shards[self.id];
        for (i, avg) in shared.avg_ttl.iter().enumerate() {
            let v = if db.database_expires(i) == 0 { 0 } else { db.database_avg_ttl(i) };
            avg.store(v, Ordering::Relaxed);
        }
        db.select(0);
        let id = self.id;
        self.settle_tracking(id, &mut db, None);
        self.node.shards[self.id].publish(&db);
        drop(db);
        if total > 0 {
            self.node.shards[self.id].expired_keys.fetch_add(total as u64, Ordering::Relaxed);
        }
    }
}

/// Redis's `shared.oomerr`.
const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Redis's `shared.bgsaveerr`.
const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. \
Commands that may modify the data set are disabled, because this instance is configured to report errors during writes \
if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Runs a data command through the execution function ([`ferrokv_commands::execute`]),
/// appending its propagation records to `records` (EXEC gathers a transaction's). A
/// blocking command that finds nothing to serve writes nothing and returns `Wait`
/// when `may_block`.
pub fn run_data(
    ks: &mut dyn Keyspace,
    spec: &CommandSpec,
    args: &Args,
    env: Env,
    out: &mut ReplyBuf,
    records: &mut Records,
) -> Outcome {
    // A bug in one command must not be served half done: see abort_after_panic.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(ks, spec, args, env, out, records)));
    match r {
        Ok(o) => o,
        Err(_) => abort_after_panic(args),
    }
}

/// [`run_data`] for a command that is an execution unit of its own: its records are
/// logged to the effects stream at once.
pub fn run_unit(ks: &mut dyn Keyspace, spec: &CommandSpec, args: &Args, env: Env, out: &mut ReplyBuf) -> Outcome {
    thread_local! {
        /// The records buffer of the last unit, when the log copied it (the common
        /// single-record write): no allocation per command.
        static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut records = Records::with_buffer(SPARE.with(|s| s.take()));
    let o = run_data(ks, spec, args, env, out, &mut records);
    let spare = if records.is_empty() { Some(records.resp) } else { ks.log_unit(records) };
    if let Some(buf) = spare {
        if buf.capacity() <= 64 << 10 {
            SPARE.with(|s| s.set(buf));
        }
    }
    o
}

/// Runs a command the node itself issues (the DEL of keys a MIGRATE moved or a lost
/// slot held, an import's RESTORE) through the execution function, on keyspaces the
/// caller has locked: its effects are propagated (AOF, replicas) and counted
/// (`rdb_changes_since_last_save`, on the first locked shard) as a client's would be.
/// No notifications are derived. Clients blocked on keys it made ready are served by
/// their shard's next command. Returns the reply (RESP2).
pub fn run_internal(ks: &mut MultiDb, words: &[&[u8]], cfg: &ExecConfig, now_ms: u64) -> ReplyBuf {
    let owned = ferrokv_resp::OwnedArgs::from_slices(words);
    run_internal_args(ks, &owned.args(), cfg, now_ms)
}

/// [`run_internal`] for arguments already in an [`Args`] (borrowed where they were
/// read, not copied).
pub fn run_internal_args(ks: &mut MultiDb, args: &Args, cfg: &ExecConfig, now_ms: u64) -> ReplyBuf {
    let mut out = ReplyBuf::new(Proto::Resp2);
    let Some(spec) = ferrokv_commands::lookup(args.get(0)).filter(|s| s.arity_ok(args.len())) else {
        out.error("ERR internal command unknown or of wrong arity");
        return out;
    };
    let env = Env::internal(cfg, now_ms);
    let r = run_unit(ks, spec, args, env, &mut out);
    if r.dirty != 0 {
        if let Some(&(s, _)) = ks.guards.first() {
            crate::node::add(&ks.node.shards[s].dirty, r.dirty);
        }
    }
    out
}

/// A panic inside a command may have left a change half made (a value updated but not
/// its key's TTL, counts, or index). Serving that state would lose or corrupt data
/// silently, so the node stops here, as a failed assertion stops Redis: one log line
/// naming the command, then abort. (The panic message itself was logged by the hook.)
fn abort_after_panic(args: &Args) -> ! {
    let name = printable(args.get(0), 64);
    tracing::error!(
        "command '{name}' ({} arguments) panicked while running; aborting so that no half-applied change is served",
        args.len()
    );
    eprintln!("=== ferrokv BUG: command '{name}' panicked; aborting ===");
    std::process::abort()
}

/// The keyspace locks a server command may use while it runs.
///
/// Lock rule: a thread never takes a shard's `Db` lock it already holds (std's mutex
/// is not reentrant: the thread would wait for itself forever). A server command run
/// by EXEC gets the locks EXEC holds — every shard, when the transaction queued a
/// server command — and reads the keyspace through them; run on its own it locks one
/// shard at a time and holds nothing else. Server commands reach a `Db` only through
/// [`Held::with_db`], so they cannot take a lock EXEC holds.
pub enum Held<'h, 'n> {
    Nothing,
    Exec(&'h mut MultiDb<'n>),
}

impl Held<'_, '_> {
    /// Runs `f` on `shard`'s keyspace: through the held lock, or under a lock taken
    /// for just this call.
    pub fn with_db<R>(&mut self, node: &Node, shard: ShardId, f: impl FnOnce(&mut Db) -> R) -> R {
        match self {
            Held::Exec(ks) => match ks.db_of_shard(shard) {
                Some(db) => f(db),
                None => {
                    // EXEC locks every shard when it runs a server command.
                    tracing::error!("server command inside EXEC reached shard {shard}, which EXEC did not lock");
                    panic!("server command inside EXEC reached an unlocked shard {shard}");
                }
            },
            Held::Nothing => f(&mut node.lock_db(shard)),
        }
    }

    /// [`Held::with_db`] on the keyspace owning `slot` (looked up again under the lock
    /// a slot handoff would need); returns that shard too.
    pub fn with_db_of_slot<R>(&mut self, node: &Node, slot: u16, f: impl FnOnce(&mut Db) -> R) -> (ShardId, R) {
        match self {
            Held::Exec(_) => {
                // EXEC holds every lock: no handoff can run.
                let s = node.shard_of_slot(slot);
                (s, self.with_db(node, s, f))
            }
            Held::Nothing => {
                let (s, mut db) = node.lock_db_of_slot(slot);
                (s, f(&mut db))
            }
        }
    }

    /// [`Held::with_db_of_slot`] for `key`'s slot.
    pub fn with_db_of_key<R>(&mut self, node: &Node, key: &[u8], f: impl FnOnce(&mut Db) -> R) -> (ShardId, R) {
        self.with_db_of_slot(node, ferrokv_store::key_slot(key), f)
    }
}

/// Several shards' keyspaces, locked in ascending shard order for one command.
pub struct MultiDb<'a> {
    node: &'a Node,
    pub guards: Vec<(ShardId, crate::node::DbGuard<'a>)>,
    /// The selected database (in every guard, and in one a script adds later).
    pub db: usize,
}

impl<'a> MultiDb<'a> {
    /// Locks `shards` with database 0 selected (see [`Keyspace::select`]).
    pub fn lock(node: &'a Node, shards: &[ShardId]) -> Self {
        MultiDb { node, guards: node.lock_dbs(shards), db: 0 }
    }

    pub fn db_of_shard(&mut self, s: ShardId) -> Option<&mut Db> {
        self.guards.iter_mut().find(|g| g.0 == s).map(|g| &mut *g.1)
    }

    fn index_of(&self, s: ShardId) -> usize {
        match self.guards.iter().position(|g| g.0 == s) {
            Some(i) => i,
            None => {
                // A command touched a key its table entry did not declare: a bug in the
                // table. Never silently serve another shard's data: fail loudly.
                tracing::error!("command touched shard {s} which was not locked; check its key positions");
                panic!("undeclared key access to shard {s}");
            }
        }
    }
}

impl MultiDb<'_> {
    fn grow(&mut self, shard: ShardId) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2);
        loop {
            if let Some(mut g) = self.node.try_lock_db(shard) {
                g.select(self.db);
                self.guards.push((shard, g));
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::yield_now();
        }
    }
}

impl<'a> MultiDb<'a> {
    /// [`MultiDb::lock`], except that while a script runs it waits for each lock by
    /// polling, and gives up (None) once a script is busy: a thread blocked on a busy
    /// script's lock could not answer its clients (BUSY, SCRIPT KILL) any more.
    pub fn lock_unless_busy(node: &'a Node, shards: &[ShardId]) -> Option<Self> {
        use ferrokv_commands::scripting::running;
        if !running::any_running() {
            return Some(MultiDb::lock(node, shards));
        }
        let mut guards = Vec::with_capacity(shards.len());
        for &s in shards {
            loop {
                if let Some(g) = node.try_lock_db(s) {
                    guards.push((s, g));
                    break;
                }
                if running::busy() {
                    return None;
                }
                if !running::any_running() {
                    guards.push((s, node.lock_db(s)));
                    break;
                }
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
        Some(MultiDb { node, guards, db: 0 })
    }
}

impl Drop for MultiDb<'_> {
    fn drop(&mut self) {
        for (s, db) in &self.guards {
            self.node.shards[*s].publish(db);
        }
    }
}

impl Keyspace for MultiDb<'_> {
    fn db(&mut self, key: &[u8]) -> &mut Db {
        if self.guards.len() == 1 && self.node.shard_count() == 1 {
            return &mut self.guards[0].1;
        }
        let i = self.index_of(self.node.shard_of_key(key));
        &mut self.guards[i].1
    }

    fn each_db(&mut self, f: &mut dyn FnMut(&mut Db)) {
        for g in &mut self.guards {
            f(&mut g.1);
        }
    }

    fn select(&mut self, db: usize) {
        self.db = db;
        for g in &mut self.guards {
            g.1.select(db);
        }
    }

    fn selected(&mut self) -> usize {
        self.db
    }

    fn db_for_slot(&mut self, slot: u16) -> &mut Db {
        let i = self.index_of(self.node.shard_of_slot(slot));
        &mut self.guards[i].1
    }

    /// A script reaching a key of a shard it does not hold takes that shard's lock if
    /// it can get it within 2 ms (two-phase locking: locks are only added until the
    /// script ends, so it stays serializable). It never waits longer: another script
    /// holding that shard might be waiting for one of ours.
    fn holds(&mut self, key: &[u8]) -> bool {
        // Holding every shard (always, on a one-shard node), it holds every key: no hash.
        if self.guards.len() == self.node.shard_count() {
            return true;
        }
        let s = self.node.shard_of_key(key);
        self.guards.iter().any(|g| g.0 == s) || self.grow(s)
    }

    fn holds_all(&mut self) -> bool {
        (0..self.node.shard_count()).all(|s| self.guards.iter().any(|g| g.0 == s) || self.grow(s))
    }

    fn log_unit(&mut self, records: Records) -> Option<Vec<u8>> {
        use ferrokv_store::effects::{MultiTag, Part, Unit};
        if records.is_empty() || !self.guards.iter().any(|g| g.1.effects_on()) {
            return Some(records.resp);
        }
        if self.guards.len() == 1 {
            return SingleDb(&mut self.guards[0].1).log_unit(records);
        }
        // A script may have added shards out of order: the unit goes to the lowest.
        self.guards.sort_unstable_by_key(|g| g.0);
        // Taken while every lock of the unit is held: ids increase in an order that
        // agrees with each shard's log (see ferrokv_store::effects).
        let id = self.node.next_unit_id.fetch_add(1, Ordering::Relaxed);
        let shards: Box<[u16]> = self.guards.iter().map(|g| g.0 as u16).collect();
        let mut records = Some(records);
        for (_, db) in self.guards.iter_mut() {
            let Some(log) = db.effects() else { continue };
            match records.take() {
                Some(records) => log
                    .push(Part::Unit(Unit::of(records, Some(MultiTag { id, shards: shards.clone() })).in_db(self.db))),
                None => log.push(Part::Joined { id }),
            }
        }
        None
    }
}

/// Redis's text for an unknown command, quoting up to 128 characters of arguments.
fn unknown_command(args: &Args) -> String {
    let mut quoted = String::new();
    for a in args.iter().skip(1) {
        if quoted.len() >= 128 {
            break;
        }
        let room = 128 - quoted.len();
        quoted.push('\'');
        quoted.push_str(&printable(a, room));
        quoted.push_str("' ");
    }
    format!("ERR unknown command '{}', with args beginning with: {}", printable(args.get(0), 128), quoted)
}

/// At most `max` bytes of `b` as text, with CR/LF as spaces (error replies are one line).
pub fn printable(b: &[u8], max: usize) -> String {
    let b = &b[..b.len().min(max)];
    String::from_utf8_lossy(b).replace(['\r', '\n'], " ")
}

/// Why [`admit`] refused a command: the error, and the command when it is known
/// (counted as its rejected call; a refused EXEC discards the transaction).
pub(crate) struct Refusal {
    pub spec: Option<(&'static CommandSpec, CommandId)>,
    pub error: CommandError,
}

/// The checks every command meets first, in Redis's `processCommand` order: a known
/// command and subcommand, its arity, DEBUG's protection, authentication.
pub(crate) fn admit(node: &Node, c: &Conn, args: &Args) -> Result<(&'static CommandSpec, CommandId), Refusal> {
    let name = args.get(0);
    let Some((mut spec, mut id)) = lookup_id(name) else {
        return Err(Refusal { spec: None, error: unknown_command(args).into() });
    };
    if !spec.subcommands.is_empty() && args.len() >= 2 {
        match lookup_sub(spec, args.get(1)) {
            Some(sub) => {
                id = sub_id(spec, id, sub);
                spec = sub;
            }
            None => {
                let msg = format!(
                    "ERR unknown subcommand '{}'. Try {} HELP.",
                    printable(args.get(1), 128),
                    spec.name.to_ascii_uppercase()
                );
                return Err(Refusal { spec: None, error: msg.into() });
            }
        }
    }
    let refuse = |error: CommandError| Err(Refusal { spec: Some((spec, id)), error });
    if !spec.arity_ok(args.len()) {
        return refuse(format!("ERR wrong number of arguments for '{}' command", spec.name).into());
    }
    // DEBUG is protected (`enable-debug-command`), checked before authentication as
    // in Redis's processCommand.
    if matches!(spec.handler, Handler::Server(ServerCmd::Debug)) && !crate::debug::allowed(node, c) {
        return refuse(crate::debug::NOT_ALLOWED.into());
    }
    if !c.authed && !spec.has(Flags::NO_AUTH) {
        return refuse("NOAUTH Authentication required.".into());
    }
    Ok((spec, id))
}

/// Replies `e` for a command refused before running (counted as a rejected call of
/// `id`, when the command is known); inside MULTI that also dooms the transaction
/// (EXECABORT), as in Redis.
pub(crate) fn reject_on(node: &Node, shard: ShardId, c: &mut Conn, id: Option<CommandId>, e: CommandError) {
    if let Some(m) = c.multi_mut() {
        m.dirty = true;
    }
    c.reply(|r| e.write(r));
    let shard = &node.shards[shard];
    shard.count_error(e.text().as_bytes());
    if let Some(st) = id.and_then(|id| shard.cmdstats.get(id.0 as usize)) {
        crate::node::bump(&st.rejected);
    }
}

/// What became of a command that arrived while a script on this thread is busy.
pub(crate) enum WhileBusy {
    /// Answered (BUSY, or run: SCRIPT KILL, FUNCTION KILL, SHUTDOWN NOSAVE...).
    Done,
    /// It needs the shard (the keyspace the script holds, the loop): it and what
    /// follows it wait for the script to end.
    Wait,
}

/// A command of another client of this thread while the script running here is busy
/// (called from the Lua hook, see `crate::busy`): what Redis's `processCommand` does
/// with it then. Commands Redis lets through (`allow_busy`) that need more than the
/// connection — RESET, WATCH, UNWATCH, REPLCONF, a DISCARD or a refused EXEC that must
/// release watched keys — wait.
pub(crate) fn run_while_busy(node: &'static Node, shard: ShardId, c: &mut Conn, args: &Args) -> WhileBusy {
    use ferrokv_commands::scripting::running;
    let (spec, id) = match admit(node, c, args) {
        Ok(found) => found,
        Err(Refusal { spec: Some((spec, id)), error }) => return refuse_while_busy(node, shard, c, spec, id, error),
        Err(Refusal { spec: None, error }) => {
            reject_on(node, shard, c, None, error);
            return WhileBusy::Done;
        }
    };
    if node.repl.writes_paused(unix_ms()) || node.slot_migration.pausing() {
        return WhileBusy::Wait;
    }
    let start = cycles();
    let cmd = match spec.handler {
        _ if !spec.has(Flags::ALLOW_BUSY) => {
            return refuse_while_busy(node, shard, c, spec, id, running::busy_error().into())
        }
        Handler::Server(cmd) => cmd,
        // The one data command Redis lets through: it reads no key.
        Handler::Data(_) if spec.name == "function|stats" => {
            c.reply(ferrokv_commands::scripting::functions::stats);
            return busy_ran(node, shard, c, spec, id, start);
        }
        _ => return WhileBusy::Wait,
    };
    match cmd {
        ServerCmd::ScriptKill | ServerCmd::FunctionKill => match running::kill(cmd == ServerCmd::ScriptKill) {
            Ok(()) => c.reply(|r| r.ok()),
            Err(e) => c.error(e),
        },
        ServerCmd::Shutdown => match crate::cmds::shutdown_args(args) {
            None => c.error("ERR syntax error"),
            // Only NOSAVE may stop a node whose script is busy (Redis's shutdownCommand).
            Some((flags, false)) if flags.nosave => {
                if !crate::shutdown::while_busy(node, flags) {
                    return WhileBusy::Wait;
                }
                c.closing = true;
            }
            Some((_, false)) => return refuse_while_busy(node, shard, c, spec, id, running::busy_error().into()),
            Some((_, true)) => return WhileBusy::Wait,
        },
        ServerCmd::Multi if c.multi().is_some() => c.error("ERR MULTI calls can not be nested"),
        ServerCmd::Multi => {
            c.mode = crate::conn::Mode::Multi(Default::default());
            c.meta.multi.store(0, Ordering::Relaxed);
            c.reply(|r| r.ok());
        }
        ServerCmd::Discard if c.multi().is_none() => c.error("ERR DISCARD without MULTI"),
        ServerCmd::Discard if c.watched.is_empty() => {
            c.take_multi();
            c.meta.multi.store(-1, Ordering::Relaxed);
            c.reply(|r| r.ok());
        }
        ServerCmd::Quit => {
            c.reply(|r| r.ok());
            c.closing = true;
            node.unregister_client(c.meta.id);
        }
        ServerCmd::Auth => crate::cmds::auth(&node.config().requirepass, c, args),
        ServerCmd::Hello => crate::cmds::hello(node, &node.config().requirepass, c, args),
        _ => return WhileBusy::Wait,
    }
    busy_ran(node, shard, c, spec, id, start)
}

/// Counts a command [`run_while_busy`] ran.
fn busy_ran(node: &Node, shard: ShardId, c: &Conn, spec: &'static CommandSpec, id: CommandId, start: u64) -> WhileBusy {
    c.meta.set_last_cmd(spec);
    crate::node::bump(&node.shards[shard].commands_processed);
    if let Some(st) = node.shards[shard].cmdstats.get(id.0 as usize) {
        crate::node::bump(&st.calls);
        crate::node::add(&st.cycles, cycles().wrapping_sub(start));
    }
    WhileBusy::Done
}

/// [`reject_on`] while a script is busy; a refused EXEC discards its transaction
/// (EXECABORT), which waits when watched keys must be released (the script holds
/// their keyspace).
fn refuse_while_busy(
    node: &Node,
    shard: ShardId,
    c: &mut Conn,
    spec: &CommandSpec,
    id: CommandId,
    e: CommandError,
) -> WhileBusy {
    if !matches!(spec.handler, Handler::Server(ServerCmd::Exec)) {
        reject_on(node, shard, c, Some(id), e);
        return WhileBusy::Done;
    }
    if !c.watched.is_empty() {
        return WhileBusy::Wait;
    }
    c.take_multi();
    c.meta.multi.store(-1, Ordering::Relaxed);
    let msg = e.text();
    let why = msg.strip_prefix("ERR ").unwrap_or(msg);
    reject_on(node, shard, c, Some(id), format!("EXECABORT Transaction discarded because of: {why}").into());
    WhileBusy::Done
}
