//! OBJECT (Redis's object.c): how a value is stored and how recently and often it is
//! used. None of these lookups counts as an access.

use crate::table::{CommandSpec, Handler, KeyPositions};
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::Value;

const SUB_KEY: KeyPositions = KeyPositions::new(2, 2, 1);
const SUB_FLAGS: &[&str] = &["readonly"];
const SUB_ACL: &[&str] = &["@keyspace", "@read", "@slow"];

/// As `COMMAND INFO object` on redis-server 7.0 prints them.
pub const OBJECT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("object|encoding", 3, SUB_FLAGS, SUB_KEY, SUB_ACL, Handler::Data(object_encoding)),
    CommandSpec::new("object|freq", 3, SUB_FLAGS, SUB_KEY, SUB_ACL, Handler::Data(object_freq)),
    CommandSpec::new("object|idletime", 3, SUB_FLAGS, SUB_KEY, SUB_ACL, Handler::Data(object_idletime)),
    CommandSpec::new("object|refcount", 3, SUB_FLAGS, SUB_KEY, SUB_ACL, Handler::Data(object_refcount)),
    CommandSpec::new(
        "object|help",
        2,
        &["loading", "stale"],
        KeyPositions::NONE,
        &["@keyspace", "@slow"],
        Handler::Data(object_help),
    ),
];

/// OBJECT <ENCODING | FREQ | IDLETIME | REFCOUNT | HELP> [key]
///
/// Dispatches to the subcommand, with the arity and unknown-subcommand errors Redis
/// gives, for a server that runs the parent's handler.
pub fn object(ctx: &mut Ctx, args: &Args) {
    if args.len() < 2 {
        return ctx.out.error(&arity_error("object"));
    }
    let name = args.get(1);
    let Some(sub) = OBJECT_SUBCOMMANDS.iter().find(|s| eq_ic(name, &s.name["object|".len()..])) else {
        return unknown_subcommand(ctx, name);
    };
    if !sub.arity_ok(args.len()) {
        return ctx.out.error(&arity_error(sub.name));
    }
    if let Handler::Data(f) = sub.handler {
        f(ctx, args)
    }
}

/// `ERR unknown subcommand '<name>'. Try OBJECT HELP.`, the name cut at 128 bytes (or
/// a NUL) as Redis's `%.128s` does.
fn unknown_subcommand(ctx: &mut Ctx, name: &[u8]) {
    let name = name.split(|&b| b == 0).next().unwrap_or(name);
    let name = &name[..name.len().min(128)];
    ctx.out.error(&format!("ERR unknown subcommand '{}'. Try OBJECT HELP.", String::from_utf8_lossy(name)));
}

/// OBJECT ENCODING key
pub fn object_encoding(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(2), ctx.now_ms);
    match ctx.keys.db(key).peek(key, now) {
        Some(e) => ctx.out.bulk(e.value.encoding().as_bytes()),
        None => ctx.out.null(),
    }
}

/// OBJECT REFCOUNT key
///
/// 1, except for the integers 0..9999 that Redis shares between keys (as long as no
/// LRU/LFU maxmemory policy forbids sharing): those report 2147483647, unless COPY
/// made a private copy.
pub fn object_refcount(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(2), ctx.now_ms);
    let db = ctx.keys.db(key);
    let shared = db.shared_integers;
    match db.peek_with_access(key, now) {
        Some((e, access)) => ctx.out.integer(refcount(&e.value, shared && !access.is_private_int())),
        None => ctx.out.null(),
    }
}

/// Redis's `OBJ_SHARED_INTEGERS` and `OBJ_SHARED_REFCOUNT`.
const SHARED_INTEGERS: i64 = 10_000;
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

fn refcount(v: &Value, shared_integers: bool) -> i64 {
    match v {
        Value::Int(n) if shared_integers && (0..SHARED_INTEGERS).contains(n) => SHARED_REFCOUNT,
        _ => 1,
    }
}

/// OBJECT IDLETIME key
///
/// Seconds since the last access; an error under an LFU maxmemory policy.
pub fn object_idletime(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(2), ctx.now_ms);
    let db = ctx.keys.db(key);
    let lfu = db.lfu_policy;
    match db.idle_seconds(key, now) {
        None => ctx.out.null(),
        Some(_) if lfu => ctx.out.error(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching \
             between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
        Some(s) => ctx.out.integer(s as i64),
    }
}

/// OBJECT FREQ key
///
/// The logarithmic access counter; an error unless the maxmemory policy is LFU.
pub fn object_freq(ctx: &mut Ctx, args: &Args) {
    let (key, now) = (args.get(2), ctx.now_ms);
    let db = ctx.keys.db(key);
    let lfu = db.lfu_policy;
    match db.lfu_counter(key, now) {
        None => ctx.out.null(),
        Some(_) if !lfu => ctx.out.error(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when \
             switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
        Some(c) => ctx.out.integer(c as i64),
    }
}

const HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// OBJECT HELP
pub fn object_help(ctx: &mut Ctx, _args: &Args) {
    ctx.out.array(HELP.len());
    for line in HELP {
        ctx.out.simple(line);
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::Harness;
    use ferrokv_resp::Proto;

    #[test]
    fn encodings() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET i 123");
        h.cmd("SET s hello");
        h.cmd_args(&[b"SET", b"r", &[b'x'; 45]]);
        assert_eq!(h.cmd("OBJECT ENCODING i"), "$3\r\nint\r\n");
        assert_eq!(h.cmd("OBJECT encoding s"), "$6\r\nembstr\r\n");
        assert_eq!(h.cmd("object ENCODING r"), "$3\r\nraw\r\n");
        assert_eq!(h.cmd("OBJECT ENCODING nokey"), "$-1\r\n");
        h.proto = Proto::Resp3;
        assert_eq!(h.cmd("OBJECT ENCODING nokey"), "_\r\n");
    }

    #[test]
    fn refcounts() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET small 9999");
        h.cmd("SET big 10000");
        h.cmd("SET neg -1");
        h.cmd("SET s hello");
        assert_eq!(h.cmd("OBJECT REFCOUNT small"), ":2147483647\r\n");
        assert_eq!(h.cmd("OBJECT REFCOUNT big"), ":1\r\n");
        assert_eq!(h.cmd("OBJECT REFCOUNT neg"), ":1\r\n");
        assert_eq!(h.cmd("OBJECT REFCOUNT s"), ":1\r\n");
        assert_eq!(h.cmd("OBJECT REFCOUNT nokey"), "$-1\r\n");
        // COPY duplicates the shared object; RENAME moves it.
        h.cmd("COPY small copied");
        assert_eq!(h.cmd("OBJECT REFCOUNT copied"), ":1\r\n");
        h.cmd("RENAME copied moved");
        assert_eq!(h.cmd("OBJECT REFCOUNT moved"), ":1\r\n");
        h.cmd("RENAME small moved2");
        assert_eq!(h.cmd("OBJECT REFCOUNT moved2"), ":2147483647\r\n");
        h.db.shared_integers = false;
        assert_eq!(h.cmd("OBJECT REFCOUNT moved2"), ":1\r\n");
    }

    #[test]
    fn idletime_and_freq_follow_the_policy() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a v");
        h.now += 5_000;
        assert_eq!(h.cmd("OBJECT IDLETIME a"), ":5\r\n");
        assert_eq!(h.cmd("OBJECT IDLETIME nokey"), "$-1\r\n");
        assert_eq!(h.cmd("OBJECT FREQ nokey"), "$-1\r\n");
        assert!(h.cmd("OBJECT FREQ a").starts_with("-ERR An LFU maxmemory policy is not selected, access frequency"));
        h.db.lfu_policy = true;
        assert_eq!(h.cmd("OBJECT FREQ a"), ":5\r\n");
        h.cmd("GET a");
        assert_eq!(h.cmd("OBJECT FREQ a"), ":6\r\n");
        assert_eq!(
            h.cmd("OBJECT IDLETIME a"),
            "-ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching \
             between policies at runtime LRU and LFU data will take some time to adjust.\r\n"
        );
        assert_eq!(h.cmd("OBJECT FREQ nokey"), "$-1\r\n");
    }

    #[test]
    fn dispatch_errors_and_help() {
        let mut h = Harness::with_seed(42);
        h.cmd("SET a v");
        assert_eq!(h.cmd("OBJECT foo"), "-ERR unknown subcommand 'foo'. Try OBJECT HELP.\r\n");
        assert_eq!(h.cmd_args(&[b"OBJECT", b"x\r\ny"]), "-ERR unknown subcommand 'x  y'. Try OBJECT HELP.\r\n");
        let long = "z".repeat(200);
        assert_eq!(
            h.cmd(&format!("OBJECT {long}")),
            format!("-ERR unknown subcommand '{}'. Try OBJECT HELP.\r\n", &long[..128])
        );
        assert_eq!(h.cmd("OBJECT encoding"), "-ERR wrong number of arguments for 'object|encoding' command\r\n");
        assert_eq!(h.cmd("OBJECT encoding a b"), "-ERR wrong number of arguments for 'object|encoding' command\r\n");
        assert_eq!(h.cmd("OBJECT help x"), "-ERR wrong number of arguments for 'object|help' command\r\n");
        assert_eq!(h.cmd("OBJECT"), "-ERR wrong number of arguments for 'object' command\r\n");
        let help = h.cmd("OBJECT HELP");
        assert!(help.starts_with("*15\r\n+OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"));
        assert!(help.ends_with("+HELP\r\n+    Prints this help.\r\n"));
        assert_eq!(help.matches("\r\n").count(), 16);
    }
}
