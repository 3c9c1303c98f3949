"""tests/e2e/http_harness.py -- what the python http tests share: TAP-like
checks, and a kvd with the http frontend on a port the kernel picks.

Checks print "ok - NAME" or "FAIL - NAME DETAIL" and are counted;
finish() prints the totals and returns the exit status. Kvd writes a
config from the sections given, starts the binary, and reads the port
from its log ("http: listening on 127.0.0.1:PORT"), so two test runs on
one machine never race for a port; stop() sends SIGTERM and returns the
exit status.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

_failures = []
_passes = [0]


def check(name, cond, detail=""):
    if cond:
        _passes[0] += 1
        print("ok - " + name, flush=True)
    else:
        _failures.append(name)
        print("FAIL - %s %s" % (name, detail), flush=True)


def failed():
    return len(_failures)


def finish():
    print("# %d passed, %d failed" % (_passes[0], len(_failures)))
    return 1 if _failures else 0


class Kvd:
    """kvd with [server] data_dir/plugin_dir, [engine] name and
    [frontend.http] listen = 127.0.0.1:0 set; `extra` is more INI text
    (options of those sections are given as dicts)."""

    def __init__(self, kvd, plugins, engine="memory", server=None, http=None,
                 extra="", prefix="kvd_http_e2e.", engine_opts=None):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        lines = ["[server]", "data_dir = %s/data" % self.dir,
                 "plugin_dir = %s" % plugins]
        lines += ["%s = %s" % kv for kv in (server or {}).items()]
        lines += ["[engine]", "name = %s" % engine]
        lines += ["%s = %s" % kv for kv in (engine_opts or {}).items()]
        lines += ["[frontend.http]", "listen = 127.0.0.1:0"]
        lines += ["%s = %s" % kv for kv in (http or {}).items()]
        ini = os.path.join(self.dir, "kvd.ini")
        with open(ini, "w") as f:
            f.write("\n".join(lines) + "\n" +
                    extra.replace("$DIR", self.dir))
        self.log = open(os.path.join(self.dir, "kvd.log"), "w+")
        self.proc = subprocess.Popen([kvd, "-c", ini], stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline and self.proc.poll() is None:
            m = re.search(r"http: listening on 127\.0\.0\.1:(\d+)",
                          self.log_text())
            if m and "ready:" in self.log_text():
                self.port = int(m.group(1))
                return
            time.sleep(0.05)
        self.close()
        sys.exit("kvd did not start:\n" + self.log_text())

    def path(self, name):
        return os.path.join(self.dir, name)

    def log_text(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self, timeout=30):
        """SIGTERM; the exit status, or None when it did not exit."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if _failures:
            print("# kvd log (last lines):\n" +
                  "\n".join(self.log_text().splitlines()[-20:]))
        shutil.rmtree(self.dir, ignore_errors=True)
