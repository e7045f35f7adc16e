#!/usr/bin/env python3
"""Integration test: config reload (SIGHUP), Lua failures and token auth.

Each scenario starts its own switchyard (build/switchyard or $SY_BIN) with a
Lua config written here, on loopback ports chosen at run time, and a
Graphite listener recording what the graphite sink writes:

  1. reload_under_load: 1,000,000 counter samples over 4 TCP connections
     while the config is rewritten and SIGHUP'd 20 times, good and broken
     configs alternating (syntax error, error in setup, a rule naming an
     unknown sink, a failing `checks` entry, a setup that loops forever,
     a setup that allocates without bound).  After SIGTERM the flushed
     counts add up to exactly 1,000,000, the reloads.ok/reloads.failed
     self-metrics add up to 10 and 10, the exit code is 0 and the log
     names each failure's reason.
  2. sink_kept: reloads that leave the graphite sink alone keep its one
     connection; a reload that changes its port connects to the new port
     while the old sink, retired with a queue it could not deliver (its
     listener was down), drains that queue once the old port answers again.
  3. last_config_wins: 10 SIGHUPs in a burst, each config renaming a probe
     key differently; the name finally flushed is the last config's (and
     the decision cached for the key before the burst does not stick).
  4. lua_runtime_errors: a route() that raises, loops forever and
     allocates without bound for some keys: the daemon keeps running, the
     faulty keys take the default route under their own names,
     route.errors counts them, and the log is rate-limited.
  5. token_auth: a TCP listener with auth = true: a good token's lines are
     renamed into its namespace, bad and missing tokens are refused,
     counted, logged with a rate limit, and never flushed.

Usage:
  /usr/bin/python3 tests/integration/test_reload.py [SCENARIO ...]
  SY_BIN=build-san/switchyard /usr/bin/python3 tests/integration/test_reload.py
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib import REPO_DIR  # noqa: E402
from lib.capture import GraphiteCapture  # noqa: E402
from lib.daemon import Daemon as SharedDaemon  # noqa: E402
from lib.netutil import LOOPBACK, free_port, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib import scenarios  # noqa: E402
from lib.results import Results  # noqa: E402
from lib import sanitizer  # noqa: E402
from lib.sumsink import SumSink, bench_tool  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402
from lib.tcplisten import LineListener  # noqa: E402

TEST_NAME = "test_reload"
FLUSH_MS = 500
STATS = "stats.statsd.switchyard."      # globalPrefix "stats", prefixStats "statsd"


# ---------------------------------------------------------------------------
# configs and the daemon


def config_lua(listen_port, sink_port, body="", pre="", listen_auth=False, flush_ms=FLUSH_MS,
               sink_extra=""):
    """A config: one TCP listener, one graphite sink named carbon; `pre` is
    Lua run before the table is returned, `body` more table fields."""
    url = "tcp://%s:%d" % (LOOPBACK, listen_port)
    listen = '{ url = "%s", auth = true }' % url if listen_auth else '"%s"' % url
    return """-- written by tests/integration/test_reload.py
local route = require "switchyard.route"
%(pre)s
return {
  listen = { %(listen)s },
  flushInterval = %(flush)d,
  prefixStats = "statsd",
  graphite = { legacyNamespace = false },
  shutdownTimeout = 20000,
  sinks = {
    carbon = { plugin = "graphite", host = "%(host)s", port = %(sport)d,
               reconnectMinMs = 50, reconnectMaxMs = 200%(sink_extra)s },
  },
  %(body)s
}
""" % {"pre": pre, "listen": listen, "flush": flush_ms, "host": LOOPBACK, "sport": sink_port,
       "sink_extra": sink_extra, "body": body}


class Daemon(SharedDaemon):
    """One switchyard process with a config file this test rewrites, on a
    TCP port of its own (tests/lib/daemon.py does the rest)."""

    def __init__(self, name, workdir):
        super().__init__(name, workdir)
        self.port = free_port("tcp")

    def start(self, text, timeout=15.0):
        return super().start(text, port=self.port, timeout=timeout)


def send_lines(port, payload, timeout=15.0):
    """Send bytes over one TCP connection, half-close, and wait for the
    daemon to close its side: then it has read everything.  True if it did."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(timeout)
        try:
            while s.recv(4096):
                pass
        except OSError:
            return False
    return True


def sums(lines, prefix=""):
    """name -> sum of the values of capture lines whose name starts with prefix."""
    out = {}
    for line in lines:
        if line.value is None or not line.name.startswith(prefix):
            continue
        try:
            out[line.name] = out.get(line.name, 0.0) + float(line.value)
        except ValueError:
            pass
    return out


def finish_daemon(res, label, d):
    """Stop the daemon, check exit 0 and (sanitized build) no sanitizer
    report."""
    rc = d.stop()
    res.check("%s: switchyard exits 0 after SIGTERM" % label, rc == 0,
              "exit code %r\n%s" % (rc, d.logs()))
    d.check_sanitizer(res, label)
    return rc


# ---------------------------------------------------------------------------
# 1. a million samples through 20 reloads

N_LINES = 1000000
N_KEYS = 100
N_CONNS = 4
CHUNK_LINES = 2500
N_RELOADS = 20

# Good configs: different rules each time, all ending at carbon, none
# renaming a k* key.
GOOD = [
    '',  # no routing at all: every metric to every sink, no Lua per key
    'routes = { route.prefix "debug." :drop "debug stays local", route.default() :to "carbon" },',
    'routes = { route.glob "k*" :to "carbon", route.match "^legacy%.(.+)$" :rename "apps.%1" :to "carbon" },',
    'route = function(m) if m.name:sub(1, 1) == "k" then return { sinks = { "carbon" } } end return nil end,',
    'routes = { route.prefix "other." :rename "renamed" :to "carbon", route.prefix "k" :to "carbon" },\n'
    '  checks = { { "k1", to = { "carbon" } }, { "other.x", name = "renamed" } },',
    'routes = { route.type "ms" :to "carbon", route.glob "**" :to "carbon" },',
    'routes = { route.tag "env" :to "carbon", route.default() :to "carbon" },\n'
    '  checks = { { "k7", to = { "carbon" } } },',
]

# Broken configs: (what, pre, body, regex the "reload failed" line must match)
BROKEN = [
    ("a Lua syntax error", 'local x = = 1', '', r"unexpected symbol"),
    ("a runtime error in setup", 'error("deliberate setup error")', '', r"deliberate setup error"),
    ("routes naming an unknown sink", '', 'routes = { route.prefix "k" :to "nosuch" },',
     r"no sink named 'nosuch'"),
    ("a failing checks entry", '',
     'routes = { route.default() :to "carbon" }, checks = { { "k1", name = "not_k1" } },',
     r"checks: entry 1 \('k1'\).*expected 'not_k1'"),
    ("a setup that loops forever", 'while true do end', '', r"ran too long"),
    ("a setup that allocates without bound",
     'local t, i = {}, 0 while true do i = i + 1; t[i] = string.rep("x", 1000) .. i end', '',
     r"too much memory"),
]


def scenario_reload_under_load(res, workdir):
    label = "reload_under_load"
    cap = GraphiteCapture()
    d = Daemon("sy-load", workdir)
    senders = []
    try:
        if not res.check("%s: switchyard starts" % label,
                         d.start(config_lua(d.port, cap.port, GOOD[0])), d.logs()):
            return
        # Traffic: each connection sends its quarter in chunks; chunk j is
        # held until reload j*N_RELOADS/n_chunks has been signalled, so the
        # stream runs through all the reloads.
        per_conn = N_LINES // N_CONNS
        n_chunks = per_conn // CHUNK_LINES
        cond = threading.Condition()
        state = {"signalled": 0, "released": False}
        outcome = [None] * N_CONNS

        def sender(c):
            try:
                base = c * per_conn
                lines = [b"k%d:1|c\n" % ((base + i) % N_KEYS) for i in range(per_conn)]
                chunks = [b"".join(lines[j * CHUNK_LINES:(j + 1) * CHUNK_LINES])
                          for j in range(n_chunks)]
                with socket.create_connection((LOOPBACK, d.port), timeout=30) as s:
                    for j, chunk in enumerate(chunks):
                        gate = j * N_RELOADS // n_chunks
                        with cond:
                            cond.wait_for(lambda: state["released"] or state["signalled"] >= gate,
                                          timeout=60)
                        s.sendall(chunk)
                        time.sleep(0.005)
                    s.shutdown(socket.SHUT_WR)
                    s.settimeout(30)
                    while s.recv(4096):
                        pass
                outcome[c] = "ok"
            except Exception as e:  # reported below
                outcome[c] = repr(e)

        for c in range(N_CONNS):
            t = threading.Thread(target=sender, args=(c,), daemon=True)
            t.start()
            senders.append(t)

        t0 = time.monotonic()
        timeline = []
        broken_seen = []
        for r in range(N_RELOADS):
            good = r % 2 == 0
            if good:
                text = config_lua(d.port, cap.port, GOOD[(r // 2 + 1) % len(GOOD)])
                what, pattern = "good #%d" % (r // 2 + 1), r"reload applied"
            else:
                kind = BROKEN[(r // 2) % len(BROKEN)]
                text = config_lua(d.port, cap.port, kind[2], pre=kind[1])
                what, pattern = "broken: " + kind[0], r"reload failed"
                broken_seen.append(kind)
            before = d.count(pattern)
            d.write_config(text)
            with cond:
                state["signalled"] = r + 1
                cond.notify_all()
            start = time.monotonic()
            d.hup()
            # One reload at a time: SIGHUPs that arrive during a reload
            # collapse into one, and this scenario counts every reload.
            done = d.wait_count(pattern, before + 1, timeout=20)
            timeline.append("reload %2d (%s): %s in %.2f s" % (
                r + 1, what, "done" if done else "NO OUTCOME", time.monotonic() - start))
            if not done or not d.alive():
                break
        with cond:
            state["released"] = True
            cond.notify_all()
        for t in senders:
            t.join(60)
        elapsed = time.monotonic() - t0
        res.note("20 reloads and %d lines in %.1f s" % (N_LINES, elapsed))
        res.check("%s: every reload finished (one at a time)" % label,
                  len(timeline) == N_RELOADS and all("NO OUTCOME" not in x for x in timeline),
                  "\n".join(timeline) + "\n" + d.logs())
        res.check("%s: every sender connection delivered and saw the daemon close" % label,
                  outcome == ["ok"] * N_CONNS, "sender outcomes: %r" % (outcome,))
        res.check("%s: daemon alive after the reloads" % label, d.alive(), d.logs())

        rc = finish_daemon(res, label, d)
        cap.wait_quiet(timeout=10)
        lines = cap.lines()
        counts = sums(lines, "stats.counters.k")
        per_key = {"k%d" % i: counts.get("stats.counters.k%d.count" % i, 0.0) for i in range(N_KEYS)}
        total = sum(per_key.values())
        wrong = {k: v for k, v in per_key.items() if v != N_LINES // N_KEYS}
        res.check("%s: counts flushed = counts sent (%d)" % (label, N_LINES), total == N_LINES,
                  "flushed total %r (%+d); keys off their %d: %s\nexit code %r\n%s" % (
                      total, total - N_LINES, N_LINES // N_KEYS,
                      dict(list(sorted(wrong.items()))[:20]), rc, d.logs(3000)))
        other = sorted(n for n in counts if not re.match(r"^stats\.counters\.k\d+\.(count|rate)$", n))
        res.check("%s: no k* key flushed under another name" % label, not other, "%r" % other[:20])

        st = sums(lines, STATS)
        ok, failed = st.get(STATS + "reloads.ok"), st.get(STATS + "reloads.failed")
        per_flush = [(ln.flush, ln.name.rsplit(".", 1)[1], ln.value) for ln in lines
                     if ln.name in (STATS + "reloads.ok", STATS + "reloads.failed")
                     and ln.value not in ("0", None)]
        res.check("%s: reloads.ok self-metric sums to 10" % label, ok == 10,
                  "sum %r; non-zero values (flush, metric, value): %r" % (ok, per_flush))
        res.check("%s: reloads.failed self-metric sums to 10" % label, failed == 10,
                  "sum %r; non-zero values (flush, metric, value): %r" % (failed, per_flush))
        dropped = st.get(STATS + "sink.carbon.dropped")
        res.check("%s: sink.carbon.dropped is 0" % label, dropped == 0, "sum %r" % dropped)
        res.check("%s: one graphite connection through all reloads" % label,
                  cap.connections_seen() == 1, "capture accepted %d connections"
                  % cap.connections_seen())

        failures = d.log_lines(r"reload failed")
        applied = d.log_lines(r"reload applied")
        res.check("%s: log has 10 'reload failed' and 10 'reload applied' lines" % label,
                  len(failures) == 10 and len(applied) == 10,
                  "%d failed, %d applied:\n%s" % (len(failures), len(applied), "\n".join(failures)))
        for what, _, _, rx in BROKEN:
            hits = [f for f in failures if re.search(rx, f)]
            res.check("%s: the log names the reason for %s" % (label, what), bool(hits),
                      "no 'reload failed' line matches /%s/:\n%s" % (rx, "\n".join(failures)))
    finally:
        d.stop()
        cap.close()


# ---------------------------------------------------------------------------
# 2. a sink kept over reloads; a changed sink reconnects, the old one drains

SINK_ROUTES = [
    '',
    'routes = { route.prefix "p2." :to "carbon", route.default() :to "carbon" },',
    'routes = { route.glob "p2.*" :to "carbon", route.prefix "x" :drop() , route.default() :to "carbon" },',
    'route = function(m) return { sinks = { "carbon" } } end,',
    'routes = { route.default() :to "carbon" },',
]


def counter_sum(listener, key):
    return sum(listener.values("stats.counters.%s.count" % key))


def scenario_sink_kept(res, workdir):
    label = "sink_kept"
    a = LineListener()
    listeners = [a]
    d = Daemon("sy-sink", workdir)

    def cfg(port, v):
        return config_lua(d.port, port, SINK_ROUTES[v] + "\n  deleteIdleStats = true,")

    try:
        if not res.check("%s: switchyard starts" % label, d.start(cfg(a.port, 0)), d.logs()):
            return
        a.wait(lambda l: l.accepted >= 1, 5)
        for v in (1, 2, 3):
            send_lines(d.port, b"p2.a:1|c\n" * 100)
            d.write_config(cfg(a.port, v))
            d.hup()
            d.wait_count(r"reload applied", v, 10)
            time.sleep(0.3)
        a.wait(lambda l: counter_sum(l, "p2.a") >= 300, 5)
        res.check("%s: 3 reloads applied" % label, d.count(r"reload applied") == 3, d.logs())
        res.check("%s: every p2.a sample arrived across the reloads" % label,
                  counter_sum(a, "p2.a") == 300, "sum %r\n%s" % (counter_sum(a, "p2.a"), d.logs()))
        res.check("%s: one connection across reloads that keep the sink" % label,
                  a.accepted == 1 and d.count(r"sink 'carbon': connected to") == 1
                  and d.count(r"\(re\)opened") == 0,
                  "listener accepted %d connections; log:\n%s" % (a.accepted, d.logs()))

        # Take the old port down right after a flush, so nothing is in flight.
        n = len(a.lines())
        a.wait(lambda l: len(l.lines()) > n, 3)
        time.sleep(0.1)
        a.close()
        d.wait_count(r"connection to .* lost", 1, 5)
        send_lines(d.port, b"p2.q:1|c\n" * 50)
        time.sleep(3 * FLUSH_MS / 1000.0)   # flushed into the old sink's queue

        b = LineListener()
        listeners.append(b)
        d.write_config(cfg(b.port, 4))
        d.hup()
        applied = d.wait_count(r"reload applied", 4, 10)
        res.check("%s: the port-changing reload is applied" % label, applied, d.logs())
        res.check("%s: the changed sink is reopened" % label,
                  d.wait_count(r"sink 'carbon' \(re\)opened", 1, 5), d.logs())
        send_lines(d.port, b"p2.b:1|c\n" * 70)
        b.wait(lambda l: counter_sum(l, "p2.b") >= 70, 5)
        res.check("%s: after the reload, metrics go to the new port" % label,
                  b.accepted == 1 and counter_sum(b, "p2.b") == 70,
                  "new listener: %d connections, p2.b sum %r\n%s"
                  % (b.accepted, counter_sum(b, "p2.b"), d.logs()))

        # The old port answers again: the retired sink delivers its queue there.
        a2 = LineListener(a.port)
        listeners.append(a2)
        a2.wait(lambda l: counter_sum(l, "p2.q") >= 50, 8)
        q_old, q_new = counter_sum(a2, "p2.q"), counter_sum(b, "p2.q")
        res.check("%s: the old sink's queue is drained to the old port" % label,
                  q_old == 50 and q_new == 0,
                  "p2.q: %r at the old port, %r at the new one (want 50, 0); old port "
                  "accepted %d connections\n%s" % (q_old, q_new, a2.accepted, d.logs()))
        closed = a2.wait(lambda l: l.accepted >= 1 and l.open_connections() == 0, 5)
        res.check("%s: the drained old sink then closes its connection" % label, closed,
                  "old port: %d accepted, %d open" % (a2.accepted, a2.open_connections()))
        res.check("%s: no 'closed by a reload with ... still queued' warning" % label,
                  d.count(r"still queued") == 0, d.logs())
        res.check("%s: the new port kept one connection" % label, b.accepted == 1,
                  "%d connections" % b.accepted)
        finish_daemon(res, label, d)
    finally:
        d.stop()
        for listener in listeners:
            listener.close()


# ---------------------------------------------------------------------------
# 3. last config wins under a burst of SIGHUPs

def probe_config(d, port, v):
    return config_lua(d.port, port, (
        'routes = { route.prefix "probe" :rename "probe_v%d" :to "carbon", '
        'route.default() :to "carbon" },\n'
        '  checks = { { "probe", name = "probe_v%d" } },\n'
        '  deleteIdleStats = true,') % (v, v))


def scenario_last_config_wins(res, workdir):
    label = "last_config_wins"
    cap = GraphiteCapture()
    d = Daemon("sy-burst", workdir)
    try:
        if not res.check("%s: switchyard starts" % label, d.start(probe_config(d, cap.port, 0)),
                         d.logs()):
            return
        # A key routed (and its decision cached) before the burst, too.
        send_lines(d.port, b"probe:1|c\n" * 5)
        wait_until(lambda: sums(cap.lines(), "stats.counters.probe").get(
            "stats.counters.probe_v0.count", 0) >= 5, 5)
        for v in range(1, 11):
            d.write_config(probe_config(d, cap.port, v))
            d.hup()

        def settled():
            started = d.count(r" reloading /")
            ended = (d.count(r"reload applied") + d.count(r"newer config replaces")
                     + d.count(r"reload failed"))
            return started >= 1 and started == ended

        ok = wait_until(settled, 15)
        time.sleep(0.5)   # a SIGHUP still pending would show by now
        ok = ok and wait_until(settled, 15)
        res.note("10 SIGHUPs: %d reloads ran, %d applied, %d superseded before being applied"
                 % (d.count(r" reloading /"), d.count(r"reload applied"),
                    d.count(r"newer config replaces")))
        res.check("%s: the burst of reloads settles" % label, ok, d.logs())
        res.check("%s: no reload failed" % label, d.count(r"reload failed") == 0, d.logs())
        send_lines(d.port, b"probe:1|c\n" * 20)
        wait_until(lambda: sums(cap.lines(), "stats.counters.probe").get(
            "stats.counters.probe_v10.count", 0) >= 20, 5)
        finish_daemon(res, label, d)
        cap.wait_quiet(timeout=5)
        counts = {n: v for n, v in sums(cap.lines(), "stats.counters.probe").items()
                  if n.endswith(".count")}
        want = {"stats.counters.probe_v0.count": 5, "stats.counters.probe_v10.count": 20}
        res.check("%s: the probe is flushed as probe_v10 (probe_v0 before the burst)" % label,
                  all(counts.get(n) == v for n, v in want.items())
                  and all(v == 0 for n, v in counts.items() if n not in want),
                  "probe counts by name: %r\n%s" % (counts, d.logs()))
    finally:
        d.stop()
        cap.close()


# ---------------------------------------------------------------------------
# 4. Lua errors at run time

FAULTY_ROUTE = r'''
  luaTimeout = 50,
  luaMemoryLimit = 32 * 1024 * 1024,
  deleteIdleStats = true,
  route = function(m)
    if m.name:sub(1, 4) == "boom" then error("deliberate route error for " .. m.name) end
    if m.name:sub(1, 4) == "spin" then while true do end end
    if m.name:sub(1, 3) == "hog" then
      local t, i = {}, 0
      -- big pieces: the memory limit, not the time limit, stops it
      while true do i = i + 1; t[i] = string.rep("h", 65536) .. i end
    end
    return { sinks = { "carbon" } }
  end,'''

N_BOOM = 1000


def scenario_lua_runtime_errors(res, workdir):
    label = "lua_runtime_errors"
    cap = GraphiteCapture()
    d = Daemon("sy-luaerr", workdir)
    try:
        if not res.check("%s: switchyard starts" % label,
                         d.start(config_lua(d.port, cap.port, FAULTY_ROUTE)), d.logs()):
            return
        # The slow failures first, so the rate limit still lets them be logged.
        t0 = time.monotonic()
        send_lines(d.port, b"ok.a:1|c\n" * 10 + b"spin1:1|c\n" * 3 + b"hog1:1|c\n" * 3
                   + b"ok.a:1|c\n" * 10)

        def arrived(names):
            got = sums(cap.lines(), "stats.counters.")
            return all(got.get("stats.counters.%s.count" % n, 0) > 0 for n in names)

        came = wait_until(lambda: arrived(["ok.a", "spin1", "hog1"]), 10)
        res.note("spin1/hog1/ok.a flushed %.2f s after sending" % (time.monotonic() - t0))
        res.check("%s: normal, spinning and hogging keys all arrive" % label, came,
                  "%r\n%s" % (sums(cap.lines(), "stats.counters."), d.logs()))
        res.check("%s: daemon alive after an endless loop and a memory hog" % label, d.alive(),
                  d.logs())
        res.check("%s: log names the timeout" % label, d.count(r"ran too long") >= 1, d.logs())
        res.check("%s: log names the memory limit" % label, d.count(r"too much memory") >= 1,
                  d.logs())

        booms = b"".join(b"boom%d:1|c\n" % i for i in range(N_BOOM))
        send_lines(d.port, booms + b"ok.b:1|c\n" * 10)
        names = ["boom%d" % i for i in range(N_BOOM)] + ["ok.b"]
        wait_until(lambda: arrived(names), 10)
        res.check("%s: daemon alive after %d failing route() calls" % (label, N_BOOM), d.alive(),
                  d.logs())
        finish_daemon(res, label, d)
        cap.wait_quiet(timeout=5)
        got = sums(cap.lines(), "stats.counters.")

        def c(n):
            return got.get("stats.counters.%s.count" % n, 0)

        res.check("%s: normal keys arrive (ok.a 20, ok.b 10)" % label,
                  c("ok.a") == 20 and c("ok.b") == 10, "ok.a %r, ok.b %r" % (c("ok.a"), c("ok.b")))
        res.check("%s: faulty keys take the default route under their own names" % label,
                  c("spin1") == 3 and c("hog1") == 3 and all(c("boom%d" % i) == 1 for i in range(N_BOOM)),
                  "spin1 %r, hog1 %r, boom keys with count 1: %d of %d" % (
                      c("spin1"), c("hog1"), sum(1 for i in range(N_BOOM) if c("boom%d" % i) == 1),
                      N_BOOM))
        errors = sums(cap.lines(), STATS).get(STATS + "route.errors", 0)
        res.check("%s: route.errors self-metric > 0" % label, errors > 0, "sum %r" % errors)
        res.note("route.errors summed: %r (%d faulty keys)" % (errors, N_BOOM + 2))
        failed_lines = d.log_lines(r"Lua route failed")
        res.note("%d 'Lua route failed' lines in the log" % len(failed_lines))
        res.check("%s: the log is rate-limited (<= 10 'Lua route failed' lines for %d errors)"
                  % (label, N_BOOM + 2), 1 <= len(failed_lines) <= 10,
                  "%d lines:\n%s" % (len(failed_lines), "\n".join(failed_lines[:30])))
    finally:
        d.stop()
        cap.close()


# ---------------------------------------------------------------------------
# 5. token auth

N_REFUSED = 200


def scenario_token_auth(res, workdir):
    label = "token_auth"
    cap = GraphiteCapture()
    d = Daemon("sy-auth", workdir)
    try:
        body = 'auth = { tokens = { good = "tenant" } },\n  deleteIdleStats = true,'
        if not res.check("%s: switchyard starts" % label,
                         d.start(config_lua(d.port, cap.port, body, listen_auth=True)), d.logs()):
            return
        payload = b""
        for i in range(N_REFUSED):
            payload += b"bad.x:1|c\nx:1|c\n"
            if i % 40 == 0:
                payload += b"good.x:1|c\n"
        n_good = len(range(0, N_REFUSED, 40))
        send_lines(d.port, payload)
        wait_until(lambda: sums(cap.lines(), "stats.counters.tenant.x").get(
            "stats.counters.tenant.x.count", 0) >= n_good, 5)
        res.check("%s: daemon alive" % label, d.alive(), d.logs())
        finish_daemon(res, label, d)
        cap.wait_quiet(timeout=5)
        lines = cap.lines()
        got = sums(lines, "stats.counters.")
        res.check("%s: good.x arrives as tenant.x" % label,
                  got.get("stats.counters.tenant.x.count") == n_good,
                  "tenant.x count %r (want %d)" % (got.get("stats.counters.tenant.x.count"), n_good))
        leaked = sorted(set(ln.name for ln in lines
                            if re.search(r"(^|\.)(bad\.x|good\.x|x)\.(count|rate)$", ln.name)
                            and "tenant.x" not in ln.name))
        res.check("%s: refused lines never reach the output" % label, not leaked, "%r" % leaked)
        refused = d.log_lines(r"refused token")
        res.check("%s: refusals are logged, rate-limited (1..10 lines for %d refused)"
                  % (label, 2 * N_REFUSED), 1 <= len(refused) <= 10,
                  "%d lines:\n%s" % (len(refused), "\n".join(refused[:20])))
        st = sums(lines, STATS)
        counters = {n: v for n, v in st.items()
                    if re.search(r"auth|refused|token", n) and v > 0}
        res.check("%s: refused lines are counted in a self-metric" % label,
                  any(v >= 2 * N_REFUSED for v in counters.values()),
                  "no %s* self-metric counts the %d refused lines (found %r); the engine keeps "
                  "listener auth_rejected counts but the output never reports them"
                  % (STATS, 2 * N_REFUSED, counters))
    finally:
        d.stop()
        cap.close()


# ---------------------------------------------------------------------------
# 6. many live keys, a steady UDP stream, and a reload (issue 22)

RELOAD_KEYS = int(os.environ.get("SY_RELOAD_KEYS", "200000"))
RULES_LUA = os.path.join(REPO_DIR, "tests", "bench", "rules.lua")


def many_keys_config(udp_port, tcp_port, sink_port, rules, variant):
    """The bench's 20 rules; `variant` 'same' leaves them be, 'all' sends
    every key through a rule that renames it (every decision changes)."""
    rules_src = open(RULES_LUA).read().rstrip()
    if variant == "all":
        rules_src = rules_src.replace('  route.default()                            :to "carbon",',
                                      '  route.prefix "many." :addprefix "re." :to "carbon",\n'
                                      '  route.default() :to "carbon",')
    head = "local routes = (function()\n%s\nend)()\n" % rules_src if rules else ""
    return """-- written by tests/integration/test_reload.py (many_keys)
%(head)s
return {
  listen = { "udp://%(host)s:%(udp)d", "tcp://%(host)s:%(tcp)d" },
  flushInterval = 1000,
  flush_counts = true,
  ringSize = 1024 * 1024,
  graphite = { legacyNamespace = false },
  shutdownTimeout = 20000,
  sinks = { carbon = { plugin = "graphite", host = "%(host)s", port = %(sink)d,
                       maxQueueBytes = 512 * 1024 * 1024 } },
  %(routes)s
}
""" % {"head": head, "host": LOOPBACK, "udp": udp_port, "tcp": tcp_port, "sink": sink_port,
       "routes": "routes = routes," if rules else ""}


def scenario_many_keys(res, workdir):
    """RELOAD_KEYS live counter keys (200k; SY_RELOAD_KEYS=1000000 for the
    full case), a steady UDP stream over all of them, 20 metrics per
    datagram, through the bench's 20 rules and a 1 MiB ring; SIGHUP in the
    middle, once with the same rules and once with rules that rename every
    key.  Every metric sent reaches the sink (sums exact), nothing is
    dropped at the ring, and the engine's longest slice on the reload is
    reported."""
    label = "many_keys"
    n = RELOAD_KEYS
    rate = 200000
    if "build-san" in switchyard_binary():
        # ASan+UBSan: the same reload, scaled to what that build sustains
        n, rate = min(n, 50000), 40000
    loadgen = bench_tool("loadgen")
    for variant in ("same", "all"):
        lab = "%s (%d keys, reload: %s)" % (label, n, "same rules" if variant == "same"
                                             else "every decision changes")
        sink = SumSink(workdir)
        d = Daemon("sy-many-%s" % variant, workdir)
        udp_port = free_port("udp")
        try:
            if not res.check("%s: the sum sink starts" % lab, sink.port is not None,
                             sink.proc.logs()):
                return
            if not res.check("%s: switchyard starts" % lab,
                             d.start(many_keys_config(udp_port, d.port, sink.port, True, "same")),
                             d.logs()):
                return
            # every key once, so that all are live before the reload: over
            # TCP, whose backpressure waits for the first decisions (a cold
            # start over UDP at this rate overflows a 1 MiB ring)
            keys = ["--keys", str(n), "--key-prefix", "many", "--per", "20"]
            gen = [loadgen, "--udp", "%s:%d" % (LOOPBACK, udp_port)] + keys
            first = subprocess.run([loadgen, "--tcp", "%s:%d" % (LOOPBACK, d.port)] + keys +
                                   ["--count", str(n)], stdout=subprocess.PIPE, timeout=120)
            first_sent = json.loads(first.stdout.decode().strip().splitlines()[-1])["sent_metrics"]
            res.check("%s: the keys are live (%d sent)" % (lab, first_sent),
                      wait_until(lambda: sink.total("many") + sink.total("re") >= first_sent, 30),
                      "sink has %d" % sink.total("many"))
            # a steady stream, and a reload a second into it
            steady = subprocess.Popen(gen + ["--rate", str(rate), "--duration", "4"],
                                      stdout=subprocess.PIPE)
            time.sleep(1.0)
            t_hup = time.monotonic()
            if variant == "all":
                # a first reload (the same rules) replaced by a second one
                # while it is being prepared: the second one wins
                d.write_config(many_keys_config(udp_port, d.port, sink.port, True, "same"))
                d.hup()
                preparing = d.wait_count(r"reload: asking the new config", 1, 10)
                d.write_config(many_keys_config(udp_port, d.port, sink.port, True, "all"))
                d.hup()
                res.check("%s: a second reload replaces the one being prepared" % lab,
                          preparing and d.wait_count(r"a newer config replaces the one being "
                                                     r"prepared", 1, 10), d.logs())
            else:
                d.write_config(many_keys_config(udp_port, d.port, sink.port, True, variant))
                d.hup()
                # keys first seen while the reload is prepared: decided by
                # the old rules now, by the new ones when next seen
                if d.wait_count(r"reload: asking the new config", 1, 10):
                    send_lines(d.port, b"".join(b"fresh.k%d:1|c\n" % i for i in range(1000)))
            out, _ = steady.communicate(timeout=60)
            sent = first_sent + json.loads(out.decode().strip().splitlines()[-1])["sent_metrics"]
            applied = d.wait_count(r"reload applied", 1, 60)
            res.check("%s: exactly one reload is applied" % lab, d.count(r"reload applied") == 1,
                      d.logs())
            res.note("%s: reload applied %.1f s after SIGHUP; %s" % (
                lab, time.monotonic() - t_hup,
                "; ".join(line.split("] ", 1)[-1] for line in d.log_lines(r"reload: .*decided"))))
            res.check("%s: the reload is applied" % lab, applied, d.logs())
            if variant == "same":
                m = re.search(r"about (\d+) keys first seen meanwhile", d.log())
                res.check("%s: the log counts the 1,000 keys first seen while it was prepared "
                          "(%s)" % (lab, m and m.group(1)), m is not None and int(m.group(1)) >= 1000,
                          d.logs())
                res.check("%s: ... and each of them reaches the sink once" % lab,
                          wait_until(lambda: sink.total("fresh") == 1000, 15),
                          "fresh.* %d" % sink.total("fresh"))
            # every key once more, now under the new rules
            after = subprocess.run([loadgen, "--tcp", "%s:%d" % (LOOPBACK, d.port)] + keys +
                                   ["--count", str(n)], stdout=subprocess.PIPE, timeout=120)
            sent += json.loads(after.stdout.decode().strip().splitlines()[-1])["sent_metrics"]
            got = wait_until(lambda: sink.total("many") + sink.total("re") >= sent, 30) and \
                sink.total("many") + sink.total("re")
            got = sink.total("many") + sink.total("re")
            st = sink.stats()
            watch = st.get("watch", {})
            ring = sum(v[1] for k, v in watch.items() if ".switchyard.listener." in k and
                       k.endswith(".dropped"))
            res.check("%s: every metric reached the sink (%d of %d)" % (lab, got, sent),
                      got == sent, "lost %d; ring drops %r" % (sent - got, ring))
            res.check("%s: nothing was dropped at the ring" % lab, ring == 0, "ring drops %r" % ring)
            if variant == "all":
                res.check("%s: the new rules renamed every key after the reload" % lab,
                          sink.total("re") >= n, "re.* %d" % sink.total("re"))
            slice_s = None
            m = re.search(r"the engine's longest pause for it (\d+) us", d.log())
            if m:
                slice_s = int(m.group(1)) / 1e6
            res.note("%s: the engine's longest pause for the reload %s ms" % (
                lab, "?" if slice_s is None else "%.2f" % (slice_s * 1000)))
            res.check("%s: the reload was prepared while the old rules routed" % lab,
                      slice_s is not None, d.logs())
            rc = d.stop()
            res.check("%s: switchyard exits 0 on SIGTERM" % lab, rc == 0, d.logs())
        finally:
            d.stop()
            sink.stop()


THREAD_KEYS = 20000


def thread_config(tcp_port, sink_port, tids_path, tag, slow):
    """th.* through a rule whose rename function notes, in tids_path, the
    thread it runs on ("TAG TID" a call); `slow` makes each call spin (about
    0.1 ms, interpreted: the routing state runs with the JIT off) and
    renames th.* to new.th.*.  No rule looks at the sender, so each key has
    one decision, kept while the key lives."""
    return """-- written by tests/integration/test_reload.py (reload_thread)
local route = require "switchyard.route"
local ffi = require "ffi"
ffi.cdef "int gettid(void);"
local out = assert(io.open(%(path)r, "a"))
out:setvbuf("line")
return {
  listen = { "tcp://%(host)s:%(tcp)d" },
  flushInterval = 1000,
  flush_counts = true,
  graphite = { legacyNamespace = false },
  sinks = { carbon = { plugin = "graphite", host = "%(host)s", port = %(sink)d } },
  routes = {
    route.prefix "th." :rename(function(m)
      out:write(%(tag)r, " ", tostring(ffi.C.gettid()), "\\n")
      if not %(slow)s then return m.name end
      local x = 0
      for i = 1, 20000 do x = x + i end
      return "new." .. m.name
    end) :to "carbon",
    route.default() :to "carbon",
  },
}
""" % {"path": tids_path, "host": LOOPBACK, "tcp": tcp_port, "sink": sink_port, "tag": tag,
       "slow": "true" if slow else "false"}


def thread_cpu_s(pid, tid):
    """utime + stime of one thread, in seconds (None once it is gone)."""
    try:
        with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def scenario_reload_thread(res, workdir):
    """The new config's rules run off the engine thread while a reload is
    prepared.  THREAD_KEYS keys are made live under a route function that
    writes the id of the thread it runs on (the engine's, at a cold start);
    a reload then brings a route function that does the same and spins
    about 0.1 ms a call.  Its calls for the live keys must come from another
    thread, the engine's CPU meanwhile must stay a small part of the
    reload's time, and the answers made there must be the ones in force
    after the swap."""
    label = "reload_thread"
    n = THREAD_KEYS
    tids = os.path.join(workdir, "reload-thread-tids.txt")
    sink = SumSink(workdir)
    d = Daemon("sy-thread", workdir)
    try:
        if not res.check("%s: switchyard starts" % label,
                         d.start(thread_config(d.port, sink.port, tids, "old", False)), d.logs()):
            return
        keys = b"".join(b"th.k%d:1|c\n" % i for i in range(n))
        send_lines(d.port, keys)
        res.check("%s: the %d keys are live" % (label, n),
                  wait_until(lambda: sink.total("th") >= n, 30), "th.* %d" % sink.total("th"))
        with open(tids) as f:
            old = {}
            for line in f:
                tag, tid = line.split()
                if tag == "old":
                    old[int(tid)] = old.get(int(tid), 0) + 1
        engine = max(old, key=old.get) if old else None
        res.check("%s: the running rules were asked about each key on one thread, the engine's "
                  "(%r)" % (label, old), engine is not None and old[engine] >= n, d.logs())
        if engine is None:
            return
        cpu0 = thread_cpu_s(d.pid, engine)
        t0 = time.monotonic()
        d.write_config(thread_config(d.port, sink.port, tids, "new", True))
        d.hup()
        applied = d.wait_count(r"reload applied", 1, 120)
        wall = time.monotonic() - t0
        cpu1 = thread_cpu_s(d.pid, engine)
        res.check("%s: the reload is applied" % label, applied, d.logs())
        new = {}
        with open(tids) as f:
            for line in f:
                tag, tid = line.split()
                if tag == "new":
                    new[int(tid)] = new.get(int(tid), 0) + 1
        res.note("%s: reload applied in %.1f s; the new rules' calls by thread %r (the engine: %d); "
                 "the engine's CPU meanwhile %.2f s; %s" % (
                     label, wall, new, engine, (cpu1 or 0) - (cpu0 or 0),
                     "; ".join(line.split("] ", 1)[-1] for line in d.log_lines(r"reload: .*decided"))))
        res.check("%s: the new rules answered for the live keys off the engine thread (%d of %d "
                  "calls on it)" % (label, new.get(engine, 0), sum(new.values())),
                  sum(new.values()) >= n and new.get(engine, 0) < n // 10, "calls by thread %r" % new)
        res.check("%s: the engine's CPU while it was prepared, %.2f s, is under a quarter of the "
                  "%.1f s it took" % (label, (cpu1 or 0) - (cpu0 or 0), wall),
                  cpu0 is not None and cpu1 is not None and cpu1 - cpu0 < wall / 4, d.logs())
        # each key once more: the answers prepared on that thread are in force
        send_lines(d.port, keys)
        res.check("%s: after the swap every key takes the new rules' answer (new.th.*)" % label,
                  wait_until(lambda: sink.total("new") >= n, 30),
                  "new.* %d, th.* %d" % (sink.total("new"), sink.total("th")))
        new = {}
        with open(tids) as f:
            for line in f:
                tag, tid = line.split()
                if tag == "new":
                    new[int(tid)] = new.get(int(tid), 0) + 1
        res.check("%s: ... made beforehand, not asked again on the engine (%r)" % (label, new),
                  new.get(engine, 0) < n // 10, "calls by thread %r" % new)
        finish_daemon(res, label, d)
    finally:
        d.stop()
        sink.stop()


SCENARIOS = [
    ("reload_under_load", scenario_reload_under_load),
    ("sink_kept", scenario_sink_kept),
    ("last_config_wins", scenario_last_config_wins),
    ("lua_runtime_errors", scenario_lua_runtime_errors),
    ("token_auth", scenario_token_auth),
    ("many_keys", scenario_many_keys),
    ("reload_thread", scenario_reload_thread),
]


def main():
    return scenarios.run(TEST_NAME, SCENARIOS, "sy-reload-")


if __name__ == "__main__":
    sys.exit(main())
