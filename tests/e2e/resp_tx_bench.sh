#!/bin/bash
# tests/e2e/resp_tx_bench.sh -- transactions/s of kvd against redis-server 7
# in one run: tools/txbench (50 clients, MULTI + 2 x SET + EXEC, P whole
# transactions in flight per client) over Unix sockets.
#
# usage: resp_tx_bench.sh KVD_BIN PLUGIN_DIR TXBENCH [MODE] [ROUNDS]
#   MODE memory: kvd's memory engine against redis-server without
#                persistence (--save '' --appendonly no);
#   MODE log:    kvd's log engine with sync = everysec against
#                redis-server --appendonly yes --appendfsync everysec.
#
# Each round runs, for -P 1 and -P 16, kvd redis redis kvd (so drift on a
# shared machine hits both alike), and the summary gives each side's
# median transactions/s and the ratio of the medians, and the median CPU
# time the server used per 100,000 transactions (utime + stime from
# /proc/PID/stat around each run: less sensitive to a busy machine than
# throughput).
# Not a CTest: it takes minutes and its numbers depend on the machine.
# BENCH_N sets the transactions per run (default 200000); KVD_THREADS the
# [frontend.resp] threads (default 0: automatic).
set -eu
KVD=$1
PLUGINS=$2
TXB=$3
MODE=${4:-memory}
ROUNDS=${5:-3}
N=${BENCH_N:-200000}
T=$(mktemp -d /tmp/kvd_txbench.XXXXXX)
KPID= RPID=
cleanup() {
    [ -n "$KPID" ] && kill "$KPID" 2>/dev/null && wait "$KPID" 2>/dev/null
    [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

case $MODE in
memory)
    ENGINE="name = memory"
    REDIS_PERSIST=(--save '' --appendonly no)
    ;;
log)
    ENGINE=$'name = log\nsync = everysec'
    REDIS_PERSIST=(--save '' --appendonly yes --appendfsync everysec
                   --dir "$T")
    ;;
*)
    echo "unknown mode $MODE (memory or log)" >&2
    exit 2
    ;;
esac

cat > "$T/kvd.ini" <<EOF
[server]
data_dir = $T/data
plugin_dir = $PLUGINS
log_level = warn
[engine]
$ENGINE
[frontend.resp]
unix_socket = $T/kvd.sock
threads = ${KVD_THREADS:-0}
EOF
"$KVD" -c "$T/kvd.ini" 2>"$T/kvd.err" &
KPID=$!
redis-server "${REDIS_PERSIST[@]}" --port 0 --unixsocket "$T/redis.sock" \
    --unixsocketperm 700 --logfile "$T/redis.log" &
RPID=$!
for s in kvd redis; do
    for _ in $(seq 100); do
        redis-cli -s "$T/$s.sock" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
done

# CPU time (ms) the process has used so far.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }

median() { sort -n | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "# txbench -s SOCK -c 50 -n $N -k 2 -r 100000 -d 100 -P {1,16}; mode $MODE"
echo "# rounds $ROUNDS, order per round: kvd redis redis kvd; $(nproc) CPUs"
for p in 1 16; do
    for who in kvd redis; do
        : > "$T/$who.$p"
        : > "$T/$who.cpu.$p"
    done
done
for r in $(seq "$ROUNDS"); do
    for p in 1 16; do
        for who in kvd redis redis kvd; do
            if [ "$who" = kvd ]; then pid=$KPID; else pid=$RPID; fi
            c0=$(cpu_ms "$pid")
            tps=$("$TXB" -s "$T/$who.sock" -c 50 -n "$N" -k 2 -r 100000 \
                  -d 100 -P "$p" -q)
            c1=$(cpu_ms "$pid")
            per=$(awk -v a="$c0" -v b="$c1" -v n="$N" \
                  'BEGIN { printf "%.0f", (b - a) * 100000 / n }')
            echo "round $r $who -P $p $tps tx/s, $per ms CPU per 100k tx"
            echo "$tps" >> "$T/$who.$p"
            echo "$per" >> "$T/$who.cpu.$p"
        done
    done
done
echo "# medians: transactions/s, kvd/redis; server CPU ms per 100k transactions"
for p in 1 16; do
    k=$(median < "$T/kvd.$p")
    rr=$(median < "$T/redis.$p")
    kc=$(median < "$T/kvd.cpu.$p")
    rc=$(median < "$T/redis.cpu.$p")
    awk -v k="$k" -v r="$rr" -v p="$p" -v m="$MODE" -v kc="$kc" -v rc="$rc" \
        'BEGIN { printf "%-6s -P %-2s kvd %9.0f redis %9.0f ratio %.2f   cpu kvd %6.0f redis %6.0f\n", m, p, k, r, (r > 0 ? k / r : 0), kc, rc }'
done
