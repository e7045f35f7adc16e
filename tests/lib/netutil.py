"""Loopback networking helpers: ports, readiness, and sending StatsD lines."""
import socket
import time

LOOPBACK = "127.0.0.1"


def free_port(kind="tcp"):
    """A port the kernel says is free now on 127.0.0.1.

    Asking the kernel (bind to port 0) rather than guessing keeps parallel
    test runs from colliding; the small window before the server binds it
    is accepted.
    """
    stype = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, stype) as s:
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
