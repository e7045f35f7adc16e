/*
 * lineq.h - a bounded FIFO of text lines, each carrying how many values it
 * holds, for sinks that send lines in batches (HTTP bodies, datagrams)
 * rather than as a stream (that is lib/netq).
 *
 * Lines are appended whole (reserve, fill, commit with the line's value
 * count) and taken from the front in runs: lineq_peek() says how many
 * whole lines, bytes and values fit a bound, and lineq_pop() releases them
 * once they were delivered (or given up on).  The bytes of the queue are
 * contiguous, so a run is one pointer and a length.  The bound is in bytes.
 */
#ifndef SY_PLUGIN_LINEQ_H
#define SY_PLUGIN_LINEQ_H

#include <stddef.h>
#include <stdint.h>

typedef struct lineq lineq;

/* A run of whole lines at the front of the queue. */
typedef struct lineq_run {
    const char *data;
    size_t bytes;
    size_t lines;
    uint64_t values;
} lineq_run;

lineq *lineq_new(size_t max_bytes);
void lineq_free(lineq *q);

/* Room for len bytes at the end, or NULL when they would pass the bound
 * (or memory ran out).  Fill at most len bytes with one line ending in
 * '\n', then commit what was used and the values it carries. */
char *lineq_reserve(lineq *q, size_t len);
void lineq_commit(lineq *q, size_t len, uint32_t values);

/* The longest run from the front of at most max_lines lines and max_bytes
 * bytes; always at least one line when the queue is not empty, however
 * long that line is. */
lineq_run lineq_peek(const lineq *q, size_t max_lines, size_t max_bytes);
/* Releases the first `lines` lines (a run peeked before). */
void lineq_pop(lineq *q, const lineq_run *run);

/* Removes the lines for which drop(ctx, index) is true (index counts from
 * the front, 0-based, in order), keeping the others in order; returns the
 * values removed.  For take_back at shutdown: no run may be in flight. */
uint64_t lineq_remove_if(lineq *q, int (*drop)(void *ctx, size_t index), void *ctx);

size_t lineq_lines(const lineq *q);
size_t lineq_bytes(const lineq *q);
uint64_t lineq_values(const lineq *q);
size_t lineq_max_bytes(const lineq *q);

#endif
