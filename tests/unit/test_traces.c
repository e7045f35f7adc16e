/*
 * test_traces.c - appstats-style traces: the sink's model (slot keys, JSON
 * escaping, tag parsing, grouping, bounds, records), the reader's record
 * decoder (core/tools/traces/traces.c), and the memcache_traces plugin itself, loaded
 * through the plugin host and talking to a fake memcached in this process
 * (so the order of commands and replies can be controlled exactly).
 *
 * plugins/lib/trace_model.c is compiled into this test; the plugin is
 * loaded from SY_PLUGIN_DIR (default build/plugins).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/numfmt.h"
#include "output/sinkhost.h"
#include "tools/traces/traces.h"

#include "lib/trace_model.c" /* plugins/lib */

#define T0 1700000000000ULL /* a wall clock for the model tests */

static tm_limits lim(void)
{
    return (tm_limits){ .max_spans = 1000, .max_open = 100, .max_bytes = 1 << 20,
                        .timeout_ms = 10000, .root_wait_ms = 0 };
}

static int add(tm_table *t, const char *name, double dur, const char *tags, uint64_t wall,
               uint64_t mono)
{
    return tm_table_add(t, name, strlen(name), tags, strlen(tags), dur, wall, mono);
}

/* The trace's full and part records, decoded by the reader. */
static void records(const tm_trace *tr, sy_trace_rec *full, sy_trace_rec *part)
{
    tm_buf b = { 0 };
    char err[256];
    uint32_t written;
    assert_int_equal(tm_trace_json_full(tr, &b, 1000000, sy_fmt_double, &written), 0);
    if (sy_trace_rec_parse(b.p, b.len, full, err, sizeof(err)) != 0)
        fail_msg("full record does not decode: %s\n%.*s", err, (int)b.len, b.p);
    tm_buf_reset(&b);
    assert_int_equal(tm_trace_json_part(tr, &b, 1000000, sy_fmt_double), 0);
    if (sy_trace_rec_parse(b.p, b.len, part, err, sizeof(err)) != 0)
        fail_msg("part record does not decode: %s\n%.*s", err, (int)b.len, b.p);
    tm_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* slots and keys                                                       */
/* ------------------------------------------------------------------ */

static void test_slot(void **st)
{
    /* 1700000000123 / 100 = 17000000001; % 1000 = 1; * 100 = 100 */
    assert_int_equal(tm_slot(1700000000123ULL), 100);
    assert_int_equal(tm_slot(0), 0);
    assert_int_equal(tm_slot(99), 0);
    assert_int_equal(tm_slot(100), 100);
    assert_int_equal(tm_slot(99999), 99900);
    assert_int_equal(tm_slot(100000), 0);
    assert_int_equal(tm_slot(1700000099999ULL), 99900); /* 17000000999 % 1000 = 999 */
    assert_int_equal(tm_slot(1700000100000ULL), 0);
    assert_int_equal(tm_slot(UINT64_MAX), ((UINT64_MAX / 100) % 1000) * 100);

    char k[300];
    assert_int_equal(tm_key(k, sizeof(k), "switchyard:traces", 1700000000123ULL, "full"), 29);
    assert_string_equal(k, "switchyard:traces:000100:full");
    tm_key(k, sizeof(k), "p", 1700000099999ULL, "part");
    assert_string_equal(k, "p:099900:part");
    tm_key(k, sizeof(k), "p", 5, "part");
    assert_string_equal(k, "p:000000:part");

    /* memcached's 250-byte key limit */
    char prefix[260];
    memset(prefix, 'x', 250);
    prefix[250] = '\0';
    assert_int_equal(tm_key(k, sizeof(k), prefix, 0, "full"), -1);
    prefix[238] = '\0'; /* 238 + 12 = 250 */
    assert_int_equal(tm_key(k, sizeof(k), prefix, 0, "full"), 250);
    assert_int_equal(tm_key(k, 10, "p", 0, "full"), -1);

    assert_true(tm_prefix_ok("switchyard:traces"));
    assert_false(tm_prefix_ok(""));
    assert_false(tm_prefix_ok("a b"));
    assert_false(tm_prefix_ok("a\nb"));
    assert_false(tm_prefix_ok(prefix)); /* over 200 */
}

/* ------------------------------------------------------------------ */
/* JSON strings                                                         */
/* ------------------------------------------------------------------ */

static void expect_json(const char *in, size_t n, const char *want)
{
    tm_buf b = { 0 };
    tm_json_str(&b, in, n);
    tm_buf_add(&b, "", 1);
    if (strcmp(b.p, want) != 0)
        fail_msg("escaped %zu bytes as %s, want %s", n, b.p, want);
    tm_buf_free(&b);
}

/* The escaped text, put in a record, decodes back to `want`. */
static void expect_roundtrip(const char *in, size_t n, const char *want)
{
    tm_buf b = { 0 };
    tm_buf_str(&b, "{\"version\":1,\"start\":0,\"trace\":");
    tm_json_str(&b, in, n);
    tm_buf_str(&b, "}");
    sy_trace_rec r;
    char err[200];
    if (sy_trace_rec_parse(b.p, b.len, &r, err, sizeof(err)) != 0)
        fail_msg("%s: %.*s", err, (int)b.len, b.p);
    assert_string_equal(r.trace, want);
    sy_trace_rec_free(&r);
    tm_buf_free(&b);
}

static void test_json_escape(void **st)
{
    expect_json("", 0, "\"\"");
    expect_json("api.req", 7, "\"api.req\"");
    expect_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    expect_json("/x?a=1&b=2", 10, "\"/x?a=1&b=2\"");
    expect_json("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
    expect_json("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"");
    expect_json("a\0b", 3, "\"a\\u0000b\"");
    /* valid UTF-8 is kept: é, €, U+10348, U+FFFF, U+10FFFF */
    expect_json("\xc3\xa9\xe2\x82\xac\xf0\x90\x8d\x88", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x90\x8d\x88\"");
    expect_json("\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7, "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
    /* invalid: a stray continuation byte, an overlong '/', a surrogate,
     * past U+10FFFF, a cut sequence at the end, 0xFF */
    expect_json("\x80", 1, "\"\\ufffd\"");
    expect_json("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");
    expect_json("\xe0\x80\xaf", 3, "\"\\ufffd\\ufffd\\ufffd\"");
    expect_json("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
    expect_json("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    expect_json("ok\xe2\x82", 4, "\"ok\\ufffd\\ufffd\"");
    expect_json("\xe2\x82" "A", 3, "\"\\ufffd\\ufffdA\"");
    expect_json("\xff", 1, "\"\\ufffd\"");

    /* and the reader decodes all of it back */
    expect_roundtrip("a\"b\\c\n\x01", 7, "a\"b\\c\n\x01");
    expect_roundtrip("\xc3\xa9\xf0\x90\x8d\x88", 6, "\xc3\xa9\xf0\x90\x8d\x88");
    expect_roundtrip("x\xffy", 3, "x\xef\xbf\xbdy");
    expect_roundtrip("a\0b", 3, "a\xef\xbf\xbd" "b"); /* NUL cannot be in a C string */

    /* every byte value, alone and in pairs, gives JSON the reader takes */
    char two[2];
    for (int a = 0; a < 256; a++)
        for (int c = 0; c < 256; c += 17) {
            two[0] = (char)a;
            two[1] = (char)c;
            tm_buf b = { 0 };
            tm_buf_str(&b, "{\"version\":1,\"start\":0,\"trace\":");
            tm_json_str(&b, two, 2);
            tm_buf_str(&b, "}");
            for (size_t i = 0; i < b.len; i++)
                assert_true((unsigned char)b.p[i] >= 0x20);
            sy_trace_rec r;
            char err[200];
            assert_int_equal(sy_trace_rec_parse(b.p, b.len, &r, err, sizeof(err)), 0);
            sy_trace_rec_free(&r);
            tm_buf_free(&b);
        }
}

/* ------------------------------------------------------------------ */
/* tags                                                                 */
/* ------------------------------------------------------------------ */

static int same(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

static void test_tags(void **st)
{
    tm_span_tags t;
    const char *s = "trace:9f2c,root,method:GET,path:/x,status:200";
    tm_parse_tags(s, strlen(s), &t);
    assert_true(same(t.trace, t.trace_len, "9f2c"));
    assert_true(t.root);
    assert_true(same(t.method, t.method_len, "GET"));
    assert_true(same(t.path, t.path_len, "/x"));
    assert_true(same(t.status, t.status_len, "200"));
    assert_true(t.off == 0 && !t.off_bad);

    s = "trace:9f2c,off:1";
    tm_parse_tags(s, strlen(s), &t);
    assert_true(same(t.trace, t.trace_len, "9f2c"));
    assert_false(t.root);
    assert_true(t.off == 1);
    assert_null(t.method);

    /* the first trace counts, a value may hold ':', empty tags are skipped */
    s = ",,trace:a:b,,trace:c,path:/a:b,off:2.5,";
    tm_parse_tags(s, strlen(s), &t);
    assert_true(same(t.trace, t.trace_len, "a:b"));
    assert_true(same(t.path, t.path_len, "/a:b"));
    assert_true(t.off == 2.5);

    /* no trace: no tags, "trace:" empty, bare "trace", another key */
    const char *none[] = { "", "trace:", "trace", "traceid:1,root", "Trace:1", ",", NULL };
    for (int i = 0; none[i]; i++) {
        tm_parse_tags(none[i], strlen(none[i]), &t);
        assert_null(t.trace);
    }

    /* root spellings */
    const char *roots[] = { "root", "root:true", "root:1", "root:yes", NULL };
    const char *not_roots[] = { "root:false", "root:0", "rooted", "ROOT", "root:", NULL };
    for (int i = 0; roots[i]; i++) {
        tm_parse_tags(roots[i], strlen(roots[i]), &t);
        assert_true(t.root);
    }
    for (int i = 0; not_roots[i]; i++) {
        tm_parse_tags(not_roots[i], strlen(not_roots[i]), &t);
        assert_false(t.root);
    }

    /* a bad off counts as 0 and is flagged */
    const char *bad_off[] = { "off:-1", "off:abc", "off:1e3", "off:", "off:.", "off:1.2.3", NULL };
    for (int i = 0; bad_off[i]; i++) {
        tm_parse_tags(bad_off[i], strlen(bad_off[i]), &t);
        assert_true(t.off == 0 && t.off_bad);
    }

    /* iteration, and which tags stay with the span */
    s = "trace:x,root,off:3,db:main,cached,k:v:w";
    size_t pos = 0, kept = 0;
    tm_tag tag;
    const char *want[] = { "db:main", "cached", "k:v:w" };
    while (tm_tag_next(s, strlen(s), &pos, &tag)) {
        if (!tm_tag_kept(&tag))
            continue;
        size_t len = (size_t)(tag.value + tag.value_len - tag.key);
        assert_true(kept < 3 && same(tag.key, len, want[kept]));
        kept++;
    }
    assert_int_equal(kept, 3);
    pos = 0;
    assert_true(tm_tag_next("k:v:w", 5, &pos, &tag));
    assert_true(same(tag.key, tag.key_len, "k") && same(tag.value, tag.value_len, "v:w"));
    assert_true(tag.has_value);
    assert_false(tm_tag_next("k:v:w", 5, &pos, &tag));
}

static void test_parse_ms(void **st)
{
    double v;
    assert_int_equal(tm_parse_ms("12", 2, &v), 0);
    assert_true(v == 12);
    assert_int_equal(tm_parse_ms("1.5", 3, &v), 0);
    assert_true(v == 1.5);
    assert_int_equal(tm_parse_ms(".5", 2, &v), 0);
    assert_true(v == 0.5);
    assert_int_equal(tm_parse_ms("5.", 2, &v), 0);
    assert_true(v == 5);
    assert_int_equal(tm_parse_ms("+3", 2, &v), 0);
    assert_true(v == 3);
    assert_int_equal(tm_parse_ms("0.001", 5, &v), 0);
    assert_true(fabs(v - 0.001) < 1e-12);
    const char *bad[] = { "", "-1", "1e3", "abc", ".", "+", "1 ", " 1", "0x10", "inf", NULL };
    for (int i = 0; bad[i]; i++)
        assert_int_equal(tm_parse_ms(bad[i], strlen(bad[i]), &v), -1);
}

/* ------------------------------------------------------------------ */
/* grouping                                                             */
/* ------------------------------------------------------------------ */

/* The example: three child spans, then the root. */
static void test_trace_assembled(void **st)
{
    tm_limits l = lim();
    tm_table *t = tm_table_new(&l);
    assert_non_null(t);
    assert_int_equal(add(t, "db.query;trace_9f2c;off_1", 5, "trace:9f2c,off:1", T0 + 100, 1000), TM_ADDED);
    assert_int_equal(add(t, "db.query", 7, "trace:9f2c,off:10,table:users", T0 + 110, 1010), TM_ADDED);
    assert_int_equal(add(t, "cache.get", 0.5, "trace:9f2c,off:20", T0 + 115, 1015), TM_ADDED);
    assert_int_equal(add(t, "other", 1, "path:/nope", T0 + 116, 1016), TM_NO_TRACE);
    assert_int_equal(tm_table_open(t), 1);
    assert_int_equal(tm_table_open_spans(t), 3);
    assert_null(tm_table_pop_closed(t));
    assert_int_equal(add(t, "api.req;trace_9f2c;root", 120,
                         "trace:9f2c,root,method:GET,path:/x,status:200", T0 + 123, 1023), TM_ADDED);
    tm_table_expire(t, 1023); /* rootWaitMs 0: due at once */
    tm_trace *tr = tm_table_pop_closed(t);
    assert_non_null(tr);
    assert_null(tm_table_pop_closed(t));
    assert_int_equal(tm_table_open(t), 0);
    assert_int_equal(tm_table_bytes(t), 0);

    /* start: the root's arrival minus its duration */
    assert_int_equal(tm_trace_start(tr), T0 + 3);
    assert_true(tm_trace_duration(tr) == 120);
    assert_int_equal(tm_trace_span_count(tr), 4);
    assert_int_equal(tm_trace_spans_dropped(tr), 0);
    assert_int_equal(tm_trace_closed_by(tr), TM_CLOSED_ROOT);

    sy_trace_rec full, part;
    records(tr, &full, &part);
    assert_int_equal(full.version, 1);
    assert_int_equal(full.start, T0 + 3);
    assert_string_equal(full.trace, "9f2c");
    assert_string_equal(full.method, "GET");
    assert_string_equal(full.path, "/x");
    assert_string_equal(full.status, "200");
    assert_string_equal(full.closed, "root");
    assert_true(full.root);
    assert_true(full.duration == 120);
    assert_true(full.span_count == 4 && full.spans_dropped == 0);
    assert_int_equal(full.nspans, 4);
    /* root first, then by offset; names cut at ';' */
    const char *names[] = { "api.req", "db.query", "db.query", "cache.get" };
    double offs[] = { 0, 1, 10, 20 }, durs[] = { 120, 5, 7, 0.5 };
    for (int i = 0; i < 4; i++) {
        assert_string_equal(full.spans[i].name, names[i]);
        assert_true(full.spans[i].off == offs[i]);
        assert_true(full.spans[i].dur == durs[i]);
        assert_int_equal(full.spans[i].root, i == 0);
    }
    assert_int_equal(full.spans[0].ntags, 3);
    assert_string_equal(full.spans[0].tags[0], "method:GET");
    assert_string_equal(full.spans[0].tags[2], "status:200");
    assert_int_equal(full.spans[1].ntags, 0);
    assert_int_equal(full.spans[2].ntags, 1);
    assert_string_equal(full.spans[2].tags[0], "table:users");

    assert_int_equal(part.start, T0 + 3);
    assert_int_equal(part.nspans, 0);
    assert_true(part.span_count == 4);
    assert_false(part.stats_truncated);
    assert_int_equal(part.nstats, 3); /* by name */
    assert_string_equal(part.stats[0].name, "api.req");
    assert_true(part.stats[0].count == 1 && part.stats[0].total == 120);
    assert_string_equal(part.stats[1].name, "cache.get");
    assert_true(part.stats[1].count == 1 && part.stats[1].total == 0.5);
    assert_string_equal(part.stats[2].name, "db.query");
    assert_true(part.stats[2].count == 2 && part.stats[2].total == 12);

    sy_trace_rec_free(&full);
    sy_trace_rec_free(&part);
    tm_trace_free(tr);
    tm_table_free(t);
}

/* Several traces interleaved; client strings that need escaping. */
static void test_traces_interleaved(void **st)
{
    tm_limits l = lim();
    tm_table *t = tm_table_new(&l);
    char tags[128];
    for (int i = 0; i < 50; i++)
        for (int k = 0; k < 3; k++) {
            snprintf(tags, sizeof(tags), "trace:id%d,off:%d", k, i);
            assert_int_equal(add(t, "s", 1, tags, T0 + (uint64_t)i, 100 + (uint64_t)i), TM_ADDED);
        }
    assert_int_equal(tm_table_open(t), 3);
    const char *evil = "trace:id1,root,path:/\"q\\\x01\xff,method:G\nET";
    assert_int_equal(add(t, "na\"me", 100, evil, T0 + 200, 300), TM_ADDED);
    tm_table_expire(t, 300);
    tm_trace *tr = tm_table_pop_closed(t);
    assert_non_null(tr);
    size_t idlen;
    const char *id = tm_trace_id(tr, &idlen);
    assert_true(same(id, idlen, "id1"));
    assert_int_equal(tm_trace_span_count(tr), 51);
    sy_trace_rec full, part;
    records(tr, &full, &part);
    assert_string_equal(full.path, "/\"q\\\x01\xef\xbf\xbd");
    assert_string_equal(full.method, "G\nET");
    assert_string_equal(full.spans[0].name, "na\"me");
    sy_trace_rec_free(&full);
    sy_trace_rec_free(&part);
    tm_trace_free(tr);
    assert_int_equal(tm_table_open(t), 2);
    tm_table_free(t); /* frees the two still open */
}

static void test_timeout_without_root(void **st)
{
    tm_limits l = lim();
    l.timeout_ms = 500;
    tm_table *t = tm_table_new(&l);
    /* spans end at arrival: starts T0+50-10-40 = T0, T0+90-30-20 = T0+40 */
    assert_int_equal(add(t, "a", 40, "trace:x,off:10", T0 + 50, 1000), TM_ADDED);
    assert_int_equal(add(t, "b", 20, "trace:x,off:30", T0 + 90, 1100), TM_ADDED);
    assert_int_equal(tm_table_next_deadline(t), 1500);
    tm_table_expire(t, 1499);
    assert_null(tm_table_pop_closed(t));
    tm_table_expire(t, 1500);
    tm_trace *tr = tm_table_pop_closed(t);
    assert_non_null(tr);
    assert_int_equal(tm_trace_closed_by(tr), TM_CLOSED_TIMEOUT);
    assert_false(tm_trace_has_root(tr));
    assert_int_equal(tm_trace_start(tr), T0);    /* the earliest estimate */
    assert_true(tm_trace_duration(tr) == 50);   /* the extent: off 10 + 40 */
    sy_trace_rec full, part;
    records(tr, &full, &part);
    assert_null(full.method);
    assert_null(full.path);
    assert_false(full.root);
    assert_string_equal(full.closed, "timeout");
    sy_trace_rec_free(&full);
    sy_trace_rec_free(&part);
    tm_trace_free(tr);
    assert_int_equal(tm_table_next_deadline(t), 0);
    tm_table_free(t);
}

static void test_root_wait_and_late(void **st)
{
    tm_limits l = lim();
    l.root_wait_ms = 100;
    l.timeout_ms = 1000;
    tm_table *t = tm_table_new(&l);
    assert_int_equal(add(t, "req", 10, "trace:r,root", T0, 5000), TM_ADDED);
    assert_int_equal(tm_table_next_deadline(t), 5100);
    /* a child reordered behind the root still joins */
    assert_int_equal(add(t, "child", 3, "trace:r,off:2", T0 + 1, 5050), TM_ADDED);
    /* a second root is an ordinary span */
    assert_int_equal(add(t, "req", 99, "trace:r,root", T0 + 2, 5060), TM_ADDED);
    tm_table_expire(t, 5099);
    assert_null(tm_table_pop_closed(t));
    tm_table_expire(t, 5100);
    tm_trace *tr = tm_table_pop_closed(t);
    assert_non_null(tr);
    assert_int_equal(tm_trace_span_count(tr), 3);
    assert_true(tm_trace_duration(tr) == 10);
    assert_int_equal(tm_trace_start(tr), T0 - 10);
    assert_int_equal(tm_trace_span(tr, 0)->root, 1);
    assert_true(tm_trace_span(tr, 0)->dur == 10);
    tm_trace_free(tr);
    /* later spans of the closed trace are late, until timeoutMs passed */
    assert_int_equal(add(t, "child", 1, "trace:r", T0 + 300, 5200), TM_LATE);
    assert_int_equal(tm_table_open(t), 0);
    assert_int_equal(add(t, "child", 1, "trace:r", T0 + 2000, 6100), TM_ADDED);
    assert_int_equal(tm_table_open(t), 1);
    tm_table_free(t);
}

/* A client's numbers cannot put a start outside [arrival - max_trace_ms,
 * arrival]: a root of 1e308 ms (which gave start 0, slot 000000, 1970)
 * and a huge off (which picked the slot) are clamped to the window's
 * earliest end, and said so; a start within the window is kept exactly,
 * its edge included. */
static void test_start_clamped(void **st)
{
    tm_limits l = lim();
    l.max_trace_ms = 60000;
    tm_table *t = tm_table_new(&l);
    double claimed = 0;

    assert_int_equal(add(t, "api.req", 1e308, "trace:huge,root", T0 + 5, 1000), TM_ADDED);
    assert_int_equal(add(t, "api.req", 60000, "trace:edge,root", T0 + 5, 1000), TM_ADDED);
    assert_int_equal(add(t, "api.req", 120, "trace:fine,root", T0 + 5, 1000), TM_ADDED);
    tm_table_expire(t, 1000);
    for (int i = 0; i < 3; i++) {
        tm_trace *tr = tm_table_pop_closed(t);
        assert_non_null(tr);
        size_t len;
        const char *id = tm_trace_id(tr, &len);
        if (len == 4 && !memcmp(id, "huge", 4)) {
            assert_int_equal(tm_trace_start(tr), T0 + 5 - 60000);
            assert_true(tm_trace_start_clamped(tr, &claimed));
            assert_true(claimed == 1e308);
            assert_true(tm_trace_duration(tr) == 1e308); /* the client's, as sent */
        } else if (len == 4 && !memcmp(id, "edge", 4)) {
            assert_int_equal(tm_trace_start(tr), T0 + 5 - 60000);
            assert_false(tm_trace_start_clamped(tr, NULL));
        } else {
            assert_int_equal(tm_trace_start(tr), T0 + 5 - 120);
            assert_false(tm_trace_start_clamped(tr, NULL));
        }
        tm_trace_free(tr);
    }

    /* without a root: an off of 99999999 ms on one span moves the earliest
     * estimate; it stops at the window of that span's arrival */
    assert_int_equal(add(t, "a", 10, "trace:off,off:2", T0 + 100, 2000), TM_ADDED);
    assert_int_equal(add(t, "b", 10, "trace:off,off:99999999", T0 + 200, 2001), TM_ADDED);
    tm_table_expire(t, 2001 + l.timeout_ms);
    tm_trace *tr = tm_table_pop_closed(t);
    assert_non_null(tr);
    assert_int_equal(tm_trace_start(tr), T0 + 200 - 60000);
    assert_true(tm_trace_start_clamped(tr, &claimed));
    assert_true(claimed == 99999999 + 10);
    /* the slot follows the clamped start, not one the client chose */
    assert_int_equal(tm_slot(tm_trace_start(tr)), tm_slot(T0 + 200 - 60000));
    tm_trace_free(tr);
    tm_table_free(t);

    /* max_trace_ms 0: no window, but never before the epoch */
    l.max_trace_ms = 0;
    t = tm_table_new(&l);
    assert_int_equal(add(t, "api.req", 1e308, "trace:zero,root", T0, 1000), TM_ADDED);
    tm_table_expire(t, 1000);
    tr = tm_table_pop_closed(t);
    assert_int_equal(tm_trace_start(tr), 0);
    assert_true(tm_trace_start_clamped(tr, NULL));
    tm_trace_free(tr);
    tm_table_free(t);
}

static void test_bad_spans(void **st)
{
    tm_limits l = lim();
    tm_table *t = tm_table_new(&l);
    assert_int_equal(add(t, "a", -1, "trace:x", T0, 1), TM_BAD);
    assert_int_equal(add(t, "a", NAN, "trace:x", T0, 1), TM_BAD);
    assert_int_equal(add(t, "a", INFINITY, "trace:x", T0, 1), TM_BAD);
    char tags[300] = "trace:";
    memset(tags + 6, 'i', 201);
    tags[207] = '\0';
    assert_int_equal(add(t, "a", 1, tags, T0, 1), TM_BAD);
    tags[206] = '\0'; /* 200 bytes is fine */
    assert_int_equal(add(t, "a", 1, tags, T0, 1), TM_ADDED);
    assert_int_equal(tm_table_open(t), 1);
    /* a bad off is kept as 0 */
    assert_int_equal(add(t, "b", 1, "trace:y,off:zz", T0, 1), TM_ADDED);
    tm_table_close_all(t, 2);
    tm_trace *tr;
    int n = 0;
    while ((tr = tm_table_pop_closed(t))) {
        assert_int_equal(tm_trace_closed_by(tr), TM_CLOSED_SHUTDOWN);
        assert_true(tm_trace_span(tr, 0)->off == 0);
        tm_trace_free(tr);
        n++;
    }
    assert_int_equal(n, 2);
    tm_table_free(t);
}

static void test_max_spans(void **st)
{
    tm_limits l = lim();
    l.max_spans = 3;
    tm_table *t = tm_table_new(&l);
    int results[6];
    for (int i = 0; i < 5; i++)
        results[i] = add(t, "child", 1, "trace:m,off:1", T0, 10);
    /* one place is kept for the root */
    assert_int_equal(results[0], TM_ADDED);
    assert_int_equal(results[1], TM_ADDED);
    for (int i = 2; i < 5; i++)
        assert_int_equal(results[i], TM_OVER_SPANS);
    assert_int_equal(add(t, "req", 9, "trace:m,root", T0 + 9, 11), TM_ADDED);
    assert_int_equal(add(t, "child", 1, "trace:m", T0 + 9, 11), TM_OVER_SPANS);
    tm_table_expire(t, 11);
    tm_trace *tr = tm_table_pop_closed(t);
    assert_non_null(tr);
    assert_int_equal(tm_trace_span_count(tr), 3);
    assert_int_equal(tm_trace_spans_dropped(tr), 4);
    assert_true(tm_trace_has_root(tr));
    sy_trace_rec full, part;
    records(tr, &full, &part);
    assert_true(full.span_count == 3 && full.spans_dropped == 4);
    assert_true(part.span_count == 3 && part.spans_dropped == 4);
    sy_trace_rec_free(&full);
    sy_trace_rec_free(&part);
    tm_trace_free(tr);
    tm_table_free(t);
}

static void test_max_open(void **st)
{
    tm_limits l = lim();
    l.max_open = 2;
    tm_table *t = tm_table_new(&l);
    assert_int_equal(add(t, "a", 1, "trace:1", T0, 1), TM_ADDED);
    assert_int_equal(add(t, "a", 1, "trace:2", T0, 2), TM_ADDED);
    assert_int_equal(add(t, "a", 1, "trace:3", T0, 3), TM_ADDED);
    assert_int_equal(tm_table_open(t), 2);
    tm_trace *tr = tm_table_pop_closed(t);
    assert_non_null(tr);
    size_t n;
    const char *tid = tm_trace_id(tr, &n);
    assert_true(same(tid, n, "1")); /* the oldest */
    assert_int_equal(tm_trace_closed_by(tr), TM_CLOSED_EVICTED);
    tm_trace_free(tr);
    /* a trace whose root was seen goes before an older one still open */
    l.root_wait_ms = 1000;
    tm_table *u = tm_table_new(&l);
    assert_int_equal(add(u, "a", 1, "trace:old", T0, 1), TM_ADDED);
    assert_int_equal(add(u, "a", 1, "trace:done,root", T0, 2), TM_ADDED);
    assert_int_equal(add(u, "a", 1, "trace:new", T0, 3), TM_ADDED);
    tr = tm_table_pop_closed(u);
    tid = tm_trace_id(tr, &n);
    assert_true(same(tid, n, "done"));
    tm_trace_free(tr);
    tm_table_free(u);
    tm_table_free(t);
}

static void test_max_bytes(void **st)
{
    tm_limits l = lim();
    l.max_bytes = 8192;
    tm_table *t = tm_table_new(&l);
    char name[600];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    int added = 0, nomem = 0;
    for (int i = 0; i < 40; i++) {
        int r = add(t, name, 1, "trace:big", T0, 1);
        added += r == TM_ADDED;
        nomem += r == TM_NO_MEMORY;
        assert_true(tm_table_bytes(t) <= l.max_bytes);
    }
    assert_true(added > 3 && nomem > 0);
    /* new traces make the big one, the oldest, close early */
    tm_trace *tr = NULL;
    char id[32];
    for (int i = 0; i < 100 && !tr; i++) {
        snprintf(id, sizeof(id), "trace:small%d", i);
        assert_int_equal(add(t, name, 1, id, T0, 2), TM_ADDED);
        assert_true(tm_table_bytes(t) <= l.max_bytes);
        tr = tm_table_pop_closed(t);
    }
    assert_non_null(tr);
    size_t idlen;
    const char *tid = tm_trace_id(tr, &idlen);
    assert_true(same(tid, idlen, "big"));
    assert_int_equal(tm_trace_closed_by(tr), TM_CLOSED_EVICTED);
    assert_int_equal(tm_trace_span_count(tr), added);
    assert_int_equal(tm_trace_spans_dropped(tr), nomem);
    tm_trace_free(tr);
    tm_table_free(t);
}

/* Records are capped: spans (full) or statistics (part) that would not fit
 * are left out and counted. */
static void test_record_size_cap(void **st)
{
    tm_limits l = lim();
    tm_table *t = tm_table_new(&l);
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "span.number.%03d", i);
        assert_int_equal(add(t, name, 1, "trace:cap,off:1,k:v", T0, 1), TM_ADDED);
    }
    tm_table_close_all(t, 2);
    tm_trace *tr = tm_table_pop_closed(t);
    tm_buf b = { 0 };
    uint32_t written = 0;
    assert_int_equal(tm_trace_json_full(tr, &b, 4000, sy_fmt_double, &written), 0);
    assert_true(b.len <= 4000);
    assert_true(written > 10 && written < 200);
    sy_trace_rec r;
    char err[200];
    assert_int_equal(sy_trace_rec_parse(b.p, b.len, &r, err, sizeof(err)), 0);
    assert_int_equal(r.nspans, written);
    assert_true(r.span_count == written && r.spans_dropped == 200 - written);
    sy_trace_rec_free(&r);

    tm_buf_reset(&b);
    assert_int_equal(tm_trace_json_part(tr, &b, 3000, sy_fmt_double), 0);
    assert_true(b.len <= 3000);
    assert_int_equal(sy_trace_rec_parse(b.p, b.len, &r, err, sizeof(err)), 0);
    assert_true(r.stats_truncated);
    assert_true(r.nstats > 10 && r.nstats < 200);
    sy_trace_rec_free(&r);

    tm_buf_reset(&b);
    assert_int_equal(tm_trace_json_full(tr, &b, 100, sy_fmt_double, &written), -1);
    tm_buf_free(&b);
    tm_trace_free(tr);
    tm_table_free(t);
}

/* ------------------------------------------------------------------ */
/* the reader's decoder                                                 */
/* ------------------------------------------------------------------ */

static int parses(const char *s)
{
    sy_trace_rec r;
    char err[200];
    int rc = sy_trace_rec_parse(s, strlen(s), &r, err, sizeof(err));
    if (rc == 0)
        sy_trace_rec_free(&r);
    return rc == 0;
}

static void test_decoder(void **st)
{
    assert_true(parses("{\"version\":1,\"start\":5}"));
    assert_true(parses(" {\"start\":5 , \"version\" : 1 }\r\n"));
    /* unknown members of any shape are skipped */
    assert_true(parses("{\"version\":1,\"start\":5,\"new\":{\"a\":[1,2,{\"b\":null}],\"c\":true},"
                       "\"x\":-1.5e3,\"y\":\"\\u00e9\\ud83d\\ude00\"}"));
    /* a version 1 writer's optional members may be missing or null */
    assert_true(parses("{\"version\":1,\"start\":5,\"method\":null,\"spans\":[{}],\"stats\":[]}"));

    const char *bad[] = {
        "", "null", "[]", "{}", "{\"version\":1}", "{\"start\":5}",
        "{\"version\":2,\"start\":5}", "{\"version\":1,\"start\":-1}",
        "{\"version\":1,\"start\":1.5}", "{\"version\":1,\"start\":\"5\"}",
        "{\"version\":1,\"start\":1e300}", "{\"version\":1,\"start\":5", "{\"version\":1,\"start\":5}x",
        "{\"version\":1,\"start\":5,}", "{\"version\":1,\"start\":5,\"trace\":\"a}",
        "{\"version\":1,\"start\":5,\"trace\":\"\\x\"}", "{\"version\":1,\"start\":5,\"trace\":\"\\u12\"}",
        "{\"version\":1,\"start\":5,\"trace\":7}", "{\"version\":1,\"start\":5,\"root\":1}",
        "{\"version\":1,\"start\":5,\"spans\":[{\"tags\":[1]}]}",
        "{\"version\":1,\"start\":5,\"stats\":{}}", "{\"version\":1 \"start\":5}",
        "{\"version\":1,\"start\":5,\"x\":[1,]}", "{\"version\":1,\"start\":5,\"x\":tru}",
        "{\"version\":1,\"start\":5,\"trace\":\"\\", "{\"version\":1,\"start\":5,\"x\":-}",
        NULL,
    };
    for (int i = 0; bad[i]; i++)
        if (parses(bad[i]))
            fail_msg("accepted %s", bad[i]);

    /* deep nesting is refused, not followed */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 64);
    size_t n = (size_t)sprintf(deep, "{\"version\":1,\"start\":5,\"x\":");
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    assert_false(parses(deep));
    free(deep);

    /* escaped surrogates: a pair is one character, a lone one U+FFFD */
    sy_trace_rec r;
    char err[200];
    const char *s = "{\"version\":1,\"start\":5,\"trace\":\"\\ud83d\\ude00|\\ud83d|\\ude00|\\u0041\"}";
    assert_int_equal(sy_trace_rec_parse(s, strlen(s), &r, err, sizeof(err)), 0);
    assert_string_equal(r.trace, "\xf0\x9f\x98\x80|\xef\xbf\xbd|\xef\xbf\xbd|A");
    sy_trace_rec_free(&r);

    /* the parser never reads past len: a record cut anywhere fails cleanly */
    tm_limits l = lim();
    tm_table *t = tm_table_new(&l);
    add(t, "a", 1, "trace:q,off:1,x:y", T0, 1);
    add(t, "r", 5, "trace:q,root,path:/p", T0 + 5, 2);
    tm_table_expire(t, 2);
    tm_trace *tr = tm_table_pop_closed(t);
    tm_buf b = { 0 };
    uint32_t w;
    tm_trace_json_full(tr, &b, 1 << 20, sy_fmt_double, &w);
    for (size_t cut = 0; cut < b.len; cut++) {
        char *copy = malloc(cut ? cut : 1); /* exactly cut bytes: ASan sees any overread */
        memcpy(copy, b.p, cut);
        assert_int_equal(sy_trace_rec_parse(copy, cut, &r, err, sizeof(err)), -1);
        free(copy);
    }
    /* and mutated records never crash it */
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int round = 0; round < 20000; round++) {
        char *copy = malloc(b.len);
        memcpy(copy, b.p, b.len);
        for (int k = 0; k < 1 + round % 4; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            copy[x % b.len] = (char)(x >> 32);
        }
        if (sy_trace_rec_parse(copy, b.len, &r, err, sizeof(err)) == 0)
            sy_trace_rec_free(&r);
        free(copy);
    }
    tm_buf_free(&b);
    tm_trace_free(tr);
    tm_table_free(t);
}

/* ------------------------------------------------------------------ */
/* the plugin, against a fake memcached                                 */
/* ------------------------------------------------------------------ */

static const char *plugin_dir(void)
{
    const char *d = getenv("SY_PLUGIN_DIR");
    return d && *d ? d : "build/plugins";
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

typedef struct fset {
    char key[256];
    long exptime;
    char *data;
    size_t len;
    int conn;
} fset;

typedef struct fconn {
    int fd;
    char *in;
    size_t len, cap;
    int held; /* replies not yet sent */
} fconn;

/* A memcached that understands `set` only and logs every one. */
typedef struct fake {
    int lfd, port;
    fconn c[16];
    int n;
    fset log[512];
    int nlog;
    int hold;             /* keep replies back */
    const char *fail;     /* keys containing this get SERVER_ERROR */
    int drop_on_full;     /* close the connection when a full arrives (once) */
} fake;

static void fake_listen(fake *f)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(f, 0, sizeof(*f));
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    socklen_t len = sizeof(a);
    getsockname(f->lfd, (struct sockaddr *)&a, &len);
    f->port = ntohs(a.sin_port);
}

static void fake_free(fake *f)
{
    close(f->lfd);
    for (int i = 0; i < f->n; i++) {
        if (f->c[i].fd >= 0)
            close(f->c[i].fd);
        free(f->c[i].in);
    }
    for (int i = 0; i < f->nlog; i++)
        free(f->log[i].data);
}

static void fake_reply(fconn *c, const char *s)
{
    ssize_t w = write(c->fd, s, strlen(s));
    assert_int_equal(w, (ssize_t)strlen(s));
}

/* Parses every complete set command of connection i. */
static void fake_parse(fake *f, int i)
{
    fconn *c = &f->c[i];
    size_t pos = 0;
    for (;;) {
        char *nl = memchr(c->in + pos, '\n', c->len - pos);
        if (!nl)
            break;
        char line[600];
        size_t ll = (size_t)(nl - (c->in + pos));
        assert_true(ll > 1 && ll < sizeof(line) && c->in[pos + ll - 1] == '\r');
        memcpy(line, c->in + pos, ll - 1);
        line[ll - 1] = '\0';
        fset *s = &f->log[f->nlog];
        unsigned flags;
        size_t bytes;
        assert_int_equal(sscanf(line, "set %255s %u %ld %zu", s->key, &flags, &s->exptime, &bytes), 4);
        assert_int_equal(flags, 0);
        size_t data = pos + ll + 1;
        if (c->len < data + bytes + 2)
            break; /* the data is not all here yet */
        assert_memory_equal(c->in + data + bytes, "\r\n", 2);
        s->data = malloc(bytes + 1);
        memcpy(s->data, c->in + data, bytes);
        s->data[bytes] = '\0';
        s->len = bytes;
        s->conn = i;
        assert_true(f->nlog < 511);
        f->nlog++;
        pos = data + bytes + 2;
        if (f->drop_on_full && strstr(s->key, ":full")) {
            f->drop_on_full = 0;
            close(c->fd);
            c->fd = -1;
            break;
        }
        if (f->fail && strstr(s->key, f->fail))
            fake_reply(c, "SERVER_ERROR out of memory storing object\r\n");
        else if (f->hold)
            c->held++;
        else
            fake_reply(c, "STORED\r\n");
    }
    if (c->fd >= 0) {
        memmove(c->in, c->in + pos, c->len - pos);
        c->len -= pos;
    }
}

static void fake_poll(fake *f)
{
    int fd;
    while (f->n < 16 && (fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
        f->c[f->n++] = (fconn){ .fd = fd };
    for (int i = 0; i < f->n; i++) {
        fconn *c = &f->c[i];
        while (c->fd >= 0) {
            if (c->cap - c->len < 65536) {
                c->cap = c->cap * 2 + 65536;
                c->in = realloc(c->in, c->cap);
            }
            ssize_t r = read(c->fd, c->in + c->len, c->cap - c->len);
            if (r > 0) {
                c->len += (size_t)r;
                fake_parse(f, i);
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(c->fd);
                c->fd = -1;
            } else {
                break;
            }
        }
        while (c->fd >= 0 && !f->hold && c->held) {
            fake_reply(c, "STORED\r\n");
            c->held--;
        }
    }
}

static int pump(struct event_base *base, fake *f, int (*cond)(fake *, sy_sink *), sy_sink *s,
                int timeout_ms)
{
    uint64_t end = mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        fake_poll(f);
        if (cond && cond(f, s))
            return 1;
        if (mono_ms() >= end)
            return 0;
        usleep(500);
    }
}

static sy_sink_stats stats_of(sy_sink *s)
{
    sy_sink_stats st;
    sy_sink_stats_get(s, &st);
    return st;
}

static sy_setting set_num(const char *k, double v)
{
    return (sy_setting){ .key = (char *)k, .type = SY_SET_NUMBER, .num = v };
}

static sy_setting set_str(const char *k, const char *v)
{
    return (sy_setting){ .key = (char *)k, .type = SY_SET_STRING, .str = (char *)v };
}

typedef struct env {
    struct event_base *base;
    const sy_sink_plugin *p;
    sy_sink *s;
    fake f;
} env;

static void env_open(env *e, sy_setting *extra, size_t nextra)
{
    char err[512];
    e->base = event_base_new();
    assert_non_null(e->base);
    fake_listen(&e->f);
    e->p = sy_plugin_load(plugin_dir(), "memcache_traces", err, sizeof(err));
    if (!e->p)
        fail_msg("%s", err);
    sy_setting set[16] = {
        set_str("host", "127.0.0.1"), set_num("port", e->f.port), set_num("rootWaitMs", 0),
        set_num("reconnectMinMs", 10), set_num("reconnectMaxMs", 50), set_str("prefix", "t"),
    };
    size_t n = 6;
    for (size_t i = 0; i < nextra; i++)
        set[n++] = extra[i];
    e->s = sy_sink_open(e->base, "traces", e->p, set, n, err, sizeof(err));
    if (!e->s)
        fail_msg("%s", err);
}

static void env_close(env *e)
{
    sy_sink_close(e->s);
    fake_free(&e->f);
    event_base_free(e->base);
}

static sy_sample timer(const char *name, double v, const char *tags)
{
    return (sy_sample){ .name = name, .name_len = (uint32_t)strlen(name), .text = "1",
                        .text_len = 1, .tags = tags, .tags_len = (uint32_t)strlen(tags),
                        .value = v, .rate = 1, .type = SY_SAMPLE_TIMER };
}

/* One trace: three children then the root, as the issue describes. */
static void send_trace(env *e, const char *id)
{
    char t[4][128];
    snprintf(t[0], sizeof(t[0]), "trace:%s,off:1", id);
    snprintf(t[1], sizeof(t[1]), "trace:%s,off:10", id);
    snprintf(t[2], sizeof(t[2]), "trace:%s,off:20,hit:1", id);
    snprintf(t[3], sizeof(t[3]), "trace:%s,root,method:GET,path:/x,status:200", id);
    sy_sample s[] = { timer("db.query", 5, t[0]), timer("db.query", 7, t[1]),
                      timer("cache.get", 1, t[2]), timer("api.req", 120, t[3]),
                      timer("unrelated", 3, "host:a") };
    sy_sample_batch b = { s, 5, NULL };
    sy_sink_write_samples(e->s, &b);
}

static int logged(fake *f, sy_sink *s, int n)
{
    return f->nlog >= n;
}

static int two_sets(fake *f, sy_sink *s)
{
    return logged(f, s, 2);
}

static int four_sets(fake *f, sy_sink *s)
{
    return logged(f, s, 4);
}

static int sent_4(fake *f, sy_sink *s)
{
    return stats_of(s).sent >= 4;
}

static int sent_1(fake *f, sy_sink *s)
{
    return stats_of(s).sent >= 1;
}

static int dropped_4(fake *f, sy_sink *s)
{
    return stats_of(s).dropped >= 4;
}

static void test_plugin_writes(void **st)
{
    env e;
    env_open(&e, NULL, 0);
    uint64_t before = (uint64_t)time(NULL) * 1000;
    send_trace(&e, "9f2c");
    assert_true(pump(e.base, &e.f, sent_4, e.s, 5000));
    uint64_t after = (uint64_t)time(NULL) * 1000 + 1000;
    assert_int_equal(e.f.nlog, 2);
    fset *full = &e.f.log[0], *part = &e.f.log[1];
    /* full first, then part, same slot, the default expiry */
    assert_int_equal(strlen(full->key), strlen("t:000000:full"));
    assert_memory_equal(full->key, "t:", 2);
    assert_string_equal(full->key + 8, ":full");
    assert_memory_equal(part->key, full->key, 8);
    assert_string_equal(part->key + 8, ":part");
    assert_int_equal(full->exptime, 3600);
    assert_int_equal(part->exptime, 3600);

    sy_trace_rec rf, rp;
    char err[200];
    assert_int_equal(sy_trace_rec_parse(full->data, full->len, &rf, err, sizeof(err)), 0);
    assert_int_equal(sy_trace_rec_parse(part->data, part->len, &rp, err, sizeof(err)), 0);
    assert_true(rf.start >= before - 120 && rf.start <= after);
    char slot[8];
    snprintf(slot, sizeof(slot), "%06u", tm_slot(rf.start));
    assert_memory_equal(full->key + 2, slot, 6);
    assert_int_equal(rp.start, rf.start);
    assert_int_equal(rf.nspans, 4);
    assert_string_equal(rf.spans[0].name, "api.req");
    assert_string_equal(rp.path, "/x");
    assert_int_equal(rp.nstats, 3);

    sy_sink_stats s = stats_of(e.s);
    assert_int_equal(s.sent, 4);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.connected, 1);
    assert_int_equal(sy_sink_pending(e.s), 0);
    sy_trace_rec_free(&rf);
    sy_trace_rec_free(&rp);
    env_close(&e);
}

/* The part goes only after memcached stored the full record. */
static void test_plugin_part_after_full(void **st)
{
    sy_setting extra[] = { set_num("expire", 60) };
    env e;
    env_open(&e, extra, 1);
    e.f.hold = 1;
    send_trace(&e, "a");
    assert_true(pump(e.base, &e.f, two_sets, e.s, 300) == 0); /* only one arrives */
    assert_int_equal(e.f.nlog, 1);
    assert_non_null(strstr(e.f.log[0].key, ":full"));
    assert_int_equal(e.f.log[0].exptime, 60);
    assert_int_equal(stats_of(e.s).queued, 4);
    assert_int_equal(sy_sink_pending(e.s), 4);
    e.f.hold = 0;
    assert_true(pump(e.base, &e.f, sent_4, e.s, 5000));
    assert_int_equal(e.f.nlog, 2);
    assert_non_null(strstr(e.f.log[1].key, ":part"));
    env_close(&e);
}

/* A refused full record: its part is never written; counted. */
static void test_plugin_refused(void **st)
{
    env e;
    env_open(&e, NULL, 0);
    e.f.fail = ":full";
    send_trace(&e, "a");
    assert_true(pump(e.base, &e.f, dropped_4, e.s, 5000));
    pump(e.base, &e.f, NULL, e.s, 100);
    assert_int_equal(e.f.nlog, 1);
    sy_sink_stats s = stats_of(e.s);
    assert_int_equal(s.sent, 0);
    assert_int_equal(s.dropped, 4);
    assert_true(s.errors >= 1);
    assert_int_equal(s.queued, 0);
    /* the connection stays usable */
    e.f.fail = NULL;
    send_trace(&e, "b");
    assert_true(pump(e.base, &e.f, sent_4, e.s, 5000));
    env_close(&e);
}

/* The connection breaks before the reply: the trace is written again,
 * full first, on the next connection. */
static void test_plugin_reconnect(void **st)
{
    env e;
    env_open(&e, NULL, 0);
    e.f.drop_on_full = 1;
    send_trace(&e, "a");
    assert_true(pump(e.base, &e.f, sent_4, e.s, 5000));
    assert_int_equal(e.f.nlog, 3);
    assert_non_null(strstr(e.f.log[0].key, ":full"));
    assert_non_null(strstr(e.f.log[1].key, ":full"));
    assert_non_null(strstr(e.f.log[2].key, ":part"));
    assert_int_not_equal(e.f.log[0].conn, e.f.log[1].conn);
    assert_string_equal(e.f.log[0].data, e.f.log[1].data);
    sy_sink_stats s = stats_of(e.s);
    assert_true(s.errors >= 1);
    assert_true(s.reconnects >= 1);
    assert_int_equal(s.dropped, 0);
    env_close(&e);
}

/* A trace without root closes on the timeout; the final flush writes what
 * is still open. */
static void test_plugin_timeout_and_final(void **st)
{
    sy_setting extra[] = { set_num("timeoutMs", 150) };
    env e;
    env_open(&e, extra, 1);
    sy_sample s1[] = { timer("orphan", 5, "trace:o,off:3") };
    sy_sample_batch b = { s1, 1, NULL };
    sy_sink_write_samples(e.s, &b);
    assert_true(pump(e.base, &e.f, two_sets, e.s, 100) == 0);
    assert_true(pump(e.base, &e.f, two_sets, e.s, 3000));
    sy_trace_rec r;
    char err[200];
    assert_int_equal(sy_trace_rec_parse(e.f.log[0].data, e.f.log[0].len, &r, err, sizeof(err)), 0);
    assert_string_equal(r.closed, "timeout");
    assert_false(r.root);
    sy_trace_rec_free(&r);

    assert_true(pump(e.base, &e.f, sent_1, e.s, 3000));
    sy_sample s2[] = { timer("open", 5, "trace:still-open") };
    b.samples = s2;
    sy_sink_write_samples(e.s, &b);
    assert_int_equal(sy_sink_pending(e.s), 1);
    sy_sink_flush(e.s, 1);
    assert_true(pump(e.base, &e.f, four_sets, e.s, 3000));
    assert_int_equal(sy_trace_rec_parse(e.f.log[2].data, e.f.log[2].len, &r, err, sizeof(err)), 0);
    assert_string_equal(r.closed, "shutdown");
    assert_string_equal(r.trace, "still-open");
    sy_trace_rec_free(&r);
    env_close(&e);
}

/* memcached away: finished traces queue up to maxQueueBytes, the rest are
 * counted as dropped; when it is back, the queued ones are written. */
static void test_plugin_queue_bound(void **st)
{
    sy_setting extra[] = { set_num("maxQueueBytes", 2500) };
    env e;
    env_open(&e, extra, 1);
    int port = e.f.port;
    close(e.f.lfd); /* nobody listens */
    e.f.lfd = -1;
    char id[16];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "q%d", i);
        send_trace(&e, id);
    }
    pump(e.base, &e.f, NULL, e.s, 100);
    sy_sink_stats s = stats_of(e.s);
    assert_true(s.queued > 0 && s.queued_bytes <= 2500);
    assert_int_equal(s.queued + s.dropped, 40);
    assert_true(s.dropped > 0);
    assert_int_equal(s.connected, 0);
    int64_t queued = s.queued;

    /* memcached comes back on the same port */
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    e.f.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(e.f.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(e.f.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(e.f.lfd, 16), 0);
    uint64_t end = mono_ms() + 5000;
    while (stats_of(e.s).sent < queued && mono_ms() < end)
        pump(e.base, &e.f, NULL, e.s, 20);
    s = stats_of(e.s);
    assert_int_equal(s.sent, queued);
    assert_int_equal(s.queued, 0);
    assert_int_equal(e.f.nlog, queued / 4 * 2);
    env_close(&e);
}

/* The plugin writes a clamped trace under the slot of the clamped start,
 * and counts it in its `adjusted` statistic. */
static int sent_2(fake *f, sy_sink *s)
{
    return stats_of(s).sent >= 2;
}

static void test_plugin_start_clamped(void **st)
{
    env e;
    sy_setting extra[] = { set_num("maxTraceMs", 30000) };
    env_open(&e, extra, 1);
    uint64_t before = (uint64_t)time(NULL) * 1000;
    sy_sample s[] = { timer("api.req", 1e308, "trace:far,root,path:/far"),
                      timer("api.req", 20, "trace:near,root,path:/near") };
    sy_sample_batch b = { s, 2, NULL };
    sy_sink_write_samples(e.s, &b);
    assert_true(pump(e.base, &e.f, sent_2, e.s, 5000));
    uint64_t after = (uint64_t)time(NULL) * 1000 + 1000;
    assert_int_equal(e.f.nlog, 4);
    int far = 0;
    for (int i = 0; i < 4; i++) {
        sy_trace_rec r;
        char err[200], slot[8];
        assert_int_equal(sy_trace_rec_parse(e.f.log[i].data, e.f.log[i].len, &r, err,
                                            sizeof(err)), 0);
        if (!strcmp(r.trace, "far")) {
            far++;
            assert_true(r.start >= before - 30000 && r.start <= after - 30000);
        } else {
            assert_true(r.start >= before - 20 && r.start <= after);
        }
        snprintf(slot, sizeof(slot), "%06u", tm_slot(r.start));
        assert_memory_equal(e.f.log[i].key + 2, slot, 6);
        sy_trace_rec_free(&r);
    }
    assert_int_equal(far, 2);
    sy_sink_stats stats = stats_of(e.s);
    assert_int_equal(stats.adjusted, 1);
    assert_int_equal(stats.sent, 2);
    assert_int_equal(stats.dropped, 0);
    env_close(&e);
}

static void test_plugin_settings(void **st)
{
    char err[512];
    struct event_base *base = event_base_new();
    const sy_sink_plugin *p = sy_plugin_load(plugin_dir(), "memcache_traces", err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(p->write(NULL, &(sy_metric_batch){ 0 }), SY_SKIP);
    struct {
        sy_setting s;
        const char *msg;
    } bad[] = {
        { set_str("prefix", "has space"), "prefix" },
        { set_str("prefix", ""), "prefix" },
        { set_num("expire", 2592001), "expire" },
        { set_num("expire", -1), "expire" },
        { set_num("maxSpans", 0), "maxSpans" },
        { set_num("port", 0), "port" },
        { set_num("rootWaitMs", 20000), "rootWaitMs" },
        { set_num("maxTraceMs", 0), "maxTraceMs" },
        { set_num("maxItemBytes", 10), "maxItemBytes" },
        { set_num("nosuch", 1), "nosuch" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sy_sink *s = sy_sink_open(base, "t", p, &bad[i].s, 1, err, sizeof(err));
        assert_null(s);
        if (!strstr(err, bad[i].msg))
            fail_msg("error for %s does not name it: %s", bad[i].msg, err);
    }
    event_base_free(base);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_parse_ms),
        cmocka_unit_test(test_trace_assembled),
        cmocka_unit_test(test_traces_interleaved),
        cmocka_unit_test(test_timeout_without_root),
        cmocka_unit_test(test_root_wait_and_late),
        cmocka_unit_test(test_start_clamped),
        cmocka_unit_test(test_bad_spans),
        cmocka_unit_test(test_max_spans),
        cmocka_unit_test(test_max_open),
        cmocka_unit_test(test_max_bytes),
        cmocka_unit_test(test_record_size_cap),
        cmocka_unit_test(test_decoder),
        cmocka_unit_test(test_plugin_writes),
        cmocka_unit_test(test_plugin_part_after_full),
        cmocka_unit_test(test_plugin_refused),
        cmocka_unit_test(test_plugin_reconnect),
        cmocka_unit_test(test_plugin_timeout_and_final),
        cmocka_unit_test(test_plugin_queue_bound),
        cmocka_unit_test(test_plugin_start_clamped),
        cmocka_unit_test(test_plugin_settings),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sy_plugin_unload_all();
    return rc;
}
