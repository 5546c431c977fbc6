//! DEBUG, as Redis 7.0's debug.c for the subcommands that are cheap and honest here,
//! behind `enable-debug-command` (no by default: refused with Redis's words; local:
//! from loopback and Unix socket clients only).
//!
//! Implemented: HELP, SLEEP, SET-ACTIVE-EXPIRE, LOG, ERROR, CHANGE-REPL-ID, and
//! ferrokv's SLOT-MIGRATION-HOLD (tests catch a whole-slot import midway). Redis's
//! other subcommands (OBJECT, RELOAD, DIGEST, POPULATE, JMAP-like crash helpers...)
//! answer that ferrokv does not support them; a name Redis does not know gets Redis's
//! unknown-subcommand error.

use crate::conn::Conn;
use crate::dispatch::ShardCore;
use crate::node::Node;
use ferrokv_resp::Args;
use std::sync::atomic::Ordering;

/// Redis's rejection when `enable-debug-command` does not allow the client.
pub const NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// Redis's `allowProtectedAction(server.enable_debug_cmd, c)`.
pub fn allowed(node: &Node, c: &Conn) -> bool {
    match node.config().enable_debug_command.as_str() {
        "yes" => true,
        "local" => is_local(&c.meta.addr),
        _ => false,
    }
}

/// Redis's islocalClient: a Unix socket client, or a TCP peer at 127.0.0.1 or ::1.
fn is_local(addr: &str) -> bool {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => matches!(a.ip().to_string().as_str(), "127.0.0.1" | "::1"),
        // Not an IP address: a Unix socket's path (`path:0`), unless unknown.
        Err(_) => addr != "?:0",
    }
}

/// Redis's subcommands that ferrokv does not have (they get an honest error).
const REDIS_ONLY: &[&str] = &[
    "segfault",
    "panic",
    "restart",
    "crash-and-recover",
    "oom",
    "assert",
    "leak",
    "reload",
    "loadaof",
    "drop-cluster-packet-filter",
    "object",
    "sdslen",
    "listpack",
    "quicklist",
    "populate",
    "digest",
    "digest-value",
    "protocol",
    "quicklist-packed-threshold",
    "set-skip-checksum-validation",
    "aof-flush-sleep",
    "replicate",
    "structsize",
    "htstats",
    "htstats-key",
    "stringmatch-test",
    "set-disable-deny-scripts",
    "config-rewrite-force-all",
    "client-eviction",
    "mallctl",
    "mallctl-str",
    "pause-cron",
    "replybuffer",
    "clusterlink",
];

const HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANGE-REPL-ID",
    "    Change the replication IDs of the instance.",
    "    Dangerous: should be used only for testing the replication subsystem.",
    "ERROR <string>",
    "    Return a Redis protocol error with <string> as message. Useful for clients",
    "    unit tests to simulate Redis errors.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLOT-MIGRATION-HOLD <0|1>",
    "    (ferrokv) 1 holds this node's whole-slot imports before their write pause,",
    "    keys copied and slots not yet claimed; 0 lets them go on.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed. (ferrokv: stops the shard",
    "    thread that runs the command.)",
    "HELP",
    "    Print this help.",
];

/// C's strtod: the longest prefix that is a number, else 0.
fn strtod(s: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(s);
    let s = s.trim_start();
    (1..=s.len()).rev().filter_map(|n| s.get(..n)).find_map(|p| p.parse::<f64>().ok()).unwrap_or(0.0)
}

/// C's atoi: an optional sign and the digits that follow, else 0.
fn atoi(s: &[u8]) -> i64 {
    let s = String::from_utf8_lossy(s);
    let s = s.trim_start();
    let end = s
        .char_indices()
        .find(|&(i, ch)| !(ch.is_ascii_digit() || (i == 0 && (ch == '-' || ch == '+'))))
        .map_or(s.len(), |(i, _)| i);
    s[..end].parse().unwrap_or(0)
}

/// DEBUG <subcommand> [args...]
pub fn debug(core: &mut ShardCore, c: &mut Conn, args: &Args) {
    let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
    let argc = args.len();
    match (sub.as_str(), argc) {
        ("help", 2) => c.reply(|r| {
            r.array(HELP.len());
            for line in HELP {
                r.simple(line);
            }
        }),
        ("sleep", 3) => {
            let secs = strtod(args.get(2));
            if secs > 0.0 && secs.is_finite() {
                std::thread::sleep(std::time::Duration::from_micros((secs * 1_000_000.0) as u64));
            }
            c.reply(|r| r.ok());
        }
        ("set-active-expire", 3) => {
            core.node.active_expire.store(atoi(args.get(2)) != 0, Ordering::Relaxed);
            c.reply(|r| r.ok());
        }
        ("slot-migration-hold", 3) => {
            core.node.slot_migration.hold.store(atoi(args.get(2)) != 0, Ordering::Relaxed);
            c.reply(|r| r.ok());
        }
        ("log", 3) => {
            tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(args.get(2)));
            c.reply(|r| r.ok());
        }
        ("error", 3) => {
            let text: String = String::from_utf8_lossy(args.get(2))
                .chars()
                .map(|ch| if ch == '\r' || ch == '\n' { ' ' } else { ch })
                .collect();
            c.reply(|r| r.raw(format!("-{text}\r\n").as_bytes()));
        }
        ("change-repl-id", 2) => {
            {
                let mut st = crate::repl::lock(&core.node.repl.st);
                st.replid = crate::node::random_hex(40);
                st.clear_replid2();
            }
            tracing::info!("Changing replication IDs after receiving DEBUG change-repl-id");
            c.reply(|r| r.ok());
        }
        _ if REDIS_ONLY.contains(&sub.as_str()) => {
            c.error(&format!("ERR DEBUG {} is not supported by ferrokv", sub.to_ascii_uppercase()))
        }
        _ => c.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(args.get(1))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_number_parsing() {
        assert_eq!(strtod(b"0.25"), 0.25);
        assert_eq!(strtod(b"1.5x"), 1.5);
        assert_eq!(strtod(b"x"), 0.0);
        assert_eq!(atoi(b"1"), 1);
        assert_eq!(atoi(b"0"), 0);
        assert_eq!(atoi(b"12abc"), 12);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(atoi(b"-3"), -3);
    }

    #[test]
    fn local_clients() {
        assert!(is_local("127.0.0.1:5000"));
        assert!(is_local("[::1]:5000"));
        assert!(!is_local("10.0.0.1:5000"));
        assert!(!is_local("127.0.0.2:5000"));
        assert!(is_local("/tmp/redis.sock:0"));
        assert!(!is_local("?:0"));
    }
}
