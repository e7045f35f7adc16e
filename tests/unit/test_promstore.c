/*
 * test_promstore.c - the series store both Prometheus sinks share
 * (plugins/lib/promstore.c): statsd_exporter's name escaping, and what
 * counters, gauges, timers and tags become.
 *
 * The unit test rule links only the core library, so the plugin helper is
 * compiled in here; the host's format_number is the core's sy_fmt_double.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/lib/promstore.c"
#include "util/numfmt.h"

static sy_host_api api = { .format_number = sy_fmt_double };

static const char *esc(const char *in)
{
    static char out[256];
    promstore_escape_name(in, strlen(in), out);
    return out;
}

static void test_escape(void **st)
{
    (void)st;
    assert_string_equal(esc("api.req.count"), "api_req_count");
    assert_string_equal(esc("9lives"), "_9lives");
    assert_string_equal(esc("a-b"), "a_b");
    assert_string_equal(esc("a--b"), "a_b");
    assert_string_equal(esc("a---b"), "a_b");
    assert_string_equal(esc("a.-b"), "a__b");
    assert_string_equal(esc("caf\xc3\xa9"), "caf_"); /* one character, one '_' */
    assert_string_equal(esc("ok_Name09"), "ok_Name09");
}

static sy_sample smp(const char *name, const char *tags, double v, char type)
{
    sy_sample s = { .name = name, .name_len = (uint32_t)strlen(name), .text = "", .tags = tags,
                    .tags_len = (uint32_t)strlen(tags), .value = v, .rate = 1, .type = (uint8_t)type };
    return s;
}

typedef struct seen {
    char text[4096];
    size_t used;
} seen;

static void v_family(void *arg, const char *name, const char *type)
{
    seen *s = arg;
    s->used += (size_t)snprintf(s->text + s->used, sizeof(s->text) - s->used, "# %s %s\n", name, type);
}

static void v_sample(void *arg, const char *name, const char *suffix, const prom_label *l, size_t n,
                     const prom_label *extra, double value, int64_t ts_ms)
{
    seen *s = arg;
    char num[32];
    s->used += (size_t)snprintf(s->text + s->used, sizeof(s->text) - s->used, "%s%s", name, suffix);
    for (size_t i = 0; i < n; i++)
        s->used += (size_t)snprintf(s->text + s->used, sizeof(s->text) - s->used, " %s=%s",
                                    l[i].name, l[i].value);
    if (extra)
        s->used += (size_t)snprintf(s->text + s->used, sizeof(s->text) - s->used, " %s=%s",
                                    extra->name, extra->value);
    promstore_format_value(&api, value, num);
    s->used += (size_t)snprintf(s->text + s->used, sizeof(s->text) - s->used, " %s", num);
    if (ts_ms)
        s->used += (size_t)snprintf(s->text + s->used, sizeof(s->text) - s->used, " @%lld",
                                    (long long)ts_ms);
    s->used += (size_t)snprintf(s->text + s->used, sizeof(s->text) - s->used, "\n");
}

/* What a visit reports; `emits`: as a page or a remote-write snapshot,
 * which the series remember the time of. */
static const char *show_as(promstore *p, uint64_t now, int emits)
{
    static seen s;
    s.used = 0;
    s.text[0] = '\0';
    promstore_visitor v = { v_family, v_sample, emits, 0, 0 };
    promstore_visit(p, now, &v, &s);
    return s.text;
}

static const char *show(promstore *p, uint64_t now) { return show_as(p, now, 0); }


static promstore_config config(void)
{
    promstore_config c = { .max_series = 4, .ttl_ms = 1000, .nquantiles = 2,
                           .quantiles = { 0.5, 0.9 }, .max_age_ms = 600000, .age_buckets = 5,
                           .summary_samples = 100 };
    return c;
}

/* DogStatsD timestamps: a series goes out at its client's newest time;
 * a time not after the one it last went out with is ignored (counted),
 * so a receiver never gets a series out of order or two values at one
 * time; values stay cumulative either way. */
/* A series that never had a client time goes out on a page without one,
 * however close together the scrapes or however the wall clock moves:
 * the scraper stamps it (it was stamped last-time + 1 ms when two
 * scrapes fell in one millisecond or the clock was set back). */
static void test_page_unstamped(void **st)
{
    (void)st;
    promstore_config c = config();
    c.ttl_ms = 0;
    promstore *p = promstore_new(&c, &api);
    sy_sample k = smp("hits", "", 2, 'c');
    assert_int_equal(promstore_add(p, &k, 1000), 0);
    assert_string_equal(show_as(p, 5000, 1), "# hits_total counter\nhits_total 2\n");
    assert_string_equal(show_as(p, 5000, 1), "# hits_total counter\nhits_total 2\n");
    assert_string_equal(show_as(p, 4000, 1), "# hits_total counter\nhits_total 2\n");
    promstore_free(p);
}

static void test_timestamps(void **st)
{
    (void)st;
    promstore_config c = config();
    c.ttl_ms = 0;
    promstore *p = promstore_new(&c, &api);
    sy_sample g = smp("q", "", 5, 'g'), k = smp("hits", "", 2, 'c');
    assert_int_equal(promstore_add_at(p, &g, 1000, 500000), 0);
    assert_int_equal(promstore_add_at(p, &k, 1000, 400000), 0);
    assert_int_equal(promstore_add_at(p, &k, 1000, 300000), 0); /* older, not yet sent: adds */
    assert_string_equal(show(p, 2000), "# q gauge\nq 5 @500000\n# hits_total counter\nhits_total 4 @400000\n");
    /* a look changes nothing; a page or a snapshot is remembered */
    assert_string_equal(show_as(p, 2000, 1), "# q gauge\nq 5 @500000\n# hits_total counter\nhits_total 4 @400000\n");
    assert_int_equal(promstore_get_stats(p)->ts_late, 0);
    /* the same time again (or an older one): late, counted, the value
     * kept and shown at the visit's own time */
    assert_int_equal(promstore_add_at(p, &g, 3000, 500000), 0);
    assert_int_equal(promstore_add_at(p, &k, 3000, 100000), 0);
    assert_int_equal(promstore_get_stats(p)->ts_late, 2);
    assert_string_equal(show_as(p, 600000, 1), "# q gauge\nq 5\n# hits_total counter\nhits_total 6\n");
    /* now they went out at 600000: a client time before that is late too */
    assert_int_equal(promstore_add_at(p, &g, 3000, 599000), 0);
    assert_int_equal(promstore_get_stats(p)->ts_late, 3);
    /* a newer one is taken */
    assert_int_equal(promstore_add_at(p, &g, 3000, 650000), 0);
    assert_string_equal(show_as(p, 610000, 1), "# q gauge\nq 5 @650000\n# hits_total counter\nhits_total 6\n");
    /* a sample without a time after a client time that is still ahead of
     * the clock: the series goes out 1 ms after its last time, never back */
    assert_int_equal(promstore_add(p, &g, 620000), 0);
    assert_string_equal(show_as(p, 620000, 1), "# q gauge\nq 5 @650001\n# hits_total counter\nhits_total 6\n");
    assert_string_equal(show_as(p, 630000, 1), "# q gauge\nq 5 @650002\n# hits_total counter\nhits_total 6\n");
    assert_string_equal(show_as(p, 700000, 1), "# q gauge\nq 5\n# hits_total counter\nhits_total 6\n");
    /* remote write sends a point at a client's time once */
    assert_int_equal(promstore_add_at(p, &g, 700000, 800000), 0);
    static seen once;
    promstore_visitor v = { v_family, v_sample, 1, 1, 1 };
    for (int i = 0; i < 2; i++) {
        once.used = 0;
        once.text[0] = '\0';
        promstore_visit(p, 710000 + (uint64_t)i, &v, &once);
        assert_string_equal(once.text, i == 0 ? "# q gauge\nq 5 @800000\n# hits_total counter\nhits_total 6\n"
                                              : "# q gauge\n# hits_total counter\nhits_total 6\n");
    }
    promstore_free(p);
}

static void test_kinds(void **st)
{
    (void)st;
    promstore_config c = config();
    promstore *p = promstore_new(&c, &api);
    sy_sample s = smp("hits", "", 2, 'c');
    s.rate = 0.5;
    assert_int_equal(promstore_add(p, &s, 0), 0);               /* 4 */
    s = smp("q;env=x", "zone:b,env:prod,env:dev,novalue", 5, 'g');
    assert_int_equal(promstore_add(p, &s, 0), 0);
    s = smp("q;env=x", "env:dev,zone:b", -2, 'g');
    s.is_delta = 1;
    assert_int_equal(promstore_add(p, &s, 0), 0);               /* same series: 3 */
    for (int i = 1; i <= 10; i++) {
        s = smp("lat", "", i * 100, 't');
        assert_int_equal(promstore_add(p, &s, 0), 0);
    }
    assert_string_equal(show(p, 0),
                        "# hits_total counter\nhits_total 4\n"
                        "# q gauge\nq env=dev zone=b 3\n"
                        "# lat summary\nlat quantile=0.5 0.5\nlat quantile=0.9 0.9\n"
                        "lat_sum 5.5\nlat_count 10\n");
    assert_int_equal(promstore_get_stats(p)->tag_errors, 1);

    s = smp("hits_total", "", 1, 'g');                          /* a counter's name */
    assert_int_equal(promstore_add(p, &s, 0), -1);
    assert_int_equal(promstore_get_stats(p)->dropped[PROMSTORE_DROP_TYPE_CONFLICT], 1);
    s = smp("u", "", 1, 's');
    assert_int_equal(promstore_add(p, &s, 0), -1);
    s = smp("neg", "", -1, 'c');
    assert_int_equal(promstore_add(p, &s, 0), -1);
    s = smp("new1", "", 1, 'g');
    assert_int_equal(promstore_add(p, &s, 0), 0);               /* the 4th series */
    s = smp("new2", "", 1, 'g');
    assert_int_equal(promstore_add(p, &s, 0), -1);              /* the bound */
    assert_int_equal(promstore_get_stats(p)->dropped[PROMSTORE_DROP_SERIES_LIMIT], 1);

    s = smp("hits", "", 1, 'c');
    assert_int_equal(promstore_add(p, &s, 900), 0);
    assert_int_equal(promstore_expire(p, 1500), 3);             /* all but hits */
    assert_string_equal(show(p, 1500), "# hits_total counter\nhits_total 5\n");
    promstore_free(p);
}

/* Labels a route set (route :label) reach the page from the routed name's
 * ";k=v" tags; a DogStatsD tag of the same name keeps its value as sent. */
static void test_name_labels(void **st)
{
    (void)st;
    promstore_config c = config();
    promstore *p = promstore_new(&c, &api);
    sy_sample s = smp("api_latency;endpoint=users;method=get", "", 100, 't');
    assert_int_equal(promstore_add(p, &s, 0), 0);
    s = smp("hits;route=-api-v1;job=web", "route:/api/v1", 1, 'c');
    assert_int_equal(promstore_add(p, &s, 0), 0);
    s = smp("odd;flag;=x;k=;__x=1", "", 1, 'g');
    assert_int_equal(promstore_add(p, &s, 0), 0);
    assert_string_equal(show(p, 0),
                        "# api_latency summary\n"
                        "api_latency endpoint=users method=get quantile=0.5 0.1\n"
                        "api_latency endpoint=users method=get quantile=0.9 0.1\n"
                        "api_latency_sum endpoint=users method=get 0.1\n"
                        "api_latency_count endpoint=users method=get 1\n"
                        "# hits_total counter\nhits_total job=web route=/api/v1 1\n"
                        "# odd gauge\nodd 1\n");
    /* a name tag without a value or a name, or with a reserved name, is
     * left out (and not counted: a DogStatsD tag it copies counted) */
    assert_int_equal(promstore_get_stats(p)->tag_errors, 0);
    promstore_free(p);
}

static void test_histogram(void **st)
{
    (void)st;
    promstore_config c = config();
    c.nbuckets = 2;
    c.buckets[0] = 0.05;
    c.buckets[1] = 0.1;
    promstore *p = promstore_new(&c, &api);
    double v[] = { 20, 70, 300 };
    for (int i = 0; i < 3; i++) {
        sy_sample s = smp("h", "le:1", v[i], 't');
        assert_int_equal(promstore_add(p, &s, 0), 0);
    }
    assert_string_equal(show(p, 0), "# h histogram\nh_bucket le=0.05 1\nh_bucket le=0.1 2\n"
                                    "h_bucket le=+Inf 3\nh_sum 0.39\nh_count 3\n");
    assert_int_equal(promstore_get_stats(p)->tag_errors, 3); /* le is the histogram's, each time */
    promstore_free(p);
}

/* Counting visitor: families, samples, and the sum of the values. */
typedef struct tally {
    size_t families, samples;
    double sum;
} tally;

static void t_family(void *arg, const char *name, const char *type)
{
    (void)name;
    (void)type;
    ((tally *)arg)->families++;
}

static void t_sample(void *arg, const char *name, const char *suffix, const prom_label *l, size_t n,
                     const prom_label *extra, double value, int64_t ts_ms)
{
    (void)ts_ms;
    (void)name;
    (void)suffix;
    (void)l;
    (void)n;
    (void)extra;
    ((tally *)arg)->samples++;
    ((tally *)arg)->sum += value;
}

static tally count(promstore *p, uint64_t now)
{
    tally t = { 0 };
    promstore_visitor v = { t_family, t_sample, 0, 0, 0 }; /* a look only */
    promstore_visit(p, now, &v, &t);
    return t;
}

/* Past the tables' first sizes (256 families, 1024 series) both hash
 * tables grow: every series is still found (an update is not a new
 * series), and expiry unlinks exactly the idle ones. */
static void test_tables_grow(void **st)
{
    (void)st;
    promstore_config c = config();
    c.max_series = 100000;
    promstore *p = promstore_new(&c, &api);
    char name[32], tags[32];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 5000; i++) {
            snprintf(name, sizeof name, "fam%d", i % 700);
            snprintf(tags, sizeof tags, "i:%d", i);
            sy_sample s = smp(name, tags, 1, 'c');
            /* the odd ones are seen again at 900: they outlive the expiry */
            assert_int_equal(promstore_add(p, &s, round && (i & 1) ? 900 : 0), 0);
        }
    }
    assert_int_equal(promstore_get_stats(p)->series, 5000);
    tally t = count(p, 900);
    assert_int_equal(t.families, 700);
    assert_int_equal(t.samples, 5000);
    assert_true(t.sum == 10000); /* each counter got 1 twice */
    assert_int_equal(promstore_expire(p, 1500), 2500);
    t = count(p, 1500);
    assert_int_equal(t.samples, 2500);
    assert_int_equal(t.families, 350); /* only the odd families had odd members */
    for (int i = 1; i < 5000; i += 2) {
        snprintf(name, sizeof name, "fam%d", i % 700);
        snprintf(tags, sizeof tags, "i:%d", i);
        sy_sample s = smp(name, tags, 1, 'c');
        assert_int_equal(promstore_add(p, &s, 1500), 0);
    }
    assert_int_equal(promstore_get_stats(p)->series, 2500);
    assert_true(count(p, 1500).sum == 7500);
    promstore_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_page_unstamped),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_name_labels),
        cmocka_unit_test(test_tables_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
