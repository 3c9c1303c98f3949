"""tests/e2e/resp_harness.py -- start and stop a real kvd for the resp tests.

KvdServer writes a config (a [server] section with a temporary data_dir, the
build tree's plugin_dir, the chosen [engine] and a [frontend.resp] section on a
temporary Unix socket), starts the kvd binary, waits until the socket answers
PING, and on stop sends SIGTERM and checks the exit status is 0 and the socket
file is gone. Paths come from the environment CTest sets:
KVD_BIN, KVD_PLUGIN_DIR, KVD_ENGINE (default memory), KVD_ENGINE_OPTS
(key=value;... for [engine]), KV_BIN.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def env_path(name, default=None):
    v = os.environ.get(name, default)
    if v is None:
        raise SystemExit(f"{name} is not set")
    return v


class KvdServer:
    def __init__(self, engine=None, resp_opts=None, server_opts=None,
                 engine_opts=None):
        self.kvd = env_path("KVD_BIN")
        self.plugin_dir = env_path("KVD_PLUGIN_DIR")
        self.engine = engine or os.environ.get("KVD_ENGINE", "memory")
        self.dir = tempfile.mkdtemp(prefix="kvd_resp_e2e.")
        self.sock = os.path.join(self.dir, "kvd.sock")
        self.log = os.path.join(self.dir, "kvd.log")
        self.resp_opts = {"unix_socket": self.sock, "threads": "2"}
        self.resp_opts.update(resp_opts or {})
        # 65535: the largest key every engine stores (the log engine's
        # record format has a 16-bit key length).
        self.server_opts = {"max_key_bytes": "65535"}
        self.server_opts.update(server_opts or {})
        self.engine_opts = engine_opts or {}
        self.proc = None
        self.ini = os.path.join(self.dir, "kvd.ini")

    def write_config(self):
        lines = ["[server]",
                 f"data_dir = {self.dir}/data",
                 f"plugin_dir = {self.plugin_dir}",
                 f"log_file = {self.log}",
                 "log_level = info"]
        lines += [f"{k} = {v}" for k, v in self.server_opts.items()]
        lines += ["[engine]", f"name = {self.engine}"]
        # KVD_ENGINE_OPTS: engine options as key=value;key=value (the redis
        # engine's test needs its server's address). {dir} is this
        # server's temporary directory, so runs do not share keys.
        for kv in filter(None, os.environ.get("KVD_ENGINE_OPTS", "").split(";")):
            lines.append(kv.replace("{dir}", self.dir).replace("=", " = ", 1))
        lines += [f"{k} = {v}" for k, v in self.engine_opts.items()]
        lines += ["[frontend.resp]"]
        lines += [f"{k} = {v}" for k, v in self.resp_opts.items()]
        with open(self.ini, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=10.0):
        self.write_config()
        self.proc = subprocess.Popen([self.kvd, "-c", self.ini],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                raise RuntimeError(f"kvd exited {self.proc.returncode}: "
                                   f"{err}{self.read_log()}")
            if self.ping():
                return self
            time.sleep(0.05)
        raise RuntimeError("kvd did not answer PING in time\n" +
                           self.read_log())

    def ping(self):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(1)
            s.connect(self.sock)
            s.sendall(b"PING\r\n")
            ok = s.recv(64) == b"+PONG\r\n"
            s.close()
            return ok
        except OSError:
            return False

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill(self):
        """SIGKILL: a crash. The data directory stays for the next start."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self.proc.stderr.close()
        self.proc = None

    def stop(self, check=True):
        """SIGTERM, wait, and (check) insist on a clean, complete exit."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError("kvd did not stop within 20 s of SIGTERM")
        self.proc.stderr.close()
        self.proc = None
        if check:
            assert rc == 0, f"kvd exit status {rc}\n{self.read_log()}"
            assert not os.path.exists(self.sock), \
                "the socket file was not removed on shutdown"
        return rc

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.stop()
        finally:
            self.cleanup()
        return False


def raw_conn(path, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def tcp_conn(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s


def free_tcp_port():
    """A loopback port nothing listens on right now (the kernel's pick)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_on_free_port(make, tries=5):
    """make(port) -> KvdServer listening on TCP `port`; started on a port
    the kernel just picked. Should something else take the port before
    kvd binds it (another checkout's tests), kvd exits naming the busy
    address and another port is tried. Returns (server, port)."""
    for _ in range(tries):
        port = free_tcp_port()
        srv = make(port)
        try:
            return srv.start(), port
        except RuntimeError as e:
            srv.cleanup()
            if "Address already in use" not in str(e):
                raise
    raise RuntimeError(f"no free TCP port after {tries} tries")


def recv_exact(s, n):
    """Exactly n bytes (fewer only if the server closes first)."""
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def recv_until(s, suffix, limit=1 << 20):
    """Everything up to and including the first reply ending in suffix."""
    out = b""
    while not out.endswith(suffix) and len(out) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


def read_until_closed(s, limit=1 << 20):
    """Everything the server sends until it closes the connection."""
    out = b""
    while len(out) < limit:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out
