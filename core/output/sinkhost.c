/*
 * sinkhost.c - runs sink plugins (plugin.c loads them): checks an
 * instance's settings, gives it its sy_host_api, and turns the plugin's
 * return codes into counters and a bounded retry list.  See sinkhost.h
 * for the rules; the disk spool's part is in sinkspool.c.
 */
#include "output/sinkhost.h"
#include "output/sinkhost_internal.h"
#include "output/settings.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "admin/inspect.h"
#include "util/clock.h"
#include "util/edit.h"
#include "util/log.h"
#include "util/numfmt.h"
#include "output/spool.h"

#define RETRY_INTERVAL_MS 100
#define RETRY_MAX_DEFAULT 1000000
#define DRAIN_CHECK_MS 10

/* ------------------------------------------------------------------ */
/* Instances                                                            */
/* ------------------------------------------------------------------ */

struct sy_timer {
    struct sy_timer *prev, *next;
    struct sy_sink *sink;
    struct event *ev;
    void (*cb)(void *arg);
    void *arg;
};

struct sy_watch {
    struct sy_watch *prev, *next;
    struct sy_sink *sink;
    struct event *ev;
    int fd;
    int events;
    void (*cb)(int fd, int events, void *arg);
    void *arg;
};

/* --- the sy_host_api members --- */

static void host_log(sy_host *h, int level, const char *fmt, ...)
{
    sy_sink *s = h->sink;
    char buf[1024];
    va_list ap;

    if (level < SY_LOG_ERROR)
        level = SY_LOG_ERROR;
    if (level > SY_LOG_DEBUG)
        level = SY_LOG_DEBUG;
    int keep = level <= SY_LOG_WARN;
    if (!keep && (level > sy_log_level || s->checking))
        return; /* a check shows only what is wrong or doubtful */
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (keep)
        snprintf(s->last_msg, sizeof(s->last_msg), "%s", buf);
    sy_log(level, "sink '%s': %s", s->name, buf);
}

static const char *host_instance_name(sy_host *h)
{
    return h->sink->name;
}

static const sy_setting *host_find(sy_host *h, const char *key)
{
    return key ? sy_settings_find(h->sink->settings, h->sink->nsettings, key) : NULL;
}

/* In a check the plugin's own message (which names the key) is the one
 * reported; this one is kept as the fallback when the plugin gives none. */
static int wrong_type(sy_host *h, const sy_setting *st, const char *want)
{
    sy_sink *s = h->sink;
    if (s->checking)
        snprintf(s->last_msg, sizeof(s->last_msg), "setting '%s' must be %s, not %s", st->key,
                 want, sy_setting_type_name(st->type));
    else
        sy_log(SY_ERR, "sink '%s': setting '%s' must be %s, not %s", s->name, st->key, want,
               sy_setting_type_name(st->type));
    return -1;
}

static int host_setting_string(sy_host *h, const char *key, const char *dflt, const char **out)
{
    const sy_setting *st = host_find(h, key);
    *out = dflt;
    if (!st)
        return 1;
    if (st->type != SY_SET_STRING || !st->str)
        return wrong_type(h, st, "a string");
    *out = st->str;
    return 0;
}

static int host_setting_int(sy_host *h, const char *key, int64_t dflt, int64_t *out)
{
    const sy_setting *st = host_find(h, key);
    *out = dflt;
    if (!st)
        return 1;
    if (st->type == SY_SET_NUMBER && !sy_setting_is_whole(st->num)) {
        char num[SY_FMT_DOUBLE_MAX];
        sy_fmt_double(st->num, num);
        if (h->sink->checking)
            snprintf(h->sink->last_msg, sizeof(h->sink->last_msg),
                     "setting '%s' must be a whole number, not %s", st->key, num);
        else
            sy_log(SY_ERR, "sink '%s': setting '%s' must be a whole number, not %s",
                   h->sink->name, st->key, num);
        return -1;
    }
    if (st->type != SY_SET_NUMBER)
        return wrong_type(h, st, "a whole number");
    *out = (int64_t)st->num;
    return 0;
}

static int host_setting_number(sy_host *h, const char *key, double dflt, double *out)
{
    const sy_setting *st = host_find(h, key);
    *out = dflt;
    if (!st)
        return 1;
    if (st->type != SY_SET_NUMBER)
        return wrong_type(h, st, "a number");
    *out = st->num;
    return 0;
}

static int host_setting_bool(sy_host *h, const char *key, int dflt, int *out)
{
    const sy_setting *st = host_find(h, key);
    *out = dflt;
    if (!st)
        return 1;
    if (st->type != SY_SET_BOOL)
        return wrong_type(h, st, "a boolean (true or false)");
    *out = st->boolean ? 1 : 0;
    return 0;
}

/* Not an error when the key is absent or not a list: a plugin may accept
 * either one string or a list, so the plugin reports what it needs. */
static int host_setting_list_len(sy_host *h, const char *key)
{
    const sy_setting *st = host_find(h, key);
    if (!st || st->type != SY_SET_LIST)
        return -1;
    return st->list ? st->list_len : 0;
}

static const char *host_setting_list_string(sy_host *h, const char *key, int i)
{
    const sy_setting *st = host_find(h, key);
    if (!st || st->type != SY_SET_LIST || !st->list || i < 0 || i >= st->list_len)
        return NULL;
    return st->list[i];
}

static void timer_trampoline(evutil_socket_t fd, short what, void *arg)
{
    sy_timer *t = arg;
    t->cb(t->arg);
}

static sy_timer *host_timer_new(sy_host *h, void (*cb)(void *arg), void *arg)
{
    sy_sink *s = h->sink;
    if (!cb || !s->base) /* a check has no loop: nothing may be scheduled */
        return NULL;
    sy_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ev = evtimer_new(s->base, timer_trampoline, t);
    if (!t->ev) {
        free(t);
        return NULL;
    }
    t->sink = s;
    t->cb = cb;
    t->arg = arg;
    t->next = s->timers;
    if (s->timers)
        s->timers->prev = t;
    s->timers = t;
    return t;
}

static void host_timer_start(sy_timer *t, uint64_t after_ms)
{
    if (!t)
        return;
    struct timeval tv = ms_tv(after_ms);
    evtimer_add(t->ev, &tv);
}

static void host_timer_stop(sy_timer *t)
{
    if (t)
        evtimer_del(t->ev);
}

static void host_timer_free(sy_timer *t)
{
    if (!t)
        return;
    event_free(t->ev);
    if (t->prev)
        t->prev->next = t->next;
    else
        t->sink->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
}

static void watch_trampoline(evutil_socket_t fd, short what, void *arg)
{
    sy_watch *w = arg;
    int ev = 0;
    if (what & EV_READ)
        ev |= SY_WATCH_READ;
    if (what & EV_WRITE)
        ev |= SY_WATCH_WRITE;
    w->cb(w->fd, ev, w->arg);
}

static sy_watch *host_watch_new(sy_host *h, int fd, void (*cb)(int fd, int events, void *arg),
                                void *arg)
{
    sy_sink *s = h->sink;
    if (fd < 0 || !cb || !s->base)
        return NULL;
    sy_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->ev = event_new(s->base, fd, EV_PERSIST, watch_trampoline, w);
    if (!w->ev) {
        free(w);
        return NULL;
    }
    w->sink = s;
    w->fd = fd;
    w->cb = cb;
    w->arg = arg;
    w->next = s->watches;
    if (s->watches)
        s->watches->prev = w;
    s->watches = w;
    return w;
}

/* libevent cannot change the events of a pending event, so the event is
 * removed and re-assigned; both are allowed from inside its own callback. */
static void host_watch_set(sy_watch *w, int events)
{
    if (!w)
        return;
    events &= SY_WATCH_READ | SY_WATCH_WRITE;
    if (events == w->events)
        return;
    event_del(w->ev);
    short flags = EV_PERSIST;
    if (events & SY_WATCH_READ)
        flags |= EV_READ;
    if (events & SY_WATCH_WRITE)
        flags |= EV_WRITE;
    event_assign(w->ev, w->sink->base, w->fd, flags, watch_trampoline, w);
    if (events && event_add(w->ev, NULL) != 0) {
        sy_log(SY_ERR, "sink '%s': cannot watch fd %d", w->sink->name, w->fd);
        events = 0;
    }
    w->events = events;
}

static void host_watch_free(sy_watch *w)
{
    if (!w)
        return;
    event_free(w->ev);
    if (w->prev)
        w->prev->next = w->next;
    else
        w->sink->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    free(w);
}

static struct event_base *host_event_base(sy_host *h)
{
    return h->sink->base;
}

static uint64_t host_now_ms(sy_host *h)
{
    return sy_wall_ms();
}

static uint64_t host_monotonic_ms(sy_host *h)
{
    return sy_mono_ms();
}

static void host_stat_add(sy_host *h, int stat, int64_t delta)
{
    if (stat >= 0 && stat < SY_STAT_COUNT)
        atomic_fetch_add_explicit(&h->sink->stats[stat], delta, memory_order_relaxed);
}

static void host_stat_set(sy_host *h, int stat, int64_t value)
{
    if (stat == SY_STAT_CONNECTED)
        h->sink->connected_seen = 1;
    if (stat >= 0 && stat < SY_STAT_COUNT)
        atomic_store_explicit(&h->sink->stats[stat], value, memory_order_relaxed);
}

/* The console's escaping (core/admin/inspect.c), for sinks people read. */
static size_t host_escape_text(const char *s, size_t len, char *buf, size_t cap, size_t *used)
{
    if (cap < SY_INSPECT_ESCAPE_MAX_CHAR) {
        *used = 0;
        return 0;
    }
    return sy_inspect_escape(buf, cap, s, len, SY_ESC_BYTES, used, NULL);
}

static const sy_host_api host_api = {
    .abi_major = SY_SINK_ABI_MAJOR,
    .abi_minor = SY_SINK_ABI_MINOR,
    .struct_size = sizeof(sy_host_api),
    .log = host_log,
    .instance_name = host_instance_name,
    .setting_string = host_setting_string,
    .setting_int = host_setting_int,
    .setting_number = host_setting_number,
    .setting_bool = host_setting_bool,
    .setting_list_len = host_setting_list_len,
    .setting_list_string = host_setting_list_string,
    .timer_new = host_timer_new,
    .timer_start = host_timer_start,
    .timer_stop = host_timer_stop,
    .timer_free = host_timer_free,
    .watch_new = host_watch_new,
    .watch_set = host_watch_set,
    .watch_free = host_watch_free,
    .event_base = host_event_base,
    .now_ms = host_now_ms,
    .monotonic_ms = host_monotonic_ms,
    .stat_add = host_stat_add,
    .stat_set = host_stat_set,
    .format_number = sy_fmt_double,
    .escape_text = host_escape_text,
};

/* --- return codes, the retry list --- */

static const char *last_reason(sy_sink *s)
{
    return s->last_msg[0] ? s->last_msg : "the plugin gave no reason";
}

void sy_sink_write_failed(sy_sink *s, const char *what, size_t n)
{
    atomic_fetch_add_explicit(&s->write_errors, 1, memory_order_relaxed);
    count_host_drop(s, n);
    sy_log_limited(&s->err_rl, SY_ERR, "sink '%s': %s failed, %zu dropped: %s", s->name, what,
                   n, last_reason(s));
}

sy_status sy_sink_offer(sy_sink *s, int is_samples, const void *batch)
{
    if (is_samples)
        return s->plugin->write_samples ? s->plugin->write_samples(s->state, batch) : SY_SKIP;
    return s->plugin->write(s->state, batch);
}

static size_t batch_count(int is_samples, const void *batch)
{
    return is_samples ? ((const sy_sample_batch *)batch)->count
                      : ((const sy_metric_batch *)batch)->count;
}

static int add_size(size_t *acc, size_t v)
{
    return __builtin_add_overflow(*acc, v, acc) ? -1 : 0;
}

/* Copies the first `keep` entries of a borrowed batch, strings included. */
static held *held_copy(int is_samples, const void *batch, size_t keep)
{
    size_t size = sizeof(held), elem = is_samples ? sizeof(sy_sample) : sizeof(sy_metric);
    const int64_t *ts = is_samples ? ((const sy_sample_batch *)batch)->timestamps_ms : NULL;
    size_t arr;
    if (ts)
        elem += sizeof(int64_t); /* the samples' times follow the samples */
    if (__builtin_mul_overflow(keep, elem, &arr) || add_size(&size, arr))
        return NULL;
    for (size_t i = 0; i < keep; i++) {
        if (is_samples) {
            const sy_sample *x = &((const sy_sample_batch *)batch)->samples[i];
            if (add_size(&size, (size_t)x->name_len + 1) || add_size(&size, (size_t)x->text_len + 1) ||
                add_size(&size, (size_t)x->tags_len + 1))
                return NULL;
        } else {
            const sy_metric *x = &((const sy_metric_batch *)batch)->metrics[i];
            if (add_size(&size, (size_t)x->name_len + 1))
                return NULL;
        }
    }
    held *h = malloc(size);
    if (!h)
        return NULL;
    h->next = NULL;
    h->is_samples = is_samples;
    h->count = keep;
    char *strings = (char *)(h + 1) + arr;
    if (is_samples) {
        const sy_sample_batch *b = batch;
        sy_sample *out = (sy_sample *)(h + 1);
        for (size_t i = 0; i < keep; i++) {
            out[i] = b->samples[i];
            memcpy(strings, b->samples[i].name, b->samples[i].name_len);
            strings[b->samples[i].name_len] = '\0';
            out[i].name = strings;
            strings += b->samples[i].name_len + 1;
            memcpy(strings, b->samples[i].text, b->samples[i].text_len);
            strings[b->samples[i].text_len] = '\0';
            out[i].text = strings;
            strings += b->samples[i].text_len + 1;
            /* the raw tags are borrowed too */
            if (b->samples[i].tags_len)
                memcpy(strings, b->samples[i].tags, b->samples[i].tags_len);
            strings[b->samples[i].tags_len] = '\0';
            out[i].tags = strings;
            strings += b->samples[i].tags_len + 1;
        }
        h->b.s.samples = out;
        h->b.s.count = keep;
        h->b.s.timestamps_ms = NULL;
        if (ts) {
            int64_t *tcopy = (int64_t *)(out + keep);
            memcpy(tcopy, ts, keep * sizeof(int64_t));
            h->b.s.timestamps_ms = tcopy;
        }
    } else {
        const sy_metric_batch *b = batch;
        sy_metric *out = (sy_metric *)(h + 1);
        for (size_t i = 0; i < keep; i++) {
            out[i] = b->metrics[i];
            memcpy(strings, b->metrics[i].name, b->metrics[i].name_len);
            strings[b->metrics[i].name_len] = '\0';
            out[i].name = strings;
            strings += b->metrics[i].name_len + 1;
        }
        h->b.m.metrics = out;
        h->b.m.count = keep;
        h->b.m.timestamp = b->timestamp;
    }
    return h;
}

/* Appends a copy of the batch to the retry list, as much of it as the
 * retryMaxMetrics bound allows; the rest is counted as dropped. */
static void hold(sy_sink *s, int is_samples, const void *batch)
{
    size_t count = batch_count(is_samples, batch);
    size_t room = s->retry_max > s->held_count ? s->retry_max - s->held_count : 0;
    size_t keep = count < room ? count : room;
    held *h = keep ? held_copy(is_samples, batch, keep) : NULL;
    if (keep && !h) {
        sy_log_limited(&s->drop_rl, SY_ERR, "sink '%s': out of memory holding a batch for retry",
                       s->name);
        keep = 0;
    }
    if (h) {
        if (s->held_tail)
            s->held_tail->next = h;
        else
            s->held_head = h;
        s->held_tail = h;
        s->held_count += keep;
        atomic_store_explicit(&s->retry_held, (int64_t)s->held_count, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->batches_retried, 1, memory_order_relaxed);
    }
    if (count > keep) {
        count_host_drop(s, count - keep);
        sy_log_limited(&s->drop_rl, SY_WARN,
                       "sink '%s': retry list full (retryMaxMetrics = %zu), %zu dropped",
                       s->name, s->retry_max, count - keep);
    }
}

/* Offers held batches oldest first until the plugin says SY_RETRY again. */
static void offer_held(sy_sink *s)
{
    if (sy_sink_spool_route(s))
        sy_sink_spill_held(s);
    while (s->held_head) {
        held *h = s->held_head;
        sy_status r = sy_sink_offer(s, h->is_samples, &h->b);
        if (r == SY_RETRY)
            break;
        if (r != SY_OK && r != SY_SKIP)
            sy_sink_write_failed(s, h->is_samples ? "write_samples" : "write", h->count);
        s->held_head = h->next;
        if (!s->held_head)
            s->held_tail = NULL;
        s->held_count -= h->count;
        free(h);
    }
    atomic_store_explicit(&s->retry_held, (int64_t)s->held_count, memory_order_relaxed);
}

static void arm_retry(sy_sink *s)
{
    if ((s->held_head || s->flush_owed) && !evtimer_pending(s->retry_ev, NULL)) {
        struct timeval tv = ms_tv(RETRY_INTERVAL_MS);
        evtimer_add(s->retry_ev, &tv);
    }
}

static void call_flush(sy_sink *s, int final)
{
    sy_status r = s->plugin->flush(s->state, final);
    if (r == SY_RETRY) {
        s->flush_owed = 1;
        return;
    }
    if (final)
        s->final_done = 1;
    if (r != SY_OK && r != SY_SKIP) {
        atomic_fetch_add_explicit(&s->write_errors, 1, memory_order_relaxed);
        sy_log_limited(&s->err_rl, SY_ERR, "sink '%s': flush failed: %s", s->name,
                       last_reason(s));
    }
}

/* Offers what is held and pays an owed flush once nothing is held. */
static void service(sy_sink *s)
{
    offer_held(s);
    if (!s->held_head && s->flush_owed && !s->final_done) {
        s->flush_owed = 0;
        call_flush(s, s->final_requested);
    }
    arm_retry(s);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    service(arg);
}

static void write_any(sy_sink *s, int is_samples, const void *batch)
{
    if (!batch || batch_count(is_samples, batch) == 0)
        return;
    if (sy_sink_spool_route(s)) {
        sy_sink_spill_held(s);
        if (is_samples)
            sy_sink_spool_put_samples(s, batch);
        else
            sy_sink_spool_put(s, batch);
        return;
    }
    if (s->held_head)
        offer_held(s);
    if (s->held_head) {
        /* keep the order: newer data waits behind older data */
        hold(s, is_samples, batch);
        arm_retry(s);
        return;
    }
    sy_status r = sy_sink_offer(s, is_samples, batch);
    if (r == SY_RETRY) {
        hold(s, is_samples, batch);
        arm_retry(s);
    } else if (r != SY_OK && r != SY_SKIP) {
        sy_sink_write_failed(s, is_samples ? "write_samples" : "write",
                             batch_count(is_samples, batch));
    }
}

void sy_sink_write(sy_sink *s, const sy_metric_batch *batch)
{
    write_any(s, 0, batch);
}

/* Whether the plugin asked for the clients' sample times (ABI 1.4). */
static int plugin_takes_timestamps(const sy_sink_plugin *p)
{
    return p->struct_size >= offsetof(sy_sink_plugin, features) + sizeof(p->features) &&
           (p->features & SY_SINK_FEATURE_TIMESTAMPS);
}

int sy_sink_plugin_takes_timestamps(const sy_sink_plugin *p) { return plugin_takes_timestamps(p); }

void sy_sink_write_samples(sy_sink *s, const sy_sample_batch *batch)
{
    sy_sample_batch b = *batch;
    if (!plugin_takes_timestamps(s->plugin))
        b.timestamps_ms = NULL; /* statsd-exact sinks, and plugins built before 1.4 */
    write_any(s, 1, &b);
}

void sy_sink_flush(sy_sink *s, int final)
{
    if (s->final_done)
        return;
    if (final)
        s->final_requested = 1;
    offer_held(s);
    if (s->held_head) {
        /* Let the plugin push out what it took (its queue may need that to
         * make room), and flush again once the held batches went through. */
        call_flush(s, 0);
        s->flush_owed = 1;
    } else {
        s->flush_owed = 0;
        call_flush(s, s->final_requested);
    }
    arm_retry(s);
}

size_t sy_sink_held(const sy_sink *s) { return s->held_count; }

void sy_sink_retry_now(sy_sink *s) { service(s); }

void sy_sink_drop(sy_sink *s, size_t n, const char *why)
{
    if (!n)
        return;
    count_host_drop(s, n);
    sy_log_limited(&s->drop_rl, SY_WARN, "sink '%s': %zu dropped: %s", s->name, n, why);
}

size_t sy_sink_pending(sy_sink *s)
{
    return plugin_pending(s) + s->held_count;
}

const char *sy_sink_name(const sy_sink *s)
{
    return s->name;
}

const sy_sink_plugin *sy_sink_plugin_of(const sy_sink *s)
{
    return s->plugin;
}

void sy_sink_stats_get(const sy_sink *s, sy_sink_stats *o)
{
    sy_sink *m = (sy_sink *)s; /* atomic loads take non-const pointers */
#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
    o->sent = LD(m->stats[SY_STAT_SENT]);
    o->dropped = LD(m->stats[SY_STAT_DROPPED]);
    o->errors = LD(m->stats[SY_STAT_ERRORS]);
    o->reconnects = LD(m->stats[SY_STAT_RECONNECTS]);
    o->queued = LD(m->stats[SY_STAT_QUEUED]);
    o->queued_bytes = LD(m->stats[SY_STAT_QUEUED_BYTES]);
    o->connected = LD(m->stats[SY_STAT_CONNECTED]);
    o->adjusted = LD(m->stats[SY_STAT_ADJUSTED]);
    o->batches_retried = LD(m->batches_retried);
    o->metrics_dropped_by_host = LD(m->dropped_by_host);
    o->write_errors = LD(m->write_errors);
    o->retry_held = LD(m->retry_held);
#undef LD
    o->spool = s->spool != NULL;
    o->spool_bytes = o->spool_records = o->spool_oldest_ts = 0;
    o->spool_spooled = o->spool_replayed = o->spool_dropped = o->spool_corrupt = 0;
    o->spool_lines_spooled = o->spool_lines_replayed = 0;
    if (s->spool) {
        sy_spool_stats ss;
        sy_spool_stats_get(s->spool, &ss);
        o->spool_bytes = ss.bytes;
        o->spool_records = ss.records;
        o->spool_oldest_ts = ss.oldest_ts;
        o->spool_spooled = ss.spooled;
        o->spool_replayed = ss.replayed;
        o->spool_dropped = ss.dropped;
        o->spool_corrupt = ss.corrupt;
        o->spool_lines_spooled = ss.lines_spooled;
        o->spool_lines_replayed = ss.lines_replayed;
    }
}

/* Frees everything but the plugin state; used by close and by a failed
 * open. */
static void sink_free(sy_sink *s)
{
    size_t nt = 0, nw = 0;
    while (s->timers) {
        host_timer_free(s->timers);
        nt++;
    }
    while (s->watches) {
        host_watch_free(s->watches);
        nw++;
    }
    if (nt || nw)
        sy_log(SY_DEBUG, "sink '%s': freed %zu timers and %zu watches the plugin left behind",
               s->name, nt, nw);
    while (s->held_head) {
        held *h = s->held_head;
        s->held_head = h->next;
        free(h);
    }
    if (s->retry_ev)
        event_free(s->retry_ev);
    if (s->replay_ev)
        event_free(s->replay_ev);
    sy_spool_close(s->spool);
    sy_settings_free(s->settings, s->nsettings);
    free(s->name);
    free(s);
}

int64_t sy_sink_dropped(const sy_sink *s)
{
    return atomic_load_explicit(&s->stats[SY_STAT_DROPPED], memory_order_relaxed) +
           atomic_load_explicit(&s->dropped_by_host, memory_order_relaxed);
}

/* The plugin's write_lines entry, or NULL when it has none or was built
 * before ABI 1.3. */
static sy_status (*plugin_write_lines(const sy_sink_plugin *p))(void *, const char *const *,
                                                                 const uint32_t *, size_t)
{
    if (p->struct_size < offsetof(sy_sink_plugin, write_lines) + sizeof(p->write_lines))
        return NULL;
    return p->write_lines;
}

int sy_sink_plugin_takes_lines(const sy_sink_plugin *p) { return plugin_write_lines(p) != NULL; }

void sy_sink_write_lines(sy_sink *s, const char *const *lines, const uint32_t *lens, size_t n)
{
    sy_status (*wl)(void *, const char *const *, const uint32_t *, size_t) =
        plugin_write_lines(s->plugin);
    if (!n)
        return;
    if (!wl) {
        /* validate() refuses this config; a plugin swapped on disk since */
        sy_sink_drop(s, n, "DogStatsD lines for a plugin without write_lines");
        return;
    }
    if (sy_sink_spool_route(s)) {
        sy_sink_spool_put_lines(s, lines, lens, n);
        return;
    }
    sy_status r = wl(s->state, lines, lens, n);
    if ((r == SY_RETRY || r == SY_ERROR) && s->spool) {
        /* kept on disk and offered again by replay, in order */
        sy_log_limited(&s->drop_rl, SY_WARN, "sink '%s': write_lines %s: %zu DogStatsD lines "
                       "go to the spool", s->name, r == SY_RETRY ? "cannot take them now"
                       : "failed", n);
        sy_sink_spool_put_lines(s, lines, lens, n);
    } else if (r == SY_RETRY) {
        sy_sink_drop(s, n, "DogStatsD lines: the sink's queue is full (write_lines)");
    } else if (r != SY_OK && r != SY_SKIP) {
        sy_sink_write_failed(s, "write_lines", n);
    }
}

/* The plugin's check entry, or NULL when it has none or was built before
 * ABI 1.1 (its descriptor ends before the member: never read past it). */
static int (*plugin_check(const sy_sink_plugin *p))(const sy_host_api *, sy_host *, char *, size_t)
{
    if (p->struct_size < offsetof(sy_sink_plugin, check) + sizeof(p->check))
        return NULL;
    return p->check;
}

int sy_sink_check(const sy_sink_plugin *p, const char *instance, const sy_setting *settings,
                  size_t n, char *err, size_t errlen)
{
    char perr[512];
    if (!instance)
        instance = "?";
    if (sy_plugin_validate(p, p ? p->name : NULL, perr, sizeof(perr)) != 0) {
        snprintf(err, errlen, "sink '%s': %s", instance, perr);
        return -1;
    }
    if (sy_sink_check_settings(p, instance, settings, n, err, errlen) != 0)
        return -1;
    sy_spool_opts so;
    if (sy_spool_opts_read(instance, settings, n, &so, err, errlen) < 0)
        return -1;
    int (*check)(const sy_host_api *, sy_host *, char *, size_t) = plugin_check(p);
    if (!check)
        return 0;
    /* An instance with no event_base: the getters work, timers and watches
     * do not, so a plugin cannot start anything even by mistake. */
    sy_sink *s = calloc(1, sizeof(*s));
    if (!s || !(s->name = strdup(instance)) || !(s->settings = sy_settings_dup(settings, n))) {
        snprintf(err, errlen, "sink '%s': out of memory", instance);
        if (s)
            sink_free(s);
        return -1;
    }
    s->host.sink = s;
    s->plugin = p;
    s->nsettings = n;
    s->checking = 1;
    perr[0] = '\0';
    int rc = check(&host_api, &s->host, perr, sizeof(perr));
    if (rc != 0) {
        /* The host's own message about a wrong type says more when it
         * extends the plugin's ("must be a whole number, not a string"). */
        const char *why = perr[0] ? perr : last_reason(s);
        if (perr[0] && strncmp(s->last_msg, perr, strlen(perr)) == 0)
            why = s->last_msg;
        snprintf(err, errlen, "sink '%s': %s", instance, why);
    }
    sink_free(s);
    return rc != 0 ? -1 : 0;
}

sy_sink *sy_sink_open(struct event_base *base, const char *instance, const sy_sink_plugin *p,
                      const sy_setting *settings, size_t n, char *err, size_t errlen)
{
    char perr[512];
    sy_sink *s = NULL;

    if (!instance)
        instance = "?";
    if (sy_plugin_validate(p, p ? p->name : NULL, perr, sizeof(perr)) != 0) {
        snprintf(err, errlen, "sink '%s': %s", instance, perr);
        return NULL;
    }
    if (sy_sink_check_settings(p, instance, settings, n, err, errlen) != 0)
        return NULL;

    s = calloc(1, sizeof(*s));
    if (!s)
        goto oom;
    s->host.sink = s;
    s->plugin = p;
    s->base = base;
    s->err_rl.period_ms = 10000;
    s->err_rl.burst = 5;
    s->drop_rl.period_ms = 10000;
    s->drop_rl.burst = 5;
    s->retry_max = RETRY_MAX_DEFAULT;
    if (!(s->name = strdup(instance)))
        goto oom;
    if (!(s->settings = sy_settings_dup(settings, n)))
        goto oom;
    s->nsettings = n;
    const sy_setting *rm = sy_settings_find(s->settings, n, "retryMaxMetrics");
    if (rm)
        s->retry_max = rm->num > (double)SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)rm->num;
    if (!(s->retry_ev = evtimer_new(base, retry_cb, s)))
        goto oom;
    if (sy_sink_spool_start(s, err, errlen) < 0) {
        sink_free(s);
        return NULL;
    }

    perr[0] = '\0';
    if (p->init(&host_api, &s->host, &s->state, perr, sizeof(perr)) != 0) {
        snprintf(err, errlen, "sink '%s': plugin '%s' failed to start: %s", instance,
                 p->name ? p->name : "?", perr[0] ? perr : last_reason(s));
        sink_free(s);
        return NULL;
    }
    s->initialised = 1;
    sy_log(SY_INFO, "sink '%s': started (plugin '%s'%s%s)", instance, p->name ? p->name : "?",
           p->version ? " " : "", p->version ? p->version : "");
    return s;
oom:
    snprintf(err, errlen, "sink '%s': out of memory", instance);
    if (s)
        sink_free(s);
    return NULL;
}

void sy_sink_close(sy_sink *s)
{
    if (!s)
        return;
    sy_sink_spill_held(s);
    /* a sink a reload closes with data left in its queue (time ran out):
     * into the spool, as at shutdown */
    sy_sink_spool_take_back(s);
    if (s->held_count) {
        sy_log(SY_WARN, "sink '%s': closing with %zu held for retry; they are dropped",
               s->name, s->held_count);
        count_host_drop(s, s->held_count);
    }
    if (s->initialised)
        s->plugin->close(s->state);
    sink_free(s);
}

/* --- shutdown --- */

typedef struct drain_ctx {
    sy_sink **sinks;
    size_t n;
} drain_ctx;

static int sink_drained(sy_sink *s)
{
    if (s->spool_always && !s->final_requested) {
        if (sy_sink_spool_draining(s))
            return 0;
        sy_sink_flush(s, 1);
    }
    return !s->held_head && !s->flush_owed && plugin_pending(s) == 0;
}

static int all_drained(const drain_ctx *c)
{
    int done = 1;
    for (size_t i = 0; i < c->n; i++)
        if (c->sinks[i] && !sink_drained(c->sinks[i]))
            done = 0;
    return done;
}

/* Only there so that EVLOOP_ONCE returns often enough to check. */
static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
}

int sy_sinks_drain(struct event_base *base, sy_sink **sinks, size_t n, uint64_t timeout_ms)
{
    drain_ctx c = { .sinks = sinks, .n = n };
    uint64_t start = sy_mono_ms();
    uint64_t deadline = start + timeout_ms;

    for (size_t i = 0; i < n; i++)
        if (sinks[i] && !sy_sink_spool_draining(sinks[i]))
            sy_sink_flush(sinks[i], 1);

    if (!all_drained(&c)) {
        struct event *tick = event_new(base, -1, EV_PERSIST, drain_tick, NULL);
        if (tick) {
            struct timeval tv = ms_tv(DRAIN_CHECK_MS);
            event_add(tick, &tv);
            while (!all_drained(&c) && sy_mono_ms() < deadline)
                if (event_base_loop(base, EVLOOP_ONCE) < 0)
                    break;
            event_free(tick);
        } else {
            sy_log(SY_ERR, "cannot drain sinks: out of memory");
        }
    }

    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        sy_sink *s = sinks[i];
        if (s) {
            if (s->spool_always && !s->final_requested)
                sy_sink_flush(s, 1); /* time ran out while replaying */
            sy_sink_spill_held(s);
            sy_sink_spool_take_back(s);
        }
        if (!s || sink_drained(s))
            continue;
        if ((s->spool_always || s->pending_in_spool) && !s->held_count) {
            /* nothing lost: the spool's position has not passed them */
            sy_log(SY_INFO, "sink '%s': %zu values taken from the spool were not yet "
                   "delivered after %llu ms; they stay in the spool for the next start",
                   s->name, plugin_pending(s), (unsigned long long)(sy_mono_ms() - start));
            continue;
        }
        rc = -1;
        sy_log(SY_WARN,
               "sink '%s': still %zu pending in the plugin and %zu held for retry after %llu ms; "
               "they are lost",
               s->name, plugin_pending(s), s->held_count,
               (unsigned long long)(sy_mono_ms() - start));
        if (!s->final_done) {
            /* the plugin still gets its one final flush */
            s->flush_owed = 0;
            s->final_done = 1;
            s->plugin->flush(s->state, 1);
        }
    }
    return rc;
}
