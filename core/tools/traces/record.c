/*
 * record.c - the trace records' JSON reader (record.h).
 *
 * Everything read from memcached is untrusted: this is a small bounded
 * recursive-descent parser for the records' format, depth-limited, that
 * never reads past its buffer.
 */
#include "tools/traces/record.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/trace_format.h" /* plugins/lib: TM_VERSION */
#include "util/numfmt.h"

#define MAX_DEPTH 64

/* ------------------------------------------------------------------ */
/* JSON                                                                 */
/* ------------------------------------------------------------------ */

typedef struct jp {
    const char *p, *end;
    int depth;
    const char *err;
} jp;

static int jp_fail(jp *j, const char *why)
{
    if (!j->err)
        j->err = why;
    return -1;
}

static void jp_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int jp_peek(jp *j)
{
    jp_ws(j);
    return j->p < j->end ? (unsigned char)*j->p : -1;
}

static int jp_eat(jp *j, char c)
{
    if (jp_peek(j) != (unsigned char)c)
        return 0;
    j->p++;
    return 1;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string; decoded into a malloc'd NUL-terminated copy when out is not
 * NULL.  The decoded text is never longer than the escaped one, so one
 * allocation of the input's length suffices.  \u0000 becomes U+FFFD (the
 * copy is a C string) and so does a lone surrogate. */
static int jp_string(jp *j, char **out)
{
    if (!jp_eat(j, '"'))
        return jp_fail(j, "a string was expected");
    const char *s = j->p;
    const char *q = s;
    while (q < j->end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= j->end)
        return jp_fail(j, "unterminated string");
    char *o = NULL, *w = NULL;
    if (out) {
        o = w = malloc((size_t)(q - s) + 1);
        if (!o)
            return jp_fail(j, "out of memory");
    }
    const char *p = s;
    while (p < q) {
        char c = *p++;
        if (c != '\\') {
            if (w)
                *w++ = c;
            continue;
        }
        char e = *p++; /* p <= q: the scan above paired every backslash */
        char one;
        switch (e) {
        case '"': one = '"'; break;
        case '\\': one = '\\'; break;
        case '/': one = '/'; break;
        case 'b': one = '\b'; break;
        case 'f': one = '\f'; break;
        case 'n': one = '\n'; break;
        case 'r': one = '\r'; break;
        case 't': one = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (q - p < 4 || hex4(p, &cp) < 0)
                goto bad;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && q - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0) {
                cp = 0xFFFD;
            }
            if (w)
                w += put_utf8(w, cp);
            continue;
        }
        default:
            goto bad;
        }
        if (w)
            *w++ = one;
    }
    j->p = q + 1;
    if (out) {
        *w = '\0';
        *out = o;
    }
    return 0;
bad:
    free(o);
    return jp_fail(j, "bad escape in a string");
}

static int jp_number(jp *j, double *out)
{
    jp_ws(j);
    const char *s = j->p;
    while (j->p < j->end && j->p - s < 64 &&
           ((*j->p >= '0' && *j->p <= '9') || *j->p == '-' || *j->p == '+' || *j->p == '.' ||
            *j->p == 'e' || *j->p == 'E'))
        j->p++;
    double v;
    if (j->p == s || sy_parse_double(s, (size_t)(j->p - s), &v) < 0)
        return jp_fail(j, "a number was expected");
    *out = v;
    return 0;
}

static int jp_word(jp *j, const char *w)
{
    size_t n = strlen(w);
    jp_ws(j);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

/* 1 for true, 0 for false, -1 otherwise. */
static int jp_bool(jp *j)
{
    if (jp_word(j, "true"))
        return 1;
    if (jp_word(j, "false"))
        return 0;
    return jp_fail(j, "true or false was expected");
}

static int jp_skip(jp *j);

/* Iterates an object's members: call with *first = 1; returns 1 with the
 * key (malloc'd) when there is a member, its value next in the input; 0 at
 * the end; -1 on an error. */
static int jp_member(jp *j, int *first, char **key)
{
    if (*first) {
        if (!jp_eat(j, '{'))
            return jp_fail(j, "an object was expected");
        if (++j->depth > MAX_DEPTH)
            return jp_fail(j, "nested too deeply");
        *first = 0;
        if (jp_eat(j, '}')) {
            j->depth--;
            return 0;
        }
    } else {
        if (jp_eat(j, '}')) {
            j->depth--;
            return 0;
        }
        if (!jp_eat(j, ','))
            return jp_fail(j, "',' or '}' was expected");
    }
    if (jp_string(j, key) < 0)
        return -1;
    if (!jp_eat(j, ':')) {
        free(*key);
        *key = NULL;
        return jp_fail(j, "':' was expected");
    }
    return 1;
}

/* The same for an array's elements: 1 when an element is next. */
static int jp_element(jp *j, int *first)
{
    if (*first) {
        if (!jp_eat(j, '['))
            return jp_fail(j, "an array was expected");
        if (++j->depth > MAX_DEPTH)
            return jp_fail(j, "nested too deeply");
        *first = 0;
        if (jp_eat(j, ']')) {
            j->depth--;
            return 0;
        }
        return 1;
    }
    if (jp_eat(j, ']')) {
        j->depth--;
        return 0;
    }
    if (!jp_eat(j, ','))
        return jp_fail(j, "',' or ']' was expected");
    return 1;
}

static int jp_skip(jp *j)
{
    int c = jp_peek(j), first = 1, r;
    double d;
    char *key;
    switch (c) {
    case '"':
        return jp_string(j, NULL);
    case '{':
        while ((r = jp_member(j, &first, &key)) == 1) {
            free(key);
            if (jp_skip(j) < 0)
                return -1;
        }
        return r;
    case '[':
        while ((r = jp_element(j, &first)) == 1)
            if (jp_skip(j) < 0)
                return -1;
        return r;
    case 't':
    case 'f':
        return jp_bool(j) < 0 ? -1 : 0;
    case 'n':
        return jp_word(j, "null") ? 0 : jp_fail(j, "a value was expected");
    default:
        return jp_number(j, &d);
    }
}

/* A string or null into *out (replacing what was there). */
static int jp_opt_string(jp *j, char **out)
{
    if (jp_word(j, "null")) {
        free(*out);
        *out = NULL;
        return 0;
    }
    char *s;
    if (jp_string(j, &s) < 0)
        return -1;
    free(*out);
    *out = s;
    return 0;
}

/* Appends one zeroed element to *arr (n elements of size sz): capacity 4,
 * then doubling, so it reallocates when n is 0 or a power of two >= 4.
 * NULL when memory runs out (or past 2^28 elements). */
void *sy_traces_grow(void **arr, size_t *n, size_t sz)
{
    size_t k = *n;
    if (k >= ((size_t)1 << 28))
        return NULL;
    if (k == 0 || (k >= 4 && (k & (k - 1)) == 0)) {
        void *p = realloc(*arr, (k ? k * 2 : 4) * sz);
        if (!p)
            return NULL;
        *arr = p;
    }
    char *e = (char *)*arr + k * sz;
    memset(e, 0, sz);
    *n = k + 1;
    return e;
}

/* One object: each member's key (freed after) and value go to `member`,
 * which reads the value or skips it; -1 as soon as one fails. */
typedef int (*jp_member_fn)(jp *j, const char *key, void *ctx);

static int jp_object(jp *j, jp_member_fn member, void *ctx)
{
    int first = 1, r;
    char *key;
    while ((r = jp_member(j, &first, &key)) == 1) {
        int rc = member(j, key, ctx);
        free(key);
        if (rc < 0)
            return -1;
    }
    return r;
}

/* One array: each element is read by `item` into a new zeroed element of
 * *arr (*n of them, sz bytes each), which the record's free releases even
 * when `item` failed half way. */
typedef int (*jp_item_fn)(jp *j, void *elem);

static int jp_array(jp *j, void **arr, size_t *n, size_t sz, jp_item_fn item)
{
    int first = 1, r;
    while ((r = jp_element(j, &first)) == 1) {
        void *e = sy_traces_grow(arr, n, sz);
        if (!e)
            return jp_fail(j, "out of memory");
        if (item(j, e) < 0)
            return -1;
    }
    return r;
}

static int stat_member(jp *j, const char *key, void *ctx)
{
    sy_trace_stat *st = ctx;
    if (!strcmp(key, "name"))
        return jp_opt_string(j, &st->name);
    if (!strcmp(key, "count"))
        return jp_number(j, &st->count);
    if (!strcmp(key, "total"))
        return jp_number(j, &st->total);
    return jp_skip(j);
}

static int parse_stat(jp *j, void *st)
{
    return jp_object(j, stat_member, st);
}

static int parse_tag(jp *j, void *tag)
{
    return jp_string(j, tag);
}

static int span_member(jp *j, const char *key, void *ctx)
{
    sy_trace_span *sp = ctx;
    if (!strcmp(key, "name"))
        return jp_opt_string(j, &sp->name);
    if (!strcmp(key, "off"))
        return jp_number(j, &sp->off);
    if (!strcmp(key, "dur"))
        return jp_number(j, &sp->dur);
    if (!strcmp(key, "root")) {
        int b = jp_bool(j);
        sp->root = b > 0;
        return b < 0 ? -1 : 0;
    }
    if (!strcmp(key, "tags"))
        return jp_array(j, (void **)&sp->tags, &sp->ntags, sizeof(char *), parse_tag);
    return jp_skip(j);
}

static int parse_span(jp *j, void *sp)
{
    return jp_object(j, span_member, sp);
}

void sy_trace_rec_free(sy_trace_rec *r)
{
    if (!r)
        return;
    free(r->trace);
    free(r->method);
    free(r->path);
    free(r->status);
    free(r->closed);
    for (size_t i = 0; i < r->nstats; i++)
        free(r->stats[i].name);
    free(r->stats);
    for (size_t i = 0; i < r->nspans; i++) {
        free(r->spans[i].name);
        for (size_t k = 0; k < r->spans[i].ntags; k++)
            free(r->spans[i].tags[k]);
        free(r->spans[i].tags);
    }
    free(r->spans);
    memset(r, 0, sizeof(*r));
}

typedef struct record_ctx {
    sy_trace_rec *out;
    int have_version, have_start;
} record_ctx;

static int record_member(jp *j, const char *key, void *ctx)
{
    record_ctx *c = ctx;
    sy_trace_rec *out = c->out;
    double d = 0;
    int rc;
    if (!strcmp(key, "version")) {
        rc = jp_number(j, &d);
        if (rc == 0 && (d != (int)d || d < 0))
            rc = jp_fail(j, "\"version\" is not a whole number");
        out->version = (int)d;
        c->have_version = 1;
        return rc;
    }
    if (!strcmp(key, "start")) {
        rc = jp_number(j, &d);
        if (rc == 0 && !(d >= 0 && d <= 9007199254740992.0 && d == (double)(uint64_t)d))
            rc = jp_fail(j, "\"start\" is not a whole number of ms");
        if (rc == 0)
            out->start = (uint64_t)d;
        c->have_start = 1;
        return rc;
    }
    if (!strcmp(key, "duration"))
        return jp_number(j, &out->duration);
    if (!strcmp(key, "span_count"))
        return jp_number(j, &out->span_count);
    if (!strcmp(key, "spans_dropped"))
        return jp_number(j, &out->spans_dropped);
    if (!strcmp(key, "trace"))
        return jp_opt_string(j, &out->trace);
    if (!strcmp(key, "method"))
        return jp_opt_string(j, &out->method);
    if (!strcmp(key, "path"))
        return jp_opt_string(j, &out->path);
    if (!strcmp(key, "status"))
        return jp_opt_string(j, &out->status);
    if (!strcmp(key, "closed"))
        return jp_opt_string(j, &out->closed);
    if (!strcmp(key, "root") || !strcmp(key, "stats_truncated")) {
        int b = jp_bool(j);
        if (key[0] == 'r')
            out->root = b > 0;
        else
            out->stats_truncated = b > 0;
        return b < 0 ? -1 : 0;
    }
    /* a repeated "stats" or "spans" is skipped: the first one counts */
    if (!strcmp(key, "stats") && !out->stats)
        return jp_array(j, (void **)&out->stats, &out->nstats, sizeof(sy_trace_stat), parse_stat);
    if (!strcmp(key, "spans") && !out->spans)
        return jp_array(j, (void **)&out->spans, &out->nspans, sizeof(sy_trace_span), parse_span);
    return jp_skip(j);
}

static int parse_record(jp *j, sy_trace_rec *out, int *have_version, int *have_start)
{
    record_ctx c = { out, 0, 0 };
    int r = jp_object(j, record_member, &c);
    *have_version = c.have_version;
    *have_start = c.have_start;
    return r;
}

int sy_trace_rec_parse(const char *json, size_t len, sy_trace_rec *out, char *err, size_t errlen)
{
    jp j = { .p = json, .end = json + len };
    int have_version = 0, have_start = 0;
    memset(out, 0, sizeof(*out));
    if (parse_record(&j, out, &have_version, &have_start) < 0)
        goto fail;
    if (jp_peek(&j) != -1) {
        jp_fail(&j, "data after the record");
        goto fail;
    }
    if (!have_version) {
        jp_fail(&j, "no \"version\"");
        goto fail;
    }
    if (out->version != TM_VERSION) {
        snprintf(err, errlen, "version %d, this reader knows version %d", out->version, TM_VERSION);
        sy_trace_rec_free(out);
        return -1;
    }
    if (!have_start) {
        jp_fail(&j, "no \"start\"");
        goto fail;
    }
    return 0;
fail:
    snprintf(err, errlen, "%s at byte %zu", j.err ? j.err : "not JSON", (size_t)(j.p - json));
    sy_trace_rec_free(out);
    return -1;
}
