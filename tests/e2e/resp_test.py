#!/usr/bin/env python3
"""tests/e2e/resp_test.py -- kvd's resp frontend, end to end.

Starts the real kvd (engine from $KVD_ENGINE) on a temporary Unix socket and
drives it with python3-redis, redis-cli, netcat-style raw sockets: commands,
binary keys and values, pipelining, MSET atomicity against a concurrent
reader, expiry, 200 concurrent connections, RESP3 (HELLO 3), requirepass
(AUTH over TCP, a trusted Unix socket), the socket's life cycle, and bad
input (random bytes, a 2^40 bulk length, an unterminated request, thousands
of arguments, a client that never reads) after which the server still
answers others and has lost nothing.
"""

import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_harness import (KvdServer, raw_conn, start_on_free_port,  # noqa: E402
                          read_until_closed, recv_exact, recv_until,
                          tcp_conn)

SENTINEL = (b"sentinel\x00key", b"sentinel value \xff\x00")


def client(srv, **kw):
    return redis.Redis(unix_socket_path=srv.sock, socket_timeout=10, **kw)


class RawReplies:
    """Exact replies read from a raw socket."""

    def expect_reply(self, s, want):
        self.assertEqual(recv_exact(s, len(want)), want)


class ServerCase(RawReplies, unittest.TestCase):
    resp_opts = {}

    @classmethod
    def setUpClass(cls):
        cls.srv = KvdServer(resp_opts=cls.resp_opts)
        try:
            cls.srv.start()
        except Exception:
            cls.srv.cleanup()
            raise
        client(cls.srv).set(*SENTINEL)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            cls.srv.cleanup()

    def assert_server_healthy(self):
        """Another client is served and no data was lost."""
        r = client(self.srv)
        self.assertTrue(r.ping())
        self.assertEqual(r.get(SENTINEL[0]), SENTINEL[1])
        r.close()


class Commands(ServerCase):
    def test_ping_and_echo(self):
        r = client(self.srv)
        self.assertTrue(r.ping())
        self.assertEqual(r.echo(b"a\x00b"), b"a\x00b")

    def test_binary_keys_and_values(self):
        r = client(self.srv)
        key = b"\x00k\r\n\xff*3\r\n"
        val = bytes(range(256)) * 64
        self.assertTrue(r.set(key, val))
        self.assertEqual(r.get(key), val)
        self.assertTrue(r.set(b"empty", b""))
        self.assertEqual(r.get(b"empty"), b"")
        self.assertIsNone(r.get(b"no such key"))

    def test_large_value_round_trip(self):
        r = client(self.srv)
        val = os.urandom(8 << 20)
        self.assertTrue(r.set("big", val))
        self.assertEqual(r.get("big"), val)
        self.assertEqual(r.delete("big"), 1)

    def test_client_pipeline(self):
        r = client(self.srv)
        p = r.pipeline(transaction=False)
        for i in range(2000):
            p.set(f"pipe:{i}", f"v{i}")
        for i in range(2000):
            p.get(f"pipe:{i}")
        res = p.execute()
        self.assertEqual(res[:2000], [True] * 2000)
        self.assertEqual(res[2000:], [f"v{i}".encode() for i in range(2000)])

    def test_pipelined_requests_in_one_write_get_ordered_replies(self):
        s = raw_conn(self.srv.sock)
        req = b"*1\r\n$4\r\nPING\r\n" * 100
        req += b"*3\r\n$3\r\nSET\r\n$2\r\npk\r\n$3\r\na\r\n\r\n"
        req += b"*2\r\n$3\r\nGET\r\n$2\r\npk\r\n"
        req += b"*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n"
        s.sendall(req)
        want = b"+PONG\r\n" * 100 + b"+OK\r\n" + b"$3\r\na\r\n\r\n" + b"$-1\r\n"
        got = b""
        while len(got) < len(want):
            chunk = s.recv(65536)
            self.assertTrue(chunk, "connection closed early")
            got += chunk
        self.assertEqual(got, want)
        s.close()

    def test_mixed_pipeline_keeps_every_clients_order(self):
        """Simple commands (which an engine may run together, see
        docs/architecture.md) and others, interleaved on the same keys in
        one write: every reply comes in order and sees what came before."""
        s = raw_conn(self.srv.sock)
        s.sendall(b"SET mx 1\r\nGET mx\r\nINCR mx\r\nGET mx\r\n"
                  b"APPEND mx 0\r\nGET mx\r\nDEL mx\r\nGET mx\r\n"
                  b"SET mx a\r\nMGET mx nope\r\nUNLINK mx\r\nEXISTS mx\r\n"
                  b"SET mx b\r\nPING\r\nGET mx\r\n")
        want = (b"+OK\r\n$1\r\n1\r\n:2\r\n$1\r\n2\r\n:2\r\n"
                b"$2\r\n20\r\n:1\r\n$-1\r\n+OK\r\n*2\r\n$1\r\na\r\n"
                b"$-1\r\n:1\r\n:0\r\n+OK\r\n+PONG\r\n$1\r\nb\r\n")
        self.assertEqual(recv_exact(s, len(want)), want)
        s.close()

    def test_half_closed_client_gets_its_replies(self):
        s = raw_conn(self.srv.sock)
        s.sendall(b"SET hc 1\r\nGET hc\r\nDEL hc\r\n")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(read_until_closed(s),
                         b"+OK\r\n$1\r\n1\r\n:1\r\n")
        s.close()

    def test_quit_after_simple_commands(self):
        s = raw_conn(self.srv.sock)
        s.sendall(b"SET qk v\r\nGET qk\r\nQUIT\r\nGET qk\r\n")
        self.assertEqual(read_until_closed(s),
                         b"+OK\r\n$1\r\nv\r\n+OK\r\n")
        s.close()

    def test_pipelined_large_values(self):
        r = client(self.srv)
        vals = [os.urandom(600 << 10) for _ in range(4)]
        p = r.pipeline(transaction=False)
        for i, v in enumerate(vals):
            p.set(f"plv:{i}", v)
        for i in range(4):
            p.get(f"plv:{i}")
        for i in range(4):
            p.delete(f"plv:{i}")
        res = p.execute()
        self.assertEqual(res, [True] * 4 + vals + [1] * 4)

    def test_concurrent_pipelines_see_their_own_writes(self):
        """Many clients pipelining at once (their simple commands may be
        gathered into one engine call): each sees exactly its writes."""
        errors = []

        def worker(t):
            try:
                r = client(self.srv)
                for rnd in range(5):
                    p = r.pipeline(transaction=False)
                    for i in range(50):
                        p.set(f"cp:{t}:{i}", f"{rnd}:{i}")
                        p.get(f"cp:{t}:{i}")
                    p.incr(f"cp:{t}:n")
                    for i in range(0, 50, 5):
                        p.delete(f"cp:{t}:{i}")
                        p.get(f"cp:{t}:{i}")
                    res = p.execute()
                    want = []
                    for i in range(50):
                        want += [True, f"{rnd}:{i}".encode()]
                    want.append(rnd + 1)
                    for i in range(0, 50, 5):
                        want += [1, None]
                    if res != want:
                        errors.append(f"client {t} round {rnd}: {res[:6]}")
                        return
                r.close()
            except Exception as e:  # noqa: BLE001
                errors.append(f"client {t}: {e!r}")

        threads = [threading.Thread(target=worker, args=(t,))
                   for t in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(errors, [])

    def test_request_split_across_writes(self):
        s = raw_conn(self.srv.sock)
        req = b"*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$5\r\nhello\r\n"
        for b in req:
            s.sendall(bytes([b]))
        self.assertEqual(s.recv(100), b"+OK\r\n")
        s.close()

    def test_inline_commands(self):
        s = raw_conn(self.srv.sock)
        s.sendall(b"SET inl \"a b\"\r\nGET inl\r\n\r\nPING\n")
        want = b"+OK\r\n$3\r\na b\r\n+PONG\r\n"
        got = b""
        while len(got) < len(want):
            got += s.recv(100)
        self.assertEqual(got, want)
        s.close()

    def test_netcat_inline_ping(self):
        out = subprocess.run(["nc", "-U", "-q1", self.srv.sock],
                             input=b"PING\r\n", capture_output=True,
                             timeout=10)
        self.assertEqual(out.stdout, b"+PONG\r\n")

    def test_command_errors_keep_the_connection(self):
        r = client(self.srv)
        with self.assertRaises(redis.ResponseError) as cm:
            r.execute_command("FOO", "bar")
        self.assertIn("unknown command 'FOO'", str(cm.exception))
        with self.assertRaises(redis.ResponseError) as cm:
            r.execute_command("GET")
        self.assertIn("wrong number of arguments for 'get' command",
                      str(cm.exception))
        self.assertTrue(r.ping())

    def test_redis_cli(self):
        def cli(*args):
            return subprocess.run(["redis-cli", "-s", self.srv.sock] +
                                  list(args), capture_output=True, text=True,
                                  timeout=10).stdout

        self.assertEqual(cli("SET", "cli", "value 1"), "OK\n")
        self.assertEqual(cli("GET", "cli"), "value 1\n")
        self.assertEqual(cli("MSET", "c1", "1", "c2", "2"), "OK\n")
        self.assertEqual(cli("MGET", "c1", "c2", "nope"), "1\n2\n\n")
        self.assertEqual(cli("DEL", "c1", "c2", "nope"), "2\n")
        self.assertEqual(cli("PING"), "PONG\n")

    def test_mset_is_atomic_for_a_concurrent_reader(self):
        keys = [f"atom:{i}" for i in range(16)]
        client(self.srv).mset({k: "0" for k in keys})
        stop = threading.Event()
        torn = []
        reads = [0]

        def reader():
            r = client(self.srv)
            while not stop.is_set():
                vals = r.mget(keys)
                reads[0] += 1
                if len(set(vals)) != 1:
                    torn.append(vals)
                    return

        t = threading.Thread(target=reader)
        t.start()
        w = client(self.srv)
        for n in range(1, 1500):
            w.mset({k: str(n) for k in keys})
        stop.set()
        t.join()
        self.assertEqual(torn, [], "a reader saw a half-applied MSET")
        self.assertGreater(reads[0], 10)

    def test_expiry(self):
        r = client(self.srv)
        r.set("exp:ex", "v", ex=1)
        r.set("exp:px", "v", px=300)
        r.set("exp:keep", "v")
        r.set("exp:long", "v", px=600000)
        # exp:px may already be gone on a loaded machine (-2): only its
        # bound is certain; the positive range is checked on a long one.
        self.assertLessEqual(r.pttl("exp:px"), 300)
        self.assertTrue(599000 < r.pttl("exp:long") <= 600000)
        time.sleep(1.3)
        self.assertIsNone(r.get("exp:ex"))
        self.assertIsNone(r.get("exp:px"))
        self.assertEqual(r.get("exp:keep"), b"v")
        self.assertEqual(r.ttl("exp:keep"), -1)
        self.assertEqual(r.ttl("exp:ex"), -2)

    def test_200_concurrent_connections(self):
        n = 200
        errors = []
        barrier = threading.Barrier(n)

        def worker(i):
            try:
                s = raw_conn(self.srv.sock, timeout=20)
                barrier.wait(timeout=30)  # all 200 open at once
                key = f"conn:{i}".encode()
                s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" %
                          (len(key), key, len(key), key) +
                          b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
                want = b"+OK\r\n$%d\r\n%s\r\n" % (len(key), key)
                got = b""
                while len(got) < len(want):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                if got != want:
                    errors.append((i, got))
                s.close()
            except Exception as e:  # collected and asserted below
                errors.append((i, repr(e)))

        threads = [threading.Thread(target=worker, args=(i,))
                   for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        r = client(self.srv)
        self.assertEqual(r.get("conn:199"), b"conn:199")

    def test_hello_3_switches_to_resp3_and_hello_2_back(self):
        s = raw_conn(self.srv.sock)
        # The HELLO 3 reply is itself RESP3: a map of 7 fields.
        s.sendall(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\nPING\r\n")
        got = recv_until(s, b"+PONG\r\n")
        self.assertTrue(got.startswith(b"%7\r\n$6\r\nserver\r\n$3\r\nkvd\r\n"),
                        got)
        self.assertIn(b"$5\r\nproto\r\n:3\r\n", got)
        self.assertIn(b"$7\r\nmodules\r\n*0\r\n+PONG\r\n", got)
        # Nulls are RESP3 nulls, in and out of arrays.
        s.sendall(b"GET resp3:absent\r\n")
        self.expect_reply(s, b"_\r\n")
        s.sendall(b"SET resp3:k v\r\nMGET resp3:k resp3:absent\r\n")
        self.expect_reply(s, b"+OK\r\n*2\r\n$1\r\nv\r\n_\r\n")
        # Maps where Redis sends maps; INCRBYFLOAT stays a bulk string.
        s.sendall(b"CONFIG GET save\r\n")
        self.expect_reply(s, b"%1\r\n$4\r\nsave\r\n$0\r\n\r\n")
        s.sendall(b"INCRBYFLOAT resp3:f 1.5\r\n")
        self.expect_reply(s, b"$3\r\n1.5\r\n")
        s.sendall(b"CLIENT INFO\r\n")
        self.assertIn(b" resp=3", recv_until(s, b"\n\r\n"))
        # An unsupported version is refused and changes nothing.
        s.sendall(b"HELLO 4\r\nGET resp3:absent\r\n")
        self.expect_reply(s, b"-NOPROTO unsupported protocol version\r\n_\r\n")
        # HELLO 2 answers in RESP2 (a flat array) and switches back.
        s.sendall(b"HELLO 2\r\nPING\r\n")
        got = recv_until(s, b"+PONG\r\n")
        self.assertTrue(got.startswith(b"*14\r\n$6\r\nserver\r\n"), got)
        self.assertIn(b"$5\r\nproto\r\n:2\r\n", got)
        s.sendall(b"GET resp3:absent\r\n")
        self.expect_reply(s, b"$-1\r\n")
        # RESET also goes back to RESP2.
        s.sendall(b"HELLO 3\r\nPING\r\n")
        self.assertTrue(recv_until(s, b"+PONG\r\n").startswith(b"%7\r\n"))
        s.sendall(b"RESET\r\nGET resp3:absent\r\n")
        self.expect_reply(s, b"+RESET\r\n$-1\r\n")
        s.close()
        self.assert_server_healthy()

    def test_redis_cli_resp3(self):
        def cli(*args):
            return subprocess.run(["redis-cli", "-3", "--no-raw", "-s",
                                   self.srv.sock] + list(args),
                                  capture_output=True, timeout=30,
                                  check=True).stdout.decode()

        hello = cli("HELLO")
        self.assertIn('1# "server" => "kvd"', hello)
        self.assertIn('3# "proto" => (integer) 3', hello)
        self.assertEqual(cli("GET", "cli3:absent"), "(nil)\n")
        self.assertEqual(cli("CONFIG", "GET", "save"), '1# "save" => ""\n')
        self.assertEqual(cli("SET", "cli3:k", "v"), "OK\n")
        self.assertEqual(cli("MGET", "cli3:k", "cli3:absent"),
                         '1) "v"\n2) (nil)\n')

    def test_quit_closes_after_reply(self):
        s = raw_conn(self.srv.sock)
        s.sendall(b"PING\r\nQUIT\r\nPING\r\n")
        self.assertEqual(read_until_closed(s), b"+PONG\r\n+OK\r\n")
        s.close()

    def test_socket_mode_is_owner_only(self):
        mode = stat.S_IMODE(os.stat(self.srv.sock).st_mode)
        self.assertEqual(mode, 0o600)


class BadInput(ServerCase):
    """Each case breaks one connection; the others and the data survive."""

    resp_opts = {"output_stall_timeout": "1s",
                 "query_buffer_limit": "4m",
                 "max_bulk_len": "2m"}

    def expect_error_and_close(self, payload, message):
        s = raw_conn(self.srv.sock)
        s.sendall(payload)
        got = read_until_closed(s)
        s.close()
        self.assertEqual(got, b"-ERR Protocol error: " + message + b"\r\n")
        self.assert_server_healthy()

    def test_bulk_length_2_pow_40(self):
        self.expect_error_and_close(
            b"*2\r\n$3\r\nGET\r\n$1099511627776\r\n", b"invalid bulk length")

    def test_multibulk_count_too_large(self):
        self.expect_error_and_close(b"*2000000\r\n",
                                    b"invalid multibulk length")

    def test_not_a_bulk(self):
        self.expect_error_and_close(b"*1\r\n+PING\r\n",
                                    b"expected '$', got '+'")

    def test_too_big_inline_request(self):
        self.expect_error_and_close(b"x" * (70 * 1024),
                                    b"too big inline request")

    def test_request_over_the_query_buffer_limit(self):
        # 2 bulks of 2 MiB fit max_bulk_len but not the 4 MiB query buffer
        # limit together: refused once the buffer crosses it.
        big = b"a" * (2 << 20)
        payload = (b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" %
                   (len(big), big, len(big), big))
        s = raw_conn(self.srv.sock)
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = read_until_closed(s)
        s.close()
        self.assertTrue(got.startswith(b"-ERR Protocol error: "), got[:80])
        self.assert_server_healthy()

    def test_random_bytes(self):
        import random
        rnd = random.Random(1234)
        for _ in range(20):
            s = raw_conn(self.srv.sock)
            try:
                s.sendall(bytes(rnd.getrandbits(8) for _ in range(4096)))
                s.shutdown(socket.SHUT_WR)
                read_until_closed(s)
            except (BrokenPipeError, ConnectionResetError):
                pass
            s.close()
        self.assert_server_healthy()

    def test_unterminated_request_does_not_block_others(self):
        s = raw_conn(self.srv.sock)
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nu\r\n$100\r\nonly part")
        self.assert_server_healthy()
        s.close()
        self.assert_server_healthy()
        self.assertIsNone(client(self.srv).get("u"))

    def test_thousands_of_arguments(self):
        r = client(self.srv)
        pairs = {f"many:{i}": str(i) for i in range(5000)}
        self.assertTrue(r.mset(pairs))
        self.assertEqual(r.mget(list(pairs))[4999], b"4999")
        self.assertEqual(r.delete(*pairs.keys()), 5000)
        self.assert_server_healthy()

    def test_client_that_never_reads_replies(self):
        r = client(self.srv)
        r.set("fat", b"f" * (1 << 20))
        hog = raw_conn(self.srv.sock)
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.sendall(b"CLIENT ID\r\n")
        hog_id = int(recv_until(hog, b"\r\n")[1:-2])
        req = b"*2\r\n$3\r\nGET\r\n$3\r\nfat\r\n" * 64
        hog.settimeout(0.5)
        sent = 0
        try:
            for _ in range(64):
                sent += hog.send(req)
        except (socket.timeout, BlockingIOError):
            pass  # the server stopped reading: back-pressure
        # Others are served while the hog is stuck (how fast depends on
        # the machine: no timing is asserted).
        self.assert_server_healthy()
        # With output_stall_timeout = 1s the hog is cut off: it leaves
        # CLIENT LIST (a bounded wait), and reading what it was sent ends
        # with the server's close.
        deadline = time.time() + 60
        while (f"id={hog_id} ".encode() in r.execute_command("CLIENT",
                                                             "LIST") and
               time.time() < deadline):
            time.sleep(0.1)
        self.assertNotIn(f"id={hog_id} ".encode(),
                         r.execute_command("CLIENT", "LIST"))
        hog.settimeout(30)
        closed = False
        try:
            while True:
                chunk = hog.recv(1 << 20)
                if not chunk:
                    closed = True
                    break
        except ConnectionResetError:
            closed = True
        hog.close()
        self.assertTrue(closed)
        self.assert_server_healthy()


class Lifecycle(unittest.TestCase):
    def test_stale_socket_is_replaced_live_one_is_not_stolen(self):
        srv = KvdServer()
        try:
            # A socket file nobody listens on: what a killed server leaves.
            stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            stale.bind(srv.sock)
            stale.close()
            srv.start()
            self.assertTrue(client(srv).ping())
            second = KvdServer(resp_opts={"unix_socket": srv.sock})
            try:
                with self.assertRaises(RuntimeError) as cm:
                    second.start(timeout=5)
                self.assertIn("in use by a running server",
                              str(cm.exception))
            finally:
                second.cleanup()
            self.assertTrue(client(srv).ping())
            srv.stop()  # checks exit status 0 and that the file is gone
        finally:
            srv.cleanup()

    def test_graceful_stop_finishes_replies_in_flight(self):
        srv = KvdServer()
        try:
            srv.start()
            s = raw_conn(srv.sock, timeout=20)
            n = 20000
            s.sendall(b"*1\r\n$4\r\nPING\r\n" * n)
            time.sleep(0.05)
            srv.proc.send_signal(15)
            got = read_until_closed(s, limit=n * 7 + 1)
            s.close()
            # Whatever was answered is whole replies, in order.
            self.assertEqual(len(got) % 7, 0)
            self.assertEqual(got, b"+PONG\r\n" * (len(got) // 7))
            self.assertGreater(len(got), 0)
            srv.stop()
        finally:
            srv.cleanup()

    def test_tcp_listener(self):
        srv, port = start_on_free_port(
            lambda p: KvdServer(resp_opts={"tcp": str(p)}))
        try:
            r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
            self.assertTrue(r.set("tcp", "1"))
            self.assertEqual(client(srv).get("tcp"), b"1")
            r.close()
            srv.stop()
        finally:
            srv.cleanup()

    def test_client_list_shows_addresses_and_fd(self):
        """CLIENT INFO/LIST: addr=ip:port laddr=ip:port fd=N for TCP, the
        socket's path for the Unix socket (what issue 16's tooling reads)."""
        srv, port = start_on_free_port(
            lambda p: KvdServer(resp_opts={"tcp": str(p)}))
        try:
            s = tcp_conn(port)
            s.sendall(b"CLIENT INFO\r\n")
            info = recv_until(s, b"\n\r\n").decode()
            cport = s.getsockname()[1]
            self.assertIn(f" addr=127.0.0.1:{cport} ", info)
            self.assertIn(f" laddr=127.0.0.1:{port} ", info)
            fd = int(info.split(" fd=")[1].split(" ")[0])
            self.assertGreater(fd, 2)
            u = client(srv)
            line = u.execute_command("CLIENT", "INFO").decode()
            self.assertIn(f" addr={srv.sock} laddr={srv.sock} fd=", line)
            listing = u.execute_command("CLIENT", "LIST").decode()
            self.assertIn(f" addr=127.0.0.1:{cport} ", listing)
            u.close()
            s.close()
            srv.stop()
        finally:
            srv.cleanup()

    def test_introspection_reports_what_kvd_runs(self):
        """INFO tcp_port and CONFIG GET port: the port kvd listens on;
        maxclients: the frontend's; ROLE and INFO replication: a primary
        without replicas; appendfsync: the engine's sync policy (none for
        memory and redis); CLIENT LIST as python3-redis parses it."""
        srv, port = start_on_free_port(lambda p: KvdServer(
            resp_opts={"tcp": str(p), "maxclients": "77"}))
        try:
            r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
            self.assertEqual(r.info("server")["tcp_port"], port)
            self.assertEqual(r.config_get("port"), {"port": str(port)})
            self.assertEqual(r.config_get("maxclients"),
                             {"maxclients": "77"})
            self.assertEqual(r.info("clients")["maxclients"], 77)
            repl = r.info("replication")
            self.assertEqual(repl["role"], "master")
            self.assertEqual(repl["connected_slaves"], 0)
            role = r.execute_command("ROLE")
            self.assertIn(role[0], (b"master", "master"))
            self.assertEqual(list(role[1:]), [0, []])
            engine = os.environ.get("KVD_ENGINE", "memory")
            self.assertEqual(
                r.config_get("appendfsync"),
                {} if engine in ("memory", "redis")
                else {"appendfsync": "everysec"})
            aof = engine not in ("memory", "redis")
            self.assertEqual(r.config_get("appendonly"),
                             {"appendonly": "yes" if aof else "no"})
            self.assertEqual(r.info("persistence")["aof_enabled"], int(aof))
            mine = [c for c in r.client_list()
                    if c["laddr"] == f"127.0.0.1:{port}"]
            self.assertEqual(len(mine), 1)
            self.assertEqual(mine[0]["cmd"], "client|list")
            self.assertEqual(mine[0]["flags"], "N")
            self.assertEqual(mine[0]["resp"], "2")
            u = client(srv)
            self.assertEqual(u.info("server")["tcp_port"], port)
            self.assertIn("flags=U ",
                          u.execute_command("CLIENT", "INFO").decode())
            u.close()
            r.close()
            srv.stop()
        finally:
            srv.cleanup()

    def test_kernel_assigned_port_is_reported_on_the_unix_socket(self):
        """tcp = 127.0.0.1:0: INFO tcp_port and CONFIG GET port answer the
        port the kernel chose, on a Unix socket connection too (the same
        one the log line names and a TCP client reaches)."""
        srv = KvdServer(resp_opts={"tcp": "127.0.0.1:0"})
        try:
            srv.start()
            # the line may follow the first PING by a moment (10 s bound)
            deadline = time.time() + 10
            m = None
            while m is None and time.time() < deadline:
                m = re.search(r"resp: listening on .*tcp:127\.0\.0\.1:(\d+)",
                              srv.read_log())
                time.sleep(0 if m else 0.05)
            self.assertIsNotNone(m, srv.read_log())
            port = int(m.group(1))
            self.assertNotEqual(port, 0)
            u = client(srv)
            self.assertEqual(u.info("server")["tcp_port"], port)
            self.assertEqual(u.config_get("port"), {"port": str(port)})
            u.close()
            r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
            self.assertEqual(r.info("server")["tcp_port"], port)
            r.close()
            srv.stop()
        finally:
            srv.cleanup()


class RequirePass(RawReplies, unittest.TestCase):
    """requirepass: TCP clients must AUTH, Unix socket clients are trusted."""

    PASS = b"se cr\xc3\xa9t"  # a space and non-ASCII bytes

    @classmethod
    def setUpClass(cls):
        cls.srv, cls.port = start_on_free_port(lambda p: KvdServer(
            resp_opts={"tcp": f"127.0.0.1:{p}",
                       "requirepass": cls.PASS.decode()}))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            cls.srv.cleanup()

    def cmd(self, *args):
        """One request as a RESP multibulk."""
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        return out

    NOAUTH = b"-NOAUTH Authentication required.\r\n"
    WRONGPASS = (b"-WRONGPASS invalid username-password pair or user is "
                 b"disabled.\r\n")

    def test_tcp_needs_auth_before_any_command(self):
        s = tcp_conn(self.port)
        s.sendall(self.cmd("GET", "k") + self.cmd("PING") +
                  self.cmd("SET", "k", "v"))
        self.expect_reply(s, self.NOAUTH * 3)
        s.sendall(self.cmd("AUTH", "wrong") + self.cmd("AUTH", self.PASS[:-1]))
        self.expect_reply(s, self.WRONGPASS * 2)
        s.sendall(self.cmd("AUTH", "admin", self.PASS))
        self.expect_reply(s, self.WRONGPASS)
        s.sendall(self.cmd("GET", "k"))
        self.expect_reply(s, self.NOAUTH)
        s.sendall(self.cmd("AUTH", self.PASS) + self.cmd("SET", "tcp:k", "v") +
                  self.cmd("GET", "tcp:k"))
        self.expect_reply(s, b"+OK\r\n+OK\r\n$1\r\nv\r\n")
        # RESET drops the authentication, not the requirement.
        s.sendall(self.cmd("RESET") + self.cmd("GET", "tcp:k"))
        self.expect_reply(s, b"+RESET\r\n" + self.NOAUTH)
        s.sendall(self.cmd("AUTH", "default", self.PASS) +
                  self.cmd("GET", "tcp:k"))
        self.expect_reply(s, b"+OK\r\n$1\r\nv\r\n")
        s.close()

    def test_tcp_hello_auth(self):
        s = tcp_conn(self.port)
        s.sendall(self.cmd("HELLO", "2", "AUTH", "default", "bad"))
        self.expect_reply(s, self.WRONGPASS)
        s.sendall(self.cmd("HELLO", "3"))
        self.assertTrue(recv_until(s, b"time\r\n").startswith(
            b"-NOAUTH HELLO must be called with the client already "
            b"authenticated"))
        s.sendall(self.cmd("HELLO", "2", "AUTH", "default", self.PASS) +
                  self.cmd("PING"))
        got = recv_until(s, b"+PONG\r\n")
        self.assertTrue(got.startswith(b"*14\r\n$6\r\nserver\r\n"), got)
        self.assertIn(b"$5\r\nproto\r\n:2\r\n", got)
        s.close()
        s = tcp_conn(self.port)
        s.sendall(self.cmd("HELLO", "3", "AUTH", "default", self.PASS) +
                  self.cmd("GET", "hello:absent"))
        got = recv_until(s, b"_\r\n")
        self.assertTrue(got.startswith(b"%7\r\n"), got)
        s.close()

    def test_tcp_clients_with_the_password(self):
        r = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        with self.assertRaises(redis.AuthenticationError):
            r.get("lib:k")
        r.close()
        r = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5,
                        password=self.PASS)
        self.assertTrue(r.set("lib:k", "1"))
        self.assertEqual(r.get("lib:k"), b"1")
        r.close()
        out = subprocess.run(
            ["redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "-p",
             str(self.port), "-a", self.PASS, "GET", "lib:k"],
            capture_output=True, timeout=30, check=True).stdout
        self.assertEqual(out, b"1\n")

    def test_unix_socket_is_trusted(self):
        s = raw_conn(self.srv.sock)
        s.sendall(self.cmd("SET", "unix:k", "v") + self.cmd("GET", "unix:k"))
        self.expect_reply(s, b"+OK\r\n$1\r\nv\r\n")
        # An AUTH sent anyway is checked, so clients that always send one
        # (redis-cli -a) work, and a wrong one is still wrong.
        s.sendall(self.cmd("AUTH", "wrong"))
        self.expect_reply(s, self.WRONGPASS)
        s.sendall(self.cmd("AUTH", self.PASS) + self.cmd("RESET") +
                  self.cmd("GET", "unix:k"))
        self.expect_reply(s, b"+OK\r\n+RESET\r\n$1\r\nv\r\n")
        s.close()
        out = subprocess.run(
            ["redis-cli", "--no-auth-warning", "-s", self.srv.sock, "-a",
             self.PASS, "GET", "unix:k"],
            capture_output=True, timeout=30, check=True).stdout
        self.assertEqual(out, b"v\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
