#!/usr/bin/env python3
"""Integration test: the /traces dashboard, rendered by a real browser.

Starts memcached and switchyard on free loopback ports (traces routed with
`route.tag "trace" :passthrough "traces"` to a memcache_traces sink,
`httpAddress` on, `traces = { memcached = ... }` pointing the dashboard at
the same memcached), sends a few traces over UDP (root spans with method,
path and status, child spans with off:N, one trace without a root, one
path full of HTML), waits until the sink has written them, then

  1. fetches the pages over HTTP (status codes, headers, escaping, no
     script and nothing loaded from elsewhere, the error pages: a stale
     START_MS, a bad query, memcached silent or down, no `traces` config);
  2. runs Debian's chromium headless (`--dump-dom`) on /traces and on a
     detail page and checks the rendered table (paths, methods, statuses,
     durations, newest first, links), the totals, and the timeline (one bar
     per span, offsets and widths proportional to the trace's duration);
  3. takes screenshots of both pages (`--screenshot`, 1280x900) into
     build/artifacts/, checks they are PNGs of that size, decodes them and
     measures the bars as painted: each bar's left edge and width in pixels
     against the root's.

  4. keeps the admin loop free and the page bounded: with memcached
     stopped (SIGSTOP) /health answers at once while /traces waits, a
     third concurrent /traces gets a 503 (counted), and the daemon stops
     promptly with a page pending; 200 traces of 1000 span names each
     (200,000 rows before) give a page whose tables are cut to their row
     and byte bounds, saying so.

chromium is the Debian package `chromium` (.ci/deps.sh test installs it);
this test installs nothing, and a missing chromium is a failure.

Usage:  /usr/bin/python3 tests/integration/test_dashboard.py [PART...]   ($SY_BIN)
        PART: http, browser, errors, held, bounds (default: all)
"""
import html.parser
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib import REPO_DIR  # noqa: E402
from lib import netutil  # noqa: E402
from lib.daemon import Daemon  # noqa: E402
from lib.netutil import LOOPBACK, free_port, free_port_pair, send_udp, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

TEST_NAME = "test_dashboard"
MEMCACHED = "/usr/bin/memcached"
PREFIX = "dash:traces"
ARTIFACTS = os.path.join(REPO_DIR, "build", "artifacts")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
WINDOW = (1280, 900)
HOSTILE_PATH = '/q<b>"x"&y=\'1\''

# (trace id, [datagram lines]) in the order they are sent, a slot apart.
TRACES = [
    ("t1", ["db.query:5|ms|#trace:t1,off:1",
            "db.query:7|ms|#trace:t1,off:10,table:users",
            "cache.get:1|ms|#trace:t1,off:20",
            "api.req:120|ms|#trace:t1,root,method:GET,path:/users,status:200"]),
    ("t2", ["render:30|ms|#trace:t2,off:40",
            "api.req:80|ms|#trace:t2,root,method:POST,path:/orders,status:201"]),
    ("t3", ["db.query:30|ms|#trace:t3,off:2",
            "api.req:40|ms|#trace:t3,root,method:GET,path:%s,status:503" % HOSTILE_PATH]),
]
ORPHAN = ("t4", ["orphan.work:9|ms|#trace:t4,off:4"])  # no root: closed after timeoutMs

# What the dashboard should show per trace: method, path, status, duration,
# spans [(name, off, dur, root, tags)].
EXPECTED = {
    "t1": ("GET", "/users", "200", 120.0,
           [("api.req", 0, 120, True, ["method:GET", "path:/users", "status:200"]),
            ("db.query", 1, 5, False, []), ("db.query", 10, 7, False, ["table:users"]),
            ("cache.get", 20, 1, False, [])]),
    "t2": ("POST", "/orders", "201", 80.0,
           [("api.req", 0, 80, True, ["method:POST", "path:/orders", "status:201"]),
            ("render", 40, 30, False, [])]),
    "t3": ("GET", HOSTILE_PATH, "503", 40.0,
           [("api.req", 0, 40, True, ["method:GET", "path:" + HOSTILE_PATH, "status:503"]),
            ("db.query", 2, 30, False, [])]),
    "t4": (None, None, None, 13.0, [("orphan.work", 4, 9, False, [])]),
}

CONFIG = """\
-- written by tests/integration/test_dashboard.py
local route = require "switchyard.route"
return {{
  listen = {{ "udp://{host}:{udp}" }},
  flushInterval = 1000,
  httpAddress = "{host}:{http}",
  traces = {{ memcached = "{traces_addr}", prefix = "{prefix}" }},
  sinks = {{
    traces = {{ plugin = "memcache_traces", host = "{host}", port = {mc}, prefix = "{prefix}",
               expire = 600, timeoutMs = 1000, rootWaitMs = 50 }},
    self = {{ plugin = "console", path = "{console}" }},
  }},
  routes = {{
    route.tag "trace" :passthrough "traces",
    route.default() :to "self",
  }},
}}
"""

BARE_CONFIG = """\
-- written by tests/integration/test_dashboard.py: no traces config
return {{
  listen = {{ "udp://{host}:{udp}" }},
  httpAddress = "{host}:{http}",
  sinks = {{ self = {{ plugin = "console", path = "{console}" }} }},
}}
"""


# ---------------------------------------------------------------------------
# servers

class Memcached:
    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_port("tcp")
        self.proc = None

    def start(self):
        argv = [MEMCACHED, "-l", LOOPBACK, "-p", self.port, "-U", "0", "-m", "64"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # memcached refuses to run as root otherwise
        self.proc = Process("memcached", argv, self.workdir).start()
        return wait_for_port(self.port, 10, alive=self.proc.alive)

    def stop(self):
        return self.proc.stop() if self.proc else None

    def logs(self):
        return self.proc.logs() if self.proc else "(memcached never started)"

    def parts(self):
        """{trace id: part record} for every part stored under PREFIX."""
        keys = ["%s:%06d:part" % (PREFIX, s * 100) for s in range(1000)]
        with socket.create_connection((LOOPBACK, self.port), timeout=5) as s:
            s.sendall(("get " + " ".join(keys) + "\r\n").encode())
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        out, pos = {}, 0
        while pos < len(data):
            nl = data.index(b"\r\n", pos)
            line = data[pos:nl].decode()
            if line == "END":
                break
            n = int(line.split(" ")[3])
            rec = json.loads(data[nl + 2:nl + 2 + n])
            out[rec.get("trace")] = rec
            pos = nl + 2 + n + 2
        return out


class SilentServer:
    """Accepts connections and never answers (a memcached that hangs)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def stop(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def start_daemon(workdir, name, template, results, **fmt):
    """switchyard (tests/lib/daemon.py's Daemon) with a config from
    template; (daemon, http port, udp port) or (None, None, None)."""
    udp = free_port_pair()
    http = free_port("tcp")
    d = Daemon(name, workdir)
    text = template.format(host=LOOPBACK, udp=udp, http=http, prefix=PREFIX,
                           console=d.console_path, **fmt)
    up = d.start(text, port=http, timeout=10)
    if not results.check("%s starts with httpAddress on port %d" % (name, http), up, d.logs()):
        d.stop()
        return None, None, None
    return d, http, udp


def http_get(port, path, timeout=15):
    """lib's http_get with a longer wait: /traces may wait on memcached."""
    return netutil.http_get(port, path, timeout)


# ---------------------------------------------------------------------------
# a small DOM, from html.parser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag = tag
        self.attrs = dict(attrs)
        self.parent = parent
        self.children = []  # Node or str

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def elements(self):
        return [c for c in self.children if isinstance(c, Node)]

    def walk(self):
        for c in self.elements():
            yield c
            yield from c.walk()

    def find_all(self, tag=None, cls=None, id=None):
        return [n for n in self.walk() if (tag is None or n.tag == tag) and
                (cls is None or cls in n.classes()) and (id is None or n.attrs.get("id") == id)]

    def find(self, tag=None, cls=None, id=None):
        found = self.find_all(tag, cls, id)
        return found[0] if found else None


class DomBuilder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", [], None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_dom(text):
    b = DomBuilder()
    b.feed(text)
    b.close()
    return b.root


def style_pct(style, prop):
    m = re.search(r"(?:^|;)\s*%s\s*:\s*([0-9.]+)%%" % prop, style or "")
    return float(m.group(1)) if m else None


# ---------------------------------------------------------------------------
# PNG

def read_png(path):
    """(width, height, rows): rows[y][x] = (r, g, b).  8-bit RGB or RGBA,
    non-interlaced (what chromium writes); raises ValueError otherwise."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG signature")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if zlib.crc32(typ + body) & 0xffffffff != crc:
            raise ValueError("bad CRC in chunk %r" % typ)
        if typ == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT":
            idat.append(body)
        elif typ == b"IEND":
            break
        pos += 12 + n
    if not ihdr:
        raise ValueError("no IHDR")
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError("unsupported PNG: depth %d, colour type %d, interlace %d"
                         % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    rows, prev, pos = [], bytearray(stride), 0
    for _ in range(h):
        ftype = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xff
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xff
            elif ftype == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xff
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 0xff
            elif ftype != 0:
                raise ValueError("bad filter type %d" % ftype)
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


def near(px, rgb, tol=10):
    return all(abs(a - b) <= tol for a, b in zip(px, rgb))


def painted_bars(rows, rgb):
    """Bars painted in colour rgb: [(top y, left x, width)], one per group
    of consecutive pixel rows with the same run(s) of that colour."""
    bars, open_bars = [], {}
    for y, row in enumerate(rows):
        runs, x, w = [], 0, len(row)
        while x < w:
            if near(row[x], rgb):
                x0 = x
                while x < w and near(row[x], rgb):
                    x += 1
                runs.append((x0, x - x0))
            else:
                x += 1
        seen = {}
        for run in runs:
            seen[run] = open_bars.get(run, y)
        for run, top in open_bars.items():
            if run not in seen:
                bars.append((top, run[0], run[1]))
        open_bars = seen
    for run, top in open_bars.items():
        bars.append((top, run[0], run[1]))
    return sorted(bars)


# ---------------------------------------------------------------------------
# chromium

def find_chromium():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


def chromium(binary, workdir, args, timeout=90):
    """Runs chromium headless with a fresh profile; (rc, stdout, stderr)."""
    profile = make_workdir("sy-chromium-")
    env = dict(os.environ, HOME=profile)  # whatever it writes outside the profile
    try:
        r = subprocess.run([binary] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile] + args,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=env, cwd=workdir)
        return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        return -1, "", "chromium timed out after %ds: %s" % (timeout, e)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def stderr_tail(err, n=15):
    lines = [line for line in err.splitlines() if "dbus" not in line.lower()]
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------------------
# checks

def send_traces(udp):
    for _, lines in TRACES:
        send_udp(udp, ["\n".join(lines)])
        time.sleep(0.3)  # a slot (100 ms) or more apart: newest first is unambiguous
    send_udp(udp, ["\n".join(ORPHAN[1])])


def check_http(results, port, parts):
    status, headers, body = http_get(port, "/traces")
    ctype = headers.get("Content-Type", "")
    results.check("GET /traces: 200 text/html; charset=utf-8",
                  status == 200 and ctype.startswith("text/html") and "utf-8" in ctype,
                  "%d %r\n%s" % (status, headers, body[:500]))
    csp = headers.get("Content-Security-Policy", "")
    results.check("the page forbids scripts and outside resources (CSP default-src 'none')",
                  "default-src 'none'" in csp, "%r" % headers)
    lower = body.lower()
    results.check("the page is self-contained: no script, no link, no src, no url(), no "
                  "@import, nothing from http(s)://",
                  "<script" not in lower and "<link" not in lower and " src=" not in lower and
                  "url(" not in lower and "@import" not in lower and "http://" not in lower and
                  "https://" not in lower, body)
    results.check("the CSS is inline (<style> in the head)", "<style>" in body and
                  body.index("<style>") < body.index("</head>"), body[:400])
    escaped = "/q&lt;b&gt;&quot;x&quot;&amp;y=&#39;1&#39;"
    results.check("a path with HTML in it is escaped in the raw page",
                  escaped in body and "<b>" not in body and '"x"' not in body,
                  "\n".join(line for line in body.splitlines() if "/q" in line))
    for tid, rec in parts.items():
        results.check("the raw page links trace %s to /traces?show=%d" % (tid, rec["start"]),
                      'href="/traces?show=%d"' % rec["start"] in body, "")

    start1 = parts["t1"]["start"]
    status, headers, body = http_get(port, "/traces?show=%d" % start1)
    results.check("GET /traces?show=START: 200 text/html", status == 200 and
                  headers.get("Content-Type", "").startswith("text/html"), body[:500])
    status, _, body3 = http_get(port, "/traces?show=%d" % parts["t3"]["start"])
    results.check("the detail page escapes the path, in the title too",
                  status == 200 and "<b>" not in body3 and
                  "<title>Trace /q&lt;b&gt;&quot;x&quot;&amp;y=&#39;1&#39; - switchyard</title>" in body3,
                  body3[:1500])
    stale = start1 + 100000  # same slot, 100 s later: the slot holds t1, not this
    status, _, body = http_get(port, "/traces?show=%d" % stale)
    results.check("a START_MS whose slot holds another trace: 404 \"no longer stored\", naming "
                  "the start the slot holds",
                  status == 404 and "no longer stored" in body and "slot now holds %d" % start1 in body,
                  "%d\n%s" % (status, body))
    used = {(r["start"] // 100) % 1000 for r in parts.values()}
    empty = next(start1 + 100 * k for k in range(1, 1000) if ((start1 // 100 + k) % 1000) not in used)
    status, _, body = http_get(port, "/traces?show=%d" % empty)
    results.check("a START_MS whose slot is empty: 404 \"no longer stored\"",
                  status == 404 and "no longer stored" in body and "is empty" in body,
                  "%d\n%s" % (status, body))
    status, _, body = http_get(port, "/traces?a=b&")
    results.check("GET /traces?a=b& (an empty pair, an unknown key): 200, the listing",
                  status == 200 and len(re.findall(r'<tr data-start="', body)) == 4,
                  "%d\n%s" % (status, body[:1000]))
    status, _, body = http_get(port, "/traces?&&limit=2&&x")
    results.check("GET /traces?&&limit=2&&x: empty pairs skipped, limit=2 still read",
                  status == 200 and len(re.findall(r'<tr data-start="', body)) == 2,
                  "%d\n%s" % (status, body[:1000]))
    for q in ("show=abc", "show=-1", "show=99999999999999999999", "limit=x", "limit=2%003"):
        status, _, body = http_get(port, "/traces?" + q)
        results.check("GET /traces?%s: 400" % q, status == 400 and "Bad request" in body,
                      "%d\n%s" % (status, body))
    status, _, body = http_get(port, "/traces?show=%3Cscript%3Ealert(1)%3C/script%3E")
    results.check("a bad show value is echoed escaped", status == 400 and "<script" not in body
                  and "&lt;script&gt;" in body, body)
    status, _, body = http_get(port, "/traces?limit=2")
    rows = re.findall(r'<tr data-start="(\d+)"', body)
    results.check("?limit=2 lists the 2 newest and says how many are stored",
                  status == 200 and len(rows) == 2 and "4 traces stored" in body and
                  "the latest 2" in body, body[:2000])
    status, _, body = http_get(port, "/nothing-here")
    results.check("other paths: 404 naming /traces among the endpoints",
                  status == 404 and "/traces" in body, "%d %s" % (status, body))


def check_list_dom(results, dom, parts):
    table = dom.find("table", id="traces")
    if not results.check("the rendered page has the traces table", table is not None, ""):
        return
    rows = table.find("tbody").find_all("tr") if table.find("tbody") else []
    got = []
    for tr in rows:
        cells = {c: (tr.find("td", cls=c).text().strip() if tr.find("td", cls=c) else None)
                 for c in ("start", "method", "path", "status", "duration", "spans")}
        link = tr.find("a")
        got.append((int(tr.attrs.get("data-start", "0")), cells, link.attrs.get("href") if link else None))
    by_start = sorted(parts.items(), key=lambda kv: -kv[1]["start"])
    results.check("one row per stored trace (4)", len(got) == 4, "%r" % got)
    results.check("rows are newest first (t4, t3, t2, t1: the order they were sent)",
                  [g[0] for g in got] == [rec["start"] for _, rec in by_start] and
                  [tid for tid, _ in by_start] == ["t4", "t3", "t2", "t1"],
                  "rows %r\nparts %r" % ([g[0] for g in got], [(t, r["start"]) for t, r in by_start]))
    for (start, cells, href), (tid, rec) in zip(got, by_start):
        method, path, status, duration, spans = EXPECTED[tid]
        want = {"method": method or "-", "path": path or "-", "status": status or "-",
                "duration": ("%g" % duration), "spans": str(len(spans))}
        have = {k: cells[k] for k in want}
        results.check("row %s: method, path, status, duration (ms), spans as rendered" % tid,
                      have == want, "have %r\nwant %r" % (have, want))
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(rec["start"] // 1000)) + \
            ".%03dZ" % (rec["start"] % 1000)
        results.check("row %s: start shown as %s, linking to /traces?show=%d" % (tid, iso, start),
                      cells["start"] == iso and href == "/traces?show=%d" % start,
                      "%r %r" % (cells["start"], href))
    hostile = [tr for tr in rows if tr.find("td", cls="path") and
               tr.find("td", cls="path").text() == HOSTILE_PATH]
    results.check("the HTML-laden path is rendered as text (no element inside its cell)",
                  len(hostile) == 1 and not hostile[0].find("td", cls="path").elements() and
                  not dom.find_all("b"), "%r" % [tr.text() for tr in rows])
    st = [tr.find("td", cls="status") for tr in rows]
    results.check("the 503 is marked as a server error (class s5), the 200 is not",
                  any(c.text() == "503" and "s5" in c.classes() for c in st) and
                  all("s5" not in c.classes() for c in st if c.text() != "503"),
                  "%r" % [(c.text(), c.classes()) for c in st])

    def totals(tid):
        t = dom.find("table", id=tid)
        out = {}
        for tr in (t.find("tbody").find_all("tr") if t and t.find("tbody") else []):
            tds = tr.find_all("td")
            out[tds[0].text()] = tuple(float(td.text()) for td in tds[1:])
        return out
    paths = totals("by-path")
    want_paths = {"/users": (1, 120, 120), "/orders": (1, 80, 80), HOSTILE_PATH: (1, 40, 40),
                  "-": (1, 13, 13)}
    results.check("totals per path: count, total and mean ms", paths == want_paths,
                  "%r" % paths)
    names = totals("by-name")
    want_names = {"api.req": (3, 240, 80), "db.query": (3, 42, 14), "render": (1, 30, 30),
                  "cache.get": (1, 1, 1), "orphan.work": (1, 9, 9)}
    results.check("totals per span name: count, total and mean ms", names == want_names,
                  "%r" % names)
    order = list(names)
    results.check("span-name totals are sorted by total, largest first",
                  order == ["api.req", "db.query", "render", "orphan.work", "cache.get"], "%r" % order)


def check_detail_dom(results, dom, tid, rec):
    method, path, status, duration, spans = EXPECTED[tid]
    h1 = dom.find("h1", id="request")
    want_h1 = " ".join(x or "-" for x in (method, path, status))
    results.check("detail %s: heading \"%s\"" % (tid, want_h1),
                  h1 is not None and h1.text() == want_h1, h1.text() if h1 else "no h1")
    tl = dom.find("div", id="timeline")
    if not results.check("detail %s: the page has a timeline" % tid, tl is not None, ""):
        return
    rows = tl.find_all("div", cls="span")
    bars = tl.find_all("div", cls="bar")
    results.check("detail %s: one bar per span (%d)" % (tid, len(spans)),
                  len(bars) == len(spans) == len(rows), "%d bars, %d rows" % (len(bars), len(rows)))
    scale = max([duration] + [o + d for _, o, d, _, _ in spans])
    for row, (name, off, dur, root, tags) in zip(rows, spans):
        bar = row.find("div", cls="bar")
        label = row.find("div", cls="label")
        left, width = style_pct(bar.attrs.get("style"), "left"), style_pct(bar.attrs.get("style"), "width")
        want_l, want_w = off * 100.0 / scale, dur * 100.0 / scale
        results.check("detail %s: %s +%g ms, %g ms: bar at left %.3f%%, width %.3f%%"
                      % (tid, name, off, dur, want_l, want_w),
                      left is not None and width is not None and abs(left - want_l) < 0.01 and
                      abs(width - want_w) < 0.01, "style %r" % bar.attrs.get("style"))
        lname = label.find("span", cls="name").text() if label.find("span", cls="name") else None
        lwhen = label.find("span", cls="when").text() if label.find("span", cls="when") else None
        ltags = label.find("span", cls="tags").text() if label.find("span", cls="tags") else ""
        want_tags = ", ".join((["root"] if root else []) + tags)
        results.check("detail %s: label \"%s\", \"+%g ms, %g ms\", tags \"%s\""
                      % (tid, name, off, dur, want_tags),
                      lname == name and lwhen == "+%g ms, %g ms" % (off, dur) and ltags == want_tags and
                      ("root" in row.classes()) == root, "%r %r %r %r" % (lname, lwhen, ltags, row.classes()))
    meta = dom.find("dd", id="trace-id")
    results.check("detail %s: the trace id is shown" % tid, meta is not None and meta.text() == tid,
                  meta.text() if meta else "none")


def check_painted(results, png, tid):
    """The bars as painted: root green, children blue; each child's left
    edge and width, in pixels, proportional to the root's."""
    try:
        w, h, rows = read_png(png)
    except (OSError, ValueError, zlib.error) as e:
        results.check("screenshot %s decodes" % png, False, repr(e))
        return
    green = painted_bars(rows, (0x16, 0xa3, 0x4a))
    blue = painted_bars(rows, (0x25, 0x63, 0xeb))
    spans = EXPECTED[tid][4]
    if not results.check("screenshot of %s: one green (root) bar and %d blue bars painted"
                         % (tid, len(spans) - 1), len(green) == 1 and len(blue) == len(spans) - 1,
                         "green %r\nblue %r" % (green, blue)):
        return
    _, x0, track = green[0]
    duration = EXPECTED[tid][3]
    bad = []
    for (y, x, bw), (name, off, dur, _, _) in zip(blue, spans[1:]):
        want_x = x0 + off / duration * track
        want_w = max(2.0, dur / duration * track)  # min-width 2px
        if abs(x - want_x) > 2 or abs(bw - want_w) > 2:
            bad.append("%s: painted at x=%d width %d, want x=%.1f width %.1f" % (name, x, bw, want_x, want_w))
    results.check("screenshot of %s: painted bars are where the spans are (root spans %d px; "
                  "offsets and widths within 2 px)" % (tid, track), not bad and track > 400,
                  "\n".join(bad) + "\ngreen %r blue %r" % (green, blue))


def check_png(results, path):
    try:
        with open(path, "rb") as f:
            head = f.read(24)
        size = os.path.getsize(path)
    except OSError as e:
        results.check("screenshot %s exists" % path, False, repr(e))
        return False
    ok = head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and size > 1000
    dims = struct.unpack(">II", head[16:24]) if len(head) >= 24 else (0, 0)
    return results.check("screenshot %s is a PNG (%d bytes, %dx%d)" % (os.path.basename(path), size,
                                                                       dims[0], dims[1]),
                         ok and dims == WINDOW, "head %r size %d dims %r" % (head, size, dims))


def check_browser(results, chrome, workdir, port, parts):
    base = "http://%s:%d" % (LOOPBACK, port)
    rc, out, err = chromium(chrome, workdir, ["--dump-dom", base + "/traces"])
    if not results.check("chromium --dump-dom /traces", rc == 0 and "<table" in out,
                         "rc %d\n%s\n%s" % (rc, out[:500], stderr_tail(err))):
        return
    check_list_dom(results, parse_dom(out), parts)
    for tid in ("t1", "t2", "t4"):
        rc, out, err = chromium(chrome, workdir, ["--dump-dom", base + "/traces?show=%d" % parts[tid]["start"]])
        if results.check("chromium --dump-dom the detail page of %s" % tid, rc == 0 and "timeline" in out,
                         "rc %d\n%s\n%s" % (rc, out[:500], stderr_tail(err))):
            check_detail_dom(results, parse_dom(out), tid, parts[tid])

    os.makedirs(ARTIFACTS, exist_ok=True)
    shots = [("dashboard-traces.png", "/traces", None),
             ("dashboard-trace-detail.png", "/traces?show=%d" % parts["t1"]["start"], "t1")]
    for name, path, tid in shots:
        png = os.path.join(ARTIFACTS, name)
        if os.path.exists(png):
            os.unlink(png)
        rc, out, err = chromium(chrome, workdir, ["--screenshot=" + png,
                                                  "--window-size=%d,%d" % WINDOW, base + path])
        results.check("chromium --screenshot %s" % path, rc == 0 and os.path.exists(png),
                      "rc %d\n%s\n%s" % (rc, out, stderr_tail(err)))
        if os.path.exists(png):
            print("screenshot: %s" % png)
            if check_png(results, png) and tid:
                check_painted(results, png, tid)


def check_error_pages(results, workdir, mc):
    # no traces config: 404 explaining how to set it
    proc, http, _ = start_daemon(workdir, "bare", BARE_CONFIG, results)
    if proc:
        try:
            status, headers, body = http_get(http, "/traces")
            results.check("no traces config: /traces is a 404 page saying how to configure it",
                          status == 404 and "not configured" in body and
                          "traces = { memcached = \"HOST:PORT\"" in body and
                          headers.get("Content-Type", "").startswith("text/html"),
                          "%d\n%s" % (status, body))
        finally:
            proc.finish(results, "bare daemon")

    # memcached that accepts and never answers: 503 within the bound
    silent = SilentServer()
    proc, http, _ = start_daemon(workdir, "silent", CONFIG, results, mc=mc.port,
                                 traces_addr="%s:%d" % (LOOPBACK, silent.port))
    if proc:
        try:
            t0 = time.monotonic()
            status, _, body = http_get(http, "/traces", timeout=30)
            took = time.monotonic() - t0
            results.check("memcached silent: /traces gives up with a 503 after its timeout "
                          "(%.1f s)" % took, status == 503 and "timed out" in body and took < 7,
                          "%d after %.1fs\n%s" % (status, took, body))
            status, _, _ = http_get(http, "/health")
            results.check("the admin endpoint answers again afterwards (/health 200)", status == 200, "")
        finally:
            silent.stop()
            proc.finish(results, "silent-memcached daemon")


# ---------------------------------------------------------------------------
# the admin loop is never held by a page, and a page is bounded

TRACES_ONLY_CONFIG = """\
-- written by tests/integration/test_dashboard.py: the dashboard only
return {{
  listen = {{ "udp://{host}:{udp}" }},
  httpAddress = "{host}:{http}",
  traces = {{ memcached = "{traces_addr}", prefix = "{traces_prefix}" }},
  sinks = {{ self = {{ plugin = "console", path = "{console}" }} }},
}}
"""


def timed_get(port, path, timeout=30):
    t0 = time.monotonic()
    try:
        status, _, body = http_get(port, path, timeout)
    except OSError as e:
        status, body = None, repr(e)
    return status, body, time.monotonic() - t0


class Pending(threading.Thread):
    """A GET in the background; .result = (status, body, seconds)."""

    def __init__(self, port, path):
        super().__init__(daemon=True)
        self.port, self.path, self.result = port, path, None
        self.start()

    def run(self):
        self.result = timed_get(self.port, self.path)


def metric(port, name):
    _, _, body = http_get(port, "/metrics")
    m = re.search(r"^%s (\d+)$" % re.escape(name), body, re.M)
    return int(m.group(1)) if m else None


def check_held(results, workdir, mc):
    """memcached stopped (SIGSTOP): connect works, nothing answers.  /traces
    waits out its timeout on a worker thread; /health and /metrics answer
    meanwhile (they used to wait as long)."""
    proc, http, _ = start_daemon(workdir, "held", TRACES_ONLY_CONFIG, results,
                                 traces_addr="%s:%d" % (LOOPBACK, mc.port), traces_prefix=PREFIX)
    if not proc:
        return
    os.kill(mc.proc.pid, signal.SIGSTOP)
    try:
        first = Pending(http, "/traces")
        second = Pending(http, "/traces?limit=1")
        time.sleep(0.4)
        status, body, took = timed_get(http, "/health")
        results.check("memcached stopped, two /traces pending: /health answers 200 in %.3f s "
                      "(under 1 s)" % took, status == 200 and took < 1.0 and first.is_alive(),
                      "%r after %.3f s; /traces pending: %s" % (status, took, first.is_alive()))
        status, body, took = timed_get(http, "/traces")
        results.check("a third /traces meanwhile: 503 at once, saying it is busy (%.3f s)" % took,
                      status == 503 and "busy" in body and took < 1.0,
                      "%r after %.3f s: %s" % (status, took, body[:300]))
        busy = metric(http, "switchyard_traces_busy_total")
        results.check("it is counted: switchyard_traces_busy_total 1 (and /metrics answers)",
                      busy == 1, "busy = %r" % busy)
        first.join(30)
        second.join(30)
        for label, p in (("first", first), ("second", second)):
            status, body, took = p.result or (None, "", 0)
            results.check("the %s /traces ends in a 503 after memcached's timeout (%.1f s)"
                          % (label, took), status == 503 and "timed out" in body and took < 7,
                          "%r after %.1f s\n%s" % (status, took, body[:500]))
        status, _, took = timed_get(http, "/health")
        results.check("/health still answers afterwards", status == 200, "")
        # a client that hangs up while its page is being made: the page is
        # dropped when ready (libevent kept the request for it), nothing else
        with socket.create_connection((LOOPBACK, http), timeout=5) as c:
            c.sendall(b"GET /traces HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
        time.sleep(2.5)  # past memcached's 2 s timeout: the page is ready, its client gone
        status, _, _ = timed_get(http, "/health")
        results.check("a client that hung up while its page was made: the daemon lives on "
                      "(/health 200)", status == 200 and proc.alive(), proc.logs())
        # a page pending at shutdown gives up at once: the daemon stops promptly
        pending = Pending(http, "/traces")
        time.sleep(0.3)
        t0 = time.monotonic()
        rc = proc.stop()
        took = time.monotonic() - t0
        results.check("stopping with a /traces pending on a stopped memcached: exit 0 in %.2f s "
                      "(under 1 s; the page's wait is cancelled)" % took, rc == 0 and took < 1.0,
                      "rc %r after %.2f s\n%s" % (rc, took, proc.logs()))
        pending.join(10)
    finally:
        os.kill(mc.proc.pid, signal.SIGCONT)
        if proc.alive():
            proc.stop()
    proc.check_sanitizer(results, "held daemon")


BIG_PREFIX = "big:traces"
BIG_TRACES, BIG_NAMES = 200, 1000


def fill_big(mc):
    """BIG_TRACES part records, each with BIG_NAMES span names of its own
    and a path of 1000 '"' (6 bytes each on the page): 200,000 distinct
    names in all.  Written by hand in the sink's format."""
    base = int(time.time() * 1000) - 200000
    with socket.create_connection((LOOPBACK, mc.port), timeout=10) as s:
        for i in range(BIG_TRACES):
            start = base + i * 100
            stats = [{"name": "span.%03d.%04d" % (i, k), "count": 1, "total": 1.5}
                     for k in range(BIG_NAMES)]
            rec = {"version": 1, "trace": "big%d" % i, "start": start, "duration": 10 + i,
                   "method": "GET", "path": "/" + '"' * 1000 + str(i), "status": "200",
                   "root": True, "closed": "root", "span_count": BIG_NAMES, "spans_dropped": 0,
                   "stats": stats, "stats_truncated": False}
            data = json.dumps(rec).encode()
            k = "%s:%06d:part" % (BIG_PREFIX, ((start // 100) % 1000) * 100)
            s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (k.encode(), len(data), data))
        s.sendall(b"mn\r\n")
        reply = b""
        while not reply.endswith(b"MN\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply.count(b"STORED\r\n")


def mc_set(mc, k, value):
    data = value.encode()
    with socket.create_connection((LOOPBACK, mc.port), timeout=10) as s:
        s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (k.encode(), len(data), data))
        return s.recv(100) == b"STORED\r\n"


def check_bounds(results, workdir, mc):
    stored = fill_big(mc)
    if not results.check("%d big part records stored" % BIG_TRACES, stored == BIG_TRACES,
                         "stored %d" % stored):
        return
    proc, http, _ = start_daemon(workdir, "big", TRACES_ONLY_CONFIG, results,
                                 traces_addr="%s:%d" % (LOOPBACK, mc.port),
                                 traces_prefix=BIG_PREFIX)
    if not proc:
        return
    try:
        page = Pending(http, "/traces?limit=0")
        worst = 0.0
        while page.is_alive():
            status, _, took = timed_get(http, "/health")
            worst = max(worst, took)
            time.sleep(0.02)
        status, body, took = page.result
        results.note("/traces?limit=0 over %d traces x %d names: %d bytes in %.2f s; slowest "
                     "/health meanwhile %.3f s" % (BIG_TRACES, BIG_NAMES, len(body), took, worst))
        results.check("the big page: 200", status == 200, "%r %s" % (status, body[:500]))
        results.check("/health answered within 1 s while the big page was made (slowest %.3f s)"
                      % worst, worst < 1.0, "")
        rows = {t: len(re.findall(r"<tr", m.group(1))) for t, m in
                ((t, re.search(r'<table id="%s">.*?<tbody>(.*?)</tbody>' % t, body, re.S))
                 for t in ("traces", "by-path", "by-name")) if m}
        results.check("the by-name table is cut to 200 rows (of 200,000 names)",
                      rows.get("by-name") == 200, "%r" % rows)
        m = re.search(r'id="by-name-cut">(\d+) of (\d+) span names shown', body)
        results.check("the page says so under it: \"200 of 200000 span names shown\"",
                      m is not None and m.groups() == ("200", "200000"),
                      re.findall(r'<p class="note cut".*?</p>', body) and
                      "\n".join(re.findall(r'<p class="note cut".*?</p>', body)) or body[-2000:])
        for t, what in (("traces", "traces"), ("by-path", "paths")):
            m = re.search(r'id="%s-cut">(\d+) of (\d+) %s shown' % (t, what), body)
            results.check("the %s table (200 rows of 6 KiB paths) stops at its 1 MiB bound and "
                          "says how many it shows" % t,
                          m is not None and int(m.group(1)) == rows.get(t) and
                          m.group(2) == "200" and 100 < rows.get(t, 0) < 200,
                          "rows %r, note %r" % (rows, m and m.group(0)))
        results.check("the whole page stays under 4 MiB (it was 46 MB)", len(body) < 4 << 20,
                      "%d bytes" % len(body))
        cut = metric(http, "switchyard_traces_cut_total")
        results.check("the cut page is counted: switchyard_traces_cut_total >= 1",
                      cut is not None and cut >= 1, "cut = %r" % cut)

        # one trace of 3000 spans, one of them with 30 tags: its timeline
        start = int(time.time() * 1000) - 150000
        spans = [{"name": "s%d" % k, "off": k, "dur": 1,
                  "tags": ["t%d:v" % n for n in range(30 if k == 0 else 0)]} for k in range(3000)]
        full = {"version": 1, "trace": "many", "start": start, "duration": 3000, "method": "GET",
                "path": "/many", "status": "200", "root": False, "closed": "timeout",
                "spans": spans, "span_count": 3000, "spans_dropped": 0}
        mc_set(mc, "%s:%06d:full" % (BIG_PREFIX, ((start // 100) % 1000) * 100), json.dumps(full))
        status, body, _ = timed_get(http, "/traces?show=%d" % start)
        bars = len(re.findall(r'<div class="bar"', body))
        m = re.search(r'id="timeline-cut">(\d+) of (\d+) spans shown', body)
        results.check("a trace of 3000 spans: the timeline draws 1000 and says \"1000 of 3000 "
                      "spans shown\"", status == 200 and bars == 1000 and m is not None and
                      m.groups() == ("1000", "3000"), "%r, %d bars, note %r" %
                      (status, bars, m and m.group(0)))
        results.check("a span with 30 tags shows 20 and says \"10 more tags\"",
                      "t19:v" in body and "t20:v" not in body and "10 more tags" in body, "")
    finally:
        proc.finish(results, "big-page daemon")


PARTS = ("http", "browser", "errors", "held", "bounds")


def main():
    selected = sys.argv[1:] or list(PARTS)
    unknown = [p for p in selected if p not in PARTS]
    if unknown:
        print("unknown part(s) %s; parts: %s" % (", ".join(unknown), ", ".join(PARTS)))
        return 2
    results = Results(TEST_NAME)
    workdir = make_workdir("sy-dashboard-")
    mc = Memcached(workdir)
    daemon = None
    try:
        print("switchyard binary: %s" % switchyard_binary())
        chrome = find_chromium()
        if "browser" in selected and not results.check(
                "chromium is installed (Debian package `chromium`; `.ci/deps.sh test` installs "
                "it)", chrome is not None, "no chromium on PATH: run `apt-get install chromium` "
                "(or `make test`, which runs .ci/deps.sh test)"):
            return results.finish()
        if not results.check("memcached starts", mc.start(), mc.logs()):
            return results.finish()
        daemon, http, udp = start_daemon(workdir, "switchyard", CONFIG, results, mc=mc.port,
                                         traces_addr="%s:%d" % (LOOPBACK, mc.port))
        if not daemon:
            return results.finish()
        send_traces(udp)
        traces = wait_until(lambda: len(mc.parts()) == 4 and mc.parts(), 15) or mc.parts()
        if not results.check("the 4 traces were written to memcached", sorted(traces) ==
                             ["t1", "t2", "t3", "t4"], "%r\n%s" % (traces, daemon.logs())):
            return results.finish()
        if "http" in selected:
            check_http(results, http, traces)
        if "browser" in selected:
            check_browser(results, chrome, workdir, http, traces)
        if "errors" in selected:
            check_error_pages(results, workdir, mc)
        if "held" in selected:
            check_held(results, workdir, mc)
        if "bounds" in selected:
            check_bounds(results, workdir, mc)

        # memcached gone: 503 saying so
        mc.stop()
        status, _, body = http_get(http, "/traces")
        results.check("memcached down: /traces is a 503 page saying it cannot connect",
                      status == 503 and "cannot connect to memcached" in body,
                      "%d\n%s" % (status, body))
        status, _, body = http_get(http, "/traces?show=%d" % traces["t1"]["start"])
        results.check("memcached down: a detail page is a 503 too", status == 503, "%d\n%s" % (status, body))
        daemon.finish(results, "switchyard")
        daemon = None
    except Exception as e:  # a crash of the harness is a failure, not a skip
        import traceback
        traceback.print_exc()
        results.check("harness ran without error", False, repr(e))
    finally:
        if daemon:
            daemon.stop()
        mc.stop()
        remove_workdir(workdir)
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
