#!/usr/bin/env python3
"""Integration test: the `remote_write` sink against a real Prometheus 2.42
(--web.enable-remote-write-receiver) and a real VictoriaMetrics, both
Debian packages, read back through their query APIs.

One switchyard (flushInterval 1 s) runs:

  prw    remote_write to Prometheus, a tiny queue
         (maxQueueBytes 1200: a few snapshots)
  vm     remote_write to VictoriaMetrics
  bad    remote_write to a path Prometheus answers 404, fed by a route
  stale  remote_write to Prometheus with ttl = 4 s, fed by `route.prefix "stale."`
  page   the prometheus sink, to compare names

(prw, vm and page get the default route's samples by `:passthrough`.)

  1. values: counters (cumulative, _total), gauges, summaries in seconds
     (quantile, _sum, _count), tags as labels, read back from both stores;
  2. the same series: what Prometheus stored through remote write is
     exactly the set of series (names and labels) on the prometheus sink's
     page;
  2b. DogStatsD timestamps: a series written at its client's time, read
     back at that time from both stores and on the page; a repeated time
     ignored and counted (adjusted), never a refused request; one outside
     the window counted and written at arrival;
  3. ttl: an expired series gets Prometheus's stale marker, and is gone
     from queries at once;
  4. a 4xx is counted (errors, dropped) and never retried: nothing waits in
     its queue;
  5. both receivers stopped mid-stream while the counter keeps growing,
     then restarted on the same data: the sinks retried (errors counted),
     VictoriaMetrics (large queue) got every snapshot with nothing dropped,
     Prometheus (queue of two snapshots) got what its queue held and the
     drops are counted; both end with the right total and empty queues;
  6. switchyard's /metrics shows each sink's queue, sent, dropped, errors;
  7. VictoriaMetrics stopped with SIGSTOP (connections accepted, never
     answered): requests time out and are retried, and after SIGCONT
     everything arrives with nothing dropped;
  8. VictoriaMetrics restarted read-only answers 503: retried with backoff,
     nothing dropped, all of it stored once it is writable again.

Usage: /usr/bin/python3 tests/integration/test_remote_write.py   ($SY_BIN)
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.daemon import Daemon as SharedDaemon  # noqa: E402
from lib.netutil import LOOPBACK, free_port, free_port_pair, http_get, send_udp, wait_for_port  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.prom import PROMETHEUS, VICTORIA_METRICS, PrometheusServer, VictoriaMetricsServer  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_prometheus import parse_page, val  # noqa: E402

TEST_NAME = "test_remote_write"

LINES = (["api.req.count:1|c", "api.req.count:2|c|@0.5",
          "req_total:3|c|#env:prod,region:eu",
          "q.depth:5|g", "q.depth:+3|g", "q.depth:-1|g"] +
         ["api.lat:%d|ms" % i for i in range(1, 101)] +
         ["api.lat:10|ms|@0.25|#path:/x", "9lives.one-two--three:1|g", "bad.x:1|c",
          "stale.g:4|g"])

EXPECT = (("api_req_count_total", 5), ("q_depth", 7), ('req_total{env="prod",region="eu"}', 3),
          ('api_lat{quantile="0.9",path=""}', 0.09), ('api_lat_sum{path=""}', 5.05),
          ('api_lat_count{path="/x"}', 4), ("_9lives_one_two_three", 1))


class Daemon(SharedDaemon):
    """switchyard with the remote_write sinks and a prometheus page
    (tests/lib/daemon.py does the rest)."""

    def __init__(self, workdir, prom_port, vm_port):
        super().__init__("switchyard", workdir)
        self.port = free_port_pair()
        self.http = free_port()
        self.page_port = free_port()
        vm = ('vm = { plugin = "remote_write", url = "http://localhost:%d/api/v1/write", '
              'retryMaxMs = 500, timeoutMs = 1000 },' % vm_port) if vm_port else ""
        self.config = ("""local route = require "switchyard.route"
return {
  listen = { "udp://%(lo)s:%(port)d", "tcp://%(lo)s:%(port)d" },
  flushInterval = 1000,
  httpAddress = "%(lo)s:%(http)d",
  sinks = {
    prw = { plugin = "remote_write", url = "http://%(lo)s:%(prom)d/api/v1/write",
            maxQueueBytes = 1200, retryMaxMs = 500 },
    stale = { plugin = "remote_write", url = "http://%(lo)s:%(prom)d/api/v1/write", ttl = 4 },
    %(vm)s
    bad = { plugin = "remote_write", url = "http://%(lo)s:%(prom)d/api/v1/nope" },
    page = { plugin = "prometheus", listen = "%(lo)s:%(page)d" },
  },
  routes = {
    route.prefix "bad." :passthrough "bad",
    route.prefix "stale." :passthrough "stale",
    route.default() :passthrough(%(all)s),
  },
}
""" % {"lo": LOOPBACK, "port": self.port, "http": self.http, "prom": prom_port, "vm": vm,
                "page": self.page_port,
                "all": '"page", "prw", "vm"' if vm_port else '"page", "prw"'})

    def start(self):
        if not super().start(self.config):
            return False
        return all(wait_for_port(p, 10, alive=self.alive)
                   for p in (self.port, self.http, self.page_port))

    def send(self, lines):
        send_udp(self.port, [l.encode() for l in lines])

    def own(self, sink):
        s = parse_page(http_get(self.http, "/metrics")[2])[0]
        return {k: val(s, "switchyard_sink_" + k, sink=sink, plugin="remote_write")
                for k in ("sent_total", "dropped_total", "errors_total", "queued")}

    def own_stat(self, sink, stat):
        s = parse_page(http_get(self.http, "/metrics")[2])[0]
        return val(s, "switchyard_sink_" + stat, sink=sink, plugin="remote_write")

    def page(self):
        return parse_page(http_get(self.page_port, "/metrics")[2])[0]

    def page_text(self):
        return http_get(self.page_port, "/metrics")[2]


def check_values(res, store, label):
    for expr, want in EXPECT:
        got = store.wait_value(expr, want, 15)
        res.check("%s: %s = %r" % (label, expr, want),
                  got is not None and abs(got - want) < 1e-9, "got %r\n%s" % (got, store.logs()[-1500:]))


def case_same_series(res, d, prom):
    page = set((n, lab) for n, lab in d.page() if not n.startswith("switchyard_"))
    r = prom.query('{__name__=~".+"}') or []
    stored = set((m["__name__"], frozenset((k, v) for k, v in m.items() if k != "__name__"))
                 for m, _ in r if not m["__name__"].startswith("stale_"))
    res.check("Prometheus stored exactly the series of the prometheus sink's page (%d)" % len(page),
              page and stored == page,
              "only on the page: %r\nonly in Prometheus: %r" % (sorted(page - stored)[:10],
                                                                 sorted(stored - page)[:10]))


def case_stale(res, d, prom):
    """ttl expiry writes Prometheus's stale marker: the series disappears
    from queries at once, not after Prometheus's 5 minute lookback."""
    t0 = time.monotonic()
    gone = wait_until(lambda: prom.query("stale_g") == [], 10, step=0.2)
    res.check("stale: after ttl it is marked stale and gone from queries (%.1f s)" %
              (time.monotonic() - t0), gone, repr(prom.query("stale_g")))
    r = prom.query("count_over_time(stale_g[5m])")
    res.check("stale: ... while its samples are still stored", r and r[0][1] >= 1, repr(r))


def global_metric(d, name):
    """A value of switchyard's own /metrics without labels, or None."""
    for line in http_get(d.http, "/metrics")[2].splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def ts_points(store, name):
    """[(ms, value)] of the one series of that name, or what was found."""
    r = store.raw(name)
    return list(r.values())[0] if r and len(r) == 1 else r


def case_timestamps(res, d, stores):
    """DogStatsD timestamps (|T): a series is written at its client's time
    and read back at exactly that time from each receiver; a time not after
    the one the series was last sent with is ignored and counted in
    `adjusted` (the value goes out at the next snapshot's time: never a
    request the receiver refuses); one outside the window (a day old) is
    counted and the sample written at arrival."""
    now = int(time.time())
    t1 = now - 120
    adj0 = d.own_stat("prw", "adjusted_total") or 0
    d.send(["ts.g:42|g|T%d" % t1, "ts.c:3|c|#k:v|T%d" % t1, "ts.old:7|g|T%d" % (now - 86400)])
    for label, store in stores:
        ok = wait_until(lambda: ts_points(store, "ts_g") == [(t1 * 1000, 42.0)], 15)
        res.check("timestamps: %s stored ts_g = 42 at its client's time, only there" % label,
                  ok, repr(ts_points(store, "ts_g")))
        ok = wait_until(lambda: ts_points(store, "ts_c_total") == [(t1 * 1000, 3.0)], 15)
        res.check("timestamps: %s stored the counter ts_c_total{k=v} = 3 at that time" % label,
                  ok, repr(ts_points(store, "ts_c_total")))
        pts = ts_points(store, "ts_old")
        res.check("timestamps: %s stored ts_old (a day old: outside the window) at arrival" % label,
                  isinstance(pts, list) and pts and all(abs(t / 1000.0 - now) < 60 for t, _ in pts),
                  repr(pts))
    page = d.page_text()
    res.check("timestamps: the prometheus page writes the client's time on the sample",
              ("\nts_g 42 %d\n" % (t1 * 1000)) in page, page[:600])
    out = global_metric(d, "switchyard_dogstatsd_timestamps_outside_total")
    res.check("timestamps: the one outside the window is counted (%r)" % out, out == 1, repr(out))
    # the same time again, after it was sent: not in order any more
    d.send(["ts.g:43|g|T%d" % t1])
    store = stores[0][1]
    ok = wait_until(lambda: (ts_points(store, "ts_g") or [(0, 0)])[-1][1] == 43.0, 15)
    pts = ts_points(store, "ts_g")
    res.check("timestamps: a repeated time is ignored: 43 is stored after it, at a snapshot's time",
              ok and pts[0] == (t1 * 1000, 42.0) and pts[-1][0] > now * 1000, repr(pts))
    adj = d.own_stat("prw", "adjusted_total") or 0
    res.check("timestamps: ... counted in prw's adjusted (%r -> %r)" % (adj0, adj), adj > adj0,
              repr(adj))
    logs = d.logs()
    res.check("timestamps: ... logged, and no request was refused (no HTTP 400)",
              "DogStatsD timestamps ignored" in logs and "HTTP 400" not in logs, logs[-2000:])


def case_4xx(res, d):
    ok = wait_until(lambda: (d.own("bad")["errors_total"] or 0) >= 2, 10)
    o = d.own("bad")
    res.check("bad (404): errors and dropped counted, nothing queued for a retry (%r)" % o,
              ok and o["dropped_total"] >= 2 and o["queued"] == 0 and not o["sent_total"], repr(o))
    logs = d.logs()
    res.check("bad (404): logged with the status, 'not retried'",
              "HTTP 404 (not retried)" in logs, logs[-2000:])


def points(vm):
    r = vm.query("count_over_time(api_req_count_total[1h])")
    return r[0][1] if r and len(r) == 1 else None


def case_restart(res, d, prom, vm):
    n0 = points(vm) if vm else None
    prom.stop()
    if vm:
        vm.stop()
    before = {s: d.own(s) for s in ("prw", "vm") if vm or s == "prw"}
    total = 5
    for _ in range(5):
        d.send(["api.req.count:1|c"])
        total += 1
        time.sleep(1)
    during = {s: d.own(s) for s in before}
    res.check("while the receivers are down the sinks retry (errors grow) and queue",
              all(during[s]["errors_total"] > (before[s]["errors_total"] or 0) and during[s]["queued"] > 0
                  for s in during), "%r -> %r" % (before, during))
    res.check("prw (queue of 1200 bytes) dropped snapshots it could not hold, counted",
              during["prw"]["dropped_total"] > 0, repr(during["prw"]))
    if not res.check("Prometheus restarts on the same TSDB", prom.start(), prom.logs()):
        return
    if vm and not res.check("VictoriaMetrics restarts on the same data", vm.start(), vm.logs()):
        return
    got = prom.wait_value("api_req_count_total", total, 20)
    res.check("Prometheus has the counter's total after the restart (%d)" % total, got == total,
              "got %r\n%s" % (got, d.logs()[-2000:]))
    ok = wait_until(lambda: d.own("prw")["queued"] == 0, 10)
    res.check("prw's queue drained", ok, repr(d.own("prw")))
    if vm:
        got = vm.wait_value("api_req_count_total", total, 20)
        res.check("VictoriaMetrics has the counter's total after the restart (%d)" % total,
                  got == total, "got %r" % got)
        ok = wait_until(lambda: d.own("vm")["queued"] == 0, 10)
        o = d.own("vm")
        res.check("vm's queue drained with nothing dropped (%r)" % o, ok and o["dropped_total"] == 0,
                  repr(o))
        # the snapshots taken during the outage (one a second, 5 s) arrived
        n = points(vm)
        res.check("VictoriaMetrics got the snapshots of the outage too (%r -> %r points, "
                  ">= 4 more)" % (n0, n), n0 is not None and n is not None and n >= n0 + 4,
                  repr(vm.query("api_req_count_total[1h]")))
    o = d.own("prw")
    res.check("switchyard's /metrics: prw sent > 0, dropped > 0, errors > 0, queued 0 (%r)" % o,
              o["sent_total"] > 0 and o["dropped_total"] > 0 and o["errors_total"] > 0 and
              o["queued"] == 0, repr(o))


def case_stall(res, d, vm):
    """A receiver that accepts connections and never answers (SIGSTOP):
    each request times out (timeoutMs 1 s) and is tried again; after
    SIGCONT everything arrives and nothing was dropped."""
    total = vm.value("api_req_count_total")
    before = d.own("vm")
    os.kill(vm.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(3):
            d.send(["api.req.count:1|c"])
            total = (total or 0) + 1
            time.sleep(1)
        time.sleep(1.5)
        during = d.own("vm")
        res.check("stall: requests to a stopped VictoriaMetrics time out and are retried "
                  "(errors grow), the rest waits in the queue",
                  during["errors_total"] > before["errors_total"] and during["queued"] > 0,
                  "%r -> %r" % (before, during))
    finally:
        os.kill(vm.proc.pid, signal.SIGCONT)
    got = vm.wait_value("api_req_count_total", total, 20)
    ok = wait_until(lambda: d.own("vm")["queued"] == 0, 10)
    after = d.own("vm")
    res.check("stall: after SIGCONT the total arrives (%r), the queue drains, nothing dropped" % total,
              got == total and ok and after["dropped_total"] == before["dropped_total"],
              "got %r, %r" % (got, after))


def case_503(res, d, vm):
    """A receiver that answers 503 (VictoriaMetrics in read-only mode: less
    free disk than -storage.minFreeDiskSpaceBytes): retried with backoff,
    nothing dropped, everything arrives once it takes writes again."""
    total = vm.value("api_req_count_total")
    vm.stop()
    vm.extra_args = ["-storage.minFreeDiskSpaceBytes=1000000000000000"]
    if not res.check("VictoriaMetrics restarts read-only", vm.start(), vm.logs()):
        return
    before = d.own("vm")
    for _ in range(3):
        d.send(["api.req.count:1|c"])
        total = (total or 0) + 1
        time.sleep(1)
    # the sink may still be in the backoff of the outage before: wait for
    # its first retry to meet the read-only server (and be logged)
    wait_until(lambda: "read-only" in d.logs(), 20)
    during = d.own("vm")
    logs = d.logs()
    res.check("503: retried (errors grow), queued, nothing dropped, logged with the answer",
              during["errors_total"] > before["errors_total"] and during["queued"] > 0 and
              during["dropped_total"] == before["dropped_total"] and "read-only" in logs,
              "%r -> %r\n%s" % (before, during, logs[-1500:]))
    vm.stop()
    vm.extra_args = []
    if not res.check("VictoriaMetrics restarts writable", vm.start(), vm.logs()):
        return
    got = vm.wait_value("api_req_count_total", total, 20)
    ok = wait_until(lambda: d.own("vm")["queued"] == 0, 10)
    after = d.own("vm")
    res.check("503: then the total arrives (%r), the queue drains, nothing dropped" % total,
              got == total and ok and after["dropped_total"] == before["dropped_total"],
              "got %r, %r" % (got, after))


def main():
    res = Results(TEST_NAME)
    if not res.check("%s is installed" % PROMETHEUS, os.access(PROMETHEUS, os.X_OK),
                     "apt-get install prometheus (or .ci/deps.sh test)"):
        return res.finish()
    have_vm = os.access(VICTORIA_METRICS, os.X_OK)
    if not have_vm:
        res.skip("VictoriaMetrics", "%s is missing: apt-get install victoria-metrics" % VICTORIA_METRICS)
    print("switchyard binary: %s" % switchyard_binary())
    workdir = make_workdir("sy-rw-")
    t0 = time.monotonic()
    prom = PrometheusServer(workdir, remote_write_receiver=True)
    vm = VictoriaMetricsServer(workdir) if have_vm else None
    d = None
    try:
        if not res.check("Prometheus 2.42 starts with the remote write receiver", prom.start(),
                         prom.logs()):
            return res.finish()
        if vm and not res.check("VictoriaMetrics starts", vm.start(), vm.logs()):
            vm = None
        d = Daemon(workdir, prom.port, vm.port if vm else 0)
        if res.check("switchyard starts with remote_write sinks", d.start(), d.logs()):
            d.send(LINES)
            got = prom.wait_value("stale_g", 4, 10)
            res.check("stale (ttl 4 s): the gauge reached Prometheus (4)", got == 4, "got %r" % got)
            check_values(res, prom, "Prometheus")
            if vm:
                check_values(res, vm, "VictoriaMetrics")
            case_same_series(res, d, prom)
            case_timestamps(res, d, [("Prometheus", prom)] + ([("VictoriaMetrics", vm)] if vm else []))
            case_stale(res, d, prom)
            case_4xx(res, d)
            case_restart(res, d, prom, vm)
            if vm:
                case_stall(res, d, vm)
                case_503(res, d, vm)
    except Exception as e:  # a crash of the harness is a failure, not a skip
        import traceback
        traceback.print_exc()
        res.check("harness ran without error", False, repr(e))
    finally:
        if d and d.pid is not None:
            d.finish(res, "at the end")
        prom.stop()
        if vm:
            vm.stop()
        remove_workdir(workdir)
    res.note("took %.1f s" % (time.monotonic() - t0))
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
