/*
 * output.h - the output thread: a libevent loop that owns every sink.
 *
 * The engine submits flush snapshots from its own thread; the output loop
 * computes statsd's statistics and names (flush.c) and writes the batches
 * to each sink.  A slow sink only fills its own queue: the engine never
 * waits for the output loop.
 */
#ifndef SY_OUTPUT_H
#define SY_OUTPUT_H

#include <stddef.h>

#include "config.h"
#include "engine/snapshot.h"
#include "ingest/listener.h"
#include "ingest/ring.h"

typedef struct sy_output sy_output;

/* Loads the plugins and opens every sink of the config. */
sy_output *sy_output_new(const sy_config *c, const char *plugin_dir, char *err, size_t errlen);
/* Where switchyard's own metrics come from (read-only, any time): the
 * engine's counters (engine/agg.h). */
struct sy_listen_info;
struct sy_agg_stats;
void sy_output_set_sources(sy_output *o, sy_listener *listeners, size_t nlisteners,
                           struct sy_listen_info *linfo, sy_ring **rings, size_t nrings,
                           const struct sy_agg_stats *agg);
int sy_output_start(sy_output *o);
/* Hand over a snapshot (ownership passes).  `final` marks the last one:
 * after it the loop drains the sinks (bounded by shutdownTimeout) and the
 * thread ends. */
void sy_output_submit(sy_output *o, sy_snapshot *s, int final);
/* Raw samples for pass-through sinks (ownership passes). */
void sy_output_submit_raw(sy_output *o, sy_raw_batch *b);
/* A reloaded config (ownership passes).  Processed in order with the
 * snapshots: sinks whose plugin and settings did not change keep their
 * connection and queue; others are drained and closed; new ones opened. */
void sy_output_submit_config(sy_output *o, sy_config *c);
uint64_t sy_output_sink_count(const sy_output *o);

/* For the admin interface (any thread): call fn for each open sink with
 * its name, plugin and statistics, while the sinks cannot change. */
struct sy_sink_stats;
typedef void (*sy_sink_report_fn)(void *ctx, const char *name, const char *plugin,
                                  const struct sy_sink_stats *st);
void sy_output_report_sinks(sy_output *o, sy_sink_report_fn fn, void *ctx);
/* Waits for the thread to end; 0 when every sink was drained. */
int sy_output_join(sy_output *o);
void sy_output_free(sy_output *o);

#endif
