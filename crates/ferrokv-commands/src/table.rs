//! The command table: one [`CommandSpec`] per command, as data.

use crate::ctx::Ctx;
use ferrokv_resp::Args;
use std::sync::OnceLock;

pub type DataFn = fn(&mut Ctx, &Args);

/// What a blocking command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// It wrote its reply (data was there, or it may not block: `Ctx::may_block` false).
    Served,
    /// Nothing to serve yet: it wrote no reply. The server parks the client on the
    /// command's keys and runs the same function again when one of them changes, until
    /// it is served or `timeout_ms` passes (0 = forever), then replies the timeout reply.
    Wait { timeout_ms: u64 },
}

pub type BlockingFn = fn(&mut Ctx, &Args) -> Blocked;

/// Who executes a command.
#[derive(Clone, Copy)]
pub enum Handler {
    /// A data command: runs against the keyspace through [`Ctx`].
    Data(DataFn),
    /// A data command that may wait for data (BLPOP, BZPOPMIN, ...).
    Blocking(BlockingFn, Wakes),
    /// A connection or server command (HELLO, CLIENT, MULTI, CONFIG, INFO...),
    /// executed by the server itself.
    Server(ServerCmd),
}

/// Redis's legacy key positions: first, last (negative counts from the end) and step.
/// (0, 0, 0) means no keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPositions {
    pub first: i32,
    pub last: i32,
    pub step: i32,
}

impl KeyPositions {
    pub const NONE: KeyPositions = KeyPositions { first: 0, last: 0, step: 0 };

    pub const fn new(first: i32, last: i32, step: i32) -> Self {
        KeyPositions { first, last, step }
    }
}

/// A set of names from a fixed list, as bits: command flags, ACL categories, key-spec
/// flags. Parsed from the names at compile time (an unknown name fails the build) and
/// tested on the hot path with one AND.
macro_rules! bitset {
    ($(#[$doc:meta])* $ty:ident: $($konst:ident = $name:literal),+ $(,)?) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
        pub struct $ty(pub u32);

        impl $ty {
            bitset!(@consts 0, $($konst),+);
            /// Every member's name, in the order Redis renders them.
            pub const NAMES: &'static [(&'static str, $ty)] = &[$(($name, $ty::$konst)),+];

            /// The set of `names`; a name not in the list is a compile-time error when
            /// called in a constant.
            pub const fn parse(names: &[&str]) -> $ty {
                let mut bits = 0;
                let mut i = 0;
                while i < names.len() {
                    let mut j = 0;
                    let mut found = false;
                    while j < Self::NAMES.len() {
                        if str_eq(names[i], Self::NAMES[j].0) {
                            bits |= Self::NAMES[j].1 .0;
                            found = true;
                        }
                        j += 1;
                    }
                    if !found {
                        panic!(concat!("unknown ", stringify!($ty), " name"));
                    }
                    i += 1;
                }
                $ty(bits)
            }

            #[inline]
            pub const fn contains(self, other: $ty) -> bool {
                self.0 & other.0 == other.0
            }

            pub const fn with(self, other: $ty) -> $ty {
                $ty(self.0 | other.0)
            }

            /// The members' names, in Redis's order.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::NAMES.iter().filter(move |(_, b)| self.contains(*b)).map(|(n, _)| *n)
            }

            pub fn len(self) -> usize {
                self.0.count_ones() as usize
            }

            pub fn is_empty(self) -> bool {
                self.0 == 0
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_set().entries(self.names()).finish()
            }
        }
    };
    (@consts $n:expr, $konst:ident $(, $rest:ident)*) => {
        pub const $konst: Self = Self(1 << $n);
        bitset!(@consts $n + 1 $(, $rest)*);
    };
    (@consts $n:expr) => {};
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

bitset! {
    /// Redis's command flags (`COMMAND INFO`), in the order it lists them.
    Flags:
    WRITE = "write",
    READONLY = "readonly",
    DENYOOM = "denyoom",
    MODULE = "module",
    ADMIN = "admin",
    PUBSUB = "pubsub",
    NOSCRIPT = "noscript",
    BLOCKING = "blocking",
    LOADING = "loading",
    STALE = "stale",
    SKIP_MONITOR = "skip_monitor",
    SKIP_SLOWLOG = "skip_slowlog",
    ASKING = "asking",
    FAST = "fast",
    NO_AUTH = "no_auth",
    MAY_REPLICATE = "may_replicate",
    NO_MANDATORY_KEYS = "no_mandatory_keys",
    NO_ASYNC_LOADING = "no_async_loading",
    NO_MULTI = "no_multi",
    MOVABLEKEYS = "movablekeys",
    ALLOW_BUSY = "allow_busy",
}

bitset! {
    /// ACL categories, in Redis's order (`ACL CAT`).
    AclCats:
    KEYSPACE = "@keyspace",
    READ = "@read",
    WRITE = "@write",
    SET = "@set",
    SORTEDSET = "@sortedset",
    LIST = "@list",
    HASH = "@hash",
    STRING = "@string",
    BITMAP = "@bitmap",
    HYPERLOGLOG = "@hyperloglog",
    GEO = "@geo",
    STREAM = "@stream",
    PUBSUB = "@pubsub",
    ADMIN = "@admin",
    FAST = "@fast",
    SLOW = "@slow",
    BLOCKING = "@blocking",
    DANGEROUS = "@dangerous",
    CONNECTION = "@connection",
    TRANSACTION = "@transaction",
    SCRIPTING = "@scripting",
}

bitset! {
    /// Key-spec flags (`COMMAND INFO`'s key specifications), in Redis's order.
    KeySpecFlags:
    RO = "RO",
    RW = "RW",
    OW = "OW",
    RM = "RM",
    ACCESS = "access",
    UPDATE = "update",
    INSERT = "insert",
    DELETE = "delete",
    NOT_KEY = "not_key",
    INCOMPLETE = "incomplete",
    VARIABLE_FLAGS = "variable_flags",
}

/// Where a key specification starts looking for keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginSearch {
    Index(i32),
    Keyword { keyword: &'static str, start_from: i32 },
    Unknown,
}

/// How a key specification finds its keys from where the search began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindKeys {
    /// `last_key` relative to the start (negative: from the end), `limit` dividing the
    /// rest when `last_key` is -1.
    Range {
        last_key: i32,
        key_step: i32,
        limit: i32,
    },
    /// The number of keys at `keynum_idx`, the first key at `first_key`.
    Keynum {
        keynum_idx: i32,
        first_key: i32,
        key_step: i32,
    },
    Unknown,
}

/// One of a command's key specifications (Redis 7's `keySpec`), as data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub notes: &'static str,
    pub flags: KeySpecFlags,
    pub begin: BeginSearch,
    pub find: FindKeys,
}

/// Which blocked clients a change of a key can serve, and how a blocking command is
/// run again for the key that became ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakes {
    /// BLPOP/BRPOP: served from a list, retried as `NAME key timeout`.
    ListPop,
    /// BLMPOP: served from a list, retried with only the ready key.
    ListMpop,
    /// BLMOVE/BRPOPLPUSH: served from a list; waits on the source only; writes a
    /// destination that may live on another shard.
    ListMove,
    /// BZPOPMIN/BZPOPMAX.
    ZSetPop,
    /// BZMPOP.
    ZSetMpop,
}

/// The connection, server and transaction commands, which the server runs itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerCmd {
    Ping,
    Echo,
    Hello,
    Auth,
    Quit,
    Reset,
    Select,
    Cluster,
    Asking,
    Readonly,
    Readwrite,
    Client,
    Info,
    Time,
    Config,
    Command,
    Shutdown,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
}

#[derive(Clone, Copy)]
pub struct CommandSpec {
    /// Lower case, as COMMAND reports it.
    pub name: &'static str,
    /// Redis's arity: exact when positive, a minimum when negative (counting the name).
    pub arity: i32,
    pub flags: Flags,
    /// Needs every shard's keyspace (KEYS, SCAN, DBSIZE, FLUSHALL...): ferrokv's own
    /// routing fact, not one of Redis's flags.
    pub all_shards: bool,
    pub keys: KeyPositions,
    pub acl: AclCats,
    pub handler: Handler,
    /// Key indexes when they depend on the arguments (`movablekeys`), else None.
    pub key_finder: Option<fn(&Args) -> Vec<usize>>,
    /// Subcommands (CLIENT LIST, OBJECT ENCODING...), arity counted from the parent.
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: &'static [&'static str],
        keys: KeyPositions,
        acl: &'static [&'static str],
        handler: Handler,
    ) -> Self {
        CommandSpec {
            name,
            arity,
            flags: Flags::parse(flags),
            all_shards: false,
            keys,
            acl: AclCats::parse(acl),
            handler,
            key_finder: None,
            subcommands: &[],
        }
    }

    /// Marks a command that needs every shard's keyspace.
    pub const fn over_all_shards(mut self) -> Self {
        self.all_shards = true;
        self
    }

    /// Keys found by `f` (Redis's `movablekeys`).
    pub const fn with_key_finder(mut self, f: fn(&Args) -> Vec<usize>) -> Self {
        self.key_finder = Some(f);
        self.flags = self.flags.with(Flags::MOVABLEKEYS);
        self
    }

    pub const fn with_subcommands(mut self, subs: &'static [CommandSpec]) -> Self {
        self.subcommands = subs;
        self
    }

    #[inline]
    pub fn has(&self, flags: Flags) -> bool {
        self.flags.contains(flags)
    }

    /// The parent command's name for a subcommand (`client` for `client|list`).
    pub fn parent_name(&self) -> &'static str {
        self.name.split('|').next().unwrap_or(self.name)
    }

    /// Whether `argc` arguments (counting the name) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        (a > 0 && argc == a as usize) || (a < 0 && argc >= (-a) as usize)
    }

    /// The indexes of the key arguments of this invocation.
    pub fn key_indexes(&self, args: &Args, out: &mut Vec<usize>) {
        out.clear();
        if let Some(f) = self.key_finder {
            out.extend(f(args));
            return;
        }
        let k = self.keys;
        if k.first <= 0 {
            return;
        }
        let argc = args.len() as i32;
        let last = if k.last < 0 { argc + k.last } else { k.last.min(argc - 1) };
        let mut i = k.first;
        while i <= last && i < argc {
            out.push(i as usize);
            i += k.step.max(1);
        }
    }
}

/// All commands, family by family.
pub static COMMANDS: &[&[CommandSpec]] = {
    use crate::families::*;
    &[
        server::COMMANDS,
        strings::COMMANDS,
        keys::COMMANDS,
        hashes::COMMANDS,
        lists::COMMANDS,
        sets::COMMANDS,
        zsets::COMMANDS,
        hyperloglog::COMMANDS,
        sort::COMMANDS,
    ]
};

type Index = hashbrown::HashMap<&'static str, &'static CommandSpec, foldhash::fast::FixedState>;

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| COMMANDS.iter().flat_map(|f| f.iter()).map(|c| (c.name, c)).collect())
}

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    index().get(std::str::from_utf8(lower).ok()?).copied()
}

/// Looks up a subcommand of `parent` by name, case-insensitively.
pub fn lookup_sub(parent: &'static CommandSpec, name: &[u8]) -> Option<&'static CommandSpec> {
    parent.subcommands.iter().find(|s| {
        let sub = s.name.rsplit('|').next().unwrap_or(s.name);
        sub.as_bytes().eq_ignore_ascii_case(name)
    })
}

/// Every command, for COMMAND and COMMAND COUNT.
pub fn all() -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS.iter().flat_map(|f| f.iter())
}
