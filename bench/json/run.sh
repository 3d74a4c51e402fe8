#!/usr/bin/env bash
# JSON parsing of POST /prompt bodies: jansson's json_loadb against cd_json_parse, in one process
# (bench_json.c, built from the release build's tree on request). Prints the median time of one
# parse of each body and the speed-up; exits non-zero only when it could not measure (no build,
# or the two parsers disagree).
#
# Env: BUILD (default build), BENCH_RUNS (default 60 timed parses of each body by each parser).
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
echo "bench/json: one parse of a POST /prompt body (median of $RUNS, CPU time)"
"$BUILD_DIR/bench_json" "$RUNS"
