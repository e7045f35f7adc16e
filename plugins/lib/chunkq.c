/* chunkq.c - see chunkq.h. */
#include "chunkq.h"

#include <stdlib.h>

char *chunkq_grow(chunkq *q, size_t len)
{
    chunkq_chunk *t = q->tail;
    chunkq_chunk *c;
    if (q->spare && q->spare->size >= len) {
        c = q->spare;
        q->spare = NULL;
    } else {
        size_t size = len > CHUNKQ_SIZE ? len : CHUNKQ_SIZE;
        c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->size = size;
    }
    c->next = NULL;
    c->start = c->end = 0;
    if (t)
        t->next = c;
    else
        q->head = c;
    q->tail = c;
    return c->data;
}

void chunkq_drop_front(chunkq *q, size_t n)
{
    q->bytes -= n;
    while (n && q->head) {
        chunkq_chunk *c = q->head;
        size_t avail = c->end - c->start;
        if (n < avail) {
            c->start += n;
            return;
        }
        n -= avail;
        if (c == q->tail) {
            c->start = c->end = 0;
            return;
        }
        q->head = c->next;
        if (!q->spare && c->size == CHUNKQ_SIZE)
            q->spare = c;
        else
            free(c);
    }
}

void chunkq_clear(chunkq *q)
{
    while (q->head) {
        chunkq_chunk *c = q->head;
        q->head = c->next;
        free(c);
    }
    q->tail = NULL;
    free(q->spare);
    q->spare = NULL;
    q->bytes = 0;
}
