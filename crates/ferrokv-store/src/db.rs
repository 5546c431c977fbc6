//! One shard's keyspace: a hash table per hash slot, so that counting and walking the
//! keys of one slot (COUNTKEYSINSLOT, GETKEYSINSLOT, migration, SCAN) touches only it.

use crate::slot::{key_slot, SLOTS};
use crate::value::Value;

type Table = hashbrown::HashMap<Box<[u8]>, Entry, foldhash::fast::FixedState>;

#[derive(Clone, Debug)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry time in unix milliseconds; 0 = no expiry.
    pub expire_at: u64,
}

pub struct Db {
    slots: Vec<Table>,
    len: usize,
    /// WATCHed keys and how often each changed since it was first watched.
    watched: hashbrown::HashMap<Box<[u8]>, Watched>,
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
    pub fn new() -> Self {
        Db { slots: (0..SLOTS).map(|_| Table::default()).collect(), len: 0, watched: Default::default() }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The live entry at `key`; an expired one is deleted on the way (lazy expiry).
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        let t = &mut self.slots[key_slot(key) as usize];
        let expired = matches!(t.get(key), Some(e) if e.expire_at != 0 && e.expire_at <= now_ms);
        if expired {
            t.remove(key);
            self.len -= 1;
            return None;
        }
        t.get_mut(key)
    }

    /// Stores `value` at `key` with `expire_at` (0 = none), replacing any entry.
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: u64) {
        let t = &mut self.slots[key_slot(key) as usize];
        if t.insert(key.into(), Entry { value, expire_at }).is_none() {
            self.len += 1;
        }
    }

    pub fn remove(&mut self, key: &[u8], now_ms: u64) -> Option<Entry> {
        let t = &mut self.slots[key_slot(key) as usize];
        let e = t.remove(key)?;
        self.len -= 1;
        if e.expire_at != 0 && e.expire_at <= now_ms {
            return None;
        }
        Some(e)
    }

    pub fn clear(&mut self) {
        for t in &mut self.slots {
            *t = Table::default();
        }
        self.len = 0;
    }

    pub fn slot_len(&self, slot: u16) -> usize {
        self.slots[slot as usize].len()
    }

    /// Notes a change of `key` for WATCH.
    #[inline]
    pub fn touch(&mut self, key: &[u8]) {
        if self.watched.is_empty() {
            return;
        }
        if let Some(w) = self.watched.get_mut(key) {
            w.version += 1;
        }
    }

    /// Starts watching `key`; returns its current change version.
    pub fn watch(&mut self, key: &[u8]) -> u64 {
        let w = self.watched.entry(key.into()).or_default();
        w.watchers += 1;
        w.version
    }

    /// Stops one watcher of `key`.
    pub fn unwatch(&mut self, key: &[u8]) {
        if let Some(w) = self.watched.get_mut(key) {
            w.watchers -= 1;
            if w.watchers == 0 {
                self.watched.remove(key);
            }
        }
    }

    /// The change version of a watched key (0 when nobody watches it).
    pub fn watch_version(&self, key: &[u8]) -> u64 {
        self.watched.get(key).map_or(0, |w| w.version)
    }
}
