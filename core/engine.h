/*
 * engine.h - the aggregator thread.
 *
 * It drains every reader's ring into the aggregator and, at each multiple
 * of flushInterval on the wall clock, takes a snapshot and hands it to the
 * output thread.  Flushing costs it only the snapshot walk; the statistics
 * and the writing happen on the output thread.
 */
#ifndef SY_ENGINE_H
#define SY_ENGINE_H

#include <stddef.h>

#include "agg.h"
#include "notify.h"
#include "output.h"
#include "ring.h"

typedef struct sy_engine sy_engine;

sy_engine *sy_engine_new(const sy_agg_opts *opts, sy_ring **rings, size_t nrings,
                         sy_notify *notify, sy_output *out);
int sy_engine_start(sy_engine *e);
/* Call after the readers have stopped: drains the rings, makes the final
 * flush and joins the thread. */
void sy_engine_finish(sy_engine *e);
void sy_engine_free(sy_engine *e);
const sy_agg_stats *sy_engine_stats(const sy_engine *e);

#endif
