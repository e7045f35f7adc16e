#!/usr/bin/env python3
"""Integration test: switchyard's graphite sink writing to a real carbon-cache.

Starts Debian's carbon-cache on loopback with a temporary storage dir, then
  1. checks the carbon harness itself: a plaintext line sent by hand is
     read back from its whisper file (so a failure later is switchyard's);
  2. runs switchyard with its graphite sink pointed at carbon, sends a
     gauge, a counter, a timer and a set in one flush and new values in a
     later flush (over switchyard's one persistent connection), and reads
     the values back with whisper-fetch: gauge 42 then 43, counter rate 10
     then 20 over 1 s flushes, the timer's statistics, the set's size.

deleteIdleStats is on, so each metric has a point only in the flushes that
received data and the expected series are exact.

Usage:
  /usr/bin/python3 tests/integration/test_carbon.py                  $SY_BIN
  /usr/bin/python3 tests/integration/test_carbon.py --against statsd  the
      reference statsd instead (validates this test without switchyard)
"""
import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.carbon import CarbonCache  # noqa: E402
from lib.netutil import LOOPBACK, send_udp, sleep_until_phase  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.statsd import StatsdServer  # noqa: E402
from lib.switchyard import SwitchyardServer, switchyard_binary  # noqa: E402

TEST_NAME = "test_carbon"

OPTIONS = {
    "flushInterval": 1000,
    "percentThreshold": [90],
    "deleteIdleStats": True,
    "flush_counts": True,
    "prefixStats": "statsd",
    "graphite": {"legacyNamespace": False, "globalPrefix": "stats"},
}

# Two flushes' worth of traffic, each sent as one datagram so it cannot be
# split across flushes.
ROUND_1 = b"\n".join([b"it.gauge:42|g", b"it.counter:10|c", b"it.timer:10|ms",
                      b"it.timer:20|ms", b"it.timer:30|ms", b"it.set:a|s", b"it.set:b|s"])
ROUND_2 = b"\n".join([b"it.gauge:43|g", b"it.counter:20|c"])

# metric -> the values expected in whisper, oldest first
EXPECTED = {
    "stats.gauges.it.gauge": [42.0, 43.0],
    "stats.counters.it.counter.rate": [10.0, 20.0],
    "stats.counters.it.counter.count": [10.0, 20.0],
    "stats.timers.it.timer.upper": [30.0],
    "stats.timers.it.timer.lower": [10.0],
    "stats.timers.it.timer.mean": [20.0],
    "stats.timers.it.timer.median": [20.0],
    "stats.timers.it.timer.sum": [60.0],
    "stats.timers.it.timer.count": [3.0],
    "stats.timers.it.timer.upper_90": [30.0],
    "stats.sets.it.set.count": [2.0],
}


def send_plaintext(port, text):
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(text.encode())


def read_back(carbon, metric, since, want_points, timeout):
    """Poll whisper until `metric` has at least want_points points (carbon
    writes asynchronously); returns the values, oldest first (fewer when it
    timed out), or None when the whisper file never appeared."""
    def points():
        pts = carbon.fetch(metric, since)
        return pts if pts and len(pts) >= want_points else None
    pts = wait_until(points, timeout, step=0.2) or carbon.fetch(metric, since)
    return None if pts is None else [v for _, v in pts]


def check_carbon_alone(results, carbon):
    """The harness: a line sent by hand reaches a whisper file intact."""
    now = int(time.time())
    send_plaintext(carbon.line_port, "harness.selftest.metric 42 %d\n" % now)
    got = read_back(carbon, "harness.selftest.metric", now, 1, 15)
    return results.check("carbon-cache stores a plaintext line (42 reads back 42)",
                         got == [42.0], "read back %r\n%s" % (got, carbon.logs()))


def make_daemon(against, carbon, workdir):
    if against == "statsd":
        return StatsdServer("carbon-statsd", OPTIONS, carbon.line_port, workdir)
    return SwitchyardServer("carbon-switchyard", OPTIONS, carbon.line_port, workdir)


def check_daemon(results, carbon, against, workdir):
    """The daemon's flushes land in carbon with the expected values."""
    daemon = make_daemon(against, carbon, workdir)
    label = daemon.kind
    try:
        if not results.check("%s starts" % label, daemon.start(),
                             (getattr(daemon, "start_error", None) or "") + "\n" + daemon.logs()):
            return
        # Both daemons flush on whole seconds with 1 s intervals: send well
        # inside a second, and the second round two seconds later.
        sleep_until_phase(1.0, 0.3)
        since = int(time.time()) - 1
        send_udp(daemon.udp_port, [ROUND_1])
        time.sleep(2.0)
        send_udp(daemon.udp_port, [ROUND_2])
        for metric, want in EXPECTED.items():
            got = read_back(carbon, metric, since, len(want), 15)
            results.check("%s -> carbon: %s reads back %s" % (label, metric, want), got == want,
                          "read back %r (file %s)" % (got, carbon.wsp_path(metric)))
        own = read_back(carbon, "stats.counters.statsd.metrics_received.count", since, 1, 5)
        results.check("%s -> carbon: its own statsd.metrics_received is stored" % label,
                      bool(own) and sum(own) >= 9, "read back %r" % (own,))
        if results.failed:
            print(daemon.logs())
            print(carbon.logs())
    finally:
        daemon.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", choices=("switchyard", "statsd"), default="switchyard")
    args = ap.parse_args()

    results = Results(TEST_NAME)
    workdir = make_workdir("sy-carbon-")
    carbon = CarbonCache(workdir)
    try:
        if args.against == "switchyard":
            print("switchyard binary: %s" % switchyard_binary())
        if not results.check("carbon-cache starts", carbon.start(), carbon.logs()):
            return results.finish()
        check_carbon_alone(results, carbon)
        check_daemon(results, carbon, args.against, workdir)
    except Exception as e:  # a crash of the harness is a failure, not a skip
        import traceback
        traceback.print_exc()
        results.check("harness ran without error", False, repr(e))
    finally:
        carbon.stop()
        remove_workdir(workdir)
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
