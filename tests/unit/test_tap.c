/*
 * test_tap.c - the live tap's pieces (core/admin/tap.c): its glob matcher and
 * its per-tap queue, with the test thread as the engine and the admin.
 *
 * The glob matcher is bit-parallel and must answer as a backtracking
 * matcher of route.glob's rules would (`*` any run without '.', `**` any
 * run): 200,000 random globs and keys over a small alphabet, compared
 * with a plain recursive matcher written here; and 300 long globs each
 * matched against 100 keys with one glob object, so that its cache of
 * state sets is reused, emptied and given up (both counted).  The queue: N lines and
 * not one more, the cap on open taps, bad globs and N refused, the rate
 * per second, a slow reader's lines skipped and counted, escaping of
 * what a client sent.
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
#include "admin/tap.h"

/* The reference: straightforward backtracking over the same rules. */
static int ref_match(const char *g, size_t gl, const char *s, size_t sl)
{
    if (gl == 0)
        return sl == 0;
    if (g[0] == '*') {
        size_t run = 0;
        while (run < gl && g[run] == '*')
            run++;
        int any = run > 1;
        for (size_t k = 0; k <= sl; k++) {
            if (ref_match(g + run, gl - run, s + k, sl - k))
                return 1;
            if (k < sl && !any && s[k] == '.')
                return 0;
        }
        return 0;
    }
    return sl > 0 && g[0] == s[0] && ref_match(g + 1, gl - 1, s + 1, sl - 1);
}

static void test_glob_against_reference(void **state)
{
    (void)state;
    static const char galpha[] = "ab.**";
    static const char salpha[] = "ab.";
    uint64_t x = 42;
    size_t matched = 0;
    for (int n = 0; n < 200000; n++) {
        char g[12], s[16];
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t gl = 1 + (x >> 60) % 10, sl = (x >> 50) % 14;
        for (size_t i = 0; i < gl; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            g[i] = galpha[(x >> 33) % 5];
        }
        for (size_t i = 0; i < sl; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            s[i] = salpha[(x >> 33) % 3];
        }
        sy_glob *gg = sy_glob_new(g, gl);
        assert_non_null(gg);
        int want = ref_match(g, gl, s, sl), got = sy_glob_match(gg, s, sl);
        if (want != got)
            fail_msg("glob '%.*s' on '%.*s': %d, want %d", (int)gl, g, (int)sl, s, got, want);
        matched += (size_t)got;
        sy_glob_free(gg);
    }
    assert_true(matched > 1000); /* the cases are not all misses */
}

/* The same recursion, remembering each (glob place, key place) answered:
 * for long globs, where plain backtracking takes exponential time. */
static signed char memo[260][420];

static int ref_memo(const char *g0, size_t gl0, const char *s0, size_t sl0, size_t gi, size_t si)
{
    signed char *m = &memo[gi][si];
    if (*m >= 0)
        return *m;
    const char *g = g0 + gi, *s = s0 + si;
    size_t gl = gl0 - gi, sl = sl0 - si;
    int r;
    if (gl == 0) {
        r = sl == 0;
    } else if (g[0] == '*') {
        size_t run = 0;
        while (run < gl && g[run] == '*')
            run++;
        int any = run > 1;
        r = 0;
        for (size_t k = 0; k <= sl && !r; k++) {
            if (ref_memo(g0, gl0, s0, sl0, gi + run, si + k))
                r = 1;
            else if (k < sl && !any && s[k] == '.')
                break;
        }
    } else {
        r = sl > 0 && g[0] == s[0] && ref_memo(g0, gl0, s0, sl0, gi + 1, si + 1);
    }
    return *m = (signed char)r;
}

/* One glob matched against many keys, as a tap does: the matcher's cache
 * of state sets is reused, emptied when full, and given up for a key that
 * needs too many new sets; each answer must still be the reference's.
 * Long random globs (up to 256 bytes) and keys (up to 400), some keys made
 * of the glob's own literals (many new sets, to reach those paths). */
static void test_glob_cache_against_reference(void **state)
{
    (void)state;
    static const char galpha[] = "ab.**";
    static const char salpha[] = "ab.";
    const char *seed = getenv("SY_SEED");
    uint64_t x = seed ? strtoull(seed, NULL, 10) : 4242, resets = 0, plain = 0;
    size_t matched = 0, cases = 0;
    for (int n = 0; n < 300; n++) {
        char g[SY_TAP_GLOB_MAX], s[420];
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t gl = 1 + (x >> 40) % SY_TAP_GLOB_MAX;
        int stars = (int)((x >> 20) % 4); /* some globs have few stars */
        for (size_t i = 0; i < gl; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            g[i] = galpha[(x >> 33) % (size_t)(stars ? 5 : 3)];
            if (stars == 1 && g[i] == '*' && (x >> 50) % 8)
                g[i] = 'a';
        }
        if (n % 4 == 3) {
            /* `**` and up to 254 bytes of many kinds (a few stars and
             * dots): the cache holds fewer sets, keys walking the glob
             * need more */
            gl = gl < 20 ? 20 : gl;
            g[0] = g[1] = '*';
            for (size_t i = 2; i < gl; i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                unsigned v = (unsigned)(x >> 33) % 300;
                g[i] = v < 6 ? '*' : v < 12 ? '.' : (char)(0x21 + (v * 7) % 220);
                if (g[i] == '*' && v >= 6)
                    g[i] = '+';
            }
        }
        sy_glob *gg = sy_glob_new(g, gl);
        assert_non_null(gg);
        for (int j = 0; j < 100; j++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            size_t sl = (x >> 40) % sizeof s;
            if (j % 3 == 0) {
                /* the glob's literals, stars taken out, with a slip now and then */
                size_t o = 0;
                while (o < sl) {
                    for (size_t i = 0; i < gl && o < sl; i++) {
                        x = x * 6364136223846793005ull + 1442695040888963407ull;
                        if (g[i] != '*')
                            s[o++] = (x >> 33) % 50 ? g[i] : salpha[(x >> 40) % 3];
                    }
                    if (o == 0)
                        break;
                }
                sl = o;
            } else {
                for (size_t i = 0; i < sl; i++) {
                    x = x * 6364136223846793005ull + 1442695040888963407ull;
                    s[i] = salpha[(x >> 33) % 3];
                }
            }
            memset(memo, -1, sizeof memo);
            int want = ref_memo(g, gl, s, sl, 0, 0), got = sy_glob_match(gg, s, sl);
            if (want != got)
                fail_msg("case %d.%d: glob '%.*s' on '%.*s': %d, want %d", n, j, (int)gl, g, (int)sl, s, got,
                         want);
            matched += (size_t)got;
            cases++;
        }
        uint64_t r, p;
        sy_glob_counts(gg, &r, &p);
        resets += r;
        plain += p;
        sy_glob_free(gg);
    }
    print_message("seed %s: %zu cases, %zu matched; the cache emptied %llu times, %llu keys finished without it\n",
                  seed ? seed : "4242", cases, matched, (unsigned long long)resets, (unsigned long long)plain);
    assert_true(matched > 200);

    /* A glob of 254 distinct-ish bytes after `**` (the cache holds few
     * sets of it) and keys that walk it again and again, each byte a new set: the
     * cache is emptied and the keys finish without it, answering right. */
    char g[SY_TAP_GLOB_MAX], s[420];
    g[0] = g[1] = '*';
    for (size_t i = 2; i < sizeof g; i++) {
        g[i] = (char)(0x21 + (i * 7) % 200);
        if (g[i] == '*' || g[i] == '.')
            g[i] = '-';
    }
    sy_glob *gg = sy_glob_new(g, sizeof g);
    for (int j = 0; j < 4; j++) {
        /* 150 bytes of it, a space, all of it (a match) or all but
         * its last byte */
        memcpy(s, g + 2, 150);
        s[150] = ' ';
        memcpy(s + 151, g + 2, sizeof g - 2);
        size_t sl = 151 + sizeof g - 2 - (j % 2 ? 0 : 1);
        memset(memo, -1, sizeof memo);
        int want = ref_memo(g, sizeof g, s, sl, 0, 0);
        assert_int_equal(want, j % 2);
        assert_int_equal(sy_glob_match(gg, s, sl), want);
    }
    uint64_t r, p;
    sy_glob_counts(gg, &r, &p);
    print_message("walking keys: the cache emptied %llu times, %llu keys finished without it\n",
                  (unsigned long long)r, (unsigned long long)p);
    assert_true(r > 0 && p > 0); /* both paths were taken */
    sy_glob_free(gg);
}

static void test_glob_cases(void **state)
{
    (void)state;
    static const struct { const char *g, *s; int m; } cases[] = {
        { "api.*.latency", "api.eu.latency", 1 },
        { "api.*.latency", "api.eu.west.latency", 0 },
        { "api.**.latency", "api.eu.west.latency", 1 },
        { "api.*", "api.", 1 },
        { "api.*", "api", 0 },
        { "**", "", 1 },
        { "*", "a.b", 0 },
        { "a*b*c", "aXbYc", 1 },
        { "a*b*c", "aXbY.c", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sy_glob *g = sy_glob_new(cases[i].g, strlen(cases[i].g));
        assert_int_equal(sy_glob_match(g, cases[i].s, strlen(cases[i].s)), cases[i].m);
        sy_glob_free(g);
    }
    /* the longest glob of the costliest kind, on a long key: it answers */
    char g[SY_TAP_GLOB_MAX], k[8000];
    for (size_t i = 0; i < sizeof g; i += 2)
        g[i] = '*', g[i + 1] = 'a';
    memset(k, 'a', sizeof k);
    k[sizeof k - 1] = 'b';
    sy_glob *gg = sy_glob_new(g, sizeof g);
    assert_int_equal(sy_glob_match(gg, k, sizeof k), 0);
    assert_int_equal(sy_glob_match(gg, k, sizeof k - 1), 1);
    sy_glob_free(gg);
    assert_null(sy_glob_new(g, 0));
    char big[SY_TAP_GLOB_MAX + 1];
    memset(big, 'x', sizeof big);
    assert_null(sy_glob_new(big, sizeof big));
}

static void emit(const char *line, const char *key)
{
    sy_tap_event ev = { .line = line, .len = strlen(line), .key = key, .klen = strlen(key),
                        .outcome = SY_TAP_ROUTED, .rate = 1, .name = key, .nlen = strlen(key),
                        .listener = "udp://x", .sender = "" };
    sy_tap_emit(&ev);
}

static int count_lines(const sy_buf *b)
{
    int n = 0;
    for (size_t i = 0; i < b->len; i++)
        n += b->p[i] == '\n';
    return n;
}

static void test_tap_bounds(void **state)
{
    (void)state;
    char err[256];
    /* refusals */
    char big[SY_TAP_GLOB_MAX + 2];
    memset(big, 'g', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sy_tap_open(big, 10, err, sizeof err), -1);
    assert_non_null(strstr(err, "glob of 1 to 256 bytes"));
    assert_int_equal(sy_tap_open("", 10, err, sizeof err), -1);
    assert_int_equal(sy_tap_open("a", 0, err, sizeof err), -1);
    assert_int_equal(sy_tap_open("a", SY_TAP_N_MAX + 1, err, sizeof err), -1);
    assert_int_equal(atomic_load(&sy_tap_on), 0);

    /* N lines, then done; lines that do not match are not shown */
    int id = sy_tap_open("api.*", 3, err, sizeof err);
    assert_true(id >= 0);
    assert_int_equal(atomic_load(&sy_tap_on), 1);
    emit("api.a:1|c", "api.a");
    emit("web.a:1|c", "web.a");
    emit("api.b c:1|c\r", "api.b_c");
    emit("api.c:1|c", "api.c");
    emit("api.d:1|c", "api.d");
    sy_buf b = { 0 };
    assert_int_equal(sy_tap_read(id, &b, 1 << 20, 0), 1);
    assert_int_equal(count_lines(&b), 3);
    sy_buf_add(&b, "", 1);
    assert_non_null(strstr(b.p, "api.a:1|c\trouted sinks=- name=api.a tenant=- listener=udp://x sender=-\n"));
    assert_non_null(strstr(b.p, "api.b\\x20c:1|c\\x0d\trouted")); /* one line whatever was sent */
    assert_null(strstr(b.p, "web.a"));
    assert_null(strstr(b.p, "api.d"));
    b.len = 0;
    sy_tap_close(id, &b);
    sy_buf_add(&b, "", 1);
    assert_string_equal(b.p, "tap: 3 lines shown; skipped: 0 over the rate (200/s), 0 for a full queue, "
                             "0 for a slow reader\n");
    assert_int_equal(atomic_load(&sy_tap_on), 0);

    /* at most SY_TAP_MAX at once; a closed one frees its place */
    int ids[SY_TAP_MAX];
    for (int i = 0; i < SY_TAP_MAX; i++)
        assert_true((ids[i] = sy_tap_open("x", 5, err, sizeof err)) >= 0);
    assert_int_equal(sy_tap_open("x", 5, err, sizeof err), -1);
    assert_non_null(strstr(err, "open already"));
    sy_tap_close(ids[0], NULL);
    assert_true((ids[0] = sy_tap_open("x", 5, err, sizeof err)) >= 0);
    for (int i = 0; i < SY_TAP_MAX; i++)
        sy_tap_close(ids[i], NULL);

    /* the rate: 1000 lines at once, at most two seconds' worth shown (a
     * second may turn meanwhile), the rest skipped and counted */
    id = sy_tap_open("**", 100000, err, sizeof err);
    for (int i = 0; i < 1000; i++)
        emit("k:1|c", "k");
    b.len = 0;
    assert_int_equal(sy_tap_read(id, &b, 1 << 20, 0), 0);
    int shown = count_lines(&b);
    assert_true(shown >= SY_TAP_RATE && shown <= 2 * SY_TAP_RATE);
    const sy_tap_stats *st = sy_tap_get_stats();
    uint64_t rate0 = atomic_load(&st->skipped_rate);
    assert_true(rate0 >= 1000 - 2 * SY_TAP_RATE);
    /* a slow reader: what is queued is skipped and counted, not kept */
    uint64_t slow0 = atomic_load(&st->skipped_slow), rate1 = atomic_load(&st->skipped_rate);
    emit("k:1|c", "k"); /* queued, or over the rate if this second is spent */
    b.len = 0;
    sy_tap_read(id, &b, 1 << 20, 1);
    assert_int_equal(b.len, 0);
    assert_int_equal(atomic_load(&st->skipped_slow) - slow0 + atomic_load(&st->skipped_rate) - rate1, 1);
    sy_tap_close(id, NULL);
    sy_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob_against_reference),
        cmocka_unit_test(test_glob_cache_against_reference),
        cmocka_unit_test(test_glob_cases),
        cmocka_unit_test(test_tap_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
