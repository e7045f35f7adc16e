/*
 * ring.h - bounded single-producer/single-consumer ring of byte records.
 *
 * A reader thread pushes each read (a datagram, or the complete lines of a
 * stream read) as one record; the aggregator pops them.  Records never wrap:
 * when the tail of the buffer is too short, the producer leaves a skip
 * marker and starts again at offset 0.  Memory is fixed at creation, so a
 * flood of input can fill the ring but never grow the process.
 */
#ifndef SY_RING_H
#define SY_RING_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/notify.h"

/* Where a record came from.  `addr` holds the IPv4 or IPv6 address of the
 * sender (AF_UNIX and unknown senders leave it zero). */
typedef struct sy_origin {
    uint16_t listener;   /* index into the daemon's listener table */
    uint8_t family;      /* AF_INET, AF_INET6, AF_UNIX or 0 */
    uint8_t flags;       /* SY_ORIGIN_* */
    uint16_t port;       /* host byte order */
    uint8_t addr[16];
} sy_origin;

/* The record is a control message, not data (len is 0). */
#define SY_ORIGIN_EOF 0x01

typedef struct sy_ring sy_ring;

/* capacity is rounded up to a multiple of 64 bytes; notify may be NULL. */
sy_ring *sy_ring_new(size_t capacity, sy_notify *notify);
void sy_ring_free(sy_ring *r);

/* Producer side.  reserve returns room for `len` payload bytes, or NULL when
 * the ring is full (the caller counts a drop or applies backpressure);
 * commit publishes it with its origin.  Between reserve and commit nothing
 * else may be pushed. */
void *sy_ring_reserve(sy_ring *r, size_t len);
void sy_ring_commit(sy_ring *r, const sy_origin *origin, size_t len);
/* reserve + memcpy + commit; 0 on success, -1 when full. */
int sy_ring_push(sy_ring *r, const sy_origin *origin, const void *data, size_t len);
/* A producer that pushes a batch (one recvmmsg's datagrams) pushes each
 * record quietly and wakes the consumer once at the end: one fence and at
 * most one eventfd write per batch instead of per record. */
int sy_ring_push_quiet(sy_ring *r, const sy_origin *origin, const void *data, size_t len);
void sy_ring_wake(sy_ring *r);

/* Consumer side.  peek returns the oldest record (NULL when empty);
 * release frees it. */
const void *sy_ring_peek(sy_ring *r, const sy_origin **origin, size_t *len);
void sy_ring_release(sy_ring *r);

size_t sy_ring_used(const sy_ring *r);
size_t sy_ring_capacity(const sy_ring *r);
/* The largest payload that can ever be pushed. */
size_t sy_ring_max_record(const sy_ring *r);

#endif
