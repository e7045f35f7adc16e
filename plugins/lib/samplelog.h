/*
 * samplelog.h - the raw samples (write_samples) behind what a sink has
 * queued, kept so that take_back_samples (ABI 1.5) can hand them back
 * exactly, for sinks whose queue holds something made from many samples
 * (remote_write's requests carry cumulative totals, not the increments).
 *
 * The sink numbers what it sends in its own units (a count that only
 * grows, remote_write's snapshots) and records each sample with the
 * number of the first unit that will carry it.  When the units up to n
 * are delivered, samplelog_release forgets the samples numbered n or
 * less.  The log is bounded (max_bytes): a sample that does not fit is
 * not kept, which the caller counts.
 */
#ifndef SY_PLUGIN_SAMPLELOG_H
#define SY_PLUGIN_SAMPLELOG_H

#include <stddef.h>
#include <stdint.h>

#include "switchyard_sink.h"
#include "entrylog.h"

typedef struct samplelog samplelog;

typedef void (*samplelog_keep_fn)(void *ctx, const sy_sample_batch *b);

samplelog *samplelog_new(size_t max_bytes);
void samplelog_free(samplelog *l);

/* Keeps x (ts_ms: its client time, 0 for none), carried from unit seq
 * on; seq never goes down between calls.  0, or -1 when the log is full
 * or out of memory (the sample is not kept). */
int samplelog_add(samplelog *l, uint64_t seq, const sy_sample *x, int64_t ts_ms);

/* Forgets the samples numbered seq or less. */
void samplelog_release(samplelog *l, uint64_t seq);

/* Hands every sample kept to keep(), oldest first, in batches of at most
 * 2,048 (timestamps_ms set; strings borrowed for the call), forgets them,
 * and returns how many. */
size_t samplelog_take(samplelog *l, samplelog_keep_fn keep, void *ctx);

/* Whether a sample numbered seq is kept, for a sink whose units hold one
 * sample each (the repeater: a line's end position).  Calls must come with
 * seq growing, from one cursor zeroed first. */
typedef entrylog_pos samplelog_cursor;
int samplelog_holds(const samplelog *l, samplelog_cursor *c, uint64_t seq);

size_t samplelog_count(const samplelog *l);
size_t samplelog_bytes(const samplelog *l);

/* The bytes one sample takes in the log (its fixed part, its name, text
 * and tags, rounded to 8). */
size_t samplelog_entry_bytes(const sy_sample *x);

#endif
