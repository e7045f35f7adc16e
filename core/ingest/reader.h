/*
 * reader.h - the threads that take bytes off the sockets and queue them.
 *
 * Each datagram socket gets a thread of its own (recvmmsg in batches); all
 * stream listeners share one libevent thread.  Every thread owns one SPSC
 * ring, so the aggregator reads exactly one ring per reader thread.
 * Readers never parse: a record is one datagram, or the complete lines of
 * one stream read (a connection's last line may lack its newline, when the
 * peer closed without one).  Each record's origin names its listener (the
 * position in the array given to sy_readers_start) and its sender.
 *
 * Full ring: a datagram is dropped and counted; a stream connection stops
 * being read until there is room, so TCP flow control slows the client and
 * nothing is lost.
 */
#ifndef SY_READER_H
#define SY_READER_H

#include <stddef.h>

#include "ingest/listener.h"
#include "ingest/notify.h"
#include "ingest/ring.h"

typedef struct sy_readers sy_readers;

/*
 * Start reading from n opened listeners (sy_listener_open).  Sets each
 * listener's index to its position in the array.  ring_capacity is the size
 * of each ring; a record can take at most half of it (sy_ring_max_record),
 * which caps the datagram size and, for streams, max_line.  notify (may be
 * NULL) is woken when records arrive.  The listeners must stay in place
 * until sy_readers_free.  Returns NULL with a message in err on failure.
 */
sy_readers *sy_readers_start(sy_listener *listeners, size_t n, size_t ring_capacity,
                             sy_notify *notify, char *err, size_t errlen);

/* The rings, one per reader thread, for the aggregator.  *out stays valid
 * until sy_readers_free. */
size_t sy_readers_rings(sy_readers *rs, sy_ring ***out);

/*
 * Stop: stream listening sockets are closed first (no new connections);
 * what the kernel already holds for each connection and datagram socket is
 * read and queued (waiting up to a few seconds for ring room, so keep the
 * aggregator consuming meanwhile); a stream connection's partial last line
 * is queued only if the peer had closed, and counted as partial_discarded
 * otherwise.  Joins the threads: once this returns nothing more is pushed.
 * Safe to call twice.
 */
void sy_readers_stop(sy_readers *rs);

/* Stops if needed, then frees everything, the rings last. */
void sy_readers_free(sy_readers *rs);

#endif
