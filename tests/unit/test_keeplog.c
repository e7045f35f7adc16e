/*
 * test_keeplog.c - the keep log behind take_back (plugins/lib/keeplog.c):
 *
 *   - values are released once the queue has sent past their end, and
 *     not before (a value whose text is half sent stays);
 *   - covers() says which queued ranges belong to a kept value, walking
 *     forward over gaps (raw sample lines have no entry);
 *   - take hands back every value left, oldest first, exactly (name,
 *     kind, value), in batches of one flush time of at most 2,048 values,
 *     across many chunks and with names longer than a chunk, and empties
 *     the log.
 *
 * The unit test rule links only the core library, so the helper is
 * compiled in here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/lib/entrylog.c"
#include "../../plugins/lib/keeplog.c"

static void add(keeplog *k, int64_t ts, const char *name, double v, uint64_t s, uint64_t e)
{
    sy_metric m = { .name = name, .name_len = (uint32_t)strlen(name), .kind = SY_KIND_GAUGE,
                    .value = v };
    assert_int_equal(keeplog_add(k, ts, &m, s, e), 0);
}

typedef struct got {
    size_t batches, values;
    int64_t last_ts;
    double next;        /* values are 0, 1, 2, ... in order */
    size_t max_batch;
    int names_ok;
} got;

static void keep(void *ctx, const sy_metric_batch *b)
{
    got *g = ctx;
    char want[64];
    assert_true(b->count > 0);
    assert_true(b->timestamp >= g->last_ts);
    g->last_ts = b->timestamp;
    g->batches++;
    if (b->count > g->max_batch)
        g->max_batch = b->count;
    for (size_t i = 0; i < b->count; i++) {
        assert_true(b->metrics[i].value == g->next);
        snprintf(want, sizeof want, "m.%.0f", g->next);
        if (strncmp(b->metrics[i].name, want, strlen(want)) != 0 ||
            b->metrics[i].name[b->metrics[i].name_len] != '\0')
            g->names_ok = 0;
        assert_int_equal(b->metrics[i].kind, SY_KIND_GAUGE);
        g->next++;
        g->values++;
    }
}

static void test_release_and_covers(void **state)
{
    (void)state;
    keeplog *k = keeplog_new();
    add(k, 10, "m.0", 0, 0, 10);   /* [0,10) */
    /* [10,20): a raw sample line, not kept */
    add(k, 10, "m.1", 1, 20, 35);  /* a negative gauge: two lines [20,27) [27,35) */
    add(k, 11, "m.2", 2, 35, 40);
    assert_int_equal(keeplog_count(k), 3);

    keeplog_cursor c = { 0 };
    assert_true(keeplog_covers(k, &c, 0, 10));
    assert_false(keeplog_covers(k, &c, 10, 20));
    assert_true(keeplog_covers(k, &c, 20, 27));
    assert_true(keeplog_covers(k, &c, 27, 35));
    assert_true(keeplog_covers(k, &c, 35, 40));
    assert_false(keeplog_covers(k, &c, 40, 45));

    keeplog_release(k, 9);          /* m.0 half sent: stays */
    assert_int_equal(keeplog_count(k), 3);
    keeplog_release(k, 27);         /* m.0 gone; m.1 half sent */
    assert_int_equal(keeplog_count(k), 2);

    got g = { .next = 1, .names_ok = 1 };
    assert_int_equal(keeplog_take(k, keep, &g), 2);
    assert_int_equal(g.batches, 2); /* ts 10, then ts 11 */
    assert_true(g.names_ok);
    assert_int_equal(keeplog_count(k), 0);
    assert_int_equal(keeplog_bytes(k), 0);
    /* usable again after a take */
    add(k, 12, "m.3", 3, 50, 60);
    assert_int_equal(keeplog_count(k), 1);
    keeplog_release(k, 60);
    assert_int_equal(keeplog_count(k), 0);
    keeplog_free(k);
}

static void test_take_many(void **state)
{
    (void)state;
    keeplog *k = keeplog_new();
    char *name = malloc(400000);
    uint64_t pos = 0;
    size_t n = 100000;
    for (size_t i = 0; i < n; i++) {
        /* every 10,000th name is longer than a chunk */
        size_t len = (size_t)snprintf(name, 64, "m.%zu.", i);
        size_t extra = i % 10000 == 5 ? 300000 : i % 7;
        memset(name + len, 'x', extra);
        name[len + extra] = '\0';
        add(k, (int64_t)(1000 + i / 5000), name, (double)i, pos, pos + 10);
        pos += 10;
        /* the queue sends as it goes: release what is sent, a step behind */
        if (i % 1000 == 999 && i < n / 2)
            keeplog_release(k, pos - 5000);
    }
    size_t left = keeplog_count(k);
    got g = { .names_ok = 1 };
    /* what was released is the front: the first value left is the next */
    g.next = (double)(n - left);
    assert_int_equal(keeplog_take(k, keep, &g), left);
    assert_int_equal(g.values, left);
    assert_true(g.names_ok);
    assert_true(g.max_batch <= 2048);
    assert_int_equal(keeplog_count(k), 0);
    free(name);
    keeplog_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_and_covers),
        cmocka_unit_test(test_take_many),
    };
    return cmocka_run_group_tests_name("keeplog", tests, NULL, NULL);
}
