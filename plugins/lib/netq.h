/*
 * netq.h - a reconnecting, non-blocking TCP client with a bounded queue of
 * lines, built only on the sy_host_api (fd watches and timers), so any
 * line-protocol sink (graphite, a statsd repeater, ...) can share it.
 *
 * The queue holds whole lines.  Each committed piece of data must consist
 * of whole lines, each ending in '\n', and a line never exceeds the queue
 * bound.  The destination only ever receives whole lines: when a
 * connection breaks after part of a line was written, that line is kept
 * and written again, from its first byte, on the next connection (the
 * receiver discards the unterminated fragment of the broken connection,
 * as carbon, go-carbon and carbon-c-relay do).
 *
 * Statistics: netq owns SY_STAT_SENT (whole lines written to the socket),
 * SY_STAT_QUEUED (lines not yet completely written), SY_STAT_QUEUED_BYTES,
 * SY_STAT_CONNECTED, SY_STAT_RECONNECTS (connection attempts after the
 * first) and SY_STAT_ERRORS (failed connects, write errors, lost
 * connections).  The plugin counts SY_STAT_DROPPED when an append is
 * refused.
 *
 * The address is resolved once, at creation (getaddrinfo blocks, which
 * init may); every address found is tried in turn.
 */
#ifndef SY_PLUGIN_NETQ_H
#define SY_PLUGIN_NETQ_H

#include <stddef.h>
#include <stdint.h>

#include "switchyard_sink.h"

typedef struct netq netq;

typedef struct netq_config {
    const char *host;            /* name or address; IPv4 or IPv6 */
    int port;
    size_t max_bytes;            /* queue bound; appends beyond it are refused */
    uint64_t reconnect_min_ms;   /* first backoff delay (default 100) */
    uint64_t reconnect_max_ms;   /* backoff cap (default 30000) */
    uint64_t connect_timeout_ms; /* a connect attempt's limit (default 5000) */
} netq_config;

/* Resolves the address and schedules the first connect (on the loop, not
 * in this call).  NULL with a message in err on failure. */
netq *netq_new(const sy_host_api *api, sy_host *host, const netq_config *cfg,
               char *err, size_t errlen);
void netq_free(netq *q);

/* Room for len bytes, or NULL when they would exceed the bound (or memory
 * ran out): the caller counts a drop.  Fill at most len bytes, then
 * commit how many were used.  Nothing else may touch q in between. */
char *netq_reserve(netq *q, size_t len);
void netq_commit(netq *q, size_t len);
/* netq_commit for a caller that knows the bytes hold exactly `lines`
 * newlines (a Graphite line it built itself): no scan for them. */
void netq_commit_lines(netq *q, size_t len, size_t lines);
/* reserve + copy + commit; 0, or -1 when refused. */
int netq_append(netq *q, const void *data, size_t len);

/* After a batch of appends: publishes the queue statistics and asks the
 * loop to write when connected. */
void netq_kick(netq *q);

/* Shutdown only: hands every queued line (without its '\n'; the one
 * being written too, as the receiver discards a cut line) to fn, oldest
 * first, then empties the queue.  Returns the number of lines. */
size_t netq_take(netq *q, void (*fn)(void *ctx, const char *line, size_t len), void *ctx);

size_t netq_lines(const netq *q);  /* lines not yet completely written */
size_t netq_bytes(const netq *q);
size_t netq_max_bytes(const netq *q);
int netq_connected(const netq *q);
uint64_t netq_sent(const netq *q);  /* whole lines written since creation */

#endif
