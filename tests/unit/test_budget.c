/*
 * test_budget.c - series budgets (core/engine/budget.c) on their own and in the
 * aggregator (core/engine/agg.c).
 *
 * On their own: admission until full and refusal (counted), every budget
 * that applies is charged, detach/attach moves a charge without counting
 * it twice, release gives it back, thousands of charges through the
 * table's growth and backward-shift deletions, and a reconfiguration that
 * reorders, drops, lowers and adds budgets keeps each surviving count and
 * its charges (a later release still reaches the right budget).
 *
 * In the aggregator: a prefix budget caps new keys while admitted ones
 * keep counting, a flush that deletes idle counters (deleteCounters) gives
 * the charges back, and statsd's own counters are never charged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/agg.h"
#include "engine/budget.h"

typedef struct seen {
    char label[64];
    uint64_t max, keys, dropped;
} seen;

typedef struct report {
    seen b[8];
    int n;
} report;

static void collect(void *ctx, const char *label, const char *kind, uint64_t max_keys, uint64_t keys,
                    uint64_t dropped)
{
    report *r = ctx;
    (void)kind;
    snprintf(r->b[r->n].label, sizeof r->b[r->n].label, "%s", label);
    r->b[r->n].max = max_keys;
    r->b[r->n].keys = keys;
    r->b[r->n].dropped = dropped;
    r->n++;
}

static seen get(sy_budgets *b, const char *label)
{
    report r = { .n = 0 };
    sy_budgets_each(b, collect, &r);
    for (int i = 0; i < r.n; i++)
        if (!strcmp(r.b[i].label, label))
            return r.b[i];
    fail_msg("no budget %s", label);
    return r.b[0];
}

static void admit_until_full(void **state)
{
    (void)state;
    sy_budgets *b = sy_budgets_new();
    sy_limit l[] = { { SY_BUDGET_TENANT, "t1", 3 }, { SY_BUDGET_PREFIX, "debug.", 2 },
                     { SY_BUDGET_LISTENER, "udp://x:1", 100 } };
    assert_int_equal(sy_budgets_configure(b, l, 3), 0);
    int entries[10];
    uint64_t m;
    /* t1's keys over udp://x:1 count against both */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sy_budgets_admit(b, "t1.k", 4, "t1", 2, "udp://x:1", &m), 1);
        assert_int_equal(m, 1 | 4);
        assert_int_equal(sy_budgets_attach(b, &entries[i], m), 0);
    }
    assert_int_equal(sy_budgets_admit(b, "t1.k", 4, "t1", 2, "udp://x:1", &m), 0);
    assert_int_equal(m, 0);
    assert_int_equal(get(b, "tenant=t1").keys, 3);
    assert_int_equal(get(b, "tenant=t1").dropped, 1);
    assert_int_equal(get(b, "listener=udp://x:1").keys, 3);
    /* another tenant, another listener: no budget applies */
    assert_int_equal(sy_budgets_admit(b, "t2.k", 4, "t2", 2, "tcp://y:2", &m), 1);
    assert_int_equal(m, 0);
    /* a prefix is matched on the name; a refused key is charged to none */
    assert_int_equal(sy_budgets_admit(b, "debug.a", 7, "", 0, "", &m), 1);
    assert_int_equal(sy_budgets_attach(b, &entries[3], m), 0);
    assert_int_equal(sy_budgets_admit(b, "debug.b", 7, "", 0, "", &m), 1);
    assert_int_equal(sy_budgets_attach(b, &entries[4], m), 0);
    assert_int_equal(sy_budgets_admit(b, "debug.c", 7, "t1", 2, "", &m), 0);
    assert_int_equal(get(b, "tenant=t1").dropped, 2); /* both full: both count it */
    assert_int_equal(get(b, "prefix=debug.").dropped, 1);
    assert_int_equal(sy_budgets_admit(b, "debu", 4, "", 0, "", &m), 1);
    assert_int_equal(m, 0);
    /* a moved charge is counted once; a release gives it back */
    uint64_t moved = sy_budgets_detach(b, &entries[0]);
    assert_int_equal(moved, 1 | 4);
    assert_int_equal(sy_budgets_attach(b, &entries[5], moved), 0);
    assert_int_equal(get(b, "tenant=t1").keys, 3);
    sy_budgets_release(b, &entries[0]); /* nothing left there */
    assert_int_equal(get(b, "tenant=t1").keys, 3);
    sy_budgets_release(b, &entries[5]);
    assert_int_equal(get(b, "tenant=t1").keys, 2);
    assert_int_equal(get(b, "listener=udp://x:1").keys, 2);
    assert_int_equal(sy_budgets_admit(b, "t1.k", 4, "t1", 2, "udp://x:1", &m), 1);
    sy_budgets_uncount(b, m); /* admitted, then not created */
    assert_int_equal(get(b, "tenant=t1").keys, 2);
    sy_budgets_free(b);
}

static void many_charges(void **state)
{
    (void)state;
    enum { N = 20000 };
    sy_budgets *b = sy_budgets_new();
    sy_limit l[] = { { SY_BUDGET_PREFIX, "k", N } };
    sy_budgets_configure(b, l, 1);
    char *e = malloc(N);
    uint64_t m;
    for (int i = 0; i < N; i++) {
        assert_int_equal(sy_budgets_admit(b, "k", 1, "", 0, "", &m), 1);
        assert_int_equal(sy_budgets_attach(b, e + i, m), 0);
    }
    assert_int_equal(get(b, "prefix=k").keys, N);
    /* every other one released, then the rest: each exactly once */
    for (int i = 0; i < N; i += 2)
        sy_budgets_release(b, e + i);
    assert_int_equal(get(b, "prefix=k").keys, N / 2);
    for (int i = 0; i < N; i++)
        sy_budgets_release(b, e + i);
    assert_int_equal(get(b, "prefix=k").keys, 0);
    free(e);
    sy_budgets_free(b);
}

static void reconfigure_keeps_counts(void **state)
{
    (void)state;
    sy_budgets *b = sy_budgets_new();
    sy_limit l1[] = { { SY_BUDGET_TENANT, "gone", 5 }, { SY_BUDGET_TENANT, "t1", 10 },
                      { SY_BUDGET_PREFIX, "d.", 10 } };
    sy_budgets_configure(b, l1, 3);
    int e[8];
    uint64_t m;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sy_budgets_admit(b, "d.x", 3, "t1", 2, "", &m), 1);
        assert_int_equal(m, 2 | 4);
        sy_budgets_attach(b, &e[i], m);
    }
    /* reordered, one dropped, t1 lowered below its count, one added */
    sy_limit l2[] = { { SY_BUDGET_PREFIX, "d.", 10 }, { SY_BUDGET_LISTENER, "u", 1 },
                      { SY_BUDGET_TENANT, "t1", 2 } };
    sy_budgets_configure(b, l2, 3);
    assert_int_equal(sy_budgets_count(b), 3);
    assert_int_equal(get(b, "tenant=t1").keys, 4); /* nothing evicted */
    assert_int_equal(get(b, "tenant=t1").max, 2);
    assert_int_equal(get(b, "prefix=d.").keys, 4);
    assert_int_equal(get(b, "listener=u").keys, 0); /* new: starts at 0 */
    assert_int_equal(sy_budgets_admit(b, "d.y", 3, "t1", 2, "", &m), 0);
    /* the charges follow: releases reach the budgets at their new places */
    sy_budgets_release(b, &e[0]);
    sy_budgets_release(b, &e[1]);
    sy_budgets_release(b, &e[2]);
    assert_int_equal(get(b, "tenant=t1").keys, 1);
    assert_int_equal(get(b, "prefix=d.").keys, 1);
    assert_int_equal(get(b, "listener=u").keys, 0);
    assert_int_equal(sy_budgets_admit(b, "d.y", 3, "t1", 2, "", &m), 1);
    assert_int_equal(m, 1 | 4);
    sy_budgets_free(b);
}

static void in_the_aggregator(void **state)
{
    (void)state;
    sy_agg_opts o = { .sanitize = 1, .delete_counters = 1, .prefix_stats = "statsd",
                      .flush_interval_ms = 1000, .gauges_max_ttl = 1 };
    sy_agg *a = sy_agg_new(&o);
    assert_non_null(a);
    sy_limit l[] = { { SY_BUDGET_PREFIX, "a.", 3 }, { SY_BUDGET_PREFIX, "statsd.", 1 } };
    sy_agg_set_limits(a, l, 2);
    sy_budgets *b = sy_agg_get_stats(a)->budgets;
    char line[64];
    for (int i = 0; i < 10; i++) {
        int n = snprintf(line, sizeof line, "a.k%d:1|c", i);
        sy_agg_line(a, line, (size_t)n, NULL);
    }
    sy_agg_line(a, "a.k1:5|c", 8, NULL); /* admitted: still counted */
    sy_agg_line(a, "b.k:1|c", 7, NULL);  /* no budget applies */
    assert_int_equal(get(b, "prefix=a.").keys, 3);
    assert_int_equal(get(b, "prefix=a.").dropped, 7);
    assert_int_equal(get(b, "prefix=statsd.").keys, 0); /* statsd's own: never charged */
    sy_snapshot *s = sy_agg_snapshot(a, 1);
    double k1 = -1;
    int n_a = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!strncmp(s->items[i].key, "a.", 2))
            n_a++;
        if (!strcmp(s->items[i].key, "a.k1"))
            k1 = s->items[i].value;
    }
    assert_int_equal(n_a, 3);
    assert_true(k1 == 6);
    sy_snapshot_free(s);
    /* deleteCounters deleted them at that flush: charges given back */
    assert_int_equal(get(b, "prefix=a.").keys, 0);
    sy_agg_line(a, "a.new:1|c", 9, NULL);
    assert_int_equal(get(b, "prefix=a.").keys, 1);
    sy_agg_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(admit_until_full),
        cmocka_unit_test(many_charges),
        cmocka_unit_test(reconfigure_keeps_counts),
        cmocka_unit_test(in_the_aggregator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
