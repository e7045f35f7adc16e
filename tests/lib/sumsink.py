"""Talking to tests/bench/sumsink, the Graphite sink that adds up what
arrives (bench.py and the reload test)."""
import json
import os
import re
import socket
import subprocess

from . import REPO_DIR
from .netutil import LOOPBACK
from .proc import Process, wait_until

BENCH_DIR = os.path.join(REPO_DIR, "build", "bench")


def bench_tool(name):
    """build/bench/NAME, built with tests/bench/Makefile when missing."""
    path = os.path.join(BENCH_DIR, name)
    if not os.access(path, os.X_OK):
        subprocess.run(["make", "-s", "-f", "tests/bench/Makefile"], cwd=REPO_DIR, check=True,
                       stdout=subprocess.DEVNULL)
    return path


def sumsink_stats(port, timeout=10):
    """The sink's totals: a connection whose first line is `#stats` gets
    them as one JSON object and is closed."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(b"#stats\n")
        data = b""
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


class SumSink:
    """A sumsink of the test's own, on a free port (port None when it did
    not start)."""

    def __init__(self, workdir, name="sumsink"):
        self.proc = Process(name, [bench_tool("sumsink"), "--port", "0", "--gap-ms", "200"],
                            workdir).start()
        m = wait_until(lambda: re.search(r'"listening":\s*(\d+)', self.stdout()), 10)
        self.port = int(m.group(1)) if m else None

    def stdout(self):
        try:
            with open(self.proc.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stats(self):
        return sumsink_stats(self.port)

    def total(self, group, what="counters"):
        """The sum of group's `.count` values of counters or timers."""
        g = self.stats()["groups"].get(group)
        return int(g[what]) if g else 0

    def stop(self):
        self.proc.stop()
