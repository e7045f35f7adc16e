/*
 * pace.h - whether a batch should wait for a queue that is draining,
 * rather than be cut at the queue's bound.
 *
 * A sink's queue bounds what waits for a server that is down or stuck.  A
 * flush can be larger than that queue (1M keys are 2M lines) while the
 * server takes it easily; cutting it would lose data for no reason.  So a
 * sink asks pace_wait() before it takes a batch: when a destination is
 * connected and moving (what it has sent grew, or its queue was empty,
 * within the last PACE_STALL_MS) and the batch would fit its empty queue
 * but not the queue as it is now, the sink answers SY_RETRY before taking
 * any of the batch.  The host then holds the batch (within its
 * retryMaxMetrics bound) and offers it again as the queue drains.  A
 * destination that is down, or connected but stuck, does not earn that:
 * once it has not moved for PACE_STALL_MS, what its queue cannot take is
 * dropped and counted, and memory goes back to the queue's bound.
 *
 * Units are the sink's: bytes, lines or metrics, the same for `queued`,
 * `max` and `need`.  `sent` is any count that grows whenever the queue is
 * written out (lines sent, replies received).
 */
#ifndef SY_PLUGIN_PACE_H
#define SY_PLUGIN_PACE_H

#include <stddef.h>
#include <stdint.h>

#define PACE_STALL_MS 2000

/* Zeroed to start: a destination has not moved until it is seen with an
 * empty queue or sending. */
typedef struct pace {
    uint64_t sent_seen;       /* `sent` when last looked at */
    uint64_t moved_ms;        /* monotonic ms when the queue last moved */
} pace;

/* Notes whether the destination moved, and returns 1 when a batch of
 * `need` must wait (see above), 0 when it should be taken now (what does
 * not fit is then the sink's to drop). */
int pace_wait(pace *p, uint64_t now_ms, int connected, uint64_t sent, size_t queued,
              size_t max, size_t need);

#endif
