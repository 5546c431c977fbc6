#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run).
#
# Installs what the tests need when it is missing — redis-server and redis-tools (the
# reference server the differential tests compare against, and redis-benchmark) and
# the redis Python client — then builds ferrokv-server in release mode and runs every
# test of the workspace. Works non-interactively on a fresh Debian/Ubuntu machine; no
# service is started or needed: the tests start their own server processes.
#
# Environment: FERROKV_TEST_TIMEOUT (default 50m) bounds `cargo test`; extra
# arguments are passed to `cargo test` (e.g. `./deploy/test.sh -p ferrokv-tests`
# replaces --workspace).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "deploy/test.sh: root is needed for: $*" >&2
        return 1
    fi
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    # Keep packages from starting their services (redis-server's would take port
    # 6379): a policy-rc.d that denies every start, only for this install.
    local policy=/usr/sbin/policy-rc.d added=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        added=yes
    fi
    local status=0
    as_root apt-get update -qq && as_root apt-get install -y -qq "$@" </dev/null || status=$?
    if [ "$added" = yes ]; then
        as_root rm -f "$policy"
    fi
    return "$status"
}

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1 \
    || ! command -v redis-cli >/dev/null 2>&1; then
    log "installing redis-server and redis-tools"
    apt_install redis-server redis-tools
fi
# tests/startup.rs starts ferrokv with Debian's stock redis.conf, from the redis-server
# package, and reads a listener's backlog with ss (iproute2).
if [ ! -f /etc/redis/redis.conf ]; then
    log "installing redis-server for its stock /etc/redis/redis.conf"
    apt_install redis-server
fi
if ! command -v ss >/dev/null 2>&1; then
    log "installing iproute2 (ss)"
    apt_install iproute2
fi
log "reference: $(redis-server --version)"

if ! command -v python3 >/dev/null 2>&1; then
    log "installing python3 and its redis client"
    apt_install python3 python3-redis
elif ! python3 -c 'import redis' >/dev/null 2>&1; then
    log "installing the redis Python client"
    pip_flags=(-q --disable-pip-version-check --no-input)
    python3 -m pip install "${pip_flags[@]}" redis >/dev/null 2>&1 \
        || python3 -m pip install "${pip_flags[@]}" --break-system-packages redis >/dev/null 2>&1 \
        || apt_install python3-redis >/dev/null
    python3 -c 'import redis' || { echo "deploy/test.sh: cannot install the redis Python client" >&2; exit 1; }
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing node and npm"
    apt_install nodejs npm
fi
if [ ! -d tests/js/node_modules/ioredis ]; then
    log "installing ioredis (tests/js)"
    (cd tests/js && npm install --silent --no-audit --no-fund --no-progress </dev/null) \
        || { echo "deploy/test.sh: cannot install ioredis" >&2; exit 1; }
fi

log "cargo build --release -p ferrokv-server -p ferrokv-cli -p ferrokv-load"
cargo build --release -p ferrokv-server -p ferrokv-cli -p ferrokv-load

if [ "$#" -eq 0 ]; then
    set -- --workspace
fi
log "cargo test --release $*"
# --no-fail-fast: every test binary runs and prints its summary even when one fails.
# timeout (not --foreground) ends the whole process group, servers started by tests too.
# The output is also kept to print one summary line over all test binaries at the end.
out=$(mktemp "${TMPDIR:-/tmp}/ferrokv-test.XXXXXX")
trap 'rm -f "$out"' EXIT
status=0
timeout -k 30s "${FERROKV_TEST_TIMEOUT:-50m}" cargo test --release --no-fail-fast "$@" 2>&1 | tee "$out" || status=$?
awk '/^test result:/ { passed += $4; failed += $6; ignored += $8; binaries++ }
    END { printf "==> summary: %d passed, %d failed, %d ignored in %d test binaries\n", passed, failed, ignored, binaries }' "$out"
exit "$status"
