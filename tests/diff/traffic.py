"""The StatsD traffic the differential test sends, batch by batch.

Each batch is a list of UDP datagrams and is aggregated into one flush.
Everything whose result depends on order (gauge set then delta, float sums
of one counter, mixed sample rates of one timer's count) stays inside one
datagram or is split across batches: a daemon that reads a socket from
several threads may reorder datagrams, never the lines of one datagram.

Only inputs both daemons must treat alike are here.  The deliberate
differences (types h/d and unknown types, "Infinity"/hex values, @0, empty
keys, trailing CR, an unterminated last TCP line) are exercised by the
switchyard-only check in test_statsd_diff.py instead.
"""


def _dgram(*lines, trailing_newline=False):
    text = "\n".join(lines) + ("\n" if trailing_newline else "")
    return text.encode("utf-8")


# Batch 1: every type, rates, multi-value lines, tags, sanitising, numbers,
# bad lines, histograms.
BATCH_1 = [
    # counters: float sum in one datagram (0.1 + 0.2 is not 0.3)
    _dgram("app.requests:1|c", "app.requests:2|c", "app.requests:0.1|c", "app.requests:0.2|c"),
    # counter sample rates: 1/0.1, 3/0.5, 3/0.3 (not an exact 10)
    _dgram("app.sampled:1|c|@0.1", "app.sampled:3|c|@0.5", "app.sampled:3|c|@0.3"),
    # several values on one line, also of different types under one key
    _dgram("multi.values:1|c:2|c:3.5|c", "mixed.key:5|c:7|ms", "capped.timer:5|ms:15|ms:25|ms"),
    # gauges, including deltas on new gauges and odd numbers
    _dgram("app.gauge:42|g", "app.zero:0|g", "app.float:0.1|g", "new.delta:+5|g",
           "new.delta.neg:-3|g", "num.huge:1e21|g", "num.negzero:-0|g", "num.expg:2.5e-3|g",
           "g.sampled:5|g|@0.5"),
    # a timer with many values across histogram bin edges (50 and 100 are
    # not "< bin"), above the last finite bin, and one sampled value
    _dgram("api.latency:3|ms", "api.latency:7|ms", "api.latency:12|ms", "api.latency:18|ms",
           "api.latency:25|ms", "api.latency:33|ms", "api.latency:41|ms", "api.latency:49.5|ms",
           "api.latency:50|ms", "api.latency:51|ms", "api.latency:75|ms", "api.latency:99.9|ms",
           "api.latency:100|ms", "api.latency:100.1|ms", "api.latency:150|ms",
           "api.latency:220|ms|@0.5", "api.latency:0.25|ms", "api.latency:1e3|ms"),
    # float bins (0.5 -> bin_0_5), first histogram match wins, substring match
    _dgram("small.timer:0.1|ms", "small.timer:0.5|ms", "small.timer:0.7|ms", "small.timer:2|ms",
           "small.api.latency:0.3|ms", "x.api.latency.y:75|ms"),
    # timers with 1 and 2 values (some percentiles then have no values)
    _dgram("one.timer:7|ms", "two.timer:3|ms", "two.timer:9|ms", "zero.timer:0|ms",
           "dot.timer:.5|ms"),
    # timer sample rates change count and count_ps, not the values
    _dgram("sampled.timer:100|ms|@0.1", "sampled.timer:200|ms|@0.5", "sampled.timer:300|ms",
           "sampled.timer:0.1|ms|@0.3"),
    # float timer values, so sums/means/std depend on summing sorted values
    _dgram("float.timer:0.1|ms", "float.timer:0.2|ms", "float.timer:0.3|ms",
           "float.timer:1.1|ms", "float.timer:2.675|ms"),
    # sets: members are strings ("1" and "1.0" differ), repeats count once,
    # an empty member counts as "0"
    _dgram("users:alice|s", "users:bob|s", "users:alice|s", "users:1|s", "users:1.0|s",
           "empty.member:|s", "set.sampled:x|s|@0.5"),
    # DogStatsD tags and graphite tags, with rates, on every type
    _dgram("tagged.req:1|c|#env:prod,role:web", "tagged.req:2|c|#env:prod,role:web",
           "tagged.req:1|c|#env:dev", "gtag.req;k=v;x=y:4|c", "both.req;a=b:1|c|#env:prod",
           "tagged.lat:12|ms|#env:prod", "tagged.lat:14|ms|#env:prod",
           "tagged.gauge:7|g|#env:prod,role:db", "tagged.set:a|s|#env:prod",
           "sampled.tagged:1|c|@0.5|#env:prod"),
    # tag rewriting: first ';' -> '_', first ':' -> '=', then sanitised
    _dgram("tq.req:1|c|#a;b:c:d", "tagged.url:1|c|#url:http://x", "tagged.sp:1|c|#env:my env",
           "tagged.flag:1|c|#canary"),
    # key sanitising: whitespace runs -> '_', '/' -> '-', others dropped
    _dgram("my key with  spaces:1|c", "path/to/metric:2|c", "odd!@$%^&*()chars:3|c",
           " lead.space:1|c", "tab\tkey:1|c", "caf\u00e9.latte:1|c", "comma,key:1|c"),
    b"bin\xffary.key:1|c",
    # number syntax both accept
    _dgram("num.exp:1e3|c", "num.dot:.5|c", "num.trail:5.|c", "num.plus:+5|c", "num.negc:-3|c",
           "num.big:12345678901234567890|c", "num.tiny:1e-7|c", "num.small:0.000001|c"),
    # "@0.5e1" reads as rate 0.5 in statsd ("[\d.]+" of a valid number)
    _dgram("weird.rate:1|c|@0.5e1", "rate.above.one:1|c|@2"),
    # bad lines: 14 of them, one only partly bad (two good values)
    _dgram("no.type:1", "bad.rate:1|c|@x", "neg.timer:-5|ms", "nan.counter:abc|c",
           "missing.value:|c", "missing.timer:|ms", "nokey", "bad.gauge:xyz|g",
           "empty.rate:1|c|", "neg.rate:1|c|@-0.5", "partly.bad:1|c:x|c:2|c",
           "bad.ratechars:1|c|@0.5abc", "bad.set.rate:a|s|@y", "nan.gauge:NaN|g"),
    # empty lines are skipped, not counted as metrics or bad lines; an empty
    # datagram and a lone newline still count as packets
    _dgram("blank.lines:1|c", "", "blank.lines:1|c", trailing_newline=True),
    b"",
    b"\n",
    # two keys that sanitise to one name (one counter, or two lines for the
    # same name when keyNameSanitize is off)
    _dgram("dup/key:1|c", "dup-key:2|c"),
    # 25 values: 58% of 25 is 14.499999999999998 computed as statsd does
    # (abs(pct) / 100 * count), 14.5 if computed as pct * count / 100
    _dgram(*("pct.timer:%d|ms" % i for i in range(1, 26))),
    # statsd never deletes a counter whose name contains "packets_received"
    _dgram("app.packets_received:1|c"),
]

# Batch 2: gauge deltas on existing gauges, a delta on a new gauge, more of
# the same keys (new timer values), some keys left idle.
BATCH_2 = [
    _dgram("app.gauge:+5|g", "app.gauge:-3|g", "app.zero:+4|g", "app.float:+0.2|g",
           "fresh.delta:+7|g", "num.negzero:+1|g", "new.delta.neg:-2|g"),
    _dgram("app.requests:5|c", "app.sampled:2|c|@0.25"),
    _dgram("api.latency:60|ms", "api.latency:61|ms", "api.latency:1|ms",
           "api.latency:99|ms|@0.1"),
    _dgram("users:carol|s", "users:alice|s"),
    _dgram("tagged.req:5|c|#env:prod,role:web", "tagged.gauge:+1|g|#env:prod,role:db"),
    _dgram("no.type:1", "bad.rate:1|c|@x"),
]

# A hot timer: 3,000 float values in random order with repeats, more than
# the flush's radix sort starts at (256), so sums, percentiles and std
# depend on that sort matching statsd's numeric one; and a whole-number
# hot timer with half its lines at @0.1.  At most 1,400 bytes a datagram,
# about 100 KB in all: within statsd's default UDP receive buffer (208 KiB).
def _hot_timer_dgrams():
    x, lines = 12345, []
    for i in range(3000):
        x = (x * 1103515245 + 12345) % (1 << 31)
        lines.append("hot.float.timer:%d.%03d|ms" % (x % 500, x % 1000))
        if i % 3 == 0:
            lines.append("hot.int.timer:%d|ms%s" % (x % 1000, "|@0.1" if i % 2 else ""))
    out, cur = [], []
    for line in lines:
        if cur and sum(len(c) + 1 for c in cur) + len(line) > 1400:
            out.append(_dgram(*cur))
            cur = []
        cur.append(line)
    out.append(_dgram(*cur))
    return out


def _pack(lines, size=1400):
    """Lines in datagrams of at most `size` bytes, in order."""
    out, cur, used = [], [], 0
    for line in lines:
        if cur and used + len(line) > size:
            out.append(_dgram(*cur))
            cur, used = [], 0
        cur.append(line)
        used += len(line) + 1
    if cur:
        out.append(_dgram(*cur))
    return out


# A hot key with 50,000 samples in one flush, as a busy service's latency
# timer collects them: float values with repeats, through the api.latency
# histogram, a third of the lines at @0.1 and a sixth at @0.5.  Its
# percentiles, sums and std come from the radix sort of 50,000 values, with
# every sample kept (timerSampleLimit is 100,000).  About 1.5 MB in
# 1,400-byte datagrams: more than statsd's default receive buffer holds,
# so the test sends its batches paced by the receiver's queue
# (netutil.send_udp_paced).
HOT_SAMPLES = 50000


def _hot50k_dgrams():
    x, lines = 54321, []
    for i in range(HOT_SAMPLES):
        x = (x * 1103515245 + 12345) % (1 << 31)
        rate = "|@0.1" if i % 3 == 0 else "|@0.5" if i % 6 == 1 else ""
        lines.append("hot50k.api.latency:%d.%02d|ms%s" % (x % 300, (x >> 9) % 100, rate))
    return _pack(lines)


# Batch 3: a few keys only; the others go idle; the hot timers.
BATCH_3 = [
    _dgram("app.gauge:1|g", "app.requests:1|c", "api.latency:5|ms", "users:dave|s"),
] + _hot_timer_dgrams() + _hot50k_dgrams()

# Batches 4 and 5: nothing at all.  Idle counters/timers/sets report 0
# (or vanish with deleteIdleStats), gauges keep or lose their value.
BATCHES = [BATCH_1, BATCH_2, BATCH_3, [], []]


def _tags_have_whitespace(line):
    tags = line.partition(b"|#")[2]
    return any(c in tags for c in b" \t\r\v\f")


def batches_for(options):
    """BATCHES as sent for a scenario.  With keyNameSanitize off statsd
    writes tag whitespace verbatim into the Graphite line, which the
    plaintext protocol cannot carry (switchyard drops such names), so those
    lines are left out there; every datagram is kept, so packet counts stay
    the same."""
    if options.get("keyNameSanitize", True):
        return BATCHES
    return [[b"\n".join(l for l in d.split(b"\n") if not _tags_have_whitespace(l))
             for d in batch] for batch in BATCHES]
