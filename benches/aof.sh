#!/usr/bin/env bash
# The append-only file in ferrokv-server against redis-server: SET throughput under each
# appendfsync policy, AOF size, start-up load time from the AOF, BGREWRITEAOF.
#
# Both servers get the same options: --save "", --appendonly yes|no, --appendfsync,
# --appenddirname appendonlydir, --auto-aof-rewrite-percentage 0 (no automatic rewrite
# in the middle of a measurement), a fresh absolute --dir in one work directory (so the
# same filesystem for both: fsync's cost is the filesystem's; the work directory is
# never tmpfs, where fsync is free), nothing pinned, ferrokv with its default shard
# threads.
#  1. Throughput, R rounds; in each round, for each of appendonly no, appendfsync
#     everysec and appendfsync always, ferrokv and redis in turn (the order alternates
#     between rounds), each on a fresh dir: `redis-benchmark -t set -c 50 -d 100
#     -r 1000000 -n <fixed>` at pipeline 1 and then 16, redis-benchmark's own rps.
#     Medians over the rounds. The incremental file's size per SET afterwards is a
#     check that every reply had its record (both servers write the same bytes).
#  2. Loading: N keys `key:%012d` holding one pseudo-random printable 100-byte value,
#     sent with `redis-cli --pipe` (appendfsync everysec) to each server; the AOF's
#     size; then R rounds (servers alternating) of: start on that dir, seconds from the
#     launch until DBSIZE answers N, one value checked, stop.
#  3. BGREWRITEAOF on each: wall time until INFO persistence shows the rewrite done
#     (aof_rewrite_in_progress:0, aof_rewrite_scheduled:0, aof_rewrites counted), the
#     AOF's size, then the same R load rounds, now mostly the RDB base.
# Prints a markdown table, ratios ferrokv / redis, and the work directory's filesystem.
#
# Usage: benches/aof.sh [--keys N] [--rounds R] [--no-build]
#   --keys N     keys for the loading part (default 1000000)
#   --rounds R   throughput and load rounds, medians reported (default 3)
#   --no-build   use target/release/ferrokv-server as it is
# Environment: FERROKV_SERVER, REDIS_SERVER, REDIS_BENCHMARK override the binaries;
# TMPDIR where the work directory goes (if tmpfs: /var/tmp, else target/).
# Every wait is bounded; at the defaults the run takes about 3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

keys=1000000
rounds=3
build=yes
while [ "$#" -gt 0 ]; do
    case "$1" in
        --keys) keys=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --no-build) build=no; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$keys" =~ ^[0-9]+$ ]] && [ "$keys" -ge 1000 ] || { echo "--keys must be at least 1000" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds must be a positive number" >&2; exit 2; }

# Requests per redis-benchmark run, the same for every policy and both servers: about
# 5 s at the slowest (appendfsync always) on 2 vCPUs and ext4, 1-2 s without the AOF.
requests_p1=50000
requests_p16=500000
value_size=100

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
memory_fs "$base" && { echo "no disk-backed directory for the AOF (tried ${TMPDIR:-/tmp}, /var/tmp, target/)" >&2; exit 1; }
# Absolute, although ferrokv now resolves a relative --dir itself (it did not at f9a45f8).
work=$(mktemp -d "$base/ferrokv-aof.XXXXXX")
work=$(cd "$work" && pwd -P)
server_pid=
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$server_pid" 2>/dev/null && log "$name (pid $server_pid) still running 30 s after SIGTERM: killed"
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    [ -z "$server_pid" ] || wait "$server_pid" 2>/dev/null || true
    server_pid=
}
cleanup() {
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

# The measuring side: the fill's generator, a small RESP client and the timed loops.
cat >"$work/helper.py" <<'PY'
import random, socket, string, sys, time

from benchlib import RespError, Conn

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

def wait_loaded(port, expected, launched, timeout, value_path):
    """Seconds from launch until DBSIZE answers expected; then checks the first and
    last key's value (not timed)."""
    conn = None
    while time.time() - launched < timeout:
        try:
            conn = conn or Conn(port, timeout=5)
            if conn.call("DBSIZE") == expected:
                print("%.3f" % (time.time() - launched))
                break
        except OSError:
            conn = None
        time.sleep(0.01)
    else:
        raise SystemExit("DBSIZE did not reach %d within %d s" % (expected, timeout))
    value = open(value_path, "rb").read().decode()
    for i in (0, expected - 1):
        got = conn.call("GET", "key:%012d" % i)
        if got != value:
            raise SystemExit("GET key:%012d after loading: %r" % (i, got if got is None else got[:40]))

def rewrite(port, timeout):
    """BGREWRITEAOF and the wall time until INFO persistence shows it done."""
    conn = Conn(port)
    field = lambda p, k: int(p.get(k, "0"))
    before = conn.info("persistence")
    t0 = time.monotonic()
    reply = conn.call("BGREWRITEAOF")
    reply_ms = (time.monotonic() - t0) * 1000
    if isinstance(reply, RespError):
        raise SystemExit("BGREWRITEAOF: %s" % reply)
    slowest = 0.0
    while True:
        asked = time.monotonic()
        p = conn.info("persistence")
        slowest = max(slowest, time.monotonic() - asked)
        done = field(p, "aof_rewrites") > field(before, "aof_rewrites") \
            or field(p, "aof_rewrites_consecutive_failures") > field(before, "aof_rewrites_consecutive_failures")
        if done and p.get("aof_rewrite_in_progress") == "0" and p.get("aof_rewrite_scheduled") == "0":
            break
        if time.monotonic() - t0 > timeout:
            raise SystemExit("BGREWRITEAOF still in progress after %d s" % timeout)
        time.sleep(0.01)
    print("rewrite_ms=%.0f" % ((time.monotonic() - t0) * 1000))
    print("rewrite_reply_ms=%.1f" % reply_ms)
    print("rewrite_slowest_info_ms=%.1f" % (slowest * 1000))
    print("rewrite_status=%s" % p.get("aof_last_bgrewrite_status", "?"))

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "gen":
    gen(int(args[0]), int(args[1]), args[2], args[3])
elif cmd == "wait-loaded":
    wait_loaded(int(args[0]), int(args[1]), float(args[2]), int(args[3]), args[4])
elif cmd == "rewrite":
    rewrite(int(args[0]), int(args[1]))
else:
    raise SystemExit("unknown helper command " + cmd)
PY
helper() { PYTHONPATH="$PWD/benches/lib" python3 "$work/helper.py" "$@"; }

# launch ferrokv|redis no|everysec|always: starts the server on $dir and $port with
# the same persistence options for both, sets server_pid and name.
launch() {
    name=$1
    local opts=(--port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appenddirname appendonlydir
        --auto-aof-rewrite-percentage 0 --loglevel warning)
    if [ "$2" = no ]; then
        opts+=(--appendonly no)
    else
        opts+=(--appendonly yes --appendfsync "$2")
    fi
    if [ "$1" = ferrokv ]; then
        "$ferrokv" "${opts[@]}" >>"$dir/log" 2>&1 &
    else
        "$redis" "${opts[@]}" --daemonize no >>"$dir/log" 2>&1 &
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
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
aof_bytes() { { find "$1/appendonlydir" -type f -printf '%s\n' 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }'; }
incr_bytes() { { find "$1/appendonlydir" -type f -name '*.incr.aof' -printf '%s\n' 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }'; }
# Every server's log is kept for the summary at the end.
keep_log() { [ ! -s "$dir/log" ] || cp "$dir/log" "$work/logs/$1.log"; }
mkdir -p "$work/logs"

declare -A res

# bench PIPELINE REQUESTS: redis-benchmark's rps for SET.
bench() {
    local out rps
    out=$(timeout 300 "$benchmark" -h 127.0.0.1 -p "$port" -t set -P "$1" -c 50 -d "$value_size" -r 1000000 \
        -n "$2" --csv 2>&1) || die "$name: redis-benchmark -P $1 failed: $out"
    rps=$(printf '%s\n' "$out" | awk -F'"' '$2 == "SET" { print $4; exit }')
    [ -n "$rps" ] || die "$name: redis-benchmark -P $1 gave no result: $out"
    if printf '%s\n' "$out" | grep -qiv '^"'; then
        log "$name: redis-benchmark -P $1 also printed: $(printf '%s\n' "$out" | grep -iv '^"' | head -n 3)"
    fi
    echo "$rps"
}

# throughput ROUND POLICY NAME: one fresh server, SET at pipeline 1 and 16.
throughput() {
    local round=$1 policy=$2 p1 p16 status incr
    dir="$work/$3-$policy"
    rm -rf "$dir" && mkdir -p "$dir"
    port=$(free_port)
    launch "$3" "$policy"
    wait_ping
    p1=$(bench 1 "$requests_p1")
    p16=$(bench 16 "$requests_p16")
    res[$name,$policy,1]+="$p1 "
    res[$name,$policy,16]+="$p16 "
    if [ "$policy" != no ]; then
        status=$(info_field persistence aof_last_write_status)
        [ "$status" = ok ] || log "$name: aof_last_write_status:$status after appendfsync $policy"
    fi
    stop_server
    incr=$(incr_bytes "$dir")
    if [ "$policy" != no ]; then
        # The incremental file starts with SELECT 0 (23 bytes), then one record per SET.
        res[$name,$policy,per_set]+="$(awk -v b="$incr" -v n=$((requests_p1 + requests_p16)) 'BEGIN { printf "%.2f", (b - 23) / n }') "
    fi
    [ "$policy" = no ] && incr= || incr=", incr files $incr bytes"
    log "round $round $name $policy: SET P1 $p1 rps, P16 $p16 rps$incr"
    keep_log "$name-$policy-$round"
    rm -rf "$dir"
}

# load_round NAME STATE: one start on the filled dir, seconds until DBSIZE = keys.
load_round() {
    local t0 secs
    dir="$work/$1-fill"
    port=$(free_port)
    t0=$EPOCHREALTIME
    launch "$1" everysec
    secs=$(helper wait-loaded "$port" "$keys" "$t0" 300 "$work/value") || die "$name: loading its AOF ($2)"
    stop_server
    res[$name,load_$2]+="$secs "
    log "$name: loaded the AOF ($2, $(aof_bytes "$dir") bytes) in $secs s"
}

fill() {
    local t0 dbsize
    dir="$work/$1-fill"
    mkdir -p "$dir"
    port=$(free_port)
    launch "$1" everysec
    wait_ping
    log "$name: filling $keys keys (appendfsync everysec)..."
    t0=$EPOCHREALTIME
    timeout 600 redis-cli -p "$port" --pipe <"$work/fill.resp" >"$dir/pipe.log" 2>&1 \
        || die "$name: redis-cli --pipe failed: $(tail -n 3 "$dir/pipe.log")"
    res[$name,fill_s]=$(elapsed "$t0")
    grep -q "errors: 0, replies: $keys" "$dir/pipe.log" || die "$name: fill: $(tail -n 1 "$dir/pipe.log")"
    dbsize=$(cli dbsize)
    [ "$dbsize" = "$keys" ] || die "$name: DBSIZE $dbsize after the fill, expected $keys"
    stop_server
    res[$name,fill_bytes]=$(aof_bytes "$dir")
    log "$name: filled in ${res[$name,fill_s]} s; AOF ${res[$name,fill_bytes]} bytes: $(ls "$dir/appendonlydir" | tr '\n' ' ')"
}

rewrite() {
    dir="$work/$1-fill"
    port=$(free_port)
    launch "$1" everysec
    helper wait-loaded "$port" "$keys" "$EPOCHREALTIME" 300 "$work/value" >/dev/null || die "$name: loading before BGREWRITEAOF"
    helper rewrite "$port" 300 >"$dir/rewrite.out" || die "$name: BGREWRITEAOF"
    while IFS='=' read -r k v; do res[$name,$k]=$v; done <"$dir/rewrite.out"
    [ "${res[$name,rewrite_status]}" = ok ] || die "$name: aof_last_bgrewrite_status:${res[$name,rewrite_status]}"
    stop_server
    res[$name,rewrite_bytes]=$(aof_bytes "$dir")
    log "$name: $(tr '\n' ' ' <"$dir/rewrite.out"); AOF ${res[$name,rewrite_bytes]} bytes: $(ls "$dir/appendonlydir" | tr '\n' ' ')"
}

# order ROUND: ferrokv first in odd rounds.
order() { [ $(($1 % 2)) = 1 ] && echo "ferrokv redis" || echo "redis ferrokv"; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$EPOCHREALTIME
log "work directory $work ($(fs_type "$work")); load average $load_before"

for round in $(seq "$rounds"); do
    for policy in no everysec always; do
        for server in $(order "$round"); do
            throughput "$round" "$policy" "$server"
        done
    done
done

log "generating the fill: $keys keys, $value_size-byte values..."
helper gen "$keys" "$value_size" "$work/fill.resp" "$work/value"
fill ferrokv
fill redis
rm -f "$work/fill.resp"
for round in $(seq "$rounds"); do
    for server in $(order "$round"); do load_round "$server" commands; done
done
rewrite ferrokv
rewrite redis
for round in $(seq "$rounds"); do
    for server in $(order "$round"); do load_round "$server" base; done
done
for server in ferrokv redis; do dir="$work/$server-fill"; keep_log "$server-fill"; done

# median "a b c ..."
median() {
    printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
mb() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1048576 }'; }
# row LABEL FERROKV REDIS [FORMAT]: ratio column ferrokv / redis.
row() {
    awk -v l="$1" -v f="$2" -v r="$3" -v fmt="${4:-%.1f}" 'BEGIN {
        printf "| %s | " fmt " | " fmt " | %s |\n", l, f, r, (r > 0 ? sprintf("%.2fx", f / r) : "-")
    }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

echo
echo "ferrokv-server (default shard threads) vs redis-server $("$redis" --version | awk '{ print $3 }' | tr -d 'v='), $(nproc) cores, nothing pinned;" \
    "AOF on $(df --output=source,fstype,target "$work" | tail -n 1 | awk '{ print $2 " (" $1 " on " $3 ")" }');" \
    "medians of $rounds rounds; load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after;" \
    "$(elapsed "$started") s"
echo
echo "| measure | ferrokv | redis | ferrokv/redis |"
echo "|---|---|---|---|"
declare -A med
for pipeline in 1 16; do
    for policy in no everysec always; do
        for server in ferrokv redis; do med[$server,$policy,$pipeline]=$(median "${res[$server,$policy,$pipeline]}"); done
        label="appendfsync $policy"
        [ "$policy" = no ] && label="appendonly no"
        row "SET/s P$pipeline, $label" "${med[ferrokv,$policy,$pipeline]}" "${med[redis,$policy,$pipeline]}" "%.0f"
    done
    echo "| SET/s P$pipeline, always / appendonly no | $(ratio "${med[ferrokv,always,$pipeline]}" "${med[ferrokv,no,$pipeline]}")" \
        "| $(ratio "${med[redis,always,$pipeline]}" "${med[redis,no,$pipeline]}") | - |"
done
row "fill $keys keys, redis-cli --pipe, everysec (s)" "${res[ferrokv,fill_s]}" "${res[redis,fill_s]}" "%.2f"
row "AOF size after the fill (MB)" "$(mb "${res[ferrokv,fill_bytes]}")" "$(mb "${res[redis,fill_bytes]}")"
row "start-up load, commands, until DBSIZE = $keys (s)" "$(median "${res[ferrokv,load_commands]}")" "$(median "${res[redis,load_commands]}")" "%.2f"
row "BGREWRITEAOF wall time (ms)" "${res[ferrokv,rewrite_ms]}" "${res[redis,rewrite_ms]}" "%.0f"
row "AOF size after BGREWRITEAOF (MB)" "$(mb "${res[ferrokv,rewrite_bytes]}")" "$(mb "${res[redis,rewrite_bytes]}")"
row "start-up load, RDB base, until DBSIZE = $keys (s)" "$(median "${res[ferrokv,load_base]}")" "$(median "${res[redis,load_base]}")" "%.2f"
echo
echo "redis-benchmark -t set -c 50 -d $value_size -r 1000000, -n $requests_p1 at P1 and $requests_p16 at P16;" \
    "every run on a fresh dir with --auto-aof-rewrite-percentage 0."
for policy in everysec always; do
    echo "AOF incr bytes per SET after appendfsync $policy (check, expect equal):" \
        "ferrokv $(median "${res[ferrokv,$policy,per_set]:-0}"), redis $(median "${res[redis,$policy,per_set]:-0}")"
done
for server in ferrokv redis; do
    echo "$server per round: P1 always ${res[$server,always,1]}| P16 always ${res[$server,always,16]}|" \
        "loads (commands) ${res[$server,load_commands]}| loads (base) ${res[$server,load_base]}"
done

# Server logs (at --loglevel warning) without the start-up and shutdown lines, times
# and pids cut off: anything left is worth a look.
logged=$(cat "$work"/logs/*.log 2>/dev/null \
    | sed -E 's/^[0-9]+:[A-Z] [0-9]+ [A-Za-z]+ [0-9]+ [0-9:.]+ [#*.-] //; s/^[0-9]+:signal-handler \([0-9]+\) //;
        s/^[0-9T:.-]+Z +//' \
    | grep -vE 'oO0OoO0OoO0Oo|^Redis version=|^Configuration loaded|^Server initialized|Memory overcommit must be enabled' \
    | grep -vE 'Received SIG(TERM|INT) scheduling shutdown|User requested shutdown|ready to exit, bye bye' \
    | sort | uniq -c | sort -rn | head -n 20 || true)
if [ -n "$logged" ]; then
    echo "server log lines other than start-up and shutdown (count, message):"
    printf '%s\n' "$logged"
fi
