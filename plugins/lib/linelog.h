/*
 * linelog.h - the DogStatsD lines (write_lines: events and service
 * checks) behind what a sink has queued, kept so that take_back_lines
 * (ABI 1.6) can hand them back exactly.  The same idea as samplelog: the
 * sink numbers what it queues in its own units (the repeater: the end of
 * each line in bytes appended) and records each line with its number;
 * when everything up to n is delivered, linelog_release forgets the lines
 * numbered n or less.  Bounded (max_bytes): a line that does not fit is
 * not kept, which the caller counts.
 */
#ifndef SY_PLUGIN_LINELOG_H
#define SY_PLUGIN_LINELOG_H

#include <stddef.h>
#include <stdint.h>

#include "entrylog.h"

typedef struct linelog linelog;

typedef void (*linelog_keep_fn)(void *ctx, const char *const *lines, const uint32_t *lens,
                                size_t n);

linelog *linelog_new(size_t max_bytes);
void linelog_free(linelog *l);

/* Keeps the len bytes of line, numbered seq (never lower than the last).
 * 0, or -1 when the log is full or out of memory (not kept). */
int linelog_add(linelog *l, uint64_t seq, const char *line, uint32_t len);

/* Forgets the lines numbered seq or less. */
void linelog_release(linelog *l, uint64_t seq);

/* Whether a line numbered seq is kept; calls come with seq growing, from
 * one cursor zeroed first. */
typedef entrylog_pos linelog_cursor;
int linelog_holds(const linelog *l, linelog_cursor *c, uint64_t seq);

/* Hands every line kept to keep(), oldest first, in batches of at most
 * 2,048 (borrowed for the call), forgets them, and returns how many. */
size_t linelog_take(linelog *l, linelog_keep_fn keep, void *ctx);

size_t linelog_count(const linelog *l);
size_t linelog_bytes(const linelog *l);

/* The bytes a line of len bytes takes in the log (rounded to 8). */
size_t linelog_entry_bytes(uint32_t len);

#endif
