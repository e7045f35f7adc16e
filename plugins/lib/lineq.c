/*
 * lineq.c - bounded FIFO of lines with value counts.  See lineq.h.
 *
 * The text lives in one buffer, [head, head + len); appending moves the
 * live bytes to the start when the free space is at the front, and grows
 * the buffer (doubling, never past the bound) otherwise.  Each line's
 * value count and length sit in a ring beside it, so a run is found
 * without scanning the text.
 */
#include "lineq.h"

#include <stdlib.h>
#include <string.h>

typedef struct line_info {
    uint32_t len;
    uint32_t values;
} line_info;

struct lineq {
    char *buf;
    size_t cap, head, len, max_bytes;
    line_info *ring;
    size_t ring_cap, ring_head, nlines;
    uint64_t values;
};

lineq *lineq_new(size_t max_bytes)
{
    lineq *q = calloc(1, sizeof(*q));
    if (q)
        q->max_bytes = max_bytes;
    return q;
}

void lineq_free(lineq *q)
{
    if (!q)
        return;
    free(q->buf);
    free(q->ring);
    free(q);
}

static int ring_room(lineq *q)
{
    if (q->nlines < q->ring_cap)
        return 0;
    size_t ncap = q->ring_cap ? q->ring_cap * 2 : 1024;
    line_info *r = malloc(ncap * sizeof(*r));
    if (!r)
        return -1;
    for (size_t i = 0; i < q->nlines; i++)
        r[i] = q->ring[(q->ring_head + i) % q->ring_cap];
    free(q->ring);
    q->ring = r;
    q->ring_cap = ncap;
    q->ring_head = 0;
    return 0;
}

char *lineq_reserve(lineq *q, size_t len)
{
    if (len > q->max_bytes || q->len > q->max_bytes - len || len > UINT32_MAX)
        return NULL;
    if (ring_room(q) != 0)
        return NULL;
    if (q->cap - q->head - q->len >= len)
        return q->buf + q->head + q->len;
    if (q->cap - q->len >= len && q->head >= q->cap / 2) {
        memmove(q->buf, q->buf + q->head, q->len);
        q->head = 0;
        return q->buf + q->len;
    }
    size_t ncap = q->cap ? q->cap : 64 * 1024;
    while (ncap - q->len < len)
        ncap *= 2;
    if (ncap > q->max_bytes)
        ncap = q->max_bytes;
    char *b = malloc(ncap);
    if (!b)
        return NULL;
    if (q->len)
        memcpy(b, q->buf + q->head, q->len);
    free(q->buf);
    q->buf = b;
    q->cap = ncap;
    q->head = 0;
    return q->buf + q->len;
}

void lineq_commit(lineq *q, size_t len, uint32_t values)
{
    line_info *li = &q->ring[(q->ring_head + q->nlines) % q->ring_cap];
    li->len = (uint32_t)len;
    li->values = values;
    q->nlines++;
    q->len += len;
    q->values += values;
}

lineq_run lineq_peek(const lineq *q, size_t max_lines, size_t max_bytes)
{
    lineq_run r = { .data = q->buf ? q->buf + q->head : NULL };
    for (size_t i = 0; i < q->nlines && r.lines < max_lines; i++) {
        const line_info *li = &q->ring[(q->ring_head + i) % q->ring_cap];
        if (r.lines && r.bytes + li->len > max_bytes)
            break;
        r.bytes += li->len;
        r.values += li->values;
        r.lines++;
    }
    return r;
}

void lineq_pop(lineq *q, const lineq_run *run)
{
    q->ring_head = (q->ring_head + run->lines) % (q->ring_cap ? q->ring_cap : 1);
    q->nlines -= run->lines;
    q->head += run->bytes;
    q->len -= run->bytes;
    q->values -= run->values;
    if (q->len == 0)
        q->head = 0;
}

uint64_t lineq_remove_if(lineq *q, int (*drop)(void *ctx, size_t index), void *ctx)
{
    size_t rd = q->head, wr = q->head, kept = 0, n = q->nlines;
    uint64_t removed = 0;
    for (size_t i = 0; i < n; i++) {
        line_info li = q->ring[(q->ring_head + i) % q->ring_cap];
        if (drop(ctx, i)) {
            removed += li.values;
            q->len -= li.len;
        } else {
            memmove(q->buf + wr, q->buf + rd, li.len);
            q->ring[(q->ring_head + kept) % q->ring_cap] = li;
            wr += li.len;
            kept++;
        }
        rd += li.len;
    }
    q->nlines = kept;
    q->values -= removed;
    if (q->len == 0)
        q->head = 0;
    return removed;
}

size_t lineq_lines(const lineq *q)
{
    return q->nlines;
}

size_t lineq_bytes(const lineq *q)
{
    return q->len;
}

uint64_t lineq_values(const lineq *q)
{
    return q->values;
}

size_t lineq_max_bytes(const lineq *q)
{
    return q->max_bytes;
}
