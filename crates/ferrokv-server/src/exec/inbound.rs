//! What a shard's core does with its inputs, without IO: bytes that arrived on a
//! connection (parsed and run), messages from other shards (forwarded commands and
//! their replies, blocked clients' wake-ups), and the passing of time (blocking
//! timeouts). The shard's event loop (`shard.rs`) feeds it from its ring; the
//! request-path simulator (`tests/request_path_sim.rs`) feeds it from a seeded
//! schedule, with every shard's core on one thread.

use crate::conn::{Conn, ConnTable};
use crate::dispatch::{Flow, ShardCore};
use crate::msg::Msg;
use ferrokv_resp::Parsed;
use std::sync::atomic::Ordering;

impl ShardCore {
    /// Parses and runs what arrived on `c`; keeps an incomplete tail for the next
    /// read. Returns false when the query buffer went over `client-query-buffer-limit`
    /// (the caller closes the connection).
    pub fn on_data(&mut self, c: &mut Conn, data: &[u8]) -> bool {
        if c.inbuf.is_empty() {
            let used = self.process(c, data);
            if used < data.len() && !c.closing {
                c.inbuf.extend_from_slice(&data[used..]);
            }
        } else {
            c.inbuf.extend_from_slice(data);
            self.process_inbuf(c);
        }
        if c.inbuf.len() as u64 > self.query_buffer_limit {
            // Redis's words (`readQueryFromClient`); the connection closes, its buffer goes.
            let head = &c.inbuf[..c.inbuf.len().min(64)];
            tracing::warn!(
                "Closing client that reached max query buffer length: {} (qbuf initial bytes: {})",
                crate::client_mem::client_info(c).trim_end(),
                crate::config::rewrite::quote_bytes(head)
            );
            c.inbuf = Vec::new();
            return false;
        }
        true
    }

    /// After the reply of command `seq` arrived: leave a blocking command it ended, and
    /// go on parsing once nothing holds the connection back.
    pub fn unblock_and_resume(&mut self, c: &mut Conn, seq: u64) {
        if c.blocked().is_some_and(|b| b.seq == seq) {
            if let Some(b) = c.take_blocked() {
                self.uncount_blocked(&b);
            }
        }
        if c.barrier == Some(seq) {
            c.barrier = None;
        }
        if c.stalled && c.pending.is_empty() {
            c.stalled = false;
        }
        if !c.stalled && !c.waiting() && !c.inbuf.is_empty() && !c.dead {
            self.process_inbuf(c);
        }
    }

    pub fn process_inbuf(&mut self, c: &mut Conn) {
        let mut buf = std::mem::take(&mut c.inbuf);
        let used = self.process(c, &buf);
        if c.closing {
            buf.clear();
        } else {
            buf.drain(..used);
        }
        c.inbuf = buf;
    }

    /// Runs the complete commands at the start of `buf`; returns the bytes consumed.
    pub fn process(&mut self, c: &mut Conn, buf: &[u8]) -> usize {
        // The parser's limits (proto-max-bulk-len) must be those of a CONFIG SET that
        // another shard already answered.
        self.refresh_config();
        let mut parser = std::mem::take(&mut c.parser);
        let mut pos = 0;
        // CLIENT LIST's qbuf while these commands run: the whole read, as Redis's query
        // buffer holds it until the read is processed.
        c.meta.qbuf.store(buf.len() as u64, Ordering::Relaxed);
        // Commands run, and when to look ahead next (after the ones prefetched ran).
        let (mut ran, mut look_ahead_at) = (0, 0);
        while pos < buf.len() && !c.stalled && !c.closing && !c.waiting() {
            if ran == look_ahead_at && !parser.in_frame() {
                look_ahead_at = match self.prefetch(&buf[pos..]) {
                    n if n >= 2 => ran + n,
                    _ => usize::MAX,
                };
            }
            ran += 1;
            let limits = self.limits(c.authed);
            match parser.parse(&buf[pos..], &limits) {
                Ok(Parsed::Command { consumed }) => {
                    let args = parser.args(&buf[pos..]);
                    match self.run_command(c, &args) {
                        Flow::Done => {
                            pos += consumed;
                            // A client that pipelines and never reads is closed at its
                            // limit, not after the whole read ran.
                            self.check_output(c);
                            if c.pending.len() >= crate::client_mem::FORWARD_WINDOW && self.output_limited(c) {
                                // Replies of forwarded commands are measured only when
                                // they arrive: bound how many may be on their way.
                                c.stalled = true;
                            }
                        }
                        Flow::Stall => {
                            c.stalled = true;
                            parser.reset();
                        }
                    }
                }
                Ok(Parsed::Empty { consumed }) => pos += consumed,
                Ok(Parsed::Incomplete) => break,
                Err(e) => {
                    // Raw bytes: the message may quote a request byte that is not UTF-8.
                    c.reply(|r| r.raw(&e.reply()));
                    c.closing = true;
                    tracing::debug!("client id={}: {}", c.meta.id, e.0);
                    break;
                }
            }
        }
        c.parser = parser;
        c.meta.qbuf.store((buf.len() - pos) as u64, Ordering::Relaxed);
        pos
    }

    /// Answers blocked connections whose timeout passed by `self.now_ms`; the indexes
    /// of the connections that got a reply go to `touched`.
    pub fn expire_blocked(&mut self, conns: &mut ConnTable, touched: &mut Vec<usize>) {
        let now = self.now_ms;
        while let Some(std::cmp::Reverse((at, token, seq))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some((idx, c)) = conns.by_token(token) else { continue };
            let Some(b) = c.blocked().filter(|b| b.seq == seq) else { continue };
            if b.waiter.claim() {
                let reply = b.waiter.timeout_reply();
                c.complete(seq, reply);
                self.unblock_and_resume(c, seq);
                touched.push(idx);
            }
        }
    }

    /// Prefetches the keyspace memory of the forwarded commands' keys before running
    /// them, as [`ShardCore::prefetch`] does for a read's pipeline: a batch of
    /// forwarded lookups otherwise pays its cache misses one after the other.
    pub fn prefetch_forwarded(&self, inbox: &[Msg]) {
        let keys: Vec<&[u8]> = inbox
            .iter()
            .filter_map(|m| match m {
                Msg::Exec(f) => {
                    let args = f.args.args();
                    (args.len() >= 2).then(|| args.get(1))
                }
                _ => None,
            })
            .collect();
        if keys.len() >= 2 {
            self.node.lock_db(self.id).prefetch(&keys);
        }
    }

    /// Handles a message from another shard: runs a forwarded command, takes a reply
    /// to one of this shard's connections, or wakes a blocked one. The indexes of
    /// connections with new output go to `touched`. Messages that need the shard's IO
    /// (the cluster bus, closing a socket) come back for the event loop.
    pub fn handle_message(&mut self, m: Msg, conns: &mut ConnTable, touched: &mut Vec<usize>) -> Option<Msg> {
        match m {
            Msg::Exec(f) => {
                let (from, token, seq) = (f.from, f.token, f.seq);
                if let Some(bytes) = self.exec_forwarded(f) {
                    self.send(from, Msg::Reply { token, seq, bytes });
                }
            }
            Msg::Reply { token, seq, bytes } => {
                let (idx, c) = conns.by_token(token)?;
                c.complete(seq, bytes);
                self.check_output(c);
                self.unblock_and_resume(c, seq);
                touched.push(idx);
            }
            Msg::Blocked { token, seq, timeout_ms } => {
                let (_, c) = conns.by_token(token)?;
                if let Some(b) = c.blocked_mut().filter(|b| b.seq == seq) {
                    b.counted = true;
                    b.timed = timeout_ms > 0;
                    self.count_blocked(1);
                    if timeout_ms > 0 {
                        self.count_timed(1);
                    }
                    self.start_timeout(token, seq, timeout_ms);
                }
            }
            Msg::Retry { token, seq } => {
                let (idx, c) = conns.by_token(token)?;
                if c.blocked().is_some_and(|b| b.seq == seq) {
                    if let Some(bytes) = self.retry_blocked(c) {
                        c.complete(seq, bytes);
                        self.unblock_and_resume(c, seq);
                        touched.push(idx);
                    }
                }
            }
            Msg::MigrateDone(done) => crate::migrate::finish(self, *done, conns, touched),
            Msg::Publish(p) => {
                crate::pubsub::resolve(self, p);
                crate::pubsub::deliver(self, conns, touched);
            }
            Msg::Tracking { token, notice } => {
                let (idx, c) = conns.by_token(token)?;
                if !c.dead {
                    self.write_notice(c, notice);
                    touched.push(idx);
                }
                crate::pubsub::deliver(self, conns, touched);
            }
            Msg::TrackingRelay(owed) => self.tracking_relay(*owed),
            Msg::TrackingFlushRelay(id) => self.flush_relay(id),
            Msg::TrackingFlushMarker(id) => {
                self.flush_marker(id);
                crate::pubsub::deliver(self, conns, touched);
            }
            other => return Some(other),
        }
        None
    }
}
