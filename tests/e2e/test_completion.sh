#!/bin/bash
# e2e.completion: the bash completion of kv and kvd completes commands and
# options, and kv completes key names from a running server.
# usage: test_completion.sh SOURCE_DIR KVD_BIN KV_BIN PLUGIN_DIR
set -u
S=$1 KVD=$2 KV=$3 PLUGINS=$4
T=$(mktemp -d /tmp/kvd_e2e_completion.XXXXXX)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$T"' EXIT
pid=""
fails=0
pass=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
fail() { fails=$((fails + 1)); echo "FAIL - $1"; }

# complete SCRIPT FUNC WORDS...: the completions bash offers for the last
# word, space-separated.
complete_words() {
    local script=$1 func=$2; shift 2
    PATH="$(dirname "$KV"):$PATH" bash -c '
        source /usr/share/bash-completion/bash_completion
        source "$1"; func=$2; shift 2
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        $func; echo "${COMPREPLY[*]}"' _ "$script" "$func" "$@"
}
expect() { # expect NAME WANT GOT
    if [ "$3" = "$2" ]; then ok "$1"; else fail "$1: want '$2', got '$3'"; fi
}

if [ ! -f /usr/share/bash-completion/bash_completion ]; then
    echo "bash-completion is not installed (scripts/deps installs it)"
    echo "0 passed, 1 failed"
    exit 1
fi
C=$S/dist/bash-completion
expect "kv completes commands" "get" "$(complete_words "$C/kv" _kv kv g)"
expect "kv completes options" "--socket" "$(complete_words "$C/kv" _kv kv --so)"
expect "kv help completes commands" "del" "$(complete_words "$C/kv" _kv kv help de)"
expect "kvd completes options" "--check-config" \
    "$(complete_words "$C/kvd" _kvd kvd --check)"
expect "kvd completes list options" "--list-plugins --list-options" \
    "$(complete_words "$C/kvd" _kvd kvd --list)"

# key names from the server
printf '[server]\ndata_dir = %s/data\nplugin_dir = %s\n[engine]\nname = memory\n[frontend.resp]\nunix_socket = %s/kvd.sock\n' \
    "$T" "$PLUGINS" "$T" >"$T/kvd.ini"
"$KVD" -c "$T/kvd.ini" 2>"$T/kvd.log" &
pid=$!
for _ in $(seq 100); do [ -S "$T/kvd.sock" ] && break; sleep 0.1; done
"$KV" -s "$T/kvd.sock" set apple=1 apricot=2 banana=3 >/dev/null
got=$(complete_words "$C/kv" _kv kv -s "$T/kvd.sock" get ap | tr ' ' '\n' | sort | tr '\n' ' ')
expect "kv get completes key names from the server" "apple apricot " "$got"

echo "$pass passed, $fails failed"
[ $fails -eq 0 ]
