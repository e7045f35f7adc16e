/*
 * traces.c - `switchyard traces`, the reader of the traces stored by the
 * memcache_traces sink (formats: plugins/memcache_traces.c).
 *
 * Listing reads all 1000 `<prefix>:NNNNNN:part` keys with one multi-get,
 * keeps the records that decode, are version 1 and whose start time
 * belongs to the slot they were found in, and prints them newest first,
 * followed by totals over all of them per path and per span name.
 * Showing reads `<prefix>:NNNNNN:full` for the slot of START_MS and prints
 * it only if its start is START_MS: as in appstats, a slot is reused every
 * 100 seconds, so the full record may belong to a newer trace by now.
 *
 * Everything read from memcached is untrusted: the JSON decoder is a small
 * bounded recursive-descent parser for this format (depth-limited, never
 * reads past the buffer), values are read by their announced length with
 * a cap, and strings are printed with control characters and invalid
 * UTF-8 replaced, so a record cannot drive the terminal.
 */
#include "traces.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "numfmt.h"

#define SLOTS 1000
#define SLOT_MS 100
#define DEFAULT_ADDR "127.0.0.1:11211"
#define DEFAULT_PREFIX "switchyard:traces"
#define DEFAULT_LIMIT 20
#define TIMEOUT_MS 5000
#define MAX_DEPTH 64
#define MAX_VALUE (64u << 20) /* larger values are skipped, not parsed */
#define MAX_LINE 4096

unsigned sy_traces_slot(uint64_t start_ms)
{
    return (unsigned)(((start_ms / SLOT_MS) % SLOTS) * SLOT_MS);
}

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
static void *grow(void **arr, size_t *n, size_t sz)
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

static int parse_stat(jp *j, sy_trace_stat *st)
{
    int first = 1, r;
    char *key;
    while ((r = jp_member(j, &first, &key)) == 1) {
        int rc;
        if (!strcmp(key, "name"))
            rc = jp_opt_string(j, &st->name);
        else if (!strcmp(key, "count"))
            rc = jp_number(j, &st->count);
        else if (!strcmp(key, "total"))
            rc = jp_number(j, &st->total);
        else
            rc = jp_skip(j);
        free(key);
        if (rc < 0)
            return -1;
    }
    return r;
}

static int parse_span(jp *j, sy_trace_span *sp)
{
    int first = 1, r;
    char *key;
    while ((r = jp_member(j, &first, &key)) == 1) {
        int rc = 0;
        if (!strcmp(key, "name")) {
            rc = jp_opt_string(j, &sp->name);
        } else if (!strcmp(key, "off")) {
            rc = jp_number(j, &sp->off);
        } else if (!strcmp(key, "dur")) {
            rc = jp_number(j, &sp->dur);
        } else if (!strcmp(key, "root")) {
            int b = jp_bool(j);
            rc = b < 0 ? -1 : 0;
            sp->root = b > 0;
        } else if (!strcmp(key, "tags")) {
            int f2 = 1, r2;
            while ((r2 = jp_element(j, &f2)) == 1) {
                char **slot = grow((void **)&sp->tags, &sp->ntags, sizeof(char *));
                if (!slot) {
                    rc = jp_fail(j, "out of memory");
                    break;
                }
                if (jp_string(j, slot) < 0) {
                    sp->ntags--;
                    rc = -1;
                    break;
                }
            }
            if (r2 < 0)
                rc = -1;
        } else {
            rc = jp_skip(j);
        }
        free(key);
        if (rc < 0)
            return -1;
    }
    return r;
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

static int parse_record(jp *j, sy_trace_rec *out, int *have_version, int *have_start)
{
    int first = 1, r;
    char *key;
    while ((r = jp_member(j, &first, &key)) == 1) {
        int rc = 0;
        double d;
        if (!strcmp(key, "version")) {
            rc = jp_number(j, &d);
            if (rc == 0 && (d != (int)d || d < 0))
                rc = jp_fail(j, "\"version\" is not a whole number");
            out->version = (int)d;
            *have_version = 1;
        } else if (!strcmp(key, "start")) {
            rc = jp_number(j, &d);
            if (rc == 0 && !(d >= 0 && d <= 9007199254740992.0 && d == (double)(uint64_t)d))
                rc = jp_fail(j, "\"start\" is not a whole number of ms");
            if (rc == 0)
                out->start = (uint64_t)d;
            *have_start = 1;
        } else if (!strcmp(key, "duration")) {
            rc = jp_number(j, &out->duration);
        } else if (!strcmp(key, "span_count")) {
            rc = jp_number(j, &out->span_count);
        } else if (!strcmp(key, "spans_dropped")) {
            rc = jp_number(j, &out->spans_dropped);
        } else if (!strcmp(key, "trace")) {
            rc = jp_opt_string(j, &out->trace);
        } else if (!strcmp(key, "method")) {
            rc = jp_opt_string(j, &out->method);
        } else if (!strcmp(key, "path")) {
            rc = jp_opt_string(j, &out->path);
        } else if (!strcmp(key, "status")) {
            rc = jp_opt_string(j, &out->status);
        } else if (!strcmp(key, "closed")) {
            rc = jp_opt_string(j, &out->closed);
        } else if (!strcmp(key, "root") || !strcmp(key, "stats_truncated")) {
            int b = jp_bool(j);
            rc = b < 0 ? -1 : 0;
            if (key[0] == 'r')
                out->root = b > 0;
            else
                out->stats_truncated = b > 0;
        } else if (!strcmp(key, "stats") && !out->stats) {
            int f2 = 1, r2;
            while ((r2 = jp_element(j, &f2)) == 1) {
                sy_trace_stat *st = grow((void **)&out->stats, &out->nstats, sizeof(*st));
                if (!st || parse_stat(j, st) < 0) {
                    rc = st ? -1 : jp_fail(j, "out of memory");
                    break;
                }
            }
            if (r2 < 0)
                rc = -1;
        } else if (!strcmp(key, "spans") && !out->spans) {
            int f2 = 1, r2;
            while ((r2 = jp_element(j, &f2)) == 1) {
                sy_trace_span *sp = grow((void **)&out->spans, &out->nspans, sizeof(*sp));
                if (!sp || parse_span(j, sp) < 0) {
                    rc = sp ? -1 : jp_fail(j, "out of memory");
                    break;
                }
            }
            if (r2 < 0)
                rc = -1;
        } else {
            rc = jp_skip(j);
        }
        free(key);
        if (rc < 0)
            return -1;
    }
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
    if (out->version != 1) {
        snprintf(err, errlen, "version %d, this reader knows version 1", out->version);
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

/* ------------------------------------------------------------------ */
/* memcached, blocking                                                  */
/* ------------------------------------------------------------------ */

typedef struct mc {
    int fd;
    char buf[65536];
    size_t off, len;
    char err[512];
} mc;

/* HOST:PORT, [V6]:PORT, HOST or [V6] (port 11211). */
static int split_addr(const char *a, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon;
    size_t hlen;
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        if (!close)
            return -1;
        hlen = (size_t)(close - a - 1);
        if (hlen >= hcap)
            return -1;
        memcpy(host, a + 1, hlen);
        host[hlen] = '\0';
        colon = close[1] == ':' ? close + 1 : NULL;
        if (!colon && close[1])
            return -1;
    } else {
        colon = strrchr(a, ':');
        if (colon && strchr(a, ':') != colon)
            return -1; /* a bare IPv6 address needs brackets */
        hlen = colon ? (size_t)(colon - a) : strlen(a);
        if (hlen == 0 || hlen >= hcap)
            return -1;
        memcpy(host, a, hlen);
        host[hlen] = '\0';
    }
    const char *p = colon ? colon + 1 : "11211";
    size_t plen = strlen(p);
    if (plen == 0 || plen >= pcap || strspn(p, "0123456789") != plen || atoi(p) < 1 ||
        atoi(p) > 65535)
        return -1;
    memcpy(port, p, plen + 1);
    return 0;
}

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    if (connect(fd, sa, len) < 0) {
        if (errno != EINPROGRESS)
            return -1;
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        int r;
        do
            r = poll(&pfd, 1, TIMEOUT_MS);
        while (r < 0 && errno == EINTR);
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int e = 0;
        socklen_t el = sizeof(e);
        if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
            return -1;
        if (e) {
            errno = e;
            return -1;
        }
    }
    if (fcntl(fd, F_SETFL, fl) < 0)
        return -1;
    struct timeval tv = { .tv_sec = TIMEOUT_MS / 1000, .tv_usec = (TIMEOUT_MS % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return 0;
}

static int mc_open(mc *m, const char *addr)
{
    char host[256], port[16];
    m->fd = -1;
    m->off = m->len = 0;
    if (split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0) {
        snprintf(m->err, sizeof(m->err), "'%s' is not HOST:PORT", addr);
        return -1;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(m->err, sizeof(m->err), "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    int e = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect_timeout(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            m->fd = fd;
            break;
        }
        e = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (m->fd < 0) {
        snprintf(m->err, sizeof(m->err), "cannot connect to memcached at %s: %s", addr,
                 strerror(e));
        return -1;
    }
    return 0;
}

static void mc_close(mc *m)
{
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}

static int mc_write(mc *m, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(m->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            snprintf(m->err, sizeof(m->err), "cannot send to memcached: %s",
                     errno == EAGAIN ? "timed out" : strerror(errno));
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int mc_fill(mc *m)
{
    if (m->off) {
        memmove(m->buf, m->buf + m->off, m->len - m->off);
        m->len -= m->off;
        m->off = 0;
    }
    for (;;) {
        ssize_t r = recv(m->fd, m->buf + m->len, sizeof(m->buf) - m->len, 0);
        if (r > 0) {
            m->len += (size_t)r;
            return 0;
        }
        if (r < 0 && errno == EINTR)
            continue;
        snprintf(m->err, sizeof(m->err), "cannot read from memcached: %s",
                 r == 0 ? "connection closed" : errno == EAGAIN ? "timed out" : strerror(errno));
        return -1;
    }
}

/* One reply line, without its CRLF, NUL-terminated in place. */
static int mc_line(mc *m, char **line, size_t *len)
{
    for (;;) {
        char *s = m->buf + m->off;
        char *nl = memchr(s, '\n', m->len - m->off);
        if (nl) {
            size_t n = (size_t)(nl - s);
            if (n && s[n - 1] == '\r')
                n--;
            s[n] = '\0';
            *line = s;
            *len = n;
            m->off = (size_t)(nl - m->buf) + 1;
            return 0;
        }
        if (m->len - m->off >= MAX_LINE) {
            snprintf(m->err, sizeof(m->err), "memcached sent a line longer than %d bytes",
                     MAX_LINE);
            return -1;
        }
        if (mc_fill(m) < 0)
            return -1;
    }
}

/* n bytes into dst (NULL: discard them). */
static int mc_read(mc *m, char *dst, size_t n)
{
    while (n) {
        if (m->off == m->len && mc_fill(m) < 0)
            return -1;
        size_t k = m->len - m->off < n ? m->len - m->off : n;
        if (dst) {
            memcpy(dst, m->buf + m->off, k);
            dst += k;
        }
        m->off += k;
        n -= k;
    }
    return 0;
}

typedef int (*value_fn)(void *ctx, const char *key, const char *data, size_t len);

/* Reads the answer to a get: each VALUE goes to fn (values over MAX_VALUE
 * are skipped and counted in *skipped), until END. */
static int mc_values(mc *m, value_fn fn, void *ctx, size_t *skipped)
{
    char *line;
    for (;;) {
        size_t len;
        if (mc_line(m, &line, &len) < 0)
            return -1;
        if (!strcmp(line, "END"))
            return 0;
        char key[256];
        unsigned long long flags, bytes;
        char *p = line;
        if (strncmp(p, "VALUE ", 6) != 0) {
            snprintf(m->err, sizeof(m->err), "memcached answered \"%.200s\"", line);
            return -1;
        }
        p += 6;
        size_t klen = strcspn(p, " ");
        if (klen == 0 || klen >= sizeof(key) || p[klen] != ' ')
            goto bad;
        memcpy(key, p, klen);
        key[klen] = '\0';
        p += klen + 1;
        char *e;
        errno = 0;
        if (*p < '0' || *p > '9') /* strtoull would take a sign or spaces */
            goto bad;
        flags = strtoull(p, &e, 10);
        if (*e != ' ' || errno)
            goto bad;
        p = e + 1;
        if (*p < '0' || *p > '9')
            goto bad;
        bytes = strtoull(p, &e, 10);
        if ((*e != '\0' && *e != ' ') || errno)
            goto bad;
        (void)flags;
        if (bytes > MAX_VALUE) {
            if (mc_read(m, NULL, (size_t)bytes) < 0)
                return -1;
            (*skipped)++;
        } else {
            char *data = malloc((size_t)bytes + 1);
            if (!data) {
                snprintf(m->err, sizeof(m->err), "out of memory");
                return -1;
            }
            if (mc_read(m, data, (size_t)bytes) < 0) {
                free(data);
                return -1;
            }
            data[bytes] = '\0';
            int rc = fn(ctx, key, data, (size_t)bytes);
            free(data);
            if (rc < 0)
                return -1;
        }
        char crlf[2];
        if (mc_read(m, crlf, 2) < 0)
            return -1;
        if (crlf[0] != '\r' || crlf[1] != '\n') {
            snprintf(m->err, sizeof(m->err), "a value from memcached is not followed by CRLF");
            return -1;
        }
    }
bad:
    snprintf(m->err, sizeof(m->err), "cannot read memcached's reply \"%.200s\"", line);
    return -1;
}

/* ------------------------------------------------------------------ */
/* printing                                                             */
/* ------------------------------------------------------------------ */

/* The length of a valid UTF-8 sequence at s (first byte >= 0x80) that is
 * not a C1 control, or 0. */
static size_t utf8_printable(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    if (c == 0xC2 && s[1] < 0xA0)
        return 0; /* U+0080..U+009F */
    return len;
}

/* The next printable character of s[i..n): its byte length, with *subst
 * set when it is shown as '?' (a control character or invalid UTF-8). */
static size_t next_char(const unsigned char *s, size_t n, size_t i, int *subst)
{
    if (s[i] < 0x80) {
        *subst = s[i] < 0x20 || s[i] == 0x7f;
        return 1;
    }
    size_t l = utf8_printable(s + i, n - i);
    *subst = l == 0;
    return l ? l : 1;
}

/* Prints client text safely: control characters and invalid UTF-8 become
 * '?'.  Pads with spaces to `width` characters (0: no padding); cuts at
 * `max` characters, ending in "..." (0: no limit).  NULL prints "-". */
static void put_text(FILE *f, const char *str, int width, int max)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "-");
    size_t n = strlen((const char *)s), i;
    int chars = 0, subst, total = 0;
    for (i = 0; i < n; total++)
        i += next_char(s, n, i, &subst);
    int keep = max && total > max ? (max > 3 ? max - 3 : 0) : total;
    for (i = 0; i < n && chars < keep; chars++) {
        size_t l = next_char(s, n, i, &subst);
        if (subst)
            fputc('?', f);
        else
            fwrite(s + i, 1, l, f);
        i += l;
    }
    if (keep < total) {
        fputs("...", f);
        chars += 3;
    }
    for (; chars < width; chars++)
        fputc(' ', f);
}

static int text_width(const char *str)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "-");
    int w = 0;
    for (; *s; s++)
        if ((*s & 0xC0) != 0x80)
            w++;
    return w;
}

/* ms with at most three decimals, without the C library's locale. */
static void fmt_ms(double v, char *out, size_t cap)
{
    if (!(v == v) || v > 9e15 || v < -9e15) {
        snprintf(out, cap, "?");
        return;
    }
    long long t = (long long)(v * 1000 + (v < 0 ? -0.5 : 0.5));
    const char *sign = t < 0 ? "-" : "";
    unsigned long long a = t < 0 ? (unsigned long long)-t : (unsigned long long)t;
    unsigned long long ip = a / 1000, fp = a % 1000;
    if (!fp) {
        snprintf(out, cap, "%s%llu", sign, ip);
        return;
    }
    char frac[4];
    snprintf(frac, sizeof(frac), "%03llu", fp);
    for (int i = 2; i > 0 && frac[i] == '0'; i--)
        frac[i] = '\0';
    snprintf(out, cap, "%s%llu.%s", sign, ip, frac);
}

static void fmt_time(uint64_t ms, char *out, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        snprintf(out, cap, "?");
        return;
    }
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* ------------------------------------------------------------------ */
/* list                                                                 */
/* ------------------------------------------------------------------ */

typedef struct listing {
    const char *prefix;
    size_t prefix_len;
    sy_trace_rec *recs;
    size_t n;
    size_t ignored;
    char last_reason[256];
} listing;

/* The slot of a part key we asked for, or -1. */
static int key_slot(const listing *l, const char *key)
{
    size_t n = strlen(key);
    if (n != l->prefix_len + 12 || memcmp(key, l->prefix, l->prefix_len) != 0)
        return -1;
    const char *p = key + l->prefix_len;
    if (p[0] != ':' || strcmp(p + 7, ":part") != 0 || strspn(p + 1, "0123456789") < 6)
        return -1;
    return atoi(p + 1);
}

static int on_part(void *ctx, const char *key, const char *data, size_t len)
{
    listing *l = ctx;
    char err[200];
    int slot = key_slot(l, key);
    if (slot < 0)
        return 0; /* not one of ours: memcached would not send it */
    sy_trace_rec *r = grow((void **)&l->recs, &l->n, sizeof(*r));
    if (!r)
        return -1;
    if (sy_trace_rec_parse(data, len, r, err, sizeof(err)) < 0) {
        l->n--;
        l->ignored++;
        snprintf(l->last_reason, sizeof(l->last_reason), "%s: %s", key, err);
        return 0;
    }
    if ((int)sy_traces_slot(r->start) != slot) {
        snprintf(l->last_reason, sizeof(l->last_reason),
                 "%s: start %llu belongs to slot %06u", key, (unsigned long long)r->start,
                 sy_traces_slot(r->start));
        sy_trace_rec_free(r);
        l->n--;
        l->ignored++;
    }
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    const sy_trace_rec *x = a, *y = b;
    if (x->start != y->start)
        return x->start > y->start ? -1 : 1;
    return strcmp(x->trace ? x->trace : "", y->trace ? y->trace : "");
}

typedef struct total {
    const char *name;  /* borrowed from a record; NULL for "no path" */
    double count, total;
} total;

static int by_total(const void *a, const void *b)
{
    const total *x = a, *y = b;
    if (x->total != y->total)
        return x->total > y->total ? -1 : 1;
    return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

static int by_name(const void *a, const void *b)
{
    const total *x = a, *y = b;
    if (!x->name || !y->name)
        return !x->name - !y->name;
    return strcmp(x->name, y->name);
}

/* Sums rows with equal names (sorts by name first), then sorts by total. */
static size_t merge_totals(total *t, size_t n)
{
    if (!n)
        return 0;
    qsort(t, n, sizeof(*t), by_name);
    size_t w = 0;
    for (size_t i = 1; i < n; i++) {
        if (by_name(&t[w], &t[i]) == 0) {
            t[w].count += t[i].count;
            t[w].total += t[i].total;
        } else {
            t[++w] = t[i];
        }
    }
    n = w + 1;
    qsort(t, n, sizeof(*t), by_total);
    return n;
}

static int name_col(const total *t, size_t n, int min)
{
    int w = min;
    for (size_t i = 0; i < n; i++) {
        int tw = text_width(t[i].name);
        if (tw > w)
            w = tw;
    }
    return w > 60 ? 60 : w;
}

static void print_list(const listing *l, const char *addr, long limit)
{
    size_t shown = limit > 0 && (size_t)limit < l->n ? (size_t)limit : l->n;
    printf("%zu trace%s stored under %s at %s; %s%zu, newest first\n\n", l->n,
           l->n == 1 ? "" : "s", l->prefix, addr, shown < l->n ? "the latest " : "all ",
           shown);
    printf("%-24s  %-13s  %10s  %5s  %-6s  %-7s  %s\n", "START (UTC)", "START_MS", "DURATION",
           "SPANS", "STATUS", "METHOD", "PATH");
    for (size_t i = 0; i < shown; i++) {
        const sy_trace_rec *r = &l->recs[i];
        char when[80], dur[32];
        fmt_time(r->start, when, sizeof(when));
        fmt_ms(r->duration, dur, sizeof(dur));
        printf("%-24s  %-13llu  %7s ms  %5.0f  ", when, (unsigned long long)r->start, dur,
               r->span_count);
        put_text(stdout, r->status, 6, 6);
        fputs("  ", stdout);
        put_text(stdout, r->method, 7, 7);
        fputs("  ", stdout);
        put_text(stdout, r->path, 0, 120);
        fputc('\n', stdout);
    }

    /* totals over every record read, not only those listed */
    total *paths = calloc(l->n ? l->n : 1, sizeof(*paths));
    size_t nnames = 0;
    for (size_t i = 0; i < l->n; i++)
        nnames += l->recs[i].nstats;
    total *names = calloc(nnames ? nnames : 1, sizeof(*names));
    if (!paths || !names) {
        free(paths);
        free(names);
        fprintf(stderr, "switchyard traces: out of memory for the totals\n");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        paths[i] = (total){ l->recs[i].path, 1, l->recs[i].duration };
        for (size_t s = 0; s < l->recs[i].nstats; s++) {
            const sy_trace_stat *st = &l->recs[i].stats[s];
            names[k++] = (total){ st->name, st->count, st->total };
        }
    }
    size_t np = merge_totals(paths, l->n), nn = merge_totals(names, k);

    int w = name_col(paths, np, 4);
    printf("\nby path (over %zu trace%s)\n", l->n, l->n == 1 ? "" : "s");
    printf("%-*s  %7s  %12s  %10s\n", w, "PATH", "COUNT", "TOTAL_MS", "MEAN_MS");
    for (size_t i = 0; i < np; i++) {
        char tot[32], mean[32];
        fmt_ms(paths[i].total, tot, sizeof(tot));
        fmt_ms(paths[i].count ? paths[i].total / paths[i].count : 0, mean, sizeof(mean));
        put_text(stdout, paths[i].name, w, w);
        printf("  %7.0f  %12s  %10s\n", paths[i].count, tot, mean);
    }
    w = name_col(names, nn, 9);
    printf("\nby span name\n");
    printf("%-*s  %7s  %12s\n", w, "SPAN NAME", "COUNT", "TOTAL_MS");
    for (size_t i = 0; i < nn; i++) {
        char tot[32];
        fmt_ms(names[i].total, tot, sizeof(tot));
        put_text(stdout, names[i].name, w, w);
        printf("  %7.0f  %12s\n", names[i].count, tot);
    }
    free(paths);
    free(names);
}

static int do_list(const char *addr, const char *prefix, long limit)
{
    listing l = { .prefix = prefix, .prefix_len = strlen(prefix) };
    size_t cap = SLOTS * (l.prefix_len + 14) + 8;
    char *cmd = malloc(cap);
    mc m;
    int rc = 2;
    if (!cmd) {
        fprintf(stderr, "switchyard traces: out of memory\n");
        return 2;
    }
    size_t n = 0;
    memcpy(cmd, "get", 3);
    n = 3;
    for (unsigned s = 0; s < SLOTS; s++)
        n += (size_t)snprintf(cmd + n, cap - n, " %s:%06u:part", prefix, s * SLOT_MS);
    memcpy(cmd + n, "\r\n", 2);
    n += 2;

    size_t skipped = 0;
    if (mc_open(&m, addr) < 0 || mc_write(&m, cmd, n) < 0 ||
        mc_values(&m, on_part, &l, &skipped) < 0) {
        fprintf(stderr, "switchyard traces: %s\n", m.err);
        goto out;
    }
    if (l.n > 1)
        qsort(l.recs, l.n, sizeof(*l.recs), newest_first);
    if (l.n == 0)
        printf("no traces stored under %s at %s\n", prefix, addr);
    else
        print_list(&l, addr, limit);
    if (l.ignored)
        fprintf(stderr, "switchyard traces: %zu record%s ignored (last: %s)\n", l.ignored,
                l.ignored == 1 ? "" : "s", l.last_reason);
    if (skipped)
        fprintf(stderr, "switchyard traces: %zu record%s over %u bytes skipped\n", skipped,
                skipped == 1 ? "" : "s", MAX_VALUE);
    rc = 0;
out:
    mc_close(&m);
    for (size_t i = 0; i < l.n; i++)
        sy_trace_rec_free(&l.recs[i]);
    free(l.recs);
    free(cmd);
    return rc;
}

/* ------------------------------------------------------------------ */
/* show                                                                 */
/* ------------------------------------------------------------------ */

typedef struct fetched {
    char *data;
    size_t len;
    int found;
} fetched;

static int on_full(void *ctx, const char *key, const char *data, size_t len)
{
    fetched *f = ctx;
    if (f->found)
        return 0;
    f->data = malloc(len + 1);
    if (!f->data)
        return -1;
    memcpy(f->data, data, len + 1);
    f->len = len;
    f->found = 1;
    return 0;
}

static void print_trace(const sy_trace_rec *r)
{
    char when[80], dur[32];
    fmt_time(r->start, when, sizeof(when));
    fmt_ms(r->duration, dur, sizeof(dur));
    fputs("trace     ", stdout);
    put_text(stdout, r->trace, 0, 0);
    printf("\nstart     %s (%llu)\n", when, (unsigned long long)r->start);
    fputs("request   ", stdout);
    put_text(stdout, r->method, 0, 0);
    fputc(' ', stdout);
    put_text(stdout, r->path, 0, 0);
    fputs("  status ", stdout);
    put_text(stdout, r->status, 0, 0);
    printf("\nduration  %s ms%s\n", dur, r->root ? "" : " (no root span: the extent of the spans)");
    fputs("closed    ", stdout);
    put_text(stdout, r->closed, 0, 0);
    printf("\nspans     %zu stored, %.0f dropped\n\n", r->nspans, r->spans_dropped);

    int w = 4;
    for (size_t i = 0; i < r->nspans; i++) {
        int tw = text_width(r->spans[i].name);
        if (tw > w)
            w = tw;
    }
    if (w > 60)
        w = 60;
    printf("%10s  %10s  %-*s  %s\n", "OFFSET_MS", "DUR_MS", w, "NAME", "TAGS");
    for (size_t i = 0; i < r->nspans; i++) {
        const sy_trace_span *s = &r->spans[i];
        char off[32], d[32];
        fmt_ms(s->off, off, sizeof(off));
        fmt_ms(s->dur, d, sizeof(d));
        printf("%10s  %10s  ", off, d);
        if (!s->root && !s->ntags) {
            put_text(stdout, s->name, 0, w);
            fputc('\n', stdout);
            continue;
        }
        put_text(stdout, s->name, w, w);
        fputs("  ", stdout);
        if (s->root)
            fputs(s->ntags ? "root," : "root", stdout);
        for (size_t k = 0; k < s->ntags; k++) {
            if (k)
                fputc(',', stdout);
            put_text(stdout, s->tags[k], 0, 0);
        }
        fputc('\n', stdout);
    }
}

static int do_show(const char *addr, const char *prefix, uint64_t start)
{
    char cmd[600], key[300];
    mc m;
    fetched f = { 0 };
    size_t skipped = 0;
    int rc = 2;
    snprintf(key, sizeof(key), "%s:%06u:full", prefix, sy_traces_slot(start));
    snprintf(cmd, sizeof(cmd), "get %s\r\n", key);
    if (mc_open(&m, addr) < 0 || mc_write(&m, cmd, strlen(cmd)) < 0 ||
        mc_values(&m, on_full, &f, &skipped) < 0) {
        fprintf(stderr, "switchyard traces: %s\n", m.err);
        goto out;
    }
    rc = 1;
    if (!f.found) {
        printf("trace %llu is no longer stored (slot %06u is empty)\n", (unsigned long long)start,
               sy_traces_slot(start));
        goto out;
    }
    sy_trace_rec r;
    char err[256];
    if (sy_trace_rec_parse(f.data, f.len, &r, err, sizeof(err)) < 0) {
        printf("trace %llu is no longer stored (slot %06u holds a record that cannot be read: "
               "%s)\n", (unsigned long long)start, sy_traces_slot(start), err);
        goto out;
    }
    if (r.start != start) {
        printf("trace %llu is no longer stored (slot now holds %llu)\n",
               (unsigned long long)start, (unsigned long long)r.start);
    } else {
        print_trace(&r);
        rc = 0;
    }
    sy_trace_rec_free(&r);
out:
    mc_close(&m);
    free(f.data);
    return rc;
}

/* ------------------------------------------------------------------ */
/* command line                                                         */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: switchyard traces [--memcached HOST:PORT] [--prefix P] [--limit N]\n"
            "       switchyard traces [--memcached HOST:PORT] [--prefix P] show START_MS\n"
            "\n"
            "Reads the request traces that the memcache_traces sink stores in memcached.\n"
            "Without a command, lists the stored traces newest first (at most N, default\n"
            "%d; 0 for all), then totals per path and per span name over all of them.\n"
            "`show START_MS` prints every span of the trace that started at START_MS.\n"
            "\n"
            "  --memcached HOST:PORT  memcached's address (default %s)\n"
            "  --prefix P             the sink's key prefix (default \"%s\")\n"
            "  --limit N              traces to list\n"
            "\n"
            "Exit status: 0 done, 1 the trace is no longer stored, 2 an error.\n",
            DEFAULT_LIMIT, DEFAULT_ADDR, DEFAULT_PREFIX);
}

/* "--name VALUE" or "--name=VALUE": the value, advancing *i; NULL when
 * argv[*i] is not this option. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

static int whole(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 19)
        return -1;
    unsigned long long v = strtoull(s, NULL, 10);
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int sy_traces_main(int argc, char **argv)
{
    const char *addr = DEFAULT_ADDR, *prefix = DEFAULT_PREFIX, *show = NULL, *v;
    unsigned long long limit = DEFAULT_LIMIT, start = 0;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((v = opt_value(argc, argv, &i, "--memcached", &missing))) {
            addr = v;
        } else if ((v = opt_value(argc, argv, &i, "--prefix", &missing))) {
            prefix = v;
        } else if ((v = opt_value(argc, argv, &i, "--limit", &missing))) {
            if (whole(v, 1000000, &limit) < 0) {
                fprintf(stderr, "switchyard traces: --limit wants a whole number, not '%s'\n", v);
                return 2;
            }
        } else if (!missing && !strcmp(a, "show") && !show) {
            if (i + 1 >= argc) {
                fprintf(stderr, "switchyard traces: show wants START_MS\n");
                usage(stderr);
                return 2;
            }
            show = argv[++i];
            if (whole(show, 9007199254740992ULL, &start) < 0) {
                fprintf(stderr, "switchyard traces: START_MS is a start time in ms since the "
                        "epoch, as listed; not '%s'\n", show);
                return 2;
            }
        } else {
            fprintf(stderr, "switchyard traces: %s '%s'\n",
                    missing ? "no value for" : "unknown argument", a);
            usage(stderr);
            return 2;
        }
    }
    size_t plen = strlen(prefix);
    if (plen == 0 || plen > 200 || strpbrk(prefix, " \t\r\n")) {
        fprintf(stderr, "switchyard traces: --prefix must be 1 to 200 bytes without spaces\n");
        return 2;
    }
    for (size_t i = 0; i < plen; i++)
        if ((unsigned char)prefix[i] < 0x20 || prefix[i] == 0x7f) {
            fprintf(stderr, "switchyard traces: --prefix has a control character\n");
            return 2;
        }
    if (show)
        return do_show(addr, prefix, start);
    return do_list(addr, prefix, (long)limit);
}
