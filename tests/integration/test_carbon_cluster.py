#!/usr/bin/env python3
"""Integration test: switchyard's graphite sink in front of a carbon cluster.

Three real carbon-caches (Debian's graphite-carbon), each with its own
storage, listening on 127.0.0.1, 127.0.0.2 and 127.0.0.3; switchyard's
graphite sink gets them as `destinations`.  Where each metric must land is
decided by carbon's own code: a ConsistentHashingRouter built the way
carbon-relay builds it (carbon.conf defaults with RELAY_METHOD =
consistent-hashing, DESTINATIONS parsed by carbon.util.parseDestinations
and added in order, as service.setupRelayProcessor and
CarbonClientManager.startClient do).

  1. instances: DESTINATIONS "ADDR:PORT:a|b|c" (ring nodes ('ADDR', 'a')...);
     200 gauges, each .wsp file must exist on carbon's node and on no other;
  2. no instances: "ADDR:PORT" (ring nodes ('ADDR', None)), 200 more;
  3. one node down at start: carbon c is stopped, a new switchyard starts
     and gets 200 gauges; a's and b's arrive (on the right nodes) while c
     is down and none of c's appear anywhere; then c starts again and its
     queued metrics arrive on it;
  4. every .wsp file the scenarios produced (switchyard's own metrics too)
     is on the node carbon picks for its name.

Run with Debian's /usr/bin/python3 (carbon must be importable).
"""
import concurrent.futures
import os
import re
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.carbon import CARBON_CACHE, CarbonCache  # noqa: E402
from lib.daemon import ConfigDaemon  # noqa: E402
from lib.netutil import send_udp, sleep_until_phase, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

TEST_NAME = "test_carbon_cluster"
NODES = (("127.0.0.1", "a"), ("127.0.0.2", "b"), ("127.0.0.3", "c"))
N_METRICS = 200
ARRIVE_TIMEOUT = 20.0


# ---- carbon's own placement ----

def carbon_relay_router(destinations):
    """carbon-relay's router for these DESTINATIONS, built by carbon's code.
    Returns (router, parsed destinations in order)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # carbon.routers imports `imp`
        from carbon import util
        from carbon.conf import Settings
        from carbon.routers import DatapointRouter
    settings = Settings()
    settings.update(RELAY_METHOD="consistent-hashing", DESTINATIONS=destinations)
    router = DatapointRouter.plugins[settings.RELAY_METHOD](settings)
    parsed = util.parseDestinations(settings.DESTINATIONS)
    for d in parsed:  # DYNAMIC_ROUTER is off: every destination, in order
        router.addDestination(d)
    return router, parsed


def expected_node(router, parsed, metric):
    dests = list(router.getDestinations(metric))
    assert len(dests) == 1, dests  # REPLICATION_FACTOR = 1
    return parsed.index(dests[0])


# ---- the cluster ----

class LoopbackCarbon(CarbonCache):
    """tests/lib/carbon.py's carbon-cache, bound to another loopback
    address (127.0.0.N) so that nodes can differ by host, not only by
    instance."""

    def __init__(self, root, addr):
        super().__init__(root)
        self.addr = addr

    def write_config(self):
        super().write_config()
        with open(self.conf_path) as f:
            text = f.read()
        text = re.sub(r"^(\w+_INTERFACE) = .*$", r"\1 = " + self.addr, text, flags=re.M)
        with open(self.conf_path, "w") as f:
            f.write(text)

    def start(self, timeout=30.0):
        self.write_config()
        argv = [CARBON_CACHE, "--config=" + self.conf_path, "--nodaemon",
                "--pidfile=" + os.path.join(self.root, "carbon-cache.pid"),
                "--logdir=" + os.path.join(self.root, "log"), "start"]
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        self.proc = Process("carbon-cache", argv, self.root, cwd=self.root, env=env).start()
        return wait_for_port(self.line_port, timeout, host=self.addr, alive=self.proc.alive)

    def metrics(self):
        """Every metric with a .wsp file on this node."""
        out = set()
        for dirpath, _, files in os.walk(self.data_dir):
            for f in files:
                if f.endswith(".wsp"):
                    rel = os.path.relpath(os.path.join(dirpath, f[:-4]), self.data_dir)
                    out.add(rel.replace(os.sep, "."))
        return out


# ---- switchyard ----

def send_gauges(port, stems):
    """value i for stem i, 40 lines a datagram, inside one flush."""
    sleep_until_phase(1.0, 0.2)
    lines = ["%s:%d|g" % (s, i + 1) for i, s in enumerate(stems)]
    send_udp(port, ["\n".join(lines[k:k + 40]) for k in range(0, len(lines), 40)])


# ---- checks ----

def holders(carbons, metric):
    return [i for i, c in enumerate(carbons) if os.path.exists(c.wsp_path(metric))]


def wait_arrived(carbons, metrics, timeout):
    """Waits until every metric has a file somewhere; returns those that
    have none."""
    left = set(metrics)

    def done():
        for m in list(left):
            if holders(carbons, m):
                left.discard(m)
        return not left
    wait_until(done, timeout, step=0.25)
    return left


def check_placement(results, label, carbons, metrics, expect):
    """Each metric's file is on expect[metric] and nowhere else."""
    wrong = []
    counts = [0] * len(carbons)
    for m in sorted(metrics):
        h = holders(carbons, m)
        if h != [expect[m]]:
            wrong.append("%s: carbon places it on %s, found on %s" % (
                m, NODES[expect[m]][1], [NODES[i][1] for i in h] or "no node"))
        counts[expect[m]] += 1
    share = ", ".join("%s %d" % (NODES[i][1], n) for i, n in enumerate(counts))
    results.check("%s: %d metrics each on exactly the node carbon picks (%s)" % (
        label, len(metrics), share), not wrong, "\n".join(wrong[:20]))


def check_values(results, label, carbons, metrics, expect, value_of, since):
    """One metric per node reads back the value sent."""
    picked = {}
    for m in sorted(metrics):
        picked.setdefault(expect[m], m)
    bad = []
    for node, m in sorted(picked.items()):
        pts = wait_until(lambda: carbons[node].fetch(m, since), 10, step=0.25)
        got = [v for _, v in pts or []]
        if got != [float(value_of[m])]:
            bad.append("%s on %s: read %r, sent %r" % (m, NODES[node][1], got, value_of[m]))
    results.check("%s: values read back from each node" % label, not bad, "\n".join(bad))


def check_sink_gauges(results, label, carbons, router, parsed, prefix, since, n_queued):
    """The sink's own gauges, as switchyard flushed them to the cluster:
    `connected` was 0 while a node was down and is 1 once all are up;
    `queued` (the total over the destinations' queues) held at least the
    down node's metrics, and drained."""
    base = prefix + ".statsd.switchyard.sink.cluster."
    got = {}

    def series(metric):
        node = expected_node(router, parsed, metric)
        return [v for _, v in carbons[node].fetch(metric, since) or []]

    def ok():
        got["connected"], got["queued"] = series(base + "connected"), series(base + "queued")
        c, q = got["connected"], got["queued"]
        return bool(c and q and 0.0 in c and c[-1] == 1.0 and max(q) >= n_queued
                    and q[-1] < n_queued)
    results.check("%s: the sink's connected gauge went 0 -> 1 and queued held the %d metrics, "
                  "then drained" % (label, n_queued), wait_until(ok, 15, step=0.5),
                  "connected %r\nqueued %r" % (got.get("connected"), got.get("queued")))


def scenario(results, label, workdir, carbons, prefix, destinations, down=None):
    """Starts a switchyard for `destinations`, sends N_METRICS gauges under
    `prefix` and checks where they land.  With `down` (a node index) that
    carbon is stopped first and started again once the others' metrics
    are in.  Returns the router and parsed destinations."""
    router, parsed = carbon_relay_router(destinations)
    stems = ["cluster.m%03d" % i for i in range(N_METRICS)]
    metrics = ["%s.gauges.%s" % (prefix, s) for s in stems]
    value_of = {m: i + 1 for i, m in enumerate(metrics)}
    expect = {m: expected_node(router, parsed, m) for m in metrics}

    if down is not None:
        carbons[down].stop()
    sy = ConfigDaemon("switchyard-" + prefix, workdir, {
        "flushInterval": 1000,
        "deleteIdleStats": True,
        "graphite": {"legacyNamespace": False, "globalPrefix": prefix},
    }, {"cluster": {"plugin": "graphite", "destinations": destinations,
                    "reconnectMinMs": 100, "reconnectMaxMs": 500}})
    try:
        if not results.check("%s: switchyard starts" % label, sy.start(), sy.logs()):
            return router, parsed
        since = int(time.time()) - 1
        send_gauges(sy.port, stems)
        up = [m for m in metrics if expect[m] != down]
        missing = wait_arrived(carbons, up, ARRIVE_TIMEOUT)
        results.check("%s: all %d metrics for the running nodes arrive" % (label, len(up)),
                      not missing, "missing %d: %s\n%s" % (
                          len(missing), sorted(missing)[:10], sy.logs()))
        if down is not None:
            theirs = [m for m in metrics if expect[m] == down]
            # they would have been sent by now, were they going anywhere
            time.sleep(1.0)
            stray = [m for m in theirs if holders(carbons, m)]
            results.check("%s: none of node %s's %d metrics went to another node while it "
                          "was down" % (label, NODES[down][1], len(theirs)), not stray,
                          "found %s" % stray[:10])
            check_placement(results, label + " (node %s down)" % NODES[down][1], carbons,
                            up, expect)
            if not results.check("%s: carbon %s starts again" % (label, NODES[down][1]),
                                 carbons[down].start(), carbons[down].logs()):
                return router, parsed
            missing = wait_arrived(carbons, theirs, ARRIVE_TIMEOUT)
            results.check("%s: node %s's %d queued metrics arrive once it is up" % (
                label, NODES[down][1], len(theirs)), not missing, "missing %d: %s\n%s" % (
                len(missing), sorted(missing)[:10], sy.logs()))
            check_sink_gauges(results, label, carbons, router, parsed, prefix, since, len(theirs))
        check_placement(results, label, carbons, metrics, expect)
        check_values(results, label, carbons, metrics, expect, value_of, since)
        sy.finish(results, label)
        if results.failed:
            print(sy.logs())
    finally:
        sy.stop()
    return router, parsed


def check_every_file(results, carbons, rings):
    """Every file under a scenario's prefix -- switchyard's own metrics
    included -- is on the node carbon picks for it; files under no prefix
    other than carbon's own are unexpected."""
    wrong, unknown, n = [], [], 0
    for i, c in enumerate(carbons):
        for m in sorted(c.metrics()):
            prefix = m.split(".", 1)[0]
            if prefix == "carbon":  # carbon-cache's own instrumentation
                continue
            if prefix not in rings:
                unknown.append("%s on %s" % (m, NODES[i][1]))
                continue
            n += 1
            want = expected_node(*rings[prefix], m)
            if want != i:
                wrong.append("%s on %s, carbon places it on %s" % (m, NODES[i][1], NODES[want][1]))
    results.check("all %d metric files on the three nodes are where carbon places them" % n,
                  not wrong and not unknown and n > 3 * N_METRICS,
                  "\n".join((wrong + ["unexpected: " + u for u in unknown])[:20]))


def main():
    results = Results(TEST_NAME)
    workdir = make_workdir("sy-carbon-cluster-")
    carbons = [LoopbackCarbon(os.path.join(workdir, "carbon-" + inst), addr)
               for addr, inst in NODES]
    try:
        print("switchyard binary: %s" % switchyard_binary())
        for c in carbons:
            os.makedirs(c.root)
        with concurrent.futures.ThreadPoolExecutor(len(carbons)) as ex:
            started = list(ex.map(lambda c: c.start(), carbons))
        for (addr, inst), c, ok in zip(NODES, carbons, started):
            results.check("carbon-cache %s starts on %s:%d" % (inst, addr, c.line_port), ok,
                          c.logs())
        if not all(started):
            return results.finish()

        rings = {}
        with_inst = ["%s:%d:%s" % (addr, c.line_port, inst) for (addr, inst), c in zip(NODES, carbons)]
        without = ["%s:%d" % (addr, c.line_port) for (addr, _), c in zip(NODES, carbons)]
        rings["inst"] = scenario(results, "instances", workdir, carbons, "inst", with_inst)
        rings["noinst"] = scenario(results, "no instances", workdir, carbons, "noinst", without)
        rings["down"] = scenario(results, "node down at start", workdir, carbons, "down",
                                 with_inst, down=2)
        check_every_file(results, carbons, rings)
        if results.failed:
            for c in carbons:
                print(c.logs())
    except Exception as e:  # a crash of the harness is a failure, not a skip
        import traceback
        traceback.print_exc()
        results.check("harness ran without error", False, repr(e))
    finally:
        for c in carbons:
            c.stop()
        remove_workdir(workdir)
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
