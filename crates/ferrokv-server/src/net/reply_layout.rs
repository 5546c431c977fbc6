//! Redis's view of a connection's unsent output: CLIENT LIST's `obl`, `oll`, `omem`,
//! `rbs` and `rbp`, and the figure `client-output-buffer-limit` compares.
//!
//! ferrokv builds replies in one growable buffer and sends it whole. Redis 7.0 puts
//! them first in the client's reply buffer (`c->buf`: 16 KB at first, resized once a
//! second by `clientsCronResizeOutputBuffer`) and, once that is full or while anything
//! waits behind it, in a list of blocks (`clientReplyBlock`), each allocated with room
//! for at least 16 KB (`PROTO_REPLY_CHUNK_BYTES`) or for the rest of the reply being
//! added, and counted at the size jemalloc gave it. Its `omem`
//! (`getClientOutputBufferMemoryUsage`) is the blocks' sizes plus a list node and a block
//! header each — the reply buffer is left out, so a client whose replies fit there shows
//! 0 — and the output limits compare that figure; `tot-mem` adds the reply buffer.
//!
//! So that a limit trips where Redis's trips and CLIENT LIST shows Redis's figures, each
//! connection keeps the layout Redis would give the same output (lengths only): fed
//! with each reply as it is added and with each send as it completes. While the output
//! fits the reply buffer (nearly always), a reply costs an add and a compare.
//!
//! Where it can differ from Redis: Redis adds a bulk reply in three pieces (length,
//! bytes, CRLF) and this layout takes each reply whole, so the block made for a big
//! reply can be a few bytes longer here (which shows only when that crosses one of
//! jemalloc's size classes); a reply Redis builds with a deferred length (KEYS, SCAN, ...)
//! leaves a placeholder node in its list; and the reply of a command run on another
//! shard is added when it arrives, after what was added meanwhile.

use std::collections::VecDeque;

/// Redis's `PROTO_REPLY_CHUNK_BYTES`: the first reply buffer, and the least a block holds.
const CHUNK: usize = 16 * 1024;
/// Redis's `PROTO_REPLY_MIN_BYTES`: the smallest a reply buffer shrinks to.
const MIN_BYTES: usize = 1024;
/// `sizeof(clientReplyBlock)` (size and used, before the bytes) and `sizeof(listNode)`.
const BLOCK_HEADER: usize = 16;
const LIST_NODE: usize = 24;
/// Redis's `reply-buffer-peak-reset-time` default (ms).
const PEAK_RESET_MS: u64 = 5000;

/// The size jemalloc (5.3, as Redis links it) hands out for a request of `n` bytes:
/// 8, then multiples of 16 up to 128, then four classes per doubling.
pub fn jemalloc_usable(n: usize) -> usize {
    if n <= 8 {
        return 8;
    }
    if n <= 128 {
        return n.div_ceil(16) * 16;
    }
    let lg = usize::BITS - (n - 1).leading_zeros(); // 2^lg >= n > 2^(lg-1)
    let spacing = 1usize << (lg - 3);
    n.div_ceil(spacing) * spacing
}

/// The reply buffer and block list Redis would hold for a connection's unsent output.
#[derive(Debug)]
pub struct ReplyLayout {
    /// `buf_usable_size` (`rbs`).
    buf_size: usize,
    /// `bufpos` (`obl`): bytes in the reply buffer, sent or not.
    buf_used: usize,
    /// `sentlen` of the reply buffer.
    buf_sent: usize,
    /// `buf_peak` (`rbp`) and when it last restarted.
    peak: usize,
    peak_reset_ms: u64,
    /// The blocks: (size, used), oldest first; `front_sent` bytes of the first went out.
    blocks: VecDeque<(usize, usize)>,
    front_sent: usize,
    /// `reply_bytes`: the blocks' sizes.
    reply_bytes: usize,
}

impl Default for ReplyLayout {
    /// A new client's: a 16 KB buffer whose peak is its size (Redis's `createClient`).
    fn default() -> Self {
        ReplyLayout {
            buf_size: CHUNK,
            buf_used: 0,
            buf_sent: 0,
            peak: CHUNK,
            peak_reset_ms: 0,
            blocks: VecDeque::new(),
            front_sent: 0,
            reply_bytes: 0,
        }
    }
}

impl ReplyLayout {
    /// A reply of `n` bytes was added (Redis's `_addReplyToBufferOrList`).
    #[inline]
    pub fn add(&mut self, n: usize) {
        if self.blocks.is_empty() {
            let room = self.buf_size - self.buf_used;
            if n <= room {
                self.buf_used += n;
                self.peak = self.peak.max(self.buf_used);
                return;
            }
            self.buf_used = self.buf_size;
            self.peak = self.peak.max(self.buf_used);
            self.add_to_list(n - room);
        } else {
            self.add_to_list(n);
        }
    }

    /// Redis's `_addReplyProtoToList`: fills the last block, then adds one sized for
    /// the rest (at least 16 KB), counted at its allocated size.
    fn add_to_list(&mut self, mut n: usize) {
        if let Some((size, used)) = self.blocks.back_mut() {
            let copy = n.min(*size - *used);
            *used += copy;
            n -= copy;
        }
        if n > 0 {
            let size = jemalloc_usable(n.max(CHUNK) + BLOCK_HEADER) - BLOCK_HEADER;
            self.blocks.push_back((size, n));
            self.reply_bytes += size;
        }
    }

    /// `n` bytes went out, oldest first (Redis's `_writeToClient`): the reply buffer,
    /// then the blocks, each freed once sent.
    pub fn sent(&mut self, mut n: usize) {
        while n > 0 {
            if self.buf_used > 0 {
                let k = n.min(self.buf_used - self.buf_sent);
                self.buf_sent += k;
                n -= k;
                if self.buf_sent == self.buf_used {
                    self.buf_used = 0;
                    self.buf_sent = 0;
                }
                continue;
            }
            let Some(&(size, used)) = self.blocks.front() else { return };
            let k = n.min(used - self.front_sent);
            self.front_sent += k;
            n -= k;
            if self.front_sent == used {
                self.blocks.pop_front();
                self.reply_bytes -= size;
                self.front_sent = 0;
            }
        }
    }

    /// The output was dropped (the connection is closed for its buffers).
    pub fn clear(&mut self) {
        self.buf_used = 0;
        self.buf_sent = 0;
        self.blocks.clear();
        self.front_sent = 0;
        self.reply_bytes = 0;
    }

    /// `omem`, what the output limits compare: the blocks at their allocated size, a
    /// list node and header each; the reply buffer is not counted.
    #[inline]
    pub fn omem(&self) -> usize {
        self.reply_bytes + self.blocks.len() * (LIST_NODE + BLOCK_HEADER)
    }

    /// `obl`: bytes in the reply buffer.
    pub fn obl(&self) -> usize {
        self.buf_used
    }

    /// `oll`: blocks in the list.
    pub fn oll(&self) -> usize {
        self.blocks.len()
    }

    /// `rbs`: the reply buffer's size.
    pub fn rbs(&self) -> usize {
        self.buf_size
    }

    /// `rbp`: the most the reply buffer held since the peak last restarted.
    pub fn rbp(&self) -> usize {
        self.peak
    }

    /// Once a second (Redis's `clientsCronResizeOutputBuffer`): a buffer less than half
    /// used at its peak shrinks to the peak (at least 1 KB); one filled to its size
    /// doubles, up to 16 KB; the peak restarts every 5 s (the first time at the first
    /// call, as Redis 7.0 compares a creation time in seconds with one in ms).
    pub fn resize(&mut self, now_ms: u64) {
        let mut new = 0;
        if self.buf_size / 2 >= MIN_BYTES && self.peak < self.buf_size / 2 {
            new = MIN_BYTES.max(self.peak + 1);
        } else if self.buf_size * 2 < CHUNK * 2 && self.peak == self.buf_size {
            new = CHUNK.min(self.buf_size * 2);
        }
        if self.peak_reset_ms == 0 || now_ms.saturating_sub(self.peak_reset_ms) >= PEAK_RESET_MS {
            self.peak = self.buf_used;
            self.peak_reset_ms = now_ms;
        }
        if new != 0 {
            self.buf_size = jemalloc_usable(new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jemalloc_classes() {
        let cases = [
            (1, 8),
            (9, 16),
            (100, 112),
            (129, 160),
            (1024, 1024),
            (1025, 1280),
            (16384, 16384),
            (16400, 20480),
            (83641, 98304),
            (1048592, 1310720),
        ];
        for (n, class) in cases {
            assert_eq!(jemalloc_usable(n), class, "{n}");
        }
    }

    /// A 100,000-byte GET reply on a new client, as Redis 7.0.15 lays it out (CLIENT
    /// INFO right after it in the same pipeline: obl=16384 oll=1 omem=98328).
    #[test]
    fn a_big_reply_fills_the_buffer_then_one_block() {
        let mut l = ReplyLayout::default();
        l.add(100_000 + 11);
        assert_eq!((l.obl(), l.oll(), l.omem()), (16384, 1, 98288 + 40));
        // Small replies then go into that block's slack, then into 16 KB blocks.
        l.add(100);
        assert_eq!(l.oll(), 1);
        l.add(20_000);
        assert_eq!((l.oll(), l.omem()), (2, 98288 + 20464 + 80));
        // Sending empties the buffer first, then frees each block once sent.
        l.sent(16384);
        assert_eq!((l.obl(), l.oll()), (0, 2));
        l.sent(98288); // the first block, filled up by the 20,000 bytes' start
        assert_eq!((l.oll(), l.omem()), (1, 20464 + 40));
        l.sent(5439);
        assert_eq!((l.obl(), l.oll(), l.omem()), (0, 0, 0));
        // With nothing behind it, the buffer takes replies again.
        l.add(10);
        assert_eq!((l.obl(), l.omem()), (10, 0));
    }

    #[test]
    fn an_idle_buffer_shrinks_and_a_full_one_grows_back() {
        let mut l = ReplyLayout::default();
        l.add(16);
        l.sent(16);
        l.resize(1000); // the first call restarts the peak (it was the buffer's size)
        assert_eq!((l.rbs(), l.rbp()), (16384, 0));
        l.resize(2000);
        assert_eq!(l.rbs(), 1024);
        l.add(5000);
        assert_eq!((l.obl(), l.oll(), l.rbp()), (1024, 1, 1024));
        l.resize(3000);
        assert_eq!(l.rbs(), 2048);
    }
}
