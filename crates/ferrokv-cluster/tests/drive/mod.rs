//! Drives one `ClusterState` with inputs decoded from arbitrary bytes: hostile or confused
//! peers, link events in any order, commands, time going back and forth. Shared by the
//! property test (`tests/hostile_peers.rs`) and the cargo-fuzz target (`fuzz/`).

use ferrokv_cluster::wire::{Body, Gossip, Header, Message};
use ferrokv_cluster::{
    cluster_info_text, cluster_nodes_text, cluster_replicas, cluster_shards, cluster_slots, decode_frame,
    ClusterConfig, ClusterState, Command, Input, LinkId, NodeFlags, NodeId, Output, SlotBitmap,
};

struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn below(&mut self, n: u64) -> u64 {
        (self.u8() as u64 | (self.u8() as u64) << 8) % n.max(1)
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}

fn id(c: u8) -> NodeId {
    NodeId::parse(&[c; 40]).expect("valid id")
}

const POOL: &[u8] = b"abcdemz";

fn pick_id(b: &mut Bytes) -> NodeId {
    id(POOL[b.below(POOL.len() as u64) as usize])
}

fn flags(b: &mut Bytes) -> NodeFlags {
    let role = match b.below(4) {
        0 => NodeFlags::MASTER,
        1 => NodeFlags::SLAVE,
        2 => NodeFlags::NONE,
        _ => NodeFlags::MASTER | NodeFlags::SLAVE,
    };
    NodeFlags(role.0 | (b.u8() as u16 & 0b1111_1100) | (b.u8() as u16 & 0b10) << 8)
}

fn slots(b: &mut Bytes) -> SlotBitmap {
    let mut s = SlotBitmap::new();
    for _ in 0..b.below(3) {
        let start = b.below(16384) as u16;
        let len = b.below(2000) as u16;
        s.insert_range(start, start.saturating_add(len).min(16383));
    }
    s
}

fn ip(b: &mut Bytes) -> String {
    ["", "10.0.0.1", "10.0.0.2", "10.0.0.3", "::1"][b.below(5) as usize].to_string()
}

fn message(b: &mut Bytes) -> Message {
    let header = Header {
        sender: pick_id(b),
        current_epoch: b.below(10),
        config_epoch: b.below(10),
        repl_offset: b.below(3),
        flags: flags(b),
        state_ok: b.u8() & 1 == 1,
        mflags: b.u8() & 3,
        myip: ip(b),
        port: 7000 + b.below(3) as u16,
        pport: 0,
        cport: 17000 + b.below(3) as u16,
        hostname: if b.u8() & 1 == 1 { "h".into() } else { String::new() },
        cores: Default::default(),
        master: if b.u8() & 1 == 1 { Some(pick_id(b)) } else { None },
        slots: slots(b),
    };
    let mut gossip = Vec::new();
    for _ in 0..b.below(5) {
        gossip.push(Gossip {
            id: pick_id(b),
            ping_sent: b.below(100_000),
            pong_received: b.below(100_000),
            ip: ip(b),
            port: 7000 + b.below(3) as u16,
            cport: 17000 + b.below(3) as u16,
            pport: 0,
            flags: flags(b),
        });
    }
    let body = match b.below(8) {
        0 => Body::Ping(gossip),
        1 => Body::Pong(gossip),
        2 => Body::Meet(gossip),
        3 => Body::Fail { about: pick_id(b) },
        4 => Body::FailoverAuthRequest,
        5 => Body::FailoverAuthAck,
        6 => Body::MfStart,
        7 if b.below(4) == 0 => Body::Publish { channel: vec![b.u8()], message: vec![b.u8(); 3] },
        _ => Body::Update { node: pick_id(b), config_epoch: b.below(12), slots: slots(b) },
    };
    Message { header, body }
}

fn link(b: &mut Bytes) -> LinkId {
    if b.u8() & 1 == 1 {
        LinkId::Inbound(b.below(4))
    } else {
        LinkId::Outbound(b.below(12))
    }
}

fn arg(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn command(b: &mut Bytes) -> Command {
    let node = arg(pick_id(b).as_str());
    let slot = b.below(16390).to_string();
    match b.below(14) {
        0 => Command::Meet { ip: arg(&ip(b)), port: arg("7001"), bus_port: None },
        1 => Command::Forget(node),
        2 => Command::AddSlots(vec![arg(&slot)]),
        3 => Command::DelSlots(vec![arg(&slot)]),
        4 => Command::AddSlotsRange(vec![arg(&slot), arg("16383")]),
        5 => {
            let action = ["importing", "migrating", "node", "stable"][b.below(4) as usize];
            let mut args = vec![arg(&slot), arg(action)];
            if action != "stable" {
                args.push(node);
            }
            Command::SetSlot { args, keys_in_slot: b.below(2) }
        }
        6 => Command::Replicate { node, db_empty: b.u8() & 1 == 1 },
        7 => Command::BumpEpoch,
        8 => Command::SetConfigEpoch(arg(&b.below(5).to_string())),
        9 => Command::Reset { mode: Some(arg(if b.u8() & 1 == 1 { "hard" } else { "soft" })), db_empty: true },
        10 => Command::FlushSlots { db_empty: true },
        11 => Command::CountFailureReports(node),
        12 => {
            Command::Failover { option: [None, Some(arg("force")), Some(arg("takeover"))][b.below(3) as usize].clone() }
        }
        _ => Command::SaveConfig,
    }
}

fn conf() -> String {
    let (m, a, b, c, d) = (id(b'm'), id(b'a'), id(b'b'), id(b'c'), id(b'd'));
    format!(
        "{m} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5000\n\
         {a} 10.0.0.2:7000@17000 master - 0 0 2 connected 5001-10000\n\
         {b} 10.0.0.3:7000@17000 master,fail? - 1 1 3 connected 10001-16383\n\
         {c} 10.0.0.4:7000@17000 slave {a} 0 0 2 connected\n\
         {d} 10.0.0.5:7000@17000 slave {m} 0 0 1 connected\n\
         vars currentEpoch 3 lastVoteEpoch 0\n"
    )
}

/// Runs the inputs `data` encodes; panics on any broken invariant.
pub fn drive(data: &[u8]) {
    let mut b = Bytes { data, pos: 0 };
    let mut cfg = ClusterConfig::new(7000, 1);
    cfg.node_timeout_ms = 1000;
    let mut st = ClusterState::load(cfg.clone(), &conf(), 1000).expect("valid conf");
    let mut now: u64 = 1000;
    while !b.done() {
        match b.u8() {
            255 => now = now.saturating_sub(5000),
            d => now += d as u64 * 20,
        }
        let input = match b.below(10) {
            0 | 1 => Input::Tick,
            2 => Input::Accepted { link: LinkId::Inbound(b.below(4)), peer_ip: ip(&mut b), local_ip: ip(&mut b) },
            3 => Input::Connected(link(&mut b)),
            4 => Input::Closed(link(&mut b)),
            5 => Input::Command(command(&mut b)),
            6 => {
                // What the replication layer reports: offsets and the master link.
                st.set_repl_offset(b.below(3));
                st.set_master_link_down_since(if b.u8() & 1 == 1 {
                    None
                } else {
                    Some(now.saturating_sub(b.below(60_000)))
                });
                Input::Tick
            }
            _ => Input::Message { link: link(&mut b), msg: message(&mut b) },
        };
        let outs = st.handle(now, input);
        if let Err(e) = st.check_consistency() {
            panic!("inconsistent after {} bytes: {e}", b.pos);
        }
        for o in outs {
            match o {
                Output::Send { msg, .. } => {
                    let bytes = msg.encode();
                    let (back, used) = decode_frame(&bytes).expect("own frames decode").expect("complete");
                    assert_eq!(used, bytes.len());
                    assert_eq!(&back, msg.as_ref());
                }
                Output::SaveConfig { text, .. } => {
                    let back = ClusterState::load(cfg.clone(), &text, now).expect("own nodes.conf loads");
                    assert_eq!(back.my_id(), st.my_id());
                }
                Output::ViewChanged(v) => {
                    let _ = (cluster_nodes_text(&v), cluster_info_text(&v), cluster_slots(&v), cluster_shards(&v));
                    let _ = cluster_replicas(&v, v.me().id.as_str().as_bytes());
                    assert!(v.nodes.windows(2).all(|w| w[0].id < w[1].id));
                }
                _ => {}
            }
        }
    }
}
