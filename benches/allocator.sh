#!/usr/bin/env bash
# ferrokv-server built with each global allocator (the system's glibc malloc, jemalloc,
# mimalloc), and redis-server 7.0.15 beside them, on the same data:
#   - memory: 1M keys `key:%010d` with 16-byte values loaded with `redis-cli --pipe`;
#     RSS and used_memory after the load, after DEL of every key (and 12 s idle), after
#     loading again and FLUSHALL (12 s idle), and after MEMORY PURGE;
#   - throughput: redis-benchmark SET and GET at pipeline 16, 50 clients, 1M random keys,
#     16-byte values; medians of ROUNDS rounds, the servers alternating.
# Every server runs one shard thread pinned to core 0, redis-benchmark on core 1.
#
# Usage: benches/allocator.sh [--no-build] [--rounds N]
# Builds target/release/ferrokv-server three times (features: none, jemalloc, mimalloc)
# and keeps each binary in the work directory; FERROKV_LIBC/_JEMALLOC/_MIMALLOC name
# prebuilt binaries instead (with --no-build).
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --rounds) rounds="$2"; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
target=${CARGO_TARGET_DIR:-target}
if [ "$build" = 1 ]; then
    for f in libc jemalloc mimalloc; do
        feat=(--no-default-features); [ "$f" != libc ] && feat+=(--features "$f")
        cargo build --release -p ferrokv-server "${feat[@]}" >/dev/null 2>&1
        cp "$target/release/ferrokv-server" "$work/ferrokv-$f"
    done
    FERROKV_LIBC="$work/ferrokv-libc" FERROKV_JEMALLOC="$work/ferrokv-jemalloc" FERROKV_MIMALLOC="$work/ferrokv-mimalloc"
fi
export FERROKV_LIBC FERROKV_JEMALLOC FERROKV_MIMALLOC

python3 - "$work" "$rounds" <<'PY'
import os, subprocess, sys, time, statistics, socket
sys.path.insert(0, os.path.join(os.getcwd(), "benches", "lib"))
from benchlib import Conn, status_kb

work, rounds = sys.argv[1], int(sys.argv[2])
only = os.environ.get("ONLY", "memory,throughput").split(",")
N = 1_000_000
servers = [
    ("ferrokv glibc", os.environ["FERROKV_LIBC"]),
    ("ferrokv jemalloc", os.environ["FERROKV_JEMALLOC"]),
    ("ferrokv mimalloc", os.environ["FERROKV_MIMALLOC"]),
    ("redis-server", "redis-server"),
]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start(name, binary):
    port = free_port()
    d = os.path.join(work, "%s-%d" % (name.replace(" ", "-"), port)); os.makedirs(d)
    if binary == "redis-server":
        argv = [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", d]
    else:
        argv = [binary, "--port", str(port), "--server-threads", "1", "--save", "", "--dir", d, "--loglevel", "warning"]
    p = subprocess.Popen(["taskset", "-c", "0"] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            c = Conn(port); c.call("PING"); return p, port, c
        except OSError:
            time.sleep(0.05)
    raise SystemExit("%s did not start" % name)

def pipe(port, lines):
    path = os.path.join(work, "pipe.txt")
    with open(path, "wb") as f:
        for l in lines:
            f.write(l)
    with open(path, "rb") as f:
        subprocess.run(["taskset", "-c", "1", "redis-cli", "-p", str(port), "--pipe"], stdin=f,
                       stdout=subprocess.DEVNULL, check=True)

def resp(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)

val = b"v" * 16
sets = [resp(b"SET", b"key:%010d" % i, val) for i in range(N)]
dels = [resp(b"DEL", b"key:%010d" % i) for i in range(N)]

def rss(p):
    return status_kb(p.pid, "VmRSS") * 1024

def used(c):
    return int(c.info("memory")["used_memory"])

mib = lambda b: "%.1f" % (b / 1048576)
if "memory" not in only:
    servers_mem = []
else:
    servers_mem = servers
print("## memory (MiB): RSS / used_memory\n")
print("| server | empty | 1M keys | after DEL all, 12 s | reload + FLUSHALL, 12 s | then MEMORY PURGE |")
print("|---|---|---|---|---|---|")
for name, binary in servers_mem:
    p, port, c = start(name, binary)
    time.sleep(0.5)
    row = [(rss(p), used(c))]
    pipe(port, sets); time.sleep(1); row.append((rss(p), used(c)))
    pipe(port, dels); time.sleep(12); row.append((rss(p), used(c)))
    pipe(port, sets); c.call("FLUSHALL"); time.sleep(12); row.append((rss(p), used(c)))
    r = c.call("MEMORY", "PURGE"); time.sleep(0.5); row.append((rss(p), used(c)))
    print("| %s | %s |" % (name, " | ".join("%s / %s" % (mib(a), mib(b)) for a, b in row)), flush=True)
    p.kill(); p.wait()

if "throughput" not in only:
    sys.exit(0)
print("\n## throughput (requests/s), redis-benchmark -P 16 -c 50 -r 1000000 -d 16, medians of %d\n" % rounds)
res = {name: {"set": [], "get": []} for name, _ in servers}
for r in range(rounds):
    for name, binary in servers:
        p, port, c = start(name, binary)
        for t in ("set", "get"):
            out = subprocess.run(["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-t", t, "-P", "16",
                                  "-c", "50", "-r", "1000000", "-d", "16", "-n", "2000000", "-q", "--csv"],
                                 capture_output=True, text=True).stdout
            rps = float([l for l in out.splitlines() if l.startswith('"%s"' % t.upper())][0].split(",")[1].strip('"'))
            res[name][t].append(rps)
        p.kill(); p.wait()
print("| server | SET P16 | GET P16 | SET vs redis | GET vs redis |")
print("|---|---|---|---|---|")
rs, rg = statistics.median(res["redis-server"]["set"]), statistics.median(res["redis-server"]["get"])
for name, _ in servers:
    s, g = statistics.median(res[name]["set"]), statistics.median(res[name]["get"])
    print("| %s | %.0f | %.0f | %.2fx | %.2fx |" % (name, s, g, s / rs, g / rg))
PY
