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
 * DogStatsD's extensions (protocol 1.1 to 1.3) are read where statsd
 * would count a bad line, so no line statsd accepts changes meaning:
 *
 *   - several values in one message, "k:1:2:3|ms|@0.5": a value with no
 *     type takes the type and rate of the next value part that has one
 *     (statsd: a bad line per typeless value).  "k:1|c:2|g", statsd's own
 *     form, is unchanged;
 *   - "|c:ID" (a container) and "|T1700000000" (a timestamp) after the
 *     type, in any order with "@rate" and "#tags": counted by the caller;
 *     a container is skipped, a timestamp handed out in sy_line.ts.  Never the value's or the type's field, so "k:1|c:2|c"
 *     stays two counters;
 *   - events ("_e{5,4}:title|text|...") and service checks
 *     ("_sc|name|0|..."): recognised, checked for their form, and answered
 *     with their own codes instead of a key;
 *   - "|d" (distribution) is a timer, as "|h" is.
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
#define KEPT_BYTES \
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, \
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, \
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, \
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, \
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, \
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, \
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, \
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, \
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, \
    ['7'] = 1, ['8'] = 1, ['9'] = 1, \
    ['_'] = 1, ['-'] = 1, ['.'] = 1, ['='] = 1

static const unsigned char keep_byte[256] = { KEPT_BYTES, [';'] = 1 };

/* The same without ';': in a tag the first ';' is rewritten, so the tag
 * loop looks at each one. */
static const unsigned char tag_keep_byte[256] = { KEPT_BYTES };

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

/* What sanitize_into does with a byte its keep table does not keep. */
enum { BC_DROP, BC_SPACE, BC_UTF8, BC_SLASH, BC_COMMA, BC_SEMI, BC_COLON };
static const unsigned char byte_class[256] = {
    [' '] = BC_SPACE, ['\t'] = BC_SPACE, ['\n'] = BC_SPACE, ['\r'] = BC_SPACE, ['\v'] = BC_SPACE,
    ['\f'] = BC_SPACE, ['/'] = BC_SLASH, [','] = BC_COMMA, [';'] = BC_SEMI, [':'] = BC_COLON,
    [0xC2 ... 0xFF] = BC_UTF8, /* may start a UTF-8 whitespace character */
};

/* Whether the eight bytes at s are all kept as they are. */
static inline int kept8(const unsigned char *s)
{
    return keep_byte[s[0]] & keep_byte[s[1]] & keep_byte[s[2]] & keep_byte[s[3]] &
           keep_byte[s[4]] & keep_byte[s[5]] & keep_byte[s[6]] & keep_byte[s[7]];
}

/*
 * What key_append (and, with `tags`, the tag loop of sy_parse_begin with
 * tag_append) writes for [s, e) when sanitising, in one pass with no
 * calls: the name part copies eight kept bytes at a time where it can;
 * with `tags`, [s, e) is the tag list after "|#", each ',' becomes the
 * ';' that joins two tags (the caller writes the first), and in each tag
 * the first ';' becomes '_' and the first ':' '=', the rest of the ':'
 * vanishing as statsd's sanitising removes them.  A whitespace run
 * continues only from where the previous one ended (space_end), which is
 * key_append's in_space.  out must have room for e - s bytes: nothing here
 * writes more than it reads.  Returns the end of what was written.
 */
static inline __attribute__((always_inline)) char *sanitize_into(char *out, const unsigned char *s,
                                                                  const unsigned char *e, int tags)
{
    const unsigned char *keep = tags ? tag_keep_byte : keep_byte;
    const unsigned char *space_end = NULL;
    int semi = 0, colon = 0; /* this tag's first ';' and ':' were met */
    while (s < e) {
        if (!tags) {
            while (e - s >= 8 && kept8(s)) {
                memcpy(out, s, 8);
                out += 8;
                s += 8;
            }
            if (s == e)
                break;
        }
        unsigned char c = *s;
        if (__builtin_expect(keep[c], 1)) {
            *out++ = (char)c;
            s++;
            continue;
        }
        size_t u = 1;
        switch (byte_class[c]) {
        case BC_UTF8:
            u = sy_utf8_space(s, (size_t)(e - s));
            if (!u) {
                s++; /* vanishes */
                continue;
            }
            __attribute__((fallthrough)); /* a whitespace character of u bytes */
        case BC_SPACE:
            if (s != space_end)
                *out++ = '_';
            s += u;
            space_end = s;
            continue;
        case BC_SLASH:
            *out++ = '-';
            break;
        case BC_COMMA:
            if (tags) {
                *out++ = ';';
                semi = colon = 0;
            }
            break;
        case BC_SEMI: /* in a tag only: keep_byte keeps it in a name */
            *out++ = semi ? ';' : '_';
            semi = 1;
            break;
        case BC_COLON:
            if (tags && !colon)
                *out++ = '=';
            colon = 1;
            break;
        default: /* vanishes */
            break;
        }
        s++;
    }
    return out;
}

static int all_digits(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* A DogStatsD optional field other than rate and tags, [f, f + len):
 * 'c' for "c:ID", 'T' for "T<digits>", else 0. */
static int dd_field(const char *f, size_t len)
{
    if (len >= 2 && f[0] == 'c' && f[1] == ':')
        return 'c';
    if (len >= 2 && f[0] == 'T' && all_digits(f + 1, len - 1))
        return 'T';
    return 0;
}

/* The seconds of a timestamp field's digits (all digits, len > 0): at
 * most 12 are read; more, or 0 (which sy_parse_time keeps for "none"),
 * make it SY_PARSE_TS_BAD. */
static int64_t dd_seconds(const char *d, size_t len)
{
    if (len > 12)
        return SY_PARSE_TS_BAD;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (d[i] - '0');
    return v ? v : SY_PARSE_TS_BAD;
}

static void dd_count(sy_line *it, int kind, const char *f, size_t len)
{
    if (kind == 'c') {
        it->containers++;
    } else if (kind == 'T') {
        it->timestamps++;
        it->ts = dd_seconds(f + 1, len - 1);
    }
}

/* The tag text [t, tend) ends at the first DogStatsD field after it
 * ("|#a:b|c:ID|T123": the tags are "a:b"); the fields from there on are
 * counted.  statsd would keep them in its last tag. */
static const char *dd_cut_fields(sy_line *it, const char *t, const char *tend)
{
    const char *cut = NULL;
    for (const char *b = memchr(t, '|', (size_t)(tend - t)); b;) {
        const char *f = b + 1;
        const char *nb = f < tend ? memchr(f, '|', (size_t)(tend - f)) : NULL;
        size_t flen = (size_t)((nb ? nb : tend) - f);
        int kind = dd_field(f, flen);
        if (kind) {
            if (!cut)
                cut = b;
            dd_count(it, kind, f, flen);
        }
        b = nb;
    }
    return cut ? cut : tend;
}

/* A DogStatsD event "_e{TITLE_LEN,TEXT_LEN}:title|text[|...]" or service
 * check "_sc|name|status[|...]" (status 0 to 3): its code, -1 when the
 * line starts like one but is malformed, 0 when it is neither. */
static int dd_special(const char *line, size_t len)
{
    if (len >= 3 && line[1] == 'e' && line[2] == '{') {
        size_t i = 3, a = 0, b = 0;
        if (i >= len || line[i] < '0' || line[i] > '9')
            return 0;
        while (i < len && line[i] >= '0' && line[i] <= '9' && a < 1u << 24)
            a = a * 10 + (size_t)(line[i++] - '0');
        if (i >= len || line[i++] != ',' || i >= len || line[i] < '0' || line[i] > '9')
            return 0;
        while (i < len && line[i] >= '0' && line[i] <= '9' && b < 1u << 24)
            b = b * 10 + (size_t)(line[i++] - '0');
        if (i + 1 >= len || line[i] != '}' || line[i + 1] != ':')
            return 0;
        i += 2;
        /* the title, a '|', the text, then the end or more fields */
        if (a == 0 || len - i < a + 1 + b || line[i + a] != '|' ||
            (len - i > a + 1 + b && line[i + a + 1 + b] != '|'))
            return 0;
        return SY_PARSE_EVENT;
    }
    if (len >= 4 && line[1] == 's' && line[2] == 'c' && line[3] == '|') {
        const char *name = line + 4, *end = line + len;
        const char *bar = memchr(name, '|', (size_t)(end - name));
        if (!bar || bar == name || bar + 1 >= end || bar[1] < '0' || bar[1] > '3' ||
            (bar + 2 < end && bar[2] != '|'))
            return 0;
        return SY_PARSE_SERVICE_CHECK;
    }
    return 0;
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
    it->containers = it->timestamps = 0;
    it->mv_end = NULL;
    if (!tags && sanitize) {
        /* The common line, "name:value|type" with a clean name and no
         * tags: one scan finds the colon and the key is copied as it is,
         * which is what key_append would make of it. */
        const unsigned char *q = (const unsigned char *)line;
        const unsigned char *lim = len < SY_KEY_MAX ? (const unsigned char *)end : q + SY_KEY_MAX - 1;
        char *o = keybuf;
        while (lim - q >= 8 && kept8(q)) {
            memcpy(o, q, 8);
            o += 8;
            q += 8;
        }
        while (q < lim && keep_byte[*q])
            *o++ = (char)*q++;
        if (q < lim && *q == ':') {
            size_t kl = (size_t)(o - keybuf);
            if (kl == 0)
                return -1;
            keybuf[kl] = '\0';
            it->p = (const char *)q + 1;
            it->end = end;
            return (int)kl;
        }
    }
    if (line[0] == '_') {
        int dd = dd_special(line, len);
        if (dd)
            return dd;
    }
    const char *body_end = tags ? tags : end;
    const char *colon = memchr(line, ':', (size_t)(body_end - line));
    if (!colon)
        return -1; /* statsd: the value defaults to "1" with no type: bad */

    int in_space = 0, n;
    if (sanitize && colon - line < SY_KEY_MAX)
        n = (int)(sanitize_into(keybuf, (const unsigned char *)line, (const unsigned char *)colon, 0) -
                  keybuf);
    else
        n = key_append(keybuf, 0, line, (size_t)(colon - line), sanitize, &in_space);
    if (n < 0)
        return SY_PARSE_TOO_LONG;
    if (n == 0)
        return -1;
    const char *t = tags ? tags + 2 : end;
    const char *tend = tags ? find_tags(t, end) : NULL; /* statsd keeps only the first |# part */
    if (!tend)
        tend = end;
    if (tags)
        tend = dd_cut_fields(it, t, tend);
    if (t < tend) { /* statsd: tags only when bits[1].length > 0 */
        it->tags = t;
        it->tags_len = (uint32_t)(tend - t);
        int each = 1; /* tag by tag, as statsd joins them */
        if (sanitize && (size_t)n + 1 + (size_t)(tend - t) < SY_KEY_MAX) {
            /* It fits whatever sanitising does: one pass (no in_space to
             * carry: the ';' in front of each tag ends a whitespace run). */
            keybuf[n] = ';';
            n = (int)(sanitize_into(keybuf + n + 1, (const unsigned char *)t,
                                    (const unsigned char *)tend, 1) - keybuf);
            each = 0;
        }
        while (each && n >= 0) {
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
    if (sy_parse_short_int(s, len, out)) /* the usual value, without a call */
        return 0;
    return len ? sy_parse_double(s, len, out) : -1;
}

static int parse_type(const char *s, size_t len, uint8_t *type)
{
    /* the usual "c" and "ms" first, before any trimming */
    if (len == 1 && s[0] == 'c') {
        *type = SY_SAMPLE_COUNTER;
        return 0;
    }
    if (len == 2 && s[0] == 'm' && s[1] == 's') {
        *type = SY_SAMPLE_TIMER;
        return 0;
    }
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
    if (run == len) /* "@0.1": the run is the whole text, already read */
        *rate = whole;
    else if (run == 1 || parse_number(s + 1, run - 1, rate) < 0)
        return -1;
    if (!(*rate > 0))
        return -1;
    return 0;
}

/*
 * The fields of one value part, from `part` to the next ':' (statsd's
 * "a:1|c:2|c") or the end: f[0] the value, f[1] the type, f[2] the rate
 * (statsd's fields[2]; more are ignored), *nf how many there are.
 * DogStatsD's container and timestamp fields, never the value's or the
 * type's, are skipped and counted in it; a container's ID may hold no
 * '|' and runs to the next one.  Sets it->p to the next part (NULL at the
 * end).  One pass: a part is as short as "42|ms".
 */
static void scan_part(sy_line *it, const char *part, const char *f[3], size_t flen[3], int *nf_out)
{
    const char *end = it->end, *fs = part, *q = part;
    int nf = 0, idx = 0; /* fields kept; index of the field at fs */
    for (;;) {
        while (q < end && *q != ':' && *q != '|')
            q++;
        if (q < end && *q == ':' && idx >= 2 && q - fs == 1 && *fs == 'c') {
            it->containers++;
            q = memchr(q, '|', (size_t)(end - q));
            if (!q) {
                q = end;
                break;
            }
            fs = ++q;
            idx++;
            continue;
        }
        size_t len = (size_t)(q - fs);
        if (idx >= 2 && dd_field(fs, len) == 'T') /* never 'c': no ':' in a field here */
            dd_count(it, 'T', fs, len);
        else if (nf < 3) {
            f[nf] = fs;
            flen[nf] = len;
            nf++;
        }
        if (q >= end || *q == ':')
            break;
        fs = ++q;
        idx++;
    }
    it->p = q < end ? q + 1 : NULL;
    *nf_out = nf;
}

/* DogStatsD's several values in one message ("k:1:2:3|ms|@0.1"): a value
 * part with no type takes the type and rate of the next part that has
 * one.  That part is looked for once and remembered, so a line of many
 * values costs one pass.  0 when no later part has a type. */
static int borrow_type(sy_line *it, const char *f[3], size_t flen[3], int *nf)
{
    if (!it->p)
        return 0;
    if (!it->mv_end || it->p > it->mv_end) {
        sy_line look = *it; /* its counts are not this value's */
        it->mv_end = NULL;
        while (look.p) {
            const char *g[3];
            size_t glen[3];
            int ng;
            const char *start = look.p;
            scan_part(&look, start, g, glen, &ng);
            if (ng >= 2) {
                it->mv_end = look.p ? look.p - 1 : look.end;
                /* only the typed part can hold a "T" field: the others are
                 * bare values */
                it->mv_ts = look.timestamps > it->timestamps ? look.ts : 0;
                it->mv_type = g[1];
                it->mv_type_len = (uint32_t)glen[1];
                it->mv_rate = ng == 3 ? g[2] : NULL;
                it->mv_rate_len = ng == 3 ? (uint32_t)glen[2] : 0;
                break;
            }
        }
        if (!it->mv_end)
            return 0;
    }
    f[1] = it->mv_type;
    flen[1] = it->mv_type_len;
    *nf = 2;
    if (it->mv_rate) {
        f[2] = it->mv_rate;
        flen[2] = it->mv_rate_len;
        *nf = 3;
    }
    return 1;
}

int sy_parse_value(sy_line *it, sy_sample *out)
{
    /* The common part ("42|ms", "1|c|@0.1") in one pass that finds where
     * it ends and its first two '|' (separate memchr calls cost more than
     * the scan); scan_part takes over for the rare part that may hold
     * DogStatsD fields: a third '|', a third field starting with 'T' or
     * 'c', or one ending at "|c:". */
    const char *part = it->p;
    const char *bar[2] = { NULL, NULL };
    int nbar = 0;
    const char *q = part, *end = it->end;
    for (; q < end; q++) {
        char ch = *q;
        if (ch == ':')
            break;
        if (ch == '|') {
            if (nbar < 2)
                bar[nbar] = q;
            nbar++;
        }
    }
    const char *f[3];
    size_t flen[3];
    int nf;
    if (__builtin_expect(nbar > 2 || (nbar == 2 && q > bar[1] + 1 &&
                                      (bar[1][1] == 'T' || bar[1][1] == 'c')), 0)) {
        scan_part(it, part, f, flen, &nf);
    } else {
        it->p = q < end ? q + 1 : NULL;
        f[0] = part;
        flen[0] = (size_t)((nbar ? bar[0] : q) - part);
        nf = 1;
        if (nbar >= 1) {
            f[1] = bar[0] + 1;
            flen[1] = (size_t)((nbar == 2 ? bar[1] : q) - f[1]);
            nf = 2;
        }
        if (nbar == 2) {
            f[2] = bar[1] + 1;
            flen[2] = (size_t)(q - f[2]);
            nf = 3;
        }
    }
    if (nf == 1 && !borrow_type(it, f, flen, &nf))
        return -1;
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

int64_t sy_parse_time(const sy_line *it)
{
    /* a value that borrowed its type: its typed part is still ahead */
    if (it->mv_end && it->p && it->p <= it->mv_end && it->mv_ts)
        return it->mv_ts;
    return it->timestamps ? it->ts : 0;
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
