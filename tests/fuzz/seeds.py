#!/usr/bin/env python3
"""Write the seed corpora under tests/fuzz/corpus/<harness>/.

The seeds are committed; this script says where they come from and
rewrites them (deterministically) when the input formats change:

  /usr/bin/python3 tests/fuzz/seeds.py

parse    realistic StatsD lines and packets: every type, rates, tags,
         several values per line, CRLF, sanitiser food, numbers at the
         edges of the decimal grammar
framing  the same traffic as a stream, behind the harness's 18-byte header
         (max_line, flags, 16 read sizes): tiny reads, reads that end at
         line ends, lines longer than max_line, no final newline
token    one selector byte (config, listener, sender, flush) and a packet
         whose lines carry the tokens of tests/fuzz/token*.config.lua
config   the README's configs, lua/switchyard/examples/*.lua, and one
         config per option (with edge values)
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

LINES = [
    b"api.requests:1|c",
    b"db.query:12|ms|@0.1",
    b"queue.depth:42|g",
    b"queue.depth:+3|g",
    b"queue.depth:-7|g",
    b"users:alice|s",
    b"users:|s",
    b"api.req:1|c|#env:prod",
    b"api.req:1|c|#env:prod,region:eu-west;x,flag",
    b"k:1|c:2|c:3|ms",
    b"lat:3|h",
    b"lat:4.5|d|@0.25",
    b"x:1|c|@0.5e1",
    b"x:1|c|",
    b"x:1| ms",
    b"x:-1| ms",
    b"x: 12 |ms",
    b"x:1e308|g",
    b"x:1e309|g",
    b"x:.5|c",
    b"x:5.|c",
    b"x:0x10|c",
    b"x:Infinity|c",
    b"x:NaN|g",
    b"x:1|c|@0",
    b"x:1|c|@-1",
    b"x:1|c|@+0.5",
    b"x:1|c|@1e-320",
    b"x:1|q",
    b":1|c",
    b"a b\tc/d:1|c",
    b"a\xc2\xa0b\xe3\x80\x80c:1|c",
    b"caf\xc3\xa9:1|c",
    b"bad\xff\xfe:1|s",
    b"tagged;env=prod:1|c",
    b"x:1|c|#a|#b",
    b"x:1|c|#",
    b"x:1|c|#;:,:;",
    b"stats.counters.x.count:1|c",
    b"statsd.bad_lines_seen:1|c",
    b"x:123456789012345678901234567890|c",
    b"x:0.000000000000000000000000000001e-300|g",
    b"x:1|c\r",
]


def write(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def parse_seeds():
    for i, line in enumerate(LINES):
        write("parse", "line-%02d" % i, line)
    write("parse", "packet-mixed", b"\n".join(LINES[:10]) + b"\n")
    write("parse", "packet-crlf", b"\r\n".join(LINES[10:20]) + b"\r\n")
    write("parse", "long-key", b"k" * 1023 + b":1|c")
    write("parse", "long-key-over", b"k" * 1024 + b":1|c")
    write("parse", "long-tags", b"k:1|c|#" + b",".join(b"t%d:v" % i for i in range(200)))
    write("parse", "many-values", b"k" + b":1|c" * 100)
    write("parse", "number-digits", b"0." + b"1" * 800 + b"e-5")


def header(max_line, flags, sizes):
    sizes = (list(sizes) * 16)[:16]
    ml = 255 if max_line is None else max_line - 1
    return bytes([ml, flags] + sizes)


def framing_seeds():
    stream = b"\n".join(LINES) + b"\n"
    cases = [
        ("all-1byte-reads", 200, 0b011, [1]),
        ("all-default", None, 0b011, [0]),
        ("mixed-reads", 64, 0b011, [3, 17, 1, 0, 64, 5, 9, 2]),
        ("small-max-line", 16, 0b011, [7, 3]),
        ("max-line-exact", 24, 0b011, [24, 1]),
        ("no-eof", 64, 0b001, [5]),
        ("unsanitised", 64, 0b010, [11]),
        ("timer-limit", 64, 0b111, [13]),
        ("max-keys", 64, 0b1011, [0]),
        ("delete-idle", 64, 0b110011, [4]),
    ]
    for name, ml, flags, sizes in cases:
        write("framing", name, header(ml, flags, sizes) + stream)
    crlf = b"\r\n".join(LINES[:12]) + b"\r\n"
    write("framing", "crlf", header(40, 0b011, [6, 1, 40]) + crlf)
    longl = b"a:1|c\n" + b"x" * 300 + b":1|c\n" + b"b:2|c\n" + b"y" * 100
    write("framing", "long-lines", header(64, 0b011, [32, 64, 1]) + longl)
    write("framing", "long-lines-no-eof", header(64, 0b001, [32, 64, 1]) + longl)
    write("framing", "empty-lines", header(8, 0b011, [2]) + b"\n\n\r\n\na:1|c\n\n")
    for i in range(0, len(LINES), 3):
        part = b"\n".join(LINES[i:i + 3])
        write("framing", "lines-%02d" % i, header(8 + 5 * i, 0b011 if i % 2 else 0b010, [i % 7 + 1, 0, 2]) + part)
    write("framing", "timers", header(100, 0b111, [9]) +
          b"".join(b"t:%d|ms|@0.%d\n" % (i, i % 9 + 1) for i in range(40)))


TOKEN_LINES = [
    b"s3cret.api.requests:1|c",
    b"s3cret.samp.x:1|c",
    b"s3cret.legacy.db:3|ms",
    b"open.api.req:1|c|#env:prod",
    b"open.legacy.q:2|c",
    b"open.drop.me:1|c",
    b"ops.host.lat:12|ms",
    b"ops.host.cpu:0.5|g",
    b"wide.k:1|c",
    b"toolong.k:1|c",
    b"dotted.k:1|s",
    b"t" * 256 + b".k:1|c",
    b"t" * 257 + b".k:1|c",
    b"open.trace.span:5|ms|#trace:9f2c,root",
    b"nodot:1|c",
    b".empty:1|c",
    b"bad:token.x:1|c",
    b"unknown.x:1|c",
    b"s3cret.:1|c",
    b"s3cret.x",
]

FN_LINES = [
    b"fn.a:1|c", b"bare.b:2|g", b"edge.c:3|ms", b"over.d:1|s", b"num.e:1|c",
    b"tbl.f:1|c", b"err.g:1|c", b"ten.h:1|c", b"ok_team-1.i:1|c", b"ok_a b.j:1|c",
    b"nope.k:1|c", b"edge." + b"k" * 800 + b":1|c",
]


def token_seeds():
    for i, line in enumerate(TOKEN_LINES):
        for sel in (0b0000010, 0b0001010):  # table config, tcp / sender 10.1.2.3
            write("token", "table-%02d-%02x" % (i, sel), bytes([sel]) + line)
    write("token", "table-packet-flush", bytes([0b1100010]) + b"\n".join(TOKEN_LINES) + b"\n")
    write("token", "table-udp", bytes([0b0000110]) + b"\n".join(LINES[:8]))
    write("token", "table-unix-crlf", bytes([0b0000100]) + b"\r\n".join(TOKEN_LINES[:6]))
    for i, line in enumerate(FN_LINES):
        write("token", "fn-%02d" % i, bytes([0b0001011]) + line)
    write("token", "fn-packet-flush", bytes([0b1100011]) + b"\n".join(FN_LINES))


SINK = 'sinks = { out = { plugin = "console" } }'

CONFIG_SNIPPETS = [
    'listen = { "udp://127.0.0.1:8125", "tcp://127.0.0.1:8125", "unix:///tmp/s.sock", "unixgram:///tmp/s.dgram" }',
    'listen = { { url = "tcp://127.0.0.1:8126", auth = true, maxLineLength = 1024, idleTimeout = 0 } }',
    'listen = { { url = "udp://[::1]:8125", receiveBuffer = 1048576, threads = 4 } }',
    'listen = { { url = "unix:///tmp/s.sock", mode = "0660", maxConnections = 10 } }',
    'flushInterval = 1000',
    'percentThreshold = { 90, -10, 99.9, 0, 100, -100 }',
    'percentThreshold = 50',
    'histogram = { { metric = "lat", bins = { 0.5, 1, 10, "inf" } }, { metric = "", bins = { 1 } } }',
    'deleteIdleStats = true, gaugesMaxTTL = 3',
    'deleteCounters = true, deleteTimers = false, deleteSets = true, deleteGauges = true',
    'flush_counts = false',
    'prefixStats = "mystats"',
    'keyNameSanitize = false',
    'calculatedTimerMetrics = { "count", "mean_percent", "upper", "histogram" }',
    'graphite = { legacyNamespace = false, globalPrefix = "p", prefixCounter = "c", prefixTimer = "t",'
    ' prefixGauge = "g", prefixSet = "s", globalSuffix = "sfx" }',
    'graphite = { globalPrefix = "" }',
    'timerSampleLimit = 1, maxKeys = 10',
    'ringSize = 262144, shutdownTimeout = 0',
    'logLevel = "debug", sampleSeed = 12345',
    'luaMemoryLimit = 1048576, luaTimeout = 1',
    'graphiteHost = "127.0.0.1", graphitePort = 2003, port = 8125',
    'servers = { { server = "./servers/tcp", address = "127.0.0.1", port = 8126 },'
    ' { server = "./servers/udp", address_ipv6 = true } }',
    'backends = { "./backends/console" }',
    'sampleSeed = 1e30',
    'flushInterval = 4294967296',
    'gaugesMaxTTL = 1e20',
    'maxKeys = 1e300',
    'listen = { { url = "udp://127.0.0.1:1", threads = 1e30, receiveBuffer = 1e30 } }',
]

ROUTES = '''local route = require "switchyard.route"
return {
  listen = { "udp://127.0.0.1:8125", { url = "tcp://127.0.0.1:8126", auth = true } },
  sinks = { carbon = { plugin = "graphite", host = "127.0.0.1", port = 2003 },
            local_console = { plugin = "console" }, traces = { plugin = "console" } },
  routes = {
    route.prefix "debug."                 :drop "debug metrics stay on the host",
    route.glob "api.*.latency"            :sample(0.1) :to "carbon",
    route.glob "a.**.b"                   :to "local_console",
    route.match "^legacy%.(.+)$"          :rename "apps.%1" :to { "carbon", "local_console" },
    route.tag("env", "dev")               :to "local_console",
    route.tag("env", { "a", "b" })        :to "carbon",
    route.tag "trace"                     :passthrough "traces",
    route.type "ms"                       :addprefix "t." :to "carbon",
    route.listener "tcp"                  :to "carbon",
    route.sender "10.0.0.0/8"             :to "carbon",
    route.when(function(m) return #m.name > 50 end) :drop "long",
    route.default()                       :to "carbon",
  },
  auth = { tokens = { s3cret = "tenant1", open = true,
                      ops = { namespace = "ops", senders = { "10.0.0.0/8", "192.168.1.7" } } } },
  checks = {
    { "debug.anything", drop = true },
    { "legacy.db.query", to = { "carbon", "local_console" }, name = "apps.db.query" },
  },
}
'''

ROUTE_FN = '''return {
  sinks = { a = { plugin = "console" }, b = { plugin = "console" } },
  route = function(m)
    if m.name:sub(1, 4) == "drop" then return false end
    if m.tags.env then return { sinks = { "a" }, name = "env." .. m.name, sample = 0.5 } end
    if m.type == "s" then return { passthrough = { "b" } } end
    return nil
  end,
  auth = function(token, sender, listener) return token == "ok", "ns" end,
}
'''


def config_seeds():
    write("config", "minimal.lua", ("return { %s }\n" % SINK).encode())
    write("config", "empty-table.lua", b"return {}\n")
    write("config", "not-a-table.lua", b"return 42\n")
    write("config", "syntax-error.lua", b"return { sinks = \n")
    write("config", "routes.lua", ROUTES.encode())
    write("config", "route-fn.lua", ROUTE_FN.encode())
    for i, s in enumerate(CONFIG_SNIPPETS):
        write("config", "option-%02d.lua" % i, ("return {\n  %s,\n  %s,\n}\n" % (s, SINK)).encode())
    ex = os.path.join(REPO, "lua", "switchyard", "examples")
    for name in sorted(os.listdir(ex)):
        if name.endswith(".lua"):
            with open(os.path.join(ex, name), "rb") as f:
                write("config", "example-" + name, f.read())
    for name in ("token.config.lua", "token-fn.config.lua"):
        with open(os.path.join(HERE, name), "rb") as f:
            write("config", "harness-" + name, f.read())


if __name__ == "__main__":
    parse_seeds()
    framing_seeds()
    token_seeds()
    config_seeds()
    for h in ("parse", "framing", "token", "config"):
        print("%-8s %d seeds" % (h, len(os.listdir(os.path.join(HERE, "corpus", h)))))
