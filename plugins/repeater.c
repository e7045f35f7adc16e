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
 * UDP: one non-blocking socket connect()ed to the destination.  Lines are
 * packed into datagrams of at most maxDatagramBytes (a line longer than
 * that goes alone) and sent with sendmmsg when the socket is writable;
 * EAGAIN keeps the queue.  An ICMP error for an earlier datagram (nothing
 * listening yet) is counted and the send retried; an error that persists
 * closes the socket and opens it again with backoff, keeping the queue.
 * TCP: lib/netq (reconnects with backoff, lines never cut in two).
 *
 * The queue is bounded in bytes; when it is full the rest of a batch is
 * dropped and counted, so this sink never answers SY_RETRY.  SENT counts
 * lines, not datagrams.
 *
 * Settings:
 *   host              address or name, IPv4 or IPv6   (default "127.0.0.1")
 *   port              (default 8125)
 *   protocol          "udp" (default) or "tcp"
 *   maxQueueBytes     queue bound                     (default 16 MiB)
 *   maxDatagramBytes  UDP payload size to pack up to  (default 1432)
 *   reconnectMinMs    first reconnect delay           (default 100)
 *   reconnectMaxMs    reconnect delay cap             (default 30000)
 *   connectTimeoutMs  one TCP connect attempt         (default 5000)
 *   flushed           "none" (default), "gauges" (flushed gauges only) or
 *                     "all" (every flushed value, switchyard's own too)
 *
 * The address is resolved once, at start.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "switchyard_sink.h"
#include "lib/netq.h"

#define LOG_EVERY_MS 10000
#define CHUNK_SIZE (64 * 1024)
#define MAX_ADDRS 16
#define DGRAMS_PER_CALL 64   /* datagrams handed to one sendmmsg */
#define CALLS_PER_EVENT 64   /* sendmmsg calls before yielding to the loop */
#define UDP_MAX_PAYLOAD 65507

enum { PROTO_UDP, PROTO_TCP };
enum { FLUSHED_NONE, FLUSHED_GAUGES, FLUSHED_ALL };

/* The UDP queue: a list of chunks holding whole '\n'-terminated lines; a
 * line never spans two chunks, so a datagram is one contiguous run. */
typedef struct chunk {
    struct chunk *next;
    size_t size, start, end;
    char data[];
} chunk;

typedef struct rp_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[INET6_ADDRSTRLEN + 8];
} rp_addr;

typedef struct repeater {
    const sy_host_api *api;
    sy_host *host;
    int proto;
    int flushed;
    char label[300];          /* host:port as configured */

    netq *tq;                 /* TCP */

    /* UDP */
    rp_addr addrs[MAX_ADDRS];
    size_t naddrs, cur;
    int fd;
    sy_watch *watch;
    int watch_events;
    sy_timer *timer;          /* reopen after a persistent error */
    uint64_t min_ms, max_ms;
    unsigned failures;
    int attempted;
    uint64_t rng;
    size_t max_dgram;
    chunk *head, *tail, *spare;
    size_t bytes, lines, max_bytes;

    /* drops and errors are logged at a bounded rate */
    uint64_t last_log;        /* monotonic ms, 0 = never */
    uint64_t drops_unlogged, bad_unlogged, refused_unlogged;
} repeater;

static const char *const repeater_settings[] = {
    "host", "port", "protocol", "maxQueueBytes", "maxDatagramBytes", "reconnectMinMs",
    "reconnectMaxMs", "connectTimeoutMs", "flushed", NULL
};

/* ------------------------------------------------------------------ */
/* The UDP queue                                                       */
/* ------------------------------------------------------------------ */

static char *uq_reserve(repeater *r, size_t len)
{
    if (len > r->max_bytes || r->bytes > r->max_bytes - len)
        return NULL;
    chunk *t = r->tail;
    if (t && t->size - t->end >= len)
        return t->data + t->end;
    chunk *c;
    if (r->spare && r->spare->size >= len) {
        c = r->spare;
        r->spare = NULL;
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
        r->head = c;
    r->tail = c;
    return c->data;
}

/* One line at a time (the caller wrote exactly one). */
static void uq_commit_line(repeater *r, size_t len)
{
    r->tail->end += len;
    r->bytes += len;
    r->lines++;
}

/* Releases n bytes (whole lines) from the front. */
static void uq_drop_front(repeater *r, size_t n)
{
    r->bytes -= n;
    while (n && r->head) {
        chunk *c = r->head;
        size_t avail = c->end - c->start;
        if (n < avail) {
            c->start += n;
            return;
        }
        n -= avail;
        if (c == r->tail) {
            c->start = c->end = 0;
            return;
        }
        r->head = c->next;
        if (!r->spare && c->size == CHUNK_SIZE)
            r->spare = c;
        else
            free(c);
    }
}

static void uq_free(repeater *r)
{
    while (r->head) {
        chunk *c = r->head;
        r->head = c->next;
        free(c);
    }
    r->tail = NULL;
    free(r->spare);
    r->spare = NULL;
    r->bytes = r->lines = 0;
}

/* ------------------------------------------------------------------ */
/* The UDP socket                                                      */
/* ------------------------------------------------------------------ */

static void ud_send(repeater *r);
static void ud_open(repeater *r);

/* "statsd:8125 (10.0.0.5:8125)", or just "10.0.0.5:8125" when the
 * configured name is the address. */
static const char *ud_where(const repeater *r, char *buf, size_t len)
{
    const char *addr = r->addrs[r->cur].text;
    if (strcmp(r->label, addr) == 0)
        return r->label;
    snprintf(buf, len, "%s (%s)", r->label, addr);
    return buf;
}

static void rp_publish(repeater *r)
{
    if (r->proto == PROTO_UDP) {
        r->api->stat_set(r->host, SY_STAT_QUEUED, (int64_t)r->lines);
        r->api->stat_set(r->host, SY_STAT_QUEUED_BYTES, (int64_t)r->bytes);
    }
}

static void ud_set_watch(repeater *r, int events)
{
    if (r->watch && events != r->watch_events) {
        r->api->watch_set(r->watch, events);
        r->watch_events = events;
    }
}

static void ud_close(repeater *r)
{
    if (r->watch) {
        r->api->watch_free(r->watch);
        r->watch = NULL;
    }
    r->watch_events = 0;
    if (r->fd >= 0) {
        close(r->fd);
        r->fd = -1;
        r->api->stat_set(r->host, SY_STAT_CONNECTED, 0);
    }
}

/* Doubling from reconnectMinMs to reconnectMaxMs, minus up to a quarter
 * of jitter (the same schedule as netq). */
static uint64_t ud_backoff(repeater *r)
{
    unsigned shift = r->failures ? r->failures - 1 : 0;
    uint64_t d = r->max_ms;
    if (shift < 40 && (r->min_ms << shift) >> shift == r->min_ms && (r->min_ms << shift) < r->max_ms)
        d = r->min_ms << shift;
    /* xorshift64*: jitter only */
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    d -= (r->rng * 2685821657736338717ULL) % (d / 4 + 1);
    return d < r->min_ms ? r->min_ms : d;
}

/* A persistent error: close, and open again (the next address) later. */
static void ud_failed(repeater *r, const char *what, int err)
{
    ud_close(r);
    r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
    r->failures++;
    uint64_t delay = ud_backoff(r);
    char where[400];
    r->api->log(r->host, r->failures > 1 ? SY_LOG_DEBUG : SY_LOG_WARN,
                "%s %s: %s; trying again in %llu ms, queueing up to %zu bytes meanwhile",
                what, ud_where(r, where, sizeof(where)), strerror(err),
                (unsigned long long)delay, r->max_bytes);
    r->cur = (r->cur + 1) % r->naddrs;
    r->api->timer_start(r->timer, delay);
}

static void ud_on_fd(int fd, int events, void *arg)
{
    ud_send(arg);
}

static void ud_on_timer(void *arg)
{
    repeater *r = arg;
    if (r->fd >= 0)
        return;
    if (r->attempted)
        r->api->stat_add(r->host, SY_STAT_RECONNECTS, 1);
    r->attempted = 1;
    ud_open(r);
}

/* socket + connect: for UDP both return at once. */
static void ud_open(repeater *r)
{
    const rp_addr *a = &r->addrs[r->cur];
    int fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ud_failed(r, "cannot open a socket for", errno);
        return;
    }
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0) {
        int e = errno;
        close(fd);
        ud_failed(r, "cannot address", e);
        return;
    }
    r->fd = fd;
    r->watch = r->api->watch_new(r->host, fd, ud_on_fd, r);
    r->watch_events = 0;
    if (!r->watch) {
        ud_failed(r, "cannot watch the socket for", ENOMEM);
        return;
    }
    r->api->stat_set(r->host, SY_STAT_CONNECTED, 1);
    char where[400];
    r->api->log(r->host, SY_LOG_INFO, "sending datagrams to %s", ud_where(r, where, sizeof(where)));
    ud_send(r);
}

/* The next datagram from the front of the queue, starting at byte `off`
 * of chunk `c`: as many whole lines as fit in max_dgram (at least one).
 * The datagram leaves out the last line's '\n'. */
static size_t ud_pack(const repeater *r, const chunk *c, size_t off, size_t *lines)
{
    const char *base = c->data + off;
    size_t avail = c->end - off, used = 0;
    *lines = 0;
    while (used < avail) {
        const char *nl = memchr(base + used, '\n', avail - used);
        size_t ll = (size_t)(nl - (base + used)) + 1; /* lines always end in '\n' */
        if (*lines && used + ll - 1 > r->max_dgram)
            break;
        used += ll;
        (*lines)++;
    }
    return used;
}

static void rp_log(repeater *r, int force);

/*
 * Sends from the front of the queue until it is empty, the socket is full
 * (EAGAIN: wait for writable), or CALLS_PER_EVENT calls were made (then
 * the write watch brings us back after other events had their turn).
 */
static void ud_send(repeater *r)
{
    int calls = 0, retried = 0;
    while (r->fd >= 0 && r->bytes && calls < CALLS_PER_EVENT) {
        struct mmsghdr msgs[DGRAMS_PER_CALL];
        struct iovec iov[DGRAMS_PER_CALL];
        size_t dbytes[DGRAMS_PER_CALL], dlines[DGRAMS_PER_CALL];
        unsigned n = 0;
        const chunk *c = r->head;
        size_t off = c ? c->start : 0;
        while (c && n < DGRAMS_PER_CALL) {
            if (off >= c->end) {
                c = c->next;
                off = c ? c->start : 0;
                continue;
            }
            size_t used = ud_pack(r, c, off, &dlines[n]);
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
        int sent = sendmmsg(r->fd, msgs, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                break;
            if (e == EMSGSIZE) {
                /* this datagram can never go: drop its lines */
                r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
                r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)dlines[0]);
                r->bad_unlogged += dlines[0];
                uq_drop_front(r, dbytes[0]);
                r->lines -= dlines[0];
                continue;
            }
            if ((e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH ||
                 e == EHOSTDOWN) && !retried) {
                /* Most likely the ICMP answer to an earlier datagram,
                 * reported once: this one was not sent, try it again. */
                r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
                r->refused_unlogged++;
                retried = 1;
                continue;
            }
            ud_failed(r, "cannot send to", e);
            break;
        }
        retried = 0;
        r->failures = 0;
        size_t b = 0, l = 0;
        for (int i = 0; i < sent; i++) {
            b += dbytes[i];
            l += dlines[i];
        }
        uq_drop_front(r, b);
        r->lines -= l;
        r->api->stat_add(r->host, SY_STAT_SENT, (int64_t)l);
        if ((unsigned)sent < n)
            break; /* the socket buffer is full, or an error cut the batch:
                      the write watch brings us back */
    }
    ud_set_watch(r, r->bytes ? SY_WATCH_WRITE : 0);
    rp_publish(r);
    if (r->refused_unlogged || r->bad_unlogged)
        rp_log(r, 0);
}

static int ud_resolve(repeater *r, const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM };
    struct addrinfo *res = NULL;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai && r->naddrs < MAX_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(r->addrs[0].ss))
            continue;
        rp_addr *a = &r->addrs[r->naddrs++];
        memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
        a->len = ai->ai_addrlen;
        char ip[INET6_ADDRSTRLEN] = "?";
        if (ai->ai_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, ip, sizeof(ip));
            snprintf(a->text, sizeof(a->text), "%s:%d", ip, port);
        } else {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, ip, sizeof(ip));
            snprintf(a->text, sizeof(a->text), "[%s]:%d", ip, port);
        }
    }
    freeaddrinfo(res);
    if (r->naddrs == 0) {
        snprintf(err, errlen, "'%s' has no IPv4 or IPv6 address", host);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The plugin                                                          */
/* ------------------------------------------------------------------ */

/* Drops, refusals and bad names are logged at most every LOG_EVERY_MS,
 * with the count since the last message: a dead destination must not
 * flood the log. */
static void rp_log(repeater *r, int force)
{
    uint64_t now = r->api->monotonic_ms(r->host);
    if (!force && r->last_log && now - r->last_log < LOG_EVERY_MS)
        return;
    if (r->drops_unlogged)
        r->api->log(r->host, SY_LOG_WARN, "queue full (%zu bytes): %llu lines dropped",
                    r->proto == PROTO_TCP ? netq_bytes(r->tq) : r->bytes,
                    (unsigned long long)r->drops_unlogged);
    if (r->bad_unlogged)
        r->api->log(r->host, SY_LOG_WARN,
                    "%llu lines dropped: a name that is empty or holds ':', '|#' or a line "
                    "break, a value that is not finite, or a datagram too big to send",
                    (unsigned long long)r->bad_unlogged);
    if (r->refused_unlogged) {
        char where[400];
        r->api->log(r->host, SY_LOG_WARN,
                    "%s: %llu sends answered with an ICMP error, such as port unreachable "
                    "(is anything listening there?)",
                    ud_where(r, where, sizeof(where)), (unsigned long long)r->refused_unlogged);
    }
    r->drops_unlogged = r->bad_unlogged = r->refused_unlogged = 0;
    r->last_log = now;
}

static char *rp_reserve(repeater *r, size_t len)
{
    return r->proto == PROTO_TCP ? netq_reserve(r->tq, len) : uq_reserve(r, len);
}

static void rp_commit(repeater *r, size_t len)
{
    if (r->proto == PROTO_TCP)
        netq_commit(r->tq, len);
    else
        uq_commit_line(r, len);
}

/* After a batch: write when possible. */
static void rp_kick(repeater *r)
{
    if (r->proto == PROTO_TCP) {
        netq_kick(r->tq);
    } else {
        if (r->bytes)
            ud_set_watch(r, SY_WATCH_WRITE);
        rp_publish(r);
    }
}

/* Reads a whole-number setting and checks its range; -1 with err set. */
static int int_setting(const sy_host_api *api, sy_host *host, const char *key, int64_t dflt,
                       int64_t lo, int64_t hi, int64_t *out, char *err, size_t errlen)
{
    if (api->setting_int(host, key, dflt, out) < 0) {
        snprintf(err, errlen, "setting '%s' must be a whole number", key);
        return -1;
    }
    if (*out < lo || *out > hi) {
        snprintf(err, errlen, "setting '%s' is %lld, it must be between %lld and %lld", key,
                 (long long)*out, (long long)lo, (long long)hi);
        return -1;
    }
    return 0;
}

static int string_setting(const sy_host_api *api, sy_host *host, const char *key,
                          const char *dflt, const char **out, char *err, size_t errlen)
{
    if (api->setting_string(host, key, dflt, out) < 0) {
        snprintf(err, errlen, "setting '%s' must be a string", key);
        return -1;
    }
    return 0;
}

static int repeater_init(const sy_host_api *api, sy_host *host, void **state,
                         char *err, size_t errlen)
{
    const char *addr, *proto, *flushed;
    int64_t port, maxq, maxd, rmin, rmax, cto;

    if (api->abi_major != SY_SINK_ABI_MAJOR ||
        api->struct_size < offsetof(sy_host_api, format_number) + sizeof(void *)) {
        snprintf(err, errlen, "the host's API is too old for this plugin");
        return -1;
    }
    if (string_setting(api, host, "host", "127.0.0.1", &addr, err, errlen) ||
        string_setting(api, host, "protocol", "udp", &proto, err, errlen) ||
        string_setting(api, host, "flushed", "none", &flushed, err, errlen))
        return -1;
    if (!*addr) {
        snprintf(err, errlen, "setting 'host' is empty");
        return -1;
    }
    if (int_setting(api, host, "port", 8125, 1, 65535, &port, err, errlen) ||
        int_setting(api, host, "maxQueueBytes", 16 << 20, 1024, INT64_MAX, &maxq, err, errlen) ||
        int_setting(api, host, "maxDatagramBytes", 1432, 64, UDP_MAX_PAYLOAD, &maxd, err, errlen) ||
        int_setting(api, host, "reconnectMinMs", 100, 1, 3600000, &rmin, err, errlen) ||
        int_setting(api, host, "reconnectMaxMs", 30000, 1, 3600000, &rmax, err, errlen) ||
        int_setting(api, host, "connectTimeoutMs", 5000, 1, 3600000, &cto, err, errlen))
        return -1;
    if (rmax < rmin) {
        snprintf(err, errlen, "reconnectMaxMs (%lld) is below reconnectMinMs (%lld)",
                 (long long)rmax, (long long)rmin);
        return -1;
    }

    repeater *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->api = api;
    r->host = host;
    r->fd = -1;
    r->max_bytes = (size_t)maxq;
    r->max_dgram = (size_t)maxd;
    r->min_ms = (uint64_t)rmin;
    r->max_ms = (uint64_t)rmax;
    r->rng = (api->monotonic_ms(host) ^ (uint64_t)(uintptr_t)r) | 1;
    if (strchr(addr, ':'))
        snprintf(r->label, sizeof(r->label), "[%s]:%d", addr, (int)port);
    else
        snprintf(r->label, sizeof(r->label), "%s:%d", addr, (int)port);

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

    if (r->proto == PROTO_TCP) {
        netq_config cfg = {
            .host = addr,
            .port = (int)port,
            .max_bytes = (size_t)maxq,
            .reconnect_min_ms = (uint64_t)rmin,
            .reconnect_max_ms = (uint64_t)rmax,
            .connect_timeout_ms = (uint64_t)cto,
        };
        r->tq = netq_new(api, host, &cfg, err, errlen);
        if (!r->tq)
            goto fail;
    } else {
        if (ud_resolve(r, addr, (int)port, err, errlen) != 0)
            goto fail;
        r->timer = api->timer_new(host, ud_on_timer, r);
        if (!r->timer) {
            snprintf(err, errlen, "cannot create a timer");
            goto fail;
        }
        api->stat_set(host, SY_STAT_CONNECTED, 0);
        rp_publish(r);
        api->timer_start(r->timer, 0); /* open from the loop, not from init */
    }
    *state = r;
    return 0;
fail:
    free(r);
    return -1;
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
        size_t rlen = 0;
        if (s->rate != 1.0)
            rlen = r->api->format_number(s->rate, rate);
        size_t len = nlen + 1 + s->text_len + 1 + tlen + (rlen ? 2 + rlen : 0) +
                     (glen ? 2 + glen : 0) + 1;
        char *p = rp_reserve(r, len);
        if (!p) {
            dropped = b->count - i;
            break;
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
        rp_commit(r, len);
    }
    if (dropped || bad) {
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)(dropped + bad));
        r->drops_unlogged += dropped;
        r->bad_unlogged += bad;
        rp_log(r, 0);
    }
    rp_kick(r);
    return SY_OK;
}

/* One flushed value as gauge lines: "NAME:V|g", or "NAME:0|g" and
 * "NAME:-V|g" for a negative V.  0, or -1 when the queue is full. */
static int append_gauge(repeater *r, const sy_metric *m)
{
    char num[32];
    size_t vlen = r->api->format_number(m->value, num);
    int neg = num[0] == '-';
    for (int pass = neg ? 0 : 1; pass < 2; pass++) {
        const char *v = pass == 0 ? "0" : num;
        size_t l = pass == 0 ? 1 : vlen;
        size_t len = m->name_len + 1 + l + 3;
        char *p = rp_reserve(r, len);
        if (!p)
            return -1;
        memcpy(p, m->name, m->name_len);
        p += m->name_len;
        *p++ = ':';
        memcpy(p, v, l);
        p += l;
        memcpy(p, "|g\n", 3);
        rp_commit(r, len);
    }
    return 0;
}

static sy_status repeater_write(void *state, const sy_metric_batch *b)
{
    repeater *r = state;
    size_t i, bad = 0, skipped = 0, taken = 0, dropped = 0;

    if (r->flushed == FLUSHED_NONE)
        return SY_SKIP;
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
        if (append_gauge(r, m) != 0) {
            dropped = b->count - i;
            break;
        }
        taken++;
    }
    if (dropped || bad) {
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)(dropped + bad));
        r->drops_unlogged += dropped;
        r->bad_unlogged += bad;
        rp_log(r, 0);
    }
    rp_kick(r);
    return taken || dropped || bad ? SY_OK : SY_SKIP;
}

static sy_status repeater_flush(void *state, int final)
{
    repeater *r = state;
    if (r->proto == PROTO_TCP)
        netq_kick(r->tq);
    else
        ud_send(r);
    if (r->drops_unlogged || r->bad_unlogged || r->refused_unlogged)
        rp_log(r, final);
    return SY_OK;
}

static size_t repeater_pending(void *state)
{
    repeater *r = state;
    return r->proto == PROTO_TCP ? netq_lines(r->tq) : r->lines;
}

static void repeater_close(void *state)
{
    repeater *r = state;
    size_t left = repeater_pending(r);
    if (left)
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)left);
    if (r->proto == PROTO_TCP) {
        netq_free(r->tq);
    } else {
        ud_close(r);
        r->api->timer_free(r->timer);
        uq_free(r);
    }
    free(r);
}

SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "repeater",
    .version = "1.0",
    .description = "forwards raw samples (and optionally flushed values) as StatsD lines "
                   "over UDP or TCP, with a bounded queue and reconnects",
    .settings = repeater_settings,
    .init = repeater_init,
    .write = repeater_write,
    .write_samples = repeater_write_samples,
    .flush = repeater_flush,
    .pending = repeater_pending,
    .close = repeater_close,
};
