/*
 * test_predecide.c - the decisions a reload makes before it is applied
 * (core/engine/predecide.c): each key gets back the decision put for it,
 * a dropped key with its rule's reason (the tap shows it after the swap),
 * and the reasons cost nothing per key.
 *
 * 1M keys under 20 rules (10 of them drop, each with its own reason):
 * every key's decision and reason come back; the table's bytes equal
 * those of the same decisions without reasons, plus the reasons' own
 * bytes once.  A route function that makes a reason per key: the first
 * SY_PREDECIDE_REASONS reasons are kept, the rest take the generic one
 * and are counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/predecide.h"

#define NKEYS 1000000

static size_t key_of(int i, char *out) { return (size_t)snprintf(out, 32, "app.k%d.x", i); }

static void decision_of(int i, int with_reasons, sy_route *r, char *why)
{
    int rule = i % 20;
    memset(r, 0, sizeof *r);
    r->sinks = 1ull << (rule % 3);
    r->rate = rule == 7 ? 0.1 : 1;
    if (rule < 10) {
        snprintf(why, 64, with_reasons ? "rule %d drops it" : "dropped", rule);
        r->drop = why;
        r->sinks = 0;
    }
}

static size_t fill(sy_predecided *p, int with_reasons)
{
    char k[32], why[64];
    sy_route r;
    for (int i = 0; i < NKEYS; i++) {
        decision_of(i, with_reasons, &r, why);
        assert_int_equal(sy_predecided_put(p, 0, k, key_of(i, k), &r), 0);
    }
    return sy_predecided_bytes(p);
}

static void test_reasons_kept(void **state)
{
    (void)state;
    sy_predecided *p = sy_predecided_new(NKEYS), *plain = sy_predecided_new(NKEYS);
    assert_non_null(p);
    assert_non_null(plain);
    size_t bytes = fill(p, 1), plain_bytes = fill(plain, 0);
    assert_int_equal(sy_predecided_count(p), NKEYS);
    char k[32], why[64];
    sy_route want, got;
    for (int i = 0; i < NKEYS; i++) {
        decision_of(i, 1, &want, why);
        memset(&got, 0, sizeof got);
        assert_int_equal(sy_predecided_get(p, 0, k, key_of(i, k), &got), 1);
        assert_true(got.sinks == want.sinks && got.rate == want.rate && !got.renamed);
        if (want.drop)
            assert_string_equal(got.drop, want.drop);
        else
            assert_null(got.drop);
    }
    assert_int_equal(sy_predecided_get(p, 1, k, key_of(0, k), &got), 0); /* another type */
    assert_int_equal(sy_predecided_reasons_cut(p), 0);
    /* ten reasons of "rule N drops it" against one "dropped" */
    size_t reason_bytes = 10 * (strlen("rule 0 drops it") + 1) - (strlen("dropped") + 1);
    print_message("1M keys, 20 rules: %zu bytes (%.2f a key); without reasons %zu\n", bytes,
                  (double)bytes / NKEYS, plain_bytes);
    assert_int_equal(bytes, plain_bytes + reason_bytes);
    sy_predecided_free(p);
    sy_predecided_free(plain);
}

static void test_reasons_bounded(void **state)
{
    (void)state;
    sy_predecided *p = sy_predecided_new(1000);
    char k[32], why[64];
    sy_route r;
    int n = SY_PREDECIDE_REASONS + 44;
    for (int i = 0; i < n; i++) {
        memset(&r, 0, sizeof r);
        snprintf(why, sizeof why, "key %d dropped", i);
        r.drop = why;
        assert_int_equal(sy_predecided_put(p, 2, k, key_of(i, k), &r), 0);
    }
    assert_int_equal(sy_predecided_reasons_cut(p), 44);
    for (int i = 0; i < n; i++) {
        assert_int_equal(sy_predecided_get(p, 2, k, key_of(i, k), &r), 1);
        snprintf(why, sizeof why, "key %d dropped", i);
        if (i < SY_PREDECIDE_REASONS)
            assert_string_equal(r.drop, why);
        else
            assert_non_null(strstr(r.drop, "decided before the reload"));
    }
    /* a reason is kept up to 120 bytes */
    char longer[300];
    memset(longer, 'r', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    sy_predecided *q = sy_predecided_new(10);
    memset(&r, 0, sizeof r);
    r.drop = longer;
    assert_int_equal(sy_predecided_put(q, 0, "a", 1, &r), 0);
    assert_int_equal(sy_predecided_get(q, 0, "a", 1, &r), 1);
    assert_int_equal(strlen(r.drop), 120);
    sy_predecided_free(q);
    sy_predecided_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasons_kept),
        cmocka_unit_test(test_reasons_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
