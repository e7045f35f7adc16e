/*
 * engine.c - the aggregator thread: rings in, snapshots out.
 */
#include "engine/engine.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/clock.h"
#include "engine/keyslice.h"
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
/* While input arrives (more than PREDECIDE_QUIET_RPS records a second
 * since the reload began), the reload's thread takes at most
 * 1/PREDECIDE_SHARE of the wall time, and sleeps the rest: on a small
 * machine its CPU is taken from the readers, and a reader that falls
 * behind loses datagrams in the kernel (1M keys at 1M metrics/s on 2
 * cores lost 8% to the kernel with the reload running flat out, and none
 * at the ring).  Idle, it runs flat out. */
#define PREDECIDE_SHARE 4
#define PREDECIDE_QUIET_RPS 1000

/*
 * A reload being prepared: the new config's router asked about every live
 * key (predecide.h) while the old one routes.  The asking is done on the
 * job's own thread, in the new config's Lua state; the engine only copies
 * keys for it a chunk at a time between two batches (keyslice.h, as for a
 * shadow reload), and swaps the config in between two batches once the
 * thread has answered for every key.  The router (its Lua state) and the
 * table are used by one thread at a time: the job's thread while it holds
 * `lock`, the engine once it has taken them under `lock` at the swap.
 */
typedef struct reload_job {
    struct sy_engine *e;
    sy_config *c;
    sy_router *router;       /* lock */
    sy_predecided *pre;      /* lock */
    sy_keyslice ks;
    pthread_t thread;
    int has_thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* wakes the thread's rest (stop) */
    atomic_int stop;         /* the engine: stop asking (replaced, or the swap) */
    atomic_int ready;        /* the thread: every key copied has its answer */
    atomic_int owners;       /* the engine and the thread: the last one frees it */
    int uses_origin;         /* the new config's */
    uint64_t started_us;
    _Atomic uint64_t fed;    /* records the engine fed since it began */
    size_t keys_at_start;    /* live keys when it began */
    /* the job's thread (read by the engine after the join) */
    uint64_t lua_us, decided, cpu_us, rested_us;
    /* the engine's pauses for it: the longest (wall, and the engine's CPU
     * in it), and where it was */
    uint64_t longest_us, longest_cpu_us;
    const char *longest_what;
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
    atomic_int flushing;   /* a flush snapshot is being taken (job_run) */
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
    atomic_store_explicit(&e->flushing, 1, memory_order_relaxed);
    sy_snapshot *s = sy_agg_snapshot(e->agg, flush_ts(now));
    atomic_store_explicit(&e->flushing, 0, memory_order_relaxed);
    if (!s) {
        sy_log(SY_ERR, "out of memory taking a flush snapshot; values kept for the next one");
        return;
    }
    sy_output_submit(e->out, s, final);
}

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

static void wake(sy_engine *e)
{
    uint64_t one = 1;
    ssize_t rc = write(e->notify->fd, &one, sizeof one);
    (void)rc;
}

void sy_engine_wake(void *e) { wake(e); }

/* Between two batches: swap in a reloaded config, with its router and the
 * decisions it made beforehand (either may be NULL).  The caller logs
 * "reload applied" (see log_applied). */
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
}

static void log_applied(sy_engine *e, sy_config *c)
{
    sy_log(SY_INFO, "reload applied: %zu sinks, routing %s", c->nsinks,
           e->router ? "by Lua" : "to every sink");
}

/* The engine's side of a pause for a reload: the job's longest when it
 * is (the engine's pause counters are kept by pause_note). */
static void job_pause_note(reload_job *j, pause_start t0, const char *what)
{
    uint64_t us = sy_mono_us() - t0.wall;
    if (j && us >= j->longest_us) {
        j->longest_us = us;
        j->longest_cpu_us = sy_thread_cpu_us() - t0.cpu;
        j->longest_what = what;
    }
}

/* The job's thread is told to stop: it wakes from any wait (for keys, or
 * resting) and ends between two decisions at most. */
static void job_tell_stop(reload_job *j)
{
    atomic_store(&j->stop, 1);
    sy_keyslice_stop(&j->ks);
    pthread_mutex_lock(&j->lock);
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

/* The job's thread stops (between two decisions at most) and is joined;
 * then its router and table are the caller's.  Safe to call twice. */
static void job_stop(reload_job *j)
{
    job_tell_stop(j);
    if (j->has_thread) {
        pthread_join(j->thread, NULL);
        j->has_thread = 0;
    }
}

/* Only by the last owner (job_unref). */
static void job_free(reload_job *j)
{
    if (!j)
        return;
    job_stop(j);
    sy_router_free(j->router);
    sy_predecided_free(j->pre);
    sy_config_free(j->c);
    sy_keyslice_destroy(&j->ks);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
}

static void job_unref(reload_job *j)
{
    if (j && atomic_fetch_sub(&j->owners, 1) == 1)
        job_free(j);
}

/* A job being replaced: its thread is told to stop and left to end, and
 * to free the job (and its Lua state and table) itself; the engine does
 * not wait for it. */
static void job_abandon(reload_job *j)
{
    job_tell_stop(j);
    if (j->has_thread) {
        pthread_detach(j->thread);
        j->has_thread = 0;
    }
    job_unref(j);
}

/* The job's thread: one key's new decision, unless it has one. */
static void job_key(reload_job *j, const sy_keyslice_item *it)
{
    static const char *const types[] = { "c", "ms", "g", "s" };
    const char *lookup = sy_keyslice_str(&j->ks, it->lookup);
    if (sy_predecided_has(j->pre, it->type, lookup, it->lookup_len))
        return; /* copied again after the table grew */
    sy_route r;
    r.renamed = 0;
    sy_router_decide(j->router, sy_keyslice_str(&j->ks, it->key), it->klen, types[it->type & 3],
                     sy_keyslice_str(&j->ks, it->listener), sy_keyslice_str(&j->ks, it->sender), &r);
    if (sy_predecided_put(j->pre, it->type, lookup, it->lookup_len, &r) == 0)
        j->decided++;
}

/* The job's thread, after a chunk: while input arrives, rest until its
 * Lua time is at most 1/PREDECIDE_SHARE of the time since the reload
 * began (see PREDECIDE_SHARE).  Returns early when stopped. */
static void job_rest(reload_job *j)
{
    for (;;) {
        uint64_t now = sy_mono_us(), elapsed = now - j->started_us;
        if (atomic_load_explicit(&j->fed, memory_order_relaxed) * 1000000u <=
            (uint64_t)PREDECIDE_QUIET_RPS * elapsed)
            return; /* quiet: nothing to take CPU from */
        if (j->lua_us * PREDECIDE_SHARE <= elapsed)
            return;
        uint64_t us = j->lua_us * PREDECIDE_SHARE - elapsed;
        if (us > 100000)
            us = 100000; /* look at the input rate again */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(us / 1000000u);
        ts.tv_nsec += (long)(us % 1000000u) * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&j->lock);
        if (!atomic_load(&j->stop))
            pthread_cond_timedwait(&j->cond, &j->lock, &ts);
        pthread_mutex_unlock(&j->lock);
        j->rested_us += sy_mono_us() - now;
        if (atomic_load(&j->stop))
            return;
    }
}

/* The reload's own thread: asks the engine for the live keys a chunk at a
 * time and the new config about each, until every key has its answer;
 * then tells the engine, which swaps the config in. */
static void *job_run(void *arg)
{
    reload_job *j = arg;
    pthread_setname_np(pthread_self(), "sy-reload");
    /* A batch thread does not preempt the thread that wakes it: the
     * engine, when it hands over a chunk, goes on draining instead of
     * being descheduled in favour of this thread (its share of the CPU is
     * the same; job_rest bounds it). */
    struct sched_param sp = { .sched_priority = 0 };
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    uint64_t c0 = sy_thread_cpu_us();
    while (!atomic_load(&j->stop)) {
        if (!sy_keyslice_next(&j->ks))
            break;
        int last = j->ks.walk_done;
        uint64_t t0 = sy_mono_us();
        pthread_mutex_lock(&j->lock);
        for (size_t i = 0; i < j->ks.nitems && j->router &&
                           !atomic_load_explicit(&j->stop, memory_order_relaxed); i++) {
            /* The engine's flush (55-60 ms of CPU at 1M keys) goes first:
             * on a small, busy machine this thread would otherwise stretch
             * it while the rings fill. */
            if (atomic_load_explicit(&j->e->flushing, memory_order_relaxed)) {
                uint64_t w0 = sy_mono_us();
                while (atomic_load_explicit(&j->e->flushing, memory_order_relaxed) &&
                       !atomic_load_explicit(&j->stop, memory_order_relaxed)) {
                    struct timespec ts = { 0, 500 * 1000 };
                    nanosleep(&ts, NULL);
                }
                t0 += sy_mono_us() - w0; /* not its work */
                j->rested_us += sy_mono_us() - w0;
            }
            job_key(j, &j->ks.items[i]);
        }
        pthread_mutex_unlock(&j->lock);
        j->lua_us += sy_mono_us() - t0;
        if (last && !atomic_load(&j->stop)) {
            j->cpu_us = sy_thread_cpu_us() - c0;
            sy_engine *e = j->e;
            atomic_store(&j->ready, 1);
            job_unref(j); /* not the last: the engine joins this thread first */
            wake(e);
            return NULL;
        }
        job_rest(j);
    }
    j->cpu_us = sy_thread_cpu_us() - c0;
    job_unref(j); /* the last when the engine has abandoned the job */
    return NULL;
}

/* Between two batches, the prepared reload is applied: every live key has
 * its new decision (or, at SIGTERM, those decided so far). */
static void job_finish(sy_engine *e)
{
    pause_start t0 = pause_begin();
    reload_job *j = e->job;
    e->job = NULL;
    job_stop(j);
    /* the hand-over: from here on the router and its Lua state are the
     * engine's */
    pthread_mutex_lock(&j->lock);
    sy_router *router = j->router;
    sy_predecided *pre = j->pre;
    j->router = NULL;
    j->pre = NULL;
    pthread_mutex_unlock(&j->lock);
    size_t bytes = sy_predecided_bytes(pre), npre = sy_predecided_count(pre);
    uint64_t cut = sy_predecided_reasons_cut(pre);
    sy_config *c = j->c;
    j->c = NULL;
    apply_config(e, c, router, pre);
    job_pause_note(j, t0, "the swap");
    uint64_t ms = (sy_mono_us() - j->started_us) / 1000;
    atomic_store(&e->reload_last_ms, ms);
    atomic_store(&e->reload_slice_max_us, j->longest_us);
    size_t now_keys = sy_agg_key_count(e->agg);
    sy_log(SY_INFO, "reload: %llu live keys decided by the new config in %llu ms "
           "(%llu ms of it in Lua on the reload's own thread, %llu ms of its CPU, %llu ms "
           "resting to leave the readers their share); the engine's longest pause for it "
           "%llu us, %llu us of CPU (%s; %llu slices copying keys); the "
           "decisions take %zu KiB for %zu keys; about %zu keys first seen meanwhile are "
           "decided by it as they next arrive (switchyard_route_predecide_misses_total)",
           (unsigned long long)j->decided, (unsigned long long)ms,
           (unsigned long long)(j->lua_us / 1000), (unsigned long long)(j->cpu_us / 1000),
           (unsigned long long)(j->rested_us / 1000), (unsigned long long)j->longest_us,
           (unsigned long long)j->longest_cpu_us, j->longest_what ? j->longest_what : "-",
           (unsigned long long)j->ks.slices, bytes >> 10,
           npre, now_keys > j->keys_at_start ? now_keys - j->keys_at_start : (size_t)0);
    if (cut)
        sy_log(SY_WARN, "reload: the rules gave more distinct drop reasons than the prepared "
               "decisions keep (%d): %llu keys dropped by them show a generic reason in the tap",
               SY_PREDECIDE_REASONS, (unsigned long long)cut);
    log_applied(e, c);
    sy_output_submit_config(e->out, c);
    job_unref(j);
}

/* Applied at once: nothing to decide beforehand, or it cannot be. */
static void apply_now(sy_engine *e, sy_config *c, sy_router *router)
{
    apply_config(e, c, router, NULL);
    log_applied(e, c);
    sy_output_submit_config(e->out, c);
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
    pause_start t0 = pause_begin();
    if (e->job) {
        sy_log(SY_INFO, "reload: a newer config replaces the one being prepared (its thread "
               "stops at its next decision)");
        job_abandon(e->job);
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
        apply_now(e, c, router);
        return;
    }
    reload_job *j = calloc(1, sizeof *j);
    /* room for every live key, and for those that arrive meanwhile */
    sy_predecided *pre = sy_predecided_new(sy_agg_key_count(e->agg) + sy_agg_key_count(e->agg) / 4);
    if (!j || !pre) {
        free(j);
        sy_predecided_free(pre);
        apply_now(e, c, router);
        return;
    }
    j->e = e;
    j->c = c;
    j->router = router;
    j->pre = pre;
    j->uses_origin = uses_origin;
    j->started_us = sy_mono_us();
    j->keys_at_start = sy_agg_key_count(e->agg);
    pthread_mutex_init(&j->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cond, &ca);
    pthread_condattr_destroy(&ca);
    /* no set of the keys copied: the thread skips those its table knows */
    sy_keyslice_init(&j->ks, SY_KEYSLICE_KEYS, uses_origin, 0, NULL, sy_engine_wake, e);
    atomic_init(&j->owners, 2);
    if (pthread_create(&j->thread, NULL, job_run, j) != 0) {
        sy_log(SY_WARN, "reload: cannot start its thread: applied at once, live keys are "
               "decided again as they arrive");
        j->c = NULL;
        j->router = NULL;
        atomic_store(&j->owners, 1);
        job_unref(j);
        apply_now(e, c, router);
        return;
    }
    j->has_thread = 1;
    e->job = j;
    job_pause_note(j, t0, "its start");
    sy_log(SY_INFO, "reload: asking the new config about %zu live keys on a thread of its own "
           "before applying it", sy_agg_key_count(e->agg));
}

const sy_engine_pauses *sy_engine_get_pauses(const sy_engine *e) { return &e->pauses; }
int sy_engine_walks_in_progress(const sy_engine *e) { return atomic_load(&e->nwalks); }

/* One batch of ingest in BATCH_SAMPLE is timed in wall and CPU time (the
 * engine's CPU clock is a system call, too dear for every batch): the
 * longest time such a batch spent descheduled is what the scheduler alone
 * costs the engine on a busy machine, the yardstick for the pauses above.
 * Kept apart while a reload is being prepared. */
#define BATCH_SAMPLE 64

static void batch_note(sy_engine *e, pause_start t0)
{
    uint64_t wall = sy_mono_us() - t0.wall, cpu = sy_thread_cpu_us() - t0.cpu;
    uint64_t off = wall > cpu ? wall - cpu : 0;
    _Atomic uint64_t *m = &e->pauses.batch_off_max_us[e->job != NULL];
    if (off > atomic_load_explicit(m, memory_order_relaxed))
        atomic_store_explicit(m, off, memory_order_relaxed);
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
    unsigned batches = 0;     /* see batch_note */
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
        int timed = ++batches % BATCH_SAMPLE == 0;
        pause_start b0 = { 0, 0 };
        if (timed)
            b0 = pause_begin();
        size_t fed = drain(e, 512);
        if (timed && fed)
            batch_note(e, b0);
        if (e->job) {
            reload_job *j = e->job;
            atomic_store_explicit(&j->fed, atomic_load_explicit(&j->fed, memory_order_relaxed) + fed,
                                  memory_order_relaxed);
            /* ready: the thread has given its last answer; it is joined
             * once it has exited, never waited for here */
            int swap = finishing;
            if (!swap && atomic_load(&j->ready) && pthread_tryjoin_np(j->thread, NULL) == 0) {
                j->has_thread = 0;
                swap = 1;
            }
            if (swap) {
                /* SIGTERM: what is left is decided as the rest drains */
                pause_start t0 = pause_begin();
                job_finish(e);
                pause_note(e, SY_PAUSE_RELOAD, t0);
            } else if (sy_keyslice_wanted(&j->ks)) {
                /* the reload's thread waits for a chunk of keys */
                pause_start t0 = pause_begin();
                sy_keyslice_serve(&j->ks, e->agg);
                job_pause_note(j, t0, "a slice copying keys");
                pause_note(e, SY_PAUSE_RELOAD, t0);
            }
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
        if (fed || walking) {
            napped = 0;
            continue;
        }
        now = sy_wall_ms();
        int wait = now >= next ? 0 : (int)(next - now);
        if (wait > 100)
            wait = 100; /* look at `finishing` and reloads now and then */
        if (e->job && atomic_load(&e->job->ready) && wait > 1)
            wait = 1; /* its thread is about to exit: then the swap */
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
        if (drain(e, 512) > 0 || atomic_load(&e->walk_signal) || (e->job && sy_keyslice_wanted(&e->job->ks))) {
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
    pthread_setname_np(e->thread, "sy-engine");
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
    if (e->job) {
        job_stop(e->job); /* joined: the engine is its last owner */
        job_unref(e->job);
    }
    sy_config_free(e->pending);
    free(e->linfo);
    pthread_mutex_destroy(&e->lock);
    free(e);
}
