"""The daemon under test: build/switchyard (or $SY_BIN) with a Lua config.

The config uses statsd's option names, so a test describes a scenario once
(as statsd options) and both daemons get the same settings.
"""
import math
import os
import re

from . import REPO_DIR
from .netutil import LOOPBACK, free_port_pair, wait_for_port
from .proc import Process

_LUA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def switchyard_binary():
    """$SY_BIN if set, else build/switchyard in the repository."""
    return os.path.abspath(os.environ.get("SY_BIN") or os.path.join(REPO_DIR, "build", "switchyard"))


def to_lua(value, indent=0):
    """Render a Python value (dict, list, str, number, bool, None) as a Lua
    expression."""
    pad = "  " * (indent + 1)
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "math.huge" if value > 0 else "-math.huge"
        return repr(value)
    if isinstance(value, str):
        # Lua's \ddd escapes are bytes, so escape the UTF-8 encoding.
        escaped = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else "\\%03d" % b
                          for b in value.encode("utf-8"))
        return '"%s"' % escaped
    if isinstance(value, (list, tuple)):
        items = [to_lua(v, indent + 1) for v in value]
        return "{ " + ", ".join(items) + " }"
    if isinstance(value, dict):
        rows = []
        for k, v in value.items():
            key = k if _LUA_NAME.match(k) else "[%s]" % to_lua(k)
            rows.append("%s%s = %s," % (pad, key, to_lua(v, indent + 1)))
        return "{\n" + "\n".join(rows) + "\n" + "  " * indent + "}"
    raise TypeError("cannot render %r as Lua" % (value,))


def switchyard_config(options, udp_port, tcp_port, graphite_port):
    """The Lua config: listeners on loopback, the scenario's statsd options,
    and one graphite sink pointed at graphite_port."""
    cfg = {
        "listen": ["udp://%s:%d" % (LOOPBACK, udp_port), "tcp://%s:%d" % (LOOPBACK, tcp_port)],
    }
    cfg.update(options)
    cfg["sinks"] = {"carbon": {"plugin": "graphite", "host": LOOPBACK, "port": graphite_port}}
    return "-- written by tests/lib/switchyard.py\nreturn " + to_lua(cfg) + "\n"


class SwitchyardServer:
    """One switchyard process listening on UDP and TCP (same port number)."""

    kind = "switchyard"

    def __init__(self, name, options, graphite_port, workdir, binary=None):
        self.name = name
        self.options = options
        self.graphite_port = graphite_port
        self.workdir = workdir
        self.binary = binary or switchyard_binary()
        self.udp_port = self.tcp_port = free_port_pair()
        self.config_path = os.path.join(workdir, name + ".config.lua")
        self.proc = None
        self.start_error = None

    def start(self, timeout=10.0):
        """Start the daemon and wait for its TCP listener.  Returns False
        (with start_error set) when the binary is missing or it does not
        come up."""
        if not os.access(self.binary, os.X_OK):
            self.start_error = "switchyard binary %s is missing or not executable" % self.binary
            return False
        with open(self.config_path, "w") as f:
            f.write(switchyard_config(self.options, self.udp_port, self.tcp_port,
                                      self.graphite_port))
        self.proc = Process(self.name, [self.binary, "-c", self.config_path], self.workdir,
                            cwd=REPO_DIR).start()
        if not wait_for_port(self.tcp_port, timeout, alive=self.proc.alive):
            self.start_error = "switchyard did not start listening on tcp %d" % self.tcp_port
            return False
        # The admin's ports open after the listeners (its thread starts
        # last): a test that asks right away must not find them closed.
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

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def stop(self):
        return self.proc.stop() if self.proc else None

    def logs(self):
        if self.proc is None:
            return "(%s never started: %s)" % (self.name, self.start_error)
        return self.proc.logs()
