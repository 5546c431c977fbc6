//! Runs commands as the server does (lookup, arity check, one [`Ctx`] per command)
//! against one [`Db`] or two, and returns the encoded replies as text.

use crate::ctx::{Ctx, ExecConfig, Keyspace, SingleDb};
use crate::table::{lookup, Handler};
use ferrokv_resp::{OwnedArgs, Proto, ReplyBuf};
use ferrokv_store::{key_slot, Db};

pub struct Harness {
    pub db: Db,
    pub now: u64,
    pub cfg: ExecConfig,
    pub proto: Proto,
    /// Changes counted by the last command.
    pub dirty: u64,
}

/// Executes one command against `keys`; returns the reply and the dirty count.
fn exec(keys: &mut dyn Keyspace, now: u64, cfg: &ExecConfig, proto: Proto, args: &[&[u8]]) -> (String, u64) {
    let owned = OwnedArgs::from_slices(args);
    let args = owned.args();
    let spec = lookup(args.get(0)).expect("known command");
    let mut out = ReplyBuf::new(proto);
    if !spec.arity_ok(args.len()) {
        out.error(&crate::util::arity_error(spec.name));
        return (String::from_utf8_lossy(&out.buf).into_owned(), 0);
    }
    let Handler::Data(f) = spec.handler else { panic!("not a data command") };
    let mut ctx = Ctx::new(keys, now, cfg, &mut out);
    f(&mut ctx, &args);
    let dirty = ctx.dirty;
    (String::from_utf8_lossy(&out.buf).into_owned(), dirty)
}

impl Harness {
    pub fn new() -> Self {
        Harness {
            db: Db::with_seed(42),
            now: 1_700_000_000_000,
            cfg: ExecConfig::default(),
            proto: Proto::Resp2,
            dirty: 0,
        }
    }

    pub fn resp3(&mut self) -> &mut Self {
        self.proto = Proto::Resp3;
        self
    }

    /// Runs a command written as space-separated words (no quoting).
    pub fn run(&mut self, line: &str) -> String {
        let words: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.run_args(&words)
    }

    pub fn run_args(&mut self, args: &[&[u8]]) -> String {
        let (reply, dirty) = exec(&mut SingleDb(&mut self.db), self.now, &self.cfg, self.proto, args);
        self.dirty = dirty;
        reply
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
        for db in self.0.iter_mut() {
            f(db)
        }
    }
    fn db_for_slot(&mut self, slot: u16) -> &mut Db {
        &mut self.0[half(slot)]
    }
}

impl TwoDbs {
    pub fn new() -> Self {
        TwoDbs { dbs: [Db::with_seed(1), Db::with_seed(2)], now: 1_700_000_000_000, cfg: ExecConfig::default() }
    }

    pub fn run(&mut self, args: &[&str]) -> String {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        exec(&mut Split(&mut self.dbs), self.now, &self.cfg, Proto::Resp2, &args).0
    }

    /// Two key names whose slots belong to different databases.
    pub fn keys_in_different_dbs(&self) -> (String, String) {
        let a = "a".to_string();
        let b = (0..).map(|i| format!("b{i}")).find(|k| half(key_slot(k.as_bytes())) != half(key_slot(b"a"))).unwrap();
        (a, b)
    }
}
