//! Where a keyspace's entries live: variable-size records in size-classed chunks,
//! addressed by the 4-byte handles the slot tables hold.
//!
//! A record is the key, the value and what the keyspace remembers about them, written
//! as bytes (all multi-byte fields little-endian, read unaligned unless noted):
//!
//! ```text
//! 0      flags: kind (2 bits: small string, integer, full), expiry present,
//!        raw string, private integer (OBJECT REFCOUNT), key kept on the heap
//! 1      key length (inline keys, up to 255 bytes)
//! 2..4   snapshot epoch the entry was last saved for (db/snapshot.rs)
//! 4..8   access bits: LRU clock (24) and LFU counter (8)
//! small string:  [expire_at u64 if present] [value length u8] [key] [value bytes]
//! integer:       [expire_at u64 if present] [i64] [key]
//! full:          [Entry, 40 bytes, 8-aligned: any value, expire_at inside] [key]
//! ```
//!
//! A key longer than 255 bytes is a heap allocation whose pointer and length take its
//! place (16 bytes). Strings up to [`SMALL_STR`] bytes and integers are *small*: their
//! bytes are the record, so a 14-byte key with a 16-byte value is a 40-byte record (48
//! with a TTL) where the fixed node it replaces took 72 bytes plus the value's own
//! allocation past 15 bytes. Collections and longer strings are *full* records holding
//! a real [`Entry`], which [`crate::Db::get`] lends out in place; a small record is
//! decoded into the keyspace's scratch entry when lent and written back when the
//! keyspace next settles (see `Db::settle`).
//!
//! Records of one size class (multiples of 8 bytes) share 32 KiB chunks; a handle is
//! the chunk's number and the record's place in it, so the address of an entry is
//! arithmetic on the handle and one load from the (small, hot) chunk table — what
//! `Db::prefetch` needs to fetch it ahead. Freed records go on their class's free list
//! and are reused by the next record of that size; chunks go back to the allocator
//! when the keyspace empties (as the fixed-node arena did).
//!
//! # Compaction
//! A keyspace whose sizes churn (values that grow or shrink move to another class,
//! keys deleted at random) leaves free records spread over many chunks, none of which
//! can go back. [`Arena::plan`] picks, in a class with many free records, the chunks
//! with the fewest live ones, as many as the class's other free records can take in,
//! and takes them off the free list (nothing new lands there); the keyspace then moves
//! their live records one at a time ([`Arena::next_to_move`], [`Arena::relocate`]:
//! a copy of the record's bytes into a free record of the same class, and the slot
//! table's bucket gets the new handle), and a chunk whose last record left goes back
//! to the allocator at once. Its number is reused by the next chunk made, so handles
//! stay arithmetic. Moving a record is a byte copy: a full record's `Entry` and a long
//! key's allocation are owned by value, nothing points into a record but its bucket
//! (and a lent entry, settled before a compaction step).

use super::{Access, Entry};
use crate::keybytes::KeyBytes;
use crate::value::{StrBytes, Value};
use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Longest string value kept in the record itself (its length is one byte).
pub const SMALL_STR: usize = 255;
/// Longest key kept in the record itself.
const INLINE_KEY: usize = 255;

const KIND: u8 = 0b11;
const KIND_STR: u8 = 0;
const KIND_INT: u8 = 1;
const KIND_FULL: u8 = 2;
const F_EXPIRE: u8 = 1 << 2;
const F_RAW: u8 = 1 << 3;
const F_PRIVATE_INT: u8 = 1 << 4;
const F_LONG_KEY: u8 = 1 << 5;
/// The flags byte of a freed record (no live record has every bit set: kind 3 is
/// unused), so a chunk being emptied can be walked for its live records.
const FREE: u8 = 0xFF;

const HEADER: usize = 8;
const ENTRY: usize = std::mem::size_of::<Entry>();

const CHUNK_BYTES: usize = 32 * 1024;
const CHUNK_WORDS: usize = CHUNK_BYTES / 8;
/// Records per chunk are at most 32 KiB / 16 B = 2048.
const SLOT_BITS: u32 = 11;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
/// The largest record: a small string with an expiry, a 255-byte key and value.
const MAX_RECORD: usize = HEADER + 8 + 1 + INLINE_KEY + SMALL_STR;
const MIN_UNITS: usize = 2;
const CLASSES: usize = MAX_RECORD.div_ceil(8) - MIN_UNITS + 1;

struct Chunk {
    /// Capacity `CHUNK_WORDS`, length 0: records are written into the capacity, so the
    /// pages of a chunk are touched as it fills, not zeroed up front.
    mem: Vec<u64>,
    /// Bytes per record.
    size: u32,
    /// Records handed out from this chunk so far (bump allocation).
    used: u32,
    /// Records of this chunk live now.
    live: u32,
    /// Being emptied by compaction: its free records are not on the free list.
    evacuating: bool,
}

#[derive(Default)]
struct Class {
    free: Vec<u32>,
    /// The chunk being filled.
    open: Option<u32>,
    /// Chunks of this class holding memory.
    chunks: u32,
}

pub(super) struct Arena {
    chunks: Vec<Chunk>,
    classes: Vec<Class>,
    /// Bytes of the records live now (MEMORY USAGE, tests).
    live_bytes: usize,
    /// Bytes of the chunks held.
    held: usize,
    /// The chunks' bytes no live record takes (free records, the open chunks' unused
    /// ends), as last added to `slack`: memory the keyspace holds but no key uses,
    /// reused by the next records as freed memory is by the allocator, so `maxmemory`
    /// leaves it out (it is the allocator's free memory in Redis, not `used_memory`).
    reported: usize,
    /// The sum of `held - live_bytes` over every arena of one `Db` (all of them are
    /// changed under that Db's lock), readable from any thread.
    slack: Arc<AtomicU64>,
    /// Numbers of chunks whose memory went back (compaction), for the next new chunk.
    spare: Vec<u32>,
    /// Chunks being emptied, the last one first; `evac_at` is the next record of it
    /// to look at.
    evac: Vec<u32>,
    evac_at: u32,
}

/// What a compaction plan found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactPlan {
    /// Chunks chosen to be emptied.
    pub chunks: usize,
    /// Live records in them, to be moved.
    pub records: usize,
}

/// Where a key being written comes from.
pub(super) enum KeySrc<'k> {
    Bytes(&'k [u8]),
    /// A heap key taken from another record: its allocation moves with it.
    Long(*mut u8, usize),
}

impl KeySrc<'_> {
    fn stored_len(&self) -> usize {
        match self {
            KeySrc::Bytes(k) if k.len() <= INLINE_KEY => k.len(),
            _ => 16,
        }
    }
}

/// How a value is stored.
enum Form<'v> {
    Str(&'v [u8], bool),
    Int(i64),
    Full,
}

fn form(v: &Value) -> Form<'_> {
    match v {
        Value::Int(n) => Form::Int(*n),
        Value::Str { bytes, raw } if bytes.len() <= SMALL_STR => Form::Str(bytes, *raw),
        _ => Form::Full,
    }
}

fn class_of(size: usize) -> usize {
    size.div_ceil(8).max(MIN_UNITS) - MIN_UNITS
}

fn class_size(class: usize) -> usize {
    (class + MIN_UNITS) * 8
}

#[inline(always)]
fn rd_u64(p: *const u8) -> u64 {
    // SAFETY: callers pass a pointer to 8 bytes inside a live record.
    unsafe { std::ptr::read_unaligned(p as *const u64) }
}

#[inline(always)]
fn rd_usize(p: *const u8) -> usize {
    // SAFETY: as rd_u64.
    unsafe { std::ptr::read_unaligned(p as *const usize) }
}

/// A live record, borrowed from its arena.
#[derive(Clone, Copy)]
pub(super) struct Rec<'a> {
    p: *const u8,
    _arena: PhantomData<&'a Arena>,
}

impl<'a> Rec<'a> {
    #[inline(always)]
    fn byte(self, i: usize) -> u8 {
        // SAFETY: a record is at least 16 bytes; `i` < 8 here.
        unsafe { *self.p.add(i) }
    }

    #[inline(always)]
    fn flags(self) -> u8 {
        self.byte(0)
    }

    #[inline(always)]
    fn expiry_bytes(self) -> usize {
        if self.flags() & F_EXPIRE != 0 {
            8
        } else {
            0
        }
    }

    #[inline(always)]
    fn key_offset(self) -> usize {
        match self.flags() & KIND {
            KIND_STR => HEADER + self.expiry_bytes() + 1,
            KIND_INT => HEADER + self.expiry_bytes() + 8,
            _ => HEADER + ENTRY,
        }
    }

    #[inline(always)]
    fn key_stored_len(self) -> usize {
        if self.flags() & F_LONG_KEY != 0 {
            16
        } else {
            self.byte(1) as usize
        }
    }

    #[inline]
    pub fn key(self) -> &'a [u8] {
        let at = self.key_offset();
        // SAFETY: the key's bytes (or its heap pointer and length) were written at
        // `at` when the record was, and live as long as the record.
        unsafe {
            if self.flags() & F_LONG_KEY != 0 {
                let ptr = rd_usize(self.p.add(at)) as *const u8;
                let len = rd_usize(self.p.add(at + 8));
                std::slice::from_raw_parts(ptr, len)
            } else {
                std::slice::from_raw_parts(self.p.add(at), self.byte(1) as usize)
            }
        }
    }

    /// The full record's entry.
    #[inline]
    pub fn full(self) -> Option<&'a Entry> {
        // SAFETY: a full record holds an initialised Entry at offset 8, 8-aligned
        // (chunks are u64 arrays, record sizes multiples of 8).
        (self.flags() & KIND == KIND_FULL).then(|| unsafe { &*(self.p.add(HEADER) as *const Entry) })
    }

    #[inline]
    pub fn expire_at(self) -> u64 {
        match self.full() {
            Some(e) => e.expire_at,
            // SAFETY: bytes 8..16 hold the expiry when the flag says so.
            None if self.flags() & F_EXPIRE != 0 => rd_u64(unsafe { self.p.add(HEADER) }),
            None => 0,
        }
    }

    #[inline]
    pub fn is_expired(self, now_ms: u64) -> bool {
        let at = self.expire_at();
        at != 0 && at <= now_ms
    }

    #[inline]
    pub fn access(self) -> Access {
        // SAFETY: bytes 2..8 are the header's.
        let (snap, bits) = unsafe {
            (
                std::ptr::read_unaligned(self.p.add(2) as *const u16),
                std::ptr::read_unaligned(self.p.add(4) as *const u32),
            )
        };
        Access { bits, private_int: self.flags() & F_PRIVATE_INT != 0, snap }
    }

    #[inline]
    pub fn snap(self) -> u16 {
        // SAFETY: bytes 2..4 are the header's.
        unsafe { std::ptr::read_unaligned(self.p.add(2) as *const u16) }
    }

    /// Whether the value is stored in the record's bytes (no heap of its own).
    pub fn is_small(self) -> bool {
        self.flags() & KIND != KIND_FULL
    }

    pub fn type_name(self) -> &'static str {
        match self.full() {
            Some(e) => e.value.type_name(),
            None => "string",
        }
    }

    /// A small string's bytes.
    #[inline]
    fn small_str(self) -> &'a [u8] {
        let at = self.key_offset();
        // SAFETY: the length byte sits just before the key, the bytes just after it.
        unsafe {
            let len = *self.p.add(at - 1) as usize;
            std::slice::from_raw_parts(self.p.add(at + self.key_stored_len()), len)
        }
    }

    #[inline]
    fn small_int(self) -> i64 {
        // SAFETY: the integer's 8 bytes sit just before the key.
        rd_u64(unsafe { self.p.add(self.key_offset() - 8) }) as i64
    }

    /// The entry, borrowed from a full record or decoded from a small one.
    pub fn entry(self) -> Cow<'a, Entry> {
        match self.full() {
            Some(e) => Cow::Borrowed(e),
            None => {
                let mut e = Entry { value: Value::Int(0), expire_at: 0 };
                self.decode_into(&mut e);
                Cow::Owned(e)
            }
        }
    }

    /// Decodes a small record into `out`, reusing a string buffer it holds.
    #[inline]
    pub fn decode_into(self, out: &mut Entry) {
        debug_assert!(self.is_small());
        out.expire_at = self.expire_at();
        if self.flags() & KIND == KIND_INT {
            out.value = Value::Int(self.small_int());
            return;
        }
        let b = self.small_str();
        let raw = self.flags() & F_RAW != 0;
        if let Value::Str { bytes: StrBytes::Heap(v), raw: r } = &mut out.value {
            if b.len() > StrBytes::INLINE {
                v.clear();
                v.extend_from_slice(b);
                *r = raw;
                return;
            }
        }
        out.value = Value::Str { bytes: b.into(), raw };
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        let g = self.slack.load(Ordering::Relaxed);
        self.slack.store(g.wrapping_sub(self.reported as u64), Ordering::Relaxed);
    }
}

impl Arena {
    #[cfg(test)]
    pub fn new() -> Self {
        Self::with_slack(Arc::default())
    }

    /// An empty arena whose unused chunk bytes add to `slack`.
    pub fn with_slack(slack: Arc<AtomicU64>) -> Self {
        Arena {
            chunks: Vec::new(),
            classes: (0..CLASSES).map(|_| Class::default()).collect(),
            live_bytes: 0,
            held: 0,
            reported: 0,
            slack,
            spare: Vec::new(),
            evac: Vec::new(),
            evac_at: 0,
        }
    }

    /// Chunk bytes no live record takes (what this arena added to `slack`).
    pub fn unused_bytes(&self) -> usize {
        self.reported
    }

    /// Brings `slack` up to date (the Db's lock is held: a load and a store).
    #[inline]
    fn report(&mut self) {
        let now = self.held - self.live_bytes;
        if now != self.reported {
            let g = self.slack.load(Ordering::Relaxed);
            self.slack.store(g.wrapping_add(now as u64).wrapping_sub(self.reported as u64), Ordering::Relaxed);
            self.reported = now;
        }
    }

    /// Bytes of chunk memory held (records live and free).
    pub fn chunk_bytes(&self) -> usize {
        self.classes.iter().map(|c| c.chunks as usize).sum::<usize>() * CHUNK_BYTES
    }

    #[inline(always)]
    fn ptr(&self, h: u32) -> *mut u8 {
        let c = &self.chunks[(h >> SLOT_BITS) as usize];
        (c.mem.as_ptr() as *mut u8).wrapping_add((h & SLOT_MASK) as usize * c.size as usize)
    }

    #[inline(always)]
    pub fn get(&self, h: u32) -> Rec<'_> {
        Rec { p: self.ptr(h), _arena: PhantomData }
    }

    /// The record's size in bytes (its class).
    pub fn size(&self, h: u32) -> usize {
        self.chunks[(h >> SLOT_BITS) as usize].size as usize
    }

    /// Where record `h` is and how long, for a prefetch (a hint: no promise).
    #[inline]
    pub fn address(&self, h: u32) -> Option<(*const u8, usize)> {
        let c = self.chunks.get((h >> SLOT_BITS) as usize)?;
        Some(((c.mem.as_ptr() as *const u8).wrapping_add((h & SLOT_MASK) as usize * c.size as usize), c.size as usize))
    }

    pub fn live_bytes(&self) -> usize {
        self.live_bytes
    }

    /// A full record's entry, to change in place.
    #[inline]
    pub fn full_mut(&mut self, h: u32) -> Option<&mut Entry> {
        let p = self.ptr(h);
        // SAFETY: as Rec::full; `&mut self` makes the borrow unique.
        (self.get(h).flags() & KIND == KIND_FULL).then(|| unsafe { &mut *(p.add(HEADER) as *mut Entry) })
    }

    pub fn set_access(&mut self, h: u32, a: Access) {
        let p = self.ptr(h);
        // SAFETY: header bytes of a live record.
        unsafe {
            std::ptr::write_unaligned(p.add(2) as *mut u16, a.snap);
            std::ptr::write_unaligned(p.add(4) as *mut u32, a.bits);
            let f = *p;
            *p = if a.private_int { f | F_PRIVATE_INT } else { f & !F_PRIVATE_INT };
        }
    }

    pub fn set_snap(&mut self, h: u32, snap: u16) {
        let p = self.ptr(h);
        // SAFETY: header bytes of a live record.
        unsafe { std::ptr::write_unaligned(p.add(2) as *mut u16, snap) }
    }

    /// Sets a small record's expiry in place when it already has one (same size);
    /// returns false when the record must be rewritten instead.
    pub fn set_expire_in_place(&mut self, h: u32, at: u64) -> bool {
        if let Some(e) = self.full_mut(h) {
            e.expire_at = at;
            return true;
        }
        let p = self.ptr(h);
        // SAFETY: header and, with the flag, bytes 8..16 of a live small record.
        unsafe {
            if *p & F_EXPIRE != 0 && at != 0 {
                std::ptr::write_unaligned(p.add(HEADER) as *mut u64, at);
                return true;
            }
        }
        false
    }

    fn alloc(&mut self, size: usize) -> u32 {
        let h = self.alloc_record(size);
        self.report();
        h
    }

    fn alloc_record(&mut self, size: usize) -> u32 {
        let class = class_of(size);
        let cs = class_size(class);
        self.live_bytes += cs;
        let cl = &mut self.classes[class];
        if let Some(h) = cl.free.pop() {
            self.chunks[(h >> SLOT_BITS) as usize].live += 1;
            return h;
        }
        if let Some(ci) = cl.open {
            let c = &mut self.chunks[ci as usize];
            if (c.used as usize + 1) * cs <= CHUNK_BYTES {
                c.used += 1;
                c.live += 1;
                return (ci << SLOT_BITS) | (c.used - 1);
            }
        }
        let chunk =
            Chunk { mem: Vec::with_capacity(CHUNK_WORDS), size: cs as u32, used: 1, live: 1, evacuating: false };
        self.held += CHUNK_BYTES;
        let ci = match self.spare.pop() {
            Some(ci) => {
                self.chunks[ci as usize] = chunk;
                ci
            }
            None => {
                let ci = self.chunks.len() as u32;
                assert!(ci < 1 << (32 - SLOT_BITS), "keyspace arena full (2M chunks of 32 KiB)");
                self.chunks.push(chunk);
                ci
            }
        };
        let cl = &mut self.classes[class];
        cl.open = Some(ci);
        cl.chunks += 1;
        ci << SLOT_BITS
    }

    fn release(&mut self, h: u32) {
        let cs = self.size(h);
        self.live_bytes -= cs;
        // SAFETY: the first byte of a record being freed.
        unsafe { *self.ptr(h) = FREE };
        let ci = h >> SLOT_BITS;
        let c = &mut self.chunks[ci as usize];
        c.live -= 1;
        if !c.evacuating {
            self.classes[class_of(cs)].free.push(h);
        } else if c.live == 0 {
            self.drop_chunk(ci);
        }
        self.report();
    }

    /// Gives an empty chunk's memory back; its number waits in `spare`.
    fn drop_chunk(&mut self, ci: u32) {
        let c = &mut self.chunks[ci as usize];
        debug_assert_eq!(c.live, 0);
        let class = class_of(c.size as usize);
        *c = Chunk { mem: Vec::new(), size: c.size, used: 0, live: 0, evacuating: false };
        let cl = &mut self.classes[class];
        cl.chunks -= 1;
        if cl.open == Some(ci) {
            cl.open = None;
        }
        self.spare.push(ci);
        self.held -= CHUNK_BYTES;
        self.report();
    }

    /// Bytes of free records on the free lists (what compaction could give back).
    pub fn free_bytes(&self) -> usize {
        self.classes.iter().enumerate().map(|(i, c)| c.free.len() * class_size(i)).sum()
    }

    /// Live records of the classes a plan would look at now (for the misses count).
    pub fn live_records_planned(&self) -> usize {
        self.chunks.iter().map(|c| c.live as usize).sum()
    }

    /// Whether chunks are being emptied.
    pub fn compacting(&self) -> bool {
        !self.evac.is_empty()
    }

    /// Chooses chunks to empty in every class whose free records are at least
    /// `min_free_pct`% of its records and two chunks' worth: the chunks with the fewest
    /// live records, as many as the class's other free records can take. Does nothing
    /// while a plan is being carried out.
    pub fn plan(&mut self, min_free_pct: usize) -> CompactPlan {
        let mut plan = CompactPlan::default();
        if self.compacting() {
            return plan;
        }
        for class in 0..CLASSES {
            let cs = class_size(class);
            let per = CHUNK_BYTES / cs;
            let cl = &self.classes[class];
            let capacity = cl.chunks as usize * per;
            let free = cl.free.len();
            if free < 2 * per || free * 100 < capacity * min_free_pct {
                continue;
            }
            let open = cl.open;
            let mut cands: Vec<(u32, u32)> = Vec::new();
            for (ci, c) in self.chunks.iter().enumerate() {
                if c.size as usize == cs && c.used > 0 && Some(ci as u32) != open {
                    cands.push((c.live, ci as u32));
                }
            }
            cands.sort_unstable();
            let (mut room, mut moving, mut chosen) = (free, 0usize, Vec::new());
            for (live, ci) in cands {
                let c = &self.chunks[ci as usize];
                let own_free = (c.used - c.live) as usize;
                if moving + live as usize > room - own_free {
                    break;
                }
                moving += live as usize;
                room -= own_free;
                chosen.push(ci);
            }
            if chosen.is_empty() {
                continue;
            }
            for &ci in &chosen {
                self.chunks[ci as usize].evacuating = true;
            }
            let chunks = &self.chunks;
            self.classes[class].free.retain(|&h| !chunks[(h >> SLOT_BITS) as usize].evacuating);
            plan.chunks += chosen.len();
            plan.records += moving;
            for ci in chosen {
                if self.chunks[ci as usize].live == 0 {
                    self.drop_chunk(ci);
                } else {
                    self.evac.push(ci);
                }
            }
        }
        self.evac_at = 0;
        plan
    }

    /// The next live record of a chunk being emptied, if any is left.
    pub fn next_to_move(&mut self) -> Option<u32> {
        while let Some(&ci) = self.evac.last() {
            let c = &self.chunks[ci as usize];
            if c.evacuating {
                while self.evac_at < c.used {
                    let h = (ci << SLOT_BITS) | self.evac_at;
                    if self.get(h).flags() != FREE {
                        return Some(h);
                    }
                    self.evac_at += 1;
                }
            }
            // Emptied (and dropped by its last release) or walked whole.
            debug_assert!(!c.evacuating || c.live == 0, "a chunk being emptied got a record");
            self.evac.pop();
            self.evac_at = 0;
        }
        None
    }

    /// Moves record `h` to a free record of its class outside the chunks being
    /// emptied; returns its new handle (the caller puts it in the record's bucket).
    pub fn relocate(&mut self, h: u32) -> u32 {
        let cs = self.size(h);
        let n = self.alloc(cs);
        debug_assert!(!self.chunks[(n >> SLOT_BITS) as usize].evacuating);
        // SAFETY: two distinct records of `cs` bytes (`n` came from the free list or a
        // fresh place, never a chunk being emptied, which `h` is in); the bytes move as
        // a whole and `h` is released without dropping what it owned.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr(h), self.ptr(n), cs) };
        self.release(h);
        n
    }

    /// Writes a new record for `key` holding `e` (a full record moves `e`'s value out,
    /// leaving an integer 0 behind; a small one copies it) and `access`.
    pub fn insert(&mut self, key: KeySrc<'_>, e: &mut Entry, access: Access) -> u32 {
        let f = form(&e.value);
        let exp = if e.expire_at != 0 { 8 } else { 0 };
        let klen = key.stored_len();
        let size = match f {
            Form::Str(b, _) => HEADER + exp + 1 + klen + b.len(),
            Form::Int(_) => HEADER + exp + 8 + klen,
            Form::Full => HEADER + ENTRY + klen,
        };
        let h = self.alloc(size);
        let p = self.ptr(h);
        let mut flags = match f {
            Form::Str(_, raw) => KIND_STR | if raw { F_RAW } else { 0 },
            Form::Int(_) => KIND_INT,
            Form::Full => KIND_FULL,
        };
        if access.private_int {
            flags |= F_PRIVATE_INT;
        }
        let long = !matches!(key, KeySrc::Bytes(k) if k.len() <= INLINE_KEY);
        if long {
            flags |= F_LONG_KEY;
        }
        // SAFETY: `p` points to `class_size(size)` >= `size` bytes of a chunk's
        // capacity reserved for this record; every write below stays within `size`.
        unsafe {
            let mut at = HEADER;
            match f {
                Form::Full => {
                    // No flag: a full record's expiry lives in its Entry.
                    let value = std::mem::replace(&mut e.value, Value::Int(0));
                    std::ptr::write(p.add(HEADER) as *mut Entry, Entry { value, expire_at: e.expire_at });
                    at += ENTRY;
                }
                Form::Str(b, _) => {
                    if exp != 0 {
                        flags |= F_EXPIRE;
                        std::ptr::write_unaligned(p.add(at) as *mut u64, e.expire_at);
                        at += 8;
                    }
                    *p.add(at) = b.len() as u8;
                    at += 1;
                    std::ptr::copy_nonoverlapping(b.as_ptr(), p.add(at + klen), b.len());
                }
                Form::Int(n) => {
                    if exp != 0 {
                        flags |= F_EXPIRE;
                        std::ptr::write_unaligned(p.add(at) as *mut u64, e.expire_at);
                        at += 8;
                    }
                    std::ptr::write_unaligned(p.add(at) as *mut i64, n);
                    at += 8;
                }
            }
            *p = flags;
            *p.add(1) = if long { 0 } else { klen as u8 };
            std::ptr::write_unaligned(p.add(2) as *mut u16, access.snap);
            std::ptr::write_unaligned(p.add(4) as *mut u32, access.bits);
            match key {
                KeySrc::Bytes(k) if !long => std::ptr::copy_nonoverlapping(k.as_ptr(), p.add(at), k.len()),
                KeySrc::Bytes(k) => {
                    let b: Box<[u8]> = k.into();
                    let len = b.len();
                    let ptr = Box::into_raw(b) as *mut u8;
                    std::ptr::write_unaligned(p.add(at) as *mut usize, ptr as usize);
                    std::ptr::write_unaligned(p.add(at + 8) as *mut usize, len);
                }
                KeySrc::Long(ptr, len) => {
                    std::ptr::write_unaligned(p.add(at) as *mut usize, ptr as usize);
                    std::ptr::write_unaligned(p.add(at + 8) as *mut usize, len);
                }
            }
        }
        h
    }

    /// Rewrites record `h` with entry `e` (taken as [`Arena::insert`] takes it) and
    /// `access`, keeping its key; returns its handle, which changes when the record
    /// needs another size class. A full record's old value is dropped.
    pub fn rewrite(&mut self, h: u32, e: &mut Entry, access: Access) -> u32 {
        let p = self.ptr(h);
        let size = self.size(h);
        let r = self.get(h);
        let flags = r.flags();
        let same_expiry = (flags & F_EXPIRE != 0) == (e.expire_at != 0);
        match (flags & KIND, form(&e.value)) {
            (KIND_FULL, Form::Full) => {
                let value = std::mem::replace(&mut e.value, Value::Int(0));
                let old = self.full_mut(h).expect("full record");
                *old = Entry { value, expire_at: e.expire_at };
                self.set_access(h, access);
                return h;
            }
            (KIND_STR, Form::Str(b, raw)) if same_expiry => {
                let (at, kl) = (r.key_offset(), r.key_stored_len());
                let need = at + kl + b.len();
                // In place while it fits and the record is at most one class too big: a
                // value that shrank further moves to its own class, or churn leaves
                // every key in the largest record its value ever needed (measured: 17%
                // more record bytes than a fresh load after four rounds of random sizes).
                if need <= size && size <= class_size(class_of(need)) + 8 {
                    // SAFETY: within the record's `size` bytes; the key stays where it is.
                    unsafe {
                        if e.expire_at != 0 {
                            std::ptr::write_unaligned(p.add(HEADER) as *mut u64, e.expire_at);
                        }
                        *p.add(at - 1) = b.len() as u8;
                        std::ptr::copy_nonoverlapping(b.as_ptr(), p.add(at + kl), b.len());
                        *p = if raw { flags | F_RAW } else { flags & !F_RAW };
                    }
                    self.set_access(h, access);
                    return h;
                }
            }
            (KIND_INT, Form::Int(n)) if same_expiry => {
                let at = r.key_offset();
                // SAFETY: the integer's and expiry's own bytes.
                unsafe {
                    if e.expire_at != 0 {
                        std::ptr::write_unaligned(p.add(HEADER) as *mut u64, e.expire_at);
                    }
                    std::ptr::write_unaligned(p.add(at - 8) as *mut i64, n);
                }
                self.set_access(h, access);
                return h;
            }
            _ => {}
        }
        let (buf, long) = self.detach_key(h);
        let key = long.unwrap_or(KeySrc::Bytes(&buf.1[..buf.0]));
        let n = self.insert(key, e, access);
        self.drop_value(h);
        self.release(h);
        n
    }

    /// A full record whose value became small (a command changed it in place) is
    /// rewritten small; returns its handle.
    pub fn shrink_if_small(&mut self, h: u32) -> u32 {
        match self.get(h).full() {
            Some(e) if is_small(&e.value) => {}
            _ => return h,
        }
        let access = self.get(h).access();
        // SAFETY: the Entry is moved out once; the record is released below without
        // dropping it.
        let mut e = unsafe { std::ptr::read(self.ptr(h).add(HEADER) as *const Entry) };
        let (buf, long) = self.detach_key(h);
        let key = long.unwrap_or(KeySrc::Bytes(&buf.1[..buf.0]));
        let n = self.insert(key, &mut e, access);
        self.release(h);
        n
    }

    /// Copies an inline key out (or takes a heap key's ownership) before the record
    /// goes.
    fn detach_key(&self, h: u32) -> ((usize, [u8; INLINE_KEY]), Option<KeySrc<'static>>) {
        let r = self.get(h);
        let mut buf = [0u8; INLINE_KEY];
        if r.flags() & F_LONG_KEY != 0 {
            let k = r.key();
            return ((0, buf), Some(KeySrc::Long(k.as_ptr() as *mut u8, k.len())));
        }
        let k = r.key();
        buf[..k.len()].copy_from_slice(k);
        ((k.len(), buf), None)
    }

    /// Drops a full record's value (in place; the record stays allocated).
    fn drop_value(&mut self, h: u32) {
        let p = self.ptr(h);
        if self.get(h).flags() & KIND == KIND_FULL {
            // SAFETY: a full record's Entry is initialised and dropped only here, right
            // before the record is released or overwritten.
            unsafe { std::ptr::drop_in_place(p.add(HEADER) as *mut Entry) }
        }
    }

    /// Frees record `h` and everything it owns.
    pub fn remove(&mut self, h: u32) {
        self.drop_value(h);
        let r = self.get(h);
        if r.flags() & F_LONG_KEY != 0 {
            let k = r.key();
            // SAFETY: the key was leaked from a Box<[u8]> of this length when written
            // and is owned by this record alone.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(k.as_ptr() as *mut u8, k.len())) });
        }
        self.release(h);
    }

    /// Frees record `h`, handing back its key, entry and access history.
    pub fn take(&mut self, h: u32) -> (KeyBytes, Entry, Access) {
        let r = self.get(h);
        let access = r.access();
        let key = if r.flags() & F_LONG_KEY != 0 {
            let k = r.key();
            // SAFETY: as in `remove`; ownership moves to the KeyBytes.
            KeyBytes::Heap(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(k.as_ptr() as *mut u8, k.len())) })
        } else {
            KeyBytes::from(r.key())
        };
        let entry = if r.is_small() {
            r.entry().into_owned()
        } else {
            // SAFETY: the Entry is moved out once; the record is released right after
            // without dropping it.
            unsafe { std::ptr::read(self.ptr(h).add(HEADER) as *const Entry) }
        };
        self.release(h);
        (key, entry, access)
    }

    /// Frees every record listed (each once) and every chunk.
    pub fn clear(&mut self, live: impl Iterator<Item = u32>) {
        for h in live {
            self.remove(h);
        }
        self.chunks.clear();
        for c in self.classes.iter_mut() {
            *c = Class::default();
        }
        self.live_bytes = 0;
        self.held = 0;
        self.report();
        self.spare.clear();
        self.evac.clear();
        self.evac_at = 0;
    }

    /// Panics unless the chunks' live counts match the live handles given (each once),
    /// no handle points into a chunk given back, and no free record is listed twice
    /// or lies in a chunk being emptied.
    pub fn check(&self, live: impl Iterator<Item = u32>) {
        let mut counts = vec![0u32; self.chunks.len()];
        for h in live {
            let c = &self.chunks[(h >> SLOT_BITS) as usize];
            assert!(c.used > (h & SLOT_MASK), "live handle {h:#x} past its chunk's records");
            assert_ne!(self.get(h).flags(), FREE, "live handle {h:#x} to a freed record");
            counts[(h >> SLOT_BITS) as usize] += 1;
        }
        for (ci, c) in self.chunks.iter().enumerate() {
            assert_eq!(c.live, counts[ci], "live records of chunk {ci}");
        }
        let mut listed = std::collections::HashSet::new();
        for (class, cl) in self.classes.iter().enumerate() {
            for &h in &cl.free {
                let c = &self.chunks[(h >> SLOT_BITS) as usize];
                assert!(!c.evacuating && c.size as usize == class_size(class), "free record {h:#x} misplaced");
                assert_eq!(self.get(h).flags(), FREE);
                assert!(listed.insert(h), "free record {h:#x} listed twice");
            }
            let held = self.chunks.iter().filter(|c| c.used > 0 && c.size as usize == class_size(class)).count();
            assert_eq!(cl.chunks as usize, held, "chunks of class {class}");
        }
        assert_eq!(self.held, self.chunk_bytes(), "chunk bytes held");
        assert_eq!(self.reported, self.held - self.live_bytes, "unused chunk bytes reported");
    }

    /// Whether no chunk is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

impl Form<'_> {
    fn is_full(&self) -> bool {
        matches!(self, Form::Full)
    }
}

/// Whether `v` would be stored in a record's own bytes.
pub(super) fn is_small(v: &Value) -> bool {
    !form(v).is_full()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc() -> Access {
        Access { bits: 0x1234_5605, private_int: false, snap: 7 }
    }

    #[test]
    fn records_round_trip_in_every_form() {
        let mut a = Arena::new();
        let long_key = vec![b'k'; 300];
        let cases: Vec<(Vec<u8>, Value, u64)> = vec![
            (b"key:0000000001".to_vec(), Value::string(&[b'v'; 16]), 0),
            (b"key:0000000002".to_vec(), Value::string(&[b'v'; 16]), 123),
            (b"i".to_vec(), Value::Int(-5), 0),
            (b"i2".to_vec(), Value::Int(i64::MAX), 99),
            (b"".to_vec(), Value::Str { bytes: b"".as_slice().into(), raw: true }, 0),
            (vec![b'x'; 255], Value::string(&[b'y'; SMALL_STR]), 1),
            (b"big".to_vec(), Value::string(&[b'z'; SMALL_STR + 1]), 5),
            (long_key.clone(), Value::string(b"abc"), 0),
            (long_key.clone(), Value::string(&[b'q'; 1000]), 7),
            (b"h".to_vec(), Value::Hash(Default::default()), 0),
        ];
        let mut hs = Vec::new();
        for (k, v, exp) in &cases {
            let mut e = Entry { value: v.clone(), expire_at: *exp };
            let h = a.insert(KeySrc::Bytes(k), &mut e, acc());
            hs.push(h);
        }
        for ((k, v, exp), &h) in cases.iter().zip(&hs) {
            let r = a.get(h);
            assert_eq!(r.key(), &k[..]);
            assert_eq!(r.expire_at(), *exp);
            assert_eq!(r.access(), acc());
            assert_eq!(r.entry().value, *v);
            assert_eq!(r.is_small(), is_small(v));
        }
        assert_eq!(a.size(hs[0]), 40, "14-byte key, 16-byte value");
        assert_eq!(a.size(hs[1]), 48, "the same with a TTL");
        // Rewrites across forms keep the key and history.
        let mut hs2 = Vec::new();
        for (i, &h) in hs.iter().enumerate() {
            let v = if i % 2 == 0 { Value::string(&[b'n'; 600]) } else { Value::Int(i as i64) };
            let mut e = Entry { value: v.clone(), expire_at: i as u64 };
            let n = a.rewrite(h, &mut e, acc());
            assert_eq!(a.get(n).key(), &cases[i].0[..]);
            assert_eq!(a.get(n).entry().value, v);
            assert_eq!(a.get(n).expire_at(), i as u64);
            hs2.push(n);
        }
        let (k, e, ac) = a.take(hs2[7]);
        assert_eq!(&*k, &long_key[..]);
        assert_eq!(e.value, Value::Int(7));
        assert_eq!(ac, acc());
        hs2.remove(7);
        a.clear(hs2.into_iter());
        assert_eq!(a.live_bytes(), 0);
    }

    #[test]
    fn freed_records_are_reused() {
        let mut a = Arena::new();
        let mut hs = Vec::new();
        for i in 0..5000u32 {
            let mut e = Entry { value: Value::Int(i as i64), expire_at: 0 };
            hs.push(a.insert(KeySrc::Bytes(format!("k{i}").as_bytes()), &mut e, acc()));
        }
        let chunks = a.chunks.len();
        for &h in &hs[..2500] {
            a.remove(h);
        }
        for i in 0..2500u32 {
            let mut e = Entry { value: Value::Int(i as i64), expire_at: 0 };
            hs.push(a.insert(KeySrc::Bytes(format!("n{i}").as_bytes()), &mut e, acc()));
        }
        assert!(a.chunks.len() <= chunks + 1);
        a.clear(hs[2500..].iter().copied());
        assert!(a.is_empty());
    }
}
