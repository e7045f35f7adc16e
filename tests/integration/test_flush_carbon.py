#!/usr/bin/env python3
"""Integration test: a flush of many timer keys reaches a real carbon-cache
whole (issue 24).

switchyard's graphite sink with its default settings (a 16 MiB queue)
sends one flush of KEYS timer keys, three samples each, to carbon-cache
(Debian's graphite-carbon, tests/lib/carbon.py).  Each key makes 14 lines
(percentThreshold 90: count_90, mean_90, upper_90, sum_90,
sum_squares_90, std, upper, lower, count, count_ps, sum, sum_squares,
mean, median): 2.8M lines at 200,000 keys, 14M at 1M.

Carbon cannot create millions of whisper files in a test, so its own
filters decide what is stored while every line is still sent and counted
by carbon itself:
  * the blacklist takes every line that is not one of the test's timers
    (switchyard's own statistics), counted in blacklistMatches;
  * the whitelist names a sample of SAMPLE keys: their lines are stored
    and counted in metricsReceived; every other test line is counted in
    whitelistRejects.
carbon writes those counters to whisper every CARBON_METRIC_INTERVAL (5 s,
so no two land in one 1-second slot).  The checks:
  1. metricsReceived + whitelistRejects, summed over carbon's points, is
     exactly KEYS * 14: every line of the flush arrived, once;
  2. each sampled key's count, sum, sum_squares, upper, lower and mean
     read back from whisper are exactly what its samples give;
  3. the sink dropped nothing, and SIGTERM exits 0.

Short mode (make test): 200,000 keys (20,000 under ASan).  Long mode:
SY_FLUSH_CARBON_KEYS=1000000.

Usage:  /usr/bin/python3 tests/integration/test_flush_carbon.py    ($SY_BIN)
"""
import glob
import os
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.carbon import CarbonCache  # noqa: E402
from lib.daemon import Daemon  # noqa: E402
from lib.netutil import LOOPBACK, free_port, free_port_pair  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary, to_lua  # noqa: E402

TEST_NAME = "test_flush_carbon"
KEYS = int(os.environ.get("SY_FLUSH_CARBON_KEYS", "200000"))
SAMPLE = 24
LINES_PER_KEY = 14


def sanitized_binary():
    """True when the daemon under test is built with ASan."""
    try:
        with open(switchyard_binary(), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def samples(i):
    """Key i's three samples: whole and half numbers, so every sum is exact."""
    return [i % 97, (i * 7) % 89 + 0.5, 1000 + i % 13]


def expected(i):
    v = sorted(samples(i))
    total = 0.0
    squares = 0.0
    for x in v:   # statsd adds them up in order, smallest first
        total += x
        squares += x * x
    return {"count": 3.0, "sum": total, "sum_squares": squares, "upper": v[-1],
            "lower": v[0], "mean": total / 3}


def fmt(x):
    return ("%d" % x) if x == int(x) else repr(x)


def metric(http, name):
    try:
        body = urllib.request.urlopen("http://%s:%d/metrics" % (LOOPBACK, http),
                                      timeout=5).read().decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def carbon_total(carbon, what, since):
    """The sum of carbon's own counter `what` over its whisper points."""
    total = 0.0
    base = carbon.data_dir + os.sep
    for path in glob.glob(os.path.join(carbon.data_dir, "carbon", "agents", "*", what + ".wsp")):
        name = path[len(base):-len(".wsp")].replace(os.sep, ".")
        total += sum(v for _, v in (carbon.fetch(name, since) or []))
    return total


def main():
    res = Results(TEST_NAME)
    workdir = make_workdir(TEST_NAME)
    keys = KEYS // 10 if sanitized_binary() else KEYS
    step = max(1, keys // SAMPLE)
    sampled = list(range(7, keys, step))[:SAMPLE]
    carbon = CarbonCache(
        os.path.join(workdir, "carbon"), conf_extra="CARBON_METRIC_INTERVAL = 5\n",
        whitelist=[r"^stats\.timers\.cf\.k(%s)\." % "|".join(str(i) for i in sampled)],
        blacklist=[r"^(?!stats\.timers\.cf\.)"])
    port, http = free_port_pair(), free_port("tcp")
    # A flush must be delivered before two newer ones are due, or the
    # oldest is dropped whole: carbon reads several hundred thousand lines a
    # second here, so the interval grows with the flush.
    interval = max(5000, keys * LINES_PER_KEY // 400)
    cfg = {
        "listen": ["tcp://%s:%d" % (LOOPBACK, port)],
        "flushInterval": interval,
        "deleteTimers": True,
        "httpAddress": "%s:%d" % (LOOPBACK, http),
        "shutdownTimeout": 10000,
        "sinks": {"carbon": {"plugin": "graphite", "host": LOOPBACK, "port": carbon.line_port}},
    }
    d = Daemon("sy-flush-carbon", workdir)
    since = int(time.time())
    try:
        if not res.check("carbon-cache starts", carbon.start(), carbon.logs()):
            return res.finish()
        if not res.check("switchyard starts", d.start("return " + to_lua(cfg) + "\n", port),
                         d.logs()):
            return res.finish()
        sock = socket.create_connection((LOOPBACK, port))
        chunk = []
        for i in range(keys):
            chunk.append("cf.k%d:%s|ms\n" % (i, ":".join(fmt(x) for x in samples(i))))
            if len(chunk) == 10000:
                sock.sendall("".join(chunk).encode())
                chunk = []
        sock.sendall("".join(chunk).encode())
        sock.close()
        want = keys * LINES_PER_KEY

        def arrived():
            return (carbon_total(carbon, "metricsReceived", since) +
                    carbon_total(carbon, "whitelistRejects", since))
        wait_until(lambda: arrived() >= want, 60 + interval * 3 / 1000, step=2)
        time.sleep(6)   # one more of carbon's intervals: nothing more may come
        got = arrived()
        stored = carbon_total(carbon, "metricsReceived", since)
        res.check("carbon received every line of a flush of %d timer keys exactly once "
                  "(%d lines; its metricsReceived + whitelistRejects)" % (keys, want),
                  got == want, "carbon counted %d lines" % got)
        res.check("carbon stored the %d sampled keys' lines (metricsReceived %d)"
                  % (len(sampled), len(sampled) * LINES_PER_KEY),
                  stored == len(sampled) * LINES_PER_KEY, "metricsReceived %d" % stored)
        bad = []
        for i in sampled:
            for stat, value in expected(i).items():
                pts = carbon.fetch("stats.timers.cf.k%d.%s" % (i, stat), since) or []
                if [v for _, v in pts] != [value]:
                    bad.append(("k%d.%s" % (i, stat), value, pts))
        res.check("each sampled key's count, sum, sum_squares, upper, lower and mean read "
                  "back from whisper are exact", not bad, repr(bad[:5]))
        dropped = metric(http, 'switchyard_sink_dropped_total{sink="carbon",plugin="graphite"}')
        res.check("the sink dropped nothing (switchyard_sink_dropped_total = %r)" % dropped,
                  dropped == 0)
        t = time.monotonic()
        rc = d.stop()
        res.check("SIGTERM exits 0 (%.1f s)" % (time.monotonic() - t), rc == 0, d.logs())
        d.check_sanitizer(res, "no sanitizer report")
    finally:
        d.stop()
        carbon.stop()
        remove_workdir(workdir)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
