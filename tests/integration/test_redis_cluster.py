#!/usr/bin/env python3
"""Integration test: switchyard's redis sink writing to a real Redis Cluster.

The test starts three redis-server processes with cluster-enabled yes on
free loopback ports (each with its own dir, nodes.conf and append-only
file), joins them with `redis-cli --cluster create ... --cluster-replicas
0`, and runs a switchyard with two sinks: `r` (plugin redis, cluster =
true, seeded with a dead address and one live master) and `c` (plugin
console, writing to a file, which says what every flush held).  Redis is
read back with a small RESP client in this file; slots are computed with
its own CRC16 (checked against CLUSTER KEYSLOT).

  0. before the cluster: switchyard starts while the three nodes are not
     joined yet (CLUSTER SLOTS is empty); the flushes wait in the sink's
     queue and are all written once the cluster is made;
  1. values: ~100 metrics (gauges, counters, timers, sets, names with
     braces) are sent once; each series key `switchyard:ts:{NAME}` is on
     the master owning its slot and nowhere else, holds the value statsd
     computes, and the group keys `switchyard:latest:{G}`, `latest_ts:{G}`,
     `names:{G}` and `stream:{G}` (G = slot % 16) hold the latest value,
     the flush time, the name and a stream entry; keys are spread over all
     three masters;
  2. migration while metrics flow: one series slot and one group slot are
     moved by hand from their master to another (SETSLOT IMPORTING /
     MIGRATING, MIGRATE of the keys: writes get -ASK; SETSLOT NODE: writes
     get -MOVED), then 1000 slots are moved with `redis-cli --cluster
     reshard`; every flush of every metric is in Redis, on the master that
     owns it now, nothing is dropped, and the sink reports the ASK and
     MOVED redirects it followed;
  3. a master fails: it is SIGSTOPped (its connection stalls), SIGKILLed
     and restarted from its AOF and nodes.conf; the other masters' share
     keeps flowing meanwhile, its own share waits in its queue, and every
     flush ends up in Redis with nothing dropped.  A second cluster sink
     `q` (prefix "q:", maxQueueMetrics 30) drops the victim's share beyond
     its bound, counts it, and loses nothing of the other masters' share.

Every process is stopped by PID.  Usage: /usr/bin/python3
tests/integration/test_redis_cluster.py ($SY_BIN is the daemon, as
tests/run.sh sets it; SY_BIN=build-san/switchyard runs it under ASan+UBSan).
"""
import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.daemon import Daemon as SharedDaemon, sink_stat, sink_stat_sum  # noqa: E402
from lib.netutil import LOOPBACK, free_port, free_port_pair, send_udp, sleep_until_phase  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.resp import REDIS_SERVER, RedisServer, Resp, query  # noqa: E402
from lib.switchyard import switchyard_binary, to_lua  # noqa: E402

TEST_NAME = "test_redis_cluster"
REDIS_CLI = "/usr/bin/redis-cli"
PREFIX = "switchyard:"
GROUPS = 16
NSLOTS = 16384


# ---------------------------------------------------------------------------
# Hash slots


def crc16(data):
    """CRC16-CCITT (XMODEM), the cluster specification's."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xffff
    return crc


def key_slot(key):
    """The slot of a key, with {hash tags}."""
    k = key.encode() if isinstance(key, str) else key
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    return crc16(k) % NSLOTS


def series_key(name, prefix=PREFIX):
    return "%sts:{%s}" % (prefix, name)


def group_of(name):
    return key_slot(series_key(name)) % GROUPS


def group_key(what, g):
    return "%s%s:{%d}" % (PREFIX, what, g)


# ---------------------------------------------------------------------------
# The cluster


class ClusterNode(RedisServer):
    """One redis-server with cluster-enabled yes, its dir, nodes.conf and
    AOF in workdir/name; can be stopped, killed and started again (the
    rest is tests/lib/resp.py's RedisServer)."""

    def __init__(self, workdir, name):
        super().__init__(workdir, name, aof=True)
        # the cluster bus would be port + 10000 (maybe taken, maybe > 65535)
        self.bus_port = free_port("tcp")
        while self.bus_port == self.port:
            self.bus_port = free_port("tcp")
        self.extra = ["--cluster-enabled", "yes",
                      "--cluster-config-file", os.path.join(self.dir, "nodes.conf"),
                      "--cluster-port", str(self.bus_port), "--cluster-node-timeout", "5000",
                      "--protected-mode", "no"]
        self.id = None


class Cluster:
    def __init__(self, workdir, n=3):
        self.nodes = [ClusterNode(workdir, "redis-%d" % (i + 1)) for i in range(n)]
        self.create_out = ""

    def by_port(self, port):
        for n in self.nodes:
            if n.port == port:
                return n
        return None

    def start_nodes(self):
        return all(n.start() for n in self.nodes)

    def create(self):
        argv = [REDIS_CLI, "--cluster", "create"] + \
            ["%s:%d" % (LOOPBACK, n.port) for n in self.nodes] + \
            ["--cluster-replicas", "0", "--cluster-yes"]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.create_out = r.stdout.decode("utf-8", "replace")
        if r.returncode != 0:
            return False
        for n in self.nodes:
            n.id = n.cmd("CLUSTER", "MYID")
        return self.wait_ok()

    def wait_ok(self, timeout=20.0):
        """Every node says cluster_state:ok and they agree on the map."""
        def ok():
            maps = []
            for n in self.nodes:
                info = query(n.port, "CLUSTER", "INFO")
                if not isinstance(info, str) or "cluster_state:ok" not in info:
                    return False
                m = self.slot_map(n.port)
                if m is None:
                    return False
                maps.append(m)
            return all(m == maps[0] for m in maps)
        return bool(wait_until(ok, timeout, step=0.1))

    def slot_map(self, port=None):
        """[port owning slot s] from CLUSTER SLOTS (None when unserved)."""
        rep = query(port or self.nodes[0].port, "CLUSTER", "SLOTS")
        if not isinstance(rep, list):
            return None
        owner = [None] * NSLOTS
        for start, end, master, *_ in rep:
            for s in range(int(start), int(end) + 1):
                owner[s] = int(master[1])
        return owner

    def stop(self):
        for n in self.nodes:
            n.stop()

    def logs(self):
        return "\n".join(n.logs() for n in self.nodes)


# ---------------------------------------------------------------------------
# switchyard with the redis sink in cluster mode and a console sink


class Daemon(SharedDaemon):
    """switchyard on UDP+TCP (one port number) with the redis sink `r` in
    cluster mode and a console sink `c` (tests/lib/daemon.py does the rest)."""

    def __init__(self, workdir, name, redis_settings, options=None, extra_sinks=None):
        super().__init__(name, workdir)
        self.port = free_port_pair()
        cfg = {
            "listen": ["udp://%s:%d" % (LOOPBACK, self.port),
                       "tcp://%s:%d" % (LOOPBACK, self.port)],
            "flushInterval": 1000,
            "graphite": {"legacyNamespace": False},
            "shutdownTimeout": 3000,
            "keyNameSanitize": False,
        }
        cfg.update(options or {})
        s = {"plugin": "redis", "cluster": True, "reconnectMaxMs": 400}
        s.update(redis_settings)
        cfg["sinks"] = {"c": {"plugin": "console", "path": self.console_path}, "r": s}
        for sname, settings in (extra_sinks or {}).items():
            x = dict(s)
            x.update(settings)
            cfg["sinks"][sname] = x
        self.config = ("-- written by tests/integration/test_redis_cluster.py\nreturn " +
                       to_lua(cfg) + "\n")

    def start(self):
        return super().start(self.config, port=self.port, timeout=10.0)

    def send(self, lines):
        """Lines in datagrams of at most ~1000 bytes."""
        grams, cur = [], []
        for line in lines:
            if cur and sum(len(x) + 1 for x in cur) + len(line) > 1000:
                grams.append("\n".join(cur))
                cur = []
            cur.append(line)
        if cur:
            grams.append("\n".join(cur))
        send_udp(self.port, grams)


# ---------------------------------------------------------------------------
# Metrics


# (name, DogStatsD tags): switchyard keeps braces in tag values only, so
# the tags give names with '{' and '}' of their own: the series key of
# "stats.gauges.cl.tag.0;k={x0}" is "switchyard:ts:{stats.gauges.cl.tag.0;k={x0}}",
# whose hash tag ends at the first '}'.
GAUGE_SPECS = [("cl.g.%02d" % i, "") for i in range(45)] + \
    [("cl.tag.%d" % i, "k:{x%d}" % i) for i in range(3)] + \
    [("cl.tag.e", "z:}{"), ("cl.tag.f", "k:{},j:a}b{c")]
GAUGES = [b + (";" + t.replace(":", "=").replace(",", ";") if t else "") for b, t in GAUGE_SPECS]


def gauge_line(spec, value):
    base, tags = spec
    return "%s:%d|g%s" % (base, value, "|#" + tags if tags else "")


COUNTERS = ["cl.c.%02d" % i for i in range(30)]
TIMERS = ["cl.t.%02d" % i for i in range(15)]
SETS = ["cl.s.%d" % i for i in range(5)]


def first_round():
    """(lines, {flushed name: value statsd computes})."""
    lines, want = [], {}
    for i, (spec, g) in enumerate(zip(GAUGE_SPECS, GAUGES)):
        lines.append(gauge_line(spec, i + 1))
        want["stats.gauges." + g] = str(i + 1)
    for i, c in enumerate(COUNTERS):
        lines.extend(["%s:%d|c" % (c, i + 1)] * 2)
        want["stats.counters.%s.count" % c] = str(2 * (i + 1))
        want["stats.counters.%s.rate" % c] = str(2 * (i + 1))  # flushInterval 1 s
    for i, t in enumerate(TIMERS):
        vals = [i + 1, 2 * (i + 1), 3 * (i + 1)]
        lines.extend("%s:%d|ms" % (t, v) for v in vals)
        want["stats.timers.%s.lower" % t] = str(vals[0])
        want["stats.timers.%s.upper" % t] = str(vals[2])
        want["stats.timers.%s.mean" % t] = str(vals[1])
        want["stats.timers.%s.sum" % t] = str(sum(vals))
        want["stats.timers.%s.count" % t] = "3"
    for i, s in enumerate(SETS):
        lines.extend("%s:m%d|s" % (s, j) for j in range(i + 1))
        want["stats.sets.%s.count" % s] = str(i + 1)
    return lines, want


def is_ours(name):
    return ".cl." in name


class Sender:
    """Every 0.1 s: every gauge set to a counter that goes up, and one
    increment of every counter, until stopped."""

    def __init__(self, daemon):
        self.daemon = daemon
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i = 0
        while not self._stop.is_set():
            i += 1
            lines = [gauge_line(g, i) for g in GAUGE_SPECS] + ["%s:1|c" % c for c in COUNTERS]
            try:
                self.daemon.send(lines)
            except OSError:
                pass
            self._stop.wait(0.1)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)


# ---------------------------------------------------------------------------
# Reading the cluster back


def all_keys(cluster):
    """{port: [keys]} of every node (KEYS is fine for a test)."""
    out = {}
    for n in cluster.nodes:
        out[n.port] = n.cmd("KEYS", PREFIX + "*")
    return out


def misplaced_keys(cluster, owner):
    """Keys stored on a node that does not own their slot."""
    bad = []
    for port, keys in all_keys(cluster).items():
        for k in keys:
            if owner[key_slot(k)] != port:
                bad.append((k, port, owner[key_slot(k)]))
    return bad


def series_mismatches(cluster, owner, flushes, names_filter, prefix=PREFIX):
    """Every (ts, name) the console saw for names_filter(name) must be the
    point "ts:value" of the series on its owner.  Returns the mismatches."""
    wanted = collections.defaultdict(dict)
    for ts, metrics in flushes:
        for name, value in metrics.items():
            if names_filter(name):
                wanted[name][ts] = value
    conns = {}
    bad = []
    try:
        by_port = collections.defaultdict(list)
        for name in wanted:
            by_port[owner[key_slot(series_key(name, prefix))]].append(name)
        for port, names in by_port.items():
            if port is None:
                bad.append(("no owner", names[:3]))
                continue
            conns[port] = c = Resp(port)
            replies = c.pipeline([("ZRANGE", series_key(n, prefix), 0, -1, "WITHSCORES")
                                  for n in names])
            for name, rep in zip(names, replies):
                if isinstance(rep, Exception):
                    bad.append((name, "error", str(rep)))
                    continue
                points = {}
                for member, score in zip(rep[::2], rep[1::2]):
                    points[int(float(score))] = member
                for ts, value in wanted[name].items():
                    want = "%d:%s" % (ts, value)
                    if points.get(ts) != want:
                        bad.append((name, ts, want, points.get(ts)))
    finally:
        for c in conns.values():
            c.close()
    return bad


def latest_mismatches(cluster, owner, last_ts, last):
    """latest:{G}, latest_ts:{G} and names:{G} for every name of the last
    flush."""
    bad = []
    for name, value in last.items():
        g = group_of(name)
        port = owner[key_slot(group_key("latest", g))]
        c = Resp(port)
        try:
            got = c.pipeline([("HGET", group_key("latest", g), name),
                              ("HGET", group_key("latest_ts", g), name),
                              ("SISMEMBER", group_key("names", g), name)])
        finally:
            c.close()
        if got != [value, str(last_ts), 1]:
            bad.append((name, g, port, got, (value, last_ts)))
    return bad


def check_latest(results, label, cluster, daemon, owner, timeout=5.0):
    """The group hashes hold the last flush's values (once it is in)."""
    bad = None

    def ok():
        nonlocal bad
        last_ts, last = daemon.flushes()[-1]
        bad = latest_mismatches(cluster, owner, last_ts,
                                {n: v for n, v in last.items() if is_ours(n)})
        return not bad
    wait_until(ok, timeout, step=0.2)
    results.check("%s: latest:{G} and latest_ts:{G} hold the last flush" % label, not bad,
                  repr((bad or [])[:8]))


def wait_settled(daemon, timeout=15.0):
    """Until the sink reports an empty queue and connected in two flushes."""
    def settled():
        fl = daemon.flushes()
        return len(fl) >= 2 and all(sink_stat(m, "r", "queued") == 0 and
                                    sink_stat(m, "r", "connected") == 1 for _, m in fl[-2:])
    return wait_until(settled, timeout, step=0.1)


def check_series(results, label, cluster, daemon, names_filter, timeout=10.0):
    """Waits until every console flush (but the last, maybe in flight) is in
    Redis; reports."""
    owner = cluster.slot_map()
    flushes = daemon.flushes()[:-1]
    bad = None

    def done():
        nonlocal bad, owner
        owner = cluster.slot_map() or owner
        bad = series_mismatches(cluster, owner, flushes, names_filter)
        return not bad
    wait_until(done, timeout, step=0.3)
    results.check("%s: every flush of every metric is in its series on the owning master "
                  "(%d flushes)" % (label, len(flushes)), not bad,
                  "missing or wrong (name, ts, want, got): %r\n%s"
                  % ((bad or [])[:8], daemon.log()[-3000:]))
    return flushes, owner


# ---------------------------------------------------------------------------
# 0. switchyard first, the cluster made later


def case_before_cluster(results, cluster, daemon):
    """The nodes run but are no cluster yet (CLUSTER SLOTS is empty): the
    flushes wait in the sink's queue until `redis-cli --cluster create`."""
    label = "before the cluster"
    daemon.send(["cl.early:5|g"])
    daemon.wait_flushes(3)
    fl = daemon.flushes()
    results.check("%s: the sink waits, disconnected, with metrics queued" % label,
                  all(sink_stat(m, "r", "connected") == 0 for _, m in fl) and
                  (sink_stat(fl[-1][1], "r", "queued") or 0) > 0,
                  repr([(sink_stat(m, "r", "connected"), sink_stat(m, "r", "queued"))
                        for _, m in fl]))
    err = daemon.log()
    results.check("%s: the empty slot map is logged" % label, "no slot is served" in err,
                  err[-2000:])
    if not results.check("%s: three masters form a cluster" % label, cluster.create(),
                         cluster.create_out + "\n" + cluster.logs()):
        return False
    results.check("%s: the sink connects to every master" % label, wait_settled(daemon),
                  daemon.log()[-3000:])
    check_series(results, label, cluster, daemon, lambda n: True)
    return True


# ---------------------------------------------------------------------------
# 1. values


def case_values(results, cluster, daemon):
    label = "values"
    c0 = cluster.nodes[0]
    for k in [series_key("stats.gauges." + g) for g in GAUGES[-6:]] + \
            [group_key("latest", 7), "plain", "a{}b", "}{x}"]:
        results.check("%s: CRC16 of %s agrees with CLUSTER KEYSLOT" % (label, k),
                      c0.cmd("CLUSTER", "KEYSLOT", k) == key_slot(k),
                      "%r vs %r" % (c0.cmd("CLUSTER", "KEYSLOT", k), key_slot(k)))
    lines, want = first_round()
    sleep_until_phase(1.0, 0.3)
    daemon.send(lines)
    ts = daemon.wait_flush_with("stats.gauges.cl.g.00", "1")
    if not results.check("%s: the flush reached the console sink" % label, ts is not None,
                         daemon.logs()):
        return
    metrics = dict(daemon.flushes())[ts]
    results.check("%s: switchyard computed what statsd computes (%d values)" % (label, len(want)),
                  all(metrics.get(k) == v for k, v in want.items()),
                  repr({k: (metrics.get(k), v) for k, v in want.items()
                        if metrics.get(k) != v}))
    owner = cluster.slot_map()
    ours = {n: v for n, v in metrics.items() if is_ours(n)}

    def stored():
        return not latest_mismatches(cluster, owner, ts, ours)
    wait_until(stored, 5.0, step=0.2)
    bad = series_mismatches(cluster, owner, [(ts, ours)], lambda n: True)
    results.check("%s: each of %d series holds the flushed value on its owning master"
                  % (label, len(ours)), not bad, repr(bad[:8]))
    bad = latest_mismatches(cluster, owner, ts, ours)
    results.check("%s: latest:{G}, latest_ts:{G} and names:{G} hold every metric" % label,
                  not bad, repr(bad[:8]))
    bad = misplaced_keys(cluster, owner)
    results.check("%s: every key is on the master owning its slot, and only there" % label,
                  not bad, repr(bad[:8]))
    keys = all_keys(cluster)
    spread = {port: sum(1 for k in ks if k.startswith(PREFIX + "ts:{")) for port, ks in
              keys.items()}
    results.check("%s: the series are spread over all three masters" % label,
                  all(v > 0 for v in spread.values()), repr(spread))
    every = set()
    for ks in keys.values():
        every.update(ks)
    missing = [n for n in ours if series_key(n) not in every]
    results.check("%s: every metric has its series key" % label, not missing, repr(missing[:8]))
    # the stream of a group has an entry for each of its metrics
    name = "stats.gauges.cl.g.00"
    g = group_of(name)
    entries = query(owner[key_slot(group_key("stream", g))], "XRANGE", group_key("stream", g),
                    "-", "+")
    fields = [dict(zip(e[1][::2], e[1][1::2])) for e in entries or []]
    results.check("%s: stream:{%d} has the gauge's entry" % (label, g),
                  {"name": name, "value": "1", "ts": str(ts)} in fields,
                  "%d entries, e.g. %r" % (len(fields), fields[:3]))
    results.check("%s: the sink reports connected" % label,
                  sink_stat(daemon.flushes()[-1][1], "r", "connected") == 1,
                  repr(daemon.flushes()[-1][1].get("stats.statsd.switchyard.sink.r.connected")))


# ---------------------------------------------------------------------------
# 2. migration


def migrate_slot_by_hand(results, label, cluster, slot, src, dst, daemon):
    """IMPORTING/MIGRATING, wait, MIGRATE the keys (later writes: -ASK),
    wait, SETSLOT NODE everywhere (later writes: -MOVED)."""
    ok = dst.cmd("CLUSTER", "SETSLOT", slot, "IMPORTING", src.id) == "OK" and \
        src.cmd("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.id) == "OK"
    daemon.wait_flushes(1)
    moved_keys = 0
    for _ in range(10):
        keys = src.cmd("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        if not keys:
            break
        rep = src.cmd("MIGRATE", LOOPBACK, dst.port, "", 0, 5000, "KEYS", *keys)
        ok = ok and rep in ("OK", "NOKEY")
        moved_keys += len(keys)
    results.check("%s: slot %d set migrating and its %d keys MIGRATEd from :%d to :%d"
                  % (label, slot, moved_keys, src.port, dst.port), ok and moved_keys > 0,
                  "ok %r, keys %d" % (ok, moved_keys))
    daemon.wait_flushes(2)  # writes to those keys now get -ASK
    left = src.cmd("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    if left:  # keys made on the source meanwhile would be a sink bug
        results.check("%s: no key of slot %d was made on the source while it migrated"
                      % (label, slot), False, repr(left))
        src.cmd("MIGRATE", LOOPBACK, dst.port, "", 0, 5000, "KEYS", *left)
    for n in [dst, src] + [n for n in cluster.nodes if n not in (src, dst)]:
        n.cmd("CLUSTER", "SETSLOT", slot, "NODE", dst.id)


def case_migration(results, cluster, daemon):
    label = "migration"
    owner = cluster.slot_map()
    a, b, c = cluster.nodes
    # a series slot and a group slot that both live on the same master
    group_slots = {key_slot(group_key("latest", g)) for g in range(GROUPS)}
    src = None
    for g in range(GROUPS):
        gs = key_slot(group_key("latest", g))
        cand = [n for n in GAUGES if owner[key_slot(series_key("stats.gauges." + n))] ==
                owner[gs] and key_slot(series_key("stats.gauges." + n)) not in group_slots]
        if cand:
            src = cluster.by_port(owner[gs])
            series_slot = key_slot(series_key("stats.gauges." + cand[0]))
            group_slot = gs
            break
    if not results.check("%s: found a master with a group slot and a gauge's slot" % label,
                         src is not None, ""):
        return
    dst = next(n for n in cluster.nodes if n is not src)
    sender = Sender(daemon).start()
    try:
        daemon.wait_flushes(2)
        for slot in (series_slot, group_slot):
            migrate_slot_by_hand(results, label, cluster, slot, src, dst, daemon)
        results.check("%s: the cluster agrees after the hand migration" % label,
                      cluster.wait_ok(), cluster.logs())
        daemon.wait_flushes(2)  # writes to the old owner now get -MOVED
        # then a range, the way an operator does it
        third = next(n for n in cluster.nodes if n not in (src, dst))
        r = subprocess.run([REDIS_CLI, "--cluster", "reshard", "%s:%d" % (LOOPBACK, src.port),
                            "--cluster-from", third.id, "--cluster-to", src.id,
                            "--cluster-slots", "1000", "--cluster-yes"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode("utf-8", "replace")
        results.check("%s: redis-cli --cluster reshard moved 1000 slots" % label,
                      r.returncode == 0, out[-3000:])
        results.check("%s: the cluster agrees after the reshard" % label, cluster.wait_ok(),
                      cluster.logs())
        daemon.wait_flushes(3)
    finally:
        sender.stop()
    daemon.wait_flushes(1)
    wait_settled(daemon)
    flushes, owner = check_series(results, label, cluster, daemon, lambda n: True)
    results.check("%s: slot %d is now served by :%d" % (label, series_slot, dst.port),
                  owner[series_slot] == dst.port and owner[group_slot] == dst.port,
                  "%r %r" % (owner[series_slot], owner[group_slot]))
    bad = misplaced_keys(cluster, owner)
    results.check("%s: every key is on the master owning its slot, and only there" % label,
                  not bad, repr(bad[:8]))
    check_latest(results, label, cluster, daemon, owner)
    dropped = sink_stat_sum(daemon.flushes(), "r", "dropped")
    results.check("%s: nothing dropped" % label, dropped == 0, "dropped %r" % dropped)
    err = daemon.log()
    results.check("%s: the sink logged the redirects it followed" % label,
                  "following cluster redirects" in err and "ASK" in err and "MOVED" in err,
                  err[-3000:])
    results.check("%s: the sink saw the map change" % label,
                  "cluster slot map changed" in err, err[-3000:])


# ---------------------------------------------------------------------------
# 3. a master fails


def case_failure(results, cluster, daemon):
    label = "master failure"
    owner = cluster.slot_map()
    victim = cluster.nodes[2]
    other_name = next("stats.gauges." + g for g in GAUGES
                      if owner[key_slot(series_key("stats.gauges." + g))] != victim.port)
    other_port = owner[key_slot(series_key(other_name))]
    first_ts = daemon.flushes()[-1][0] + 1
    sender = Sender(daemon).start()
    try:
        daemon.wait_flushes(2)
        sleep_until_phase(1.0, 0.5)
        victim.signal(signal.SIGSTOP)
        t_stop = time.time()
        time.sleep(2.0)
        victim.kill()
        results.check("%s: the killed master restarts from its AOF and nodes.conf" % label,
                      victim.start(), victim.logs())
        down_for = time.time() - t_stop
        # meanwhile the others' share kept flowing: a flush made while the
        # victim was down is in a series on another master
        pts = query(other_port, "ZRANGEBYSCORE", series_key(other_name), int(t_stop) + 1,
                    int(t_stop) + 2)
        results.check("%s: the other masters' share kept flowing (%.1f s down)"
                      % (label, down_for), isinstance(pts, list) and len(pts) >= 1, repr(pts))
        results.check("%s: the cluster is ok again" % label, cluster.wait_ok(), cluster.logs())
        daemon.wait_flushes(3)
    finally:
        sender.stop()
    daemon.wait_flushes(1)
    wait_settled(daemon)
    flushes, owner = check_series(results, label, cluster, daemon, lambda n: True)
    fl = daemon.flushes()
    queued = max((sink_stat(m, "r", "queued") or 0) for _, m in fl)
    down = [ts for ts, m in fl if sink_stat(m, "r", "connected") == 0]
    results.check("%s: the sink reported a master down and queued its share" % label,
                  queued > 0 and down, "max queued %r, disconnected at %r" % (queued, down))
    dropped = sink_stat_sum(fl, "r", "dropped")
    results.check("%s: nothing dropped" % label, dropped == 0, "dropped %r" % dropped)
    offered = sum(len(m) for _, m in fl[:-1])
    sent = sink_stat_sum(fl, "r", "sent")
    results.check("%s: sent equals what the sink was given" % label, sent == offered,
                  "sent %r, offered %r" % (sent, offered))
    ts = [t for t, _ in fl]
    results.check("%s: the console sink kept flushing every second" % label,
                  max((b - a for a, b in zip(ts, ts[1:])), default=0) <= 1, repr(ts))
    err = daemon.log()
    results.check("%s: the stalled connection was dropped and logged" % label,
                  "no reply for" in err, err[-3000:])
    check_latest(results, label, cluster, daemon, owner)
    # sink q: the same, with maxQueueMetrics 30: the victim's share beyond
    # the bound is dropped and counted, the other masters' share is whole.
    # (q also dropped before the cluster was made: its queue waiting for the
    # first map holds 30 metrics.)  A metric whose group op or series op was
    # dropped counts as dropped, so that is about half of a flush's metrics
    # while the victim is down: some, not all.
    window = [(ts, m) for ts, m in fl if ts >= first_ts]
    w_dropped = sink_stat_sum(window, "q", "dropped")
    w_offered = sum(len(m) for _, m in window)
    results.check("%s: with maxQueueMetrics 30 part of the metrics are dropped and "
                  "counted" % label, 0 < w_dropped < w_offered,
                  "dropped %r of %r" % (w_dropped, w_offered))
    q_dropped = sink_stat_sum(fl, "q", "dropped")
    q_sent = sink_stat_sum(fl, "q", "sent")
    results.check("%s: with maxQueueMetrics 30, sent + dropped = given" % label,
                  q_sent + q_dropped == offered,
                  "sent %r + dropped %r != %r" % (q_sent, q_dropped, offered))
    q_prefix = "q:"

    def elsewhere(name):
        return owner[key_slot(series_key(name, q_prefix))] != victim.port and is_ours(name)
    bad = series_mismatches(cluster, owner, window[:-1], elsewhere, prefix=q_prefix)
    results.check("%s: with maxQueueMetrics 30 the other masters' series lost nothing" % label,
                  not bad, repr(bad[:8]))
    results.check("%s: the drops are logged" % label, "sink 'q': metrics dropped" in err,
                  err[-3000:])


def main():
    results = Results(TEST_NAME)
    for path in (REDIS_SERVER, REDIS_CLI):
        if not results.check("%s is installed" % path, os.access(path, os.X_OK),
                             "apt-get install redis-server redis-tools"):
            return results.finish()
    print("switchyard binary: %s" % switchyard_binary())
    workdir = make_workdir("sy-redis-cluster-")
    t0 = time.monotonic()
    cluster = Cluster(workdir)
    daemon = None
    try:
        if not results.check("three cluster-enabled redis-servers start", cluster.start_nodes(),
                             cluster.logs()):
            return results.finish()
        dead = free_port("tcp")
        daemon = Daemon(workdir, "sy-cluster", {
            "nodes": ["%s:%d" % (LOOPBACK, dead), "%s:%d" % (LOOPBACK, cluster.nodes[1].port)],
            "stream": True, "streamMaxLen": 1000, "retention": 3600,
            "stallTimeoutMs": 800, "connectTimeoutMs": 800, "clusterRefreshMs": 3000,
        }, extra_sinks={"q": {"prefix": "q:", "maxQueueMetrics": 30, "stream": False}})
        if not results.check("switchyard starts", daemon.start(), daemon.logs()):
            return results.finish()
        if not case_before_cluster(results, cluster, daemon):
            return results.finish()
        for case in (case_values, case_migration, case_failure):
            case(results, cluster, daemon)
        code = daemon.stop()
        results.check("switchyard exits 0 on SIGTERM", code == 0,
                      "exit code %r\n%s" % (code, daemon.logs()))
        err = daemon.log()
        m = re.search(r"sink 'r': cluster redirects followed: (\d+) MOVED, (\d+) ASK", err)
        results.check("the sink followed both -ASK and -MOVED redirects (closing log)",
                      m is not None and int(m.group(1)) > 0 and int(m.group(2)) > 0,
                      err[-2000:])
        if m:
            results.note("redirects followed: %s MOVED, %s ASK" % (m.group(1), m.group(2)))
        daemon.check_sanitizer(results, "switchyard")
    except Exception as e:  # a crash of the harness is a failure, not a skip
        import traceback
        traceback.print_exc()
        results.check("harness ran without error", False, repr(e))
    finally:
        if daemon:
            daemon.stop()
        cluster.stop()
        remove_workdir(workdir)
    results.note("took %.1f s" % (time.monotonic() - t0))
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
