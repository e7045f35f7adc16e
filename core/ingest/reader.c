/*
 * reader.c - reader threads: datagram sockets and stream connections to
 * rings.
 *
 * Datagram sockets: one thread per socket, recvmmsg with MSG_DONTWAIT in
 * batches into fixed scratch buffers, one ring record per datagram, poll()
 * only when the socket is empty.  No allocation and no syscall per datagram.
 *
 * Streams: one libevent thread for every stream listener.  Each connection
 * has a buffer of max_line + 1 bytes; after each read the complete lines at
 * its front become one record and the partial last line stays for the next
 * read.  When the ring is full the connection's read event is removed and a
 * 1 ms timer retries paused connections in the order they paused; the kernel
 * socket buffer fills meanwhile and TCP flow control slows the client.
 *
 * Stop: an eventfd written once and never read stays readable, so every
 * thread's poll/event loop sees it.
 */
#include "ingest/reader.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "ingest/framing.h"
#include "util/log.h"
#include "util/clock.h"
#include "util/fail.h"

#define DGRAM_BATCH 64
#define DGRAM_MAX (64u << 10)       /* the largest datagram accepted */
#define DRAIN_MS 3000               /* how long stop waits for ring room */
/* A busy UDP reader naps this long instead of waiting on its socket (see
 * dgram_main), when the socket's receive buffer is at least NAP_RCVBUF. */
#define NAP_US 200
#define NAP_RCVBUF (4 << 20)
#define RETRY_US 1000               /* paused connections are retried this often */
#define ACCEPT_BATCH 64
#define ACCEPT_BACKOFF_MS 100       /* after EMFILE and friends */
/* A full listener closes its longest-idle connection for a new one only
 * if that one has been silent at least this long: when every connection
 * is busy, turning one away is better than churning them all. */
#define EVICT_MIN_IDLE_MS 1000

static sy_ratelimit rl_dropped = SY_RATELIMIT_INIT(10000, 1);
static sy_ratelimit rl_too_long = SY_RATELIMIT_INIT(10000, 5);
static sy_ratelimit rl_conn = SY_RATELIMIT_INIT(10000, 5);
static sy_ratelimit rl_error = SY_RATELIMIT_INIT(10000, 5);

typedef struct stream_ctx stream_ctx;

/* Scratch space of one datagram thread, allocated once. */
typedef struct dgram_scratch {
    struct mmsghdr msgs[DGRAM_BATCH];
    struct iovec iov[DGRAM_BATCH];
    struct sockaddr_storage names[DGRAM_BATCH];
    char *buf;                          /* DGRAM_BATCH slots of DGRAM_MAX + 1 bytes */
} dgram_scratch;

typedef struct reader {
    sy_readers *rs;
    sy_ring *ring;
    pthread_t tid;
    bool started;
    /* datagram thread */
    sy_listener *l;
    int fd;
    dgram_scratch *scratch;
    /* stream thread */
    stream_ctx *stream;
} reader;

struct sy_readers {
    int stop_fd;                        /* eventfd, written once by stop */
    atomic_bool stopping;
    bool stopped;
    size_t nreaders;
    reader *readers;
    sy_ring **rings;
};

static inline void count(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static void sleep_us(long us)
{
    struct timespec ts = { .tv_sec = 0, .tv_nsec = us * 1000 };
    nanosleep(&ts, NULL);
}

/* The sender of an IP datagram or connection; IPv4-mapped IPv6 addresses
 * (a dual-stack socket) become plain IPv4. */
static void origin_from_addr(sy_origin *o, uint16_t listener, const struct sockaddr_storage *ss)
{
    memset(o, 0, sizeof *o);
    o->listener = listener;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)ss;
        o->family = AF_INET;
        o->port = ntohs(in->sin_port);
        memcpy(o->addr, &in->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)ss;
        o->port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            o->family = AF_INET;
            memcpy(o->addr, in6->sin6_addr.s6_addr + 12, 4);
        } else {
            o->family = AF_INET6;
            memcpy(o->addr, &in6->sin6_addr, 16);
        }
    } else if (ss->ss_family == AF_UNIX) {
        o->family = AF_UNIX;
    }
}

/* ---- datagram threads ------------------------------------------------ */

static dgram_scratch *dgram_scratch_new(void)
{
    dgram_scratch *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    /* Pages are only touched as datagrams land in them. */
    s->buf = malloc((size_t)DGRAM_BATCH * (DGRAM_MAX + 1));
    if (!s->buf) {
        free(s);
        return NULL;
    }
    for (int i = 0; i < DGRAM_BATCH; i++) {
        s->iov[i].iov_base = s->buf + (size_t)i * (DGRAM_MAX + 1);
        s->iov[i].iov_len = DGRAM_MAX + 1;
        s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
        s->msgs[i].msg_hdr.msg_iovlen = 1;
        s->msgs[i].msg_hdr.msg_name = &s->names[i];
        s->msgs[i].msg_hdr.msg_namelen = sizeof s->names[i];
    }
    return s;
}

static void dgram_scratch_free(dgram_scratch *s)
{
    if (s)
        free(s->buf);
    free(s);
}

/* Queue one batch from recvmmsg; the counters are updated once per batch. */
static void dgram_batch(reader *r, int n, bool is_unix)
{
    dgram_scratch *s = r->scratch;
    sy_listener *l = r->l;
    uint64_t bytes = 0, dropped = 0, too_long = 0;
    sy_origin o;

    if (is_unix) {
        memset(&o, 0, sizeof o);
        o.listener = l->index;
        o.family = AF_UNIX;
    }
    for (int i = 0; i < n; i++) {
        struct mmsghdr *m = &s->msgs[i];
        size_t len = m->msg_len;
        bytes += len;
        if ((m->msg_hdr.msg_flags & MSG_TRUNC) || len > DGRAM_MAX) {
            too_long++;
        } else {
            /* Empty datagrams too: statsd counts them in packets_received. */
            if (!is_unix)
                origin_from_addr(&o, l->index, &s->names[i]);
            if (sy_ring_push_quiet(r->ring, &o, s->iov[i].iov_base, len) != 0)
                dropped++;
        }
        m->msg_hdr.msg_namelen = sizeof s->names[i];
    }
    sy_ring_wake(r->ring);
    count(&l->stats.received, (uint64_t)n);
    count(&l->stats.bytes, bytes);
    if (too_long) {
        count(&l->stats.lines_too_long, too_long);
        sy_log_limited(&rl_too_long, SY_WARN, "%s: datagram larger than %u bytes skipped",
                       l->name, DGRAM_MAX);
    }
    if (dropped) {
        count(&l->stats.dropped, dropped);
        sy_log_limited(&rl_dropped, SY_WARN,
                       "%s: ring full, datagrams dropped (%llu so far); the aggregator is not keeping up",
                       l->name, (unsigned long long)atomic_load_explicit(&l->stats.dropped,
                                                                         memory_order_relaxed));
    }
}

/*
 * Read until the socket is empty, then sleep in poll() on the socket and
 * the stop eventfd.  The stop flag is also checked between batches so a
 * flood cannot hide it.  Once stopping, drain what the kernel holds (up to
 * DRAIN_MS) and leave.
 *
 * Over loopback a sender delivers its datagram itself, and when a reader
 * waits on the socket the sender also wakes it: on a busy stream of small
 * datagrams that wake-up is a fifth of the sender's cost, and the reader
 * then takes a handful of datagrams per recvmmsg.  So a UDP reader whose
 * last wait ended within NAP_US naps NAP_US instead, off the socket's wait
 * queue, and finds a fuller batch; a nap that finds nothing goes back to
 * poll(), so an idle or trickling socket costs no extra wake-ups.  The
 * receive buffer holds the nap: at a million datagrams a second, NAP_US
 * is about 200 KB of it, so readers with less than NAP_RCVBUF (SO_RCVBUF
 * capped by rmem_max) do not nap.  Unix datagram sockets never nap: their
 * senders block or fail when a short queue (net.unix.max_dgram_qlen) fills.
 */
static void *dgram_main(void *arg)
{
    reader *r = arg;
    sy_readers *rs = r->rs;
    bool is_unix = r->l->kind == SY_LISTEN_UNIXGRAM;
    bool draining = false;
    uint64_t deadline = 0;
    int rcvbuf = 0;
    socklen_t len = sizeof rcvbuf;
    bool may_nap = !is_unix && getsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len) == 0 &&
                   rcvbuf / 2 >= NAP_RCVBUF;
    bool busy = false, napped = false;

    for (;;) {
        int n = recvmmsg(r->fd, r->scratch->msgs, DGRAM_BATCH, MSG_DONTWAIT, NULL);
        if (n > 0) {
            napped = false;
            dgram_batch(r, n, is_unix);
            if (!draining && atomic_load_explicit(&rs->stopping, memory_order_relaxed)) {
                draining = true;
                deadline = sy_mono_ms() + DRAIN_MS;
            }
            if (draining && sy_mono_ms() > deadline)
                break;
            continue;
        }
        int e = n < 0 ? errno : EAGAIN;
        if (e == EINTR)
            continue;
        bool failed = e != EAGAIN && e != EWOULDBLOCK;
        if (failed)
            sy_log_limited(&rl_error, SY_WARN, "%s: recvmmsg: %s", r->l->name, strerror(e));
        if (draining)
            break;
        if (may_nap && busy && !napped && !failed &&
            !atomic_load_explicit(&rs->stopping, memory_order_relaxed)) {
            napped = true;
            sleep_us(NAP_US);
            continue;
        }
        struct pollfd p[2] = { { .fd = r->fd, .events = POLLIN }, { .fd = rs->stop_fd, .events = POLLIN } };
        /* After an error, wait a little instead of spinning on it. */
        uint64_t waited = sy_mono_us();
        int rc = poll(p, 2, failed ? 10 : -1);
        busy = !failed && sy_mono_us() - waited < NAP_US;
        napped = false;
        if (rc > 0 && (p[1].revents & POLLIN) && !draining) {
            draining = true;
            deadline = sy_mono_ms() + DRAIN_MS;
        }
    }
    return NULL;
}

/* ---- stream thread --------------------------------------------------- */

typedef struct conn conn;

typedef struct stream_listener {
    stream_ctx *ctx;
    sy_listener *l;
    struct event *ev;                   /* accept */
    const struct timeval *idle;         /* libevent common timeout, or NULL */
    size_t cap;                         /* connection buffer: max_line + 1 */
    unsigned open;
    conn *recent, *stale;               /* this listener's connections, last read first */
} stream_listener;

struct stream_ctx {
    sy_readers *rs;
    sy_ring *ring;
    struct event_base *base;
    struct event *stop_ev;
    struct event *retry_ev;
    struct event *accept_resume_ev;
    stream_listener *sl;
    size_t nsl;
    conn *conns;                        /* every open connection */
    conn *paused_head, *paused_tail;    /* FIFO of connections waiting for ring room */
};

struct conn {
    stream_listener *sl;
    int fd;
    struct event *ev;
    conn *prev, *next;
    conn *pnext;                        /* paused FIFO */
    conn *newer, *older;                /* the listener's list, by last read */
    uint64_t last_read_ms;              /* sy_mono_coarse_ms() */
    bool paused;                        /* waiting for ring room */
    bool eof;                           /* the peer closed its side */
    sy_frame f;                         /* lines in buf (framing.h) */
    sy_origin origin;
    char buf[];                         /* sl->cap bytes */
};

static void lru_unlink(conn *c)
{
    stream_listener *sl = c->sl;
    if (c->newer)
        c->newer->older = c->older;
    else
        sl->recent = c->older;
    if (c->older)
        c->older->newer = c->newer;
    else
        sl->stale = c->newer;
    c->newer = c->older = NULL;
}

/* c was just read from (or accepted): first in its listener's list. */
static void lru_touch(conn *c)
{
    stream_listener *sl = c->sl;
    c->last_read_ms = sy_mono_coarse_ms();
    if (sl->recent == c)
        return;
    if (c->newer || c->older)
        lru_unlink(c);
    c->older = sl->recent;
    if (sl->recent)
        sl->recent->newer = c;
    sl->recent = c;
    if (!sl->stale)
        sl->stale = c;
}

/*
 * Close a connection; whatever it still holds is lost and counted: complete
 * lines that never found ring room (only when stop gives up waiting) and a
 * final line after EOF as dropped, a partial line as partial_discarded.
 */
static void conn_close(conn *c)
{
    stream_listener *sl = c->sl;
    sy_listener *l = sl->l;
    size_t tail = c->f.len - c->f.pending;

    if (c->f.pending)
        count(&l->stats.dropped, 1);
    if (tail && !c->f.discarding)
        count(c->eof ? &l->stats.dropped : &l->stats.partial_discarded, 1);
    /* Counters first: whoever sees the close also sees them. */
    lru_unlink(c);
    sl->open--;
    atomic_fetch_sub_explicit(&l->stats.connections_open, 1, memory_order_relaxed);
    event_free(c->ev);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        sl->ctx->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

/* Queue the complete lines at the front of the buffer (-1: ring full, try
 * again later), then enforce max_line on the partial line that is left. */
static int conn_flush(conn *c)
{
    size_t n;
    const char *lines = sy_frame_lines(&c->f, &n);
    if (lines) {
        if (sy_ring_push(c->sl->ctx->ring, &c->origin, lines, n) != 0)
            return -1;
        sy_frame_taken(&c->f);
    }
    if (sy_frame_overlong(&c->f)) {
        /* max_line bytes and still no newline: skipped to the next one. */
        count(&c->sl->l->stats.lines_too_long, 1);
        sy_log_limited(&rl_too_long, SY_WARN, "%s: line longer than %zu bytes skipped",
                       c->sl->l->name, c->sl->cap - 1);
    }
    return 0;
}

/* Take n bytes just read into the frame.  -1 when the ring is full. */
static int conn_take(conn *c, size_t n)
{
    sy_frame_add(&c->f, n);
    return conn_flush(c);
}

/* After EOF: the last line, even without a newline, is data (Etsy statsd
 * loses it).  -1 when the ring is full. */
static int conn_push_final(conn *c)
{
    size_t n;
    const char *last = sy_frame_last(&c->f, &n);
    if (last && sy_ring_push(c->sl->ctx->ring, &c->origin, last, n) != 0)
        return -1;
    sy_frame_clear(&c->f);
    return 0;
}

static const struct timeval retry_tv = { 0, RETRY_US };

static void conn_pause(conn *c)
{
    stream_ctx *ctx = c->sl->ctx;

    event_del(c->ev);
    c->paused = true;
    c->pnext = NULL;
    if (ctx->paused_tail)
        ctx->paused_tail->pnext = c;
    else
        ctx->paused_head = c;
    ctx->paused_tail = c;
    count(&c->sl->l->stats.paused, 1);
    if (!evtimer_pending(ctx->retry_ev, NULL))
        evtimer_add(ctx->retry_ev, &retry_tv);
}

/* Paused connections resume in the order they paused; the first one that
 * still does not fit ends the round. */
static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    stream_ctx *ctx = arg;
    conn *c;

    while ((c = ctx->paused_head)) {
        if ((c->eof ? conn_push_final(c) : conn_flush(c)) != 0)
            break;
        ctx->paused_head = c->pnext;
        if (!ctx->paused_head)
            ctx->paused_tail = NULL;
        c->paused = false;
        if (c->eof)
            conn_close(c);
        else
            event_add(c->ev, c->sl->idle);
    }
    if (ctx->paused_head)
        evtimer_add(ctx->retry_ev, &retry_tv);
}

static void conn_cb(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    sy_listener *l = c->sl->l;

    if (what & EV_TIMEOUT) {
        count(&l->stats.idle_closed, 1);
        conn_close(c);
        return;
    }
    size_t room;
    char *to = sy_frame_space(&c->f, &room);
    ssize_t n = read(fd, to, room);
    if (n > 0) {
        count(&l->stats.received, 1);
        count(&l->stats.bytes, (uint64_t)n);
        lru_touch(c);
        if (conn_take(c, (size_t)n) != 0)
            conn_pause(c);
    } else if (n == 0) {
        c->eof = true;
        if (conn_push_final(c) != 0)
            conn_pause(c);
        else
            conn_close(c);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        sy_log_limited(&rl_error, SY_DEBUG, "%s: read: %s", l->name, strerror(errno));
        conn_close(c);
    }
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    stream_ctx *ctx = arg;
    for (size_t i = 0; i < ctx->nsl; i++)
        event_add(ctx->sl[i].ev, NULL);
}

/* Out of file descriptors or memory: the connection stays in the backlog
 * and a level-triggered accept event would spin, so stop accepting for a
 * moment. */
static void accept_backoff(stream_ctx *ctx)
{
    struct timeval tv = { 0, ACCEPT_BACKOFF_MS * 1000 };
    for (size_t i = 0; i < ctx->nsl; i++)
        event_del(ctx->sl[i].ev);
    evtimer_add(ctx->accept_resume_ev, &tv);
}

/*
 * The listener is full: close its connection that has been silent longest,
 * if that is at least EVICT_MIN_IDLE_MS, so that a new client is served now
 * rather than after idleTimeout (4096 idle connections would otherwise
 * lock everyone out for the default 5 minutes).  Closing the idlest is
 * chosen over a shorter timeout under pressure because it frees exactly
 * one place per newcomer, at once, and never touches a connection that is
 * sending.  A paused connection (its data waiting for ring room) is not
 * idle and is skipped.  1 when a place was freed.
 */
static int evict_idlest(stream_listener *sl)
{
    sy_listener *l = sl->l;
    uint64_t now = sy_mono_coarse_ms();
    for (conn *c = sl->stale; c; c = c->newer) {
        if (now - c->last_read_ms < EVICT_MIN_IDLE_MS)
            return 0; /* the rest were read more recently still */
        if (c->paused)
            continue;
        count(&l->stats.evicted, 1);
        sy_log_limited(&rl_conn, SY_WARN, "%s: %u connections open (maxConnections); closed the "
                       "one idle longest (%.1f s) to serve a new one", l->name, sl->open,
                       (double)(now - c->last_read_ms) / 1000.0);
        conn_close(c);
        return 1;
    }
    return 0;
}

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
    stream_listener *sl = arg;
    stream_ctx *ctx = sl->ctx;
    sy_listener *l = sl->l;

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof ss;
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == EPERM)
                continue;
            sy_log_limited(&rl_conn, SY_WARN, "%s: accept: %s; not accepting for %d ms",
                           l->name, strerror(errno), ACCEPT_BACKOFF_MS);
            accept_backoff(ctx);
            return;
        }
        if (sl->open >= l->max_connections && !evict_idlest(sl)) {
            count(&l->stats.connections_rejected, 1);
            close(cfd);
            sy_log_limited(&rl_conn, SY_WARN, "%s: %u connections open, refusing more",
                           l->name, sl->open);
            continue;
        }
        conn *c = malloc(sizeof *c + sl->cap);
        if (!c) {
            close(cfd);
            count(&l->stats.connections_rejected, 1);
            sy_log_limited(&rl_conn, SY_WARN, "%s: out of memory for a connection", l->name);
            continue;
        }
        memset(c, 0, sizeof *c);
        c->sl = sl;
        c->fd = cfd;
        sy_frame_init(&c->f, c->buf, sl->cap);
        if (l->kind == SY_LISTEN_UNIX) {
            c->origin.listener = l->index;
            c->origin.family = AF_UNIX;
        } else {
            origin_from_addr(&c->origin, l->index, &ss);
        }
        /* EV_PERSIST with a timeout: libevent restarts the timeout each
         * time the event fires, which makes it an idle timer. */
        c->ev = event_new(ctx->base, cfd, EV_READ | EV_PERSIST, conn_cb, c);
        if (!c->ev || event_add(c->ev, sl->idle) != 0) {
            if (c->ev)
                event_free(c->ev);
            close(cfd);
            free(c);
            count(&l->stats.connections_rejected, 1);
            sy_log_limited(&rl_conn, SY_WARN, "%s: cannot watch a new connection", l->name);
            continue;
        }
        c->next = ctx->conns;
        if (ctx->conns)
            ctx->conns->prev = c;
        ctx->conns = c;
        lru_touch(c); /* a new connection counts as just read */
        sl->open++;
        count(&l->stats.connections_accepted, 1);
        count(&l->stats.connections_open, 1);
    }
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    stream_ctx *ctx = arg;
    event_base_loopbreak(ctx->base);
}

/*
 * At stop: read what the kernel already holds for this connection and
 * queue it, waiting for ring room until the deadline.  The partial last
 * line is queued only if the peer has closed; otherwise the peer may still
 * be writing it, and it is counted as discarded (by conn_close).
 */
static void conn_drain(conn *c, uint64_t deadline)
{
    for (;;) {
        size_t n;
        while (c->f.pending || (c->eof && sy_frame_last(&c->f, &n))) {
            if ((c->f.pending ? conn_flush(c) : conn_push_final(c)) == 0)
                continue;
            if (sy_mono_ms() >= deadline)
                goto out;
            sleep_us(RETRY_US);
        }
        if (c->eof || sy_mono_ms() >= deadline)
            goto out;
        size_t room;
        char *to = sy_frame_space(&c->f, &room);
        ssize_t r = read(c->fd, to, room);
        if (r > 0) {
            count(&c->sl->l->stats.received, 1);
            count(&c->sl->l->stats.bytes, (uint64_t)r);
            conn_take(c, (size_t)r);
        } else if (r == 0) {
            c->eof = true;
        } else if (errno != EINTR) {
            goto out;   /* EAGAIN: nothing more for now; or an error */
        }
    }
out:
    conn_close(c);
}

static void stream_shutdown(stream_ctx *ctx)
{
    size_t nconn = 0;

    /* No new connections: close the listening sockets now, so clients get
     * refused instead of waiting in a backlog nobody reads. */
    for (size_t i = 0; i < ctx->nsl; i++) {
        sy_listener *l = ctx->sl[i].l;
        event_del(ctx->sl[i].ev);
        for (int j = 0; j < l->nfds; j++) {
            if (l->fds[j] >= 0)
                close(l->fds[j]);
            l->fds[j] = -1;
        }
        l->nfds = 0;
    }
    evtimer_del(ctx->retry_ev);
    evtimer_del(ctx->accept_resume_ev);
    ctx->paused_head = ctx->paused_tail = NULL;

    uint64_t deadline = sy_mono_ms() + DRAIN_MS;
    while (ctx->conns) {
        conn_drain(ctx->conns, deadline);
        nconn++;
    }
    if (nconn)
        sy_log(SY_INFO, "stream readers: drained and closed %zu connections", nconn);
}

static void *stream_main(void *arg)
{
    reader *r = arg;
    if (event_base_dispatch(r->stream->base) < 0)
        sy_log(SY_ERR, "stream readers: event loop failed");
    stream_shutdown(r->stream);
    return NULL;
}

static void stream_ctx_free(stream_ctx *ctx)
{
    if (!ctx)
        return;
    while (ctx->conns)
        conn_close(ctx->conns);
    for (size_t i = 0; i < ctx->nsl; i++)
        if (ctx->sl[i].ev)
            event_free(ctx->sl[i].ev);
    if (ctx->stop_ev)
        event_free(ctx->stop_ev);
    if (ctx->retry_ev)
        event_free(ctx->retry_ev);
    if (ctx->accept_resume_ev)
        event_free(ctx->accept_resume_ev);
    if (ctx->base)
        event_base_free(ctx->base);
    free(ctx->sl);
    free(ctx);
}

static stream_ctx *stream_ctx_new(sy_readers *rs, sy_listener *ls, size_t n, sy_ring *ring,
                                  char *err, size_t errlen)
{
    stream_ctx *ctx = calloc(1, sizeof *ctx);
    size_t max_record = sy_ring_max_record(ring);

    if (!ctx)
        goto nomem;
    ctx->rs = rs;
    ctx->ring = ring;
    ctx->sl = calloc(n, sizeof *ctx->sl);
    ctx->base = event_base_new();
    if (!ctx->sl || !ctx->base)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        sy_listener *l = &ls[i];
        if (!sy_listener_is_stream(l))
            continue;
        stream_listener *sl = &ctx->sl[ctx->nsl++];
        sl->ctx = ctx;
        sl->l = l;
        /* All complete lines of one buffer must fit one ring record. */
        sl->cap = l->max_line < max_record ? l->max_line + 1 : max_record;
        if (sl->cap - 1 < l->max_line)
            sy_log(SY_WARN, "%s: max_line %zu is more than a ring record holds; using %zu "
                   "(raise the ring capacity)", l->name, l->max_line, sl->cap - 1);
        if (l->idle_timeout_ms) {
            struct timeval tv = { .tv_sec = l->idle_timeout_ms / 1000,
                                  .tv_usec = (l->idle_timeout_ms % 1000) * 1000 };
            sl->idle = event_base_init_common_timeout(ctx->base, &tv);
        }
        sl->ev = event_new(ctx->base, l->fds[0], EV_READ | EV_PERSIST, accept_cb, sl);
        if (!sl->ev || event_add(sl->ev, NULL) != 0)
            goto nomem;
    }
    ctx->stop_ev = event_new(ctx->base, rs->stop_fd, EV_READ, stop_cb, ctx);
    ctx->retry_ev = evtimer_new(ctx->base, retry_cb, ctx);
    ctx->accept_resume_ev = evtimer_new(ctx->base, accept_resume_cb, ctx);
    if (!ctx->stop_ev || !ctx->retry_ev || !ctx->accept_resume_ev ||
        event_add(ctx->stop_ev, NULL) != 0)
        goto nomem;
    return ctx;
nomem:
    sy_fail(err, errlen, "stream readers: cannot set up the event loop");
    stream_ctx_free(ctx);
    return NULL;
}

/* ---- start / stop ---------------------------------------------------- */

sy_readers *sy_readers_start(sy_listener *listeners, size_t n, size_t ring_capacity,
                             sy_notify *notify, char *err, size_t errlen)
{
    sy_readers *rs = NULL;
    size_t nreaders = 0;
    bool has_stream = false;
    sigset_t all, old;

    if (n > (size_t)UINT16_MAX + 1) {
        sy_fail(err, errlen, "too many listeners (%zu)", n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (listeners[i].nfds <= 0) {
            sy_fail(err, errlen, "%s: not open", listeners[i].name);
            return NULL;
        }
        if (sy_listener_is_stream(&listeners[i]))
            has_stream = true;
        else
            nreaders += (size_t)listeners[i].nfds;
        listeners[i].index = (uint16_t)i;
    }
    nreaders += has_stream;

    rs = calloc(1, sizeof *rs);
    if (!rs)
        goto nomem;
    rs->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    rs->readers = calloc(nreaders ? nreaders : 1, sizeof *rs->readers);
    rs->rings = calloc(nreaders ? nreaders : 1, sizeof *rs->rings);
    if (rs->stop_fd < 0 || !rs->readers || !rs->rings)
        goto nomem;
    atomic_init(&rs->stopping, false);
    rs->nreaders = nreaders;

    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        sy_listener *l = &listeners[i];
        if (sy_listener_is_stream(l))
            continue;
        for (int j = 0; j < l->nfds; j++, k++) {
            reader *r = &rs->readers[k];
            r->rs = rs;
            r->l = l;
            r->fd = l->fds[j];
            r->ring = rs->rings[k] = sy_ring_new(ring_capacity, notify);
            r->scratch = dgram_scratch_new();
            if (!r->ring || !r->scratch)
                goto nomem;
            if (j == 0 && sy_ring_max_record(r->ring) < DGRAM_MAX)
                sy_log(SY_WARN, "%s: a ring record holds at most %zu bytes; larger datagrams "
                       "will be dropped (raise the ring capacity)", l->name,
                       sy_ring_max_record(r->ring));
        }
    }
    if (has_stream) {
        reader *r = &rs->readers[k];
        r->rs = rs;
        r->fd = -1;
        r->ring = rs->rings[k] = sy_ring_new(ring_capacity, notify);
        if (!r->ring)
            goto nomem;
        r->stream = stream_ctx_new(rs, listeners, n, r->ring, err, errlen);
        if (!r->stream)
            goto fail;
    }

    /* Signals belong to the main thread: the readers start with all of
     * them blocked. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (k = 0; k < nreaders; k++) {
        reader *r = &rs->readers[k];
        int rc = pthread_create(&r->tid, NULL, r->stream ? stream_main : dgram_main, r);
        if (rc != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            sy_fail(err, errlen, "cannot start a reader thread: %s", strerror(rc));
            goto fail;
        }
        r->started = true;
        char name[16];
        if (r->stream)
            snprintf(name, sizeof name, "sy-stream");
        else
            snprintf(name, sizeof name, "sy-dgram%u", (unsigned)(k % 1000));
        pthread_setname_np(r->tid, name);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rs;

nomem:
    sy_fail(err, errlen, "readers: out of memory");
fail:
    sy_readers_free(rs);
    return NULL;
}

size_t sy_readers_rings(sy_readers *rs, sy_ring ***out)
{
    *out = rs->rings;
    return rs->nreaders;
}

void sy_readers_stop(sy_readers *rs)
{
    if (!rs || rs->stopped)
        return;
    atomic_store(&rs->stopping, true);
    if (rs->stop_fd >= 0) {
        uint64_t one = 1;
        ssize_t rc = write(rs->stop_fd, &one, sizeof one);
        (void)rc;
    }
    for (size_t i = 0; i < rs->nreaders; i++) {
        if (rs->readers[i].started)
            pthread_join(rs->readers[i].tid, NULL);
        rs->readers[i].started = false;
    }
    rs->stopped = true;
}

void sy_readers_free(sy_readers *rs)
{
    if (!rs)
        return;
    sy_readers_stop(rs);
    if (rs->readers) {
        for (size_t i = 0; i < rs->nreaders; i++) {
            dgram_scratch_free(rs->readers[i].scratch);
            stream_ctx_free(rs->readers[i].stream);
        }
    }
    if (rs->rings)
        for (size_t i = 0; i < rs->nreaders; i++)
            sy_ring_free(rs->rings[i]);
    if (rs->stop_fd >= 0)
        close(rs->stop_fd);
    free(rs->readers);
    free(rs->rings);
    free(rs);
}
