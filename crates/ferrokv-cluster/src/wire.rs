//! Cluster bus messages and their binary encoding.
//!
//! The content of each message follows Redis's `clusterMsg`: a header describing the sender
//! (ID, epochs, flags, the slots it or its master serves, its master, its address) and a body
//! per type (gossip entries for PING/PONG/MEET, the failing node for FAIL, a node's slot
//! claim for UPDATE). The encoding is ferrokv's own, little-endian, length-prefixed:
//!
//! ```text
//! frame   = len:u32 payload                 (len = payload length, <= MAX_FRAME)
//! payload = "FKCB" version:u8 type:u8 header body
//! header  = sender:id40 current_epoch:u64 config_epoch:u64 repl_offset:u64 flags:u16
//!           state_ok:u8 mflags:u8 myip:str port:u16 pport:u16 cport:u16 hostname:str
//!           cores has_master:u8 [master:id40] slots:slotset
//! cores   = nports:u8 (port:u16)*nports nruns:u16 (last_slot:u16 core:u8)*nruns
//!           (the sender's per-core client ports and slot → core table, see `cores.rs`)
//! str     = len:u8 bytes                    (UTF-8)
//! slotset = 0:u8 count:u16 (start:u16 end:u16)*count    (ranges)
//!         | 1:u8 bitmap:2048 bytes                     (Redis's bit layout)
//! gossip  = count:u16 (id:id40 ping_sent:u64 pong_received:u64 ip:str port:u16 cport:u16
//!           pport:u16 flags:u16)*count
//! FAIL    = id:id40          UPDATE = id:id40 config_epoch:u64 slots:slotset
//! PUBLISH, PUBLISHSHARD = channel:bytes message:bytes     (bytes = len:u32 bytes)
//! FAILOVER_AUTH_REQUEST, FAILOVER_AUTH_ACK, MFSTART = (no body: the header says it all)
//! ```
//!
//! A failover vote request claims the header's `slots` under its `config_epoch` (a replica's
//! header carries its master's), and `mflags` carries [`mflags::FORCEACK`] for a manual
//! failover; a master paused for a manual failover sets [`mflags::PAUSED`] in every header
//! so that its replica reads the offset to reach from `repl_offset`.
//!
//! Decoding never panics: every malformed input is a [`DecodeError`].

use crate::cores::CoreEndpoints;
use crate::flags::NodeFlags;
use crate::id::NodeId;
use crate::slots::{SlotBitmap, SLOTS};

const MAGIC: &[u8; 4] = b"FKCB";
const VERSION: u8 = 2;

/// Largest payload accepted (a header plus gossip about a few thousand nodes fits easily).
pub const MAX_FRAME: usize = 4 << 20;

/// Message type codes; equal to Redis's `CLUSTERMSG_TYPE_*` so that statistics read the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgType {
    Ping = 0,
    Pong = 1,
    Meet = 2,
    Fail = 3,
    Publish = 4,
    FailoverAuthRequest = 5,
    FailoverAuthAck = 6,
    Update = 7,
    MfStart = 8,
    PublishShard = 10,
}

/// Bits of [`Header::mflags`] (Redis's `CLUSTERMSG_FLAG0_*`).
pub mod mflags {
    /// The sender is a master whose writes are paused for a manual failover; its
    /// `repl_offset` is final until the failover ends.
    pub const PAUSED: u8 = 1;
    /// A failover vote request from a manual failover: grant it although the master works.
    pub const FORCEACK: u8 = 2;
}

/// Number of message type codes Redis counts statistics for.
pub const MSG_TYPE_COUNT: usize = 11;

/// The names `CLUSTER INFO` prints for each type code (`cluster_stats_messages_<name>_sent`).
pub const MSG_TYPE_NAMES: [&str; MSG_TYPE_COUNT] =
    ["ping", "pong", "meet", "fail", "publish", "auth-req", "auth-ack", "update", "mfstart", "module", "publishshard"];

/// What every message says about its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub sender: NodeId,
    pub current_epoch: u64,
    /// The config epoch of the sender, or of its master if the sender is a replica.
    pub config_epoch: u64,
    pub repl_offset: u64,
    pub flags: NodeFlags,
    pub state_ok: bool,
    /// Message flags (Redis's `mflags[0]`, e.g. "master paused for manual failover").
    pub mflags: u8,
    /// The announced IP, or empty: the receiver then uses the connection's peer address.
    pub myip: String,
    pub port: u16,
    pub pport: u16,
    pub cport: u16,
    /// The announced hostname (Redis sends it as a ping extension), or empty.
    pub hostname: String,
    /// The sender's per-core client ports and slot → core table (empty: none).
    pub cores: Box<CoreEndpoints>,
    /// The sender's master when the sender is a replica.
    pub master: Option<NodeId>,
    /// Slots served by the sender, or by its master if the sender is a replica.
    pub slots: SlotBitmap,
}

/// One gossip entry: what the sender knows about some other node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossip {
    pub id: NodeId,
    pub ping_sent: u64,
    pub pong_received: u64,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub pport: u16,
    pub flags: NodeFlags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Ping(Vec<Gossip>),
    Pong(Vec<Gossip>),
    Meet(Vec<Gossip>),
    /// The named node is failing: every receiver flags it FAIL.
    Fail {
        about: NodeId,
    },
    /// The named node serves these slots with this config epoch (sent to stale claimers).
    Update {
        node: NodeId,
        config_epoch: u64,
        slots: SlotBitmap,
    },
    /// A replica asks every master for its vote to replace its master (header: the epoch of
    /// the election as `current_epoch`, the claimed slots with their config epoch).
    FailoverAuthRequest,
    /// A master's vote, sent to the replica that asked.
    FailoverAuthAck,
    /// A replica asks its master to pause writes for a manual failover.
    MfStart,
    /// A PUBLISH made on the sender: every receiver delivers it to its subscribers.
    Publish {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    /// An SPUBLISH made on the sender, sent to the nodes of its shard.
    PublishShard {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    BadMagic,
    BadVersion(u8),
    UnknownType(u8),
    Truncated,
    TooLarge(usize),
    BadNodeId,
    BadString,
    BadSlot,
    TrailingBytes,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for DecodeError {}

impl Message {
    pub fn msg_type(&self) -> MsgType {
        match self.body {
            Body::Ping(_) => MsgType::Ping,
            Body::Pong(_) => MsgType::Pong,
            Body::Meet(_) => MsgType::Meet,
            Body::Fail { .. } => MsgType::Fail,
            Body::Update { .. } => MsgType::Update,
            Body::FailoverAuthRequest => MsgType::FailoverAuthRequest,
            Body::FailoverAuthAck => MsgType::FailoverAuthAck,
            Body::MfStart => MsgType::MfStart,
            Body::Publish { .. } => MsgType::Publish,
            Body::PublishShard { .. } => MsgType::PublishShard,
        }
    }

    pub fn gossip(&self) -> &[Gossip] {
        match &self.body {
            Body::Ping(g) | Body::Pong(g) | Body::Meet(g) => g,
            _ => &[],
        }
    }

    /// The whole frame: length prefix and payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(256 + 64 * self.gossip().len());
        w.extend_from_slice(&[0; 4]);
        w.extend_from_slice(MAGIC);
        w.push(VERSION);
        w.push(self.msg_type() as u8);
        let h = &self.header;
        w.extend_from_slice(h.sender.as_bytes());
        put_u64(&mut w, h.current_epoch);
        put_u64(&mut w, h.config_epoch);
        put_u64(&mut w, h.repl_offset);
        put_u16(&mut w, h.flags.0);
        w.push(h.state_ok as u8);
        w.push(h.mflags);
        put_str(&mut w, &h.myip);
        put_u16(&mut w, h.port);
        put_u16(&mut w, h.pport);
        put_u16(&mut w, h.cport);
        put_str(&mut w, &h.hostname);
        put_cores(&mut w, &h.cores);
        match &h.master {
            Some(m) => {
                w.push(1);
                w.extend_from_slice(m.as_bytes());
            }
            None => w.push(0),
        }
        put_slots(&mut w, &h.slots);
        match &self.body {
            Body::Ping(g) | Body::Pong(g) | Body::Meet(g) => {
                put_u16(&mut w, g.len().min(u16::MAX as usize) as u16);
                for e in g.iter().take(u16::MAX as usize) {
                    w.extend_from_slice(e.id.as_bytes());
                    put_u64(&mut w, e.ping_sent);
                    put_u64(&mut w, e.pong_received);
                    put_str(&mut w, &e.ip);
                    put_u16(&mut w, e.port);
                    put_u16(&mut w, e.cport);
                    put_u16(&mut w, e.pport);
                    put_u16(&mut w, e.flags.0);
                }
            }
            Body::Fail { about } => w.extend_from_slice(about.as_bytes()),
            Body::Update { node, config_epoch, slots } => {
                w.extend_from_slice(node.as_bytes());
                put_u64(&mut w, *config_epoch);
                put_slots(&mut w, slots);
            }
            Body::FailoverAuthRequest | Body::FailoverAuthAck | Body::MfStart => {}
            Body::Publish { channel, message } | Body::PublishShard { channel, message } => {
                put_bytes(&mut w, channel);
                put_bytes(&mut w, message);
            }
        }
        let len = (w.len() - 4) as u32;
        w[..4].copy_from_slice(&len.to_le_bytes());
        w
    }

    /// Decodes one payload (without the length prefix).
    pub fn decode(payload: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader { buf: payload, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        let ty = r.u8()?;
        let header = Header {
            sender: r.id()?,
            current_epoch: r.u64()?,
            config_epoch: r.u64()?,
            repl_offset: r.u64()?,
            flags: NodeFlags(r.u16()?),
            state_ok: r.u8()? != 0,
            mflags: r.u8()?,
            myip: r.str()?,
            port: r.u16()?,
            pport: r.u16()?,
            cport: r.u16()?,
            hostname: r.str()?,
            cores: Box::new(r.cores()?),
            master: match r.u8()? {
                0 => None,
                _ => Some(r.id()?),
            },
            slots: r.slots()?,
        };
        let body = match ty {
            0..=2 => {
                let count = r.u16()? as usize;
                let mut g = Vec::with_capacity(count.min(payload.len() / 64 + 1));
                for _ in 0..count {
                    g.push(Gossip {
                        id: r.id()?,
                        ping_sent: r.u64()?,
                        pong_received: r.u64()?,
                        ip: r.str()?,
                        port: r.u16()?,
                        cport: r.u16()?,
                        pport: r.u16()?,
                        flags: NodeFlags(r.u16()?),
                    });
                }
                match ty {
                    0 => Body::Ping(g),
                    1 => Body::Pong(g),
                    _ => Body::Meet(g),
                }
            }
            3 => Body::Fail { about: r.id()? },
            5 => Body::FailoverAuthRequest,
            6 => Body::FailoverAuthAck,
            7 => Body::Update { node: r.id()?, config_epoch: r.u64()?, slots: r.slots()? },
            8 => Body::MfStart,
            4 => Body::Publish { channel: r.bytes()?.to_vec(), message: r.bytes()?.to_vec() },
            10 => Body::PublishShard { channel: r.bytes()?.to_vec(), message: r.bytes()?.to_vec() },
            other => return Err(DecodeError::UnknownType(other)),
        };
        if r.pos != payload.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(Message { header, body })
    }
}

/// Decodes the first frame of a stream buffer. `Ok(None)`: more bytes are needed.
/// `Ok(Some((msg, used)))`: `used` bytes form one frame. An error means the stream is corrupt
/// (drop the connection), except that a frame with a bad payload still reports its length
/// through [`frame_len`] so a caller may skip it instead.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Message, usize)>, DecodeError> {
    let Some(len) = frame_len(buf)? else { return Ok(None) };
    if buf.len() < 4 + len {
        return Ok(None);
    }
    Ok(Some((Message::decode(&buf[4..4 + len])?, 4 + len)))
}

/// The payload length announced by a frame's prefix, `None` while fewer than 4 bytes are there.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(prefix) = buf.get(..4) else { return Ok(None) };
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > MAX_FRAME {
        return Err(DecodeError::TooLarge(len));
    }
    Ok(Some(len))
}

fn put_u16(w: &mut Vec<u8>, v: u16) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    w.extend_from_slice(&(b.len() as u32).to_le_bytes());
    w.extend_from_slice(b);
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    // Longer strings cannot be addresses or hostnames; cut at a character boundary.
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    w.push(end as u8);
    w.extend_from_slice(&s.as_bytes()[..end]);
}

fn put_cores(w: &mut Vec<u8>, cores: &CoreEndpoints) {
    let n = cores.ports.len().min(u8::MAX as usize);
    w.push(n as u8);
    for &p in &cores.ports[..n] {
        put_u16(w, p);
    }
    let runs = if n == 0 { &[][..] } else { &cores.runs[..] };
    put_u16(w, runs.len().min(u16::MAX as usize) as u16);
    for &(last, core) in runs.iter().take(u16::MAX as usize) {
        put_u16(w, last);
        w.push(core);
    }
}

fn put_slots(w: &mut Vec<u8>, slots: &SlotBitmap) {
    let ranges = slots.ranges();
    if 3 + ranges.len() * 4 < 1 + SLOTS / 8 {
        w.push(0);
        put_u16(w, ranges.len() as u16);
        for (s, e) in ranges {
            put_u16(w, s);
            put_u16(w, e);
        }
    } else {
        w.push(1);
        w.extend_from_slice(&slots.to_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn id(&mut self) -> Result<NodeId, DecodeError> {
        NodeId::parse(self.take(NodeId::LEN)?).ok_or(DecodeError::BadNodeId)
    }

    fn cores(&mut self) -> Result<CoreEndpoints, DecodeError> {
        let n = self.u8()? as usize;
        let mut ports = Vec::with_capacity(n);
        for _ in 0..n {
            ports.push(self.u16()?);
        }
        let nruns = self.u16()? as usize;
        let mut runs = Vec::with_capacity(nruns.min(SLOTS));
        for _ in 0..nruns {
            runs.push((self.u16()?, self.u8()?));
        }
        let cores = CoreEndpoints { ports, runs };
        if !cores.is_valid() {
            return Err(DecodeError::BadSlot);
        }
        Ok(cores)
    }

    fn bytes(&mut self) -> Result<&[u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.u8()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::BadString)
    }

    fn slots(&mut self) -> Result<SlotBitmap, DecodeError> {
        let mut out = SlotBitmap::new();
        match self.u8()? {
            0 => {
                let n = self.u16()?;
                for _ in 0..n {
                    let (s, e) = (self.u16()?, self.u16()?);
                    if s > e || e as usize >= SLOTS {
                        return Err(DecodeError::BadSlot);
                    }
                    out.insert_range(s, e);
                }
            }
            1 => {
                let mut a = [0u8; SLOTS / 8];
                a.copy_from_slice(self.take(SLOTS / 8)?);
                out = SlotBitmap::from_bytes(&a);
            }
            _ => return Err(DecodeError::BadSlot),
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    fn header(rng: &mut Rng) -> Header {
        let mut slots = SlotBitmap::new();
        slots.insert_range(0, 5460);
        slots.insert(9000);
        Header {
            sender: NodeId::random(rng),
            current_epoch: 7,
            config_epoch: 3,
            repl_offset: 12345,
            flags: NodeFlags::MASTER | NodeFlags::MYSELF,
            state_ok: true,
            mflags: 0,
            myip: "10.0.0.1".into(),
            port: 6379,
            pport: 0,
            cport: 16379,
            hostname: "node-a.example".into(),
            cores: Box::new(CoreEndpoints::new(vec![7100, 7101], |s| s as usize * 2 / SLOTS)),
            master: Some(NodeId::random(rng)),
            slots,
        }
    }

    fn samples() -> Vec<Message> {
        let mut rng = Rng::new(1);
        let h = header(&mut rng);
        let g = Gossip {
            id: NodeId::random(&mut rng),
            ping_sent: 1,
            pong_received: 2,
            ip: "::1".into(),
            port: 7000,
            cport: 17000,
            pport: 0,
            flags: NodeFlags::SLAVE | NodeFlags::PFAIL,
        };
        let mut every_other = SlotBitmap::new();
        for s in (0..SLOTS as u16).step_by(2) {
            every_other.insert(s);
        }
        vec![
            Message { header: h.clone(), body: Body::Ping(vec![g.clone(), g.clone()]) },
            Message { header: h.clone(), body: Body::Pong(vec![]) },
            Message { header: h.clone(), body: Body::Meet(vec![g]) },
            Message { header: h.clone(), body: Body::Fail { about: NodeId::random(&mut rng) } },
            Message {
                header: h.clone(),
                body: Body::Update { node: NodeId::random(&mut rng), config_epoch: 9, slots: every_other },
            },
            Message { header: Header { mflags: mflags::FORCEACK, ..h.clone() }, body: Body::FailoverAuthRequest },
            Message { header: h.clone(), body: Body::FailoverAuthAck },
            Message { header: Header { mflags: mflags::PAUSED, ..h.clone() }, body: Body::MfStart },
            Message {
                header: h.clone(),
                body: Body::Publish { channel: b"news".to_vec(), message: vec![0, 255, 13, 10] },
            },
            Message { header: h, body: Body::PublishShard { channel: vec![], message: b"m".to_vec() } },
        ]
    }

    #[test]
    fn every_type_round_trips() {
        for m in samples() {
            let bytes = m.encode();
            let (back, used) = decode_frame(&bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(back, m);
        }
    }

    #[test]
    fn sparse_slot_sets_use_ranges_and_dense_ones_the_bitmap() {
        let m = &samples()[0];
        assert!(m.encode().len() < 400, "a 2-range header should stay small");
        let u = &samples()[4];
        assert!(u.encode().len() > SLOTS / 8);
    }

    #[test]
    fn partial_frames_wait_and_garbage_is_rejected() {
        let bytes = samples()[0].encode();
        for cut in 0..bytes.len() {
            assert_eq!(decode_frame(&bytes[..cut]), Ok(None));
        }
        let mut bad = bytes.clone();
        bad[4] = b'X';
        assert_eq!(decode_frame(&bad), Err(DecodeError::BadMagic));
        let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(matches!(decode_frame(&huge), Err(DecodeError::TooLarge(_))));
        let mut trailing = bytes[4..].to_vec();
        trailing.push(0);
        assert_eq!(Message::decode(&trailing), Err(DecodeError::TrailingBytes));
        // A truncated payload inside a complete frame.
        assert_eq!(Message::decode(&bytes[4..bytes.len() - 1]), Err(DecodeError::Truncated));
    }

    #[test]
    fn invalid_slot_ranges_are_errors() {
        let mut rng = Rng::new(2);
        let m = Message { header: header(&mut rng), body: Body::Pong(vec![]) };
        let mut bytes = m.encode()[4..].to_vec();
        // Locate the slot set: a range tag 0, count 2, then (0, 5460).
        let pos = bytes.windows(5).position(|w| w == [0, 2, 0, 0, 0]).unwrap();
        bytes[pos + 5..pos + 7].copy_from_slice(&20000u16.to_le_bytes());
        assert_eq!(Message::decode(&bytes), Err(DecodeError::BadSlot));
    }

    proptest! {
        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = decode_frame(&data);
            let _ = Message::decode(&data);
        }

        #[test]
        fn mutated_messages_never_panic(idx in 0usize..8, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = samples()[idx].encode();
            for (at, v) in flips {
                let n = bytes.len();
                bytes[at % n] = v;
            }
            let _ = decode_frame(&bytes);
            let _ = Message::decode(&bytes[4..]);
        }
    }
}
