//! Client-side caching (CLIENT TRACKING) against redis-server 7.0.15: a session of four
//! connections (a tracking client, a writer, a RESP2 client subscribed to
//! `__redis__:invalidate` that others redirect to, a second tracking client) in each
//! protocol, compared frame by frame: invalidation pushes, redirected messages,
//! OPTIN/OPTOUT with CLIENT CACHING, BCAST prefixes and NOLOOP, scripts, transactions,
//! FLUSHALL's null, a broken redirect, every option's error; on one and two shards.
//! Then the INFO and CLIENT LIST fields, `tracking-table-max-keys`, and expiry.
//!
//! Reads are synchronised with PING, never with sleeps: after each step every
//! connection sends PING and the test reads what it received up to PING's reply.

use std::time::Duration;

use ferrokv_tests::conn::Step;
use ferrokv_tests::resp::{encode_command, show};
use ferrokv_tests::{Conn, Server};

/// In the replies that carry a client id (GETREDIR, TRACKINGINFO, the
/// `tracking-redir-broken` push), each `:<id>\r\n` of a client becomes its name, so
/// both servers' ids compare.
fn mask_ids(frame: &[u8], ids: &[u64], line: &str) -> String {
    let mut s = show(frame);
    let carries = line.contains("GETREDIR") || line.contains("TRACKINGINFO") || s.contains("tracking-redir-broken");
    if !carries {
        return s;
    }
    for (i, id) in ids.iter().enumerate() {
        s = s.replace(&format!(":{id}\\r\\n"), &format!(":ID{i}\\r\\n"));
    }
    s
}

/// Words of a step; `$N` is connection N's client id.
fn words(line: &str, ids: &[u64]) -> Vec<String> {
    line.split(' ')
        .filter(|a| !a.is_empty())
        .map(|a| match a.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => ids[n].to_string(),
            None => a.to_string(),
        })
        .collect()
}

/// Frames each connection received at each step: `counts[step][conn]`.
type Counts = Vec<Vec<usize>>;

/// Reads `n` frames (waiting for them), then PINGs and reads any more up to PONG.
fn frames(c: &mut Conn, n: Option<usize>, at: &str) -> Vec<Vec<u8>> {
    let mut got: Vec<Vec<u8>> = Vec::new();
    for _ in 0..n.unwrap_or(0) {
        match c.read_reply() {
            Ok(f) => got.push(f),
            Err(e) => panic!("{at}: {e}; got {:?}", got.iter().map(|f| show(f)).collect::<Vec<_>>()),
        }
    }
    c.write_raw(&encode_command(&["PING"])).expect("write");
    got.extend(c.until_pong());
    got
}

/// Runs the steps; returns per step what each connection received, and how many frames.
/// A PING after each step marks the end of what a connection got. With `expect`
/// (ferrokv), each other connection first waits for as many frames as the reference
/// got, since an invalidation may take more than one hop between shards (a redirect, a
/// flush's null) and arrive after a PING sent at once.
fn session(server: &Server, protos: &[u8], steps: &[(usize, &str)], expect: Option<&Counts>) -> (Vec<String>, Counts) {
    let mut cs: Vec<Option<Conn>> = protos.iter().map(|_| Some(server.conn())).collect();
    let mut ids = Vec::new();
    for (c, &p) in cs.iter_mut().flatten().zip(protos) {
        let id = c.send(&["CLIENT", "ID"]);
        ids.push(String::from_utf8_lossy(&id[1..id.len() - 2]).parse::<u64>().expect("client id"));
        if p == 3 {
            let hello = c.send(&["HELLO", "3"]);
            assert_eq!(hello[0], b'%', "{}", show(&hello));
        }
    }
    let mut in_multi = vec![false; cs.len()];
    let mut transcript = Vec::new();
    let mut counts = Vec::new();
    for (step, &(i, line)) in steps.iter().enumerate() {
        let want = |j: usize| expect.map(|e| e[step][j]);
        let mut count = vec![0; cs.len()];
        let args = words(line, &ids);
        let c = cs[i].as_mut().expect("connection still open");
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let step = c.send_step(&words, &mut in_multi[i]);
        let (queued, quit) = (step == Step::Queued, step == Step::Quit);
        let mut out = format!("[{i}] {line}:");
        // The connection's own frames end at its pipelined PING on both servers (Redis
        // sends BCAST messages before sleeping, after that PING's reply).
        let got = if queued || quit { vec![c.read_reply().expect("reply")] } else { c.until_pong() };
        count[i] = got.len();
        for f in got {
            out.push_str(&format!(" {}", mask_ids(&f, &ids, line)));
        }
        if quit {
            assert!(c.is_closed(Duration::from_secs(5)), "QUIT closes the connection");
            cs[i] = None;
        }
        for (j, other) in cs.iter_mut().enumerate() {
            let Some(other) = other else { continue };
            if j == i || in_multi[j] {
                continue;
            }
            let got = frames(other, want(j), &format!("[{j}] after [{i}] {line}"));
            count[j] = got.len();
            for f in got {
                out.push_str(&format!("\n    [{j}] got {}", mask_ids(&f, &ids, line)));
            }
        }
        transcript.push(out);
        counts.push(count);
    }
    (transcript, counts)
}

/// Keys of one command that changes several keys share a hash tag, so on two shards
/// their invalidations leave from one shard in Redis's order.
const STEPS: &[(usize, &str)] = &[
    (2, "SUBSCRIBE __redis__:invalidate"),
    (0, "CLIENT TRACKINGINFO"),
    (0, "CLIENT GETREDIR"),
    (0, "CLIENT TRACKING on"),
    (0, "CLIENT TRACKINGINFO"),
    (0, "CLIENT GETREDIR"),
    (1, "SET k1 v"),
    (0, "GET k1"),
    (1, "SET k1 w"),
    (1, "SET k1 x"),
    (0, "MGET {t}a {t}b {t}c"),
    (1, "MSET {t}a 1 {t}b 2 {t}d 3"),
    (0, "GET k1"),
    (0, "SET k1 own"),
    (0, "HSET h f 1"),
    (0, "HGET h f"),
    (0, "HDEL h f"),
    (0, "STRLEN k1"),
    (1, "DEL k1"),
    (0, "EXISTS e"),
    (1, "SET e v"),
    (0, "TTL e"),
    (1, "PEXPIREAT e 1"),
    (0, "LRANGE {l}1 0 -1"),
    (1, "RPUSH {l}2 a"),
    (1, "LMOVE {l}2 {l}1 LEFT LEFT"),
    (0, "MULTI"),
    (0, "GET {m}6"),
    (0, "SET {m}6 1"),
    (0, "GET {m}7"),
    (0, "EXEC"),
    (1, "SET {m}7 1"),
    (0, "EVAL redis.call('get','{s}x') 1 {s}a"),
    (1, "SET {s}x 1"),
    (1, "SET {s}a 1"),
    (0, "EVAL redis.call('set','{s}y','1') 1 {s}b"),
    (1, "SET {s}b 1"),
    (0, "EVAL_RO redis.call('get','{s}c') 1 {s}d"),
    (1, "SET {s}d 1"),
    (0, "EVAL_RO redis.call('ping') 1 {s}e"),
    (1, "SET {s}e 1"),
    (0, "CLIENT TRACKING on OPTIN"),
    (0, "GET k2"),
    (1, "SET k2 1"),
    (0, "CLIENT CACHING yes"),
    (0, "CLIENT TRACKINGINFO"),
    (0, "GET k2"),
    (0, "CLIENT TRACKINGINFO"),
    (1, "SET k2 2"),
    (0, "CLIENT CACHING yes"),
    (0, "MULTI"),
    (0, "GET {o}1"),
    (0, "GET {o}2"),
    (0, "EXEC"),
    (1, "MSET {o}1 1 {o}2 2"),
    (0, "CLIENT CACHING no"),
    (0, "CLIENT TRACKING on OPTOUT"),
    (0, "CLIENT TRACKING off"),
    (0, "CLIENT CACHING yes"),
    (0, "CLIENT TRACKING on OPTOUT"),
    (0, "GET k3"),
    (1, "SET k3 1"),
    (0, "CLIENT CACHING no"),
    (0, "CLIENT TRACKINGINFO"),
    (0, "GET k3"),
    (1, "SET k3 2"),
    (0, "CLIENT TRACKING off"),
    (0, "CLIENT TRACKING on REDIRECT $2"),
    (0, "CLIENT GETREDIR"),
    (0, "CLIENT TRACKINGINFO"),
    (0, "GET k4"),
    (1, "SET k4 1"),
    (0, "CLIENT TRACKING off"),
    (0, "CLIENT TRACKING on BCAST PREFIX p: PREFIX q:"),
    (0, "CLIENT TRACKINGINFO"),
    (1, "SET p:1 x"),
    (1, "SET q:1 x"),
    (1, "SET r:1 x"),
    (1, "MSET p:{a}2 1 p:{a}1 2 q:{a}1 3 r:{a}1 4"),
    (0, "SET p:mine 1"),
    (0, "CLIENT TRACKING on BCAST PREFIX p"),
    (0, "CLIENT TRACKING on BCAST PREFIX s: PREFIX s:x"),
    (0, "CLIENT TRACKING on BCAST PREFIX s: NOLOOP"),
    (0, "CLIENT TRACKINGINFO"),
    (0, "SET s:1 x"),
    (1, "SET s:1 y"),
    (0, "MSET s:{b}1 1 s:{b}2 2"),
    (0, "CLIENT TRACKING on"),
    (0, "CLIENT TRACKING on BCAST OPTIN"),
    (0, "CLIENT TRACKING off"),
    (0, "CLIENT TRACKING on PREFIX x:"),
    (0, "CLIENT TRACKING on OPTIN OPTOUT"),
    (0, "CLIENT TRACKING on REDIRECT 999999"),
    (0, "CLIENT TRACKING on REDIRECT abc"),
    (0, "CLIENT TRACKING on REDIRECT $2 REDIRECT $2"),
    (0, "CLIENT TRACKING on FOO"),
    (0, "CLIENT TRACKING maybe"),
    (0, "CLIENT TRACKING on PREFIX"),
    (0, "CLIENT CACHING maybe"),
    (0, "CLIENT TRACKING on"),
    (0, "CLIENT CACHING maybe"),
    (0, "CLIENT CACHING yes"),
    (3, "CLIENT TRACKING on REDIRECT $2"),
    (3, "GET k5"),
    (0, "GET k5"),
    (1, "SET k5 1"),
    (0, "GET k9"),
    (1, "FLUSHALL"),
    (0, "GET z"),
    (0, "RESET"),
    (1, "SET z 1"),
    (3, "GET k8"),
    (2, "QUIT"),
    (1, "SET k8 1"),
    (3, "CLIENT TRACKINGINFO"),
    (3, "CLIENT GETREDIR"),
];

#[test]
fn tracking_session_matches_redis() {
    let redis = Server::redis(&[]);
    for threads in ["1", "2"] {
        let ferrokv = Server::ferrokv(&["--server-threads", threads]);
        for protos in [[3u8, 2, 2, 3], [2, 3, 2, 2]] {
            let (want, counts) = session(&redis, &protos, STEPS, None);
            let (got, _) = session(&ferrokv, &protos, STEPS, Some(&counts));
            for (w, g) in want.iter().zip(&got) {
                assert_eq!(g, w, "\n(protocols {protos:?}, {threads} threads)\nferrokv:\n{g}\nredis:\n{w}");
            }
        }
    }
}

fn info_field(c: &mut Conn, field: &str) -> String {
    let info = String::from_utf8_lossy(&c.send(&["INFO"])).to_string();
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("INFO has no {field}"))
}

fn client_field(c: &mut Conn, field: &str) -> String {
    let info = String::from_utf8_lossy(&c.send(&["CLIENT", "INFO"])).to_string();
    let prefix = format!("{field}=");
    info.split_whitespace()
        .find_map(|w| w.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("CLIENT INFO has no {field}"))
}

/// INFO's tracking fields and CLIENT INFO's flags and redir, as the TCL unit's
/// "Tracking info is correct" checks them, on both servers.
#[test]
fn info_and_client_list_fields() {
    for server in [Server::redis(&[]), Server::ferrokv(&["--server-threads", "2"])] {
        let kind = server.kind();
        let mut a = server.conn();
        let mut b = server.conn();
        let mut w = server.conn();
        let b_id = String::from_utf8_lossy(&b.send(&["CLIENT", "ID"])).trim().trim_start_matches(':').to_string();
        assert_eq!(client_field(&mut a, "flags"), "N");
        assert_eq!(client_field(&mut a, "redir"), "-1");
        assert_eq!(a.send(&["CLIENT", "TRACKING", "on", "REDIRECT", &b_id]), b"+OK\r\n");
        for k in ["key1", "key2"] {
            w.send(&["SET", k, "1"]);
            a.send(&["GET", k]);
        }
        assert_eq!(b.send(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "prefix:"]), b"+OK\r\n");
        w.send(&["SET", "prefix:key1", "1"]);
        assert_eq!(info_field(&mut w, "tracking_total_items"), "2", "{kind:?}");
        assert_eq!(info_field(&mut w, "tracking_total_keys"), "2", "{kind:?}");
        assert_eq!(info_field(&mut w, "tracking_total_prefixes"), "1", "{kind:?}");
        assert_eq!(info_field(&mut w, "tracking_clients"), "2", "{kind:?}");
        assert_eq!(client_field(&mut a, "flags"), "t", "{kind:?}");
        assert_eq!(client_field(&mut a, "redir"), b_id, "{kind:?}");
        assert_eq!(client_field(&mut b, "flags"), "tB", "{kind:?}");
        drop(b);
        // The redirect target went away: the next invalidation finds it gone.
        let mut broken = false;
        for _ in 0..500 {
            w.send(&["SET", "key1", "2"]);
            a.send(&["GET", "key1"]);
            if client_field(&mut a, "flags") == "tR" {
                broken = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(broken, "{kind:?}: flags tR after the redirect target closed");
        w.send(&["FLUSHALL"]);
        assert_eq!(info_field(&mut w, "tracking_total_keys"), "0", "{kind:?}");
        assert_eq!(a.send(&["CLIENT", "TRACKING", "off"]), b"+OK\r\n");
        assert_eq!(info_field(&mut w, "tracking_clients"), "0", "{kind:?}");
        assert_eq!(info_field(&mut w, "tracking_total_prefixes"), "0", "{kind:?}");
    }
}

/// `tracking-table-max-keys`: past the limit, keys are forgotten and their readers told
/// (the TCL unit's "evacuate enough keys" case: 250 keys down to 1).
#[test]
fn table_limit_forgets_keys_and_tells_their_readers() {
    for server in [Server::redis(&[]), Server::ferrokv(&["--server-threads", "2"])] {
        let kind = server.kind();
        let mut target = server.conn();
        let id = String::from_utf8_lossy(&target.send(&["CLIENT", "ID"])).trim().trim_start_matches(':').to_string();
        target.send(&["SUBSCRIBE", "__redis__:invalidate"]);
        let mut r = server.conn();
        let mut w = server.conn();
        assert_eq!(r.send(&["CLIENT", "TRACKING", "on", "REDIRECT", &id]), b"+OK\r\n");
        for i in 0..250 {
            w.send(&["SET", &format!("key{i}"), "1"]);
            r.send(&["GET", &format!("key{i}")]);
        }
        assert_eq!(info_field(&mut w, "tracking_total_keys"), "250", "{kind:?}");
        assert_eq!(w.send(&["CONFIG", "SET", "tracking-table-max-keys", "1"]), b"+OK\r\n");
        target.set_timeout(Duration::from_secs(10));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..249 {
            let f = target.read_reply().expect("an invalidation per forgotten key");
            assert!(f.starts_with(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n"), "{}", show(&f));
            assert!(seen.insert(f), "{kind:?}: each key once");
        }
        assert_eq!(info_field(&mut w, "tracking_total_keys"), "1", "{kind:?}");
        target.write_raw(&encode_command(&["PING"])).expect("write");
        assert!(target.until_pong().is_empty(), "{kind:?}: no invalidation beyond the limit");
        assert_eq!(
            w.send(&["CONFIG", "GET", "tracking-table-max-keys"]),
            b"*2\r\n$23\r\ntracking-table-max-keys\r\n$1\r\n1\r\n"
        );
    }
}

/// A key that expires invalidates like a change; in BCAST with NOLOOP, the client hears
/// of its own key's expiry (no client changed it) but not of its own writes.
#[test]
fn expired_keys_invalidate() {
    for server in [Server::redis(&[]), Server::ferrokv(&["--server-threads", "2"])] {
        let kind = server.kind();
        let mut r = server.conn();
        r.send(&["HELLO", "3"]);
        assert_eq!(r.send(&["CLIENT", "TRACKING", "on", "BCAST", "NOLOOP"]), b"+OK\r\n");
        r.send(&["SET", "mykey", "v", "PX", "1"]);
        r.set_timeout(Duration::from_secs(10));
        let f = r.read_reply().expect("expiry invalidation");
        assert_eq!(f, b">2\r\n$10\r\ninvalidate\r\n*1\r\n$5\r\nmykey\r\n", "{kind:?}: {}", show(&f));
    }
}
