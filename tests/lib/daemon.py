"""One switchyard process run from a config file the test writes.

The pieces most suites need around the daemon under test: write (and
atomically rewrite) its config, start it and wait for a port, SIGHUP and
SIGTERM/SIGINT it, read its log, read the flushes of a console sink, and
check that it exits 0 and that a sanitized build left no report.  New
suites use this rather than growing another copy.
"""
import collections
import os
import re
import signal

from . import REPO_DIR
from . import sanitizer
from .netutil import LOOPBACK, free_port_pair, send_tcp, wait_for_port
from .proc import Process, wait_until
from .switchyard import switchyard_binary, switchyard_config, to_lua


class Daemon:
    def __init__(self, name, workdir, args=(), env=None, binary=None):
        self.name = name
        self.binary = binary or switchyard_binary()
        self.config_path = os.path.join(workdir, name + ".config.lua")
        # where a config may point a console sink (flushes() reads it)
        self.console_path = os.path.join(workdir, name + ".console.txt")
        self.argv = [self.binary, "-c", self.config_path] + list(args)
        self.workdir = workdir
        self.env = env
        self.proc = Process(name, self.argv, workdir, cwd=REPO_DIR, env=env)
        self.rc = None
        self.starts = 0
        self.start_error = None

    def write_config(self, text):
        """Replace the file atomically, so a reload never reads half of it."""
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def start(self, text, port=None, timeout=20.0, host=LOOPBACK):
        """Write the config and start; with a port, wait until it accepts
        TCP connections on host.  False (start_error says why) if the
        binary is missing or it never did.  Starting again after a stop
        runs a new process whose output goes to NAME-N.stdout/.stderr, so
        the earlier run's log stays for a post-mortem."""
        self.start_error = None
        if not os.access(self.binary, os.X_OK):
            self.start_error = "switchyard binary %s is missing" % self.binary
            return False
        self.write_config(text)
        self.starts += 1
        if self.starts > 1:
            self.proc = Process("%s-%d" % (self.name, self.starts), self.argv, self.workdir,
                                cwd=REPO_DIR, env=self.env)
        self.rc = None
        self.proc.start()
        if port is None:
            return True
        if not wait_for_port(port, timeout, host=host, alive=self.proc.alive):
            self.start_error = "did not start listening on tcp %s:%d" % (host, port)
            return False
        return True

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.alive()

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def hup(self):
        self.signal(signal.SIGHUP)

    def wait_exit(self, timeout):
        """The exit code once the process is gone (after a signal the test
        sent), or None if it is still running after `timeout`."""
        if not wait_until(lambda: not self.alive(), timeout):
            return None
        self.rc = self.proc.popen.returncode
        return self.rc

    def stop(self, timeout=40.0):
        """SIGTERM (SIGKILL after `timeout`); the exit code."""
        if self.rc is None and self.proc.popen is not None:
            self.rc = self.proc.stop(timeout)
        return self.rc

    def log(self):
        try:
            with open(self.proc.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.proc.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self, pattern):
        rx = re.compile(pattern)
        return [line for line in self.log().splitlines() if rx.search(line)]

    def count(self, pattern):
        return len(self.log_lines(pattern))

    def wait_count(self, pattern, n, timeout):
        return wait_until(lambda: self.count(pattern) >= n, timeout)

    def logs(self, limit=6000):
        if self.start_error:
            return "(%s: %s)\n%s" % (self.name, self.start_error, self.proc.logs(limit))
        return self.proc.logs(limit)

    def flushes(self):
        """The console sink's file as an ordered list of (ts, {name: value
        text}), one entry per flush timestamp."""
        return console_flushes(self.console_path)

    def wait_flushes(self, n, timeout=10.0):
        """Wait until the console file has at least n more flushes than now."""
        have = len(self.flushes())
        return wait_until(lambda: len(self.flushes()) >= have + n, timeout)

    def wait_flush_with(self, name, value, timeout=5.0):
        """The timestamp of the first console flush in which `name` has the
        value text `value`, waiting up to `timeout`; None if none came."""
        def flushed():
            for ts, m in self.flushes():
                if m.get(name) == value:
                    return ts
            return None
        return wait_until(flushed, timeout)

    def finish(self, res, label):
        """Stop it (SIGTERM), check it exits 0 and, for a sanitized build,
        that it left no sanitizer report."""
        rc = self.stop()
        res.check("%s: switchyard exits 0 on SIGTERM" % label, rc == 0,
                  "exit code %r\n%s" % (rc, self.logs()))
        self.check_sanitizer(res, label)

    def check_sanitizer(self, res, label):
        """No sanitizer report from this daemon (a check only against a
        sanitized binary: lib/sanitizer.py)."""
        return sanitizer.check_clean(res, label, self.binary, self.proc.pid, self.log(),
                                     self.proc.env)


class ConfigDaemon(Daemon):
    """A daemon whose config is built here: UDP and TCP listeners on one
    port of `host` (127.0.0.1, or ::1 with a port free there), the
    top-level `options`, the `sinks`, and `routes` (Lua source, since rules
    are Lua values), if any."""

    def __init__(self, name, workdir, options, sinks, routes=None, host=LOOPBACK, port=None):
        super().__init__(name, workdir)
        self.options = options
        self.sinks = sinks
        self.routes = routes
        self.host = host
        self.port = port or free_port_pair()

    @property
    def dest(self):
        """host:port, as a repeater's destinations name it."""
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (h, self.port)

    def config(self):
        cfg = {"listen": ["udp://" + self.dest, "tcp://" + self.dest]}
        cfg.update(self.options)
        cfg["sinks"] = self.sinks
        text = "-- written by tests/lib/daemon.py\n"
        text += 'local route = require "switchyard.route"\n'
        text += "local cfg = " + to_lua(cfg) + "\n"
        if self.routes:
            text += "cfg.routes = " + self.routes + "\n"
        return text + "return cfg\n"

    def start(self, timeout=10.0):
        return super().start(self.config(), port=self.port, timeout=timeout, host=self.host)

    def send(self, lines):
        """All lines over one TCP connection (no loss on the way in)."""
        send_tcp(self.port, "\n".join(lines) + "\n", host=self.host)


class SwitchyardServer(Daemon):
    """switchyard as the differential and carbon tests run it: UDP and TCP
    on one port, the scenario's statsd options, and one graphite sink
    `carbon` at graphite_port (plus sink_settings), with the interface of
    lib/statsd.py's StatsdServer, so a test drives both alike.  `listen`
    adds listeners (e.g. a unix:// path)."""

    kind = "switchyard"

    def __init__(self, name, options, graphite_port, workdir, binary=None, sink_settings=None,
                 listen=()):
        super().__init__(name, workdir, binary=binary)
        self.options = options
        self.graphite_port = graphite_port
        self.sink_settings = sink_settings
        self.listen = list(listen)
        self.udp_port = self.tcp_port = free_port_pair()

    def config(self):
        return switchyard_config(self.options, self.udp_port, self.tcp_port, self.graphite_port,
                                 self.sink_settings, self.listen)

    def start(self, timeout=10.0):
        """Start and wait for the TCP listener and the admin ports the
        options name (they open after the listeners: a test that asks right
        away must not find them closed).  False, with start_error set, when
        the binary is missing or it does not come up."""
        if not super().start(self.config(), port=self.tcp_port, timeout=timeout):
            return False
        admin = []
        if self.options.get("mgmt_port"):
            admin.append(int(self.options["mgmt_port"]))
        http = self.options.get("httpAddress")
        if http and not http.endswith(":0"):
            admin.append(int(http.rsplit(":", 1)[1]))
        for port in admin:
            if not wait_for_port(port, timeout, alive=self.proc.alive):
                self.start_error = "switchyard did not open its admin port %d" % port
                return False
        return True


def console_flushes(path):
    """A console sink's file ("name value ts" lines; a name may hold
    spaces) as an ordered list of (ts, {name: value text})."""
    by_ts = collections.OrderedDict()
    try:
        with open(path, "rb") as f:
            for raw in f:
                line = raw.decode("utf-8", "surrogateescape").rstrip("\n")
                name, _, ts = line.rpartition(" ")
                name, _, value = name.rpartition(" ")
                if not name or not ts.isdigit():
                    continue
                by_ts.setdefault(int(ts), {})[name] = value
    except OSError:
        pass
    return list(by_ts.items())


def sink_stat(metrics, sink, stat):
    """switchyard's own value for a sink in one flush (`metrics` as
    console_flushes gives it), as a number; None if it is not there."""
    suffix = ".switchyard.sink.%s.%s" % (sink, stat)
    for name, value in metrics.items():
        if name.endswith(suffix):
            return float(value)
    return None


def sink_stat_sum(flushes, sink, stat):
    """sink_stat summed over flushes."""
    return sum(sink_stat(m, sink, stat) or 0 for _, m in flushes)


def rss_kib(pid):
    """Resident set size of a process in KiB (0 if it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
