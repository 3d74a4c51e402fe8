#!/usr/bin/env bash
# The hub's proxy, side by side in one run: wrk against one instance (a `comfyd serve` the hub
# started) directly, through `comfyd hub` (/comfyui/admin/1/..., with an API token), and through
# nginx proxy_pass with upstream keep-alive to the same instance. Two targets: GET /system_stats
# and a 1 MB file from /view. Then the hub's RSS while a 1 GB file streams through it.
# Targets (issue #12): throughput at least nginx's, added p50 under 50 us and p99 under 1 ms
# against direct, hub RSS flat during the 1 GB transfer. Throughput is measured with
# BENCH_CONNECTIONS connections; the added latency of a hop with one connection (under load every
# path's latency is mostly queueing behind the others, which says nothing about the hop).
# Not a pass/fail test: it exits non-zero only when it could not measure.
#
# Env: COMFYD_BIN (default build/release/comfyd), BENCH_DURATION (seconds, default 8),
#      BENCH_CONNECTIONS (default 32), BENCH_PIN (default 1: servers on CPU 0, wrk on CPU 1).
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DURATION=${BENCH_DURATION:-8}
CONNS=${BENCH_CONNECTIONS:-32}
[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "BENCH_DURATION must be a positive whole number of seconds"
need wrk wrk
need curl curl
need_nginx
find_comfyd

SERVER_PIN=() CLIENT_PIN=() PIN_NOTE="not pinned"
if [[ ${BENCH_PIN:-1} != 0 ]] && command -v taskset >/dev/null 2>&1 && (($(nproc) >= 2)); then
    SERVER_PIN=(taskset -c 0) CLIENT_PIN=(taskset -c 1) PIN_NOTE="hub, instance and nginx on CPU 0, wrk on CPU 1"
fi

TMP=$(mktemp -d /tmp/comfyd-bench-hub.XXXXXX)
chmod 755 "$TMP"
HUB_PID="" NGINX_PID=""
cleanup() {
    local rc=$?
    [[ -n $NGINX_PID ]] && stop_pid "$NGINX_PID"
    [[ -n $HUB_PID ]] && stop_pid "$HUB_PID" # stops its instance too
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the hub and its instance ------------------------------------------------------------------
HPORT=$(free_port)
RANGE_FIRST=$(free_port)
COMFYD_ADMIN_PASSWORD=bench-password-1 COMFYUI_PORT_RANGE="$RANGE_FIRST-$RANGE_FIRST" COMFYUI_IDLE_STOP_SECONDS=0 \
    "${SERVER_PIN[@]}" "$COMFYD_BIN" hub --listen 127.0.0.1 --port "$HPORT" --data-dir "$TMP/hub" \
    >"$TMP/hub.log" 2>&1 &
HUB_PID=$!
HUB=http://127.0.0.1:$HPORT
for ((i = 0; i < 300; i++)); do
    [[ $(http_status "$HUB/api/me") == 401 ]] && break
    sleep 0.05
done
curl -s -c "$TMP/jar" -X POST "$HUB/api/login" -d '{"username":"admin","password":"bench-password-1"}' >/dev/null
curl -s -b "$TMP/jar" -X POST "$HUB/api/projects" -d '{"name":"bench"}' >/dev/null
OPEN=$(curl -s -b "$TMP/jar" -X POST "$HUB/api/projects/1/open_comfy")
IPORT=$(sed -n 's/.*"port": \([0-9]*\).*/\1/p' <<<"$OPEN")
[[ -n $IPORT ]] || { tail -20 "$TMP/hub.log" >&2; die "the hub did not open the project: $OPEN"; }
TOKEN=$(curl -s -b "$TMP/jar" -X POST "$HUB/api/tokens" -d '{"name":"bench"}' | sed -n 's/.*"token": "\([^"]*\)".*/\1/p')
[[ -n $TOKEN ]] || die "no API token"
INPUT=$TMP/hub/instances/u1/p1/input
head -c 1048576 /dev/urandom >"$INPUT/one-mb.bin"
truncate -s 1G "$INPUT/one-gb.bin"

# --- nginx in front of the same instance ---------------------------------------------------------
NPORT=$(free_port)
write_nginx_conf "$TMP/nginx" "$NPORT"
sed -i "s|        location / { }|        location / { proxy_pass http://instance; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering on; }|" "$TMP/nginx/nginx.conf"
sed -i "s|^http {|http {\n    upstream instance { server 127.0.0.1:$IPORT; keepalive 64; }|" "$TMP/nginx/nginx.conf"
mapfile -t NGINX_ARGS < <(nginx_args "$TMP/nginx")
"$NGINX_BIN" -t "${NGINX_ARGS[@]}" >"$TMP/nginx-t.log" 2>&1 || { cat "$TMP/nginx-t.log" >&2; die "nginx rejected its config"; }
"${SERVER_PIN[@]}" "$NGINX_BIN" "${NGINX_ARGS[@]}" >"$TMP/nginx.log" 2>&1 &
NGINX_PID=$!
wait_http "http://127.0.0.1:$NPORT/system_stats" "$NGINX_PID" 15 || die "nginx did not answer"

# --- measure -------------------------------------------------------------------------------------
run_wrk() { # NAME CONNECTIONS URL [HEADER]
    local name=$1 conns=$2 url=$3 header=${4:-}
    local hargs=()
    [[ -n $header ]] && hargs=(-H "$header")
    timeout $((DURATION + 30)) "${CLIENT_PIN[@]}" wrk -t1 -c"$conns" -d1s "${hargs[@]}" "$url" >/dev/null 2>&1 || true
    timeout $((DURATION + 60)) "${CLIENT_PIN[@]}" wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 5s --latency \
        "${hargs[@]}" "$url" >"$TMP/$name.wrk" 2>&1 || { cat "$TMP/$name.wrk" >&2; die "wrk against $name failed"; }
}

parse_wrk() { # FILE -> "rps p50_ms p99_ms non2xx"
    awk '
    function ms(v) {
        if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
        if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
        if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
        return v + 0
    }
    BEGIN { rps = ""; p50 = p99 = "nan"; bad = 0 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    END { if (rps == "") exit 1; printf "%s %s %s %s\n", rps, p50, p99, bad }' "$1"
}

echo "hub proxy: wrk -t1 -d${DURATION}s per row after a 1 s warm-up; throughput with $CONNS connections, latency with 1; $PIN_NOTE"
echo "comfyd: $COMFYD_BIN; nginx: $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //') (proxy_pass, upstream keepalive 64)"
STATUS=0
AUTH="Authorization: Bearer $TOKEN"
for target in "system_stats" "view?filename=one-mb.bin&type=input"; do
    echo
    echo "GET /${target}"
    printf '  %-8s %12s %8s %8s %12s %12s %12s %12s %8s\n' path "requests/s" "p50 ms" "p99 ms" \
        "1-conn p50" "1-conn p99" "added p50" "added p99" non-2xx
    declare -A RPS=() P50=() P99=() L50=() L99=() BAD=()
    for path in direct hub nginx; do
        case $path in
        direct) url="http://127.0.0.1:$IPORT/$target" hdr="" ;;
        hub) url="$HUB/comfyui/admin/1/$target" hdr=$AUTH ;;
        nginx) url="http://127.0.0.1:$NPORT/$target" hdr="" ;;
        esac
        run_wrk "$path-load" "$CONNS" "$url" "$hdr"
        run_wrk "$path-one" 1 "$url" "$hdr"
        read -r RPS[$path] P50[$path] P99[$path] BAD[$path] < <(parse_wrk "$TMP/$path-load.wrk")
        read -r _ L50[$path] L99[$path] b1 < <(parse_wrk "$TMP/$path-one.wrk")
        BAD[$path]=$((BAD[$path] + b1))
    done
    for path in direct hub nginx; do
        awk -v n="$path" -v r="${RPS[$path]}" -v a="${P50[$path]}" -v b="${P99[$path]}" -v l5="${L50[$path]}" \
            -v l9="${L99[$path]}" -v d5="${L50[direct]}" -v d9="${L99[direct]}" -v bad="${BAD[$path]}" 'BEGIN {
            if (n == "direct") printf "  %-8s %12.0f %8.3f %8.3f %9.0f us %9.0f us %12s %12s %8s\n", n, r, a, b, l5 * 1000, l9 * 1000, "-", "-", bad
            else printf "  %-8s %12.0f %8.3f %8.3f %9.0f us %9.0f us %9.0f us %9.0f us %8s\n", n, r, a, b, l5 * 1000, l9 * 1000, (l5 - d5) * 1000, (l9 - d9) * 1000, bad }'
    done
    awk -v h="${RPS[hub]}" -v n="${RPS[nginx]}" -v hp="${L50[hub]}" -v dp="${L50[direct]}" -v h9="${L99[hub]}" \
        -v d9="${L99[direct]}" 'BEGIN {
        printf "  hub/nginx requests/s %.2f (target >= 1: %s); hub added p50 %.0f us (target < 50: %s), p99 %.0f us (target < 1000: %s)\n",
            h / n, (h >= n) ? "met" : "NOT met", (hp - dp) * 1000, ((hp - dp) * 1000 < 50) ? "met" : "NOT met",
            (h9 - d9) * 1000, ((h9 - d9) * 1000 < 1000) ? "met" : "NOT met" }'
    ((BAD[direct] + BAD[hub] + BAD[nginx] == 0)) || { echo "bench: some answers were not 2xx" >&2; STATUS=1; }
done

# --- 1 GB through the hub, its RSS sampled -------------------------------------------------------
echo
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$HUB_PID/status"; }
RSS0=$(rss)
MAXRSS=$RSS0
curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" -w '%{size_download} %{time_total}\n' \
    "$HUB/comfyui/admin/1/view?filename=one-gb.bin&type=input" >"$TMP/gb.out" &
CURL_PID=$!
while kill -0 "$CURL_PID" 2>/dev/null; do
    r=$(rss)
    ((r > MAXRSS)) && MAXRSS=$r
    sleep 0.05
done
wait "$CURL_PID" || die "the 1 GB download failed"
read -r GB_SIZE GB_TIME <"$TMP/gb.out"
awk -v s="$GB_SIZE" -v t="$GB_TIME" -v a="$RSS0" -v m="$MAXRSS" 'BEGIN {
    printf "1 GB through the hub: %.0f bytes in %.2f s (%.0f MB/s); hub RSS %.1f MiB before, %.1f MiB at most (+%.1f MiB: %s)\n",
        s, t, s / t / 1e6, a / 1024, m / 1024, (m - a) / 1024, ((m - a) < 16384) ? "flat" : "NOT flat" }'
[[ $GB_SIZE == 1073741824 ]] || { echo "bench: the 1 GB download was cut at $GB_SIZE bytes" >&2; STATUS=1; }
exit "$STATUS"
