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
 *   lib/process_metrics.js in node; the tables hold its complete output,
 *   in its order, with values printed by JavaScript's String() (shortest
 *   round trip), so strtod() gives back the very double node computed and
 *   every comparison is bit-exact (`==`).  Where a statsd test left
 *   timer_counters unset, it is set to the number of values, as stats.js
 *   always does.  (timers_with_invalid_filter has no C counterpart: the
 *   config loader accepts only a list of strings.)
 *
 *   Part B ports the naming expectations of test/graphite_tests.js,
 *   graphite_legacy_tests.js, graphite_tests_statsprefix.js,
 *   graphite_legacy_tests_statsprefix.js, graphite_tests_statssuffix.js,
 *   graphite_tests_filters.js and graphite_delete_counters_tests.js, end to
 *   end: lines are fed to an sy_agg, snapshots taken, sy_flusher_run
 *   captured.  Each scenario table is statsd's complete Graphite output for
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

#include "engine/agg.h"
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
/* Part A: process_metrics                                             */
/* ------------------------------------------------------------------ */

typedef struct pm_vec {
    const char *name;
    const char *key;
    const double *v;
    size_t n;
    double count;          /* statsd's timer_counters */
    uint32_t fi;           /* flushInterval, ms */
    const double *pct;
    size_t npct;
    const char *const *calc;
    size_t ncalc;
    int hist;              /* which histogram config (0: none) */
    const exp_metric *expect;
} pm_vec;

/* The histogram configs of the vectors, with statsd's bin names
 * ('bin_' + bin.toString().replace('.', '_')). */
static double h1_abcd[] = { 1, 5, INFINITY };
static char *h1_abcd_n[] = { "histogram.bin_1", "histogram.bin_5", "histogram.bin_inf" };
static double h1_abc[] = { 1, 2.21, INFINITY };
static char *h1_abc_n[] = { "histogram.bin_1", "histogram.bin_2_21", "histogram.bin_inf" };
static double h1_a[] = { 1, 2 };
static char *h1_a_n[] = { "histogram.bin_1", "histogram.bin_2" };
static sy_histogram H1[] = {
    { "foo", 0, NULL, NULL },
    { "abcd", 3, h1_abcd, h1_abcd_n },
    { "abc", 3, h1_abc, h1_abc_n },
    { "a", 2, h1_a, h1_a_n },
};
static double h2_a[] = { 0.5, 2.5, INFINITY };
static char *h2_a_n[] = { "histogram.bin_0_5", "histogram.bin_2_5", "histogram.bin_inf" };
static sy_histogram H2[] = { { "a", 3, h2_a, h2_a_n } };
static double h3_x[] = { 0 };
static char *h3_x_n[] = { "histogram.bin_0" };
static double h3_a[] = { 0.5, 1, 2.5, 1000 };
static char *h3_a_n[] = { "histogram.bin_0_5", "histogram.bin_1", "histogram.bin_2_5", "histogram.bin_1000" };
static sy_histogram H3[] = { { "x", 1, h3_x, h3_x_n }, { "a", 4, h3_a, h3_a_n } };
static sy_histogram H4[] = { { "a", 2, h1_a, h1_a_n } };

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

static void vec_opts(const pm_vec *pv, sy_flush_opts *o)
{
    memset(o, 0, sizeof *o);
    o->flush_interval_ms = pv->fi;
    o->pct = (double *)pv->pct;
    o->npct = pv->npct;
    o->calc = (char **)pv->calc;
    o->ncalc = pv->ncalc;
    switch (pv->hist) {
    case 1: o->hist = H1; o->nhist = 4; break;
    case 2: o->hist = H2; o->nhist = 1; break;
    case 3: o->hist = H3; o->nhist = 2; break;
    case 4: o->hist = H4; o->nhist = 1; break;
    default: break;
    }
}

/* Run one vector through sy_timer_stats (an idle timer is NULL, as a
 * snapshot hands it over) and compare. */
static int run_vec(const pm_vec *pv, int strict)
{
    sy_flush_opts o;
    vec_opts(pv, &o);
    sy_timer_data *t = pv->n ? mk_timer(pv->v, pv->n, pv->count) : NULL;
    got_list g = { 0 };
    sy_timer_stats(&o, pv->key, t, stat_cb, &g);
    int bad = compare(pv->name, &g, pv->expect, strict);
    got_free(&g);
    free_timer(t);
    return bad;
}

static void check_vec(const pm_vec *pv)
{
    int bad = run_vec(pv, 0);
    if (bad)
        fail_msg("%s: %d differences from statsd", pv->name, bad);
}

/* ---- The vectors: statsd 0.9 lib/process_metrics.js output, in its order
 * (values as JavaScript String() prints them). ---- */

/* timers_handle_empty: [] count 0 flushInterval 100 pct null calc [] */
static const double PV_timers_handle_empty[] = { 0 };
static const exp_metric PE_timers_handle_empty[] = {
    { "count_ps", "0" },
    { "count", "0" },
    { NULL, NULL }
};
static const pm_vec PM_timers_handle_empty = { "timers_handle_empty", "a", PV_timers_handle_empty, 0, 0, 100, NULL, 0, NULL, 0, 0, PE_timers_handle_empty };

/* timers_single_time: [100] count 1 flushInterval 100 pct null calc [] */
static const double PV_timers_single_time[] = { 100 };
static const exp_metric PE_timers_single_time[] = {
    { "std", "0" },
    { "upper", "100" },
    { "lower", "100" },
    { "count", "1" },
    { "count_ps", "10" },
    { "sum", "100" },
    { "sum_squares", "10000" },
    { "mean", "100" },
    { "median", "100" },
    { NULL, NULL }
};
static const pm_vec PM_timers_single_time = { "timers_single_time", "a", PV_timers_single_time, 1, 1, 100, NULL, 0, NULL, 0, 0, PE_timers_single_time };

/* timer_single_time_with_one_filter: [100] count 1 flushInterval 100 pct null calc ["upper","lower","count","count_ps","sum","sum_squares","mean","median"] */
static const double PV_timer_single_time_with_one_filter[] = { 100 };
static const char *const PC_timer_single_time_with_one_filter[] = { "upper", "lower", "count", "count_ps", "sum", "sum_squares", "mean", "median" };
static const exp_metric PE_timer_single_time_with_one_filter[] = {
    { "upper", "100" },
    { "lower", "100" },
    { "count", "1" },
    { "count_ps", "10" },
    { "sum", "100" },
    { "sum_squares", "10000" },
    { "mean", "100" },
    { "median", "100" },
    { NULL, NULL }
};
static const pm_vec PM_timer_single_time_with_one_filter = { "timer_single_time_with_one_filter", "a", PV_timer_single_time_with_one_filter, 1, 1, 100, NULL, 0, PC_timer_single_time_with_one_filter, 8, 0, PE_timer_single_time_with_one_filter };

/* timer_single_time_multiple_filter: [100] count 1 flushInterval 100 pct null calc ["upper","lower","count_ps","sum_squares"] */
static const double PV_timer_single_time_multiple_filter[] = { 100 };
static const char *const PC_timer_single_time_multiple_filter[] = { "upper", "lower", "count_ps", "sum_squares" };
static const exp_metric PE_timer_single_time_multiple_filter[] = {
    { "upper", "100" },
    { "lower", "100" },
    { "count_ps", "10" },
    { "sum_squares", "10000" },
    { NULL, NULL }
};
static const pm_vec PM_timer_single_time_multiple_filter = { "timer_single_time_multiple_filter", "a", PV_timer_single_time_multiple_filter, 1, 1, 100, NULL, 0, PC_timer_single_time_multiple_filter, 4, 0, PE_timer_single_time_multiple_filter };

/* timers_multiple_times: [100,200,300] count 3 flushInterval 100 pct null calc [] */
static const double PV_timers_multiple_times[] = { 100, 200, 300 };
static const exp_metric PE_timers_multiple_times[] = {
    { "std", "81.64965809277261" },
    { "upper", "300" },
    { "lower", "100" },
    { "count", "3" },
    { "count_ps", "30" },
    { "sum", "600" },
    { "sum_squares", "140000" },
    { "mean", "200" },
    { "median", "200" },
    { NULL, NULL }
};
static const pm_vec PM_timers_multiple_times = { "timers_multiple_times", "a", PV_timers_multiple_times, 3, 3, 100, NULL, 0, NULL, 0, 0, PE_timers_multiple_times };

/* timers_multiple_times_with_calculated_timer_metrics: [100,200,300] count 3 flushInterval 100 pct null calc ["std","count","sum_squares","mean","median"] */
static const double PV_timers_multiple_times_with_calculated_timer_metrics[] = { 100, 200, 300 };
static const char *const PC_timers_multiple_times_with_calculated_timer_metrics[] = { "std", "count", "sum_squares", "mean", "median" };
static const exp_metric PE_timers_multiple_times_with_calculated_timer_metrics[] = {
    { "std", "81.64965809277261" },
    { "count", "3" },
    { "sum_squares", "140000" },
    { "mean", "200" },
    { "median", "200" },
    { NULL, NULL }
};
static const pm_vec PM_timers_multiple_times_with_calculated_timer_metrics = { "timers_multiple_times_with_calculated_timer_metrics", "a", PV_timers_multiple_times_with_calculated_timer_metrics, 3, 3, 100, NULL, 0, PC_timers_multiple_times_with_calculated_timer_metrics, 5, 0, PE_timers_multiple_times_with_calculated_timer_metrics };

/* timers_single_time_single_percentile: [100] count 1 flushInterval 100 pct [90] calc [] */
static const double PV_timers_single_time_single_percentile[] = { 100 };
static const double PP_timers_single_time_single_percentile[] = { 90 };
static const exp_metric PE_timers_single_time_single_percentile[] = {
    { "count_90", "1" },
    { "mean_90", "100" },
    { "upper_90", "100" },
    { "sum_90", "100" },
    { "sum_squares_90", "10000" },
    { "std", "0" },
    { "upper", "100" },
    { "lower", "100" },
    { "count", "1" },
    { "count_ps", "10" },
    { "sum", "100" },
    { "sum_squares", "10000" },
    { "mean", "100" },
    { "median", "100" },
    { NULL, NULL }
};
static const pm_vec PM_timers_single_time_single_percentile = { "timers_single_time_single_percentile", "a", PV_timers_single_time_single_percentile, 1, 1, 100, PP_timers_single_time_single_percentile, 1, NULL, 0, 0, PE_timers_single_time_single_percentile };

/* timers_single_time_single_percentile_with_calculated_timer_metrics: [100] count 1 flushInterval 100 pct [90] calc ["upper_percent","sum_squares_percent"] */
static const double PV_timers_single_time_single_percentile_with_calculated_timer_metrics[] = { 100 };
static const double PP_timers_single_time_single_percentile_with_calculated_timer_metrics[] = { 90 };
static const char *const PC_timers_single_time_single_percentile_with_calculated_timer_metrics[] = { "upper_percent", "sum_squares_percent" };
static const exp_metric PE_timers_single_time_single_percentile_with_calculated_timer_metrics[] = {
    { "upper_90", "100" },
    { "sum_squares_90", "10000" },
    { NULL, NULL }
};
static const pm_vec PM_timers_single_time_single_percentile_with_calculated_timer_metrics = { "timers_single_time_single_percentile_with_calculated_timer_metrics", "a", PV_timers_single_time_single_percentile_with_calculated_timer_metrics, 1, 1, 100, PP_timers_single_time_single_percentile_with_calculated_timer_metrics, 1, PC_timers_single_time_single_percentile_with_calculated_timer_metrics, 2, 0, PE_timers_single_time_single_percentile_with_calculated_timer_metrics };

/* timers_single_time_multiple_percentiles: [100] count 1 flushInterval 100 pct [90,80] calc [] */
static const double PV_timers_single_time_multiple_percentiles[] = { 100 };
static const double PP_timers_single_time_multiple_percentiles[] = { 90, 80 };
static const exp_metric PE_timers_single_time_multiple_percentiles[] = {
    { "count_90", "1" },
    { "mean_90", "100" },
    { "upper_90", "100" },
    { "sum_90", "100" },
    { "sum_squares_90", "10000" },
    { "count_80", "1" },
    { "mean_80", "100" },
    { "upper_80", "100" },
    { "sum_80", "100" },
    { "sum_squares_80", "10000" },
    { "std", "0" },
    { "upper", "100" },
    { "lower", "100" },
    { "count", "1" },
    { "count_ps", "10" },
    { "sum", "100" },
    { "sum_squares", "10000" },
    { "mean", "100" },
    { "median", "100" },
    { NULL, NULL }
};
static const pm_vec PM_timers_single_time_multiple_percentiles = { "timers_single_time_multiple_percentiles", "a", PV_timers_single_time_multiple_percentiles, 1, 1, 100, PP_timers_single_time_multiple_percentiles, 2, NULL, 0, 0, PE_timers_single_time_multiple_percentiles };

/* timers_single_time_multiple_percentiles_with_calculated_timer_metrics: [100] count 1 flushInterval 100 pct [90,80] calc ["mean_percent","sum_percent"] */
static const double PV_timers_single_time_multiple_percentiles_with_calculated_timer_metrics[] = { 100 };
static const double PP_timers_single_time_multiple_percentiles_with_calculated_timer_metrics[] = { 90, 80 };
static const char *const PC_timers_single_time_multiple_percentiles_with_calculated_timer_metrics[] = { "mean_percent", "sum_percent" };
static const exp_metric PE_timers_single_time_multiple_percentiles_with_calculated_timer_metrics[] = {
    { "mean_90", "100" },
    { "sum_90", "100" },
    { "mean_80", "100" },
    { "sum_80", "100" },
    { NULL, NULL }
};
static const pm_vec PM_timers_single_time_multiple_percentiles_with_calculated_timer_metrics = { "timers_single_time_multiple_percentiles_with_calculated_timer_metrics", "a", PV_timers_single_time_multiple_percentiles_with_calculated_timer_metrics, 1, 1, 100, PP_timers_single_time_multiple_percentiles_with_calculated_timer_metrics, 2, PC_timers_single_time_multiple_percentiles_with_calculated_timer_metrics, 2, 0, PE_timers_single_time_multiple_percentiles_with_calculated_timer_metrics };

/* timers_multiple_times_single_percentiles: [100,200,300] count 3 flushInterval 100 pct [90] calc [] */
static const double PV_timers_multiple_times_single_percentiles[] = { 100, 200, 300 };
static const double PP_timers_multiple_times_single_percentiles[] = { 90 };
static const exp_metric PE_timers_multiple_times_single_percentiles[] = {
    { "count_90", "3" },
    { "mean_90", "200" },
    { "upper_90", "300" },
    { "sum_90", "600" },
    { "sum_squares_90", "140000" },
    { "std", "81.64965809277261" },
    { "upper", "300" },
    { "lower", "100" },
    { "count", "3" },
    { "count_ps", "30" },
    { "sum", "600" },
    { "sum_squares", "140000" },
    { "mean", "200" },
    { "median", "200" },
    { NULL, NULL }
};
static const pm_vec PM_timers_multiple_times_single_percentiles = { "timers_multiple_times_single_percentiles", "a", PV_timers_multiple_times_single_percentiles, 3, 3, 100, PP_timers_multiple_times_single_percentiles, 1, NULL, 0, 0, PE_timers_multiple_times_single_percentiles };

/* timers_multiple_times_single_percentiles_with_calculated_timer_metrics: [100,200,300] count 3 flushInterval 100 pct [90] calc ["count_percent","mean_percent","upper_percent"] */
static const double PV_timers_multiple_times_single_percentiles_with_calculated_timer_metrics[] = { 100, 200, 300 };
static const double PP_timers_multiple_times_single_percentiles_with_calculated_timer_metrics[] = { 90 };
static const char *const PC_timers_multiple_times_single_percentiles_with_calculated_timer_metrics[] = { "count_percent", "mean_percent", "upper_percent" };
static const exp_metric PE_timers_multiple_times_single_percentiles_with_calculated_timer_metrics[] = {
    { "count_90", "3" },
    { "mean_90", "200" },
    { "upper_90", "300" },
    { NULL, NULL }
};
static const pm_vec PM_timers_multiple_times_single_percentiles_with_calculated_timer_metrics = { "timers_multiple_times_single_percentiles_with_calculated_timer_metrics", "a", PV_timers_multiple_times_single_percentiles_with_calculated_timer_metrics, 3, 3, 100, PP_timers_multiple_times_single_percentiles_with_calculated_timer_metrics, 1, PC_timers_multiple_times_single_percentiles_with_calculated_timer_metrics, 3, 0, PE_timers_multiple_times_single_percentiles_with_calculated_timer_metrics };

/* timers_multiple_times_multiple_percentiles: [100,200,300] count 3 flushInterval 100 pct [90,80] calc [] */
static const double PV_timers_multiple_times_multiple_percentiles[] = { 100, 200, 300 };
static const double PP_timers_multiple_times_multiple_percentiles[] = { 90, 80 };
static const exp_metric PE_timers_multiple_times_multiple_percentiles[] = {
    { "count_90", "3" },
    { "mean_90", "200" },
    { "upper_90", "300" },
    { "sum_90", "600" },
    { "sum_squares_90", "140000" },
    { "count_80", "2" },
    { "mean_80", "150" },
    { "upper_80", "200" },
    { "sum_80", "300" },
    { "sum_squares_80", "50000" },
    { "std", "81.64965809277261" },
    { "upper", "300" },
    { "lower", "100" },
    { "count", "3" },
    { "count_ps", "30" },
    { "sum", "600" },
    { "sum_squares", "140000" },
    { "mean", "200" },
    { "median", "200" },
    { NULL, NULL }
};
static const pm_vec PM_timers_multiple_times_multiple_percentiles = { "timers_multiple_times_multiple_percentiles", "a", PV_timers_multiple_times_multiple_percentiles, 3, 3, 100, PP_timers_multiple_times_multiple_percentiles, 2, NULL, 0, 0, PE_timers_multiple_times_multiple_percentiles };

/* timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics: [100,200,300] count 3 flushInterval 100 pct [90,80] calc ["count_percent","sum_percent","sum_squares_percent"] */
static const double PV_timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics[] = { 100, 200, 300 };
static const double PP_timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics[] = { 90, 80 };
static const char *const PC_timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics[] = { "count_percent", "sum_percent", "sum_squares_percent" };
static const exp_metric PE_timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics[] = {
    { "count_90", "3" },
    { "sum_90", "600" },
    { "sum_squares_90", "140000" },
    { "count_80", "2" },
    { "sum_80", "300" },
    { "sum_squares_80", "50000" },
    { NULL, NULL }
};
static const pm_vec PM_timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics = { "timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics", "a", PV_timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics, 3, 3, 100, PP_timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics, 2, PC_timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics, 3, 0, PE_timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics };

/* timers_sampled_times: [100,200,300] count 50 flushInterval 100 pct [90,80] calc [] */
static const double PV_timers_sampled_times[] = { 100, 200, 300 };
static const double PP_timers_sampled_times[] = { 90, 80 };
static const exp_metric PE_timers_sampled_times[] = {
    { "count_90", "3" },
    { "mean_90", "200" },
    { "upper_90", "300" },
    { "sum_90", "600" },
    { "sum_squares_90", "140000" },
    { "count_80", "2" },
    { "mean_80", "150" },
    { "upper_80", "200" },
    { "sum_80", "300" },
    { "sum_squares_80", "50000" },
    { "std", "81.64965809277261" },
    { "upper", "300" },
    { "lower", "100" },
    { "count", "50" },
    { "count_ps", "500" },
    { "sum", "600" },
    { "sum_squares", "140000" },
    { "mean", "200" },
    { "median", "200" },
    { NULL, NULL }
};
static const pm_vec PM_timers_sampled_times = { "timers_sampled_times", "a", PV_timers_sampled_times, 3, 50, 100, PP_timers_sampled_times, 2, NULL, 0, 0, PE_timers_sampled_times };

/* timers_histogram a: [1,2,3,4,5,6,7,8,9,10] count 10 flushInterval 100 pct null calc [] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_a[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
static const exp_metric PE_timers_histogram_a[] = {
    { "std", "2.8722813232690143" },
    { "upper", "10" },
    { "lower", "1" },
    { "count", "10" },
    { "count_ps", "100" },
    { "sum", "55" },
    { "sum_squares", "385" },
    { "mean", "5.5" },
    { "median", "5.5" },
    { "histogram.bin_1", "0" },
    { "histogram.bin_2", "1" },
    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_a = { "timers_histogram a", "a", PV_timers_histogram_a, 10, 10, 100, NULL, 0, NULL, 0, 1, PE_timers_histogram_a };

/* timers_histogram abc: [0.1234,2.89,4,6,8] count 5 flushInterval 100 pct null calc [] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_abc[] = { 0.1234, 2.89, 4, 6, 8 };
static const exp_metric PE_timers_histogram_abc[] = {
    { "std", "2.6853205264176565" },
    { "upper", "8" },
    { "lower", "0.1234" },
    { "count", "5" },
    { "count_ps", "50" },
    { "sum", "21.0134" },
    { "sum_squares", "124.36732756" },
    { "mean", "4.20268" },
    { "median", "4" },
    { "histogram.bin_1", "1" },
    { "histogram.bin_2_21", "0" },
    { "histogram.bin_inf", "4" },
    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_abc = { "timers_histogram abc", "abc", PV_timers_histogram_abc, 5, 5, 100, NULL, 0, NULL, 0, 1, PE_timers_histogram_abc };

/* timers_histogram foo: [0,2,4,6,8] count 5 flushInterval 100 pct null calc [] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_foo[] = { 0, 2, 4, 6, 8 };
static const exp_metric PE_timers_histogram_foo[] = {
    { "std", "2.8284271247461903" },
    { "upper", "8" },
    { "lower", "0" },
    { "count", "5" },
    { "count_ps", "50" },
    { "sum", "20" },
    { "sum_squares", "120" },
    { "mean", "4" },
    { "median", "4" },
    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_foo = { "timers_histogram foo", "foo", PV_timers_histogram_foo, 5, 5, 100, NULL, 0, NULL, 0, 1, PE_timers_histogram_foo };

/* timers_histogram barbazfoobar: [0,2,4,6,8] count 5 flushInterval 100 pct null calc [] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_barbazfoobar[] = { 0, 2, 4, 6, 8 };
static const exp_metric PE_timers_histogram_barbazfoobar[] = {
    { "std", "2.8284271247461903" },
    { "upper", "8" },
    { "lower", "0" },
    { "count", "5" },
    { "count_ps", "50" },
    { "sum", "20" },
    { "sum_squares", "120" },
    { "mean", "4" },
    { "median", "4" },
    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_barbazfoobar = { "timers_histogram barbazfoobar", "barbazfoobar", PV_timers_histogram_barbazfoobar, 5, 5, 100, NULL, 0, NULL, 0, 1, PE_timers_histogram_barbazfoobar };

/* timers_histogram bar.bazfoobar.abc: [0,2,4,6,8] count 5 flushInterval 100 pct null calc [] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_bar_bazfoobar_abc[] = { 0, 2, 4, 6, 8 };
static const exp_metric PE_timers_histogram_bar_bazfoobar_abc[] = {
    { "std", "2.8284271247461903" },
    { "upper", "8" },
    { "lower", "0" },
    { "count", "5" },
    { "count_ps", "50" },
    { "sum", "20" },
    { "sum_squares", "120" },
    { "mean", "4" },
    { "median", "4" },
    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_bar_bazfoobar_abc = { "timers_histogram bar.bazfoobar.abc", "bar.bazfoobar.abc", PV_timers_histogram_bar_bazfoobar_abc, 5, 5, 100, NULL, 0, NULL, 0, 1, PE_timers_histogram_bar_bazfoobar_abc };

/* timers_histogram xyz: [0,2,4,6,8] count 5 flushInterval 100 pct null calc [] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_xyz[] = { 0, 2, 4, 6, 8 };
static const exp_metric PE_timers_histogram_xyz[] = {
    { "std", "2.8284271247461903" },
    { "upper", "8" },
    { "lower", "0" },
    { "count", "5" },
    { "count_ps", "50" },
    { "sum", "20" },
    { "sum_squares", "120" },
    { "mean", "4" },
    { "median", "4" },
    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_xyz = { "timers_histogram xyz", "xyz", PV_timers_histogram_xyz, 5, 5, 100, NULL, 0, NULL, 0, 1, PE_timers_histogram_xyz };

/* timers_histogram_with_calculated_timer_metrics a: [1,2,3,4,5,6,7,8,9,10] count 10 flushInterval 100 pct null calc ["histogram"] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_with_calculated_timer_metrics_a[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
static const char *const PC_timers_histogram_with_calculated_timer_metrics_a[] = { "histogram" };
static const exp_metric PE_timers_histogram_with_calculated_timer_metrics_a[] = {
    { "histogram.bin_1", "0" },
    { "histogram.bin_2", "1" },
    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_with_calculated_timer_metrics_a = { "timers_histogram_with_calculated_timer_metrics a", "a", PV_timers_histogram_with_calculated_timer_metrics_a, 10, 10, 100, NULL, 0, PC_timers_histogram_with_calculated_timer_metrics_a, 1, 1, PE_timers_histogram_with_calculated_timer_metrics_a };

/* timers_histogram_with_calculated_timer_metrics abc: [0.1234,2.89,4,6,8] count 5 flushInterval 100 pct null calc ["histogram"] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_with_calculated_timer_metrics_abc[] = { 0.1234, 2.89, 4, 6, 8 };
static const char *const PC_timers_histogram_with_calculated_timer_metrics_abc[] = { "histogram" };
static const exp_metric PE_timers_histogram_with_calculated_timer_metrics_abc[] = {
    { "histogram.bin_1", "1" },
    { "histogram.bin_2_21", "0" },
    { "histogram.bin_inf", "4" },
    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_with_calculated_timer_metrics_abc = { "timers_histogram_with_calculated_timer_metrics abc", "abc", PV_timers_histogram_with_calculated_timer_metrics_abc, 5, 5, 100, NULL, 0, PC_timers_histogram_with_calculated_timer_metrics_abc, 1, 1, PE_timers_histogram_with_calculated_timer_metrics_abc };

/* timers_histogram_with_calculated_timer_metrics foo: [0,2,4,6,8] count 5 flushInterval 100 pct null calc ["histogram"] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_with_calculated_timer_metrics_foo[] = { 0, 2, 4, 6, 8 };
static const char *const PC_timers_histogram_with_calculated_timer_metrics_foo[] = { "histogram" };
static const exp_metric PE_timers_histogram_with_calculated_timer_metrics_foo[] = {

    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_with_calculated_timer_metrics_foo = { "timers_histogram_with_calculated_timer_metrics foo", "foo", PV_timers_histogram_with_calculated_timer_metrics_foo, 5, 5, 100, NULL, 0, PC_timers_histogram_with_calculated_timer_metrics_foo, 1, 1, PE_timers_histogram_with_calculated_timer_metrics_foo };

/* timers_histogram_with_calculated_timer_metrics barbazfoobar: [0,2,4,6,8] count 5 flushInterval 100 pct null calc ["histogram"] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_with_calculated_timer_metrics_barbazfoobar[] = { 0, 2, 4, 6, 8 };
static const char *const PC_timers_histogram_with_calculated_timer_metrics_barbazfoobar[] = { "histogram" };
static const exp_metric PE_timers_histogram_with_calculated_timer_metrics_barbazfoobar[] = {

    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_with_calculated_timer_metrics_barbazfoobar = { "timers_histogram_with_calculated_timer_metrics barbazfoobar", "barbazfoobar", PV_timers_histogram_with_calculated_timer_metrics_barbazfoobar, 5, 5, 100, NULL, 0, PC_timers_histogram_with_calculated_timer_metrics_barbazfoobar, 1, 1, PE_timers_histogram_with_calculated_timer_metrics_barbazfoobar };

/* timers_histogram_with_calculated_timer_metrics bar.bazfoobar.abc: [0,2,4,6,8] count 5 flushInterval 100 pct null calc ["histogram"] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_with_calculated_timer_metrics_bar_bazfoobar_abc[] = { 0, 2, 4, 6, 8 };
static const char *const PC_timers_histogram_with_calculated_timer_metrics_bar_bazfoobar_abc[] = { "histogram" };
static const exp_metric PE_timers_histogram_with_calculated_timer_metrics_bar_bazfoobar_abc[] = {

    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_with_calculated_timer_metrics_bar_bazfoobar_abc = { "timers_histogram_with_calculated_timer_metrics bar.bazfoobar.abc", "bar.bazfoobar.abc", PV_timers_histogram_with_calculated_timer_metrics_bar_bazfoobar_abc, 5, 5, 100, NULL, 0, PC_timers_histogram_with_calculated_timer_metrics_bar_bazfoobar_abc, 1, 1, PE_timers_histogram_with_calculated_timer_metrics_bar_bazfoobar_abc };

/* timers_histogram_with_calculated_timer_metrics xyz: [0,2,4,6,8] count 5 flushInterval 100 pct null calc ["histogram"] histogram [{"metric":"foo","bins":[]},{"metric":"abcd","bins":[1,5,"inf"]},{"metric":"abc","bins":[1,2.21,"inf"]},{"metric":"a","bins":[1,2]}] */
static const double PV_timers_histogram_with_calculated_timer_metrics_xyz[] = { 0, 2, 4, 6, 8 };
static const char *const PC_timers_histogram_with_calculated_timer_metrics_xyz[] = { "histogram" };
static const exp_metric PE_timers_histogram_with_calculated_timer_metrics_xyz[] = {

    { NULL, NULL }
};
static const pm_vec PM_timers_histogram_with_calculated_timer_metrics_xyz = { "timers_histogram_with_calculated_timer_metrics xyz", "xyz", PV_timers_histogram_with_calculated_timer_metrics_xyz, 5, 5, 100, NULL, 0, PC_timers_histogram_with_calculated_timer_metrics_xyz, 1, 1, PE_timers_histogram_with_calculated_timer_metrics_xyz };

/* timers_single_time_single_top_percentile: [100] count 1 flushInterval 100 pct [-10] calc [] */
static const double PV_timers_single_time_single_top_percentile[] = { 100 };
static const double PP_timers_single_time_single_top_percentile[] = { -10 };
static const exp_metric PE_timers_single_time_single_top_percentile[] = {
    { "count_top10", "1" },
    { "mean_top10", "100" },
    { "lower_top10", "100" },
    { "sum_top10", "100" },
    { "sum_squares_top10", "10000" },
    { "std", "0" },
    { "upper", "100" },
    { "lower", "100" },
    { "count", "1" },
    { "count_ps", "10" },
    { "sum", "100" },
    { "sum_squares", "10000" },
    { "mean", "100" },
    { "median", "100" },
    { NULL, NULL }
};
static const pm_vec PM_timers_single_time_single_top_percentile = { "timers_single_time_single_top_percentile", "a", PV_timers_single_time_single_top_percentile, 1, 1, 100, PP_timers_single_time_single_top_percentile, 1, NULL, 0, 0, PE_timers_single_time_single_top_percentile };

/* timers_single_time_single_top_percentile_with_calculated_timer_metrics: [100] count 1 flushInterval 100 pct [-10] calc ["lower_percent"] */
static const double PV_timers_single_time_single_top_percentile_with_calculated_timer_metrics[] = { 100 };
static const double PP_timers_single_time_single_top_percentile_with_calculated_timer_metrics[] = { -10 };
static const char *const PC_timers_single_time_single_top_percentile_with_calculated_timer_metrics[] = { "lower_percent" };
static const exp_metric PE_timers_single_time_single_top_percentile_with_calculated_timer_metrics[] = {
    { "lower_top10", "100" },
    { NULL, NULL }
};
static const pm_vec PM_timers_single_time_single_top_percentile_with_calculated_timer_metrics = { "timers_single_time_single_top_percentile_with_calculated_timer_metrics", "a", PV_timers_single_time_single_top_percentile_with_calculated_timer_metrics, 1, 1, 100, PP_timers_single_time_single_top_percentile_with_calculated_timer_metrics, 1, PC_timers_single_time_single_top_percentile_with_calculated_timer_metrics, 1, 0, PE_timers_single_time_single_top_percentile_with_calculated_timer_metrics };

/* timers_multiple_times_single_top_percentile: [10,10,10,10,10,10,10,10,100,200] count 10 flushInterval 100 pct [-20] calc [] */
static const double PV_timers_multiple_times_single_top_percentile[] = { 10, 10, 10, 10, 10, 10, 10, 10, 100, 200 };
static const double PP_timers_multiple_times_single_top_percentile[] = { -20 };
static const exp_metric PE_timers_multiple_times_single_top_percentile[] = {
    { "count_top20", "2" },
    { "mean_top20", "150" },
    { "lower_top20", "100" },
    { "sum_top20", "300" },
    { "sum_squares_top20", "50000" },
    { "std", "60.29925372672534" },
    { "upper", "200" },
    { "lower", "10" },
    { "count", "10" },
    { "count_ps", "100" },
    { "sum", "380" },
    { "sum_squares", "50800" },
    { "mean", "38" },
    { "median", "10" },
    { NULL, NULL }
};
static const pm_vec PM_timers_multiple_times_single_top_percentile = { "timers_multiple_times_single_top_percentile", "a", PV_timers_multiple_times_single_top_percentile, 10, 10, 100, PP_timers_multiple_times_single_top_percentile, 1, NULL, 0, 0, PE_timers_multiple_times_single_top_percentile };

/* timers_multiple_times_single_top_percentile_with_calculated_timer_metrics: [10,10,10,10,10,10,10,10,100,200] count 10 flushInterval 100 pct [-20] calc ["mean_percent","sum_percent"] */
static const double PV_timers_multiple_times_single_top_percentile_with_calculated_timer_metrics[] = { 10, 10, 10, 10, 10, 10, 10, 10, 100, 200 };
static const double PP_timers_multiple_times_single_top_percentile_with_calculated_timer_metrics[] = { -20 };
static const char *const PC_timers_multiple_times_single_top_percentile_with_calculated_timer_metrics[] = { "mean_percent", "sum_percent" };
static const exp_metric PE_timers_multiple_times_single_top_percentile_with_calculated_timer_metrics[] = {
    { "mean_top20", "150" },
    { "sum_top20", "300" },
    { NULL, NULL }
};
static const pm_vec PM_timers_multiple_times_single_top_percentile_with_calculated_timer_metrics = { "timers_multiple_times_single_top_percentile_with_calculated_timer_metrics", "a", PV_timers_multiple_times_single_top_percentile_with_calculated_timer_metrics, 10, 10, 100, PP_timers_multiple_times_single_top_percentile_with_calculated_timer_metrics, 1, PC_timers_multiple_times_single_top_percentile_with_calculated_timer_metrics, 2, 0, PE_timers_multiple_times_single_top_percentile_with_calculated_timer_metrics };

/* timers_multiple_times_even: [300,200,400,100] count 4 flushInterval 100 pct null calc [] */
static const double PV_timers_multiple_times_even[] = { 300, 200, 400, 100 };
static const exp_metric PE_timers_multiple_times_even[] = {
    { "std", "111.80339887498948" },
    { "upper", "400" },
    { "lower", "100" },
    { "count", "4" },
    { "count_ps", "40" },
    { "sum", "1000" },
    { "sum_squares", "300000" },
    { "mean", "250" },
    { "median", "250" },
    { NULL, NULL }
};
static const pm_vec PM_timers_multiple_times_even = { "timers_multiple_times_even", "a", PV_timers_multiple_times_even, 4, 4, 100, NULL, 0, NULL, 0, 0, PE_timers_multiple_times_even };

/* timers_multiple_times_even_with_calculated_timer_metrics: [300,200,400,100] count 4 flushInterval 100 pct null calc ["median"] */
static const double PV_timers_multiple_times_even_with_calculated_timer_metrics[] = { 300, 200, 400, 100 };
static const char *const PC_timers_multiple_times_even_with_calculated_timer_metrics[] = { "median" };
static const exp_metric PE_timers_multiple_times_even_with_calculated_timer_metrics[] = {
    { "median", "250" },
    { NULL, NULL }
};
static const pm_vec PM_timers_multiple_times_even_with_calculated_timer_metrics = { "timers_multiple_times_even_with_calculated_timer_metrics", "a", PV_timers_multiple_times_even_with_calculated_timer_metrics, 4, 4, 100, NULL, 0, PC_timers_multiple_times_even_with_calculated_timer_metrics, 1, 0, PE_timers_multiple_times_even_with_calculated_timer_metrics };

/* float40: [0.1,0.7,3.3,12.345,0.01,7.77,99.99,0.3,0.2,1e-7,123456.789,42,0.1,5.5,2.25,3.14159,2.71828,1.41421,0.333,0.666,17.17,8.08,64.5,0.05,250.125,9.999,11.11,0.9,13.7,6.02214,19.95,0.45,77.7,31.4,0.015,88.8,4.4,55.55,0.123,1000.001] count 40.5 flushInterval 10000 pct [90,50,-10,99.9,33.3,0.5,-0.5,100,1,-75] calc [] */
static const double PV_float40[] = { 0.1, 0.7, 3.3, 12.345, 0.01, 7.77, 99.99, 0.3, 0.2, 1e-7, 123456.789, 42, 0.1, 5.5, 2.25, 3.14159, 2.71828, 1.41421, 0.333, 0.666, 17.17, 8.08, 64.5, 0.05, 250.125, 9.999, 11.11, 0.9, 13.7, 6.02214, 19.95, 0.45, 77.7, 31.4, 0.015, 88.8, 4.4, 55.55, 0.123, 1000.001 };
static const double PP_float40[] = { 90, 50, -10, 99.9, 33.3, 0.5, -0.5, 100, 1, -75 };
static const exp_metric PE_float40[] = {
    { "count_90", "36" },
    { "mean_90", "13.68797833611111" },
    { "upper_90", "88.8" },
    { "sum_90", "492.7672201" },
    { "sum_squares_90", "25424.0265189902" },
    { "count_50", "20" },
    { "mean_50", "1.0585540050000002" },
    { "upper_50", "4.4" },
    { "sum_50", "21.171080100000005" },
    { "sum_squares_50", "56.79602281060001" },
    { "count_top10", "4" },
    { "mean_top10", "31201.726250000003" },
    { "lower_top10", "99.99" },
    { "sum_top10", "124806.90500000001" },
    { "sum_squares_top10", "15242651312.706247" },
    { "count_99_9", "40" },
    { "mean_99_9", "3132.4918055025" },
    { "upper_99_9", "123456.789" },
    { "sum_99_9", "125299.67222010001" },
    { "sum_squares_99_9", "15242676736.732767" },
    { "count_33_3", "13" },
    { "mean_33_3", "0.23438462307692307" },
    { "upper_33_3", "0.7" },
    { "sum_33_3", "3.0470001" },
    { "sum_squares_33_3", "1.4148990000000101" },
    { "count_100", "40" },
    { "mean_100", "3132.4918055025" },
    { "upper_100", "123456.789" },
    { "sum_100", "125299.67222010001" },
    { "sum_squares_100", "15242676736.732767" },
    { "count_top75", "30" },
    { "mean_top75", "4176.614707333333" },
    { "lower_top75", "0.45" },
    { "sum_top75", "125298.44122000001" },
    { "sum_squares_top75", "15242676736.453924" },
    { "std", "19267.963398002885" },
    { "upper", "123456.789" },
    { "lower", "1e-7" },
    { "count", "40.5" },
    { "count_ps", "4.05" },
    { "sum", "125299.67222010001" },
    { "sum_squares", "15242676736.732767" },
    { "mean", "3132.4918055025" },
    { "median", "4.95" },
    { NULL, NULL }
};
static const pm_vec PM_float40 = { "float40", "a", PV_float40, 40, 40.5, 10000, PP_float40, 10, NULL, 0, 0, PE_float40 };

/* sorted_order: [10000000000000000,1,1] count 3 flushInterval 1000 pct [90,-34] calc [] */
static const double PV_sorted_order[] = { 10000000000000000, 1, 1 };
static const double PP_sorted_order[] = { 90, -34 };
static const exp_metric PE_sorted_order[] = {
    { "count_90", "3" },
    { "mean_90", "3333333333333334" },
    { "upper_90", "10000000000000000" },
    { "sum_90", "10000000000000002" },
    { "sum_squares_90", "1e+32" },
    { "count_top34", "1" },
    { "mean_top34", "10000000000000000" },
    { "lower_top34", "10000000000000000" },
    { "sum_top34", "10000000000000000" },
    { "sum_squares_top34", "1e+32" },
    { "std", "4714045207910317" },
    { "upper", "10000000000000000" },
    { "lower", "1" },
    { "count", "3" },
    { "count_ps", "3" },
    { "sum", "10000000000000002" },
    { "sum_squares", "1e+32" },
    { "mean", "3333333333333334" },
    { "median", "1" },
    { NULL, NULL }
};
static const pm_vec PM_sorted_order = { "sorted_order", "a", PV_sorted_order, 3, 3, 1000, PP_sorted_order, 2, NULL, 0, 0, PE_sorted_order };

/* pct0_one: [100] count 1 flushInterval 1000 pct [0] calc [] */
static const double PV_pct0_one[] = { 100 };
static const double PP_pct0_one[] = { 0 };
static const exp_metric PE_pct0_one[] = {
    { "count_0", "1" },
    { "mean_0", "100" },
    { "lower_0", "100" },
    { "sum_0", "100" },
    { "sum_squares_0", "10000" },
    { "std", "0" },
    { "upper", "100" },
    { "lower", "100" },
    { "count", "1" },
    { "count_ps", "1" },
    { "sum", "100" },
    { "sum_squares", "10000" },
    { "mean", "100" },
    { "median", "100" },
    { NULL, NULL }
};
static const pm_vec PM_pct0_one = { "pct0_one", "a", PV_pct0_one, 1, 1, 1000, PP_pct0_one, 1, NULL, 0, 0, PE_pct0_one };

/* pct0_three: [100,200,300] count 3 flushInterval 1000 pct [0,10,20] calc [] */
static const double PV_pct0_three[] = { 100, 200, 300 };
static const double PP_pct0_three[] = { 0, 10, 20 };
static const exp_metric PE_pct0_three[] = {
    { "count_20", "1" },
    { "mean_20", "100" },
    { "upper_20", "100" },
    { "sum_20", "100" },
    { "sum_squares_20", "10000" },
    { "std", "81.64965809277261" },
    { "upper", "300" },
    { "lower", "100" },
    { "count", "3" },
    { "count_ps", "3" },
    { "sum", "600" },
    { "sum_squares", "140000" },
    { "mean", "200" },
    { "median", "200" },
    { NULL, NULL }
};
static const pm_vec PM_pct0_three = { "pct0_three", "a", PV_pct0_three, 3, 3, 1000, PP_pct0_three, 3, NULL, 0, 0, PE_pct0_three };

/* hist_order: [1,2,3,4,5,6,7,8,9,10] count 10 flushInterval 200 pct [90,-20,99.9] calc [] histogram [{"metric":"a","bins":[1,2]}] */
static const double PV_hist_order[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
static const double PP_hist_order[] = { 90, -20, 99.9 };
static const exp_metric PE_hist_order[] = {
    { "count_90", "9" },
    { "mean_90", "5" },
    { "upper_90", "9" },
    { "sum_90", "45" },
    { "sum_squares_90", "285" },
    { "count_top20", "2" },
    { "mean_top20", "9.5" },
    { "lower_top20", "9" },
    { "sum_top20", "19" },
    { "sum_squares_top20", "181" },
    { "count_99_9", "10" },
    { "mean_99_9", "5.5" },
    { "upper_99_9", "10" },
    { "sum_99_9", "55" },
    { "sum_squares_99_9", "385" },
    { "std", "2.8722813232690143" },
    { "upper", "10" },
    { "lower", "1" },
    { "count", "10" },
    { "count_ps", "50" },
    { "sum", "55" },
    { "sum_squares", "385" },
    { "mean", "5.5" },
    { "median", "5.5" },
    { "histogram.bin_1", "0" },
    { "histogram.bin_2", "1" },
    { NULL, NULL }
};
static const pm_vec PM_hist_order = { "hist_order", "a", PV_hist_order, 10, 10, 200, PP_hist_order, 3, NULL, 0, 4, PE_hist_order };

/* calc_mix: [5,1,4,2,3] count 5 flushInterval 1000 pct [90,-40,99.9] calc ["count_percent","lower_percent","sum_squares_percent","median","std","histogram"] histogram [{"metric":"a","bins":[0.5,2.5,"inf"]}] */
static const double PV_calc_mix[] = { 5, 1, 4, 2, 3 };
static const double PP_calc_mix[] = { 90, -40, 99.9 };
static const char *const PC_calc_mix[] = { "count_percent", "lower_percent", "sum_squares_percent", "median", "std", "histogram" };
static const exp_metric PE_calc_mix[] = {
    { "count_90", "5" },
    { "sum_squares_90", "55" },
    { "count_top40", "2" },
    { "lower_top40", "4" },
    { "sum_squares_top40", "41" },
    { "std", "1.4142135623730951" },
    { "median", "3" },
    { "histogram.bin_0_5", "0" },
    { "histogram.bin_2_5", "2" },
    { "histogram.bin_inf", "3" },
    { NULL, NULL }
};
static const pm_vec PM_calc_mix = { "calc_mix", "a", PV_calc_mix, 5, 5, 1000, PP_calc_mix, 3, PC_calc_mix, 6, 2, PE_calc_mix };

/* calc_idle: [] count 0 flushInterval 200 pct [90] calc ["count_ps"] */
static const double PV_calc_idle[] = { 0 };
static const double PP_calc_idle[] = { 90 };
static const char *const PC_calc_idle[] = { "count_ps" };
static const exp_metric PE_calc_idle[] = {
    { "count_ps", "0" },
    { NULL, NULL }
};
static const pm_vec PM_calc_idle = { "calc_idle", "a", PV_calc_idle, 0, 0, 200, PP_calc_idle, 1, PC_calc_idle, 1, 0, PE_calc_idle };

/* hist_edge: [0,0.5,1,1,2.5,3,1000000000] count 7 flushInterval 1000 pct null calc [] histogram [{"metric":"x","bins":[0]},{"metric":"a","bins":[0.5,1,2.5,1000]}] */
static const double PV_hist_edge[] = { 0, 0.5, 1, 1, 2.5, 3, 1000000000 };
static const exp_metric PE_hist_edge[] = {
    { "std", "349927105.6453131" },
    { "upper", "1000000000" },
    { "lower", "0" },
    { "count", "7" },
    { "count_ps", "7" },
    { "sum", "1000000008" },
    { "sum_squares", "1000000000000000000" },
    { "mean", "142857144" },
    { "median", "1" },
    { "histogram.bin_0_5", "1" },
    { "histogram.bin_1", "1" },
    { "histogram.bin_2_5", "2" },
    { "histogram.bin_1000", "2" },
    { NULL, NULL }
};
static const pm_vec PM_hist_edge = { "hist_edge", "a", PV_hist_edge, 7, 7, 1000, NULL, 0, NULL, 0, 3, PE_hist_edge };

/* rates: [7,3] count 4.25 flushInterval 3000 pct [50] calc [] */
static const double PV_rates[] = { 7, 3 };
static const double PP_rates[] = { 50 };
static const exp_metric PE_rates[] = {
    { "count_50", "1" },
    { "mean_50", "3" },
    { "upper_50", "3" },
    { "sum_50", "3" },
    { "sum_squares_50", "9" },
    { "std", "2" },
    { "upper", "7" },
    { "lower", "3" },
    { "count", "4.25" },
    { "count_ps", "1.4166666666666667" },
    { "sum", "10" },
    { "sum_squares", "58" },
    { "mean", "5" },
    { "median", "5" },
    { NULL, NULL }
};
static const pm_vec PM_rates = { "rates", "a", PV_rates, 2, 4.25, 3000, PP_rates, 1, NULL, 0, 0, PE_rates };

/* round_half: [5,1,4,2,3] count 5 flushInterval 1000 pct [50,30,-50,10,-10] calc [] */
static const double PV_round_half[] = { 5, 1, 4, 2, 3 };
static const double PP_round_half[] = { 50, 30, -50, 10, -10 };
static const exp_metric PE_round_half[] = {
    { "count_50", "3" },
    { "mean_50", "2" },
    { "upper_50", "3" },
    { "sum_50", "6" },
    { "sum_squares_50", "14" },
    { "count_30", "2" },
    { "mean_30", "1.5" },
    { "upper_30", "2" },
    { "sum_30", "3" },
    { "sum_squares_30", "5" },
    { "count_top50", "3" },
    { "mean_top50", "4" },
    { "lower_top50", "3" },
    { "sum_top50", "12" },
    { "sum_squares_top50", "50" },
    { "count_10", "1" },
    { "mean_10", "1" },
    { "upper_10", "1" },
    { "sum_10", "1" },
    { "sum_squares_10", "1" },
    { "count_top10", "1" },
    { "mean_top10", "5" },
    { "lower_top10", "5" },
    { "sum_top10", "5" },
    { "sum_squares_top10", "25" },
    { "std", "1.4142135623730951" },
    { "upper", "5" },
    { "lower", "1" },
    { "count", "5" },
    { "count_ps", "5" },
    { "sum", "15" },
    { "sum_squares", "55" },
    { "mean", "3" },
    { "median", "3" },
    { NULL, NULL }
};
static const pm_vec PM_round_half = { "round_half", "a", PV_round_half, 5, 5, 1000, PP_round_half, 5, NULL, 0, 0, PE_round_half };

/* round_order: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50] count 50 flushInterval 1000 pct [29,-29,57,14.5,58.5,1,-1] calc [] */
static const double PV_round_order[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50 };
static const double PP_round_order[] = { 29, -29, 57, 14.5, 58.5, 1, -1 };
static const exp_metric PE_round_order[] = {
    { "count_29", "14" },
    { "mean_29", "7.5" },
    { "upper_29", "14" },
    { "sum_29", "105" },
    { "sum_squares_29", "1015" },
    { "count_top29", "14" },
    { "mean_top29", "43.5" },
    { "lower_top29", "37" },
    { "sum_top29", "609" },
    { "sum_squares_top29", "26719" },
    { "count_57", "28" },
    { "mean_57", "14.5" },
    { "upper_57", "28" },
    { "sum_57", "406" },
    { "sum_squares_57", "7714" },
    { "count_14_5", "7" },
    { "mean_14_5", "4" },
    { "upper_14_5", "7" },
    { "sum_14_5", "28" },
    { "sum_squares_14_5", "140" },
    { "count_58_5", "29" },
    { "mean_58_5", "15" },
    { "upper_58_5", "29" },
    { "sum_58_5", "435" },
    { "sum_squares_58_5", "8555" },
    { "count_1", "1" },
    { "mean_1", "1" },
    { "upper_1", "1" },
    { "sum_1", "1" },
    { "sum_squares_1", "1" },
    { "count_top1", "1" },
    { "mean_top1", "50" },
    { "lower_top1", "50" },
    { "sum_top1", "50" },
    { "sum_squares_top1", "2500" },
    { "std", "14.430869689661812" },
    { "upper", "50" },
    { "lower", "1" },
    { "count", "50" },
    { "count_ps", "50" },
    { "sum", "1275" },
    { "sum_squares", "42925" },
    { "mean", "25.5" },
    { "median", "25.5" },
    { NULL, NULL }
};
static const pm_vec PM_round_order = { "round_order", "a", PV_round_order, 50, 50, 1000, PP_round_order, 7, NULL, 0, 0, PE_round_order };

/* pct_dup: [1,2,3] count 3 flushInterval 1000 pct [90,90] calc [] */
static const double PV_pct_dup[] = { 1, 2, 3 };
static const double PP_pct_dup[] = { 90, 90 };
static const exp_metric PE_pct_dup[] = {
    { "count_90", "3" },
    { "mean_90", "2" },
    { "upper_90", "3" },
    { "sum_90", "6" },
    { "sum_squares_90", "14" },
    { "std", "0.816496580927726" },
    { "upper", "3" },
    { "lower", "1" },
    { "count", "3" },
    { "count_ps", "3" },
    { "sum", "6" },
    { "sum_squares", "14" },
    { "mean", "2" },
    { "median", "2" },
    { NULL, NULL }
};
static const pm_vec PM_pct_dup = { "pct_dup", "a", PV_pct_dup, 3, 3, 1000, PP_pct_dup, 2, NULL, 0, 0, PE_pct_dup };

static const pm_vec *const PM_ALL[] = {
    &PM_timers_handle_empty,
    &PM_timers_single_time,
    &PM_timer_single_time_with_one_filter,
    &PM_timer_single_time_multiple_filter,
    &PM_timers_multiple_times,
    &PM_timers_multiple_times_with_calculated_timer_metrics,
    &PM_timers_single_time_single_percentile,
    &PM_timers_single_time_single_percentile_with_calculated_timer_metrics,
    &PM_timers_single_time_multiple_percentiles,
    &PM_timers_single_time_multiple_percentiles_with_calculated_timer_metrics,
    &PM_timers_multiple_times_single_percentiles,
    &PM_timers_multiple_times_single_percentiles_with_calculated_timer_metrics,
    &PM_timers_multiple_times_multiple_percentiles,
    &PM_timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics,
    &PM_timers_sampled_times,
    &PM_timers_histogram_a,
    &PM_timers_histogram_abc,
    &PM_timers_histogram_foo,
    &PM_timers_histogram_barbazfoobar,
    &PM_timers_histogram_bar_bazfoobar_abc,
    &PM_timers_histogram_xyz,
    &PM_timers_histogram_with_calculated_timer_metrics_a,
    &PM_timers_histogram_with_calculated_timer_metrics_abc,
    &PM_timers_histogram_with_calculated_timer_metrics_foo,
    &PM_timers_histogram_with_calculated_timer_metrics_barbazfoobar,
    &PM_timers_histogram_with_calculated_timer_metrics_bar_bazfoobar_abc,
    &PM_timers_histogram_with_calculated_timer_metrics_xyz,
    &PM_timers_single_time_single_top_percentile,
    &PM_timers_single_time_single_top_percentile_with_calculated_timer_metrics,
    &PM_timers_multiple_times_single_top_percentile,
    &PM_timers_multiple_times_single_top_percentile_with_calculated_timer_metrics,
    &PM_timers_multiple_times_even,
    &PM_timers_multiple_times_even_with_calculated_timer_metrics,
    &PM_float40,
    &PM_sorted_order,
    &PM_pct0_one,
    &PM_pct0_three,
    &PM_hist_order,
    &PM_calc_mix,
    &PM_calc_idle,
    &PM_hist_edge,
    &PM_rates,
    &PM_round_half,
    &PM_round_order
};

/* One test per statsd test; a test and its _with_calculated_timer_metrics
 * twin share a function. */
#define PM_TEST(fn, ...)                                  \
    static void fn(void **state)                          \
    {                                                     \
        (void)state;                                      \
        const pm_vec *const v_[] = { __VA_ARGS__ };       \
        int bad_ = 0;                                     \
        for (size_t i_ = 0; i_ < sizeof v_ / sizeof v_[0]; i_++) \
            bad_ += run_vec(v_[i_], 0);                   \
        if (bad_)                                         \
            fail_msg("%d differences from statsd", bad_); \
    }

static void pm_timers_handle_empty(void **state)
{
    (void)state;
    check_vec(&PM_timers_handle_empty);
    /* A timer whose samples were all taken elsewhere (n == 0) is idle too. */
    sy_flush_opts o;
    vec_opts(&PM_timers_handle_empty, &o);
    sy_timer_data *t = mk_timer(NULL, 0, 0);
    got_list g = { 0 };
    sy_timer_stats(&o, "a", t, stat_cb, &g);
    int bad = compare("timers_handle_empty (n=0)", &g, PE_timers_handle_empty, 0);
    got_free(&g);
    free_timer(t);
    assert_int_equal(bad, 0);
}

PM_TEST(pm_timers_single_time, &PM_timers_single_time)
PM_TEST(pm_timer_single_time_filters, &PM_timer_single_time_with_one_filter,
        &PM_timer_single_time_multiple_filter)

static void pm_timers_multiple_times(void **state)
{
    (void)state;
    check_vec(&PM_timers_multiple_times);
    check_vec(&PM_timers_multiple_times_with_calculated_timer_metrics);
    /* The std of 100, 200, 300, bit for bit. */
    sy_flush_opts o;
    vec_opts(&PM_timers_multiple_times, &o);
    double v[] = { 300, 100, 200 };
    sy_timer_data *t = mk_timer(v, 3, 3);
    got_list g = { 0 };
    sy_timer_stats(&o, "a", t, stat_cb, &g);
    double std = got_get(&g, "std");
    assert_true(std == 81.64965809277261);
    assert_true(got_get(&g, "mean") == 200);
    assert_true(got_get(&g, "median") == 200);
    assert_true(got_get(&g, "count_ps") == 30);
    got_free(&g);
    free_timer(t);
}

PM_TEST(pm_timers_single_time_single_percentile, &PM_timers_single_time_single_percentile,
        &PM_timers_single_time_single_percentile_with_calculated_timer_metrics)
PM_TEST(pm_timers_single_time_multiple_percentiles, &PM_timers_single_time_multiple_percentiles,
        &PM_timers_single_time_multiple_percentiles_with_calculated_timer_metrics)
PM_TEST(pm_timers_multiple_times_single_percentiles, &PM_timers_multiple_times_single_percentiles,
        &PM_timers_multiple_times_single_percentiles_with_calculated_timer_metrics)
PM_TEST(pm_timers_multiple_times_multiple_percentiles,
        &PM_timers_multiple_times_multiple_percentiles,
        &PM_timers_multiple_times_multiple_percentiles_with_calculated_timer_metrics)
PM_TEST(pm_timers_sampled_times, &PM_timers_sampled_times)
PM_TEST(pm_timers_histogram, &PM_timers_histogram_a, &PM_timers_histogram_abc,
        &PM_timers_histogram_foo, &PM_timers_histogram_barbazfoobar,
        &PM_timers_histogram_bar_bazfoobar_abc, &PM_timers_histogram_xyz)
PM_TEST(pm_timers_histogram_with_calculated_timer_metrics,
        &PM_timers_histogram_with_calculated_timer_metrics_a,
        &PM_timers_histogram_with_calculated_timer_metrics_abc,
        &PM_timers_histogram_with_calculated_timer_metrics_foo,
        &PM_timers_histogram_with_calculated_timer_metrics_barbazfoobar,
        &PM_timers_histogram_with_calculated_timer_metrics_bar_bazfoobar_abc,
        &PM_timers_histogram_with_calculated_timer_metrics_xyz)
PM_TEST(pm_timers_single_time_single_top_percentile, &PM_timers_single_time_single_top_percentile,
        &PM_timers_single_time_single_top_percentile_with_calculated_timer_metrics)

static void pm_timers_multiple_times_single_top_percentile(void **state)
{
    (void)state;
    check_vec(&PM_timers_multiple_times_single_top_percentile);
    check_vec(&PM_timers_multiple_times_single_top_percentile_with_calculated_timer_metrics);
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

PM_TEST(pm_timers_multiple_times_even, &PM_timers_multiple_times_even,
        &PM_timers_multiple_times_even_with_calculated_timer_metrics)

/* More vectors computed by statsd's process_metrics: float sums over 40
 * values and ten thresholds, 0 and 100 thresholds, rounding of the
 * threshold counts (Math.round, |pct| / 100 * count in that order),
 * filters mixed with negative thresholds and histograms, histogram bin
 * edges (exclusive upper bounds, values past the last bin dropped). */
PM_TEST(pm_float_sums_bit_exact, &PM_float40)
PM_TEST(pm_zero_threshold, &PM_pct0_one, &PM_pct0_three)
PM_TEST(pm_threshold_rounding, &PM_round_half, &PM_round_order)
PM_TEST(pm_filters_mixed, &PM_calc_mix, &PM_calc_idle)
PM_TEST(pm_histogram_edges, &PM_hist_edge, &PM_hist_order)
PM_TEST(pm_sampled_rates, &PM_rates)

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
    check_vec(&PM_sorted_order);
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
 * sum, sum_squares, mean, median; then the histogram bins. */
static void pm_stat_order(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof PM_ALL / sizeof PM_ALL[0]; i++)
        if (PM_ALL[i]->n)
            bad += run_vec(PM_ALL[i], 1);
    if (bad)
        fail_msg("%d differences from statsd's order", bad);
}

/* statsd: current_timer_data["count"] = current_timer_data["count_ps"] = 0
 * assigns count_ps first, so an idle timer's two values come out as
 * count_ps, count. */
static void pm_idle_timer_order_STATSD_DIFF(void **state)
{
    (void)state;
    if (run_vec(&PM_timers_handle_empty, 1))
        fail_msg("idle timer: statsd emits count_ps before count");
}

/* percentThreshold [90, 90]: statsd's values live in an object, so each
 * name is emitted once, not once per repetition. */
static void pm_duplicate_threshold_STATSD_DIFF(void **state)
{
    (void)state;
    check_vec(&PM_pct_dup);
}

/* Documented in flush.c: a negative threshold covering every value reads
 * cumulativeValues[-1] in statsd (mean/sum/sum_squares NaN); switchyard
 * emits the sums of all values. */
static void pm_negative_threshold_all_values_DELIB(void **state)
{
    (void)state;
    static const exp_metric sy_answer[] = {
        { "count_top100", "3" }, { "mean_top100", "2" }, { "lower_top100", "1" },
        { "sum_top100", "6" }, { "sum_squares_top100", "14" },
        { "std", "0.816496580927726" }, { "upper", "3" }, { "lower", "1" }, { "count", "3" },
        { "count_ps", "3" }, { "sum", "6" }, { "sum_squares", "14" }, { "mean", "2" },
        { "median", "2" }, { NULL, NULL },
    };
    double v[] = { 3, 1, 2 };
    double pct[] = { -100 };
    sy_flush_opts o = { .flush_interval_ms = 1000, .pct = pct, .npct = 1 };
    sy_timer_data *t = mk_timer(v, 3, 3);
    got_list g = { 0 };
    sy_timer_stats(&o, "a", t, stat_cb, &g);
    int bad = compare("pct -100", &g, sy_answer, 1);
    got_free(&g);
    free_timer(t);
    assert_int_equal(bad, 0);
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

typedef struct scen_flush {
    const char *const *packets;
    const exp_metric *expect;
} scen_flush;

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

static int run_scenario_(rig *r, const char *name, const scen_flush *s, size_t nflush)
{
    int bad = 0;
    rig_start(r);
    got_list g = { 0 };
    for (size_t i = 0; i < nflush; i++) {
        for (const char *const *p = s[i].packets; *p; p++)
            rig_feed(r, *p);
        rig_flush(r, &g);
        char label[128];
        snprintf(label, sizeof label, "%s flush %zu", name, i + 1);
        int b = compare(label, &g, s[i].expect, 0);
        /* consecutive expected names of different types keep their order */
        for (size_t j = 1; !b && s[i].expect[j].name; j++) {
            long x = got_find(&g, s[i].expect[j - 1].name), y = got_find(&g, s[i].expect[j].name);
            if (g.kind[x] > g.kind[y]) {
                print_message("  %s: kind of %s > kind of %s\n", label, g.name[x], g.name[y]);
                b++;
            }
        }
        b += check_plumbing(label, &g, &r->res, 0);
        bad += b;
    }
    got_free(&g);
    rig_stop(r);
    return bad;
}

#define SCEN(r, name) run_scenario_((r), #name, S_##name, sizeof S_##name / sizeof S_##name[0])

/* ---- The scenarios: the packets of each flush, and statsd 0.9 stats.js +
 * backends/graphite.js output for them (flushInterval 200; config in the
 * comment; timing values NULL; timestamp_lag as flushed 1 s apart). ---- */

/* legacy: statsd config {"percentThreshold": [90]} */
static const char *const P_legacy_0[] = { "a_test_value:100|c", "t.val:100|ms\nt.val:200|ms\nt.val:300|ms", "g.val:70|g", "s.val:x|s\ns.val:y|s\ns.val:x|s", "a.b;env=prod:3|c", "c.d:1|c|#env:prod,role:web", NULL };
static const exp_metric E_legacy_0[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "30" },
    { "stats_counts.statsd.packets_received", "6" },
    { "stats.statsd.metrics_received", "50" },
    { "stats_counts.statsd.metrics_received", "10" },
    { "stats.a_test_value", "500" },
    { "stats_counts.a_test_value", "100" },
    { "stats.a.b;env=prod", "15" },
    { "stats_counts.a.b;env=prod", "3" },
    { "stats.c.d;env=prod;role=web", "5" },
    { "stats_counts.c.d;env=prod;role=web", "1" },
    { "stats.timers.t.val.count_90", "3" },
    { "stats.timers.t.val.mean_90", "200" },
    { "stats.timers.t.val.upper_90", "300" },
    { "stats.timers.t.val.sum_90", "600" },
    { "stats.timers.t.val.sum_squares_90", "140000" },
    { "stats.timers.t.val.std", "81.64965809277261" },
    { "stats.timers.t.val.upper", "300" },
    { "stats.timers.t.val.lower", "100" },
    { "stats.timers.t.val.count", "3" },
    { "stats.timers.t.val.count_ps", "15" },
    { "stats.timers.t.val.sum", "600" },
    { "stats.timers.t.val.sum_squares", "140000" },
    { "stats.timers.t.val.mean", "200" },
    { "stats.timers.t.val.median", "200" },
    { "stats.gauges.g.val", "70" },
    { "stats.sets.s.val.count", "2" },
    { "statsd.numStats", "9" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_legacy_1[] = { NULL };
static const exp_metric E_legacy_1[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.a_test_value", "0" },
    { "stats_counts.a_test_value", "0" },
    { "stats.a.b;env=prod", "0" },
    { "stats_counts.a.b;env=prod", "0" },
    { "stats.c.d;env=prod;role=web", "0" },
    { "stats_counts.c.d;env=prod;role=web", "0" },
    { "stats.timers.t.val.count_ps", "0" },
    { "stats.timers.t.val.count", "0" },
    { "stats.gauges.g.val", "70" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "stats.sets.s.val.count", "0" },
    { "statsd.numStats", "10" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_legacy[] = { { P_legacy_0, E_legacy_0 }, { P_legacy_1, E_legacy_1 } };

/* new: statsd config {"percentThreshold": [90], "graphite": {"legacyNamespace": false}} */
static const char *const P_new_0[] = { "a_test_value:100|c", "t.val:100|ms\nt.val:200|ms\nt.val:300|ms", "g.val:70|g", "s.val:x|s\ns.val:y|s\ns.val:x|s", "a.b;env=prod:3|c", "c.d:1|c|#env:prod,role:web", NULL };
static const exp_metric E_new_0[] = {
    { "stats.counters.statsd.bad_lines_seen.rate", "0" },
    { "stats.counters.statsd.bad_lines_seen.count", "0" },
    { "stats.counters.statsd.packets_received.rate", "30" },
    { "stats.counters.statsd.packets_received.count", "6" },
    { "stats.counters.statsd.metrics_received.rate", "50" },
    { "stats.counters.statsd.metrics_received.count", "10" },
    { "stats.counters.a_test_value.rate", "500" },
    { "stats.counters.a_test_value.count", "100" },
    { "stats.counters.a.b.rate;env=prod", "15" },
    { "stats.counters.a.b.count;env=prod", "3" },
    { "stats.counters.c.d.rate;env=prod;role=web", "5" },
    { "stats.counters.c.d.count;env=prod;role=web", "1" },
    { "stats.timers.t.val.count_90", "3" },
    { "stats.timers.t.val.mean_90", "200" },
    { "stats.timers.t.val.upper_90", "300" },
    { "stats.timers.t.val.sum_90", "600" },
    { "stats.timers.t.val.sum_squares_90", "140000" },
    { "stats.timers.t.val.std", "81.64965809277261" },
    { "stats.timers.t.val.upper", "300" },
    { "stats.timers.t.val.lower", "100" },
    { "stats.timers.t.val.count", "3" },
    { "stats.timers.t.val.count_ps", "15" },
    { "stats.timers.t.val.sum", "600" },
    { "stats.timers.t.val.sum_squares", "140000" },
    { "stats.timers.t.val.mean", "200" },
    { "stats.timers.t.val.median", "200" },
    { "stats.gauges.g.val", "70" },
    { "stats.sets.s.val.count", "2" },
    { "stats.statsd.numStats", "9" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_new_1[] = { NULL };
static const exp_metric E_new_1[] = {
    { "stats.counters.statsd.bad_lines_seen.rate", "0" },
    { "stats.counters.statsd.bad_lines_seen.count", "0" },
    { "stats.counters.statsd.packets_received.rate", "0" },
    { "stats.counters.statsd.packets_received.count", "0" },
    { "stats.counters.statsd.metrics_received.rate", "0" },
    { "stats.counters.statsd.metrics_received.count", "0" },
    { "stats.counters.a_test_value.rate", "0" },
    { "stats.counters.a_test_value.count", "0" },
    { "stats.counters.a.b.rate;env=prod", "0" },
    { "stats.counters.a.b.count;env=prod", "0" },
    { "stats.counters.c.d.rate;env=prod;role=web", "0" },
    { "stats.counters.c.d.count;env=prod;role=web", "0" },
    { "stats.timers.t.val.count_ps", "0" },
    { "stats.timers.t.val.count", "0" },
    { "stats.gauges.g.val", "70" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "stats.sets.s.val.count", "0" },
    { "stats.statsd.numStats", "10" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_new[] = { { P_new_0, E_new_0 }, { P_new_1, E_new_1 } };

/* custom: statsd config {"percentThreshold": [90], "graphite": {"legacyNamespace": false, "globalPrefix": "pfx", "prefixCounter": "cnt", "prefixTimer": "tmr", "prefixGauge": "gge", "prefixSet": "st"}} */
static const char *const P_custom_0[] = { "a_test_value:100|c", "t.val:100|ms\nt.val:200|ms\nt.val:300|ms", "g.val:70|g", "s.val:x|s\ns.val:y|s\ns.val:x|s", "a.b;env=prod:3|c", "c.d:1|c|#env:prod,role:web", NULL };
static const exp_metric E_custom_0[] = {
    { "pfx.cnt.statsd.bad_lines_seen.rate", "0" },
    { "pfx.cnt.statsd.bad_lines_seen.count", "0" },
    { "pfx.cnt.statsd.packets_received.rate", "30" },
    { "pfx.cnt.statsd.packets_received.count", "6" },
    { "pfx.cnt.statsd.metrics_received.rate", "50" },
    { "pfx.cnt.statsd.metrics_received.count", "10" },
    { "pfx.cnt.a_test_value.rate", "500" },
    { "pfx.cnt.a_test_value.count", "100" },
    { "pfx.cnt.a.b.rate;env=prod", "15" },
    { "pfx.cnt.a.b.count;env=prod", "3" },
    { "pfx.cnt.c.d.rate;env=prod;role=web", "5" },
    { "pfx.cnt.c.d.count;env=prod;role=web", "1" },
    { "pfx.tmr.t.val.count_90", "3" },
    { "pfx.tmr.t.val.mean_90", "200" },
    { "pfx.tmr.t.val.upper_90", "300" },
    { "pfx.tmr.t.val.sum_90", "600" },
    { "pfx.tmr.t.val.sum_squares_90", "140000" },
    { "pfx.tmr.t.val.std", "81.64965809277261" },
    { "pfx.tmr.t.val.upper", "300" },
    { "pfx.tmr.t.val.lower", "100" },
    { "pfx.tmr.t.val.count", "3" },
    { "pfx.tmr.t.val.count_ps", "15" },
    { "pfx.tmr.t.val.sum", "600" },
    { "pfx.tmr.t.val.sum_squares", "140000" },
    { "pfx.tmr.t.val.mean", "200" },
    { "pfx.tmr.t.val.median", "200" },
    { "pfx.gge.g.val", "70" },
    { "pfx.st.s.val.count", "2" },
    { "pfx.statsd.numStats", "9" },
    { "pfx.statsd.graphiteStats.calculationtime", NULL },
    { "pfx.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_custom[] = { { P_custom_0, E_custom_0 } };

/* empty: statsd config {"percentThreshold": [90], "graphite": {"legacyNamespace": false, "globalPrefix": "", "prefixCounter": "", "prefixTimer": "", "prefixGauge": "", "prefixSet": ""}} */
static const char *const P_empty_0[] = { "a_test_value:100|c", "t.val:100|ms\nt.val:200|ms\nt.val:300|ms", "g.val:70|g", "s.val:x|s\ns.val:y|s\ns.val:x|s", "a.b;env=prod:3|c", "c.d:1|c|#env:prod,role:web", NULL };
static const exp_metric E_empty_0[] = {
    { "statsd.bad_lines_seen.rate", "0" },
    { "statsd.bad_lines_seen.count", "0" },
    { "statsd.packets_received.rate", "30" },
    { "statsd.packets_received.count", "6" },
    { "statsd.metrics_received.rate", "50" },
    { "statsd.metrics_received.count", "10" },
    { "a_test_value.rate", "500" },
    { "a_test_value.count", "100" },
    { "a.b.rate;env=prod", "15" },
    { "a.b.count;env=prod", "3" },
    { "c.d.rate;env=prod;role=web", "5" },
    { "c.d.count;env=prod;role=web", "1" },
    { "t.val.count_90", "3" },
    { "t.val.mean_90", "200" },
    { "t.val.upper_90", "300" },
    { "t.val.sum_90", "600" },
    { "t.val.sum_squares_90", "140000" },
    { "t.val.std", "81.64965809277261" },
    { "t.val.upper", "300" },
    { "t.val.lower", "100" },
    { "t.val.count", "3" },
    { "t.val.count_ps", "15" },
    { "t.val.sum", "600" },
    { "t.val.sum_squares", "140000" },
    { "t.val.mean", "200" },
    { "t.val.median", "200" },
    { "g.val", "70" },
    { "s.val.count", "2" },
    { "statsd.numStats", "9" },
    { "statsd.graphiteStats.calculationtime", NULL },
    { "statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_empty[] = { { P_empty_0, E_empty_0 } };

/* emptygp: statsd config {"percentThreshold": [90], "graphite": {"legacyNamespace": false, "globalPrefix": ""}} */
static const char *const P_emptygp_0[] = { "a_test_value:100|c", "t.val:100|ms\nt.val:200|ms\nt.val:300|ms", "g.val:70|g", "s.val:x|s\ns.val:y|s\ns.val:x|s", "a.b;env=prod:3|c", "c.d:1|c|#env:prod,role:web", NULL };
static const exp_metric E_emptygp_0[] = {
    { "counters.statsd.bad_lines_seen.rate", "0" },
    { "counters.statsd.bad_lines_seen.count", "0" },
    { "counters.statsd.packets_received.rate", "30" },
    { "counters.statsd.packets_received.count", "6" },
    { "counters.statsd.metrics_received.rate", "50" },
    { "counters.statsd.metrics_received.count", "10" },
    { "counters.a_test_value.rate", "500" },
    { "counters.a_test_value.count", "100" },
    { "counters.a.b.rate;env=prod", "15" },
    { "counters.a.b.count;env=prod", "3" },
    { "counters.c.d.rate;env=prod;role=web", "5" },
    { "counters.c.d.count;env=prod;role=web", "1" },
    { "timers.t.val.count_90", "3" },
    { "timers.t.val.mean_90", "200" },
    { "timers.t.val.upper_90", "300" },
    { "timers.t.val.sum_90", "600" },
    { "timers.t.val.sum_squares_90", "140000" },
    { "timers.t.val.std", "81.64965809277261" },
    { "timers.t.val.upper", "300" },
    { "timers.t.val.lower", "100" },
    { "timers.t.val.count", "3" },
    { "timers.t.val.count_ps", "15" },
    { "timers.t.val.sum", "600" },
    { "timers.t.val.sum_squares", "140000" },
    { "timers.t.val.mean", "200" },
    { "timers.t.val.median", "200" },
    { "gauges.g.val", "70" },
    { "sets.s.val.count", "2" },
    { "statsd.numStats", "9" },
    { "statsd.graphiteStats.calculationtime", NULL },
    { "statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_emptygp[] = { { P_emptygp_0, E_emptygp_0 } };

/* suffix_new: statsd config {"percentThreshold": [90], "graphite": {"legacyNamespace": false, "globalSuffix": "statssuffix"}} */
static const char *const P_suffix_new_0[] = { "a_test_value:100|c", "t.val:100|ms\nt.val:200|ms\nt.val:300|ms", "g.val:70|g", "s.val:x|s\ns.val:y|s\ns.val:x|s", "a.b;env=prod:3|c", "c.d:1|c|#env:prod,role:web", NULL };
static const exp_metric E_suffix_new_0[] = {
    { "stats.counters.statsd.bad_lines_seen.rate.statssuffix", "0" },
    { "stats.counters.statsd.bad_lines_seen.count.statssuffix", "0" },
    { "stats.counters.statsd.packets_received.rate.statssuffix", "30" },
    { "stats.counters.statsd.packets_received.count.statssuffix", "6" },
    { "stats.counters.statsd.metrics_received.rate.statssuffix", "50" },
    { "stats.counters.statsd.metrics_received.count.statssuffix", "10" },
    { "stats.counters.a_test_value.rate.statssuffix", "500" },
    { "stats.counters.a_test_value.count.statssuffix", "100" },
    { "stats.counters.a.b.rate.statssuffix;env=prod", "15" },
    { "stats.counters.a.b.count.statssuffix;env=prod", "3" },
    { "stats.counters.c.d.rate.statssuffix;env=prod;role=web", "5" },
    { "stats.counters.c.d.count.statssuffix;env=prod;role=web", "1" },
    { "stats.timers.t.val.count_90.statssuffix", "3" },
    { "stats.timers.t.val.mean_90.statssuffix", "200" },
    { "stats.timers.t.val.upper_90.statssuffix", "300" },
    { "stats.timers.t.val.sum_90.statssuffix", "600" },
    { "stats.timers.t.val.sum_squares_90.statssuffix", "140000" },
    { "stats.timers.t.val.std.statssuffix", "81.64965809277261" },
    { "stats.timers.t.val.upper.statssuffix", "300" },
    { "stats.timers.t.val.lower.statssuffix", "100" },
    { "stats.timers.t.val.count.statssuffix", "3" },
    { "stats.timers.t.val.count_ps.statssuffix", "15" },
    { "stats.timers.t.val.sum.statssuffix", "600" },
    { "stats.timers.t.val.sum_squares.statssuffix", "140000" },
    { "stats.timers.t.val.mean.statssuffix", "200" },
    { "stats.timers.t.val.median.statssuffix", "200" },
    { "stats.gauges.g.val.statssuffix", "70" },
    { "stats.sets.s.val.count.statssuffix", "2" },
    { "stats.statsd.numStats.statssuffix", "9" },
    { "stats.statsd.graphiteStats.calculationtime.statssuffix", NULL },
    { "stats.statsd.processing_time.statssuffix", NULL },
    { NULL, NULL }
};
static const scen_flush S_suffix_new[] = { { P_suffix_new_0, E_suffix_new_0 } };

/* suffix_legacy: statsd config {"percentThreshold": [90], "graphite": {"globalSuffix": "sfx"}} */
static const char *const P_suffix_legacy_0[] = { "a_test_value:100|c", "t.val:100|ms\nt.val:200|ms\nt.val:300|ms", "g.val:70|g", "s.val:x|s\ns.val:y|s\ns.val:x|s", "a.b;env=prod:3|c", "c.d:1|c|#env:prod,role:web", NULL };
static const exp_metric E_suffix_legacy_0[] = {
    { "stats.statsd.bad_lines_seen.sfx", "0" },
    { "stats_counts.statsd.bad_lines_seen.sfx", "0" },
    { "stats.statsd.packets_received.sfx", "30" },
    { "stats_counts.statsd.packets_received.sfx", "6" },
    { "stats.statsd.metrics_received.sfx", "50" },
    { "stats_counts.statsd.metrics_received.sfx", "10" },
    { "stats.a_test_value.sfx", "500" },
    { "stats_counts.a_test_value.sfx", "100" },
    { "stats.a.b.sfx;env=prod", "15" },
    { "stats_counts.a.b.sfx;env=prod", "3" },
    { "stats.c.d.sfx;env=prod;role=web", "5" },
    { "stats_counts.c.d.sfx;env=prod;role=web", "1" },
    { "stats.timers.t.val.count_90.sfx", "3" },
    { "stats.timers.t.val.mean_90.sfx", "200" },
    { "stats.timers.t.val.upper_90.sfx", "300" },
    { "stats.timers.t.val.sum_90.sfx", "600" },
    { "stats.timers.t.val.sum_squares_90.sfx", "140000" },
    { "stats.timers.t.val.std.sfx", "81.64965809277261" },
    { "stats.timers.t.val.upper.sfx", "300" },
    { "stats.timers.t.val.lower.sfx", "100" },
    { "stats.timers.t.val.count.sfx", "3" },
    { "stats.timers.t.val.count_ps.sfx", "15" },
    { "stats.timers.t.val.sum.sfx", "600" },
    { "stats.timers.t.val.sum_squares.sfx", "140000" },
    { "stats.timers.t.val.mean.sfx", "200" },
    { "stats.timers.t.val.median.sfx", "200" },
    { "stats.gauges.g.val.sfx", "70" },
    { "stats.sets.s.val.count.sfx", "2" },
    { "statsd.numStats.sfx", "9" },
    { "stats.statsd.graphiteStats.calculationtime.sfx", NULL },
    { "stats.statsd.processing_time.sfx", NULL },
    { NULL, NULL }
};
static const scen_flush S_suffix_legacy[] = { { P_suffix_legacy_0, E_suffix_legacy_0 } };

/* nocounts_legacy: statsd config {"percentThreshold": [90], "flush_counts": false} */
static const char *const P_nocounts_legacy_0[] = { "a_test_value:100|c", "t.val:100|ms\nt.val:200|ms\nt.val:300|ms", "g.val:70|g", "s.val:x|s\ns.val:y|s\ns.val:x|s", "a.b;env=prod:3|c", "c.d:1|c|#env:prod,role:web", NULL };
static const exp_metric E_nocounts_legacy_0[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "30" },
    { "stats.statsd.metrics_received", "50" },
    { "stats.a_test_value", "500" },
    { "stats.a.b;env=prod", "15" },
    { "stats.c.d;env=prod;role=web", "5" },
    { "stats.timers.t.val.count_90", "3" },
    { "stats.timers.t.val.mean_90", "200" },
    { "stats.timers.t.val.upper_90", "300" },
    { "stats.timers.t.val.sum_90", "600" },
    { "stats.timers.t.val.sum_squares_90", "140000" },
    { "stats.timers.t.val.std", "81.64965809277261" },
    { "stats.timers.t.val.upper", "300" },
    { "stats.timers.t.val.lower", "100" },
    { "stats.timers.t.val.count", "3" },
    { "stats.timers.t.val.count_ps", "15" },
    { "stats.timers.t.val.sum", "600" },
    { "stats.timers.t.val.sum_squares", "140000" },
    { "stats.timers.t.val.mean", "200" },
    { "stats.timers.t.val.median", "200" },
    { "stats.gauges.g.val", "70" },
    { "stats.sets.s.val.count", "2" },
    { "statsd.numStats", "9" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_nocounts_legacy[] = { { P_nocounts_legacy_0, E_nocounts_legacy_0 } };

/* nocounts_new: statsd config {"percentThreshold": [90], "flush_counts": false, "graphite": {"legacyNamespace": false}} */
static const char *const P_nocounts_new_0[] = { "a_test_value:100|c", "t.val:100|ms\nt.val:200|ms\nt.val:300|ms", "g.val:70|g", "s.val:x|s\ns.val:y|s\ns.val:x|s", "a.b;env=prod:3|c", "c.d:1|c|#env:prod,role:web", NULL };
static const exp_metric E_nocounts_new_0[] = {
    { "stats.counters.statsd.bad_lines_seen.rate", "0" },
    { "stats.counters.statsd.packets_received.rate", "30" },
    { "stats.counters.statsd.metrics_received.rate", "50" },
    { "stats.counters.a_test_value.rate", "500" },
    { "stats.counters.a.b.rate;env=prod", "15" },
    { "stats.counters.c.d.rate;env=prod;role=web", "5" },
    { "stats.timers.t.val.count_90", "3" },
    { "stats.timers.t.val.mean_90", "200" },
    { "stats.timers.t.val.upper_90", "300" },
    { "stats.timers.t.val.sum_90", "600" },
    { "stats.timers.t.val.sum_squares_90", "140000" },
    { "stats.timers.t.val.std", "81.64965809277261" },
    { "stats.timers.t.val.upper", "300" },
    { "stats.timers.t.val.lower", "100" },
    { "stats.timers.t.val.count", "3" },
    { "stats.timers.t.val.count_ps", "15" },
    { "stats.timers.t.val.sum", "600" },
    { "stats.timers.t.val.sum_squares", "140000" },
    { "stats.timers.t.val.mean", "200" },
    { "stats.timers.t.val.median", "200" },
    { "stats.gauges.g.val", "70" },
    { "stats.sets.s.val.count", "2" },
    { "stats.statsd.numStats", "9" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_nocounts_new[] = { { P_nocounts_new_0, E_nocounts_new_0 } };

/* prefix_new: statsd config {"percentThreshold": [90], "prefixStats": "statsprefix", "graphite": {"legacyNamespace": false}} */
static const char *const P_prefix_new_0[] = { "a_test_value:100|c", "t.val:100|ms\nt.val:200|ms\nt.val:300|ms", "g.val:70|g", "s.val:x|s\ns.val:y|s\ns.val:x|s", "a.b;env=prod:3|c", "c.d:1|c|#env:prod,role:web", "a_bad_test_value|z", NULL };
static const exp_metric E_prefix_new_0[] = {
    { "stats.counters.statsprefix.bad_lines_seen.rate", "5" },
    { "stats.counters.statsprefix.bad_lines_seen.count", "1" },
    { "stats.counters.statsprefix.packets_received.rate", "35" },
    { "stats.counters.statsprefix.packets_received.count", "7" },
    { "stats.counters.statsprefix.metrics_received.rate", "55" },
    { "stats.counters.statsprefix.metrics_received.count", "11" },
    { "stats.counters.a_test_value.rate", "500" },
    { "stats.counters.a_test_value.count", "100" },
    { "stats.counters.a.b.rate;env=prod", "15" },
    { "stats.counters.a.b.count;env=prod", "3" },
    { "stats.counters.c.d.rate;env=prod;role=web", "5" },
    { "stats.counters.c.d.count;env=prod;role=web", "1" },
    { "stats.timers.t.val.count_90", "3" },
    { "stats.timers.t.val.mean_90", "200" },
    { "stats.timers.t.val.upper_90", "300" },
    { "stats.timers.t.val.sum_90", "600" },
    { "stats.timers.t.val.sum_squares_90", "140000" },
    { "stats.timers.t.val.std", "81.64965809277261" },
    { "stats.timers.t.val.upper", "300" },
    { "stats.timers.t.val.lower", "100" },
    { "stats.timers.t.val.count", "3" },
    { "stats.timers.t.val.count_ps", "15" },
    { "stats.timers.t.val.sum", "600" },
    { "stats.timers.t.val.sum_squares", "140000" },
    { "stats.timers.t.val.mean", "200" },
    { "stats.timers.t.val.median", "200" },
    { "stats.gauges.g.val", "70" },
    { "stats.sets.s.val.count", "2" },
    { "stats.statsprefix.numStats", "9" },
    { "stats.statsprefix.graphiteStats.calculationtime", NULL },
    { "stats.statsprefix.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_prefix_new_1[] = { NULL };
static const exp_metric E_prefix_new_1[] = {
    { "stats.counters.statsprefix.bad_lines_seen.rate", "0" },
    { "stats.counters.statsprefix.bad_lines_seen.count", "0" },
    { "stats.counters.statsprefix.packets_received.rate", "0" },
    { "stats.counters.statsprefix.packets_received.count", "0" },
    { "stats.counters.statsprefix.metrics_received.rate", "0" },
    { "stats.counters.statsprefix.metrics_received.count", "0" },
    { "stats.counters.a_test_value.rate", "0" },
    { "stats.counters.a_test_value.count", "0" },
    { "stats.counters.a.b.rate;env=prod", "0" },
    { "stats.counters.a.b.count;env=prod", "0" },
    { "stats.counters.c.d.rate;env=prod;role=web", "0" },
    { "stats.counters.c.d.count;env=prod;role=web", "0" },
    { "stats.timers.t.val.count_ps", "0" },
    { "stats.timers.t.val.count", "0" },
    { "stats.gauges.g.val", "70" },
    { "stats.gauges.statsprefix.timestamp_lag", "0.8" },
    { "stats.sets.s.val.count", "0" },
    { "stats.statsprefix.numStats", "10" },
    { "stats.statsprefix.graphiteStats.calculationtime", NULL },
    { "stats.statsprefix.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_prefix_new[] = { { P_prefix_new_0, E_prefix_new_0 }, { P_prefix_new_1, E_prefix_new_1 } };

/* prefix_legacy: statsd config {"percentThreshold": [90], "prefixStats": "statsprefix"} */
static const char *const P_prefix_legacy_0[] = { "a_test_value:100|c", "t.val:100|ms\nt.val:200|ms\nt.val:300|ms", "g.val:70|g", "s.val:x|s\ns.val:y|s\ns.val:x|s", "a.b;env=prod:3|c", "c.d:1|c|#env:prod,role:web", "a_bad_test_value|z", NULL };
static const exp_metric E_prefix_legacy_0[] = {
    { "stats.statsprefix.bad_lines_seen", "5" },
    { "stats_counts.statsprefix.bad_lines_seen", "1" },
    { "stats.statsprefix.packets_received", "35" },
    { "stats_counts.statsprefix.packets_received", "7" },
    { "stats.statsprefix.metrics_received", "55" },
    { "stats_counts.statsprefix.metrics_received", "11" },
    { "stats.a_test_value", "500" },
    { "stats_counts.a_test_value", "100" },
    { "stats.a.b;env=prod", "15" },
    { "stats_counts.a.b;env=prod", "3" },
    { "stats.c.d;env=prod;role=web", "5" },
    { "stats_counts.c.d;env=prod;role=web", "1" },
    { "stats.timers.t.val.count_90", "3" },
    { "stats.timers.t.val.mean_90", "200" },
    { "stats.timers.t.val.upper_90", "300" },
    { "stats.timers.t.val.sum_90", "600" },
    { "stats.timers.t.val.sum_squares_90", "140000" },
    { "stats.timers.t.val.std", "81.64965809277261" },
    { "stats.timers.t.val.upper", "300" },
    { "stats.timers.t.val.lower", "100" },
    { "stats.timers.t.val.count", "3" },
    { "stats.timers.t.val.count_ps", "15" },
    { "stats.timers.t.val.sum", "600" },
    { "stats.timers.t.val.sum_squares", "140000" },
    { "stats.timers.t.val.mean", "200" },
    { "stats.timers.t.val.median", "200" },
    { "stats.gauges.g.val", "70" },
    { "stats.sets.s.val.count", "2" },
    { "statsprefix.numStats", "9" },
    { "stats.statsprefix.graphiteStats.calculationtime", NULL },
    { "stats.statsprefix.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_prefix_legacy_1[] = { NULL };
static const exp_metric E_prefix_legacy_1[] = {
    { "stats.statsprefix.bad_lines_seen", "0" },
    { "stats_counts.statsprefix.bad_lines_seen", "0" },
    { "stats.statsprefix.packets_received", "0" },
    { "stats_counts.statsprefix.packets_received", "0" },
    { "stats.statsprefix.metrics_received", "0" },
    { "stats_counts.statsprefix.metrics_received", "0" },
    { "stats.a_test_value", "0" },
    { "stats_counts.a_test_value", "0" },
    { "stats.a.b;env=prod", "0" },
    { "stats_counts.a.b;env=prod", "0" },
    { "stats.c.d;env=prod;role=web", "0" },
    { "stats_counts.c.d;env=prod;role=web", "0" },
    { "stats.timers.t.val.count_ps", "0" },
    { "stats.timers.t.val.count", "0" },
    { "stats.gauges.g.val", "70" },
    { "stats.gauges.statsprefix.timestamp_lag", "0.8" },
    { "stats.sets.s.val.count", "0" },
    { "statsprefix.numStats", "10" },
    { "stats.statsprefix.graphiteStats.calculationtime", NULL },
    { "stats.statsprefix.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_prefix_legacy[] = { { P_prefix_legacy_0, E_prefix_legacy_0 }, { P_prefix_legacy_1, E_prefix_legacy_1 } };

/* prefix_empty_legacy: statsd config {"percentThreshold": [90], "prefixStats": ""} */
static const char *const P_prefix_empty_legacy_0[] = { "x:1|c", NULL };
static const exp_metric E_prefix_empty_legacy_0[] = {
    { "stats..bad_lines_seen", "0" },
    { "stats_counts..bad_lines_seen", "0" },
    { "stats..packets_received", "5" },
    { "stats_counts..packets_received", "1" },
    { "stats..metrics_received", "5" },
    { "stats_counts..metrics_received", "1" },
    { "stats.x", "5" },
    { "stats_counts.x", "1" },
    { ".numStats", "4" },
    { "stats..graphiteStats.calculationtime", NULL },
    { "stats..processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_prefix_empty_legacy_1[] = { NULL };
static const exp_metric E_prefix_empty_legacy_1[] = {
    { "stats..bad_lines_seen", "0" },
    { "stats_counts..bad_lines_seen", "0" },
    { "stats..packets_received", "0" },
    { "stats_counts..packets_received", "0" },
    { "stats..metrics_received", "0" },
    { "stats_counts..metrics_received", "0" },
    { "stats.x", "0" },
    { "stats_counts.x", "0" },
    { "stats.gauges..timestamp_lag", "0.8" },
    { ".numStats", "5" },
    { "stats..graphiteStats.calculationtime", NULL },
    { "stats..processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_prefix_empty_legacy[] = { { P_prefix_empty_legacy_0, E_prefix_empty_legacy_0 }, { P_prefix_empty_legacy_1, E_prefix_empty_legacy_1 } };

/* prefix_empty_new: statsd config {"percentThreshold": [90], "prefixStats": "", "graphite": {"legacyNamespace": false}} */
static const char *const P_prefix_empty_new_0[] = { "x:1|c", NULL };
static const exp_metric E_prefix_empty_new_0[] = {
    { "stats.counters..bad_lines_seen.rate", "0" },
    { "stats.counters..bad_lines_seen.count", "0" },
    { "stats.counters..packets_received.rate", "5" },
    { "stats.counters..packets_received.count", "1" },
    { "stats.counters..metrics_received.rate", "5" },
    { "stats.counters..metrics_received.count", "1" },
    { "stats.counters.x.rate", "5" },
    { "stats.counters.x.count", "1" },
    { "stats..numStats", "4" },
    { "stats..graphiteStats.calculationtime", NULL },
    { "stats..processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_prefix_empty_new_1[] = { NULL };
static const exp_metric E_prefix_empty_new_1[] = {
    { "stats.counters..bad_lines_seen.rate", "0" },
    { "stats.counters..bad_lines_seen.count", "0" },
    { "stats.counters..packets_received.rate", "0" },
    { "stats.counters..packets_received.count", "0" },
    { "stats.counters..metrics_received.rate", "0" },
    { "stats.counters..metrics_received.count", "0" },
    { "stats.counters.x.rate", "0" },
    { "stats.counters.x.count", "0" },
    { "stats.gauges..timestamp_lag", "0.8" },
    { "stats..numStats", "5" },
    { "stats..graphiteStats.calculationtime", NULL },
    { "stats..processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_prefix_empty_new[] = { { P_prefix_empty_new_0, E_prefix_empty_new_0 }, { P_prefix_empty_new_1, E_prefix_empty_new_1 } };

/* nosan_legacy: statsd config {"percentThreshold": [], "keyNameSanitize": false} */
static const char *const P_nosan_legacy_0[] = { "fo/o b\tar+baz;t=a/b c:1|c", "x y/z:2|ms", "g h:3|g", "s/t u:q|s", "d d:1|c|#k:v w,x y:z", NULL };
static const exp_metric E_nosan_legacy_0[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "25" },
    { "stats_counts.statsd.packets_received", "5" },
    { "stats.statsd.metrics_received", "25" },
    { "stats_counts.statsd.metrics_received", "5" },
    { "stats.fo-o_b_arbaz;t=a/b c", "5" },
    { "stats_counts.fo-o_b_arbaz;t=a/b c", "1" },
    { "stats.d_d;k=v w;x y=z", "5" },
    { "stats_counts.d_d;k=v w;x y=z", "1" },
    { "stats.timers.x_y-z.std", "0" },
    { "stats.timers.x_y-z.upper", "2" },
    { "stats.timers.x_y-z.lower", "2" },
    { "stats.timers.x_y-z.count", "1" },
    { "stats.timers.x_y-z.count_ps", "5" },
    { "stats.timers.x_y-z.sum", "2" },
    { "stats.timers.x_y-z.sum_squares", "4" },
    { "stats.timers.x_y-z.mean", "2" },
    { "stats.timers.x_y-z.median", "2" },
    { "stats.gauges.g_h", "3" },
    { "stats.sets.s-t_u.count", "1" },
    { "statsd.numStats", "8" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_nosan_legacy[] = { { P_nosan_legacy_0, E_nosan_legacy_0 } };

/* nosan_new: statsd config {"percentThreshold": [], "keyNameSanitize": false, "graphite": {"legacyNamespace": false, "globalSuffix": "sf"}} */
static const char *const P_nosan_new_0[] = { "fo/o b\tar+baz;t=a/b c:1|c", "x y/z:2|ms", "g h:3|g", NULL };
static const exp_metric E_nosan_new_0[] = {
    { "stats.counters.statsd.bad_lines_seen.rate.sf", "0" },
    { "stats.counters.statsd.bad_lines_seen.count.sf", "0" },
    { "stats.counters.statsd.packets_received.rate.sf", "15" },
    { "stats.counters.statsd.packets_received.count.sf", "3" },
    { "stats.counters.statsd.metrics_received.rate.sf", "15" },
    { "stats.counters.statsd.metrics_received.count.sf", "3" },
    { "stats.counters.fo-o_b_arbaz.rate.sf;t=a/b c", "5" },
    { "stats.counters.fo-o_b_arbaz.count.sf;t=a/b c", "1" },
    { "stats.timers.x_y-z.std.sf", "0" },
    { "stats.timers.x_y-z.upper.sf", "2" },
    { "stats.timers.x_y-z.lower.sf", "2" },
    { "stats.timers.x_y-z.count.sf", "1" },
    { "stats.timers.x_y-z.count_ps.sf", "5" },
    { "stats.timers.x_y-z.sum.sf", "2" },
    { "stats.timers.x_y-z.sum_squares.sf", "4" },
    { "stats.timers.x_y-z.mean.sf", "2" },
    { "stats.timers.x_y-z.median.sf", "2" },
    { "stats.gauges.g_h.sf", "3" },
    { "stats.statsd.numStats.sf", "6" },
    { "stats.statsd.graphiteStats.calculationtime.sf", NULL },
    { "stats.statsd.processing_time.sf", NULL },
    { NULL, NULL }
};
static const scen_flush S_nosan_new[] = { { P_nosan_new_0, E_nosan_new_0 } };

/* delete_idle: statsd config {"percentThreshold": [90], "deleteIdleStats": true, "gaugesMaxTTL": 2} */
static const char *const P_delete_idle_0[] = { "a_test_value:100|c\nt:5|ms\ng:+1|g\ns:m|s\nmy.packets_received.x:2|c\nx.metrics_received:1|c\nbad_lines_seen_too:4|c", NULL };
static const exp_metric E_delete_idle_0[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "5" },
    { "stats_counts.statsd.packets_received", "1" },
    { "stats.statsd.metrics_received", "35" },
    { "stats_counts.statsd.metrics_received", "7" },
    { "stats.a_test_value", "500" },
    { "stats_counts.a_test_value", "100" },
    { "stats.my.packets_received.x", "10" },
    { "stats_counts.my.packets_received.x", "2" },
    { "stats.x.metrics_received", "5" },
    { "stats_counts.x.metrics_received", "1" },
    { "stats.bad_lines_seen_too", "20" },
    { "stats_counts.bad_lines_seen_too", "4" },
    { "stats.timers.t.count_90", "1" },
    { "stats.timers.t.mean_90", "5" },
    { "stats.timers.t.upper_90", "5" },
    { "stats.timers.t.sum_90", "5" },
    { "stats.timers.t.sum_squares_90", "25" },
    { "stats.timers.t.std", "0" },
    { "stats.timers.t.upper", "5" },
    { "stats.timers.t.lower", "5" },
    { "stats.timers.t.count", "1" },
    { "stats.timers.t.count_ps", "5" },
    { "stats.timers.t.sum", "5" },
    { "stats.timers.t.sum_squares", "25" },
    { "stats.timers.t.mean", "5" },
    { "stats.timers.t.median", "5" },
    { "stats.gauges.g", "1" },
    { "stats.sets.s.count", "1" },
    { "statsd.numStats", "10" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_delete_idle_1[] = { NULL };
static const exp_metric E_delete_idle_1[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.my.packets_received.x", "0" },
    { "stats_counts.my.packets_received.x", "0" },
    { "stats.x.metrics_received", "0" },
    { "stats_counts.x.metrics_received", "0" },
    { "stats.bad_lines_seen_too", "0" },
    { "stats_counts.bad_lines_seen_too", "0" },
    { "stats.gauges.g", "1" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "8" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_delete_idle_2[] = { NULL };
static const exp_metric E_delete_idle_2[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.my.packets_received.x", "0" },
    { "stats_counts.my.packets_received.x", "0" },
    { "stats.x.metrics_received", "0" },
    { "stats_counts.x.metrics_received", "0" },
    { "stats.bad_lines_seen_too", "0" },
    { "stats_counts.bad_lines_seen_too", "0" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "7" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_delete_idle_3[] = { NULL };
static const exp_metric E_delete_idle_3[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.my.packets_received.x", "0" },
    { "stats_counts.my.packets_received.x", "0" },
    { "stats.x.metrics_received", "0" },
    { "stats_counts.x.metrics_received", "0" },
    { "stats.bad_lines_seen_too", "0" },
    { "stats_counts.bad_lines_seen_too", "0" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "7" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_delete_idle[] = { { P_delete_idle_0, E_delete_idle_0 }, { P_delete_idle_1, E_delete_idle_1 }, { P_delete_idle_2, E_delete_idle_2 }, { P_delete_idle_3, E_delete_idle_3 } };

/* delete_ttl1: statsd config {"percentThreshold": [90], "deleteGauges": true} */
static const char *const P_delete_ttl1_0[] = { "g:5|g\nh:6|g", NULL };
static const exp_metric E_delete_ttl1_0[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "5" },
    { "stats_counts.statsd.packets_received", "1" },
    { "stats.statsd.metrics_received", "10" },
    { "stats_counts.statsd.metrics_received", "2" },
    { "stats.gauges.g", "5" },
    { "stats.gauges.h", "6" },
    { "statsd.numStats", "5" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_delete_ttl1_1[] = { "h:-2|g", NULL };
static const exp_metric E_delete_ttl1_1[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "5" },
    { "stats_counts.statsd.packets_received", "1" },
    { "stats.statsd.metrics_received", "5" },
    { "stats_counts.statsd.metrics_received", "1" },
    { "stats.gauges.h", "-2" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "5" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_delete_ttl1_2[] = { NULL };
static const exp_metric E_delete_ttl1_2[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "4" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_delete_ttl1[] = { { P_delete_ttl1_0, E_delete_ttl1_0 }, { P_delete_ttl1_1, E_delete_ttl1_1 }, { P_delete_ttl1_2, E_delete_ttl1_2 } };

/* ttl2_refresh: statsd config {"percentThreshold": [90], "deleteGauges": true, "gaugesMaxTTL": 2} */
static const char *const P_ttl2_refresh_0[] = { "g:1|g", NULL };
static const exp_metric E_ttl2_refresh_0[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "5" },
    { "stats_counts.statsd.packets_received", "1" },
    { "stats.statsd.metrics_received", "5" },
    { "stats_counts.statsd.metrics_received", "1" },
    { "stats.gauges.g", "1" },
    { "statsd.numStats", "4" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_ttl2_refresh_1[] = { "g:+1|g", NULL };
static const exp_metric E_ttl2_refresh_1[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "5" },
    { "stats_counts.statsd.packets_received", "1" },
    { "stats.statsd.metrics_received", "5" },
    { "stats_counts.statsd.metrics_received", "1" },
    { "stats.gauges.g", "2" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "5" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_ttl2_refresh_2[] = { NULL };
static const exp_metric E_ttl2_refresh_2[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.gauges.g", "2" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "5" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_ttl2_refresh_3[] = { NULL };
static const exp_metric E_ttl2_refresh_3[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "4" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_ttl2_refresh_4[] = { NULL };
static const exp_metric E_ttl2_refresh_4[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "4" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_ttl2_refresh[] = { { P_ttl2_refresh_0, E_ttl2_refresh_0 }, { P_ttl2_refresh_1, E_ttl2_refresh_1 }, { P_ttl2_refresh_2, E_ttl2_refresh_2 }, { P_ttl2_refresh_3, E_ttl2_refresh_3 }, { P_ttl2_refresh_4, E_ttl2_refresh_4 } };

/* del_cs: statsd config {"percentThreshold": [90], "deleteCounters": true, "deleteSets": true} */
static const char *const P_del_cs_0[] = { "c:1|c\ns:a|s\nt:1|ms\ng:2|g", NULL };
static const exp_metric E_del_cs_0[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "5" },
    { "stats_counts.statsd.packets_received", "1" },
    { "stats.statsd.metrics_received", "20" },
    { "stats_counts.statsd.metrics_received", "4" },
    { "stats.c", "5" },
    { "stats_counts.c", "1" },
    { "stats.timers.t.count_90", "1" },
    { "stats.timers.t.mean_90", "1" },
    { "stats.timers.t.upper_90", "1" },
    { "stats.timers.t.sum_90", "1" },
    { "stats.timers.t.sum_squares_90", "1" },
    { "stats.timers.t.std", "0" },
    { "stats.timers.t.upper", "1" },
    { "stats.timers.t.lower", "1" },
    { "stats.timers.t.count", "1" },
    { "stats.timers.t.count_ps", "5" },
    { "stats.timers.t.sum", "1" },
    { "stats.timers.t.sum_squares", "1" },
    { "stats.timers.t.mean", "1" },
    { "stats.timers.t.median", "1" },
    { "stats.gauges.g", "2" },
    { "stats.sets.s.count", "1" },
    { "statsd.numStats", "7" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_del_cs_1[] = { NULL };
static const exp_metric E_del_cs_1[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.timers.t.count_ps", "0" },
    { "stats.timers.t.count", "0" },
    { "stats.gauges.g", "2" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "6" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_del_cs_2[] = { NULL };
static const exp_metric E_del_cs_2[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.timers.t.count_ps", "0" },
    { "stats.timers.t.count", "0" },
    { "stats.gauges.g", "2" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "6" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_del_cs[] = { { P_del_cs_0, E_del_cs_0 }, { P_del_cs_1, E_del_cs_1 }, { P_del_cs_2, E_del_cs_2 } };

/* del_timers: statsd config {"percentThreshold": [90], "deleteTimers": true} */
static const char *const P_del_timers_0[] = { "t:1|ms\nc:1|c", NULL };
static const exp_metric E_del_timers_0[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "5" },
    { "stats_counts.statsd.packets_received", "1" },
    { "stats.statsd.metrics_received", "10" },
    { "stats_counts.statsd.metrics_received", "2" },
    { "stats.c", "5" },
    { "stats_counts.c", "1" },
    { "stats.timers.t.count_90", "1" },
    { "stats.timers.t.mean_90", "1" },
    { "stats.timers.t.upper_90", "1" },
    { "stats.timers.t.sum_90", "1" },
    { "stats.timers.t.sum_squares_90", "1" },
    { "stats.timers.t.std", "0" },
    { "stats.timers.t.upper", "1" },
    { "stats.timers.t.lower", "1" },
    { "stats.timers.t.count", "1" },
    { "stats.timers.t.count_ps", "5" },
    { "stats.timers.t.sum", "1" },
    { "stats.timers.t.sum_squares", "1" },
    { "stats.timers.t.mean", "1" },
    { "stats.timers.t.median", "1" },
    { "statsd.numStats", "5" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_del_timers_1[] = { "u:2|ms:4|ms", NULL };
static const exp_metric E_del_timers_1[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "5" },
    { "stats_counts.statsd.packets_received", "1" },
    { "stats.statsd.metrics_received", "5" },
    { "stats_counts.statsd.metrics_received", "1" },
    { "stats.c", "0" },
    { "stats_counts.c", "0" },
    { "stats.timers.u.count_90", "2" },
    { "stats.timers.u.mean_90", "3" },
    { "stats.timers.u.upper_90", "4" },
    { "stats.timers.u.sum_90", "6" },
    { "stats.timers.u.sum_squares_90", "20" },
    { "stats.timers.u.std", "1" },
    { "stats.timers.u.upper", "4" },
    { "stats.timers.u.lower", "2" },
    { "stats.timers.u.count", "2" },
    { "stats.timers.u.count_ps", "10" },
    { "stats.timers.u.sum", "6" },
    { "stats.timers.u.sum_squares", "20" },
    { "stats.timers.u.mean", "3" },
    { "stats.timers.u.median", "3" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "6" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_del_timers_2[] = { NULL };
static const exp_metric E_del_timers_2[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.c", "0" },
    { "stats_counts.c", "0" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "5" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_del_timers[] = { { P_del_timers_0, E_del_timers_0 }, { P_del_timers_1, E_del_timers_1 }, { P_del_timers_2, E_del_timers_2 } };

/* keep_idle: statsd config {"percentThreshold": [90]} */
static const char *const P_keep_idle_0[] = { "c:2|c\nc:3|c|@0.5\nt:5|ms|@0.25\nt:7|ms\ng:10|g\ng:+5|g\ng:-20|g\ns:a|s", NULL };
static const exp_metric E_keep_idle_0[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "5" },
    { "stats_counts.statsd.packets_received", "1" },
    { "stats.statsd.metrics_received", "40" },
    { "stats_counts.statsd.metrics_received", "8" },
    { "stats.c", "40" },
    { "stats_counts.c", "8" },
    { "stats.timers.t.count_90", "2" },
    { "stats.timers.t.mean_90", "6" },
    { "stats.timers.t.upper_90", "7" },
    { "stats.timers.t.sum_90", "12" },
    { "stats.timers.t.sum_squares_90", "74" },
    { "stats.timers.t.std", "1" },
    { "stats.timers.t.upper", "7" },
    { "stats.timers.t.lower", "5" },
    { "stats.timers.t.count", "5" },
    { "stats.timers.t.count_ps", "25" },
    { "stats.timers.t.sum", "12" },
    { "stats.timers.t.sum_squares", "74" },
    { "stats.timers.t.mean", "6" },
    { "stats.timers.t.median", "6" },
    { "stats.gauges.g", "-5" },
    { "stats.sets.s.count", "1" },
    { "statsd.numStats", "7" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_keep_idle_1[] = { "g:+1|g\nz:0|g", NULL };
static const exp_metric E_keep_idle_1[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "5" },
    { "stats_counts.statsd.packets_received", "1" },
    { "stats.statsd.metrics_received", "10" },
    { "stats_counts.statsd.metrics_received", "2" },
    { "stats.c", "0" },
    { "stats_counts.c", "0" },
    { "stats.timers.t.count_ps", "0" },
    { "stats.timers.t.count", "0" },
    { "stats.gauges.g", "-4" },
    { "stats.gauges.z", "0" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "stats.sets.s.count", "0" },
    { "statsd.numStats", "9" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_keep_idle_2[] = { "z:+4|g\nz:-1|g", NULL };
static const exp_metric E_keep_idle_2[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "5" },
    { "stats_counts.statsd.packets_received", "1" },
    { "stats.statsd.metrics_received", "10" },
    { "stats_counts.statsd.metrics_received", "2" },
    { "stats.c", "0" },
    { "stats_counts.c", "0" },
    { "stats.timers.t.count_ps", "0" },
    { "stats.timers.t.count", "0" },
    { "stats.gauges.g", "-4" },
    { "stats.gauges.z", "3" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "stats.sets.s.count", "0" },
    { "statsd.numStats", "9" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_keep_idle[] = { { P_keep_idle_0, E_keep_idle_0 }, { P_keep_idle_1, E_keep_idle_1 }, { P_keep_idle_2, E_keep_idle_2 } };

/* counts: statsd config {"percentThreshold": [90]} */
static const char *const P_counts_0[] = { "a:1|c\n\nb:2|c\n", "bad|z\nc:x|c\nd:1|c:2|c:3|c", "", "\n", "e:1|c\nk\ny:1|c:x|c:2|c\nz:1|c|@0.5|extra\nw:5|c|@0.1\nq:3|ms|@0.5", NULL };
static const exp_metric E_counts_0[] = {
    { "stats.statsd.bad_lines_seen", "20" },
    { "stats_counts.statsd.bad_lines_seen", "4" },
    { "stats.statsd.packets_received", "25" },
    { "stats_counts.statsd.packets_received", "5" },
    { "stats.statsd.metrics_received", "55" },
    { "stats_counts.statsd.metrics_received", "11" },
    { "stats.a", "5" },
    { "stats_counts.a", "1" },
    { "stats.b", "10" },
    { "stats_counts.b", "2" },
    { "stats.d", "30" },
    { "stats_counts.d", "6" },
    { "stats.e", "5" },
    { "stats_counts.e", "1" },
    { "stats.y", "15" },
    { "stats_counts.y", "3" },
    { "stats.z", "10" },
    { "stats_counts.z", "2" },
    { "stats.w", "250" },
    { "stats_counts.w", "50" },
    { "stats.timers.q.count_90", "1" },
    { "stats.timers.q.mean_90", "3" },
    { "stats.timers.q.upper_90", "3" },
    { "stats.timers.q.sum_90", "3" },
    { "stats.timers.q.sum_squares_90", "9" },
    { "stats.timers.q.std", "0" },
    { "stats.timers.q.upper", "3" },
    { "stats.timers.q.lower", "3" },
    { "stats.timers.q.count", "2" },
    { "stats.timers.q.count_ps", "10" },
    { "stats.timers.q.sum", "3" },
    { "stats.timers.q.sum_squares", "9" },
    { "stats.timers.q.mean", "3" },
    { "stats.timers.q.median", "3" },
    { "statsd.numStats", "11" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_counts[] = { { P_counts_0, E_counts_0 } };

/* fresh: statsd config {"percentThreshold": [90]} */
static const char *const P_fresh_0[] = { NULL };
static const exp_metric E_fresh_0[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "statsd.numStats", "3" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_fresh_1[] = { NULL };
static const exp_metric E_fresh_1[] = {
    { "stats.statsd.bad_lines_seen", "0" },
    { "stats_counts.statsd.bad_lines_seen", "0" },
    { "stats.statsd.packets_received", "0" },
    { "stats_counts.statsd.packets_received", "0" },
    { "stats.statsd.metrics_received", "0" },
    { "stats_counts.statsd.metrics_received", "0" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "statsd.numStats", "4" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_fresh[] = { { P_fresh_0, E_fresh_0 }, { P_fresh_1, E_fresh_1 } };

/* fresh_new: statsd config {"percentThreshold": [90], "graphite": {"legacyNamespace": false}} */
static const char *const P_fresh_new_0[] = { NULL };
static const exp_metric E_fresh_new_0[] = {
    { "stats.counters.statsd.bad_lines_seen.rate", "0" },
    { "stats.counters.statsd.bad_lines_seen.count", "0" },
    { "stats.counters.statsd.packets_received.rate", "0" },
    { "stats.counters.statsd.packets_received.count", "0" },
    { "stats.counters.statsd.metrics_received.rate", "0" },
    { "stats.counters.statsd.metrics_received.count", "0" },
    { "stats.statsd.numStats", "3" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_fresh_new_1[] = { NULL };
static const exp_metric E_fresh_new_1[] = {
    { "stats.counters.statsd.bad_lines_seen.rate", "0" },
    { "stats.counters.statsd.bad_lines_seen.count", "0" },
    { "stats.counters.statsd.packets_received.rate", "0" },
    { "stats.counters.statsd.packets_received.count", "0" },
    { "stats.counters.statsd.metrics_received.rate", "0" },
    { "stats.counters.statsd.metrics_received.count", "0" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "stats.statsd.numStats", "4" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_fresh_new[] = { { P_fresh_new_0, E_fresh_new_0 }, { P_fresh_new_1, E_fresh_new_1 } };

/* filters: statsd config {"percentThreshold": [90], "calculatedTimerMetrics": ["count_ps", "count", "count_percent", "mean_percent", "histogram"], "histogram": [{"metric": "a_test_value", "bins": [1000]}], "graphite": {"legacyNamespace": false}} */
static const char *const P_filters_0[] = { "a_test_value:100|ms", NULL };
static const exp_metric E_filters_0[] = {
    { "stats.counters.statsd.bad_lines_seen.rate", "0" },
    { "stats.counters.statsd.bad_lines_seen.count", "0" },
    { "stats.counters.statsd.packets_received.rate", "5" },
    { "stats.counters.statsd.packets_received.count", "1" },
    { "stats.counters.statsd.metrics_received.rate", "5" },
    { "stats.counters.statsd.metrics_received.count", "1" },
    { "stats.timers.a_test_value.count_90", "1" },
    { "stats.timers.a_test_value.mean_90", "100" },
    { "stats.timers.a_test_value.count", "1" },
    { "stats.timers.a_test_value.count_ps", "5" },
    { "stats.timers.a_test_value.histogram.bin_1000", "1" },
    { "stats.statsd.numStats", "4" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const char *const P_filters_1[] = { NULL };
static const exp_metric E_filters_1[] = {
    { "stats.counters.statsd.bad_lines_seen.rate", "0" },
    { "stats.counters.statsd.bad_lines_seen.count", "0" },
    { "stats.counters.statsd.packets_received.rate", "0" },
    { "stats.counters.statsd.packets_received.count", "0" },
    { "stats.counters.statsd.metrics_received.rate", "0" },
    { "stats.counters.statsd.metrics_received.count", "0" },
    { "stats.timers.a_test_value.count_ps", "0" },
    { "stats.timers.a_test_value.count", "0" },
    { "stats.gauges.statsd.timestamp_lag", "0.8" },
    { "stats.statsd.numStats", "5" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_filters[] = { { P_filters_0, E_filters_0 }, { P_filters_1, E_filters_1 } };

/* hist: statsd config {"percentThreshold": [90, -20, 99.9], "histogram": [{"metric": "foo", "bins": []}, {"metric": "abcd", "bins": [1, 5, "inf"]}, {"metric": "abc", "bins": [1, 2.21, "inf"]}, {"metric": "a", "bins": [1, 2]}], "graphite": {"legacyNamespace": false}} */
static const char *const P_hist_0[] = { "a:1|ms:2|ms:3|ms:4|ms:5|ms:6|ms:7|ms:8|ms:9|ms:10|ms", "abc:0.1234|ms:2.89|ms:4|ms:6|ms:8|ms", "foo:0|ms:2|ms", "xyz:0|ms:2|ms", "abcde:0.5|ms:7|ms", NULL };
static const exp_metric E_hist_0[] = {
    { "stats.counters.statsd.bad_lines_seen.rate", "0" },
    { "stats.counters.statsd.bad_lines_seen.count", "0" },
    { "stats.counters.statsd.packets_received.rate", "25" },
    { "stats.counters.statsd.packets_received.count", "5" },
    { "stats.counters.statsd.metrics_received.rate", "25" },
    { "stats.counters.statsd.metrics_received.count", "5" },
    { "stats.timers.a.count_90", "9" },
    { "stats.timers.a.mean_90", "5" },
    { "stats.timers.a.upper_90", "9" },
    { "stats.timers.a.sum_90", "45" },
    { "stats.timers.a.sum_squares_90", "285" },
    { "stats.timers.a.count_top20", "2" },
    { "stats.timers.a.mean_top20", "9.5" },
    { "stats.timers.a.lower_top20", "9" },
    { "stats.timers.a.sum_top20", "19" },
    { "stats.timers.a.sum_squares_top20", "181" },
    { "stats.timers.a.count_99_9", "10" },
    { "stats.timers.a.mean_99_9", "5.5" },
    { "stats.timers.a.upper_99_9", "10" },
    { "stats.timers.a.sum_99_9", "55" },
    { "stats.timers.a.sum_squares_99_9", "385" },
    { "stats.timers.a.std", "2.8722813232690143" },
    { "stats.timers.a.upper", "10" },
    { "stats.timers.a.lower", "1" },
    { "stats.timers.a.count", "10" },
    { "stats.timers.a.count_ps", "50" },
    { "stats.timers.a.sum", "55" },
    { "stats.timers.a.sum_squares", "385" },
    { "stats.timers.a.mean", "5.5" },
    { "stats.timers.a.median", "5.5" },
    { "stats.timers.a.histogram.bin_1", "0" },
    { "stats.timers.a.histogram.bin_2", "1" },
    { "stats.timers.abc.count_90", "5" },
    { "stats.timers.abc.mean_90", "4.20268" },
    { "stats.timers.abc.upper_90", "8" },
    { "stats.timers.abc.sum_90", "21.0134" },
    { "stats.timers.abc.sum_squares_90", "124.36732756" },
    { "stats.timers.abc.count_top20", "1" },
    { "stats.timers.abc.mean_top20", "8" },
    { "stats.timers.abc.lower_top20", "8" },
    { "stats.timers.abc.sum_top20", "8" },
    { "stats.timers.abc.sum_squares_top20", "64" },
    { "stats.timers.abc.count_99_9", "5" },
    { "stats.timers.abc.mean_99_9", "4.20268" },
    { "stats.timers.abc.upper_99_9", "8" },
    { "stats.timers.abc.sum_99_9", "21.0134" },
    { "stats.timers.abc.sum_squares_99_9", "124.36732756" },
    { "stats.timers.abc.std", "2.6853205264176565" },
    { "stats.timers.abc.upper", "8" },
    { "stats.timers.abc.lower", "0.1234" },
    { "stats.timers.abc.count", "5" },
    { "stats.timers.abc.count_ps", "25" },
    { "stats.timers.abc.sum", "21.0134" },
    { "stats.timers.abc.sum_squares", "124.36732756" },
    { "stats.timers.abc.mean", "4.20268" },
    { "stats.timers.abc.median", "4" },
    { "stats.timers.abc.histogram.bin_1", "1" },
    { "stats.timers.abc.histogram.bin_2_21", "0" },
    { "stats.timers.abc.histogram.bin_inf", "4" },
    { "stats.timers.foo.count_90", "2" },
    { "stats.timers.foo.mean_90", "1" },
    { "stats.timers.foo.upper_90", "2" },
    { "stats.timers.foo.sum_90", "2" },
    { "stats.timers.foo.sum_squares_90", "4" },
    { "stats.timers.foo.count_99_9", "2" },
    { "stats.timers.foo.mean_99_9", "1" },
    { "stats.timers.foo.upper_99_9", "2" },
    { "stats.timers.foo.sum_99_9", "2" },
    { "stats.timers.foo.sum_squares_99_9", "4" },
    { "stats.timers.foo.std", "1" },
    { "stats.timers.foo.upper", "2" },
    { "stats.timers.foo.lower", "0" },
    { "stats.timers.foo.count", "2" },
    { "stats.timers.foo.count_ps", "10" },
    { "stats.timers.foo.sum", "2" },
    { "stats.timers.foo.sum_squares", "4" },
    { "stats.timers.foo.mean", "1" },
    { "stats.timers.foo.median", "1" },
    { "stats.timers.xyz.count_90", "2" },
    { "stats.timers.xyz.mean_90", "1" },
    { "stats.timers.xyz.upper_90", "2" },
    { "stats.timers.xyz.sum_90", "2" },
    { "stats.timers.xyz.sum_squares_90", "4" },
    { "stats.timers.xyz.count_99_9", "2" },
    { "stats.timers.xyz.mean_99_9", "1" },
    { "stats.timers.xyz.upper_99_9", "2" },
    { "stats.timers.xyz.sum_99_9", "2" },
    { "stats.timers.xyz.sum_squares_99_9", "4" },
    { "stats.timers.xyz.std", "1" },
    { "stats.timers.xyz.upper", "2" },
    { "stats.timers.xyz.lower", "0" },
    { "stats.timers.xyz.count", "2" },
    { "stats.timers.xyz.count_ps", "10" },
    { "stats.timers.xyz.sum", "2" },
    { "stats.timers.xyz.sum_squares", "4" },
    { "stats.timers.xyz.mean", "1" },
    { "stats.timers.xyz.median", "1" },
    { "stats.timers.abcde.count_90", "2" },
    { "stats.timers.abcde.mean_90", "3.75" },
    { "stats.timers.abcde.upper_90", "7" },
    { "stats.timers.abcde.sum_90", "7.5" },
    { "stats.timers.abcde.sum_squares_90", "49.25" },
    { "stats.timers.abcde.count_99_9", "2" },
    { "stats.timers.abcde.mean_99_9", "3.75" },
    { "stats.timers.abcde.upper_99_9", "7" },
    { "stats.timers.abcde.sum_99_9", "7.5" },
    { "stats.timers.abcde.sum_squares_99_9", "49.25" },
    { "stats.timers.abcde.std", "3.25" },
    { "stats.timers.abcde.upper", "7" },
    { "stats.timers.abcde.lower", "0.5" },
    { "stats.timers.abcde.count", "2" },
    { "stats.timers.abcde.count_ps", "10" },
    { "stats.timers.abcde.sum", "7.5" },
    { "stats.timers.abcde.sum_squares", "49.25" },
    { "stats.timers.abcde.mean", "3.75" },
    { "stats.timers.abcde.median", "3.75" },
    { "stats.timers.abcde.histogram.bin_1", "1" },
    { "stats.timers.abcde.histogram.bin_5", "0" },
    { "stats.timers.abcde.histogram.bin_inf", "1" },
    { "stats.statsd.numStats", "8" },
    { "stats.statsd.graphiteStats.calculationtime", NULL },
    { "stats.statsd.processing_time", NULL },
    { NULL, NULL }
};
static const scen_flush S_hist[] = { { P_hist_0, E_hist_0 } };

/* tags_all: statsd config {"percentThreshold": [90], "histogram": [{"metric": "env=prod", "bins": [10]}], "graphite": {"legacyNamespace": false, "globalSuffix": "sfx"}} */
static const char *const P_tags_all_0[] = { "t:1|ms|#env:prod", "g;env=prod:2|g", "s:x|s|#env:prod,r:1", "c;a=b;c=d:1|c", NULL };
static const exp_metric E_tags_all_0[] = {
    { "stats.counters.statsd.bad_lines_seen.rate.sfx", "0" },
    { "stats.counters.statsd.bad_lines_seen.count.sfx", "0" },
    { "stats.counters.statsd.packets_received.rate.sfx", "20" },
    { "stats.counters.statsd.packets_received.count.sfx", "4" },
    { "stats.counters.statsd.metrics_received.rate.sfx", "20" },
    { "stats.counters.statsd.metrics_received.count.sfx", "4" },
    { "stats.counters.c.rate.sfx;a=b;c=d", "5" },
    { "stats.counters.c.count.sfx;a=b;c=d", "1" },
    { "stats.timers.t.count_90.sfx;env=prod", "1" },
    { "stats.timers.t.mean_90.sfx;env=prod", "1" },
    { "stats.timers.t.upper_90.sfx;env=prod", "1" },
    { "stats.timers.t.sum_90.sfx;env=prod", "1" },
    { "stats.timers.t.sum_squares_90.sfx;env=prod", "1" },
    { "stats.timers.t.std.sfx;env=prod", "0" },
    { "stats.timers.t.upper.sfx;env=prod", "1" },
    { "stats.timers.t.lower.sfx;env=prod", "1" },
    { "stats.timers.t.count.sfx;env=prod", "1" },
    { "stats.timers.t.count_ps.sfx;env=prod", "5" },
    { "stats.timers.t.sum.sfx;env=prod", "1" },
    { "stats.timers.t.sum_squares.sfx;env=prod", "1" },
    { "stats.timers.t.mean.sfx;env=prod", "1" },
    { "stats.timers.t.median.sfx;env=prod", "1" },
    { "stats.timers.t.histogram.bin_10.sfx;env=prod", "1" },
    { "stats.gauges.g.sfx;env=prod", "2" },
    { "stats.sets.s.count.sfx;env=prod;r=1", "1" },
    { "stats.statsd.numStats.sfx", "7" },
    { "stats.statsd.graphiteStats.calculationtime.sfx", NULL },
    { "stats.statsd.processing_time.sfx", NULL },
    { NULL, NULL }
};
static const char *const P_tags_all_1[] = { NULL };
static const exp_metric E_tags_all_1[] = {
    { "stats.counters.statsd.bad_lines_seen.rate.sfx", "0" },
    { "stats.counters.statsd.bad_lines_seen.count.sfx", "0" },
    { "stats.counters.statsd.packets_received.rate.sfx", "0" },
    { "stats.counters.statsd.packets_received.count.sfx", "0" },
    { "stats.counters.statsd.metrics_received.rate.sfx", "0" },
    { "stats.counters.statsd.metrics_received.count.sfx", "0" },
    { "stats.counters.c.rate.sfx;a=b;c=d", "0" },
    { "stats.counters.c.count.sfx;a=b;c=d", "0" },
    { "stats.timers.t.count_ps.sfx;env=prod", "0" },
    { "stats.timers.t.count.sfx;env=prod", "0" },
    { "stats.gauges.g.sfx;env=prod", "2" },
    { "stats.gauges.statsd.timestamp_lag.sfx", "0.8" },
    { "stats.sets.s.count.sfx;env=prod;r=1", "0" },
    { "stats.statsd.numStats.sfx", "8" },
    { "stats.statsd.graphiteStats.calculationtime.sfx", NULL },
    { "stats.statsd.processing_time.sfx", NULL },
    { NULL, NULL }
};
static const scen_flush S_tags_all[] = { { P_tags_all_0, E_tags_all_0 }, { P_tags_all_1, E_tags_all_1 } };

/* tags_legacy: statsd config {"percentThreshold": [], "graphite": {"globalSuffix": "sfx"}} */
static const char *const P_tags_legacy_0[] = { "t:1|ms|#env:prod", "g;env=prod:2|g", "s:x|s|#env:prod,r:1", "c;a=b;c=d:1|c", NULL };
static const exp_metric E_tags_legacy_0[] = {
    { "stats.statsd.bad_lines_seen.sfx", "0" },
    { "stats_counts.statsd.bad_lines_seen.sfx", "0" },
    { "stats.statsd.packets_received.sfx", "20" },
    { "stats_counts.statsd.packets_received.sfx", "4" },
    { "stats.statsd.metrics_received.sfx", "20" },
    { "stats_counts.statsd.metrics_received.sfx", "4" },
    { "stats.c.sfx;a=b;c=d", "5" },
    { "stats_counts.c.sfx;a=b;c=d", "1" },
    { "stats.timers.t.std.sfx;env=prod", "0" },
    { "stats.timers.t.upper.sfx;env=prod", "1" },
    { "stats.timers.t.lower.sfx;env=prod", "1" },
    { "stats.timers.t.count.sfx;env=prod", "1" },
    { "stats.timers.t.count_ps.sfx;env=prod", "5" },
    { "stats.timers.t.sum.sfx;env=prod", "1" },
    { "stats.timers.t.sum_squares.sfx;env=prod", "1" },
    { "stats.timers.t.mean.sfx;env=prod", "1" },
    { "stats.timers.t.median.sfx;env=prod", "1" },
    { "stats.gauges.g.sfx;env=prod", "2" },
    { "stats.sets.s.count.sfx;env=prod;r=1", "1" },
    { "statsd.numStats.sfx", "7" },
    { "stats.statsd.graphiteStats.calculationtime.sfx", NULL },
    { "stats.statsd.processing_time.sfx", NULL },
    { NULL, NULL }
};
static const scen_flush S_tags_legacy[] = { { P_tags_legacy_0, E_tags_legacy_0 } };


/* ---- graphite_tests.js / graphite_legacy_tests.js ---------------- */

/* Legacy namespace (statsd's default): stats.X and stats_counts.X,
 * stats.timers.X.*, stats.gauges.X, stats.sets.X.count, statsd.numStats,
 * stats.statsd.*; a fresh server flushes its three counters (numStats 3),
 * and statsd.timestamp_lag joins from the second flush on. */
static void e2e_legacy_namespace(void **state)
{
    (void)state;
    rig r;
    int bad = 0;
    rig_init(&r);
    bad += SCEN(&r, legacy);
    rig_init(&r);
    bad += SCEN(&r, fresh);
    /* the legacy namespace ignores globalPrefix and the type prefixes */
    rig_init(&r);
    r.fo.global_prefix = "pfx";
    r.fo.prefix_counter = "cnt";
    r.fo.prefix_timer = "";
    r.fo.prefix_gauge = "gge";
    r.fo.prefix_set = "st";
    bad += SCEN(&r, legacy);
    assert_int_equal(bad, 0);
}

/* graphite.legacyNamespace = false: stats.counters.X.rate/.count, tags
 * after the stat, stats.statsd.numStats. */
static void e2e_new_namespace(void **state)
{
    (void)state;
    rig r;
    int bad = 0;
    rig_init(&r);
    r.fo.legacy = 0;
    bad += SCEN(&r, new);
    rig_init(&r);
    r.fo.legacy = 0;
    bad += SCEN(&r, fresh_new);
    assert_int_equal(bad, 0);
}

/* globalPrefix and the four type prefixes, set, and set to "" (an empty
 * part is left out of the name, not joined as ".."). */
static void e2e_custom_prefixes(void **state)
{
    (void)state;
    rig r;
    int bad = 0;
    rig_init(&r);
    r.fo.legacy = 0;
    r.fo.global_prefix = "pfx";
    r.fo.prefix_counter = "cnt";
    r.fo.prefix_timer = "tmr";
    r.fo.prefix_gauge = "gge";
    r.fo.prefix_set = "st";
    bad += SCEN(&r, custom);
    rig_init(&r);
    r.fo.legacy = 0;
    r.fo.global_prefix = "";
    r.fo.prefix_counter = "";
    r.fo.prefix_timer = "";
    r.fo.prefix_gauge = "";
    r.fo.prefix_set = "";
    bad += SCEN(&r, empty);
    rig_init(&r);
    r.fo.legacy = 0;
    r.fo.global_prefix = "";
    bad += SCEN(&r, emptygp);
    assert_int_equal(bad, 0);
}

/* graphite_tests_statssuffix.js: globalSuffix ends the name, before the
 * ;tags, in both namespaces (statsd.numStats.sfx in the legacy one). */
static void e2e_global_suffix(void **state)
{
    (void)state;
    rig r;
    int bad = 0;
    rig_init(&r);
    r.fo.legacy = 0;
    r.fo.global_suffix = "statssuffix";
    bad += SCEN(&r, suffix_new);
    rig_init(&r);
    r.fo.global_suffix = "sfx";
    bad += SCEN(&r, suffix_legacy);
    assert_int_equal(bad, 0);
}

/* flush_counts = false: only the rates (stats.X / .rate). */
static void e2e_flush_counts_false(void **state)
{
    (void)state;
    rig r;
    int bad = 0;
    rig_init(&r);
    r.fo.flush_counts = 0;
    bad += SCEN(&r, nocounts_legacy);
    rig_init(&r);
    r.fo.flush_counts = 0;
    r.fo.legacy = 0;
    bad += SCEN(&r, nocounts_new);
    assert_int_equal(bad, 0);
}

/* graphite_tests_statsprefix.js and graphite_legacy_tests_statsprefix.js:
 * prefixStats renames statsd's counters, numStats, processing_time and
 * timestamp_lag; a bad line counts in <prefix>.bad_lines_seen.  In the
 * legacy namespace an empty prefixStats gives statsd's "..". */
static void e2e_prefix_stats(void **state)
{
    (void)state;
    rig r;
    int bad = 0;
    rig_init(&r);
    r.fo.legacy = 0;
    rig_prefix_stats(&r, "statsprefix");
    bad += SCEN(&r, prefix_new);
    rig_init(&r);
    rig_prefix_stats(&r, "statsprefix");
    bad += SCEN(&r, prefix_legacy);
    rig_init(&r);
    rig_prefix_stats(&r, "");
    bad += SCEN(&r, prefix_empty_legacy);
    assert_int_equal(bad, 0);
}

/* prefixStats = "" in the new namespace: statsd's
 * format(globalNamespace, prefixStats, 'numStats') joins
 * ["stats", "", "numStats"] with dots: "stats..numStats",
 * "stats..graphiteStats.calculationtime", "stats..processing_time". */
static void e2e_prefix_stats_empty_new_STATSD_DIFF(void **state)
{
    (void)state;
    rig r;
    rig_init(&r);
    r.fo.legacy = 0;
    rig_prefix_stats(&r, "");
    assert_int_equal(SCEN(&r, prefix_empty_new), 0);
}

/* Tags (graphite ;k=v and DogStatsD |#k:v) stay at the very end, after
 * the stat name and the suffix, for every type; histogram configs match
 * the key with its tags, as statsd's key.indexOf(metric) does. */
static void e2e_tags_at_the_end(void **state)
{
    (void)state;
    rig r;
    int bad = 0;
    static double bins[] = { 10 };
    static char *names[] = { "histogram.bin_10" };
    static sy_histogram h[] = { { "env=prod", 1, bins, names } };
    rig_init(&r);
    r.fo.legacy = 0;
    r.fo.global_suffix = "sfx";
    r.fo.hist = h;
    r.fo.nhist = 1;
    bad += SCEN(&r, tags_all);
    rig_init(&r);
    r.fo.npct = 0;
    r.fo.global_suffix = "sfx";
    bad += SCEN(&r, tags_legacy);
    assert_int_equal(bad, 0);
}

/* keyNameSanitize = false: keys are kept as sent, and the graphite backend
 * sanitises the name part (not the tags) when it formats the line. */
static void e2e_key_name_sanitize_false(void **state)
{
    (void)state;
    rig r;
    int bad = 0;
    rig_init(&r);
    r.ao.sanitize = 0;
    r.fo.sanitized = 0;
    r.fo.npct = 0;
    bad += SCEN(&r, nosan_legacy);
    rig_init(&r);
    r.ao.sanitize = 0;
    r.fo.sanitized = 0;
    r.fo.npct = 0;
    r.fo.legacy = 0;
    r.fo.global_suffix = "sf";
    bad += SCEN(&r, nosan_new);
    assert_int_equal(bad, 0);
}

/* keyNameSanitize = false, graphite's sk(): key.replace(/\s+/g, '_') runs
 * on the UTF-8-decoded string, and JavaScript's \s includes U+00A0,
 * U+2028, U+3000, U+FEFF...  statsd's names (node, stats.js + graphite
 * backend): a<U+00A0>b -> a_b, c<U+2028>d -> c_d, e<U+FEFF>f -> e_f,
 * g<U+3000>h -> g_h, "k <U+00A0> l" -> k_l, "m\t<U+00A0>n;t=u v" ->
 * m_n;t=u v, and i<0x1F>j -> ij (not \s). */
static void e2e_sanitize_false_unicode_space_STATSD_DIFF(void **state)
{
    (void)state;
    static const char *const p0[] = {
        "a\xc2\xa0" "b:1|c", "c\xe2\x80\xa8" "d:1|c", "e\xef\xbb\xbf" "f:1|c",
        "g\xe3\x80\x80" "h:1|c", "k \xc2\xa0 l:1|c", "m\t\xc2\xa0n;t=u v:1|c", "i\x1fj:1|c", NULL,
    };
    static const exp_metric e0[] = {
        { "stats.counters.statsd.bad_lines_seen.rate", "0" },
        { "stats.counters.statsd.bad_lines_seen.count", "0" },
        { "stats.counters.statsd.packets_received.rate", "35" },
        { "stats.counters.statsd.packets_received.count", "7" },
        { "stats.counters.statsd.metrics_received.rate", "35" },
        { "stats.counters.statsd.metrics_received.count", "7" },
        { "stats.counters.a_b.rate", "5" }, { "stats.counters.a_b.count", "1" },
        { "stats.counters.c_d.rate", "5" }, { "stats.counters.c_d.count", "1" },
        { "stats.counters.e_f.rate", "5" }, { "stats.counters.e_f.count", "1" },
        { "stats.counters.g_h.rate", "5" }, { "stats.counters.g_h.count", "1" },
        { "stats.counters.k_l.rate", "5" }, { "stats.counters.k_l.count", "1" },
        { "stats.counters.m_n.rate;t=u v", "5" }, { "stats.counters.m_n.count;t=u v", "1" },
        { "stats.counters.ij.rate", "5" }, { "stats.counters.ij.count", "1" },
        { "stats.statsd.numStats", "10" },
        { "stats.statsd.graphiteStats.calculationtime", NULL },
        { "stats.statsd.processing_time", NULL },
        { NULL, NULL },
    };
    static const scen_flush S_unicode[] = { { p0, e0 } };
    rig r;
    rig_init(&r);
    r.ao.sanitize = 0;
    r.fo.sanitized = 0;
    r.fo.npct = 0;
    r.fo.legacy = 0;
    assert_int_equal(SCEN(&r, unicode), 0);
}

/* ---- graphite_delete_counters_tests.js and statsd's clear_metrics ---- */

/* deleteIdleStats with gaugesMaxTTL 2: counters deleted after a flush
 * unless the key contains packets_received, metrics_received or
 * bad_lines_seen (a substring test: user keys too); timers and sets
 * deleted; a gauge set once ("+1" on a missing gauge sets it) flushed
 * exactly twice; numStats follows. */
static void e2e_delete_idle_stats(void **state)
{
    (void)state;
    rig r;
    rig_init(&r);
    r.ao.delete_counters = r.ao.delete_timers = r.ao.delete_sets = r.ao.delete_gauges = 1;
    r.ao.gauges_max_ttl = 2;
    assert_int_equal(SCEN(&r, delete_idle), 0);
}

/* deleteGauges: with gaugesMaxTTL 1 a gauge is flushed once; a delta on a
 * deleted gauge sets it; with TTL 2 each update restarts the TTL. */
static void e2e_delete_gauges_ttl(void **state)
{
    (void)state;
    rig r;
    int bad = 0;
    rig_init(&r);
    r.ao.delete_gauges = 1;
    r.ao.gauges_max_ttl = 1;
    bad += SCEN(&r, delete_ttl1);
    rig_init(&r);
    r.ao.delete_gauges = 1;
    r.ao.gauges_max_ttl = 2;
    bad += SCEN(&r, ttl2_refresh);
    /* statsd forces gaugesMaxTTL to 1 unless it is an integer above 1. */
    rig_init(&r);
    r.ao.delete_gauges = 1;
    r.ao.gauges_max_ttl = 0;
    bad += SCEN(&r, delete_ttl1);
    assert_int_equal(bad, 0);
}

/* deleteCounters + deleteSets alone: idle timers still flush count and
 * count_ps (0), gauges persist. */
static void e2e_delete_counters_and_sets(void **state)
{
    (void)state;
    rig r;
    rig_init(&r);
    r.ao.delete_counters = r.ao.delete_sets = 1;
    assert_int_equal(SCEN(&r, del_cs), 0);
}

/* deleteTimers alone: a timer is gone the flush after it was idle. */
static void e2e_delete_timers(void **state)
{
    (void)state;
    rig r;
    rig_init(&r);
    r.ao.delete_timers = 1;
    assert_int_equal(SCEN(&r, del_timers), 0);
}

/* Nothing deleted: counters reset to 0 and still flushed, idle timers
 * flush count and count_ps only, idle sets count 0, gauges persist; gauge
 * deltas apply to the current value (and a delta on a 0 gauge sets it, the
 * same number); sample rates scale counters and timer counts. */
static void e2e_keep_idle_and_gauge_deltas(void **state)
{
    (void)state;
    rig r;
    rig_init(&r);
    assert_int_equal(SCEN(&r, keep_idle), 0);
}

/* statsd's three counters exist from the start and count: packets (each
 * sy_agg_feed call, empty ones too), metrics (each non-empty line) and bad
 * lines (each bad value of a line, or the line when it has no value). */
static void e2e_statsd_internal_counters(void **state)
{
    (void)state;
    rig r;
    rig_init(&r);
    assert_int_equal(SCEN(&r, counts), 0);

    rig_init(&r);
    rig_start(&r);
    for (const char *const *p = P_counts_0; *p; p++)
        rig_feed(&r, *p);
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
static void e2e_calculated_timer_metrics(void **state)
{
    (void)state;
    static char *calc[] = { "count_ps", "count", "count_percent", "mean_percent", "histogram" };
    static double bins[] = { 1000 };
    static char *names[] = { "histogram.bin_1000" };
    static sy_histogram h[] = { { "a_test_value", 1, bins, names } };
    rig r;
    rig_init(&r);
    r.fo.legacy = 0;
    r.fo.calc = calc;
    r.fo.ncalc = 5;
    r.fo.hist = h;
    r.fo.nhist = 1;
    assert_int_equal(SCEN(&r, filters), 0);
}

/* process_metrics_tests' histogram config end to end, with thresholds 90,
 * -20 and 99.9 (names count_top20, count_99_9). */
static void e2e_histograms_and_thresholds(void **state)
{
    (void)state;
    rig r;
    rig_init(&r);
    r.fo.legacy = 0;
    r.pct[0] = 90;
    r.pct[1] = -20;
    r.pct[2] = 99.9;
    r.fo.npct = 3;
    r.fo.hist = H1;
    r.fo.nhist = 4;
    assert_int_equal(SCEN(&r, hist), 0);
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
    got_list g = { 0 };
    rig_init(&r);
    rig_start(&r);
    for (const char *const *p = P_legacy_0; *p; p++)
        rig_feed(&r, *p);
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
    for (size_t k = 0; k < sizeof PM_ALL / sizeof PM_ALL[0]; k++) {
        const pm_vec *pv = PM_ALL[k];
        sy_flush_opts o;
        vec_opts(pv, &o);
        sy_timer_data *t = pv->n ? mk_timer(pv->v, pv->n, pv->count) : NULL;
        got_list g = { 0 };
        sy_timer_stats(&o, pv->key, t, stat_cb, &g);
        size_t want = g.n;
        got_free(&g);
        /* counted before and after the statistics (which sort the values) */
        if (t) {
            free_timer(t);
            t = mk_timer(pv->v, pv->n, pv->count);
        }
        size_t n = sy_timer_values(&o, pv->key, t);
        if (n != want) {
            print_message("  %s: counted %zu, made %zu\n", pv->name, n, want);
            bad++;
        }
        free_timer(t);
    }
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
        cmocka_unit_test(pm_stat_order),
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
        /* C: switchyard's limits and plumbing */
        cmocka_unit_test(agg_timer_sample_limit),
        cmocka_unit_test(agg_timer_sample_limit_threshold_count_STATSD_DIFF),
        cmocka_unit_test(agg_max_keys),
        cmocka_unit_test(agg_max_keys_keeps_timestamp_lag_STATSD_DIFF),
        cmocka_unit_test(agg_max_keys_room_after_delete),
        cmocka_unit_test(flush_batches_split),
        cmocka_unit_test(flush_long_names_stay_in_the_arena),
        cmocka_unit_test(timer_values_count_the_stats),
        cmocka_unit_test(flush_skip_counts_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
