//! Runs commands the way the server does (lookup in the command table, arity check,
//! one [`Ctx`] per command) against one [`Db`] ([`Harness`]) or a keyspace split over
//! two ([`TwoDbs`]), and returns the encoded replies. Every family's tests use it.

use crate::ctx::{ExecConfig, Keyspace, SingleDb};
use crate::exec::{execute, Env};
use crate::table::{lookup, Blocked, Handler};
use ferrokv_resp::{OwnedArgs, Proto, ReplyBuf};
use ferrokv_store::effects::Argv;
use ferrokv_store::{key_slot, Db, Value};

/// The clock every harness starts at (Unix milliseconds).
const NOW: u64 = 1_700_000_000_000;

/// What one command left behind besides its reply.
struct Outcome {
    reply: Vec<u8>,
    dirty: u64,
    blocked: Option<Blocked>,
    /// What it propagated (when the keyspace's effects stream is on).
    records: Vec<Argv>,
    /// The keys it modified.
    modified: Vec<Vec<u8>>,
}

/// Executes one command against `keys` through the execution function, data and
/// blocking commands alike.
fn exec(keys: &mut dyn Keyspace, now: u64, cfg: &ExecConfig, proto: Proto, may_block: bool, args: &[&[u8]]) -> Outcome {
    let owned = OwnedArgs::from_slices(args);
    let args = owned.args();
    let spec = lookup(args.get(0)).expect("known command");
    let mut out = ReplyBuf::new(proto);
    if !spec.arity_ok(args.len()) {
        out.error(&crate::util::arity_error(spec.name));
        return Outcome { reply: out.buf, dirty: 0, blocked: None, records: Vec::new(), modified: Vec::new() };
    }
    assert!(!matches!(spec.handler, Handler::Server(_)), "not a data command");
    let mut records = ferrokv_store::effects::Records::default();
    let env = Env { cfg, now_ms: now, may_block, track_keys: true, notify: 0, caller: crate::exec::Caller::NONE };
    let o = execute(keys, spec, &args, env, &mut out, &mut records);
    let records = records.decode();
    let blocked = matches!(spec.handler, Handler::Blocking(..)).then_some(o.blocked);
    Outcome { reply: out.buf, dirty: o.dirty, blocked, records, modified: o.modified }
}

/// One client against one database.
pub struct Harness {
    pub db: Db,
    pub now: u64,
    pub cfg: ExecConfig,
    pub proto: Proto,
    /// False to run as inside MULTI.
    pub may_block: bool,
    /// Changes counted by the last command.
    pub dirty: u64,
    /// What the last blocking command returned.
    pub blocked: Option<Blocked>,
    /// What the last command propagated, each record as space-separated words.
    pub propagated: Vec<String>,
    /// The keys the last command modified.
    pub modified: Vec<String>,
}

impl Harness {
    /// A RESP2 client on an empty database seeded with 7.
    pub fn new() -> Self {
        Harness::with_seed(7)
    }

    /// A RESP2 client on an empty database whose random choices follow `seed`.
    pub fn with_seed(seed: u64) -> Self {
        let mut db = Db::with_seed(seed);
        db.set_databases(ExecConfig::default().databases);
        // Every family's tests run with the effects stream on, as a replicating node.
        db.enable_effects();
        Harness {
            db,
            propagated: Vec::new(),
            modified: Vec::new(),
            now: NOW,
            cfg: ExecConfig::default(),
            proto: Proto::Resp2,
            may_block: true,
            dirty: 0,
            blocked: None,
        }
    }

    /// A RESP3 client on an empty database seeded with 7.
    pub fn resp3() -> Self {
        Harness { proto: Proto::Resp3, ..Harness::new() }
    }

    /// Runs one command given as separate arguments; returns the reply bytes.
    pub fn run(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let done = exec(&mut SingleDb(&mut self.db), self.now, &self.cfg, self.proto, self.may_block, args);
        self.dirty = done.dirty;
        self.blocked = done.blocked;
        self.propagated = done.records.iter().map(|r| String::from_utf8_lossy(&r.join(&b' ')).into_owned()).collect();
        self.modified = done.modified.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
        done.reply
    }

    /// Runs one command given as separate arguments; returns the reply as text.
    pub fn cmd_args(&mut self, args: &[&[u8]]) -> String {
        String::from_utf8_lossy(&self.run(args)).into_owned()
    }

    /// Runs a command written as space-separated words (no quoting); returns the reply
    /// as text.
    pub fn cmd(&mut self, line: &str) -> String {
        let words: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.cmd_args(&words)
    }

    /// The OBJECT ENCODING of a key ("none" when missing).
    pub fn encoding(&mut self, key: &str) -> &'static str {
        self.db.get(key.as_bytes(), self.now).map_or("none", |e| e.value.encoding())
    }

    /// The absolute expiry of a key (0 = none, None = missing).
    pub fn expire_at(&mut self, key: &str) -> Option<u64> {
        self.db.get(key.as_bytes(), self.now).map(|e| e.expire_at)
    }

    /// The change version WATCH sees for `key` (watch it first).
    pub fn version(&self, key: &str) -> u64 {
        self.db.watch_version(key.as_bytes())
    }

    /// The elements of the list at `key`, space-separated ("" when missing), after
    /// checking the list's invariants.
    pub fn list(&mut self, key: &str) -> String {
        match self.db.get(key.as_bytes(), self.now) {
            Some(e) => match &e.value {
                Value::List(l) => {
                    l.check_invariants();
                    l.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect::<Vec<_>>().join(" ")
                }
                other => panic!("{key} holds a {}", other.type_name()),
            },
            None => String::new(),
        }
    }

    pub fn exists(&mut self, key: &str) -> bool {
        self.db.get(key.as_bytes(), self.now).is_some()
    }
}

/// A keyspace split over two databases by slot, as two shards would hold it.
pub struct TwoDbs {
    pub dbs: [Db; 2],
    pub now: u64,
    pub cfg: ExecConfig,
}

/// Which of the two databases holds `slot`.
fn half(slot: u16) -> usize {
    (slot >= 8192) as usize
}

struct Split<'a>(&'a mut [Db; 2]);

impl Keyspace for Split<'_> {
    fn db(&mut self, key: &[u8]) -> &mut Db {
        &mut self.0[half(key_slot(key))]
    }
    fn each_db(&mut self, f: &mut dyn FnMut(&mut Db)) {
        self.0.iter_mut().for_each(f)
    }
    fn db_for_slot(&mut self, slot: u16) -> &mut Db {
        &mut self.0[half(slot)]
    }
    fn log_unit(&mut self, _records: ferrokv_store::effects::Records) -> Option<Vec<u8>> {
        None
    }
}

impl TwoDbs {
    pub fn new() -> Self {
        let cfg = ExecConfig::default();
        let mut dbs = [Db::with_seed(1), Db::with_seed(2)];
        dbs.iter_mut().for_each(|d| d.set_databases(cfg.databases));
        TwoDbs { dbs, now: NOW, cfg }
    }

    /// Runs one RESP2 command given as separate arguments; returns the reply as text.
    pub fn run(&mut self, args: &[&str]) -> String {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let done = exec(&mut Split(&mut self.dbs), self.now, &self.cfg, Proto::Resp2, true, &args);
        String::from_utf8_lossy(&done.reply).into_owned()
    }

    /// Two key names whose slots belong to different databases.
    pub fn keys_in_different_dbs(&self) -> (String, String) {
        let b = (0..).map(|i| format!("b{i}")).find(|k| half(key_slot(k.as_bytes())) != half(key_slot(b"a")));
        ("a".to_string(), b.expect("some key lands in the other half"))
    }
}
