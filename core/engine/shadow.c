/*
 * shadow.c - shadow reloads (see shadow.h).
 *
 * Three threads take part.  The admin thread starts a job and is told
 * when its report is ready.  The job's own thread loads the config and
 * asks its rules about keys, a chunk at a time.  The engine thread, when
 * the job's thread waits for a chunk (sy_shadow_wanted), copies a chunk
 * of keys and their decisions between two batches (keyslice.h, shared
 * with a reload's preparation): a pause of the same order as an admin
 * walk's slice.  When the table grows meanwhile the walk starts again,
 * and a set of the keys already copied (8 bytes a key) keeps each key
 * compared once.
 *
 * Bounds: one job at a time; the config's setup as a reload's (5 s, 256
 * MiB, in sy_config_load); each routing call luaTimeout and
 * luaMemoryLimit; MAX_ERRORS failed calls end the job; so does
 * SHADOW_TIMEOUT_S in all; the job's thread sleeps as long as it worked,
 * so it takes at most half of a core; groups are capped at MAX_GROUPS
 * (the rest are counted in one), examples at MAX_EXAMPLES a group.
 */
#include "engine/shadow.h"

/* Report lines are cut to their buffers on purpose (gcc's warning; clang
 * has no such group). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/hash.h"
#include "engine/keyslice.h"
#include "util/log.h"
#include "engine/router.h"
#include "ingest/parse.h"
#include "util/clock.h"

#define MAX_ERRORS 10
#define SHADOW_TIMEOUT_S 300
#define MAX_GROUPS 256
#define MAX_EXAMPLES 3
#define GROUP_SLOTS 1024 /* > 2 * MAX_GROUPS, a power of two */
#define LABEL_MAX 1024
#define SENDERS_PER_KEY 64 /* a key decided per sender: senders evaluated */

typedef sy_keyslice_item item;
typedef sy_keyslice_token titem;

typedef struct group {
    char *label;
    uint64_t count;
    char *ex[MAX_EXAMPLES];
    int nex;
} group;

struct sy_shadow_job {
    char *file;
    void (*ready)(void *);
    void *ctx;
    int refs;          /* the job's thread and the asker (registry lock) */
    int done, abandoned;
    sy_buf report;

    /* the live keys, copied by the engine a chunk at a time (keyslice.h);
     * the chunk's strings are in ks.arena */
    sy_keyslice ks;

    /* results (the job's thread) */
    group *groups[GROUP_SLOTS];
    size_t ngroups;
    group other;
    uint64_t compared, changed, stale, errors, past_senders;
    uint64_t tok_compared, tok_changed;
    size_t tok_groups;
    int sanitize;      /* the new config's keyNameSanitize, for namespaces */
    uint64_t all_sinks;
    struct kcount { uint64_t h; uint32_t n; } *kc; /* per key: senders compared */
    size_t kc_cap, kc_n;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* a chunk is filled; a job has ended */
    sy_shadow_load_fn load;
    void *load_ctx;
    sy_shadow_wake_fn wake;
    void *wake_ctx;
    char **sinks;            /* the running config's, in bit order */
    size_t nsinks;
    sy_shadow_job *job;      /* the one in progress, or NULL */
    int cancel;              /* at exit */
    atomic_int wanted;       /* job->want, for the engine's cheap look */
    /* for /metrics */
    atomic_ullong ok, failed, busy;
    atomic_ullong last_keys, last_changed, last_wall_ms, last_cpu_ms, last_engine_us, last_slice_us;
} reg = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static sy_ratelimit rl_busy = SY_RATELIMIT_INIT(10000, 2);


void sy_shadow_setup(sy_shadow_load_fn load, void *load_ctx, sy_shadow_wake_fn wake, void *wake_ctx)
{
    pthread_mutex_lock(&reg.lock);
    reg.load = load;
    reg.load_ctx = load_ctx;
    reg.wake = wake;
    reg.wake_ctx = wake_ctx;
    pthread_mutex_unlock(&reg.lock);
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static char **copy_sinks(const sy_config *c, size_t *n)
{
    char **v = calloc(c->nsinks ? c->nsinks : 1, sizeof *v);
    *n = 0;
    for (size_t i = 0; v && i < c->nsinks; i++) {
        v[i] = strdup(c->sinks[i].name);
        if (!v[i]) {
            free_names(v, i);
            return NULL;
        }
    }
    if (v)
        *n = c->nsinks;
    return v;
}

void sy_shadow_set_running(const sy_config *c)
{
    size_t n;
    char **v = copy_sinks(c, &n);
    if (!v)
        return;
    pthread_mutex_lock(&reg.lock);
    free_names(reg.sinks, reg.nsinks);
    reg.sinks = v;
    reg.nsinks = n;
    pthread_mutex_unlock(&reg.lock);
}

/* ---- the engine's side --------------------------------------------- */

int sy_shadow_wanted(void) { return atomic_load_explicit(&reg.wanted, memory_order_relaxed); }

void sy_shadow_serve(sy_agg *a)
{
    pthread_mutex_lock(&reg.lock);
    if (reg.job)
        sy_keyslice_serve(&reg.job->ks, a);
    else
        atomic_store(&reg.wanted, 0);
    pthread_mutex_unlock(&reg.lock);
}

/* ---- the job's thread ---------------------------------------------- */

static void masks(char *out, size_t cap, uint64_t mask, char **names, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && i < 64; i++)
        if (mask >> i & 1)
            len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s", len ? "," : "",
                                    names[i]);
    if (!len)
        snprintf(out, cap, "(none)");
}

/* A name's pattern: the components before `keep_tail` common last ones,
 * then ".*"; with none in common, its first component and ".*". */
static void pattern(char *out, size_t cap, const char *name, size_t len, size_t cut)
{
    if (cut >= len) {
        snprintf(out, cap, "%.*s", (int)len, name);
        return;
    }
    snprintf(out, cap, "%.*s*", (int)cut, name);
}

/* How many bytes of a and b stand before the dot-separated last
 * components they share (leaving at least one of each). */
static void common_tail(const char *a, size_t al, const char *b, size_t bl, size_t *ca, size_t *cb)
{
    size_t i = al, j = bl;
    size_t ca_ = 0, cb_ = 0;
    int found = 0;
    while (i > 0 && j > 0) {
        /* the last components a[pi..i) and b[pj..j) */
        size_t pi = i, pj = j;
        while (pi > 0 && a[pi - 1] != '.')
            pi--;
        while (pj > 0 && b[pj - 1] != '.')
            pj--;
        if (pi == 0 || pj == 0 || i - pi != j - pj || memcmp(a + pi, b + pj, i - pi) != 0)
            break;
        ca_ = pi;
        cb_ = pj;
        found = 1;
        i = pi - 1;
        j = pj - 1;
    }
    if (!found) {
        const char *da = memchr(a, '.', al), *db = memchr(b, '.', bl);
        ca_ = da ? (size_t)(da - a) + 1 : al;
        cb_ = db ? (size_t)(db - b) + 1 : bl;
    }
    *ca = ca_;
    *cb = cb_;
}

static uint64_t label_hash(const char *s) { return sy_hash(s, strlen(s), 0x13198A2E03707344ull); }

static int note_change(sy_shadow_job *j, const char *label, const char *example)
{
    int made = 0;
    size_t k = label_hash(label) & (GROUP_SLOTS - 1);
    group *g = NULL;
    while (j->groups[k]) {
        if (strcmp(j->groups[k]->label, label) == 0) {
            g = j->groups[k];
            break;
        }
        k = (k + 1) & (GROUP_SLOTS - 1);
    }
    if (!g && j->ngroups < MAX_GROUPS) {
        g = calloc(1, sizeof *g);
        if (g && !(g->label = strdup(label))) {
            free(g);
            g = NULL;
        }
        if (g) {
            j->groups[k] = g;
            j->ngroups++;
            made = 1;
        }
    }
    if (!g)
        g = &j->other;
    g->count++;
    if (g->nex < MAX_EXAMPLES) {
        char *e = strdup(example);
        if (e)
            g->ex[g->nex++] = e;
    }
    return made;
}

static const char *const type_names[] = { "c", "ms", "g", "s" };

/* How many senders of this key were compared before (the job's thread);
 * UINT32_MAX when out of memory (then it is compared). */
static uint32_t senders_seen(sy_shadow_job *j, int type, const char *key, size_t klen)
{
    uint64_t h = sy_hash(key, klen, 0x452821E638D01377ull) ^ ((uint64_t)(type + 1) * 0x9E3779B97F4A7C15ull);
    if (!h)
        h = 1;
    if ((j->kc_n + 1) * 2 > j->kc_cap) {
        size_t ncap = j->kc_cap ? j->kc_cap * 2 : 1024;
        struct kcount *nk = calloc(ncap, sizeof *nk);
        if (!nk)
            return UINT32_MAX;
        for (size_t i = 0; i < j->kc_cap; i++) {
            if (!j->kc[i].h)
                continue;
            size_t k = j->kc[i].h & (ncap - 1);
            while (nk[k].h)
                k = (k + 1) & (ncap - 1);
            nk[k] = j->kc[i];
        }
        free(j->kc);
        j->kc = nk;
        j->kc_cap = ncap;
    }
    size_t k = h & (j->kc_cap - 1);
    while (j->kc[k].h && j->kc[k].h != h)
        k = (k + 1) & (j->kc_cap - 1);
    if (!j->kc[k].h) {
        j->kc[k].h = h;
        j->kc_n++;
    }
    return j->kc[k].n++;
}

/* Compare one key's decision in force with the new config's. */
static void compare(sy_shadow_job *j, const item *it, sy_router *router, char **old_sinks,
                    size_t nold, char **new_sinks, size_t nnew)
{
    const char *key = j->ks.arena + it->key, *oname = j->ks.arena + it->name;
    if (!it->current) {
        j->stale++;
        return;
    }
    if (*(j->ks.arena + it->listener) || *(j->ks.arena + it->sender)) {
        uint32_t n = senders_seen(j, it->type, key, it->klen);
        if (n != UINT32_MAX && n >= SENDERS_PER_KEY) {
            j->past_senders++;
            return;
        }
    }
    sy_route r;
    r.renamed = 0;
    if (!router)
        r = (sy_route){ .sinks = j->all_sinks, .rate = 1 };
    else if (sy_router_decide(router, key, it->klen, type_names[it->type & 3], j->ks.arena + it->listener,
                              j->ks.arena + it->sender, &r) < 0)
        j->errors++;
    j->compared++;
    const char *nname = r.renamed ? r.key : key;
    size_t nlen = r.renamed ? r.key_len : it->klen;
    char os[512], ns[512], oraw[512], nraw[512];
    masks(os, sizeof os, it->sinks, old_sinks, nold);
    masks(ns, sizeof ns, r.drop ? 0 : r.sinks, new_sinks, nnew);
    masks(oraw, sizeof oraw, it->raw, old_sinks, nold);
    masks(nraw, sizeof nraw, r.drop ? 0 : r.raw, new_sinks, nnew);
    int ndrop = r.drop != NULL;
    int c_drop = it->drop && !ndrop ? 2 : !it->drop && ndrop ? 1 : 0;
    int both_drop = it->drop && ndrop;
    int c_name = !both_drop && !c_drop && (nlen != it->name_len || memcmp(nname, oname, nlen) != 0);
    int c_sinks = !both_drop && !c_drop && strcmp(os, ns) != 0;
    int c_rate = !both_drop && !c_drop && it->rate != r.rate;
    int c_raw = !both_drop && !c_drop && strcmp(oraw, nraw) != 0;
    if (!c_drop && !c_name && !c_sinks && !c_rate && !c_raw)
        return;
    j->changed++;
    char label[LABEL_MAX], example[LABEL_MAX], op[300], np[300];
    size_t len = 0;
#define ADD(...) len += (size_t)snprintf(label + len, len < sizeof label ? sizeof label - len : 0, __VA_ARGS__)
    ADD("%s%s%s%s%s%s", c_drop == 1 ? "+dropped" : "", c_drop == 2 ? "+kept" : "",
        c_name ? "+renamed" : "", c_sinks ? "+sinks" : "", c_rate ? "+sample" : "",
        c_raw ? "+passthrough" : "");
    memmove(label, label + 1, len); /* the first '+' */
    len--;
    if (c_name) {
        size_t ca, cb;
        common_tail(oname, it->name_len, nname, nlen, &ca, &cb);
        pattern(op, sizeof op, oname, it->name_len, ca);
        pattern(np, sizeof np, nname, nlen, cb);
        ADD(": %s -> %s", op, np);
    } else {
        const char *dot = memchr(oname, '.', it->name_len);
        pattern(op, sizeof op, oname, it->name_len, dot ? (size_t)(dot - oname) + 1 : it->name_len);
        ADD(": %s", op);
    }
    if (c_drop == 1)
        ADD(" (%s -> dropped)", os);
    if (c_drop == 2)
        ADD(" (dropped -> %s)", ns);
    if (c_sinks)
        ADD(" sinks %s -> %s", os, ns);
    if (c_rate)
        ADD(" sample %g -> %g", it->rate, r.rate);
    if (c_raw)
        ADD(" passthrough %s -> %s", oraw, nraw);
#undef ADD
    if (ndrop)
        snprintf(example, sizeof example, "%.200s|%s%s%s: dropped (%.100s)", key,
                 type_names[it->type & 3], *(j->ks.arena + it->sender) ? " from " : "",
                 j->ks.arena + it->sender, r.drop);
    else
        snprintf(example, sizeof example, "%.200s|%s%s%s -> %.200s to %.200s", key,
                 type_names[it->type & 3], *(j->ks.arena + it->sender) ? " from " : "",
                 j->ks.arena + it->sender, nname, ns);
    note_change(j, label, example);
}

/* How a token's answer reads in a report: its namespace, "(none)" when
 * allowed without one, "(refused)". */
static void tenant_name(char *out, size_t cap, int allowed, const char *ns, size_t nslen)
{
    if (!allowed)
        snprintf(out, cap, "(refused)");
    else if (!nslen)
        snprintf(out, cap, "(none)");
    else
        snprintf(out, cap, "%.*s", (int)(nslen > 200 ? 200 : nslen), ns);
}

/* Ask the new config's auth about one token the running one answered,
 * with the same listener and sender, and compare the tenants.  The token
 * itself is never written in the report. */
static void compare_token(sy_shadow_job *j, const titem *t, sy_router *router)
{
    const char *tok = j->ks.arena + t->token, *ons = j->ks.arena + t->ns;
    char raw[256], ns[SY_KEY_MAX];
    size_t n = 0;
    int rc = sy_router_authorize(router, tok, t->tlen, j->ks.arena + t->sender, j->ks.arena + t->listener, raw,
                                 sizeof raw, &n);
    if (rc < 0)
        j->errors++;
    int allowed = rc == 1;
    if (allowed && n) {
        /* as the engine does (token_check): sanitised as a key */
        int sn = sy_sanitize(ns, raw, n, j->sanitize);
        if (sn <= 0 || sn > 255) {
            allowed = 0;
            n = 0;
        } else {
            n = (size_t)sn;
        }
    }
    j->tok_compared++;
    if (allowed == t->allowed && (!allowed || (n == t->nslen && memcmp(ns, ons, n) == 0)))
        return;
    j->tok_changed++;
    char was[220], now[220], label[LABEL_MAX], example[LABEL_MAX];
    tenant_name(was, sizeof was, t->allowed, ons, t->nslen);
    tenant_name(now, sizeof now, allowed, ns, n);
    snprintf(label, sizeof label, "tenant: %s -> %s", was, now);
    snprintf(example, sizeof example, "a token from %s on %s: %s -> %s",
             *(j->ks.arena + t->sender) ? j->ks.arena + t->sender : "a local client",
             *(j->ks.arena + t->listener) ? j->ks.arena + t->listener : "-", was, now);
    j->tok_groups += (size_t)note_change(j, label, example);
}

static int by_count(const void *x, const void *y)
{
    const group *a = *(group *const *)x, *b = *(group *const *)y;
    if (a->count != b->count)
        return a->count < b->count ? 1 : -1;
    return strcmp(a->label, b->label);
}

static void write_groups(sy_shadow_job *j)
{
    group *list[MAX_GROUPS];
    size_t n = 0;
    for (size_t k = 0; k < GROUP_SLOTS; k++)
        if (j->groups[k])
            list[n++] = j->groups[k];
    qsort(list, n, sizeof *list, by_count);
    for (size_t i = 0; i < n; i++) {
        sy_buf_printf(&j->report, "group: %s: %llu\n", list[i]->label, (unsigned long long)list[i]->count);
        for (int e = 0; e < list[i]->nex; e++)
            sy_buf_printf(&j->report, "  e.g. %s\n", list[i]->ex[e]);
    }
    if (j->other.count) {
        sy_buf_printf(&j->report, "group: (other changes, past %d groups): %llu\n", MAX_GROUPS,
                      (unsigned long long)j->other.count);
        for (int e = 0; e < j->other.nex; e++)
            sy_buf_printf(&j->report, "  e.g. %s\n", j->other.ex[e]);
    }
}

static void job_free(sy_shadow_job *j)
{
    for (size_t k = 0; k < GROUP_SLOTS; k++) {
        group *g = j->groups[k];
        if (!g)
            continue;
        for (int e = 0; e < g->nex; e++)
            free(g->ex[e]);
        free(g->label);
        free(g);
    }
    for (int e = 0; e < j->other.nex; e++)
        free(j->other.ex[e]);
    sy_buf_free(&j->report);
    sy_keyslice_destroy(&j->ks);
    free(j->kc);
    free(j->file);
    free(j);
}

static void *job_run(void *arg)
{
    sy_shadow_job *j = arg;
    uint64_t t0 = sy_mono_us(), c0 = sy_thread_cpu_us();
    char err[2048] = "";
    int ok = 0;
    sy_router *router = NULL;
    char **old_sinks = NULL, **new_sinks = NULL;
    size_t nold = 0, nnew = 0;
    int origin_note = 0;
    sy_log(SY_INFO, "shadow reload of %s: loading it beside the running config", j->file);
    sy_config *c = reg.load ? reg.load(reg.load_ctx, j->file, err, sizeof err) : NULL;
    if (!c)
        goto out;
    pthread_mutex_lock(&reg.lock);
    old_sinks = calloc(reg.nsinks ? reg.nsinks : 1, sizeof *old_sinks);
    for (size_t i = 0; old_sinks && i < reg.nsinks; i++)
        if ((old_sinks[i] = strdup(reg.sinks[i])))
            nold = i + 1;
    pthread_mutex_unlock(&reg.lock);
    new_sinks = copy_sinks(c, &nnew);
    int decide = c->decide_ref, auth = c->auth_ref;
    j->sanitize = c->agg.sanitize;
    int uses_origin = c->route_uses_origin;
    struct lua_State *L = sy_config_take_lua(c);
    router = L ? sy_router_new(L, decide, auth, sy_config_all_sinks(c), c->lua_memory_limit,
                               c->lua_timeout_ms) : NULL;
    j->all_sinks = sy_config_all_sinks(c); /* without rules, every key's route */
    if (!old_sinks || !new_sinks) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    uint64_t busy_us = 0;
    for (;;) {
        if (!sy_keyslice_next(&j->ks)) {
            snprintf(err, sizeof err, "stopped (%s)", reg.cancel ? "switchyard is stopping"
                                                                 : "the asker has gone");
            goto out;
        }
        int last = j->ks.walk_done;
        origin_note = uses_origin && !j->ks.table_origin;
        /* The chunk is ours until we ask again; the engine does not touch
         * it meanwhile (it fills only when asked). */
        uint64_t w0 = sy_mono_us();
        for (size_t i = 0; i < j->ks.nitems && j->errors < MAX_ERRORS; i++)
            compare(j, &j->ks.items[i], router, old_sinks, nold, new_sinks, nnew);
        for (size_t i = 0; router && i < j->ks.ntokens && j->errors < MAX_ERRORS; i++)
            compare_token(j, &j->ks.tokens[i], router);
        uint64_t w1 = sy_mono_us();
        busy_us += w1 - w0;
        if (j->errors >= MAX_ERRORS && router) {
            const sy_router_stats *st = sy_router_get_stats(router);
            snprintf(err, sizeof err, "its rules failed on %llu keys or tokens (%llu timed out after "
                     "luaTimeout = %u ms; the others errors or luaMemoryLimit; the log names the "
                     "keys): not compared further",
                     (unsigned long long)j->errors, (unsigned long long)atomic_load(&st->timeouts),
                     c->lua_timeout_ms);
            goto out;
        }
        if (w1 - t0 > (uint64_t)SHADOW_TIMEOUT_S * 1000000u) {
            snprintf(err, sizeof err, "took longer than %d s: stopped after %llu keys",
                     SHADOW_TIMEOUT_S, (unsigned long long)j->compared);
            goto out;
        }
        if (last)
            break;
        /* at most half of a core: rest as long as we worked */
        if (w1 > w0) {
            struct timespec ts = { (time_t)((w1 - w0) / 1000000u), (long)((w1 - w0) % 1000000u) * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    uint64_t wall = sy_mono_us() - t0, cpu = sy_thread_cpu_us() - c0;
    sy_buf_printf(&j->report, "shadow: %s\n", j->file);
    sy_buf_printf(&j->report, "compared: %llu keys\n", (unsigned long long)j->compared);
    sy_buf_printf(&j->report, "unchanged: %llu\n", (unsigned long long)(j->compared - j->changed));
    sy_buf_printf(&j->report, "changed: %llu in %zu groups\n", (unsigned long long)j->changed,
                  j->ngroups - j->tok_groups + (j->other.count ? 1 : 0));
    if (j->tok_compared)
        sy_buf_printf(&j->report, "tokens: %llu compared (those answered since the last reload, each "
                      "with its listener and sender), %llu would change tenant in %zu groups\n",
                      (unsigned long long)j->tok_compared, (unsigned long long)j->tok_changed,
                      j->tok_groups);
    if (j->stale)
        sy_buf_printf(&j->report, "not compared: %llu keys not seen since the last reload (their "
                      "decision is made again when they come)\n", (unsigned long long)j->stale);
    if (j->past_senders)
        sy_buf_printf(&j->report, "not compared: %llu more senders of keys with over %d (each key "
                      "is asked about for at most %d of its recent senders)\n",
                      (unsigned long long)j->past_senders, SENDERS_PER_KEY, SENDERS_PER_KEY);
    if (j->errors)
        sy_buf_printf(&j->report, "errors: %llu keys its rules failed on (compared as the "
                      "default route)\n", (unsigned long long)j->errors);
    if (origin_note)
        sy_buf_printf(&j->report, "note: its rules look at senders and the running ones do not: "
                      "keys were asked about with no listener or sender\n");
    sy_buf_printf(&j->report, "cost: %.3f s wall, %.3f s CPU on the shadow's thread (%.3f s of it "
                  "in the rules), %.3f s on the engine in %llu slices of at most %.3f ms\n",
                  wall / 1e6, cpu / 1e6, busy_us / 1e6, j->ks.engine_us / 1e6,
                  (unsigned long long)j->ks.slices, j->ks.slice_max_us / 1e3);
    write_groups(j);
    sy_buf_printf(&j->report, "END\n\n");
    atomic_store(&reg.last_keys, j->compared);
    atomic_store(&reg.last_changed, j->changed);
    atomic_store(&reg.last_wall_ms, wall / 1000);
    atomic_store(&reg.last_cpu_ms, cpu / 1000);
    atomic_store(&reg.last_engine_us, j->ks.engine_us);
    atomic_store(&reg.last_slice_us, j->ks.slice_max_us);
    sy_log(SY_INFO, "shadow reload of %s: %llu keys compared, %llu would change, in %.3f s "
           "(%.3f s CPU; %.3f s on the engine, slices of at most %.3f ms)", j->file,
           (unsigned long long)j->compared, (unsigned long long)j->changed, wall / 1e6, cpu / 1e6,
           j->ks.engine_us / 1e6, j->ks.slice_max_us / 1e3);
    ok = 1;
out:
    if (!ok) {
        sy_buf_free(&j->report);
        sy_buf_printf(&j->report, "shadow: refused: %s\nEND\n\n", err);
        sy_log(SY_WARN, "shadow reload of %s refused: %s (switchyard_shadow_reloads_total"
               "{result=\"failed\"})", j->file, err);
    }
    atomic_fetch_add(ok ? &reg.ok : &reg.failed, 1);
    sy_router_free(router);
    sy_config_free(c);
    free_names(old_sinks, nold);
    free_names(new_sinks, nnew);
    pthread_mutex_lock(&reg.lock);
    j->done = 1;
    reg.job = NULL;
    atomic_store(&reg.wanted, 0);
    int gone = --j->refs == 0;
    if (!gone && !j->abandoned && j->ready)
        j->ready(j->ctx);
    pthread_cond_broadcast(&reg.cond);
    pthread_mutex_unlock(&reg.lock);
    if (gone)
        job_free(j);
    return NULL;
}

sy_shadow_job *sy_shadow_start(const char *file, void (*ready)(void *), void *ctx, char *why,
                               size_t cap)
{
    pthread_mutex_lock(&reg.lock);
    if (!reg.load || reg.cancel) {
        pthread_mutex_unlock(&reg.lock);
        snprintf(why, cap, "shadow reloads are not available");
        atomic_fetch_add(&reg.failed, 1);
        return NULL;
    }
    if (reg.job) {
        pthread_mutex_unlock(&reg.lock);
        atomic_fetch_add(&reg.busy, 1);
        snprintf(why, cap, "another shadow reload is in progress (one at a time); try again when "
                 "it has reported");
        sy_log_limited(&rl_busy, SY_WARN, "shadow reload of %s refused: another is in progress "
                       "(switchyard_shadow_reloads_total{result=\"busy\"})", file);
        return NULL;
    }
    sy_shadow_job *j = calloc(1, sizeof *j);
    if (j)
        j->file = strdup(file);
    if (!j || !j->file) {
        pthread_mutex_unlock(&reg.lock);
        if (j)
            free(j);
        snprintf(why, cap, "out of memory");
        atomic_fetch_add(&reg.failed, 1);
        return NULL;
    }
    j->ready = ready;
    j->ctx = ctx;
    j->refs = 2;
    sy_keyslice_init(&j->ks, SY_KEYSLICE_DECISIONS, 0, 1, &reg.wanted, reg.wake, reg.wake_ctx);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    reg.job = j;
    if (pthread_create(&t, &at, job_run, j) != 0) {
        reg.job = NULL;
        pthread_mutex_unlock(&reg.lock);
        pthread_attr_destroy(&at);
        job_free(j);
        snprintf(why, cap, "cannot start a thread");
        atomic_fetch_add(&reg.failed, 1);
        return NULL;
    }
    pthread_attr_destroy(&at);
    pthread_mutex_unlock(&reg.lock);
    return j;
}

int sy_shadow_take(sy_shadow_job *j, sy_buf *out)
{
    pthread_mutex_lock(&reg.lock);
    int done = j->done;
    if (done) {
        sy_buf_add(out, j->report.p ? j->report.p : "", j->report.len);
        j->refs--;
    }
    pthread_mutex_unlock(&reg.lock);
    if (done)
        job_free(j);
    return done;
}

void sy_shadow_abandon(sy_shadow_job *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&reg.lock);
    j->abandoned = 1;
    if (!j->done)
        sy_keyslice_stop(&j->ks);
    int gone = --j->refs == 0;
    pthread_cond_broadcast(&reg.cond);
    pthread_mutex_unlock(&reg.lock);
    if (gone)
        job_free(j);
}

void sy_shadow_shutdown(void)
{
    pthread_mutex_lock(&reg.lock);
    reg.cancel = 1;
    if (reg.job)
        sy_keyslice_stop(&reg.job->ks);
    pthread_cond_broadcast(&reg.cond);
    while (reg.job)
        pthread_cond_wait(&reg.cond, &reg.lock);
    free_names(reg.sinks, reg.nsinks);
    reg.sinks = NULL;
    reg.nsinks = 0;
    pthread_mutex_unlock(&reg.lock);
}

char *sy_shadow_prometheus(void)
{
    sy_buf b = { 0 };
    sy_buf_printf(&b, "# HELP switchyard_shadow_reloads_total Shadow reloads (reload --shadow, "
                  "switchyard diff) by result: ok, failed (the config or its rules failed, or it "
                  "took too long), busy (one was in progress).\n"
                  "# TYPE switchyard_shadow_reloads_total counter\n");
    sy_buf_printf(&b, "switchyard_shadow_reloads_total{result=\"ok\"} %llu\n",
                  (unsigned long long)atomic_load(&reg.ok));
    sy_buf_printf(&b, "switchyard_shadow_reloads_total{result=\"failed\"} %llu\n",
                  (unsigned long long)atomic_load(&reg.failed));
    sy_buf_printf(&b, "switchyard_shadow_reloads_total{result=\"busy\"} %llu\n",
                  (unsigned long long)atomic_load(&reg.busy));
    sy_buf_printf(&b, "# HELP switchyard_shadow_last_keys The last shadow reload: keys compared, "
                  "and those whose decision would change.\n# TYPE switchyard_shadow_last_keys gauge\n"
                  "switchyard_shadow_last_keys{what=\"compared\"} %llu\n"
                  "switchyard_shadow_last_keys{what=\"changed\"} %llu\n",
                  (unsigned long long)atomic_load(&reg.last_keys),
                  (unsigned long long)atomic_load(&reg.last_changed));
    sy_buf_printf(&b, "# HELP switchyard_shadow_last_seconds The last shadow reload's cost: wall "
                  "time, its thread's CPU, the engine's time and its longest slice.\n"
                  "# TYPE switchyard_shadow_last_seconds gauge\n"
                  "switchyard_shadow_last_seconds{what=\"wall\"} %.3f\n"
                  "switchyard_shadow_last_seconds{what=\"cpu\"} %.3f\n"
                  "switchyard_shadow_last_seconds{what=\"engine\"} %.6f\n"
                  "switchyard_shadow_last_seconds{what=\"engine_slice_max\"} %.6f\n",
                  atomic_load(&reg.last_wall_ms) / 1e3, atomic_load(&reg.last_cpu_ms) / 1e3,
                  atomic_load(&reg.last_engine_us) / 1e6, atomic_load(&reg.last_slice_us) / 1e6);
    return b.p;
}
