/*
 * testing.c - the daemon's pipeline, synchronously, with recording sinks.
 */
#include "testing.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "engine/agg.h"
#include "config.h"
#include "output/flush.h"
#include "engine/router.h"

typedef struct rec {
    int sink;
    char *name;
    double value;
} rec;

typedef struct raw_rec {
    int sink;
    char *name, *text, *tags;
    int type;
    double rate;
} raw_rec;

struct sy_test {
    sy_config *c;
    sy_router *router;
    sy_agg *agg;
    sy_flusher *flusher;
    sy_listen_info *linfo;
    rec *res;
    size_t nres, capres;
    raw_rec *raw;
    size_t nraw, capraw;
    sy_raw_batch **pending_raw;  /* one per fed packet that had raw samples */
    size_t npending, cap_pending;
};

sy_test *sy_test_new(const char *file, const char *lua_dir, char *err, size_t errlen)
{
    sy_test *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->c = sy_config_load(file, lua_dir, err, errlen);
    if (!t->c)
        goto fail;
    sy_config *c = t->c;
    int decide = c->decide_ref, auth = c->auth_ref;
    struct lua_State *L = sy_config_take_lua(c);
    if (L)
        t->router = sy_router_new(L, decide, auth, sy_config_all_sinks(c), c->lua_memory_limit,
                                  c->lua_timeout_ms);
    t->agg = sy_agg_new(&c->agg);
    t->flusher = sy_flusher_new(&c->flush);
    t->linfo = calloc(c->nlisten ? c->nlisten : 1, sizeof *t->linfo);
    if (!t->agg || !t->flusher || !t->linfo) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < c->nlisten; i++) {
        t->linfo[i].name = c->listen[i].url;
        t->linfo[i].auth = c->listen[i].auth;
    }
    sy_agg_set_routing(t->agg, t->router, sy_config_all_sinks(c), c->route_uses_origin, t->linfo,
                       c->nlisten);
    sy_agg_set_sample_seed(t->agg, c->has_sample_seed ? c->sample_seed : 1);
    return t;
fail:
    sy_test_free(t);
    return NULL;
}

static void clear_results(sy_test *t)
{
    for (size_t i = 0; i < t->nres; i++)
        free(t->res[i].name);
    t->nres = 0;
    for (size_t i = 0; i < t->nraw; i++) {
        free(t->raw[i].name);
        free(t->raw[i].text);
        free(t->raw[i].tags);
    }
    t->nraw = 0;
}

void sy_test_free(sy_test *t)
{
    if (!t)
        return;
    clear_results(t);
    free(t->res);
    free(t->raw);
    for (size_t i = 0; i < t->npending; i++)
        sy_raw_batch_free(t->pending_raw[i]);
    free(t->pending_raw);
    sy_agg_free(t->agg);
    sy_flusher_free(t->flusher);
    sy_router_free(t->router);
    free(t->linfo);
    sy_config_free(t->c);
    free(t);
}

static void keep_raw(sy_test *t)
{
    sy_raw_batch *b = sy_agg_take_raw(t->agg);
    if (!b)
        return;
    if (t->npending == t->cap_pending) {
        size_t ncap = t->cap_pending ? t->cap_pending * 2 : 64;
        sy_raw_batch **np = realloc(t->pending_raw, ncap * sizeof *np);
        if (!np) {
            sy_raw_batch_free(b);
            return;
        }
        t->pending_raw = np;
        t->cap_pending = ncap;
    }
    t->pending_raw[t->npending++] = b;
}

int sy_test_feed(sy_test *t, const char *data, size_t len, const char *listener, const char *sender)
{
    sy_origin o;
    memset(&o, 0, sizeof o);
    for (size_t i = 0; listener && i < t->c->nlisten; i++)
        if (strcmp(t->c->listen[i].url, listener) == 0)
            o.listener = (uint16_t)i;
    if (sender && inet_pton(AF_INET, sender, o.addr) == 1)
        o.family = AF_INET;
    else if (sender && inet_pton(AF_INET6, sender, o.addr) == 1)
        o.family = AF_INET6;
    sy_agg_feed(t->agg, data, len, &o);
    keep_raw(t);
    return 0;
}

static void record(void *ctx, const sy_metric_batch *b, uint64_t sinks)
{
    sy_test *t = ctx;
    for (size_t s = 0; s < t->c->nsinks && s < 64; s++) {
        if (!((sinks >> s) & 1))
            continue;
        for (size_t i = 0; i < b->count; i++) {
            if (t->nres == t->capres) {
                size_t ncap = t->capres ? t->capres * 2 : 256;
                rec *nr = realloc(t->res, ncap * sizeof *nr);
                if (!nr)
                    return;
                t->res = nr;
                t->capres = ncap;
            }
            t->res[t->nres++] = (rec){ (int)s, strdup(b->metrics[i].name), b->metrics[i].value };
        }
    }
}

int sy_test_flush(sy_test *t, int64_t now_s)
{
    clear_results(t);
    keep_raw(t);
    for (size_t k = 0; k < t->npending; k++) {
        sy_raw_batch *b = t->pending_raw[k];
        for (size_t i = 0; i < b->n; i++) {
            for (size_t s = 0; s < t->c->nsinks && s < 64; s++) {
                /* DogStatsD events and service checks (dogstatsdEvents)
                 * are not routing's business: not reported */
                if (!((b->masks[i] >> s) & 1) || b->samples[i].type == SY_RAW_DD_LINE)
                    continue;
                if (t->nraw == t->capraw) {
                    size_t ncap = t->capraw ? t->capraw * 2 : 64;
                    raw_rec *nr = realloc(t->raw, ncap * sizeof *nr);
                    if (!nr)
                        break;
                    t->raw = nr;
                    t->capraw = ncap;
                }
                const sy_sample *smp = &b->samples[i];
                t->raw[t->nraw++] = (raw_rec){
                    .sink = (int)s, .name = strndup(smp->name, smp->name_len),
                    .text = strndup(smp->text, smp->text_len), .tags = strndup(smp->tags, smp->tags_len),
                    .type = smp->type, .rate = smp->rate };
            }
        }
        sy_raw_batch_free(b);
    }
    t->npending = 0;
    sy_snapshot *s = sy_agg_snapshot(t->agg, now_s);
    if (!s)
        return -1;
    sy_flush_result res;
    sy_flusher_run(t->flusher, s, NULL, 0, record, t, &res);
    sy_snapshot_free(s);
    return 0;
}

size_t sy_test_result_count(const sy_test *t) { return t->nres; }

int sy_test_result(const sy_test *t, size_t i, const char **sink, const char **name, double *value)
{
    if (i >= t->nres)
        return -1;
    *sink = t->c->sinks[t->res[i].sink].name;
    *name = t->res[i].name;
    *value = t->res[i].value;
    return 0;
}

size_t sy_test_raw_count(const sy_test *t) { return t->nraw; }

int sy_test_raw(const sy_test *t, size_t i, const char **sink, const char **name, const char **text,
                int *type, double *rate, const char **tags)
{
    if (i >= t->nraw)
        return -1;
    const raw_rec *r = &t->raw[i];
    *sink = t->c->sinks[r->sink].name;
    *name = r->name;
    *text = r->text;
    *type = r->type;
    *rate = r->rate;
    *tags = r->tags;
    return 0;
}

double sy_test_stat(const sy_test *t, const char *name)
{
    const sy_agg_stats *st = sy_agg_get_stats(t->agg);
    if (!strcmp(name, "bad_lines")) return (double)st->bad_lines;
    if (!strcmp(name, "keys_too_long")) return (double)st->keys_too_long;
    if (!strcmp(name, "sets_estimated")) return (double)st->sets_estimated;
    if (!strcmp(name, "samples")) return (double)st->samples;
    if (!strcmp(name, "dropped")) return (double)st->routed_drops;
    if (!strcmp(name, "sampled_out")) return (double)st->sampled_out;
    if (!strcmp(name, "route_errors")) return (double)st->route_errors;
    if (!strcmp(name, "keys")) return (double)st->keys;
    if (!strcmp(name, "auth_rejected")) {
        double n = 0;
        for (size_t i = 0; i < t->c->nlisten; i++)
            n += (double)t->linfo[i].auth_rejected;
        return n;
    }
    return -1;
}
