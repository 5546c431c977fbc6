#!/usr/bin/env bash
# Bytes per element in ferrokv-server and redis-server for the same data.
#
# For each dataset, a fresh server of each kind (one shard thread for ferrokv; both
# pinned to core 0) is loaded through `redis-cli --pipe`, and the growth of its resident
# set (VmRSS) and of INFO's used_memory is divided by the number of elements:
#   strings  1,000,000 SET key:NNNNNNN value:NNNNNNN          (1M elements)
#   hashes     100,000 HSET hash:NNNNNN with 10 fields of ~8 bytes  (1M fields)
#   sets        10,000 SADD set:NNNNN with 100 integers        (1M members)
#   zsets       10,000 ZADD zset:NNNNN with 100 members         (1M members)
#   strN     1,000,000 SET key:NNNNNNNNNN (14 bytes) with an N-byte value, N = 15, 16,
#                      32, 64; str16ttl: 16-byte values, every key with a TTL
#   hash100    100,000 HSET hash:NNNNNN with 100 fields of ~8 bytes  (10M fields; the
#                      hash-bucketing trick: small keys folded into hashes)
# With --cluster both servers run cluster-enabled, owning all 16384 slots (redis then
# keeps its per-slot key lists: 16 bytes more per key).
# Prints a markdown table with ratios (ferrokv / redis; below 1 means ferrokv uses less).
#
# Usage: benches/memory.sh [--no-build] [--cluster] [--only DATASET[,DATASET...]]
#   DATASET: strings hashes sets zsets str15 str16 str32 str64 str16ttl hash100
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
only=""
cluster=0
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --only) only="$2"; shift ;;
        --cluster) cluster=1 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$build" = 1 ] && cargo build --release -p ferrokv-server >/dev/null
FERROKV=${FERROKV_SERVER:-target/release/ferrokv-server}
REDIS=${REDIS_SERVER:-redis-server}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

. benches/lib/memory-server.sh

# Writes the RESP protocol for a dataset to stdout.
generate() {
    python3 - "$1" <<'PY'
import sys
kind = sys.argv[1]
out = sys.stdout.buffer
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(parts))
if kind == "strings":
    for i in range(1_000_000):
        cmd("SET", "key:%07d" % i, "value:%07d" % i)
elif kind.startswith("str") and kind[3:].rstrip("ttl").isdigit():
    # Issue 12's rows: 14-byte keys, values of N bytes, optionally every key with a TTL.
    n = int(kind[3:].rstrip("ttl"))
    ttl = kind.endswith("ttl")
    for i in range(1_000_000):
        if ttl:
            cmd("SET", "key:%010d" % i, "v" * n, "EX", 100000 + i % 1000)
        else:
            cmd("SET", "key:%010d" % i, "v" * n)
elif kind == "hashes":
    for i in range(100_000):
        args = ["HSET", "hash:%06d" % i]
        for f in range(10):
            args += ["field%d" % f, "v%06d" % (i + f)]
        cmd(*args)
elif kind == "hash100":
    for i in range(100_000):
        args = ["HSET", "hash:%06d" % i]
        for f in range(100):
            args += ["field%d" % f, "v%06d" % (i + f)]
        cmd(*args)
elif kind == "sets":
    for i in range(10_000):
        cmd("SADD", "set:%05d" % i, *[i * 100 + m for m in range(100)])
elif kind == "zsets":
    for i in range(10_000):
        args = ["ZADD", "zset:%05d" % i]
        for m in range(100):
            args += [m * 1.5, "member:%03d" % m]
        cmd(*args)
PY
}

# measure KIND DATASET ELEMENTS -> "rss_bytes_per_element used_bytes_per_element"
measure() {
    local kind=$1 dataset=$2 elements=$3 port pid dir
    dir="$work/$kind-$dataset"
    start_server "$kind" "$dir"
    local rss0 used0 rss1 used1
    rss0=$(rss_kb "$pid"); used0=$(used_memory "$port")
    generate "$dataset" | redis-cli -p "$port" --pipe >"$dir/pipe.log" 2>&1
    rss1=$(rss_kb "$pid"); used1=$(used_memory "$port")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 -c "print('%.1f %.1f' % (($rss1-$rss0)*1024/$elements, ($used1-$used0)/$elements))"
}

echo "| dataset | ferrokv RSS B/elem | redis RSS B/elem | RSS ratio | ferrokv used_memory B/elem | redis used_memory B/elem | used_memory ratio |"
echo "|---|---|---|---|---|---|---|"
for spec in "strings 1000000" "hashes 1000000" "sets 1000000" "zsets 1000000" \
    "str15 1000000" "str16 1000000" "str32 1000000" "str64 1000000" "str16ttl 1000000" \
    "hash100 10000000"; do
    set -- $spec
    [ -n "$only" ] && [[ ",$only," != *",$1,"* ]] && continue
    read -r f_rss f_used < <(measure ferrokv "$1" "$2")
    read -r r_rss r_used < <(measure redis "$1" "$2")
    python3 -c "print('| $1 | $f_rss | $r_rss | %.2fx | $f_used | $r_used | %.2fx |' % ($f_rss/$r_rss, $f_used/$r_used))"
done
