#!/usr/bin/env python3
"""tests/e2e/resp_tx_test.py -- transactions over RESP, end to end.

Starts the real kvd (engine from $KVD_ENGINE) and drives it with
python3-redis the way applications do: the default transactional pipeline,
Redis.transaction() WATCH retry loops, redis.lock.Lock; then the raw
replies of MULTI/EXEC/WATCH in RESP2 and RESP3, and a concurrency
invariant: 16 clients move amounts between 100 accounts (WATCH/MULTI/EXEC
transfers, and MULTI INCRBY/DECRBY pairs) while a reader sums every account
inside MULTI/EXEC; every sum, and the final one, is the initial total. On
the redis engine every key carries one hash tag, so a transaction's keys
share a slot.

Nothing here depends on timing: the workers run a fixed number of
operations (plus a bounded retry loop), every wait has a timeout.
"""

import os
import sys
import threading
import unittest

import redis
from redis.exceptions import ResponseError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_harness import (KvdServer, raw_conn, recv_exact,  # noqa: E402
                          recv_until)

# One hash tag for every key: the redis engine's cluster mode needs a
# transaction's keys in one slot; elsewhere it is just part of the name.
TAG = "{tx}"
ACCOUNTS = 100
INITIAL = 1000
CLIENTS = 16


def client(srv, **kw):
    return redis.Redis(unix_socket_path=srv.sock, socket_timeout=30, **kw)


def acct(i):
    return f"{TAG}acct:{i}"


class Tx(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = KvdServer()
        try:
            cls.srv.start()
        except Exception:
            cls.srv.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            cls.srv.cleanup()

    def test_default_pipeline_is_a_transaction(self):
        r = client(self.srv)
        r.delete(f"{TAG}tx:a", f"{TAG}tx:n")
        p = r.pipeline()  # transaction=True: MULTI ... EXEC in one write
        p.set(f"{TAG}tx:a", "x")
        p.incr(f"{TAG}tx:n")
        p.get(f"{TAG}tx:a")
        self.assertEqual(p.execute(), [True, 1, b"x"])
        # A command the server refuses while queueing: nothing runs.
        p = r.pipeline()
        p.incr(f"{TAG}tx:n")
        p.execute_command("NO-SUCH-COMMAND")
        with self.assertRaises(ResponseError) as e:
            p.execute()
        self.assertIn("unknown command", str(e.exception).lower() +
                      str(e.exception.__cause__).lower())
        self.assertEqual(r.get(f"{TAG}tx:n"), b"1")
        # A runtime error is one reply among the others.
        p = r.pipeline()
        p.set(f"{TAG}tx:s", "text")
        p.incr(f"{TAG}tx:s")
        p.incr(f"{TAG}tx:n")
        res = p.execute(raise_on_error=False)
        self.assertEqual(res[0], True)
        self.assertIsInstance(res[1], ResponseError)
        self.assertEqual(res[2], 2)
        r.close()

    def test_transaction_retry_loop(self):
        """Redis.transaction(fn, *watches): WATCH, read, MULTI, EXEC, and
        again on WatchError; 8 clients increment one counter this way."""
        key = f"{TAG}tx:ctr"
        client(self.srv).set(key, 0)
        errors = []
        retries = []

        def work():
            try:
                r = client(self.srv)
                tries = [0]

                def fn(pipe):
                    tries[0] += 1
                    v = int(pipe.get(key))
                    pipe.multi()
                    pipe.set(key, v + 1)

                for _ in range(50):
                    r.transaction(fn, key)
                retries.append(tries[0] - 50)
                r.close()
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(repr(e))

        ts = [threading.Thread(target=work) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
            self.assertFalse(t.is_alive(), "a client did not finish")
        self.assertEqual(errors, [])
        self.assertEqual(client(self.srv).get(key), b"400")

    def test_watch_error_and_unwatch(self):
        r = client(self.srv)
        other = client(self.srv)
        key = f"{TAG}tx:w"
        r.set(key, 1)
        with r.pipeline() as p:
            p.watch(key)
            other.set(key, 2)
            p.multi()
            p.set(key, 3)
            with self.assertRaises(redis.WatchError):
                p.execute()
        self.assertEqual(r.get(key), b"2")
        with r.pipeline() as p:
            p.watch(key)
            other.set(key, 4)
            p.unwatch()
            p.multi()
            p.set(key, 5)
            self.assertEqual(p.execute(), [True])
        self.assertEqual(r.get(key), b"5")
        r.close()
        other.close()

    def test_lock(self):
        """redis.lock.Lock: acquire is SET NX PX; release, extend and
        reacquire run Lua (EVALSHA), which kvd does not have."""
        r = client(self.srv)
        lock = r.lock(f"{TAG}tx:lock", timeout=10)
        self.assertTrue(lock.acquire(blocking=False))
        self.assertFalse(r.lock(f"{TAG}tx:lock", timeout=10).acquire(
            blocking=False))
        self.assertTrue(lock.locked())
        with self.assertRaises(ResponseError) as e:
            lock.release()
        self.assertIn("unknown command 'EVALSHA'", str(e.exception))
        r.close()

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        return out

    def test_raw_replies_resp2_and_resp3(self):
        s = raw_conn(self.srv.sock)
        other = client(self.srv)
        k = f"{TAG}tx:raw"
        s.sendall(self.cmd("SET", k, "1") + self.cmd("MULTI") +
                  self.cmd("INCR", k) + self.cmd("GET", k) +
                  self.cmd("EXEC"))
        want = b"+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:2\r\n$1\r\n2\r\n"
        self.assertEqual(recv_exact(s, len(want)), want)
        for proto, null in ((2, b"*-1\r\n"), (3, b"_\r\n")):
            s.sendall(self.cmd("HELLO", str(proto)))
            hello = recv_until(s, b"$7\r\nmodules\r\n*0\r\n")
            self.assertTrue(hello.startswith(b"*14\r\n" if proto == 2
                                             else b"%7\r\n"), hello)
            s.sendall(self.cmd("WATCH", k))
            self.assertEqual(recv_exact(s, 5), b"+OK\r\n")
            other.incr(k)
            s.sendall(self.cmd("MULTI") + self.cmd("GET", k) +
                      self.cmd("EXEC"))
            want = b"+OK\r\n+QUEUED\r\n" + null
            self.assertEqual(recv_exact(s, len(want)), want)
        s.sendall(self.cmd("EXEC") + self.cmd("MULTI") + self.cmd("MULTI") +
                  self.cmd("GET") + self.cmd("EXEC"))
        want = (b"-ERR EXEC without MULTI\r\n+OK\r\n"
                b"-ERR MULTI calls can not be nested\r\n"
                b"-ERR wrong number of arguments for 'get' command\r\n"
                b"-EXECABORT Transaction discarded because of previous "
                b"errors.\r\n")
        self.assertEqual(recv_exact(s, len(want)), want)
        s.close()
        other.close()

    def test_bank_invariant(self):
        """16 clients move money between 100 accounts; a reader sums all
        of them inside MULTI/EXEC; every sum is the initial total."""
        r = client(self.srv)
        r.mset({acct(i): INITIAL for i in range(ACCOUNTS)})
        total = ACCOUNTS * INITIAL
        errors = []
        stop = threading.Event()
        sums = []

        def transfer_watch(rr, a, b, amount):
            def fn(pipe):
                va = int(pipe.get(acct(a)))
                vb = int(pipe.get(acct(b)))
                pipe.multi()
                pipe.set(acct(a), va - amount)
                pipe.set(acct(b), vb + amount)
            rr.transaction(fn, acct(a), acct(b))

        def transfer_incr(rr, a, b, amount):
            p = rr.pipeline()
            p.decrby(acct(a), amount)
            p.incrby(acct(b), amount)
            p.execute()

        def worker(n):
            try:
                rr = client(self.srv)
                seed = 1000 + n
                for i in range(150):
                    seed = (seed * 1103515245 + 12345) % (1 << 31)
                    a = seed % ACCOUNTS
                    b = (seed >> 8) % ACCOUNTS
                    if a == b:
                        continue
                    amount = 1 + (seed >> 16) % 20
                    if n % 2 == 0:
                        transfer_watch(rr, a, b, amount)
                    else:
                        transfer_incr(rr, a, b, amount)
                rr.close()
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(f"worker {n}: {e!r}")

        def reader():
            try:
                rr = client(self.srv)
                while not stop.is_set() or len(sums) < 3:
                    p = rr.pipeline()
                    for i in range(ACCOUNTS):
                        p.get(acct(i))
                    sums.append(sum(int(v) for v in p.execute()))
                rr.close()
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(f"reader: {e!r}")

        rt = threading.Thread(target=reader)
        rt.start()
        ws = [threading.Thread(target=worker, args=(n,))
              for n in range(CLIENTS)]
        for t in ws:
            t.start()
        for t in ws:
            t.join(300)
            self.assertFalse(t.is_alive(), "a worker did not finish")
        stop.set()
        rt.join(60)
        self.assertFalse(rt.is_alive(), "the reader did not finish")
        self.assertEqual(errors, [])
        self.assertGreater(len(sums), 0)
        self.assertEqual([s for s in sums if s != total], [])
        final = sum(int(v) for v in r.mget([acct(i)
                                              for i in range(ACCOUNTS)]))
        self.assertEqual(final, total)
        r.close()

    def test_mget_is_a_snapshot_of_transactions(self):
        """MGET takes the stripes of its keys, so it sees a transaction
        whole or not at all (docs/protocol.md)."""
        r = client(self.srv)
        keys = [f"{TAG}snap:{i}" for i in range(5)]
        r.mset({k: 0 for k in keys})
        errors = []

        def writer():
            try:
                rr = client(self.srv)
                for n in range(1, 400):
                    p = rr.pipeline()
                    for k in keys:
                        p.set(k, n)
                    p.execute()
                rr.close()
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(repr(e))

        wt = threading.Thread(target=writer)
        wt.start()
        torn = 0
        while wt.is_alive():
            vals = r.mget(keys)
            torn += len(set(vals)) != 1
        wt.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(torn, 0)
        r.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
