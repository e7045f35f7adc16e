/*
 * ring.c - bounded SPSC ring of byte records.
 *
 * Layout: each record is a header (length + origin) followed by the payload,
 * padded to 8 bytes.  A header whose length is SKIP tells the consumer to go
 * back to offset 0.  `head` (consumer) and `tail` (producer) are byte
 * offsets that only ever grow; their difference is the bytes in use.  Each
 * side caches the other's position so the shared cache lines are read only
 * when the cached value says the ring looks full/empty.
 */
#include "ingest/ring.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SKIP UINT32_MAX
#define ALIGN8(x) (((x) + 7u) & ~(size_t)7u)

typedef struct rec_hdr {
    uint32_t len;
    uint32_t pad;
    sy_origin origin;
} rec_hdr;

#define HDR ALIGN8(sizeof(rec_hdr))

struct sy_ring {
    unsigned char *buf;
    size_t cap;
    sy_notify *notify;
    /* producer */
    _Alignas(64) _Atomic size_t tail;
    size_t head_cache;
    size_t reserved_at; /* physical offset of the pending reservation */
    /* consumer */
    _Alignas(64) _Atomic size_t head;
    size_t tail_cache;
    size_t cur_size; /* bytes the peeked record occupies (incl. skips) */
};

sy_ring *sy_ring_new(size_t capacity, sy_notify *notify)
{
    sy_ring *r;
    if (capacity < 4096)
        capacity = 4096;
    capacity = (capacity + 63) & ~(size_t)63;
    if (posix_memalign((void **)&r, 64, sizeof *r) != 0)
        return NULL;
    memset(r, 0, sizeof *r);
    r->buf = malloc(capacity);
    if (!r->buf) {
        free(r);
        return NULL;
    }
    r->cap = capacity;
    r->notify = notify;
    atomic_init(&r->tail, 0);
    atomic_init(&r->head, 0);
    return r;
}

void sy_ring_free(sy_ring *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

size_t sy_ring_capacity(const sy_ring *r) { return r->cap; }

/* A record may take at most half the ring, so a skip at the end can never
 * make a single record impossible to place. */
size_t sy_ring_max_record(const sy_ring *r) { return r->cap / 2 - HDR; }

size_t sy_ring_used(const sy_ring *r)
{
    return atomic_load_explicit(&r->tail, memory_order_acquire) -
           atomic_load_explicit(&r->head, memory_order_acquire);
}

void *sy_ring_reserve(sy_ring *r, size_t len)
{
    if (len > sy_ring_max_record(r))
        return NULL;
    size_t need = HDR + ALIGN8(len);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t off = tail % r->cap;
    size_t waste = (r->cap - off < need) ? r->cap - off : 0;

    if (tail + waste + need - r->head_cache > r->cap) {
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail + waste + need - r->head_cache > r->cap)
            return NULL;
    }
    if (waste) {
        /* Mark the short tail as skipped.  The marker is published with the
         * record itself by the commit's release store. */
        if (waste >= sizeof(uint32_t))
            ((rec_hdr *)(r->buf + off))->len = SKIP;
        off = 0;
    }
    r->reserved_at = off;
    return r->buf + off + HDR;
}

static void publish(sy_ring *r, const sy_origin *origin, size_t len)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t off = tail % r->cap;
    size_t waste = (off != r->reserved_at) ? r->cap - off : 0;
    rec_hdr *h = (rec_hdr *)(r->buf + r->reserved_at);
    h->len = (uint32_t)len;
    if (origin)
        h->origin = *origin;
    else
        memset(&h->origin, 0, sizeof h->origin);
    atomic_store_explicit(&r->tail, tail + waste + HDR + ALIGN8(len), memory_order_release);
}

void sy_ring_wake(sy_ring *r)
{
    if (r->notify)
        sy_notify_wake(r->notify);
}

void sy_ring_commit(sy_ring *r, const sy_origin *origin, size_t len)
{
    publish(r, origin, len);
    sy_ring_wake(r);
}

int sy_ring_push_quiet(sy_ring *r, const sy_origin *origin, const void *data, size_t len)
{
    void *p = sy_ring_reserve(r, len);
    if (!p)
        return -1;
    if (len)
        memcpy(p, data, len);
    publish(r, origin, len);
    return 0;
}

int sy_ring_push(sy_ring *r, const sy_origin *origin, const void *data, size_t len)
{
    if (sy_ring_push_quiet(r, origin, data, len) != 0)
        return -1;
    sy_ring_wake(r);
    return 0;
}

const void *sy_ring_peek(sy_ring *r, const sy_origin **origin, size_t *len)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (head == r->tail_cache) {
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head == r->tail_cache)
            return NULL;
    }
    size_t off = head % r->cap;
    size_t skipped = 0;
    /* A tail too short for even a length word is an implicit skip. */
    if (r->cap - off < sizeof(uint32_t) || ((rec_hdr *)(r->buf + off))->len == SKIP) {
        skipped = r->cap - off;
        off = 0;
    }
    rec_hdr *h = (rec_hdr *)(r->buf + off);
    r->cur_size = skipped + HDR + ALIGN8(h->len);
    if (origin)
        *origin = &h->origin;
    *len = h->len;
    return r->buf + off + HDR;
}

void sy_ring_release(sy_ring *r)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->head, head + r->cur_size, memory_order_release);
    r->cur_size = 0;
}
