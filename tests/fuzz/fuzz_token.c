/*
 * fuzz_token.c - token authentication and everything after it, through the
 * synchronous facade (core/testing.h): parse, auth, route, aggregate, flush.
 *
 * Two sy_tests are loaded once: tests/fuzz/token.config.lua (tokens as a
 * table, routes of every kind) and token-fn.config.lua (auth as a Lua
 * function with awkward answers).  Each input is one packet:
 *
 *   byte 0: bit 0 which config; bits 1-2 the listener (mostly an auth one,
 *           3 = the plain UDP listener); bits 3-4 the sender (127.0.0.1,
 *           10.1.2.3, ::1, none); bits 5-6 both set: flush after this one
 *   rest:   the packet, lines and all
 *
 * Every FLUSH_EVERY inputs both are flushed as well, so state builds up
 * across inputs the way it does in the daemon (a crash may need the inputs
 * before it: libFuzzer's -runs on the crash file alone can miss it; the
 * flush bit makes a one-input reproducer likely).
 *
 * Checked:
 *   - the refused-line count (auth_rejected) rises by exactly the lines
 *     this harness, knowing the token tables, expects to be refused: no
 *     '.', a ':' before the first '.', an empty or unknown token, a token
 *     over 256 bytes, a sender the token does not allow, a raising auth
 *     function, a namespace that cannot be applied (255 bytes or more, or
 *     not a string or number);
 *   - every flushed name is non-empty and made of bytes Graphite's
 *     plaintext protocol cannot misread ([A-Za-z0-9_.;=-]): keys are
 *     sanitised and these configs' namespaces are clean, so a client must
 *     not be able to put a space or newline into a line;
 *   - raw (pass-through) samples have a known type and a positive rate.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "util/log.h"
#include "testing.h"

#define FLUSH_EVERY 64
#define RELOAD_KEYS 45000 /* maxKeys is 50000: start afresh before new keys stop counting */

static const char *const config_files[2] = { "tests/fuzz/token.config.lua",
                                             "tests/fuzz/token-fn.config.lua" };
static const char *const listeners[2][4] = {
    { "tcp://127.0.0.1:8126", "unix:///tmp/switchyard-fuzz.sock", "tcp://127.0.0.1:8126",
      "udp://127.0.0.1:8125" },
    { "tcp://127.0.0.1:8126", "tcp://127.0.0.1:8126", "tcp://127.0.0.1:8126", "udp://127.0.0.1:8125" },
};
static const char *const senders[4] = { "127.0.0.1", "10.1.2.3", "::1", NULL };

static sy_test *tests[2];
static unsigned long inputs;
static int64_t now_s = 1700000000;

static sy_test *load(int which)
{
    char path[4096], lua_dir[4096], err[1024];
    snprintf(path, sizeof path, "%s/%s", fuzz_src_root(), config_files[which]);
    snprintf(lua_dir, sizeof lua_dir, "%s/lua", fuzz_src_root());
    sy_test *t = sy_test_new(path, lua_dir, err, sizeof err);
    if (!t) {
        fprintf(stderr, "fuzz_token: cannot load %s: %s\n", path, err);
        abort();
    }
    return t;
}

/* Would the config refuse this token from this sender? */
static int refused(int which, const char *tok, size_t n, int sender)
{
#define IS(s) (n == sizeof(s) - 1 && memcmp(tok, s, n) == 0)
    if (n == 0 || n > 256)
        return 1;
    if (which == 0) {
        if (IS("s3cret") || IS("open") || IS("wide") || IS("dotted"))
            return 0;
        if (IS("toolong"))
            return 1; /* its namespace does not fit: refused, not let in bare */
        if (IS("ops"))
            return sender != 1; /* only 10.0.0.0/8 */
        if (n == 256) {
            for (size_t i = 0; i < n; i++)
                if (tok[i] != 't')
                    return 1;
            return 0;
        }
        return 1;
    }
    if (IS("fn") || IS("bare") || IS("edge") || IS("num"))
        return 0;
    if (IS("over") || IS("tbl"))
        return 1; /* a namespace too long, or not a string: refused */
    if (IS("ten"))
        return sender != 1;
    if (n >= 3 && memcmp(tok, "ok_", 3) == 0)
        return 0;
    return 1; /* "err" raises: refused too */
#undef IS
}

/* sy_agg_feed's framing and sy_agg_line's token rule, written out. */
static unsigned long expected_refusals(int which, const char *buf, size_t len, int sender)
{
    unsigned long n = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        size_t l = (size_t)(stop - p);
        if (l && p[l - 1] == '\r')
            l--;
        if (l) {
            const char *dot = memchr(p, '.', l);
            const char *colon = memchr(p, ':', l);
            if (!dot || dot == p || (colon && colon < dot) || refused(which, p, (size_t)(dot - p), sender))
                n++;
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    return n;
}

static int graphite_safe(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ';' || c == '=';
}

static void flush(int which)
{
    sy_test *t = tests[which];
    FUZZ_CHECK(sy_test_flush(t, now_s) == 0, "sy_test_flush failed");
    size_t n = sy_test_result_count(t);
    for (size_t i = 0; i < n; i++) {
        const char *sink, *name;
        double v;
        FUZZ_CHECK(sy_test_result(t, i, &sink, &name, &v) == 0, "result %zu missing", i);
        size_t len = strlen(name);
        FUZZ_CHECK(len > 0, "an empty name");
        for (size_t k = 0; k < len; k++)
            FUZZ_CHECK(graphite_safe((unsigned char)name[k]), "flushed name '%s' holds byte 0x%02x", name,
                       (unsigned char)name[k]);
    }
    size_t nraw = sy_test_raw_count(t);
    for (size_t i = 0; i < nraw; i++) {
        const char *sink, *name, *text, *tags;
        int type;
        double rate;
        FUZZ_CHECK(sy_test_raw(t, i, &sink, &name, &text, &type, &rate, &tags) == 0, "raw %zu missing", i);
        FUZZ_CHECK(strcmp(sink, "traces") == 0, "raw sample for sink '%s'", sink);
        FUZZ_CHECK(type == 'c' || type == 'g' || type == 't' || type == 's', "raw type %d", type);
        FUZZ_CHECK(rate > 0, "raw rate %g", rate);
    }
    if (sy_test_stat(t, "keys") > RELOAD_KEYS) {
        sy_test_free(t);
        tests[which] = load(which);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sy_log_level = SY_ERR; /* refused tokens and bad lines are logged: keep quiet */
    tests[0] = load(0);
    tests[1] = load(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t b = data[0];
    int which = b & 1, li = (b >> 1) & 3, si = (b >> 3) & 3;
    const char *pkt = (const char *)data + 1;
    size_t len = size - 1;
    sy_test *t = tests[which];

    double before = sy_test_stat(t, "auth_rejected");
    sy_test_feed(t, pkt, len, listeners[which][li], senders[si]);
    double got = sy_test_stat(t, "auth_rejected") - before;
    double want = li == 3 ? 0 : (double)expected_refusals(which, pkt, len, si);
    FUZZ_CHECK(got == want, "config %d listener %s sender %s: %.0f lines refused, expected %.0f", which,
               listeners[which][li], senders[si] ? senders[si] : "(none)", got, want);

    inputs++;
    if ((b & 0x60) == 0x60)
        flush(which);
    if (inputs % FLUSH_EVERY == 0) {
        now_s += 10;
        flush(0);
        flush(1);
    }
    return 0;
}
