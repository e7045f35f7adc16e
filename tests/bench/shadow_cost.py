#!/usr/bin/env python3
"""What a shadow reload costs at many keys (README, Shadow reload).

Starts switchyard with the benchmark's 20 rules (rules.lua), fills its
table with SY_SHADOW_KEYS keys (default 1,000,000) over TCP, then asks for
a shadow reload of a config that adds one rule renaming half of them, while
a sender keeps sending a known counter over TCP; prints the report's cost
line, the engine's longest admin pause, the daemon's RSS before and after,
and whether the counter sent meanwhile arrived exact.

Usage: /usr/bin/python3 tests/bench/shadow_cost.py
"""
import os
import re
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from lib.netutil import LOOPBACK  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from test_badinput import Daemon, tcp_send  # noqa: E402

N = int(os.environ.get("SY_SHADOW_KEYS", "1000000"))
RULES = os.path.join(HERE, "rules.lua")


def main():
    workdir = make_workdir("sy-shadow-cost-")
    body = '  routes = dofile("%s"),\n' % RULES
    d = Daemon(workdir, "sy-shadow-cost", {"flushInterval": 10000, "ringSize": 64 << 20}, mgmt=True,
               lua_body=body.replace('"carbon"', '"c"'))
    rules = open(RULES).read().replace('"carbon"', '"c"')
    rules_path = os.path.join(workdir, "rules.lua")
    with open(rules_path, "w") as f:
        f.write(rules)
    d.write_config(d.render("", '  routes = dofile("%s"),\n' % rules_path))
    new_rules = rules.replace('route.default()', 'route.prefix "g1." :addprefix "re." :to "c",\n  route.default()')
    new_rules_path = os.path.join(workdir, "new_rules.lua")
    with open(new_rules_path, "w") as f:
        f.write(new_rules)
    new_path = os.path.join(workdir, "new.lua")
    with open(new_path, "w") as f:
        f.write(d.render("", '  routes = dofile("%s"),\n' % new_rules_path))
    try:
        if not d.start():
            print(d.logs())
            return 1
        t0 = time.monotonic()
        step = 200000
        for base in range(0, N, step):
            tcp_send(d.port, b"".join(b"g%d.k%07d:1|c\n" % (i % 2, i) for i in range(base, min(N, base + step))),
                     timeout=300)
        wait_until(lambda: (d.metric("switchyard_keys") or 0) >= N, 120, step=0.5)
        print("%d keys in %.1f s; RSS %.1f MiB" % (d.metric("switchyard_keys"), time.monotonic() - t0,
                                                 d.status_kb("VmRSS") / 1024))
        sent = [0]
        done = threading.Event()

        def sender():
            with socket.create_connection((LOOPBACK, d.port)) as s:
                while not done.is_set():
                    s.sendall(b"live.k:1|c\n" * 100)
                    sent[0] += 100
                    time.sleep(0.01)

        th = threading.Thread(target=sender)
        th.start()
        t1 = time.monotonic()
        with socket.create_connection((LOOPBACK, d.mgmt_port), timeout=400) as s:
            s.sendall(("reload --shadow %s\n" % new_path).encode())
            data = b""
            while b"END\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        wall = time.monotonic() - t1
        done.set()
        th.join()
        report = data.decode()
        print(re.sub(r"(?m)^  e\.g\..*\n", "", report))
        print("asked and answered in %.1f s; RSS %.1f MiB (VmHWM %.1f MiB)"
              % (wall, d.status_kb("VmRSS") / 1024, d.status_kb("VmHWM") / 1024))
        m = d.http_metrics()
        print("engine longest admin pause: %.2f ms wall, %.2f ms CPU" % (
            m.get('switchyard_engine_pause_max_seconds{cause="admin"}', 0) * 1e3,
            m.get('switchyard_engine_pause_cpu_max_seconds{cause="admin"}', 0) * 1e3))
        ok = wait_until(lambda: d.counter("live.k") == sent[0], 30, step=0.5)
        print("live.k: %d sent during the shadow, %d flushed: %s" % (sent[0], d.counter("live.k"),
                                                                    "exact" if ok else "NOT exact"))
        return 0
    finally:
        d.stop()
        remove_workdir(workdir)


if __name__ == "__main__":
    sys.exit(main())
