#!/usr/bin/env python3
"""Integration test: switchyard's redis sink writing to a real redis-server.

Each case starts its own redis-server on a free loopback port (stopped by
PID) and a switchyard with two sinks: `r` (plugin redis, under test) and
`c` (plugin console, writing to a file).  Both sinks receive the same
flushes, so the console file says which flush timestamps happened, what
each value was, and switchyard's own counters for the redis sink
(stats.statsd.switchyard.sink.r.{sent,dropped,queued,connected}).  Redis is
read back with tests/lib/resp.py's small RESP client (no redis-py needed).

  1. values: counters, gauges, timers and sets read back exactly as statsd
     computes them (HGET latest, HGET latest_ts, ZRANGEBYSCORE of the
     series, SISMEMBER names, the stream), an old point is trimmed, the
     series gets its TTL, and a name with printf directives and a space
     (from DogStatsD tags) is stored verbatim;
  2. password and database: AUTH and SELECT work; a wrong password is
     refused, logged, counted, and does not stop the daemon;
  3. outage: mid-stream, redis-server is SIGSTOPped (two flushes are
     written to it and never answered), then SIGKILLed (those commands die
     in its socket buffer), and restarted on the same port a few flushes
     later; every flush (before, in flight, during and after) is in Redis,
     nothing is dropped, and the console sink kept flushing every second;
  4. queue bound: with maxQueueMetrics 50 and Redis down for several
     flushes, exactly the metrics beyond the bound are dropped, and
     sent + dropped equals what the sink was given;
  5. Redis down at start: switchyard runs, and delivers everything once
     Redis comes up;
  6. stall: redis-server is SIGSTOPped (connections stay open, nothing
     answers); stallTimeoutMs drops the connection, other sinks keep
     flushing, and after SIGCONT every flush is in Redis.

Cases 3, 4 and 6 run redis with an append-only file (appendfsync always),
so whatever Redis acknowledged before being killed is still there after
the restart and the checks can cover every flush.

Usage: /usr/bin/python3 tests/integration/test_redis.py      ($SY_BIN is
the daemon, $SY_PLUGIN_DIR its plugins, as tests/run.sh sets them)
"""
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.daemon import Daemon as SharedDaemon, sink_stat, sink_stat_sum  # noqa: E402
from lib.netutil import LOOPBACK, free_port_pair, send_udp, sleep_until_phase  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.resp import REDIS_SERVER, RedisServer, Resp, query  # noqa: E402
from lib.switchyard import switchyard_binary, to_lua  # noqa: E402

TEST_NAME = "test_redis"
PREFIX = "switchyard:"


# ---------------------------------------------------------------------------
# switchyard with a redis sink and a console sink


class Daemon(SharedDaemon):
    """switchyard listening on UDP+TCP (one port number), with the redis
    sinks given and a console sink `c` (tests/lib/daemon.py does the rest)."""

    def __init__(self, workdir, name, redis_sinks, options=None):
        super().__init__(name, workdir)
        self.port = free_port_pair()
        cfg = {
            "listen": ["udp://%s:%d" % (LOOPBACK, self.port),
                       "tcp://%s:%d" % (LOOPBACK, self.port)],
            "flushInterval": 1000,
            "graphite": {"legacyNamespace": False},
            "shutdownTimeout": 2000,
        }
        cfg.update(options or {})
        sinks = {"c": {"plugin": "console", "path": self.console_path}}
        for sname, settings in redis_sinks.items():
            s = {"plugin": "redis", "host": LOOPBACK, "reconnectMaxMs": 400}
            s.update(settings)
            sinks[sname] = s
        cfg["sinks"] = sinks
        self.config = "-- written by tests/integration/test_redis.py\nreturn " + to_lua(cfg) + "\n"

    def start(self):
        return super().start(self.config, port=self.port, timeout=10.0)

    def send(self, *lines):
        send_udp(self.port, ["\n".join(lines)])


class Sender:
    """Sends `name:i|g` and `name:1|c` every 0.1 s from a thread, i counting
    up, until stopped."""

    def __init__(self, port, gauge, counter):
        self.port, self.gauge, self.counter = port, gauge, counter
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def _run(self):
        i = 0
        while not self._stop.is_set():
            i += 1
            send_udp(self.port, ["%s:%d|g\n%s:1|c" % (self.gauge, i, self.counter)])
            self.sent = i
            self._stop.wait(0.1)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def series_at(client, name, ts):
    return client.cmd("ZRANGEBYSCORE", PREFIX + "ts:" + name, ts, ts)


def missing_points(port, flushes, names, password=None):
    """For each flush and name in `names` that the console saw, whether
    Redis has exactly the point "ts:value".  Returns the list of
    (ts, name, console value, redis members) that do not match, or None
    when Redis is unreachable."""
    try:
        c = Resp(port, password)
    except OSError:
        return None
    try:
        bad = []
        for ts, metrics in flushes:
            for name in names:
                if name not in metrics:
                    continue
                got = series_at(c, name, ts)
                if got != ["%d:%s" % (ts, metrics[name])]:
                    bad.append((ts, name, metrics[name], got))
        return bad
    except (OSError, ConnectionError):
        return None
    finally:
        c.close()


def flush_gaps(flushes):
    """The largest step between consecutive console flush timestamps."""
    ts = [t for t, _ in flushes]
    return max((b - a for a, b in zip(ts, ts[1:])), default=0)


# ---------------------------------------------------------------------------
# 1. values


ROUND = "\n".join(["it.counter:10|c", "it.gauge:42|g", "it.timer:10|ms", "it.timer:20|ms",
                   "it.timer:30|ms", "it.set:a|s", "it.set:b|s",
                   # with keyNameSanitize off, printf directives and a space
                   # reach the sink through tags
                   "it.tagged:7|g|#k:%s%n%x,x:a b"])

EXPECTED = {
    "stats.counters.it.counter.rate": "10",
    "stats.counters.it.counter.count": "10",
    "stats.gauges.it.gauge": "42",
    "stats.timers.it.timer.upper": "30",
    "stats.timers.it.timer.lower": "10",
    "stats.timers.it.timer.mean": "20",
    "stats.timers.it.timer.median": "20",
    "stats.timers.it.timer.sum": "60",
    "stats.timers.it.timer.count": "3",
    "stats.timers.it.timer.upper_90": "30",
    "stats.sets.it.set.count": "2",
    "stats.gauges.it.tagged;k=%s%n%x;x=a b": "7",
}


def case_values(results, workdir):
    label = "values"
    redis = RedisServer(workdir, "redis-values")
    daemon = Daemon(workdir, "sy-values", {"r": {"port": redis.port, "stream": True,
                                                 "streamMaxLen": 1000, "retention": 3600}},
                    {"deleteIdleStats": True, "keyNameSanitize": False})
    try:
        if not results.check("%s: redis-server starts" % label, redis.start(), redis.logs()):
            return
        c = redis.client()
        # a point older than the retention, to be trimmed by the first write
        old_ts = int(time.time()) - 100000
        c.cmd("ZADD", PREFIX + "ts:stats.gauges.it.gauge", old_ts, "%d:1" % old_ts)
        if not results.check("%s: switchyard starts" % label, daemon.start(), daemon.logs()):
            return
        sleep_until_phase(1.0, 0.3)
        daemon.send(ROUND)
        ts = daemon.wait_flush_with("stats.gauges.it.gauge", "42")
        if not results.check("%s: the flush reached the console sink" % label, ts is not None,
                             daemon.logs()):
            return
        wait_until(lambda: query(redis.port, "HGET", PREFIX + "latest_ts",
                                       "stats.sets.it.set.count") == str(ts), 5.0)
        for name, want in EXPECTED.items():
            latest = c.cmd("HGET", PREFIX + "latest", name)
            latest_ts = c.cmd("HGET", PREFIX + "latest_ts", name)
            series = series_at(c, name, ts)
            member = c.cmd("SISMEMBER", PREFIX + "names", name)
            ok = latest == want and latest_ts == str(ts) and series == ["%d:%s" % (ts, want)] \
                and member == 1
            results.check("%s: %s = %s (latest, latest_ts, series, names)" % (label, name, want),
                          ok, "latest %r latest_ts %r series %r names %r (flush %d)"
                          % (latest, latest_ts, series, member, ts))
        full = c.cmd("ZRANGE", PREFIX + "ts:stats.gauges.it.gauge", 0, -1)
        results.check("%s: points older than the retention are trimmed" % label,
                      "%d:1" % old_ts not in full and "%d:42" % ts in full, repr(full))
        ttl = c.cmd("TTL", PREFIX + "ts:stats.gauges.it.gauge")
        results.check("%s: a series expires at 2 * retention" % label, 7000 < ttl <= 7200,
                      "TTL %r" % ttl)
        entries = c.cmd("XRANGE", PREFIX + "stream", "-", "+")
        fields = [dict(zip(e[1][::2], e[1][1::2])) for e in entries or []]
        want = {"name": "stats.gauges.it.gauge", "value": "42", "ts": str(ts)}
        results.check("%s: the stream has the gauge's entry" % label, want in fields,
                      "%d entries, e.g. %r" % (len(fields), fields[:3]))
        typ = c.cmd("TYPE", PREFIX + "latest"), c.cmd("TYPE", PREFIX + "names")
        results.check("%s: latest is a hash, names a set" % label, typ == ("hash", "set"),
                      repr(typ))
        c.close()
        daemon.finish(results, label)
    finally:
        daemon.stop()
        redis.stop()


# ---------------------------------------------------------------------------
# 2. password and database


def case_auth(results, workdir):
    label = "auth"
    redis = RedisServer(workdir, "redis-auth", password="s3cret pass")
    daemon = Daemon(workdir, "sy-auth", {
        "r": {"port": redis.port, "password": "s3cret pass", "database": 3},
        "bad": {"port": redis.port, "password": "wrong", "database": 4, "prefix": "bad:"},
    })
    try:
        if not results.check("%s: redis-server with requirepass starts" % label, redis.start(),
                             redis.logs()):
            return
        if not results.check("%s: switchyard starts" % label, daemon.start(), daemon.logs()):
            return
        daemon.send("auth.gauge:5|g")
        name = "stats.gauges.auth.gauge"

        def stored():
            return query(redis.port, "HGET", PREFIX + "latest", name,
                               password=redis.password, db=3) == "5"
        results.check("%s: with password and database 3 the value is in db 3" % label,
                      wait_until(stored, 5.0),
                      "HGET in db 3: %r\n%s" % (query(redis.port, "HGET", PREFIX + "latest",
                                                            name, password=redis.password, db=3),
                                                daemon.logs()))
        db0 = query(redis.port, "DBSIZE", password=redis.password, db=0)
        results.check("%s: nothing is written to database 0" % label, db0 == 0, "DBSIZE %r" % db0)
        daemon.wait_flushes(2)
        db4 = query(redis.port, "DBSIZE", password=redis.password, db=4)
        results.check("%s: a wrong password writes nothing" % label, db4 == 0, "DBSIZE %r" % db4)
        fl = daemon.flushes()
        results.check("%s: the sink with the wrong password reports connected 0" % label,
                      bool(fl) and sink_stat(fl[-1][1], "bad", "connected") == 0,
                      repr(fl[-1][1] if fl else None))
        err = daemon.log()
        results.check("%s: the refused AUTH is logged" % label,
                      "sink 'bad'" in err and "AUTH" in err, err[-3000:])
        results.check("%s: switchyard keeps running" % label, daemon.alive(), daemon.logs())
        daemon.finish(results, label)
    finally:
        daemon.stop()
        redis.stop()


# ---------------------------------------------------------------------------
# 3. outage


OUT_GAUGE = "out.gauge"
OUT_COUNTER = "out.counter"
OUT_NAMES = ("stats.gauges." + OUT_GAUGE, "stats.counters.%s.count" % OUT_COUNTER,
             "stats.counters.%s.rate" % OUT_COUNTER)


def wait_all_points(port, daemon, names, timeout):
    """Wait until every flush the console has seen so far is in Redis for
    `names`; returns (flushes, mismatches)."""
    flushes = daemon.flushes()
    bad = None

    def done():
        nonlocal bad
        bad = missing_points(port, flushes, names)
        return bad == []
    wait_until(done, timeout, step=0.2)
    return flushes, bad


def case_outage(results, workdir):
    label = "outage"
    redis = RedisServer(workdir, "redis-outage", aof=True)
    daemon = Daemon(workdir, "sy-outage", {"r": {"port": redis.port}})
    sender = None
    try:
        if not results.check("%s: redis-server starts" % label, redis.start(), redis.logs()):
            return
        if not results.check("%s: switchyard starts" % label, daemon.start(), daemon.logs()):
            return
        sender = Sender(daemon.port, OUT_GAUGE, OUT_COUNTER).start()
        daemon.wait_flushes(2)
        sleep_until_phase(1.0, 0.5)
        # Stopped, Redis leaves two flushes unanswered (stallTimeoutMs is
        # 10 s); killed, it loses them: only the sink's copy is left.
        redis.signal(signal.SIGSTOP)
        time.sleep(2.0)
        redis.kill()
        time.sleep(2.6)  # two or three flushes without Redis
        up = redis.start()
        results.check("%s: redis-server restarts on the same port" % label, up, redis.logs())
        daemon.wait_flushes(2)
        sender.stop()
        daemon.wait_flushes(1)
        flushes, bad = wait_all_points(redis.port, daemon, OUT_NAMES, 10.0)
        down = [ts for ts, m in flushes if sink_stat(m, "r", "connected") == 0]
        queued = max((sink_stat(m, "r", "queued") or 0) for _, m in flushes)
        results.check("%s: the sink reported disconnected flushes and queued metrics" % label,
                      len(down) >= 2 and queued > 0,
                      "disconnected at %r, max queued %r" % (down, queued))
        results.check("%s: every flush's values are in the series (%d flushes, %d during the "
                      "outage)" % (label, len(flushes), len(down)), bad == [],
                      "missing or wrong: %r\n%s" % ((bad or [])[:10], daemon.logs()))
        c = redis.client()
        last_ts, last = flushes[-1]
        name = "stats.gauges." + OUT_GAUGE
        got = (c.cmd("HGET", PREFIX + "latest", name), c.cmd("HGET", PREFIX + "latest_ts", name))
        results.check("%s: latest holds the last flush" % label, got == (last[name], str(last_ts)),
                      "HGET %r, console %r at %d" % (got, last.get(name), last_ts))
        c.close()
        dropped = sink_stat_sum(flushes, "r", "dropped")
        results.check("%s: switchyard dropped nothing" % label, dropped == 0,
                      "dropped %r" % dropped)
        offered = sum(len(m) for _, m in flushes[:-1])
        sent = sink_stat_sum(flushes, "r", "sent")
        results.check("%s: sent equals what the sink was given" % label, sent == offered,
                      "sent %r, offered %r" % (sent, offered))
        results.check("%s: the console sink kept flushing every second" % label,
                      flush_gaps(flushes) <= 1, "timestamps %r" % [t for t, _ in flushes])
        again = re.findall(r"lost: .*; (\d+) unanswered metrics to be written again",
                           daemon.log())
        results.check("%s: the unanswered metrics were queued again" % label,
                      bool(again) and int(again[0]) > 0, daemon.log()[-3000:])
        daemon.finish(results, label)
    finally:
        if sender:
            sender.stop()
        daemon.stop()
        redis.stop()


# ---------------------------------------------------------------------------
# 4. queue bound


def case_queue_bound(results, workdir):
    label = "queue bound"
    bound = 50
    redis = RedisServer(workdir, "redis-bound", aof=True)
    daemon = Daemon(workdir, "sy-bound", {"r": {"port": redis.port, "maxQueueMetrics": bound}})
    sender = None
    try:
        if not results.check("%s: redis-server starts" % label, redis.start(), redis.logs()):
            return
        if not results.check("%s: switchyard starts" % label, daemon.start(), daemon.logs()):
            return
        sender = Sender(daemon.port, OUT_GAUGE, OUT_COUNTER).start()
        daemon.wait_flushes(2)
        sleep_until_phase(1.0, 0.5)
        redis.kill()
        time.sleep(4.0)
        results.check("%s: redis-server restarts" % label, redis.start(), redis.logs())
        daemon.wait_flushes(2)
        sender.stop()
        def settled():
            fl = daemon.flushes()
            return bool(fl) and sink_stat(fl[-1][1], "r", "queued") == 0 and \
                sink_stat(fl[-1][1], "r", "connected") == 1
        wait_until(settled, 10.0)
        flushes = daemon.flushes()
        last = flushes[-1][1]
        results.check("%s: the sink is connected with an empty queue at the end" % label,
                      sink_stat(last, "r", "queued") == 0 and
                      sink_stat(last, "r", "connected") == 1,
                      repr({k: v for k, v in last.items() if ".sink.r." in k}))
        sent = sink_stat_sum(flushes, "r", "sent")
        dropped = sink_stat_sum(flushes, "r", "dropped")
        offered = sum(len(m) for _, m in flushes[:-1])
        # the stats of flush j describe the sink just before flush j is written
        disconnected = sum(len(m) for _, m in flushes if sink_stat(m, "r", "connected") == 0)
        results.check("%s: metrics beyond the bound were dropped and counted" % label,
                      dropped > 0, "dropped %r" % dropped)
        results.check("%s: dropped = metrics given while disconnected - maxQueueMetrics" % label,
                      dropped == max(0, disconnected - bound),
                      "dropped %r, given while disconnected %r, bound %d"
                      % (dropped, disconnected, bound))
        results.check("%s: sent + dropped = metrics given to the sink" % label,
                      sent + dropped == offered,
                      "sent %r + dropped %r != %r" % (sent, dropped, offered))
        bad = missing_points(redis.port, flushes[:-1], ("stats.gauges." + OUT_GAUGE,))
        down = {ts for ts, m in flushes if sink_stat(m, "r", "connected") == 0}
        results.check("%s: only flushes written during the outage are missing" % label,
                      bad is not None and all(ts in down for ts, _, _, _ in bad),
                      "missing %r, outage flushes %r" % (bad, sorted(down)))
        results.check("%s: the oldest outage flush was kept and replayed" % label,
                      bad is not None and down and min(down) not in {ts for ts, _, _, _ in bad},
                      "missing %r, outage flushes %r" % (bad, sorted(down)))
        err = daemon.log()
        results.check("%s: the drops are logged" % label, "metrics dropped" in err, err[-3000:])
        daemon.finish(results, label)
    finally:
        if sender:
            sender.stop()
        daemon.stop()
        redis.stop()


# ---------------------------------------------------------------------------
# 5. Redis down at start


def case_down_at_start(results, workdir):
    label = "down at start"
    redis = RedisServer(workdir, "redis-late")
    daemon = Daemon(workdir, "sy-late", {"r": {"port": redis.port}})
    sender = None
    try:
        if not results.check("%s: switchyard starts without Redis" % label, daemon.start(),
                             daemon.logs()):
            return
        sender = Sender(daemon.port, OUT_GAUGE, OUT_COUNTER).start()
        daemon.wait_flushes(3, 30.0)  # generous: an ASan daemon on a loaded machine
        fl = daemon.flushes()
        results.check("%s: switchyard keeps running and flushing" % label,
                      daemon.alive() and len(fl) >= 3 and
                      all(sink_stat(m, "r", "connected") == 0 for _, m in fl),
                      "alive %r, %d flushes, connected %r\n%s"
                      % (daemon.alive(), len(fl), [sink_stat(m, "r", "connected") for _, m in fl],
                         daemon.logs()))
        if not results.check("%s: redis-server starts" % label, redis.start(), redis.logs()):
            return
        daemon.wait_flushes(2)
        sender.stop()
        daemon.wait_flushes(1)
        flushes, bad = wait_all_points(redis.port, daemon, OUT_NAMES, 10.0)
        results.check("%s: every flush since the start is in Redis (%d flushes)"
                      % (label, len(flushes)), bad == [],
                      "missing or wrong: %r" % ((bad or [])[:10],))
        results.check("%s: nothing dropped" % label, sink_stat_sum(flushes, "r", "dropped") == 0,
                      repr(sink_stat_sum(flushes, "r", "dropped")))
        results.check("%s: connected once Redis is up" % label,
                      sink_stat(flushes[-1][1], "r", "connected") == 1, repr(flushes[-1][1]))
        daemon.finish(results, label)
    finally:
        if sender:
            sender.stop()
        daemon.stop()
        redis.stop()


# ---------------------------------------------------------------------------
# 6. stall


def case_stall(results, workdir):
    label = "stall"
    redis = RedisServer(workdir, "redis-stall", aof=True)
    daemon = Daemon(workdir, "sy-stall", {"r": {"port": redis.port, "stallTimeoutMs": 800,
                                                "connectTimeoutMs": 800}})
    sender = None
    try:
        if not results.check("%s: redis-server starts" % label, redis.start(), redis.logs()):
            return
        if not results.check("%s: switchyard starts" % label, daemon.start(), daemon.logs()):
            return
        sender = Sender(daemon.port, OUT_GAUGE, OUT_COUNTER).start()
        daemon.wait_flushes(2)
        sleep_until_phase(1.0, 0.5)
        redis.signal(signal.SIGSTOP)
        time.sleep(3.0)
        redis.signal(signal.SIGCONT)
        daemon.wait_flushes(3)
        sender.stop()
        daemon.wait_flushes(1)
        flushes, bad = wait_all_points(redis.port, daemon, OUT_NAMES, 10.0)
        results.check("%s: every flush is in Redis after SIGCONT (%d flushes)"
                      % (label, len(flushes)),
                      bad == [], "missing or wrong: %r\n%s" % ((bad or [])[:10], daemon.logs()))
        results.check("%s: the console sink kept flushing every second" % label,
                      flush_gaps(flushes) <= 1, "timestamps %r" % [t for t, _ in flushes])
        err = daemon.log()
        results.check("%s: the stalled connection was dropped" % label, "no reply for" in err,
                      err[-3000:])
        results.check("%s: nothing dropped" % label, sink_stat_sum(flushes, "r", "dropped") == 0,
                      repr(sink_stat_sum(flushes, "r", "dropped")))
        daemon.finish(results, label)
    finally:
        if sender:
            sender.stop()
        daemon.stop()
        redis.stop()


def main():
    results = Results(TEST_NAME)
    if not results.check("redis-server is installed", os.access(REDIS_SERVER, os.X_OK),
                         "%s is missing: apt-get install redis-server" % REDIS_SERVER):
        return results.finish()
    print("switchyard binary: %s" % switchyard_binary())
    workdir = make_workdir("sy-redis-")
    t0 = time.monotonic()
    try:
        for case in (case_values, case_auth, case_outage, case_queue_bound, case_down_at_start,
                     case_stall):
            case(results, workdir)
    except Exception as e:  # a crash of the harness is a failure, not a skip
        import traceback
        traceback.print_exc()
        results.check("harness ran without error", False, repr(e))
    finally:
        remove_workdir(workdir)
    results.note("took %.1f s" % (time.monotonic() - t0))
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
