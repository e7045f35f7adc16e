#!/usr/bin/env python3
"""Differential test: switchyard's admin dumps against node's util.inspect.

statsd's console prints util.inspect(counters) (timers, gauges), and
switchyard's sy_agg_dump must print the same bytes.  This generates random
statsd traffic - keys with odd characters (quotes, backslashes, control
characters, DEL, C1 controls, non-ASCII, invalid UTF-8, array-index keys
such as "17"), numbers of every kind (negative, fractions, huge, tiny, -0),
timers of 0..150 values of varied widths, flushes with and without
deleteIdleStats, console deletes and keys seen again - and for each case:

  * switchyard: the lines, flushes and deletes go to a real sy_agg (the
    driver mode of build/tests/test_inspect: sy_agg_line, sy_agg_snapshot,
    sy_agg_delete), then sy_agg_dump;
  * node: the same operations applied to a JavaScript object the way
    stats.js applies them (modelled here in Python, then handed to node as
    JSON: key order survives JSON.parse), then util.inspect(obj) + "\\n".

keyNameSanitize is off, so keys reach the dump as sent (never ':' or a
newline, which no statsd key can hold).  Invalid UTF-8 is what node's
Buffer.toString makes of it (Python's "replace" decoding is the same).

Usage:  /usr/bin/python3 tests/diff/test_inspect_diff.py [--cases N] [--seed S]
        [--driver PATH]

The seed is new on each run (from os.urandom) unless --seed or $SY_SEED
gives one; it is printed first, so a failing run can be replayed with the
same cases.  The driver is $SY_INSPECT_DRIVER, else tests/test_inspect in
the build directory of $SY_BIN (so the ASan+UBSan lane, which runs
build-san/switchyard, drives build-san/tests/test_inspect), else
$SY_ROOT/build/tests/test_inspect.

The random cases are one check, "N random cases ... agree", which fails if
any case differs (the first five differences are shown): the total then
counts distinct checks, not cases.  The last line is
`test_inspect_diff: N passed, M failed`.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lib.results import Results  # noqa: E402

ROOT = os.environ.get("SY_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
NODE = "/usr/bin/node" if os.path.exists("/usr/bin/node") else "node"
NODE_SCRIPT = r"""
const util = require('util');
// numbers JSON cannot hold come as strings: "Infinity", "-Infinity", "NaN"
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'),
                         (k, v) => (typeof v === 'string' ? Number(v) : v));
process.stdout.write(JSON.stringify(cases.map((o) => util.inspect(o) + '\n')));
"""
OWN = ("statsd.bad_lines_seen", "statsd.packets_received", "statsd.metrics_received")
LAG = "statsd.timestamp_lag"
KEEP = ("packets_received", "metrics_received", "bad_lines_seen")  # statsd's substring test

# ---------------------------------------------------------------------------
# random traffic

ODD = ["'", '"', "`", "${", "$", "\\", "\t", "\r", "\x00", "\x01", "\x1b", "\x1f", "\x7f",
       "\x80", "\x85", "\x9f", "\xa0", "\xe9", "\u4e2d", "\U0001f600", "\ufffd", " ", ".",
       "-", "_", "|", "#", "@", "=", ";", "{", "}", "[", "]", ",", "/", "*"]
BAD_UTF8 = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
            b"\xf0\x9f\x98", b"\x80", b"\xc3"]


def rand_key(r):
    """A key as bytes (sent to switchyard); never ':' or a newline."""
    kind = r.random()
    if kind < 0.25:
        first = r.choice("abcxyzABC_")
        return (first + "".join(r.choice("abcdefgz_0189AZ") for _ in range(r.randint(0, 14)))).encode()
    if kind < 0.45:
        parts = ["".join(r.choice("abcdefghij") for _ in range(r.randint(1, 8)))
                 for _ in range(r.randint(2, 4))]
        return ".".join(parts).encode()
    if kind < 0.6:
        return r.choice(["0", "1", "2", "7", "10", "17", "99", "100", "4294967294", "4294967295",
                         "4294967296", "01", "00", "-1", "1.5", "1e3", str(r.randint(0, 10 ** 6)),
                         str(r.randint(0, 2 ** 32)), str(r.randint(0, 10 ** 12))]).encode()
    out = b""
    for _ in range(r.randint(1, 10)):
        x = r.random()
        if x < 0.45:
            out += r.choice("abcdefXYZ019_").encode()
        elif x < 0.9:
            out += r.choice(ODD).encode()
        else:
            out += r.choice(BAD_UTF8)
    return out


def ok_key(k):
    return k and b":" not in k and b"\n" not in k and b"|#" not in k


def rand_number(r, kind, style):
    """(text sent, value statsd gets).  style: None (any number), or a
    number of digits (a timer whose values have about the same width, as
    real ones do: it decides the column layout)."""
    x = r.random()
    if style is not None:
        v = float(r.randint(10 ** (style - 1) if style > 1 else 0, 10 ** style - 1))
        if style > 1 and r.random() < 0.3:
            v = v / 10 ** r.randint(1, 3)
    elif x < 0.3:
        v = float(r.randint(0, 10 ** r.randint(0, 7)))
    elif x < 0.55:
        v = round(r.random() * 10 ** r.randint(0, 6), r.randint(0, 4))
    elif x < 0.7:
        v = r.random() * 10 ** r.randint(-9, 25)
    elif x < 0.8:
        v = r.choice([0.0, -0.0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 0.1, 123456789012345678901.0,
                      2 ** 53, 2 ** 53 + 2, 1e-6, 999999999999999999999.0])
    else:
        v = float(r.randint(0, 9))
    if kind != "ms" and r.random() < 0.4:
        v = -v
    if kind == "ms":
        v = abs(v) if v != 0 else v  # keeps -0, which statsd and switchyard accept
    return repr(v), v


def truthy(v):
    return v != 0 and not math.isnan(v)


class Model:
    """stats.js's objects for one type, in JavaScript insertion order (a
    Python dict; array-index keys are ordered by node itself)."""

    def __init__(self, kind, delete_idle):
        self.kind, self.delete_idle = kind, delete_idle
        self.obj = {k: 0.0 for k in OWN} if kind == "c" else {}
        self.flushes = 0

    def send(self, key, text, v):
        if self.kind == "c":
            self.obj["statsd.metrics_received"] = self.obj["statsd.metrics_received"] + 1
        o = self.obj
        if self.kind == "c":
            if not truthy(o.get(key, 0.0)):  # `if (!counters[key]) counters[key] = 0`
                o[key] = 0.0
            o[key] += v
        elif self.kind == "g":
            if key in o and truthy(o[key]) and text[0] in "+-":
                o[key] += v
            else:
                o[key] = v
        else:
            o.setdefault(key, []).append(v)

    def flush(self):
        o = self.obj
        self.flushes += 1
        if self.flushes > 1 and self.kind == "g":
            # statsd's own gauge, set from the second flush on (to 0 here:
            # the driver's flushes are exactly one interval apart); no TTL,
            # so deleteGauges never deletes it
            o[LAG] = 0.0
        for k in list(o):
            if self.kind == "c":
                if self.delete_idle and not any(s in k for s in KEEP):
                    del o[k]
                else:
                    o[k] = 0.0
            elif self.kind == "ms":
                if self.delete_idle:
                    del o[k]
                else:
                    o[k] = []
            elif self.delete_idle and k != LAG:  # every other gauge was sent since its TTL was set to 1
                del o[k]

    def delete(self, key):
        self.obj.pop(key, None)


def make_case(r):
    kind = r.choice(["c", "g", "ms"])
    delete_idle = r.random() < 0.2
    nkeys = r.choice([0, 1, 2, 3, 4, 5, r.randint(1, 12), r.randint(1, 40), r.randint(40, 150)])
    keys, seen = [], set()
    while len(keys) < nkeys:
        k = rand_key(r)
        js = k.decode("utf-8", "replace")
        if ok_key(k) and js not in seen and js not in OWN and js != LAG:
            seen.add(js)
            keys.append(k)
    model = Model(kind, delete_idle)
    cmds = ["agg %d" % delete_idle]

    styles = {k: r.choice([None, None, 1, 1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 18, 22]) for k in keys}

    def send(k):
        text, v = rand_number(r, kind, styles[k] if kind == "ms" else None)
        cmds.append("line " + (k + b":" + text.encode() + b"|" + kind.encode()).hex())
        model.send(k.decode("utf-8", "replace"), text, v)

    def burst():
        x = r.random()
        if kind != "ms" or x < 0.3:
            return 1
        if x < 0.6:
            return r.randint(2, 8)
        if x < 0.85:
            return r.randint(7, 40)
        return r.randint(90, 150)

    for phase in range(r.randint(1, 3)):
        order = keys[:] if phase == 0 else r.sample(keys, r.randint(0, len(keys)))
        r.shuffle(order)
        for k in order:
            for _ in range(burst()):
                send(k)
        if r.random() < 0.4:
            cmds.append("flush")
            model.flush()
        if keys and r.random() < 0.3:
            for k in r.sample(keys, r.randint(1, min(3, len(keys)))):
                # the console takes a name as a word: no NUL, no ".*" folder
                if b"\x00" in k or k.endswith(b".*") or any(s.encode() in k for s in KEEP):
                    continue
                cmds.append("del %s %s" % (kind, k.hex()))
                model.delete(k.decode("utf-8", "replace"))
    cmds.append("dump " + kind)
    return cmds, model.obj


# ---------------------------------------------------------------------------


def run_driver(driver, cases):
    script = "".join(c + "\n" for cmds, _ in cases for c in cmds).encode()
    p = subprocess.run([driver, "--driver"], input=script, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=600)
    if p.returncode != 0:
        raise RuntimeError("driver exited %d: %s" % (p.returncode, p.stderr.decode()[-2000:]))
    out, pos, dumps = p.stdout, 0, []
    while pos < len(out):
        nl = out.index(b"\n", pos)
        n = int(out[pos:nl])
        dumps.append(out[nl + 1:nl + 1 + n].decode("utf-8"))
        pos = nl + 1 + n
    return dumps


def js_json(v):
    if isinstance(v, list):
        return [js_json(x) for x in v]
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else "Infinity" if v > 0 else "-Infinity"


def run_node(objs):
    objs = [{k: js_json(v) for k, v in o.items()} for o in objs]
    data = json.dumps(objs).encode()  # ensure_ascii: astral characters as surrogate pairs
    p = subprocess.run([NODE, "-e", NODE_SCRIPT], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=600)
    if p.returncode != 0:
        raise RuntimeError("node failed: %s" % p.stderr.decode()[-2000:])
    return json.loads(p.stdout)


def default_driver():
    """$SY_INSPECT_DRIVER, else the driver built beside $SY_BIN, else the
    plain build's."""
    if os.environ.get("SY_INSPECT_DRIVER"):
        return os.environ["SY_INSPECT_DRIVER"]
    if os.environ.get("SY_BIN"):
        beside = os.path.join(os.path.dirname(os.environ["SY_BIN"]), "tests", "test_inspect")
        if os.path.exists(beside):
            return beside
    return os.path.join(ROOT, "build", "tests", "test_inspect")


def default_seed():
    if os.environ.get("SY_SEED"):
        return int(os.environ["SY_SEED"])
    return int.from_bytes(os.urandom(4), "big")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--driver", default=None)
    args = ap.parse_args()
    seed = default_seed() if args.seed is None else args.seed
    driver = args.driver or default_driver()
    res = Results("test_inspect_diff")
    res.note("seed %d (replay: SY_SEED=%d, or --seed %d), %d cases, driver %s"
             % (seed, seed, seed, args.cases, driver))
    r = random.Random(seed)
    cases = [make_case(r) for _ in range(args.cases)]
    label = ("%d random cases (seed %d): every sy_agg_dump equals node's util.inspect"
             % (args.cases, seed))
    try:
        got = run_driver(driver, cases)
        want = run_node([obj for _, obj in cases])
    except (OSError, RuntimeError, ValueError) as e:
        res.check(label, False, "the driver (%s) and node ran: %s" % (driver, e))
        return res.finish()
    problems = []
    if len(got) != len(want):
        problems.append("%d dumps from the driver for %d cases" % (len(got), len(want)))
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    if bad:
        problems.append("%d of %d cases differ; the first %d:" % (len(bad), len(want), min(5, len(bad))))
    for i in bad[:5]:
        problems.append("case %d: the dump differs from util.inspect\n"
                        "  commands: %s\n  switchyard %r\n  node       %r"
                        % (i, cases[i][0][:40], got[i][:3000], want[i][:3000]))
    stats = {"on one line": sum(1 for w in want if w.count("\n") == 1 and w != "{}\n"),
             "with arrays in columns": sum(1 for w in want if any(
                 line.startswith("    ") and ", " in line for line in w.split("\n"))),
             "with ... more items": sum(1 for w in want if " more item" in w)}
    res.note("layouts seen in node's output: %s" % ", ".join("%s %d" % kv for kv in stats.items()))
    res.check(label, not problems, "\n".join(problems))
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
