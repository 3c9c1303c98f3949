#!/bin/bash
# tests/e2e/resp_bench.sh -- kvd (resp frontend) against redis-server 7 with
# the same redis-benchmark command over Unix sockets, in one run.
#
# usage: resp_bench.sh KVD_BIN PLUGIN_DIR [ENGINE] [ROUNDS]
#
# Runs `redis-benchmark -s SOCK -t set,get,mset -n 200000 -c 50 -r 100000
# -d 100 -P {1,16}` against kvd and redis-server (persistence off), in the
# order A B B A per round so drift on a shared machine hits both alike, and
# prints each figure and the kvd/redis ratio of the summed requests/s.
# Not a CTest: it takes minutes and its numbers depend on the machine.
# KVD_THREADS sets [frontend.resp] threads (default 0: one per CPU).
# EVERYSEC=1 compares durable set-ups instead: the engine with
# `sync = everysec` beside redis-server with `appendonly yes, appendfsync
# everysec` (the engine must have a `sync` option: log, lsm, btree).
set -eu
KVD=$1
PLUGINS=$2
ENGINE=${3:-memory}
ROUNDS=${4:-1}
N=${BENCH_N:-200000}
T=$(mktemp -d /tmp/kvd_bench.XXXXXX)
KPID= RPID=
cleanup() {
    [ -n "$KPID" ] && kill "$KPID" 2>/dev/null && wait "$KPID" 2>/dev/null
    [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

cat > "$T/kvd.ini" <<EOF
[server]
data_dir = $T/data
plugin_dir = $PLUGINS
log_level = warn
[engine]
name = $ENGINE
$([ "${EVERYSEC:-0}" = 1 ] && echo "sync = everysec")
[frontend.resp]
unix_socket = $T/kvd.sock
threads = ${KVD_THREADS:-0}
EOF
"$KVD" -c "$T/kvd.ini" 2>"$T/kvd.err" &
KPID=$!
AOF="--appendonly no"
[ "${EVERYSEC:-0}" = 1 ] && AOF="--appendonly yes --appendfsync everysec --dir $T"
# shellcheck disable=SC2086 # AOF is two or four words on purpose
redis-server --save '' $AOF --port 0 --unixsocket "$T/redis.sock" \
    --unixsocketperm 700 --logfile "$T/redis.log" &
RPID=$!
for s in kvd redis; do
    for _ in $(seq 100); do
        redis-cli -s "$T/$s.sock" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
done

declare -A sum
run() { # run NAME PIPELINE
    redis-benchmark -s "$T/$1.sock" -t set,get,mset -n "$N" -c 50 \
        -r 100000 -d 100 -P "$2" --csv 2>/dev/null |
        tr -d '"' | awk -F, -v who="$1" -v p="$2" \
            '$1 ~ /^(SET|GET|MSET)/ { split($1, a, " "); print who, p, a[1], $2 }'
}
echo "# redis-benchmark -s SOCK -t set,get,mset -n $N -c 50 -r 100000 -d 100 -P {1,16}"
echo "# engine=$ENGINE everysec=${EVERYSEC:-0} rounds=$ROUNDS order: kvd redis redis kvd; $(nproc) CPUs"
for r in $(seq "$ROUNDS"); do
    for p in 1 16; do
        for who in kvd redis redis kvd; do
            while read -r w pp test rps; do
                echo "round $r $w -P $pp $test $rps"
                k="$w,$pp,$test"
                sum[$k]=$(awk -v a="${sum[$k]:-0}" -v b="$rps" 'BEGIN{print a+b}')
            done < <(run "$who" "$p")
        done
    done
done
echo "# ratio kvd/redis (sum of requests/s over every run)"
for p in 1 16; do
    for test in SET GET MSET; do
        k=${sum[kvd,$p,$test]:-0} r=${sum[redis,$p,$test]:-0}
        awk -v k="$k" -v r="$r" -v t="$test" -v p="$p" -v n=$((2 * ROUNDS)) \
            'BEGIN{ printf "-P %-2s %-4s kvd %10.0f redis %10.0f ratio %.2f\n", p, t, k/n, r/n, (r>0?k/r:0) }'
    done
done
