# Sourced by benches/memory.sh and memory-churn.sh (from the repository root, with
# FERROKV, REDIS, cluster (0/1) and the pids array set):
#
#   free_port                  a port in 20000..50000 free on 127.0.0.1 together with
#                              its cluster bus port (+10000; an ephemeral port's bus
#                              port can be past 65535)
#   start_server KIND DIR [ARGS...]
#                              starts ferrokv (one shard, ARGS added) or redis-server
#                              pinned to core 0, in DIR, on a free port, cluster mode
#                              with every slot when cluster=1; sets `pid` and `port`
#                              and returns once it answers
#   rss_kb PID, used_memory PORT
free_port() {
    python3 - <<'PY'
import random, socket
while True:
    p = random.randint(20000, 50000)
    try:
        for q in (p, p + 10000):
            s = socket.socket()
            s.bind(("127.0.0.1", q))
            s.close()
        print(p)
        break
    except OSError:
        pass
PY
}

start_server() {
    local kind=$1 dir=$2
    shift 2
    port=$(free_port)
    mkdir -p "$dir"
    local copts=()
    [ "$cluster" = 1 ] && copts=(--cluster-enabled yes --cluster-config-file "$dir/nodes.conf")
    if [ "$kind" = ferrokv ]; then
        taskset -c 0 "$FERROKV" --port "$port" --server-threads 1 --dir "$dir" --loglevel warning "${copts[@]}" "$@" >"$dir/log" 2>&1 &
    else
        taskset -c 0 "$REDIS" --port "$port" --save "" --appendonly no --dir "$dir" --loglevel warning "${copts[@]}" >"$dir/log" 2>&1 &
    fi
    pid=$!
    pids+=("$pid")
    for _ in $(seq 600); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    if [ "$cluster" = 1 ]; then
        redis-cli -p "$port" cluster addslotsrange 0 16383 >/dev/null
        for _ in $(seq 100); do
            redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' && break
            sleep 0.1
        done
    fi
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
used_memory() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}'; }
