/*
 * test_inspect.c - the admin dumps (sy_agg_dump, core/admin/inspect.c) against
 * Node 20's util.inspect, which statsd's console prints.
 *
 * Each case is statsd traffic (lines, flushes, admin deletes) fed to an
 * sy_agg, then one dump.  The expected text was produced once with node:
 * the same operations done on a JavaScript object the way stats.js does
 * them (counters[key] += v, gauges[key] = v, timers[key].push(v), the
 * flush's clear_metrics, the console's `delete`), then util.inspect(obj)
 * + "\n"; the results are pasted here.  A few cases call
 * sy_inspect_object directly, for objects no traffic can make (keys with
 * ':' or a newline, negative timer values).
 *
 * Run with --driver, the binary is the switchyard side of
 * tests/diff/test_inspect_diff.py, which checks thousands of random
 * objects against node itself.  Commands on stdin, one a line:
 *   agg D          a new aggregator (keyNameSanitize off); D=1: deleteIdleStats
 *   line HEX       one statsd line (hex-encoded bytes)
 *   flush          a flush (snapshot taken and dropped)
 *   del T HEX      the console's delcounters/deltimers/delgauges (T: c, ms, g)
 *   dump T         prints "LEN\n" then the dump's LEN bytes
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "engine/agg.h"
#include "admin/inspect.h"

static sy_agg *new_agg(int delete_idle)
{
    sy_agg_opts o = { .sanitize = 0, .flush_interval_ms = 10000, .prefix_stats = "statsd",
                      .gauges_max_ttl = 1, .delete_counters = delete_idle,
                      .delete_timers = delete_idle, .delete_gauges = delete_idle,
                      .delete_sets = delete_idle };
    return sy_agg_new(&o);
}

static int type_code(const char *t)
{
    if (strcmp(t, "c") == 0)
        return SY_T_COUNTER;
    if (strcmp(t, "ms") == 0)
        return SY_T_TIMER;
    if (strcmp(t, "g") == 0)
        return SY_T_GAUGE;
    return -1;
}

static void flush(sy_agg *a)
{
    static int64_t ts = 1700000000;
    sy_snapshot_free(sy_agg_snapshot(a, ts += 10));
}

static void delete_key(sy_agg *a, int type, char *name)
{
    sy_buf out = { 0 };
    sy_agg_delete(a, type, &name, 1, &out);
    sy_buf_free(&out);
}

/* ------------------------------------------------------------------ */
/* The table                                                          */
/* ------------------------------------------------------------------ */

/* ops: statsd lines, one a line, where "!flush" is a flush, "!del NAME"
 * the console's delete of NAME (of the dumped type), and "!series NAME N
 * STEP MOD" N timer lines NAME:V|ms with V = i * STEP % MOD, i = 0 .. N-1. */
typedef struct dump_case {
    const char *name;
    int delete_idle;
    const char *type;
    const char *ops;
    const char *want;
} dump_case;

static const dump_case cases[] = {
    { .name = "no gauges: {}", .type = "g",
      .ops = "",
      .want = "{}\n" },
    { .name = "no timers: {}", .type = "ms",
      .ops = "a:1|c",
      .want = "{}\n" },
    { .name = "statsd's own counters exist from the start", .type = "c",
      .ops = "",
      .want = "{\n"
              "  'statsd.bad_lines_seen': 0,\n"
              "  'statsd.packets_received': 0,\n"
              "  'statsd.metrics_received': 0\n"
              "}\n" },
    { .name = "a small object on one line; -0 from a delta on a missing gauge", .type = "g",
      .ops = "g.x:7|g\ng.x:+3|g\ng.neg:0|g\ng.neg:-5|g\ng.half:0.5|g\ng.nz:-0|g",
      .want = "{ 'g.x': 10, 'g.neg': -5, 'g.half': 0.5, 'g.nz': -0 }\n" },
    { .name = "one line: entries that fill 80 columns by isBelowBreakLength's count", .type = "g",
      .ops = "aaaaaaaaa:1|g\nbbbbbbbbb:2|g\nccccccccc:3|g\nddddddddd:4|g\neeeeeeee:5|g",
      .want = "{ aaaaaaaaa: 1, bbbbbbbbb: 2, ccccccccc: 3, ddddddddd: 4, eeeeeeee: 5 }\n" },
    { .name = "one column more: one key a line", .type = "g",
      .ops = "aaaaaaaaa:1|g\nbbbbbbbbb:2|g\nccccccccc:3|g\nddddddddd:4|g\neeeeeeee:50|g",
      .want = "{\n"
              "  aaaaaaaaa: 1,\n"
              "  bbbbbbbbb: 2,\n"
              "  ccccccccc: 3,\n"
              "  ddddddddd: 4,\n"
              "  eeeeeeee: 50\n"
              "}\n" },
    { .name = "lengths are JavaScript's: U+1F600 counts 2 (here one column too many)",
      .type = "g",
      .ops = "aaaaaaaaa:1|g\nbbbbbbbbb:2|g\nccccccccc:3|g\nddddddddd:4|g\n\xf0\x9f\x98\x80vwxyz:5|g",
      .want = "{\n"
              "  aaaaaaaaa: 1,\n"
              "  bbbbbbbbb: 2,\n"
              "  ccccccccc: 3,\n"
              "  ddddddddd: 4,\n"
              "  '\xf0\x9f\x98\x80vwxyz': 5\n"
              "}\n" },
    { .name = "numbers as JavaScript prints them", .type = "c",
      .ops = "big.c:123456789012345678901|c\nfrac.c:0.1|c\nfrac.c:0.2|c\nsci:1e21|c\n"
             "tiny:1e-7|c\nneg:-3|c\nnz:-0|c\nhalf:1|c|@2\nnan:1e308|c|@0.5\nnan:-1e308|c|@0.5",
      .want = "{\n"
              "  'statsd.bad_lines_seen': 0,\n"
              "  'statsd.packets_received': 0,\n"
              "  'statsd.metrics_received': 10,\n"
              "  'big.c': 123456789012345680000,\n"
              "  'frac.c': 0.30000000000000004,\n"
              "  sci: 1e+21,\n"
              "  tiny: 1e-7,\n"
              "  neg: -3,\n"
              "  nz: 0,\n"
              "  half: 0.5,\n"
              "  nan: NaN\n"
              "}\n" },
    { .name = "Infinity; a delta on a gauge that is 0 sets it", .type = "g",
      .ops = "g.inf:1e308|g\ng.inf:+1e308|g\ng.ninf:-1e308|g\ng.ninf:-1e308|g\n"
             "g.zero:0|g\ng.zero:+0|g\ng.zero:-2|g",
      .want = "{ 'g.inf': Infinity, 'g.ninf': -Infinity, 'g.zero': -2 }\n" },
    { .name = "timers: short arrays on one line, more than 6 numbers in columns", .type = "ms",
      .ops = "t.one:10|ms\nt.one:20|ms\nt.frac:1.5|ms\n"
             "t.many:1|ms\nt.many:2|ms\nt.many:3|ms\nt.many:4|ms\nt.many:5|ms\nt.many:6|ms\n"
             "t.many:7|ms\nt.many:8|ms\n"
             "t.six:123456789|ms\nt.six:123456789|ms\nt.six:123456789|ms\nt.six:123456789|ms\n"
             "t.six:123456789|ms\nt.six:1234567890|ms\n"
             "t.six2:123456789|ms\nt.six2:123456789|ms\nt.six2:123456789|ms\nt.six2:123456789|ms\n"
             "t.six2:1234567890|ms\nt.six2:1234567890|ms\n"
             "t.wide:1|ms\nt.wide:2|ms\nt.wide:3|ms\nt.wide:4|ms\nt.wide:5|ms\nt.wide:6|ms\n"
             "t.wide:123456789012345678901|ms",
      .want = "{\n"
              "  't.one': [ 10, 20 ],\n"
              "  't.frac': [ 1.5 ],\n"
              "  't.many': [\n"
              "    1, 2, 3, 4,\n"
              "    5, 6, 7, 8\n"
              "  ],\n"
              "  't.six': [ 123456789, 123456789, 123456789, 123456789, 123456789, 1234567890 ],\n"
              "  't.six2': [\n"
              "    123456789,\n"
              "    123456789,\n"
              "    123456789,\n"
              "    123456789,\n"
              "    1234567890,\n"
              "    1234567890\n"
              "  ],\n"
              "  't.wide': [ 1, 2, 3, 4, 5, 6, 123456789012345680000 ]\n"
              "}\n" },
    { .name = "timers: past 100 numbers, ... N more items", .type = "ms",
      .ops = "!series t.101 101 7 1000\n!series t.120 120 37 1000\n!series t.wide 101 1 7",
      .want = "{\n"
              "  't.101': [\n"
              "      0,   7,  14,  21,  28,  35,  42,  49,  56,  63,  70,  77,\n"
              "     84,  91,  98, 105, 112, 119, 126, 133, 140, 147, 154, 161,\n"
              "    168, 175, 182, 189, 196, 203, 210, 217, 224, 231, 238, 245,\n"
              "    252, 259, 266, 273, 280, 287, 294, 301, 308, 315, 322, 329,\n"
              "    336, 343, 350, 357, 364, 371, 378, 385, 392, 399, 406, 413,\n"
              "    420, 427, 434, 441, 448, 455, 462, 469, 476, 483, 490, 497,\n"
              "    504, 511, 518, 525, 532, 539, 546, 553, 560, 567, 574, 581,\n"
              "    588, 595, 602, 609, 616, 623, 630, 637, 644, 651, 658, 665,\n"
              "    672, 679, 686, 693,\n"
              "    ... 1 more item\n"
              "  ],\n"
              "  't.120': [\n"
              "      0,  37,  74, 111, 148, 185, 222, 259, 296, 333, 370, 407,\n"
              "    444, 481, 518, 555, 592, 629, 666, 703, 740, 777, 814, 851,\n"
              "    888, 925, 962, 999,  36,  73, 110, 147, 184, 221, 258, 295,\n"
              "    332, 369, 406, 443, 480, 517, 554, 591, 628, 665, 702, 739,\n"
              "    776, 813, 850, 887, 924, 961, 998,  35,  72, 109, 146, 183,\n"
              "    220, 257, 294, 331, 368, 405, 442, 479, 516, 553, 590, 627,\n"
              "    664, 701, 738, 775, 812, 849, 886, 923, 960, 997,  34,  71,\n"
              "    108, 145, 182, 219, 256, 293, 330, 367, 404, 441, 478, 515,\n"
              "    552, 589, 626, 663,\n"
              "    ... 20 more items\n"
              "  ],\n"
              "  't.wide': [\n"
              "    0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4,\n"
              "    5, 6, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2,\n"
              "    3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0,\n"
              "    1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5,\n"
              "    6, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3,\n"
              "    4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0, 1,\n"
              "    2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6,\n"
              "    0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4,\n"
              "    5, 6, 0, 1,\n"
              "    ... 1 more item\n"
              "  ]\n"
              "}\n" },
    { .name = "keys: bare identifiers, quoted others (also $), quotes chosen as node does",
      .type = "g",
      .ops = "ok_1:1|g\n_x:2|g\nA9:3|g\na$b:4|g\n$:5|g\n9lives:6|g\nit's:7|g\n"
             "say \"hi\", it's:8|g\nq'\"`:9|g\nq'\"${x}:10|g\nback\\slash:11|g\n__proto__x:13|g",
      .want = "{\n"
              "  ok_1: 1,\n"
              "  _x: 2,\n"
              "  A9: 3,\n"
              "  'a$b': 4,\n"
              "  '$': 5,\n"
              "  '9lives': 6,\n"
              "  \"it's\": 7,\n"
              "  `say \"hi\", it's`: 8,\n"
              "  'q\\'\"`': 9,\n"
              "  'q\\'\"${x}': 10,\n"
              "  'back\\\\slash': 11,\n"
              "  __proto__x: 13\n"
              "}\n" },
    { .name = "keys: control characters, DEL and C1 escaped; UTF-8 kept; bad UTF-8 is U+FFFD",
      .type = "g",
      .ops = "tab\there:1|g\ncr\rx:2|g\nc\x01\x1f\x7f\xc2\x85\xc2\xa0:3|g\n\xc3\xa9t\xc3\xa9:4|g\n"
             "\xf0\x9f\x98\x80:5|g\nbad\xff\xfe\xe2\x82:6|g\nbs\b\f\v:7|g",
      .want = "{\n"
              "  'tab\\there': 1,\n"
              "  'cr\\rx': 2,\n"
              "  'c\\x01\\x1F\\x7F\\x85\xc2\xa0': 3,\n"
              "  '\xc3\xa9t\xc3\xa9': 4,\n"
              "  '\xf0\x9f\x98\x80': 5,\n"
              "  'bad\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd': 6,\n"
              "  'bs\\b\\f\\x0B': 7\n"
              "}\n" },
    { .name = "array-index keys first, ascending; then insertion order", .type = "g",
      .ops = "b:1|g\n17:2|g\na:3|g\n4294967294:4|g\n4294967295:5|g\n01:6|g\n0:7|g\n-1:8|g\n2:9|g",
      .want = "{\n"
              "  '0': 7,\n"
              "  '2': 9,\n"
              "  '17': 2,\n"
              "  '4294967294': 4,\n"
              "  b: 1,\n"
              "  a: 3,\n"
              "  '4294967295': 5,\n"
              "  '01': 6,\n"
              "  '-1': 8\n"
              "}\n" },
    { .name = "a flush keeps keys in place (deleteIdleStats off), timers become []",
      .type = "ms",
      .ops = "t.a:1|ms\nt.b:2|ms\nt.c:3|ms\n!flush\nt.c:4|ms\nt.a:5|ms\nt.new:6|ms",
      .want = "{ 't.a': [ 5 ], 't.b': [], 't.c': [ 4 ], 't.new': [ 6 ] }\n" },
    { .name = "counters after a flush: reset to 0, same order", .type = "c",
      .ops = "c.a:1|c\nc.b:2|c\n!flush\nc.b:5|c\nc.z:1|c",
      .want = "{\n"
              "  'statsd.bad_lines_seen': 0,\n"
              "  'statsd.packets_received': 0,\n"
              "  'statsd.metrics_received': 2,\n"
              "  'c.a': 0,\n"
              "  'c.b': 5,\n"
              "  'c.z': 1\n"
              "}\n" },
    { .name = "a deleted key comes back at the end", .type = "c",
      .ops = "c.a:1|c\nc.b:2|c\nc.c:3|c\n!del c.a\n!del c.nope\nc.a:4|c\nc.b:1|c",
      .want = "{\n"
              "  'statsd.bad_lines_seen': 0,\n"
              "  'statsd.packets_received': 0,\n"
              "  'statsd.metrics_received': 5,\n"
              "  'c.b': 3,\n"
              "  'c.c': 3,\n"
              "  'c.a': 4\n"
              "}\n" },
    { .name = "a deleted timer comes back at the end, with only its new values", .type = "ms",
      .ops = "t.a:1|ms\nt.b:2|ms\n!del t.a\nt.a:3|ms",
      .want = "{ 't.b': [ 2 ], 't.a': [ 3 ] }\n" },
    { .name = "deleteIdleStats: a flush deletes; keys seen again come back in their new order",
      .delete_idle = 1, .type = "g",
      .ops = "g.a:1|g\ng.b:2|g\ng.c:3|g\n!flush\ng.c:4|g\ng.a:-5|g",
      .want = "{ 'g.c': 4, 'g.a': -5 }\n" },
    { .name = "deleteIdleStats: statsd's own counters stay first", .delete_idle = 1, .type = "c",
      .ops = "c.a:1|c\nc.b:2|c\n!flush\nc.b:5|c\nc.a:1|c",
      .want = "{\n"
              "  'statsd.bad_lines_seen': 0,\n"
              "  'statsd.packets_received': 0,\n"
              "  'statsd.metrics_received': 2,\n"
              "  'c.b': 5,\n"
              "  'c.a': 1\n"
              "}\n" },
};

static void series(sy_agg *a, const char *spec)
{
    char name[256], line[300];
    unsigned n, step, mod;
    assert_int_equal(sscanf(spec, "%255s %u %u %u", name, &n, &step, &mod), 4);
    for (unsigned i = 0; i < n; i++) {
        int len = snprintf(line, sizeof line, "%s:%u|ms", name, i * step % mod);
        sy_agg_line(a, line, (size_t)len, NULL);
    }
}

/* Feeds a case's operations; returns the dump. */
static char *run_case(const dump_case *c)
{
    sy_agg *a = new_agg(c->delete_idle);
    assert_non_null(a);
    int type = type_code(c->type);
    const char *p = c->ops;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char op[512];
        assert_true(len < sizeof op);
        memcpy(op, p, len);
        op[len] = '\0';
        if (strcmp(op, "!flush") == 0)
            flush(a);
        else if (strncmp(op, "!del ", 5) == 0)
            delete_key(a, type, op + 5);
        else if (strncmp(op, "!series ", 8) == 0)
            series(a, op + 8);
        else
            sy_agg_line(a, op, len, NULL);
        p += len + (nl != NULL);
    }
    sy_buf out = { 0 };
    sy_agg_dump(a, type, &out);
    sy_buf_printf(&out, "%s", ""); /* a NUL after the text */
    sy_agg_free(a);
    return out.p;
}

static void test_table(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = run_case(&cases[i]);
        if (!got || strcmp(got, cases[i].want) != 0) {
            print_error("case \"%s\":\n--- got\n%s--- want\n%s---\n", cases[i].name,
                        got ? got : "(null)", cases[i].want);
            bad++;
        }
        free(got);
    }
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------ */
/* Objects that traffic cannot make                                   */
/* ------------------------------------------------------------------ */

static void array_prop(void *ctx, size_t i, sy_inspect_prop *p)
{
    *p = ((const sy_inspect_prop *)ctx)[i];
}

static char *inspect(const sy_inspect_prop *props, size_t n)
{
    sy_buf out = { 0 };
    assert_int_equal(sy_inspect_object(&out, n, array_prop, (void *)props), 0);
    sy_buf_printf(&out, "%s", "");
    return out.p;
}

static void check_inspect(const sy_inspect_prop *props, size_t n, const char *want)
{
    char *got = inspect(props, n);
    if (strcmp(got, want) != 0)
        print_error("--- got\n%s\n--- want\n%s\n---\n", got, want);
    assert_string_equal(got, want);
    free(got);
}

#define KEY(s) .key = s, .key_len = sizeof s - 1

/* Expected: node -e 'console.log(util.inspect(JSON.parse(...)))' on the
 * same object. */
static void test_odd_keys(void **state)
{
    (void)state;
    sy_inspect_prop p[] = {
        { KEY("a:b"), .value = 1 },
        { KEY("line\nbreak"), .value = 2 },
        { KEY(""), .value = 3 },
        { KEY("nul\0x"), .value = 4 },
        { KEY("__proto__"), .value = 5 }, /* an own property of that name */
    };
    check_inspect(p, 5, "{ 'a:b': 1, 'line\\nbreak': 2, '': 3, 'nul\\x00x': 4, ['__proto__']: 5 }");
}

static void test_negative_arrays(void **state)
{
    (void)state;
    static const double v1[] = { -1, -22, -333, 4, -5, 6, -7, 8, -9, 10, -11, 12, -13, 14 };
    static const double v2[] = { -0.0, 0, -1.5, 2.25, -1e21, 1e-7, 0.1 };
    static const double v3[] = { NAN, INFINITY, -INFINITY };
    sy_inspect_prop p[] = {
        { KEY("neg"), .is_array = 1, .v = v1, .n = 14 },
        { KEY("mixed"), .is_array = 1, .v = v2, .n = 7 },
        { KEY("nan"), .is_array = 1, .v = v3, .n = 3 },
    };
    check_inspect(p, 3,
                  "{\n"
                  "  neg: [\n"
                  "     -1, -22, -333,  4, -5,\n"
                  "      6,  -7,    8, -9, 10,\n"
                  "    -11,  12,  -13, 14\n"
                  "  ],\n"
                  "  mixed: [\n"
                  "        -0,    0,\n"
                  "      -1.5, 2.25,\n"
                  "    -1e+21, 1e-7,\n"
                  "       0.1\n"
                  "  ],\n"
                  "  nan: [ NaN, Infinity, -Infinity ]\n"
                  "}");
}

/* ------------------------------------------------------------------ */
/* --driver                                                           */
/* ------------------------------------------------------------------ */

static size_t unhex(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    while (s[0] && s[1] && n < cap) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1)
            break;
        out[n++] = (char)v;
        s += 2;
    }
    return n;
}

static int driver(void)
{
    char line[16384], bytes[8192];
    sy_agg *a = NULL;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *arg = strchr(line, ' ');
        if (arg)
            *arg++ = '\0';
        if (strcmp(line, "agg") == 0) {
            sy_agg_free(a);
            a = new_agg(arg && atoi(arg));
        } else if (!a) {
            fprintf(stderr, "driver: `agg` first\n");
            return 1;
        } else if (strcmp(line, "line") == 0 && arg) {
            size_t n = unhex(arg, bytes, sizeof bytes);
            sy_agg_line(a, bytes, n, NULL);
        } else if (strcmp(line, "flush") == 0) {
            flush(a);
        } else if (strcmp(line, "del") == 0 && arg && strchr(arg, ' ')) {
            char *hex = strchr(arg, ' ');
            *hex++ = '\0';
            size_t n = unhex(hex, bytes, sizeof bytes - 1);
            bytes[n] = '\0';
            delete_key(a, type_code(arg), bytes);
        } else if (strcmp(line, "dump") == 0 && arg) {
            sy_buf out = { 0 };
            sy_agg_dump(a, type_code(arg), &out);
            printf("%zu\n", out.len);
            fwrite(out.p, 1, out.len, stdout);
            fflush(stdout);
            sy_buf_free(&out);
        } else {
            fprintf(stderr, "driver: unknown command %s\n", line);
            return 1;
        }
    }
    sy_agg_free(a);
    return 0;
}

/* sy_inspect_escape, which `keys`, `deleted:` and the console sink share
 * with the dumps: no raw CR, TAB, ESC or C1 gets through, backslash is
 * doubled, and a small buffer never splits a character. */
static void test_escape(void **state)
{
    (void)state;
    static const char key[] = "a\rEND\t\x1b[2J\\b\xc2\x85\xff\xe2\x82\xac'z";
    static const char want[] = "a\\rEND\\t\\x1B[2J\\\\b\\x85\xef\xbf\xbd\xe2\x82\xac'z";
    sy_buf b = { 0 };
    size_t units = sy_inspect_escape_buf(&b, key, sizeof key - 1, 0);
    assert_int_equal(b.len, sizeof want - 1);
    assert_memory_equal(b.p, want, b.len);
    assert_int_equal(units, 26);
    sy_buf_free(&b);

    /* four bytes at a time: the same text, one whole character per call */
    char out[64], tmp[SY_INSPECT_ESCAPE_MAX_CHAR];
    size_t n = 0, off = 0;
    while (off < sizeof key - 1) {
        size_t used, w = sy_inspect_escape(tmp, sizeof tmp, key + off, sizeof key - 1 - off, 0,
                                           &used, NULL);
        assert_true(used > 0 && w <= sizeof tmp);
        memcpy(out + n, tmp, w);
        n += w;
        off += used;
    }
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(out, want, n);

    /* listings: each malformed byte as \xHH, a real U+FFFD as it is */
    sy_buf r = { 0 };
    sy_inspect_escape_buf(&r, "a\xff\xe2\x82" "b\xef\xbf\xbd\r", 9, SY_ESC_BYTES);
    assert_int_equal(r.len, 19);
    assert_memory_equal(r.p, "a\\xFF\\xE2\\x82" "b\xef\xbf\xbd\\r", 19);
    sy_buf_free(&r);

    /* inside single quotes, the quote is escaped too */
    sy_buf q = { 0 };
    sy_inspect_escape_buf(&q, "it's", 4, SY_ESC_QUOTE);
    assert_int_equal(q.len, 5);
    assert_memory_equal(q.p, "it\\'s", 5);
    sy_buf_free(&q);
}

/* ------------------------------------------------------------------ */
/* Sliced walks (the console's questions, answered between batches)   */
/* ------------------------------------------------------------------ */

typedef struct kv {
    char key[32];
    double value;
} kv;

static void kv_prop(void *ctx, size_t i, sy_inspect_prop *p)
{
    const kv *k = &((const kv *)ctx)[i];
    *p = (sy_inspect_prop){ .key = k->key, .key_len = strlen(k->key), .value = k->value };
}

/* Runs a walk a few entries at a time; between two steps, between(). */
static char *walk_sliced(sy_agg *a, int what, int type, char **names, size_t n, size_t budget,
                         void (*between)(sy_agg *, int), int *steps)
{
    sy_buf out = { 0 };
    sy_agg_walk *w = sy_agg_walk_new(a, what, type, names, n);
    assert_non_null(w);
    int k = 0;
    while (!sy_agg_walk_step(a, w, &out, budget))
        if (between)
            between(a, k++);
    sy_agg_walk_free(a, w);
    if (steps)
        *steps = k;
    sy_buf_add(&out, "", 0);
    return out.p;
}

static void counter(sy_agg *a, const char *name, int v)
{
    char line[128];
    int len = snprintf(line, sizeof line, "%s:%d|c", name, v);
    sy_agg_line(a, line, (size_t)len, NULL);
}

/* Without changes meanwhile, a walk in slices of any size prints what
 * util.inspect prints of the object (array indices first). */
static void test_sliced_same_text(void **state)
{
    (void)state;
    enum { N = 300 };
    static kv want[N + 3];
    sy_agg *a = new_agg(0);
    size_t n = 0;
    /* statsd's own three come first, with 0 */
    static const char *const own[] = { "statsd.bad_lines_seen", "statsd.packets_received",
                                       "statsd.metrics_received" };
    for (int i = 0; i < 3; i++) {
        snprintf(want[n].key, sizeof want[n].key, "%s", own[i]);
        want[n++].value = 0;
    }
    for (int i = 0; i < N; i++) {
        if (i % 5 == 2) /* array indices, in no order */
            snprintf(want[n].key, sizeof want[n].key, "%d", i * 7919 % 10007);
        else
            snprintf(want[n].key, sizeof want[n].key, "k_%d", i);
        want[n].value = i;
        counter(a, want[n].key, i);
        n++;
    }
    want[2].value = N; /* metrics_received (lines, not packets, were fed) */
    sy_buf ref = { 0 };
    assert_int_equal(sy_inspect_object(&ref, n, kv_prop, want), 0);
    sy_buf_add(&ref, "\n", 1);
    static const size_t budgets[] = { 1, 2, 7, 64, SIZE_MAX };
    for (size_t b = 0; b < sizeof budgets / sizeof *budgets; b++) {
        char *got = walk_sliced(a, SY_WALK_DUMP, SY_T_COUNTER, NULL, 0, budgets[b], NULL, NULL);
        assert_string_equal(got, ref.p);
        free(got);
    }
    sy_buf_free(&ref);
    sy_agg_free(a);
}

enum { OLD = 3000 };
static char gone[OLD]; /* old keys deleted during the walk */

static void delete_counter(sy_agg *a, int i)
{
    char name[32], *p = name;
    snprintf(name, sizeof name, "k_%d", i);
    sy_buf out = { 0 };
    sy_agg_delete(a, SY_T_COUNTER, &p, 1, &out);
    sy_buf_free(&out);
    gone[i] = 1;
}

/* Between two steps of 3 entries: new keys (the table grows several
 * times), and deletes of old keys: the one the walk visits next, the one
 * it would end with, and one elsewhere. */
static void churn(sy_agg *a, int k)
{
    char name[32];
    for (int j = 0; j < 10; j++) {
        snprintf(name, sizeof name, "new_%d", k * 10 + j);
        counter(a, name, 1);
        snprintf(name, sizeof name, "d_new_%d", k * 10 + j);
        counter(a, name, 1);
    }
    /* 3 of statsd's own, then k_0, k_1, ...: after step k the cursor is
     * at k_(3k); every 5th step, delete it and the last old key */
    if (k % 5 == 0 && 3 * k < OLD - 1 - k / 5) {
        delete_counter(a, 3 * k);
        delete_counter(a, OLD - 1 - k / 5);
    }
    if ((k * 91) % OLD % 7 == 0)
        delete_counter(a, (k * 91) % OLD);
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = text; (p = strstr(p, needle)); p += len)
        n++;
    return n;
}

/* Keys present for the whole walk are listed once each with their value;
 * keys created meanwhile are not; none twice, while the table grows. */
static void test_sliced_under_churn(void **state)
{
    (void)state;
    sy_agg *a = new_agg(0);
    char name[64];
    for (int i = 0; i < OLD; i++) {
        snprintf(name, sizeof name, "k_%d", i);
        counter(a, name, i + 1);
    }
    int steps;
    char *got = walk_sliced(a, SY_WALK_DUMP, SY_T_COUNTER, NULL, 0, 3, churn, &steps);
    assert_true(steps > 500); /* many slices, with ~20 keys added between each */
    int missing = 0, twice = 0;
    for (int i = 0; i < OLD; i++) {
        snprintf(name, sizeof name, "\n  k_%d: %d", i, i + 1);
        int c = count_of(got, name);
        if (!gone[i] && c != 1)
            missing++;
        if (c > 1)
            twice++;
    }
    assert_int_equal(missing, 0);
    assert_int_equal(twice, 0);
    assert_int_equal(count_of(got, "new_"), 0);
    free(got);

    /* A folder delete in slices deletes exactly the folder's keys that
     * were there when it began, while more are created in it. */
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "d.%d", i);
        counter(a, name, 1);
    }
    char *folder = "d.*";
    got = walk_sliced(a, SY_WALK_DELETE, SY_T_COUNTER, &folder, 1, 5, churn, &steps);
    assert_int_equal(count_of(got, "deleted: d."), 2000);
    assert_int_equal(count_of(got, "deleted: "), 2000);
    assert_true(strstr(got, "END\n\n") != NULL);
    free(got);
    got = walk_sliced(a, SY_WALK_KEYS, 0, &folder, 0, 5, NULL, NULL);
    char *prefix = "d.";
    free(got);
    got = walk_sliced(a, SY_WALK_KEYS, 0, &prefix, 1, 4, NULL, NULL);
    assert_int_equal(count_of(got, "counters d."), 0);
    free(got);
    /* the keys created during the delete are still there */
    prefix = "d_new_";
    got = walk_sliced(a, SY_WALK_KEYS, 0, &prefix, 1, 4, NULL, NULL);
    assert_true(count_of(got, "counters d_new_") > 0);
    free(got);
    sy_agg_free(a);
}

/* Flushes during a walk delete idle gauges (deleteGauges, gaugesMaxTTL 2)
 * while live ones are updated. */
static void flush_between(sy_agg *a, int k)
{
    if (k % 20 == 0)
        flush(a);
    char line[64];
    for (int i = 0; i < 100; i++) {
        int len = snprintf(line, sizeof line, "live_%d:%d|g", i, k);
        sy_agg_line(a, line, (size_t)len, NULL);
    }
}

static void test_sliced_with_flushes(void **state)
{
    (void)state;
    sy_agg_opts o = { .flush_interval_ms = 10000, .prefix_stats = "statsd", .gauges_max_ttl = 2,
                      .delete_gauges = 1 };
    sy_agg *a = sy_agg_new(&o);
    char line[64];
    for (int i = 0; i < 100; i++) {
        int len = snprintf(line, sizeof line, "live_%d:1|g", i);
        sy_agg_line(a, line, (size_t)len, NULL);
    }
    for (int i = 0; i < 3000; i++) {
        int len = snprintf(line, sizeof line, "idle_%d:1|g", i);
        sy_agg_line(a, line, (size_t)len, NULL);
    }
    size_t before = sy_agg_key_count(a);
    int steps;
    char *got = walk_sliced(a, SY_WALK_DUMP, SY_T_GAUGE, NULL, 0, 2, flush_between, &steps);
    assert_true(sy_agg_key_count(a) < before - 2000); /* the idle ones went meanwhile */
    /* every live key, once (its value changes as the walk goes) */
    for (int i = 0; i < 100; i++) {
        snprintf(line, sizeof line, "\n  live_%d: ", i);
        assert_int_equal(count_of(got, line), 1);
    }
    assert_true(count_of(got, "idle_") < 3000);
    assert_true(strncmp(got, "{\n  ", 4) == 0);
    assert_true(strcmp(got + strlen(got) - 3, "\n}\n") == 0);
    free(got);
    sy_agg_free(a);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--driver") == 0)
        return driver();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_odd_keys),
        cmocka_unit_test(test_negative_arrays),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_sliced_same_text),
        cmocka_unit_test(test_sliced_under_churn),
        cmocka_unit_test(test_sliced_with_flushes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
