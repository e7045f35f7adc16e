"""Real InfluxDB 1.x (Debian's influxd) and VictoriaMetrics servers for the
influxdb sink's tests, each on loopback ports picked at run time with its
data in the test's temp dir, stopped by PID.

InfluxServer writes its own config (meta, data and WAL under the temp dir,
HTTP on a free port, reporting and the monitor store off, optionally a UDP
listener) and talks to /query and /write with urllib.
"""
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request

from .netutil import LOOPBACK, free_port, wait_for_port
from .proc import Process, Restartable, wait_until

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"
VICTORIA = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"


def _http(method, url, body=None, timeout=10):
    """(status, body text); an HTTP error status is an answer too."""
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except OSError as e:
        return 0, str(e)


class InfluxServer(Restartable):
    """influxd with HTTP on 127.0.0.1:port; udp_db names the database of a
    UDP listener on udp_port (None: no UDP listener)."""

    # influxd 1.6 with a UDP listener can hang on SIGTERM; its data is the
    # test's, so it gets 2 s before SIGKILL
    stop_timeout = 2.0

    def __init__(self, workdir, name, udp_db=None, udp_precision="", write_timeout=None):
        super().__init__(name, workdir)
        self.port = free_port("tcp")
        self.rpc_port = free_port("tcp")
        self.udp_port = free_port("udp") if udp_db else None
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.config = os.path.join(self.dir, "influxdb.conf")
        self.udp_db, self.udp_precision = udp_db, udp_precision
        self.write_config(write_timeout)

    def write_config(self, write_timeout=None):
        """The config file; write_timeout (e.g. "1ns") makes every write
        answer HTTP 500 {"error":"timeout"}, a real server error."""
        d = self.dir
        udp_db, udp_precision = self.udp_db, self.udp_precision
        text = """reporting-enabled = false
bind-address = "%(lo)s:%(rpc)d"
[meta]
  dir = "%(d)s/meta"
  logging-enabled = false
[data]
  dir = "%(d)s/data"
  wal-dir = "%(d)s/wal"
  query-log-enabled = false
  trace-logging-enabled = false
  wal-fsync-delay = "0s"
[coordinator]
  write-timeout = "%(wt)s"
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[retention]
  enabled = false
[http]
  enabled = true
  bind-address = "%(lo)s:%(port)d"
  log-enabled = false
  pprof-enabled = false
[logging]
  level = "warn"
""" % {"lo": LOOPBACK, "rpc": self.rpc_port, "d": d, "port": self.port,
       "wt": write_timeout or "10s"}
        if udp_db:
            text += """[[udp]]
  enabled = true
  bind-address = "%s:%d"
  database = "%s"
  batch-size = 1
  batch-timeout = "10ms"
  precision = "%s"
""" % (LOOPBACK, self.udp_port, udp_db, udp_precision)
        with open(self.config, "w") as f:
            f.write(text)

    def start(self, timeout=20.0):
        env = dict(os.environ, HOME=self.dir)
        p = self.spawn([INFLUXD, "-config", self.config], cwd=self.dir, env=env)
        if not wait_for_port(self.port, timeout, alive=p.alive):
            return False
        return bool(wait_until(lambda: _http("GET", self.url("/ping"))[0] == 204, timeout))

    def url(self, path):
        return "http://%s:%d%s" % (LOOPBACK, self.port, path)

    def query(self, q, db=None, epoch="s"):
        """The JSON answer of /query (a dict), or {"error": ...}."""
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        status, body = _http("POST", self.url("/query?" + urllib.parse.urlencode(params)))
        try:
            return json.loads(body)
        except ValueError:
            return {"error": "HTTP %d: %s" % (status, body[:300])}

    def create_db(self, db):
        ans = self.query('CREATE DATABASE "%s"' % db)
        return "error" not in ans and not any("error" in r for r in ans.get("results", []))

    def points(self, db, measurement, where="", epoch="s"):
        """Every point of a measurement as a list of dicts (column -> value),
        tags included, with epoch-second times."""
        m = measurement.replace("\\", "\\\\").replace('"', '\\"')
        ans = self.query('SELECT * FROM "%s" %s' % (m, where), db=db, epoch=epoch)
        out = []
        for res in ans.get("results", []):
            for s in res.get("series", []) or []:
                cols = s["columns"]
                for row in s["values"]:
                    out.append(dict(zip(cols, row)))
        return out

    def measurements(self, db):
        ans = self.query("SHOW MEASUREMENTS", db=db)
        names = []
        for res in ans.get("results", []):
            for s in res.get("series", []) or []:
                names += [v[0] for v in s["values"]]
        return names

    def write(self, db, lines, precision="s"):
        return _http("POST", self.url("/write?db=%s&precision=%s" % (db, precision)),
                     lines.encode())

    def restart(self, write_timeout=None):
        """SIGTERM, then start again on the same ports with a new config."""
        self.proc.stop()
        self.write_config(write_timeout)
        return self.start()



class VictoriaMetrics:
    """victoria-metrics with its HTTP API (and /write) on 127.0.0.1:port."""

    def __init__(self, workdir, name):
        self.workdir = workdir
        self.name = name
        self.port = free_port("tcp")
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None

    def start(self, timeout=20.0):
        self.proc = Process(self.name, [VICTORIA, "-storageDataPath", self.dir,
                                        "-httpListenAddr", "%s:%d" % (LOOPBACK, self.port),
                                        "-retentionPeriod", "100y", "-loggerLevel", "WARN",
                                        "-search.disableCache",
                                        "-search.latencyOffset", "0s"],
                            self.workdir, cwd=self.dir).start()
        if not wait_for_port(self.port, timeout, alive=self.proc.alive):
            return False
        return bool(wait_until(lambda: _http("GET", self.url("/health"))[0] == 200, timeout))

    def url(self, path):
        return "http://%s:%d%s" % (LOOPBACK, self.port, path)

    def export(self, match):
        """Every stored series matching the selector: a list of
        {"metric": {...labels}, "values": [...], "timestamps": [...]}."""
        _http("GET", self.url("/internal/force_flush"))
        status, body = _http("GET", self.url("/api/v1/export?" +
                                             urllib.parse.urlencode({"match[]": match})))
        out = []
        for line in body.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self):
        if self.proc:
            self.proc.stop()

    def logs(self, limit=6000):
        return self.proc.logs(limit) if self.proc else "(%s never started)" % self.name
