#!/usr/bin/env python3
"""Where switchyard's instructions go: one benchmark load, run against
switchyard under valgrind's callgrind, with the top functions and the
instructions per metric.

    /usr/bin/python3 tests/bench/profile.py [udp20|udp1|tcp] [--metrics N] [--rules]
                                            [--mix counters|typical|timers|hot|highcard]

callgrind counts user-space instructions only, so its figures do not move
with the machine's load (this machine's `perf stat -e instructions` is not
supported); what the kernel does for recvmmsg/read is not in them.  The load
is paced (valgrind runs the program some 50 times slower and one thread at a
time), with the traffic of one of the benchmark's families (--mix, default
counters: 10,000 counter keys); the callgrind output is kept in
build/bench/ for callgrind_annotate or kcachegrind.
"""
import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

LOADS = {
    # proto, metrics per datagram, metrics/s under valgrind
    "udp20": ("udp", 20, 100000),
    "udp1": ("udp", 1, 20000),
    "tcp": ("tcp", 20, 200000),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("load", nargs="?", default="udp20", choices=sorted(LOADS))
    ap.add_argument("--metrics", type=int, default=1000000, help="metrics to send (default 1M)")
    ap.add_argument("--rules", action="store_true", help="with the 20-rule routing script")
    ap.add_argument("--mix", default="counters", choices=sorted(bench.FAMILIES),
                    help="the traffic of a benchmark family (default counters)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--cache-sim", action="store_true",
                    help="simulate the caches too (--cache-sim=yes): data reads and their first-level "
                         "and last-level misses per metric in the engine (sy_agg_feed, inclusive)")
    args = ap.parse_args()
    proto, per, rate = LOADS[args.load]
    if args.load == "udp1" and args.metrics == 1000000:
        args.metrics = 200000

    stamp = time.strftime("%Y%m%d-%H%M%S")
    fam = bench.FAMILIES[args.mix]
    traffic = ["--keys", fam["keys"] or 10000, "--mix", fam["mix"]]
    if fam["sampled"]:
        traffic += ["--sampled", fam["sampled"]]
    if fam["tagged"]:
        traffic += ["--tagged", fam["tagged"]]
    out_file = os.path.join(bench.TOOLS_DIR, "callgrind-%s%s%s-%s.out"
                            % (args.load, "" if args.mix == "counters" else "-" + args.mix,
                               "-rules" if args.rules else "", stamp))
    workdir = bench.make_workdir("switchyard-profile-")
    reg = bench.Registry()
    try:
        bench.Server.binary, _ = bench.snapshot_switchyard(workdir)
        bench.Server.wrapper = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_file]
        if args.cache_sim:
            bench.Server.wrapper.append("--cache-sim=yes")
        server = bench.Server("switchyard+rules" if args.rules else "switchyard", proto, 2000, reg,
                              workdir, "profile")
        server.start()
        gen = bench.run_loadgen(server.target() + traffic + ["--per", per, "--rate", rate,
                                                            "--count", args.metrics], args.metrics / rate + 120)
        bench.wait_idle(server.pid)
        st = bench.wait_flushed(server.sink, "bench", time.monotonic(), 2.0, expect=gen["sink_units"])
        received = bench.group_total(st, "bench")
        # callgrind writes its counts at exit; a 1M-key table's last flush and
        # freeing take minutes under valgrind (more with --cache-sim)
        server.proc.stop(timeout=900)
        server.stop()
    except bench.ComponentError as e:
        print("profile: %s" % e)
        return 1
    finally:
        reg.stop_all()
        bench.remove_workdir(workdir)

    print("sent %d metrics (%d datagrams/writes) at %d/s, %s traffic; the sink summed %d of %d units"
          % (gen["sent_metrics"], gen["sent_datagrams"], rate, args.mix, received, gen["sink_units"]))
    r = subprocess.run(["callgrind_annotate", out_file], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, universal_newlines=True)
    ri = subprocess.run(["callgrind_annotate", "--inclusive=yes", out_file], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL, universal_newlines=True)
    total = None
    m = re.search(r"^([\d,]+) \(100.0%\).*PROGRAM TOTALS", r.stdout, re.M)
    if m:
        total = int(m.group(1).replace(",", ""))
    n = gen["sent_metrics"]
    if total:
        print("instructions: %s in all, %.0f per metric (flushes and start-up included)"
              % ("{:,}".format(total), total / n))

    def top(text, title):
        print("\n%s (instructions per metric, share):" % title)
        rows, seen = 0, set()
        for line in text.splitlines():
            mm = re.match(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(\S.*)$", line)
            if not mm or "PROGRAM TOTALS" in line:
                continue
            ir = int(mm.group(1).replace(",", ""))
            fn = re.sub(r" \[[^]]*\]$", "", mm.group(3))
            if args.cache_sim:
                fn = fn.split()[-1]  # after the other events' columns
            fn = fn.replace(bench.REPO_DIR + "/", "")
            if fn in seen:
                continue  # callgrind lists a function once per object it was seen in
            seen.add(fn)
            print("  %8.1f  %5.1f%%  %s" % (ir / n, float(mm.group(2)), fn))
            rows += 1
            if rows >= args.top:
                break

    if args.cache_sim:
        cache_lines(out_file, n)

    top(r.stdout, "exclusive")
    top(ri.stdout, "inclusive")
    print("\ncallgrind output: %s" % os.path.relpath(out_file, bench.REPO_DIR))
    return 0


def cache_lines(out_file, n):
    """The simulated caches' figures per metric: the program's, and the
    engine's (sy_agg_feed inclusive: parsing, lookup, routing and
    aggregation; the flushes run on the output thread)."""
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--show=Ir,Dr,Dw,D1mr,D1mw,DLmr,DLmw", "--show-percs=no",
                        out_file], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       universal_newlines=True)
    names = ["Ir", "Dr", "Dw", "D1mr", "D1mw", "DLmr", "DLmw"]
    for line in r.stdout.splitlines():
        if "PROGRAM TOTALS" in line:
            what = "program"
        elif re.search(r"\bsy_agg_feed\b", line):
            what = "engine (sy_agg_feed, inclusive)"
        else:
            continue
        nums = [int(c.replace(",", "")) for c in re.findall(r"(?<![\w.(])([\d][\d,]*)(?= |$)", line)][:7]
        if len(nums) < 7:
            continue
        print("%s per metric: %s" % (what, ", ".join("%s %.2f" % (k, v / n) for k, v in zip(names, nums))))
        if what != "program":
            break


if __name__ == "__main__":
    sys.exit(main())
