#!/usr/bin/env python3
"""Integration test: a relay tier.  Front switchyards pass every `relay.*`
sample through to a repeater sink with four destinations, four real
switchyard aggregators on loopback, which spreads the keys over them by
consistent hashing of the routed name (the ketama ring of
plugins/lib/shard.c, computed here again with hashlib to check placement).

  aggregators  agg0..agg3, each flushing every 2 s into a capture of its
               own (so each key's aggregator is known);
  fronts       F-tcp    TCP, onDown = "queue" (the default)
               F-udp    UDP, onDown = "rehash"
               F-rehash TCP, onDown = "rehash", downAfterMs = 300
               F-tiny   TCP, onDown = "queue", maxQueueBytes = 64 KiB (the
                        host hands the sink ~4096 samples at a time)
               each routes `relay.` :passthrough "fwd" and the rest (its
               own metrics) to a capture of its own.

Phases (distinct key prefixes, so they do not mix):
  1. TCP, all up: 10,000 keys (4,000 counters, 500 of them with a
     DogStatsD tag, 3,000 timers, 3,000 sets) with known totals: the sums
     over the aggregators equal what was sent, every key is on exactly one
     aggregator, complete (a timer's count and sum, a set's size), and on
     the aggregator the ring gives;
  2. the same over UDP;
  3. queue: agg1 stopped; its share waits in F-tcp's queue (the queued
     gauge equals its share's line count), the others get theirs; agg1
     restarted: its share arrives, everything complete, nothing dropped;
  4. a bounded queue: agg1 stopped, F-tiny sent more than 64 KiB for it:
     the excess is counted dropped, the rest waits (queued + dropped =
     its share), what fitted arrives once agg1 is back, and arrived +
     dropped = sent;
  5. rehash (TCP): agg1 stopped and marked down after downAfterMs: the
     whole batch is on the other three, complete, each key of agg1 on the
     next aggregator round the ring, every other key where it was; agg1
     back: its keys return to it;
  6. rehash (UDP): agg2 stopped, noticed by an ICMP error (a warm-up
     batch whose keys are not checked): the whole batch is on the other
     three, complete, placed as the ring says.

Usage: /usr/bin/python3 tests/integration/test_relay_tier.py   ($SY_BIN)
"""
import bisect
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib import REPO_DIR  # noqa: E402
from lib.capture import GraphiteCapture  # noqa: E402
from lib.daemon import ConfigDaemon  # noqa: E402
from lib.netutil import LOOPBACK, sleep_until_phase  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.statsd import NPM_DIR, ensure_statsd  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

TEST_NAME = "test_relay_tier"

AGG_INTERVAL = 2.0
GRAPHITE = {"legacyNamespace": False, "globalPrefix": "stats"}
AGG_OPTIONS = {
    "flushInterval": int(AGG_INTERVAL * 1000),
    "percentThreshold": [90],
    "deleteIdleStats": True,
    "prefixStats": "statsd",
    "graphite": GRAPHITE,
}
FRONT_OPTIONS = {"flushInterval": 1000, "prefixStats": "statsd", "graphite": GRAPHITE}
FRONT_ROUTES = """{
  route.prefix "relay." :passthrough "fwd",
  route.default() :to "self",
}"""
DOWN = 1          # the aggregator stopped in phases 3-5
DOWN_UDP = 2      # the one stopped in phase 6
TINY_QUEUE = 65536  # F-tiny's maxQueueBytes: a few of the host's batches


# ---------------------------------------------------------------------
# The ring, as plugins/lib/shard.c builds it (libketama's layout)
# ---------------------------------------------------------------------

def ketama_pos(key):
    return int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "little")


class Ring:
    def __init__(self, names):
        pts = []
        for n in names:
            for i in range(40):
                d = hashlib.md5(("%s-%d" % (n, i)).encode()).digest()
                for j in range(4):
                    pts.append((int.from_bytes(d[4 * j:4 * j + 4], "little"), n))
        self.pts = sorted(pts)

    def _at(self, key):
        i = bisect.bisect_left(self.pts, (ketama_pos(key), ""))
        return 0 if i == len(self.pts) else i

    def pick(self, key):
        return self.pts[self._at(key)][1]

    def pick_up(self, key, down):
        """Where onDown = "rehash" sends the key: the first point from the
        key's own onwards whose node is up."""
        i = self._at(key)
        for k in range(len(self.pts)):
            node = self.pts[(i + k) % len(self.pts)][1]
            if node not in down:
                return node
        return self.pts[i][1]


def hashring_placement(nodes, keys, mode):
    """Where npm's hashring (statsd's dependency, written elsewhere) puts
    each key: "default" (libketama's layout) or "statsd" (the ring
    statsd's proxy.js builds)."""
    ensure_statsd()
    env = dict(os.environ, NODE_PATH=os.path.join(NPM_DIR, "node_modules"))
    p = subprocess.run(["node", os.path.join(REPO_DIR, "tests", "lib", "hashring_ref.js")],
                       input=json.dumps({"nodes": nodes, "keys": keys, "mode": mode}).encode(),
                       capture_output=True, env=env, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("hashring_ref.js failed: %s" % p.stderr.decode("utf-8", "replace"))
    return dict(zip(keys, json.loads(p.stdout)))


# ---------------------------------------------------------------------
# Daemons
# ---------------------------------------------------------------------

def graphite_sink(capture):
    return {"plugin": "graphite", "host": LOOPBACK, "port": capture.port,
            "reconnectMinMs": 50, "reconnectMaxMs": 500}


class Front:
    def __init__(self, workdir, name, aggs, **repeater):
        self.capture = GraphiteCapture()
        fwd = {"plugin": "repeater", "destinations": [a.dest for a in aggs],
               "reconnectMinMs": 50, "reconnectMaxMs": 200}
        fwd.update(repeater)
        self.daemon = ConfigDaemon(name, workdir, FRONT_OPTIONS,
                             {"fwd": fwd, "self": graphite_sink(self.capture)}, FRONT_ROUTES)

    def stat_values(self, stat):
        out = []
        for line in self.capture.lines():
            if line.name.endswith("switchyard.sink.fwd." + stat) and line.value is not None:
                try:
                    out.append(float(line.value))
                except ValueError:
                    pass
        return out

    def total(self, stat):
        return sum(self.stat_values(stat))

    def last(self, stat):
        vs = self.stat_values(stat)
        return vs[-1] if vs else None

    def close(self):
        self.daemon.stop()
        self.capture.close()


# ---------------------------------------------------------------------
# Traffic and what the aggregators made of it
# ---------------------------------------------------------------------

class Batch:
    """Distinct keys of counters, timers and sets with known totals.
    keys: routed key -> (kind, expected); lines: key -> its lines."""

    def __init__(self, prefix, counters=4000, tagged=500, timers=3000, sets=3000):
        self.keys = {}
        self.lines = {}
        for i in range(counters):
            a = i % 10 + 1
            if i < tagged:
                key = "%s.c.%05d;env=prod" % (prefix, i)
                name, tags = "%s.c.%05d" % (prefix, i), "|#env:prod"
            else:
                key = name = "%s.c.%05d" % (prefix, i)
                tags = ""
            # a + 2 / 0.5
            self.add(key, ("c", a + 4.0), ["%s:%d|c%s" % (name, a, tags),
                                           "%s:2|c|@0.5%s" % (name, tags)])
        for i in range(timers):
            key = "%s.t.%05d" % (prefix, i)
            v = i % 50
            self.add(key, ("t", (3.0, 3.0 * v + 30)),
                     ["%s:%d|ms" % (key, v + k) for k in (0, 10, 20)])
        for i in range(sets):
            key = "%s.s.%05d" % (prefix, i)
            self.add(key, ("s", 3.0), ["%s:%s|s" % (key, m) for m in ("a", "b", "a", "u%d" % i)])

    def add(self, key, expected, lines):
        self.keys[key] = expected
        self.lines[key] = lines

    def all_lines(self):
        return [ln for key in self.keys for ln in self.lines[key]]

    def line_count(self, keys):
        return sum(len(self.lines[k]) for k in keys)


KINDS = (("stats.counters.", ".count", "c"), ("stats.timers.", ".count", "tc"),
         ("stats.timers.", ".sum", "ts"), ("stats.sets.", ".count", "s"))


def seen(capture, prefix):
    """routed key -> {"c"|"tc"|"ts"|"s": sum over flushes} from one
    aggregator's capture, for keys starting with prefix."""
    out = {}
    for line in capture.lines():
        if line.value is None:
            continue
        parts = line.name.split(";")
        base, tags = parts[0], parts[1:]
        for head, tail, field in KINDS:
            if base.startswith(head + prefix) and base.endswith(tail):
                key = base[len(head):-len(tail)]
                if tags:
                    key += ";" + ";".join(tags)
                try:
                    v = float(line.value)
                except ValueError:
                    continue
                d = out.setdefault(key, {})
                d[field] = d.get(field, 0.0) + v
    return out


def complete(got, expected):
    """Whether one key's sums match what was sent."""
    kind, want = expected
    if kind == "c":
        return got.get("c") == want
    if kind == "t":
        return got.get("tc") == want[0] and got.get("ts") == want[1]
    return got.get("s") == want


def collect(aggs, prefix):
    return [seen(a.capture, prefix) for a in aggs]


def wait_for_keys(aggs, prefix, n, timeout):
    """Wait until n distinct keys of prefix arrived, then for quiet."""
    ok = wait_until(lambda: len(set().union(*[set(s) for s in collect(aggs, prefix)])) >= n,
                    timeout, step=0.2)
    for a in aggs:
        a.capture.wait_quiet()
    return ok


def check_batch(results, label, aggs, batch, prefix, place, only=None):
    """The sums, uniqueness, completeness and placement of a batch.
    place(key) -> index of the aggregator the key must be on; `only`
    limits the check to some keys (those not lost on the way)."""
    per = collect(aggs, prefix)
    keys = batch.keys if only is None else only
    owners = {}
    for i, s in enumerate(per):
        for k in s:
            owners.setdefault(k, []).append(i)
    multi = {k: v for k, v in owners.items() if len(v) > 1}
    results.check("%s: every key is on exactly one aggregator" % label, not multi,
                  "%d keys on several: %r" % (len(multi), list(multi.items())[:5]))
    missing = [k for k in keys if k not in owners]
    unknown = [k for k in owners if k not in batch.keys]
    results.check("%s: all %d keys arrived, no other" % (label, len(keys)),
                  not missing and not unknown,
                  "missing %d %r, unknown %r" % (len(missing), missing[:5], unknown[:5]))
    incomplete = []
    for k in keys:
        if k in owners and len(owners[k]) == 1:
            got = per[owners[k][0]][k]
            if not complete(got, batch.keys[k]):
                incomplete.append((k, got, batch.keys[k]))
    results.check("%s: every key complete (counter sums, timer counts and sums, set sizes)"
                  % label, not incomplete and not missing,
                  "%d incomplete: %r" % (len(incomplete), incomplete[:5]))
    want_c = sum(e[1] for k, e in batch.keys.items() if e[0] == "c" and k in keys)
    got_c = sum(s[k].get("c", 0) for s in per for k in s if k in keys)
    want_t = sum(e[1][0] for k, e in batch.keys.items() if e[0] == "t" and k in keys)
    got_t = sum(s[k].get("tc", 0) for s in per for k in s if k in keys)
    want_s = sum(e[1] for k, e in batch.keys.items() if e[0] == "s" and k in keys)
    got_s = sum(s[k].get("s", 0) for s in per for k in s if k in keys)
    results.check("%s: sums over the aggregators = sent (counters %g, timer samples %g, "
                  "set members %g)" % (label, want_c, want_t, want_s),
                  (got_c, got_t, got_s) == (want_c, want_t, want_s),
                  "got counters %g, timer samples %g, set members %g" % (got_c, got_t, got_s))
    wrong = [(k, owners[k], place(k)) for k in owners if len(owners[k]) == 1 and k in batch.keys
             and owners[k][0] != place(k)]
    results.check("%s: every key on the aggregator the ring gives" % label, not wrong,
                  "%d misplaced (key, on, ring says): %r" % (len(wrong), wrong[:5]))
    results.note("%s: keys per aggregator %r" % (label, [len(s) for s in per]))
    return per


def show(daemons, *captures):
    for d in daemons:
        print(d.logs())
    for c in captures:
        print("---- capture %d ----" % c.port)
        for line in c.lines()[-30:]:
            print("   ", line.raw)


# ---------------------------------------------------------------------
# The phases
# ---------------------------------------------------------------------

def phase_all_up(results, label, front, aggs, ring, prefix):
    batch = Batch(prefix)
    sleep_until_phase(AGG_INTERVAL, 0.3)
    front.daemon.send(batch.all_lines())
    ok = wait_for_keys(aggs, prefix, len(batch.keys), 12)
    results.check("%s: the batch arrived" % label, ok)
    names = [a.dest for a in aggs]
    check_batch(results, label, aggs, batch, prefix, lambda k: names.index(ring.pick(k)))
    results.check("%s: the front dropped nothing" % label, front.total("dropped") == 0,
                  "dropped = %r" % front.total("dropped"))


def phase_statsd_ring(results, front, aggs, ring):
    """hashing = "statsd": every key on the aggregator statsd's own proxy
    would pick (npm hashring as proxy.js builds it), a placement that
    differs from the ketama ring's for many keys."""
    label = "statsd ring (TCP)"
    prefix = "relay.s"
    batch = Batch(prefix, counters=1000, tagged=0, timers=500, sets=500)
    names = [a.dest for a in aggs]
    keys = list(batch.keys)
    where = hashring_placement(names, keys, "statsd")
    differ = sum(1 for k in keys if where[k] != ring.pick(k))
    results.check("%s: the statsd ring places %d of %d keys elsewhere than ketama (the check "
                  "can tell them apart)" % (label, differ, len(keys)), differ > len(keys) // 4)
    sleep_until_phase(AGG_INTERVAL, 0.3)
    front.daemon.send(batch.all_lines())
    ok = wait_for_keys(aggs, prefix, len(batch.keys), 12)
    results.check("%s: the batch arrived" % label, ok)
    check_batch(results, label, aggs, batch, prefix, lambda k: names.index(where[k]))


def phase_queue(results, front, aggs, ring):
    label = "queue (TCP)"
    names = [a.dest for a in aggs]
    prefix = "relay.q"
    batch = Batch(prefix)
    down_keys = [k for k in batch.keys if ring.pick(k) == names[DOWN]]
    aggs[DOWN].stop()
    results.check("%s: F-tcp sees agg%d gone (connected = 3)" % (label, DOWN),
                  wait_until(lambda: front.last("connected") == 3, 5),
                  "connected = %r" % front.last("connected"))
    front.daemon.send(batch.all_lines())
    share = batch.line_count(down_keys)
    results.check("%s: agg%d's share (%d lines, %d keys) waits in the queue"
                  % (label, DOWN, share, len(down_keys)),
                  wait_until(lambda: front.last("queued") == share, 6),
                  "queued = %r" % front.last("queued"))
    up = [a for i, a in enumerate(aggs) if i != DOWN]
    ok = wait_for_keys(up, prefix, len(batch.keys) - len(down_keys), 8)
    results.check("%s: meanwhile the others have their share" % label, ok)
    # back early in a flush window, so its share lands in one flush
    sleep_until_phase(AGG_INTERVAL, 0.1)
    if not results.check("%s: agg%d restarts on the same port" % (label, DOWN),
                         aggs[DOWN].start(), aggs[DOWN].logs()):
        return
    ok = wait_for_keys(aggs, prefix, len(batch.keys), 10)
    results.check("%s: agg%d's share arrives once it is back" % (label, DOWN), ok)
    check_batch(results, label, aggs, batch, prefix, lambda k: names.index(ring.pick(k)))
    results.check("%s: nothing dropped, nothing left queued" % label,
                  wait_until(lambda: front.last("queued") == 0, 4) and front.total("dropped") == 0,
                  "queued %r, dropped %r" % (front.last("queued"), front.total("dropped")))


def phase_tiny(results, front, aggs, ring):
    label = "bounded queue"
    names = [a.dest for a in aggs]
    prefix = "relay.b"
    batch = Batch(prefix, counters=8000, tagged=0, timers=0, sets=0)
    down_keys = [k for k in batch.keys if ring.pick(k) == names[DOWN]]
    down_lines = batch.line_count(down_keys)
    aggs[DOWN].stop()
    results.check("%s: F-tiny sees agg%d gone" % (label, DOWN),
                  wait_until(lambda: front.last("connected") == 3, 5),
                  "connected = %r" % front.last("connected"))
    # in small pieces, so that the up destinations' queues never hold more
    # than a piece: the bound is what their share of one of the host's
    # batches must fit in
    lines = batch.all_lines()
    for i in range(0, len(lines), 1000):
        front.daemon.send(lines[i:i + 1000])
        time.sleep(0.08)
    dropped = wait_until(lambda: front.total("dropped") > 0, 5)
    time.sleep(1.2)  # one more of the front's flushes
    dropped = front.total("dropped")
    results.check("%s: what did not fit in %d bytes is counted dropped (%g of agg%d's %d lines)"
                  % (label, TINY_QUEUE, dropped, DOWN, down_lines), 0 < dropped < down_lines,
                  "dropped = %r" % dropped)
    queued = front.last("queued")
    shortest = min(len(ln) + 1 for k in down_keys for ln in batch.lines[k])
    results.check("%s: the queue stays within its bound (%r lines of %d bytes or more)"
                  % (label, queued, shortest),
                  queued is not None and 0 < queued <= TINY_QUEUE // shortest
                  and queued + dropped == down_lines,
                  "queued %r + dropped %r, agg%d's share %d" % (queued, dropped, DOWN, down_lines))
    sleep_until_phase(AGG_INTERVAL, 0.1)
    if not results.check("%s: agg%d restarts" % (label, DOWN), aggs[DOWN].start(),
                         aggs[DOWN].logs()):
        return
    wait_until(lambda: front.last("queued") == 0, 6)
    up_keys = [k for k in batch.keys if k not in down_keys]
    wait_for_keys(aggs, prefix, len(up_keys) + 1, 8)
    per = collect(aggs, prefix)
    # a key's two lines are "NAME:a|c" (a) and "NAME:2|c|@0.5" (4)
    arrived_lines, odd = 0, []
    for k in down_keys:
        got = per[DOWN].get(k, {}).get("c")
        if got is None:
            continue
        a = batch.keys[k][1] - 4
        if got == a + 4:
            arrived_lines += 2
        elif got in (a, 4.0):
            arrived_lines += 1
        else:
            odd.append((k, got))
    results.check("%s: arrived + dropped = agg%d's share (%d + %g = %d)"
                  % (label, DOWN, arrived_lines, dropped, down_lines),
                  arrived_lines + dropped == down_lines and arrived_lines > 0 and not odd,
                  "odd sums: %r" % odd[:5])
    check_batch(results, label + ", the other keys", aggs, batch, prefix,
                lambda k: names.index(ring.pick(k)), only=up_keys)


def phase_rehash_tcp(results, front, aggs, ring):
    label = "rehash (TCP)"
    names = [a.dest for a in aggs]
    prefix = "relay.r"
    batch = Batch(prefix)
    aggs[DOWN].stop()
    results.check("%s: F-rehash sees agg%d gone" % (label, DOWN),
                  wait_until(lambda: front.last("connected") == 3, 5),
                  "connected = %r" % front.last("connected"))
    time.sleep(0.5)  # > downAfterMs
    sleep_until_phase(AGG_INTERVAL, 0.3)
    front.daemon.send(batch.all_lines())
    up = [a for i, a in enumerate(aggs) if i != DOWN]
    ok = wait_for_keys(up, prefix, len(batch.keys), 10)
    results.check("%s: the whole batch arrived at the other three" % label, ok)
    down = {names[DOWN]}
    moved = sum(1 for k in batch.keys if ring.pick(k) == names[DOWN])
    spread = {}
    for k in batch.keys:
        if ring.pick(k) == names[DOWN]:
            n = ring.pick_up(k, down)
            spread[n] = spread.get(n, 0) + 1
    results.note("%s: %d keys of agg%d went to %r" % (label, moved, DOWN, spread))
    check_batch(results, label, aggs, batch, prefix,
                lambda k: names.index(ring.pick_up(k, down)))
    results.check("%s: agg%d's keys spread over more than one aggregator" % (label, DOWN),
                  len(spread) > 1, repr(spread))
    results.check("%s: nothing dropped or queued" % label,
                  front.total("dropped") == 0 and wait_until(lambda: front.last("queued") == 0, 3),
                  "dropped %r, queued %r" % (front.total("dropped"), front.last("queued")))
    # back: its keys return to it
    if not results.check("%s: agg%d restarts" % (label, DOWN), aggs[DOWN].start(),
                         aggs[DOWN].logs()):
        return
    results.check("%s: F-rehash sees agg%d back" % (label, DOWN),
                  wait_until(lambda: front.last("connected") == 4, 5),
                  "connected = %r" % front.last("connected"))
    prefix = "relay.rb"
    again = Batch(prefix, counters=1000, tagged=100, timers=0, sets=0)
    sleep_until_phase(AGG_INTERVAL, 0.3)
    front.daemon.send(again.all_lines())
    wait_for_keys(aggs, prefix, len(again.keys), 10)
    check_batch(results, label + ", agg%d back" % DOWN, aggs, again, prefix,
                lambda k: names.index(ring.pick(k)))


def phase_rehash_udp(results, front, aggs, ring):
    label = "rehash (UDP)"
    names = [a.dest for a in aggs]
    aggs[DOWN_UDP].stop()
    # warm-up: keys of agg2 among these get an ICMP error back
    warm = Batch("relay.w", counters=300, tagged=0, timers=0, sets=0)
    front.daemon.send(warm.all_lines())
    results.check("%s: F-udp marks agg%d down on the ICMP error (connected = 3)"
                  % (label, DOWN_UDP),
                  wait_until(lambda: front.last("connected") == 3, 5),
                  "connected = %r" % front.last("connected"))
    prefix = "relay.ur"
    batch = Batch(prefix)
    sleep_until_phase(AGG_INTERVAL, 0.3)
    front.daemon.send(batch.all_lines())
    up = [a for i, a in enumerate(aggs) if i != DOWN_UDP]
    ok = wait_for_keys(up, prefix, len(batch.keys), 10)
    results.check("%s: the whole batch arrived at the other three" % label, ok)
    down = {names[DOWN_UDP]}
    check_batch(results, label, aggs, batch, prefix,
                lambda k: names.index(ring.pick_up(k, down)))


def run(results, workdir, aggs, fronts):
    for i in range(4):
        cap = GraphiteCapture()
        a = ConfigDaemon("agg%d" % i, workdir, AGG_OPTIONS, {"carbon": graphite_sink(cap)})
        a.capture = cap
        aggs.append(a)
    ring = Ring([a.dest for a in aggs])
    # The ring above is this file's own port of shard.c; check it against
    # npm's hashring, which nobody here wrote (libketama's layout is its
    # default), so placement is not checked against the code's own twin.
    keys = list(Batch("relay.p").keys) + list(Batch("relay.u").keys)
    ref = hashring_placement([a.dest for a in aggs], keys, "default")
    wrong = [k for k in keys if ref[k] != ring.pick(k)]
    results.check("the ketama ring places all %d keys where npm hashring (libketama's layout) does"
                  % len(keys), not wrong, "%d differ, e.g. %r" % (len(wrong), wrong[:5]))
    fronts["tcp"] = Front(workdir, "F-tcp", aggs, protocol="tcp")
    fronts["udp"] = Front(workdir, "F-udp", aggs, protocol="udp", onDown="rehash")
    fronts["rehash"] = Front(workdir, "F-rehash", aggs, protocol="tcp", onDown="rehash",
                             downAfterMs=300)
    fronts["tiny"] = Front(workdir, "F-tiny", aggs, protocol="tcp", maxQueueBytes=TINY_QUEUE)
    fronts["statsd"] = Front(workdir, "F-statsd", aggs, protocol="tcp", hashing="statsd")
    for d in aggs + [f.daemon for f in fronts.values()]:
        if not results.check("%s starts" % d.name, d.start(), d.logs()):
            return
    for name, f in fronts.items():
        results.check("F-%s: connected to the four aggregators" % name,
                      wait_until(lambda: f.last("connected") == 4, 6),
                      "connected = %r" % f.last("connected"))

    phase_all_up(results, "all up (TCP)", fronts["tcp"], aggs, ring, "relay.p")
    phase_all_up(results, "all up (UDP)", fronts["udp"], aggs, ring, "relay.u")
    phase_statsd_ring(results, fronts["statsd"], aggs, ring)
    phase_queue(results, fronts["tcp"], aggs, ring)
    phase_tiny(results, fronts["tiny"], aggs, ring)
    phase_rehash_tcp(results, fronts["rehash"], aggs, ring)
    phase_rehash_udp(results, fronts["udp"], aggs, ring)
    if results.failed:
        show([f.daemon for f in fronts.values()] + aggs)


def main():
    results = Results(TEST_NAME)
    workdir = make_workdir("sy-relay-")
    print("switchyard binary: %s" % switchyard_binary())
    started = time.monotonic()
    aggs, fronts = [], {}
    try:
        run(results, workdir, aggs, fronts)
    except Exception as e:  # a crash of the harness is a failure, not a skip
        import traceback
        traceback.print_exc()
        results.check("harness ran without error", False, repr(e))
    finally:
        for f in fronts.values():
            f.close()
        for a in aggs:
            a.stop()
            a.capture.close()
        remove_workdir(workdir)
    results.note("took %.1f s" % (time.monotonic() - started))
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
