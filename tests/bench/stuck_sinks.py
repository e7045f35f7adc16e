#!/usr/bin/env python3
"""What sinks whose carbon never reads cost the output (issue 24).

Three graphite sinks, each to a listener that accepts and never reads
(256 KiB queues), and eight flushes, one a second, of KEYS timer keys (one
sample each, 14 values a key).  Prints each sink's dropped values, the
daemon's exit code and how many times the log says the rest of a flush was
not made.  With --callgrind OUT the daemon runs under valgrind's callgrind,
for instruction counts:

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
from lib.proc import make_workdir, remove_workdir  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("keys", type=int, help="timer keys a flush")
    ap.add_argument("--callgrind", metavar="OUT", help="run the daemon under callgrind, output to OUT")
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
    try:
        for i in range(3):
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
        start = time.monotonic()
        for r in range(8):
            d.send(["tf.k%d:%d|ms" % (i, r) for i in range(args.keys)])
            time.sleep(max(0.0, start + (r + 1) * 1.0 - time.monotonic()))
        time.sleep(3)
        print("dropped:", [d.metric('switchyard_sink_dropped_total{sink="stuck%d",plugin="graphite"}'
                                    % i) for i in range(3)])
        print("exit code:", d.proc.stop(300))
        print("'not made' log lines:", d.proc.logs(1 << 22).count("the rest of the flush is not made"))
    finally:
        for c in conns:
            c.close()
        for ls in listeners:
            ls.close()
        remove_workdir(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
