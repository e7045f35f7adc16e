/*
 * netconn.h - one TCP connection kept open: connects without blocking
 * (every resolved address in turn, connectTimeoutMs each), reconnects
 * with jittered backoff (lib/backoff) after a failure or a lost
 * connection, keeps the statistics CONNECTED, RECONNECTS and ERRORS, and
 * logs failures once per outage.  What goes over the connection is the
 * user's: lib/netq (lines) and memcache_traces (set commands and replies).
 *
 * The user gets the connection's events through its handler, and owns
 * the fd's read/write interest and the timer while connected (the timer
 * is netconn's while connecting or waiting).
 */
#ifndef SY_PLUGIN_NETCONN_H
#define SY_PLUGIN_NETCONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "switchyard_sink.h"
#include "net.h"

typedef struct netconn_handler {
    /* connected: start reading and writing (netconn has logged it) */
    void (*connected)(void *arg);
    /* the socket was closed (lost, failed, or freed): whatever was not
     * confirmed goes back to be written again */
    void (*closed)(void *arg);
    /* readiness while connected (SY_WATCH_READ / SY_WATCH_WRITE) */
    void (*events)(void *arg, int events);
    /* the timer fired while connected (the user started it) */
    void (*timer)(void *arg);
    /* what waits, for the log lines: "%zu <noun> queued" */
    size_t (*queued)(void *arg);
} netconn_handler;

typedef struct netconn_config {
    const char *host;            /* name or address; IPv4 or IPv6 */
    int port;
    uint64_t reconnect_min_ms;   /* first backoff delay (default 100) */
    uint64_t reconnect_max_ms;   /* backoff cap (default 30000) */
    uint64_t connect_timeout_ms; /* a connect attempt's limit (default 5000) */
    const char *service;         /* before the address in log lines: "memcached at ", or "" */
    const char *noun;            /* what queued() counts: "lines", "traces" */
    const char *bound;           /* the queue's bound for the failure line: "1024 bytes" */
} netconn_config;

typedef struct netconn netconn;

/* Resolves the address (blocks: call from init) and schedules the first
 * connect on the loop.  NULL with a message in err on failure. */
netconn *netconn_new(const sy_host_api *api, sy_host *host, const netconn_config *cfg,
                     const netconn_handler *h, void *arg, char *err, size_t errlen);
void netconn_free(netconn *c);

int netconn_connected(const netconn *c);
int netconn_fd(const netconn *c);               /* -1 unless connected */
void netconn_want(netconn *c, int events);      /* read/write interest while connected */
/* Writes what it can of iov[0..n) without blocking (no SIGPIPE; an EINTR
 * is retried): the bytes written, 0 when the socket buffer is full, or -1
 * with errno set (the caller decides it is lost). */
ssize_t netconn_writev(netconn *c, const struct iovec *iov, int n);
void netconn_timer_start(netconn *c, uint64_t ms); /* while connected */
void netconn_timer_stop(netconn *c);
/* The connection broke (why NULL: closed by the peer; extra, may be NULL,
 * is added to the log line): closed, counted, logged, and connected again
 * after the backoff. */
void netconn_lost(netconn *c, const char *why, const char *extra);

#endif
