"""Loopback networking helpers: ports, readiness, and sending StatsD lines."""
import os
import random
import socket
import time
import urllib.error
import urllib.request

LOOPBACK = "127.0.0.1"


_issued = set()
_rng = random.Random(os.getpid() ^ int(time.time() * 1000))


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _lane_slice():
    """The ports free_port draws from: 10000 up to the ephemeral range, or
    this lane's share of it when tests/run.sh runs suites in concurrent
    lanes (SY_TEST_LANE of SY_TEST_LANES), so two lanes never pick the same
    port between checking it and binding it."""
    lo, _ = _ephemeral_range()
    first, last = 10000, max(lo - 1, 11000)
    try:
        lane = int(os.environ.get("SY_TEST_LANE", "0"))
        lanes = max(1, int(os.environ.get("SY_TEST_LANES", "1")))
    except ValueError:
        lane, lanes = 0, 1
    width = (last - first + 1) // lanes
    start = first + (lane % lanes) * width
    return start, start + width - 1


def free_port(kind="tcp"):
    """A port that is free now on 127.0.0.1 for the given kind.

    It is chosen below the kernel's ephemeral range, so that a listener
    binding port 0 elsewhere in the test (captures do) can never be given
    the same number before our server binds it, never twice in one
    process, and within this test lane's slice (_lane_slice).  The port is
    checked by binding it.
    """
    stype = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    low, top = _lane_slice()
    for _ in range(500):
        port = _rng.randint(low, top)
        if port in _issued:
            continue
        try:
            with socket.socket(socket.AF_INET, stype) as s:
                s.bind((LOOPBACK, port))
        except OSError:
            continue
        _issued.add(port)
        return port
    with socket.socket(socket.AF_INET, stype) as s:  # crowded: ask the kernel
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def free_port_pair():
    """One port number free for both TCP and UDP, for a daemon listening on
    both (so a test can address it with a single number)."""
    for _ in range(50):
        port = free_port("tcp")
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((LOOPBACK, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free for both TCP and UDP")


def wait_for_port(port, timeout=10.0, host=LOOPBACK, alive=None):
    """Wait until something accepts TCP connections on host:port.

    `alive` is an optional callable; when it returns False the wait stops
    early, so a daemon that died at startup fails fast instead of timing out.
    Returns True when the port answered.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def send_udp(port, datagrams, host=LOOPBACK):
    """Send each datagram (bytes or str) in order from one socket.

    One source socket keeps the datagrams in one kernel flow, so a receiver
    that spreads load over several sockets still sees them in order.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in datagrams:
            s.sendto(d.encode() if isinstance(d, str) else d, (host, port))


def send_tcp(port, payload, host=LOOPBACK):
    """Send a payload over one TCP connection and close it cleanly."""
    data = payload.encode() if isinstance(payload, str) else payload
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(2)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass


def sleep_until_phase(interval_s, phase_s):
    """Sleep until the wall clock is `phase_s` seconds past a multiple of
    `interval_s`; daemons that flush on wall-clock multiples are then as far
    as possible from a flush boundary."""
    now = time.time()
    target = (now // interval_s) * interval_s + phase_s
    if target <= now:
        target += interval_s
    time.sleep(target - now)


def http_get(port, path, timeout=10):
    """(status, headers, body text) of GET http://127.0.0.1:port/path; an
    HTTP error status is an answer too, not an exception."""
    url = "http://%s:%d%s" % (LOOPBACK, port, path)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8", "replace")
