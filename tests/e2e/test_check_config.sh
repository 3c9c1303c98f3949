#!/bin/bash
# e2e.check_config: `kvd --check-config` refuses everything start-up would
# refuse that can be known without binding or opening data, each refusal
# naming the file, the line, the section and key, the value and the rule;
# and start-up refuses the same files with the same message.
# usage: test_check_config.sh KVD_BIN PLUGIN_DIR
set -u
KVD=$1
PLUGINS=$2
T=$(mktemp -d /tmp/kvd_e2e_check.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
fails=0
pass=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
fail() { fails=$((fails + 1)); echo "FAIL - $1"; }

# conf NAME LINES...: $T/NAME.ini with [server] on lines 1-3 (data under
# $T/data, the build's plugins), then the given lines from line 4 on.
conf() {
    local f=$T/$1.ini; shift
    printf '[server]\ndata_dir = %s/data\nplugin_dir = %s\n' "$T" "$PLUGINS" >"$f"
    printf '%s\n' "$@" >>"$f"
}

# refused NAME PATTERN [KVD ARGS...]: --check-config NAME.ini exits 1 and
# its message matches PATTERN (grep -E); then starting kvd on the same file
# fails with the same message before it serves anything.
refused() {
    local name=$1 pat=$2; shift 2
    local out rc
    out=$("$KVD" --check-config "$T/$name.ini" "$@" 2>&1); rc=$?
    if [ $rc -eq 1 ] && grep -Eq -- "$pat" <<<"$out"; then
        ok "$name: --check-config refuses: $out"
    else
        fail "$name: --check-config rc=$rc, wanted /$pat/, got: $out"
    fi
    out=$(timeout 20 "$KVD" -c "$T/$name.ini" "$@" 2>&1 </dev/null); rc=$?
    if [ $rc -eq 1 ] && grep -Eq -- "$pat" <<<"$out"; then
        ok "$name: start-up refuses with the same message"
    else
        fail "$name: start-up rc=$rc, wanted /$pat/, got: $out"
    fi
}

F="$T/"   # messages start with the file's path

# --- each option's own constraint ------------------------------------------
conf shards "[engine]" "name = memory" "shards = 3"
refused shards "${F}shards.ini:6: \[engine\] shards = 3: expected a power of two from 1 to"

conf range "[engine]" "name = log" "merge_ratio = 101"
refused range "${F}range.ini:6: \[engine\] merge_ratio = 101: expected an integer from 0 to 100"

conf httpport "[engine]" "name = memory" "[frontend.http]" "listen = 127.0.0.1:99999"
refused httpport "${F}httpport.ini:7: \[frontend.http\] listen = 127.0.0.1:99999: expected host:port.* a port from 0 to 65535"

conf respport "[engine]" "name = memory" "[frontend.resp]" "unix_socket =" "tcp = 127.0.0.1:65536"
refused respport "${F}respport.ini:8: \[frontend.resp\] tcp = 127.0.0.1:65536: expected host:port.* a port from 0 to 65535"

conf resolve "[engine]" "name = memory" "[frontend.resp]" "unix_socket =" "tcp = no-such-host.invalid:6380"
refused resolve "${F}resolve.ini:8: \[frontend.resp\] tcp = no-such-host.invalid:6380: host no-such-host.invalid does not resolve"

# --- rules across options (the plugins' check_options) ----------------------
# Each was found only at open or create before; the line is the option's.
conf l0order "[engine]" "name = lsm" "l0_slowdown = 2"
refused l0order "${F}l0order.ini:6: \[engine\] lsm: expected 1 <= l0_compaction_trigger \(4\) <= l0_slowdown \(2\) <= l0_stop \(12\)"

conf snapnopath "[engine]" "name = memory" "snapshot_interval = 5s"
refused snapnopath "${F}snapnopath.ini:6: \[engine\] snapshot_interval = 5000 ms needs snapshot_path to be set"

conf snapdir "[engine]" "name = memory" "snapshot_path = $T/snaps/"
refused snapdir "${F}snapdir.ini:6: \[engine\] snapshot_path = $T/snaps/: expected a file name, not a directory"

conf btpage "[engine]" "name = btree" "page_size = 3000"
refused btpage "${F}btpage.ini:6: \[engine\] btree: page_size = 3000: expected a power of two from 2k to 32k"

conf nolisten "[engine]" "name = memory" "[frontend.resp]" "unix_socket ="
refused nolisten "${F}nolisten.ini:7: \[frontend.resp\] unix_socket = : neither unix_socket nor tcp is set: nothing to listen on"

long=$T/$(printf 'x%.0s' $(seq 1 110))
conf longsock "[engine]" "name = memory" "[frontend.resp]" "unix_socket = $long"
refused longsock "${F}longsock.ini:7: \[frontend.resp\] unix_socket = $long: path longer than 107 bytes"

conf redisnodes "[engine]" "name = redis" "nodes = 127.0.0.1:6379, nohost"
refused redisnodes "${F}redisnodes.ini:6: \[engine\] nodes = 127.0.0.1:6379, nohost: redis: .*'nohost' is not host:port"

conf redisnone "[engine]" "name = redis" "nodes = ,"
refused redisnone "${F}redisnone.ini:6: \[engine\] nodes = ,: redis: nodes is empty: expected one or more host:port"

conf redisdur "[engine]" "name = redis" "nodes = 127.0.0.1:6379" "durability = wait:0"
refused redisdur "${F}redisdur.ini:7: \[engine\] durability = wait:0: redis: durability = wait:0: expected none or wait:N with N from 1 to 64"

conf redisprefix "[engine]" "name = redis" "nodes = 127.0.0.1:6379" "key_prefix = a{b"
refused redisprefix "${F}redisprefix.ini:7: \[engine\] key_prefix = a\{b: redis: must not contain '\{'"

# --- directories of the files kvd creates ----------------------------------
# The README's own sample: the socket under a directory that does not exist.
conf sockdir "[engine]" "name = memory" "[frontend.resp]" "unix_socket = $T/run/kvd/kvd.sock"
refused sockdir "${F}sockdir.ini:7: \[frontend.resp\] unix_socket = $T/run/kvd/kvd.sock: directory $T/run/kvd does not exist \(the file's directory must exist and be writable\)"

conf piddir "pid_file = $T/nodir/kvd.pid" "[engine]" "name = memory"
refused piddir "${F}piddir.ini:4: \[server\] pid_file = $T/nodir/kvd.pid: directory $T/nodir does not exist"

conf logdir "log_file = $T/nodir/kvd.log" "[engine]" "name = memory"
refused logdir "${F}logdir.ini:4: \[server\] log_file = $T/nodir/kvd.log: directory $T/nodir does not exist"

touch "$T/plainfile"
conf logparent "log_file = $T/plainfile/kvd.log" "[engine]" "name = memory"
refused logparent "${F}logparent.ini:4: \[server\] log_file = $T/plainfile/kvd.log: $T/plainfile is not a directory"

# The data directory must exist or be creatable.
conf datafile "[engine]" "name = memory"
sed -i "s|^data_dir = .*|data_dir = $T/plainfile/data|" "$T/datafile.ini"
refused datafile "${F}datafile.ini:2: \[server\] data_dir = $T/plainfile/data: cannot be created: $T/plainfile is not a directory"

conf dataisfile "[engine]" "name = memory"
sed -i "s|^data_dir = .*|data_dir = $T/plainfile|" "$T/dataisfile.ini"
refused dataisfile "${F}dataisfile.ini:2: \[server\] data_dir = $T/plainfile: $T/plainfile is not a directory \(the data directory must be a writable directory\)"

# --- the pid file never goes through a symbolic link -----------------------
echo "precious" >"$T/precious"
ln -s "$T/precious" "$T/link.pid"
conf pidlink "pid_file = $T/link.pid" "[engine]" "name = memory"
refused pidlink "${F}pidlink.ini:4: \[server\] pid_file = $T/link.pid: is a symbolic link"
conf plain "[engine]" "name = memory"
refused plain "^kvd: --pidfile $T/link.pid: is a symbolic link" --pidfile "$T/link.pid"
if [ "$(cat "$T/precious")" = precious ]; then
    ok "the file behind the link is untouched"
else
    fail "the file behind the link was overwritten"
fi

# --- logging to one place ----------------------------------------------------
conf twologs "log_file = $T/kvd.log" "syslog = yes" "[engine]" "name = memory"
refused twologs "${F}twologs.ini:5: \[server\] syslog = yes: log_file is set too"

# --- plugins: names and ownership checked before dlopen ----------------------
conf badname "[engine]" "name = ../../tmp/x"
refused badname "${F}badname.ini:5: \[engine\] name = \.\./\.\./tmp/x: engine name '\.\./\.\./tmp/x' is not valid"

mkdir "$T/plugins"
cp "$PLUGINS"/kvd_engine_memory.so "$T/plugins/"
chmod 0777 "$T/plugins"
conf wideplugins "[engine]" "name = memory"
sed -i "s|^plugin_dir = .*|plugin_dir = $T/plugins|" "$T/wideplugins.ini"
refused wideplugins "${F}wideplugins.ini:5: \[engine\] name = memory: plugin directory $T/plugins is writable by other users \(mode 0777\)"
chmod 0755 "$T/plugins"
chmod 0666 "$T/plugins/kvd_engine_memory.so"
refused wideplugins "plugin $T/plugins/kvd_engine_memory.so is writable by other users \(mode 0666\)"
chmod 0644 "$T/plugins/kvd_engine_memory.so"
if chown 65534 "$T/plugins/kvd_engine_memory.so" 2>/dev/null; then
    refused wideplugins "plugin $T/plugins/kvd_engine_memory.so is owned by uid 65534"
else
    echo "ok - (skipped: chown needs root) a plugin owned by another user is refused"
fi

# --- what passes -------------------------------------------------------------
conf good "[engine]" "name = memory" "shards = 4" "[frontend.resp]" "unix_socket = $T/kvd.sock"
out=$("$KVD" --check-config "$T/good.ini" 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q "configuration is valid" <<<"$out"; then
    ok "a good file is valid"
else
    fail "a good file: rc=$rc $out"
fi
if [ ! -e "$T/data" ] && [ ! -e "$T/kvd.sock" ]; then
    ok "--check-config creates neither the data directory nor the socket"
else
    fail "--check-config created files: $(ls "$T")"
fi

# A non-loopback listener without a password: valid, with a warning.
conf open "[engine]" "name = memory" "[frontend.resp]" "unix_socket =" "tcp = 0.0.0.0:0"
out=$("$KVD" --check-config "$T/open.ini" 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q "W .*${F}open.ini:8: \[frontend.resp\] tcp = 0.0.0.0:0: listens beyond loopback with no password or token" <<<"$out"; then
    ok "a wide-open listener is valid but warned about"
else
    fail "wide-open listener: rc=$rc $out"
fi
conf guarded "[engine]" "name = memory" "[frontend.resp]" "unix_socket =" "tcp = 0.0.0.0:0" "requirepass = s3cret"
out=$("$KVD" --check-config "$T/guarded.ini" 2>&1)
if ! grep -q "listens beyond loopback" <<<"$out"; then
    ok "no warning with requirepass set"
else
    fail "warned although requirepass is set: $out"
fi
conf loop "[engine]" "name = memory" "[frontend.http]" "listen = 127.0.0.1:0"
out=$("$KVD" --check-config "$T/loop.ini" 2>&1)
if ! grep -q "listens beyond loopback" <<<"$out"; then
    ok "no warning for a loopback listener"
else
    fail "warned for loopback: $out"
fi

echo "$pass passed, $fails failed"
[ $fails -eq 0 ]
