/*
 * traces.h - `switchyard traces`: the reader for the appstats-style traces
 * that the memcache_traces sink stores in memcached.
 *
 *   switchyard traces [--memcached HOST:PORT] [--prefix P] [--limit N]
 *       lists recent traces, newest first, from one multi-get of all 1000
 *       part keys, then totals per path and per span name;
 *   switchyard traces [--memcached HOST:PORT] [--prefix P] show START_MS
 *       prints one trace's spans, after checking that the full record in
 *       its slot still has that start time.
 *
 * The record formats are described in plugins/memcache_traces.c.  This is
 * a command-line tool, not the daemon: it uses blocking sockets (with a
 * timeout).
 */
#ifndef SY_TRACES_H
#define SY_TRACES_H

#include <stddef.h>
#include <stdint.h>

/* argv[0] is "traces".  Exit status: 0 done, 1 the trace asked for is no
 * longer stored, 2 bad usage or memcached could not be read. */
int sy_traces_main(int argc, char **argv);

/* The slot of a start time, ((ms / 100) % 1000) * 100 (the sink's
 * tm_slot: the two must agree). */
unsigned sy_traces_slot(uint64_t start_ms);

/* A decoded record, part or full.  Strings are NUL-terminated UTF-8 as
 * decoded from JSON (they may hold any byte but NUL; print them with
 * care), NULL when the member was absent or null. */
typedef struct sy_trace_stat {
    char *name;
    double count, total;
} sy_trace_stat;

typedef struct sy_trace_span {
    char *name;
    double off, dur;
    int root;
    char **tags;
    size_t ntags;
} sy_trace_span;

typedef struct sy_trace_rec {
    int version;
    uint64_t start;           /* ms since the epoch */
    double duration;
    char *trace, *method, *path, *status, *closed;
    int root;
    double span_count, spans_dropped;
    sy_trace_stat *stats;     /* part */
    size_t nstats;
    int stats_truncated;
    sy_trace_span *spans;     /* full */
    size_t nspans;
} sy_trace_rec;

/*
 * Decodes one record.  Tolerant of what a later version 1 writer may add
 * (unknown members are skipped) and of missing optional members; strict
 * about what it needs: a JSON object with "version" 1 and a whole,
 * non-negative "start".  Never reads past json[len) and never recurses
 * deeper than 64 levels, whatever the input.  0, or -1 with a reason in
 * err (out is then empty).
 */
int sy_trace_rec_parse(const char *json, size_t len, sy_trace_rec *out, char *err, size_t errlen);
void sy_trace_rec_free(sy_trace_rec *r);

#endif
