/*
 * fuzz_parse.c - the line parser (core/ingest/parse.c) and the number reader it
 * uses (core/util/numfmt.c).
 *
 * The input is split at '\n' as a packet is (sy_split_lines must agree
 * with a plain count), and each line, in its own exactly-sized heap block,
 * goes through sy_parse_begin/sy_parse_next twice: with keyNameSanitize on
 * and off.  Checked for every line:
 *
 *   - sy_parse_begin answers -2 only for an empty line (a lone CR too), -1,
 *     SY_PARSE_EVENT / SY_PARSE_SERVICE_CHECK only for a line starting
 *     "_e{" / "_sc|", SY_PARSE_TOO_LONG (for a line of SY_KEY_MAX bytes or more when
 *     sanitising), or a key length in [1, SY_KEY_MAX); the key is NUL-terminated there;
 *     with sanitising it holds only [A-Za-z0-9_.;=-] (so no NUL either);
 *   - sy_parse_next ends (at most one value per ':' plus one), answers
 *     -1, 0 or 1, and each sample is well formed: a known type, a finite
 *     value (non-negative for timers), a finite positive rate, is_delta only
 *     on gauges, a value text and tag text inside the line (or the static
 *     "0" of an empty set member, or "" for no tags), a value text without
 *     ':' or '|';
 *   - the sanitised key is statsd's keyNameSanitize (written out here,
 *     independently of parse.c) of the unsanitised one;
 *   - a number the parser accepted is the one strtod reads from the same
 *     text (correctly rounded), and it is written back (sy_fmt_double) as
 *     text that reads back as the same double.
 *
 * Every input is also given whole to sy_parse_double and compared with a
 * grammar written out here: accepted exactly when it is a plain decimal
 * (spaces/tabs around) that strtod reads as a finite number.
 *
 * The same checks run from tests/unit/test_fuzz_regressions.c on every file
 * under tests/fuzz/regressions/parse/ (FUZZ_PARSE_NO_MAIN leaves the
 * libFuzzer entry point out).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "util/numfmt.h"
#include "ingest/parse.h"

static int kept_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.' || c == ';' || c == '=';
}

static int is_space_tab(char c) { return c == ' ' || c == '\t'; }
static int is_dig(char c) { return c >= '0' && c <= '9'; }

/* The plain-decimal grammar numfmt.h promises: [ \t]* [+-]? (D+ .? D* | . D+)
 * ([eE] [+-]? D+)? [ \t]*.  On a match, the trimmed text goes to out (NUL-
 * terminated, for strtod). */
static int decimal_grammar(const char *s, size_t len, char *out, size_t cap)
{
    const char *p = s, *end = s + len;
    while (p < end && is_space_tab(*p))
        p++;
    while (end > p && is_space_tab(end[-1]))
        end--;
    const char *start = p;
    if (p < end && (*p == '+' || *p == '-'))
        p++;
    size_t int_n = 0, frac_n = 0;
    while (p < end && is_dig(*p))
        p++, int_n++;
    if (p < end && *p == '.') {
        p++;
        while (p < end && is_dig(*p))
            p++, frac_n++;
    }
    if (int_n + frac_n == 0)
        return 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_dig(*p))
            return 0;
        while (p < end && is_dig(*p))
            p++;
    }
    if (p != end || (size_t)(end - start) + 1 > cap)
        return 0;
    memcpy(out, start, (size_t)(end - start));
    out[end - start] = '\0';
    return 1;
}

static int same_double(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* sy_parse_double on s[0..len), against the grammar and strtod. */
static void check_number(const char *s, size_t len)
{
    char *copy = fuzz_dup(s, len);
    char *text = malloc(len + 1);
    if (!text)
        abort();
    double v = 0;
    int rc = sy_parse_double(copy, len, &v);
    int grammar = decimal_grammar(copy, len, text, len + 1);
    if (grammar) {
        double want = strtod(text, NULL);
        if (isfinite(want)) {
            FUZZ_CHECK(rc == 0, "a plain finite decimal was refused: '%s'", text);
            FUZZ_CHECK(same_double(v, want), "'%s' read as %.17g, strtod says %.17g", text, v, want);
        } else {
            FUZZ_CHECK(rc < 0, "'%s' overflows (strtod: %g) but was accepted as %.17g", text, want, v);
        }
    } else {
        FUZZ_CHECK(rc < 0, "'%.*s' is not a plain decimal but was accepted as %.17g",
                   (int)(len > 200 ? 200 : len), copy, v);
    }
    if (rc == 0) {
        /* Written back the way statsd would print it, it reads back the same
         * (-0 prints as "0", as in JavaScript). */
        char out[SY_FMT_DOUBLE_MAX];
        size_t n = sy_fmt_double(v, out);
        FUZZ_CHECK(n < SY_FMT_DOUBLE_MAX && out[n] == '\0', "sy_fmt_double length %zu", n);
        double back = 0;
        FUZZ_CHECK(sy_parse_double(out, n, &back) == 0, "'%s' (from %.17g) does not read back", out, v);
        FUZZ_CHECK(same_double(back, v) || (v == 0 && back == 0),
                   "%.17g printed as '%s' reads back as %.17g", v, out, back);
    }
    free(text);
    free(copy);
}

/* statsd's keyNameSanitize, written out independently of parse.c:
 * key.replace(/\s+/g, '_').replace(/\//g, '-').replace(/[^a-zA-Z_\-0-9\.;=]/g, '')
 * where \s is JavaScript's (ASCII space, \t \n \v \f \r, and the UTF-8
 * encoded spaces parse.h lists).  Returns the length written to out. */
static size_t js_space_len(const unsigned char *p, size_t left)
{
    static const unsigned char seq[][3] = {
        { 0xE1, 0x9A, 0x80 }, { 0xE2, 0x80, 0xA8 }, { 0xE2, 0x80, 0xA9 }, { 0xE2, 0x80, 0xAF },
        { 0xE2, 0x81, 0x9F }, { 0xE3, 0x80, 0x80 }, { 0xEF, 0xBB, 0xBF },
    };
    unsigned char c = p[0];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r')
        return 1;
    if (left >= 2 && c == 0xC2 && p[1] == 0xA0)
        return 2;
    if (left < 3)
        return 0;
    if (c == 0xE2 && p[1] == 0x80 && p[2] >= 0x80 && p[2] <= 0x8A) /* U+2000..U+200A */
        return 3;
    for (size_t i = 0; i < sizeof seq / sizeof *seq; i++)
        if (memcmp(p, seq[i], 3) == 0)
            return 3;
    return 0;
}

static size_t reference_sanitize(const char *in, size_t len, char *out)
{
    size_t n = 0;
    int in_space = 0;
    for (size_t i = 0; i < len;) {
        size_t u = js_space_len((const unsigned char *)in + i, len - i);
        if (u) {
            if (!in_space)
                out[n++] = '_';
            in_space = 1;
            i += u;
            continue;
        }
        in_space = 0;
        unsigned char c = (unsigned char)in[i++];
        if (c == '/')
            out[n++] = '-';
        else if (kept_byte(c))
            out[n++] = (char)c;
    }
    return n;
}

static int inside(const char *p, size_t n, const char *base, size_t len)
{
    return p >= base && p <= base + len && n <= (size_t)(base + len - p);
}

/* The sanitised key is the unsanitised one (name and rewritten tags, as
 * one string) put through keyNameSanitize; when the name alone sanitises
 * to nothing the line is bad. */
static void check_sanitized_key(const char *line, size_t len)
{
    char raw[SY_KEY_MAX], san[SY_KEY_MAX], want[SY_KEY_MAX];
    sy_line it;
    int rlen = sy_parse_begin(&it, line, len, raw, 0);
    int slen = sy_parse_begin(&it, line, len, san, 1);
    if (rlen < 0)
        return; /* no key, or too long unsanitised: nothing to compare with */
    if (slen < 0) {
        /* The name is what comes before the first ':' ahead of any "|#". */
        const char *colon = memchr(line, ':', len);
        size_t nlen = colon ? (size_t)(colon - line) : 0;
        const char *tags = NULL;
        for (size_t i = 0; i + 1 < len; i++)
            if (line[i] == '|' && line[i + 1] == '#') {
                tags = line + i;
                break;
            }
        FUZZ_CHECK(colon && (!tags || colon < tags), "unsanitised key %d bytes, sanitised refused", rlen);
        FUZZ_CHECK(nlen < SY_KEY_MAX && reference_sanitize(line, nlen, want) == 0,
                   "the key '%s' fits unsanitised, its name does not sanitise to nothing, "
                   "yet sanitising refused the line", raw);
        return;
    }
    size_t wlen = reference_sanitize(raw, (size_t)rlen, want);
    FUZZ_CHECK(wlen == (size_t)slen && memcmp(want, san, wlen) == 0,
               "sanitised key '%.*s' (%d), keyNameSanitize of '%.*s' gives '%.*s' (%zu)", slen, san, slen,
               rlen, raw, (int)wlen, want, wlen);
}

static void check_line(const char *line, size_t len, int sanitize)
{
    char key[SY_KEY_MAX];
    sy_line it;
    memset(key, 0x5a, sizeof key);
    int klen = sy_parse_begin(&it, line, len, key, sanitize);
    size_t eff = len && line[len - 1] == '\r' ? len - 1 : len;

    if (klen == -2) {
        FUZZ_CHECK(eff == 0, "-2 (empty) for a line of %zu bytes", len);
        return;
    }
    FUZZ_CHECK(eff > 0, "an empty line answered %d, not -2", klen);
    if (klen == -1)
        return;
    if (klen == SY_PARSE_EVENT || klen == SY_PARSE_SERVICE_CHECK) {
        FUZZ_CHECK(klen == SY_PARSE_EVENT ? eff >= 8 && memcmp(line, "_e{", 3) == 0
                                          : eff >= 6 && memcmp(line, "_sc|", 4) == 0,
                   "answered %d (a DogStatsD %s) for a line that does not start like one", klen,
                   klen == SY_PARSE_EVENT ? "event" : "service check");
        return;
    }
    if (klen == SY_PARSE_TOO_LONG) {
        FUZZ_CHECK(eff >= SY_KEY_MAX, "too long (%d) for a line of %zu bytes", klen, len);
        return;
    }
    FUZZ_CHECK(klen > 0 && klen < SY_KEY_MAX, "key length %d", klen);
    FUZZ_CHECK(key[klen] == '\0', "key not NUL-terminated at %d", klen);
    if (sanitize)
        for (int i = 0; i < klen; i++)
            FUZZ_CHECK(kept_byte((unsigned char)key[i]), "sanitised key holds byte 0x%02x at %d",
                       (unsigned char)key[i], i);
    FUZZ_CHECK(it.tags_len == 0 || inside(it.tags, it.tags_len, line, len),
               "tags outside the line");

    /* One value per ':' after the key, at most. */
    size_t colons = 0;
    for (size_t i = 0; i < len; i++)
        colons += line[i] == ':';
    size_t calls = 0;
    sy_sample s;
    int rc;
    for (;;) {
        memset(&s, 0xa5, sizeof s);
        rc = sy_parse_next(&it, &s);
        FUZZ_CHECK(rc >= -1 && rc <= 1, "sy_parse_next answered %d", rc);
        if (rc == 0)
            break;
        calls++;
        FUZZ_CHECK(calls <= colons, "more values (%zu) than ':' (%zu)", calls, colons);
        if (rc < 0)
            continue;
        FUZZ_CHECK(s.type == SY_SAMPLE_COUNTER || s.type == SY_SAMPLE_GAUGE ||
                   s.type == SY_SAMPLE_TIMER || s.type == SY_SAMPLE_SET, "type %d", s.type);
        FUZZ_CHECK(isfinite(s.value), "value %g", s.value);
        FUZZ_CHECK(isfinite(s.rate) && s.rate > 0, "rate %g", s.rate);
        FUZZ_CHECK(s.type != SY_SAMPLE_TIMER || s.value >= 0, "negative timer %g", s.value);
        FUZZ_CHECK(s.is_delta == 0 || (s.is_delta == 1 && s.type == SY_SAMPLE_GAUGE),
                   "is_delta %d on type %c", s.is_delta, s.type);
        int static_zero = s.type == SY_SAMPLE_SET && s.text_len == 1 && s.text[0] == '0' &&
                          !inside(s.text, 1, line, len);
        FUZZ_CHECK(static_zero || inside(s.text, s.text_len, line, len), "value text outside the line");
        FUZZ_CHECK(s.type != SY_SAMPLE_SET || s.text_len > 0, "empty set member");
        FUZZ_CHECK(!memchr(s.text, ':', s.text_len) && !memchr(s.text, '|', s.text_len),
                   "value text holds ':' or '|'");
        FUZZ_CHECK(s.tags == it.tags && s.tags_len == it.tags_len, "sample tags differ from the line's");
        if (s.type != SY_SAMPLE_SET) {
            check_number(s.text, s.text_len);
            double v;
            FUZZ_CHECK(sy_parse_double(s.text, s.text_len, &v) == 0 && same_double(v, s.value),
                       "value %.17g is not what its text reads as", s.value);
        }
    }
}

static size_t count_lines_cb;
static void line_cb(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    (void)line;
    (void)len;
    count_lines_cb++;
}

void fuzz_parse_one(const uint8_t *data, size_t size);

void fuzz_parse_one(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;

    check_number(buf, size < 4096 ? size : 4096);

    size_t nl = 0;
    for (size_t i = 0; i < size; i++)
        nl += buf[i] == '\n';
    count_lines_cb = 0;
    size_t n = sy_split_lines(buf, size, line_cb, NULL);
    FUZZ_CHECK(n == count_lines_cb, "sy_split_lines said %zu, called back %zu", n, count_lines_cb);
    /* A final newline ends the last line rather than starting an empty one. */
    size_t want = size == 0 ? 0 : nl + (buf[size - 1] != '\n');
    FUZZ_CHECK(n == want, "sy_split_lines found %zu lines, expected %zu", n, want);

    const char *p = buf, *end = buf + size;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((e ? e : end) - p);
        char *line = fuzz_dup(p, len);
        check_line(line, len, 1);
        check_line(line, len, 0);
        check_sanitized_key(line, len);
        free(line);
        if (!e)
            break;
        p = e + 1;
    }
}

#ifndef FUZZ_PARSE_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_parse_one(data, size);
    return 0;
}
#endif
