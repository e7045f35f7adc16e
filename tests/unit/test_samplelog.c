/*
 * test_samplelog.c - the keep log of raw samples behind remote_write's
 * take_back_samples (plugins/lib/samplelog.c):
 *
 *   - release forgets the samples numbered up to the given unit and no
 *     more (a sample carried from a later snapshot stays);
 *   - take hands back every sample left, oldest first, exactly (name,
 *     text, tags, value, rate, type, delta flag, client time), in batches
 *     of at most 2,048, across many chunks and with a name longer than a
 *     chunk, and empties the log;
 *   - the bound: a sample beyond max_bytes is refused and not kept, and
 *     the bytes per sample are 48 plus name, text and tags rounded to 8.
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
#include "../../plugins/lib/samplelog.c"

static int add(samplelog *l, uint64_t seq, const char *name, double v)
{
    char text[32];
    snprintf(text, sizeof text, "%.0f", v);
    sy_sample x = { .name = name, .name_len = (uint32_t)strlen(name), .text = text,
                    .text_len = (uint32_t)strlen(text), .tags = "a:b", .tags_len = 3,
                    .value = v, .rate = 0.5, .type = SY_SAMPLE_COUNTER, .is_delta = 1 };
    return samplelog_add(l, seq, &x, (int64_t)v * 10);
}

typedef struct got {
    size_t batches, samples, max_batch;
    double next;  /* values are 0, 1, 2, ... in order */
    int ok;
} got;

static void keep(void *ctx, const sy_sample_batch *b)
{
    got *g = ctx;
    char want[64];
    assert_true(b->count > 0);
    assert_non_null(b->timestamps_ms);
    g->batches++;
    if (b->count > g->max_batch)
        g->max_batch = b->count;
    for (size_t i = 0; i < b->count; i++) {
        const sy_sample *x = &b->samples[i];
        assert_true(x->value == g->next);
        snprintf(want, sizeof want, "m.%.0f", g->next);
        if (x->name_len < strlen(want) || strncmp(x->name, want, strlen(want)) != 0)
            g->ok = 0;
        snprintf(want, sizeof want, "%.0f", g->next);
        if (x->text_len != strlen(want) || memcmp(x->text, want, x->text_len) != 0 ||
            x->tags_len != 3 || memcmp(x->tags, "a:b", 3) != 0 || x->rate != 0.5 ||
            x->type != SY_SAMPLE_COUNTER || x->is_delta != 1 ||
            b->timestamps_ms[i] != (int64_t)g->next * 10)
            g->ok = 0;
        g->next++;
        g->samples++;
    }
}

static void test_release(void **unused)
{
    (void)unused;
    samplelog *l = samplelog_new(1 << 20);
    assert_non_null(l);
    /* snapshots 1, 1, 2, 3, 3 */
    const uint64_t seq[] = { 1, 1, 2, 3, 3 };
    char name[16];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "m.%d", i);
        assert_int_equal(add(l, seq[i], name, (double)i), 0);
    }
    samplelog_release(l, 0);
    assert_int_equal(samplelog_count(l), 5);
    samplelog_release(l, 1);
    assert_int_equal(samplelog_count(l), 3);
    samplelog_release(l, 2);
    assert_int_equal(samplelog_count(l), 2);
    got g = { .ok = 1, .next = 3 };
    assert_int_equal(samplelog_take(l, keep, &g), 2);
    assert_true(g.ok);
    assert_int_equal(samplelog_count(l), 0);
    assert_int_equal(samplelog_bytes(l), 0);
    samplelog_free(l);
}

static void test_take_many(void **unused)
{
    (void)unused;
    samplelog *l = samplelog_new((size_t)1 << 30);
    size_t n = 30000;
    char *name = malloc(400000);
    assert_non_null(name);
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(name, 64, "m.%zu.", i);
        size_t extra = i % 10000 == 5 ? 300000 : i % 7;
        memset(name + len, 'x', extra);
        name[len + extra] = '\0';
        assert_int_equal(add(l, 1 + i / 100, name, (double)i), 0);
        if (i % 1000 == 999 && i < n / 2)
            samplelog_release(l, i / 100 - 5);
    }
    size_t left = samplelog_count(l);
    got g = { .ok = 1, .next = (double)(n - left) };
    assert_int_equal(samplelog_take(l, keep, &g), left);
    assert_int_equal(g.samples, left);
    assert_true(g.ok);
    assert_true(g.max_batch <= 2048);
    assert_int_equal(samplelog_count(l), 0);
    free(name);
    samplelog_free(l);
}

static void test_bound(void **unused)
{
    (void)unused;
    /* "m.1" + "1" + "a:b": 48 + 7, rounded to 56 */
    sy_sample x = { .name = "m.1", .name_len = 3, .text = "1", .text_len = 1, .tags = "a:b",
                    .tags_len = 3 };
    assert_int_equal(samplelog_entry_bytes(&x), 56);
    samplelog *l = samplelog_new(56 * 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(add(l, 1, "m.1", 1), 0);
    assert_int_equal(add(l, 1, "m.1", 1), -1);
    assert_int_equal(samplelog_count(l), 3);
    assert_int_equal(samplelog_bytes(l), 56 * 3);
    samplelog_release(l, 1);
    assert_int_equal(add(l, 2, "m.1", 1), 0);
    samplelog_free(l);
    /* 0: keeps nothing */
    l = samplelog_new(0);
    assert_int_equal(add(l, 1, "m.1", 1), -1);
    samplelog_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_take_many),
        cmocka_unit_test(test_bound),
    };
    return cmocka_run_group_tests_name("samplelog", tests, NULL, NULL);
}
