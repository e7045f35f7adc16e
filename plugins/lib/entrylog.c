/*
 * entrylog.c - see entrylog.h.
 */
#include "entrylog.h"

#include <stdlib.h>

#define CHUNK_BYTES (256 * 1024)

struct entrylog_chunk {
    entrylog_chunk *next;
    size_t size, head, tail; /* entries live in data[head, tail) */
    _Alignas(8) char data[];
};

void *entrylog_append(entrylog *l, size_t bytes)
{
    size_t need = entrylog_size(bytes);
    entrylog_chunk *c = l->last;
    if (!c || c->size - c->tail < need) {
        size_t size = need > CHUNK_BYTES ? need : CHUNK_BYTES;
        entrylog_chunk *n = malloc(sizeof(*n) + size);
        if (!n)
            return NULL;
        n->next = NULL;
        n->size = size;
        n->head = n->tail = 0;
        if (c)
            c->next = n;
        else
            l->first = n;
        l->last = c = n;
    }
    void *e = c->data + c->tail;
    c->tail += need;
    l->count++;
    l->bytes += need;
    return e;
}

void *entrylog_at(const entrylog *l, entrylog_pos *p)
{
    entrylog_chunk *c = p->chunk ? p->chunk : l->first;
    size_t off = p->chunk ? p->off : (c ? c->head : 0);
    while (c && off >= c->tail) {
        c = c->next;
        off = c ? c->head : 0;
    }
    p->chunk = c;
    p->off = off;
    return c ? c->data + off : NULL;
}

void entrylog_next(entrylog_pos *p, size_t bytes)
{
    p->off += entrylog_size(bytes);
}

void *entrylog_front(const entrylog *l)
{
    entrylog_pos p = { 0 };
    return entrylog_at(l, &p);
}

void entrylog_pop(entrylog *l, size_t bytes)
{
    entrylog_chunk *c;
    while ((c = l->first) && c->head >= c->tail && c != l->last) {
        l->first = c->next;
        free(c);
    }
    if (!c)
        return;
    size_t sz = entrylog_size(bytes);
    c->head += sz;
    l->count--;
    l->bytes -= sz;
    if (c->head < c->tail)
        return;
    if (c == l->last) {
        c->head = c->tail = 0; /* the last chunk is kept for reuse */
        return;
    }
    l->first = c->next;
    free(c);
}

void entrylog_clear(entrylog *l)
{
    while (l->first) {
        entrylog_chunk *c = l->first;
        l->first = c->next;
        free(c);
    }
    l->last = NULL;
    l->count = l->bytes = 0;
}
