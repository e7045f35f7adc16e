/*
 * test_flush.c - statsd's process_metrics and graphite naming, against
 * core/output/flush.c (sy_timer_stats, sy_flusher_run) and core/engine/agg.c (the key
 * table, statsd's clear/delete rules, its own counters).
 *
 * Where every expectation comes from:
 *
 *   Part A ports test/process_metrics_tests.js of Etsy statsd 0.9.  Each
 *   vector (the test's data, plus a few more: float sums, rounding, empty
 *   and 0 thresholds, histogram edges) was run through statsd's own
 *   lib/process_metrics.js in node; the files of
 *   tests/unit/data/flush/process_metrics hold its complete output, in its
 *   order, with values printed by JavaScript's String() (shortest round
 *   trip), so strtod() gives back the very double node computed and every
 *   comparison is bit-exact (`==`).  Where a statsd test left
 *   timer_counters unset, it is set to the number of values, as stats.js
 *   always does.  (timers_with_invalid_filter has no C counterpart: the
 *   config loader accepts only a list of strings.)
 *
 *   Part B ports the naming expectations of test/graphite_tests.js,
 *   graphite_legacy_tests.js, graphite_tests_statsprefix.js,
 *   graphite_legacy_tests_statsprefix.js, graphite_tests_statssuffix.js,
 *   graphite_tests_filters.js and graphite_delete_counters_tests.js, end to
 *   end: lines are fed to an sy_agg, snapshots taken, sy_flusher_run
 *   captured.  Each scenario file (tests/unit/data/flush/graphite: the
 *   config, the packets of each flush and the values it must emit) is
 *   statsd's complete Graphite output for
 *   the same packets: stats.js itself was run in node with the scenario's
 *   config (UDP server replaced by a function call, the graphite backend's
 *   socket by a capture), for as many flushes as the table has.  Timing
 *   values (graphiteStats.calculationtime, processing_time) are only
 *   required to exist; statsd.timestamp_lag is flush-time based and the
 *   tests flush one second apart with flushInterval 200, so it is 0.8.
 *   The graphite backend's own graphiteStats.last_flush/last_exception/
 *   flush_time/flush_length are the sink's business (tested here as
 *   "extras" naming only).  Order: names within a type come in hash order
 *   (statsd: insertion order, irrelevant to Graphite), so scenario checks
 *   compare sets, and check statsd's type order (counters, timers, gauges,
 *   sets, then statsd's own values); the per-timer order is checked in
 *   part A.
 *
 *   Part C: switchyard's own limits (timerSampleLimit, maxKeys) and the
 *   batch/arena plumbing.
 *
 * Tests named *_STATSD_DIFF are cases where switchyard once differed from
 * statsd; they check statsd's answer.  Tests named *_DELIB check a
 * documented deliberate difference (switchyard's answer).
 * flush_long_names_stay_in_the_arena is a memory-safety check (a name as
 * long as the config allows must fit the flusher's arena).
 */
#include <ctype.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "engine/agg.h"
#include "engine/router.h"
#include "output/flush.h"
#include "util/log.h"

/* ------------------------------------------------------------------ */
/* Shared helpers                                                      */
/* ------------------------------------------------------------------ */

/* One expected value; value NULL: must exist, any value (timings). */
typedef struct exp_metric {
    const char *name;
    const char *value;
} exp_metric;

static double parse_val(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*end) {
        fprintf(stderr, "bad number in a table: %s\n", s);
        abort();
    }
    return v;
}

static int same_double(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

/* A list of (name, value, kind), in emission order. */
typedef struct got_list {
    char **name;
    double *value;
    uint8_t *kind;
    size_t n, cap;
    size_t batches;
    size_t max_batch;
    int64_t ts;      /* the flush time every batch must carry */
    size_t bad_ts;   /* batches with another timestamp */
    size_t bad_len;  /* names whose name_len disagrees with strlen */
    size_t bad_sinks; /* batches not addressed to every sink */
} got_list;

static void got_add(got_list *g, const char *name, double value, uint8_t kind)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->name = realloc(g->name, g->cap * sizeof *g->name);
        g->value = realloc(g->value, g->cap * sizeof *g->value);
        g->kind = realloc(g->kind, g->cap * sizeof *g->kind);
        assert_non_null(g->name);
        assert_non_null(g->value);
        assert_non_null(g->kind);
    }
    g->name[g->n] = strdup(name);
    assert_non_null(g->name[g->n]);
    g->value[g->n] = value;
    g->kind[g->n] = kind;
    g->n++;
}

static void got_free(got_list *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->name[i]);
    free(g->name);
    free(g->value);
    free(g->kind);
    memset(g, 0, sizeof *g);
}

static long got_find(const got_list *g, const char *name)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->name[i], name) == 0)
            return (long)i;
    return -1;
}

/* The value of a name that must be there once. */
static double got_get(const got_list *g, const char *name)
{
    long i = got_find(g, name);
    if (i < 0)
        fail_msg("missing %s", name);
    return g->value[i];
}

static void stat_cb(void *ctx, const char *stat, double value)
{
    got_add(ctx, stat, value, 0);
}

static void emit_cb(void *ctx, const sy_metric_batch *b, uint64_t sinks)
{
    got_list *g = ctx;
    g->batches++;
    if (sinks != ~0ull) /* no router: every sink */
        g->bad_sinks++;
    if (b->count > g->max_batch)
        g->max_batch = b->count;
    if (b->timestamp != g->ts)
        g->bad_ts++;
    for (size_t i = 0; i < b->count; i++) {
        const sy_metric *m = &b->metrics[i];
        if (strlen(m->name) != m->name_len)
            g->bad_len++;
        got_add(g, m->name, m->value, m->kind);
    }
}

/*
 * Compare what was emitted with a table: every expected name exactly once
 * with the same double, nothing else, and (strict) the same order.  Every
 * difference is printed; the number of differences is returned.
 */
static int compare(const char *label, const got_list *g, const exp_metric *e, int strict)
{
    int bad = 0;
    size_t ne = 0;
    for (; e[ne].name; ne++) {
        long at = got_find(g, e[ne].name);
        if (at < 0) {
            print_message("  %s: missing %s (statsd: %s)\n", label, e[ne].name,
                          e[ne].value ? e[ne].value : "any");
            bad++;
            continue;
        }
        for (size_t j = (size_t)at + 1; j < g->n; j++)
            if (strcmp(g->name[j], e[ne].name) == 0) {
                print_message("  %s: %s emitted twice\n", label, e[ne].name);
                bad++;
            }
        if (e[ne].value && !same_double(g->value[at], parse_val(e[ne].value))) {
            print_message("  %s: %s = %.17g, statsd: %s\n", label, e[ne].name, g->value[at],
                          e[ne].value);
            bad++;
        }
    }
    for (size_t i = 0; i < g->n; i++) {
        size_t k = 0;
        while (k < ne && strcmp(e[k].name, g->name[i]) != 0)
            k++;
        if (k == ne) {
            print_message("  %s: unexpected %s = %.17g\n", label, g->name[i], g->value[i]);
            bad++;
        }
    }
    if (strict && !bad) {
        for (size_t i = 0; i < ne && i < g->n; i++)
            if (strcmp(e[i].name, g->name[i]) != 0) {
                print_message("  %s: order: #%zu is %s, statsd has %s\n", label, i, g->name[i],
                              e[i].name);
                bad++;
                break;
            }
    }
    return bad;
}

/* ------------------------------------------------------------------ */
/* Golden files                                                        */
/* ------------------------------------------------------------------ */

/*
 * The vectors and scenarios are text files under tests/unit/data/flush
 * (the format is in the README there): settings, then the packets of each
 * flush ("< ") and the values it must emit ("> name value").  A new vector
 * is a new file; the tests below name the files that document a statsd
 * test, and the *_every_file tests run whatever else the folders hold.
 * SY_TEST_DATA names the data folder when the test does not run from the
 * top of the tree.
 */
typedef struct golden_flush {
    char **packets;     /* NULL-terminated */
    exp_metric *expect; /* ends with { NULL, NULL } */
    size_t npackets, nexpect;
    int nothing;        /* "nothing": emits no value, on purpose */
} golden_flush;

typedef struct golden {
    char name[256];     /* folder/file, for messages */
    sy_agg_opts ao;
    sy_flush_opts fo;
    char *key;          /* process_metrics: the timer's key, values, count */
    double *v;
    size_t n;
    double count;
    golden_flush *flush;
    size_t nflush;
    void **owned;       /* every other allocation, freed with the golden */
    size_t nowned;
} golden;

static const char *data_dir(void)
{
    const char *d = getenv("SY_TEST_DATA");
    return d && *d ? d : "tests/unit/data";
}

static void *own(golden *g, void *p)
{
    assert_non_null(p);
    g->owned = realloc(g->owned, (g->nowned + 1) * sizeof *g->owned);
    assert_non_null(g->owned);
    g->owned[g->nowned++] = p;
    return p;
}

static void *grow(void *p, size_t n, size_t size)
{
    p = realloc(p, n * size);
    assert_non_null(p);
    return p;
}

/* A copy of s[0..len) with the escapes \\ \n \r \t \xHH undone (packets
 * and names carry tabs, newlines and control bytes; UTF-8 stays raw). */
static char *unescape(golden *g, const char *s, size_t len, const char *where)
{
    char *out = own(g, malloc(len + 1)), *o = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') {
            *o++ = s[i];
            continue;
        }
        if (++i == len)
            fail_msg("%s: a lone backslash at the end", where);
        switch (s[i]) {
        case '\\': *o++ = '\\'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'x': {
            if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                fail_msg("%s: \\x needs two hex digits", where);
            char hex[3] = { s[i + 1], s[i + 2], 0 };
            *o++ = (char)strtol(hex, NULL, 16);
            i += 2;
            break;
        }
        default:
            fail_msg("%s: unknown escape \\%c", where, s[i]);
        }
    }
    *o = 0;
    return out;
}

static double number(const char *s, const char *where)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end)
        fail_msg("%s: '%s' is not a number", where, s);
    return v;
}

/* The space-separated words of s (which it cuts up), in an array of g. */
static size_t words(golden *g, char *s, char ***out)
{
    size_t n = 0;
    char **w = NULL;
    for (char *save = NULL, *t = strtok_r(s, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        w = grow(w, n + 1, sizeof *w);
        w[n++] = t;
    }
    *out = w ? own(g, w) : NULL;
    return n;
}

static double *numbers(golden *g, char *s, size_t *n, const char *where)
{
    char **w;
    *n = words(g, s, &w);
    double *v = own(g, malloc((*n ? *n : 1) * sizeof *v));
    for (size_t i = 0; i < *n; i++)
        v[i] = number(w[i], where);
    return v;
}

static int flag(const char *s, const char *where)
{
    if (strcmp(s, "0") && strcmp(s, "1"))
        fail_msg("%s: '%s' is not 0 or 1", where, s);
    return *s == '1';
}

/* "histogram METRIC BIN...": statsd's bin names are 'bin_' + the bin as
 * written, '.' replaced by '_' ("inf" is INFINITY). */
static void add_histogram(golden *g, char *rest, const char *where)
{
    char **w;
    size_t n = words(g, rest, &w);
    if (n < 1)
        fail_msg("%s: histogram needs a metric", where);
    g->fo.hist = grow(g->fo.hist, g->fo.nhist + 1, sizeof *g->fo.hist);
    sy_histogram *h = &g->fo.hist[g->fo.nhist++];
    h->metric = w[0];
    h->nbins = n - 1;
    h->bins = own(g, malloc(n * sizeof *h->bins));
    h->bin_names = own(g, malloc(n * sizeof *h->bin_names));
    for (size_t i = 1; i < n; i++) {
        h->bins[i - 1] = number(w[i], where);
        char *name = own(g, malloc(strlen(w[i]) + sizeof "histogram.bin_"));
        sprintf(name, "histogram.bin_%s", w[i]);
        for (char *c = name + sizeof "histogram.bin_" - 1; *c; c++)
            if (*c == '.')
                *c = '_';
        h->bin_names[i - 1] = name;
    }
}

static golden_flush *new_flush(golden *g)
{
    g->flush = grow(g->flush, g->nflush + 1, sizeof *g->flush);
    golden_flush *f = &g->flush[g->nflush++];
    memset(f, 0, sizeof *f);
    f->packets = grow(NULL, 1, sizeof *f->packets);
    f->packets[0] = NULL;
    f->expect = grow(NULL, 1, sizeof *f->expect);
    f->expect[0] = (exp_metric){ NULL, NULL };
    return f;
}

/* One setting line; 0 if the word is not a setting. */
static int setting(golden *g, const char *word, char *rest, const char *where)
{
    static const struct {
        const char *word;
        size_t off;
    } strs[] = {
        { "global_prefix", offsetof(sy_flush_opts, global_prefix) },
        { "global_suffix", offsetof(sy_flush_opts, global_suffix) },
        { "prefix_counter", offsetof(sy_flush_opts, prefix_counter) },
        { "prefix_timer", offsetof(sy_flush_opts, prefix_timer) },
        { "prefix_gauge", offsetof(sy_flush_opts, prefix_gauge) },
        { "prefix_set", offsetof(sy_flush_opts, prefix_set) },
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strcmp(word, strs[i].word) == 0) {
            *(char **)((char *)&g->fo + strs[i].off) = rest;
            return 1;
        }
    if (strcmp(word, "prefix_stats") == 0)
        g->ao.prefix_stats = g->fo.prefix_stats = rest;
    else if (strcmp(word, "legacy") == 0)
        g->fo.legacy = flag(rest, where);
    else if (strcmp(word, "flush_counts") == 0)
        g->fo.flush_counts = flag(rest, where);
    else if (strcmp(word, "sanitize") == 0)
        g->ao.sanitize = g->fo.sanitized = flag(rest, where);
    else if (strcmp(word, "delete_counters") == 0)
        g->ao.delete_counters = flag(rest, where);
    else if (strcmp(word, "delete_timers") == 0)
        g->ao.delete_timers = flag(rest, where);
    else if (strcmp(word, "delete_sets") == 0)
        g->ao.delete_sets = flag(rest, where);
    else if (strcmp(word, "delete_gauges") == 0)
        g->ao.delete_gauges = flag(rest, where);
    else if (strcmp(word, "gauges_max_ttl") == 0)
        g->ao.gauges_max_ttl = (int)number(rest, where);
    else if (strcmp(word, "flush_interval") == 0)
        g->ao.flush_interval_ms = g->fo.flush_interval_ms = (uint32_t)number(rest, where);
    else if (strcmp(word, "pct") == 0)
        g->fo.pct = numbers(g, rest, &g->fo.npct, where);
    else if (strcmp(word, "calc") == 0)
        g->fo.ncalc = words(g, rest, &g->fo.calc);
    else if (strcmp(word, "histogram") == 0)
        add_histogram(g, rest, where);
    else if (strcmp(word, "key") == 0)
        g->key = rest;
    else if (strcmp(word, "values") == 0)
        g->v = numbers(g, rest, &g->n, where);
    else if (strcmp(word, "count") == 0)
        g->count = number(rest, where);
    else
        return 0;
    return 1;
}

/*
 * Read DIR/NAME.txt over the given defaults.  Any line it cannot read
 * fails the test with the file and line: a broken data file must not pass
 * as a vector with fewer expectations.
 */
static void golden_load(golden *g, const char *dir, const char *name, const sy_agg_opts *ao,
                        const sy_flush_opts *fo)
{
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s/%s", dir, name);
    g->ao = *ao;
    g->fo = *fo;
    char path[512];
    snprintf(path, sizeof path, "%s/flush/%s/%s.txt", data_dir(), dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (run from the top of the tree, or set SY_TEST_DATA)", path);
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_non_null(m);
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, got, m);
    fclose(f);
    fclose(m);
    own(g, text);
    if (len == 0 || text[len - 1] != '\n')
        fail_msg("%s: empty, or its last line has no newline (cut short?)", path);

    golden_flush *cur = NULL;
    size_t lineno = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = 0;
        lineno++;
        char where[600];
        snprintf(where, sizeof where, "%s:%zu", path, lineno);
        if (line[0] == 0 || line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        char *rest = sp ? sp + 1 : nl;
        if (sp)
            *sp = 0;
        if (strcmp(line, "flush") == 0) {
            cur = new_flush(g);
        } else if (strcmp(line, "<") == 0) {
            if (!cur)
                fail_msg("%s: a packet before the first 'flush'", where);
            cur->packets = grow(cur->packets, cur->npackets + 2, sizeof *cur->packets);
            cur->packets[cur->npackets++] = unescape(g, rest, strlen(rest), where);
            cur->packets[cur->npackets] = NULL;
        } else if (strcmp(line, "nothing") == 0) {
            if (!cur && g->nflush == 0)
                cur = new_flush(g);
            if (!cur || cur->nexpect)
                fail_msg("%s: 'nothing' with expected values", where);
            cur->nothing = 1;
        } else if (strcmp(line, ">") == 0) {
            if (!cur && g->nflush == 0)
                cur = new_flush(g); /* process_metrics: one list */
            if (!cur || cur->nothing)
                fail_msg("%s: an expected value before the first 'flush', or after 'nothing'",
                         where);
            char *vs = strrchr(rest, ' ');
            if (!vs || vs == rest)
                fail_msg("%s: expected '> NAME VALUE'", where);
            const char *value = vs + 1;
            if (strcmp(value, "*") == 0)
                value = NULL; /* timings: must exist, any value */
            else
                (void)number(value, where);
            cur->expect = grow(cur->expect, cur->nexpect + 2, sizeof *cur->expect);
            cur->expect[cur->nexpect].name = unescape(g, rest, (size_t)(vs - rest), where);
            cur->expect[cur->nexpect].value = value;
            cur->nexpect++;
            cur->expect[cur->nexpect] = (exp_metric){ NULL, NULL };
        } else if (!setting(g, line, rest, where)) {
            fail_msg("%s: unknown line '%s'", where, line);
        }
    }
    if (g->nflush == 0)
        fail_msg("%s: no expected values", path);
    for (size_t i = 0; i < g->nflush; i++)
        if (g->flush[i].nexpect == 0 && !g->flush[i].nothing)
            fail_msg("%s: flush %zu has no expected value (write 'nothing' if that is right)",
                     path, i + 1);
}

static void golden_free(golden *g)
{
    for (size_t i = 0; i < g->nflush; i++) {
        free(g->flush[i].packets);
        free(g->flush[i].expect);
    }
    free(g->flush);
    free(g->fo.hist);
    for (size_t i = 0; i < g->nowned; i++)
        free(g->owned[i]);
    free(g->owned);
    memset(g, 0, sizeof *g);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names (without .txt) of every file in a data folder, sorted. */
static size_t golden_names(const char *dir, char ***out)
{
    char path[512];
    snprintf(path, sizeof path, "%s/flush/%s", data_dir(), dir);
    DIR *d = opendir(path);
    if (!d)
        fail_msg("cannot open %s (run from the top of the tree, or set SY_TEST_DATA)", path);
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".txt") != 0)
            continue;
        names = grow(names, n + 1, sizeof *names);
        names[n] = strndup(e->d_name, len - 4);
        assert_non_null(names[n]);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    *out = names;
    return n;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* ------------------------------------------------------------------ */
/* Part A: process_metrics                                             */
/* ------------------------------------------------------------------ */

static sy_timer_data *mk_timer(const double *v, size_t n, double count)
{
    sy_timer_data *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->v = malloc((n ? n : 1) * sizeof *t->v);
    assert_non_null(t->v);
    for (size_t i = 0; i < n; i++) {
        t->v[i] = v[i];
        t->sum += v[i];
        t->sumsq += v[i] * v[i];
        if (i == 0 || v[i] < t->min)
            t->min = v[i];
        if (i == 0 || v[i] > t->max)
            t->max = v[i];
    }
    t->n = t->cap = (uint32_t)n;
    t->seen = n;
    t->count = count;
    return t;
}

static void free_timer(sy_timer_data *t)
{
    if (t) {
        free(t->v);
        free(t);
    }
}

/* A process_metrics vector, data/flush/process_metrics/NAME.txt, over
 * empty options (no thresholds, filters or histograms unless it says). */
static void pm_load(golden *g, const char *name)
{
    sy_agg_opts ao = { 0 };
    sy_flush_opts fo = { 0 };
    golden_load(g, "process_metrics", name, &ao, &fo);
    if (!g->key || g->nflush != 1)
        fail_msg("%s: a process_metrics vector has a key and no 'flush' line", g->name);
}

/* Run one vector through sy_timer_stats (an idle timer is NULL, as a
 * snapshot hands it over) and compare; strict: in statsd's order too. */
static int run_vec(const golden *g, int strict)
{
    sy_timer_data *t = g->n ? mk_timer(g->v, g->n, g->count) : NULL;
    got_list got = { 0 };
    sy_timer_stats(&g->fo, g->key, t, stat_cb, &got);
    int bad = compare(g->name, &got, g->flush[0].expect, strict);
    got_free(&got);
    free_timer(t);
    return bad;
}

/* Run the named vectors (a NULL-terminated list); fail on any difference. */
static void check_vecs(int strict, const char *const *names)
{
    int bad = 0;
    for (; *names; names++) {
        golden g;
        pm_load(&g, *names);
        bad += run_vec(&g, strict);
        golden_free(&g);
    }
    if (bad)
        fail_msg("%d differences from statsd", bad);
}

/* One test per statsd test; a test and its _with_calculated_timer_metrics
 * twin share a function. */
#define PM_TEST(fn, ...)                                           \
    static void fn(void **state)                                   \
    {                                                              \
        (void)state;                                               \
        check_vecs(0, (const char *const[]){ __VA_ARGS__, NULL }); \
    }

static void pm_timers_handle_empty(void **state)
{
    (void)state;
    golden g;
    pm_load(&g, "timers_handle_empty");
    int bad = run_vec(&g, 0);
    /* A timer whose samples were all taken elsewhere (n == 0) is idle too. */
    sy_timer_data *t = mk_timer(NULL, 0, 0);
    got_list got = { 0 };
    sy_timer_stats(&g.fo, "a", t, stat_cb, &got);
    bad += compare("timers_handle_empty (n=0)", &got, g.flush[0].expect, 0);
    got_free(&got);
    free_timer(t);
    golden_free(&g);
    assert_int_equal(bad, 0);
}

PM_TEST(pm_timers_single_time, "timers_single_time")
PM_TEST(pm_timer_single_time_filters, "timer_single_time_with_one_filter",
        "timer_single_time_multiple_filter")

static void pm_timers_multiple_times(void **state)
{
    (void)state;
    check_vecs(0, (const char *const[]){ "timers_multiple_times",
                                         "timers_multiple_times_with_calculated_timer_metrics",
                                         NULL });
    /* The std of 100, 200, 300, bit for bit. */
    golden gv;
    pm_load(&gv, "timers_multiple_times");
    double v[] = { 300, 100, 200 };
    sy_timer_data *t = mk_timer(v, 3, 3);
    got_list g = { 0 };
    sy_timer_stats(&gv.fo, "a", t, stat_cb, &g);
    double std = got_get(&g, "std");
    assert_true(std == 81.64965809277261);
    assert_true(got_get(&g, "mean") == 200);
    assert_true(got_get(&g, "median") == 200);
    assert_true(got_get(&g, "count_ps") == 30);
    got_free(&g);
    free_timer(t);
    golden_free(&gv);
}

PM_TEST(pm_timers_single_time_single_percentile, "timers_single_time_single_percentile",
        "timers_single_time_single_percentile_with_calculated_timer_metrics")
PM_TEST(pm_timers_single_time_multiple_percentiles, "timers_single_time_multiple_percentiles",
        "timers_single_time_multiple_percentiles_with_calculated_timer_metrics")
PM_TEST(pm_timers_multiple_times_single_percentiles, "timers_multiple_times_single_percentiles",
        "timers_multiple_times_single_percentiles_with_calculated_timer_metrics")
PM_TEST(pm_timers_multiple_times_multiple_percentiles, "timers_multiple_times_multiple_percentiles",
        "timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics")
PM_TEST(pm_timers_sampled_times, "timers_sampled_times")
PM_TEST(pm_timers_histogram, "timers_histogram_a", "timers_histogram_abc", "timers_histogram_foo",
        "timers_histogram_barbazfoobar", "timers_histogram_bar_bazfoobar_abc",
        "timers_histogram_xyz")
PM_TEST(pm_timers_histogram_with_calculated_timer_metrics,
        "timers_histogram_with_calculated_timer_metrics_a",
        "timers_histogram_with_calculated_timer_metrics_abc",
        "timers_histogram_with_calculated_timer_metrics_foo",
        "timers_histogram_with_calculated_timer_metrics_barbazfoobar",
        "timers_histogram_with_calculated_timer_metrics_bar_bazfoobar_abc",
        "timers_histogram_with_calculated_timer_metrics_xyz")
PM_TEST(pm_timers_single_time_single_top_percentile, "timers_single_time_single_top_percentile",
        "timers_single_time_single_top_percentile_with_calculated_timer_metrics")

static void pm_timers_multiple_times_single_top_percentile(void **state)
{
    (void)state;
    check_vecs(0, (const char *const[]){
                      "timers_multiple_times_single_top_percentile",
                      "timers_multiple_times_single_top_percentile_with_calculated_timer_metrics",
                      NULL });
    /* Top 20% of eight 10s, 100 and 200 (given unsorted). */
    double v[] = { 200, 10, 10, 10, 100, 10, 10, 10, 10, 10 };
    double pct[] = { -20 };
    sy_flush_opts o = { .flush_interval_ms = 100, .pct = pct, .npct = 1 };
    sy_timer_data *t = mk_timer(v, 10, 10);
    got_list g = { 0 };
    sy_timer_stats(&o, "a", t, stat_cb, &g);
    assert_true(got_get(&g, "count_top20") == 2);
    assert_true(got_get(&g, "mean_top20") == 150);
    assert_true(got_get(&g, "lower_top20") == 100);
    assert_true(got_get(&g, "sum_top20") == 300);
    assert_true(got_get(&g, "sum_squares_top20") == 50000);
    assert_int_equal(got_find(&g, "upper_top20"), -1);
    got_free(&g);
    free_timer(t);
}

PM_TEST(pm_timers_multiple_times_even, "timers_multiple_times_even",
        "timers_multiple_times_even_with_calculated_timer_metrics")

/* More vectors computed by statsd's process_metrics: float sums over 40
 * values and ten thresholds, 0 and 100 thresholds, rounding of the
 * threshold counts (Math.round, |pct| / 100 * count in that order),
 * filters mixed with negative thresholds and histograms, histogram bin
 * edges (exclusive upper bounds, values past the last bin dropped). */
PM_TEST(pm_float_sums_bit_exact, "float40")
PM_TEST(pm_zero_threshold, "pct0_one", "pct0_three")
PM_TEST(pm_threshold_rounding, "round_half", "round_order")
PM_TEST(pm_filters_mixed, "calc_mix", "calc_idle")
PM_TEST(pm_histogram_edges, "hist_edge", "hist_order")
PM_TEST(pm_sampled_rates, "rates")

/* Sums are taken over the sorted values, left to right: 1 + 1 + 1e16 is
 * 1e16 + 2, while 1e16 + 1 + 1 (arrival order) would be 1e16. */
static int cmp_num(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The flush sorts a timer's values with a radix sort on their bits from
 * 256 values on: the order must be qsort's numeric order for every kind of
 * double a sort can meet (negative, -0, subnormal, huge, repeated), at the
 * sizes around the switch-over and well past it, and the statistics the
 * same as from values given already sorted. */
static void pm_radix_sort_is_numeric_order(void **state)
{
    (void)state;
    static const size_t sizes[] = { 255, 256, 257, 1000, 65537 };
    double pct[] = { 90, -10, 50 };
    sy_flush_opts o = { .flush_interval_ms = 1000, .pct = pct, .npct = 3 };
    uint64_t x = 88172645463325252ull;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        for (int kind = 0; kind < 4; kind++) {
            size_t n = sizes[si];
            double *v = malloc(n * sizeof *v), *want = malloc(n * sizeof *v);
            assert_non_null(v);
            assert_non_null(want);
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                double d;
                switch (kind) {
                case 0: /* milliseconds, many repeats: what timers carry */
                    d = (double)(x % 1000);
                    break;
                case 1: /* fractions of both signs, and zeros of both signs */
                    d = ((double)(x % 2000001) - 1000000.0) / 1024.0;
                    if (x % 97 == 0)
                        d = (x & 1) ? -0.0 : 0.0;
                    break;
                case 2: { /* any finite bit pattern: subnormals, huge, tiny */
                    uint64_t b = x;
                    if (((b >> 52) & 0x7ff) == 0x7ff)
                        b &= ~(1ull << 62);
                    memcpy(&d, &b, sizeof d);
                    break;
                }
                default: /* already sorted, descending */
                    d = (double)(n - i) * 0.5;
                    break;
                }
                v[i] = want[i] = d;
            }
            qsort(want, n, sizeof *want, cmp_num);
            sy_timer_data *t = mk_timer(v, n, (double)n);
            sy_timer_data *ts = mk_timer(want, n, (double)n);
            got_list g = { 0 }, gs = { 0 };
            sy_timer_stats(&o, "a", t, stat_cb, &g);
            sy_timer_stats(&o, "a", ts, stat_cb, &gs);
            for (size_t i = 0; i < n; i++)
                if (!(t->v[i] == want[i]))
                    fail_msg("size %zu kind %d: value %zu is %.17g, qsort has %.17g", n, kind, i,
                             t->v[i], want[i]);
            assert_int_equal(g.n, gs.n);
            for (size_t i = 0; i < g.n; i++) {
                assert_string_equal(g.name[i], gs.name[i]);
                /* zeros of either sign format alike ("0") */
                if (!same_double(g.value[i], gs.value[i]))
                    fail_msg("size %zu kind %d: %s is %.17g, from sorted values %.17g", n, kind,
                             g.name[i], g.value[i], gs.value[i]);
            }
            got_free(&g);
            got_free(&gs);
            free_timer(t);
            free_timer(ts);
            free(v);
            free(want);
        }
    }
}

static void pm_sums_in_sorted_order(void **state)
{
    (void)state;
    check_vecs(0, (const char *const[]){ "sorted_order", NULL });
    double v[] = { 1e16, 1, 1 };
    double pct[] = { 90 };
    sy_flush_opts o = { .flush_interval_ms = 1000, .pct = pct, .npct = 1 };
    sy_timer_data *t = mk_timer(v, 3, 3);
    got_list g = { 0 };
    sy_timer_stats(&o, "a", t, stat_cb, &g);
    assert_true(got_get(&g, "sum") == 10000000000000002.0);
    assert_true(got_get(&g, "sum_90") == 10000000000000002.0);
    assert_true(got_get(&g, "mean") == 10000000000000002.0 / 3);
    assert_true(got_get(&g, "median") == 1);
    got_free(&g);
    free_timer(t);
}

/* statsd's order of a timer's values: per threshold count, mean,
 * upper|lower, sum, sum_squares; then std, upper, lower, count, count_ps,
 * sum, sum_squares, mean, median; then the histogram bins.  Every file of
 * data/flush/process_metrics, the ones no test above names included. */
static void pm_every_file_in_statsd_order(void **state)
{
    (void)state;
    char **names;
    size_t n = golden_names("process_metrics", &names);
    assert_true(n >= 46);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        golden g;
        pm_load(&g, names[i]);
        bad += run_vec(&g, 1);
        golden_free(&g);
    }
    free_names(names, n);
    if (bad)
        fail_msg("%d differences from statsd's order", bad);
}

/* statsd: current_timer_data["count"] = current_timer_data["count_ps"] = 0
 * assigns count_ps first, so an idle timer's two values come out as
 * count_ps, count. */
static void pm_idle_timer_order_STATSD_DIFF(void **state)
{
    (void)state;
    check_vecs(1, (const char *const[]){ "timers_handle_empty", NULL });
}

/* percentThreshold [90, 90]: statsd's values live in an object, so each
 * name is emitted once, not once per repetition. */
PM_TEST(pm_duplicate_threshold_STATSD_DIFF, "pct_dup")

/* Documented in flush.c: a negative threshold covering every value reads
 * cumulativeValues[-1] in statsd (mean/sum/sum_squares NaN); switchyard
 * emits the sums of all values (the file holds switchyard's answer). */
static void pm_negative_threshold_all_values_DELIB(void **state)
{
    (void)state;
    check_vecs(1, (const char *const[]){ "negative_threshold_all_values", NULL });
}



/* ------------------------------------------------------------------ */
/* Part B: end to end, lines in, Graphite names out                    */
/* ------------------------------------------------------------------ */

typedef struct rig {
    sy_agg_opts ao;
    sy_flush_opts fo;
    double pct[8];
    sy_agg *a;
    sy_flusher *f;
    int64_t ts;
    sy_flush_result res;
} rig;

/* statsd 0.9's defaults, with flushInterval 200 as in its tests and
 * percentThreshold 90 as in their configs. */
static void rig_init(rig *r)
{
    memset(r, 0, sizeof *r);
    r->ao.sanitize = 1;
    r->ao.gauges_max_ttl = 1;
    r->ao.prefix_stats = "statsd";
    r->ao.flush_interval_ms = 200;
    r->fo.flush_interval_ms = 200;
    r->pct[0] = 90;
    r->fo.pct = r->pct;
    r->fo.npct = 1;
    r->fo.flush_counts = 1;
    r->fo.sanitized = 1;
    r->fo.legacy = 1;
    r->fo.global_prefix = "stats";
    r->fo.prefix_counter = "counters";
    r->fo.prefix_timer = "timers";
    r->fo.prefix_gauge = "gauges";
    r->fo.prefix_set = "sets";
    r->fo.global_suffix = NULL;
    r->fo.prefix_stats = "statsd";
    r->ts = 1700000000;
}

static void rig_prefix_stats(rig *r, char *ps)
{
    r->ao.prefix_stats = ps;
    r->fo.prefix_stats = ps;
}

static void rig_interval(rig *r, uint32_t ms)
{
    r->ao.flush_interval_ms = ms;
    r->fo.flush_interval_ms = ms;
}

static void rig_start(rig *r)
{
    r->a = sy_agg_new(&r->ao);
    assert_non_null(r->a);
    r->f = sy_flusher_new(&r->fo);
    assert_non_null(r->f);
}

static void rig_stop(rig *r)
{
    sy_flusher_free(r->f);
    sy_agg_free(r->a);
    r->f = NULL;
    r->a = NULL;
}

/* One datagram, as statsd's handlePacket receives it. */
static void rig_feed(rig *r, const char *pkt)
{
    sy_origin o = { 0 };
    sy_agg_feed(r->a, pkt, strlen(pkt), &o);
}

/* Flush into g (emptied first); the flushes are one second apart. */
static void rig_flush_extra(rig *r, got_list *g, const sy_extra_metric *extra, size_t nextra)
{
    got_free(g);
    g->ts = r->ts;
    sy_snapshot *s = sy_agg_snapshot(r->a, r->ts);
    assert_non_null(s);
    sy_flusher_run(r->f, s, extra, nextra, emit_cb, g, &r->res);
    sy_snapshot_free(s);
    r->ts += 1;
}

static void rig_flush(rig *r, got_list *g)
{
    rig_flush_extra(r, g, NULL, 0);
}

/* The plumbing every flush must get right besides the names. */
static int check_plumbing(const char *label, const got_list *g, const sy_flush_result *res,
                          size_t nextra)
{
    int bad = 0;
    if (g->bad_ts) {
        print_message("  %s: %zu batches with a wrong timestamp\n", label, g->bad_ts);
        bad++;
    }
    if (g->bad_sinks) {
        print_message("  %s: %zu batches not sent to every sink\n", label, g->bad_sinks);
        bad++;
    }
    if (g->bad_len) {
        print_message("  %s: %zu names with a wrong name_len\n", label, g->bad_len);
        bad++;
    }
    if (res->metrics != g->n) {
        print_message("  %s: result says %zu metrics, %zu emitted\n", label, res->metrics, g->n);
        bad++;
    }
    /* switchyard's own values (the extras) lead the flush; after them,
     * statsd's type order: counters, timers, gauges, sets, its own. */
    for (size_t i = 0; i < nextra && i < g->n; i++)
        if (g->kind[i] != SY_KIND_INTERNAL) {
            print_message("  %s: #%zu is %s, expected one of switchyard's own values\n", label, i,
                          g->name[i]);
            bad++;
            break;
        }
    for (size_t i = nextra + 1; i < g->n; i++)
        if (g->kind[i] < g->kind[i - 1]) {
            print_message("  %s: %s (kind %d) after %s (kind %d)\n", label, g->name[i],
                          g->kind[i], g->name[i - 1], g->kind[i - 1]);
            bad++;
            break;
        }
    /* numStats, calculationtime, processing_time close the flush, in that
     * order. */
    if (g->n < 3 + nextra) {
        print_message("  %s: only %zu values\n", label, g->n);
        return bad + 1;
    }
    size_t k = g->n - 3;
    const char *want[] = { "numStats", "graphiteStats.calculationtime", "processing_time" };
    for (int j = 0; j < 3; j++) {
        if (!strstr(g->name[k + j], want[j]) || g->kind[k + j] != SY_KIND_INTERNAL) {
            print_message("  %s: #%zu is %s, expected statsd's %s\n", label, k + j, g->name[k + j],
                          want[j]);
            bad++;
        }
    }
    long ns = (long)k;
    if (g->value[ns] != (double)res->num_stats) {
        print_message("  %s: numStats %.17g, result %zu\n", label, g->value[ns], res->num_stats);
        bad++;
    }
    return bad;
}

/*
 * A scenario, data/flush/graphite/NAME.txt over statsd's defaults
 * (rig_init), end to end: each flush's packets fed, the flush compared
 * with its expected values as a set, statsd's type order checked.
 */
static int run_scenario(const char *name)
{
    rig r;
    golden g;
    rig_init(&r);
    golden_load(&g, "graphite", name, &r.ao, &r.fo);
    r.ao = g.ao;
    r.fo = g.fo;
    int bad = 0;
    rig_start(&r);
    got_list got = { 0 };
    for (size_t i = 0; i < g.nflush; i++) {
        const golden_flush *s = &g.flush[i];
        for (char *const *p = s->packets; *p; p++)
            rig_feed(&r, *p);
        rig_flush(&r, &got);
        char label[300];
        snprintf(label, sizeof label, "%s flush %zu", g.name, i + 1);
        int b = compare(label, &got, s->expect, 0);
        /* consecutive expected names of different types keep their order */
        for (size_t j = 1; !b && s->expect[j].name; j++) {
            long x = got_find(&got, s->expect[j - 1].name), y = got_find(&got, s->expect[j].name);
            if (got.kind[x] > got.kind[y]) {
                print_message("  %s: kind of %s > kind of %s\n", label, got.name[x], got.name[y]);
                b++;
            }
        }
        b += check_plumbing(label, &got, &r.res, 0);
        bad += b;
    }
    got_free(&got);
    rig_stop(&r);
    golden_free(&g);
    return bad;
}

/* One test per statsd test: its scenario files, each run end to end. */
#define SCEN_TEST(fn, ...)                                            \
    static void fn(void **state)                                      \
    {                                                                 \
        (void)state;                                                  \
        const char *const files_[] = { __VA_ARGS__ };                 \
        int bad_ = 0;                                                 \
        for (size_t i_ = 0; i_ < sizeof files_ / sizeof *files_; i_++) \
            bad_ += run_scenario(files_[i_]);                         \
        assert_int_equal(bad_, 0);                                    \
    }

/* ---- graphite_tests.js / graphite_legacy_tests.js ---------------- */

/* Legacy namespace (statsd's default): stats.X and stats_counts.X,
 * stats.timers.X.*, stats.gauges.X, stats.sets.X.count, statsd.numStats,
 * stats.statsd.*; a fresh server flushes its three counters (numStats 3),
 * and statsd.timestamp_lag joins from the second flush on; the legacy
 * namespace ignores globalPrefix and the type prefixes. */
SCEN_TEST(e2e_legacy_namespace, "legacy", "fresh", "legacy_ignores_prefixes")

/* graphite.legacyNamespace = false: stats.counters.X.rate/.count, tags
 * after the stat, stats.statsd.numStats. */
SCEN_TEST(e2e_new_namespace, "new", "fresh_new")

/* globalPrefix and the four type prefixes, set, and set to "" (an empty
 * part is left out of the name, not joined as ".."). */
SCEN_TEST(e2e_custom_prefixes, "custom", "empty", "emptygp")

/* graphite_tests_statssuffix.js: globalSuffix ends the name, before the
 * ;tags, in both namespaces (statsd.numStats.sfx in the legacy one). */
SCEN_TEST(e2e_global_suffix, "suffix_new", "suffix_legacy")

/* flush_counts = false: only the rates (stats.X / .rate). */
SCEN_TEST(e2e_flush_counts_false, "nocounts_legacy", "nocounts_new")

/* graphite_tests_statsprefix.js and graphite_legacy_tests_statsprefix.js:
 * prefixStats renames statsd's counters, numStats, processing_time and
 * timestamp_lag; a bad line counts in <prefix>.bad_lines_seen.  In the
 * legacy namespace an empty prefixStats gives statsd's "..". */
SCEN_TEST(e2e_prefix_stats, "prefix_new", "prefix_legacy", "prefix_empty_legacy")

/* prefixStats = "" in the new namespace: statsd's
 * format(globalNamespace, prefixStats, 'numStats') joins
 * ["stats", "", "numStats"] with dots: "stats..numStats",
 * "stats..graphiteStats.calculationtime", "stats..processing_time". */
SCEN_TEST(e2e_prefix_stats_empty_new_STATSD_DIFF, "prefix_empty_new")

/* Tags (graphite ;k=v and DogStatsD |#k:v) stay at the very end, after
 * the stat name and the suffix, for every type; histogram configs match
 * the key with its tags, as statsd's key.indexOf(metric) does. */
SCEN_TEST(e2e_tags_at_the_end, "tags_all", "tags_legacy")

/* keyNameSanitize = false: keys are kept as sent, and the graphite backend
 * sanitises the name part (not the tags) when it formats the line. */
SCEN_TEST(e2e_key_name_sanitize_false, "nosan_legacy", "nosan_new")

/* keyNameSanitize = false, graphite's sk(): key.replace(/\s+/g, '_') runs
 * on the UTF-8-decoded string, and JavaScript's \s includes U+00A0,
 * U+2028, U+3000, U+FEFF...  statsd's names (node, stats.js + graphite
 * backend): a<U+00A0>b -> a_b, c<U+2028>d -> c_d, e<U+FEFF>f -> e_f,
 * g<U+3000>h -> g_h, "k <U+00A0> l" -> k_l, "m\t<U+00A0>n;t=u v" ->
 * m_n;t=u v, and i<0x1F>j -> ij (not \s). */
SCEN_TEST(e2e_sanitize_false_unicode_space_STATSD_DIFF, "nosan_unicode_space")

/* ---- graphite_delete_counters_tests.js and statsd's clear_metrics ---- */

/* deleteIdleStats with gaugesMaxTTL 2: counters deleted after a flush
 * unless the key contains packets_received, metrics_received or
 * bad_lines_seen (a substring test: user keys too); timers and sets
 * deleted; a gauge set once ("+1" on a missing gauge sets it) flushed
 * exactly twice; numStats follows. */
SCEN_TEST(e2e_delete_idle_stats, "delete_idle")

/* deleteGauges: with gaugesMaxTTL 1 a gauge is flushed once; a delta on a
 * deleted gauge sets it; with TTL 2 each update restarts the TTL; statsd
 * forces gaugesMaxTTL to 1 unless it is an integer above 1 (delete_ttl0). */
SCEN_TEST(e2e_delete_gauges_ttl, "delete_ttl1", "ttl2_refresh", "delete_ttl0")

/* deleteCounters + deleteSets alone: idle timers still flush count and
 * count_ps (0), gauges persist. */
SCEN_TEST(e2e_delete_counters_and_sets, "del_cs")

/* deleteTimers alone: a timer is gone the flush after it was idle. */
SCEN_TEST(e2e_delete_timers, "del_timers")

/* Nothing deleted: counters reset to 0 and still flushed, idle timers
 * flush count and count_ps only, idle sets count 0, gauges persist; gauge
 * deltas apply to the current value (and a delta on a 0 gauge sets it, the
 * same number); sample rates scale counters and timer counts. */
SCEN_TEST(e2e_keep_idle_and_gauge_deltas, "keep_idle")

/* statsd's three counters exist from the start and count: packets (each
 * sy_agg_feed call, empty ones too), metrics (each non-empty line) and bad
 * lines (each bad value of a line, or the line when it has no value). */
static void e2e_statsd_internal_counters(void **state)
{
    (void)state;
    rig r;
    assert_int_equal(run_scenario("counts"), 0);

    golden counts;
    rig_init(&r);
    golden_load(&counts, "graphite", "counts", &r.ao, &r.fo);
    rig_start(&r);
    for (char *const *p = counts.flush[0].packets; *p; p++)
        rig_feed(&r, *p);
    golden_free(&counts);
    const sy_agg_stats *st = sy_agg_get_stats(r.a);
    assert_int_equal(st->packets, 5);
    assert_int_equal(st->lines, 11);
    assert_int_equal(st->bad_lines, 4);
    assert_int_equal(st->samples, 11);
    /* sy_agg_line is one line: no packet counted. */
    sy_agg_line(r.a, "x:1|c", 5, NULL);
    sy_agg_line(r.a, "", 0, NULL);
    assert_int_equal(st->packets, 5);
    assert_int_equal(st->lines, 12);
    got_list g = { 0 };
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats_counts.statsd.packets_received") == 5);
    assert_true(got_get(&g, "stats_counts.statsd.metrics_received") == 12);
    assert_true(got_get(&g, "stats_counts.statsd.bad_lines_seen") == 4);
    assert_true(got_get(&g, "stats_counts.x") == 1);
    got_free(&g);
    rig_stop(&r);
}

/* A blank line of a CRLF stream ("\r" alone): statsd counts it in
 * metrics_received and, as a line without a value, in bad_lines_seen
 * (node: "a:1|c\r\n\r\n" gives metrics_received 2, bad_lines_seen 1).
 * parse.c documents that a trailing CR is ignored, which leaves an empty
 * line, and empty lines are not metrics (parse.h): 1 and 0. */
static void e2e_crlf_blank_line_DELIB(void **state)
{
    (void)state;
    rig r;
    got_list g = { 0 };
    rig_init(&r);
    rig_start(&r);
    rig_feed(&r, "a:1|c\r\n\r\n");
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats_counts.a") == 1);
    assert_true(got_get(&g, "stats_counts.statsd.metrics_received") == 1);
    assert_true(got_get(&g, "stats_counts.statsd.bad_lines_seen") == 0);
    got_free(&g);
    rig_stop(&r);
}

/* graphite_tests_filters.js: calculatedTimerMetrics ['count_ps', 'count',
 * 'count_percent', 'mean_percent', 'histogram']. */
SCEN_TEST(e2e_calculated_timer_metrics, "filters")

/* process_metrics_tests' histogram config end to end, with thresholds 90,
 * -20 and 99.9 (names count_top20, count_99_9). */
SCEN_TEST(e2e_histograms_and_thresholds, "hist")

/* Every file of data/flush/graphite, the ones no test above names
 * included. */
static void e2e_every_file(void **state)
{
    (void)state;
    char **names;
    size_t n = golden_names("graphite", &names);
    assert_true(n >= 31);
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += run_scenario(names[i]);
    free_names(names, n);
    assert_int_equal(bad, 0);
}

/* process_metrics_tests: counters_has_stats_count (interval 1000: count 2,
 * rate 2) and counters_has_correct_rate (interval 100: rate 20). */
static void pm_counters_has_stats_count_and_rate(void **state)
{
    (void)state;
    rig r;
    got_list g = { 0 };
    rig_init(&r);
    rig_interval(&r, 1000);
    rig_start(&r);
    rig_feed(&r, "a:2|c");
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats_counts.a") == 2);
    assert_true(got_get(&g, "stats.a") == 2);
    rig_stop(&r);
    rig_init(&r);
    rig_interval(&r, 100);
    rig_start(&r);
    rig_feed(&r, "a:2|c");
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats_counts.a") == 2);
    assert_true(got_get(&g, "stats.a") == 20);
    /* timers_handle_empty: a timer gives no counter rate */
    rig_feed(&r, "t:1|ms");
    rig_flush(&r, &g);
    assert_int_equal(got_find(&g, "stats.t"), -1);
    got_free(&g);
    rig_stop(&r);
}

/* process_metrics_tests: statsd_metrics_exist (processing_time). */
static void pm_statsd_metrics_exist(void **state)
{
    (void)state;
    rig r;
    got_list g = { 0 };
    rig_init(&r);
    rig_start(&r);
    rig_flush(&r, &g);
    long i = got_find(&g, "stats.statsd.processing_time");
    assert_true(i >= 0);
    assert_true(g.value[i] >= 0);
    assert_true(g.value[i] == r.res.processing_ms);
    got_free(&g);
    rig_stop(&r);
}

/* statsd.timestamp_lag = now - previous flush - flushInterval / 1000, from
 * the second flush on; a gauge, never deleted (even with deleteGauges),
 * counted in numStats. */
static void e2e_timestamp_lag(void **state)
{
    (void)state;
    rig r;
    got_list g = { 0 };
    rig_init(&r);
    rig_interval(&r, 10000);
    r.ao.delete_gauges = 1;
    rig_start(&r);
    sy_snapshot *s;
    g.ts = 1000;
    s = sy_agg_snapshot(r.a, 1000);
    sy_flusher_run(r.f, s, NULL, 0, emit_cb, &g, &r.res);
    sy_snapshot_free(s);
    assert_int_equal(got_find(&g, "stats.gauges.statsd.timestamp_lag"), -1);
    assert_true(got_get(&g, "statsd.numStats") == 3);
    const int64_t when[] = { 1010, 1022, 1031, 1031 };
    const double lag[] = { 0, 2, -1, -10 };
    for (int i = 0; i < 4; i++) {
        got_free(&g);
        g.ts = when[i];
        s = sy_agg_snapshot(r.a, when[i]);
        sy_flusher_run(r.f, s, NULL, 0, emit_cb, &g, &r.res);
        sy_snapshot_free(s);
        assert_true(got_get(&g, "stats.gauges.statsd.timestamp_lag") == lag[i]);
        assert_true(got_get(&g, "statsd.numStats") == 4);
        assert_int_equal(g.kind[got_find(&g, "stats.gauges.statsd.timestamp_lag")], SY_KIND_GAUGE);
    }
    got_free(&g);
    rig_stop(&r);
}

/* Gauge rules of handlePacket one by one. */
static void e2e_gauge_deltas(void **state)
{
    (void)state;
    rig r;
    got_list g = { 0 };
    rig_init(&r);
    rig_start(&r);
    rig_feed(&r, "g:-5|g");               /* delta on a missing gauge sets it */
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats.gauges.g") == -5);
    rig_feed(&r, "g:+3|g\ng:+0.5|g");     /* deltas add */
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats.gauges.g") == -1.5);
    rig_feed(&r, "g:7|g");                /* a plain value sets */
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats.gauges.g") == 7);
    rig_flush(&r, &g);                    /* persists */
    assert_true(got_get(&g, "stats.gauges.g") == 7);
    rig_feed(&r, "g:-7|g\ng:-2|g\ng:0|g\ng:-3|g:+1|g");
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats.gauges.g") == -2);
    /* a sample rate changes nothing for gauges and sets */
    rig_feed(&r, "h:5|g|@0.5\ns:a|s|@0.1\ns:b|s|@0.1");
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats.gauges.h") == 5);
    assert_true(got_get(&g, "stats.sets.s.count") == 2);
    /* a gauge and a counter of the same name are two metrics */
    rig_feed(&r, "g:4|c");
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats.gauges.g") == -2);
    assert_true(got_get(&g, "stats_counts.g") == 4);
    got_free(&g);
    rig_stop(&r);
}

/* statsd's own values and switchyard's extras under the stats namespace:
 * the graphite backend's post_stats names them
 * globalNamespace.concat(prefixStats).join('.') + '.graphiteStats.X' +
 * globalSuffix. */
static void e2e_extras_naming(void **state)
{
    (void)state;
    static const sy_extra_metric extra[] = {
        { "graphiteStats.last_exception", 0 },
        { "graphiteStats.flush_length", 1234 },
        { "switchyard.listener.udp.dropped", 7 },
    };
    struct {
        int legacy;
        char *gp, *sfx, *ps;
        const char *names[3];
    } cases[] = {
        { 1, "stats", NULL, "statsd",
          { "stats.statsd.graphiteStats.last_exception", "stats.statsd.graphiteStats.flush_length",
            "stats.statsd.switchyard.listener.udp.dropped" } },
        { 0, "stats", NULL, "statsd",
          { "stats.statsd.graphiteStats.last_exception", "stats.statsd.graphiteStats.flush_length",
            "stats.statsd.switchyard.listener.udp.dropped" } },
        { 0, "pfx", "sfx", "ps",
          { "pfx.ps.graphiteStats.last_exception.sfx", "pfx.ps.graphiteStats.flush_length.sfx",
            "pfx.ps.switchyard.listener.udp.dropped.sfx" } },
        { 0, "", NULL, "statsd",
          { "statsd.graphiteStats.last_exception", "statsd.graphiteStats.flush_length",
            "statsd.switchyard.listener.udp.dropped" } },
        { 1, "stats", "s", "sp",
          { "stats.sp.graphiteStats.last_exception.s", "stats.sp.graphiteStats.flush_length.s",
            "stats.sp.switchyard.listener.udp.dropped.s" } },
    };
    int bad = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rig r;
        got_list g = { 0 };
        rig_init(&r);
        r.fo.legacy = cases[c].legacy;
        r.fo.global_prefix = cases[c].gp;
        r.fo.global_suffix = cases[c].sfx;
        rig_prefix_stats(&r, cases[c].ps);
        rig_start(&r);
        rig_flush_extra(&r, &g, extra, 3);
        for (int i = 0; i < 3; i++) {
            size_t at = (size_t)i; /* switchyard's own values lead the flush */
            if (strcmp(g.name[at], cases[c].names[i]) != 0 || g.value[at] != extra[i].value ||
                g.kind[at] != SY_KIND_INTERNAL) {
                print_message("  case %zu: #%zu is %s = %g, expected %s\n", c, at, g.name[at],
                              g.value[at], cases[c].names[i]);
                bad++;
            }
        }
        char label[32];
        snprintf(label, sizeof label, "extras case %zu", c);
        bad += check_plumbing(label, &g, &r.res, 3);
        got_free(&g);
        rig_stop(&r);
    }
    assert_int_equal(bad, 0);
}

/* Each value's kind, for sinks that store kinds apart. */
static void e2e_kinds(void **state)
{
    (void)state;
    rig r;
    golden legacy;
    got_list g = { 0 };
    rig_init(&r);
    golden_load(&legacy, "graphite", "legacy", &r.ao, &r.fo);
    rig_start(&r);
    for (char *const *p = legacy.flush[0].packets; *p; p++)
        rig_feed(&r, *p);
    golden_free(&legacy);
    rig_flush(&r, &g);
    rig_flush(&r, &g); /* with timestamp_lag */
    int bad = 0;
    for (size_t i = 0; i < g.n; i++) {
        const char *n = g.name[i];
        int want = !strncmp(n, "stats.timers.", 13) ? SY_KIND_TIMER
                 : !strncmp(n, "stats.gauges.", 13) ? SY_KIND_GAUGE
                 : !strncmp(n, "stats.sets.", 11) ? SY_KIND_SET
                 : (!strcmp(n, "statsd.numStats") || !strncmp(n, "stats.statsd.graphiteStats.", 27) ||
                    !strcmp(n, "stats.statsd.processing_time")) ? SY_KIND_INTERNAL
                 : SY_KIND_COUNTER;
        if (g.kind[i] != want) {
            print_message("  %s: kind %d, expected %d\n", n, g.kind[i], want);
            bad++;
        }
    }
    got_free(&g);
    rig_stop(&r);
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------ */
/* Part C: switchyard's limits and plumbing                            */
/* ------------------------------------------------------------------ */

static void feed_sequence(rig *r, const char *key, int from, int to)
{
    char buf[4096];
    size_t n = 0;
    for (int i = from; i <= to; i++) {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s:%d|ms\n", key, i);
        if (n > sizeof buf - 64 || i == to) {
            sy_origin o = { 0 };
            sy_agg_feed(r->a, buf, n, &o);
            n = 0;
        }
    }
}

/* timerSampleLimit 100 and 10,000 samples: the reservoir keeps 100, count,
 * sum, sum of squares, upper and lower stay exact (statsd's own values for
 * 1..10000), std comes from the moments, the rest are drawn from the
 * reservoir; the next interval starts a fresh timer. */
static void agg_timer_sample_limit(void **state)
{
    (void)state;
    rig r;
    got_list g = { 0 };
    rig_init(&r);
    r.ao.timer_sample_limit = 100;
    rig_start(&r);
    feed_sequence(&r, "r", 1, 10000);
    const sy_agg_stats *st = sy_agg_get_stats(r.a);
    assert_int_equal(st->samples, 10000);
    assert_int_equal(st->timer_samples_dropped, 9900);

    sy_snapshot *s = sy_agg_snapshot(r.a, r.ts);
    const sy_timer_data *t = NULL;
    for (size_t i = 0; i < s->n; i++)
        if (s->items[i].type == SY_T_TIMER && !strcmp(s->items[i].key, "r"))
            t = s->items[i].timer;
    assert_non_null(t);
    assert_int_equal(t->n, 100);
    assert_int_equal(t->seen, 10000);
    for (uint32_t i = 0; i < t->n; i++)
        assert_true(t->v[i] >= 1 && t->v[i] <= 10000 && t->v[i] == floor(t->v[i]));
    g.ts = r.ts;
    sy_flusher_run(r.f, s, NULL, 0, emit_cb, &g, &r.res);
    sy_snapshot_free(s);
    r.ts++;
    assert_true(got_get(&g, "stats.timers.r.count") == 10000);
    assert_true(got_get(&g, "stats.timers.r.count_ps") == 50000);
    assert_true(got_get(&g, "stats.timers.r.sum") == 50005000);
    assert_true(got_get(&g, "stats.timers.r.sum_squares") == 333383335000);
    assert_true(got_get(&g, "stats.timers.r.upper") == 10000);
    assert_true(got_get(&g, "stats.timers.r.lower") == 1);
    assert_true(got_get(&g, "stats.timers.r.mean") == 5000.5);
    double std = got_get(&g, "stats.timers.r.std");
    assert_true(fabs(std - 2886.751331514372) < 1e-9 * 2886.75);
    double med = got_get(&g, "stats.timers.r.median");
    assert_true(med >= 1 && med <= 10000);
    double u90 = got_get(&g, "stats.timers.r.upper_90");
    assert_true(u90 >= 1 && u90 <= 10000);

    /* idle, then 50 samples under the limit: statsd's exact values again */
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats.timers.r.count") == 0);
    assert_int_equal(got_find(&g, "stats.timers.r.sum"), -1);
    feed_sequence(&r, "r", 1, 50);
    rig_flush(&r, &g);
    static const struct { const char *n; double v; } want[] = {
        { "count_90", 45 }, { "mean_90", 23 }, { "upper_90", 45 }, { "sum_90", 1035 },
        { "sum_squares_90", 31395 }, { "std", 14.430869689661812 }, { "upper", 50 },
        { "lower", 1 }, { "count", 50 }, { "count_ps", 250 }, { "sum", 1275 },
        { "sum_squares", 42925 }, { "mean", 25.5 }, { "median", 25.5 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "stats.timers.r.%s", want[i].n);
        assert_true(got_get(&g, name) == want[i].v);
    }
    assert_int_equal(st->timer_samples_dropped, 9900);
    got_free(&g);
    rig_stop(&r);
}

/* Past timerSampleLimit the thresholds come from the reservoir, but the
 * count is taken over every sample: with limit 100 and the 10,000 samples
 * 1..10000, count_90 is round(0.9 * 10000) = 9000 as in statsd; sum_90 and
 * sum_squares_90 are the reservoir's scaled to every sample (estimates;
 * statsd: 40504500 and 243040501500). */
static void agg_timer_sample_limit_threshold_count_STATSD_DIFF(void **state)
{
    (void)state;
    rig r;
    got_list g = { 0 };
    rig_init(&r);
    r.ao.timer_sample_limit = 100;
    rig_start(&r);
    feed_sequence(&r, "r", 1, 10000);
    rig_flush(&r, &g);
    double c90 = got_get(&g, "stats.timers.r.count_90");
    double s90 = got_get(&g, "stats.timers.r.sum_90");
    got_free(&g);
    rig_stop(&r);
    if (c90 != 9000)
        fail_msg("count_90 = %g (sum_90 = %g), statsd: 9000 (40504500)", c90, s90);
}

/* maxKeys: new keys past the limit are refused and counted; keys that
 * exist go on updating.  statsd's three counters take three of the keys;
 * the type is part of a key's identity. */
static void agg_max_keys(void **state)
{
    (void)state;
    rig r;
    got_list g = { 0 };
    rig_init(&r);
    r.ao.max_keys = 5;
    sy_log_level = SY_ERR;
    rig_start(&r);
    const sy_agg_stats *st = sy_agg_get_stats(r.a);
    assert_int_equal(sy_agg_key_count(r.a), 3);
    rig_feed(&r, "a:1|c\nb:1|ms");
    assert_int_equal(sy_agg_key_count(r.a), 5);
    assert_int_equal(st->keys_rejected, 0);
    rig_feed(&r, "c:1|c");   /* refused */
    rig_feed(&r, "a:2|c");   /* exists */
    rig_feed(&r, "b:3|ms");  /* exists */
    rig_feed(&r, "a:1|g");   /* a gauge is another key: refused */
    rig_feed(&r, "d:x|s\nd:y|s");
    assert_int_equal(st->keys_rejected, 4);
    assert_int_equal(st->keys, 5);
    assert_int_equal(sy_agg_key_count(r.a), 5);
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats_counts.a") == 3);
    assert_true(got_get(&g, "stats.timers.b.count") == 2);
    assert_true(got_get(&g, "stats.timers.b.sum") == 4);
    assert_true(got_get(&g, "statsd.numStats") == 5);
    assert_true(got_get(&g, "stats_counts.statsd.metrics_received") == 8);
    assert_true(got_get(&g, "stats_counts.statsd.packets_received") == 6);
    assert_int_equal(got_find(&g, "stats_counts.c"), -1);
    assert_int_equal(got_find(&g, "stats.gauges.a"), -1);
    assert_int_equal(got_find(&g, "stats.sets.d.count"), -1);
    /* still refused after a flush (nothing was deleted) */
    rig_feed(&r, "c:1|c\na:5|c");
    assert_true(st->keys_rejected >= 5);
    got_free(&g);
    rig_stop(&r);
}

/* With the table full, statsd.timestamp_lag (statsd's own gauge, created
 * at the second flush) is still flushed from the second flush on, as in
 * statsd, and refuses no sample: statsd's own keys are exempt from
 * maxKeys. */
static void agg_max_keys_keeps_timestamp_lag_STATSD_DIFF(void **state)
{
    (void)state;
    rig r;
    got_list g = { 0 };
    rig_init(&r);
    r.ao.max_keys = 4;
    sy_log_level = SY_ERR;
    rig_start(&r);
    rig_feed(&r, "a:1|c");
    const sy_agg_stats *st = sy_agg_get_stats(r.a);
    rig_flush(&r, &g);
    rig_flush(&r, &g);
    rig_flush(&r, &g);
    long lag = got_find(&g, "stats.gauges.statsd.timestamp_lag");
    uint64_t rej = st->keys_rejected;
    got_free(&g);
    rig_stop(&r);
    if (lag < 0 || rej != 0)
        fail_msg("maxKeys full: timestamp_lag %s, keys_rejected %llu after 3 idle flushes",
                 lag < 0 ? "missing" : "present", (unsigned long long)rej);
}

/* Deleting idle keys makes room under maxKeys. */
static void agg_max_keys_room_after_delete(void **state)
{
    (void)state;
    rig r;
    got_list g = { 0 };
    rig_init(&r);
    r.ao.max_keys = 4;
    r.ao.delete_counters = 1;
    sy_log_level = SY_ERR;
    rig_start(&r);
    const sy_agg_stats *st = sy_agg_get_stats(r.a);
    rig_feed(&r, "a:1|c\nb:1|c");
    assert_int_equal(st->keys_rejected, 1);
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats_counts.a") == 1);
    assert_int_equal(sy_agg_key_count(r.a), 3);
    rig_feed(&r, "b:2|c");
    assert_int_equal(st->keys_rejected, 1);
    assert_int_equal(sy_agg_key_count(r.a), 4);
    rig_flush(&r, &g);
    assert_true(got_get(&g, "stats_counts.b") == 2);
    assert_int_equal(got_find(&g, "stats_counts.a"), -1);
    got_free(&g);
    rig_stop(&r);
}

/* A flush larger than one batch (values and name bytes): every value
 * arrives once, intact, with the flush time on every batch. */
static void flush_batches_split(void **state)
{
    (void)state;
    enum { NC = 3000, NT = 20, KEYPAD = 200 };
    rig r;
    got_list g = { 0 };
    rig_init(&r);
    r.fo.legacy = 0;
    rig_interval(&r, 1000);
    rig_start(&r);
    char line[512];
    char pad[KEYPAD + 1];
    memset(pad, 'x', KEYPAD);
    pad[KEYPAD] = '\0';
    for (int i = 0; i < NC; i++) {
        int n = snprintf(line, sizeof line, "k%04d_%s:%d|c", i, pad, i + 1);
        sy_agg_line(r.a, line, (size_t)n, NULL);
    }
    for (int i = 0; i < NT; i++)
        for (int j = 1; j <= 100; j++) {
            int n = snprintf(line, sizeof line, "t%02d:%d|ms", i, j);
            sy_agg_line(r.a, line, (size_t)n, NULL);
        }
    rig_flush(&r, &g);
    static char seen[NC][2];
    static char tseen[NT];
    memset(seen, 0, sizeof seen);
    memset(tseen, 0, sizeof tseen);
    int bad = 0;
    for (size_t i = 0; i < g.n; i++) {
        const char *n = g.name[i];
        int k;
        char rest[300];
        if (sscanf(n, "stats.counters.k%4d_%250s", &k, rest) == 2 && k >= 0 && k < NC) {
            size_t rl = strlen(rest);
            int which = rl == KEYPAD + 5 && !strcmp(rest + KEYPAD, ".rate") ? 0
                      : rl == KEYPAD + 6 && !strcmp(rest + KEYPAD, ".count") ? 1 : -1;
            if (which < 0 || strspn(rest, "x") != KEYPAD || seen[k][which]++ ||
                g.value[i] != (double)(k + 1)) {
                print_message("  bad %s = %g\n", n, g.value[i]);
                bad++;
            }
        } else if (sscanf(n, "stats.timers.t%2d.", &k) == 1 && k >= 0 && k < NT) {
            if (!strcmp(n + strlen("stats.timers.t00"), ".sum")) {
                tseen[k]++;
                if (g.value[i] != 5050)
                    bad++;
            }
        } else if (strncmp(n, "stats.counters.statsd.", 22) && strncmp(n, "stats.statsd.", 13)) {
            print_message("  unexpected %s\n", n);
            bad++;
        }
    }
    for (int k = 0; k < NC; k++)
        if (!seen[k][0] || !seen[k][1])
            bad++;
    for (int k = 0; k < NT; k++)
        if (tseen[k] != 1)
            bad++;
    bad += check_plumbing("batches", &g, &r.res, 0);
    assert_int_equal(bad, 0);
    assert_int_equal(g.n, 2 * NC + 6 + NT * 14 + 3);
    assert_true(g.batches >= 5);
    assert_true(g.max_batch <= 2048);
    assert_true(r.res.bytes > 0);
    assert_true(got_get(&g, "stats.statsd.numStats") == NC + NT + 3);
    got_free(&g);
    rig_stop(&r);
}

/* sy_timer_values counts what sy_timer_stats gives, for every vector
 * (idle timers, repeated and 0 thresholds, calculatedTimerMetrics,
 * histograms): the output counts a stuck sink's drops with it. */
static void timer_values_count_the_stats(void **state)
{
    (void)state;
    int bad = 0;
    char **names;
    size_t nn = golden_names("process_metrics", &names);
    for (size_t k = 0; k < nn; k++) {
        golden pv;
        pm_load(&pv, names[k]);
        sy_timer_data *t = pv.n ? mk_timer(pv.v, pv.n, pv.count) : NULL;
        got_list g = { 0 };
        sy_timer_stats(&pv.fo, pv.key, t, stat_cb, &g);
        size_t want = g.n;
        got_free(&g);
        /* counted before and after the statistics (which sort the values) */
        if (t) {
            free_timer(t);
            t = mk_timer(pv.v, pv.n, pv.count);
        }
        size_t n = sy_timer_values(&pv.fo, pv.key, t);
        if (n != want) {
            print_message("  %s: counted %zu, made %zu\n", pv.name, n, want);
            bad++;
        }
        free_timer(t);
        golden_free(&pv);
    }
    free_names(names, nn);
    assert_int_equal(bad, 0);
}

struct count_ctx {
    size_t n;
};

static void count_cb(void *ctx, const sy_metric_batch *b, uint64_t sinks)
{
    ((struct count_ctx *)ctx)->n += b->count;
}

/* sy_flusher_skip: what is made up to any point plus what is counted from
 * there is the whole flush, for every type, with extras and statsd's own
 * values, thresholds (one covering no value of a small timer) and a
 * histogram, in legacy and new namespaces. */
static void flush_skip_counts_the_rest(void **state)
{
    (void)state;
    static double bins[] = { 10, 100, INFINITY };
    static char *bin_names[] = { "histogram.bin_10", "histogram.bin_100", "histogram.bin_inf" };
    static sy_histogram hist[] = { { "t1", 3, bins, bin_names } };
    static const sy_extra_metric extra[] = { { "graphiteStats.flush_time", 3 },
                                             { "switchyard.keys", 9 } };
    for (int legacy = 0; legacy < 2; legacy++) {
        rig r;
        rig_init(&r);
        r.fo.legacy = legacy;
        r.fo.flush_counts = legacy; /* counters: rate and count, or the rate alone */
        r.pct[1] = 5;   /* round(0.05 * count) is 0 below 10 values */
        r.pct[2] = -50;
        r.pct[3] = 90;  /* repeated */
        r.fo.npct = 4;
        r.fo.hist = hist;
        r.fo.nhist = 1;
        rig_start(&r);
        char line[128];
        for (int i = 0; i < 300; i++) {
            int n = snprintf(line, sizeof line, "c%d:%d|c", i, i);
            sy_agg_line(r.a, line, (size_t)n, NULL);
            n = snprintf(line, sizeof line, "g%d:%d|g", i, i);
            sy_agg_line(r.a, line, (size_t)n, NULL);
            n = snprintf(line, sizeof line, "s%d:%d|s", i % 50, i);
            sy_agg_line(r.a, line, (size_t)n, NULL);
            for (int j = 0; j <= i % 23; j++) {
                n = snprintf(line, sizeof line, "t%d:%d|ms", i % 40, i * j);
                sy_agg_line(r.a, line, (size_t)n, NULL);
            }
        }
        sy_snapshot *s = sy_agg_snapshot(r.a, r.ts);
        assert_non_null(s);
        struct count_ctx all = { 0 };
        sy_flush_cursor c;
        memset(&c, 0, sizeof c);
        while (sy_flusher_next(r.f, s, extra, 2, UINT64_MAX, &c, SIZE_MAX, count_cb, &all))
            ;
        assert_true(all.n > 300 * 4);
        size_t steps[] = { 0, 1, 7, 100, 333, 1000, all.n - 5, all.n };
        for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
            struct count_ctx made = { 0 };
            memset(&c, 0, sizeof c);
            if (steps[k])
                sy_flusher_next(r.f, s, extra, 2, UINT64_MAX, &c, steps[k], count_cb, &made);
            size_t rest = sy_flusher_skip(r.f, s, 2, UINT64_MAX, &c);
            if (made.n + rest != all.n)
                fail_msg("legacy %d: %zu made and %zu counted, the flush has %zu", legacy,
                         made.n, rest, all.n);
            /* the cursor is at the end: nothing more is made */
            struct count_ctx after = { 0 };
            assert_int_equal(sy_flusher_next(r.f, s, extra, 2, UINT64_MAX, &c, SIZE_MAX,
                                             count_cb, &after), 0);
            assert_int_equal(after.n, 0);
        }
        sy_snapshot_free(s);
        rig_stop(&r);
    }
}

/* A long globalPrefix and globalSuffix (1000 bytes each) with long keys:
 * statsd just writes the long names.  flush.c starts a new batch when
 * fewer than NAME_MAX_LEN (SY_KEY_MAX + 512) bytes are left in its 256 KiB
 * name arena, but one name can be longer than that (namespace + key + stat
 * + suffix + tags, here 3020 bytes): emit_key then writes past the arena
 * (ASan: heap-buffer-overflow in put() from emit_key).  With ~23 arena
 * fills, the chance that no fill ends in the overflowing window is below
 * 1e-12.  Runs in a child so a crash fails this test only. */
static void flush_long_names_stay_in_the_arena(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* cmocka's handlers would turn a crash here into a test failure
         * of the child's copy of the suite: die instead. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        static char gp[1001], sf[1001];
        memset(gp, 'p', 1000);
        memset(sf, 's', 1000);
        sy_agg_opts ao = { .sanitize = 1, .flush_interval_ms = 1000, .prefix_stats = "statsd",
                           .gauges_max_ttl = 1 };
        sy_flush_opts fo = { .flush_interval_ms = 1000, .flush_counts = 1, .sanitized = 1,
                             .global_prefix = gp, .prefix_counter = "counters",
                             .prefix_timer = "timers", .prefix_gauge = "gauges",
                             .prefix_set = "sets", .global_suffix = sf, .prefix_stats = "statsd" };
        sy_agg *a = sy_agg_new(&ao);
        sy_flusher *f = sy_flusher_new(&fo);
        if (!a || !f)
            _exit(3);
        char line[1100];
        for (int i = 0; i < 1000; i++) {
            memset(line, 'k', 1000);
            int n = snprintf(line + 1000, 100, "%04d:1|c", i);
            sy_agg_line(a, line, (size_t)(1000 + n), NULL);
        }
        got_list g = { 0 };
        sy_flush_result res;
        g.ts = 5;
        sy_snapshot *s = sy_agg_snapshot(a, 5);
        sy_flusher_run(f, s, NULL, 0, emit_cb, &g, &res);
        /* pp...p.counters.kk...k0123.rate.ss...s (and .count) */
        size_t ok = 0;
        for (size_t i = 0; i < g.n; i++) {
            const char *n = g.name[i];
            size_t len = strlen(n);
            if (len >= 3020 && strspn(n, "p") == 1000 && !strncmp(n + 1000, ".counters.", 10) &&
                strspn(n + 1010, "k") == 1000 && strspn(n + 2010, "0123456789") == 4 &&
                ((len == 3020 && !strncmp(n + 2014, ".rate.", 6)) ||
                 (len == 3021 && !strncmp(n + 2014, ".count.", 7))) &&
                strspn(n + len - 1000, "s") == 1000)
                ok++;
        }
        sy_snapshot_free(s);
        sy_flusher_free(f);
        sy_agg_free(a);
        _exit(ok == 2000 && g.bad_len == 0 ? 0 : 4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("long names: child %s %d (a name longer than NAME_MAX_LEN overruns the "
                 "flusher's name arena)", WIFEXITED(status) ? "exited" : "killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* The batched feed (sy_agg_feed parses a record's lines ahead of applying
 * them, with prefetches; in production from 65,536 keys on, here from the
 * start) against one line at a time (sy_agg_line): for
 * random records of every kind of line, over keys enough to grow the table
 * in the middle of a record, both aggregators must flush the same values,
 * bit for bit, and count the same lines.  Gauges (the last value wins,
 * deltas add in order) and multi-value lines show any reordering. */
static uint64_t eq_rng = 88172645463325252ull;
static uint32_t eq_rand(uint32_t n)
{
    eq_rng ^= eq_rng << 13;
    eq_rng ^= eq_rng >> 7;
    eq_rng ^= eq_rng << 17;
    return (uint32_t)(eq_rng % n);
}

static size_t eq_line(char *o, size_t room)
{
    static const char *const bad[] = { "nocolon", "k:abc|c", "k:1|zz", ":1|c", "k:|c", "k:1|c|@x" };
    static const char *const tags[] = { "", "|#env:prod,host:h1", "|#route:/api/v2", "|#a b:c/d" };
    uint32_t k = eq_rand(5000), v = eq_rand(1000), r = eq_rand(100);
    const char *tg = tags[eq_rand(4)];
    if (r < 4)
        return (size_t)snprintf(o, room, "%s", bad[eq_rand(6)]);
    if (r < 6)
        return (size_t)snprintf(o, room, "%s", r == 4 ? "" : "\r");
    if (r < 8)
        return (size_t)snprintf(o, room, "m.%u:%u|c:%u|ms:%u|g%s", k, v, v + 1, v + 2, tg);
    if (r < 10)
        return (size_t)snprintf(o, room, "t.%u:%u:%u.5:%u|ms|@0.5%s", k % 300, v, v, v + 3, tg);
    if (r < 40)
        return (size_t)snprintf(o, room, "c.%u:%u|c%s%s", k, v, r < 20 ? "|@0.1" : "", tg);
    if (r < 60)
        return (size_t)snprintf(o, room, "t.%u:%u.25|ms%s%s", k % 300, v, r < 50 ? "|@0.25" : "", tg);
    if (r < 80)
        return (size_t)snprintf(o, room, "g.%u:%s%u|g%s", k % 200, r < 65 ? "+" : r < 70 ? "-" : "", v, tg);
    if (r < 95)
        return (size_t)snprintf(o, room, "s.%u:m%u|s%s", k % 100, v % 50, tg);
    return (size_t)snprintf(o, room, "key with space/%u:%u|c\r", k % 100, v);
}

typedef struct eq_item {
    char key[300];
    int type;
    uint64_t sinks;
    double value, count, sum, sumsq, min, max;
    uint64_t seen;
    uint32_t n;
    double v0, vlast;
} eq_item;

static int eq_cmp(const void *x, const void *y)
{
    const eq_item *a = x, *b = y;
    return a->type != b->type ? a->type - b->type : strcmp(a->key, b->key);
}

static eq_item *eq_items(sy_snapshot *s)
{
    eq_item *it = calloc(s->n + 1, sizeof *it);
    for (size_t i = 0; i < s->n; i++) {
        const sy_snap_item *x = &s->items[i];
        snprintf(it[i].key, sizeof it[i].key, "%.*s", (int)x->key_len, x->key);
        it[i].type = x->type;
        it[i].sinks = x->sinks;
        it[i].value = x->value;
        if (x->timer) {
            const sy_timer_data *t = x->timer;
            it[i].count = t->count;
            it[i].sum = t->sum;
            it[i].sumsq = t->sumsq;
            it[i].min = t->min;
            it[i].max = t->max;
            it[i].seen = t->seen;
            it[i].n = t->n;
            it[i].v0 = t->n ? t->v[0] : 0;
            it[i].vlast = t->n ? t->v[t->n - 1] : 0;
        }
    }
    qsort(it, s->n, sizeof *it, eq_cmp);
    return it;
}

/* Routing rules that drop, rename (many keys into one) and send keys to
 * different sinks, by the number in the key. */
static sy_router *eq_router(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadstring(L,
                        "return function(key, mtype)\n"
                        "  local n = tonumber(key:match('%.(%d+)')) or 0\n"
                        "  if n % 7 == 0 then return 'seven', 0, 0, nil, 1 end\n"
                        "  if n % 5 == 0 then return nil, 1, 0, 'renamed.' .. (n % 50), 1 end\n"
                        "  if n % 3 == 0 then return nil, 2, 0, nil, 1 end\n"
                        "  return nil, 3, 0, nil, 1\n"
                        "end\n") != 0 ||
        lua_pcall(L, 0, 1, 0) != 0)
        fail_msg("%s", lua_tostring(L, -1));
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return sy_router_new(L, ref, LUA_NOREF, 3, 64u << 20, 1000);
}

static void eq_run(int routed)
{
    sy_log_level = SY_ERR;
    sy_agg_opts ao = { .sanitize = 1, .flush_interval_ms = 1000, .prefix_stats = "statsd",
                       .gauges_max_ttl = 1, .timer_sample_limit = 0 };
    sy_agg *fed = sy_agg_new(&ao), *lines = sy_agg_new(&ao);
    assert_non_null(fed);
    assert_non_null(lines);
    sy_agg_set_batch_keys(fed, 0);  /* batched from the first record on */
    sy_router *router = routed ? eq_router() : NULL;
    if (routed) {
        assert_non_null(router);
        sy_agg_set_routing(fed, router, 3, 0, NULL, 0);
        sy_agg_set_routing(lines, router, 3, 0, NULL, 0);
    }
    size_t cap = 1 << 20;
    char *rec = malloc(cap);
    size_t *starts = malloc(40000 * sizeof *starts), *lens = malloc(40000 * sizeof *lens);
    for (int round = 0; round < 3; round++) {
        for (int r = 0; r < 200; r++) {
            /* records of 1 to 40 lines, now and then one of 20,000 */
            size_t nlines = (r % 50 == 0) ? 20000 : 1 + eq_rand(40), used = 0;
            for (size_t i = 0; i < nlines; i++) {
                starts[i] = used;
                lens[i] = eq_line(rec + used, cap - used - 2);
                used += lens[i];
                if (i + 1 < nlines || eq_rand(2))
                    rec[used++] = '\n';
            }
            sy_agg_feed(fed, rec, used, NULL);
            for (size_t i = 0; i < nlines; i++)
                if (lens[i])
                    sy_agg_line(lines, rec + starts[i], lens[i], NULL);
        }
        sy_snapshot *a = sy_agg_snapshot(fed, 10 + round), *b = sy_agg_snapshot(lines, 10 + round);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(a->n, b->n);
        assert_true(a->n > 1000);
        eq_item *x = eq_items(a), *y = eq_items(b);
        for (size_t i = 0; i < a->n; i++) {
            /* records are packets; single lines are not */
            if (!strcmp(x[i].key, "statsd.packets_received") && x[i].type == SY_T_COUNTER)
                y[i].value = x[i].value;
            if (memcmp(&x[i], &y[i], sizeof x[i]) != 0)
                fail_msg("round %d: %s (type %d) differs: %.17g/%.17g count %.17g/%.17g n %u/%u",
                         round, x[i].key, x[i].type, x[i].value, y[i].value, x[i].count,
                         y[i].count, x[i].n, y[i].n);
        }
        free(x);
        free(y);
        sy_snapshot_free(a);
        sy_snapshot_free(b);
    }
    const sy_agg_stats *sa = sy_agg_get_stats(fed), *sb = sy_agg_get_stats(lines);
    assert_int_equal(sa->lines, sb->lines);
    assert_int_equal(sa->samples, sb->samples);
    assert_int_equal(sa->bad_lines, sb->bad_lines);
    assert_true(sa->bad_lines > 0);
    if (routed)
        assert_true(sa->routed_drops > 0 && sa->routed_drops == sb->routed_drops);
    free(rec);
    free(starts);
    free(lens);
    sy_agg_free(fed);
    sy_agg_free(lines);
    sy_router_free(router);
}

static void agg_feed_batched_as_line_by_line(void **state)
{
    (void)state;
    eq_run(0);
}

static void agg_feed_batched_as_line_by_line_routed(void **state)
{
    (void)state;
    eq_run(1);
}

int main(void)
{
    sy_log_level = SY_ERR;
    const struct CMUnitTest tests[] = {
        /* A: process_metrics_tests.js */
        cmocka_unit_test(pm_counters_has_stats_count_and_rate),
        cmocka_unit_test(pm_timers_handle_empty),
        cmocka_unit_test(pm_timers_single_time),
        cmocka_unit_test(pm_timer_single_time_filters),
        cmocka_unit_test(pm_timers_multiple_times),
        cmocka_unit_test(pm_timers_single_time_single_percentile),
        cmocka_unit_test(pm_timers_single_time_multiple_percentiles),
        cmocka_unit_test(pm_timers_multiple_times_single_percentiles),
        cmocka_unit_test(pm_timers_multiple_times_multiple_percentiles),
        cmocka_unit_test(pm_timers_sampled_times),
        cmocka_unit_test(pm_timers_histogram),
        cmocka_unit_test(pm_timers_histogram_with_calculated_timer_metrics),
        cmocka_unit_test(pm_timers_single_time_single_top_percentile),
        cmocka_unit_test(pm_timers_multiple_times_single_top_percentile),
        cmocka_unit_test(pm_statsd_metrics_exist),
        cmocka_unit_test(pm_timers_multiple_times_even),
        cmocka_unit_test(pm_float_sums_bit_exact),
        cmocka_unit_test(pm_zero_threshold),
        cmocka_unit_test(pm_threshold_rounding),
        cmocka_unit_test(pm_filters_mixed),
        cmocka_unit_test(pm_histogram_edges),
        cmocka_unit_test(pm_sampled_rates),
        cmocka_unit_test(pm_sums_in_sorted_order),
        cmocka_unit_test(pm_radix_sort_is_numeric_order),
        cmocka_unit_test(pm_every_file_in_statsd_order),
        cmocka_unit_test(pm_negative_threshold_all_values_DELIB),
        cmocka_unit_test(pm_idle_timer_order_STATSD_DIFF),
        cmocka_unit_test(pm_duplicate_threshold_STATSD_DIFF),
        /* B: the graphite tests, end to end */
        cmocka_unit_test(e2e_legacy_namespace),
        cmocka_unit_test(e2e_new_namespace),
        cmocka_unit_test(e2e_custom_prefixes),
        cmocka_unit_test(e2e_global_suffix),
        cmocka_unit_test(e2e_flush_counts_false),
        cmocka_unit_test(e2e_prefix_stats),
        cmocka_unit_test(e2e_tags_at_the_end),
        cmocka_unit_test(e2e_key_name_sanitize_false),
        cmocka_unit_test(e2e_delete_idle_stats),
        cmocka_unit_test(e2e_delete_gauges_ttl),
        cmocka_unit_test(e2e_delete_counters_and_sets),
        cmocka_unit_test(e2e_delete_timers),
        cmocka_unit_test(e2e_keep_idle_and_gauge_deltas),
        cmocka_unit_test(e2e_statsd_internal_counters),
        cmocka_unit_test(e2e_crlf_blank_line_DELIB),
        cmocka_unit_test(e2e_calculated_timer_metrics),
        cmocka_unit_test(e2e_histograms_and_thresholds),
        cmocka_unit_test(e2e_timestamp_lag),
        cmocka_unit_test(e2e_gauge_deltas),
        cmocka_unit_test(e2e_extras_naming),
        cmocka_unit_test(e2e_kinds),
        cmocka_unit_test(e2e_prefix_stats_empty_new_STATSD_DIFF),
        cmocka_unit_test(e2e_sanitize_false_unicode_space_STATSD_DIFF),
        cmocka_unit_test(e2e_every_file),
        /* C: switchyard's limits and plumbing */
        cmocka_unit_test(agg_timer_sample_limit),
        cmocka_unit_test(agg_timer_sample_limit_threshold_count_STATSD_DIFF),
        cmocka_unit_test(agg_max_keys),
        cmocka_unit_test(agg_feed_batched_as_line_by_line),
        cmocka_unit_test(agg_feed_batched_as_line_by_line_routed),
        cmocka_unit_test(agg_max_keys_keeps_timestamp_lag_STATSD_DIFF),
        cmocka_unit_test(agg_max_keys_room_after_delete),
        cmocka_unit_test(flush_batches_split),
        cmocka_unit_test(flush_long_names_stay_in_the_arena),
        cmocka_unit_test(timer_values_count_the_stats),
        cmocka_unit_test(flush_skip_counts_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
