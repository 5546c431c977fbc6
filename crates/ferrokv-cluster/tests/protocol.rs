//! Single-node protocol tests: one `ClusterState` fed hand-made messages and link events.

use ferrokv_cluster::wire::{Body, Gossip, Header, Message};
use ferrokv_cluster::{
    cluster_nodes_text, ClusterConfig, ClusterState, Command, Input, LinkId, NodeFlags, NodeId, Output, Reply,
    SlotBitmap,
};
use std::sync::Arc;

const T: u64 = 1000; // node timeout in these tests

fn id(c: char) -> NodeId {
    NodeId::parse(c.to_string().repeat(40).as_bytes()).unwrap()
}

fn cfg() -> ClusterConfig {
    let mut c = ClusterConfig::new(7000, 42);
    c.node_timeout_ms = T;
    c.log_level = ferrokv_cluster::LogLevel::Debug;
    c
}

/// A node loaded from nodes.conf lines (`{x}` stands for the ID made of `x`s).
fn load(lines: &[&str], now: u64) -> ClusterState {
    let mut text = String::new();
    for l in lines {
        let mut l = l.to_string();
        for c in ['a', 'b', 'c', 'd', 'e', 'm', 'z'] {
            l = l.replace(&format!("{{{c}}}"), id(c).as_str());
        }
        text.push_str(&l);
        text.push('\n');
    }
    ClusterState::load(cfg(), &text, now).unwrap()
}

fn slots(a: u16, b: u16) -> SlotBitmap {
    let mut s = SlotBitmap::new();
    s.insert_range(a, b);
    s
}

fn header(sender: NodeId, config_epoch: u64, slots: SlotBitmap) -> Header {
    Header {
        sender,
        current_epoch: config_epoch,
        config_epoch,
        repl_offset: 0,
        flags: NodeFlags::MASTER,
        state_ok: true,
        mflags: 0,
        myip: String::new(),
        port: 7000,
        pport: 0,
        cport: 17000,
        hostname: String::new(),
        cores: Default::default(),
        master: None,
        slots,
    }
}

fn gossip(about: NodeId, flags: NodeFlags) -> Gossip {
    Gossip {
        id: about,
        ping_sent: 0,
        pong_received: 0,
        ip: "10.0.0.9".into(),
        port: 7000,
        cport: 17000,
        pport: 0,
        flags,
    }
}

fn sends(outs: &[Output]) -> Vec<(LinkId, Arc<Message>)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { link, msg } => Some((*link, msg.clone())),
            _ => None,
        })
        .collect()
}

fn connects(outs: &[Output]) -> Vec<(LinkId, String, u16)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Connect { link, ip, port } => Some((*link, ip.clone(), *port)),
            _ => None,
        })
        .collect()
}

/// Accepts an inbound link from `ip` and feeds it one message.
fn inbound(st: &mut ClusterState, now: u64, n: u64, ip: &str, msg: Message) -> Vec<Output> {
    let link = LinkId::Inbound(n);
    st.handle(now, Input::Accepted { link, peer_ip: ip.into(), local_ip: "10.0.0.1".into() });
    st.handle(now, Input::Message { link, msg })
}

fn reply(outs: Vec<Output>) -> Result<Reply, String> {
    outs.into_iter()
        .find_map(|o| match o {
            Output::Reply(r) => Some(r),
            _ => None,
        })
        .expect("a reply")
}

fn cmd(st: &mut ClusterState, now: u64, c: Command) -> Result<Reply, String> {
    reply(st.handle(now, Input::Command(c)))
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

const FOUR_MASTERS: &[&str] = &[
    "{m} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5000",
    "{a} 10.0.0.2:7000@17000 master - 0 0 2 connected 5001-10000",
    "{b} 10.0.0.3:7000@17000 master - 0 0 3 connected 10001-16383",
    "{c} 10.0.0.4:7000@17000 master - 0 0 4 connected",
    "{d} 10.0.0.5:7000@17000 slave {a} 0 0 0 connected",
    "vars currentEpoch 4 lastVoteEpoch 0",
];

/// The peers of `FOUR_MASTERS`, by address: their ID and what their headers say.
fn peer_header(ip: &str) -> Option<Header> {
    let (c, epoch, sl, master) = match ip {
        "10.0.0.2" => ('a', 2, slots(5001, 10000), None),
        "10.0.0.3" => ('b', 3, slots(10001, 16383), None),
        "10.0.0.4" => ('c', 4, SlotBitmap::new(), None),
        "10.0.0.5" => ('d', 2, slots(5001, 10000), Some(id('a'))),
        _ => return None,
    };
    let mut h = header(id(c), epoch, sl);
    if let Some(m) = master {
        h.flags = NodeFlags::SLAVE;
        h.master = Some(m);
    }
    Some(h)
}

/// Runs `st` with every peer of `FOUR_MASTERS` answering, except those at `down`, until
/// `until`. Connections to down peers fail; pings to the others get pongs. Returns every
/// output, in no particular order.
fn run_with_peers(st: &mut ClusterState, from: u64, until: u64, down: &[&str]) -> Vec<Output> {
    let mut links: std::collections::BTreeMap<LinkId, String> = Default::default();
    let mut now = from;
    let mut seen = Vec::new();
    while now <= until {
        let mut queue = st.handle(now, Input::Tick);
        while let Some(o) = queue.pop() {
            match &o {
                Output::Connect { link, ip, .. } => {
                    if down.contains(&ip.as_str()) {
                        queue.extend(st.handle(now, Input::Closed(*link)));
                    } else {
                        links.insert(*link, ip.clone());
                        queue.extend(st.handle(now, Input::Connected(*link)));
                    }
                }
                Output::Send { link: link @ LinkId::Outbound(_), msg }
                    if matches!(msg.body, Body::Ping(_) | Body::Meet(_)) =>
                {
                    if let Some(h) = links.get(link).and_then(|ip| peer_header(ip)) {
                        let pong = Message { header: h, body: Body::Pong(vec![]) };
                        queue.extend(st.handle(now, Input::Message { link: *link, msg: pong }));
                    }
                }
                _ => {}
            }
            seen.push(o);
        }
        now += 100;
    }
    seen
}

/// The peer address of each outbound link asked for in `outs`.
fn link_peers(outs: &[Output]) -> std::collections::BTreeMap<LinkId, String> {
    connects(outs).into_iter().map(|(l, ip, _)| (l, ip)).collect()
}

/// Not in Redis, which waits for the next gossip to carry it: a master that flags a node
/// PFAIL sends it at once to the other masters (the nodes whose reports count) in a PONG, so
/// the last of a majority to flag it holds a quorum at once.
#[test]
fn a_master_flagging_a_node_pfail_tells_the_other_masters_at_once() {
    let mut st = load(FOUR_MASTERS, 10_000);
    let mut peers = link_peers(&run_with_peers(&mut st, 10_000, 12_500, &[]));
    let mut now = 12_600;
    let outs = loop {
        let outs = run_with_peers(&mut st, now, now, &["10.0.0.2"]);
        peers.extend(link_peers(&outs));
        now += 100;
        if st.view().node(&id('a')).unwrap().flags.intersects(NodeFlags::PFAIL) {
            break outs;
        }
        assert!(now < 12_600 + 3 * T, "a never became PFAIL");
    };
    let mut told: Vec<&str> = sends(&outs)
        .iter()
        .filter(|(_, m)| match &m.body {
            Body::Pong(g) => g.iter().any(|g| g.id == id('a') && g.flags.intersects(NodeFlags::PFAIL)),
            _ => false,
        })
        .map(|(l, _)| peers[l].as_str())
        .collect();
    told.sort();
    // b and c (a master without slots, whose report counts too), not the replica d.
    assert_eq!(told, vec!["10.0.0.3", "10.0.0.4"]);
    assert!(!st.view().node(&id('a')).unwrap().is_failed(), "no report yet");
}

/// A report held before this node's own verdict completes a quorum the moment the node
/// flags PFAIL, without waiting for more gossip.
#[test]
fn a_report_already_held_makes_fail_as_soon_as_this_node_flags_pfail() {
    let mut st = load(FOUR_MASTERS, 10_000);
    run_with_peers(&mut st, 10_000, 12_500, &[]);
    let mut m = Message { header: peer_header("10.0.0.3").unwrap(), body: Body::Ping(vec![]) };
    if let Body::Ping(g) = &mut m.body {
        g.push(gossip(id('a'), NodeFlags::MASTER | NodeFlags::PFAIL));
    }
    inbound(&mut st, 12_550, 1, "10.0.0.3", m);
    assert!(!st.view().node(&id('a')).unwrap().is_failed(), "a still answers us");
    let mut now = 12_600;
    let outs = loop {
        let outs = run_with_peers(&mut st, now, now, &["10.0.0.2"]);
        now += 100;
        if st.view().node(&id('a')).unwrap().flags.intersects(NodeFlags::PFAIL | NodeFlags::FAIL) {
            break outs;
        }
        assert!(now < 12_600 + 3 * T, "a never timed out");
    };
    assert!(st.view().node(&id('a')).unwrap().is_failed());
    assert!(sends(&outs).iter().any(|(_, m)| m.body == Body::Fail { about: id('a') }));
}

/// Times `a` out while the others answer; returns the time.
fn time_out_a(st: &mut ClusterState) -> u64 {
    // Past the 2 s a restarted master waits before computing the cluster state.
    run_with_peers(st, 10_000, 12_500, &[]);
    assert!(st.view().state_ok);
    assert_eq!(st.view().size, 3);
    let mut now = 12_600;
    while !st.view().node(&id('a')).unwrap().flags.intersects(NodeFlags::PFAIL) {
        run_with_peers(st, now, now, &["10.0.0.2"]);
        now += 100;
        assert!(now < 12_600 + 3 * T, "a never became PFAIL");
    }
    assert!(now > 12_600 + T / 2, "PFAIL too early");
    let v = st.view();
    assert_eq!(v.nodes.iter().filter(|n| n.flags.intersects(NodeFlags::PFAIL)).count(), 1, "only a");
    now
}

#[test]
fn pfail_becomes_fail_with_a_majority_of_slot_serving_masters() {
    let mut st = load(FOUR_MASTERS, 10_000);
    let now = time_out_a(&mut st);
    // size is 3 (c serves no slot): quorum 2 = this node + one report. A replica's report
    // does not count.
    let mut m = Message { header: peer_header("10.0.0.5").unwrap(), body: Body::Ping(vec![]) };
    if let Body::Ping(g) = &mut m.body {
        g.push(gossip(id('a'), NodeFlags::MASTER | NodeFlags::PFAIL));
    }
    inbound(&mut st, now, 1, "10.0.0.5", m);
    assert_eq!(cmd(&mut st, now, Command::CountFailureReports(b(id('a').as_str()))), Ok(Reply::Integer(0)));
    assert!(!st.view().node(&id('a')).unwrap().is_failed());

    let mut m = Message { header: peer_header("10.0.0.3").unwrap(), body: Body::Ping(vec![]) };
    if let Body::Ping(g) = &mut m.body {
        g.push(gossip(id('a'), NodeFlags::MASTER | NodeFlags::PFAIL));
    }
    let outs = inbound(&mut st, now, 2, "10.0.0.3", m);
    let v = st.view();
    assert!(v.node(&id('a')).unwrap().is_failed());
    assert!(!v.node(&id('a')).unwrap().flags.intersects(NodeFlags::PFAIL));
    assert!(!v.state_ok, "a's slots are uncovered");
    // The verdict is broadcast to every node we have a link to (b, c, d).
    let fails: Vec<_> = sends(&outs).into_iter().filter(|(_, m)| matches!(m.body, Body::Fail { .. })).collect();
    assert_eq!(fails.len(), 3);
    assert!(fails.iter().all(|(_, m)| m.body == Body::Fail { about: id('a') }));
}

#[test]
fn a_slotless_master_reports_too_but_reports_expire() {
    // c serves no slot but is a master: its report counts (as in Redis).
    let mut st = load(FOUR_MASTERS, 10_000);
    let now = time_out_a(&mut st);
    let mut m = Message { header: peer_header("10.0.0.4").unwrap(), body: Body::Ping(vec![]) };
    if let Body::Ping(g) = &mut m.body {
        g.push(gossip(id('a'), NodeFlags::MASTER | NodeFlags::FAIL));
    }
    inbound(&mut st, now, 1, "10.0.0.4", m);
    assert!(st.view().node(&id('a')).unwrap().is_failed());

    // A report older than 2 × node-timeout no longer counts: b's report, then c's too late.
    let report = |from: &str, at: u64, link: u64, st: &mut ClusterState| {
        let mut m = Message { header: peer_header(from).unwrap(), body: Body::Ping(vec![]) };
        if let Body::Ping(g) = &mut m.body {
            g.push(gossip(id('a'), NodeFlags::MASTER | NodeFlags::PFAIL));
        }
        inbound(st, at, link, from, m);
    };
    // Without the vote of this node (a replica now), one report of two masters is short.
    let mut st = load(
        &[
            "{m} 10.0.0.1:7000@17000 myself,slave {b} 0 0 0 connected",
            "{a} 10.0.0.2:7000@17000 master - 0 0 2 connected 5001-10000",
            "{b} 10.0.0.3:7000@17000 master - 0 0 3 connected 0-5000 10001-16383",
            "{c} 10.0.0.4:7000@17000 master - 0 0 4 connected",
            "vars currentEpoch 4 lastVoteEpoch 0",
        ],
        10_000,
    );
    run_with_peers(&mut st, 10_000, 12_500, &[]);
    let mut now = 12_600;
    while !st.view().node(&id('a')).unwrap().flags.intersects(NodeFlags::PFAIL) {
        run_with_peers(&mut st, now, now, &["10.0.0.2"]);
        now += 100;
    }
    report("10.0.0.3", now, 1, &mut st);
    assert_eq!(cmd(&mut st, now, Command::CountFailureReports(b(id('a').as_str()))), Ok(Reply::Integer(1)));
    assert!(!st.view().node(&id('a')).unwrap().is_failed(), "one report of two masters is no majority");
    let later = now + 2 * T + 1;
    report("10.0.0.4", later, 2, &mut st);
    assert!(!st.view().node(&id('a')).unwrap().is_failed(), "b's report expired");
    assert_eq!(cmd(&mut st, later, Command::CountFailureReports(b(id('a').as_str()))), Ok(Reply::Integer(1)));
    report("10.0.0.3", later + 10, 3, &mut st);
    assert!(st.view().node(&id('a')).unwrap().is_failed());
}

#[test]
fn fail_messages_apply_only_from_known_senders_and_clear_when_the_node_answers() {
    let mut st = load(FOUR_MASTERS, 10_000);
    // Unknown sender: ignored.
    let m = Message { header: header(id('e'), 9, SlotBitmap::new()), body: Body::Fail { about: id('d') } };
    inbound(&mut st, 10_000, 1, "10.0.0.9", m);
    assert!(!st.view().node(&id('d')).unwrap().is_failed());
    // Known sender: applied.
    let m = Message { header: header(id('b'), 3, slots(10001, 16383)), body: Body::Fail { about: id('d') } };
    inbound(&mut st, 10_000, 2, "10.0.0.3", m);
    assert!(st.view().node(&id('d')).unwrap().is_failed());
    // d (a replica) answers a ping: FAIL is cleared at once.
    let outs = st.handle(10_100, Input::Tick);
    let to_d = connects(&outs).into_iter().find(|(_, ip, _)| ip == "10.0.0.5").unwrap().0;
    st.handle(10_110, Input::Connected(to_d));
    let mut pong = Message { header: header(id('d'), 2, slots(5001, 10000)), body: Body::Pong(vec![]) };
    pong.header.flags = NodeFlags::SLAVE;
    pong.header.master = Some(id('a'));
    st.handle(10_120, Input::Message { link: to_d, msg: pong });
    assert!(!st.view().node(&id('d')).unwrap().is_failed());
}

#[test]
fn a_failed_master_with_slots_is_cleared_only_after_twice_the_timeout() {
    let mut st = load(FOUR_MASTERS, 10_000);
    let m = Message { header: header(id('b'), 3, slots(10001, 16383)), body: Body::Fail { about: id('a') } };
    inbound(&mut st, 10_000, 1, "10.0.0.3", m);
    let outs = st.handle(10_050, Input::Tick);
    let to_a = connects(&outs).into_iter().find(|(_, ip, _)| ip == "10.0.0.2").unwrap().0;
    st.handle(10_060, Input::Connected(to_a));
    let pong = Message { header: header(id('a'), 2, slots(5001, 10000)), body: Body::Pong(vec![]) };
    st.handle(10_500, Input::Message { link: to_a, msg: pong.clone() });
    assert!(st.view().node(&id('a')).unwrap().is_failed(), "too early to clear");
    st.handle(10_000 + 2 * T + 1, Input::Message { link: to_a, msg: pong });
    assert!(!st.view().node(&id('a')).unwrap().is_failed());
}

#[test]
fn a_stale_slot_claim_gets_an_update_naming_the_new_owner() {
    let mut st = load(
        &[
            "{m} 10.0.0.1:7000@17000 myself,master - 0 0 3 connected 300-400",
            "{a} 10.0.0.2:7000@17000 master - 0 0 1 connected 0-100",
            "{b} 10.0.0.3:7000@17000 master - 0 0 5 connected 101-200",
            "vars currentEpoch 5 lastVoteEpoch 0",
        ],
        10_000,
    );
    let outs = st.handle(10_000, Input::Tick);
    let to_a = connects(&outs).into_iter().find(|(_, ip, _)| ip == "10.0.0.2").unwrap().0;
    // a still claims 101-200 with epoch 1.
    let m = Message { header: header(id('a'), 1, slots(0, 200)), body: Body::Ping(vec![]) };
    let outs = inbound(&mut st, 10_010, 1, "10.0.0.2", m);
    let updates: Vec<_> = sends(&outs).into_iter().filter(|(_, m)| matches!(m.body, Body::Update { .. })).collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].0, to_a, "sent on our link to a");
    assert_eq!(updates[0].1.body, Body::Update { node: id('b'), config_epoch: 5, slots: slots(101, 200) });
    // Our table is unchanged: b keeps its slots.
    assert_eq!(st.view().slot_owner(150).unwrap().id, id('b'));
}

#[test]
fn an_update_takes_slots_away_and_an_emptied_master_follows_the_new_owner() {
    let mut st = load(
        &[
            "{m} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-200",
            "{b} 10.0.0.3:7000@17000 master - 0 0 2 connected 300-400",
            "{c} 10.0.0.4:7000@17000 master - 0 0 3 connected 500-600",
            "vars currentEpoch 3 lastVoteEpoch 0",
        ],
        10_000,
    );
    let m = Message {
        header: header(id('c'), 3, slots(500, 600)),
        body: Body::Update { node: id('b'), config_epoch: 7, slots: slots(100, 400) },
    };
    let outs = inbound(&mut st, 10_000, 1, "10.0.0.4", m);
    let deleted: Vec<u16> = outs
        .iter()
        .filter_map(|o| match o {
            Output::DeleteKeysInSlots(s) => Some(s.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(deleted, (100..=200).collect::<Vec<u16>>());
    let v = st.view();
    assert_eq!(v.me().slot_ranges, vec![(0, 99)]);
    assert_eq!(v.node(&id('b')).unwrap().config_epoch, 7);
    assert!(v.me().is_master());
    // An UPDATE that is not newer is ignored.
    let m = Message {
        header: header(id('c'), 3, slots(500, 600)),
        body: Body::Update { node: id('b'), config_epoch: 7, slots: slots(0, 400) },
    };
    inbound(&mut st, 10_000, 2, "10.0.0.4", m);
    assert_eq!(st.view().me().slot_ranges, vec![(0, 99)]);
    // A newer one taking the rest turns us into b's replica.
    let m = Message {
        header: header(id('c'), 3, slots(500, 600)),
        body: Body::Update { node: id('b'), config_epoch: 8, slots: slots(0, 400) },
    };
    let outs = inbound(&mut st, 10_000, 3, "10.0.0.4", m);
    assert!(outs.iter().any(|o| matches!(o, Output::ReplicateFrom { master, .. } if *master == id('b'))));
    let v = st.view();
    assert!(v.me().is_replica());
    assert_eq!(v.me().master, Some(id('b')));
    assert!(outs.iter().all(|o| !matches!(o, Output::DeleteKeysInSlots(_))), "a new replica resyncs instead");
}

#[test]
fn config_epoch_collisions_move_the_smaller_id() {
    // m < z: m moves.
    let mut st = load(
        &[
            "{m} 10.0.0.1:7000@17000 myself,master - 0 0 3 connected 0-10",
            "{z} 10.0.0.3:7000@17000 master - 0 0 3 connected 11-20",
            "vars currentEpoch 5 lastVoteEpoch 0",
        ],
        0,
    );
    let m = Message { header: header(id('z'), 3, slots(11, 20)), body: Body::Ping(vec![]) };
    let outs = inbound(&mut st, 0, 1, "10.0.0.3", m);
    assert_eq!(st.view().me().config_epoch, 6);
    assert_eq!(st.current_epoch(), 6);
    assert!(matches!(outs.first(), Some(Output::SaveConfig { fsync: true, .. })), "persisted first");
    // a < m: m stays.
    let mut st = load(
        &[
            "{m} 10.0.0.1:7000@17000 myself,master - 0 0 3 connected 0-10",
            "{a} 10.0.0.2:7000@17000 master - 0 0 3 connected 11-20",
            "vars currentEpoch 5 lastVoteEpoch 0",
        ],
        0,
    );
    let m = Message { header: header(id('a'), 3, slots(11, 20)), body: Body::Ping(vec![]) };
    inbound(&mut st, 0, 1, "10.0.0.2", m);
    assert_eq!(st.view().me().config_epoch, 3);
}

#[test]
fn meet_handshake_renames_the_node_and_learns_our_address() {
    let mut st = ClusterState::new(cfg(), 0);
    assert_eq!(st.view().me().ip, "");
    let r = cmd(&mut st, 0, Command::Meet { ip: b("10.0.0.2"), port: b("7000"), bus_port: None });
    assert_eq!(r, Ok(Reply::Ok));
    // Meeting the same address again while the handshake runs adds nothing.
    cmd(&mut st, 0, Command::Meet { ip: b("10.0.0.2"), port: b("7000"), bus_port: None }).unwrap();
    let v = st.view();
    assert_eq!(v.nodes.len(), 2);
    let text = cluster_nodes_text(&v);
    assert!(text.contains(" 10.0.0.2:7000@17000 handshake - 0 0 0 disconnected\n"), "{text}");

    let outs = st.handle(100, Input::Tick);
    let (link, ip, port) = connects(&outs)[0].clone();
    assert_eq!((ip.as_str(), port), ("10.0.0.2", 17000));
    let outs = st.handle(110, Input::Connected(link));
    let s = sends(&outs);
    assert_eq!(s.len(), 1);
    assert!(matches!(s[0].1.body, Body::Meet(_)));
    // The PONG tells the real ID.
    let pong = Message { header: header(id('a'), 0, SlotBitmap::new()), body: Body::Pong(vec![]) };
    let outs = st.handle(120, Input::Message { link, msg: pong });
    assert!(outs.iter().any(|o| matches!(o, Output::SaveConfig { .. })));
    let v = st.view();
    let a = v.node(&id('a')).expect("renamed to its real ID");
    assert_eq!(a.flags, NodeFlags::MASTER);
    assert_eq!(a.pong_received, 120);
    // Our own address comes from the first MEET we receive.
    let meet = Message { header: header(id('a'), 0, SlotBitmap::new()), body: Body::Meet(vec![]) };
    let outs = inbound(&mut st, 130, 1, "10.0.0.2", meet);
    assert_eq!(st.view().me().ip, "10.0.0.1");
    assert!(sends(&outs).iter().any(|(l, m)| *l == LinkId::Inbound(1) && matches!(m.body, Body::Pong(_))));
}

#[test]
fn a_meet_from_an_unknown_node_adds_it_in_handshake_and_pongs() {
    let mut st = ClusterState::new(cfg(), 0);
    let meet = Message { header: header(id('a'), 0, SlotBitmap::new()), body: Body::Meet(vec![]) };
    let outs = inbound(&mut st, 10, 1, "10.0.0.2", meet);
    assert!(sends(&outs).iter().any(|(_, m)| matches!(m.body, Body::Pong(_))));
    let v = st.view();
    assert_eq!(v.nodes.len(), 2);
    let other = v.nodes.iter().find(|n| !n.is_myself()).unwrap();
    assert!(other.flags.intersects(NodeFlags::HANDSHAKE));
    assert_eq!((other.ip.as_str(), other.port, other.cport), ("10.0.0.2", 7000, 17000));
    // A handshake that does not complete within the node timeout (at least 1 s) is dropped.
    st.handle(500, Input::Tick);
    assert_eq!(st.view().nodes.len(), 2);
    st.handle(1100, Input::Tick);
    assert_eq!(st.view().nodes.len(), 1);
    // A plain PING from an unknown node is answered but adds nothing.
    let ping = Message { header: header(id('b'), 0, SlotBitmap::new()), body: Body::Ping(vec![]) };
    let outs = inbound(&mut st, 1200, 2, "10.0.0.3", ping);
    assert!(sends(&outs).iter().any(|(_, m)| matches!(m.body, Body::Pong(_))));
    assert_eq!(st.view().nodes.len(), 1);
}

#[test]
fn nodes_line_says_connected_only_while_the_link_is_up() {
    let mut st = load(FOUR_MASTERS, 0);
    let line_of_a = |st: &ClusterState| {
        let text = cluster_nodes_text(&st.view());
        text.lines().find(|l| l.starts_with(&id('a').to_string())).unwrap().to_string()
    };
    let outs = st.handle(100, Input::Tick);
    let to_a = connects(&outs).into_iter().find(|(_, ip, _)| ip == "10.0.0.2").unwrap().0;
    // A connection attempt under way is not a link.
    assert!(line_of_a(&st).contains(" disconnected"), "{}", line_of_a(&st));
    st.handle(110, Input::Connected(to_a));
    assert!(line_of_a(&st).contains(" connected"), "{}", line_of_a(&st));
    st.handle(120, Input::Closed(to_a));
    assert!(line_of_a(&st).contains(" disconnected"), "{}", line_of_a(&st));
    // Reconnecting (the peer is down): still disconnected until it connects.
    st.handle(1200, Input::Tick);
    assert!(line_of_a(&st).contains(" disconnected"), "{}", line_of_a(&st));
}

#[test]
fn a_pong_from_another_id_marks_the_address_unknown() {
    let mut st = load(FOUR_MASTERS, 0);
    let outs = st.handle(100, Input::Tick);
    let to_a = connects(&outs).into_iter().find(|(_, ip, _)| ip == "10.0.0.2").unwrap().0;
    st.handle(110, Input::Connected(to_a));
    let pong = Message { header: header(id('e'), 0, SlotBitmap::new()), body: Body::Pong(vec![]) };
    let outs = st.handle(120, Input::Message { link: to_a, msg: pong });
    assert!(outs.iter().any(|o| matches!(o, Output::Close(l) if *l == to_a)));
    let v = st.view();
    let a = v.node(&id('a')).unwrap();
    assert!(a.flags.intersects(NodeFlags::NOADDR));
    assert_eq!(a.ip, "");
    // No reconnection attempts to a node without an address.
    assert!(connects(&st.handle(200, Input::Tick)).is_empty());
}

#[test]
fn gossip_adds_nodes_from_known_senders_unless_banned() {
    let mut st = load(FOUR_MASTERS, 0);
    let mut m = Message { header: header(id('b'), 3, slots(10001, 16383)), body: Body::Ping(vec![]) };
    if let Body::Ping(g) = &mut m.body {
        g.push(gossip(id('e'), NodeFlags::MASTER));
    }
    inbound(&mut st, 0, 1, "10.0.0.3", m.clone());
    assert!(st.view().node(&id('e')).is_some());
    // Unknown sender: not trusted.
    let mut st2 = load(FOUR_MASTERS, 0);
    let mut m2 = m.clone();
    m2.header.sender = NodeId::parse(b"ffffffffffffffffffffffffffffffffffffffff").unwrap();
    inbound(&mut st2, 0, 1, "10.0.0.9", m2);
    assert!(st2.view().node(&id('e')).is_none());
    // FORGET bans the ID for 60 s.
    assert_eq!(cmd(&mut st, 0, Command::Forget(b(id('e').as_str()))), Ok(Reply::Ok));
    inbound(&mut st, 59_000, 2, "10.0.0.3", m.clone());
    assert!(st.view().node(&id('e')).is_none());
    inbound(&mut st, 60_001, 3, "10.0.0.3", m);
    assert!(st.view().node(&id('e')).is_some());
}

#[test]
fn role_changes_seen_in_headers() {
    let mut st = load(FOUR_MASTERS, 0);
    // c (a master) now says it replicates b.
    let mut m = Message { header: header(id('c'), 3, slots(10001, 16383)), body: Body::Ping(vec![]) };
    m.header.flags = NodeFlags::SLAVE;
    m.header.master = Some(id('b'));
    inbound(&mut st, 0, 1, "10.0.0.4", m);
    let v = st.view();
    let c = v.node(&id('c')).unwrap();
    assert!(c.is_replica());
    assert_eq!(c.master, Some(id('b')));
    assert_eq!(c.shown_epoch, 3, "a replica shows its master's epoch");
    let bi = v.node_index(&id('b')).unwrap();
    let ci = v.node_index(&id('c')).unwrap();
    assert!(v.nodes[bi].replicas.contains(&ci));
    // d (a replica of a) now claims to be a master.
    let m = Message { header: header(id('d'), 9, SlotBitmap::new()), body: Body::Ping(vec![]) };
    inbound(&mut st, 0, 2, "10.0.0.5", m);
    let v = st.view();
    assert!(v.node(&id('d')).unwrap().is_master());
    let ai = v.node_index(&id('a')).unwrap();
    assert!(v.nodes[ai].replicas.is_empty());
}

#[test]
fn cluster_nodes_lines_match_redis() {
    let mut st = load(
        &[
            "{m} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-99 101 [5->-{a}] [200-<-{a}]",
            "{a} 10.0.0.2:7000@17000,host-a master,fail? - 1 1 2 disconnected 200-300",
            "{d} 10.0.0.5:7000@17000 slave {a} 0 0 0 connected",
            "vars currentEpoch 2 lastVoteEpoch 0",
        ],
        5000,
    );
    let v = st.view();
    let text = cluster_nodes_text(&v);
    assert!(
        text.contains(&format!(
            "{} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-99 101 [5->-{}] [200-<-{}]\n",
            id('m'),
            id('a'),
            id('a')
        )),
        "{text}"
    );
    assert!(
        text.starts_with(&format!(
            "{} 10.0.0.2:7000@17000,host-a master,fail? - 5000 5000 2 disconnected 200-300\n",
            id('a')
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} 10.0.0.5:7000@17000 slave {} 0 0 2 disconnected\n", id('d'), id('a'))),
        "{text}"
    );
    let info = ferrokv_cluster::cluster_info_text(&v);
    assert!(
        info.starts_with(
            "cluster_state:fail\r\ncluster_slots_assigned:202\r\ncluster_slots_ok:101\r\ncluster_slots_pfail:101\r\n\
             cluster_slots_fail:0\r\ncluster_known_nodes:3\r\n"
        ),
        "{info}"
    );
    assert!(
        info.contains("\r\ncluster_current_epoch:2\r\ncluster_my_epoch:1\r\ncluster_stats_messages_sent:0\r\n"),
        "{info}"
    );
    assert!(info.ends_with("cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n"));
    // Replicas show their master's epoch in CLUSTER REPLICAS too.
    let lines = ferrokv_cluster::cluster_replicas(&v, id('a').as_str().as_bytes()).unwrap();
    assert_eq!(lines, vec![format!("{} 10.0.0.5:7000@17000 slave {} 0 0 2 disconnected", id('d'), id('a'))]);
    assert_eq!(
        ferrokv_cluster::cluster_replicas(&v, id('d').as_str().as_bytes()),
        Err("ERR The specified node is not a master".into())
    );
    assert_eq!(ferrokv_cluster::cluster_replicas(&v, b"nope"), Err("ERR Unknown node nope".into()));
    let _ = st.handle(5000, Input::Tick);
}

#[test]
fn command_errors_match_redis() {
    let mut st = load(FOUR_MASTERS, 0);
    let mut c = |cmd_: Command| cmd(&mut st, 0, cmd_);
    let slots_args = |v: &[&str]| v.iter().map(|s| b(s)).collect::<Vec<_>>();
    // MEET
    let meet =
        |ip: &str, port: &str, bus: Option<&str>| Command::Meet { ip: b(ip), port: b(port), bus_port: bus.map(b) };
    assert_eq!(c(meet("10.0.0.9", "x", None)), Err("ERR Invalid TCP base port specified: x".into()));
    assert_eq!(c(meet("10.0.0.9", "7000", Some("y"))), Err("ERR Invalid TCP bus port specified: y".into()));
    assert_eq!(c(meet("10.0.0", "7000", None)), Err("ERR Invalid node address specified: 10.0.0:7000".into()));
    assert_eq!(c(meet("10.0.0.9", "0", None)), Err("ERR Invalid node address specified: 10.0.0.9:0".into()));
    assert_eq!(c(meet("10.0.0.9", "60000", None)), Err("ERR Invalid node address specified: 10.0.0.9:60000".into()));
    assert_eq!(c(meet("::1", "7000", Some("7001"))), Ok(Reply::Ok));
    // ADDSLOTS / DELSLOTS
    assert_eq!(c(Command::AddSlots(slots_args(&["1", "x"]))), Err("ERR Invalid or out of range slot".into()));
    assert_eq!(c(Command::AddSlots(slots_args(&["16384"]))), Err("ERR Invalid or out of range slot".into()));
    assert_eq!(c(Command::AddSlots(slots_args(&["5"]))), Err("ERR Slot 5 is already busy".into()));
    assert_eq!(c(Command::DelSlots(slots_args(&["0", "0"]))), Err("ERR Slot 0 specified multiple times".into()));
    assert_eq!(
        c(Command::AddSlotsRange(slots_args(&["1", "2", "3"]))),
        Err("ERR wrong number of arguments for 'cluster|addslotsrange' command".into())
    );
    assert_eq!(
        c(Command::DelSlotsRange(slots_args(&["9", "3"]))),
        Err("ERR start slot number 9 is greater than end slot number 3".into())
    );
    // FLUSHSLOTS, then slots are free to add and delete.
    assert_eq!(
        c(Command::FlushSlots { db_empty: false }),
        Err("ERR DB must be empty to perform CLUSTER FLUSHSLOTS.".into())
    );
    assert_eq!(c(Command::FlushSlots { db_empty: true }), Ok(Reply::Ok));
    assert_eq!(c(Command::DelSlots(slots_args(&["0"]))), Err("ERR Slot 0 is already unassigned".into()));
    assert_eq!(
        c(Command::AddSlotsRange(slots_args(&["0", "10", "10", "12"]))),
        Err("ERR Slot 10 specified multiple times".into())
    );
    assert_eq!(c(Command::AddSlotsRange(slots_args(&["0", "10", "20", "30"]))), Ok(Reply::Ok));
    // SETSLOT
    let setslot = |v: &[&str], keys| Command::SetSlot { args: slots_args(v), keys_in_slot: keys };
    let (a, d) = (id('a').to_string(), id('d').to_string());
    assert_eq!(c(setslot(&["x", "stable"], 0)), Err("ERR Invalid or out of range slot".into()));
    assert_eq!(
        c(setslot(&["1", "bogus"], 0)),
        Err("ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP".into())
    );
    assert_eq!(
        c(setslot(&["1", "stable", "extra"], 0)),
        Err("ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP".into())
    );
    assert_eq!(c(setslot(&["5001", "migrating", &a], 0)), Err("ERR I'm not the owner of hash slot 5001".into()));
    assert_eq!(c(setslot(&["1", "migrating", "nobody"], 0)), Err("ERR I don't know about node nobody".into()));
    assert_eq!(c(setslot(&["1", "migrating", &d], 0)), Err("ERR Target node is not a master".into()));
    assert_eq!(c(setslot(&["1", "importing", &a], 0)), Err("ERR I'm already the owner of hash slot 1".into()));
    assert_eq!(c(setslot(&["1", "node", "nobody"], 0)), Err("ERR Unknown node nobody".into()));
    assert_eq!(
        c(setslot(&["1", "node", &a], 3)),
        Err("ERR Can't assign hashslot 1 to a different node while I still hold keys for this hash slot.".into())
    );
    assert_eq!(c(setslot(&["1", "MIGRATING", &a], 0)), Ok(Reply::Ok));
    assert_eq!(c(setslot(&["6000", "importing", &a], 0)), Ok(Reply::Ok));
    // FORGET
    let m = id('m').to_string();
    assert_eq!(c(Command::Forget(b("nobody"))), Err("ERR Unknown node nobody".into()));
    assert_eq!(c(Command::Forget(b(&m))), Err("ERR I tried hard but I can't forget myself...".into()));
    // REPLICATE
    assert_eq!(c(Command::Replicate { node: b("nobody"), db_empty: true }), Err("ERR Unknown node nobody".into()));
    assert_eq!(c(Command::Replicate { node: b(&m), db_empty: true }), Err("ERR Can't replicate myself".into()));
    assert_eq!(
        c(Command::Replicate { node: b(&d), db_empty: true }),
        Err("ERR I can only replicate a master, not a replica.".into())
    );
    assert_eq!(
        c(Command::Replicate { node: b(&a), db_empty: true }),
        Err("ERR To set a master the node must be empty and without assigned slots.".into())
    );
    // EPOCHS
    assert_eq!(c(Command::SetConfigEpoch(b("x"))), Err("ERR value is not an integer or out of range".into()));
    assert_eq!(c(Command::SetConfigEpoch(b("-1"))), Err("ERR Invalid config epoch specified: -1".into()));
    assert_eq!(
        c(Command::SetConfigEpoch(b("5"))),
        Err("ERR The user can assign a config epoch only when the node does not know any other node.".into())
    );
    assert_eq!(c(Command::CountFailureReports(b("nobody"))), Err("ERR Unknown node nobody".into()));
    // RESET
    assert_eq!(c(Command::Reset { mode: Some(b("medium")), db_empty: true }), Err("ERR syntax error".into()));
    assert_eq!(
        c(Command::Reset { mode: None, db_empty: false }),
        Err("ERR CLUSTER RESET can't be called with master nodes containing keys".into())
    );

    // As a replica: FORGET of the master and SETSLOT are refused.
    assert_eq!(c(Command::FlushSlots { db_empty: true }), Ok(Reply::Ok));
    assert_eq!(c(Command::Replicate { node: b(&a), db_empty: true }), Ok(Reply::Ok));
    assert_eq!(c(Command::Forget(b(&a))), Err("ERR Can't forget my master!".into()));
    assert_eq!(c(setslot(&["1", "stable"], 0)), Err("ERR Please use SETSLOT only with masters.".into()));
}

#[test]
fn epochs_and_reset() {
    let mut st = ClusterState::new(cfg(), 0);
    assert_eq!(cmd(&mut st, 0, Command::SetConfigEpoch(b("7"))), Ok(Reply::Ok));
    assert_eq!(st.current_epoch(), 7);
    assert_eq!(
        cmd(&mut st, 0, Command::SetConfigEpoch(b("8"))),
        Err("ERR Node config epoch is already non-zero".into())
    );
    // Already the greatest: STILL. After seeing a greater current epoch: BUMPED.
    assert_eq!(cmd(&mut st, 0, Command::BumpEpoch), Ok(Reply::Status("STILL 7".into())));
    let mut st = ClusterState::new(cfg(), 0);
    assert_eq!(cmd(&mut st, 0, Command::BumpEpoch), Ok(Reply::Status("BUMPED 1".into())));
    assert_eq!(cmd(&mut st, 0, Command::BumpEpoch), Ok(Reply::Status("STILL 1".into())));

    let mut st = load(FOUR_MASTERS, 0);
    let old = st.my_id();
    assert_eq!(cmd(&mut st, 0, Command::Reset { mode: Some(b("SOFT")), db_empty: true }), Ok(Reply::Ok));
    let v = st.view();
    assert_eq!(v.nodes.len(), 1);
    assert_eq!(v.me().id, old);
    assert!(v.me().slot_ranges.is_empty());
    assert_eq!(v.current_epoch, 4, "soft reset keeps the epochs");
    let outs = st.handle(0, Input::Command(Command::Reset { mode: Some(b("hard")), db_empty: true }));
    assert!(matches!(outs.first(), Some(Output::SaveConfig { .. })));
    let v = st.view();
    assert_ne!(v.me().id, old);
    assert_eq!((v.current_epoch, v.me().config_epoch), (0, 0));

    // A replica resets into an empty master and is told to stop replicating.
    let mut st = load(
        &[
            "{m} 10.0.0.1:7000@17000 myself,slave {a} 0 0 0 connected",
            "{a} 10.0.0.2:7000@17000 master - 0 0 2 connected 0-16383",
            "vars currentEpoch 2 lastVoteEpoch 0",
        ],
        0,
    );
    let outs = st.handle(0, Input::Command(Command::Reset { mode: None, db_empty: false }));
    assert!(outs.iter().any(|o| matches!(o, Output::StopReplication { flush: true })));
    assert!(st.view().me().is_master());
}

#[test]
fn nodes_conf_survives_a_restart() {
    let mut st = load(FOUR_MASTERS, 0);
    cmd(&mut st, 0, Command::SetSlot { args: vec![b("3"), b("migrating"), b(id('a').as_str())], keys_in_slot: 1 })
        .unwrap();
    let text = st.nodes_conf();
    let back = ClusterState::load(cfg(), &text, 99).unwrap();
    assert_eq!(back.my_id(), st.my_id());
    assert_eq!(back.current_epoch(), st.current_epoch());
    let (a, b_) = (st.view(), back.view());
    assert_eq!(a.nodes.len(), b_.nodes.len());
    for (x, y) in a.nodes.iter().zip(&b_.nodes) {
        // Flags as printed (the internal replica-migration mark depends on load order).
        let (fx, fy) = (x.flags.names(), y.flags.names());
        assert_eq!(
            (x.id, fx, x.master, x.shown_epoch, &x.slot_ranges),
            (y.id, fy, y.master, y.shown_epoch, &y.slot_ranges)
        );
    }
    assert_eq!(b_.migrating_to(3).map(|n| n.id), Some(id('a')));
}

/// Slots a whole-slot migration task marks importing are shown but not saved: the task
/// does not survive a restart, so neither does their open state. SETSLOT's are saved.
#[test]
fn a_tasks_importing_slots_are_not_saved() {
    let mut st = load(FOUR_MASTERS, 0);
    let op = ferrokv_cluster::SlotMigrationOp::Importing(b(id('a').as_str()));
    cmd(&mut st, 0, Command::SlotMigration { op, slots: vec![5001, 5002] }).unwrap();
    cmd(&mut st, 0, Command::SetSlot { args: vec![b("6000"), b("importing"), b(id('a').as_str())], keys_in_slot: 0 })
        .unwrap();
    let v = st.view();
    assert!(v.importing_from(5001).is_some() && v.importing_from(6000).is_some());
    let back = ClusterState::load(cfg(), &st.nodes_conf(), 99).unwrap().view();
    assert!(back.importing_from(5001).is_none() && back.importing_from(5002).is_none());
    assert_eq!(back.importing_from(6000).map(|n| n.id), Some(id('a')));
    // A slot a task marked, then SETSLOT marked again, is saved.
    cmd(&mut st, 0, Command::SetSlot { args: vec![b("5001"), b("importing"), b(id('a').as_str())], keys_in_slot: 0 })
        .unwrap();
    let back = ClusterState::load(cfg(), &st.nodes_conf(), 99).unwrap().view();
    assert!(back.importing_from(5001).is_some() && back.importing_from(5002).is_none());
}

#[test]
fn a_command_saves_first_publishes_the_view_then_replies() {
    let mut st = ClusterState::new(cfg(), 0);
    st.handle(0, Input::Tick);
    let outs = st.handle(10, Input::Command(Command::AddSlots(vec![b("7")])));
    assert!(matches!(outs.first(), Some(Output::SaveConfig { .. })));
    assert!(matches!(outs.last(), Some(Output::Reply(Ok(Reply::Ok)))));
    let view = outs.iter().position(|o| matches!(o, Output::ViewChanged(v) if v.is_mine(7))).expect("a new view");
    assert_eq!(view, outs.len() - 2);
    // Nothing changed: no new view, no save.
    let outs = st.handle(20, Input::Command(Command::CountFailureReports(b(st.my_id().as_str()))));
    assert_eq!(outs.len(), 1, "{outs:?}");
}

// ------------------------------------------------------------------ failover

/// A master (m) whose peer a failed; d and e replicate a, f replicates b.
const A_FAILED: &[&str] = &[
    "{m} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5000",
    "{a} 10.0.0.2:7000@17000 master,fail - 0 0 2 connected 5001-10000",
    "{b} 10.0.0.3:7000@17000 master - 0 0 3 connected 10001-16383",
    "{d} 10.0.0.5:7000@17000 slave {a} 0 0 2 connected",
    "{e} 10.0.0.6:7000@17000 slave {a} 0 0 2 connected",
    "{z} 10.0.0.7:7000@17000 slave {b} 0 0 3 connected",
    "vars currentEpoch 4 lastVoteEpoch 0",
];

/// Connects every outbound link the node asks for; returns them by peer address.
fn connect_all(st: &mut ClusterState, now: u64) -> std::collections::BTreeMap<String, LinkId> {
    let mut links = std::collections::BTreeMap::new();
    for (link, ip, _) in connects(&st.handle(now, Input::Tick)) {
        st.handle(now, Input::Connected(link));
        links.insert(ip, link);
    }
    links
}

/// A vote request from replica `sender` of `master`, in `epoch`, claiming `claim` at
/// `config_epoch`.
fn vote_request(sender: char, master: char, epoch: u64, config_epoch: u64, claim: SlotBitmap) -> Message {
    let mut h = header(id(sender), config_epoch, claim);
    h.current_epoch = epoch;
    h.flags = NodeFlags::SLAVE;
    h.master = Some(id(master));
    Message { header: h, body: Body::FailoverAuthRequest }
}

fn acks(outs: &[Output]) -> Vec<LinkId> {
    sends(outs).into_iter().filter(|(_, m)| matches!(m.body, Body::FailoverAuthAck)).map(|(l, _)| l).collect()
}

fn saved_with_fsync(outs: &[Output]) -> Option<&str> {
    outs.iter().find_map(|o| match o {
        Output::SaveConfig { text, fsync: true } => Some(text.as_str()),
        _ => None,
    })
}

#[test]
fn a_master_votes_once_per_epoch_and_by_redis_rules() {
    let mut st = load(A_FAILED, 100_000);
    let links = connect_all(&mut st, 100_000);
    let mut now = 100_000;
    let ask = |st: &mut ClusterState, n: u64, ip: &str, msg: Message, now: u64| inbound(st, now, n, ip, msg);

    // d asks in epoch 5 for a's slots at a's epoch: granted, lastVoteEpoch saved with fsync
    // before the vote leaves, the vote sent on our link to d.
    let outs = ask(&mut st, 1, "10.0.0.5", vote_request('d', 'a', 5, 2, slots(5001, 10000)), now);
    assert_eq!(acks(&outs), vec![links["10.0.0.5"]]);
    assert!(saved_with_fsync(&outs).is_some_and(|t| t.contains("lastVoteEpoch 5")), "{outs:?}");
    assert_eq!(st.view().last_vote_epoch, 5);
    // e, same epoch: already voted.
    assert!(acks(&ask(&mut st, 2, "10.0.0.6", vote_request('e', 'a', 5, 2, slots(5001, 10000)), now)).is_empty());
    // e, next epoch, too soon after the vote for a replica of a.
    now += 2 * T - 100;
    assert!(acks(&ask(&mut st, 2, "10.0.0.6", vote_request('e', 'a', 6, 2, slots(5001, 10000)), now)).is_empty());
    // An older epoch than ours: denied.
    now += 200;
    assert!(acks(&ask(&mut st, 2, "10.0.0.6", vote_request('e', 'a', 5, 2, slots(5001, 10000)), now)).is_empty());
    // A claim on slots a greater epoch holds (b's, epoch 3): denied.
    assert!(acks(&ask(&mut st, 2, "10.0.0.6", vote_request('e', 'a', 7, 2, slots(10001, 10001)), now)).is_empty());
    // z replicates b, which works: denied, unless a manual failover forces the vote.
    let mut forced = vote_request('z', 'b', 8, 3, slots(10001, 16383));
    assert!(acks(&ask(&mut st, 3, "10.0.0.7", forced.clone(), now)).is_empty());
    forced.header.mflags = ferrokv_cluster::wire::mflags::FORCEACK;
    forced.header.current_epoch = 9;
    assert_eq!(acks(&ask(&mut st, 3, "10.0.0.7", forced, now)), vec![links["10.0.0.7"]]);
    // Past the 2 × node-timeout wait, e gets a vote in a new epoch.
    assert_eq!(
        acks(&ask(&mut st, 2, "10.0.0.6", vote_request('e', 'a', 10, 2, slots(5001, 10000)), now)),
        vec![links["10.0.0.6"]]
    );
    // A master asking is refused.
    let mut from_master = vote_request('b', 'a', 11, 3, slots(10001, 16383));
    from_master.header.flags = NodeFlags::MASTER;
    from_master.header.master = None;
    assert!(acks(&ask(&mut st, 4, "10.0.0.3", from_master, now)).is_empty());
}

#[test]
fn replicas_and_slotless_masters_do_not_vote() {
    let mut lines = A_FAILED.to_vec();
    lines[0] = "{m} 10.0.0.1:7000@17000 myself,slave {b} 0 0 1 connected";
    let mut st = load(&lines, 100_000);
    connect_all(&mut st, 100_000);
    assert!(
        acks(&inbound(&mut st, 100_000, 1, "10.0.0.5", vote_request('d', 'a', 5, 2, slots(5001, 10000)))).is_empty()
    );
    lines[0] = "{m} 10.0.0.1:7000@17000 myself,master - 0 0 1 connected";
    let mut st = load(&lines, 100_000);
    connect_all(&mut st, 100_000);
    assert!(
        acks(&inbound(&mut st, 100_000, 1, "10.0.0.5", vote_request('d', 'a', 5, 2, slots(5001, 10000)))).is_empty()
    );
}

#[test]
fn cluster_failover_errors_match_redis() {
    let failover = |o: Option<&str>| Command::Failover { option: o.map(b) };
    let mut st = load(FOUR_MASTERS, 0);
    assert_eq!(cmd(&mut st, 0, failover(Some("sideways"))), Err("ERR syntax error".into()));
    assert_eq!(cmd(&mut st, 0, failover(None)), Err("ERR You should send CLUSTER FAILOVER to a replica".into()));
    let mut lines = A_FAILED.to_vec();
    lines[0] = "{m} 10.0.0.1:7000@17000 myself,slave - 0 0 1 connected";
    let mut st = load(&lines, 0);
    assert_eq!(
        cmd(&mut st, 0, failover(Some("FORCE"))),
        Err("ERR I'm a replica but my master is unknown to me".into())
    );
    // A replica of a (FAIL), then of b before its link is up.
    let down = "ERR Master is down or failed, please use CLUSTER FAILOVER FORCE";
    for master in ["{a}", "{b}"] {
        lines[0] =
            Box::leak(format!("{{m}} 10.0.0.1:7000@17000 myself,slave {master} 0 0 1 connected").into_boxed_str());
        let mut st = load(&lines, 0);
        assert_eq!(cmd(&mut st, 0, failover(None)), Err(down.into()), "{master}");
        assert_eq!(cmd(&mut st, 0, failover(Some("force"))), Ok(Reply::Ok), "{master}");
    }
}

/// m replicates a, which serves slots and works; b is the other master.
const REPLICA_OF_A: &[&str] = &[
    "{m} 10.0.0.1:7000@17000 myself,slave {a} 0 0 0 connected",
    "{a} 10.0.0.2:7000@17000 master - 0 0 2 connected 0-10000",
    "{b} 10.0.0.3:7000@17000 master - 0 0 3 connected 10001-16383",
    "vars currentEpoch 3 lastVoteEpoch 0",
];

fn vote(from: char, epoch: u64, claim: SlotBitmap) -> Message {
    let mut h = header(id(from), epoch, claim);
    h.current_epoch = epoch;
    Message { header: h, body: Body::FailoverAuthAck }
}

#[test]
fn a_manual_failover_waits_for_the_paused_offset_then_wins_with_forced_votes() {
    let mut st = load(REPLICA_OF_A, 100_000);
    st.set_master_link_down_since(None);
    st.set_repl_offset(400);
    let links = connect_all(&mut st, 100_000);
    let outs = st.handle(100_000, Input::Command(Command::Failover { option: None }));
    let mfstart = sends(&outs).into_iter().find(|(_, m)| matches!(m.body, Body::MfStart));
    assert_eq!(mfstart.map(|(l, _)| l), Some(links["10.0.0.2"]));
    // The paused master's offset arrives; ours is behind: no election yet.
    let mut paused = Message { header: header(id('a'), 2, slots(0, 10000)), body: Body::Ping(vec![]) };
    paused.header.mflags = ferrokv_cluster::wire::mflags::PAUSED;
    paused.header.repl_offset = 500;
    inbound(&mut st, 100_010, 1, "10.0.0.2", paused);
    let outs = st.handle(100_100, Input::Tick);
    assert!(!sends(&outs).iter().any(|(_, m)| matches!(m.body, Body::FailoverAuthRequest)));
    // Caught up: the election starts at once, forced, in a new epoch, saved first.
    st.set_repl_offset(500);
    let outs = st.handle(100_200, Input::Tick);
    let requests: Vec<_> =
        sends(&outs).into_iter().filter(|(_, m)| matches!(m.body, Body::FailoverAuthRequest)).collect();
    assert_eq!(requests.len(), 2, "one per node: {outs:?}");
    let req = &requests[0].1.header;
    assert_eq!((req.current_epoch, req.config_epoch), (4, 2));
    assert_eq!(req.mflags & ferrokv_cluster::wire::mflags::FORCEACK, ferrokv_cluster::wire::mflags::FORCEACK);
    assert!(matches!(outs.first(), Some(Output::SaveConfig { fsync: true, .. })));
    // One vote is not a majority of 2 masters; the second one is.
    let outs = inbound(&mut st, 100_210, 2, "10.0.0.3", vote('b', 4, slots(10001, 16383)));
    assert!(!outs.iter().any(|o| matches!(o, Output::Promoted { .. })));
    let outs = inbound(&mut st, 100_220, 3, "10.0.0.2", vote('a', 4, slots(0, 10000)));
    let promoted =
        outs.iter().position(|o| matches!(o, Output::Promoted { former_master } if *former_master == id('a')));
    assert!(promoted.is_some(), "{outs:?}");
    assert!(matches!(outs.first(), Some(Output::SaveConfig { fsync: true, .. })), "saved before the pongs");
    let pongs = sends(&outs).into_iter().filter(|(_, m)| matches!(m.body, Body::Pong(_))).count();
    assert_eq!(pongs, 2);
    let v = st.view();
    assert!(v.me().is_master() && v.me().slot_ranges == vec![(0, 10000)]);
    assert_eq!(v.me().config_epoch, 4);
    assert!(cluster_nodes_text(&v).contains("myself,master - 0 0 4 connected 0-10000"), "{}", cluster_nodes_text(&v));
}

#[test]
fn a_master_pauses_writes_for_its_replicas_manual_failover() {
    let lines = &[
        "{m} 10.0.0.1:7000@17000 myself,master - 0 0 2 connected 0-10000",
        "{d} 10.0.0.5:7000@17000 slave {m} 0 0 2 connected",
        "{b} 10.0.0.3:7000@17000 master - 0 0 3 connected 10001-16383",
        "vars currentEpoch 3 lastVoteEpoch 0",
    ];
    let mut st = load(lines, 100_000);
    st.set_repl_offset(777);
    let links = connect_all(&mut st, 100_000);
    let mut req = Message { header: header(id('d'), 2, slots(0, 10000)), body: Body::MfStart };
    req.header.flags = NodeFlags::SLAVE;
    req.header.master = Some(id('m'));
    // Not from a replica of ours: ignored.
    let mut stranger = req.clone();
    stranger.header.sender = id('b');
    let outs = inbound(&mut st, 100_000, 2, "10.0.0.3", stranger);
    assert!(!outs.iter().any(|o| matches!(o, Output::PauseWrites { .. })));
    let outs = inbound(&mut st, 100_000, 1, "10.0.0.5", req);
    assert!(outs.iter().any(|o| matches!(o, Output::PauseWrites { until_ms: 110_000 })), "{outs:?}");
    let ping = sends(&outs).into_iter().find(|(_, m)| matches!(m.body, Body::Ping(_))).expect("a ping at once");
    assert_eq!(ping.0, LinkId::Inbound(1), "on the link the request came on");
    assert_eq!((ping.1.header.mflags, ping.1.header.repl_offset), (ferrokv_cluster::wire::mflags::PAUSED, 777));
    // Every tick pings the replica again.
    let outs = st.handle(100_100, Input::Tick);
    assert!(sends(&outs).iter().any(|(l, m)| *l == links["10.0.0.5"] && matches!(m.body, Body::Ping(_))));
    // Nothing happened within 5 s: writes resume, the flag goes.
    let outs = st.handle(105_001, Input::Tick);
    assert!(outs.iter().any(|o| matches!(o, Output::ResumeWrites)), "{outs:?}");
    let outs = st.handle(105_100, Input::Command(Command::SaveConfig));
    assert!(!outs.iter().any(|o| matches!(o, Output::ResumeWrites)));
    assert_eq!(st.view().me().flags.names(), "myself,master");
}

#[test]
fn the_data_age_check_keeps_a_stale_replica_from_failing_over() {
    let mut lines = A_FAILED.to_vec();
    lines[0] = "{m} 10.0.0.1:7000@17000 myself,slave {a} 0 0 0 connected";
    let mut st = load(&lines, 100_000);
    connect_all(&mut st, 100_000);
    let elections =
        |outs: &[Output]| sends(outs).iter().filter(|(_, m)| matches!(m.body, Body::FailoverAuthRequest)).count();
    // Down since long before the failure: 10 s + 10 × 1 s beyond the node timeout is too old.
    st.set_master_link_down_since(Some(100_000 - 25_000));
    let mut now = 100_000;
    let mut seen = 0;
    while now < 110_000 {
        seen += elections(&st.handle(now, Input::Tick));
        now += 100;
    }
    assert_eq!(seen, 0);
    // Recently connected: the election runs within 1 s (rank 0).
    st.set_master_link_down_since(Some(now - 3_000));
    let until = now + 1_100;
    while now < until {
        seen += elections(&st.handle(now, Input::Tick));
        now += 100;
    }
    assert_eq!(seen, 5, "one request per other node");
}

/// Ticks `st` every 100 ms from `now` until it asks for votes; returns when.
fn election_start(st: &mut ClusterState, mut now: u64) -> u64 {
    let until = now + 5 * T;
    while now < until {
        if sends(&st.handle(now, Input::Tick)).iter().any(|(_, m)| matches!(m.body, Body::FailoverAuthRequest)) {
            return now;
        }
        now += 100;
    }
    panic!("no election");
}

/// `me` (one of `d`, `e`) replicates the FAIL master `a` with its sibling; both hold the
/// same offset, as the sibling's last ping said.
fn sibling_of_d_and_e(me: char, now: u64) -> ClusterState {
    let other = if me == 'd' { 'e' } else { 'd' };
    let mut lines = A_FAILED.to_vec();
    lines[0] = "{m} 10.0.0.1:7000@17000 master - 0 0 1 connected 0-5000";
    let mine = if me == 'd' { 3 } else { 4 };
    let line = lines[mine].replace(" slave ", " myself,slave ");
    lines[mine] = Box::leak(line.into_boxed_str());
    let mut st = load(&lines, now);
    st.set_master_link_down_since(Some(now - 1_500));
    st.set_repl_offset(500);
    connect_all(&mut st, now);
    let ip = if other == 'd' { "10.0.0.5" } else { "10.0.0.6" };
    let mut ping = Message { header: header(id(other), 2, slots(5001, 10000)), body: Body::Ping(vec![]) };
    ping.header.flags = NodeFlags::SLAVE;
    ping.header.master = Some(id('a'));
    ping.header.repl_offset = 500;
    inbound(&mut st, now, 1, ip, ping);
    st
}

/// Not in Redis, where replicas with the same offset share a rank and only the random
/// delay keeps them apart: the smaller node ID goes first, a tick or more ahead.
#[test]
fn of_two_replicas_with_one_offset_the_smaller_id_asks_first() {
    let d = election_start(&mut sibling_of_d_and_e('d', 100_000), 100_000);
    let e = election_start(&mut sibling_of_d_and_e('e', 100_000), 100_000);
    assert!(d + 100 <= e, "d asked at {d}, e at {e}");
}

/// Not in Redis: when several masters are FAIL, the replicas of the one with the smaller
/// node ID ask first, so that the elections do not split one epoch's votes.
#[test]
fn with_two_masters_failed_the_smaller_ids_replica_asks_first() {
    let now = 100_000;
    let both_failed = |me: usize| {
        let mut lines = A_FAILED.to_vec();
        lines[0] = "{m} 10.0.0.1:7000@17000 master - 0 0 1 connected 0-5000";
        lines[2] = "{b} 10.0.0.3:7000@17000 master,fail - 0 0 3 connected 10001-16383";
        let line = lines[me].replace(" slave ", " myself,slave ");
        lines[me] = Box::leak(line.into_boxed_str());
        let mut st = load(&lines, now);
        st.set_master_link_down_since(Some(now - 1_500));
        connect_all(&mut st, now);
        st
    };
    // d replicates a, z replicates b; a < b.
    let d = election_start(&mut both_failed(3), now);
    let z = election_start(&mut both_failed(5), now);
    assert!(d + 100 <= z, "d asked at {d}, z at {z}");
}

/// Not in Redis: a replica whose view loses a master during its election (the voter b
/// turns replica while the owner of its slots is unknown here) still needs a majority of
/// the masters it asked; with Redis's rule the shrunken size makes one vote a majority
/// (chaos found two winners of one epoch that way).
#[test]
fn an_election_needs_a_majority_of_the_masters_it_asked() {
    let now = 100_000;
    let mut st = load(
        &[
            "{m} 10.0.0.1:7000@17000 myself,slave {a} 0 0 0 connected",
            "{a} 10.0.0.2:7000@17000 master,fail - 0 0 2 connected 0-10000",
            "{b} 10.0.0.3:7000@17000 master - 0 0 3 connected 10001-16383",
            "{c} 10.0.0.4:7000@17000 master - 0 0 1 connected",
            "vars currentEpoch 3 lastVoteEpoch 0",
        ],
        now,
    );
    st.set_master_link_down_since(Some(now - 1_500));
    connect_all(&mut st, now);
    let asked = election_start(&mut st, now);
    assert_eq!(st.view().size, 2, "a and b serve slots: two votes needed");
    inbound(&mut st, asked + 5, 1, "10.0.0.3", vote('b', 4, slots(10001, 16383)));
    let mut turned = Message { header: header(id('b'), 3, SlotBitmap::new()), body: Body::Pong(vec![]) };
    turned.header.flags = NodeFlags::SLAVE;
    turned.header.master = Some(id('c'));
    let mut outs = inbound(&mut st, asked + 10, 1, "10.0.0.3", turned);
    assert_eq!(st.view().size, 1, "b no longer serves slots here");
    outs.extend(st.handle(asked + 100, Input::Tick));
    assert!(!outs.iter().any(|o| matches!(o, Output::Promoted { .. })), "won with one vote of the two asked");
    assert!(st.view().me().is_replica());
}

#[test]
fn without_replica_migration_an_emptied_master_follows_only_a_failover() {
    let mut c = cfg();
    c.allow_replica_migration = false;
    let lines = FOUR_MASTERS
        .iter()
        .map(|l| {
            l.replace("{m}", id('m').as_str())
                .replace("{a}", id('a').as_str())
                .replace("{b}", id('b').as_str())
                .replace("{c}", id('c').as_str())
                .replace("{d}", id('d').as_str())
        })
        .collect::<Vec<_>>()
        .join("\n");
    // a takes our slots and keeps its own: a slot migration, we stay an empty master.
    let mut st = ClusterState::load(c.clone(), &lines, 0).unwrap();
    let mut claim = slots(0, 10000);
    claim.insert_range(0, 5000);
    let outs =
        inbound(&mut st, 0, 1, "10.0.0.2", Message { header: header(id('a'), 9, claim), body: Body::Pong(vec![]) });
    assert!(!outs.iter().any(|o| matches!(o, Output::ReplicateFrom { .. })));
    assert!(st.view().me().is_master() && st.view().me().num_slots == 0);
    // c (a master without slots) takes exactly our slots: a failover, we follow it.
    let mut st = ClusterState::load(c, &lines, 0).unwrap();
    let outs = inbound(
        &mut st,
        0,
        1,
        "10.0.0.4",
        Message { header: header(id('c'), 9, slots(0, 5000)), body: Body::Pong(vec![]) },
    );
    assert!(outs.iter().any(|o| matches!(o, Output::ReplicateFrom { master, .. } if *master == id('c'))), "{outs:?}");
}
