//! A busy script and the clients of its own thread, against redis-server 7.0.15.
//!
//! ferrokv runs with one shard thread, so every connection lives on the thread that
//! runs the spinning script: they are served from the script's Lua hook (BUSY, SCRIPT
//! KILL, FUNCTION KILL, SHUTDOWN NOSAVE, MULTI/EXEC refusals, new connections), as
//! redis-server serves them from `processEventsWhileBlocked`. Each scenario runs on
//! both servers and the transcripts (every reply, byte for byte) must be equal. Two
//! tests are ferrokv's alone: the input that waits for the script (not like Redis), and
//! SHUTDOWN NOSAVE from another shard thread (`core-ports`).
//! Waiting for the script to pass `busy-reply-threshold` polls with PING until BUSY;
//! no assertion depends on time.

use ferrokv_tests::resp::show;
use ferrokv_tests::server::Kind;
use ferrokv_tests::{Conn, Server};
use std::time::{Duration, Instant};

fn cmd(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

fn start(kind: Kind) -> Server {
    let args = ["--busy-reply-threshold", "50"];
    match kind {
        Kind::Ferrokv => Server::ferrokv(&[&args[..], &["--server-threads", "1"]].concat()),
        Kind::Redis => Server::redis(&args),
    }
}

fn connect(server: &Server) -> Conn {
    let mut c = Conn::connect(server.port()).expect("connect");
    c.set_timeout(Duration::from_secs(10));
    c
}

/// PINGs until the script is busy; returns the BUSY reply.
fn until_busy(c: &mut Conn) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = c.send(&cmd(&["PING"]));
        if reply.starts_with(b"-BUSY") {
            return reply;
        }
        assert_eq!(reply, b"+PONG\r\n");
        assert!(Instant::now() < deadline, "the script never got busy");
    }
}

/// FUNCTION STATS' reply with the running function's `duration_ms` value blanked.
fn without_duration(mut reply: Vec<u8>) -> Vec<u8> {
    let key = b"duration_ms\r\n:";
    if let Some(at) = reply.windows(key.len()).position(|w| w == key) {
        let from = at + key.len();
        let to = from + reply[from..].iter().position(|&b| b == b'\r').unwrap_or(0);
        reply.splice(from..to, *b"N");
    }
    reply
}

struct Transcript(Vec<(String, Vec<u8>)>);

impl Transcript {
    fn note(&mut self, what: &str, reply: Vec<u8>) {
        self.0.push((what.to_string(), reply));
    }
}

fn same(scenario: fn(&mut Server, &mut Transcript)) {
    let mut got = Vec::new();
    for kind in [Kind::Redis, Kind::Ferrokv] {
        let mut server = start(kind);
        let mut t = Transcript(Vec::new());
        scenario(&mut server, &mut t);
        got.push(t.0);
    }
    let (redis, ferrokv) = (&got[0], &got[1]);
    for (r, f) in redis.iter().zip(ferrokv) {
        assert_eq!(r.0, f.0);
        assert_eq!(show(&f.1), show(&r.1), "{}: ferrokv (left) and redis-server (right) differ", r.0);
    }
    assert_eq!(redis.len(), ferrokv.len());
}

/// SCRIPT KILL from a client of the script's thread ends the script; meanwhile other
/// clients get BUSY, a pipeline is answered in order, MULTI/EXEC are refused as
/// Redis refuses them, and a connection made during the busy phase is served too.
#[test]
fn script_kill_from_the_scripts_own_thread() {
    same(|server, t| {
        let mut spinner = connect(server);
        let mut c = connect(server);
        let mut tx = connect(server);
        let mut piped = connect(server);
        let mut queued = connect(server);
        t.note("multi before", tx.send(&cmd(&["MULTI"])));
        t.note("queued before", queued.send(&cmd(&["MULTI"])));
        // The script's own connection pipelines a PING behind it: answered after it.
        let mut eval = encode(&["EVAL", "while true do end", "0"]);
        eval.extend(encode(&["PING", "behind the script"]));
        spinner.write_raw(&eval).unwrap();
        t.note("ping", until_busy(&mut c));
        // A pipeline of another client during the busy phase: answered in order.
        let mut pipeline = encode(&["GET", "x"]);
        pipeline.extend(encode(&["INCR", "n"]));
        pipeline.extend(encode(&["SCRIPT", "LOAD", "return 1"]));
        pipeline.extend(encode(&["PING", "in order"]));
        piped.write_raw(&pipeline).unwrap();
        for what in ["pipelined GET", "pipelined INCR", "pipelined SCRIPT LOAD", "pipelined PING"] {
            t.note(what, piped.read_reply().unwrap());
        }
        // MULTI while busy runs; a command refused in a transaction dooms it, EXEC
        // is refused and discards it.
        t.note("multi while busy", c.send(&cmd(&["MULTI"])));
        t.note("nested multi", c.send(&cmd(&["MULTI"])));
        t.note("incr in multi", c.send(&cmd(&["INCR", "xx"])));
        t.note("discard", c.send(&cmd(&["DISCARD"])));
        t.note("discard again", c.send(&cmd(&["DISCARD"])));
        t.note("incr in earlier multi", tx.send(&cmd(&["INCR", "xx"])));
        t.note("exec while busy", queued.send(&cmd(&["EXEC"])));
        t.note("auth", c.send(&cmd(&["AUTH", "secret"])));
        t.note("hello", c.send(&cmd(&["HELLO", "4"])));
        t.note("unknown command", c.send(&cmd(&["NOSUCHCOMMAND"])));
        t.note("arity", c.send(&cmd(&["GET"])));
        // A connection made while the script spins.
        let mut late = connect(server);
        t.note("late ping", late.send(&cmd(&["PING"])));
        t.note("shutdown without nosave", late.send(&cmd(&["SHUTDOWN"])));
        t.note("function kill of an eval", late.send(&cmd(&["FUNCTION", "KILL"])));
        t.note("script kill", late.send(&cmd(&["SCRIPT", "KILL"])));
        t.note("killed script", spinner.read_reply().unwrap());
        t.note("pipelined behind the script", spinner.read_reply().unwrap());
        t.note("spinner after", spinner.send(&cmd(&["PING"])));
        t.note("exec after", tx.send(&cmd(&["EXEC"])));
        t.note("not in multi", tx.send(&cmd(&["PING", "asdf"])));
        t.note("not in multi either", queued.send(&cmd(&["PING", "asdf"])));
        t.note("incr refused", c.send(&cmd(&["GET", "n"])));
        t.note("xx untouched", c.send(&cmd(&["GET", "xx"])));
        t.note("script kill again", c.send(&cmd(&["SCRIPT", "KILL"])));
    });
}

/// FUNCTION KILL ends a busy function; a script that wrote cannot be killed, and
/// SHUTDOWN NOSAVE from a client of its thread stops the server anyway.
#[test]
fn function_kill_and_shutdown_nosave_from_the_scripts_own_thread() {
    same(|server, t| {
        let mut spinner = connect(server);
        let mut c = connect(server);
        let lib = "#!lua name=spin\nredis.register_function('spin', function() while true do end end)";
        t.note("load", c.send(&cmd(&["FUNCTION", "LOAD", lib])));
        spinner.write_raw(&encode(&["FCALL", "spin", "0"])).unwrap();
        t.note("ping", until_busy(&mut c));
        t.note("function stats", without_duration(c.send(&cmd(&["FUNCTION", "STATS"]))));
        t.note("script kill of a function", c.send(&cmd(&["SCRIPT", "KILL"])));
        t.note("function kill", c.send(&cmd(&["FUNCTION", "KILL"])));
        t.note("killed function", spinner.read_reply().unwrap());
        t.note("function kill again", c.send(&cmd(&["FUNCTION", "KILL"])));
        // A script that wrote cannot be killed.
        spinner.write_raw(&encode(&["EVAL", "redis.call('set', KEYS[1], 'y') while true do end", "1", "x"])).unwrap();
        t.note("ping 2", until_busy(&mut c));
        t.note("unkillable", c.send(&cmd(&["SCRIPT", "KILL"])));
        t.note("still busy", c.send(&cmd(&["GET", "x"])));
        c.write_raw(&encode(&["SHUTDOWN", "NOSAVE"])).unwrap();
        let (rest, closed) = c.read_until_closed(Duration::from_secs(10));
        t.note("shutdown nosave", rest);
        assert!(closed, "SHUTDOWN NOSAVE left the connection open");
        let status = server.wait_exit(Duration::from_secs(10));
        assert!(status.is_some(), "{} kept running after SHUTDOWN NOSAVE", server.kind().name());
        let (rest, closed) = spinner.read_until_closed(Duration::from_secs(10));
        t.note("the script's caller", rest);
        assert!(closed);
    });
}

/// Not like Redis: a command Redis lets through while a script is busy but that needs
/// the keyspace the script holds (WATCH here; also UNWATCH, RESET) waits
/// for the script, and what the client pipelined behind it waits too, then runs in
/// order (Redis runs WATCH at once and answers the rest BUSY). Nothing is lost or
/// reordered: the commands before it are answered BUSY at once.
#[test]
fn input_behind_a_command_that_waits_runs_in_order_after_the_script() {
    let server = start(Kind::Ferrokv);
    let mut spinner = connect(&server);
    let mut c = connect(&server);
    let mut piped = connect(&server);
    spinner.write_raw(&encode(&["EVAL", "while true do end", "0"])).unwrap();
    until_busy(&mut c);
    let mut pipeline = encode(&["PING", "first"]);
    pipeline.extend(encode(&["WATCH", "k"]));
    pipeline.extend(encode(&["SET", "k", "v"]));
    pipeline.extend(encode(&["PING", "last"]));
    piped.write_raw(&pipeline).unwrap();
    let first = piped.read_reply().unwrap();
    assert!(first.starts_with(b"-BUSY Redis is busy running a script."), "{}", show(&first));
    // More input while the rest waits: it queues behind it.
    piped.write_raw(&encode(&["GET", "k"])).unwrap();
    // The script is still busy: other clients still get BUSY (the waiting input does
    // not hold the hook up), and the kill comes from this thread too.
    let busy = c.send(&cmd(&["GET", "k"]));
    assert!(busy.starts_with(b"-BUSY"), "{}", show(&busy));
    assert_eq!(c.send(&cmd(&["SCRIPT", "KILL"])), b"+OK\r\n");
    let killed = spinner.read_reply().unwrap();
    assert!(killed.starts_with(b"-ERR Script killed by user with SCRIPT KILL..."), "{}", show(&killed));
    for expected in [&b"+OK\r\n"[..], b"+OK\r\n", b"$4\r\nlast\r\n", b"$1\r\nv\r\n"] {
        assert_eq!(show(&piped.read_reply().unwrap()), show(expected));
    }
}

/// SHUTDOWN NOSAVE from a client of another shard thread while a script spins: the
/// node exits without waiting for the script's thread (it used to wait for the script
/// to end). Each shard's own port (`core-ports`) puts the spinner on shard 0 and the
/// other client on shard 1.
#[test]
fn shutdown_nosave_from_another_thread_does_not_wait_for_the_script() {
    let ports = [ferrokv_tests::server::free_port(), ferrokv_tests::server::free_port()];
    let list = format!("{} {}", ports[0], ports[1]);
    let mut server = Server::ferrokv(&["--server-threads", "2", "--busy-reply-threshold", "50", "--core-ports", &list]);
    let mut spinner = Conn::connect(ports[0]).expect("shard 0's port");
    let mut c = Conn::connect(ports[1]).expect("shard 1's port");
    c.set_timeout(Duration::from_secs(10));
    spinner.write_raw(&encode(&["EVAL", "while true do end", "0"])).unwrap();
    until_busy(&mut c);
    c.write_raw(&encode(&["SHUTDOWN", "NOSAVE"])).unwrap();
    let (rest, closed) = c.read_until_closed(Duration::from_secs(10));
    assert!(closed && rest.is_empty(), "{}", show(&rest));
    assert!(server.wait_exit(Duration::from_secs(10)).is_some(), "the node kept running under its busy script");
}
