#!/usr/bin/env python3
"""What write-through costs: one switchyard with two graphite sinks fed the
same flush, `direct` (no spool) and `always` (spool.mode = "always": the
flush is appended to the spool and reaches the plugin only through
replay), each writing to its own tests/bench/sumsink.  KEYS counter keys
(two values each: .rate and .count) are sent once over UDP; after the
flush, each sink's arrival burst (sumsink's first and last read) is
reported, and the ratio of the two, from the same run.  Also the spool's
bytes a value and the daemon's CPU.

    /usr/bin/python3 tests/bench/spool_always.py [--keys 500000] [--flush-ms 10000]

A measurement, not a test: nothing is asserted.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from lib.netutil import LOOPBACK, free_port, free_port_pair, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.sumsink import SumSink, bench_tool  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(http, name):
    body = urllib.request.urlopen("http://%s:%d/metrics" % (LOOPBACK, http), timeout=5).read()
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=500000)
    ap.add_argument("--flush-ms", type=int, default=10000)
    a = ap.parse_args()
    work = make_workdir("spool_always")
    direct, always = SumSink(work, "sum_direct"), SumSink(work, "sum_always")
    udp, http = free_port_pair(), free_port("tcp")
    cfg = os.path.join(work, "sy.lua")
    with open(cfg, "w") as f:
        f.write("""return {
  listen = { "udp://%(lo)s:%(udp)d" },
  flushInterval = %(fl)d, flush_counts = true, deleteCounters = true,
  httpAddress = "%(lo)s:%(http)d",
  graphite = { legacyNamespace = false, globalPrefix = "stats" },
  sinks = {
    direct = { plugin = "graphite", host = "%(lo)s", port = %(pd)d },
    always = { plugin = "graphite", host = "%(lo)s", port = %(pa)d,
               spool = { dir = "%(dir)s", mode = "always", fsync = "interval" } },
  },
}
""" % {"lo": LOOPBACK, "udp": udp, "fl": a.flush_ms, "http": http, "pd": direct.port,
       "pa": always.port, "dir": os.path.join(work, "spool")})
    sy = Process("switchyard", [switchyard_binary(), "-c", cfg], work).start()
    out = {}
    try:
        if not wait_for_port(http, 15, alive=sy.alive):
            raise SystemExit("switchyard did not start:\n" + sy.logs())
        gen = subprocess.run([bench_tool("loadgen"), "--udp", "%s:%d" % (LOOPBACK, udp),
                              "--keys", str(a.keys), "--count", str(a.keys), "--per", "20",
                              "--rate", "200000", "--key-prefix", "wt"],
                             stdout=subprocess.PIPE, timeout=120, check=True)
        sent = json.loads(gen.stdout.decode().strip().splitlines()[-1])["sent_metrics"]
        cpu0 = cpu_s(sy.pid)
        want = a.keys  # .count lines of group wt

        def arrived(sink):
            g = sink.stats()["groups"].get("wt")
            return g and g["counter_lines"] >= want
        wait_until(lambda: arrived(direct) and arrived(always), 6 * a.flush_ms / 1000 + 60,
                   step=0.2)
        cpu1 = cpu_s(sy.pid)
        for name, sink in (("direct", direct), ("always", always)):
            st = sink.stats()
            big = max(st["bursts"], key=lambda b: b[4])
            out[name] = {"counter_lines": st["groups"]["wt"]["counter_lines"],
                         "burst_s": round(big[1] - big[0], 3), "burst_end": big[1],
                         "burst_start": big[0], "lines": big[4]}
        spooled = metric(http, 'switchyard_spool_spooled_total{sink="always",plugin="graphite"}')
        out["sent_metrics"] = sent
        out["spooled_values"] = spooled
        out["always_vs_direct_burst"] = round(out["always"]["burst_s"] / out["direct"]["burst_s"], 2)
        out["always_end_after_direct_end_s"] = round(out["always"]["burst_end"] -
                                                     out["direct"]["burst_end"], 3)
        out["values_per_s_through_replay"] = round(out["always"]["lines"] /
                                                   out["always"]["burst_s"])
        out["daemon_cpu_s_after_send"] = round(cpu1 - cpu0, 2)
        print(json.dumps(out, indent=1))
    finally:
        sy.stop()
        direct.stop()
        always.stop()
        remove_workdir(work)


if __name__ == "__main__":
    main()
