/*
 * httpq.c - POSTs a lineq's lines in batches with libevent's HTTP client.
 * See httpq.h for the contract.
 *
 * One request is in flight at a time, so runs arrive in queue order and a
 * retried run never overtakes or duplicates a newer one.  The next request
 * is started from a timer (0 ms after a success, the backoff after a
 * failure), never from inside libevent's completion callback.
 */
#include "httpq.h"

#include "backoff.h"
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define LOG_EVERY_MS 10000

struct httpq {
    const sy_host_api *api;
    sy_host *host;
    lineq *q;
    struct evhttp_connection *conn;
    sy_timer *timer;
    char host_header[300];
    char label[320];             /* http://host:port, for logs */
    char target[2048];
    char content_type[128];
    size_t batch_lines, batch_bytes;
    uint64_t min_ms, max_ms;
    uint64_t rng;

    int busy;                    /* a request is in flight */
    lineq_run run;               /* what it carries */
    int error_reason;            /* from the error callback, -1 none */
    int connected;
    unsigned failures;           /* consecutive, for the backoff */
    uint64_t sent_values;

    uint64_t refused_unlogged;   /* values refused with a 4xx since the last log */
    int last_refused_code;
    char last_refused_body[200];
    uint64_t last_refused_log;
};

static uint64_t hq_backoff(httpq *h)
{
    return backoff_delay(h->failures, h->min_ms, h->max_ms, &h->rng);
}

static void hq_publish(httpq *h)
{
    h->api->stat_set(h->host, SY_STAT_QUEUED, (int64_t)lineq_values(h->q));
    h->api->stat_set(h->host, SY_STAT_QUEUED_BYTES, (int64_t)lineq_bytes(h->q));
}

static void hq_set_connected(httpq *h, int c)
{
    if (c != h->connected) {
        h->connected = c;
        h->api->stat_set(h->host, SY_STAT_CONNECTED, c);
    }
}

/* Client text in a log line: printable ASCII only. */
static void printable(char *dst, size_t cap, const char *src, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    while (j && (dst[j - 1] == ' ' || dst[j - 1] == '?'))
        j--;
    dst[j] = '\0';
}

static void hq_log_refused(httpq *h, int force)
{
    uint64_t now = h->api->monotonic_ms(h->host);
    if (!h->refused_unlogged || (!force && h->last_refused_log &&
                                 now - h->last_refused_log < LOG_EVERY_MS))
        return;
    h->api->log(h->host, SY_LOG_WARN, "%s refused %llu values with HTTP %d (not retried): %s",
                h->label, (unsigned long long)h->refused_unlogged, h->last_refused_code,
                h->last_refused_body[0] ? h->last_refused_body : "(no message)");
    h->refused_unlogged = 0;
    h->last_refused_log = now;
}

static const char *reason_text(int r)
{
    switch (r) {
    case EVREQ_HTTP_TIMEOUT: return "timed out";
    case EVREQ_HTTP_EOF: return "connection closed";
    case EVREQ_HTTP_INVALID_HEADER: return "invalid answer";
    case EVREQ_HTTP_BUFFER_ERROR: return "connection failed";
    case EVREQ_HTTP_REQUEST_CANCEL: return "cancelled";
    case EVREQ_HTTP_DATA_TOO_LONG: return "answer too long";
    default: return "no answer";
    }
}

static void hq_on_error(enum evhttp_request_error e, void *arg)
{
    httpq *h = arg;
    h->error_reason = (int)e;
}

static void hq_failed(httpq *h, int code, const char *why)
{
    h->api->stat_add(h->host, SY_STAT_ERRORS, 1);
    h->failures++;
    uint64_t delay = hq_backoff(h);
    /* the first failure of an outage is a warning, the rest are debug */
    h->api->log(h->host, h->failures == 1 ? SY_LOG_WARN : SY_LOG_DEBUG,
                "%s: %s%s%d; %zu lines (%llu values) wait, retrying in %llu ms", h->label, why,
                code ? " " : "", code, lineq_lines(h->q), (unsigned long long)lineq_values(h->q),
                (unsigned long long)delay);
    hq_set_connected(h, 0);
    h->api->timer_start(h->timer, delay);
}

static void hq_on_done(struct evhttp_request *req, void *arg)
{
    httpq *h = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    h->busy = 0;
    if (code >= 200 && code < 300) {
        lineq_pop(h->q, &h->run);
        h->sent_values += h->run.values;
        h->api->stat_add(h->host, SY_STAT_SENT, (int64_t)h->run.values);
        if (h->failures)
            h->api->log(h->host, SY_LOG_INFO, "%s takes writes again after %u failed "
                        "attempts; %zu lines wait", h->label, h->failures, lineq_lines(h->q));
        h->failures = 0;
        hq_set_connected(h, 1);
        hq_publish(h);
        if (lineq_lines(h->q))
            h->api->timer_start(h->timer, 0);
        return;
    }
    if (code == 0) {
        hq_failed(h, 0, reason_text(h->error_reason));
        return;
    }
    if (code == 429 || code >= 500) {
        hq_failed(h, code, "HTTP");
        return;
    }
    /* 1xx, 3xx, other 4xx: the same body would get the same answer */
    lineq_pop(h->q, &h->run);
    h->api->stat_add(h->host, SY_STAT_DROPPED, (int64_t)h->run.values);
    h->api->stat_add(h->host, SY_STAT_ERRORS, 1);
    h->failures = 0;
    hq_set_connected(h, 1);
    h->refused_unlogged += h->run.values;
    h->last_refused_code = code;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    char body[sizeof(h->last_refused_body)];
    ev_ssize_t n = in ? evbuffer_copyout(in, body, sizeof(body)) : 0;
    printable(h->last_refused_body, sizeof(h->last_refused_body), body, n > 0 ? (size_t)n : 0);
    hq_log_refused(h, 0);
    hq_publish(h);
    if (lineq_lines(h->q))
        h->api->timer_start(h->timer, 0);
}

static void hq_send(httpq *h)
{
    if (h->busy || !lineq_lines(h->q))
        return;
    if (h->failures)
        h->api->stat_add(h->host, SY_STAT_RECONNECTS, 1);
    h->run = lineq_peek(h->q, h->batch_lines, h->batch_bytes);
    struct evhttp_request *req = evhttp_request_new(hq_on_done, h);
    if (!req) {
        hq_failed(h, 0, "out of memory");
        return;
    }
    h->error_reason = -1;
    evhttp_request_set_error_cb(req, hq_on_error);
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    evhttp_add_header(hd, "Host", h->host_header);
    evhttp_add_header(hd, "Content-Type", h->content_type);
    evhttp_add_header(hd, "User-Agent", "switchyard");
    if (evbuffer_add(evhttp_request_get_output_buffer(req), h->run.data, h->run.bytes) != 0) {
        evhttp_request_free(req);
        hq_failed(h, 0, "out of memory");
        return;
    }
    h->busy = 1;
    if (evhttp_make_request(h->conn, req, EVHTTP_REQ_POST, h->target) != 0) {
        h->busy = 0; /* libevent freed the request */
        hq_failed(h, 0, "cannot start a request");
    }
}

static void hq_on_timer(void *arg)
{
    hq_send(arg);
}

int http_url_parse(const char *url, http_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct evhttp_uri *u = evhttp_uri_parse(url);
    if (!u) {
        snprintf(err, errlen, "'%s' is not a URL", url);
        return -1;
    }
    int rc = -1;
    const char *scheme = evhttp_uri_get_scheme(u), *host = evhttp_uri_get_host(u);
    const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
    if (!scheme || strcmp(scheme, "http") != 0) {
        snprintf(err, errlen, "'%s': only http:// is supported", url);
        goto out;
    }
    if (!host || !*host || strlen(host) >= sizeof(out->host)) {
        snprintf(err, errlen, "'%s' has no host", url);
        goto out;
    }
    if (evhttp_uri_get_userinfo(u) || evhttp_uri_get_fragment(u)) {
        snprintf(err, errlen, "'%s': user:password@ and #fragment are not supported "
                 "(InfluxDB takes u= and p= in the query)", url);
        goto out;
    }
    /* libevent keeps IPv6 brackets in the host */
    net_unbracket(out->host, sizeof(out->host), host);
    out->port = evhttp_uri_get_port(u);
    if (out->port < 0)
        out->port = 80;
    if (out->port < 1 || out->port > 65535) {
        snprintf(err, errlen, "'%s': the port must be between 1 and 65535", url);
        goto out;
    }
    int w = snprintf(out->target, sizeof(out->target), "%s%s%s", path && *path ? path : "/",
                     query ? "?" : "", query ? query : "");
    if (w < 0 || (size_t)w >= sizeof(out->target)) {
        snprintf(err, errlen, "'%s' is too long", url);
        goto out;
    }
    rc = 0;
out:
    evhttp_uri_free(u);
    return rc;
}

httpq *httpq_new(const sy_host_api *api, sy_host *host, const httpq_config *cfg, lineq *q,
                 char *err, size_t errlen)
{
    const http_url *url = cfg->url;
    struct event_base *base = api->event_base(host);
    if (!base) {
        snprintf(err, errlen, "the host has no event base");
        return NULL;
    }
    httpq *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->api = api;
    h->host = host;
    h->q = q;
    h->batch_lines = cfg->batch_lines;
    h->batch_bytes = cfg->batch_bytes;
    h->min_ms = cfg->retry_min_ms;
    h->max_ms = cfg->retry_max_ms < cfg->retry_min_ms ? cfg->retry_min_ms : cfg->retry_max_ms;
    h->rng = backoff_seed(api->monotonic_ms(host), (uint64_t)(uintptr_t)h);
    h->connected = -1;
    snprintf(h->target, sizeof(h->target), "%s", url->target);
    snprintf(h->content_type, sizeof(h->content_type), "%s", cfg->content_type);
    net_label(h->host_header, sizeof(h->host_header), url->host, url->port);
    snprintf(h->label, sizeof(h->label), "http://%s", h->host_header);

    /* Resolved once here, so that libevent never looks a name up (it
     * would block the loop); the first address is used. */
    net_addr addr;
    if (net_resolve(url->host, url->port, SOCK_STREAM, &addr, 1, NULL, 0, err, errlen) < 0) {
        free(h);
        return NULL;
    }
    if (strcmp(addr.ip, url->host) != 0)
        api->log(host, SY_LOG_INFO, "%s resolves to %s", url->host, addr.ip);

    h->conn = evhttp_connection_base_new(base, NULL, addr.ip, (unsigned short)url->port);
    h->timer = api->timer_new(host, hq_on_timer, h);
    if (!h->conn || !h->timer) {
        snprintf(err, errlen, "cannot create the HTTP connection");
        httpq_free(h);
        return NULL;
    }
    struct timeval tv = { .tv_sec = (time_t)(cfg->timeout_ms / 1000),
                          .tv_usec = (suseconds_t)(cfg->timeout_ms % 1000) * 1000 };
    evhttp_connection_set_timeout_tv(h->conn, &tv);
    evhttp_connection_set_retries(h->conn, 0);
    /* unknown until the first answer or failure, and not published till
     * then: a sink host with a disk spool sends nothing to a plugin that
     * reports itself disconnected, and this one only finds out by sending */
    h->connected = -1;
    hq_publish(h);
    return h;
}

void httpq_free(httpq *h)
{
    if (!h)
        return;
    hq_log_refused(h, 1);
    /* a request in flight is freed with the connection, without its
     * callback */
    if (h->conn)
        evhttp_connection_free(h->conn);
    if (h->timer)
        h->api->timer_free(h->timer);
    free(h);
}

void httpq_kick(httpq *h)
{
    hq_publish(h);
    hq_log_refused(h, 0);
    if (!h->busy && !h->failures)
        hq_send(h);
}

int httpq_connected(const httpq *h)
{
    return h->connected == 1;
}

uint64_t httpq_sent(const httpq *h)
{
    return h->sent_values;
}

int httpq_busy(const httpq *h)
{
    return h->busy;
}
