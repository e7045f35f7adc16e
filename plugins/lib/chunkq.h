/*
 * chunkq.h - a byte queue of whole lines in a list of chunks, the storage
 * under lib/netq (TCP) and the repeater's UDP sender.  A reservation is
 * always contiguous, so a line never spans two chunks: a writer can send
 * from a chunk without joining pieces.  The bound on the queue is the
 * caller's (it knows what it counts); chunkq only keeps the bytes.
 *
 * Readers walk the chunks from head: the bytes of chunk c waiting to be
 * sent are c->data[c->start .. c->end).
 */
#ifndef SY_PLUGIN_CHUNKQ_H
#define SY_PLUGIN_CHUNKQ_H

#include <stddef.h>

#define CHUNKQ_SIZE (64 * 1024)

typedef struct chunkq_chunk {
    struct chunkq_chunk *next;
    size_t size, start, end;
    char data[];
} chunkq_chunk;

typedef struct chunkq {
    chunkq_chunk *head, *tail;
    chunkq_chunk *spare; /* one emptied chunk kept for reuse */
    size_t bytes;        /* committed, not yet dropped */
} chunkq;

/* Contiguous room for len bytes at the tail (a new chunk when the tail's
 * is short), or NULL when memory ran out.  Fill at most len bytes, then
 * commit what was used; nothing else may touch q in between. */
char *chunkq_grow(chunkq *q, size_t len); /* the slow path: a new tail chunk */

/* Inline: the flush path reserves and commits once a line. */
static inline char *chunkq_reserve(chunkq *q, size_t len)
{
    chunkq_chunk *t = q->tail;
    if (t && t->size - t->end >= len)
        return t->data + t->end;
    return chunkq_grow(q, len);
}

static inline void chunkq_commit(chunkq *q, size_t len)
{
    q->tail->end += len;
    q->bytes += len;
}

/* Releases n committed bytes from the front. */
void chunkq_drop_front(chunkq *q, size_t n);

/* Frees every chunk; q is empty and usable again. */
void chunkq_clear(chunkq *q);

#endif
