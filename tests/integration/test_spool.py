#!/usr/bin/env python3
"""Integration test: a sink's disk spool rides out a carbon outage.

A graphite sink with a 1 MiB memory queue and `spool = { dir = ... }`,
flushing every 50 ms, against a real carbon-cache:

  1. outage: carbon-cache down for 200 flushes, each with its own
     counter key (spool.seq.N = N+1) beside 300 padding keys (about 5 MB
     of Graphite lines, five times the memory queue).  After carbon comes
     back, every seq key is read back from its whisper file with its value,
     nothing was dropped, and the spool is empty again (its segments
     deleted); then carbon-cache stopped with SIGSTOP (connected, reading
     nothing) for 40 flushes of 400 keys with 200-byte names: spooled instead of dropped at
     the queue; SIGTERM while it is still stopped hands the graphite
     queue to the spool; after a restart and SIGCONT every value is read
     back;
  2. restart: the same outage, the daemon killed with SIGKILL half way,
     one record of the spool damaged on purpose, the daemon started again
     with carbon up: every value `switchyard spool cat` showed in the spool
     at the kill arrives except those of the damaged record, and the
     damage is counted (switchyard_spool_corrupt_total);
  3. full: two spools of 256 KiB with carbon down, whenFull = dropOldest
     and dropNewest: drops are counted (switchyard_spool_dropped_total,
     also in switchyard_sink_dropped_total), the spool stays within its
     bound, the first flush is what dropNewest keeps and dropOldest gives
     up, and ingest is unaffected: every line sent was parsed;
  4. redis: the redis sink through an outage of redis-server, with a
     SIGTERM and a restart in it (the last values sent just before the
     SIGTERM): every counter in Redis exactly once with its value;
  5. repeater: the repeater's TCP path to a second switchyard that is
     down for 40 flushes: every value reaches it once it starts;
  6. check: bad spool settings are refused by --check with the key named;
  7. take_back (redis_stuck, repeater_stuck, influx_stuck): the server
     connected, then stopped with SIGSTOP for 40 flushes, SIGTERM while it
     is still stopped: what the plugin's own queue holds at
     shutdownTimeout goes to the spool; after SIGCONT and a restart every
     seq value arrives once (redis: each counter exactly once with its
     value);
  8. write_through: spool.mode = "always" with a healthy carbon-cache,
     SIGKILL right after 60 large flushes, restart: every value flushed
     before the kill read back from whisper;
  9. stall_only: a 64 MiB graphite queue that never fills, carbon-cache
     stopped: only the host's 1 s stall check can route flushes to the
     spool, and it does; every value arrives after SIGCONT.

  10. repeater_samples: raw pass-through samples are spooled too: the
     repeater's next hop down, a SIGTERM and restart of switchyard in the
     outage, then the hop starts: a counter's total arrives exactly;
     remote_write_samples: the same for remote_write and VictoriaMetrics;
     remote_write_stuck: take_back for remote_write, VictoriaMetrics
     stopped with SIGSTOP, SIGTERM, restart: every counter's total exact;
     remote_write_kept_full: the same with a 1 KiB keep log: the samples
     beyond it counted and logged, the loss at shutdown said.

  11. raw samples and DogStatsD lines (take_back_samples, take_back_lines,
     and the spool's record of raw lines): repeater_raw_stuck and
     influx_samples_stuck stop the receiver (a plain TCP reader, influxd)
     with SIGSTOP, SIGTERM, restart: each seq sample, event and service
     check arrives exactly once (influxdb: at its |T time);
     repeater_events_down spools events while the reader is down (spool
     cat shows them) and delivers them once, in order, after a restart;
     events_write_through sends them all through a mode = "always" spool;
     repeater_kept_full: a 4 KiB maxKeptBytes, the rest counted, logged,
     and the loss at shutdown said.

SPOOL_CASES=name,name (the functions' names) runs only those cases.

Usage:  /usr/bin/python3 tests/integration/test_spool.py     ($SY_BIN)
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.carbon import CarbonCache  # noqa: E402
from lib.influx import INFLUXD, InfluxServer  # noqa: E402
from lib.prom import VICTORIA_METRICS, VictoriaMetricsServer  # noqa: E402
from lib.netutil import LOOPBACK, free_port, free_port_pair, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.resp import RedisServer, query  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.sanitizer import check_clean  # noqa: E402
from lib.switchyard import switchyard_binary, to_lua  # noqa: E402

import whisper  # noqa: E402  (Debian's python3-whisper, which carbon uses)

TEST_NAME = "test_spool"
PAD = 300
QUEUE = 1 << 20


class Daemon:
    def __init__(self, workdir, name, carbon_port, spool, sink=None, extra=None):
        self.port = free_port_pair()
        self.plugin = sink["plugin"] if sink else "graphite"
        self.http = free_port("tcp")
        self.mgmt = free_port("tcp")
        self.name = name
        self.workdir = workdir
        cfg = {
            "listen": ["udp://%s:%d" % (LOOPBACK, self.port)],
            "flushInterval": 50,
            "deleteCounters": True,
            "httpAddress": "%s:%d" % (LOOPBACK, self.http),
            "mgmt_address": LOOPBACK,
            "mgmt_port": self.mgmt,
            "shutdownTimeout": 1000,
            "sinks": {"carbon": sink or {"plugin": "graphite", "host": LOOPBACK,
                                         "port": carbon_port, "maxQueueBytes": QUEUE,
                                         "reconnectMinMs": 50, "reconnectMaxMs": 300}},
        }
        cfg.update(extra or {})
        self.cfg = cfg
        self.path = os.path.join(workdir, name + ".lua")
        self.write_config(spool)
        self.runs = 0
        self.proc = None

    def write_config(self, spool):
        if spool is None:
            self.cfg["sinks"]["carbon"].pop("spool", None)
        else:
            self.cfg["sinks"]["carbon"]["spool"] = spool
        with open(self.path, "w") as f:
            f.write("return " + to_lua(self.cfg) + "\n")

    def reload(self, spool, wait_for):
        """New spool settings by SIGHUP; True once the log says `wait_for`
        (counted from this reload on)."""
        before = self.proc.logs(10 ** 7).count(wait_for)
        self.write_config(spool)
        os.kill(self.proc.pid, signal.SIGHUP)
        return wait_until(lambda: self.proc.logs(10 ** 7).count(wait_for) > before, 15)

    def start(self):
        self.runs += 1
        self.proc = Process("%s.%d" % (self.name, self.runs),
                            [switchyard_binary(), "-c", self.path], self.workdir).start()
        return wait_for_port(self.http, 15, alive=self.proc.alive)

    def send(self, lines):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        chunk = []
        size = 0
        for line in lines:
            if size + len(line) + 1 > 1400:
                sock.sendto("\n".join(chunk).encode(), (LOOPBACK, self.port))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            sock.sendto("\n".join(chunk).encode(), (LOOPBACK, self.port))
        sock.close()

    def metrics(self):
        try:
            return urllib.request.urlopen("http://%s:%d/metrics" % (LOOPBACK, self.http),
                                          timeout=5).read().decode()
        except OSError:
            return ""

    def metric(self, name, body=None):
        for line in (body if body is not None else self.metrics()).splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.split()[-1])
        return None

    def console(self, command):
        sock = socket.create_connection((LOOPBACK, self.mgmt), timeout=10)
        sock.sendall((command + "\nquit\n").encode())
        out = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            out += data
        sock.close()
        return out.decode(errors="replace")

    def spool(self, what):
        return self.metric('switchyard_spool_%s{sink="carbon",plugin="%s"}' % (what, self.plugin))

    def sink(self, what):
        return self.metric('switchyard_sink_%s{sink="carbon",plugin="%s"}' % (what, self.plugin))

    def stop_clean(self, res, label):
        rc = self.proc.stop(15)
        check_clean(res, label, switchyard_binary(), self.proc.pid, self.proc.logs(100000))
        return rc


def spool_cat(directory):
    r = subprocess.run([switchyard_binary(), "spool", "cat", directory], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def outage_traffic(d, steps, first=0):
    """Step i sends spool.seq.i = i+1 and the padding keys, one step a
    flush interval."""
    pad = ["spool.pad.k%d:1|c" % k for k in range(PAD)]
    for i in range(first, first + steps):
        d.send(["spool.seq.%d:%d|c" % (i, i + 1)] + pad)
        time.sleep(0.05)


def whisper_value(carbon, metric):
    path = carbon.wsp_path(metric)
    if not os.path.exists(path):
        return None
    try:
        (start, end, step), values = whisper.fetch(path, time.time() - 600, time.time() + 5)
    except Exception:  # a file carbon is still creating
        return None
    got = [v for v in values if v is not None]
    return got


def seq_arrived(carbon, indices):
    """indices -> those whose whisper file holds exactly [i+1]."""
    ok = set()
    for i in indices:
        got = whisper_value(carbon, "stats_counts.spool.seq.%d" % i)
        if got == [float(i + 1)]:
            ok.add(i)
    return ok


def outage(res, workdir):
    carbon = CarbonCache(os.path.join(workdir, "carbon1"))  # down until started below
    spool_dir = os.path.join(workdir, "spool1")
    d = Daemon(workdir, "outage", carbon.line_port,
               {"dir": spool_dir, "maxBytes": "64MiB", "fsync": "interval",
                "fsyncInterval": 200})
    try:
        if not res.check("outage: switchyard starts", d.start(), d.proc.logs()):
            return
        wait_until(lambda: d.sink("connected") == 0, 10)
        outage_traffic(d, 200)
        wait_until(lambda: (d.spool("spooled_total") or 0) >= 200 * 2 * PAD, 20)
        spooled = d.spool("spooled_total") or 0
        res.check("outage: 200 flushes went to the spool while carbon was down "
                  "(%d values, %d bytes, %d records)" % (spooled, d.spool("bytes") or 0,
                                                         d.spool("records") or 0),
                  spooled >= 200 * 2 * PAD and (d.spool("bytes") or 0) > QUEUE,
                  d.proc.logs())
        res.check("outage: the spool's oldest flush has an age",
                  (d.spool("oldest_age_seconds") or 0) >= 0 and (d.spool("records") or 0) > 0)
        text = d.console("sinks")
        res.check("outage: the console's `sinks` shows the spool",
                  "carbon spool bytes=" in text and "records=" in text, text)
        if not res.check("outage: carbon-cache starts", carbon.start(), carbon.logs()):
            return
        t0 = time.time()
        emptied = wait_until(lambda: d.spool("records") == 0 and d.spool("bytes") == 0 and
                             d.sink("queued") == 0, 60)
        res.note("replayed %d values in %.1f s (polled every 50 ms, from carbon's port opening)"
                 % (d.spool("replayed_total") or 0, time.time() - t0))
        res.check("outage: the spool was replayed and its segments deleted",
                  emptied, "records %r bytes %r queued %r\n%s" %
                  (d.spool("records"), d.spool("bytes"), d.sink("queued"), d.proc.logs()))
        want = set(range(200))
        got = set()
        deadline = time.time() + 40
        while time.time() < deadline and got != want:
            got |= seq_arrived(carbon, want - got)
            if got != want:
                time.sleep(0.5)
        missing = sorted(want - got)
        res.check("outage: every one of 200 flushes' seq values read back from whisper "
                  "with its value", not missing,
                  "%d missing, e.g. %r: %r" % (len(missing), missing[:5],
                                               [whisper_value(carbon, "stats_counts.spool.seq.%d" % i)
                                                for i in missing[:3]]))
        body = d.metrics()
        res.check("outage: nothing dropped (sink %r, spool %r), nothing corrupt (%r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total"), d.spool("corrupt_total")),
                  d.metric('switchyard_sink_dropped_total{sink="carbon",plugin="graphite"}', body) == 0
                  and d.metric('switchyard_spool_dropped_total{sink="carbon",plugin="graphite"}', body) == 0
                  and d.metric('switchyard_spool_corrupt_total{sink="carbon",plugin="graphite"}', body) == 0)
        res.check("outage: replayed_total counts every spooled value",
                  d.spool("replayed_total") == d.spool("spooled_total"),
                  "replayed %r spooled %r" % (d.spool("replayed_total"), d.spool("spooled_total")))
        segs = [f for f in os.listdir(os.path.join(spool_dir, "carbon")) if f.endswith(".seg")]
        res.check("outage: no segment left on disk", not segs, repr(segs))
        stuck(res, d, carbon)
    finally:
        if d.proc:
            d.stop_clean(res, "outage")
        carbon.stop()


def stuck(res, d, carbon):
    """carbon-cache stopped with SIGSTOP: connected, but reading nothing.
    The sink's queue stops moving; the host spools instead of letting the
    plugin drop what its queue cannot take.  Then SIGTERM while carbon is
    still stopped: what the graphite queue holds when shutdownTimeout runs
    out is handed back to the spool (take_back), and the next start
    delivers it."""
    spooled0 = d.spool("spooled_total") or 0
    os.kill(carbon.pid, signal.SIGSTOP)
    try:
        # volume with few whisper files (each is 43 KB to create and delete)
        pad = ["spool.padlong.k%d%s:1|c" % (k, "x" * 200) for k in range(400)]
        for i in range(200, 240):
            d.send(["spool.seq.%d:%d|c" % (i, i + 1)] + pad)
            time.sleep(0.05)
        wait_until(lambda: (d.spool("spooled_total") or 0) > spooled0, 10)
        res.check("stuck: with carbon-cache stopped (SIGSTOP), flushes went to the spool "
                  "(%r values) and the sink stayed connected (%r)"
                  % ((d.spool("spooled_total") or 0) - spooled0, d.sink("connected")),
                  (d.spool("spooled_total") or 0) > spooled0 and d.sink("connected") == 1)
        queued = d.sink("queued") or 0
        res.check("stuck: nothing dropped while stuck (sink %r, spool %r), %d lines in the "
                  "graphite queue" % (d.sink("dropped_total"), d.spool("dropped_total"), queued),
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0 and queued > 0)
        rc = d.stop_clean(res, "stuck")
        logs = d.proc.logs(200000)
        res.check("stuck: SIGTERM with carbon still stopped exits 0 and hands the graphite "
                  "queue to the spool (%r)" % rc,
                  rc == 0 and "still held at shutdown went to the spool" in logs, logs[-3000:])
        # replay order is flush order: the graphite queue's lines (older)
        # are ahead of the flushes the stall check spooled after them
        _rc, text, _err = spool_cat(d.cfg["sinks"]["carbon"]["spool"]["dir"])
        times = [int(l.split()[2]) for l in text.splitlines() if len(l.split()) == 3]
        back = [(a, b) for a, b in zip(times, times[1:]) if b < a]
        res.check("stuck: the spool replays in flush order (%d values, flush times never go "
                  "back)" % len(times), times and not back,
                  "%d times go back, e.g. %r" % (len(back), back[:3]))
        if not res.check("stuck: switchyard starts again", d.start(), d.proc.logs()):
            return
    finally:
        os.kill(carbon.pid, signal.SIGCONT)
    emptied = wait_until(lambda: d.spool("records") == 0 and d.sink("queued") == 0, 60)
    res.check("stuck: once carbon-cache reads again the spool is replayed", emptied,
              "records %r queued %r" % (d.spool("records"), d.sink("queued")))
    want = set(range(200, 240))
    got = set()
    deadline = time.time() + 40
    while time.time() < deadline and got != want:
        got |= seq_arrived(carbon, want - got)
        if got != want:
            time.sleep(0.5)
    missing = sorted(want - got)
    res.check("stuck: every one of 40 flushes' seq values read back from whisper", not missing,
              "%d missing, e.g. %r" % (len(missing), missing[:5]))
    res.check("stuck: nothing dropped after the restart (sink %r, spool %r)"
              % (d.sink("dropped_total"), d.spool("dropped_total")),
              d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)


def redis_outage(res, workdir):
    """The redis sink through the same outage: redis-server down for 60
    flushes, then started; every seq counter is in Redis exactly once with
    its value (a replayed batch is written under its flush time, so nothing
    doubles)."""
    redis = RedisServer(workdir, "redis-out")
    sink = {"plugin": "redis", "host": LOOPBACK, "port": redis.port, "prefix": "p:",
            "maxQueueMetrics": 5000, "reconnectMinMs": 50, "reconnectMaxMs": 300}
    d = Daemon(workdir, "redis_outage", 0, {"dir": os.path.join(workdir, "spool_redis"),
                                            "maxBytes": "64MiB", "fsync": "never"}, sink)
    try:
        if not res.check("redis: switchyard starts with redis-server down", d.start(),
                         d.proc.logs()):
            return
        wait_until(lambda: d.sink("connected") == 0, 10)
        pad = ["spool.pad.k%d:1|c" % k for k in range(PAD)]
        for i in range(60):
            d.send(["red.seq.%d:%d|c" % (i, i + 1)] + pad)
            time.sleep(0.05)
        wait_until(lambda: (d.spool("spooled_total") or 0) >= 60 * 2 * PAD, 10)
        res.check("redis: 60 flushes spooled while redis-server was down (%r values)"
                  % d.spool("spooled_total"), (d.spool("spooled_total") or 0) >= 60 * 2 * PAD)
        # the last values, then SIGTERM at once: the final flush is spooled too
        d.send(["red.seq.60:61|c"])
        time.sleep(0.01)
        rc = d.stop_clean(res, "redis first run")
        res.check("redis: SIGTERM during the outage exits 0 (%r)" % rc, rc == 0, d.proc.logs())
        if not res.check("redis: switchyard starts again on its spool", d.start(), d.proc.logs()):
            return
        if not res.check("redis: redis-server starts", redis.start(), redis.logs()):
            return
        res.check("redis: the spool was replayed",
                  wait_until(lambda: d.spool("records") == 0 and d.sink("queued") == 0, 60),
                  "records %r queued %r" % (d.spool("records"), d.sink("queued")))
        names = ["stats_counts.red.seq.%d" % i for i in range(61)]
        wait_until(lambda: all(query(redis.port, "HEXISTS", "p:latest", n) == 1
                               for n in names[-3:]), 20, step=0.3)
        c = redis.client()
        try:
            series = c.pipeline([("ZRANGE", "p:ts:" + n, 0, -1) for n in names])
            latest = c.pipeline([("HGET", "p:latest", n) for n in names])
        finally:
            c.close()
        bad = []
        for i, (pts, last) in enumerate(zip(series, latest)):
            pts = [p.decode() if isinstance(p, bytes) else p for p in (pts or [])]
            last = last.decode() if isinstance(last, bytes) else last
            if len(pts) != 1 or not pts[0].endswith(":%d" % (i + 1)) or last != str(i + 1):
                bad.append((names[i], pts, last))
        res.check("redis: each of 61 seq counters (the last sent just before SIGTERM) in Redis "
                  "exactly once with its value",
                  not bad, "%d wrong, e.g. %r" % (len(bad), bad[:3]))
        res.check("redis: nothing dropped (sink %r, spool %r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total")),
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
    finally:
        if d.proc:
            d.stop_clean(res, "redis")
        redis.stop()


def repeater_outage(res, workdir):
    """The repeater's TCP path (flushed values as gauges) to a second
    switchyard that is down for 40 flushes, then started: every seq value
    reaches it."""
    hop_port = free_port_pair()
    sink = {"plugin": "repeater", "host": LOOPBACK, "port": hop_port, "protocol": "tcp",
            "flushed": "all", "maxQueueBytes": 256 << 10, "reconnectMinMs": 50,
            "reconnectMaxMs": 300}
    d = Daemon(workdir, "repeater_outage", 0, {"dir": os.path.join(workdir, "spool_rep"),
                                               "maxBytes": "64MiB", "fsync": "never"}, sink)
    hop_cfg = os.path.join(workdir, "hop.lua")
    with open(hop_cfg, "w") as f:
        f.write("return " + to_lua({"listen": ["tcp://%s:%d" % (LOOPBACK, hop_port)],
                                    "flushInterval": 100, "deleteGauges": True,
                                    "sinks": {"out": {"plugin": "console"}}}) + "\n")
    hop = Process("hop", [switchyard_binary(), "-c", hop_cfg], workdir)
    try:
        if not res.check("repeater: switchyard starts with its next hop down", d.start(),
                         d.proc.logs()):
            return
        wait_until(lambda: d.sink("connected") == 0, 10)
        pad = ["spool.pad.k%d:1|c" % k for k in range(PAD)]
        for i in range(40):
            d.send(["rep.seq.%d:%d|c" % (i, i + 1)] + pad)
            time.sleep(0.05)
        wait_until(lambda: (d.spool("spooled_total") or 0) >= 40 * 2 * PAD, 10)
        res.check("repeater: 40 flushes spooled while the next hop was down (%r values)"
                  % d.spool("spooled_total"), (d.spool("spooled_total") or 0) >= 40 * 2 * PAD)
        hop.start()
        if not res.check("repeater: the next hop starts", wait_for_port(hop_port, 10,
                                                                       alive=hop.alive)):
            return

        def arrived():
            got = {}
            try:
                with open(hop.stdout_path) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) == 3 and ".stats_counts.rep.seq." in parts[0]:
                            got.setdefault(int(parts[0].rsplit(".", 1)[1]), set()).add(parts[1])
            except OSError:
                pass
            return got
        wait_until(lambda: len(arrived()) >= 40, 30, step=0.3)
        got = arrived()
        bad = [(i, got.get(i)) for i in range(40) if got.get(i) != {str(i + 1)}]
        res.check("repeater: every one of 40 flushes' seq values reached the next hop with its "
                  "value", not bad, "%d wrong, e.g. %r" % (len(bad), bad[:3]))
        res.check("repeater: the spool was replayed, nothing dropped (sink %r, spool %r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total")),
                  wait_until(lambda: d.spool("records") == 0, 20) and
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
    finally:
        if d.proc:
            d.stop_clean(res, "repeater")
        hop.stop()


def stuck_term(res, d, label, server_stop, server_cont, prefix, steps, pad, cont_first=True,
               step_lines=None, extra=lambda i: []):
    """The take_back path of one sink: the server connected, then stopped
    (SIGSTOP: it reads nothing), `steps` flushes each with its own key
    PREFIX.seq.i = i+1 and the padding; SIGTERM while the server is still
    stopped, so that when shutdownTimeout runs out the plugin's own queue
    holds flushes (the host spools the later ones after its 1 s stall
    check); then the server goes on and switchyard starts again on its
    spool.  True when the spool was replayed."""
    if not res.check("%s: switchyard starts with the server up" % label, d.start(),
                     d.proc.logs()):
        return False
    d.send(["%s.warm:1|c" % prefix])  # an HTTP sink is connected after its first answer
    if not res.check("%s: the sink connects" % label,
                     wait_until(lambda: d.sink("connected") == 1, 15), d.proc.logs()):
        return False
    server_stop()
    try:
        for i in range(steps):
            d.send((step_lines(i) if step_lines else ["%s.seq.%d:%d|c" % (prefix, i, i + 1)]) +
                   pad + extra(i))
            time.sleep(0.05)
        wait_until(lambda: (d.sink("queued") or 0) > 0, 5)
        queued = d.sink("queued") or 0
        res.check("%s: with the server stopped the plugin's queue holds %d values" % (label, queued),
                  queued > 0)
        rc = d.stop_clean(res, label)
        logs = d.proc.logs(200000)
        res.check("%s: SIGTERM with the server still stopped exits 0 and hands the plugin's "
                  "queue to the spool (%r)" % (label, rc),
                  rc == 0 and "still held at shutdown went to the spool" in logs,
                  "\n".join(l for l in logs.splitlines() if "spool" in l or "lost" in l)[-3000:])
    finally:
        server_cont()
    if not res.check("%s: switchyard starts again on its spool" % label, d.start(),
                     d.proc.logs()):
        return False
    return res.check("%s: the spool was replayed" % label,
                     wait_until(lambda: d.spool("records") == 0 and d.sink("queued") == 0, 60),
                     "records %r queued %r\n%s" % (d.spool("records"), d.sink("queued"),
                                                   d.proc.logs()))


def redis_stuck(res, workdir):
    """take_back of the redis sink: redis-server stopped with SIGSTOP
    (maxPending 200, so most of each flush waits in the sink's queue, not
    in the socket), SIGTERM, restart: every seq counter in Redis exactly
    once with its value, none doubled."""
    redis = RedisServer(workdir, "redis-stuck")
    if not res.check("redis stuck: redis-server starts", redis.start(), redis.logs()):
        return
    sink = {"plugin": "redis", "host": LOOPBACK, "port": redis.port, "prefix": "q:",
            "maxPending": 200, "stallTimeoutMs": 120000, "reconnectMinMs": 50,
            "reconnectMaxMs": 300}
    d = Daemon(workdir, "redis_stuck", 0, {"dir": os.path.join(workdir, "spool_rstuck"),
                                           "maxBytes": "64MiB", "fsync": "never"}, sink)
    steps = 40
    pad = ["spool.pad.k%d:1|c" % k for k in range(PAD)]
    try:
        if not stuck_term(res, d, "redis stuck", lambda: redis.signal(signal.SIGSTOP),
                          lambda: redis.signal(signal.SIGCONT), "rs", steps, pad):
            return
        names = ["stats_counts.rs.seq.%d" % i for i in range(steps)]

        def read():
            c = redis.client()
            try:
                return (c.pipeline([("ZRANGE", "q:ts:" + n, 0, -1) for n in names]),
                        c.pipeline([("HGET", "q:latest", n) for n in names]))
            finally:
                c.close()

        def wrong():
            series, latest = read()
            bad = []
            for i, (pts, last) in enumerate(zip(series, latest)):
                pts = [p.decode() if isinstance(p, bytes) else p for p in (pts or [])]
                last = last.decode() if isinstance(last, bytes) else last
                if len(pts) != 1 or not pts[0].endswith(":%d" % (i + 1)) or last != str(i + 1):
                    bad.append((names[i], pts, last))
            return bad
        wait_until(lambda: not wrong(), 20, step=0.5)
        bad = wrong()
        res.check("redis stuck: each of %d seq counters in Redis exactly once with its value "
                  "(total %d)" % (steps, steps * (steps + 1) // 2),
                  not bad, "%d wrong, e.g. %r" % (len(bad), bad[:3]))
        res.check("redis stuck: nothing dropped after the restart (sink %r, spool %r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total")),
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
    finally:
        if d.proc:
            d.stop_clean(res, "redis stuck")
        redis.stop()


def repeater_stuck(res, workdir):
    """take_back of the repeater (TCP): the next hop, a second switchyard,
    stopped with SIGSTOP; flushes of 1,000 keys with 200-byte names (more
    than the socket buffers hold); SIGTERM, SIGCONT, restart: every seq
    value reaches the next hop."""
    hop_port = free_port_pair()
    sink = {"plugin": "repeater", "host": LOOPBACK, "port": hop_port, "protocol": "tcp",
            "flushed": "all", "maxQueueBytes": 1 << 20, "reconnectMinMs": 50,
            "reconnectMaxMs": 300}
    d = Daemon(workdir, "repeater_stuck", 0, {"dir": os.path.join(workdir, "spool_rstk"),
                                              "maxBytes": "256MiB", "fsync": "never"}, sink)
    hop_cfg = os.path.join(workdir, "hop_stuck.lua")
    with open(hop_cfg, "w") as f:
        f.write("return " + to_lua({"listen": ["tcp://%s:%d" % (LOOPBACK, hop_port)],
                                    "flushInterval": 100, "deleteGauges": True,
                                    "sinks": {"out": {"plugin": "console"}}}) + "\n")
    hop = Process("hop_stuck", [switchyard_binary(), "-c", hop_cfg], workdir)
    steps = 40
    pad = ["spool.padlong.k%d%s:1|c" % (k, "x" * 200) for k in range(1000)]
    try:
        hop.start()
        if not res.check("repeater stuck: the next hop starts",
                         wait_for_port(hop_port, 10, alive=hop.alive)):
            return

        def arrived():
            got = {}
            try:
                with open(hop.stdout_path) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) == 3 and ".stats_counts.rt.seq." in parts[0]:
                            got.setdefault(int(parts[0].rsplit(".", 1)[1]), set()).add(parts[1])
            except OSError:
                pass
            return got
        if not stuck_term(res, d, "repeater stuck", lambda: os.kill(hop.pid, signal.SIGSTOP),
                          lambda: os.kill(hop.pid, signal.SIGCONT), "rt", steps, pad):
            return
        wait_until(lambda: len(arrived()) >= steps, 30, step=0.3)
        got = arrived()
        bad = [(i, got.get(i)) for i in range(steps) if got.get(i) != {str(i + 1)}]
        res.check("repeater stuck: every one of %d flushes' seq values reached the next hop "
                  "with its value" % steps, not bad, "%d wrong, e.g. %r" % (len(bad), bad[:3]))
        res.check("repeater stuck: nothing dropped after the restart (sink %r, spool %r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total")),
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
    finally:
        if d.proc:
            d.stop_clean(res, "repeater stuck")
        try:
            os.kill(hop.pid, signal.SIGCONT)
        except (ProcessLookupError, TypeError):
            pass
        hop.stop()


def influx_stuck(res, workdir):
    """take_back of the influxdb sink: influxd stopped with SIGSTOP (one
    POST of 200 lines in flight, the rest in the sink's queue), SIGTERM,
    SIGCONT, restart: every seq value is in InfluxDB once, at its flush's
    time."""
    if not os.path.exists(INFLUXD):
        res.check("influx stuck: influxd installed (.ci/deps.sh test installs influxdb)", False,
                  INFLUXD)
        return
    srv = InfluxServer(workdir, "influx-stuck")
    if not res.check("influx stuck: influxd starts", srv.start(), srv.logs()):
        return
    d = None
    steps = 40
    pad = ["spool.pad.k%d:1|c" % k for k in range(PAD)]
    try:
        srv.create_db("sy")
        sink = {"plugin": "influxdb", "url": srv.url("/write?db=sy"), "batchLines": 200,
                "retryMinMs": 50, "retryMaxMs": 300}
        d = Daemon(workdir, "influx_stuck", 0, {"dir": os.path.join(workdir, "spool_istk"),
                                                "maxBytes": "64MiB", "fsync": "never"}, sink)
        if not stuck_term(res, d, "influx stuck", lambda: srv.signal(signal.SIGSTOP),
                          lambda: srv.signal(signal.SIGCONT), "is", steps, pad):
            return

        def points():
            ans = srv.query('SELECT "value" FROM /^stats_counts\\.is\\.seq\\./ GROUP BY *',
                            db="sy")
            got = {}
            for r in ans.get("results", []):
                for s in r.get("series", []) or []:
                    got[int(s["name"].rsplit(".", 1)[1])] = [row[1] for row in s["values"]]
            return got
        wait_until(lambda: len(points()) >= steps, 30, step=0.5)
        got = points()
        bad = [(i, got.get(i)) for i in range(steps) if got.get(i) != [i + 1]]
        res.check("influx stuck: every one of %d flushes' seq values in InfluxDB once with its "
                  "value" % steps, not bad, "%d wrong, e.g. %r" % (len(bad), bad[:3]))
        res.check("influx stuck: nothing dropped after the restart (sink %r, spool %r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total")),
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
    finally:
        if d and d.proc:
            d.stop_clean(res, "influx stuck")
        srv.stop()

# A plain TCP reader in a process of its own (so that SIGSTOP stops it):
# every whole line of every connection appended to a file; a line cut by
# the end of its connection is left out, as a statsd reader discards it.
RAW_READER = r"""
import socket, sys, threading
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(16)
out = open(sys.argv[2], "ab", buffering=0)
lock = threading.Lock()
def read(conn):
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        buf += data
        if b"\n" in buf:
            whole, buf = buf.rsplit(b"\n", 1)
            with lock:
                out.write(whole + b"\n")
while True:
    c, _ = srv.accept()
    threading.Thread(target=read, args=(c,), daemon=True).start()
"""


def raw_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def repeater_raw_stuck(res, workdir):
    """take_back_samples and take_back_lines of the repeater (TCP): a
    pass-through sink named in dogstatsdEvents, its next hop a plain TCP
    reader stopped with SIGSTOP; 40 flushes each with a seq sample, a
    DogStatsD event and a service check of their own beside 1,000
    samples with 200-byte names (more than the socket buffers hold);
    SIGTERM while it is stopped: the raw samples and lines still queued go
    to the spool; SIGCONT, restart: every seq sample, event and service
    check reaches the reader exactly once."""
    port = free_port("tcp")
    out = os.path.join(workdir, "raw_stuck.out")
    reader = Process("raw_reader", ["/usr/bin/python3", "-c", RAW_READER, str(port), out],
                     workdir)
    sink = {"plugin": "repeater", "host": LOOPBACK, "port": port, "protocol": "tcp",
            "passthrough": True, "maxQueueBytes": 1 << 20, "reconnectMinMs": 50,
            "reconnectMaxMs": 300}
    d = Daemon(workdir, "repeater_raw", 0, {"dir": os.path.join(workdir, "spool_rraw"),
                                            "maxBytes": "256MiB", "fsync": "never"}, sink,
               extra={"dogstatsdEvents": ["carbon"]})
    steps = 40
    pad = ["rr.padlong.k%d%s:1|c" % (k, "x" * 200) for k in range(1000)]

    def event(i):
        title, text = "rr-ev-%d" % i, "event %d body" % i
        return "_e{%d,%d}:%s|%s|#step:%d" % (len(title), len(text), title, text, i)

    def check(i):
        return "_sc|rr.check.%d|1|m:step %d" % (i, i)

    def step_lines(i):
        return ["rr.seq.%d:%d|c" % (i, i + 1), event(i), check(i)]
    try:
        reader.start()
        if not res.check("repeater raw: the reader starts", wait_for_port(port, 10,
                                                                         alive=reader.alive)):
            return
        if not stuck_term(res, d, "repeater raw", lambda: os.kill(reader.pid, signal.SIGSTOP),
                          lambda: os.kill(reader.pid, signal.SIGCONT), "rr", steps, pad,
                          step_lines=step_lines):
            return
        try:
            with open(os.path.join(workdir, "repeater_raw.1.stderr")) as f:
                for line in f:
                    if "went to the spool" in line or "lost" in line or "keep log" in line:
                        res.note(line.strip().split("  ", 1)[-1])
        except OSError:
            pass
        want = {}
        for i in range(steps):
            for line in step_lines(i):
                want[line] = 0

        def counts():
            got = dict.fromkeys(want, 0)
            for line in raw_lines(out):
                if line in got:
                    got[line] += 1
            return got
        wait_until(lambda: all(counts().values()), 30, step=0.3)
        got = counts()
        bad = sorted((l, n) for l, n in got.items() if n != 1)
        res.check("repeater raw: each of %d seq samples, %d events and %d service checks "
                  "reached the reader exactly once" % (steps, steps, steps), not bad,
                  "%d wrong, e.g. %r" % (len(bad), bad[:4]))
        spooled = d.spool("lines_replayed_total")
        res.check("repeater raw: DogStatsD lines were replayed from the spool "
                  "(switchyard_spool_lines_replayed_total %r)" % spooled, (spooled or 0) > 0)
        res.check("repeater raw: nothing dropped after the restart (sink %r, spool %r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total")),
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
    finally:
        if d.proc:
            d.stop_clean(res, "repeater raw")
        try:
            os.kill(reader.pid, signal.SIGCONT)
        except (ProcessLookupError, TypeError):
            pass
        reader.stop()

def dd_lines(prefix, i):
    """A DogStatsD event and a service check of step i."""
    title, text = "%s-ev-%d" % (prefix, i), "event %d body" % i
    return ["_e{%d,%d}:%s|%s|#step:%d" % (len(title), len(text), title, text, i),
            "_sc|%s.check.%d|1|m:step %d" % (prefix, i, i)]


def exactly_once(want, path):
    """want (lines) -> those that did not reach the reader's file exactly once."""
    got = dict.fromkeys(want, 0)
    for line in raw_lines(path):
        if line in got:
            got[line] += 1
    return sorted((l, n) for l, n in got.items() if n != 1)


def repeater_events_down(res, workdir):
    """DogStatsD events and service checks for a repeater (TCP) whose next
    hop, a plain TCP reader, is not running: the host spools them
    (switchyard_spool_lines_spooled_total) instead of letting the queue
    drop them; `switchyard spool cat` shows them; SIGTERM and a restart
    in the outage, then the reader starts: every line arrives exactly
    once, in the order sent."""
    port = free_port("tcp")
    out = os.path.join(workdir, "ev_down.out")
    reader = Process("ev_reader", ["/usr/bin/python3", "-c", RAW_READER, str(port), out],
                     workdir)
    sink = {"plugin": "repeater", "host": LOOPBACK, "port": port, "protocol": "tcp",
            "passthrough": True, "maxQueueBytes": 64 << 10, "reconnectMinMs": 50,
            "reconnectMaxMs": 300}
    spool_dir = os.path.join(workdir, "spool_evd")
    d = Daemon(workdir, "events_down", 0, {"dir": spool_dir, "maxBytes": "64MiB",
                                           "fsync": "never"}, sink,
               extra={"dogstatsdEvents": ["carbon"]})
    steps = 30
    want = [l for i in range(steps) for l in dd_lines("ed", i)]
    try:
        if not res.check("events down: switchyard starts with its next hop down", d.start(),
                         d.proc.logs()):
            return
        wait_until(lambda: d.sink("connected") == 0, 10)
        for i in range(steps):
            d.send(dd_lines("ed", i))
            time.sleep(0.05)
        res.check("events down: the lines went to the spool (switchyard_spool_lines_spooled_"
                  "total %r of %d)" % (d.spool("lines_spooled_total"), len(want)),
                  wait_until(lambda: (d.spool("lines_spooled_total") or 0) >= len(want), 10))
        rc = d.stop_clean(res, "events down first run")
        res.check("events down: SIGTERM during the outage exits 0 (%r)" % rc, rc == 0,
                  d.proc.logs())
        rc, text, err = spool_cat(spool_dir)
        shown = [l.rsplit(" # line ", 1)[0] for l in text.splitlines() if " # line " in l]
        res.check("events down: `switchyard spool cat` shows the spooled lines as sent "
                  "(%d, e.g. %r)" % (len(shown), shown[:1]), rc == 0 and shown == want,
                  text[:1000] + err)
        if not res.check("events down: switchyard starts again on its spool", d.start(),
                         d.proc.logs()):
            return
        reader.start()
        if not res.check("events down: the reader starts", wait_for_port(port, 10,
                                                                        alive=reader.alive)):
            return
        wait_until(lambda: not exactly_once(want, out), 30, step=0.3)
        bad = exactly_once(want, out)
        got = [l for l in raw_lines(out) if l in set(want)]
        res.check("events down: each of %d events and %d service checks reached the reader "
                  "exactly once, in order" % (steps, steps), not bad and got == want,
                  "%d wrong, e.g. %r" % (len(bad), bad[:4]))
        res.check("events down: replayed from the spool (lines_replayed %r), nothing dropped "
                  "(sink %r, spool %r)" % (d.spool("lines_replayed_total"),
                                           d.sink("dropped_total"), d.spool("dropped_total")),
                  wait_until(lambda: d.spool("records") == 0, 20) and
                  d.spool("lines_replayed_total") == len(want) and
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
    finally:
        if d.proc:
            d.stop_clean(res, "events down")
        reader.stop()


def events_write_through(res, workdir):
    """spool.mode = "always" for a repeater named in dogstatsdEvents, its
    reader up: every event and service check goes through the spool
    (lines_spooled and lines_replayed count all of them) and reaches the
    reader exactly once, in order."""
    port = free_port("tcp")
    out = os.path.join(workdir, "ev_wt.out")
    reader = Process("ev_wt_reader", ["/usr/bin/python3", "-c", RAW_READER, str(port), out],
                     workdir)
    sink = {"plugin": "repeater", "host": LOOPBACK, "port": port, "protocol": "tcp",
            "passthrough": True, "reconnectMinMs": 50, "reconnectMaxMs": 300}
    d = Daemon(workdir, "events_wt", 0, {"dir": os.path.join(workdir, "spool_evwt"),
                                         "maxBytes": "64MiB", "fsync": "never",
                                         "mode": "always"}, sink,
               extra={"dogstatsdEvents": ["carbon"]})
    steps = 30
    want = [l for i in range(steps) for l in dd_lines("ew", i)]
    try:
        reader.start()
        if not res.check("events write-through: the reader starts",
                         wait_for_port(port, 10, alive=reader.alive)):
            return
        if not res.check("events write-through: switchyard starts", d.start(), d.proc.logs()):
            return
        for i in range(steps):
            d.send(dd_lines("ew", i))
            time.sleep(0.05)
        wait_until(lambda: not exactly_once(want, out), 20, step=0.3)
        bad = exactly_once(want, out)
        got = [l for l in raw_lines(out) if l in set(want)]
        res.check("events write-through: each of %d lines reached the reader exactly once, in "
                  "order" % len(want), not bad and got == want,
                  "%d wrong, e.g. %r" % (len(bad), bad[:4]))
        res.check("events write-through: every line went through the spool (spooled %r, "
                  "replayed %r of %d)" % (d.spool("lines_spooled_total"),
                                          d.spool("lines_replayed_total"), len(want)),
                  wait_until(lambda: d.spool("lines_replayed_total") == len(want), 10) and
                  d.spool("lines_spooled_total") == len(want))
    finally:
        if d.proc:
            d.stop_clean(res, "events write-through")
        reader.stop()

def repeater_kept_full(res, workdir):
    """The repeater's copy logs bound: the repeater_raw_stuck outage with
    maxKeptBytes 4096: the samples and lines beyond it are counted and
    logged as they come, and at shutdown what was kept is handed back and
    the loss of the rest said."""
    port = free_port("tcp")
    out = os.path.join(workdir, "raw_kfull.out")
    reader = Process("kfull_reader", ["/usr/bin/python3", "-c", RAW_READER, str(port), out],
                     workdir)
    sink = {"plugin": "repeater", "host": LOOPBACK, "port": port, "protocol": "tcp",
            "passthrough": True, "maxQueueBytes": 1 << 20, "reconnectMinMs": 50,
            "reconnectMaxMs": 300, "maxKeptBytes": 4096}
    d = Daemon(workdir, "repeater_kfull", 0, {"dir": os.path.join(workdir, "spool_rkf"),
                                              "maxBytes": "256MiB", "fsync": "never"}, sink,
               extra={"dogstatsdEvents": ["carbon"]})
    pad = ["rk.padlong.k%d%s:1|c" % (k, "x" * 200) for k in range(1000)]
    try:
        reader.start()
        if not res.check("repeater kept full: the reader starts",
                         wait_for_port(port, 10, alive=reader.alive)):
            return
        if not stuck_term(res, d, "repeater kept full", lambda: os.kill(reader.pid, signal.SIGSTOP),
                          lambda: os.kill(reader.pid, signal.SIGCONT), "rk", 40, pad,
                          step_lines=lambda i: ["rk.seq.%d:%d|c" % (i, i + 1)] +
                          dd_lines("rk", i)):
            return
        try:
            with open(os.path.join(workdir, "repeater_kfull.1.stderr")) as f:
                first = f.read()
        except OSError:
            first = ""
        lines = [l for l in first.splitlines() if "keep log" in l or "handed back" in l]
        for l in lines[-2:]:
            res.note(l.split("  ", 1)[-1])
        res.check("repeater kept full: the samples and lines beyond maxKeptBytes are counted "
                  "and logged, the loss at shutdown said",
                  any("keep log full (maxKeptBytes 4096 a destination)" in l for l in lines) and
                  any("cannot be handed back to the spool" in l and "maxKeptBytes 4096 full" in l
                      for l in lines),
                  "\n".join(lines)[-2000:] or first[-2000:])
    finally:
        if d.proc:
            d.stop_clean(res, "repeater kept full")
        try:
            os.kill(reader.pid, signal.SIGCONT)
        except (ProcessLookupError, TypeError):
            pass
        reader.stop()


def influx_samples_stuck(res, workdir):
    """take_back_samples of the influxdb sink: a pass-through sink, influxd
    stopped with SIGSTOP (one POST of 200 lines in flight, the rest in the
    sink's queue), 40 flushes each with a seq sample dated by a DogStatsD
    |T time beside 300 padding samples; SIGTERM, SIGCONT, restart: every
    seq sample is in InfluxDB once, with its value, at its client's
    time."""
    if not os.path.exists(INFLUXD):
        res.check("influx samples: influxd installed (.ci/deps.sh test installs influxdb)",
                  False, INFLUXD)
        return
    srv = InfluxServer(workdir, "influx-samples")
    if not res.check("influx samples: influxd starts", srv.start(), srv.logs()):
        return
    d = None
    steps = 40
    base = int(time.time()) - 300
    pad = ["is2.pad.k%d:1|c" % k for k in range(300)]
    try:
        srv.create_db("sy")
        sink = {"plugin": "influxdb", "url": srv.url("/write?db=sy"), "batchLines": 200,
                "passthrough": True, "retryMinMs": 50, "retryMaxMs": 300}
        d = Daemon(workdir, "influx_samples", 0, {"dir": os.path.join(workdir, "spool_ismp"),
                                                  "maxBytes": "64MiB", "fsync": "never"}, sink)
        if not stuck_term(res, d, "influx samples", lambda: srv.signal(signal.SIGSTOP),
                          lambda: srv.signal(signal.SIGCONT), "is2", steps, pad,
                          step_lines=lambda i: ["is2.seq.%d:%d|c|T%d" % (i, i + 1, base + i)]):
            return
        try:
            with open(os.path.join(workdir, "influx_samples.1.stderr")) as f:
                for line in f:
                    if "went to the spool" in line or "lost" in line or "keep log" in line:
                        res.note(line.strip().split("  ", 1)[-1])
        except OSError:
            pass

        def points():
            ans = srv.query('SELECT "value" FROM /^is2\\.seq\\./ GROUP BY *', db="sy")
            got = {}
            for r in ans.get("results", []):
                for s in r.get("series", []) or []:
                    got[int(s["name"].rsplit(".", 1)[1])] = [tuple(row[:2]) for row in s["values"]]
            return got
        wait_until(lambda: len(points()) >= steps, 30, step=0.5)
        got = points()
        bad = [(i, got.get(i)) for i in range(steps) if got.get(i) != [(base + i, i + 1)]]
        res.check("influx samples: every one of %d seq samples in InfluxDB once, with its "
                  "value, at its client's time" % steps, not bad,
                  "%d wrong, e.g. %r" % (len(bad), bad[:3]))
        res.check("influx samples: nothing dropped after the restart (sink %r, spool %r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total")),
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
    finally:
        if d and d.proc:
            d.stop_clean(res, "influx samples")
        srv.stop()


def write_through(res, workdir):
    """spool.mode = "always": every flush goes to the spool first and reaches
    the graphite sink only through replay.  With a healthy carbon-cache,
    60 flushes of 400 keys with 200-byte names (about 11 MB of lines), then
    SIGKILL right after the last send; started again: every seq value
    flushed before the kill (those sent three flush intervals before it)
    read back from whisper (at least once: carbon overwrites a repeated
    timestamp)."""
    carbon = CarbonCache(os.path.join(workdir, "carbon_wt"))
    spool_dir = os.path.join(workdir, "spool_wt")
    d = Daemon(workdir, "write_through", carbon.line_port,
               {"dir": spool_dir, "maxBytes": "256MiB", "fsync": "never", "mode": "always"})
    steps = 60
    try:
        if not res.check("write-through: carbon-cache starts", carbon.start(), carbon.logs()):
            return
        if not res.check("write-through: switchyard starts", d.start(), d.proc.logs()):
            return
        pad = ["spool.wtpad.k%d%s:1|c" % (k, "x" * 200) for k in range(400)]
        for i in range(steps):
            d.send(["spool.wt.%d:%d|c" % (i, i + 1)] + pad)
            time.sleep(0.05)
        # mid-stream: the kill comes right after the last send
        records = d.spool("records")
        queued = d.sink("queued")
        spooled = d.spool("spooled_total")
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.popen.wait(10)
        res.note("write-through: at the SIGKILL %r records waited in the spool and %r lines in "
                 "the graphite queue" % (records, queued))
        res.check("write-through: every flush went to the spool (%r values)" % spooled,
                  (spooled or 0) >= (steps - 3) * 2 * 400)
        if not res.check("write-through: switchyard starts again", d.start(), d.proc.logs()):
            return
        res.check("write-through: the spool was replayed after the restart",
                  wait_until(lambda: d.spool("records") == 0 and d.sink("queued") == 0, 90),
                  "records %r queued %r" % (d.spool("records"), d.sink("queued")))
        # a step sent three flush intervals before the kill was flushed:
        # accepted, so it must arrive
        want = set(range(steps - 3))
        got = set()
        deadline = time.time() + 60
        while time.time() < deadline and got != want:
            for i in want - got:
                if whisper_value(carbon, "stats_counts.spool.wt.%d" % i) == [float(i + 1)]:
                    got.add(i)
            if got != want:
                time.sleep(0.5)
        missing = sorted(want - got)
        res.check("write-through: every one of %d seq values (flushed before the kill) read "
                  "back from whisper after the SIGKILL" % len(want), not missing,
                  "%d missing, e.g. %r" % (len(missing), missing[:5]))
        res.check("write-through: nothing dropped (sink %r, spool %r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total")),
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
    finally:
        if d.proc and d.proc.alive():
            d.stop_clean(res, "write-through")
        carbon.stop()


def stall_only(res, workdir):
    """The 1 s stall check on its own: a 64 MiB graphite queue that never
    fills and flushes it takes at once (so neither the queue bound, pacing
    nor a flush falling behind can route anything to the spool), carbon-
    cache stopped with SIGSTOP.  Filler flushes until the socket buffers
    are full and the queue holds lines, then 40 flushes of one seq key
    each: with the sink still connected, the host routes them to the spool
    once the queue has not moved for 1 s; after SIGCONT every seq value is
    read back from whisper."""
    carbon = CarbonCache(os.path.join(workdir, "carbon_stall"))
    spool_dir = os.path.join(workdir, "spool_stall")
    d = Daemon(workdir, "stall_only", carbon.line_port,
               {"dir": spool_dir, "maxBytes": "256MiB", "fsync": "never"},
               {"plugin": "graphite", "host": LOOPBACK, "port": carbon.line_port,
                "maxQueueBytes": 64 << 20, "reconnectMinMs": 50, "reconnectMaxMs": 300})
    steps = 40
    stopped = False
    try:
        if not res.check("stall: carbon-cache starts", carbon.start(), carbon.logs()):
            return
        if not res.check("stall: switchyard starts", d.start(), d.proc.logs()):
            return
        if not res.check("stall: the sink connects",
                         wait_until(lambda: d.sink("connected") == 1, 15), d.proc.logs()):
            return
        os.kill(carbon.pid, signal.SIGSTOP)
        stopped = True
        filler = ["spool.stallpad.k%d%s:1|c" % (k, "x" * 200) for k in range(400)]
        for _ in range(200):  # at most 37 MB: fills any socket buffer
            d.send(filler)
            time.sleep(0.05)
            if (d.sink("queued") or 0) > 2000:
                break
        queued = d.sink("queued") or 0
        res.check("stall: the socket buffers are full, the graphite queue holds %d lines "
                  "(of a 64 MiB bound)" % queued, queued > 0)
        spooled0 = d.spool("spooled_total") or 0
        for i in range(steps):
            d.send(["spool.stall.%d:%d|c" % (i, i + 1)])
            time.sleep(0.05)
        wait_until(lambda: (d.spool("spooled_total") or 0) > spooled0, 5)
        spooled = (d.spool("spooled_total") or 0) - spooled0
        res.check("stall: with carbon-cache stopped and the sink connected (%r), the small "
                  "flushes went to the spool (%r values) after the queue stood still for 1 s"
                  % (d.sink("connected"), spooled),
                  spooled > 0 and d.sink("connected") == 1)
        res.check("stall: nothing dropped (sink %r, spool %r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total")),
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
        os.kill(carbon.pid, signal.SIGCONT)
        stopped = False
        res.check("stall: after SIGCONT the queue drains and the spool is replayed",
                  wait_until(lambda: d.spool("records") == 0 and d.sink("queued") == 0, 90),
                  "records %r queued %r" % (d.spool("records"), d.sink("queued")))
        want = set(range(steps))
        got = set()
        deadline = time.time() + 60
        while time.time() < deadline and got != want:
            for i in want - got:
                if whisper_value(carbon, "stats_counts.spool.stall.%d" % i) == [float(i + 1)]:
                    got.add(i)
            if got != want:
                time.sleep(0.5)
        missing = sorted(want - got)
        res.check("stall: every one of %d flushes' seq values read back from whisper" % steps,
                  not missing, "%d missing, e.g. %r" % (len(missing), missing[:5]))
    finally:
        if stopped:
            os.kill(carbon.pid, signal.SIGCONT)
        if d.proc:
            d.stop_clean(res, "stall")
        carbon.stop()


def repeater_samples(res, workdir):
    """Raw samples (pass-through) spooled: a repeater over TCP with
    passthrough = true, its next hop down; 40 steps of a counter and a
    seq key each; SIGTERM and a restart of switchyard during the outage;
    then the next hop starts: the counter's total and every seq value
    reach it (before, raw samples waited in the repeater's memory queue
    and were lost at the restart)."""
    hop_port = free_port_pair()
    sink = {"plugin": "repeater", "host": LOOPBACK, "port": hop_port, "protocol": "tcp",
            "passthrough": True, "reconnectMinMs": 50, "reconnectMaxMs": 300}
    d = Daemon(workdir, "repeater_samples", 0, {"dir": os.path.join(workdir, "spool_rsmp"),
                                                "maxBytes": "64MiB", "fsync": "never"}, sink)
    hop_cfg = os.path.join(workdir, "hop_samples.lua")
    with open(hop_cfg, "w") as f:
        f.write("return " + to_lua({"listen": ["tcp://%s:%d" % (LOOPBACK, hop_port)],
                                    "flushInterval": 100, "deleteCounters": True,
                                    "sinks": {"out": {"plugin": "console"}}}) + "\n")
    hop = Process("hop_samples", [switchyard_binary(), "-c", hop_cfg], workdir)
    steps = 40
    try:
        if not res.check("samples: switchyard starts with its next hop down", d.start(),
                         d.proc.logs()):
            return
        wait_until(lambda: d.sink("connected") == 0, 10)
        for i in range(steps):
            d.send(["rps.c:1|c", "rps.seq.%d:%d|c" % (i, i + 1)])
            time.sleep(0.05)
        wait_until(lambda: (d.spool("spooled_total") or 0) >= 2 * steps, 10)
        res.check("samples: the raw samples went to the spool (%r values spooled)"
                  % d.spool("spooled_total"), (d.spool("spooled_total") or 0) >= 2 * steps)
        rc = d.stop_clean(res, "samples first run")
        res.check("samples: SIGTERM during the outage exits 0 (%r)" % rc, rc == 0, d.proc.logs())
        rc, text, err = spool_cat(os.path.join(workdir, "spool_rsmp"))
        lines = [l for l in text.splitlines() if l.startswith("rps.") and "|c # sample " in l]
        res.check("samples: `switchyard spool cat` shows the spooled samples as StatsD lines "
                  "(%d, e.g. %r)" % (len(lines), lines[:1]),
                  rc == 0 and len(lines) >= 2 * steps and "rps.seq.0:1|c # sample " in text,
                  text[:1000] + err)
        if not res.check("samples: switchyard starts again on its spool", d.start(),
                         d.proc.logs()):
            return
        hop.start()
        if not res.check("samples: the next hop starts", wait_for_port(hop_port, 10,
                                                                      alive=hop.alive)):
            return

        def arrived():
            total, seqs = 0.0, {}
            try:
                with open(hop.stdout_path) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) != 3:
                            continue
                        if parts[0] == "stats_counts.rps.c":
                            total += float(parts[1])
                        elif parts[0].startswith("stats_counts.rps.seq."):
                            i = int(parts[0].rsplit(".", 1)[1])
                            seqs[i] = seqs.get(i, 0.0) + float(parts[1])
            except OSError:
                pass
            return total, seqs
        wait_until(lambda: arrived()[0] >= steps and len(arrived()[1]) >= steps, 30, step=0.3)
        total, seqs = arrived()
        bad = [(i, seqs.get(i)) for i in range(steps) if seqs.get(i) != float(i + 1)]
        res.check("samples: the counter's total reached the next hop exactly (%r of %d) and "
                  "every seq value once" % (total, steps), total == steps and not bad,
                  "%d seq wrong, e.g. %r" % (len(bad), bad[:3]))
        res.check("samples: the spool was replayed, nothing dropped (sink %r, spool %r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total")),
                  wait_until(lambda: d.spool("records") == 0, 20) and
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
    finally:
        if d.proc:
            d.stop_clean(res, "repeater samples")
        hop.stop()


def remote_write_samples(res, workdir):
    """remote_write with a spool, VictoriaMetrics down: the raw samples it
    is fed wait in the spool (its own state would be lost at a restart);
    SIGTERM and a restart of switchyard in the outage; VictoriaMetrics
    starts: the counter's total is there."""
    if not os.path.exists(VICTORIA_METRICS):
        res.check("remote_write: victoria-metrics installed", False, VICTORIA_METRICS)
        return
    vm = VictoriaMetricsServer(workdir, "vm-spool")
    sink = {"plugin": "remote_write", "url": "http://%s:%d/api/v1/write" % (LOOPBACK, vm.port),
            "passthrough": True, "retryMinMs": 50, "retryMaxMs": 300, "timeoutMs": 1000}
    d = Daemon(workdir, "rw_samples", 0, {"dir": os.path.join(workdir, "spool_rw"),
                                          "maxBytes": "64MiB", "fsync": "never"}, sink)
    steps = 30
    try:
        if not res.check("remote_write: switchyard starts with VictoriaMetrics down", d.start(),
                         d.proc.logs()):
            return
        # an HTTP sink learns the receiver is down by sending: what it was
        # given before its first failed request is in its own state
        d.send(["rwsp.warm:1|c"])
        if not res.check("remote_write: the sink's first request failed",
                         wait_until(lambda: (d.sink("errors_total") or 0) > 0, 10),
                         d.proc.logs()):
            return
        for i in range(steps):
            d.send(["rwsp.req:1|c"])
            time.sleep(0.05)
        res.check("remote_write: the raw samples went to the spool (%r values spooled)"
                  % d.spool("spooled_total"),
                  wait_until(lambda: (d.spool("spooled_total") or 0) >= steps, 10))
        rc = d.stop_clean(res, "remote_write first run")
        res.check("remote_write: SIGTERM during the outage exits 0 (%r)" % rc, rc == 0,
                  d.proc.logs())
        if not res.check("remote_write: switchyard starts again on its spool", d.start(),
                         d.proc.logs()):
            return
        if not res.check("remote_write: VictoriaMetrics starts", vm.start(), vm.logs()):
            return
        got = vm.wait_value("rwsp_req_total", steps, 30)
        res.check("remote_write: VictoriaMetrics has the counter's total (%r of %d)"
                  % (got, steps), got == steps, d.proc.logs()[-3000:])
        res.check("remote_write: the spool was replayed",
                  wait_until(lambda: d.spool("records") == 0, 20), repr(d.spool("records")))
    finally:
        if d.proc:
            d.stop_clean(res, "remote_write samples")
        vm.stop()


def remote_write_stuck(res, workdir):
    """take_back of remote_write: VictoriaMetrics stopped with SIGSTOP
    (one request in flight, the raw samples of 40 flushes in the plugin's
    state and queue), SIGTERM while it is stopped: the raw samples of the
    requests never acknowledged go to the spool; SIGCONT and a restart:
    every counter's total in VictoriaMetrics is what was sent (the
    counter restarts with the daemon, the unsent increments added to
    it)."""
    if not os.path.exists(VICTORIA_METRICS):
        res.check("remote_write stuck: victoria-metrics installed", False, VICTORIA_METRICS)
        return
    vm = VictoriaMetricsServer(workdir, "vm-stuck")
    if not res.check("remote_write stuck: VictoriaMetrics starts", vm.start(), vm.logs()):
        return
    sink = {"plugin": "remote_write", "url": "http://%s:%d/api/v1/write" % (LOOPBACK, vm.port),
            "passthrough": True, "retryMinMs": 50, "retryMaxMs": 300, "timeoutMs": 5000}
    d = Daemon(workdir, "rw_stuck", 0, {"dir": os.path.join(workdir, "spool_rwstk"),
                                        "maxBytes": "64MiB", "fsync": "never"}, sink)
    steps = 40
    try:
        if not stuck_term(res, d, "remote_write stuck", lambda: os.kill(vm.proc.pid, signal.SIGSTOP),
                          lambda: os.kill(vm.proc.pid, signal.SIGCONT), "rwst", steps,
                          ["rwst.count:1|c"], extra=lambda i: ["rwst.gauge:%d|g" % (i + 1)]):
            return
        try:
            with open(os.path.join(workdir, "rw_stuck.1.stderr")) as f:
                for line in f:
                    if "handing back" in line or "went to the spool" in line:
                        res.note(line.strip().split("  ", 1)[-1])
        except OSError:
            pass
        got = vm.wait_value("rwst_count_total", steps, 30)
        res.check("remote_write stuck: VictoriaMetrics has the counter's total after the "
                  "restart (%r of %d)" % (got, steps), got == steps,
                  "%r\n%s" % (vm.query('{__name__=~"rwst_count.*"}'), d.proc.logs()[-3000:]))

        # a gauge set every step: its older values were in the plugin's
        # queue (handed back), its newer ones spooled by the stall check;
        # replayed in flush order it ends at the newest
        got = vm.wait_value("rwst_gauge", steps, 30)
        res.check("remote_write stuck: a gauge whose samples span the handed-back and the "
                  "stall-spooled part ends at its newest value (%r of %d)" % (got, steps),
                  got == steps, "%r" % vm.query('{__name__=~"rwst_gauge.*"}'))

        def seqs():
            return {int(m["__name__"].split("_")[2]): v
                    for m, v in vm.query('{__name__=~"rwst_seq_[0-9]+_total"}') or []}
        wait_until(lambda: len(seqs()) >= steps, 20, step=0.5)
        got = seqs()
        bad = [(i, got.get(i)) for i in range(steps) if got.get(i) != i + 1]
        res.check("remote_write stuck: every one of %d flushes' seq counters in VictoriaMetrics "
                  "with its value" % steps, not bad, "%d wrong, e.g. %r" % (len(bad), bad[:3]))
        res.check("remote_write stuck: nothing dropped after the restart (sink %r, spool %r)"
                  % (d.sink("dropped_total"), d.spool("dropped_total")),
                  d.sink("dropped_total") == 0 and d.spool("dropped_total") == 0)
    finally:
        if d.proc:
            d.stop_clean(res, "remote_write stuck")
        try:
            os.kill(vm.proc.pid, signal.SIGCONT)
        except (ProcessLookupError, TypeError, AttributeError):
            pass
        vm.stop()


def remote_write_kept_full(res, workdir):
    """remote_write's keep log bound: the same outage with maxKeptBytes
    1024 (16 samples of 64 bytes): the samples beyond it are counted and
    logged, and at shutdown what was kept is handed back and the loss of
    the rest is said."""
    if not os.path.exists(VICTORIA_METRICS):
        res.check("remote_write kept full: victoria-metrics installed", False, VICTORIA_METRICS)
        return
    vm = VictoriaMetricsServer(workdir, "vm-kfull")
    if not res.check("remote_write kept full: VictoriaMetrics starts", vm.start(), vm.logs()):
        return
    sink = {"plugin": "remote_write", "url": "http://%s:%d/api/v1/write" % (LOOPBACK, vm.port),
            "passthrough": True, "retryMinMs": 50, "retryMaxMs": 300, "timeoutMs": 5000,
            "maxKeptBytes": 1024}
    d = Daemon(workdir, "rw_kfull", 0, {"dir": os.path.join(workdir, "spool_rwkf"),
                                        "maxBytes": "64MiB", "fsync": "never"}, sink)
    try:
        if not stuck_term(res, d, "remote_write kept full", lambda: os.kill(vm.proc.pid, signal.SIGSTOP),
                          lambda: os.kill(vm.proc.pid, signal.SIGCONT), "rwkf", 40,
                          ["rwkf.count:1|c"]):
            return
        try:
            with open(os.path.join(workdir, "rw_kfull.1.stderr")) as f:
                first = f.read()
        except OSError:
            first = ""
        lines = [l for l in first.splitlines() if "keep log" in l or "not kept" in l]
        res.check("remote_write kept full: the samples beyond maxKeptBytes are counted and "
                  "logged, the loss at shutdown said",
                  any("keep log full (maxKeptBytes 1024, 16 samples kept)" in l for l in lines) and
                  any("handing back 16 raw samples" in l for l in lines) and
                  any("were not kept (maxKeptBytes 1024 full)" in l for l in lines),
                  "\n".join(lines)[-2000:] or first[-2000:])
    finally:
        if d.proc:
            d.stop_clean(res, "remote_write kept full")
        try:
            os.kill(vm.proc.pid, signal.SIGCONT)
        except (ProcessLookupError, TypeError, AttributeError):
            pass
        vm.stop()


def seq_all_arrived(res, label, carbon, want, timeout=60):
    got = set()
    deadline = time.time() + timeout
    while time.time() < deadline and got != want:
        got |= seq_arrived(carbon, want - got)
        if got != want:
            time.sleep(0.5)
    missing = sorted(want - got)
    return res.check("%s: every one of %d flushes' seq values read back from whisper with its "
                     "value" % (label, len(want)), not missing,
                     "%d missing, e.g. %r: %r" % (len(missing), missing[:5],
                                                  [whisper_value(carbon, "stats_counts.spool.seq.%d" % i)
                                                   for i in missing[:3]]))


def reload_settings(res, workdir):
    """Spool settings changed by SIGHUP during a carbon outage, each with
    flushes spooled before and after it: fsync, whenFull, segmentBytes and
    maxBytes on the same dir; a new dir (the old spool's segments move
    there); mode = "always"; the spool removed while it holds records.
    The sink is kept throughout (its counters go on); once carbon-cache
    starts every value arrives in whisper with its value, nothing dropped,
    and the removed spool is closed once replayed."""
    carbon = CarbonCache(os.path.join(workdir, "carbon_rl"))  # down until started below
    dir_a = os.path.join(workdir, "spool_rl_a")
    dir_b = os.path.join(workdir, "spool_rl_b")
    spool = {"dir": dir_a, "maxBytes": "64MiB", "fsync": "never"}
    d = Daemon(workdir, "reload_settings", carbon.line_port, spool)
    label = "reload settings"
    try:
        if not res.check("%s: switchyard starts" % label, d.start(), d.proc.logs()):
            return
        wait_until(lambda: d.sink("connected") == 0, 10)
        outage_traffic(d, 10, 0)
        wait_until(lambda: (d.spool("spooled_total") or 0) >= 10 * 2 * PAD, 10)
        spooled = d.spool("spooled_total") or 0
        spool = {"dir": dir_a, "maxBytes": "32MiB", "segmentBytes": "1MiB", "fsync": "always",
                 "whenFull": "dropNewest"}
        ok = d.reload(spool, "spool settings applied")
        res.check("%s: fsync, whenFull, segmentBytes and maxBytes changed by SIGHUP apply to "
                  "the kept sink (log)" % label,
                  ok and "fsync always, whenFull dropNewest" in d.proc.logs(10 ** 7) and
                  "(re)opened" not in d.proc.logs(10 ** 7), d.proc.logs())
        outage_traffic(d, 10, 10)
        wait_until(lambda: (d.spool("spooled_total") or 0) >= spooled + 10 * 2 * PAD, 10)
        res.check("%s: the sink was kept: the spool's counters went on (%r after %r)"
                  % (label, d.spool("spooled_total"), spooled),
                  (d.spool("spooled_total") or 0) >= spooled + 10 * 2 * PAD)
        spool = dict(spool, dir=dir_b)
        ok = d.reload(spool, "spool moved from")
        segs_a = [f for f in os.listdir(os.path.join(dir_a, "carbon")) if f.endswith(".seg")]
        segs_b = [f for f in os.listdir(os.path.join(dir_b, "carbon")) if f.endswith(".seg")] \
            if os.path.isdir(os.path.join(dir_b, "carbon")) else []
        res.check("%s: a new spool.dir by SIGHUP: the old spool's segments moved there "
                  "(old %r, new %r)" % (label, segs_a, segs_b), ok and not segs_a and segs_b,
                  d.proc.logs())
        outage_traffic(d, 10, 20)
        spool = dict(spool, mode="always")
        ok = d.reload(spool, "mode always")
        res.check("%s: mode = \"always\" by SIGHUP applies (log)" % label, ok, d.proc.logs())
        outage_traffic(d, 10, 30)
        ok = d.reload(None, "spool removed from the config, but it holds")
        res.check("%s: the spool removed by SIGHUP while it holds records: kept until it is "
                  "replayed (log)" % label, ok, d.proc.logs())
        outage_traffic(d, 10, 40)
        time.sleep(0.3)
        if not res.check("%s: carbon-cache starts" % label, carbon.start(), carbon.logs()):
            return
        seq_all_arrived(res, label, carbon, set(range(50)))
        res.check("%s: the removed spool is closed once replayed (log, and gone from /metrics)"
                  % label,
                  wait_until(lambda: "spool a reload removed is replayed; it is closed"
                             in d.proc.logs(10 ** 7) and d.spool("bytes") is None, 20),
                  d.proc.logs())
        res.check("%s: nothing dropped (sink %r)" % (label, d.sink("dropped_total")),
                  d.sink("dropped_total") == 0)
    finally:
        if d.proc:
            d.stop_clean(res, label)
        carbon.stop()


def reload_replaced(res, workdir):
    """A reload that changes another setting replaces the sink: with
    carbon-cache stopped (SIGSTOP) the old graphite queue holds lines when
    its shutdownTimeout runs out; they are handed back into the spool the
    new sink shares, so after SIGCONT every value arrives."""
    carbon = CarbonCache(os.path.join(workdir, "carbon_rr"))
    if not res.check("reload replaced: carbon-cache starts", carbon.start(), carbon.logs()):
        return
    spool = {"dir": os.path.join(workdir, "spool_rr"), "fsync": "never"}
    d = Daemon(workdir, "reload_replaced", carbon.line_port, spool)
    label = "reload replaced"
    stopped = False
    try:
        if not res.check("%s: switchyard starts" % label, d.start(), d.proc.logs()):
            return
        d.send(["spool.warm:1|c"])
        wait_until(lambda: d.sink("connected") == 1, 10)
        os.kill(carbon.pid, signal.SIGSTOP)
        stopped = True
        pad = ["spool.padlong.k%d%s:1|c" % (k, "x" * 200) for k in range(400)]
        for i in range(30):
            d.send(["spool.seq.%d:%d|c" % (i, i + 1)] + pad)
            time.sleep(0.05)
        queued = d.sink("queued") or 0
        d.cfg["sinks"]["carbon"]["reconnectMaxMs"] = 400
        ok = d.reload(spool, "(re)opened")
        res.check("%s: a reload that changes reconnectMaxMs replaces the sink (%d lines in "
                  "its queue)" % (label, queued), ok and queued > 0, d.proc.logs())
        ok = wait_until(lambda: "still held at shutdown went to the spool"
                        in d.proc.logs(10 ** 7), 10)
        res.check("%s: when its shutdownTimeout runs out the old sink's queue goes to the "
                  "spool" % label, ok,
                  "\n".join(l for l in d.proc.logs(10 ** 7).splitlines()
                            if "spool" in l or "reload" in l)[-3000:])
        os.kill(carbon.pid, signal.SIGCONT)
        stopped = False
        seq_all_arrived(res, label, carbon, set(range(30)))
    finally:
        if stopped:
            os.kill(carbon.pid, signal.SIGCONT)
        if d.proc:
            d.stop_clean(res, label)
        carbon.stop()


def reload_added(res, workdir):
    """A spool added by SIGHUP to a running sink while carbon is down: the
    flushes after it are spooled (the sink, its connection attempts and
    queue kept), and every value arrives once carbon starts."""
    carbon = CarbonCache(os.path.join(workdir, "carbon_ra"))
    d = Daemon(workdir, "reload_added", carbon.line_port, None)
    label = "reload added"
    try:
        if not res.check("%s: switchyard starts without a spool" % label, d.start(),
                         d.proc.logs()):
            return
        wait_until(lambda: d.sink("connected") == 0, 10)
        outage_traffic(d, 5, 0)
        ok = d.reload({"dir": os.path.join(workdir, "spool_ra"), "fsync": "never"},
                      "spool added")
        res.check("%s: a spool added by SIGHUP to the kept sink (log)" % label,
                  ok and "(re)opened" not in d.proc.logs(10 ** 7), d.proc.logs())
        outage_traffic(d, 25, 5)
        res.check("%s: the flushes after it went to the spool (%r values)"
                  % (label, d.spool("spooled_total")),
                  wait_until(lambda: (d.spool("spooled_total") or 0) >= 20 * 2 * PAD, 10))
        if not res.check("%s: carbon-cache starts" % label, carbon.start(), carbon.logs()):
            return
        seq_all_arrived(res, label, carbon, set(range(30)))
        res.check("%s: nothing dropped (sink %r)" % (label, d.sink("dropped_total")),
                  d.sink("dropped_total") == 0)
    finally:
        if d.proc:
            d.stop_clean(res, label)
        carbon.stop()


def reload_shrink(res, workdir):
    """maxBytes lowered by SIGHUP below what the spool holds (carbon down,
    whenFull = dropOldest, 64 KiB segments): the oldest segments go at
    once, counted in switchyard_spool_dropped_total and the sink's dropped,
    and logged; the spool is within the new bound; the newest flushes still
    arrive once carbon starts."""
    carbon = CarbonCache(os.path.join(workdir, "carbon_rs"))
    spool = {"dir": os.path.join(workdir, "spool_rs"), "maxBytes": "64MiB",
             "segmentBytes": "64KiB", "fsync": "never"}
    d = Daemon(workdir, "reload_shrink", carbon.line_port, spool)
    label = "reload shrink"
    try:
        if not res.check("%s: switchyard starts" % label, d.start(), d.proc.logs()):
            return
        wait_until(lambda: d.sink("connected") == 0, 10)
        outage_traffic(d, 40, 0)
        wait_until(lambda: (d.spool("bytes") or 0) > 600 * 1024, 10)
        before = d.spool("bytes") or 0
        ok = d.reload(dict(spool, maxBytes="256KiB"), "maxBytes lowered to 262144 by a reload")
        wait_until(lambda: (d.spool("dropped_total") or 0) > 0, 5)
        body = d.metrics()
        size = d.metric('switchyard_spool_bytes{sink="carbon",plugin="graphite"}', body)
        dropped = d.metric('switchyard_spool_dropped_total{sink="carbon",plugin="graphite"}', body)
        sink_dropped = d.metric('switchyard_sink_dropped_total{sink="carbon",plugin="graphite"}', body)
        res.check("%s: maxBytes 64MiB -> 256KiB by SIGHUP with %d bytes spooled: trimmed to %r "
                  "bytes, %r values dropped (sink %r), logged" % (label, before, size, dropped,
                                                                  sink_dropped),
                  ok and size is not None and size <= 256 * 1024 and dropped and dropped > 0
                  and sink_dropped >= dropped, d.proc.logs())
        if not res.check("%s: carbon-cache starts" % label, carbon.start(), carbon.logs()):
            return
        seq_all_arrived(res, label, carbon, {39})
        res.check("%s: the oldest flush was given up" % label,
                  not seq_arrived(carbon, {0}))
    finally:
        if d.proc:
            d.stop_clean(res, label)
        carbon.stop()


def record_offsets(path):
    """(offset, length, names) of each record of a segment file."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 12 <= len(data):
        magic, length, _crc = struct.unpack_from("<III", data, off)
        if magic != 0x50535953:
            break
        payload = data[off + 12:off + 12 + length]
        _ts, count = struct.unpack_from("<qI", payload, 0)
        p, names = 12, []
        for _ in range(count):
            nl = struct.unpack_from("<I", payload, p + 9)[0]
            names.append(payload[p + 13:p + 13 + nl].decode())
            p += 13 + nl
        out.append((off, 12 + length, names))
        off += 12 + length
    return out


def restart(res, workdir):
    carbon = CarbonCache(os.path.join(workdir, "carbon2"))  # down until started below
    spool_dir = os.path.join(workdir, "spool2")
    d = Daemon(workdir, "restart", carbon.line_port,
               {"dir": spool_dir, "maxBytes": "64MiB", "fsync": "never"})
    try:
        if not res.check("restart: switchyard starts", d.start(), d.proc.logs()):
            return
        wait_until(lambda: d.sink("connected") == 0, 10)
        outage_traffic(d, 60)
        wait_until(lambda: (d.spool("records") or 0) >= 40, 10)
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.popen.wait(10)
        rc, text, err = spool_cat(spool_dir)
        spooled = set()
        times = []
        groups = [[]]  # seq values per flush: each flush writes one numStats line
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            times.append(int(parts[2]))
            if parts[0].endswith(".numStats"):
                groups.append([])
            elif parts[0].startswith("stats_counts.spool.seq."):
                spooled.add(int(parts[0].rsplit(".", 1)[1]))
                groups[-1].append(int(parts[0].rsplit(".", 1)[1]))
        # Under load two steps can meet in one flush, whose keys come in
        # table order: order is checked between flushes, not inside one.
        groups = [g for g in groups if g]
        inverted = [(a, b) for a, b in zip(groups, groups[1:]) if max(a) >= min(b)]
        res.check("restart: the spool holds the flushes in order (flush times never go back, "
                  "every seq value of a flush above those of the flush before)",
                  times == sorted(times) and not inverted and len(groups) >= 2,
                  "%d flushes; inverted %r; times sorted %r" % (len(groups), inverted[:5],
                                                                times == sorted(times)))
        res.check("restart: the self-metrics carry the spool's figures "
                  "(statsd.switchyard.sink.carbon.spool.*, spooled with the flushes)",
                  "statsd.switchyard.sink.carbon.spool.records " in text and
                  "statsd.switchyard.sink.carbon.spool.spooled " in text, text[-3000:])
        res.check("restart: `switchyard spool cat` shows the seq values spooled before the "
                  "SIGKILL (%d of 60)" % len(spooled), rc == 0 and len(spooled) >= 30,
                  "rc %d: %s\n%s" % (rc, err, text[:2000]))
        segdir = os.path.join(spool_dir, "carbon")
        segs = sorted(f for f in os.listdir(segdir) if f.endswith(".seg"))
        recs = record_offsets(os.path.join(segdir, segs[0])) if segs else []
        # damage a record in the middle that holds a seq value
        victims = [r for r in recs[len(recs) // 3:] if any(n.startswith("stats_counts.spool.seq.")
                                                         for n in r[2])]
        if not res.check("restart: a record to damage", bool(victims), repr(len(recs))):
            return
        off, length, names = victims[0]
        lost = {int(n.rsplit(".", 1)[1]) for n in names if n.startswith("stats_counts.spool.seq.")}
        with open(os.path.join(segdir, segs[0]), "r+b") as f:
            f.seek(off + length // 2)
            b = f.read(8)
            f.seek(off + length // 2)
            f.write(bytes(x ^ 0x5A for x in b))
        rc, text, err = spool_cat(spool_dir)
        res.check("restart: `switchyard spool cat` flags the damaged record and exits 1",
                  rc == 1 and "# corrupt:" in text, "rc %d" % rc)
        ls = subprocess.run([switchyard_binary(), "spool", "ls", spool_dir], stdout=subprocess.PIPE,
                            timeout=60).stdout.decode()
        res.check("restart: `switchyard spool ls` lists the segment and its damage",
                  segs[0] in ls and "DAMAGED" in ls, ls)
        if not res.check("restart: carbon-cache starts", carbon.start(), carbon.logs()):
            return
        if not res.check("restart: switchyard starts again on the spool", d.start(), d.proc.logs()):
            return
        want = spooled - lost
        got = set()
        deadline = time.time() + 40
        while time.time() < deadline and got != want:
            got |= seq_arrived(carbon, want - got)
            if got != want:
                time.sleep(0.5)
        missing = sorted(want - got)
        res.check("restart: every seq value spooled before the kill arrived but the %d of the "
                  "damaged record (%d values)" % (len(lost), len(want)), not missing,
                  "%d missing, e.g. %r\n%s" % (len(missing), missing[:5], d.proc.logs()))
        wait_until(lambda: (d.spool("corrupt_total") or 0) >= 1, 10)
        res.check("restart: the damaged record was skipped and counted "
                  "(switchyard_spool_corrupt_total = %r)" % d.spool("corrupt_total"),
                  d.spool("corrupt_total") == 1)
        res.check("restart: the damaged record's values did not arrive",
                  not seq_arrived(carbon, lost))
    finally:
        if d.proc:
            d.stop_clean(res, "restart")
        carbon.stop()


def full(res, workdir):
    dead = free_port("tcp")  # nothing listens: carbon is down throughout
    ds = {}
    for policy in ("dropOldest", "dropNewest"):
        ds[policy] = Daemon(workdir, "full_" + policy, dead,
                            {"dir": os.path.join(workdir, "spool_" + policy),
                             "maxBytes": "256KiB", "segmentBytes": "64KiB",
                             "whenFull": policy, "fsync": "never"})
    try:
        for policy, d in ds.items():
            if not res.check("full %s: switchyard starts" % policy, d.start(), d.proc.logs()):
                return
            wait_until(lambda: d.sink("connected") == 0, 10)
        pad = ["full.pad.k%d:1|c" % k for k in range(1000)]
        sent = 0
        for i in range(30):
            for d in ds.values():
                d.send(["full.seq.%d:1|c" % i] + pad)
            sent += 1 + len(pad)
            time.sleep(0.05)
        for policy, d in ds.items():
            wait_until(lambda: d.metric("switchyard_lines_total") == sent, 10)
            body = d.metrics()
            dropped = d.metric('switchyard_spool_dropped_total{sink="carbon",plugin="graphite"}', body)
            sink_dropped = d.metric('switchyard_sink_dropped_total{sink="carbon",plugin="graphite"}', body)
            size = d.metric('switchyard_spool_bytes{sink="carbon",plugin="graphite"}', body)
            res.check("full %s: drops counted (spool %r, sink %r) and the spool within 256 KiB (%r)"
                      % (policy, dropped, sink_dropped, size),
                      dropped and dropped > 0 and sink_dropped >= dropped and size <= 256 * 1024)
            res.check("full %s: ingest unaffected: every line parsed (%r of %d), no datagram "
                      "dropped" % (policy, d.metric("switchyard_lines_total", body), sent),
                      d.metric("switchyard_lines_total", body) == sent and
                      d.metric("switchyard_listener_dropped_total", body) == 0)
            rc, text, err = spool_cat(os.path.join(workdir, "spool_" + policy))
            has_first = "stats_counts.full.seq.0 " in text
            has_last = "stats_counts.full.seq.29 " in text
            if policy == "dropOldest":
                res.check("full dropOldest: the first flush was given up, the last kept",
                          not has_first and has_last, "first %r last %r" % (has_first, has_last))
            else:
                res.check("full dropNewest: the first flush was kept, the last given up",
                          has_first and not has_last, "first %r last %r" % (has_first, has_last))
    finally:
        for policy, d in ds.items():
            if d.proc:
                d.stop_clean(res, "full " + policy)


def check(res, workdir):
    bad = [("maxBytes", '"4 parsecs"', "spool.maxBytes"),
           ("fsync", '"sometimes"', "spool.fsync"),
           ("whenFull", '"block"', "spool.whenFull"),
           ("segmentBytes", '"1KiB"', "segmentBytes"),
           ("mode", '"sometimes"', "spool.mode"),
           ("colour", '"red"', "spool.colour")]
    for key, value, named in bad:
        path = os.path.join(workdir, "bad_%s.lua" % key)
        with open(path, "w") as f:
            f.write('return { sinks = { carbon = { plugin = "graphite", spool = { dir = "%s", '
                    '%s = %s } } } }\n' % (os.path.join(workdir, "nospool"), key, value))
        r = subprocess.run([switchyard_binary(), "--check", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        out = r.stdout.decode()
        res.check("check: spool.%s = %s refused by --check, naming %s" % (key, value, named),
                  r.returncode != 0 and named in out, out)
    path = os.path.join(workdir, "bad_string.lua")
    with open(path, "w") as f:
        f.write('return { sinks = { carbon = { plugin = "graphite", spool = "/tmp" } } }\n')
    r = subprocess.run([switchyard_binary(), "--check", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    res.check("check: spool = \"/tmp\" refused by --check: it must be a table",
              r.returncode != 0 and "must be a table" in r.stdout.decode(), r.stdout.decode())
    path = os.path.join(workdir, "good.lua")
    with open(path, "w") as f:
        f.write('return { sinks = { carbon = { plugin = "graphite", spool = { dir = "%s", '
                'maxBytes = "4GiB", fsync = "always", whenFull = "dropNewest", '
                'mode = "always" } } } }\n'
                % os.path.join(workdir, "nospool"))
    r = subprocess.run([switchyard_binary(), "--check", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    res.check("check: a valid spool passes --check and creates nothing",
              r.returncode == 0 and not os.path.exists(os.path.join(workdir, "nospool")),
              r.stdout.decode())


def main():
    t_start = time.time()
    res = Results(TEST_NAME)
    workdir = make_workdir(TEST_NAME)
    try:
        only = os.environ.get("SPOOL_CASES", "").split(",")
        for case in (check, full, outage, restart, redis_outage, repeater_outage, redis_stuck,
                     repeater_stuck, influx_stuck, repeater_raw_stuck, influx_samples_stuck,
                     repeater_events_down, events_write_through, repeater_kept_full,
                     write_through, stall_only,
                     repeater_samples, remote_write_samples, remote_write_stuck,
                     remote_write_kept_full, reload_settings, reload_added, reload_shrink,
                     reload_replaced):
            if only != [""] and case.__name__ not in only:
                continue
            t0 = time.time()
            case(res, workdir)
            res.note("%s: %.1f s" % (case.__name__, time.time() - t0))
    finally:
        t0 = time.time()
        remove_workdir(workdir)
        res.note("cleanup: %.1f s; all: %.1f s" % (time.time() - t0, time.time() - t_start))
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
