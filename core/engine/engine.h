/*
 * engine.h - the aggregator thread.
 *
 * It drains every reader's ring into the aggregator and, at each multiple
 * of flushInterval on the wall clock, takes a snapshot and hands it to the
 * output thread.  Flushing costs it only the snapshot walk; the statistics
 * and the writing happen on the output thread.  It also owns the routing
 * script (router.c) and applies reloads between two batches.
 */
#ifndef SY_ENGINE_H
#define SY_ENGINE_H

#include <stddef.h>

#include "engine/agg.h"
#include "config.h"
#include "ingest/listener.h"
#include "ingest/notify.h"
#include "output/output.h"
#include "ingest/ring.h"

typedef struct sy_engine sy_engine;

/* Takes the config's Lua state (if any) for its router; the config itself
 * stays the caller's. */
sy_engine *sy_engine_new(sy_config *c, sy_ring **rings, size_t nrings, sy_listener *listeners,
                         size_t nlisteners, sy_notify *notify, sy_output *out);
int sy_engine_start(sy_engine *e);

/*
 * Reload: hand over a loaded and checked config (ownership passes).  The
 * engine swaps it in between batches: new routing (every cached decision
 * is made again), new aggregation options; the sinks' part goes to the
 * output thread in order with the flushes.  A newer request replaces one
 * not yet applied (reloads coalesce).
 */
void sy_engine_reload(sy_engine *e, sy_config *c);

/* Call after the readers have stopped: drains the rings, makes the final
 * flush and joins the thread. */
void sy_engine_finish(sy_engine *e);
/* Wake the engine from its sleep (an sy_engine *; shadow.h's wake). */
void sy_engine_wake(void *e);
void sy_engine_free(sy_engine *e);
const sy_agg_stats *sy_engine_stats(const sy_engine *e);
/* Reloads applied so far (read from any thread). */
uint64_t sy_engine_reloads(const sy_engine *e);
/*
 * Admin questions that walk the key table (agg.h's SY_WALK_*): the engine
 * answers a slice at a time between two batches, so that ingest never
 * waits long for an admin client.  sy_engine_walk starts one (args are
 * copied); NULL when SY_WALK_MAX are in progress already.  When a slice
 * is written, the engine calls ready(ctx) on its own thread (it must only
 * signal the asker's thread).  The asker then takes it with sy_walk_take
 * (appended to out; 1 when the reply is complete, and the walk is then
 * gone), and asks for the next with sy_walk_more when it has room for it:
 * until then the walk waits, so a slow reader holds no more than a slice.
 * sy_walk_cancel gives up a walk not yet complete.
 */
#define SY_WALK_MAX 16
typedef struct sy_walk sy_walk;
typedef void sy_walk_ready_fn(void *ctx);
sy_walk *sy_engine_walk(sy_engine *e, int what, int type, char **args, size_t nargs,
                        sy_walk_ready_fn *ready, void *ctx);
int sy_walk_take(sy_walk *w, sy_buf *out);
void sy_walk_more(sy_walk *w);
void sy_walk_cancel(sy_walk *w);
/* Walks started and not yet let go by both sides. */
int sy_engine_walks_in_progress(const sy_engine *e);

/* How long the engine left the rings undrained, by cause: the longest
 * single pause (wall clock, and the engine's own CPU time in the longest
 * by CPU) and the total, in microseconds (read from any thread). */
enum { SY_PAUSE_ADMIN = 0, SY_PAUSE_FLUSH = 1, SY_PAUSE_RELOAD = 2, SY_PAUSE_CAUSES = 3 };
typedef struct sy_engine_pauses {
    _Atomic uint64_t max_us[SY_PAUSE_CAUSES];
    _Atomic uint64_t max_cpu_us[SY_PAUSE_CAUSES];
    _Atomic uint64_t total_us[SY_PAUSE_CAUSES];
    _Atomic uint64_t count[SY_PAUSE_CAUSES];
    _Atomic uint64_t walks;         /* admin walks started */
    _Atomic uint64_t walks_refused; /* refused: SY_WALK_MAX in progress */
    _Atomic uint64_t slices;        /* slices written */
    /* the longest time a batch of ingest (one in 64, timed) spent
     * descheduled, its wall time less its CPU time: without a reload
     * being prepared [0], and while one is [1] */
    _Atomic uint64_t batch_off_max_us[2];
} sy_engine_pauses;
const sy_engine_pauses *sy_engine_get_pauses(const sy_engine *e);

/* The routing script's heap, as of the last flush (any thread). */
uint64_t sy_engine_lua_memory(const sy_engine *e);
/* The last reload that was prepared (predecide.h): from its arrival to
 * applied, in ms, and the engine's longest pause for it between two
 * batches (its start, a slice of keys copied for the reload's thread, the
 * swap), in us. */
uint64_t sy_engine_reload_ms(const sy_engine *e);
uint64_t sy_engine_reload_slice_us(const sy_engine *e);

/* Per listener: auth flag and refused lines (read from any thread). */
sy_listen_info *sy_engine_listen_info(sy_engine *e);

#endif
