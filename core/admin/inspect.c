/*
 * inspect.c - Node's util.inspect, for the objects statsd's console prints.
 *
 * Only what an object of numbers and arrays of numbers reaches in Node 20's
 * lib/internal/util/inspect.js, with its default options:
 *
 *   - key order: array indices first (JavaScript's own-property order);
 *   - keys: bare when they match /^[a-zA-Z_][a-zA-Z_0-9]*$/, else a quoted
 *     string literal (strEscape); "__proto__" is written ['__proto__'];
 *   - numbers: String(n), except that -0 is "-0";
 *   - layout (reduceToSingleString): an object or array goes on one line,
 *     "{ a: 1, b: 2 }", when its entries fit in 80 columns by
 *     isBelowBreakLength's count and none of them spans lines; otherwise
 *     one entry a line, two spaces further in than the brace.  An array of
 *     more than 6 entries may instead be laid out in right-aligned columns
 *     (groupArrayElements), and is then never on one line.  Past 100
 *     numbers, "... N more items" stands for the rest.
 *
 * Lengths are JavaScript's (UTF-16 code units).  Keys are bytes; they are
 * read as UTF-8 the way Node's Buffer.toString reads statsd's packets, each
 * malformed sequence becoming U+FFFD.
 */
#include "admin/inspect.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/numfmt.h"

#define BREAK_LENGTH 80  /* breakLength */
#define COMPACT 3        /* compact */
#define MAX_ARRAY 100    /* maxArrayLength */
#define NUM_MAX 48       /* a number's text, or "... N more items" */

static void put(sy_buf *out, const char *s, size_t n)
{
    sy_buf_add(out, s, n);
}

static void put_spaces(sy_buf *out, size_t n)
{
    static const char spaces[] = "                                                                ";
    while (n) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        sy_buf_add(out, spaces, k);
        n -= k;
    }
}

/* The next code point of s[0..n) as the WHATWG UTF-8 decoder (Node's) reads
 * it: a malformed sequence is U+FFFD and ends before the first byte that
 * cannot continue it.  *used: the bytes read. */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *used)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need = 0;
    uint32_t cp = c;
    *used = 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0F;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlong forms */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing past U+10FFFF */
    } else if (c >= 0x80) {
        return 0xFFFD;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *used = i;
            return 0xFFFD;
        }
        cp = cp << 6 | (s[i] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *used = need + 1;
    return cp;
}

static int ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* strEscape's body, for every text a client chose that switchyard shows
 * (inspect.h). */
size_t sy_inspect_escape(char *dst, size_t cap, const char *s, size_t len, int flags, size_t *used,
                         size_t *units)
{
    size_t w = 0, i = 0, u = 0;
    while (i < len && cap - w >= SY_INSPECT_ESCAPE_MAX_CHAR) {
        size_t n;
        uint32_t cp = utf8_next((const unsigned char *)s + i, len - i, &n);
        const char *esc = NULL;
        char hex[8];
        if ((flags & SY_ESC_BYTES) && cp == 0xFFFD && (n != 3 || memcmp(s + i, "\xEF\xBF\xBD", 3) != 0)) {
            /* malformed: this byte as \xHH, then decode again from the next */
            snprintf(hex, sizeof hex, "\\x%02X", (unsigned char)s[i]);
            esc = hex;
            n = 1;
        } else {
            switch (cp) {
            case '\b': esc = "\\b"; break;
            case '\t': esc = "\\t"; break;
            case '\n': esc = "\\n"; break;
            case '\f': esc = "\\f"; break;
            case '\r': esc = "\\r"; break;
            case '\\': esc = "\\\\"; break;
            case '\'': esc = flags & SY_ESC_QUOTE ? "\\'" : NULL; break;
            default:
                if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
                    snprintf(hex, sizeof hex, "\\x%02X", (unsigned)cp);
                    esc = hex;
                }
            }
        }
        if (esc) {
            size_t el = strlen(esc);
            memcpy(dst + w, esc, el);
            w += el;
            u += el;
        } else if (cp == 0xFFFD) { /* what was not valid UTF-8, too */
            memcpy(dst + w, "\xEF\xBF\xBD", 3);
            w += 3;
            u++;
        } else {
            memcpy(dst + w, s + i, n);
            w += n;
            u += cp >= 0x10000 ? 2 : 1; /* a surrogate pair */
        }
        i += n;
    }
    *used = i;
    if (units)
        *units += u;
    return w;
}

size_t sy_inspect_escape_buf(sy_buf *out, const char *s, size_t len, int flags)
{
    char tmp[1024];
    size_t units = 0;
    while (len) {
        size_t used, w = sy_inspect_escape(tmp, sizeof tmp, s, len, flags, &used, &units);
        put(out, tmp, w);
        s += used;
        len -= used;
    }
    return units;
}

/* A property name as formatProperty writes it; returns its length. */
static size_t put_key(sy_buf *out, const char *key, size_t len)
{
    if (len == 9 && memcmp(key, "__proto__", 9) == 0) {
        put(out, "['__proto__']", 13);
        return 13;
    }
    int bare = len > 0 && ident_start(key[0]);
    for (size_t i = 1; i < len && bare; i++)
        bare = ident_start(key[i]) || (key[i] >= '0' && key[i] <= '9');
    if (bare) {
        put(out, key, len);
        return len;
    }
    /* strEscape: single quotes, unless the key has one; then double quotes,
     * else backticks, else single quotes with \' inside.  (ASCII bytes are
     * the same characters after UTF-8 decoding, so bytes can be searched.) */
    char q = '\'';
    if (memchr(key, '\'', len)) {
        int dollar_brace = 0;
        for (size_t i = 0; i + 1 < len; i++)
            dollar_brace |= key[i] == '$' && key[i + 1] == '{';
        if (!memchr(key, '"', len))
            q = '"';
        else if (!memchr(key, '`', len) && !dollar_brace)
            q = '`';
    }
    put(out, &q, 1);
    size_t jslen = 2 + sy_inspect_escape_buf(out, key, len, q == '\'' ? SY_ESC_QUOTE : 0);
    put(out, &q, 1);
    return jslen;
}

/* formatNumber: String(v), but "-0" for -0.  buf: SY_FMT_DOUBLE_MAX. */
static size_t fmt_number(double v, char *buf)
{
    if (v == 0 && signbit(v)) {
        memcpy(buf, "-0", 3);
        return 2;
    }
    return sy_fmt_double(v, buf);
}

/* isBelowBreakLength: entries of these lengths, `start` columns in, with a
 * comma after each, fit in breakLength. */
static int fits_one_line(const size_t *len, size_t n, size_t start)
{
    size_t total = n + start;
    if (total + n > BREAK_LENGTH)
        return 0;
    for (size_t i = 0; i < n; i++) {
        total += len[i];
        if (total > BREAK_LENGTH)
            return 0;
    }
    return 1;
}

/* Math.round, exactly (halves go up). */
static double js_round(double x)
{
    double r = floor(x);
    return x - r >= 0.5 ? r + 1 : r;
}

/* groupArrayElements' choice: how many columns for the `shown` numbers of
 * these lengths (nout counts "... more items" too), or 0 for one entry a
 * line.  Columns make a roughly square block of entries of similar width;
 * arrays where one entry is much wider than the others are not grouped.
 * Node's arithmetic, in doubles, in its order. */
static size_t group_columns(const size_t *len, size_t shown, size_t nout, size_t indent)
{
    size_t total = 0, max_len = 0;
    for (size_t i = 0; i < shown; i++) {
        total += len[i] + 2; /* ", " */
        if (len[i] > max_len)
            max_len = len[i];
    }
    size_t actual_max = max_len + 2;
    if (!(actual_max * 3 + indent < BREAK_LENGTH &&
          ((double)total / (double)actual_max > 5 || max_len <= 6)))
        return 0;
    double bias = sqrt((double)actual_max - (double)total / (double)nout);
    double biased_max = fmax((double)actual_max - 3 - bias, 1);
    double cols = js_round(sqrt(2.5 * biased_max * (double)shown) / biased_max);
    cols = fmin(cols, floor((double)(BREAK_LENGTH - indent) / (double)actual_max));
    cols = fmin(cols, COMPACT * 4);
    cols = fmin(cols, 15);
    return cols > 1 ? (size_t)cols : 0;
}

/* An array of numbers, as the value of a property whose line is indented
 * by `indent` (the array's entries then go at indent + 2). */
static void put_array(sy_buf *out, const double *v, size_t n, size_t indent)
{
    if (n == 0) {
        put(out, "[]", 2);
        return;
    }
    char text[MAX_ARRAY + 1][NUM_MAX];
    size_t len[MAX_ARRAY + 1];
    size_t shown = n < MAX_ARRAY ? n : MAX_ARRAY, nout = shown;
    for (size_t i = 0; i < shown; i++)
        len[i] = fmt_number(v[i], text[i]);
    if (n > shown) {
        size_t rest = n - shown;
        int k = snprintf(text[nout], NUM_MAX, "... %zu more item%s", rest, rest > 1 ? "s" : "");
        len[nout++] = (size_t)k;
    }
    size_t cols = nout > 6 ? group_columns(len, shown, nout, indent) : 0;
    if (!cols && fits_one_line(len, nout, nout + indent + 1 + 10)) {
        put(out, "[ ", 2);
        for (size_t i = 0; i < nout; i++) {
            if (i)
                put(out, ", ", 2);
            put(out, text[i], len[i]);
        }
        put(out, " ]", 2);
        return;
    }
    put(out, "[", 1);
    if (cols) {
        size_t width[15] = { 0 }; /* per column: its widest number */
        for (size_t i = 0; i < shown; i++)
            if (len[i] > width[i % cols])
                width[i % cols] = len[i];
        for (size_t i = 0; i < shown; i++) {
            size_t c = i % cols;
            if (c == 0) {
                put(out, i ? ",\n" : "\n", i ? 2 : 1);
                put_spaces(out, indent + 2);
            } else {
                put(out, ", ", 2);
            }
            put_spaces(out, width[c] - len[i]);
            put(out, text[i], len[i]);
        }
        if (nout > shown) {
            put(out, ",\n", 2);
            put_spaces(out, indent + 2);
            put(out, text[shown], len[shown]);
        }
    } else {
        for (size_t i = 0; i < nout; i++) {
            put(out, i ? ",\n" : "\n", i ? 2 : 1);
            put_spaces(out, indent + 2);
            put(out, text[i], len[i]);
        }
    }
    put(out, "\n", 1);
    put_spaces(out, indent);
    put(out, "]", 1);
}

/* A canonical array index ("0", "17"; not "017"): 0 .. 2^32 - 2. */
int sy_inspect_array_index(const char *k, size_t len, uint32_t *idx)
{
    if (len == 0 || len > 10 || (k[0] == '0' && len > 1))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (k[i] < '0' || k[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(k[i] - '0');
    }
    if (v > 4294967294u)
        return 0;
    *idx = (uint32_t)v;
    return 1;
}

typedef struct ordered {
    uint32_t idx;
    size_t pos;
} ordered;

static int by_index(const void *x, const void *y)
{
    const ordered *a = x, *b = y;
    if (a->idx != b->idx)
        return a->idx < b->idx ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* JavaScript's property order (OrdinaryOwnPropertyKeys): *order gets the
 * properties' numbers in that order, or NULL when it is creation order
 * (no key is an array index, the usual case). */
static int js_order(size_t n, sy_inspect_get_fn *get, void *ctx, size_t **order)
{
    sy_inspect_prop p;
    uint32_t idx;
    size_t ni = 0, k = 0;
    *order = NULL;
    for (size_t i = 0; i < n; i++) {
        get(ctx, i, &p);
        ni += sy_inspect_array_index(p.key, p.key_len, &idx);
    }
    if (ni == 0)
        return 0;
    ordered *ix = malloc(ni * sizeof *ix);
    *order = malloc(n * sizeof **order);
    if (!ix || !*order) {
        free(ix);
        free(*order);
        return -1;
    }
    for (size_t i = 0, j = 0; i < n; i++) {
        get(ctx, i, &p);
        if (sy_inspect_array_index(p.key, p.key_len, &ix[j].idx))
            ix[j++].pos = i;
    }
    qsort(ix, ni, sizeof *ix, by_index);
    for (size_t i = 0; i < ni; i++)
        (*order)[k++] = ix[i].pos;
    for (size_t i = 0; i < n; i++) {
        get(ctx, i, &p);
        if (!sy_inspect_array_index(p.key, p.key_len, &idx))
            (*order)[k++] = i;
    }
    free(ix);
    return 0;
}

/* "key: value"; returns its length. */
static size_t put_prop(sy_buf *out, const sy_inspect_prop *p)
{
    size_t len = put_key(out, p->key, p->key_len) + 2;
    put(out, ": ", 2);
    if (p->is_array) {
        size_t at = out->len;
        put_array(out, p->v, p->n, 2);
        return len + (out->len - at); /* ASCII */
    }
    char num[SY_FMT_DOUBLE_MAX];
    size_t nl = fmt_number(p->value, num);
    put(out, num, nl);
    return len + nl;
}

/* More entries than this never fit on one line (isBelowBreakLength's
 * first test: 3 * n + 11 > breakLength). */
#define ONE_LINE_MAX SY_INSPECT_ONE_LINE_MAX

int sy_inspect_object(sy_buf *out, size_t n, sy_inspect_get_fn *get, void *ctx)
{
    if (n == 0) {
        put(out, "{}", 2);
        return 0;
    }
    size_t *order;
    if (js_order(n, get, ctx, &order) < 0)
        return -1;
    /* Written one property a line; squeezed onto one afterwards if the
     * object turns out to fit there (the one-line form is shorter at
     * every point, so it can be moved down in place). */
    size_t base = out->len, at[ONE_LINE_MAX], bytes[ONE_LINE_MAX], jslen[ONE_LINE_MAX];
    int one_line = n <= ONE_LINE_MAX;
    put(out, "{", 1);
    for (size_t k = 0; k < n; k++) {
        sy_inspect_prop p;
        get(ctx, order ? order[k] : k, &p);
        put(out, k ? ",\n  " : "\n  ", k ? 4 : 3);
        size_t start = out->len, len = put_prop(out, &p);
        if (k < ONE_LINE_MAX) {
            at[k] = start;
            bytes[k] = out->len - start;
            jslen[k] = len;
            /* keys never hold a raw newline (it is escaped): one here is
             * an array that spans lines */
            one_line = one_line && !(bytes[k] && memchr(out->p + start, '\n', bytes[k]));
        }
    }
    put(out, "\n}", 2);
    free(order);
    if (!out->p)
        return -1; /* out of memory */
    if (one_line && fits_one_line(jslen, n, n + 1 + 10)) {
        size_t w = base;
        memcpy(out->p + w, "{ ", 2);
        w += 2;
        for (size_t k = 0; k < n; k++) {
            if (k) {
                memcpy(out->p + w, ", ", 2);
                w += 2;
            }
            memmove(out->p + w, out->p + at[k], bytes[k]);
            w += bytes[k];
        }
        memcpy(out->p + w, " }", 2);
        out->len = w + 2;
    }
    return 0;
}

void sy_inspect_stream_prop(sy_buf *out, size_t *n, const sy_inspect_prop *p)
{
    put(out, *n ? ",\n  " : "{\n  ", 4);
    put_prop(out, p);
    ++*n;
}

void sy_inspect_stream_end(sy_buf *out, size_t n)
{
    put(out, n ? "\n}" : "{}", 2);
}
