#!/bin/bash
# http_bench.sh: wrk figures for the http frontend, beside nginx serving a
# static file of the same size in the same run (the practical ceiling for
# HTTP on the machine). Not a CTest: run it by hand, on a quiet machine.
#
# usage: http_bench.sh KVD_BIN PLUGIN_DIR [ENGINE...]   (default: memory)
# env:   DURATION (10s), CONNS (50), WRK_THREADS (2), HTTP_THREADS (2),
#        VALUE_BYTES (100), KEYS (100000)
# needs: wrk, nginx (Debian packages of the same names), curl, python3
set -eu
KVD=$1
PLUGINS=$2
shift 2
ENGINES=("${@:-memory}")
[ ${#ENGINES[@]} -eq 0 ] && ENGINES=(memory)
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
WRK_THREADS=${WRK_THREADS:-2}
HTTP_THREADS=${HTTP_THREADS:-2}
VALUE_BYTES=${VALUE_BYTES:-100}
KEYS=${KEYS:-100000}
T=$(mktemp -d /tmp/kvd_http_bench.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_up() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.05
    done
    echo "not up: $1" >&2
    tail -5 "$T"/*.log "$T"/nginx/error.log 2>/dev/null >&2
    exit 1
}
# run_wrk LABEL ARGS...: one wrk run, printing requests/s and latency.
run_wrk() {
    local label=$1; shift
    echo "## $label"
    echo "\$ wrk -t$WRK_THREADS -c$CONNS -d$DURATION --latency $*"
    wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency "$@" |
        grep -E 'Requests/sec|Latency  |50%|99%|Non-2xx|Socket errors|requests in'
}

cat > "$T/put.lua" <<EOF
local body = string.rep("x", $VALUE_BYTES)
request = function()
    return wrk.format("PUT", "/kv/k" .. math.random(1, $KEYS), nil, body)
end
EOF
cat > "$T/get.lua" <<EOF
request = function()
    return wrk.format("GET", "/kv/k" .. math.random(1, $KEYS))
end
EOF

# --- nginx, a static file of VALUE_BYTES --------------------------------------
NPORT=$(free_port)
mkdir -p "$T/www" "$T/nginx"
head -c "$VALUE_BYTES" /dev/zero | tr '\0' x > "$T/www/static"
# nginx workers drop root: they must be able to read the file.
chmod 755 "$T" "$T/www"
chmod 644 "$T/www/static"
cat > "$T/nginx.conf" <<EOF
worker_processes $HTTP_THREADS;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $T/nginx/body;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fastcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NPORT;
        root $T/www;
        location / { }
    }
}
EOF
nginx -p "$T/nginx" -c "$T/nginx.conf" &
PIDS+=($!)
wait_up "http://127.0.0.1:$NPORT/static"
echo "# nginx $(nginx -v 2>&1 | sed 's/.*\///'), $HTTP_THREADS workers, ${VALUE_BYTES}-byte static file"
run_wrk "nginx GET static file" "http://127.0.0.1:$NPORT/static"

# --- kvd, per engine ------------------------------------------------------------
for engine in "${ENGINES[@]}"; do
    cat > "$T/kvd-$engine.ini" <<EOF
[server]
data_dir = $T/data-$engine
plugin_dir = $PLUGINS
max_key_bytes = 1k
[engine]
name = $engine
[frontend.http]
listen = 127.0.0.1:0
threads = $HTTP_THREADS
EOF
    "$KVD" -c "$T/kvd-$engine.ini" 2> "$T/kvd-$engine.log" &
    KPID=$!
    PIDS+=($KPID)
    # the port the kernel picked, from the log
    PORT=
    for _ in $(seq 1 100); do
        PORT=$(sed -n 's/.*http: listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' \
            "$T/kvd-$engine.log")
        [ -n "$PORT" ] && break
        sleep 0.05
    done
    wait_up "http://127.0.0.1:$PORT/healthz"
    echo "# kvd http, engine $engine, $HTTP_THREADS threads, ${VALUE_BYTES}-byte values, $KEYS keys"
    run_wrk "kvd PUT /kv/k<random> ($engine)" -s "$T/put.lua" \
        "http://127.0.0.1:$PORT"
    run_wrk "kvd GET /kv/k<random> ($engine)" -s "$T/get.lua" \
        "http://127.0.0.1:$PORT"
    curl -s "http://127.0.0.1:$PORT/metrics" |
        grep -E '^kvd_keys |^kvd_http_request_duration_seconds_count'
    kill -TERM "$KPID"
    wait "$KPID" || true
done
