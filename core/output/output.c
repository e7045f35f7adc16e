/*
 * output.c - the output loop: snapshots in, named values out to the sinks.
 */
#include "output/output.h"
#include "engine/budget.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "engine/agg.h"
#include "output/flush.h"
#include "util/log.h"
#include "util/clock.h"
#include "output/sinkhost.h"
#include "output/spool.h"
#include "admin/status.h"

typedef struct pending {
    struct pending *next;
    sy_snapshot *snap;     /* one of these three */
    sy_raw_batch *raw;
    sy_config *conf;
    int final;
} pending;

/*
 * Flushes reach each sink a piece at a time (flush.h's cursor): the next
 * piece is made when the sink took the last one, so that a flush of any
 * size reaches a sink that keeps up whole, with at most one piece of it
 * waiting outside the sink's own queue (in the host's retry list) and the
 * snapshot as the only copy of the rest.  Each sink keeps its own place,
 * so a slow sink never holds a fast one back.  A sink still sending a
 * flush when MAX_BEHIND newer ones are due loses the oldest whole,
 * counted as dropped and logged: memory stays bounded by a few snapshots.
 */
#define PIECE_VALUES 2048  /* values made per piece */
#define PUMP_MS 1          /* how often a sink that held a piece back is looked at */
#define MAX_BEHIND 2       /* unfinished flushes a sink may have */

typedef struct job_sink {
    sy_sink *sink;
    uint64_t bit;          /* its bit in the snapshot's masks */
    sy_flush_cursor c;
    int done;
    int skipped;           /* the rest was counted, not made: no timings */
} job_sink;

typedef struct job {
    struct job *next;
    sy_snapshot *snap;
    sy_flusher *flusher;   /* the output's when it was made (a reload keeps
                            * it, in old_flushers, while the job needs it) */
    sy_extra_metric *extra;
    size_t nextra;
    char *extra_names;
    job_sink *s;
    size_t nsinks, left;
    double t0;
    /* the first sink's calculationtime and processing_time, given to the
     * others so that every sink shows the same flush */
    int timed;
    double calc_ms, processing_ms;
} job;

/* The flusher of a config a reload replaced, kept while a job made before
 * the reload still makes lines with it. */
typedef struct old_flusher {
    struct old_flusher *next;
    sy_flusher *f;
} old_flusher;

/* A sink replaced by a reload, drained before it is closed. */
typedef struct retiring {
    struct retiring *next;
    sy_sink *sink;
    uint64_t deadline_ms;
} retiring;

/* Counters we report as per-interval deltas remember, by name, the total
 * they had at the previous flush; the name is the identity because sinks
 * and listeners come and go with reloads. */
typedef struct self_metric {
    char name[200];
    uint64_t last;
    double value;      /* this flush's value */
} self_metric;

struct sy_output {
    const sy_config *conf;
    sy_config *owned_conf;  /* a reloaded config, ours to free */
    retiring *retiring;
    struct event *retire_ev;
    struct event_base *base;
    struct event *wake_ev;
    int wake_fd;
    sy_sink **sinks;
    size_t nsinks;
    sy_flusher *flusher;
    old_flusher *old_flushers;
    char plugin_dir[1024];
    pthread_t thread;
    int started;
    int drained_ok;

    pthread_mutex_t lock;
    pthread_mutex_t sinks_lock; /* the admin reads sinks[] under it */
    pending *head, *tail;
    int done;

    sy_listener *listeners;
    size_t nlisteners;
    sy_ring **rings;
    size_t nrings;
    sy_listen_info *linfo;  /* the engine's: auth flags and refusals */
    const sy_agg_stats *agg;

    /* statsd's graphiteStats, from the previous flush */
    int64_t last_flush, last_exception;
    double flush_time_ms;
    size_t flush_length;

    self_metric *self;      /* every self-metric seen, by name */
    size_t nself, capself;
    size_t *order;          /* this flush's values: indices into self */
    size_t norder_cap;
    sy_extra_metric *extra;
    size_t extra_cap;

    job *jobs, *jobs_tail;  /* flushes being sent, oldest first */
    struct event *pump_ev;
};

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

static self_metric *self_find(sy_output *o, size_t hint, const char *name)
{
    if (hint < o->nself && strcmp(o->self[hint].name, name) == 0)
        return &o->self[hint];
    for (size_t i = 0; i < o->nself; i++)
        if (strcmp(o->self[i].name, name) == 0)
            return &o->self[i];
    if (o->nself == o->capself) {
        size_t ncap = o->capself ? o->capself * 2 : 64;
        self_metric *ns = realloc(o->self, ncap * sizeof *ns);
        if (!ns)
            return NULL;
        o->self = ns;
        o->capself = ncap;
    }
    self_metric *m = &o->self[o->nself++];
    snprintf(m->name, sizeof m->name, "%s", name);
    m->last = 0; /* new: its first delta is its total so far */
    return m;
}

/* Record one value; *n counts this flush's values, which are in
 * o->order[0..n) once collect_extra is done. */
static void self_add(sy_output *o, size_t *n, const char *name, int delta, uint64_t value)
{
    self_metric *m = self_find(o, *n, name);
    if (!m)
        return;
    m->value = delta ? (double)(value - m->last) : (double)value;
    if (delta)
        m->last = value;
    if (*n == o->norder_cap) {
        size_t ncap = o->norder_cap ? o->norder_cap * 2 : 64;
        size_t *no = realloc(o->order, ncap * sizeof *no);
        if (!no)
            return;
        o->order = no;
        o->norder_cap = ncap;
    }
    o->order[(*n)++] = (size_t)(m - o->self);
}

/* Series budgets: switchyard.budget.KIND_VALUE.keys and .dropped. */
struct budget_self {
    sy_output *o;
    size_t *n;
};

static void budget_self_add(void *ctx, const char *label, const char *kind, uint64_t max_keys,
                            uint64_t keys, uint64_t dropped)
{
    struct budget_self *bs = ctx;
    char part[256], name[320];
    name_part(part, sizeof part, label);
    snprintf(name, sizeof name, "switchyard.budget.%s.keys", part);
    self_add(bs->o, bs->n, name, 0, keys);
    snprintf(name, sizeof name, "switchyard.budget.%s.dropped", part);
    self_add(bs->o, bs->n, name, 1, dropped);
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
            snprintf(name, sizeof name, "switchyard.listener.%s.partial_discarded", part);
            self_add(o, &n, name, 1, c.partial_discarded);
        }
        if (o->linfo && o->linfo[i].auth) {
            snprintf(name, sizeof name, "switchyard.listener.%s.auth_rejected", part);
            self_add(o, &n, name, 1, atomic_load(&o->linfo[i].auth_rejected));
        }
        if (sy_listener_is_stream(&o->listeners[i])) {
            snprintf(name, sizeof name, "switchyard.listener.%s.connections_open", part);
            self_add(o, &n, name, 0, c.connections_open);
            snprintf(name, sizeof name, "switchyard.listener.%s.paused", part);
            self_add(o, &n, name, 1, c.paused);
        }
    }
    for (size_t i = 0; i < o->nsinks; i++) {
        sy_sink_stats st;
        if (!o->sinks[i])
            continue;
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
        snprintf(name, sizeof name, "switchyard.sink.%s.adjusted", part);
        self_add(o, &n, name, 1, (uint64_t)st.adjusted);
        if (st.spool) {
            snprintf(name, sizeof name, "switchyard.sink.%s.spool.bytes", part);
            self_add(o, &n, name, 0, (uint64_t)st.spool_bytes);
            snprintf(name, sizeof name, "switchyard.sink.%s.spool.records", part);
            self_add(o, &n, name, 0, (uint64_t)st.spool_records);
            int64_t age = st.spool_oldest_ts ? (int64_t)time(NULL) - st.spool_oldest_ts : 0;
            snprintf(name, sizeof name, "switchyard.sink.%s.spool.oldest_age_seconds", part);
            self_add(o, &n, name, 0, (uint64_t)(age > 0 ? age : 0));
            snprintf(name, sizeof name, "switchyard.sink.%s.spool.spooled", part);
            self_add(o, &n, name, 1, (uint64_t)st.spool_spooled);
            snprintf(name, sizeof name, "switchyard.sink.%s.spool.replayed", part);
            self_add(o, &n, name, 1, (uint64_t)st.spool_replayed);
            snprintf(name, sizeof name, "switchyard.sink.%s.spool.dropped", part);
            self_add(o, &n, name, 1, (uint64_t)st.spool_dropped);
            snprintf(name, sizeof name, "switchyard.sink.%s.spool.corrupt", part);
            self_add(o, &n, name, 1, (uint64_t)st.spool_corrupt);
            snprintf(name, sizeof name, "switchyard.sink.%s.spool.lines_spooled", part);
            self_add(o, &n, name, 1, (uint64_t)st.spool_lines_spooled);
            snprintf(name, sizeof name, "switchyard.sink.%s.spool.lines_replayed", part);
            self_add(o, &n, name, 1, (uint64_t)st.spool_lines_replayed);
        }
    }
    /* Ring fullness: the fullest ring says how close ingest is to loss. */
    uint64_t used = 0, worst = 0;
    for (size_t i = 0; i < o->nrings; i++) {
        size_t u = sy_ring_used(o->rings[i]);
        uint64_t pct = (uint64_t)u * 100 / sy_ring_capacity(o->rings[i]);
        used += u;
        if (pct > worst)
            worst = pct;
    }
    self_add(o, &n, "switchyard.ring.used_bytes", 0, used);
    self_add(o, &n, "switchyard.ring.max_used_pct", 0, worst);
    self_add(o, &n, "switchyard.reloads.ok", 1, atomic_load(&sy_reload_status.reloads_ok));
    self_add(o, &n, "switchyard.reloads.failed", 1, atomic_load(&sy_reload_status.reloads_failed));
    if (o->agg) {
        self_add(o, &n, "switchyard.keys", 0, atomic_load(&o->agg->keys));
        self_add(o, &n, "switchyard.keys_rejected", 1, atomic_load(&o->agg->keys_rejected));
        self_add(o, &n, "switchyard.route.dropped", 1, atomic_load(&o->agg->routed_drops));
        self_add(o, &n, "switchyard.route.sampled_out", 1, atomic_load(&o->agg->sampled_out));
        self_add(o, &n, "switchyard.route.passed_through", 1, atomic_load(&o->agg->passed_through));
        self_add(o, &n, "switchyard.route.passthrough_dropped", 1, atomic_load(&o->agg->raw_dropped));
        self_add(o, &n, "switchyard.route.errors", 1, atomic_load(&o->agg->route_errors));
        struct budget_self bs = { o, &n };
        sy_budgets_each(o->agg->budgets, budget_self_add, &bs);
    }
    /* self[] may have moved while growing: take the names now. */
    if (n > o->extra_cap) {
        sy_extra_metric *ne = realloc(o->extra, n * sizeof *ne);
        if (!ne)
            return 0;
        o->extra = ne;
        o->extra_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        o->extra[i] = (sy_extra_metric){ .name = o->self[o->order[i]].name,
                                         .value = o->self[o->order[i]].value };
    return n;
}

static int by_sinks(const void *x, const void *y)
{
    uint64_t a = ((const sy_snap_item *)x)->sinks, b = ((const sy_snap_item *)y)->sinks;
    return (a > b) - (a < b);
}

static void emit_to_sink(void *ctx, const sy_metric_batch *b, uint64_t sinks)
{
    sy_sink_write(((job_sink *)ctx)->sink, b);
}

/* A sink with a disk spool keeps what the output would otherwise drop or
 * push at it all at once: it goes to the spool, replayed in order later. */
static void emit_spill(void *ctx, const sy_metric_batch *b, uint64_t sinks)
{
    sy_sink_spill(((job_sink *)ctx)->sink, b);
}

static void job_free(job *j)
{
    if (!j)
        return;
    sy_snapshot_free(j->snap);
    free(j->extra);
    free(j->extra_names);
    free(j->s);
    free(j);
}

/* Before a sink's next piece: the flush's timings, once a sink has them. */
static void job_timing(job *j, job_sink *js)
{
    if (j->timed && !js->c.fixed) {
        js->c.fixed = 1;
        js->c.calc_ms = j->calc_ms;
        js->c.res.processing_ms = j->processing_ms;
    }
}

/* A job's part for one sink is over. */
static void job_sink_done(sy_output *o, job *j, job_sink *js)
{
    js->done = 1;
    if (!j->timed && !js->skipped) {
        j->timed = 1;
        j->calc_ms = js->c.calc_ms;
        j->processing_ms = js->c.res.processing_ms;
    }
    sy_sink_flush(js->sink, 0);
    if (--j->left == 0) {
        o->flush_time_ms = sy_mono_ms_f() - j->t0;
        size_t bytes = 0;
        for (size_t k = 0; k < j->nsinks; k++)
            if (j->s[k].c.res.bytes > bytes)
                bytes = j->s[k].c.res.bytes;
        o->flush_length = bytes;
        o->last_flush = j->snap->ts;
    }
}

/*
 * The rest of a flush for one sink, counted as dropped without being made
 * (sy_flusher_skip: no names, no timer statistics).  For a sink whose
 * destination is down or stuck, making lines it can only drop would cost
 * the output thread as much as a healthy sink's flush, and at a million
 * lines a flush that made a fast sibling fall behind.
 */
static void skip_rest(sy_output *o, job *j, job_sink *js, const char *why)
{
    size_t n = sy_flusher_skip(j->flusher, j->snap, j->nextra, js->bit, &js->c);
    js->skipped = 1;
    sy_sink_drop(js->sink, n, why);
    job_sink_done(o, j, js);
}

/* Whether an older job still has values for this sink (order is kept). */
static int sink_busy_before(const sy_output *o, const job *upto, const sy_sink *sink)
{
    for (const job *j = o->jobs; j && j != upto; j = j->next)
        for (size_t k = 0; k < j->nsinks; k++)
            if (j->s[k].sink == sink && !j->s[k].done)
                return 1;
    return 0;
}

/* Frees the replaced flushers no job uses any more. */
static void old_flushers_reap(sy_output *o)
{
    old_flusher **pp = &o->old_flushers;
    while (*pp) {
        old_flusher *of = *pp;
        int used = 0;
        for (const job *j = o->jobs; j && !used; j = j->next)
            used = j->flusher == of->f;
        if (used) {
            pp = &of->next;
            continue;
        }
        *pp = of->next;
        sy_flusher_free(of->f);
        free(of);
    }
}

static void jobs_reap(sy_output *o)
{
    job **pp = &o->jobs, *prev = NULL;
    while (*pp) {
        job *j = *pp;
        if (j->left == 0) {
            *pp = j->next;
            if (o->jobs_tail == j)
                o->jobs_tail = prev;
            job_free(j);
        } else {
            prev = j;
            pp = &j->next;
        }
    }
    if (o->old_flushers)
        old_flushers_reap(o);
}

/* Give each sink the next pieces of its oldest unfinished flush while it
 * takes them; look again in PUMP_MS while any is left. */
static void pump(sy_output *o)
{
    for (job *j = o->jobs; j; j = j->next) {
        for (size_t k = 0; k < j->nsinks; k++) {
            job_sink *js = &j->s[k];
            if (js->done || sink_busy_before(o, j, js->sink))
                continue;
            if (sy_sink_held(js->sink))
                sy_sink_retry_now(js->sink);
            while (!js->done && sy_sink_held(js->sink) == 0) {
                job_timing(j, js);
                int64_t dropped = sy_sink_dropped(js->sink);
                if (!sy_flusher_next(j->flusher, j->snap, j->extra, j->nextra, js->bit, &js->c,
                                     PIECE_VALUES, emit_to_sink, js))
                    job_sink_done(o, j, js);
                else if (sy_sink_dropped(js->sink) > dropped && !sy_sink_spooled(js->sink) &&
                         sy_sink_stuck(js->sink))
                    skip_rest(o, j, js, "the sink is down or stuck and dropped what it was "
                                        "given: the rest of the flush is not made");
            }
        }
    }
    jobs_reap(o);
    if (o->jobs && !evtimer_pending(o->pump_ev, NULL)) {
        struct timeval tv = { 0, PUMP_MS * 1000 };
        evtimer_add(o->pump_ev, &tv);
    }
}

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
    pump(arg);
}

/* What is left of one sink's flush goes to it now, as it did before
 * flushes were paced (the host holds what a sink refuses, within
 * retryMaxMetrics, and counts the rest as dropped).  At shutdown (final) a
 * sink without a spool has no time left to send anything: the rest is
 * counted, not made, so that the exit is not held up making lines that
 * cannot leave (at 5M keys, three flushes of 10M lines took seconds); a
 * spooled sink's rest goes to its spool. */
static void push_one(sy_output *o, job *j, job_sink *js, int final)
{
    if (!sy_sink_spooled(js->sink) && final) {
        skip_rest(o, j, js, "shutdownTimeout passed before the sink took the whole "
                            "flush: the rest is not made");
        return;
    }
    if (!sy_sink_spooled(js->sink) && sy_sink_stuck(js->sink)) {
        skip_rest(o, j, js, "the sink is down or stuck: what is left of a flush for a "
                            "sink a reload closes is not made");
        return;
    }
    job_timing(j, js);
    while (sy_flusher_next(j->flusher, j->snap, j->extra, j->nextra, js->bit, &js->c, SIZE_MAX,
                           sy_sink_spooled(js->sink) ? emit_spill : emit_to_sink, js))
        ;
    job_sink_done(o, j, js);
}

/* Every unfinished flush's rest, to every sink, at shutdown once
 * shutdownTimeout is out. */
static void push_out(sy_output *o, int final)
{
    for (job *j = o->jobs; j; j = j->next)
        for (size_t k = 0; k < j->nsinks; k++)
            if (!j->s[k].done)
                push_one(o, j, &j->s[k], final);
    jobs_reap(o);
}

/* A reload: the sinks it closes get the rest of their unfinished flushes
 * now (they are then drained and closed); the sinks it keeps (the same
 * plugin and settings: the same connection and queue) go on taking theirs
 * a piece at a time, made with the flusher of the config they were taken
 * under, so a reload in the middle of a large flush loses nothing a
 * healthy sink would have taken. */
static void push_out_closing(sy_output *o, sy_sink *const *kept, size_t nkept)
{
    for (job *j = o->jobs; j; j = j->next)
        for (size_t k = 0; k < j->nsinks; k++) {
            job_sink *js = &j->s[k];
            int keep = 0;
            for (size_t i = 0; i < nkept && !keep; i++)
                keep = kept[i] == js->sink;
            if (!js->done && !keep)
                push_one(o, j, js, 0);
        }
    jobs_reap(o);
}

/* A sink MAX_BEHIND flushes behind loses its oldest unfinished one. */
static void drop_oldest_for(sy_output *o, sy_sink *sink)
{
    size_t behind = 0;
    for (job *j = o->jobs; j; j = j->next)
        for (size_t k = 0; k < j->nsinks; k++)
            behind += j->s[k].sink == sink && !j->s[k].done;
    for (job *j = o->jobs; j && behind >= MAX_BEHIND; j = j->next)
        for (size_t k = 0; k < j->nsinks; k++) {
            job_sink *js = &j->s[k];
            if (js->sink != sink || js->done)
                continue;
            if (sy_sink_spooled(sink)) {
                job_timing(j, js);
                while (sy_flusher_next(j->flusher, j->snap, j->extra, j->nextra, js->bit,
                                       &js->c, PIECE_VALUES, emit_spill, js))
                    ;
                job_sink_done(o, j, js);
                behind--;
                continue;
            }
            skip_rest(o, j, js, "the sink was still taking a flush when newer ones were due: "
                                "the oldest is dropped whole");
            behind--;
        }
}

static void process(sy_output *o, sy_snapshot *s)
{
    /* Group items by destination so batches stay large. */
    for (size_t i = 1; i < s->n; i++) {
        if (s->items[i].sinks != s->items[0].sinks) {
            qsort(s->items, s->n, sizeof *s->items, by_sinks);
            break;
        }
    }
    size_t nextra = collect_extra(o), bytes = 0;
    job *j = calloc(1, sizeof *j);
    if (j) {
        j->s = calloc(o->nsinks ? o->nsinks : 1, sizeof *j->s);
        j->extra = calloc(nextra ? nextra : 1, sizeof *j->extra);
        for (size_t i = 0; i < nextra; i++)
            bytes += strlen(o->extra[i].name) + 1;
        j->extra_names = malloc(bytes ? bytes : 1);
    }
    if (!j || !j->s || !j->extra || !j->extra_names) {
        sy_log(SY_ERR, "out of memory: a flush is lost");
        job_free(j);
        sy_snapshot_free(s);
        return;
    }
    /* the extras' names live in o->self, which the next flush may move */
    char *p = j->extra_names;
    for (size_t i = 0; i < nextra; i++) {
        size_t n = strlen(o->extra[i].name) + 1;
        memcpy(p, o->extra[i].name, n);
        j->extra[i] = (sy_extra_metric){ .name = p, .value = o->extra[i].value };
        p += n;
    }
    j->nextra = nextra;
    j->snap = s;
    j->flusher = o->flusher;
    j->t0 = sy_mono_ms_f();
    for (size_t i = 0; i < o->nsinks && i < 64; i++) {
        if (!o->sinks[i])
            continue;
        drop_oldest_for(o, o->sinks[i]);
        j->s[j->nsinks++] = (job_sink){ .sink = o->sinks[i], .bit = 1ull << i };
    }
    j->left = j->nsinks;
    if (!j->left) {
        job_free(j);
        return;
    }
    if (o->jobs_tail)
        o->jobs_tail->next = j;
    else
        o->jobs = j;
    o->jobs_tail = j;
    pump(o);
}

/* Samples per write_samples call: as many as a flush batch holds. */
#define RAW_BATCH_MAX 2048

/* Pass-through samples: each sink gets the ones whose mask names it. */
static void process_raw(sy_output *o, sy_raw_batch *b)
{
    sy_sample *tmp = malloc(b->n * sizeof *tmp);
    int64_t *tss = malloc(b->n * sizeof *tss);
    const char **lines = malloc(b->n * sizeof *lines);
    uint32_t *lens = malloc(b->n * sizeof *lens);
    if (!tmp || !tss || !lines || !lens)
        sy_log(SY_ERR, "out of memory handing %zu pass-through samples to the sinks", b->n);
    for (size_t i = 0; tmp && tss && lines && lens && i < o->nsinks && i < 64; i++) {
        if (!o->sinks[i])
            continue;
        size_t n = 0, nl = 0;
        int any_ts = 0;
        for (size_t k = 0; k < b->n; k++) {
            if (!((b->masks[k] >> i) & 1))
                continue;
            if (b->samples[k].type == SY_RAW_DD_LINE) {
                /* DogStatsD events and service checks: never samples */
                lines[nl] = b->samples[k].text;
                lens[nl++] = b->samples[k].text_len;
            } else {
                any_ts |= b->ts_ms[k] != 0;
                tss[n] = b->ts_ms[k];
                tmp[n++] = b->samples[k];
            }
        }
        for (size_t k = 0; k < nl; k += RAW_BATCH_MAX)
            sy_sink_write_lines(o->sinks[i], lines + k, lens + k,
                                nl - k < RAW_BATCH_MAX ? nl - k : RAW_BATCH_MAX);
        /* in batches no larger than a flush's, so that a sink can hold
         * one back (SY_RETRY) for a queue smaller than a burst */
        for (size_t k = 0; k < n; k += RAW_BATCH_MAX) {
            sy_sample_batch sb = { .samples = tmp + k,
                                   .count = n - k < RAW_BATCH_MAX ? n - k : RAW_BATCH_MAX,
                                   .timestamps_ms = any_ts ? tss + k : NULL };
            sy_sink_write_samples(o->sinks[i], &sb);
        }
    }
    free(tmp);
    free(tss);
    free(lines);
    free(lens);
    sy_raw_batch_free(b);
}

static int setting_equal(const sy_setting *a, const sy_setting *b)
{
    if (strcmp(a->key, b->key) != 0 || a->type != b->type)
        return 0;
    switch (a->type) {
    case SY_SET_STRING: return strcmp(a->str, b->str) == 0;
    case SY_SET_NUMBER: return a->num == b->num;
    case SY_SET_BOOL: return a->boolean == b->boolean;
    default:
        if (a->list_len != b->list_len)
            return 0;
        for (int i = 0; i < a->list_len; i++)
            if (strcmp(a->list[i], b->list[i]) != 0)
                return 0;
        return 1;
    }
}

/* Every setting of a (but the spool's when skip_spool) is in b with the
 * same value. */
static int settings_in(const sy_sink_conf *a, const sy_sink_conf *b, int skip_spool)
{
    for (size_t i = 0; i < a->nsettings; i++) {
        if (skip_spool && sy_spool_key(a->settings[i].key))
            continue;
        size_t j = 0;
        while (j < b->nsettings && strcmp(a->settings[i].key, b->settings[j].key) != 0)
            j++;
        if (j == b->nsettings || !setting_equal(&a->settings[i], &b->settings[j]))
            return 0;
    }
    return 1;
}

/* Same plugin, same settings (in any order); with skip_spool, the
 * spool's settings may differ (the host applies them to the sink it
 * keeps). */
static int sink_conf_equal(const sy_sink_conf *a, const sy_sink_conf *b, int skip_spool)
{
    if (strcmp(a->plugin, b->plugin) != 0)
        return 0;
    if (!skip_spool && a->nsettings != b->nsettings)
        return 0;
    return settings_in(a, b, skip_spool) && settings_in(b, a, skip_spool);
}

static void retire_check(evutil_socket_t fd, short what, void *arg)
{
    sy_output *o = arg;
    retiring **pp = &o->retiring;
    uint64_t now = sy_mono_ms();
    while (*pp) {
        retiring *r = *pp;
        if (sy_sink_pending(r->sink) == 0 || now >= r->deadline_ms) {
            if (sy_sink_pending(r->sink))
                sy_log(SY_WARN, "sink '%s' closed by a reload with %zu metrics still queued",
                       sy_sink_name(r->sink), sy_sink_pending(r->sink));
            sy_sink_close(r->sink);
            *pp = r->next;
            free(r);
        } else {
            pp = &r->next;
        }
    }
    if (o->retiring) {
        struct timeval tv = { 0, 100000 };
        event_add(o->retire_ev, &tv);
    }
}

static void retire(sy_output *o, sy_sink *s)
{
    retiring *r = malloc(sizeof *r);
    if (!r) {
        sy_sink_close(s);
        return;
    }
    sy_sink_flush(s, 1);
    r->sink = s;
    r->deadline_ms = sy_mono_ms() + o->conf->shutdown_timeout_ms;
    r->next = o->retiring;
    o->retiring = r;
    struct timeval tv = { 0, 100000 };
    event_add(o->retire_ev, &tv);
}

/* A reload: reuse what did not change, open what is new, retire the rest. */
static void process_config(sy_output *o, sy_config *nc)
{
    const sy_config *oc = o->conf;
    sy_sink **ns = calloc(nc->nsinks ? nc->nsinks : 1, sizeof *ns);
    sy_flusher *nf = sy_flusher_new(&nc->flush);
    if (!ns || !nf) {
        sy_log(SY_ERR, "reload: out of memory; keeping the old sinks");
        free(ns);
        sy_flusher_free(nf);
        sy_config_free(nc);
        return;
    }
    char err[512];
    const char *pdir = nc->plugin_dir ? nc->plugin_dir : o->plugin_dir;
    for (size_t i = 0; i < nc->nsinks; i++) {
        const sy_sink_conf *sc = &nc->sinks[i];
        for (size_t j = 0; j < oc->nsinks; j++) {
            if (o->sinks[j] && strcmp(oc->sinks[j].name, sc->name) == 0 &&
                sink_conf_equal(&oc->sinks[j], sc, 1)) {
                ns[i] = o->sinks[j]; /* same connection, same queue */
                o->sinks[j] = NULL;
                if (!sink_conf_equal(&oc->sinks[j], sc, 0))
                    sy_sink_spool_settings(ns[i], sc->settings, sc->nsettings);
                break;
            }
        }
        if (ns[i])
            continue;
        const sy_sink_plugin *p = sy_plugin_load(pdir, sc->plugin, err, sizeof err);
        ns[i] = p ? sy_sink_open(o->base, sc->name, p, sc->settings, sc->nsettings, err, sizeof err) : NULL;
        if (!ns[i])
            sy_log(SY_ERR, "reload: sink '%s' could not be opened: %s", sc->name, err);
        else
            sy_log(SY_INFO, "reload: sink '%s' (re)opened", sc->name);
    }
    push_out_closing(o, ns, nc->nsinks);
    pthread_mutex_lock(&o->sinks_lock);
    for (size_t j = 0; j < o->nsinks; j++)
        if (o->sinks[j])
            retire(o, o->sinks[j]);
    free(o->sinks);
    o->sinks = ns;
    o->nsinks = nc->nsinks;
    pthread_mutex_unlock(&o->sinks_lock);
    old_flusher *of = malloc(sizeof *of);
    if (of) {
        of->f = o->flusher;
        of->next = o->old_flushers;
        o->old_flushers = of;
        old_flushers_reap(o); /* at once when no job needs it */
    } else {
        push_out(o, 0); /* out of memory: the old way, every rest at once */
        sy_flusher_free(o->flusher);
    }
    o->flusher = nf;
    o->conf = nc;
    sy_config_free(o->owned_conf);
    o->owned_conf = nc;
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
        if (p->snap)
            process(o, p->snap);
        else if (p->raw)
            process_raw(o, p->raw);
        else if (p->conf)
            process_config(o, p->conf);
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
    snprintf(o->plugin_dir, sizeof o->plugin_dir, "%s", plugin_dir);
    pthread_mutex_init(&o->lock, NULL);
    pthread_mutex_init(&o->sinks_lock, NULL);
    o->base = event_base_new();
    o->flusher = sy_flusher_new(&c->flush);
    o->sinks = calloc(c->nsinks ? c->nsinks : 1, sizeof *o->sinks);
    if (!o->base || !o->flusher || !o->sinks) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    o->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    o->wake_ev = event_new(o->base, o->wake_fd, EV_READ | EV_PERSIST, on_wake, o);
    o->retire_ev = event_new(o->base, -1, 0, retire_check, o);
    o->pump_ev = evtimer_new(o->base, pump_cb, o);
    if (o->wake_fd < 0 || !o->wake_ev || !o->retire_ev || !o->pump_ev ||
        event_add(o->wake_ev, NULL) < 0) {
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
                           sy_listen_info *linfo, sy_ring **rings, size_t nrings,
                           const sy_agg_stats *agg)
{
    o->linfo = linfo;
    o->listeners = listeners;
    o->nlisteners = nlisteners;
    o->rings = rings;
    o->nrings = nrings;
    o->agg = agg;
}

static void *run(void *arg)
{
    sy_output *o = arg;
    while (!o->done)
        event_base_loop(o->base, EVLOOP_NO_EXIT_ON_EMPTY);
    /* The last flushes go on reaching the sinks a piece at a time for as
     * long as shutdownTimeout allows; then what is left is pushed out. */
    uint64_t start = sy_mono_ms(), timeout = o->conf->shutdown_timeout_ms;
    while (o->jobs && sy_mono_ms() - start < timeout)
        if (event_base_loop(o->base, EVLOOP_ONCE) < 0)
            break;
    push_out(o, 1);
    uint64_t spent = sy_mono_ms() - start;
    /* Drain every open sink, those retiring after a reload included. */
    size_t n = 0;
    for (retiring *r = o->retiring; r; r = r->next)
        n++;
    sy_sink **all = calloc(o->nsinks + n + 1, sizeof *all);
    if (!all)
        return NULL;
    n = 0;
    for (size_t i = 0; i < o->nsinks; i++)
        if (o->sinks[i])
            all[n++] = o->sinks[i];
    for (retiring *r = o->retiring; r; r = r->next)
        all[n++] = r->sink;
    o->drained_ok = sy_sinks_drain(o->base, all, n, spent < timeout ? timeout - spent : 0) == 0;
    free(all);
    return NULL;
}

int sy_output_start(sy_output *o)
{
    if (pthread_create(&o->thread, NULL, run, o) != 0)
        return -1;
    o->started = 1;
    return 0;
}

static void enqueue(sy_output *o, pending *p)
{
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

/* Hands one piece of work (a snapshot, a raw batch or a config) to the
 * output thread; 0, or -1 when out of memory (the caller frees it). */
static int submit(sy_output *o, pending work)
{
    pending *p = malloc(sizeof *p);
    if (!p)
        return -1;
    *p = work;
    enqueue(o, p);
    return 0;
}

void sy_output_submit(sy_output *o, sy_snapshot *s, int final)
{
    if (submit(o, (pending){ .snap = s, .final = final }) < 0) {
        sy_log(SY_ERR, "out of memory: a flush is lost");
        sy_snapshot_free(s);
    }
}

void sy_output_submit_raw(sy_output *o, sy_raw_batch *b)
{
    if (submit(o, (pending){ .raw = b }) == 0)
        return;
    /* Out of memory for the queue's node: the batch's samples and lines
     * are lost, counted where the engine counts those it cannot hold. */
    uint64_t lines = 0;
    for (size_t i = 0; i < b->n; i++)
        lines += b->samples[i].type == SY_RAW_DD_LINE;
    if (o->agg) {
        /* the engine's counters: atomic, read-only to the output elsewhere */
        sy_agg_stats *st = (sy_agg_stats *)o->agg;
        atomic_fetch_add(&st->raw_dropped, b->n - lines);
        atomic_fetch_add(&st->dd_dropped, lines);
    }
    sy_log(SY_ERR, "out of memory: %zu pass-through samples and %llu DogStatsD lines are lost "
           "(switchyard_passthrough_dropped_total, switchyard_dogstatsd_dropped_total)",
           b->n - (size_t)lines, (unsigned long long)lines);
    sy_raw_batch_free(b);
}

void sy_output_submit_config(sy_output *o, sy_config *c)
{
    if (submit(o, (pending){ .conf = c }) < 0) {
        sy_log(SY_ERR, "reload: out of memory handing the new config to the output; the sinks "
               "stay as they were");
        sy_config_free(c);
    }
}

uint64_t sy_output_sink_count(const sy_output *o) { return o->nsinks; }

void sy_output_report_sinks(sy_output *o, sy_sink_report_fn fn, void *ctx)
{
    pthread_mutex_lock(&o->sinks_lock);
    for (size_t i = 0; i < o->nsinks; i++) {
        if (!o->sinks[i])
            continue;
        sy_sink_stats st;
        sy_sink_stats_get(o->sinks[i], &st);
        fn(ctx, sy_sink_name(o->sinks[i]), sy_sink_plugin_of(o->sinks[i])->name, &st);
    }
    pthread_mutex_unlock(&o->sinks_lock);
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
        if (o->sinks[i])
            sy_sink_close(o->sinks[i]);
    free(o->sinks);
    while (o->retiring) {
        retiring *r = o->retiring;
        o->retiring = r->next;
        sy_sink_close(r->sink);
        free(r);
    }
    if (o->retire_ev)
        event_free(o->retire_ev);
    while (o->jobs) {
        job *j = o->jobs;
        o->jobs = j->next;
        job_free(j);
    }
    old_flushers_reap(o);
    if (o->pump_ev)
        event_free(o->pump_ev);
    pending *p = o->head;
    while (p) {
        pending *next = p->next;
        sy_snapshot_free(p->snap);
        sy_raw_batch_free(p->raw);
        sy_config_free(p->conf);
        free(p);
        p = next;
    }
    sy_config_free(o->owned_conf);
    if (o->wake_ev)
        event_free(o->wake_ev);
    if (o->wake_fd >= 0)
        close(o->wake_fd);
    sy_flusher_free(o->flusher);
    if (o->base)
        event_base_free(o->base);
    free(o->self);
    free(o->order);
    free(o->extra);
    pthread_mutex_destroy(&o->lock);
    pthread_mutex_destroy(&o->sinks_lock);
    free(o);
}
