#!/usr/bin/env bash
# Runs every fuzz target for the given seconds each (default 300), one after another,
# in one process (-jobs=1), with the memory limits the decoders must keep to: no single
# allocation over 256 MB (one sized by a declared length the input did not back trips
# it) and 512 MB of RSS. New inputs go to target/corpus/<target> (the committed seeds in
# corpus/<target> are only read), crashes to artifacts/<target>, each run's libFuzzer
# log to target/logs/<target>.log. Exits non-zero if any target failed.
set -u
cd "$(dirname "$0")"
seconds=${1:-300}
targets=(restore rdb_file containers)
status=0
mkdir -p target/logs
for t in "${targets[@]}"; do
    mkdir -p "target/corpus/$t" "artifacts/$t"
    rm -f fuzz-0.log
    cargo +nightly fuzz run "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -jobs=1 -rss_limit_mb=512 -malloc_limit_mb=256 \
        -artifact_prefix="artifacts/$t/" >/dev/null 2>&1
    rc=$?
    # With -jobs, libFuzzer writes the run's output to fuzz-<job>.log here.
    [ -f fuzz-0.log ] && mv fuzz-0.log "target/logs/$t.log"
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "target/logs/$t.log" 2>/dev/null | tail -1)
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "$t: FAILED (exit $rc); see target/logs/$t.log and artifacts/$t/"
    else
        echo "$t: ${runs:-no summary}; corpus $(ls "target/corpus/$t" | wc -l) inputs"
    fi
done
exit $status
