"""Redis for the tests: a minimal RESP2 client and a redis-server on a
loopback port (no redis-py needed).

Resp is one connection: cmd() sends a command and returns its reply (str
for simple and bulk strings, int, list, None); an error reply raises
RespError.  pipeline() sends several and returns their replies, with
RespError instances for error replies.  query() is one command on a fresh
connection.  RedisServer runs redis-server with its data in a directory of
the test's own, and can be stopped, continued, killed and started again on
the same port.
"""
import os
import socket

from .netutil import LOOPBACK, free_port, wait_for_port
from .proc import Restartable, wait_until

REDIS_SERVER = "/usr/bin/redis-server"


class RespError(Exception):
    pass


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Resp:
    def __init__(self, port, password=None, db=None, timeout=5.0):
        self.sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")
        if password is not None:
            self.cmd("AUTH", password)
        if db is not None:
            self.cmd("SELECT", db)

    def cmd(self, *args):
        self.send(*args)
        return self.read()

    def send(self, *args):
        self.sock.sendall(encode(args))

    def pipeline(self, commands):
        self.sock.sendall(b"".join(encode(c) for c in commands))
        out = []
        for _ in commands:
            try:
                out.append(self.read())
            except RespError as e:
                out.append(e)
        return out

    def read(self):
        line = self.rfile.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by Redis")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rfile.read(n + 2)
            return data[:-2].decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError("unexpected RESP reply %r" % line)

    def close(self):
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


def query(port, *args, password=None, db=None, timeout=5.0):
    """One command on a fresh connection: its reply, the RespError of an
    error reply, or None when Redis cannot be reached or closes."""
    try:
        c = Resp(port, password, db, timeout)
    except RespError as e:
        return e
    except OSError:
        return None
    try:
        return c.cmd(*args)
    except RespError as e:
        return e
    except (OSError, ConnectionError):
        return None
    finally:
        c.close()


class RedisServer(Restartable):
    """redis-server on 127.0.0.1:port with its data in workdir/name.

    aof: an append-only file with appendfsync always, so what Redis
    acknowledged survives a SIGKILL.  extra: more redis-server arguments
    (e.g. cluster mode)."""

    def __init__(self, workdir, name, port=None, password=None, aof=False, extra=()):
        super().__init__(name, workdir)
        self.port = port or free_port("tcp")
        self.password = password
        self.aof = aof
        self.extra = list(extra)
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)

    def start(self, timeout=10.0):
        argv = [REDIS_SERVER, "--port", self.port, "--bind", LOOPBACK, "--save", "",
                "--dir", self.dir, "--daemonize", "no"]
        if self.aof:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        argv += self.extra
        p = self.spawn(argv, cwd=self.dir)
        if not wait_for_port(self.port, timeout, alive=p.alive):
            return False
        # PING answers PONG once the data is loaded (LOADING before)
        return bool(wait_until(lambda: query(self.port, "PING", password=self.password) ==
                               "PONG", timeout))

    def cmd(self, *args):
        c = Resp(self.port, self.password, timeout=10)
        try:
            return c.cmd(*args)
        finally:
            c.close()

    def client(self, db=None):
        return Resp(self.port, self.password, db)

