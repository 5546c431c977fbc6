//! The list value type: Redis's quicklist, a deque of packed nodes.
//!
//! Redis 7.0 stores every list as a quicklist, and OBJECT ENCODING says `quicklist`
//! even for a list of one element (7.0 has no listpack lists; 7.2 added them). A
//! [`ListValue`] has the same shape: a `VecDeque` of nodes, each node one byte buffer
//! holding a run of elements packed back to back, as a listpack does:
//!
//! ```text
//! entry = len (LEB128) | bytes | len (LEB128, its bytes in reverse order)
//! ```
//!
//! The length at both ends lets a node be walked either way, so pushes and pops at
//! both ends of the list touch only the end nodes (O(1) in the list's length, plus a
//! memmove within one bounded node at the front, as Redis's listpack does), and an
//! element of up to 127 bytes costs its bytes plus 2.
//!
//! How big a node may grow is the list's *fill*, `list-max-listpack-size` when the list
//! was created (Redis fixes it per quicklist too): -1..-5 cap a node at 4, 8, 16, 32 or
//! 64 KiB; a positive fill caps its entries, and its bytes at 8 KiB. Sizes are counted
//! as Redis counts them — the bytes the node would take as a listpack (`Node::lp`),
//! checked with quicklist's own estimates — so pushes, pops, LSET, LTRIM and LREM split
//! a list into exactly the nodes Redis's quicklist has, and DUMP writes Redis's bytes.
//! Nodes are never empty. Deleting never merges nodes (nor does Redis); LSET replaces
//! in place, even past the fill (as Redis's `lpReplace`); inserting in the middle of a
//! full node repacks it into nodes that fit, where Redis splits the node at the
//! insertion point and merges neighbours (a LINSERT into a full node is the one case
//! whose node split, and so DUMP bytes, can differ from Redis's).
//!
//! Positions are `usize` indexes from the head; commands resolve Redis's negative
//! indexes before calling in.

use std::collections::VecDeque;
use std::fmt;

/// Redis's `optimization_level`: node byte caps for fill -1..-5.
const OPTIMIZATION_LEVEL: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// Node byte cap when the fill counts entries (`SIZE_SAFETY_LIMIT`).
const SIZE_SAFETY_LIMIT: usize = 8192;
/// Redis clamps the fill to -5..=FILL_MAX (`quicklistSetFill`).
const FILL_MAX: i64 = (1 << 15) - 1;
/// The fill of `list-max-listpack-size`'s default, -2 (8 KiB nodes).
pub const DEFAULT_FILL: i64 = -2;

/// A run of packed entries.
#[derive(Clone, Default)]
struct Node {
    buf: Vec<u8>,
    count: u32,
    /// The node's size as a listpack (header, entries, terminator): what Redis's
    /// quicklist compares with the fill.
    lp: u32,
}

/// A list: a deque of packed nodes (OBJECT ENCODING `quicklist`).
#[derive(Clone)]
pub struct ListValue {
    nodes: VecDeque<Node>,
    len: usize,
    fill: i16,
}

impl Default for ListValue {
    fn default() -> Self {
        ListValue::new(DEFAULT_FILL)
    }
}

impl PartialEq for ListValue {
    /// Lists are equal when their elements are, however they are split into nodes.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for ListValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(String::from_utf8_lossy)).finish()
    }
}

/// Bytes of the LEB128 form of `n`.
fn varint_len(n: usize) -> usize {
    let mut k = 1;
    let mut n = n >> 7;
    while n > 0 {
        k += 1;
        n >>= 7;
    }
    k
}

/// A listpack's header and terminator.
const LP_EMPTY: usize = 7;

/// The bytes `v` takes as a listpack entry: encoding, data and back-length, an
/// integer in canonical form in the smallest integer encoding (Redis's
/// `lpEncodeGetType` + `lpEncodeBacklen`).
fn lp_entry_size(v: &[u8]) -> usize {
    if let Some(n) = crate::value::parse_canonical_i64(v) {
        return match n {
            0..=127 => 2,
            -4096..=4095 => 3,
            -32768..=32767 => 4,
            -8388608..=8388607 => 5,
            -2147483648..=2147483647 => 6,
            _ => 10,
        };
    }
    let len = v.len();
    let enc = if len < 64 {
        1 + len
    } else if len < 4096 {
        2 + len
    } else {
        5 + len
    };
    let back = match enc {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    };
    enc + back
}

/// The node byte cap of a negative fill (`optimization_level`).
fn level(fill: i16) -> usize {
    OPTIMIZATION_LEVEL[((-(fill as i64) - 1) as usize).min(OPTIMIZATION_LEVEL.len() - 1)]
}

/// Whether an element of `len` bytes may join `node` (Redis's
/// `_quicklistNodeAllowInsert`, with its overestimate of 8 bytes of entry overhead).
fn allows_insert(fill: i16, node: &Node, len: usize) -> bool {
    let new_sz = node.lp as usize + len + 8;
    if fill < 0 {
        new_sz <= level(fill)
    } else {
        new_sz <= SIZE_SAFETY_LIMIT && node.count() < fill as usize
    }
}

/// Bytes an element of `len` bytes takes in a node.
fn entry_size(len: usize) -> usize {
    len + 2 * varint_len(len)
}

/// Writes the entry of `v` into `dst`, which is exactly `entry_size(v.len())` long.
fn write_entry(dst: &mut [u8], v: &[u8]) {
    let k = varint_len(v.len());
    let last = dst.len() - 1;
    let mut n = v.len();
    for i in 0..k {
        let more = if i + 1 < k { 0x80 } else { 0 };
        let b = (n & 0x7f) as u8 | more;
        n >>= 7;
        dst[i] = b;
        dst[last - i] = b;
    }
    dst[k..k + v.len()].copy_from_slice(v);
}

/// The entry starting at `off`: (data start, data end, offset of the next entry).
fn read_fwd(buf: &[u8], off: usize) -> (usize, usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0, off);
    loop {
        let b = buf[i];
        i += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let k = i - off;
    (i, i + n, i + n + k)
}

/// The entry ending at `end`: (entry start, data start, data end).
fn read_back(buf: &[u8], end: usize) -> (usize, usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0, end);
    loop {
        i -= 1;
        let b = buf[i];
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let k = end - i;
    let data_end = i;
    let data_start = data_end - n;
    (data_start - k, data_start, data_end)
}

/// Whether a node of listpack size `lp` and `count` entries respects `fill`. A single
/// entry always does.
fn fits(fill: i16, lp: usize, count: usize) -> bool {
    if count <= 1 {
        return true;
    }
    if fill < 0 {
        lp <= level(fill)
    } else {
        lp <= SIZE_SAFETY_LIMIT && count <= fill as usize
    }
}

impl Node {
    fn with(v: &[u8]) -> Node {
        let mut n = Node::default();
        n.append(v);
        n
    }

    /// The listpack size of the entries in `from..to`.
    fn lp_of(&self, from: usize, to: usize) -> usize {
        let mut off = from;
        let mut total = 0;
        while off < to {
            let (ds, de, next) = read_fwd(&self.buf, off);
            total += lp_entry_size(&self.buf[ds..de]);
            off = next;
        }
        total
    }

    fn count(&self) -> usize {
        self.count as usize
    }

    /// Opens `add` bytes at `off` and returns them, growing the buffer by at most an
    /// eighth beyond need (a node rarely shrinks, so slack would stay).
    fn open(&mut self, off: usize, add: usize) -> &mut [u8] {
        let old = self.buf.len();
        if self.buf.capacity() < old + add {
            self.buf.reserve_exact(add.max(old / 8));
        }
        self.buf.resize(old + add, 0);
        self.buf.copy_within(off..old, off + add);
        &mut self.buf[off..off + add]
    }

    /// Inserts `v` as an entry at byte offset `off`.
    fn insert_at(&mut self, off: usize, v: &[u8]) {
        write_entry(self.open(off, entry_size(v.len())), v);
        self.count += 1;
        self.lp = (self.lp.max(LP_EMPTY as u32) as usize + lp_entry_size(v)) as u32;
    }

    fn append(&mut self, v: &[u8]) {
        self.insert_at(self.buf.len(), v);
    }

    /// Deletes the bytes `from..to` holding `n` entries.
    fn delete(&mut self, from: usize, to: usize, n: usize) {
        let gone = self.lp_of(from, to);
        self.delete_sized(from, to, n, gone);
    }

    /// [`Node::delete`] when the listpack size of what goes is known (`gone`).
    fn delete_sized(&mut self, from: usize, to: usize, n: usize, gone: usize) {
        self.lp -= gone as u32;
        self.buf.drain(from..to);
        self.count -= n as u32;
        if self.buf.capacity() > 64 && self.buf.len() < self.buf.capacity() / 4 {
            self.buf.shrink_to(self.buf.len() * 2);
        }
    }

    /// Byte offset of entry `j` (`j == count` gives the end), walking from the nearer end.
    fn offset_of(&self, j: usize) -> usize {
        if j <= self.count() / 2 {
            let mut off = 0;
            for _ in 0..j {
                off = read_fwd(&self.buf, off).2;
            }
            off
        } else {
            let mut end = self.buf.len();
            for _ in j..self.count() {
                end = read_back(&self.buf, end).0;
            }
            end
        }
    }

    /// Offset just past `n` entries starting at `off`.
    fn skip(&self, mut off: usize, n: usize) -> usize {
        for _ in 0..n {
            off = read_fwd(&self.buf, off).2;
        }
        off
    }

    fn entries(&self) -> impl Iterator<Item = &[u8]> {
        let mut off = 0;
        std::iter::from_fn(move || {
            if off >= self.buf.len() {
                return None;
            }
            let (ds, de, next) = read_fwd(&self.buf, off);
            off = next;
            Some(&self.buf[ds..de])
        })
    }
}

impl ListValue {
    /// An empty list whose nodes follow `fill` (`list-max-listpack-size`).
    pub fn new(fill: i64) -> ListValue {
        ListValue { nodes: VecDeque::with_capacity(1), len: 0, fill: fill.clamp(-5, FILL_MAX) as i16 }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes this list holds on the heap (nodes and their buffers), for MEMORY USAGE.
    pub fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>() + self.nodes.iter().map(|n| n.buf.capacity()).sum::<usize>()
    }

    /// Number of nodes (quicklist nodes), for tests and DEBUG-like introspection.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Gives back the growth slack of the end nodes (the only ones that grow), e.g.
    /// after a push of many elements.
    pub fn shrink_to_fit(&mut self) {
        if let Some(n) = self.nodes.front_mut() {
            n.buf.shrink_to_fit();
        }
        if let Some(n) = self.nodes.back_mut() {
            n.buf.shrink_to_fit();
        }
    }

    pub fn push_back(&mut self, v: &[u8]) {
        let fill = self.fill;
        match self.nodes.back_mut() {
            Some(n) if allows_insert(fill, n, v.len()) => n.append(v),
            _ => {
                if let Some(n) = self.nodes.back_mut() {
                    n.buf.shrink_to_fit();
                }
                self.nodes.push_back(Node::with(v));
            }
        }
        self.len += 1;
    }

    pub fn push_front(&mut self, v: &[u8]) {
        let fill = self.fill;
        match self.nodes.front_mut() {
            Some(n) if allows_insert(fill, n, v.len()) => n.insert_at(0, v),
            _ => {
                if let Some(n) = self.nodes.front_mut() {
                    n.buf.shrink_to_fit();
                }
                self.nodes.push_front(Node::with(v));
            }
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        let n = self.nodes.front_mut()?;
        let (ds, de, next) = read_fwd(&n.buf, 0);
        let v = n.buf[ds..de].to_vec();
        n.delete(0, next, 1);
        if n.count == 0 {
            self.nodes.pop_front();
        }
        self.len -= 1;
        Some(v)
    }

    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let n = self.nodes.back_mut()?;
        let end = n.buf.len();
        let (start, ds, de) = read_back(&n.buf, end);
        let v = n.buf[ds..de].to_vec();
        n.delete(start, end, 1);
        if n.count == 0 {
            self.nodes.pop_back();
        }
        self.len -= 1;
        Some(v)
    }

    /// The node holding element `i` (< len) and its index there, walking from the
    /// nearer end of the list.
    fn find(&self, i: usize) -> (usize, usize) {
        debug_assert!(i < self.len);
        if i < self.len / 2 {
            let mut i = i;
            for (k, n) in self.nodes.iter().enumerate() {
                if i < n.count() {
                    return (k, i);
                }
                i -= n.count();
            }
        } else {
            let mut from_end = self.len - i;
            for (k, n) in self.nodes.iter().enumerate().rev() {
                if from_end <= n.count() {
                    return (k, n.count() - from_end);
                }
                from_end -= n.count();
            }
        }
        // Unreachable while the counts add up to `len`; the last entry is a safe answer.
        let k = self.nodes.len().saturating_sub(1);
        (k, self.nodes.get(k).map_or(0, |n| n.count().saturating_sub(1)))
    }

    /// Element `i`, if `i < len`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len {
            return None;
        }
        let (k, j) = self.find(i);
        let n = &self.nodes[k];
        let (ds, de, _) = read_fwd(&n.buf, n.offset_of(j));
        Some(&n.buf[ds..de])
    }

    /// Replaces element `i`; false when `i >= len`.
    pub fn set(&mut self, i: usize, v: &[u8]) -> bool {
        if i >= self.len {
            return false;
        }
        let (k, j) = self.find(i);
        let n = &mut self.nodes[k];
        let off = n.offset_of(j);
        let next = read_fwd(&n.buf, off).2;
        n.delete(off, next, 1);
        n.insert_at(off, v);
        true
    }

    /// Inserts `v` so that it becomes element `i` (`i <= len`; `len` appends).
    pub fn insert(&mut self, i: usize, v: &[u8]) {
        if i == 0 {
            return self.push_front(v);
        }
        if i >= self.len {
            return self.push_back(v);
        }
        let (k, j) = self.find(i);
        // At the head of a node, the previous node's tail is the same position.
        if j == 0 && k > 0 {
            let prev = &mut self.nodes[k - 1];
            if allows_insert(self.fill, prev, v.len()) {
                prev.append(v);
                self.len += 1;
                return;
            }
        }
        let n = &mut self.nodes[k];
        let off = n.offset_of(j);
        n.insert_at(off, v);
        self.len += 1;
        self.repack_if_over(k);
    }

    /// Splits node `k` into nodes that respect the fill, when it no longer does.
    fn repack_if_over(&mut self, k: usize) {
        let n = &self.nodes[k];
        if fits(self.fill, n.lp as usize, n.count()) {
            return;
        }
        let old = self.nodes.remove(k).unwrap_or_default();
        let mut packed: Vec<Node> = Vec::new();
        for v in old.entries() {
            match packed.last_mut() {
                Some(p) if allows_insert(self.fill, p, v.len()) => p.append(v),
                _ => packed.push(Node::with(v)),
            }
        }
        for (d, mut p) in packed.into_iter().enumerate() {
            p.buf.shrink_to_fit();
            self.nodes.insert(k + d, p);
        }
    }

    /// Deletes `count` elements from `start` on (clamped to the list's end).
    pub fn remove_range(&mut self, start: usize, count: usize) {
        let count = count.min(self.len.saturating_sub(start));
        if count == 0 {
            return;
        }
        let (mut k, mut j) = self.find(start);
        let mut left = count;
        while left > 0 {
            let n = &mut self.nodes[k];
            let take = left.min(n.count() - j);
            if j == 0 && take == n.count() {
                self.nodes.remove(k);
            } else {
                let from = n.offset_of(j);
                let to = if j + take == n.count() { n.buf.len() } else { n.skip(from, take) };
                n.delete(from, to, take);
                k += 1;
            }
            left -= take;
            j = 0;
        }
        self.len -= count;
    }

    /// Keeps elements `start..end` only (LTRIM), `end` clamped to the length.
    pub fn retain_range(&mut self, start: usize, end: usize) {
        let end = end.min(self.len);
        if start >= end {
            self.clear();
            return;
        }
        self.remove_range(end, self.len - end);
        self.remove_range(0, start);
    }

    pub fn clear(&mut self) {
        self.nodes.clear();
        self.len = 0;
    }

    /// Removes elements equal to `v`, at most `limit` of them (0: all), the first ones
    /// from the head, or from the tail when `from_tail` (LREM). Returns how many.
    pub fn remove_matching(&mut self, v: &[u8], limit: usize, from_tail: bool) -> usize {
        let mut removed = 0;
        let order: Vec<usize> =
            if from_tail { (0..self.nodes.len()).rev().collect() } else { (0..self.nodes.len()).collect() };
        let mut emptied = Vec::new();
        for k in order {
            if limit != 0 && removed == limit {
                break;
            }
            let n = &self.nodes[k];
            // Byte ranges of the matches to delete in this node, in walk order.
            let mut hits: Vec<(usize, usize)> = Vec::new();
            let want = if limit == 0 { usize::MAX } else { limit - removed };
            if from_tail {
                let mut end = n.buf.len();
                while end > 0 && hits.len() < want {
                    let (start, ds, de) = read_back(&n.buf, end);
                    if &n.buf[ds..de] == v {
                        hits.push((start, end));
                    }
                    end = start;
                }
                hits.reverse();
            } else {
                let mut off = 0;
                while off < n.buf.len() && hits.len() < want {
                    let (ds, de, next) = read_fwd(&n.buf, off);
                    if &n.buf[ds..de] == v {
                        hits.push((off, next));
                    }
                    off = next;
                }
            }
            if hits.is_empty() {
                continue;
            }
            removed += hits.len();
            let gone: usize = hits.iter().map(|&(from, to)| n.lp_of(from, to)).sum();
            let n = &mut self.nodes[k];
            // Compact in place: shift the kept bytes between hits down.
            let mut write = hits[0].0;
            for (h, &(_, end)) in hits.iter().enumerate() {
                let next_start = hits.get(h + 1).map_or(n.buf.len(), |x| x.0);
                n.buf.copy_within(end..next_start, write);
                write += next_start - end;
            }
            let total = n.buf.len();
            n.delete_sized(write, total, hits.len(), gone);
            if n.count == 0 {
                emptied.push(k);
            }
        }
        self.len -= removed;
        // Drop emptied nodes, highest index first so that lower indexes stay valid.
        emptied.sort_unstable();
        for &k in emptied.iter().rev() {
            self.nodes.remove(k);
        }
        removed
    }

    /// How many elements each node holds, head to tail (how a dump splits the list).
    pub fn node_sizes(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.nodes.iter().map(|n| n.count())
    }

    /// All elements, head to tail (reversible).
    pub fn iter(&self) -> Iter<'_> {
        let back = match self.nodes.back() {
            Some(n) => (self.nodes.len() - 1, n.buf.len()),
            None => (0, 0),
        };
        Iter { nodes: &self.nodes, front: (0, 0), back, remaining: self.len }
    }

    /// Elements `start..end` (`end` clamped to the length), head to tail (reversible).
    pub fn range(&self, start: usize, end: usize) -> Iter<'_> {
        let end = end.min(self.len);
        if start >= end {
            return Iter { nodes: &self.nodes, front: (0, 0), back: (0, 0), remaining: 0 };
        }
        let (k, j) = self.find(start);
        let front = (k, self.nodes[k].offset_of(j));
        let (k, j) = self.find(end - 1);
        let n = &self.nodes[k];
        let back = (k, read_fwd(&n.buf, n.offset_of(j)).2);
        Iter { nodes: &self.nodes, front, back, remaining: end - start }
    }

    /// Checks the structure's invariants (counts, sizes, no empty nodes); panics if broken.
    pub fn check_invariants(&self) {
        let mut total = 0;
        for n in &self.nodes {
            assert!(n.count > 0, "empty node");
            assert_eq!(n.entries().count(), n.count(), "node count");
            assert_eq!(n.lp as usize, LP_EMPTY + n.lp_of(0, n.buf.len()), "listpack size");
            total += n.count();
        }
        assert_eq!(total, self.len, "list length");
    }
}

impl<'a> Extend<&'a [u8]> for ListValue {
    fn extend<I: IntoIterator<Item = &'a [u8]>>(&mut self, iter: I) {
        for v in iter {
            self.push_back(v);
        }
    }
}

/// Elements of a list or of a range of it, from either end.
pub struct Iter<'a> {
    nodes: &'a VecDeque<Node>,
    /// Node and byte offset of the next element from the front.
    front: (usize, usize),
    /// Node and byte offset just past the next element from the back.
    back: (usize, usize),
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        let (mut k, mut off) = self.front;
        while off >= self.nodes[k].buf.len() {
            k += 1;
            off = 0;
        }
        let buf = &self.nodes[k].buf;
        let (ds, de, next) = read_fwd(buf, off);
        self.front = (k, next);
        self.remaining -= 1;
        Some(&buf[ds..de])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (mut k, mut end) = self.back;
        while end == 0 {
            k -= 1;
            end = self.nodes[k].buf.len();
        }
        let buf = &self.nodes[k].buf;
        let (start, ds, de) = read_back(buf, end);
        self.back = (k, start);
        self.remaining -= 1;
        Some(&buf[ds..de])
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list_of(fill: i64, items: &[&str]) -> ListValue {
        let mut l = ListValue::new(fill);
        for i in items {
            l.push_back(i.as_bytes());
        }
        l
    }

    fn strings(it: Iter) -> Vec<String> {
        it.map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }

    fn numbered(fill: i64, n: usize) -> ListValue {
        let mut l = ListValue::new(fill);
        for i in 0..n {
            l.push_back(i.to_string().as_bytes());
        }
        l
    }

    #[test]
    fn entries_round_trip_with_long_lengths() {
        for len in [0usize, 1, 127, 128, 300, 16383, 16384, 70000] {
            let v: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut buf = vec![0; entry_size(len)];
            write_entry(&mut buf, &v);
            let (ds, de, next) = read_fwd(&buf, 0);
            assert_eq!((&buf[ds..de], next), (&v[..], buf.len()), "forward, len {len}");
            let (start, ds, de) = read_back(&buf, buf.len());
            assert_eq!((&buf[ds..de], start), (&v[..], 0), "backward, len {len}");
        }
        assert_eq!(entry_size(5), 7);
        assert_eq!(entry_size(200), 204);
    }

    #[test]
    fn push_and_pop_at_both_ends() {
        let mut l = ListValue::new(3);
        for i in 0..10 {
            l.push_back(format!("b{i}").as_bytes());
            l.push_front(format!("f{i}").as_bytes());
        }
        l.check_invariants();
        assert_eq!(l.len(), 20);
        assert!(l.node_count() >= 7, "fill 3 makes small nodes: {}", l.node_count());
        assert_eq!(l.pop_front().as_deref(), Some(&b"f9"[..]));
        assert_eq!(l.pop_back().as_deref(), Some(&b"b9"[..]));
        assert_eq!(l.get(0), Some(&b"f8"[..]));
        assert_eq!(l.get(17), Some(&b"b8"[..]));
        assert_eq!(l.get(18), None);
        while l.pop_back().is_some() {}
        assert!(l.is_empty());
        assert_eq!(l.node_count(), 0);
        assert_eq!(l.pop_front(), None);
    }

    #[test]
    fn index_across_nodes_from_both_ends() {
        let l = numbered(4, 50);
        l.check_invariants();
        for i in 0..50 {
            assert_eq!(l.get(i), Some(i.to_string().as_bytes()), "index {i}");
        }
        let back: Vec<&[u8]> = l.iter().rev().collect();
        assert_eq!(back.len(), 50);
        assert_eq!((back[0], back[49]), (&b"49"[..], &b"0"[..]));
    }

    #[test]
    fn ranges_and_mixed_direction_iteration() {
        let l = numbered(5, 23);
        assert_eq!(strings(l.range(3, 9)), ["3", "4", "5", "6", "7", "8"]);
        assert_eq!(strings(l.range(20, 100)), ["20", "21", "22"]);
        assert_eq!(l.range(5, 5).len(), 0);
        assert_eq!(l.range(9, 3).len(), 0);
        let back: Vec<_> = l.range(4, 12).rev().map(|b| b.to_vec()).collect();
        assert_eq!(back.first().map(|v| &v[..]), Some(&b"11"[..]));
        assert_eq!(back.last().map(|v| &v[..]), Some(&b"4"[..]));
        let mut it = l.range(0, 7);
        assert_eq!(it.next(), Some(&b"0"[..]));
        assert_eq!(it.next_back(), Some(&b"6"[..]));
        assert_eq!(strings(it), ["1", "2", "3", "4", "5"]);
    }

    #[test]
    fn insert_in_full_nodes_repacks() {
        let mut l = numbered(4, 12);
        l.insert(2, b"x");
        l.insert(4, b"y"); // at a node's head: goes to the previous node if it fits
        l.insert(13, b"z");
        l.insert(0, b"first");
        l.insert(l.len(), b"last");
        l.check_invariants();
        assert_eq!(
            strings(l.iter()),
            ["first", "0", "1", "x", "2", "y", "3", "4", "5", "6", "7", "8", "9", "10", "z", "11", "last"]
        );
    }

    #[test]
    fn big_elements_get_nodes_of_their_own() {
        let mut l = ListValue::new(-1);
        let big = vec![b'x'; 5000];
        l.push_back(b"a");
        l.push_back(&big);
        l.push_back(b"b");
        l.push_front(&big);
        l.insert(2, &big);
        l.check_invariants();
        assert_eq!(l.len(), 5);
        assert_eq!(l.get(2).map(|v| v.len()), Some(5000));
        assert_eq!(l.get(1), Some(&b"a"[..]));
        assert!(l.set(1, &big));
        l.check_invariants();
        assert!(!l.set(5, b"z"));
    }

    #[test]
    fn byte_fill_packs_8k_nodes() {
        let l = numbered(-2, 10_000);
        l.check_invariants();
        // Small integers take 2-4 listpack bytes, but each insert is judged by Redis's
        // estimate (size + length + 8): about 2000 per 8 KiB node.
        assert_eq!(l.node_count(), 5, "{:?}", l.node_sizes().collect::<Vec<_>>());
        let small = numbered(-1, 10_000);
        assert!(small.node_count() > l.node_count());
        assert!(l.heap_size() < 10_000 * 8, "{} bytes", l.heap_size());
    }

    #[test]
    fn shrink_to_fit_leaves_no_growth_slack() {
        let mut l = numbered(-2, 300);
        l.shrink_to_fit();
        let bytes: usize = l.nodes.iter().map(|n| n.buf.len()).sum();
        assert_eq!(l.heap_size(), bytes + l.nodes.capacity() * std::mem::size_of::<Node>());
    }

    #[test]
    fn remove_range_and_trim_across_nodes() {
        let mut l = numbered(4, 30);
        l.remove_range(3, 10);
        l.check_invariants();
        assert_eq!(l.len(), 20);
        assert_eq!(l.get(2), Some(&b"2"[..]));
        assert_eq!(l.get(3), Some(&b"13"[..]));
        l.retain_range(5, 9);
        l.check_invariants();
        assert_eq!(strings(l.iter()), ["15", "16", "17", "18"]);
        l.retain_range(3, 100);
        assert_eq!(strings(l.iter()), ["18"]);
        l.retain_range(1, 1);
        assert!(l.is_empty());
        assert_eq!(l.node_count(), 0);
    }

    #[test]
    fn deletions_leave_nodes_unmerged_as_redis_does() {
        let mut l = numbered(4, 16); // 4 full nodes
        assert_eq!(l.node_count(), 4);
        l.remove_range(2, 4); // leaves [0,1] [6,7] ...: Redis does not merge them
        l.check_invariants();
        assert_eq!(l.node_sizes().collect::<Vec<_>>(), [2, 2, 4, 4]);
        assert_eq!(strings(l.range(0, 4)), ["0", "1", "6", "7"]);
    }

    #[test]
    fn nodes_split_where_redis_splits_them() {
        // Redis 7.0 with the default fill (-2, 8 KiB): an 8-byte element takes 10
        // listpack bytes and may join while size + 8 + 8 <= 8192, so the first node
        // of an RPUSHed list holds (8192 - 16 - 7) / 10 + 1 = 817 elements.
        let mut l = ListValue::new(-2);
        for i in 0..2000 {
            l.push_back(format!("e{i:07}").as_bytes());
        }
        l.check_invariants();
        assert_eq!(l.node_sizes().collect::<Vec<_>>(), [817, 817, 366]);
    }

    #[test]
    fn remove_matching_from_either_end() {
        let items = ["a", "b", "a", "c", "a", "b", "a", "a", "d", "a"];
        let mut l = list_of(3, &items);
        assert_eq!(l.remove_matching(b"a", 2, false), 2);
        assert_eq!(strings(l.iter()), ["b", "c", "a", "b", "a", "a", "d", "a"]);
        assert_eq!(l.remove_matching(b"a", 2, true), 2);
        assert_eq!(strings(l.iter()), ["b", "c", "a", "b", "a", "d"]);
        assert_eq!(l.remove_matching(b"a", 0, true), 2);
        assert_eq!(l.remove_matching(b"zz", 0, false), 0);
        l.check_invariants();
        assert_eq!(strings(l.iter()), ["b", "c", "b", "d"]);
        assert_eq!(l.remove_matching(b"b", 0, false), 2);
        assert_eq!(l.remove_matching(b"c", 0, false), 1);
        assert_eq!(l.remove_matching(b"d", 0, false), 1);
        assert!(l.is_empty());
        assert_eq!(l.node_count(), 0);
    }

    #[test]
    fn fill_is_clamped_and_odd_fills_still_work() {
        for fill in [0, 1, -6, -100, 40000, i64::MIN, i64::MAX] {
            let mut l = numbered(fill, 40);
            l.insert(20, b"mid");
            l.remove_matching(b"7", 0, false);
            l.check_invariants();
            assert_eq!(l.len(), 40);
        }
        assert_eq!(ListValue::new(0).node_count(), 0);
    }

    #[test]
    fn equality_ignores_node_layout() {
        let a = numbered(2, 20);
        let b = numbered(-5, 20);
        assert_ne!(a.node_count(), b.node_count());
        assert_eq!(a, b);
        let c = numbered(-5, 19);
        assert_ne!(a, c);
        assert_eq!(format!("{:?}", list_of(-2, &["x", "y"])), r#"["x", "y"]"#);
    }

    #[derive(Clone, Debug)]
    enum Op {
        PushBack(Vec<u8>),
        PushFront(Vec<u8>),
        PopBack,
        PopFront,
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        RemoveRange(usize, usize),
        Retain(usize, usize),
        RemoveMatching(Vec<u8>, usize, bool),
    }

    fn elem() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::collection::vec(prop::sample::select(b"abc".to_vec()), 0..3),
            1 => prop::collection::vec(any::<u8>(), 100..300),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => elem().prop_map(Op::PushBack),
            4 => elem().prop_map(Op::PushFront),
            2 => Just(Op::PopBack),
            2 => Just(Op::PopFront),
            2 => (0..60usize, elem()).prop_map(|(i, v)| Op::Set(i, v)),
            3 => (0..60usize, elem()).prop_map(|(i, v)| Op::Insert(i, v)),
            1 => (0..60usize, 0..20usize).prop_map(|(s, n)| Op::RemoveRange(s, n)),
            1 => (0..30usize, 0..60usize).prop_map(|(s, e)| Op::Retain(s, e)),
            1 => (elem(), 0..3usize, any::<bool>()).prop_map(|(v, n, t)| Op::RemoveMatching(v, n, t)),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_vecdeque(fill in prop::sample::select(vec![-2i64, -1, 1, 2, 3, 5]),
                                   ops in prop::collection::vec(op(), 1..150)) {
            let mut l = ListValue::new(fill);
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::PushBack(v) => { l.push_back(&v); m.push_back(v); }
                    Op::PushFront(v) => { l.push_front(&v); m.push_front(v); }
                    Op::PopBack => prop_assert_eq!(l.pop_back(), m.pop_back()),
                    Op::PopFront => prop_assert_eq!(l.pop_front(), m.pop_front()),
                    Op::Set(i, v) => {
                        let ok = i < m.len();
                        if ok { m[i] = v.clone(); }
                        prop_assert_eq!(l.set(i, &v), ok);
                    }
                    Op::Insert(i, v) => {
                        let i = i.min(m.len());
                        l.insert(i, &v);
                        m.insert(i, v);
                    }
                    Op::RemoveRange(s, n) => {
                        l.remove_range(s, n);
                        let s = s.min(m.len());
                        let e = (s + n).min(m.len());
                        m.drain(s..e);
                    }
                    Op::Retain(s, e) => {
                        l.retain_range(s, e);
                        let e = e.min(m.len());
                        if s >= e { m.clear() } else { m = m.drain(s..e).collect(); }
                    }
                    Op::RemoveMatching(v, limit, from_tail) => {
                        let mut removed = 0;
                        let mut idx: Vec<usize> = (0..m.len()).collect();
                        if from_tail { idx.reverse(); }
                        let mut gone = Vec::new();
                        for i in idx {
                            if limit != 0 && removed == limit { break; }
                            if m[i] == v { gone.push(i); removed += 1; }
                        }
                        gone.sort_unstable();
                        for i in gone.into_iter().rev() { m.remove(i); }
                        prop_assert_eq!(l.remove_matching(&v, limit, from_tail), removed);
                    }
                }
                l.check_invariants();
                prop_assert_eq!(l.len(), m.len());
            }
            let got: Vec<Vec<u8>> = l.iter().map(|b| b.to_vec()).collect();
            prop_assert_eq!(&got, &m.iter().cloned().collect::<Vec<_>>());
            let back: Vec<Vec<u8>> = l.iter().rev().map(|b| b.to_vec()).collect();
            prop_assert_eq!(back, m.iter().rev().cloned().collect::<Vec<_>>());
            for (i, v) in m.iter().enumerate() {
                prop_assert_eq!(l.get(i), Some(&v[..]));
            }
            if !m.is_empty() {
                let (s, e) = (m.len() / 3, m.len() - m.len() / 4);
                let r: Vec<Vec<u8>> = l.range(s, e).rev().map(|b| b.to_vec()).collect();
                let want: Vec<Vec<u8>> = m.range(s..e).rev().cloned().collect();
                prop_assert_eq!(r, want);
            }
        }
    }
}
