#!/usr/bin/env python3
"""How long a daemon with a large spool takes to start: a spool of about
SIZE_MIB is made once (a real one: switchyard spools a flush of 1M counter
keys while its graphite sink has nothing to connect to, and its segments
are copied under new numbers until the size is reached), then the daemon
is started on it ROUNDS times with the sink still down.  Reported: from
the daemon's own log, the milliseconds from "starting" to "listening on
udp://" (taking traffic), and the wall time until its admin port answers;
and, when the log says so, how long the records took to count in the
background.

    /usr/bin/python3 tests/bench/spool_startup.py [--size-mib 1024] [--rounds 3]

SY_BIN picks the daemon (build/switchyard by default): run it once per
build to compare.  A measurement, not a test: nothing is asserted.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from lib.netutil import LOOPBACK, free_port, free_port_pair, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.sumsink import bench_tool  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402


def config(work, udp, http, spool):
    path = os.path.join(work, "sy.lua")
    with open(path, "w") as f:
        f.write("""return {
  listen = { "udp://%(lo)s:%(udp)d" }, flushInterval = 1000, deleteCounters = true,
  httpAddress = "%(lo)s:%(http)d",
  sinks = { carbon = { plugin = "graphite", host = "%(lo)s", port = %(dead)d,
                       spool = { dir = "%(spool)s", maxBytes = "8GiB", fsync = "never" } } },
}
""" % {"lo": LOOPBACK, "udp": udp, "http": http, "dead": free_port("tcp"), "spool": spool})
    return path


def stamp(line):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line)
    return datetime.datetime.fromisoformat(m.group(1)).timestamp() if m else None


def make_spool(work, spool, size):
    udp, http = free_port_pair(), free_port("tcp")
    sy = Process("maker", [switchyard_binary(), "-c", config(work, udp, http, spool)], work).start()
    try:
        wait_for_port(http, 15, alive=sy.alive)
        subprocess.run([bench_tool("loadgen"), "--udp", "%s:%d" % (LOOPBACK, udp),
                        "--keys", "1000000", "--count", "1000000", "--per", "20",
                        "--rate", "300000"], stdout=subprocess.DEVNULL, timeout=120, check=True)
        time.sleep(3)
    finally:
        sy.stop()
    d = os.path.join(spool, "carbon")
    segs = sorted(f for f in os.listdir(d) if f.endswith(".seg"))
    full = [f for f in segs if os.path.getsize(os.path.join(d, f)) > 0]
    total = sum(os.path.getsize(os.path.join(d, f)) for f in segs)
    seq = int(segs[-1][:-4]) + 1
    while total < size:
        for f in full:
            if total >= size:
                break
            shutil.copyfile(os.path.join(d, f), os.path.join(d, "%020d.seg" % seq))
            total += os.path.getsize(os.path.join(d, f))
            seq += 1
    return total, len(os.listdir(d))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    work = make_workdir("spool_startup")
    spool = os.path.join(work, "spool")
    out = {"binary": switchyard_binary(), "rounds": []}
    try:
        out["spool_bytes"], out["files"] = make_spool(work, spool, a.size_mib << 20)
        out["log"] = []
        for r in range(a.rounds):
            subprocess.run(["cat"] + [os.path.join(spool, "carbon", f) for f in
                                      os.listdir(os.path.join(spool, "carbon"))],
                           stdout=subprocess.DEVNULL)  # the same page cache for every round
            udp, http = free_port_pair(), free_port("tcp")
            t0 = time.monotonic()
            sy = Process("sy%d" % r, [switchyard_binary(), "-c", config(work, udp, http, spool)],
                         work).start()
            ok = wait_for_port(http, 120, alive=sy.alive)  # polled every 50 ms
            admin_s = time.monotonic() - t0
            if "in the background" in sy.logs(100000):
                wait_until(lambda: "to replay (counted in" in sy.logs(100000) or not sy.alive(), 120)
            sy.stop()
            logs = sy.logs(100000).splitlines()
            start = next((stamp(l) for l in logs if "starting with" in l), None)
            listen = next((stamp(l) for l in logs if "listening on udp://" in l), None)
            counted = next((l for l in logs if "to replay (counted in" in l), "")
            if r == 0:
                out["log"] = [l for l in logs if "spool" in l]
            m = re.search(r"counted in (\d+) ms", counted)
            out["rounds"].append({
                "start_to_listening_ms": round((listen - start) * 1000) if start and listen else None,
                "spawn_to_admin_port_ms": round(admin_s * 1000) if ok else None,
                "records_counted_in_ms": int(m.group(1)) if m else None})
        print(json.dumps(out, indent=1))
    finally:
        remove_workdir(work)


if __name__ == "__main__":
    main()
