/*
 * sinkhost_internal.h - a sink instance's state, shared by sinkhost.c
 * (the plugin's host: settings, return codes, the retry list, shutdown)
 * and sinkspool.c (the sink's disk spool: spilling, replay, take_back).
 * Not for other modules: they use sinkhost.h.
 */
#ifndef SY_SINKHOST_INTERNAL_H
#define SY_SINKHOST_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <switchyard_sink.h>

#include "output/sinkhost.h"
#include "output/spool.h"
#include "util/log.h"

/* A batch the plugin answered SY_RETRY to (or one queued behind such a
 * batch), copied with its strings into one allocation. */
typedef struct held {
    struct held *next;
    int is_samples;
    size_t count;
    union {
        sy_metric_batch m;
        sy_sample_batch s;
    } b;
} held;

/* What the plugin sees as its sy_host. */
struct sy_host {
    struct sy_sink *sink;
};

struct sy_sink {
    struct sy_host host;
    char *name;
    const sy_sink_plugin *plugin;
    void *state;
    int initialised;
    struct event_base *base;
    sy_setting *settings;
    size_t nsettings;

    _Atomic int64_t stats[SY_STAT_COUNT];
    _Atomic int64_t batches_retried;
    _Atomic int64_t dropped_by_host;
    _Atomic int64_t write_errors;
    _Atomic int64_t retry_held;

    held *held_head, *held_tail;
    size_t held_count; /* metrics + samples held */
    size_t retry_max;
    struct event *retry_ev;
    int flush_owed;      /* call flush once the held batches went through */
    int final_requested; /* the owed flush is the final one */
    int final_done;

    sy_timer *timers;
    sy_watch *watches;

    int checking;        /* a settings check (sy_sink_check): nothing may start */

    sy_spool *spool;     /* spool.* settings: see sinkspool.c */
    int spool_always;    /* spool.mode = "always": write-through */
    int spool_inserting; /* take_back is writing behind the mark */
    int taken_back;      /* take_back was called (at most once) */
    int pending_in_spool; /* ... and what the plugin holds is still in the spool */
    int spool_removed;   /* a reload removed the spool: closed once replayed */
    struct event *replay_ev;
    int connected_seen;  /* the plugin reports SY_STAT_CONNECTED */
    int64_t sent_seen;   /* SY_STAT_SENT when last looked at */
    uint64_t moved_ms;   /* when the plugin's queue last moved */

    sy_ratelimit err_rl;
    sy_ratelimit drop_rl;
    char last_msg[1024]; /* the plugin's last warning or error */
};

static inline struct timeval ms_tv(uint64_t ms)
{
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
    return tv;
}

static inline void count_host_drop(sy_sink *s, size_t n)
{
    atomic_fetch_add_explicit(&s->dropped_by_host, (int64_t)n, memory_order_relaxed);
}

static inline size_t plugin_pending(sy_sink *s)
{
    return s->plugin->pending ? s->plugin->pending(s->state) : 0;
}

/* sinkhost.c: offers a batch to the plugin; counts and logs a failed
 * write of n values. */
sy_status sy_sink_offer(sy_sink *s, int is_samples, const void *batch);
void sy_sink_write_failed(sy_sink *s, const char *what, size_t n);

/* sinkspool.c: whether writes go to the spool now (it holds records, or
 * the plugin is disconnected or stuck); append a batch of values, of raw
 * samples or of raw lines to it (lines behind what the host holds); move the retry list into it; open it and start replay
 * (0 when the sink has no spool settings); at shutdown, take back what the
 * plugin's queue holds; whether a write-through spool is still replaying
 * at shutdown. */
int sy_sink_spool_route(sy_sink *s);
void sy_sink_spool_put(sy_sink *s, const sy_metric_batch *b);
void sy_sink_spool_put_samples(sy_sink *s, const sy_sample_batch *b);
void sy_sink_spool_put_lines(sy_sink *s, const char *const *lines, const uint32_t *lens, size_t n);
void sy_sink_spill_held(sy_sink *s);
int sy_sink_spool_start(sy_sink *s, char *err, size_t errlen);
void sy_sink_spool_take_back(sy_sink *s);
int sy_sink_spool_draining(sy_sink *s);


#endif
