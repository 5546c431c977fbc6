//! Client-side caching: CLIENT TRACKING, CACHING, GETREDIR, TRACKINGINFO and the
//! invalidation messages (Redis's tracking.c).
//!
//! **Where the table lives.** Each shard's keyspace holds the tracking entries of its
//! own keys (`ferrokv_store::tracking`): the execution function remembers the keys of a
//! read-only command for its caller, and a key that changes, expires or is evicted
//! leaves an invalidation owed in that keyspace, all under the lock the command holds
//! anyway. Nothing node-wide is locked on the write path; the only node-wide structure
//! is the BCAST prefix registry, changed by CLIENT TRACKING and copied into every
//! keyspace.
//!
//! **Sending.** Whoever ran the command takes what its keyspaces owe right after the
//! command's reply ([`ShardCore::settle_tracking`]) and sends each reader a [`Notice`] on
//! its home shard, where the connection's tracking state decides what to write (its
//! own push in RESP3, the `__redis__:invalidate` message of the client it redirects
//! to, `tracking-redir-broken`, nothing). Order matters for one case: a read answered
//! by the key's shard for a client on another shard must reach that client before the
//! invalidation of a later write. So a notice for a client of a third shard leaves from
//! the key's shard (relayed there when another thread wrote the key, over the same FIFO
//! lane as that shard's replies); a notice for a client of the writer's own shard is
//! written behind its pending replies. BCAST keys gather on the key's shard and go out
//! once per loop iteration, one message per prefix, as Redis sends them before sleeping.
//! A flush owes every tracking client a null; it travels through every shard (each
//! relays a marker to every home, which writes the null once all have arrived), for the
//! same ordering reason.

use crate::conn::Conn;
use crate::dispatch::{Held, ShardCore};
use crate::msg::Msg;
use ferrokv_commands::exec::Caller;
use ferrokv_commands::util::{eq_ic, ERR_SYNTAX};
use ferrokv_resp::{Args, Proto};
use ferrokv_store::tracking::{Owed, Reader};
use ferrokv_store::Db;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A connection's tracking state (`None` in `Conn::tracking` while it is off).
#[derive(Debug, Default)]
pub struct ClientTracking {
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING was given: it applies to the next command (or transaction).
    pub caching: bool,
    /// The client it redirects to is gone (Redis's `CLIENT_TRACKING_BROKEN_REDIR`).
    pub broken_redir: bool,
    /// The client id invalidations go to (0: this connection).
    pub redirect: u64,
    /// BCAST prefixes, sorted (as Redis's radix tree lists them).
    pub prefixes: Vec<Vec<u8>>,
}

/// Flags of CLIENT LIST (`t`, `R`, `B`), kept in `ClientMeta::tracking`.
pub const META_ON: u32 = 1;
pub const META_BROKEN: u32 = 2;
pub const META_BCAST: u32 = 4;

/// What a tracking client is told, sent to its home shard.
#[derive(Debug, Clone)]
pub enum Notice {
    /// Default mode: keys it read changed while `current` ran a command.
    Keys { keys: Arc<Vec<Vec<u8>>>, current: u64 },
    /// BCAST: keys under one of its prefixes changed (NOLOOP already applied).
    Bcast(Arc<Vec<Vec<u8>>>),
    /// The keyspace was flushed: a null invalidation.
    Flush,
    /// For the client another one redirects to: write it (`keys`, or a null encoded
    /// in the redirecting client's protocol).
    Redirected { keys: Option<Arc<Vec<Vec<u8>>>>, null_resp3: bool },
}

/// A client in BCAST mode, as the prefix registry lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BcastClient {
    pub reader: Reader,
    pub noloop: bool,
}

/// The node's prefixes and their clients, sorted by prefix.
pub type BcastTable = Vec<(Vec<u8>, Vec<BcastClient>)>;

/// Node-wide tracking state.
#[derive(Default)]
pub struct TrackingShared {
    /// Connections with tracking on (INFO's `tracking_clients`): 0 skips everything.
    pub clients: AtomicU64,
    prefixes: Mutex<Arc<BcastTable>>,
    next_flush: AtomicU64,
    /// A shard is bringing the node under `tracking-table-max-keys` (one at a time, so
    /// two shards never both forget the same excess).
    limiting: std::sync::atomic::AtomicBool,
}

impl TrackingShared {
    pub fn bcast_table(&self) -> Arc<BcastTable> {
        self.prefixes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn on(&self) -> bool {
        self.clients.load(Ordering::Relaxed) > 0
    }
}

/// A shard's own tracking work between iterations.
#[derive(Default)]
pub struct CoreTracking {
    /// BCAST keys of this shard's keyspace changed this iteration, with who changed them.
    bcast: Vec<(Vec<u8>, u64)>,
    /// Notices for this shard's connections, written by the event loop.
    out: Vec<(u64, Notice)>,
    /// Flush markers received per flush id (see the module comment).
    flush_markers: HashMap<u64, usize>,
    /// Every tracking connection of this shard is owed a null.
    null_all: bool,
    /// `tracking-table-max-keys` rounds that ended still over the limit (Redis's
    /// growing effort).
    limit_rounds: u32,
}

impl CoreTracking {
    pub fn has_out(&self) -> bool {
        !self.out.is_empty() || self.null_all
    }
}

/// The caller a command runs for: its id, and itself as a reader when its reads count.
pub fn caller(c: &Conn, home: usize) -> Caller {
    let Some(t) = c.tracking.as_deref() else {
        return Caller { id: c.meta.id, ..Caller::NONE };
    };
    // OPTIN: only after CACHING yes; OPTOUT: unless CACHING no.
    let counts = !t.bcast && (!t.optin || t.caching) && !(t.optout && t.caching);
    Caller {
        id: c.meta.id,
        reader: counts.then_some(Reader { id: c.meta.id, home: home as u32, token: c.token }),
        push: !t.bcast && t.redirect == 0 && c.proto == Proto::Resp3,
        noloop: t.noloop,
        script: false,
    }
}

/// Where the notices of the client whose command just ran go.
pub enum Own<'a> {
    Nobody,
    /// Its connection lives here: written now, behind its reply.
    Conn(&'a mut Conn),
    /// Its command was forwarded from its home: a push joins the reply's bytes.
    Forwarded {
        home: usize,
        token: u64,
        caller: Caller,
        out: &'a mut ferrokv_resp::ReplyBuf,
    },
}

impl<'a> From<Option<&'a mut Conn>> for Own<'a> {
    fn from(c: Option<&'a mut Conn>) -> Self {
        match c {
            Some(c) => Own::Conn(c),
            None => Own::Nobody,
        }
    }
}

/// After each command: CLIENT CACHING applies to one command or transaction, as
/// Redis's `resetClient` clears it (not after CLIENT itself, nor inside MULTI).
pub fn after_command(c: &mut Conn, args: &Args) {
    let reset = c.multi().is_none() && !eq_ic(args.get(0), "client");
    if let Some(t) = c.tracking.as_deref_mut().filter(|_| reset) {
        t.caching = false;
    }
}

impl ShardCore {
    /// Sends what `db` (the keyspace of `shard`, locked by this thread) owes tracking
    /// clients. `own` is the connection whose command just ran: its own notices are
    /// written now, behind its reply.
    pub fn settle_tracking(&mut self, shard: usize, db: &mut Db, own: Option<&mut Conn>) {
        self.settle_tracking_to(shard, db, &mut own.into());
    }

    /// [`ShardCore::settle_tracking`] with the running client's notices going to `own`.
    pub fn settle_tracking_to(&mut self, shard: usize, db: &mut Db, own: &mut Own) {
        if db.tracking.owes() {
            let owed = db.tracking.take();
            self.dispatch_owed(shard, owed, own);
        }
        let s = &self.node.shards[shard];
        s.tracking_keys.store(db.tracking.keys() as u64, Ordering::Relaxed);
        s.tracking_items.store(db.tracking.items() as u64, Ordering::Relaxed);
    }

    /// [`ShardCore::settle_tracking`] for every keyspace of a multi-shard command.
    pub fn settle_tracking_all(&mut self, ks: &mut crate::dispatch::MultiDb, own: Option<&mut Conn>) {
        self.settle_tracking_all_to(ks, &mut own.into());
    }

    pub fn settle_tracking_all_to(&mut self, ks: &mut crate::dispatch::MultiDb, own: &mut Own) {
        // A FLUSHALL flushed each keyspace: one null per client, not one per shard.
        let mut flushed = false;
        for (_, db) in ks.guards.iter_mut() {
            flushed |= db.tracking.take_flushed();
        }
        if flushed && self.node.tracking.on() {
            self.start_flush();
        }
        for (s, db) in ks.guards.iter_mut() {
            self.settle_tracking_to(*s, db, own);
        }
    }

    fn dispatch_owed(&mut self, shard: usize, mut owed: Owed, own: &mut Own) {
        if std::mem::take(&mut owed.flushed) && self.node.tracking.on() {
            self.start_flush();
        }
        let mut relay = Owed::default();
        for inv in owed.keys {
            let keys = Arc::new(vec![inv.key]);
            for r in inv.readers {
                let notice = Notice::Keys { keys: keys.clone(), current: inv.current };
                if r.home as usize == self.id || shard == self.id {
                    self.notify(r, notice, own);
                } else {
                    // Through the key's shard: behind the replies it sent this client.
                    match relay.keys.last_mut() {
                        Some(last) if last.key == keys[0] && last.current == inv.current => last.readers.push(r),
                        _ => relay.keys.push(ferrokv_store::tracking::Invalidation {
                            key: keys[0].clone(),
                            readers: vec![r],
                            current: inv.current,
                        }),
                    }
                }
            }
        }
        if shard == self.id {
            self.tracking.bcast.append(&mut owed.bcast);
        } else {
            relay.bcast = owed.bcast;
        }
        if !relay.is_empty() {
            self.send(shard, Msg::TrackingRelay(Box::new(relay)));
        }
    }

    /// A relay from a thread that changed this shard's keys (see the module comment).
    pub fn tracking_relay(&mut self, owed: Owed) {
        let id = self.id;
        self.dispatch_owed(id, owed, &mut Own::Nobody);
    }

    /// Hands `notice` to the reader's home: written now when it is `own`, queued for
    /// the event loop when it lives here, sent otherwise.
    fn notify(&mut self, r: Reader, notice: Notice, own: &mut Own) {
        if let Own::Forwarded { home, token, caller, out } = own {
            if *home == r.home as usize && *token == r.token && caller.push {
                if let Notice::Keys { keys, current } = &notice {
                    if !(caller.noloop && *current == caller.id) {
                        out.push(2);
                        out.bulk(b"invalidate");
                        write_keys(out, Some(keys));
                    }
                    return;
                }
            }
        }
        if r.home as usize != self.id {
            self.send(r.home as usize, Msg::Tracking { token: r.token, notice });
            return;
        }
        match own {
            Own::Conn(c) if c.token == r.token => self.write_notice(c, notice),
            _ => self.tracking.out.push((r.token, notice)),
        }
    }

    fn start_flush(&mut self) {
        let id = self.node.tracking.next_flush.fetch_add(1, Ordering::Relaxed);
        self.to_every_shard(id, Self::flush_relay, Msg::TrackingFlushRelay);
    }

    /// A flush `id` passes through this shard: a marker to every home.
    pub fn flush_relay(&mut self, id: u64) {
        self.to_every_shard(id, Self::flush_marker, Msg::TrackingFlushMarker);
    }

    /// Runs `here` for this shard, sends `msg` to every other one.
    fn to_every_shard(&mut self, id: u64, here: fn(&mut Self, u64), msg: fn(u64) -> Msg) {
        for s in 0..self.node.shard_count() {
            if s == self.id {
                here(self, id);
            } else {
                self.send(s, msg(id));
            }
        }
    }

    /// Once every shard's marker of flush `id` arrived, this shard's tracking clients
    /// get their null.
    pub fn flush_marker(&mut self, id: u64) {
        let n = self.node.shard_count();
        let m = self.tracking.flush_markers.entry(id).or_default();
        *m += 1;
        if *m >= n {
            self.tracking.flush_markers.remove(&id);
            self.tracking.null_all = true;
        }
    }

    /// Writes a notice to its tracking connection `c` (Redis's `sendTrackingMessage`).
    pub fn write_notice(&mut self, c: &mut Conn, notice: Notice) {
        let keys = match notice {
            Notice::Redirected { keys, null_resp3 } => return write_redirected(c, keys.as_deref(), null_resp3),
            Notice::Keys { keys, current } => {
                let Some(t) = c.tracking.as_deref() else { return };
                // A client that switched to BCAST hears no more of the keys it read.
                if t.bcast || (t.noloop && current == c.meta.id) {
                    return;
                }
                Some(keys)
            }
            Notice::Bcast(keys) => Some(keys),
            Notice::Flush => None,
        };
        let resp3 = c.proto == Proto::Resp3;
        let Some(t) = c.tracking.as_deref_mut() else { return };
        if t.redirect != 0 {
            let target = self.node.clients.lock().unwrap_or_else(|p| p.into_inner()).get(&t.redirect).cloned();
            match target {
                None => {
                    t.broken_redir = true;
                    c.meta.tracking.fetch_or(META_BROKEN, Ordering::Relaxed);
                    if resp3 {
                        let id = t.redirect as i64;
                        c.push(|r| {
                            r.push(2);
                            r.bulk(b"tracking-redir-broken");
                            r.integer(id);
                        });
                    }
                }
                Some(m) => {
                    let notice = Notice::Redirected { keys, null_resp3: resp3 };
                    if m.shard == self.id {
                        self.tracking.out.push((m.token, notice));
                    } else {
                        self.send(m.shard, Msg::Tracking { token: m.token, notice });
                    }
                }
            }
            return;
        }
        if resp3 {
            c.push(|r| {
                r.push(2);
                r.bulk(b"invalidate");
                write_keys(r, keys.as_deref());
            });
        }
    }

    /// BCAST keys gathered this iteration go out, one message per prefix to each of
    /// its clients (Redis's `trackingBroadcastInvalidationMessages`).
    pub fn flush_bcast(&mut self) {
        if self.tracking.bcast.is_empty() {
            return;
        }
        let mut changed: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for (k, by) in self.tracking.bcast.drain(..) {
            changed.insert(k, by);
        }
        let table = self.node.tracking.bcast_table();
        for (prefix, clients) in table.iter() {
            let keys: Vec<(&Vec<u8>, u64)> =
                changed.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, b)| (k, *b)).collect();
            if keys.is_empty() {
                continue;
            }
            let all = Arc::new(keys.iter().map(|(k, _)| (*k).clone()).collect::<Vec<_>>());
            for bc in clients {
                let list = if bc.noloop && keys.iter().any(|(_, by)| *by == bc.reader.id) {
                    let own: Vec<Vec<u8>> =
                        keys.iter().filter(|(_, by)| *by != bc.reader.id).map(|(k, _)| (*k).clone()).collect();
                    if own.is_empty() {
                        continue;
                    }
                    Arc::new(own)
                } else {
                    all.clone()
                };
                self.notify(bc.reader, Notice::Bcast(list), &mut Own::Nobody);
            }
        }
    }

    /// `tracking-table-max-keys`: while the node tracks more keys than the limit, this
    /// shard forgets some of its own as if they changed (their readers are told),
    /// with Redis's effort: 100 keys per round, 100 more for each round that ended
    /// still over the limit. Runs before commands and every tick; one shard at a time,
    /// each counting the others' published totals, so the node lands on the limit.
    pub fn limit_tracking(&mut self, own: Option<&mut Conn>) {
        let node = self.node;
        let max = self.tracking_max_keys;
        if max == 0 || !node.tracking.on() {
            return;
        }
        let others = || -> u64 {
            (0..node.shard_count())
                .filter(|&s| s != self.id)
                .map(|s| node.shards[s].tracking_keys.load(Ordering::Relaxed))
                .sum()
        };
        let mine = node.shards[self.id].tracking_keys.load(Ordering::Relaxed);
        if others() + mine <= max {
            self.tracking.limit_rounds = 0;
            return;
        }
        if mine == 0 || node.tracking.limiting.swap(true, Ordering::Acquire) {
            return;
        }
        // Counted again now that no other shard is forgetting keys.
        let others = others();
        let mut db = node.lock_db(self.id);
        let mut effort = 100 * (self.tracking.limit_rounds as u64 + 1);
        let mut under = false;
        while effort > 0 {
            effort -= 1;
            if !db.tracking.evict_one() {
                break;
            }
            if others + db.tracking.keys() as u64 <= max {
                under = true;
                break;
            }
        }
        self.tracking.limit_rounds = if under { 0 } else { self.tracking.limit_rounds.saturating_add(1) };
        let id = self.id;
        self.settle_tracking(id, &mut db, own);
        drop(db);
        node.tracking.limiting.store(false, Ordering::Release);
    }
}

/// Writes the queued notices and nulls to this shard's connections.
pub fn deliver(core: &mut ShardCore, conns: &mut crate::conn::ConnTable, touched: &mut Vec<usize>) {
    if std::mem::take(&mut core.tracking.null_all) {
        for idx in conns.indexes() {
            if conns.get_ref(idx).is_some_and(|c| c.tracking.is_some() && !c.dead) {
                core.tracking.out.push((conns.get_ref(idx).map_or(0, |c| c.token), Notice::Flush));
            }
        }
    }
    // Writing one may queue another (a redirect to a connection of this shard).
    let mut rounds = 0;
    while !core.tracking.out.is_empty() && rounds < 4 {
        rounds += 1;
        for (tok, notice) in std::mem::take(&mut core.tracking.out) {
            let Some((idx, c)) = conns.by_token(tok) else { continue };
            if c.dead {
                continue;
            }
            core.write_notice(c, notice);
            touched.push(idx);
        }
    }
}

fn write_keys(r: &mut ferrokv_resp::ReplyBuf, keys: Option<&Vec<Vec<u8>>>) {
    match keys {
        Some(keys) => {
            r.array(keys.len());
            for k in keys {
                r.bulk(k);
            }
        }
        None => r.null(),
    }
}

/// The client another one redirects to: a push in RESP3, a message on
/// `__redis__:invalidate` in RESP2 if it is subscribed to anything, else nothing.
fn write_redirected(c: &mut Conn, keys: Option<&Vec<Vec<u8>>>, null_resp3: bool) {
    if c.proto == Proto::Resp3 {
        c.push(|r| {
            r.push(2);
            r.bulk(b"invalidate");
            write_keys(r, keys);
        });
    } else if c.subs.is_some() {
        c.push(|r| {
            r.push(3);
            r.bulk(b"message");
            r.bulk(b"__redis__:invalidate");
            match keys {
                Some(_) => write_keys(r, keys),
                // Redis writes the redirecting client's null.
                None if null_resp3 => r.raw(b"_\r\n"),
                None => r.raw(b"$-1\r\n"),
            }
        });
    }
}

/// Turns tracking off for `c` (CLIENT TRACKING OFF, RESET, a closed connection); the
/// keys it read stay in the tables until they change, as in Redis.
pub fn disable(core: &ShardCore, c: &mut Conn, held: &mut Held) {
    let Some(t) = c.tracking.take() else { return };
    if t.bcast {
        update_prefixes(core, held, |table| {
            for (_, clients) in table.iter_mut() {
                clients.retain(|bc| bc.reader.id != c.meta.id);
            }
            table.retain(|(_, clients)| !clients.is_empty());
        });
    }
    core.node.tracking.clients.fetch_sub(1, Ordering::Relaxed);
    c.meta.tracking.store(0, Ordering::Relaxed);
    c.meta.tracking_redir.store(0, Ordering::Relaxed);
}

/// Changes the node's prefix registry and copies its prefixes into every keyspace
/// (one lock at a time, or through the locks EXEC holds).
fn update_prefixes(core: &ShardCore, held: &mut Held, f: impl FnOnce(&mut BcastTable)) {
    let node = core.node;
    let prefixes: Arc<[Box<[u8]>]> = {
        let mut g = node.tracking.prefixes.lock().unwrap_or_else(|p| p.into_inner());
        let mut table = (**g).clone();
        f(&mut table);
        let p = table.iter().map(|(p, _)| p.clone().into_boxed_slice()).collect::<Vec<_>>();
        *g = Arc::new(table);
        p.into()
    };
    for s in 0..node.shard_count() {
        let p = prefixes.clone();
        held.with_db(node, s, |db| db.tracking.set_prefixes(p));
    }
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p]... [BCAST] [OPTIN] [OPTOUT] [NOLOOP]
pub fn tracking_cmd(core: &mut ShardCore, c: &mut Conn, args: &Args, held: &mut Held) {
    let (mut redirect, mut bcast, mut optin, mut optout, mut noloop) = (0u64, false, false, false, false);
    let mut prefixes: Vec<Vec<u8>> = Vec::new();
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        let a = args.get(j);
        if eq_ic(a, "redirect") && more {
            j += 1;
            if redirect != 0 {
                return c.error("ERR A client can only redirect to a single other client");
            }
            let id = match ferrokv_commands::util::parse_i64(args.get(j)) {
                Some(n) => n,
                None => return c.error(ferrokv_commands::util::ERR_NOT_INT),
            };
            let exists =
                id > 0 && core.node.clients.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&(id as u64));
            if !exists {
                return c.error("ERR The client ID you want redirect to does not exist");
            }
            redirect = id as u64;
        } else if eq_ic(a, "bcast") {
            bcast = true;
        } else if eq_ic(a, "optin") {
            optin = true;
        } else if eq_ic(a, "optout") {
            optout = true;
        } else if eq_ic(a, "noloop") {
            noloop = true;
        } else if eq_ic(a, "prefix") && more {
            j += 1;
            prefixes.push(args.get(j).to_vec());
        } else {
            return c.error(ERR_SYNTAX);
        }
        j += 1;
    }
    let on = args.get(2);
    if eq_ic(on, "off") {
        disable(core, c, held);
        return c.reply(|r| r.ok());
    }
    if !eq_ic(on, "on") {
        return c.error(ERR_SYNTAX);
    }
    if !bcast && !prefixes.is_empty() {
        return c.error("ERR PREFIX option requires BCAST mode to be enabled");
    }
    if let Some(t) = c.tracking.as_deref() {
        if t.bcast != bcast {
            return c.error(
                "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
            );
        }
    }
    if bcast && (optin || optout) {
        return c.error("ERR OPTIN and OPTOUT are not compatible with BCAST");
    }
    if optin && optout {
        return c.error("ERR You can't specify both OPTIN mode and OPTOUT mode");
    }
    if let Some(t) = c.tracking.as_deref() {
        if (optin && t.optout) || (optout && t.optin) {
            return c.error(
                "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
            );
        }
    }
    if bcast {
        let existing = c.tracking.as_deref().map(|t| t.prefixes.as_slice()).unwrap_or_default();
        if let Some(e) = prefix_collision(existing, &prefixes) {
            return c.error(&e);
        }
    }
    // Enable (Redis's enableTracking): the flags are replaced, the prefixes added to.
    if c.tracking.is_none() {
        core.node.tracking.clients.fetch_add(1, Ordering::Relaxed);
    }
    let t = c.tracking.get_or_insert_with(Default::default);
    t.broken_redir = false;
    t.redirect = redirect;
    t.bcast = bcast;
    t.optin = optin;
    t.optout = optout;
    t.noloop = noloop;
    let reader = Reader { id: c.meta.id, home: core.id as u32, token: c.token };
    if bcast {
        if prefixes.is_empty() {
            prefixes.push(Vec::new());
        }
        let mut added = Vec::new();
        for p in prefixes {
            if !t.prefixes.contains(&p) && !added.contains(&p) {
                added.push(p);
            }
        }
        t.prefixes.extend(added.iter().cloned());
        t.prefixes.sort();
        update_prefixes(core, held, |table| {
            for p in &added {
                let bc = BcastClient { reader, noloop };
                match table.binary_search_by(|(q, _)| q.as_slice().cmp(p)) {
                    Ok(i) => table[i].1.push(bc),
                    Err(i) => table.insert(i, (p.clone(), vec![bc])),
                }
            }
            // NOLOOP may have changed for the prefixes it had.
            for (_, clients) in table.iter_mut() {
                for bc in clients.iter_mut().filter(|bc| bc.reader.id == reader.id) {
                    bc.noloop = noloop;
                }
            }
        });
    }
    let flags = META_ON | if bcast { META_BCAST } else { 0 };
    c.meta.tracking.store(flags, Ordering::Relaxed);
    c.meta.tracking_redir.store(redirect, Ordering::Relaxed);
    c.reply(|r| r.ok());
}

/// Redis's `checkPrefixCollisionsOrReply`: two prefixes collide when one starts the
/// other.
fn prefix_collision(existing: &[Vec<u8>], new: &[Vec<u8>]) -> Option<String> {
    let overlap = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for (i, p) in new.iter().enumerate() {
        if let Some(e) = existing.iter().find(|e| overlap(e, p)) {
            return Some(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                s(p),
                s(e)
            ));
        }
        if let Some(q) = new[i + 1..].iter().find(|q| overlap(p, q)) {
            return Some(format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                s(p),
                s(q)
            ));
        }
    }
    None
}

/// CLIENT CACHING YES|NO
pub fn caching_cmd(c: &mut Conn, args: &Args) {
    let Some(t) = c.tracking.as_deref_mut() else {
        return c.error(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        );
    };
    let opt = args.get(2);
    if eq_ic(opt, "yes") {
        if !t.optin {
            return c.error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.");
        }
    } else if eq_ic(opt, "no") {
        if !t.optout {
            return c.error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.");
        }
    } else {
        return c.error(ERR_SYNTAX);
    }
    t.caching = true;
    c.reply(|r| r.ok());
}

/// CLIENT GETREDIR
pub fn getredir_cmd(c: &mut Conn) {
    let id = c.tracking.as_deref().map_or(-1, |t| t.redirect as i64);
    c.reply(|r| r.integer(id));
}

/// CLIENT TRACKINGINFO
pub fn trackinginfo_cmd(c: &mut Conn) {
    let t = c.tracking.as_deref();
    let mut flags: Vec<&str> = vec![if t.is_some() { "on" } else { "off" }];
    if let Some(t) = t {
        if t.bcast {
            flags.push("bcast");
        }
        for (on, mode, caching) in [(t.optin, "optin", "caching-yes"), (t.optout, "optout", "caching-no")] {
            if on {
                flags.push(mode);
                if t.caching {
                    flags.push(caching);
                }
            }
        }
        if t.noloop {
            flags.push("noloop");
        }
        if t.broken_redir {
            flags.push("broken_redirect");
        }
    }
    let redirect = t.map_or(-1, |t| t.redirect as i64);
    let prefixes: Vec<Vec<u8>> = t.map(|t| t.prefixes.clone()).unwrap_or_default();
    c.reply(|r| {
        r.map(3);
        r.bulk(b"flags");
        r.set(flags.len());
        for f in &flags {
            r.bulk(f.as_bytes());
        }
        r.bulk(b"redirect");
        r.integer(redirect);
        r.bulk(b"prefixes");
        r.array(prefixes.len());
        for p in &prefixes {
            r.bulk(p);
        }
    });
}

/// INFO's figures: (tracking_total_keys, tracking_total_items, tracking_total_prefixes).
pub fn totals(node: &crate::node::Node) -> (u64, u64, u64) {
    let keys = node.shards.iter().map(|s| s.tracking_keys.load(Ordering::Relaxed)).sum();
    let items = node.shards.iter().map(|s| s.tracking_items.load(Ordering::Relaxed)).sum();
    (keys, items, node.tracking.bcast_table().len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_collisions_name_both_prefixes_as_redis_does() {
        let v = |a: &[&str]| a.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(
            prefix_collision(&[], &v(&["FOOBAR", "FOO"])).unwrap(),
            "ERR Prefix 'FOOBAR' overlaps with another provided prefix 'FOO'. Prefixes for a single client must not overlap."
        );
        assert_eq!(
            prefix_collision(&v(&["BAR", "FOO"]), &v(&["FO"])).unwrap(),
            "ERR Prefix 'FO' overlaps with an existing prefix 'FOO'. Prefixes for a single client must not overlap."
        );
        assert!(prefix_collision(&v(&["FOO"]), &v(&["BAR"])).is_none());
    }
}
