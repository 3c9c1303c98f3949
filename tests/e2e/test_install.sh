#!/bin/bash
# e2e.install: `cmake --install` to a scratch prefix gives a working kvd
# (plugins found relative to the binary), the plugin headers and kvd.pc,
# and an engine built OUTSIDE the tree with only `pkg-config --cflags kvd`
# loads into the installed kvd.
# usage: test_install.sh BUILD_DIR SOURCE_DIR
set -u
B=$1
S=$2
T=$(mktemp -d /tmp/kvd_e2e_install.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
fail() { fails=$((fails + 1)); echo "FAIL - $1"; }
check() { local n=$1; shift; if "$@"; then ok "$n"; else fail "$n"; fi; }

cmake --install "$B" --prefix "$T/prefix" >"$T/install.log" 2>&1
check "cmake --install succeeds" test $? -eq 0
check "the headers are installed" test -f "$T/prefix/include/kvd/engine.h"
pc=$(find "$T/prefix" -name kvd.pc | head -1)
check "kvd.pc is installed" test -n "$pc"

unset KVD_PLUGIN_DIR
out=$("$T/prefix/sbin/kvd" --list-plugins 2>&1)
check "the installed kvd finds its installed plugins" \
    grep -q "engines: .*log.*memory" <<<"$out"

# An engine built outside the tree against the installed headers only.
cflags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags kvd)
inc=${cflags#-I}
check "pkg-config --cflags kvd points at the installed headers" \
    test -f "${inc%% *}/kvd/engine.h"
plugdir=$(sed -n 's/^plugindir=//p' "$pc")
mkdir -p "$T/ext"
cc -std=c11 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden $cflags \
    -o "$T/ext/kvd_engine_good.so" "$S/tests/plugins/broken_engine.c" \
    2>"$T/cc.log"
check "an out-of-tree engine compiles against the installed ABI" test $? -eq 0
out=$(KVD_PLUGIN_DIR="$T/ext" "$T/prefix/sbin/kvd" --list-plugins 2>&1)
check "the installed kvd lists the out-of-tree engine" \
    grep -q "engines: good" <<<"$out"
printf '[server]\nplugin_dir = %s\n[engine]\nname = good\n' "$T/ext" >"$T/ext.ini"
out=$("$T/prefix/sbin/kvd" --check-config "$T/ext.ini" 2>&1)
check "the installed kvd loads and validates it" \
    grep -q "configuration is valid (engine good)" <<<"$out"
check "kvd.pc names the plugin directory" test -n "$plugdir"

echo "$pass passed, $fails failed"
[ $fails -eq 0 ]
