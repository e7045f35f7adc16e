/*
 * test_lineq.c - the bounded line queue of the batching sinks
 * (plugins/lib/lineq.c): runs, the byte bound, and the buffer and ring
 * wrapping around while lines come and go.
 *
 *   - a run stops at max_lines or max_bytes, but always holds one line;
 *   - the bound: a line that would pass max_bytes is refused, and room
 *     comes back as runs are popped;
 *   - the ring of line lengths grows while its head is mid-way;
 *   - 200,000 lines of varying length pushed and popped in uneven runs
 *     through a 64 KiB queue (the text moves to the front, the ring of
 *     line lengths wraps and grows): every line comes out whole, in order,
 *     with its value count, and the totals match;
 *   - remove_if (take_back): the chosen lines go, the others stay whole and
 *     in order with their value counts, also after the front was popped.
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

#include "../../plugins/lib/lineq.c"

static void push(lineq *q, const char *text, uint32_t values)
{
    size_t n = strlen(text);
    char *p = lineq_reserve(q, n);
    assert_non_null(p);
    memcpy(p, text, n);
    lineq_commit(q, n, values);
}

static void test_runs(void **state)
{
    (void)state;
    lineq *q = lineq_new(1024);
    push(q, "a 1\n", 1);
    push(q, "bb 1,2\n", 2);
    push(q, "ccc 1,2,3\n", 3);
    lineq_run r = lineq_peek(q, 2, 1000);
    assert_int_equal(r.lines, 2);
    assert_int_equal(r.bytes, 11);
    assert_int_equal(r.values, 3);
    assert_memory_equal(r.data, "a 1\nbb 1,2\n", 11);
    r = lineq_peek(q, 10, 12); /* the third line does not fit */
    assert_int_equal(r.lines, 2);
    r = lineq_peek(q, 10, 2);  /* smaller than one line: still one */
    assert_int_equal(r.lines, 1);
    assert_int_equal(r.bytes, 4);
    lineq_pop(q, &r);
    assert_int_equal(lineq_lines(q), 2);
    assert_int_equal(lineq_values(q), 5);
    assert_int_equal(lineq_bytes(q), 17);
    r = lineq_peek(q, 10, 1000);
    assert_memory_equal(r.data, "bb 1,2\nccc 1,2,3\n", 17);
    lineq_pop(q, &r);
    assert_int_equal(lineq_lines(q), 0);
    assert_int_equal(lineq_values(q), 0);
    r = lineq_peek(q, 10, 1000);
    assert_int_equal(r.lines, 0);
    lineq_free(q);
}

static void test_bound(void **state)
{
    (void)state;
    lineq *q = lineq_new(100);
    char line[41];
    memset(line, 'x', 39);
    line[39] = '\n';
    line[40] = '\0';
    push(q, line, 1);
    push(q, line, 1);
    assert_null(lineq_reserve(q, 40)); /* 120 > 100 */
    assert_non_null(lineq_reserve(q, 20));
    assert_null(lineq_reserve(q, 101));
    lineq_run r = lineq_peek(q, 1, 100);
    lineq_pop(q, &r);
    assert_non_null(lineq_reserve(q, 40));
    lineq_free(q);
}

/* The ring of line lengths grows while its head is not at the start. */
static void test_ring_growth(void **state)
{
    (void)state;
    lineq *q = lineq_new(1 << 20);
    char buf[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, sizeof(buf), "%d\n", i);
        push(q, buf, 1);
    }
    lineq_run r = lineq_peek(q, 600, SIZE_MAX);
    lineq_pop(q, &r);
    for (int i = 1000; i < 5000; i++) {
        snprintf(buf, sizeof(buf), "%d\n", i);
        push(q, buf, 1);
    }
    assert_int_equal(lineq_lines(q), 4400);
    for (int i = 600; i < 5000; i++) {
        r = lineq_peek(q, 1, SIZE_MAX);
        int n = snprintf(buf, sizeof(buf), "%d\n", i);
        assert_int_equal(r.bytes, n);
        assert_memory_equal(r.data, buf, (size_t)n);
        lineq_pop(q, &r);
    }
    assert_int_equal(lineq_lines(q), 0);
    lineq_free(q);
}

static void test_wrap(void **state)
{
    (void)state;
    lineq *q = lineq_new(64 * 1024);
    uint64_t in = 0, out = 0, vin = 0, vout = 0;
    unsigned seed = 1;
    char buf[300];
    while (out < 200000) {
        /* push until full or 1000 ahead */
        while (in < 200000 && in - out < 1000) {
            seed = seed * 1103515245 + 12345;
            size_t len = (size_t)snprintf(buf, sizeof(buf), "line%llu %.*s\n",
                                          (unsigned long long)in, (int)(seed >> 16) % 200,
                                          "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                                          "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                                          "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                                          "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
            char *p = lineq_reserve(q, len);
            if (!p)
                break;
            memcpy(p, buf, len);
            lineq_commit(q, len, (uint32_t)(in % 7));
            vin += in % 7;
            in++;
        }
        seed = seed * 1103515245 + 12345;
        lineq_run r = lineq_peek(q, 1 + (seed >> 16) % 300, 1 + (seed >> 8) % 20000);
        assert_true(r.lines >= 1);
        const char *p = r.data, *e = r.data + r.bytes;
        uint64_t v = 0;
        for (size_t i = 0; i < r.lines; i++) {
            char want[32];
            int wl = snprintf(want, sizeof(want), "line%llu ", (unsigned long long)(out + i));
            assert_true(e - p >= wl);
            assert_memory_equal(p, want, (size_t)wl);
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            assert_non_null(nl);
            p = nl + 1;
            v += (out + i) % 7;
        }
        assert_ptr_equal(p, e);
        assert_int_equal(v, r.values);
        lineq_pop(q, &r);
        out += r.lines;
        vout += v;
    }
    assert_int_equal(in, out);
    assert_int_equal(vin, vout);
    assert_int_equal(lineq_lines(q), 0);
    assert_int_equal(lineq_bytes(q), 0);
    lineq_free(q);
}

static int drop_odd(void *ctx, size_t index)
{
    (*(size_t *)ctx)++;
    return index % 2 == 1;
}

static void test_remove_if(void **state)
{
    (void)state;
    lineq *q = lineq_new(1 << 16);
    char text[32];
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof text, "line%d\n", i);
        push(q, text, (uint32_t)i + 1);
    }
    lineq_run r = lineq_peek(q, 2, SIZE_MAX);
    lineq_pop(q, &r); /* line0, line1 gone: head is mid-buffer */
    size_t calls = 0;
    uint64_t removed = lineq_remove_if(q, drop_odd, &calls);
    assert_int_equal(calls, 8);
    /* left: line2 (index 0), line4, line6, line8 */
    assert_int_equal(removed, 4 + 6 + 8 + 10);
    assert_int_equal(lineq_lines(q), 4);
    assert_int_equal(lineq_values(q), 3 + 5 + 7 + 9);
    r = lineq_peek(q, SIZE_MAX, SIZE_MAX);
    assert_int_equal(r.bytes, 4 * 6);
    assert_memory_equal(r.data, "line2\nline4\nline6\nline8\n", 24);
    assert_int_equal(r.values, 24);
    lineq_pop(q, &r);
    assert_int_equal(lineq_bytes(q), 0);
    push(q, "again\n", 1);
    r = lineq_peek(q, SIZE_MAX, SIZE_MAX);
    assert_memory_equal(r.data, "again\n", 6);
    lineq_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_ring_growth),
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_remove_if),
    };
    return cmocka_run_group_tests_name("lineq", tests, NULL, NULL);
}
