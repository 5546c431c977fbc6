//! One shard's keyspace: a hash table per hash slot, so that counting and walking the
//! keys of one slot (COUNTKEYSINSLOT, GETKEYSINSLOT, migration, SCAN) touches only it.
//!
//! # Expiry
//! An entry carries its absolute expiry time (`expire_at`, unix ms, 0 = none). Expired
//! entries are deleted lazily when a lookup meets them, and by [`Db::active_expire`],
//! a time-bounded sweep that resumes where the last one stopped. There is no separate
//! table of expiring keys (Redis's `expires` dict, 24+ bytes per volatile key);
//! instead every slot counts its keys with a TTL, so the sweep skips slots without
//! any. Prefer [`Db::set`], [`Db::set_expire`] and [`Db::persist`] to change
//! `expire_at`; a change made through the `&mut Entry` that [`Db::get`] lends is
//! noticed at the Db's next call (the Db remembers which entry it lent), so the counts
//! stay right either way.
//!
//! # Access tracking
//! Each key keeps 32 bits of access history, as Redis keeps 24 in `robj.lru`: the LRU
//! clock (unix seconds, 24 bits, wrapping every 194 days) of its last access for
//! OBJECT IDLETIME, and an 8-bit logarithmic LFU counter for OBJECT FREQ. Redis keeps
//! one or the other depending on `maxmemory-policy`; both here, so switching the policy
//! needs no warm-up. Lookups that Redis makes with `LOOKUP_NOTOUCH` (TYPE, TTL,
//! EXISTS, OBJECT, SCAN's TYPE filter) use [`Db::peek`], which leaves them alone.
//!
//! # WATCH
//! Every deletion the Db makes on its own (lazy and active expiry, [`Db::clear`])
//! bumps the key's watch version, as Redis calls `signalModifiedKey` there. Changes
//! that commands make are signalled by the command through [`Db::touch`].

mod arena;
pub mod capture;
mod compact;
mod evict;
mod handoff;
mod snapshot;
pub use compact::{Compacted, RecordMemory};
pub use evict::EvictBy;
pub use handoff::SlotHandoff;
pub use snapshot::SnapshotStart;

use crate::glob::{glob_match, pattern_slot};
use crate::slot::{key_slot, SLOTS};
use crate::value::Value;
// The fast variant probes long chains on keys like `key:000000012345` (measured:
// 28% of CPU in lookups); the quality variant adds the final mixing step that fixes it.
use crate::keybytes::KeyBytes;
use crate::keytable::{prefetch, prefetch_line, KeyTable};
use arena::{Arena, KeySrc, Rec};
use foldhash::quality::FixedState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry time in unix milliseconds; 0 = no expiry.
    pub expire_at: u64,
}

impl Entry {
    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }
}

/// What a key's value object remembers besides the value: the LRU clock of its last
/// access and its LFU counter (Redis's 24-bit `robj.lru`), and whether the value is a
/// private copy of an integer that Redis would otherwise share (OBJECT REFCOUNT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// LRU clock in the high 24 bits, LFU counter in the low 8.
    bits: u32,
    /// A COPY of a small integer: Redis duplicates the shared object, refcount 1.
    private_int: bool,
    /// The snapshot epoch this entry was last saved for (see `db/snapshot.rs`); with
    /// the bits, the 6 bytes of a record's header past its flags and key length.
    snap: u16,
}

/// Redis's `LRU_CLOCK_MAX`: the LRU clock is unix seconds modulo 2^24.
const LRU_CLOCK_MAX: u32 = (1 << 24) - 1;
/// The LFU counter of a new key (`LFU_INIT_VAL`), so new keys are not evicted at once.
const LFU_INIT_VAL: u8 = 5;

impl Access {
    /// A new value object's history.
    fn new(clock: u32, counter: u8) -> Self {
        Access { bits: (clock << 8) | counter as u32, private_int: false, snap: 0 }
    }

    /// The LRU clock (unix seconds mod 2^24) of the last access.
    pub fn clock(self) -> u32 {
        self.bits >> 8
    }

    /// The LFU counter as last stored, before decay.
    pub fn counter(self) -> u8 {
        self.bits as u8
    }

    /// Whether the value is an integer copied by COPY, which Redis does not share.
    pub fn is_private_int(self) -> bool {
        self.private_int
    }

    /// The same object accessed at `clock` with LFU counter `counter`.
    fn stamped(self, clock: u32, counter: u8) -> Self {
        Access { bits: (clock << 8) | counter as u32, ..self }
    }

    /// Seconds since the last access, as Redis's `estimateObjectIdleTime` computes it
    /// (in seconds rather than milliseconds), wrap included.
    pub fn idle_seconds(self, clock: u32) -> u64 {
        let last = self.clock();
        if clock >= last {
            (clock - last) as u64
        } else {
            (clock + (LRU_CLOCK_MAX - last)) as u64
        }
    }

    /// The counter after decay: one step per `decay_time` minutes since the last
    /// access (Redis's `LFUDecrAndReturn`).
    pub fn decayed_counter(self, clock: u32, decay_time: u32) -> u8 {
        if decay_time == 0 {
            return self.counter();
        }
        let (now_min, last_min) = (clock / 60, self.clock() / 60);
        let elapsed = if now_min >= last_min { now_min - last_min } else { LRU_CLOCK_MAX / 60 - last_min + now_min };
        let periods = elapsed / decay_time;
        self.counter().saturating_sub(periods.min(255) as u8)
    }
}

#[derive(Default)]
struct Slot {
    table: KeyTable,
    /// Keys in this slot with an expiry time.
    expiring: u32,
    /// The slot's number (where [`SlotTables`] points at it).
    slot: u16,
}

/// The per-slot headers of one database, made when a slot first gets a key: a node
/// that owns a few slots (or a shard holding a few of its node's) pays a 2-byte
/// index per slot and a 32-byte header per slot with keys, not 16384 headers. Reading
/// a slot never makes one ([`Index`] answers an empty header for a slot never used);
/// writing ([`IndexMut`]) does. A slot emptied whole (lost to another node) gives its
/// header back ([`SlotTables::take`]).
struct SlotTables {
    /// Slot -> its header's place in `tables`; 0 = the shared empty header.
    at: Box<[u16]>,
    /// `tables[0]` is the empty header of every slot never used: never written.
    tables: Vec<Slot>,
}

impl SlotTables {
    fn new() -> Self {
        SlotTables { at: vec![0; SLOTS].into_boxed_slice(), tables: vec![Slot::default()] }
    }

    #[cold]
    fn make(&mut self, slot: usize) -> &mut Slot {
        self.at[slot] = self.tables.len() as u16;
        if self.tables.len() == self.tables.capacity() {
            // Doubling, but never past every slot and the empty header: 16385 headers
            // must not hold room for 32768.
            let room = self.tables.capacity().max(4).min(SLOTS + 1 - self.tables.len());
            self.tables.reserve_exact(room);
        }
        self.tables.push(Slot { slot: slot as u16, ..Slot::default() });
        self.tables.last_mut().expect("just pushed")
    }

    /// Takes a slot's header whole (its keys go), giving its place back.
    fn take(&mut self, slot: usize) -> Slot {
        let i = self.at[slot] as usize;
        if i == 0 {
            return Slot::default();
        }
        self.at[slot] = 0;
        let taken = self.tables.swap_remove(i);
        if let Some(moved) = self.tables.get(i) {
            self.at[moved.slot as usize] = i as u16;
        }
        taken
    }

    /// The headers of the slots ever used (and the empty one).
    fn used(&self) -> &[Slot] {
        &self.tables
    }

    /// Every slot's header, in slot order.
    fn iter(&self) -> impl Iterator<Item = &Slot> + '_ {
        (0..SLOTS).map(|s| &self[s])
    }
}

impl std::ops::Index<usize> for SlotTables {
    type Output = Slot;
    #[inline(always)]
    fn index(&self, slot: usize) -> &Slot {
        &self.tables[self.at[slot] as usize]
    }
}

impl std::ops::IndexMut<usize> for SlotTables {
    #[inline(always)]
    fn index_mut(&mut self, slot: usize) -> &mut Slot {
        let i = self.at[slot] as usize;
        if i == 0 {
            return self.make(slot);
        }
        &mut self.tables[i]
    }
}

/// Slots per group in the per-group key counts that pick random keys.
const GROUP: usize = 128;
const GROUPS: usize = SLOTS / GROUP;

/// Keys examined per step of the active expiry cycle (Redis's
/// `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`), and buckets visited at most per step.
const EXPIRE_SAMPLE: usize = 20;
const EXPIRE_MAX_BUCKETS: usize = EXPIRE_SAMPLE * 20;
/// The cycle goes on while more than this percentage of the examined keys had
/// expired (`ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE`).
const EXPIRE_ACCEPTABLE_STALE: usize = 10;

/// One database's keys (Redis's `redisDb` dictionaries): what SWAPDB exchanges.
struct Space {
    slots: SlotTables,
    arena: Arena,
    /// Keys per group of [`GROUP`] consecutive slots.
    groups: Box<[usize]>,
    len: usize,
    /// Keys with an expiry time.
    expiring: usize,
    /// Where the next active expiry step starts: a slot and a bucket in its table.
    expire_cursor: (usize, usize),
    /// INFO keyspace's `avg_ttl` (ms): Redis's running estimate over the TTLs the
    /// active expiry cycle samples (each step's mean weighs 2%).
    avg_ttl: u64,
    /// A point-in-time snapshot in progress (see [`snapshot`]): every change to a
    /// slot it has not saved yet saves that slot first.
    snapshot: Option<Box<snapshot::Snapshot>>,
}

impl Space {
    fn new(slack: &Arc<AtomicU64>) -> Self {
        Space {
            slots: SlotTables::new(),
            arena: Arena::with_slack(slack.clone()),
            groups: vec![0; GROUPS].into_boxed_slice(),
            len: 0,
            expiring: 0,
            expire_cursor: (0, 0),
            avg_ttl: 0,
            snapshot: None,
        }
    }

    /// Frees every record and chunk of the arena.
    fn free_records(&mut self) {
        let Space { slots, arena, .. } = self;
        arena.clear(slots.used().iter().flat_map(|s| s.table.iter()));
    }
}

impl Drop for Space {
    fn drop(&mut self) {
        // The arena's records own their values and long keys; the tables know which
        // records are live.
        self.free_records();
    }
}

/// What clients wait for in one database: it stays with the database's number when
/// SWAPDB exchanges the keys (clients stay in the database they selected, as Redis's
/// `blocking_keys`/`watched_keys`).
struct Waits {
    /// WATCHed keys and how often each changed since it was first watched.
    watched: hashbrown::HashMap<Box<[u8]>, Watched, FixedState>,
    /// Keys that blocked clients wait on, with how many wait.
    blocked: hashbrown::HashMap<Box<[u8]>, u32, FixedState>,
}

impl Waits {
    fn new(seed: u64) -> Self {
        Waits {
            watched: hashbrown::HashMap::with_hasher(FixedState::with_seed(seed)),
            blocked: hashbrown::HashMap::with_hasher(FixedState::with_seed(seed)),
        }
    }
}

/// One shard's keyspace: the keys of its slots in every database.
///
/// # Databases
/// The selected database's keys (`sp`) and waits (`w`) are fields of the Db itself, so
/// a lookup pays no indirection for having several: [`Db::select`] swaps another
/// database's in (a few hundred bytes moved, only when the index changes), and every
/// method works on the selected one. A database never selected has no tables at all
/// (its 16384 slot headers, ~0.5 MB, are made on first use). Whoever runs a command
/// selects the client's database first; the server's keyspace guard selects 0 again
/// when it unlocks, so code that knows of no database sees database 0.
pub struct Db {
    sp: Space,
    /// Bytes of record chunks no key uses, over all databases (see `db/arena.rs`).
    slack: Arc<AtomicU64>,
    w: Waits,
    /// The index of the selected database.
    cur: usize,
    /// The other databases, by index (the selected one's place holds `None`; so does
    /// a database never used).
    parked: Vec<Option<Space>>,
    parked_w: Vec<Waits>,
    hasher: FixedState,
    /// Blocked-on keys changed since the server last looked (Redis's ready_keys), with
    /// their database.
    ready: Vec<(usize, Box<[u8]>)>,
    /// Redis's LRU clock: unix seconds mod 2^24, from the last time the Db saw.
    lru_clock: u32,
    rng: u64,
    seed: u64,
    /// The entry [`Db::get`] last lent out, with its expiry time then.
    lent: Option<Lent>,
    /// A small record decoded for a lookup ([`Db::read`], [`Db::peek`]) or lent out
    /// by [`Db::get`] (then written back by [`Db::settle`]); see `db/arena.rs`.
    scratch: Entry,
    /// Keys deleted because they expired (INFO's `expired_keys`).
    expired_keys: u64,
    /// Those keys, kept for keyspace notifications (`expired` events) while on.
    expired_notes: Option<Vec<Vec<u8>>>,
    /// `lfu-log-factor`: how many accesses it takes to raise the LFU counter.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time`: minutes per decrement of an idle key's LFU counter.
    pub lfu_decay_time: u32,
    /// Whether `maxmemory-policy` is an LFU one: OBJECT FREQ answers only then,
    /// OBJECT IDLETIME only otherwise.
    pub lfu_policy: bool,
    /// Whether Redis would share the integers 0..9999 between keys (unless maxmemory
    /// is set with an LRU or LFU policy): decides OBJECT REFCOUNT.
    pub shared_integers: bool,
    /// This keyspace's effects stream, once a consumer turned it on.
    effects: Option<Box<crate::effects::EffectLog>>,
    /// How keys whose time is past are treated (a master, a replica...).
    pub expiry: Expiry,
    /// The command running only reads (its table entry says `readonly`): every lookup
    /// it makes, [`Db::get`] included, is a read. Set around each command by the
    /// execution function.
    pub reads_only: bool,
    /// The epoch of the last snapshot begun (entries remember the one they were saved
    /// for).
    snap_epoch: u16,
    /// Slots whose changes are being recorded for a whole-slot migration (see
    /// [`capture`]). Cluster mode only, so database 0 only.
    capture: Option<Box<capture::Capture>>,
    /// Which tracking clients read which keys here, and what changes owe them (see
    /// [`crate::tracking`]).
    pub tracking: crate::tracking::Tracking,
    /// Slots whose keys the keyspace-wide commands leave out (see [`Db::slot_hidden`]).
    hidden: Option<std::sync::Arc<crate::slot::SlotSet>>,
}

/// How a keyspace treats keys whose expiry time is past, as Redis's `expireIfNeeded`
/// does on a master, on a replica serving its clients, and for a replica's master.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expiry {
    /// A master: an expired key is deleted when a lookup finds it (and by the active
    /// cycle), and the deletion is propagated.
    #[default]
    Delete,
    /// A replica serving its clients: reads ([`Db::read`], [`Db::peek`]...) do not see an
    /// expired key but leave it in place for the master's DEL; a write lookup
    /// ([`Db::get`]) deletes it, as Redis 7.0 lets a writable replica do. No active cycle.
    HideOnRead,
    /// Applying the master's stream: a key never expires by itself (the master sends DEL).
    Never,
}

/// An entry lent out mutably: its place and its expiry time when lent. No table
/// changes until the next `&mut self` call, which settles it first, so the place
/// still holds that entry then.
#[derive(Clone, Copy, Debug)]
struct Lent {
    slot: usize,
    idx: usize,
    expire_at: u64,
    /// The integer when the entry was a private copy of one: a new value is a new
    /// object, shared again.
    private_int: Option<i64>,
    /// The entry lent is the scratch copy of a small record, to be written back.
    small: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Watched {
    watchers: u32,
    version: u64,
}

impl Default for Db {
    fn default() -> Self {
        Self::new()
    }
}

impl Db {
    /// Bytes of record chunks no key uses (free records, the unused ends of chunks
    /// being filled), over all databases, readable from any thread: memory the
    /// keyspace reuses for its next records, which `maxmemory` leaves out as Redis's
    /// limit leaves out what its allocator holds free.
    pub fn record_slack(&self) -> Arc<AtomicU64> {
        self.slack.clone()
    }

    /// The same, now.
    pub fn record_slack_bytes(&self) -> u64 {
        self.slack.load(Ordering::Relaxed)
    }

    /// An empty Db with a random hash seed.
    pub fn new() -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        Self::with_seed(seed)
    }

    /// An empty Db whose hashing and random choices follow `seed` (for tests and
    /// simulations).
    pub fn with_seed(seed: u64) -> Self {
        let slack = Arc::default();
        Db {
            sp: Space::new(&slack),
            slack,
            w: Waits::new(seed),
            cur: 0,
            parked: vec![None],
            parked_w: vec![Waits::new(seed)],
            hasher: FixedState::with_seed(seed),
            ready: Vec::new(),
            lru_clock: 0,
            rng: seed | 1,
            seed,
            lent: None,
            scratch: Entry { value: Value::Int(0), expire_at: 0 },
            expired_keys: 0,
            expired_notes: None,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            lfu_policy: false,
            shared_integers: true,
            effects: None,
            expiry: Expiry::Delete,
            reads_only: false,
            snap_epoch: 0,
            capture: None,
            tracking: Default::default(),
            hidden: None,
        }
    }

    /// How many databases this keyspace has (`databases`; 1 until set).
    pub fn databases(&self) -> usize {
        self.parked.len()
    }

    /// Sets the number of databases (at start-up, before any key exists beyond
    /// database 0).
    pub fn set_databases(&mut self, n: usize) {
        let n = n.max(1);
        self.settle();
        self.select(0);
        self.parked.truncate(n);
        self.parked_w.truncate(n);
        while self.parked.len() < n {
            self.parked.push(None);
            self.parked_w.push(Waits::new(self.seed));
        }
    }

    /// The selected database's index.
    #[inline]
    pub fn selected(&self) -> usize {
        self.cur
    }

    /// Selects database `n` (below [`Db::databases`]): every method then works on it.
    #[inline]
    pub fn select(&mut self, n: usize) {
        if n != self.cur {
            self.switch(n);
        }
    }

    #[inline(never)]
    fn switch(&mut self, n: usize) {
        assert!(n < self.parked.len(), "database {n} out of range");
        self.settle();
        let mut sp = self.parked[n].take().unwrap_or_else(|| Space::new(&self.slack));
        std::mem::swap(&mut self.sp, &mut sp);
        self.parked[self.cur] = Some(sp);
        // parked_w[cur] holds an empty placeholder while `cur` is selected.
        std::mem::swap(&mut self.w, &mut self.parked_w[self.cur]);
        std::mem::swap(&mut self.w, &mut self.parked_w[n]);
        self.cur = n;
    }

    /// Whether database `n` has ever been used (holds tables).
    fn materialized(&self, n: usize) -> bool {
        n == self.cur || self.parked.get(n).is_some_and(|p| p.is_some())
    }

    /// The databases that hold keys, ascending.
    pub fn nonempty_databases(&self) -> Vec<usize> {
        (0..self.parked.len()).filter(|&i| self.database_len(i) > 0).collect()
    }

    /// Keys of database `n` (as [`Db::len`] for the selected one).
    pub fn database_len(&self, n: usize) -> usize {
        if n == self.cur {
            self.sp.len
        } else {
            self.parked.get(n).and_then(|p| p.as_ref()).map_or(0, |s| s.len)
        }
    }

    /// Keys with an expiry time in database `n`.
    pub fn database_expires(&self, n: usize) -> usize {
        if n == self.cur {
            self.expire_keys_count()
        } else {
            self.parked.get(n).and_then(|p| p.as_ref()).map_or(0, |s| s.expiring)
        }
    }

    /// Whether a database other than 0 was ever used (the single-database case pays
    /// nothing for the others: publishing counts looks at database 0 only).
    pub fn multi_database(&self) -> bool {
        self.cur != 0 || self.parked.iter().skip(1).any(|p| p.is_some())
    }

    /// Runs `f` on every database that was ever used, selected in turn (ascending),
    /// and selects the one selected before again.
    pub fn each_database(&mut self, mut f: impl FnMut(&mut Db)) {
        let was = self.cur;
        for n in 0..self.parked.len() {
            if self.materialized(n) {
                self.select(n);
                f(self);
            }
        }
        self.select(was);
    }

    /// SWAPDB: exchanges the keys of databases `a` and `b`. Clients stay where they
    /// are: watched keys that exist in either database count as changed, and blocked
    /// clients of both databases are offered every key they wait on that now exists
    /// (Redis's `dbSwapDatabases`).
    pub fn swap_databases(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        // A lent entry goes back to its own database's record before the keys move.
        self.settle();
        let was = self.cur;
        // A running snapshot moves with the keys it is saving and still writes them
        // under the database they were in at its instant.
        self.select(b);
        let mut keys = self.parked[a].take().unwrap_or_else(|| Space::new(&self.slack));
        std::mem::swap(&mut self.sp, &mut keys);
        // b now holds a's keys; a gets b's.
        self.parked[a] = Some(keys);
        // Watched keys: present in either database before (= after) the swap.
        let now_keys = |db: &mut Db, n: usize, keys: &[Box<[u8]>]| -> Vec<bool> {
            db.select(n);
            keys.iter().map(|k| db.find(k).is_some()).collect()
        };
        for (x, y) in [(a, b), (b, a)] {
            self.select(x);
            let watched: Vec<Box<[u8]>> = self.w.watched.keys().cloned().collect();
            if !watched.is_empty() {
                let in_x = now_keys(self, x, &watched);
                let in_y = now_keys(self, y, &watched);
                self.select(x);
                for (i, k) in watched.iter().enumerate() {
                    if in_x[i] || in_y[i] {
                        if let Some(w) = self.w.watched.get_mut(k) {
                            w.version += 1;
                        }
                    }
                }
            }
            self.select(x);
            let blocked: Vec<Box<[u8]>> = self.w.blocked.keys().cloned().collect();
            for k in blocked {
                if self.find(&k).is_some() && !self.ready.iter().any(|(d, r)| *d == x && *r == k) {
                    self.ready.push((x, k));
                }
            }
        }
        self.select(was);
    }

    /// Turns the effects stream on (see [`crate::effects`]): from now on the keys this
    /// Db deletes by expiry are noted, and the execution function logs what every
    /// command propagates.
    pub fn enable_effects(&mut self) {
        if self.effects.is_none() {
            self.effects = Some(Box::default());
        }
    }

    /// Turns the effects stream off (its consumer went away), dropping what it held.
    pub fn disable_effects(&mut self) {
        self.effects = None;
    }

    #[inline]
    pub fn effects_on(&self) -> bool {
        self.effects.is_some()
    }

    /// The effects stream, when on.
    #[inline]
    pub fn effects(&mut self) -> Option<&mut crate::effects::EffectLog> {
        self.effects.as_deref_mut()
    }

    /// Keeps (or stops keeping) the keys expiry deletes, for `expired` notifications.
    pub fn keep_expired_notes(&mut self, on: bool) {
        if on != self.expired_notes.is_some() {
            self.expired_notes = on.then(Vec::new);
        }
    }

    /// The keys expiry deleted since the last call (empty unless kept).
    pub fn take_expired_notes(&mut self) -> Vec<Vec<u8>> {
        match self.expired_notes.as_mut() {
            Some(n) if !n.is_empty() => std::mem::take(n),
            _ => Vec::new(),
        }
    }

    /// Notes a key deleted because it expired: INFO's count, and the effects stream.
    #[inline]
    fn expired(&mut self, key: &[u8]) {
        self.expired_keys += 1;
        if let Some(n) = self.expired_notes.as_mut() {
            n.push(key.to_vec());
        }
        if let Some(e) = self.effects.as_deref_mut() {
            e.note_expired(key);
        }
    }

    /// Number of keys, expired ones not yet deleted included (as Redis's DBSIZE).
    pub fn len(&self) -> usize {
        self.sp.len
    }

    pub fn is_empty(&self) -> bool {
        self.sp.len == 0
    }

    /// Number of keys with an expiry time.
    pub fn expire_keys_count(&self) -> usize {
        match self.lent_change() {
            Some((_, true)) => self.sp.expiring + 1,
            Some((_, false)) => self.sp.expiring - 1,
            None => self.sp.expiring,
        }
    }

    /// Whether the entry lent by [`Db::get`] gained (true) or lost (false) its
    /// expiry time since, and its slot.
    fn lent_change(&self) -> Option<(usize, bool)> {
        let l = self.lent?;
        let now = if l.small {
            self.scratch.expire_at
        } else {
            self.sp.arena.get(self.sp.slots[l.slot].table.get(l.idx)?).expire_at()
        };
        match (l.expire_at != 0, now != 0) {
            (false, true) => Some((l.slot, true)),
            (true, false) => Some((l.slot, false)),
            _ => None,
        }
    }

    /// Brings the record lent by [`Db::get`] up to date: a small record's scratch copy
    /// is written back (a full one that now holds a small value becomes small), and
    /// the expiry counts follow its expiry time.
    #[inline]
    fn settle(&mut self) {
        let Some(l) = self.lent else {
            return;
        };
        self.settle_lent(l);
    }

    #[inline(never)]
    fn settle_lent(&mut self, l: Lent) {
        let change = self.lent_change();
        self.lent = None;
        let Some(h) = self.sp.slots[l.slot].table.get(l.idx) else { return };
        let mut access = self.sp.arena.get(h).access();
        if let Some(n) = l.private_int {
            let now =
                if l.small { &self.scratch.value } else { &self.sp.arena.get(h).full().expect("full record").value };
            if *now != Value::Int(n) {
                access.private_int = false;
            }
        }
        let moved = if l.small {
            self.sp.arena.rewrite(h, &mut self.scratch, access)
        } else {
            self.sp.arena.set_access(h, access);
            self.sp.arena.shrink_if_small(h)
        };
        if moved != h {
            self.sp.slots[l.slot].table.set(l.idx, moved);
        }
        match change {
            Some((slot, true)) => {
                self.sp.slots[slot].expiring += 1;
                self.sp.expiring += 1;
            }
            Some((slot, false)) => {
                self.sp.slots[slot].expiring -= 1;
                self.sp.expiring -= 1;
            }
            None => {}
        }
    }

    /// Keys deleted so far because they expired, lazily or actively (INFO's
    /// `expired_keys`).
    pub fn expired_keys(&self) -> u64 {
        self.expired_keys
    }

    pub fn slot_len(&self, slot: u16) -> usize {
        self.sp.slots[slot as usize].table.len()
    }

    /// Shares the set of slots whose keys are hidden from the commands that visit the
    /// keyspace as a whole (KEYS, SCAN, RANDOMKEY, DBSIZE, CLUSTER COUNTKEYSINSLOT and
    /// GETKEYSINSLOT): in cluster mode, slots a whole-slot migration is importing here
    /// and slots this node lost whose keys are still being deleted, as Redis 8.4 hides
    /// them. Lookups by key are routed by the cluster and never reach such keys.
    pub fn set_hidden_slots(&mut self, set: std::sync::Arc<crate::slot::SlotSet>) {
        self.hidden = Some(set);
    }

    /// Whether `slot`'s keys are hidden (see [`Db::set_hidden_slots`]).
    #[inline]
    pub fn slot_hidden(&self, slot: u16) -> bool {
        self.hidden.as_ref().is_some_and(|h| h.contains(slot))
    }

    /// Whether some slot's keys are hidden.
    #[inline]
    pub fn any_hidden(&self) -> bool {
        self.hidden.as_ref().is_some_and(|h| !h.is_empty())
    }

    /// [`Db::len`] without the keys of hidden slots (DBSIZE).
    pub fn visible_len(&self) -> usize {
        match &self.hidden {
            Some(h) if !h.is_empty() => self.sp.len - h.iter().map(|s| self.slot_len(s)).sum::<usize>(),
            _ => self.sp.len,
        }
    }

    /// Advances the LRU clock to `now_ms`. Lookups given a time do this themselves;
    /// the server calls it once per loop so that [`Db::set`] stamps fresh times.
    #[inline]
    pub fn set_clock(&mut self, now_ms: u64) {
        self.lru_clock = ((now_ms / 1000) & LRU_CLOCK_MAX as u64) as u32;
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Asks the CPU to fetch what looking up each of `keys` will read: the slot's
    /// header, the key table's block, and the records whose tags match. Each round over
    /// the keys needs the previous round's lines, so the misses of all keys overlap
    /// instead of three dependent misses per command in turn (the server calls this
    /// with the keys of the next pipelined commands; figures in docs/benchmarks.md).
    pub fn prefetch(&self, keys: &[&[u8]]) {
        const BATCH: usize = 16;
        for keys in keys.chunks(BATCH) {
            let mut at = [(0usize, 0u64); BATCH];
            for (a, k) in at.iter_mut().zip(keys) {
                *a = (key_slot(k) as usize, self.hash(k));
                prefetch(&self.sp.slots[a.0]);
            }
            let at = &at[..keys.len()];
            for &(slot, hash) in at {
                self.sp.slots[slot].table.prefetch(hash);
            }
            for &(slot, hash) in at {
                for i in self.sp.slots[slot].table.candidates(hash) {
                    // A record's address is arithmetic on its handle; fetch its first
                    // line, and the next when it spans two (the value follows the key).
                    if let Some((p, size)) = self.sp.arena.address(i) {
                        prefetch_line(p);
                        let last = (p as usize % 64) + size.min(128) - 1;
                        if last >= 64 {
                            prefetch_line(p.wrapping_add(size.min(128) - 1));
                        }
                    }
                }
            }
        }
    }

    /// The slot and bucket of `key`, expired or not.
    #[inline]
    fn find(&self, key: &[u8]) -> Option<(usize, usize)> {
        self.locate(key).ok()
    }

    /// `Ok((slot, bucket))` of `key`, expired or not, or `Err((slot, hash))` where it
    /// would go.
    #[inline]
    fn locate(&self, key: &[u8]) -> Result<(usize, usize), (usize, u64)> {
        let slot = key_slot(key) as usize;
        let hash = self.hash(key);
        let arena = &self.sp.arena;
        match self.sp.slots[slot].table.find(hash, |i| arena.get(i).key() == key) {
            Some(idx) => Ok((slot, idx)),
            None => Err((slot, hash)),
        }
    }

    /// The slot and bucket of a live `key`, for a write: an expired one is deleted on
    /// the way (unless keys never expire here, see [`Expiry`]).
    #[inline]
    fn find_live(&mut self, key: &[u8], now_ms: u64) -> Option<(usize, usize)> {
        let write = !self.reads_only;
        self.locate_live(key, now_ms, write).ok()
    }

    /// [`Db::find_live`] for a read: on a replica an expired key is hidden, not deleted.
    #[inline]
    fn find_readable(&mut self, key: &[u8], now_ms: u64) -> Option<(usize, usize)> {
        self.locate_live(key, now_ms, false).ok()
    }

    /// [`Db::locate`] for live keys: an expired one is deleted on the way, or hidden
    /// from a read, as the [`Expiry`] policy says.
    #[inline]
    fn locate_live(&mut self, key: &[u8], now_ms: u64, write: bool) -> Result<(usize, usize), (usize, u64)> {
        self.settle();
        self.set_clock(now_ms);
        let (slot, idx) = self.locate(key)?;
        if write {
            self.cow(slot, idx);
        }
        if self.rec(slot, idx).is_expired(now_ms) {
            match (self.expiry, write) {
                (Expiry::Never, _) => return Ok((slot, idx)),
                (Expiry::HideOnRead, false) => return Err((slot, self.hash(key))),
                _ => {}
            }
            self.remove_at(slot, idx);
            self.touch_removed(key);
            self.expired(key);
            self.shrink_if_sparse(slot);
            return Err((slot, self.hash(key)));
        }
        Ok((slot, idx))
    }

    /// The record handle in a bucket found by `find`, with no change to the table since.
    #[inline]
    fn handle(&self, slot: usize, idx: usize) -> u32 {
        self.sp.slots[slot].table.get(idx).expect("bucket index from find")
    }

    #[inline]
    fn rec(&self, slot: usize, idx: usize) -> Rec<'_> {
        self.sp.arena.get(self.handle(slot, idx))
    }

    /// Takes the record at a known bucket out of its table and updates the counts;
    /// the record itself is still allocated (the caller frees it).
    fn unlink_at(&mut self, slot: usize, idx: usize) -> u32 {
        self.cow(slot, idx);
        let i = self.handle(slot, idx);
        let r = self.sp.arena.get(i);
        let hash = self.hash(r.key());
        let expiring = r.expire_at() != 0;
        self.sp.slots[slot].table.remove(idx, hash);
        self.sp.len -= 1;
        self.sp.groups[slot / GROUP] -= 1;
        if expiring {
            self.sp.slots[slot].expiring -= 1;
            self.sp.expiring -= 1;
        }
        i
    }

    /// Once the last key is gone (DEL of everything, an eviction or expiry that
    /// emptied the shard), the arena's chunks go back to the allocator: it keeps freed
    /// records for reuse and never shrinks otherwise.
    fn release_if_empty(&mut self) {
        if self.sp.len == 0 {
            self.sp.arena.clear(std::iter::empty());
        }
    }

    /// Removes the key at a known bucket, dropping its value; returns the key.
    fn remove_at(&mut self, slot: usize, idx: usize) -> KeyBytes {
        let i = self.unlink_at(slot, idx);
        let key = KeyBytes::from(self.sp.arena.get(i).key());
        self.sp.arena.remove(i);
        self.release_if_empty();
        key
    }

    /// Removes the key at a known bucket, handing back its entry and access history.
    fn take_at(&mut self, slot: usize, idx: usize) -> (KeyBytes, Entry, Access) {
        let i = self.unlink_at(slot, idx);
        let taken = self.sp.arena.take(i);
        self.release_if_empty();
        taken
    }

    /// Gives memory back when a slot's table became mostly empty (hash tables never
    /// shrink by themselves; Redis resizes its dicts below 10% fill). Per-slot tables
    /// shrink below 20%, down to one block: each slot's count wanders under churn, and
    /// a table kept at every slot's peak held a third more blocks than a fresh load's
    /// after four rounds (benches/memory-churn.sh). A slot's table is small (a rebuild
    /// moves at most a fifth of its buckets' worth of handles), so it shrinks at once.
    fn shrink_if_sparse(&mut self, slot: usize) {
        let t = &self.sp.slots[slot].table;
        if t.buckets() <= 12 || t.len() * 5 >= t.buckets() {
            return;
        }
        let Db { sp: Space { slots, arena, .. }, hasher, .. } = self;
        let t = &mut slots[slot].table;
        t.shrink_to(t.len() * 2, |i| hasher.hash_one(arena.get(i).key()));
    }

    /// Inserts a key known to be absent (a full record takes `entry`'s value).
    fn insert_new(&mut self, slot: usize, hash: u64, key: &[u8], entry: &mut Entry, mut access: Access) {
        // A key that did not exist at a running snapshot's instant is not in it.
        self.mark_saved(&mut access);
        if self.capture.is_some() {
            self.capture_key(slot, key);
        }
        if entry.expire_at != 0 {
            self.sp.slots[slot].expiring += 1;
            self.sp.expiring += 1;
        }
        self.sp.len += 1;
        self.sp.groups[slot / GROUP] += 1;
        let Db { sp: Space { slots, arena, .. }, hasher, .. } = self;
        let i = arena.insert(KeySrc::Bytes(key), entry, access);
        slots[slot].table.insert_unique(hash, i, |j| hasher.hash_one(arena.get(j).key()));
    }

    /// Records an access for LRU and LFU (Redis's `updateLFU` and the LRU stamp of
    /// `lookupKey`).
    fn accessed(&mut self, a: Access) -> Access {
        let counter = a.decayed_counter(self.lru_clock, self.lfu_decay_time);
        let counter = self.lfu_log_incr(counter);
        a.stamped(self.lru_clock, counter)
    }

    /// Redis's `LFULogIncr`: the counter grows with probability
    /// 1 / ((counter - LFU_INIT_VAL) * lfu_log_factor + 1).
    fn lfu_log_incr(&mut self, counter: u8) -> u8 {
        if counter == 255 {
            return 255;
        }
        let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
        // r < 1 / d, written without the division (d >= 1 here): the division was a
        // tenth of the samples in Db::set_if at pipeline 16.
        let d = base * self.lfu_log_factor as f64 + 1.0;
        if d <= 1.0 || self.random_f64() * d < 1.0 {
            counter + 1
        } else {
            counter
        }
    }

    /// Records an access to the record in (`slot`, `idx`); returns its handle.
    #[inline]
    fn access_at(&mut self, slot: usize, idx: usize) -> u32 {
        let h = self.handle(slot, idx);
        let a = self.accessed(self.sp.arena.get(h).access());
        self.sp.arena.set_access(h, a);
        h
    }

    /// The entry of record `h`: a full record's own, or a small one decoded into the
    /// scratch entry.
    #[inline]
    fn entry_of(&mut self, h: u32) -> &mut Entry {
        let r = self.sp.arena.get(h);
        if r.is_small() {
            r.decode_into(&mut self.scratch);
            &mut self.scratch
        } else {
            self.sp.arena.full_mut(h).expect("full record")
        }
    }

    /// The live entry at `key` for a command that may change it, recording the access
    /// (Redis's `lookupKeyWrite`); an expired one is deleted on the way (lazy expiry).
    /// A read-only lookup is [`Db::read`].
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        let (slot, idx) = self.find_live(key, now_ms)?;
        let h = self.access_at(slot, idx);
        let r = self.sp.arena.get(h);
        let (small, private) = (r.is_small(), r.access().private_int);
        let e = self.entry_of(h);
        let expire_at = e.expire_at;
        let private_int = match e.value {
            Value::Int(n) if private => Some(n),
            _ => None,
        };
        self.lent = Some(Lent { slot, idx, expire_at, private_int, small });
        Some(self.entry_of_lent(h, small))
    }

    #[inline]
    fn entry_of_lent(&mut self, h: u32, small: bool) -> &mut Entry {
        if small {
            &mut self.scratch
        } else {
            self.sp.arena.full_mut(h).expect("full record")
        }
    }

    /// The live entry at `key` for a command that only reads it, recording the access
    /// (Redis's `lookupKeyRead`): a write lookup is [`Db::get`]. On a replica
    /// ([`Expiry::HideOnRead`]) an expired key reads as missing and stays.
    pub fn read(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let (slot, idx) = self.find_readable(key, now_ms)?;
        let h = self.access_at(slot, idx);
        Some(self.entry_of(h))
    }

    /// The live entry at `key` without recording an access (Redis's
    /// `LOOKUP_NOTOUCH`); a read, as [`Db::read`].
    pub fn peek(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let (slot, idx) = self.find_readable(key, now_ms)?;
        let h = self.handle(slot, idx);
        Some(self.entry_of(h))
    }

    /// [`Db::peek`] with the value's access history.
    pub fn peek_with_access(&mut self, key: &[u8], now_ms: u64) -> Option<(&Entry, Access)> {
        let (slot, idx) = self.find_readable(key, now_ms)?;
        let h = self.handle(slot, idx);
        let a = self.sp.arena.get(h).access();
        Some((self.entry_of(h), a))
    }

    /// What a live `key` takes in the keyspace (MEMORY USAGE): its record's bytes, the
    /// table's 4-byte index, a key kept on the heap; and whether the value is inside
    /// the record (else the caller measures the value's own heap).
    pub fn footprint(&mut self, key: &[u8], now_ms: u64) -> Option<(usize, bool)> {
        let (slot, idx) = self.find_readable(key, now_ms)?;
        let h = self.handle(slot, idx);
        let r = self.sp.arena.get(h);
        let long_key = if key.len() > 255 { key.len() } else { 0 };
        Some((self.sp.arena.size(h) + 4 + long_key, r.is_small()))
    }

    /// Whether `key` is live, without recording an access.
    pub fn contains(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.find_readable(key, now_ms).is_some()
    }

    /// The access history of a live `key`, without recording an access.
    pub fn access(&mut self, key: &[u8], now_ms: u64) -> Option<Access> {
        let (slot, idx) = self.find_readable(key, now_ms)?;
        Some(self.rec(slot, idx).access())
    }

    /// OBJECT IDLETIME: seconds since the last access to a live `key`.
    pub fn idle_seconds(&mut self, key: &[u8], now_ms: u64) -> Option<u64> {
        let a = self.access(key, now_ms)?;
        Some(a.idle_seconds(self.lru_clock))
    }

    /// OBJECT FREQ: the LFU counter of a live `key`, decayed to now.
    pub fn lfu_counter(&mut self, key: &[u8], now_ms: u64) -> Option<u8> {
        let a = self.access(key, now_ms)?;
        Some(a.decayed_counter(self.lru_clock, self.lfu_decay_time))
    }

    /// Replaces the entry in (`slot`, `idx`) (its key stays), with `access`.
    fn replace_at(&mut self, slot: usize, idx: usize, entry: &mut Entry, access: Access) {
        let h = self.handle(slot, idx);
        let old = self.sp.arena.get(h).expire_at();
        let moved = self.sp.arena.rewrite(h, entry, access);
        if moved != h {
            self.sp.slots[slot].table.set(idx, moved);
        }
        self.expiry_changed(slot, old, entry.expire_at);
    }

    /// Stores `value` at `key` with `expire_at` (0 = none), replacing any entry. A
    /// replaced key keeps its LFU counter, as Redis's `dbSetValue` does.
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: u64) {
        self.settle();
        let clock = self.lru_clock;
        let mut entry = Entry { value, expire_at };
        match self.locate(key) {
            Ok((slot, idx)) => {
                self.cow(slot, idx);
                let a = self.rec(slot, idx).access();
                let access = Access { snap: a.snap, ..Access::new(clock, a.counter()) };
                self.replace_at(slot, idx, &mut entry, access);
            }
            Err((slot, hash)) => {
                let access = Access::new(clock, LFU_INIT_VAL);
                self.insert_new(slot, hash, key, &mut entry, access);
            }
        }
    }

    /// Keeps the counts of keys with a TTL right when an entry's expiry time changes
    /// from `old` to `new` (0 = none).
    fn expiry_changed(&mut self, slot: usize, old: u64, new: u64) {
        match (old != 0, new != 0) {
            (false, true) => {
                self.sp.slots[slot].expiring += 1;
                self.sp.expiring += 1;
            }
            (true, false) => {
                self.sp.slots[slot].expiring -= 1;
                self.sp.expiring -= 1;
            }
            _ => {}
        }
    }

    /// SET with its conditions, looking `key` up once: `decide` sees the expiry time
    /// of the live entry at `key` (`None` when there is none) and returns the expiry
    /// time to store `value()` with, or `None` to leave the key as it is. The lookup
    /// counts as an access either way (Redis's `lookupKeyWrite`), and a replaced key
    /// keeps its LFU counter, as with [`Db::get`] then [`Db::set`]. Returns whether it
    /// stored.
    pub fn set_if(
        &mut self,
        key: &[u8],
        now_ms: u64,
        decide: impl FnOnce(Option<u64>) -> Option<u64>,
        value: impl FnOnce() -> Value,
    ) -> bool {
        match self.locate_live(key, now_ms, true) {
            Ok((slot, idx)) => {
                let h = self.access_at(slot, idx);
                let a = self.sp.arena.get(h).access();
                let old = self.sp.arena.get(h).expire_at();
                let Some(expire_at) = decide(Some(old)) else { return false };
                let access = Access { snap: a.snap, ..Access::new(self.lru_clock, a.counter()) };
                self.replace_at(slot, idx, &mut Entry { value: value(), expire_at }, access);
                true
            }
            Err((slot, hash)) => {
                let Some(expire_at) = decide(None) else { return false };
                let access = Access::new(self.lru_clock, LFU_INIT_VAL);
                self.insert_new(slot, hash, key, &mut Entry { value: value(), expire_at }, access);
                true
            }
        }
    }

    /// [`Db::set`] for COPY: an integer value becomes a private copy, which Redis
    /// does not share between keys.
    pub fn set_copy(&mut self, key: &[u8], value: Value, expire_at: u64) {
        let int = matches!(value, Value::Int(_));
        self.set(key, value, expire_at);
        if let Some((slot, idx)) = self.find(key) {
            let h = self.handle(slot, idx);
            let a = self.sp.arena.get(h).access();
            self.sp.arena.set_access(h, Access { private_int: int, ..a });
        }
    }

    /// Removes `key`; returns its entry when it was live. An expired entry is deleted
    /// all the same (and counts as an expiry for WATCH).
    pub fn remove(&mut self, key: &[u8], now_ms: u64) -> Option<Entry> {
        self.take(key, now_ms).map(|(e, _)| e)
    }

    /// [`Db::remove`] that drops the value: returns whether `key` was live.
    pub fn delete(&mut self, key: &[u8], now_ms: u64) -> bool {
        let Some((slot, idx)) = self.find_live(key, now_ms) else { return false };
        self.remove_at(slot, idx);
        self.shrink_if_sparse(slot);
        true
    }

    /// Removes a live `key` with its access history, to [`Db::put`] it elsewhere
    /// (RENAME, MOVE: the value moves, its LRU/LFU history with it).
    pub fn take(&mut self, key: &[u8], now_ms: u64) -> Option<(Entry, Access)> {
        let (slot, idx) = self.find_live(key, now_ms)?;
        let (_, entry, access) = self.take_at(slot, idx);
        self.shrink_if_sparse(slot);
        Some((entry, access))
    }

    /// Stores an entry taken with [`Db::take`], replacing any entry at `key`.
    pub fn put(&mut self, key: &[u8], mut entry: Entry, access: Access) {
        self.settle();
        let (slot, hash) = match self.locate(key) {
            Ok((slot, idx)) => {
                self.remove_at(slot, idx);
                (slot, self.hash(key))
            }
            Err(place) => place,
        };
        self.insert_new(slot, hash, key, &mut entry, access);
    }

    /// Sets the access history of `key` as RESTORE's IDLETIME / FREQ (and a loaded
    /// file's IDLE / FREQ records) do, Redis's `objectSetLRUOrLFU`: under an LFU policy
    /// `freq` becomes the counter; otherwise `idle_secs` backdates the last access.
    /// Returns whether it changed anything.
    pub fn set_access_history(&mut self, key: &[u8], idle_secs: Option<u64>, freq: Option<u8>) -> bool {
        self.settle();
        let (clock, lfu) = (self.lru_clock, self.lfu_policy);
        let Some((slot, idx)) = self.find(key) else {
            return false;
        };
        let h = self.handle(slot, idx);
        let a = self.sp.arena.get(h).access();
        let a = match (lfu, idle_secs, freq) {
            (true, _, Some(f)) => a.stamped(clock, f),
            (false, Some(idle), _) => {
                let back = (idle % LRU_CLOCK_MAX as u64) as u32;
                let at = if back <= clock { clock - back } else { clock + LRU_CLOCK_MAX - back };
                a.stamped(at, a.counter())
            }
            _ => return false,
        };
        self.sp.arena.set_access(h, a);
        true
    }

    /// Sets the expiry time of `key` (0 removes it). Returns whether the key exists;
    /// the caller has checked that it is live.
    pub fn set_expire(&mut self, key: &[u8], at: u64) -> bool {
        self.settle();
        let Some((slot, idx)) = self.find(key) else {
            return false;
        };
        self.cow(slot, idx);
        let h = self.handle(slot, idx);
        let old = self.sp.arena.get(h).expire_at();
        if !self.sp.arena.set_expire_in_place(h, at) {
            // A small record gains or loses its expiry's 8 bytes: written again.
            let access = self.sp.arena.get(h).access();
            self.sp.arena.get(h).decode_into(&mut self.scratch);
            self.scratch.expire_at = at;
            let moved = self.sp.arena.rewrite(h, &mut self.scratch, access);
            if moved != h {
                self.sp.slots[slot].table.set(idx, moved);
            }
        }
        self.expiry_changed(slot, old, at);
        true
    }

    /// Removes the expiry time of `key`; returns whether it had one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        self.settle();
        match self.find(key) {
            Some((slot, idx)) if self.rec(slot, idx).expire_at() != 0 => self.set_expire(key, 0),
            _ => false,
        }
    }

    /// Deletes every key; returns how many there were. Watched keys that existed
    /// count as changed (Redis's `signalFlushedDb`).
    pub fn clear(&mut self) -> usize {
        self.settle();
        self.cow_all();
        let n = self.sp.len;
        self.tracking.flushed();
        if !self.w.watched.is_empty() {
            let present: Vec<Box<[u8]>> = self.w.watched.keys().filter(|k| self.find(k).is_some()).cloned().collect();
            for k in present {
                self.touch(&k);
            }
        }
        self.sp.free_records();
        self.sp.slots = SlotTables::new();
        self.sp.groups.fill(0);
        self.sp.len = 0;
        self.sp.expiring = 0;
        self.sp.expire_cursor = (0, 0);
        n
    }

    /// FLUSHALL: deletes every key of every database; returns how many there were.
    pub fn clear_all(&mut self) -> usize {
        let mut n = 0;
        self.each_database(|db| n += db.clear());
        n
    }

    /// Deletes every key of `slot` (a slot lost to another node); returns how many.
    pub fn clear_slot(&mut self, slot: u16) -> usize {
        self.settle();
        let slot = slot as usize;
        self.cow_slot(slot);
        let taken = self.sp.slots.take(slot);
        let n = taken.table.len();
        for i in taken.table.iter() {
            let key = KeyBytes::from(self.sp.arena.get(i).key());
            self.sp.arena.remove(i);
            self.touch_removed(&key);
        }
        self.sp.len -= n;
        self.sp.groups[slot / GROUP] -= n;
        self.sp.expiring -= taken.expiring as usize;
        self.release_if_empty();
        n
    }

    /// Up to `limit` keys of one slot, expired ones included (trimming a lost slot).
    pub fn slot_keys_any(&self, slot: u16, limit: usize) -> Vec<Vec<u8>> {
        let arena = &self.sp.arena;
        self.sp.slots[slot as usize].table.iter().take(limit).map(|i| arena.get(i).key().to_vec()).collect()
    }

    /// The live keys of one slot, in table order.
    pub fn slot_keys(&mut self, slot: u16, now_ms: u64) -> impl Iterator<Item = &[u8]> + '_ {
        self.slot_records(slot, now_ms).map(|r| r.key())
    }

    /// The live keys of one slot with their values' type names (SCAN's TYPE filter).
    pub fn slot_types(&mut self, slot: u16, now_ms: u64) -> impl Iterator<Item = (&[u8], &'static str)> + '_ {
        self.slot_records(slot, now_ms).map(|r| (r.key(), r.type_name()))
    }

    /// The live records of one slot, in table order (after settling a lent entry, so
    /// every record is current).
    fn slot_records(&mut self, slot: u16, now_ms: u64) -> impl Iterator<Item = Rec<'_>> + '_ {
        self.settle();
        let arena = &self.sp.arena;
        let never = self.expiry == Expiry::Never;
        self.sp.slots[slot as usize].table.iter().map(|i| arena.get(i)).filter(move |r| never || !r.is_expired(now_ms))
    }

    /// Appends to `out` every live key matching the glob `pattern` (KEYS). Expired
    /// keys are skipped, not deleted, as Redis does. A pattern that pins a hash slot
    /// (`user:{42}:*`) visits that slot alone.
    pub fn keys_matching(&mut self, pattern: &[u8], now_ms: u64, out: &mut Vec<Vec<u8>>) {
        self.settle();
        let all = pattern == b"*";
        let arena = &self.sp.arena;
        let never = self.expiry == Expiry::Never;
        let visit = |s: &Slot, out: &mut Vec<Vec<u8>>| {
            for r in s.table.iter().map(|i| arena.get(i)) {
                if (all || glob_match(pattern, r.key(), false)) && (never || !r.is_expired(now_ms)) {
                    out.push(r.key().to_vec());
                }
            }
        };
        match pattern_slot(pattern) {
            Some(slot) => visit(&self.sp.slots[slot as usize], out),
            None => {
                for (i, g) in self.sp.groups.iter().enumerate() {
                    if *g != 0 {
                        for s in i * GROUP..(i + 1) * GROUP {
                            visit(&self.sp.slots[s], out);
                        }
                    }
                }
            }
        }
    }

    /// A random live key (RANDOMKEY), every key about equally likely. Expired keys
    /// met on the way are deleted.
    pub fn random_key(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        self.settle();
        self.set_clock(now_ms);
        let mut tries = 0;
        loop {
            if self.sp.len == 0 {
                return None;
            }
            let nth = self.random_u64() % self.sp.len as u64;
            let slot = self.slot_of_nth(nth);
            let idx = self.random_bucket(slot);
            if self.rec(slot, idx).is_expired(now_ms) {
                match self.expiry {
                    Expiry::Never => {}
                    // A replica keeps expired keys for the master's DEL: after some
                    // tries it answers one of them rather than loop forever (Redis's
                    // RANDOMKEY does the same when every key it meets has expired).
                    Expiry::HideOnRead => {
                        tries += 1;
                        if tries < 100 {
                            continue;
                        }
                    }
                    Expiry::Delete => {
                        let key = self.remove_at(slot, idx);
                        self.touch_removed(&key);
                        self.expired(&key);
                        self.shrink_if_sparse(slot);
                        continue;
                    }
                }
            }
            return Some(self.rec(slot, idx).key().to_vec());
        }
    }

    /// The slot holding the `n`th key in slot order (`n < len`).
    fn slot_of_nth(&self, mut n: u64) -> usize {
        for (g, &count) in self.sp.groups.iter().enumerate() {
            if n < count as u64 {
                for slot in g * GROUP..(g + 1) * GROUP {
                    let l = self.sp.slots[slot].table.len() as u64;
                    if n < l {
                        return slot;
                    }
                    n -= l;
                }
            }
            n -= (count as u64).min(n);
        }
        unreachable!("n < len")
    }

    /// A random occupied bucket of a non-empty slot: random probes, then the next
    /// occupied bucket after a random start when the table is very sparse.
    fn random_bucket(&mut self, slot: usize) -> usize {
        let buckets = self.sp.slots[slot].table.buckets();
        for _ in 0..32 {
            let idx = (self.random_u64() % buckets as u64) as usize;
            if self.sp.slots[slot].table.get(idx).is_some() {
                return idx;
            }
        }
        let start = (self.random_u64() % buckets as u64) as usize;
        let t = &self.sp.slots[slot].table;
        (start..buckets).chain(0..start).find(|&i| t.get(i).is_some()).expect("slot is not empty")
    }

    /// xorshift64*: a fast generator for random keys and LFU increments (not for
    /// anything a client could exploit).
    pub fn random_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn random_f64(&mut self) -> f64 {
        (self.random_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The active expiry cycle: deletes expired keys until `budget` is spent or
    /// they seem rare. Returns how many it deleted.
    ///
    /// Like Redis's `activeExpireCycle`, it works in steps that examine
    /// [`EXPIRE_SAMPLE`] keys with a TTL and goes on while more than
    /// [`EXPIRE_ACCEPTABLE_STALE`]% of them had expired. Rather than sampling a table
    /// of volatile keys at random, it walks the slots that have keys with a TTL in
    /// order, bucket by bucket, from a cursor kept between calls, so successive
    /// cycles sweep the whole keyspace. A table that grows during the walk may make it
    /// skip or revisit some keys; the next lap catches them.
    pub fn active_expire(&mut self, now_ms: u64, budget: Duration) -> usize {
        if self.expiry != Expiry::Delete {
            // Only a master deletes keys by time; a replica waits for its DELs.
            return 0;
        }
        self.settle();
        self.set_clock(now_ms);
        let start = Instant::now();
        let mut deleted = 0;
        if self.sp.expiring == 0 {
            self.sp.avg_ttl = 0;
        }
        while self.sp.expiring != 0 {
            let (sampled, expired, ttl_sum, ttl_samples) = self.expire_step(now_ms);
            deleted += expired;
            // Redis's activeExpireCycle: the mean TTL of the sampled keys not yet
            // expired, folded into the estimate with a weight of 2%.
            if let Some(avg) = ttl_sum.checked_div(ttl_samples) {
                if self.sp.avg_ttl == 0 {
                    self.sp.avg_ttl = avg;
                }
                self.sp.avg_ttl = (self.sp.avg_ttl / 50) * 49 + avg / 50;
            }
            if expired * 100 <= sampled * EXPIRE_ACCEPTABLE_STALE || start.elapsed() >= budget {
                break;
            }
        }
        deleted
    }

    /// One step of the active expiry cycle: returns (keys with a TTL examined,
    /// keys deleted, the sum of the live ones' TTLs in ms, how many they were).
    fn expire_step(&mut self, now_ms: u64) -> (usize, usize, u64, u64) {
        let (mut slot, mut bucket) = self.sp.expire_cursor;
        let (mut sampled, mut expired, mut buckets, mut slots_seen) = (0, 0, 0, 0);
        let (mut ttl_sum, mut ttl_samples) = (0u64, 0u64);
        while sampled < EXPIRE_SAMPLE && buckets < EXPIRE_MAX_BUCKETS && slots_seen <= SLOTS {
            let s = &self.sp.slots[slot];
            if s.expiring == 0 || bucket >= s.table.buckets() {
                if bucket > 0 {
                    self.shrink_if_sparse(slot);
                }
                slot = (slot + 1) % SLOTS;
                bucket = 0;
                slots_seen += 1;
                continue;
            }
            buckets += 1;
            if let Some(at) = s.table.get(bucket).map(|i| self.sp.arena.get(i).expire_at()) {
                if at != 0 {
                    sampled += 1;
                    if at <= now_ms {
                        let key = self.remove_at(slot, bucket);
                        self.touch_removed(&key);
                        self.expired(&key);
                        expired += 1;
                    } else {
                        ttl_sum += at - now_ms;
                        ttl_samples += 1;
                    }
                }
            }
            bucket += 1;
        }
        self.sp.expire_cursor = (slot, bucket);
        (sampled, expired, ttl_sum, ttl_samples)
    }

    /// INFO keyspace's `avg_ttl` of database `n` (ms; 0 until the active expiry cycle
    /// has sampled a key with a TTL).
    pub fn database_avg_ttl(&self, n: usize) -> u64 {
        if n == self.cur {
            self.sp.avg_ttl
        } else {
            self.parked.get(n).and_then(|p| p.as_ref()).map_or(0, |s| s.avg_ttl)
        }
    }

    /// Notes a change of `key` by the running command (Redis's `signalModifiedKey`):
    /// for WATCH, clients blocked on it, and tracking clients that read it.
    #[inline]
    pub fn touch(&mut self, key: &[u8]) {
        if self.tracking.active() {
            let by = self.tracking.current;
            self.tracking.changed(key, by);
        }
        self.signal(key);
    }

    /// [`Db::touch`] for a key deleted by expiry or eviction: no client changed it (a
    /// NOLOOP client in BCAST mode hears of it too).
    #[inline]
    pub(crate) fn touch_removed(&mut self, key: &[u8]) {
        if self.tracking.active() {
            self.tracking.changed(key, 0);
        }
        self.signal(key);
    }

    /// WATCH versions and blocked clients' ready keys.
    #[inline]
    fn signal(&mut self, key: &[u8]) {
        if !self.w.blocked.is_empty()
            && self.w.blocked.contains_key(key)
            && !self.ready.iter().any(|(d, k)| *d == self.cur && &**k == key)
        {
            self.ready.push((self.cur, key.into()));
        }
        if self.w.watched.is_empty() {
            return;
        }
        if let Some(w) = self.w.watched.get_mut(key) {
            w.version += 1;
        }
    }

    /// A client starts waiting for `key` to change (BLPOP and friends).
    pub fn block_on(&mut self, key: &[u8]) {
        *self.w.blocked.entry(key.into()).or_default() += 1;
    }

    /// One client stops waiting for `key`.
    pub fn unblock(&mut self, key: &[u8]) {
        if let Some(n) = self.w.blocked.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.w.blocked.remove(key);
            }
        }
    }

    /// Keys with waiting clients that changed since the last call, in change order,
    /// with their database.
    pub fn take_ready(&mut self) -> Vec<(usize, Box<[u8]>)> {
        std::mem::take(&mut self.ready)
    }

    /// Whether some blocked-on key changed.
    #[inline]
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Starts watching `key`; returns its current change version.
    pub fn watch(&mut self, key: &[u8]) -> u64 {
        let w = self.w.watched.entry(key.into()).or_default();
        w.watchers += 1;
        w.version
    }

    /// Stops one watcher of `key`.
    pub fn unwatch(&mut self, key: &[u8]) {
        if let Some(w) = self.w.watched.get_mut(key) {
            w.watchers -= 1;
            if w.watchers == 0 {
                self.w.watched.remove(key);
            }
        }
    }

    /// The change version of a watched key (0 when nobody watches it).
    pub fn watch_version(&self, key: &[u8]) -> u64 {
        self.w.watched.get(key).map_or(0, |w| w.version)
    }

    /// Recounts everything and panics on any disagreement with the kept counts. For
    /// tests, here and in the crates above.
    pub fn check_invariants(&mut self) {
        self.settle();
        let (mut len, mut expiring) = (0, 0);
        for (i, s) in self.sp.slots.iter().enumerate() {
            let mut e = 0;
            for r in s.table.iter().map(|j| self.sp.arena.get(j)) {
                assert_eq!(key_slot(r.key()) as usize, i, "key in the wrong slot");
                if r.expire_at() != 0 {
                    e += 1;
                }
            }
            assert_eq!(s.expiring as usize, e, "expiring count of slot {i}");
            len += s.table.len();
            expiring += e;
        }
        for (g, &count) in self.sp.groups.iter().enumerate() {
            let real: usize = (g * GROUP..(g + 1) * GROUP).map(|s| self.sp.slots[s].table.len()).sum();
            assert_eq!(count, real, "key count of group {g}");
        }
        assert_eq!(self.sp.len, len, "len");
        let live: usize = self.sp.slots.used().iter().flat_map(|s| s.table.iter()).map(|h| self.sp.arena.size(h)).sum();
        for (i, s) in self.sp.slots.used().iter().enumerate().skip(1) {
            assert_eq!(self.sp.slots.at[s.slot as usize] as usize, i, "slot header index");
        }
        assert_eq!(self.sp.slots.used()[0].table.buckets(), 0, "the shared empty header");
        assert_eq!(self.sp.arena.live_bytes(), live, "arena bytes");
        self.sp.arena.check(self.sp.slots.used().iter().flat_map(|s| s.table.iter()));
        assert_eq!(self.sp.expiring, expiring, "expiring");
        let unused = self.sp.arena.unused_bytes()
            + self.parked.iter().flatten().map(|sp| sp.arena.unused_bytes()).sum::<usize>();
        assert_eq!(self.record_slack_bytes(), unused as u64, "record slack");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn s(b: &str) -> Value {
        Value::string(b.as_bytes())
    }

    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }

    /// Slot headers exist only for slots that got keys: lookups, walks and samples of
    /// empty slots make none, and a slot emptied whole gives its header back.
    #[test]
    fn slot_headers_are_made_on_first_key() {
        let mut db = Db::with_seed(4);
        for k in 0..50 {
            assert!(db.get(format!("nothing{k}").as_bytes(), 0).is_none());
        }
        db.prefetch(&[b"a", b"b"]);
        assert_eq!(db.slot_keys(key_slot(b"a"), 0).count(), 0);
        assert_eq!(db.sp.slots.used().len(), 1, "only the shared empty header");
        let keys = [&b"a"[..], b"b", b"c", b"{a}x", b"{b}y"];
        for k in keys {
            db.set(k, s("v"), 10);
        }
        assert_eq!(db.sp.slots.used().len(), 4);
        db.active_expire(5, Duration::from_secs(1));
        db.eviction_sample(true, EvictBy::Ttl, 10, |_, _| {});
        assert_eq!(db.clear_slot(key_slot(b"a")), 2);
        assert_eq!(db.clear_slot(key_slot(b"zz")), 0);
        assert_eq!(db.sp.slots.used().len(), 3);
        db.check_invariants();
        for k in [&b"b"[..], b"c", b"{b}y"] {
            assert!(db.contains(k, 0));
        }
        db.set(b"a", s("again"), 0);
        db.check_invariants();
        db.clear();
        assert_eq!(db.sp.slots.used().len(), 1);
    }

    /// A change made through the entry `get` lends reaches the record before anything
    /// else looks at it: a database switch, a SWAPDB, a walk of the slot.
    #[test]
    fn lent_small_entries_are_written_back() {
        let mut db = Db::with_seed(2);
        db.set_databases(2);
        db.set(b"a", s("0123456789abcdefXYZ"), 0);
        db.get(b"a", 0).unwrap().value = s("changed in place, 31 bytes long");
        db.swap_databases(0, 1);
        db.select(1);
        assert_eq!(db.peek(b"a", 0).unwrap().value, s("changed in place, 31 bytes long"));
        db.get(b"a", 0).unwrap().expire_at = 500;
        let slot = key_slot(b"a");
        assert_eq!(db.slot_keys(slot, 1000).count(), 0, "expired through the lent entry");
        db.get(b"a", 0).unwrap().value = Value::Int(12);
        assert_eq!(db.slot_types(slot, 0).collect::<Vec<_>>(), vec![(&b"a"[..], "string")]);
        assert_eq!(db.slot_dump(slot, 0)[0].1, 500);
        db.check_invariants();
        db.select(0);
        assert!(db.is_empty());
    }

    #[test]
    fn lazy_expiry_keeps_counts() {
        let mut db = Db::with_seed(1);
        db.set(b"a", s("1"), 100);
        db.set(b"b", s("2"), 0);
        assert_eq!((db.len(), db.expire_keys_count()), (2, 1));
        assert!(db.get(b"a", 99).is_some());
        assert!(db.get(b"a", 100).is_none());
        assert_eq!((db.len(), db.expire_keys_count(), db.expired_keys()), (1, 0, 1));
        db.check_invariants();
    }

    #[test]
    fn prefetch_changes_nothing() {
        let mut db = Db::with_seed(3);
        let keys: Vec<Vec<u8>> = (0..40).map(|i| format!("key:{i:012}").into_bytes()).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        // Empty: every slot table is unallocated.
        db.prefetch(&refs);
        for k in &keys[..20] {
            db.set(k, s("v"), 0);
        }
        // Present and absent keys, more than one batch, an empty key, a repeated one.
        let mut more = refs.clone();
        more.extend([&b""[..], &keys[3][..]]);
        db.prefetch(&more);
        db.prefetch(&[]);
        assert_eq!(db.len(), 20);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(db.contains(k, 0), i < 20);
        }
        db.check_invariants();
    }

    #[test]
    fn set_if_decides_on_the_live_entry() {
        let mut db = Db::with_seed(1);
        // Absent: decide sees None.
        assert!(db.set_if(b"a", 1000, |old| old.map_or(Some(5000), |_| None), || s("1")));
        assert_eq!(db.expire_keys_count(), 1);
        // Present with a TTL: NX-like refusal keeps the entry.
        assert!(!db.set_if(b"a", 1000, |old| old.map_or(Some(0), |_| None), || s("2")));
        assert_eq!(db.peek(b"a", 1000).map(|e| (e.value.clone(), e.expire_at)), Some((s("1"), 5000)));
        // KEEPTTL-like: the old expiry time comes back.
        assert!(db.set_if(b"a", 1000, |old| old, || s("3")));
        assert_eq!(db.peek(b"a", 1000).map(|e| (e.value.clone(), e.expire_at)), Some((s("3"), 5000)));
        // Expired: deleted on the way (an expiry), then absent for decide.
        assert!(db.set_if(b"a", 6000, |old| if old.is_none() { Some(0) } else { None }, || s("4")));
        assert_eq!(db.expired_keys(), 1);
        assert_eq!(db.expire_keys_count(), 0);
        assert_eq!(db.len(), 1);
        db.check_invariants();
    }

    #[test]
    fn set_adjusts_expire_counts() {
        let mut db = Db::with_seed(1);
        db.set(b"a", s("1"), 0);
        db.set(b"a", s("1"), 500);
        assert_eq!(db.expire_keys_count(), 1);
        db.set(b"a", s("1"), 600);
        assert_eq!(db.expire_keys_count(), 1);
        db.set(b"a", s("x"), 0);
        assert_eq!(db.expire_keys_count(), 0);
        assert!(db.set_expire(b"a", 10));
        assert_eq!(db.expire_keys_count(), 1);
        assert!(db.persist(b"a"));
        assert!(!db.persist(b"a"));
        assert!(!db.set_expire(b"zz", 10));
        assert_eq!(db.expire_keys_count(), 0);
        db.check_invariants();
    }

    #[test]
    fn expiry_changed_through_get_is_counted() {
        let mut db = Db::with_seed(1);
        db.set(b"a", s("1"), 0);
        db.get(b"a", 0).unwrap().expire_at = 50;
        assert_eq!(db.expire_keys_count(), 1);
        db.set(b"b", s("1"), 0);
        db.check_invariants();
        db.get(b"a", 0).unwrap().expire_at = 0;
        assert_eq!(db.active_expire(100, Duration::from_secs(1)), 0);
        db.check_invariants();
        db.get(b"a", 0).unwrap().expire_at = 70;
        assert_eq!(db.active_expire(100, Duration::from_secs(1)), 1);
        db.check_invariants();
    }

    #[test]
    fn remove_reports_only_live_entries() {
        let mut db = Db::with_seed(1);
        db.set(b"a", s("1"), 10);
        db.set(b"b", s("2"), 0);
        assert_eq!(db.remove(b"a", 10), None);
        assert_eq!(db.remove(b"b", 10).map(|e| e.value), Some(s("2")));
        assert!(db.is_empty());
        db.check_invariants();
    }

    #[test]
    fn expiry_and_clear_signal_watchers() {
        let mut db = Db::with_seed(1);
        db.set(b"a", s("1"), 10);
        db.set(b"b", s("1"), 0);
        assert_eq!(db.watch(b"a"), 0);
        db.watch(b"b");
        db.watch(b"c");
        assert!(db.peek(b"a", 20).is_none());
        assert_eq!(db.watch_version(b"a"), 1);
        assert_eq!(db.clear(), 1);
        assert_eq!(db.watch_version(b"b"), 1);
        // c did not exist: flushing changed nothing about it.
        assert_eq!(db.watch_version(b"c"), 0);
    }

    #[test]
    fn active_expire_deletes_and_stops() {
        let mut db = Db::with_seed(7);
        for i in 0..1000 {
            db.set(format!("k{i}").as_bytes(), s("v"), if i % 2 == 0 { 50 } else { 0 });
        }
        for i in 0..100 {
            db.set(format!("late{i}").as_bytes(), s("v"), 1_000_000);
        }
        db.watch(b"k0");
        let mut total = 0;
        for _ in 0..100 {
            total += db.active_expire(60, Duration::from_secs(1));
        }
        assert_eq!(total, 500);
        assert_eq!(db.expired_keys(), 500);
        assert_eq!(db.len(), 600);
        assert_eq!(db.expire_keys_count(), 100);
        assert_eq!(db.watch_version(b"k0"), 1);
        db.check_invariants();
        // Nothing expired: one step and out.
        assert_eq!(db.active_expire(60, Duration::from_secs(1)), 0);
    }

    #[test]
    fn active_expire_with_zero_budget_still_progresses() {
        let mut db = Db::with_seed(7);
        for i in 0..200 {
            db.set(format!("k{i}").as_bytes(), s("v"), 5);
        }
        let mut total = 0;
        for _ in 0..1000 {
            total += db.active_expire(10, Duration::ZERO);
        }
        assert_eq!(total, 200);
        db.check_invariants();
    }

    #[test]
    fn active_expire_resumes_inside_a_big_slot() {
        let mut db = Db::with_seed(3);
        for i in 0..5000 {
            db.set(format!("{{tag}}{i}").as_bytes(), s("v"), if i % 100 == 0 { 5 } else { 1_000_000 });
        }
        // Each step samples 20 keys, finds few expired and stops: many calls needed,
        // each resuming where the last left off.
        let mut total = 0;
        let mut calls = 0;
        while total < 50 && calls < 10_000 {
            total += db.active_expire(10, Duration::from_secs(1));
            calls += 1;
        }
        assert_eq!(total, 50);
        assert!(calls > 10);
        db.check_invariants();
    }

    #[test]
    fn a_replica_hides_expired_keys_from_reads_and_deletes_them_on_writes() {
        let mut db = Db::with_seed(3);
        db.enable_effects();
        db.expiry = Expiry::HideOnRead;
        db.set(b"k", Value::string(b"v"), 100);
        db.set(b"w", Value::string(b"v"), 100);
        assert!(db.read(b"k", 50).is_some(), "not expired yet");
        assert!(db.read(b"k", 150).is_none(), "expired: a read does not see it");
        assert!(db.peek(b"k", 150).is_none() && !db.contains(b"k", 150));
        assert_eq!(db.len(), 2, "but the key stays until the master's DEL");
        let mut keys = Vec::new();
        db.keys_matching(b"*", 150, &mut keys);
        assert!(keys.is_empty(), "KEYS hides expired keys");
        assert_eq!(db.active_expire(150, Duration::from_secs(1)), 0, "no active cycle on a replica");
        assert!(db.random_key(150).is_some(), "every key expired: RANDOMKEY still answers one");
        assert_eq!(db.len(), 2, "and deletes none");
        assert!(db.get(b"k", 150).is_none(), "a write lookup deletes it");
        assert_eq!(db.len(), 1);
        let mut dels = crate::effects::Records::default();
        db.effects().unwrap().take_expired(&mut dels);
        assert_eq!(dels.decode(), vec![vec![b"DEL".to_vec(), b"k".to_vec()]]);
    }

    #[test]
    fn applying_a_masters_stream_never_expires_keys() {
        let mut db = Db::with_seed(4);
        db.expiry = Expiry::Never;
        db.set(b"k", Value::string(b"v"), 100);
        assert!(db.read(b"k", 1_000).is_some());
        assert!(db.get(b"k", 1_000).is_some());
        let mut keys = Vec::new();
        db.keys_matching(b"*", 1_000, &mut keys);
        assert_eq!(keys, vec![b"k".to_vec()]);
        assert_eq!(db.random_key(1_000), Some(b"k".to_vec()));
        assert_eq!(db.active_expire(1_000, Duration::from_secs(1)), 0);
        assert_eq!(db.len(), 1);
    }

    #[test]
    fn keys_matching_skips_expired() {
        let mut db = Db::with_seed(1);
        db.set(b"user:1", s("a"), 0);
        db.set(b"user:2", s("a"), 5);
        db.set(b"other", s("a"), 0);
        db.set(b"{t}x", s("a"), 0);
        db.set(b"{t}y", s("a"), 0);
        let mut out = Vec::new();
        db.keys_matching(b"user:*", 10, &mut out);
        assert_eq!(out, vec![b"user:1".to_vec()]);
        out.clear();
        db.keys_matching(b"*", 10, &mut out);
        out.sort();
        assert_eq!(out.len(), 4);
        out.clear();
        db.keys_matching(b"{t}*", 10, &mut out);
        out.sort();
        assert_eq!(out, vec![b"{t}x".to_vec(), b"{t}y".to_vec()]);
        // Expired keys are skipped but stay until something deletes them.
        assert_eq!(db.len(), 5);
    }

    #[test]
    fn slot_keys_are_the_slot() {
        let mut db = Db::with_seed(1);
        db.set(b"{a}1", s("a"), 0);
        db.set(b"{a}2", s("a"), 3);
        db.set(b"b", s("a"), 0);
        let slot = key_slot(b"a");
        let keys: Vec<&[u8]> = db.slot_keys(slot, 5).collect();
        assert_eq!(keys, vec![&b"{a}1"[..]]);
        assert_eq!(db.slot_len(slot), 2);
    }

    #[test]
    fn random_key_is_fair_and_skips_expired() {
        let mut db = Db::with_seed(11);
        assert_eq!(db.random_key(0), None);
        for i in 0..10 {
            db.set(format!("k{i}").as_bytes(), s("v"), 0);
        }
        let mut seen = HashMap::new();
        for _ in 0..10_000 {
            *seen.entry(db.random_key(0).unwrap()).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 10);
        assert!(seen.values().all(|&n| n > 700 && n < 1300), "{seen:?}");
        let mut db = Db::with_seed(11);
        for i in 0..50 {
            db.set(format!("x{i}").as_bytes(), s("v"), 5);
        }
        db.set(b"live", s("v"), 0);
        assert_eq!(db.random_key(10), Some(b"live".to_vec()));
        db.set(b"dead", s("v"), 5);
        assert_eq!(db.random_key(10), Some(b"live".to_vec()));
        db.remove(b"live", 10);
        assert_eq!(db.random_key(10), None);
        db.check_invariants();
    }

    #[test]
    fn random_key_in_a_sparse_table() {
        let mut db = Db::with_seed(5);
        for i in 0..3000 {
            db.set(format!("{{t}}{i}").as_bytes(), s("v"), 0);
        }
        for i in 1..3000 {
            db.remove(format!("{{t}}{i}").as_bytes(), 0);
        }
        assert_eq!(db.random_key(0), Some(b"{t}0".to_vec()));
        db.check_invariants();
    }

    #[test]
    fn access_tracking() {
        let mut db = Db::with_seed(1);
        db.set_clock(960_000);
        db.set(b"a", s("1"), 0);
        assert_eq!(db.idle_seconds(b"a", 970_000), Some(10));
        // peek and idle_seconds do not count as accesses.
        assert!(db.peek(b"a", 980_000).is_some());
        assert_eq!(db.idle_seconds(b"a", 980_000), Some(20));
        assert!(db.get(b"a", 990_000).is_some());
        assert_eq!(db.idle_seconds(b"a", 990_000), Some(0));
        // A new key starts at LFU_INIT_VAL; the first accesses always count (all
        // within minute 16, so no decay yet).
        assert_eq!(db.lfu_counter(b"a", 990_000), Some(6));
        for _ in 0..1000 {
            db.get(b"a", 990_000);
        }
        let c = db.lfu_counter(b"a", 990_000).unwrap();
        assert!(c > 8 && c < 30, "{c}");
        // Decay: one per idle minute.
        assert_eq!(db.lfu_counter(b"a", 990_000 + 3 * 60_000), Some(c - 3));
        assert_eq!(db.idle_seconds(b"nope", 0), None);
    }

    #[test]
    fn private_integer_copies() {
        let mut db = Db::with_seed(1);
        db.set_copy(b"a", Value::Int(5), 0);
        db.set_copy(b"s", s("str"), 0);
        assert!(db.peek_with_access(b"a", 0).unwrap().1.is_private_int());
        assert!(!db.peek_with_access(b"s", 0).unwrap().1.is_private_int());
        // Reading keeps the copy; a new value through the lent entry is a new object.
        db.get(b"a", 0);
        assert!(db.peek_with_access(b"a", 0).unwrap().1.is_private_int());
        db.get(b"a", 0).unwrap().value = Value::Int(6);
        assert!(!db.peek_with_access(b"a", 0).unwrap().1.is_private_int());
        db.set_copy(b"a", Value::Int(5), 0);
        db.set(b"a", Value::Int(5), 0);
        assert!(!db.peek_with_access(b"a", 0).unwrap().1.is_private_int());
        // A moved value stays what it was.
        db.set_copy(b"a", Value::Int(5), 0);
        let (e, acc) = db.take(b"a", 0).unwrap();
        db.put(b"b", e, acc);
        assert!(db.peek_with_access(b"b", 0).unwrap().1.is_private_int());
    }

    #[test]
    fn take_and_put_move_history() {
        let mut db = Db::with_seed(1);
        db.set_clock(5_000);
        db.set(b"a", s("1"), 99_999);
        let (e, a) = db.take(b"a", 10_000).unwrap();
        db.set(b"b", s("old"), 0);
        db.put(b"b", e, a);
        assert_eq!(db.idle_seconds(b"b", 10_000), Some(5));
        assert_eq!(db.peek(b"b", 10_000).map(|e| e.expire_at), Some(99_999));
        assert_eq!((db.len(), db.expire_keys_count()), (1, 1));
        db.check_invariants();
    }

    #[test]
    fn tables_shrink_after_mass_deletes() {
        let mut db = Db::with_seed(1);
        for i in 0..10_000 {
            db.set(format!("{{t}}{i}").as_bytes(), s("v"), 0);
        }
        let slot = key_slot(b"t") as usize;
        let big = db.sp.slots[slot].table.buckets();
        for i in 0..9_990 {
            db.remove(format!("{{t}}{i}").as_bytes(), 0);
        }
        assert!(db.sp.slots[slot].table.buckets() < big / 8);
        db.check_invariants();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, u64),
        Get(u8),
        Remove(u8),
        Expire(u8, u64),
        Persist(u8),
        /// Changes the expiry time through the entry `get` lends.
        Poke(u8, u64),
        Take(u8, u8),
        Active,
        Tick(u64),
        Random,
        Peek(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = 0u8..40;
        let exp = prop_oneof![Just(0u64), 1u64..200];
        prop_oneof![
            (key.clone(), exp.clone()).prop_map(|(k, e)| Op::Set(k, e)),
            key.clone().prop_map(Op::Get),
            key.clone().prop_map(Op::Remove),
            (key.clone(), 1u64..200).prop_map(|(k, e)| Op::Expire(k, e)),
            key.clone().prop_map(Op::Persist),
            (key.clone(), exp.clone()).prop_map(|(k, e)| Op::Poke(k, e)),
            (key.clone(), key.clone()).prop_map(|(a, b)| Op::Take(a, b)),
            Just(Op::Active),
            (0u64..20).prop_map(Op::Tick),
            Just(Op::Random),
            key.clone().prop_map(Op::Peek),
        ]
    }

    /// Keys spread over a few slots, some sharing one (hash tags), a few longer than a
    /// record keeps inline.
    fn key(k: u8) -> Vec<u8> {
        if k.is_multiple_of(3) {
            format!("{{same}}{k}").into_bytes()
        } else if k.is_multiple_of(7) {
            format!("long{k}:{}", "x".repeat(300)).into_bytes()
        } else {
            format!("key{k}").into_bytes()
        }
    }

    /// The value numbered `i`, in every form a record can take: integers, small
    /// strings around the 15-byte and 255-byte edges, long strings, a collection.
    fn val(i: u64) -> Value {
        let text = format!("{i}:");
        match i % 7 {
            0 => Value::Int(i as i64),
            1 => Value::string(text.as_bytes()),
            2 => Value::string(format!("{text:<16}").as_bytes()),
            3 => Value::string(format!("{text:<255}").as_bytes()),
            4 => Value::string(format!("{text:<256}").as_bytes()),
            5 => Value::Str { bytes: format!("{text:<40}").as_bytes().into(), raw: true },
            _ => {
                let mut h = crate::hash::HashValue::default();
                h.set(text.as_bytes(), b"v", &Default::default());
                Value::Hash(h)
            }
        }
    }

    proptest! {
        #[test]
        fn counts_match_a_model(ops in proptest::collection::vec(op(), 1..300), seed in any::<u64>()) {
            let mut db = Db::with_seed(seed);
            let mut model: HashMap<Vec<u8>, (u64, u64)> = HashMap::new(); // key -> (value id, expire_at)
            let mut now = 1u64;
            let live = |m: &HashMap<Vec<u8>, (u64, u64)>, k: &[u8], now: u64| {
                m.get(k).copied().filter(|&(_, e)| e == 0 || e > now)
            };
            for (i, o) in ops.into_iter().enumerate() {
                match o {
                    Op::Set(k, e) => {
                        let at = if e == 0 { 0 } else { now + e };
                        db.set(&key(k), val(i as u64), at);
                        model.insert(key(k), (i as u64, at));
                    }
                    Op::Get(k) => {
                        let got = db.get(&key(k), now).map(|e| (e.value.clone(), e.expire_at));
                        let want = live(&model, &key(k), now).map(|(v, e)| (val(v), e));
                        prop_assert_eq!(got, want);
                    }
                    Op::Remove(k) => {
                        let got = db.remove(&key(k), now).map(|e| e.expire_at);
                        let want = live(&model, &key(k), now).map(|(_, e)| e);
                        model.remove(&key(k));
                        prop_assert_eq!(got, want);
                    }
                    Op::Expire(k, e) => {
                        if db.contains(&key(k), now) {
                            db.set_expire(&key(k), now + e);
                            model.get_mut(&key(k)).unwrap().1 = now + e;
                        } else {
                            model.remove(&key(k));
                        }
                    }
                    Op::Persist(k) => {
                        let had = live(&model, &key(k), now).map(|(_, e)| e != 0).unwrap_or(false);
                        if live(&model, &key(k), now).is_some() {
                            prop_assert_eq!(db.persist(&key(k)), had);
                            model.get_mut(&key(k)).unwrap().1 = 0;
                        }
                    }
                    Op::Poke(k, e) => {
                        let at = if e == 0 { 0 } else { now + e };
                        if let Some(entry) = db.get(&key(k), now) {
                            entry.expire_at = at;
                            let m = model.get_mut(&key(k)).unwrap();
                            m.1 = at;
                            if e % 3 == 0 {
                                // A new value in place, of another form.
                                entry.value = val(i as u64);
                                m.0 = i as u64;
                            }
                        }
                    }
                    Op::Take(a, b) => {
                        let want = live(&model, &key(a), now);
                        model.remove(&key(a));
                        if let Some((e, acc)) = db.take(&key(a), now) {
                            prop_assert_eq!(Some(e.expire_at), want.map(|w| w.1));
                            db.put(&key(b), e, acc);
                            model.insert(key(b), want.unwrap());
                        } else {
                            prop_assert_eq!(want, None);
                        }
                    }
                    Op::Active => {
                        db.active_expire(now, Duration::from_secs(1));
                    }
                    Op::Tick(d) => now += d,
                    Op::Peek(k) => {
                        let got = db.peek(&key(k), now).map(|e| (e.value.clone(), e.expire_at));
                        let want = live(&model, &key(k), now).map(|(v, e)| (val(v), e));
                        prop_assert_eq!(got, want);
                    }
                    Op::Random => {
                        let got = db.random_key(now);
                        match got {
                            Some(k) => prop_assert!(live(&model, &k, now).is_some()),
                            None => prop_assert!(model.keys().all(|k| live(&model, k, now).is_none())),
                        }
                    }
                }
                if i % 16 == 0 {
                    // The count seen before settling a lent entry is the recounted one.
                    let before = db.expire_keys_count();
                    db.check_invariants();
                    prop_assert_eq!(before, db.expire_keys_count());
                }
                // Everything live in the model is live in the Db and nothing else is.
                let live_model = model.iter().filter(|(_, &(_, e))| e == 0 || e > now).count();
                let mut keys = Vec::new();
                db.keys_matching(b"*", now, &mut keys);
                prop_assert_eq!(keys.len(), live_model);
                for k in &keys {
                    prop_assert!(live(&model, k, now).is_some());
                }
            }
            db.check_invariants();
        }
    }
}
