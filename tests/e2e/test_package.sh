#!/bin/bash
# e2e.package: the Debian package builds from a copy of the source tree
# (dpkg-buildpackage, tests not built into it), lintian finds nothing to
# report, each .deb holds the expected layout, and installing the packages
# into a fresh root works: the kvd user exists, /etc/kvd/kvd.ini is a
# conffile with absolute paths, the installed kvd reads it by default and
# finds its multiarch plugins, and the unit passes systemd-analyze verify.
#
# The fresh root is a debootstrap minbase of Debian 12, made once and kept
# as a tarball in $KVD_ROOTFS_CACHE (default /var/cache/kvd-test); without
# debootstrap or a reachable mirror, that part is skipped with a note and
# the layout is checked with dpkg-deb alone.
#
# Time on the 2-CPU development machine with the debootstrap cache: 5
# minutes in all at a load average of 2-8 (package build 3.5, lintian 1,
# install checks under 1), 10 minutes at a load average of 28 (build 8);
# the first debootstrap adds about 3 minutes.
# usage: test_package.sh SOURCE_DIR
set -u
S=$1
T=$(mktemp -d /tmp/kvd_e2e_package.XXXXXX)
CACHE=${KVD_ROOTFS_CACHE:-/var/cache/kvd-test}
trap 'rm -rf "$T"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
fail() { fails=$((fails + 1)); echo "FAIL - $1"; }
check() { local n=$1; shift; if "$@"; then ok "$n"; else fail "$n"; fi; }
step() { echo "# $(date +%T) $*"; }

# --- build from a copy of the tracked (and new, unignored) files ----------
step "copying the source tree"
mkdir -p "$T/src"
(cd "$S" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' |
    tar --null -T - -cf -) | tar -xf - -C "$T/src"
step "dpkg-buildpackage (tests off, -j2)"
(cd "$T/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" \
    dpkg-buildpackage -b -us -uc >"$T/build.log" 2>&1)
rc=$?
check "dpkg-buildpackage -b succeeds" test $rc -eq 0
if [ $rc -ne 0 ]; then
    tail -40 "$T/build.log"
    echo "$pass passed, $fails failed"
    exit 1
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
deb_kvd=$(ls "$T"/kvd_*_"$arch".deb)
deb_bench=$(ls "$T"/kvd-bench_*_"$arch".deb)
deb_dev=$(ls "$T"/kvd-dev_*_"$arch".deb)
check "three binary packages: kvd, kvd-bench, kvd-dev" \
    test -f "$deb_kvd" -a -f "$deb_bench" -a -f "$deb_dev"

# --- lintian ---------------------------------------------------------------
step "lintian"
# (as root lintian says on stderr that it would rather not run as root)
lintian --fail-on error,warning --display-level '>=info' \
    "$T"/kvd_*.changes >"$T/lintian.log" 2>"$T/lintian.err"
rc=$?
check "lintian reports no error, warning or info tag" \
    test $rc -eq 0 -a ! -s "$T/lintian.log"
[ -s "$T/lintian.log" ] && sed 's/^/#   /' "$T/lintian.log"
grep -v "root privileges" "$T/lintian.err" | sed 's/^/#   /'

# --- layout of each package ---------------------------------------------------
dpkg-deb -c "$deb_kvd" | awk '{print $6}' | sed 's|^\./|/|' >"$T/kvd.files"
dpkg-deb -c "$deb_bench" | awk '{print $6}' | sed 's|^\./|/|' >"$T/bench.files"
dpkg-deb -c "$deb_dev" | awk '{print $6}' | sed 's|^\./|/|' >"$T/dev.files"
has() { grep -qx -- "$2" "$T/$1.files"; }
for f in /usr/sbin/kvd /usr/bin/kv /etc/kvd/kvd.ini \
    /lib/systemd/system/kvd.service /usr/lib/sysusers.d/kvd.conf \
    /usr/share/man/man8/kvd.8.gz /usr/share/man/man1/kv.1.gz \
    /usr/share/man/man5/kvd.ini.5.gz \
    /usr/share/bash-completion/completions/kv \
    /usr/share/bash-completion/completions/kvd \
    "/usr/lib/$multiarch/kvd/kvd_engine_log.so" \
    "/usr/lib/$multiarch/kvd/kvd_engine_lsm.so" \
    "/usr/lib/$multiarch/kvd/kvd_engine_memory.so" \
    "/usr/lib/$multiarch/kvd/kvd_engine_redis.so" \
    "/usr/lib/$multiarch/kvd/kvd_frontend_resp.so" \
    "/usr/lib/$multiarch/kvd/kvd_frontend_http.so" \
    "/usr/lib/$multiarch/kvd/kvd_frontend_stdin.so"; do
    check "kvd holds $f" has kvd "$f"
done
check "kvd-bench holds /usr/bin/kvbench" has bench /usr/bin/kvbench
check "kvd-bench holds kvbench(1)" has bench /usr/share/man/man1/kvbench.1.gz
check "kvd-dev holds the headers" has dev /usr/include/kvd/engine.h
check "kvd-dev holds kvd.pc" has dev "/usr/lib/$multiarch/pkgconfig/kvd.pc"
check "kvd does not ship kvbench (no LevelDB/RocksDB for the server)" \
    bash -c "! grep -q kvbench '$T/kvd.files'"
dpkg-deb -e "$deb_kvd" "$T/ctl"
check "/etc/kvd/kvd.ini is a conffile" grep -qx /etc/kvd/kvd.ini "$T/ctl/conffiles"
check "the postinst creates the kvd user" grep -q "adduser --system" "$T/ctl/postinst"
check "the postinst enables the unit" grep -q "deb-systemd-helper" "$T/ctl/postinst"
check "kvd depends on adduser" \
    bash -c "dpkg-deb -f '$deb_kvd' Depends | grep -q adduser"

# --- the unit --------------------------------------------------------------
dpkg-deb -x "$deb_kvd" "$T/x"
check "the unit is Type=notify with its directories and user" \
    bash -c "grep -qx Type=notify '$T/x/lib/systemd/system/kvd.service' &&
             grep -qx StateDirectory=kvd '$T/x/lib/systemd/system/kvd.service' &&
             grep -qx RuntimeDirectory=kvd '$T/x/lib/systemd/system/kvd.service' &&
             grep -qx User=kvd '$T/x/lib/systemd/system/kvd.service' &&
             grep -qx ProtectSystem=strict '$T/x/lib/systemd/system/kvd.service'"
check "the installed config uses absolute paths" \
    bash -c "grep -qx 'data_dir = /var/lib/kvd' '$T/x/etc/kvd/kvd.ini' &&
             grep -qx 'unix_socket = /run/kvd/kvd.sock' '$T/x/etc/kvd/kvd.ini'"

# --- install into a fresh Debian 12 root -----------------------------------
root=$T/root
tarball=$CACHE/bookworm-minbase.tar
if [ "$(id -u)" -ne 0 ]; then
    echo "# SKIP the fresh-root install: debootstrap and chroot need root"
    tarball=/nonexistent
elif [ ! -f "$tarball" ] && command -v debootstrap >/dev/null; then
    step "debootstrap bookworm minbase (once; cached in $CACHE)"
    mkdir -p "$CACHE"
    if debootstrap --variant=minbase bookworm "$T/boot" \
        >"$T/debootstrap.log" 2>&1; then
        tar -C "$T/boot" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    else
        tail -5 "$T/debootstrap.log"
    fi
    rm -rf "$T/boot"
fi
if [ ! -f "$tarball" ]; then
    echo "# SKIP the fresh-root install: no debootstrap root"
else
    step "installing the packages into a fresh root"
    mkdir -p "$root"
    tar -C "$root" -xf "$tarball"
    cp "$deb_kvd" "$deb_bench" "$deb_dev" "$root/tmp/"
    # Dependencies from the root's own apt (the same mirror debootstrap
    # used); the packages themselves from the build.
    inroot() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive "$@"; }
    mount -t proc proc "$root/proc" 2>/dev/null && trap 'umount "$root/proc"; rm -rf "$T"' EXIT
    inroot apt-get update -qq >"$T/apt.log" 2>&1
    inroot apt-get install -y -qq --no-install-recommends \
        /tmp/$(basename "$deb_kvd") /tmp/$(basename "$deb_bench") \
        /tmp/$(basename "$deb_dev") >>"$T/apt.log" 2>&1
    rc=$?
    check "apt-get installs the three packages in a fresh root" test $rc -eq 0
    [ $rc -ne 0 ] && tail -20 "$T/apt.log"
    check "the kvd system user exists" \
        bash -c "chroot '$root' getent passwd kvd | grep -q '^kvd:.*:/var/lib/kvd:/usr/sbin/nologin$'"
    check "the kvd group exists" bash -c "chroot '$root' getent group kvd >/dev/null"
    check "dpkg lists the conffile" \
        bash -c "chroot '$root' dpkg-query -W -f='\${Conffiles}' kvd | grep -q /etc/kvd/kvd.ini"
    out=$(inroot kvd --list-plugins 2>&1)
    check "the installed kvd finds its plugins in /usr/lib/$multiarch/kvd" \
        grep -q "plugin directory: .*/lib/$multiarch/kvd" <<<"$out"
    check "... all five engines" grep -q "engines: btree, log, lsm, memory, redis" <<<"$out"
    out=$(inroot kvd --check-config 2>&1)
    check "with no -c, the installed kvd checks /etc/kvd/kvd.ini" \
        grep -q "/etc/kvd/kvd.ini" <<<"$out"
    check "... which (without systemd's /run/kvd) is refused for the socket's directory" \
        grep -q "unix_socket = /run/kvd/kvd.sock: directory /run/kvd does not exist" <<<"$out"
    mkdir -p "$root/run/kvd" "$root/var/lib/kvd"
    chroot "$root" chown kvd:kvd /run/kvd /var/lib/kvd
    out=$(inroot setpriv --reuid=kvd --regid=kvd --init-groups kvd --check-config 2>&1)
    check "as the kvd user with its directories, the config is valid" \
        grep -q "configuration is valid (engine log)" <<<"$out"
    check "man kvd.ini is installed" test -s "$root/usr/share/man/man5/kvd.ini.5.gz"
    out=$(inroot kv --version 2>&1)
    check "kv --version runs in the root" grep -q "^kv 0" <<<"$out"
    check "pkg-config finds kvd.pc in the root" \
        inroot sh -c "test -f /usr/lib/$multiarch/pkgconfig/kvd.pc"
fi

if command -v systemd-analyze >/dev/null; then
    # verify resolves ExecStart and the man pages of Documentation=: point
    # them at the extracted package.
    sed "s|/usr/sbin/kvd|$T/x/usr/sbin/kvd|g" \
        "$T/x/lib/systemd/system/kvd.service" >"$T/kvd.service"
    out=$(MANPATH="$T/x/usr/share/man" systemd-analyze verify "$T/kvd.service" 2>&1); rc=$?
    check "systemd-analyze verify passes on the packaged unit" \
        test $rc -eq 0 -a -z "$out"
    [ -n "$out" ] && echo "$out" | sed 's/^/#   /'
fi

echo "$pass passed, $fails failed"
[ $fails -eq 0 ]
