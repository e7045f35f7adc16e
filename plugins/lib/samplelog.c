/*
 * samplelog.c - see samplelog.h.  Entries are appended to a list of
 * chunks, each the fixed part followed by the name, text and tags,
 * 8-byte aligned; release and take walk from the front.
 */
#include "samplelog.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES (256 * 1024)
#define TAKE_SAMPLES 2048

typedef struct entry {
    uint64_t seq;
    int64_t ts_ms;
    double value, rate;
    uint32_t name_len, text_len, tags_len;
    uint8_t type, is_delta;
    char data[]; /* name, text, tags */
} entry;

typedef struct chunk {
    struct chunk *next;
    size_t size, head, tail; /* entries live in data[head, tail) */
    char data[];
} chunk;

struct samplelog {
    chunk *first, *last;
    size_t count, bytes, max_bytes;
};

static size_t entry_size(size_t text)
{
    return (sizeof(entry) + text + 7) & ~(size_t)7;
}

size_t samplelog_entry_bytes(const sy_sample *x)
{
    return entry_size((size_t)x->name_len + x->text_len + x->tags_len);
}

samplelog *samplelog_new(size_t max_bytes)
{
    samplelog *l = calloc(1, sizeof(*l));
    if (l)
        l->max_bytes = max_bytes;
    return l;
}

static void free_chunks(samplelog *l)
{
    while (l->first) {
        chunk *c = l->first;
        l->first = c->next;
        free(c);
    }
    l->last = NULL;
    l->count = l->bytes = 0;
}

void samplelog_free(samplelog *l)
{
    if (!l)
        return;
    free_chunks(l);
    free(l);
}

int samplelog_add(samplelog *l, uint64_t seq, const sy_sample *x, int64_t ts_ms)
{
    size_t need = samplelog_entry_bytes(x);
    if (l->bytes + need > l->max_bytes)
        return -1;
    chunk *c = l->last;
    if (!c || c->size - c->tail < need) {
        size_t size = need > CHUNK_BYTES ? need : CHUNK_BYTES;
        chunk *n = malloc(sizeof(*n) + size);
        if (!n)
            return -1;
        n->next = NULL;
        n->size = size;
        n->head = n->tail = 0;
        if (c)
            c->next = n;
        else
            l->first = n;
        l->last = c = n;
    }
    entry *e = (entry *)(void *)(c->data + c->tail);
    e->seq = seq;
    e->ts_ms = ts_ms;
    e->value = x->value;
    e->rate = x->rate;
    e->name_len = x->name_len;
    e->text_len = x->text_len;
    e->tags_len = x->tags_len;
    e->type = x->type;
    e->is_delta = x->is_delta;
    memcpy(e->data, x->name, x->name_len);
    memcpy(e->data + x->name_len, x->text, x->text_len);
    memcpy(e->data + x->name_len + x->text_len, x->tags, x->tags_len);
    c->tail += need;
    l->count++;
    l->bytes += need;
    return 0;
}

static size_t size_of(const entry *e)
{
    return entry_size((size_t)e->name_len + e->text_len + e->tags_len);
}

void samplelog_release(samplelog *l, uint64_t seq)
{
    chunk *c;
    while ((c = l->first)) {
        while (c->head < c->tail) {
            entry *e = (entry *)(void *)(c->data + c->head);
            if (e->seq > seq)
                return;
            size_t sz = size_of(e);
            c->head += sz;
            l->count--;
            l->bytes -= sz;
        }
        if (c == l->last) {
            c->head = c->tail = 0; /* keep the last chunk for reuse */
            return;
        }
        l->first = c->next;
        free(c);
    }
}

size_t samplelog_take(samplelog *l, samplelog_keep_fn keep, void *ctx)
{
    sy_sample *s = malloc(TAKE_SAMPLES * sizeof(*s));
    int64_t *ts = malloc(TAKE_SAMPLES * sizeof(*ts));
    size_t total = 0, n = 0;
    if (!s || !ts) {
        free(s);
        free(ts);
        return 0;
    }
    for (chunk *c = l->first; c; c = c->next) {
        for (size_t off = c->head; off < c->tail; off += size_of((entry *)(void *)(c->data + off))) {
            const entry *e = (const entry *)(const void *)(c->data + off);
            if (n == TAKE_SAMPLES) {
                sy_sample_batch b = { .samples = s, .count = n, .timestamps_ms = ts };
                keep(ctx, &b);
                total += n;
                n = 0;
            }
            ts[n] = e->ts_ms;
            s[n++] = (sy_sample){ .name = e->data, .name_len = e->name_len,
                                  .text = e->data + e->name_len, .text_len = e->text_len,
                                  .tags = e->data + e->name_len + e->text_len,
                                  .tags_len = e->tags_len, .value = e->value, .rate = e->rate,
                                  .type = e->type, .is_delta = e->is_delta };
        }
    }
    if (n) {
        sy_sample_batch b = { .samples = s, .count = n, .timestamps_ms = ts };
        keep(ctx, &b);
        total += n;
    }
    free(s);
    free(ts);
    free_chunks(l);
    return total;
}

size_t samplelog_count(const samplelog *l)
{
    return l->count;
}

size_t samplelog_bytes(const samplelog *l)
{
    return l->bytes;
}
