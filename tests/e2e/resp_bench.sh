#!/bin/bash
# tests/e2e/resp_bench.sh -- kvd (resp frontend) against redis-server 7 with
# the same redis-benchmark command over Unix sockets, in one run.
#
# usage: resp_bench.sh KVD_BIN PLUGIN_DIR [ENGINE] [ROUNDS]
#
# Runs `redis-benchmark -s SOCK -t T -n 200000 -c 50 -r 100000 -d 100
# -P {1,16}` for T in set, get, mset against kvd and redis-server
# (persistence off), in the order A B B A per round so drift on a shared
# machine hits both alike, and prints each figure with, per request of
# that run, the server's CPU time (utime + stime of every thread,
# /proc/PID/stat), its context switches (/proc/PID/task/*/status) and
# redis-benchmark's own CPU time; then the kvd/redis ratio of the summed
# requests/s and the means of the rest.
# Not a CTest: it takes minutes and its numbers depend on the machine.
# KVD_THREADS sets [frontend.resp] threads (default 0: one per CPU).
# CPUS=LIST runs both servers and redis-benchmark under `taskset -c LIST`.
# With a single CPU the client and the server share it, so requests/s
# measures the server's cost per request plus the client's; on two CPUs
# at -P 1 the client's own CPU is what bounds both servers.
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
KPID='' RPID=''
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
PIN=()
[ -n "${CPUS:-}" ] && PIN=(taskset -c "$CPUS")
"${PIN[@]}" "$KVD" -c "$T/kvd.ini" 2>"$T/kvd.err" &
KPID=$!
AOF="--appendonly no"
[ "${EVERYSEC:-0}" = 1 ] && AOF="--appendonly yes --appendfsync everysec --dir $T"
# shellcheck disable=SC2086 # AOF is two or four words on purpose
"${PIN[@]}" redis-server --save '' $AOF --port 0 --unixsocket "$T/redis.sock" \
    --unixsocketperm 700 --logfile "$T/redis.log" &
RPID=$!
for s in kvd redis; do
    for _ in $(seq 100); do
        redis-cli -s "$T/$s.sock" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
done

declare -A sum pid=([kvd]=$KPID [redis]=$RPID)
HZ=$(getconf CLK_TCK)
# cputicks PID: user + system clock ticks of every thread of PID so far
cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# switches PID: context switches of every thread of PID so far (a server
# that goes to sleep in epoll_wait is woken by the client's next request)
switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^(non)?voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }'
}
# childcpu FILE: seconds of CPU of the reaped children in a `times` output
childcpu() {
    awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); c += t[1] * 60 + t[2] } print c }' "$1"
}
# run NAME PIPELINE TEST: prints "REQUESTS/S SERVER-US CLIENT-US SWITCHES"
# per request: the server's and redis-benchmark's CPU time, the server's
# context switches.
run() {
    local t0 t1 s0 s1 c0 c1 rps
    # `times` runs in this shell, not in a $(...): a subshell's `times`
    # counts only the subshell's own children.
    times >"$T/times0"
    t0=$(cputicks "${pid[$1]}") s0=$(switches "${pid[$1]}")
    rps=$("${PIN[@]}" redis-benchmark -s "$T/$1.sock" -t "$3" -n "$N" -c 50 \
        -r 100000 -d 100 -P "$2" --csv 2>/dev/null |
        tr -d '"' | awk -F, -v t="${3^^}" '$1 == t || index($1, t " ") == 1 { print $2 }')
    t1=$(cputicks "${pid[$1]}") s1=$(switches "${pid[$1]}")
    times >"$T/times1"
    c0=$(childcpu "$T/times0") c1=$(childcpu "$T/times1")
    awk -v r="$rps" -v d=$((t1 - t0)) -v hz="$HZ" -v n="$N" -v c0="$c0" \
        -v c1="$c1" -v sw=$((s1 - s0)) \
        'BEGIN { printf "%s %.2f %.2f %.3f\n", r, d / hz / n * 1e6, (c1 - c0) / n * 1e6, sw / n }'
}
echo "# redis-benchmark -s SOCK -t {set,get,mset} -n $N -c 50 -r 100000 -d 100 -P {1,16}"
echo "# engine=$ENGINE everysec=${EVERYSEC:-0} rounds=$ROUNDS cpus=${CPUS:-any} order: kvd redis redis kvd; $(nproc) CPUs"
for r in $(seq "$ROUNDS"); do
    for p in 1 16; do
        for who in kvd redis redis kvd; do
            for test in set get mset; do
                read -r rps us cus sw < <(run "$who" "$p" "$test")
                echo "round $r $who -P $p ${test^^} $rps server ${us}us/req ${sw} switches/req client ${cus}us/req"
                k="$who,$p,${test^^}"
                for f in "rps $rps" "us $us" "cus $cus" "sw $sw"; do
                    read -r name v <<<"$f"
                    sum[$k,$name]=$(awk -v a="${sum[$k,$name]:-0}" -v b="$v" 'BEGIN{print a+b}')
                done
            done
        done
    done
done
echo "# ratio kvd/redis of the summed requests/s; means per request of the"
echo "# server's CPU time, its context switches and the client's CPU time"
for p in 1 16; do
    for test in SET GET MSET; do
        awk -v t="$test" -v p="$p" -v n=$((2 * ROUNDS)) \
            -v k="${sum[kvd,$p,$test,rps]:-0}" -v r="${sum[redis,$p,$test,rps]:-0}" \
            -v ku="${sum[kvd,$p,$test,us]:-0}" -v ru="${sum[redis,$p,$test,us]:-0}" \
            -v ks="${sum[kvd,$p,$test,sw]:-0}" -v rs="${sum[redis,$p,$test,sw]:-0}" \
            -v kc="${sum[kvd,$p,$test,cus]:-0}" -v rc="${sum[redis,$p,$test,cus]:-0}" \
            'BEGIN { printf "-P %-2s %-4s kvd %10.0f redis %10.0f ratio %.2f | server us/req %.2f %.2f | switches/req %.3f %.3f | client us/req %.2f %.2f\n", p, t, k/n, r/n, (r>0?k/r:0), ku/n, ru/n, ks/n, rs/n, kc/n, rc/n }'
    done
done
