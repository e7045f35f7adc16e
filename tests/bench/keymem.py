#!/usr/bin/env python3
"""Memory per idle counter key, by key length.

For each name pattern, two daemons get the same number of lines over one
TCP connection: one as that many distinct keys, one as a single key (so the
ring pages and the read buffers the lines touched are the same in both).
After a few 1 s flushes to a console sink writing to /dev/null, the
difference in RSS over the number of keys is the cost of an idle key: its
table entry, its name and hash slot, and whatever the flushes of that many
keys left in the allocator.

Usage:  tests/bench/keymem.py [KEYS]       ($SY_BIN, default build/switchyard)
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lib.netutil import LOOPBACK, free_port, wait_for_port  # noqa: E402

BIN = os.environ.get("SY_BIN") or os.path.join(os.path.dirname(__file__), "../../build/switchyard")
PATTERNS = [b"k.%d", b"service.api.endpoint.requests.%d", b"team.service.host-%d.http.requests.by_route.count"]


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def run(workdir, pattern, n, distinct):
    port = free_port("tcp")
    cfg = os.path.join(workdir, "c%d.lua" % port)
    with open(cfg, "w") as f:
        f.write('return { listen = { "tcp://%s:%d" }, flushInterval = 1000, '
                'graphite = { legacyNamespace = false }, '
                'sinks = { c = { plugin = "console", path = "/dev/null" } } }' % (LOOPBACK, port))
    p = subprocess.Popen([BIN, "-c", cfg], stderr=subprocess.DEVNULL)
    try:
        if not wait_for_port(port, 10):
            raise SystemExit("switchyard did not start")
        r0 = rss_kb(p.pid)
        with socket.create_connection((LOOPBACK, port)) as s:
            for i in range(0, n, 100000):
                s.sendall(b"".join((pattern % (j if distinct else 0)) + b":1|c\n"
                                   for j in range(i, min(n, i + 100000))))
        time.sleep(4.5)   # read, flushed with values, then idle for a few flushes
        return r0, rss_kb(p.pid), rss_kb(p.pid, "VmHWM")
    finally:
        p.terminate()
        p.wait()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    with tempfile.TemporaryDirectory() as workdir:
        print("%d counter keys, idle after their first flush; console sink to /dev/null" % n)
        for pat in PATTERNS:
            name_len = len(pat % (n // 2))
            _, one, _ = run(workdir, pat, n, False)
            _, many, hwm = run(workdir, pat, n, True)
            print("  names of %2d bytes (%s): %.0f bytes per key (RSS %.1f MiB vs %.1f MiB for one "
                  "key, peak %.1f MiB)" % (name_len, (pat % 7).decode(), (many - one) * 1024.0 / n,
                                           many / 1024, one / 1024, hwm / 1024))


if __name__ == "__main__":
    main()
