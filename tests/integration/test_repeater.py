#!/usr/bin/env python3
"""Integration test: the repeater sink forwarding raw samples to a second
switchyard, over UDP and TCP, IPv4 and IPv6.

Every case runs real daemons on loopback ports chosen at run time:

  A (front)   routes `fwd.*` through to a repeater sink (route.prefix "fwd."
              :passthrough "fwd"); everything else, its own metrics
              included, goes to a graphite sink writing into capture A.
  B (back)    what the repeater points at; aggregates and flushes into
              capture B.
  C (direct)  B's twin, sent the same lines directly: the reference.

  1. wire format: the repeater pointed at a plain UDP socket of this test:
     every line exactly as expected (rates, signed gauge deltas, timers as
     ms, DogStatsD tags sent once), lines packed into datagrams of at most
     maxDatagramBytes and never cut, order kept; with flushed = "gauges",
     flushed gauges are forwarded as gauges (a negative one as 0 then the
     delta) and nothing else that was flushed is;
  2. equivalence, for UDP and TCP over IPv4 and IPv6: counters with sample
     rates, timers, gauges with deltas, sets, tagged metrics sent through
     A land in B with exactly the values C computes from the same lines
     (and the values statsd's rules give, checked by name);
  3. outage (TCP): B stopped mid-stream and restarted on the same port;
     everything sent meanwhile arrives, once;
  4. a tiny maxQueueBytes with the destination down: what did not fit is
     counted in A's switchyard.sink.fwd.dropped, what did fit arrives;
  5. bad settings stop A at start with a message naming the setting.

B and C flush every 2 s on wall-clock multiples; traffic is sent early in
a flush window so that each case lands in one flush of each daemon.

Usage: /usr/bin/python3 tests/integration/test_repeater.py   ($SY_BIN)
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.capture import GraphiteCapture  # noqa: E402
from lib.daemon import ConfigDaemon  # noqa: E402
from lib.netutil import LOOPBACK, sleep_until_phase  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

TEST_NAME = "test_repeater"

BACK_INTERVAL = 2.0
GRAPHITE = {"legacyNamespace": False, "globalPrefix": "stats"}
BACK_OPTIONS = {
    "flushInterval": int(BACK_INTERVAL * 1000),
    "percentThreshold": [90],
    "deleteIdleStats": True,
    "prefixStats": "statsd",
    "graphite": GRAPHITE,
}
FRONT_OPTIONS = {"flushInterval": 1000, "prefixStats": "statsd", "graphite": GRAPHITE}

FRONT_ROUTES = """{
  route.prefix "fwd." :passthrough "fwd",
  route.prefix "agg." :to "fwd",
  route.default() :to "self",
}"""

# The traffic of the equivalence cases, sent to A and to C alike.
TRAFFIC = [
    "fwd.cnt:1|c|@0.1", "fwd.cnt:1|c|@0.1", "fwd.cnt:1|c|@0.1", "fwd.cnt:1|c|@0.1",
    "fwd.cnt:1|c|@0.1", "fwd.cnt:3|c", "fwd.cnt:2|c|@0.5",
    "fwd.tmr:10|ms", "fwd.tmr:20|ms", "fwd.tmr:30|ms|@0.5", "fwd.h:5|h",
    "fwd.gau:10|g", "fwd.gau:+5|g", "fwd.gau:-3|g", "fwd.neg:-4|g",
    "fwd.set:a|s", "fwd.set:b|s", "fwd.set:a|s", "fwd.set:c|s",
    "fwd.tagged:2|c|#env:prod,role:web",
    "fwd.gtag;dc=eu:4|c",
    "fwd.both;dc=eu:1|c|#env:prod",
    "fwd.ttag:5|ms|#trace:9f2c,root",
    "fwd.semi:1|c|#x;y;z,k:v", "fwd.empty:1|c|#a,,b",
    "fwd.multi:1|c:2|c",
    "other.local:1|c",
]

# What statsd's rules give for TRAFFIC (name fragment -> value), checked on
# top of B == C.
EXPECTED = {
    "stats.counters.fwd.cnt.count": 57.0,       # 5 * 1/0.1 + 3 + 2/0.5
    "stats.timers.fwd.tmr.count": 4.0,          # 1 + 1 + 1/0.5
    "stats.timers.fwd.tmr.upper": 30.0,
    "stats.timers.fwd.tmr.lower": 10.0,
    "stats.timers.fwd.tmr.sum": 60.0,
    "stats.timers.fwd.h.count": 1.0,
    "stats.gauges.fwd.gau": 12.0,               # 10 + 5 - 3
    "stats.gauges.fwd.neg": -4.0,               # a delta on a new gauge sets it
    "stats.sets.fwd.set.count": 3.0,
}
# Tagged keys: (name prefix, tags the name must carry exactly once, value)
EXPECTED_TAGGED = [
    ("stats.counters.fwd.tagged", ["env=prod", "role=web"], 2.0),
    ("stats.counters.fwd.gtag", ["dc=eu"], 4.0),
    ("stats.counters.fwd.both", ["dc=eu", "env=prod"], 1.0),
    ("stats.timers.fwd.ttag", ["trace=9f2c", "root"], 1.0),
]


def _free_port6():
    """A port free for TCP and UDP on ::1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.bind(("::1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free for both TCP and UDP on ::1")


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def graphite_sink(capture):
    return {"plugin": "graphite", "host": LOOPBACK, "port": capture.port,
            "reconnectMinMs": 50, "reconnectMaxMs": 500}


def front(workdir, name, self_capture, repeater, routes=FRONT_ROUTES):
    """A: the repeater sink `fwd` with the given settings, its own metrics
    into self_capture."""
    sinks = {"fwd": dict({"plugin": "repeater"}, **repeater), "self": graphite_sink(self_capture)}
    return ConfigDaemon(name, workdir, FRONT_OPTIONS, sinks, routes)


def back(workdir, name, capture, host=LOOPBACK):
    return ConfigDaemon(name, workdir, BACK_OPTIONS, {"carbon": graphite_sink(capture)}, host=host,
                        port=None if host == LOOPBACK else _free_port6())


def values(capture, pred=lambda n: True):
    """name -> list of float values, in arrival order."""
    out = {}
    for line in capture.lines():
        if line.value is None or not pred(line.name):
            continue
        try:
            out.setdefault(line.name, []).append(float(line.value))
        except ValueError:
            pass
    return out


def total(capture, name):
    return sum(values(capture, lambda n: n == name).get(name, []))


def self_total(capture, stat):
    """Sum of one of A's own delta counters over its flushes."""
    return sum(v for n, vs in values(capture, lambda n: n.endswith(stat)).items() for v in vs)


def self_last(capture, stat):
    vs = [v for n, vv in values(capture, lambda n: n.endswith(stat)).items() for v in vv]
    return vs[-1] if vs else None


def is_fwd(name):
    return ".fwd." in name


def tags_of(name):
    parts = name.split(";")
    return parts[0], parts[1:]


def show(results, daemons, *captures):
    for d in daemons:
        print(d.logs())
    for c in captures:
        print("---- capture %d ----" % c.port)
        for line in c.lines()[-60:]:
            print("   ", line.raw)


# ---------------------------------------------------------------------
# 1. the wire format
# ---------------------------------------------------------------------

WIRE_LINES = [
    "fwd.cnt:1|c|@0.1", "fwd.tmr:10|ms", "fwd.h:5|h", "fwd.gau:10|g", "fwd.gau:+5|g",
    "fwd.gau:-3|g", "fwd.set:a|s", "fwd.tagged:2|c|#env:prod,role:web",
    "fwd.gtag;dc=eu:4|c", "fwd.both;dc=eu:1|c|#env:prod", "fwd.ttag:5|ms|#trace:9f2c,root",
    "fwd.semi:1|c|#x;y;z,k:v", "fwd.empty:1|c|#a,,b",
    "agg.g:7|g", "agg.neg:-4|g", "agg.c:1|c", "other.local:1|c",
]
WIRE_EXPECTED = [
    "fwd.cnt:1|c|@0.1", "fwd.tmr:10|ms", "fwd.h:5|ms", "fwd.gau:10|g", "fwd.gau:+5|g",
    "fwd.gau:-3|g", "fwd.set:a|s", "fwd.tagged:2|c|#env:prod,role:web",
    "fwd.gtag;dc=eu:4|c", "fwd.both;dc=eu:1|c|#env:prod", "fwd.ttag:5|ms|#trace:9f2c,root",
    "fwd.semi:1|c|#x;y;z,k:v", "fwd.empty:1|c|#a,,b",
]
BULK = 300
MAX_DGRAM = 200


def check_wire(results, workdir):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(0.2)
    cap_a = GraphiteCapture()
    a = front(workdir, "wire-front", cap_a,
              {"host": LOOPBACK, "port": sock.getsockname()[1], "protocol": "udp",
               "maxDatagramBytes": MAX_DGRAM, "flushed": "gauges"})
    try:
        if not results.check("wire: front starts", a.start(), a.logs()):
            return
        bulk = ["fwd.bulk.%03d:%d|c" % (i, i) for i in range(BULK)]
        a.send(WIRE_LINES + bulk)
        dgrams = []
        deadline = time.monotonic() + 3.5  # two of A's flushes
        while time.monotonic() < deadline:
            try:
                dgrams.append(sock.recv(70000))
            except socket.timeout:
                pass
        lines = [ln for d in dgrams for ln in d.decode("utf-8", "replace").split("\n")]
        samples = [ln for ln in lines if ln.startswith("fwd.") and not ln.startswith("fwd.bulk.")]
        results.check("wire: each raw sample is one StatsD line, exactly as expected",
                      samples == WIRE_EXPECTED,
                      "got      %r\nexpected %r" % (samples, WIRE_EXPECTED))
        got_bulk = [ln for ln in lines if ln.startswith("fwd.bulk.")]
        results.check("wire: %d lines arrive once each, in order" % BULK, got_bulk == bulk,
                      "got %d lines, first differences: %r" % (
                          len(got_bulk), [(g, w) for g, w in zip(got_bulk, bulk) if g != w][:5]))
        too_big = [len(d) for d in dgrams if len(d) > MAX_DGRAM]
        results.check("wire: no datagram exceeds maxDatagramBytes (%d)" % MAX_DGRAM, not too_big,
                      "sizes %r" % too_big)
        packed = [d for d in dgrams if b"\n" in d]
        results.check("wire: lines are packed several to a datagram",
                      len(packed) > 0 and len(dgrams) < len(lines) // 3,
                      "%d datagrams for %d lines" % (len(dgrams), len(lines)))
        results.check("wire: no datagram ends in a newline or holds an empty line",
                      all(d and not d.endswith(b"\n") and b"\n\n" not in d for d in dgrams),
                      repr([d for d in dgrams if not d or d.endswith(b"\n") or b"\n\n" in d][:3]))
        flushed = [ln for ln in lines if ln.startswith("stats.")]
        results.check("wire: a flushed gauge is forwarded as a gauge",
                      "stats.gauges.agg.g:7|g" in flushed, repr(flushed[:20]))
        neg = [i for i, ln in enumerate(lines) if ln == "stats.gauges.agg.neg:-4|g"]
        results.check("wire: a negative flushed gauge is sent as 0 then the (signed) value",
                      bool(neg) and all(i > 0 and lines[i - 1] == "stats.gauges.agg.neg:0|g"
                                        for i in neg), repr(flushed[:20]))
        others = [ln for ln in flushed if not ln.startswith("stats.gauges.")]
        results.check("wire: with flushed = \"gauges\", no flushed counter or own metric is sent",
                      not others, repr(others[:10]))
        results.check("wire: keys routed elsewhere are not forwarded",
                      not any(ln.startswith("other.") or "agg.c" in ln for ln in lines),
                      repr([ln for ln in lines if "other." in ln or "agg.c" in ln]))
        sent = wait_until(lambda: self_total(cap_a, "switchyard.sink.fwd.sent")
                          >= BULK + len(WIRE_EXPECTED), 4)
        results.check("wire: A counts every line it sent (switchyard.sink.fwd.sent)", sent,
                      "sent = %r" % self_total(cap_a, "switchyard.sink.fwd.sent"))
        if results.failed:
            show(results, [a], cap_a)
    finally:
        a.stop()
        cap_a.close()
        sock.close()


# ---------------------------------------------------------------------
# 2. equivalence: through A to B == directly to C
# ---------------------------------------------------------------------

def check_equivalence(results, workdir, protocol, host):
    label = "%s over %s" % (protocol, "IPv6" if ":" in host else "IPv4")
    tag = protocol + ("6" if ":" in host else "4")
    cap_a, cap_b, cap_c = GraphiteCapture(), GraphiteCapture(), GraphiteCapture()
    b = back(workdir, "back-" + tag, cap_b, host=host)
    c = back(workdir, "direct-" + tag, cap_c)
    a = front(workdir, "front-" + tag, cap_a,
              {"host": host, "port": b.port, "protocol": protocol,
               "reconnectMinMs": 50, "reconnectMaxMs": 200})
    daemons = [a, b, c]
    try:
        for d in (b, c, a):
            if not results.check("%s: %s starts" % (label, d.name), d.start(), d.logs()):
                return
        if protocol == "tcp":
            wait_until(lambda: self_last(cap_a, "switchyard.sink.fwd.connected") == 1, 5)
        sleep_until_phase(BACK_INTERVAL, 0.3)
        a.send(TRAFFIC)
        c.send(TRAFFIC)
        # both have flushed once the window ends; then let the flush finish
        time.sleep(BACK_INTERVAL)
        wait_until(lambda: any(is_fwd(n) for n in values(cap_b)) and
                   any(is_fwd(n) for n in values(cap_c)), 5)
        cap_b.wait_quiet()
        cap_c.wait_quiet()
        got_b = values(cap_b, is_fwd)
        got_c = values(cap_c, is_fwd)
        results.check("%s: B's flush equals C's (same lines sent directly), %d names"
                      % (label, len(got_c)), got_b == got_c and len(got_c) > 20,
                      _diff(got_b, got_c))
        for name, want in EXPECTED.items():
            results.check("%s: %s = %s" % (label, name, want), got_b.get(name) == [want],
                          "B gave %r, C gave %r" % (got_b.get(name), got_c.get(name)))
        for prefix, tags, want in EXPECTED_TAGGED:
            names = [n for n in got_b if tags_of(n)[0].startswith(prefix + ".")
                     or tags_of(n)[0] == prefix]
            ok = bool(names)
            for n in names:
                base, ntags = tags_of(n)
                ok = ok and sorted(ntags) == sorted(tags)
            count = [got_b[n] for n in names if tags_of(n)[0] in (prefix, prefix + ".count")]
            results.check("%s: %s keeps its tags %s once each, value %s" % (label, prefix, tags, want),
                          ok and count == [[want]], "names %r, values %r" % (names, count))
        results.check("%s: nothing routed elsewhere reaches B" % label,
                      not any("other" in n for n in values(cap_b)),
                      repr([n for n in values(cap_b) if "other" in n]))
        results.check("%s: A dropped nothing" % label,
                      self_total(cap_a, "switchyard.sink.fwd.dropped") == 0,
                      "dropped = %r" % self_total(cap_a, "switchyard.sink.fwd.dropped"))
        if results.failed:
            show(results, daemons, cap_b)
    finally:
        for d in daemons:
            d.stop()
        for cap in (cap_a, cap_b, cap_c):
            cap.close()


def _diff(b, c):
    lines = []
    for n in sorted(set(b) | set(c)):
        if b.get(n) != c.get(n):
            lines.append("%s: B %r, C %r" % (n, b.get(n), c.get(n)))
    return "\n".join(lines[:40]) or "(no difference; too few names?)"


# ---------------------------------------------------------------------
# 3. outage: B stops and comes back on the same port (TCP)
# ---------------------------------------------------------------------

OUT_NAME = "stats.counters.fwd.out.count"


def burst(phase, n=100):
    # distinct increments, so a lost or doubled line changes the sum
    return ["fwd.out:%d|c" % (phase * 1000 + i) for i in range(n)]


def check_outage(results, workdir):
    cap_a, cap_b = GraphiteCapture(), GraphiteCapture()
    b = back(workdir, "outage-back", cap_b)
    a = front(workdir, "outage-front", cap_a,
              {"host": LOOPBACK, "port": b.port, "protocol": "tcp",
               "reconnectMinMs": 50, "reconnectMaxMs": 200})
    try:
        if not (results.check("outage: back starts", b.start(), b.logs()) and
                results.check("outage: front starts", a.start(), a.logs())):
            return
        wait_until(lambda: self_last(cap_a, "switchyard.sink.fwd.connected") == 1, 5)
        want = 0
        for phase in (1, 2):
            lines = burst(phase)
            want += sum(int(ln.split(":")[1].split("|")[0]) for ln in lines)
            a.send(lines)
        got = wait_until(lambda: total(cap_b, OUT_NAME) == want, 10)
        results.check("outage: before the stop, B has everything (%d)" % want, got,
                      "B has %r" % total(cap_b, OUT_NAME))

        b.stop()
        gone = wait_until(lambda: self_last(cap_a, "switchyard.sink.fwd.connected") == 0, 5)
        results.check("outage: A sees B gone (switchyard.sink.fwd.connected = 0)", gone,
                      "connected = %r" % self_last(cap_a, "switchyard.sink.fwd.connected"))
        during = 0
        for phase in (3, 4, 5):
            lines = burst(phase)
            during += len(lines)
            want += sum(int(ln.split(":")[1].split("|")[0]) for ln in lines)
            a.send(lines)
            time.sleep(0.3)
        queued = wait_until(lambda: self_last(cap_a, "switchyard.sink.fwd.queued") == during, 5)
        results.check("outage: A holds the %d lines sent meanwhile in its queue" % during, queued,
                      "queued = %r" % self_last(cap_a, "switchyard.sink.fwd.queued"))

        if not results.check("outage: back restarts on the same port", b.start(), b.logs()):
            return
        for phase in (6,):
            lines = burst(phase)
            want += sum(int(ln.split(":")[1].split("|")[0]) for ln in lines)
            a.send(lines)
        got = wait_until(lambda: total(cap_b, OUT_NAME) == want, 15)
        results.check("outage: after the restart B has received everything once (%d)" % want,
                      got, "B has %r" % total(cap_b, OUT_NAME))
        results.check("outage: A dropped nothing",
                      self_total(cap_a, "switchyard.sink.fwd.dropped") == 0,
                      "dropped = %r" % self_total(cap_a, "switchyard.sink.fwd.dropped"))
        reconnects = self_total(cap_a, "switchyard.sink.fwd.sent")
        results.check("outage: A counted every line as sent (%d)" % 600,
                      wait_until(lambda: self_total(cap_a, "switchyard.sink.fwd.sent") == 600, 4),
                      "sent = %r" % reconnects)
        if results.failed:
            show(results, [a, b], cap_b)
    finally:
        a.stop()
        b.stop()
        cap_a.close()
        cap_b.close()


# ---------------------------------------------------------------------
# 4. a tiny queue: drops are counted
# ---------------------------------------------------------------------

def check_tiny_queue(results, workdir):
    cap_a, cap_b = GraphiteCapture(), GraphiteCapture()
    b = back(workdir, "tiny-back", cap_b)  # not started yet: nothing listens
    queue = 1024
    a = front(workdir, "tiny-front", cap_a,
              {"host": LOOPBACK, "port": b.port, "protocol": "tcp", "maxQueueBytes": queue,
               "reconnectMinMs": 50, "reconnectMaxMs": 200})
    n = 200
    line = "fwd.q:1|c"
    fits = queue // (len(line) + 1)  # each queued line ends in '\n'
    try:
        if not results.check("tiny queue: front starts", a.start(), a.logs()):
            return
        a.send([line] * n)
        dropped = wait_until(lambda: self_total(cap_a, "switchyard.sink.fwd.dropped") == n - fits, 5)
        results.check("tiny queue: %d lines did not fit in %d bytes and are counted dropped"
                      % (n - fits, queue), dropped,
                      "dropped = %r" % self_total(cap_a, "switchyard.sink.fwd.dropped"))
        results.check("tiny queue: %d lines wait in the queue" % fits,
                      wait_until(lambda: self_last(cap_a, "switchyard.sink.fwd.queued") == fits, 3),
                      "queued = %r" % self_last(cap_a, "switchyard.sink.fwd.queued"))
        if not results.check("tiny queue: back starts", b.start(), b.logs()):
            return
        got = wait_until(lambda: total(cap_b, "stats.counters.fwd.q.count") == fits, 10)
        results.check("tiny queue: what fitted (%d) arrives once B is up" % fits, got,
                      "B has %r" % total(cap_b, "stats.counters.fwd.q.count"))
        time.sleep(1.2)
        results.check("tiny queue: sent + dropped = lines sent to A (%d)" % n,
                      total(cap_b, "stats.counters.fwd.q.count")
                      + self_total(cap_a, "switchyard.sink.fwd.dropped") == n,
                      "B %r, dropped %r" % (total(cap_b, "stats.counters.fwd.q.count"),
                                            self_total(cap_a, "switchyard.sink.fwd.dropped")))
        if results.failed:
            show(results, [a, b], cap_b)
    finally:
        a.stop()
        b.stop()
        cap_a.close()
        cap_b.close()


# ---------------------------------------------------------------------
# 5. bad settings are refused at start, naming the setting
# ---------------------------------------------------------------------

def check_bad_settings(results, workdir):
    cap = GraphiteCapture()
    cases = [("protocol", {"protocol": "sctp"}), ("flushed", {"flushed": "some"}),
             ("maxDatagramBytes", {"maxDatagramBytes": 70000})]
    try:
        for key, setting in cases:
            a = front(workdir, "bad-" + key, cap, dict({"host": LOOPBACK, "port": 9}, **setting))
            started = a.start(timeout=3)
            code = a.stop()  # the exit code, whether it exited or was stopped
            text = a.logs()
            results.check("bad settings: %s = %r is refused at start, naming it"
                          % (key, list(setting.values())[0]),
                          not started and code not in (0, None) and ("'%s'" % key) in text,
                          "exit code %r\n%s" % (code, text))
    finally:
        cap.close()


def main():
    results = Results(TEST_NAME)
    workdir = make_workdir("sy-repeater-")
    print("switchyard binary: %s" % switchyard_binary())
    try:
        check_wire(results, workdir)
        check_equivalence(results, workdir, "udp", LOOPBACK)
        check_equivalence(results, workdir, "tcp", LOOPBACK)
        if ipv6_available():
            check_equivalence(results, workdir, "udp", "::1")
            check_equivalence(results, workdir, "tcp", "::1")
        else:
            results.skip("IPv6 cases", "no ::1 on this host")
        check_outage(results, workdir)
        check_tiny_queue(results, workdir)
        check_bad_settings(results, workdir)
    except Exception as e:  # a crash of the harness is a failure, not a skip
        import traceback
        traceback.print_exc()
        results.check("harness ran without error", False, repr(e))
    finally:
        remove_workdir(workdir)
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
