//! Pub/sub: subscriptions, publishing across cores, and the commands.
//!
//! A connection lives on its home shard, so its subscriptions are registered there:
//! each shard has a [`LocalTable`] (channel, pattern and shard channel → the tokens of
//! its own connections), behind a mutex of its own that only its thread writes. A
//! connection keeps what it subscribed to in [`Subscriptions`] (its `subs`, `None` while
//! it has none), which is the state RESP2 restricts commands on.
//!
//! Publishing takes no node-wide lock. The publisher's thread visits every shard that
//! has subscriptions (an atomic count per shard skips the others): it counts that
//! shard's receivers under the shard's table lock for PUBLISH's reply and hands the
//! message over — to its own connections through [`ShardCore::deliveries`] (resolved
//! now, written once the publishing connection's read is processed), to another
//! shard as one [`Msg::Publish`] on the mailbox lane between the two threads, which is
//! FIFO: messages of one publisher reach every subscriber in the order it published
//! them. The receiving shard resolves its subscribers again when the message arrives,
//! so a subscription changed on the way counts in the reply but decides delivery by
//! what holds at delivery (Redis, single-threaded, has no such window).
//!
//! A subscriber whose pending output passes `client-output-buffer-limit pubsub` (the
//! hard limit, or the soft one for longer than its seconds) is disconnected and its
//! output dropped, as Redis does.
//!
//! Keyspace notifications publish through [`publish`] too (see `notify.rs`).

use crate::conn::Conn;
use crate::dispatch::{printable, ShardCore};
use crate::msg::Msg;
use crate::node::Node;
use ferrokv_resp::Args;
use ferrokv_store::glob::glob_match;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Redis keeps shard channels (SSUBSCRIBE/SPUBLISH) apart from global ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    Global,
    Shard,
}

/// One published message, shared by every shard that delivers it.
#[derive(Debug)]
pub struct Publication {
    pub space: Space,
    pub channel: Vec<u8>,
    pub message: Vec<u8>,
}

/// A message for one of this shard's connections: `pattern` when it matched a
/// PSUBSCRIBE pattern (a `pmessage`).
pub struct Delivery {
    pub token: u64,
    pub publication: Arc<Publication>,
    pub pattern: Option<Arc<[u8]>>,
}

/// What one connection is subscribed to. Channels as Redis's dict (unsubscribing from
/// all of them goes in no particular order), patterns as its list (in subscription
/// order).
#[derive(Default, Debug)]
pub struct Subscriptions {
    pub channels: HashSet<Vec<u8>>,
    pub patterns: Vec<Vec<u8>>,
    pub shard: HashSet<Vec<u8>>,
}

impl Subscriptions {
    /// Channels and patterns: the count SUBSCRIBE and PSUBSCRIBE reply with.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0 && self.shard.is_empty()
    }

    /// Bytes the connection's copies of its channel names and their entries take.
    pub fn memory(&self) -> usize {
        let entry = std::mem::size_of::<Vec<u8>>() + std::mem::size_of::<u64>();
        let names = self.channels.iter().chain(&self.patterns).chain(&self.shard).map(|n| n.len() + entry);
        names.sum()
    }
}

/// One shard's subscribers: tokens of its own connections, in subscription order.
#[derive(Default)]
pub struct LocalTable {
    channels: HashMap<Vec<u8>, Vec<u64>>,
    patterns: HashMap<Arc<[u8]>, Vec<u64>>,
    shard: HashMap<Vec<u8>, Vec<u64>>,
}

impl LocalTable {
    fn map(&mut self, space: Space) -> &mut HashMap<Vec<u8>, Vec<u64>> {
        match space {
            Space::Global => &mut self.channels,
            Space::Shard => &mut self.shard,
        }
    }

    fn add(&mut self, space: Space, channel: &[u8], token: u64) {
        self.map(space).entry(channel.to_vec()).or_default().push(token);
    }

    fn remove(&mut self, space: Space, channel: &[u8], token: u64) {
        let map = self.map(space);
        if let Some(v) = map.get_mut(channel) {
            v.retain(|&t| t != token);
            if v.is_empty() {
                map.remove(channel);
            }
        }
    }

    fn add_pattern(&mut self, pattern: &[u8], token: u64) {
        self.patterns.entry(Arc::from(pattern)).or_default().push(token);
    }

    fn remove_pattern(&mut self, pattern: &[u8], token: u64) {
        if let Some(v) = self.patterns.get_mut(pattern) {
            v.retain(|&t| t != token);
            if v.is_empty() {
                self.patterns.remove(pattern);
            }
        }
    }

    /// Subscribers of `p` here, channel subscribers first, then pattern matches.
    fn targets(&self, p: &Arc<Publication>, out: &mut Vec<Delivery>) {
        let map = match p.space {
            Space::Global => &self.channels,
            Space::Shard => &self.shard,
        };
        if let Some(v) = map.get(&p.channel) {
            out.extend(v.iter().map(|&token| Delivery { token, publication: p.clone(), pattern: None }));
        }
        if p.space == Space::Global {
            for (pat, v) in &self.patterns {
                if glob_match(pat, &p.channel, false) {
                    out.extend(v.iter().map(|&token| Delivery {
                        token,
                        publication: p.clone(),
                        pattern: Some(pat.clone()),
                    }));
                }
            }
        }
    }

    /// How many subscribers `p` has here.
    fn count(&self, p: &Publication) -> usize {
        let map = match p.space {
            Space::Global => &self.channels,
            Space::Shard => &self.shard,
        };
        let mut n = map.get(&p.channel).map_or(0, |v| v.len());
        if p.space == Space::Global {
            n += self
                .patterns
                .iter()
                .filter(|(pat, _)| glob_match(pat, &p.channel, false))
                .map(|(_, v)| v.len())
                .sum::<usize>();
        }
        n
    }
}

/// Node-wide: the shards' tables.
pub struct PubSubShared {
    pub table: std::sync::Mutex<LocalTable>,
    /// Entries (channel, pattern or shard channel subscriptions) in `table`: publishers
    /// skip a shard without any.
    pub entries: std::sync::atomic::AtomicU64,
}

impl Default for PubSubShared {
    fn default() -> Self {
        PubSubShared { table: Default::default(), entries: Default::default() }
    }
}

impl PubSubShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, LocalTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Publishes `message` on `channel`; returns the number of receivers on this node.
/// Deliveries to this shard's connections go to `core.deliveries`.
pub fn publish(core: &mut ShardCore, space: Space, channel: &[u8], message: &[u8]) -> usize {
    let node = core.node;
    let mut p = None;
    let mut n = 0;
    for s in 0..node.shard_count() {
        let shared = &node.shards[s].pubsub;
        if shared.entries.load(Ordering::Acquire) == 0 {
            continue;
        }
        let p = p
            .get_or_insert_with(|| {
                Arc::new(Publication { space, channel: channel.to_vec(), message: message.to_vec() })
            })
            .clone();
        if s == core.id {
            let before = core.deliveries.len();
            shared.lock().targets(&p, &mut core.deliveries);
            n += core.deliveries.len() - before;
        } else {
            let here = shared.lock().count(&p);
            if here > 0 {
                n += here;
                core.send(s, Msg::Publish(p));
            }
        }
    }
    n
}

/// How many of the node's clients a message to `channel` would reach now (a script's
/// PUBLISH replies this; its delivery follows when the script ended).
pub fn receivers(node: &Node, space: Space, channel: &[u8]) -> usize {
    let p = Publication { space, channel: channel.to_vec(), message: Vec::new() };
    (0..node.shard_count())
        .filter(|&s| node.shards[s].pubsub.entries.load(Ordering::Acquire) != 0)
        .map(|s| node.shards[s].pubsub.lock().count(&p))
        .sum()
}

/// PUBLISH / SPUBLISH of a message a script published: to this node's subscribers
/// and beyond, as the command itself does.
pub fn publish_from_script(core: &mut ShardCore, space: Space, channel: &[u8], message: &[u8], db: usize) {
    publish(core, space, channel, message);
    propagate(core, space, channel, message, db);
}

/// Sends a message published here on to the nodes that must see it too, as Redis 7.0's
/// PUBLISH does: in cluster mode through the bus (shard 0) to every node, SPUBLISH to
/// the nodes of this node's shard; otherwise to this node's replicas, in its
/// replication stream only, not the AOF (`forceCommandPropagation(PROPAGATE_REPL)`).
fn propagate(core: &mut ShardCore, space: Space, channel: &[u8], message: &[u8], db: usize) {
    let node = core.node;
    if node.cluster.is_some() {
        let p = Publication { space, channel: channel.to_vec(), message: message.to_vec() };
        core.send(0, Msg::ClusterPublish(Arc::new(p)));
    } else if node.repl.on.load(Ordering::Acquire) {
        let name: &[u8] = if space == Space::Shard { b"SPUBLISH" } else { b"PUBLISH" };
        let mut r = ferrokv_store::effects::Records::default();
        r.push_args([name, channel, message].into_iter());
        core.repl_publishes.push(ferrokv_store::effects::Unit::of(r, None).in_db(db).for_replicas_only());
    }
}

/// Appends the PUBLISH records of this loop iteration to this shard's effects log,
/// before the log goes to the consumers. They come after the iteration's other writes
/// of this shard (a script's messages are delivered once it ended anyway), never
/// before a write that preceded them.
pub fn log_for_replicas(core: &mut ShardCore) {
    if core.repl_publishes.is_empty() {
        return;
    }
    let mut db = core.node.lock_db(core.id);
    let units = std::mem::take(&mut core.repl_publishes);
    if let Some(log) = db.effects() {
        for u in units {
            log.push_unit(u);
        }
    }
}

/// Delivers a message to this node's subscribers from a thread that is no shard (a
/// replica's link applying its master's PUBLISH): one [`Msg::Publish`] on the outside
/// lane of each shard with subscriptions; `waker` wakes those that sleep.
pub fn publish_from_outside(
    node: &Node,
    waker: &mut Option<ferrokv_runtime::Ring>,
    space: Space,
    channel: &[u8],
    message: &[u8],
) {
    let p = Arc::new(Publication { space, channel: channel.to_vec(), message: message.to_vec() });
    for s in 0..node.shard_count() {
        if node.shards[s].pubsub.entries.load(Ordering::Acquire) != 0 {
            node.send_from_outside(s, vec![Msg::Publish(p.clone())], waker);
        }
    }
}

/// The deliveries for this shard's connections of a message another shard published.
pub fn resolve(core: &mut ShardCore, p: Arc<Publication>) {
    core.node.shards[core.id].pubsub.lock().targets(&p, &mut core.deliveries);
}

/// Writes the queued deliveries to this shard's connections; the indexes of those
/// that got output go to `touched` (those over their output limit are queued to close,
/// see `ShardCore::check_output`).
pub fn deliver(core: &mut ShardCore, conns: &mut crate::conn::ConnTable, touched: &mut Vec<usize>) {
    if core.tracking.has_out() {
        crate::tracking::deliver(core, conns, touched);
    }
    if core.deliveries.is_empty() {
        return;
    }
    let mut ds = std::mem::take(&mut core.deliveries);
    for d in ds.drain(..) {
        let Some((idx, c)) = conns.by_token(d.token) else { continue };
        if c.dead || c.closing || c.subs.is_none() {
            continue;
        }
        write_delivery(core, c, &d);
        if touched.last() != Some(&idx) {
            touched.push(idx);
        }
    }
    // The room of a burst of messages goes back to the allocator.
    if core.deliveries.is_empty() && ds.capacity() <= 1024 {
        core.deliveries = ds;
    }
}

/// Writes a message to its subscriber. Returns false when the connection went over
/// its output limit and must be closed.
pub fn write_delivery(core: &mut ShardCore, c: &mut Conn, d: &Delivery) -> bool {
    let p = &d.publication;
    c.push(|r| {
        match (&d.pattern, p.space) {
            (Some(pat), _) => {
                r.push(4);
                r.bulk(b"pmessage");
                r.bulk(pat);
            }
            (None, Space::Global) => {
                r.push(3);
                r.bulk(b"message");
            }
            (None, Space::Shard) => {
                r.push(3);
                r.bulk(b"smessage");
            }
        }
        r.bulk(&p.channel);
        r.bulk(&p.message);
    });
    core.check_output(c)
}

/// The RESP2 restriction: a subscribed RESP2 connection may only run these.
pub fn allowed_while_subscribed(cmd: Option<ferrokv_commands::table::ServerCmd>) -> bool {
    use ferrokv_commands::table::ServerCmd::*;
    matches!(
        cmd,
        Some(Ping | Subscribe | Ssubscribe | Unsubscribe | Sunsubscribe | Psubscribe | Punsubscribe | Quit | Reset)
    )
}

/// The error Redis gives a subscribed RESP2 connection for any other command.
pub fn restricted_error(fullname: &str) -> String {
    format!(
        "ERR Can't execute '{fullname}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    )
}

fn confirm(c: &mut Conn, kind: &[u8], channel: Option<&[u8]>, count: usize) {
    c.push(|r| {
        r.push(3);
        r.bulk(kind);
        match channel {
            Some(ch) => r.bulk(ch),
            None => r.null(),
        }
        r.integer(count as i64);
    });
}

/// Keeps the connection's counts visible to CLIENT LIST and its `subs` `None` when
/// empty (it then leaves the subscribed state).
fn settle(c: &mut Conn) {
    let (sub, psub, ssub) = match &c.subs {
        Some(s) => (s.channels.len(), s.patterns.len(), s.shard.len()),
        None => (0, 0, 0),
    };
    c.meta.pubsub[0].store(sub as u32, Ordering::Relaxed);
    c.meta.pubsub[1].store(psub as u32, Ordering::Relaxed);
    c.meta.pubsub[2].store(ssub as u32, Ordering::Relaxed);
    c.subs_mem = c.subs.as_ref().map_or(0, |s| s.memory());
    if c.subs.as_ref().is_some_and(|s| s.is_empty()) {
        c.subs = None;
        c.obuf_soft_since = None;
    }
}

fn entries_delta(core: &ShardCore, delta: i64) {
    let e = &core.node.shards[core.id].pubsub.entries;
    if delta > 0 {
        e.fetch_add(delta as u64, Ordering::Release);
    } else if delta < 0 {
        e.fetch_sub((-delta) as u64, Ordering::Release);
    }
}

/// SUBSCRIBE channel [channel ...] / SSUBSCRIBE shardchannel [shardchannel ...]
pub fn subscribe(core: &mut ShardCore, c: &mut Conn, args: &Args, space: Space) {
    let shared = &core.node.shards[core.id].pubsub;
    let mut added = 0;
    for ch in args.iter().skip(1) {
        let subs = c.subs.get_or_insert_with(Default::default);
        let set = match space {
            Space::Global => &mut subs.channels,
            Space::Shard => &mut subs.shard,
        };
        if set.insert(ch.to_vec()) {
            shared.lock().add(space, ch, c.token);
            added += 1;
        }
        let (kind, n): (&[u8], usize) = match space {
            Space::Global => (b"subscribe", subs.count()),
            Space::Shard => (b"ssubscribe", subs.shard.len()),
        };
        confirm(c, kind, Some(ch), n);
    }
    entries_delta(core, added);
    settle(c);
}

/// UNSUBSCRIBE [channel ...] / SUNSUBSCRIBE [shardchannel ...]: without arguments, from
/// every channel (and a confirmation with a null channel when there were none).
pub fn unsubscribe(core: &mut ShardCore, c: &mut Conn, args: &Args, space: Space) {
    let kind: &[u8] = match space {
        Space::Global => b"unsubscribe",
        Space::Shard => b"sunsubscribe",
    };
    let named: Vec<Vec<u8>> = args.iter().skip(1).map(|a| a.to_vec()).collect();
    let channels = if named.is_empty() {
        match (&c.subs, space) {
            (Some(s), Space::Global) => s.channels.iter().cloned().collect(),
            (Some(s), Space::Shard) => s.shard.iter().cloned().collect(),
            (None, _) => Vec::new(),
        }
    } else {
        named
    };
    if channels.is_empty() {
        let n = count_of(c, space);
        confirm(c, kind, None, n);
        return;
    }
    let mut removed = 0;
    for ch in channels {
        if unsubscribe_one(core, c, space, &ch) {
            removed += 1;
        }
        let n = count_of(c, space);
        confirm(c, kind, Some(&ch), n);
    }
    entries_delta(core, -removed);
    settle(c);
}

fn count_of(c: &Conn, space: Space) -> usize {
    match (&c.subs, space) {
        (Some(s), Space::Global) => s.count(),
        (Some(s), Space::Shard) => s.shard.len(),
        (None, _) => 0,
    }
}

fn unsubscribe_one(core: &ShardCore, c: &mut Conn, space: Space, ch: &[u8]) -> bool {
    let Some(subs) = c.subs.as_mut() else { return false };
    let set = match space {
        Space::Global => &mut subs.channels,
        Space::Shard => &mut subs.shard,
    };
    if !set.remove(ch) {
        return false;
    }
    core.node.shards[core.id].pubsub.lock().remove(space, ch, c.token);
    true
}

/// PSUBSCRIBE pattern [pattern ...]
pub fn psubscribe(core: &mut ShardCore, c: &mut Conn, args: &Args) {
    let shared = &core.node.shards[core.id].pubsub;
    let mut added = 0;
    for pat in args.iter().skip(1) {
        let subs = c.subs.get_or_insert_with(Default::default);
        if !subs.patterns.iter().any(|p| p == pat) {
            subs.patterns.push(pat.to_vec());
            shared.lock().add_pattern(pat, c.token);
            added += 1;
        }
        let n = subs.count();
        confirm(c, b"psubscribe", Some(pat), n);
    }
    entries_delta(core, added);
    settle(c);
}

/// PUNSUBSCRIBE [pattern ...]
pub fn punsubscribe(core: &mut ShardCore, c: &mut Conn, args: &Args) {
    let named: Vec<Vec<u8>> = args.iter().skip(1).map(|a| a.to_vec()).collect();
    let patterns =
        if named.is_empty() { c.subs.as_ref().map(|s| s.patterns.clone()).unwrap_or_default() } else { named };
    if patterns.is_empty() {
        let n = count_of(c, Space::Global);
        confirm(c, b"punsubscribe", None, n);
        return;
    }
    let mut removed = 0;
    for pat in patterns {
        if let Some(subs) = c.subs.as_mut() {
            if let Some(i) = subs.patterns.iter().position(|p| *p == pat) {
                subs.patterns.remove(i);
                core.node.shards[core.id].pubsub.lock().remove_pattern(&pat, c.token);
                removed += 1;
            }
        }
        let n = count_of(c, Space::Global);
        confirm(c, b"punsubscribe", Some(&pat), n);
    }
    entries_delta(core, -removed);
    settle(c);
}

/// Drops every subscription of `c` without replying (RESET, a closed connection).
pub fn forget(core: &ShardCore, c: &mut Conn) {
    let Some(subs) = c.subs.take() else { return };
    let mut t = core.node.shards[core.id].pubsub.lock();
    let mut n = 0;
    for ch in &subs.channels {
        t.remove(Space::Global, ch, c.token);
        n += 1;
    }
    for ch in &subs.shard {
        t.remove(Space::Shard, ch, c.token);
        n += 1;
    }
    for p in &subs.patterns {
        t.remove_pattern(p, c.token);
        n += 1;
    }
    drop(t);
    entries_delta(core, -n);
    c.subs = Some(Subscriptions::default());
    settle(c);
}

/// PUBLISH channel message / SPUBLISH shardchannel message. The publisher's own
/// subscription, if any, gets the message before the reply, as in Redis.
pub fn publish_cmd(core: &mut ShardCore, c: &mut Conn, args: &Args, space: Space) {
    let before = core.deliveries.len();
    let n = publish(core, space, args.get(1), args.get(2));
    propagate(core, space, args.get(1), args.get(2), c.db);
    deliver_own(core, c, before);
    c.reply(|r| r.integer(n as i64));
}

/// Writes the deliveries queued since `from` that are for `c` itself.
pub fn deliver_own(core: &mut ShardCore, c: &mut Conn, from: usize) {
    if core.deliveries.len() == from || c.subs.is_none() {
        return;
    }
    let mut i = from;
    while i < core.deliveries.len() {
        if core.deliveries[i].token == c.token {
            let d = core.deliveries.remove(i);
            write_delivery(core, c, &d);
        } else {
            i += 1;
        }
    }
}

/// PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB|HELP
pub fn pubsub_cmd(node: &Node, r: &mut ferrokv_resp::ReplyBuf, args: &Args) {
    let sub = args.get(1).to_ascii_lowercase();
    let tables = || (0..node.shard_count()).map(move |s| node.shards[s].pubsub.lock());
    match sub.as_slice() {
        b"channels" | b"shardchannels" => {
            if args.len() > 3 {
                return r.error(&format!("ERR wrong number of arguments for 'pubsub|{}' command", printable(&sub, 32)));
            }
            let space = if sub == b"channels" { Space::Global } else { Space::Shard };
            let pat = (args.len() == 3).then(|| args.get(2));
            let mut names: Vec<Vec<u8>> = Vec::new();
            for mut t in tables() {
                for ch in t.map(space).keys() {
                    if pat.is_none_or(|p| glob_match(p, ch, false)) && !names.contains(ch) {
                        names.push(ch.clone());
                    }
                }
            }
            r.array(names.len());
            for n in &names {
                r.bulk(n);
            }
        }
        b"numsub" | b"shardnumsub" => {
            let space = if sub == b"numsub" { Space::Global } else { Space::Shard };
            let names: Vec<&[u8]> = args.iter().skip(2).collect();
            let mut counts = vec![0usize; names.len()];
            for mut t in tables() {
                let m = t.map(space);
                for (i, n) in names.iter().enumerate() {
                    counts[i] += m.get(*n).map_or(0, |v| v.len());
                }
            }
            // An array in RESP3 too, as Redis 7.0 replies.
            r.array(names.len() * 2);
            for (n, k) in names.iter().zip(&counts) {
                r.bulk(n);
                r.integer(*k as i64);
            }
        }
        b"numpat" => {
            if args.len() != 2 {
                return r.error("ERR wrong number of arguments for 'pubsub|numpat' command");
            }
            let mut pats: HashSet<Arc<[u8]>> = HashSet::new();
            for t in tables() {
                pats.extend(t.patterns.keys().cloned());
            }
            r.integer(pats.len() as i64);
        }
        b"help" => {
            let lines = [
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
                "HELP",
                "    Prints this help.",
            ];
            r.array(lines.len());
            for l in lines {
                r.simple(l);
            }
        }
        _ => r.error(&format!("ERR unknown subcommand '{}'. Try PUBSUB HELP.", printable(args.get(1), 128))),
    }
}

/// Cluster mode, after the cluster view changed: the shard channels of this shard's
/// connections whose slot this node no longer serves (neither it nor the master it
/// replicates) are dropped, each subscriber told with a `sunsubscribe` message, as
/// Redis 7.0's `removeChannelsInSlot` does when a slot leaves its shard.
pub fn drop_moved_shard_channels(core: &mut ShardCore, conns: &mut crate::conn::ConnTable, touched: &mut Vec<usize>) {
    let Some(shared) = core.node.cluster.as_ref() else { return };
    let version = shared.version();
    if version == core.shard_channels_view {
        return;
    }
    core.shard_channels_view = version;
    if core.node.shards[core.id].pubsub.lock().shard.is_empty() {
        return;
    }
    let view = core.cluster_view();
    let (me, my_master) = (view.myself, view.me().master_index);
    let serves = |slot: u16| view.slot_owner_index(slot).is_some_and(|o| o == me || Some(o) == my_master);
    let lost: Vec<(u64, Vec<u8>)> = {
        let t = core.node.shards[core.id].pubsub.lock();
        t.shard
            .iter()
            .filter(|(ch, _)| !serves(ferrokv_store::key_slot(ch)))
            .flat_map(|(ch, v)| v.iter().map(move |&tok| (tok, ch.clone())))
            .collect()
    };
    for (tok, ch) in lost {
        let Some((idx, c)) = conns.by_token(tok) else { continue };
        if unsubscribe_one(core, c, Space::Shard, &ch) {
            entries_delta(core, -1);
        }
        let n = count_of(c, Space::Shard);
        confirm(c, b"sunsubscribe", Some(&ch), n);
        settle(c);
        touched.push(idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_counts_channels_then_patterns_and_keeps_spaces_apart() {
        let mut t = LocalTable::default();
        t.add(Space::Global, b"news", 1);
        t.add(Space::Global, b"news", 2);
        t.add_pattern(b"n*", 1);
        t.add(Space::Shard, b"news", 3);
        let p = Arc::new(Publication { space: Space::Global, channel: b"news".to_vec(), message: b"m".to_vec() });
        assert_eq!(t.count(&p), 3);
        let mut out = Vec::new();
        t.targets(&p, &mut out);
        let got: Vec<(u64, bool)> = out.iter().map(|d| (d.token, d.pattern.is_some())).collect();
        assert_eq!(got, [(1, false), (2, false), (1, true)]);
        let s = Arc::new(Publication { space: Space::Shard, channel: b"news".to_vec(), message: b"m".to_vec() });
        assert_eq!(t.count(&s), 1, "patterns never match shard channels");
        t.remove(Space::Global, b"news", 1);
        t.remove(Space::Global, b"news", 2);
        t.remove_pattern(b"n*", 1);
        assert!(t.channels.is_empty() && t.patterns.is_empty());
    }

    #[test]
    fn restriction_text_is_redis_s() {
        assert_eq!(
            restricted_error("client|list"),
            "ERR Can't execute 'client|list': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        );
    }
}
