#!/usr/bin/env bash
# Whole-slot migration against redis-cli --cluster reshard: move half the slots (8192)
# of a 3-master cluster to a new empty master.
#
# Each run starts 4 fresh nodes of one server on 127.0.0.1 (free ports, --save "",
# --appendonly no, --cluster-node-timeout 5000, nothing pinned), creates a cluster of
# 3 masters with `redis-cli --cluster create`, adds the 4th as an empty master with
# `redis-cli --cluster add-node`, loads KEYS keys `key:%010d` with VALUE_SIZE-byte
# values (pipelined to each slot's owner), then times the move:
#   redis-server: `redis-cli --cluster reshard --cluster-from all --cluster-to <new>
#                  --cluster-slots 8192 --cluster-yes` (MIGRATE, 10 keys a batch);
#   ferrokv:      one `CLUSTER MIGRATION IMPORT` per source on the new master (the
#                  first 8192/3 slots of each), polled with CLUSTER MIGRATION STATUS
#                  until every task is completed.
# With --under-load a client INCRs 2000 counters spread over all slots throughout,
# follows MOVED/ASK/TRYAGAIN as a cluster client does, checks every reply, and reports
# its errors, redirects, latency percentiles and its rate (ops/s) in the second
# before the move and during it. Each run checks that all keys are
# still there and that the new master owns 8192 slots.
#
# Usage: benches/slot-migration.sh [--keys N] [--value-size B] [--runs R] [--under-load]
#                                  [--threads T] [--only ferrokv|redis] [--no-build]
# Environment: FERROKV_SERVER, REDIS_SERVER override the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib/preamble.sh
bench_args "$0" "$@"
bench_need "apt-get install redis-server redis-tools python3" "$redis" redis-cli python3
bench_build ferrokv-server
PYTHONPATH=benches/lib exec python3 benches/lib/slot_migration.py --ferrokv "$ferrokv" \
    --redis "$redis" ${args[@]+"${args[@]}"}
