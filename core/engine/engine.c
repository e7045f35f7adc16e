/*
 * engine.c - the aggregator thread: rings in, snapshots out.
 */
#include "engine/engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/clock.h"
#include "engine/predecide.h"
#include "engine/router.h"
#include "engine/shadow.h"
#include "admin/tap.h"

/* Raw samples are shipped at least this often, or when this many wait. */
#define RAW_SHIP_MS 50
/* The longest an engine that is kept busy waits for input without asking to
 * be woken (see run). */
#define NAP_MS 1
#define RAW_SHIP_COUNT 4096
/* A reload's decisions are made in slices between batches: this long when
 * the rings were found empty, this long when they were not (so that
 * ingest keeps the engine first, and the reload still moves). */
#define PREDECIDE_IDLE_US 2000
#define PREDECIDE_BUSY_US 500
/* While input arrives (more than PREDECIDE_QUIET_RPS records a second
 * since the reload began), the reload takes at most 1/PREDECIDE_SHARE of
 * the wall time: on a small machine the engine's extra CPU is taken from
 * the readers, and a reader that falls behind loses datagrams in the
 * kernel (1M keys at 1M metrics/s on 2 cores lost 8% to the kernel with
 * the reload running flat out, and none at the ring).  Idle, it runs flat
 * out. */
#define PREDECIDE_SHARE 4
#define PREDECIDE_QUIET_RPS 1000

/* A reload being prepared: the new config's router asked about every live
 * key (predecide.h) while the old one routes. */
typedef struct reload_job {
    sy_config *c;
    sy_router *router;
    sy_predecided *pre;
    size_t cursor, cap;      /* walk position, and the table size it is for */
    int uses_origin;         /* the new config's */
    uint64_t started_us, lua_us, decided;
    uint64_t fed;            /* records fed since it began */
    size_t keys_at_start;    /* live keys when it began */
    uint64_t longest_slice_us;
    uint64_t longest_slice_cpu_us; /* the engine thread's CPU in that slice:
                                    * below the wall time when it was
                                    * descheduled meanwhile */
} reload_job;

/* Admin walks: per gap between batches, at most WALK_GAP_US of walking
 * (checked every WALK_STEP entries), and at most WALK_SLICE_BYTES of
 * reply per walk before the admin thread has taken it. */
#define WALK_GAP_US 1000
#define WALK_STEP 128
#define WALK_SLICE_BYTES (256u << 10)

/*
 * One admin question that walks the key table, shared by the admin thread
 * (which asked it and streams the reply) and the engine (which writes the
 * reply a slice at a time).  Each side holds a reference; the last one to
 * let go frees it.
 */
struct sy_walk {
    sy_engine *e;
    struct sy_walk *next;    /* the engine's list (engine thread only) */
    sy_agg_walk *aw;         /* engine thread only */
    int what, type;
    char **args;             /* copies, in one block with the walk */
    size_t nargs;
    sy_walk_ready_fn *ready;
    void *ctx;
    atomic_int refs;
    pthread_mutex_t lock;    /* guards the four below */
    sy_buf slice;            /* written, not yet taken */
    int want;                /* the admin has room for more */
    int done;                /* the reply is complete */
    int cancelled;           /* the admin has gone */
};

struct sy_engine {
    sy_agg *agg;
    sy_router *router;
    sy_listen_info *linfo;
    size_t nlisteners;
    sy_listener *listeners;
    sy_ring **rings;
    size_t nrings;
    sy_notify *notify;
    sy_output *out;
    uint32_t interval_ms;
    pthread_t thread;
    int started;
    atomic_int finishing;
    pthread_mutex_t lock;
    sy_config *pending; /* a reload waiting to be applied */
    atomic_int has_pending;
    _Atomic uint64_t reloads;
    sy_walk *walk_inbox;   /* new walks, not yet seen by the engine (lock) */
    sy_walk *walks;        /* walks in progress (engine thread) */
    atomic_int walk_signal; /* a walk is new, wants more or was cancelled */
    atomic_int nwalks;
    sy_engine_pauses pauses;
    _Atomic uint64_t lua_memory;
    uint64_t raw_shipped_ms;
    reload_job *job;       /* a reload being prepared, or NULL */
    _Atomic uint64_t reload_last_ms;     /* SIGHUP to applied, last reload */
    _Atomic uint64_t reload_slice_max_us; /* its longest slice */
};


/* The config's router, from its Lua state. */
static sy_router *make_router(sy_config *c)
{
    int decide = c->decide_ref, auth = c->auth_ref;
    struct lua_State *L = sy_config_take_lua(c);
    if (!L)
        return NULL;
    return sy_router_new(L, decide, auth, sy_config_all_sinks(c), c->lua_memory_limit, c->lua_timeout_ms);
}

/* The config's routing, applied: each listener's auth flag (matched by
 * URL) and the router. */
static void apply_routing(sy_engine *e, sy_config *c)
{
    for (size_t i = 0; i < e->nlisteners; i++) {
        e->linfo[i].auth = 0;
        for (size_t j = 0; j < c->nlisten; j++)
            if (strcmp(c->listen[j].url, e->listeners[i].name) == 0)
                e->linfo[i].auth = c->listen[j].auth;
    }
    sy_agg_set_routing(e->agg, e->router, sy_config_all_sinks(c), c->route_uses_origin, e->linfo,
                       e->nlisteners);
    if (c->has_sample_seed)
        sy_agg_set_sample_seed(e->agg, c->sample_seed);
    sy_tap_set_sinks(c);
}

sy_engine *sy_engine_new(sy_config *c, sy_ring **rings, size_t nrings, sy_listener *listeners,
                         size_t nlisteners, sy_notify *notify, sy_output *out)
{
    sy_engine *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    pthread_mutex_init(&e->lock, NULL);
    e->agg = sy_agg_new(&c->agg);
    e->linfo = calloc(nlisteners ? nlisteners : 1, sizeof *e->linfo);
    if (!e->agg || !e->linfo) {
        sy_engine_free(e);
        return NULL;
    }
    e->listeners = listeners;
    e->nlisteners = nlisteners;
    for (size_t i = 0; i < nlisteners; i++)
        e->linfo[i].name = listeners[i].name;
    e->router = make_router(c);
    apply_routing(e, c);
    sy_agg_set_limits(e->agg, c->limits, c->nlimits);
    e->rings = rings;
    e->nrings = nrings;
    e->notify = notify;
    e->out = out;
    e->interval_ms = c->agg.flush_interval_ms ? c->agg.flush_interval_ms : 10000;
    return e;
}

const sy_agg_stats *sy_engine_stats(const sy_engine *e) { return sy_agg_get_stats(e->agg); }
uint64_t sy_engine_reloads(const sy_engine *e) { return atomic_load(&e->reloads); }
sy_listen_info *sy_engine_listen_info(sy_engine *e) { return e->linfo; }
uint64_t sy_engine_lua_memory(const sy_engine *e) { return atomic_load(&e->lua_memory); }
uint64_t sy_engine_reload_ms(const sy_engine *e) { return atomic_load(&e->reload_last_ms); }
uint64_t sy_engine_reload_slice_us(const sy_engine *e) { return atomic_load(&e->reload_slice_max_us); }

/* Feed up to `budget` records from each ring; returns how many were fed. */
static size_t drain(sy_engine *e, size_t budget)
{
    size_t fed = 0;
    for (size_t i = 0; i < e->nrings; i++) {
        const sy_origin *o;
        size_t len;
        const void *p;
        for (size_t k = 0; k < budget && (p = sy_ring_peek(e->rings[i], &o, &len)); k++) {
            sy_agg_feed(e->agg, p, len, o);
            sy_ring_release(e->rings[i]);
            fed++;
        }
    }
    return fed;
}

static void ship_raw(sy_engine *e, uint64_t now, int force)
{
    size_t n = sy_agg_raw_pending(e->agg);
    if (!n || (!force && n < RAW_SHIP_COUNT && now - e->raw_shipped_ms < RAW_SHIP_MS))
        return;
    sy_raw_batch *b = sy_agg_take_raw(e->agg);
    if (b)
        sy_output_submit_raw(e->out, b);
    e->raw_shipped_ms = now;
}

/* statsd stamps a flush with Math.round(Date.now() / 1000). */
static int64_t flush_ts(uint64_t ms) { return (int64_t)((ms + 500) / 1000); }

static void flush(sy_engine *e, uint64_t now, int final)
{
    ship_raw(e, now, 1);
    atomic_store(&e->lua_memory, e->router ? atomic_load(&sy_router_get_stats(e->router)->memory_bytes) : 0);
    sy_snapshot *s = sy_agg_snapshot(e->agg, flush_ts(now));
    if (!s) {
        sy_log(SY_ERR, "out of memory taking a flush snapshot; values kept for the next one");
        return;
    }
    sy_output_submit(e->out, s, final);
}

static void job_free(reload_job *j)
{
    if (!j)
        return;
    sy_router_free(j->router);
    sy_predecided_free(j->pre);
    sy_config_free(j->c);
    free(j);
}

/* Between two batches: swap in a reloaded config, with its router and the
 * decisions it made beforehand (either may be NULL). */
static void apply_config(sy_engine *e, sy_config *c, sy_router *router, sy_predecided *pre)
{
    /* Samples routed by the old rules leave first. */
    ship_raw(e, sy_wall_ms(), 1);
    sy_router *old = e->router;
    e->router = router;
    apply_routing(e, c);
    if (pre)
        sy_agg_use_predecided(e->agg, pre);
    sy_router_free(old);
    sy_agg_set_opts(e->agg, &c->agg);
    sy_agg_set_limits(e->agg, c->limits, c->nlimits);
    e->interval_ms = c->agg.flush_interval_ms ? c->agg.flush_interval_ms : 10000;
    atomic_fetch_add(&e->reloads, 1);
    sy_log(SY_INFO, "reload applied: %zu sinks, routing %s", c->nsinks,
           e->router ? "by Lua" : "to every sink");
    sy_output_submit_config(e->out, c);
}

static void job_key(void *ctx, int type, const char *key, size_t klen, const char *lookup,
                    size_t lookup_len, const char *listener, const char *sender)
{
    static const char *const types[] = { "c", "ms", "g", "s" };
    reload_job *j = ctx;
    if (sy_predecided_has(j->pre, type, lookup, lookup_len))
        return;
    sy_route r;
    r.renamed = 0;
    sy_router_decide(j->router, key, klen, types[type], listener, sender, &r);
    if (sy_predecided_put(j->pre, type, lookup, lookup_len, &r) == 0)
        j->decided++;
}

/* The prepared reload is applied: every live key has its new decision. */
static void job_finish(sy_engine *e)
{
    reload_job *j = e->job;
    e->job = NULL;
    uint64_t ms = (sy_mono_us() - j->started_us) / 1000;
    atomic_store(&e->reload_last_ms, ms);
    atomic_store(&e->reload_slice_max_us, j->longest_slice_us);
    size_t now_keys = sy_agg_key_count(e->agg), bytes = sy_predecided_bytes(j->pre);
    size_t npre = sy_predecided_count(j->pre);
    sy_log(SY_INFO, "reload: %llu live keys decided by the new config in %llu ms "
           "(%llu ms of it in Lua, slices of at most %llu us between batches, %llu us of "
           "CPU in the longest; the decisions take %zu KiB for %zu keys); about %zu keys "
           "first seen meanwhile are decided by it as they next arrive "
           "(switchyard_route_predecide_misses_total)",
           (unsigned long long)j->decided, (unsigned long long)ms,
           (unsigned long long)(j->lua_us / 1000), (unsigned long long)j->longest_slice_us,
           (unsigned long long)j->longest_slice_cpu_us, bytes >> 10, npre,
           now_keys > j->keys_at_start ? now_keys - j->keys_at_start : (size_t)0);
    if (sy_predecided_reasons_cut(j->pre))
        sy_log(SY_WARN, "reload: the rules gave more distinct drop reasons than the prepared "
               "decisions keep (%d): %llu keys dropped by them show a generic reason in the tap",
               SY_PREDECIDE_REASONS, (unsigned long long)sy_predecided_reasons_cut(j->pre));
    apply_config(e, j->c, j->router, j->pre);
    j->c = NULL;
    j->router = NULL;
    j->pre = NULL;
    job_free(j);
}

/* Whether the reload has had its share of the engine for now (see
 * PREDECIDE_SHARE). */
static int job_throttled(const reload_job *j)
{
    uint64_t elapsed = sy_mono_us() - j->started_us;
    if (j->fed * 1000000u <= (uint64_t)PREDECIDE_QUIET_RPS * elapsed)
        return 0; /* quiet: nothing to take CPU from */
    return j->lua_us * PREDECIDE_SHARE > elapsed;
}

/* One slice of the prepared reload, of about budget_us; applies it when
 * every key has been asked about. */
static void job_step(sy_engine *e, uint64_t budget_us)
{
    reload_job *j = e->job;
    uint64_t t0 = sy_mono_us(), now = t0, cpu0 = sy_thread_cpu_us();
    while (now - t0 < budget_us) {
        if (sy_agg_table_cap(e->agg) != j->cap) {
            /* the table grew: walk it again (known keys are skipped) */
            j->cap = sy_agg_table_cap(e->agg);
            j->cursor = 0;
        }
        if (j->cursor >= j->cap)
            break;
        sy_agg_walk_keys(e->agg, &j->cursor, 16, j->uses_origin, job_key, j);
        now = sy_mono_us();
    }
    j->lua_us += now - t0;
    if (now - t0 > j->longest_slice_us) {
        j->longest_slice_us = now - t0;
        j->longest_slice_cpu_us = sy_thread_cpu_us() - cpu0;
    }
    if (j->cursor >= j->cap)
        job_finish(e);
}

/* A reloaded config is waiting: prepare it (or apply it at once when
 * there is nothing to decide beforehand).  A newer config replaces one
 * being prepared. */
static void take_reload(sy_engine *e)
{
    pthread_mutex_lock(&e->lock);
    sy_config *c = e->pending;
    e->pending = NULL;
    atomic_store(&e->has_pending, 0);
    pthread_mutex_unlock(&e->lock);
    if (!c)
        return;
    if (e->job) {
        sy_log(SY_INFO, "reload: a newer config replaces the one being prepared (%llu keys "
               "decided)", (unsigned long long)e->job->decided);
        job_free(e->job);
        e->job = NULL;
    }
    int uses_origin = c->route_uses_origin;
    sy_router *router = make_router(c);
    int can_prepare = router && sy_router_has_decide(router) && e->router &&
                      sy_agg_key_count(e->agg) > 0 && (!uses_origin || sy_agg_uses_origin(e->agg));
    if (!can_prepare) {
        if (router && sy_router_has_decide(router) && uses_origin && !sy_agg_uses_origin(e->agg))
            sy_log(SY_INFO, "reload: the new rules look at senders and the old ones did not: "
                   "live keys are decided again as they arrive");
        apply_config(e, c, router, NULL);
        return;
    }
    reload_job *j = calloc(1, sizeof *j);
    /* room for every live key, and for those that arrive meanwhile */
    sy_predecided *pre = sy_predecided_new(sy_agg_key_count(e->agg) + sy_agg_key_count(e->agg) / 4);
    if (!j || !pre) {
        free(j);
        sy_predecided_free(pre);
        apply_config(e, c, router, NULL);
        return;
    }
    j->c = c;
    j->router = router;
    j->pre = pre;
    j->uses_origin = uses_origin;
    j->cap = sy_agg_table_cap(e->agg);
    j->started_us = sy_mono_us();
    j->keys_at_start = sy_agg_key_count(e->agg);
    e->job = j;
    sy_log(SY_INFO, "reload: asking the new config about %zu live keys before applying it",
           sy_agg_key_count(e->agg));
}

const sy_engine_pauses *sy_engine_get_pauses(const sy_engine *e) { return &e->pauses; }
int sy_engine_walks_in_progress(const sy_engine *e) { return atomic_load(&e->nwalks); }

typedef struct pause_start {
    uint64_t wall, cpu;
} pause_start;

static pause_start pause_begin(void)
{
    return (pause_start){ sy_mono_us(), sy_thread_cpu_us() };
}

/* A pause of the engine's ingest: the longest so far (wall and CPU
 * time), and the total. */
static void pause_note(sy_engine *e, int cause, pause_start t0)
{
    sy_engine_pauses *p = &e->pauses;
    uint64_t us = sy_mono_us() - t0.wall, cpu = sy_thread_cpu_us() - t0.cpu;
    if (us > atomic_load_explicit(&p->max_us[cause], memory_order_relaxed))
        atomic_store_explicit(&p->max_us[cause], us, memory_order_relaxed);
    if (cpu > atomic_load_explicit(&p->max_cpu_us[cause], memory_order_relaxed))
        atomic_store_explicit(&p->max_cpu_us[cause], cpu, memory_order_relaxed);
    atomic_store_explicit(&p->total_us[cause], atomic_load_explicit(&p->total_us[cause], memory_order_relaxed) + us,
                          memory_order_relaxed);
    atomic_store_explicit(&p->count[cause], atomic_load_explicit(&p->count[cause], memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void walk_unref(sy_walk *w)
{
    if (atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    atomic_fetch_sub(&w->e->nwalks, 1);
    sy_buf_free(&w->slice);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

static void wake(sy_engine *e)
{
    uint64_t one = 1;
    ssize_t rc = write(e->notify->fd, &one, sizeof one);
    (void)rc;
}

void sy_engine_wake(void *e) { wake(e); }

sy_walk *sy_engine_walk(sy_engine *e, int what, int type, char **args, size_t nargs,
                        sy_walk_ready_fn *ready, void *ctx)
{
    if (atomic_fetch_add(&e->nwalks, 1) >= SY_WALK_MAX) {
        atomic_fetch_sub(&e->nwalks, 1);
        atomic_fetch_add(&e->pauses.walks_refused, 1);
        return NULL;
    }
    size_t bytes = sizeof(sy_walk) + nargs * sizeof(char *);
    for (size_t i = 0; i < nargs; i++)
        bytes += strlen(args[i]) + 1;
    sy_walk *w = calloc(1, bytes);
    if (!w) {
        atomic_fetch_sub(&e->nwalks, 1);
        return NULL;
    }
    w->e = e;
    w->what = what;
    w->type = type;
    w->args = (char **)(w + 1);
    char *p = (char *)(w->args + nargs);
    for (size_t i = 0; i < nargs; i++) {
        size_t n = strlen(args[i]) + 1;
        w->args[i] = memcpy(p, args[i], n);
        p += n;
    }
    w->nargs = nargs;
    w->ready = ready;
    w->ctx = ctx;
    w->want = 1;
    atomic_init(&w->refs, 2);
    pthread_mutex_init(&w->lock, NULL);
    atomic_fetch_add(&e->pauses.walks, 1);
    pthread_mutex_lock(&e->lock);
    w->next = e->walk_inbox;
    e->walk_inbox = w;
    pthread_mutex_unlock(&e->lock);
    atomic_store(&w->e->walk_signal, 1);
    wake(e);
    return w;
}

int sy_walk_take(sy_walk *w, sy_buf *out)
{
    pthread_mutex_lock(&w->lock);
    if (w->slice.len)
        sy_buf_add(out, w->slice.p, w->slice.len);
    w->slice.len = 0;
    int done = w->done;
    pthread_mutex_unlock(&w->lock);
    if (done)
        walk_unref(w);
    return done;
}

void sy_walk_more(sy_walk *w)
{
    pthread_mutex_lock(&w->lock);
    w->want = 1;
    pthread_mutex_unlock(&w->lock);
    atomic_store(&w->e->walk_signal, 1);
    wake(w->e);
}

void sy_walk_cancel(sy_walk *w)
{
    if (!w)
        return;
    sy_engine *e = w->e;
    pthread_mutex_lock(&w->lock);
    w->cancelled = 1;
    pthread_mutex_unlock(&w->lock);
    walk_unref(w);
    atomic_store(&e->walk_signal, 1);
    wake(e);
}

/* The engine lets go of a walk: complete, cancelled, or at the end. */
static void walk_drop(sy_engine *e, sy_walk **link)
{
    sy_walk *w = *link;
    *link = w->next;
    sy_agg_walk_free(e->agg, w->aw);
    walk_unref(w);
}

/*
 * Between two batches: a slice of each walk whose reader has room, within
 * WALK_GAP_US in all.  1 when a walk still wants more (the engine should
 * come back soon rather than sleep).
 */
static int serve_walks(sy_engine *e)
{
    if (!atomic_exchange(&e->walk_signal, 0))
        return 0;
    pthread_mutex_lock(&e->lock);
    while (e->walk_inbox) {
        sy_walk *w = e->walk_inbox;
        e->walk_inbox = w->next;
        w->aw = sy_agg_walk_new(e->agg, w->what, w->type, w->args, w->nargs);
        w->next = e->walks;
        e->walks = w;
    }
    pthread_mutex_unlock(&e->lock);
    pause_start p0 = pause_begin();
    uint64_t t0 = p0.wall, now = t0;
    int again = 0, worked = 0;
    /* Each walk that wants a slice gets an even share of the gap, so that
     * one large walk does not hold up the others. */
    size_t nwant = 0;
    for (sy_walk *w = e->walks; w; w = w->next) {
        pthread_mutex_lock(&w->lock);
        nwant += w->want && !w->done && !w->cancelled;
        pthread_mutex_unlock(&w->lock);
    }
    uint64_t share = WALK_GAP_US / (nwant ? nwant : 1);
    for (sy_walk **link = &e->walks; *link;) {
        sy_walk *w = *link;
        pthread_mutex_lock(&w->lock);
        int cancelled = w->cancelled, want = w->want && !w->done;
        pthread_mutex_unlock(&w->lock);
        if (cancelled) {
            walk_drop(e, link);
            continue;
        }
        if (!want) {
            link = &w->next;
            continue;
        }
        if (now - t0 >= WALK_GAP_US) {
            again = 1; /* the next gap */
            link = &w->next;
            continue;
        }
        sy_buf buf = { 0 };
        int done = !w->aw;
        if (!w->aw)
            sy_buf_add(&buf, "ERROR: out of memory\n", 21);
        uint64_t t1 = now;
        while (!done && buf.len < WALK_SLICE_BYTES && now - t1 < share && now - t0 < WALK_GAP_US) {
            done = sy_agg_walk_step(e->agg, w->aw, &buf, WALK_STEP);
            now = sy_mono_us();
        }
        worked = 1;
        pthread_mutex_lock(&w->lock);
        if (w->slice.len) {
            sy_buf_add(&w->slice, buf.p, buf.len);
            sy_buf_free(&buf);
        } else {
            sy_buf_free(&w->slice);
            w->slice = buf;
        }
        w->want = 0;
        w->done = done;
        /* Under the lock: once cancelled, the admin (ctx) may be gone. */
        if (w->cancelled)
            done = 1;
        else
            w->ready(w->ctx);
        pthread_mutex_unlock(&w->lock);
        atomic_fetch_add_explicit(&e->pauses.slices, 1, memory_order_relaxed);
        if (done)
            walk_drop(e, link);
        else
            link = &w->next;
    }
    if (worked)
        pause_note(e, SY_PAUSE_ADMIN, p0);
    if (again)
        atomic_store(&e->walk_signal, 1);
    return again;
}

/* At the end: every walk is let go (the admin has stopped by then). */
static void drop_walks(sy_engine *e)
{
    pthread_mutex_lock(&e->lock);
    while (e->walk_inbox) {
        sy_walk *w = e->walk_inbox;
        e->walk_inbox = w->next;
        walk_unref(w);
    }
    pthread_mutex_unlock(&e->lock);
    while (e->walks)
        walk_drop(e, &e->walks);
}

static void *run(void *arg)
{
    sy_engine *e = arg;
    uint64_t next = (sy_wall_ms() / e->interval_ms + 1) * e->interval_ms;
    int busy = 0, napped = 0; /* see the nap below */
    for (;;) {
        int finishing = atomic_load(&e->finishing);
        int walking = atomic_load_explicit(&e->walk_signal, memory_order_relaxed) ? serve_walks(e) : 0;
        if (sy_shadow_wanted()) {
            /* a shadow reload's thread waits for a slice of keys */
            pause_start t0 = pause_begin();
            sy_shadow_serve(e->agg);
            pause_note(e, SY_PAUSE_ADMIN, t0);
        }
        uint32_t interval = e->interval_ms;
        if (atomic_load_explicit(&e->has_pending, memory_order_relaxed)) {
            pause_start t0 = pause_begin();
            take_reload(e);
            pause_note(e, SY_PAUSE_RELOAD, t0);
        }
        size_t fed = drain(e, 512);
        int throttled = 0;
        if (e->job) {
            e->job->fed += fed;
            throttled = !finishing && job_throttled(e->job);
        }
        if (e->job && (finishing || !throttled)) {
            pause_start t0 = pause_begin();
            if (finishing)
                job_finish(e); /* what is left is decided as the rest drains */
            else
                job_step(e, fed ? PREDECIDE_BUSY_US : PREDECIDE_IDLE_US);
            pause_note(e, SY_PAUSE_RELOAD, t0);
        }
        if (e->interval_ms != interval)
            next = (sy_wall_ms() / e->interval_ms + 1) * e->interval_ms;
        uint64_t now = sy_wall_ms();
        ship_raw(e, now, 0);
        if (now >= next) {
            pause_start t0 = pause_begin();
            flush(e, now, 0);
            pause_note(e, SY_PAUSE_FLUSH, t0);
            /* Skip missed ticks (e.g. after a suspend) instead of bursting. */
            next = (now / e->interval_ms + 1) * e->interval_ms;
        }
        if (finishing) {
            /* Readers have stopped: nothing new can arrive. */
            while (drain(e, SIZE_MAX) > 0)
                ;
            flush(e, sy_wall_ms(), 1);
            drop_walks(e);
            return NULL;
        }
        if (fed || walking || (e->job && !throttled)) {
            napped = 0;
            continue;
        }
        now = sy_wall_ms();
        int wait = now >= next ? 0 : (int)(next - now);
        if (wait > 100)
            wait = 100; /* look at `finishing` and reloads now and then */
        if (e->job && wait > 1)
            wait = 1; /* a throttled reload goes on soon */
        if (sy_agg_raw_pending(e->agg) && wait > RAW_SHIP_MS)
            wait = RAW_SHIP_MS;
        /*
         * Under a steady stream the ring empties between two reader
         * batches, so a sleep that asks to be woken costs the reader an
         * eventfd write per batch, on the thread that is the bottleneck.
         * When the last such sleep was woken within NAP_MS, nap for NAP_MS
         * instead without asking (the ring holds far more than NAP_MS of
         * input); a nap that finds nothing new goes back to sleeping until
         * woken, so an idle or trickling engine makes no extra wake-ups.
         */
        if (busy && !napped) {
            napped = 1;
            sy_notify_nap(e->notify, wait < NAP_MS ? wait : NAP_MS);
            continue;
        }
        sy_notify_prepare(e->notify);
        if (drain(e, 512) > 0 || atomic_load(&e->walk_signal)) {
            sy_notify_cancel(e->notify);
            napped = 0;
            continue;
        }
        uint64_t slept = sy_mono_us();
        sy_notify_wait(e->notify, wait);
        busy = sy_mono_us() - slept < NAP_MS * 1000u;
        napped = 0;
    }
}

int sy_engine_start(sy_engine *e)
{
    if (pthread_create(&e->thread, NULL, run, e) != 0)
        return -1;
    e->started = 1;
    return 0;
}

void sy_engine_reload(sy_engine *e, sy_config *c)
{
    pthread_mutex_lock(&e->lock);
    sy_config *older = e->pending;
    e->pending = c;
    atomic_store(&e->has_pending, 1);
    pthread_mutex_unlock(&e->lock);
    if (older) {
        sy_log(SY_INFO, "reload: a newer config replaces one not yet applied");
        sy_config_free(older);
    }
    uint64_t one = 1;
    ssize_t rc = write(e->notify->fd, &one, sizeof one);
    (void)rc;
}

void sy_engine_finish(sy_engine *e)
{
    if (!e->started)
        return;
    atomic_store(&e->finishing, 1);
    uint64_t one = 1;
    ssize_t rc = write(e->notify->fd, &one, sizeof one);
    (void)rc;
    pthread_join(e->thread, NULL);
    e->started = 0;
}

void sy_engine_free(sy_engine *e)
{
    if (!e)
        return;
    drop_walks(e); /* never started, or finished: nothing else runs */
    sy_agg_free(e->agg);
    sy_router_free(e->router);
    job_free(e->job);
    sy_config_free(e->pending);
    free(e->linfo);
    pthread_mutex_destroy(&e->lock);
    free(e);
}
