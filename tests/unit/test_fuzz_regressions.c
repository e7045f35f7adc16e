/*
 * test_fuzz_regressions.c - the parser fuzz harness's checks, without
 * libFuzzer, in the plain and the ASan+UBSan unit builds.
 *
 * tests/fuzz/fuzz_parse.c is included as it is (its libFuzzer entry point
 * left out), with its invariant check turned into a cmocka failure, and
 * run on:
 *
 *   - every input under tests/fuzz/regressions/parse/: what the parser
 *     fuzzer once found, kept so that it never comes back, and edge cases
 *     pinned there by hand (at least one input, or the test fails);
 *   - the parser's seed corpus, tests/fuzz/corpus/parse/ (realistic lines,
 *     so the checks themselves are exercised on every build);
 *   - the cases below, written out: inputs the fuzzer found interesting
 *     enough to pin down by hand.
 *
 * Files are found from $SY_ROOT (tests/run.sh sets it) or the current
 * directory.  Each input is copied into a heap block of exactly its size,
 * as libFuzzer does, so ASan sees a read past its end.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define FUZZ_CHECK(cond, ...)                                                       \
    do {                                                                            \
        if (!(cond)) {                                                              \
            print_error("invariant failed: %s\n    ", #cond);                       \
            print_error(__VA_ARGS__);                                               \
            fail_msg("(see above)");                                                \
        }                                                                           \
    } while (0)
#define FUZZ_PARSE_NO_MAIN
#include "../fuzz/fuzz_parse.c"

static void run_one(const void *data, size_t len)
{
    uint8_t *copy = (uint8_t *)fuzz_dup(data, len);
    fuzz_parse_one(copy, len);
    free(copy);
}

/* Replay every regular file of a directory; returns how many. */
static size_t replay_dir(const char *rel)
{
    const char *root = getenv("SY_ROOT");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root && *root ? root : ".", rel);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".md"))
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        char *buf = malloc(1 << 20);
        assert_non_null(buf);
        size_t len = fread(buf, 1, 1 << 20, f);
        fclose(f);
        print_message("    %s (%zu bytes)\n", path, len);
        run_one(buf, len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

static void test_regression_files(void **state)
{
    (void)state;
    size_t n = replay_dir("tests/fuzz/regressions/parse");
    print_message("    %zu parser regression inputs\n", n);
    /* The inputs are committed: none found means a wrong or emptied
     * directory, and this test would pass by replaying nothing. */
    assert_true(n >= 1);
}

static void test_seed_corpus(void **state)
{
    (void)state;
    size_t n = replay_dir("tests/fuzz/corpus/parse");
    /* The seeds are committed: finding none means the path is wrong and
     * this test would prove nothing. */
    assert_true(n >= 10);
}

#define CASE(s) { s, sizeof(s) - 1 }
static const struct {
    const char *data;
    size_t len;
} cases[] = {
    /* Rates at the edge of the double range: 1/rate overflows to
     * infinity, so a counter becomes inf (or NaN for 0) - as in statsd. */
    CASE("x:0|c|@1e-320"),
    CASE("x:1|c|@4.9e-324"),
    /* The Clinger fast path and its neighbours. */
    CASE("x:9007199254740993|g"),
    CASE("x:12e30|g\nx:123456789e22|g\nx:9007199254740992e15|g"),
    CASE("x:0.0000000000000000000000001e-300|g"),
    /* More than 19 significant digits, and more than 801. */
    CASE("x:1234567890123456789012345678901234567890|c"),
    /* Keys at the length limit, with tags pushing them over. */
    CASE("k:1|c|#a:b,c:d,e"),
    /* Several "|#" parts: statsd keeps only the first. */
    CASE("k:1|c|#a|#b:c|d"),
    /* Sanitiser edge: a UTF-8 space cut short at the end of the key. */
    CASE("a\xe2\x80:1|c"),
    CASE("a\xc2:1|c"),
    CASE("\r"),
    CASE(":\r"),
};

static void test_written_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_one(cases[i].data, cases[i].len);
    /* A key of exactly SY_KEY_MAX - 1 bytes, and one byte more. */
    char line[SY_KEY_MAX + 8];
    for (int extra = 0; extra < 2; extra++) {
        size_t k = SY_KEY_MAX - 1 + (size_t)extra;
        memset(line, 'k', k);
        memcpy(line + k, ":1|c", 4);
        run_one(line, k + 4);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regression_files),
        cmocka_unit_test(test_seed_corpus),
        cmocka_unit_test(test_written_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
