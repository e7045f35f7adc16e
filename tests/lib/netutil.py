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


def udp_queued(port):
    """Bytes waiting in the receive queues of the UDP sockets bound to this
    port (the kernel's rx_queue in /proc/net/udp, the largest if several
    sockets share the port), or 0 if none is listed."""
    want = ":%04X" % port
    queued = 0
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) > 4 and fields[1].endswith(want):
                    queued = max(queued, int(fields[4].split(":")[1], 16))
    except (OSError, ValueError, StopIteration):
        return 0
    return queued


def send_udp_paced(port, datagrams, host=LOOPBACK, max_queued=64 * 1024, every=8, timeout=60.0):
    """send_udp, but before every `every` datagrams wait until the
    receiver's socket holds at most max_queued bytes (udp_queued), so that
    a slow reader with the kernel's default receive buffer (statsd's: 208
    KiB) gets every datagram of a large batch.  Raises TimeoutError if the
    receiver stops reading for `timeout` seconds."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i, d in enumerate(datagrams):
            if i % every == 0:
                deadline = time.monotonic() + timeout
                while udp_queued(port) > max_queued:
                    if time.monotonic() > deadline:
                        raise TimeoutError("UDP port %d: receiver stopped reading" % port)
                    time.sleep(0.0005)
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
