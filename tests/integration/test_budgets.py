#!/usr/bin/env python3
"""Integration test: series budgets (`limits`) against the real daemon.

One switchyard with UDP and an auth TCP listener (tokens k1 -> tenant t1,
k2 -> tenant t2), a console sink written to a file, /metrics, and
limits = { tenant t1: 1000 keys, prefix "debug.": 100 keys }.

   1. flood: tenant t1 sends a million new keys over TCP while tenant t2
      sends 200 known keys over another connection at the same time: t2's
      counters arrive exact at the sink; t1 gets exactly 1000 keys, the
      rest are dropped and counted (switchyard_budget_dropped_total and
      the self-metric agree), the log says so a bounded number of times,
      an admitted t1 key keeps flowing, and 300,000 more new keys leave
      RSS flat;
   2. prefix: 150 new debug.* keys over UDP: 100 admitted, 50 dropped;
   3. reload: t1's budget raised to 1500, debug.'s lowered to 60: the
      counts carry over (1000 and 100: nothing is evicted), 1000 more new
      t1 keys give exactly 500 more, admitted debug.* keys still flow and
      a new one is refused;
   4. per sender: with rules that look at the sender, a key counts once
      per sender (its routing entries), and the charges come back when the
      entries expire after an idle interval;
   5. check: --check refuses an unknown field, maxKeys = 0, a listener that
      does not exist, two kinds in one entry.

Usage: /usr/bin/python3 tests/integration/test_budgets.py [SCENARIO ...]
"""
import os
import socket
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib import scenarios  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402
from test_badinput import Daemon, finish, start, tcp_send, udp_send  # noqa: E402

TEST_NAME = "test_budgets"
N_FLOOD = 1000000
T1_MAX = 1000
DEBUG_MAX = 100

AUTH = '  auth = { tokens = { k1 = "t1", k2 = "t2" } },\n'
ROUTES = ('  routes = { route.prefix "t2.ren." :rename(function(m) return "t2.renamed." .. '
          'm.name:sub(8) end) :to "c", route.default() :to "c" },\n')


def limits(t1, debug):
    return ('  limits = { { tenant = "t1", maxKeys = %d }, { prefix = "debug.", maxKeys = %d } },\n'
            % (t1, debug))


def budget(d, name, label):
    return d.metric('switchyard_budget_%s{budget="%s",kind="%s"}'
                    % (name, label, label.split("=")[0]))


def scenario_budgets(res, workdir):
    label = "budgets"
    d = Daemon(workdir, "sy-budgets", {"flushInterval": 1000, "ringSize": 8 << 20},
               tcp_opts={"auth": True}, lua_body=AUTH + ROUTES + limits(T1_MAX, DEBUG_MAX))
    try:
        if not start(res, label, d):
            return
        time.sleep(0.3)
        rss0 = d.status_kb("VmRSS")
        # -- 1. the flood, and tenant t2 beside it ----------------------------
        flood = b"".join(b"k1.flood.%d:1|c\n" % i for i in range(N_FLOOD))
        rounds = 50
        t2_payload = b"".join(b"k2.app.%d:%d|c\n" % (i, i % 7 + 1) for i in range(200))
        t2_payload += b"".join(b"k2.ren.%d:1|c\n" % i for i in range(20))
        outcome = {}

        def t1():
            outcome["t1"] = tcp_send(d.port, flood, timeout=120)

        def t2():
            ok = True
            for _ in range(rounds):
                ok = tcp_send(d.port, t2_payload, timeout=60) and ok
                time.sleep(0.02)
            outcome["t2"] = ok

        threads = [threading.Thread(target=t1), threading.Thread(target=t2)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        peak = 0
        while any(t.is_alive() for t in threads):
            peak = max(peak, d.status_kb("VmRSS") or 0)
            time.sleep(0.05)
        for t in threads:
            t.join()
        res.check("%s: a million new t1 keys and %d rounds of t2 sent" % (label, rounds),
                  outcome.get("t1") and outcome.get("t2"), repr(outcome))
        dropped_label = "tenant=t1"
        done = wait_until(lambda: (budget(d, "dropped_total", dropped_label) or 0) >=
                          N_FLOOD - T1_MAX, 30, step=0.3)
        res.note("flood sent and taken in %.1f s" % (time.monotonic() - t0))
        d.wait_flushes(2, 15)
        keys = budget(d, "keys", "tenant=t1")
        dropped = budget(d, "dropped_total", "tenant=t1")
        admitted = len([n for n in d.names("stats.counters.t1.flood.") if n.endswith(".count")])
        res.check("%s: tenant t1 holds exactly its %d keys" % (label, T1_MAX),
                  keys == T1_MAX and admitted == T1_MAX, "budget keys %r, flushed %d" % (keys, admitted))
        res.check("%s: every other new t1 key is dropped and counted: %d" % (label, N_FLOOD - T1_MAX),
                  done and dropped == N_FLOOD - T1_MAX, "dropped %r" % dropped)
        selfd = d.self_total("budget.tenant_t1.dropped")
        res.check("%s: the self-metric budget.tenant_t1.dropped agrees" % label,
                  selfd == dropped, "self %r, /metrics %r" % (selfd, dropped))
        want = {("t2.app.%d" % i): rounds * (i % 7 + 1) for i in range(200)}
        got = {k: d.counter(k) for k in want}
        bad = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
        res.check("%s: tenant t2's 200 counters arrive exact beside the flood" % label,
                  not bad, "wrong: %r" % dict(list(bad.items())[:5]))
        renamed = sum(d.counter("t2.renamed.%d" % i) for i in range(20))
        res.check("%s: t2's renamed keys arrive exact" % label, renamed == rounds * 20,
                  "%r" % renamed)
        res.check("%s: the full budget is logged, at a bounded rate" % label,
                  1 <= d.log_count(r"budget tenant=t1 is full") <= 5, d.logs())
        # an admitted key keeps flowing
        tcp_send(d.port, b"k1.flood.0:5|c\n")
        ok = wait_until(lambda: d.counter("t1.flood.0") >= 6, 10, step=0.2)
        res.check("%s: an admitted t1 key keeps flowing" % label, ok,
                  "t1.flood.0 %r" % d.counter("t1.flood.0"))
        # more new keys: refused, memory flat
        rss1 = d.status_kb("VmRSS")
        tcp_send(d.port, b"".join(b"k1.more.%d:1|c\n" % i for i in range(300000)), timeout=120)
        wait_until(lambda: (budget(d, "dropped_total", "tenant=t1") or 0) >= N_FLOOD - T1_MAX + 300000,
                   20, step=0.3)
        d.wait_flushes(2, 15)
        rss2 = d.status_kb("VmRSS")
        hwm = d.status_kb("VmHWM")
        res.note("RSS %.1f MiB at start, %.1f MiB peak during the flood, %.1f MiB after it, %.1f MiB "
                 "after 300000 more; VmHWM %.1f MiB" % (rss0 / 1024, peak / 1024, rss1 / 1024,
                                                        rss2 / 1024, hwm / 1024))
        res.check("%s: 300000 more new t1 keys all dropped" % label,
                  budget(d, "dropped_total", "tenant=t1") == N_FLOOD - T1_MAX + 300000 and
                  not d.names("stats.counters.t1.more."), d.logs())
        bound = 1024 if d.sanitized() else 200
        res.check("%s: memory bounded: VmHWM below %d MiB, refused keys add under 8 MiB"
                  % (label, bound), hwm < bound * 1024 and rss2 - rss1 < 8 * 1024,
                  "VmHWM %.1f MiB, RSS %.1f -> %.1f MiB" % (hwm / 1024, rss1 / 1024, rss2 / 1024))

        # -- 2. a prefix budget -----------------------------------------------
        udp_send(d.port, [b"debug.k%d:1|c" % i for i in range(150)])
        wait_until(lambda: (budget(d, "dropped_total", "prefix=debug.") or 0) >= 50, 10, step=0.2)
        res.check("%s: prefix debug.: 100 of 150 new keys admitted, 50 dropped" % label,
                  budget(d, "keys", "prefix=debug.") == DEBUG_MAX and
                  budget(d, "dropped_total", "prefix=debug.") == 50,
                  "keys %r dropped %r" % (budget(d, "keys", "prefix=debug."),
                                          budget(d, "dropped_total", "prefix=debug.")))

        # -- 3. reload: raise one budget, lower another ------------------------
        d.write_config(d.render("", AUTH + ROUTES + limits(1500, 60)))
        d.hup()
        ok = wait_until(lambda: budget(d, "max_keys", "tenant=t1") == 1500, 15, step=0.2)
        res.check("%s: reload: the new budgets are in force" % label,
                  ok and budget(d, "max_keys", "prefix=debug.") == 60, d.logs())
        res.check("%s: reload: counts carry over, a lowered budget evicts nothing" % label,
                  budget(d, "keys", "tenant=t1") == T1_MAX and
                  budget(d, "keys", "prefix=debug.") == DEBUG_MAX,
                  "t1 %r debug %r" % (budget(d, "keys", "tenant=t1"), budget(d, "keys", "prefix=debug.")))
        tcp_send(d.port, b"".join(b"k2.ren.%d:1|c\n" % i for i in range(20)) +
                 b"".join(b"k1.flood.%d:1|c\n" % i for i in range(1000000, 1001000)))
        wait_until(lambda: (budget(d, "keys", "tenant=t1") or 0) >= 1500, 10, step=0.2)
        d.wait_flushes(2, 10)
        res.check("%s: reload: 1000 new t1 keys give exactly 500 more (1500)" % label,
                  budget(d, "keys", "tenant=t1") == 1500 and
                  budget(d, "dropped_total", "tenant=t1") == N_FLOOD - T1_MAX + 300000 + 500,
                  "keys %r dropped %r" % (budget(d, "keys", "tenant=t1"),
                                          budget(d, "dropped_total", "tenant=t1")))
        before = d.counter("debug.k3")
        udp_send(d.port, [b"debug.k3:4|c", b"debug.new:1|c"])
        ok = wait_until(lambda: d.counter("debug.k3") >= before + 4, 10, step=0.2)
        d.wait_flushes(1, 10)
        res.check("%s: reload: an admitted debug. key still flows, a new one is dropped" % label,
                  ok and not d.names("stats.counters.debug.new") and
                  budget(d, "dropped_total", "prefix=debug.") == 51,
                  "debug.k3 %r, dropped %r" % (d.counter("debug.k3"),
                                               budget(d, "dropped_total", "prefix=debug.")))
        res.check("%s: the lowered budget's reload is logged" % label,
                  d.log_count(r"budget prefix=debug\. lowered to 60 keys") == 1, d.logs())
        finish(res, label, d)
    finally:
        d.stop()


def scenario_per_sender(res, workdir):
    """What a budget counts when the rules look at the sender: one routing
    entry per key, listener and sender, each charged; the charges are
    given back when the entries expire (a whole flush interval without a
    sample)."""
    label = "per_sender"
    routes = '  routes = { route.sender "127.0.0.9" :to "c", route.default() :to "c" },\n'
    d = Daemon(workdir, "sy-budgets-ps", {"flushInterval": 500},
               lua_body=routes + '  limits = { { prefix = "ps.", maxKeys = 5 } },\n')

    def send_from(host, payload):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            u.sendto(payload, ("127.0.0.1", d.port))

    try:
        if not start(res, label, d):
            return
        for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            send_from(host, b"ps.k:1|c")
        wait_until(lambda: budget(d, "keys", "prefix=ps.") == 3, 5, step=0.05)
        res.check("%s: one key from 3 senders takes 3 of the budget" % label,
                  budget(d, "keys", "prefix=ps.") == 3, "%r" % budget(d, "keys", "prefix=ps."))
        send_from("127.0.0.2", b"ps.a:1|c\nps.b:1|c\nps.c:1|c")
        wait_until(lambda: (budget(d, "dropped_total", "prefix=ps.") or 0) >= 1, 5, step=0.05)
        res.check("%s: 4 key names, 5 admitted (ps.k three times), ps.c refused" % label,
                  budget(d, "keys", "prefix=ps.") == 5 and budget(d, "dropped_total", "prefix=ps.") == 1,
                  "keys %r dropped %r" % (budget(d, "keys", "prefix=ps."), budget(d, "dropped_total", "prefix=ps.")))
        # idle: each routing entry expires after a whole interval without samples
        t0 = time.monotonic()
        ok = wait_until(lambda: budget(d, "keys", "prefix=ps.") == 0, 5, step=0.05)
        res.note("%s: charges given back %.2f s after the last sample (flushInterval 0.5 s)"
                 % (label, time.monotonic() - t0))
        res.check("%s: idle for an interval: every charge given back" % label, ok,
                  "%r" % budget(d, "keys", "prefix=ps."))
        send_from("127.0.0.2", b"ps.c:1|c")
        wait_until(lambda: budget(d, "keys", "prefix=ps.") == 1, 5, step=0.05)
        res.check("%s: then a key refused before is admitted" % label,
                  budget(d, "keys", "prefix=ps.") == 1 and budget(d, "dropped_total", "prefix=ps.") == 1,
                  "keys %r" % budget(d, "keys", "prefix=ps."))
        finish(res, label, d)
    finally:
        d.stop()


def scenario_check(res, workdir):
    label = "check"
    base = ('return { listen = { "udp://127.0.0.1:9" }, sinks = { c = { plugin = "console" } },\n'
            '  limits = { %s } }\n')
    cases = [
        ('{ tenant = "t1", maxKeys = 0 }', "limits.maxKeys: must be a positive integer"),
        ('{ tenant = "t1", maxkeys = 5 }', "limits.maxkeys: unknown option; did you mean maxKeys?"),
        ('{ listener = "udp://127.0.0.1:10", maxKeys = 5 }', "is not a listener"),
        ('{ tenant = "t1", prefix = "a.", maxKeys = 5 }', "names both tenant and prefix"),
        ('{ maxKeys = 5 }', "needs one of tenant, prefix or listener"),
        ('{ prefix = "a.", maxKeys = 5 }, { prefix = "a.", maxKeys = 6 }', "a second budget"),
    ]
    path = os.path.join(workdir, "limits.lua")
    for body, want in cases:
        with open(path, "w") as f:
            f.write(base % body)
        p = subprocess.run([switchyard_binary(), "--check", path], capture_output=True, text=True,
                           timeout=30)
        res.check("%s: --check refuses limits = { %s }" % (label, body),
                  p.returncode != 0 and want in p.stderr, "rc %d: %s" % (p.returncode, p.stderr))
    with open(path, "w") as f:
        f.write(base % '{ listener = "udp://127.0.0.1:9", maxKeys = 5 }, { tenant = "t1", maxKeys = 1 }')
    p = subprocess.run([switchyard_binary(), "--check", path], capture_output=True, text=True, timeout=30)
    res.check("%s: --check accepts valid limits" % label, p.returncode == 0, p.stderr)


SCENARIOS = [("budgets", scenario_budgets), ("per_sender", scenario_per_sender), ("check", scenario_check)]


def main():
    return scenarios.run(TEST_NAME, SCENARIOS, "sy-budgets-")


if __name__ == "__main__":
    sys.exit(main())
