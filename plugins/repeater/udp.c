/*
 * udp.c - the repeater's UDP sender: a queue of whole lines per
 * destination, packed into datagrams, with ICMP errors and probes.
 */
#include "repeater.h"

/* ------------------------------------------------------------------ */
/* The UDP queue                                                       */
/* ------------------------------------------------------------------ */

char *uq_reserve(rdest *d, size_t len)
{
    size_t max = d->r->max_bytes;
    if (len > max || d->cq.bytes > max - len)
        return NULL;
    return chunkq_reserve(&d->cq, len);
}

/* One line at a time (the caller wrote exactly one). */
void uq_commit_line(rdest *d, size_t len)
{
    chunkq_commit(&d->cq, len);
    d->lines++;
}

void uq_free(rdest *d)
{
    chunkq_clear(&d->cq);
    d->lines = 0;
}

/* ------------------------------------------------------------------ */
/* The UDP socket                                                      */
/* ------------------------------------------------------------------ */

static void ud_open(rdest *d);

/* "statsd:8125 (10.0.0.5:8125)", or just "10.0.0.5:8125" when the
 * configured name is the address. */
const char *ud_where(const rdest *d, char *buf, size_t len)
{
    const char *addr = d->addrs[d->cur].text;
    if (strcmp(d->label, addr) == 0)
        return d->label;
    snprintf(buf, len, "%s (%s)", d->label, addr);
    return buf;
}

void ud_publish(rdest *d)
{
    d->api->stat_set(d->host, SY_STAT_QUEUED, (int64_t)d->lines);
    d->api->stat_set(d->host, SY_STAT_QUEUED_BYTES, (int64_t)d->cq.bytes);
}

static void ud_set_watch(rdest *d, int events)
{
    if (d->watch && events != d->watch_events) {
        d->api->watch_set(d->watch, events);
        d->watch_events = events;
    }
}

/* Always read: an ICMP error answering a datagram (or the probe) makes the
 * socket readable, so it is noticed even when nothing more is sent.  Write
 * while something is queued, unless an ICMP error stopped us. */
void ud_update_watch(rdest *d)
{
    ud_set_watch(d, SY_WATCH_READ | (d->cq.bytes && !d->icmp_down ? SY_WATCH_WRITE : 0));
}

void ud_close(rdest *d)
{
    if (d->watch) {
        d->api->watch_free(d->watch);
        d->watch = NULL;
    }
    d->watch_events = 0;
    d->probing = 0;
    if (d->fd >= 0) {
        close(d->fd);
        d->fd = -1;
    }
    d->api->stat_set(d->host, SY_STAT_CONNECTED, 0);
}

/* The same schedule as netq's reconnects. */
static uint64_t ud_backoff(rdest *d)
{
    return backoff_delay(d->failures, d->r->min_ms, d->r->max_ms, &d->rng);
}

/* A persistent error: close, and open again (the next address) later. */
static void ud_failed(rdest *d, const char *what, int err)
{
    ud_close(d);
    d->api->stat_add(d->host, SY_STAT_ERRORS, 1);
    d->failures++;
    uint64_t delay = ud_backoff(d);
    char where[400];
    d->api->log(d->host, d->failures > 1 ? SY_LOG_DEBUG : SY_LOG_WARN,
                "%s %s: %s; trying again in %llu ms, queueing up to %zu bytes meanwhile",
                what, ud_where(d, where, sizeof(where)), strerror(err),
                (unsigned long long)delay, d->r->max_bytes);
    d->cur = (d->cur + 1) % d->naddrs;
    d->api->timer_start(d->timer, delay);
}

static int is_icmp_error(int e)
{
    return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN;
}

/* Marks the destination as answered with ICMP errors: nothing more is
 * sent to it until a probe comes back clean. */
static void ud_refused(rdest *d, int err)
{
    d->icmp_down = 1;
    d->refused_unlogged++;
    ud_failed(d, "ICMP error from", err);
}

#define READS_PER_EVENT 16

/* Readable: nothing is expected back (what comes is ignored), so this is
 * an error, an ICMP one most likely. */
static void ud_read(rdest *d)
{
    char buf[512];
    for (int i = 0; i < READS_PER_EVENT; i++) {
        if (recv(d->fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
            continue;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return;
        if (is_icmp_error(e))
            ud_refused(d, e);
        else
            ud_failed(d, "error on the socket for", e);
        return;
    }
}

static void ud_on_fd(int fd, int events, void *arg)
{
    rdest *d = arg;
    if (events & SY_WATCH_READ) {
        ud_read(d);
        if (d->fd < 0)
            return;
    }
    if (events & SY_WATCH_WRITE)
        ud_send(d);
}

/* The probe's wait is over: an ICMP error answering it is pending on the
 * socket by now (on a network slower than PROBE_WAIT_MS it may come
 * later; then the next send finds it). */
static void ud_probe_done(rdest *d)
{
    int err = 0;
    socklen_t len = sizeof(err);
    d->probing = 0;
    if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        if (is_icmp_error(err))
            ud_refused(d, err);
        else
            ud_failed(d, "probe of", err);
        return;
    }
    char where[400];
    d->icmp_down = 0;
    d->failures = 0;
    d->api->stat_set(d->host, SY_STAT_CONNECTED, 1);
    d->api->log(d->host, SY_LOG_INFO, "%s answers again (no ICMP error), %zu lines queued",
                ud_where(d, where, sizeof(where)), d->lines);
    ud_send(d);
}

void ud_on_timer(void *arg)
{
    rdest *d = arg;
    if (d->probing) {
        ud_probe_done(d);
        return;
    }
    if (d->fd >= 0)
        return;
    if (d->attempted)
        d->api->stat_add(d->host, SY_STAT_RECONNECTS, 1);
    d->attempted = 1;
    ud_open(d);
}

/* socket + connect: for UDP both return at once.  After an ICMP error the
 * socket first sends a probe, an empty datagram (statsd and switchyard
 * ignore it), and the queue waits until no error answers it. */
static void ud_open(rdest *d)
{
    int fd;
    if (net_connect(&d->addrs[d->cur], SOCK_DGRAM, &fd) < 0) {
        ud_failed(d, "cannot open a socket to", errno);
        return;
    }
    d->fd = fd;
    d->watch = d->api->watch_new(d->host, fd, ud_on_fd, d);
    d->watch_events = 0;
    if (!d->watch) {
        ud_failed(d, "cannot watch the socket for", ENOMEM);
        return;
    }
    char where[400];
    if (d->icmp_down) {
        if (send(fd, "", 0, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN &&
            errno != EWOULDBLOCK) {
            int e = errno;
            if (is_icmp_error(e))
                ud_refused(d, e);
            else
                ud_failed(d, "cannot probe", e);
            return;
        }
        d->probing = 1;
        d->api->log(d->host, SY_LOG_DEBUG, "probing %s", ud_where(d, where, sizeof(where)));
        d->api->timer_start(d->timer, PROBE_WAIT_MS);
        ud_update_watch(d); /* an ICMP error fails the probe at once */
        return;
    }
    d->api->stat_set(d->host, SY_STAT_CONNECTED, 1);
    d->api->log(d->host, SY_LOG_INFO, "sending datagrams to %s", ud_where(d, where, sizeof(where)));
    ud_send(d);
}

/* The next datagram from the front of the queue, starting at byte `off`
 * of chunk `c`: as many whole lines as fit in max_dgram (at least one).
 * The datagram leaves out the last line's '\n'. */
static size_t ud_pack(const rdest *d, const chunkq_chunk *c, size_t off, size_t *lines)
{
    const char *base = c->data + off;
    size_t avail = c->end - off, used = 0, max_dgram = d->r->max_dgram;
    *lines = 0;
    while (used < avail) {
        const char *nl = memchr(base + used, '\n', avail - used);
        size_t ll = (size_t)(nl - (base + used)) + 1; /* lines always end in '\n' */
        if (*lines && used + ll - 1 > max_dgram)
            break;
        used += ll;
        (*lines)++;
    }
    return used;
}

/*
 * Sends from the front of the queue until it is empty, the socket is full
 * (EAGAIN: wait for writable), or CALLS_PER_EVENT calls were made (then
 * the write watch brings us back after other events had their turn).
 */
void ud_send(rdest *d)
{
    int calls = 0;
    while (d->fd >= 0 && !d->icmp_down && d->cq.bytes && calls < CALLS_PER_EVENT) {
        struct mmsghdr msgs[DGRAMS_PER_CALL];
        struct iovec iov[DGRAMS_PER_CALL];
        size_t dbytes[DGRAMS_PER_CALL], dlines[DGRAMS_PER_CALL];
        unsigned n = 0;
        const chunkq_chunk *c = d->cq.head;
        size_t off = c ? c->start : 0;
        while (c && n < DGRAMS_PER_CALL) {
            if (off >= c->end) {
                c = c->next;
                off = c ? c->start : 0;
                continue;
            }
            size_t used = ud_pack(d, c, off, &dlines[n]);
            iov[n].iov_base = (char *)c->data + off;
            iov[n].iov_len = used - 1;
            dbytes[n] = used;
            memset(&msgs[n], 0, sizeof(msgs[n]));
            msgs[n].msg_hdr.msg_iov = &iov[n];
            msgs[n].msg_hdr.msg_iovlen = 1;
            off += used;
            n++;
        }
        calls++;
        int sent = sendmmsg(d->fd, msgs, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                break;
            if (e == EMSGSIZE) {
                /* this datagram can never go: drop its lines */
                d->api->stat_add(d->host, SY_STAT_ERRORS, 1);
                d->api->stat_add(d->host, SY_STAT_DROPPED, (int64_t)dlines[0]);
                d->r->bad_unlogged += dlines[0];
                chunkq_drop_front(&d->cq, dbytes[0]);
                d->lines -= dlines[0];
                continue;
            }
            /* Most likely the ICMP answer to an earlier datagram: this one
             * was not sent; keep it queued until a probe is answered. */
            if (is_icmp_error(e))
                ud_refused(d, e);
            else
                ud_failed(d, "cannot send to", e);
            break;
        }
        d->failures = 0;
        size_t b = 0, l = 0;
        for (int i = 0; i < sent; i++) {
            b += dbytes[i];
            l += dlines[i];
        }
        chunkq_drop_front(&d->cq, b);
        d->lines -= l;
        d->sent_lines += l;
        d->api->stat_add(d->host, SY_STAT_SENT, (int64_t)l);
        if ((unsigned)sent < n)
            break; /* the socket buffer is full, or an error cut the batch:
                      the write watch brings us back */
    }
    ud_update_watch(d);
    ud_publish(d);
    if (d->refused_unlogged || d->r->bad_unlogged)
        rp_log(d->r, 0);
}
