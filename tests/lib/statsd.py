"""The reference: Etsy statsd 0.9.0 from npm, run with node.

It is installed once into build/npm (`npm install --prefix build/npm
statsd@0.9.0`) and reused by later runs; a lock file serialises the install
when two tests start at once.
"""
import fcntl
import json
import os
import subprocess

from . import REPO_DIR
from .netutil import LOOPBACK, free_port, wait_for_port
from .proc import Process

STATSD_VERSION = "0.9.0"
NPM_DIR = os.path.join(REPO_DIR, "build", "npm")
STATS_JS = os.path.join(NPM_DIR, "node_modules", "statsd", "stats.js")


def _installed_version(name="statsd"):
    try:
        with open(os.path.join(NPM_DIR, "node_modules", name, "package.json")) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def ensure_npm(name, version):
    """Install name@version from npm into build/npm (beside statsd) unless
    it is there; returns its directory.  Raises RuntimeError with npm's
    output when the install fails."""
    os.makedirs(NPM_DIR, exist_ok=True)
    with open(os.path.join(NPM_DIR, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(name) != version:
            cmd = ["npm", "install", "--prefix", NPM_DIR, "--no-audit", "--no-fund",
                   "%s@%s" % (name, version)]
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
            if r.returncode != 0 or _installed_version(name) != version:
                raise RuntimeError("npm install %s@%s failed:\n%s"
                                   % (name, version, r.stdout.decode("utf-8", "replace")))
    return os.path.join(NPM_DIR, "node_modules", name)


def ensure_statsd():
    """Install statsd@0.9.0 into build/npm unless it is already there.
    Returns the path of stats.js; raises RuntimeError with npm's output when
    the install fails."""
    ensure_npm("statsd", STATSD_VERSION)
    return STATS_JS


def statsd_config(options, udp_port, mgmt_port, graphite_port):
    """statsd's config object: the scenario's options (statsd's own names)
    plus the listener, management port and graphite backend, all on
    loopback.  Config reload is off: the file is not meant to change."""
    cfg = {
        "port": udp_port,
        "address": LOOPBACK,
        "mgmt_port": mgmt_port,
        "mgmt_address": LOOPBACK,
        "graphiteHost": LOOPBACK,
        "graphitePort": graphite_port,
        "backends": ["./backends/graphite"],
        "automaticConfigReload": False,
    }
    cfg.update(options)
    return cfg


class StatsdServer:
    """One statsd process: UDP on a free loopback port, graphite backend
    pointed at `graphite_port`."""

    kind = "statsd"

    def __init__(self, name, options, graphite_port, workdir):
        self.name = name
        self.options = options
        self.graphite_port = graphite_port
        self.workdir = workdir
        self.udp_port = free_port("udp")
        self.mgmt_port = free_port("tcp")
        self.config_path = os.path.join(workdir, name + ".config.js")
        self.proc = None

    def start(self, timeout=20.0):
        """Start statsd and wait for its management port, which opens right
        after the UDP socket is bound.  Returns False if it did not come up."""
        stats_js = ensure_statsd()
        cfg = statsd_config(self.options, self.udp_port, self.mgmt_port, self.graphite_port)
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        self.proc = Process(self.name, ["node", stats_js, self.config_path], self.workdir,
                            cwd=os.path.dirname(stats_js)).start()
        return wait_for_port(self.mgmt_port, timeout, alive=self.proc.alive)

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def stop(self):
        return self.proc.stop() if self.proc else None

    def logs(self):
        return self.proc.logs() if self.proc else "(%s never started)" % self.name
