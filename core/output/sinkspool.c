/*
 * sinkspool.c - a sink's disk spool (spool.h) as the sink host uses it:
 * when writes go to disk instead of the plugin, replay, spills and
 * take_back at shutdown.
 */
#include "output/sinkhost_internal.h"

#include <stdio.h>
#include <stdlib.h>

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

void sy_sink_spool_put(sy_sink *s, const sy_metric_batch *b)
{
    size_t dropped = 0;
    sy_spool_append(s->spool, b, &dropped);
    if (dropped)
        count_host_drop(s, dropped);
}

/* Raw samples (pass-through) as a record of their own, stamped with the
 * time they were spooled. */
void sy_sink_spool_put_samples(sy_sink *s, const sy_sample_batch *b)
{
    size_t dropped = 0;
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

int sy_sink_spool_start(sy_sink *s, char *err, size_t errlen)
{
    sy_spool_opts so;
    int rc = sy_spool_opts_read(s->name, s->settings, s->nsettings, &so, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
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
    if (!s->spool || s->spool_always || plugin_pending(s) == 0)
        return;
    size_t n = 0;
    if (PLUGIN_HAS(p, take_back))
        n += p->take_back(s->state, keep_cb, s);
    if (PLUGIN_HAS(p, take_back_samples))
        n += p->take_back_samples(s->state, keep_samples_cb, s);
    if (PLUGIN_HAS(p, take_back_lines))
        n += p->take_back_lines(s->state, keep_lines_cb, s);
    if (n)
        sy_log(SY_INFO, "sink '%s': %zu values its queue still held at shutdown went to the "
               "spool", s->name, n);
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

