#!/usr/bin/env python3
"""e2e.http_metrics.<engine>: /metrics as a Prometheus server reads it.

One kvd with the http frontend (a kernel-assigned port) and the resp
frontend on a Unix socket, on the given engine. The exposition is parsed
with the Prometheus client's own text parser
(prometheus_client.parser.text_string_to_metric_families, Debian's
python3-prometheus-client) and checked against the naming conventions:

  - every family has one HELP and one TYPE line, printed once, and a type
    (counter, gauge or histogram: nothing untyped);
  - counters end in _total, nothing else does; no family is named in
    milliseconds or microseconds (_ms, _us, _ns): times are _seconds;
  - kvd_build_info{version="<kvd --version>"} 1;
  - process_cpu_seconds_total, process_resident_memory_bytes,
    process_virtual_memory_bytes, process_open_fds, process_max_fds and
    process_start_time_seconds with plausible values;
  - kvd_connected_clients{frontend="resp"} counts an open RESP connection
    and drops back when it closes (polled, 10 s at most);
  - kvd_commands_total is there and kvd_commands_processed_total is not
    (the overlapping family was dropped);
  - the engine's stats are typed families kvd_engine_*: the engine's known
    cumulative stats are counters named *_total (times in
    *_seconds_total), and no gauge is named like a counter (puts, fsyncs,
    commits, ...: a cumulative stat named without _total).

usage: http_metrics_test.py KVD_BIN PLUGIN_DIR ENGINE
KVD_ENGINE_OPTS: engine options as key=value;key=value (the redis
engine's server address).
"""
import http.client
import os
import re
import socket
import subprocess
import sys
import time

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_harness import Kvd, check, finish  # noqa: E402

PROCESS = ["process_cpu_seconds_total", "process_resident_memory_bytes",
           "process_virtual_memory_bytes", "process_open_fds",
           "process_max_fds", "process_start_time_seconds"]


def scrape(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, body


def families(text):
    """{name: family} as the parser gives them, and the names in order."""
    fams = list(text_string_to_metric_families(text))
    return {f.name: f for f in fams}, [f.name for f in fams]


def sample(fams, family, labels=None, name=None):
    f = fams.get(family)
    if f is None:
        return None
    for s in f.samples:
        if (name is None or s.name == name) and \
                (labels is None or s.labels == labels):
            return s.value
    return None


def resp_client(path):
    """A RESP connection that has run one command (its session is open)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
    got = b""
    while not got.endswith(b"\r\n"):
        chunk = s.recv(64)
        if not chunk:
            break
        got += chunk
    check("the RESP client got PONG", got == b"+PONG\r\n", repr(got))
    return s


def conventions(text, fams, names):
    """HELP/TYPE once per family, types, suffixes, units."""
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    helps = re.findall(r"^# HELP (\S+) (.*)$", text, re.M)
    tnames = [n for n, _ in types]
    check("every family is printed once (%d families)" % len(names),
          len(names) == len(set(names)) and len(tnames) == len(set(tnames)),
          sorted({n for n in tnames if tnames.count(n) > 1}))
    check("every TYPE has a HELP with text",
          sorted(tnames) == sorted(n for n, _ in helps) and
          all(h.strip() for _, h in helps))
    bad = [(n, t) for n, t in types
           if t not in ("counter", "gauge", "histogram")]
    check("every family is a counter, gauge or histogram", not bad, bad)
    bad = [n for n, t in types if (t == "counter") != n.endswith("_total")]
    check("counters and only counters end in _total", not bad, bad)
    bad = [n for n in tnames if re.search(r"_(ms|us|ns)(_|$)", n)]
    check("no family is named in ms, us or ns", not bad, bad)
    for name, f in fams.items():
        check("%s has HELP and a type (parsed)" % name,
              f.documentation and f.type in ("counter", "gauge", "histogram"),
              "%r %r" % (f.documentation, f.type))


# Counters each engine must export (after the tests' writes and reads).
ENGINE_COUNTERS = {
    "memory": ["rehashes_started_total", "expired_reclaimed_forced_total",
               "snapshots_written_total"],
    "log": ["puts_total", "fsyncs_total", "merges_total", "rolls_total",
            "get_map_reads_total", "merge_throttle_seconds_total"],
    "lsm": ["puts_total", "gets_total", "fsyncs_total", "flushes_total",
            "compactions_total", "wal_bytes_total", "stall_seconds_total"],
    "btree": ["commits_total", "flushes_total", "syncs_total",
              "pages_written_total", "compactions_total"],
    "redis": ["connects_total", "retries_total", "timeouts_total",
              "pipeline_writes_total", "pipeline_requests_total",
              "moved_redirects_total"],
}

# A word that makes a stat cumulative: a gauge named with one of them is a
# counter that lost its _total (docs/writing-an-engine.md, "Naming stats").
COUNTER_WORDS = {
    "puts", "dels", "gets", "batches", "fsyncs", "syncs", "commits",
    "flushes", "compactions", "merges", "rolls", "retries", "connects",
    "timeouts", "redirects", "refreshes", "errors", "reads", "writes",
    "hits", "misses", "evictions", "opens", "started", "written",
    "reclaimed", "scans", "appends", "calls", "waits", "moves", "checks",
    "negatives", "positives", "slowdowns", "stops", "requests", "throttle",
    "shadowed", "tombstones", "sampler", "forced", "preads", "dropped",
    "corrupt", "ops", "short", "flush", "compact",
}


def engine_counters(engine, fams):
    """Known counters are counters; no gauge is named like a counter."""
    for stat in ENGINE_COUNTERS.get(engine, []):
        family = "kvd_engine_" + stat[:-len("_total")]
        f = fams.get(family)
        check("%s: kvd_engine_%s is a counter" % (engine, stat),
              f is not None and f.type == "counter" and
              any(s.name == "kvd_engine_" + stat for s in f.samples),
              (f.type, [s.name for s in f.samples]) if f else "missing")
    bad = [n for n, f in fams.items()
           if n.startswith("kvd_engine_") and f.type == "gauge" and
           COUNTER_WORDS & set(n[len("kvd_engine_"):].split("_"))]
    check("%s: no engine gauge is named like a counter" % engine, not bad,
          bad)


def build_and_process(kvd, fams):
    out = subprocess.run([kvd, "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    m = re.match(r"kvd (\S+)", out)
    version = m.group(1) if m else "?"
    f = fams.get("kvd_build_info")
    check("kvd_build_info is a gauge", f is not None and f.type == "gauge")
    check("kvd_build_info{version=\"%s\"} 1" % version,
          sample(fams, "kvd_build_info", {"version": version}) == 1,
          f.samples if f else None)
    for name in PROCESS:
        family = name[:-len("_total")] if name.endswith("_total") else name
        check("%s is there" % name,
              sample(fams, family, name=name) is not None)
    v = {n: sample(fams, n[:-6] if n.endswith("_total") else n, name=n)
         for n in PROCESS}
    if None in v.values():
        return
    check("process_cpu_seconds_total >= 0", v[PROCESS[0]] >= 0)
    check("resident memory is > 0 and <= virtual memory",
          0 < v["process_resident_memory_bytes"] <=
          v["process_virtual_memory_bytes"])
    check("0 < open fds <= max fds",
          0 < v["process_open_fds"] <= v["process_max_fds"])
    now = time.time()
    check("the start time is within the last hour",
          now - 3600 < v["process_start_time_seconds"] <= now + 5,
          "%f vs %f" % (v["process_start_time_seconds"], now))


def clients_counted(k):
    def resp_clients():
        status, text = scrape(k.port)
        fams, _ = families(text)
        return sample(fams, "kvd_connected_clients", {"frontend": "resp"})

    c = resp_client(k.path("kvd.sock"))
    check("kvd_connected_clients{frontend=\"resp\"} is 1 with a client open",
          resp_clients() == 1)
    c.close()
    deadline = time.time() + 10
    n = resp_clients()
    while n != 0 and time.time() < deadline:
        time.sleep(0.05)
        n = resp_clients()
    check("... and 0 once it closed", n == 0, n)
    fams, _ = families(scrape(k.port)[1])
    check("kvd_connected_clients is a gauge",
          fams["kvd_connected_clients"].type == "gauge")
    check("kvd_connected_clients{frontend=\"http\"} counts this scrape",
          sample(fams, "kvd_connected_clients", {"frontend": "http"}) >= 1)


def main():
    kvd, plugins, engine = sys.argv[1], sys.argv[2], sys.argv[3]
    opts = dict(kv.split("=", 1) for kv in
                filter(None, os.environ.get("KVD_ENGINE_OPTS", "").split(";")))
    if engine == "redis":  # keys of their own on a shared server
        opts.setdefault("key_prefix", "http_metrics.%d/" % os.getpid())
    k = Kvd(kvd, plugins, engine, http={"threads": 2}, engine_opts=opts,
            extra="[frontend.resp]\nunix_socket = $DIR/kvd.sock\n"
                  "threads = 1\n", prefix="kvd_http_metrics.")
    print("# engine %s" % engine)
    try:
        c = http.client.HTTPConnection("127.0.0.1", k.port, timeout=30)
        for i in range(20):
            c.request("PUT", "/kv/k%d" % i, body=b"v" * 100)
            c.getresponse().read()
        c.request("GET", "/kv/k1")
        c.getresponse().read()
        c.close()
        resp_client(k.path("kvd.sock")).close()

        status, text = scrape(k.port)
        check("/metrics is 200", status == 200, status)
        try:
            fams, names = families(text)
        except Exception as e:  # the parser refuses the exposition
            check("the Prometheus parser reads /metrics", False, repr(e))
            return
        check("the Prometheus parser reads /metrics", True)
        conventions(text, fams, names)
        build_and_process(kvd, fams)
        check("kvd_commands_total is a counter with the RESP PING",
              sample(fams, "kvd_commands", {"frontend": "resp",
                                            "cmd": "ping"}) == 1)
        check("kvd_commands_processed_total is gone",
              "kvd_commands_processed" not in fams and
              "kvd_commands_processed_total" not in text)
        eng = [n for n in names if n.startswith("kvd_engine_") and
               n != "kvd_engine_memory"]
        check("the engine's stats are families of their own (%d)" % len(eng),
              eng or engine == "memory", names)
        engine_counters(engine, fams)
        if engine == "log":
            f = fams.get("kvd_engine_recovery_seconds")
            check("log: recovery_ms is kvd_engine_recovery_seconds, a gauge",
                  f is not None and f.type == "gauge")
        clients_counted(k)
        check("kvd exits 0 on SIGTERM", k.stop() == 0)
    finally:
        k.close()


if __name__ == "__main__":
    main()
    sys.exit(finish())
