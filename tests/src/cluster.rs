//! Clusters driven by the real `redis-cli --cluster`, and a small cluster client that
//! follows MOVED, ASK and TRYAGAIN as a cluster-aware client does.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::resp::{parse_one, Reply};
use crate::{Conn, Server};

/// Runs `redis-cli` with `args`; returns whether it exited 0 and its stdout and stderr.
pub fn redis_cli<S: AsRef<str>>(args: &[S]) -> (bool, String) {
    let out = Command::new("redis-cli")
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("redis-cli is installed (deploy/test.sh)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Waits (bounded) until `f` holds.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A command's reply as text (lossy), for `CLUSTER INFO` and the like.
pub fn text(node: &Server, args: &[&str]) -> String {
    String::from_utf8_lossy(&node.conn().send(args)).to_string()
}

pub fn state_ok(node: &Server) -> bool {
    text(node, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
}

pub fn myid(node: &Server) -> String {
    match node.conn().call(&["CLUSTER", "MYID"]) {
        Reply::Bulk(Some(id)) => String::from_utf8_lossy(&id).into_owned(),
        other => panic!("CLUSTER MYID: {other:?}"),
    }
}

/// `redis-cli --cluster create` of `nodes` as masters only; waits for `cluster_state:ok`.
pub fn create_masters(nodes: &[Server]) {
    let mut args = vec!["--cluster".to_string(), "create".to_string()];
    args.extend(nodes.iter().map(|n| n.addr()));
    args.push("--cluster-yes".into());
    let (ok, out) = redis_cli(&args);
    assert!(ok, "redis-cli --cluster create failed:\n{out}");
    wait_until("cluster_state:ok", Duration::from_secs(20), || nodes.iter().all(state_ok));
}

/// `redis-cli --cluster check`: every node agrees, no open slot, every slot covered.
pub fn check_clean(node: &Server) {
    let (ok, out) = redis_cli(&["--cluster", "check", &node.addr()]);
    assert!(ok, "redis-cli --cluster check failed:\n{out}");
    assert!(out.contains("[OK] All nodes agree about slots configuration."), "{out}");
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    assert!(!out.contains("[WARNING]"), "{out}");
}

/// A cluster client over raw connections: routes by CLUSTER SLOTS, follows MOVED
/// (refreshing the map), ASK (ASKING then the command, once, on the named node) and
/// TRYAGAIN (a short pause), as cluster-aware clients do. Counts what it met.
pub struct ClusterClient {
    conns: HashMap<u16, Conn>,
    slots: Vec<u16>,
    pub moved: u64,
    pub asks: u64,
    pub tryagains: u64,
}

impl ClusterClient {
    pub fn new(seed_port: u16) -> Self {
        let mut c =
            ClusterClient { conns: HashMap::new(), slots: vec![seed_port; 16384], moved: 0, asks: 0, tryagains: 0 };
        c.refresh(seed_port);
        c
    }

    fn conn(&mut self, port: u16) -> &mut Conn {
        self.conns.entry(port).or_insert_with(|| Conn::connect(port).expect("connect to a cluster node"))
    }

    /// Reloads the slot map from CLUSTER SLOTS of the node at `port`.
    fn refresh(&mut self, port: u16) {
        let Reply::Array(Some(ranges)) = self.conn(port).call(&["CLUSTER", "SLOTS"]) else { return };
        for r in ranges {
            let Reply::Array(Some(r)) = r else { continue };
            let (Some(Reply::Int(a)), Some(Reply::Int(b)), Some(Reply::Array(Some(master)))) =
                (r.first(), r.get(1), r.get(2))
            else {
                continue;
            };
            let Some(Reply::Int(p)) = master.get(1) else { continue };
            for s in *a..=*b {
                self.slots[s as usize] = *p as u16;
            }
        }
    }

    /// Runs a single-key command, following redirects; returns the final reply.
    pub fn call(&mut self, args: &[&[u8]]) -> Reply {
        let slot = key_slot(args[1]) as usize;
        let mut port = self.slots[slot];
        let mut asking = false;
        for _ in 0..200 {
            let raw = if asking {
                let c = self.conn(port);
                let r = c.pipeline(&[vec![&b"ASKING"[..]], args.to_vec()]);
                r[1].clone()
            } else {
                self.conn(port).send(args)
            };
            asking = false;
            let reply = parse_one(&raw).expect("a reply");
            let Reply::Error(e) = &reply else { return reply };
            let e = String::from_utf8_lossy(e).into_owned();
            let target = || e.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).expect("redirect port");
            if e.starts_with("MOVED ") {
                self.moved += 1;
                port = target();
                self.slots[slot] = port;
                if self.moved % 64 == 1 {
                    self.refresh(port);
                }
            } else if e.starts_with("ASK ") {
                self.asks += 1;
                port = target();
                asking = true;
            } else if e.starts_with("TRYAGAIN") {
                self.tryagains += 1;
                std::thread::sleep(Duration::from_millis(5));
                port = self.slots[slot];
            } else {
                return reply;
            }
        }
        panic!("too many redirects for {:?}", String::from_utf8_lossy(args[1]));
    }
}

/// Redis's hash slot of a key (CRC16/XMODEM of the key or its `{tag}`, mod 16384).
pub fn key_slot(key: &[u8]) -> u16 {
    let mut k = key;
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                k = &key[open + 1..open + 1 + len];
            }
        }
    }
    let mut crc: u16 = 0;
    for &b in k {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % 16384
}
