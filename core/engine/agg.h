/*
 * agg.h - aggregation: statsd's counters, timers, gauges and sets.
 *
 * One aggregator is owned by one thread.  It is fed raw reads (the records
 * of the rings), parses them and updates its key table.  At each flush it
 * hands out a snapshot (the values of the interval, timer samples moved, not
 * copied) and applies statsd's clear/delete rules.  The snapshot is then
 * processed on another thread while the aggregator goes on.
 */
#ifndef SY_AGG_H
#define SY_AGG_H

#include <stddef.h>
#include <stdint.h>

#include "engine/router.h"
#include "engine/snapshot.h"
#include "ingest/ring.h"
#include "util/buf.h"

typedef struct sy_agg_opts {
    int sanitize;              /* keyNameSanitize */
    int delete_counters;       /* statsd's deleteCounters ... */
    int delete_timers;
    int delete_sets;
    int delete_gauges;
    int gauges_max_ttl;        /* idle flushes before a gauge is deleted */
    const char *prefix_stats;  /* "statsd" */
    uint32_t flush_interval_ms;
    uint32_t timer_sample_limit; /* samples kept per timer per interval; 0 = all */
    uint32_t set_member_limit; /* members counted exactly per set per interval; 0 = all */
    size_t max_keys;           /* 0 = no limit */
    uint64_t dd_sinks;         /* dogstatsdEvents: sinks that get events and
                                * service checks as received; 0 = counted only */
    /* DogStatsD timestamps (|T) kept for pass-through sinks within
     * [now - ts_max_age_s, now + ts_max_ahead_s]; outside, counted in
     * dd_ts_outside and the sample takes its arrival time */
    uint32_t ts_max_age_s, ts_max_ahead_s;
} sy_agg_opts;

/* What the aggregator saw; read by other threads, hence atomics. */
typedef struct sy_agg_stats {
    _Atomic uint64_t packets;
    _Atomic uint64_t lines;
    _Atomic uint64_t samples;
    _Atomic uint64_t bad_lines;
    _Atomic uint64_t keys_too_long;  /* lines refused for a key of SY_KEY_MAX+ bytes */
    _Atomic uint64_t sets_estimated; /* sets that passed set_member_limit in an interval */
    _Atomic uint64_t keys;           /* gauge: keys in the table */
    _Atomic uint64_t keys_rejected;  /* samples refused by max_keys */
    _Atomic uint64_t timer_samples_dropped; /* replaced in the reservoir */
    _Atomic uint64_t routed_drops;   /* samples a route dropped */
    _Atomic uint64_t sampled_out;    /* samples a route's sample() left out */
    _Atomic uint64_t passed_through; /* raw samples handed to pass-through sinks */
    _Atomic uint64_t raw_dropped;    /* raw samples lost: buffer full */
    _Atomic uint64_t route_errors;   /* decisions that failed (default route used) */
    _Atomic uint64_t predecided;     /* decisions taken from a reload's predecided table */
    _Atomic uint64_t predecide_misses; /* decided by Lua while such a table was in use */
    /* DogStatsD: events and service checks (recognised; forwarded to the
     * dogstatsdEvents sinks through the raw batch, see dd_dropped),
     * container IDs (skipped) and timestamps (kept for pass-through
     * samples; see parse.c) */
    _Atomic uint64_t dd_events, dd_service_checks, dd_containers, dd_timestamps;
    _Atomic uint64_t dd_ts_outside;  /* timestamps outside the window (ignored) */
    _Atomic uint64_t dd_forwarded;   /* events/service checks handed to sinks */
    _Atomic uint64_t dd_dropped;     /* ... lost: too long, or the raw batch full */
    _Atomic int64_t last_msg_ms;     /* wall clock of the last line seen */
    struct sy_budgets *budgets;      /* series budgets, for their counts (budget.h) */
} sy_agg_stats;

/* What the aggregator needs to know of a listener. */
typedef struct sy_listen_info {
    const char *name;   /* its URL */
    int auth;           /* lines start with a token */
    _Atomic uint64_t auth_rejected;
} sy_listen_info;

typedef struct sy_agg sy_agg;

/* top (top.h): the interval's samples and bytes per listener (index 0xff:
 * none) and per tenant (0: none), charged as they arrive. */
typedef struct sy_top_arrivals {
    uint64_t lsamples[256], lbytes[256];
    uint64_t tsamples[256], tbytes[256];
} sy_top_arrivals;

sy_agg *sy_agg_new(const sy_agg_opts *opts);
void sy_agg_free(sy_agg *a);

/*
 * Routing.  With a router, each (type, key) - and (type, key, sender) when
 * the rules look at the sender - is decided once by Lua and the answer
 * kept in the key's entry.  Setting a router (at start or reload) starts a
 * new epoch: every cached decision is made again the next time its key is
 * seen (or flushed).  The aggregator does not own the router.  listeners
 * are indexed by sy_origin.listener.
 */
void sy_agg_set_routing(sy_agg *a, sy_router *router, uint64_t all_sinks, int uses_origin,
                        sy_listen_info *listeners, size_t nlisteners);
void sy_agg_set_sample_seed(sy_agg *a, uint64_t seed);
/* Change the options that a reload may change (flush interval, deletes,
 * limits); the table and its values stay. */
void sy_agg_set_opts(sy_agg *a, const sy_agg_opts *opts);
/* Series budgets (budget.h): a config's `limits`, copied; counts carry
 * over to budgets of the same kind and value. */
struct sy_limit;
void sy_agg_set_limits(sy_agg *a, const struct sy_limit *limits, size_t n);

/*
 * Reloads without a pause (predecide.h).  sy_agg_walk_keys calls fn for
 * each live key that has a routing decision of its own, from slot *cursor
 * on, visiting at most `max` entries; it advances *cursor, and the walk is
 * over when *cursor reaches sy_agg_table_cap (which changes when the table
 * grows: start again, what was decided is known).  `lookup` is what the
 * aggregator will look the key's decision up by under rules that do
 * (next_uses_origin) or do not look at the origin; keys whose origin is not
 * known are left out (they are decided as they arrive).  The listener and
 * sender are "" without origin rules.
 */
typedef void (*sy_key_fn)(void *ctx, int type, const char *key, size_t klen, const char *lookup,
                          size_t lookup_len, const char *listener, const char *sender);
size_t sy_agg_walk_keys(sy_agg *a, size_t *cursor, size_t max, int next_uses_origin,
                        sy_key_fn fn, void *ctx);
size_t sy_agg_table_cap(const sy_agg *a);
int sy_agg_uses_origin(const sy_agg *a);
/* Shadow reloads (shadow.h): like sy_agg_walk_keys, each live key's
 * routing entry with the decision cached in it (statsd's own counters
 * left out).  current is 0 for a decision made before the last reload
 * and not made again since (the key has not been seen meanwhile). */
typedef struct sy_key_decision {
    int type;
    const char *key, *lookup; /* lookup: what the key's decision is found by */
    size_t klen, lookup_len;
    const char *listener, *sender; /* "" without origin rules */
    const char *name;         /* its final name */
    size_t name_len;
    uint64_t sinks, raw;
    double rate;
    int drop, current;
} sy_key_decision;
typedef void (*sy_decision_fn)(void *ctx, const sy_key_decision *d);
size_t sy_agg_walk_decisions(sy_agg *a, size_t *cursor, size_t max, sy_decision_fn fn, void *ctx);
/* The token cache (tokens answered by the running config's auth, each
 * with the listener and sender it was asked for; cleared at each reload):
 * walked a bucket at a time from *cursor, at most about max tokens;
 * returns the buckets and tokens seen.  The walk is over when
 * sy_agg_tokens_walked says so. */
typedef struct sy_token_decision {
    const char *token;
    size_t tlen;
    const char *listener, *sender;
    const char *ns;             /* the namespace it was given */
    size_t nslen;
    int allowed;
} sy_token_decision;
typedef void (*sy_token_fn)(void *ctx, const sy_token_decision *d);
size_t sy_agg_walk_tokens(sy_agg *a, size_t *cursor, size_t max, sy_token_fn fn, void *ctx);
int sy_agg_tokens_walked(size_t cursor);
/* After sy_agg_set_routing: take decisions from p (owned from now on) for
 * the next two flush intervals before asking the router. */
struct sy_predecided;
void sy_agg_use_predecided(sy_agg *a, struct sy_predecided *p);

/* The raw samples gathered so far (NULL when none); the caller owns it. */
sy_raw_batch *sy_agg_take_raw(sy_agg *a);
size_t sy_agg_raw_pending(const sy_agg *a);
const sy_agg_stats *sy_agg_get_stats(const sy_agg *a);

/* One read (a datagram, or complete lines from a stream): statsd's
 * handlePacket. */
void sy_agg_feed(sy_agg *a, const char *buf, size_t len, const sy_origin *origin);

/* From how many keys on sy_agg_feed parses a record's lines ahead of
 * applying them and prefetches their table slots and entries (agg.c's
 * feed_batched; PF_BATCH_KEYS unless set; 0: always).  For tests. */
void sy_agg_set_batch_keys(sy_agg *a, size_t keys);

/* One line, already framed (no newline); origin may be NULL. */
void sy_agg_line(sy_agg *a, const char *line, size_t len, const sy_origin *origin);

/* Take the interval's values and reset as statsd does after a flush. */
sy_snapshot *sy_agg_snapshot(sy_agg *a, int64_t ts);

size_t sy_agg_key_count(const sy_agg *a);

/*
 * For the admin interface (called on the aggregator's thread); the replies
 * are appended to a growing buffer (util/buf.h).
 */

/* statsd's `counters`, `timers`, `gauges`: the current interval's values,
 * byte for byte as statsd's console prints them (node's util.inspect, see
 * inspect.h; keys in the order statsd first saw them), then a newline. */
void sy_agg_dump(sy_agg *a, int type, sy_buf *out);
/* statsd's `delcounters` etc.: each name, or a "folder.*", is deleted;
 * "deleted: NAME" or "metric NAME not found" per request, then END. */
void sy_agg_delete(sy_agg *a, int type, char **names, size_t n, sy_buf *out);
/* Key counts per type, or (with a prefix) the first SY_KEYS_LIMIT keys
 * that start with it and how many more there are. */
#define SY_KEYS_LIMIT 10000
void sy_agg_keys(sy_agg *a, const char *prefix, sy_buf *out);

/*
 * The same three as walks done a few entries at a time, so that the
 * aggregator's thread can answer between batches of ingest.  A walk
 * visits each entry present for its whole length exactly once; entries
 * created after it began are not visited, and entries deleted before it
 * reaches them are not either (the table may grow or shift meanwhile).
 * names (what: SY_WALK_DELETE, or SY_WALK_KEYS with the prefix in names[0])
 * must live as long as the walk.
 */
enum { SY_WALK_DUMP = 1, SY_WALK_DELETE = 2, SY_WALK_KEYS = 3 };
/* top.h's figures: names are "N", "by=...", "depth=K"; type is 1 for
 * JSON, 0 for the console's text. */
#define SY_WALK_TOP 4
typedef struct sy_agg_walk sy_agg_walk;
sy_agg_walk *sy_agg_walk_new(sy_agg *a, int what, int type, char **names, size_t n);
/* Visits up to about `budget` entries, appending the reply's text to out;
 * 1 once the reply is complete. */
int sy_agg_walk_step(sy_agg *a, sy_agg_walk *w, sy_buf *out, size_t budget);
/* Ends a walk, complete or not (before the aggregator is freed). */
void sy_agg_walk_free(sy_agg *a, sy_agg_walk *w);

#endif
