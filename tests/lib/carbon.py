"""A real carbon-cache (Debian's graphite-carbon) in a temp dir.

carbon-cache reads everything from carbon.conf: storage, log and pid dirs
all point into the temp dir, every receiver binds 127.0.0.1 on a free port,
the UDP receiver and tag support (which would call a graphite-web on port
80) are off, and `USER =` keeps it from switching to the _graphite user.
storage-schemas.conf keeps every metric at 1-second resolution for an hour,
so a value written by one flush is read back exactly.

stop() is SIGTERM by PID and a wait for the exit, and start() may be called
again afterwards: the same ports, config and storage dir (an outage and a
restart), with each run's output kept apart for logs().  Note that
carbon-cache 1.1.7's writer thread ends on shutdown without draining its
in-memory cache: points received since its last write (it writes, then
sleeps a second) are lost by a SIGTERM, by carbon itself.
"""
import json
import os
import subprocess
import time

from .netutil import LOOPBACK, free_port, wait_for_port
from .proc import Process

CARBON_CACHE = "/usr/bin/carbon-cache"
WHISPER_FETCH = "/usr/bin/whisper-fetch"

CARBON_CONF = """\
[cache]
STORAGE_DIR = {root}/storage
LOCAL_DATA_DIR = {root}/storage/whisper
WHITELISTS_DIR = {root}/storage/lists
CONF_DIR = {root}
LOG_DIR = {root}/log
PID_DIR = {root}
USER =
DATABASE = whisper
ENABLE_LOGROTATION = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
MIN_TIMESTAMP_RESOLUTION = 1
LINE_RECEIVER_INTERFACE = {host}
LINE_RECEIVER_PORT = {line_port}
ENABLE_UDP_LISTENER = False
UDP_RECEIVER_INTERFACE = {host}
UDP_RECEIVER_PORT = {line_port}
PICKLE_RECEIVER_INTERFACE = {host}
PICKLE_RECEIVER_PORT = {pickle_port}
CACHE_QUERY_INTERFACE = {host}
CACHE_QUERY_PORT = {query_port}
USE_FLOW_CONTROL = True
LOG_UPDATES = False
LOG_CREATES = True
LOG_LISTENER_CONNECTIONS = True
CACHE_WRITE_STRATEGY = sorted
WHISPER_AUTOFLUSH = True
WHISPER_FALLOCATE_CREATE = False
ENABLE_TAGS = False
"""

STORAGE_SCHEMAS = """\
[everything]
pattern = .*
retentions = 1s:1h
"""

# Last value wins within a slot; graphite's default "average" would hide a
# second write landing in the same second.
STORAGE_AGGREGATION = """\
[everything]
pattern = .*
xFilesFactor = 0
aggregationMethod = last
"""


class CarbonCache:
    """carbon-cache --nodaemon with its config, data and logs under root."""

    def __init__(self, root, conf_extra="", whitelist=None, blacklist=None):
        """conf_extra: more [cache] settings.  whitelist, blacklist: lists
        of regular expressions for carbon's own filters (USE_WHITELIST):
        a line matching the blacklist is counted in blacklistMatches, one
        missing the whitelist in whitelistRejects, the rest is stored and
        counted in metricsReceived."""
        self.root = root
        self.conf_extra = conf_extra
        self.whitelist = whitelist
        self.blacklist = blacklist
        self.line_port = free_port("tcp")
        self.pickle_port = free_port("tcp")
        self.query_port = free_port("tcp")
        self.conf_path = os.path.join(root, "carbon.conf")
        self.data_dir = os.path.join(root, "storage", "whisper")
        self.proc = None
        self.old_procs = []  # earlier runs (before a restart), for logs()

    def write_config(self):
        for d in ("storage/whisper", "storage/lists", "log"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write(CARBON_CONF.format(root=self.root, host=LOOPBACK, line_port=self.line_port,
                                       pickle_port=self.pickle_port, query_port=self.query_port))
            if self.whitelist is not None or self.blacklist is not None:
                f.write("USE_WHITELIST = True\n")
            f.write(self.conf_extra)
        for name, rx in (("whitelist.conf", self.whitelist), ("blacklist.conf", self.blacklist)):
            if rx is not None:
                with open(os.path.join(self.root, name), "w") as f:
                    f.write("".join(r + "\n" for r in rx))
        with open(os.path.join(self.root, "storage-schemas.conf"), "w") as f:
            f.write(STORAGE_SCHEMAS)
        with open(os.path.join(self.root, "storage-aggregation.conf"), "w") as f:
            f.write(STORAGE_AGGREGATION)

    def start(self, timeout=30.0):
        """Start carbon-cache in the foreground and wait for its line
        receiver.  Returns False when it did not come up."""
        self.write_config()
        argv = [CARBON_CACHE, "--config=" + self.conf_path, "--nodaemon",
                "--pidfile=" + os.path.join(self.root, "carbon-cache.pid"),
                "--logdir=" + os.path.join(self.root, "log"), "start"]
        # Debian's twisted prints deprecation warnings on every start.
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        if self.proc is not None:
            if self.proc.alive():
                raise RuntimeError("carbon-cache (pid %s) is still running" % self.proc.pid)
            self.old_procs.append(self.proc)
        name = "carbon-cache" if not self.old_procs else "carbon-cache.%d" % (len(self.old_procs) + 1)
        self.proc = Process(name, argv, self.root, cwd=self.root, env=env).start()
        return wait_for_port(self.line_port, timeout, alive=self.proc.alive)

    def alive(self):
        return self.proc is not None and self.proc.alive()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self, timeout=10.0):
        """SIGTERM by PID and wait for the exit (SIGKILL after `timeout`).
        Returns the exit code: -15 for a clean shutdown (twistd ends by
        re-raising the signal), -9 when it had to be killed."""
        return self.proc.stop(timeout) if self.proc else None

    def logs(self):
        if self.proc is None:
            return "(carbon-cache never started)"
        return "\n".join(p.logs() for p in self.old_procs + [self.proc])

    def wsp_path(self, metric):
        """Where whisper keeps `metric` (dots become directories)."""
        return os.path.join(self.data_dir, *metric.split(".")) + ".wsp"

    def fetch(self, metric, since):
        """The non-empty points of `metric` from `since` (epoch seconds) on,
        as a sorted list of (ts, value); None when the file does not exist
        yet.  Reads with Debian's whisper-fetch, so the interpreter running
        the test needs no whisper module."""
        path = self.wsp_path(metric)
        if not os.path.exists(path):
            return None
        r = subprocess.run([WHISPER_FETCH, "--json", "--from=%d" % (since - 1),
                            "--until=%d" % (time.time() + 5), path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("whisper-fetch %s failed: %s" % (path, r.stderr.decode()))
        data = json.loads(r.stdout)
        start, step = data["start"], data["step"]
        return [(start + i * step, v) for i, v in enumerate(data["values"]) if v is not None]
