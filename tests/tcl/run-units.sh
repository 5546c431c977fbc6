#!/usr/bin/env bash
# Runs Redis 7.0.15's own TCL units against a ferrokv-server in external mode and prints
# each unit's pass/fail counts (docs/compatibility.md records them). Not part of CI: a
# unit takes up to minutes and some of its tests are timing-dependent.
#
#   tests/tcl/run-units.sh [unit ...]     (default: the scripting/pub-sub units)
#
# Needs tclsh (apt-get install tcl), git, a release build of ferrokv-server in
# $CARGO_TARGET_DIR/release (default target/), and Redis's tests/ and runtest at tag
# 7.0.15: from $REDIS_REPO (a clone or bare mirror of redis/redis), extracted to a
# temporary directory. Each unit gets a fresh two-shard node on a free port.
# Tests that need what ferrokv lacks are skipped by name (SKIP below, with the reason).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$here/target}
server=$target/release/ferrokv-server
repo=${REDIS_REPO:-/work/.mirror/redis+redis/repo}
units=("$@")
[ ${#units[@]} -eq 0 ] && units=(unit/pubsub unit/pubsubshard unit/tracking unit/scripting unit/functions)
command -v tclsh >/dev/null || { echo "tclsh is missing (apt-get install tcl)"; exit 2; }
[ -x "$server" ] || { echo "no $server: cargo build --release -p ferrokv-server"; exit 2; }

SKIP=(
  # streams are not implemented
  "Keyspace notifications: stream events test"
  "EVAL - Scripts can't run XREAD and XREADGROUP with BLOCK option"
  # SORT's GET patterns may name keys of other shards only from a connection's own
  # commands: a script holds its shards, and a pattern key elsewhere is refused
  "SORT BY <constant> with GET gets ordered for scripting"
  # ACL is not implemented
  "Script ACL check"
  # a replica's link dropping during a busy script: the script's thread does not
  # serve replication links from its Lua hook (docs/architecture.md, "BUSY and SCRIPT
  # KILL")
  "not enough good replicas state change during long script"
)

work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
git -C "$repo" archive 7.0.15 tests runtest | tar -x -C "$work"
skips=()
mkdir -p "${TCL_LOGS:-$work}"
for t in "${SKIP[@]}"; do skips+=(--skiptest "$t"); done

for unit in "${units[@]}"; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$work/node-$port"
  "$server" --port "$port" --server-threads 2 --dir "$work/node-$port" >"$work/node-$port/log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  log=${TCL_LOGS:-$work}/$(basename "$unit").log
  (cd "$work" && timeout 600 ./runtest --host 127.0.0.1 --port "$port" --singledb \
      --tags -needs:repl --tags -needs:debug --tags -needs:config-maxmemory \
      "${skips[@]}" --single "$unit" >"$log" 2>&1) || true
  ok=$(grep -c '\[.*ok.*\]:' "$log" || true)
  err=$(grep -c '\[.*err.*\]:' "$log" || true)
  exc=$(grep -m1 '\[.*exception.*\]:' "$log" | sed 's/.*exception[^:]*: //' || true)
  echo "$unit: $ok passed, $err failed${exc:+, stopped by: $exc}"
  grep -A2 '\[.*err.*\]:' "$log" | sed 's/\x1b\[[0-9;]*m//g; s/^/    /' || true
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "    (the node ignored SIGTERM for 5 s: killed)"
    kill -9 "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  pid=
done
