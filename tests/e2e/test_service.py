#!/usr/bin/env python3
"""e2e.service: kvd as a service manager runs it.

- sd_notify: with NOTIFY_SOCKET pointing at a socket this test reads, kvd
  sends READY=1 once its frontends listen (the socket accepts a PING then)
  and STOPPING=1 when SIGTERM arrives, then exits 0.
- Files kvd and its engine create are 0600 (directories 0700) under the
  default umask, and [server] umask = 0027 lets the group read them.
- SIGHUP reopens the log file after logrotate moved it away.
- With stderr connected to the journal ($JOURNAL_STREAM names it), each line
  starts with its syslog priority ("<6>") and keeps its timestamp and level.

usage: test_service.py KVD_BIN PLUGIN_DIR
"""
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

KVD, PLUGINS = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok - " + name)
    else:
        failed += 1
        print("FAIL - %s %s" % (name, detail))


def write_conf(d, name, engine_lines, server_lines=(), frontend=True):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write("[server]\ndata_dir = %s/data\nplugin_dir = %s\n" % (d, PLUGINS))
        for line in server_lines:
            f.write(line + "\n")
        f.write("[engine]\n")
        for line in engine_lines:
            f.write(line + "\n")
        if frontend:
            f.write("[frontend.resp]\nunix_socket = %s/kvd.sock\n" % d)
    return path


def wait_for(pred, seconds=20.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def ping(path):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64) == b"+PONG\r\n"
    except OSError:
        return False


def resp(path, *args):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        req = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode()
            req += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(req)
        return s.recv(4096)


def test_notify(d):
    """READY=1 after the frontends listen, STOPPING=1 on SIGTERM."""
    conf = write_conf(d, "notify.ini", ["name = memory"])
    nsock = os.path.join(d, "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(nsock)
    srv.settimeout(20)
    env = dict(os.environ, NOTIFY_SOCKET=nsock)
    p = subprocess.Popen([KVD, "-c", conf], env=env, stderr=subprocess.PIPE)
    try:
        msg = srv.recv(4096).decode()
        fields = dict(l.split("=", 1) for l in msg.split("\n") if "=" in l)
        check("the first notification is READY=1", fields.get("READY") == "1", msg)
        check("it names the main pid", fields.get("MAINPID") == str(p.pid), msg)
        check("when READY=1 arrives the frontend already answers",
              ping(os.path.join(d, "kvd.sock")))
        p.send_signal(signal.SIGTERM)
        msg = srv.recv(4096).decode()
        check("SIGTERM sends STOPPING=1", "STOPPING=1" in msg.split("\n"), msg)
        rc = p.wait(timeout=20)
        check("and kvd exits 0", rc == 0, str(rc))
    except socket.timeout:
        check("notifications arrive within 20 s", False)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        srv.close()


def modes_under(root):
    out = []
    for base, dirs, files in os.walk(root):
        for n in dirs + files:
            path = os.path.join(base, n)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                # renamed or removed since the listing: the engine's worker
                # writes hint files as NAME.tmp and renames them while kvd
                # runs; the walk after the stop sees what stays
                continue
            if stat.S_ISSOCK(st.st_mode):
                continue
            out.append((path, stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode)))
    return out


def run_until_ready(conf, d, env=None):
    p = subprocess.Popen([KVD, "-c", conf, "--pidfile", os.path.join(d, "kvd.pid")],
                         stderr=subprocess.PIPE, env=env)
    ok = wait_for(lambda: ping(os.path.join(d, "kvd.sock")))
    return p, ok


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    p.stderr.close()
    return rc


def test_modes(d, umask_line, want_file, want_dir, label):
    """Data, hints, the log and the pid file are private by default."""
    old = os.umask(0o022)  # what a shell usually has: kvd must not rely on it
    try:
        lines = ["log_file = %s/kvd.log" % d]
        if umask_line:
            lines.append(umask_line)
        conf = write_conf(d, "modes.ini",
                          ["name = log", "segment_size = 4096"], lines)
        p, ok = run_until_ready(conf, d)
        try:
            check(label + ": kvd starts", ok)
            for i in range(200):
                resp(os.path.join(d, "kvd.sock"), "SET", "key%d" % i, "v" * 64)
            found = modes_under(os.path.join(d, "data"))
            found.append((os.path.join(d, "kvd.pid"),
                          stat.S_IMODE(os.stat(os.path.join(d, "kvd.pid")).st_mode),
                          False))
            found.append((os.path.join(d, "kvd.log"),
                          stat.S_IMODE(os.stat(os.path.join(d, "kvd.log")).st_mode),
                          False))
        finally:
            # an exception above must not leave kvd running: it holds the
            # test's output pipes, and ctest would wait for them
            rc = stop(p)
        check(label + ": kvd stops with 0", rc == 0, str(rc))
        found += modes_under(os.path.join(d, "data"))
        files = [f for f in found if not f[2]]
        dirs = [f for f in found if f[2]]
        check(label + ": the engine wrote several files", len(files) >= 4, str(found))
        bad = [(p_, oct(m)) for p_, m, isdir in found
               if m != (want_dir if isdir else want_file)]
        check(label + ": files are %o and directories %o" % (want_file, want_dir),
              not bad and dirs, str(bad))
    finally:
        os.umask(old)


def test_sighup(d):
    """logrotate moves the log away and sends SIGHUP: kvd reopens it."""
    conf = write_conf(d, "hup.ini", ["name = memory"],
                      ["log_file = %s/kvd.log" % d])
    p, ok = run_until_ready(conf, d)
    check("sighup: kvd starts", ok)
    os.rename(os.path.join(d, "kvd.log"), os.path.join(d, "kvd.log.1"))
    p.send_signal(signal.SIGHUP)
    newlog = os.path.join(d, "kvd.log")
    check("SIGHUP creates a new log file at the configured path",
          wait_for(lambda: os.path.exists(newlog)))
    check("the new file says the log was reopened",
          wait_for(lambda: "SIGHUP: log reopened" in open(newlog).read()))
    rc = stop(p)
    check("sighup: kvd stops with 0", rc == 0, str(rc))
    with open(newlog) as f:
        text = f.read()
    check("later lines go to the new file", "shutting down: SIGTERM" in text, text)
    with open(os.path.join(d, "kvd.log.1")) as f:
        old = f.read()
    check("the rotated file keeps the earlier lines",
          "ready: engine memory" in old and "SIGTERM" not in old)


def test_journal(d):
    """stderr as the journal: lines carry their priority."""
    conf = write_conf(d, "journal.ini", ["name = memory"])
    errpath = os.path.join(d, "stderr.txt")
    with open(errpath, "w") as err:
        st = os.fstat(err.fileno())
        env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        p = subprocess.Popen([KVD, "-c", conf], stderr=err, env=env)
        ok = wait_for(lambda: ping(os.path.join(d, "kvd.sock")))
        check("journal: kvd starts", ok)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)
    with open(errpath) as f:
        lines = f.read().splitlines()
    check("every line starts with a priority, then the timestamp and level",
          lines and all(l.startswith("<6>20") and " I [" in l for l in lines),
          str(lines[:3]))
    # without the variable: plain lines
    conf2 = write_conf(d, "plain.ini", ["name = memory", "shards = 3"])
    out = subprocess.run([KVD, "-c", conf2], stderr=subprocess.PIPE,
                         text=True, timeout=20)
    check("without $JOURNAL_STREAM lines have no priority prefix",
          out.stderr.startswith("20") and " E [" in out.stderr, out.stderr)


def main():
    for fn, args in [
        (test_notify, ()),
        (test_modes, (None, 0o600, 0o700, "default umask")),
        (test_modes, ("umask = 0027", 0o640, 0o750, "umask 0027")),
        (test_sighup, ()),
        (test_journal, ()),
    ]:
        with tempfile.TemporaryDirectory(prefix="kvd_e2e_service.") as d:
            fn(d, *args)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
