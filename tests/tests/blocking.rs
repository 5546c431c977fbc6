//! Blocking commands as clients see them: timeouts, wake-ups by pushes from other
//! connections (also from another shard), Redis's first-come-first-served order, MULTI,
//! and clients that go away while blocked. `FERROKV_TARGET=redis` runs them against
//! redis-server, which must pass every one.
//!
//! Waits are bounded: every blocking call has a timeout or a reply that the test causes.

use std::time::{Duration, Instant};

use ferrokv_tests::resp::show;
use ferrokv_tests::{Conn, Server};

#[track_caller]
fn assert_reply(actual: &[u8], expected: &[u8]) {
    assert_eq!(actual, expected, "\n  got:      {}\n  expected: {}", show(actual), show(expected));
}

/// Sends a command without reading its reply.
fn start(conn: &mut Conn, args: &[&str]) {
    let mut frame = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        frame.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
    }
    conn.write_raw(&frame).expect("write");
}

/// Waits until `n` clients are blocked (INFO clients), bounded.
fn wait_blocked(conn: &mut Conn, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = conn.send(&["INFO", "clients"]);
        let text = String::from_utf8_lossy(&info).to_string();
        if text.contains(&format!("blocked_clients:{n}\r\n")) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {n} blocked clients: {text}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn servers() -> Vec<Server> {
    let mut all = vec![Server::under_test(&[]), Server::under_test(&["--server-threads", "2"])];
    // Pushes for the other shard forwarded to its thread (the default runs them on the
    // pusher's thread under that shard's lock).
    if ferrokv_tests::server::target_kind() == ferrokv_tests::Kind::Ferrokv {
        all.push(Server::under_test(&["--server-threads", "2", "--shard-hop", "forward"]));
    }
    all
}

#[test]
fn timeout_answers_null() {
    for server in servers() {
        let mut c = server.conn();
        let t = Instant::now();
        assert_reply(&c.send(&["BLPOP", "nothing", "0.2"]), b"*-1\r\n");
        assert!(t.elapsed() >= Duration::from_millis(150), "returned after {:?}", t.elapsed());
        // Redis 7.0 answers a BLMOVE timeout with a null array too.
        assert_reply(&c.send(&["BLMOVE", "nothing", "dst", "LEFT", "RIGHT", "0.05"]), b"*-1\r\n");
        assert_reply(&c.send(&["HELLO", "3"])[..1], b"%");
        assert_reply(&c.send(&["BRPOP", "nothing", "0.05"]), b"_\r\n");
    }
}

#[test]
fn push_from_another_connection_wakes_the_waiter() {
    for server in servers() {
        let mut waiter = server.conn();
        let mut pusher = server.conn();
        start(&mut waiter, &["BLPOP", "list-a", "list-b", "5"]);
        wait_blocked(&mut pusher, 1);
        assert_reply(&pusher.send(&["RPUSH", "list-b", "x", "y"]), b":2\r\n");
        assert_reply(&waiter.read_reply().expect("reply"), b"*2\r\n$6\r\nlist-b\r\n$1\r\nx\r\n");
        assert_reply(&pusher.send(&["LRANGE", "list-b", "0", "-1"]), b"*1\r\n$1\r\ny\r\n");
        wait_blocked(&mut pusher, 0);
    }
}

#[test]
fn waiters_are_served_first_come_first_served() {
    for server in servers() {
        let mut pusher = server.conn();
        let mut waiters: Vec<Conn> = (0..3).map(|_| server.conn()).collect();
        for (i, w) in waiters.iter_mut().enumerate() {
            start(w, &["BRPOP", "queue", "5"]);
            wait_blocked(&mut pusher, i + 1);
        }
        assert_reply(&pusher.send(&["LPUSH", "queue", "a", "b", "c"]), b":3\r\n");
        // BRPOP pops from the tail: the oldest waiter gets "a", then "b", then "c".
        for (w, v) in waiters.iter_mut().zip(["a", "b", "c"]) {
            let expected = format!("*2\r\n$5\r\nqueue\r\n$1\r\n{v}\r\n");
            assert_reply(&w.read_reply().expect("reply"), expected.as_bytes());
        }
        assert_reply(&pusher.send(&["EXISTS", "queue"]), b":0\r\n");
    }
}

#[test]
fn blmove_waiter_moves_the_element() {
    for server in servers() {
        let mut waiter = server.conn();
        let mut pusher = server.conn();
        // Keys chosen to live on different shards of a two-shard node.
        start(&mut waiter, &["BLMOVE", "src", "dst-17", "RIGHT", "LEFT", "5"]);
        wait_blocked(&mut pusher, 1);
        pusher.send(&["RPUSH", "src", "v"]);
        assert_reply(&waiter.read_reply().expect("reply"), b"$1\r\nv\r\n");
        assert_reply(&pusher.send(&["LRANGE", "dst-17", "0", "-1"]), b"*1\r\n$1\r\nv\r\n");
        assert_reply(&pusher.send(&["EXISTS", "src"]), b":0\r\n");
    }
}

#[test]
fn blocking_inside_multi_does_not_block() {
    for server in servers() {
        let mut c = server.conn();
        c.send(&["MULTI"]);
        c.send(&["BLPOP", "nothing", "0"]);
        assert_reply(&c.send(&["EXEC"]), b"*1\r\n*-1\r\n");
    }
}

#[test]
fn commands_after_a_blocking_one_wait_for_it() {
    for server in servers() {
        let mut waiter = server.conn();
        let mut pusher = server.conn();
        waiter.write_raw(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n5\r\n*1\r\n$4\r\nPING\r\n").expect("write");
        wait_blocked(&mut pusher, 1);
        pusher.send(&["RPUSH", "q", "1"]);
        assert_reply(&waiter.read_reply().expect("reply"), b"*2\r\n$1\r\nq\r\n$1\r\n1\r\n");
        assert_reply(&waiter.read_reply().expect("reply"), b"+PONG\r\n");
    }
}

#[test]
fn a_client_gone_while_blocked_is_not_served() {
    for server in servers() {
        let mut pusher = server.conn();
        {
            let mut gone = server.conn();
            start(&mut gone, &["BLPOP", "jobs", "0"]);
            wait_blocked(&mut pusher, 1);
        }
        wait_blocked(&mut pusher, 0);
        let mut waiter = server.conn();
        start(&mut waiter, &["BLPOP", "jobs", "5"]);
        wait_blocked(&mut pusher, 1);
        pusher.send(&["RPUSH", "jobs", "only"]);
        assert_reply(&waiter.read_reply().expect("reply"), b"*2\r\n$4\r\njobs\r\n$4\r\nonly\r\n");
    }
}

#[test]
fn bzpopmin_is_woken_by_zadd() {
    for server in servers() {
        let mut waiter = server.conn();
        let mut pusher = server.conn();
        start(&mut waiter, &["BZPOPMIN", "z", "5"]);
        wait_blocked(&mut pusher, 1);
        pusher.send(&["ZADD", "z", "2", "b", "1", "a"]);
        assert_reply(&waiter.read_reply().expect("reply"), b"*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n");
    }
}
