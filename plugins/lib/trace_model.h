/*
 * trace_model.h - the pure part of the memcache_traces sink: slot keys,
 * JSON text, DogStatsD tag parsing and the grouping of spans into traces.
 *
 * Nothing here does I/O or reads a clock: times are passed in, so the unit
 * tests can drive a trace through every state with made-up times.  The
 * semantics (what `off`, `root` and the trace start mean, when a trace is
 * closed, the bounds, the JSON records) are described at the top of
 * plugins/memcache_traces.c; this header only says how to call it.
 */
#ifndef SY_PLUGIN_TRACE_MODEL_H
#define SY_PLUGIN_TRACE_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* Slots, the key format, the record version: tm_slot, tm_prefix_ok. */
#include "trace_format.h"

#define TM_ID_MAX 200      /* longest trace id kept; a longer one is a bad span */
#define TM_FIELD_MAX 1024  /* method, path and status are cut to this many bytes */

/* "<prefix>:NNNNNN:<kind>" (TM_KEY_FMT) into buf (NUL-terminated); its
 * length, or -1 when it does not fit in cap or exceeds memcached's 250
 * bytes. */
int tm_key(char *buf, size_t cap, const char *prefix, uint64_t start_ms, const char *kind);

/* A growable byte buffer.  On allocation failure `oom` is set and later
 * appends do nothing, so a builder checks once at the end. */
typedef struct tm_buf {
    char *p;
    size_t len, cap;
    int oom;
} tm_buf;

void tm_buf_free(tm_buf *b);
void tm_buf_reset(tm_buf *b);
void tm_buf_add(tm_buf *b, const void *s, size_t n);
void tm_buf_str(tm_buf *b, const char *s);
void tm_buf_u64(tm_buf *b, uint64_t v);

/* s[0..n) as a JSON string, quotes included.  Quotes, backslashes and
 * control bytes (and DEL) are escaped; valid UTF-8 is kept; every byte
 * that is not part of a valid UTF-8 sequence (stray continuation bytes,
 * overlong forms, surrogates, beyond U+10FFFF, a cut sequence) becomes
 * \ufffd.  The output is always valid JSON and pure text. */
void tm_json_str(tm_buf *b, const char *s, size_t n);

/* Formats a finite double as a JSON number (the host's format_number,
 * which writes JavaScript's shortest form); buf holds 32 bytes. */
typedef size_t (*tm_fmt_fn)(double v, char *buf);

/* One tag of a DogStatsD tag list: "key:value" (split at the first ':')
 * or a bare "key" (has_value 0). */
typedef struct tm_tag {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    int has_value;
} tm_tag;

/* Iterates the comma-separated tags of s[0..n), skipping empty ones.
 * Start with *pos = 0; returns 1 and fills *t while there is a tag. */
int tm_tag_next(const char *s, size_t n, size_t *pos, tm_tag *t);

/* What a span's tags say about its trace. */
typedef struct tm_span_tags {
    const char *trace;   /* the trace id ("trace:ID"), NULL when absent or empty */
    size_t trace_len;
    int root;            /* "root", "root:true", "root:1" or "root:yes" */
    double off;          /* "off:N", ms from the trace start; 0 when absent */
    int off_bad;         /* an off that is not a non-negative decimal (then 0) */
    const char *method, *path, *status; /* NULL when absent */
    size_t method_len, path_len, status_len;
} tm_span_tags;

void tm_parse_tags(const char *s, size_t n, tm_span_tags *out);

/* A tag that stays in the span's own tag list: everything except trace:,
 * off: and root. */
int tm_tag_kept(const tm_tag *t);

/* A non-negative decimal ("12", "1.5", ".5", "+3"), no exponent; 0 and
 * *out set, or -1. */
int tm_parse_ms(const char *s, size_t n, double *out);

/* --- grouping spans into traces --- */

typedef struct tm_limits {
    uint32_t max_spans;    /* spans stored per trace; later ones are counted */
    uint32_t max_open;     /* open traces; a new one closes the oldest early */
    size_t max_bytes;      /* memory of all open traces */
    uint64_t timeout_ms;   /* a trace closes this long after its first span */
    uint64_t root_wait_ms; /* ... or this long after its root span (<= timeout) */
    uint64_t max_trace_ms; /* a start estimate is kept within [arrival - this, arrival]
                              (0: only >= 0), see tm_trace_start_clamped */
} tm_limits;

typedef struct tm_span {
    uint32_t name_off, name_len;  /* in the trace's text */
    uint32_t tags_off, tags_len;  /* kept tags, comma-joined, in the text */
    double off, dur;
    uint64_t arrival_ms;          /* wall clock when it arrived */
    uint32_t seq;                 /* arrival order within the trace */
    uint8_t root;
} tm_span;

typedef struct tm_trace tm_trace;

/* How a trace was closed, as written in the records' "closed" field. */
enum tm_close_reason { TM_CLOSED_ROOT, TM_CLOSED_TIMEOUT, TM_CLOSED_EVICTED, TM_CLOSED_SHUTDOWN };
const char *tm_close_reason_name(int reason);

/* Read access to a closed trace (after tm_table_pop_closed). */
const char *tm_trace_id(const tm_trace *t, size_t *len);
uint64_t tm_trace_start(const tm_trace *t);     /* ms since the epoch */
/* 1 when the start estimate that gave the start (the root's, or without a
 * root any span's) lay outside [arrival - max_trace_ms, arrival] and was
 * moved to its nearest end; *claimed_ms (may be NULL) is then how long
 * before its arrival the client's numbers put the start (may be huge or
 * infinite). */
int tm_trace_start_clamped(const tm_trace *t, double *claimed_ms);
double tm_trace_duration(const tm_trace *t);
uint32_t tm_trace_span_count(const tm_trace *t); /* stored */
uint32_t tm_trace_spans_dropped(const tm_trace *t);
int tm_trace_has_root(const tm_trace *t);
int tm_trace_closed_by(const tm_trace *t);
const tm_span *tm_trace_span(const tm_trace *t, uint32_t i); /* in stored (sorted) order */
const char *tm_trace_text(const tm_trace *t);  /* base of the span offsets */
void tm_trace_free(tm_trace *t);

/* The full record: every stored span.  Spans that would take the record
 * past max_len are left out and counted in its "spans_dropped".  0, or -1
 * when even the record without spans exceeds max_len (or memory ran out);
 * *written is the number of spans included. */
int tm_trace_json_full(const tm_trace *t, tm_buf *b, size_t max_len, tm_fmt_fn fmt,
                       uint32_t *written);
/* The part record (summary).  Per-name statistics that would take it past
 * max_len are left out ("stats_truncated": true).  0 or -1 as above. */
int tm_trace_json_part(const tm_trace *t, tm_buf *b, size_t max_len, tm_fmt_fn fmt);

typedef struct tm_table tm_table;

/* What became of one span. */
enum tm_add_result {
    TM_ADDED = 0,
    TM_NO_TRACE,    /* no trace tag: not a span */
    TM_BAD,         /* negative or non-finite duration, or a trace id over TM_ID_MAX */
    TM_LATE,        /* its trace was closed recently: dropped */
    TM_OVER_SPANS,  /* its trace already holds max_spans: counted in the trace */
    TM_NO_MEMORY    /* max_bytes reached even after closing older traces, or malloc failed */
};

tm_table *tm_table_new(const tm_limits *lim);
/* Frees every trace, open or closed-but-not-popped. */
void tm_table_free(tm_table *t);

/* Adds one span (a timer sample).  `name` is the metric key (the routed
 * name is cut at its first ';', where switchyard appends the tags), `tags`
 * the raw DogStatsD tag text.  May close older traces (bounds): pop them. */
int tm_table_add(tm_table *t, const char *name, size_t name_len, const char *tags,
                 size_t tags_len, double dur, uint64_t now_wall, uint64_t now_mono);

/* Closes every trace whose time has come (root wait or timeout). */
void tm_table_expire(tm_table *t, uint64_t now_mono);
/* Closes every open trace (shutdown). */
void tm_table_close_all(tm_table *t, uint64_t now_mono);
/* The monotonic time of the next close, 0 when nothing is open. */
uint64_t tm_table_next_deadline(const tm_table *t);
/* The oldest closed trace not yet taken, or NULL.  The caller frees it. */
tm_trace *tm_table_pop_closed(tm_table *t);

size_t tm_table_open(const tm_table *t);        /* open traces */
size_t tm_table_open_spans(const tm_table *t);  /* spans in them */
size_t tm_table_bytes(const tm_table *t);       /* their accounted memory */

#endif
