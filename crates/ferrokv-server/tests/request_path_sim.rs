//! A deterministic simulation of the request path.
//!
//! Each seed builds a node of one to three shards and drives their cores
//! ([`ShardCore`]) on this one thread, with the IO replaced by a seeded schedule:
//! clients send their pipelines in random pieces (split anywhere, even inside a
//! command), cross-shard messages are delivered in random interleavings (FIFO per
//! lane, as the mailboxes are), the clock moves in random steps (blocking timeouts,
//! lazy and active expiry), and the keys' slots are handed between shards at random
//! moments (`balance::move_slot`, what the balancer and `CLUSTER SLOT-CORE` do: between
//! a command's routing and its execution, under forwarded commands in flight, blocked
//! clients and WATCHes). The workload mixes single-key and multi-key commands over a
//! few shared keys of every type (so WRONGTYPE happens), MULTI/EXEC with WATCH,
//! blocking pops with timeouts, and expiry.
//!
//! Checks, per seed:
//! - every execution the cores traced, replayed in the same order on one single-shard
//!   keyspace (the model), gives the same reply: the node behaves as one serial server;
//! - every client receives, in request order, exactly the replies the trace implies
//!   (nothing lost, duplicated or reordered; blocked clients served or timed out);
//! - nothing is left hanging once the schedule has delivered everything;
//! - the effects stream of all shards, merged and replayed on an empty keyspace as a
//!   replica would (never expiring keys itself), reproduces the node's final keyspace,
//!   which also equals the model's.
//!
//! `FERROKV_SIM_SEEDS` sets how many seeds run (default 5000); `FERROKV_SIM_SEED`
//! replays one. A failure prints its seed.

use ferrokv_commands::{execute, lookup, Env, ExecConfig, SingleDb};
use ferrokv_resp::{Args, OwnedArgs, Proto, ReplyBuf, Value};
use ferrokv_server::conn::{Conn, ConnTable};
use ferrokv_server::dispatch::{ShardCore, TraceEvent};
use ferrokv_server::msg::Msg;
use ferrokv_server::node::{ClientMeta, Node};
use ferrokv_store::effects::{merge, to_commands};
use ferrokv_store::{Db, Expiry};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// The clock at the start of every run (Unix milliseconds).
const T0: u64 = 1_800_000_000_000;

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One request of a client's script.
#[derive(Clone, Debug)]
enum Req {
    Data(Vec<String>),
    Multi,
    Queued(Vec<String>),
    Exec,
    Discard,
    Watch(Vec<String>),
}

impl Req {
    fn words(&self) -> Vec<String> {
        match self {
            Req::Data(w) | Req::Queued(w) => w.clone(),
            Req::Multi => vec!["MULTI".into()],
            Req::Exec => vec!["EXEC".into()],
            Req::Discard => vec!["DISCARD".into()],
            Req::Watch(keys) => std::iter::once("WATCH".to_string()).chain(keys.iter().cloned()).collect(),
        }
    }
}

const KEYS: &[&str] = &["a", "b", "c", "d", "e", "f", "{a}x", "g"];

fn key(r: &mut Rng) -> String {
    r.pick(KEYS).to_string()
}

fn words(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

/// A random data command over the shared keys.
fn data_command(r: &mut Rng, may_block: bool) -> Vec<String> {
    let (k1, k2, k3) = (key(r), key(r), key(r));
    let v = format!("v{}", r.below(5));
    let n = r.below(4).to_string();
    let ms = (1 + r.below(300)).to_string();
    let timeout = format!("0.{:03}", 10 + r.below(200));
    let mut w = match r.below(36) {
        0 => words(&["SET", &k1, &v]),
        1 => words(&["SET", &k1, &v, "PX", &ms]),
        2 => words(&["SET", &k1, &v, if r.chance(50) { "NX" } else { "XX" }]),
        3 => words(&["GET", &k1]),
        4 => words(&["INCR", &k1]),
        5 => words(&["APPEND", &k1, &v]),
        6 => words(&["DEL", &k1, &k2]),
        7 => words(&["EXISTS", &k1, &k2, &k3]),
        8 => words(&["MSET", &k1, &v, &k2, &n]),
        9 => words(&["MGET", &k1, &k2, &k3]),
        10 => words(&["PEXPIRE", &k1, &ms]),
        11 => words(&["PTTL", &k1]),
        12 => words(&["GETEX", &k1, "PX", &ms]),
        13 => words(&["GETDEL", &k1]),
        14 => words(&["LPUSH", &k1, &v, &n]),
        15 => words(&["RPUSH", &k1, &v]),
        16 => words(&["LPOP", &k1]),
        17 => words(&["LRANGE", &k1, "0", "-1"]),
        18 => words(&["LMOVE", &k1, &k2, "LEFT", "RIGHT"]),
        19 => words(&["SADD", &k1, &v, &n]),
        20 => words(&["SREM", &k1, &v]),
        21 => words(&["SCARD", &k1]),
        22 => words(&["SUNIONSTORE", &k1, &k2, &k3]),
        23 => words(&["HSET", &k1, &n, &v]),
        24 => words(&["HINCRBYFLOAT", &k1, &n, "1.5"]),
        25 => words(&["HGET", &k1, &n]),
        26 => words(&["ZADD", &k1, &n, &v]),
        27 => words(&["ZRANGE", &k1, "0", "-1", "WITHSCORES"]),
        28 => words(&["ZPOPMIN", &k1]),
        29 => words(&["INCRBYFLOAT", &k1, "0.5"]),
        30 => words(&["RENAME", &k1, &k2]),
        31 => words(&["TYPE", &k1]),
        32 if may_block => words(&["BLPOP", &k1, &k2, &timeout]),
        33 if may_block => words(&["BRPOPLPUSH", &k1, &k2, &timeout]),
        34 if may_block => words(&["BZPOPMIN", &k1, &timeout]),
        35 => words(&["PERSIST", &k1]),
        _ => words(&["STRLEN", &k1]),
    };
    if r.chance(3) {
        w = words(&["FLUSHALL"]);
    }
    w
}

fn script(r: &mut Rng) -> Vec<Req> {
    let mut out = Vec::new();
    let len = 3 + r.below(25);
    while out.len() < len as usize {
        if r.chance(15) {
            if r.chance(50) {
                out.push(Req::Watch(vec![key(r), key(r)]));
            }
            out.push(Req::Multi);
            for _ in 0..1 + r.below(4) {
                out.push(Req::Queued(data_command(r, true)));
            }
            out.push(if r.chance(90) { Req::Exec } else { Req::Discard });
        } else {
            out.push(Req::Data(data_command(r, true)));
        }
    }
    out
}

fn encode(words: &[String]) -> Vec<u8> {
    let mut b = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        b.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    b
}

struct Client {
    home: usize,
    idx: usize,
    token: u64,
    script: Vec<Req>,
    /// The script, encoded, and how much of it was sent.
    bytes: Vec<u8>,
    sent: usize,
    received: Vec<u8>,
}

/// One node per shard count and `shard-hop` mode, reused across seeds (a node lives for
/// the process).
fn node(shards: usize, hop_lock: bool) -> &'static Node {
    static NODES: Mutex<Vec<(usize, bool, usize)>> = Mutex::new(Vec::new());
    let mut nodes = NODES.lock().unwrap();
    if let Some(&(_, _, addr)) = nodes.iter().find(|(n, l, _)| *n == shards && *l == hop_lock) {
        // SAFETY: the address of a leaked &'static Node stored below.
        return unsafe { &*(addr as *const Node) };
    }
    // No save points: a simulated FLUSHALL must not write dump.rdb into the crate.
    let shard_hop = if hop_lock { "lock" } else { "forward" }.to_string();
    let cfg = ferrokv_server::config::Config { save: String::new(), shard_hop, ..Default::default() };
    let n = Node::new(cfg, shards, None);
    nodes.push((shards, hop_lock, n as *const Node as usize));
    n
}

fn meta(id: u64, shard: usize, token: u64) -> Arc<ClientMeta> {
    Arc::new(ClientMeta::new(id, shard, token, -1, format!("sim:{id}"), "sim:0".into(), T0))
}

/// Complete RESP frames in `buf`.
fn frames(buf: &[u8]) -> usize {
    let mut pos = 0;
    let mut n = 0;
    while let Ok(Some((_, used))) = ferrokv_resp::parse_value(&buf[pos..]) {
        pos += used;
        n += 1;
    }
    n
}

/// Runs a command against a plain keyspace, as the model and the replica do.
fn run_on(db: &mut Db, args: &[Vec<u8>], now_ms: u64, may_block: bool) -> (Vec<u8>, bool) {
    let owned = OwnedArgs::from_slices(args.iter().map(|a| a.as_slice()));
    let args: Args = owned.args();
    let spec = lookup(args.get(0)).expect("known command");
    let spec = if !spec.subcommands.is_empty() && args.len() > 1 {
        ferrokv_commands::table::lookup_sub(spec, args.get(1)).unwrap_or(spec)
    } else {
        spec
    };
    let cfg = ExecConfig::default();
    let mut out = ReplyBuf::new(Proto::Resp2);
    let env = Env {
        cfg: &cfg,
        now_ms,
        may_block,
        track_keys: false,
        notify: 0,
        caller: ferrokv_commands::exec::Caller::NONE,
    };
    let o = execute(&mut SingleDb(db), spec, &args, env, &mut out, &mut Default::default());
    (out.buf, o.blocked != ferrokv_commands::table::Blocked::Served)
}

/// Every live key's type, contents (sorted where Redis's order is unspecified) and
/// expiry time, read through the commands at `now`.
fn dump(dbs: &mut [&mut Db], now: u64) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    for db in dbs.iter_mut() {
        let mut keys = Vec::new();
        db.keys_matching(b"*", now, &mut keys);
        for k in keys {
            let q = |db: &mut Db, w: &[&[u8]]| {
                let args: Vec<Vec<u8>> = w.iter().map(|x| x.to_vec()).collect();
                let (reply, _) = run_on(db, &args, now, false);
                ferrokv_resp::parse_value(&reply).expect("reply parses").expect("complete").0
            };
            let Value::Simple(t) = q(db, &[b"TYPE", &k]) else { panic!("TYPE") };
            let content = match t.as_bytes() {
                b"string" => q(db, &[b"GET", &k]),
                b"list" => q(db, &[b"LRANGE", &k, b"0", b"-1"]),
                b"set" => q(db, &[b"SMEMBERS", &k]),
                b"hash" => q(db, &[b"HGETALL", &k]),
                b"zset" => q(db, &[b"ZRANGE", &k, b"0", b"-1", b"WITHSCORES"]),
                other => panic!("unexpected type {}", String::from_utf8_lossy(other)),
            };
            let content = match (t.as_str(), content) {
                ("set", Value::Array(mut items)) => {
                    items.sort_by_key(ferrokv_resp::format_for_humans);
                    Value::Array(items)
                }
                ("hash", Value::Array(items)) => {
                    let mut pairs: Vec<Vec<Value>> = items.chunks(2).map(|c| c.to_vec()).collect();
                    pairs.sort_by_key(|p| ferrokv_resp::format_for_humans(&p[0]));
                    Value::Array(pairs.concat())
                }
                (_, v) => v,
            };
            let ttl = q(db, &[b"PEXPIRETIME", &k]);
            let line = format!(
                "{} {} ttl={}",
                t,
                ferrokv_resp::format_for_humans(&content),
                ferrokv_resp::format_for_humans(&ttl)
            );
            out.insert(k, line);
        }
    }
    out
}

/// The replies a client must have received, from its script and its trace events.
///
/// A client's commands run in request order on each shard, but a command forwarded to
/// another shard may run after a later one that ran at home (they touch different
/// keys), so each request takes the first unused event that is its execution.
fn expected_replies(c: &Client, events: &[&TraceEvent]) -> Result<Vec<u8>, String> {
    let mut used = vec![false; events.len()];
    let mut out = Vec::new();
    let mut queued: Vec<Vec<String>> = Vec::new();
    let same =
        |args: &[Vec<u8>], w: &[String]| args.len() == w.len() && args.iter().zip(w).all(|(a, b)| a == b.as_bytes());
    for req in &c.script {
        match req {
            Req::Watch(_) | Req::Multi | Req::Discard => {
                out.extend_from_slice(b"+OK\r\n");
                queued.clear();
            }
            Req::Queued(w) => {
                out.extend_from_slice(b"+QUEUED\r\n");
                queued.push(w.clone());
            }
            Req::Exec => {
                let t = (0..events.len()).find(|&i| !used[i] && matches!(events[i], TraceEvent::Transaction { .. }));
                let Some(t) = t else { return Err("EXEC left no trace".into()) };
                used[t] = true;
                let TraceEvent::Transaction { ran, .. } = events[t] else { unreachable!() };
                if !ran {
                    out.extend_from_slice(b"*-1\r\n");
                    continue;
                }
                out.extend_from_slice(format!("*{}\r\n", queued.len()).as_bytes());
                let mut at = t + 1;
                for w in &queued {
                    match events.get(at) {
                        Some(TraceEvent::Exec { args, reply, in_exec: true, .. }) if same(args, w) => {
                            used[at] = true;
                            out.extend_from_slice(reply);
                            at += 1;
                        }
                        other => return Err(format!("EXEC: expected {w:?} to run next, trace has {other:?}")),
                    }
                }
            }
            Req::Data(w) => {
                let first = (0..events.len()).find(|&i| {
                    !used[i] && matches!(events[i], TraceEvent::Exec { args, in_exec: false, retry: false, .. } if same(args, w))
                });
                let Some(first) = first else { return Err(format!("no execution traced for {w:?}")) };
                used[first] = true;
                let TraceEvent::Exec { reply, waits, .. } = events[first] else { unreachable!() };
                if !waits {
                    out.extend_from_slice(reply);
                    continue;
                }
                // Waiting: served later by a retry that does not wait, or timed out. While
                // it waits the client runs nothing else, so the retries that follow,
                // before any later request's first run, are this command's.
                let mut served = None;
                for i in first + 1..events.len() {
                    if used[i] {
                        continue;
                    }
                    // A later request's first run means this one had timed out.
                    let TraceEvent::Exec { args, reply, waits, retry: true, .. } = events[i] else { break };
                    if args[0] != w[0].as_bytes() {
                        break;
                    }
                    used[i] = true;
                    if !waits {
                        served = Some(reply.clone());
                        break;
                    }
                }
                out.extend_from_slice(served.as_deref().unwrap_or(b"*-1\r\n"));
            }
        }
    }
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(format!("trace has executions the script does not explain: {:?}", events[i]));
    }
    Ok(out)
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut r = Rng::new(seed);
    let shards = 1 + r.below(3) as usize;
    // Commands for another shard forwarded, or run under its lock (`shard-hop`).
    let node = node(shards, r.below(2) == 1);
    for s in 0..shards {
        let mut db = Db::with_seed(seed.wrapping_add(s as u64));
        db.enable_effects();
        *node.lock_db(s) = db;
        *node.lock_waiters(s) = Default::default();
    }
    // Every seed starts from the node's initial slot → shard table (the node outlives
    // the seeds, and an earlier seed's handoffs moved slots).
    for k in KEYS {
        let slot = ferrokv_store::key_slot(k.as_bytes());
        let home = ferrokv_server::node::initial_shard_of_slot(slot, shards);
        ferrokv_server::balance::move_slot(node, slot, home, None).map_err(|e| format!("reset: {e:?}"))?;
    }
    let mut handoffs = 0;
    let trace: Rc<RefCell<Vec<TraceEvent>>> = Rc::default();
    let mut cores: Vec<ShardCore> = (0..shards)
        .map(|i| {
            let mut c = ShardCore::new(node, i);
            c.trace = Some(trace.clone());
            c.now_ms = T0;
            c
        })
        .collect();
    let mut tables: Vec<ConnTable> = (0..shards).map(|_| ConnTable::default()).collect();
    let mut clients = Vec::new();
    for i in 0..2 + r.below(4) {
        let home = r.below(shards as u64) as usize;
        let (idx, token) = tables[home].reserve();
        tables[home].put(idx, Conn::new(-1, token, meta(i + 1, home, token), true, T0));
        let script = script(&mut r);
        let bytes = script.iter().flat_map(|q| encode(&q.words())).collect();
        clients.push(Client { home, idx, token, script, bytes, sent: 0, received: Vec::new() });
    }
    // Messages in flight, per (from, to) lane, in order.
    let mut lanes: BTreeMap<(usize, usize), VecDeque<Msg>> = BTreeMap::new();
    let mut now = T0;
    let mut steps = 0;
    loop {
        steps += 1;
        if steps > 20_000 {
            return Err("no progress after 20000 steps: something hangs".into());
        }
        // Move what the cores queued into the lanes, and replies to the clients.
        for (from, core) in cores.iter_mut().enumerate() {
            for (to, out) in core.outbox.iter_mut().enumerate() {
                lanes.entry((from, to)).or_default().extend(out.drain(..));
            }
        }
        for c in clients.iter_mut() {
            if let Some(conn) = tables[c.home].get(c.idx) {
                c.received.append(&mut conn.out);
            }
        }
        let busy_lanes: Vec<(usize, usize)> = lanes.iter().filter(|(_, q)| !q.is_empty()).map(|(k, _)| *k).collect();
        let sending: Vec<usize> = (0..clients.len()).filter(|&i| clients[i].sent < clients[i].bytes.len()).collect();
        let done = busy_lanes.is_empty()
            && sending.is_empty()
            && clients.iter().all(|c| frames(&c.received) == c.script.len());
        if done {
            break;
        }
        match r.below(11) {
            10 if shards > 1 => {
                // A slot of the shared keys handed to another shard.
                let slot = ferrokv_store::key_slot(key(&mut r).as_bytes());
                let to = r.below(shards as u64) as usize;
                ferrokv_server::balance::move_slot(node, slot, to, None).map_err(|e| format!("handoff: {e:?}"))?;
                handoffs += 1;
            }
            0..=3 if !sending.is_empty() => {
                let c = &mut clients[*r.pick(&sending)];
                let rest = c.bytes.len() - c.sent;
                let n = if r.chance(50) { rest } else { 1 + r.below(rest as u64) as usize };
                let piece = c.bytes[c.sent..c.sent + n].to_vec();
                c.sent += n;
                let core = &mut cores[c.home];
                core.now_ms = now;
                let conn = tables[c.home].get(c.idx).expect("client connection");
                if !core.on_data(conn, &piece) {
                    return Err("query buffer limit hit".into());
                }
            }
            4..=7 if !busy_lanes.is_empty() => {
                let (from, to) = *r.pick(&busy_lanes);
                let q = lanes.get_mut(&(from, to)).expect("lane");
                let n = 1 + r.below(q.len() as u64) as usize;
                let batch: Vec<Msg> = q.drain(..n).collect();
                let core = &mut cores[to];
                core.now_ms = now;
                core.prefetch_forwarded(&batch);
                let mut touched = Vec::new();
                for m in batch {
                    if let Some(left) = core.handle_message(m, &mut tables[to], &mut touched) {
                        return Err(format!("message the core could not handle: {}", left.kind()));
                    }
                }
            }
            _ => {
                now += r.below(40);
                for (s, core) in cores.iter_mut().enumerate() {
                    core.now_ms = now;
                    let mut touched = Vec::new();
                    core.expire_blocked(&mut tables[s], &mut touched);
                    if r.chance(30) {
                        core.active_expire(std::time::Duration::from_secs(1));
                    }
                }
            }
        }
    }
    let _ = clients.iter().map(|c| c.token).count();
    HANDOFFS.fetch_add(handoffs, std::sync::atomic::Ordering::Relaxed);

    // 1. The trace, replayed serially on one keyspace, gives the same replies.
    let events = trace.borrow().clone();
    let mut model = Db::with_seed(seed);
    let mut last_now = T0;
    for (i, e) in events.iter().enumerate() {
        match e {
            TraceEvent::Exec { args, reply, waits, in_exec, now_ms, .. } => {
                last_now = *now_ms;
                let (want, want_waits) = run_on(&mut model, args, *now_ms, !in_exec);
                if &want != reply || want_waits != *waits {
                    let show = |b: &[u8]| String::from_utf8_lossy(b).replace("\r\n", " ");
                    let cmd: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
                    return Err(format!(
                        "execution {i} {cmd:?} (shards: {shards}): node replied {:?} (waits {waits}), a serial server {:?} (waits {want_waits})",
                        show(reply),
                        show(&want)
                    ));
                }
            }
            TraceEvent::Expired { keys } => {
                for k in keys {
                    model.remove(k, last_now);
                }
            }
            TraceEvent::Transaction { .. } => {}
        }
    }

    // 2. Each client got exactly what the trace implies, in order.
    for (i, c) in clients.iter().enumerate() {
        let mine: Vec<&TraceEvent> = events
            .iter()
            .filter(|e| match e {
                TraceEvent::Exec { client, .. } | TraceEvent::Transaction { client, .. } => {
                    *client == (c.home, c.token)
                }
                TraceEvent::Expired { .. } => false,
            })
            .collect();
        let want = expected_replies(c, &mine).map_err(|e| {
            let evs: Vec<String> = mine.iter().map(|e| format!("  {e:?}")).collect();
            format!("client {i} (home {}): {e}\nscript {:?}\nits events:\n{}", c.home, c.script, evs.join("\n"))
        })?;
        if want != c.received {
            let show = |b: &[u8]| String::from_utf8_lossy(b).replace("\r\n", " ");
            return Err(format!(
                "client {i} (home {}) script {:?}\n received {:?}\n expected {:?}",
                c.home,
                c.script,
                show(&c.received),
                show(&want)
            ));
        }
    }

    // 3. The effects stream replays to the node's keyspace, which is the model's.
    let mut logs = Vec::new();
    for s in 0..shards {
        logs.push(node.lock_db(s).effects().expect("effects on").drain());
    }
    let units = merge(&mut logs).map_err(|e| format!("effects do not merge: {e:?}"))?;
    let mut replica = Db::with_seed(seed ^ 0xabc);
    // Applying a master's stream: keys never expire by themselves (the master sends DEL).
    replica.expiry = Expiry::Never;
    for cmd in to_commands(&units) {
        if cmd[0] == b"MULTI" || cmd[0] == b"EXEC" {
            continue;
        }
        let (reply, _) = run_on(&mut replica, &cmd, now, false);
        if reply.starts_with(b"-") {
            let cmd: Vec<String> = cmd.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            return Err(format!("replaying {cmd:?} failed: {}", String::from_utf8_lossy(&reply)));
        }
    }
    let end = now + 1;
    let mut guards: Vec<_> = (0..shards).map(|s| node.lock_db(s)).collect();
    let mut node_dbs: Vec<&mut Db> = guards.iter_mut().map(|g| &mut **g).collect();
    let node_state = dump(&mut node_dbs, end);
    drop(node_dbs);
    drop(guards);
    // Then it serves clients as a replica does: expired keys hidden from reads.
    replica.expiry = ferrokv_store::Expiry::HideOnRead;
    let replica_state = dump(&mut [&mut replica], end);
    let model_state = dump(&mut [&mut model], end);
    if node_state != model_state {
        return Err(format!("node's keyspace {node_state:?}\n differs from the model's {model_state:?}"));
    }
    if node_state != replica_state {
        return Err(format!("node's keyspace {node_state:?}\n differs from the replayed effects' {replica_state:?}"));
    }
    Ok(())
}

/// Slot handoffs the seeds made (so a run shows it exercised them).
static HANDOFFS: AtomicU64 = AtomicU64::new(0);

#[test]
fn request_path_matches_a_serial_server_and_its_effects_replay() {
    if let Ok(s) = std::env::var("FERROKV_SIM_SEED") {
        let seed: u64 = s.parse().expect("FERROKV_SIM_SEED is a number");
        if let Err(e) = run_seed(seed) {
            panic!("seed {seed}: {e}");
        }
        return;
    }
    let seeds: u64 = std::env::var("FERROKV_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
    for seed in 0..seeds {
        if let Err(e) = run_seed(seed) {
            panic!("seed {seed} failed (replay with FERROKV_SIM_SEED={seed}): {e}");
        }
    }
    let handoffs = HANDOFFS.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{seeds} seeds, {handoffs} slot handoffs");
    assert!(seeds < 100 || handoffs > seeds, "the seeds handed slots between shards");
}
