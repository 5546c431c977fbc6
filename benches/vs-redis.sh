#!/usr/bin/env bash
# ferrokv-server against redis-server, one core each, driven by redis-benchmark.
#
# Each round starts ferrokv-server and redis-server in turn (the order alternates
# between rounds), each pinned to core 0 (`--threads 2`: ferrokv on cores 0-1 with two
# shard threads), runs redis-benchmark pinned to core 1 — SET and GET, 50 clients,
# pipeline 1 and 16, 100000 random keys — and reads the server's CPU time (utime +
# stime from /proc/PID/stat) around each run. Prints a markdown table of medians over
# the rounds: requests per second, and CPU seconds per million requests.
#
# Usage: benches/vs-redis.sh [--rounds N] [--seconds S] [--threads 1|2] [--no-build]
#   --rounds N    rounds (default 3)
#   --seconds S   target length of one benchmark run (default 6); the request count is
#                 calibrated once against redis-server so both servers get the same
#   --threads T   ferrokv shard threads: 1 (default) or 2 (shows the cross-core cost:
#                 keys spread over both shards, benchmark shares core 1)
#   --no-build    use target/release/ferrokv-server as it is
#   --baseline B  also run ferrokv-server binary B (e.g. a build of the commit before a
#                 change) in every round, in turn with the others: the table gains its
#                 figures and the ratio of ferrokv to it (before/after in one run)
# Environment: FERROKV_SERVER, REDIS_SERVER, REDIS_BENCHMARK override the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
seconds=6
threads=1
build=yes
baseline=
while [ "$#" -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --no-build) build=no; shift ;;
        --baseline) baseline=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$threads" in 1|2) ;; *) echo "--threads must be 1 or 2" >&2; exit 2 ;; esac

ferrokv=${FERROKV_SERVER:-target/release/ferrokv-server}
redis=${REDIS_SERVER:-redis-server}
benchmark=${REDIS_BENCHMARK:-redis-benchmark}
for tool in "$redis" "$benchmark" taskset redis-cli; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools util-linux)" >&2; exit 1; }
done
if [ "$(nproc)" -lt 2 ]; then
    echo "needs 2 cores (server on core 0, redis-benchmark on core 1)" >&2
    exit 1
fi
if [ "$build" = yes ] && [ -z "${FERROKV_SERVER:-}" ]; then
    cargo build --release -q -p ferrokv-server
fi
[ -x "$ferrokv" ] || { echo "no ferrokv-server at $ferrokv" >&2; exit 1; }
[ -z "$baseline" ] || [ -x "$baseline" ] || { echo "no baseline ferrokv-server at $baseline" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ferrokv-bench.XXXXXX")
server_pid=
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port below the kernel's ephemeral range: redis-benchmark's client sockets (and
# their TIME_WAIT entries) take ports from that range, and a server cannot bind one of
# them ("Address already in use": seen once with a range overlapping it).
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

# start_server ferrokv|base|redis: sets server_pid and port.
start_server() {
    local name=$1 dir="$work/$1"
    rm -rf "$dir" && mkdir -p "$dir"
    port=$(free_port)
    if [ "$name" = ferrokv ] || [ "$name" = base ]; then
        local cores=0 binary=$ferrokv
        [ "$threads" = 2 ] && cores=0,1
        [ "$name" = base ] && binary=$baseline
        taskset -c "$cores" "$binary" --port "$port" --bind 127.0.0.1 --dir "$dir" \
            --server-threads "$threads" --loglevel warning >"$dir/log" 2>&1 &
    else
        taskset -c 0 "$redis" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" \
            --appendonly no --daemonize no --loglevel warning >"$dir/log" 2>&1 &
    fi
    server_pid=$!
    for _ in $(seq 100); do
        if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
            return
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$name did not answer PING on port $port; its log:" >&2
    cat "$dir/log" >&2
    exit 1
}

ticks_per_second=$(getconf CLK_TCK)
cpu_ticks() {
    # Fields 14 and 15 of /proc/PID/stat (utime, stime), counted after the command
    # name, which is in parentheses and may hold spaces.
    local stat
    stat=$(cat "/proc/$server_pid/stat")
    stat=${stat##*) }
    set -- $stat
    echo $(( ${12} + ${13} ))
}

# bench TEST PIPELINE REQUESTS: prints "rps cpu_seconds".
bench() {
    local test=$1 pipeline=$2 requests=$3 before after out rps
    before=$(cpu_ticks)
    out=$(timeout 300 taskset -c 1 "$benchmark" -h 127.0.0.1 -p "$port" -t "$test" -c 50 -P "$pipeline" \
        -n "$requests" -r 100000 --csv 2>/dev/null)
    after=$(cpu_ticks)
    rps=$(printf '%s\n' "$out" | awk -F'"' 'NR > 1 && $2 != "" { print $4; exit }')
    [ -n "$rps" ] || { echo "redis-benchmark $test -P $pipeline gave no result: $out" >&2; exit 1; }
    echo "$rps $(awk -v t=$((after - before)) -v hz="$ticks_per_second" 'BEGIN { printf "%.3f", t / hz }')"
}

rows=("set 1" "get 1" "set 16" "get 16")

# Request counts: calibrated once against redis-server for the target run length.
echo "calibrating request counts for ~${seconds}s runs against redis-server..." >&2
start_server redis
declare -A requests
for row in "${rows[@]}"; do
    set -- $row
    probe=$(( $2 == 1 ? 20000 : 200000 ))
    result=$(bench "$1" "$2" "$probe")
    read -r rps _ <<<"$result"
    n=$(awk -v r="$rps" -v s="$seconds" 'BEGIN { n = int(r * s / 1000) * 1000; if (n < 10000) n = 10000; print n }')
    requests[$row]=$n
done
stop_server

declare -A results
for round in $(seq "$rounds"); do
    order="ferrokv redis"
    [ $((round % 2)) = 0 ] && order="redis ferrokv"
    if [ -n "$baseline" ]; then
        case $((round % 3)) in
            1) order="ferrokv base redis" ;;
            2) order="base redis ferrokv" ;;
            0) order="redis ferrokv base" ;;
        esac
    fi
    for name in $order; do
        start_server "$name"
        for row in "${rows[@]}"; do
            set -- $row
            result=$(bench "$1" "$2" "${requests[$row]}")
            read -r rps cpu <<<"$result"
            results[$name,$row]+="$rps $cpu;"
            echo "round $round $name ${1^^} P$2: $rps rps, ${cpu}s CPU for ${requests[$row]} requests" >&2
        done
        stop_server
    done
done

# median COLUMN(1=rps 2=cpu) "a b;c d;..."
median() {
    printf '%s' "$2" | tr ';' '\n' | awk -v c="$1" 'NF { print $c }' | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "ferrokv-server --server-threads $threads (cores $([ "$threads" = 2 ] && echo 0-1 || echo 0)) vs redis-server $("$redis" --version | awk '{print $3}' | tr -d 'v=') (core 0);" \
    "redis-benchmark on core 1, 50 clients, 100000 keys; medians of $rounds rounds"
echo
# table OTHER DIGITS: ferrokv against server OTHER (redis or base), ratios to DIGITS places.
table() {
    local other=$1 digits=$2 label=$1
    [ "$other" = base ] && label=baseline
    echo "| test | ferrokv rps | $label rps | rps ratio | ferrokv CPU s/1M req | $label CPU s/1M req | CPU ratio |"
    echo "|---|---|---|---|---|---|---|"
    for row in "${rows[@]}"; do
        set -- $row
        n=${requests[$row]}
        f_rps=$(median 1 "${results[ferrokv,$row]}")
        o_rps=$(median 1 "${results[$other,$row]}")
        f_cpu=$(median 2 "${results[ferrokv,$row]}")
        o_cpu=$(median 2 "${results[$other,$row]}")
        awk -v name="${1^^} P$2" -v fr="$f_rps" -v orps="$o_rps" -v fc="$f_cpu" -v oc="$o_cpu" -v n="$n" -v d="$digits" 'BEGIN {
            fcm = fc / n * 1e6; ocm = oc / n * 1e6; ratio = "%." d "fx"
            printf "| %s | %.0f | %.0f | " ratio " | %.2f | %.2f | %s |\n", name, fr, orps, (orps > 0 ? fr / orps : 0), fcm, ocm,
                (ocm > 0 ? sprintf(ratio, fcm / ocm) : "-")
        }'
    done
}
table redis 2
if [ -n "$baseline" ]; then
    echo
    echo "ferrokv-server ($ferrokv) against the baseline ($baseline), same rounds:"
    echo
    table base 3
fi
