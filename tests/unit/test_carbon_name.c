/*
 * test_carbon_name.c - plugins/lib/carbonname.h, the graphite sink's check
 * that a name can go on a carbon line, against the plain rule it stands
 * for: not empty, no byte <= ' ', no 0x7f.
 *
 * The check looks at eight bytes at a time; these tests put every byte
 * value at every position of names of 0 to 40 bytes (so in every lane of
 * a word, in the overlapping last word, and in the short-name loop), next
 * to high bytes (UTF-8) that must not hide or fake a refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/lib/carbonname.h"

static int rule(const unsigned char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] == 0x7f)
            return 0;
    return 1;
}

/* Each byte value at each position, the rest of the name one filler. */
static void check_fill(unsigned char fill)
{
    unsigned char buf[48];
    for (size_t len = 0; len <= 40; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            for (int b = 0; b < 256; b++) {
                memset(buf, fill, len);
                buf[pos] = (unsigned char)b;
                int want = rule(buf, len);
                if (carbon_name_ok((const char *)buf, len) != want)
                    fail_msg("len %zu, byte 0x%02x at %zu among 0x%02x: want %d", len, b, pos,
                             fill, want);
            }
        }
    }
}

static void every_byte_everywhere(void **state)
{
    (void)state;
    check_fill('a');
    check_fill(0x80); /* the borrow of a high byte must not flag its neighbour */
    check_fill(0xff);
    check_fill('!');  /* the lowest byte allowed */
    check_fill(0x7e);
    check_fill(0xc2);
}

static void names_of_a_flush(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "stats.timers.bench.k000123.upper_90", "a", "stats.counters.k;env=prod,host=h1",
        "x.\xc3\xa9t\xc3\xa9", "0123456", "01234567", "012345678",
    };
    static const char *const bad[] = {
        "", "stats.timers.bench k", "stats.counters.k\n", "\tstats", "stats.gauges.k\x7f",
        "stats.sets.abcdefgh;route=/api v1", "a\r", "01234567\x01",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_true(carbon_name_ok(ok[i], strlen(ok[i])));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(carbon_name_ok(bad[i], strlen(bad[i])));
    /* only the first len bytes count */
    assert_true(carbon_name_ok("abcdefghij klm", 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_byte_everywhere),
        cmocka_unit_test(names_of_a_flush),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
