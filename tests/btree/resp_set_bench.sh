#!/bin/bash
# tests/btree/resp_set_bench.sh -- RESP SET throughput of kvd with the btree
# engine (sync = everysec) beside redis-server with the AOF fsynced every
# second, in one run.
#
# usage: resp_set_bench.sh KVD_BIN PLUGIN_DIR ROUNDS [OTHER_PLUGIN_DIR]
#
# Runs `redis-benchmark -p PORT -t set -P 16 -n 200000 -q $BENCH_EXTRA`
# against each server, per round in the order kvd redis redis kvd (with
# OTHER_PLUGIN_DIR, a second kvd whose btree plugin comes from there,
# "old": kvd old redis redis old kvd), so drift on a shared machine hits
# all alike. TCP on free loopback ports, data in a fresh temp directory.
# Prints one line per run; take medians. Not a CTest: it takes minutes
# and its numbers depend on the machine.
set -eu
KVD=$1 PLUGINS=$2 ROUNDS=$3 OLD=${4:-} EXTRA=${BENCH_EXTRA:-}
T=$(mktemp -d /tmp/btree-setbench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT
freeport() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
start_kvd() { # NAME PLUGIN_DIR PORT
    mkdir -p "$T/$1"
    cat >"$T/$1/kvd.ini" <<EOI
[server]
data_dir = $T/$1/data
plugin_dir = $2
log_level = warn
[engine]
name = btree
sync = everysec
[frontend.resp]
unix_socket = $T/$1/kvd.sock
tcp = 127.0.0.1:$3
EOI
    "$KVD" -c "$T/$1/kvd.ini" 2>"$T/$1/err" &
    PIDS+=($!)
}
declare -A PORT
PORT[kvd]=$(freeport)
start_kvd kvd "$PLUGINS" "${PORT[kvd]}"
if [ -n "$OLD" ]; then
    PORT[old]=$(freeport)
    start_kvd old "$OLD" "${PORT[old]}"
fi
PORT[redis]=$(freeport)
mkdir -p "$T/redis"
redis-server --port "${PORT[redis]}" --bind 127.0.0.1 --dir "$T/redis" \
    --save '' --appendonly yes --appendfsync everysec \
    --logfile "$T/redis/log" &
PIDS+=($!)
for w in "${!PORT[@]}"; do
    for _ in $(seq 100); do
        redis-cli -p "${PORT[$w]}" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
done
who=(kvd redis redis kvd)
[ -n "$OLD" ] && who=(kvd old redis redis old kvd)
echo "# redis-benchmark -p PORT -t set -P 16 -n 200000 -q $EXTRA;" \
    "order ${who[*]}; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    for w in "${who[@]}"; do
        # shellcheck disable=SC2086 # EXTRA is a list of options
        v=$(redis-benchmark -p "${PORT[$w]}" -t set -P 16 -n 200000 -q \
            $EXTRA 2>/dev/null | tr '\r' '\n' | grep -o 'SET: [0-9.]*' |
            tail -1 | awk '{print $2}')
        echo "round $r $w $v"
    done
done
