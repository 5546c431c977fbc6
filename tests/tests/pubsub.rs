//! Pub/sub against redis-server 7.0.15: the frames of a multi-connection session in
//! RESP2 and RESP3 (subscribe confirmations, messages, pmessages, smessages, the RESP2
//! subscribed-state restrictions, PING, PUBSUB introspection, RESET, QUIT), delivery
//! across the two shards of a node with per-publisher order, the pubsub output
//! buffer limit, and sharded channels in a cluster (MOVED, CROSSSLOT, PUBLISH reaching
//! another node).
//!
//! Reads are bounded and synchronised with PING, never with sleeps: after each step
//! every connection of the session sends PING and the test reads what it received up
//! to PING's reply (a message published before that PING arrives before its reply).

use std::time::Duration;

use ferrokv_tests::conn::Step;
use ferrokv_tests::resp::{encode_command, show};
use ferrokv_tests::{Conn, Server};

fn split(line: &str) -> Vec<&str> {
    line.split(' ').filter(|a| !a.is_empty()).collect()
}

/// Runs the steps (connection index, command) and returns, per step, what every
/// connection received (its own command's reply frames first).
fn session(server: &Server, conns: usize, resp3: bool, steps: &[(usize, &str)]) -> Vec<String> {
    let mut cs: Vec<Option<Conn>> = (0..conns).map(|_| Some(server.conn())).collect();
    let mut transcript = Vec::new();
    // Inside MULTI a PING would be queued: such steps read their one reply instead.
    let mut in_multi = vec![false; conns];
    if resp3 {
        for c in cs.iter_mut().flatten() {
            let hello = c.send(&["HELLO", "3"]);
            assert_eq!(hello[0], b'%', "{}", show(&hello));
        }
    }
    for &(i, line) in steps {
        let args = split(line);
        let c = cs[i].as_mut().expect("connection still open");
        let step = c.send_step(&args, &mut in_multi[i]);
        let (queued, quit) = (step == Step::Queued, step == Step::Quit);
        let mut out = format!("[{i}] {line}:");
        if queued {
            let reply = c.read_reply().expect("reply");
            out.push_str(&format!(" {}", show(&reply)));
        } else if quit {
            let reply = c.read_reply().expect("QUIT's reply");
            out.push_str(&format!(" {}", show(&reply)));
            assert!(c.is_closed(Duration::from_secs(5)), "QUIT closes the connection");
            cs[i] = None;
        } else {
            for f in c.until_pong() {
                out.push_str(&format!(" {}", show(&f)));
            }
        }
        for (j, other) in cs.iter_mut().enumerate() {
            let Some(other) = other else { continue };
            if j == i || in_multi[j] {
                continue;
            }
            other.write_raw(&encode_command(&["PING"])).expect("write");
            for f in other.until_pong() {
                out.push_str(&format!("\n    [{j}] got {}", show(&f)));
            }
        }
        transcript.push(out);
    }
    transcript
}

/// Every step's frames avoid Redis's dict orders (one channel per UNSUBSCRIBE-all, one
/// pattern matching per connection, one channel per PUBSUB CHANNELS).
const STEPS: &[(usize, &str)] = &[
    (0, "SUBSCRIBE news sports"),
    (0, "SUBSCRIBE news"),
    (1, "PSUBSCRIBE n*"),
    (1, "PSUBSCRIBE n*"),
    (3, "SSUBSCRIBE {s}a {s}b"),
    (2, "PUBLISH news hello"),
    (2, "PUBLISH sports x"),
    (2, "PUBLISH nothing y"),
    (2, "SPUBLISH {s}a m"),
    (2, "PUBLISH {s}a m"),
    (2, "SPUBLISH news m"),
    (2, "PUBSUB NUMSUB news sports none"),
    (2, "PUBSUB NUMSUB"),
    (2, "PUBSUB NUMPAT"),
    (2, "PUBSUB NUMPAT x"),
    (2, "PUBSUB CHANNELS s*"),
    (2, "PUBSUB CHANNELS nope*"),
    (2, "PUBSUB SHARDCHANNELS {s}a"),
    (2, "PUBSUB SHARDNUMSUB {s}a {s}b x"),
    (2, "PUBSUB HELP"),
    (2, "PUBSUB FOO"),
    (2, "PUBSUB"),
    (0, "GET k"),
    (0, "CLIENT GETNAME"),
    (0, "PING hi"),
    (0, "PING a b"),
    (0, "UNSUBSCRIBE news"),
    (2, "PUBLISH news again"),
    (0, "PSUBSCRIBE s*"),
    (2, "PUBLISH sports z"),
    (0, "UNSUBSCRIBE"),
    (0, "PUNSUBSCRIBE"),
    (0, "UNSUBSCRIBE"),
    (0, "PUNSUBSCRIBE"),
    (0, "SUNSUBSCRIBE"),
    (0, "GET k"),
    (3, "SUNSUBSCRIBE {s}a"),
    (3, "SUNSUBSCRIBE"),
    (3, "SUNSUBSCRIBE"),
    (1, "RESET"),
    (2, "PUBLISH nothing y"),
    (2, "SUBSCRIBE self"),
    (2, "PUBLISH self me"),
    (2, "UNSUBSCRIBE self"),
    (3, "MULTI"),
    (3, "SUBSCRIBE m1"),
    (3, "EXEC"),
    (2, "PUBLISH m1 in-exec"),
    (3, "SUBSCRIBE"),
    (3, "PSUBSCRIBE"),
    (3, "PUBLISH a"),
    (3, "UNSUBSCRIBE m1 m2"),
    (0, "SUBSCRIBE a"),
    (2, "PUBLISH a bye"),
    (0, "QUIT"),
    (2, "PUBLISH a gone"),
    (2, "PUBSUB NUMSUB a"),
];

#[test]
fn session_frames_match_redis_in_resp2_and_resp3() {
    let redis = Server::redis(&[]);
    for threads in ["1", "2"] {
        let ferrokv = Server::ferrokv(&["--server-threads", threads]);
        for resp3 in [false, true] {
            let want = session(&redis, 4, resp3, STEPS);
            let got = session(&ferrokv, 4, resp3, STEPS);
            for (w, g) in want.iter().zip(&got) {
                assert_eq!(
                    g,
                    w,
                    "\n(RESP{}, {threads} threads)\nferrokv:\n{g}\nredis:\n{w}",
                    if resp3 { 3 } else { 2 }
                );
            }
        }
    }
}

/// A message frame's publisher and sequence number, from a payload `p<i>:<seq>`.
fn payload_of(frame: &[u8]) -> (usize, u64) {
    let text = String::from_utf8_lossy(frame);
    let last = text.trim_end().rsplit("\r\n").next().unwrap_or_default().to_string();
    let (p, seq) = last.trim_start_matches('p').split_once(':').unwrap_or_else(|| panic!("payload in {text:?}"));
    (p.parse().expect("publisher"), seq.parse().expect("seq"))
}

/// Publishers and subscribers spread over the two shards of a node (the kernel spreads
/// connections; with ten of them, some land on each): every subscriber gets every
/// message exactly once, in each publisher's order, plain and by pattern, and each
/// PUBLISH counts every subscriber.
#[test]
fn delivery_across_shards_keeps_each_publishers_order() {
    const PUBLISHERS: usize = 4;
    const MESSAGES: u64 = 1500;
    let server = Server::under_test(&["--server-threads", "2"]);
    let mut subs = Vec::new();
    for i in 0..6 {
        let mut c = server.conn();
        let reply = if i < 4 { c.send(&["SUBSCRIBE", "load"]) } else { c.send(&["PSUBSCRIBE", "lo*"]) };
        assert!(reply.starts_with(b"*3\r\n"), "{}", show(&reply));
        subs.push(c);
    }
    let port = server.port();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            std::thread::spawn(move || {
                let mut c = Conn::connect(port).expect("connect");
                for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(100) {
                    let cmds: Vec<Vec<String>> =
                        chunk.iter().map(|s| vec!["PUBLISH".into(), "load".into(), format!("p{p}:{s}")]).collect();
                    for r in c.pipeline(&cmds) {
                        assert_eq!(r, b":6\r\n", "every subscriber counted");
                    }
                }
            })
        })
        .collect();
    for (i, c) in subs.iter_mut().enumerate() {
        let mut next = [0u64; PUBLISHERS];
        for _ in 0..PUBLISHERS as u64 * MESSAGES {
            let f = c.read_reply().expect("message");
            let kind: &[u8] = if i < 4 { b"*3\r\n$7\r\nmessage\r\n" } else { b"*4\r\n$8\r\npmessage\r\n" };
            assert!(f.starts_with(kind), "subscriber {i}: {}", show(&f));
            let (p, seq) = payload_of(&f);
            assert_eq!(seq, next[p], "subscriber {i}: publisher {p}'s messages out of order");
            next[p] += 1;
        }
    }
    for p in publishers {
        p.join().expect("publisher");
    }
}

/// A subscriber that reads nothing is disconnected once its pending output passes the
/// pubsub hard limit, and its subscriptions are gone.
#[test]
fn slow_subscriber_is_disconnected_at_the_output_limit() {
    for server in [Server::redis(&[]), Server::ferrokv(&["--server-threads", "2"])] {
        let mut admin = server.conn();
        assert_eq!(admin.send(&["CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 512kb 60"]), b"+OK\r\n");
        let mut slow = server.conn();
        slow.send(&["SUBSCRIBE", "firehose"]);
        let big = "x".repeat(256 * 1024);
        let mut publisher = server.conn();
        let mut receivers_went_to_zero = false;
        // Far more than the kernel's socket buffers can hold: the limit must trip.
        for _ in 0..400 {
            let r = publisher.send(&["PUBLISH", "firehose", &big]);
            if r == b":0\r\n" {
                receivers_went_to_zero = true;
                break;
            }
        }
        assert!(receivers_went_to_zero, "{:?}: the slow subscriber was never dropped", server.kind());
        assert_eq!(publisher.send(&["PUBSUB", "NUMSUB", "firehose"]), b"*2\r\n$8\r\nfirehose\r\n:0\r\n");
        let (_, closed) = slow.read_until_closed(Duration::from_secs(10));
        assert!(closed, "{:?}: the slow subscriber's connection is closed", server.kind());
    }
}

/// CLIENT LIST shows the subscription counts and the P flag; TYPE pubsub filters.
#[test]
fn client_list_shows_subscriptions() {
    let server = Server::under_test(&[]);
    let mut s = server.conn();
    s.send(&["SUBSCRIBE", "a", "b"]);
    s.read_reply().expect("the second confirmation");
    s.send(&["PSUBSCRIBE", "p*"]);
    s.send(&["SSUBSCRIBE", "x"]);
    let mut admin = server.conn();
    let list = String::from_utf8_lossy(&admin.send(&["CLIENT", "LIST", "TYPE", "pubsub"])).to_string();
    assert_eq!(list.matches("id=").count(), 1, "{list}");
    assert!(list.contains("flags=P db=0 sub=2 psub=1 ssub=1 "), "{list}");
    let normal = String::from_utf8_lossy(&admin.send(&["CLIENT", "LIST", "TYPE", "normal"])).to_string();
    assert!(!normal.contains("flags=P"), "{normal}");
    assert_eq!(admin.send(&["CLIENT", "KILL", "TYPE", "pubsub"]), b":1\r\n");
    assert!(s.is_closed(Duration::from_secs(5)));
}

/// A three-master cluster (redis-server's and ferrokv's, the same test): PUBLISH on one
/// node reaches subscribers on the others through the bus, in order; shard channels
/// answer MOVED on a node that does not serve their slot and CROSSSLOT across slots;
/// SPUBLISH reaches the slot owner's subscribers; when the slot moves away, they are
/// told with a `sunsubscribe` message.
#[test]
fn cluster_publish_and_shard_channels() {
    use ferrokv_tests::cluster::{create_masters, myid, wait_until};
    use ferrokv_tests::Kind;
    for kind in [Kind::Redis, Kind::Ferrokv] {
        let nodes: Vec<Server> = (0..3).map(|_| Server::cluster_node(kind, &[])).collect();
        create_masters(&nodes);
        let mut sub = nodes[2].conn();
        assert_eq!(sub.send(&["SUBSCRIBE", "news"]), b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
        let mut psub = nodes[1].conn();
        psub.send(&["PSUBSCRIBE", "n*"]);
        let mut publisher = nodes[0].conn();
        for i in 0..100 {
            // Only this node's subscribers are counted, as in Redis.
            assert_eq!(publisher.send(&["PUBLISH", "news", &i.to_string()]), b":0\r\n");
        }
        for i in 0..100 {
            let m = sub.read_reply().expect("a message from another node");
            let want = format!("*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n${}\r\n{i}\r\n", i.to_string().len());
            assert_eq!(show(&m), show(want.as_bytes()), "{kind:?}");
            let p = psub.read_reply().expect("a pmessage from another node");
            assert!(p.starts_with(b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n"), "{}", show(&p));
        }

        // The node that serves "{sc}x", and one that does not.
        let slot = ferrokv_tests::cluster::key_slot(b"{sc}x");
        let owner = (0..3)
            .find(|&i| !nodes[i].conn().send(&["SPUBLISH", "{sc}x", "probe"]).starts_with(b"-MOVED"))
            .expect("some node serves the slot");
        let other = (owner + 1) % 3;
        let moved = nodes[other].conn().send(&["SSUBSCRIBE", "{sc}x"]);
        let want = format!("-MOVED {slot} {}\r\n", nodes[owner].addr());
        assert_eq!(show(&moved), show(want.as_bytes()), "{kind:?}");
        let cross = nodes[owner].conn().send(&["SSUBSCRIBE", "{sc}x", "{other}y"]);
        assert_eq!(show(&cross), show(b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"));
        let mut ssub = nodes[owner].conn();
        assert_eq!(ssub.send(&["SSUBSCRIBE", "{sc}x"]), b"*3\r\n$10\r\nssubscribe\r\n$5\r\n{sc}x\r\n:1\r\n");
        assert_eq!(nodes[owner].conn().send(&["SPUBLISH", "{sc}x", "hi"]), b":1\r\n");
        assert_eq!(ssub.read_reply().expect("smessage"), b"*3\r\n$8\r\nsmessage\r\n$5\r\n{sc}x\r\n$2\r\nhi\r\n");

        // Move the (empty) slot to `other`, as redis-cli's reshard does.
        let (src, dst) = (myid(&nodes[owner]), myid(&nodes[other]));
        let s = slot.to_string();
        assert_eq!(nodes[other].conn().send(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &src]), b"+OK\r\n");
        assert_eq!(nodes[owner].conn().send(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst]), b"+OK\r\n");
        assert_eq!(nodes[other].conn().send(&["CLUSTER", "SETSLOT", &s, "NODE", &dst]), b"+OK\r\n");
        assert_eq!(nodes[owner].conn().send(&["CLUSTER", "SETSLOT", &s, "NODE", &dst]), b"+OK\r\n");
        let told = ssub.read_reply().expect("sunsubscribe after the slot moved");
        assert_eq!(show(&told), show(b"*3\r\n$12\r\nsunsubscribe\r\n$5\r\n{sc}x\r\n:0\r\n"), "{kind:?}");
        // The connection is no longer subscribed: a plain command runs.
        assert_eq!(ssub.send(&["PING"]), b"+PONG\r\n");
        wait_until("the slot's new owner is known everywhere", Duration::from_secs(10), || {
            nodes[(owner + 2) % 3]
                .conn()
                .send(&["SPUBLISH", "{sc}x", "m"])
                .starts_with(format!("-MOVED {slot} {}", nodes[other].addr()).as_bytes())
        });
    }
}

/// CLIENT REPLY OFF/SKIP/ON silence a connection's replies but not its pub/sub
/// confirmations and messages (Redis's `CLIENT_PUSHING`), in RESP2 and RESP3; RESET
/// ends OFF. Keys on both shards, so some commands run under the other shard's lock.
#[test]
fn client_reply_silences_replies_not_messages() {
    let redis = Server::redis(&[]);
    let ferrokv = Server::ferrokv(&["--server-threads", "2"]);
    for resp3 in [false, true] {
        let mut got = Vec::new();
        for server in [&redis, &ferrokv] {
            let (mut c, mut p) = (server.conn(), server.conn());
            let mut frames = Vec::new();
            if resp3 {
                c.send(&["HELLO", "3"]);
            }
            let mut batch = Vec::new();
            for line in [
                "SET a 1",
                "SET b 1",
                "CLIENT REPLY OFF",
                "SET a 2",
                "GET a",
                "NOSUCH",
                "CLIENT REPLY SKIP",
                "CLIENT REPLY ON",
                "CLIENT REPLY SKIP",
                "GET a",
                "GET b",
                "CLIENT REPLY SKIP",
                "CLIENT REPLY SKIP",
                "GET a",
                "CLIENT REPLY FOO",
                "CLIENT REPLY",
                "CLIENT REPLY OFF",
                "SUBSCRIBE ch",
            ] {
                batch.extend(encode_command(&split(line)));
            }
            c.write_raw(&batch).expect("write");
            loop {
                let f = c.read_reply().expect("a reply");
                let done = f.windows(9).any(|w| w == b"subscribe");
                frames.push(f);
                if done {
                    break;
                }
            }
            frames.push(p.send(&["PUBLISH", "ch", "hello"]));
            frames.push(c.read_reply().expect("the message"));
            let tail: &[&str] = if resp3 { &["CLIENT REPLY ON", "GET a", "RESET"] } else { &["RESET"] };
            let mut batch = Vec::new();
            for line in tail.iter().chain(&["GET b"]) {
                batch.extend(encode_command(&split(line)));
            }
            batch.extend(encode_command(&["PING"]));
            c.write_raw(&batch).expect("write");
            frames.extend(c.until_pong());
            got.push(frames.iter().map(|f| show(f)).collect::<Vec<_>>());
        }
        assert_eq!(got[1], got[0], "RESP{}", if resp3 { 3 } else { 2 });
    }
}

/// Reads `n` frames from `c` (each must come).
fn frames(c: &mut Conn, n: usize, what: &str) -> Vec<String> {
    (0..n).map(|_| show(&c.read_reply().unwrap_or_else(|e| panic!("{what}: {e}")))).collect()
}

/// The text of every file in `dir`'s appendonlydir.
fn aof_text(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for e in std::fs::read_dir(dir.join("appendonlydir")).expect("an appendonlydir") {
        text += &String::from_utf8_lossy(&std::fs::read(e.unwrap().path()).unwrap());
    }
    text
}

/// Outside cluster mode a master's PUBLISH and SPUBLISH, also a script's, reach its
/// replica's subscribers through the replication stream (Redis 7.0 forces them into
/// it), in order and behind the writes before them; the master's AOF does not get
/// them. Every pairing of redis-server and ferrokv as master and replica, ferrokv with
/// two shards; the frames the replica's subscribers get are compared across pairings.
#[test]
fn publish_reaches_a_replicas_subscribers() {
    use ferrokv_tests::Kind;
    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    for (mk, rk) in [
        (Kind::Redis, Kind::Redis),
        (Kind::Ferrokv, Kind::Ferrokv),
        (Kind::Redis, Kind::Ferrokv),
        (Kind::Ferrokv, Kind::Redis),
    ] {
        let threads = |k| if k == Kind::Ferrokv { vec!["--server-threads", "2"] } else { vec![] };
        let mut margs = threads(mk);
        margs.extend(["--appendonly", "yes"]);
        let master = Server::start(mk, &margs).unwrap_or_else(|e| panic!("{e}"));
        let mut rargs = threads(rk);
        let link = format!("127.0.0.1 {}", master.port());
        let port = master.port().to_string();
        if rk == Kind::Redis {
            rargs.extend(["--replicaof", &link]);
        } else {
            rargs.extend(["--replicaof", "127.0.0.1", &port]);
        }
        let replica = Server::start(rk, &rargs).unwrap_or_else(|e| panic!("{e}"));
        let mut probe = replica.conn();
        ferrokv_tests::cluster::wait_until("the replica's link is up", Duration::from_secs(20), || {
            String::from_utf8_lossy(&probe.send(&["INFO", "replication"])).contains("master_link_status:up")
        });
        // Subscribers on every shard of the replica (several connections land on both).
        let mut subs: Vec<Conn> = (0..4).map(|_| replica.conn()).collect();
        for s in &mut subs {
            s.send(&["SUBSCRIBE", "news"]);
            s.send(&["PSUBSCRIBE", "n*"]);
            s.send(&["SSUBSCRIBE", "{sc}x"]);
        }
        let mut m = master.conn();
        // Frames each subscriber is due: a message and a pmessage per PUBLISH, an
        // smessage per SPUBLISH.
        let mut due = 0;
        for i in 0..50 {
            m.send(&["SET", &format!("k{i}"), &i.to_string()]);
            assert_eq!(m.send(&["PUBLISH", "news", &i.to_string()]), b":0\r\n", "{mk:?}");
            due += 2;
        }
        assert_eq!(m.send(&["SPUBLISH", "{sc}x", "sharded"]), b":0\r\n");
        due += 1;
        let script = "redis.call('set', KEYS[1], 'v') redis.call('publish', 'news', 'from a script') return 1";
        assert_eq!(m.send(&["EVAL", script, "1", "sk"]), b":1\r\n");
        due += 2;
        let label = format!("{mk:?} master, {rk:?} replica");
        let mut got = Vec::new();
        for (n, s) in subs.iter_mut().enumerate() {
            let f = frames(s, due, &label);
            // Each message came after the write before it: the key is on the replica.
            if n == 0 {
                assert_eq!(probe.send(&["GET", "k49"]), b"$2\r\n49\r\n", "{label}");
            }
            got.push(f);
        }
        assert!(got.iter().all(|f| f == &got[0]), "{label}: the subscribers disagree: {got:?}");
        // The script's key is the master's last write: once it is in the AOF, so
        // would be any PUBLISH before it.
        ferrokv_tests::cluster::wait_until("the AOF has the last write", Duration::from_secs(10), || {
            aof_text(master.dir()).contains("$2\r\nsk\r\n")
        });
        assert!(!aof_text(master.dir()).to_ascii_uppercase().contains("PUBLISH"), "{label}: the AOF has PUBLISH");
        seen.push((label, got.swap_remove(0)));
    }
    for (label, f) in &seen[1..] {
        assert_eq!(f, &seen[0].1, "{label} against {}", seen[0].0);
    }
}

/// In cluster mode PUBLISH reaches a replica's subscribers over the bus from any node,
/// and SPUBLISH reaches the replicas of the channel's shard, as Redis 7.0's
/// `clusterPropagatePublish(Shard)` send them; both servers, the same frames.
#[test]
fn cluster_publish_reaches_replicas() {
    use ferrokv_tests::cluster::{create_masters, myid, redis_cli, wait_until};
    use ferrokv_tests::Kind;
    let mut seen = Vec::new();
    for kind in [Kind::Redis, Kind::Ferrokv] {
        let nodes: Vec<Server> = (0..4).map(|_| Server::cluster_node(kind, &[])).collect();
        create_masters(&nodes[..3]);
        let owner = (0..3)
            .find(|&i| !nodes[i].conn().send(&["SPUBLISH", "{sc}x", "probe"]).starts_with(b"-MOVED"))
            .expect("some node serves the slot");
        let master_id = myid(&nodes[owner]);
        let (ok, out) = redis_cli(&[
            "--cluster",
            "add-node",
            &nodes[3].addr(),
            &nodes[0].addr(),
            "--cluster-slave",
            "--cluster-master-id",
            &master_id,
        ]);
        assert!(ok, "add-node: {out}");
        let replica_id = myid(&nodes[3]);
        wait_until("the replica is linked and known everywhere", Duration::from_secs(30), || {
            let info = String::from_utf8_lossy(&nodes[3].conn().send(&["INFO", "replication"])).into_owned();
            info.contains("master_link_status:up")
                && nodes[..3].iter().all(|n| {
                    let text = String::from_utf8_lossy(&n.conn().send(&["CLUSTER", "NODES"])).into_owned();
                    text.lines().any(|l| l.starts_with(&replica_id) && l.contains("slave") && l.ends_with("connected"))
                })
        });
        let mut sub = nodes[3].conn();
        sub.send(&["SUBSCRIBE", "news"]);
        assert_eq!(
            show(&sub.send(&["SSUBSCRIBE", "{sc}x"])),
            show(b"*3\r\n$10\r\nssubscribe\r\n$5\r\n{sc}x\r\n:1\r\n")
        );
        let other = (owner + 1) % 3;
        let mut p = nodes[other].conn();
        for i in 0..20 {
            assert_eq!(p.send(&["PUBLISH", "news", &i.to_string()]), b":0\r\n");
        }
        // Another node's link: read PUBLISH's messages before SPUBLISH's comes.
        let mut f = frames(&mut sub, 20, &format!("{kind:?}"));
        assert_eq!(nodes[owner].conn().send(&["SPUBLISH", "{sc}x", "hi"]), b":0\r\n");
        f.extend(frames(&mut sub, 1, &format!("{kind:?}")));
        assert_eq!(f[20], show(b"*3\r\n$8\r\nsmessage\r\n$5\r\n{sc}x\r\n$2\r\nhi\r\n"));
        seen.push(f);
    }
    assert_eq!(seen[0], seen[1], "redis-server's frames, then ferrokv's");
}
