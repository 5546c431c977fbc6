#!/usr/bin/env bash
# Memory after churn: RSS per live key in ferrokv-server and redis-server when values
# change size, keys are deleted and new ones added (the holes variable-size records
# leave behind).
#
# The same command streams (made once, seeded) go to a fresh server of each kind (one
# shard thread for ferrokv; both pinned to core 0) through `redis-cli --pipe`:
#   load      1,000,000 SET key:NNNNNNNNNN (14 bytes) with a 16-byte value
#   round r   (r = 1..ROUNDS) every live key overwritten with a value of a random size
#             (1..200 bytes), half of the live keys deleted at random, then new keys
#             added back to 1,000,000 live keys with random sizes
# After each phase the script prints VmRSS and INFO used_memory per live key (growth
# over the empty server) and, for ferrokv, then waits IDLE seconds and prints it again
# (compaction works in idle time). A fresh load of the last round's final data set is
# the reference: what the same keys and values cost without churn.
#
# Usage: benches/memory-churn.sh [--no-build] [--cluster] [--rounds N] [--idle SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
cluster=0
rounds=3
idle=5
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --cluster) cluster=1 ;;
        --rounds) rounds="$2"; shift ;;
        --idle) idle="$2"; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$build" = 1 ] && cargo build --release -p ferrokv-server >/dev/null
FERROKV=${FERROKV_SERVER:-${CARGO_TARGET_DIR:-target}/release/ferrokv-server}
REDIS=${REDIS_SERVER:-redis-server}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT

. benches/lib/memory-server.sh

# The phases' command streams: load.resp, r1.resp ... and final.resp (a fresh load of
# the last state).
python3 - "$work" "$rounds" <<'PY'
import random, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rng = random.Random(12)
N = 1_000_000
def cmd(out, *args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.append(b"".join(parts))
live = {}
nxt = 0
def key(i):
    return b"key:%010d" % i
out = []
for i in range(N):
    live[i] = b"v" * 16
    cmd(out, b"SET", key(i), live[i])
nxt = N
open(f"{work}/load.resp", "wb").write(b"".join(out))
for r in range(1, rounds + 1):
    out = []
    for i in live:
        live[i] = b"w" * rng.randint(1, 200)
        cmd(out, b"SET", key(i), live[i])
    ids = list(live)
    rng.shuffle(ids)
    for i in ids[: len(ids) // 2]:
        del live[i]
        cmd(out, b"DEL", key(i))
    while len(live) < N:
        live[nxt] = b"x" * rng.randint(1, 200)
        cmd(out, b"SET", key(nxt), live[nxt])
        nxt += 1
    open(f"{work}/r{r}.resp", "wb").write(b"".join(out))
out = []
for i, v in live.items():
    cmd(out, b"SET", key(i), v)
open(f"{work}/final.resp", "wb").write(b"".join(out))
PY

start() { # KIND -> "pid port"
    local pid port
    # shellcheck disable=SC2086 # FERROKV_ARGS: extra options, split on spaces
    start_server "$1" "$(mktemp -d "$work/$1-XXXX")" ${FERROKV_ARGS:-}
    echo "$pid $port"
}

# run KIND PHASES... -> one line "phase rss/key used/key" per phase (and idle)
run() {
    local kind=$1; shift
    local pid port rss0 used0
    read -r pid port < <(start "$kind")
    rss0=$(rss_kb "$pid"); used0=$(used_memory "$port")
    for phase in "$@"; do
        redis-cli -p "$port" --pipe <"$work/$phase.resp" >/dev/null 2>&1
        local n rss used
        n=$(redis-cli -p "$port" dbsize)
        rss=$(rss_kb "$pid"); used=$(used_memory "$port")
        python3 -c "print('$phase %.1f %.1f' % (($rss-$rss0)*1024/$n, ($used-$used0)/$n))"
        sleep "$idle"
        rss=$(rss_kb "$pid"); used=$(used_memory "$port")
        python3 -c "print('$phase+idle %.1f %.1f' % (($rss-$rss0)*1024/$n, ($used-$used0)/$n))"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

phases=(load)
for r in $(seq "$rounds"); do phases+=("r$r"); done
run ferrokv "${phases[@]}" >"$work/f.txt"
run redis "${phases[@]}" >"$work/r.txt"
run ferrokv final >"$work/ff.txt"
run redis final >"$work/rf.txt"
echo "| phase | ferrokv RSS B/key | redis RSS B/key | RSS ratio | ferrokv used_memory B/key | redis used_memory B/key |"
echo "|---|---|---|---|---|---|"
python3 - "$work" <<'PY'
import sys
w = sys.argv[1]
def rows(f):
    return [l.split() for l in open(f"{w}/{f}") if l.strip()]
for (p, fr, fu), (_, rr, ru) in zip(rows("f.txt") + rows("ff.txt"), rows("r.txt") + rows("rf.txt")):
    name = p if not p.startswith("final") else p.replace("final", "fresh load of the final data")
    print(f"| {name} | {fr} | {rr} | {float(fr)/float(rr):.2f}x | {fu} | {ru} |")
PY
