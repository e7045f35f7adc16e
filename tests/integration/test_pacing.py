#!/usr/bin/env python3
"""Integration test: a flush larger than a sink's queue arrives whole when
the destination keeps up, and is cut (counted) when it does not.

Each network sink bounds what waits for a destination that is down or stuck
(graphite and repeater maxQueueBytes, redis maxQueueMetrics).  A flush bigger
than that queue, to a destination that reads as fast as it can, must not be
cut: the sink paces it (SY_RETRY; the host holds the rest within
retryMaxMetrics and offers it again as the queue drains).  Cases:

  1. fast_carbon: a loopback line listener receives every one of 50,000
     counter keys (about 5 MB through a 256 KiB queue), each exactly once
     with its value, and the sink reports no drop;
  2. stuck_carbon: a carbon that accepts and never reads: the same flush is
     cut at the queue, the drops are counted (switchyard_sink_dropped),
     memory stays near the queue bound, and SIGTERM still exits 0 in time;
  3. repeater_flushed: a repeater forwarding flushed aggregates over TCP to
     a second switchyard, through a 256 KiB queue: every key arrives once;
  4. repeater_passthrough: 200,000 raw lines passed through a repeater with
     a 256 KiB queue all arrive (the host hands raw batches in chunks so a
     paced sink can hold the rest back);
  5. redis_fast: a real redis-server behind a 5,000-metric queue receives
     one point for each of 20,000 counter keys, no drop;
  6. redis_stopped: redis-server stopped with SIGSTOP: drops are counted,
     the queue stays within its bound, and SIGTERM exits 0.

Usage:  /usr/bin/python3 tests/integration/test_pacing.py     ($SY_BIN)
"""
import os
import re
import signal
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.netutil import LOOPBACK, free_port, free_port_pair, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.resp import RedisServer, query  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.sumsink import SumSink  # noqa: E402
from lib.switchyard import switchyard_binary, to_lua  # noqa: E402
from lib.tcplisten import LineListener  # noqa: E402

TEST_NAME = "test_pacing"
KEYS = 50000
QUEUE = 256 << 10


class Daemon:
    """One switchyard listening on TCP with the given sinks and, optionally,
    routes (Lua source: rules are Lua values)."""

    def __init__(self, workdir, name, sinks, routes=None):
        self.port = free_port_pair()
        self.http = free_port("tcp")
        cfg = {
            "listen": ["tcp://%s:%d" % (LOOPBACK, self.port)],
            "flushInterval": 1000,
            "ringSize": 4 << 20,  # so RSS does not grow as a large ring is first touched
            "httpAddress": "%s:%d" % (LOOPBACK, self.http),
            "shutdownTimeout": 5000,
            "sinks": sinks,
        }
        text = 'local route = require "switchyard.route"\n'
        text += "local cfg = " + to_lua(cfg) + "\n"
        if routes:
            text += "cfg.routes = " + routes + "\n"
        path = os.path.join(workdir, name + ".lua")
        with open(path, "w") as f:
            f.write(text + "return cfg\n")
        self.proc = Process(name, [switchyard_binary(), "-c", path], workdir)

    def start(self):
        self.proc.start()
        return wait_for_port(self.port, 10, alive=self.proc.alive) and \
            wait_for_port(self.http, 10, alive=self.proc.alive)

    def send(self, lines):
        sock = socket.create_connection((LOOPBACK, self.port))
        sock.sendall("".join(line + "\n" for line in lines).encode())
        sock.close()

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


def stat(d, name, sink, plugin):
    return d.metric('switchyard_sink_%s{sink="%s",plugin="%s"}' % (name, sink, plugin))


def carbon_sinks(port):
    return {"carbon": {"plugin": "graphite", "host": LOOPBACK, "port": port,
                       "maxQueueBytes": QUEUE}}


def counters(n, prefix="pace.k"):
    return ["%s%d:1|c" % (prefix, i) for i in range(n)]


def once_each(res, label, got, want_names, value):
    """got: name -> values seen (zeros left out)."""
    missing = [n for n in want_names if n not in got]
    res.check("%s: every one of %d arrived" % (label, len(want_names)), not missing,
              "%d missing, e.g. %r" % (len(missing), missing[:5]))
    bad = [(k, v) for k, v in got.items() if v != [value]]
    res.check("%s: each exactly once, with its value %s" % (label, value), not bad, repr(bad[:5]))


def no_drop(res, label, d, sink, plugin):
    wait_until(lambda: stat(d, "dropped_total", sink, plugin) is not None, 5)
    dropped = stat(d, "dropped_total", sink, plugin)
    res.check("%s: the sink dropped nothing (switchyard_sink_dropped_total = %r)"
              % (label, dropped), dropped == 0)


def stop_ok(res, label, d, bound=9):
    t = time.monotonic()
    rc = d.proc.stop()
    took = time.monotonic() - t
    res.check("%s: SIGTERM exits 0 within shutdownTimeout (%.1f s)" % (label, took),
              rc == 0 and took < bound, d.proc.logs())


def fast_carbon(res, workdir):
    carbon = LineListener()
    d = Daemon(workdir, "sy-fast", carbon_sinks(carbon.port))
    try:
        if not res.check("fast carbon: switchyard starts", d.start(), d.proc.logs()):
            return
        d.send(counters(KEYS))

        def counts():
            return [t for _, _, t in carbon.lines() if t.startswith("stats_counts.pace.")]
        wait_until(lambda: len(counts()) >= KEYS, 30, step=0.2)
        got = {}
        for line in counts():
            name, value, _ = line.split(" ")
            if value != "0":
                got.setdefault(name, []).append(value)
        once_each(res, "fast carbon: a flush of about %d MB, the queue %d KiB"
                  % (KEYS * 2 * 45 // 1000000, QUEUE >> 10), got,
                  ["stats_counts.pace.k%d" % i for i in range(KEYS)], "1")
        no_drop(res, "fast carbon", d, "carbon", "graphite")
        stop_ok(res, "fast carbon", d)
    finally:
        d.proc.stop()
        carbon.close()


TIMERS = 50000


def timer_flush(res, workdir):
    """A flush of TIMERS timer keys, one sample each, is about 16 lines a
    key (800,000 lines): far more than the queue (256 KiB) and the host's
    retry list (retryMaxMetrics 20,000) hold.  A carbon that reads as fast
    as it can (tests/bench/sumsink) gets every timer's count, and the sink
    drops nothing: the output makes each piece of the flush when the sink
    took the last one (issue 24)."""
    label = "timer flush"
    sink = SumSink(workdir)
    sinks = carbon_sinks(sink.port)
    sinks["carbon"]["retryMaxMetrics"] = 20000
    d = Daemon(workdir, "sy-timers", sinks)
    try:
        if not res.check("%s: switchyard starts" % label, sink.port and d.start(), d.proc.logs()):
            return
        d.send(["pt.k%d:%d|ms" % (i, i % 1000) for i in range(TIMERS)])
        wait_until(lambda: sink.total("pt", "timers") >= TIMERS, 60, step=0.5)
        got = sink.total("pt", "timers")
        res.check("%s: every one of %d timer counts reached carbon (%d lines a flush, retry "
                  "list 20,000, queue %d KiB)" % (label, TIMERS, TIMERS * 16, QUEUE >> 10),
                  got == TIMERS, "the timers' counts add up to %d" % got)
        no_drop(res, label, d, "carbon", "graphite")
        stop_ok(res, label, d)
    finally:
        d.proc.stop()
        sink.stop()


STUCK_KEYS = int(os.environ.get("SY_PACING_STUCK_KEYS", "40000"))
STUCK_ROUNDS = 8
STUCK_SINKS = int(os.environ.get("SY_PACING_STUCK_SINKS", "3"))


def stuck_and_fast(res, workdir):
    """A fast sink (tests/bench/sumsink) beside STUCK_SINKS carbons that
    accept and never read.  Each second a flush of STUCK_KEYS timer keys
    (14 lines each: 560,000 lines a flush at 40,000 keys; 57,143 keys are
    the 800,000 of the issue's report, which passes here too), STUCK_ROUNDS
    times.  The fast one gets every flush whole while the stuck ones hold
    their queues full: each sink keeps its own place in the flush, and once
    a stuck sink drops what it is given the output stops making its lines
    (the rest of each flush is counted as dropped, not made), so the stuck
    ones cost the fast one nothing (issue 24).  Before, the output made
    every stuck sink's lines too, and looked at a sink that held a piece
    back every 5 ms (now 1 ms): the fast sink fell two flushes behind and
    lost the oldest whole (314,668 of 320,000 timer counts at 40,000
    keys)."""
    label = "stuck and fast"
    listeners = []
    for _ in range(STUCK_SINKS):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((LOOPBACK, 0))
        ls.listen(4)
        listeners.append(ls)
    sink = SumSink(workdir)
    sinks = {"fast": {"plugin": "graphite", "host": LOOPBACK, "port": sink.port,
                      "maxQueueBytes": QUEUE}}
    for i, ls in enumerate(listeners):
        sinks["stuck%d" % i] = {"plugin": "graphite", "host": LOOPBACK,
                                "port": ls.getsockname()[1], "maxQueueBytes": QUEUE}
    d = Daemon(workdir, "sy-two", sinks)
    conns = []
    try:
        if not res.check("%s: switchyard starts" % label, sink.port and d.start(), d.proc.logs()):
            return
        for ls in listeners:
            ls.settimeout(5)
            try:
                c, _ = ls.accept()
                c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                conns.append(c)
            except OSError:
                pass
        keys = STUCK_KEYS
        if d.sanitized():
            keys //= 10   # ASan makes each line about ten times as costly
        rounds = STUCK_ROUNDS
        batches = [["tf.k%d:%d|ms" % (i, r) for i in range(keys)] for r in range(rounds)]
        start = time.monotonic()
        for r in range(rounds):
            d.send(batches[r])
            # one flush a round: sleep to the next second of the run
            time.sleep(max(0.0, start + (r + 1) * 1.0 - time.monotonic()))
        want = keys * rounds
        wait_until(lambda: sink.total("tf", "timers") >= want, 60, step=0.5)
        got = sink.total("tf", "timers")
        res.check("%s: the fast sink got every timer count of %d flushes of %d timer keys "
                  "(%d lines a flush), while %d others never read"
                  % (label, rounds, keys, keys * 14, STUCK_SINKS), got == want,
                  "the fast sink's timer counts add up to %d of %d" % (got, want))
        fast_drop = stat(d, "dropped_total", "fast", "graphite")
        stuck_drop = [stat(d, "dropped_total", "stuck%d" % i, "graphite")
                      for i in range(STUCK_SINKS)]
        res.check("%s: the fast sink dropped nothing; the stuck ones' drops are counted (%r)"
                  % (label, stuck_drop),
                  fast_drop == 0 and all((x or 0) > 0 for x in stuck_drop),
                  "fast %r, stuck %r" % (fast_drop, stuck_drop))
        logs = d.proc.logs(1 << 22)
        res.check("%s: the output stopped making each stuck sink's lines (logged: the rest of "
                  "the flush is not made)" % label,
                  all(re.search(r"sink 'stuck%d': \d+ dropped: the sink is down or stuck and "
                                r"dropped what it was given: the rest of the flush is not made"
                                % i, logs) for i in range(STUCK_SINKS)), logs[-2000:])
        stop_ok(res, label, d)
    finally:
        d.proc.stop()
        sink.stop()
        for c in conns:
            c.close()
        for ls in listeners:
            ls.close()


def stuck_carbon(res, workdir):
    # Accepts and never reads: the kernel's buffers fill, then the queue.
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((LOOPBACK, 0))
    ls.listen(4)
    conns = []
    d = Daemon(workdir, "sy-stuck", carbon_sinks(ls.getsockname()[1]))
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
            d.send(counters(KEYS))
            time.sleep(1.0)
            rss.append(d.rss_kb())
        ok = wait_until(lambda: (stat(d, "dropped_total", "carbon", "graphite") or 0) > 0, 10,
                        step=0.2)
        res.check("stuck carbon: the flush is cut at the queue and the drops counted "
                  "(switchyard_sink_dropped_total = %r)"
                  % stat(d, "dropped_total", "carbon", "graphite"), ok)
        qb = stat(d, "queued_bytes", "carbon", "graphite")
        res.check("stuck carbon: the queue stays within maxQueueBytes (%r bytes)" % qb,
                  qb is not None and qb <= QUEUE)
        # Each flush is ~5 MB of lines: held for a stuck carbon, they would
        # pile up flush after flush.  Once the table holds every key (and
        # the first flush was given up on, after PACE_STALL_MS), RSS stays.
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
        stop_ok(res, "stuck carbon", d)
    finally:
        d.proc.stop()
        for c in conns:
            c.close()
        ls.close()


def repeater_sinks(port):
    return {"fwd": {"plugin": "repeater", "host": LOOPBACK, "port": port, "protocol": "tcp",
                    "maxQueueBytes": QUEUE, "flushed": "all"}}


def repeater_flushed(res, workdir):
    """flushed = "all": a flush of 50,000 counters, ~2.6 MB of gauge lines,
    through a 256 KiB queue to a next hop that keeps up."""
    hop = LineListener()
    d = Daemon(workdir, "sy-rflush", repeater_sinks(hop.port))
    try:
        if not res.check("repeater flush: switchyard starts", d.start(), d.proc.logs()):
            return
        d.send(counters(KEYS))

        def counts():
            return [t for _, _, t in hop.lines() if t.startswith("stats_counts.pace.")]
        wait_until(lambda: len(counts()) >= KEYS, 30, step=0.2)
        got = {}
        for line in counts():
            name, _, rest = line.partition(":")
            if rest != "0|g":
                got.setdefault(name, []).append(rest)
        once_each(res, "repeater flush: the queue %d KiB" % (QUEUE >> 10), got,
                  ["stats_counts.pace.k%d" % i for i in range(KEYS)], "1|g")
        no_drop(res, "repeater flush", d, "fwd", "repeater")
        stop_ok(res, "repeater flush", d)
    finally:
        d.proc.stop()
        hop.close()


RAW = 200000


def repeater_passthrough(res, workdir):
    """Raw samples passed through: a burst of 200,000 lines (~3.6 MB) in
    one TCP connection, through a 256 KiB queue."""
    hop = LineListener()
    d = Daemon(workdir, "sy-rraw", repeater_sinks(hop.port),
               routes='{ route.prefix "raw." :passthrough "fwd" }')
    try:
        if not res.check("repeater passthrough: switchyard starts", d.start(), d.proc.logs()):
            return
        want = counters(RAW, "raw.k")
        d.send(want)

        def raw():
            return [t for _, _, t in hop.lines() if t.startswith("raw.")]
        wait_until(lambda: len(raw()) >= RAW, 60, step=0.2)
        got = {}
        for line in raw():
            name, _, rest = line.partition(":")
            got.setdefault(name, []).append(rest)
        once_each(res, "repeater passthrough: a burst of %d samples, the queue %d KiB"
                  % (RAW, QUEUE >> 10), got, [w.partition(":")[0] for w in want], "1|c")
        no_drop(res, "repeater passthrough", d, "fwd", "repeater")
        stop_ok(res, "repeater passthrough", d)
    finally:
        d.proc.stop()
        hop.close()


REDIS_QUEUE = 5000
REDIS_KEYS = 20000


def redis_sinks(port):
    return {"redis": {"plugin": "redis", "host": LOOPBACK, "port": port, "prefix": "p:",
                      "maxQueueMetrics": REDIS_QUEUE, "maxPending": 1000}}


def redis_fast(res, workdir):
    """A flush of 20,000 counters (40,000 metrics) to a Redis that answers,
    through a queue of 5,000 metrics."""
    redis = RedisServer(workdir, "redis-fast")
    d = None
    try:
        if not res.check("fast redis: redis-server starts", redis.start(), redis.logs()):
            return
        d = Daemon(workdir, "sy-redis", redis_sinks(redis.port))
        if not res.check("fast redis: switchyard starts", d.start(), d.proc.logs()):
            return
        d.send(counters(REDIS_KEYS))
        names = ["stats_counts.pace.k%d" % i for i in range(REDIS_KEYS)]
        wait_until(lambda: (query(redis.port, "HLEN", "p:latest") or 0) >= 2 * REDIS_KEYS, 30,
                   step=0.3)
        time.sleep(0.5)
        c = redis.client()
        try:
            series = c.pipeline([("ZRANGE", "p:ts:" + n, 0, -1) for n in names])
        finally:
            c.close()
        # each series: one point a flush, "TS:1" from the first, "TS:0" after
        ones = {n: [m for m in pts if m.endswith(":1")] for n, pts in zip(names, series)
                if isinstance(pts, list)}
        missing = [n for n in names if not ones.get(n)]
        res.check("fast redis: every one of %d counters is in Redis (queue %d metrics, the "
                  "flush %d)" % (REDIS_KEYS, REDIS_QUEUE, 2 * REDIS_KEYS), not missing,
                  "%d missing, e.g. %r" % (len(missing), missing[:5]))
        twice = [(n, v) for n, v in ones.items() if len(v) > 1]
        res.check("fast redis: each counted once, in one flush", not twice, repr(twice[:5]))
        no_drop(res, "fast redis", d, "redis", "redis")
        stop_ok(res, "fast redis", d)
    finally:
        if d:
            d.proc.stop()
        redis.stop()


def redis_stopped(res, workdir):
    """A Redis that stopped answering (SIGSTOP): nothing waits for it; what
    its queue cannot take is dropped and counted, and SIGTERM still exits
    in time."""
    redis = RedisServer(workdir, "redis-stopped")
    d = None
    try:
        if not res.check("stopped redis: redis-server starts", redis.start(), redis.logs()):
            return
        d = Daemon(workdir, "sy-redis-stopped", redis_sinks(redis.port))
        if not res.check("stopped redis: switchyard starts", d.start(), d.proc.logs()):
            return
        wait_until(lambda: stat(d, "connected", "redis", "redis") == 1, 10)
        redis.signal(signal.SIGSTOP)
        for _ in range(6):
            d.send(counters(REDIS_KEYS))
            time.sleep(1.0)
        ok = wait_until(lambda: (stat(d, "dropped_total", "redis", "redis") or 0) > 0, 10,
                        step=0.2)
        res.check("stopped redis: what the queue cannot take is dropped and counted "
                  "(switchyard_sink_dropped_total = %r)" % stat(d, "dropped_total", "redis",
                                                                "redis"), ok)
        q = stat(d, "queued", "redis", "redis")
        res.check("stopped redis: the queue stays within maxQueueMetrics + maxPending (%r)" % q,
                  q is not None and q <= REDIS_QUEUE + 1000)
        stop_ok(res, "stopped redis", d)
    finally:
        if d:
            d.proc.stop()
        redis.stop()


def main():
    res = Results(TEST_NAME)
    workdir = make_workdir(TEST_NAME)
    try:
        fast_carbon(res, workdir)
        timer_flush(res, workdir)
        stuck_and_fast(res, workdir)
        stuck_carbon(res, workdir)
        repeater_flushed(res, workdir)
        repeater_passthrough(res, workdir)
        redis_fast(res, workdir)
        redis_stopped(res, workdir)
    finally:
        remove_workdir(workdir)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
