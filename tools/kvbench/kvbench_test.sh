#!/bin/sh
# tools/kvbench/kvbench_test.sh -- e2e checks of kvbench (CTest label e2e).
#
# usage: kvbench_test.sh KVBENCH CASE
#   memory        every workload on the memory engine through the vtable,
#                 exact found/entry counts on a known data set, threads
#   memory_store  the same through the core's store wrappers (--store)
#   leveldb       every workload on the LevelDB backend, plus reopen
#   rocksdb       every workload on the RocksDB backend, plus reopen
#   tkrzw         every workload on tkrzw HashDBM, exact counts, deletes
#   tkrzw_tree    the same on tkrzw TreeDBM
#   lmdb          the same on LMDB
#   refusals      bad engine, benchmark, option, key size and --db are
#                 refused with their own message and a non-zero status
# Speed is never checked: only exit status, lines and counts.
set -u

KVBENCH=$1
CASE=$2
NUM=2000
ALL=fillseq,fillsync,fillrandom,overwrite,readrandom,readmissing,readhot,readseq,deleterandom,deletecount,compact,reopen
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvbench-test-XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
FAILS=0

fail() {
    echo "FAIL: $*" >&2
    FAILS=$((FAILS + 1))
}

# run NAME ARGS...: run kvbench, keep stdout/stderr in $WORK/NAME.{out,err}
run() {
    _out=$WORK/$1
    shift
    "$KVBENCH" "$@" >"$_out.out" 2>"$_out.err"
    echo $? >"$_out.rc"
}

expect_rc() { # NAME RC
    _rc=$(cat "$WORK/$1.rc")
    if [ "$_rc" != "$2" ]; then
        fail "$1: exit status $_rc, expected $2"
        sed 's/^/  | /' "$WORK/$1.out" "$WORK/$1.err" >&2
    fi
}

expect_out() { # NAME REGEX
    grep -Eq -- "$2" "$WORK/$1.out" || {
        fail "$1: no stdout line matches: $2"
        sed 's/^/  | /' "$WORK/$1.out" >&2
    }
}

expect_err() { # NAME REGEX
    grep -Eq -- "$2" "$WORK/$1.err" || {
        fail "$1: no stderr line matches: $2"
        sed 's/^/  | /' "$WORK/$1.err" >&2
    }
}

RATE='[0-9]+\.[0-9]{3} micros/op [0-9]+ ops/sec;'

# Every workload prints its line; the db_bench line format holds.
check_all() { # NAME PERSISTENT(yes|no) ARGS...
    name=$1
    persistent=$2
    shift 2
    run "$name" --num $NUM --benchmarks $ALL "$@"
    expect_rc "$name" 0
    for wl in fillseq fillsync fillrandom overwrite readrandom readmissing \
        readhot readseq deleterandom deletecount; do
        expect_out "$name" "^$wl +: +$RATE"
    done
    expect_out "$name" "^fillrandom +: +$RATE +[0-9.]+ MB/s$"
    expect_out "$name" "^fillsync +: +$RATE .*\(2 ops; "
    expect_out "$name" "^readmissing +: +$RATE \(0 of $NUM found\)$"
    expect_out "$name" "^readseq +: +$RATE .*\([0-9]+ entries\)$"
    expect_out "$name" "^compact +: +([0-9]+\.[0-9]{3} ms|skipped)"
    expect_out "$name" "^Entries: +$NUM$"
    expect_out "$name" "^keys +: [0-9]+ "
    if [ "$persistent" = yes ]; then
        expect_out "$name" "^reopen +: +[0-9]+\.[0-9]{3} ms \(close "
        expect_out "$name" "^reopen keys +: [0-9]+ "
    else
        expect_out "$name" "^reopen +: n/a \(engine is not persistent\)$"
    fi
}

# Exact counts on a known data set: fillseq writes keys 0..NUM-1.
check_counts() { # NAME KEYS_HOW ARGS...
    name=$1
    how=$2
    shift 2
    run "$name.seq" --num $NUM \
        --benchmarks fillseq,readrandom,readmissing,readhot,readseq "$@"
    expect_rc "$name.seq" 0
    expect_out "$name.seq" "^readrandom +: +$RATE .*\($NUM of $NUM found\)$"
    expect_out "$name.seq" "^readmissing +: +$RATE \(0 of $NUM found\)$"
    expect_out "$name.seq" "^readhot +: +$RATE .*\($NUM of $NUM found\)$"
    expect_out "$name.seq" "^readseq +: +$RATE .*\($NUM entries\)$"
    expect_out "$name.seq" "^keys +: $NUM \($how\)$"

    # --reads limits the reads and the scan.
    run "$name.reads" --num $NUM --reads 500 \
        --benchmarks fillseq,readrandom,readseq "$@"
    expect_rc "$name.reads" 0
    expect_out "$name.reads" "^readrandom +: .*\(500 of 500 found\)$"
    expect_out "$name.reads" "^readseq +: .*\(500 entries\)$"

    # Four threads share the reads; each walks the whole db in readseq.
    run "$name.threads" --num $NUM --threads 4 \
        --benchmarks fillseq,readrandom,readseq "$@"
    expect_rc "$name.threads" 0
    expect_out "$name.threads" "^Threads: +4$"
    expect_out "$name.threads" "^readrandom +: .*\($NUM of $NUM found\)$"
    expect_out "$name.threads" "^readseq +: .*\($((NUM * 4)) entries\)$"
}

# After deletecount, the keys left = NUM - deleted, by scan and by stats.
# The blind deleterandom (and its old name deleteblind) deletes the same
# keys (same seed, same slot in the list) and reports no count.
check_deletes() { # NAME ARGS...
    name=$1
    shift
    run "$name.del" --num $NUM --benchmarks fillseq,deletecount,readseq "$@"
    expect_rc "$name.del" 0
    deleted=$(sed -nE 's/^deletecount .*\(([0-9]+) of '$NUM' found\)$/\1/p' \
        "$WORK/$name.del.out")
    if [ -z "$deleted" ] || [ "$deleted" -le 0 ]; then
        fail "$name.del: no deletecount found count"
        return
    fi
    left=$((NUM - deleted))
    expect_out "$name.del" "^readseq +: .*\($left entries\)$"
    expect_out "$name.del" "^keys +: $left \(engine stats\)$"
    for wl in deleterandom deleteblind; do
        run "$name.$wl" --num $NUM --benchmarks fillseq,$wl,readseq "$@"
        expect_rc "$name.$wl" 0
        expect_out "$name.$wl" "^$wl +: +$RATE +[0-9.]+ MB/s$"
        expect_out "$name.$wl" "^readseq +: .*\($left entries\)$"
        expect_out "$name.$wl" "^keys +: $left \(engine stats\)$"
    done
}

case "$CASE" in
memory)
    check_all memory no --engine memory
    check_counts memory "engine stats" --engine memory
    check_deletes memory --engine memory
    # The same seed gives the same data: fillrandom's found count repeats.
    run seed1 --num $NUM --benchmarks fillrandom,readrandom --seed 7
    run seed2 --num $NUM --benchmarks fillrandom,readrandom --seed 7
    a=$(grep '^readrandom' "$WORK/seed1.out" | sed -E 's/.*(\(.*\))$/\1/')
    b=$(grep '^readrandom' "$WORK/seed2.out" | sed -E 's/.*(\(.*\))$/\1/')
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "seed: '$a' != '$b'"
    ;;
memory_store)
    check_all store no --engine memory --store
    expect_out store "via the core store wrappers"
    check_counts store "engine stats" --engine memory --store
    check_deletes store --engine memory --store
    ;;
leveldb | rocksdb)
    check_all "$CASE" yes --engine "$CASE"
    check_counts "$CASE" "counted by iteration" --engine "$CASE"
    # An existing db is reused as is: fills are skipped, reads find it.
    run "$CASE.keep" --num $NUM --benchmarks fillseq --db "$WORK/db" \
        --engine "$CASE"
    expect_rc "$CASE.keep" 0
    run "$CASE.reuse" --num $NUM --benchmarks fillrandom,readrandom \
        --db "$WORK/db" --use_existing --engine "$CASE"
    expect_rc "$CASE.reuse" 0
    expect_out "$CASE.reuse" "^fillrandom +: skipped \(--use_existing\)$"
    expect_out "$CASE.reuse" "^readrandom +: .*\($NUM of $NUM found\)$"
    ;;
tkrzw | tkrzw_tree | lmdb)
    case "$CASE" in
    tkrzw) args="--engine tkrzw" ;;
    tkrzw_tree) args="--engine tkrzw --opt dbm=tree" ;;
    *) args="--engine lmdb --opt map_size=256m" ;;
    esac
    # shellcheck disable=SC2086
    check_all "$CASE" yes $args
    # shellcheck disable=SC2086
    check_counts "$CASE" "engine stats" $args
    # shellcheck disable=SC2086
    check_deletes "$CASE" $args
    run "$CASE.badopt" --num 10 $args --opt no_such_option=1
    expect_rc "$CASE.badopt" 2
    expect_err "$CASE.badopt" "no_such_option"
    ;;
refusals)
    run noengine --engine no_such_engine --num 10
    expect_rc noengine 2
    expect_err noengine "no_such_engine"
    expect_err noengine "memory"

    run nobench --engine memory --num 10 --benchmarks fillseq,bogus
    expect_rc nobench 2
    expect_err nobench "unknown benchmark bogus: expected one of fillseq"

    run badopt --engine memory --num 10 --opt no_such_option=1
    expect_rc badopt 2
    expect_err badopt "no_such_option"

    run noeq --engine memory --num 10 --opt justakey
    expect_rc noeq 2
    expect_err noeq "--opt justakey: expected KEY=VALUE"

    run keysize --engine memory --num 2000 --key_size 3
    expect_rc keysize 2
    expect_err keysize "--key_size 3 cannot hold key numbers up to 1999"

    run badnum --engine memory --num 0
    expect_rc badnum 2
    expect_err badnum "--num 0: expected an integer"

    mkdir -p "$WORK/full" && echo precious >"$WORK/full/file"
    run notempty --engine memory --num 10 --db "$WORK/full"
    expect_rc notempty 2
    expect_err notempty "is not empty"
    [ -f "$WORK/full/file" ] || fail "notempty: a file in --db was removed"

    run existing --engine memory --num 10 --use_existing
    expect_rc existing 2
    expect_err existing "--use_existing needs --db"
    ;;
*)
    echo "unknown case $CASE" >&2
    exit 2
    ;;
esac

if [ $FAILS -ne 0 ]; then
    echo "$FAILS check(s) failed" >&2
    exit 1
fi
echo "kvbench $CASE: all checks passed"
