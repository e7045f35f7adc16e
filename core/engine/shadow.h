/*
 * shadow.h - shadow reloads: what a new config would change, asked of the
 * running daemon without applying it.
 *
 * `reload --shadow FILE` on the admin console (and `switchyard diff`)
 * loads FILE beside the running config, as a reload would (its setup
 * bounded to 5 s and 256 MiB, its `checks` run, its sinks' settings
 * checked), then asks its rules about every key in the live table and
 * compares each answer (final name, sinks, sample rate, drop,
 * pass-through) with the decision in force.  The keys whose decision would
 * change are reported grouped by the kind of change and by the old -> new
 * name pattern and sinks, counted, with a few examples each.
 *
 * The new rules run on a thread of the shadow's own, at most half of one
 * core; the engine only copies a slice of keys with their decisions
 * between two batches when the shadow thread asks for it.  Nothing that
 * runs is changed.  One shadow at a time.
 */
#ifndef SY_SHADOW_H
#define SY_SHADOW_H

#include <stddef.h>

#include "engine/agg.h"
#include "config.h"

typedef struct sy_shadow_job sy_shadow_job;

/* How a config is loaded and checked (as a reload would), and how the
 * engine is woken; given once by main. */
typedef sy_config *(*sy_shadow_load_fn)(void *ctx, const char *file, char *err, size_t errlen);
typedef void (*sy_shadow_wake_fn)(void *ctx);
void sy_shadow_setup(sy_shadow_load_fn load, void *load_ctx, sy_shadow_wake_fn wake, void *wake_ctx);

/* The running config's sinks (bit i of a decision is sinks[i]): at start
 * and with each reload. */
void sy_shadow_set_running(const sy_config *c);

/* Starts a shadow of file; `ready(ctx)` is called (on the shadow's
 * thread) when its report is complete.  NULL with why when refused (one
 * is in progress, or shadows are not set up). */
sy_shadow_job *sy_shadow_start(const char *file, void (*ready)(void *), void *ctx, char *why,
                               size_t cap);
/* 1 once the report is complete: it is appended to out and the job is
 * gone; 0 while it runs. */
int sy_shadow_take(sy_shadow_job *j, sy_buf *out);
/* The asker is gone: the shadow stops early and nobody is told. */
void sy_shadow_abandon(sy_shadow_job *j);

/* The engine's side, between two batches: whether the shadow thread waits
 * for keys (one atomic load), and a slice of them copied for it. */
int sy_shadow_wanted(void);
void sy_shadow_serve(sy_agg *a);

/* At exit, before the engine stops: a running shadow ends. */
void sy_shadow_shutdown(void);

/* /metrics: shadows by result, the last one's keys and costs. */
char *sy_shadow_prometheus(void);

/* `switchyard diff -c NEW.lua --admin HOST:PORT`: asks the daemon for a
 * shadow reload of NEW.lua and prints its report.  Exit 0 when no key's
 * decision would change, 1 when some would, 2 when refused or on error. */
int sy_diff_main(int argc, char **argv);

#endif
