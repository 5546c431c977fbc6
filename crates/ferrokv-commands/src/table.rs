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
    Blocking(BlockingFn),
    /// A connection or server command (HELLO, CLIENT, MULTI, CONFIG, INFO...),
    /// executed by the server itself, which matches it by name.
    Server,
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

#[derive(Clone, Copy)]
pub struct CommandSpec {
    /// Lower case, as COMMAND reports it.
    pub name: &'static str,
    /// Redis's arity: exact when positive, a minimum when negative (counting the name).
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub keys: KeyPositions,
    /// ACL categories with their `@`.
    pub acl: &'static [&'static str],
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
        CommandSpec { name, arity, flags, keys, acl, handler, key_finder: None, subcommands: &[] }
    }

    pub const fn with_key_finder(mut self, f: fn(&Args) -> Vec<usize>) -> Self {
        self.key_finder = Some(f);
        self
    }

    pub const fn with_subcommands(mut self, subs: &'static [CommandSpec]) -> Self {
        self.subcommands = subs;
        self
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
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
