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

#include "chunkq.h"
#include "netconn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_IOV 64
#define READS_PER_EVENT 16

struct netq {
    const sy_host_api *api;
    sy_host *host;
    netconn *conn;

    chunkq cq;               /* the lines, whole */
    size_t lines, max_bytes;
    size_t wr_off;
    uint64_t sent_lines; /* whole lines written, ever */
};

static void nq_publish(netq *q)
{
    q->api->stat_set(q->host, SY_STAT_QUEUED, (int64_t)q->lines);
    q->api->stat_set(q->host, SY_STAT_QUEUED_BYTES, (int64_t)q->cq.bytes);
}

/* While connected: always read (to notice the peer closing), write only
 * while something is unsent. */
static void nq_update_watch(netq *q)
{
    netconn_want(q->conn, SY_WATCH_READ | (q->cq.bytes > q->wr_off ? SY_WATCH_WRITE : 0));
}

/* err 0: the peer closed the connection. */
static void nq_lost(netq *q, int err)
{
    netconn_lost(q->conn, err ? strerror(err) : NULL,
                 q->wr_off > 0 ? " (the line being written will be sent again whole)" : NULL);
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

size_t netq_take(netq *q, void (*fn)(void *ctx, const char *line, size_t len), void *ctx)
{
    size_t n = 0;
    for (chunkq_chunk *c = q->cq.head; c; c = c->next) {
        const char *p = c->data + c->start, *e = c->data + c->end;
        while (p < e) {
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            const char *end = nl ? nl : e;
            fn(ctx, p, (size_t)(end - p));
            n++;
            p = nl ? nl + 1 : e;
        }
    }
    chunkq_drop_front(&q->cq, q->cq.bytes);
    q->wr_off = 0;
    q->lines = 0;
    nq_publish(q);
    return n;
}

static void nq_send(netq *q)
{
    while (netconn_connected(q->conn) && q->cq.bytes > q->wr_off) {
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
        ssize_t w = netconn_writev(q->conn, iov, n);
        if (w < 0) {
            nq_lost(q, errno);
            nq_publish(q);
            return;
        }
        if (w > 0)
            nq_written(q, (size_t)w);
        if ((size_t)w < total)
            break; /* the socket buffer is full: wait until writable */
    }
    nq_update_watch(q);
    nq_publish(q);
}

/* The carbon protocol has nothing to say back: anything read is ignored,
 * and end-of-file or an error means the connection is gone. */
static void nq_read(netq *q)
{
    char buf[4096];
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t r = recv(netconn_fd(q->conn), buf, sizeof(buf), MSG_DONTWAIT);
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

/* The connection's events (lib/netconn). */
static void nq_on_connected(void *arg)
{
    nq_send(arg);
}

/* The line being written goes again, whole, on the next connection. */
static void nq_on_closed(void *arg)
{
    netq *q = arg;
    q->wr_off = 0;
}

static void nq_on_events(void *arg, int events)
{
    netq *q = arg;
    if (events & SY_WATCH_READ) {
        nq_read(q);
        if (!netconn_connected(q->conn))
            return;
    }
    if (events & SY_WATCH_WRITE)
        nq_send(q);
}

static void nq_on_timer(void *arg)
{
    (void)arg; /* netq sets no timer of its own while connected */
}

static size_t nq_queued(void *arg)
{
    return ((netq *)arg)->lines;
}

static const netconn_handler nq_handler = {
    .connected = nq_on_connected,
    .closed = nq_on_closed,
    .events = nq_on_events,
    .timer = nq_on_timer,
    .queued = nq_queued,
};

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
    q->max_bytes = cfg->max_bytes;
    char bound[64];
    snprintf(bound, sizeof(bound), "%zu bytes", q->max_bytes);
    netconn_config nc = {
        .host = cfg->host,
        .port = cfg->port,
        .reconnect_min_ms = cfg->reconnect_min_ms,
        .reconnect_max_ms = cfg->reconnect_max_ms,
        .connect_timeout_ms = cfg->connect_timeout_ms,
        .service = "",
        .noun = "lines",
        .bound = bound,
    };
    q->conn = netconn_new(api, host, &nc, &nq_handler, q, err, errlen);
    if (!q->conn) {
        free(q);
        return NULL;
    }
    nq_publish(q);
    return q;
}

void netq_free(netq *q)
{
    if (!q)
        return;
    netconn_free(q->conn);
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

void netq_commit_lines(netq *q, size_t len, size_t lines)
{
    chunkq_commit(&q->cq, len);
    q->lines += lines;
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
    return netconn_connected(q->conn);
}
