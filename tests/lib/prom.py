"""A real Prometheus (Debian's /usr/bin/prometheus) for the tests, and
promtool, and a parser for the text exposition format.

Prometheus runs on a loopback port with its TSDB in the test's temp dir,
scraping the given targets every second (or only receiving remote writes),
and is stopped by PID.  Values are read back through its HTTP query API.
"""
import json
import os
import shutil
import subprocess
import time
import urllib.parse

from .netutil import LOOPBACK, free_port, http_get
from .proc import Process

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool_check(text):
    """(ok, output) of `promtool check metrics` on a page."""
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return p.returncode == 0, p.stdout.decode("utf-8", "replace")


class PrometheusServer:
    def __init__(self, workdir, name="prometheus", scrape_targets=(), remote_write_receiver=False):
        self.workdir = workdir
        self.name = name
        self.port = free_port()
        self.data = os.path.join(workdir, name + ".tsdb")
        self.config = os.path.join(workdir, name + ".yml")
        self.targets = list(scrape_targets)
        self.receiver = remote_write_receiver
        self.proc = None
        self.runs = 0

    def _write_config(self):
        lines = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s",
                 "scrape_configs:"]
        if self.targets:
            lines += ["  - job_name: switchyard", "    scrape_interval: 1s",
                      "    scrape_timeout: 1s", "    static_configs:",
                      "      - targets: [%s]" % ", ".join("'%s'" % t for t in self.targets)]
        else:
            lines[-1] = "scrape_configs: []"
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=30):
        """Start (or restart, on the same port and TSDB) and wait until it
        is ready.  Returns False when it did not come up (after a second
        try: a restart right after a stop can meet the old process's port
        or TSDB lock on a loaded machine)."""
        if self._start_once(timeout):
            return True
        self.stop()
        time.sleep(1)
        return self._start_once(timeout)

    def _start_once(self, timeout):
        self._write_config()
        self.runs += 1
        argv = [PROMETHEUS, "--config.file=" + self.config, "--storage.tsdb.path=" + self.data,
                "--web.listen-address=%s:%d" % (LOOPBACK, self.port),
                "--storage.tsdb.retention.time=1d"]
        if self.receiver:
            argv.append("--web.enable-remote-write-receiver")
        self.proc = Process("%s-%d" % (self.name, self.runs), argv, self.workdir).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                return False
            try:
                status, _, _ = http_get(self.port, "/-/ready", timeout=2)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def stop(self):
        return self.proc.stop() if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def logs(self):
        return self.proc.logs() if self.proc else "(%s never started)" % self.name

    def query(self, expr):
        """The result of a PromQL query: [(labels dict, float)] for an
        instant vector, [(labels dict, [float...])] for a range."""
        try:
            status, _, body = http_get(self.port, "/api/v1/query?query=" + urllib.parse.quote(expr))
            if status != 200:
                return None
            doc = json.loads(body)
        except (OSError, ValueError):
            return None
        if doc.get("status") != "success":
            return None
        if doc["data"]["resultType"] == "matrix":
            return [(r["metric"], [float(v) for _, v in r["values"]]) for r in doc["data"]["result"]]
        return [(r["metric"], float(r["value"][1])) for r in doc["data"]["result"]]

    def raw(self, selector, window="1h"):
        """The stored samples of a selector's series, as {labels (sorted
        tuple, __name__ included): [(ms, value), ...]}, read with an
        instant query of selector[window]; None when the query failed."""
        try:
            status, _, body = http_get(self.port, "/api/v1/query?query=" +
                                       urllib.parse.quote("%s[%s]" % (selector, window)))
            if status != 200:
                return None
            doc = json.loads(body)
        except (OSError, ValueError):
            return None
        if doc.get("status") != "success":
            return None
        return {tuple(sorted(r["metric"].items())):
                [(int(round(float(t) * 1000)), float(v)) for t, v in r["values"]]
                for r in doc["data"]["result"]}

    def value(self, expr):
        """The one value of a query, or None (no result, or several)."""
        r = self.query(expr)
        return r[0][1] if r and len(r) == 1 else None

    def wait_value(self, expr, want, timeout=15):
        """Polls until the query's one value is `want` (within 1e-9); the
        last value seen."""
        deadline = time.monotonic() + timeout
        got = None
        while True:
            try:
                got = self.value(expr)
            except (OSError, ValueError):
                got = None
            if got is not None and abs(got - want) <= 1e-9 * max(1, abs(want)):
                return got
            if time.monotonic() >= deadline:
                return got
            time.sleep(0.25)


VICTORIA_METRICS = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"


class VictoriaMetricsServer(PrometheusServer):
    """A real single-node VictoriaMetrics (Debian's victoria-metrics) with
    its data in the test's temp dir; the same query API as Prometheus."""

    def __init__(self, workdir, name="victoria-metrics"):
        super().__init__(workdir, name)
        self.extra_args = []

    def _start_once(self, timeout):
        self.runs += 1
        argv = [VICTORIA_METRICS, "-storageDataPath=" + self.data,
                "-httpListenAddr=%s:%d" % (LOOPBACK, self.port),
                # answer queries with what was just written
                "-search.latencyOffset=0s", "-search.disableCache"] + self.extra_args
        self.proc = Process("%s-%d" % (self.name, self.runs), argv, self.workdir).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                return False
            try:
                status, _, body = http_get(self.port, "/health", timeout=2)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False
