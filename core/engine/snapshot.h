/*
 * snapshot.h - what the engine hands the output thread: a flush's values
 * (sy_agg_snapshot makes one, the output thread computes statsd's
 * statistics from it and frees it) and the raw samples of pass-through
 * routes.  Apart from agg.h so that the output side needs only these types.
 */
#ifndef SY_SNAPSHOT_H
#define SY_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include <switchyard_sink.h>

enum sy_mtype { SY_T_COUNTER = 0, SY_T_TIMER = 1, SY_T_GAUGE = 2, SY_T_SET = 3 };

/* The samples of one timer for one interval.  Percentiles come from `v`
 * (every sample, or a uniform reservoir once `seen` exceeds the limit);
 * count, sum, sum of squares, lower and upper are exact either way. */
typedef struct sy_timer_data {
    double *v;
    uint32_t n, cap;
    uint64_t seen;
    double count; /* sum of 1/rate: what statsd reports as count */
    double sum, sumsq, min, max;
} sy_timer_data;

typedef struct sy_snap_item {
    const char *key;  /* valid until the snapshot is freed */
    uint32_t key_len;
    uint8_t type;     /* enum sy_mtype */
    uint64_t sinks;   /* which sinks get its values */
    double value;     /* counter total, gauge value or set size */
    sy_timer_data *timer; /* owned by the snapshot; NULL for an idle timer */
} sy_snap_item;

typedef struct sy_snapshot {
    sy_snap_item *items;
    size_t n;
    int64_t ts;              /* flush time, seconds */
    uint32_t flush_interval_ms;
    size_t counters, timers, gauges, sets; /* statsd's numStats parts */
    uint64_t internal_sinks; /* where numStats, processing_time etc. go */
    struct sy_entry *dead;   /* entries deleted at this flush, freed with it */
} sy_snapshot;

void sy_snapshot_free(sy_snapshot *s);

/* Raw samples for pass-through sinks, copied out of the read buffers. */
typedef struct sy_raw_batch {
    sy_sample *samples;
    uint64_t *masks;    /* per sample: the sinks that get it */
    int64_t *ts_ms;     /* per sample: its DogStatsD timestamp in ms, or 0 */
    size_t n, cap;
    char *arena;        /* names, values and tags */
    size_t used, arena_cap;
} sy_raw_batch;

/* A raw sample of this type (never a wire type) is a DogStatsD event or
 * service check line for the dogstatsdEvents sinks: `text` is the line as
 * received, token removed; the output hands it to write_lines. */
#define SY_RAW_DD_LINE 'E'
#define SY_DD_LINE_MAX 65536u

void sy_raw_batch_free(sy_raw_batch *b);

#endif
