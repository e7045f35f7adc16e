/*
 * repeater.c - forwards raw samples (pass-through routes), and optionally
 * flushed values, as StatsD lines to another statsd or switchyard, over UDP
 * or TCP, with a bounded queue and reconnects.
 *
 * Raw samples become the line the sender could have sent to the next hop
 * itself:
 *
 *   NAME:TEXT|TYPE[|@RATE][|#TAGS]\n        TYPE is c, g, ms or s
 *
 * TEXT is the value as sent (a gauge delta keeps its sign, a set member
 * its text), RATE is the effective sample rate (the sender's @rate times a
 * route's :sample), and NAME is the routed name.  A routed name carries
 * its tags graphite-style ("api.req;env=prod"), and when the sender used
 * DogStatsD tags ("api.req:1|c|#env:prod") those ";env=prod" parts were
 * made from them.  Sending both the name as it is and "|#env:prod" would
 * tag the key twice downstream ("api.req;env=prod;env=prod"), so when a
 * sample has DogStatsD tags the parts of the name made from them are cut
 * off and the tags are sent as they came: the next hop rebuilds the very
 * same key, and a trace sink there still sees the tags exactly as the
 * client wrote them.  Graphite-style tags written in the name itself are
 * kept in the name.
 *
 * Flushed values (setting `flushed`) are already final for their interval:
 * a counter's rate, a timer's mean or upper_90, a set's count.  Sent as
 * counters or timers they would be aggregated a second time downstream
 * (a rate divided by the flush interval again, statistics of statistics),
 * so they are sent as gauges, which the next hop stores unchanged.  A
 * negative value is written as "NAME:0|g" then "NAME:-V|g", because a
 * leading '-' makes a gauge line a delta.  The name is the full flushed
 * name ("stats.gauges.x"), so the next hop adds its own prefixes to it.
 *
 * Several destinations (a relay tier): with `destinations`, keys are spread
 * over several downstream statsd or switchyard instances by consistent
 * hashing, so that every sample of one key reaches the same aggregator
 * (a timer's percentiles and a set's count need all of a key's samples in
 * one place).  What is hashed is the routed name exactly as the sink gets
 * it, tags included ("api.req;env=prod"): that is the key the next hop
 * aggregates under (it rebuilds the very same key from the line), so
 * hashing it keeps every sample of one downstream key together, and keys
 * that differ only in a tag still spread over the tier.  A flushed value
 * (setting `flushed`) is placed by its full flushed name.
 *
 * `hashing` chooses how (see lib/shard.h):
 *   "ketama" (default)  a ring of 160 points per destination, laid out as
 *                       libketama does (md5 of "HOST:PORT-i"), named by
 *                       the "HOST:PORT" text as configured.  Adding or
 *                       removing any destination moves about 1/N of the
 *                       keys; the order of the list does not matter; a
 *                       down destination's keys go to the next
 *                       destinations round the ring, spread over them.
 *   "jump"              jump consistent hash over the list's order:
 *                       exact balance and exactly minimal movement, but
 *                       only when destinations are appended to or removed
 *                       from the END of the list (removing one in the
 *                       middle moves most keys).
 *
 * Each destination has its own connection, its own queue (each bounded by
 * maxQueueBytes) and its own reconnect backoff.  A destination is down
 * when, over TCP, it has not been connected for downAfterMs (since the
 * start, or since its connection was lost: connects keep failing), and,
 * over UDP, from an ICMP error (port unreachable and the like: nothing
 * listening) until a probe (an empty datagram, which statsd and switchyard
 * ignore) is no longer answered with one; a UDP destination whose socket
 * cannot even be opened is down after downAfterMs too.  `onDown` says what
 * happens to its share of the keys meanwhile:
 *   "queue" (default)   it waits in the destination's own queue and is
 *                       delivered when the destination is back; what does
 *                       not fit is dropped and counted (DROPPED);
 *   "rehash"            new samples of its keys go to the next up
 *                       destination (ketama: round the ring; jump: a
 *                       re-jump), so nothing waits on it; no other key
 *                       moves.  Lines queued for it before it was marked
 *                       down stay in its queue.  The moved samples are
 *                       counted per destination and logged (at most every
 *                       10 s, at info level, with the running total): the
 *                       sink statistics have no member for them, so SENT,
 *                       DROPPED and QUEUED keep their meaning (a rehashed
 *                       sample is sent, once, by the destination it went
 *                       to).  When every destination is down, keys stay
 *                       with their own destination (queued).
 *   Once it is back, its keys return to it: for one flush interval a
 *   key's samples may then be split between two aggregators.
 *
 * Statistics over several destinations: SENT, DROPPED, ERRORS and
 * RECONNECTS add up over them, QUEUED and QUEUED_BYTES are the sums of
 * their queues, and CONNECTED is the number of destinations connected
 * (for UDP: with a socket open and not answered with ICMP errors).
 *
 * UDP: one non-blocking socket connect()ed to each destination.  Lines are
 * packed into datagrams of at most maxDatagramBytes (a line longer than
 * that goes alone) and sent with sendmmsg when the socket is writable;
 * EAGAIN keeps the queue.  An ICMP error for an earlier datagram (nothing
 * listening) is counted and stops the sending: the socket is closed and,
 * after the reconnect backoff, opened again with a probe, an empty
 * datagram; when no ICMP error answers it within PROBE_WAIT_MS the queue
 * is sent again (nothing that was queued is lost; datagrams sent before
 * the first ICMP error came back are, as UDP goes).  Other persistent
 * errors close the socket and open it again with backoff, keeping the
 * queue.
 * TCP: lib/netq (reconnects with backoff, lines never cut in two).
 *
 * The queue is bounded in bytes.  A batch that does not fit the queue of a
 * destination that is connected and moving waits (SY_RETRY: the host holds
 * it, within retryMaxMetrics, and offers it again as the queue drains; see
 * lib/pace.h), so a flush or a burst larger than the queue is not cut
 * while the next hop keeps up.  When a destination is down or stuck, the
 * rest of a batch for it that its queue cannot take is dropped and
 * counted.  SENT counts lines, not datagrams.
 *
 * Settings:
 *   host              address or name, IPv4 or IPv6   (default "127.0.0.1")
 *   port              (default 8125)
 *   destinations      instead of host and port (giving both is an error):
 *                     a list of "HOST:PORT" ("[IPV6]:PORT"), or one such
 *                     string; each listed once
 *   hashing           "ketama" (default) or "jump", with destinations
 *   onDown            "queue" (default) or "rehash", with destinations
 *   downAfterMs       how long a TCP destination (or a UDP one whose
 *                     socket cannot be opened) may stay unconnected
 *                     before it counts as down        (default 5000)
 *   protocol          "udp" (default) or "tcp", for every destination
 *   maxQueueBytes     queue bound, per destination    (default 16 MiB)
 *   maxDatagramBytes  UDP payload size to pack up to  (default 1432)
 *   reconnectMinMs    first reconnect delay           (default 100)
 *   reconnectMaxMs    reconnect delay cap             (default 30000)
 *   connectTimeoutMs  one TCP connect attempt         (default 5000)
 *   flushed           "none" (default), "gauges" (flushed gauges only) or
 *                     "all" (every flushed value, switchyard's own too)
 *
 * Addresses are resolved once, at start.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "switchyard_sink.h"
#include "lib/backoff.h"
#include "lib/net.h"
#include "lib/settings.h"
#include "lib/netq.h"
#include "lib/pace.h"
#include "lib/shard.h"

#define LOG_EVERY_MS 10000
#define CHUNK_SIZE (64 * 1024)
#define DGRAMS_PER_CALL 64   /* datagrams handed to one sendmmsg */
#define CALLS_PER_EVENT 64   /* sendmmsg calls before yielding to the loop */
#define UDP_MAX_PAYLOAD 65507
#define PROBE_WAIT_MS 100    /* how long a UDP probe waits for an ICMP error */
#define MAX_DESTINATIONS 1024

enum { PROTO_UDP, PROTO_TCP };
enum { FLUSHED_NONE, FLUSHED_GAUGES, FLUSHED_ALL };
enum { ONDOWN_QUEUE, ONDOWN_REHASH };

/* The UDP queue: a list of chunks holding whole '\n'-terminated lines; a
 * line never spans two chunks, so a datagram is one contiguous run. */
typedef struct chunk {
    struct chunk *next;
    size_t size, start, end;
    char data[];
} chunk;

typedef struct repeater repeater;

/*
 * One destination.  Its code (netq, or the UDP sender below) talks to the
 * host through repeater.papi, a copy of the host's API whose functions
 * take the destination itself as the sy_host: they pass everything on to
 * the real host, except that the gauges (QUEUED, QUEUED_BYTES, CONNECTED)
 * are kept per destination and the host is given their sums.  So netq
 * needs no change to serve one of several destinations.
 */
typedef struct rdest {
    repeater *r;
    const sy_host_api *api;   /* &r->papi */
    sy_host *host;            /* this destination, as the proxy's sy_host */
    size_t index;
    char label[300];          /* host:port as configured */

    netq *tq;                 /* TCP */

    /* UDP */
    net_addr addrs[NET_MAX_ADDRS];
    size_t naddrs, cur;
    int fd;
    sy_watch *watch;
    int watch_events;
    sy_timer *timer;          /* reopen after an error; a probe's wait */
    unsigned failures;
    int attempted;
    int icmp_down;            /* an ICMP error came back; not yet probed clean */
    int probing;              /* a probe is out, the timer waits for its answer */
    uint64_t rng;
    chunk *head, *tail, *spare;
    size_t bytes, lines;

    /* the gauges as this destination's code last set them */
    int64_t connected, queued, queued_bytes;
    uint64_t unconnected_since; /* monotonic ms */
    int down;                 /* as last judged by rp_judge */
    int full;                 /* its queue refused a line in the current batch */
    uint64_t sent_lines;      /* UDP: lines sent since it was made */
    pace pace;                /* whether a batch waits for its queue */

    uint64_t drops_unlogged, refused_unlogged, rehashed_unlogged;
    uint64_t rehashed_total;  /* since it was last marked down */
} rdest;

struct repeater {
    const sy_host_api *api;
    sy_host *host;
    sy_host_api papi;         /* the per-destination proxy, see rdest */
    int proto;
    int flushed;
    int on_down;
    uint64_t down_after_ms;

    rdest *d;
    size_t nd;
    shard *ring;              /* NULL with one destination */
    unsigned char *up;        /* nd flags, by rp_judge */
    size_t ndown;

    uint64_t min_ms, max_ms;
    size_t max_dgram, max_bytes;

    /* sums of the destinations' gauges */
    int64_t connected, queued, queued_bytes;

    /* drops and errors are logged at a bounded rate */
    uint64_t last_log;        /* monotonic ms, 0 = never */
    uint64_t bad_unlogged;
};

static const char *const repeater_settings[] = {
    "host", "port", "destinations", "hashing", "onDown", "downAfterMs", "protocol",
    "maxQueueBytes", "maxDatagramBytes", "reconnectMinMs", "reconnectMaxMs",
    "connectTimeoutMs", "flushed", NULL
};

/* ------------------------------------------------------------------ */
/* The per-destination proxy of the host's API                         */
/* ------------------------------------------------------------------ */

#define PX(h) ((rdest *)(void *)(h))

__attribute__((format(printf, 3, 4)))
static void px_log(sy_host *h, int level, const char *fmt, ...)
{
    rdest *d = PX(h);
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    d->r->api->log(d->r->host, level, "%s", buf);
}

static const char *px_instance_name(sy_host *h)
{
    return PX(h)->r->api->instance_name(PX(h)->r->host);
}

static int px_setting_string(sy_host *h, const char *key, const char *dflt, const char **out)
{
    return PX(h)->r->api->setting_string(PX(h)->r->host, key, dflt, out);
}

static int px_setting_int(sy_host *h, const char *key, int64_t dflt, int64_t *out)
{
    return PX(h)->r->api->setting_int(PX(h)->r->host, key, dflt, out);
}

static int px_setting_number(sy_host *h, const char *key, double dflt, double *out)
{
    return PX(h)->r->api->setting_number(PX(h)->r->host, key, dflt, out);
}

static int px_setting_bool(sy_host *h, const char *key, int dflt, int *out)
{
    return PX(h)->r->api->setting_bool(PX(h)->r->host, key, dflt, out);
}

static int px_setting_list_len(sy_host *h, const char *key)
{
    return PX(h)->r->api->setting_list_len(PX(h)->r->host, key);
}

static const char *px_setting_list_string(sy_host *h, const char *key, int i)
{
    return PX(h)->r->api->setting_list_string(PX(h)->r->host, key, i);
}

static sy_timer *px_timer_new(sy_host *h, void (*cb)(void *arg), void *arg)
{
    return PX(h)->r->api->timer_new(PX(h)->r->host, cb, arg);
}

static sy_watch *px_watch_new(sy_host *h, int fd, void (*cb)(int fd, int events, void *arg),
                              void *arg)
{
    return PX(h)->r->api->watch_new(PX(h)->r->host, fd, cb, arg);
}

static struct event_base *px_event_base(sy_host *h)
{
    return PX(h)->r->api->event_base(PX(h)->r->host);
}

static uint64_t px_now_ms(sy_host *h)
{
    return PX(h)->r->api->now_ms(PX(h)->r->host);
}

static uint64_t px_monotonic_ms(sy_host *h)
{
    return PX(h)->r->api->monotonic_ms(PX(h)->r->host);
}

static void px_stat_add(sy_host *h, int stat, int64_t delta)
{
    PX(h)->r->api->stat_add(PX(h)->r->host, stat, delta);
}

static void px_stat_set(sy_host *h, int stat, int64_t value)
{
    rdest *d = PX(h);
    repeater *r = d->r;
    switch (stat) {
    case SY_STAT_CONNECTED:
        value = value ? 1 : 0;
        if (d->connected && !value)
            d->unconnected_since = r->api->monotonic_ms(r->host);
        r->connected += value - d->connected;
        d->connected = value;
        r->api->stat_set(r->host, stat, r->connected);
        break;
    case SY_STAT_QUEUED:
        r->queued += value - d->queued;
        d->queued = value;
        r->api->stat_set(r->host, stat, r->queued);
        break;
    case SY_STAT_QUEUED_BYTES:
        r->queued_bytes += value - d->queued_bytes;
        d->queued_bytes = value;
        r->api->stat_set(r->host, stat, r->queued_bytes);
        break;
    default:
        r->api->stat_set(r->host, stat, value);
    }
}

static void px_init(repeater *r)
{
    size_t n = r->api->struct_size < sizeof(r->papi) ? r->api->struct_size : sizeof(r->papi);
    memcpy(&r->papi, r->api, n);
    r->papi.struct_size = n;
    r->papi.log = px_log;
    r->papi.instance_name = px_instance_name;
    r->papi.setting_string = px_setting_string;
    r->papi.setting_int = px_setting_int;
    r->papi.setting_number = px_setting_number;
    r->papi.setting_bool = px_setting_bool;
    r->papi.setting_list_len = px_setting_list_len;
    r->papi.setting_list_string = px_setting_list_string;
    r->papi.timer_new = px_timer_new;
    r->papi.watch_new = px_watch_new;
    r->papi.event_base = px_event_base;
    r->papi.now_ms = px_now_ms;
    r->papi.monotonic_ms = px_monotonic_ms;
    r->papi.stat_add = px_stat_add;
    r->papi.stat_set = px_stat_set;
}

/* ------------------------------------------------------------------ */
/* The UDP queue                                                       */
/* ------------------------------------------------------------------ */

static char *uq_reserve(rdest *d, size_t len)
{
    size_t max = d->r->max_bytes;
    if (len > max || d->bytes > max - len)
        return NULL;
    chunk *t = d->tail;
    if (t && t->size - t->end >= len)
        return t->data + t->end;
    chunk *c;
    if (d->spare && d->spare->size >= len) {
        c = d->spare;
        d->spare = NULL;
    } else {
        size_t size = len > CHUNK_SIZE ? len : CHUNK_SIZE;
        c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->size = size;
    }
    c->next = NULL;
    c->start = c->end = 0;
    if (t)
        t->next = c;
    else
        d->head = c;
    d->tail = c;
    return c->data;
}

/* One line at a time (the caller wrote exactly one). */
static void uq_commit_line(rdest *d, size_t len)
{
    d->tail->end += len;
    d->bytes += len;
    d->lines++;
}

/* Releases n bytes (whole lines) from the front. */
static void uq_drop_front(rdest *d, size_t n)
{
    d->bytes -= n;
    while (n && d->head) {
        chunk *c = d->head;
        size_t avail = c->end - c->start;
        if (n < avail) {
            c->start += n;
            return;
        }
        n -= avail;
        if (c == d->tail) {
            c->start = c->end = 0;
            return;
        }
        d->head = c->next;
        if (!d->spare && c->size == CHUNK_SIZE)
            d->spare = c;
        else
            free(c);
    }
}

static void uq_free(rdest *d)
{
    while (d->head) {
        chunk *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
    free(d->spare);
    d->spare = NULL;
    d->bytes = d->lines = 0;
}

/* ------------------------------------------------------------------ */
/* The UDP socket                                                      */
/* ------------------------------------------------------------------ */

static void ud_send(rdest *d);
static void ud_open(rdest *d);
static void rp_log(repeater *r, int force);

/* "statsd:8125 (10.0.0.5:8125)", or just "10.0.0.5:8125" when the
 * configured name is the address. */
static const char *ud_where(const rdest *d, char *buf, size_t len)
{
    const char *addr = d->addrs[d->cur].text;
    if (strcmp(d->label, addr) == 0)
        return d->label;
    snprintf(buf, len, "%s (%s)", d->label, addr);
    return buf;
}

static void ud_publish(rdest *d)
{
    d->api->stat_set(d->host, SY_STAT_QUEUED, (int64_t)d->lines);
    d->api->stat_set(d->host, SY_STAT_QUEUED_BYTES, (int64_t)d->bytes);
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
static void ud_update_watch(rdest *d)
{
    ud_set_watch(d, SY_WATCH_READ | (d->bytes && !d->icmp_down ? SY_WATCH_WRITE : 0));
}

static void ud_close(rdest *d)
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

static void ud_on_timer(void *arg)
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
static size_t ud_pack(const rdest *d, const chunk *c, size_t off, size_t *lines)
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
static void ud_send(rdest *d)
{
    int calls = 0;
    while (d->fd >= 0 && !d->icmp_down && d->bytes && calls < CALLS_PER_EVENT) {
        struct mmsghdr msgs[DGRAMS_PER_CALL];
        struct iovec iov[DGRAMS_PER_CALL];
        size_t dbytes[DGRAMS_PER_CALL], dlines[DGRAMS_PER_CALL];
        unsigned n = 0;
        const chunk *c = d->head;
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
                uq_drop_front(d, dbytes[0]);
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
        uq_drop_front(d, b);
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

/* ------------------------------------------------------------------ */
/* Destinations                                                        */
/* ------------------------------------------------------------------ */

/* Judges which destinations are down (once per batch) and logs the
 * changes.  TCP: not connected for downAfterMs.  UDP: answered with ICMP
 * errors, or without a socket for downAfterMs. */
static void rp_judge(repeater *r)
{
    if (r->nd < 2)
        return;
    uint64_t now = r->api->monotonic_ms(r->host);
    size_t ndown = 0;
    for (size_t i = 0; i < r->nd; i++) {
        rdest *d = &r->d[i];
        int connected = r->proto == PROTO_TCP ? netq_connected(d->tq) : d->connected != 0;
        int down = (r->proto == PROTO_UDP && d->icmp_down) ||
                   (!connected && now - d->unconnected_since >= r->down_after_ms);
        if (down && !d->down) {
            d->rehashed_total = 0;
            r->api->log(r->host, SY_LOG_WARN,
                        "destination %s is down (%s): %s", d->label,
                        r->proto == PROTO_TCP ? "not connected" : d->icmp_down
                            ? "ICMP errors, nothing listening?" : "no socket",
                        r->on_down == ONDOWN_REHASH
                            ? "its keys go to the next destinations on the ring until it is back"
                            : "its keys wait in its queue until it is back");
        } else if (!down && d->down) {
            if (d->rehashed_unlogged || d->rehashed_total)
                r->api->log(r->host, SY_LOG_INFO,
                            "destination %s is back; %llu samples of its keys went to other "
                            "destinations meanwhile", d->label,
                            (unsigned long long)(d->rehashed_total + d->rehashed_unlogged));
            else
                r->api->log(r->host, SY_LOG_INFO, "destination %s is back", d->label);
            d->rehashed_total += d->rehashed_unlogged;
            d->rehashed_unlogged = 0;
        }
        d->down = down;
        r->up[i] = !down;
        ndown += down;
    }
    r->ndown = ndown;
}

/* The destination of a key, for the current batch.  When the key's own
 * destination is down and the key goes elsewhere (onDown = "rehash"),
 * that is counted for its own, which *from is set to (else NULL). */
static rdest *rp_pick(repeater *r, const char *key, size_t len, rdest **from)
{
    *from = NULL;
    if (r->nd == 1)
        return &r->d[0];
    if (r->on_down == ONDOWN_REHASH && r->ndown) {
        size_t own;
        size_t i = shard_pick_up(r->ring, key, len, r->up, &own);
        if (i != own) {
            *from = &r->d[own];
            (*from)->rehashed_unlogged++;
        }
        return &r->d[i];
    }
    return &r->d[shard_pick(r->ring, key, len)];
}

/* Drops, refusals, bad names and rehashed samples are logged at most
 * every LOG_EVERY_MS, with the count since the last message: a dead
 * destination must not flood the log. */
static void rp_log(repeater *r, int force)
{
    uint64_t now = r->api->monotonic_ms(r->host);
    if (!force && r->last_log && now - r->last_log < LOG_EVERY_MS)
        return;
    for (size_t i = 0; i < r->nd; i++) {
        rdest *d = &r->d[i];
        char where[400];
        size_t qbytes = r->proto == PROTO_TCP ? netq_bytes(d->tq) : d->bytes;
        if (d->drops_unlogged && r->nd == 1)
            r->api->log(r->host, SY_LOG_WARN, "queue full (%zu bytes): %llu lines dropped",
                        qbytes, (unsigned long long)d->drops_unlogged);
        else if (d->drops_unlogged)
            r->api->log(r->host, SY_LOG_WARN,
                        "queue for %s full (%zu bytes): %llu lines dropped", d->label,
                        qbytes, (unsigned long long)d->drops_unlogged);
        if (d->refused_unlogged)
            r->api->log(r->host, SY_LOG_WARN,
                        "%s: %llu sends answered with an ICMP error, such as port unreachable "
                        "(is anything listening there?)",
                        ud_where(d, where, sizeof(where)), (unsigned long long)d->refused_unlogged);
        if (d->rehashed_unlogged) {
            d->rehashed_total += d->rehashed_unlogged;
            r->api->log(r->host, SY_LOG_INFO,
                        "%llu samples of the keys of %s (down) went to other destinations "
                        "(%llu since it went down)", (unsigned long long)d->rehashed_unlogged,
                        d->label, (unsigned long long)d->rehashed_total);
        }
        d->drops_unlogged = d->refused_unlogged = d->rehashed_unlogged = 0;
    }
    if (r->bad_unlogged)
        r->api->log(r->host, SY_LOG_WARN,
                    "%llu lines dropped: a name that is empty or holds ':', '|#' or a line "
                    "break, a value that is not finite, or a datagram too big to send",
                    (unsigned long long)r->bad_unlogged);
    r->bad_unlogged = 0;
    r->last_log = now;
}

static int rp_unlogged(const repeater *r)
{
    if (r->bad_unlogged)
        return 1;
    for (size_t i = 0; i < r->nd; i++)
        if (r->d[i].drops_unlogged || r->d[i].refused_unlogged || r->d[i].rehashed_unlogged)
            return 1;
    return 0;
}

/* Room for a line, or NULL when its queue is full (then the rest of the
 * batch for that destination is dropped too, keeping its order). */
static char *rp_reserve(rdest *d, size_t len)
{
    if (d->full)
        return NULL;
    char *p = d->r->proto == PROTO_TCP ? netq_reserve(d->tq, len) : uq_reserve(d, len);
    if (!p)
        d->full = 1;
    return p;
}

static void rp_commit(rdest *d, size_t len)
{
    if (d->r->proto == PROTO_TCP)
        netq_commit(d->tq, len);
    else
        uq_commit_line(d, len);
}

/* Whether a batch needing `need` bytes (at most) of every destination's
 * queue waits (lib/pace.h).  Every destination is looked at, so that each
 * one's clock is kept. */
static int rp_must_wait(repeater *r, size_t need)
{
    uint64_t now = r->api->monotonic_ms(r->host);
    int wait = 0;
    for (size_t i = 0; i < r->nd; i++) {
        rdest *d = &r->d[i];
        if (r->proto == PROTO_TCP)
            wait |= pace_wait(&d->pace, now, netq_connected(d->tq), netq_sent(d->tq),
                              netq_bytes(d->tq), r->max_bytes, need);
        else
            wait |= pace_wait(&d->pace, now, d->connected != 0 && !d->icmp_down,
                              d->sent_lines, d->bytes, r->max_bytes, need);
    }
    return wait;
}

/* After a batch: write when possible. */
static void rp_kick(repeater *r)
{
    for (size_t i = 0; i < r->nd; i++) {
        rdest *d = &r->d[i];
        d->full = 0;
        if (r->proto == PROTO_TCP) {
            netq_kick(d->tq);
        } else {
            ud_update_watch(d);
            ud_publish(d);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Settings                                                            */
/* ------------------------------------------------------------------ */

static int string_setting(const sy_host_api *api, sy_host *host, const char *key,
                          const char *dflt, const char **out, char *err, size_t errlen)
{
    if (api->setting_string(host, key, dflt, out) < 0) {
        snprintf(err, errlen, "setting '%s' must be a string", key);
        return -1;
    }
    return 0;
}

/* One destination: "HOST:PORT" or "[IPV6]:PORT" into host (size hlen)
 * and port.  -1 with err set. */
static int parse_destination(const char *text, char *host, size_t hlen, int *port,
                             char *err, size_t errlen)
{
    const char *colon, *h = text;
    size_t n;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "setting 'destinations': '%s' is not [ADDRESS]:PORT", text);
            return -1;
        }
        h = text + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon) {
            snprintf(err, errlen, "setting 'destinations': '%s' is not HOST:PORT", text);
            return -1;
        }
        n = (size_t)(colon - text);
        if (memchr(text, ':', n)) {
            snprintf(err, errlen, "setting 'destinations': '%s': write an IPv6 address "
                     "in brackets, [ADDRESS]:PORT", text);
            return -1;
        }
    }
    if (n == 0 || n >= hlen) {
        snprintf(err, errlen, "setting 'destinations': '%s' has %s host", text,
                 n ? "too long a" : "no");
        return -1;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    long v = 0;
    const char *p = colon + 1;
    for (; *p >= '0' && *p <= '9' && v <= 65535; p++)
        v = v * 10 + (*p - '0');
    if (p == colon + 1 || *p || v < 1 || v > 65535) {
        snprintf(err, errlen, "setting 'destinations': '%s': the port must be a number "
                 "from 1 to 65535", text);
        return -1;
    }
    *port = (int)v;
    return 0;
}

static void repeater_free(repeater *r)
{
    for (size_t i = 0; i < r->nd; i++) {
        rdest *d = &r->d[i];
        if (d->tq)
            netq_free(d->tq);
        if (r->proto == PROTO_UDP) {
            ud_close(d);
            if (d->timer)
                r->api->timer_free(d->timer);
            uq_free(d);
        }
    }
    shard_free(r->ring);
    free(r->up);
    free(r->d);
    free(r);
}

/* The destinations, as "HOST:PORT" texts: from `destinations`, or from
 * host and port.  Returns the count (texts in *out, strdup'ed), -1 with
 * err set. */
static int read_destinations(const sy_host_api *api, sy_host *host, char ***out,
                             char *err, size_t errlen)
{
    const char *addr, *one = NULL;
    int64_t port;
    int has_host, has_port, n;

    has_host = api->setting_string(host, "host", "127.0.0.1", &addr);
    if (has_host < 0) {
        snprintf(err, errlen, "setting 'host' must be a string");
        return -1;
    }
    has_port = api->setting_int(host, "port", 8125, &port);
    if (has_port < 0) {
        snprintf(err, errlen, "setting 'port' must be a whole number");
        return -1;
    }
    if (port < 1 || port > 65535) {
        snprintf(err, errlen, "setting 'port' is %lld, it must be between 1 and 65535",
                 (long long)port);
        return -1;
    }
    n = api->setting_list_len(host, "destinations");
    if (n < 0) {
        int rc = api->setting_string(host, "destinations", NULL, &one);
        if (rc < 0) {
            snprintf(err, errlen, "setting 'destinations' must be a list of \"HOST:PORT\" "
                     "strings, or one such string");
            return -1;
        }
        n = rc == 0 ? 1 : 0;
    }
    if (n > 0 || one) {
        if (has_host == 0 || has_port == 0) {
            snprintf(err, errlen, "setting 'destinations' and setting '%s' are both given: "
                     "use host and port for one destination, or destinations",
                     has_host == 0 ? "host" : "port");
            return -1;
        }
    } else if (n == 0 && api->setting_list_len(host, "destinations") == 0) {
        snprintf(err, errlen, "setting 'destinations' is an empty list");
        return -1;
    }
    if (n > MAX_DESTINATIONS) {
        snprintf(err, errlen, "setting 'destinations' lists %d destinations, at most %d "
                 "are allowed", n, MAX_DESTINATIONS);
        return -1;
    }
    if (n == 0) {
        if (!*addr) {
            snprintf(err, errlen, "setting 'host' is empty");
            return -1;
        }
        n = 1;
    }
    char **list = calloc((size_t)n, sizeof(*list));
    if (!list) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char buf[300];
        const char *t;
        if (one) {
            t = one;
        } else if (api->setting_list_len(host, "destinations") > 0) {
            t = api->setting_list_string(host, "destinations", i);
            if (!t) {
                snprintf(err, errlen, "setting 'destinations': entry %d is not a string", i + 1);
                goto fail;
            }
        } else {
            if (strchr(addr, ':'))
                snprintf(buf, sizeof(buf), "[%s]:%d", addr, (int)port);
            else
                snprintf(buf, sizeof(buf), "%s:%d", addr, (int)port);
            t = buf;
        }
        if (!(list[i] = strdup(t))) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(list[j], list[i]) == 0) {
                snprintf(err, errlen, "setting 'destinations' lists '%s' twice", list[i]);
                i++;
                n = i;
                goto fail;
            }
    }
    *out = list;
    return n;
fail:
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    return -1;
}

/* init, and with state NULL the check: every setting and destination is
 * judged the same way, and the check stops before any address is looked
 * up or any socket, queue or timer is made. */
static int repeater_setup(const sy_host_api *api, sy_host *host, void **state,
                          char *err, size_t errlen)
{
    const char *proto, *flushed, *hashing, *on_down;
    int64_t maxq, maxd, down_after;
    reconnect_settings rs;
    char **names = NULL;
    int n = 0;

    if (SY_SINK_CHECK_API(api, format_number, err, errlen) != 0)
        return -1;
    if (string_setting(api, host, "protocol", "udp", &proto, err, errlen) ||
        string_setting(api, host, "flushed", "none", &flushed, err, errlen) ||
        string_setting(api, host, "hashing", "ketama", &hashing, err, errlen) ||
        string_setting(api, host, "onDown", "queue", &on_down, err, errlen))
        return -1;
    if (int_setting(api, host, "maxQueueBytes", 16 << 20, 1024, INT64_MAX, &maxq, err, errlen) ||
        int_setting(api, host, "maxDatagramBytes", 1432, 64, UDP_MAX_PAYLOAD, &maxd, err, errlen) ||
        reconnect_settings_read(api, host, &rs, err, errlen) ||
        int_setting(api, host, "downAfterMs", 5000, 0, 86400000, &down_after, err, errlen))
        return -1;

    repeater *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->api = api;
    r->host = host;
    r->max_bytes = (size_t)maxq;
    r->max_dgram = (size_t)maxd;
    r->min_ms = rs.min_ms;
    r->max_ms = rs.max_ms;
    r->down_after_ms = (uint64_t)down_after;
    px_init(r);

    if (strcmp(proto, "udp") == 0) {
        r->proto = PROTO_UDP;
    } else if (strcmp(proto, "tcp") == 0) {
        r->proto = PROTO_TCP;
    } else {
        snprintf(err, errlen, "setting 'protocol' must be \"udp\" or \"tcp\", not \"%s\"", proto);
        goto fail;
    }
    if (strcmp(flushed, "none") == 0) {
        r->flushed = FLUSHED_NONE;
    } else if (strcmp(flushed, "gauges") == 0) {
        r->flushed = FLUSHED_GAUGES;
    } else if (strcmp(flushed, "all") == 0) {
        r->flushed = FLUSHED_ALL;
    } else {
        snprintf(err, errlen, "setting 'flushed' must be \"none\", \"gauges\" or \"all\", not \"%s\"",
                 flushed);
        goto fail;
    }
    shard_method method;
    if (strcmp(hashing, "ketama") == 0) {
        method = SHARD_KETAMA;
    } else if (strcmp(hashing, "jump") == 0) {
        method = SHARD_JUMP;
    } else {
        snprintf(err, errlen, "setting 'hashing' must be \"ketama\" or \"jump\", not \"%s\"",
                 hashing);
        goto fail;
    }
    if (strcmp(on_down, "queue") == 0) {
        r->on_down = ONDOWN_QUEUE;
    } else if (strcmp(on_down, "rehash") == 0) {
        r->on_down = ONDOWN_REHASH;
    } else {
        snprintf(err, errlen, "setting 'onDown' must be \"queue\" or \"rehash\", not \"%s\"",
                 on_down);
        goto fail;
    }

    n = read_destinations(api, host, &names, err, errlen);
    if (n < 0)
        goto fail;
    r->d = calloc((size_t)n, sizeof(*r->d));
    r->up = malloc((size_t)n);
    if (!r->d || !r->up) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    memset(r->up, 1, (size_t)n);
    if (n > 1) {
        r->ring = shard_new(method, (const char *const *)names, (size_t)n);
        if (!r->ring) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    int i;
    if (!state) {
        for (i = 0; i < n; i++) {
            char addr[300];
            int port;
            if (parse_destination(names[i], addr, sizeof(addr), &port, err, errlen) != 0)
                goto fail;
        }
        for (i = 0; i < n; i++)
            free(names[i]);
        free(names);
        repeater_free(r);
        return 0;
    }
    uint64_t now = api->monotonic_ms(host);
    api->stat_set(host, SY_STAT_CONNECTED, 0);
    for (i = 0; i < n; i++) {
        rdest *d = &r->d[i];
        char addr[300];
        int port;
        d->r = r;
        d->api = &r->papi;
        d->host = (sy_host *)(void *)d;
        d->index = (size_t)i;
        d->fd = -1;
        d->unconnected_since = now;
        d->rng = backoff_seed(now, (uint64_t)(uintptr_t)d);
        snprintf(d->label, sizeof(d->label), "%s", names[i]);
        if (parse_destination(names[i], addr, sizeof(addr), &port, err, errlen) != 0)
            goto fail;
        r->nd = (size_t)i + 1; /* repeater_free frees what exists so far */
        if (r->proto == PROTO_TCP) {
            netq_config cfg = {
                .host = addr,
                .port = port,
                .max_bytes = (size_t)maxq,
                .reconnect_min_ms = rs.min_ms,
                .reconnect_max_ms = rs.max_ms,
                .connect_timeout_ms = rs.connect_timeout_ms,
            };
            d->tq = netq_new(&r->papi, d->host, &cfg, err, errlen);
            if (!d->tq)
                goto fail_dests;
        } else {
            int na = net_resolve(addr, port, SOCK_DGRAM, d->addrs, NET_MAX_ADDRS, NULL, 0, err,
                                 errlen);
            if (na < 0)
                goto fail_dests;
            d->naddrs = (size_t)na;
            d->timer = d->api->timer_new(d->host, ud_on_timer, d);
            if (!d->timer) {
                snprintf(err, errlen, "cannot create a timer");
                goto fail_dests;
            }
            ud_publish(d);
            d->api->timer_start(d->timer, 0); /* open from the loop, not from init */
        }
    }
    if (n > 1)
        api->log(host, SY_LOG_INFO, "spreading keys over %d destinations (%s hashing of the "
                 "routed name; onDown = \"%s\")", n, hashing, on_down);
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    *state = r;
    return 0;
fail_dests:
    if (n > 1) {
        /* name the destination: netq's and getaddrinfo's messages name
         * the host but not always the entry */
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s", err);
        snprintf(err, errlen, "destination '%s': %s", r->d[i].label, tmp);
    }
fail:
    for (int k = 0; k < n; k++)
        free(names[k]);
    free(names);
    repeater_free(r);
    return -1;
}

static int repeater_init(const sy_host_api *api, sy_host *host, void **state,
                         char *err, size_t errlen)
{
    return repeater_setup(api, host, state, err, errlen);
}

static int repeater_check(const sy_host_api *api, sy_host *host, char *err, size_t errlen)
{
    return repeater_setup(api, host, NULL, err, errlen);
}

/* What a name may not hold to stay one StatsD line with the same key:
 * a line break, the ':' that ends the name, or the "|#" that starts the
 * tags. */
static int name_ok(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\n' || c == '\r' || c == ':' || c == '\0' ||
            (c == '|' && i + 1 < len && s[i + 1] == '#'))
            return 0;
    }
    return 1;
}

static int text_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\n' || s[i] == '\r' || s[i] == '|' || s[i] == '\0')
            return 0;
    return 1;
}

/*
 * How much of a routed name to send when the sample has DogStatsD tags:
 * the key was built as NAME + ";tag" per tag (a tag's first ';' became
 * '_', its first ':' became '='), so the name loses as many ';'-parts from
 * its end as those tags produced.  Counting ';' rather than comparing text
 * keeps this right whatever keyNameSanitize did to the tags.  Returns the
 * length to keep, or 0 when the name does not end in that many parts
 * (then it goes unchanged and the tags are not sent).
 */
static size_t untagged_len(const sy_sample *s)
{
    size_t parts = 1, semis = 0;
    for (uint32_t i = 0; i < s->tags_len; i++) {
        if (s->tags[i] == ',') {
            parts += semis > 1 ? semis - 1 : 0;
            parts++;
            semis = 0;
        } else if (s->tags[i] == ';') {
            semis++;
        }
    }
    parts += semis > 1 ? semis - 1 : 0;
    for (size_t i = s->name_len; i > 0; i--) {
        if (s->name[i - 1] == ';' && --parts == 0)
            return i - 1;
    }
    return 0;
}

static const char *type_text(uint8_t t, size_t *len)
{
    switch (t) {
    case SY_SAMPLE_COUNTER: *len = 1; return "c";
    case SY_SAMPLE_GAUGE: *len = 1; return "g";
    case SY_SAMPLE_TIMER: *len = 2; return "ms";
    case SY_SAMPLE_SET: *len = 1; return "s";
    }
    return NULL;
}

static sy_status repeater_write_samples(void *state, const sy_sample_batch *b)
{
    repeater *r = state;
    char rate[32];
    size_t i, bad = 0, dropped = 0;
    const char *last_key = NULL;
    size_t last_len = 0;
    rdest *d = &r->d[0], *from = NULL;

    /* the longest line a sample can make, "NAME:TEXT|ms|@RATE|#TAGS\n",
     * with RATE at most 24 characters */
    size_t need = 0;
    for (i = 0; i < b->count; i++) {
        const sy_sample *s = &b->samples[i];
        need += (size_t)s->name_len + s->text_len + s->tags_len + 8 + (s->rate != 1.0 ? 26 : 0);
    }
    if (rp_must_wait(r, need))
        return SY_RETRY;
    rp_judge(r);
    for (i = 0; i < b->count; i++) {
        const sy_sample *s = &b->samples[i];
        size_t tlen;
        const char *type = type_text(s->type, &tlen);
        size_t nlen = s->name_len, glen = 0;
        if (s->tags_len) {
            nlen = untagged_len(s);
            if (nlen)
                glen = s->tags_len;
            else
                nlen = s->name_len;
        }
        if (!type || !name_ok(s->name, nlen) || !text_ok(s->text, s->text_len) ||
            memchr(s->tags, '\n', glen) || memchr(s->tags, '\r', glen)) {
            bad++;
            continue;
        }
        /* the key is the whole routed name, tags included; samples of one
         * key often come in a row: hash once */
        if (r->nd > 1) {
            if (last_key && last_len == s->name_len &&
                memcmp(last_key, s->name, last_len) == 0) {
                if (from)
                    from->rehashed_unlogged++;
            } else {
                d = rp_pick(r, s->name, s->name_len, &from);
                last_key = s->name;
                last_len = s->name_len;
            }
        }
        size_t rlen = 0;
        if (s->rate != 1.0)
            rlen = r->api->format_number(s->rate, rate);
        size_t len = nlen + 1 + s->text_len + 1 + tlen + (rlen ? 2 + rlen : 0) +
                     (glen ? 2 + glen : 0) + 1;
        char *p = rp_reserve(d, len);
        if (!p) {
            dropped++;
            d->drops_unlogged++;
            continue;
        }
        char *o = p;
        memcpy(o, s->name, nlen);
        o += nlen;
        *o++ = ':';
        memcpy(o, s->text, s->text_len);
        o += s->text_len;
        *o++ = '|';
        memcpy(o, type, tlen);
        o += tlen;
        if (rlen) {
            *o++ = '|';
            *o++ = '@';
            memcpy(o, rate, rlen);
            o += rlen;
        }
        if (glen) {
            *o++ = '|';
            *o++ = '#';
            memcpy(o, s->tags, glen);
            o += glen;
        }
        *o = '\n';
        rp_commit(d, len);
    }
    if (dropped || bad) {
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)(dropped + bad));
        r->bad_unlogged += bad;
    }
    if (rp_unlogged(r))
        rp_log(r, 0);
    rp_kick(r);
    return SY_OK;
}

/* One flushed value as gauge lines: "NAME:V|g", or "NAME:0|g" and
 * "NAME:-V|g" for a negative V.  0, or -1 when the queue is full. */
static int append_gauge(rdest *d, const sy_metric *m)
{
    char num[32];
    size_t vlen = d->r->api->format_number(m->value, num);
    int neg = num[0] == '-';
    /* both lines or neither: a lone "0" would set the gauge to 0 */
    if (neg) {
        size_t queued = d->r->proto == PROTO_TCP ? netq_bytes(d->tq) : d->bytes;
        if (queued + 2 * (size_t)m->name_len + vlen + 9 > d->r->max_bytes) {
            d->full = 1;
            return -1;
        }
    }
    for (int pass = neg ? 0 : 1; pass < 2; pass++) {
        const char *v = pass == 0 ? "0" : num;
        size_t l = pass == 0 ? 1 : vlen;
        size_t ll = m->name_len + 1 + l + 3;
        char *p = rp_reserve(d, ll);
        if (!p)
            return -1;
        memcpy(p, m->name, m->name_len);
        p += m->name_len;
        *p++ = ':';
        memcpy(p, v, l);
        p += l;
        memcpy(p, "|g\n", 3);
        rp_commit(d, ll);
    }
    return 0;
}

static sy_status repeater_write(void *state, const sy_metric_batch *b)
{
    repeater *r = state;
    size_t i, bad = 0, skipped = 0, taken = 0, dropped = 0;

    if (r->flushed == FLUSHED_NONE)
        return SY_SKIP;
    /* "NAME:V|g\n" with V at most 24 characters, and a negative gauge
     * also "NAME:0|g\n" before it */
    size_t need = 0;
    for (i = 0; i < b->count; i++) {
        const sy_metric *m = &b->metrics[i];
        if (r->flushed == FLUSHED_ALL || m->kind == SY_KIND_GAUGE)
            need += ((size_t)m->name_len + 28) * (signbit(m->value) ? 2 : 1);
    }
    if (rp_must_wait(r, need))
        return SY_RETRY;
    rp_judge(r);
    for (i = 0; i < b->count; i++) {
        const sy_metric *m = &b->metrics[i];
        if (r->flushed == FLUSHED_GAUGES && m->kind != SY_KIND_GAUGE) {
            skipped++;
            continue;
        }
        if (!name_ok(m->name, m->name_len) || !isfinite(m->value)) {
            bad++;
            continue;
        }
        rdest *from, *d = rp_pick(r, m->name, m->name_len, &from);
        if (append_gauge(d, m) != 0) {
            dropped++;
            d->drops_unlogged++;
            continue;
        }
        taken++;
    }
    if (dropped || bad) {
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)(dropped + bad));
        r->bad_unlogged += bad;
    }
    if (rp_unlogged(r))
        rp_log(r, 0);
    rp_kick(r);
    return taken || dropped || bad ? SY_OK : SY_SKIP;
}

static sy_status repeater_flush(void *state, int final)
{
    repeater *r = state;
    for (size_t i = 0; i < r->nd; i++) {
        if (r->proto == PROTO_TCP)
            netq_kick(r->d[i].tq);
        else
            ud_send(&r->d[i]);
    }
    if (rp_unlogged(r))
        rp_log(r, final);
    return SY_OK;
}

static size_t repeater_pending(void *state)
{
    repeater *r = state;
    size_t n = 0;
    for (size_t i = 0; i < r->nd; i++)
        n += r->proto == PROTO_TCP ? netq_lines(r->d[i].tq) : r->d[i].lines;
    return n;
}

static void repeater_close(void *state)
{
    repeater *r = state;
    size_t left = repeater_pending(r);
    if (left)
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)left);
    repeater_free(r);
}

SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "repeater",
    .version = "1.1",
    .description = "forwards raw samples (and optionally flushed values) as StatsD lines "
                   "over UDP or TCP, to one destination or spread over several by "
                   "consistent hashing, with bounded queues and reconnects",
    .settings = repeater_settings,
    .init = repeater_init,
    .check = repeater_check,
    .write = repeater_write,
    .write_samples = repeater_write_samples,
    .flush = repeater_flush,
    .pending = repeater_pending,
    .close = repeater_close,
};
