#!/usr/bin/env python3
"""tests/e2e/resp_tx_crash.py -- SIGKILL during transactions, sync = always.

A writer runs transactions of several SETs against kvd (engine $KVD_ENGINE,
log or lsm, with sync = always): transaction n sets the five shared keys
slot:0..slot:4 to n and creates t:n:a and t:n:b. kvd is killed with
SIGKILL at a random moment, restarted on the same data directory, and
checked, over many cycles:

  - every acknowledged EXEC is there whole: t:j:a and t:j:b for every
    acknowledged j, and the slots hold one transaction's value no older
    than the last acknowledged one;
  - no transaction is there in part: the five slots hold the same value,
    and the transaction in flight when kvd died has both of its own keys
    or neither.

The kill moment is random (the seed is printed, and $KVD_CRASH_SEED
repeats a run); what is checked does not depend on it.
"""

import os
import random
import sys
import threading
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_harness import KvdServer  # noqa: E402

SLOTS = 5
CYCLES = int(os.environ.get("KVD_CRASH_CYCLES", "25"))


def client(srv):
    return redis.Redis(unix_socket_path=srv.sock, socket_timeout=30)


class Writer(threading.Thread):
    """Transactions n = first, first + 1, ... until the server dies."""

    def __init__(self, srv, first):
        super().__init__()
        self.srv = srv
        self.next = first
        self.acked = first - 1  # the last EXEC whose reply arrived
        self.sent = first - 1   # the last EXEC sent
        self.error = None

    def run(self):
        try:
            r = client(self.srv)
            while True:
                n = self.next
                p = r.pipeline()  # MULTI ... EXEC
                for i in range(SLOTS):
                    p.set(f"slot:{i}", n)
                p.set(f"t:{n}:a", n)
                p.set(f"t:{n}:b", n)
                self.sent = n
                res = p.execute()
                if res != [True] * (SLOTS + 2):
                    self.error = f"transaction {n}: {res}"
                    return
                self.acked = n
                self.next = n + 1
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return  # killed
        except Exception as e:  # noqa: BLE001 -- reported by the check
            self.error = repr(e)


def check(srv, acked, sent):
    """What a restarted server holds, after `acked` of `sent` (ids)."""
    r = client(srv)
    slots = r.mget([f"slot:{i}" for i in range(SLOTS)])
    if sent < 0:
        assert slots == [None] * SLOTS, slots
        return
    assert len(set(slots)) == 1, f"a transaction in part: slots {slots}"
    v = int(slots[0]) if slots[0] is not None else -1
    assert acked <= v <= sent, \
        f"slots hold {v}; acknowledged up to {acked}, sent up to {sent}"
    # Every acknowledged transaction's own keys, in chunks.
    for lo in range(0, acked + 1, 1000):
        ids = range(lo, min(acked + 1, lo + 1000))
        keys = [f"t:{j}:{x}" for j in ids for x in "ab"]
        got = r.mget(keys)
        want = [str(j).encode() for j in ids for _ in "ab"]
        assert got == want, f"acknowledged transactions lost in {lo}.."
    # The ones in flight: whole or absent.
    for j in range(acked + 1, sent + 1):
        a, b = r.mget([f"t:{j}:a", f"t:{j}:b"])
        assert (a is None) == (b is None), f"transaction {j} in part"
        assert a is None or int(a) == j
    assert r.exists(f"t:{sent + 1}:a") == 0
    r.close()


def main():
    engine = os.environ.get("KVD_ENGINE", "log")
    seed = int(os.environ.get("KVD_CRASH_SEED", str(int(time.time()))))
    rnd = random.Random(seed)
    print(f"engine {engine}, {CYCLES} cycles, seed {seed}", flush=True)
    srv = KvdServer(engine=engine, engine_opts={"sync": "always"})
    acked = sent = -1
    total = 0
    try:
        for cycle in range(CYCLES):
            srv.start(timeout=60)
            check(srv, acked, sent)
            # Whatever was in flight is now settled: present (as one
            # whole transaction) or not; go on after the last present.
            r = client(srv)
            while r.exists(f"t:{sent}:a") == 0 and sent > acked:
                sent -= 1
            r.close()
            acked = sent
            w = Writer(srv, sent + 1)
            w.start()
            time.sleep(rnd.uniform(0.05, 0.6))
            srv.kill()
            w.join(60)
            assert not w.is_alive(), "the writer hangs after the kill"
            assert w.error is None, w.error
            total += w.acked - acked
            acked, sent = w.acked, w.sent
            print(f"cycle {cycle}: acknowledged up to {acked}, sent {sent}",
                  flush=True)
        srv.start(timeout=60)
        check(srv, acked, sent)
        srv.stop()
        assert total > 0, "no transaction was acknowledged at all"
        print(f"ok: {total} transactions acknowledged over {CYCLES} crashes")
    finally:
        srv.cleanup()


if __name__ == "__main__":
    main()
