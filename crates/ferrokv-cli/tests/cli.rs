//! ferrokv-cli against real redis-server processes, with redis-cli as the reference.

mod common;

use common::{cli, cluster_nodes, redis_cli, text, RedisNode};

/// Cases for the one-shot comparison: commands that prepare the state, then the
/// command whose output is compared.
const CASES: &[(&[&[&str]], &[&str])] = &[
    (&[], &["SET", "k", "v"]),
    (&[&["SET", "k", "v"]], &["GET", "k"]),
    (&[], &["GET", "missing"]),
    (&[&["SET", "n", "abc"]], &["INCR", "n"]),
    (&[], &["NOSUCHCMD", "a", "b"]),
    (&[], &["SET", "k"]),
    (&[&["SET", "n", "41"]], &["INCR", "n"]),
    (&[&["RPUSH", "l", "a", "b c", "d"]], &["LRANGE", "l", "0", "-1"]),
    (&[], &["LRANGE", "nolist", "0", "-1"]),
    (&[&["HSET", "h", "f1", "v1", "f2", "v2"]], &["HGETALL", "h"]),
    (&[&["SET", "bin", "a\"b\\\n\x01\u{ff}"]], &["GET", "bin"]),
    (&[&["ZADD", "z", "1.5", "a", "2", "b"]], &["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
    (&[&["ZADD", "z", "1.5", "a"]], &["ZSCORE", "z", "a"]),
    (&[&["SET", "a", "1"], &["SET", "b", "2"]], &["MGET", "a", "nope", "b"]),
    (&[&["SET", "k", "v"]], &["-3", "GET", "k"]),
    (&[&["HSET", "h", "f1", "v1", "f2", "v2"]], &["-3", "HGETALL", "h"]),
    (&[&["ZADD", "z", "1.5", "a"]], &["-3", "ZSCORE", "z", "a"]),
    (&[&["SADD", "s", "m"]], &["-3", "SMEMBERS", "s"]),
    (&[], &["-3", "GET", "missing"]),
    (&[&["SET", "n", "abc"]], &["-e", "INCR", "n"]),
    (&[&["SET", "k", "v"]], &["-e", "GET", "k"]),
];

fn reset(node: &RedisNode, setup: &[&[&str]]) {
    node.redis_cli(&["FLUSHALL"]);
    for command in setup {
        node.redis_cli(command);
    }
}

/// (a) One-shot output, in both output modes, is what redis-cli prints, byte for byte,
/// with the same exit code and stderr.
#[test]
fn one_shot_output_matches_redis_cli() {
    let node = RedisNode::standalone();
    let port = node.port.to_string();
    for (setup, command) in CASES {
        for mode in [&[][..], &["--no-raw"][..], &["--raw"][..]] {
            let args: Vec<&str> = [&["-p", port.as_str()][..], mode, command].concat();
            reset(&node, setup);
            let mine = cli(&args, None);
            reset(&node, setup);
            let reference = redis_cli(&args, None);
            assert_eq!(text(&mine.stdout), text(&reference.stdout), "stdout of {args:?}");
            assert_eq!(text(&mine.stderr), text(&reference.stderr), "stderr of {args:?}");
            assert_eq!(mine.status.code(), reference.status.code(), "exit code of {args:?}");
        }
    }
}

/// Commands piped into the interactive mode: no prompt, replies as redis-cli prints them,
/// REPL words (repeat counts, bad quotes, quit) handled alike.
#[test]
fn piped_interactive_session_matches_redis_cli() {
    let node = RedisNode::standalone();
    let port = node.port.to_string();
    let script = b"SET a 1\nGET a\nfoo\nLRANGE nolist 0 -1\n\"bad\n3 INCR cnt\n0 INCR x\n\nRPUSH l a b\n\
                   SET \"a b\" \"c\\x41\"\nGET \"a b\"\nHSET h f v\nHGETALL h\nquit\nGET a\n";
    for mode in [&[][..], &["--no-raw"][..]] {
        let args: Vec<&str> = [&["-p", port.as_str()][..], mode].concat();
        reset(&node, &[]);
        let mine = cli(&args, Some(script));
        reset(&node, &[]);
        let reference = redis_cli(&args, Some(script));
        assert_eq!(text(&mine.stdout), text(&reference.stdout), "{args:?}");
        assert_eq!(mine.status.code(), reference.status.code());
    }
}

#[test]
fn connection_and_auth_failures_are_reported_like_redis_cli() {
    let node = RedisNode::standalone();
    let port = node.port.to_string();
    node.redis_cli(&["CONFIG", "SET", "requirepass", "secret"]);
    for args in [
        &["-p", port.as_str(), "-a", "wrong", "GET", "k"][..],
        &["-p", port.as_str(), "-a", "secret", "GET", "k"][..],
        &["-p", port.as_str(), "-a", "secret", "--no-auth-warning", "PING"][..],
        &["-p", port.as_str(), "GET", "k"][..],
    ] {
        let mine = cli(args, None);
        let reference = redis_cli(args, None);
        assert_eq!(text(&mine.stdout), text(&reference.stdout), "stdout of {args:?}");
        assert_eq!(text(&mine.stderr), text(&reference.stderr), "stderr of {args:?}");
        assert_eq!(mine.status.code(), reference.status.code(), "exit code of {args:?}");
    }
    drop(node);
    // Nothing listens there any more.
    let mine = cli(&["-p", &port, "PING"], None);
    let reference = redis_cli(&["-p", &port, "PING"], None);
    assert_eq!(text(&mine.stderr), text(&reference.stderr));
    assert_eq!(mine.status.code(), Some(1));
    assert_eq!(reference.status.code(), Some(1));
}

/// Creates a cluster of `nodes` with ferrokv-cli; panics with its output if it fails.
fn create(nodes: &[RedisNode], replicas: usize) -> String {
    let mut args = vec!["cluster".to_string(), "create".to_string()];
    args.extend(nodes.iter().map(RedisNode::addr));
    args.extend(["--replicas".to_string(), replicas.to_string(), "--yes".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cli(&args, None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "cluster create failed:\n{stdout}\n{}", text(&out.stderr));
    stdout
}

/// (b) Six nodes, one replica each: the cluster comes up everywhere and redis-cli's own
/// check accepts it. Bad requests before it (too few nodes, no confirmation) change
/// nothing, and creating again on the same nodes is refused.
#[test]
fn cluster_create_six_nodes_with_replicas() {
    let nodes = cluster_nodes(6);
    let addrs: Vec<String> = nodes.iter().map(RedisNode::addr).collect();
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();

    let five = cli(&[&["cluster", "create"][..], &addrs[..5], &["--replicas", "1", "--yes"]].concat(), None);
    assert!(!five.status.success());
    assert!(text(&five.stdout).contains("requires at least 3 master nodes") || text(&five.stderr).contains("3 master"));

    // No --yes and nothing on stdin: the plan is shown, nothing is done.
    let unconfirmed = cli(&[&["cluster", "create"][..], &addrs, &["--replicas", "1"]].concat(), None);
    assert!(!unconfirmed.status.success());
    assert!(text(&unconfirmed.stdout).contains("Can I set the above configuration?"));
    assert!(!text(&unconfirmed.stderr).is_empty());
    for node in &nodes {
        assert_eq!(node.cluster_info("cluster_slots_assigned"), "0");
    }

    let stdout = create(&nodes, 1);
    assert!(stdout.contains("Master[2] -> Slots 10923 - 16383"), "{stdout}");
    assert!(stdout.contains("[OK] All nodes agree about slots configuration."), "{stdout}");
    assert!(stdout.contains("[OK] All 16384 slots covered."), "{stdout}");
    for node in &nodes {
        assert_eq!(node.cluster_info("cluster_state"), "ok", "{}", node.addr());
        assert_eq!(node.cluster_info("cluster_known_nodes"), "6", "{}", node.addr());
    }
    let roles: Vec<String> =
        nodes.iter().map(|n| n.redis_cli(&["ROLE"]).lines().next().unwrap_or_default().to_string()).collect();
    assert_eq!(roles.iter().filter(|r| *r == "master").count(), 3, "{roles:?}");
    assert_eq!(roles.iter().filter(|r| *r == "slave").count(), 3, "{roles:?}");

    let reference = redis_cli(&["--cluster", "check", addrs[0]], None);
    let reference_out = text(&reference.stdout);
    assert!(reference.status.success(), "redis-cli --cluster check:\n{reference_out}");
    assert!(reference_out.contains("All 16384 slots covered"), "{reference_out}");

    let check = cli(&["cluster", "check", addrs[3]], None);
    assert!(check.status.success(), "{}", text(&check.stdout));
    let info = cli(&["cluster", "info", addrs[0]], None);
    assert!(info.status.success());
    assert!(text(&info.stdout).contains("[OK] 0 keys in 3 masters."), "{}", text(&info.stdout));

    let again = cli(&[&["cluster", "create"][..], &addrs, &["--replicas", "1", "--yes"]].concat(), None);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("is not empty"), "{}", text(&again.stderr));
}

/// (c) A slot without an owner fails `cluster check`, as it fails redis-cli's.
#[test]
fn cluster_check_fails_on_a_missing_slot() {
    let nodes = cluster_nodes(3);
    create(&nodes, 0);
    let ok = cli(&["cluster", "check", &nodes[1].addr()], None);
    assert!(ok.status.success(), "{}", text(&ok.stdout));

    // Slot 0 is the first master's (redis-cli's layout).
    assert_eq!(nodes[0].redis_cli(&["CLUSTER", "DELSLOTS", "0"]).trim(), "OK");
    let bad = cli(&["cluster", "check", &nodes[0].addr()], None);
    let stdout = text(&bad.stdout);
    assert_ne!(bad.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("[ERR] Not all 16384 slots are covered by nodes (missing: 0)."), "{stdout}");
    assert!(!text(&bad.stderr).trim().is_empty());
    let reference = redis_cli(&["--cluster", "check", &nodes[0].addr()], None);
    assert!(!reference.status.success(), "redis-cli agrees that the cluster is broken");

    // An open slot is an error too.
    nodes[0].redis_cli(&["CLUSTER", "ADDSLOTS", "0"]);
    let owner_of_1 = nodes[0].redis_cli(&["CLUSTER", "MYID"]);
    nodes[1].redis_cli(&["CLUSTER", "SETSLOT", "1", "IMPORTING", owner_of_1.trim()]);
    let open = cli(&["cluster", "check", &nodes[2].addr()], None);
    let stdout = text(&open.stdout);
    assert!(!open.status.success(), "{stdout}");
    assert!(stdout.contains("[WARNING] The following slots are open: 1."), "{stdout}");
}

/// (d) With -c, one node serves keys of every master by following MOVED (and ASK, for a
/// slot being migrated); without it the error is printed. A piped session prints
/// redis-cli's redirect lines.
#[test]
fn follows_moved_redirections() {
    let nodes = cluster_nodes(3);
    create(&nodes, 0);
    let port = nodes[0].port.to_string();
    // One key per master: slot ranges 0-5460, 5461-10922, 10923-16383.
    let mut keys: Vec<Option<String>> = vec![None; 3];
    for i in 0..100 {
        let key = format!("key:{i}");
        let slot: u32 = nodes[0].redis_cli(&["CLUSTER", "KEYSLOT", &key]).trim().parse().expect("slot");
        let owner = if slot <= 5460 {
            0
        } else if slot <= 10922 {
            1
        } else {
            2
        };
        keys[owner].get_or_insert(key);
    }
    for (owner, key) in keys.iter().enumerate() {
        let key = key.as_deref().expect("a key for every master");
        let value = format!("value-{owner}");
        let set = cli(&["-c", "-p", &port, "SET", key, &value], None);
        assert_eq!(text(&set.stdout), "OK\n", "SET {key}: {}", text(&set.stderr));
        let get = cli(&["-c", "-p", &port, "--no-raw", "GET", key], None);
        assert_eq!(text(&get.stdout), format!("\"{value}\"\n"));
        assert_eq!(nodes[owner].redis_cli(&["GET", key]).trim(), value, "{key} lives on its owner");
        if owner != 0 {
            let plain = cli(&["-p", &port, "GET", key], None);
            assert!(text(&plain.stdout).starts_with("MOVED "), "{}", text(&plain.stdout));
        }
    }
    // Each line leaves the same state for the reference run.
    let script: String = keys.iter().flatten().map(|k| format!("SET {k} piped\nGET {k}\nGET key:none\n")).collect();
    let mine = cli(&["-c", "-p", &port], Some(script.as_bytes()));
    let reference = redis_cli(&["-c", "-p", &port], Some(script.as_bytes()));
    assert_eq!(text(&mine.stdout), text(&reference.stdout));
    assert!(text(&mine.stdout).contains("-> Redirected to slot ["), "{}", text(&mine.stdout));

    // ASK: a slot of the second master migrating to the third. A key not yet on the
    // second master is asked for on the third, after ASKING.
    let (key, slot) = (0..200)
        .map(|i| format!("ask:{i}"))
        .map(|k| {
            let slot: u32 = nodes[0].redis_cli(&["CLUSTER", "KEYSLOT", &k]).trim().parse().expect("slot");
            (k, slot)
        })
        .find(|(_, slot)| (5461..=10922).contains(slot))
        .expect("a key of the second master");
    let slot = slot.to_string();
    let id = |n: &RedisNode| n.redis_cli(&["CLUSTER", "MYID"]).trim().to_string();
    assert_eq!(nodes[2].redis_cli(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &id(&nodes[1])]).trim(), "OK");
    assert_eq!(nodes[1].redis_cli(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &id(&nodes[2])]).trim(), "OK");
    let plain = cli(&["-p", &nodes[1].port.to_string(), "SET", &key, "x"], None);
    assert_eq!(text(&plain.stdout), format!("ASK {slot} {}\n\n", nodes[2].addr()));
    let set = cli(&["-c", "-p", &port, "SET", &key, "asked"], None);
    assert_eq!(text(&set.stdout), "OK\n", "{}", text(&set.stderr));
    assert_eq!(nodes[2].redis_cli(&["CLUSTER", "COUNTKEYSINSLOT", &slot]).trim(), "1");
    assert_eq!(nodes[1].redis_cli(&["CLUSTER", "COUNTKEYSINSLOT", &slot]).trim(), "0");
    let get = cli(&["-c", "-p", &port, "GET", &key], None);
    assert_eq!(text(&get.stdout), "asked\n");
}

/// `--help`, `cluster --help` and `cluster SUB --help` print usage on stdout and exit 0
/// without connecting anywhere (they are never sent to a server as "--help").
#[test]
fn help_is_printed_without_contacting_a_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut cases: Vec<Vec<&str>> = vec![vec!["--help"], vec!["cluster", "--help"], vec!["cluster", "-h"]];
    for sub in ["create", "check", "info", "reshard", "rebalance", "add-node", "del-node", "fix", "import", "failover"]
    {
        cases.push(vec!["cluster", sub, "--help"]);
        cases.push(vec!["--cluster", sub, "--help"]);
    }
    for case in cases {
        let mut args = vec!["-p", port.as_str()];
        args.extend(&case);
        let out = cli(&args, None);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{case:?}: {:?} {}", out.status, text(&out.stderr));
        assert!(stdout.contains("Usage") || stdout.contains("Cluster admin"), "{case:?}: {stdout}");
        assert!(listener.accept().is_err(), "{case:?} connected to the server");
    }
}
