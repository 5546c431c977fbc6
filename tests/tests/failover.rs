//! Replication and failover in a real 6-node cluster built by `redis-cli --cluster
//! create --cluster-replicas 1`: replicas hold their master's data; SIGKILL of a master
//! promotes its replica, `cluster_state:ok` returns everywhere and every write
//! acknowledged with `WAIT 1` before the kill is readable; the killed node restarts and
//! rejoins as a replica of the new master; a manual CLUSTER FAILOVER swaps the roles
//! back without losing a write; `redis-cli --cluster check` is clean after each.
//!
//! `FERROKV_TARGET=redis` runs the same test against redis-server nodes.

use ferrokv_tests::resp::Reply;
use ferrokv_tests::server::target_kind;
use ferrokv_tests::{Conn, Server};
use std::process::Command;
use std::time::{Duration, Instant};

fn nodes(n: usize) -> Vec<Server> {
    (0..n)
        .map(|_| {
            Server::cluster_node(
                target_kind(),
                &["--cluster-node-timeout", "2000", "--save", "", "--repl-diskless-sync-delay", "0"],
            )
        })
        .collect()
}

fn text(c: &mut Conn, args: &[&str]) -> String {
    match c.call(args) {
        Reply::Bulk(Some(b)) | Reply::Verbatim(b) | Reply::Simple(b) | Reply::Error(b) => {
            String::from_utf8_lossy(&b).into_owned()
        }
        other => format!("{other:?}"),
    }
}

fn field(s: &Server, section: &str, name: &str) -> Option<String> {
    let mut c = s.try_conn()?;
    let info = text(&mut c, &["INFO", section]);
    info.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string()))
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn redis_cli(args: &[String]) -> (bool, String) {
    let out = Command::new("redis-cli").args(args).output().expect("redis-cli is installed (deploy/test.sh)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn check_with_redis_cli(node: &Server) {
    let (ok, out) = redis_cli(&["--cluster".into(), "check".into(), node.addr()]);
    assert!(ok, "redis-cli --cluster check failed:\n{out}");
    assert!(out.contains("[OK] All nodes agree about slots configuration."), "{out}");
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
}

fn state_ok(s: &Server) -> bool {
    s.try_conn().is_some_and(|mut c| text(&mut c, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
}

/// The port of the master serving `slot`, from CLUSTER SLOTS asked of `via`.
fn owner_port(via: &Server, slot: i64) -> u16 {
    let mut c = via.conn();
    let Reply::Array(Some(ranges)) = c.call(&["CLUSTER", "SLOTS"]) else { panic!("CLUSTER SLOTS") };
    for r in ranges {
        let Reply::Array(Some(items)) = r else { continue };
        let (Reply::Int(lo), Reply::Int(hi)) = (&items[0], &items[1]) else { continue };
        if (*lo..=*hi).contains(&slot) {
            if let Reply::Array(Some(m)) = &items[2] {
                if let Reply::Int(p) = m[1] {
                    return p as u16;
                }
            }
        }
    }
    panic!("slot {slot} unserved");
}

fn slot_of(c: &mut Conn, key: &str) -> i64 {
    match c.call(&["CLUSTER", "KEYSLOT", key]) {
        Reply::Int(n) => n,
        other => panic!("CLUSTER KEYSLOT: {other:?}"),
    }
}

fn by_port(nodes: &[Server], port: u16) -> &Server {
    nodes.iter().find(|n| n.port() == port).expect("a node of the cluster")
}

/// Writes `keys` to their masters, each acknowledged by `WAIT 1` (one replica).
fn write_acked(nodes: &[Server], via: usize, keys: &[String], value: &str) {
    let mut probe = nodes[via].conn();
    for k in keys {
        let slot = slot_of(&mut probe, k);
        let mut m = by_port(nodes, owner_port(&nodes[via], slot)).conn();
        assert_eq!(m.call(&["SET", k, value]), Reply::Simple(b"OK".to_vec()), "SET {k}");
        assert_eq!(m.call(&["WAIT", "1", "5000"]), Reply::Int(1), "WAIT 1 after SET {k}");
    }
}

/// Reads every key from its current master.
fn assert_readable(nodes: &[Server], via: usize, keys: &[String], value: &str) {
    let mut probe = nodes[via].conn();
    for k in keys {
        let slot = slot_of(&mut probe, k);
        let mut m = by_port(nodes, owner_port(&nodes[via], slot)).conn();
        assert_eq!(m.call(&["GET", k]), Reply::Bulk(Some(value.as_bytes().to_vec())), "GET {k}");
    }
}

fn role(s: &Server) -> Option<String> {
    field(s, "replication", "role")
}

#[test]
fn replicas_replicate_and_take_over_a_killed_master() {
    let mut nodes = nodes(6);
    let mut args = vec!["--cluster".to_string(), "create".to_string()];
    args.extend(nodes.iter().map(|n| n.addr()));
    args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(String::from));
    let (ok, out) = redis_cli(&args);
    assert!(ok, "redis-cli --cluster create failed:\n{out}");
    wait_until("cluster_state:ok everywhere", Duration::from_secs(30), || nodes.iter().all(state_ok));
    wait_until("every replica's link is up", Duration::from_secs(30), || {
        nodes.iter().filter(|n| role(n).as_deref() == Some("slave")).count() == 3
            && nodes.iter().all(|n| {
                role(n).as_deref() != Some("slave")
                    || field(n, "replication", "master_link_status").as_deref() == Some("up")
            })
    });
    let keys: Vec<String> = (0..200).map(|i| format!("key:{i}")).collect();
    write_acked(&nodes, 0, &keys, "v1");

    // Replicas hold their masters' data (READONLY reads).
    for n in nodes.iter().filter(|n| role(n).as_deref() == Some("slave")) {
        let mut c = n.conn();
        let dbsize = match c.call(&["DBSIZE"]) {
            Reply::Int(k) => k,
            other => panic!("{other:?}"),
        };
        assert!(dbsize > 0, "a replica holds keys");
    }

    // SIGKILL the master of key:0; its replica takes over.
    let mut probe = nodes[0].conn();
    let slot = slot_of(&mut probe, "key:0");
    let victim_port = owner_port(&nodes[0], slot);
    let victim = nodes.iter().position(|n| n.port() == victim_port).unwrap();
    let replica = nodes
        .iter()
        .position(|n| {
            role(n).as_deref() == Some("slave")
                && field(n, "replication", "master_port").as_deref() == Some(&victim_port.to_string())
        })
        .expect("the victim has a replica");
    // READONLY reads on the replica; without it, a MOVED to its master.
    let mut rc = nodes[replica].conn();
    assert!(matches!(rc.call(&["GET", "key:0"]), Reply::Error(e) if e.starts_with(b"MOVED")));
    assert_eq!(rc.call(&["READONLY"]), Reply::Simple(b"OK".to_vec()));
    assert_eq!(rc.call(&["GET", "key:0"]), Reply::Bulk(Some(b"v1".to_vec())));
    drop(rc);
    let killed_at = Instant::now();
    nodes[victim].kill();
    let live: Vec<usize> = (0..6).filter(|&i| i != victim).collect();
    wait_until("the replica is promoted", Duration::from_secs(30), || {
        role(&nodes[replica]).as_deref() == Some("master")
    });
    wait_until("cluster_state:ok on the live nodes", Duration::from_secs(30), || {
        live.iter().all(|&i| state_ok(&nodes[i]))
    });
    eprintln!("failover took {:?} after SIGKILL (node timeout 2000 ms)", killed_at.elapsed());
    let via = live[0];
    wait_until("the slot moved to the promoted replica", Duration::from_secs(30), || {
        owner_port(&nodes[via], slot) == nodes[replica].port()
    });
    assert_readable(&nodes, via, &keys, "v1");

    // The killed node comes back as a replica of the new master.
    nodes[victim].restart();
    let new_master = nodes[replica].port().to_string();
    wait_until("the old master rejoins as a replica of the new one", Duration::from_secs(30), || {
        role(&nodes[victim]).as_deref() == Some("slave")
            && field(&nodes[victim], "replication", "master_port").as_deref() == Some(&new_master)
            && field(&nodes[victim], "replication", "master_link_status").as_deref() == Some("up")
    });
    wait_until("cluster_state:ok everywhere", Duration::from_secs(30), || nodes.iter().all(state_ok));
    check_with_redis_cli(&nodes[via]);

    // A manual failover swaps the roles back without losing a write. Its replica asks
    // the masters for votes, and a master refuses one to a node it still takes for a
    // master (as Redis's clusterSendFailoverAuthIfNeeded): wait until every node has
    // heard from the restarted node that it is a replica (its own view says so as soon
    // as it switches; the others learn it from its next ping or pong).
    let victim_id = text(&mut nodes[victim].conn(), &["CLUSTER", "MYID"]);
    wait_until("every node sees the restarted node as a replica", Duration::from_secs(30), || {
        nodes.iter().all(|n| {
            n.try_conn().is_some_and(|mut c| {
                text(&mut c, &["CLUSTER", "NODES"]).lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.first() == Some(&victim_id.as_str()) && f.get(2).is_some_and(|flags| flags.contains("slave"))
                })
            })
        })
    });
    let more: Vec<String> = (0..100).map(|i| format!("more:{i}")).collect();
    write_acked(&nodes, via, &more, "v2");
    let mut c = nodes[victim].conn();
    assert_eq!(c.call(&["CLUSTER", "FAILOVER"]), Reply::Simple(b"OK".to_vec()));
    wait_until("the manual failover is done", Duration::from_secs(30), || {
        role(&nodes[victim]).as_deref() == Some("master") && role(&nodes[replica]).as_deref() == Some("slave")
    });
    wait_until("cluster_state:ok everywhere", Duration::from_secs(30), || nodes.iter().all(state_ok));
    wait_until("the slot is back on the old master", Duration::from_secs(30), || {
        owner_port(&nodes[via], slot) == nodes[victim].port()
    });
    assert_readable(&nodes, via, &keys, "v1");
    assert_readable(&nodes, via, &more, "v2");
    wait_until("redis-cli sees one configuration", Duration::from_secs(30), || {
        let (ok, out) = redis_cli(&["--cluster".into(), "check".into(), nodes[via].addr()]);
        ok && out.contains("[OK] All nodes agree about slots configuration.")
    });
    check_with_redis_cli(&nodes[via]);
}
