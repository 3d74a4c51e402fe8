#!/usr/bin/env bash
# Installs what comfyd needs to build, run and test on Debian 12, skipping what is present, and
# the npm packages the integration tests use. Safe to run again: it only acts on what is missing.
# With --bench it also installs the benchmarks' tools (wrk, and nginx and redis-server as references).
set -euo pipefail
cd "$(dirname "$0")/.."
bench=false
[[ ${1:-} == --bench ]] && bench=true

packages=(
  # build
  build-essential cmake pkg-config
  # libraries (DESIGN.md, Dependencies)
  libuv1-dev libhttp-parser-dev libwslay-dev libjansson-dev libsqlite3-dev libsodium-dev
  libxxhash-dev libcmocka-dev libvips-dev libpng-dev libgit2-dev libcurl4-openssl-dev
  libarchive-dev libyaml-dev libpq-dev
  # tests: clang and its runtime for the libFuzzer targets, Node.js for the integration tests,
  # git for the node-pack installs from local repositories; the vips tool is bench/images' reference
  clang libclang-rt-14-dev nodejs npm curl git libvips-tools
  # the page tests: playwright-core (npm) drives Debian's chromium, headless; a CJK font for 中文
  chromium fonts-wqy-microhei
  # the hub's store on PostgreSQL: tests/pg/start.sh runs a throw-away server of its own
  postgresql
  # the hub's ssh launcher: its test starts an sshd of its own on a loopback port
  openssh-client openssh-server
  # the hub's systemd launcher: its test runs a `systemd --user` manager of its own
  systemd
)
# benchmarks: the load generator and the reference server
$bench && packages+=(wrk nginx-light redis-server)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere than Debian (nodesource, nvm): a working node and npm will do.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}")
  missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # nginx is only a benchmark reference; do not leave a system service running.
  if [[ " ${missing[*]} " == *" nginx-light "* ]] && command -v systemctl >/dev/null; then
    $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
  # the tests run PostgreSQL servers of their own (tests/pg/start.sh), not the system's cluster
  if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v systemctl >/dev/null; then
    $sudo systemctl disable --now postgresql >/dev/null 2>&1 || true
  fi
  if [[ " ${missing[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null; then
    $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
  # the same for sshd: the tests start their own on a loopback port, as the test's user
  if [[ " ${missing[*]} " == *" openssh-server "* ]] && command -v systemctl >/dev/null; then
    $sudo systemctl disable --now ssh >/dev/null 2>&1 || true
  fi
else
  echo "setup: Debian packages present"
fi

if [[ -f tests/integration/package-lock.json ]]; then
  if [[ ! -d tests/integration/node_modules ]] || [[ tests/integration/package-lock.json -nt tests/integration/node_modules ]]; then
    echo "setup: installing the integration tests' npm packages"
    (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
    touch tests/integration/node_modules
  fi
fi
