/*
 * traces_page.c - the admin's /traces page: made on worker threads by the
 * trace tool (sy_admin_deps.traces_page), answered on the admin loop.
 */
#include "admin/admin_internal.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "util/log.h"

/* ---- /traces, on worker threads ------------------------------------- */

/*
 * A /traces page waits on memcached (up to 5 s when it is slow or stopped)
 * and may read 64 MiB of client-written records, so it is never made on
 * the admin loop: that would hold /health, /metrics and the console for as
 * long.  The loop starts a thread for the page (at most TRACES_MAX_JOBS at
 * once; beyond that a 503 with Retry-After, counted) and goes on serving;
 * the thread renders into a buffer and header list of its own, and the
 * loop sends them when woken through jobs_fd.  A client that hung up in
 * the meantime is handled by libevent: it keeps the request until the
 * reply, then frees it.
 */
static sy_ratelimit rl_traces_busy = SY_RATELIMIT_INIT(10000, 1);
static sy_ratelimit rl_traces_cut = SY_RATELIMIT_INIT(10000, 1);

static const char *reason_of(int code)
{
    return code == 200 ? "OK" : code == 400 ? "Bad Request" : code == 404 ? "Not Found"
           : code == 503 ? "Service Unavailable" : "Internal Server Error";
}

void sy_admin_traces_job_free(traces_job *j)
{
    if (j->out)
        evbuffer_free(j->out);
    evhttp_clear_headers(&j->headers);
    free(j->uri);
    free(j->memcached);
    free(j->prefix);
    free(j);
}

static void *traces_work(void *arg)
{
    traces_job *j = arg;
    sy_admin *a = j->a;
    j->code = a->d.traces_page(j->memcached, j->prefix, j->uri, a->cancel_fd, j->out, &j->headers,
                             &j->cut);
    pthread_mutex_lock(&a->jobs_lock);
    j->done = 1;
    pthread_mutex_unlock(&a->jobs_lock);
    uint64_t one = 1;
    ssize_t rc = write(a->jobs_fd, &one, sizeof one);
    (void)rc;
    return NULL;
}

/* jobs_fd: answer the pages that are ready. */
void sy_admin_on_jobs_done(evutil_socket_t fd, short what, void *arg)
{
    sy_admin *a = arg;
    uint64_t v;
    ssize_t rc = read(fd, &v, sizeof v);
    (void)rc;
    (void)what;
    traces_job *ready = NULL;
    pthread_mutex_lock(&a->jobs_lock);
    for (traces_job **pp = &a->jobs; *pp;) {
        traces_job *j = *pp;
        if (j->done) {
            *pp = j->next;
            j->next = ready;
            ready = j;
        } else {
            pp = &j->next;
        }
    }
    pthread_mutex_unlock(&a->jobs_lock);
    while (ready) {
        traces_job *j = ready;
        ready = j->next;
        pthread_join(j->thread, NULL); /* it has finished, or is returning */
        a->njobs--;
        if (j->cut) {
            atomic_fetch_add(&a->traces_cut, 1);
            sy_log_limited(&rl_traces_cut, SY_INFO, "admin: a /traces page was cut to its "
                           "bounds (200 rows per totals table, 1000 spans, 1 MiB per table); "
                           "the page says what was left out");
        }
        struct evkeyvalq *h = evhttp_request_get_output_headers(j->req);
        for (struct evkeyval *kv = TAILQ_FIRST(&j->headers); kv; kv = TAILQ_NEXT(kv, next))
            evhttp_add_header(h, kv->key, kv->value);
        evhttp_send_reply(j->req, j->code, reason_of(j->code), j->out);
        sy_admin_traces_job_free(j);
    }
}

void sy_admin_reply_text(struct evhttp_request *req, int code, const char *text)
{
    struct evbuffer *out = evbuffer_new();
    if (out)
        evbuffer_add_printf(out, "%s\n", text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    evhttp_send_reply(req, code, reason_of(code), out);
    if (out)
        evbuffer_free(out);
}

/* /traces: the dashboard over the memcached traces (tools/traces/). */
void sy_admin_http_traces(struct evhttp_request *req, void *arg)
{
    sy_admin *a = arg;
    if (!sy_admin_http_method_ok(req))
        return;
    if (!a->d.traces_page) {
        sy_admin_reply_text(req, 404, "no /traces in this build");
        return;
    }
    if (a->njobs >= TRACES_MAX_JOBS) {
        atomic_fetch_add(&a->traces_busy, 1);
        sy_log_limited(&rl_traces_busy, SY_WARN, "admin: /traces refused (503): %d pages are "
                       "being made already", TRACES_MAX_JOBS);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        sy_admin_reply_text(req, 503, "busy: other /traces pages are being made; try again in a moment");
        return;
    }
    const char *uri = evhttp_request_get_uri(req);
    const sy_config *c = a->d.conf;
    traces_job *j = calloc(1, sizeof *j);
    if (j) {
        TAILQ_INIT(&j->headers);
        j->a = a;
        j->req = req;
        j->uri = strdup(uri ? uri : "/traces");
        j->memcached = c->traces_memcached ? strdup(c->traces_memcached) : NULL;
        j->prefix = c->traces_prefix ? strdup(c->traces_prefix) : NULL;
        j->out = evbuffer_new();
    }
    if (!j || !j->uri || !j->out || (c->traces_memcached && !j->memcached) ||
        (c->traces_prefix && !j->prefix)) {
        if (j)
            sy_admin_traces_job_free(j);
        sy_admin_reply_text(req, 500, "out of memory");
        return;
    }
    /* Linked before the thread starts, so that its `done` is always
     * found; nothing else looks at it until jobs_fd says so. */
    pthread_mutex_lock(&a->jobs_lock);
    j->next = a->jobs;
    a->jobs = j;
    int rc = pthread_create(&j->thread, NULL, traces_work, j);
    if (rc != 0)
        a->jobs = j->next;
    pthread_mutex_unlock(&a->jobs_lock);
    if (rc != 0) {
        sy_log_limited(&rl_traces_busy, SY_WARN, "admin: cannot start a thread for /traces: %s",
                       strerror(rc));
        sy_admin_traces_job_free(j);
        sy_admin_reply_text(req, 503, "cannot start a thread for the page; try again in a moment");
        return;
    }
    a->njobs++;
}

