#!/usr/bin/env python3
"""Integration test: appstats-style traces in a real memcached.

Starts memcached (`-vv`, so its log shows every command in order) on a free
loopback port, then
  1. checks the memcached harness itself (a raw set reads back);
  2. the reader, `switchyard traces`, on records written here by hand in
     the documented format: list newest first with totals per path and per
     span name, --limit, `show START_MS`, a stale START_MS refused, garbage
     and foreign records ignored, hostile strings printed harmlessly, and a
     fake memcached sending broken replies (the reader fails cleanly);
     columns that stay aligned when values hold CJK (two columns each),
     accented and combining characters;
  3. the memcache_traces sink inside the real daemon, fed trace timers over
     UDP and routed with `route.tag "trace" :passthrough "traces"`: a trace
     with a root and three children lands under the right slot keys, full
     before part, with the expiry set; the reader lists and shows it; a
     trace without root is written after timeoutMs; memcached restarted
     mid-stream: traces queued meanwhile arrive once it is back, and those
     beyond maxQueueBytes are counted as dropped; start times a client
     puts out of range (a root of 1e308 ms, an off of 99999999 ms) are
     clamped to maxTraceMs before arrival and counted as adjusted.

The reader runs as `switchyard traces`; while core/main.c does not route
that subcommand yet, a small driver calling sy_traces_main() is linked
against build/libswitchyard-tools.a and -core.a in the temp dir instead (said in the
output).

Usage:  /usr/bin/python3 tests/integration/test_traces.py [PART...]   ($SY_BIN)
        PART: reader, garbage, width, daemon (default: all)
"""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib import REPO_DIR  # noqa: E402
from lib.daemon import Daemon  # noqa: E402
from lib.netutil import LOOPBACK, free_port, free_port_pair, send_udp, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

TEST_NAME = "test_traces"
MEMCACHED = "/usr/bin/memcached"
PREFIX = "it:traces"


def slot(ms):
    return ((ms // 100) % 1000) * 100


def key(prefix, ms, kind):
    return "%s:%06d:%s" % (prefix, slot(ms), kind)


# ---------------------------------------------------------------------------
# memcached

class Memcached:
    """memcached -vv on 127.0.0.1:port; its log (stderr) keeps every command."""

    def __init__(self, workdir, port=None):
        self.workdir = workdir
        self.port = port or free_port("tcp")
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        argv = [MEMCACHED, "-l", LOOPBACK, "-p", self.port, "-U", "0", "-m", "64", "-vv"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # memcached refuses to run as root otherwise
        self.proc = Process("memcached-%d" % self.starts, argv, self.workdir).start()
        return wait_for_port(self.port, 10, alive=self.proc.alive)

    def stop(self):
        return self.proc.stop() if self.proc else None

    def log(self):
        """Every start's log, in order."""
        out = []
        for i in range(1, self.starts + 1):
            try:
                with open(os.path.join(self.workdir, "memcached-%d.stderr" % i), "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "".join(out)

    def logs(self):
        return self.proc.logs() if self.proc else "(memcached never started)"

    def request(self, payload, until=(b"END\r\n",)):
        """Send raw protocol bytes; read until the reply ends with one of
        `until`."""
        with socket.create_connection((LOOPBACK, self.port), timeout=5) as s:
            s.sendall(payload)
            data = b""
            while not any(data.endswith(u) for u in until):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            return data

    def set(self, k, value, exptime=0):
        data = value if isinstance(value, bytes) else value.encode()
        reply = self.request(b"set %s 0 %d %d\r\n%s\r\n" % (k.encode(), exptime, len(data), data),
                             until=(b"\r\n",))
        return reply == b"STORED\r\n"

    def get_many(self, keys):
        """{key: bytes} for the keys that exist, from one multi-get."""
        reply = self.request(("get " + " ".join(keys) + "\r\n").encode())
        out, pos = {}, 0
        while True:
            nl = reply.index(b"\r\n", pos)
            line = reply[pos:nl].decode()
            if line == "END":
                return out
            _, k, _, n = line.split(" ")[:4]
            out[k] = reply[nl + 2:nl + 2 + int(n)]
            pos = nl + 2 + int(n) + 2

    def ttl(self, k):
        """The remaining time to live (meta get), None when missing."""
        reply = self.request(("mg %s t\r\n" % k).encode(), until=(b"\r\n",)).decode()
        m = re.match(r"HD t(-?\d+)", reply)
        return int(m.group(1)) if m else None

    def flush_all(self):
        return self.request(b"flush_all\r\n", until=(b"OK\r\n",)) == b"OK\r\n"


def all_parts(mc, prefix):
    keys = ["%s:%06d:part" % (prefix, s * 100) for s in range(1000)]
    return {k: json.loads(v) for k, v in mc.get_many(keys).items()}


# ---------------------------------------------------------------------------
# the reader

DRIVER_C = """\
#include "tools/traces/traces.h"
int main(int argc, char **argv) { return sy_traces_main(argc - 1, argv + 1); }
"""


def reader_command(workdir, results):
    """argv prefix for `switchyard traces`, or None."""
    binary = switchyard_binary()
    try:
        r = subprocess.run([binary, "traces", "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        if r.returncode == 0 and b"switchyard traces" in r.stdout:
            return [binary, "traces"]
    except OSError:
        pass
    lib = [os.path.join(REPO_DIR, "build", a) for a in ("libswitchyard-tools.a", "libswitchyard-core.a")]
    src = os.path.join(workdir, "traces_driver.c")
    exe = os.path.join(workdir, "traces_driver")
    with open(src, "w") as f:
        f.write(DRIVER_C)
    libs = subprocess.run(["pkg-config", "--libs", "luajit", "libevent", "libevent_pthreads"],
                          stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
    cmd = ["cc", "-o", exe, src, "-I" + os.path.join(REPO_DIR, "core"),
           "-I" + os.path.join(REPO_DIR, "plugins")] + lib + libs + ["-ldl", "-lm", "-pthread"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if not results.check("a reader is available (switchyard traces, or a driver linked "
                         "against libswitchyard-core.a)", r.returncode == 0,
                         " ".join(cmd) + "\n" + r.stdout.decode("utf-8", "replace")):
        return None
    results.note("`switchyard traces` is not wired in main.c yet: using %s" % exe)
    return [exe, "traces"]


def run_reader(reader, *args, timeout=30):
    r = subprocess.run(reader + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def parse_list(out):
    """The list output as (rows, by_path, by_name): rows are
    (start_ms, duration, spans, status, method, path); by_path maps path to
    (count, total, mean); by_name maps a span name to (count, total)."""
    rows, by_path, by_name, section = [], {}, {}, None
    for line in out.splitlines():
        if line.startswith("START (UTC)"):
            section = "rows"
            continue
        if line.startswith("PATH "):
            section = "path"
            continue
        if line.startswith("SPAN NAME "):
            section = "name"
            continue
        if not line.strip() or line.startswith("by "):
            if section == "rows":
                section = None
            continue
        f = line.split()
        if section == "rows":
            rows.append((int(f[1]), float(f[2]), int(f[4]), f[5], f[6], " ".join(f[7:])))
        elif section == "path":
            by_path[f[0]] = (int(f[1]), float(f[2]), float(f[3]))
        elif section == "name":
            by_name[f[0]] = (int(f[1]), float(f[2]))
    return rows, by_path, by_name


# ---------------------------------------------------------------------------
# 1 + 2: memcached and the reader on hand-written records

def record(start, trace, duration, method, path, status, spans, closed="root"):
    """The full and part records the sink writes (plugins/memcache_traces/)."""
    head = {"version": 1, "trace": trace, "start": start, "duration": duration,
            "method": method, "path": path, "status": status, "root": True, "closed": closed}
    full = dict(head)
    full["spans"] = [{"name": n, "off": o, "dur": d, "tags": t} for n, o, d, t in spans]
    full["span_count"] = len(spans)
    full["spans_dropped"] = 0
    stats = {}
    for n, _, d, _ in spans:
        c, tot = stats.get(n, (0, 0))
        stats[n] = (c + 1, tot + d)
    part = dict(head)
    part["span_count"] = len(spans)
    part["spans_dropped"] = 0
    part["stats"] = [{"name": n, "count": c, "total": t} for n, (c, t) in sorted(stats.items())]
    part["stats_truncated"] = False
    return json.dumps(full), json.dumps(part)


def check_reader(results, mc, reader):
    prefix = "hand"
    base = 1700000000000
    t1, t2, t3, t4 = base + 123, base + 5250, base + 9999, base + 20000
    traces = [
        (t1, "one", 120, "GET", "/a", "200",
         [("api.req", 0, 120, []), ("db.query", 1, 5, ["table:users"]), ("db.query", 10, 7, [])]),
        (t2, "two", 80, "GET", "/a", "200", [("api.req", 0, 80, []), ("cache.get", 3, 0.5, [])]),
        (t3, "three", 40, "POST", "/b", "500", [("api.req", 0, 40, []), ("db.query", 2, 30, [])]),
        (t4, 'fo"ur', 10, "GET", "/evil\x1b[2J\x07", "2\u00e9", [("api\x1bx", 0, 10, [])]),
    ]
    for t in traces:
        full, part = record(*t)
        mc.set(key(prefix, t[0], "full"), full)
        mc.set(key(prefix, t[0], "part"), part)
    # records to be ignored: not JSON, version 2, a start from another slot,
    # binary junk
    mc.set("%s:%06d:part" % (prefix, 300), "not json {")
    mc.set("%s:%06d:part" % (prefix, 400), json.dumps({"version": 2, "start": base + 400}))
    mc.set("%s:%06d:part" % (prefix, 500), record(base + 600, "x", 1, "GET", "/z", "200",
                                                  [("a", 0, 1, [])])[1])
    mc.set("%s:%06d:part" % (prefix, 700), bytes(range(256)))
    mc.set("%s:%06d:full" % (prefix, 800), "garbage")
    mc.set("%s:%06d:part" % (prefix, 800), record(base + 800, "y", 1, "GET", "/y", "200",
                                                  [("a", 0, 1, [])])[1])

    rc, out, err = run_reader(reader, "--memcached", "%s:%d" % (LOOPBACK, mc.port),
                              "--prefix", prefix)
    rows, by_path, by_name = parse_list(out)
    results.check("reader: lists exit 0", rc == 0, out + err)
    starts = [r[0] for r in rows]
    results.check("reader: the 5 valid traces, newest first",
                  starts == [t4, t3, t2, base + 800, t1], "rows %r\n%s" % (rows, out))
    row1 = [r for r in rows if r[0] == t1]
    results.check("reader: a row has duration, spans, status, method and path",
                  row1 == [(t1, 120.0, 3, "200", "GET", "/a")], "%r" % row1)
    results.check("reader: the start time is printed as ISO too",
                  "2023-11-14T22:13:20.123Z  1700000000123" in out, out)
    results.check("reader: totals per path (count, total, mean)",
                  by_path.get("/a") == (2, 200.0, 100.0) and by_path.get("/b") == (1, 40.0, 40.0),
                  "%r" % by_path)
    results.check("reader: totals per span name (count, total)",
                  by_name.get("api.req") == (3, 240.0) and by_name.get("db.query") == (3, 42.0)
                  and by_name.get("cache.get") == (1, 0.5), "%r" % by_name)
    results.check("reader: control characters from records are not printed",
                  "\x1b" not in out and "\x07" not in out and "/evil?[2J?" in out,
                  repr(out))
    results.check("reader: non-ASCII text is kept", "2\u00e9" in out, out)
    results.check("reader: ignored records are reported (not JSON, version 2, wrong slot, junk)",
                  "4 records ignored" in err, err)

    rc, out, err = run_reader(reader, "--memcached", "%s:%d" % (LOOPBACK, mc.port),
                              "--prefix", prefix, "--limit", "2")
    rows, by_path, _ = parse_list(out)
    results.check("reader: --limit 2 lists the 2 newest, totals still over all",
                  rc == 0 and [r[0] for r in rows] == [t4, t3] and by_path.get("/a", (0,))[0] == 2,
                  out + err)

    rc, out, err = run_reader(reader, "--memcached", "%s:%d" % (LOOPBACK, mc.port),
                              "--prefix", prefix, "show", str(t1))
    spans = [tuple(line.split(None, 3)) for line in out.split("OFFSET_MS", 1)[-1].splitlines()[1:]]
    results.check("reader: show START prints the trace's spans with offsets and tags",
                  rc == 0 and "trace     one" in out and "GET /a  status 200" in out and
                  spans == [("0", "120", "api.req"), ("1", "5", "db.query", "table:users"),
                            ("10", "7", "db.query")], out + err + "\n%r" % spans)
    stale = t1 + 100000  # same slot, 100 s later
    rc, out, err = run_reader(reader, "--memcached", "%s:%d" % (LOOPBACK, mc.port),
                              "--prefix", prefix, "show", str(stale))
    results.check("reader: show of a start whose slot was reused is refused (exit 1)",
                  rc == 1 and out.strip() == "trace %d is no longer stored (slot now holds %d)"
                  % (stale, t1), "rc %d\n%s%s" % (rc, out, err))
    rc, out, err = run_reader(reader, "--memcached", "%s:%d" % (LOOPBACK, mc.port),
                              "--prefix", prefix, "show", str(base + 42000))
    results.check("reader: show of an empty slot: exit 1", rc == 1 and "no longer stored" in out,
                  "rc %d\n%s%s" % (rc, out, err))
    rc, out, err = run_reader(reader, "--memcached", "%s:%d" % (LOOPBACK, mc.port),
                              "--prefix", prefix, "show", str(base + 800))
    results.check("reader: show of an unreadable full record: exit 1, says why",
                  rc == 1 and "cannot be read" in out, "rc %d\n%s%s" % (rc, out, err))
    rc, out, err = run_reader(reader, "--memcached", "%s:%d" % (LOOPBACK, mc.port), "show", "x1")
    results.check("reader: a bad START_MS is a usage error (exit 2)", rc == 2, out + err)
    rc, out, err = run_reader(reader, "--memcached", "%s:%d" % (LOOPBACK, free_port()))
    results.check("reader: memcached down: exit 2 with a message",
                  rc == 2 and "cannot connect" in err, out + err)


def display_width(text):
    """Terminal columns, as a terminal draws them: East Asian wide and
    fullwidth characters two, combining marks and format characters none."""
    w = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        w += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return w


def table_lines(out, header):
    """The lines of the table whose header line starts with `header`, the
    header included, up to the blank line after it."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header):
            end = i + 1
            while end < len(lines) and lines[end].strip():
                end += 1
            return lines[i:end]
    return []


def check_reader_width(results, mc, reader):
    """Columns after a value line up by terminal columns: CJK takes two,
    a combining accent none, an accented letter one."""
    prefix = "wide"
    base = 1700000100000
    long_cjk = "\u540d" * 40  # 80 columns: cut to the 60-column limit
    traces = [
        (base + 100, "w1", 10, "GET", "/\u65e5\u672c\u8a9e/\u30da\u30fc\u30b8", "200",
         [("\u540d\u524d.\u30af\u30a8\u30ea", 0, 10, [])]),
        (base + 200, "w2", 20, "\uff27\uff25\uff34", "/ascii/path", "\uff12\uff10\uff10",
         [("plain.name", 0, 20, [])]),
        (base + 300, "w3", 30, "GET", "/he\u0301llo", "2\u00f60", [("nai\u0308ve.span", 0, 30, [])]),
        (base + 400, "w4", 40, "GET", "/" + long_cjk, "200", [(long_cjk, 0, 40, [])]),
    ]
    for t in traces:
        full, part = record(*t)
        mc.set(key(prefix, t[0], "full"), full)
        mc.set(key(prefix, t[0], "part"), part)
    rc, out, err = run_reader(reader, "--memcached", "%s:%d" % (LOOPBACK, mc.port),
                              "--prefix", prefix)
    results.check("reader (wide text): lists exit 0", rc == 0, out + err)
    rows = table_lines(out, "START (UTC)")
    col = display_width(rows[0].split("PATH")[0]) if rows else -1
    starts = {}
    for line in rows[1:]:
        f = line.split()
        starts[int(f[1])] = line
    bad = []
    for t in traces[:3]:
        line = starts.get(t[0], "")
        if not line.endswith(t[4]) or display_width(line[:-len(t[4])]) != col:
            bad.append(line)
    results.check("reader (wide text): every path starts in the PATH column, after a "
                  "fullwidth method and status", len(rows) == 5 and not bad,
                  "header PATH at column %d; misplaced:\n%s\n%s" % (col, "\n".join(bad), out))
    for header in ("PATH ", "SPAN NAME "):
        lines = table_lines(out, header)
        widths = [display_width(line) for line in lines]
        results.check("reader (wide text): the %s table's rows are as wide as its header "
                      "(the numbers line up)" % header.strip(),
                      len(lines) == 5 and len(set(widths)) == 1,
                      "widths %r\n%s" % (widths, "\n".join(lines)))
    cut = [line for line in table_lines(out, "PATH ") if "\u540d" in line]
    results.check("reader (wide text): a value wider than 60 columns is cut by columns, "
                  "whole characters, ending in ...",
                  len(cut) == 1 and "\u540d" * 28 + "..." in cut[0] and "\u540d" * 29 not in cut[0],
                  "%r" % cut)


class FakeMemcached:
    """Answers every request on a connection with one canned reply."""

    def __init__(self, reply, close=True):
        self.reply = reply
        self.close = close
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        self.conns.append(c)
        data = b""
        while b"\r\n" not in data:
            chunk = c.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        try:
            c.sendall(self.reply)
        except OSError:
            pass
        if self.close:
            c.close()

    def stop(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def check_reader_garbage(results, reader):
    part = "switchyard:traces:000000:part"
    cases = [
        ("a cut value", b"VALUE %s 0 5\r\nab" % part.encode(), 2),
        ("a line that is not a reply", b"HELLO there\r\n", 2),
        ("an endless line", b"x" * 100000, 2),
        ("a huge announced length", b"VALUE %s 0 18446744073709551615\r\nab" % part.encode(), 2),
        ("a negative length", b"VALUE %s 0 -5\r\n" % part.encode(), 2),
        ("no CRLF after the value", b"VALUE %s 0 3\r\nabcXYEND\r\n" % part.encode(), 2),
        ("SERVER_ERROR", b"SERVER_ERROR out of memory\r\n", 2),
        ("junk inside a value", b"VALUE %s 0 6\r\n\x00\xff{[\"\\\r\nEND\r\n" % part.encode(), 0),
        ("a key it did not ask for", b"VALUE other 0 2\r\n{}\r\nEND\r\n", 0),
    ]
    for label, reply, want in cases:
        fake = FakeMemcached(reply)
        try:
            rc, out, err = run_reader(reader, "--memcached", "%s:%d" % (LOOPBACK, fake.port))
        finally:
            fake.stop()
        results.check("reader vs a broken memcached (%s): exit %d, no crash" % (label, want),
                      rc == want and (want == 0 or err.strip()), "rc %d\n%s%s" % (rc, out, err))
    fake = FakeMemcached(b"", close=False)  # accepts, never answers
    try:
        t0 = time.monotonic()
        rc, out, err = run_reader(reader, "--memcached", "%s:%d" % (LOOPBACK, fake.port))
        took = time.monotonic() - t0
    finally:
        fake.stop()
    results.check("reader vs a silent memcached: gives up (exit 2) after its timeout",
                  rc == 2 and "timed out" in err and took < 20, "rc %d after %.1fs\n%s" % (rc, took, err))


# ---------------------------------------------------------------------------
# 3: the sink in the daemon

CONFIG = """\
-- written by tests/integration/test_traces.py
local route = require "switchyard.route"
return {{
  listen = {{ "udp://{host}:{udp}" }},
  flushInterval = 1000,
  sinks = {{
    traces = {{ plugin = "memcache_traces", host = "{host}", port = {mc}, prefix = "{prefix}",
               expire = 120, timeoutMs = 1500, rootWaitMs = 50, maxQueueBytes = {maxq},
               maxTraceMs = {max_trace}, reconnectMinMs = 50, reconnectMaxMs = 300 }},
    self = {{ plugin = "console", path = "{console}" }},
  }},
  routes = {{
    route.tag "trace" :passthrough "traces",
    route.default() :to "self",
  }},
}}
"""

MAX_TRACE_MS = 5000

# one trace's datagrams, as the issue writes them
def trace_lines(tid, path, status="200"):
    return [
        "db.query:5|ms|#trace:%s,off:1" % tid,
        "db.query:7|ms|#trace:%s,off:10,table:users" % tid,
        "cache.get:1|ms|#trace:%s,off:20" % tid,
        "api.req:120|ms|#trace:%s,root,method:GET,path:%s,status:%s" % (tid, path, status),
    ]


def console_total(path, stat):
    """Sum of a counter of switchyard's own metrics over every flush the
    console sink wrote (counters are per-flush values)."""
    total = 0.0
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] == "stats.statsd.switchyard.sink.traces." + stat:
                    total += float(parts[1])
    except OSError:
        pass
    return total


def check_daemon(results, mc, reader, workdir):
    udp = free_port_pair()
    daemon = Daemon("switchyard", workdir)
    console = daemon.console_path
    # room for about two finished traces of trace_lines(), for the restart check
    text = CONFIG.format(host=LOOPBACK, udp=udp, mc=mc.port, prefix=PREFIX, maxq=2000,
                         max_trace=MAX_TRACE_MS, console=console)
    daemon.write_config(text)
    chk = subprocess.run([daemon.binary, "--check", daemon.config_path], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, cwd=REPO_DIR)
    # A refused config is a failure: the daemon checks below would
    # otherwise vanish from the count without a word.
    if not results.check("switchyard --check accepts the memcache_traces config",
                         chk.returncode == 0, "exit %d: %s" % (chk.returncode,
                                                           chk.stdout.decode().strip())):
        return
    daemon.start(text)
    try:
        time.sleep(0.3)
        if not results.check("switchyard starts with the memcache_traces sink", daemon.alive(),
                             daemon.logs()):
            return
        mc.flush_all()
        sent_at = int(time.time() * 1000)
        send_udp(udp, ["\n".join(trace_lines("it1", "/one") + ["plain.counter:1|c"])])
        parts = wait_until(lambda: {k: v for k, v in all_parts(mc, PREFIX).items()
                                    if v.get("trace") == "it1"}, 10)
        if not results.check("a trace sent over UDP reaches memcached", len(parts) == 1,
                             "parts %r\n%s" % (parts, daemon.logs())):
            return
        (pkey, part), = parts.items()
        start = part["start"]
        results.check("its start is the root's arrival minus its duration",
                      sent_at - 120 - 50 <= start <= sent_at - 120 + 1000,
                      "start %d, sent at %d" % (start, sent_at))
        results.check("it is stored under <prefix>:NNNNNN:part with NNNNNN = "
                      "((start / 100) %% 1000) * 100", pkey == key(PREFIX, start, "part"),
                      "%s for start %d" % (pkey, start))
        full = json.loads(mc.get_many([key(PREFIX, start, "full")]).get(
            key(PREFIX, start, "full"), b"null"))
        results.check("the full record is under the same slot, with every span",
                      full is not None and full["start"] == start and full["span_count"] == 4 and
                      [(s["name"], s["off"], s["dur"]) for s in full["spans"]] ==
                      [("api.req", 0, 120), ("db.query", 1, 5), ("db.query", 10, 7),
                       ("cache.get", 20, 1)],
                      "%r" % full)
        results.check("the part record summarises it (version, method, path, status, "
                      "duration, per-name stats)",
                      part["version"] == 1 and part["method"] == "GET" and part["path"] == "/one"
                      and part["status"] == "200" and part["duration"] == 120 and
                      part["stats"] == [{"name": "api.req", "count": 1, "total": 120},
                                        {"name": "cache.get", "count": 1, "total": 1},
                                        {"name": "db.query", "count": 2, "total": 12}],
                      "%r" % part)
        log = mc.log()
        sets = re.findall(r"^<\d+ set (\S+) 0 (\d+) \d+", log, re.M)
        fk, pk = key(PREFIX, start, "full"), key(PREFIX, start, "part")
        order = [k for k, _ in sets if k in (fk, pk)]
        results.check("memcached received the full record before the part", order == [fk, pk],
                      "sets seen: %r" % sets)
        results.check("both were set with the configured expiry (120 s)",
                      all(e == "120" for k, e in sets if k in (fk, pk)), "%r" % sets)
        ttl = mc.ttl(pk)
        results.check("memcached reports the expiry on the key", ttl is not None and 100 <= ttl <= 120,
                      "ttl %r" % ttl)

        if reader:
            addr = "%s:%d" % (LOOPBACK, mc.port)
            rc, out, err = run_reader(reader, "--memcached", addr, "--prefix", PREFIX)
            rows, by_path, by_name = parse_list(out)
            results.check("switchyard traces lists it", rc == 0 and rows and
                          rows[0] == (start, 120.0, 4, "200", "GET", "/one") and
                          by_name.get("db.query") == (2, 12.0), out + err)
            rc, out, err = run_reader(reader, "--memcached", addr, "--prefix", PREFIX, "show",
                                      str(start))
            results.check("switchyard traces show START prints it",
                          rc == 0 and "trace     it1" in out and "table:users" in out, out + err)

        # a trace without root: written when timeoutMs (1.5 s) has passed
        send_udp(udp, ["orphan.work:9|ms|#trace:it2,off:4"])
        t0 = time.monotonic()
        orphan = wait_until(lambda: [v for v in all_parts(mc, PREFIX).values()
                                     if v.get("trace") == "it2"], 10)
        waited = time.monotonic() - t0
        results.check("a trace without root is written after timeoutMs, closed by timeout",
                      len(orphan) == 1 and orphan[0]["closed"] == "timeout" and
                      orphan[0]["root"] is False and orphan[0]["duration"] == 13 and waited >= 1.0,
                      "%r after %.2f s" % (orphan, waited))

        check_clamped(results, mc, udp, console, daemon)
        check_restart(results, mc, udp, console, daemon)
    finally:
        daemon.finish(results, "memcache_traces daemon")


def check_clamped(results, mc, udp, console, daemon):
    """A client's numbers cannot move a start out of [arrival - maxTraceMs,
    arrival]: a root of 1e308 ms used to start its trace at 0 (1970, slot
    000000), an off let the client pick the slot."""
    adjusted_before = console_total(console, "adjusted")
    sent_at = int(time.time() * 1000)
    send_udp(udp, ["api.req:1e308|ms|#trace:clamp1,root,method:GET,path:/clamp,status:200"])
    time.sleep(0.2)  # a slot later: both are clamped to their arrival - maxTraceMs
    send_udp(udp, ["orphan.x:1|ms|#trace:clamp2,off:99999999"])
    got = wait_until(lambda: (lambda p: len(p) == 2 and p)(
        {v["trace"]: v for v in all_parts(mc, PREFIX).values()
         if v.get("trace") in ("clamp1", "clamp2")}), 10) or {}
    results.check("traces with out-of-range starts are still written (a root of 1e308 ms, "
                  "an off of 99999999 ms)", sorted(got) == ["clamp1", "clamp2"],
                  "%r\n%s" % (got, daemon.logs()))
    for tid, rec in sorted(got.items()):
        lo, hi = sent_at - MAX_TRACE_MS - 50, sent_at - MAX_TRACE_MS + 1200
        results.check("%s: start clamped to maxTraceMs (%d ms) before arrival, not 1970"
                      % (tid, MAX_TRACE_MS), lo <= rec["start"] <= hi,
                      "start %d, want %d..%d" % (rec["start"], lo, hi))
    adjusted = wait_until(lambda: console_total(console, "adjusted") - adjusted_before >= 2 and
                          console_total(console, "adjusted") - adjusted_before, 5)
    results.check("both are counted in switchyard.sink.traces.adjusted (2)", adjusted == 2,
                  "adjusted grew by %r" % adjusted)
    results.check("a warning names the clamped traces",
                  wait_until(lambda: "clamped to it" in daemon.logs(200000), 12),
                  daemon.logs())


def check_restart(results, mc, udp, console, daemon):
    """memcached goes away mid-stream; traces finished meanwhile wait in the
    sink's queue (maxQueueBytes 2000: about two) and are written when it is
    back; the rest are counted as dropped."""
    dropped_before = console_total(console, "dropped")
    mc.stop()
    for i in range(6):
        send_udp(udp, ["\n".join(trace_lines("down%d" % i, "/down"))])
        time.sleep(0.15)  # a new slot each
    time.sleep(0.3)
    if not results.check("memcached restarts on the same port", mc.start(), mc.logs()):
        return
    got = wait_until(lambda: [v for v in all_parts(mc, PREFIX).values()
                              if v.get("path") == "/down"] or None, 10) or []
    time.sleep(0.5)
    got = [v for v in all_parts(mc, PREFIX).values() if v.get("path") == "/down"]
    ids = sorted(v["trace"] for v in got)
    results.check("traces queued while memcached was down arrive after it is back",
                  1 <= len(got) < 6 and ids == ["down%d" % i for i in range(len(got))],
                  "stored %r\n%s" % (ids, daemon.logs()))
    want = (6 - len(got)) * 4  # spans of the traces that did not fit
    dropped = wait_until(lambda: console_total(console, "dropped") - dropped_before >= want
                         and console_total(console, "dropped") - dropped_before, 5)
    results.check("the traces beyond maxQueueBytes are counted as dropped (%d spans)" % want,
                  dropped == want, "switchyard.sink.traces.dropped grew by %r" % dropped)


PARTS = ("reader", "garbage", "width", "daemon")


def main():
    parts = sys.argv[1:] or list(PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print("unknown part(s) %s; parts: %s" % (", ".join(unknown), ", ".join(PARTS)))
        return 2
    results = Results(TEST_NAME)
    workdir = make_workdir("sy-traces-")
    mc = Memcached(workdir)
    try:
        print("switchyard binary: %s" % switchyard_binary())
        if not results.check("memcached starts", mc.start(), mc.logs()):
            return results.finish()
        results.check("memcached harness: a raw set reads back",
                      mc.set("harness:k", "v") and mc.get_many(["harness:k"]) == {"harness:k": b"v"})
        reader = reader_command(workdir, results)
        if reader and "reader" in parts:
            check_reader(results, mc, reader)
        if reader and "garbage" in parts:
            check_reader_garbage(results, reader)
        if reader and "width" in parts:
            check_reader_width(results, mc, reader)
        if "daemon" in parts:
            check_daemon(results, mc, reader, workdir)
    except Exception as e:  # a crash of the harness is a failure, not a skip
        import traceback
        traceback.print_exc()
        results.check("harness ran without error", False, repr(e))
    finally:
        mc.stop()
        remove_workdir(workdir)
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
