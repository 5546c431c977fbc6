//! ferrokv-server as clients see it: a real client library (the `redis` crate), raw
//! protocol edge cases, configuration, shutdown and two shard threads.
//!
//! One feature per test fn, so a missing feature fails alone. `FERROKV_TARGET=redis`
//! runs them all against redis-server, which must pass every one.

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrokv_tests::resp::show;
use ferrokv_tests::server::target_kind;
use ferrokv_tests::{Reply, Server};
use redis::Commands;

fn client(server: &Server) -> redis::Connection {
    let client = redis::Client::open(server.url()).expect("client url");
    client.get_connection_with_timeout(Duration::from_secs(5)).expect("connect")
}

#[track_caller]
fn assert_reply(actual: &[u8], expected: &[u8]) {
    assert_eq!(actual, expected, "\n  got:      {}\n  expected: {}", show(actual), show(expected));
}

#[test]
fn set_and_get_with_a_client_library() {
    let server = Server::under_test(&[]);
    let mut con = client(&server);
    let _: () = con.set("greeting", "hello").unwrap();
    let value: String = con.get("greeting").unwrap();
    assert_eq!(value, "hello");
    let missing: Option<String> = con.get("nothing-here").unwrap();
    assert_eq!(missing, None);
    let n: i64 = con.incr("counter", 5).unwrap();
    assert_eq!(n, 5);
    let deleted: i64 = con.del(&["greeting", "counter", "nothing-here"]).unwrap();
    assert_eq!(deleted, 2);
}

#[test]
fn pipeline_of_1000_commands() {
    let server = Server::under_test(&[]);
    let mut con = client(&server);
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(format!("value:{i}")).ignore();
    }
    for i in 0..1000 {
        pipe.cmd("GET").arg(format!("key:{i}"));
    }
    let values: Vec<String> = pipe.query(&mut con).unwrap();
    assert_eq!(values.len(), 1000);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v, &format!("value:{i}"));
    }
}

#[test]
fn raw_pipeline_in_one_write_keeps_order() {
    let server = Server::under_test(&[]);
    let mut conn = server.conn();
    let commands: Vec<Vec<String>> =
        (0..1000).map(|i| vec!["INCRBY".to_string(), "n".to_string(), (i % 7).to_string()]).collect();
    let replies = conn.pipeline(&commands);
    let mut total = 0;
    for (i, reply) in replies.iter().enumerate() {
        total += i % 7;
        assert_reply(reply, format!(":{total}\r\n").as_bytes());
    }
}

#[test]
fn one_mib_values() {
    let server = Server::under_test(&[]);
    let mut con = client(&server);
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let _: () = con.set("big", &big[..]).unwrap();
    let back: Vec<u8> = con.get("big").unwrap();
    assert!(back == big, "1 MiB value came back different ({} bytes)", back.len());
    let len: usize = con.strlen("big").unwrap();
    assert_eq!(len, big.len());
    let _: () = con.append("big", &big[..]).unwrap();
    let len: usize = con.strlen("big").unwrap();
    assert_eq!(len, 2 * big.len());
}

#[test]
fn request_split_into_single_bytes() {
    let server = Server::under_test(&[]);
    let mut conn = server.conn();
    let request = b"*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$10\r\n0123456789\r\n*2\r\n$3\r\nGET\r\n$5\r\nsplit\r\n";
    for byte in request {
        conn.write_raw(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_reply(&conn.read_reply().unwrap(), b"+OK\r\n");
    assert_reply(&conn.read_reply().unwrap(), b"$10\r\n0123456789\r\n");
}

fn protocol_error(request: &[u8], expected: &[u8]) {
    let server = Server::under_test(&[]);
    let mut conn = server.conn();
    conn.write_raw(request).unwrap();
    let (bytes, closed) = conn.read_until_closed(Duration::from_secs(5));
    assert_reply(&bytes, expected);
    assert!(closed, "the server should close the connection after {}", show(expected));
    // The server itself goes on.
    assert_reply(&server.conn().send(&["PING"]), b"+PONG\r\n");
}

#[test]
fn protocol_error_invalid_multibulk_length() {
    protocol_error(b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n");
}

#[test]
fn protocol_error_invalid_bulk_length() {
    protocol_error(b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n");
}

#[test]
fn protocol_error_expected_dollar() {
    protocol_error(b"*1\r\nPING\r\n", b"-ERR Protocol error: expected '$', got 'P'\r\n");
}

#[test]
fn protocol_error_unbalanced_quotes_inline() {
    protocol_error(b"SET k \"abc\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n");
}

#[test]
fn replies_before_a_protocol_error_are_sent() {
    protocol_error(
        b"PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n",
        b"+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
    );
}

#[test]
fn inline_commands() {
    let server = Server::under_test(&[]);
    let mut conn = server.conn();
    conn.write_raw(b"PING\r\n").unwrap();
    assert_reply(&conn.read_reply().unwrap(), b"+PONG\r\n");
    conn.write_raw(b"SET k \"hello world\"\r\n").unwrap();
    assert_reply(&conn.read_reply().unwrap(), b"+OK\r\n");
    conn.write_raw(b"GET k\n").unwrap();
    assert_reply(&conn.read_reply().unwrap(), b"$11\r\nhello world\r\n");
    // Empty lines are skipped; several commands in one write.
    conn.write_raw(b"\r\n\r\nECHO 'a b'\r\n  STRLEN   k  \r\n").unwrap();
    assert_reply(&conn.read_reply().unwrap(), b"$3\r\na b\r\n");
    assert_reply(&conn.read_reply().unwrap(), b":11\r\n");
    conn.write_raw(b"ECHO \"\\x41\\n\"\r\n").unwrap();
    assert_reply(&conn.read_reply().unwrap(), b"$2\r\nA\n\r\n");
}

#[test]
fn unknown_command_error_text() {
    let server = Server::under_test(&[]);
    let mut conn = server.conn();
    assert_reply(&conn.send(&["foo", "a"]), b"-ERR unknown command 'foo', with args beginning with: 'a' \r\n");
    assert_reply(&conn.send(&["FOO"]), b"-ERR unknown command 'FOO', with args beginning with: \r\n");
    assert_reply(
        &conn.send(&["nosuch", "x", "y z"]),
        b"-ERR unknown command 'nosuch', with args beginning with: 'x' 'y z' \r\n",
    );
    // The connection stays usable.
    assert_reply(&conn.send(&["PING"]), b"+PONG\r\n");
}

#[test]
fn wrong_arity_error_text() {
    let server = Server::under_test(&[]);
    let mut conn = server.conn();
    assert_reply(&conn.send(&["GET"]), b"-ERR wrong number of arguments for 'get' command\r\n");
    assert_reply(&conn.send(&["get", "a", "b"]), b"-ERR wrong number of arguments for 'get' command\r\n");
    assert_reply(&conn.send(&["SET", "k"]), b"-ERR wrong number of arguments for 'set' command\r\n");
    assert_reply(&conn.send(&["MSET", "a", "1", "b"]), b"-ERR wrong number of arguments for 'mset' command\r\n");
}

#[test]
fn ping_echo_and_quit() {
    let server = Server::under_test(&[]);
    let mut conn = server.conn();
    assert_reply(&conn.send(&["PING"]), b"+PONG\r\n");
    assert_reply(&conn.send(&["PING", "hi"]), b"$2\r\nhi\r\n");
    assert_reply(&conn.send(&["ECHO", ""]), b"$0\r\n\r\n");
    assert_reply(&conn.send(&["QUIT"]), b"+OK\r\n");
    assert!(conn.is_closed(Duration::from_secs(5)), "QUIT should close the connection");
}

#[test]
fn requirepass_and_auth() {
    let server = Server::under_test(&["--requirepass", "s3cret"]);
    let mut conn = server.conn();
    assert_reply(&conn.send(&["GET", "k"]), b"-NOAUTH Authentication required.\r\n");
    assert_reply(&conn.send(&["AUTH", "wrong"]), b"-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    assert_reply(&conn.send(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_reply(&conn.send(&["SET", "k", "v"]), b"+OK\r\n");
    assert_reply(&conn.send(&["AUTH", "default", "s3cret"]), b"+OK\r\n");

    let client = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", server.port())).unwrap();
    let mut con = client.get_connection_with_timeout(Duration::from_secs(5)).unwrap();
    let v: String = con.get("k").unwrap();
    assert_eq!(v, "v");
}

#[test]
fn auth_without_requirepass() {
    let server = Server::under_test(&[]);
    let mut conn = server.conn();
    assert_reply(
        &conn.send(&["AUTH", "x"]),
        b"-ERR AUTH <password> called without any password configured for the default user. \
          Are you sure your configuration is correct?\r\n",
    );
}

#[test]
fn config_get_and_set() {
    let server = Server::under_test(&[]);
    let mut conn = server.conn();
    assert_reply(
        &conn.send(&["CONFIG", "GET", "proto-max-bulk-len"]),
        b"*2\r\n$18\r\nproto-max-bulk-len\r\n$9\r\n536870912\r\n",
    );
    assert_reply(&conn.send(&["CONFIG", "SET", "proto-max-bulk-len", "100mb"]), b"+OK\r\n");
    assert_reply(
        &conn.send(&["CONFIG", "GET", "proto-max-bulk-len"]),
        b"*2\r\n$18\r\nproto-max-bulk-len\r\n$9\r\n104857600\r\n",
    );
    let port = server.port().to_string();
    let expected = format!("*2\r\n$4\r\nport\r\n${}\r\n{port}\r\n", port.len());
    assert_reply(&conn.send(&["config", "get", "port"]), expected.as_bytes());
    assert_reply(
        &conn.send(&["CONFIG", "SET", "no-such-option", "1"]),
        b"-ERR Unknown option or number of arguments for CONFIG SET - 'no-such-option'\r\n",
    );
    assert_reply(&conn.send(&["CONFIG", "GET", "no-such-*"]), b"*0\r\n");
    let Reply::Array(Some(items)) = conn.call(&["CONFIG", "GET", "proto*"]) else { panic!("not an array") };
    let names: HashSet<Reply> = items.chunks(2).map(|pair| pair[0].clone()).collect();
    assert!(names.contains(&Reply::Bulk(Some(b"proto-max-bulk-len".to_vec()))), "{names:?}");
    assert!(!names.contains(&Reply::Bulk(Some(b"port".to_vec()))), "{names:?}");
}

#[test]
fn config_file_is_read() {
    let dir = std::env::temp_dir().join(format!("ferrokv-tests-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.conf");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "# a comment\n\nrequirepass \"from file\"\nproto-max-bulk-len 2mb").unwrap();
    drop(file);
    let server = Server::under_test(&[path.to_str().unwrap()]);
    let mut conn = server.conn();
    assert_reply(&conn.send(&["PING"]), b"-NOAUTH Authentication required.\r\n");
    assert_reply(&conn.send(&["AUTH", "from file"]), b"+OK\r\n");
    assert_reply(
        &conn.send(&["CONFIG", "GET", "proto-max-bulk-len"]),
        b"*2\r\n$18\r\nproto-max-bulk-len\r\n$7\r\n2097152\r\n",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_option_exits_nonzero_naming_it() {
    let (status, output) = Server::run_to_exit(target_kind(), &["--no-such-option", "1"], Duration::from_secs(10));
    let status = status.expect("the server should exit by itself on a bad option");
    assert!(!status.success(), "exit status {status} should be non-zero; output:\n{output}");
    assert!(output.contains("no-such-option"), "the error should name the option; output:\n{output}");
}

#[test]
fn bad_config_value_exits_nonzero() {
    let (status, output) =
        Server::run_to_exit(target_kind(), &["--proto-max-bulk-len", "lots"], Duration::from_secs(10));
    let status = status.expect("the server should exit by itself on a bad value");
    assert!(!status.success(), "exit status {status} should be non-zero; output:\n{output}");
    assert!(output.contains("proto-max-bulk-len"), "the error should name the option; output:\n{output}");
}

#[test]
fn shutdown_command_exits() {
    let mut server = Server::under_test(&[]);
    let mut conn = server.conn();
    conn.write_raw(b"*1\r\n$8\r\nSHUTDOWN\r\n").unwrap();
    let (bytes, closed) = conn.read_until_closed(Duration::from_secs(10));
    assert!(closed, "SHUTDOWN should close the connection; got {}", show(&bytes));
    assert!(bytes.is_empty(), "SHUTDOWN should not reply when it succeeds; got {}", show(&bytes));
    let status = server.wait_exit(Duration::from_secs(10)).expect("the server should exit after SHUTDOWN");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sigterm_exits_cleanly() {
    let mut server = Server::under_test(&[]);
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10)).expect("the server should exit on SIGTERM");
    assert!(status.success(), "exit status {status}");
}

/// 1000 keys: with two shard threads they land on both.
fn many_keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user:{i}:{}", i * 7919 % 1000)).collect()
}

#[test]
fn two_threads_mset_mget_1000_keys() {
    let server = Server::under_test(&["--server-threads", "2"]);
    let mut con = client(&server);
    let keys = many_keys(1000);
    let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), format!("v-{k}"))).collect();
    let _: () = con.mset(&pairs).unwrap();
    let values: Vec<Option<String>> = con.mget(&keys).unwrap();
    for (key, value) in keys.iter().zip(&values) {
        assert_eq!(value.as_deref(), Some(format!("v-{key}").as_str()), "key {key}");
    }
    let size: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 1000);
    let deleted: usize = con.del(&keys).unwrap();
    assert_eq!(deleted, 1000);
    let exists: usize = con.exists(&keys).unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn two_threads_mset_is_atomic_for_concurrent_readers() {
    let server = Server::under_test(&["--server-threads", "2"]);
    let keys = many_keys(64);
    let done = Arc::new(AtomicBool::new(false));
    let mut writer = client(&server);
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (url, keys, done) = (server.url(), keys.clone(), done.clone());
            std::thread::spawn(move || {
                let client = redis::Client::open(url).unwrap();
                let mut con = client.get_connection_with_timeout(Duration::from_secs(5)).unwrap();
                let mut reads = 0;
                while !done.load(Ordering::Relaxed) || reads == 0 {
                    let values: Vec<Option<String>> = con.mget(&keys).unwrap();
                    let distinct: HashSet<&Option<String>> = values.iter().collect();
                    assert!(distinct.len() == 1, "an MGET saw a partly applied MSET: {distinct:?}");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for round in 0..300 {
        let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), round.to_string())).collect();
        let _: () = writer.mset(&pairs).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        let reads = reader.join().expect("reader saw a torn MSET");
        assert!(reads > 0);
    }
}

#[test]
fn many_clients_increment_one_counter_per_shard() {
    let server = Server::under_test(&["--server-threads", "2"]);
    let counters = many_keys(4);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (url, counters) = (server.url(), counters.clone());
            std::thread::spawn(move || {
                let client = redis::Client::open(url).unwrap();
                let mut con = client.get_connection_with_timeout(Duration::from_secs(5)).unwrap();
                for i in 0..200 {
                    let _: i64 = con.incr(&counters[i % counters.len()], 1).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker failed");
    }
    let mut con = client(&server);
    let values: Vec<i64> = con.mget(&counters).unwrap();
    assert_eq!(values, vec![400; 4]);
}

fn scan_all(con: &mut redis::Connection, extra: &[&str]) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    for _ in 0..100_000 {
        let (next, batch): (String, Vec<String>) = redis::cmd("SCAN").arg(&cursor).arg(extra).query(con).expect("SCAN");
        seen.extend(batch);
        if next == "0" {
            return seen;
        }
        cursor = next;
    }
    panic!("SCAN did not finish");
}

fn scan_returns_every_key(threads: &str) {
    let server = Server::under_test(&["--server-threads", threads]);
    let mut con = client(&server);
    let keys = many_keys(3000);
    for chunk in keys.chunks(500) {
        let pairs: Vec<(&String, &str)> = chunk.iter().map(|k| (k, "x")).collect();
        let _: () = con.mset(&pairs).unwrap();
    }
    let seen = scan_all(&mut con, &["COUNT", "100"]);
    let seen_set: HashSet<&String> = seen.iter().collect();
    let expected: HashSet<&String> = keys.iter().collect();
    assert_eq!(seen_set.len(), expected.len(), "SCAN returned {} distinct keys of {}", seen_set.len(), keys.len());
    assert!(seen_set == expected, "SCAN returned other keys than were written");
    let matched: HashSet<String> = scan_all(&mut con, &["MATCH", "user:1?:*"]).into_iter().collect();
    let expected: HashSet<String> =
        keys.iter().filter(|k| k.len() > 7 && k[5..].starts_with('1') && &k[7..8] == ":").cloned().collect();
    assert_eq!(matched, expected);
}

#[test]
fn scan_full_iteration_returns_every_key() {
    scan_returns_every_key("1");
}

#[test]
fn scan_full_iteration_returns_every_key_two_threads() {
    scan_returns_every_key("2");
}

#[test]
fn resp3_hello() {
    let server = Server::under_test(&[]);
    let mut conn = server.conn();
    let Reply::Map(fields) = conn.call(&["HELLO", "3"]) else { panic!("HELLO 3 should answer a map") };
    let proto = fields.iter().find(|(k, _)| k == &Reply::Bulk(Some(b"proto".to_vec()))).map(|(_, v)| v.clone());
    assert_eq!(proto, Some(Reply::Int(3)));
    assert_reply(&conn.send(&["GET", "missing"]), b"_\r\n");
    assert_reply(&conn.send(&["HELLO", "4"]), b"-NOPROTO unsupported protocol version\r\n");
    let Reply::Array(Some(_)) = conn.call(&["HELLO", "2"]) else { panic!("HELLO 2 should answer a RESP2 array") };
    assert_reply(&conn.send(&["GET", "missing"]), b"$-1\r\n");
}

#[test]
fn connections_see_each_others_writes() {
    let server = Server::under_test(&[]);
    let mut a = server.conn();
    let mut b = server.conn();
    assert_reply(&a.send(&["SET", "shared", "1"]), b"+OK\r\n");
    assert_reply(&b.send(&["GET", "shared"]), b"$1\r\n1\r\n");
    assert_reply(&b.send(&["INCR", "shared"]), b":2\r\n");
    assert_reply(&a.send(&["GET", "shared"]), b"$1\r\n2\r\n");
}

/// One port, one server: a second process started on a port a server listens on
/// exits 1 with Redis's words, instead of joining the first one's SO_REUSEPORT group
/// (then six `INCR c` answered 1 1 2 2 3 3: two datasets behind one address).
#[test]
fn a_second_server_on_a_taken_port_refuses_to_start() {
    let first = Server::under_test(&["--server-threads", "2"]);
    let port = first.port().to_string();
    let (status, output) = Server::run_to_exit(
        target_kind(),
        &["--port", &port, "--server-threads", "2"],
        std::time::Duration::from_secs(20),
    );
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{output}");
    assert!(output.contains("Address already in use"), "{output}");
    assert!(output.contains(&format!("Failed listening on port {port} (TCP), aborting.")), "{output}");
    // The first one still serves, alone.
    let mut c = first.conn();
    for n in 1..=6 {
        assert_eq!(c.send(&["INCR", "c"]), format!(":{n}\r\n").into_bytes());
    }
}

/// `pidfile`: written with the server's pid once it listens, removed at a clean exit.
#[test]
fn pidfile_holds_the_pid_while_the_server_runs() {
    let path = std::env::temp_dir().join(format!("ferrokv-pidfile-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut server = Server::under_test(&["--pidfile", path.to_str().unwrap()]);
    // Redis writes the file just after it starts listening: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let text = std::fs::read_to_string(&path).expect("the pidfile exists");
    assert_eq!(text.trim(), server.pid().to_string());
    server.stop();
    assert!(!path.exists(), "the pidfile is removed at exit");
}

/// A client that shuts its side after sending (`printf 'PING\r\n' | nc -N`) still gets
/// the replies to what it sent, then the close — also for keys on another shard.
#[test]
fn a_half_closed_client_gets_its_replies() {
    use std::io::{Read, Write};
    let server = Server::under_test(&["--server-threads", "2"]);
    let mut keys = String::new();
    for i in 0..20 {
        keys.push_str(&format!("*3\r\n$3\r\nSET\r\n$4\r\nk:{:02}\r\n$1\r\n{}\r\n", i, i % 10));
    }
    for i in 0..20 {
        keys.push_str(&format!("*2\r\n$3\r\nGET\r\n$4\r\nk:{i:02}\r\n"));
    }
    for request in ["PING\r\n".to_string(), keys] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("the server closes after replying");
        let expected = if request.starts_with("PING") {
            "+PONG\r\n".to_string()
        } else {
            let mut e = "+OK\r\n".repeat(20);
            for i in 0..20 {
                e.push_str(&format!("$1\r\n{}\r\n", i % 10));
            }
            e
        };
        assert_eq!(String::from_utf8_lossy(&got), expected);
    }
}

/// `--version`/`-v` print a redis-server-like line with `v=<Redis version>`; `--help`/`-h`
/// print the usage on stderr and exit 1; `-` reads directives from stdin — as
/// redis-server does.
#[test]
fn version_help_and_config_from_stdin() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let bin = target_kind().binary();
    for flag in ["--version", "-v"] {
        let out = Command::new(&bin).arg(flag).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{flag}");
        assert!(text.contains(" v=7.0.15 ") && text.contains("bits=64"), "{flag}: {text}");
    }
    for flag in ["--help", "-h"] {
        let out = Command::new(&bin).arg(flag).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}");
        assert!(text.starts_with("Usage: ./") && text.contains("--test-memory <megabytes>"), "{flag}: {text}");
    }
    // Directives from stdin, then the command line's (which win).
    let dir = std::env::temp_dir().join(format!("ferrokv-stdin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(&bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir", dir.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"save \"\"\nmaxclients 77\nport 1\n").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut conn = loop {
        if let Ok(c) = ferrokv_tests::Conn::connect(port) {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "the server did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let got = conn.send(&["CONFIG", "GET", "maxclients"]);
    let _ = conn.try_send(&["SHUTDOWN", "NOSAVE"]);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got, b"*2\r\n$10\r\nmaxclients\r\n$2\r\n77\r\n".to_vec());
}
