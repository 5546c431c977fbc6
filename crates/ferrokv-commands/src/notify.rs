//! Keyspace notifications: which events a command emits, derived in one place.
//!
//! Redis calls `notifyKeyspaceEvent` from inside each command. Here the execution
//! function derives the events once the command ran, from what it did: the keys it
//! modified (in order, as `Ctx::touch` reports them), which of its keys existed before
//! and after (a key that appeared was added: `new`; one that disappeared was emptied
//! or deleted: `del`), the keys expiry deleted on the way (`expired`), and one rule per
//! command naming its event (`RULES` below: Redis's event names and classes, from
//! its `t_*.c` files). Commands whose events depend on their arguments (SET's expiry,
//! LMOVE's ends, ZADD INCR, the *STORE commands' empty results) have a rule that reads
//! them.

use ferrokv_resp::Args;

/// Event classes, as Redis's `NOTIFY_*` bits.
pub mod class {
    pub const KEYSPACE: u16 = 1 << 0;
    pub const KEYEVENT: u16 = 1 << 1;
    pub const GENERIC: u16 = 1 << 2;
    pub const STRING: u16 = 1 << 3;
    pub const LIST: u16 = 1 << 4;
    pub const SET: u16 = 1 << 5;
    pub const HASH: u16 = 1 << 6;
    pub const ZSET: u16 = 1 << 7;
    pub const EXPIRED: u16 = 1 << 8;
    pub const EVICTED: u16 = 1 << 9;
    pub const STREAM: u16 = 1 << 10;
    pub const KEY_MISS: u16 = 1 << 11;
    pub const MODULE: u16 = 1 << 13;
    pub const NEW: u16 = 1 << 14;
    /// `A`: every class but key misses and new keys.
    pub const ALL: u16 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;
}

/// Parses a `notify-keyspace-events` value (Redis's `keyspaceEventsStringToFlags`).
pub fn parse_flags(s: &str) -> Option<u16> {
    let mut f = 0;
    for ch in s.chars() {
        f |= match ch {
            'A' => class::ALL,
            'g' => class::GENERIC,
            '$' => class::STRING,
            'l' => class::LIST,
            's' => class::SET,
            'h' => class::HASH,
            'z' => class::ZSET,
            'x' => class::EXPIRED,
            'e' => class::EVICTED,
            'K' => class::KEYSPACE,
            'E' => class::KEYEVENT,
            't' => class::STREAM,
            'm' => class::KEY_MISS,
            'd' => class::MODULE,
            'n' => class::NEW,
            _ => return None,
        };
    }
    Some(f)
}

/// The value CONFIG GET shows (Redis 7.0.15's `keyspaceEventsFlagsToString`, which
/// does not print `n`).
pub fn flags_to_string(f: u16) -> String {
    let mut s = String::new();
    if f & class::ALL == class::ALL {
        s.push('A');
    } else {
        for (bit, ch) in [
            (class::GENERIC, 'g'),
            (class::STRING, '$'),
            (class::LIST, 'l'),
            (class::SET, 's'),
            (class::HASH, 'h'),
            (class::ZSET, 'z'),
            (class::EXPIRED, 'x'),
            (class::EVICTED, 'e'),
            (class::STREAM, 't'),
            (class::MODULE, 'd'),
        ] {
            if f & bit != 0 {
                s.push(ch);
            }
        }
    }
    for (bit, ch) in [(class::KEYSPACE, 'K'), (class::KEYEVENT, 'E'), (class::KEY_MISS, 'm')] {
        if f & bit != 0 {
            s.push(ch);
        }
    }
    s
}

/// One event: published on `__keyspace@0__:<key>` (class K) and
/// `__keyevent@0__:<event>` (class E).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    pub class: u16,
    pub event: &'static str,
    pub key: Vec<u8>,
    /// The key's database when it is not the command's (MOVE's and COPY's target).
    pub db: Option<usize>,
    /// Not a keyspace event but a message a script published (`redis.call('PUBLISH')`,
    /// event `publish` or `spublish`, `key` the channel): it leaves with the script's
    /// events, in the order the script ran, whatever `notify-keyspace-events` says.
    pub message: Option<Vec<u8>>,
}

/// How a command's events follow from what it did.
#[derive(Clone, Copy)]
enum Rule {
    /// No events.
    None,
    /// `event` for each key it modified, then `del` for each it emptied.
    Each(u16, &'static str),
    /// `new` (the key is added again even when it replaced one: Redis deletes and adds
    /// it) then `event` for each key it modified (COPY, RESTORE).
    Added(u16, &'static str),
    /// `del` for each key it deleted.
    Del,
    /// SET and friends: `set`, then `expire` when an expiry was given.
    Set,
    /// EXPIRE family: `expire`, or `del` when the time was in the past.
    Expire,
    /// GETEX: `expire`/`persist`, or `del` for a past time.
    Getex,
    /// A destination key written from a computation: `event` when it holds the
    /// result, `del` when the empty result deleted it. `dst` finds it among the args.
    Store(u16, &'static str),
    /// LMOVE and friends: the push on the destination, then the pop on the source
    /// (and its `del` when emptied), as Redis's `lmoveGenericCommand` orders them.
    ListMove,
    /// LMPOP/BLMPOP: `lpop` or `rpop` by the LEFT/RIGHT argument.
    ListMpop,
    /// ZMPOP/BZMPOP: `zpopmin` or `zpopmax` by the MIN/MAX argument.
    ZsetMpop,
    /// ZADD: `zadd`, or `zincr` with INCR.
    Zadd,
    /// SMOVE: `srem` on the source (and `del` when emptied), `sadd` on the destination.
    Smove,
    /// RENAME(NX): `rename_from` on the source, `rename_to` on the destination.
    Rename,
}

fn rule(name: &str) -> Rule {
    use class::*;
    match name {
        "set" | "setex" | "psetex" => Rule::Set,
        "setnx" | "getset" | "mset" | "msetnx" => Rule::Each(STRING, "set"),
        "append" => Rule::Each(STRING, "append"),
        "setrange" => Rule::Each(STRING, "setrange"),
        "incr" | "decr" | "incrby" | "decrby" => Rule::Each(STRING, "incrby"),
        "incrbyfloat" => Rule::Each(STRING, "incrbyfloat"),
        "setbit" | "bitfield" => Rule::Each(STRING, "setbit"),
        "bitop" => Rule::Store(STRING, "set"),
        "pfadd" | "pfmerge" => Rule::Each(STRING, "pfadd"),
        "getdel" | "del" | "unlink" => Rule::Del,
        "getex" => Rule::Getex,
        "expire" | "pexpire" | "expireat" | "pexpireat" => Rule::Expire,
        "persist" => Rule::Each(GENERIC, "persist"),
        "rename" | "renamenx" => Rule::Rename,
        "copy" => Rule::Added(GENERIC, "copy_to"),
        "restore" => Rule::Added(GENERIC, "restore"),
        "sort" => Rule::Store(LIST, "sortstore"),
        "lpush" | "lpushx" => Rule::Each(LIST, "lpush"),
        "rpush" | "rpushx" => Rule::Each(LIST, "rpush"),
        "linsert" => Rule::Each(LIST, "linsert"),
        "lset" => Rule::Each(LIST, "lset"),
        "lpop" | "blpop" => Rule::Each(LIST, "lpop"),
        "rpop" | "brpop" => Rule::Each(LIST, "rpop"),
        "lrem" => Rule::Each(LIST, "lrem"),
        "ltrim" => Rule::Each(LIST, "ltrim"),
        "lmove" | "blmove" | "rpoplpush" | "brpoplpush" => Rule::ListMove,
        "lmpop" | "blmpop" => Rule::ListMpop,
        "hset" | "hmset" | "hsetnx" => Rule::Each(HASH, "hset"),
        "hdel" => Rule::Each(HASH, "hdel"),
        "hincrby" => Rule::Each(HASH, "hincrby"),
        "hincrbyfloat" => Rule::Each(HASH, "hincrbyfloat"),
        "sadd" => Rule::Each(SET, "sadd"),
        "srem" => Rule::Each(SET, "srem"),
        "spop" => Rule::Each(SET, "spop"),
        "smove" => Rule::Smove,
        "sinterstore" => Rule::Store(SET, "sinterstore"),
        "sunionstore" => Rule::Store(SET, "sunionstore"),
        "sdiffstore" => Rule::Store(SET, "sdiffstore"),
        "zadd" => Rule::Zadd,
        "zincrby" => Rule::Each(ZSET, "zincr"),
        "zrem" => Rule::Each(ZSET, "zrem"),
        "zremrangebyscore" => Rule::Each(ZSET, "zremrangebyscore"),
        "zremrangebyrank" => Rule::Each(ZSET, "zremrangebyrank"),
        "zremrangebylex" => Rule::Each(ZSET, "zremrangebylex"),
        "zunionstore" => Rule::Store(ZSET, "zunionstore"),
        "zinterstore" => Rule::Store(ZSET, "zinterstore"),
        "zdiffstore" => Rule::Store(ZSET, "zdiffstore"),
        "zrangestore" => Rule::Store(ZSET, "zrangestore"),
        "zpopmin" | "bzpopmin" => Rule::Each(ZSET, "zpopmin"),
        "zpopmax" | "bzpopmax" => Rule::Each(ZSET, "zpopmax"),
        "zmpop" | "bzmpop" => Rule::ZsetMpop,
        _ => Rule::None,
    }
}

fn has_word(args: &Args, from: usize, words: &[&str]) -> bool {
    args.iter().skip(from).any(|a| words.iter().any(|w| a.eq_ignore_ascii_case(w.as_bytes())))
}

/// What the execution function knows of a command once it ran.
pub struct Observed<'a> {
    /// Keys deleted by expiry while it ran (lazily), in order.
    pub expired: Vec<Vec<u8>>,
    /// Keys it modified, in order.
    pub modified: &'a [Vec<u8>],
    /// Its declared keys: (key, existed before, exists after).
    pub keys: &'a [(Vec<u8>, bool, bool)],
    /// A read-only command (its missing keys are key misses).
    pub reads_only: bool,
    /// MOVE, or COPY to another database, wrote there: that database.
    pub other_db: Option<usize>,
}

/// The events of one command, in Redis's order, filtered by `flags` (the configured
/// classes; nothing is built when no class is on).
pub fn events(name: &str, args: &Args, o: &Observed, flags: u16) -> Vec<KeyEvent> {
    let mut out = Vec::new();
    let mut emit_in = |class: u16, event: &'static str, key: &[u8], db: Option<usize>| {
        if flags & class != 0 {
            out.push(KeyEvent { class, event, key: key.to_vec(), db, message: None });
        }
    };
    if let (Some(d), "move" | "copy") = (o.other_db, name) {
        // Redis's dbAdd in the target database, then the command's own events.
        let key = args.get(if name == "move" { 1 } else { 2 });
        emit_in(class::NEW, "new", key, Some(d));
        if name == "move" {
            emit_in(class::GENERIC, "move_from", key, None);
            emit_in(class::GENERIC, "move_to", key, Some(d));
        } else {
            emit_in(class::GENERIC, "copy_to", key, Some(d));
        }
        return out;
    }
    let mut emit = |class: u16, event: &'static str, key: &[u8]| emit_in(class, event, key, None);
    for k in &o.expired {
        emit(class::EXPIRED, "expired", k);
    }
    if o.reads_only {
        for (k, before, _) in o.keys {
            if !before {
                emit(class::KEY_MISS, "keymiss", k);
            }
        }
        return out;
    }
    // Writes that look their sources up as reads (Redis's lookupKeyRead) miss them too.
    let read_from = match name {
        "bitop" => 3,
        "pfmerge" | "sort" | "copy" => 1,
        "zrangestore" | "sinterstore" | "sunionstore" | "sdiffstore" => 2,
        "zunionstore" | "zinterstore" | "zdiffstore" => 3,
        _ => usize::MAX,
    };
    if read_from != usize::MAX && flags & class::KEY_MISS != 0 {
        let only_one = matches!(name, "sort" | "copy" | "zrangestore");
        for (i, a) in args.iter().enumerate().skip(read_from) {
            if let Some((k, false, _)) = o.keys.iter().find(|(k, ..)| k == a) {
                emit(class::KEY_MISS, "keymiss", k);
            }
            if only_one || i + 1 >= args.len() {
                break;
            }
        }
    }
    let state = |k: &[u8]| o.keys.iter().find(|(key, ..)| key == k).map_or((false, false), |(_, b, a)| (*b, *a));
    let created = |k: &[u8]| {
        let (b, a) = state(k);
        !b && a
    };
    let emptied = |k: &[u8]| {
        let (b, a) = state(k);
        b && !a
    };
    let modified = |k: &[u8]| o.modified.iter().any(|m| m == k);
    match rule(name) {
        Rule::None => {}
        Rule::Each(c, ev) => {
            for k in o.modified {
                if created(k) {
                    emit(class::NEW, "new", k);
                }
                emit(c, ev, k);
                if emptied(k) {
                    emit(class::GENERIC, "del", k);
                }
            }
        }
        Rule::Added(c, ev) => {
            for k in o.modified {
                emit(class::NEW, "new", k);
                emit(c, ev, k);
            }
        }
        Rule::Del => {
            for k in o.modified {
                emit(class::GENERIC, "del", k);
            }
        }
        Rule::Set => {
            let expiry = name != "set" || has_word(args, 3, &["ex", "px", "exat", "pxat"]);
            for k in o.modified {
                if created(k) {
                    emit(class::NEW, "new", k);
                }
                emit(class::STRING, "set", k);
                if expiry {
                    emit(class::GENERIC, "expire", k);
                }
            }
        }
        Rule::Expire => {
            for k in o.modified {
                emit(class::GENERIC, if emptied(k) { "del" } else { "expire" }, k);
            }
        }
        Rule::Getex => {
            let persist = has_word(args, 2, &["persist"]);
            for k in o.modified {
                let ev = if emptied(k) {
                    "del"
                } else if persist {
                    "persist"
                } else {
                    "expire"
                };
                emit(class::GENERIC, ev, k);
            }
        }
        Rule::Store(c, ev) => {
            for k in o.modified {
                if emptied(k) {
                    emit(class::GENERIC, "del", k);
                } else {
                    if created(k) {
                        emit(class::NEW, "new", k);
                    }
                    emit(c, ev, k);
                }
            }
        }
        Rule::ListMove => {
            let (src, dst) = (args.get(1), args.get(2));
            let rpoplpush = name.ends_with("rpoplpush");
            let left = |i: usize| args.len() > i && args.get(i).eq_ignore_ascii_case(b"left");
            let (pop, push) = if rpoplpush {
                ("rpop", "lpush")
            } else {
                (if left(3) { "lpop" } else { "rpop" }, if left(4) { "lpush" } else { "rpush" })
            };
            if modified(src) || modified(dst) {
                if created(dst) {
                    emit(class::NEW, "new", dst);
                }
                emit(class::LIST, push, dst);
                emit(class::LIST, pop, src);
                if emptied(src) {
                    emit(class::GENERIC, "del", src);
                }
            }
        }
        Rule::ListMpop | Rule::ZsetMpop => {
            let (c, ev) = match rule(name) {
                Rule::ListMpop if has_word(args, 2, &["left"]) => (class::LIST, "lpop"),
                Rule::ListMpop => (class::LIST, "rpop"),
                _ if has_word(args, 2, &["min"]) => (class::ZSET, "zpopmin"),
                _ => (class::ZSET, "zpopmax"),
            };
            for k in o.modified {
                emit(c, ev, k);
                if emptied(k) {
                    emit(class::GENERIC, "del", k);
                }
            }
        }
        Rule::Zadd => {
            let ev = if has_word(args, 2, &["incr"]) { "zincr" } else { "zadd" };
            for k in o.modified {
                if created(k) {
                    emit(class::NEW, "new", k);
                }
                emit(class::ZSET, ev, k);
            }
        }
        Rule::Smove => {
            let (src, dst) = (args.get(1), args.get(2));
            if modified(src) || modified(dst) {
                if src != dst {
                    emit(class::SET, "srem", src);
                    if emptied(src) {
                        emit(class::GENERIC, "del", src);
                    }
                }
                // `sadd` only when the member was new there (Redis's setTypeAdd).
                if modified(dst) {
                    if created(dst) {
                        emit(class::NEW, "new", dst);
                    }
                    emit(class::SET, "sadd", dst);
                }
            }
        }
        Rule::Rename => {
            let (src, dst) = (args.get(1), args.get(2));
            if modified(dst) || modified(src) {
                emit(class::NEW, "new", dst);
                emit(class::GENERIC, "rename_from", src);
                emit(class::GENERIC, "rename_to", dst);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_as_redis_prints_them() {
        assert_eq!(parse_flags("KEA").map(flags_to_string).as_deref(), Some("AKE"));
        assert_eq!(parse_flags("KEAn").map(flags_to_string).as_deref(), Some("AKE"));
        assert_eq!(parse_flags("Kx").map(flags_to_string).as_deref(), Some("xK"));
        assert_eq!(parse_flags("Egx$lshzxetdmn").map(flags_to_string).as_deref(), Some("AEm"));
        assert_eq!(parse_flags(""), Some(0));
        assert_eq!(parse_flags("Kq"), None);
    }
}
