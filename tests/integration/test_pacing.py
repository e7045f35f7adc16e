#!/usr/bin/env python3
"""Integration test: a flush larger than the graphite sink's queue arrives
whole when carbon keeps up, and is cut (counted) when it does not.

The graphite sink's queue (maxQueueBytes) bounds what waits for a carbon
that is down or stuck.  A flush bigger than that queue, to a carbon that
reads as fast as it can, must not be cut: the sink paces it (SY_RETRY, the
host holds the rest within retryMaxMetrics and offers it as the queue
drains).  Here the queue is 256 KiB and one flush is about 5 MB:

  1. a fast carbon (a loopback line listener) receives every one of 50,000
     counter keys sent over TCP, each exactly once with its value, and the
     sink reports no drop;
  2. a carbon that accepts and never reads: the same flush is cut at the
     queue and the drops are counted (switchyard_sink_dropped), memory
     stays near the queue bound, and SIGTERM still exits 0 in time.

Usage:  /usr/bin/python3 tests/integration/test_pacing.py     ($SY_BIN)
"""
import os
import re
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.netutil import LOOPBACK, free_port, free_port_pair, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary, to_lua  # noqa: E402
from lib.tcplisten import LineListener  # noqa: E402

TEST_NAME = "test_pacing"
KEYS = 50000
QUEUE = 256 << 10


class Daemon:
    def __init__(self, workdir, name, carbon_port):
        self.port = free_port_pair()
        self.http = free_port("tcp")
        cfg = {
            "listen": ["tcp://%s:%d" % (LOOPBACK, self.port)],
            "flushInterval": 1000,
            "ringSize": 4 << 20,  # so RSS does not grow as a large ring is first touched
            "httpAddress": "%s:%d" % (LOOPBACK, self.http),
            "shutdownTimeout": 5000,
            "sinks": {"carbon": {"plugin": "graphite", "host": LOOPBACK, "port": carbon_port,
                                 "maxQueueBytes": QUEUE}},
        }
        path = os.path.join(workdir, name + ".lua")
        with open(path, "w") as f:
            f.write("return " + to_lua(cfg) + "\n")
        self.proc = Process(name, [switchyard_binary(), "-c", path], workdir)

    def start(self):
        self.proc.start()
        return wait_for_port(self.port, 10, alive=self.proc.alive) and \
            wait_for_port(self.http, 10, alive=self.proc.alive)

    def metric(self, name):
        """A value of /metrics by its full series name, or None."""
        try:
            body = urllib.request.urlopen("http://%s:%d/metrics" % (LOOPBACK, self.http),
                                          timeout=5).read().decode()
        except OSError:
            return None
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def sanitized(self):
        """True when the daemon runs under ASan."""
        try:
            with open("/proc/%d/maps" % self.proc.pid) as f:
                return "libasan" in f.read()
        except (OSError, TypeError):
            return False

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


DROPPED = 'switchyard_sink_dropped_total{sink="carbon",plugin="graphite"}'


def fast_carbon(res, workdir):
    carbon = LineListener()
    d = Daemon(workdir, "sy-fast", carbon.port)
    try:
        if not res.check("fast carbon: switchyard starts", d.start(), d.proc.logs()):
            return
        sock = socket.create_connection((LOOPBACK, d.port))
        sock.sendall("".join("pace.k%d:1|c\n" % i for i in range(KEYS)).encode())
        sock.close()

        def counts():
            return [t for _, _, t in carbon.lines() if t.startswith("stats_counts.pace.")]
        ok = wait_until(lambda: len(counts()) >= KEYS, 30, step=0.2)
        got = {}
        for line in counts():
            name, value, _ = line.split(" ")
            if value != "0":
                got.setdefault(name, []).append(value)
        res.check("fast carbon: every one of %d keys arrived in the flush whose queue is %d KiB "
                  "(about %d MB of lines)" % (KEYS, QUEUE >> 10, KEYS * 2 * 45 // 1000000),
                  ok and len(got) == KEYS,
                  "%d keys with a non-zero count, %d count lines" % (len(got), len(counts())))
        res.check("fast carbon: each exactly once, with its value 1",
                  all(v == ["1"] for v in got.values()),
                  "%r" % [(k, v) for k, v in got.items() if v != ["1"]][:5])
        wait_until(lambda: d.metric(DROPPED) is not None, 5)
        res.check("fast carbon: the sink dropped nothing (%s)" % DROPPED, d.metric(DROPPED) == 0,
                  "dropped %r" % d.metric(DROPPED))
        rc = d.proc.stop()
        res.check("fast carbon: switchyard exits 0 on SIGTERM", rc == 0, d.proc.logs())
    finally:
        d.proc.stop()
        carbon.close()


def stuck_carbon(res, workdir):
    # Accepts and never reads: the kernel's buffers fill, then the queue.
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((LOOPBACK, 0))
    ls.listen(4)
    conns = []
    d = Daemon(workdir, "sy-stuck", ls.getsockname()[1])
    try:
        if not res.check("stuck carbon: switchyard starts", d.start(), d.proc.logs()):
            return
        ls.settimeout(5)
        try:
            c, _ = ls.accept()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conns.append(c)
        except OSError:
            pass
        rss = []
        for _ in range(8):
            sock = socket.create_connection((LOOPBACK, d.port))
            sock.sendall("".join("pace.k%d:1|c\n" % i for i in range(KEYS)).encode())
            sock.close()
            time.sleep(1.0)
            rss.append(d.rss_kb())
        ok = wait_until(lambda: (d.metric(DROPPED) or 0) > 0, 10, step=0.2)
        res.check("stuck carbon: the flush is cut at the queue and the drops counted (%s = %r)"
                  % (DROPPED, d.metric(DROPPED)), ok)
        qb = d.metric('switchyard_sink_queued_bytes{sink="carbon",plugin="graphite"}')
        res.check("stuck carbon: the queue stays within maxQueueBytes (%r bytes)" % qb,
                  qb is not None and qb <= QUEUE)
        # Each flush is ~5 MB of lines: held for a stuck carbon, they would
        # pile up flush after flush.  Once the table holds every key (and
        # the first flush was given up on, after STALL_MS), RSS stays put.
        res.note("RSS per second: %s MiB" % ", ".join("%.1f" % (r / 1024) for r in rss))
        growth = rss[-1] - rss[3]
        label = ("stuck carbon: memory does not grow flush after flush (%.1f MiB over the last "
                 "4 flushes, bound 4 MiB)" % (growth / 1024))
        if d.sanitized():
            # ASan's quarantine keeps freed blocks (up to 256 MiB): RSS
            # grows with every flush freed, held or not.
            res.skip(label, "under ASan, whose quarantine keeps freed memory")
        else:
            res.check(label, growth < 4 * 1024)
        t = time.monotonic()
        rc = d.proc.stop()
        res.check("stuck carbon: SIGTERM exits 0 within shutdownTimeout (%.1f s)"
                  % (time.monotonic() - t), rc == 0 and time.monotonic() - t < 9, d.proc.logs())
    finally:
        d.proc.stop()
        for c in conns:
            c.close()
        ls.close()


def main():
    res = Results(TEST_NAME)
    workdir = make_workdir(TEST_NAME)
    try:
        fast_carbon(res, workdir)
        stuck_carbon(res, workdir)
    finally:
        remove_workdir(workdir)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
