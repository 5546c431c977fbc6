#!/usr/bin/env bash
# The cost of the maxmemory check per command: redis-benchmark SET at pipeline 16 (50
# clients, 1M random keys, 16-byte values) against ferrokv-server and redis-server, each
# without maxmemory and with a maxmemory set but never reached (the check runs on every
# command, nothing is evicted), and with eviction active (allkeys-lru, a limit of 64 MB
# that the run overfills about twice). One shard thread pinned to core 0, the benchmark
# on core 1; the configurations alternate, medians of ROUNDS rounds.
#
# Usage: benches/maxmemory.sh [--no-build] [--rounds N]
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
[ "$build" = 1 ] && cargo build --release -p ferrokv-server >/dev/null
export FERROKV=${FERROKV_SERVER:-${CARGO_TARGET_DIR:-target}/release/ferrokv-server}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$rounds" <<'PY'
import os, subprocess, sys, time, statistics, socket
sys.path.insert(0, os.path.join(os.getcwd(), "benches", "lib"))
from benchlib import Conn

work, rounds = sys.argv[1], int(sys.argv[2])
configs = [
    ("no maxmemory", []),
    ("maxmemory 10gb (never reached)", ["--maxmemory", "10gb"]),
    ("maxmemory 64mb, allkeys-lru, evicting", ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]),
]
servers = [("ferrokv", os.environ["FERROKV"]), ("redis-server", "redis-server")]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def run(binary, extra):
    port = free_port()
    d = os.path.join(work, str(port)); os.makedirs(d)
    argv = [binary, "--port", str(port), "--save", "", "--dir", d] + extra
    if binary != "redis-server":
        argv += ["--server-threads", "1", "--loglevel", "warning"]
    p = subprocess.Popen(["taskset", "-c", "0"] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                Conn(port).call("PING"); break
            except OSError:
                time.sleep(0.05)
        out = subprocess.run(["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-t", "set", "-P", "16",
                              "-c", "50", "-r", "1000000", "-d", "100", "-n", "2000000", "-q", "--csv"],
                             capture_output=True, text=True).stdout
        info = Conn(port).info("stats")
        rps = float([l for l in out.splitlines() if l.startswith('"SET"')][0].split(",")[1].strip('"'))
        return rps, int(info.get("evicted_keys", 0))
    finally:
        p.kill(); p.wait()

res = {}
for r in range(rounds):
    for cname, extra in configs:
        for sname, binary in servers:
            res.setdefault((cname, sname), []).append(run(binary, extra))
print("| configuration | ferrokv SET P16 | redis SET P16 | ferrokv / redis | ferrokv vs its no-maxmemory | evicted keys (ferrokv / redis) |")
print("|---|---|---|---|---|---|")
base = statistics.median(x[0] for x in res[(configs[0][0], "ferrokv")])
for cname, _ in configs:
    f = statistics.median(x[0] for x in res[(cname, "ferrokv")])
    rd = statistics.median(x[0] for x in res[(cname, "redis-server")])
    ef = res[(cname, "ferrokv")][-1][1]; er = res[(cname, "redis-server")][-1][1]
    print("| %s | %.0f | %.0f | %.2fx | %.3f | %d / %d |" % (cname, f, rd, f / rd, f / base, ef, er))
PY
