/*
 * keeplog.h - the flushed values behind what a sink has queued, kept so
 * that take_back (ABI 1.2) can hand them back exactly, for sinks whose
 * queued form cannot be read back into (name, kind, value, flush time):
 * the repeater's gauge lines carry no time and look like raw samples,
 * InfluxDB lines merge a timer's statistics and escape names.
 *
 * The sink numbers what it queues in its own units (bytes appended, lines
 * committed; a count that only grows) and records each value with the
 * range [start, end) of units its text took.  When the queue has sent
 * everything below a position, keeplog_release forgets the values that
 * end there or before.  So the log holds about what the queue holds (the
 * names and 32 bytes a value), and at shutdown keeplog_take hands back
 * every value whose text was not completely sent.
 */
#ifndef SY_PLUGIN_KEEPLOG_H
#define SY_PLUGIN_KEEPLOG_H

#include <stddef.h>
#include <stdint.h>

#include "switchyard_sink.h"

typedef struct keeplog keeplog;

typedef void (*keeplog_keep_fn)(void *ctx, const sy_metric_batch *b);

keeplog *keeplog_new(void);
void keeplog_free(keeplog *k);

/* Records a value queued at [start, end), ts being its flush time.
 * Positions never go down between calls.  0, or -1 out of memory (the
 * value is then not kept: the caller counts nothing more; it is queued). */
int keeplog_add(keeplog *k, int64_t ts, const sy_metric *m, uint64_t start, uint64_t end);

/* Forgets the values whose text ends at or before `done`. */
void keeplog_release(keeplog *k, uint64_t done);

/* Whether [start, end) lies inside the range of a value kept.  Calls
 * must come with start growing, from one cursor zeroed first. */
typedef struct keeplog_cursor {
    void *chunk;
    size_t off;
} keeplog_cursor;
int keeplog_covers(const keeplog *k, keeplog_cursor *c, uint64_t start, uint64_t end);

/* Hands every value kept to keep(), oldest first, in batches of one flush
 * time (at most 2,048 values; names NUL-terminated, borrowed for the
 * call), forgets them, and returns how many. */
size_t keeplog_take(keeplog *k, keeplog_keep_fn keep, void *ctx);

size_t keeplog_count(const keeplog *k);
size_t keeplog_bytes(const keeplog *k);

#endif
