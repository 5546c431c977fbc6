#!/usr/bin/env bash
# Issue 13's two shards, driven by ferrokv-load (benches/loadgen). Scenario `direct`
# (direct-to-core routing, `core-ports`): server CPU per request of a cluster client at
# two shards against one shard.
#
# A cluster client splits its pipeline over the endpoints CLUSTER SLOTS names, so a
# node advertising two core endpoints gets two smaller batches per client where a
# one-shard node gets one: the comparison that isolates routing holds that shape equal.
# Each configuration owns all 16384 slots, 100,000 keys filled, ferrokv-load on core 1
# as a cluster client (-c 50, 1:1 SET:GET, P1 and P16), rounds alternating the order:
#   redis-server, 2 nodes on core 0          the same client shape on redis
#   ferrokv, 2 nodes x 1 shard on core 0      two endpoints, one shared core, no hop
#   ferrokv, 2 nodes x 1 shard on cores 0, 1  two endpoints on the two-shard node's cores
#   ferrokv, 1 node x 2 shards, core-ports    two endpoints, one per core (direct)
#   ferrokv, 1 node x 2 shards, no core-ps    one endpoint, half the requests hop
#   ferrokv, 1 node x 1 shard                 one endpoint, one core
# Scenario `hop`: a standalone client (ferrokv-load --no-cluster, one endpoint) on one
# shard and on two shards with `shard-hop forward` (the command goes to the owning
# shard's thread) and `shard-hop lock` (it runs on the connection's thread under the
# owning shard's lock), keys uniform and all under one hash tag (every client on one
# shard's keys: the owner's thread and the other one contend for its lock).
# Server CPU = utime+stime of the server processes over the run. The machine may be
# shared: each row lists the 1-minute load average before its runs.
#
# Usage: benches/cores.sh [--scenario direct|hop]... [--rounds N] [--seconds S]
#          [--clients C] [--keys K] [--no-build]
# Environment: FERROKV_SERVER, REDIS_SERVER, FERROKV_LOAD override the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib/preamble.sh
bench_args "$0" "$@"
bench_need "apt-get install redis-server python3 util-linux" "$redis" python3 taskset
[ "$(nproc)" -ge 2 ] || { echo "needs 2 cores" >&2; exit 1; }
bench_build ferrokv-server ferrokv-load
bench_banner
PYTHONPATH=benches/lib exec python3 benches/lib/cores_bench.py --ferrokv "$ferrokv" \
    --redis "$redis" --load "$load" ${args[@]+"${args[@]}"}
