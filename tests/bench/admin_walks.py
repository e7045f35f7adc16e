#!/usr/bin/env python3
"""How long the console's big questions take at N counter keys (default
1,000,000): `counters` and `delcounters w.k.*`, the time to the reply's
first byte and to its end.  Before replies were written in slices, the
first byte came only after the engine had walked the whole table (with
ingest stopped meanwhile); now it comes after the first slice.

`top` (issue 20) the same way: `top 10 depth=1` and `top 10 by=bytes
depth=3` (a million distinct prefixes, cut to 10,000), each with the
engine's longest admin slice from /metrics, taken before any other walk.

Usage:  SY_BIN=build/switchyard python3 tests/bench/admin_walks.py [N] [top]
(the engine's pauses themselves: `SY_WALK_KEYS=N python3
tests/integration/test_admin.py walks`, from /metrics)."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.capture import GraphiteCapture  # noqa: E402
from lib.netutil import LOOPBACK, free_port, http_get  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.daemon import SwitchyardServer  # noqa: E402


def ask(port, cmd, end=b"END\n\n"):
    """(bytes, seconds to the first byte, seconds to the end)."""
    with socket.create_connection((LOOPBACK, port), timeout=120) as c:
        t0 = time.monotonic()
        c.sendall((cmd + "\n").encode())
        buf, first = bytearray(), None
        while not buf.endswith(end):
            chunk = c.recv(1 << 20)
            if first is None:
                first = time.monotonic() - t0
            if not chunk:
                break
            buf += chunk
        return buf, first, time.monotonic() - t0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    cap, workdir = GraphiteCapture(), make_workdir("sy-walks-bench-")
    only_top = "top" in sys.argv[2:]
    opts = {"flushInterval": 3600000, "mgmt_port": free_port(),
            "httpAddress": "%s:%d" % (LOOPBACK, free_port())}
    sy = SwitchyardServer("sy-walks-bench", opts, cap.port, workdir)
    try:
        if not sy.start():
            print(sy.logs())
            return 1
        port = opts["mgmt_port"]
        for start in range(0, n, 50000):
            with socket.create_connection((LOOPBACK, sy.tcp_port)) as s:
                s.sendall("".join("w.k.%d:%d|c\n" % (i, i + 1)
                                  for i in range(start, min(n, start + 50000))).encode())
        wait_until(lambda: b"counters: %d\n" % (n + 3) in ask(port, "keys")[0], 120, step=0.2)
        http_port = int(opts["httpAddress"].rsplit(":", 1)[1])
        for cmd in ("top 10 depth=1", "top 10 by=bytes depth=3"):
            data, first, total = ask(port, cmd)
            m = http_get(http_port, "/metrics")[2]
            pause = [l for l in m.splitlines() if not l.startswith("#") and
                     ("admin" in l and "max" in l or "walk_slices" in l)]
            print("%s at %d keys: %d bytes, all after %.3f s; %s"
                  % (cmd, n, len(data), total, "; ".join(pause)))
            print(data.decode()[:400])
        if only_top:
            return 0
        for cmd in ("counters", "delcounters w.k.*"):
            data, first, total = ask(port, cmd)
            print("%s at %d keys: %d bytes, first byte after %.3f s, all after %.3f s"
                  % (cmd, n, len(data), first, total))
    finally:
        sy.stop()
        cap.close()
        remove_workdir(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
