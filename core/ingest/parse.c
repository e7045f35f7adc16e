/*
 * parse.c - StatsD lines, parsed in place.
 *
 * The reference is Etsy statsd 0.9 (stats.js handlePacket and
 * lib/helpers.js is_valid_packet).  Where statsd does something no user
 * would want, switchyard is stricter and counts a bad line instead:
 *
 *   - unknown types are bad (statsd counts them as counters); `h` and `d`
 *     are timers, as in DogStatsD;
 *   - values are plain decimals: "Infinity", hex and the like are bad;
 *   - a sample rate must be a positive decimal (statsd divides by @0, and
 *     crashes on "@+0.5");
 *   - an empty key is bad, and so is one that sanitises to nothing or
 *     holds only tags (statsd would flush "stats.counters..rate");
 *   - a negative timer is bad even when the type is written " ms" (statsd
 *     validates the untrimmed type and lets "-1| ms" through);
 *   - numbers may have spaces or tabs around them, no other whitespace,
 *     and must be finite: "@1e999" is bad (statsd reads a rate of 1);
 *   - a trailing CR is dropped before anything else (statsd turns it into
 *     "_" inside tags, and its untrimmed-type check sees "s\r");
 *   - bytes that are not valid UTF-8 are kept as they are (statsd turns
 *     each into U+FFFD, so "\xff" and "\xfe" are one set member there).
 *
 * Everything else is statsd's rule, quirks included, because dashboards
 * depend on the names it produces: `k:1|c|` is bad (an empty rate field),
 * only the first ';' and ':' of a tag are replaced, an empty set member
 * counts as "0", and "@0.5e1" is a rate of 0.5.
 */
#include "ingest/parse.h"

#include <string.h>

#include "util/numfmt.h"

/* Bytes statsd's keyNameSanitize keeps: [a-zA-Z_\-0-9.;=]. */
static const unsigned char keep_byte[256] = {
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['_'] = 1, ['-'] = 1, ['.'] = 1, [';'] = 1, ['='] = 1,
};

static inline int js_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Length of a UTF-8 encoded character that JavaScript's \s matches
 * (U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000,
 * U+FEFF), or 0.  statsd decodes packets as UTF-8, so these become '_' in
 * keys like ASCII spaces do.
 */
size_t sy_utf8_space(const unsigned char *p, size_t left)
{
    if (p[0] == 0xC2 && left >= 2 && p[1] == 0xA0)
        return 2;
    if (left < 3)
        return 0;
    unsigned a = p[0], b = p[1], c = p[2];
    if ((a == 0xE1 && b == 0x9A && c == 0x80) ||
        (a == 0xE2 && b == 0x80 && ((c >= 0x80 && c <= 0x8A) || c == 0xA8 || c == 0xA9 || c == 0xAF)) ||
        (a == 0xE2 && b == 0x81 && c == 0x9F) || (a == 0xE3 && b == 0x80 && c == 0x80) ||
        (a == 0xEF && b == 0xBB && c == 0xBF))
        return 3;
    return 0;
}

/* Find "|#" in [p, end).  Most lines have no '#' at all: one memchr for
 * it settles them, where looking at every '|' took two. */
static const char *find_tags(const char *p, const char *end)
{
    if (!memchr(p, '#', (size_t)(end - p)))
        return NULL;
    while (p < end) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        if (!bar || bar + 1 >= end)
            return NULL;
        if (bar[1] == '#')
            return bar;
        p = bar + 1;
    }
    return NULL;
}

/*
 * Append src to the key, applying keyNameSanitize when asked: runs of
 * whitespace become one '_', '/' becomes '-', and other bytes outside the
 * kept set vanish.  `in_space` carries a whitespace run across calls, since
 * statsd sanitises the assembled key (name and tags) as one string.
 * Returns the new length, or -1 when the key would not fit.
 */
static int key_append(char *key, int n, const char *src, size_t len, int sanitize, int *in_space)
{
    if (!sanitize) {
        if ((size_t)n + len >= SY_KEY_MAX)
            return -1;
        memcpy(key + n, src, len);
        return n + (int)len;
    }
    size_t i = 0;
    while (i < len) {
        /* Most keys are clean: copy each run of kept bytes at once. */
        size_t j = i;
        while (j < len && keep_byte[(unsigned char)src[j]])
            j++;
        if (j > i) {
            if ((size_t)n + (j - i) >= SY_KEY_MAX)
                return -1;
            memcpy(key + n, src + i, j - i);
            n += (int)(j - i);
            *in_space = 0;
            i = j;
            if (i == len)
                break;
        }
        /* One byte that is not kept as it is: a space, '/', or dropped. */
        unsigned char c = (unsigned char)src[i];
        size_t u = c >= 0xC2 ? sy_utf8_space((const unsigned char *)src + i, len - i) : 0;
        i += u ? u : 1;
        if (u || js_space(c)) {
            if (*in_space)
                continue;
            *in_space = 1;
            c = '_';
        } else {
            *in_space = 0;
            if (c != '/')
                continue;
            c = '-';
        }
        if (n >= SY_KEY_MAX - 1)
            return -1;
        key[n++] = (char)c;
    }
    return n;
}

/* One tag as statsd rewrites it: the first ';' becomes '_', then the first
 * ':' becomes '='. */
static int tag_append(char *key, int n, const char *t, size_t len, int sanitize, int *in_space)
{
    char tag[SY_KEY_MAX];
    if (len >= sizeof tag)
        return -1; /* could never fit the key anyway */
    memcpy(tag, t, len);
    char *semi = memchr(tag, ';', len);
    if (semi)
        *semi = '_';
    char *colon = memchr(tag, ':', len);
    if (colon)
        *colon = '=';
    return key_append(key, n, tag, len, sanitize, in_space);
}

int sy_parse_begin(sy_line *it, const char *line, size_t len, char *keybuf, int sanitize)
{
    if (len && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return -2;
    const char *end = line + len;
    const char *tags = find_tags(line, end);
    it->tags = "";
    it->tags_len = 0;
    it->sanitize = sanitize;
    if (!tags && sanitize) {
        /* The common line, "name:value|type" with a clean name and no
         * tags: one scan finds the colon and the key is copied as it is,
         * which is what key_append would make of it. */
        const char *q = line;
        while (q < end && keep_byte[(unsigned char)*q])
            q++;
        if (q < end && *q == ':') {
            size_t kl = (size_t)(q - line);
            if (kl == 0)
                return -1;
            if (kl >= SY_KEY_MAX)
                return SY_PARSE_TOO_LONG;
            memcpy(keybuf, line, kl);
            keybuf[kl] = '\0';
            it->p = q + 1;
            it->end = end;
            return (int)kl;
        }
    }
    const char *body_end = tags ? tags : end;
    const char *colon = memchr(line, ':', (size_t)(body_end - line));
    if (!colon)
        return -1; /* statsd: the value defaults to "1" with no type: bad */

    int in_space = 0;
    int n = key_append(keybuf, 0, line, (size_t)(colon - line), sanitize, &in_space);
    if (n < 0)
        return SY_PARSE_TOO_LONG;
    if (n == 0)
        return -1;
    const char *t = tags ? tags + 2 : end;
    const char *tend = tags ? find_tags(t, end) : NULL; /* statsd keeps only the first |# part */
    if (!tend)
        tend = end;
    if (t < tend) { /* statsd: tags only when bits[1].length > 0 */
        it->tags = t;
        it->tags_len = (uint32_t)(tend - t);
        while (n >= 0) {
            const char *comma = memchr(t, ',', (size_t)(tend - t));
            const char *stop = comma ? comma : tend;
            n = key_append(keybuf, n, ";", 1, sanitize, &in_space);
            if (n >= 0)
                n = tag_append(keybuf, n, t, (size_t)(stop - t), sanitize, &in_space);
            if (!comma)
                break;
            t = comma + 1;
        }
        if (n < 0)
            return SY_PARSE_TOO_LONG;
    }
    keybuf[n] = '\0';
    it->p = colon + 1;
    it->end = body_end;
    return n;
}

/* statsd's isNumber(): a non-empty string that Number() accepts (here: a
 * plain decimal, see numfmt.h). */
static inline int parse_number(const char *s, size_t len, double *out)
{
    return len ? sy_parse_double(s, len, out) : -1;
}

static int parse_type(const char *s, size_t len, uint8_t *type)
{
    while (len && js_space((unsigned char)*s))
        s++, len--;
    while (len && js_space((unsigned char)s[len - 1]))
        len--;
    if (len == 1) {
        switch (s[0]) {
        case 'c': *type = SY_SAMPLE_COUNTER; return 0;
        case 'g': *type = SY_SAMPLE_GAUGE; return 0;
        case 's': *type = SY_SAMPLE_SET; return 0;
        case 'h': /* fall through: DogStatsD histograms and distributions */
        case 'd': *type = SY_SAMPLE_TIMER; return 0;
        }
    } else if (len == 2 && s[0] == 'm' && s[1] == 's') {
        *type = SY_SAMPLE_TIMER;
        return 0;
    }
    return -1;
}

/* "@rate": statsd validates the whole text as a number, then uses only the
 * leading run of digits and dots. */
static int parse_rate(const char *s, size_t len, double *rate)
{
    double whole;
    if (len < 2 || s[0] != '@' || s[1] == '-' || parse_number(s + 1, len - 1, &whole) < 0)
        return -1;
    size_t run = 1;
    while (run < len && ((s[run] >= '0' && s[run] <= '9') || s[run] == '.'))
        run++;
    if (run == 1 || parse_number(s + 1, run - 1, rate) < 0 || !(*rate > 0))
        return -1;
    return 0;
}

int sy_parse_value(sy_line *it, sy_sample *out)
{
    const char *part = it->p;
    /* One pass over a part as short as "42|ms" finds where it ends (the
     * next ':', for "a:1|c:2|c") and the first three '|' (fields =
     * part.split('|'): value, type, rate; more are ignored), where
     * separate memchr calls cost more than the scan. */
    const char *bar[3] = { NULL, NULL, NULL };
    int nbar = 0;
    const char *q = part, *end = it->end;
    for (; q < end; q++) {
        char ch = *q;
        if (ch == ':')
            break;
        if (ch == '|' && nbar < 3)
            bar[nbar++] = q;
    }
    const char *pend = q;
    it->p = q < end ? q + 1 : NULL;

    const char *f[3];
    size_t flen[3];
    int nf = 0;
    const char *p = part;
    while (nf < 3) {
        const char *b = nf < nbar ? bar[nf] : NULL;
        f[nf] = p;
        flen[nf] = (size_t)((b ? b : pend) - p);
        nf++;
        if (!b)
            break;
        p = b + 1;
    }
    if (nf < 2 || parse_type(f[1], flen[1], &out->type) < 0)
        return -1;
    /* statsd's is_valid_packet looks at the untrimmed type: only exactly
     * "s" escapes the number check, so "x| s" is a bad line. */
    int exact_set = flen[1] == 1 && f[1][0] == 's';
    out->rate = 1.0;
    if (nf == 3 && parse_rate(f[2], flen[2], &out->rate) < 0)
        return -1;

    out->text = f[0];
    out->text_len = (uint32_t)flen[0];
    out->tags = it->tags;
    out->tags_len = it->tags_len;
    out->is_delta = 0;
    out->value = 0;
    switch (out->type) {
    case SY_SAMPLE_SET:
        if (!exact_set && parse_number(f[0], flen[0], &out->value) < 0)
            return -1;
        if (flen[0] == 0) { /* statsd: fields[0] || '0' */
            out->text = "0";
            out->text_len = 1;
        }
        return 1;
    case SY_SAMPLE_GAUGE:
        if (parse_number(f[0], flen[0], &out->value) < 0)
            return -1;
        out->is_delta = f[0][0] == '+' || f[0][0] == '-';
        return 1;
    case SY_SAMPLE_TIMER:
        if (parse_number(f[0], flen[0], &out->value) < 0 || !(out->value >= 0))
            return -1;
        return 1;
    default:
        if (parse_number(f[0], flen[0], &out->value) < 0)
            return -1;
        return 1;
    }
}

int sy_sanitize(char *dst, const char *src, size_t len, int sanitize)
{
    int in_space = 0;
    int n = key_append(dst, 0, src, len, sanitize, &in_space);
    if (n >= 0)
        dst[n] = '\0';
    return n;
}

size_t sy_split_lines(const char *buf, size_t len, sy_line_fn fn, void *ctx)
{
    size_t n = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        fn(ctx, p, (size_t)(stop - p));
        n++;
        if (!nl)
            break;
        p = nl + 1;
    }
    return n;
}
