#!/usr/bin/env bash
# Issue 14's figures: ferrokv-server against redis-server in the same run.
#
#  1. EVALSHA of the distributed-lock unlock script
#       if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end
#     with redis-benchmark (50 clients, pipeline 1 and 16, keys lock:<random of 100000>,
#     half of them held by the token so both branches run). Servers on core 0 (ferrokv
#     with one shard thread), redis-benchmark on core 1: requests per second.
#  2. PUBLISH fan-out: 1 and 100 subscribers (raw sockets in one Python process that only
#     counts message frames) on one channel, redis-benchmark publishing 64-byte messages
#     (50 clients, pipeline 16). ferrokv runs two shard threads, so subscribers and
#     publishers sit on both cores; redis-server is one thread. Figures: PUBLISH calls
#     per second and messages delivered per second (counted by the subscribers).
#
# Each round runs both servers (the order alternates); the table shows medians.
# --only eval runs part 1 alone; --baseline BIN adds a third server, another
# ferrokv-server binary (e.g. one built before a change), measured in the same rounds.
# Usage: benches/scripting-pubsub.sh [--rounds N] [--requests N] [--no-build]
#        [--only eval|publish] [--baseline BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
requests=200000
build=yes
only=
baseline=
while [ "$#" -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --requests) requests=$2; shift 2 ;;
        --no-build) build=no; shift ;;
        --only) only=$2; shift 2 ;;
        --baseline) baseline=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
target=${CARGO_TARGET_DIR:-target}
ferrokv=${FERROKV_SERVER:-$target/release/ferrokv-server}
if [ "$build" = yes ] && [ -z "${FERROKV_SERVER:-}" ]; then cargo build --release -q -p ferrokv-server; fi
for tool in redis-server redis-benchmark redis-cli taskset python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/ferrokv-bench.XXXXXX")
pid=
stop() {
    [ -n "$pid" ] || return 0
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}
trap 'stop; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start KIND THREADS CPUS
start() {
    port=$(free_port)
    if [ "$1" = redis ]; then
        taskset -c "$3" redis-server --port "$port" --save '' --appendonly no --dir "$work" >/dev/null 2>&1 &
    else
        local bin=$ferrokv
        [ "$1" = baseline ] && bin=$baseline
        taskset -c "$3" "$bin" --port "$port" --server-threads "$2" --save '' --dir "$work" >/dev/null 2>&1 &
    fi
    pid=$!
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
    echo "server did not start" >&2; exit 1
}

rps() { sed -n 's/.*requests per second.*//;s/^.*: \([0-9.]*\) requests per second.*$/\1/p' | tail -1; }

unlock='if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end'
evalsha() { # P -> rps
    local sha
    sha=$(redis-cli -p "$port" script load "$unlock")
    # Half the locks are held by the benchmark's token: those take the DEL branch once.
    redis-cli -p "$port" eval 'for i = 0, 99999, 2 do redis.call("SET", string.format("lock:%012d", i), "tok") end' 0 >/dev/null
    taskset -c 1 redis-benchmark -p "$port" -c 50 -P "$1" -n "$requests" -r 100000 --csv \
        EVALSHA "$sha" 1 lock:__rand_int__ tok | tail -1 | cut -d, -f2 | tr -d '"'
}

cat >"$work/subs.py" <<'EOF'
import select, socket, sys, time
port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n")
    socks.append(s)
for s in socks:
    buf = b""
    while buf.count(b"\r\n") < 6:
        buf += s.recv(4096)
print("ready", flush=True)
count, tail = 0, {s: b"" for s in socks}
end = time.time() + seconds
while socks and time.time() < end:
    r, _, _ = select.select(socks, [], [], 0.2)
    for s in r:
        chunk = s.recv(1 << 20)
        if not chunk:
            socks.remove(s)
            continue
        data = tail[s] + chunk
        count += data.count(b"$7\r\nmessage\r\n")
        tail[s] = data[-16:]
        count -= tail[s].count(b"$7\r\nmessage\r\n")
print(count, flush=True)
EOF

publish() { # SUBSCRIBERS -> "publish_rps delivered_per_s"
    local subs=$1 out
    # Every call is delivered `subs` times: fewer calls for the wide fan-out.
    local calls=$((requests / (subs > 1 ? 10 : 1)))
    exec 3< <(python3 "$work/subs.py" "$port" "$subs" 30)
    read -r _ <&3
    local t0 t1 n
    t0=$(date +%s.%N)
    n=$(taskset -c 1 redis-benchmark -p "$port" -c 50 -P 16 -n "$calls" --csv \
        PUBLISH ch 0123456789012345678901234567890123456789012345678901234567890123 | tail -1 | cut -d, -f2 | tr -d '"')
    t1=$(date +%s.%N)
    # Delivered/s over the benchmark's duration; the subscribers are closed once the
    # messages still in flight have arrived.
    local got
    sleep 0.5
    redis-cli -p "$port" client kill type pubsub >/dev/null 2>&1 || true
    got=$(tail -1 <&3)
    exec 3<&-
    python3 -c "print(f'{float($n):.0f} {float($got)/($t1-$t0):.0f}')"
}

declare -A res
kinds="redis ferrokv"
[ -n "$baseline" ] && kinds="redis baseline ferrokv"
for r in $(seq "$rounds"); do
    order=$kinds; [ $((r % 2)) -eq 0 ] && order=$(echo "$kinds" | tr ' ' '\n' | tac | tr '\n' ' ')
    for kind in $order; do
        if [ "$only" != publish ]; then
            start "$kind" 1 0
            for p in 1 16; do res[$kind,eval$p]+="$(evalsha "$p") "; done
            stop
        fi
        [ "$only" = eval ] && continue
        if [ "$kind" = redis ]; then start redis 1 0; else start "$kind" 2 0-1; fi
        for s in 1 100; do
            read -r pr dl < <(publish "$s")
            res[$kind,pub$s]+="$pr "
            res[$kind,del$s]+="$dl "
        done
        stop
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
if [ -n "$baseline" ]; then
    echo "| figure | redis-server | ferrokv baseline | ferrokv | baseline ratio | ratio |"
    echo "|---|---|---|---|---|---|"
else
    echo "| figure | redis-server | ferrokv | ratio |"
    echo "|---|---|---|---|"
fi
rows=("eval1:EVALSHA unlock P1 (req/s)" "eval16:EVALSHA unlock P16 (req/s)"
      "pub1:PUBLISH, 1 subscriber (calls/s)" "del1:messages delivered/s, 1 subscriber"
      "pub100:PUBLISH, 100 subscribers (calls/s)" "del100:messages delivered/s, 100 subscribers")
for row in "${rows[@]}"; do
    k=${row%%:*}; name=${row#*:}
    [ -n "${res[redis,$k]:-}" ] || continue
    a=$(echo "${res[redis,$k]}" | median); b=$(echo "${res[ferrokv,$k]}" | median)
    if [ -n "$baseline" ]; then
        c=$(echo "${res[baseline,$k]}" | median)
        python3 -c "print(f'| $name | {float($a):.0f} | {float($c):.0f} | {float($b):.0f} | {float($c)/max(float($a),1):.2f}x | {float($b)/max(float($a),1):.2f}x |')"
    else
        python3 -c "print(f'| $name | {float($a):.0f} | {float($b):.0f} | {float($b)/max(float($a),1):.2f}x |')"
    fi
done
echo "(every run per figure, in round order: $(for k in $kinds; do printf '%s: ' "$k"; for f in eval1 eval16; do printf '%s[%s] ' "$f" "${res[$k,$f]:-}"; done; done))"
