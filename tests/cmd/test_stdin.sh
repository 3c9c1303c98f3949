#!/bin/bash
# tests/cmd/test_stdin.sh -- the stdin frontend end to end, through the real
# kvd binary: exact output of command scripts, exit status 0 at EOF, prompt
# stop on SIGTERM while stdin is still open.
#
# usage: test_stdin.sh KVD_BINARY PLUGIN_DIR
set -u
kvd=$1
plugins=$2
tmp=$(mktemp -d /tmp/kvd-stdin-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0

cat > "$tmp/kvd.ini" <<INI
[server]
log_level = warn
data_dir = $tmp/data
plugin_dir = $plugins
[engine]
name = memory
[frontend.stdin]
INI

# run NAME: feed $tmp/in to kvd, compare stdout with $tmp/want, expect rc 0.
run() {
    local name=$1
    "$kvd" -c "$tmp/kvd.ini" < "$tmp/in" > "$tmp/out" 2> "$tmp/err"
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "FAIL $name: exit status $rc"; cat "$tmp/err"; failures=$((failures+1))
        return
    fi
    if ! cmp -s "$tmp/want" "$tmp/out"; then
        echo "FAIL $name: output differs (want vs got)"
        diff "$tmp/want" "$tmp/out"; failures=$((failures+1))
        return
    fi
    echo "ok   $name"
}

# 1. The issue's example.
printf 'SET a 1\nGET a\nMSET b 2 c 3\nMGET a b c\nDEL a\nGET a\n' > "$tmp/in"
cat > "$tmp/want" <<'OUT'
OK
"1"
OK
1) "1"
2) "2"
3) "3"
(integer) 1
(nil)
OUT
run issue_example

# 2. Quoting, binary values, errors, blank lines, arrays.
cat > "$tmp/in" <<'IN'
SET "a b" "x\x00y\n\"q\"\\"

GET "a b"
SET 'single quoted' 'it\'s raw \n'
GET 'single quoted'
GET missing
FOO bar baz
GET
SET k "unbalanced
   set   spaced    out   
GET spaced
EXPIRE spaced 100
TTL spaced
TTL nokey
KEYS nomatch*
SET n 9223372036854775807
INCR n
SET e ""
GET e
MGET e nokey
COMMAND INFO echo
IN
cat > "$tmp/want" <<'OUT'
OK
"x\x00y\n\"q\"\\"
OK
"it's raw \\n"
(nil)
ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' 
ERR wrong number of arguments for 'get' command
ERR Protocol error: unbalanced quotes in request
OK
"out"
(integer) 1
(integer) 100
(integer) -2
(empty array)
OK
ERR increment or decrement would overflow
OK
""
1) ""
2) (nil)
1)  1) "echo"
    2) (integer) 2
    3) 1) fast
    4) (integer) 0
    5) (integer) 0
    6) (integer) 0
    7) 1) "@connection"
       2) "@read"
       3) "@fast"
    8) (empty array)
    9) (empty array)
   10) (empty array)
OUT
run quoting_errors_arrays

# 3. Printed values read back as input give the same bytes.
printf 'SET k "\\x01\\xfe\\t\\r\\a\\b end"\nGET k\n' > "$tmp/in"
"$kvd" -c "$tmp/kvd.ini" < "$tmp/in" > "$tmp/out" 2> "$tmp/err"
printed=$(sed -n 2p "$tmp/out")
printf 'SET k2 %s\nGET k2\n' "$printed" > "$tmp/in"
printf 'OK\n%s\n' "$printed" > "$tmp/want"
run output_feeds_back_as_input

# 4. QUIT ends the session; lines after it are not run. A last line
#    without its newline is run.
printf 'SET q 1\nQUIT\nSET q 2\n' > "$tmp/in"
printf 'OK\nOK\n' > "$tmp/want"
run quit_stops_reading
printf 'PING\nECHO last' > "$tmp/in"
printf 'PONG\n"last"\n' > "$tmp/want"
run last_line_without_newline

# 4b. Transactions through the shared layer: MULTI queues, EXEC answers
# every reply, a WATCH conflict gives the null array.
cat > "$tmp/in" <<'IN'
MULTI
SET t 1
INCR t
GET t
EXEC
WATCH t
SET t 5
MULTI
GET t
EXEC
EXEC
IN
cat > "$tmp/want" <<'OUT'
OK
QUEUED
QUEUED
QUEUED
1) OK
2) (integer) 2
3) "2"
OK
OK
OK
QUEUED
(nil)
ERR EXEC without MULTI
OUT
run multi_exec

# 5. SIGTERM while stdin stays open: the reader wakes and kvd exits 0.
mkfifo "$tmp/fifo"
"$kvd" -c "$tmp/kvd.ini" < "$tmp/fifo" > "$tmp/out" 2> "$tmp/err" &
pid=$!
exec 3> "$tmp/fifo"
printf 'SET live 1\n' >&3
for _ in $(seq 50); do
    [ -s "$tmp/out" ] && break
    sleep 0.1
done
kill -TERM $pid
rc=124
for _ in $(seq 50); do
    if ! kill -0 $pid 2>/dev/null; then
        wait $pid; rc=$?
        break
    fi
    sleep 0.1
done
exec 3>&-
if [ $rc -eq 124 ]; then
    kill -KILL $pid 2>/dev/null
    echo "FAIL sigterm_with_open_stdin: still running 5 s after SIGTERM"
    failures=$((failures+1))
elif [ $rc -ne 0 ] || [ "$(cat "$tmp/out")" != "OK" ]; then
    echo "FAIL sigterm_with_open_stdin: rc=$rc out=$(cat "$tmp/out")"
    cat "$tmp/err"; failures=$((failures+1))
else
    echo "ok   sigterm_with_open_stdin"
fi

if [ $failures -ne 0 ]; then
    echo "$failures stdin test(s) failed"
    exit 1
fi
echo "all stdin tests passed"
