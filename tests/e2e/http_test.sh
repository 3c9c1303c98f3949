#!/bin/bash
# e2e.http.<engine>: the http frontend against a real kvd with one engine.
# Every route, status code and error of the HTTP API (docs/http.md), binary
# and large bodies, percent-encoded keys (NUL included), concurrent
# clients, malformed requests sent raw with nc (the server must answer
# with an error and keep serving), authentication and strict content
# types (a second server), /metrics counting the commands of a resp
# frontend beside it (a third server), and a graceful stop with a request
# in flight.
#
# usage: http_test.sh KVD_BIN PLUGIN_DIR ENGINE
# needs: curl, nc (netcat-openbsd), python3 (one raw client), redis-cli
# (the resp check only; skipped without it)
set -u
KVD=$1
PLUGINS=$2
ENGINE=${3:-memory}
T=$(mktemp -d /tmp/kvd_e2e_http.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fails=0
pass=0

ok() { pass=$((pass + 1)); echo "ok - $1"; }
fail() { fails=$((fails + 1)); echo "FAIL - $1"; }
check() { # check NAME COMMAND...: passes when the command succeeds
    local name=$1; shift
    if "$@"; then ok "$name"; else fail "$name"; fi
}

# start_kvd NAME EXTRA_HTTP_LINES...: a server with its own data dir, on a
# port the kernel picks (read back from the log, so no other server can
# take it first or be mistaken for ours); sets PORT, URL, and KPID. Exits
# the test, showing kvd's log, if kvd stops or is not up within 10 s.
start_kvd() {
    local name=$1; shift
    {
        echo "[server]"
        echo "data_dir = $T/data-$name"
        echo "plugin_dir = $PLUGINS"
        echo "log_level = debug"
        echo "max_key_bytes = 200"
        echo "[engine]"
        echo "name = $ENGINE"
        echo "[frontend.http]"
        echo "listen = 127.0.0.1:0"
        echo "threads = 2"
        printf '%s\n' "$@"
    } > "$T/$name.ini"
    "$KVD" -c "$T/$name.ini" 2> "$T/$name.log" &
    KPID=$!
    PIDS+=("$KPID")
    for _ in $(seq 1 200); do
        if ! kill -0 "$KPID" 2>/dev/null; then
            wait "$KPID" 2>/dev/null
            break
        fi
        PORT=$(sed -n 's/.*http: listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' \
            "$T/$name.log")
        URL="http://127.0.0.1:$PORT"
        if [ -n "$PORT" ] && curl -s -o /dev/null "$URL/healthz"; then
            return 0
        fi
        sleep 0.05
    done
    echo "kvd did not come up:"; cat "$T/$name.log"
    exit 1
}

# req METHOD PATH [curl args...]: sets CODE, BODY (file $T/body) and
# HDRS (file $T/hdrs).
req() {
    local m=$1 p=$2; shift 2
    CODE=$(curl -s -X "$m" -o "$T/body" -D "$T/hdrs" -w '%{http_code}' \
        "$@" "$URL$p")
    BODY=$(tr -d '\0' < "$T/body")
}
# expect NAME CODE [BODY]: the last request's status (and exact body).
expect() {
    local name=$1 code=$2
    if [ "$CODE" != "$code" ]; then
        fail "$name (status $CODE, expected $code; body: $BODY)"
        return
    fi
    if [ $# -ge 3 ] && [ "$BODY" != "$3" ]; then
        fail "$name (body '$BODY', expected '$3')"
        return
    fi
    ok "$name"
}
header() { # header NAME: value of a response header of the last request
    grep -i "^$1:" "$T/hdrs" | head -1 | sed 's/^[^:]*: *//' | tr -d '\r'
}
# raw REQUEST: send bytes with nc; the status line comes back in RAW.
raw() {
    RAW=$(printf "$1" | nc -w 3 127.0.0.1 "$PORT" 2>/dev/null | head -1 |
        tr -d '\r')
}

echo "# engine $ENGINE"
start_kvd main
MAIN_PID=$KPID
MAIN_URL=$URL
MAIN_PORT=$PORT

# --- health, readiness ------------------------------------------------------
req GET /healthz
expect "/healthz answers 200" 200 '{"status":"ok"}'
req GET /readyz
expect "/readyz answers 200 once the engine is open" 200 '{"status":"ready"}'
req POST /healthz -d x
expect "POST /healthz is 405" 405 '{"error":"method not allowed"}'
check "405 carries Allow: GET, HEAD" test "$(header Allow)" = "GET, HEAD"
req GET /nope
expect "an unknown path is 404" 404 '{"error":"no such endpoint"}'

# --- single keys --------------------------------------------------------------
req PUT /kv/a --data-binary v1
expect "PUT of a new key is 201" 201
req PUT /kv/a --data-binary v2
expect "PUT over an existing key is 204" 204
req GET /kv/a
expect "GET returns the value" 200 v2
check "GET is application/octet-stream" \
    test "$(header Content-Type)" = "application/octet-stream"
check "GET has Content-Length" test "$(header Content-Length)" = 2
check "GET says nosniff" test "$(header X-Content-Type-Options)" = nosniff
check "no X-KV-TTL without an expiry" test -z "$(header X-KV-TTL)"
req HEAD /kv/a -I
expect "HEAD of a present key is 200" 200
check "HEAD has the value's Content-Length" test "$(header Content-Length)" = 2
printf 'HEAD /kv/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    nc -w 3 127.0.0.1 "$PORT" > "$T/head" 2>/dev/null
check "HEAD sends no body (the response ends with its headers)" \
    test "$(tail -c 4 "$T/head" | od -An -tx1 | tr -d ' ')" = 0d0a0d0a
req HEAD /kv/missing -I
expect "HEAD of a missing key is 404" 404
req GET /kv/missing
expect "GET of a missing key is 404" 404 '{"error":"key not found"}'
req DELETE /kv/a
expect "DELETE of a present key is 204" 204 ""
req DELETE /kv/a
expect "DELETE of a missing key is 404" 404 '{"error":"key not found"}'
req GET /kv/a
expect "a deleted key is gone" 404

# --- errors on single keys ----------------------------------------------------
req PUT /kv/ --data-binary v
expect "PUT of an empty key is 400" 400 '{"error":"key cannot be empty"}'
req GET /kv/
expect "GET of an empty key is 400" 400 '{"error":"key cannot be empty"}'
req PUT /kv/e --data-binary ''
expect "PUT of an empty body is 400" 400 '{"error":"value cannot be empty"}'
req PUT /kv/e
expect "PUT without Content-Length is 411" 411 \
    '{"error":"Content-Length required"}'
req PATCH /kv/a --data-binary x
expect "PATCH /kv/{key} is 405" 405
check "Allow lists the key methods" \
    test "$(header Allow)" = "GET, HEAD, PUT, DELETE"
req PUT '/kv/a?tll=5' --data-binary v
expect "an unknown query parameter is 400" 400 \
    "{\"error\":\"unknown query parameter 'tll'\"}"
long=$(printf 'k%.0s' $(seq 1 300))
req PUT "/kv/$long" --data-binary v
expect "PUT of a key over max_key_bytes is 413" 413 \
    '{"error":"key or value too large"}'
req GET "/kv/$long"
expect "GET of a key over max_key_bytes is 414" 414 '{"error":"key too long"}'

# --- TTL ------------------------------------------------------------------------
# A TTL far longer than any stall of a loaded machine between the PUT and
# the GETs, so the seconds left are checked in a range, never raced.
req PUT '/kv/t?ttl=100000' --data-binary tv
expect "PUT ?ttl=100000 is 201" 201
req GET /kv/t
ttl=$(header X-KV-TTL)
check "GET sends X-KV-TTL with the seconds left ($ttl)" \
    test "$ttl" -ge 99000 -a "$ttl" -le 100000
req GET '/kv/t?format=json'
jttl=$(sed -n 's/^{"key":"t","value":"tv","ttl":\([0-9]*\)}$/\1/p' <<<"$BODY")
check "format=json carries ttl ($BODY)" \
    test "$CODE" = 200 -a -n "$jttl" -a "${jttl:-0}" -ge 99000 \
    -a "${jttl:-0}" -le 100000
for bad in -1 abc 1.5 ''; do
    req PUT "/kv/t?ttl=$bad" --data-binary x
    expect "ttl=$bad is 400" 400 '{"error":"ttl must be a whole number of seconds"}'
done
# The range is the command layer's, as for RESP's SET ... EX.
req PUT '/kv/t?ttl=0' --data-binary x
expect "ttl=0 is 400, as SET EX 0 is" 400 \
    '{"error":"invalid expire time in '"'"'set'"'"' command"}'
req PUT '/kv/t?ttl=99999999999' --data-binary x
expect "ttl=99999999999 (3,170 years) is taken, as SET EX takes it" 204
req PUT '/kv/short?ttl=1' --data-binary s
expect "PUT ?ttl=1 is 201" 201
sleep 1.2
req GET /kv/short
expect "the key is gone after its ttl" 404 '{"error":"key not found"}'

# --- NX / XX ------------------------------------------------------------------------
req PUT /kv/n --data-binary 1
req PUT '/kv/n?nx' --data-binary 2
expect "?nx on a present key is 412" 412 '{"error":"key already exists"}'
req PUT '/kv/n2?nx' --data-binary 2
expect "?nx on an absent key is 201" 201
req PUT '/kv/n3?xx' --data-binary 3
expect "?xx on an absent key is 412" 412 '{"error":"key does not exist"}'
req GET /kv/n3
expect "?xx did not create the key" 404
req PUT '/kv/n?xx=true' --data-binary 3
expect "?xx on a present key is 204" 204
req GET /kv/n
expect "?xx replaced the value" 200 3
req PUT '/kv/n?nx&xx' --data-binary 3
expect "?nx with ?xx is 400" 400 '{"error":"nx and xx cannot be combined"}'

# --- JSON format and binary values ----------------------------------------------
req PUT /kv/u --data-binary 'héllo'
req GET '/kv/u?format=json'
expect "format=json gives UTF-8 as a string" 200 '{"key":"u","value":"héllo"}'
printf '\x00\xff\xfe' > "$T/bin3"
req PUT /kv/b --data-binary @"$T/bin3"
req GET '/kv/b?format=json'
expect "format=json gives other bytes as base64 with a marker" 200 \
    '{"key":"b","value":{"base64":"AP/+"}}'
req GET '/kv/b?format=xml'
expect "an unknown format is 400" 400 '{"error":"format must be json or raw"}'
head -c 65536 /dev/urandom > "$T/rand"
req PUT /kv/rand --data-binary @"$T/rand"
req GET /kv/rand
check "a random binary value comes back byte for byte" cmp -s "$T/rand" "$T/body"
head -c $((8 << 20)) /dev/urandom > "$T/big"
req PUT /kv/big --data-binary @"$T/big"
expect "PUT of an 8 MiB value is 201" 201
req GET /kv/big
check "the 8 MiB value comes back byte for byte" cmp -s "$T/big" "$T/body"
req PUT /kv/chunked -H 'Transfer-Encoding: chunked' --data-binary @"$T/rand"
expect "a chunked PUT is 201" 201
req GET /kv/chunked
check "the chunked value comes back byte for byte" cmp -s "$T/rand" "$T/body"

# --- percent-encoded keys -------------------------------------------------------
req PUT '/kv/a%2Fb%20c' --data-binary enc
expect "PUT of a percent-encoded key is 201" 201
req GET '/kv/a%2Fb%20c?format=json'
expect "the key is decoded" 200 '{"key":"a/b c","value":"enc"}'
req GET '/kv/a/b%20c'
expect "a raw slash in the path is part of the key" 200 enc
req PUT '/kv/%00%01z' --data-binary nul
expect "PUT of a key with NUL is 201" 201
req GET '/kv/%00%01z?format=json'
expect "GET of a key with NUL" 200 '{"key":"\u0000\u0001z","value":"nul"}'
req GET '/kv/%00'
expect "the key NUL alone is a different key" 404
req PUT '/kv/%ff%fe' --data-binary x
req GET '/kv/%FF%FE?format=json'
expect "a non-UTF-8 key is given in base64" 200 \
    '{"key":{"base64":"//4="},"value":"x"}'
req GET '/kv/a%zz'
expect "bad percent-encoding is 400" 400 \
    '{"error":"bad percent-encoding in the URL"}'
req GET '/kv/a%4'
expect "a truncated escape is 400" 400

# --- POST /kv: atomic multi-set ---------------------------------------------------
req POST /kv -d '{"m1":"one","m2":{"base64":"AP8="},"m3":"a\u0000b"}' \
    -H 'Content-Type: application/json'
expect "POST /kv stores every key" 200 '{"stored":3}'
req GET /kv/m2
printf '\x00\xff' > "$T/m2"
check "a base64 value is stored decoded" cmp -s "$T/m2" "$T/body"
req GET /kv/m3
printf 'a\x00b' > "$T/m3"
check "a \\u0000 in a JSON string value is stored as NUL" \
    cmp -s "$T/m3" "$T/body"
req POST /kv -d '{"m\u0000x":"z"}'
check "a NUL in a JSON member name is refused with 400" \
    bash -c "[ $CODE = 400 ] && grep -q 'NUL byte in object key' '$T/body'"
req POST /kv -d "{\"ok1\":\"v\",\"$long\":\"v\"}"
expect "POST /kv with one key over the limit is refused" 413
req GET /kv/ok1
expect "... and nothing of it is stored" 404
req POST /kv -d '{"ok2":"v","bad":1}'
expect "POST /kv with a non-string value is 400" 400 \
    '{"error":"value of \"bad\" must be a string or {\"base64\": \"...\"}"}'
req GET /kv/ok2
expect "... and nothing of it is stored" 404
req POST /kv -d '{"a":'
check "POST /kv with broken JSON is 400 naming it" \
    bash -c "[ $CODE = 400 ] && grep -q 'invalid JSON' '$T/body'"
req POST /kv -d '[1]'
expect "POST /kv with a JSON array is 400" 400 \
    '{"error":"body must be a non-empty JSON object of key: value"}'
req POST /kv -d '{"":"v"}'
expect "POST /kv with an empty key is 400" 400 '{"error":"key cannot be empty"}'
req POST /kv -d '{"k":""}'
expect "POST /kv with an empty value is 400" 400 \
    '{"error":"value cannot be empty"}'
req POST /kv -d '{"a":"1","a":"2"}'
expect "POST /kv with a duplicate key is 400" 400
req POST '/kv?ttl=50' -d '{"tt":"x"}'
expect "POST /kv?ttl= is 200" 200 '{"stored":1}'
req GET /kv/tt
check "POST /kv?ttl= sets the expiry" test "$(header X-KV-TTL)" = 50
req PUT /kv -d x
expect "PUT /kv is 405" 405
check "Allow lists the collection methods" \
    test "$(header Allow)" = "GET, HEAD, POST, DELETE"

# --- GET /kv?key=: multi-get; DELETE /kv?key=: multi-delete ----------------------
req GET '/kv?key=m1&key=m2&key=nope&key=%ff'
expect "GET /kv?key= returns those present" 200 \
    '{"m1":"one","m2":{"base64":"AP8="}}'
req PUT '/kv/%ff' --data-binary y
req GET '/kv?key=%ff'
expect "a non-UTF-8 key is named base64:..." 200 '{"base64:/w==":"y"}'
req GET '/kv?key=m1&key='
expect "GET /kv with an empty key is 400" 400 '{"error":"key cannot be empty"}'
req DELETE '/kv?key=m1&key=m2&key=nope'
expect "DELETE /kv?key= returns the count" 200 '{"deleted":2}'
req GET '/kv?key=m1&key=m2'
expect "... and the keys are gone" 200 '{}'
req DELETE /kv
expect "DELETE /kv without keys is 400" 400 \
    '{"error":"no key given (DELETE /kv?key=...)"}'

# --- listing -----------------------------------------------------------------------
req POST /kv -d "{$(for i in $(seq 1 25); do printf '"p:%02d":"v",' "$i"; done)\"q\":\"v\"}"
expect "25 keys with a prefix stored" 200 '{"stored":26}'
cursor=""
pages=0
: > "$T/listed"
while :; do
    req GET "/kv?prefix=p:&limit=10${cursor:+&cursor=$cursor}"
    if [ "$CODE" != 200 ]; then fail "listing page (status $CODE)"; break; fi
    grep -o '"p:[0-9]*"' "$T/body" >> "$T/listed"
    pages=$((pages + 1))
    cursor=$(grep -o '"next":"[^"]*"' "$T/body" | sed 's/.*:"//; s/"$//')
    [ -z "$cursor" ] && break
    [ $pages -gt 10 ] && break
done
check "paging with limit=10 lists the 25 keys exactly once ($pages pages)" \
    test "$(sort "$T/listed" | uniq | wc -l)" = 25 -a \
    "$(wc -l < "$T/listed")" = 25
check "the last page says next null" grep -q '"next":null' "$T/body"
check "pages hold at most about limit keys" test $pages -ge 3
req GET '/kv?prefix=p:&limit=0'
expect "limit=0 is 400" 400 '{"error":"limit must be between 1 and 1000"}'
req GET '/kv?prefix=p:&limit=1001'
expect "limit=1001 is 400" 400
req GET '/kv?prefix=p:&cursor=%21%21'
expect "a bad cursor is 400" 400 '{"error":"invalid cursor"}'
req GET '/kv?prefix=nothing-has-this'
expect "an empty listing" 200 '{"keys":[],"next":null}'

# --- metrics ----------------------------------------------------------------------
req GET /metrics
expect "/metrics is 200" 200
check "/metrics is Prometheus text" \
    bash -c "grep -q '^text/plain; version=0.0.4' <<<'$(header Content-Type)'"
for pat in \
    '^kvd_frontend_requests_total{frontend="http",cmd="put",code="201"} [1-9]' \
    '^kvd_frontend_requests_total{frontend="http",cmd="get",code="404"} [1-9]' \
    '^# TYPE kvd_http_request_duration_seconds histogram' \
    '^kvd_http_request_duration_seconds_bucket{le="+Inf"} [1-9]' \
    '^kvd_http_request_duration_seconds_count [1-9]' \
    '^kvd_store_operations_total{op="get"} [1-9]' \
    '^kvd_keyspace_hits_total [1-9]' '^kvd_keyspace_misses_total [1-9]' \
    '^kvd_keys [1-9]' '^kvd_value_bytes [1-9]' '^kvd_uptime_seconds ' \
    '^kvd_commands_total{frontend="http",cmd="set"} [1-9]' \
    '^kvd_commands_total{frontend="http",cmd="get"} [1-9]' \
    '^kvd_commands_total{frontend="http",cmd="mget"} [1-9]' \
    '^kvd_commands_total{frontend="http",cmd="scan"} [1-9]'; do
    check "/metrics has $pat" grep -q "$pat" "$T/body"
done

# --- concurrency ---------------------------------------------------------------------
# 16 clients at once, one connection each (threads in one process: 500
# curl processes would make the test as slow as the machine is loaded).
python3 - "$PORT" > "$T/conc" <<'PY'
import http.client, sys, threading
port = int(sys.argv[1])
def each(jobs, fn):
    out, lock, it = [], threading.Lock(), iter(jobs)
    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                j = next(it, None)
            if j is None:
                return
            r = fn(c, j)
            with lock:
                out.append(r)
    ts = [threading.Thread(target=worker) for _ in range(16)]
    for t in ts: t.start()
    for t in ts: t.join()
    return out
def put(c, i):
    c.request("PUT", "/kv/c%d" % i, body=b"value-%d" % i)
    r = c.getresponse(); r.read(); return r.status
def get(c, i):
    c.request("GET", "/kv/c%d" % i)
    r = c.getresponse(); return r.read() == b"value-%d" % i
def nx(c, i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("PUT", "/kv/race?nx", body=b"x")
    r = c.getresponse(); r.read(); return r.status
print(each(range(1, 201), put).count(201))
print(each(range(1, 201), get).count(True))
codes = each(range(100), nx)
print(codes.count(201), codes.count(412))
PY
check "200 concurrent PUTs are all 201" test "$(sed -n 1p "$T/conc")" = 200
check "200 concurrent GETs each see their own value" \
    test "$(sed -n 2p "$T/conc")" = 200
check "of 100 racing PUT ?nx exactly one creates the key" \
    test "$(sed -n 3p "$T/conc")" = "1 99"

# --- malformed requests (raw) -------------------------------------------------------
raw 'FOO /kv/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
check "an unknown method is 405 ($RAW)" test "$RAW" = "HTTP/1.1 405 Method Not Allowed"
raw 'GET /kv/%%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
check "bad percent-encoding on the wire is 400 ($RAW)" \
    test "$RAW" = "HTTP/1.1 400 Bad Request"
raw 'this is not http\r\n\r\n'
check "a garbage request line gets a 400 ($RAW)" \
    bash -c "[[ '$RAW' == 'HTTP/1.1 400'* ]]"
# The server answers 431 and closes while the client is still sending the
# rest of the header, so the client's send fails with a reset. nc then
# gives up without reading the answer already in its socket; this client
# reads whatever arrived whether or not its send failed. The reset can
# still beat the answer now and then (TCP's race, not the server's): a
# few tries, one 431 is enough.
raw_big() {
    RAW=$(python3 - "$PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
req = (b"GET /kv/a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 +
       b"\r\nConnection: close\r\n\r\n")
try:
    s.sendall(req)
except OSError:
    pass
data = b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except OSError:
    pass
print(data.split(b"\r\n", 1)[0].decode("latin-1"))
PY
)
}
for _ in 1 2 3 4 5 6 7 8 9 10; do
    raw_big
    [[ "$RAW" == 'HTTP/1.1 431'* ]] && break
done
check "oversized headers get 431 ($RAW)" \
    bash -c "[[ '$RAW' == 'HTTP/1.1 431'* ]]"
raw 'PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\nConnection: close\r\n\r\n'
check "a malformed Content-Length gets a 400 ($RAW)" \
    bash -c "[[ '$RAW' == 'HTTP/1.1 400'* ]]"
raw 'PUT /kv/trunc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-12-byte'
check "a truncated body gets no success ($RAW)" \
    bash -c "[[ '$RAW' != 'HTTP/1.1 2'* ]]"
req GET /kv/trunc
expect "a truncated body stores nothing" 404
# --- HTTP/1.1 framing details -------------------------------------------------
printf 'GET /kv/c7 HTTP/1.1\r\nHost: x\r\n\r\nGET /kv/c8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    nc -w 3 127.0.0.1 "$PORT" > "$T/pipe" 2>/dev/null
check "two pipelined requests get two answers, in order" \
    bash -c "[ \$(grep -o 'HTTP/1.1 200' '$T/pipe' | wc -l) = 2 ] && grep -q 'value-7.*value-8' <<<\"\$(tr -d '\r\n' < '$T/pipe')\""
printf 'GET /healthz HTTP/1.0\r\n\r\n' | nc -w 3 127.0.0.1 "$PORT" > "$T/h10" 2>/dev/null
check "HTTP/1.0 without keep-alive is answered and closed" \
    bash -c "head -1 '$T/h10' | grep -q '^HTTP/1.1 200' && grep -qi '^Connection: close' '$T/h10'"
printf 'GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' |
    nc -w 1 127.0.0.1 "$PORT" > "$T/h10k" 2>/dev/null
check "HTTP/1.0 keep-alive is kept alive and says so" \
    grep -qi '^Connection: keep-alive' "$T/h10k"
raw 'PUT /kv/chunk2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n'
check "a chunked body with extensions and a trailer is stored ($RAW)" \
    test "$RAW" = "HTTP/1.1 201 Created"
req GET /kv/chunk2
expect "... byte for byte" 200 abcde
req PUT /kv/cont -H 'Expect: 100-continue' --data-binary 'continued'
expect "Expect: 100-continue gets 100, then the answer" 201
raw 'GET http://example/kv/c9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
check "an absolute-form request-target is served ($RAW)" \
    test "$RAW" = "HTTP/1.1 200 OK"
raw 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n'
check "HTTP/1.1 without Host is 400 ($RAW)" \
    bash -c "[[ '$RAW' == 'HTTP/1.1 400'* ]]"
raw 'GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n'
check "an HTTP version other than 1.x is 505 ($RAW)" \
    bash -c "[[ '$RAW' == 'HTTP/1.1 505'* ]]"
req GET /healthz
expect "the server still serves after the malformed requests" 200
req GET /kv/c7
expect "... and still has the data" 200 value-7

# --- the strict server: bearer token, content types, body limit ---------------------
start_kvd strict "token = s3cret" "strict_content_type = yes" \
    "max_body_bytes = 1m"
AUTH=(-H 'Authorization: Bearer s3cret')
req GET /kv/a
expect "without a token: 401" 401 '{"error":"missing or invalid bearer token"}'
check "401 says WWW-Authenticate: Bearer" \
    bash -c "grep -q '^Bearer' <<<'$(header WWW-Authenticate)'"
req GET /kv/a -H 'Authorization: Bearer wrong'
expect "with a wrong token: 401" 401
req GET /metrics
expect "/metrics needs the token too" 401
req GET /healthz
expect "/healthz needs no token" 200
req GET /readyz
expect "/readyz needs no token" 200
req PUT /kv/s "${AUTH[@]}" --data-binary v
expect "strict: PUT without application/octet-stream is 415" 415 \
    '{"error":"Content-Type must be application/octet-stream"}'
req PUT /kv/s "${AUTH[@]}" -H 'Content-Type: application/octet-stream' \
    --data-binary v
expect "strict: PUT with application/octet-stream is 201" 201
req GET /kv/s "${AUTH[@]}"
expect "with the token: the value" 200 v
req POST /kv "${AUTH[@]}" -H 'Content-Type: text/plain' -d '{"j":"1"}'
expect "strict: POST /kv without application/json is 415" 415
req POST /kv "${AUTH[@]}" -H 'Content-Type: application/json; charset=utf-8' \
    -d '{"j":"1"}'
expect "strict: POST /kv with application/json is 200" 200 '{"stored":1}'
head -c $((2 << 20)) /dev/zero > "$T/2m"
req PUT /kv/huge "${AUTH[@]}" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$T/2m"
expect "a body over max_body_bytes is 413" 413 \
    '{"error":"body larger than max_body_bytes (1048576)"}'
req PUT /kv/huge "${AUTH[@]}" -H 'Content-Type: application/octet-stream' \
    -H 'Transfer-Encoding: chunked' --data-binary @"$T/2m"
expect "a chunked body over max_body_bytes is 413" 413
req GET /kv/huge "${AUTH[@]}"
expect "... and nothing was stored" 404
kill -TERM "$KPID"
wait "$KPID"
check "the strict server exits 0 on SIGTERM" test $? -eq 0

# --- /metrics counts the commands other frontends run -------------------------------
# resp beside http: commands run with redis-cli over resp's Unix socket go
# through the shared command layer, whose counters /metrics shows by
# frontend and command.
if command -v redis-cli > /dev/null; then
    start_kvd both "[frontend.resp]" "unix_socket = $T/both.sock" "threads = 1"
    for i in 1 2 3 4 5; do echo "SET k$i v$i"; done > "$T/cmds"
    echo "SET k6 v EX 0" >> "$T/cmds" # fails: invalid expire time
    redis-cli -s "$T/both.sock" < "$T/cmds" > "$T/cli.out" 2>&1
    check "redis-cli ran 5 good SETs and 1 bad over the Unix socket" \
        test "$(grep -c '^OK$' "$T/cli.out")" = 5 -a \
        "$(grep -c 'invalid expire time' "$T/cli.out")" = 1
    req GET /metrics
    expect "/metrics of the resp+http server is 200" 200
    for pat in \
        '^# TYPE kvd_commands_total counter$' \
        '^kvd_commands_total{frontend="resp",cmd="set"} 6$' \
        '^# TYPE kvd_command_failures_total counter$' \
        '^kvd_command_failures_total{frontend="resp",cmd="set"} 1$' \
        '^# TYPE kvd_command_seconds_total counter$' \
        '^kvd_command_seconds_total{frontend="resp",cmd="set"} [0-9]*\.[0-9]\{6\}$'; do
        check "/metrics has $pat" grep -q "$pat" "$T/body"
    done
    check "no resp command the client did not send is counted" \
        bash -c "! grep -q '^kvd_commands_total{frontend=\"resp\",cmd=\"get\"}' '$T/body'"
    kill -TERM "$KPID"
    wait "$KPID"
    check "the resp+http server exits 0 on SIGTERM" test $? -eq 0
else
    echo "# skip: no redis-cli for the resp+http metrics check"
fi

# --- start-up refusals -----------------------------------------------------------------
sed "s/^listen = .*/listen = 127.0.0.1:$MAIN_PORT/" "$T/main.ini" |
    sed "s|data-main|data-busy|" > "$T/busy.ini"
out=$("$KVD" -c "$T/busy.ini" 2>&1 </dev/null); rc=$?
check "a port in use fails at start, naming it" \
    bash -c "[ $rc -eq 1 ] && grep -q 'frontend http: listen on 127.0.0.1:$MAIN_PORT: Address already in use' <<<'$out'"
sed "s/^listen = .*/listen = 127.0.0.1:80x/" "$T/busy.ini" > "$T/badport.ini"
out=$("$KVD" -c "$T/badport.ini" 2>&1 </dev/null); rc=$?
check "a bad listen value fails at start, naming it" \
    bash -c "[ $rc -eq 1 ] && grep -q 'listen = 127.0.0.1:80x: expected .*a port from 0 to 65535' <<<'$out'"

printf '[server]\ndata_dir = %s\nplugin_dir = %s\n[engine]\nname = %s\n[frontend.http]\nlisten = :0\n' \
    "$T/data-hostless" "$PLUGINS" "$ENGINE" > "$T/hostless.ini"
"$KVD" -c "$T/hostless.ini" 2> "$T/hostless.log" &
HPID=$!
PIDS+=("$HPID")
for _ in $(seq 1 100); do
    grep -q 'http: listening on' "$T/hostless.log" && break
    sleep 0.05
done
check "listen = :PORT (no host) means loopback" \
    grep -q 'http: listening on 127\.0\.0\.1:[1-9]' "$T/hostless.log"
kill -TERM "$HPID"
wait "$HPID"

# --- graceful stop: a request in flight finishes --------------------------------------
URL=$MAIN_URL
PORT=$MAIN_PORT
curl -s -o /dev/null -w '%{http_code}' --limit-rate 4M -X PUT \
    --data-binary @"$T/big" "$URL/kv/inflight" > "$T/inflight" &
CURL=$!
sleep 0.8
kill -TERM "$MAIN_PID"
wait "$CURL"
check "a PUT in flight at SIGTERM completes with 201 ($(cat "$T/inflight"))" \
    test "$(cat "$T/inflight")" = 201
wait "$MAIN_PID"
check "kvd exits 0 after draining" test $? -eq 0
check "access lines were logged at debug level" \
    grep -q 'http: 127.0.0.1 "PUT /kv/a" 201' "$T/main.log"

echo "# $pass passed, $fails failed"
[ $fails -eq 0 ]
