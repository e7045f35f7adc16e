/*
 * tapstream.c - a tap streamed to a console or HTTP client (tapstream.h).
 */
#include "admin/tapstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <time.h>

#include "engine/agg.h"
#include "admin/tap.h"

#define TAP_POLL_MS 50

struct sy_tapstream {
    int id;                      /* the tap (tap.h) */
    struct event *timer;
    time_t until;
    struct bufferevent *bev;     /* the console client, or NULL */
    sy_tapstream_done_fn *done;
    void *ctx;
    struct evhttp_request *req;  /* the HTTP client, or NULL */
    struct evhttp_connection *evcon;
};

static void stream_free(sy_tapstream *t)
{
    if (t->timer)
        event_free(t->timer);
    free(t);
}

/* Bytes written for the client and not yet read by it: those still in
 * our buffer, and those in the kernel's send queue (a socket's send
 * buffer grows to megabytes, which would hide a reader that has
 * stopped). */
static size_t pending(sy_tapstream *t)
{
    struct bufferevent *bev = t->bev ? t->bev : evhttp_connection_get_bufferevent(t->evcon);
    if (!bev)
        return 0;
    size_t n = evbuffer_get_length(bufferevent_get_output(bev));
    int queued = 0;
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd >= 0 && ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0)
        n += (size_t)queued;
    return n;
}

static void send_text(sy_tapstream *t, sy_buf *b)
{
    if (!b->len)
        return;
    if (t->bev) {
        bufferevent_write(t->bev, b->p, b->len);
    } else {
        struct evbuffer *chunk = evbuffer_new();
        if (chunk) {
            evbuffer_add(chunk, b->p, b->len);
            evhttp_send_reply_chunk(t->req, chunk);
            evbuffer_free(chunk);
        }
    }
    b->len = 0;
}

static void http_gone(struct evhttp_connection *evcon, void *arg);

/* The end: the summary, then the console's END or the chunked reply's
 * end. */
static void finish(sy_tapstream *t)
{
    sy_buf b = { 0 };
    sy_tap_close(t->id, &b);
    if (t->bev) {
        sy_buf_add(&b, "END\n\n", 5);
        send_text(t, &b);
        sy_buf_free(&b);
        sy_tapstream_done_fn *done = t->done;
        void *ctx = t->ctx;
        stream_free(t);
        done(ctx);
        return;
    }
    send_text(t, &b);
    sy_buf_free(&b);
    evhttp_connection_set_closecb(t->evcon, NULL, NULL);
    evhttp_send_reply_end(t->req);
    stream_free(t);
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
    sy_tapstream *t = arg;
    (void)fd;
    (void)what;
    sy_buf b = { 0 };
    int skip = pending(t) >= SY_TAP_CLIENT_BUF;
    int done = sy_tap_read(t->id, &b, SY_TAP_CLIENT_BUF, skip);
    send_text(t, &b);
    sy_buf_free(&b);
    if (done || time(NULL) >= t->until)
        finish(t);
}

static sy_tapstream *stream_new(struct event_base *base, const char *glob, long n, char *err,
                                size_t errlen)
{
    sy_tapstream *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->timer = event_new(base, -1, EV_PERSIST, poll_cb, t);
    struct timeval every = { 0, TAP_POLL_MS * 1000 };
    if (!t->timer || event_add(t->timer, &every) < 0) {
        snprintf(err, errlen, "out of memory");
        stream_free(t);
        return NULL;
    }
    t->id = sy_tap_open(glob, n, err, errlen);
    if (t->id < 0) {
        stream_free(t);
        return NULL;
    }
    t->until = time(NULL) + SY_TAP_SECONDS;
    return t;
}

sy_tapstream *sy_tapstream_console(struct event_base *base, struct bufferevent *bev, const char *glob,
                                   long n, sy_tapstream_done_fn *done, void *ctx, char *err,
                                   size_t errlen)
{
    sy_tapstream *t = stream_new(base, glob, n, err, errlen);
    if (!t)
        return NULL;
    t->bev = bev;
    t->done = done;
    t->ctx = ctx;
    char head[SY_TAP_GLOB_MAX + 200];
    int len = snprintf(head, sizeof head, "tap: %s, up to %ld lines (%d a second at most); send a "
                       "line to stop\n", glob, n, SY_TAP_RATE);
    bufferevent_write(bev, head, (size_t)len);
    return t;
}

void sy_tapstream_stop(sy_tapstream *t, int with_summary)
{
    if (!t)
        return;
    if (with_summary) {
        t->done = NULL;
        sy_buf b = { 0 };
        sy_tap_close(t->id, &b);
        sy_buf_add(&b, "END\n\n", 5);
        send_text(t, &b);
        sy_buf_free(&b);
    } else {
        sy_tap_close(t->id, NULL);
    }
    stream_free(t);
}

/* The HTTP client has gone: libevent frees the request after this. */
static void http_gone(struct evhttp_connection *evcon, void *arg)
{
    sy_tapstream *t = arg;
    (void)evcon;
    sy_tap_close(t->id, NULL);
    stream_free(t);
}

static void http_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add_printf(out, "%s\n", text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

void sy_tapstream_http(struct evhttp_request *req, void *arg)
{
    (void)arg;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m != EVHTTP_REQ_GET) {
        /* a stream has no length to announce: HEAD and the rest get 405 */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        http_text(req, 405, "Method Not Allowed", m == EVHTTP_REQ_HEAD ? "" : "method not allowed: GET only");
        return;
    }
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (query)
        evhttp_parse_query_str(query, &q);
    const char *glob = evhttp_find_header(&q, "glob");
    const char *ns = evhttp_find_header(&q, "n");
    char err[256];
    long n = SY_TAP_N_DEFAULT;
    if (ns) {
        char *end;
        n = strtol(ns, &end, 10);
        if (*ns == '\0' || *end != '\0')
            n = -1;
    }
    if (!glob) {
        http_text(req, 400, "Bad Request", "tap: say what to tap: /tap?glob=GLOB[&n=N]");
        evhttp_clear_headers(&q);
        return;
    }
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    sy_tapstream *t = stream_new(evhttp_connection_get_base(evcon), glob, n, err, sizeof err);
    evhttp_clear_headers(&q);
    if (!t) {
        char msg[300];
        snprintf(msg, sizeof msg, "tap: %s", err);
        int busy = strstr(err, "open already") != NULL;
        if (busy)
            evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
        http_text(req, busy ? 503 : 400, busy ? "Service Unavailable" : "Bad Request", msg);
        return;
    }
    t->req = req;
    t->evcon = evcon;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; charset=utf-8");
    evhttp_send_reply_start(req, 200, "OK");
    evhttp_connection_set_closecb(evcon, http_gone, t);
}
