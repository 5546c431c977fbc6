//! Client-side caching (CLIENT TRACKING): one shard's share of Redis's tracking table.
//!
//! Redis keeps one table, key → the ids of the clients that read it, and sends each of
//! them an invalidation when the key changes (`signalModifiedKey`), expires or is
//! evicted. Here every shard's [`crate::Db`] holds the entries of its own keys, so a
//! read remembers its keys and a write finds their readers under the lock the command
//! already holds: nothing node-wide is touched on the request path. What a change owes
//! is kept in the table as [`Invalidation`]s (and, for clients in BCAST mode, as keys
//! matching one of the node's prefixes) until the server takes them ([`Tracking::take`])
//! and sends them out.

use std::collections::HashMap;
use std::sync::Arc;

/// A client that read a key: its id, its home shard and its connection's token there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    pub id: u64,
    pub home: u32,
    pub token: u64,
}

/// A tracked key that changed, with the clients that must hear of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalidation {
    pub key: Vec<u8>,
    /// Its readers, in the order they first read it.
    pub readers: Vec<Reader>,
    /// The client whose command was running when it changed (0: none): a NOLOOP
    /// client does not hear of its own changes.
    pub current: u64,
}

/// What a shard owes tracking clients since the last [`Tracking::take`].
#[derive(Default, Debug)]
pub struct Owed {
    /// Keys read by clients in default mode that changed, in the order they changed.
    pub keys: Vec<Invalidation>,
    /// Changed keys that match a BCAST prefix, with the client that changed them (0 for
    /// an expiry or eviction), in the order they changed.
    pub bcast: Vec<(Vec<u8>, u64)>,
    /// The keyspace was flushed: every tracking client gets a null invalidation.
    pub flushed: bool,
}

impl Owed {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.bcast.is_empty() && !self.flushed
    }
}

#[derive(Default)]
pub struct Tracking {
    table: HashMap<Box<[u8]>, Vec<Reader>>,
    /// Entries (key, reader) in `table`: INFO's `tracking_total_items`.
    items: usize,
    /// The node's BCAST prefixes (a copy the server keeps current).
    prefixes: Arc<[Box<[u8]>]>,
    /// The client running the current command (0: none), set around each command.
    pub current: u64,
    owed: Owed,
}

impl Tracking {
    /// Remembers that `reader` read `key` (Redis's `trackingRememberKeys`).
    pub fn remember(&mut self, key: &[u8], reader: Reader) {
        let readers = match self.table.get_mut(key) {
            Some(r) => r,
            None => self.table.entry(key.into()).or_default(),
        };
        if !readers.iter().any(|r| r.id == reader.id) {
            readers.push(reader);
            self.items += 1;
        }
    }

    /// Whether a change must be looked at: keys are tracked or BCAST prefixes exist.
    #[inline]
    pub fn active(&self) -> bool {
        !self.table.is_empty() || !self.prefixes.is_empty()
    }

    /// `key` changed (Redis's `trackingInvalidateKey`): its readers are owed an
    /// invalidation and forgotten; a key under a BCAST prefix is owed to the prefix's
    /// clients. `by` is the client that changed it (0: expiry, eviction).
    pub fn changed(&mut self, key: &[u8], by: u64) {
        if self.prefixes.iter().any(|p| key.starts_with(p)) {
            self.owed.bcast.push((key.to_vec(), by));
        }
        if let Some(readers) = self.table.remove(key) {
            self.items -= readers.len();
            self.owed.keys.push(Invalidation { key: key.to_vec(), readers, current: self.current });
        }
    }

    /// The keyspace was emptied (FLUSHALL, FLUSHDB): the table goes, every tracking
    /// client is owed a null invalidation.
    pub fn flushed(&mut self) {
        self.table = HashMap::new();
        self.items = 0;
        self.owed.flushed = true;
    }

    /// Forgets one tracked key as if it changed (`tracking-table-max-keys`); returns
    /// whether there was one.
    pub fn evict_one(&mut self) -> bool {
        let Some(key) = self.table.keys().next().cloned() else { return false };
        let current = std::mem::replace(&mut self.current, 0);
        if let Some(readers) = self.table.remove(&key) {
            self.items -= readers.len();
            self.owed.keys.push(Invalidation { key: key.into_vec(), readers, current: 0 });
        }
        self.current = current;
        true
    }

    /// Takes what is owed (empty when nothing is).
    pub fn take(&mut self) -> Owed {
        std::mem::take(&mut self.owed)
    }

    /// Takes the flush flag alone (a command that flushed several keyspaces owes one
    /// null per client).
    pub fn take_flushed(&mut self) -> bool {
        std::mem::take(&mut self.owed.flushed)
    }

    pub fn owes(&self) -> bool {
        !self.owed.is_empty()
    }

    /// Replaces the copy of the node's BCAST prefixes.
    pub fn set_prefixes(&mut self, prefixes: Arc<[Box<[u8]>]>) {
        self.prefixes = prefixes;
    }

    /// Removes and returns the entries of the keys of `slot` (the slot moves to another
    /// shard's keyspace, see `Db::take_slot`).
    pub fn take_slot(&mut self, slot: u16) -> Vec<(Box<[u8]>, Vec<Reader>)> {
        if self.table.is_empty() {
            return Vec::new();
        }
        let out: Vec<_> = self.table.extract_if(|k, _| crate::slot::key_slot(k) == slot).collect();
        self.items -= out.iter().map(|(_, r)| r.len()).sum::<usize>();
        out
    }

    /// Adds entries taken from another keyspace with [`Tracking::take_slot`].
    pub fn put_slot(&mut self, entries: Vec<(Box<[u8]>, Vec<Reader>)>) {
        for (k, readers) in entries {
            for r in readers {
                self.remember(&k, r);
            }
        }
    }

    /// Keys in the table (INFO's `tracking_total_keys`).
    pub fn keys(&self) -> usize {
        self.table.len()
    }

    /// (key, reader) entries (INFO's `tracking_total_items`).
    pub fn items(&self) -> usize {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(id: u64) -> Reader {
        Reader { id, home: 0, token: id }
    }

    #[test]
    fn a_change_owes_each_reader_once_and_forgets_the_key() {
        let mut t = Tracking::default();
        assert!(!t.active());
        t.remember(b"k", reader(1));
        t.remember(b"k", reader(2));
        t.remember(b"k", reader(1));
        t.remember(b"j", reader(1));
        assert_eq!((t.keys(), t.items()), (2, 3));
        t.current = 2;
        t.changed(b"k", 2);
        t.changed(b"k", 2);
        t.changed(b"other", 2);
        assert_eq!((t.keys(), t.items()), (1, 1));
        let owed = t.take();
        assert_eq!(owed.keys.len(), 1, "the second change finds no reader left");
        assert_eq!(owed.keys[0].readers, [reader(1), reader(2)]);
        assert_eq!(owed.keys[0].current, 2);
        assert!(owed.bcast.is_empty() && !owed.flushed);
        assert!(!t.owes());
    }

    #[test]
    fn prefixes_collect_changed_keys_with_who_changed_them() {
        let mut t = Tracking::default();
        t.set_prefixes(Arc::from(vec![Box::from(&b"a:"[..]), Box::from(&b""[..])]));
        assert!(t.active());
        t.changed(b"a:1", 7);
        t.changed(b"b", 0);
        let owed = t.take();
        // "a:1" matches both prefixes but is owed once: grouping by prefix is the server's.
        assert_eq!(owed.bcast, [(b"a:1".to_vec(), 7), (b"b".to_vec(), 0)]);
    }

    #[test]
    fn flush_and_eviction() {
        let mut t = Tracking::default();
        t.remember(b"a", reader(1));
        t.remember(b"b", reader(1));
        assert!(t.evict_one());
        assert_eq!(t.keys(), 1);
        t.flushed();
        assert_eq!((t.keys(), t.items()), (0, 0));
        let owed = t.take();
        assert!(owed.flushed);
        assert_eq!(owed.keys.len(), 1);
        assert!(!t.evict_one());
    }
}
