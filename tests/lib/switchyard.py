"""The daemon under test: build/switchyard (or $SY_BIN) with a Lua config.

The config uses statsd's option names, so a test describes a scenario once
(as statsd options) and both daemons get the same settings.  The process
itself is tests/lib/daemon.py's (SwitchyardServer there).
"""
import math
import os
import re

from . import REPO_DIR
from .netutil import LOOPBACK

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


def switchyard_config(options, udp_port, tcp_port, graphite_port, sink_settings=None,
                      listen=()):
    """The Lua config: listeners on loopback (and `listen`), the scenario's
    statsd options, and one graphite sink pointed at graphite_port, with
    sink_settings added to it."""
    cfg = {
        "listen": ["udp://%s:%d" % (LOOPBACK, udp_port),
                   "tcp://%s:%d" % (LOOPBACK, tcp_port)] + list(listen),
    }
    cfg.update(options)
    cfg["sinks"] = {"carbon": dict({"plugin": "graphite", "host": LOOPBACK, "port": graphite_port},
                                   **(sink_settings or {}))}
    return "-- written by tests/lib/switchyard.py\nreturn " + to_lua(cfg) + "\n"
