#!/usr/bin/env python3
"""tests/e2e/kv_test.py -- the kv command-line client against a real kvd.

Every subcommand's output and exit status: set (one atomic MSET), get (key:
value lines, --raw bytes), del, ttl, expire, keys, metrics, serve; binary
values from a file and from stdin; --help everywhere; clear failures when a
key is missing (exit 1) or no server is running (exit 3).
"""

import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_harness import KvdServer, env_path  # noqa: E402

KV = env_path("KV_BIN")


def kv(sock, *args, input=None):
    p = subprocess.run([KV, "--socket", sock] + list(args), input=input,
                       capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


class KvClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = KvdServer()
        try:
            cls.srv.start()
        except Exception:
            cls.srv.cleanup()
            raise
        cls.sock = cls.srv.sock

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            cls.srv.cleanup()

    def test_set_then_get_prints_key_value_lines(self):
        rc, out, err = kv(self.sock, "set", "cake=🎂", "horns=😈",
                          "smiley=😁")
        self.assertEqual((rc, out, err), (0, b"OK\n", ""))
        rc, out, err = kv(self.sock, "get", "cake", "horns", "smiley")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.decode(),
                         "cake: 🎂\nhorns: 😈\nsmiley: 😁\n")

    def test_set_value_may_contain_equals_and_be_empty(self):
        self.assertEqual(kv(self.sock, "set", "eq=a=b", "empty=")[0], 0)
        rc, out, _ = kv(self.sock, "get", "eq", "empty")
        self.assertEqual(out, b"eq: a=b\nempty: \n")

    def test_get_escapes_control_bytes(self):
        self.assertEqual(kv(self.sock, "set", "ctl=a\nb\\c\x1b")[0], 0)
        rc, out, _ = kv(self.sock, "get", "ctl")
        self.assertEqual(out, b"ctl: a\\nb\\\\c\\x1b\n")

    def test_missing_key_exits_1_and_says_so(self):
        kv(self.sock, "set", "present=1")
        rc, out, err = kv(self.sock, "get", "present", "absent")
        self.assertEqual(rc, 1)
        self.assertEqual(out, b"present: 1\n")
        self.assertIn("absent: not found", err)
        rc, out, err = kv(self.sock, "get", "--raw", "absent")
        self.assertEqual((rc, out), (1, b""))
        self.assertIn("absent: not found", err)

    def test_del_prints_count(self):
        kv(self.sock, "set", "d1=1", "d2=2")
        rc, out, _ = kv(self.sock, "del", "d1", "d2", "d3")
        self.assertEqual((rc, out), (0, b"2\n"))
        rc, out, _ = kv(self.sock, "del", "d1")
        self.assertEqual((rc, out), (0, b"0\n"))

    def test_ttl_and_expire(self):
        kv(self.sock, "set", "t=1")
        self.assertEqual(kv(self.sock, "ttl", "t")[:2], (0, b"none\n"))
        # far longer than any stall of a loaded machine between the calls
        self.assertEqual(kv(self.sock, "expire", "t", "100000")[0], 0)
        rc, out, _ = kv(self.sock, "ttl", "t")
        self.assertEqual(rc, 0)
        self.assertTrue(99000 <= int(out) <= 100000, out)
        rc, _, err = kv(self.sock, "expire", "nokey", "5")
        self.assertEqual(rc, 1)
        self.assertIn("nokey: not found", err)
        rc, _, err = kv(self.sock, "ttl", "nokey")
        self.assertEqual(rc, 1)
        rc, _, err = kv(self.sock, "expire", "t", "soon")
        self.assertEqual(rc, 2)
        self.assertEqual(kv(self.sock, "expire", "t", "1")[0], 0)
        time.sleep(1.2)
        self.assertEqual(kv(self.sock, "get", "t")[0], 1)

    def test_keys_with_pattern(self):
        kv(self.sock, "set", "user:1=a", "user:2=b", "other=c")
        rc, out, _ = kv(self.sock, "keys", "user:*")
        self.assertEqual(rc, 0)
        self.assertEqual(sorted(out.decode().split("\n")[:-1]),
                         ["user:1", "user:2"])
        rc, out, _ = kv(self.sock, "keys")
        self.assertIn(b"other\n", out)

    def test_binary_value_from_file_and_stdin_round_trips_raw(self):
        data = bytes(range(256)) * 100 + b"\x00\r\n"
        path = os.path.join(self.srv.dir, "blob")
        with open(path, "wb") as f:
            f.write(data)
        self.assertEqual(kv(self.sock, "set", "blob", "--file", path)[0], 0)
        rc, out, _ = kv(self.sock, "get", "--raw", "blob")
        self.assertEqual((rc, out), (0, data))
        self.assertEqual(kv(self.sock, "set", "blob2", "-",
                            input=data[::-1])[0], 0)
        rc, out, _ = kv(self.sock, "get", "--raw", "blob2")
        self.assertEqual(out, data[::-1])
        self.assertEqual(kv(self.sock, "set", "blob3", "--file", "-",
                            input=b"")[0], 0)
        self.assertEqual(kv(self.sock, "get", "--raw", "blob3")[:2],
                         (0, b""))

    def test_metrics_on_a_fresh_server(self):
        srv = KvdServer()
        try:
            srv.start()
            kv(srv.sock, "set", "m1=12345", "m2=ab")   # MSET: 1 set command
            kv(srv.sock, "set", "m3", "-", input=b"xyz")  # SET
            kv(srv.sock, "get", "m1")                   # MGET
            kv(srv.sock, "get", "--raw", "m2")          # GET
            kv(srv.sock, "del", "m3")                   # DEL
            rc, out, err = kv(srv.sock, "metrics")
            self.assertEqual(rc, 0, err)
            self.assertEqual(out.decode(),
                             "keys: 2\nvalue bytes: 7\nset commands: 2\n"
                             "get commands: 2\ndelete commands: 1\n")
            srv.stop()
        finally:
            srv.cleanup()

    def test_help_for_every_subcommand(self):
        for cmd in ["set", "get", "del", "ttl", "expire", "keys", "metrics",
                    "serve"]:
            p = subprocess.run([KV, cmd, "--help"], capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(p.returncode, 0, cmd)
            self.assertIn(f"usage: kv [--socket PATH] {cmd}", p.stdout)
        p = subprocess.run([KV, "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for cmd in ["set", "get", "del", "metrics", "serve"]:
            self.assertIn(f"kv {cmd}", p.stdout)

    def test_version(self):
        for flag in ["--version", "-V"]:
            p = subprocess.run([KV, flag], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(p.returncode, 0)
            self.assertRegex(p.stdout, r"^kv [0-9]+\.[0-9]+\.[0-9]+\n$")

    def test_set_prints_ok(self):
        self.assertEqual(kv(self.sock, "set", "ok1=a", "ok2=b")[:2],
                         (0, b"OK\n"))
        self.assertEqual(kv(self.sock, "set", "ok3", "-", input=b"x")[:2],
                         (0, b"OK\n"))

    def test_usage_errors_exit_2(self):
        self.assertEqual(kv(self.sock, "set", "novalue")[0], 2)
        self.assertEqual(kv(self.sock, "frobnicate")[0], 2)
        self.assertEqual(kv(self.sock, "ttl")[0], 2)


class KvWithoutServer(unittest.TestCase):
    def test_server_down_exits_3_with_a_clear_message(self):
        rc, _, err = kv("/nonexistent/kvd.sock", "get", "a")
        self.assertEqual(rc, 3)
        self.assertIn("cannot connect to kvd at /nonexistent/kvd.sock", err)
        self.assertIn("is the server running?", err)

    def test_serve_execs_kvd(self):
        srv = KvdServer()
        try:
            srv.write_config()
            env = dict(os.environ, KVD_BIN=env_path("KVD_BIN"))
            proc = subprocess.Popen([KV, "serve", "-c", srv.ini], env=env,
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.time() + 10
            while time.time() < deadline and not srv.ping():
                time.sleep(0.05)
            self.assertTrue(srv.ping(), srv.read_log())
            self.assertEqual(kv(srv.sock, "set", "served=yes")[0], 0)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=20), 0)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
