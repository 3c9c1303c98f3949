#!/usr/bin/env python3
"""http_load.py: a fixed HTTP workload for instruction counts (callgrind).

On one keep-alive connection: N PUTs of 100-byte values (k0..kN-1), N GETs
that hit, N GETs that miss (404), BATCH requests written at a time (1: one
request, one answer). Not a CTest; a fixed amount of work, so that
`valgrind --tool=callgrind kvd ...` can count instructions per request:

    valgrind --tool=callgrind kvd -c kvd.ini    # [frontend.http] threads = 1
    tests/e2e/http_load.py PORT 10000 1
    kill -TERM <valgrind pid>; callgrind_annotate callgrind.out.<pid>

usage: http_load.py PORT N [BATCH]
"""
import re
import socket
import sys


def run(s, reqs, batch):
    buf = b""
    for i in range(0, len(reqs), batch):
        group = reqs[i:i + batch]
        s.sendall(b"".join(group))
        for _ in group:
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, buf = buf.split(b"\r\n\r\n", 1)
            m = re.search(rb"Content-Length: (\d+)", head)
            n = int(m.group(1)) if m else 0
            while len(buf) < n:
                buf += s.recv(65536)
            buf = buf[n:]


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    s = socket.create_connection(("127.0.0.1", port))
    body = b"x" * 100
    run(s, [b"PUT /kv/k%d HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
            % i + body for i in range(n)], batch)
    run(s, [b"GET /kv/k%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
            for i in range(n)], batch)
    run(s, [b"GET /kv/miss%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
            for i in range(n)], batch)
    s.close()


if __name__ == "__main__":
    main()
