//! What a data command sees while it runs.

use ferrokv_resp::ReplyBuf;
use ferrokv_store::effects::Argv;
use ferrokv_store::Db;

/// Settings that change how commands behave (CONFIG SET can change them). Names follow
/// the Redis config options they come from.
#[derive(Clone, Debug)]
pub struct ExecConfig {
    /// `proto-max-bulk-len`: also the largest string SETRANGE/APPEND/SETBIT may build.
    pub proto_max_bulk_len: u64,
    pub hash_max_listpack_entries: u64,
    pub hash_max_listpack_value: u64,
    pub set_max_intset_entries: u64,
    pub set_max_listpack_entries: u64,
    pub set_max_listpack_value: u64,
    pub zset_max_listpack_entries: u64,
    pub zset_max_listpack_value: u64,
    /// Positive: entries per quicklist node; negative: node size class (-2 = 8 KiB).
    pub list_max_listpack_size: i64,
    pub list_compress_depth: u64,
    /// `cluster-enabled`: some commands refuse options there (SORT BY/GET).
    pub cluster_mode: bool,
    /// `rdbcompression`: DUMP payloads (and snapshots) LZF-compress long strings.
    pub rdb_compression: bool,
    /// `databases`: the valid database indexes (COPY ... DB, MOVE, SWAPDB).
    pub databases: usize,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            proto_max_bulk_len: 512 * 1024 * 1024,
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            cluster_mode: false,
            rdb_compression: true,
            databases: 16,
        }
    }
}

/// Routes a key to the keyspace that holds it. One shard executing a single-shard
/// command offers just its own [`Db`]; a cross-shard command sees several, locked.
pub trait Keyspace {
    /// The database that owns `key`.
    fn db(&mut self, key: &[u8]) -> &mut Db;
    /// Every database this command may touch (KEYS, DBSIZE, FLUSHALL, SCAN visit all).
    fn each_db(&mut self, f: &mut dyn FnMut(&mut Db));
    /// The database that owns hash slot `slot` (SCAN walks slot by slot).
    fn db_for_slot(&mut self, slot: u16) -> &mut Db;
    /// Whether the effects stream is on (then commands build propagation records).
    fn propagating(&mut self) -> bool {
        let mut on = false;
        self.each_db(&mut |db| on |= db.effects_on());
        on
    }
    /// Moves the keys deleted by expiry since the last call into `out` as DEL records.
    fn take_expired(&mut self, out: &mut ferrokv_store::effects::Records) {
        self.each_db(&mut |db| {
            if let Some(e) = db.effects() {
                e.take_expired(out)
            }
        });
    }
    /// Selects database `db` in every shard this keyspace holds (and any it takes
    /// later): the keys of the commands that follow are there.
    fn select(&mut self, db: usize) {
        self.each_db(&mut |d| d.select(db));
    }
    /// The selected database.
    fn selected(&mut self) -> usize {
        let mut n = 0;
        self.each_db(&mut |d| n = d.selected());
        n
    }
    /// Whether this keyspace holds `key`'s shard (a script may only reach the shards
    /// whose locks it holds: its declared keys', or all).
    fn holds(&mut self, _key: &[u8]) -> bool {
        true
    }
    /// Whether this keyspace holds every shard of the node.
    fn holds_all(&mut self) -> bool {
        true
    }
    /// Appends the records of one execution unit to the effects stream (see
    /// `ferrokv_store::effects`): a keyspace spanning several shards tags it with a
    /// node-wide id and marks every shard it holds.
    /// May hand back an emptied buffer for the next unit's records.
    fn log_unit(&mut self, records: ferrokv_store::effects::Records) -> Option<Vec<u8>>;
}

/// The keyspace of one shard, for commands whose keys all live there.
pub struct SingleDb<'a>(pub &'a mut Db);

impl Keyspace for SingleDb<'_> {
    #[inline]
    fn db(&mut self, _key: &[u8]) -> &mut Db {
        self.0
    }
    fn each_db(&mut self, f: &mut dyn FnMut(&mut Db)) {
        f(self.0)
    }
    fn db_for_slot(&mut self, _slot: u16) -> &mut Db {
        self.0
    }
    #[inline]
    fn propagating(&mut self) -> bool {
        self.0.effects_on()
    }
    fn log_unit(&mut self, records: ferrokv_store::effects::Records) -> Option<Vec<u8>> {
        let db = self.0.selected();
        match (self.0.effects(), records.is_empty()) {
            (Some(log), false) => log.push_unit(ferrokv_store::effects::Unit::of(records, None).in_db(db)),
            _ => Some(records.resp),
        }
    }
}

/// A propagation record from its words.
pub fn argv(words: &[&[u8]]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.to_vec()).collect()
}

/// What a command propagates, as Redis's `call()` decides it: the command's own record
/// (as called, or as rewritten by `rewriteClientCommandVector`) if it changed something
/// or forced it (`forceCommandPropagation`) and did not prevent it
/// (`preventCommandPropagation`), after the records it added itself (`alsoPropagate`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Propagation {
    pub rewritten: Option<Argv>,
    pub forced: bool,
    pub prevented: bool,
    pub also: Vec<Argv>,
}

pub struct Ctx<'a> {
    pub keys: &'a mut dyn Keyspace,
    /// Unix time in milliseconds, fixed for the whole command (and a whole EXEC), as
    /// Redis caches its clock per command so expiry decisions stay consistent.
    pub now_ms: u64,
    pub cfg: &'a ExecConfig,
    pub out: &'a mut ReplyBuf,
    /// Number of keys this command changed (INFO's `rdb_changes_since_last_save`).
    pub dirty: u64,
    /// False inside MULTI/EXEC: blocking commands then answer at once as if timed out.
    pub may_block: bool,
    /// The effects stream is on: build propagation records (else every propagation
    /// call below is a no-op that builds nothing).
    pub propagating: bool,
    pub propagation: Propagation,
    /// The keys this command modified, when the caller asked for them (keyspace
    /// notifications and client tracking will): `None` costs nothing.
    pub modified: Option<Vec<Vec<u8>>>,
    /// Commands a script ran through `redis.call`, for the node's statistics.
    pub nested: Vec<crate::scripting::call::NestedCall>,
    /// The script's error reply is the error of a command it ran, counted in the
    /// error statistics already (Redis's `ignore_error_stats_update`).
    pub error_counted: bool,
    /// `notify-keyspace-events` classes in force, and the events of the commands a
    /// script ran (published with the script's own, see `crate::notify`).
    pub notify: u16,
    pub events: Vec<crate::notify::KeyEvent>,
    /// The client running the command (see [`crate::exec::Caller`]).
    pub caller: crate::exec::Caller,
    /// A script's `redis.call` ran a read-only command: a tracking caller remembers the
    /// script's declared keys (Redis 7.0's rule for scripts).
    pub script_read: bool,
    /// MOVE, or COPY to another database, wrote a key there (its events name it).
    pub moved_to: Option<usize>,
}

impl<'a> Ctx<'a> {
    pub fn new(keys: &'a mut dyn Keyspace, now_ms: u64, cfg: &'a ExecConfig, out: &'a mut ReplyBuf) -> Self {
        Ctx {
            keys,
            now_ms,
            cfg,
            out,
            dirty: 0,
            may_block: true,
            propagating: false,
            propagation: Propagation::default(),
            modified: None,
            nested: Vec::new(),
            error_counted: false,
            notify: 0,
            events: Vec::new(),
            caller: crate::exec::Caller::NONE,
            script_read: false,
            moved_to: None,
        }
    }

    /// Propagates `argv()` instead of the command, if it changes something (Redis's
    /// `rewriteClientCommandVector`): `SET k v PXAT <ms>` for `SET k v EX 10`, `LPOP k`
    /// for a served `BLPOP`.
    #[inline]
    pub fn rewrite(&mut self, argv: impl FnOnce() -> Vec<Vec<u8>>) {
        if self.propagating {
            self.propagation.rewritten = Some(argv());
        }
    }

    /// Adds a record and no longer propagates the command itself (Redis's
    /// `alsoPropagate` followed by `preventCommandPropagation`): SPOP with a count is
    /// one `SREM` per member.
    #[inline]
    pub fn also_propagate(&mut self, argv: impl FnOnce() -> Vec<Vec<u8>>) {
        if self.propagating {
            self.propagation.also.push(argv());
            self.propagation.prevented = true;
        }
    }

    /// Propagates the command even if it changed nothing (Redis's
    /// `forceCommandPropagation`).
    pub fn force_propagation(&mut self) {
        self.propagation.forced = true;
    }

    /// The database of `key`. To write a reply while holding a value, borrow the
    /// fields apart instead: `ctx.keys.db(key)` and `ctx.out`.
    #[inline]
    pub fn db(&mut self, key: &[u8]) -> &mut Db {
        self.keys.db(key)
    }

    /// Records that `key` changed: invalidates WATCHes on it and counts a change.
    /// Every command that modifies a key calls this once per key it changed, as
    /// Redis calls `signalModifiedKey`.
    pub fn touch(&mut self, key: &[u8]) {
        self.mark_modified(key);
        self.dirty += 1;
    }

    /// Replies an error (the command failed).
    pub fn fail(&mut self, e: impl Into<crate::error::CommandError>) {
        e.into().write(self.out);
    }

    /// Records that `key` changed without counting a change (Redis's
    /// `signalModifiedKey` alone): WATCH, blocked clients, and the keys reported in
    /// the command's outcome.
    pub fn mark_modified(&mut self, key: &[u8]) {
        self.keys.db(key).touch(key);
        if let Some(m) = self.modified.as_mut() {
            if !m.iter().any(|k| k == key) {
                m.push(key.to_vec());
            }
        }
    }
}
