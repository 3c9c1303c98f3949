#!/usr/bin/env python3
"""e2e.http_txn.<engine>: HTTP's conditional requests and transactions.

One kvd with the http frontend (a kernel-assigned port, read from its log)
and the resp frontend on a Unix socket, on the given engine:

  - every GET of a key carries a strong ETag (the same for the same bytes,
    and the one a PUT answered with); If-None-Match gives 304 on GET;
  - PUT and DELETE honour If-Match and If-None-Match: * (412, nothing
    written), a DELETE of a missing key stays 404;
  - races: two clients that read the same ETag both PUT with If-Match:
    exactly one wins, every round; 8 clients incrementing one counter by
    read / PUT If-Match / retry on 412 lose no increment;
  - an HTTP write aborts a RESP client's WATCH ... EXEC;
  - POST /txn: all or nothing on a failing precondition (412 listing it),
    on an operation the command layer refuses (413 naming it), limits,
    and a bank of accounts moved by concurrent transactions whose total
    never changes.

Every wait is bounded; the races count outcomes, never timings.

usage: http_txn_test.py KVD_BIN PLUGIN_DIR ENGINE
"""
import http.client
import json
import os
import re
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_harness import Kvd, check, finish  # noqa: E402

class H:
    """One keep-alive HTTP connection."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def req(self, method, path, body=None, headers=None):
        self.c.request(method, path, body=body, headers=headers or {})
        r = self.c.getresponse()
        data = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


class Resp:
    """Just enough RESP2 for WATCH / MULTI / SET / EXEC."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(30)
        self.s.connect(path)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(65536)
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ValueError(line)

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self._reply()


# ---- ETags ------------------------------------------------------------------------

def etags(port):
    h = H(port)
    st, hd, _ = h.req("PUT", "/kv/e1", b"hello")
    put_tag = hd.get("etag", "")
    st, hd, body = h.req("GET", "/kv/e1")
    tag = hd.get("etag", "")
    check("GET carries a strong ETag (%s)" % tag,
          st == 200 and re.fullmatch(r'"[0-9a-f]{16}"', tag) is not None)
    check("... the one the PUT answered with", put_tag == tag, put_tag)
    st, hd, _ = h.req("HEAD", "/kv/e1")
    check("HEAD carries it too", hd.get("etag") == tag)
    h.req("PUT", "/kv/e2", b"hello")
    st, hd, _ = h.req("GET", "/kv/e2")
    check("the same bytes have the same ETag", hd.get("etag") == tag)
    h.req("PUT", "/kv/e2", b"hellp")
    st, hd, _ = h.req("GET", "/kv/e2")
    check("other bytes another", hd.get("etag") != tag)
    st, hd, body = h.req("GET", "/kv/e1", headers={"If-None-Match": tag})
    check("GET If-None-Match: the tag is 304 without a body",
          st == 304 and body == b"" and hd.get("etag") == tag, str(st))
    st, hd, body = h.req("GET", "/kv/e1",
                         headers={"If-None-Match": '"x", W/%s' % tag})
    check("... a weak tag in a list matches too (weak comparison)", st == 304)
    st, _, body = h.req("GET", "/kv/e1", headers={"If-Match": '"nope"'})
    check("GET If-Match: another tag is 412", st == 412, str(st))
    st, _, body = h.req("GET", "/kv/e1", headers={"If-Match": "W/" + tag})
    check("... a weak tag never matches If-Match (strong comparison)",
          st == 412, str(st))
    return tag


def conditional_writes(port, tag):
    h = H(port)
    st, _, _ = h.req("PUT", "/kv/c1", b"one", {"If-None-Match": "*"})
    check("PUT If-None-Match: * creates an absent key (201)", st == 201)
    st, hd, body = h.req("PUT", "/kv/c1", b"two", {"If-None-Match": "*"})
    check("... and is 412 once it exists", st == 412, str(st))
    check("... naming the current tag", hd.get("etag") is not None)
    st, _, body = h.req("GET", "/kv/c1")
    check("... which wrote nothing", body == b"one", repr(body))
    st, hd, _ = h.req("GET", "/kv/c1")
    cur = hd["etag"]
    st, hd, _ = h.req("PUT", "/kv/c1", b"three", {"If-Match": cur})
    check("PUT If-Match: the current tag replaces (204) and answers the new "
          "tag", st == 204 and hd.get("etag") not in (None, cur), str(st))
    st, _, _ = h.req("PUT", "/kv/c1", b"four", {"If-Match": cur})
    check("PUT If-Match: a stale tag is 412", st == 412, str(st))
    st, _, body = h.req("GET", "/kv/c1")
    check("... and wrote nothing", body == b"three", repr(body))
    st, _, _ = h.req("PUT", "/kv/c-absent", b"x", {"If-Match": "*"})
    check("PUT If-Match: * on an absent key is 412", st == 412, str(st))
    st, _, _ = h.req("GET", "/kv/c-absent")
    check("... and created nothing", st == 404)
    st, _, _ = h.req("PUT", "/kv/c1?xx", b"five", {"If-Match": "*"})
    check("If-Match: * with ?xx on a present key writes (204)", st == 204)
    st, _, _ = h.req("DELETE", "/kv/c1", headers={"If-Match": '"stale"'})
    check("DELETE If-Match: a stale tag is 412", st == 412, str(st))
    st, hd, _ = h.req("GET", "/kv/c1")
    check("... and deleted nothing", st == 200)
    st, _, _ = h.req("DELETE", "/kv/c1", headers={"If-Match": hd["etag"]})
    check("DELETE If-Match: the current tag deletes (204)", st == 204)
    st, _, _ = h.req("DELETE", "/kv/c1", headers={"If-Match": "*"})
    check("DELETE of a missing key stays 404 whatever the condition",
          st == 404, str(st))


def races(port):
    # Two clients read the same tag, then both write with If-Match.
    a, b = H(port), H(port)
    a.req("PUT", "/kv/race", b"0")
    wins = 0
    bad = 0
    for i in range(100):
        _, hd, _ = a.req("GET", "/kv/race")
        tag = hd["etag"]
        res = []
        ts = [threading.Thread(target=lambda c, v: res.append(
            c.req("PUT", "/kv/race", v, {"If-Match": tag})[0]),
            args=(c, b"v%d-%d" % (i, k))) for k, c in enumerate((a, b))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wins += sorted(res) == [204, 412]
        bad += sorted(res) != [204, 412]
    check("two writers with the same If-Match tag: one 204, one 412, in "
          "each of 100 rounds", wins == 100, "%d rounds otherwise" % bad)

    # Read-modify-write loops: no increment lost.
    H(port).req("PUT", "/kv/counter", b"0")
    clients, each = 8, 25
    conflicts = [0]
    lock = threading.Lock()

    def incr():
        h = H(port)
        for _ in range(each):
            for _ in range(1000):
                _, hd, body = h.req("GET", "/kv/counter")
                st, _, _ = h.req("PUT", "/kv/counter", b"%d" % (int(body) + 1),
                                 {"If-Match": hd["etag"]})
                if st == 204:
                    break
                with lock:
                    conflicts[0] += 1

    ts = [threading.Thread(target=incr) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    _, _, body = H(port).req("GET", "/kv/counter")
    check("8 clients x 25 increments by GET + PUT If-Match: %s (%d retries "
          "after 412)" % (body.decode(), conflicts[0]),
          body == b"%d" % (clients * each))


def watch_across_frontends(port, sock):
    r = Resp(sock)
    h = H(port)
    r.cmd("SET", "w", "resp")
    check("RESP WATCH", r.cmd("WATCH", "w") == "OK")
    h.req("PUT", "/kv/w", b"http")
    r.cmd("MULTI")
    r.cmd("SET", "w", "from-exec")
    check("an HTTP PUT of a watched key makes the RESP client's EXEC fail",
          r.cmd("EXEC") is None)
    _, _, body = h.req("GET", "/kv/w")
    check("... and the HTTP write stands", body == b"http", repr(body))


# ---- POST /txn ---------------------------------------------------------------------

def txn(h, ops, raw=None):
    body = raw if raw is not None else json.dumps({"ops": ops}).encode()
    st, hd, data = h.req("POST", "/txn", body,
                         {"Content-Type": "application/json"})
    try:
        return st, json.loads(data)
    except ValueError:
        return st, data


def transactions(port):
    h = H(port)
    st, res = txn(h, [{"op": "set", "key": "t:a", "value": "1"},
                      {"op": "set", "key": "t:b", "value": {"base64": "AP8="}},
                      {"op": "get", "key": "t:a"},
                      {"op": "get", "key": "t:none"}])
    check("a transaction of sets and gets is 200 with a result per "
          "operation", st == 200 and len(res.get("results", [])) == 4,
          "%d %r" % (st, res))
    if st == 200:
        r = res["results"]
        check("... a get sees the transaction's own set before it (list "
              "order, as inside MULTI/EXEC); a missing key is null",
              r[2].get("value") == "1" and r[3]["value"] is None and
              r[0]["etag"].startswith('"'), repr(r))
    _, hd, body = h.req("GET", "/kv/t:b")
    check("... base64 values are stored decoded", body == b"\x00\xff")
    tag_a = h.req("GET", "/kv/t:a")[1]["etag"]

    # A failing precondition: nothing applied.
    st, res = txn(h, [{"op": "set", "key": "t:a", "value": "2"},
                      {"op": "delete", "key": "t:b"},
                      {"op": "set", "key": "t:c", "value": "3"},
                      {"op": "check", "key": "t:b", "if_match": '"stale"'},
                      {"op": "check", "key": "t:x", "if_none_match": "*"}])
    check("a failing precondition is 412 listing it",
          st == 412 and isinstance(res, dict) and
          res.get("failed") == [{"index": 3, "key": "t:b", "what": "if_match",
                                 "etag": h.req("GET", "/kv/t:b")[1]["etag"]}],
          "%d %r" % (st, res))
    check("... and nothing of the transaction is applied",
          h.req("GET", "/kv/t:a")[2] == b"1" and
          h.req("GET", "/kv/t:b")[0] == 200 and
          h.req("GET", "/kv/t:c")[0] == 404)

    # An operation the command layer refuses at EXEC: nothing applied.
    big = "x" * (1024 * 1024 + 1)
    st, res = txn(h, [{"op": "set", "key": "t:a", "value": "9"},
                      {"op": "set", "key": "t:big", "value": big}])
    check("an operation refused when it runs (a value over max_value_bytes) "
          "is 413 naming it", st == 413 and res.get("index") == 1,
          "%d %r" % (st, res if isinstance(res, dict) else "")[:200])
    check("... and the other operation is not applied",
          h.req("GET", "/kv/t:a")[2] == b"1")
    st, res = txn(h, [{"op": "set", "key": "t:a", "value": "9", "ttl": 0}])
    check("a ttl the command layer refuses is 400, nothing applied",
          st == 400 and h.req("GET", "/kv/t:a")[2] == b"1", str(st))

    # Conditions that hold, a ttl.
    st, res = txn(h, [{"op": "set", "key": "t:a", "value": "10",
                       "if_match": tag_a},
                      {"op": "set", "key": "t:n", "value": "new",
                       "if_none_match": "*", "ttl": 100},
                      {"op": "delete", "key": "t:b", "if_match": "*"}])
    check("preconditions that hold: 200, all applied",
          st == 200 and h.req("GET", "/kv/t:a")[2] == b"10" and
          h.req("GET", "/kv/t:b")[0] == 404, "%d %r" % (st, res))
    check("... with the ttl", 95 <= int(h.req("GET", "/kv/t:n")[1]
                                        .get("x-kv-ttl", 0)) <= 100)

    # Refusals before anything runs.
    st, res = txn(h, [{"op": "set", "key": "k", "value": "v"}] * 129)
    check("more than 128 operations is 413", st == 413, str(st))
    st, res = txn(h, [{"op": "set", "key": "d", "value": "1"},
                      {"op": "delete", "key": "d"}])
    check("a key written twice is 400 naming the second",
          st == 400 and res.get("index") == 1, "%d %r" % (st, res))
    for bad, what in (([{"op": "frob", "key": "k"}], "an unknown op"),
                      ([{"op": "set", "key": "k"}], "a set without value"),
                      ([{"op": "set", "key": "k", "value": ""}],
                       "an empty value"),
                      ([{"op": "get", "key": "k", "nope": 1}],
                       "an unknown member"),
                      ([], "no operation")):
        st, res = txn(h, bad)
        check("%s is 400" % what, st == 400, str(st))
    st, res = txn(h, None, raw=b'{"ops": [')
    check("broken JSON is 400", st == 400)
    st, _, _ = h.req("GET", "/txn")
    check("GET /txn is 405", st == 405)


def bank(port):
    accounts, start_each, clients, moves = 10, 100, 6, 40
    h = H(port)
    st, _ = txn(h, [{"op": "set", "key": "acct:%d" % i,
                     "value": str(start_each)} for i in range(accounts)])
    errors = []

    def mover(seed):
        c = H(port)
        x = seed
        for _ in range(moves):
            x = (x * 1103515245 + 12345) & 0x7fffffff
            a, b = x % accounts, (x // accounts) % accounts
            if a == b:
                continue
            for _ in range(1000):
                st, res = txn(c, [{"op": "get", "key": "acct:%d" % a},
                                  {"op": "get", "key": "acct:%d" % b}])
                va, vb = res["results"][0], res["results"][1]
                st, res = txn(c, [
                    {"op": "set", "key": "acct:%d" % a,
                     "value": str(int(va["value"]) - 1),
                     "if_match": va["etag"]},
                    {"op": "set", "key": "acct:%d" % b,
                     "value": str(int(vb["value"]) + 1),
                     "if_match": vb["etag"]}])
                if st == 200:
                    break
                if st != 412:
                    errors.append((st, res))
                    return

    ts = [threading.Thread(target=mover, args=(s + 1,)) for s in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    st, res = txn(h, [{"op": "get", "key": "acct:%d" % i}
                      for i in range(accounts)])
    total = sum(int(r["value"]) for r in res["results"])
    check("6 clients moving units between 10 accounts with /txn and "
          "if_match: the total stays %d (%d)" % (accounts * start_each, total),
          total == accounts * start_each and not errors, repr(errors[:2]))


def main():
    kvd, plugins, engine = sys.argv[1], sys.argv[2], sys.argv[3]
    k = Kvd(kvd, plugins, engine, server={"max_value_bytes": "1m"},
            http={"threads": 2},
            extra="[frontend.resp]\nunix_socket = $DIR/kvd.sock\n"
                  "threads = 1\n", prefix="kvd_http_txn.")
    print("# engine %s" % engine)
    try:
        tag = etags(k.port)
        conditional_writes(k.port, tag)
        races(k.port)
        watch_across_frontends(k.port, k.path("kvd.sock"))
        transactions(k.port)
        bank(k.port)
        check("kvd exits 0", k.stop() == 0)
    finally:
        k.close()
    return finish()


if __name__ == "__main__":
    sys.exit(main())
