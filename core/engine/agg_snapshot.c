/*
 * agg_snapshot.c - the key table read whole, off the per-sample path: the
 * flush snapshot (statsd's reset rules, idle keys deleted, routing cache
 * entries expired) and the walks a reload's preparation and a shadow
 * reload make over every key.
 */
#include "engine/agg.h"
#include "engine/agg_internal.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "engine/predecide.h"

/* An origin key (listener, family, address: origin_key()) as the names the
 * rules see: the listener's name (returned) and the sender's address
 * (written to sender, "" when there is none). */
static const char *origin_names(const sy_agg *a, const char *ok, char sender[INET6_ADDRSTRLEN])
{
    sy_origin o;
    memset(&o, 0, sizeof o);
    memcpy(&o.listener, ok, 2);
    o.family = (uint8_t)ok[2];
    memcpy(o.addr, ok + 3, 16);
    sender[0] = '\0';
    if (o.family == AF_INET || o.family == AF_INET6)
        inet_ntop(o.family, o.addr, sender, INET6_ADDRSTRLEN);
    return o.listener < a->nlisteners ? a->listeners[o.listener].name : "";
}

size_t sy_agg_walk_keys(sy_agg *a, size_t *cursor, size_t max, int next_uses_origin,
                        sy_key_fn fn, void *ctx)
{
    size_t seen = 0;
    for (; *cursor < a->cap && seen < max; (*cursor)++) {
        const sy_entry *e = a->slots[*cursor].e;
        if (!e)
            continue;
        seen++;
        if (e->type < ALIAS) {
            /* a key's own decision lives here only without origin rules */
            if ((e->flags & F_OWN) && !next_uses_origin)
                fn(ctx, e->type, e->key, e->key_len, e->key, e->key_len, "", "");
            continue;
        }
        int type = e->type - ALIAS;
        if (!a->uses_origin) {
            if (!next_uses_origin)
                fn(ctx, type, e->key, e->key_len, e->key, e->key_len, "", "");
            continue;
        }
        /* key NUL origin_key: the origin rebuilt for the rules */
        size_t klen = e->key_len - 1 - ORIGIN_KEY_LEN;
        if (!next_uses_origin) {
            fn(ctx, type, e->key, klen, e->key, klen, "", "");
            continue;
        }
        char sender[INET6_ADDRSTRLEN];
        const char *lname = origin_names(a, e->key + klen + 1, sender);
        fn(ctx, type, e->key, klen, e->key, e->key_len, lname, sender);
    }
    return seen;
}

int sy_agg_tokens_walked(size_t cursor) { return cursor >= TOK_BUCKETS; }

size_t sy_agg_walk_tokens(sy_agg *a, size_t *cursor, size_t max, sy_token_fn fn, void *ctx)
{
    size_t seen = 0;
    for (; *cursor < TOK_BUCKETS && seen < max; (*cursor)++) {
        seen++;
        for (const tok_entry *t = a->toks ? a->toks[*cursor] : NULL; t; t = t->next, seen++) {
            /* token NUL origin_key, then the namespace */
            size_t tlen = t->len - 1 - ORIGIN_KEY_LEN;
            char sender[INET6_ADDRSTRLEN];
            const char *lname = origin_names(a, t->data + tlen + 1, sender);
            sy_token_decision d = { .token = t->data, .tlen = tlen, .sender = sender,
                                    .listener = lname,
                                    .ns = t->data + t->len, .nslen = t->nslen, .allowed = t->allowed };
            fn(ctx, &d);
        }
    }
    return seen;
}

size_t sy_agg_walk_decisions(sy_agg *a, size_t *cursor, size_t max, sy_decision_fn fn, void *ctx)
{
    size_t seen = 0;
    for (; *cursor < a->cap && seen < max; (*cursor)++) {
        const sy_entry *e = a->slots[*cursor].e;
        if (!e)
            continue;
        seen++;
        if (e->flags & (F_KEEP | F_RETIRE))
            continue;
        if (e->type < ALIAS && (!(e->flags & F_OWN) || a->uses_origin))
            continue;
        const route_info *ri = &a->routes[e->route < a->nroutes ? e->route : 0];
        sy_key_decision d = { .type = e->type < ALIAS ? e->type : e->type - ALIAS, .key = e->key,
                              .klen = e->key_len, .lookup = e->key, .lookup_len = e->key_len,
                              .listener = "", .sender = "", .name = e->key, .name_len = e->key_len,
                              .sinks = ri->drop ? 0 : ri->sinks, .raw = ri->drop ? 0 : ri->raw,
                              .rate = ri->rate, .drop = ri->drop,
                              .current = !a->router || e->epoch == a->epoch };
        char sender[INET6_ADDRSTRLEN] = "";
        if (e->type >= ALIAS) {
            d.name = e->key + e->key_len + 1;
            d.name_len = e->u.target_len;
            if (a->uses_origin) {
                /* key NUL origin_key: the origin rebuilt for the rules */
                d.klen = e->key_len - 1 - ORIGIN_KEY_LEN;
                const char *ok = e->key + d.klen + 1;
                sy_origin o;
                memset(&o, 0, sizeof o);
                memcpy(&o.listener, ok, 2);
                o.family = (uint8_t)ok[2];
                memcpy(o.addr, ok + 3, 16);
                if (o.family == AF_INET || o.family == AF_INET6)
                    inet_ntop(o.family, o.addr, sender, sizeof sender);
                d.sender = sender;
                d.listener = o.listener < a->nlisteners ? a->listeners[o.listener].name : "";
            }
        }
        fn(ctx, &d);
    }
    return seen;
}

/* statsd's clear_metrics, decided per entry: 1 when it is to be deleted. */
static int reset_entry(sy_agg *a, sy_entry *e)
{
    e->samples = 0; /* top's counts are per interval */
    e->bytes = 0;
    switch (e->type) {
    case SY_T_COUNTER:
        e->u.value = 0;
        return a->o.delete_counters && !(e->flags & F_KEEP);
    case SY_T_TIMER:
        e->u.timer = NULL; /* moved into the snapshot */
        return a->o.delete_timers;
    case SY_T_GAUGE:
        if (a->o.delete_gauges && e->ttl >= 0)
            return --e->ttl < 1;
        return 0;
    default:
        if (e->u.set)
            sy_agg_hset_clear(e->u.set);
        return a->o.delete_sets;
    }
}

sy_snapshot *sy_agg_snapshot(sy_agg *a, int64_t ts)
{
    /* A reload's decisions serve the keys seen in the next two intervals;
     * a key that comes back later is asked about as a new one. */
    if (a->pre && --a->pre_flushes <= 0) {
        sy_predecided_free(a->pre);
        a->pre = NULL;
    }
    /* top's arrivals are per interval, as the keys' counts */
    sy_agg_top_charge(a);
    memset(&a->arrivals, 0, sizeof a->arrivals);
    a->listener = 0xff; /* keys made here come from no listener */
    a->tenant = 0;
    /* statsd sets its timestamp_lag gauge from the second flush on. */
    if (a->old_ts > 0) {
        if (!a->e_lag) {
            char name[SY_KEY_MAX];
            int n = snprintf(name, sizeof name, "%s.timestamp_lag", a->prefix_stats);
            a->e_lag = sy_agg_lookup_internal(a, SY_T_GAUGE, name, (size_t)n);
        }
        if (a->e_lag) {
            a->e_lag->u.value = (double)(ts - a->old_ts) - a->o.flush_interval_ms / 1000.0;
            a->e_lag->ttl = -1;
            a->e_lag->flags |= F_KEEP;
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

    /* statsd's own values (numStats, processing_time, ...) take the route
     * of their namespace. */
    s->internal_sinks = a->all_sinks;
    if (a->router) {
        char name[SY_KEY_MAX];
        int n = snprintf(name, sizeof name, "%s.numStats", a->prefix_stats);
        sy_route r;
        a->origin = NULL;
        a->sender_ready = 0;
        uint32_t idx = sy_agg_decide(a, SY_T_COUNTER, name, (size_t)n, &r);
        s->internal_sinks = a->routes[idx].drop ? 0 : a->routes[idx].sinks;
    }

    for (size_t i = 0; i < a->cap; i++) {
        sy_entry *e = a->slots[i].e;
        if (!e)
            continue;
        if (e->type >= ALIAS) {
            /* A routing cache entry lives while its key is in use. */
            if (!(e->flags & F_TOUCHED) || e->epoch != a->epoch)
                sy_agg_mark_dead(a, s, e, a->slots[i].hash);
            e->flags &= (uint8_t)~F_TOUCHED;
            continue;
        }
        uint64_t sinks = a->all_sinks;
        if (!a->router && !(e->flags & (F_OWN | F_KEEP)))
            e->flags |= F_RETIRE; /* a rename target left by removed routing */
        if (a->router) {
            if (e->epoch != a->epoch && !(e->flags & F_RETIRE)) {
                /* Not seen since a reload: decide now, by its name alone. */
                sy_route r;
                a->origin = NULL;
                a->sender_ready = 0;
                uint32_t idx = sy_agg_decide(a, e->type, e->key, e->key_len, &r);
                if (r.renamed && !(e->flags & F_KEEP))
                    e->flags |= F_RETIRE;
                else {
                    e->route = idx; /* flushed where its name goes now */
                    e->epoch = a->epoch;
                }
            }
            const route_info *ri = &a->routes[e->route < a->nroutes ? e->route : 0];
            sinks = ri->drop ? 0 : ri->sinks;
        }
        if (sinks == 0 && !(e->flags & F_RETIRE)) {
            /* Dropped or pass-through only: a routing cache entry, which
             * expires after an interval without samples. */
            if (e->type == SY_T_TIMER && e->u.timer) {
                free(e->u.timer->v);
                free(e->u.timer);
                e->u.timer = NULL;
            }
            if (!(e->flags & (F_TOUCHED | F_KEEP)))
                sy_agg_mark_dead(a, s, e, a->slots[i].hash);
            e->flags &= (uint8_t)~F_TOUCHED;
            continue;
        }
        e->flags &= (uint8_t)~F_TOUCHED;
        sy_snap_item *it = &s->items[s->n++];
        it->sinks = sinks;
        it->key = e->key;
        it->key_len = e->key_len;
        it->type = e->type;
        it->timer = NULL;
        it->value = 0;
        switch (e->type) {
        case SY_T_COUNTER: it->value = e->u.value; s->counters++; break;
        case SY_T_GAUGE: it->value = e->u.value; s->gauges++; break;
        case SY_T_TIMER: it->timer = e->u.timer; s->timers++; break;
        default: it->value = e->u.set ? sy_agg_hset_count(e->u.set) : 0; s->sets++; break;
        }
        if (reset_entry(a, e) || (e->flags & F_RETIRE))
            sy_agg_mark_dead(a, s, e, a->slots[i].hash);
    }
    /* Entries the admin deleted may still be named by the snapshot in
     * flight on the output thread: they are freed with this one. */
    /* Unlink after the walk: backward shifts would disturb it. */
    for (sy_entry *e = s->dead; e; e = e->next_dead) {
        sy_agg_slots_remove(a, e, e->dead_hash);
        if (e == a->e_lag)
            a->e_lag = NULL;
    }
    while (a->deleted) {
        sy_entry *e = a->deleted;
        a->deleted = e->next_dead;
        e->next_dead = s->dead;
        s->dead = e;
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
        sy_agg_entry_free(e);
        e = next;
    }
    free(s->items);
    free(s);
}
