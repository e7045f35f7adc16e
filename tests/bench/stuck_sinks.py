#!/usr/bin/env python3
"""What sinks whose carbon never reads cost the output (issue 24).

Three (--stuck N) graphite sinks, each to a listener that accepts and never reads
(256 KiB queues), and eight flushes, one a second, of KEYS timer keys (one
sample each, 14 values a key).  Prints each sink's dropped values, the
daemon's exit code and how many times the log says the rest of a flush was
not made.  With --fast, a fourth graphite sink to tests/bench/sumsink (the
same queue) beside them: how many of the eight flushes' timer counts it
got, and what it dropped (test_pacing's `stuck and fast` at the full rate:
57,143 keys are 800,000 lines a flush).  With --callgrind OUT the daemon
runs under valgrind's callgrind, for instruction counts:

    /usr/bin/python3 tests/bench/stuck_sinks.py 20000 --callgrind /tmp/stuck.out
    callgrind_annotate --inclusive=yes /tmp/stuck.out | grep -E 'TOTALS|flusher|graphite_write'

The daemon is $SY_BIN or build/switchyard.  Not a test: nothing is asserted.
"""
import argparse
import os
import socket
import stat
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import test_pacing  # noqa: E402
from lib.netutil import LOOPBACK  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.sumsink import SumSink  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("keys", type=int, help="timer keys a flush")
    ap.add_argument("--callgrind", metavar="OUT", help="run the daemon under callgrind, output to OUT")
    ap.add_argument("--fast", action="store_true", help="a fast sink (sumsink) beside the stuck ones")
    ap.add_argument("--stuck", type=int, default=3, help="stuck sinks (default 3)")
    args = ap.parse_args()
    workdir = make_workdir("stuck-sinks-")
    if args.callgrind:
        wrapper = os.path.join(workdir, "switchyard-callgrind")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s %s \"$@\"\n"
                    % (os.path.abspath(args.callgrind), switchyard_binary()))
        os.chmod(wrapper, stat.S_IRWXU)
        os.environ["SY_BIN"] = wrapper
    listeners, conns, sinks = [], [], {}
    fast = SumSink(workdir) if args.fast else None
    if fast:
        sinks["fast"] = {"plugin": "graphite", "host": LOOPBACK, "port": fast.port,
                         "maxQueueBytes": test_pacing.QUEUE}
    try:
        for i in range(args.stuck):
            ls = socket.socket()
            ls.bind((LOOPBACK, 0))
            ls.listen(4)
            listeners.append(ls)
            sinks["stuck%d" % i] = {"plugin": "graphite", "host": LOOPBACK,
                                    "port": ls.getsockname()[1], "maxQueueBytes": test_pacing.QUEUE}
        d = test_pacing.Daemon(workdir, "sy-stuck", sinks)
        if not d.start():
            print(d.proc.logs())
            return 1
        for ls in listeners:
            c, _ = ls.accept()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conns.append(c)
        batches = [["tf.k%d:%d|ms" % (i, r) for i in range(args.keys)] for r in range(8)]
        start = time.monotonic()
        for r in range(8):
            d.send(batches[r])
            time.sleep(max(0.0, start + (r + 1) * 1.0 - time.monotonic()))
        time.sleep(3)
        if fast:
            want = 8 * args.keys
            wait_until(lambda: fast.total("tf", "timers") >= want, 60, step=0.5)
            print("fast sink: %d of %d timer counts, dropped %r" % (
                fast.total("tf", "timers"), want,
                d.metric('switchyard_sink_dropped_total{sink="fast",plugin="graphite"}')))
        print("dropped:", [d.metric('switchyard_sink_dropped_total{sink="stuck%d",plugin="graphite"}'
                                    % i) for i in range(args.stuck)])
        print("exit code:", d.proc.stop(300))
        print("'not made' log lines:", d.proc.logs(1 << 22).count("the rest of the flush is not made"))
    finally:
        if fast:
            fast.stop()
        for c in conns:
            c.close()
        for ls in listeners:
            ls.close()
        remove_workdir(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
