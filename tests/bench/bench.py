#!/usr/bin/env python3
"""switchyard's benchmarks: the receive ceiling, switchyard without and with
a 20-rule routing script, and Etsy statsd 0.9.0, on the same traffic.

    tests/bench/run.sh full    (make bench) 3 rounds of 10 s per system and
                               scenario, every scenario: ~50 minutes
    tests/bench/run.sh short   1 round of 2 s of the counters, typical-udp20,
                               typical-tcp and hot-udp20 scenarios (ceiling,
                               switchyard and statsd only, but for the
                               counters), newkeys and reload: ~80 s
    tests/bench/run.sh MODE --help      options (--scenarios, --systems, ...)

Scenarios, each system started fresh for each run, on loopback ports chosen
at run time.  Throughput, flat out, each over three transports: UDP with 20
metrics per datagram (-udp20), UDP with 1 (-udp1) and one TCP connection
(-tcp; the ceiling reads and counts lines):

  udp20, udp1, tcp  counters only, 10,000 keys (the first scenarios, kept
                    for comparison; no suffix)
  typical-*         statsd-typical: c=60,ms=30,g=5,s=5 over 10,000 keys,
                    every second timer with |@0.1, a third of the keys
                    (so of the lines) with three DogStatsD tags
  timers-*          timers only over 10,000 keys
  hot-*             timers only over 100 hot keys (tens of thousands of
                    samples per key and flush)
  highcard-*        the typical mix over 1,000,000 keys in rotation (full
                    mode only)

A family name (typical, timers, hot, highcard, counters) stands for its
three transports.  Others:

  newkeys  distinct keys sent once each: the CPU a routing decision costs
  flush1m  switchyard only: 1M idle counter keys, the time to flush them,
           UDP loss of a steady stream across that flush (against the same
           stream across a flush of an empty table), memory per key; once
           with a sink queue that holds the whole flush, once with the
           default config
  spool_outage  switchyard only, full mode only: 1M counter keys and the
           same steady stream, a graphite sink with a 1 MiB queue and a
           disk spool, twice: the sink up all along, then the sink down
           (not listening) while the 1M-key flush goes to the spool and up
           again for the replay; the stream's loss in both, spool bytes
           per value, the time to write the flush to the spool, the
           replay's time, every value at the sink, nothing dropped
  live5m   switchyard only, full mode only: 5M counter keys in the table
           (--live-keys), 1 s flushes of all of them to a graphite sink
           with the default queue: peak RSS per key, flushes that reached
           the sink whole, delivery time; then SIGTERM with
           shutdownTimeout 2000 ms: time to exit, the final flush whole

Systems:

  ceiling           tests/bench/ceiling.c: switchyard's receive loop
                    (recvmmsg, and the same 200 us nap instead of a wait
                    when busy) that only counts datagrams and lines; the
                    reference of every ratio
  ceiling-poll      the same waiting in poll() on every empty read, as the
                    ceiling did before (UDP only: over TCP both are one)
  switchyard        build/switchyard (a copy taken at start), no routing script
  switchyard+rules  the same with tests/bench/rules.lua's 20 rules in front of
                    the default route; no bench key matches any of them, so
                    each key is decided by walking all 20 (once per key: the
                    decision is cached)
  statsd            Etsy statsd 0.9.0 from npm (build/npm), graphite backend

The load comes from tests/bench/loadgen.c, and every server flushes to
tests/bench/sumsink.c, which adds up the `.count` lines per key group:
counters' values, timers' counts (a timer sent with @0.1 counts 10) and
sets' distinct members (the generator never repeats a member, so their sum
over flushes is the set lines that arrived), and keeps each gauge's last
value (the generator's gauge values grow with each line, so the sum of the
last values says whether each gauge's last line arrived).  What a system
accepted is what reached that sink, never what the server says it
received.  Per system (medians over the rounds):

  gen sent/s   the generator's own send rate
  accepted/s   metrics that reached the sink / the generator's send time
               (sent metrics x the share of the sink's units that arrived:
               gauges are not counted, they are checked by last value)
  loss %       1 - units reached / units sent
  CPU s/M      the server's utime+stime (/proc/PID/stat) from just before
               the send until it was idle again (or until the last late
               units arrived: see wait_settled), per million accepted;
               per-thread figures are in the JSON (and in the notes)
  peak RSS     VmHWM at that point
  drain s      how long after the send ended the server stayed busy (a
               backlog in its ring or socket buffers)
  ratios       accepted/s and CPU s/M against the ceiling and statsd

Flat out on a 2-core machine the generator competes with the server for
CPU: the generator's rate and CPU are reported beside each run, and so is
the background load (CPU that other processes used meanwhile, from
/proc/stat), since the machine may be shared.  Systems run round-robin
within each round so that such load hits all of them alike.

Statsd is run as people run it: its UDP socket keeps the kernel's default
receive buffer (net.core.rmem_default; node's dgram sets none), while
switchyard and the ceiling ask for 32 MiB.  Both daemons flush on the same
interval, with flush_counts on and legacyNamespace off, so counters arrive
as stats.counters.<key>.count from both.

A benchmark is not a test: no timing is asserted.  The run fails (exit 1)
only when a component fails to run: a process that does not start or dies,
a generator error, a system that accepted nothing, or switchyard losing
anything over TCP.  The last line is `bench: N passed, M failed`.

Results: one table per scenario on stdout, and everything (every round,
the command line and machine facts) in build/bench/results-<timestamp>.json.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(BENCH_DIR)
REPO_DIR = os.path.dirname(TESTS_DIR)
sys.path.insert(0, TESTS_DIR)

from lib.netutil import LOOPBACK, free_port, free_port_pair, wait_for_port  # noqa: E402
from lib.proc import Process, make_workdir, remove_workdir  # noqa: E402
from lib.statsd import STATSD_VERSION, ensure_statsd, statsd_config  # noqa: E402
from lib.sumsink import sumsink_stats  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

TOOLS_DIR = os.path.join(REPO_DIR, "build", "bench")
LOADGEN = os.path.join(TOOLS_DIR, "loadgen")
CEILING = os.path.join(TOOLS_DIR, "ceiling")
SUMSINK = os.path.join(TOOLS_DIR, "sumsink")
RULES_LUA = os.path.join(BENCH_DIR, "rules.lua")

CLK_TCK = os.sysconf("SC_CLK_TCK")
SINK_GAP_MS = 200
SYSTEMS = ["ceiling", "ceiling-poll", "switchyard", "switchyard+rules", "statsd"]

# The throughput scenarios: a traffic family over three transports.
# mix/sampled/tagged are loadgen's --mix/--sampled/--tagged; keys None is
# the mode's; systems: those run by default (--systems narrows them).
FAMILIES = {
    "counters": {"title": "counters only", "mix": "c=1", "sampled": 0, "tagged": 0, "keys": None,
                 "systems": SYSTEMS},
    "typical": {"title": "statsd-typical (c=60,ms=30,g=5,s=5, half the timers @0.1, a third tagged)",
                "mix": "c=60,ms=30,g=5,s=5", "sampled": 2, "tagged": 3, "keys": None,
                "systems": ["ceiling", "ceiling-poll", "switchyard", "statsd"]},
    "timers": {"title": "timers only", "mix": "ms=100", "sampled": 0, "tagged": 0, "keys": None,
               "systems": ["ceiling", "ceiling-poll", "switchyard", "statsd"]},
    "hot": {"title": "timers only, 100 hot keys", "mix": "ms=100", "sampled": 0, "tagged": 0,
            "keys": 100, "systems": ["ceiling", "ceiling-poll", "switchyard", "statsd"]},
    # A flush of 1M keys of this mix is some 5.5M lines (330 MB): the
    # graphite sink's queue (maxQueueBytes) must hold it, or the flush's
    # overflow is what gets measured (see flush1m for the default queue).
    "highcard": {"title": "statsd-typical over 1,000,000 keys in rotation", "mix": "c=60,ms=30,g=5,s=5",
                 "sampled": 2, "tagged": 3, "keys": 1000000, "max_queue": 1 << 30,
                 "systems": ["ceiling", "switchyard", "statsd"]},
}
TRANSPORTS = {"udp20": ("udp", 20, "UDP, 20 metrics/datagram, flat out"),
              "udp1": ("udp", 1, "UDP, 1 metric/datagram, flat out"),
              "tcp": ("tcp", 20, "TCP, one connection, flat out (ceiling: read() and count lines)")}


def throughput_names(family):
    """The scenario names of a family: counters keep the first names."""
    return [t if family == "counters" else "%s-%s" % (family, t) for t in TRANSPORTS]


def parse_throughput(name):
    """(family, transport) of a throughput scenario name, or None."""
    for fam in FAMILIES:
        for t in TRANSPORTS:
            if name == (t if fam == "counters" else "%s-%s" % (fam, t)):
                return fam, t
    return None

MODES = {
    # duration: seconds per run; rounds: runs per system and scenario (the
    # table shows medians); flush_ms: both daemons' flushInterval; million:
    # keys of the flush/memory test (0: skipped); newkeys: keys of the
    # routing-decision test
    # scenarios: the default list; short_systems: in short mode, the
    # systems of the families other than counters (time: short mode runs
    # in make test)
    "short": {"duration": 2.0, "rounds": 1, "flush_ms": 500, "keys": 10000, "million": 0,
              "newkeys": 50000, "reload_keys": 50000, "reload_rate": 100000, "reload_window": 3.0,
              "scenarios": "udp20,udp1,tcp,typical-udp20,typical-tcp,hot-udp20,newkeys,reload"},
    "full": {"duration": 10.0, "rounds": 3, "flush_ms": 2000, "keys": 10000, "million": 1000000,
             "newkeys": 200000, "reload_keys": 1000000, "reload_rate": 1000000, "reload_window": 12.0,
             "scenarios": "counters,typical,timers,hot,highcard,newkeys,flush1m,reload,spool_outage,live5m"},
}
SHORT_MIX_SYSTEMS = ["ceiling", "switchyard", "statsd"]


class ComponentError(Exception):
    """A process did not start, died, or a tool failed: the run is broken."""


# ---- /proc helpers -------------------------------------------------------

def proc_cpu(pid):
    """utime + stime of a process in seconds, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu(pid):
    """{tid: (name, utime+stime)} of every thread of a process.  Unnamed
    threads (the process's own name) are told apart by creation order."""
    out = {}
    try:
        tids = sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


def thread_deltas(before, after, pid):
    """Per-thread CPU over a run, in creation order: [(label, seconds)].
    Threads that share a name are numbered (switchyard#1, switchyard#2)."""
    names = [after[t][0] for t in sorted(after) if t != pid]
    rows, seen = [], {}
    for tid in sorted(after):
        name, cpu = after[tid]
        if tid == pid:
            label = "main"
        else:
            seen[name] = seen.get(name, 0) + 1
            label = name if names.count(name) == 1 else "%s#%d" % (name, seen[name])
        rows.append((label, round(cpu - before.get(tid, (name, 0.0))[1], 3)))
    return rows


def proc_status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def udp_kernel_errors():
    """(RcvbufErrors, InErrors) from /proc/net/snmp: datagrams the kernel
    dropped because a socket's receive buffer was full (machine-wide)."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        head, vals = rows[0], rows[1]
        d = dict(zip(head[1:], (int(v) for v in vals[1:])))
        return d.get("RcvbufErrors", 0), d.get("InErrors", 0)
    except (OSError, IndexError, ValueError):
        return 0, 0


def machine_busy_s():
    """CPU seconds the whole machine spent not idle (all CPUs), from
    /proc/stat: with the processes we run subtracted, what else was running
    on this shared machine during a run."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def read_file(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def machine_facts():
    model = "?"
    for line in read_file("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = None
    for line in read_file("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])

    def run(argv):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10,
                               cwd=REPO_DIR)
            return r.stdout.decode("utf-8", "replace").strip()
        except (OSError, subprocess.SubprocessError):
            return None

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "machine": platform.machine(),
        "mem_total_kb": mem_kb,
        "loadavg_at_start": read_file("/proc/loadavg").split()[:3],
        "rmem_default": int(read_file("/proc/sys/net/core/rmem_default", "0") or 0),
        "rmem_max": int(read_file("/proc/sys/net/core/rmem_max", "0") or 0),
        "node": run(["node", "--version"]),
        "statsd": STATSD_VERSION,
        "switchyard": run([switchyard_binary(), "--version"]),
        "git_commit": run(["git", "rev-parse", "HEAD"]),
        "git_dirty": bool(run(["git", "status", "--porcelain", "--untracked-files=no"])),
    }


def nap_constants(path):
    """NAP_US and NAP_RCVBUF as #defined in a C file (None when missing)."""
    text = read_file(path)
    out = {}
    for name in ("NAP_US", "NAP_RCVBUF"):
        m = re.search(r"^#define %s (.+?)\s*(/\*.*)?$" % name, text, re.M)
        out[name] = m.group(1).strip() if m else None
    return out


def snapshot_switchyard(workdir):
    """Copy the switchyard binary and its plugins into the run's temp dir
    (its Lua library is linked), so that every system of every scenario runs
    the same build even if the tree is rebuilt meanwhile.  Returns the path
    of the copy and the binary's SHA-256."""
    src = switchyard_binary()
    src_dir = os.path.dirname(src)
    dst_dir = os.path.join(workdir, "switchyard")
    os.makedirs(dst_dir)
    dst = os.path.join(dst_dir, "switchyard")
    shutil.copy2(src, dst)
    if os.path.isdir(os.path.join(src_dir, "plugins")):
        shutil.copytree(os.path.join(src_dir, "plugins"), os.path.join(dst_dir, "plugins"))
    os.symlink(os.path.join(REPO_DIR, "lua"), os.path.join(dst_dir, "lua"))
    with open(dst, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return dst, digest


# ---- processes -----------------------------------------------------------

class Registry:
    """Every process this run starts, so that all of them are stopped (by
    PID) whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, workdir, cwd=None):
        p = Process(name, argv, workdir, cwd=cwd).start()
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            if p.alive():
                p.stop(timeout=15)
        self.procs = []


def read_listening(proc, timeout=10.0):
    """The {"listening": X} line our C tools print once bound."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in read_file(proc.stdout_path).splitlines():
            if line.startswith('{"listening"'):
                return json.loads(line)["listening"]
        if not proc.alive():
            break
        time.sleep(0.02)
    raise ComponentError("%s did not start:\n%s" % (proc.name, proc.logs()))


class Sink:
    """sumsink on a free port."""

    def __init__(self, reg, workdir, name):
        self.proc = reg.start(name, [SUMSINK, "--gap-ms", str(SINK_GAP_MS)], workdir)
        self.port = read_listening(self.proc)

    def stats(self):
        return sumsink_stats(self.port)

    def stop(self):
        self.proc.stop()


def group_total(st, group):
    """What reached the sink in a group: counter values, timer counts and
    set members."""
    g = st["groups"].get(group)
    return int(g["counters"] + g["timers"] + g.get("sets", 0)) if g else 0


def watch_sum(st, predicate):
    return sum(v[1] for k, v in st["watch"].items() if predicate(k))


# ---- servers ---------------------------------------------------------------

def switchyard_lua(udp_port, tcp_port, sink_port, flush_ms, rules, max_queue=None, extra=()):
    head = ""
    if rules:
        head = "local routes = (function()\n%s\nend)()\n\n" % read_file(RULES_LUA).rstrip()
    body = [
        "  listen = { \"udp://%s:%d\", \"tcp://%s:%d\" }," % (LOOPBACK, udp_port, LOOPBACK, tcp_port),
        "  flushInterval = %d," % flush_ms,
        "  flush_counts = true,",
        "  graphite = { legacyNamespace = false, globalPrefix = \"stats\" },",
        "  sinks = { carbon = { plugin = \"graphite\", host = \"%s\", port = %d%s } },"
        % (LOOPBACK, sink_port, ", maxQueueBytes = %d" % max_queue if max_queue else ""),
    ]
    body += ["  %s," % e for e in extra]
    if rules:
        body.append("  routes = routes,")
        body.append("  checks = {\n"
                    "    { \"bench.k0000001\", to = { \"carbon\" } },\n"
                    "    { \"legacy.db.query\", to = { \"carbon\" }, name = \"apps.db.query\" },\n"
                    "    { \"debug.anything\", drop = true },\n"
                    "    { \"api.v2.internal.calls\", drop = true },\n"
                    "  },")
    return "-- written by tests/bench/bench.py\n" + head + "return {\n" + "\n".join(body) + "\n}\n"


class Server:
    """One system under test.  `pid` is the process whose CPU and memory are
    measured; `target` is what the generator sends to."""

    binary = None  # the snapshot every switchyard run uses
    wrapper = []   # argv prefix for switchyard (profile.py: valgrind)

    def __init__(self, system, proto, flush_ms, reg, workdir, tag, max_queue=None, extra=()):
        self.system = system
        self.max_queue = max_queue
        self.extra = extra  # more config lines for switchyard ("shutdownTimeout = 2000")
        self.proto = proto
        self.flush_ms = flush_ms
        self.reg = reg
        self.workdir = workdir
        self.tag = tag
        self.sink = None
        self.proc = None
        self.notes = {}

    def start(self):
        name = "%s-%s" % (self.tag, self.system.replace("+", "_"))
        if self.system.startswith("ceiling"):
            flag = "--tcp" if self.proto == "tcp" else "--udp"
            argv = [CEILING, flag, "%s:0" % LOOPBACK] + (["--no-nap"] if self.system == "ceiling-poll" else [])
            self.proc = self.reg.start(name, argv, self.workdir)
            self.port = read_listening(self.proc)
            self.notes["receive_buffer"] = read_file(self.proc.stderr_path).strip()
            return
        self.sink = Sink(self.reg, self.workdir, name + "-sink")
        if self.system.startswith("switchyard"):
            self.port = free_port_pair()
            cfg = os.path.join(self.workdir, name + ".lua")
            with open(cfg, "w") as f:
                f.write(switchyard_lua(self.port, self.port, self.sink.port, self.flush_ms,
                                       self.system == "switchyard+rules", self.max_queue,
                                       self.extra))
            self.proc = self.reg.start(name, Server.wrapper + [Server.binary, "-c", cfg], self.workdir,
                                       cwd=REPO_DIR)
            if not wait_for_port(self.port, 60 if Server.wrapper else 15, alive=self.proc.alive):
                raise ComponentError("%s did not start:\n%s" % (name, self.proc.logs()))
            for line in read_file(self.proc.stderr_path).splitlines():
                if "receive buffer" in line:
                    self.notes["receive_buffer"] = line.split(" ", 2)[-1]
        elif self.system == "statsd":
            stats_js = ensure_statsd()
            self.port = free_port(self.proto)
            mgmt = free_port("tcp")
            opts = {
                "flushInterval": self.flush_ms,
                "flush_counts": True,
                "graphite": {"legacyNamespace": False, "globalPrefix": "stats"},
            }
            if self.proto == "tcp":
                opts["servers"] = [{"server": "./servers/tcp", "address": LOOPBACK, "port": self.port}]
            cfg = statsd_config(opts, self.port, mgmt, self.sink.port)
            path = os.path.join(self.workdir, name + ".config.js")
            with open(path, "w") as f:
                json.dump(cfg, f, indent=2)
            self.proc = self.reg.start(name, ["node", stats_js, path], self.workdir,
                                       cwd=os.path.dirname(stats_js))
            if not wait_for_port(mgmt, 30, alive=self.proc.alive):
                raise ComponentError("%s did not start:\n%s" % (name, self.proc.logs()))
            if self.proto == "tcp" and not wait_for_port(self.port, 10, alive=self.proc.alive):
                raise ComponentError("%s: no TCP listener:\n%s" % (name, self.proc.logs()))
            self.notes["receive_buffer"] = ("kernel default (rmem_default %s bytes): node's dgram "
                                            "socket sets none" %
                                            read_file("/proc/sys/net/core/rmem_default").strip())
        else:
            raise ValueError(self.system)

    @property
    def pid(self):
        return self.proc.pid

    def target(self):
        return ["--tcp" if self.proto == "tcp" else "--udp", "%s:%d" % (LOOPBACK, self.port)]

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def stop(self):
        rc = self.proc.stop(timeout=15) if self.proc else None
        if self.sink:
            self.sink.stop()
        return rc


# ---- measuring ---------------------------------------------------------------

def run_loadgen(args, timeout):
    argv = [LOADGEN] + [str(a) for a in args]
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ComponentError("loadgen timed out: %s" % " ".join(argv))
    out = r.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        res = json.loads(out[-1])
    except (IndexError, ValueError):
        raise ComponentError("loadgen printed no result (exit %d): %s\n%s"
                             % (r.returncode, " ".join(argv), r.stderr.decode("utf-8", "replace")))
    if r.returncode != 0 or res.get("error"):
        raise ComponentError("loadgen failed (exit %d): %s\n%s %s"
                             % (r.returncode, " ".join(argv), res.get("error"),
                                r.stderr.decode("utf-8", "replace")))
    res["argv"] = argv[1:]
    return res


def wait_idle(pid, window=0.2, busy=0.25, timeout=120.0):
    """Wait until the process used less than `busy` of a core over `window`
    seconds: its backlog is processed.  Returns the monotonic time."""
    t0 = time.monotonic()
    last, lt = proc_cpu(pid), t0
    while True:
        time.sleep(window)
        now, cpu = time.monotonic(), proc_cpu(pid)
        if cpu is None or last is None:
            return now
        if (cpu - last) / (now - lt) < busy or now - t0 > timeout:
            return now
        last, lt = cpu, now


def wait_flushed(sink, group, after, flush_s, expect=None):
    """Sink totals once everything up to `after` (monotonic) has been
    flushed: a flush burst that started after it is complete, or the group
    already holds `expect`."""
    deadline = time.monotonic() + 3 * flush_s + 10
    quiet = SINK_GAP_MS / 1000.0 * 1.5
    while True:
        st = sink.stats()
        if expect is not None and group_total(st, group) >= expect:
            return st
        later = [b for b in st["bursts"] if b[0] > after]
        if later and st["now"] - st["bursts"][-1][1] > quiet:
            return st
        if time.monotonic() > deadline:
            return st
        time.sleep(0.05)


def wait_settled(sink, group, st, flush_s, expect, timeout=60.0):
    """After wait_flushed: while the group's total is short of `expect` and
    still growing, wait.  A server can look idle and have flushed while a
    backlog remains (a 1M-key flush still crossing the sink queue, lines
    left in a reader's ring when the machine's other load starved it
    through wait_idle's window); it arrives over the next flushes.  A unit
    that was lost never comes, so a total that has not moved for two flush
    intervals is final.  Returns the sink's last stats."""
    last, changed = group_total(st, group), time.monotonic()
    deadline = changed + timeout
    while last < expect and time.monotonic() - changed < 2 * flush_s + 1 and time.monotonic() < deadline:
        time.sleep(0.2)
        st = sink.stats()
        total = group_total(st, group)
        if total != last:
            last, changed = total, time.monotonic()
    return st


def measure(server, load_args, duration=None, group="bench"):
    """One run: send, wait until the server is idle and has flushed, and
    collect the figures."""
    pid = server.pid
    sink_pid = server.sink.proc.pid if server.sink else None
    k0 = udp_kernel_errors()
    threads0 = thread_cpu(pid)
    cpu0, sink0 = proc_cpu(pid), proc_cpu(sink_pid) if sink_pid else 0.0
    busy0, w0 = machine_busy_s(), time.monotonic()
    args = load_args + ["--key-prefix", group]
    if duration is not None:
        args += ["--duration", duration]
    gen = run_loadgen(args, (duration or 0) + 120)
    t_end = time.monotonic()
    t_idle = wait_idle(pid)
    cpu1, sink1 = proc_cpu(pid), proc_cpu(sink_pid) if sink_pid else 0.0
    busy1, w1 = machine_busy_s(), time.monotonic()
    threads1 = thread_cpu(pid)
    hwm = proc_status_kb(pid, "VmHWM")
    k1 = udp_kernel_errors()
    if not server.alive() or None in (cpu0, cpu1, sink0, sink1):
        raise ComponentError("%s died during the run:\n%s" % (server.system, server.proc.logs()))
    ours = (cpu1 - cpu0) + (sink1 - sink0) + gen["cpu_user"] + gen["cpu_sys"]
    res = {
        "gen": gen,
        "cpu_s": cpu1 - cpu0,
        "peak_rss_kb": hwm,
        "drain_s": max(0.0, t_idle - t_end - 0.2),
        "kernel_udp_rcvbuf_errors": k1[0] - k0[0],
        # What other processes used, as a fraction of the whole machine.
        "background_load": max(0.0, (busy1 - busy0 - ours) / ((w1 - w0) * (os.cpu_count() or 1))),
        "threads_cpu_s": thread_deltas(threads0, threads1, pid),
        "notes": dict(server.notes),
    }
    if server.system.startswith("ceiling"):
        server.proc.stop()
        final = [json.loads(line) for line in read_file(server.proc.stdout_path).splitlines()
                 if line.startswith('{"event"')]
        if not final:
            raise ComponentError("the ceiling printed no counts:\n%s" % server.proc.logs())
        c = final[-1]
        res["received"] = c["lines"]
        res["units_expected"] = res["units_received"] = None
        res["received_datagrams"] = c["datagrams"]
        res["self_cpu_s"] = c["cpu_user"] + c["cpu_sys"]
    else:
        units = gen.get("sink_units", gen["sent_metrics"])
        st = wait_flushed(server.sink, group, t_idle, server.flush_ms / 1000.0, expect=units)
        t_flushed, before = time.monotonic(), group_total(st, group)
        st = wait_settled(server.sink, group, st, server.flush_ms / 1000.0, units)
        if group_total(st, group) != before:
            # a backlog arrived after the idle point: its CPU counts too
            res["late_units"] = group_total(st, group) - before
            res["settle_s"] = time.monotonic() - t_flushed
            cpu_late = proc_cpu(pid)
            if cpu_late is not None:
                res["cpu_s"] = cpu_late - cpu0
        if gen.get("gauge_keys"):
            # The gauges' last values come with the flush after the last
            # line: wait for them too (a flush later at most).
            deadline = time.monotonic() + 2 * server.flush_ms / 1000.0 + 1
            while (st["groups"].get(group, {}).get("gauge_last_sum", 0) < gen["gauge_last_sum"]
                   and time.monotonic() < deadline):
                time.sleep(0.1)
                st = server.sink.stats()
        res["units_expected"] = units
        res["units_received"] = group_total(st, group)
        # Metrics delivered: the sent ones times the share of units that
        # arrived (a sampled timer is 10 units, a gauge none).
        res["received"] = (gen["sent_metrics"] * res["units_received"] / units if units else 0)
        g = st["groups"].get(group, {})
        if gen.get("gauge_keys"):
            res["gauges"] = {"sent_keys": gen["gauge_keys"], "sent_last_sum": gen["gauge_last_sum"],
                             "sink_keys": g.get("gauge_keys", 0),
                             "sink_last_sum": g.get("gauge_last_sum", 0)}
        bl = st["watch"].get("stats.counters.statsd.bad_lines_seen.count")
        if bl:
            res["server_bad_lines"] = int(bl[1])
        # The longest flush computation (wall-clock ms, both daemons report
        # it): an upper bound of the output thread's CPU for one flush.
        ct = st["watch"].get("stats.statsd.graphiteStats.calculationtime")
        if ct and len(ct) > 3:
            res["flush_calc_ms_max"] = ct[3]
        res["sink_lines"] = st["lines"]
        res["sink_bad_lines"] = st["bad_lines"]
        res["server_reported_dropped"] = int(watch_sum(
            st, lambda k: ".switchyard.listener." in k and k.endswith(".dropped")))
        # values a sink's queue dropped (a 1M-key flush is some 330 MB):
        # lost on the output side, not at ingest
        res["server_sink_dropped"] = int(watch_sum(
            st, lambda k: ".switchyard.sink." in k and k.endswith(".dropped")))
        pr = st["watch"].get("stats.counters.statsd.packets_received.count")
        if pr:
            res["server_packets_received"] = int(pr[1])
        mr = st["watch"].get("stats.counters.statsd.metrics_received.count")
        if mr:
            res["server_metrics_received"] = int(mr[1])
    sent = gen["sent_metrics"]
    secs = gen["seconds"]
    res["sent"] = sent
    res["gen_rate"] = sent / secs if secs else 0
    res["gen_cpu_s"] = gen["cpu_user"] + gen["cpu_sys"]
    res["accepted_rate"] = res["received"] / secs if secs else 0
    # The same including the time the server needed to catch up afterwards.
    res["processed_rate"] = res["received"] / (secs + res["drain_s"]) if secs else 0
    if res["units_expected"]:
        res["loss_pct"] = 100.0 * (1 - res["units_received"] / res["units_expected"])
    else:
        res["loss_pct"] = 100.0 * (1 - res["received"] / sent) if sent else None
    res["cpu_per_million"] = (res["cpu_s"] / (res["received"] / 1e6)
                              if res["received"] and res["cpu_s"] is not None else None)
    return res


def median(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2.0


# Figures summarised over rounds by their median; the rest (notes) come
# from the round with the median accepted rate.
MEDIAN_KEYS = ("accepted_rate", "processed_rate", "loss_pct", "cpu_per_million", "gen_rate",
               "drain_s", "background_load", "cpu_s", "gen_cpu_s", "sent", "received")


def summarize(rounds):
    if len(rounds) == 1:
        out = dict(rounds[0])
        out["rounds"] = 1
        return out
    by_rate = sorted(rounds, key=lambda r: r["accepted_rate"])
    out = {k: v for k, v in by_rate[len(by_rate) // 2].items() if k != "gen"}
    for k in MEDIAN_KEYS:
        out[k] = median(r.get(k) for r in rounds)
    out["peak_rss_kb"] = max(r["peak_rss_kb"] or 0 for r in rounds)
    out["kernel_udp_rcvbuf_errors"] = median(r["kernel_udp_rcvbuf_errors"] for r in rounds)
    out["rounds"] = len(rounds)
    out["per_round"] = rounds
    out["spread"] = {k: [min(r[k] for r in rounds), max(r[k] for r in rounds)]
                     for k in ("accepted_rate", "cpu_per_million", "loss_pct")
                     if all(r.get(k) is not None for r in rounds)}
    return out


# ---- scenarios -----------------------------------------------------------------

def throughput_scenario(name, title, proto, per, cfg, ctx, systems, extra=(), keys=None, max_queue=None):
    """Each system in turn, `rounds` times round-robin (so that a burst of
    load from elsewhere on the machine hits every system alike); medians.
    extra: loadgen options of the traffic (--mix ...)."""
    rounds = cfg["rounds"]
    keys = keys or cfg["keys"]
    out = {"name": name, "title": title, "proto": proto, "per_datagram": per,
           "keys": keys, "loadgen_traffic": list(extra), "duration_s": cfg["duration"],
           "flush_ms": cfg["flush_ms"], "rounds": rounds, "gen_threads": cfg["gen_threads"], "systems": {}}
    print("\n== %s ==" % title)
    sys.stdout.flush()
    runs = {s: [] for s in systems}
    errors = {}
    for rnd in range(rounds):
        for system in systems:
            if system in errors:
                continue
            server = Server(system, proto, cfg["flush_ms"], ctx.reg, ctx.workdir, "%s-%d" % (name, rnd),
                            max_queue=max_queue)
            label = "%s/%s" % (name, system)
            try:
                server.start()
                load = server.target() + ["--keys", keys, "--per", per,
                                          "--threads", cfg["gen_threads"]] + list(extra)
                r = measure(server, load, cfg["duration"])
            except ComponentError as e:
                ctx.check(label + " ran", False, str(e))
                errors[system] = str(e)
                continue
            finally:
                server.stop()
            runs[system].append(r)
            print("   round %d/%d  %-17s sent %s, reached %s" % (rnd + 1, rounds, system,
                                                               fmt_int(r["sent"]), fmt_int(r["received"])))
            sys.stdout.flush()
    for system in systems:
        if system in errors:
            out["systems"][system] = {"error": errors[system]}
            continue
        for i, r in enumerate(runs[system]):
            label = "%s/%s round %d" % (name, system, i + 1)
            ctx.check(label + " accepted metrics", r["received"] > 0,
                      "nothing reached the sink (sent %d)" % r["sent"])
            if proto == "tcp" and system.startswith("switchyard"):
                ctx.check(label + " lossless over TCP", r["units_received"] == r["units_expected"],
                          "sent %d units, the sink summed %d" % (r["units_expected"], r["units_received"]))
        out["systems"][system] = summarize(runs[system])
    add_ratios(out)
    print_table(out)
    return out


def newkeys_scenario(cfg, ctx, systems):
    """The cost of a routing decision: N keys never seen before, each sent
    once (20 per datagram, at a rate both keep up with), to switchyard and
    to switchyard+rules.  The difference in CPU per key is what deciding a
    key by walking 20 Lua rules costs; known keys never reach Lua."""
    n = cfg["newkeys"]
    title = "new keys: %s distinct keys sent once each, 20/datagram at %s metrics/s" % (
        fmt_int(n), fmt_int(cfg["newkeys_rate"]))
    print("\n== %s ==" % title)
    out = {"name": "newkeys", "title": title, "keys": n, "systems": {}}
    for system in [s for s in ("switchyard", "switchyard+rules") if s in systems]:
        server = Server(system, "udp", cfg["flush_ms"], ctx.reg, ctx.workdir, "newkeys")
        try:
            server.start()
            r = measure(server, server.target() + ["--keys", n, "--count", n, "--per", 20,
                                                   "--rate", cfg["newkeys_rate"]], None, group="fresh")
        except ComponentError as e:
            ctx.check("newkeys/%s ran" % system, False, str(e))
            out["systems"][system] = {"error": str(e)}
            continue
        finally:
            server.stop()
        ctx.check("newkeys/%s accepted metrics" % system, r["received"] > 0, "nothing reached the sink")
        r["cpu_us_per_key"] = r["cpu_s"] / n * 1e6 if r["cpu_s"] is not None else None
        out["systems"][system] = r
        print("   %-17s sent %s, reached %s (loss %s %%), CPU %.3f s: %s us per new key"
              % (system, fmt_int(r["sent"]), fmt_int(r["received"]), fmt(r["loss_pct"], "{:.3f}"),
                 r["cpu_s"], fmt(r["cpu_us_per_key"], "{:.2f}")))
    a, b = out["systems"].get("switchyard", {}), out["systems"].get("switchyard+rules", {})
    if a.get("cpu_us_per_key") is not None and b.get("cpu_us_per_key") is not None:
        out["rule_decision_us"] = b["cpu_us_per_key"] - a["cpu_us_per_key"]
        print("   20 rules cost about %.2f us of CPU per new key (switchyard+rules minus switchyard)"
              % out["rule_decision_us"])
    sys.stdout.flush()
    return out


def add_ratios(sc):
    s = sc["systems"]

    def ratio(a, b):
        return a / b if a is not None and b else None

    ceil = s.get("ceiling") if "error" not in s.get("ceiling", {"error": 1}) else None
    poll = s.get("ceiling-poll") if "error" not in s.get("ceiling-poll", {"error": 1}) else None
    ref = s.get("statsd") if "error" not in s.get("statsd", {"error": 1}) else None
    for name, r in s.items():
        if "error" in r:
            continue
        r["vs_ceiling"] = {"rate": ratio(r["accepted_rate"], ceil and ceil["accepted_rate"]),
                           "cpu": ratio(r["cpu_per_million"], ceil and ceil["cpu_per_million"])}
        r["vs_ceiling_poll"] = {"rate": ratio(r["accepted_rate"], poll and poll["accepted_rate"]),
                                "cpu": ratio(r["cpu_per_million"], poll and poll["cpu_per_million"])}
        r["vs_statsd"] = {"rate": ratio(r["accepted_rate"], ref and ref["accepted_rate"]),
                          "cpu": ratio(r["cpu_per_million"], ref and ref["cpu_per_million"])}
    sy, rules = s.get("switchyard"), s.get("switchyard+rules")
    if sy and rules and "error" not in sy and "error" not in rules:
        sc["rules_vs_plain"] = {"rate": ratio(rules["accepted_rate"], sy["accepted_rate"]),
                                "cpu": ratio(rules["cpu_per_million"], sy["cpu_per_million"])}


def fmt_int(v):
    return "-" if v is None else "{:,}".format(int(round(v)))


def fmt(v, spec):
    return "-" if v is None else spec.format(v)


def print_table(sc):
    cols = ("system", "gen sent/s", "accepted/s", "loss %", "CPU s/M", "peak RSS",
            "drain s", "rate/ceil", "CPU/ceil", "rate/statsd", "CPU/statsd")
    rows = []
    for name, r in sc["systems"].items():
        if "error" in r:
            rows.append((name, "FAILED") + ("",) * (len(cols) - 2))
            continue
        vc, vs = r.get("vs_ceiling", {}), r.get("vs_statsd", {})
        rows.append((name, fmt_int(r["gen_rate"]), fmt_int(r["accepted_rate"]),
                     fmt(r["loss_pct"], "{:.3f}"), fmt(r["cpu_per_million"], "{:.3f}"),
                     fmt(r["peak_rss_kb"] and r["peak_rss_kb"] / 1024.0, "{:.1f} MB"),
                     fmt(r["drain_s"], "{:.1f}"),
                     fmt(vc.get("rate"), "{:.3f}"), fmt(vc.get("cpu"), "{:.2f}"),
                     fmt(vs.get("rate"), "{:.2f}"), fmt(vs.get("cpu"), "{:.3f}")))
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]

    def row_text(row):
        # The system name left-aligned, the figures right-aligned.
        return "  ".join("%-*s" % (w, c) if i == 0 else "%*s" % (w, c)
                         for i, (w, c) in enumerate(zip(widths, row)))

    header = row_text(cols)
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row_text(row))
    notes = []
    for name, r in sc["systems"].items():
        if "error" in r:
            continue
        extra = []
        if r.get("kernel_udp_rcvbuf_errors"):
            extra.append("kernel dropped %s datagrams (receive buffer full)"
                         % fmt_int(r["kernel_udp_rcvbuf_errors"]))
        if r.get("server_reported_dropped"):
            extra.append("switchyard's ring dropped %s datagrams" % fmt_int(r["server_reported_dropped"]))
        if r.get("units_expected") and r["units_received"] != r["units_expected"]:
            extra.append("the sink summed %s of %s units" % (fmt_int(r["units_received"]),
                                                             fmt_int(r["units_expected"])))
        ga = r.get("gauges")
        if ga:
            extra.append("gauges: %s of %s keys at the sink, last values %s"
                         % (fmt_int(ga["sink_keys"]), fmt_int(ga["sent_keys"]),
                            "all right" if ga["sink_last_sum"] == ga["sent_last_sum"] and
                            ga["sink_keys"] == ga["sent_keys"] else "sum off by %s"
                            % fmt_int(ga["sent_last_sum"] - ga["sink_last_sum"])))
        if r.get("flush_calc_ms_max") is not None:
            extra.append("longest flush computation %d ms" % r["flush_calc_ms_max"])
        if r.get("server_bad_lines"):
            extra.append("its bad_lines_seen %s" % fmt_int(r["server_bad_lines"]))
        vp = r.get("vs_ceiling_poll", {})
        if name != "ceiling-poll" and vp.get("rate") is not None:
            extra.append("vs ceiling-poll: rate %.3f, CPU %.2f" % (vp["rate"], vp["cpu"] or 0))
        if r.get("server_packets_received") is not None:
            extra.append("its own packets_received %s, metrics_received %s"
                         % (fmt_int(r["server_packets_received"]), fmt_int(r.get("server_metrics_received"))))
        if r["sent"]:
            extra.append("generator CPU %.2f s (%.2f s/M sent)"
                         % (r["gen_cpu_s"], r["gen_cpu_s"] / (r["sent"] / 1e6)))
        if r.get("drain_s"):
            extra.append("%s/s including the %.1f s drain" % (fmt_int(r["processed_rate"]), r["drain_s"]))
        if r.get("server_sink_dropped"):
            extra.append("its graphite sink's queue dropped %s values" % fmt_int(r["server_sink_dropped"]))
        if r.get("late_units"):
            extra.append("%s units arrived after it looked idle (%.1f s later)"
                         % (fmt_int(r["late_units"]), r.get("settle_s", 0)))
        sp = r.get("spread")
        if sp and "accepted_rate" in sp and "cpu_per_million" in sp:
            extra.append("over %d rounds accepted/s %s..%s, CPU s/M %.3f..%.3f" % (
                r["rounds"], fmt_int(sp["accepted_rate"][0]), fmt_int(sp["accepted_rate"][1]),
                sp["cpu_per_million"][0], sp["cpu_per_million"][1]))
        busy = [(n, c) for n, c in r.get("threads_cpu_s", []) if r["cpu_s"] and c >= 0.05 * r["cpu_s"]]
        if len(busy) > 1:
            extra.append("threads " + ", ".join("%s %.2f s" % (n, c) for n, c in busy))
        extra.append("background load %.0f%%" % (100 * r["background_load"]))
        notes.append("  %s: %s" % (name, "; ".join(extra)))
    if "rules_vs_plain" in sc:
        rv = sc["rules_vs_plain"]
        notes.append("  switchyard+rules / switchyard: rate %s, CPU %s"
                     % (fmt(rv["rate"], "{:.3f}"), fmt(rv["cpu"], "{:.3f}")))
    print("\n".join(notes))
    sys.stdout.flush()


def sleep_until_tick(interval_s, lead_s, min_wait=0.0):
    """Sleep until `lead_s` before the next wall-clock multiple of
    interval_s that is at least min_wait + lead_s away; returns that tick
    (epoch seconds)."""
    now = time.time()
    tick = (now // interval_s + 1) * interval_s
    while tick - lead_s - now < min_wait:
        tick += interval_s
    time.sleep(max(0.0, tick - lead_s - time.time()))
    return tick


def steady_stream(server, group, tick, lead_s, window_s, rate, keys):
    """A steady UDP stream from `lead_s` before `tick` to window_s after it;
    returns the generator's result."""
    return run_loadgen(server.target() + ["--keys", keys, "--per", 20, "--rate", rate,
                                          "--key-prefix", group, "--duration", lead_s + window_s],
                       lead_s + window_s + 60)


def flush_burst(st, tick):
    """The sink burst of the flush at `tick` (epoch s): the first one that
    starts at or after it."""
    for b in st["bursts"]:
        if b[2] >= tick - 0.05:
            return b
    return None


def million_scenario(name, cfg, ctx, max_queue=None):
    """switchyard with `million` idle counter keys: memory per key, the time
    to flush them, and UDP loss of a steady stream during that flush (against
    the same stream during a flush of an empty table).

    The flush writes two lines per key (count and rate), ~100 bytes per key
    in all: more than the graphite sink's default queue (64 MiB) holds for
    1M keys.  max_queue sets maxQueueBytes, so that the sink's queue is not
    what is measured."""
    nkeys = cfg["million"]
    flush_ms = cfg["million_flush_ms"]
    flush_s = flush_ms / 1000.0
    rate = cfg["steady_rate"]
    lead, window = 1.0, cfg["steady_window"]
    queue = ("maxQueueBytes %d MiB" % (max_queue >> 20)) if max_queue else "default maxQueueBytes (64 MiB)"
    title = ("switchyard with %s counter keys, %s: flush time, UDP loss during the flush "
             "(steady %s metrics/s, 20/datagram), memory per key; flushInterval %d ms"
             % (fmt_int(nkeys), queue, fmt_int(rate), flush_ms))
    print("\n== %s ==" % title)
    sys.stdout.flush()
    out = {"name": name, "title": title, "keys": nkeys, "flush_ms": flush_ms, "max_queue_bytes": max_queue,
           "steady_rate": rate, "steady_window_s": lead + window}
    server = Server("switchyard", "udp", flush_ms, ctx.reg, ctx.workdir, name, max_queue=max_queue)
    try:
        server.start()
        pid, sink = server.pid, server.sink
        k0 = udp_kernel_errors()
        # 1. control: the same steady stream across a flush of an empty table
        tick0 = sleep_until_tick(flush_s, lead, min_wait=0.5)
        ctl = steady_stream(server, "steadya", tick0, lead, window, rate, 1000)
        st = wait_flushed(sink, "steadya", wait_idle(pid), flush_s, expect=ctl["sent_metrics"])
        ctl_recv = group_total(st, "steadya")
        k1 = udp_kernel_errors()
        rss_before = proc_status_kb(pid, "VmRSS")
        # 2. the keys, sent right after a tick so that one flush holds them all
        tick1 = sleep_until_tick(flush_s, -0.05)
        load = run_loadgen(server.target() + ["--keys", nkeys, "--count", nkeys, "--per", 20,
                                              "--rate", cfg["million_rate"], "--key-prefix", "million"],
                           120)
        t_loaded = time.time()
        # 3. the steady stream across the next flush, which sends them all
        tick2 = sleep_until_tick(flush_s, lead, min_wait=0.0)
        if abs(tick2 - (tick1 + flush_s)) > 0.01:
            raise ComponentError("sending %d keys took too long (%.1f s) to fit in one flush interval"
                                 % (nkeys, t_loaded - tick1))
        k2 = udp_kernel_errors()
        during = steady_stream(server, "steadyb", tick2, lead, window, rate, 1000)
        k3 = udp_kernel_errors()
        st = wait_flushed(sink, "steadyb", wait_idle(pid), flush_s, expect=during["sent_metrics"])
        during_recv = group_total(st, "steadyb")
        keys_recv = group_total(st, "million")
        burst = flush_burst(st, tick2)
        # 4. memory once the keys are idle and one more flush has sent them
        tick3 = sleep_until_tick(flush_s, 0.0) + 0.0
        time.sleep(0.2)
        st = wait_flushed(sink, "million", wait_idle(pid), flush_s)
        burst_idle = flush_burst(st, tick3)
        rss_after = proc_status_kb(pid, "VmRSS")
        hwm = proc_status_kb(pid, "VmHWM")
        if not server.alive():
            raise ComponentError("switchyard died:\n%s" % server.proc.logs())
        ring_dropped = int(watch_sum(st, lambda k: ".switchyard.listener." in k and k.endswith(".dropped")))
        # None: the sink's own counter never arrived (it is sent after the
        # keys, so an overflowing flush loses it first).
        sink_dropped = (int(watch_sum(st, lambda k: ".switchyard.sink." in k and k.endswith(".dropped")))
                        if any(".switchyard.sink." in k for k in st["watch"]) else None)
    except ComponentError as e:
        ctx.check(name + " ran", False, str(e))
        out["error"] = str(e)
        return out
    finally:
        server.stop()
        # A flush that overflows the sink's queue loses its tail, and with
        # it the own metrics that would count the loss: the log says it.
        out["log_drop_lines"] = [line for line in read_file(server.proc.stderr_path).splitlines()
                                 if "drop" in line.lower()][:5] if server.proc else []
    ctx.check(name + ": the keys reached the sink", keys_recv > 0,
              "sent %d keys, the sink summed %d" % (load["sent_metrics"], keys_recv))

    def loss(sent, recv):
        return 100.0 * (1 - recv / sent) if sent else None

    out.update({
        "load": load, "keys_received": keys_recv,
        "control": {"gen": ctl, "sent": ctl["sent_metrics"], "received": ctl_recv,
                    "loss_pct": loss(ctl["sent_metrics"], ctl_recv),
                    "kernel_udp_rcvbuf_errors": k1[0] - k0[0]},
        "during_flush": {"gen": during, "sent": during["sent_metrics"], "received": during_recv,
                         "loss_pct": loss(during["sent_metrics"], during_recv),
                         "kernel_udp_rcvbuf_errors": k3[0] - k2[0]},
        "ring_dropped": ring_dropped,
        "sink_dropped_lines": sink_dropped,
        "flush": None if not burst else {
            "tick": tick2, "first_line_after_tick_s": burst[2] - tick2,
            "last_line_after_tick_s": burst[3] - tick2, "lines": burst[4], "bytes": burst[5]},
        "idle_flush": None if not burst_idle else {
            "first_line_after_tick_s": burst_idle[2] - tick3,
            "last_line_after_tick_s": burst_idle[3] - tick3, "lines": burst_idle[4]},
        "rss_before_kb": rss_before, "rss_after_kb": rss_after, "peak_rss_kb": hwm,
        "bytes_per_key": (rss_after - rss_before) * 1024.0 / nkeys if rss_after and rss_before else None,
    })
    print_million(out)
    return out


def live_scenario(cfg, ctx):
    """switchyard with `live_keys` counter keys in its table and 1 s flushes,
    a graphite sink (default queue) to sumsink: idle counters are flushed
    every interval (deleteIdleStats off), two lines a key.  Reported: peak
    RSS (VmHWM) per key over the RSS before the keys came, how many of the
    flushes due in `live_window` seconds reached the sink whole (each ends
    with statsd.numStats, so its arrival counts one), the lines a second
    the sink received, graphiteStats.flush_time (from the snapshot until
    the sink took the flush's last piece or dropped its rest, sent with the
    next flush), the values the sink dropped, and then SIGTERM with
    shutdownTimeout 2000 ms: the time to exit, and whether the final flush
    reached the sink whole."""
    n, window = cfg["live_keys"], cfg["live_window"]
    timeout_ms = 2000
    title = ("switchyard with %s live counter keys, flushInterval 1000 ms, graphite sink (default "
             "queue): peak RSS per key, flushes delivered whole, delivery time; SIGTERM with "
             "shutdownTimeout %d ms" % (fmt_int(n), timeout_ms))
    print("\n== %s ==" % title)
    sys.stdout.flush()
    out = {"name": "live5m", "title": title, "keys": n, "flush_ms": 1000, "window_s": window,
           "shutdown_timeout_ms": timeout_ms}
    server = Server("switchyard", "tcp", 1000, ctx.reg, ctx.workdir, "live",
                    extra=("shutdownTimeout = %d" % timeout_ms,))
    try:
        server.start()
        pid, sink = server.pid, server.sink
        rss0 = proc_status_kb(pid, "VmRSS")
        t_load = time.monotonic()
        load = run_loadgen(["--tcp", "%s:%d" % (LOOPBACK, server.port), "--keys", n, "--count", n,
                            "--per", 20, "--key-prefix", "live"], 1200)
        out["load"] = load
        out["load_s"] = time.monotonic() - t_load
        # every key in the table (switchyard.keys comes first in a flush,
        # so it arrives even when the rest of the flush does not)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            w = sink.stats()["watch"]
            if w.get("stats.statsd.switchyard.keys", [0])[0] >= n:
                break
            time.sleep(1.0)
        else:
            raise ComponentError("the table never held %d keys" % n)
        out["keys_in_table_s"] = time.monotonic() - t_load

        def watch(st, name):
            return st["watch"].get(name, [0, 0, 0, 0])
        st0 = sink.stats()
        rss_max = 0
        t_end = time.monotonic() + window
        while time.monotonic() < t_end:
            rss_max = max(rss_max, proc_status_kb(pid, "VmRSS") or 0)
            time.sleep(0.25)
        st1 = sink.stats()
        hwm = proc_status_kb(pid, "VmHWM")
        whole = watch(st1, "stats.statsd.numStats")[2] - watch(st0, "stats.statsd.numStats")[2]
        ft = "stats.statsd.graphiteStats.flush_time"
        ft_n = watch(st1, ft)[2] - watch(st0, ft)[2]
        ft_sum = watch(st1, ft)[1] - watch(st0, ft)[1]
        dropped = (watch(st1, "stats.statsd.switchyard.sink.carbon.dropped")[1] -
                   watch(st0, "stats.statsd.switchyard.sink.carbon.dropped")[1])
        lines = st1["lines"] - st0["lines"]
        # SIGTERM: the final flush goes out, then the sinks drain
        before = st1
        t = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        while server.proc.alive() and time.monotonic() - t < 120:
            time.sleep(0.05)
        exit_s = time.monotonic() - t
        time.sleep(SINK_GAP_MS / 1000.0 * 2)
        st2 = sink.stats()
        last_ns = watch(st2, "stats.statsd.numStats")
        out.update({
            "rss_before_kb": rss0, "rss_max_kb": rss_max, "peak_rss_kb": hwm,
            "peak_bytes_per_key": (hwm - rss0) * 1024.0 / n if hwm and rss0 else None,
            "flushes_due": int(round(window)), "flushes_whole": whole,
            "lines_per_s": lines / window,
            "flush_time_ms_mean": ft_sum / ft_n if ft_n else None,
            "flush_time_ms_max": watch(st1, ft)[3],
            "sink_dropped_values": dropped,
            "sigterm_exit_s": exit_s, "exited": not server.proc.alive(),
            "final_flush_whole": last_ns[2] > watch(before, "stats.statsd.numStats")[2] and last_ns[0] >= n,
            "lines_after_sigterm": st2["lines"] - before["lines"],
        })
    except ComponentError as e:
        ctx.check("live5m ran", False, str(e))
        out["error"] = str(e)
        return out
    finally:
        server.stop()
        log = read_file(server.proc.stderr_path).splitlines() if server.proc else []
        out["log_drop_lines"] = [line for line in log if "drop" in line.lower()][:8]
        out["log_tail"] = log[-12:]
    ctx.check("live5m: SIGTERM exits within shutdownTimeout + 10 s (%.1f s)" % out["sigterm_exit_s"],
              out["exited"] and out["sigterm_exit_s"] < timeout_ms / 1000.0 + 10)
    print("  load: %s keys sent in %.1f s, all in the table after %.1f s"
          % (fmt_int(n), out["load_s"], out["keys_in_table_s"]))
    print("  RSS before the keys %.0f MiB, peak %.0f MiB: %.0f bytes a key"
          % (rss0 / 1024.0, hwm / 1024.0, out["peak_bytes_per_key"] or 0))
    print("  of %d flushes due in %.0f s, %d reached the sink whole; the sink received %s lines/s; "
          "flush_time %.0f ms mean, %.0f ms max; the sink dropped %s values"
          % (out["flushes_due"], window, whole, fmt_int(int(out["lines_per_s"])),
             out["flush_time_ms_mean"] or 0, out["flush_time_ms_max"] or 0, fmt_int(int(dropped))))
    print("  SIGTERM: exit in %.1f s; final flush whole: %s (%s lines after SIGTERM)"
          % (exit_s, out["final_flush_whole"], fmt_int(out["lines_after_sigterm"])))
    return out


def fmt_ms(seconds):
    return "?" if seconds is None else "%.2f" % (seconds * 1e3)


def reload_scenario(cfg, ctx):
    """A reload under a steady UDP stream with many live keys: every key is
    made live over TCP (no loss while the first decisions are made), then a
    steady UDP stream over all of them, 20 metrics per datagram, with one
    SIGHUP a third of the way in.  Three configs: no rules (nothing to
    decide), the bench's 20 rules reloaded unchanged, and the 20 rules
    reloaded with one more that renames every key (every decision
    changes).  Reported: sent, reached the sink, ring drops, the time from
    SIGHUP to applied and the engine's longest pause for it (from the log
    and /metrics), the longest time a batch of ingest spent descheduled
    (what the scheduler alone costs the engine, without and during the
    reload), and the background load of the shared machine meanwhile."""
    n, rate, window = cfg["reload_keys"], cfg["reload_rate"], cfg["reload_window"]
    title = ("reload with %s live keys under a steady UDP stream of %s metrics/s (20/datagram), "
             "SIGHUP %.0f s into %.0f s" % (fmt_int(n), fmt_int(rate), window / 3, window))
    print("\n== %s ==" % title)
    sys.stdout.flush()
    out = {"name": "reload", "title": title, "keys": n, "rate": rate, "runs": {}}
    for variant, system in (("no rules", "switchyard"), ("20 rules, unchanged", "switchyard+rules"),
                            ("20 rules + renaming every key", "switchyard+rules")):
        http_port = free_port("tcp")
        server = Server(system, "udp", cfg["flush_ms"], ctx.reg, ctx.workdir, "reload%d" % len(out["runs"]),
                        extra=('httpAddress = "%s:%d"' % (LOOPBACK, http_port),))
        try:
            server.start()
            load = run_loadgen(["--tcp", "%s:%d" % (LOOPBACK, server.port), "--keys", n, "--count", n,
                                "--per", 20, "--key-prefix", "reload"], 300)
            wait_flushed(server.sink, "reload", wait_idle(server.pid), server.flush_ms / 1000.0,
                         expect=load["sent_metrics"])
            path = os.path.join(ctx.workdir, "%s-%s.lua" % (server.tag, system.replace("+", "_")))
            text = read_file(path)
            if variant.endswith("every key"):
                text = text.replace('route.default()                            :to "carbon",',
                                    'route.prefix "reload." :addprefix "re." :to "carbon",\n'
                                    '  route.default() :to "carbon",')
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
            busy0, w0 = machine_busy_s(), time.monotonic()
            cpu0, sink0 = proc_cpu(server.pid), proc_cpu(server.sink.proc.pid)
            gen = subprocess.Popen([LOADGEN] + [str(a) for a in server.target() +
                                   ["--keys", n, "--per", 20, "--rate", rate, "--key-prefix", "reload",
                                    "--duration", window]], stdout=subprocess.PIPE)
            time.sleep(window / 3)
            t_hup = time.monotonic()
            os.kill(server.pid, signal.SIGHUP)
            stdout, _ = gen.communicate(timeout=window + 120)
            steady = json.loads(stdout.decode().strip().splitlines()[-1])
            busy1, w1 = machine_busy_s(), time.monotonic()
            cpu1, sink1 = proc_cpu(server.pid), proc_cpu(server.sink.proc.pid)
            ours = (cpu1 or 0) - (cpu0 or 0) + (sink1 or 0) - (sink0 or 0) + \
                steady.get("cpu_user", 0) + steady.get("cpu_sys", 0)
            # what other processes used meanwhile, as a fraction of the machine
            background = max(0.0, (busy1 - busy0 - ours) / ((w1 - w0) * (os.cpu_count() or 1)))
            sent = load["sent_metrics"] + steady["sent_metrics"]
            st = wait_flushed(server.sink, "reload", wait_idle(server.pid), server.flush_ms / 1000.0)
            deadline = time.monotonic() + 30
            while group_total(st, "reload") + group_total(st, "re") < sent and time.monotonic() < deadline:
                time.sleep(0.5)
                st = server.sink.stats()
            got = group_total(st, "reload") + group_total(st, "re")
            # a reload that shares the engine with a heavy stream may still
            # be being prepared: wait for it (its time is reported)
            deadline = time.monotonic() + 180
            while "reload applied" not in read_file(server.proc.stderr_path) and \
                    time.monotonic() < deadline:
                time.sleep(0.5)
            log = read_file(server.proc.stderr_path)
            m = re.search(r"decided by the new config in (\d+) ms \((\d+) ms of it in Lua.*?the engine's "
                          r"longest pause for it (\d+) us, (\d+) us of CPU \(([^;]+);", log)
            prom = prom_values(http_port)
            run = {"sent": sent, "received": got, "loss": sent - got,
                   "ring_dropped": int(watch_sum(st, lambda k: ".switchyard.listener." in k and
                                                 k.endswith(".dropped"))),
                   "kernel_udp_rcvbuf_errors": None,
                   "prepare_ms": int(m.group(1)) if m else None,
                   "lua_ms": int(m.group(2)) if m else None,
                   "longest_slice_us": int(m.group(3)) if m else None,
                   "longest_slice_cpu_us": int(m.group(4)) if m else None,
                   "longest_slice_what": m.group(5) if m else None,
                   # /metrics: the engine's longest reload pause, and the
                   # longest time a batch of ingest spent descheduled (the
                   # scheduler alone), without a reload and while one was
                   # prepared
                   "pause_reload_max_s": prom.get('switchyard_engine_pause_max_seconds{cause="reload"}'),
                   "pause_reload_cpu_max_s": prom.get('switchyard_engine_pause_cpu_max_seconds{cause="reload"}'),
                   "batch_descheduled_max_s":
                       prom.get('switchyard_engine_batch_descheduled_max_seconds{during="none"}'),
                   "batch_descheduled_max_reload_s":
                       prom.get('switchyard_engine_batch_descheduled_max_seconds{during="reload"}'),
                   "background_load": background,
                   "applied": "reload applied" in log, "hup_at": t_hup}
            out["runs"][variant] = run
            ctx.check("reload/%s: applied" % variant, run["applied"], log[-2000:])
            ctx.check("reload/%s: the keys reached the sink" % variant, got > 0, "sent %d" % sent)
            print("  %-30s sent %s, reached %s, lost %s, ring drops %s; prepared in %s ms "
                  "(%s ms in Lua), the engine's longest pause for it %s us (%s us of CPU, %s); "
                  "/metrics: reload pause max %s ms (%s ms CPU); a batch of ingest descheduled "
                  "at most %s ms without a reload, %s ms during one; background load %.0f%%"
                  % (variant, fmt_int(sent), fmt_int(got), fmt_int(sent - got), fmt_int(run["ring_dropped"]),
                     run["prepare_ms"], run["lua_ms"], run["longest_slice_us"],
                     run["longest_slice_cpu_us"], run["longest_slice_what"],
                     fmt_ms(run["pause_reload_max_s"]), fmt_ms(run["pause_reload_cpu_max_s"]),
                     fmt_ms(run["batch_descheduled_max_s"]), fmt_ms(run["batch_descheduled_max_reload_s"]),
                     100 * background))
            sys.stdout.flush()
        except ComponentError as e:
            ctx.check("reload/%s ran" % variant, False, str(e))
            out["runs"][variant] = {"error": str(e)}
        finally:
            server.stop()
    return out


def print_million(m):
    print("  keys sent %s (%s metrics/s), reached the sink %s"
          % (fmt_int(m["load"]["sent_metrics"]), fmt_int(m["load"]["metrics_per_s"]),
             fmt_int(m["keys_received"])))
    for label, key in (("flush of the new keys", "flush"), ("next flush (keys idle)", "idle_flush")):
        f = m.get(key)
        if f:
            print("  %s: %s lines, first line %.3f s after the tick, last %.3f s after"
                  % (label, fmt_int(f["lines"]), f["first_line_after_tick_s"], f["last_line_after_tick_s"]))
    for label, key in (("steady UDP stream across an empty-table flush (control)", "control"),
                       ("steady UDP stream across the 1M-key flush", "during_flush")):
        r = m[key]
        print("  %s: sent %s, reached %s, loss %s %%, kernel rcvbuf drops %s"
              % (label, fmt_int(r["sent"]), fmt_int(r["received"]), fmt(r["loss_pct"], "{:.4f}"),
                 fmt_int(r["kernel_udp_rcvbuf_errors"])))
    print("  switchyard's own counters, as the sink received them: ring drops %s, graphite sink dropped %s"
          % (fmt_int(m["ring_dropped"]), "(never reached the sink)" if m["sink_dropped_lines"] is None
             else fmt_int(m["sink_dropped_lines"]) + " lines"))
    for line in m.get("log_drop_lines", []):
        print("  switchyard's log: " + line)
    print("  RSS before %.1f MB, after %s idle keys %.1f MB (peak %.1f MB): %s bytes per key"
          % (m["rss_before_kb"] / 1024.0, fmt_int(m["keys"]), m["rss_after_kb"] / 1024.0,
             m["peak_rss_kb"] / 1024.0, fmt(m["bytes_per_key"], "{:.0f}")))
    sys.stdout.flush()


# ---- the disk spool under an outage ---------------------------------------------

def prom_values(port):
    """{series: value} of switchyard's /metrics (series with their labels)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return {}
    out = {}
    for line in data.decode("utf-8", "replace").split("\r\n\r\n", 1)[-1].splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def prom_sum(values, family, **labels):
    """The sum of a family's series whose labels include `labels`."""
    total = 0.0
    for series, v in values.items():
        if series == family or series.startswith(family + "{"):
            if all('%s="%s"' % (k, x) in series for k, x in labels.items()):
                total += v
    return total


class SinkAt:
    """A sumsink by its port (for wait_flushed)."""

    def __init__(self, port):
        self.port = port

    def stats(self):
        return sumsink_stats(self.port)


def dir_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def spool_run(name, cfg, ctx, outage):
    """One run of spool_outage: the sink down (outage) or up from the start."""
    nkeys = cfg["million"]
    flush_ms = cfg["million_flush_ms"]
    flush_s = flush_ms / 1000.0
    rate = cfg["steady_rate"]
    lead, window = 1.0, cfg["spool_window"]
    res = {"outage": outage}
    carbon_port = free_port("tcp")
    http_port = free_port("tcp")
    udp_port = free_port_pair()
    spool_dir = os.path.join(ctx.workdir, name + "-spool")
    sink_proc = None

    def start_sink():
        p = ctx.reg.start(name + "-sink", [SUMSINK, "--port", carbon_port, "--gap-ms", SINK_GAP_MS],
                          ctx.workdir)
        read_listening(p)
        return p

    if not outage:
        sink_proc = start_sink()
    path = os.path.join(ctx.workdir, name + ".lua")
    with open(path, "w") as f:
        f.write("-- written by tests/bench/bench.py\nreturn {\n"
                "  listen = { \"udp://%s:%d\", \"tcp://%s:%d\" },\n"
                "  httpAddress = \"%s:%d\",\n"
                "  flushInterval = %d,\n  flush_counts = true,\n  deleteCounters = true,\n"
                "  graphite = { legacyNamespace = false, globalPrefix = \"stats\" },\n"
                "  sinks = { carbon = { plugin = \"graphite\", host = \"%s\", port = %d,\n"
                "                       maxQueueBytes = %d, reconnectMinMs = 100, reconnectMaxMs = 500,\n"
                "                       spool = { dir = \"%s\", maxBytes = \"4GiB\" } } },\n}\n"
                % (LOOPBACK, udp_port, LOOPBACK, udp_port, LOOPBACK, http_port, flush_ms,
                   LOOPBACK, carbon_port, cfg["spool_queue"], spool_dir))
    proc = ctx.reg.start(name, [Server.binary, "-c", path], ctx.workdir, cwd=REPO_DIR)
    try:
        if not wait_for_port(http_port, 15, alive=proc.alive):
            raise ComponentError("%s did not start:\n%s" % (name, proc.logs()))
        target = ["--udp", "%s:%d" % (LOOPBACK, udp_port)]
        # the keys, sent right after a tick so that the next flush holds them all
        tick1 = sleep_until_tick(flush_s, -0.05, min_wait=0.5)
        load = run_loadgen(target + ["--keys", nkeys, "--count", nkeys, "--per", 20,
                                     "--rate", cfg["million_rate"], "--key-prefix", "million"], 120)
        t_loaded = time.time()
        tick2 = sleep_until_tick(flush_s, lead, min_wait=0.0)
        if abs(tick2 - (tick1 + flush_s)) > 0.01:
            raise ComponentError("sending %d keys took too long (%.1f s) to fit in one flush interval"
                                 % (nkeys, t_loaded - tick1))
        m0 = prom_values(http_port)
        k0 = udp_kernel_errors()
        gen = subprocess.Popen([LOADGEN] + [str(a) for a in target + [
            "--keys", 1000, "--per", 20, "--rate", rate, "--key-prefix", "steady",
            "--duration", lead + window]], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # the spool's growth, from its files (no request to switchyard meanwhile)
        # (growth counts until shortly before the next flush, which adds the
        # steady keys' values behind it)
        grew, last = None, dir_bytes(spool_dir)
        while gen.poll() is None:
            time.sleep(0.02)
            b = dir_bytes(spool_dir)
            if b != last and tick2 <= time.time() < tick2 + flush_s - 0.1:
                grew, last = time.time(), b
        stdout, stderr = gen.communicate()
        t_stream_end = time.monotonic()
        try:
            steady = json.loads(stdout.decode().strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise ComponentError("loadgen printed no result: %s" % stderr.decode("utf-8", "replace"))
        k1 = udp_kernel_errors()
        wait_idle(proc.pid)
        # the spool has stopped growing (or never started: sink up)
        deadline = time.monotonic() + 60
        stable = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - stable < 0.5:
            time.sleep(0.05)
            b = dir_bytes(spool_dir)
            if b != last:
                if time.time() < tick2 + flush_s - 0.1:
                    grew = time.time()
                last, stable = b, time.monotonic()
        m1 = prom_values(http_port)
        spool_m1 = {k: prom_sum(m1, "switchyard_spool_" + k, sink="carbon")
                    for k in ("bytes", "records", "spooled_total", "dropped_total")}
        res.update({
            "load": load, "steady": steady,
            "steady_sent_datagrams": steady["sent_datagrams"],
            # the TCP listener receives nothing meanwhile
            "steady_counted_datagrams": int(prom_sum(m1, "switchyard_listener_received_total")
                                            - prom_sum(m0, "switchyard_listener_received_total")),
            "listener_dropped": int(prom_sum(m1, "switchyard_listener_dropped_total")
                                    - prom_sum(m0, "switchyard_listener_dropped_total")),
            "kernel_udp_rcvbuf_errors": k1[0] - k0[0],
            "spooled_values": int(spool_m1["spooled_total"]
                                  - prom_sum(m0, "switchyard_spool_spooled_total", sink="carbon")),
            "spooled_bytes": int(spool_m1["bytes"] - prom_sum(m0, "switchyard_spool_bytes", sink="carbon")),
            "spool_records": int(spool_m1["records"]),
            "spool_write_s": (grew - tick2) if (outage and grew) else None,
        })
        if outage:
            # the sink comes back
            t_up = time.monotonic()
            sink_proc = start_sink()
            t_conn = t_empty = None
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                m = prom_values(http_port)
                if t_conn is None and prom_sum(m, "switchyard_sink_connected", sink="carbon") >= 1:
                    t_conn = time.monotonic()
                if (prom_sum(m, "switchyard_spool_records", sink="carbon") == 0 and
                        prom_sum(m, "switchyard_sink_queued", sink="carbon") == 0 and
                        prom_sum(m, "switchyard_spool_replayed_total", sink="carbon")
                        >= prom_sum(m, "switchyard_spool_spooled_total", sink="carbon")):
                    t_empty = time.monotonic()
                    break
                time.sleep(0.05)
            res["connected_after_s"] = (t_conn - t_up) if t_conn else None
            res["replay_s"] = (t_empty - t_up) if t_empty else None
            res["replay_after_connect_s"] = (t_empty - t_conn) if t_empty and t_conn else None
        # everything flushed: the totals at the sink
        expect = load["sent_metrics"]
        deadline = time.monotonic() + 30
        st = sumsink_stats(carbon_port)
        while group_total(st, "million") < expect and time.monotonic() < deadline:
            time.sleep(0.2)
            st = sumsink_stats(carbon_port)
        # and the flush after the stream's end (the sink's clock is ours)
        time.sleep(max(0.0, tick2 + flush_s + 0.5 - time.time()))
        st = wait_flushed(SinkAt(carbon_port), "steady", t_stream_end, flush_s,
                          expect=steady["sent_metrics"])
        m2 = prom_values(http_port)
        if not proc.alive():
            raise ComponentError("switchyard died:\n%s" % proc.logs())
        burst = flush_burst(st, tick2)
        res.update({
            "million_received": group_total(st, "million"),
            "steady_received": group_total(st, "steady"),
            "spool_dropped": int(prom_sum(m2, "switchyard_spool_dropped_total", sink="carbon")),
            "spool_corrupt": int(prom_sum(m2, "switchyard_spool_corrupt_total", sink="carbon")),
            "sink_dropped": int(prom_sum(m2, "switchyard_sink_dropped_total", sink="carbon")),
            "spool_replayed": int(prom_sum(m2, "switchyard_spool_replayed_total", sink="carbon")),
            "spool_spooled_total": int(prom_sum(m2, "switchyard_spool_spooled_total", sink="carbon")),
            "sink_flush_s": (burst[3] - tick2) if (burst and not outage) else None,
        })
    finally:
        proc.stop(timeout=15)
        if sink_proc:
            sink_proc.stop()
    return res


def spool_scenario(cfg, ctx):
    """spool_outage: 1M live counter keys and a steady UDP stream, as
    flush1m, with a graphite sink behind a 1 MiB queue and a disk spool.
    Twice: the sink up all along (the control), then the sink down (not
    listening) while the 1M-key flush goes to the spool, and up again
    once it is written, for the replay.  Reported: the stream's loss in
    both (datagrams sent against counted, ring drops, the sink's totals),
    the spool's bytes per value, the time to write the flush to the spool
    (against the time to send it to the live sink), the replay's time once
    the sink is back, and whether every value arrived with none dropped.
    deleteCounters is on, so that the idle keys' later flushes (zeros) do
    not add to the replay."""
    name = "spool_outage"
    title = ("disk spool under an outage: %s counter keys, steady %s metrics/s over UDP (20/datagram), "
             "graphite sink with maxQueueBytes %d KiB and a spool; flushInterval %d ms"
             % (fmt_int(cfg["million"]), fmt_int(cfg["steady_rate"]), cfg["spool_queue"] >> 10,
                cfg["million_flush_ms"]))
    print("\n== %s ==" % title)
    sys.stdout.flush()
    out = {"name": name, "title": title, "keys": cfg["million"], "flush_ms": cfg["million_flush_ms"],
           "queue_bytes": cfg["spool_queue"], "steady_rate": cfg["steady_rate"],
           "steady_window_s": 1.0 + cfg["spool_window"], "runs": {}}
    for label, outage in (("sink up", False), ("sink down", True)):
        try:
            r = spool_run("%s-%s" % (name, "down" if outage else "up"), cfg, ctx, outage)
        except ComponentError as e:
            ctx.check("%s/%s ran" % (name, label), False, str(e))
            out["runs"][label] = {"error": str(e)}
            continue
        out["runs"][label] = r
        sent = r["steady"]["sent_metrics"]
        r["steady_loss_pct"] = 100.0 * (1 - r["steady_received"] / sent) if sent else None
        ctx.check("%s/%s: every key's value reached the sink" % (name, label),
                  r["million_received"] == r["load"]["sent_metrics"],
                  "sent %d, the sink summed %d" % (r["load"]["sent_metrics"], r["million_received"]))
        ctx.check("%s/%s: nothing dropped" % (name, label),
                  r["spool_dropped"] == 0 and r["sink_dropped"] == 0 and r["spool_corrupt"] == 0,
                  "spool dropped %d, corrupt %d, sink dropped %d"
                  % (r["spool_dropped"], r["spool_corrupt"], r["sink_dropped"]))
        if outage:
            ctx.check("%s/%s: the flush went to the spool" % (name, label),
                      r["spooled_values"] >= 2 * r["load"]["sent_metrics"],
                      "%d values spooled" % r["spooled_values"])
            ctx.check("%s/%s: the spool was replayed" % (name, label), r.get("replay_s") is not None,
                      "replayed %d of %d" % (r["spool_replayed"], r["spool_spooled_total"]))
        print("  %s: keys sent %s, reached the sink %s" % (label, fmt_int(r["load"]["sent_metrics"]),
                                                           fmt_int(r["million_received"])))
        print("    steady stream: %s datagrams sent, %s counted by the listener, ring drops %s, kernel "
              "rcvbuf drops %s; %s metrics sent, %s reached the sink: loss %s %%"
              % (fmt_int(r["steady_sent_datagrams"]), fmt_int(r["steady_counted_datagrams"]),
                 fmt_int(r["listener_dropped"]), fmt_int(r["kernel_udp_rcvbuf_errors"]), fmt_int(sent),
                 fmt_int(r["steady_received"]), fmt(r["steady_loss_pct"], "{:.4f}")))
        if outage:
            print("    spooled %s values in %s bytes (%s bytes a value), %s records; the flush written "
                  "to the spool %s s after its tick"
                  % (fmt_int(r["spooled_values"]), fmt_int(r["spooled_bytes"]),
                     fmt(r["spooled_bytes"] / r["spooled_values"] if r["spooled_values"] else None,
                         "{:.1f}"), fmt_int(r["spool_records"]), fmt(r["spool_write_s"], "{:.2f}")))
            print("    sink back: connected after %s s, spool replayed and the queue empty after %s s "
                  "(%s s after connecting); replayed %s of %s spooled values"
                  % (fmt(r.get("connected_after_s"), "{:.2f}"), fmt(r.get("replay_s"), "{:.2f}"),
                     fmt(r.get("replay_after_connect_s"), "{:.2f}"), fmt_int(r["spool_replayed"]),
                     fmt_int(r["spool_spooled_total"])))
        else:
            print("    the flush reached the live sink %s s after its tick; spooled %s values"
                  % (fmt(r["sink_flush_s"], "{:.2f}"), fmt_int(r["spooled_values"])))
        print("    dropped: spool %s, corrupt %s, sink %s"
              % (fmt_int(r["spool_dropped"]), fmt_int(r["spool_corrupt"]), fmt_int(r["sink_dropped"])))
        sys.stdout.flush()
    up, down = out["runs"].get("sink up", {}), out["runs"].get("sink down", {})
    if up.get("steady_loss_pct") is not None and down.get("steady_loss_pct") is not None:
        print("  steady-stream loss, sink down against sink up: %s %% against %s %%; ring drops %s "
              "against %s" % (fmt(down["steady_loss_pct"], "{:.4f}"), fmt(up["steady_loss_pct"], "{:.4f}"),
                              fmt_int(down["listener_dropped"]), fmt_int(up["listener_dropped"])))
    sys.stdout.flush()
    return out


# ---- main ------------------------------------------------------------------------

class Context:
    def __init__(self, workdir):
        self.workdir = workdir
        self.reg = Registry()
        self.passed = 0
        self.failed = []

    def check(self, label, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed.append(label)
            print("FAIL  %s\n%s" % (label, "\n".join("      " + x for x in str(detail).splitlines()[-40:])))
            sys.stdout.flush()
        return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=sorted(MODES))
    ap.add_argument("--duration", type=float, help="seconds per run")
    ap.add_argument("--keys", type=int, help="distinct keys (default 10000)")
    ap.add_argument("--flush-ms", type=int, help="flushInterval of both daemons")
    ap.add_argument("--rounds", type=int, help="runs per system and scenario (medians are shown)")
    ap.add_argument("--million", type=int, help="keys of the flush/memory test (0: skip it)")
    ap.add_argument("--newkeys", type=int, help="keys of the routing-decision test (0: skip it)")
    ap.add_argument("--gen-threads", type=int, default=1,
                    help="generator threads (sockets) in the throughput scenarios (default 1)")
    ap.add_argument("--scenarios",
                    help="comma-separated scenarios or families: udp20,udp1,tcp (counters), "
                    "typical-*, timers-*, hot-*, highcard-* (* = udp20, udp1, tcp), a family name "
                    "(counters, typical, timers, hot, highcard) for its three, newkeys, flush1m, "
                    "reload, spool_outage, live5m (default: the mode's list)")
    ap.add_argument("--reload-keys", type=int, help="live keys of the reload test (0: skip it)")
    ap.add_argument("--live-keys", type=int, help="keys of the live5m test (default 5000000)")
    ap.add_argument("--reload-rate", type=int, help="metrics/s of the reload test's steady stream")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help="comma-separated subset of " + ",".join(SYSTEMS))
    ap.add_argument("--out", help="results file (default build/bench/results-<timestamp>.json)")
    args = ap.parse_args()

    cfg = dict(MODES[args.mode])
    cfg["gen_threads"] = args.gen_threads
    for k in ("duration", "rounds", "keys", "flush_ms", "million", "newkeys", "reload_keys",
              "reload_rate"):
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    cfg.update({"million_flush_ms": 5000, "million_rate": 2000000, "steady_rate": 1000000,
                "steady_window": 3.0, "newkeys_rate": 500000,
                # spool_outage: the sink's queue, and the steady stream's
                # seconds after the tick (it starts 1 s before)
                "spool_queue": 1 << 20, "spool_window": 4.0,
                # live5m: keys in the table, seconds of 1 s flushes watched
                "live_keys": args.live_keys if args.live_keys is not None else 5000000,
                "live_window": 20.0})
    scenarios = []
    for s in (args.scenarios or cfg["scenarios"]).split(","):
        names = throughput_names(s) if s in FAMILIES else [s] if s else []
        for n in names:
            if n not in ("newkeys", "flush1m", "reload", "spool_outage", "live5m") and \
                    not parse_throughput(n):
                ap.error("unknown scenario %r" % n)
            if n not in scenarios:
                scenarios.append(n)
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            ap.error("unknown system %r" % s)

    for tool, how in ((LOADGEN, "tests/bench/run.sh builds it"), (CEILING, "tests/bench/run.sh builds it"),
                      (SUMSINK, "tests/bench/run.sh builds it"),
                      (switchyard_binary(), "run make, or set SY_BIN")):
        if not os.access(tool, os.X_OK):
            print("bench: %s is missing (%s)" % (tool, how))
            print("bench: 0 passed, 1 failed")
            return 1

    started = datetime.datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    out_path = args.out or os.path.join(TOOLS_DIR, "results-%s.json" % stamp)
    facts = machine_facts()
    results = {
        "command": [sys.executable] + sys.argv,
        "mode": args.mode,
        "started": started.isoformat(timespec="seconds"),
        "machine": facts,
        "config": cfg,
        "notes": [
            "statsd's UDP socket keeps the kernel default receive buffer (rmem_default %d bytes): "
            "node's dgram sets none, which is how statsd runs in practice; switchyard and the ceiling "
            "ask for 32 MiB" % facts["rmem_default"],
            "accepted/s = metrics that reached the sum sink / the generator's send time",
            "CPU = utime+stime of the server process (/proc/PID/stat) from the send's start until it "
            "was idle again, per million metrics that reached the sink",
        ],
        "scenarios": {},
    }
    print("switchyard benchmark, %s mode: %s, %d CPUs (%s), kernel %s, load %s"
          % (args.mode, stamp, facts["nproc"], facts["cpu_model"], facts["kernel"],
             " ".join(facts["loadavg_at_start"])))
    print("%d keys, %g s per run, %d round(s) (medians shown), flushInterval %d ms, %d generator "
          "thread(s); statsd %s on node %s with the kernel's default UDP receive buffer (%d bytes), "
          "switchyard and the ceiling with 32 MiB"
          % (cfg["keys"], cfg["duration"], cfg["rounds"], cfg["flush_ms"], cfg["gen_threads"],
             STATSD_VERSION, facts["node"], facts["rmem_default"]))
    sys.stdout.flush()

    workdir = make_workdir("switchyard-bench-")
    ctx = Context(workdir)
    Server.binary, facts["switchyard_sha256"] = snapshot_switchyard(workdir)
    facts["switchyard_binary"] = switchyard_binary()

    def on_signal(sig, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # The ceiling copies the reader's nap: the copies must agree.
    reader_nap = nap_constants(os.path.join(REPO_DIR, "core", "ingest", "reader.c"))
    ceiling_nap = nap_constants(os.path.join(BENCH_DIR, "ceiling.c"))
    ctx.check("the ceiling naps as core/ingest/reader.c does", reader_nap == ceiling_nap and
              None not in reader_nap.values(), "reader.c %s, ceiling.c %s" % (reader_nap, ceiling_nap))
    t0 = time.monotonic()
    try:
        if "statsd" in systems:
            try:
                ensure_statsd()
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                ctx.check("statsd installed", False, str(e))
                systems = [s for s in systems if s != "statsd"]
        dur = "%g s per run, %d round(s)" % (cfg["duration"], cfg["rounds"])
        for name in scenarios:
            ft = parse_throughput(name)
            if not ft:
                continue
            fam, tr = FAMILIES[ft[0]], ft[1]
            proto, per, how = TRANSPORTS[tr]
            keys = fam["keys"] or cfg["keys"]
            if ft[0] == "highcard" and args.mode == "short" and args.scenarios is None:
                continue
            chosen = [s for s in fam["systems"] if s in systems and
                      (args.mode == "full" or ft[0] == "counters" or s in SHORT_MIX_SYSTEMS or
                       args.systems != ",".join(SYSTEMS)) and
                      not (s == "ceiling-poll" and proto == "tcp")]
            extra = ["--mix", fam["mix"]]
            if fam["sampled"]:
                extra += ["--sampled", fam["sampled"]]
            if fam["tagged"]:
                extra += ["--tagged", fam["tagged"]]
            results["scenarios"][name] = throughput_scenario(
                name, "%s: %s, %s keys, %s" % (fam["title"], how, fmt_int(keys), dur),
                proto, per, cfg, ctx, chosen, extra, keys, fam.get("max_queue"))
        if "newkeys" in scenarios and cfg["newkeys"] > 0:
            results["scenarios"]["newkeys"] = newkeys_scenario(cfg, ctx, systems)
        if "flush1m" in scenarios and cfg["million"] > 0 and "switchyard" in systems:
            # The measurement, with a queue that holds a whole flush, then
            # the default config, to show what a default sink does with it.
            results["scenarios"]["flush1m"] = million_scenario("flush1m", cfg, ctx, max_queue=512 << 20)
            if cfg.get("million_default_queue", True):
                results["scenarios"]["flush1m_default_queue"] = million_scenario(
                    "flush1m_default_queue", cfg, ctx)
        if "reload" in scenarios and cfg["reload_keys"] > 0 and "switchyard" in systems:
            results["scenarios"]["reload"] = reload_scenario(cfg, ctx)
        if "spool_outage" in scenarios and cfg["million"] > 0 and "switchyard" in systems:
            results["scenarios"]["spool_outage"] = spool_scenario(cfg, ctx)
        if "live5m" in scenarios and cfg["live_keys"] > 0 and "switchyard" in systems:
            results["scenarios"]["live5m"] = live_scenario(cfg, ctx)
    except KeyboardInterrupt:
        ctx.check("bench finished", False, "interrupted")
    finally:
        ctx.reg.stop_all()
        remove_workdir(workdir)
    results["elapsed_s"] = time.monotonic() - t0
    results["failed_checks"] = ctx.failed
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2, sort_keys=False)
        f.write("\n")
    shown = out_path[len(REPO_DIR) + 1:] if out_path.startswith(REPO_DIR + "/") else out_path
    print("\nresults: %s (%.0f s)" % (shown, results["elapsed_s"]))
    print("bench: %d passed, %d failed" % (ctx.passed, len(ctx.failed)))
    return 0 if not ctx.failed else 1


if __name__ == "__main__":
    sys.exit(main())
