//! From parsed arguments to a reply: lookup, arity, auth, MULTI queueing, and routing
//! of data commands to the shard(s) that own their keys.
//!
//! Routing, per command:
//! - every key on this shard → run here, under this shard's (uncontended) lock;
//! - every key on one other shard → forward over the mailbox, reply slot reserved;
//! - keys on several shards, or a command over the whole keyspace → wait until this
//!   connection has no forwarded command in flight (so its own commands keep their
//!   order), then lock the shards involved in ascending order and run it here.
//!
//! A connection's replies always leave in request order.

use crate::conn::{Conn, QueuedCommand};
use crate::msg::Msg;
use crate::node::{unix_ms, Node, ShardId};
use ferrokv_commands::table::{lookup_sub, Blocked};
use ferrokv_commands::{lookup, CommandSpec, Ctx, ExecConfig, Handler, Keyspace, SingleDb};
use ferrokv_resp::{Args, Limits, Proto, ReplyBuf};
use ferrokv_store::Db;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

pub enum Flow {
    Done,
    /// Not run: retry once the connection has no forwarded command in flight.
    Stall,
}

pub struct ShardCore {
    pub node: Arc<Node>,
    pub id: ShardId,
    /// Messages for each shard, handed over once per loop iteration.
    pub outbox: Vec<Vec<Msg>>,
    /// This shard's connections that CLIENT KILL asked to close.
    pub local_kills: Vec<u64>,
    pub exec_cfg: ExecConfig,
    cfg_version: u64,
    pub query_buffer_limit: u64,
    max_bulk_len: usize,
    pub requirepass: String,
    /// Unix ms, read once per loop iteration: commands of one batch share a clock,
    /// as Redis caches its clock per command.
    pub now_ms: u64,
    key_idx: Vec<usize>,
    shard_set: Vec<ShardId>,
}

/// Commands that read or change the whole keyspace and so need every shard.
const ALL_SHARDS: &[&str] = &["keys", "scan", "dbsize", "flushdb", "flushall", "randomkey"];

fn needs_all_shards(spec: &CommandSpec) -> bool {
    ALL_SHARDS.contains(&spec.name)
}

impl ShardCore {
    pub fn new(node: Arc<Node>, id: ShardId) -> Self {
        let n = node.shard_count();
        let mut core = ShardCore {
            node,
            id,
            outbox: (0..n).map(|_| Vec::new()).collect(),
            local_kills: Vec::new(),
            exec_cfg: ExecConfig::default(),
            cfg_version: u64::MAX,
            query_buffer_limit: 0,
            max_bulk_len: 0,
            requirepass: String::new(),
            now_ms: unix_ms(),
            key_idx: Vec::new(),
            shard_set: Vec::new(),
        };
        core.refresh_config();
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
        drop(cfg);
        self.exec_cfg = self.node.exec_config();
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

    pub fn run_command(&mut self, c: &mut Conn, args: &Args) -> Flow {
        self.refresh_config();
        let name = args.get(0);
        let Some(mut spec) = lookup(name) else {
            let msg = unknown_command(args);
            return self.reject(c, &msg);
        };
        if !spec.subcommands.is_empty() && args.len() >= 2 {
            match lookup_sub(spec, args.get(1)) {
                Some(sub) => spec = sub,
                None if matches!(spec.handler, Handler::Server) => {}
                None => {
                    let msg = format!(
                        "ERR unknown subcommand '{}'. Try {} HELP.",
                        printable(args.get(1), 128),
                        spec.name.to_ascii_uppercase()
                    );
                    return self.reject(c, &msg);
                }
            }
        }
        if !spec.arity_ok(args.len()) {
            let msg = format!("ERR wrong number of arguments for '{}' command", spec.name);
            return self.reject_spec(c, spec, &msg);
        }
        if !c.authed && !spec.has_flag("no_auth") {
            return self.reject_spec(c, spec, "NOAUTH Authentication required.");
        }
        if c.multi.is_some() && !matches!(spec.name, "exec" | "discard" | "multi" | "watch" | "quit" | "reset") {
            if spec.has_flag("no_multi") {
                return self.reject(c, "ERR Command not allowed inside a transaction");
            }
            if let Some(m) = c.multi.as_mut() {
                m.queued.push(QueuedCommand { spec, args: args.to_owned_args() });
                c.meta.multi.store(m.queued.len() as i64, Ordering::Relaxed);
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
        match spec.handler {
            Handler::Server => crate::cmds::run(self, c, spec, args),
            Handler::Data(_) | Handler::Blocking(_) => self.route(c, spec, args),
        }
    }

    /// As [`reject`](Self::reject); a refused EXEC also discards the transaction and
    /// says so (`EXECABORT Transaction discarded because of: ...`), as Redis does.
    fn reject_spec(&mut self, c: &mut Conn, spec: &CommandSpec, msg: &str) -> Flow {
        if spec.name != "exec" {
            return self.reject(c, msg);
        }
        c.multi = None;
        c.meta.multi.store(-1, Ordering::Relaxed);
        self.release_watches(c);
        let why = msg.strip_prefix("ERR ").unwrap_or(msg);
        c.error(&format!("EXECABORT Transaction discarded because of: {why}"));
        Flow::Done
    }

    /// Replies an error for a command that was refused before running; inside MULTI
    /// that also dooms the transaction (EXECABORT), as in Redis.
    fn reject(&mut self, c: &mut Conn, msg: &str) -> Flow {
        if let Some(m) = c.multi.as_mut() {
            m.dirty = true;
        }
        c.error(msg);
        Flow::Done
    }

    /// The shards the keys of this invocation live on, sorted and deduplicated, into
    /// `self.shard_set`. Commands over the whole keyspace get every shard.
    fn shards_of(&mut self, spec: &CommandSpec, args: &Args) {
        self.shard_set.clear();
        if needs_all_shards(spec) {
            self.shard_set.extend(0..self.node.shard_count());
            return;
        }
        spec.key_indexes(args, &mut self.key_idx);
        for &i in &self.key_idx {
            let s = self.node.shard_of_key(args.get(i));
            if !self.shard_set.contains(&s) {
                self.shard_set.push(s);
            }
        }
        if self.shard_set.is_empty() {
            self.shard_set.push(self.id);
        }
        self.shard_set.sort_unstable();
    }

    fn route(&mut self, c: &mut Conn, spec: &'static CommandSpec, args: &Args) -> Flow {
        let f = spec.handler;
        self.shards_of(spec, args);
        if self.shard_set.len() == 1 {
            let target = self.shard_set[0];
            if target == self.id {
                let now = self.now_ms;
                let mut db = self.node.lock_db(self.id);
                let cfg = &self.exec_cfg;
                c.reply(|out| run_data(&mut SingleDb(&mut db), f, args, cfg, now, out));
                self.node.shards[self.id].publish(&db);
            } else {
                let seq = c.push_pending();
                let m =
                    Msg::Exec { from: self.id, token: c.token, seq, proto: c.proto, spec, args: args.to_owned_args() };
                self.send(target, m);
            }
            return Flow::Done;
        }
        if c.inflight() > 0 {
            return Flow::Stall;
        }
        let mut ks = MultiDb::lock(&self.node, &self.shard_set);
        let cfg = &self.exec_cfg;
        let now = unix_ms();
        c.reply(|out| run_data(&mut ks, f, args, cfg, now, out));
        Flow::Done
    }

    /// Runs a command forwarded by another shard; returns its encoded reply.
    pub fn exec_forwarded(&mut self, spec: &'static CommandSpec, args: &Args, proto: Proto) -> Vec<u8> {
        let mut out = ReplyBuf::new(proto);
        let mut db = self.node.lock_db(self.id);
        run_data(&mut SingleDb(&mut db), spec.handler, args, &self.exec_cfg, self.now_ms, &mut out);
        self.node.shards[self.id].publish(&db);
        out.buf
    }

    /// The shards a set of queued commands and watched keys touch (for EXEC).
    pub fn shards_of_transaction(&mut self, c: &Conn) -> Vec<ShardId> {
        let mut all = Vec::new();
        if let Some(m) = c.multi.as_ref() {
            for q in &m.queued {
                if !matches!(q.spec.handler, Handler::Server) {
                    self.shards_of(q.spec, &q.args.args());
                    all.extend_from_slice(&self.shard_set);
                }
            }
        }
        all.extend(c.watched.iter().map(|w| w.shard));
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Forgets this connection's WATCHes.
    pub fn release_watches(&mut self, c: &mut Conn) {
        for w in c.watched.drain(..) {
            self.node.lock_db(w.shard).unwatch(&w.key);
        }
    }

    /// Active expiry of this shard's keys within `budget`.
    pub fn active_expire(&mut self, budget: std::time::Duration) {
        let mut db = self.node.lock_db(self.id);
        let now = unix_ms();
        // The LRU clock has a resolution of seconds: once per tick keeps SET's stamps fresh.
        db.set_clock(now);
        let n = db.active_expire(now, budget);
        self.node.shards[self.id].publish(&db);
        drop(db);
        if n > 0 {
            self.node.shards[self.id].expired_keys.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// Runs a data command against `ks`, writing one reply to `out`.
///
/// Blocking commands cannot wait yet: they run as inside MULTI (answering at once as
/// if their timeout had passed) — see docs/compatibility.md.
pub fn run_data(ks: &mut dyn Keyspace, h: Handler, args: &Args, cfg: &ExecConfig, now_ms: u64, out: &mut ReplyBuf) {
    let start = out.buf.len();
    let mut ctx = Ctx::new(ks, now_ms, cfg, out);
    // A bug in one command must not take the shard down with it.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match h {
        Handler::Data(f) => f(&mut ctx, args),
        Handler::Blocking(f) => {
            ctx.may_block = false;
            let served = f(&mut ctx, args);
            debug_assert_eq!(served, Blocked::Served);
        }
        Handler::Server => ctx.out.error("ERR internal error: not a data command"),
    }));
    if r.is_err() {
        tracing::error!("command {:?} panicked", String::from_utf8_lossy(args.get(0)));
        out.buf.truncate(start);
        out.error("ERR internal error while running the command");
    }
}

/// Several shards' keyspaces, locked in ascending shard order for one command.
pub struct MultiDb<'a> {
    node: &'a Node,
    guards: Vec<(ShardId, MutexGuard<'a, Db>)>,
}

impl<'a> MultiDb<'a> {
    pub fn lock(node: &'a Node, shards: &[ShardId]) -> Self {
        MultiDb { node, guards: node.lock_dbs(shards) }
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

impl Drop for MultiDb<'_> {
    fn drop(&mut self) {
        for (s, db) in &self.guards {
            self.node.shards[*s].publish(db);
        }
    }
}

impl Keyspace for MultiDb<'_> {
    fn db(&mut self, key: &[u8]) -> &mut Db {
        let i = self.index_of(self.node.shard_of_key(key));
        &mut self.guards[i].1
    }

    fn each_db(&mut self, f: &mut dyn FnMut(&mut Db)) {
        for g in &mut self.guards {
            f(&mut g.1);
        }
    }

    fn db_for_slot(&mut self, slot: u16) -> &mut Db {
        let i = self.index_of(self.node.shard_of_slot(slot));
        &mut self.guards[i].1
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
