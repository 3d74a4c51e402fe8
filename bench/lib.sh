# Shared helpers for the benchmark scripts (sourced, not run). Bash, loopback only.
# shellcheck shell=bash

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    echo "bench: $*" >&2
    exit 1
}

# need TOOL DEBIAN_PACKAGE: fail with an install hint when TOOL is not on PATH.
need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found; install it with: apt-get install $2"
}

need_nginx() {
    NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
    if [[ ! -x $NGINX_BIN ]]; then
        NGINX_BIN=$(command -v nginx 2>/dev/null) ||
            die "nginx not found; install it with: apt-get install nginx-light (or nginx)"
    fi
}

# free_port: prints a loopback TCP port the kernel just handed out for port 0.
free_port() {
    if command -v node >/dev/null 2>&1; then
        node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port)+"\n");s.close()})'
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'
    else
        die "need node or python3 to pick a free port; install it with: apt-get install nodejs"
    fi
}

# find_comfyd: sets COMFYD_BIN to the release build (or $COMFYD_BIN), building it when missing.
find_comfyd() {
    if [[ -n ${COMFYD_BIN:-} ]]; then
        [[ -x $COMFYD_BIN ]] || die "COMFYD_BIN=$COMFYD_BIN is not an executable"
        return
    fi
    COMFYD_BIN=$BENCH_ROOT/build/release/comfyd
    if [[ ! -x $COMFYD_BIN && -f $BENCH_ROOT/Makefile ]]; then
        echo "bench: $COMFYD_BIN missing; running make release" >&2
        if command -v flock >/dev/null 2>&1; then
            flock /tmp/comfyd-build.lock make -C "$BENCH_ROOT" release >&2 || die "make release failed"
        else
            make -C "$BENCH_ROOT" release >&2 || die "make release failed"
        fi
    fi
    [[ -x $COMFYD_BIN ]] || die "no release build at $COMFYD_BIN (run 'make release' or set COMFYD_BIN)"
}

# http_status URL: prints the HTTP status code of GET URL ("000" when nothing answered).
http_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}

# wait_http URL PID [SECONDS]: waits until GET URL answers 200, failing early if PID exits.
wait_http() {
    local url=$1 pid=$2 limit=${3:-15} i code
    for ((i = 0; i < limit * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        code=$(http_status "$url")
        [[ $code == 200 ]] && return 0
        sleep 0.05
    done
    return 1
}

# stop_pid PID: SIGTERM, wait up to 5 s, then SIGKILL. Only ever called on PIDs this script started.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# write_nginx_conf DIR PORT: a self-contained config under DIR serving DIR/www on 127.0.0.1:PORT with
# one worker process, no access log, and long keep-alive. Nothing outside DIR is written.
write_nginx_conf() {
    local dir=$1 port=$2 user_line=""
    mkdir -p "$dir/www" "$dir/tmp"
    # As root the worker would drop to nobody, who cannot read a mktemp -d directory: keep our user.
    if [[ $(id -u) == 0 ]]; then user_line="user $(id -un) $(id -gn);"; fi
    cat >"$dir/nginx.conf" <<EOF
$user_line
worker_processes 1;
pid $dir/nginx.pid;
lock_file $dir/nginx.lock;
error_log $dir/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    default_type application/json;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        root $dir/www;
        location / { }
    }
}
EOF
}

# nginx_args DIR: the arguments (one per line) that run nginx in the foreground on DIR.
nginx_args() {
    printf '%s\n' -p "$1" -c "$1/nginx.conf" -e "$1/error.log" -g 'daemon off;'
}
