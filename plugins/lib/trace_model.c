/*
 * trace_model.c - JSON text, tag parsing and trace grouping for the
 * memcache_traces sink (slots and keys: trace_format.h).  See trace_model.h
 * for the calls and plugins/memcache_traces.c for the semantics.
 *
 * Open traces live in a chained hash table keyed by trace id and in one of
 * two FIFO lists: `open` (no root yet, in order of the first span, so the
 * head is the first to time out) and `closing` (root seen, in order of the
 * root, so the head is the first whose root wait ends).  Both orders hold
 * because every trace in a list got the same delay added to a clock that
 * only goes forward.  A closed trace moves to the `closed` FIFO until the
 * sink takes it.
 *
 * Each trace keeps its strings in one growing text buffer and its spans in
 * one growing array, so a span costs no allocation of its own; the memory
 * bound counts the capacity of both.
 */
#include "trace_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECENT_SIZE 16384 /* remembered recently closed ids (direct-mapped) */
#define TEXT_MIN 256
#define SPANS_MIN 8

/* --- keys --- */

int tm_key(char *buf, size_t cap, const char *prefix, uint64_t start_ms, const char *kind)
{
    int n = snprintf(buf, cap, TM_KEY_FMT, prefix, tm_slot(start_ms), kind);
    if (n < 0 || (size_t)n >= cap || n > TM_KEY_MAX)
        return -1;
    return n;
}

/* --- buffers --- */

void tm_buf_free(tm_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

void tm_buf_reset(tm_buf *b)
{
    b->len = 0;
    b->oom = 0;
}

static int buf_room(tm_buf *b, size_t n)
{
    if (b->oom)
        return 0;
    if (b->cap - b->len >= n)
        return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return 0;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void tm_buf_add(tm_buf *b, const void *s, size_t n)
{
    if (n && buf_room(b, n)) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

void tm_buf_str(tm_buf *b, const char *s)
{
    tm_buf_add(b, s, strlen(s));
}

void tm_buf_u64(tm_buf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    tm_buf_add(b, tmp, (size_t)n);
}

static void buf_num(tm_buf *b, double v, tm_fmt_fn fmt)
{
    char tmp[32];
    if (!isfinite(v)) /* never stored, but JSON has no NaN */
        v = 0;
    size_t n = fmt(v, tmp);
    tm_buf_add(b, tmp, n);
}

/* --- JSON strings --- */

void tm_json_str(tm_buf *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0; /* s[run..i) is plain text not yet copied */
    tm_buf_add(b, "\"", 1);
    while (i < n) {
        unsigned char c = s[i];
        char esc[8];
        size_t elen = 0;
        if (c >= 0x80) {
            size_t l = tm_utf8_len(s + i, n - i);
            if (l) {
                i += l;
                continue;
            }
            memcpy(esc, "\\ufffd", 6);
            elen = 6;
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            esc[0] = '\\';
            switch (c) {
            case '\n': esc[1] = 'n'; elen = 2; break;
            case '\r': esc[1] = 'r'; elen = 2; break;
            case '\t': esc[1] = 't'; elen = 2; break;
            case '\b': esc[1] = 'b'; elen = 2; break;
            case '\f': esc[1] = 'f'; elen = 2; break;
            default:
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                elen = 6;
            }
        } else {
            i++;
            continue;
        }
        tm_buf_add(b, s + run, i - run);
        tm_buf_add(b, esc, elen);
        run = ++i;
    }
    tm_buf_add(b, s + run, i - run);
    tm_buf_add(b, "\"", 1);
}

/* --- tags --- */

int tm_tag_next(const char *s, size_t n, size_t *pos, tm_tag *t)
{
    size_t i = *pos;
    while (i < n) {
        const char *start = s + i;
        const char *comma = memchr(start, ',', n - i);
        size_t len = comma ? (size_t)(comma - start) : n - i;
        i += len + (comma ? 1 : 0);
        if (len == 0)
            continue;
        const char *colon = memchr(start, ':', len);
        t->key = start;
        if (colon) {
            t->key_len = (size_t)(colon - start);
            t->value = colon + 1;
            t->value_len = len - t->key_len - 1;
            t->has_value = 1;
        } else {
            t->key_len = len;
            t->value = start + len;
            t->value_len = 0;
            t->has_value = 0;
        }
        *pos = i;
        return 1;
    }
    *pos = i;
    return 0;
}

static int tag_is(const tm_tag *t, const char *key)
{
    size_t n = strlen(key);
    return t->key_len == n && memcmp(t->key, key, n) == 0;
}

static int value_is(const tm_tag *t, const char *v)
{
    size_t n = strlen(v);
    return t->value_len == n && memcmp(t->value, v, n) == 0;
}

static int tag_is_root(const tm_tag *t)
{
    return tag_is(t, "root") &&
           (!t->has_value || value_is(t, "true") || value_is(t, "1") || value_is(t, "yes"));
}

int tm_tag_kept(const tm_tag *t)
{
    if (tag_is(t, "trace") && t->has_value)
        return 0;
    if (tag_is(t, "off") && t->has_value)
        return 0;
    return !tag_is_root(t);
}

int tm_parse_ms(const char *s, size_t n, double *out)
{
    size_t i = 0;
    double ip = 0, fp = 0, scale = 1;
    int digits = 0, fdigits = 0;
    if (i < n && s[i] == '+')
        i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
        ip = ip * 10 + (s[i] - '0');
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
            if (fdigits < 17) {
                fp = fp * 10 + (s[i] - '0');
                scale *= 10;
                fdigits++;
            }
    }
    if (i != n || digits == 0)
        return -1;
    double v = ip + fp / scale;
    if (!isfinite(v))
        return -1;
    *out = v;
    return 0;
}

void tm_parse_tags(const char *s, size_t n, tm_span_tags *out)
{
    tm_tag t;
    size_t pos = 0;
    memset(out, 0, sizeof(*out));
    while (tm_tag_next(s, n, &pos, &t)) {
        if (tag_is(&t, "trace") && t.has_value) {
            if (!out->trace && t.value_len) { /* the first one counts */
                out->trace = t.value;
                out->trace_len = t.value_len;
            }
        } else if (tag_is(&t, "off") && t.has_value) {
            double v;
            if (tm_parse_ms(t.value, t.value_len, &v) == 0) {
                out->off = v;
                out->off_bad = 0;
            } else {
                out->off = 0;
                out->off_bad = 1;
            }
        } else if (tag_is_root(&t)) {
            out->root = 1;
        } else if (tag_is(&t, "method") && t.has_value) {
            out->method = t.value;
            out->method_len = t.value_len;
        } else if (tag_is(&t, "path") && t.has_value) {
            out->path = t.value;
            out->path_len = t.value_len;
        } else if (tag_is(&t, "status") && t.has_value) {
            out->status = t.value;
            out->status_len = t.value_len;
        }
    }
}

/* --- traces --- */

enum { L_NONE, L_OPEN, L_CLOSING, L_CLOSED };

typedef struct field {
    uint32_t off, len;
    int set;
} field;

struct tm_trace {
    tm_trace *hnext;       /* hash chain */
    tm_trace *prev, *next; /* the list it is in */
    int list;
    uint64_t hash;
    uint64_t opened_mono, close_at;
    uint64_t opened_wall;  /* the start of a trace whose every span was dropped */
    uint32_t id_len;       /* the id is text[0..id_len) */
    tm_span *spans;
    uint32_t nspans, span_cap, seq;
    char *text;
    size_t text_len, text_cap;
    uint32_t dropped;
    int root_idx;          /* -1: no root yet */
    field method, path, status;
    int closed_by;
    uint64_t start_ms;
    int start_clamped;     /* the start estimate was outside its window */
    double start_claimed;  /* ... this many ms before its arrival */
    double duration;
    size_t bytes;          /* accounted memory */
};

typedef struct tlist {
    tm_trace *head, *tail;
} tlist;

typedef struct recent {
    uint64_t hash, until;
} recent;

struct tm_table {
    tm_limits lim;
    tm_trace **buckets;
    size_t nbuckets, count, spans, bytes;
    tlist open, closing, closed;
    recent *recent;
};

static uint64_t hash_id(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

static void list_push(tlist *l, tm_trace *tr, int which)
{
    tr->next = NULL;
    tr->prev = l->tail;
    if (l->tail)
        l->tail->next = tr;
    else
        l->head = tr;
    l->tail = tr;
    tr->list = which;
}

static void list_remove(tlist *l, tm_trace *tr)
{
    if (tr->prev)
        tr->prev->next = tr->next;
    else
        l->head = tr->next;
    if (tr->next)
        tr->next->prev = tr->prev;
    else
        l->tail = tr->prev;
    tr->prev = tr->next = NULL;
    tr->list = L_NONE;
}

static tlist *list_of(tm_table *t, tm_trace *tr)
{
    switch (tr->list) {
    case L_OPEN: return &t->open;
    case L_CLOSING: return &t->closing;
    case L_CLOSED: return &t->closed;
    default: return NULL;
    }
}

tm_table *tm_table_new(const tm_limits *lim)
{
    tm_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->lim = *lim;
    if (t->lim.max_spans == 0)
        t->lim.max_spans = 1;
    if (t->lim.max_open == 0)
        t->lim.max_open = 1;
    if (t->lim.root_wait_ms > t->lim.timeout_ms)
        t->lim.root_wait_ms = t->lim.timeout_ms;
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    t->recent = calloc(RECENT_SIZE, sizeof(*t->recent));
    if (!t->buckets || !t->recent) {
        free(t->buckets);
        free(t->recent);
        free(t);
        return NULL;
    }
    return t;
}

void tm_trace_free(tm_trace *tr)
{
    if (!tr)
        return;
    free(tr->spans);
    free(tr->text);
    free(tr);
}

void tm_table_free(tm_table *t)
{
    if (!t)
        return;
    tlist *lists[] = { &t->open, &t->closing, &t->closed };
    for (size_t i = 0; i < 3; i++) {
        while (lists[i]->head) {
            tm_trace *tr = lists[i]->head;
            list_remove(lists[i], tr);
            tm_trace_free(tr);
        }
    }
    free(t->buckets);
    free(t->recent);
    free(t);
}

static tm_trace *find(tm_table *t, uint64_t h, const char *id, size_t len)
{
    for (tm_trace *tr = t->buckets[h & (t->nbuckets - 1)]; tr; tr = tr->hnext)
        if (tr->hash == h && tr->id_len == len && memcmp(tr->text, id, len) == 0)
            return tr;
    return NULL;
}

/* Keeps the chains short: doubles the buckets when there are more traces
 * than buckets.  A failed allocation only leaves the chains longer. */
static void maybe_grow(tm_table *t)
{
    if (t->count < t->nbuckets || t->nbuckets > SIZE_MAX / 2 / sizeof(tm_trace *))
        return;
    size_t n = t->nbuckets * 2;
    tm_trace **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        tm_trace *tr = t->buckets[i];
        while (tr) {
            tm_trace *next = tr->hnext;
            tr->hnext = b[tr->hash & (n - 1)];
            b[tr->hash & (n - 1)] = tr;
            tr = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

static void unhash(tm_table *t, tm_trace *tr)
{
    tm_trace **pp = &t->buckets[tr->hash & (t->nbuckets - 1)];
    while (*pp && *pp != tr)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = tr->hnext;
    tr->hnext = NULL;
}

static int span_cmp(const void *a, const void *b)
{
    const tm_span *x = a, *y = b;
    if (x->root != y->root)
        return x->root ? -1 : 1;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The start estimate of one span: it was sent when it ended, so it
 * started its duration before it arrived, and the trace started its
 * offset before that.  Both numbers are the client's, so the estimate is
 * kept within [arrival - max_ms, arrival] (max_ms 0: only >= 0): a root
 * of 1e308 ms would otherwise start the trace in 1970, and a large off
 * would let a client pick whichever slot it likes to overwrite.  Sets
 * *clamped and *claimed (ms before arrival) when it had to move it. */
static double span_start(const tm_span *s, uint64_t max_ms, int *clamped, double *claimed)
{
    double arrival = (double)s->arrival_ms;
    double st = arrival - s->off - s->dur;
    double lo = max_ms && s->arrival_ms > max_ms ? (double)(s->arrival_ms - max_ms) : 0;
    if (st >= lo && st <= arrival)
        return st;
    *clamped = 1;
    *claimed = s->off + s->dur;
    return st > arrival ? arrival : lo; /* and a NaN, were there one, to lo */
}

/* Fixes the trace's start and duration and the order of its spans. */
static void finish(tm_table *t, tm_trace *tr)
{
    double start = (double)tr->opened_wall, dur = 0;
    uint64_t max_ms = t->lim.max_trace_ms;
    if (tr->root_idx >= 0) {
        const tm_span *r = &tr->spans[tr->root_idx];
        start = span_start(r, max_ms, &tr->start_clamped, &tr->start_claimed);
        dur = r->dur;
    } else {
        for (uint32_t i = 0; i < tr->nspans; i++) {
            const tm_span *s = &tr->spans[i];
            double st = span_start(s, max_ms, &tr->start_clamped, &tr->start_claimed);
            double end = s->off + s->dur;
            if (i == 0 || st < start)
                start = st;
            if (end > dur)
                dur = end;
        }
    }
    tr->start_ms = start > 0 ? (uint64_t)start : 0;
    tr->duration = dur;
    if (tr->nspans > 1)
        qsort(tr->spans, tr->nspans, sizeof(*tr->spans), span_cmp);
    if (tr->root_idx >= 0)
        tr->root_idx = 0;
}

static void close_trace(tm_table *t, tm_trace *tr, int reason, uint64_t now_mono)
{
    list_remove(list_of(t, tr), tr);
    unhash(t, tr);
    t->count--;
    t->spans -= tr->nspans;
    t->bytes -= tr->bytes;
    tr->closed_by = reason;
    finish(t, tr);
    recent *r = &t->recent[tr->hash & (RECENT_SIZE - 1)];
    r->hash = tr->hash;
    r->until = now_mono + t->lim.timeout_ms;
    list_push(&t->closed, tr, L_CLOSED);
}

/* Closes the oldest trace other than `keep`: one whose root was seen
 * first (it is complete), else the one open longest.  0 when none. */
static int evict_one(tm_table *t, tm_trace *keep, uint64_t now_mono)
{
    tm_trace *victim = t->closing.head;
    if (victim && victim == keep)
        victim = victim->next;
    if (!victim) {
        victim = t->open.head;
        if (victim && victim == keep)
            victim = victim->next;
    }
    if (!victim)
        return 0;
    close_trace(t, victim, TM_CLOSED_EVICTED, now_mono);
    return 1;
}

/* Makes room for `need` more accounted bytes by closing older traces. */
static int make_room(tm_table *t, size_t need, tm_trace *keep, uint64_t now_mono)
{
    while (t->bytes + need > t->lim.max_bytes)
        if (!evict_one(t, keep, now_mono))
            return -1;
    return 0;
}

static int grow_text(tm_table *t, tm_trace *tr, size_t more, uint64_t now_mono)
{
    if (tr->text_cap - tr->text_len >= more)
        return 0;
    if (more > UINT32_MAX || tr->text_len + more > UINT32_MAX)
        return -1;
    size_t cap = tr->text_cap ? tr->text_cap : TEXT_MIN;
    while (cap - tr->text_len < more)
        cap *= 2;
    if (make_room(t, cap - tr->text_cap, tr, now_mono) < 0)
        return -1;
    char *p = realloc(tr->text, cap);
    if (!p)
        return -1;
    t->bytes += cap - tr->text_cap;
    tr->bytes += cap - tr->text_cap;
    tr->text = p;
    tr->text_cap = cap;
    return 0;
}

static int grow_spans(tm_table *t, tm_trace *tr, uint64_t now_mono)
{
    if (tr->nspans < tr->span_cap)
        return 0;
    uint32_t cap = tr->span_cap ? tr->span_cap * 2 : SPANS_MIN;
    if (cap > t->lim.max_spans)
        cap = t->lim.max_spans;
    if (cap <= tr->span_cap)
        return -1;
    size_t more = (size_t)(cap - tr->span_cap) * sizeof(tm_span);
    if (make_room(t, more, tr, now_mono) < 0)
        return -1;
    tm_span *p = realloc(tr->spans, (size_t)cap * sizeof(tm_span));
    if (!p)
        return -1;
    t->bytes += more;
    tr->bytes += more;
    tr->spans = p;
    tr->span_cap = cap;
    return 0;
}

static tm_trace *open_trace(tm_table *t, uint64_t h, const char *id, size_t len,
                            uint64_t now_wall, uint64_t now_mono)
{
    if (t->count >= t->lim.max_open)
        evict_one(t, NULL, now_mono);
    if (make_room(t, sizeof(tm_trace), NULL, now_mono) < 0)
        return NULL;
    tm_trace *tr = calloc(1, sizeof(*tr));
    if (!tr)
        return NULL;
    tr->hash = h;
    tr->root_idx = -1;
    tr->opened_mono = now_mono;
    tr->opened_wall = now_wall;
    tr->bytes = sizeof(*tr);
    t->bytes += tr->bytes;
    t->count++;
    tr->hnext = t->buckets[h & (t->nbuckets - 1)];
    t->buckets[h & (t->nbuckets - 1)] = tr;
    list_push(&t->open, tr, L_OPEN);
    if (grow_text(t, tr, len, now_mono) < 0) {
        /* undo: nothing was stored in it */
        list_remove(&t->open, tr);
        unhash(t, tr);
        t->count--;
        t->bytes -= tr->bytes;
        tm_trace_free(tr);
        return NULL;
    }
    memcpy(tr->text, id, len);
    tr->text_len = len;
    tr->id_len = (uint32_t)len;
    maybe_grow(t);
    return tr;
}

static void text_put(tm_trace *tr, const void *s, size_t n)
{
    memcpy(tr->text + tr->text_len, s, n);
    tr->text_len += n;
}

static void set_field(tm_trace *tr, field *f, const char *s, size_t n)
{
    if (!s)
        return;
    if (n > TM_FIELD_MAX)
        n = TM_FIELD_MAX;
    f->off = (uint32_t)tr->text_len;
    f->len = (uint32_t)n;
    f->set = 1;
    text_put(tr, s, n);
}

int tm_table_add(tm_table *t, const char *name, size_t name_len, const char *tags,
                 size_t tags_len, double dur, uint64_t now_wall, uint64_t now_mono)
{
    tm_span_tags st;
    tm_parse_tags(tags, tags_len, &st);
    if (!st.trace)
        return TM_NO_TRACE;
    if (st.trace_len > TM_ID_MAX || !isfinite(dur) || dur < 0)
        return TM_BAD;
    const char *semi = memchr(name, ';', name_len);
    if (semi)
        name_len = (size_t)(semi - name);

    uint64_t h = hash_id(st.trace, st.trace_len);
    tm_trace *tr = find(t, h, st.trace, st.trace_len);
    if (!tr) {
        recent *r = &t->recent[h & (RECENT_SIZE - 1)];
        if (r->hash == h && r->until > now_mono)
            return TM_LATE;
        tr = open_trace(t, h, st.trace, st.trace_len, now_wall, now_mono);
        if (!tr)
            return TM_NO_MEMORY;
    }
    int is_root = st.root && tr->root_idx < 0;
    /* One place is kept for the root, which usually arrives last. */
    uint32_t limit = t->lim.max_spans;
    if (!is_root && tr->root_idx < 0 && limit > 1)
        limit--;
    if (tr->nspans >= limit) {
        tr->dropped++;
        return TM_OVER_SPANS;
    }

    size_t need = name_len;
    tm_tag tag;
    size_t pos = 0;
    while (tm_tag_next(tags, tags_len, &pos, &tag))
        if (tm_tag_kept(&tag))
            need += (size_t)(tag.value + tag.value_len - tag.key) + 1;
    if (is_root) {
        need += st.method_len < TM_FIELD_MAX ? st.method_len : TM_FIELD_MAX;
        need += st.path_len < TM_FIELD_MAX ? st.path_len : TM_FIELD_MAX;
        need += st.status_len < TM_FIELD_MAX ? st.status_len : TM_FIELD_MAX;
    }
    if (grow_spans(t, tr, now_mono) < 0 || grow_text(t, tr, need, now_mono) < 0) {
        tr->dropped++;
        return TM_NO_MEMORY;
    }

    tm_span *s = &tr->spans[tr->nspans];
    memset(s, 0, sizeof(*s));
    s->name_off = (uint32_t)tr->text_len;
    s->name_len = (uint32_t)name_len;
    text_put(tr, name, name_len);
    s->tags_off = (uint32_t)tr->text_len;
    pos = 0;
    while (tm_tag_next(tags, tags_len, &pos, &tag)) {
        if (!tm_tag_kept(&tag))
            continue;
        if (tr->text_len > s->tags_off)
            text_put(tr, ",", 1);
        text_put(tr, tag.key, (size_t)(tag.value + tag.value_len - tag.key));
    }
    s->tags_len = (uint32_t)(tr->text_len - s->tags_off);
    s->off = st.off;
    s->dur = dur;
    s->arrival_ms = now_wall;
    s->seq = tr->seq++;
    s->root = (uint8_t)is_root;
    if (is_root) {
        tr->root_idx = (int)tr->nspans;
        set_field(tr, &tr->method, st.method, st.method_len);
        set_field(tr, &tr->path, st.path, st.path_len);
        set_field(tr, &tr->status, st.status, st.status_len);
        tr->close_at = now_mono + t->lim.root_wait_ms;
        list_remove(&t->open, tr);
        list_push(&t->closing, tr, L_CLOSING);
    }
    tr->nspans++;
    t->spans++;
    return TM_ADDED;
}

void tm_table_expire(tm_table *t, uint64_t now_mono)
{
    while (t->closing.head && t->closing.head->close_at <= now_mono)
        close_trace(t, t->closing.head, TM_CLOSED_ROOT, now_mono);
    while (t->open.head && t->open.head->opened_mono + t->lim.timeout_ms <= now_mono)
        close_trace(t, t->open.head, TM_CLOSED_TIMEOUT, now_mono);
}

void tm_table_close_all(tm_table *t, uint64_t now_mono)
{
    while (t->closing.head)
        close_trace(t, t->closing.head, TM_CLOSED_ROOT, now_mono);
    while (t->open.head)
        close_trace(t, t->open.head, TM_CLOSED_SHUTDOWN, now_mono);
}

uint64_t tm_table_next_deadline(const tm_table *t)
{
    uint64_t d = 0;
    if (t->closing.head)
        d = t->closing.head->close_at;
    if (t->open.head) {
        uint64_t o = t->open.head->opened_mono + t->lim.timeout_ms;
        if (!d || o < d)
            d = o;
    }
    return d;
}

tm_trace *tm_table_pop_closed(tm_table *t)
{
    tm_trace *tr = t->closed.head;
    if (tr)
        list_remove(&t->closed, tr);
    return tr;
}

size_t tm_table_open(const tm_table *t)
{
    return t->count;
}

size_t tm_table_open_spans(const tm_table *t)
{
    return t->spans;
}

size_t tm_table_bytes(const tm_table *t)
{
    return t->bytes;
}

/* --- read access --- */

const char *tm_close_reason_name(int reason)
{
    switch (reason) {
    case TM_CLOSED_ROOT: return "root";
    case TM_CLOSED_TIMEOUT: return "timeout";
    case TM_CLOSED_EVICTED: return "evicted";
    case TM_CLOSED_SHUTDOWN: return "shutdown";
    default: return "?";
    }
}

const char *tm_trace_id(const tm_trace *t, size_t *len)
{
    *len = t->id_len;
    return t->text;
}

uint64_t tm_trace_start(const tm_trace *t)
{
    return t->start_ms;
}

int tm_trace_start_clamped(const tm_trace *t, double *claimed_ms)
{
    if (claimed_ms)
        *claimed_ms = t->start_claimed;
    return t->start_clamped;
}

double tm_trace_duration(const tm_trace *t)
{
    return t->duration;
}

uint32_t tm_trace_span_count(const tm_trace *t)
{
    return t->nspans;
}

uint32_t tm_trace_spans_dropped(const tm_trace *t)
{
    return t->dropped;
}

int tm_trace_has_root(const tm_trace *t)
{
    return t->root_idx >= 0;
}

int tm_trace_closed_by(const tm_trace *t)
{
    return t->closed_by;
}

const tm_span *tm_trace_span(const tm_trace *t, uint32_t i)
{
    return i < t->nspans ? &t->spans[i] : NULL;
}

const char *tm_trace_text(const tm_trace *t)
{
    return t->text;
}

/* --- records --- */

static void json_field(tm_buf *b, const tm_trace *tr, const char *key, const field *f)
{
    tm_buf_str(b, ",\"");
    tm_buf_str(b, key);
    tm_buf_str(b, "\":");
    if (f->set)
        tm_json_str(b, tr->text + f->off, f->len);
    else
        tm_buf_str(b, "null");
}

/* The members both records share, after the opening brace. */
static void json_head(tm_buf *b, const tm_trace *tr, tm_fmt_fn fmt)
{
    tm_buf_str(b, "{\"version\":");
    tm_buf_u64(b, TM_VERSION);
    tm_buf_str(b, ",\"trace\":");
    tm_json_str(b, tr->text, tr->id_len);
    tm_buf_str(b, ",\"start\":");
    tm_buf_u64(b, tr->start_ms);
    tm_buf_str(b, ",\"duration\":");
    buf_num(b, tr->duration, fmt);
    json_field(b, tr, "method", &tr->method);
    json_field(b, tr, "path", &tr->path);
    json_field(b, tr, "status", &tr->status);
    tm_buf_str(b, ",\"root\":");
    tm_buf_str(b, tr->root_idx >= 0 ? "true" : "false");
    tm_buf_str(b, ",\"closed\":\"");
    tm_buf_str(b, tm_close_reason_name(tr->closed_by));
    tm_buf_str(b, "\"");
}

static void json_span(tm_buf *b, const tm_trace *tr, const tm_span *s, tm_fmt_fn fmt)
{
    tm_buf_str(b, "{\"name\":");
    tm_json_str(b, tr->text + s->name_off, s->name_len);
    tm_buf_str(b, ",\"off\":");
    buf_num(b, s->off, fmt);
    tm_buf_str(b, ",\"dur\":");
    buf_num(b, s->dur, fmt);
    if (s->root)
        tm_buf_str(b, ",\"root\":true");
    tm_buf_str(b, ",\"tags\":[");
    tm_tag t;
    size_t pos = 0, n = 0;
    const char *tags = tr->text + s->tags_off;
    while (tm_tag_next(tags, s->tags_len, &pos, &t)) {
        if (n++)
            tm_buf_str(b, ",");
        tm_json_str(b, t.key, (size_t)(t.value + t.value_len - t.key));
    }
    tm_buf_str(b, "]}");
}

/* Room kept for what closes a record after the last list element. */
#define TAIL_ROOM 64

int tm_trace_json_full(const tm_trace *tr, tm_buf *b, size_t max_len, tm_fmt_fn fmt,
                       uint32_t *written)
{
    size_t start = b->len;
    uint32_t n = 0;
    json_head(b, tr, fmt);
    tm_buf_str(b, ",\"spans\":[");
    if (b->oom || b->len - start + TAIL_ROOM > max_len) {
        b->len = start;
        return -1;
    }
    for (uint32_t i = 0; i < tr->nspans; i++) {
        size_t before = b->len;
        if (n)
            tm_buf_str(b, ",");
        json_span(b, tr, &tr->spans[i], fmt);
        if (b->oom)
            break;
        if (b->len - start + TAIL_ROOM > max_len) {
            b->len = before;
            break; /* later spans would not fit either, as a rule */
        }
        n++;
    }
    tm_buf_str(b, "],\"span_count\":");
    tm_buf_u64(b, n);
    tm_buf_str(b, ",\"spans_dropped\":");
    tm_buf_u64(b, (uint64_t)tr->dropped + (tr->nspans - n));
    tm_buf_str(b, "}");
    if (b->oom) {
        b->len = start;
        return -1;
    }
    if (written)
        *written = n;
    return 0;
}

typedef struct name_ref {
    const char *name;
    uint32_t len;
    double dur;
} name_ref;

static int name_cmp(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

int tm_trace_json_part(const tm_trace *tr, tm_buf *b, size_t max_len, tm_fmt_fn fmt)
{
    size_t start = b->len;
    int truncated = 0;
    json_head(b, tr, fmt);
    tm_buf_str(b, ",\"span_count\":");
    tm_buf_u64(b, tr->nspans);
    tm_buf_str(b, ",\"spans_dropped\":");
    tm_buf_u64(b, tr->dropped);
    tm_buf_str(b, ",\"stats\":[");
    if (b->oom || b->len - start + TAIL_ROOM > max_len) {
        b->len = start;
        return -1;
    }
    name_ref *refs = tr->nspans ? malloc(tr->nspans * sizeof(*refs)) : NULL;
    if (tr->nspans && !refs) {
        b->len = start;
        return -1;
    }
    for (uint32_t i = 0; i < tr->nspans; i++) {
        refs[i].name = tr->text + tr->spans[i].name_off;
        refs[i].len = tr->spans[i].name_len;
        refs[i].dur = tr->spans[i].dur;
    }
    if (tr->nspans > 1)
        qsort(refs, tr->nspans, sizeof(*refs), name_cmp);
    uint32_t groups = 0;
    for (uint32_t i = 0; i < tr->nspans;) {
        uint32_t j = i;
        double total = 0;
        while (j < tr->nspans && name_cmp(&refs[i], &refs[j]) == 0)
            total += refs[j++].dur;
        size_t before = b->len;
        if (groups)
            tm_buf_str(b, ",");
        tm_buf_str(b, "{\"name\":");
        tm_json_str(b, refs[i].name, refs[i].len);
        tm_buf_str(b, ",\"count\":");
        tm_buf_u64(b, j - i);
        tm_buf_str(b, ",\"total\":");
        buf_num(b, total, fmt);
        tm_buf_str(b, "}");
        if (b->oom)
            break;
        if (b->len - start + TAIL_ROOM > max_len) {
            b->len = before;
            truncated = 1;
            break;
        }
        groups++;
        i = j;
    }
    free(refs);
    tm_buf_str(b, "],\"stats_truncated\":");
    tm_buf_str(b, truncated ? "true" : "false");
    tm_buf_str(b, "}");
    if (b->oom) {
        b->len = start;
        return -1;
    }
    return 0;
}
