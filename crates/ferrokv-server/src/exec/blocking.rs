//! Clients blocked on keys (BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, BZMPOP, ...).
//!
//! A blocking command runs like any data command. When it finds nothing to serve it
//! returns `Blocked::Wait`, and a [`Waiter`] is registered, in arrival order, on every
//! key it waits for, in the registry of the shard that owns that key; `Db::block_on`
//! makes that Db note when the key changes (`Db::touch`). Whoever changed a Db that has
//! ready keys — the owning shard, or another thread holding its lock for a multi-shard
//! command or EXEC — serves that key's waiters right away, oldest first, by running
//! their command again under the same lock, as Redis serves blocked clients right after
//! the command that pushed. The reply goes to the waiter's home shard like the reply
//! of a forwarded command.
//!
//! A waiter is served once: whoever serves it, times it out (its home shard) or drops it
//! (disconnection) first claims it (`claimed`). Registrations of claimed waiters are
//! removed lazily.
//!
//! As in Redis, a waiter is served from the key that became ready, and only if that key
//! holds the type it waits for (a list, or a sorted set for BZPOP*): its command runs
//! again restricted to that key. So a waiter whose keys live on several shards is served
//! on the shard of the ready key alone; BLMOVE and BRPOPLPUSH, which also write to a
//! destination that may live on another shard, are instead retried by their home shard,
//! which locks every shard involved.

use crate::node::ShardId;
use ferrokv_commands::table::{Handler, Wakes};
use ferrokv_commands::CommandSpec;
use ferrokv_resp::{OwnedArgs, Proto, ReplyBuf};
use ferrokv_store::Db;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The registrations on one slot's keys, (database, key) → waiters in arrival order, as
/// a slot handoff carries them between shards.
pub type SlotWaiters = Vec<((usize, Vec<u8>), VecDeque<Arc<Waiter>>)>;

pub struct Waiter {
    pub home: ShardId,
    pub token: u64,
    pub seq: u64,
    pub proto: Proto,
    pub spec: &'static CommandSpec,
    pub args: OwnedArgs,
    pub claimed: AtomicBool,
    /// Its keys are on more than one shard.
    pub multi_shard: bool,
    /// The keys it waits on.
    pub keys: Vec<Vec<u8>>,
    /// The database of those keys (its client's, when it blocked).
    pub db: usize,
}

impl Waiter {
    /// How a change of key serves this waiter (its command's table entry says).
    pub fn wakes(&self) -> Option<Wakes> {
        match self.spec.handler {
            Handler::Blocking(_, w) => Some(w),
            _ => None,
        }
    }

    pub fn claim(&self) -> bool {
        self.claimed.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub fn unclaim(&self) {
        self.claimed.store(false, Ordering::Release);
    }

    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Served by retrying on the home shard rather than on the key's shard.
    pub fn retried_at_home(&self) -> bool {
        self.multi_shard && self.wakes() == Some(Wakes::ListMove)
    }

    /// Whether the value now at a ready key can serve this waiter: Redis serves a blocked
    /// client only from a key holding the type it waits for (a list for BLPOP, a sorted set
    /// for BZPOPMIN); otherwise it keeps waiting.
    pub fn serves_from(&self, v: Option<&ferrokv_store::Value>) -> bool {
        use ferrokv_store::Value;
        match self.wakes() {
            Some(Wakes::ZSetPop | Wakes::ZSetMpop) => matches!(v, Some(Value::ZSet(_))),
            _ => matches!(v, Some(Value::List(_))),
        }
    }

    /// The command restricted to the ready `key`: Redis pops from the key that became
    /// ready, not from the first non-empty key of the command.
    pub fn args_for(&self, key: &[u8]) -> OwnedArgs {
        let a = self.args.args();
        let n = a.len();
        match self.wakes() {
            Some(Wakes::ListPop | Wakes::ZSetPop) => OwnedArgs::from_slices([a.get(0), key, a.get(n - 1)]),
            Some(Wakes::ListMpop | Wakes::ZSetMpop) => {
                // NAME timeout numkeys key... rest
                let numkeys = ferrokv_commands::util::parse_i64(a.get(2)).unwrap_or(0).max(0) as usize;
                let mut o = OwnedArgs::from_slices([a.get(0), a.get(1), b"1".as_slice(), key]);
                for i in (3 + numkeys).min(n)..n {
                    o.push(a.get(i));
                }
                o
            }
            _ => self.args.clone(),
        }
    }

    /// The reply when the timeout passes first: a null array for every blocking
    /// command in Redis 7.0 (BLMOVE and BRPOPLPUSH included).
    pub fn timeout_reply(&self) -> Vec<u8> {
        let mut r = ReplyBuf::new(self.proto);
        r.null_array();
        r.buf
    }
}

/// The waiters registered on one shard's keys, oldest first per (database, key). The
/// Db given to each call may have any database selected; it is selected again after.
#[derive(Default)]
pub struct Waiters {
    by_key: HashMap<(usize, Vec<u8>), VecDeque<Arc<Waiter>>>,
}

/// Runs `f` on `db` with database `n` selected, then selects the one before again.
fn in_db<R>(db: &mut Db, n: usize, f: impl FnOnce(&mut Db) -> R) -> R {
    let was = db.selected();
    db.select(n);
    let r = f(db);
    db.select(was);
    r
}

impl Waiters {
    pub fn register(&mut self, db: &mut Db, key: &[u8], w: &Arc<Waiter>) {
        in_db(db, w.db, |db| db.block_on(key));
        self.by_key.entry((w.db, key.to_vec())).or_default().push_back(w.clone());
    }

    /// The live waiters of `key` in database `n`, oldest first; claimed ones are
    /// dropped on the way.
    pub fn live(&mut self, db: &mut Db, n: usize, key: &[u8]) -> Vec<Arc<Waiter>> {
        let id = (n, key.to_vec());
        let Some(q) = self.by_key.get_mut(&id) else { return Vec::new() };
        let before = q.len();
        q.retain(|w| !w.is_claimed());
        let gone = before - q.len();
        if gone > 0 {
            in_db(db, n, |db| (0..gone).for_each(|_| db.unblock(key)));
        }
        let live: Vec<_> = q.iter().cloned().collect();
        if q.is_empty() {
            self.by_key.remove(&id);
        }
        live
    }

    /// Removes `w` from `key`'s queue.
    pub fn remove(&mut self, db: &mut Db, key: &[u8], w: &Arc<Waiter>) {
        let id = (w.db, key.to_vec());
        if let Some(q) = self.by_key.get_mut(&id) {
            if let Some(i) = q.iter().position(|x| Arc::ptr_eq(x, w)) {
                q.remove(i);
                in_db(db, w.db, |db| db.unblock(key));
            }
            if q.is_empty() {
                self.by_key.remove(&id);
            }
        }
    }

    /// Drops every claimed waiter (periodic clean-up of timed-out and gone clients).
    pub fn sweep(&mut self, db: &mut Db) {
        let keys: Vec<(usize, Vec<u8>)> = self.by_key.keys().cloned().collect();
        for (n, k) in keys {
            self.live(db, n, &k);
        }
    }

    /// Removes and returns the registrations on keys of `slot` (a slot handoff; the
    /// keyspace's blocked counts move with its keys, see `Db::take_slot`).
    pub fn take_slot(&mut self, slot: u16) -> SlotWaiters {
        if self.by_key.is_empty() {
            return Vec::new();
        }
        self.by_key.extract_if(|(_, k), _| ferrokv_store::key_slot(k) == slot).collect()
    }

    /// Adds registrations taken from another shard with [`Waiters::take_slot`].
    pub fn put_slot(&mut self, regs: SlotWaiters) {
        for (id, q) in regs {
            self.by_key.entry(id).or_default().extend(q);
        }
    }

    pub fn len(&self) -> usize {
        self.by_key.values().map(|q| q.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}
