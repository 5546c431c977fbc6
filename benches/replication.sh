#!/usr/bin/env bash
# Replication in ferrokv-server against redis-server: the full sync of a loaded master
# to a new replica (time and memory on both sides), and SET throughput with a replica
# attached, with the replica's lag behind the master.
#
# Every server: --bind 127.0.0.1, --save "", --repl-diskless-sync-delay 0, its own
# absolute --dir in one work directory on disk (never tmpfs: the disk-based sync writes
# files), nothing pinned, ferrokv with its default shard threads (or --threads); redis
# also --appendonly no. ferrokv replicates ferrokv, redis replicates redis.
#  1. Full sync. One master per server, filled with N keys `key:%010d` holding
#     `val:%012d` (16 bytes, distinct, not integer-encoded) through `redis-cli --pipe`
#     from a RESP file generated once. Then R rounds (the server order alternates); in
#     each, for the diskless sync (repl-diskless-sync yes, both servers' default) and
#     the disk-based one (CONFIG SET repl-diskless-sync no on the master), a fresh
#     replica started with `--replicaof 127.0.0.1 <master port>` (repl-diskless-load
#     left at its default, disabled: the replica writes the image to a file, then
#     loads it). Measured from the replica's launch until its INFO replication shows
#     master_link_status:up and master_sync_in_progress:0 and DBSIZE answers N (polled
#     every 20 ms); the master's INFO stats sync_full must have grown by one. Also the
#     time from the launch until the master counts the full sync (sync_full), which
#     is how long the replica took to start and ask (the rest is the sync itself;
#     both are polled every 20 ms, so a sync shorter than that shows as none). Three
#     values are read back from the replica. Memory, sampled every 50 ms: each
#     process's VmRSS (the peak also takes VmHWM; the master's is reset through
#     clear_refs just before the replica starts), "before" (the master just before
#     the launch; the replica at its first sample), peak, "after" (1 s after the sync
#     finished). A redis master forks for the sync: its footprint row adds the Pss of
#     redis-server and its fork child while the child exists (copy-on-write pages
#     shared by both are split between them), VmRSS otherwise; ferrokv has no child,
#     so that row is its VmRSS.
#  2. SET throughput, R rounds (the server order alternates): `redis-benchmark -t set
#     -c 50 -P 16 -d 16 -r 1000000 -n <requests>` on a fresh master alone, then on a
#     fresh master with a fresh replica attached (synced while empty), redis-benchmark's
#     own rps, medians. With the replica, every 100 ms the master's master_repl_offset
#     minus the replica's slave_repl_offset (INFO replication on each, master first):
#     the lag in bytes, max and median over the run; then, from redis-benchmark's exit,
#     the time until the replica's offset reaches the master's (polled every 10 ms).
#     The master alone gets the same 100 ms INFO polls. DBSIZE must match afterwards.
# Prints a markdown table, ratios ferrokv / redis, and server log lines worth a look.
#
# Usage: benches/replication.sh [--keys N] [--rounds R] [--requests M] [--threads T]
#                               [--only sync|load] [--no-build]
#   --keys N       keys for the full sync (default 1000000; also meant to run at 10000000)
#   --rounds R     rounds of each part, medians reported (default 3)
#   --requests M   SETs per redis-benchmark run (default 2000000)
#   --threads T    ferrokv --server-threads (default: the server's default, all cores)
#   --only PART    run only part 1 (sync) or part 2 (load)
#   --no-build     use target/release/ferrokv-server as it is
# Environment: FERROKV_SERVER, REDIS_SERVER, REDIS_BENCHMARK override the binaries;
# TMPDIR where the work directory goes (if tmpfs: /var/tmp, else target/).
# Every wait is bounded; at the defaults the run takes about 3 minutes on 2 cores
# (10M keys: the fill file is about 600 MB and each master holds about 1 GB).
set -euo pipefail
cd "$(dirname "$0")/.."

keys=1000000
rounds=3
requests=2000000
threads=
only=
build=yes
while [ "$#" -gt 0 ]; do
    case "$1" in
        --keys) keys=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --requests) requests=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --no-build) build=no; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$keys" =~ ^[0-9]+$ ]] && [ "$keys" -ge 1000 ] || { echo "--keys must be at least 1000" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds must be a positive number" >&2; exit 2; }
[[ "$requests" =~ ^[0-9]+$ ]] && [ "$requests" -ge 10000 ] || { echo "--requests must be at least 10000" >&2; exit 2; }
[ -z "$threads" ] || [[ "$threads" =~ ^[1-9][0-9]*$ ]] || { echo "--threads must be a positive number" >&2; exit 2; }
case "$only" in ""|sync|load) ;; *) echo "--only takes sync or load" >&2; exit 2 ;; esac

ferrokv=${FERROKV_SERVER:-target/release/ferrokv-server}
redis=${REDIS_SERVER:-redis-server}
benchmark=${REDIS_BENCHMARK:-redis-benchmark}
for tool in "$redis" "$benchmark" redis-cli python3 timeout df; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools python3)" >&2; exit 1; }
done
if [ "$build" = yes ] && [ -z "${FERROKV_SERVER:-}" ]; then
    cargo build --release -q -p ferrokv-server
fi
[ -x "$ferrokv" ] || { echo "no ferrokv-server at $ferrokv" >&2; exit 1; }
ferrokv=$(cd "$(dirname "$ferrokv")" && pwd -P)/$(basename "$ferrokv")

fs_type() { df --output=fstype "$1" 2>/dev/null | tail -n 1 | tr -d ' '; }
memory_fs() { case "$(fs_type "$1")" in tmpfs|ramfs|"") return 0 ;; *) return 1 ;; esac; }
base=${TMPDIR:-/tmp}
if memory_fs "$base"; then
    base=/var/tmp
    if memory_fs "$base"; then
        mkdir -p target
        base=$(pwd -P)/target
    fi
fi
memory_fs "$base" && { echo "no disk-backed directory (tried ${TMPDIR:-/tmp}, /var/tmp, target/)" >&2; exit 1; }
work=$(mktemp -d "$base/ferrokv-repl.XXXXXX")
work=$(cd "$work" && pwd -P)
mkdir -p "$work/logs"

log() { echo "$*" >&2; }
# Every server this script started and still runs: pid -> its directory.
declare -A running=()
# stop PID: SIGTERM, up to 30 s, then SIGKILL; keeps its log.
stop() {
    local pid=$1 dir=${running[$1]:-}
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && log "pid $pid ($dir) still running 30 s after SIGTERM: killed"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    if [ -n "$dir" ] && [ -s "$dir/log" ]; then
        cp "$dir/log" "$work/logs/$(basename "$dir")-$pid.log"
    fi
    unset "running[$pid]"
}
bench_pid=
cleanup() {
    [ -z "$bench_pid" ] || kill -TERM "$bench_pid" 2>/dev/null || true
    local pid
    for pid in "${!running[@]}"; do stop "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# die MESSAGE: prints it and the logs of the servers still running, exits.
die() {
    log "FAILED: $*"
    local pid
    for pid in "${!running[@]}"; do
        if [ -f "${running[$pid]}/log" ]; then
            log "--- ${running[$pid]}/log (pid $pid, last 20 lines) ---"
            tail -n 20 "${running[$pid]}/log" >&2
        fi
    done
    exit 1
}

# A port below the kernel's ephemeral range, which redis-benchmark's sockets use.
ephemeral_low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$ephemeral_low" -gt 20100 ] || ephemeral_low=32768
# free_port [EXCEPT]: a port nobody listens on (and not EXCEPT, chosen but not yet bound).
free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % (ephemeral_low - 20000)))
        [ "$port" != "${1:-}" ] || continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}

# The measuring side: the fill's generator, a small RESP client, the /proc readers and
# the timed loops.
cat >"$work/helper.py" <<'PY'
import os, random, socket, statistics, subprocess, sys, threading, time

from benchlib import RespError, Conn, status_kb, pss_kb, children

def footprint_kb(pid):
    """(kB, fork children): VmRSS, or while pid has children the Pss of all of them."""
    kids = children(pid)
    if not kids:
        return status_kb(pid, "VmRSS"), 0
    return pss_kb(pid) + sum(pss_kb(k) for k in kids), len(kids)

def reset_hwm(pid):
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

class Sampler(threading.Thread):
    """Every 50 ms: the master's VmRSS and footprint, the replica's VmRSS."""
    def __init__(self, master_pid, replica_pid):
        super().__init__(daemon=True)
        self.master_pid, self.replica_pid = master_pid, replica_pid
        self.master_peak = self.master_foot_peak = self.replica_peak = 0
        self.replica_first = None
        self.forks = 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            self.master_peak = max(self.master_peak, status_kb(self.master_pid, "VmRSS"))
            foot, kids = footprint_kb(self.master_pid)
            self.master_foot_peak = max(self.master_foot_peak, foot)
            self.forks = max(self.forks, kids)
            rss = status_kb(self.replica_pid, "VmRSS")
            if self.replica_first is None and rss:
                self.replica_first = rss
            self.replica_peak = max(self.replica_peak, rss)
            self.stopping.wait(0.05)

def key(i):
    return "key:%010d" % i

def value(i):
    return "val:%012d" % i

def gen(n, path):
    with open(path, "wb") as f:
        for start in range(0, n, 100000):
            f.write(b"".join(b"*3\r\n$3\r\nSET\r\n$14\r\nkey:%010d\r\n$16\r\nval:%012d\r\n" % (i, i)
                             for i in range(start, min(n, start + 100000))))

def master_before(master_port, master_pid):
    """The master's sync_full and VmRSS (median of 1 s of 50 ms samples), then its
    VmHWM reset."""
    print("sync_full_before=%s" % Conn(master_port).info("stats")["sync_full"])
    samples = []
    for _ in range(20):
        samples.append(status_kb(master_pid, "VmRSS"))
        time.sleep(0.05)
    print("master_before_kb=%d" % statistics.median(samples))
    print("master_hwm_reset=%d" % reset_hwm(master_pid))

def full_sync(master_port, master_pid, replica_port, replica_pid, launched, expected, timeout, hwm_reset,
              full_before):
    """Waits for the replica launched at `launched` (epoch seconds) to finish its full
    sync of `expected` keys; prints the times and the memory."""
    sampler = Sampler(master_pid, replica_pid)
    sampler.start()
    master = Conn(master_port)
    asked_s = None
    replica = None
    repl, dbsize = {}, None
    while True:
        now = time.time()
        if now - launched > timeout:
            state = " ".join("%s:%s" % (k, repl.get(k)) for k in
                             ("master_link_status", "master_sync_in_progress", "master_sync_read_bytes"))
            raise SystemExit("no completed full sync of %d keys within %d s; the replica's %s, DBSIZE %r"
                             % (expected, timeout, state, dbsize))
        try:
            os.kill(replica_pid, 0)
        except OSError:
            raise SystemExit("the replica exited during the sync")
        if asked_s is None and int(master.info("stats")["sync_full"]) > full_before:
            asked_s = now - launched
        try:
            replica = replica or Conn(replica_port, timeout=30)
            repl = replica.info("replication")
            if repl.get("master_link_status") == "up" and repl.get("master_sync_in_progress") == "0":
                dbsize = replica.call("DBSIZE")
                if dbsize == expected:
                    done_s = time.time() - launched
                    break
        except OSError:
            replica = None
        time.sleep(0.02)
    if asked_s is None:
        full_now = int(master.info("stats")["sync_full"])
        if full_now <= full_before:
            raise SystemExit("the replica is in sync but the master's sync_full did not grow (%d)" % full_now)
        asked_s = done_s  # the whole sync happened between two polls
    for i in (0, expected - 1, random.randrange(expected)):
        got = replica.call("GET", key(i))
        if got != value(i):
            raise SystemExit("GET %s on the replica after the sync: %r" % (key(i), got))
    time.sleep(1.0)
    sampler.stopping.set()
    sampler.join()
    master_peak = max(sampler.master_peak, status_kb(master_pid, "VmHWM") if hwm_reset else 0)
    replica_peak = max(sampler.replica_peak, status_kb(replica_pid, "VmHWM"))
    print("sync_s=%.3f" % done_s)
    print("asked_s=%.3f" % asked_s)
    print("master_peak_kb=%d" % master_peak)
    print("master_foot_peak_kb=%d" % max(sampler.master_foot_peak, master_peak if not sampler.forks else 0))
    print("master_after_kb=%d" % status_kb(master_pid, "VmRSS"))
    print("fork_children=%d" % sampler.forks)
    print("replica_start_kb=%d" % (sampler.replica_first or 0))
    print("replica_peak_kb=%d" % replica_peak)
    print("replica_after_kb=%d" % status_kb(replica_pid, "VmRSS"))

def offsets(master, replica):
    m = int(master.info("replication")["master_repl_offset"])
    r = int(replica.info("replication")["slave_repl_offset"])
    return m, r

def load(benchmark, master_port, replica_port, requests):
    """redis-benchmark against the master; INFO polls every 100 ms meanwhile (with a
    replica: the lag in bytes); then the time until the replica caught up."""
    master = Conn(master_port)
    replica = Conn(replica_port) if replica_port else None
    cmd = [benchmark, "-h", "127.0.0.1", "-p", str(master_port), "-t", "set", "-c", "50", "-P", "16",
           "-d", "16", "-r", "1000000", "-n", str(requests), "--csv"]
    bench = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lags = []
    deadline = time.monotonic() + 600
    while bench.poll() is None:
        if time.monotonic() > deadline:
            bench.kill()
            raise SystemExit("redis-benchmark still running after 600 s")
        if replica:
            m, r = offsets(master, replica)
            lags.append(max(0, m - r))
        else:
            master.info("replication")
        time.sleep(0.1)
    ended = time.monotonic()
    out = bench.stdout.read().decode(errors="replace")
    if bench.returncode != 0:
        raise SystemExit("redis-benchmark failed (%d): %s" % (bench.returncode, out[-500:]))
    rps = None
    for line in out.splitlines():
        f = line.split('"')
        if len(f) > 3 and f[1] == "SET":
            rps = float(f[3])
        elif line and not line.startswith('"'):
            print("note=redis-benchmark also printed: %s" % line[:200])
    if rps is None:
        raise SystemExit("redis-benchmark gave no result: %s" % out[-500:])
    print("rps=%.0f" % rps)
    if replica:
        while True:
            m, r = offsets(master, replica)
            if r >= m:
                break
            if time.monotonic() - ended > 120:
                raise SystemExit("the replica still %d bytes behind 120 s after the load" % (m - r))
            time.sleep(0.01)
        print("catchup_ms=%.0f" % ((time.monotonic() - ended) * 1000))
        print("lag_max=%d" % (max(lags) if lags else 0))
        print("lag_median=%d" % (statistics.median(lags) if lags else 0))
        print("lag_samples=%d" % len(lags))
        dm, dr = master.call("DBSIZE"), replica.call("DBSIZE")
        if dm != dr:
            raise SystemExit("DBSIZE after the load: master %r, replica %r" % (dm, dr))

def wait_synced(replica_port, timeout):
    """Until the replica's link is up and its sync done."""
    deadline = time.monotonic() + timeout
    conn = None
    while time.monotonic() < deadline:
        try:
            conn = conn or Conn(replica_port)
            repl = conn.info("replication")
            if repl.get("master_link_status") == "up" and repl.get("master_sync_in_progress") == "0":
                return
        except OSError:
            conn = None
        time.sleep(0.02)
    raise SystemExit("the replica's link not up within %d s" % timeout)

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "gen":
    gen(int(args[0]), args[1])
elif cmd == "master-before":
    master_before(int(args[0]), int(args[1]))
elif cmd == "full-sync":
    full_sync(int(args[0]), int(args[1]), int(args[2]), int(args[3]), float(args[4]), int(args[5]),
              int(args[6]), args[7] == "1", int(args[8]))
elif cmd == "load":
    load(args[0], int(args[1]), int(args[2]), int(args[3]))
elif cmd == "wait-synced":
    wait_synced(int(args[0]), int(args[1]))
else:
    raise SystemExit("unknown helper command " + cmd)
PY
helper() { PYTHONPATH="$PWD/benches/lib" python3 "$work/helper.py" "$@"; }

# launch ferrokv|redis DIR PORT [OPTION...]: starts a server; sets launched_pid.
launch() {
    local server=$1 dir=$2 port=$3
    shift 3
    mkdir -p "$dir"
    local opts=(--port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --repl-diskless-sync-delay 0
        --loglevel warning "$@")
    if [ "$server" = ferrokv ]; then
        [ -z "$threads" ] || opts+=(--server-threads "$threads")
        "$ferrokv" "${opts[@]}" >>"$dir/log" 2>&1 &
    else
        "$redis" "${opts[@]}" --appendonly no --daemonize no >>"$dir/log" 2>&1 &
    fi
    launched_pid=$!
    running[$launched_pid]=$dir
}
# wait_ping PORT PID WHAT
wait_ping() {
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    die "$3 did not answer PING on port $1"
}
cli() { local port=$1; shift; timeout 30 redis-cli -p "$port" "$@" | tr -d '\r'; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
# order ROUND: ferrokv first in odd rounds.
order() { [ $(($1 % 2)) = 1 ] && echo "ferrokv redis" || echo "redis ferrokv"; }

declare -A res=() mport=() mpid=()
sync_timeout=$((120 + keys / 10000))

# fill_master NAME: a master holding the N keys, left running.
fill_master() {
    local name=$1 t0 dbsize
    local dir="$work/$name-master"
    mport[$name]=$(free_port "${mport[ferrokv]:-}")
    launch "$name" "$dir" "${mport[$name]}"
    mpid[$name]=$launched_pid
    wait_ping "${mport[$name]}" "${mpid[$name]}" "$name master"
    log "$name: filling the master with $keys keys..."
    t0=$EPOCHREALTIME
    timeout 1800 redis-cli -p "${mport[$name]}" --pipe <"$work/fill.resp" >"$dir/pipe.log" 2>&1 \
        || die "$name: redis-cli --pipe failed: $(tail -n 3 "$dir/pipe.log")"
    grep -q "errors: 0, replies: $keys" "$dir/pipe.log" || die "$name: fill: $(tail -n 1 "$dir/pipe.log")"
    dbsize=$(cli "${mport[$name]}" dbsize)
    [ "$dbsize" = "$keys" ] || die "$name: DBSIZE $dbsize after the fill, expected $keys"
    res[$name,fill_s]=$(elapsed "$t0")
    log "$name: filled in ${res[$name,fill_s]} s, master VmRSS $(awk '/^VmRSS:/ { print $2 }' "/proc/${mpid[$name]}/status") kB"
}

# full_sync ROUND NAME yes|no: one fresh replica of NAME's master, diskless or not.
full_sync() {
    local round=$1 name=$2 diskless=$3 mode rport rpid out t0 k v
    [ "$diskless" = yes ] && mode=diskless || mode=disk
    [ "$(cli "${mport[$name]}" config set repl-diskless-sync "$diskless")" = OK ] \
        || die "$name: CONFIG SET repl-diskless-sync $diskless refused"
    [ "$(cli "${mport[$name]}" config get repl-diskless-sync | sed -n 2p)" = "$diskless" ] \
        || die "$name: CONFIG GET repl-diskless-sync does not say $diskless"
    local dir="$work/$name-replica-$mode-$round"
    rport=$(free_port "${mport[$name]}")
    out=$(helper master-before "${mport[$name]}" "${mpid[$name]}") || die "$name: reading the master's state"
    while IFS='=' read -r k v; do res[$name,$mode,$k]+="$v "; done <<<"$out"
    local hwm_reset full_before
    hwm_reset=$(sed -n 's/^master_hwm_reset=//p' <<<"$out")
    full_before=$(sed -n 's/^sync_full_before=//p' <<<"$out")
    t0=$EPOCHREALTIME
    launch "$name" "$dir" "$rport" --replicaof 127.0.0.1 "${mport[$name]}"
    rpid=$launched_pid
    out=$(helper full-sync "${mport[$name]}" "${mpid[$name]}" "$rport" "$rpid" "$t0" "$keys" "$sync_timeout" \
        "$hwm_reset" "$full_before") || die "$name: $mode full sync of $keys keys"
    while IFS='=' read -r k v; do res[$name,$mode,$k]+="$v "; done <<<"$out"
    log "round $round $name $mode: $(tr '\n' ' ' <<<"$out")"
    stop "$rpid"
    rm -rf "$dir"
}

# throughput ROUND NAME: the master alone, then with a replica.
throughput() {
    local round=$1 name=$2 port rport pid rpid out k v
    port=$(free_port)
    launch "$name" "$work/$name-load-alone-$round" "$port"
    pid=$launched_pid
    wait_ping "$port" "$pid" "$name master"
    out=$(helper load "$benchmark" "$port" 0 "$requests") || die "$name: SET load on the master alone"
    while IFS='=' read -r k v; do res[$name,alone,$k]+="$v "; done <<<"$out"
    log "round $round $name alone: $(tr '\n' ' ' <<<"$out")"
    stop "$pid"

    port=$(free_port)
    rport=$(free_port "$port")
    launch "$name" "$work/$name-load-master-$round" "$port"
    pid=$launched_pid
    wait_ping "$port" "$pid" "$name master"
    launch "$name" "$work/$name-load-replica-$round" "$rport" --replicaof 127.0.0.1 "$port"
    rpid=$launched_pid
    helper wait-synced "$rport" 60 || die "$name: the replica of an empty master did not sync"
    out=$(helper load "$benchmark" "$port" "$rport" "$requests") || die "$name: SET load with a replica"
    while IFS='=' read -r k v; do res[$name,replica,$k]+="$v "; done <<<"$out"
    log "round $round $name with a replica: $(tr '\n' ' ' <<<"$out")"
    stop "$rpid"
    stop "$pid"
    rm -rf "$work/$name-load-"*"-$round"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$EPOCHREALTIME
log "work directory $work ($(fs_type "$work")); load average $load_before"

if [ "$only" != load ]; then
    log "generating the fill: $keys keys..."
    helper gen "$keys" "$work/fill.resp"
    fill_master ferrokv
    fill_master redis
    rm -f "$work/fill.resp"
    for round in $(seq "$rounds"); do
        for server in $(order "$round"); do
            full_sync "$round" "$server" yes
            full_sync "$round" "$server" no
        done
    done
    for server in ferrokv redis; do stop "${mpid[$server]}"; done
fi
if [ "$only" != sync ]; then
    for round in $(seq "$rounds"); do
        for server in $(order "$round"); do throughput "$round" "$server"; done
    done
fi

# median "a b c ..."
median() {
    printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
mb() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1024 }'; }
# row LABEL FERROKV REDIS [FORMAT]: ratio column ferrokv / redis.
row() {
    awk -v l="$1" -v f="$2" -v r="$3" -v fmt="${4:-%.1f}" 'BEGIN {
        printf "| %s | " fmt " | " fmt " | %s |\n", l, f, r, (r > 0 ? sprintf("%.2fx", f / r) : "-")
    }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'; }
# med NAME KEY: the median of a recorded field.
med() { median "${res[$1,$2]}"; }

echo
echo "ferrokv-server ($([ -n "$threads" ] && echo "--server-threads $threads" || echo "default shard threads"))" \
    "vs redis-server $("$redis" --version | awk '{ print $3 }' | tr -d 'v='), $(nproc) cores, nothing pinned;" \
    "work directory on $(df --output=source,fstype "$work" | tail -n 1 | awk '{ print $2 " (" $1 ")" }');" \
    "medians of $rounds rounds; load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after;" \
    "$(elapsed "$started") s"
echo
echo "| measure | ferrokv | redis | ferrokv/redis |"
echo "|---|---|---|---|"
if [ "$only" != load ]; then
    row "fill $keys keys, redis-cli --pipe (s)" "${res[ferrokv,fill_s]}" "${res[redis,fill_s]}" "%.2f"
    for mode in diskless disk; do
        row "$mode full sync, replica launch to in sync with DBSIZE = $keys (s)" \
            "$(med ferrokv "$mode,sync_s")" "$(med redis "$mode,sync_s")" "%.2f"
        row "$mode: of which launch to the master's sync_full (s)" \
            "$(med ferrokv "$mode,asked_s")" "$(med redis "$mode,asked_s")" "%.2f"
        row "$mode: master VmRSS before (MB)" "$(mb "$(med ferrokv "$mode,master_before_kb")")" \
            "$(mb "$(med redis "$mode,master_before_kb")")"
        row "$mode: master VmRSS peak (MB)" "$(mb "$(med ferrokv "$mode,master_peak_kb")")" \
            "$(mb "$(med redis "$mode,master_peak_kb")")"
        row "$mode: master footprint peak, with fork child (MB)" "$(mb "$(med ferrokv "$mode,master_foot_peak_kb")")" \
            "$(mb "$(med redis "$mode,master_foot_peak_kb")")"
        row "$mode: master VmRSS after (MB)" "$(mb "$(med ferrokv "$mode,master_after_kb")")" \
            "$(mb "$(med redis "$mode,master_after_kb")")"
        row "$mode: replica VmRSS at start (MB)" "$(mb "$(med ferrokv "$mode,replica_start_kb")")" \
            "$(mb "$(med redis "$mode,replica_start_kb")")"
        row "$mode: replica VmRSS peak (MB)" "$(mb "$(med ferrokv "$mode,replica_peak_kb")")" \
            "$(mb "$(med redis "$mode,replica_peak_kb")")"
        row "$mode: replica VmRSS after (MB)" "$(mb "$(med ferrokv "$mode,replica_after_kb")")" \
            "$(mb "$(med redis "$mode,replica_after_kb")")"
    done
fi
if [ "$only" != sync ]; then
    row "SET/s P16, master alone" "$(med ferrokv alone,rps)" "$(med redis alone,rps)" "%.0f"
    row "SET/s P16, master with a replica" "$(med ferrokv replica,rps)" "$(med redis replica,rps)" "%.0f"
    echo "| SET/s with / without a replica | $(ratio "$(med ferrokv replica,rps)" "$(med ferrokv alone,rps)")" \
        "| $(ratio "$(med redis replica,rps)" "$(med redis alone,rps)") | - |"
    row "replica lag under load, max (bytes)" "$(med ferrokv replica,lag_max)" "$(med redis replica,lag_max)" "%.0f"
    row "replica lag under load, median (bytes)" "$(med ferrokv replica,lag_median)" "$(med redis replica,lag_median)" "%.0f"
    row "replica catch-up after the load ends (ms)" "$(med ferrokv replica,catchup_ms)" "$(med redis replica,catchup_ms)" "%.1f"
fi
echo
if [ "$only" != load ]; then
    echo "Full sync: fork child seen on the master (redis: expected in every sync):" \
        "ferrokv $(tr ' ' '\n' <<<"${res[ferrokv,diskless,fork_children]}${res[ferrokv,disk,fork_children]}" | sort -gr | head -n 1)," \
        "redis $(tr ' ' '\n' <<<"${res[redis,diskless,fork_children]}${res[redis,disk,fork_children]}" | sort -gr | head -n 1)."
    for server in ferrokv redis; do
        echo "$server sync seconds per round: diskless ${res[$server,diskless,sync_s]}| disk ${res[$server,disk,sync_s]}"
    done
fi
if [ "$only" != sync ]; then
    echo "redis-benchmark -t set -c 50 -P 16 -d 16 -r 1000000 -n $requests; lag = master_repl_offset - slave_repl_offset" \
        "every 100 ms (medians over rounds of each run's max and median)."
    for server in ferrokv redis; do
        echo "$server per round: alone ${res[$server,alone,rps]}| with a replica ${res[$server,replica,rps]}|" \
            "lag max ${res[$server,replica,lag_max]}| catch-up ms ${res[$server,replica,catchup_ms]}"
    done
    notes=$(printf '%s\n' "${res[ferrokv,alone,note]:-}" "${res[ferrokv,replica,note]:-}" "${res[redis,alone,note]:-}" \
        "${res[redis,replica,note]:-}" | grep -v '^ *$' | sort -u || true)
    [ -z "$notes" ] || printf 'redis-benchmark notes: %s\n' "$notes"
fi

# Server logs (at --loglevel warning) without the start-up and shutdown lines, times
# and pids cut off: anything left is worth a look.
for server in ferrokv redis; do
    logged=$(cat "$work"/logs/$server-*.log 2>/dev/null \
        | sed -E 's/^[0-9]+:[A-Z] [0-9]+ [A-Za-z]+ [0-9]+ [0-9:.]+ [#*.-] //; s/^[0-9]+:signal-handler \([0-9]+\) //;
            s/^[0-9T:.-]+Z +(TRACE|DEBUG|INFO|WARN|ERROR) +//; s/127\.0\.0\.1:[0-9]+/127.0.0.1:<port>/g' \
        | grep -vE 'oO0OoO0OoO0Oo|^Redis version=|^Configuration loaded|^Server initialized|Memory overcommit must be enabled' \
        | grep -vE 'Received SIG(TERM|INT) scheduling shutdown|User requested shutdown|ready to exit, bye bye' \
        | sort | uniq -c | sort -rn | head -n 15 || true)
    if [ -n "$logged" ]; then
        echo "$server log lines other than start-up and shutdown (count, message):"
        printf '%s\n' "$logged"
    fi
done
