/*
 * output.c - the output loop: snapshots in, named values out to the sinks.
 */
#include "output.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "flush.h"
#include "log.h"
#include "sinkhost.h"

typedef struct pending {
    struct pending *next;
    sy_snapshot *snap;
    int final;
} pending;

/* Counters we report as per-interval deltas remember their last value. */
typedef struct self_metric {
    char name[200];
    int delta;
    uint64_t last;
} self_metric;

struct sy_output {
    const sy_config *conf;
    struct event_base *base;
    struct event *wake_ev;
    int wake_fd;
    sy_sink **sinks;
    size_t nsinks;
    sy_flusher *flusher;
    pthread_t thread;
    int started;
    int drained_ok;

    pthread_mutex_t lock;
    pending *head, *tail;
    int done;

    sy_listener *listeners;
    size_t nlisteners;
    const sy_agg_stats *agg;

    /* statsd's graphiteStats, from the previous flush */
    int64_t last_flush, last_exception;
    double flush_time_ms;
    size_t flush_length;

    self_metric *self;
    size_t nself, capself;
    sy_extra_metric *extra;
};

static double mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

/* Graphite-safe name part: "udp://127.0.0.1:8125" -> "udp_127_0_0_1_8125". */
static void name_part(char *dst, size_t cap, const char *src)
{
    size_t j = 0;
    int under = 0;
    for (const char *p = src; *p && j + 1 < cap; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (ok) {
            dst[j++] = c;
            under = 0;
        } else if (!under && j > 0) {
            dst[j++] = '_';
            under = 1;
        }
    }
    while (j > 0 && dst[j - 1] == '_')
        j--;
    dst[j] = '\0';
}

static void self_add(sy_output *o, size_t *n, const char *name, int delta, uint64_t value)
{
    if (*n >= o->capself) {
        size_t ncap = o->capself ? o->capself * 2 : 64;
        self_metric *ns = realloc(o->self, ncap * sizeof *ns);
        if (!ns)
            return;
        memset(ns + o->capself, 0, (ncap - o->capself) * sizeof *ns);
        o->self = ns;
        sy_extra_metric *ne = realloc(o->extra, ncap * sizeof *ne);
        if (!ne)
            return;
        o->extra = ne;
        o->capself = ncap;
    }
    self_metric *m = &o->self[*n];
    if (*n >= o->nself || strcmp(m->name, name) != 0) {
        snprintf(m->name, sizeof m->name, "%s", name);
        m->last = 0;
        if (*n >= o->nself)
            o->nself = *n + 1;
    }
    m->delta = delta;
    double v = delta ? (double)(value - m->last) : (double)value;
    if (delta)
        m->last = value;
    o->extra[*n] = (sy_extra_metric){ .name = m->name, .value = v };
    (*n)++;
}

/* statsd's graphiteStats plus switchyard's own metrics (listeners, sinks,
 * keys), all under the stats namespace. */
static size_t collect_extra(sy_output *o)
{
    size_t n = 0;
    char name[200], part[120];
    self_add(o, &n, "graphiteStats.last_exception", 0, (uint64_t)o->last_exception);
    self_add(o, &n, "graphiteStats.last_flush", 0, (uint64_t)o->last_flush);
    self_add(o, &n, "graphiteStats.flush_time", 0, (uint64_t)o->flush_time_ms);
    self_add(o, &n, "graphiteStats.flush_length", 0, (uint64_t)o->flush_length);
    for (size_t i = 0; i < o->nlisteners; i++) {
        sy_listener_counters c;
        sy_listener_counters_read(&o->listeners[i], &c);
        name_part(part, sizeof part, o->listeners[i].name);
        snprintf(name, sizeof name, "switchyard.listener.%s.received", part);
        self_add(o, &n, name, 1, c.received);
        snprintf(name, sizeof name, "switchyard.listener.%s.dropped", part);
        self_add(o, &n, name, 1, c.dropped);
        snprintf(name, sizeof name, "switchyard.listener.%s.lines_too_long", part);
        self_add(o, &n, name, 1, c.lines_too_long);
        if (sy_listener_is_stream(&o->listeners[i])) {
            snprintf(name, sizeof name, "switchyard.listener.%s.connections_open", part);
            self_add(o, &n, name, 0, c.connections_open);
            snprintf(name, sizeof name, "switchyard.listener.%s.paused", part);
            self_add(o, &n, name, 1, c.paused);
        }
    }
    for (size_t i = 0; i < o->nsinks; i++) {
        sy_sink_stats st;
        sy_sink_stats_get(o->sinks[i], &st);
        name_part(part, sizeof part, sy_sink_name(o->sinks[i]));
        snprintf(name, sizeof name, "switchyard.sink.%s.sent", part);
        self_add(o, &n, name, 1, (uint64_t)st.sent);
        snprintf(name, sizeof name, "switchyard.sink.%s.dropped", part);
        self_add(o, &n, name, 1, (uint64_t)(st.dropped + st.metrics_dropped_by_host));
        snprintf(name, sizeof name, "switchyard.sink.%s.queued", part);
        self_add(o, &n, name, 0, (uint64_t)st.queued);
        snprintf(name, sizeof name, "switchyard.sink.%s.connected", part);
        self_add(o, &n, name, 0, (uint64_t)st.connected);
    }
    if (o->agg) {
        self_add(o, &n, "switchyard.keys", 0, atomic_load(&o->agg->keys));
        self_add(o, &n, "switchyard.keys_rejected", 1, atomic_load(&o->agg->keys_rejected));
    }
    return n;
}

static void emit_batch(void *ctx, const sy_metric_batch *b)
{
    sy_output *o = ctx;
    for (size_t i = 0; i < o->nsinks; i++)
        sy_sink_write(o->sinks[i], b);
}

static void process(sy_output *o, sy_snapshot *s)
{
    double t0 = mono_ms();
    size_t nextra = collect_extra(o);
    sy_flush_result res;
    sy_flusher_run(o->flusher, s, o->extra, nextra, emit_batch, o, &res);
    for (size_t i = 0; i < o->nsinks; i++)
        sy_sink_flush(o->sinks[i], 0);
    o->flush_time_ms = mono_ms() - t0;
    o->flush_length = res.bytes;
    o->last_flush = s->ts;
    sy_snapshot_free(s);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    sy_output *o = arg;
    uint64_t v;
    ssize_t rc = read(fd, &v, sizeof v);
    (void)rc;
    for (;;) {
        pthread_mutex_lock(&o->lock);
        pending *p = o->head;
        if (p) {
            o->head = p->next;
            if (!o->head)
                o->tail = NULL;
        }
        pthread_mutex_unlock(&o->lock);
        if (!p)
            return;
        process(o, p->snap);
        int final = p->final;
        free(p);
        if (final) {
            o->done = 1;
            event_base_loopbreak(o->base);
            return;
        }
    }
}

sy_output *sy_output_new(const sy_config *c, const char *plugin_dir, char *err, size_t errlen)
{
    sy_output *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    o->conf = c;
    o->wake_fd = -1;
    pthread_mutex_init(&o->lock, NULL);
    o->base = event_base_new();
    o->flusher = sy_flusher_new(&c->flush);
    o->sinks = calloc(c->nsinks ? c->nsinks : 1, sizeof *o->sinks);
    if (!o->base || !o->flusher || !o->sinks) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    o->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    o->wake_ev = event_new(o->base, o->wake_fd, EV_READ | EV_PERSIST, on_wake, o);
    if (o->wake_fd < 0 || !o->wake_ev || event_add(o->wake_ev, NULL) < 0) {
        snprintf(err, errlen, "cannot set up the output loop");
        goto fail;
    }
    for (size_t i = 0; i < c->nsinks; i++) {
        const sy_sink_conf *sc = &c->sinks[i];
        const sy_sink_plugin *p = sy_plugin_load(plugin_dir, sc->plugin, err, errlen);
        if (!p)
            goto fail;
        if (sy_sink_check_settings(p, sc->name, sc->settings, sc->nsettings, err, errlen) < 0)
            goto fail;
        o->sinks[i] = sy_sink_open(o->base, sc->name, p, sc->settings, sc->nsettings, err, errlen);
        if (!o->sinks[i])
            goto fail;
        o->nsinks++;
    }
    return o;
fail:
    sy_output_free(o);
    return NULL;
}

void sy_output_set_sources(sy_output *o, sy_listener *listeners, size_t nlisteners,
                           const sy_agg_stats *agg)
{
    o->listeners = listeners;
    o->nlisteners = nlisteners;
    o->agg = agg;
}

static void *run(void *arg)
{
    sy_output *o = arg;
    while (!o->done)
        event_base_loop(o->base, EVLOOP_NO_EXIT_ON_EMPTY);
    o->drained_ok = sy_sinks_drain(o->base, o->sinks, o->nsinks, o->conf->shutdown_timeout_ms) == 0;
    return NULL;
}

int sy_output_start(sy_output *o)
{
    if (pthread_create(&o->thread, NULL, run, o) != 0)
        return -1;
    o->started = 1;
    return 0;
}

void sy_output_submit(sy_output *o, sy_snapshot *s, int final)
{
    pending *p = malloc(sizeof *p);
    if (!p) {
        sy_log(SY_ERR, "out of memory: a flush is lost");
        sy_snapshot_free(s);
        return;
    }
    p->snap = s;
    p->final = final;
    p->next = NULL;
    pthread_mutex_lock(&o->lock);
    if (o->tail)
        o->tail->next = p;
    else
        o->head = p;
    o->tail = p;
    pthread_mutex_unlock(&o->lock);
    uint64_t one = 1;
    ssize_t rc = write(o->wake_fd, &one, sizeof one);
    (void)rc;
}

int sy_output_join(sy_output *o)
{
    if (!o->started)
        return 0;
    pthread_join(o->thread, NULL);
    o->started = 0;
    return o->drained_ok ? 0 : -1;
}

void sy_output_free(sy_output *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->nsinks; i++)
        sy_sink_close(o->sinks[i]);
    free(o->sinks);
    pending *p = o->head;
    while (p) {
        pending *next = p->next;
        sy_snapshot_free(p->snap);
        free(p);
        p = next;
    }
    if (o->wake_ev)
        event_free(o->wake_ev);
    if (o->wake_fd >= 0)
        close(o->wake_fd);
    sy_flusher_free(o->flusher);
    if (o->base)
        event_base_free(o->base);
    free(o->self);
    free(o->extra);
    pthread_mutex_destroy(&o->lock);
    free(o);
}
