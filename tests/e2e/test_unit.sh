#!/bin/bash
# e2e.unit: the systemd unit as built passes `systemd-analyze verify` with
# nothing to say. verify resolves ExecStart and the man pages named in
# Documentation=, so both point into this build and source tree.
# usage: test_unit.sh UNIT_FILE KVD_BIN SOURCE_DIR
set -u
UNIT=$1 KVD=$2 S=$3
T=$(mktemp -d /tmp/kvd_e2e_unit.XXXXXX)
trap 'rm -rf "$T"' EXIT
for sec in 1 5 8; do
    mkdir -p "$T/man/man$sec"
    cp "$S"/man/*."$sec" "$T/man/man$sec/"
done
sed "s|^\(Exec[A-Za-z]*=\)[^ ]*kvd|\1$KVD|" "$UNIT" >"$T/kvd.service"
out=$(MANPATH="$T/man" systemd-analyze verify "$T/kvd.service" 2>&1)
rc=$?
echo "$out"
if [ $rc -eq 0 ] && [ -z "$out" ]; then
    echo "ok - systemd-analyze verify kvd.service"
    echo "1 passed, 0 failed"
    exit 0
fi
echo "FAIL - systemd-analyze verify kvd.service (rc $rc)"
echo "0 passed, 1 failed"
exit 1
