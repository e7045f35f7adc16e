/* netconn.c - see netconn.h. */
#include "netconn.h"

#include "backoff.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STABLE_MS 2000 /* a connection that lived this long resets the backoff */

enum { NC_WAITING, NC_CONNECTING, NC_CONNECTED };

struct netconn {
    const sy_host_api *api;
    sy_host *host;
    const netconn_handler *h;
    void *arg;
    char label[300];   /* host:port as configured */
    char service[40];
    char noun[24];
    char bound[64];
    net_addr addrs[NET_MAX_ADDRS];
    size_t naddrs, cur;

    int state;
    int fd;
    sy_watch *watch;
    int watch_events;
    sy_timer *timer;   /* backoff while waiting, timeout while connecting, the user's after */
    uint64_t min_ms, max_ms, connect_timeout_ms;
    unsigned failures;        /* consecutive, for the backoff */
    unsigned outage_attempts; /* failed attempts since the last connection */
    int outage;               /* a failure was logged since the last connection */
    int attempted;
    uint64_t connected_at;
    uint64_t rng;
};

static void nc_connect(netconn *c);

static void nc_set_watch(netconn *c, int events)
{
    if (c->watch && events != c->watch_events) {
        c->api->watch_set(c->watch, events);
        c->watch_events = events;
    }
}

static void nc_schedule(netconn *c, uint64_t delay_ms)
{
    c->state = NC_WAITING;
    c->api->timer_start(c->timer, delay_ms);
}

static uint64_t nc_backoff(netconn *c)
{
    return backoff_delay(c->failures, c->min_ms, c->max_ms, &c->rng);
}

static void nc_close_fd(netconn *c)
{
    if (c->watch) {
        c->api->watch_free(c->watch);
        c->watch = NULL;
    }
    c->watch_events = 0;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->api->timer_stop(c->timer);
    if (c->state == NC_CONNECTED)
        c->api->stat_set(c->host, SY_STAT_CONNECTED, 0);
    c->h->closed(c->arg);
}

/* "memcached at carbon:2003 (10.0.0.5:2003)", or without the address when
 * the configured name is the address. */
static const char *nc_where(const netconn *c, char *buf, size_t len)
{
    const net_addr *a = &c->addrs[c->cur];
    if (strcmp(c->label, a->text) == 0)
        snprintf(buf, len, "%s%s", c->service, c->label);
    else
        snprintf(buf, len, "%s%s (%s)", c->service, c->label, a->text);
    return buf;
}

static void nc_connect_failed(netconn *c, int err)
{
    char where[400];
    nc_where(c, where, sizeof(where));
    nc_close_fd(c);
    c->api->stat_add(c->host, SY_STAT_ERRORS, 1);
    c->outage_attempts++;
    c->api->log(c->host, c->outage ? SY_LOG_DEBUG : SY_LOG_WARN,
                "cannot connect to %s: %s; retrying with backoff up to %llu ms, "
                "queueing up to %s meanwhile", where, strerror(err),
                (unsigned long long)c->max_ms, c->bound);
    c->outage = 1;
    c->cur = (c->cur + 1) % c->naddrs;
    if (c->cur == 0) {
        c->failures++;
        nc_schedule(c, nc_backoff(c));
    } else {
        nc_schedule(c, 0); /* the next address at once */
    }
}

void netconn_lost(netconn *c, const char *why, const char *extra)
{
    char where[400];
    nc_where(c, where, sizeof(where));
    uint64_t lived = c->api->monotonic_ms(c->host) - c->connected_at;
    nc_close_fd(c);
    c->api->stat_add(c->host, SY_STAT_ERRORS, 1);
    c->api->log(c->host, SY_LOG_WARN, "connection to %s lost: %s%s; reconnecting", where,
                why ? why : "closed by the peer", extra ? extra : "");
    c->outage = 1;
    c->outage_attempts = 0;
    if (lived >= STABLE_MS)
        c->failures = 0;
    c->failures++;
    nc_schedule(c, nc_backoff(c));
}

static void nc_connected(netconn *c)
{
    char where[400];
    nc_where(c, where, sizeof(where));
    c->state = NC_CONNECTED;
    c->api->timer_stop(c->timer);
    c->api->stat_set(c->host, SY_STAT_CONNECTED, 1);
    c->connected_at = c->api->monotonic_ms(c->host);
    if (c->outage_attempts)
        c->api->log(c->host, SY_LOG_INFO, "connected to %s after %u failed attempts, "
                    "%zu %s queued", where, c->outage_attempts, c->h->queued(c->arg), c->noun);
    else if (c->outage)
        c->api->log(c->host, SY_LOG_INFO, "reconnected to %s, %zu %s queued", where,
                    c->h->queued(c->arg), c->noun);
    else
        c->api->log(c->host, SY_LOG_INFO, "connected to %s", where);
    c->outage = 0;
    c->outage_attempts = 0;
    c->h->connected(c->arg);
}

static void nc_on_fd(int fd, int events, void *arg)
{
    netconn *c = arg;
    if (c->state == NC_CONNECTING) {
        int err = net_connect_result(fd);
        if (err)
            nc_connect_failed(c, err);
        else
            nc_connected(c);
        return;
    }
    if (c->state == NC_CONNECTED)
        c->h->events(c->arg, events);
}

static void nc_on_timer(void *arg)
{
    netconn *c = arg;
    switch (c->state) {
    case NC_CONNECTING:
        nc_connect_failed(c, ETIMEDOUT);
        break;
    case NC_WAITING:
        if (c->attempted)
            c->api->stat_add(c->host, SY_STAT_RECONNECTS, 1);
        c->attempted = 1;
        nc_connect(c);
        break;
    case NC_CONNECTED:
        c->h->timer(c->arg);
        break;
    }
}

static void nc_connect(netconn *c)
{
    int rc = net_connect(&c->addrs[c->cur], SOCK_STREAM, &c->fd);
    if (rc < 0) {
        nc_connect_failed(c, errno);
        return;
    }
    c->watch = c->api->watch_new(c->host, c->fd, nc_on_fd, c);
    c->watch_events = 0;
    if (!c->watch) {
        nc_connect_failed(c, ENOMEM);
        return;
    }
    c->state = NC_CONNECTING;
    if (rc == 1) {
        nc_connected(c);
        return;
    }
    nc_set_watch(c, SY_WATCH_WRITE);
    c->api->timer_start(c->timer, c->connect_timeout_ms);
}

netconn *netconn_new(const sy_host_api *api, sy_host *host, const netconn_config *cfg,
                     const netconn_handler *h, void *arg, char *err, size_t errlen)
{
    netconn *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->api = api;
    c->host = host;
    c->h = h;
    c->arg = arg;
    c->fd = -1;
    c->min_ms = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : 100;
    c->max_ms = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : 30000;
    if (c->max_ms < c->min_ms)
        c->max_ms = c->min_ms;
    c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000;
    c->rng = backoff_seed(api->monotonic_ms(host), (uint64_t)(uintptr_t)c);
    snprintf(c->service, sizeof(c->service), "%s", cfg->service ? cfg->service : "");
    snprintf(c->noun, sizeof(c->noun), "%s", cfg->noun ? cfg->noun : "lines");
    snprintf(c->bound, sizeof(c->bound), "%s", cfg->bound ? cfg->bound : "the queue's bound");
    net_label(c->label, sizeof(c->label), cfg->host, cfg->port);

    char list[512];
    int n = net_resolve(cfg->host, cfg->port, SOCK_STREAM, c->addrs, NET_MAX_ADDRS, list,
                        sizeof(list), err, errlen);
    if (n < 0)
        goto fail;
    c->naddrs = (size_t)n;
    api->log(host, strcmp(c->label, list) == 0 ? SY_LOG_DEBUG : SY_LOG_INFO, "%s resolves to %s",
             c->label, list);
    c->timer = api->timer_new(host, nc_on_timer, c);
    if (!c->timer) {
        snprintf(err, errlen, "cannot create a timer");
        goto fail;
    }
    api->stat_set(host, SY_STAT_CONNECTED, 0);
    nc_schedule(c, 0); /* connect from the loop, not from init */
    return c;
fail:
    free(c);
    return NULL;
}

void netconn_free(netconn *c)
{
    if (!c)
        return;
    nc_close_fd(c);
    c->api->timer_free(c->timer);
    free(c);
}

int netconn_connected(const netconn *c)
{
    return c->state == NC_CONNECTED;
}

int netconn_fd(const netconn *c)
{
    return c->state == NC_CONNECTED ? c->fd : -1;
}

ssize_t netconn_writev(netconn *c, const struct iovec *iov, int n)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
    for (;;) {
        ssize_t w = sendmsg(netconn_fd(c), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            return w;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

void netconn_want(netconn *c, int events)
{
    if (c->state == NC_CONNECTED)
        nc_set_watch(c, events);
}

void netconn_timer_start(netconn *c, uint64_t ms)
{
    if (c->state == NC_CONNECTED)
        c->api->timer_start(c->timer, ms);
}

void netconn_timer_stop(netconn *c)
{
    if (c->state == NC_CONNECTED)
        c->api->timer_stop(c->timer);
}
