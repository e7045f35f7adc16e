/*
 * flush.h - turn a snapshot into named values, as statsd does.
 *
 * The statistics are statsd's process_metrics (counter rates, timer
 * percentiles, histograms); the names are its graphite backend's (legacy
 * and new namespaces, prefixes, suffix, tags kept at the end).  Every sink
 * receives the same names, so Redis or the console show what Graphite
 * shows.
 */
#ifndef SY_FLUSH_H
#define SY_FLUSH_H

#include <stddef.h>
#include <stdint.h>

#include "engine/snapshot.h"
#include <switchyard_sink.h>

typedef struct sy_histogram {
    char *metric;      /* substring of the timer's key; first match wins */
    size_t nbins;
    double *bins;      /* upper bounds, exclusive; INFINITY for "inf" */
    char **bin_names;  /* the statistics' names: "histogram.bin_50", "histogram.bin_0_5", "histogram.bin_inf" */
} sy_histogram;

typedef struct sy_flush_opts {
    uint32_t flush_interval_ms;
    double *pct;            /* percentThreshold */
    size_t npct;
    sy_histogram *hist;
    size_t nhist;
    char **calc;            /* calculatedTimerMetrics; none = all */
    size_t ncalc;
    int flush_counts;
    int sanitized;          /* keyNameSanitize was applied at ingress */
    int legacy;             /* graphite.legacyNamespace */
    char *global_prefix, *prefix_counter, *prefix_timer, *prefix_gauge, *prefix_set;
    char *global_suffix;    /* NULL: none */
    char *prefix_stats;
} sy_flush_opts;

/* A value of switchyard's own, named under the stats namespace
 * (e.g. "graphiteStats.flush_length" or "switchyard.listener.udp.dropped"). */
typedef struct sy_extra_metric {
    const char *name;
    double value;
} sy_extra_metric;

/* A batch and the sinks it goes to (every metric in it has the same). */
typedef void (*sy_flush_emit_fn)(void *ctx, const sy_metric_batch *batch, uint64_t sinks);

typedef struct sy_flush_result {
    size_t metrics;       /* values emitted */
    size_t bytes;         /* size of the flush as Graphite plaintext */
    size_t num_stats;     /* statsd's numStats */
    double processing_ms; /* statsd's processing_time */
} sy_flush_result;

typedef struct sy_flusher sy_flusher;

/* Precomputes the namespaces; opts must outlive the flusher. */
sy_flusher *sy_flusher_new(const sy_flush_opts *opts);
void sy_flusher_free(sy_flusher *f);

/* Emit every value of the snapshot, then statsd's own values and the
 * extras, in batches of at most a few thousand. */
void sy_flusher_run(sy_flusher *f, const sy_snapshot *s, const sy_extra_metric *extra,
                    size_t nextra, sy_flush_emit_fn emit, void *ctx, sy_flush_result *res);

/*
 * A flush produced a piece at a time, for one sink or a few: the output
 * thread asks for the next piece when the sink has taken the last one, so
 * that a flush of any size reaches a healthy sink whole with no more than
 * a batch of it waiting outside the sink's own queue.  Zero it to start.
 */
typedef struct sy_flush_cursor {
    int phase;             /* extras, counters, timers, gauges, sets, the tail */
    size_t i;              /* item of the snapshot within the phase */
    int64_t ns, timer_ns;  /* time spent producing, in timer statistics */
    sy_flush_result res;   /* so far */
    /* statsd's calculationtime and processing_time as the tail gave them;
     * set them (and `fixed`) before the tail so that several sinks of one
     * flush show the same values, those of the first to get there */
    double calc_ms;
    int fixed;
} sy_flush_cursor;

/* Emits at least min_values values (whole keys; fewer at the end) of what
 * the snapshot sends to the sinks in `mask`, in statsd's order, each batch
 * with the part of `mask` its values go to.  Returns 1 while values remain,
 * 0 once the tail (numStats, calculationtime, processing_time) is out. */
int sy_flusher_next(sy_flusher *f, const sy_snapshot *s, const sy_extra_metric *extra,
                    size_t nextra, uint64_t mask, sy_flush_cursor *c, size_t min_values,
                    sy_flush_emit_fn emit, void *ctx);

/* Counts what sy_flusher_next would still emit for `mask` and moves the
 * cursor to the end without making any of it (no names, no timer
 * statistics): for a sink that cannot take the rest of a flush. */
size_t sy_flusher_skip(sy_flusher *f, const sy_snapshot *s, size_t nextra, uint64_t mask,
                       sy_flush_cursor *c);

/* The statistics of one timer, exposed for unit tests: calls out(name,
 * value) for each statistic in statsd's order ("count_90", "mean_90", ...,
 * "histogram.bin_50"). */
typedef void (*sy_timer_stat_fn)(void *ctx, const char *stat, double value);
void sy_timer_stats(const sy_flush_opts *o, const char *key, sy_timer_data *t,
                    sy_timer_stat_fn out, void *ctx);
/* How many statistics sy_timer_stats gives for this timer, counted
 * without computing them. */
size_t sy_timer_values(const sy_flush_opts *o, const char *key, const sy_timer_data *t);

#endif
