#!/usr/bin/env bash
# JSON of POST /prompt bodies, both ways, in one process (bench_json.c, built from the release
# build's tree on request): jansson's json_loadb against cd_json_parse, and json_dumps (with the
# passes that followed it) against cd_json_dumps / cd_json_dumps_compact. Prints the median time
# of each and the speed-ups; exits non-zero only when it could not measure (no build, or the two
# sides disagree).
#
# Env: BUILD (default build), BENCH_RUNS (default 60 timed runs of each body by each side).
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

BUILD_DIR=$BENCH_ROOT/${BUILD:-build}/release
RUNS=${BENCH_RUNS:-60}
[[ $RUNS =~ ^[0-9]+$ && $RUNS -gt 0 ]] || die "BENCH_RUNS must be a positive whole number"
if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
    cmake -S "$BENCH_ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCOMFYD_TESTS=OFF >/dev/null ||
        die "cannot configure the release build in $BUILD_DIR"
fi
cmake --build "$BUILD_DIR" -j"${JOBS:-2}" --target bench_json >/dev/null || die "cannot build bench_json"
echo "bench/json: POST /prompt bodies read and written back (median of $RUNS, CPU time)"
"$BUILD_DIR/bench_json" "$RUNS"
