/*
 * sinkspool.c - a sink's disk spool (spool.h) as the sink host uses it:
 * when writes go to disk instead of the plugin, replay, spills and
 * take_back at shutdown.
 */
#include "output/sinkhost_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "util/clock.h"

/*
 * A sink with `spool = { dir = ... }` keeps in the spool what it cannot
 * deliver: batches written while the plugin reports itself disconnected
 * (SY_STAT_CONNECTED 0) or stuck (a queue that has not moved for
 * SPOOL_STALL_MS: connected to a server that does not read; sooner than
 * plugins/lib/pace.h's PACE_STALL_MS, after which a paced plugin would
 * drop what its queue cannot take), held batches once that happens, and whatever the
 * output spills (a flush the sink fell behind on, what is left at
 * shutdown).  Once the spool holds anything, newer batches are appended
 * behind it, so order is kept.  Replay runs every REPLAY_MS: when the
 * plugin has nothing pending it commits what was handed out before (the
 * position file moves, replayed segments go), then hands out at most
 * REPLAY_VALUES values, stopping at the first SY_RETRY.  Live flushes meet
 * the disk, not the plugin, meanwhile, so replay never holds them back,
 * and the bound per turn keeps the output loop free for other sinks.
 */
#define REPLAY_MS 10
#define REPLAY_VALUES 16384
/* mode = "always": every flush comes through replay, so a turn may hand
 * out more (a 1M-value flush in about 8 turns); see the README's figures */
#define REPLAY_VALUES_ALWAYS 131072
#define SPOOL_STALL_MS 1000

static void spool_detach(sy_sink *s);

/* A queue that holds something and sent nothing for SPOOL_STALL_MS.  The
 * clock moves only when looked at: the first look after a quiet spell
 * sees the queue as it was left (not moved since). */
static int spool_stalled(sy_sink *s)
{
    int64_t sent = atomic_load_explicit(&s->stats[SY_STAT_SENT], memory_order_relaxed);
    int64_t queued = atomic_load_explicit(&s->stats[SY_STAT_QUEUED], memory_order_relaxed);
    uint64_t now = sy_mono_ms();
    if (sent != s->sent_seen || queued == 0 || !s->moved_ms) {
        s->sent_seen = sent;
        s->moved_ms = now;
        return 0;
    }
    return now - s->moved_ms >= SPOOL_STALL_MS;
}

int sy_sink_spool_route(sy_sink *s)
{
    if (!s->spool)
        return 0;
    if (s->spool_always || sy_spool_has_records(s->spool))
        return 1;
    if (s->connected_seen &&
        atomic_load_explicit(&s->stats[SY_STAT_CONNECTED], memory_order_relaxed) == 0)
        return 1;
    return spool_stalled(s);
}

/*
 * A batch is about to go to the spool rather than to the plugin.  When
 * nothing is left in the spool to hand out and the plugin still holds
 * data, that data is older than the batch: the end of the spool is marked
 * (sy_spool_mark), so that what the plugin hands back at shutdown is put
 * there, ahead of this batch and of everything spooled after it.  Replay
 * order is then flush order.  (With records left to hand out, the plugin
 * holds only what replay gave it, older than those records, or live data
 * given when the spool was empty, after which a mark was set.)
 */
static void divert(sy_sink *s)
{
    if (s->spool_always || s->spool_inserting || sy_spool_has_records(s->spool))
        return;
    if (plugin_pending(s))
        sy_spool_mark(s->spool);
}

void sy_sink_spool_put(sy_sink *s, const sy_metric_batch *b)
{
    size_t dropped = 0;
    divert(s);
    sy_spool_append(s->spool, b, &dropped);
    if (dropped)
        count_host_drop(s, dropped);
}

/* Raw samples (pass-through) as a record of their own, stamped with the
 * time they were spooled. */
void sy_sink_spool_put_samples(sy_sink *s, const sy_sample_batch *b)
{
    size_t dropped = 0;
    divert(s);
    sy_spool_append_samples(s->spool, b, (int64_t)(sy_wall_ms() / 1000), &dropped);
    if (dropped)
        count_host_drop(s, dropped);
}

/* Raw lines (DogStatsD events and service checks, write_lines) as a
 * record of their own, behind what the host holds. */
void sy_sink_spool_put_lines(sy_sink *s, const char *const *lines, const uint32_t *lens, size_t n)
{
    size_t dropped = 0;
    sy_sink_spill_held(s);
    sy_spool_append_lines(s->spool, lines, lens, n, (int64_t)(sy_wall_ms() / 1000), &dropped);
    if (dropped)
        count_host_drop(s, dropped);
}

/* Held batches go to the spool, oldest first, samples and metrics alike
 * (in their order). */
void sy_sink_spill_held(sy_sink *s)
{
    if (!s->spool)
        return;
    while (s->held_head) {
        held *h = s->held_head;
        if (h->is_samples)
            sy_sink_spool_put_samples(s, &h->b.s);
        else
            sy_sink_spool_put(s, &h->b.m);
        s->held_head = h->next;
        s->held_count -= h->count;
        free(h);
    }
    s->held_tail = NULL;
    atomic_store_explicit(&s->retry_held, (int64_t)s->held_count, memory_order_relaxed);
}

/* A spooled record of raw lines, offered to write_lines (ABI 1.3). */
static sy_status offer_lines(sy_sink *s, size_t *n)
{
    const sy_sink_plugin *p = s->plugin;
    const char *const *lines;
    const uint32_t *lens;
    sy_spool_peeked_lines(s->spool, &lines, &lens, n);
    if (p->struct_size < offsetof(sy_sink_plugin, write_lines) + sizeof(p->write_lines) ||
        !p->write_lines)
        return SY_ERROR; /* the plugin changed since they were spooled */
    return p->write_lines(s->state, lines, lens, *n);
}

static void replay_cb(evutil_socket_t fd, short what, void *arg)
{
    sy_sink *s = arg;
    sy_spool_tick(s->spool, sy_mono_ms());
    spool_stalled(s); /* keeps the stall clock current between writes */
    if (s->final_requested || s->held_head || plugin_pending(s) != 0)
        return;
    /* nothing pending: what was handed out has left the plugin */
    sy_spool_commit(s->spool);
    if (s->spool_removed && sy_spool_empty(s->spool)) {
        spool_detach(s);
        return;
    }
    if (s->connected_seen &&
        atomic_load_explicit(&s->stats[SY_STAT_CONNECTED], memory_order_relaxed) == 0)
        return;
    size_t values = 0, max = s->spool_always ? REPLAY_VALUES_ALWAYS : REPLAY_VALUES;
    sy_metric_batch b;
    sy_sample_batch sb;
    int kind;
    while (values < max && (kind = sy_spool_peek_any(s->spool, &b, &sb)) != 0) {
        int is_samples = kind == 2;
        size_t n = is_samples ? sb.count : b.count;
        sy_status r = kind == 3 ? offer_lines(s, &n)
                                : sy_sink_offer(s, is_samples,
                                                is_samples ? (const void *)&sb : (const void *)&b);
        if (r == SY_RETRY)
            break;
        if (r != SY_OK && r != SY_SKIP)
            sy_sink_write_failed(s, kind == 3 ? "write_lines (replay)" : is_samples
                                 ? "write_samples (replay)" : "write (replay)", n);
        values += n;
        sy_spool_advance(s->spool);
    }
}

/* The sink goes on without its spool (a reload removed it, and it is
 * replayed). */
static void spool_detach(sy_sink *s)
{
    sy_log(SY_INFO, "sink '%s': the spool a reload removed is replayed; it is closed",
           s->name);
    sy_spool_commit(s->spool);
    event_free(s->replay_ev);
    s->replay_ev = NULL;
    sy_spool_close(s->spool);
    s->spool = NULL;
    s->spool_always = 0;
    s->spool_removed = 0;
}

static int spool_open_with(sy_sink *s, const sy_spool_opts *o, char *err, size_t errlen);

int sy_sink_spool_start(sy_sink *s, char *err, size_t errlen)
{
    sy_spool_opts so;
    int rc = sy_spool_opts_read(s->name, s->settings, s->nsettings, &so, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    return spool_open_with(s, &so, err, errlen);
}

static int spool_open_with(sy_sink *s, const sy_spool_opts *o, char *err, size_t errlen)
{
    sy_spool_opts so = *o;
    char serr[512];
    s->spool = sy_spool_open(s->name, &so, serr, sizeof serr);
    if (!s->spool) {
        snprintf(err, errlen, "sink '%s': %s", s->name, serr);
        return -1;
    }
    s->spool_always = so.always;
    s->replay_ev = event_new(s->base, -1, EV_PERSIST, replay_cb, s);
    struct timeval tv = ms_tv(REPLAY_MS);
    if (!s->replay_ev || event_add(s->replay_ev, &tv) < 0) {
        snprintf(err, errlen, "sink '%s': out of memory", s->name);
        return -1;
    }
    return 0;
}

static void keep_cb(void *ctx, const sy_metric_batch *b)
{
    sy_sink_spool_put(ctx, b);
}

static void keep_samples_cb(void *ctx, const sy_sample_batch *b)
{
    sy_sink_spool_put_samples(ctx, b);
}

static void keep_lines_cb(void *ctx, const char *const *lines, const uint32_t *lens, size_t n)
{
    sy_sink_spool_put_lines(ctx, lines, lens, n);
}

#define PLUGIN_HAS(p, member) \
    ((p)->struct_size >= offsetof(sy_sink_plugin, member) + sizeof((p)->member) && (p)->member)

/* Shutdown, time is up: what the plugin's own queue still holds goes to
 * the spool when the plugin can hand it back (ABI 1.2 take_back for
 * flushed values, 1.5 take_back_samples for raw samples, 1.6
 * take_back_lines for DogStatsD lines). */
void sy_sink_spool_take_back(sy_sink *s)
{
    const sy_sink_plugin *p = s->plugin;
    /* write-through: what the plugin holds came from the spool and is
     * still there (the position moves only once it was delivered) */
    if (!s->spool || s->spool_always || s->taken_back || !s->final_requested ||
        plugin_pending(s) == 0)
        return;
    if (!PLUGIN_HAS(p, take_back) && !PLUGIN_HAS(p, take_back_samples) &&
        !PLUGIN_HAS(p, take_back_lines))
        return;
    s->taken_back = 1;
    size_t pending = plugin_pending(s);
    if (!sy_spool_has_records(s->spool))
        sy_spool_mark(s->spool); /* the end of the spool */
    if (!sy_spool_marked(s->spool)) {
        if (sy_spool_shared(s->spool)) {
            /* a reload's replacement shares the spool and replays it: the
             * order against what it spooled is not known, keep it all */
            sy_log(SY_INFO, "sink '%s': its queue's values go to the end of the spool it "
                   "shares with its replacement", s->name);
        } else {
            /* replay handed out records since the mark, so the plugin
             * holds only what replay gave it since the last commit: still
             * in the spool, from where replay resumes */
            sy_log(SY_INFO, "sink '%s': the %zu values its queue still held at shutdown came "
                   "from the spool and stay there (replayed again from its last commit)",
                   s->name, pending);
            s->pending_in_spool = 1;
            return;
        }
    } else if (sy_spool_insert_begin(s->spool) == 0) {
        s->spool_inserting = 1;
    }
    size_t n = 0;
    if (PLUGIN_HAS(p, take_back))
        n += p->take_back(s->state, keep_cb, s);
    if (PLUGIN_HAS(p, take_back_samples))
        n += p->take_back_samples(s->state, keep_samples_cb, s);
    if (PLUGIN_HAS(p, take_back_lines))
        n += p->take_back_lines(s->state, keep_lines_cb, s);
    if (s->spool_inserting) {
        sy_spool_insert_end(s->spool);
        s->spool_inserting = 0;
        if (n)
            sy_log(SY_INFO, "sink '%s': %zu values, samples and lines its queue still held at "
                   "shutdown went to the spool, ahead of what was spooled after them", s->name, n);
    } else if (n) {
        sy_log(SY_INFO, "sink '%s': %zu values, samples and lines its queue still held at "
               "shutdown went to the spool", s->name, n);
    }
}

int sy_sink_stuck(sy_sink *s)
{
    return spool_stalled(s);
}

int sy_sink_spooled(const sy_sink *s)
{
    return s->spool != NULL;
}

void sy_sink_spill(sy_sink *s, const sy_metric_batch *b)
{
    if (!s->spool) {
        sy_sink_write(s, b);
        return;
    }
    sy_sink_spill_held(s);
    if (b && b->count)
        sy_sink_spool_put(s, b);
}

/* A write-through sink (spool.mode = "always") whose spool still holds
 * what a connected plugin can take: replay goes on at shutdown before its
 * final flush (a plugin takes nothing after that). */
int sy_sink_spool_draining(sy_sink *s)
{
    return s->spool_always && !s->final_requested && sy_spool_has_records(s->spool) &&
           !(s->connected_seen &&
             atomic_load_explicit(&s->stats[SY_STAT_CONNECTED], memory_order_relaxed) == 0);
}


/*
 * A reload that changes only a sink's spool settings keeps the sink (its
 * connection and queue) and applies them here:
 *   - a spool added: opened, used from now on;
 *   - the same dir: the new settings apply at once (a lower maxBytes is
 *     met per whenFull, counted and logged);
 *   - another dir: the old spool's segments are renamed into the new one,
 *     with their order and replay position (nothing is replayed twice or
 *     lost); refused, keeping the old dir, when the new one holds segments
 *     of its own or is on another filesystem;
 *   - the spool removed: what it holds is still replayed (and new data
 *     still goes behind it, in order) until it is empty; then it is closed.
 */
void sy_sink_spool_settings(sy_sink *s, const sy_setting *set, size_t n)
{
    sy_spool_opts no;
    char err[512];
    int rc = sy_spool_opts_read(s->name, set, n, &no, err, sizeof err);
    if (rc < 0) { /* the reload's checks refuse this first */
        sy_log(SY_ERR, "reload: %s; the spool keeps its settings", err);
        return;
    }
    if (rc == 1) {
        if (!s->spool)
            return;
        if (sy_spool_empty(s->spool)) {
            spool_detach(s);
            return;
        }
        s->spool_removed = 1;
        sy_spool_stats st;
        sy_spool_stats_get(s->spool, &st);
        sy_log(SY_WARN, "reload: sink '%s': spool removed from the config, but it holds %lld "
               "records (%lld bytes): they are replayed first, with new data behind them, "
               "and then it is closed (at a restart before that, they stay on disk for a "
               "config that names the spool again)", s->name, (long long)st.records,
               (long long)st.bytes);
        return;
    }
    if (!s->spool) {
        if (spool_open_with(s, &no, err, sizeof err) < 0) {
            sy_log(SY_ERR, "reload: sink '%s': the spool could not be added: %s", s->name, err);
            if (s->replay_ev) {
                event_free(s->replay_ev);
                s->replay_ev = NULL;
            }
            sy_spool_close(s->spool);
            s->spool = NULL;
            return;
        }
        sy_log(SY_INFO, "reload: sink '%s': spool added (%s/%s), the sink kept", s->name, no.dir,
               s->name);
        return;
    }
    s->spool_removed = 0;
    const sy_spool_opts *oo = sy_spool_opts_of(s->spool);
    if (strcmp(oo->dir, no.dir) != 0) {
        char serr[512];
        sy_spool *ns = sy_spool_open(s->name, &no, serr, sizeof serr);
        int64_t moved = ns ? sy_spool_adopt(ns, s->spool, serr, sizeof serr) : -1;
        if (moved < 0) {
            sy_log(SY_ERR, "reload: sink '%s': spool.dir change from %s to %s refused: %s; the "
                   "spool stays in %s/%s (its other settings apply; move its .seg files and "
                   "position by hand before a restart)", s->name, oo->dir, no.dir, serr,
                   oo->dir, s->name);
            if (ns)
                sy_spool_close(ns);
            snprintf(no.dir, sizeof no.dir, "%s", oo->dir);
        } else {
            sy_log(SY_INFO, "reload: sink '%s': spool moved from %s/%s to %s/%s (%lld segments "
                   "renamed, replay resumes where it was)", s->name, oo->dir, s->name, no.dir,
                   s->name, (long long)moved);
            sy_spool_close(s->spool);
            s->spool = ns;
        }
    }
    uint64_t dropped = sy_spool_set_opts(s->spool, &no);
    if (dropped)
        count_host_drop(s, dropped);
    s->spool_always = no.always;
    sy_log(SY_INFO, "reload: sink '%s': spool settings applied (dir %s, maxBytes %llu, "
           "segmentBytes %llu, fsync %s, whenFull %s, mode %s), the sink kept", s->name, no.dir,
           (unsigned long long)no.max_bytes, (unsigned long long)no.segment_bytes,
           no.fsync == SY_FSYNC_NEVER ? "never" : no.fsync == SY_FSYNC_ALWAYS ? "always" : "interval",
           no.drop_newest ? "dropNewest" : "dropOldest", no.always ? "always" : "fallback");
}
