/*
 * keeplog.c - see keeplog.h.  Entries are appended to a list of chunks,
 * each entry the fixed part and its NUL-terminated name, 8-byte aligned.
 */
#include "keeplog.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES (256 * 1024)
#define TAKE_VALUES 2048

typedef struct entry {
    uint64_t start, end;
    int64_t ts;
    double value;
    uint32_t name_len;
    uint8_t kind;
    char name[];
} entry;

typedef struct chunk {
    struct chunk *next;
    size_t size, head, tail; /* entries live in data[head, tail) */
    char data[];
} chunk;

struct keeplog {
    chunk *first, *last;
    size_t count, bytes;
};

static size_t entry_size(uint32_t name_len)
{
    return (sizeof(entry) + name_len + 1 + 7) & ~(size_t)7;
}

keeplog *keeplog_new(void)
{
    return calloc(1, sizeof(keeplog));
}

static void free_chunks(keeplog *k)
{
    while (k->first) {
        chunk *c = k->first;
        k->first = c->next;
        free(c);
    }
    k->last = NULL;
    k->count = k->bytes = 0;
}

void keeplog_free(keeplog *k)
{
    if (!k)
        return;
    free_chunks(k);
    free(k);
}

int keeplog_add(keeplog *k, int64_t ts, const sy_metric *m, uint64_t start, uint64_t end)
{
    size_t need = entry_size(m->name_len);
    chunk *c = k->last;
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
            k->first = n;
        k->last = c = n;
    }
    entry *e = (entry *)(void *)(c->data + c->tail);
    e->start = start;
    e->end = end;
    e->ts = ts;
    e->value = m->value;
    e->name_len = m->name_len;
    e->kind = m->kind;
    memcpy(e->name, m->name, m->name_len);
    e->name[m->name_len] = '\0';
    c->tail += need;
    k->count++;
    k->bytes += need;
    return 0;
}

void keeplog_release(keeplog *k, uint64_t done)
{
    chunk *c;
    while ((c = k->first)) {
        while (c->head < c->tail) {
            entry *e = (entry *)(void *)(c->data + c->head);
            if (e->end > done)
                return;
            size_t sz = entry_size(e->name_len);
            c->head += sz;
            k->count--;
            k->bytes -= sz;
        }
        if (c == k->last) {
            c->head = c->tail = 0; /* keep the last chunk for reuse */
            return;
        }
        k->first = c->next;
        free(c);
    }
}

int keeplog_covers(const keeplog *k, keeplog_cursor *cur, uint64_t start, uint64_t end)
{
    chunk *c = cur->chunk ? cur->chunk : k->first;
    size_t off = cur->chunk ? cur->off : (c ? c->head : 0);
    while (c) {
        if (off >= c->tail) {
            c = c->next;
            off = c ? c->head : 0;
            continue;
        }
        entry *e = (entry *)(void *)(c->data + off);
        if (e->end > start) {
            cur->chunk = c;
            cur->off = off;
            return e->start <= start && end <= e->end;
        }
        off += entry_size(e->name_len);
    }
    cur->chunk = NULL;
    cur->off = 0;
    return 0;
}

size_t keeplog_take(keeplog *k, keeplog_keep_fn keep, void *ctx)
{
    sy_metric *m = malloc(TAKE_VALUES * sizeof(*m));
    size_t total = 0, n = 0;
    int64_t ts = 0;
    if (!m)
        return 0;
    for (chunk *c = k->first; c; c = c->next) {
        for (size_t off = c->head; off < c->tail;) {
            entry *e = (entry *)(void *)(c->data + off);
            if (n && (n == TAKE_VALUES || e->ts != ts)) {
                sy_metric_batch b = { .metrics = m, .count = n, .timestamp = ts };
                keep(ctx, &b);
                total += n;
                n = 0;
            }
            ts = e->ts;
            m[n++] = (sy_metric){ .name = e->name, .name_len = e->name_len, .kind = e->kind,
                                  .value = e->value };
            off += entry_size(e->name_len);
        }
    }
    if (n) {
        sy_metric_batch b = { .metrics = m, .count = n, .timestamp = ts };
        keep(ctx, &b);
        total += n;
    }
    free(m);
    free_chunks(k);
    return total;
}

size_t keeplog_count(const keeplog *k)
{
    return k->count;
}

size_t keeplog_bytes(const keeplog *k)
{
    return k->bytes;
}
