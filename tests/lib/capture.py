"""A Graphite plaintext listener that records every line it receives.

statsd opens a new TCP connection per flush, switchyard keeps one open: the
capture accepts any number of connections, long-lived or not, and groups
lines into flushes by arrival bursts (a line arriving more than `gap`
seconds after the previous one starts a new flush).  A flush is written in
a few milliseconds and flushes are a second or more apart, so the bursts
are unambiguous.
"""
import collections
import socket
import socketserver
import threading
import time

from .netutil import LOOPBACK

# One received line.  value/ts are the texts as sent (None when the line did
# not have three fields); flush is the burst index the line was put in.
Line = collections.namedtuple("Line", "arrival name value ts conn flush raw")


class _Handler(socketserver.StreamRequestHandler):
    """Reads newline-terminated lines until the peer closes."""

    def handle(self):
        cap = self.server.capture
        conn_id = cap._register(self.connection)
        try:
            for raw in self.rfile:
                cap._record(raw, conn_id)
        except OSError:
            pass
        finally:
            cap._unregister(self.connection)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class GraphiteCapture:
    """Threaded TCP server on 127.0.0.1:<free port> collecting lines."""

    def __init__(self, gap=0.3):
        self.gap = gap
        self._cond = threading.Condition()
        self._lines = []
        self._flush_starts = []      # arrival time of each flush's first line
        self._last_arrival = None
        self._conns = {}
        self._next_conn = 0
        self._server = _Server((LOOPBACK, 0), _Handler)
        self._server.capture = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="capture-%d" % self.port, daemon=True)
        self._thread.start()

    # -- server side -----------------------------------------------------
    def _register(self, sock):
        with self._cond:
            self._next_conn += 1
            self._conns[self._next_conn] = sock
            return self._next_conn

    def _unregister(self, sock):
        with self._cond:
            for k, v in list(self._conns.items()):
                if v is sock:
                    del self._conns[k]

    def _record(self, raw, conn_id):
        now = time.monotonic()
        text = raw.decode("utf-8", "replace").rstrip("\n")
        # From the right: with keyNameSanitize off statsd can put spaces in
        # a name's tags, and the name is still everything before the value.
        parts = text.rsplit(" ", 2)
        if len(parts) == 3 and parts[0]:
            name, value, ts = parts
        else:
            name, value, ts = text, None, None
        with self._cond:
            if self._last_arrival is None or now - self._last_arrival > self.gap:
                self._flush_starts.append(now)
            self._last_arrival = now
            self._lines.append(Line(now, name, value, ts, conn_id,
                                    len(self._flush_starts) - 1, text))
            self._cond.notify_all()

    # -- test side -------------------------------------------------------
    def flush_count(self):
        """How many flushes have started arriving."""
        with self._cond:
            return len(self._flush_starts)

    def wait_for_flushes(self, n, timeout):
        """Block until at least n flushes have started; returns the arrival
        time (time.monotonic) of the n-th flush's first line, or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._flush_starts) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._flush_starts[n - 1]

    def wait_quiet(self, quiet=None, timeout=5.0):
        """Wait until no line has arrived for `quiet` seconds (default: the
        burst gap), so the last flush is complete before it is read."""
        quiet = self.gap * 1.5 if quiet is None else quiet
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                last = self._last_arrival
            if last is None or time.monotonic() - last >= quiet:
                return True
            time.sleep(0.05)
        return False

    def lines(self):
        with self._cond:
            return list(self._lines)

    def flushes(self):
        """Lines grouped by flush: a list indexed by flush number."""
        groups = [[] for _ in range(self.flush_count())]
        for line in self.lines():
            groups[line.flush].append(line)
        return groups

    def connections_seen(self):
        with self._cond:
            return self._next_conn

    def close(self):
        """Stop accepting and drop open connections (a persistent sender
        would otherwise keep a reader thread blocked)."""
        self._server.shutdown()
        with self._cond:
            socks = list(self._conns.values())
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
