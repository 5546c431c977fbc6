//! The directives of Redis 7.0's redis.conf whose feature ferrokv lacks.
//!
//! Each is known, so a stock redis.conf is read whole, and its value is kept and shown by
//! CONFIG GET. Two kinds:
//! - **no effect yet** (`refused: None`): pretending cannot hurt — a tuning knob, a
//!   statistic, a debugging aid, or an option of a feature that is off unless another
//!   directive turns it on. Start-up lists the ones given in one warning.
//! - **refused** (`refused: Some(feature)`): at any value but the default the user would
//!   rely on the feature (TLS, ACL files, a memory limit, keyspace notifications), so
//!   start-up stops with a line naming the directive and the feature, and CONFIG SET
//!   answers an error naming it.
//!
//! When a feature lands, its directives move from here to `OPTIONS` in config.rs.

use super::Kind;

pub struct Lacking {
    pub name: &'static str,
    pub kind: Kind,
    /// As Redis 7.0.15's CONFIG GET shows it on a default start.
    pub default: &'static str,
    pub mutable: bool,
    /// The missing feature a non-default value would rely on; `None`: no effect yet.
    pub refused: Option<&'static str>,
}

impl Lacking {
    /// Whether `v` (as stored: memory in bytes, enums in lower case) is the default.
    pub fn is_default(&self, v: &str) -> bool {
        match self.kind {
            Kind::Words => v.split_whitespace().eq(self.default.split_whitespace()),
            _ => v == self.default,
        }
    }
}

const INT: Kind = Kind::Int { min: 0, max: i64::MAX };
const YES_NO_LOCAL: Kind = Kind::Enum(&["no", "yes", "local"]);
const TLS: Option<&str> = Some("TLS");

macro_rules! no_effect {
    ($name:literal, $kind:expr, $default:literal) => {
        Lacking { name: $name, kind: $kind, default: $default, mutable: true, refused: None }
    };
    ($name:literal, $kind:expr, $default:literal, immutable) => {
        Lacking { name: $name, kind: $kind, default: $default, mutable: false, refused: None }
    };
}

macro_rules! refused {
    ($name:literal, $kind:expr, $default:literal, $feature:expr) => {
        Lacking { name: $name, kind: $kind, default: $default, mutable: true, refused: $feature }
    };
    ($name:literal, $kind:expr, $default:literal, $feature:expr, immutable) => {
        Lacking { name: $name, kind: $kind, default: $default, mutable: false, refused: $feature }
    };
}

pub static LACKING: &[Lacking] = &[
    // Security and TLS: without them a client would reach what the file meant to protect.
    refused!("tls-port", Kind::Int { min: 0, max: 65535 }, "0", TLS),
    refused!("tls-replication", Kind::Bool, "no", TLS),
    refused!("tls-cluster", Kind::Bool, "no", TLS),
    refused!("cluster-announce-tls-port", Kind::Int { min: 0, max: 65535 }, "0", TLS),
    refused!("aclfile", Kind::Str, "", Some("ACL (aclfile)"), immutable),
    // Only read with a TLS port, TLS replication or a TLS bus, all refused above.
    no_effect!("tls-cert-file", Kind::Str, ""),
    no_effect!("tls-key-file", Kind::Str, ""),
    no_effect!("tls-key-file-pass", Kind::Str, ""),
    no_effect!("tls-client-cert-file", Kind::Str, ""),
    no_effect!("tls-client-key-file", Kind::Str, ""),
    no_effect!("tls-client-key-file-pass", Kind::Str, ""),
    no_effect!("tls-dh-params-file", Kind::Str, ""),
    no_effect!("tls-ca-cert-file", Kind::Str, ""),
    no_effect!("tls-ca-cert-dir", Kind::Str, ""),
    no_effect!("tls-protocols", Kind::Str, ""),
    no_effect!("tls-ciphers", Kind::Str, ""),
    no_effect!("tls-ciphersuites", Kind::Str, ""),
    no_effect!("tls-auth-clients", Kind::Enum(&["no", "yes", "optional"]), "yes"),
    no_effect!("tls-prefer-server-ciphers", Kind::Bool, "no"),
    no_effect!("tls-session-caching", Kind::Bool, "yes"),
    no_effect!("tls-session-cache-size", INT, "20480"),
    no_effect!("tls-session-cache-timeout", INT, "300"),
    // Addresses clients or peers would be sent to.
    refused!(
        "cluster-preferred-endpoint-type",
        Kind::Enum(&["ip", "hostname", "unknown-endpoint"]),
        "ip",
        Some("cluster-preferred-endpoint-type other than ip")
    ),
    refused!("bind-source-addr", Kind::Str, "", Some("bind-source-addr (a source address for outgoing connections)")),
    // Statistics and debugging aids.
    no_effect!("slowlog-log-slower-than", Kind::Int { min: i64::MIN, max: i64::MAX }, "10000"),
    no_effect!("slowlog-max-len", INT, "128"),
    no_effect!("latency-monitor-threshold", INT, "0"),
    no_effect!("latency-tracking", Kind::Bool, "yes"),
    no_effect!("latency-tracking-info-percentiles", Kind::Words, "50 99 99.9"),
    no_effect!("acllog-max-len", INT, "128"),
    no_effect!("acl-pubsub-default", Kind::Enum(&["allchannels", "resetchannels"]), "resetchannels"),
    no_effect!("crash-log-enabled", Kind::Bool, "yes"),
    no_effect!("crash-memcheck-enabled", Kind::Bool, "yes"),
    no_effect!("enable-module-command", YES_NO_LOCAL, "no", immutable),
    no_effect!("enable-protected-configs", YES_NO_LOCAL, "no", immutable),
    no_effect!("ignore-warnings", Kind::Str, ""),
    // Tuning of work ferrokv does its own way (or synchronously, which is what `no` means).
    no_effect!("activerehashing", Kind::Bool, "yes"),
    no_effect!("active-expire-effort", Kind::Int { min: 1, max: 10 }, "1"),
    no_effect!("lazyfree-lazy-expire", Kind::Bool, "no"),
    no_effect!("lazyfree-lazy-server-del", Kind::Bool, "no"),
    no_effect!("lazyfree-lazy-user-del", Kind::Bool, "no"),
    no_effect!("lazyfree-lazy-user-flush", Kind::Bool, "no"),
    no_effect!("dynamic-hz", Kind::Bool, "yes"),
    no_effect!("jemalloc-bg-thread", Kind::Bool, "yes"),
    no_effect!("io-threads", Kind::Int { min: 1, max: 128 }, "1", immutable),
    no_effect!("io-threads-do-reads", Kind::Bool, "no", immutable),
    no_effect!("server_cpulist", Kind::Str, "", immutable),
    no_effect!("bio_cpulist", Kind::Str, "", immutable),
    no_effect!("aof_rewrite_cpulist", Kind::Str, "", immutable),
    no_effect!("bgsave_cpulist", Kind::Str, "", immutable),
    no_effect!("aof-rewrite-incremental-fsync", Kind::Bool, "yes"),
    no_effect!("rdb-save-incremental-fsync", Kind::Bool, "yes"),
    no_effect!("aof-disable-auto-gc", Kind::Bool, "no"),
    no_effect!("hll-sparse-max-bytes", Kind::Memory, "3000"),
    no_effect!("stream-node-max-bytes", Kind::Memory, "4096"),
    no_effect!("stream-node-max-entries", INT, "100"),
    no_effect!("socket-mark-id", INT, "0", immutable),
    no_effect!("sanitize-dump-payload", Kind::Enum(&["no", "yes", "clients"]), "no"),
    no_effect!("propagation-error-behavior", Kind::Enum(&["ignore", "panic", "panic-on-replicas"]), "ignore"),
    no_effect!("replica-ignore-disk-write-errors", Kind::Bool, "no"),
    no_effect!("cluster-allow-pubsubshard-when-down", Kind::Bool, "yes"),
    no_effect!("cluster-announce-hostname", Kind::Str, ""),
    no_effect!("cluster-link-sendbuf-limit", Kind::Memory, "0"),
];

/// Old names Redis 7.0 still accepts for directives above.
pub static ALIASES: &[(&str, &str)] = &[];
