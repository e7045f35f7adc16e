/*
 * netq.c - reconnecting non-blocking TCP client with a bounded line queue.
 * See netq.h for the contract.
 *
 * The queue is a list of chunks; a line never spans two chunks (reserve
 * gives contiguous room), so the line being written is always inside the
 * head chunk.  `wr_off` counts the bytes of that head line already written
 * on the current connection: bytes are released only once the '\n' that
 * ends their line has been written, which is what lets a broken connection
 * resend a line whole.
 */
#include "netq.h"

#include "backoff.h"
#include "chunkq.h"
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_IOV 64
#define STABLE_MS 2000 /* a connection that lived this long resets the backoff */
#define READS_PER_EVENT 16

enum { NQ_WAITING, NQ_CONNECTING, NQ_CONNECTED };

struct netq {
    const sy_host_api *api;
    sy_host *host;
    char label[300]; /* host:port as configured */
    net_addr addrs[NET_MAX_ADDRS];
    size_t naddrs, cur;

    int state;
    int fd;
    sy_watch *watch;
    int watch_events;
    sy_timer *timer; /* backoff while waiting, timeout while connecting */
    uint64_t min_ms, max_ms, connect_timeout_ms;
    unsigned failures;       /* consecutive, for the backoff */
    unsigned outage_attempts; /* failed attempts since the last connection */
    int outage;              /* a failure was logged since the last connection */
    int attempted;
    uint64_t connected_at;
    uint64_t rng;

    chunkq cq;               /* the lines, whole */
    size_t lines, max_bytes;
    size_t wr_off;
    uint64_t sent_lines; /* whole lines written, ever */
};

static void nq_connect(netq *q);

static void nq_publish(netq *q)
{
    q->api->stat_set(q->host, SY_STAT_QUEUED, (int64_t)q->lines);
    q->api->stat_set(q->host, SY_STAT_QUEUED_BYTES, (int64_t)q->cq.bytes);
}

static void nq_set_watch(netq *q, int events)
{
    if (q->watch && events != q->watch_events) {
        q->api->watch_set(q->watch, events);
        q->watch_events = events;
    }
}

/* While connected: always read (to notice the peer closing), write only
 * while something is unsent. */
static void nq_update_watch(netq *q)
{
    if (q->state == NQ_CONNECTED)
        nq_set_watch(q, SY_WATCH_READ | (q->cq.bytes > q->wr_off ? SY_WATCH_WRITE : 0));
}

static uint64_t nq_backoff(netq *q)
{
    return backoff_delay(q->failures, q->min_ms, q->max_ms, &q->rng);
}

static void nq_schedule(netq *q, uint64_t delay_ms)
{
    q->state = NQ_WAITING;
    q->api->timer_start(q->timer, delay_ms);
}

static void nq_close_fd(netq *q)
{
    if (q->watch) {
        q->api->watch_free(q->watch);
        q->watch = NULL;
    }
    q->watch_events = 0;
    if (q->fd >= 0) {
        close(q->fd);
        q->fd = -1;
    }
    q->api->timer_stop(q->timer);
    if (q->state == NQ_CONNECTED)
        q->api->stat_set(q->host, SY_STAT_CONNECTED, 0);
    /* the partly written head line goes again, whole, on the next connection */
    q->wr_off = 0;
}

/* "carbon:2003 (10.0.0.5:2003)", or just "10.0.0.5:2003" when the
 * configured name is the address. */
static const char *nq_where(const netq *q, const net_addr *a, char *buf, size_t len)
{
    if (strcmp(q->label, a->text) == 0)
        return q->label;
    snprintf(buf, len, "%s (%s)", q->label, a->text);
    return buf;
}

static void nq_connect_failed(netq *q, int err)
{
    const net_addr *a = &q->addrs[q->cur];
    nq_close_fd(q);
    q->api->stat_add(q->host, SY_STAT_ERRORS, 1);
    q->outage_attempts++;
    char where[400];
    q->api->log(q->host, q->outage ? SY_LOG_DEBUG : SY_LOG_WARN,
                "cannot connect to %s: %s; retrying with backoff up to %llu ms, "
                "queueing up to %zu bytes meanwhile",
                nq_where(q, a, where, sizeof(where)), strerror(err),
                (unsigned long long)q->max_ms, q->max_bytes);
    q->outage = 1;
    q->cur = (q->cur + 1) % q->naddrs;
    if (q->cur == 0) {
        q->failures++;
        nq_schedule(q, nq_backoff(q));
    } else {
        nq_schedule(q, 0); /* the next address at once */
    }
}

/* err 0: the peer closed the connection. */
static void nq_lost(netq *q, int err)
{
    const net_addr *a = &q->addrs[q->cur];
    int partial = q->wr_off > 0;
    uint64_t lived = q->api->monotonic_ms(q->host) - q->connected_at;
    nq_close_fd(q);
    q->api->stat_add(q->host, SY_STAT_ERRORS, 1);
    char where[400];
    q->api->log(q->host, SY_LOG_WARN, "connection to %s lost: %s%s; reconnecting",
                nq_where(q, a, where, sizeof(where)), err ? strerror(err) : "closed by the peer",
                partial ? " (the line being written will be sent again whole)" : "");
    q->outage = 1;
    q->outage_attempts = 0;
    if (lived >= STABLE_MS)
        q->failures = 0;
    q->failures++;
    nq_schedule(q, nq_backoff(q));
}

/* Accounts for w more bytes written after wr_off: every '\n' among them
 * completes a line, which is released and counted as sent. */
static void nq_written(netq *q, size_t w)
{
    size_t skip = q->wr_off, left = w, pos = 0, cut = 0, lines = 0;
    for (chunkq_chunk *c = q->cq.head; c && left; c = c->next) {
        size_t avail = c->end - c->start;
        if (skip >= avail) {
            skip -= avail;
            pos += avail;
            continue;
        }
        const char *p = c->data + c->start + skip;
        size_t seg = avail - skip < left ? avail - skip : left;
        const char *e = p + seg, *nl = p;
        while ((nl = memchr(nl, '\n', (size_t)(e - nl)))) {
            lines++;
            nl++;
            cut = pos + skip + (size_t)(nl - p);
        }
        left -= seg;
        pos += avail;
        skip = 0;
    }
    q->wr_off += w;
    if (cut) {
        chunkq_drop_front(&q->cq, cut);
        q->wr_off -= cut;
        q->lines -= lines;
        q->sent_lines += lines;
        q->api->stat_add(q->host, SY_STAT_SENT, (int64_t)lines);
    }
}

static void nq_send(netq *q)
{
    while (q->state == NQ_CONNECTED && q->cq.bytes > q->wr_off) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        size_t skip = q->wr_off, total = 0;
        for (chunkq_chunk *c = q->cq.head; c && n < MAX_IOV; c = c->next) {
            size_t avail = c->end - c->start;
            if (skip >= avail) {
                skip -= avail;
                continue;
            }
            iov[n].iov_base = c->data + c->start + skip;
            iov[n].iov_len = avail - skip;
            total += iov[n].iov_len;
            n++;
            skip = 0;
        }
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(q->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            nq_lost(q, errno);
            nq_publish(q);
            return;
        }
        nq_written(q, (size_t)w);
        if ((size_t)w < total)
            break; /* the socket buffer is full: wait until writable */
    }
    nq_update_watch(q);
    nq_publish(q);
}

static void nq_connected(netq *q)
{
    const net_addr *a = &q->addrs[q->cur];
    q->state = NQ_CONNECTED;
    q->api->timer_stop(q->timer);
    q->api->stat_set(q->host, SY_STAT_CONNECTED, 1);
    q->connected_at = q->api->monotonic_ms(q->host);
    char where[400];
    if (q->outage_attempts)
        q->api->log(q->host, SY_LOG_INFO, "connected to %s after %u failed attempts, "
                    "%zu lines queued", nq_where(q, a, where, sizeof(where)),
                    q->outage_attempts, q->lines);
    else if (q->outage)
        q->api->log(q->host, SY_LOG_INFO, "reconnected to %s, %zu lines queued",
                    nq_where(q, a, where, sizeof(where)), q->lines);
    else
        q->api->log(q->host, SY_LOG_INFO, "connected to %s", nq_where(q, a, where, sizeof(where)));
    q->outage = 0;
    q->outage_attempts = 0;
    nq_send(q);
}

/* The carbon protocol has nothing to say back: anything read is ignored,
 * and end-of-file or an error means the connection is gone. */
static void nq_read(netq *q)
{
    char buf[4096];
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t r = recv(q->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r > 0)
            continue;
        if (r == 0) {
            nq_lost(q, 0);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            nq_lost(q, errno);
        return;
    }
}

static void nq_on_fd(int fd, int events, void *arg)
{
    netq *q = arg;
    if (q->state == NQ_CONNECTING) {
        int err = net_connect_result(fd);
        if (err)
            nq_connect_failed(q, err);
        else
            nq_connected(q);
        return;
    }
    if (q->state != NQ_CONNECTED)
        return;
    if (events & SY_WATCH_READ) {
        nq_read(q);
        if (q->state != NQ_CONNECTED)
            return;
    }
    if (events & SY_WATCH_WRITE)
        nq_send(q);
}

static void nq_on_timer(void *arg)
{
    netq *q = arg;
    if (q->state == NQ_CONNECTING) {
        nq_connect_failed(q, ETIMEDOUT);
        return;
    }
    if (q->state == NQ_WAITING) {
        if (q->attempted)
            q->api->stat_add(q->host, SY_STAT_RECONNECTS, 1);
        q->attempted = 1;
        nq_connect(q);
    }
}

static void nq_connect(netq *q)
{
    const net_addr *a = &q->addrs[q->cur];
    int rc = net_connect(a, SOCK_STREAM, &q->fd);
    if (rc < 0) {
        nq_connect_failed(q, errno);
        return;
    }
    q->watch = q->api->watch_new(q->host, q->fd, nq_on_fd, q);
    q->watch_events = 0;
    if (!q->watch) {
        nq_connect_failed(q, ENOMEM);
        return;
    }
    q->state = NQ_CONNECTING;
    if (rc == 1) {
        nq_connected(q);
        return;
    }
    nq_set_watch(q, SY_WATCH_WRITE);
    q->api->timer_start(q->timer, q->connect_timeout_ms);
}

netq *netq_new(const sy_host_api *api, sy_host *host, const netq_config *cfg,
               char *err, size_t errlen)
{
    netq *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q->api = api;
    q->host = host;
    q->fd = -1;
    q->max_bytes = cfg->max_bytes;
    q->min_ms = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : 100;
    q->max_ms = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : 30000;
    if (q->max_ms < q->min_ms)
        q->max_ms = q->min_ms;
    q->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000;
    q->rng = backoff_seed(api->monotonic_ms(host), (uint64_t)(uintptr_t)q);
    net_label(q->label, sizeof(q->label), cfg->host, cfg->port);

    char list[512];
    int n = net_resolve(cfg->host, cfg->port, SOCK_STREAM, q->addrs, NET_MAX_ADDRS, list,
                        sizeof(list), err, errlen);
    if (n < 0)
        goto fail;
    q->naddrs = (size_t)n;
    api->log(host, strcmp(q->label, list) == 0 ? SY_LOG_DEBUG : SY_LOG_INFO, "%s resolves to %s",
             q->label, list);
    q->timer = api->timer_new(host, nq_on_timer, q);
    if (!q->timer) {
        snprintf(err, errlen, "cannot create a timer");
        goto fail;
    }
    api->stat_set(host, SY_STAT_CONNECTED, 0);
    nq_publish(q);
    nq_schedule(q, 0); /* connect from the loop, not from init */
    return q;
fail:
    free(q);
    return NULL;
}

void netq_free(netq *q)
{
    if (!q)
        return;
    nq_close_fd(q);
    q->api->timer_free(q->timer);
    chunkq_clear(&q->cq);
    free(q);
}

char *netq_reserve(netq *q, size_t len)
{
    if (len > q->max_bytes || q->cq.bytes > q->max_bytes - len)
        return NULL;
    return chunkq_reserve(&q->cq, len);
}

void netq_commit(netq *q, size_t len)
{
    const char *p = q->cq.tail->data + q->cq.tail->end, *e = p + len;
    size_t n = 0;
    while ((p = memchr(p, '\n', (size_t)(e - p)))) {
        n++;
        p++;
    }
    chunkq_commit(&q->cq, len);
    q->lines += n;
}

int netq_append(netq *q, const void *data, size_t len)
{
    char *p = netq_reserve(q, len);
    if (!p)
        return -1;
    memcpy(p, data, len);
    netq_commit(q, len);
    return 0;
}

void netq_kick(netq *q)
{
    nq_publish(q);
    nq_update_watch(q);
}

size_t netq_lines(const netq *q)
{
    return q->lines;
}

size_t netq_max_bytes(const netq *q)
{
    return q->max_bytes;
}

uint64_t netq_sent(const netq *q)
{
    return q->sent_lines;
}

size_t netq_bytes(const netq *q)
{
    return q->cq.bytes;
}

int netq_connected(const netq *q)
{
    return q->state == NQ_CONNECTED;
}
