/*
 * promstore.h - StatsD samples kept as Prometheus series, the way
 * prometheus/statsd_exporter (default flags, no mapping file) keeps them,
 * shared by the `prometheus` (scrape page) and `remote_write` sinks so that
 * both show the same names, labels and values.
 *
 * What a raw sample becomes:
 *   - the routed name (up to its first ';') is escaped as statsd_exporter
 *     escapes it: every character outside [a-zA-Z0-9_] becomes one '_' (a
 *     multi-byte UTF-8 character is one character), a '-' right after
 *     another '-' vanishes, and a leading digit gets a '_' in front;
 *   - DogStatsD tags ("k:v,k2:v2", a leading '#' ignored) become labels,
 *     their names escaped the same way, values kept as sent; a tag with no
 *     ':', an empty name or value, or a reserved name ("__*", and "le" /
 *     "quantile" where they would clash) is dropped and counted as a tag
 *     error, the sample kept; two tags with one name: the last wins;
 *   - counters: cumulative, exposed as NAME_total (not doubled when the
 *     name ends in _total already), value / sample rate, negative values
 *     refused;
 *   - gauges: set, or changed by a signed value ("+3", "-3": statsd_exporter
 *     reads a leading sign as a delta);
 *   - timers (ms, h, d: switchyard does not tell them apart) in seconds
 *     (value / 1000), as summaries over a sliding window (quantiles, _sum,
 *     _count) or, when buckets are configured, histograms; a sample rate r
 *     counts as int(1 / r) observations;
 *   - sets: statsd_exporter has no support for them; refused and counted.
 * Names and tag values must be valid UTF-8 (statsd_exporter refuses the
 * line otherwise).
 *
 * Bounds: at most max_series series (a sample for a new series beyond it
 * is refused and counted), at most PROMSTORE_MAX_LABELS labels a series,
 * summary samples per age bucket, and series idle for ttl are removed.
 *
 * Not thread-safe: one instance belongs to one sink, on the output loop.
 */
#ifndef SY_PLUGIN_PROMSTORE_H
#define SY_PLUGIN_PROMSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "switchyard_sink.h"

#define PROMSTORE_MAX_LABELS 64
#define PROMSTORE_MAX_BUCKETS 64
#define PROMSTORE_MAX_QUANTILES 16

typedef struct promstore promstore;

typedef struct promstore_config {
    size_t max_series;
    uint64_t ttl_ms;            /* 0: series never expire */
    size_t nbuckets;            /* > 0: timers are histograms */
    double buckets[PROMSTORE_MAX_BUCKETS];   /* ascending upper bounds, no +Inf */
    size_t nquantiles;
    double quantiles[PROMSTORE_MAX_QUANTILES];
    uint64_t max_age_ms;        /* a summary's window */
    int age_buckets;            /* the window moves in steps of max_age / age_buckets */
    size_t summary_samples;     /* samples kept per age bucket (a reservoir beyond) */
    const char *reserved_prefix; /* NULL, or names a sink keeps for itself (bad_name) */
} promstore_config;

/* Why samples were not taken; counts since the store was made. */
enum promstore_drop {
    PROMSTORE_DROP_SERIES_LIMIT = 0,
    PROMSTORE_DROP_SET,
    PROMSTORE_DROP_NEGATIVE_COUNTER,
    PROMSTORE_DROP_TYPE_CONFLICT,
    PROMSTORE_DROP_BAD_UTF8,
    PROMSTORE_DROP_BAD_NAME,
    PROMSTORE_DROP_NO_MEMORY,
    PROMSTORE_DROP_COUNT
};

typedef struct promstore_stats {
    uint64_t taken;
    uint64_t dropped[PROMSTORE_DROP_COUNT];
    uint64_t tag_errors;
    uint64_t expired;
    uint64_t ts_late;   /* timestamps not after the series' last one shown/sent: ignored */
    size_t series;
} promstore_stats;

/* The drop reason as a label value ("series_limit", "set", ...). */
const char *promstore_drop_name(int reason);

/*
 * Reads the settings both sinks share (ttl, maxSeries, buckets, quantiles,
 * summaryMaxAge, summaryAgeBuckets, summarySamples) and judges them; 0, or
 * -1 with the reason in err.  The keys, for a plugin's settings list:
 */
#define PROMSTORE_SETTINGS \
    "ttl", "maxSeries", "buckets", "quantiles", "summaryMaxAge", "summaryAgeBuckets", \
    "summarySamples"
int promstore_read_config(const sy_host_api *api, sy_host *host, promstore_config *cfg,
                          char *err, size_t errlen);

/* api is used for formatting numbers (le and quantile labels). */
promstore *promstore_new(const promstore_config *cfg, const sy_host_api *api);
void promstore_free(promstore *s);

/* Takes one raw sample: 0, or -1 with the reason counted (see stats). */
int promstore_add(promstore *s, const sy_sample *x, uint64_t now_ms);

/*
 * The same, for a sample the client gave a time (ts_ms > 0; 0 is
 * promstore_add).  The value is applied as any other (counters add,
 * gauges set, timers observe: the series stay cumulative), and the series
 * is then stamped with the newest such time, which visits report instead
 * of "now".  A time not after the one the series was last shown or sent
 * with (an emitting visit) cannot be written in order: it is ignored and
 * counted in ts_late, and the series takes the visit's time again.  So
 * each series' stamps only grow, and never repeat with another value.
 */
int promstore_add_at(promstore *s, const sy_sample *x, uint64_t now_ms, int64_t ts_ms);

/* Removes series idle for ttl; returns how many. */
size_t promstore_expire(promstore *s, uint64_t now_ms);

const promstore_stats *promstore_get_stats(const promstore *s);

/* One label of an exposed sample. */
typedef struct prom_label {
    const char *name;
    const char *value;
} prom_label;

/*
 * What promstore_visit reports: each family once, then its samples.  A
 * sample's labels are the series' own, sorted by name; `extra` (le or
 * quantile, NULL when none) comes after them.  `type` is "counter",
 * "gauge", "summary" or "histogram".
 */
typedef struct promstore_visitor {
    void (*family)(void *arg, const char *name, const char *type);
    /* ts_ms: the sample's time in ms, or 0 for the visit's own time (the
     * scrape, the snapshot) */
    void (*sample)(void *arg, const char *name, const char *suffix, const prom_label *labels,
                   size_t nlabels, const prom_label *extra, double value, int64_t ts_ms);
    /* 1: what is visited is shown or sent, so each series remembers the
     * time it went out with (see promstore_add_at); 0: a look only */
    int emits;
    /* 1: leave out series stamped with a client's time that already went
     * out at that time, unchanged since (remote write sends such a point
     * once; a receiver such as VictoriaMetrics would store every copy) */
    int unsent_only;
    /* 1: a sample of ts_ms 0 goes out at the visit's time, which the
     * visitor writes (remote write's snapshot time); 0: it goes out with
     * no time, and the reader's clock stamps it (a scrape) */
    int own_times;
} promstore_visitor;

/* Every family and sample, as of now_ms (summaries' windows move).  A
 * series stamped by a client's time reports it; one whose last stamp is
 * not before now_ms (a client's clock ahead) reports that stamp + 1 ms. */
void promstore_visit(promstore *s, uint64_t now_ms, const promstore_visitor *v, void *arg);

/* promstore_expire, telling v each removed series' samples (its last
 * values) first: remote write marks them stale.  v->family is not called. */
size_t promstore_expire_visit(promstore *s, uint64_t now_ms, const promstore_visitor *v,
                              void *arg);

/* statsd_exporter's escaping of a metric or label name into out (room for
 * 2 * len + 2 bytes); returns the length. */
size_t promstore_escape_name(const char *in, size_t len, char *out);

/* Formats a sample value as the text exposition writes it ("+Inf",
 * "-Inf", "NaN", or the shortest round-tripping number); buf of 32. */
size_t promstore_format_value(const sy_host_api *api, double v, char *buf);

#endif
