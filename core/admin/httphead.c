/*
 * httphead.c - the admin HTTP server's guard on request heads.
 *
 * libevent 2.1 refuses a request line or header section over its limit
 * with a bare 400, and has no way to answer otherwise.  Each admin HTTP
 * connection therefore reads through a filter that counts the bytes of
 * every request head as they arrive, before evhttp parses them:
 *
 *   - a request line over HTTP_MAX_HEADERS bytes is answered 414 (URI Too
 *     Long), a header section over HTTP_MAX_HEADERS bytes 431 (Request
 *     Header Fields Too Large), and the connection is closed;
 *   - nothing of a refused head reaches evhttp past the limit, so a 48 MiB
 *     header line costs one pass over the bytes read until then;
 *   - evhttp's own limit is set above ours (HTTP_EVHTTP_HEADERS), so its 400
 *     is left for malformed requests.
 *
 * No endpoint takes a body: evhttp answers a request that announces one
 * with 413 and closes.  The guard stops counting once a head announces a
 * body, so those bytes are evhttp's to refuse.
 */
#include "admin/admin_internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define PREFIX 24 /* the start of a header line kept to spot a body */

/* A connection's count, in a table by file descriptor, that grows to the
 * highest descriptor seen (48 bytes each; descriptors from GUARD_MAX_FD on
 * are left to evhttp's own limit).  A slot belongs to the bufferevent
 * that last used it; a new connection's bufferevent may have the address
 * of a freed one, so making one clears the slots it owned. */
#define GUARD_MAX_FD 65536

typedef struct head_guard {
    const struct bufferevent *owner;
    uint32_t line;   /* bytes of the current line, its '\n' not counted */
    uint32_t head;   /* bytes of the current head after its request line */
    uint8_t first;   /* in the request line */
    uint8_t passing; /* a body was announced: no more counting */
    uint8_t done;    /* refused: what arrives is dropped */
    char prefix[PREFIX];
} head_guard;

static head_guard *guards;
static size_t nguards;
static void (*on_refused)(int fd, int code);

/* "Content-Length: N" with N > 0, or any Transfer-Encoding. */
static int announces_body(const char *p, size_t n)
{
    if (n >= 18 && strncasecmp(p, "transfer-encoding:", 18) == 0)
        return 1;
    if (n < 15 || strncasecmp(p, "content-length:", 15) != 0)
        return 0;
    for (size_t i = 15; i < n; i++)
        if (p[i] >= '1' && p[i] <= '9')
            return 1;
    return 0;
}

/* Counts one piece of input: -1 when the head goes over a limit in it. */
static int count(head_guard *g, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n && !g->passing; i++) {
        unsigned char c = p[i];
        if (c != '\n') {
            if (g->line < PREFIX)
                g->prefix[g->line] = (char)c;
            g->line++;
            if (!g->first)
                g->head++;
            if (g->first ? g->line > HTTP_MAX_HEADERS : g->head > HTTP_MAX_HEADERS)
                return -1;
            continue;
        }
        if (g->first) {
            g->first = 0;
        } else if (g->line == 0 || (g->line == 1 && g->prefix[0] == '\r')) {
            g->head = 0; /* the blank line: the head ends, a new one may follow */
            g->first = 1;
        } else {
            g->head++; /* its '\n' */
            if (announces_body(g->prefix, g->line < PREFIX ? g->line : PREFIX))
                g->passing = 1;
        }
        g->line = 0;
    }
    return 0;
}

static void refuse(struct bufferevent *bev, int fd, int code)
{
    static const char r414[] = "HTTP/1.1 414 URI Too Long\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 39\r\nConnection: close\r\n\r\n"
                               "request line over 8192 bytes: refused\n";
    static const char r431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                               "Content-Type: text/plain\r\nContent-Length: 40\r\n"
                               "Connection: close\r\n\r\n"
                               "header section over 8192 bytes: refused\n";
    _Static_assert(HTTP_MAX_HEADERS == 8192, "the answers above name the limit");
    /* Sent at once, unless an earlier answer on this connection still
     * waits to go out (it would come after it): then the close alone. */
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        if (code == 414)
            (void)send(fd, r414, sizeof r414 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        else
            (void)send(fd, r431, sizeof r431 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (on_refused)
        on_refused(fd, code);
    bufferevent_disable(bev, EV_READ);
    /* evhttp closes a connection at EOF without answering again */
    bufferevent_trigger_event(bev, BEV_EVENT_EOF | BEV_EVENT_READING, BEV_TRIG_DEFER_CALLBACKS);
}

static head_guard *guard_of(const struct bufferevent *bev, int fd)
{
    if (fd < 0 || fd >= GUARD_MAX_FD)
        return NULL;
    if ((size_t)fd >= nguards) {
        size_t n = nguards ? nguards : 64;
        while (n <= (size_t)fd)
            n *= 2;
        head_guard *g = realloc(guards, n * sizeof *g);
        if (!g)
            return NULL;
        memset(g + nguards, 0, (n - nguards) * sizeof *g);
        guards = g;
        nguards = n;
    }
    head_guard *g = &guards[fd];
    if (g->owner != bev) {
        memset(g, 0, sizeof *g);
        g->owner = bev;
        g->first = 1;
    }
    return g;
}

/* The socket's reads append to the input buffer; evhttp parses after. */
static void watch_in(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct bufferevent *bev = arg;
    if (!info->n_added)
        return;
    int fd = bufferevent_getfd(bev);
    head_guard *g = guard_of(bev, fd);
    if (!g || g->passing)
        return;
    if (g->done) {
        evbuffer_drain(buf, evbuffer_get_length(buf));
        return;
    }
    struct evbuffer_ptr at;
    size_t len = evbuffer_get_length(buf);
    size_t from = info->n_added < len ? len - info->n_added : 0;
    if (evbuffer_ptr_set(buf, &at, from, EVBUFFER_PTR_SET) < 0)
        return;
    for (;;) {
        struct evbuffer_iovec v[8];
        int nv = evbuffer_peek(buf, -1, &at, v, 8);
        if (nv <= 0)
            break;
        int k = nv < 8 ? nv : 8;
        size_t seen = 0;
        for (int i = 0; i < k; i++) {
            if (count(g, v[i].iov_base, v[i].iov_len) < 0) {
                g->done = 1;
                evbuffer_drain(buf, evbuffer_get_length(buf));
                refuse(bev, fd, g->first ? 414 : 431);
                return;
            }
            seen += v[i].iov_len;
        }
        if (nv <= 8 || g->passing || evbuffer_ptr_set(buf, &at, seen, EVBUFFER_PTR_ADD) < 0)
            break;
    }
}

void sy_admin_head_guard(struct bufferevent *bev, void (*refused)(int fd, int code))
{
    on_refused = refused;
    for (size_t i = 0; i < nguards; i++)
        if (guards[i].owner == bev)
            guards[i].owner = NULL;
    evbuffer_add_cb(bufferevent_get_input(bev), watch_in, bev);
}

void sy_admin_head_guard_free(void)
{
    free(guards);
    guards = NULL;
    nguards = 0;
}
