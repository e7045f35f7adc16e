#!/usr/bin/env python3
"""Differential test: switchyard must emit what Etsy statsd 0.9.0 emits.

For each scenario (a set of statsd options) the test starts the reference
statsd and switchyard with the same options, each pointed at its own
capturing Graphite listener, and sends both the same traffic
(tests/diff/traffic.py) over several flushes.  Then, flush by flush, the
multisets of (metric name, value) must be equal:

  * values compare as floats with exact equality (NaN equals NaN), and the
    value texts must be identical too (Graphite stores what it reads, and
    switchyard promises JavaScript's number formatting);
  * timing metrics (timestamp_lag, processing_time, graphiteStats.*) differ
    by nature: only their names must match;
  * switchyard's own metrics (names containing ".switchyard.") are ignored.

Flush alignment: statsd flushes on multiples of the interval from its start
second, switchyard on wall-clock multiples.  Neither matters: for each
daemon a driver thread waits for that daemon's flush k-1 to arrive on its
capture and only then sends batch k, which therefore lands in flush k.  The
captures group lines into flushes by arrival bursts.  A self-check confirms
the reference received each batch in the flush it was meant for.

Switchyard-only behaviour (the deliberate differences from statsd, SIGTERM
flushing and exiting 0) is checked in a separate part against switchyard
alone.

Usage:
  /usr/bin/python3 tests/diff/test_statsd_diff.py            statsd vs $SY_BIN
  ... --against statsd            statsd vs a second statsd (harness check)
  ... --against statsd --mutate   the second statsd gets other percentiles:
                                  must FAIL (proves the diff sees differences)
  ... --scenario NAME             run only that scenario (repeatable)
  ... --dump DIR                  also write both daemons' flushes to DIR
"""
import argparse
import collections
import copy
import math
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.capture import GraphiteCapture  # noqa: E402
from lib.netutil import send_tcp, send_udp, send_udp_paced  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.statsd import StatsdServer, ensure_statsd  # noqa: E402
from lib.daemon import SwitchyardServer  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from traffic import BATCHES, batches_for  # noqa: E402

TEST_NAME = "test_statsd_diff"

HISTOGRAM = [
    {"metric": "api.latency", "bins": [50, 100, "inf"]},
    {"metric": "small", "bins": [0.5, 1, "inf"]},
    {"metric": "capped", "bins": [10, 20]},
]

BASE_OPTIONS = {
    "flushInterval": 1000,
    "percentThreshold": [90, -10, 99.5],
    "histogram": HISTOGRAM,
    "deleteIdleStats": False,
    "flush_counts": True,
    "prefixStats": "statsd",
    "keyNameSanitize": True,
    "graphite": {
        "legacyNamespace": False,
        "globalPrefix": "stats",
        "prefixCounter": "counters",
        "prefixTimer": "timers",
        "prefixGauge": "gauges",
        "prefixSet": "sets",
    },
}


def _options(**changes):
    """BASE_OPTIONS with changes; a 'graphite' dict is merged, not replaced."""
    opts = copy.deepcopy(BASE_OPTIONS)
    graphite = changes.pop("graphite", None)
    opts.update(changes)
    if graphite:
        opts["graphite"].update(graphite)
    return opts


SCENARIOS = collections.OrderedDict([
    # The new namespace, idle stats reported as 0, gauges kept.
    ("modern", _options()),
    # Idle stats deleted, gauges after 2 idle flushes; custom prefixes, one
    # of them empty (statsd then leaves that level out); percentiles where
    # the rounding order matters (58 of 25 values) or that take every
    # value; histograms with an exclusion (empty bins) and a catch-all.
    ("delete_idle", _options(deleteIdleStats=True, gaugesMaxTTL=2,
                             percentThreshold=[58, -58, 99.5, 100],
                             histogram=[{"metric": "small", "bins": []},
                                        {"metric": "api.latency", "bins": [50, 100, "inf"]},
                                        {"metric": "", "bins": [1, 10, "inf"]}],
                             graphite={"globalPrefix": "agg", "prefixCounter": "c",
                                       "prefixTimer": "t", "prefixGauge": "g",
                                       "prefixSet": ""})),
    # statsd's default legacy namespace with a suffix, another stats prefix,
    # no stats_counts, per-type deletion, other percentiles, 1.5 s flushes
    # (rates are count / 1.5).
    ("legacy", _options(flushInterval=1500, percentThreshold=[50, -50, 75.25],
                        prefixStats="meta", flush_counts=False,
                        deleteTimers=True, deleteSets=True,
                        graphite={"legacyNamespace": True, "globalSuffix": "host1"})),
    # statsd's defaults for everything not given (legacy namespace, prefix
    # "statsd", stats_counts, no histograms), a single percentile given as
    # a number, and keyNameSanitize off: the graphite backend then cleans
    # only the name part, and keys that differ before cleaning are separate
    # metrics with the same Graphite name.
    ("defaults_raw_keys", {"flushInterval": 1000, "percentThreshold": 95,
                           "keyNameSanitize": False}),
])

# What --mutate changes in the daemon under test: a different percentile
# list must be caught.
MUTATION = {"percentThreshold": [90, -10, 99]}

SWITCHYARD_NAME_MARK = ".switchyard."


# ---------------------------------------------------------------------------
# Running one daemon through the batches


class Subject:
    """One daemon, its capture, and what its driver observed."""

    def __init__(self, label, server, capture):
        self.label = label
        self.server = server
        self.capture = capture
        self.error = None
        self.send_delays = []   # seconds from flush k-1 arriving to batch k's first send
        self.send_times = []    # seconds batch k took to send (paced by the receiver)

    def flushes(self, count):
        return self.capture.flushes()[:count]


def drive(subject, batches, interval_s):
    """Run _drive in a thread, turning an exception into subject.error."""
    try:
        _drive(subject, batches, interval_s)
    except Exception as e:  # reported by check_scenario
        subject.error = "driver crashed: %r" % (e,)


def _drive(subject, batches, interval_s):
    """Wait for the daemon's first flush, then for each batch: send it right
    after the previous flush arrived, and wait for the flush that holds it.
    Runs in its own thread, one per daemon."""
    cap = subject.capture
    if cap.wait_for_flushes(1, timeout=3 * interval_s + 15) is None:
        subject.error = "no first flush arrived"
        return
    for k, batch in enumerate(batches, start=1):
        started = cap.wait_for_flushes(k, timeout=0)
        sending = time.monotonic()
        send_udp_paced(subject.server.udp_port, batch)
        subject.send_delays.append(sending - started)
        subject.send_times.append(time.monotonic() - sending)
        if cap.wait_for_flushes(k + 1, timeout=2 * interval_s + 5) is None:
            subject.error = "flush %d never arrived" % (k + 1)
            return
    cap.wait_quiet()


def run_scenario(name, options, against, mutate, workdir):
    """Start the reference and the subject, drive both concurrently.
    Returns (reference, subject); subject.error says what went wrong."""
    interval_s = options["flushInterval"] / 1000.0
    gap = min(0.3, interval_s / 3)
    ref = Subject("statsd", None, GraphiteCapture(gap=gap))
    ref.server = StatsdServer("%s-statsd" % name, options, ref.capture.port, workdir)
    sut_options = dict(options, **MUTATION) if mutate else options
    if against == "statsd":
        sut = Subject("statsd-B", None, GraphiteCapture(gap=gap))
        sut.server = StatsdServer("%s-statsd-B" % name, sut_options, sut.capture.port, workdir)
    else:
        sut = Subject("switchyard", None, GraphiteCapture(gap=gap))
        sut.server = SwitchyardServer("%s-switchyard" % name, sut_options, sut.capture.port,
                                      workdir)
    for s in (ref, sut):
        if not s.server.start():
            s.error = getattr(s.server, "start_error", None) or "%s did not start" % s.label
    if not (ref.error or sut.error):
        threads = [threading.Thread(target=drive, args=(s, batches_for(options), interval_s))
                   for s in (ref, sut)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for s in (ref, sut):
        s.server.stop()
        s.capture.close()
    return ref, sut


# ---------------------------------------------------------------------------
# Names that depend on the options


def timing_name_re(options):
    """Metrics whose values are timings: compared by name only."""
    p = re.escape(options.get("prefixStats", "statsd"))
    return re.compile(r"(^|\.)%s\.(timestamp_lag|processing_time|graphiteStats\.)" % p)


def counter_rate_name(options, key):
    """The Graphite name of a counter's per-second rate, as statsd builds it."""
    g = options.get("graphite", {})
    suffix = "." + g["globalSuffix"] if g.get("globalSuffix") is not None else ""
    if g.get("legacyNamespace", True):
        return "stats." + key + suffix
    parts = [p for p in (g.get("globalPrefix", "stats"), g.get("prefixCounter", "counters"))
             if p != ""]
    return ".".join(parts + [key, "rate"]) + suffix


# ---------------------------------------------------------------------------
# Comparing flushes


def as_float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def same_float(a, b):
    if a is None or b is None:
        return False
    return a == b or (math.isnan(a) and math.isnan(b))


def by_name(lines):
    """name -> sorted list of value texts, without switchyard's own metrics."""
    out = collections.defaultdict(list)
    for line in lines:
        if SWITCHYARD_NAME_MARK in line.name:
            continue
        out[line.name].append(line.value)
    for v in out.values():
        v.sort(key=lambda t: (as_float(t) is None, as_float(t) or 0.0, t or ""))
    return out


def compare_flush(ref_lines, sut_lines, timing_re, labels):
    """Differences between two flushes: (value_problems, text_problems),
    each a list of readable lines.  value_problems covers missing names and
    values that differ as numbers; text_problems values equal as numbers but
    written differently."""
    a, b = by_name(ref_lines), by_name(sut_lines)
    la, lb = labels
    problems, text_problems = [], []
    for name in sorted(set(a) | set(b)):
        va, vb = a.get(name, []), b.get(name, [])
        if not vb:
            problems.append("only in %-10s %s = %s" % (la + ":", name, " ".join(map(str, va))))
        elif not va:
            problems.append("only in %-10s %s = %s" % (lb + ":", name, " ".join(map(str, vb))))
        elif timing_re.search(name):
            if len(va) != len(vb):
                problems.append("count differs   %s: %s x%d, %s x%d" % (name, la, len(va), lb, len(vb)))
        elif len(va) != len(vb) or not all(same_float(as_float(x), as_float(y))
                                           for x, y in zip(va, vb)):
            problems.append("value differs   %s: %s=%s %s=%s" % (name, la, ",".join(map(str, va)),
                                                                 lb, ",".join(map(str, vb))))
        elif va != vb:
            text_problems.append("text differs    %s: %s=%r %s=%r" % (name, la, ",".join(va),
                                                                     lb, ",".join(vb)))
    return problems, text_problems


def malformed_lines(lines):
    """Lines Graphite could not read: not `name value ts`, a value that is
    not a number, or a timestamp that is not an integer."""
    bad = []
    for line in lines:
        if line.value is None or as_float(line.value) is None or not (line.ts or "").isdigit():
            bad.append(repr(line.raw))
    return bad


def flush_ts(lines):
    return sorted(set(line.ts for line in lines if line.ts))


def clip(rows, limit=80):
    if len(rows) <= limit:
        return "\n".join(rows)
    return "\n".join(rows[:limit] + ["... and %d more" % (len(rows) - limit)])


# ---------------------------------------------------------------------------
# Checks


def check_scenario(results, name, options, against, mutate, workdir, dump_dir=None):
    """One scenario: start, drive, then one sub-check per flush plus harness
    and text checks."""
    ref, sut = run_scenario(name, options, against, mutate, workdir)
    tag = "scenario %s" % name
    failed_before = results.failed
    nflush = len(BATCHES) + 1
    if dump_dir:
        dump_flushes(dump_dir, name, (ref, sut), nflush)
    for s in (ref, sut):
        if not s.error and s.capture.flush_count() < nflush:
            s.error = "only %d flushes captured" % s.capture.flush_count()
    if ref.error or sut.error:
        detail = "%s: %s\n%s: %s\n%s\n%s" % (ref.label, ref.error or "ok", sut.label,
                                             sut.error or "ok", ref.server.logs(),
                                             sut.server.logs())
        results.check("%s: both daemons ran all %d flushes" % (tag, nflush), False, detail)
        return
    ref_flushes, sut_flushes = ref.flushes(nflush), sut.flushes(nflush)
    interval_s = options["flushInterval"] / 1000.0

    # Harness: the reference saw batch k in flush k (its packets_received:
    # a paced batch that statsd was still reading at its flush would split),
    # and each driver started sending in good time.
    pk_name = counter_rate_name(options, options.get("prefixStats", "statsd") + ".packets_received")
    harness = []
    for k in range(1, nflush):
        want = len(BATCHES[k - 1]) / interval_s
        got = [as_float(l.value) for l in ref_flushes[k] if l.name == pk_name]
        if got != [want]:
            harness.append("reference flush %d: %s = %s, expected [%r]" % (k, pk_name, got, want))
    for s in (ref, sut):
        late = [d for d in s.send_delays if d > interval_s / 2]
        if late:
            harness.append("%s: batches sent late after the flush: %s s"
                           % (s.label, ", ".join("%.3f" % d for d in late)))
    print("%s: batches sent in %s s (statsd), %s s (%s)"
          % (tag, ", ".join("%.3f" % d for d in ref.send_times),
             ", ".join("%.3f" % d for d in sut.send_times), sut.label))
    results.check("%s: harness (each batch landed in its own flush)" % tag, not harness,
                  "\n".join(harness))

    bad = malformed_lines(sum(sut_flushes, []))
    results.check("%s: %s lines are well-formed graphite plaintext" % (tag, sut.label), not bad,
                  clip(bad))

    timing_re = timing_name_re(options)
    all_text = []
    for k in range(nflush):
        problems, text_problems = compare_flush(ref_flushes[k], sut_flushes[k], timing_re,
                                                (ref.label, sut.label))
        all_text += ["flush %d: %s" % (k, t) for t in text_problems]
        head = "flush %d: %d lines from %s (ts %s), %d from %s (ts %s)" % (
            k, len(ref_flushes[k]), ref.label, flush_ts(ref_flushes[k]),
            len(sut_flushes[k]), sut.label, flush_ts(sut_flushes[k]))
        results.check("%s: flush %d names and values" % (tag, k), not problems,
                      head + "\n" + clip(problems))
    results.check("%s: value texts identical" % tag, not all_text, clip(all_text))
    if results.failed > failed_before and sut.server.kind == "switchyard":
        print(sut.server.proc.logs(limit=2500))


def dump_flushes(dump_dir, scenario, subjects, nflush):
    """Write what each daemon sent, flush by flush, for reading by hand."""
    os.makedirs(dump_dir, exist_ok=True)
    for s in subjects:
        path = os.path.join(dump_dir, "%s.%s.txt" % (scenario, s.label))
        with open(path, "w") as f:
            for k, lines in enumerate(s.capture.flushes()):
                mark = "" if k < nflush else " (after the compared flushes)"
                f.write("=== flush %d%s\n" % (k, mark))
                f.writelines(line.raw + "\n" for line in lines)
        print("wrote %s" % path)


def check_switchyard_extensions(results, workdir):
    """What switchyard does on purpose unlike statsd, and its shutdown:
    `h`/`d` are timers; unknown types, non-finite or hex values, @0 and
    empty keys are bad lines; a trailing CR is stripped; the last TCP line
    without a newline is kept; SIGTERM flushes and exits 0."""
    tag = "switchyard-only"
    cap = GraphiteCapture(gap=0.3)
    server = SwitchyardServer("ext-switchyard", _options(), cap.port, workdir)
    try:
        if not server.start():
            results.check("%s: switchyard starts" % tag, False,
                          (server.start_error or "") + "\n" + server.logs())
            return
        if cap.wait_for_flushes(1, 15) is None:
            results.check("%s: first flush arrives" % tag, False, server.logs())
            return
        send_udp(server.udp_port, [
            b"sy.h:5|h\nsy.d:7|d\nsy.unknown:1|x\nsy.inf:Infinity|c\nsy.hex:0x10|c",
            b"sy.rate0:1|c|@0\n:1|c\nsy.cr:3|c\r\nsy.crtag:1|c|#env:prod\r\n",
        ])
        send_tcp(server.tcp_port, b"sy.tcp:4|c\nsy.tcplast:6|c")
        if cap.wait_for_flushes(2, 5) is None:
            results.check("%s: second flush arrives" % tag, False, server.logs())
            return
        cap.wait_quiet()
        flush = {l.name: l.value for l in cap.flushes()[1]}
        expect = [
            ("stats.counters.statsd.bad_lines_seen.count", "5"),
            ("stats.timers.sy.h.count", "1"), ("stats.timers.sy.h.upper", "5"),
            ("stats.timers.sy.d.count", "1"), ("stats.timers.sy.d.upper", "7"),
            ("stats.counters.sy.cr.count", "3"), ("stats.counters.sy.crtag.count;env=prod", "1"),
            ("stats.counters.sy.tcp.count", "4"), ("stats.counters.sy.tcplast.count", "6"),
        ]
        for name, value in expect:
            results.check("%s: %s = %s" % (tag, name, value), flush.get(name) == value,
                          "got %r" % flush.get(name))
        leaked = sorted(n for n in flush if re.search(r"sy\.(unknown|inf|hex|rate0)|\.\.|^\.", n))
        results.check("%s: bad lines create no metric" % tag, not leaked, "\n".join(leaked))

        # SIGTERM right after sending: the value must still reach graphite.
        before = len(cap.lines())
        send_udp(server.udp_port, [b"sy.final:9|c"])
        time.sleep(0.2)
        code = server.stop()

        def final_counts():
            return [l.value for l in cap.lines()[before:]
                    if l.name == "stats.counters.sy.final.count" and l.value != "0"]
        final = wait_until(final_counts, 3)
        results.check("%s: SIGTERM flushes pending data" % tag,
                      sum(as_float(v) or 0 for v in final) == 9, "sy.final counts seen: %s" % final)
        results.check("%s: SIGTERM exits 0" % tag, code == 0, "exit code %s\n%s"
                      % (code, server.logs()))
    finally:
        server.stop()
        cap.close()


def check_harness_detects(results):
    """The harness's own mutation pass: the same comparison with the daemon
    under test given other percentiles (MUTATION) must fail, flush by
    flush, naming the percentile statistics that differ.  A harness that
    stopped seeing differences would pass everything above; this fails
    instead.  Once per make test: against the plain binary only (what it
    checks is the harness, not the daemon)."""
    from lib import sanitizer
    if sanitizer.sanitized(switchyard_binary()):
        return
    import subprocess
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--scenario", "modern", "--mutate"],
                       capture_output=True, timeout=300)
    out = p.stdout.decode("utf-8", "replace")
    fails = re.findall(r"^FAIL  scenario modern: flush \d+ names and values$", out, re.M)
    results.check("harness: a percentile mutation of the daemon under test is caught (%d flushes "
                  "differ, mean_99 named)" % len(fails),
                  p.returncode == 1 and len(fails) >= 3 and "mean_99" in out,
                  "exit %d\n%s" % (p.returncode, out[-3000:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", choices=("switchyard", "statsd"), default="switchyard",
                    help="daemon compared with the reference statsd")
    ap.add_argument("--mutate", action="store_true",
                    help="give the compared daemon other percentiles (the test must fail)")
    ap.add_argument("--scenario", action="append", choices=list(SCENARIOS),
                    help="run only these scenarios")
    ap.add_argument("--dump", metavar="DIR",
                    help="write every captured flush of both daemons to DIR")
    args = ap.parse_args()

    results = Results(TEST_NAME)
    workdir = make_workdir("sy-diff-")
    try:
        ensure_statsd()
        if args.against == "switchyard":
            print("switchyard binary: %s" % switchyard_binary())
        for name in args.scenario or SCENARIOS:
            check_scenario(results, name, SCENARIOS[name], args.against, args.mutate, workdir,
                           args.dump)
        if args.against == "switchyard":
            check_switchyard_extensions(results, workdir)
            if not args.mutate and not args.scenario:
                check_harness_detects(results)
        else:
            results.skip("switchyard-only checks", "comparing statsd with statsd")
    except Exception as e:  # a crash of the harness is a failure, not a skip
        import traceback
        traceback.print_exc()
        results.check("harness ran without error", False, repr(e))
    finally:
        remove_workdir(workdir)
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
