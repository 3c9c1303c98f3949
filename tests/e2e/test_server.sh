#!/bin/bash
# e2e.server: the kvd binary's command line, config checking, plugin
# refusal, persistence across restarts, and serve / daemonize / shutdown.
# usage: test_server.sh KVD_BIN PLUGIN_DIR
set -u
KVD=$1
PLUGINS=$2
T=$(mktemp -d /tmp/kvd_e2e_server.XXXXXX)
trap 'pkill -F "$T/kvd.pid" 2>/dev/null; rm -rf "$T"' EXIT
fails=0
pass=0

ok() { pass=$((pass + 1)); echo "ok - $1"; }
fail() { fails=$((fails + 1)); echo "FAIL - $1"; }
check() { # check NAME COMMAND...: passes when the command succeeds
    local name=$1; shift
    if "$@"; then ok "$name"; else fail "$name"; fi
}

cfg() { # cfg FILE ENGINE_LINES... : a config with data under $T/data
    local f=$1; shift
    {
        echo "[server]"
        echo "data_dir = $T/data"
        echo "plugin_dir = $PLUGINS"
        echo "[engine]"
        printf '%s\n' "$@"
    } > "$f"
}

# --- command line ---------------------------------------------------------
check "--version prints the version" \
    bash -c "'$KVD' --version | grep -q '^kvd [0-9]'"
check "--help exits 0 and shows usage" \
    bash -c "'$KVD' --help | grep -q 'usage: kvd'"
"$KVD" --bogus >/dev/null 2>&1
check "an unknown flag exits 2" test $? -eq 2

# --- --check-config -------------------------------------------------------
cfg "$T/good.ini" "name = memory"
check "--check-config accepts a valid file" \
    bash -c "'$KVD' --check-config '$T/good.ini' | grep -q 'configuration is valid'"

cfg "$T/badkey.ini" "name = memory" "shardz = 4"
out=$("$KVD" --check-config "$T/badkey.ini" 2>&1); rc=$?
check "--check-config refuses an unknown engine key" test $rc -eq 1
check "the error names file, line and key" \
    grep -q "badkey.ini:6: \[engine\] unknown key 'shardz'" <<<"$out"

cfg "$T/badval.ini" "name = memory" "shards = many"
out=$("$KVD" --check-config "$T/badval.ini" 2>&1)
check "a bad value names file:line, key, value and what is allowed" \
    grep -q "badval.ini:6: \[engine\] shards = many: expected" <<<"$out"

cfg "$T/noengine.ini" "name = nosuchengine"
out=$("$KVD" -c "$T/noengine.ini" 2>&1 </dev/null); rc=$?
check "an unknown engine fails at start" test $rc -eq 1
check "the message lists the engines that exist" \
    grep -q "engine 'nosuchengine' not found.*available engines in .*memory" <<<"$out"

printf '[server]\nplugin_dir = %s\n[engine]\nname = memory\n[frontend.nosuch]\n' \
    "$PLUGINS" > "$T/nofe.ini"
out=$("$KVD" --check-config "$T/nofe.ini" 2>&1); rc=$?
check "an unknown frontend is refused" test $rc -eq 1
check "the message names the section and lists the frontends that exist" \
    grep -q "nofe.ini:5: \[frontend.nosuch\]: frontend 'nosuch' not found.*available frontends in .*stdin" <<<"$out"

# --- persistence through the stdin frontend --------------------------------
cfg "$T/snap.ini" "name = memory" "snapshot_path = dump.kvd" "[frontend.stdin]"
printf 'SET persisted yes\nSET "bin\\x00key" "v\\x01"\n' |
    "$KVD" -c "$T/snap.ini" >/dev/null 2>"$T/snap1.log"
check "EOF on stdin exits 0 and writes the snapshot" \
    test -s "$T/data/memory/dump.kvd"
out=$(printf 'GET persisted\nGET "bin\\x00key"\nDBSIZE\n' |
    "$KVD" -c "$T/snap.ini" 2>"$T/snap2.log")
check "data is there after a restart" grep -q 'yes' <<<"$out"
check "binary keys and values survive the restart" grep -q 'v\\x01' <<<"$out"

# --- daemon, pid file, graceful shutdown -----------------------------------
cfg "$T/daemon.ini" "name = memory" "snapshot_path = dump.kvd"
"$KVD" -c "$T/daemon.ini" --daemon --pidfile "$T/kvd.pid"
check "--daemon returns 0 once the server is up" test $? -eq 0
check "the pid file names a live process" \
    bash -c "kill -0 \$(cat '$T/kvd.pid')"
"$KVD" -c "$T/daemon.ini" --daemon --pidfile "$T/kvd.pid" 2>"$T/second.err"
check "a second server on the same pid file is refused" test $? -ne 0
check "the daemon logs to DATA_DIR/kvd.log" \
    grep -q "ready: engine memory" "$T/data/kvd.log"
pid=$(cat "$T/kvd.pid")
kill -TERM "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
check "SIGTERM stops the daemon" bash -c "! kill -0 $pid 2>/dev/null"
check "the pid file is removed on shutdown" test ! -e "$T/kvd.pid"
check "shutdown is logged as graceful" grep -q "shutting down: SIGTERM" "$T/data/kvd.log"

# Foreground + SIGINT: exit status 0.
"$KVD" -c "$T/daemon.ini" 2>"$T/fg.log" &
fg=$!
for _ in $(seq 50); do grep -q "ready:" "$T/fg.log" && break; sleep 0.1; done
kill -INT $fg
wait $fg
check "SIGINT in the foreground exits 0" test $? -eq 0

echo "$pass passed, $fails failed"
[ $fails -eq 0 ]
