#!/bin/bash
# e2e.example_hello: the example engine as a third party builds it.
# Installs kvd into a temporary prefix, builds examples/engine-hello
# against that prefix with its Makefile and `pkg-config kvd` only, runs
# the installed kvd-conformance on it (the conformance suite and the crash
# and fault tests), installs it into the prefix's plugin directory, then
# starts the installed kvd with a config that names the engine and talks
# to it with redis-cli.
# usage: test_out_of_tree.sh BUILD_DIR EXAMPLE_DIR
set -u
B=$1
SRC=$2
T=$(mktemp -d /tmp/kvd_example_hello.XXXXXX)
trap 'pkill -F "$T/kvd.pid" 2>/dev/null; rm -rf "$T"' EXIT
unset KVD_PLUGIN_DIR KVD_TEST_ENGINE
fails=0
pass=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
fail() { fails=$((fails + 1)); echo "FAIL - $1"; return 1; }
check() { local n=$1; shift; if "$@"; then ok "$n"; else fail "$n"; fi; }

cmake --install "$B" --prefix "$T/prefix" >"$T/install.log" 2>&1
check "cmake --install succeeds" test $? -eq 0
pcdir=$(dirname "$(find "$T/prefix" -name kvd.pc | head -1)")
KVD=$(ls "$T/prefix/sbin/kvd" "$T/prefix/bin/kvd" 2>/dev/null | head -1)
check "kvd-conformance is installed" test -x "$T/prefix/bin/kvd-conformance"

# Out of tree: a copy of the example's own files, nothing else.
mkdir -p "$T/hello"
cp "$SRC/hello.c" "$SRC/Makefile" "$T/hello/"
# KVD_EXAMPLE_SANITIZE: the sanitizer flags of a sanitizer build of kvd
san=${KVD_EXAMPLE_SANITIZE:-}
make -C "$T/hello" PKG_CONFIG_PATH="$pcdir" CFLAGS="-O2 -g -Werror $san" \
    LDFLAGS="$san" >"$T/make.log" 2>&1
check "the example builds with make and pkg-config kvd" test $? -eq 0 ||
    cat "$T/make.log"
# (ASan adds an __odr_asan.<name> marker for each exported variable)
check "it exports only its entry symbol" \
    bash -c "[ \"\$(nm -D --defined-only '$T/hello/kvd_engine_hello.so' |
                awk '{print \$NF}' | grep -v '^__odr_asan\.')\" = kvd_engine_entry ]"

"$T/prefix/bin/kvd-conformance" "$T/hello/kvd_engine_hello.so" \
    --opt sync=never --rounds 10 >"$T/kit.log" 2>&1
rc=$?
check "the installed kvd-conformance passes it" test $rc -eq 0
check "the crash and fault tests ran (durable with sync=always)" \
    grep -q "crash and fault: passed" "$T/kit.log"
check "no crash or fault test was skipped" \
    bash -c "! grep -q 'KVD_CAP_DURABLE' '$T/kit.log'"
[ $rc -eq 0 ] || tail -40 "$T/kit.log"

make -C "$T/hello" PKG_CONFIG_PATH="$pcdir" install >>"$T/make.log" 2>&1
check "make install puts it in the installed kvd's plugin directory" \
    test -f "$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=plugindir kvd)/kvd_engine_hello.so"
check "the installed kvd lists it" \
    bash -c "'$KVD' --list-plugins | grep -q 'engines:.*hello'"

cat >"$T/kvd.ini" <<INI
[server]
data_dir = $T/data
[engine]
name = hello
sync = always
[frontend.resp]
unix_socket = $T/kvd.sock
INI
"$KVD" -c "$T/kvd.ini" --daemon --pidfile "$T/kvd.pid" \
    2>"$T/kvd.err"
check "the installed kvd starts with the hello engine" test $? -eq 0 ||
    cat "$T/kvd.err"
for _ in $(seq 100); do [ -S "$T/kvd.sock" ] && break; sleep 0.1; done
cli() { redis-cli -s "$T/kvd.sock" "$@"; }
check "SET through RESP" test "$(cli SET greeting hello)" = OK
check "GET reads it back" test "$(cli GET greeting)" = hello
check "INFO names the engine" bash -c "redis-cli -s '$T/kvd.sock' INFO |
                                         grep -q hello"
pid=$(cat "$T/kvd.pid")
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
check "kvd stops on SIGTERM" bash -c "! kill -0 $pid 2>/dev/null"
check "the value is in the engine's log under the data directory" \
    bash -c "grep -rq greeting '$T/data' --include=hello.log"

echo "$pass passed, $fails failed"
[ $fails -eq 0 ]
