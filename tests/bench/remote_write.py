#!/usr/bin/env python3
"""The remote-write benchmark: StatsD counters in, VictoriaMetrics out.

    tests/bench/remote_write.py [--duration S] [--rate R] [--keys K] [--rounds N]

switchyard (build/switchyard, or $SY_BIN) runs one remote_write sink
(passthrough = true, flushInterval 1 s) to a real VictoriaMetrics (Debian's
victoria-metrics) on loopback ports chosen at run time; tests/bench/loadgen
sends K distinct counter keys over TCP at R metrics per second (0: flat
out) for S seconds.  What counts as accepted is what VictoriaMetrics
answers for sum(bench_*_total) once it stops growing, never what switchyard
says.  Per round:

  sent/s       the generator's rate
  accepted/s   metrics in VictoriaMetrics / the send time
  loss %       1 - accepted / sent
  CPU s/M      switchyard's utime+stime from the start of the send until
               VictoriaMetrics has the total, per million accepted
  catch-up s   from the end of the send until VictoriaMetrics has it all
  series/s     samples pushed per second (every series, every flush)

Figures only: nothing is asserted (make bench prints them).
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib import REPO_DIR  # noqa: E402
from lib.netutil import LOOPBACK, free_port, free_port_pair, http_get, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir  # noqa: E402
from lib.prom import VICTORIA_METRICS, VictoriaMetricsServer  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

LOADGEN = os.path.join(REPO_DIR, "build", "bench", "loadgen")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def vm_total(vm):
    q = urllib.parse.quote('sum({__name__=~"bench_k.*_total"})')
    status, _, body = http_get(vm.port, "/api/v1/query?query=" + q)
    try:
        r = json.loads(body)["data"]["result"]
        return float(r[0]["value"][1]) if r else 0.0
    except (ValueError, KeyError, IndexError):
        return None


def one_round(args, workdir, n):
    vm = VictoriaMetricsServer(workdir, "vm%d" % n)
    if not vm.start():
        print("VictoriaMetrics did not start:\n" + vm.logs())
        return None
    port = free_port_pair()
    cfg = os.path.join(workdir, "rw%d.lua" % n)
    with open(cfg, "w") as f:
        f.write("""return {
  listen = { "tcp://%s:%d" }, flushInterval = 1000,
  sinks = { rw = { plugin = "remote_write", url = "http://%s:%d/api/v1/write",
                   passthrough = true } },
}
""" % (LOOPBACK, port, LOOPBACK, vm.port))
    sy = Process("switchyard%d" % n, [switchyard_binary(), "-c", cfg], workdir, cwd=REPO_DIR).start()
    try:
        if not wait_for_port(port, 10, alive=sy.alive):
            print("switchyard did not start:\n" + sy.logs())
            return None
        c0 = cpu_s(sy.pid)
        gen = subprocess.run([LOADGEN, "--tcp", "%s:%d" % (LOOPBACK, port), "--keys", str(args.keys),
                              "--mix", "c=1", "--rate", str(args.rate), "--duration",
                              str(args.duration)], stdout=subprocess.PIPE, timeout=args.duration + 60)
        t_end = time.monotonic()
        g = json.loads(gen.stdout.decode().strip().splitlines()[-1])
        sent = g["sent_metrics"]
        total, last_change, prev = 0.0, time.monotonic(), None
        while time.monotonic() - last_change < 5 and time.monotonic() - t_end < 120:
            total = vm_total(vm) or 0.0
            if total != prev:
                prev, last_change = total, time.monotonic()
                if total >= sent:
                    break
            time.sleep(0.2)
        catch_up = last_change - t_end
        c1 = cpu_s(sy.pid)
        return {"sent_per_s": sent / g["seconds"], "accepted_per_s": total / g["seconds"],
                "loss_pct": 100.0 * (1 - total / sent) if sent else 0.0,
                "cpu_s_per_m": (c1 - c0) / (total / 1e6) if total else None,
                "catch_up_s": max(0.0, catch_up), "series_per_s": args.keys}
    finally:
        sy.stop()
        vm.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--rate", type=int, default=0)
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not os.access(VICTORIA_METRICS, os.X_OK):
        print("remote_write bench skipped: %s is missing (apt-get install victoria-metrics)"
              % VICTORIA_METRICS)
        return 0
    workdir = make_workdir("sy-bench-rw-")
    rows = []
    try:
        for n in range(args.rounds):
            r = one_round(args, workdir, n)
            if r is None:
                return 1
            rows.append(r)
    finally:
        remove_workdir(workdir)
    print("\nremote_write to VictoriaMetrics: %d keys, TCP, %s, %g s x %d rounds"
          % (args.keys, "flat out" if not args.rate else "%d/s" % args.rate, args.duration,
             args.rounds))
    cols = ("sent_per_s", "accepted_per_s", "loss_pct", "cpu_s_per_m", "catch_up_s", "series_per_s")
    print("  " + "  ".join("%14s" % c for c in cols))
    for r in rows:
        print("  " + "  ".join("%14.3f" % r[c] if isinstance(r[c], float) else "%14s" % r[c]
                               for c in cols))
    print(json.dumps({"remote_write": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
