/*
 * budget.c - series budgets (see budget.h).
 *
 * The charges are an open-addressing table (linear probing, backward-shift
 * deletion) from an entry's address to the bits of the budgets it counts
 * against: 16 bytes a charged key, at most 70% full.
 */
#include "engine/budget.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/hash.h"
#include "util/log.h"
#include "util/clock.h"

#define LOG_EVERY_MS 10000

typedef struct budget {
    int kind;
    char *value;
    size_t vlen;
    uint64_t max_keys;
    _Atomic uint64_t keys;
    _Atomic uint64_t dropped;
    uint64_t logged_ms;     /* when a refusal was last logged; 0: never */
    uint64_t unlogged;      /* refusals since then */
    char *label;
} budget;

typedef struct charge {
    const void *entry; /* NULL: free */
    uint64_t mask;
} charge;

struct sy_budgets {
    pthread_mutex_t lock;  /* list and n, against readers on other threads */
    budget *list;
    size_t n;
    charge *slots;
    size_t cap, used;      /* cap: a power of two, or 0 */
};

static const char *const kind_names[] = { "tenant", "prefix", "listener" };

sy_budgets *sy_budgets_new(void)
{
    sy_budgets *b = calloc(1, sizeof *b);
    if (b)
        pthread_mutex_init(&b->lock, NULL);
    return b;
}

static void list_free(budget *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(l[i].value);
        free(l[i].label);
    }
    free(l);
}

void sy_budgets_free(sy_budgets *b)
{
    if (!b)
        return;
    list_free(b->list, b->n);
    free(b->slots);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

size_t sy_budgets_count(const sy_budgets *b) { return b ? b->n : 0; }

static inline size_t slot_of(const sy_budgets *b, const void *entry)
{
    return (size_t)sy_mix64((uint64_t)(uintptr_t)entry, 0x9E3779B97F4A7C15ull) & (b->cap - 1);
}

int sy_budgets_configure(sy_budgets *b, const sy_limit *limits, size_t n)
{
    if (n > SY_BUDGET_MAX)
        n = SY_BUDGET_MAX;
    budget *nl = calloc(n ? n : 1, sizeof *nl);
    if (!nl)
        return -1;
    int map[SY_BUDGET_MAX]; /* old index -> new index, or -1 */
    for (size_t i = 0; i < SY_BUDGET_MAX; i++)
        map[i] = -1;
    for (size_t i = 0; i < n; i++) {
        budget *d = &nl[i];
        const char *kn = kind_names[limits[i].kind < 0 || limits[i].kind > 2 ? 0 : limits[i].kind];
        d->kind = limits[i].kind;
        d->value = strdup(limits[i].value ? limits[i].value : "");
        d->label = malloc(strlen(kn) + 2 + strlen(d->value ? d->value : ""));
        if (!d->value || !d->label) {
            list_free(nl, n);
            return -1;
        }
        d->vlen = strlen(d->value);
        d->max_keys = limits[i].max_keys;
        strcpy(d->label, kn);
        strcat(d->label, "=");
        strcat(d->label, d->value);
        for (size_t j = 0; j < b->n; j++) {
            const budget *o = &b->list[j];
            if (o->kind == d->kind && strcmp(o->value, d->value) == 0 && map[j] < 0) {
                map[j] = (int)i;
                atomic_store(&d->keys, atomic_load(&o->keys));
                atomic_store(&d->dropped, atomic_load(&o->dropped));
                d->logged_ms = o->logged_ms;
                if (d->max_keys < o->max_keys && atomic_load(&d->keys) > d->max_keys)
                    sy_log(SY_INFO, "budget %s lowered to %llu keys: the %llu keys it counts stay "
                           "(none is evicted); new keys are refused until it is under the limit",
                           d->label, (unsigned long long)d->max_keys,
                           (unsigned long long)atomic_load(&d->keys));
                break;
            }
        }
    }
    /* Charges follow their budgets to the new indices. */
    int same = (n == b->n);
    for (size_t j = 0; j < b->n; j++)
        same = same && map[j] == (int)j;
    if (!same) {
        for (size_t i = 0; i < b->cap; i++) {
            if (!b->slots[i].entry)
                continue;
            uint64_t m = b->slots[i].mask, nm = 0;
            for (size_t j = 0; j < b->n; j++)
                if ((m >> j & 1) && map[j] >= 0)
                    nm |= 1ull << map[j];
            b->slots[i].mask = nm; /* 0: kept until its entry goes (harmless) */
        }
    }
    pthread_mutex_lock(&b->lock);
    budget *old = b->list;
    size_t oldn = b->n;
    b->list = nl;
    b->n = n;
    pthread_mutex_unlock(&b->lock);
    list_free(old, oldn);
    return 0;
}

/* Whether the budget applies to a key. */
static int applies(const budget *d, const char *key, size_t klen, const char *tenant,
                   size_t tenant_len, const char *listener)
{
    switch (d->kind) {
    case SY_BUDGET_TENANT:
        return tenant_len == d->vlen && memcmp(tenant, d->value, d->vlen) == 0;
    case SY_BUDGET_PREFIX:
        return klen >= d->vlen && memcmp(key, d->value, d->vlen) == 0;
    default:
        return listener && strcmp(listener, d->value) == 0;
    }
}

static void refused(budget *d, const char *key, size_t klen)
{
    atomic_store_explicit(&d->dropped, atomic_load_explicit(&d->dropped, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    uint64_t now = sy_mono_ms();
    if (d->logged_ms && now - d->logged_ms < LOG_EVERY_MS) {
        d->unlogged++;
        return;
    }
    sy_log(SY_WARN, "budget %s is full (%llu of maxKeys %llu): new keys are dropped, e.g. '%.*s' "
           "(%llu more since the last such line; switchyard_budget_dropped_total{budget=\"%s\"})",
           d->label, (unsigned long long)atomic_load(&d->keys), (unsigned long long)d->max_keys,
           (int)(klen > 120 ? 120 : klen), key, (unsigned long long)d->unlogged, d->label);
    d->logged_ms = now ? now : 1;
    d->unlogged = 0;
}

int sy_budgets_admit(sy_budgets *b, const char *key, size_t klen, const char *tenant,
                     size_t tenant_len, const char *listener, uint64_t *mask)
{
    uint64_t m = 0;
    int ok = 1;
    for (size_t i = 0; i < b->n; i++) {
        budget *d = &b->list[i];
        if (!applies(d, key, klen, tenant, tenant_len, listener))
            continue;
        m |= 1ull << i;
        if (atomic_load_explicit(&d->keys, memory_order_relaxed) >= d->max_keys) {
            refused(d, key, klen);
            ok = 0;
        }
    }
    *mask = 0;
    if (!ok)
        return 0;
    for (size_t i = 0; i < b->n; i++)
        if (m >> i & 1)
            atomic_store_explicit(&b->list[i].keys,
                                  atomic_load_explicit(&b->list[i].keys, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
    *mask = m;
    return 1;
}

void sy_budgets_uncount(sy_budgets *b, uint64_t mask)
{
    for (size_t i = 0; mask && i < b->n; i++, mask >>= 1) {
        if (!(mask & 1))
            continue;
        uint64_t k = atomic_load_explicit(&b->list[i].keys, memory_order_relaxed);
        if (k)
            atomic_store_explicit(&b->list[i].keys, k - 1, memory_order_relaxed);
    }
}

static int grow(sy_budgets *b)
{
    size_t ncap = b->cap ? b->cap * 2 : 1024;
    charge *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    charge *old = b->slots;
    size_t ocap = b->cap;
    b->slots = ns;
    b->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].entry)
            continue;
        size_t j = slot_of(b, old[i].entry);
        while (ns[j].entry)
            j = (j + 1) & (ncap - 1);
        ns[j] = old[i];
    }
    free(old);
    return 0;
}

int sy_budgets_attach(sy_budgets *b, const void *entry, uint64_t mask)
{
    if (!mask)
        return 0;
    if ((b->used + 1) * 10 > b->cap * 7 && grow(b) < 0) {
        sy_budgets_uncount(b, mask);
        return -1;
    }
    size_t i = slot_of(b, entry);
    while (b->slots[i].entry && b->slots[i].entry != entry)
        i = (i + 1) & (b->cap - 1);
    if (!b->slots[i].entry)
        b->used++;
    else
        sy_budgets_uncount(b, b->slots[i].mask); /* not expected: an entry charged twice */
    b->slots[i].entry = entry;
    b->slots[i].mask = mask;
    return 0;
}

uint64_t sy_budgets_detach(sy_budgets *b, const void *entry)
{
    if (!b || !b->cap)
        return 0;
    size_t mask = b->cap - 1, i = slot_of(b, entry);
    while (b->slots[i].entry != entry) {
        if (!b->slots[i].entry)
            return 0;
        i = (i + 1) & mask;
    }
    uint64_t m = b->slots[i].mask;
    /* Backward-shift deletion: no tombstones. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!b->slots[j].entry)
            break;
        size_t home = slot_of(b, b->slots[j].entry);
        if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j)) {
            b->slots[i] = b->slots[j];
            i = j;
        }
    }
    b->slots[i].entry = NULL;
    b->slots[i].mask = 0;
    b->used--;
    return m;
}

void sy_budgets_each(sy_budgets *b, sy_budget_fn fn, void *ctx)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->n; i++) {
        const budget *d = &b->list[i];
        fn(ctx, d->label, kind_names[d->kind < 0 || d->kind > 2 ? 0 : d->kind], d->max_keys,
           atomic_load(&d->keys), atomic_load(&d->dropped));
    }
    pthread_mutex_unlock(&b->lock);
}

/* A growing string for sy_budgets_prometheus. */
typedef struct text {
    char *p;
    size_t len, cap;
    int failed;
} text;

static void text_add(text *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 1024;
        while (ncap < t->len + n + 1)
            ncap *= 2;
        char *np = realloc(t->p, ncap);
        if (!np) {
            t->failed = 1;
            return;
        }
        t->p = np;
        t->cap = ncap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void text_label(text *t, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            text_add(t, "\\", 1);
        if (*s == '\n')
            text_add(t, "\\n", 2);
        else
            text_add(t, s, 1);
    }
}

struct prom_ctx {
    text *t;
    int which;
};

static void prom_line(void *ctx, const char *label, const char *kind, uint64_t max_keys,
                      uint64_t keys, uint64_t dropped)
{
    static const char *const names[] = { "switchyard_budget_keys", "switchyard_budget_max_keys",
                                         "switchyard_budget_dropped_total" };
    struct prom_ctx *c = ctx;
    char num[32];
    uint64_t v = c->which == 0 ? keys : c->which == 1 ? max_keys : dropped;
    text_add(c->t, names[c->which], strlen(names[c->which]));
    text_add(c->t, "{budget=\"", 9);
    text_label(c->t, label);
    text_add(c->t, "\",kind=\"", 8);
    text_add(c->t, kind, strlen(kind));
    int n = snprintf(num, sizeof num, "\"} %llu\n", (unsigned long long)v);
    text_add(c->t, num, (size_t)n);
}

char *sy_budgets_prometheus(sy_budgets *b)
{
    static const char *const heads[] = {
        "# HELP switchyard_budget_keys Keys counted against a series budget (limits).\n"
        "# TYPE switchyard_budget_keys gauge\n",
        "# HELP switchyard_budget_max_keys A series budget's maxKeys.\n"
        "# TYPE switchyard_budget_max_keys gauge\n",
        "# HELP switchyard_budget_dropped_total Samples of new keys dropped: the budget was full "
        "(a refused key that comes again counts again).\n"
        "# TYPE switchyard_budget_dropped_total counter\n",
    };
    if (!sy_budgets_count(b))
        return NULL;
    text t = { 0 };
    for (int k = 0; k < 3; k++) {
        text_add(&t, heads[k], strlen(heads[k]));
        struct prom_ctx c = { &t, k };
        sy_budgets_each(b, prom_line, &c);
    }
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    return t.p;
}
