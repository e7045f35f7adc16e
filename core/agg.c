/*
 * agg.c - the key table and statsd's aggregation rules.
 *
 * Keys live in one open-addressing table (linear probing, backward-shift
 * deletion) of (hash, entry) pairs.  An entry is one allocation: its
 * header and its key bytes; it is created the first time a (type, key)
 * pair is seen, never per sample.  statsd keeps counters, timers, gauges
 * and sets in separate maps, so the type is part of the identity.
 */
#include "agg.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hash.h"
#include "log.h"
#include "parse.h"

/* Sets hold 64-bit hashes of their members: exact for every practical
 * purpose (a collision needs ~4e9 members) at 8 bytes a member. */
typedef struct sy_hset {
    uint64_t *slots;
    uint32_t n, cap;
} sy_hset;

typedef struct sy_entry {
    struct sy_entry *next_dead;
    uint64_t hash;
    union {
        double value;
        sy_timer_data *timer;
        sy_hset *set;
    } u;
    int32_t ttl;        /* gauges: idle flushes left; -1 = never expires */
    uint16_t key_len;
    uint8_t type;
    uint8_t keep;       /* never deleted, only reset (statsd's own counters) */
    char key[];
} sy_entry;

typedef struct slot {
    uint64_t hash;
    sy_entry *e;
} slot;

struct sy_agg {
    sy_agg_opts o;
    char *prefix_stats;
    slot *slots;
    size_t cap, n;      /* cap is a power of two */
    uint64_t seed;
    uint64_t rng;
    int64_t old_ts;
    sy_entry *e_packets, *e_metrics, *e_bad;
    sy_entry *e_lag;
    sy_agg_stats st;
    char key[SY_KEY_MAX];
};

static sy_ratelimit rl_bad = SY_RATELIMIT_INIT(10000, 5);
static sy_ratelimit rl_keys = SY_RATELIMIT_INIT(10000, 2);

static inline uint64_t type_hash(uint64_t h, int type)
{
    return h ^ ((uint64_t)(type + 1) * 0x9E3779B97F4A7C15ull);
}

static uint64_t next_rand(sy_agg *a)
{
    /* xorshift64*: the reservoir needs speed, not cryptography. */
    a->rng ^= a->rng >> 12;
    a->rng ^= a->rng << 25;
    a->rng ^= a->rng >> 27;
    return a->rng * 0x2545F4914F6CDD1Dull;
}

static int table_grow(sy_agg *a)
{
    size_t ncap = a->cap ? a->cap * 2 : 1024;
    slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < a->cap; i++) {
        if (!a->slots[i].e)
            continue;
        size_t j = a->slots[i].hash & (ncap - 1);
        while (ns[j].e)
            j = (j + 1) & (ncap - 1);
        ns[j] = a->slots[i];
    }
    free(a->slots);
    a->slots = ns;
    a->cap = ncap;
    return 0;
}

static sy_entry *table_find(sy_agg *a, uint64_t h, int type, const char *key, size_t len)
{
    if (!a->cap)
        return NULL;
    size_t mask = a->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        sy_entry *e = a->slots[i].e;
        if (!e)
            return NULL;
        if (a->slots[i].hash == h && e->type == type && e->key_len == len &&
            memcmp(e->key, key, len) == 0)
            return e;
    }
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void table_remove(sy_agg *a, sy_entry *e)
{
    size_t mask = a->cap - 1;
    size_t i = e->hash & mask;
    while (a->slots[i].e != e)
        i = (i + 1) & mask;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!a->slots[j].e)
            break;
        size_t home = a->slots[j].hash & mask;
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j)) {
            a->slots[i] = a->slots[j];
            i = j;
        }
    }
    a->slots[i].e = NULL;
    a->slots[i].hash = 0;
    a->n--;
}

static sy_entry *entry_new(sy_agg *a, uint64_t h, int type, const char *key, size_t len)
{
    if ((a->n + 1) * 10 > a->cap * 7 && table_grow(a) < 0)
        return NULL;
    sy_entry *e = malloc(sizeof *e + len + 1);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    e->hash = h;
    e->type = (uint8_t)type;
    e->key_len = (uint16_t)len;
    e->ttl = -1;
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    /* statsd's deleteCounters spares any counter whose name contains one of
     * its own counters' names (a substring test, so user keys too). */
    if (type == SY_T_COUNTER)
        e->keep = strstr(e->key, "packets_received") || strstr(e->key, "metrics_received") ||
                  strstr(e->key, "bad_lines_seen");
    size_t mask = a->cap - 1;
    size_t i = h & mask;
    while (a->slots[i].e)
        i = (i + 1) & mask;
    a->slots[i].hash = h;
    a->slots[i].e = e;
    a->n++;
    atomic_store_explicit(&a->st.keys, a->n, memory_order_relaxed);
    return e;
}

static void entry_free(sy_entry *e)
{
    if (e->type == SY_T_TIMER && e->u.timer) {
        free(e->u.timer->v);
        free(e->u.timer);
    } else if (e->type == SY_T_SET && e->u.set) {
        free(e->u.set->slots);
        free(e->u.set);
    }
    free(e);
}

/* Find or create; NULL when the key limit (or memory) says no. */
static sy_entry *lookup(sy_agg *a, int type, const char *key, size_t len)
{
    uint64_t h = type_hash(sy_hash(key, len, a->seed), type);
    sy_entry *e = table_find(a, h, type, key, len);
    if (e)
        return e;
    if (a->o.max_keys && a->n >= a->o.max_keys) {
        atomic_fetch_add_explicit(&a->st.keys_rejected, 1, memory_order_relaxed);
        sy_log_limited(&rl_keys, SY_WARN, "key limit (%zu) reached: new keys are dropped",
                       a->o.max_keys);
        return NULL;
    }
    return entry_new(a, h, type, key, len);
}

static sy_entry *internal_counter(sy_agg *a, const char *suffix)
{
    char name[SY_KEY_MAX];
    int n = snprintf(name, sizeof name, "%s.%s", a->prefix_stats, suffix);
    sy_entry *e = lookup(a, SY_T_COUNTER, name, (size_t)n);
    if (e)
        e->keep = 1;
    return e;
}

sy_agg *sy_agg_new(const sy_agg_opts *opts)
{
    sy_agg *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->o = *opts;
    a->prefix_stats = strdup(opts->prefix_stats ? opts->prefix_stats : "statsd");
    a->o.prefix_stats = a->prefix_stats;
    if (a->o.gauges_max_ttl < 1)
        a->o.gauges_max_ttl = 1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    a->seed = sy_mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32), 0x5851F42D4C957F2Dull);
    a->rng = a->seed | 1;
    if (table_grow(a) < 0 || !a->prefix_stats)
        goto fail;
    /* statsd creates these three at start, so they are flushed (as 0)
     * even before any traffic. */
    a->e_bad = internal_counter(a, "bad_lines_seen");
    a->e_packets = internal_counter(a, "packets_received");
    a->e_metrics = internal_counter(a, "metrics_received");
    if (!a->e_bad || !a->e_packets || !a->e_metrics)
        goto fail;
    return a;
fail:
    sy_agg_free(a);
    return NULL;
}

void sy_agg_free(sy_agg *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->cap; i++)
        if (a->slots[i].e)
            entry_free(a->slots[i].e);
    free(a->slots);
    free(a->prefix_stats);
    free(a);
}

const sy_agg_stats *sy_agg_get_stats(const sy_agg *a) { return &a->st; }
size_t sy_agg_key_count(const sy_agg *a) { return a->n; }

static void bad_line(sy_agg *a, const char *line, size_t len)
{
    a->e_bad->u.value += 1;
    atomic_fetch_add_explicit(&a->st.bad_lines, 1, memory_order_relaxed);
    sy_log_limited(&rl_bad, SY_DEBUG, "bad line: %.*s", (int)(len > 200 ? 200 : len), line);
}

static void set_insert(sy_agg *a, sy_entry *e, const char *text, size_t len)
{
    sy_hset *s = e->u.set;
    if (!s) {
        s = e->u.set = calloc(1, sizeof *s);
        if (!s)
            return;
    }
    if ((s->n + 1) * 4 > s->cap * 3) {
        uint32_t ncap = s->cap ? s->cap * 2 : 8;
        uint64_t *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return;
        for (uint32_t i = 0; i < s->cap; i++) {
            if (!s->slots[i])
                continue;
            uint32_t j = (uint32_t)s->slots[i] & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = ns;
        s->cap = ncap;
    }
    uint64_t h = sy_hash(text, len, a->seed ^ 0x5e75e75e75e75e7ull);
    if (!h)
        h = 1;
    uint32_t j = (uint32_t)h & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == h)
            return;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = h;
    s->n++;
}

static void timer_add(sy_agg *a, sy_entry *e, double v, double rate)
{
    sy_timer_data *t = e->u.timer;
    if (!t) {
        t = e->u.timer = calloc(1, sizeof *t);
        if (!t)
            return;
    }
    if (t->seen == 0) {
        t->min = t->max = v;
    } else {
        if (v < t->min)
            t->min = v;
        if (v > t->max)
            t->max = v;
    }
    t->seen++;
    t->count += 1 / rate;
    t->sum += v;
    t->sumsq += v * v;
    uint32_t limit = a->o.timer_sample_limit;
    if (limit && t->n >= limit) {
        /* Reservoir sampling keeps a uniform sample of the interval. */
        uint64_t j = next_rand(a) % t->seen;
        if (j < limit)
            t->v[j] = v;
        atomic_fetch_add_explicit(&a->st.timer_samples_dropped, 1, memory_order_relaxed);
        return;
    }
    if (t->n == t->cap) {
        uint32_t ncap = t->cap ? t->cap * 2 : 16;
        if (limit && ncap > limit)
            ncap = limit;
        double *nv = realloc(t->v, ncap * sizeof *nv);
        if (!nv)
            return;
        t->v = nv;
        t->cap = ncap;
    }
    t->v[t->n++] = v;
}

/* Apply one parsed sample, exactly as statsd's handlePacket does. */
static void apply(sy_agg *a, const char *key, size_t klen, const sy_sample *s)
{
    int type = s->type == SY_SAMPLE_COUNTER ? SY_T_COUNTER
             : s->type == SY_SAMPLE_TIMER ? SY_T_TIMER
             : s->type == SY_SAMPLE_GAUGE ? SY_T_GAUGE : SY_T_SET;
    sy_entry *e = lookup(a, type, key, klen);
    if (!e)
        return;
    switch (type) {
    case SY_T_COUNTER:
        e->u.value += s->value * (1 / s->rate);
        break;
    case SY_T_TIMER:
        timer_add(a, e, s->value, s->rate);
        break;
    case SY_T_GAUGE:
        if (a->o.delete_gauges)
            e->ttl = a->o.gauges_max_ttl;
        /* statsd: `if (gauges[key] && /^[-+]/)` - a delta on a gauge that
         * is 0 or missing sets it, which gives the same number. */
        if (s->is_delta)
            e->u.value += s->value;
        else
            e->u.value = s->value;
        break;
    default:
        set_insert(a, e, s->text, s->text_len);
        break;
    }
}

void sy_agg_line(sy_agg *a, const char *line, size_t len)
{
    sy_line it;
    int klen = sy_parse_begin(&it, line, len, a->key, a->o.sanitize);
    if (klen == -2)
        return;
    a->e_metrics->u.value += 1;
    atomic_fetch_add_explicit(&a->st.lines, 1, memory_order_relaxed);
    if (klen < 0) {
        bad_line(a, line, len);
        return;
    }
    sy_sample s;
    int rc;
    while ((rc = sy_parse_next(&it, &s)) != 0) {
        if (rc < 0) {
            bad_line(a, line, len);
            continue;
        }
        atomic_fetch_add_explicit(&a->st.samples, 1, memory_order_relaxed);
        apply(a, a->key, (size_t)klen, &s);
    }
}

void sy_agg_feed(sy_agg *a, const char *buf, size_t len, const sy_origin *origin)
{
    (void)origin;
    a->e_packets->u.value += 1;
    atomic_fetch_add_explicit(&a->st.packets, 1, memory_order_relaxed);
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (stop > p)
            sy_agg_line(a, p, (size_t)(stop - p));
        p = stop + 1;
    }
}

static void hset_clear(sy_hset *s)
{
    if (s->cap > 64) {
        free(s->slots);
        s->slots = NULL;
        s->cap = 0;
    } else if (s->slots) {
        memset(s->slots, 0, s->cap * sizeof *s->slots);
    }
    s->n = 0;
}

/* statsd's clear_metrics, decided per entry: 1 when it is to be deleted. */
static int reset_entry(sy_agg *a, sy_entry *e)
{
    switch (e->type) {
    case SY_T_COUNTER:
        e->u.value = 0;
        return a->o.delete_counters && !e->keep;
    case SY_T_TIMER:
        e->u.timer = NULL; /* moved into the snapshot */
        return a->o.delete_timers;
    case SY_T_GAUGE:
        if (a->o.delete_gauges && e->ttl >= 0)
            return --e->ttl < 1;
        return 0;
    default:
        if (e->u.set)
            hset_clear(e->u.set);
        return a->o.delete_sets;
    }
}

sy_snapshot *sy_agg_snapshot(sy_agg *a, int64_t ts)
{
    /* statsd sets its timestamp_lag gauge from the second flush on. */
    if (a->old_ts > 0) {
        if (!a->e_lag) {
            char name[SY_KEY_MAX];
            int n = snprintf(name, sizeof name, "%s.timestamp_lag", a->prefix_stats);
            a->e_lag = lookup(a, SY_T_GAUGE, name, (size_t)n);
        }
        if (a->e_lag) {
            a->e_lag->u.value = (double)(ts - a->old_ts) - a->o.flush_interval_ms / 1000.0;
            a->e_lag->ttl = -1;
            a->e_lag->keep = 1;
        }
    }
    a->old_ts = ts;

    sy_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->items = malloc((a->n ? a->n : 1) * sizeof *s->items);
    if (!s->items) {
        free(s);
        return NULL;
    }
    s->ts = ts;
    s->flush_interval_ms = a->o.flush_interval_ms;

    for (size_t i = 0; i < a->cap; i++) {
        sy_entry *e = a->slots[i].e;
        if (!e)
            continue;
        sy_snap_item *it = &s->items[s->n++];
        it->key = e->key;
        it->key_len = e->key_len;
        it->type = e->type;
        it->timer = NULL;
        it->value = 0;
        switch (e->type) {
        case SY_T_COUNTER: it->value = e->u.value; s->counters++; break;
        case SY_T_GAUGE: it->value = e->u.value; s->gauges++; break;
        case SY_T_TIMER: it->timer = e->u.timer; s->timers++; break;
        default: it->value = e->u.set ? e->u.set->n : 0; s->sets++; break;
        }
        if (reset_entry(a, e)) {
            e->next_dead = s->dead;
            s->dead = e;
        }
    }
    /* Unlink after the walk: backward shifts would disturb it. */
    for (sy_entry *e = s->dead; e; e = e->next_dead) {
        table_remove(a, e);
        if (e == a->e_lag)
            a->e_lag = NULL;
    }
    atomic_store_explicit(&a->st.keys, a->n, memory_order_relaxed);
    return s;
}

void sy_snapshot_free(sy_snapshot *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        sy_timer_data *t = s->items[i].timer;
        if (t) {
            free(t->v);
            free(t);
        }
    }
    sy_entry *e = s->dead;
    while (e) {
        sy_entry *next = e->next_dead;
        entry_free(e);
        e = next;
    }
    free(s->items);
    free(s);
}
