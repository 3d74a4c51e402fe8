#!/usr/bin/env bash
# Cold start and memory: time from exec of `comfyd serve` to its first 200 on GET /system_stats
# (BENCH_RUNS runs, default 10, each with a fresh base directory and port), and its resident memory
# one second after start. The reference, measured the same way in the same run: nginx serving a
# static file of the same bytes at the same path (its memory summed over master and worker).
# Not a pass/fail test: it exits non-zero only when it could not measure.
#
# Env: COMFYD_BIN (default build/release/comfyd), BENCH_RUNS (default 10), BENCH_POLL_US (default 200),
#      CC (default cc).
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RUNS=${BENCH_RUNS:-10}
POLL_US=${BENCH_POLL_US:-200}
CC=${CC:-cc}
[[ $RUNS =~ ^[0-9]+$ && $RUNS -gt 0 ]] || die "BENCH_RUNS must be a positive whole number"
[[ $POLL_US =~ ^[0-9]+$ ]] || die "BENCH_POLL_US must be a whole number of microseconds"

need "$CC" "gcc (or build-essential)"
need_nginx
find_comfyd

TMP=$(mktemp -d /tmp/comfyd-bench-startup.XXXXXX)
chmod 755 "$TMP"
cleanup() {
    local rc=$?
    # coldstart stops its own server (SIGTERM, then SIGKILL to the process group) on every path.
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$CC" -O2 -Wall -o "$TMP/coldstart" "$HERE/coldstart.c" || die "could not build coldstart.c with $CC"
COLD=$TMP/coldstart

show_log() {
    echo "--- $1 (last 20 lines) ---" >&2
    tail -n 20 "$1" >&2 || true
}

# comfyd_once OUTFILE [coldstart options...]: one start of comfyd with a fresh base dir and port.
N=0
comfyd_once() {
    local out=$1 port base
    shift
    N=$((N + 1))
    port=$(free_port)
    base=$TMP/comfyd-base-$N
    mkdir -p "$base"
    timeout 60 "$COLD" -p "$port" -s "$POLL_US" -t 15000 -l "$TMP/comfyd.log" "$@" -- \
        "$COMFYD_BIN" serve --listen 127.0.0.1 --port "$port" --base-directory "$base" >"$out" || {
        show_log "$TMP/comfyd.log"
        die "comfyd did not start (see above)"
    }
    rm -rf "$base"
}

# nginx_once OUTFILE [coldstart options...]: one start of nginx on a fresh port, same prefix.
nginx_once() {
    local out=$1 port
    shift
    port=$(free_port)
    write_nginx_conf "$TMP/nginx" "$port"
    local args
    mapfile -t args < <(nginx_args "$TMP/nginx")
    timeout 60 "$COLD" -p "$port" -s "$POLL_US" -t 15000 -l "$TMP/nginx.log" "$@" -- "$NGINX_BIN" "${args[@]}" \
        >"$out" || {
        show_log "$TMP/nginx.log"
        show_log "$TMP/nginx/error.log"
        die "nginx did not start (see above)"
    }
}

field() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$2"; }

# Untimed first start of each: fills the page cache (both are then measured warm) and gives comfyd's
# /system_stats body, which nginx serves as its static file.
comfyd_once "$TMP/warm.out" -o "$TMP/body"
[[ -s $TMP/body ]] || die "comfyd returned an empty /system_stats body"
BODY_SIZE=$(stat -c %s "$TMP/body")
mkdir -p "$TMP/nginx/www"
cp "$TMP/body" "$TMP/nginx/www/system_stats"
chmod 644 "$TMP/nginx/www/system_stats"
nginx_once "$TMP/warm.out"

echo "Cold start: exec -> first complete 200 on GET /system_stats ($BODY_SIZE-byte body), polling every ${POLL_US} us"
echo "comfyd: $COMFYD_BIN"
echo "nginx:  $NGINX_BIN ($("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')), static file, 1 worker"
echo
printf '%-6s %12s %12s\n' run "comfyd ms" "nginx ms"
: >"$TMP/c.all"
: >"$TMP/n.all"
for ((i = 1; i <= RUNS; i++)); do # interleaved, so drift on the machine hits both alike
    comfyd_once "$TMP/c.out"
    nginx_once "$TMP/n.out"
    c=$(field ready_us "$TMP/c.out")
    n=$(field ready_us "$TMP/n.out")
    [[ -n $c && -n $n ]] || die "coldstart printed no ready_us"
    echo "$c" >>"$TMP/c.all"
    echo "$n" >>"$TMP/n.all"
    awk -v i="$i" -v c="$c" -v n="$n" 'BEGIN { printf "%-6d %12.2f %12.2f\n", i, c / 1000, n / 1000 }'
done

median() { sort -n "$1" | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
minimum() { sort -n "$1" | head -n 1; }
C_MED=$(median "$TMP/c.all")
N_MED=$(median "$TMP/n.all")
awk -v c="$C_MED" -v n="$N_MED" -v cm="$(minimum "$TMP/c.all")" -v nm="$(minimum "$TMP/n.all")" 'BEGIN {
    printf "%-6s %12.2f %12.2f\n", "median", c / 1000, n / 1000
    printf "%-6s %12.2f %12.2f\n", "min", cm / 1000, nm / 1000
}'

# --- memory one second after start -----------------------------------------------------------------
comfyd_once "$TMP/c.mem" -r 1000
nginx_once "$TMP/n.mem" -r 1000
C_RSS=$(field rss_kb "$TMP/c.mem") C_PSS=$(field pss_kb "$TMP/c.mem") C_PROCS=$(field procs "$TMP/c.mem")
N_RSS=$(field rss_kb "$TMP/n.mem") N_PSS=$(field pss_kb "$TMP/n.mem") N_PROCS=$(field procs "$TMP/n.mem")
[[ -n $C_RSS && -n $N_RSS ]] || die "coldstart printed no rss_kb"
echo
echo "Resident memory 1 s after start (VmRSS summed over the server's processes; Pss for reference)"
printf '%-16s %10s %10s %6s\n' server "RSS MB" "PSS MB" procs
awk -v r="$C_RSS" -v p="$C_PSS" -v k="$C_PROCS" 'BEGIN { printf "%-16s %10.1f %10.1f %6d\n", "comfyd", r / 1024, p / 1024, k }'
awk -v r="$N_RSS" -v p="$N_PSS" -v k="$N_PROCS" 'BEGIN { printf "%-16s %10.1f %10.1f %6d\n", "nginx (static)", r / 1024, p / 1024, k }'

echo
awk -v c="$C_MED" -v r="$C_RSS" 'BEGIN {
    printf "targets: cold start < 50 ms (comfyd median %.2f ms: %s), RSS < 20 MB (comfyd %.1f MB: %s)\n",
        c / 1000, (c < 50000) ? "met" : "NOT met", r / 1024, (r < 20 * 1024) ? "met" : "NOT met"
}'
echo "for scale: ComfyUI 0.3.x on this kind of machine: about 1.6 s and 370 MB"
