/*
 * agg_setup.c - making, configuring and freeing the aggregator: its
 * options, routing, sample seed and series budgets as a config sets them.
 * Nothing here runs per sample.
 */
#include "engine/agg.h"
#include "engine/agg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/budget.h"
#include "engine/hash.h"
#include "engine/predecide.h"
#include "engine/router.h"
#include "util/log.h"

static sy_entry *internal_counter(sy_agg *a, const char *suffix)
{
    char name[SY_KEY_MAX];
    int n = snprintf(name, sizeof name, "%s.%s", a->prefix_stats, suffix);
    sy_entry *e = sy_agg_lookup_internal(a, SY_T_COUNTER, name, (size_t)n);
    if (e)
        e->flags |= F_KEEP;
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
    if (a->o.gauges_max_ttl > INT16_MAX)
        a->o.gauges_max_ttl = INT16_MAX; /* an entry's ttl is 16 bits */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    a->seed = sy_mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32), 0x5851F42D4C957F2Dull);
    a->rng = a->seed | 1;
    a->batch_keys = PF_BATCH_KEYS;
    a->routes = calloc(16, sizeof *a->routes);
    a->cap_routes = 16;
    a->toks = calloc(TOK_BUCKETS, sizeof *a->toks);
    a->budgets = sy_budgets_new();
    a->st.budgets = a->budgets;
    if (sy_agg_table_grow(a) < 0 || !a->prefix_stats || !a->routes || !a->toks || !a->budgets)
        goto fail;
    a->routes[0] = (route_info){ .sinks = ~0ull, .rate = 1 };
    a->listener = 0xff;
    a->nroutes = 1;
    a->all_sinks = ~0ull;
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
            sy_agg_entry_free(a->slots[i].e);
    free(a->slots);
    free(a->prefix_stats);
    free(a->routes);
    sy_budgets_free(a->budgets);
    for (size_t i = 1; i <= a->ntenants; i++)
        free(a->tenants[i]);
    for (size_t i = 0; i < a->nreasons; i++)
        free(a->reasons[i]);
    sy_predecided_free(a->pre);
    sy_raw_batch_free(a->raw);
    while (a->deleted) {
        sy_entry *e = a->deleted;
        a->deleted = e->next_dead;
        sy_agg_entry_free(e);
    }
    if (a->toks) {
        sy_agg_tokens_clear(a);
        free(a->toks);
    }
    free(a);
}

void sy_agg_tokens_clear(sy_agg *a)
{
    for (size_t i = 0; i < TOK_BUCKETS; i++) {
        tok_entry *t = a->toks[i];
        while (t) {
            tok_entry *next = t->next;
            free(t);
            t = next;
        }
        a->toks[i] = NULL;
    }
    a->ntoks = 0;
}

void sy_agg_set_routing(sy_agg *a, sy_router *router, uint64_t all_sinks, int uses_origin,
                        sy_listen_info *listeners, size_t nlisteners)
{
    a->router = sy_router_has_decide(router) || sy_router_has_auth(router) ? router : NULL;
    a->all_sinks = all_sinks;
    a->uses_origin = uses_origin && sy_router_has_decide(router);
    a->listeners = listeners;
    a->nlisteners = nlisteners;
    a->epoch++;
    a->routes[0] = (route_info){ .sinks = all_sinks, .rate = 1 };
    a->nroutes = 1;
    sy_agg_tokens_clear(a);
}

void sy_agg_set_sample_seed(sy_agg *a, uint64_t seed)
{
    a->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
}

void sy_agg_set_opts(sy_agg *a, const sy_agg_opts *opts)
{
    char *prefix = a->prefix_stats;
    a->o = *opts;
    a->o.prefix_stats = prefix; /* statsd's own counters keep their names */
    if (a->o.gauges_max_ttl < 1)
        a->o.gauges_max_ttl = 1;
    if (a->o.gauges_max_ttl > INT16_MAX)
        a->o.gauges_max_ttl = INT16_MAX; /* an entry's ttl is 16 bits */
}

void sy_agg_set_limits(sy_agg *a, const sy_limit *limits, size_t n)
{
    if (sy_budgets_configure(a->budgets, limits, n) < 0)
        sy_log(SY_ERR, "out of memory setting the series budgets (limits): the old ones stay");
}

