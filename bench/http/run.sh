#!/usr/bin/env bash
# HTTP throughput: wrk against comfyd's GET /system_stats and, as the reference measured in the same
# run, nginx serving a static file of the same bytes at the same path. Both servers get one core.
# Prints requests/s, latencies and the ratio comfyd/nginx (target >= 0.7). Not a pass/fail test: it
# exits non-zero only when it could not measure.
#
# Env: COMFYD_BIN (default build/release/comfyd), BENCH_DURATION (seconds, default 10),
#      BENCH_WARMUP (seconds, default 1), BENCH_CONNECTIONS (default 64), BENCH_PIN (default 1: server
#      on CPU 0, wrk on CPU 1 when there are two CPUs), BENCH_VERBOSE=1 prints wrk's own output.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-1}
CONNS=${BENCH_CONNECTIONS:-64}
TARGET=0.7
[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "BENCH_DURATION must be a positive whole number of seconds"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a whole number of seconds"

need wrk wrk
need curl curl
need timeout coreutils
need_nginx
find_comfyd

SERVER_PIN=() CLIENT_PIN=() PIN_NOTE="not pinned"
if [[ ${BENCH_PIN:-1} != 0 ]] && command -v taskset >/dev/null 2>&1 && (($(nproc) >= 2)); then
    SERVER_PIN=(taskset -c 0) CLIENT_PIN=(taskset -c 1) PIN_NOTE="servers on CPU 0, wrk on CPU 1"
fi

TMP=$(mktemp -d /tmp/comfyd-bench-http.XXXXXX)
chmod 755 "$TMP"
COMFYD_PID="" NGINX_PID=""
cleanup() {
    local rc=$?
    [[ -n $COMFYD_PID ]] && stop_pid "$COMFYD_PID"
    [[ -n $NGINX_PID ]] && stop_pid "$NGINX_PID"
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_log() {
    echo "--- $1 (last 20 lines) ---" >&2
    tail -n 20 "$1" >&2 || true
}

# --- comfyd ----------------------------------------------------------------------------------------
CPORT=$(free_port)
mkdir -p "$TMP/comfyd-base"
"${SERVER_PIN[@]}" "$COMFYD_BIN" serve --listen 127.0.0.1 --port "$CPORT" --base-directory "$TMP/comfyd-base" \
    >"$TMP/comfyd.log" 2>&1 &
COMFYD_PID=$!
CURL_URL="http://127.0.0.1:$CPORT/system_stats"
wait_http "$CURL_URL" "$COMFYD_PID" 15 || {
    show_log "$TMP/comfyd.log"
    die "comfyd did not answer 200 on $CURL_URL"
}
curl -s --max-time 5 -o "$TMP/body" "$CURL_URL" || die "could not fetch $CURL_URL"
BODY_SIZE=$(stat -c %s "$TMP/body")
((BODY_SIZE > 0)) || die "comfyd returned an empty /system_stats body"

# --- nginx: the same bytes, at the same path, as a static file --------------------------------------
NPORT=$(free_port)
write_nginx_conf "$TMP/nginx" "$NPORT"
cp "$TMP/body" "$TMP/nginx/www/system_stats"
chmod 644 "$TMP/nginx/www/system_stats"
mapfile -t NGINX_ARGS < <(nginx_args "$TMP/nginx")
"$NGINX_BIN" -t "${NGINX_ARGS[@]}" >"$TMP/nginx-t.log" 2>&1 || {
    show_log "$TMP/nginx-t.log"
    die "nginx rejected its config"
}
"${SERVER_PIN[@]}" "$NGINX_BIN" "${NGINX_ARGS[@]}" >"$TMP/nginx.log" 2>&1 &
NGINX_PID=$!
NGINX_URL="http://127.0.0.1:$NPORT/system_stats"
wait_http "$NGINX_URL" "$NGINX_PID" 15 || {
    show_log "$TMP/nginx.log"
    show_log "$TMP/nginx/error.log"
    die "nginx did not answer 200 on $NGINX_URL"
}
NGINX_SIZE=$(curl -s --max-time 5 -o /dev/null -w '%{size_download}' "$NGINX_URL")
[[ $NGINX_SIZE == "$BODY_SIZE" ]] || die "nginx body is $NGINX_SIZE bytes, comfyd's $BODY_SIZE"

# --- measure ---------------------------------------------------------------------------------------
# run_wrk NAME URL: warm-up, then the measured run; wrk's output lands in $TMP/NAME.wrk.
run_wrk() {
    local name=$1 url=$2
    if ((WARMUP > 0)); then
        timeout $((WARMUP + 30)) "${CLIENT_PIN[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null 2>&1 ||
            die "wrk warm-up against $name failed"
    fi
    timeout $((DURATION + 60)) "${CLIENT_PIN[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency "$url" \
        >"$TMP/$name.wrk" 2>&1 || {
        cat "$TMP/$name.wrk" >&2
        die "wrk against $name failed"
    }
    if [[ ${BENCH_VERBOSE:-0} == 1 ]]; then cat "$TMP/$name.wrk"; fi
}

# parse_wrk FILE: prints "rps avg_ms p50_ms p90_ms p99_ms max_ms requests non2xx sock_errors".
parse_wrk() {
    awk '
    function ms(v) {
        if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
        if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
        if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
        if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
        return v + 0
    }
    BEGIN { rps = ""; avg = p50 = p90 = p99 = max = "nan"; req = 0; bad = 0; err = 0 }
    $1 == "Latency" && NF >= 4 { avg = ms($2); max = ms($4) }
    $1 == "50%" { p50 = ms($2) }
    $1 == "90%" { p90 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $2 == "requests" && $3 == "in" { req = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { gsub(",", ""); err = $4 + $6 + $8 + $10 }
    END {
        if (rps == "") exit 1
        printf "%s %s %s %s %s %s %s %s %s\n", rps, avg, p50, p90, p99, max, req, bad, err
    }' "$1"
}

echo "HTTP: GET /system_stats ($BODY_SIZE-byte body), wrk -t1 -c$CONNS -d${DURATION}s after ${WARMUP}s warm-up; $PIN_NOTE"
echo "comfyd: $COMFYD_BIN"
echo "nginx:  $NGINX_BIN ($("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')), static file, 1 worker, access_log off"
echo

run_wrk comfyd "$CURL_URL"
run_wrk nginx "$NGINX_URL"
read -r C_RPS C_AVG C_P50 C_P90 C_P99 C_MAX C_REQ C_BAD C_ERR < <(parse_wrk "$TMP/comfyd.wrk") ||
    die "could not read wrk's output for comfyd"
read -r N_RPS N_AVG N_P50 N_P90 N_P99 N_MAX N_REQ N_BAD N_ERR < <(parse_wrk "$TMP/nginx.wrk") ||
    die "could not read wrk's output for nginx"

printf '%-16s %12s %9s %9s %9s %9s %9s %10s %8s %9s\n' \
    server "requests/s" "avg ms" "p50 ms" "p90 ms" "p99 ms" "max ms" requests non-2xx sock-err
row() {
    printf '%-16s %12.0f %9.3f %9.3f %9.3f %9.3f %9.2f %10s %8s %9s\n' "$@"
}
row comfyd "$C_RPS" "$C_AVG" "$C_P50" "$C_P90" "$C_P99" "$C_MAX" "$C_REQ" "$C_BAD" "$C_ERR"
row "nginx (static)" "$N_RPS" "$N_AVG" "$N_P50" "$N_P90" "$N_P99" "$N_MAX" "$N_REQ" "$N_BAD" "$N_ERR"
echo
awk -v c="$C_RPS" -v n="$N_RPS" -v t="$TARGET" 'BEGIN {
    r = (n > 0) ? c / n : 0
    printf "ratio comfyd/nginx requests/s: %.2f   (target >= %.1f: %s)\n", r, t, (r >= t) ? "met" : "NOT met"
}'

STATUS=0
if ((C_BAD > 0 || N_BAD > 0)); then
    echo "bench: some responses were not 2xx/3xx (comfyd $C_BAD, nginx $N_BAD): the figures are not comparable" >&2
    STATUS=1
fi
if ((C_ERR > 0 || N_ERR > 0)); then
    echo "bench: note: socket errors (comfyd $C_ERR, nginx $N_ERR)" >&2
fi
exit "$STATUS"
