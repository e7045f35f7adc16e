/*
 * test_dd_events.c - DogStatsD events and service checks in the aggregator
 * (core/engine/agg.c): with dogstatsdEvents sinks (opts.dd_sinks) each one
 * rides the raw batch as a SY_RAW_DD_LINE sample whose text is the line as
 * received, with the sinks' mask; without them it is only counted; a line
 * over SY_DD_LINE_MAX is counted as dropped, not carried.
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

static sy_agg *agg_with(uint64_t dd_sinks)
{
    sy_agg_opts o = { .sanitize = 1, .prefix_stats = "statsd", .flush_interval_ms = 1000,
                      .gauges_max_ttl = 1, .dd_sinks = dd_sinks };
    sy_agg *a = sy_agg_new(&o);
    assert_non_null(a);
    return a;
}

static void counted_only_without_sinks(void **state)
{
    (void)state;
    sy_agg *a = agg_with(0);
    sy_agg_line(a, "_e{2,2}:ab|cd", 13, NULL);
    sy_agg_line(a, "_sc|db.up|0", 11, NULL);
    const sy_agg_stats *st = sy_agg_get_stats(a);
    assert_int_equal(st->dd_events, 1);
    assert_int_equal(st->dd_service_checks, 1);
    assert_int_equal(st->dd_forwarded, 0);
    assert_null(sy_agg_take_raw(a));
    sy_agg_free(a);
}

static void carried_as_received(void **state)
{
    (void)state;
    sy_agg *a = agg_with(1u << 2);
    static const char *const lines[] = { "_e{2,2}:ab|cd|#env:prod", "_sc|db.up|2|m:d\xc3\xa9j\xc3\xa0" };
    static const char buf[] = "_e{2,2}:ab|cd|#env:prod\r\nx:1|c\n_sc|db.up|2|m:d\xc3\xa9j\xc3\xa0\n";
    sy_agg_feed(a, buf, sizeof buf - 1, NULL);
    sy_raw_batch *b = sy_agg_take_raw(a);
    assert_non_null(b);
    assert_int_equal(b->n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(b->samples[i].type, SY_RAW_DD_LINE);
        assert_int_equal(b->masks[i], 1u << 2);
        assert_int_equal(b->samples[i].text_len, strlen(lines[i]));
        assert_memory_equal(b->samples[i].text, lines[i], strlen(lines[i]));
    }
    const sy_agg_stats *st = sy_agg_get_stats(a);
    assert_int_equal(st->dd_forwarded, 2);
    assert_int_equal(st->dd_dropped, 0);
    assert_int_equal(st->passed_through, 0); /* not pass-through samples */
    assert_int_equal(st->bad_lines, 0);
    sy_raw_batch_free(b);
    sy_agg_free(a);
}

static void too_long_is_dropped(void **state)
{
    (void)state;
    sy_agg *a = agg_with(1);
    size_t tlen = SY_DD_LINE_MAX;
    char *line = malloc(tlen + 32);
    assert_non_null(line);
    int h = snprintf(line, 32, "_e{1,%zu}:t|", tlen);
    memset(line + h, 'x', tlen);
    sy_agg_line(a, line, (size_t)h + tlen, NULL);
    const sy_agg_stats *st = sy_agg_get_stats(a);
    assert_int_equal(st->dd_events, 1);
    assert_int_equal(st->dd_dropped, 1);
    assert_int_equal(st->dd_forwarded, 0);
    assert_null(sy_agg_take_raw(a));
    free(line);
    sy_agg_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counted_only_without_sinks),
        cmocka_unit_test(carried_as_received),
        cmocka_unit_test(too_long_is_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
