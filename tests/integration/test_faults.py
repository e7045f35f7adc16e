#!/usr/bin/env python3
"""Integration test: faults in the world around switchyard.

Each scenario starts its own switchyard (build/switchyard or $SY_BIN) on
loopback ports chosen at run time, with a console sink `c` writing every
flush to a file: it receives every flush on time whatever happens to the
other sinks, so it is the record of what each flush held (switchyard's own
metrics about the other sinks included).

  1. graphite_down_at_start, graphite_goes_away, graphite_slow_reader: a
     graphite sink with maxQueueBytes = 1 MiB whose carbon is down at
     start / goes away and comes back / accepts but reads a byte a second,
     while UDP and TCP traffic (a sequence-numbered gauge, exact counters,
     and 12000 gauges so that every flush is ~0.5 MB) keeps coming.
     Ingest never stalls (every console flush arrives on time, sends are
     accepted at once, the counters add up exactly), the daemon's memory
     stays bounded, drops are counted (switchyard.sink.g.dropped), and once
     carbon is back everything not counted as dropped arrives, exactly
     once and exactly as the console saw it: received + dropped = offered.
  2. redis_memcached_restart: a redis sink and a memcache_traces sink in
     one daemon; both servers are stopped and started again mid-stream;
     the daemon keeps flushing and both sinks recover.
  3. sigterm_under_load: 4 TCP connections and 2 UDP senders flat out; the
     TCP clients finish writing a known number of lines, the UDP senders
     stop, SIGTERM at once: every TCP line written is counted, and for UDP
     received = sent - (listener drops + kernel drops of the socket).
  3b. sigterm_sink_stuck: SIGTERM while carbon is down, and while it
     reads a byte a second: exit 0 within shutdownTimeout, the loss
     logged, the console sink has the final flush.
  4. reloads_under_load: 100 SIGHUPs in quick succession, each config
     renaming a probe key differently, while counters stream over TCP:
     nothing is lost (exact sums) and the last config wins.
  5. prometheus_scrapers: scrapers of the prometheus sink that reset
     mid-page, then scrapers that never read (pages held, more refused
     503 and counted); push_sinks: remote_write to VictoriaMetrics and
     influxdb to influxd, both servers killed mid-stream, answering 5xx,
     and stopped (slower than timeoutMs): failures and drops counted, the
     console flushes on time, both recover, the counter's total exact.

Usage:
  /usr/bin/python3 tests/integration/test_faults.py [SCENARIO ...]
  SY_BIN=build-san/switchyard /usr/bin/python3 tests/integration/test_faults.py
"""
import collections
import fcntl
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True   # importing test_badinput: leave no __pycache__ behind

from lib.netutil import LOOPBACK, free_port, sleep_until_phase, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib import scenarios  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.influx import INFLUXD, InfluxServer  # noqa: E402
from lib.prom import VICTORIA_METRICS, VictoriaMetricsServer  # noqa: E402
from lib.resp import REDIS_SERVER, query  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402
from lib.tcplisten import LineListener  # noqa: E402
# The daemon helper (console sink parsed per flush, /metrics, memory) is
# shared with the bad-input test.
from test_badinput import Daemon, finish, self_part, start, tcp_send  # noqa: E402

TEST_NAME = "test_faults"
QUEUE = 1 << 20                 # the graphite sink's maxQueueBytes
FLOOD_KEYS = 12000              # gauges per flush: ~0.5 MB of carbon lines
SIOCOUTQ = 0x5411               # TIOCOUTQ: bytes not yet acknowledged by the peer


# ---------------------------------------------------------------------------
# helpers


class ConsoleWatch:
    """Polls the console file from a thread and records when each flush was
    first seen, so a stalled output shows as late flushes."""

    def __init__(self, d, interval_s):
        self.d = d
        self.interval = interval_s
        self.seen = collections.OrderedDict()     # flush index -> (ts, monotonic, wall)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            with self._lock:
                fl = self.d.flushes()
            now, wall = time.monotonic(), time.time()
            for i, (ts, _) in enumerate(fl):
                if i not in self.seen:
                    self.seen[i] = (ts, now, wall)
            self._stop.wait(0.05)

    def flushes(self):
        with self._lock:
            return self.d.flushes()

    def stop(self):
        self._stop.set()
        self._t.join(5)

    def lateness(self):
        """For each flush after the first: seconds from its wall-clock tick
        (ts, the end of its interval) to the moment the file had it."""
        return [(ts, wall - ts) for i, (ts, _, wall) in self.seen.items() if i > 0]


class Traffic:
    """UDP: a sequence-numbered gauge fx.seq and a counter fx.udp every
    50 ms.  TCP: 100 fx.tcp counters every 50 ms on one connection, and
    FLOOD_KEYS gauges every 250 ms on another.  Records how long each send
    took."""

    def __init__(self, port, flood=True):
        self.port = port
        self.flood = flood
        self.seq = 0
        self.udp_sent = 0
        self.tcp_sent = 0
        self.flood_rounds = 0
        self.max_send_s = 0.0
        self.errors = []
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        for fn in (self._udp, self._tcp) + ((self._flood,) if self.flood else ()):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _timed(self, fn):
        t0 = time.monotonic()
        fn()
        self.max_send_s = max(self.max_send_s, time.monotonic() - t0)

    def _udp(self):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                while not self._stop.is_set():
                    n = self.seq + 1
                    self._timed(lambda: s.sendto(b"fx.seq:%d|g\nfx.udp:1|c" % n,
                                                 (LOOPBACK, self.port)))
                    self.seq = n
                    self.udp_sent += 1
                    self._stop.wait(0.05)
        except Exception as e:  # reported by the caller
            self.errors.append("udp: %r" % e)

    def _stream(self, payload_fn, period, count_fn):
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=30) as s:
                while not self._stop.is_set():
                    data = payload_fn()
                    self._timed(lambda: s.sendall(data))
                    count_fn()
                    self._stop.wait(period)
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
        except Exception as e:  # reported by the caller
            self.errors.append("tcp: %r" % e)

    def _tcp(self):
        def count():
            self.tcp_sent += 100
        self._stream(lambda: b"fx.tcp:1|c\n" * 100, 0.05, count)

    def _flood(self):
        def payload():
            r = self.flood_rounds
            return b"".join(b"fx.flood.%d:%d|g\n" % (i, r) for i in range(FLOOD_KEYS))

        def count():
            self.flood_rounds += 1
        self._stream(payload, 0.25, count)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)


class SlowReader:
    """A carbon that accepts and then reads one byte a second (receive
    buffer 4 KiB), until go_fast(); records every line it got."""

    def __init__(self, port=0):
        self.data = collections.defaultdict(bytearray)
        self.accepted = 0
        self.fast = threading.Event()
        self._closed = False
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self._sock.bind((LOOPBACK, port))
        self._sock.listen(8)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                c, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                cid = self.accepted
                self._conns.append(c)
            threading.Thread(target=self._read, args=(c, cid), daemon=True).start()

    def _read(self, c, cid):
        try:
            while not self._closed:
                b = c.recv(65536 if self.fast.is_set() else 1)
                if not b:
                    return
                with self._lock:
                    self.data[cid] += b
                if not self.fast.is_set():
                    self.fast.wait(1.0)
        except OSError:
            pass

    def go_fast(self):
        self.fast.set()

    def bytes_read(self):
        with self._lock:
            return sum(len(v) for v in self.data.values())

    def lines(self):
        """[(arrival, conn, text)] like LineListener (complete lines only)."""
        out = []
        with self._lock:
            for cid, buf in self.data.items():
                for raw in bytes(buf).split(b"\n")[:-1]:
                    out.append((0, cid, raw.decode("utf-8", "replace")))
        return out

    def close(self):
        self._closed = True
        self.fast.set()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._sock.close()


def console_lines(path):
    """Every (name, value, ts) line the console sink wrote."""
    out = []
    with open(path, "rb") as f:
        for raw in f.read().split(b"\n"):
            parts = raw.rsplit(b" ", 2)
            if len(parts) == 3:
                out.append((parts[0].decode("utf-8", "replace"), parts[1].decode(),
                            parts[2].decode()))
    return out


def sink_stat(flush, sink, stat):
    v = flush.get("stats.statsd.switchyard.sink.%s.%s" % (sink, stat))
    return None if v is None else float(v)


def flush_gaps(flushes):
    ts = [t for t, _ in flushes]
    return max((b - a for a, b in zip(ts, ts[1:])), default=0)


# ---------------------------------------------------------------------------
# 1. graphite down, away, slow


def scenario_graphite(res, workdir, mode):
    label = "graphite_" + mode
    sink_port = free_port("tcp")
    d = Daemon(workdir, "sy-" + mode,
               options={"flushInterval": 1000, "ringSize": 8 << 20, "shutdownTimeout": 20000},
               sinks={"g": {"plugin": "graphite", "host": LOOPBACK, "port": sink_port,
                            "maxQueueBytes": QUEUE, "reconnectMinMs": 50,
                            "reconnectMaxMs": 300}})
    listeners = []
    traffic = watch = None
    # A slow reader first fills the kernel's socket buffers (~1.5 MB here).
    outage_flushes = int(os.environ.get("SY_FAULTS_OUTAGE_FLUSHES",
                                        "9" if mode == "slow_reader" else "6"))
    try:
        if mode == "goes_away":
            listeners.append(LineListener(sink_port))
        elif mode == "slow_reader":
            listeners.append(SlowReader(sink_port))
        if not start(res, label, d):
            return
        watch = ConsoleWatch(d, 1.0).start()
        time.sleep(0.3)
        rss0 = d.status_kb("VmRSS")
        traffic = Traffic(d.port).start()
        d.wait_flushes(2, 10)
        if mode == "goes_away":
            # Right after a flush has been received whole: nothing in flight.
            lst = listeners[0]
            n = len(lst.lines())
            lst.wait(lambda l: len(l.lines()) > n, 5)
            wait_until(lambda: time.monotonic() - (lst.last_arrival() or 0) > 0.3, 5)
            lst.close()
            wait_until(lambda: re.search(r"sink 'g'.*lost", d.log()), 5)
        # the outage: watch memory and the queue
        rss, queued_bytes = [], []
        for _ in range(outage_flushes):
            d.wait_flushes(1, 5)
            rss.append(d.status_kb("VmRSS"))
            queued_bytes.append(d.metric('switchyard_sink_queued_bytes{sink="g",plugin="graphite"}'))
        fl = watch.flushes()
        dropped_during = sum(sink_stat(m, "g", "dropped") or 0 for _, m in fl)
        res.check("%s: drops are counted while carbon is unavailable "
                  "(switchyard.sink.g.dropped)" % label, dropped_during > 0,
                  "dropped %r" % dropped_during)
        res.check("%s: the queue stays within maxQueueBytes (%d)" % (label, QUEUE),
                  all(q is not None and q <= QUEUE for q in queued_bytes),
                  "queued bytes per flush %r" % queued_bytes)
        res.note("queued bytes during the outage: %r" % queued_bytes)
        # back
        if mode == "slow_reader":
            listeners[0].go_fast()
        else:
            listeners.append(LineListener(sink_port))
        t_back = time.monotonic()

        def drained():
            f = watch.flushes()
            return f and sink_stat(f[-1][1], "g", "connected") == 1 and \
                sink_stat(f[-1][1], "g", "queued") == 0
        ok = wait_until(drained, 30, step=0.2)
        res.note("carbon back: the queue drained in %.1f s" % (time.monotonic() - t_back))
        res.check("%s: once carbon is back the sink connects and empties its queue" % label,
                  ok, d.logs())
        d.wait_flushes(2, 10)
        traffic.stop()
        d.wait_flushes(2, 10)
        wait_until(drained, 10, step=0.2)
        hwm = d.status_kb("VmHWM")
        watch.stop()
        late = watch.lateness()
        rc = d.stop()
        res.check("%s: switchyard exits 0 on SIGTERM" % label, rc == 0,
                  "exit code %r\n%s" % (rc, d.logs()))
        d.check_sanitizer(res, label)
        # the carbon side
        def received():
            return sum(len(lst.lines()) for lst in listeners)
        last = [-1]

        def quiet():
            n, last[0] = last[0], received()
            return n == last[0]
        wait_until(quiet, 10, step=0.5)
        fl = d.flushes()

        # ingest never stalled
        res.check("%s: the traffic threads ran without error" % label, not traffic.errors,
                  "%r" % traffic.errors)
        res.note("slowest send: %.3f s; flush lateness: max %.2f s"
                 % (traffic.max_send_s, max((x for _, x in late), default=0)))
        res.check("%s: UDP and TCP sends were accepted at once (slowest %.3f s)"
                  % (label, traffic.max_send_s), traffic.max_send_s < 1.0)
        res.check("%s: the console sink got every flush, one a second" % label,
                  flush_gaps(fl) <= 1, "timestamps %r" % [t for t, _ in fl])
        res.check("%s: ... each on time (written within 1.5 s of its tick)" % label,
                  all(x < 1.5 for _, x in late), "late flushes: %r"
                  % [(t, round(x, 2)) for t, x in late if x >= 1.5])
        res.check("%s: every UDP and TCP counter arrived (fx.udp %d, fx.tcp %d)"
                  % (label, traffic.udp_sent, traffic.tcp_sent),
                  d.counter("fx.udp") == traffic.udp_sent and d.counter("fx.tcp") == traffic.tcp_sent,
                  "fx.udp %r, fx.tcp %r" % (d.counter("fx.udp"), d.counter("fx.tcp")))
        res.check("%s: the sequence gauge ends at the last number sent (%d)" % (label, traffic.seq),
                  d.last("stats.gauges.fx.seq") == str(traffic.seq),
                  "last fx.seq %r" % d.last("stats.gauges.fx.seq"))
        udp_dropped = d.self_total("listener.%s.dropped" % self_part(d.udp_url))
        res.check("%s: no datagram dropped by switchyard" % label, udp_dropped == 0,
                  "dropped %r" % udp_dropped)

        # memory
        # ASan's quarantine keeps freed memory for a while: looser bounds.
        bound, growth = ((256, 96) if d.sanitized() else (96, 8))
        bound *= 1024
        res.note("RSS: %.1f MiB at start, during the outage %s MiB, VmHWM %.1f MiB"
                 % (rss0 / 1024, ", ".join("%.1f" % (r / 1024) for r in rss), hwm / 1024))
        res.check("%s: memory bounded: VmHWM below %d MiB, RSS grew < %d MiB over the outage"
                  % (label, bound // 1024, growth), hwm < bound and rss[-1] - rss[1] < growth * 1024,
                  "VmHWM %.1f MiB; RSS during the outage %r KiB" % (hwm / 1024, rss))

        # accounting: what carbon got + what was counted as dropped = offered
        # (as multisets: the final flush at SIGTERM may share the last
        # periodic flush's second)
        offered = collections.Counter(console_lines(d.console_path))
        got = collections.Counter()
        malformed = []
        for lst in listeners:
            for _, _, text in lst.lines():
                parts = text.rsplit(" ", 2)
                if len(parts) != 3:
                    malformed.append(text)
                    continue
                got[tuple(parts)] += 1
        extra = got - offered
        dropped = sum(sink_stat(m, "g", "dropped") or 0 for _, m in fl)
        n_got, n_offered = sum(got.values()), sum(offered.values())
        res.note("offered %d lines, carbon received %d, dropped %d" % (n_offered, n_got, dropped))
        res.check("%s: every line carbon received is one the console got, same value, "
                  "never twice" % label, not extra and not malformed,
                  "%d lines not offered (or more often than offered), e.g. %r; %d malformed, "
                  "e.g. %r" % (sum(extra.values()), list(extra)[:5], len(malformed),
                               malformed[:5]))
        res.check("%s: received + dropped = offered (everything within the bound arrived)" % label,
                  n_got + dropped == n_offered,
                  "received %d + dropped %d = %d, offered %d"
                  % (n_got, dropped, n_got + dropped, n_offered))
        want = {(n, ts) for n, _, ts in offered}
        got = {(n, ts) for n, _, ts in got}
        outage_ts = sorted({ts for (_, ts) in want} - {ts for (_, ts) in got})
        res.note("flushes carbon never saw a line of: %d" % len(outage_ts))
    finally:
        if traffic:
            traffic.stop()
        if watch:
            watch.stop()
        d.stop()
        for lst in listeners:
            lst.close()


def scenario_graphite_down_at_start(res, workdir):
    scenario_graphite(res, workdir, "down_at_start")


def scenario_graphite_goes_away(res, workdir):
    scenario_graphite(res, workdir, "goes_away")


def scenario_graphite_slow_reader(res, workdir):
    scenario_graphite(res, workdir, "slow_reader")


# ---------------------------------------------------------------------------
# 2. redis and memcached restarted


MEMCACHED = "/usr/bin/memcached"


def mc_get_many(port, keys):
    """{key: bytes} from memcached, or None when unreachable."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=3) as s:
            s.sendall(("get " + " ".join(keys) + "\r\n").encode())
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    out, pos = {}, 0
    while True:
        nl = data.find(b"\r\n", pos)
        if nl < 0:
            return out
        line = data[pos:nl].decode("utf-8", "replace")
        if line == "END" or not line.startswith("VALUE "):
            return out
        _, k, _, n = line.split(" ")[:4]
        out[k] = data[nl + 2:nl + 2 + int(n)]
        pos = nl + 2 + int(n) + 2


def mc_traces(port, prefix):
    """Trace ids in memcached's part records."""
    keys = ["%s:%06d:part" % (prefix, s * 100) for s in range(1000)]
    got = {}
    for i in range(0, len(keys), 200):
        part = mc_get_many(port, keys[i:i + 200])
        if part is None:
            return None
        got.update(part)
    ids = set()
    for v in got.values():
        m = re.search(rb'"trace":\s*"([^"]*)"', v)
        if m:
            ids.add(m.group(1).decode())
    return ids


class Server:
    """A server restarted on the same port: redis-server or memcached."""

    def __init__(self, workdir, name, argv_fn, port):
        self.workdir, self.name, self.argv_fn, self.port = workdir, name, argv_fn, port
        self.procs = []

    def start(self):
        p = Process("%s-%d" % (self.name, len(self.procs) + 1), self.argv_fn(self.port),
                    self.workdir, cwd=self.workdir).start()
        self.procs.append(p)
        return wait_for_port(self.port, 10, alive=p.alive)

    def stop(self):
        for p in self.procs:
            p.stop()

    def logs(self):
        return "\n".join(p.logs() for p in self.procs)


def trace_datagram(tid):
    return ("db.q:5|ms|#trace:%s,off:1\napi.req:20|ms|#trace:%s,root,method:GET,path:/f,"
            "status:200" % (tid, tid)).encode()


def scenario_redis_memcached_restart(res, workdir):
    label = "redis_memcached_restart"
    for exe in (REDIS_SERVER, MEMCACHED):
        if not res.check("%s: %s is installed" % (label, exe), os.access(exe, os.X_OK),
                         "apt-get install redis-server memcached"):
            return
    rdir = os.path.join(workdir, "redis")
    os.makedirs(rdir, exist_ok=True)
    redis = Server(workdir, "redis", lambda p: [REDIS_SERVER, "--port", p, "--bind", LOOPBACK,
                                                "--save", "", "--appendonly", "no", "--dir", rdir],
                   free_port("tcp"))

    def mc_argv(p):
        argv = [MEMCACHED, "-l", LOOPBACK, "-p", p, "-U", "0", "-m", "16"]
        return argv + (["-u", "nobody"] if os.geteuid() == 0 else [])
    mc = Server(workdir, "memcached", mc_argv, free_port("tcp"))
    prefix = "ft:traces"
    d = Daemon(workdir, "sy-restart",
               options={"flushInterval": 1000, "shutdownTimeout": 5000},
               sinks={"r": {"plugin": "redis", "host": LOOPBACK, "port": redis.port,
                            "reconnectMaxMs": 300},
                      "t": {"plugin": "memcache_traces", "host": LOOPBACK, "port": mc.port,
                            "prefix": prefix, "expire": 120, "timeoutMs": 1500, "rootWaitMs": 50,
                            "reconnectMinMs": 50, "reconnectMaxMs": 300}},
               lua_body='\n  routes = { route.tag "trace" :passthrough "t", '
                        'route.default() :to { "c", "r" } },')
    stop = threading.Event()
    sent = {"seq": 0, "traces": []}

    def sender():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            i = 0
            while not stop.is_set():
                i += 1
                s.sendto(b"fr.seq:%d|g" % i, (LOOPBACK, d.port))
                sent["seq"] = i
                if i % 3 == 0:
                    tid = "t%d" % i
                    s.sendto(trace_datagram(tid), (LOOPBACK, d.port))
                    sent["traces"].append((time.monotonic(), tid))
                stop.wait(0.1)

    th = threading.Thread(target=sender, daemon=True)
    try:
        ok = res.check("%s: redis-server and memcached start" % label,
                       redis.start() and mc.start(), redis.logs() + mc.logs())
        if not ok or not start(res, label, d):
            return
        th.start()
        d.wait_flushes(2, 10)
        redis_ok = wait_until(lambda: query(redis.port, "HGET", "switchyard:latest",
                                           "stats.gauges.fr.seq") is not None, 5)
        mc_ok = wait_until(lambda: (mc_traces(mc.port, prefix) or set()) &
                           {t for _, t in sent["traces"]}, 5)
        res.check("%s: both sinks deliver before the restart" % label, redis_ok and mc_ok,
                  d.logs())
        sleep_until_phase(1.0, 0.5)
        redis.stop()
        mc.stop()
        t_down = time.monotonic()
        d.wait_flushes(3, 10)
        fl = d.flushes()
        res.check("%s: while both are down the sinks report disconnected" % label,
                  sink_stat(fl[-1][1], "r", "connected") == 0 and
                  sink_stat(fl[-1][1], "t", "connected") == 0,
                  "%r" % {k: v for k, v in fl[-1][1].items() if ".sink." in k})
        up = redis.start() and mc.start()
        res.check("%s: both restart on the same ports" % label, up, redis.logs() + mc.logs())
        t_up = time.monotonic()

        def recovered():
            f = d.flushes()
            if not f:
                return False
            ts, m = f[-1]
            seq = m.get("stats.gauges.fr.seq")
            r_ok = sink_stat(m, "r", "connected") == 1 and seq is not None and \
                query(redis.port, "HGET", "switchyard:latest", "stats.gauges.fr.seq") == seq
            after = {t for when, t in sent["traces"] if when > t_up}
            t_ok = sink_stat(m, "t", "connected") == 1 and \
                bool((mc_traces(mc.port, prefix) or set()) & after)
            return r_ok and t_ok
        ok = wait_until(recovered, 20, step=0.3)
        res.note("both sinks recovered %.1f s after the restart" % (time.monotonic() - t_up))
        res.check("%s: both sinks recover: redis holds the latest flush, memcached a trace "
                  "sent after the restart" % label, ok, d.logs())
        stop.set()
        th.join(5)
        fl = d.flushes()
        res.check("%s: the console sink flushed every second throughout" % label,
                  flush_gaps(fl) <= 1, "timestamps %r" % [t for t, _ in fl])
        down_s = t_up - t_down
        res.note("servers down for %.1f s" % down_s)
        finish(res, label, d)
    finally:
        stop.set()
        d.stop()
        redis.stop()
        mc.stop()


# ---------------------------------------------------------------------------
# 3. SIGTERM under load

TERM_CONNS = 4
TERM_LINES = 2500000         # per TCP connection
TERM_UDP_SENDERS = 2
TERM_UDP_LINES = 20          # lines per datagram


def udp_socket_stats(port):
    """(rx_queue bytes, drops) of the UDP socket bound to 127.0.0.1:port,
    from /proc/net/udp; None when not found."""
    want = "0100007F:%04X" % port
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want:
                return int(fields[4].split(":")[1], 16), int(fields[-1])
    return None


def scenario_sigterm_under_load(res, workdir):
    label = "sigterm_under_load"
    # A small ring, so that streams get paused and datagrams dropped by
    # switchyard itself while the load runs.
    d = Daemon(workdir, "sy-term", options={"flushInterval": 1000, "shutdownTimeout": 20000,
                                            "ringSize": 1 << 20})
    udp_stop = threading.Event()
    udp_sent = [0] * TERM_UDP_SENDERS
    tcp_done = [None] * TERM_CONNS
    socks = []
    try:
        if not start(res, label, d):
            return

        def udp(k):
            dg = b"\n".join([b"st.udp:1|c"] * TERM_UDP_LINES)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                while not udp_stop.is_set():
                    try:
                        s.sendto(dg, (LOOPBACK, d.port))
                        udp_sent[k] += 1
                    except OSError:
                        pass

        def tcp(k):
            try:
                s = socks[k]
                line = b"st.tcp%d:1|c\n" % k
                chunk = line * 5000
                for _ in range(TERM_LINES // 5000):
                    s.sendall(chunk)
                tcp_done[k] = time.monotonic()
            except Exception as e:  # reported below
                tcp_done[k] = repr(e)

        for k in range(TERM_CONNS):
            socks.append(socket.create_connection((LOOPBACK, d.port), timeout=60))
        uthreads = [threading.Thread(target=udp, args=(k,), daemon=True)
                    for k in range(TERM_UDP_SENDERS)]
        tthreads = [threading.Thread(target=tcp, args=(k,), daemon=True)
                    for k in range(TERM_CONNS)]
        t0 = time.monotonic()
        for t in uthreads + tthreads:
            t.start()
        for t in tthreads:
            t.join(120)
        # The TCP clients have written everything; stop the UDP senders,
        # read the kernel's drop count, and signal at once.
        udp_stop.set()
        for t in uthreads:
            t.join(10)
        unacked = []
        for s in socks:
            unacked.append(struct.unpack("i", fcntl.ioctl(s.fileno(), SIOCOUTQ, b"\0" * 4))[0])
        st = udp_socket_stats(d.port)
        os.kill(d.pid, signal.SIGTERM)
        t_sig = time.monotonic()
        res.check("%s: every TCP client finished writing" % label,
                  all(isinstance(x, float) for x in tcp_done), "%r" % tcp_done)
        res.note("load ran %.1f s; at the signal the TCP clients still had %r bytes not yet "
                 "acknowledged by the daemon's kernel; UDP socket: %r (rx_queue, drops)"
                 % (t_sig - t0, unacked, st))
        try:
            d.proc.popen.wait(60)
        except Exception:
            pass
        took = time.monotonic() - t_sig
        rc = d.stop()
        res.note("shutdown took %.2f s" % took)
        res.check("%s: switchyard exits 0 after SIGTERM under load" % label, rc == 0,
                  "exit code %r\n%s" % (rc, d.logs()))
        d.check_sanitizer(res, label)
        tcp_got = [d.counter("st.tcp%d" % k) for k in range(TERM_CONNS)]
        res.check("%s: every TCP line written before the signal is counted (%d per connection)"
                  % (label, TERM_LINES), all(g == TERM_LINES for g in tcp_got),
                  "counted %r (bytes still unacknowledged at the signal: %r)\n%s"
                  % (tcp_got, unacked, d.logs()))
        sent = sum(udp_sent)
        kernel_drops = st[1] if st else None
        listener_dropped = d.self_total("listener.%s.dropped" % self_part(d.udp_url))
        received = d.self_total("listener.%s.received" % self_part(d.udp_url))
        got = d.counter("st.udp")
        res.note("UDP: %d datagrams sent, %r dropped by the kernel, %d dropped by switchyard, "
                 "%d received, %d lines counted" % (sent, kernel_drops, listener_dropped,
                                                    received, got))
        res.check("%s: UDP: received = sent - kernel drops" % label,
                  kernel_drops is not None and received == sent - kernel_drops,
                  "received %r, sent %d, kernel drops %r" % (received, sent, kernel_drops))
        res.check("%s: UDP: every datagram received and not counted as dropped reaches the "
                  "sink (%d lines each)" % (label, TERM_UDP_LINES),
                  kernel_drops is not None and
                  got == (sent - kernel_drops - listener_dropped) * TERM_UDP_LINES,
                  "counted %r lines, want (%d - %r - %r) * %d"
                  % (got, sent, kernel_drops, listener_dropped, TERM_UDP_LINES))
        res.check("%s: the shutdown is logged" % label,
                  re.search(r"stopping; flushing everything received", d.log()) is not None and
                  "stopped" in d.log(), d.logs())
    finally:
        udp_stop.set()
        for s in socks:
            s.close()
        d.stop()


# ---------------------------------------------------------------------------
# 3b. SIGTERM with carbon down or stuck


def scenario_sigterm_sink_stuck(res, workdir):
    """SIGTERM while carbon is down, and while it accepts but reads a byte a
    second: the daemon still exits 0 within shutdownTimeout, says how much
    it could not deliver, and the console sink has the final flush."""
    for mode in ("down", "slow_reader"):
        label = "sigterm_sink_stuck (%s)" % mode
        sink_port = free_port("tcp")
        slow = SlowReader(sink_port) if mode == "slow_reader" else None
        d = Daemon(workdir, "sy-stuck-" + mode,
                   options={"flushInterval": 1000, "shutdownTimeout": 2000},
                   sinks={"g": {"plugin": "graphite", "host": LOOPBACK, "port": sink_port,
                                "maxQueueBytes": QUEUE}})
        try:
            if not start(res, label, d):
                continue
            tcp_send(d.port, b"".join(b"ss.k%d:1|g\n" % i for i in range(FLOOD_KEYS)))
            # a slow reader first fills the socket buffers (~1.5 MB)
            d.wait_flushes(4 if mode == "down" else 8, 15)
            tcp_send(d.port, b"ss.last:1|c\n")
            t0 = time.monotonic()
            rc = d.stop(30)
            took = time.monotonic() - t0
            res.note("exit after %.2f s" % took)
            res.check("%s: exits 0 within shutdownTimeout (2 s) + 1 s" % label,
                      rc == 0 and took < 3.0, "exit code %r after %.2f s\n%s"
                      % (rc, took, d.logs()))
            res.check("%s: the undelivered lines are logged" % label,
                      re.search(r"sink 'g': still \d+ pending", d.log()) is not None, d.logs())
            res.check("%s: the console sink got the final flush" % label,
                      d.counter("ss.last") == 1, "ss.last %r" % d.counter("ss.last"))
            d.check_sanitizer(res, label)
        finally:
            d.stop()
            if slow:
                slow.close()


# ---------------------------------------------------------------------------
# 4. 100 reloads under load

N_RELOADS = 100
RL_LINES = 400000
RL_CONNS = 4
RL_KEYS = 50
RL_CHUNK = 2000


def probe_body(v):
    return ('\n  routes = { route.prefix "probe" :rename "probe_v%d" :to "c", '
            'route.default() :to "c" },\n  checks = { { "probe", name = "probe_v%d" } },'
            % (v, v))


def scenario_reloads_under_load(res, workdir):
    label = "reloads_under_load"
    d = Daemon(workdir, "sy-reloads", options={"flushInterval": 1000, "shutdownTimeout": 20000,
                                               "deleteIdleStats": True})
    d.write_config(d.render(lua_body=probe_body(0)))
    try:
        if not start(res, label, d):
            return
        tcp_send(d.port, b"probe:1|c\n" * 5)
        wait_until(lambda: d.counter("probe_v0") >= 5, 5)
        cond = threading.Condition()
        state = {"signalled": 0}
        per_conn = RL_LINES // RL_CONNS
        n_chunks = per_conn // RL_CHUNK
        outcome = [None] * RL_CONNS

        def sender(c):
            try:
                with socket.create_connection((LOOPBACK, d.port), timeout=60) as s:
                    for j in range(n_chunks):
                        gate = j * N_RELOADS // n_chunks
                        with cond:
                            cond.wait_for(lambda: state["signalled"] >= gate, timeout=60)
                        s.sendall(b"".join(b"rl.k%d:1|c\n" % ((c * per_conn + j * RL_CHUNK + i)
                                                               % RL_KEYS)
                                           for i in range(RL_CHUNK)))
                    s.shutdown(socket.SHUT_WR)
                    s.settimeout(60)
                    while s.recv(4096):
                        pass
                outcome[c] = "ok"
            except Exception as e:  # reported below
                outcome[c] = repr(e)

        threads = [threading.Thread(target=sender, args=(c,), daemon=True)
                   for c in range(RL_CONNS)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        for v in range(1, N_RELOADS + 1):
            d.write_config(d.render(lua_body=probe_body(v)))
            d.hup()
            with cond:
                state["signalled"] = v
                cond.notify_all()
            time.sleep(0.01)
        res.note("%d SIGHUPs in %.2f s" % (N_RELOADS, time.monotonic() - t0))
        for t in threads:
            t.join(120)
        res.check("%s: the TCP senders finished" % label, all(o == "ok" for o in outcome),
                  "%r" % outcome)

        def settled():
            log = d.log()
            started = len(re.findall(r"\breloading \S", log))
            ended = (len(re.findall(r"reload applied", log)) +
                     len(re.findall(r"newer config replaces", log)) +
                     len(re.findall(r"reload failed", log)))
            return started >= 1 and started == ended
        ok = wait_until(settled, 30)
        time.sleep(0.5)
        ok = ok and wait_until(settled, 30)
        log = d.log()
        res.note("%d reloads ran, %d applied, %d superseded, %d failed"
                 % (len(re.findall(r"\breloading \S", log)), log.count("reload applied"),
                    log.count("newer config replaces"), log.count("reload failed")))
        res.check("%s: the burst of reloads settles, none failed" % label,
                  ok and "reload failed" not in log, d.logs())
        tcp_send(d.port, b"probe:1|c\n" * 20)
        wait_until(lambda: d.counter("probe_v%d" % N_RELOADS) >= 20, 10)
        res.check("%s: daemon alive" % label, d.alive(), d.logs())
        finish(res, label, d)
        total = sum(d.counter("rl.k%d" % k) for k in range(RL_KEYS))
        res.check("%s: nothing lost: %d counter samples over %d reloads" % (label, RL_LINES,
                                                                             N_RELOADS),
                  total == RL_LINES, "sum %r" % total)
        probes = {}
        for _, m in d.flushes():
            for n, v in m.items():
                if n.startswith("stats.counters.probe") and n.endswith(".count") and float(v):
                    probes[n] = probes.get(n, 0) + float(v)
        want = {"stats.counters.probe_v0.count": 5,
                "stats.counters.probe_v%d.count" % N_RELOADS: 20}
        res.check("%s: the last config wins (probe flushed as probe_v%d)" % (label, N_RELOADS),
                  probes == want, "probe counts by name %r" % probes)
    finally:
        d.stop()


# ---------------------------------------------------------------------------
# 5. the prometheus sink's scrapers, and the push sinks' servers


def http_raw(port, path="/metrics", timeout=5):
    """(status, headers text, body) of one GET on a fresh connection."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return int(lines[0].split()[1]), "\n".join(lines[1:]), body.decode("utf-8", "replace")


def page_value(body, name):
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[1])
    return None


def reset_close(s):
    """Close with an RST (SO_LINGER 0), as a scraper that dies does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class Ticker:
    """A UDP sender of PREFIX.c:1|c and a sequence gauge every 50 ms,
    counting what it sent."""

    def __init__(self, port, prefix):
        self.port, self.prefix, self.sent = port, prefix.encode(), 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not self._stop.is_set():
                self.sent += 1
                s.sendto(b"%s.c:1|c\n%s.seq:%d|g" % (self.prefix, self.prefix, self.sent),
                         (LOOPBACK, self.port))
                self._stop.wait(0.05)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(5)
        return self.sent


PF_KEYS = 40000      # series on the page: ~3 MB, more than the sockets' buffers hold


def scenario_prometheus_scrapers(res, workdir):
    """Scrapers that die mid-page (RST after the first 4 KiB), then
    scrapers that ask and never read (a 4 KiB receive buffer): the
    prometheus sink answers the rest 503 beyond maxScrapes (counted),
    the other sink (console) flushes on time, switchyard's /metrics
    answers, and once the stalled scrapers go, a scrape has every sample
    counted exactly."""
    label = "prometheus_scrapers"
    page_port = free_port("tcp")
    d = Daemon(workdir, "sy-promscrape", options={"flushInterval": 1000},
               sinks={"p": {"plugin": "prometheus", "listen": "%s:%d" % (LOOPBACK, page_port),
                            "maxScrapes": 2}},
               lua_body='\n  routes = { route.default() :to "c" :passthrough "p" },')
    tick = None
    stalled = []
    try:
        if not start(res, label, d) or not wait_for_port(page_port, 10):
            return
        tcp_send(d.port, b"".join(b"pf.series.number.%06d:%d|g\n" % (i, i) for i in range(PF_KEYS)))
        ok = wait_until(lambda: page_value(http_raw(page_port)[2],
                                           "pf_series_number_%06d" % (PF_KEYS - 1)) is not None, 15)
        if not res.check("%s: the page has the %d series" % (label, PF_KEYS), ok, d.logs()):
            return
        tick = Ticker(d.port, "pf").start()
        d.wait_flushes(d.nflushes() + 1, 5)
        n0 = d.nflushes()
        # 1. scrapers that disconnect mid-page
        for _ in range(10):
            s = socket.create_connection((LOOPBACK, page_port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(4096)
            reset_close(s)
        st, _, body = http_raw(page_port)
        res.check("%s: after 10 scrapers reset mid-page, a scrape is answered whole (200)" % label,
                  st == 200 and page_value(body, "pf_series_number_%06d" % (PF_KEYS - 1)) is not None,
                  "status %r" % st)
        # 2. scrapers that ask and never read
        for _ in range(4):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(5)
            s.connect((LOOPBACK, page_port))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            stalled.append(s)
            time.sleep(0.3)
        st, head, _ = http_raw(page_port)
        res.check("%s: with pages held by stalled scrapers, one more scrape is refused (503, "
                  "Retry-After)" % label, st == 503 and "Retry-After" in head,
                  "status %r, headers %r" % (st, head))
        t_stall = time.monotonic()
        d.wait_flushes(d.nflushes() + 3, 6)
        m = d.http_metrics()
        res.check("%s: switchyard's /metrics answers while the scrapers stall" % label,
                  any(k.startswith("switchyard_sink_sent_total") for k in m), repr(m)[:500])
        res.note("stalled scrapers held for %.1f s" % (time.monotonic() - t_stall))
        for s in stalled:
            reset_close(s)
        stalled = []
        sent = tick.stop()
        tick = None

        def exact():
            st2, _, b = http_raw(page_port)
            return st2 == 200 and page_value(b, "pf_c_total") == sent and b
        body = wait_until(exact, 10, step=0.3)
        res.check("%s: after the stalled scrapers left, the page counts every sample (%d)" %
                  (label, sent), bool(body), "pf_c_total %r" % (
                      page_value(http_raw(page_port)[2], "pf_c_total")))
        refused = page_value(body or "", "switchyard_prometheus_scrapes_refused_total")
        res.check("%s: the refused scrapes are counted on the page (%r)" % (label, refused),
                  refused is not None and refused >= 1, repr(refused))
        res.check("%s: the console sink flushed every second throughout" % label,
                  flush_gaps(d.flushes()[n0 - 1:]) <= 2,
                  "timestamps %r" % [t for t, _ in d.flushes()])
        wait_until(lambda: d.total("stats.counters.pf.c.count") >= sent, 5)
        c = d.total("stats.counters.pf.c.count")
        res.check("%s: ... and counted every sample too (%r of %d)" % (label, c, sent), c == sent,
                  repr(c))
        finish(res, label, d)
    finally:
        for s in stalled:
            s.close()
        if tick:
            tick.stop()
        d.stop()


def own(m, stat, sink, plugin):
    return m.get('switchyard_sink_%s{sink="%s",plugin="%s"}' % (stat, sink, plugin))


def scenario_push_sinks(res, workdir):
    """remote_write (to VictoriaMetrics) and influxdb (to influxd, a queue
    of 4 KiB) in one daemon, while a counter streams: both servers killed
    mid-stream and restarted, then answering 5xx (VictoriaMetrics
    read-only: 503; influxd with a write timeout of 1 ns: 500), then
    stopped with SIGSTOP (answering slower than timeoutMs).  Throughout:
    errors counted, the console flushes every second, the daemon answers;
    influxdb's drops (its small queue) counted and logged; remote_write
    drops nothing (its queue holds the outages); after each fault both
    deliver again, and VictoriaMetrics ends with the counter's exact total."""
    label = "push_sinks"
    if not res.check("%s: victoria-metrics and influxd are installed" % label,
                     os.access(VICTORIA_METRICS, os.X_OK) and os.access(INFLUXD, os.X_OK),
                     "apt-get install victoria-metrics influxdb (.ci/deps.sh test)"):
        return
    vm = VictoriaMetricsServer(workdir, "ft-vm")
    influx = InfluxServer(workdir, "ft-influx")
    d = Daemon(workdir, "sy-push", options={"flushInterval": 1000, "shutdownTimeout": 3000},
               sinks={"rw": {"plugin": "remote_write",
                             "url": "http://%s:%d/api/v1/write" % (LOOPBACK, vm.port),
                             "retryMinMs": 50, "retryMaxMs": 300, "timeoutMs": 1000},
                      "i": {"plugin": "influxdb", "url": influx.url("/write?db=ft"),
                            "retryMinMs": 50, "retryMaxMs": 300, "timeoutMs": 1000,
                            "maxQueueBytes": 4096}},
               lua_body='\n  routes = { route.default() :to { "c", "i" } :passthrough "rw" },')
    tick = None
    try:
        up = vm.start() and influx.start() and influx.create_db("ft")
        if not res.check("%s: the servers start" % label, up, vm.logs() + influx.logs()) or \
                not start(res, label, d):
            return
        tick = Ticker(d.port, "pu").start()
        ok = wait_until(lambda: (vm.value("pu_c_total") or 0) > 0 and
                        influx.points("ft", "stats.counters.pu.c.count"), 10)
        if not res.check("%s: both sinks deliver" % label, ok, d.logs()):
            return
        n0 = d.nflushes()

        def stats():
            m = d.http_metrics()
            return {"%s.%s" % (s, k): own(m, k, s, p) for s, p in (("rw", "remote_write"),
                                                                    ("i", "influxdb"))
                    for k in ("errors_total", "dropped_total", "sent_total")} if m else {}

        def fault(what, fail, heal):
            before = {s: (own(d.http_metrics(), "errors_total", s, p) or 0)
                      for s, p in (("rw", "remote_write"), ("i", "influxdb"))}
            fail()
            time.sleep(2.5)
            m = d.http_metrics()
            during = {s: (own(m, "errors_total", s, p) or 0)
                      for s, p in (("rw", "remote_write"), ("i", "influxdb"))}
            res.check("%s: %s: both sinks count failed requests, the daemon answers" % (label, what),
                      m and all(during[s] > before[s] for s in during),
                      "%r -> %r" % (before, during))
            ok = heal()
            res.check("%s: %s: the servers are back" % (label, what), ok, vm.logs() + influx.logs())
            t = time.monotonic()
            last_ts = d.flushes()[-1][0]
            ok = wait_until(lambda: (vm.value("pu_c_total") or 0) > 0 and vm.value("pu_seq") and
                            vm.value("pu_seq") >= tick.sent - 40 and
                            any(p["time"] > last_ts for p in
                                influx.points("ft", "stats.counters.pu.c.count")), 20, step=0.3)
            res.check("%s: %s: both deliver again (%.1f s)" % (label, what, time.monotonic() - t), ok,
                      "vm %r of %d, influx %r\n%s" % (vm.value("pu_seq"), tick.sent,
                                                       influx.points("ft", "stats.counters.pu.c.count")[-3:],
                                                       d.logs()[-2000:]))

        def kill():
            os.kill(vm.proc.pid, signal.SIGKILL)
            vm.proc.popen.wait(10)
            influx.kill()

        def kill_heal():
            return vm.start() and influx.start()
        fault("killed mid-stream", kill, kill_heal)
        st = stats()
        res.check("%s: influxdb's small queue dropped flushes while influxd was down, counted "
                  "(%r)" % (label, st.get("i.dropped_total")), (st.get("i.dropped_total") or 0) > 0,
                  repr(st))

        def storm():
            influx.restart(write_timeout="1ns")
            vm.stop()
            vm.extra_args = ["-storage.minFreeDiskSpaceBytes=1000000000000000"]
            vm.start()

        def storm_heal():
            vm.stop()
            vm.extra_args = []
            return vm.start() and influx.restart()
        fault("5xx storm (503, 500)", storm, storm_heal)

        def stall():
            os.kill(vm.proc.pid, signal.SIGSTOP)
            influx.signal(signal.SIGSTOP)

        def stall_heal():
            os.kill(vm.proc.pid, signal.SIGCONT)
            influx.signal(signal.SIGCONT)
            return True
        fault("answering slower than timeoutMs (SIGSTOP)", stall, stall_heal)

        sent = tick.stop()
        tick = None
        got = vm.wait_value("pu_c_total", sent, 20)
        st = stats()
        res.check("%s: VictoriaMetrics has the counter's exact total (%d), remote_write dropped "
                  "nothing, sent > 0" % (label, sent),
                  got == sent and st.get("rw.dropped_total") == 0 and (st.get("rw.sent_total") or 0) > 0,
                  "got %r, %r" % (got, st))
        logs = d.logs()
        res.check("%s: the drops and failures are logged" % label,
                  "dropped" in logs and "HTTP 50" in logs, logs[-3000:])
        res.check("%s: the console sink flushed every second throughout" % label,
                  flush_gaps(d.flushes()[n0 - 1:]) <= 2,
                  "timestamps %r" % [t for t, _ in d.flushes()])
        wait_until(lambda: d.total("stats.counters.pu.c.count") >= sent, 5)
        c = d.total("stats.counters.pu.c.count")
        res.check("%s: ... and counted every sample (%r of %d)" % (label, c, sent), c == sent, repr(c))
        finish(res, label, d)
    finally:
        if tick:
            tick.stop()
        d.stop()
        vm.stop()
        influx.stop()


SCENARIOS = [
    ("graphite_down_at_start", scenario_graphite_down_at_start),
    ("graphite_goes_away", scenario_graphite_goes_away),
    ("graphite_slow_reader", scenario_graphite_slow_reader),
    ("redis_memcached_restart", scenario_redis_memcached_restart),
    ("sigterm_under_load", scenario_sigterm_under_load),
    ("sigterm_sink_stuck", scenario_sigterm_sink_stuck),
    ("reloads_under_load", scenario_reloads_under_load),
    ("prometheus_scrapers", scenario_prometheus_scrapers),
    ("push_sinks", scenario_push_sinks),
]


def main():
    return scenarios.run(TEST_NAME, SCENARIOS, "sy-faults-")


if __name__ == "__main__":
    sys.exit(main())
