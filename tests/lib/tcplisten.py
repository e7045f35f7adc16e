"""A plain TCP line listener on a chosen (or free) loopback port.

Unlike capture.GraphiteCapture it can bind a given port, so a test can take
a listener down and bring one back up on the same port (to see a sink
reconnect there).  It records every line with the connection it came on
and counts accepted connections.
"""
import socket
import threading
import time

from .netutil import LOOPBACK


class LineListener:
    """Threaded TCP listener on 127.0.0.1:port (0: a free port)."""

    def __init__(self, port=0):
        self._cond = threading.Condition()
        self._lines = []          # (arrival, conn_id, text)
        self._conns = {}          # conn_id -> socket
        self.accepted = 0
        self._closed = False
        self._threads = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((LOOPBACK, port))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name="listen-%d" % self.port, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self):
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._cond:
                if self._closed:
                    conn.close()
                    return
                self.accepted += 1
                conn_id = self.accepted
                self._conns[conn_id] = conn
                self._cond.notify_all()
            t = threading.Thread(target=self._read_loop, args=(conn, conn_id),
                                 name="listen-%d-conn-%d" % (self.port, conn_id), daemon=True)
            t.start()
            self._threads.append(t)

    def _read_loop(self, conn, conn_id):
        buf = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data
                if b"\n" not in data:
                    continue
                *full, buf = buf.split(b"\n")
                now = time.monotonic()
                with self._cond:
                    for raw in full:
                        self._lines.append((now, conn_id, raw.decode("utf-8", "replace")))
                    self._cond.notify_all()
        except OSError:
            pass
        finally:
            with self._cond:
                self._conns.pop(conn_id, None)
                self._cond.notify_all()
            try:
                conn.close()
            except OSError:
                pass

    # -- test side -------------------------------------------------------
    def lines(self):
        """[(arrival, conn_id, text)] in arrival order."""
        with self._cond:
            return list(self._lines)

    def values(self, name):
        """The values (floats) of every line named `name`."""
        out = []
        for _, _, text in self.lines():
            parts = text.rsplit(" ", 2)
            if len(parts) == 3 and parts[0] == name:
                try:
                    out.append(float(parts[1]))
                except ValueError:
                    pass
        return out

    def open_connections(self):
        with self._cond:
            return len(self._conns)

    def wait(self, predicate, timeout):
        """Wait until predicate(self) holds; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate(self)
            if v or time.monotonic() >= deadline:
                return v
            time.sleep(0.05)

    def last_arrival(self):
        with self._cond:
            return self._lines[-1][0] if self._lines else None

    def close(self):
        """Stop accepting and drop every open connection (the peer sees a
        close, not a reset, unless it still had data in flight)."""
        with self._cond:
            self._closed = True
            conns = list(self._conns.values())
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self._sock.close()
        except OSError:
            pass
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(2)
