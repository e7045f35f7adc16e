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
 *     the bytes per sample are 48 plus name, text and tags rounded to 8;
 *   - holds: with one sample a unit (the repeater and influxdb number
 *     each by its line), a walk with growing units finds exactly the
 *     samples kept;
 *   - the log of DogStatsD lines (plugins/lib/linelog.c, the repeater's
 *     take_back_lines) the same way: release, holds, take byte for byte
 *     in order, the bound (16 bytes plus the line, rounded to 8).
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
#include "../../plugins/lib/linelog.c"

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

static void test_holds(void **state)
{
    samplelog *l = samplelog_new(1 << 20);
    /* units 10, 20, ..., 100; 30 and 70 were never kept */
    for (uint64_t u = 10; u <= 100; u += 10)
        if (u != 30 && u != 70)
            assert_int_equal(add(l, u, "h", (double)u), 0);
    samplelog_release(l, 20);
    samplelog_cursor c = { 0 };
    int found = 0;
    for (uint64_t u = 5; u <= 105; u += 5) {
        int want = u % 10 == 0 && u > 20 && u != 30 && u != 70;
        assert_int_equal(samplelog_holds(l, &c, u), want);
        found += want;
    }
    assert_int_equal(found, 6);
    assert_int_equal(samplelog_count(l), 6);
    samplelog_free(l);
}

static size_t lines_n;
static char lines_got[4096][32];

static void keep_lines(void *ctx, const char *const *lines, const uint32_t *lens, size_t n)
{
    assert_true(n <= 2048);
    for (size_t i = 0; i < n && lines_n < 4096; i++, lines_n++) {
        assert_true(lens[i] < sizeof lines_got[0]);
        memcpy(lines_got[lines_n], lines[i], lens[i]);
        lines_got[lines_n][lens[i]] = '\0';
    }
}

static void test_linelog(void **state)
{
    linelog *l = linelog_new(1 << 20);
    char line[32];
    for (uint64_t i = 1; i <= 3000; i++) {
        int n = snprintf(line, sizeof line, "_sc|c.%llu|%d", (unsigned long long)i, (int)(i % 4));
        assert_int_equal(linelog_add(l, i * 100, line, (uint32_t)n), 0);
    }
    linelog_release(l, 1000); /* lines 1 to 10 were sent */
    assert_int_equal(linelog_count(l), 2990);
    linelog_cursor c = { 0 };
    assert_false(linelog_holds(l, &c, 1000));
    assert_false(linelog_holds(l, &c, 1050));
    assert_true(linelog_holds(l, &c, 1100));
    assert_true(linelog_holds(l, &c, 300000));
    assert_false(linelog_holds(l, &c, 300001));
    lines_n = 0;
    assert_int_equal(linelog_take(l, keep_lines, NULL), 2990);
    assert_int_equal(lines_n, 2990);
    assert_string_equal(lines_got[0], "_sc|c.11|3");
    assert_string_equal(lines_got[2989], "_sc|c.3000|0");
    assert_int_equal(linelog_count(l), 0);
    assert_int_equal(linelog_bytes(l), 0);
    linelog_free(l);

    /* the bound: 16 bytes plus the line, rounded to 8 */
    assert_int_equal(linelog_entry_bytes(7), 24);
    assert_int_equal(linelog_entry_bytes(8), 24);
    assert_int_equal(linelog_entry_bytes(9), 32);
    l = linelog_new(48);
    assert_int_equal(linelog_add(l, 1, "_sc|a|0", 7), 0);
    assert_int_equal(linelog_add(l, 2, "_sc|b|0", 7), 0);
    assert_int_equal(linelog_add(l, 3, "_sc|c|0", 7), -1);
    assert_int_equal(linelog_count(l), 2);
    linelog_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_take_many),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_holds),
        cmocka_unit_test(test_linelog),
    };
    return cmocka_run_group_tests_name("samplelog", tests, NULL, NULL);
}
