#!/usr/bin/env python3
"""Integration test: the `prometheus` sink (a scrape endpoint in place of
statsd_exporter), read by promtool and by a real Prometheus 2.42.

One switchyard runs four sinks, fed through routes:

  prom   passthrough = true: every kept sample, summaries (the default)
  hist   :passthrough from `route.prefix "h."`, buckets configured: histograms
  short  :passthrough from `route.prefix "short."`, ttl = 3 s, maxSeries = 3
  c      console, the aggregated values of the default route

  1. the page: statsd_exporter's names, types and units for counters (with
     @rate, cumulative, _total), gauges (+/- deltas), timers (summary in
     seconds with quantiles, _sum, _count; int(1/rate) observations),
     DogStatsD tags as labels, name escaping; sets, negative counters,
     invalid UTF-8, a type conflict and malformed tags refused and counted
     on the page; `promtool check metrics` passes on every page; 404 and
     405 for other paths and methods; dropped routes never reach it;
  2. histograms: cumulative buckets with the configured bounds, +Inf;
  3. the bound: maxSeries = 3 refuses the 4th and 5th series, counted;
  4. switchyard's own /metrics shows each sink's sent and dropped;
  5. ttl: idle series vanish after ttl (counted), and the bound frees up;
  6. a real Prometheus scraping the page every second returns the values
     through /api/v1/query; stopped, more traffic, restarted on the same
     TSDB: the counter went on from where it was (no reset), and the
     samples scraped before the restart are still there;
  7. a reload that changes the sink's settings reopens it on the same port
     (the new instance binds while the old one still listens);
  8. --check refuses bad settings (listen, passthrough) with their names.

Usage: /usr/bin/python3 tests/integration/test_prometheus.py   ($SY_BIN)
"""
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.netutil import LOOPBACK, free_port, free_port_pair, http_get, send_udp, wait_for_port  # noqa: E402
from lib.daemon import Daemon as SharedDaemon  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.prom import PROMETHEUS, PROMTOOL, PrometheusServer, promtool_check  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary, to_lua  # noqa: E402

TEST_NAME = "test_prometheus"

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_page(text):
    """{(name, frozenset(labels)): value} and {family: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, fam, t = line.split(" ", 3)
            types[fam] = t
            continue
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        labels = frozenset((k, re.sub(r"\\(.)", r"\1", v)) for k, v in _LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


class Daemon(SharedDaemon):
    """switchyard with three prometheus sinks and a console sink
    (tests/lib/daemon.py does the rest)."""

    def __init__(self, workdir):
        super().__init__("switchyard", workdir)
        self.port = free_port_pair()
        self.http = free_port()
        self.pages = {"prom": free_port(), "hist": free_port(), "short": free_port()}

    def config(self, prom_extra=""):
        p = self.pages
        return """local route = require "switchyard.route"
return {
  listen = { "udp://%(lo)s:%(port)d", "tcp://%(lo)s:%(port)d" },
  flushInterval = 1000,
  httpAddress = "%(lo)s:%(http)d",
  sinks = {
    prom = { plugin = "prometheus", listen = "%(lo)s:%(prom)d", passthrough = true%(extra)s },
    hist = { plugin = "prometheus", listen = "%(lo)s:%(hist)d", path = "/m",
             buckets = { 0.05, 0.1, 0.5 } },
    short = { plugin = "prometheus", listen = "%(lo)s:%(short)d", ttl = 3, maxSeries = 3 },
    c = { plugin = "console", path = %(console)s },
  },
  routes = {
    route.prefix "drop."  :drop "dropped by the test's route",
    route.prefix "h."     :passthrough "hist",
    route.prefix "short." :passthrough "short",
    route.default()       :to "c",
  },
}
""" % {"lo": LOOPBACK, "port": self.port, "http": self.http, "prom": p["prom"],
       "hist": p["hist"], "short": p["short"], "extra": prom_extra,
       "console": to_lua(self.console_path)}

    def start(self):
        if not super().start(self.config()):
            return False
        return all(wait_for_port(p, 10, alive=self.alive)
                   for p in [self.port, self.http] + list(self.pages.values()))

    def page(self, sink):
        path = "/m" if sink == "hist" else "/metrics"
        return http_get(self.pages[sink], path)

    def samples(self, sink):
        return parse_page(self.page(sink)[2])[0]

    def own(self):
        return parse_page(http_get(self.http, "/metrics")[2])[0]

    def send(self, lines):
        send_udp(self.port, [l if isinstance(l, bytes) else l.encode() for l in lines])


# The traffic of case 1, one datagram each (UDP keeps their order).
LINES = (["api.req.count:1|c", "api.req.count:2|c|@0.5",
          "req_total:3|c|#env:prod,region:eu",
          "q.depth:5|g", "q.depth:+3|g", "q.depth:-1|g"] +
         ["api.lat:%d|ms" % i for i in range(1, 101)] +
         ["api.lat:10|ms|@0.25|#path:/x",
          "9lives.one-two--three:1|g",
          'esc.label:1|g|#q:a"b\\c\\n,caf\u00e9:\u00fc',
          "esc.label:2|g|#q:second",
          "users.uniq:alice|s",
          "neg.c:-1|c",
          "tagged.c:1|c|#novalue,:x,__name__:y,ok:1",
          b"u.x:1|g|#k:\xff",
          "conf.x:1|c", "conf.x_total:1|g",
          "drop.me:1|c",
          "h.lat:20|ms", "h.lat:70|ms", "h.lat:300|ms", "h.lat:900|ms"] +
         ["short.g%d:1|g" % i for i in range(1, 6)])
PROM_TAKEN = 2 + 1 + 3 + 101 + 1 + 2 + 1 + 1 + 4 + 5
PROM_DROPPED = 4  # set, negative counter, bad UTF-8, type conflict


def case_page(res, d):
    d.send(LINES)
    ok = wait_until(lambda: val(d.samples("prom"), "switchyard_prometheus_samples_total",
                                sink="prom") == PROM_TAKEN, 10)
    status, headers, body = d.page("prom")
    res.check("prom: every sample that was not refused reached the page (%d)" % PROM_TAKEN,
              ok, body[-3000:] + d.logs())
    case_bound(res, d)  # before ttl (3 s) removes those series
    res.check("prom: 200 with Content-Type text/plain; version=0.0.4",
              status == 200 and headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
              repr(headers))
    s, types = parse_page(body)
    checks = [
        ("a counter is cumulative, @rate scaled, named _total", val(s, "api_req_count_total"), 5),
        ("a name ending in _total is not suffixed twice; tags are labels",
         val(s, "req_total", env="prod", region="eu"), 3),
        ("a gauge is set, then changed by +3 and -1", val(s, "q_depth"), 7),
        ("timer quantile 0.5 in seconds", val(s, "api_lat", quantile="0.5"), 0.05),
        ("timer quantile 0.9", val(s, "api_lat", quantile="0.9"), 0.09),
        ("timer quantile 0.99", val(s, "api_lat", quantile="0.99"), 0.099),
        ("timer _sum in seconds", val(s, "api_lat_sum"), 5.05),
        ("timer _count", val(s, "api_lat_count"), 100),
        ("a tagged timer is its own series; @0.25 counts 4 observations",
         val(s, "api_lat_count", path="/x"), 4),
        ("... and its _sum is 4 x 0.01", val(s, "api_lat_sum", path="/x"), 0.04),
        ("escaping: '.' and '-' become '_', '--' one '_', a leading digit gets '_'",
         val(s, "_9lives_one_two_three"), 1),
        ("bad tags are dropped, the good one kept", val(s, "tagged_c_total", ok="1"), 1),
        ("a label value with '\"' and '\\' is escaped on the page and reads back; a "
         "label name's 'é' is one '_', its value kept as sent",
         val(s, "esc_label", q='a"b\\c\\n', caf_="\u00fc"), 1),
        ("labels tell series apart", val(s, "esc_label", q="second"), 2),
        ("the counter that came first keeps its name", val(s, "conf_x_total"), 1),
        ("h. samples reach prom too (passthrough = true), as a summary", val(s, "h_lat_count"), 4),
        ("refused: the set", val(s, "switchyard_prometheus_samples_dropped_total", sink="prom", reason="set"), 1),
        ("refused: the negative counter", val(s, "switchyard_prometheus_samples_dropped_total", sink="prom", reason="negative_counter"), 1),
        ("refused: invalid UTF-8 in a tag", val(s, "switchyard_prometheus_samples_dropped_total", sink="prom", reason="bad_utf8"), 1),
        ("refused: a gauge with a counter's name", val(s, "switchyard_prometheus_samples_dropped_total", sink="prom", reason="type_conflict"), 1),
        ("tag errors counted (no value, empty name, reserved __name__)",
         val(s, "switchyard_prometheus_tag_errors_total", sink="prom"), 3),
    ]
    for label, got, want in checks:
        res.check("prom: %s (%r)" % (label, want),
                  got is not None and abs(got - want) < 1e-9, "got %r\n%s" % (got, body[:4000]))
    res.check("prom: types are counter/gauge/summary as statsd_exporter's",
              types.get("api_req_count_total") == "counter" and types.get("q_depth") == "gauge"
              and types.get("api_lat") == "summary", repr(types))
    res.check("prom: the set, the dropped route and the refused names are not on the page",
              not any(n.startswith(("users", "drop", "neg", "u_x", "conf_x_total")) and
                      n != "conf_x_total" for n, _ in s) and
              not any(n == "conf_x_total" and types.get(n) != "counter" for n, _ in s),
              body[:3000])
    for sink in ("prom", "hist", "short"):
        ok, out = promtool_check(d.page(sink)[2])
        res.check("promtool check metrics passes on %s's page" % sink, ok, out)
    # an invalid page must fail promtool, or the checks above prove nothing
    ok, out = promtool_check("# TYPE x counter\nx{a=\"1\"} 1\nx{a=\"1\"} 2\nbad line\n")
    res.check("promtool check metrics fails on a broken page (the check can fail)", not ok, out)
    st404 = http_get(d.pages["prom"], "/other")[0]
    req = urllib.request.Request("http://%s:%d/metrics" % (LOOPBACK, d.pages["prom"]),
                                 method="DELETE")
    try:
        st405 = urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as e:
        st405 = e.code
    res.check("prom: 404 for another path, 405 for DELETE", (st404, st405) == (404, 405),
              "%r" % ((st404, st405),))
    s = d.samples("prom")
    res.check("prom: both counted (http_refused_total = 2)",
              val(s, "switchyard_prometheus_http_refused_total", sink="prom") == 2, repr(s))


def case_histogram(res, d):
    body = d.page("hist")[2]
    s, types = parse_page(body)
    want = [("0.05", 1), ("0.1", 2), ("0.5", 3), ("+Inf", 4)]
    got = [(le, val(s, "h_lat_bucket", le=le)) for le, _ in want]
    res.check("hist: buckets 0.05/0.1/0.5/+Inf are cumulative (1, 2, 3, 4)", got == want,
              "%r\n%s" % (got, body))
    res.check("hist: _sum 1.29 s and _count 4, type histogram",
              abs((val(s, "h_lat_sum") or 0) - 1.29) < 1e-9 and val(s, "h_lat_count") == 4 and
              types.get("h_lat") == "histogram", body)
    res.check("hist: only the routed samples (one family and the sink's own)",
              set(n for n, _ in s if not n.startswith("switchyard_")) ==
              {"h_lat_bucket", "h_lat_sum", "h_lat_count"}, body)


def case_bound(res, d):
    s = d.samples("short")
    names = sorted(n for n, _ in s if n.startswith("short_"))
    res.check("short: maxSeries = 3 keeps the first three series", names == ["short_g1", "short_g2", "short_g3"],
              repr(names))
    res.check("short: the other two are refused and counted (series_limit = 2)",
              val(s, "switchyard_prometheus_samples_dropped_total", sink="short", reason="series_limit") == 2,
              repr(s))


def case_own_metrics(res, d):
    def got():
        o = d.own()
        return {sink: (val(o, "switchyard_sink_sent_total", sink=sink, plugin="prometheus"),
                       val(o, "switchyard_sink_dropped_total", sink=sink, plugin="prometheus"))
                for sink in ("prom", "hist", "short")}
    want = {"prom": (PROM_TAKEN, PROM_DROPPED), "hist": (4, 0), "short": (3, 2)}
    wait_until(lambda: got() == want, 5)
    seen = got()
    res.check("switchyard's /metrics shows each prometheus sink's sent and dropped %r" % want,
              seen == want, repr(seen))


def case_ttl(res, d):
    t0 = time.monotonic()
    ok = wait_until(lambda: val(d.samples("short"), "switchyard_prometheus_series", sink="short") == 0, 8)
    s = d.samples("short")
    res.check("short: ttl = 3 s: the idle series are gone (%.1f s)" % (time.monotonic() - t0),
              ok and not any(n.startswith("short_") for n, _ in s), repr(s))
    res.check("short: ... and counted (series_expired_total = 3)",
              val(s, "switchyard_prometheus_series_expired_total", sink="short") == 3, repr(s))
    d.send(["short.g5:2|g"])
    ok = wait_until(lambda: val(d.samples("short"), "short_g5") == 2, 5)
    res.check("short: after expiry the bound has room again", ok, d.page("short")[2])


def case_prometheus(res, d, workdir):
    prom = PrometheusServer(workdir, scrape_targets=["%s:%d" % (LOOPBACK, d.pages["prom"])])
    try:
        if not res.check("Prometheus 2.42 starts, scraping the prom sink every second",
                         prom.start(), prom.logs()):
            return
        for expr, want in (("api_req_count_total", 5), ("q_depth", 7),
                           ('req_total{env="prod",region="eu"}', 3),
                           ('api_lat{quantile="0.9",path=""}', 0.09),
                           ('api_lat_count{path="/x"}', 4), ("_9lives_one_two_three", 1),
                           ('up{job="switchyard"}', 1)):
            got = prom.wait_value(expr, want, 15)
            res.check("Prometheus /api/v1/query %s = %r" % (expr, want), got == want or
                      (got is not None and abs(got - want) < 1e-9), "got %r\n%s" % (got, prom.logs()[-2000:]))
        prom.stop()
        d.send(["api.req.count:10|c"])
        wait_until(lambda: val(d.samples("prom"), "api_req_count_total") == 15, 5)
        if not res.check("Prometheus restarts on the same TSDB", prom.start(), prom.logs()):
            return
        got = prom.wait_value("api_req_count_total", 15, 15)
        res.check("after the restart the counter went on: 15", got == 15, "got %r" % got)
        res.check("no counter reset seen across the restart (resets(...[5m]) = 0)",
                  prom.value("resets(api_req_count_total[5m])") == 0,
                  repr(prom.query("api_req_count_total[5m]")))
        res.check("the samples scraped before the restart are still there (min_over_time = 5)",
                  prom.value("min_over_time(api_req_count_total[5m])") == 5,
                  repr(prom.query("api_req_count_total[5m]")))
    finally:
        prom.stop()


def case_reload(res, d):
    """A reload that changes the sink's settings opens the new instance
    while the old one still listens (SO_REUSEPORT), then retires the old."""
    d.write_config(d.config(", ttl = 600"))
    d.hup()
    ok = wait_until(lambda: "reload: sink 'prom' (re)opened" in d.logs(), 10)
    res.check("reload with a changed prom sink: reopened on the same port", ok, d.logs()[-3000:])
    d.send(["after.reload:1|c"])

    def fresh():
        # a connection queued on the old instance's socket as it closes is
        # reset (SO_REUSEPORT): one scrape around such a reload may fail
        try:
            s = d.samples("prom")
        except OSError:
            return False
        return val(s, "after_reload_total") == 1 and val(s, "api_req_count_total") is None
    ok = wait_until(fresh, 10)
    res.check("after the reload the page is the new instance's (the old one retired)", ok,
              d.page("prom")[2][:2000] + d.logs()[-2000:])


def case_check(res, workdir):
    for label, sink, needle in (
            ("a bad listen", 'plugin = "prometheus", listen = "nope"', "listen"),
            ("passthrough that is not a boolean", 'plugin = "prometheus", passthrough = "yes"', "passthrough"),
            ("unsorted buckets", 'plugin = "prometheus", buckets = { 1, 0.5 }', "buckets")):
        path = os.path.join(workdir, "bad.lua")
        with open(path, "w") as f:
            f.write('return { sinks = { p = { %s } } }\n' % sink)
        p = subprocess.run([switchyard_binary(), "--check", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        out = p.stdout.decode("utf-8", "replace")
        res.check("--check refuses %s, naming it" % label, p.returncode != 0 and needle in out, out)


def main():
    res = Results(TEST_NAME)
    for tool in (PROMETHEUS, PROMTOOL):
        if not res.check("%s is installed" % tool, os.access(tool, os.X_OK),
                         "apt-get install prometheus (or .ci/deps.sh test)"):
            return res.finish()
    print("switchyard binary: %s" % switchyard_binary())
    workdir = make_workdir("sy-prom-")
    t0 = time.monotonic()
    d = Daemon(workdir)
    try:
        if res.check("switchyard starts with three prometheus sinks", d.start(), d.logs()):
            case_page(res, d)
            case_histogram(res, d)
            case_own_metrics(res, d)
            case_ttl(res, d)
            case_prometheus(res, d, workdir)
            case_reload(res, d)
        case_check(res, workdir)
    except Exception as e:  # a crash of the harness is a failure, not a skip
        import traceback
        traceback.print_exc()
        res.check("harness ran without error", False, repr(e))
    finally:
        if d.pid is not None:
            d.finish(res, "at the end")
        remove_workdir(workdir)
    res.note("took %.1f s" % (time.monotonic() - t0))
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
