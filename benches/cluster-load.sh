#!/usr/bin/env bash
# Issue 13's benchmarks, driven by ferrokv-load (benches/loadgen), ferrokv-server and
# redis-server side by side in the same run, rounds alternating the order:
#
#   cluster3  3 masters of one server on 127.0.0.1 (ferrokv --server-threads 1, as
#             redis's one thread), created with redis-cli --cluster create, KEYS keys
#             filled, then 1:1 SET:GET uniform at pipeline 1 and 16: throughput, p50,
#             p99, CPU of the three nodes per request. Nothing is pinned (3 nodes and
#             the generator share the 2 cores). --node-threads T above 1: T shards per
#             ferrokv node, each with its own port (core-ports).
#   shards    one node owning all 16384 slots (cluster-enabled, CLUSTER ADDSLOTSRANGE):
#             redis-server and ferrokv with one shard on core 0, ferrokv with two shards
#             on cores 0-1 (with a port per shard, `core-ports`, when the build has
#             it); ferrokv-load on core 1 as a cluster client (routing by CLUSTER
#             SLOTS: with per-shard endpoints advertised it reaches the owning core,
#             else it goes through the node's port and the hop) and, on two shards, as
#             a standalone client on the node's port; CPU per request vs one shard and
#             vs redis.
#   zipf      the same node with 1M keys filled: uniform vs zipf (s = 1.1), and
#             100,000 keys under one hash tag, at P1 and P16 on redis-server and on two
#             shards (core-ports when available) with the hot-slot balancer off and on
#             (`shard-balance`, when available), with each shard thread's share of the
#             CPU (/proc/PID/task), the slots each shard ends with and the expected
#             share of each half of the slots. Each point runs --warm-up seconds
#             unmeasured first (the balancer needs a second of load to act).
#
# Each figure lists the 1-minute load average before its runs: the machine is shared.
#
# Usage: benches/cluster-load.sh [--scenario cluster3|shards|zipf]... [--rounds N]
#          [--seconds S] [--clients C] [--keys K] [--zipf-keys K] [--zipf-s S]
#          [--paced-rate R] [--value-size B] [--node-threads T] [--warm-up S] [--no-build]
#   --paced-rate R  requests/s of the skew scenario's open-loop rows (default 10000; 0: none)
# Environment: FERROKV_SERVER, REDIS_SERVER, FERROKV_LOAD override the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib/preamble.sh
bench_args "$0" "$@"
bench_need "apt-get install redis-server redis-tools python3 util-linux" "$redis" redis-cli python3 taskset
bench_build ferrokv-server ferrokv-load
[ -x "$load" ] || { echo "no ferrokv-load at $load" >&2; exit 1; }
bench_banner
PYTHONPATH=benches/lib exec python3 benches/lib/cluster_load.py --ferrokv "$ferrokv" \
    --redis "$redis" --load "$load" ${args[@]+"${args[@]}"}
