/*
 * engine.c - the aggregator thread: rings in, snapshots out.
 */
#include "engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct sy_engine {
    sy_agg *agg;
    sy_ring **rings;
    size_t nrings;
    sy_notify *notify;
    sy_output *out;
    uint32_t interval_ms;
    pthread_t thread;
    int started;
    atomic_int finishing;
};

static uint64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

sy_engine *sy_engine_new(const sy_agg_opts *opts, sy_ring **rings, size_t nrings,
                         sy_notify *notify, sy_output *out)
{
    sy_engine *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->agg = sy_agg_new(opts);
    if (!e->agg) {
        free(e);
        return NULL;
    }
    e->rings = rings;
    e->nrings = nrings;
    e->notify = notify;
    e->out = out;
    e->interval_ms = opts->flush_interval_ms ? opts->flush_interval_ms : 10000;
    return e;
}

const sy_agg_stats *sy_engine_stats(const sy_engine *e) { return sy_agg_get_stats(e->agg); }

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

/* statsd stamps a flush with Math.round(Date.now() / 1000). */
static int64_t flush_ts(uint64_t ms) { return (int64_t)((ms + 500) / 1000); }

static void flush(sy_engine *e, uint64_t now, int final)
{
    sy_snapshot *s = sy_agg_snapshot(e->agg, flush_ts(now));
    if (!s) {
        sy_log(SY_ERR, "out of memory taking a flush snapshot; values kept for the next one");
        return;
    }
    sy_output_submit(e->out, s, final);
}

static void *run(void *arg)
{
    sy_engine *e = arg;
    uint64_t next = (wall_ms() / e->interval_ms + 1) * e->interval_ms;
    for (;;) {
        int finishing = atomic_load(&e->finishing);
        size_t fed = drain(e, 512);
        uint64_t now = wall_ms();
        if (now >= next) {
            flush(e, now, 0);
            /* Skip missed ticks (e.g. after a suspend) instead of bursting. */
            next = (now / e->interval_ms + 1) * e->interval_ms;
        }
        if (finishing) {
            /* Readers have stopped: nothing new can arrive. */
            while (drain(e, SIZE_MAX) > 0)
                ;
            flush(e, wall_ms(), 1);
            return NULL;
        }
        if (fed)
            continue;
        sy_notify_prepare(e->notify);
        if (drain(e, 512) > 0) {
            sy_notify_cancel(e->notify);
            continue;
        }
        now = wall_ms();
        int wait = now >= next ? 0 : (int)(next - now);
        if (wait > 100)
            wait = 100; /* look at `finishing` now and then */
        sy_notify_wait(e->notify, wait);
    }
}

int sy_engine_start(sy_engine *e)
{
    if (pthread_create(&e->thread, NULL, run, e) != 0)
        return -1;
    e->started = 1;
    return 0;
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
    sy_agg_free(e->agg);
    free(e);
}
