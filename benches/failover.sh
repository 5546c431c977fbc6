#!/usr/bin/env bash
# Cluster failover in ferrokv-server against redis-server: how long after a master is
# SIGKILLed its replica accepts a write, and how long until every live node says
# cluster_state:ok again.
#
# R runs for each server (the server order alternates between runs); each run is a
# fresh 6-node cluster of one server on 127.0.0.1: every node with --bind 127.0.0.1,
# its own --port and --cluster-port (both free, below the ephemeral range), its own
# absolute --dir in one work directory on disk, --cluster-enabled yes
# --cluster-config-file nodes.conf --cluster-node-timeout 2000 --save ""
# --repl-diskless-sync-delay 0 (redis also --appendonly no), nothing pinned, ferrokv
# with its default shard threads (or --threads).
#  1. `redis-cli --cluster create <6 nodes> --cluster-replicas 1 --cluster-yes`, then
#     (bounded) until every node says cluster_state:ok, every node's CLUSTER NODES
#     lists the 6 nodes with none flagged fail, fail?, handshake or noaddr and 3 masters
#     holding all 16384 slots, and every replica's INFO replication says
#     master_link_status:up.
#  2. A master is picked (the three in turn over the runs, by their first slot) with
#     its replica, and a hash tag `{fo-<n>}` whose slot that master serves (checked
#     with CLUSTER KEYSLOT). `SET {fo-<n>}:before <value>` on the master, then WAIT 1
#     2000 must answer 1.
#  3. SIGKILL of the master (from the measuring process, which starts its clock
#     there). Every 10 ms: `SET {fo-<n>}:probe` sent straight to the replica's port
#     (it answers MOVED or CLUSTERDOWN until it is promoted) until +OK: the failover
#     time. Meanwhile, every 10 ms, each of the 5 live nodes' CLUSTER INFO and CLUSTER
#     NODES: the time the first node flags the dead master fail (detection), and the
#     time from which every live node says cluster_state:ok and lists the replica as a
#     master (convergence; before the failure is detected the nodes still say ok, so
#     the old view does not count). Both bounded at 60 s.
#  4. `{fo-<n>}:before` must read back from the promoted replica (not timed); then
#     the run's 6 processes are stopped.
# Prints a markdown table (median and worst, ratios ferrokv / redis), the replies the
# replica gave before the write succeeded, and server log lines worth a look.
#
# Usage: benches/failover.sh [--runs R] [--threads T] [--no-build]
#   --runs R      runs per server (default 10)
#   --threads T   ferrokv --server-threads (default: the server's default, all cores)
#   --no-build    use target/release/ferrokv-server as it is
# Environment: FERROKV_SERVER, REDIS_SERVER override the binaries; TMPDIR where the
# work directory goes (if tmpfs: /var/tmp, else target/).
# Every wait is bounded; at the defaults the run takes about 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=10
threads=
build=yes
while [ "$#" -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --no-build) build=no; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "--runs must be a positive number" >&2; exit 2; }
[ -z "$threads" ] || [[ "$threads" =~ ^[1-9][0-9]*$ ]] || { echo "--threads must be a positive number" >&2; exit 2; }

ferrokv=${FERROKV_SERVER:-target/release/ferrokv-server}
redis=${REDIS_SERVER:-redis-server}
for tool in "$redis" redis-cli python3 timeout df; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools python3)" >&2; exit 1; }
done
if [ "$build" = yes ] && [ -z "${FERROKV_SERVER:-}" ]; then
    cargo build --release -q -p ferrokv-server
fi
[ -x "$ferrokv" ] || { echo "no ferrokv-server at $ferrokv" >&2; exit 1; }
ferrokv=$(cd "$(dirname "$ferrokv")" && pwd -P)/$(basename "$ferrokv")

# On disk, as a deployment would be: both servers fsync nodes.conf as a failover
# completes.
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
work=$(mktemp -d "$base/ferrokv-failover.XXXXXX")
work=$(cd "$work" && pwd -P)
mkdir -p "$work/logs"

log() { echo "$*" >&2; }
# Every server this script started and still runs: pid -> its directory, and the
# subshell that waits for it (a server SIGKILLed as our own child would make bash
# print "Killed" with its command line).
declare -A running=() waiter=()
# stop PID: SIGTERM, up to 10 s, then SIGKILL; keeps its log.
stop() {
    local pid=$1 dir=${running[$1]:-}
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && log "pid $pid ($dir) still running 10 s after SIGTERM: killed"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    [ -z "${waiter[$pid]:-}" ] || wait "${waiter[$pid]}" 2>/dev/null || true
    unset "waiter[$pid]"
    if [ -n "$dir" ] && [ -s "$dir/log" ]; then
        cp "$dir/log" "$work/logs/$(basename "$(dirname "$dir")")-$(basename "$dir").log"
    fi
    unset "running[$pid]"
}
cleanup() {
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
            log "--- ${running[$pid]}/log (pid $pid, last 15 lines) ---"
            tail -n 15 "${running[$pid]}/log" >&2
        fi
    done
    exit 1
}

# A port below the kernel's ephemeral range, where client sockets get theirs.
ephemeral_low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$ephemeral_low" -gt 20100 ] || ephemeral_low=32768
taken=" "
# free_port: sets port to one nobody listens on and not handed out in this run (not
# in a subshell, so that taken remembers it).
free_port() {
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % (ephemeral_low - 20000)))
        [[ "$taken" != *" $port "* ]] || continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            taken+="$port "
            return
        fi
    done
    die "no free port found"
}

# The measuring side: a small RESP client, the cluster readers and the timed loop.
cat >"$work/helper.py" <<'PY'
import os, signal, socket, statistics, sys, time

from benchlib import RespError, Conn

def crc16(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc

def nodes(conn):
    """CLUSTER NODES as {id: (port, flags, master_id, [(first, last), ...])}."""
    reply = conn.call("CLUSTER", "NODES")
    if not isinstance(reply, str) or isinstance(reply, RespError):
        raise RuntimeError("CLUSTER NODES: %r" % reply)
    out = {}
    for line in reply.splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        port = int(f[1].split("@")[0].rsplit(":", 1)[1] or 0)
        ranges = []
        for s in f[8:]:
            if s.startswith("["):
                continue
            a, _, b = s.partition("-")
            ranges.append((int(a), int(b or a)))
        out[f[0]] = (port, set(f[2].split(",")), f[3], ranges)
    return out

BAD = {"fail", "fail?", "handshake", "noaddr"}

def ready_problem(ports):
    """None when the cluster is formed and healthy, else what is missing."""
    for port in ports:
        conn = Conn(port)
        state = conn.fields("CLUSTER", "INFO").get("cluster_state")
        if state != "ok":
            return "%d: cluster_state:%s" % (port, state)
        view = nodes(conn)
        if len(view) != len(ports):
            return "%d knows %d nodes" % (port, len(view))
        masters = [n for n in view.values() if "master" in n[1]]
        bad = [n for n in view.values() if n[1] & BAD]
        if bad:
            return "%d sees %s" % (port, ",".join(sorted(bad[0][1])))
        if len(masters) != len(ports) // 2 or sum(b - a + 1 for m in masters for a, b in m[3]) != 16384:
            return "%d sees %d masters" % (port, len(masters))
        if "slave" in view[[i for i, n in view.items() if "myself" in n[1]][0]][1]:
            link = conn.fields("INFO", "replication").get("master_link_status")
            if link != "up":
                return "%d: master_link_status:%s" % (port, link)
    return None

def wait_ready(ports, timeout):
    deadline = time.monotonic() + timeout
    problem = "?"
    while time.monotonic() < deadline:
        try:
            problem = ready_problem(ports)
        except (OSError, RuntimeError) as e:
            problem = str(e)
        if problem is None:
            return
        time.sleep(0.05)
    raise SystemExit("cluster not ready within %d s: %s" % (timeout, problem))

def pick(ports, run):
    """The run's master (the masters in turn, by first slot), its replica and a tag."""
    view = nodes(Conn(ports[0]))
    masters = sorted((min(n[3])[0], i) for i, n in view.items() if "master" in n[1] and n[3])
    master_id = masters[(run - 1) % len(masters)][1]
    replicas = [i for i, n in view.items() if n[2] == master_id]
    if len(replicas) != 1:
        raise SystemExit("master %s has %d replicas" % (master_id, len(replicas)))
    ranges = view[master_id][3]
    n = 0
    while not any(a <= crc16(b"fo-%d" % n) % 16384 <= b for a, b in ranges):
        n += 1
    tag = "fo-%d" % n
    slot = Conn(ports[0]).call("CLUSTER", "KEYSLOT", "{%s}:probe" % tag)
    if slot != crc16(tag.encode()) % 16384:
        raise SystemExit("CLUSTER KEYSLOT {%s}:probe says %r, CRC16 says %d" % (tag, slot, crc16(tag.encode()) % 16384))
    print("master_port=%d" % view[master_id][0])
    print("master_id=%s" % master_id)
    print("replica_port=%d" % view[replicas[0]][0])
    print("replica_id=%s" % replicas[0])
    print("tag=%s" % tag)
    print("slot=%d" % slot)

def failover(master_port, master_pid, replica_port, replica_id, master_id, tag, live, timeout):
    value = "before-%d" % master_pid
    conn = Conn(master_port)
    reply = conn.call("SET", "{%s}:before" % tag, value)
    if reply != "OK":
        raise SystemExit("SET on the master: %r" % reply)
    acked = conn.call("WAIT", 1, 2000)
    if acked != 1:
        raise SystemExit("WAIT 1 2000 on the master answered %r" % acked)
    conn.sock.close()

    os.kill(master_pid, signal.SIGKILL)
    t0 = time.monotonic()
    write_s = fail_s = converged_s = None
    replies = {}
    conns = {}
    probe = None
    while write_s is None or converged_s is None:
        now = time.monotonic() - t0
        if now > timeout:
            raise SystemExit("after %d s: write %s, FAIL seen %s, converged %s; replica replies %s"
                             % (timeout, write_s, fail_s, converged_s, replies))
        if write_s is None:
            try:
                probe = probe or Conn(replica_port, timeout=2)
                reply = probe.call("SET", "{%s}:probe" % tag, "after")
                if reply == "OK":
                    write_s = time.monotonic() - t0
                else:
                    word = str(reply).split(" ")[0]
                    replies[word] = replies.get(word, 0) + 1
            except OSError as e:
                probe = None
                replies[type(e).__name__] = replies.get(type(e).__name__, 0) + 1
        if converged_s is None:
            all_ok = True
            for port in live:
                try:
                    c = conns.get(port) or Conn(port, timeout=2)
                    conns[port] = c
                    state = c.fields("CLUSTER", "INFO").get("cluster_state")
                    view = nodes(c)
                except (OSError, RuntimeError):
                    conns.pop(port, None)
                    all_ok = False
                    continue
                dead = view.get(master_id)
                if fail_s is None and dead and "fail" in dead[1]:
                    fail_s = time.monotonic() - t0
                promoted = view.get(replica_id)
                if state != "ok" or not promoted or "master" not in promoted[1]:
                    all_ok = False
            if all_ok:
                converged_s = time.monotonic() - t0
        time.sleep(0.01)
    got = Conn(replica_port).call("GET", "{%s}:before" % tag)
    if got != value:
        raise SystemExit("GET {%s}:before on the promoted replica: %r (WAIT had acknowledged %r)" % (tag, got, value))
    print("write_s=%.3f" % write_s)
    print("converged_s=%.3f" % converged_s)
    print("fail_s=%.3f" % (fail_s if fail_s is not None else converged_s))
    print("replies=%s" % ",".join("%s*%d" % kv for kv in sorted(replies.items())))

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "ready":
    wait_ready([int(p) for p in args[1:]], int(args[0]))
elif cmd == "pick":
    pick([int(p) for p in args[1:]], int(args[0]))
elif cmd == "failover":
    failover(int(args[0]), int(args[1]), int(args[2]), args[3], args[4], args[5], [int(p) for p in args[7:]],
             int(args[6]))
else:
    raise SystemExit("unknown helper command " + cmd)
PY
helper() { PYTHONPATH="$PWD/benches/lib" python3 "$work/helper.py" "$@"; }

# launch ferrokv|redis DIR PORT BUSPORT: starts one cluster node; sets launched_pid.
launch() {
    local server=$1 dir=$2 port=$3 bus=$4
    mkdir -p "$dir"
    local opts=(--port "$port" --cluster-port "$bus" --bind 127.0.0.1 --dir "$dir" --cluster-enabled yes
        --cluster-config-file nodes.conf --cluster-node-timeout 2000 --save "" --repl-diskless-sync-delay 0
        --loglevel warning)
    if [ "$server" = ferrokv ]; then
        [ -z "$threads" ] || opts+=(--server-threads "$threads")
        opts=("$ferrokv" "${opts[@]}")
    else
        opts=("$redis" "${opts[@]}" --appendonly no --daemonize no)
    fi
    rm -f "$dir/pid"
    ( "${opts[@]}" >>"$dir/log" 2>&1 & echo $! >"$dir/pid"; wait $! ) 2>/dev/null &
    local waiting=$!
    for _ in $(seq 100); do [ -s "$dir/pid" ] && break; sleep 0.05; done
    [ -s "$dir/pid" ] || { wait "$waiting" 2>/dev/null || true; die "$server on port $port did not start"; }
    launched_pid=$(cat "$dir/pid")
    running[$launched_pid]=$dir
    waiter[$launched_pid]=$waiting
}
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
# order RUN: ferrokv first in odd runs.
order() { [ $(($1 % 2)) = 1 ] && echo "ferrokv redis" || echo "redis ferrokv"; }

declare -A res=()

# one_run RUN NAME: a fresh cluster, one failover, its processes stopped.
one_run() {
    local run=$1 name=$2 i port ports=() pids=() out k v
    local -A pick=() pid_of=()
    local dir="$work/$name-$run"
    taken=" "
    for i in 1 2 3 4 5 6; do
        free_port
        local bus=$port
        free_port
        launch "$name" "$dir/node$i" "$port" "$bus"
        ports+=("$port")
        pids+=("$launched_pid")
        pid_of[$port]=$launched_pid
    done
    for i in "${!ports[@]}"; do
        for _ in $(seq 100); do
            [ "$(redis-cli -p "${ports[$i]}" ping 2>/dev/null)" = PONG ] && break
            kill -0 "${pids[$i]}" 2>/dev/null || die "$name node on port ${ports[$i]} exited at start"
            sleep 0.1
        done
    done
    local t0=$EPOCHREALTIME
    timeout 120 redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") --cluster-replicas 1 --cluster-yes \
        >"$dir/create.log" 2>&1 || die "$name: redis-cli --cluster create failed: $(tail -n 5 "$dir/create.log")"
    helper ready 60 "${ports[@]}" || die "$name: the cluster did not come up"
    res[$name,setup_s]+="$(elapsed "$t0") "
    out=$(helper pick "$run" "${ports[@]}") || die "$name: picking the master"
    while IFS='=' read -r k v; do pick[$k]=$v; done <<<"$out"
    local live=()
    for port in "${ports[@]}"; do [ "$port" = "${pick[master_port]}" ] || live+=("$port"); done
    out=$(helper failover "${pick[master_port]}" "${pid_of[${pick[master_port]}]}" "${pick[replica_port]}" \
        "${pick[replica_id]}" "${pick[master_id]}" "${pick[tag]}" 60 "${live[@]}") \
        || die "$name: failover of the master on port ${pick[master_port]} (slot ${pick[slot]})"
    while IFS='=' read -r k v; do res[$name,$k]+="$v "; done <<<"$out"
    log "run $run $name: master :${pick[master_port]} killed, slot ${pick[slot]}; $(tr '\n' ' ' <<<"$out")"
    for i in "${pids[@]}"; do stop "$i"; done
    rm -rf "$dir"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$EPOCHREALTIME
for run in $(seq "$runs"); do
    for server in $(order "$run"); do one_run "$run" "$server"; done
done

# median "a b c ..."
median() {
    printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
worst() { printf '%s\n' $1 | sort -g | tail -n 1; }
best() { printf '%s\n' $1 | sort -g | head -n 1; }
# row LABEL FERROKV REDIS: ratio column ferrokv / redis.
row() {
    awk -v l="$1" -v f="$2" -v r="$3" 'BEGIN {
        printf "| %s | %.3f | %.3f | %s |\n", l, f, r, (r > 0 ? sprintf("%.2fx", f / r) : "-")
    }'
}

echo
echo "ferrokv-server ($([ -n "$threads" ] && echo "--server-threads $threads" || echo "default shard threads"))" \
    "vs redis-server $("$redis" --version | awk '{ print $3 }' | tr -d 'v='), $(nproc) cores, nothing pinned;" \
    "6-node clusters (3 masters, 3 replicas) on 127.0.0.1, cluster-node-timeout 2000; $runs runs each;" \
    "nodes.conf on $(fs_type "$work"); load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after;" \
    "$(elapsed "$started") s"
echo
echo "| seconds after SIGKILL of a master | ferrokv | redis | ferrokv/redis |"
echo "|---|---|---|---|"
for field in write_s:"first write accepted by the replica" fail_s:"first node flags the master fail" \
    converged_s:"every live node cluster_state:ok, replica a master"; do
    key=${field%%:*}
    label=${field#*:}
    row "$label, median" "$(median "${res[ferrokv,$key]}")" "$(median "${res[redis,$key]}")"
    row "$label, worst" "$(worst "${res[ferrokv,$key]}")" "$(worst "${res[redis,$key]}")"
done
row "first write accepted, best" "$(best "${res[ferrokv,write_s]}")" "$(best "${res[redis,write_s]}")"
echo
echo "Polled every 10 ms: SET to the replica's port; CLUSTER INFO and CLUSTER NODES on the 5 live nodes."
for server in ferrokv redis; do
    echo "$server per run: write ${res[$server,write_s]}| converged ${res[$server,converged_s]}|" \
        "cluster create to ready (s) ${res[$server,setup_s]}"
    echo "$server replica replies before the write succeeded: $(tr ' ' '\n' <<<"${res[$server,replies]}" \
        | tr ',' '\n' | awk -F'*' 'NF == 2 { n[$1] += $2 } END { for (k in n) printf "%s %d, ", k, n[k] }' | sed 's/, $//')"
done

# Server logs (at --loglevel warning) without the start-up and shutdown lines, times,
# pids, ports and node ids cut off: anything left is worth a look.
for server in ferrokv redis; do
    logged=$(cat "$work"/logs/$server-*.log 2>/dev/null \
        | sed -E 's/^[0-9]+:[A-Z] [0-9]+ [A-Za-z]+ [0-9]+ [0-9:.]+ [#*.-] //; s/^[0-9]+:signal-handler \([0-9]+\) //;
            s/^[0-9T:.-]+Z +(TRACE|DEBUG|INFO|WARN|ERROR) +//; s/127\.0\.0\.1:[0-9]+(@[0-9]+)?/127.0.0.1:<port>/g;
            s/[0-9a-f]{40}/<id>/g; s/(epoch|set to) [0-9]+/\1 <n>/g' \
        | grep -vE 'oO0OoO0OoO0Oo|^Redis version=|^Configuration loaded|^Server initialized|Memory overcommit must be enabled' \
        | grep -vE 'Received SIG(TERM|INT) scheduling shutdown|User requested shutdown|ready to exit, bye bye' \
        | sort | uniq -c | sort -rn | head -n 15 || true)
    if [ -n "$logged" ]; then
        echo "$server log lines other than start-up and shutdown (count, message):"
        printf '%s\n' "$logged"
    fi
done
