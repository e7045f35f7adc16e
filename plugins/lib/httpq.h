/*
 * httpq.h - sends a lineq to an HTTP endpoint as POST bodies, one request
 * at a time, with libevent's HTTP client on the host's event base.
 *
 * Each body is a run of whole lines from the front of the queue (at most
 * batch_lines lines and batch_bytes bytes, and always at least one line).
 * The answer decides what happens to the run:
 *   2xx            delivered: released, counted as sent;
 *   429, 5xx, no answer (refused, reset, timeout)
 *                  kept and sent again after a backoff that doubles from
 *                  retry_min_ms to retry_max_ms (with jitter), counted as
 *                  an error each time; newer lines wait behind it;
 *   any other 4xx  refused for good: released, counted as dropped and as
 *                  an error, and logged (at most every 10 s, with the
 *                  server's message) - never retried, since the same
 *                  body would be refused again.
 *
 * Statistics: httpq owns SY_STAT_SENT (values), SY_STAT_QUEUED (values),
 * SY_STAT_QUEUED_BYTES, SY_STAT_CONNECTED (1 after a 2xx or a 4xx, 0 after
 * a failure), SY_STAT_ERRORS and SY_STAT_RECONNECTS (retries), and counts
 * SY_STAT_DROPPED for refused runs.  The caller counts what the queue
 * could not take.
 */
#ifndef SY_PLUGIN_HTTPQ_H
#define SY_PLUGIN_HTTPQ_H

#include <stddef.h>
#include <stdint.h>

#include "switchyard_sink.h"
#include "lineq.h"

typedef struct httpq httpq;

/* An http:// URL split into its parts. */
typedef struct http_url {
    char host[256];      /* without brackets for IPv6 */
    int port;            /* 80 when not given */
    char target[2048];   /* path and query, "/" when empty */
} http_url;

/* Splits "http://HOST[:PORT][/PATH][?QUERY]"; no DNS.  0, or -1 with the
 * reason in err. */
int http_url_parse(const char *url, http_url *out, char *err, size_t errlen);

typedef struct httpq_config {
    const http_url *url;
    const char *content_type;
    size_t batch_lines, batch_bytes;
    uint64_t retry_min_ms, retry_max_ms;
    uint64_t timeout_ms;         /* each step: connect, send, answer */
} httpq_config;

/* Resolves the host (getaddrinfo: call from init only) and makes the
 * connection object; nothing is sent until there is something queued.
 * The queue stays the caller's. */
httpq *httpq_new(const sy_host_api *api, sy_host *host, const httpq_config *cfg, lineq *q,
                 char *err, size_t errlen);
void httpq_free(httpq *h);

/* After lines were committed: publishes the queue gauges and sends when
 * idle. */
void httpq_kick(httpq *h);

int httpq_connected(const httpq *h);  /* the last request got an answer */
uint64_t httpq_sent(const httpq *h);  /* values delivered since creation */
int httpq_busy(const httpq *h);       /* a request is in flight */

#endif
