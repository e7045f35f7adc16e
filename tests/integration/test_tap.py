#!/usr/bin/env python3
"""Integration test: the live tap and top (issue 20), against the daemon.

  1. decisions: `tap ** N` on the console while known lines arrive over
     UDP and an auth TCP listener; each tapped line is checked against
     what was sent: dropped by a rule (its reason), renamed, sampled
     (kept with its rate, or sampled out), pass-through, a bad line, a
     tenant's line (its namespace), a wrong token and no token (refused,
     the token never shown); the summary line and END;
  2. bounds: a glob that matches some keys and not others; N lines and
     not one more; GET /tap the same as text, its chunked reply complete
     after N; a rate of 200 lines/s per tap under a flood (the rest
     skipped and counted); a console client that never reads while a
     flood goes on (its lines skipped, the daemon's buffer for it
     bounded); the fifth tap refused on the console and over HTTP, and
     a place freed when a client goes; globs over 256 bytes, empty, and
     bad N refused; /metrics counts it all;
  3. top: known samples and bytes per key, keys per prefix, per tenant
     and per listener, on the console and as /top's JSON; a key's samples
     charged to the listener and tenant they arrived from (its key count
     to those it was first seen from); bad arguments refused;
  4. ingest unaffected: every counter of the floods reaches the Graphite
     sink exactly (checked after the daemon's last flush).

Usage:  /usr/bin/python3 tests/integration/test_tap.py   ($SY_BIN)
"""
import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib import REPO_DIR  # noqa: E402
from lib import sanitizer  # noqa: E402
from lib.capture import GraphiteCapture  # noqa: E402
from lib.netutil import LOOPBACK, free_port, http_get, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

TEST_NAME = "test_tap"

CONFIG = """
local route = require "switchyard.route"
return {
  listen = { "udp://127.0.0.1:%(udp)d", { url = "tcp://127.0.0.1:%(auth)d", auth = true },
             "tcp://127.0.0.1:%(tcp)d" },
  mgmt_port = %(mgmt)d, httpAddress = "127.0.0.1:%(http)d",
  flushInterval = 3600000, shutdownTimeout = 5000,
  sinks = {
    carbon = { plugin = "graphite", host = "127.0.0.1", port = %(carbon)d },
    rep = { plugin = "repeater", host = "127.0.0.1", port = %(rep)d },
  },
  routes = {
    route.prefix "debug." :drop "%(why)s",
    route.prefix "t1.debug." :drop "tenant debug",
    route.glob "samp.*" :sample(0.5) :to "carbon",
    route.match "^legacy%%.(.+)$" :rename "apps.%%1" :to "carbon",
    route.prefix "raw." :passthrough "rep",
    route.default() :to "carbon",
  },
  auth = { tokens = { s3cret = "t1" } },
}
"""


class Console:
    """A console connection that reads what arrives into a buffer."""

    def __init__(self, port):
        self.sock = socket.create_connection((LOOPBACK, port), timeout=10)
        self.buf = b""

    def send(self, text):
        self.sock.sendall(text.encode())

    def read_until(self, marker, timeout=10.0):
        deadline = time.monotonic() + timeout
        while marker.encode() not in self.buf and time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            self.buf += data
        return self.buf.decode("utf-8", "replace")

    def take(self, marker, timeout=10.0):
        text = self.read_until(marker, timeout)
        i = text.find(marker)
        if i < 0:
            self.buf = b""
            return text
        cut = len(text[: i + len(marker)].encode())
        self.buf = self.buf[cut:]
        return text[: i + len(marker)]

    def close(self):
        self.sock.close()


def tap_lines(text):
    """The tapped lines of a reply (without its header, summary and END)."""
    return [l for l in text.split("\n") if "\t" in l]


def send_udp(port, payload):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(payload.encode(), (LOOPBACK, port))


def send_tcp(port, payload):
    with socket.create_connection((LOOPBACK, port), timeout=10) as s:
        s.sendall(payload.encode())


def metric(text, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def main():
    res = Results(TEST_NAME)
    binary = switchyard_binary()
    workdir = make_workdir("sy-tap-")
    carbon = GraphiteCapture()
    rep = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rep.bind((LOOPBACK, 0))
    ports = {"udp": free_port("udp"), "auth": free_port(), "tcp": free_port(), "mgmt": free_port(),
             "http": free_port(), "carbon": carbon.port, "rep": rep.getsockname()[1]}
    cfg = os.path.join(workdir, "tap.lua")
    with open(cfg, "w") as f:
        f.write(CONFIG % dict(ports, why="debug stays home"))
    proc = Process("switchyard", [binary, "-c", cfg], workdir, cwd=REPO_DIR).start()
    udp_l = "udp://127.0.0.1:%d" % ports["udp"]
    auth_l = "tcp://127.0.0.1:%d" % ports["auth"]
    tcp_l = "tcp://127.0.0.1:%d" % ports["tcp"]
    flood_sent = {}
    try:
        if not res.check("daemon starts", wait_for_port(ports["http"], 10, alive=proc.alive),
                         proc.logs()):
            return res.finish()
        wait_for_port(ports["mgmt"], 10, alive=proc.alive)

        # ---- 1. decisions, line by line --------------------------------
        con = Console(ports["mgmt"])
        con.send("tap ** 40\n")
        head = con.take("\n")
        res.check("tap: header", head == "tap: **, up to 40 lines (200 a second at most); send a line to stop\n",
                  repr(head))
        udp_lines = ["debug.x:1|c", "legacy.db.q:3|c", "samp.a:1|c", "samp.b:1|c", "raw.x:5|ms",
                     "api.req:1|c", "bad line", "two:1|c"]
        send_udp(ports["udp"], "\n".join(udp_lines))
        con.read_until("two:1|c\t")
        send_tcp(ports["auth"], "s3cret.api.x:1|c\nwrong.api.y:1|c\nnotoken:1|c\ns3cret.debug.z:1|c\n")
        con.read_until("debug.z:1|c\t")
        con.send("\n")  # stop
        text = con.take("END\n\n")
        got = tap_lines(text)
        tail = " tenant=- listener=%s sender=127.0.0.1" % udp_l
        want = [
            'debug.x:1|c\tdropped reason="debug stays home" name=debug.x' + tail,
            "legacy.db.q:3|c\trouted sinks=carbon name=apps.db.q" + tail,
            None, None,  # samp.a, samp.b: either way
            "raw.x:5|ms\trouted sinks=- passthrough=rep name=raw.x" + tail,
            "api.req:1|c\trouted sinks=carbon name=api.req" + tail,
            'bad\\x20line\tbad reason="bad line"' + tail,
            "two:1|c\trouted sinks=carbon name=two" + tail,
            "api.x:1|c\trouted sinks=carbon name=t1.api.x tenant=t1 listener=%s sender=127.0.0.1" % auth_l,
            'api.y:1|c\trefused reason="token refused" tenant=- listener=%s sender=127.0.0.1' % auth_l,
            'notoken:1|c\trefused reason="no token" tenant=- listener=%s sender=127.0.0.1' % auth_l,
            'debug.z:1|c\tdropped reason="tenant debug" name=t1.debug.z tenant=t1 listener=%s '
            "sender=127.0.0.1" % auth_l,
        ]
        res.check("tap: one line per line sent", len(got) == len(want), text)
        for i, w in enumerate(want):
            g = got[i] if i < len(got) else "(missing)"
            if w is None:
                k = udp_lines[i]
                ok = g in ("%s\tsampled-out sinks=carbon sample=0.5 name=%s%s" % (k, k[:6], tail),
                           "%s\trouted sinks=carbon sample=0.5 name=%s%s" % (k, k[:6], tail))
                res.check("tap: %s sampled (kept or left out, rate 0.5)" % k, ok, g)
            else:
                res.check("tap: %s" % w.split("\t")[0], g == w, "got  %r\nwant %r" % (g, w))
        res.check("tap: the token is never shown", "s3cret" not in text and "wrong" not in text, text)
        res.check("tap: summary after a stop", re.search(
            r"^tap: 12 lines shown; skipped: 0 over the rate \(200/s\), 0 for a full queue, "
            r"0 for a slow reader\nEND\n\n$", text, re.M) is not None, text)
        con.send("health\n")
        res.check("tap: the console takes commands again", con.take("\n") == "health: up\n")

        # a reload: the tap shows the new config's decision
        with open(cfg, "w") as f:
            f.write(CONFIG % dict(ports, why="debug goes nowhere now"))
        con.send("reload\n")
        r = con.take("END\n\n")
        # 'reload: ok' says the config loaded; the engine applies it once it
        # has asked it about every live key (its log line says so): lines
        # sent before then are still routed by the old rules
        wait_until(lambda: "live keys decided by the new config" in
                   open(proc.stderr_path, errors="replace").read(), 10)
        con.send("tap debug.** 2\n")
        con.take("\n")
        send_udp(ports["udp"], "debug.new:2|c\ndebug.x:2|c")
        text = con.take("END\n\n")
        got = tap_lines(text)
        # debug.x was decided before the reload was applied (predecide.h):
        # that table keeps the rule's reason too
        res.check("tap after a reload: a new key and a key decided before the swap both show the new "
                  "rule's reason",
                  got == ['debug.new:2|c\tdropped reason="debug goes nowhere now" name=debug.new' + tail,
                          'debug.x:2|c\tdropped reason="debug goes nowhere now" name=debug.x' + tail],
                  r + text)
        m = re.search(r"reload: (\d+) live keys decided by the new config .*the decisions take \d+ KiB "
                      r"for (\d+) keys", open(proc.stderr_path, errors="replace").read())
        res.note("prepared reload: %s" % (m.group(0) if m else "(no line)"))
        res.check("the reload was prepared (debug.x decided before the swap), its log line says the "
                  "table's size", m is not None and int(m.group(1)) >= 1 and int(m.group(2)) >= 1, proc.logs())

        # ---- 2. glob, N, HTTP ------------------------------------------
        con.send("tap api.* 3\n")
        con.take("\n")
        send_udp(ports["udp"], "api.a:1|c\nother:1|c\napi.b.c:2|c\napi.d:1|c\napi.e:1|c\napi.f:1|c")
        text = con.take("END\n\n")
        names = [l.split("\t")[0] for l in tap_lines(text)]
        res.check("tap: glob api.* matches api.a, api.d, api.e (not other, not api.b.c); N=3 stops it",
                  names == ["api.a:1|c", "api.d:1|c", "api.e:1|c"] and "tap: 3 lines shown" in text, text)

        out = {}

        def http_tap():
            out["r"] = http_get(ports["http"], "/tap?glob=legacy.%2A&n=2", timeout=15)
        th = threading.Thread(target=http_tap)
        th.start()
        time.sleep(0.5)
        send_udp(ports["udp"], "legacy.one:1|c\nnope:1|c\nlegacy.two:2|g\nlegacy.three:1|c")
        th.join(15)
        status, headers, body = out.get("r", (None, {}, ""))
        want = ["legacy.one:1|c\trouted sinks=carbon name=apps.one" + tail,
                "legacy.two:2|g\trouted sinks=carbon name=apps.two" + tail]
        res.check("GET /tap: 200, text, the two lines, then the summary and the end of the reply",
                  status == 200 and tap_lines(body) == want and body.endswith("for a slow reader\n"),
                  "%r %r" % (status, body))

        # ---- refusals: sizes and N -------------------------------------
        for arg, why in (("x" * 257, "a glob of 1 to 256 bytes"), ("x" * 8000, "a glob of 1 to 256 bytes"),
                         ("a.* 0", "N is 1 to 100000"), ("a.* 100001", "N is 1 to 100000"),
                         ("a.* ten", "N is 1 to 100000")):
            con.send("tap %s\n" % arg)
            r = con.take("END\n\n")
            res.check("tap refused: %s (%d bytes)" % (why, len(arg)), r.startswith("ERROR: tap: " + why), r[:200])
        con.send("tap\n")
        res.check("tap without a glob: usage", con.take("END\n\n") == "ERROR: tap GLOB [N]\nEND\n\n")
        st, _, body = http_get(ports["http"], "/tap?glob=" + "x" * 5000)
        res.check("GET /tap with a 5000-byte glob: 400", st == 400 and "glob of 1 to 256" in body, "%r %r" % (st, body))
        st, _, body = http_get(ports["http"], "/tap")
        res.check("GET /tap without glob: 400", st == 400, "%r %r" % (st, body))

        # ---- the cap on taps at once -----------------------------------
        holders = []
        for i in range(4):
            c = Console(ports["mgmt"])
            c.send("tap nothing.here.%d\n" % i)
            holders.append((c, c.take("\n")))
        res.check("4 taps open at once", all(h.startswith("tap: nothing.here") for _, h in holders),
                  repr([h for _, h in holders]))
        con.send("tap ** 5\n")
        r = con.take("END\n\n")
        res.check("the 5th tap is refused", r.startswith("ERROR: tap: 4 taps are open already"), r)
        st, hd, body = http_get(ports["http"], "/tap?glob=x")
        res.check("GET /tap as the 5th: 503 with Retry-After", st == 503 and "Retry-After" in hd, "%r %r" % (st, body))
        holders[0][0].close()  # gone: its place is freed
        ok = wait_until(lambda: (con.send("tap none 1\n"), con.read_until("\n", 2))[1].startswith("tap: none"), 5,
                        step=0.2)
        res.check("a client that goes frees its tap", ok, con.buf.decode())
        con.send("\n")
        con.take("END\n\n")
        for c, _ in holders[1:]:
            c.close()

        # ---- 3. top -----------------------------------------------------
        wait_until(lambda: metric(http_get(ports["http"], "/metrics")[2], "switchyard_taps_open") == 0, 5)
        top_lines = ["hot.a:1|c"] * 50 + ["hot.b:22|ms"] * 30 + ["cold.c:1|g"] * 5
        send_tcp(ports["tcp"], "\n".join(top_lines) + "\n")
        send_tcp(ports["auth"], "s3cret.ten.x:1|c\n" * 7)
        # both connections' lines are in: the last of each (cold.c, and the
        # seventh t1.ten.x) counted, so that top sees the whole interval
        wait_until(lambda: (lambda t: "cold.c" in t and "t1.ten.x" in t)(
            (lambda c: (c.send("keys\n"), c.take("END\n\n"))[1])(con)), 5)
        wait_until(lambda: (lambda t: re.search(r"^\s*7 samples .* t1\.ten\.x ", t, re.M) is not None)(
            (lambda c: (c.send("top 1000 by=samples\n"), c.take("END\n\n"))[1])(con)), 5)
        con.send("top 3 by=samples depth=1\n")
        text = con.take("END\n\n")
        rows = re.findall(r"^ +(\d+) samples +(\d+) bytes  (\S+) +(\S+)  tenant=(\S+) listener=(\S+)$", text, re.M)
        want_rows = [("50", str(50 * 10), "c", "hot.a", "-", tcp_l), ("30", str(30 * 12), "ms", "hot.b", "-", tcp_l),
                     ("7", str(7 * 17), "c", "t1.ten.x", "t1", auth_l)]
        res.check("top 3 by samples: hot.a 50, hot.b 30, t1.ten.x 7 (samples, bytes, type, tenant, listener)",
                  rows == want_rows, text)
        m = re.search(r"^ +(\d+) keys +(\d+) samples +(\d+) bytes  hot$", text, re.M)
        res.check("top: prefix hot has 2 keys, 80 samples, 860 bytes",
                  m is not None and m.groups() == ("2", "80", "860"), text)
        # t1.debug.z is dropped, but its decision is kept in the table
        m = re.search(r"^tenants.*\n(?:.*\n)*? +3 keys +8 samples +136 bytes  t1$", text, re.M)
        res.check("top: tenant t1 has 3 keys (t1.api.x, t1.ten.x, dropped t1.debug.z), 8 samples, 136 bytes",
                  m is not None, text)
        con.send("top 2 by=bytes depth=2\n")
        text = con.take("END\n\n")
        rows = re.findall(r"^ +\d+ samples +(\d+) bytes  \S+ +(\S+)  ", text, re.M)
        res.check("top 2 by bytes: hot.a (500), hot.b (360)", rows == [("500", "hot.a"), ("360", "hot.b")], text)
        for arg in ("0", "1001", "by=rows", "depth=0", "depth=9"):
            con.send("top %s\n" % arg)
            r = con.take("END\n\n")
            res.check("top %s refused" % arg, r.startswith("ERROR: top"), r)
        st, hd, body = http_get(ports["http"], "/top?n=50&by=keys&depth=1")
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        pre = {p["prefix"]: p for p in doc.get("prefixes", [])}
        ten = {t["tenant"]: t for t in doc.get("tenants", [])}
        lis = {x["listener"]: x for x in doc.get("listeners", [])}
        res.check("GET /top: JSON, 200", st == 200 and doc.get("by") == "keys", "%r %r" % (st, body[:500]))
        res.check("GET /top: prefixes hot 2 keys (80 samples), cold 1 key (5 samples)",
                  pre.get("hot", {}).get("keys") == 2 and pre["hot"]["samples"] == 80 and
                  pre.get("cold", {}).get("keys") == 1 and pre["cold"]["samples"] == 5, body[:2000])
        res.check("GET /top: tenant t1 3 keys 8 samples; listener %s 3 keys 85 samples" % tcp_l,
                  ten.get("t1", {}).get("samples") == 8 and ten["t1"]["keys"] == 3 and lis.get(tcp_l, {}).get("keys") == 3 and
                  lis[tcp_l]["samples"] == 85, body[:2000])
        keys = [(k["key"], k["samples"], k["bytes"]) for k in doc.get("keys", [])][:3]
        res.check("GET /top: the keys by samples", keys == [("hot.a", 50, 500), ("hot.b", 30, 360), ("t1.ten.x", 7, 119)],
                  repr(keys))
        # samples charged where they arrive: hot.a (first seen over TCP)
        # 20 times over UDP, t1.ten.x (first seen with t1's token) 3 times
        # over plain TCP with no token
        def top_doc():
            try:
                return json.loads(http_get(ports["http"], "/top?n=50&by=keys&depth=1")[2])
            except ValueError:
                return {}

        def groups_of(doc, what, field):
            return {g[field]: g for g in doc.get(what, [])}

        def key_samples(doc, name):
            return {k["key"]: k["samples"] for k in doc.get("keys", [])}.get(name)

        before = top_doc()
        send_udp(ports["udp"], "hot.a:1|c\n" * 20)
        send_tcp(ports["tcp"], "t1.ten.x:1|c\n" * 3)
        wait_until(lambda: (lambda d: key_samples(d, "hot.a") == 70 and key_samples(d, "t1.ten.x") == 10)(top_doc()),
                   5, step=0.1)
        after = top_doc()
        lb, la = groups_of(before, "listeners", "listener"), groups_of(after, "listeners", "listener")
        tb, ta = groups_of(before, "tenants", "tenant"), groups_of(after, "tenants", "tenant")

        def delta(b, a, name, what):
            return a.get(name, {}).get(what, 0) - b.get(name, {}).get(what, 0)
        res.check("GET /top: the keys counted all their samples (hot.a 70, t1.ten.x 10), under the listener "
                  "and tenant first seen; attribution named",
                  key_samples(after, "hot.a") == 70 and key_samples(after, "t1.ten.x") == 10 and
                  after.get("attribution") == {"keys": "first_seen", "samples": "arrival", "bytes": "arrival"},
                  json.dumps(after)[:1500])
        res.check("GET /top: listeners: %s got the 20 samples (200 bytes) that arrived over it, %s the 3 (39 "
                  "bytes) over it; their keys unchanged" % (udp_l, tcp_l),
                  (delta(lb, la, udp_l, "samples"), delta(lb, la, udp_l, "bytes"), delta(lb, la, tcp_l, "samples"),
                   delta(lb, la, tcp_l, "bytes"), delta(lb, la, udp_l, "keys"), delta(lb, la, tcp_l, "keys")) ==
                  (20, 200, 3, 39, 0, 0), "before %r\nafter %r" % (lb, la))
        res.check("GET /top: tenants: t1 unchanged (its token was not used), no tenant (-) got all 23 samples",
                  (delta(tb, ta, "t1", "samples"), delta(tb, ta, "-", "samples"), delta(tb, ta, "t1", "keys")) ==
                  (0, 23, 0), "before %r\nafter %r" % (tb, ta))
        con.send("top 1 depth=1\n")
        text = con.take("END\n\n")
        res.check("top: the console says how listeners and tenants are counted",
                  re.search(r"^listeners \(1 of \d+; keys where first seen, samples and bytes where they arrived\):$",
                            text, re.M) is not None and
                  re.search(r"^tenants \(1 of \d+; keys where first seen, samples and bytes where they arrived\):$",
                            text, re.M) is not None, text)

        st, _, body = http_get(ports["http"], "/top?by=nope")
        res.check("GET /top?by=nope: 400", st == 400, "%r %r" % (st, body))

        # ---- rate and a slow reader under a flood ----------------------
        fast = Console(ports["mgmt"])
        fast.send("tap flood.** 100000\n")
        fast.take("\n")
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((LOOPBACK, ports["mgmt"]))
        slow.sendall(b"tap ** 100000\n")  # and never reads
        t0 = time.monotonic()
        pad = "p" * 900
        rounds, per = 40, 500
        with socket.create_connection((LOOPBACK, ports["tcp"]), timeout=30) as s:
            for r in range(rounds):
                s.sendall("".join("flood.%s.k%d:1|c\n" % (pad, i) for i in range(per)).encode())
                time.sleep(0.1)
        flood_sent["flood.%s.k" % pad] = rounds
        elapsed = time.monotonic() - t0
        time.sleep(0.5)
        fast.send("\n")
        text = fast.take("END\n\n", timeout=20)
        n = len(tap_lines(text))
        m = re.search(r"tap: (\d+) lines shown; skipped: (\d+) over the rate", text)
        bound = 200 * (int(elapsed + 1.5) + 1)
        res.check("rate: a tap shows at most 200 lines a second (%d in %.1f s, bound %d), the rest skipped "
                  "and counted" % (n, elapsed, bound),
                  m is not None and 0 < n <= bound and int(m.group(1)) == n and
                  n + int(m.group(2)) >= rounds * per * 0.9, text[-400:])
        mt = http_get(ports["http"], "/metrics")[2]
        pending = metric(mt, "switchyard_admin_console_pending_bytes")
        slow_skips = metric(mt, 'switchyard_tap_skipped_total{reason="slow_client"}')
        res.note("slow reader: %s bytes pending, %s lines skipped for it" % (pending, slow_skips))
        res.check("slow reader: its lines are skipped and counted, its pending output bounded (<= 64 KiB + "
                  "one poll's lines)", slow_skips and slow_skips > 0 and pending is not None and
                  pending <= 64 * 1024 + 64 * 1024 + 16 * 1024, mt[-3000:])
        res.check("/metrics: taps total, rate skips, tap refusals, top's 6 refusals",
                  metric(mt, "switchyard_taps_total") >= 9 and
                  metric(mt, 'switchyard_tap_skipped_total{reason="rate"}') > 0 and
                  metric(mt, 'switchyard_tap_refused_total{reason="busy"}') >= 2 and
                  metric(mt, 'switchyard_tap_refused_total{reason="bad"}') >= 6 and
                  metric(mt, "switchyard_top_refused_total") == 6, mt[-3000:])
        slow.close()
        fast.close()
        con.close()
    finally:
        code = proc.stop()
        stderr = open(proc.stderr_path, errors="replace").read()
        res.check("daemon exits cleanly (%r)" % code, code == 0, proc.logs())
        sanitizer.check_clean(res, "switchyard", binary, proc.pid, stderr)
    # ---- 4. every flood counter reached carbon --------------------------
    carbon.wait_quiet(1.0, 10)
    sums = {}
    for line in carbon.lines():
        if line.name and line.name.startswith("stats_counts.flood."):
            sums[line.name] = sums.get(line.name, 0) + float(line.value)
    pad = "p" * 900
    want = {"stats_counts.flood.%s.k%d" % (pad, i): 40.0 for i in range(500)}
    bad = [k for k in want if sums.get(k) != want[k]]
    res.check("ingest unaffected: each of 500 flood counters reached carbon exactly (40), taps and a slow "
              "reader notwithstanding", flood_sent and not bad and len(sums) == 500,
              "%d wrong, e.g. %r" % (len(bad), [(k[-8:], sums.get(k)) for k in bad[:5]]))
    carbon.close()
    rep.close()
    remove_workdir(workdir)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
