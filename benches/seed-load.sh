#!/usr/bin/env bash
# The seed-000 bulk load (issue 12): KEYS keys with a TTL written as the seed's loader
# writes them — MULTI, then SET key value and EXPIRE key seconds for each of 1,000
# keys, EXEC — over CONNS connections (one `redis-cli --pipe` each, fed by its own
# generator), into one cluster-mode node owning all 16384 slots. A transaction's keys
# share a hash tag, as a cluster loader must group them: keys `{NNNNNNN}k:NNN` (15
# bytes), 16-byte values, TTLs of 100000..100999 s. Prints the time, the load rate,
# and VmRSS / used_memory growth per key at the end.
#
# Usage: benches/seed-load.sh ferrokv|redis KEYS [CONNS] [extra server args...]
set -euo pipefail
cd "$(dirname "$0")/.."
kind=$1 keys=$2 conns=${3:-4}
shift 2; [ $# -gt 0 ] && shift
FERROKV=${FERROKV_SERVER:-${CARGO_TARGET_DIR:-target}/release/ferrokv-server}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c '
import random, socket
while True:
    p = random.randint(20000, 50000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass')
copts=(--cluster-enabled yes --cluster-config-file "$work/nodes.conf")
if [ "$kind" = ferrokv ]; then
    "$FERROKV" --port "$port" --save "" --appendonly no --dir "$work" --loglevel warning "${copts[@]}" "$@" >"$work/log" 2>&1 &
else
    redis-server --port "$port" --save "" --appendonly no --dir "$work" --loglevel warning "${copts[@]}" "$@" >"$work/log" 2>&1 &
fi
pid=$!
for _ in $(seq 600); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$port" cluster addslotsrange 0 16383 >/dev/null
for _ in $(seq 100); do redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' && break; sleep 0.1; done
rss0=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
used0=$(redis-cli -p "$port" info memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}')

gen() { # CONN: the batches b with b % conns == conn
    python3 - "$1" "$conns" "$keys" <<'PY'
import sys
conn, conns, keys = map(int, sys.argv[1:])
def cmd(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
value = b"v" * 16
parts = [cmd(b"MULTI")]
for i in range(1000):
    k = b"{#######}k:%03d" % i
    parts.append(cmd(b"SET", k, value))
    parts.append(cmd(b"EXPIRE", k, b"%d" % (100000 + i)))
parts.append(cmd(b"EXEC"))
template = b"".join(parts)
out = sys.stdout.buffer
batches = keys // 1000
for b in range(conn, batches, conns):
    out.write(template.replace(b"#######", b"%07d" % b))
PY
}
start=$(date +%s.%N)
for c in $(seq 0 $((conns - 1))); do
    gen "$c" | redis-cli -p "$port" --pipe >"$work/pipe$c.log" 2>&1 &
done
wait $(jobs -p | grep -v "^$pid\$") 2>/dev/null || true
end=$(date +%s.%N)
n=$(redis-cli -p "$port" dbsize)
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
used=$(redis-cli -p "$port" info memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}')
grep -h 'errors' "$work"/pipe*.log | head -3
python3 -c "
t = $end - $start
print('$kind: %d keys in %.1f s, %.0f keys/s; RSS %.2f GB, %.1f B/key; used_memory %.1f B/key' % ($n, t, $n / t, $rss / 1048576, ($rss - $rss0) * 1024 / $n, ($used - $used0) / $n))"
