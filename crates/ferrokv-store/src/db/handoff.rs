//! Handing one slot's keys from one shard's keyspace to another's (the hot-slot
//! balancer, see docs/architecture.md "Hot slots between cores").
//!
//! [`Db::take_slot`] empties a slot and returns what belonged to it; [`Db::put_slot`]
//! installs that in another keyspace whose slot is empty. The caller holds both
//! keyspaces' locks, so no command sees the slot half moved. What moves, per database:
//! the slot's records (key, entry, LRU/LFU history; a collection is moved, never
//! copied — one pointer — while a small string or integer stored in the record itself
//! is re-encoded into the receiving arena), the WATCH versions and blocked-client counts of its keys, and its keys'
//! pending ready marks; once, the client-tracking entries of its keys. The records are
//! re-inserted in the receiving keyspace's own arena and table (each keyspace hashes
//! with its own seed), so the cost is O(keys in the slot) small moves, not O(bytes).
//!
//! A keyspace with a snapshot running or a whole-slot migration capturing refuses
//! ([`Db::handoff_blocker`]): both walk this keyspace's own slots and would lose or
//! double the slot.

use super::{Access, Db, Entry, Watched, GROUP};
use crate::keybytes::KeyBytes;
use crate::slot::key_slot;
use crate::tracking::Reader;

/// One database's share of a moved slot.
struct DbPart {
    db: usize,
    nodes: Vec<(KeyBytes, Entry, Access)>,
    watched: Vec<(Box<[u8]>, Watched)>,
    blocked: Vec<(Box<[u8]>, u32)>,
}

/// Everything a slot held in one keyspace, in flight to another.
pub struct SlotHandoff {
    slot: u16,
    parts: Vec<DbPart>,
    ready: Vec<(usize, Box<[u8]>)>,
    tracked: Vec<(Box<[u8]>, Vec<Reader>)>,
}

impl SlotHandoff {
    /// Keys moved, all databases.
    pub fn keys(&self) -> usize {
        self.parts.iter().map(|p| p.nodes.len()).sum()
    }
}

impl Db {
    /// Why this keyspace cannot give or take a slot now (None: it can).
    pub fn handoff_blocker(&self) -> Option<&'static str> {
        if self.snapshot_active() {
            return Some("a snapshot is being written");
        }
        if self.capture_active() {
            return Some("a slot migration is capturing changes");
        }
        None
    }

    /// Empties `slot` in every database and returns what it held (see the module docs).
    /// The caller checked [`Db::handoff_blocker`].
    pub fn take_slot(&mut self, slot: u16) -> SlotHandoff {
        debug_assert!(self.handoff_blocker().is_none());
        let was = self.selected();
        let mut parts = Vec::new();
        for n in 0..self.databases() {
            let has_waits = {
                let w = if n == self.cur { &self.w } else { &self.parked_w[n] };
                !w.watched.is_empty() || !w.blocked.is_empty()
            };
            if !self.materialized(n) && !has_waits {
                continue;
            }
            self.select(n);
            self.settle();
            let s = slot as usize;
            let taken = self.sp.slots.take(s);
            let count = taken.table.len();
            let mut nodes = Vec::with_capacity(count);
            for i in taken.table.iter() {
                nodes.push(self.sp.arena.take(i));
            }
            self.sp.len -= count;
            self.sp.groups[s / GROUP] -= count;
            self.sp.expiring -= taken.expiring as usize;
            self.release_if_empty();
            let watched: Vec<_> = self.w.watched.extract_if(|k, _| key_slot(k) == slot).collect();
            let blocked: Vec<_> = self.w.blocked.extract_if(|k, _| key_slot(k) == slot).collect();
            if !nodes.is_empty() || !watched.is_empty() || !blocked.is_empty() {
                parts.push(DbPart { db: n, nodes, watched, blocked });
            }
        }
        self.select(was);
        let mut ready = Vec::new();
        self.ready.retain(|(d, k)| {
            if key_slot(k) == slot {
                ready.push((*d, k.clone()));
                false
            } else {
                true
            }
        });
        let tracked = self.tracking.take_slot(slot);
        SlotHandoff { slot, parts, ready, tracked }
    }

    /// Installs a slot taken from another keyspace with [`Db::take_slot`]. The slot is
    /// empty here (this keyspace did not own it).
    pub fn put_slot(&mut self, h: SlotHandoff) {
        let was = self.selected();
        let s = h.slot as usize;
        for part in h.parts {
            self.select(part.db);
            self.settle();
            debug_assert_eq!(self.sp.slots[s].table.len(), 0);
            for (key, mut entry, access) in part.nodes {
                let hash = self.hash(&key);
                self.insert_new(s, hash, &key, &mut entry, access);
            }
            for (k, w) in part.watched {
                let e = self.w.watched.entry(k).or_default();
                e.watchers += w.watchers;
                e.version = e.version.max(w.version);
            }
            for (k, b) in part.blocked {
                *self.w.blocked.entry(k).or_default() += b;
            }
        }
        self.select(was);
        self.ready.extend(h.ready);
        self.tracking.put_slot(h.tracked);
    }
}

#[cfg(test)]
mod tests {
    use crate::{key_slot, Db, Value};

    fn s(b: &str) -> Value {
        Value::string(b.as_bytes())
    }

    #[test]
    fn a_slot_moves_whole_with_its_watches_and_waits() {
        let (mut a, mut b) = (Db::with_seed(1), Db::with_seed(2));
        a.set_databases(2);
        b.set_databases(2);
        let slot = key_slot(b"{t}x");
        a.set(b"{t}x", s("1"), 0);
        a.set(b"{t}y", s("2"), 10_000);
        a.set(b"other", s("3"), 0);
        a.select(1);
        a.set(b"{t}z", s("4"), 0);
        a.select(0);
        let v = a.watch(b"{t}x");
        a.block_on(b"{t}w");
        a.touch(b"{t}w");
        assert!(a.handoff_blocker().is_none());
        let h = a.take_slot(slot);
        assert_eq!(h.keys(), 3);
        assert_eq!(a.slot_len(slot), 0);
        assert_eq!(a.len(), 1);
        assert!(!a.has_ready());
        a.check_invariants();
        b.put_slot(h);
        b.check_invariants();
        assert_eq!(b.len(), 2);
        assert!(b.contains(b"{t}x", 1));
        assert_eq!(b.peek(b"{t}y", 1).map(|e| e.expire_at), Some(10_000));
        assert_eq!(b.watch_version(b"{t}x"), v);
        b.touch(b"{t}x");
        assert_eq!(b.watch_version(b"{t}x"), v + 1);
        assert_eq!(a.watch_version(b"{t}x"), 0);
        assert!(b.has_ready());
        b.select(1);
        assert!(b.contains(b"{t}z", 1));
        b.check_invariants();
    }
}
