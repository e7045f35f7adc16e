/*
 * record.h - the trace records as `switchyard traces` reads them: the JSON
 * the memcache_traces sink writes (its keys, slots and version:
 * plugins/lib/trace_format.h), decoded into plain structs.
 */
#ifndef SY_TRACES_RECORD_H
#define SY_TRACES_RECORD_H

#include <stddef.h>
#include <stdint.h>

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


/* Appends one zeroed element to *arr (n elements of size sz): capacity 4,
 * then doubling.  NULL when memory runs out (or past 2^28 elements). */
void *sy_traces_grow(void **arr, size_t *n, size_t sz);

#endif
