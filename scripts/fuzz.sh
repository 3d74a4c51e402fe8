#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for FUZZ_SECONDS (default
# 20) from its seed corpus. A crash, leak or sanitizer report fails the run and leaves the input
# that caused it in build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SECONDS_EACH=${FUZZ_SECONDS:-20}
CC=clang cmake -S . -B "$BUILD/fuzz" -DCMAKE_BUILD_TYPE=Debug -DCOMFYD_SANITIZE=ON -DCOMFYD_FUZZ=ON \
  -DCOMFYD_TESTS=OFF >/dev/null
cmake --build "$BUILD/fuzz" -j"${JOBS:-2}" --target fuzz_targets
status=0
for target in "$BUILD"/fuzz/tests/fuzz/fuzz_*; do
  [[ -x $target ]] || continue
  name=$(basename "$target")
  corpus="$BUILD/fuzz/corpus/$name"
  mkdir -p "$corpus"
  seeds="tests/fuzz/seeds/${name#fuzz_}"
  echo "fuzz: $name for ${SECONDS_EACH}s"
  if ! "$target" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$BUILD/fuzz/$name-" "$corpus" ${seeds:+$( [[ -d $seeds ]] && echo "$seeds")} \
      >"$BUILD/fuzz/$name.log" 2>&1; then
    echo "fuzz: $name FAILED; see $BUILD/fuzz/$name.log"
    tail -40 "$BUILD/fuzz/$name.log"
    status=1
  else
    tail -1 "$BUILD/fuzz/$name.log"
  fi
done
exit $status
