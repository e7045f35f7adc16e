#!/usr/bin/env python3
"""Integration test: switchyard's influxdb sink writing to a real InfluxDB
1.x (Debian's influxd) and a real VictoriaMetrics.

Each case starts its own servers on free loopback ports (data in the temp
dir, stopped by PID) and a switchyard with two sinks: `i` (plugin
influxdb, under test) and `c` (plugin console, writing to a file).  Both
get the same flushes, so the console file says which flushes happened,
each value as statsd computes it, and switchyard's own counters for the
influxdb sink (stats.statsd.switchyard.sink.i.{sent,dropped,...}).  What
the servers stored is read back through their query APIs and compared
exactly with the console's values, mapped through the sink's documented
data model (model_point below).

  1. values over HTTP: counters, gauges, timers (percentiles too), sets,
     switchyard's own values and DogStatsD tags, every flush read back
     from InfluxDB; the layout "value" too;
  2. escaping: tag values and keys with spaces, commas, equals signs,
     quotes and backslashes read back byte for byte; a valueless tag
     becomes "true"; an empty tag, a repeated key and the key "time" are
     left out and counted as adjusted; a name with a trailing backslash is
     dropped and counted, and does not cost its batch;
  3. restart: influxd is SIGKILLed mid-stream and restarted on the same
     port; with a small queue the values beyond it are dropped and counted
     (sent + dropped + queued = given), errors are counted, and delivery
     resumes: flushes after the restart are all in InfluxDB;
     a flush larger than the queue, with influxd up, is paced and stored
     whole; a 500 from influxd (write-timeout 1ns) is retried with backoff
     until influxd, restarted without it, takes every flush; influxd
     SIGSTOPped: the POSTs time out and are counted, the console keeps
     flushing, and after SIGCONT every flush arrives;
  4. a 4xx (a database that does not exist) is counted as dropped and an
     error, logged, and not retried;
  5. bad settings are refused by --check (the plugin's check entry), and a
     good config is accepted with nothing listening;
  6. UDP: lines to influxd's UDP listener, read back;
  7. raw samples of a pass-through route, with their metric_type tag;
     DogStatsD timestamps (|T): a raw sample is a point at its client's
     time, one outside the window at its arrival (counted, logged), and
     the statsd flush still aggregates it on arrival;
  8. VictoriaMetrics's /write: the same flushes, read back with
     /api/v1/export.

Usage: /usr/bin/python3 tests/integration/test_influxdb.py      ($SY_BIN is
the daemon, $SY_PLUGIN_DIR its plugins, as tests/run.sh sets them)
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib import REPO_DIR  # noqa: E402
from lib.influx import INFLUXD, VICTORIA, InfluxServer, VictoriaMetrics  # noqa: E402
from lib.netutil import LOOPBACK, free_port, free_port_pair, http_get, send_udp  # noqa: E402
from lib.daemon import Daemon as SharedDaemon, sink_stat, sink_stat_sum  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary, to_lua  # noqa: E402

TEST_NAME = "test_influxdb"


# ---------------------------------------------------------------------------
# switchyard with an influxdb sink and a console sink


class Daemon(SharedDaemon):
    """switchyard on UDP with the influxdb sink `i` and a console sink `c`
    (tests/lib/daemon.py does the rest)."""

    def __init__(self, workdir, name, sink, options=None, routes_lua=None, extra_sinks=None):
        super().__init__(name, workdir)
        self.port = free_port_pair()
        cfg = {
            "listen": ["udp://%s:%d" % (LOOPBACK, self.port)],
            "flushInterval": 1000,
            "graphite": {"legacyNamespace": False},
            "percentThreshold": [90, -25],
            "shutdownTimeout": 2000,
        }
        self.http_port = free_port("tcp")
        cfg["httpAddress"] = "%s:%d" % (LOOPBACK, self.http_port)
        cfg.update(options or {})
        s = {"plugin": "influxdb", "retryMinMs": 50, "retryMaxMs": 300}
        s.update(sink)
        cfg["sinks"] = {"c": {"plugin": "console", "path": self.console_path}, "i": s}
        cfg["sinks"].update(extra_sinks or {})
        body = to_lua(cfg)
        if routes_lua:
            body = body.rstrip().rstrip("}") + "  routes = " + routes_lua + ",\n}"
        self.config = ("-- written by tests/integration/test_influxdb.py\n"
                       'local route = require "switchyard.route"\nreturn ' + body + "\n")

    def start(self):
        """UDP only: started once the first flush reached the console."""
        if not super().start(self.config):
            return False
        return bool(wait_until(lambda: not self.alive() or self.flushes(), 10)) and self.alive()

    def send(self, *lines):
        send_udp(self.port, ["\n".join(lines)])

    def metric(self, name, sink="i"):
        """A sink's value on /metrics (switchyard_sink_NAME{sink="i"})."""
        status, _, body = http_get(self.http_port, "/metrics")
        want = '%s{sink="%s",plugin="influxdb"} ' % (name, sink)
        for line in body.splitlines():
            if line.startswith(want):
                return float(line[len(want):])
        return None



# ---------------------------------------------------------------------------
# the data model, written out independently of the C code


def split_tags(tagtext):
    """';k=v;root;k2=' -> (tags dict, adjusted?) as the README says."""
    tags, adjusted = {}, False
    for t in tagtext.split(";"):
        if not t:
            continue
        k, eq, v = t.partition("=")
        if not eq:
            v = "true"
        if not k or not v or k == "time" or k in tags:
            adjusted = True
            continue
        tags[k] = v
    return tags, adjusted


def model_point(name, layout="statistic"):
    """A console name -> (measurement, field, tags).  Timer statistics and
    set counts (names under stats.timers. and stats.sets. with
    legacyNamespace off) split at the last dot; everything else is the
    field `value` of the whole name."""
    base, semi, tagtext = name.partition(";")
    tags, _ = split_tags(tagtext)
    if layout == "statistic" and (base.startswith("stats.timers.") or
                                  base.startswith("stats.sets.")):
        m, _, field = base.rpartition(".")
        return m, field, tags
    return base, "value", tags


class InfluxData:
    """Everything in one InfluxDB database, as
    {(measurement, frozenset(tags), time): {field: value}}."""

    def __init__(self, server, db):
        self.points = {}
        ans = server.query("SELECT * FROM /.*/ GROUP BY *", db=db)
        self.error = ans.get("error")
        for res in ans.get("results", []):
            if "error" in res:
                self.error = res["error"]
            for s in res.get("series", []) or []:
                tags = frozenset((k, v) for k, v in (s.get("tags") or {}).items() if v != "")
                cols = s["columns"]
                for row in s["values"]:
                    fields = {c: v for c, v in zip(cols[1:], row[1:]) if v is not None}
                    if fields:
                        key = (s["name"], tags, row[0])
                        self.points.setdefault(key, {}).update(fields)

    def get(self, measurement, tags, ts, field):
        return self.points.get((measurement, frozenset(tags.items()), ts), {}).get(field)


def compare_flushes(data, flushes, layout="statistic", skip=lambda name: False):
    """The (ts, name, console value, stored value) that differ."""
    bad = []
    for ts, metrics in flushes:
        for name, text in metrics.items():
            if skip(name):
                continue
            m, field, tags = model_point(name, layout)
            got = data.get(m, tags, ts, field)
            if got is None or float(got) != float(text):
                bad.append((ts, name, text, got))
    return bad


def internal(name):
    return name.startswith("stats.statsd.")


# ---------------------------------------------------------------------------
# 1. values


ROUND = ["mg.a:14|g", "mt.a:15|ms", "it.counter:10|c", "it.counter:5|c|@0.5", "it.gauge:42.5|g", "it.timer:10|ms",
         "it.timer:20|ms", "it.timer:30|ms", "it.timer:45|ms", "it.set:a|s", "it.set:b|s",
         "api.req:1|c|#env:prod,region:eu-west", "api.lat:12|ms|#env:prod",
         "api.lat:18|ms|#env:prod", "api.lat:7|ms|#env:dev"]


def case_values(results, workdir):
    label = "values"
    srv = InfluxServer(workdir, "influx-values")
    if not results.check("%s: influxd starts" % label, srv.start(), srv.logs()):
        return
    d = None
    try:
        results.check("%s: databases created" % label,
                      srv.create_db("sy") and srv.create_db("flat"))
        # a second influxdb sink, f, with layout "value" into another database
        # renames are not sanitised (with keyNameSanitize on, the default):
        # they put spaces, commas and equals signs into measurements
        d = Daemon(workdir, label, {"url": srv.url("/write?db=sy")}, extra_sinks={
            "f": {"plugin": "influxdb", "url": srv.url("/write?db=flat"), "layout": "value"}},
            routes_lua='{ route.prefix "mg." :rename "m sp,c=1" :to { "c", "i", "f" }, '
                       'route.prefix "mt." :rename "mt x,y=2" :to { "c", "i", "f" }, '
                       'route.default() :to { "c", "i", "f" } }')
        if not results.check("%s: switchyard starts" % label, d.start(), d.logs()):
            return
        for _ in range(3):
            d.send(*ROUND)
            d.wait_flushes(1)
        d.wait_flushes(2)
        flushes = d.flushes()[:-1]  # the last one may still be in flight
        data = InfluxData(srv, "sy")
        results.check("%s: InfluxDB answers the query" % label, data.error is None,
                      str(data.error))
        bad = compare_flushes(data, flushes)
        results.check("%s: every value of every flush read back exactly (%d flushes, %d "
                      "values)" % (label, len(flushes), sum(len(m) for _, m in flushes)),
                      not bad and len(flushes) >= 3,
                      "\n".join(map(repr, bad[:20])) + "\n" + srv.logs() + d.logs())
        # spot checks, spelled out: the model is what the README promises
        ts = next(t for t, m in flushes if "stats.timers.it.timer.mean" in m and
                  m["stats.timers.it.timer.count"] == "4")
        pt = data.points.get(("stats.timers.it.timer", frozenset(), ts), {})
        results.check("%s: a timer is one point with a field per statistic" % label,
                      pt.get("mean") == 26.25 and pt.get("upper_90") == 45 and
                      pt.get("lower_top25") == 45 and pt.get("count") == 4 and
                      pt.get("median") == 25, repr(pt))
        pt = data.points.get(("stats.counters.api.req.rate",
                              frozenset({("env", "prod"), ("region", "eu-west")}), ts), {})
        results.check("%s: DogStatsD tags are Influx tags" % label, pt.get("value") == 1, repr(pt))
        dev = data.points.get(("stats.timers.api.lat", frozenset({("env", "dev")}), ts), {})
        prod = data.points.get(("stats.timers.api.lat", frozenset({("env", "prod")}), ts), {})
        results.check("%s: one measurement, a series per tag set" % label,
                      dev.get("mean") == 7 and prod.get("mean") == 15, repr((dev, prod)))
        results.check("%s: measurements with a space, comma and equals sign" % label,
                      data.get("stats.timers.mt x,y=2", {}, ts, "upper") == 15 and
                      data.get("stats.gauges.m sp,c=1", {}, ts, "value") == 14,
                      repr(srv.measurements("sy")))
        sent = sink_stat_sum(flushes, "i", "sent")
        results.check("%s: sent counted, nothing dropped, no errors" % label,
                      sent > 0 and sink_stat_sum(flushes, "i", "dropped") == 0 and
                      d.metric("switchyard_sink_errors_total") == 0,
                      "sent %s dropped %s errors %s" % (sent, sink_stat_sum(flushes, "i", "dropped"),
                                                        d.metric("switchyard_sink_errors_total")))
        flat = InfluxData(srv, "flat")
        bad = compare_flushes(flat, flushes, layout="value",
                              skip=lambda n: ".sink.i." in n or ".sink.f." in n)
        results.check("%s: layout \"value\": a measurement per name, field value" % label,
                      not bad and flat.get("stats.timers.it.timer.mean", {}, ts, "value") ==
                      26.25, "\n".join(map(repr, bad[:20])))
    finally:
        if d:
            d.finish(results, label)
        srv.stop()


# ---------------------------------------------------------------------------
# 2. escaping


EDGE = [
    # tag values with every character the line protocol escapes
    ("e.space:1|g|#k:a b", "stats.gauges.e.space", {"k": "a b"}),
    ("e.comma:2|g|#k:a\\,b", None, None),  # placeholder, replaced below
    ("e.equals:3|g|#k:a=b=c", "stats.gauges.e.equals", {"k": "a=b=c"}),
    ("e.quote:4|g|#k:say \"hi\"", "stats.gauges.e.quote", {"k": 'say "hi"'}),
    ("e.bslash:5|g|#k:C:\\dir\\x", "stats.gauges.e.bslash", {"k": "C:\\dir\\x"}),
    ("e.keyspace:6|g|#my key:v", "stats.gauges.e.keyspace", {"my key": "v"}),
    ("e.root:7|g|#root,env:prod", "stats.gauges.e.root", {"root": "true", "env": "prod"}),
    ("e.utf8:8|g|#city:K\u00f6ln", "stats.gauges.e.utf8", {"city": "K\u00f6ln"}),
]


def case_escaping(results, workdir):
    label = "escaping"
    srv = InfluxServer(workdir, "influx-esc")
    if not results.check("%s: influxd starts" % label, srv.start(), srv.logs()):
        return
    d = None
    try:
        srv.create_db("sy")
        d = Daemon(workdir, label, {"url": srv.url("/write?db=sy")},
                   options={"keyNameSanitize": False})
        if not results.check("%s: switchyard starts" % label, d.start(), d.logs()):
            return
        # a DogStatsD tag list is split on commas, so a comma in a tag
        # value comes from a Graphite tag written in the name
        lines = [e[0] for e in EDGE if e[1]] + [
            "e.comma;k=a,b:2|g",
            "e.empty:9|g|#k:,j:v",          # empty value: left out
            "e.dup:10|g|#k:1,k:2",          # repeated key: the first kept
            "e.time:11|g|#time:x,j:v",      # "time" is refused by InfluxDB
            "e.trail:12|g|#k:ends\\",       # cannot be written: dropped
            "e.ok:13|g",
        ]
        d.send(*lines)
        d.wait_flushes(2)
        flushes = d.flushes()
        ts = next((t for t, m in flushes if "stats.gauges.e.ok" in m), None)
        data = InfluxData(srv, "sy")
        expected = [(m, tags, float(line.split(":")[1].split("|")[0]))
                    for line, m, tags in EDGE if m]
        expected += [("stats.gauges.e.comma", {"k": "a,b"}, 2),
                     ("stats.gauges.e.empty", {"j": "v"}, 9),
                     ("stats.gauges.e.dup", {"k": "1"}, 10),
                     ("stats.gauges.e.time", {"j": "v"}, 11),
                     ("stats.gauges.e.ok", {}, 13)]
        for m, tags, v in expected:
            got = data.get(m, tags, ts, "value")
            results.check("%s: %s %r read back" % (label, m, tags), got == v,
                          "got %r; stored: %r\n%s" % (
                              got, [k for k in data.points if k[0] == m], d.logs()))
        names = srv.measurements("sy")
        results.check("%s: the trailing backslash was not written" % label,
                      "stats.gauges.e.trail" not in names, repr(names))
        f = dict(flushes).get(ts + 1) or {}
        both = {k: v for t, m in flushes for k, v in m.items() if t >= ts}
        dropped = sink_stat_sum([(t, m) for t, m in flushes if t >= ts], "i", "dropped")
        adjusted = sink_stat_sum([(t, m) for t, m in flushes if t >= ts], "i", "adjusted")
        results.check("%s: one value dropped, three points adjusted, no errors" % label,
                      dropped == 1 and adjusted == 3 and d.metric("switchyard_sink_errors_total") == 0,
                      "dropped %s adjusted %s errors %s %r" % (
                          dropped, adjusted, d.metric("switchyard_sink_errors_total"), (f, both)))
        results.check("%s: the drop and the adjustments are logged" % label,
                      "cannot be written in line protocol" in d.log() and
                      "without some of their tags" in d.log(), d.log()[-3000:])
    finally:
        if d:
            d.finish(results, label)
        srv.stop()


# ---------------------------------------------------------------------------
# 3. restart mid-stream


def case_restart(results, workdir):
    label = "restart"
    srv = InfluxServer(workdir, "influx-restart")
    if not results.check("%s: influxd starts" % label, srv.start(), srv.logs()):
        return
    d = None
    try:
        srv.create_db("sy")
        d = Daemon(workdir, label, {"url": srv.url("/write?db=sy"), "maxQueueBytes": 4096,
                                    "timeoutMs": 1000})
        if not results.check("%s: switchyard starts" % label, d.start(), d.logs()):
            return
        # 40 gauges a flush: about 2.4 KB of lines, so two flushes fill the queue
        batch = ["r.g%02d:%d|g" % (i, i) for i in range(40)]
        for _ in range(2):
            d.send(*batch)
            d.wait_flushes(1)
        srv.kill()
        down_at = len(d.flushes())
        for _ in range(4):
            d.send(*batch)
            d.wait_flushes(1)
        results.check("%s: influxd restarts on the same port" % label, srv.start(), srv.logs())
        up_at = len(d.flushes())
        for _ in range(3):
            d.send(*batch)
            d.wait_flushes(1)
        d.wait_flushes(2)
        flushes = d.flushes()
        data = InfluxData(srv, "sy")
        after = flushes[up_at + 1:-1]
        bad = compare_flushes(data, after, skip=internal)
        results.check("%s: every flush after the restart is in InfluxDB (%d)" % (label, len(after)),
                      not bad and len(after) >= 3, "\n".join(map(repr, bad[:10])) + d.logs())
        before = flushes[1:down_at - 1]
        bad = compare_flushes(data, before, skip=internal)
        results.check("%s: the flushes before the kill survived it (%d)" % (label, len(before)),
                      not bad, "\n".join(map(repr, bad[:10])))
        dropped = sink_stat_sum(flushes, "i", "dropped")
        errors = d.metric("switchyard_sink_errors_total")
        results.check("%s: values beyond the queue dropped and counted, errors counted" % label,
                      dropped > 0 and errors > 0, "dropped %s errors %s" % (dropped, errors))
        # the values given to the sink: every name of every flush but the
        # last (whose own counters come in the next one)
        given = sum(len(m) for _, m in flushes[:-1])
        sent = sink_stat_sum(flushes, "i", "sent")
        queued = sink_stat(flushes[-1][1], "i", "queued")
        results.check("%s: sent + dropped + queued = given" % label,
                      sent + dropped + queued == given,
                      "sent %s + dropped %s + queued %s != %s" % (sent, dropped, queued, given))
        conn = [sink_stat(m, "i", "connected") for _, m in flushes[down_at + 1:up_at]]
        results.check("%s: connected was 0 while influxd was down" % label, 0 in conn, repr(conn))
        results.check("%s: the outage is logged once, not per retry" % label,
                      d.log().count("retrying in") == 1, d.log()[-3000:])
    finally:
        if d:
            d.finish(results, label)
        srv.stop()


# ---------------------------------------------------------------------------
# 3b. a flush larger than the queue, with influxd up: paced, nothing lost


def case_pacing(results, workdir):
    label = "pacing"
    srv = InfluxServer(workdir, "influx-pacing")
    if not results.check("%s: influxd starts" % label, srv.start(), srv.logs()):
        return
    d = None
    try:
        srv.create_db("sy")
        d = Daemon(workdir, label, {"url": srv.url("/write?db=sy"), "maxQueueBytes": 300000,
                                    "batchBytes": 65536})
        if not results.check("%s: switchyard starts" % label, d.start(), d.logs()):
            return
        n = 24000  # about 1 MB of lines in one flush, 3.4 times the queue
        lines = ["p.g%05d:%d|g" % (i, i) for i in range(n)]
        send_udp(d.port, ["\n".join(lines[i:i + 50]) for i in range(0, n, 50)])
        d.wait_flushes(3)
        flushes = d.flushes()
        ts = next((t for t, m in flushes if len([k for k in m if k.startswith("stats.gauges.p.")])
                   == n), None)

        def stored_now():
            ans = srv.query('SELECT count(value) FROM /^stats\\.gauges\\.p\\./ WHERE time = %ds'
                            % (ts or 0), db="sy")
            return sum(s["values"][0][1] for r in ans.get("results", [])
                       for s in r.get("series", []) or [])
        # paced: the flush goes out a queue at a time, and under ASan on a
        # busy machine it may still be going when the third flush is seen
        stored = 0
        deadline = time.monotonic() + 30
        while ts is not None and time.monotonic() < deadline:
            stored = stored_now()
            if stored == n:
                break
            time.sleep(0.5)
        results.check("%s: all %d values of one flush stored (the queue holds a fraction)" %
                      (label, n), ts is not None and stored == n, "stored %r" % stored)
        results.check("%s: nothing dropped" % label, sink_stat_sum(flushes, "i", "dropped") == 0,
                      repr(sink_stat_sum(flushes, "i", "dropped")))
    finally:
        if d:
            d.finish(results, label)
        srv.stop()


# ---------------------------------------------------------------------------
# 3c. a 5xx: retried with backoff until the server takes the batch


def case_5xx(results, workdir):
    label = "5xx"
    srv = InfluxServer(workdir, "influx-5xx", write_timeout="1ns")
    if not results.check("%s: influxd starts (every write answers 500)" % label, srv.start(),
                         srv.logs()):
        return
    d = None
    try:
        srv.create_db("sy")
        d = Daemon(workdir, label, {"url": srv.url("/write?db=sy"), "retryMaxMs": 200})
        if not results.check("%s: switchyard starts" % label, d.start(), d.logs()):
            return
        for i in range(3):
            d.send("five.g:%d|g" % (i + 1), "five.c:1|c")
            d.wait_flushes(1)
        during = d.flushes()
        errors = d.metric("switchyard_sink_errors_total")
        retries = d.metric("switchyard_sink_reconnects_total")
        results.check("%s: each 500 counted as an error, retried, nothing sent or dropped" % label,
                      errors >= 3 and retries >= 2 and sink_stat_sum(during, "i", "sent") == 0 and
                      sink_stat_sum(during, "i", "dropped") == 0 and
                      sink_stat(during[-1][1], "i", "queued") > 0,
                      "errors %s retries %s %r" % (errors, retries, during[-1][1]))
        results.check("%s: the 500 is logged once for the outage, with the code" % label,
                      d.log().count("HTTP 500") == 1, d.log()[-3000:])
        results.check("%s: influxd restarted without the write timeout" % label, srv.restart(),
                      srv.logs())
        d.send("five.g:9|g")
        d.wait_flushes(3)
        flushes = d.flushes()
        data = InfluxData(srv, "sy")
        bad = compare_flushes(data, flushes[1:-1], skip=internal)
        results.check("%s: every flush delivered once the server takes writes (%d)" % (
                      label, len(flushes) - 2), not bad and len(flushes) >= 6,
                      "\n".join(map(repr, bad[:10])) + d.logs())
        results.check("%s: nothing dropped, the recovery logged" % label,
                      sink_stat_sum(flushes, "i", "dropped") == 0 and "takes writes again" in d.log(),
                      d.log()[-3000:])
    finally:
        if d:
            d.finish(results, label)
        srv.stop()


# ---------------------------------------------------------------------------
# 3d. a stuck server: connected, never answering


def case_stall(results, workdir):
    label = "stall"
    srv = InfluxServer(workdir, "influx-stall")
    if not results.check("%s: influxd starts" % label, srv.start(), srv.logs()):
        return
    d = None
    try:
        srv.create_db("sy")
        d = Daemon(workdir, label, {"url": srv.url("/write?db=sy"), "timeoutMs": 500})
        if not results.check("%s: switchyard starts" % label, d.start(), d.logs()):
            return
        d.send("st.g:1|g")
        d.wait_flushes(1)
        srv.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        for i in range(3):
            d.send("st.g:%d|g" % (i + 2), "st.c:1|c")
            d.wait_flushes(1)
        stalled = d.flushes()
        timeouts = d.metric("switchyard_sink_errors_total")
        srv.signal(signal.SIGCONT)
        results.check("%s: the console kept flushing every second" % label,
                      time.monotonic() - t0 < 4.5 and
                      max(b - a for (a, _), (b, _) in zip(stalled, stalled[1:])) == 1,
                      repr([t for t, _ in stalled]))
        results.check("%s: the unanswered POSTs timed out and were counted" % label,
                      timeouts >= 1 and "timed out" in d.log(), d.log()[-2000:])
        d.wait_flushes(3)
        flushes = d.flushes()
        bad = compare_flushes(InfluxData(srv, "sy"), flushes[1:-1], skip=internal)
        results.check("%s: after SIGCONT every flush is in InfluxDB (%d)" % (label, len(flushes) - 2),
                      not bad, "\n".join(map(repr, bad[:10])) + d.logs())
    finally:
        if d:
            d.finish(results, label)
        srv.stop()


# ---------------------------------------------------------------------------
# 4. a 4xx


def case_refused(results, workdir):
    label = "4xx"
    srv = InfluxServer(workdir, "influx-4xx")
    if not results.check("%s: influxd starts" % label, srv.start(), srv.logs()):
        return
    d = None
    try:
        d = Daemon(workdir, label, {"url": srv.url("/write?db=missing")})
        if not results.check("%s: switchyard starts" % label, d.start(), d.logs()):
            return
        for _ in range(3):
            d.send("x.g:1|g")
            d.wait_flushes(1)
        flushes = d.flushes()
        dropped = sink_stat_sum(flushes, "i", "dropped")
        errors = d.metric("switchyard_sink_errors_total")
        results.check("%s: refused values dropped and counted as errors" % label,
                      dropped > 0 and errors > 0 and sink_stat_sum(flushes, "i", "sent") == 0,
                      "dropped %s errors %s" % (dropped, errors))
        results.check("%s: not retried (nothing waits)" % label,
                      sink_stat(flushes[-1][1], "i", "queued") == 0 and
                      d.metric("switchyard_sink_reconnects_total") == 0, repr(flushes[-1][1]))
        err = d.log()
        results.check("%s: logged with the server's message, at a bounded rate" % label,
                      "HTTP 404" in err and "database not found" in err and
                      err.count("HTTP 404") <= 2, err[-3000:])
    finally:
        if d:
            d.finish(results, label)
        srv.stop()


# ---------------------------------------------------------------------------
# 5. --check


BAD_SETTINGS = [
    ({}, "setting 'url' is required"),
    ({"url": "ftp://127.0.0.1/write?db=x"}, "only http://"),
    ({"url": "http://127.0.0.1:8086/write"}, "needs the database"),
    ({"url": "http://127.0.0.1:8086/write?db=x&precision=s"}, "'precision' setting"),
    ({"url": "http://127.0.0.1:8086/write?db=x", "precision": "h"}, "setting 'precision'"),
    ({"url": "http://127.0.0.1:8086/write?db=x", "layout": "nested"}, "setting 'layout'"),
    ({"url": "http://127.0.0.1:8086/write?db=x", "batchLines": 0}, "setting 'batchLines'"),
    ({"url": "http://127.0.0.1:8086/write?db=x", "retryMinMs": 500, "retryMaxMs": 100},
     "retryMaxMs"),
    ({"url": "udp://127.0.0.1:8089/write"}, "udp://HOST:PORT"),
    ({"url": "http://127.0.0.1:8086/write?db=x", "maxDatagramBytes": 100000},
     "maxDatagramBytes"),
    ({"url": "http://127.0.0.1:8086/write?db=x", "batchSize": 10}, "batchSize"),
]


def run_check(workdir, sink):
    path = os.path.join(workdir, "check.lua")
    cfg = {"listen": ["udp://127.0.0.1:%d" % free_port("udp")],
           "sinks": {"i": dict({"plugin": "influxdb"}, **sink)}}
    with open(path, "w") as f:
        f.write("return " + to_lua(cfg) + "\n")
    p = subprocess.run([switchyard_binary(), "--check", path], cwd=REPO_DIR,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def case_check(results, workdir):
    label = "check"
    for sink, want in BAD_SETTINGS:
        code, out = run_check(workdir, sink)
        results.check("%s: %r refused (%s)" % (label, sink, want),
                      code != 0 and want in out, "exit %d: %s" % (code, out))
    port = free_port("tcp")
    code, out = run_check(workdir, {"url": "http://127.0.0.1:%d/write?db=x" % port,
                                    "precision": "ms"})
    results.check("%s: a good config passes with nothing listening" % label, code == 0,
                  "exit %d: %s" % (code, out))
    code, out = run_check(workdir, {"url": "udp://no-such-host.invalid:8089"})
    results.check("%s: check resolves nothing" % label, code == 0, "exit %d: %s" % (code, out))


# ---------------------------------------------------------------------------
# 6. UDP


def case_udp(results, workdir):
    label = "udp"
    srv = InfluxServer(workdir, "influx-udp", udp_db="sy", udp_precision="s")
    if not results.check("%s: influxd starts with a UDP listener" % label, srv.start(), srv.logs()):
        return
    d = None
    try:
        srv.create_db("sy")
        # u2 sends to a port where nothing listens
        d = Daemon(workdir, label, {"url": "udp://%s:%d" % (LOOPBACK, srv.udp_port),
                                    "maxDatagramBytes": 600},
                   extra_sinks={"u2": {"plugin": "influxdb",
                                       "url": "udp://%s:%d" % (LOOPBACK, free_port("udp"))}})
        if not results.check("%s: switchyard starts" % label, d.start(), d.logs()):
            return
        for _ in range(2):
            d.send(*ROUND)
            d.wait_flushes(1)
        d.wait_flushes(1)
        time.sleep(0.3)  # the listener's batch timeout
        flushes = d.flushes()[:-1]
        data = InfluxData(srv, "sy")
        bad = compare_flushes(data, flushes)
        results.check("%s: every value read back (%d flushes, datagrams of 600 bytes)" % (
                      label, len(flushes)), not bad and len(flushes) >= 2,
                      "\n".join(map(repr, bad[:20])) + srv.logs())
        results.check("%s: sent counted, no errors" % label,
                      sink_stat_sum(flushes, "i", "sent") > 0 and
                      d.metric("switchyard_sink_errors_total") == 0, repr(flushes[-1][1]))
        results.check("%s: datagrams to a closed port counted as errors, and logged" % label,
                      (d.metric("switchyard_sink_errors_total", "u2") or 0) > 0 and
                      "Connection refused" in d.log(), d.log()[-2000:])
    finally:
        if d:
            d.finish(results, label)
        srv.stop()


# ---------------------------------------------------------------------------
# 7. raw samples


def case_samples(results, workdir):
    label = "samples"
    srv = InfluxServer(workdir, "influx-samples")
    if not results.check("%s: influxd starts" % label, srv.start(), srv.logs()):
        return
    d = None
    try:
        srv.create_db("raw")
        d = Daemon(workdir, label, {"url": srv.url("/write?db=raw"), "precision": "ns"},
                   routes_lua='{ route.tag "trace" :passthrough "i", route.default() :to "c" }')
        if not results.check("%s: switchyard starts" % label, d.start(), d.logs()):
            return
        d.send("req.time:120|ms|@0.5|#trace:9f2c,path:/x", "users:alice|s|#trace:9f2c",
               "q.depth:-3|g|#trace:9f2c", "hits:2|c|#trace:9f2c",
               "same.t:1|ms|#trace:9f2c", "same.t:2|ms|#trace:9f2c", "same.t:3|ms|#trace:9f2c")
        d.wait_flushes(2)
        got = {}
        for m in ("req.time", "users", "q.depth", "hits"):
            pts = srv.points("raw", m)
            got[m] = pts[0] if len(pts) == 1 else pts
        want = {
            "req.time": {"value": 120, "rate": 0.5, "metric_type": "timing", "trace": "9f2c",
                         "path": "-x"},  # tags sanitised as Graphite sees them
            "users": {"member": "alice", "metric_type": "set", "trace": "9f2c"},
            "q.depth": {"value": -3, "delta": True, "metric_type": "gauge", "trace": "9f2c"},
            "hits": {"value": 2, "metric_type": "counter", "trace": "9f2c"},
        }
        same = srv.points("raw", "same.t", epoch="ns")
        results.check("%s: three samples of one series in one batch are three points" % label,
                      sorted(p.get("value") for p in same) == [1, 2, 3] and
                      len({p["time"] for p in same}) == 3, repr(same))
        for m, w in want.items():
            g = got.get(m)
            ok = isinstance(g, dict) and all(g.get(k) == v for k, v in w.items())
            results.check("%s: %s stored as one point with its fields and tags" % (label, m), ok,
                          repr(g))
    finally:
        if d:
            d.finish(results, label)
        srv.stop()


def global_metric(d, name):
    """A value of switchyard's own /metrics without labels, or None."""
    status, _, body = http_get(d.http_port, "/metrics")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def case_timestamps(results, workdir):
    """DogStatsD timestamps (|T): a raw sample is a point at its client's
    time (in the precision's unit); one outside the window (10 days old, a
    year ahead) is stored at its arrival and counted; the statsd
    aggregation (the console's flush) keeps every sample in the interval it
    arrived in."""
    label = "timestamps"
    srv = InfluxServer(workdir, "influx-ts")
    if not results.check("%s: influxd starts" % label, srv.start(), srv.logs()):
        return
    d = None
    try:
        srv.create_db("ts")
        d = Daemon(workdir, label, {"url": srv.url("/write?db=ts"), "precision": "ms"},
                   routes_lua='{ route.default() :to "c" :passthrough "i" }')
        if not results.check("%s: switchyard starts" % label, d.start(), d.logs()):
            return
        now = int(time.time())
        t1, t2 = now - 120, now - 60
        d.send("ts.g:42|g|T%d" % t1, "ts.g:43|g|#env:a|T%d" % t2,
               "ts.multi:1:2|ms|T%d" % t1, "ts.old:7|g|T%d" % (now - 10 * 86400),
               "ts.ahead:8|g|T%d" % (now + 365 * 86400), "ts.none:9|g")
        d.wait_flushes(2)
        got = {}
        for m in ("ts.g", "ts.multi", "ts.old", "ts.ahead", "ts.none"):
            got[m] = sorted((p["time"], p.get("value")) for p in srv.points("ts", m, epoch="ms"))
        results.check("%s: each timestamped sample is a point at its own time, in ms" % label,
                      got["ts.g"] == [(t1 * 1000, 42), (t2 * 1000, 43)], repr(got["ts.g"]))
        results.check("%s: several values of one message share its time" % label,
                      [t for t, _ in got["ts.multi"]] == [t1 * 1000] * 2 or
                      # two points of one series at one time: the last one stays
                      [t for t, _ in got["ts.multi"]] == [t1 * 1000], repr(got["ts.multi"]))
        near = [abs(t / 1000.0 - now) < 60 for m in ("ts.old", "ts.ahead", "ts.none")
                for t, _ in got[m]]
        results.check("%s: out of the window (10 days old, a year ahead) and without |T: "
                      "stored at arrival" % label, len(near) == 3 and all(near), repr(got))
        outside = global_metric(d, "switchyard_dogstatsd_timestamps_outside_total")
        results.check("%s: the two outside the window are counted (%r)" % (label, outside),
                      outside == 2, repr(outside))
        results.check("%s: ... and logged" % label, "outside [-600, +60]" in d.logs(),
                      d.logs()[-1500:])
        # statsd's aggregation is unchanged: the console (a flushed sink)
        # got the gauge in the interval the samples arrived in
        flushes = d.flushes()
        vals = [m.get("stats.gauges.ts.g") for _, m in flushes if "stats.gauges.ts.g" in m]
        results.check("%s: the console's flush has the gauge, aggregated on arrival (%r)" %
                      (label, vals[:1]), vals and vals[0] == "42", repr(flushes[:3]))
    finally:
        if d:
            d.finish(results, label)
        srv.stop()


# ---------------------------------------------------------------------------
# 8. VictoriaMetrics


def case_victoria(results, workdir):
    label = "victoria"
    vm = VictoriaMetrics(workdir, "vm")
    if not results.check("%s: victoria-metrics starts" % label, vm.start(), vm.logs()):
        return
    d = None
    try:
        d = Daemon(workdir, label, {"url": vm.url("/write?db=sy"), "precision": "ms"})
        if not results.check("%s: switchyard starts" % label, d.start(), d.logs()):
            return
        for _ in range(2):
            d.send(*ROUND)
            d.wait_flushes(1)
        d.wait_flushes(2)
        flushes = d.flushes()[:-1]
        # VictoriaMetrics names a series measurement_field, and adds db
        stored = {}
        for name in ("stats.timers.it.timer", "stats.timers.api.lat", "stats.gauges.it.gauge",
                     "stats.counters.api.req.rate", "stats.sets.it.set"):
            ok = wait_until(lambda: vm.export('{__name__=~"%s_.*"}' % name.replace(".", "\\\\.")),
                            10)
            for s in ok or []:
                labels = dict(s["metric"])
                metric = labels.pop("__name__")
                for ts_ms, v in zip(s["timestamps"], s["values"]):
                    stored[(metric, frozenset(labels.items()), ts_ms // 1000)] = v
        bad = []
        n = 0
        for ts, metrics in flushes:
            for cname, text in metrics.items():
                m, field, tags = model_point(cname)
                if not any(m == p for p in ("stats.timers.it.timer", "stats.timers.api.lat",
                                            "stats.gauges.it.gauge", "stats.counters.api.req.rate",
                                            "stats.sets.it.set")):
                    continue
                n += 1
                key = ("%s_%s" % (m, field), frozenset(dict(tags, db="sy").items()), ts)
                # VictoriaMetrics keeps 12 significant digits (its docs)
                if stored.get(key) is None or \
                        float("%.12g" % stored[key]) != float("%.12g" % float(text)):
                    bad.append((key, text, stored.get(key)))
        results.check("%s: %d values read back exactly through /api/v1/export" % (label, n),
                      not bad and n > 30, "\n".join(map(repr, bad[:20])) +
                      "\n" + repr(list(stored)[:10]))
        results.check("%s: nothing dropped, no errors" % label,
                      sink_stat_sum(flushes, "i", "dropped") == 0 and
                      d.metric("switchyard_sink_errors_total") == 0 and
                      sink_stat_sum(flushes, "i", "sent") > 0, repr(flushes[-1][1]))
    finally:
        if d:
            d.finish(results, label)
        vm.stop()


def main():
    results = Results(TEST_NAME)
    if not os.access(switchyard_binary(), os.X_OK):
        results.check("switchyard binary exists (run make)", False, switchyard_binary())
        return results.finish()
    if not os.access(INFLUXD, os.X_OK):
        results.check("influxd installed (.ci/deps.sh test installs influxdb)", False, INFLUXD)
        return results.finish()
    workdir = make_workdir("sy-influx-")
    t0 = time.monotonic()
    try:
        only = sys.argv[1:]
        cases = [("values", case_values), ("escaping", case_escaping),
                 ("restart", case_restart), ("pacing", case_pacing), ("5xx", case_5xx),
                 ("stall", case_stall),
                 ("4xx", case_refused), ("check", case_check),
                 ("udp", case_udp), ("samples", case_samples), ("timestamps", case_timestamps)]
        if os.access(VICTORIA, os.X_OK):
            cases.append(("victoria", case_victoria))
        else:
            results.skip("victoria", "victoria-metrics is not installed")
        for name, fn in cases:
            if only and name not in only:
                continue
            fn(results, workdir)
    finally:
        remove_workdir(workdir)
    results.note("took %.1f s" % (time.monotonic() - t0))
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
