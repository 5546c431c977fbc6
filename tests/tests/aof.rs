//! The append-only file: Redis 7's multi-part layout, restarts (also after kill -9)
//! that keep every write, BGREWRITEAOF without fork, truncated files, a Redis 6
//! single-file AOF, and interop with redis-server 7.0.15 both ways (each loads the
//! other's appendonlydir to the same contents).

use ferrokv_tests::resp::Reply;
use ferrokv_tests::{Conn, Kind, Server};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn ok() -> Reply {
    Reply::Simple(b"OK".to_vec())
}

fn call(c: &mut Conn, args: &[&str]) -> Reply {
    c.call(args)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrokv-aof-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes of every kind: plain, counters, collections, TTLs, a transaction, keys on
/// every shard (MSET across them), deletions.
fn workload(c: &mut Conn, round: usize) {
    for i in 0..200 {
        assert_eq!(call(c, &["SET", &format!("k{i}"), &format!("v{round}-{i}")]), ok());
    }
    for i in 0..50 {
        call(c, &["INCRBY", &format!("n{}", i % 7), &i.to_string()]);
    }
    let pairs: Vec<String> = (0..40).flat_map(|i| [format!("m{i}"), format!("{round}")]).collect();
    let mut mset = vec!["MSET"];
    mset.extend(pairs.iter().map(String::as_str));
    assert_eq!(call(c, &mset), ok());
    call(c, &["RPUSH", "list", &format!("r{round}"), "x", "y"]);
    call(c, &["LPOP", "list"]);
    call(c, &["HSET", "hash", &format!("f{round}"), "1", "g", &round.to_string()]);
    call(c, &["HINCRBYFLOAT", "hash", "g", "0.5"]);
    call(c, &["SADD", "set", &round.to_string(), "a"]);
    call(c, &["SPOP", "set"]);
    call(c, &["ZADD", "zset", &round.to_string(), &format!("z{round}")]);
    call(c, &["ZINCRBY", "zset", "1.5", "z0"]);
    call(c, &["SET", "ttl", "x", "EX", "1000"]);
    call(c, &["SET", "short", "x", "PX", "1"]);
    call(c, &["DEL", &format!("k{}", round * 3)]);
    assert_eq!(call(c, &["MULTI"]), ok());
    call(c, &["INCR", "tx"]);
    call(c, &["SET", "tx2", &round.to_string()]);
    call(c, &["EXPIRE", "tx2", "5000"]);
    assert!(matches!(call(c, &["EXEC"]), Reply::Array(Some(_))));
}

/// Every key with type, contents and whether it has a TTL.
fn contents(c: &mut Conn) -> Vec<(String, Reply, bool)> {
    std::thread::sleep(Duration::from_millis(5));
    let mut keys: Vec<String> = match call(c, &["KEYS", "*"]) {
        Reply::Array(Some(k)) => k
            .into_iter()
            .map(|k| match k {
                Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    };
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let t = call(c, &["TYPE", &k]);
            let mut data = match &t {
                Reply::Simple(s) if s == b"string" => call(c, &["GET", &k]),
                Reply::Simple(s) if s == b"list" => call(c, &["LRANGE", &k, "0", "-1"]),
                Reply::Simple(s) if s == b"zset" => call(c, &["ZRANGE", &k, "0", "-1", "WITHSCORES"]),
                Reply::Simple(s) if s == b"hash" => call(c, &["HGETALL", &k]),
                Reply::Simple(s) if s == b"set" => call(c, &["SMEMBERS", &k]),
                other => panic!("{other:?}"),
            };
            if let Reply::Array(Some(items)) = &mut data {
                if matches!(&t, Reply::Simple(s) if s == b"set" || s == b"hash") {
                    items.sort();
                }
            }
            let ttl = !matches!(call(c, &["PTTL", &k]), Reply::Int(-1));
            (k, data, ttl)
        })
        .collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    names.sort();
    names
}

fn info(c: &mut Conn, field: &str) -> String {
    let text = match call(c, &["INFO", "persistence"]) {
        Reply::Bulk(Some(b)) | Reply::Verbatim(b) => String::from_utf8(b).unwrap(),
        other => panic!("{other:?}"),
    };
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.to_string())).unwrap_or_default()
}

#[test]
fn writes_survive_kill_9_and_the_layout_is_redis_7s() {
    for threads in ["1", "2"] {
        let dir = scratch(&format!("kill-{threads}"));
        let d = dir.to_str().unwrap();
        let mut f = Server::ferrokv(&["--dir", d, "--appendonly", "yes", "--server-threads", threads]);
        let mut c = f.conn();
        assert_eq!(info(&mut c, "aof_enabled"), "1");
        workload(&mut c, 1);
        let want = contents(&mut c);
        // everysec: the records are written at once and synced within a second; a
        // kill -9 leaves the page cache, so nothing acknowledged is lost.
        std::thread::sleep(Duration::from_millis(100));
        f.restart();
        let mut c = f.conn();
        assert_eq!(contents(&mut c), want, "after kill -9 ({threads} shards)");
        let aofdir = dir.join("appendonlydir");
        assert_eq!(
            files(&aofdir),
            ["appendonly.aof.1.base.rdb", "appendonly.aof.1.incr.aof", "appendonly.aof.manifest"],
            "{threads} shards"
        );
        // The files load into redis-server 7.0.15 to the same contents.
        drop(c);
        f.stop();
        let copy = scratch(&format!("kill-{threads}-redis"));
        std::fs::create_dir_all(copy.join("appendonlydir")).unwrap();
        for name in files(&aofdir) {
            std::fs::copy(aofdir.join(&name), copy.join("appendonlydir").join(&name)).unwrap();
        }
        let redis = Server::redis(&["--dir", copy.to_str().unwrap(), "--appendonly", "yes"]);
        assert_eq!(contents(&mut redis.conn()), want, "redis-server loading ferrokv's AOF ({threads} shards)");
        drop(redis);
        let _ = std::fs::remove_dir_all(&copy);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn redis_aof_loads_into_ferrokv() {
    let dir = scratch("from-redis");
    let d = dir.to_str().unwrap();
    let redis = Server::redis(&["--dir", d, "--appendonly", "yes"]);
    let mut r = redis.conn();
    workload(&mut r, 1);
    assert_eq!(
        call(&mut r, &["BGREWRITEAOF"]),
        Reply::Simple(b"Background append only file rewriting started".to_vec())
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while info(&mut r, "aof_rewrite_in_progress") != "0" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    workload(&mut r, 2);
    let want = contents(&mut r);
    drop(r);
    drop(redis);
    for threads in ["1", "3"] {
        let f = Server::ferrokv(&["--dir", d, "--appendonly", "yes", "--server-threads", threads]);
        assert_eq!(contents(&mut f.conn()), want, "ferrokv ({threads} shards) loading redis's AOF");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bgrewriteaof_without_fork_keeps_everything_and_compacts() {
    for threads in ["1", "2"] {
        let dir = scratch(&format!("rewrite-{threads}"));
        let d = dir.to_str().unwrap();
        let mut f = Server::ferrokv(&["--dir", d, "--appendonly", "yes", "--server-threads", threads]);
        let mut c = f.conn();
        for round in 0..5 {
            workload(&mut c, round);
        }
        let before = std::fs::metadata(dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap().len();
        assert_eq!(
            call(&mut c, &["BGREWRITEAOF"]),
            Reply::Simple(b"Background append only file rewriting started".to_vec())
        );
        // Writes while the rewrite runs land in the new incremental file.
        workload(&mut c, 10);
        let deadline = Instant::now() + Duration::from_secs(20);
        while info(&mut c, "aof_rewrite_in_progress") != "0" {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(info(&mut c, "aof_last_bgrewrite_status"), "ok");
        workload(&mut c, 11);
        let want = contents(&mut c);
        std::thread::sleep(Duration::from_millis(100));
        let aofdir = dir.join("appendonlydir");
        let names = files(&aofdir);
        assert_eq!(
            names,
            ["appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof", "appendonly.aof.manifest"],
            "{threads} shards"
        );
        let after = std::fs::metadata(aofdir.join("appendonly.aof.2.incr.aof")).unwrap().len();
        assert!(after < before, "the new incremental file holds only what came after the rewrite");
        f.restart();
        assert_eq!(contents(&mut f.conn()), want, "after a rewrite and kill -9 ({threads} shards)");
        drop(f);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn truncated_files_load_or_stop_as_configured() {
    let dir = scratch("truncated");
    let d = dir.to_str().unwrap();
    {
        let f = Server::ferrokv(&["--dir", d, "--appendonly", "yes"]);
        let mut c = f.conn();
        assert_eq!(call(&mut c, &["SET", "a", "1"]), ok());
        assert_eq!(call(&mut c, &["SET", "b", "2"]), ok());
    }
    let incr = dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    let mut bytes = std::fs::read(&incr).unwrap();
    bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nc\r\n$1"); // a crash mid-write
    std::fs::write(&incr, &bytes).unwrap();
    let (status, output) = Server::run_to_exit(
        Kind::Ferrokv,
        &["--dir", d, "--appendonly", "yes", "--aof-load-truncated", "no"],
        Duration::from_secs(20),
    );
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{output}");
    assert!(output.contains("Unexpected end of file") && output.contains("appendonly.aof.1.incr.aof"), "{output}");
    let f = Server::ferrokv(&["--dir", d, "--appendonly", "yes"]);
    let mut c = f.conn();
    assert_eq!(
        call(&mut c, &["MGET", "a", "b", "c"]),
        Reply::Array(Some(
            vec![Reply::Bulk(Some(b"1".to_vec())), Reply::Bulk(Some(b"2".to_vec())), Reply::Bulk(None),]
        ))
    );
    // The torn command was cut off: new writes append after the last whole one.
    assert_eq!(call(&mut c, &["SET", "c", "3"]), ok());
    drop(c);
    drop(f);
    let f = Server::ferrokv(&["--dir", d, "--appendonly", "yes"]);
    assert_eq!(call(&mut f.conn(), &["GET", "c"]), Reply::Bulk(Some(b"3".to_vec())));
    drop(f);
    // Garbage is not a truncation: start-up stops naming the file and offset.
    std::fs::write(&incr, b"*2\r\n$3\r\nDEL\r\n$1\r\na\r\nGARBAGE").unwrap();
    let (status, output) =
        Server::run_to_exit(Kind::Ferrokv, &["--dir", d, "--appendonly", "yes"], Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{output}");
    assert!(output.contains("Bad file format") && output.contains("offset"), "{output}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_redis_6_single_file_is_loaded_and_moved_into_the_directory() {
    let dir = scratch("redis6");
    let d = dir.to_str().unwrap();
    let mut old = Vec::new();
    for cmd in [&["SELECT", "0"][..], &["SET", "a", "1"], &["RPUSH", "l", "x", "y"], &["INCR", "a"]] {
        let args: Vec<Vec<u8>> = cmd.iter().map(|a| a.as_bytes().to_vec()).collect();
        ferrokv_rdb::aof::write_command(&mut old, &args);
    }
    std::fs::write(dir.join("appendonly.aof"), &old).unwrap();
    let f = Server::ferrokv(&["--dir", d, "--appendonly", "yes"]);
    let mut c = f.conn();
    assert_eq!(call(&mut c, &["GET", "a"]), Reply::Bulk(Some(b"2".to_vec())));
    assert_eq!(call(&mut c, &["LLEN", "l"]), Reply::Int(2));
    assert!(!dir.join("appendonly.aof").exists());
    assert!(dir.join("appendonlydir/appendonly.aof").exists());
    assert_eq!(call(&mut c, &["SET", "b", "1"]), ok());
    drop(c);
    drop(f);
    let f = Server::ferrokv(&["--dir", d, "--appendonly", "yes"]);
    let mut c = f.conn();
    assert_eq!(
        call(&mut c, &["MGET", "a", "b"]),
        Reply::Array(Some(vec![Reply::Bulk(Some(b"2".to_vec())), Reply::Bulk(Some(b"1".to_vec())),]))
    );
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `appendfsync always` under pipelined writers on every shard, killed with -9 at a
/// random moment: after the restart every acknowledged write is there.
#[test]
fn kill_9_under_always_keeps_every_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = scratch("always");
    let d = dir.to_str().unwrap().to_string();
    let mut f =
        Server::ferrokv(&["--dir", &d, "--appendonly", "yes", "--appendfsync", "always", "--server-threads", "2"]);
    let mut rng = ferrokv_tests::Rng::new(99);
    for round in 0..3 {
        let port = f.port();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    // Last acknowledged value per key of this writer.
                    let mut acked = vec![0i64; 16];
                    let Ok(mut c) = Conn::connect(port) else { return acked };
                    c.set_timeout(Duration::from_secs(5));
                    'outer: while !stop.load(Ordering::Relaxed) {
                        let batch: Vec<Vec<String>> =
                            (0..16).map(|k| vec!["INCR".to_string(), format!("w{w}:{round}:{k}")]).collect();
                        let Ok(replies) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.pipeline(&batch)))
                        else {
                            break 'outer;
                        };
                        for (k, r) in replies.iter().enumerate() {
                            let text = String::from_utf8_lossy(r);
                            match text.strip_prefix(':').and_then(|t| t.trim_end().parse::<i64>().ok()) {
                                Some(n) => acked[k] = n,
                                None => break 'outer,
                            }
                        }
                    }
                    acked
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + rng.below(300)));
        f.kill();
        stop.store(true, Ordering::Relaxed);
        let acked: Vec<Vec<i64>> = writers.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(acked.iter().flatten().any(|&n| n > 0), "round {round}: the writers got nothing acknowledged");
        f.restart();
        let mut c = f.conn();
        for (w, keys) in acked.iter().enumerate() {
            for (k, &n) in keys.iter().enumerate() {
                let key = format!("w{w}:{round}:{k}");
                let got = match call(&mut c, &["GET", &key]) {
                    Reply::Bulk(Some(v)) => String::from_utf8(v).unwrap().parse::<i64>().unwrap(),
                    Reply::Bulk(None) => 0,
                    other => panic!("{other:?}"),
                };
                assert!(got >= n, "round {round}: {key} acknowledged {n} but {got} after the restart");
            }
        }
    }
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}

/// CONFIG SET appendonly yes on a running server with data: a base from a snapshot,
/// then every write; after kill -9 the AOF restores all of it. And back off.
#[test]
fn appendonly_switched_on_and_off_at_run_time() {
    let dir = scratch("switch");
    let d = dir.to_str().unwrap();
    let mut f = Server::ferrokv(&["--dir", d, "--server-threads", "2"]);
    let mut c = f.conn();
    workload(&mut c, 1);
    assert_eq!(info(&mut c, "aof_enabled"), "0");
    assert_eq!(call(&mut c, &["CONFIG", "SET", "appendonly", "yes"]), ok());
    workload(&mut c, 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    while info(&mut c, "aof_enabled") != "1" || info(&mut c, "aof_rewrite_in_progress") != "0" {
        assert!(Instant::now() < deadline, "the AOF did not come on");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        files(&dir.join("appendonlydir")),
        ["appendonly.aof.1.base.rdb", "appendonly.aof.1.incr.aof", "appendonly.aof.manifest"]
    );
    workload(&mut c, 3);
    let want = contents(&mut c);
    std::thread::sleep(Duration::from_millis(50));
    drop(c);
    f.kill();
    let f = Server::ferrokv(&["--dir", d, "--appendonly", "yes", "--server-threads", "2"]);
    let mut c = f.conn();
    assert_eq!(contents(&mut c), want, "restored from the AOF turned on at run time");
    assert_eq!(call(&mut c, &["CONFIG", "SET", "appendonly", "no"]), ok());
    let deadline = Instant::now() + Duration::from_secs(10);
    while info(&mut c, "aof_enabled") != "0" {
        assert!(Instant::now() < deadline, "the AOF did not go off");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(call(&mut c, &["SET", "after", "1"]), ok());
    drop(c);
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `aof-timestamp-enabled yes`: `#TS:` annotations in the incremental file, which both
/// ferrokv and redis-server load past.
#[test]
fn timestamp_annotations_are_written_and_loaded() {
    let dir = scratch("timestamps");
    let d = dir.to_str().unwrap();
    let mut f = Server::ferrokv(&["--dir", d, "--appendonly", "yes", "--aof-timestamp-enabled", "yes"]);
    let mut c = f.conn();
    workload(&mut c, 1);
    let want = contents(&mut c);
    std::thread::sleep(Duration::from_millis(50));
    let incr = std::fs::read(dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap();
    assert!(incr.windows(4).any(|w| w == b"#TS:"), "an annotation was written");
    f.restart();
    assert_eq!(contents(&mut f.conn()), want);
    f.stop();
    let redis = Server::redis(&["--dir", d, "--appendonly", "yes"]);
    assert_eq!(contents(&mut redis.conn()), want, "redis-server loads it");
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
