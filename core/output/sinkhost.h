/*
 * sinkhost.h - loads sink plugins and runs their instances.
 *
 * The host is the only code that talks to a plugin.  It loads the shared
 * object once, checks its ABI, checks an instance's settings against the
 * keys the plugin declares, gives each instance a sy_host_api bound to the
 * output thread's event_base, and turns the plugin's return codes into
 * counters and a bounded retry list:
 *
 *   SY_OK, SY_SKIP  nothing more to do
 *   SY_ERROR        the batch is counted as dropped (host side) and the
 *                   plugin's last message is logged at a bounded rate
 *   SY_RETRY        the host copies the borrowed batch into the instance's
 *                   retry list and offers it again every 100 ms, and before
 *                   any newer batch, so order is kept.  The list holds at
 *                   most `retryMaxMetrics` metrics/samples (default
 *                   1000000); what does not fit is counted as dropped.
 *                   Held batches survive later flushes (each flush is a
 *                   different point in time, so none replaces another).
 *
 * Threading: everything except sy_sink_stats() and sy_sink_name() runs on
 * the output thread, the one that runs `base`.  sy_sink_stats() may be
 * called from any thread while the sink is open.
 *
 * Settings keys owned by the host (valid for every sink):
 *   plugin           string, the plugin's name
 *   retryMaxMetrics  whole number >= 0, the retry list bound
 *   spool.*          the disk spool (spool.h): dir, maxBytes, segmentBytes,
 *                    fsync, fsyncInterval, whenFull
 *   passthrough      boolean: every kept sample reaches the sink raw, and no
 *                    flushed values (read by lua/switchyard/config.lua when
 *                    it builds the routing decision)
 */
#ifndef SY_SINKHOST_H
#define SY_SINKHOST_H

#include <stddef.h>
#include <stdint.h>

#include <switchyard_sink.h>

struct event_base;

/* One key of a sink's config table, as the config loader found it.
 * Numbers inside lists are stored as their text. */
typedef enum {
    SY_SET_STRING,
    SY_SET_NUMBER,
    SY_SET_BOOL,
    SY_SET_LIST
} sy_setting_type;

typedef struct sy_setting {
    char *key;
    sy_setting_type type;
    char *str;       /* SY_SET_STRING */
    double num;      /* SY_SET_NUMBER */
    int boolean;     /* SY_SET_BOOL */
    char **list;     /* SY_SET_LIST: list_len malloc'd strings */
    int list_len;
} sy_setting;

/* Frees every string of s[0..n) and then s itself (all malloc'd). */
void sy_settings_free(sy_setting *s, size_t n);

/* Loads plugin_dir/NAME.so once (later calls with the same path return the
 * cached descriptor) and validates it.  NULL with a message in err on
 * failure; the message does not name the sink instance, so the caller
 * prefixes it ("sink 'carbon': no plugin 'graphit' in ...").
 * Thread-safe.  Plugins stay loaded until sy_plugin_unload_all(). */
const sy_sink_plugin *sy_plugin_load(const char *plugin_dir, const char *name,
                                     char *err, size_t errlen);

/* The checks sy_plugin_load applies to a descriptor: ABI major, struct
 * size, required callbacks.  0, or -1 with a message in err. */
int sy_plugin_validate(const sy_sink_plugin *p, const char *name, char *err, size_t errlen);

/* dlclose()s every loaded plugin.  Only when no sink is open. */
void sy_plugin_unload_all(void);

/* Every key must be one the plugin declares (unless it declares none) or
 * one the host owns; host-owned keys must have the right type.  0, or -1
 * with a message naming the instance and the key.  sy_sink_open applies
 * the same check. */
int sy_sink_check_settings(const sy_sink_plugin *p, const char *instance,
                           const sy_setting *s, size_t n, char *err, size_t errlen);

/* Everything that can be said about an instance's settings without
 * starting it: the descriptor, sy_sink_check_settings, then the plugin's
 * own check (ABI 1.1; plugins without one get only the key check).  Opens
 * nothing.  --check, start-up and reloads call it, so all three refuse
 * the same configs.  0, or -1 with a message naming the instance. */
int sy_sink_check(const sy_sink_plugin *p, const char *instance,
                  const sy_setting *s, size_t n, char *err, size_t errlen);

typedef struct sy_sink sy_sink;

/* Creates the instance and calls the plugin's init.  The settings are
 * copied (the caller keeps ownership of s).  NULL with a message in err
 * when a setting is refused or init fails. */
sy_sink *sy_sink_open(struct event_base *base, const char *instance,
                      const sy_sink_plugin *p, const sy_setting *s, size_t n,
                      char *err, size_t errlen);

/* Offer a borrowed batch; the host copies it if it has to keep it. */
void sy_sink_write(sy_sink *s, const sy_metric_batch *batch);
void sy_sink_write_samples(sy_sink *s, const sy_sample_batch *batch);
/* DogStatsD event and service check lines (ABI 1.3 write_lines).  A sink
 * with a disk spool appends them to it when writes go there (down, stuck,
 * spool not empty, mode "always") and when the plugin answers SY_RETRY or
 * SY_ERROR; replay offers them to write_lines in order.  Without a spool,
 * lines the plugin does not take are counted as dropped, none is held for
 * retry. */
void sy_sink_write_lines(sy_sink *s, const char *const *lines, const uint32_t *lens, size_t n);
/* 1 when the plugin has write_lines (and was built for ABI 1.3 or later). */
int sy_sink_plugin_takes_lines(const sy_sink_plugin *p);
/* Whether its write_samples takes the clients' DogStatsD timestamps (ABI 1.4). */
int sy_sink_plugin_takes_timestamps(const sy_sink_plugin *p);

/* After the last batch of a flush.  final = 1 once, at shutdown: the
 * plugin sees flush(final = 1) exactly once, after the held batches were
 * delivered (or, failing that, when sy_sinks_drain gives up). */
void sy_sink_flush(sy_sink *s, int final);

/* Metrics not yet delivered: the plugin's pending() plus what the host
 * holds for retry. */
size_t sy_sink_pending(sy_sink *s);

/* Metrics or samples the host holds for a retry (the plugin said SY_RETRY
 * and has not taken them since). */
size_t sy_sink_held(const sy_sink *s);

/* Offer what is held now rather than at the next retry tick. */
void sy_sink_retry_now(sy_sink *s);

/* n values the output never offered to the sink (it fell a whole flush
 * behind, say): counted as dropped and logged at a bounded rate with why. */
void sy_sink_drop(sy_sink *s, size_t n, const char *why);

/* Whether the sink's queue holds values and has sent nothing for a
 * second: its destination is down (the plugin keeps a queue while it
 * reconnects) or connected and not reading.  Not SY_STAT_CONNECTED: with
 * several destinations it can say 0 while the others take their share.
 * Also moves the clock that tells (call it on the output thread). */
int sy_sink_stuck(sy_sink *s);

/* Values dropped so far, the plugin's count and the host's together. */
int64_t sy_sink_dropped(const sy_sink *s);

/* Whether the sink has a disk spool (`spool = { dir = ... }`). */
int sy_sink_spooled(const sy_sink *s);

/* Appends a batch to the sink's spool behind what the host holds (which
 * goes first), for the output's leftovers: a flush the sink fell behind
 * on, what is left at shutdown.  Without a spool: sy_sink_write. */
void sy_sink_spill(sy_sink *s, const sy_metric_batch *batch);

/* A reload changed only the sink's spool.* settings: the sink is kept
 * (connection, queue) and its spool follows them (see sinkspool.c). */
void sy_sink_spool_settings(sy_sink *s, const sy_setting *settings, size_t n);

/* Calls the plugin's close; held batches are counted as dropped.  Timers
 * and watches the plugin forgot to free are freed here. */
void sy_sink_close(sy_sink *s);

const char *sy_sink_name(const sy_sink *s);
const sy_sink_plugin *sy_sink_plugin_of(const sy_sink *s);

/* A consistent-enough snapshot (each counter read atomically). */
typedef struct sy_sink_stats {
    /* reported by the plugin (enum sy_stat) */
    int64_t sent, dropped, errors, reconnects, queued, queued_bytes, connected, adjusted;
    /* the host's own */
    int64_t batches_retried;         /* batches put in the retry list */
    int64_t metrics_dropped_by_host; /* SY_ERROR batches, retry list full, close */
    int64_t write_errors;            /* SY_ERROR answers (write, write_samples, flush) */
    int64_t retry_held;              /* gauge: metrics in the retry list now */
    /* the disk spool (spool.h), when the sink has one */
    int spool;
    int64_t spool_bytes, spool_records, spool_oldest_ts; /* gauges */
    int64_t spool_spooled, spool_replayed, spool_dropped, spool_corrupt; /* counters (values) */
    int64_t spool_lines_spooled, spool_lines_replayed; /* counters (DogStatsD lines) */
} sy_sink_stats;

void sy_sink_stats_get(const sy_sink *s, sy_sink_stats *out);

/* Shutdown: flush(final = 1) on each sink, then runs `base` until every
 * sink has nothing pending and nothing held, or timeout_ms passed.  0 when
 * all drained; otherwise logs what each sink still had and returns -1.
 * Call from the output thread, outside any callback of `base`. */
int sy_sinks_drain(struct event_base *base, sy_sink **sinks, size_t n, uint64_t timeout_ms);

#endif
