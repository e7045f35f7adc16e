#!/usr/bin/env python3
"""Soak test: switchyard under concurrent load on every kind of listener,
every aggregate checked exactly.

One switchyard listens on UDP, TCP, an authenticated TCP listener, a Unix
stream socket and a Unix datagram socket, and flushes every second to a
capturing Graphite listener (tests/lib/capture.py) that records every line.
Concurrent sender processes push metrics of every type (counters, some with
sample rates, gauges absolute and relative, timers, some sampled, sets with
duplicate members, DogStatsD tags) for --seconds at --rate lines a second
each:

  tcp0, tcp1   TCP, one connection each
  unix0        Unix stream
  auth0        the auth TCP listener: every line behind the token "s3cret."
               (namespace tenant1), and now and then a line with a token
               the config does not know, which must be refused and counted
  udp0, udp1   UDP datagrams of a fixed composition (see below)
  ugram0       Unix datagrams, the same

Each sender uses names of its own and computes what switchyard must report.
When the senders are done the kernel's UDP drop counters are read, then
switchyard is stopped with SIGTERM: it reads what the kernel still holds,
drains its rings and flushes everything, so the last flush closes the books.

Checked, from the sum of every flush:
  * stream senders: nothing lost - every counter total (sample rates scaled:
    n lines "|@0.25" count 4n), every gauge's final value (absolute ones:
    the last value sent on the connection; relative ones: the sum), every
    set's size (members are unique but for duplicates on one line, which
    count once), every timer's count (sampled ones scaled), lower and upper;
  * datagram senders: every datagram carries one "dgrams:1|c", so the
    datagrams that arrived, R, are known; every other aggregate must be
    exactly what R datagrams give, and the datagrams lost (sent - R) must
    equal the drops switchyard reports for the listener
    (stats.statsd.switchyard.listener.<name>.dropped, plus lines_too_long)
    plus, for UDP, the drops the kernel counted on switchyard's socket
    (/proc/net/udp, "drops"), which switchyard cannot see.  The system-wide
    Udp RcvbufErrors/InErrors of /proc/net/snmp are reported beside it;
  * refused tokens: the listener's auth_rejected equals the refused lines;
  * statsd.metrics_received equals every line that arrived (refused ones
    excepted), statsd.bad_lines_seen is 0, switchyard exits 0.

Printed: sent, received, verified, lost, switchyard's peak RSS (VmHWM).

Usage: /usr/bin/python3 tests/soak/soak.py [--seconds S] [--rate LINES_PER_S]
       (tests/soak/run.sh short|full picks them; $SY_BIN is the daemon)
"""
import argparse
import multiprocessing
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.capture import GraphiteCapture  # noqa: E402
from lib.netutil import LOOPBACK, free_port, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

TEST_NAME = "soak"
K = 16             # keys per type and sender
TOKEN = "s3cret"
NAMESPACE = "tenant1"
FLUSH_MS = 1000

CONFIG = """-- written by tests/soak/soak.py
return {{
  listen = {{
    {{ url = "udp://{host}:{udp}", receiveBuffer = {rcvbuf} }},
    "tcp://{host}:{tcp}",
    {{ url = "tcp://{host}:{auth}", auth = true }},
    "unix://{unix}",
    {{ url = "unixgram://{ugram}", receiveBuffer = {rcvbuf} }},
  }},
  flushInterval = {flush},
  ringSize = {ring},
  percentThreshold = {{ 90 }},
  graphite = {{ legacyNamespace = false, globalPrefix = "stats" }},
  auth = {{ tokens = {{ {token} = "{ns}" }} }},
  sinks = {{ carbon = {{ plugin = "graphite", host = "{host}", port = {carbon} }} }},
}}
"""


# -- what a sender expects ---------------------------------------------------

class Expect:
    """Graphite names and the totals switchyard must flush for them."""

    def __init__(self, name):
        self.name = name
        self.counters = {}   # "stats.counters.<key>.count" -> total
        self.gauges = {}     # "stats.gauges.<key>" -> final value
        self.sets = {}       # "stats.sets.<key>.count" -> members (summed over flushes)
        self.timers = {}     # "stats.timers.<key>" -> [count, lower, upper]
        self.lines = 0       # metric lines sent (refused ones included)
        self.refused = 0     # lines with an unknown token
        self.datagrams = 0   # datagram senders: datagrams sent
        self.kind = None
        self.prefix = None
        self.error = None

    def counter(self, key, n, tags=""):
        name = "stats.counters.%s.count%s" % (key, tags)
        self.counters[name] = self.counters.get(name, 0) + n

    def timer(self, key, v, count):
        t = self.timers.get(key)
        if t is None:
            self.timers[key] = [count, v, v]
        else:
            t[0] += count
            t[1] = min(t[1], v)
            t[2] = max(t[2], v)


def _pace(start, sent, rate):
    """Sleep until `sent` lines are due at `rate` lines a second."""
    if rate <= 0:
        return
    ahead = sent / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)


def stream_sender(kind, address, sid, seconds, rate, queue):
    """One connection; every type; nothing may be lost."""
    e = Expect("%s%d" % (kind, sid))
    e.kind = kind
    auth = kind == "auth"
    p = "soak.%s" % e.name
    e.prefix = p
    keyp = ("%s.%s" % (NAMESPACE, p)) if auth else p
    tok = (TOKEN + ".") if auth else ""
    try:
        if kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(address)
        else:
            s = socket.create_connection(address, timeout=30)
        start = time.monotonic()
        deadline = start + seconds
        i = 0
        gd = 0
        while time.monotonic() < deadline:
            out = []
            for _ in range(500):
                k = i % K
                out.append("%s%s.c%d:%d|c" % (tok, p, k, i % 7 + 1))
                e.counter("%s.c%d" % (keyp, k), i % 7 + 1)
                if i % 2 == 0:
                    out.append("%s%s.cr%d:1|c|@0.25" % (tok, p, k))
                    e.counter("%s.cr%d" % (keyp, k), 4)
                out.append("%s%s.g%d:%d|g" % (tok, p, k, i))
                e.gauges["stats.gauges.%s.g%d" % (keyp, k)] = i
                if i % 3 == 0:
                    out.append("%s%s.gd:+3|g" % (tok, p))
                    gd += 3
                else:
                    out.append("%s%s.gd:-1|g" % (tok, p))
                    gd -= 1
                v = (i * 37) % 1000
                if i % 4 == 0:
                    out.append("%s%s.t%d:%d|ms|@0.5" % (tok, p, k, v))
                    e.timer("stats.timers.%s.t%d" % (keyp, k), v, 2)
                else:
                    out.append("%s%s.t%d:%d|ms" % (tok, p, k, v))
                    e.timer("stats.timers.%s.t%d" % (keyp, k), v, 1)
                sname = "stats.sets.%s.s%d.count" % (keyp, k)
                if i % 10 == 0:
                    # a duplicate member on the same line counts once
                    out.append("%s%s.s%d:m%d|s:m%d|s" % (tok, p, k, i, i))
                else:
                    out.append("%s%s.s%d:m%d|s" % (tok, p, k, i))
                e.sets[sname] = e.sets.get(sname, 0) + 1
                if i % 5 == 0:
                    out.append("%s%s.tag:1|c|#env:soak,sid:%d" % (tok, p, sid))
                    e.counter("%s.tag" % keyp, 1, ";env=soak;sid=%d" % sid)
                if auth and i % 50 == 0:
                    out.append("bogus.%s.refused:1|c" % p)
                    e.refused += 1
                i += 1
            e.lines += len(out)
            s.sendall(("\n".join(out) + "\n").encode())
            _pace(start, e.lines, rate)
        e.gauges["stats.gauges.%s.gd" % keyp] = gd
        s.shutdown(socket.SHUT_WR)
        s.settimeout(30)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()
    except Exception as ex:  # reported by the parent
        e.error = "%s: %r" % (e.name, ex)
    queue.put(e)


DGRAM_LINES = 8  # lines in each datagram, below


def dgram_sender(kind, address, sid, seconds, rate, queue):
    """Datagrams of one composition, so any subset that arrives can be
    checked: the parent knows R from the dgrams counter."""
    e = Expect("%s%d" % (kind, sid))
    e.kind = kind
    p = "soak.%s" % e.name
    e.prefix = p
    try:
        fam = socket.AF_UNIX if kind == "ugram" else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        start = time.monotonic()
        deadline = start + seconds
        d = 0
        while time.monotonic() < deadline:
            for _ in range(200):
                pkt = ("%s.dgrams:1|c\n%s.c:3|c\n%s.cr:1|c|@0.5\n%s.t:1|ms\n%s.t:500|ms|@0.5\n"
                       "%s.s:m%d-a|s\n%s.s:m%d-b|s\n%s.g:%d|g" %
                       (p, p, p, p, p, p, d, p, d, p, d)).encode()
                while True:
                    try:
                        s.sendto(pkt, address)
                        break
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as ex:
                        # ENOBUFS and friends on a busy loopback: not sent
                        if ex.errno in (105, 11):
                            time.sleep(0.0005)
                            continue
                        raise
                d += 1
            e.lines = d * DGRAM_LINES
            _pace(start, e.lines, rate)
        e.datagrams = d
        e.lines = d * DGRAM_LINES
        s.close()
    except Exception as ex:
        e.error = "%s: %r" % (e.name, ex)
    queue.put(e)


# -- the kernel's view ---------------------------------------------------------

def udp_socket_drops(port):
    """The drops column of /proc/net/udp for 127.0.0.1:port (switchyard's
    socket), or None."""
    want = "0100007F:%04X" % port
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want:
                    return int(parts[-1])
    except OSError:
        pass
    return None


def snmp_udp():
    """System-wide Udp counters of /proc/net/snmp."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return dict(zip(rows[0][1:], (int(v) for v in rows[1][1:])))
    except (OSError, IndexError, ValueError):
        return {}


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# -- reading the flushes -------------------------------------------------------

class Flushed:
    """Every captured line folded into totals."""

    def __init__(self, lines):
        self.sums = {}
        self.last = {}
        self.maxv = {}
        self.minv = {}
        self.unparsed = 0
        for line in lines:
            if line.value is None:
                self.unparsed += 1
                continue
            try:
                v = float(line.value)
            except ValueError:
                self.unparsed += 1
                continue
            n = line.name
            self.sums[n] = self.sums.get(n, 0.0) + v
            self.last[n] = v
            self.maxv[n] = max(self.maxv.get(n, v), v)
            self.minv[n] = min(self.minv.get(n, v), v)

    def total(self, name):
        return self.sums.get(name)


def listener_part(url):
    """output.c's name for a listener: every run of other characters is one '_'."""
    out, under = [], False
    for ch in url:
        if ch.isascii() and (ch.isalnum() or ch == "-"):
            out.append(ch)
            under = False
        elif not under and out:
            out.append("_")
            under = True
    return "".join(out).rstrip("_")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=12, help="how long the senders send")
    ap.add_argument("--rate", type=float, default=5000,
                    help="lines a second per sender (0: as fast as it can)")
    ap.add_argument("--rcvbuf", type=int, default=32 << 20, help="datagram listeners' receiveBuffer")
    ap.add_argument("--ring", type=int, default=64 << 20,
                    help="switchyard's ringSize (small ones make it drop datagrams itself)")
    args = ap.parse_args()

    r = Results(TEST_NAME)
    binary = switchyard_binary()
    if not os.access(binary, os.X_OK):
        r.check("switchyard binary exists", False, "%s is missing; run make first" % binary)
        return r.finish()

    work = make_workdir("switchyard-soak.")
    cap = GraphiteCapture(gap=0.25)
    udp_port, tcp_port, auth_port = free_port("udp"), free_port("tcp"), free_port("tcp")
    unix_path = os.path.join(work, "sy.sock")
    ugram_path = os.path.join(work, "sy.dgram")
    cfg_path = os.path.join(work, "soak.config.lua")
    urls = {
        "udp": "udp://%s:%d" % (LOOPBACK, udp_port),
        "tcp": "tcp://%s:%d" % (LOOPBACK, tcp_port),
        "auth": "tcp://%s:%d" % (LOOPBACK, auth_port),
        "unix": "unix://%s" % unix_path,
        "ugram": "unixgram://%s" % ugram_path,
    }
    with open(cfg_path, "w") as f:
        f.write(CONFIG.format(host=LOOPBACK, udp=udp_port, tcp=tcp_port, auth=auth_port,
                              unix=unix_path, ugram=ugram_path, carbon=cap.port, flush=FLUSH_MS,
                              token=TOKEN, ns=NAMESPACE, rcvbuf=args.rcvbuf, ring=args.ring))
    sy = Process("switchyard", [binary, "-c", cfg_path], work).start()
    senders = []
    try:
        up = (wait_for_port(tcp_port, 10, alive=sy.alive) and wait_for_port(auth_port, 10, alive=sy.alive)
              and wait_until(lambda: os.path.exists(unix_path) and os.path.exists(ugram_path), 5))
        if not r.check("switchyard starts", up, sy.logs()):
            return r.finish()

        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        plan = [
            (stream_sender, "tcp", (LOOPBACK, tcp_port), 0),
            (stream_sender, "tcp", (LOOPBACK, tcp_port), 1),
            (stream_sender, "unix", unix_path, 0),
            (stream_sender, "auth", (LOOPBACK, auth_port), 0),
            (dgram_sender, "udp", (LOOPBACK, udp_port), 0),
            (dgram_sender, "udp", (LOOPBACK, udp_port), 1),
            (dgram_sender, "ugram", ugram_path, 0),
        ]
        snmp_before = snmp_udp()
        t0 = time.monotonic()
        for fn, kind, addr, sid in plan:
            pr = ctx.Process(target=fn, args=(kind, addr, sid, args.seconds, args.rate, queue),
                             name="soak-%s%d" % (kind, sid))
            pr.start()
            senders.append(pr)
        expects = [queue.get(timeout=args.seconds + 300) for _ in plan]
        for pr in senders:
            pr.join(30)
        send_time = time.monotonic() - t0
        errors = [e.error for e in expects if e.error]
        r.check("every sender ran to the end", not errors, "\n".join(errors))

        # Let switchyard read what the kernel holds, then take the kernel's
        # counts before the socket goes away.
        time.sleep(1.0)
        kernel_udp_drops = udp_socket_drops(udp_port)
        snmp_after = snmp_udp()
        hwm = vm_hwm_kb(sy.pid)
        rc = sy.stop(timeout=60)
        r.check("switchyard exits 0 after SIGTERM", rc == 0, "exit code %r\n%s" % (rc, sy.logs()))
        cap.wait_quiet(quiet=0.6, timeout=30)
        flushed = Flushed(cap.lines())
        r.check("every captured line has a name, a value and a time", flushed.unparsed == 0,
                "%d lines without a value" % flushed.unparsed)

        verified = 0
        stream_lines = dgram_lines_sent = dgram_lines_recv = refused = 0
        loss_report = []

        def self_total(kind, what):
            return flushed.total("stats.statsd.switchyard.listener.%s.%s" % (listener_part(urls[kind]), what)) or 0

        for e in expects:
            if e.kind in ("tcp", "unix", "auth"):
                stream_lines += e.lines - e.refused
                refused += e.refused
                bad = []
                for name, want in e.counters.items():
                    got = flushed.total(name)
                    if got != want:
                        bad.append("%s: flushed %r, sent %r" % (name, got, want))
                for name, want in e.gauges.items():
                    got = flushed.last.get(name)
                    if got != want:
                        bad.append("%s: final %r, last sent %r" % (name, got, want))
                for name, want in e.sets.items():
                    got = flushed.total(name)
                    if got != want:
                        bad.append("%s: %r members flushed, %r sent" % (name, got, want))
                for name, (count, lo, hi) in e.timers.items():
                    got = (flushed.total(name + ".count"), flushed.minv.get(name + ".lower"),
                           flushed.maxv.get(name + ".upper"))
                    if got != (count, lo, hi):
                        bad.append("%s: count/lower/upper %r, sent %r" % (name, got, (count, lo, hi)))
                n = len(e.counters) + len(e.gauges) + len(e.sets) + len(e.timers)
                if not bad:
                    verified += n
                r.check("%s (%s): %d lines, %d aggregates exact, nothing lost" % (e.name, e.kind, e.lines, n),
                        not bad, "\n".join(bad[:20]) + ("\n... %d more" % (len(bad) - 20) if len(bad) > 20 else ""))

        # Datagram senders, per listener.
        for kind in ("udp", "ugram"):
            group = [e for e in expects if e.kind == kind]
            sent_d = sum(e.datagrams for e in group)
            recv_d = 0
            for e in group:
                p = e.prefix
                R = flushed.total("stats.counters.%s.dgrams.count" % p) or 0
                recv_d += R
                bad = []
                checks = {
                    "stats.counters.%s.c.count" % p: 3 * R,
                    "stats.counters.%s.cr.count" % p: 2 * R,
                    "stats.timers.%s.t.count" % p: 3 * R,
                    "stats.sets.%s.s.count" % p: 2 * R,
                }
                for name, want in checks.items():
                    got = flushed.total(name) or 0
                    if got != want:
                        bad.append("%s: %r flushed, %r expected for %d datagrams" % (name, got, want, R))
                if R:
                    lo = flushed.minv.get("stats.timers.%s.t.lower" % p)
                    hi = flushed.maxv.get("stats.timers.%s.t.upper" % p)
                    if (lo, hi) != (1, 500):
                        bad.append("%s.t lower/upper %r, expected (1, 500)" % (p, (lo, hi)))
                    g = flushed.last.get("stats.gauges.%s.g" % p)
                    if R == e.datagrams and g != e.datagrams - 1:
                        bad.append("%s.g: final %r, last sent %d and nothing lost" % (p, g, e.datagrams - 1))
                    elif g is None or g != int(g) or not 0 <= g < e.datagrams:
                        bad.append("%s.g: final %r is no value that was sent" % (p, g))
                dgram_lines_sent += e.lines
                dgram_lines_recv += int(R) * DGRAM_LINES
                if not bad:
                    verified += 6
                r.check("%s (%s): %d datagrams sent, %d arrived, aggregates consistent"
                        % (e.name, kind, e.datagrams, R), not bad, "\n".join(bad))
            lost = sent_d - recv_d
            sy_dropped = self_total(kind, "dropped")
            sy_too_long = self_total(kind, "lines_too_long")
            sy_received = self_total(kind, "received")
            kernel = kernel_udp_drops if kind == "udp" else 0
            detail = ("sent %d, arrived %d, lost %d; switchyard: received %d, dropped %d, too long %d; "
                      "kernel drops on its socket: %s" % (sent_d, recv_d, lost, sy_received, sy_dropped,
                                                           sy_too_long, kernel))
            loss_report.append("%-5s %s" % (kind, detail))
            if kernel is None:
                r.check("%s: the kernel's drop count of switchyard's socket is readable" % kind, False,
                        "no 127.0.0.1:%d in /proc/net/udp" % udp_port)
                kernel = 0
            r.check("%s: datagrams lost (%d) = switchyard's drops (%d) + the kernel's (%d)"
                    % (kind, lost, sy_dropped + sy_too_long, kernel),
                    lost == sy_dropped + sy_too_long + kernel, detail)
            r.check("%s: switchyard received every datagram the kernel did not drop" % kind,
                    sy_received == sent_d - kernel, detail)
            # At a paced rate, far below what one reader takes, datagram
            # loss is bounded like the streams' (which lose nothing): at
            # most 0.1% of what was sent, allowing for a machine that
            # stalls the reader now and then.  Flat out (--rate 0) the
            # loss is only accounted for, above.
            if args.rate > 0:
                bound = sent_d // 1000
                r.check("%s: at %d lines/s per sender at most 0.1%% of the datagrams lost (%d of %d)"
                        % (kind, args.rate, lost, sent_d), lost <= bound, detail)

        auth_rej = self_total("auth", "auth_rejected")
        r.check("auth: refused lines counted (%d)" % refused, auth_rej == refused,
                "auth_rejected %r, refused lines sent %d" % (auth_rej, refused))
        received = flushed.total("stats.counters.statsd.metrics_received.count") or 0
        want_received = stream_lines + dgram_lines_recv
        r.check("statsd.metrics_received = lines that arrived (%d)" % want_received,
                received == want_received, "metrics_received %r" % received)
        bad_lines = flushed.total("stats.counters.statsd.bad_lines_seen.count")
        r.check("no bad lines", bad_lines == 0, "bad_lines_seen %r" % bad_lines)

        sent_lines = sum(e.lines for e in expects)
        lost_lines = dgram_lines_sent - dgram_lines_recv
        udp_delta = {k: snmp_after.get(k, 0) - snmp_before.get(k, 0)
                     for k in ("InDatagrams", "InErrors", "RcvbufErrors")}
        r.note("senders: %d processes for %.1f s (%s lines/s each)" %
               (len(expects), send_time, "unlimited" if args.rate <= 0 else "%d" % args.rate))
        r.note("sent:      %d lines (%d over streams, %d in datagrams)" %
               (sent_lines, stream_lines + refused, dgram_lines_sent))
        r.note("received:  %d lines aggregated, %d refused (bad token)" % (received, auth_rej))
        r.note("verified:  %d aggregates exactly, over %d flushes" % (verified, cap.flush_count()))
        r.note("lost:      %d lines (%d datagrams), all over datagram sockets" %
               (lost_lines, lost_lines // DGRAM_LINES))
        for line in loss_report:
            r.note("  " + line)
        r.note("/proc/net/snmp Udp during the run (system-wide): InDatagrams +%d, InErrors +%d, "
               "RcvbufErrors +%d" % (udp_delta["InDatagrams"], udp_delta["InErrors"], udp_delta["RcvbufErrors"]))
        r.note("switchyard peak RSS (VmHWM): %s" % ("%.1f MiB" % (hwm / 1024.0) if hwm else "unknown"))
        return r.finish()
    finally:
        for pr in senders:
            if pr.is_alive():
                pr.terminate()
                pr.join(5)
        sy.stop()
        cap.close()
        if r.failed:
            print("switchyard log tail:\n" + sy.logs(3000))
            os.environ.setdefault("SY_KEEP_TMP", "1")
        remove_workdir(work)


if __name__ == "__main__":
    sys.exit(main())
