#!/usr/bin/env bash
# A local ferrokv deployment on 127.0.0.1 for trying things by hand.
#
# Usage: deploy/local-cluster.sh start [--no-build]|stop|clean|status
#   start   build ferrokv-server (release) and start the nodes; pid files, logs and
#           data under deploy/local-cluster/ (gitignored); --no-build uses
#           target/release/ferrokv-server as it is
#   stop    stop the nodes (SIGTERM, then SIGKILL after 15 s). Idle nodes take about
#           0.15 s each (the signal is acted on at the next cron tick, as in Redis); a
#           master whose replica has not acknowledged its whole stream waits for it up
#           to shutdown-timeout (10 s), as redis-server does — e.g. a stop right after
#           start, while the replicas still do their first sync. (The 11.8 s once
#           measured for six idle nodes was this script waiting with kill -0 for the
#           exited nodes to be reaped: it now reads the process state.)
#   clean   stop, then remove deploy/local-cluster/
#   status  show which nodes run
#
# `start` runs 6 nodes on ports 7000-7005 with `--cluster-enabled yes` (one shard
# thread each) and joins them with `ferrokv-cli cluster create` (3 masters, 1 replica
# each); started again after `stop`, the nodes rejoin from their nodes.conf.
# `CLUSTER=no` runs one standalone node on port 7000 instead.
set -euo pipefail
cd "$(dirname "$0")/.."

base_dir=deploy/local-cluster
first_port=7000
CLUSTER=${CLUSTER:-yes}
if [ "$CLUSTER" = yes ]; then
    node_count=6
    replicas=1
else
    node_count=1
fi
server=target/release/ferrokv-server

ports() {
    seq "$first_port" $((first_port + node_count - 1))
}

# Ports of the nodes that have a directory, whatever CLUSTER was when they started.
known_ports() {
    local dir
    for dir in "$base_dir"/*/; do
        dir=$(basename "$dir")
        case "$dir" in ''|*[!0-9]*) ;; *) echo "$dir" ;; esac
    done
}

node_dir() { echo "$base_dir/$1"; }
pid_file() { echo "$(node_dir "$1")/ferrokv.pid"; }

running_pid() {
    local file
    file=$(pid_file "$1")
    [ -f "$file" ] || return 1
    local pid
    pid=$(cat "$file")
    # The PID must still be a ferrokv-server of ours (not a reused PID).
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
        && grep -q ferrokv-server "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

# alive PID: the process exists and has not exited. An exited node stays a zombie until
# whoever adopted it reaps it, which can take seconds: `kill -0` alone would wait for that.
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

start_node() {
    local port=$1 dir
    dir=$(node_dir "$port")
    if pid=$(running_pid "$port"); then
        echo "node $port already runs (pid $pid)"
        return
    fi
    mkdir -p "$dir"
    local args=(--port "$port" --bind 127.0.0.1 --dir "$(cd "$dir" && pwd)")
    if [ "$CLUSTER" = yes ]; then
        args+=(--cluster-enabled yes --cluster-config-file nodes.conf --server-threads 1)
    fi
    nohup "$server" "${args[@]}" >"$dir/ferrokv.log" 2>&1 </dev/null &
    echo $! >"$(pid_file "$port")"
    for _ in $(seq 100); do
        if target/release/ferrokv-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
            echo "node $port started (pid $(cat "$(pid_file "$port")"), log $dir/ferrokv.log)"
            return
        fi
        if ! kill -0 "$(cat "$(pid_file "$port")")" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "node $port did not answer PING; its log:" >&2
    cat "$dir/ferrokv.log" >&2
    exit 1
}

stop_node() {
    local port=$1 pid
    if ! pid=$(running_pid "$port"); then
        rm -f "$(pid_file "$port")"
        return
    fi
    kill -TERM "$pid"
    for _ in $(seq 300); do
        alive "$pid" || break
        sleep 0.05
    done
    if alive "$pid"; then
        echo "node $port ignored SIGTERM for 15 s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pid_file "$port")"
    echo "node $port stopped"
}

create_cluster() {
    local addresses=()
    for port in $(ports); do
        addresses+=("127.0.0.1:$port")
    done
    target/release/ferrokv-cli cluster create "${addresses[@]}" --replicas "$replicas" --yes
}

# Whether the nodes already formed a cluster (a restart after `stop`).
already_joined() {
    local conf="$base_dir/$first_port/nodes.conf"
    [ -f "$conf" ] && [ "$(grep -c ' master\| slave' "$conf")" -gt 1 ]
}

case "${1:-}" in
    start)
        if [ "${2:-}" != --no-build ]; then
            cargo build --release -p ferrokv-server -p ferrokv-cli
        fi
        [ -x "$server" ] || { echo "no $server: build it first" >&2; exit 1; }
        for port in $(ports); do
            start_node "$port"
        done
        if [ "$CLUSTER" = yes ]; then
            if already_joined; then
                # The nodes need a few gossip rounds to agree again: answer once every
                # one of them serves, as a fresh create does.
                for port in $(ports); do
                    for _ in $(seq 300); do
                        target/release/ferrokv-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
                        sleep 0.1
                    done
                done
                echo "nodes restarted from their nodes.conf"
            else
                create_cluster
            fi
            echo "connect: target/release/ferrokv-cli -c -p $first_port   (or redis-cli -c -p $first_port)"
        else
            echo "connect: target/release/ferrokv-cli -p $first_port   (or redis-cli -p $first_port)"
        fi
        ;;
    stop)
        for port in $(known_ports); do
            stop_node "$port"
        done
        ;;
    clean)
        for port in $(known_ports); do
            stop_node "$port"
        done
        rm -rf "$base_dir"
        echo "removed $base_dir"
        ;;
    status)
        for port in $(known_ports); do
            if pid=$(running_pid "$port"); then
                echo "node $port: running (pid $pid)"
            else
                echo "node $port: stopped"
            fi
        done
        ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 2
        ;;
esac
