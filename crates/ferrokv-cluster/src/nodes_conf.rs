//! nodes.conf: the `CLUSTER NODES` lines of every node but those in handshake, then
//! `vars currentEpoch N lastVoteEpoch N`. The IO layer writes it atomically on every change
//! ([`Output::SaveConfig`](crate::state::Output::SaveConfig)) and hands it back at start
//! ([`ClusterState::load`]), so a restarted node keeps its ID, epochs, slots and peers.
//!
//! Parsing follows Redis's `clusterLoadConfig`, including its leniencies (numbers read as
//! `atoi`/`strtoull` do, an address without `@cport` means `port + 10000`, unknown `vars`
//! skipped) and its refusals (fewer than 8 fields, bad IDs, slots out of range, unknown
//! flags, no `myself`).
//!
//! ferrokv's own per-node data, the direct-to-core endpoints ([`crate::cores`]), rides
//! in the `vars` line as `cores:<node id> <ports>/<runs>` pairs (ports `p0,p1,...`, runs
//! `last:core,...`): redis-server skips unknown vars ("Skipping unknown cluster config
//! variable"), and the node lines — what CLUSTER NODES shows and redis-cli parses — stay
//! exactly Redis's.

use crate::flags::NodeFlags;
use crate::id::NodeId;
use crate::rng::Rng;
use crate::slots::SLOTS;
use crate::state::{ClusterConfig, ClusterState, Node};
use crate::view::ClusterView;

/// One node line of nodes.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfNode {
    pub id: NodeId,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub hostname: String,
    pub flags: NodeFlags,
    pub master: Option<NodeId>,
    pub ping_sent: u64,
    pub pong_received: u64,
    pub config_epoch: u64,
    pub connected: bool,
    pub slots: Vec<(u16, u16)>,
    pub migrating: Vec<(u16, NodeId)>,
    pub importing: Vec<(u16, NodeId)>,
    /// The node's core endpoints, from the `vars` line (empty: none kept).
    pub cores: crate::cores::CoreEndpoints,
}

/// The parsed contents of nodes.conf.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodesConf {
    pub nodes: Vec<ConfNode>,
    /// Core endpoints kept for nodes (the `vars` line's `cores:<id>`), applied to the
    /// node lines after parsing.
    cores: Vec<(NodeId, crate::cores::CoreEndpoints)>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
}

/// A corrupted nodes.conf (Redis exits on it: "Unrecoverable error: corrupted cluster config file.").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodesConfError {
    /// 1-based line number (0: the file as a whole).
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for NodesConfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "corrupted cluster config file, line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for NodesConfError {}

/// The file for a snapshot (handshake nodes left out).
pub fn render(view: &ClusterView, current_epoch: u64, last_vote_epoch: u64) -> String {
    let mut out = String::new();
    for (i, n) in view.nodes.iter().enumerate() {
        if n.flags.intersects(NodeFlags::HANDSHAKE) {
            continue;
        }
        out.push_str(&view.node_line(i));
        out.push('\n');
    }
    out.push_str(&format!("vars currentEpoch {current_epoch} lastVoteEpoch {last_vote_epoch}"));
    for n in view.nodes.iter().filter(|n| !n.flags.intersects(NodeFlags::HANDSHAKE) && !n.cores.is_empty()) {
        out.push_str(&format!(" cores:{} {}", n.id, encode_cores(&n.cores)));
    }
    out.push('\n');
    out
}

/// `p0,p1,.../last:core,last:core,...`
fn encode_cores(c: &crate::cores::CoreEndpoints) -> String {
    let ports: Vec<String> = c.ports.iter().map(|p| p.to_string()).collect();
    let runs: Vec<String> = c.runs.iter().map(|(last, core)| format!("{last}:{core}")).collect();
    format!("{}/{}", ports.join(","), runs.join(","))
}

/// The inverse of [`encode_cores`]; None for anything malformed (then nothing is kept,
/// as for a node that never sent its endpoints).
fn decode_cores(s: &str) -> Option<crate::cores::CoreEndpoints> {
    let (ports, runs) = s.split_once('/')?;
    let ports = ports.split(',').map(|p| p.parse::<u16>().ok()).collect::<Option<Vec<_>>>()?;
    let runs = runs
        .split(',')
        .map(|r| {
            let (last, core) = r.split_once(':')?;
            Some((last.parse::<u16>().ok()?, core.parse::<u8>().ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    let c = crate::cores::CoreEndpoints { ports, runs };
    c.is_valid().then_some(c)
}

/// C's `atoi`: leading blanks, an optional sign, digits; anything else ends the number.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for b in rest.bytes().take_while(u8::is_ascii_digit) {
        v = v.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg {
        -v
    } else {
        v
    }
}

/// C's `strtoull` on a decimal string, as Redis uses it for epochs.
fn strtoull(s: &str) -> u64 {
    let v = atoi(s);
    if v < 0 {
        (v as i128 + u64::MAX as i128 + 1) as u64
    } else {
        s.trim_start()
            .trim_start_matches('+')
            .bytes()
            .take_while(u8::is_ascii_digit)
            .fold(0u64, |acc, d| acc.saturating_mul(10).saturating_add((d - b'0') as u64))
    }
}

fn port(v: i64) -> u16 {
    v as u16
}

/// Parses nodes.conf.
pub fn parse(text: &str) -> Result<NodesConf, NodesConfError> {
    let mut conf = NodesConf::default();
    let mut myself_seen = false;
    for (ln, line) in text.lines().enumerate() {
        let ln = ln + 1;
        let err = |reason: &str| NodesConfError { line: ln, reason: reason.to_string() };
        let argv: Vec<&str> = line.split_ascii_whitespace().collect();
        if argv.is_empty() {
            continue;
        }
        if argv[0].eq_ignore_ascii_case("vars") {
            if argv.len().is_multiple_of(2) {
                return Err(err("vars line with an odd number of arguments"));
            }
            for kv in argv[1..].chunks(2) {
                if kv[0].eq_ignore_ascii_case("currentEpoch") {
                    conf.current_epoch = strtoull(kv[1]);
                } else if kv[0].eq_ignore_ascii_case("lastVoteEpoch") {
                    conf.last_vote_epoch = strtoull(kv[1]);
                } else if let Some(id) = kv[0].strip_prefix("cores:") {
                    if let (Some(id), Some(c)) = (NodeId::parse(id.as_bytes()), decode_cores(kv[1])) {
                        conf.cores.push((id, c));
                    }
                }
            }
            continue;
        }
        if argv.len() < 8 {
            return Err(err("fewer than 8 fields"));
        }
        let id = NodeId::parse(argv[0].as_bytes()).ok_or_else(|| err("invalid node ID"))?;
        let (addr, hostname) = match argv[1].split_once(',') {
            Some((a, h)) => (a, h.to_string()),
            None => (argv[1], String::new()),
        };
        let (ip, ports) = addr.rsplit_once(':').ok_or_else(|| err("address without port"))?;
        let (p, cport) = match ports.split_once('@') {
            Some((p, c)) => (port(atoi(p)), port(atoi(c))),
            None => (port(atoi(ports)), port(atoi(ports) + 10000)),
        };
        let mut flags = NodeFlags::NONE;
        for name in argv[2].split(',') {
            if name.eq_ignore_ascii_case("myself") {
                if myself_seen {
                    return Err(err("more than one node flagged myself"));
                }
                myself_seen = true;
            }
            flags.insert(NodeFlags::from_name(name).ok_or_else(|| err("unknown flag"))?);
        }
        let master = if argv[3].starts_with('-') {
            None
        } else {
            Some(NodeId::parse(argv[3].as_bytes()).ok_or_else(|| err("invalid master ID"))?)
        };
        let mut node = ConfNode {
            id,
            ip: ip.to_string(),
            port: p,
            cport,
            hostname,
            flags,
            master,
            ping_sent: atoi(argv[4]).max(0) as u64,
            pong_received: atoi(argv[5]).max(0) as u64,
            config_epoch: strtoull(argv[6]),
            connected: argv[7] == "connected",
            slots: Vec::new(),
            migrating: Vec::new(),
            importing: Vec::new(),
            cores: Default::default(),
        };
        for arg in &argv[8..] {
            if let Some(inner) = arg.strip_prefix('[') {
                // [slot->-id] or [slot-<-id]
                let dash = inner.find('-').ok_or_else(|| err("malformed migrating/importing slot"))?;
                let slot = atoi(&inner[..dash]);
                if !(0..SLOTS as i64).contains(&slot) {
                    return Err(err("slot out of range"));
                }
                let direction = inner.as_bytes().get(dash + 1).copied();
                let rest = inner.get(dash + 3..).ok_or_else(|| err("malformed migrating/importing slot"))?;
                let close = rest.find(']').ok_or_else(|| err("malformed migrating/importing slot"))?;
                let peer = NodeId::parse(&rest.as_bytes()[..close]).ok_or_else(|| err("invalid node ID in slot"))?;
                if direction == Some(b'>') {
                    node.migrating.push((slot as u16, peer));
                } else {
                    node.importing.push((slot as u16, peer));
                }
                continue;
            }
            let (start, stop) = match arg.split_once('-') {
                Some((a, b)) => (atoi(a), atoi(b)),
                None => (atoi(arg), atoi(arg)),
            };
            if !(0..SLOTS as i64).contains(&start) || !(0..SLOTS as i64).contains(&stop) {
                return Err(err("slot out of range"));
            }
            if start <= stop {
                node.slots.push((start as u16, stop as u16));
            }
        }
        conf.nodes.push(node);
    }
    if !myself_seen {
        return Err(NodesConfError { line: 0, reason: "no node flagged myself".into() });
    }
    for (id, c) in std::mem::take(&mut conf.cores) {
        if let Some(n) = conf.nodes.iter_mut().find(|n| n.id == id) {
            n.cores = c;
        }
    }
    Ok(conf)
}

impl ClusterState {
    /// A node restarted from its nodes.conf, at local time `now_ms`. Ports (and the IP when
    /// announced) come from `cfg`, as Redis takes them from its configuration.
    pub fn load(cfg: ClusterConfig, text: &str, now_ms: u64) -> Result<ClusterState, NodesConfError> {
        Ok(ClusterState::from_conf(cfg, &parse(text)?, now_ms))
    }

    pub fn from_conf(cfg: ClusterConfig, conf: &NodesConf, now_ms: u64) -> ClusterState {
        let rng = Rng::new(cfg.seed);
        let mut st = ClusterState::empty(cfg, rng, now_ms);
        let get_or_add = |st: &mut ClusterState, id: NodeId| match st.lookup(&id) {
            Some(i) => i,
            None => st.add_node(Node::new(id, NodeFlags::NONE, now_ms)),
        };
        for c in &conf.nodes {
            let i = get_or_add(&mut st, c.id);
            {
                let n = st.node_mut(i);
                n.ip = c.ip.clone();
                n.port = c.port;
                n.cport = c.cport;
                n.hostname = c.hostname.clone();
                // Until its first header says otherwise (this node's own come from its
                // configuration, below).
                n.cores = c.cores.clone();
                n.flags.insert(c.flags);
                if c.flags.intersects(NodeFlags::FAIL) {
                    n.fail_time = now_ms;
                }
                // Times from a previous life only matter as "a ping is pending" / "it answered".
                if c.ping_sent != 0 {
                    n.ping_sent = now_ms;
                }
                if c.pong_received != 0 {
                    n.pong_received = now_ms;
                }
            }
            if c.flags.intersects(NodeFlags::MYSELF) {
                st.myself = i;
            }
            if let Some(mid) = c.master {
                let m = get_or_add(&mut st, mid);
                if let Some(old) = st.node(i).master.filter(|&o| o != m) {
                    st.remove_replica(old, i);
                }
                st.node_mut(i).master = Some(m);
                st.add_replica(m, i);
            }
            // A replica's own epoch is meaningless; it shows its master's.
            let is_replica = st.node(i).is_slave() && st.node(i).master.is_some();
            st.node_mut(i).config_epoch = if is_replica { 0 } else { c.config_epoch };
            for &(a, b) in &c.slots {
                for s in a..=b {
                    st.add_slot(i, s);
                }
            }
            for &(s, peer) in &c.migrating {
                let p = get_or_add(&mut st, peer);
                st.migrating_to.insert(s, p);
            }
            for &(s, peer) in &c.importing {
                let p = get_or_add(&mut st, peer);
                st.importing_from.insert(s, p);
            }
        }
        st.current_epoch = conf.current_epoch;
        st.last_vote_epoch = conf.last_vote_epoch;
        let mut me = st.node(st.myself).clone();
        st.apply_my_announced_address(&mut me);
        let my = st.myself;
        *st.node_mut(my) = me;
        st.current_epoch = st.current_epoch.max(st.max_epoch());
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "07c37dfeb235213a872192d90877d0cd55635b91";
    const B: &str = "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1";
    const C: &str = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca";

    fn sample() -> String {
        format!(
            "{C} 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [5461-<-{B}] [100->-{B}]\n\
             {A} 127.0.0.1:30004@31004,host-a slave {C} 0 1426238317239 4 connected\n\
             {B} 127.0.0.1:30002@31002 master,fail? - 1426238316232 1426238316232 2 disconnected 5461-10922 16383\n\
             vars currentEpoch 6 lastVoteEpoch 3\n"
        )
    }

    #[test]
    fn parses_redis_lines() {
        let conf = parse(&sample()).unwrap();
        assert_eq!(conf.current_epoch, 6);
        assert_eq!(conf.last_vote_epoch, 3);
        assert_eq!(conf.nodes.len(), 3);
        let c = &conf.nodes[0];
        assert_eq!(c.flags, NodeFlags::MYSELF | NodeFlags::MASTER);
        assert_eq!((c.ip.as_str(), c.port, c.cport), ("127.0.0.1", 30001, 31001));
        assert_eq!(c.slots, vec![(0, 5460)]);
        assert_eq!(c.importing, vec![(5461, NodeId::parse(B.as_bytes()).unwrap())]);
        assert_eq!(c.migrating, vec![(100, NodeId::parse(B.as_bytes()).unwrap())]);
        let a = &conf.nodes[1];
        assert_eq!(a.hostname, "host-a");
        assert_eq!(a.master.unwrap().as_str(), C);
        assert_eq!(conf.nodes[2].slots, vec![(5461, 10922), (16383, 16383)]);
        assert_eq!(conf.nodes[2].flags, NodeFlags::MASTER | NodeFlags::PFAIL);
        assert!(!conf.nodes[2].connected);
    }

    #[test]
    fn old_format_without_bus_port_and_lenient_numbers() {
        let text = format!("{C} 10.0.0.1:7000 myself,master - 0 0 5x connected 1 3-4\n");
        let conf = parse(&text).unwrap();
        assert_eq!(conf.nodes[0].cport, 17000);
        assert_eq!(conf.nodes[0].config_epoch, 5);
        assert_eq!(conf.nodes[0].slots, vec![(1, 1), (3, 4)]);
    }

    #[test]
    fn refuses_what_redis_refuses() {
        let bad = [
            format!("{C} 127.0.0.1:1@2 myself,master - 0 0 1\n"),
            "nothex 127.0.0.1:1@2 myself,master - 0 0 1 connected\n".to_string(),
            format!("{C} 127.0.0.1 myself,master - 0 0 1 connected\n"),
            format!("{C} 127.0.0.1:1@2 myself,master,bogus - 0 0 1 connected\n"),
            format!("{C} 127.0.0.1:1@2 myself,master - 0 0 1 connected 16384\n"),
            format!("{C} 127.0.0.1:1@2 myself,master - 0 0 1 connected [5->-short]\n"),
            format!("{C} 127.0.0.1:1@2 master - 0 0 1 connected\n"),
            format!("{C} 127.0.0.1:1@2 myself,master - 0 0 1 connected\n{B} 127.0.0.1:1@2 myself - 0 0 1 connected\n"),
            format!("{C} 127.0.0.1:1@2 myself,master - 0 0 1 connected\nvars currentEpoch\n"),
        ];
        for text in bad {
            assert!(parse(&text).is_err(), "accepted: {text}");
        }
        // Blank lines and unknown vars are fine.
        let ok = format!("\n{C} 127.0.0.1:1@2 myself,master - 0 0 1 connected\n\nvars foo 1 currentEpoch 2\n");
        assert_eq!(parse(&ok).unwrap().current_epoch, 2);
    }

    #[test]
    fn load_then_render_round_trips_the_topology() {
        let mut cfg = ClusterConfig::new(30001, 1);
        cfg.cport = 31001;
        let st = ClusterState::load(cfg, &sample(), 5000).unwrap();
        assert_eq!(st.my_id().as_str(), C);
        // The largest config epoch seen can exceed vars' currentEpoch only if edited; here 6 stays.
        assert_eq!(st.current_epoch(), 6);
        let text = st.nodes_conf();
        let lines: Vec<&str> = text.lines().collect();
        // View order is ID order: A, B, C.
        assert_eq!(lines[0], format!("{A} 127.0.0.1:30004@31004,host-a slave {C} 0 5000 1 disconnected"));
        assert_eq!(
            lines[1],
            format!("{B} 127.0.0.1:30002@31002 master,fail? - 5000 5000 2 disconnected 5461-10922 16383")
        );
        assert_eq!(
            lines[2],
            format!("{C} 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [100->-{B}] [5461-<-{B}]")
        );
        assert_eq!(lines[3], "vars currentEpoch 6 lastVoteEpoch 3");
        assert_eq!(parse(&text).unwrap().nodes.len(), 3);
    }

    #[test]
    fn core_endpoints_round_trip_in_the_vars_line() {
        // B advertises two cores; C (myself) takes its own from its configuration.
        let text = format!(
            "{B} 127.0.0.1:30002@31002 master - 0 0 2 connected 8192-16383\n\
             {C} 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-8191\n\
             vars currentEpoch 2 lastVoteEpoch 0 cores:{B} 40002,40003/9000:0,16383:1 cores:{A} 1/bad\n"
        );
        let mut cfg = ClusterConfig::new(30001, 1);
        cfg.cores = crate::cores::CoreEndpoints::new(vec![40000, 40001], |s| (s >= 4096) as usize);
        let st = ClusterState::load(cfg, &text, 0).unwrap();
        let view = st.view();
        let b = view.nodes.iter().find(|n| n.id.as_str() == B).unwrap();
        assert_eq!(b.port_for(100), 40002);
        assert_eq!(b.port_for(9001), 40003);
        assert_eq!(view.me().port_for(100), 40000);
        let again = st.nodes_conf();
        // The node lines are Redis's; the vars line carries both nodes' endpoints.
        assert!(again.lines().all(|l| !l.contains("cores:") || l.starts_with("vars ")));
        let vars = again.lines().last().unwrap();
        assert!(vars.starts_with("vars currentEpoch 2 lastVoteEpoch 0 "), "{vars}");
        assert!(vars.contains(&format!("cores:{B} 40002,40003/9000:0,16383:1")), "{vars}");
        assert!(vars.contains(&format!("cores:{C} 40000,40001/4095:0,16383:1")), "{vars}");
        assert_eq!(parse(&again).unwrap().nodes.iter().find(|n| n.id.as_str() == B).unwrap().cores, b.cores);
    }

    #[test]
    fn current_epoch_is_raised_to_the_largest_config_epoch() {
        let text = format!("{C} 127.0.0.1:1@2 myself,master - 0 0 9 connected\nvars currentEpoch 3 lastVoteEpoch 0\n");
        let st = ClusterState::load(ClusterConfig::new(1, 0), &text, 0).unwrap();
        assert_eq!(st.current_epoch(), 9);
    }
}
