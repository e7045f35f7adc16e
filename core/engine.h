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

#include "agg.h"
#include "config.h"
#include "listener.h"
#include "notify.h"
#include "output.h"
#include "ring.h"

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
void sy_engine_free(sy_engine *e);
const sy_agg_stats *sy_engine_stats(const sy_engine *e);
/* Reloads applied so far (read from any thread). */
uint64_t sy_engine_reloads(const sy_engine *e);
/*
 * Ask the engine about its key table (the admin interface; any thread).
 * The engine answers between two batches; the caller waits up to
 * timeout_ms.  what: SY_QUERY_DUMP (type), SY_QUERY_DELETE (type, names),
 * SY_QUERY_KEYS (args[0] = prefix or NULL).  0, or -1 on timeout.
 */
enum { SY_QUERY_DUMP = 1, SY_QUERY_DELETE = 2, SY_QUERY_KEYS = 3 };
int sy_engine_query(sy_engine *e, int what, int type, char **args, size_t nargs, sy_buf *out,
                    int timeout_ms);

/* The routing script's heap, as of the last flush (any thread). */
uint64_t sy_engine_lua_memory(const sy_engine *e);
/* The last reload that was prepared (predecide.h): from its arrival to
 * applied, in ms, and its longest slice between two batches, in us. */
uint64_t sy_engine_reload_ms(const sy_engine *e);
uint64_t sy_engine_reload_slice_us(const sy_engine *e);

/* Per listener: auth flag and refused lines (read from any thread). */
sy_listen_info *sy_engine_listen_info(sy_engine *e);

#endif
