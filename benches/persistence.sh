#!/usr/bin/env bash
# dump.rdb persistence in ferrokv-server against redis-server: memory and throughput
# during BGSAVE under writes, start-up load time, file size.
#
# For each server in turn (ferrokv first, then redis; a fresh --dir each, --save "",
# redis with --appendonly no; nothing pinned, ferrokv with its default shard threads):
#  1. Fill: N keys `key:%012d` (the key names redis-benchmark's `key:__rand_int__`
#     expands to, so the write load below hits the same keys), all holding one
#     pseudo-random printable value of B bytes (so the data at the snapshot's cut is
#     the same whatever the write rate was, and LZF cannot shrink it), sent with
#     `redis-cli --pipe` from a RESP file generated once. Records VmRSS and INFO
#     used_memory.
#  2. BGSAVE under writes: `redis-benchmark -c 50 -P 16 -r N SET key:__rand_int__
#     <value>` runs in the background (random keys over the key space: writes hit
#     saved and unsaved keys alike). After 1 s of warm-up, 3 s without a save give the
#     baseline SET rate (INFO stats total_commands_processed delta) and the memory
#     before (median of 20 ms samples); then BGSAVE, and every 20 ms INFO persistence
#     until rdb_bgsave_in_progress:0 (the wall time), sampling memory meanwhile; the
#     time BGSAVE took to reply (ferrokv: every shard's lock taken to begin the
#     snapshot; redis: the fork) and the slowest of those INFO replies show stalls.
#     Memory: ferrokv's VmRSS (the peak also takes VmHWM, reset through clear_refs just
#     before BGSAVE, so a spike between samples counts); redis's Pss summed over
#     redis-server and its fork child (smaps_rollup: copy-on-write pages shared by both
#     are split between them, so the sum is the real footprint).
#  3. SHUTDOWN NOSAVE, then a new server on the same dir: seconds from its launch until
#     DBSIZE answers with the count saved.
#  4. The size of dump.rdb.
# Prints a markdown table, ratios ferrokv / redis.
#
# Usage: benches/persistence.sh [--keys N] [--value-size B] [--threads T] [--no-build]
#   --keys N        keys to fill (default 3000000)
#   --value-size B  value bytes (default 100)
#   --threads T     ferrokv --server-threads (default: the server's default, all cores)
#   --no-build      use target/release/ferrokv-server as it is
# Environment: FERROKV_SERVER, REDIS_SERVER, REDIS_BENCHMARK override the binaries.
# Every wait is bounded; at the defaults the run takes 2-4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

keys=3000000
value_size=100
threads=
build=yes
while [ "$#" -gt 0 ]; do
    case "$1" in
        --keys) keys=$2; shift 2 ;;
        --value-size) value_size=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --no-build) build=no; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$keys" =~ ^[0-9]+$ ]] && [ "$keys" -ge 1000 ] || { echo "--keys must be at least 1000" >&2; exit 2; }
# The value travels as one argument of redis-benchmark's command line.
[[ "$value_size" =~ ^[0-9]+$ ]] && [ "$value_size" -ge 1 ] && [ "$value_size" -le 100000 ] \
    || { echo "--value-size must be 1..100000" >&2; exit 2; }
[ -z "$threads" ] || [[ "$threads" =~ ^[1-9][0-9]*$ ]] || { echo "--threads must be a positive number" >&2; exit 2; }

ferrokv=${FERROKV_SERVER:-target/release/ferrokv-server}
redis=${REDIS_SERVER:-redis-server}
benchmark=${REDIS_BENCHMARK:-redis-benchmark}
for tool in "$redis" "$benchmark" redis-cli python3 timeout; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools python3)" >&2; exit 1; }
done
if [ "$build" = yes ] && [ -z "${FERROKV_SERVER:-}" ]; then
    cargo build --release -q -p ferrokv-server
fi
[ -x "$ferrokv" ] || { echo "no ferrokv-server at $ferrokv" >&2; exit 1; }

# Absolute: ferrokv-server at f9a45f8 changes into --dir and then resolves dump.rdb
# against --dir again, so a relative --dir makes SAVE and BGSAVE fail (ENOENT).
work=$(mktemp -d "${TMPDIR:-/tmp}/ferrokv-persist.XXXXXX")
work=$(cd "$work" && pwd -P)
server_pid=
load_pid=
stop_load() {
    if [ -n "$load_pid" ]; then
        kill -TERM "$load_pid" 2>/dev/null || true
        wait "$load_pid" 2>/dev/null || true
    fi
    load_pid=
}
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    [ -z "$server_pid" ] || wait "$server_pid" 2>/dev/null || true
    server_pid=
}
cleanup() {
    stop_load
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "$*" >&2; }
# die MESSAGE: prints it and the current server's log, exits.
die() {
    log "FAILED: $*"
    if [ -n "${dir:-}" ] && [ -f "$dir/log" ]; then
        log "--- server log ($dir/log, last 20 lines) ---"
        tail -n 20 "$dir/log" >&2
    fi
    exit 1
}

# A port below the kernel's ephemeral range, which redis-benchmark's sockets use.
ephemeral_low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$ephemeral_low" -gt 20100 ] || ephemeral_low=32768
free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % (ephemeral_low - 20000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}

# The measuring side: a small RESP client, the /proc readers and the timed loops.
cat >"$work/helper.py" <<'PY'
import os, random, socket, statistics, string, sys, time

from benchlib import RespError, Conn, status_kb, pss_kb, children

def memory_kb(pid, mode):
    """(kB, fork children seen): VmRSS, or Pss of pid plus its children."""
    if mode == "rss":
        return status_kb(pid, "VmRSS"), 0
    kids = children(pid)
    return pss_kb(pid) + sum(pss_kb(k) for k in kids), len(kids)

def gen(n, size, resp_path, value_path):
    rng = random.Random(size)
    alphabet = (string.ascii_letters + string.digits).encode()
    value = bytes(rng.choice(alphabet) for _ in range(size))
    with open(value_path, "wb") as f:
        f.write(value)
    head = b"*3\r\n$3\r\nSET\r\n$16\r\nkey:"
    tail = b"\r\n$%d\r\n%s\r\n" % (size, value)
    with open(resp_path, "wb") as f:
        for start in range(0, n, 100000):
            f.write(b"".join(head + b"%012d" % i + tail for i in range(start, min(n, start + 100000))))

def bgsave(port, pid, mode, timeout):
    conn = Conn(port)
    commands = lambda: int(conn.info("stats")["total_commands_processed"])
    deadline = time.monotonic() + 30
    first = commands()
    while commands() - first < 1000:
        if time.monotonic() > deadline:
            raise SystemExit("the write load did not start within 30 s")
        time.sleep(0.05)
    time.sleep(1.0)

    samples = []
    c0, t0 = commands(), time.monotonic()
    while time.monotonic() - t0 < 3.0:
        samples.append(memory_kb(pid, mode)[0])
        time.sleep(0.02)
    c1, t1 = commands(), time.monotonic()
    before = statistics.median(samples)

    hwm_reset = False
    if mode == "rss":
        try:
            with open("/proc/%d/clear_refs" % pid, "w") as f:
                f.write("5")
            hwm_reset = True
        except OSError:
            pass
    cb, tb = commands(), time.monotonic()
    reply = conn.call("BGSAVE")
    reply_ms = (time.monotonic() - tb) * 1000
    if isinstance(reply, RespError):
        raise SystemExit("BGSAVE: %s" % reply)
    peak, polls, forks, slowest = 0, 0, 0, 0.0
    while True:
        kb, kids = memory_kb(pid, mode)
        peak, forks = max(peak, kb), max(forks, kids)
        asked = time.monotonic()
        persistence = conn.info("persistence")
        slowest = max(slowest, time.monotonic() - asked)
        polls += 1
        if persistence.get("rdb_bgsave_in_progress") == "0":
            break
        if time.monotonic() - tb > timeout:
            raise SystemExit("BGSAVE still in progress after %d s" % timeout)
        time.sleep(0.02)
    te = time.monotonic()
    ce = commands()
    peak = max(peak, memory_kb(pid, mode)[0])
    hwm = status_kb(pid, "VmHWM") if hwm_reset else 0
    time.sleep(0.5)
    after = memory_kb(pid, mode)[0]
    status = conn.info("persistence").get("rdb_last_bgsave_status", "?")
    print("base_rps=%.0f" % ((c1 - c0) / (t1 - t0)))
    print("save_rps=%.0f" % ((ce - cb) / (te - tb)))
    print("before_kb=%d" % before)
    print("peak_sampled_kb=%d" % peak)
    print("hwm_kb=%d" % hwm)
    print("peak_kb=%d" % max(peak, hwm))
    print("after_kb=%d" % after)
    print("wall_ms=%.0f" % ((te - tb) * 1000))
    print("reply_ms=%.1f" % reply_ms)
    print("slowest_info_ms=%.1f" % (slowest * 1000))
    print("polls=%d" % polls)
    print("fork_children=%d" % forks)
    print("status=%s" % status)

def wait_loaded(port, expected, launched, timeout):
    conn = None
    while time.time() - launched < timeout:
        try:
            conn = conn or Conn(port, timeout=5)
            reply = conn.call("DBSIZE")
            if reply == expected:
                print("%.3f" % (time.time() - launched))
                return
        except OSError:
            conn = None
        time.sleep(0.02)
    raise SystemExit("DBSIZE did not reach %d within %d s" % (expected, timeout))

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "gen":
    gen(int(args[0]), int(args[1]), args[2], args[3])
elif cmd == "bgsave":
    bgsave(int(args[0]), int(args[1]), args[2], int(args[3]))
elif cmd == "wait-loaded":
    wait_loaded(int(args[0]), int(args[1]), float(args[2]), int(args[3]))
else:
    raise SystemExit("unknown helper command " + cmd)
PY
helper() { PYTHONPATH="$PWD/benches/lib" python3 "$work/helper.py" "$@"; }

# launch ferrokv|redis: starts the server on $dir and $port, sets server_pid.
launch() {
    if [ "$1" = ferrokv ]; then
        local extra=()
        [ -z "$threads" ] || extra=(--server-threads "$threads")
        "$ferrokv" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" "${extra[@]}" \
            --loglevel warning >>"$dir/log" 2>&1 &
    else
        "$redis" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
            --daemonize no --loglevel warning >>"$dir/log" 2>&1 &
    fi
    server_pid=$!
}
wait_ping() {
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    die "$name did not answer PING on port $port"
}
cli() { timeout 30 redis-cli -p "$port" "$@" | tr -d '\r'; }
info_field() { cli info "$1" | awk -F: -v f="$2" '$1 == f { print $2 }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

declare -A res

# measure ferrokv|redis: the four phases; results in res[NAME,FIELD].
measure() {
    name=$1
    dir="$work/$name"
    mkdir -p "$dir"
    port=$(free_port)
    launch "$name"
    wait_ping

    log "$name: filling $keys keys..."
    local t0 out dbsize
    t0=$EPOCHREALTIME
    timeout 600 redis-cli -p "$port" --pipe <"$work/fill.resp" >"$dir/pipe.log" 2>&1 \
        || die "$name: redis-cli --pipe failed: $(tail -n 3 "$dir/pipe.log")"
    res[$name,fill_s]=$(elapsed "$t0")
    grep -q "errors: 0, replies: $keys" "$dir/pipe.log" || die "$name: fill: $(tail -n 1 "$dir/pipe.log")"
    dbsize=$(cli dbsize)
    [ "$dbsize" = "$keys" ] || die "$name: DBSIZE $dbsize after the fill, expected $keys"
    res[$name,fill_rss_kb]=$(rss_kb)
    res[$name,fill_used]=$(info_field memory used_memory)
    log "$name: filled in ${res[$name,fill_s]} s; VmRSS ${res[$name,fill_rss_kb]} kB, used_memory ${res[$name,fill_used]}"

    log "$name: BGSAVE under the write load..."
    timeout 900 "$benchmark" -h 127.0.0.1 -p "$port" -c 50 -P 16 -r "$keys" -n 2000000000 -q \
        SET 'key:__rand_int__' "$value" >/dev/null 2>&1 &
    load_pid=$!
    local mode=rss
    [ "$name" = redis ] && mode=pss
    helper bgsave "$port" "$server_pid" "$mode" 240 >"$dir/bgsave.out" || die "$name: BGSAVE phase"
    stop_load
    while IFS='=' read -r k v; do res[$name,$k]=$v; done <"$dir/bgsave.out"
    log "$name: $(tr '\n' ' ' <"$dir/bgsave.out")"
    [ "${res[$name,status]}" = ok ] || die "$name: rdb_last_bgsave_status:${res[$name,status]}"
    dbsize=$(cli dbsize)
    [ "$dbsize" = "$keys" ] || die "$name: DBSIZE $dbsize after the write load, expected $keys"

    cli shutdown nosave >/dev/null 2>&1 || true
    for _ in $(seq 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$server_pid" 2>/dev/null && die "$name: still running 30 s after SHUTDOWN NOSAVE"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    [ -f "$dir/dump.rdb" ] || die "$name: no dump.rdb after BGSAVE"
    res[$name,rdb_bytes]=$(stat -c %s "$dir/dump.rdb")

    log "$name: restarting on its dump.rdb (${res[$name,rdb_bytes]} bytes)..."
    t0=$EPOCHREALTIME
    launch "$name"
    res[$name,load_s]=$(helper wait-loaded "$port" "$keys" "$t0" 180) || die "$name: loading dump.rdb"
    res[$name,load_rss_kb]=$(rss_kb)
    res[$name,load_used]=$(info_field memory used_memory)
    log "$name: loaded in ${res[$name,load_s]} s; VmRSS ${res[$name,load_rss_kb]} kB"
    stop_server
}

log "generating the fill: $keys keys, $value_size-byte values..."
helper gen "$keys" "$value_size" "$work/fill.resp" "$work/value"
value=$(cat "$work/value")

measure ferrokv
measure redis

mb() { awk -v v="$1" -v d="$2" 'BEGIN { printf "%.1f", v / d }'; }
# row LABEL FERROKV REDIS [FORMAT]: ratio column ferrokv / redis.
row() {
    awk -v l="$1" -v f="$2" -v r="$3" -v fmt="${4:-%.1f}" 'BEGIN {
        printf "| %s | " fmt " | " fmt " | %s |\n", l, f, r, (r > 0 ? sprintf("%.2fx", f / r) : "-")
    }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

f_peak_ratio=$(ratio "${res[ferrokv,peak_kb]}" "${res[ferrokv,before_kb]}")
r_peak_ratio=$(ratio "${res[redis,peak_kb]}" "${res[redis,before_kb]}")
f_rps_ratio=$(ratio "${res[ferrokv,save_rps]}" "${res[ferrokv,base_rps]}")
r_rps_ratio=$(ratio "${res[redis,save_rps]}" "${res[redis,base_rps]}")

echo
echo "ferrokv-server ($([ -n "$threads" ] && echo "--server-threads $threads" || echo "default shard threads"))" \
    "vs redis-server $("$redis" --version | awk '{ print $3 }' | tr -d 'v='), $(nproc) cores, nothing pinned;" \
    "$keys keys of $value_size bytes; write load: redis-benchmark SET, 50 clients, pipeline 16, random keys over the key space"
echo
echo "| measure | ferrokv | redis | ferrokv/redis |"
echo "|---|---|---|---|"
row "fill, redis-cli --pipe (s)" "${res[ferrokv,fill_s]}" "${res[redis,fill_s]}" "%.2f"
row "VmRSS after fill (MB)" "$(mb "${res[ferrokv,fill_rss_kb]}" 1024)" "$(mb "${res[redis,fill_rss_kb]}" 1024)"
row "used_memory after fill (MB)" "$(mb "${res[ferrokv,fill_used]}" 1048576)" "$(mb "${res[redis,fill_used]}" 1048576)"
row "memory before BGSAVE, under writes (MB)" "$(mb "${res[ferrokv,before_kb]}" 1024)" "$(mb "${res[redis,before_kb]}" 1024)"
row "peak memory during BGSAVE (MB)" "$(mb "${res[ferrokv,peak_kb]}" 1024)" "$(mb "${res[redis,peak_kb]}" 1024)"
echo "| peak / before | ${f_peak_ratio}x | ${r_peak_ratio}x | - |"
row "BGSAVE wall time (ms)" "${res[ferrokv,wall_ms]}" "${res[redis,wall_ms]}" "%.0f"
row "BGSAVE reply time (ms)" "${res[ferrokv,reply_ms]}" "${res[redis,reply_ms]}"
row "slowest INFO reply during BGSAVE (ms)" "${res[ferrokv,slowest_info_ms]}" "${res[redis,slowest_info_ms]}"
row "SET/s under writes, no save" "${res[ferrokv,base_rps]}" "${res[redis,base_rps]}" "%.0f"
row "SET/s during BGSAVE" "${res[ferrokv,save_rps]}" "${res[redis,save_rps]}" "%.0f"
echo "| SET/s during / without save | ${f_rps_ratio}x | ${r_rps_ratio}x | - |"
row "dump.rdb size (MB)" "$(mb "${res[ferrokv,rdb_bytes]}" 1048576)" "$(mb "${res[redis,rdb_bytes]}" 1048576)"
row "start-up load until DBSIZE = $keys (s)" "${res[ferrokv,load_s]}" "${res[redis,load_s]}" "%.2f"
row "VmRSS after load (MB)" "$(mb "${res[ferrokv,load_rss_kb]}" 1024)" "$(mb "${res[redis,load_rss_kb]}" 1024)"
echo
echo "Memory: ferrokv VmRSS (peak includes VmHWM since BGSAVE); redis Pss of redis-server plus its fork child" \
    "(fork child seen: $([ "${res[redis,fork_children]}" -gt 0 ] && echo yes || echo no))."
awk -v r="$f_peak_ratio" 'BEGIN { printf "ferrokv peak / before: %.2fx (target <= 1.10: %s)\n", r, (r <= 1.10 ? "met" : "NOT met") }'
