/* predecide.c - see predecide.h. */
#include "engine/predecide.h"

#include <stdlib.h>
#include <string.h>

#include "engine/hash.h"

#define SEED_H 0x8f1bbcdc6ed9eba1ull
#define SEED_CHECK 0x5a827999ca62c1d6ull
#define SHARED_MAX 1024 /* distinct unrenamed decisions looked for before adding one */

#define REASON_LEN 120  /* bytes of a reason kept (the aggregator keeps as many) */

typedef struct pslot {
    uint64_t h;          /* 0: empty */
    uint32_t check;
    uint32_t dec;        /* index into decs */
} pslot;

typedef struct decision {
    uint64_t sinks, raw;
    double rate;
    uint32_t name_off, name_len; /* name_len 0: not renamed */
    uint32_t drop;       /* 0: kept; else dropped, and 1 + its reason's index
                          * (SY_PREDECIDE_REASONS + 1: the generic reason) */
} decision;

struct sy_predecided {
    pslot *slots;
    size_t cap, n;
    decision *decs;
    size_t ndecs, cap_decs;
    uint32_t shared[SHARED_MAX]; /* unrenamed decisions, to share them */
    size_t nshared;
    char *names;
    size_t names_len, names_cap;
    char *reasons[SY_PREDECIDE_REASONS]; /* the rules' drop reasons, each kept once */
    size_t nreasons;
    uint64_t reasons_cut;       /* drops given the generic reason (too many) */
};

static const char dropped_before[] = "dropped by a rule (decided before the reload was applied)";

sy_predecided *sy_predecided_new(size_t keys)
{
    sy_predecided *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    size_t cap = 4096;
    while (keys * 10 > cap * 7)
        cap *= 2;
    p->slots = calloc(cap, sizeof *p->slots);
    if (!p->slots) {
        free(p);
        return NULL;
    }
    p->cap = cap;
    return p;
}

void sy_predecided_free(sy_predecided *p)
{
    if (!p)
        return;
    free(p->slots);
    free(p->decs);
    free(p->names);
    for (size_t i = 0; i < p->nreasons; i++)
        free(p->reasons[i]);
    free(p);
}

size_t sy_predecided_bytes(const sy_predecided *p)
{
    if (!p)
        return 0;
    size_t b = sizeof *p + p->cap * sizeof *p->slots + p->cap_decs * sizeof *p->decs + p->names_cap;
    for (size_t i = 0; i < p->nreasons; i++)
        b += strlen(p->reasons[i]) + 1;
    return b;
}

uint64_t sy_predecided_reasons_cut(const sy_predecided *p) { return p ? p->reasons_cut : 0; }

/* The drop field of a decision dropped for why: its reason kept once in
 * the table (a reason is a rule's, so there are few; a route function
 * that makes one per key gets the generic one past SY_PREDECIDE_REASONS). */
static uint32_t reason_index(sy_predecided *p, const char *why)
{
    size_t n = strnlen(why, REASON_LEN);
    for (size_t i = 0; i < p->nreasons; i++)
        if (strncmp(p->reasons[i], why, n) == 0 && p->reasons[i][n] == '\0')
            return (uint32_t)i + 1;
    char *c = p->nreasons < SY_PREDECIDE_REASONS ? strndup(why, n) : NULL;
    if (!c) {
        p->reasons_cut++;
        return SY_PREDECIDE_REASONS + 1;
    }
    p->reasons[p->nreasons++] = c;
    return (uint32_t)p->nreasons;
}

size_t sy_predecided_count(const sy_predecided *p) { return p ? p->n : 0; }

static void hashes(int type, const char *k, size_t len, uint64_t *h, uint32_t *check)
{
    *h = sy_hash(k, len, SEED_H) ^ ((uint64_t)(type + 1) * 0x9E3779B97F4A7C15ull);
    if (!*h)
        *h = 1;
    *check = (uint32_t)(sy_hash(k, len, SEED_CHECK ^ (uint64_t)type) >> 17);
}

static const pslot *find(const sy_predecided *p, uint64_t h, uint32_t check)
{
    if (!p->cap)
        return NULL;
    size_t mask = p->cap - 1;
    for (size_t i = h & mask; p->slots[i].h; i = (i + 1) & mask)
        if (p->slots[i].h == h && p->slots[i].check == check)
            return &p->slots[i];
    return NULL;
}

int sy_predecided_has(const sy_predecided *p, int type, const char *k, size_t len)
{
    uint64_t h;
    uint32_t check;
    hashes(type, k, len, &h, &check);
    return find(p, h, check) != NULL;
}

static int grow(sy_predecided *p)
{
    size_t ncap = p->cap ? p->cap * 2 : 4096;
    pslot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < p->cap; i++) {
        if (!p->slots[i].h)
            continue;
        size_t j = p->slots[i].h & (ncap - 1);
        while (ns[j].h)
            j = (j + 1) & (ncap - 1);
        ns[j] = p->slots[i];
    }
    free(p->slots);
    p->slots = ns;
    p->cap = ncap;
    return 0;
}

/* The index of decision d: a shared one when it renames nothing. */
static int64_t intern(sy_predecided *p, const decision *d)
{
    if (!d->name_len) {
        for (size_t i = 0; i < p->nshared; i++) {
            const decision *s = &p->decs[p->shared[i]];
            if (s->sinks == d->sinks && s->raw == d->raw && s->rate == d->rate && s->drop == d->drop)
                return p->shared[i];
        }
    }
    if (p->ndecs == p->cap_decs) {
        size_t ncap = p->cap_decs ? p->cap_decs * 2 : 64;
        decision *nd = realloc(p->decs, ncap * sizeof *nd);
        if (!nd)
            return -1;
        p->decs = nd;
        p->cap_decs = ncap;
    }
    if (!d->name_len && p->nshared < SHARED_MAX)
        p->shared[p->nshared++] = (uint32_t)p->ndecs;
    p->decs[p->ndecs] = *d;
    return (int64_t)p->ndecs++;
}

int sy_predecided_put(sy_predecided *p, int type, const char *k, size_t len, const sy_route *r)
{
    uint64_t h;
    uint32_t check;
    hashes(type, k, len, &h, &check);
    if (find(p, h, check))
        return 0;
    if ((p->n + 1) * 10 > p->cap * 7 && grow(p) < 0)
        return -1;
    decision d = { .sinks = r->sinks, .raw = r->raw, .rate = r->rate,
                   .drop = r->drop ? reason_index(p, r->drop) : 0 };
    if (r->renamed) {
        if (p->names_len + r->key_len > p->names_cap) {
            size_t ncap = p->names_cap ? p->names_cap * 2 : 64 * 1024;
            while (ncap < p->names_len + r->key_len)
                ncap *= 2;
            char *nn = realloc(p->names, ncap);
            if (!nn)
                return -1;
            p->names = nn;
            p->names_cap = ncap;
        }
        memcpy(p->names + p->names_len, r->key, r->key_len);
        d.name_off = (uint32_t)p->names_len;
        d.name_len = (uint32_t)r->key_len;
        p->names_len += r->key_len;
    }
    int64_t dec = intern(p, &d);
    if (dec < 0)
        return -1;
    size_t mask = p->cap - 1, i = h & mask;
    while (p->slots[i].h)
        i = (i + 1) & mask;
    p->slots[i] = (pslot){ .h = h, .check = check, .dec = (uint32_t)dec };
    p->n++;
    return 0;
}

int sy_predecided_get(const sy_predecided *p, int type, const char *k, size_t len, sy_route *r)
{
    uint64_t h;
    uint32_t check;
    hashes(type, k, len, &h, &check);
    const pslot *s = find(p, h, check);
    if (!s)
        return 0;
    const decision *d = &p->decs[s->dec];
    r->sinks = d->sinks;
    r->raw = d->raw;
    r->rate = d->rate;
    r->drop = !d->drop ? NULL : d->drop <= p->nreasons ? p->reasons[d->drop - 1] : dropped_before;
    r->renamed = d->name_len != 0;
    r->key_len = d->name_len;
    if (d->name_len) {
        memcpy(r->key, p->names + d->name_off, d->name_len);
        r->key[d->name_len] = '\0';
    }
    return 1;
}
