"""Talking to tests/bench/sumsink, the Graphite sink that adds up what
arrives (bench.py and the reload test)."""
import json
import socket

from .netutil import LOOPBACK


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
