//! dump.rdb: SAVE, BGSAVE and loading at start-up, against redis-server 7.0.15 both
//! ways (each loads the other's file to the same contents; `redis-check-rdb` accepts
//! ferrokv's), BGSAVE under writes is a point-in-time image, and the failure paths
//! (a failed BGSAVE refuses writes with MISCONF; a corrupt file stops start-up naming
//! the file and offset).

use ferrokv_tests::dataset::{fill, snapshot};
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

fn info_field(c: &mut Conn, field: &str) -> String {
    let text = match call(c, &["INFO", "persistence"]) {
        Reply::Bulk(Some(b)) | Reply::Verbatim(b) => String::from_utf8(b).unwrap(),
        other => panic!("INFO: {other:?}"),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
}

fn wait_bgsave(c: &mut Conn) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(c, "rdb_bgsave_in_progress") != "0" {
        assert!(Instant::now() < deadline, "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn copy_file(from: &Path, to_dir: &Path) -> PathBuf {
    std::fs::create_dir_all(to_dir).unwrap();
    let to = to_dir.join("dump.rdb");
    std::fs::copy(from, &to).unwrap();
    to
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrokv-persist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn save_and_bgsave_survive_a_restart_and_load_into_redis() {
    for threads in ["1", "2"] {
        let mut f = Server::ferrokv(&["--server-threads", threads]);
        let mut c = f.conn();
        fill(&mut c, 7);
        let want = snapshot(&mut c);
        assert!(want.len() > 300);
        let before = call(&mut c, &["LASTSAVE"]);
        assert_eq!(call(&mut c, &["SAVE"]), ok());
        assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "0");
        // A kill -9 after SAVE loses nothing the file holds.
        f.restart();
        let mut c = f.conn();
        assert_eq!(snapshot(&mut c), want, "after SAVE and a restart ({threads} shards)");
        assert_eq!(info_field(&mut c, "rdb_last_load_keys_loaded"), want.len().to_string());

        // BGSAVE of a changed dataset.
        fill(&mut c, 8);
        call(&mut c, &["DEL", "l:big", "s:3"]);
        let want = snapshot(&mut c);
        assert_eq!(call(&mut c, &["BGSAVE"]), Reply::Simple(b"Background saving started".to_vec()));
        wait_bgsave(&mut c);
        assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
        assert!(call(&mut c, &["LASTSAVE"]) >= before);
        f.restart();
        let mut c = f.conn();
        assert_eq!(snapshot(&mut c), want, "after BGSAVE and a restart ({threads} shards)");

        // redis-check-rdb accepts the file and redis-server loads the same contents.
        let file = f.dir().join("dump.rdb");
        let check = std::process::Command::new("redis-check-rdb").arg(&file).output().expect("redis-check-rdb");
        assert!(check.status.success(), "redis-check-rdb: {}", String::from_utf8_lossy(&check.stdout));
        let dir = scratch(&format!("to-redis-{threads}"));
        copy_file(&file, &dir);
        let redis = Server::redis(&["--dir", dir.to_str().unwrap()]);
        let mut r = redis.conn();
        assert_eq!(snapshot(&mut r), want, "redis-server loading ferrokv's dump.rdb");
        drop(redis);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn redis_dump_loads_into_ferrokv() {
    let dir = scratch("from-redis");
    let redis = Server::redis(&["--dir", dir.to_str().unwrap()]);
    let mut r = redis.conn();
    fill(&mut r, 11);
    let want = snapshot(&mut r);
    assert_eq!(call(&mut r, &["SAVE"]), ok());
    drop(redis);
    for threads in ["1", "3"] {
        let f = Server::ferrokv(&["--dir", dir.to_str().unwrap(), "--server-threads", threads]);
        let mut c = f.conn();
        assert_eq!(snapshot(&mut c), want, "ferrokv ({threads} shards) loading redis's dump.rdb");
        // Same bytes out: DUMP of every deterministic encoding matches redis's.
        drop(f);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// BGSAVE while one client keeps writing rounds `SET k0 r`, `SET k1 r`, ... in order,
/// each acknowledged before the next: a point-in-time image holds a prefix of some
/// round r and the rest of round r-1 (values non-increasing by key, by at most one).
#[test]
fn bgsave_under_writes_is_a_consistent_cut() {
    const KEYS: usize = 2000;
    for threads in ["1", "2"] {
        let f = Server::ferrokv(&["--server-threads", threads]);
        let port = f.port();
        let mut c = f.conn();
        // Round 0 first, and enough volume that the save overlaps the writes.
        let pad = "x".repeat(200);
        for i in 0..KEYS {
            c.send(&["SET", &format!("pad:{i}"), &pad]);
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut w = Conn::connect(port).unwrap();
                let mut round = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || round < 3 {
                    for i in 0..KEYS {
                        w.send(&["SET", &format!("k{i}"), &round.to_string()]);
                    }
                    round += 1;
                }
                round
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(call(&mut c, &["BGSAVE"]), Reply::Simple(b"Background saving started".to_vec()));
        wait_bgsave(&mut c);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let rounds = writer.join().unwrap();
        assert!(rounds >= 3);
        // Read the image back through redis-server: independent of our loader.
        let dir = scratch(&format!("cut-{threads}"));
        copy_file(&f.dir().join("dump.rdb"), &dir);
        let redis = Server::redis(&["--dir", dir.to_str().unwrap()]);
        let mut r = redis.conn();
        let mut values = Vec::new();
        for i in 0..KEYS {
            match call(&mut r, &["GET", &format!("k{i}")]) {
                Reply::Bulk(Some(v)) => values.push(String::from_utf8(v).unwrap().parse::<i64>().unwrap()),
                Reply::Bulk(None) => values.push(-1),
                other => panic!("{other:?}"),
            }
        }
        let (first, last) = (values[0], values[KEYS - 1]);
        assert!(values.windows(2).all(|w| w[0] >= w[1]), "not a cut ({threads} shards): {values:?}");
        assert!(first - last <= 1, "more than one round apart ({threads} shards): {first} .. {last}");
        drop(redis);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn failed_bgsave_refuses_writes_until_a_save_succeeds() {
    let dir = scratch("misconf");
    let f = Server::ferrokv(&["--dir", dir.to_str().unwrap(), "--save", "3600 1"]);
    let mut c = f.conn();
    assert_eq!(call(&mut c, &["SET", "a", "1"]), ok());
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(call(&mut c, &["BGSAVE"]), Reply::Simple(b"Background saving started".to_vec()));
    wait_bgsave(&mut c);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "err");
    let refused = c.send(&["SET", "b", "2"]);
    assert!(
        refused.starts_with(b"-MISCONF Redis is configured to save RDB snapshots"),
        "{}",
        String::from_utf8_lossy(&refused)
    );
    assert!(c.send(&["PING"]).starts_with(b"-MISCONF"));
    assert_eq!(call(&mut c, &["GET", "a"]), Reply::Bulk(Some(b"1".to_vec())), "reads still work");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(call(&mut c, &["SAVE"]), ok());
    assert_eq!(call(&mut c, &["SET", "b", "2"]), ok());
    assert_eq!(call(&mut c, &["CONFIG", "SET", "save", ""]), ok());
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_or_truncated_files_stop_start_up_with_the_offset() {
    let dir = scratch("corrupt");
    {
        let f = Server::ferrokv(&["--dir", dir.to_str().unwrap()]);
        let mut c = f.conn();
        fill(&mut c, 3);
        assert_eq!(call(&mut c, &["SAVE"]), ok());
    }
    let good = std::fs::read(dir.join("dump.rdb")).unwrap();
    for (label, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("flipped", {
            let mut b = good.clone();
            let n = b.len();
            b[n - 20] ^= 0x40;
            b
        }),
        ("not rdb", b"hello world, not a dump".to_vec()),
    ] {
        std::fs::write(dir.join("dump.rdb"), &bytes).unwrap();
        let (status, output) =
            Server::run_to_exit(Kind::Ferrokv, &["--dir", dir.to_str().unwrap()], Duration::from_secs(20));
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{label}: {output}");
        assert!(output.contains("dump.rdb"), "{label}: names the file: {output}");
        if label != "not rdb" {
            assert!(output.contains("offset"), "{label}: names the offset: {output}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_saves_when_save_points_are_set() {
    let dir = scratch("shutdown");
    let mut f = Server::ferrokv(&["--dir", dir.to_str().unwrap(), "--save", "3600 1"]);
    let mut c = f.conn();
    assert_eq!(call(&mut c, &["SET", "kept", "1"]), ok());
    let _ = c.try_send(&["SHUTDOWN"]);
    f.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(dir.join("dump.rdb").exists());
    let f = Server::ferrokv(&["--dir", dir.to_str().unwrap()]);
    let mut c = f.conn();
    assert_eq!(call(&mut c, &["GET", "kept"]), Reply::Bulk(Some(b"1".to_vec())));
    // SIGTERM saves too; SHUTDOWN NOSAVE does not.
    assert_eq!(call(&mut c, &["SET", "kept", "2"]), ok());
    assert_eq!(call(&mut c, &["CONFIG", "SET", "save", "3600 1"]), ok());
    drop(c);
    drop(f);
    let mut f = Server::ferrokv(&["--dir", dir.to_str().unwrap()]);
    let mut c = f.conn();
    assert_eq!(call(&mut c, &["GET", "kept"]), Reply::Bulk(Some(b"2".to_vec())), "saved at SIGTERM");
    assert_eq!(call(&mut c, &["SET", "kept", "3"]), ok());
    let _ = c.try_send(&["SHUTDOWN", "NOSAVE"]);
    f.wait_exit(Duration::from_secs(10)).expect("exits");
    let f = Server::ferrokv(&["--dir", dir.to_str().unwrap()]);
    let mut c = f.conn();
    assert_eq!(call(&mut c, &["GET", "kept"]), Reply::Bulk(Some(b"2".to_vec())), "NOSAVE kept the old file");
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn info_persistence_has_redis_fields() {
    let redis = Server::redis(&[]);
    let f = Server::ferrokv(&[]);
    let fields = |c: &mut Conn| -> Vec<String> {
        match call(c, &["INFO", "persistence"]) {
            Reply::Bulk(Some(b)) | Reply::Verbatim(b) => String::from_utf8(b)
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
                .collect(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(fields(&mut f.conn()), fields(&mut redis.conn()));
    let mut c = f.conn();
    assert_eq!(call(&mut c, &["BGSAVE", "bogus"]), Reply::Error(b"ERR syntax error".to_vec()));
    assert_eq!(call(&mut c, &["MULTI"]), ok());
    assert_eq!(call(&mut c, &["SAVE"]), Reply::Error(b"ERR Command not allowed inside a transaction".to_vec()));
    assert_eq!(call(&mut c, &["DISCARD"]), ok());
    assert_eq!(call(&mut c, &["MULTI"]), ok());
    assert_eq!(call(&mut c, &["BGSAVE"]), Reply::Simple(b"QUEUED".to_vec()));
    assert_eq!(
        call(&mut c, &["EXEC"]),
        Reply::Array(Some(vec![Reply::Simple(b"Background saving scheduled".to_vec())]))
    );
}

#[test]
fn flushall_saves_the_empty_dataset_when_save_points_are_set() {
    let dir = scratch("flushall");
    let d = dir.to_str().unwrap();
    let mut f = Server::ferrokv(&["--dir", d, "--save", "3600 1", "--server-threads", "2"]);
    let mut c = f.conn();
    fill(&mut c, 5);
    assert_eq!(call(&mut c, &["SAVE"]), ok());
    assert_eq!(call(&mut c, &["FLUSHALL"]), ok());
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "0");
    f.restart();
    let mut c = f.conn();
    assert_eq!(call(&mut c, &["DBSIZE"]), Reply::Int(0), "the flushed dataset was saved");
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}
