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

  3. an outage: a second switchyard receives a steady stream (a gauge
     `outage.seq:N|g` with N increasing and a counter `outage.count:1|c`,
     one of each every 200 ms) while carbon-cache is stopped with SIGTERM
     between two flushes, stays down for 4 flushes, and is started again
     on the same port with the same storage dir; the stream goes on for a
     few more flushes.  Every second of the stream, before, during and
     after the outage, must then be in whisper: the gauge at the last N
     sent in that second, the counter at the number of lines sent in it
     (5) - switchyard's queue held the outage's flushes and delivered them
     once carbon was back - with the sink's dropped counter at 0.

deleteIdleStats is on, so each metric has a point only in the flushes that
received data and the expected series are exact.

carbon-cache 1.1.7 does not write its in-memory cache when it shuts down
(its writer thread writes, sleeps a second, and ends once the reactor
stops), so a SIGTERM loses whatever it received since its last write.  The
outage therefore stops carbon right after its writer has stored the latest
flush and well before the next one (switchyard flushes on whole seconds),
and checks that switchyard handed carbon nothing between that SIGTERM and
the restart (the sink's `sent` count stands still).  When no such moment
comes (the writer's rhythm falls just before the flushes), carbon is
stopped anyway and the flush it held unwritten is named and left out, as
carbon's loss, not switchyard's.

Usage:
  /usr/bin/python3 tests/integration/test_carbon.py                  $SY_BIN
  /usr/bin/python3 tests/integration/test_carbon.py --against statsd  the
      reference statsd instead (validates this test without switchyard)
"""
import argparse
import math
import os
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.carbon import CarbonCache  # noqa: E402
from lib.daemon import SwitchyardServer  # noqa: E402
from lib.netutil import LOOPBACK, free_port, send_udp, sleep_until_phase  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.statsd import StatsdServer  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

try:  # Debian's python3-whisper: a fast read for the outage's timing
    import whisper  # noqa: E402
except ImportError:  # another interpreter: whisper-fetch (slower) instead
    whisper = None

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


# ---------------------------------------------------------------------------
# 3. carbon-cache stopped and started again mid-stream

OUTAGE_GAUGE = "stats.gauges.outage.seq"
OUTAGE_COUNT = "stats.counters.outage.count.count"
OUTAGE_RATE = "stats.counters.outage.count.rate"
OUTAGE_PERIOD = 0.2        # one gauge and one counter line every 200 ms ...
OUTAGE_OFFSET = 0.1        # ... at .1 .3 .5 .7 .9 s, well clear of the flushes
OUTAGE_LATE = 0.05         # a tick the sender missed by more is skipped
OUTAGE_DOWN_FLUSHES = 4    # flushes while carbon is down
OUTAGE_AFTER_FLUSHES = 3   # flushes after it is back, before the stream stops
KILL_BEFORE_PHASE = 0.85   # SIGTERM only this early in a second (next flush at 1.0)
# reconnectMaxMs bounds the wait for the reconnect once carbon is back
# (the default backoff, up to 30 s, would make the test slow, not stronger).
OUTAGE_SINK = {"reconnectMinMs": 100, "reconnectMaxMs": 1000}


class OutageSwitchyard(SwitchyardServer):
    """The switchyard under test with a management port (for the sink's
    sent/queued/dropped counts) and OUTAGE_SINK's reconnect settings."""

    def __init__(self, name, options, graphite_port, workdir):
        self.mgmt_port = free_port("tcp")
        options = dict(options, mgmt_port=self.mgmt_port)
        super().__init__(name, options, graphite_port, workdir, sink_settings=OUTAGE_SINK)

    def sink(self, name="carbon"):
        """The management console's `sinks` line for the sink, as a dict
        (state, queued, sent, dropped, errors, reconnects, ...)."""
        with socket.create_connection((LOOPBACK, self.mgmt_port), timeout=5) as s:
            s.sendall(b"sinks\n")
            data = b""
            deadline = time.monotonic() + 5
            while b"END\n" not in data and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        for line in data.decode("utf-8", "replace").splitlines():
            words = line.split()
            if words and words[0] == name:
                out = {}
                for w in words[1:]:
                    k, _, v = w.partition("=")
                    out[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
                return out
        raise RuntimeError("no sink %r in the management console's reply %r" % (name, data))


class SteadyStream(threading.Thread):
    """One `outage.seq:N|g` (N = 1, 2, ...) and one `outage.count:1|c`
    datagram every OUTAGE_PERIOD s, on a wall-clock grid, until stopped.
    Records (send time, N) for each pair sent."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.sent = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            t0 = math.floor(time.time()) + OUTAGE_OFFSET
            k = 0
            n = 0
            while not self.stopping.is_set():
                tick = t0 + k * OUTAGE_PERIOD
                now = time.time()
                if now < tick:
                    self.stopping.wait(tick - now)
                    continue
                k += 1
                if now - tick > OUTAGE_LATE:
                    continue  # too late: it could fall into the wrong flush
                n += 1
                s.sendto(b"outage.seq:%d|g" % n, (LOOPBACK, self.port))
                s.sendto(b"outage.count:1|c", (LOOPBACK, self.port))
                with self.lock:
                    self.sent.append((now, n))

    def stop(self):
        self.stopping.set()
        self.join(5)

    def records(self):
        with self.lock:
            return list(self.sent)


def expected_per_flush(records):
    """Flush timestamp -> (last N, lines) for every second the stream
    covered whole: a flush at second T carries what was sent in [T-1, T).
    The first and the last second of the stream are partial, left out."""
    per_sec = {}
    for t, n in records:
        per_sec.setdefault(int(math.floor(t)), []).append(n)
    if not per_sec:
        return {}
    first, last = min(per_sec), max(per_sec)
    return {sec + 1: (ns[-1], len(ns)) for sec, ns in sorted(per_sec.items())
            if first < sec < last}


def latest_point(carbon, metric):
    """The newest stored timestamp of `metric`, or None."""
    path = carbon.wsp_path(metric)
    if whisper is None:
        pts = carbon.fetch(metric, int(time.time()) - 60)
        return pts[-1][0] if pts else None
    if not os.path.exists(path):
        return None
    now = int(time.time())
    try:
        (start, _, step), values = whisper.fetch(path, now - 60, now + 2)
    except (whisper.WhisperException, struct.error, OSError, ValueError):
        return None  # the file is being created
    stored = [start + i * step for i, v in enumerate(values) if v is not None]
    return stored[-1] if stored else None


def wait_for_quiet_carbon(carbon, deadline_s):
    """Wait for a moment when carbon's writer has stored the latest flush
    (so that its cache holds nothing of ours) and the next flush is more
    than 1 - KILL_BEFORE_PHASE s away.  Returns True at such a moment,
    False after deadline_s without one.  (The writer's cycle is a second
    plus its write time, so its phase against the flushes drifts by some
    40 ms a second: it stays just before the flushes for 3 s at most.)"""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        sec = int(time.time())
        if time.time() - sec < KILL_BEFORE_PHASE and all(
                latest_point(carbon, m) == sec for m in (OUTAGE_GAUGE, OUTAGE_COUNT)):
            if time.time() - sec < KILL_BEFORE_PHASE:  # the look itself took time
                return True
        time.sleep(0.005)
    return False


def check_outage(results, carbon, workdir):
    """Switchyard's graphite sink holds the flushes of a carbon outage in
    its queue and delivers them, every one, once carbon is back."""
    label = "outage"
    options = dict(OPTIONS)
    daemon = OutageSwitchyard("carbon-outage-switchyard", options, carbon.line_port, workdir)
    stream = None
    try:
        if not results.check("%s: switchyard starts" % label, daemon.start(),
                             (daemon.start_error or "") + "\n" + daemon.logs()):
            return
        stream = SteadyStream(daemon.udp_port)
        stream.start()
        # a few flushes with carbon up
        ok = wait_until(lambda: all(latest_point(carbon, m) for m in (OUTAGE_GAUGE, OUTAGE_COUNT)),
                        10, step=0.1)
        if not results.check("%s: the stream reaches carbon before the outage" % label, bool(ok),
                             daemon.logs() + "\n" + carbon.logs()):
            return
        time.sleep(3.0)

        # -- the outage: SIGTERM by PID, between two flushes
        clean_moment = wait_for_quiet_carbon(carbon, 5.0)
        if not clean_moment:
            sleep_until_phase(1.0, 0.5)  # at least as far as possible from a flush
        stored_at_kill = min(latest_point(carbon, m) or 0 for m in (OUTAGE_GAUGE, OUTAGE_COUNT))
        before = daemon.sink()
        pid = carbon.pid
        t_kill = time.time()
        rc = carbon.stop()  # SIGTERM now, and wait for the exit
        t_exit = time.time()
        results.note("carbon-cache (pid %d) sent SIGTERM at %.3f (%.3f s into the second, flush "
                     "%d stored), exited %.2f s later with %r"
                     % (pid, t_kill, t_kill - int(t_kill), stored_at_kill, t_exit - t_kill, rc))
        results.check("%s: carbon-cache shuts down cleanly on SIGTERM" % label, rc in (0, -15),
                      "exit code %r\n%s" % (rc, carbon.logs()))
        # carbon's own loss: flushes it received but had not written yet
        carbon_lost = set()
        if not clean_moment:
            carbon_lost = set(range(stored_at_kill + 1, int(t_kill) + 1))
            results.note("no moment between carbon's write and the next flush came within 5 s; "
                         "stopped at mid-second instead, %s"
                         % ("with every flush written" if not carbon_lost else
                            "holding flush(es) %s unwritten (carbon-cache 1.1.7 does not write "
                            "its cache on shutdown): left out below, as carbon's loss"
                            % sorted(carbon_lost)))

        # carbon down for OUTAGE_DOWN_FLUSHES flushes; the queue half-way
        # between them (those still ahead once carbon has exited)
        queued = []
        states = set()
        for k in range(1, OUTAGE_DOWN_FLUSHES + 1):
            delay = int(t_kill) + k + 0.5 - time.time()
            if delay < 0:
                continue
            time.sleep(delay)
            st = daemon.sink()
            queued.append(st["queued"])
            states.add(st["state"])
        during = daemon.sink()
        results.note("queued lines at each flush while carbon was down: %r" % queued)
        results.check("%s: while carbon is down the sink is disconnected and queues every flush "
                      "(queued lines grow)" % label,
                      states == {"disconnected"} and len(queued) >= OUTAGE_DOWN_FLUSHES - 1
                      and all(b > a for a, b in zip(queued, queued[1:])) and queued[0] > 0,
                      "states %r, queued %r" % (sorted(states), queued))

        # -- carbon back: same port, same storage dir
        up = carbon.start()
        t_up = time.time()
        results.check("%s: carbon-cache starts again on port %d with the same storage"
                      % (label, carbon.line_port), up, carbon.logs())
        if not up:
            return
        results.check("%s: switchyard handed carbon nothing from the SIGTERM to the restart "
                      "(sink sent %d before, %d after): every outage flush stayed queued"
                      % (label, before["sent"], during["sent"]),
                      during["sent"] == before["sent"], "before %r\nafter %r" % (before, during))
        drained = wait_until(lambda: (lambda st: st["state"] == "connected" and st["queued"] == 0)
                             (daemon.sink()), 10, step=0.1)
        after_drain = daemon.sink()
        results.check("%s: switchyard reconnects and empties its queue once carbon is back"
                      % label, bool(drained), "sink %r\n%s" % (after_drain, daemon.logs()))
        results.note("reconnected and drained %.1f s after carbon's restart" % (time.time() - t_up))

        # a few more flushes, then stop the stream mid-second
        while time.time() < int(t_up) + OUTAGE_AFTER_FLUSHES + 0.5:
            time.sleep(0.05)
        stream.stop()
        records = stream.records()
        expected = expected_per_flush(records)
        excused = {sec: expected.pop(sec) for sec in sorted(carbon_lost) if sec in expected}
        # the flushes the stream could reach at all, its partial ends included
        first_ts, last_ts = int(records[0][0]) + 1, int(records[-1][0]) + 1

        # read everything back (carbon writes within a second or so)
        since = first_ts - 5
        got = {}

        def all_stored():
            for m in (OUTAGE_GAUGE, OUTAGE_COUNT, OUTAGE_RATE):
                got[m] = dict(carbon.fetch(m, since) or [])
            return all(ts in got[m] for ts in expected for m in got)
        wait_until(all_stored, 10, step=0.3)

        phases = (("before", lambda ts: ts <= t_kill),
                  ("during", lambda ts: t_kill < ts <= t_up),
                  ("after", lambda ts: ts > t_up))
        for name, in_phase in phases:
            secs = [ts for ts in sorted(expected) if in_phase(ts)]
            bad = []
            for ts in secs:
                n, lines = expected[ts]
                have = (got[OUTAGE_GAUGE].get(ts), got[OUTAGE_COUNT].get(ts),
                        got[OUTAGE_RATE].get(ts))
                if have != (float(n), float(lines), float(lines)):
                    bad.append("  %d: gauge/count/rate %r, want %r" % (ts, have, (n, lines, lines)))
            want_min = {"before": 2, "during": OUTAGE_DOWN_FLUSHES - 1, "after": 2}[name]
            results.check("%s: every flush second %s the outage is in whisper, gauge at the last "
                          "N sent, count and rate at the lines sent (%d seconds, %s..%s)"
                          % (label, name, len(secs), secs[0] if secs else "-",
                             secs[-1] if secs else "-"),
                          not bad and len(secs) >= want_min,
                          "%d seconds (want >= %d)\n%s\nstored gauge %r\nstored count %r"
                          % (len(secs), want_min, "\n".join(bad),
                             sorted(got[OUTAGE_GAUGE].items()),
                             sorted(got[OUTAGE_COUNT].items())))
        results.note("lines sent per second: %r (5 unless the sender missed a tick)"
                     % sorted(set(v for _, v in expected.values())))
        for ts, (n, lines) in excused.items():
            have = tuple(got[m].get(ts) for m in (OUTAGE_GAUGE, OUTAGE_COUNT, OUTAGE_RATE))
            results.note("flush %d, held by carbon when it was stopped: %s"
                         % (ts, "lost by carbon" if have == (None, None, None) else
                            "stored after all, %r" % (have,)))
            if have != (None, None, None):
                results.check("%s: flush %d, if carbon kept it, has the right values"
                              % (label, ts), have == (float(n), float(lines), float(lines)),
                              "gauge/count/rate %r, want %r" % (have, (n, lines, lines)))
        extra = sorted(ts for m in got for ts in got[m] if not first_ts <= ts <= last_ts)
        results.check("%s: nothing stored outside the stream's flushes (%d..%d)"
                      % (label, first_ts, last_ts), not extra, "extra timestamps %r" % extra)

        final = daemon.sink()
        results.note("sink after the outage: %s" % " ".join("%s=%s" % kv for kv in final.items()))
        results.check("%s: switchyard's sink dropped nothing (dropped = %r)"
                      % (label, final["dropped"]), final["dropped"] == 0, "sink %r" % final)
        if results.failed:
            print(daemon.logs())
            print(carbon.logs())
    finally:
        if stream is not None:
            stream.stop()
        daemon.stop()


def check_against_statsd(results):
    """The harness's own check, once per make test (against the plain
    binary only: it checks the expectations, not the daemon): the same
    scenario run against the reference statsd must pass, so the values
    this file expects are statsd's and not merely switchyard's."""
    from lib import sanitizer
    if sanitizer.sanitized(switchyard_binary()):
        return
    import subprocess
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--against", "statsd"],
                       capture_output=True, timeout=300)
    out = p.stdout.decode("utf-8", "replace")
    m = re.search(r"^test_carbon: (\d+) passed, (\d+) failed", out, re.M)
    passed = int(m.group(1)) if m else 0
    results.check("harness: the same expectations hold against the reference statsd (%d checks)"
                  % passed, p.returncode == 0 and m is not None and passed >= 10 and m.group(2) == "0",
                  "exit %d\n%s" % (p.returncode, out[-3000:]))


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
        if args.against == "switchyard":
            check_outage(results, carbon, workdir)
            check_against_statsd(results)
        else:
            results.skip("outage", "statsd's graphite backend keeps no queue")
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
