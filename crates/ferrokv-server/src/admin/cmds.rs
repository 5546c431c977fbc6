//! Connection, server and transaction commands: the ones that need the connection or
//! the node rather than only the keyspace.

use crate::config;
use crate::conn::{Conn, Multi, Watch};
use crate::dispatch::{printable, run_data, Flow, Held, MultiDb, ShardCore};
use crate::node::{unix_ms, unix_us, Node};
use crate::pubsub::{self, Space};
use ferrokv_commands::table::ServerCmd;
use ferrokv_commands::table::{all as all_commands, lookup_sub};
use ferrokv_commands::util::{eq_ic, ERR_SYNTAX};
use ferrokv_commands::{lookup, CommandSpec, Handler};
use ferrokv_commands::{Env, Keyspace};
use ferrokv_resp::{Args, Proto, ReplyBuf};
use std::sync::atomic::Ordering;

pub const REDIS_VERSION: &str = "7.0.15";

/// Runs a server command. `held` is the keyspace EXEC holds while running it (see
/// [`Held`]); a command that reads keys goes through it.
pub fn run(core: &mut ShardCore, c: &mut Conn, cmd: ServerCmd, args: &Args, mut held: Held) -> Flow {
    match cmd {
        ServerCmd::Ping => ping(c, args),
        ServerCmd::Echo => c.reply(|r| r.bulk(args.get(1))),
        ServerCmd::Hello => hello(core.node, &core.requirepass, c, args),
        ServerCmd::Auth => auth(&core.requirepass, c, args),
        ServerCmd::Quit => {
            c.reply(|r| r.ok());
            c.closing = true;
            // Gone for other clients at once, as Redis frees it right after the reply
            // (a client redirecting its invalidations here hears tracking-redir-broken).
            core.node.unregister_client(c.meta.id);
        }
        ServerCmd::Reset => reset(core, c, &mut held),
        ServerCmd::Select => select(core, c, args),
        ServerCmd::Cluster => return crate::cluster::cluster_command(core, c, args, held),
        ServerCmd::Asking | ServerCmd::Readonly | ServerCmd::Readwrite => {
            if core.node.cluster.is_none() {
                c.error("ERR This instance has cluster support disabled");
            } else {
                match cmd {
                    ServerCmd::Asking => c.asking = true,
                    ServerCmd::Readonly => c.readonly = true,
                    _ => c.readonly = false,
                }
                c.reply(|r| r.ok());
            }
        }
        ServerCmd::Client => client(core, c, args, &mut held),
        ServerCmd::Info => {
            let text = crate::info::render(core.node, args);
            c.reply(|r| r.verbatim(text.as_bytes()));
        }
        ServerCmd::Time => {
            let us = unix_us();
            c.reply(|r| {
                r.array(2);
                r.bulk((us / 1_000_000).to_string().as_bytes());
                r.bulk((us % 1_000_000).to_string().as_bytes());
            })
        }
        ServerCmd::Replicaof if matches!(held, Held::Exec(_)) => {
            c.error("ERR REPLICAOF inside MULTI/EXEC is not supported by ferrokv")
        }
        ServerCmd::Replicaof => {
            let who = c.meta.addr.clone();
            match crate::repl::replica::replicaof(core.node, args.get(1), args.get(2), &who) {
                Ok(text) => c.reply(|r| r.simple(text)),
                Err(e) => c.error(&e),
            }
        }
        ServerCmd::Role => crate::repl::role(core.node, c),
        ServerCmd::Psync => crate::repl::master::psync(core, c, args, false),
        ServerCmd::Sync => crate::repl::master::psync(core, c, args, true),
        ServerCmd::Replconf => crate::repl::master::replconf(core, c, args),
        ServerCmd::Wait => crate::repl::master::wait(core, c, args, matches!(held, Held::Exec(_))),
        ServerCmd::Migrate => return crate::migrate::migrate(core, c, args, &held),
        ServerCmd::Memory => c.reply(|r| crate::memory_cmds::memory(core.node, r, args)),
        ServerCmd::Config => config_cmd(core, c, args),
        ServerCmd::Command => c.reply(|r| command(r, args)),
        ServerCmd::Shutdown => shutdown(core, c, args),
        ServerCmd::Debug => crate::debug::debug(core, c, args),
        ServerCmd::ScriptKill | ServerCmd::FunctionKill => {
            match ferrokv_commands::scripting::running::kill(cmd == ServerCmd::ScriptKill) {
                Ok(()) => c.reply(|r| r.ok()),
                Err(e) => c.error(e),
            }
        }
        ServerCmd::Save => save_cmd(core, c),
        ServerCmd::Bgsave => bgsave_cmd(core, c, args, matches!(held, Held::Exec(_))),
        // Inside EXEC the keyspace locks are held: at the next cron, as Redis does.
        ServerCmd::Bgrewriteaof if matches!(held, Held::Exec(_)) => {
            crate::aof::schedule(core.node);
            c.reply(|r| r.simple("Background append only file rewriting scheduled"))
        }
        ServerCmd::Bgrewriteaof => match crate::aof::rewrite(core.node) {
            Ok(()) => c.reply(|r| r.simple("Background append only file rewriting started")),
            Err(crate::aof::RewriteRefused::Scheduled) => {
                c.reply(|r| r.simple("Background append only file rewriting scheduled"))
            }
            Err(crate::aof::RewriteRefused::InProgress) => {
                c.error("ERR Background append only file rewriting already in progress")
            }
        },
        ServerCmd::Lastsave => {
            let t = core.node.persist.lastsave.load(Ordering::Relaxed) as i64;
            c.reply(|r| r.integer(t))
        }
        ServerCmd::Multi => {
            if c.multi().is_some() {
                c.error("ERR MULTI calls can not be nested");
            } else {
                c.mode = crate::conn::Mode::Multi(Multi::default());
                c.meta.multi.store(0, Ordering::Relaxed);
                c.reply(|r| r.ok());
            }
        }
        ServerCmd::Exec => return exec(core, c),
        ServerCmd::Discard => {
            if c.take_multi().is_none() {
                c.error("ERR DISCARD without MULTI");
            } else {
                c.meta.multi.store(-1, Ordering::Relaxed);
                core.release_watches(c);
                c.reply(|r| r.ok());
            }
        }
        ServerCmd::Watch => return watch(core, c, args, held),
        ServerCmd::Unwatch => {
            core.release_watches(c);
            c.reply(|r| r.ok());
        }
        ServerCmd::Subscribe => pubsub::subscribe(core, c, args, Space::Global),
        ServerCmd::Ssubscribe => pubsub::subscribe(core, c, args, Space::Shard),
        ServerCmd::Unsubscribe => pubsub::unsubscribe(core, c, args, Space::Global),
        ServerCmd::Sunsubscribe => pubsub::unsubscribe(core, c, args, Space::Shard),
        ServerCmd::Psubscribe => pubsub::psubscribe(core, c, args),
        ServerCmd::Punsubscribe => pubsub::punsubscribe(core, c, args),
        ServerCmd::Publish => pubsub::publish_cmd(core, c, args, Space::Global),
        ServerCmd::Spublish => pubsub::publish_cmd(core, c, args, Space::Shard),
        ServerCmd::Pubsub => c.reply(|r| pubsub::pubsub_cmd(core.node, r, args)),
    }
    Flow::Done
}

fn ping(c: &mut Conn, args: &Args) {
    if c.resp2_subscribed() {
        // Redis answers a subscribed RESP2 client as a message: [pong, arg or ""].
        let arg = if args.len() == 2 { args.get(1) } else { b"" };
        if args.len() > 2 {
            return c.error("ERR wrong number of arguments for 'ping' command");
        }
        return c.reply(|r| {
            r.array(2);
            r.bulk(b"pong");
            r.bulk(arg);
        });
    }
    match args.len() {
        1 => c.reply(|r| r.simple("PONG")),
        2 => c.reply(|r| r.bulk(args.get(1))),
        _ => c.error("ERR wrong number of arguments for 'ping' command"),
    }
}

fn password_ok(requirepass: &str, user: Option<&[u8]>, pass: &[u8]) -> bool {
    if let Some(u) = user {
        if u != b"default" {
            return false;
        }
    }
    // The default user has no password when requirepass is empty: anything goes.
    requirepass.is_empty() || requirepass.as_bytes() == pass
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// AUTH [username] password (`requirepass`: the default user's password). Needs
/// nothing of the shard: a busy script's thread runs it from its Lua hook too.
pub(crate) fn auth(requirepass: &str, c: &mut Conn, args: &Args) {
    match args.len() {
        2 => {
            if requirepass.is_empty() {
                return c.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
            }
            if password_ok(requirepass, None, args.get(1)) {
                c.authed = true;
                c.reply(|r| r.ok());
            } else {
                c.error(WRONGPASS);
            }
        }
        3 => {
            if password_ok(requirepass, Some(args.get(1)), args.get(2)) {
                c.authed = true;
                c.reply(|r| r.ok());
            } else {
                c.error(WRONGPASS);
            }
        }
        _ => c.error(ERR_SYNTAX),
    }
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]] (as AUTH, runs from
/// a busy script's hook too).
pub(crate) fn hello(node: &Node, requirepass: &str, c: &mut Conn, args: &Args) {
    let mut proto = c.proto;
    if args.len() >= 2 {
        match ferrokv_commands::util::parse_i64(args.get(1)) {
            Some(2) => proto = Proto::Resp2,
            Some(3) => proto = Proto::Resp3,
            Some(_) => return c.error("NOPROTO unsupported protocol version"),
            None => return c.error("ERR Protocol version is not an integer or out of range"),
        }
    }
    let mut i = 2;
    let mut name = None;
    let mut authed = c.authed;
    while i < args.len() {
        let opt = args.get(i);
        let more = args.len() - i - 1;
        if eq_ic(opt, "auth") && more >= 2 {
            if !password_ok(requirepass, Some(args.get(i + 1)), args.get(i + 2)) {
                return c.error(WRONGPASS);
            }
            authed = true;
            i += 3;
        } else if eq_ic(opt, "setname") && more >= 1 {
            let n = args.get(i + 1);
            if !valid_client_name(n) {
                return c.error("ERR Client names cannot contain spaces, newlines or special characters.");
            }
            name = Some(n.to_vec());
            i += 2;
        } else {
            return c.error(&format!("ERR Syntax error in HELLO option '{}'", printable(opt, 128)));
        }
    }
    if !authed {
        return c.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    c.authed = true;
    if let Some(n) = name {
        set_name(c, Some(n));
    }
    c.proto = proto;
    c.meta.resp.store(if proto == Proto::Resp3 { 3 } else { 2 }, Ordering::Relaxed);
    let id = c.meta.id as i64;
    let cluster = node.cluster.is_some();
    c.reply(|r| {
        r.map(7);
        r.bulk(b"server");
        r.bulk(b"redis");
        r.bulk(b"version");
        r.bulk(REDIS_VERSION.as_bytes());
        r.bulk(b"proto");
        r.integer(if proto == Proto::Resp3 { 3 } else { 2 });
        r.bulk(b"id");
        r.integer(id);
        r.bulk(b"mode");
        r.bulk(if cluster { b"cluster" } else { b"standalone" });
        r.bulk(b"role");
        r.bulk(b"master");
        r.bulk(b"modules");
        r.array(0);
    });
}

fn reset(core: &mut ShardCore, c: &mut Conn, held: &mut Held) {
    crate::pubsub::forget(core, c);
    crate::tracking::disable(core, c, held);
    c.take_multi();
    c.meta.multi.store(-1, Ordering::Relaxed);
    core.release_watches(c);
    c.proto = Proto::Resp2;
    c.meta.resp.store(2, Ordering::Relaxed);
    set_name(c, None);
    c.authed = core.requirepass.is_empty();
    c.select(0);
    c.reply_mode = Default::default();
    c.reply(|r| r.simple("RESET"));
}

/// SELECT index: the connection's database for the commands that follow.
fn select(core: &mut ShardCore, c: &mut Conn, args: &Args) {
    let idx = match ferrokv_commands::util::parse_db_index(args.get(1)) {
        Ok(n) => n,
        Err(e) => return c.error(e),
    };
    if core.node.cluster.is_some() && idx != 0 {
        c.error("ERR SELECT is not allowed in cluster mode");
    } else if idx < 0 || idx as usize >= core.exec_cfg.databases {
        c.error("ERR DB index is out of range");
    } else {
        c.select(idx as usize);
        c.reply(|r| r.ok());
    }
}

fn valid_client_name(n: &[u8]) -> bool {
    n.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn set_name(c: &mut Conn, name: Option<Vec<u8>>) {
    if let Ok(mut g) = c.meta.name.lock() {
        *g = name.filter(|n| !n.is_empty());
    }
}

/// CLIENT HELP's lines.
const CLIENT_HELP: &[&str] = &[
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "KILL <ip:port>",
        "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are: ID <client-id>, ADDR <ip:port>, LADDR <ip:port>, USER <username>, SKIPME (YES|NO).",
        "LIST [options ...]",
        "    Return information about client connections. Options: TYPE (NORMAL|MASTER|REPLICA|PUBSUB), ID <client-id> ...",
        "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "HELP",
        "    Print this help.",
];

/// CONFIG HELP's lines.
const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
];

/// A server command a script runs (`redis.call`), one Redis 7.0 does not flag
/// `noscript` (the table's flags refused the others before): those that need only the
/// node, written to the script's reply buffer. The script holds keyspace locks, so
/// nothing here takes one (INFO and MEMORY read published counters). False for what
/// ferrokv does not run from a script: MIGRATE, and the CLUSTER subcommands that
/// change the cluster or read a slot's keys.
pub fn from_script(node: &Node, cmd: ServerCmd, args: &Args, r: &mut ReplyBuf) -> bool {
    match cmd {
        ServerCmd::Info => r.verbatim(crate::info::render(node, args).as_bytes()),
        ServerCmd::Command => command(r, args),
        ServerCmd::Memory => crate::memory_cmds::memory(node, r, args),
        ServerCmd::Pubsub => pubsub::pubsub_cmd(node, r, args),
        ServerCmd::Lastsave => r.integer(node.persist.lastsave.load(Ordering::Relaxed) as i64),
        // Only their HELP is not `noscript`.
        ServerCmd::Client => help_reply(r, CLIENT_HELP),
        ServerCmd::Config => help_reply(r, CONFIG_HELP),
        ServerCmd::Cluster => return crate::cluster::from_script(node, args, r),
        _ => return false,
    }
    true
}

/// A HELP subcommand's reply: its lines as status replies.
fn help_reply(r: &mut ReplyBuf, lines: &[&str]) {
    r.array(lines.len());
    for l in lines {
        r.simple(l);
    }
}

fn client(core: &mut ShardCore, c: &mut Conn, args: &Args, held: &mut Held) {
    let sub = args.get(1);
    if eq_ic(sub, "tracking") {
        crate::tracking::tracking_cmd(core, c, args, held);
    } else if eq_ic(sub, "caching") {
        crate::tracking::caching_cmd(c, args);
    } else if eq_ic(sub, "getredir") {
        crate::tracking::getredir_cmd(c);
    } else if eq_ic(sub, "trackinginfo") {
        crate::tracking::trackinginfo_cmd(c);
    } else if eq_ic(sub, "id") {
        let id = c.meta.id as i64;
        c.reply(|r| r.integer(id));
    } else if eq_ic(sub, "setname") {
        let n = args.get(2);
        if !valid_client_name(n) {
            return c.error("ERR Client names cannot contain spaces, newlines or special characters.");
        }
        set_name(c, Some(n.to_vec()));
        c.reply(|r| r.ok());
    } else if eq_ic(sub, "getname") {
        let name = c.meta.name.lock().ok().and_then(|g| g.clone());
        c.reply(|r| match name {
            Some(n) => r.bulk(&n),
            None => r.null(),
        });
    } else if eq_ic(sub, "info") {
        let line = own_line(c, args, |c| client_line(&c.meta));
        c.reply(|r| r.verbatim(line.as_bytes()));
    } else if eq_ic(sub, "list") {
        own_line(c, args, |c| client_list(core, c, args));
    } else if eq_ic(sub, "kill") {
        client_kill(core, c, args);
    } else if eq_ic(sub, "no-evict") {
        // `maxmemory-clients` passes over this client (see `crate::client_mem`).
        let v = args.get(2);
        if eq_ic(v, "on") || eq_ic(v, "off") {
            c.meta.mem.no_evict.store(eq_ic(v, "on"), Ordering::Relaxed);
            c.reply(|r| r.ok());
        } else {
            c.error(ERR_SYNTAX);
        }
    } else if eq_ic(sub, "reply") {
        // CLIENT REPLY ON|OFF|SKIP: only ON answers (OFF and SKIP are silenced already).
        let v = args.get(2);
        let m = &mut c.reply_mode;
        if eq_ic(v, "on") {
            *m = Default::default();
            c.reply(|r| r.ok());
        } else if eq_ic(v, "off") {
            m.off = true;
            m.silent = true;
        } else if eq_ic(v, "skip") {
            m.skip_next = !m.off;
        } else {
            c.error(ERR_SYNTAX);
        }
    } else if eq_ic(sub, "help") {
        c.reply(|r| help_reply(r, CLIENT_HELP));
    } else {
        c.error(&format!("ERR unknown subcommand '{}'. Try CLIENT HELP.", printable(sub, 128)));
    }
}

/// Runs `f` with the calling client's own figures current, as Redis shows them for the
/// client running CLIENT LIST/INFO: its output so far and the command's arguments.
fn own_line<R>(c: &mut Conn, args: &Args, f: impl FnOnce(&mut Conn) -> R) -> R {
    c.meta.mem.argv.store(crate::client_mem::argv_len(args), Ordering::Relaxed);
    crate::client_mem::publish(c);
    let r = f(c);
    c.meta.mem.argv.store(0, Ordering::Relaxed);
    r
}

/// CLIENT LIST's `flags=`, in Redis's order: S (replica), P (subscribed), x (in MULTI),
/// t (tracking), R (its tracking redirect is gone), B (tracking in BCAST mode), U (on
/// the Unix socket: its address is the socket's path), e (CLIENT NO-EVICT on); N when
/// none.
fn client_flags(replica: bool, subscribed: bool, multi: bool, tracking: u32, unix: bool, no_evict: bool) -> String {
    use crate::tracking::{META_BCAST, META_BROKEN, META_ON};
    let mut f: String = [
        (replica, 'S'),
        (subscribed, 'P'),
        (multi, 'x'),
        (tracking & META_ON != 0, 't'),
        (tracking & META_BROKEN != 0, 'R'),
        (tracking & META_BCAST != 0, 'B'),
        (unix, 'U'),
        (no_evict, 'e'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| *c)
    .collect();
    if f.is_empty() {
        f.push('N');
    }
    f
}

/// One client's CLIENT LIST line (also Redis's client description in log lines).
pub fn client_line(m: &crate::node::ClientMeta) -> String {
    let now = unix_ms();
    let name = m.name.lock().ok().and_then(|g| g.clone()).unwrap_or_default();
    let multi = m.multi.load(Ordering::Relaxed);
    let cmd = m.last_cmd_name();
    let subscribed = m.pubsub.iter().any(|n| n.load(Ordering::Relaxed) > 0);
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs={} rbp={} obl={} oll={} omem={} tot-mem={} events=r cmd={} user=default redir={} resp={}\n",
        m.id,
        m.addr,
        m.laddr,
        m.fd,
        String::from_utf8_lossy(&name),
        m.created.elapsed().as_secs(),
        now.saturating_sub(m.last_ms.load(Ordering::Relaxed)) / 1000,
        client_flags(
            m.replica.load(Ordering::Relaxed),
            subscribed,
            multi >= 0,
            m.tracking.load(Ordering::Relaxed),
            m.addr.starts_with('/'),
            crate::client_mem::no_evict(m)
        ),
        m.db.load(Ordering::Relaxed),
        m.pubsub[0].load(Ordering::Relaxed),
        m.pubsub[1].load(Ordering::Relaxed),
        m.pubsub[2].load(Ordering::Relaxed),
        multi,
        m.qbuf.load(Ordering::Relaxed),
        m.mem.qbuf_free.load(Ordering::Relaxed),
        m.mem.argv.load(Ordering::Relaxed),
        m.mem.multi.load(Ordering::Relaxed),
        m.mem.rbs.load(Ordering::Relaxed),
        m.mem.rbp.load(Ordering::Relaxed),
        m.mem.obl.load(Ordering::Relaxed),
        m.mem.oll.load(Ordering::Relaxed),
        m.omem.load(Ordering::Relaxed),
        m.mem.total.load(Ordering::Relaxed),
        cmd,
        if m.tracking.load(Ordering::Relaxed) != 0 { m.tracking_redir.load(Ordering::Relaxed) as i64 } else { -1 },
        m.resp.load(Ordering::Relaxed),
    )
}

/// A client's class for CLIENT LIST/KILL TYPE (Redis's `getClientType`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    Normal,
    Replica,
    PubSub,
    /// The link to our master is not a client connection here: matches nothing.
    Master,
}

impl ClientKind {
    fn parse(t: &[u8]) -> Option<ClientKind> {
        Some(if eq_ic(t, "normal") {
            ClientKind::Normal
        } else if eq_ic(t, "replica") || eq_ic(t, "slave") {
            ClientKind::Replica
        } else if eq_ic(t, "pubsub") {
            ClientKind::PubSub
        } else if eq_ic(t, "master") {
            ClientKind::Master
        } else {
            return None;
        })
    }

    fn of(m: &crate::node::ClientMeta) -> ClientKind {
        if m.replica.load(Ordering::Relaxed) {
            ClientKind::Replica
        } else if m.pubsub.iter().any(|n| n.load(Ordering::Relaxed) > 0) {
            ClientKind::PubSub
        } else {
            ClientKind::Normal
        }
    }
}

/// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]
fn client_list(core: &mut ShardCore, c: &mut Conn, args: &Args) {
    let mut ids: Option<Vec<u64>> = None;
    let mut kind: Option<ClientKind> = None;
    let mut i = 2;
    while i < args.len() {
        let opt = args.get(i);
        if eq_ic(opt, "type") && i + 1 < args.len() {
            let t = args.get(i + 1);
            match ClientKind::parse(t) {
                Some(k) => kind = Some(k),
                None => return c.error(&format!("ERR Unknown client type '{}'", printable(t, 128))),
            }
            i += 2;
        } else if eq_ic(opt, "id") && i + 1 < args.len() {
            let mut v = Vec::new();
            i += 1;
            while i < args.len() {
                match ferrokv_commands::util::parse_i64(args.get(i)) {
                    Some(n) if n > 0 => v.push(n as u64),
                    _ => return c.error("ERR Invalid client ID"),
                }
                i += 1;
            }
            ids = Some(v);
        } else {
            return c.error(ERR_SYNTAX);
        }
    }
    let mut text = String::new();
    for m in core.node.client_list() {
        if ids.as_ref().is_some_and(|v| !v.contains(&m.id)) || kind.is_some_and(|k| k != ClientKind::of(&m)) {
            continue;
        }
        text.push_str(&client_line(&m));
    }
    c.reply(|r| r.verbatim(text.as_bytes()));
}

/// CLIENT KILL ip:port | CLIENT KILL [ID id] [ADDR ip:port] [LADDR ip:port] [USER name] [SKIPME yes|no]
fn client_kill(core: &mut ShardCore, c: &mut Conn, args: &Args) {
    let old_form = args.len() == 3;
    let (mut id, mut addr, mut laddr, mut user, mut skipme) = (None, None, None, None, true);
    let mut kind: Option<ClientKind> = None;
    if old_form {
        addr = Some(args.get(2).to_vec());
        skipme = false;
    } else {
        if !args.len().is_multiple_of(2) {
            return c.error(ERR_SYNTAX);
        }
        let mut i = 2;
        while i + 1 < args.len() {
            let (opt, v) = (args.get(i), args.get(i + 1));
            if eq_ic(opt, "id") {
                match ferrokv_commands::util::parse_i64(v) {
                    Some(n) if n > 0 => id = Some(n as u64),
                    _ => return c.error("ERR client-id should be greater than 0"),
                }
            } else if eq_ic(opt, "addr") {
                addr = Some(v.to_vec());
            } else if eq_ic(opt, "laddr") {
                laddr = Some(v.to_vec());
            } else if eq_ic(opt, "user") {
                user = Some(v.to_vec());
            } else if eq_ic(opt, "skipme") {
                if eq_ic(v, "yes") {
                    skipme = true;
                } else if eq_ic(v, "no") {
                    skipme = false;
                } else {
                    return c.error(ERR_SYNTAX);
                }
            } else if eq_ic(opt, "type") {
                match ClientKind::parse(v) {
                    Some(k) => kind = Some(k),
                    None => return c.error(&format!("ERR Unknown client type '{}'", printable(v, 128))),
                }
            } else {
                return c.error(ERR_SYNTAX);
            }
            i += 2;
        }
    }
    if let Some(u) = &user {
        if u.as_slice() != b"default" {
            if old_form {
                return c.error("ERR No such client");
            }
            return c.reply(|r| r.integer(0));
        }
    }
    let mut killed = 0;
    for m in core.node.client_list() {
        if id.is_some_and(|i| i != m.id)
            || kind.is_some_and(|k| k != ClientKind::of(&m))
            || addr.as_ref().is_some_and(|a| a.as_slice() != m.addr.as_bytes())
            || laddr.as_ref().is_some_and(|a| a.as_slice() != m.laddr.as_bytes())
        {
            continue;
        }
        if m.id == c.meta.id {
            if skipme {
                continue;
            }
            c.closing = true;
        } else if m.shard == core.id {
            core.local_kills.push(m.token);
        } else {
            core.send(m.shard, crate::msg::Msg::Kill { token: m.token });
        }
        killed += 1;
    }
    if old_form {
        if killed == 0 {
            c.error("ERR No such client");
        } else {
            c.reply(|r| r.ok());
        }
    } else {
        c.reply(|r| r.integer(killed));
    }
}

/// CONFIG GET pattern [pattern ...] | CONFIG SET name value [name value ...] | CONFIG RESETSTAT |
/// CONFIG REWRITE | CONFIG HELP
fn config_cmd(core: &mut ShardCore, c: &mut Conn, args: &Args) {
    let sub = args.get(1);
    if eq_ic(sub, "get") {
        let cfg = core.node.config().clone();
        let mut found: Vec<(&str, String)> = Vec::new();
        for pat in args.iter().skip(2) {
            for (name, o) in config::names() {
                if ferrokv_store::glob::glob_match(pat, name.as_bytes(), true) && !found.iter().any(|f| f.0 == name) {
                    found.push((name, o.get(&cfg)));
                }
            }
        }
        c.reply(|r| {
            r.map(found.len());
            for (k, v) in &found {
                r.bulk(k.as_bytes());
                r.bulk(v.as_bytes());
            }
        });
    } else if eq_ic(sub, "set") {
        if !args.len().is_multiple_of(2) {
            return c.error(ERR_SYNTAX);
        }
        // One owner of the live configuration: the write lock is held from reading the
        // current values to storing the new ones, so two shards' CONFIG SETs apply one
        // after the other and neither loses the other's change.
        // (oom-score-adj depends on the role.)
        let replica = crate::repl::is_replica(core.node);
        let mut live = core.node.config.write().unwrap_or_else(|p| p.into_inner());
        let mut cfg = live.clone();
        let mut i = 2;
        while i + 1 < args.len() {
            let name = String::from_utf8_lossy(args.get(i)).to_string();
            let value = String::from_utf8_lossy(args.get(i + 1)).to_string();
            let Some(o) = config::option(&name) else {
                return c.error(&format!("ERR Unknown option or number of arguments for CONFIG SET - '{name}'"));
            };
            if !o.mutable() {
                return c.error(&format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
                ));
            }
            if let Err(e) = o.apply(&mut cfg, &value) {
                return c.error(&format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {e}"));
            }
            i += 2;
        }
        if (&cfg.oom_score_adj, &cfg.oom_score_adj_values) != (&live.oom_score_adj, &live.oom_score_adj_values)
            && crate::process::set_oom_score_adj(&cfg, replica).is_err()
        {
            return c.error("ERR CONFIG SET failed - Failed to set current oom_score_adj. Check server logs.");
        }
        if cfg.proc_title_template != live.proc_title_template {
            crate::process::set_title(&cfg);
        }
        let exec = cfg.exec_config();
        crate::logging::set_level(&cfg.loglevel);
        if cfg.appendonly != live.appendonly {
            crate::aof::request(core.node, cfg.appendonly);
        }
        *live = cfg;
        *core.node.exec_cfg.write().unwrap_or_else(|p| p.into_inner()) = exec;
        core.node.config_version.fetch_add(1, Ordering::AcqRel);
        drop(live);
        core.refresh_config();
        c.reply(|r| r.ok());
    } else if eq_ic(sub, "resetstat") {
        for s in core.node.shards.iter() {
            s.commands_processed.store(0, Ordering::Relaxed);
            s.expired_keys.store(0, Ordering::Relaxed);
            s.cmdstats.iter().for_each(|c| c.reset());
            s.errorstats.lock().unwrap_or_else(|p| p.into_inner()).clear();
            s.slot_stats.reset();
            s.defrag.reset();
        }
        core.node.total_connections.store(0, Ordering::Relaxed);
        core.node.rejected_connections.store(0, Ordering::Relaxed);
        core.node.evicted_keys.store(0, Ordering::Relaxed);
        c.reply(|r| r.ok());
    } else if eq_ic(sub, "rewrite") {
        // Under the configuration's read lock: no CONFIG SET changes it meanwhile, and
        // two rewrites do not interleave their files (each writes its own temp file).
        let cfg = core.node.config();
        match config::rewrite::rewrite_file(&cfg) {
            Ok(()) => c.reply(|r| r.ok()),
            Err(e) => c.error(&e),
        }
    } else if eq_ic(sub, "help") {
        c.reply(|r| help_reply(r, CONFIG_HELP));
    } else {
        c.error(&format!("ERR unknown subcommand '{}'. Try CONFIG HELP.", printable(sub, 128)));
    }
}

fn command_info(r: &mut ReplyBuf, s: &CommandSpec) {
    r.array(10);
    r.bulk(s.name.as_bytes());
    r.integer(s.arity as i64);
    r.set(s.flags.len());
    for f in s.flags.names() {
        r.simple(f);
    }
    r.integer(s.keys.first as i64);
    r.integer(s.keys.last as i64);
    r.integer(s.keys.step as i64);
    r.set(s.acl.len());
    for a in s.acl.names() {
        r.simple(a);
    }
    let tips = s.tips();
    r.set(tips.len());
    for t in tips {
        r.bulk(t.as_bytes());
    }
    let specs = s.key_specs();
    r.set(specs.len());
    for k in specs {
        key_spec(r, k);
    }
    r.set(s.subcommands.len());
    for sub in s.subcommands {
        command_info(r, sub);
    }
}

/// One key specification, as Redis's `addReplyCommandKeySpecs` renders it.
fn key_spec(r: &mut ReplyBuf, k: &ferrokv_commands::table::KeySpec) {
    use ferrokv_commands::table::{BeginSearch, FindKeys};
    r.map(3 + !k.notes.is_empty() as usize);
    if !k.notes.is_empty() {
        r.bulk(b"notes");
        r.bulk(k.notes.as_bytes());
    }
    r.bulk(b"flags");
    r.set(k.flags.len());
    for f in k.flags.names() {
        r.simple(f);
    }
    r.bulk(b"begin_search");
    r.map(2);
    r.bulk(b"type");
    match k.begin {
        BeginSearch::Index(i) => {
            r.bulk(b"index");
            r.bulk(b"spec");
            r.map(1);
            r.bulk(b"index");
            r.integer(i as i64);
        }
        BeginSearch::Keyword { keyword, start_from } => {
            r.bulk(b"keyword");
            r.bulk(b"spec");
            r.map(2);
            r.bulk(b"keyword");
            r.bulk(keyword.as_bytes());
            r.bulk(b"startfrom");
            r.integer(start_from as i64);
        }
        BeginSearch::Unknown => {
            r.bulk(b"unknown");
            r.bulk(b"spec");
            r.map(0);
        }
    }
    r.bulk(b"find_keys");
    r.map(2);
    r.bulk(b"type");
    match k.find {
        FindKeys::Range { last_key, key_step, limit } => {
            r.bulk(b"range");
            r.bulk(b"spec");
            r.map(3);
            r.bulk(b"lastkey");
            r.integer(last_key as i64);
            r.bulk(b"keystep");
            r.integer(key_step as i64);
            r.bulk(b"limit");
            r.integer(limit as i64);
        }
        FindKeys::Keynum { keynum_idx, first_key, key_step } => {
            r.bulk(b"keynum");
            r.bulk(b"spec");
            r.map(3);
            r.bulk(b"keynumidx");
            r.integer(keynum_idx as i64);
            r.bulk(b"firstkey");
            r.integer(first_key as i64);
            r.bulk(b"keystep");
            r.integer(key_step as i64);
        }
        FindKeys::Unknown => {
            r.bulk(b"unknown");
            r.bulk(b"spec");
            r.map(0);
        }
    }
}

/// COMMAND [COUNT | INFO name... | DOCS name... | GETKEYS cmd args... | LIST]
pub fn command(r: &mut ReplyBuf, args: &Args) {
    if args.len() == 1 {
        let all: Vec<_> = all_commands().collect();
        r.array(all.len());
        for s in all {
            command_info(r, s);
        }
        return;
    }
    let sub = args.get(1);
    if eq_ic(sub, "count") {
        let n = all_commands().count() as i64;
        r.integer(n);
    } else if eq_ic(sub, "info") {
        let names: Vec<&[u8]> = args.iter().skip(2).collect();
        let specs: Vec<_> = if names.is_empty() {
            all_commands().map(Some).collect()
        } else {
            names.iter().map(|n| lookup_fullname(n)).collect()
        };
        r.array(specs.len());
        for s in specs {
            match s {
                Some(s) => command_info(r, s),
                None => r.null(),
            }
        }
    } else if eq_ic(sub, "docs") {
        let names: Vec<&[u8]> = args.iter().skip(2).collect();
        let specs: Vec<&CommandSpec> = if names.is_empty() {
            all_commands().collect()
        } else {
            names.iter().filter_map(|n| lookup_fullname(n)).collect()
        };
        r.map(specs.len());
        for s in specs {
            r.bulk(s.name.as_bytes());
            command_docs(r, s);
        }
    } else if eq_ic(sub, "list") {
        // COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]
        let filter = match args.len() {
            2 => None,
            5 if eq_ic(args.get(2), "filterby") => {
                let (kind, arg) = (args.get(3), args.get(4));
                if eq_ic(kind, "module") || eq_ic(kind, "aclcat") || eq_ic(kind, "pattern") {
                    Some((kind.to_ascii_lowercase(), arg))
                } else {
                    return r.error(ERR_SYNTAX);
                }
            }
            _ => return r.error(ERR_SYNTAX),
        };
        let keep = |spec: &CommandSpec| match &filter {
            None => true,
            Some((kind, arg)) => match kind.as_slice() {
                b"module" => false,
                b"aclcat" => {
                    let cat = format!("@{}", String::from_utf8_lossy(arg).to_ascii_lowercase());
                    ferrokv_commands::table::AclCats::NAMES
                        .iter()
                        .find(|(n, _)| *n == cat)
                        .is_some_and(|(_, bit)| spec.acl.contains(*bit))
                }
                _ => ferrokv_store::glob::glob_match(arg, spec.name.as_bytes(), true),
            },
        };
        let mut names = Vec::new();
        for spec in all_commands() {
            if keep(spec) {
                names.push(spec.name);
            }
            names.extend(spec.subcommands.iter().filter(|s| keep(s)).map(|s| s.name));
        }
        r.array(names.len());
        for n in names {
            r.bulk(n.as_bytes());
        }
    } else if eq_ic(sub, "getkeys") || eq_ic(sub, "getkeysandflags") {
        getkeys(r, args, eq_ic(sub, "getkeysandflags"));
    } else if eq_ic(sub, "help") {
        r.array(2);
        r.simple("COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are: (no subcommand), COUNT, INFO, DOCS, GETKEYS, LIST");
        r.simple("HELP");
    } else {
        r.error(&format!("ERR unknown subcommand '{}'. Try COMMAND HELP.", printable(sub, 128)));
    }
}

/// A command by its full name, `parent|sub` for a subcommand (Redis's
/// `lookupCommandBySds`).
fn lookup_fullname(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut parts = name.splitn(3, |&b| b == b'|');
    let parent = lookup(parts.next()?)?;
    match (parts.next(), parts.next()) {
        (None, _) => Some(parent),
        (Some(sub), None) => lookup_sub(parent, sub),
        _ => None,
    }
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS command [arg ...] (Redis's `getKeysSubcommandImpl`).
fn getkeys(r: &mut ReplyBuf, args: &Args, with_flags: bool) {
    let rest = ferrokv_resp::OwnedArgs::from_slices(args.iter().skip(2));
    let a = rest.args();
    let Some(mut spec) = lookup(a.get(0)) else { return r.error("ERR Invalid command specified") };
    if !spec.subcommands.is_empty() {
        match (a.len() >= 2).then(|| lookup_sub(spec, a.get(1))).flatten() {
            Some(s) => spec = s,
            None => return r.error("ERR Invalid command specified"),
        }
    }
    if !spec.has_keys() {
        return r.error("ERR The command has no key arguments");
    }
    if !spec.arity_ok(a.len()) {
        return r.error("ERR Invalid number of arguments specified for command");
    }
    match spec.keys_and_flags(&a) {
        Ok(keys) if !keys.is_empty() => {
            r.array(keys.len());
            for (i, flags) in keys {
                if with_flags {
                    r.array(2);
                    r.bulk(a.get(i));
                    r.set(flags.len());
                    for f in flags.names() {
                        r.simple(f);
                    }
                } else {
                    r.bulk(a.get(i));
                }
            }
        }
        _ if spec.has(ferrokv_commands::table::Flags::NO_MANDATORY_KEYS) => r.array(0),
        _ => r.error("ERR Invalid arguments specified for command"),
    }
}

/// A command's COMMAND DOCS map: the reference's docs from the table, then the
/// docs of the subcommands ferrokv has.
fn command_docs(r: &mut ReplyBuf, s: &CommandSpec) {
    let doc = s.docs().and_then(|d| ferrokv_resp::parse_value(d).ok().flatten()).map(|(v, _)| v);
    let mut entries = match doc {
        Some(ferrokv_resp::Value::Map(m)) => m,
        _ => Vec::new(),
    };
    if entries.is_empty() {
        tracing::error!("no COMMAND DOCS for '{}' in the table", s.name);
    }
    r.map(entries.len() + !s.subcommands.is_empty() as usize);
    for (k, v) in entries.drain(..) {
        write_value(r, &k);
        write_value(r, &v);
    }
    if !s.subcommands.is_empty() {
        r.bulk(b"subcommands");
        r.map(s.subcommands.len());
        for sub in s.subcommands {
            r.bulk(sub.name.as_bytes());
            command_docs(r, sub);
        }
    }
}

/// Writes a stored reply in the connection's protocol (maps and sets as flat arrays in
/// RESP2).
fn write_value(r: &mut ReplyBuf, v: &ferrokv_resp::Value) {
    use ferrokv_resp::Value;
    match v {
        Value::Simple(t) => r.simple(t),
        Value::Error(t) => r.error(t),
        Value::Int(n) => r.integer(*n),
        Value::Bulk(b) => r.bulk(b),
        Value::Nil | Value::Null => r.null(),
        Value::NilArray => r.null_array(),
        Value::Array(items) | Value::Push(items) => {
            r.array(items.len());
            items.iter().for_each(|i| write_value(r, i));
        }
        Value::Set(items) => {
            r.set(items.len());
            items.iter().for_each(|i| write_value(r, i));
        }
        Value::Map(pairs) => {
            r.map(pairs.len());
            for (k, v) in pairs {
                write_value(r, k);
                write_value(r, v);
            }
        }
        Value::Double(d) => r.double(*d),
        Value::Bool(b) => r.boolean(*b),
        Value::Verbatim { text, .. } => r.verbatim(text),
        Value::BigNumber(n) => r.bulk(n.as_bytes()),
    }
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: flags in any order, as Redis 7.0
/// parses them. Without NOW the node first waits up to `shutdown-timeout` for its
/// replicas to acknowledge the whole stream (writes held, this client blocked); it
/// then saves when save points are set or SAVE is given (never with NOSAVE); a failed
/// save keeps the server up unless FORCE. ABORT cancels a shutdown that waits. The
/// sequence is `crate::shutdown`'s.
/// SHUTDOWN's arguments: its flags and whether it is SHUTDOWN ABORT; None for a
/// syntax error (Redis's illegal combinations too).
pub(crate) fn shutdown_args(args: &Args) -> Option<(crate::shutdown::Flags, bool)> {
    let mut flags = crate::shutdown::Flags::default();
    let mut abort = false;
    for a in args.iter().skip(1) {
        let flag = if eq_ic(a, "nosave") {
            &mut flags.nosave
        } else if eq_ic(a, "save") {
            &mut flags.save
        } else if eq_ic(a, "now") {
            &mut flags.now
        } else if eq_ic(a, "force") {
            &mut flags.force
        } else if eq_ic(a, "abort") {
            &mut abort
        } else {
            return None;
        };
        *flag = true;
    }
    if (abort && flags != crate::shutdown::Flags::default()) || (flags.nosave && flags.save) {
        return None;
    }
    Some((flags, abort))
}

fn shutdown(core: &mut ShardCore, c: &mut Conn, args: &Args) {
    let Some((flags, abort)) = shutdown_args(args) else { return c.error(ERR_SYNTAX) };
    // Only NOSAVE may stop a node while a script is busy (Redis's shutdownCommand): a
    // save would wait for the keyspace the script holds.
    if !abort && !flags.nosave && ferrokv_commands::scripting::running::busy() {
        return c.error(ferrokv_commands::scripting::running::busy_error());
    }
    if abort {
        return if crate::shutdown::abort(core) {
            c.reply(|r| r.ok())
        } else {
            c.error("ERR No shutdown in progress.")
        };
    }
    match crate::shutdown::prepare(core, flags) {
        crate::shutdown::Prepared::Exit => c.closing = true,
        crate::shutdown::Prepared::Failed => c.error("ERR Errors trying to SHUTDOWN. Check logs."),
        crate::shutdown::Prepared::Waiting => {
            // Blocked until the process exits, or an error if the shutdown is cancelled.
            let seq = c.push_pending();
            c.barrier = Some(seq);
            if !crate::shutdown::block(core.node, core.id, c.token, seq) {
                core.send(
                    core.id,
                    crate::msg::Msg::Reply {
                        token: c.token,
                        seq,
                        bytes: b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n".to_vec(),
                    },
                );
            }
        }
    }
}

/// SAVE
fn save_cmd(core: &mut ShardCore, c: &mut Conn) {
    match crate::persist::save(core.node) {
        Ok(()) => c.reply(|r| r.ok()),
        Err(e) => c.error(&e),
    }
}

/// BGSAVE [SCHEDULE]
fn bgsave_cmd(core: &mut ShardCore, c: &mut Conn, args: &Args, in_exec: bool) {
    let schedule = match args.len() {
        1 => false,
        2 if eq_ic(args.get(1), "schedule") => true,
        _ => return c.error(ERR_SYNTAX),
    };
    match crate::persist::running(core.node) {
        Some(true) => return c.error("ERR Background save already in progress"),
        Some(false) if schedule => {
            crate::persist::schedule(core.node);
            return c.reply(|r| r.simple("Background saving scheduled"));
        }
        Some(false) => {
            return c.error(
                "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
            )
        }
        None => {}
    }
    // Inside EXEC the keyspace locks are held: start at the next cron, as Redis
    // schedules a BGSAVE issued inside MULTI.
    if in_exec {
        crate::persist::schedule(core.node);
        return c.reply(|r| r.simple("Background saving scheduled"));
    }
    match crate::persist::bgsave(core.node) {
        Ok(()) => c.reply(|r| r.simple("Background saving started")),
        Err(crate::persist::BgsaveRefused::InProgress) => c.error("ERR Background save already in progress"),
    }
}

/// WATCH key [key ...]
fn watch(core: &mut ShardCore, c: &mut Conn, args: &Args, mut held: Held) -> Flow {
    if c.multi().is_some() {
        c.error("ERR WATCH inside MULTI is not allowed");
        return Flow::Done;
    }
    if c.inflight() > 0 {
        return Flow::Stall;
    }
    let now = core.now_ms;
    for k in args.iter().skip(1) {
        if c.watched.iter().any(|w| w.key == k) {
            continue;
        }
        let dbi = c.db;
        let (shard, (version, existed)) = held.with_db_of_key(core.node, k, |db| {
            let was = db.selected();
            db.select(dbi);
            let r = (db.watch(k), db.get(k, now).is_some());
            db.select(was);
            r
        });
        c.watched.push(Watch { key: k.to_vec(), shard, version, existed, db: dbi });
    }
    c.reply(|r| r.ok());
    Flow::Done
}

/// EXEC: runs the queued commands atomically, or answers a null array when a watched
/// key changed.
fn exec(core: &mut ShardCore, c: &mut Conn) -> Flow {
    let Some(m) = c.multi() else {
        c.error("ERR EXEC without MULTI");
        return Flow::Done;
    };
    if m.dirty {
        c.take_multi();
        c.meta.multi.store(-1, Ordering::Relaxed);
        core.release_watches(c);
        c.error("EXECABORT Transaction discarded because of previous errors.");
        return Flow::Done;
    }
    if c.inflight() > 0 {
        return Flow::Stall;
    }
    let node = core.node;
    let mut ks = loop {
        let shards = core.shards_of_transaction(c);
        // A server command inside the transaction may read any shard's keyspace
        // (CLUSTER COUNTKEYSINSLOT, GETKEYSINSLOT, SETSLOT...): lock them all, so it reads
        // through the held locks and never locks one again (see `Held`).
        let shards = if c.multi().is_some_and(|m| m.queued.iter().any(|q| matches!(q.spec.handler, Handler::Server(_))))
        {
            (0..node.shard_count()).collect()
        } else {
            shards
        };
        let ks = MultiDb::lock(node, &shards);
        // A slot handoff between routing and locking: route again.
        if core.shards_of_transaction(c).iter().all(|s| shards.contains(s)) {
            break ks;
        }
    };
    let now = core.now_ms;
    let intact = c.watched.iter().all(|w| match ks.db_of_shard(node.shard_of_key(&w.key)) {
        Some(db) => {
            db.select(w.db);
            db.watch_version(&w.key) == w.version && !(w.existed && db.get(&w.key, now).is_none())
        }
        None => false,
    });
    ks.select(c.db);
    let start_db = c.db;
    let multi = c.take_multi().unwrap_or_default();
    c.meta.multi.store(-1, Ordering::Relaxed);
    if let Some(t) = &core.trace {
        t.borrow_mut().push(crate::dispatch::TraceEvent::Transaction { client: (core.id, c.token), ran: intact });
    }
    if !intact {
        c.reply(|r| r.null_array());
    } else {
        c.reply(|r| r.array(multi.queued.len()));
        let cfg = core.exec_cfg.clone();
        let caller = crate::tracking::caller(c, core.id);
        let env = Env { cfg: &cfg, now_ms: now, may_block: false, track_keys: false, notify: core.notify, caller };
        // The whole transaction is one unit of the effects stream.
        let mut records = ferrokv_store::effects::Records::default();
        for q in &multi.queued {
            let a = q.args.args();
            match q.spec.handler {
                Handler::Data(_) | Handler::Blocking(..) => {
                    let client = (core.id, c.token);
                    let t0 = crate::node::cycles();
                    let dbi = c.db;
                    let (reply, events) = c.reply(|out| {
                        let start = out.buf.len();
                        let mut r = run_data(&mut ks, q.spec, &a, env, out, &mut records);
                        core.record_data(q.id, crate::node::cycles().wrapping_sub(t0), &r, out);
                        let events = std::mem::take(&mut r.events);
                        (core.trace.is_some().then(|| (out.buf[start..].to_vec(), r.blocked)), events)
                    });
                    if !events.is_empty() {
                        core.publish_events(events, dbi);
                    }
                    if let Some((reply, blocked)) = reply {
                        core.traced(
                            client,
                            &a,
                            &reply,
                            blocked != ferrokv_commands::table::Blocked::Served,
                            true,
                            false,
                        );
                    }
                }
                // Inside EXEC, UNWATCH has nothing left to do: EXEC drops the watches.
                Handler::Server(ServerCmd::Unwatch) => c.reply(|r| r.ok()),
                Handler::Server(cmd) => {
                    let (mark, t0) = (c.reply_mark(), crate::node::cycles());
                    let before = c.db;
                    let _ = run(core, c, cmd, &a, Held::Exec(&mut ks));
                    core.record_server(q.id, t0, c, mark);
                    if c.db != before {
                        // A queued SELECT: the commands after it run in its database,
                        // and propagate after a SELECT record.
                        ks.select(c.db);
                        if ks.propagating() {
                            ferrokv_store::effects::write_select(&mut records.resp, c.db);
                            records.count += 1;
                        }
                    }
                }
            }
        }
        if c.db != start_db && !records.is_empty() {
            // The unit is logged as run in its first database: it ends there too.
            ferrokv_store::effects::write_select(&mut records.resp, start_db);
            records.count += 1;
        }
        ks.select(start_db);
        let _ = ks.log_unit(records);
    }
    // The transaction's invalidations follow its reply (Redis sends them after EXEC).
    core.settle_tracking_all(&mut ks, Some(c));
    core.after_multi(&mut ks);
    drop(ks);
    core.release_watches(c);
    Flow::Done
}
