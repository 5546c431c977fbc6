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
    Save,
    Bgsave,
    Lastsave,
    Bgrewriteaof,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    Replicaof,
    Role,
    Psync,
    Sync,
    Replconf,
    Wait,
    Migrate,
    Subscribe,
    Unsubscribe,
    Psubscribe,
    Punsubscribe,
    Ssubscribe,
    Sunsubscribe,
    Publish,
    Spublish,
    Pubsub,
    ScriptKill,
    FunctionKill,
    Memory,
    Debug,
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

impl CommandSpec {
    /// Its key specifications, as COMMAND INFO shows them (see `keyspecs.rs`).
    pub fn key_specs(&self) -> &'static [KeySpec] {
        type Map = hashbrown::HashMap<&'static str, &'static [KeySpec], foldhash::fast::FixedState>;
        static MAP: OnceLock<Map> = OnceLock::new();
        MAP.get_or_init(|| crate::keyspecs::KEY_SPECS.iter().copied().collect()).get(self.name).copied().unwrap_or(&[])
    }

    /// Its COMMAND DOCS map (summary, since, group, complexity, history, arguments...)
    /// as RESP3 bytes, without `subcommands` (see `docs.rs`).
    pub fn docs(&self) -> Option<&'static [u8]> {
        type Map = hashbrown::HashMap<&'static str, &'static [u8], foldhash::fast::FixedState>;
        static MAP: OnceLock<Map> = OnceLock::new();
        MAP.get_or_init(|| crate::docs::DOCS.iter().copied().collect()).get(self.name).copied()
    }

    /// Its command tips (`nondeterministic_output`, `request_policy:...`).
    pub fn tips(&self) -> &'static [&'static str] {
        type Map = hashbrown::HashMap<&'static str, &'static [&'static str], foldhash::fast::FixedState>;
        static MAP: OnceLock<Map> = OnceLock::new();
        MAP.get_or_init(|| crate::keyspecs::TIPS.iter().copied().collect()).get(self.name).copied().unwrap_or(&[])
    }
}

/// Why a command's keys cannot be found from its arguments (Redis's "invalid spec").
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidKeys;

impl CommandSpec {
    /// Whether the command has keys at all (Redis's `doesCommandHaveKeys`).
    pub fn has_keys(&self) -> bool {
        self.key_finder.is_some() || self.key_specs().iter().any(|k| !k.flags.contains(KeySpecFlags::NOT_KEY))
    }

    /// The key positions of this invocation with each key's flags, as Redis 7.0's
    /// `getKeysFromCommandWithSpecs` finds them (COMMAND GETKEYS and GETKEYSANDFLAGS):
    /// from the key specifications when they are complete and their flags fixed, else
    /// from the command's own key finder.
    pub fn keys_and_flags(&self, args: &Args) -> Result<Vec<(usize, KeySpecFlags)>, InvalidKeys> {
        let specs = self.key_specs();
        let has_keyspec = specs.iter().any(|k| !k.flags.contains(KeySpecFlags::NOT_KEY));
        let varflags = specs.iter().any(|k| k.flags.contains(KeySpecFlags::VARIABLE_FLAGS));
        if has_keyspec && !varflags {
            if let Ok(keys) = keys_from_specs(specs, args) {
                return Ok(keys);
            }
        }
        Ok(match self.name {
            "set" => {
                let get = (3..args.len()).any(|i| args.get(i).eq_ignore_ascii_case(b"get"));
                let flags = if get { "RW access update" } else { "OW update" };
                vec![(1, flags_of(flags))]
            }
            "bitfield" => vec![(1, flags_of(if bitfield_readonly(args) { "RO access" } else { "RW access update" }))],
            "sort_ro" => vec![(1, flags_of("RO access"))],
            "sort" => {
                let mut keys = vec![(1, flags_of("RO access"))];
                let mut store = None;
                let mut i = 2;
                while i < args.len() {
                    let a = args.get(i);
                    if a.eq_ignore_ascii_case(b"limit") {
                        i += 2;
                    } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
                        i += 1;
                    } else if a.eq_ignore_ascii_case(b"store") && i + 1 < args.len() {
                        store = Some(i + 1);
                    }
                    i += 1;
                }
                keys.extend(store.map(|i| (i, flags_of("OW update"))));
                keys
            }
            _ => match self.key_finder {
                Some(f) => f(args).into_iter().map(|i| (i, KeySpecFlags::default())).collect(),
                None => return Err(InvalidKeys),
            },
        })
    }
}

fn flags_of(names: &str) -> KeySpecFlags {
    let names: Vec<&str> = names.split(' ').collect();
    KeySpecFlags::parse(&names)
}

/// BITFIELD only reads when every operation is a GET (Redis's `bitfieldGetKeys`).
fn bitfield_readonly(args: &Args) -> bool {
    let mut i = 2;
    while i < args.len() {
        let rem = args.len() - i - 1;
        let a = args.get(i);
        if a.eq_ignore_ascii_case(b"get") && rem >= 2 {
            i += 3;
        } else if a.eq_ignore_ascii_case(b"overflow") && rem >= 1 {
            i += 2;
        } else {
            return false;
        }
    }
    true
}

/// Redis's `getKeysUsingKeySpecs`, without partial results.
fn keys_from_specs(specs: &[KeySpec], args: &Args) -> Result<Vec<(usize, KeySpecFlags)>, InvalidKeys> {
    let argc = args.len() as i64;
    let mut out = Vec::new();
    for spec in specs {
        if spec.flags.contains(KeySpecFlags::NOT_KEY) {
            continue;
        }
        let mut first: i64 = match spec.begin {
            BeginSearch::Index(i) => i as i64,
            BeginSearch::Keyword { keyword, start_from } => {
                let from = start_from as i64;
                let (start, end) = if from > 0 { (from, argc - 1) } else { (argc + from, 1) };
                let mut found = 0;
                let mut i = start;
                while i != end {
                    if i >= argc || i < 1 {
                        break;
                    }
                    if args.get(i as usize).eq_ignore_ascii_case(keyword.as_bytes()) {
                        found = i + 1;
                        break;
                    }
                    i = if start <= end { i + 1 } else { i - 1 };
                }
                if found == 0 {
                    continue;
                }
                found
            }
            BeginSearch::Unknown => return Err(InvalidKeys),
        };
        let (last, step) = match spec.find {
            FindKeys::Range { last_key, key_step, limit } => {
                let last = if last_key >= 0 {
                    first + last_key as i64
                } else if limit == 0 {
                    argc + last_key as i64
                } else {
                    first + ((argc - first) / limit as i64 + last_key as i64)
                };
                (last, key_step as i64)
            }
            FindKeys::Keynum { keynum_idx, first_key, key_step } => {
                let at = first + keynum_idx as i64;
                if keynum_idx as i64 >= argc || at >= argc {
                    return Err(InvalidKeys);
                }
                let n = match crate::util::parse_i64(args.get(at as usize)) {
                    Some(n) if n >= 0 => n,
                    _ => return Err(InvalidKeys),
                };
                first += first_key as i64;
                (first + n - 1, key_step as i64)
            }
            FindKeys::Unknown => return Err(InvalidKeys),
        };
        if last >= argc || last < first || first >= argc {
            return Err(InvalidKeys);
        }
        let mut i = first;
        while i <= last {
            out.push((i as usize, spec.flags));
            i += step.max(1);
        }
        if spec.flags.contains(KeySpecFlags::INCOMPLETE) {
            return Err(InvalidKeys);
        }
    }
    Ok(out)
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
        pubsub::COMMANDS,
        crate::scripting::COMMANDS,
    ]
};

/// A command's or subcommand's number: its place in the table with every command
/// followed by its subcommands, so per-command statistics are an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u16);

struct Index {
    by_name: hashbrown::HashMap<&'static str, (&'static CommandSpec, CommandId), foldhash::fast::FixedState>,
    by_id: Vec<&'static CommandSpec>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut by_name = hashbrown::HashMap::default();
        let mut by_id = Vec::new();
        for c in all() {
            by_name.insert(c.name, (c, CommandId(by_id.len() as u16)));
            by_id.push(c);
            by_id.extend(c.subcommands.iter());
        }
        Index { by_name, by_id }
    })
}

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    lookup_id(name).map(|(c, _)| c)
}

/// [`lookup`] with the command's id.
pub fn lookup_id(name: &[u8]) -> Option<(&'static CommandSpec, CommandId)> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    index().by_name.get(std::str::from_utf8(lower).ok()?).copied()
}

/// The id of `sub`, a subcommand of the command `parent` whose id is `parent_id`.
pub fn sub_id(parent: &'static CommandSpec, parent_id: CommandId, sub: &'static CommandSpec) -> CommandId {
    let at = parent.subcommands.iter().position(|s| std::ptr::eq(s, sub)).unwrap_or(0);
    CommandId(parent_id.0 + 1 + at as u16)
}

/// The command with id `id`.
pub fn by_id(id: CommandId) -> Option<&'static CommandSpec> {
    index().by_id.get(id.0 as usize).copied()
}

/// How many ids there are (commands and subcommands).
pub fn id_count() -> usize {
    index().by_id.len()
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
