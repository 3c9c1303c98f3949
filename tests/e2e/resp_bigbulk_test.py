#!/usr/bin/env python3
"""tests/e2e/resp_bigbulk_test.py -- announced sizes do not reserve memory.

A 17-byte RESP header may announce a 512 MiB bulk. Many connections, each
sending such a header and a few bytes of the bulk, must leave kvd's address
space (VmSize) and resident memory flat: buffers grow with the bytes that
actually arrive (frontends/resp/resp_parse.h, `need`). The test knows kvd
has read every header from /proc/PID/io (rchar counts the bytes its read()
calls returned), so it measures after the reads, never after a guess of
time. Then one connection sends its whole 8 MiB bulk and is answered, so
growth by bytes received still ends in a working request.
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_harness import KvdServer, raw_conn, recv_exact  # noqa: E402

CONNS = 200
HEADER = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n"  # 512 MiB value
SENT_BODY = b"v" * 100  # the bulk's first bytes; the rest never comes


def proc_field(pid, name, field):
    """An integer field of /proc/PID/<name> ("VmSize:" in kB, "rchar:")."""
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/{name}")


class HugeAnnouncedBulk(unittest.TestCase):
    def setUp(self):
        self.srv = KvdServer(resp_opts={"maxclients": "1000"})
        self.srv.start()
        self.pid = self.srv.proc.pid
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        try:
            self.srv.stop()
        finally:
            self.srv.cleanup()

    def wait_read(self, rchar0, nbytes, timeout=30.0):
        """Until kvd's read() calls returned nbytes more than rchar0."""
        deadline = time.monotonic() + timeout
        while proc_field(self.pid, "io", "rchar:") - rchar0 < nbytes:
            self.assertLess(time.monotonic(), deadline,
                            "kvd did not read what was sent in time")
            time.sleep(0.02)

    def test_many_connections_announcing_512mib_stay_flat(self):
        vm0 = proc_field(self.pid, "status", "VmSize:")
        rss0 = proc_field(self.pid, "status", "VmRSS:")
        rchar0 = proc_field(self.pid, "io", "rchar:")
        for _ in range(CONNS):
            s = raw_conn(self.srv.sock)
            s.sendall(HEADER)
            self.socks.append(s)
        # The header alone first: a read of the bulk's bytes after it is
        # where a buffer of the announced size would be reserved.
        self.wait_read(rchar0, CONNS * len(HEADER))
        for s in self.socks:
            s.sendall(SENT_BODY)
        self.wait_read(rchar0, CONNS * (len(HEADER) + len(SENT_BODY)))
        vm = proc_field(self.pid, "status", "VmSize:") - vm0
        rss = proc_field(self.pid, "status", "VmRSS:") - rss0
        print(f"\n  {CONNS} connections announcing 512 MiB: VmSize "
              f"+{vm // 1024} MiB, VmRSS +{rss // 1024} MiB", file=sys.stderr)
        # Before the fix each reserved its 512 MiB: +100 GiB of address
        # space. Now about 64 KiB each.
        self.assertLess(vm, 256 * 1024, "address space grew with announced sizes")
        self.assertLess(rss, 128 * 1024, "resident memory grew")

    def test_big_value_sent_in_full_still_works(self):
        size = 8 << 20
        s = raw_conn(self.srv.sock, timeout=30)
        self.socks.append(s)
        req = b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$%d\r\n" % size
        s.sendall(req + b"x" * size + b"\r\n")
        self.assertEqual(recv_exact(s, 5), b"+OK\r\n")
        s.sendall(b"*2\r\n$6\r\nSTRLEN\r\n$1\r\nb\r\n")
        self.assertEqual(recv_exact(s, 10), b":8388608\r\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
