/*
 * agg.c - the key table and statsd's aggregation rules.
 *
 * Keys live in one open-addressing table (linear probing, backward-shift
 * deletion) of (hash, entry) pairs.  An entry is one allocation: its
 * header and its key bytes; it is created the first time a (type, key)
 * pair is seen, never per sample.  statsd keeps counters, timers, gauges
 * and sets in separate maps, so the type is part of the identity.
 *
 * Routing lives in the same table.  An aggregate entry remembers the
 * decision made for its key (an index into a small table of distinct
 * decisions, and the epoch it was made in), so a known key costs one
 * lookup.  Keys that a rule renames, and every key when the rules look at
 * the sender, get an alias entry in a separate namespace (type + ALIAS)
 * that names the aggregate its samples go to.
 */
#include "engine/agg.h"
#include "engine/agg_internal.h"

#include <math.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "engine/hash.h"
#include "util/clock.h"
#include "util/log.h"
#include "ingest/parse.h"
#include "engine/predecide.h"
#include "admin/tap.h"
#include "admin/top.h"

#define TOK_MAX 100000
#define RAW_MAX_SAMPLES (1u << 20)
#define RAW_MAX_BYTES (64u << 20)

/* The counters in a->st have one writer, the engine thread that owns the
 * aggregator; other threads only read them.  So the ones bumped for every
 * line and sample take a relaxed load and store, not a locked
 * read-modify-write (about 20 cycles each on this class of x86). */
static inline void stat_bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
}

static sy_ratelimit rl_bad = SY_RATELIMIT_INIT(10000, 5);
static sy_ratelimit rl_keys = SY_RATELIMIT_INIT(10000, 2);

static uint64_t next_rand(sy_agg *a)
{
    /* xorshift64*: the reservoir needs speed, not cryptography. */
    a->rng ^= a->rng >> 12;
    a->rng ^= a->rng << 25;
    a->rng ^= a->rng >> 27;
    return a->rng * 0x2545F4914F6CDD1Dull;
}

/* The slots of a large table sit in memory asked to be backed by 2 MiB
 * pages (where transparent huge pages are on, or "madvise" as Debian
 * has them): a lookup lands on a random slot, and with 4 KiB pages every
 * one of them in a 1M-key table (32 MiB of slots) is a TLB miss too, whose
 * page walk costs as much again as the slot's own cache miss (more in a
 * VM, whose walks are two-dimensional). */
#define HUGE_PAGE (2u << 20)

static slot *slots_alloc(size_t n)
{
    size_t bytes = n * sizeof(slot);
    if (bytes < HUGE_PAGE)
        return calloc(n, sizeof(slot));
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, bytes) != 0)
        return NULL;
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without THP, 4 KiB pages */
    memset(p, 0, bytes);
    return p;
}

static int table_grow(sy_agg *a)
{
    size_t ncap = a->cap ? a->cap * 2 : 1024;
    slot *ns = slots_alloc(ncap);
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

static inline uint64_t entry_hash(const sy_agg *a, const sy_entry *e)
{
    return type_hash(sy_hash(e->key, e->key_len, a->seed), e->type);
}

static void list_append(sy_agg *a, sy_entry *e)
{
    e->next = NULL;
    e->prev = a->tail[e->type];
    if (e->prev)
        e->prev->next = e;
    else
        a->head[e->type] = e;
    a->tail[e->type] = e;
    a->count[e->type]++;
}


static void list_remove(sy_agg *a, sy_entry *e)
{
    if (a->walks)
        sy_agg_walks_forget(a, e);
    if (e->flags & F_BUDGET) {
        sy_budgets_release(a->budgets, e);
        e->flags &= (uint8_t)~F_BUDGET;
    }
    if (e->prev)
        e->prev->next = e->next;
    else
        a->head[e->type] = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        a->tail[e->type] = e->prev;
    a->count[e->type]--;
}

/* Backward-shift deletion keeps probe chains intact without tombstones.
 * The entry (of hash h) has left its list already (list_remove). */
static void slots_remove(sy_agg *a, sy_entry *e, uint64_t h)
{
    size_t mask = a->cap - 1;
    size_t i = h & mask;
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

void sy_agg_table_remove(sy_agg *a, sy_entry *e)
{
    list_remove(a, e);
    slots_remove(a, e, entry_hash(a, e));
}

/* A flush deletes e, found in a slot of hash h: off its list now (the
 * list's links then note the dead list and the hash), out of the slots
 * after the flush's walk over them. */
static void mark_dead(sy_agg *a, sy_snapshot *s, sy_entry *e, uint64_t h)
{
    list_remove(a, e);
    e->next_dead = s->dead;
    e->dead_hash = h;
    s->dead = e;
}

/* Puts a new entry in the first free slot of its probe sequence (the
 * caller made room) and at the end of the key list. */
static void table_put(sy_agg *a, sy_entry *e, uint64_t h)
{
    size_t mask = a->cap - 1, i = h & mask;
    while (a->slots[i].e)
        i = (i + 1) & mask;
    a->slots[i].hash = h;
    a->slots[i].e = e;
    a->n++;
    list_append(a, e);
}

static sy_entry *entry_new(sy_agg *a, uint64_t h, int type, const char *key, size_t len)
{
    if ((a->n + 1) * 10 > a->cap * 7 && table_grow(a) < 0)
        return NULL;
    sy_entry *e = malloc(sizeof *e + len + 1);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    e->type = (uint8_t)type;
    e->key_len = (uint16_t)len;
    e->ttl = -1;
    e->listener = a->listener; /* where it was first seen from (top) */
    e->tenant = a->tenant;
    e->flags = F_OWN;
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    /* statsd's deleteCounters spares any counter whose name contains one of
     * its own counters' names (a substring test, so user keys too). */
    if (type == SY_T_COUNTER &&
        (strstr(e->key, "packets_received") || strstr(e->key, "metrics_received") ||
         strstr(e->key, "bad_lines_seen")))
        e->flags |= F_KEEP;
    table_put(a, e, h);
    atomic_store_explicit(&a->st.keys, a->n, memory_order_relaxed);
    return e;
}

static void entry_free(sy_entry *e)
{
    if (e->type >= ALIAS) {
        free(e);
        return;
    }
    if (e->type == SY_T_TIMER && e->u.timer) {
        free(e->u.timer->v);
        free(e->u.timer);
    } else if (e->type == SY_T_SET) {
        sy_agg_hset_free(e->u.set);
    }
    free(e);
}

/* Series budgets: may the current line create a new key?  On yes, the
 * charge waits in a->charge for the entry that is created for the key
 * (budget_attach); what is not attached is given back (budget_settle). */
static int budget_admit(sy_agg *a, const char *key, size_t klen)
{
    a->charge = 0;
    if (!sy_budgets_count(a->budgets))
        return 1;
    const sy_origin *o = a->origin;
    const char *lname = (o && o->listener < a->nlisteners) ? a->listeners[o->listener].name : "";
    return sy_budgets_admit(a->budgets, key, klen, a->tenant_ns, a->tenant_len, lname, &a->charge);
}

static void budget_attach(sy_agg *a, sy_entry *e)
{
    if (!a->charge)
        return;
    if (e && !(e->flags & F_BUDGET) && sy_budgets_attach(a->budgets, e, a->charge) == 0)
        e->flags |= F_BUDGET;
    else if (!e || (e->flags & F_BUDGET))
        sy_budgets_uncount(a->budgets, a->charge);
    a->charge = 0;
}

static void budget_settle(sy_agg *a)
{
    if (a->charge)
        sy_budgets_uncount(a->budgets, a->charge);
    a->charge = 0;
}

/* An entry replaced by another for the same key (re-decided after a
 * reload): its charge moves to the replacement, which is not asked again,
 * so a budget lowered by the reload evicts nothing. */
static uint64_t budget_carry(sy_agg *a, sy_entry *e)
{
    if (!(e->flags & F_BUDGET))
        return 0;
    e->flags &= (uint8_t)~F_BUDGET;
    return sy_budgets_detach(a->budgets, e);
}

/* Find or create; NULL when the key limit (or memory) says no.  statsd's
 * own keys (internal) are exempt from the limit. */
static inline sy_entry *find_entry(sy_agg *a, uint64_t h, int type, const char *key, size_t len,
                                   int own, uint64_t sinks);

/* kh is sy_hash of the key (the type is mixed in here): a line's samples
 * share it, and the batched feed computed it while parsing ahead. */
static inline sy_entry *lookup_in_h(sy_agg *a, int type, const char *key, size_t len, int internal,
                                    uint64_t kh)
{
    uint64_t h = type_hash(kh, type);
    sy_entry *e = find_entry(a, h, type, key, len, 1, 0);
    if (e)
        return e;
    if (!internal && a->o.max_keys && a->n >= a->o.max_keys) {
        atomic_fetch_add_explicit(&a->st.keys_rejected, 1, memory_order_relaxed);
        sy_log_limited(&rl_keys, SY_WARN, "key limit (%zu) reached: new keys are dropped",
                       a->o.max_keys);
        return NULL;
    }
    if (!internal && !budget_admit(a, key, len))
        return NULL;
    e = entry_new(a, h, type, key, len);
    budget_attach(a, e);
    return e;
}

static sy_entry *lookup_in(sy_agg *a, int type, const char *key, size_t len, int internal)
{
    return lookup_in_h(a, type, key, len, internal, sy_hash(key, len, a->seed));
}

const sy_agg_stats *sy_agg_get_stats(const sy_agg *a) { return &a->st; }
size_t sy_agg_key_count(const sy_agg *a) { return a->n; }

static void bad_line(sy_agg *a, const char *line, size_t len)
{
    a->e_bad->u.value += 1;
    atomic_fetch_add_explicit(&a->st.bad_lines, 1, memory_order_relaxed);
    sy_log_limited(&rl_bad, SY_WARN, "bad line (counted in bad_lines_seen): %.*s", (int)(len > 200 ? 200 : len), line);
}

static sy_ratelimit rl_long = SY_RATELIMIT_INIT(10000, 3);

/* Counted on its own, beside bad_lines_seen, since statsd accepts any key
 * length: an operator should see why these lines were refused. */
static void key_too_long(sy_agg *a, const char *line, size_t len)
{
    atomic_fetch_add_explicit(&a->st.keys_too_long, 1, memory_order_relaxed);
    sy_log_limited(&rl_long, SY_WARN,
                   "line refused: its key is longer than %d bytes, tags included (counted in "
                   "bad_lines_seen and switchyard_keys_too_long_total): %.*s...",
                   SY_KEY_MAX - 1, (int)(len > 120 ? 120 : len), line);
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

/* ---- routing ------------------------------------------------------ */

static const char *sender_str(sy_agg *a)
{
    if (a->sender_ready)
        return a->sender;
    a->sender[0] = '\0';
    const sy_origin *o = a->origin;
    if (o && (o->family == AF_INET || o->family == AF_INET6))
        inet_ntop(o->family, o->addr, a->sender, sizeof a->sender);
    a->sender_ready = 1;
    return a->sender;
}

static const char *listener_name(sy_agg *a)
{
    const sy_origin *o = a->origin;
    return (o && o->listener < a->nlisteners) ? a->listeners[o->listener].name : "";
}

static uint32_t route_intern(sy_agg *a, const route_info *ri)
{
    for (uint32_t i = 0; i < a->nroutes; i++) {
        const route_info *r = &a->routes[i];
        if (r->sinks == ri->sinks && r->raw == ri->raw && r->rate == ri->rate && r->drop == ri->drop &&
            r->why == ri->why)
            return i;
    }
    if (a->nroutes == a->cap_routes) {
        route_info *nr = realloc(a->routes, a->cap_routes * 2 * sizeof *nr);
        if (!nr)
            return 0; /* the default route */
        a->routes = nr;
        a->cap_routes *= 2;
    }
    a->routes[a->nroutes] = *ri;
    return a->nroutes++;
}

static const char *const type_names[] = { "c", "ms", "g", "s" };

/* A drop reason kept once, so that routes share it; past SY_REASONS_MAX
 * distinct ones (a script that writes the key into its reason) a drop is
 * shown with the generic reason and costs no more routes. */
static const char *reason_intern(sy_agg *a, const char *why)
{
    for (size_t i = 0; i < a->nreasons; i++)
        if (strcmp(a->reasons[i], why) == 0)
            return a->reasons[i];
    if (a->nreasons == SY_REASONS_MAX)
        return "dropped";
    char *c = strndup(why, 120);
    if (!c)
        return "dropped";
    a->reasons[a->nreasons++] = c;
    return c;
}

/* The index of a tenant (a token's namespace) for top: 1.. for the first
 * SY_TENANTS_MAX - 2 seen, then SY_TENANTS_MAX - 1 for any other. */
static uint8_t tenant_of(sy_agg *a, const char *ns, size_t n)
{
    for (uint8_t i = 1; i <= a->ntenants; i++)
        if (strlen(a->tenants[i]) == n && memcmp(a->tenants[i], ns, n) == 0)
            return i;
    if (a->ntenants >= SY_TENANTS_MAX - 2)
        return SY_TENANTS_MAX - 1;
    char *c = strndup(ns, n);
    if (!c)
        return SY_TENANTS_MAX - 1;
    a->tenants[++a->ntenants] = c;
    return a->ntenants;
}

static size_t alias_key(sy_agg *a, const char *key, size_t klen, char *out);

/* Ask the script, once; an error takes the default route.  After a reload
 * the decision made before it was applied is taken instead (predecide.h). */
static uint32_t decide(sy_agg *a, int type, const char *key, size_t klen, sy_route *r)
{
    if (!a->router) {
        r->renamed = 0;
        return 0;
    }
    char ak[SY_KEY_MAX + 32];
    int prepared = a->pre != NULL;
    if (prepared && sy_predecided_get(a->pre, type, ak, alias_key(a, key, klen, ak), r)) {
        atomic_fetch_add_explicit(&a->st.predecided, 1, memory_order_relaxed);
    } else {
        /* With a reload's table in use, a miss is a key the reload did not
         * know: first seen while it was prepared, or idle during it. */
        if (prepared)
            atomic_fetch_add_explicit(&a->st.predecide_misses, 1, memory_order_relaxed);
        if (sy_router_decide(a->router, key, klen, type_names[type], listener_name(a),
                             sender_str(a), r) < 0)
            atomic_fetch_add_explicit(&a->st.route_errors, 1, memory_order_relaxed);
    }
    route_info ri = { .sinks = r->sinks, .raw = r->raw, .rate = r->rate, .drop = r->drop != NULL,
                      .why = r->drop ? reason_intern(a, r->drop) : NULL };
    return route_intern(a, &ri);
}


static size_t origin_key(const sy_origin *o, char *out)
{
    static const uint8_t none[16];
    uint16_t l = o ? o->listener : 0xffff;
    memcpy(out, &l, 2);
    out[2] = (char)(o ? o->family : 0);
    memcpy(out + 3, o ? o->addr : none, 16);
    return ORIGIN_KEY_LEN;
}

/* The alias namespace's key: the key, and with sender-dependent rules the
 * origin (above) after a NUL.  All such keys of one length share the
 * key's length, so a key holding a NUL (unsanitised) cannot pass for
 * another key's origin. */
static size_t alias_key(sy_agg *a, const char *key, size_t klen, char *out)
{
    memcpy(out, key, klen);
    if (!a->uses_origin)
        return klen;
    out[klen] = '\0';
    return klen + 1 + origin_key(a->origin, out + klen + 1);
}

void sy_agg_use_predecided(sy_agg *a, sy_predecided *p)
{
    sy_predecided_free(a->pre);
    a->pre = p;
    a->pre_flushes = 2;
}

int sy_agg_uses_origin(const sy_agg *a) { return a->uses_origin; }
size_t sy_agg_table_cap(const sy_agg *a) { return a->cap; }

static sy_entry *alias_new(sy_agg *a, uint64_t h, int type, const char *ak, size_t aklen,
                           const char *target, size_t tlen, uint32_t route)
{
    if (a->o.max_keys && a->n >= a->o.max_keys) {
        atomic_fetch_add_explicit(&a->st.keys_rejected, 1, memory_order_relaxed);
        return NULL;
    }
    if ((a->n + 1) * 10 > a->cap * 7 && table_grow(a) < 0)
        return NULL;
    sy_entry *e = malloc(sizeof *e + aklen + 1 + tlen + 1);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    e->type = (uint8_t)(type + ALIAS);
    e->key_len = (uint16_t)aklen;
    e->u.target_len = (uint32_t)tlen;
    e->epoch = a->epoch;
    e->route = route;
    memcpy(e->key, ak, aklen);
    e->key[aklen] = '\0';
    memcpy(e->key + aklen + 1, target, tlen);
    e->key[aklen + 1 + tlen] = '\0';
    table_put(a, e, h);
    budget_attach(a, e);
    return e;
}

static uint64_t route_sinks(const sy_agg *a, uint32_t idx)
{
    const route_info *ri = &a->routes[idx < a->nroutes ? idx : 0];
    return ri->drop ? 0 : ri->sinks;
}

/* An aggregate's identity is (type, name, sinks): samples that reach a name
 * by different routes merge when they go to the same sinks, and stay apart
 * when they do not (one key routed per sender to different sinks). */
static inline __attribute__((always_inline)) sy_entry *find_entry(sy_agg *a, uint64_t h, int type,
                                                                   const char *key, size_t len,
                                                                   int own, uint64_t sinks)
{
    size_t mask = a->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        sy_entry *e = a->slots[i].e;
        if (!e)
            return NULL;
        if (a->slots[i].hash != h || e->type != type || e->key_len != len ||
            memcmp(e->key, key, len) != 0 || (e->flags & F_RETIRE))
            continue;
        if (own ? (e->flags & F_OWN) != 0 : route_sinks(a, e->route) == sinks)
            return e;
    }
}

/* The aggregate for (type, name) going to the sinks of decision idx. */
static sy_entry *target(sy_agg *a, int type, const char *key, size_t len, uint32_t idx, int own)
{
    uint64_t h = type_hash(sy_hash(key, len, a->seed), type);
    uint64_t sinks = route_sinks(a, idx);
    sy_entry *t = find_entry(a, h, type, key, len, 0, sinks);
    if (!t) {
        if (a->o.max_keys && a->n >= a->o.max_keys) {
            atomic_fetch_add_explicit(&a->st.keys_rejected, 1, memory_order_relaxed);
            sy_log_limited(&rl_keys, SY_WARN, "key limit (%zu) reached: new keys are dropped",
                           a->o.max_keys);
            return NULL;
        }
        t = entry_new(a, h, type, key, len);
        if (!t)
            return NULL;
        t->flags &= (uint8_t)~F_OWN;
        t->route = idx;
        t->epoch = a->epoch;
    } else if (t->epoch != a->epoch) {
        t->route = idx; /* same sinks; the newest decision's rate and raw */
        t->epoch = a->epoch;
    }
    if (own && !(t->flags & F_OWN)) {
        t->flags |= F_OWN;
        t->route = idx;
    }
    if (own)
        budget_attach(a, t);
    return t;
}

/*
 * Where a sample of (type, key) goes: the aggregate entry (NULL when it is
 * not aggregated or the key limit refused it), the decision, and the final
 * name.  One lookup for a known key that is not renamed.
 */
static sy_entry *resolve(sy_agg *a, int type, const char *key, size_t klen, uint64_t kh,
                         uint32_t *route, const char **fname, size_t *flen)
{
    sy_route r;
    int decided = 0;
    uint32_t idx = 0;
    uint64_t carry = 0; /* the budgets' charge of an entry this key replaces */
    *fname = key;
    *flen = klen;
    if (!a->uses_origin) {
        uint64_t h = type_hash(kh, type);
        sy_entry *e = find_entry(a, h, type, key, klen, 1, 0);
        if (e && e->epoch != a->epoch) {
            idx = decide(a, type, key, klen, &r);
            decided = 1;
            if (r.renamed && (e->flags & F_KEEP))
                r.renamed = 0; /* statsd's own counters keep their names */
            if (!r.renamed && route_sinks(a, idx) == route_sinks(a, e->route)) {
                e->route = idx;
                e->epoch = a->epoch;
            } else if (e->flags & F_KEEP) {
                e->route = idx; /* never retired: it is held by pointer */
                e->epoch = a->epoch;
            } else {
                /* Renamed or sent elsewhere now: flushed once more where it
                 * went before, then deleted. */
                e->flags |= F_RETIRE;
                carry = budget_carry(a, e);
                e = NULL;
            }
        }
        if (e) {
            e->flags |= F_TOUCHED;
            *route = e->route;
            return route_sinks(a, e->route) ? e : NULL;
        }
    }
    char ak[SY_KEY_MAX + 32];
    size_t aklen = alias_key(a, key, klen, ak);
    uint64_t ah = type_hash(sy_hash(ak, aklen, a->seed), type + ALIAS);
    sy_entry *al = table_find(a, ah, type + ALIAS, ak, aklen);
    if (al && al->epoch != a->epoch) {
        carry |= budget_carry(a, al);
        sy_agg_table_remove(a, al); /* never in a snapshot: safe to free now */
        entry_free(al);
        al = NULL;
    }
    if (!al) {
        /* A new key (nothing of it to replace): its budgets are asked
         * before Lua is, so a refused flood costs no routing calls. */
        if (!decided && !carry && !budget_admit(a, key, klen)) {
            a->refused = 1;
            *route = 0;
            return NULL;
        }
        if (carry)
            a->charge = carry;
        if (!decided)
            idx = decide(a, type, key, klen, &r);
        if (!a->uses_origin && !r.renamed) {
            sy_entry *e = target(a, type, key, klen, idx, 1);
            if (e)
                e->flags |= F_TOUCHED;
            *route = idx;
            return route_sinks(a, idx) ? e : NULL;
        }
        al = alias_new(a, ah, type, ak, aklen, r.renamed ? r.key : key,
                       r.renamed ? r.key_len : klen, idx);
        if (!al) {
            *route = idx;
            return NULL;
        }
    }
    al->flags |= F_TOUCHED;
    *route = al->route;
    *fname = al->key + al->key_len + 1;
    *flen = al->u.target_len;
    if (!route_sinks(a, al->route))
        return NULL;
    return target(a, type, *fname, *flen, al->route, 0);
}

static sy_ratelimit rl_raw = SY_RATELIMIT_INIT(10000, 1);

/* Copy one raw sample into the batch the output takes next: 0, or -1 when
 * it does not fit (RAW_MAX_*) or memory ran out. */
static int raw_store(sy_agg *a, const char *name, size_t nlen, const sy_sample *s, uint64_t mask)
{
    sy_raw_batch *b = a->raw;
    if (!b) {
        b = a->raw = calloc(1, sizeof *b);
        if (!b)
            return -1;
    }
    size_t need = nlen + s->text_len + s->tags_len + 3;
    if (b->n >= RAW_MAX_SAMPLES || b->used + need > RAW_MAX_BYTES)
        return -1;
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 256;
        sy_sample *ns = realloc(b->samples, ncap * sizeof *ns);
        if (!ns)
            return -1;
        b->samples = ns;
        uint64_t *nm = realloc(b->masks, ncap * sizeof *nm);
        if (!nm)
            return -1;
        b->masks = nm;
        int64_t *nt = realloc(b->ts_ms, ncap * sizeof *nt);
        if (!nt)
            return -1;
        b->ts_ms = nt;
        b->cap = ncap;
    }
    if (b->used + need > b->arena_cap) {
        /* Grow by moving: pointers into the arena are fixed up below. */
        size_t ncap = b->arena_cap ? b->arena_cap * 2 : 64 * 1024;
        while (ncap < b->used + need)
            ncap *= 2;
        char *na = malloc(ncap);
        if (!na)
            return -1;
        if (b->used)
            memcpy(na, b->arena, b->used);
        for (size_t i = 0; i < b->n; i++) {
            b->samples[i].name = na + (b->samples[i].name - b->arena);
            b->samples[i].text = na + (b->samples[i].text - b->arena);
            b->samples[i].tags = na + (b->samples[i].tags - b->arena);
        }
        free(b->arena);
        b->arena = na;
        b->arena_cap = ncap;
    }
    sy_sample *o = &b->samples[b->n];
    *o = *s;
    char *p = b->arena + b->used;
    o->name = p;
    o->name_len = (uint32_t)nlen;
    memcpy(p, name, nlen);
    p[nlen] = '\0';
    p += nlen + 1;
    o->text = p;
    memcpy(p, s->text, s->text_len);
    p[s->text_len] = '\0';
    p += s->text_len + 1;
    o->tags = p;
    memcpy(p, s->tags, s->tags_len);
    p[s->tags_len] = '\0';
    p += s->tags_len + 1;
    b->used = (size_t)(p - b->arena);
    b->ts_ms[b->n] = a->cur_ts_ms;
    b->masks[b->n++] = mask;
    return 0;
}

static void raw_append(sy_agg *a, const char *name, size_t nlen, const sy_sample *s, uint64_t mask)
{
    if (raw_store(a, name, nlen, s, mask) == 0) {
        atomic_fetch_add_explicit(&a->st.passed_through, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&a->st.raw_dropped, 1, memory_order_relaxed);
    sy_log_limited(&rl_raw, SY_WARN, "pass-through samples dropped: more arrived than one batch "
                   "holds before the output took it (switchyard_passthrough_dropped_total)");
}

static sy_ratelimit rl_dd = SY_RATELIMIT_INIT(10000, 1);

/* A DogStatsD event or service check, for the dogstatsdEvents sinks: the
 * line as received (token removed) rides the raw batch as a sample of type
 * SY_RAW_DD_LINE, whose text is the line.  Lines longer than SY_DD_LINE_MAX,
 * or that the batch cannot hold, are counted and logged. */
static void dd_forward(sy_agg *a, const char *line, size_t len, int event)
{
    const char *what = event ? "event" : "service check";
    if (len && line[len - 1] == '\r')
        len--; /* a CRLF line's terminator, not its text */
    if (len > SY_DD_LINE_MAX) {
        atomic_fetch_add_explicit(&a->st.dd_dropped, 1, memory_order_relaxed);
        sy_log_limited(&rl_dd, SY_WARN, "DogStatsD %s of %zu bytes not forwarded: more than %u "
                       "(switchyard_dogstatsd_dropped_total)", what, len, (unsigned)SY_DD_LINE_MAX);
        return;
    }
    sy_sample s = { .text = line, .text_len = (uint32_t)len, .tags = "", .rate = 1,
                    .type = SY_RAW_DD_LINE };
    if (raw_store(a, "", 0, &s, a->o.dd_sinks) == 0) {
        atomic_fetch_add_explicit(&a->st.dd_forwarded, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&a->st.dd_dropped, 1, memory_order_relaxed);
    sy_log_limited(&rl_dd, SY_WARN, "DogStatsD %s not forwarded: more raw lines arrived than one "
                   "batch holds before the output took them (switchyard_dogstatsd_dropped_total)", what);
}

sy_raw_batch *sy_agg_take_raw(sy_agg *a)
{
    sy_raw_batch *b = a->raw;
    if (!b || b->n == 0)
        return NULL;
    a->raw = NULL;
    return b;
}

size_t sy_agg_raw_pending(const sy_agg *a) { return a->raw ? a->raw->n : 0; }

void sy_raw_batch_free(sy_raw_batch *b)
{
    if (!b)
        return;
    free(b->samples);
    free(b->masks);
    free(b->ts_ms);
    free(b->arena);
    free(b);
}

/* top: the samples and bytes since the last charge go to the listener
 * and tenant in force (they changed since, or top or a flush wants the
 * figures). */
void sy_agg_top_charge(sy_agg *a)
{
    uint64_t n = a->top_samples - a->top_mark_samples, b = a->top_bytes - a->top_mark_bytes;
    a->arrivals.lsamples[a->listener] += n;
    a->arrivals.lbytes[a->listener] += b;
    a->arrivals.tsamples[a->tenant] += n;
    a->arrivals.tbytes[a->tenant] += b;
    a->top_mark_samples = a->top_samples;
    a->top_mark_bytes = a->top_bytes;
}

/* The listener and tenant of what is fed next: a change (per record, or
 * per line with tokens) charges what came before. */
static inline void top_attribute(sy_agg *a, uint8_t listener, uint8_t tenant)
{
    if (__builtin_expect(listener != a->listener || tenant != a->tenant, 0)) {
        sy_agg_top_charge(a);
        a->listener = listener;
        a->tenant = tenant;
    }
}

/*
 * Apply one parsed sample: route it, then statsd's handlePacket.  bytes
 * is the line's size for its first sample (0 for the others), for top.
 * With t (a tapped line; see sy_agg_line) the decision is told to the
 * open taps; the hot path calls this with t NULL, which inlining folds
 * away.
 */
static inline int table_type(uint8_t sample_type)
{
    return sample_type == SY_SAMPLE_COUNTER ? SY_T_COUNTER
         : sample_type == SY_SAMPLE_TIMER ? SY_T_TIMER
         : sample_type == SY_SAMPLE_GAUGE ? SY_T_GAUGE : SY_T_SET;
}

static inline __attribute__((always_inline)) void apply(sy_agg *a, const char *key, size_t klen,
                                                        uint64_t kh, sy_sample *s, uint32_t bytes,
                                                        sy_tap_event *t)
{
    int type = table_type(s->type);
    sy_entry *e;
    if (t) {
        t->name = key;
        t->nlen = klen;
        t->sinks = a->all_sinks;
        t->raw = 0;
        t->rate = 1;
        t->reason = NULL;
    }
    if (!a->router) {
        e = lookup_in_h(a, type, key, klen, 0, kh);
        if (e) {
            e->samples++;
            e->bytes += bytes;
            a->top_samples++;
            a->top_bytes += bytes;
        }
    } else {
        uint32_t idx;
        const char *fname;
        size_t flen;
        e = resolve(a, type, key, klen, kh, &idx, &fname, &flen);
        budget_settle(a);
        if (a->refused) {
            a->refused = 0;
            if (t) {
                t->outcome = SY_TAP_BUDGET;
                sy_tap_emit(t);
            }
            return;
        }
        if (e) {
            e->samples++;
            e->bytes += bytes;
            a->top_samples++;
            a->top_bytes += bytes;
        }
        const route_info *ri = &a->routes[idx];
        if (t) {
            t->name = fname;
            t->nlen = flen;
            t->sinks = ri->sinks;
            t->raw = ri->raw;
            t->rate = ri->rate;
        }
        if (ri->drop) {
            atomic_fetch_add_explicit(&a->st.routed_drops, 1, memory_order_relaxed);
            if (t) {
                t->outcome = SY_TAP_DROPPED;
                t->reason = ri->why ? ri->why : "dropped";
                sy_tap_emit(t);
            }
            return;
        }
        if (ri->rate < 1) {
            /* Keep a fraction p and scale what is kept by 1/p, as statsd
             * does for @rate, so totals stay unbiased. */
            double u = (double)(next_rand(a) >> 11) * 0x1.0p-53;
            if (u >= ri->rate) {
                atomic_fetch_add_explicit(&a->st.sampled_out, 1, memory_order_relaxed);
                if (t) {
                    t->outcome = SY_TAP_SAMPLED_OUT;
                    sy_tap_emit(t);
                }
                return;
            }
            s->rate *= ri->rate;
        }
        if (ri->raw)
            raw_append(a, fname, flen, s, ri->raw);
        if (!ri->sinks) {
            if (t) {
                t->outcome = SY_TAP_ROUTED;
                sy_tap_emit(t);
            }
            return;
        }
    }
    if (t) {
        t->outcome = e ? SY_TAP_ROUTED : SY_TAP_LIMIT;
        sy_tap_emit(t);
    }
    if (!e)
        return;
    switch (type) {
    case SY_T_COUNTER:
        /* statsd: value * (1 / rate); at rate 1 that is value exactly. */
        e->u.value += s->rate == 1 ? s->value : s->value * (1 / s->rate);
        break;
    case SY_T_TIMER:
        timer_add(a, e, s->value, s->rate);
        break;
    case SY_T_GAUGE:
        if (a->o.delete_gauges)
            e->ttl = a->o.gauges_max_ttl;
        /* statsd: `if (gauges[key] && /^[-+]/)` - a delta adds to a gauge
         * whose value is truthy; on one that is missing, 0, -0 or NaN it
         * sets it ("-0" gives -0, which 0 + -0 would not). */
        if (s->is_delta && e->u.value != 0 && !isnan(e->u.value))
            e->u.value += s->value;
        else
            e->u.value = s->value;
        break;
    default:
        sy_agg_set_insert(a, e, s->text, s->text_len);
        break;
    }
}

static sy_ratelimit rl_auth = SY_RATELIMIT_INIT(10000, 3);

/* statsgod's scheme: "TOKEN.metric:1|c".  Answers are cached per token and
 * everything the auth hook is given (listener, address family, sender
 * address: origin_key), so that a decision made on one listener or family
 * is never reused on another; the cache is emptied at reload and when it grows past TOK_MAX
 * (a client spraying tokens costs Lua calls, never memory). */
static int token_check(sy_agg *a, const char *tok, size_t tlen, char *ns, size_t *nslen)
{
    char k[256 + 1 + ORIGIN_KEY_LEN];
    if (tlen > 256)
        return 0;
    memcpy(k, tok, tlen);
    k[tlen] = '\0';
    size_t klen = tlen + 1 + origin_key(a->origin, k + tlen + 1);
    uint64_t h = sy_hash(k, klen, a->seed ^ 0x70c3e70c3e70c3eull);
    for (tok_entry *t = a->toks[h % TOK_BUCKETS]; t; t = t->next) {
        if (t->hash == h && t->len == klen && memcmp(t->data, k, klen) == 0) {
            memcpy(ns, t->data + t->len, t->nslen);
            *nslen = t->nslen;
            return t->allowed;
        }
    }
    char nsbuf[SY_KEY_MAX], raw[256];
    size_t n = 0;
    int rc = sy_router_authorize(a->router, tok, tlen, sender_str(a), listener_name(a), raw,
                                 sizeof raw, &n);
    if (rc < 0)
        atomic_fetch_add_explicit(&a->st.route_errors, 1, memory_order_relaxed);
    int allowed = rc == 1;
    if (allowed && n) {
        /* The namespace becomes part of the key: sanitised like it. */
        int sn = sy_sanitize(nsbuf, raw, n, a->o.sanitize);
        if (sn <= 0 || sn > 255) {
            allowed = 0;
            n = 0;
        } else {
            n = (size_t)sn;
        }
    }
    if (a->ntoks >= TOK_MAX)
        sy_agg_tokens_clear(a);
    tok_entry *t = malloc(sizeof *t + klen + n);
    if (t) {
        t->hash = h;
        t->allowed = allowed;
        t->len = (uint16_t)klen;
        t->nslen = (uint16_t)n;
        memcpy(t->data, k, klen);
        memcpy(t->data + klen, nsbuf, n);
        t->next = a->toks[h % TOK_BUCKETS];
        a->toks[h % TOK_BUCKETS] = t;
        a->ntoks++;
    }
    memcpy(ns, nsbuf, n);
    *nslen = n;
    return allowed;
}

/* A line the tap sees before it has a key: refused by auth, or bad.  The
 * glob is matched against its name (up to ':'). */
static void tap_early(sy_agg *a, const char *line, size_t len, int outcome, const char *reason,
                      const char *ns, size_t nslen)
{
    const char *colon = memchr(line, ':', len);
    sy_tap_event t = { .line = line, .len = len, .key = line,
                       .klen = colon ? (size_t)(colon - line) : len, .outcome = outcome,
                       .reason = reason, .rate = 1, .tenant = ns, .tlen = nslen,
                       .listener = listener_name(a), .sender = sender_str(a) };
    sy_tap_emit(&t);
}

static sy_ratelimit rl_ts = SY_RATELIMIT_INIT(10000, 1);

/* A DogStatsD timestamp (seconds) as the sample's time in ms for the
 * pass-through sinks, or 0 (its arrival) when it is outside the window
 * the config allows: a client's clock must not place points years away,
 * where receivers refuse a whole request for one of them. */
static __attribute__((noinline)) int64_t ts_window(sy_agg *a, int64_t ts)
{
    if (ts == 0)
        return 0;
    int64_t now = (int64_t)(sy_wall_ms() / 1000);
    if (ts != SY_PARSE_TS_BAD && ts >= now - (int64_t)a->o.ts_max_age_s &&
        ts <= now + (int64_t)a->o.ts_max_ahead_s)
        return ts * 1000;
    atomic_fetch_add_explicit(&a->st.dd_ts_outside, 1, memory_order_relaxed);
    if (ts == SY_PARSE_TS_BAD)
        sy_log_limited(&rl_ts, SY_WARN, "DogStatsD timestamp that is no time (0, or more than 12 digits) ignored, "
                       "the sample takes its arrival time (switchyard_dogstatsd_timestamps_outside_total)");
    else
        sy_log_limited(&rl_ts, SY_WARN, "DogStatsD timestamp %lld is %lld s from now, outside "
                       "[-%u, +%u] (dogstatsdTimestampMaxAge/MaxAhead): ignored, the sample takes "
                       "its arrival time (switchyard_dogstatsd_timestamps_outside_total)",
                       (long long)ts, (long long)(ts - now), a->o.ts_max_age_s, a->o.ts_max_ahead_s);
    return 0;
}

/* The part of a line after its key was parsed: the counts, the bad and
 * DogStatsD lines, the namespace; 0 when the line ends here.  The key is
 * in key (a->key when it may take a namespace, nslen > 0). */
static inline __attribute__((always_inline)) int line_head(sy_agg *a, const char *line, size_t len,
                                                           int *klenp, char *key, const char *ns,
                                                           size_t nslen, int tapping)
{
    int klen = *klenp;
    if (klen == -2)
        return 0;
    a->e_metrics->u.value += 1;
    stat_bump(&a->st.lines);
    if (klen < 0) {
        if (klen == SY_PARSE_EVENT || klen == SY_PARSE_SERVICE_CHECK) {
            stat_bump(klen == SY_PARSE_EVENT ? &a->st.dd_events : &a->st.dd_service_checks);
            if (a->o.dd_sinks)
                dd_forward(a, line, len, klen == SY_PARSE_EVENT);
            return 0;
        }
        if (klen == SY_PARSE_TOO_LONG)
            key_too_long(a, line, len);
        bad_line(a, line, len);
        if (tapping)
            tap_early(a, line, len, SY_TAP_BAD, klen == SY_PARSE_TOO_LONG ? "key too long" : "bad line",
                      ns, nslen);
        return 0;
    }
    if (nslen) {
        /* The token's namespace goes in front: "tenant1.api.req". */
        if ((size_t)klen + nslen + 1 >= SY_KEY_MAX) {
            key_too_long(a, line, len);
            bad_line(a, line, len);
            if (tapping)
                tap_early(a, line, len, SY_TAP_BAD, "key too long", ns, nslen);
            return 0;
        }
        memmove(key + nslen + 1, key, (size_t)klen + 1);
        memcpy(key, ns, nslen);
        key[nslen] = '.';
        *klenp = klen + (int)nslen + 1;
    }
    return 1;
}

/* A line's samples, the first one (rc, *s) already parsed; kh is sy_hash
 * of the key. */
static inline __attribute__((always_inline)) void line_samples(sy_agg *a, const char *line, size_t len,
                                                               sy_line *it, const char *key, size_t klen,
                                                               uint64_t kh, int rc, sy_sample *s,
                                                               const char *ns, size_t nslen,
                                                               uint32_t bytes, int tapping)
{
    a->tenant_ns = ns;
    a->tenant_len = nslen;
    sy_tap_event t;
    if (tapping)
        t = (sy_tap_event){ .line = line, .len = len, .key = key, .klen = klen,
                            .tenant = ns, .tlen = nslen, .listener = listener_name(a),
                            .sender = sender_str(a) };
    for (; rc != 0; rc = sy_parse_next(it, s)) {
        if (rc < 0) {
            bad_line(a, line, len);
            if (tapping)
                tap_early(a, line, len, SY_TAP_BAD, "bad sample", ns, nslen);
            continue;
        }
        stat_bump(&a->st.samples);
        if (__builtin_expect(sy_parse_may_have_time(it), 0))
            a->cur_ts_ms = ts_window(a, sy_parse_time(it));
        apply(a, key, klen, kh, s, bytes, tapping ? &t : NULL);
        bytes = 0;
    }
    if (__builtin_expect(it->containers | it->timestamps, 0)) {
        a->cur_ts_ms = 0; /* set only on lines with a "T" field */
        /* one writer (this thread): a plain store, as stat_bump */
        atomic_store_explicit(&a->st.dd_containers, atomic_load_explicit(&a->st.dd_containers,
                              memory_order_relaxed) + it->containers, memory_order_relaxed);
        atomic_store_explicit(&a->st.dd_timestamps, atomic_load_explicit(&a->st.dd_timestamps,
                              memory_order_relaxed) + it->timestamps, memory_order_relaxed);
    }
    a->tenant_len = 0;
}

/* sy_agg_line's work; `tapping` is a constant at each call, so the hot
 * path's copy has no trace of the tap. */
static inline __attribute__((always_inline)) void line_in(sy_agg *a, const char *line, size_t len,
                                                          const sy_origin *origin, int tapping)
{
    if (origin != a->origin) {
        a->origin = origin;
        a->sender_ready = 0;
        top_attribute(a, (uint8_t)(origin ? origin->listener : 0xff), 0);
    }
    char ns[256];
    size_t nslen = 0;
    uint32_t bytes = (uint32_t)len + 1; /* with its newline */
    if (origin && origin->listener < a->nlisteners && a->listeners[origin->listener].auth) {
        if (len && line[len - 1] == '\r')
            len--;
        if (len == 0)
            return;
        const char *dot = memchr(line, '.', len);
        const char *colon = memchr(line, ':', len);
        if (!dot || dot == line || (colon && colon < dot) ||
            !token_check(a, line, (size_t)(dot - line), ns, &nslen)) {
            sy_listen_info *li = &a->listeners[origin->listener];
            atomic_fetch_add_explicit(&li->auth_rejected, 1, memory_order_relaxed);
            sy_log_limited(&rl_auth, SY_WARN, "%s: line with a missing or refused token from %s",
                           li->name, *sender_str(a) ? sender_str(a) : "a local client");
            if (tapping) {
                /* never the token itself: what follows it */
                int tok = dot && dot != line && !(colon && colon < dot);
                const char *rest = tok ? dot + 1 : line;
                tap_early(a, rest, len - (size_t)(rest - line), SY_TAP_REFUSED,
                          tok ? "token refused" : "no token", NULL, 0);
            }
            return;
        }
        len -= (size_t)(dot + 1 - line);
        line = dot + 1;
        /* the tenant, line by line (a record's lines start with none) */
        top_attribute(a, a->listener, nslen ? tenant_of(a, ns, nslen) : 0);
    }
    sy_line it;
    int klen = sy_parse_begin(&it, line, len, a->key, a->o.sanitize);
    if (!line_head(a, line, len, &klen, a->key, ns, nslen, tapping))
        return;
    sy_sample s;
    int rc = sy_parse_next(&it, &s);
    line_samples(a, line, len, &it, a->key, (size_t)klen, sy_hash(a->key, (size_t)klen, a->seed), rc,
                 &s, ns, nslen, bytes, tapping);
}

static __attribute__((noinline)) void line_tapped(sy_agg *a, const char *line, size_t len,
                                                  const sy_origin *origin)
{
    line_in(a, line, len, origin, 1);
}

void sy_agg_line(sy_agg *a, const char *line, size_t len, const sy_origin *origin)
{
    /* The tap's one cost while no tap is open: this load and branch. */
    if (__builtin_expect(atomic_load_explicit(&sy_tap_on, memory_order_relaxed) != 0, 0))
        line_tapped(a, line, len, origin);
    else
        line_in(a, line, len, origin, 0);
}

/*
 * Batched lookups.  With a million keys, the key's slot, its entry and
 * what the entry points to are each a miss in every cache, and one line
 * at a time the engine waits for them one after the other.  So a record's
 * lines are parsed PF_AHEAD lines before they are applied (the parser has
 * no side effects: it writes the key to the line's own buffer, reads the
 * first value and nothing else); at parse time the key's hash is computed
 * and its slot prefetched, PF_ENTRY lines before it is applied the slot
 * (in cache by then) names the entry with that hash, which is prefetched,
 * PF_DATA lines before, a timer's or set's data the entry points to, and
 * PF_VALUE lines before, where a timer's next value goes.
 * Lines are still applied one at a time in arrival order (gauges, the
 * first sighting's routing decision), each exactly as sy_agg_line does; a
 * prefetch that guessed wrong (the first value's type differs from a
 * later one's, a new key, a table grown meanwhile) only costs its load.
 */
static void pf_parse(sy_agg *a, sy_pf_line *q, char *key, const char *line, size_t len)
{
    q->line = line;
    q->len = len;
    q->e = NULL;
    q->klen = sy_parse_begin(&q->it, line, len, key, a->o.sanitize);
    if (q->klen < 0)
        return;
    q->rc = sy_parse_next(&q->it, &q->s);
    q->kh = sy_hash(key, (size_t)q->klen, a->seed);
    if (q->rc > 0) {
        q->h = type_hash(q->kh, table_type(q->s.type));
        __builtin_prefetch(&a->slots[q->h & (a->cap - 1)]);
    }
}

static void pf_entry(sy_agg *a, sy_pf_line *q)
{
    if (q->klen < 0 || q->rc <= 0)
        return;
    size_t mask = a->cap - 1;
    for (size_t i = q->h & mask; a->slots[i].e; i = (i + 1) & mask) {
        if (a->slots[i].hash == q->h) {
            sy_entry *e = a->slots[i].e;
            __builtin_prefetch(e);
            __builtin_prefetch(e->key + q->klen);
            q->e = e;
            return;
        }
    }
}

static void pf_data(sy_pf_line *q)
{
    sy_entry *e = q->e;
    if (!e)
        return;
    if (e->type == SY_T_TIMER && e->u.timer)
        __builtin_prefetch(e->u.timer);
    else if (e->type == SY_T_SET && e->u.set)
        __builtin_prefetch(e->u.set);
}

static void pf_value(sy_pf_line *q)
{
    sy_entry *e = q->e;
    if (e && e->type == SY_T_TIMER && e->u.timer) {
        const sy_timer_data *t = e->u.timer;
        if (t->n < t->cap)
            __builtin_prefetch(&t->v[t->n], 1);
    }
}

static void feed_batched(sy_agg *a, const char *buf, size_t len, const sy_origin *origin)
{
    const char *p = buf, *end = buf + len;
    size_t head = 0, tail = 0, near = 0, data = 0, value = 0;
    for (;;) {
        while (tail - head < PF_AHEAD && p < end) {
            /* The record itself: the reader wrote it into a ring far larger
             * than the caches, a while ago when the engine is behind. */
            __builtin_prefetch(p + 512);
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl ? nl : end;
            if (stop > p) {
                size_t k = tail++ % PF_AHEAD;
                pf_parse(a, &a->pf[k], a->pf_keys[k], p, (size_t)(stop - p));
            }
            p = stop + 1;
        }
        if (head == tail)
            break;
        size_t upto = head + PF_ENTRY < tail ? head + PF_ENTRY : tail;
        while (near < upto)
            pf_entry(a, &a->pf[near++ % PF_AHEAD]);
        upto = head + PF_DATA < near ? head + PF_DATA : near;
        while (data < upto)
            pf_data(&a->pf[data++ % PF_AHEAD]);
        upto = head + PF_VALUE < data ? head + PF_VALUE : data;
        while (value < upto)
            pf_value(&a->pf[value++ % PF_AHEAD]);
        size_t k = head++ % PF_AHEAD;
        sy_pf_line *q = &a->pf[k];
        if (__builtin_expect(atomic_load_explicit(&sy_tap_on, memory_order_relaxed) != 0, 0)) {
            line_tapped(a, q->line, q->len, origin); /* parsed again, for the tap */
            continue;
        }
        int klen = q->klen;
        if (!line_head(a, q->line, q->len, &klen, a->pf_keys[k], "", 0, 0))
            continue;
        line_samples(a, q->line, q->len, &q->it, a->pf_keys[k], (size_t)klen, q->kh, q->rc, &q->s,
                     "", 0, (uint32_t)q->len + 1, 0);
    }
}

void sy_agg_set_batch_keys(sy_agg *a, size_t keys) { a->batch_keys = keys; }

void sy_agg_feed(sy_agg *a, const char *buf, size_t len, const sy_origin *origin)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    atomic_store_explicit(&a->st.last_msg_ms, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000,
                          memory_order_relaxed);
    a->origin = origin;
    a->sender_ready = 0;
    top_attribute(a, (uint8_t)(origin ? origin->listener : 0xff), 0);
    a->e_packets->u.value += 1;
    stat_bump(&a->st.packets);
    if (a->n >= a->batch_keys &&
        !(origin && origin->listener < a->nlisteners && a->listeners[origin->listener].auth)) {
        const char *nl = memchr(buf, '\n', len);
        if (nl && nl + 1 < buf + len) {
            feed_batched(a, buf, len, origin);
            return;
        }
    }
    /* A table that fits the caches (the batched feed's work would only add
     * instructions), a record of one line (nothing to overlap its misses
     * with), or lines with tokens (the token decides the key): one line at
     * a time. */
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (stop > p)
            sy_agg_line(a, p, (size_t)(stop - p), origin);
        p = stop + 1;
    }
}
/* ---- for agg_snapshot.c (agg_internal.h) --------------------------- */
/* Out-of-line doors to the table's own helpers, so that the per-sample
 * path keeps its static (inlined) copies. */

void sy_agg_mark_dead(sy_agg *a, sy_snapshot *s, sy_entry *e, uint64_t h) { mark_dead(a, s, e, h); }
uint32_t sy_agg_decide(sy_agg *a, int type, const char *key, size_t klen, sy_route *r)
{
    return decide(a, type, key, klen, r);
}
sy_entry *sy_agg_lookup_internal(sy_agg *a, int type, const char *key, size_t len)
{
    return lookup_in(a, type, key, len, 1);
}
void sy_agg_slots_remove(sy_agg *a, sy_entry *e, uint64_t h) { slots_remove(a, e, h); }
void sy_agg_entry_free(sy_entry *e) { entry_free(e); }
int sy_agg_table_grow(sy_agg *a) { return table_grow(a); }
