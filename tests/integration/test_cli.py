#!/usr/bin/env python3
"""Integration test: what the README promises about running the daemon.

Each scenario starts the real daemon (build/switchyard or $SY_BIN):

  1. dry_run: the README's routing config, fed the README's --dry-run
     example, prints exactly the README's output; sampled, tagged and
     malformed lines are shown as documented.
  2. log_levels: `logLevel` in the config and `-l` on the command line
     (which wins) decide what is logged; an unknown level is refused, by
     --check for the config and at start for -l.
  3. sigint: SIGINT, like SIGTERM, flushes everything received to the
     sink and exits 0.
  4. statsd_shortcuts: statsd's own config keys (port, address,
     address_ipv6, servers, graphiteHost/graphitePort, backends) ported
     line by line from statsd config files: every listener they name
     receives, and both backends get the flush.
  5. cache_expiry: routing-cache entries of dropped and pass-through-only
     keys expire after an interval without samples: rounds of 40,000 new
     dropped keys leave the key table and the RSS flat, while a routed
     key's count stays exact.
  6. reload_listeners: a reload that changes `listen` keeps the running
     listeners (the old port still receives, the new one is not opened)
     and says so in the log; a reload that leaves them alone says nothing.
  7. dogstatsd: npm hot-shots in its DogStatsD mode sends tagged counters,
     timings, histograms, distributions, gauges, sets, events and service
     checks; plus lines with several values, container IDs and
     timestamps: every value adds up at the sink, events and checks are
     counted on their own, and nothing is a bad line.  Events and checks
     also reach two repeater sinks named in dogstatsdEvents (one over
     UDP; one with two TCP destinations) byte for byte, hashed by title / check name; --check
     refuses dogstatsdEvents naming no sink or a graphite sink.

Usage:
  /usr/bin/python3 tests/integration/test_cli.py [SCENARIO ...]
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib import REPO_DIR  # noqa: E402
from lib import sanitizer  # noqa: E402
from lib.daemon import Daemon, rss_kib  # noqa: E402
from lib.netutil import LOOPBACK, free_port, http_get, send_tcp, send_udp, wait_for_port  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib import scenarios  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.statsd import ensure_npm  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402
from lib.tcplisten import LineListener  # noqa: E402

TEST_NAME = "test_cli"
HOT_SHOTS_VERSION = "18.0.0"
README = os.path.join(REPO_DIR, "README.md")


def finish(res, label, d, sig=signal.SIGTERM):
    """Stop the daemon with sig, check exit 0 and (sanitized build) no
    sanitizer report."""
    if d.alive():
        d.signal(sig)
    rc = d.wait_exit(40)
    if rc is None:
        rc = d.stop(5)
    res.check("%s: exits 0" % label, rc == 0, "exit code %r\n%s" % (rc, d.logs()))
    d.check_sanitizer(res, label)
    return rc


def metric(port, name):
    """A value from /metrics (None if absent)."""
    status, _, body = http_get(port, "/metrics")
    if status != 200:
        return None
    m = re.search(r"^%s (\S+)$" % re.escape(name), body, re.M)
    return float(m.group(1)) if m else None


def wait_value(listener, name, want, timeout):
    """Wait until the sum of `name`'s values at the listener is want."""
    listener.wait(lambda l: sum(l.values(name)) >= want, timeout)
    return sum(listener.values(name))


# ---------------------------------------------------------------------------
# 1. --dry-run, against the README


def readme_blocks():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    routing = re.search(r"^## Routing\n.*?^```lua\n(.*?)^```", text, re.S | re.M)
    example = re.search(r"^```\n\$ printf '([^']*)' \| switchyard --dry-run -c routing\.lua\n(.*?)^```",
                        text, re.S | re.M)
    return (routing.group(1) if routing else None,
            (example.group(1).encode().decode("unicode_escape"), example.group(2)) if example else None)


def dry_run(args, stdin, timeout=30):
    p = subprocess.run([switchyard_binary()] + args, input=stdin.encode(), capture_output=True,
                       timeout=timeout, cwd=REPO_DIR, env=sanitizer_env())
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def sanitizer_env():
    # A short-lived run under the sanitized binary reports to stderr, where
    # these checks read it: the log_path files are for the daemons.
    env = dict(os.environ)
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env[var] = ":".join(o for o in env.get(var, "").split(":") if o and not o.startswith("log_path="))
    return env


def scenario_dry_run(res, workdir):
    config, example = readme_blocks()
    if not res.check("dry_run: the README has the routing config and the --dry-run example",
                     config is not None and example is not None):
        return
    path = os.path.join(workdir, "routing.lua")
    with open(path, "w") as f:
        f.write(config)
    stdin, want = example
    rc, out, err = dry_run(["--dry-run", "-c", path], stdin)
    res.check("dry_run: the README's example prints exactly what the README shows",
              rc == 0 and out == want, "rc %d\nwant:\n%s\ngot:\n%s\n%s" % (rc, want, out, err))
    res.check("dry_run: nothing on stderr", err.strip() == "", err)

    lines = ("api.eu.latency:12|ms\n"
             "x.y:1|c|#env:dev\n"
             "not a metric\n"
             "other.key:5|g\n")
    rc, out, err = dry_run(["--dry-run", "-c", path], lines)
    want = ("api.eu.latency:12|ms\n"
            "  api.eu.latency|ms -> carbon as api.eu.latency, sampled at 0.1\n"
            "x.y:1|c|#env:dev\n"
            "  x.y;env=dev|c -> local_console as x.y;env=dev\n"
            "not a metric\n"
            "  bad line (counted in bad_lines_seen)\n"
            "other.key:5|g\n"
            "  other.key|g -> carbon as other.key\n")
    res.check("dry_run: a sampled rule, a tag rule, a bad line and the default route, as documented",
              rc == 0 and out == want, "rc %d\nwant:\n%s\ngot:\n%s\n%s" % (rc, want, out, err))

    bad = os.path.join(workdir, "bad.lua")
    with open(bad, "w") as f:
        f.write('return { sinks = { c = { plugin = "console" } }, flushIntervall = 10 }\n')
    rc, out, err = dry_run(["--dry-run", "-c", bad], "a:1|c\n")
    res.check("dry_run: a config with an unknown option exits 1 with file, line and key",
              rc == 1 and "bad.lua:1: flushIntervall: unknown option" in err and out == "",
              "rc %d\n%s%s" % (rc, out, err))


# ---------------------------------------------------------------------------
# 2. logLevel and -l


def small_config(port, extra=""):
    return """return {
  listen = { "tcp://%s:%d" },
  flushInterval = 500,
  sinks = { out = { plugin = "console" } },
  %s
}
""" % (LOOPBACK, port, extra)


def run_level(res, workdir, name, extra, args):
    """Start with a config and args, stop, return the log (None if it did
    not start)."""
    port = free_port("tcp")
    d = Daemon(name, workdir, args=args)
    ok = d.start(small_config(port, extra), port=port)
    if not res.check("log_levels %s: starts" % name, ok, d.logs()):
        d.stop(5)
        return None
    finish(res, "log_levels %s" % name, d)
    return [line for line in d.log().splitlines() if re.match(r"^\d{4}-\d\d-\d\dT", line)]


def levels_of(lines):
    return {line.split()[1] for line in lines}


def scenario_log_levels(res, workdir):
    lines = run_level(res, workdir, "default", "", [])
    if lines is not None:
        res.check("log_levels: by default info lines and no debug lines",
                  "info" in levels_of(lines) and "debug" not in levels_of(lines), "\n".join(lines))
    lines = run_level(res, workdir, "debug", 'logLevel = "debug",', [])
    if lines is not None:
        res.check("log_levels: logLevel = \"debug\" logs debug lines (the plugin loaded)",
                  any(" debug loaded sink plugin 'console'" in line for line in lines), "\n".join(lines))
    lines = run_level(res, workdir, "error", 'logLevel = "error",', [])
    if lines is not None:
        res.check("log_levels: logLevel = \"error\" logs nothing on a clean start and stop",
                  lines == [], "\n".join(lines))
    lines = run_level(res, workdir, "cmdline", 'logLevel = "error",', ["-l", "debug"])
    if lines is not None:
        res.check("log_levels: -l debug wins over logLevel = \"error\"",
                  "debug" in levels_of(lines) and "info" in levels_of(lines), "\n".join(lines))

    port = free_port("tcp")
    d = Daemon("badlevel", workdir, args=["-l", "loud"])
    d.start(small_config(port))
    rc = d.wait_exit(20)
    res.check("log_levels: -l loud is refused at start (exit 1, says why)",
              rc == 1 and "unknown log level 'loud'" in d.log(), "rc %r\n%s" % (rc, d.logs()))
    path = os.path.join(workdir, "level.lua")
    with open(path, "w") as f:
        f.write(small_config(port, 'logLevel = "verbose",'))
    rc, out, err = dry_run(["--check", path], "")
    res.check("log_levels: logLevel = \"verbose\" fails --check naming the key and the choices",
              rc == 1 and re.search(r"level\.lua:\d+: logLevel: must be one of error, warn, info, debug", err),
              "rc %d\n%s%s" % (rc, out, err))


# ---------------------------------------------------------------------------
# 3. SIGINT


def scenario_sigint(res, workdir):
    carbon = LineListener()
    port = free_port("tcp")
    d = Daemon("sigint", workdir)
    cfg = """return {
  listen = { "tcp://%s:%d" },
  flushInterval = 600000,
  graphite = { legacyNamespace = false },
  sinks = { carbon = { plugin = "graphite", host = "%s", port = %d } },
}
""" % (LOOPBACK, port, LOOPBACK, carbon.port)
    try:
        if not res.check("sigint: starts", d.start(cfg, port=port), d.logs()):
            return
        payload = "cli.sigint:1|c\n" * 5000 + "cli.sigtimer:7|ms\n" * 300 + "cli.siggauge:42|g\n"
        send_tcp(port, payload)
        time.sleep(0.3)
        # (flushes fall on wall-clock multiples of the interval, so one may
        # come before the signal; the sums below hold either way)
        finish(res, "sigint", d, sig=signal.SIGINT)
        res.check("sigint: the log says the interrupt stopped it",
                  d.count(r"Interrupt: stopping; flushing everything received") == 1, d.logs())
        got = (sum(carbon.values("stats.counters.cli.sigint.count")),
               sum(carbon.values("stats.timers.cli.sigtimer.count")),
               carbon.values("stats.gauges.cli.siggauge"))
        res.check("sigint: every sample received before the signal reached the sink",
                  got == (5000.0, 300.0, [42.0]), repr(got))
    finally:
        d.stop(5)
        carbon.close()


# ---------------------------------------------------------------------------
# 4. statsd's shortcuts


def scenario_statsd_shortcuts(res, workdir):
    carbon = LineListener()
    # statsd's exampleConfig.js, line by line; address and the ports chosen
    # for the test.
    udp = free_port("udp")
    d = Daemon("example", workdir)
    cfg = """-- statsd's exampleConfig.js, ported
return {
  graphitePort = %d,
  graphiteHost = "%s",
  port = %d,
  address = "%s",
  backends = { "./backends/graphite", "./backends/console" },
  flushInterval = 300,
}
""" % (carbon.port, LOOPBACK, udp, LOOPBACK)
    try:
        d.start(cfg)
        ok = wait_until(lambda: d.count(r"listening on udp://127\.0\.0\.1:%d" % udp) == 1, 20)
        if res.check("statsd_shortcuts: port + address open a UDP listener there", ok, d.logs()):
            send_udp(udp, ["shortcut.example:3|c", "shortcut.example:4|c"])
            got = wait_value(carbon, "stats_counts.shortcut.example", 7, 15)
            res.check("statsd_shortcuts: graphiteHost/graphitePort make a graphite sink (legacy names)",
                      got == 7, "got %r" % got)
            res.check("statsd_shortcuts: ./backends/console makes a console sink",
                      wait_until(lambda: re.search(r"^stats_counts\.shortcut\.example 7 \d+$",
                                                   d.stdout(), re.M), 10), d.stdout()[-2000:])
        finish(res, "statsd_shortcuts example", d)
    finally:
        d.stop(5)

    # statsd's servers list (UDP, TCP, IPv6) and address_ipv6.
    u4, t4, u6 = free_port("udp"), free_port("tcp"), free_port("udp")
    d = Daemon("servers", workdir)
    cfg = """-- statsd's "servers" form
return {
  servers = {
    { server = "./servers/udp", address = "%s", port = %d },
    { server = "./servers/tcp", address = "%s", port = %d },
    { server = "./servers/udp", address_ipv6 = true, port = %d },
  },
  graphiteHost = "%s",
  graphitePort = %d,
  flushInterval = 300,
}
""" % (LOOPBACK, u4, LOOPBACK, t4, u6, LOOPBACK, carbon.port)
    try:
        if not res.check("statsd_shortcuts: servers start", d.start(cfg, port=t4), d.logs()):
            return
        res.check("statsd_shortcuts: address_ipv6 = true listens on [::]",
                  d.count(r"listening on udp://\[::\]:%d" % u6) == 1, d.logs())
        send_udp(u4, ["shortcut.servers:1|c"])
        send_tcp(t4, "shortcut.servers:10|c\n")
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.sendto(b"shortcut.servers:100|c", ("::1", u6))
            want = 111
        except OSError as e:
            res.note("no IPv6 loopback here (%s): the [::] listener checked by its log line only" % e)
            want = 11
        got = wait_value(carbon, "stats_counts.shortcut.servers", want, 15)
        res.check("statsd_shortcuts: every server in the list receives (udp, tcp, udp over IPv6)",
                  got == want, "got %r, want %r" % (got, want))
        finish(res, "statsd_shortcuts servers", d)
    finally:
        d.stop(5)
        carbon.close()

    path = os.path.join(workdir, "repeater.lua")
    with open(path, "w") as f:
        f.write('return { port = %d, backends = { "./backends/repeater" } }\n' % udp)
    rc, out, err = dry_run(["--check", path], "")
    res.check("statsd_shortcuts: a statsd backend with no switchyard sink fails --check and says so",
              rc == 1 and "statsd backend './backends/repeater' has no switchyard sink" in err,
              "rc %d\n%s%s" % (rc, out, err))


# ---------------------------------------------------------------------------
# 5. routing-cache expiry

ROUNDS = int(os.environ.get("SY_CLI_ROUNDS", "5"))
KEYS_PER_ROUND = 40000


def scenario_cache_expiry(res, workdir):
    carbon = LineListener()
    port, http = free_port("tcp"), free_port("tcp")
    d = Daemon("expiry", workdir)
    cfg = """local route = require "switchyard.route"
return {
  listen = { "tcp://%s:%d" },
  httpAddress = "%s:%d",
  flushInterval = 250,
  -- a ring that wraps within a round: a 64 MiB one grows the RSS by the
  -- bytes received until it has been written through once
  ringSize = 1048576,
  graphite = { legacyNamespace = false },
  sinks = { carbon = { plugin = "graphite", host = "%s", port = %d } },
  routes = {
    route.prefix "junk."   :drop "junk",
    route.default()        :to "carbon",
  },
}
""" % (LOOPBACK, port, LOOPBACK, http, LOOPBACK, carbon.port)
    try:
        if not res.check("cache_expiry: starts", d.start(cfg, port=port) and
                         wait_for_port(http, 20, alive=d.alive), d.logs()):
            return
        rss = []
        keys_after = []
        for r in range(ROUNDS):
            payload = "".join("junk.r%d.k%d:1|c\n" % (r, i) for i in range(KEYS_PER_ROUND))
            send_tcp(port, payload + "cli.kept:1|c\n")
            peak = metric(http, "switchyard_keys")
            # Two intervals without samples, and the dropped keys are gone.
            wait_until(lambda: (metric(http, "switchyard_keys") or 0) <= 5, 40)
            keys_after.append(metric(http, "switchyard_keys"))
            rss.append(rss_kib(d.pid))
            res.note("round %d: keys %s right after, %s later, RSS %d KiB"
                     % (r + 1, peak, keys_after[-1], rss[-1]))
        res.check("cache_expiry: after each round of %d dropped keys the table is back to the live keys"
                  % KEYS_PER_ROUND, all(k is not None and k <= 5 for k in keys_after), repr(keys_after))
        dropped = metric(http, "switchyard_route_dropped_total")
        res.check("cache_expiry: every dropped sample is counted",
                  dropped == ROUNDS * KEYS_PER_ROUND, "switchyard_route_dropped_total %r" % dropped)
        if sanitizer.sanitized(d.binary):
            res.skip("cache_expiry: RSS flat across rounds",
                     "ASan keeps freed memory in its quarantine; the key count above is the check")
        else:
            # without expiry three rounds of 40,000 keys add about 12 MiB
            res.check("cache_expiry: RSS flat across rounds (last within 4 MiB of the second)",
                      rss[-1] <= rss[1] + 4096, "RSS KiB per round %r" % rss)
        finish(res, "cache_expiry", d)
        got = sum(carbon.values("stats.counters.cli.kept.count"))
        res.check("cache_expiry: the routed key's count is exact", got == ROUNDS, "got %r" % got)
    finally:
        d.stop(5)
        carbon.close()


# ---------------------------------------------------------------------------
# 6. listeners across a reload


def scenario_reload_listeners(res, workdir):
    carbon = LineListener()
    a, b = free_port("tcp"), free_port("tcp")
    d = Daemon("listeners", workdir)

    def cfg(port, prefix):
        return """local route = require "switchyard.route"
return {
  listen = { "tcp://%s:%d" },
  flushInterval = 250,
  graphite = { legacyNamespace = false },
  sinks = { carbon = { plugin = "graphite", host = "%s", port = %d } },
  routes = { route.default() :addprefix "%s" :to "carbon" },
}
""" % (LOOPBACK, port, LOOPBACK, carbon.port, prefix)

    try:
        if not res.check("reload_listeners: starts", d.start(cfg(a, "one."), port=a), d.logs()):
            return
        d.write_config(cfg(b, "two."))
        d.hup()
        applied = d.wait_count(r"reload applied", 1, 20)
        res.check("reload_listeners: the reload is applied", applied, d.logs())
        res.check("reload_listeners: the log says listen changed and takes effect at a restart",
                  d.count(r"warn  reload: listen changed in .*takes effect at the next restart") == 1,
                  d.logs())
        send_tcp(a, "cli.where:1|c\n")
        got = wait_value(carbon, "stats.counters.two.cli.where.count", 1, 15)
        res.check("reload_listeners: the old port still receives, under the new rules", got == 1,
                  "got %r\n%s" % (got, "\n".join(t for _, _, t in carbon.lines()[-20:])))
        refused = False
        try:
            socket.create_connection((LOOPBACK, b), timeout=2).close()
        except ConnectionRefusedError:
            refused = True
        except OSError:
            pass
        res.check("reload_listeners: the new port is not opened", refused)

        d.write_config(cfg(a, "three."))
        d.hup()
        res.check("reload_listeners: a reload back to the running listeners is applied",
                  d.wait_count(r"reload applied", 2, 20), d.logs())
        res.check("reload_listeners: ... and does not warn", d.count(r"listen changed") == 1, d.logs())
        finish(res, "reload_listeners", d)
    finally:
        d.stop(5)
        carbon.close()


# ---------------------------------------------------------------------------
# 7. DogStatsD from a real client

HS_N = 200


# Events and service checks not from hot-shots: several titles and names
# (so both destinations of the tier get some), UTF-8, an empty text.
DD_EXTRA = (["_e{%d,3}:ttl%d|txt|#k:v" % (len("ttl%d" % i), i) for i in range(12)] +
            ["_sc|chk.%d|%d|m:ok" % (i, i % 4) for i in range(12)] +
            ["_e{7,0}:d\u00e9ploy|", "_sc|caf\u00e9|2|h:web-1|#a:b|m:d\u00e9j\u00e0"])

DD_EXTRA_EVENTS = sum(1 for t in DD_EXTRA if t.startswith("_e"))


def dd_expected():
    """Every event and service check line the scenario sends, as sent."""
    lines = []
    for i in range(HS_N):
        text = "version %d rolled out" % i
        lines.append("_e{6,%d}:deploy|%s|t:info|#env:prod" % (len(text), text))
        lines.append("_sc|db.up|0|#env:prod|m:fine")
    return sorted(lines + DD_EXTRA)


def dd_key(line):
    """What the repeater hashes a line by: the event title, the check name."""
    if line.startswith("_sc|"):
        return line.split("|")[1].encode()
    head, rest = line.split(":", 1)
    return rest.encode()[:int(head[3:].split(",")[0])]  # the length is in bytes


def dd_refusals(res, workdir):
    """--check: dogstatsdEvents naming no sink, or a sink whose plugin
    cannot take raw lines."""
    base = """return {
  dogstatsdEvents = { "%s" },
  sinks = { carbon = { plugin = "graphite", host = "127.0.0.1", port = 2003 } },
}
"""
    for name, want in (("nosuch", "no sink named 'nosuch'"),
                       ("carbon", "sink 'carbon' cannot take DogStatsD events: its plugin "
                                  "'graphite' has no write_lines")):
        path = os.path.join(workdir, "dd-%s.lua" % name)
        with open(path, "w") as f:
            f.write(base % name)
        rc, out, err = dry_run(["--check", path], "")
        res.check("dogstatsd: --check refuses dogstatsdEvents = { \"%s\" }, saying why" % name,
                  rc != 0 and "dogstatsdEvents" in err and want in err, "rc %r: %s" % (rc, err))


def dd_token(res, workdir):
    """On an auth listener an event or check goes on without its token (and
    its CRLF); one with a refused token does not go at all."""
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.bind((LOOPBACK, 0))
    out.settimeout(0.2)
    udp, http = free_port("udp"), free_port("tcp")
    d = Daemon("dogstatsd-token", workdir)
    cfg = """return {
  listen = { { url = "udp://%s:%d", auth = true } },
  httpAddress = "%s:%d",
  auth = { tokens = { s3cret = "tenant1" } },
  dogstatsdEvents = { "e" },
  sinks = { e = { plugin = "repeater", host = "%s", port = %d } },
}
""" % (LOOPBACK, udp, LOOPBACK, http, LOOPBACK, out.getsockname()[1])
    try:
        if not res.check("dogstatsd: starts with an auth listener",
                         d.start(cfg) and wait_for_port(http, 20, alive=d.alive), d.logs()):
            return
        send_udp(udp, ["s3cret._e{2,2}:ab|cd\nbad._sc|x|0\ns3cret._sc|x|0|m:hi\r\nx._e{1,1}:a|b"])
        got, deadline = [], time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            try:
                got += out.recv(65536).split(b"\n")
            except socket.timeout:
                pass
        time.sleep(0.3)  # anything more would come with these
        try:
            got += out.recv(65536).split(b"\n")
        except socket.timeout:
            pass
        res.check("dogstatsd: behind a token, events and checks go on without it; refused ones not",
                  got == [b"_e{2,2}:ab|cd", b"_sc|x|0|m:hi"] and
                  metric(http, "switchyard_dogstatsd_forwarded_total") == 2, repr(got))
        finish(res, "dogstatsd token", d)
    finally:
        d.stop(5)
        out.close()


def scenario_dogstatsd(res, workdir):
    carbon = LineListener()
    tier = [LineListener(), LineListener()]
    edge = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a repeater over UDP
    edge.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    edge.bind((LOOPBACK, 0))
    edge.settimeout(0.2)
    udp, http = free_port("udp"), free_port("tcp")
    d = Daemon("dogstatsd", workdir)
    cfg = """return {
  listen = { "udp://%s:%d" },
  httpAddress = "%s:%d",
  flushInterval = 300,
  graphite = { legacyNamespace = false },
  dogstatsdEvents = { "tier", "edge" },
  sinks = { carbon = { plugin = "graphite", host = "%s", port = %d },
            edge = { plugin = "repeater", host = "%s", port = %d },
            tier = { plugin = "repeater", protocol = "tcp", flushed = "none",
                     destinations = { "%s:%d", "%s:%d" } } },
}
""" % (LOOPBACK, udp, LOOPBACK, http, LOOPBACK, carbon.port, LOOPBACK, edge.getsockname()[1],
       LOOPBACK, tier[0].port,
       LOOPBACK, tier[1].port)
    try:
        dd_refusals(res, workdir)
        dd_token(res, workdir)
        if not res.check("dogstatsd: starts", d.start(cfg) and wait_for_port(http, 20, alive=d.alive),
                         d.logs()):
            return
        hs = ensure_npm("hot-shots", HOT_SHOTS_VERSION)
        env = dict(os.environ, NODE_PATH=os.path.dirname(hs))
        p = subprocess.run(["node", os.path.join(REPO_DIR, "tests", "lib", "hotshots_send.js"), str(udp),
                            str(HS_N)], capture_output=True, env=env, timeout=60)
        res.check("dogstatsd: hot-shots %s sent %d of each message" % (HOT_SHOTS_VERSION, HS_N),
                  p.returncode == 0, p.stderr.decode("utf-8", "replace"))
        # the extensions hot-shots does not send
        send_udp(udp, ["dd.multi:1:2:3|ms|@0.5", "dd.ctr:5|c|c:83bd3ea1|T1700000000",
                       "dd.tagged:1|c|#a:b|c:83bd3ea1", "dd.sets:x:y:x|s"])
        for k in range(0, len(DD_EXTRA), 8):
            send_udp(udp, ["\n".join(DD_EXTRA[k:k + 8])])  # several lines a datagram
        want = {
            "stats.counters.hs.count.count;env=prod;route=-api-v1": HS_N,
            "stats.timers.hs.timer.count": HS_N,
            "stats.timers.hs.hist.count": HS_N,
            "stats.timers.hs.dist.count;env=prod": HS_N,
            "stats.timers.hs.dist.sum;env=prod": 9 * HS_N,
            "stats.timers.dd.multi.count": 6,
            "stats.timers.dd.multi.sum": 6,
            "stats.counters.dd.ctr.count": 5,
            "stats.counters.dd.tagged.count;a=b": 1,
        }
        carbon.wait(lambda l: all(sum(l.values(k)) >= v for k, v in want.items()), 20)
        got = {k: sum(carbon.values(k)) for k in want}
        res.check("dogstatsd: every counter, timer, histogram and distribution adds up (and the "
                  "several-value, container and timestamp lines)", got == want,
                  "\n".join("%s: got %r, want %r" % (k, got[k], want[k]) for k in want if got[k] != want[k]))
        res.check("dogstatsd: the gauge and the set", carbon.values("stats.gauges.hs.gauge")[-1:] == [42.0] and
                  0 < max(carbon.values("stats.sets.hs.set.count") or [0]) <= 5 and
                  2.0 in carbon.values("stats.sets.dd.sets.count"),
                  "gauge %r, hs.set %r, dd.sets %r" % (carbon.values("stats.gauges.hs.gauge")[-3:],
                                                      carbon.values("stats.sets.hs.set.count"),
                                                      carbon.values("stats.sets.dd.sets.count")))
        counts = {m: metric(http, "switchyard_" + m) for m in
                  ("dogstatsd_events_total", "dogstatsd_service_checks_total",
                   "dogstatsd_container_ids_total", "dogstatsd_timestamps_total", "bad_lines_total")}
        res.check("dogstatsd: events and service checks counted on their own, container IDs and "
                  "timestamps counted, no bad line",
                  counts == {"dogstatsd_events_total": HS_N + DD_EXTRA_EVENTS,
                             "dogstatsd_service_checks_total": HS_N + len(DD_EXTRA) - DD_EXTRA_EVENTS,
                             "dogstatsd_container_ids_total": 2, "dogstatsd_timestamps_total": 1,
                             "bad_lines_total": 0}, repr(counts))
        # events and service checks reach the tier byte for byte, each
        # title or check name on one destination only
        want_dd = dd_expected()
        tier[0].wait(lambda _: len(tier[0].lines()) + len(tier[1].lines()) >= len(want_dd), 10)
        per = [[t for _, _, t in l.lines()] for l in tier]
        got_dd = sorted(per[0] + per[1])
        res.check("dogstatsd: every event and service check reaches the repeater tier as sent "
                  "(%d lines)" % len(want_dd), got_dd == want_dd,
                  "missing %r, extra %r" % (sorted(set(want_dd) - set(got_dd))[:5],
                                            sorted(set(got_dd) - set(want_dd))[:5]))
        split = [set(dd_key(t) for t in lines) for lines in per]
        res.check("dogstatsd: the tier's destinations each get whole titles and check names "
                  "(and both get some)", not (split[0] & split[1]) and all(split),
                  "dest 0 %r, dest 1 %r" % (sorted(split[0]), sorted(split[1])))
        got_udp, deadline = [], time.monotonic() + 10
        while len(got_udp) < len(want_dd) and time.monotonic() < deadline:
            try:
                got_udp += edge.recv(65536).decode("utf-8", "replace").split("\n")
            except socket.timeout:
                pass
        res.check("dogstatsd: ... and the UDP repeater, packed in datagrams", sorted(got_udp) == want_dd,
                  "%d lines, missing %r" % (len(got_udp), sorted(set(want_dd) - set(got_udp))[:5]))
        fwd = {m: metric(http, "switchyard_" + m) for m in
               ("dogstatsd_events_total", "dogstatsd_service_checks_total",
                "dogstatsd_forwarded_total", "dogstatsd_dropped_total")}
        n_ev = HS_N + DD_EXTRA_EVENTS
        fwd["sent"] = metric(http, 'switchyard_sink_sent_total{sink="tier",plugin="repeater"}')
        fwd["sink_dropped"] = metric(http, 'switchyard_sink_dropped_total{sink="tier",plugin="repeater"}')
        fwd["edge_sent"] = metric(http, 'switchyard_sink_sent_total{sink="edge",plugin="repeater"}')
        res.check("dogstatsd: forwarded, sent and dropped counters are exact",
                  fwd == {"dogstatsd_events_total": n_ev,
                          "dogstatsd_service_checks_total": len(want_dd) - n_ev,
                          "dogstatsd_forwarded_total": len(want_dd), "dogstatsd_dropped_total": 0,
                          "sent": len(want_dd), "sink_dropped": 0, "edge_sent": len(want_dd)},
                  repr(fwd))
        finish(res, "dogstatsd", d)
    finally:
        d.stop(5)
        carbon.close()
        for t in tier:
            t.close()
        edge.close()


SCENARIOS = [
    ("dry_run", scenario_dry_run),
    ("log_levels", scenario_log_levels),
    ("sigint", scenario_sigint),
    ("statsd_shortcuts", scenario_statsd_shortcuts),
    ("cache_expiry", scenario_cache_expiry),
    ("reload_listeners", scenario_reload_listeners),
    ("dogstatsd", scenario_dogstatsd),
]


def main():
    return scenarios.run(TEST_NAME, SCENARIOS, "sy-cli-")


if __name__ == "__main__":
    sys.exit(main())
