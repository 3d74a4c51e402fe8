#!/usr/bin/env bash
# Every test, in order of speed: unit tests (cmocka via ctest), then the integration tests that
# start the real comfyd (built with ASan+UBSan) and drive it over HTTP and WebSocket, then each
# fuzz target for a short, bounded time. Prints one closing line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export COMFYD_BIN=${COMFYD_BIN:-$PWD/$BUILD/debug/comfyd}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0 failed=0
failures=()
run() { # name, command...
  local name=$1; shift
  echo "=== $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

run "unit tests (ctest)" ctest --test-dir "$BUILD/debug" --output-on-failure
run "integration tests (node --test)" node --test --test-concurrency=1 --test-reporter=spec tests/integration/
run "fuzz targets" bash scripts/fuzz.sh

echo
((failed)) && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
((failed == 0))
