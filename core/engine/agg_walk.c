/*
 * agg_walk.c - the admin's questions about the key table (agg.h): statsd's
 * dumps, deletes and key listings, answered a few entries at a time.
 */
#include "engine/agg.h"
#include "engine/agg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/inspect.h"
#include "admin/top.h"
#include "engine/hash.h"

/* ---- admin ---------------------------------------------------------- */

/*
 * Admin walks.  A question that reads the whole table (a dump, a folder
 * delete, `keys PREFIX`) is answered a few entries at a time, between the
 * engine's batches, so that it never holds ingest for long.  It follows
 * the type lists, whose order does not change when the table grows or
 * shifts: a walk notes each list's last entry when it starts and goes from
 * the head to there; a list removal moves any cursor or end mark that
 * named the entry (sy_agg_walks_forget).  So an entry present for the whole walk
 * is visited exactly once; one created during it is not visited, and one
 * deleted before the walk reaches it is not either.
 */
enum { W_LIST = 0, W_INDEX = 1, W_PROPS = 2, W_DONE = 3 };
#define WALK_STEP_BYTES (16u << 10)

typedef struct ix_item {
    uint32_t idx;
    uint32_t pos;      /* order seen, for equal indices (routing copies) */
    const sy_entry *e; /* compared, never read: it may be gone by then */
} ix_item;

struct sy_agg_walk {
    struct sy_agg_walk *next_walk, *prev_walk;
    int what, type;
    char **names;
    size_t nnames;
    size_t req;              /* delete: the request being done */
    int found;
    int phase;
    int list;                /* the list being walked; -1 before the first */
    sy_entry *next;          /* its next entry; NULL once it is done */
    sy_entry *last[NLISTS];  /* each list's last entry when the walk began */
    ix_item *ix;             /* dump: the array-index keys */
    size_t nix, cix, pos;    /* heap size, its room, items pushed */
    size_t props;            /* dump: properties written */
    size_t shown, more;      /* keys */
    struct sy_top *top;      /* top */
};

/* An entry leaves its list: no walk may point at it any more. */
void sy_agg_walks_forget(sy_agg *a, sy_entry *e)
{
    for (sy_agg_walk *w = a->walks; w; w = w->next_walk) {
        if (w->list == e->type && w->next == e)
            w->next = w->last[e->type] == e ? NULL : e->next;
        if (w->last[e->type] == e)
            w->last[e->type] = e->prev; /* NULL: nothing left to walk there */
    }
}

/* Starts walking list l (from its head to the end noted at the start). */
static void walk_list(sy_agg *a, sy_agg_walk *w, int l)
{
    w->list = l;
    w->next = w->last[l] ? a->head[l] : NULL;
}

static sy_entry *walk_take(sy_agg_walk *w)
{
    sy_entry *e = w->next;
    if (e)
        w->next = e == w->last[w->list] ? NULL : e->next;
    return e;
}

sy_agg_walk *sy_agg_walk_new(sy_agg *a, int what, int type, char **names, size_t n)
{
    sy_agg_walk *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->what = what;
    w->type = type;
    w->list = -1;
    w->names = names;
    w->nnames = n;
    memcpy(w->last, a->tail, sizeof w->last);
    w->next_walk = a->walks;
    if (a->walks)
        a->walks->prev_walk = w;
    a->walks = w;
    return w;
}

void sy_agg_walk_free(sy_agg *a, sy_agg_walk *w)
{
    if (!w)
        return;
    if (w->prev_walk)
        w->prev_walk->next_walk = w->next_walk;
    else
        a->walks = w->next_walk;
    if (w->next_walk)
        w->next_walk->prev_walk = w->prev_walk;
    free(w->ix);
    sy_top_free(w->top);
    free(w);
}

static void entry_prop(const sy_entry *e, sy_inspect_prop *p)
{
    const sy_timer_data *t = e->type == SY_T_TIMER ? e->u.timer : NULL;
    *p = (sy_inspect_prop){ .key = e->key, .key_len = e->key_len,
                            .is_array = e->type == SY_T_TIMER,
                            .value = e->type == SY_T_TIMER ? 0 : e->u.value,
                            .v = t ? t->v : NULL, .n = t ? t->n : 0 };
}

static void dump_prop(void *ctx, size_t i, sy_inspect_prop *p)
{
    entry_prop(((sy_entry **)ctx)[i], p);
}

/* The array-index keys wait in a binary min-heap, by index and then in
 * the order seen: each push and pop costs O(log n), inside a slice, where
 * sorting them all at once would hold the engine for as long as a client
 * with many numeric keys likes. */
static int ix_less(const ix_item *x, const ix_item *y)
{
    return x->idx != y->idx ? x->idx < y->idx : x->pos < y->pos;
}

static void ix_push(ix_item *h, size_t n, ix_item it)
{
    size_t i = n;
    while (i) {
        size_t up = (i - 1) / 2;
        if (!ix_less(&it, &h[up]))
            break;
        h[i] = h[up];
        i = up;
    }
    h[i] = it;
}

static ix_item ix_pop(ix_item *h, size_t n)
{
    ix_item top = h[0], last = h[--n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && ix_less(&h[c + 1], &h[c]))
            c++;
        if (!ix_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (n)
        h[i] = last;
    return top;
}

/* The entry named by an ix_item, if it is still in the table. */
static const sy_entry *ix_find(sy_agg *a, int type, const ix_item *it)
{
    char name[16];
    int len = snprintf(name, sizeof name, "%u", it->idx);
    uint64_t h = type_hash(sy_hash(name, (size_t)len, a->seed), type);
    size_t mask = a->cap - 1;
    for (size_t i = h & mask; a->slots[i].e; i = (i + 1) & mask)
        if (a->slots[i].e == it->e)
            return it->e;
    return NULL;
}

/* A dump: small objects at once (their layout depends on all of them);
 * larger ones, which are never on one line, as JavaScript orders them:
 * the array-index keys, gathered first and sorted, then the others. */
static int dump_step(sy_agg *a, sy_agg_walk *w, sy_buf *out, size_t budget)
{
    if (w->list < 0 && a->count[w->type] <= SY_INSPECT_ONE_LINE_MAX) {
        sy_entry *es[SY_INSPECT_ONE_LINE_MAX];
        size_t n = 0;
        for (sy_entry *e = a->head[w->type]; e && n < SY_INSPECT_ONE_LINE_MAX; e = e->next)
            es[n++] = e;
        if (sy_inspect_object(out, n, dump_prop, es) < 0)
            sy_buf_add(out, "ERROR: out of memory\n", 21);
        else
            sy_buf_add(out, "\n", 1);
        return 1;
    }
    if (w->list < 0)
        walk_list(a, w, w->type);
    sy_inspect_prop p;
    uint32_t idx;
    size_t start = out->len;
    /* Formatting costs about what it writes (a timer may take 1.5 KB):
     * a step also ends after WALK_STEP_BYTES. */
    for (size_t k = 0; k < budget && out->len - start < WALK_STEP_BYTES; k++) {
        if (w->phase == W_LIST) {
            sy_entry *e = walk_take(w);
            if (!e) {
                w->phase = W_INDEX;
                continue;
            }
            if (!sy_inspect_array_index(e->key, e->key_len, &idx))
                continue;
            if (w->nix == w->cix) {
                size_t ncap = w->cix ? w->cix * 2 : 64;
                ix_item *nix = realloc(w->ix, ncap * sizeof *nix);
                if (!nix) {
                    sy_buf_add(out, "ERROR: out of memory\n", 21);
                    return 1;
                }
                w->ix = nix;
                w->cix = ncap;
            }
            ix_push(w->ix, w->nix, (ix_item){ .idx = idx, .pos = (uint32_t)w->pos++, .e = e });
            w->nix++;
        } else if (w->phase == W_INDEX) {
            if (w->nix == 0) {
                w->phase = W_PROPS;
                walk_list(a, w, w->type);
                continue;
            }
            ix_item it = ix_pop(w->ix, w->nix--);
            const sy_entry *e = ix_find(a, w->type, &it);
            if (e) {
                entry_prop(e, &p);
                sy_inspect_stream_prop(out, &w->props, &p);
            }
        } else {
            sy_entry *e = walk_take(w);
            if (!e) {
                sy_inspect_stream_end(out, w->props);
                sy_buf_add(out, "\n", 1);
                return 1;
            }
            if (sy_inspect_array_index(e->key, e->key_len, &idx))
                continue;
            entry_prop(e, &p);
            sy_inspect_stream_prop(out, &w->props, &p);
        }
    }
    return 0;
}

static void admin_delete_entry(sy_agg *a, sy_entry *e)
{
    sy_agg_table_remove(a, e);
    if (e == a->e_lag)
        a->e_lag = NULL;
    e->next_dead = a->deleted;
    a->deleted = e;
    atomic_store_explicit(&a->st.keys, a->n, memory_order_relaxed);
}

static void delete_one(sy_agg *a, sy_entry *e, sy_buf *out)
{
    /* escaped as `counters` shows it: a raw CR could fake a reply */
    sy_buf_printf(out, "deleted: ");
    sy_inspect_escape_buf(out, e->key, e->key_len, SY_ESC_BYTES);
    sy_buf_printf(out, "\n");
    admin_delete_entry(a, e);
}

/* statsd's delete: each request in turn; a plain name is looked up, a
 * "folder.*" walks the type's list. */
static int delete_step(sy_agg *a, sy_agg_walk *w, sy_buf *out, size_t budget)
{
    size_t k = 0;
    while (k < budget) {
        if (w->req == w->nnames) {
            sy_buf_add(out, "END\n\n", 5);
            return 1;
        }
        const char *req = w->names[w->req];
        size_t rl = strlen(req);
        int folder = rl >= 2 && strcmp(req + rl - 2, ".*") == 0;
        size_t plen = folder ? rl - 1 : rl; /* "a.*" matches names starting "a." */
        if (!folder) {
            /* Every entry of that name (routing may keep one per sink
             * set): they share a probe chain. */
            uint64_t h = type_hash(sy_hash(req, rl, a->seed), w->type);
            size_t mask = a->cap - 1;
            sy_entry *e;
            do {
                e = NULL;
                for (size_t i = h & mask; a->slots[i].e; i = (i + 1) & mask) {
                    sy_entry *c = a->slots[i].e;
                    if (a->slots[i].hash == h && c->type == w->type && !(c->flags & F_KEEP) &&
                        c->key_len == rl && memcmp(c->key, req, rl) == 0) {
                        e = c;
                        break;
                    }
                }
                if (e) {
                    delete_one(a, e, out);
                    w->found = 1;
                }
                k++;
            } while (e);
        } else {
            if (w->list < 0)
                walk_list(a, w, w->type);
            sy_entry *e;
            while (k < budget && (e = walk_take(w))) {
                k++;
                if (e->flags & F_KEEP)
                    continue;
                if ((e->key_len == rl && memcmp(e->key, req, rl) == 0) ||
                    (e->key_len >= plen && memcmp(e->key, req, plen) == 0)) {
                    delete_one(a, e, out);
                    w->found = 1;
                }
            }
            if (w->next)
                return 0; /* more of this folder next time */
        }
        if (!w->found)
            sy_buf_printf(out, "metric %s not found\n", req);
        w->req++;
        w->found = 0;
        w->list = -1;
    }
    return 0;
}

static const char *const type_names_long[] = { "counters", "timers", "gauges", "sets" };

/* `keys`: counts, kept as entries come and go; `keys PREFIX`: a walk of
 * the four lists. */
static int keys_step(sy_agg *a, sy_agg_walk *w, sy_buf *out, size_t budget)
{
    const char *prefix = w->nnames ? w->names[0] : NULL;
    if (!prefix || !*prefix) {
        size_t aliases = 0;
        for (int t = ALIAS; t < NLISTS; t++)
            aliases += a->count[t];
        for (int t = 0; t < 4; t++)
            sy_buf_printf(out, "%s: %zu\n", type_names_long[t], a->count[t]);
        sy_buf_printf(out, "route_aliases: %zu\ntotal: %zu\n", aliases, a->n);
        if (a->o.max_keys)
            sy_buf_printf(out, "limit: %zu\n", a->o.max_keys);
        sy_buf_add(out, "END\n\n", 5);
        return 1;
    }
    size_t pl = strlen(prefix);
    if (w->list < 0)
        walk_list(a, w, 0);
    for (size_t k = 0; k < budget; k++) {
        sy_entry *e = walk_take(w);
        if (!e) {
            if (w->list + 1 < ALIAS) {
                walk_list(a, w, w->list + 1);
                continue;
            }
            if (w->more)
                sy_buf_printf(out, "(%zu more)\n", w->more);
            sy_buf_add(out, "END\n\n", 5);
            return 1;
        }
        if (e->key_len < pl || memcmp(e->key, prefix, pl) != 0)
            continue;
        if (w->shown < SY_KEYS_LIMIT) {
            sy_buf_printf(out, "%s ", type_names_long[e->type]);
            sy_inspect_escape_buf(out, e->key, e->key_len, SY_ESC_BYTES); /* as `counters` does */
            sy_buf_printf(out, "\n");
            w->shown++;
        } else {
            w->more++;
        }
    }
    return 0;
}

/* top.h: every aggregate's interval figures, then the reply. */
static int top_step(sy_agg *a, sy_agg_walk *w, sy_buf *out, size_t budget)
{
    if (!w->top) {
        size_t n;
        int by, depth;
        char err[128];
        if (sy_top_parse(w->names, w->nnames, &n, &by, &depth, err, sizeof err) == 0 &&
            !(w->top = sy_top_new(n, by, depth, w->type)))
            snprintf(err, sizeof err, "out of memory");
        if (!w->top) {
            sy_buf_printf(out, "ERROR: top: %s\nEND\n\n", err);
            return 1;
        }
        walk_list(a, w, 0);
    }
    for (size_t k = 0; k < budget; k++) {
        sy_entry *e = walk_take(w);
        if (e) {
            sy_top_add(w->top, e->key, e->key_len, e->type, e->samples, e->bytes, e->listener, e->tenant);
            continue;
        }
        if (w->list + 1 < ALIAS) {
            walk_list(a, w, w->list + 1);
            continue;
        }
        const char *lnames[256] = { 0 }, *tnames[256] = { 0 };
        for (size_t i = 0; i < a->nlisteners && i < 255; i++)
            lnames[i] = a->listeners[i].name;
        for (size_t i = 1; i <= a->ntenants; i++)
            tnames[i] = a->tenants[i];
        tnames[SY_TENANTS_MAX - 1] = "(other)";
        sy_agg_top_charge(a);
        sy_top_finish(w->top, out, lnames, tnames, &a->arrivals);
        return 1;
    }
    return 0;
}

int sy_agg_walk_step(sy_agg *a, sy_agg_walk *w, sy_buf *out, size_t budget)
{
    if (w->phase == W_DONE)
        return 1;
    int done = w->what == SY_WALK_DUMP ? dump_step(a, w, out, budget)
             : w->what == SY_WALK_DELETE ? delete_step(a, w, out, budget)
             : w->what == SY_WALK_TOP ? top_step(a, w, out, budget)
             : keys_step(a, w, out, budget);
    if (done)
        w->phase = W_DONE;
    return done;
}

/* The whole walk at once (tests, and tools that own the aggregator). */
static void walk_all(sy_agg *a, int what, int type, char **names, size_t n, sy_buf *out)
{
    sy_agg_walk *w = sy_agg_walk_new(a, what, type, names, n);
    if (!w) {
        sy_buf_add(out, "ERROR: out of memory\n", 21);
        return;
    }
    while (!sy_agg_walk_step(a, w, out, SIZE_MAX))
        ;
    sy_agg_walk_free(a, w);
}

void sy_agg_dump(sy_agg *a, int type, sy_buf *out) { walk_all(a, SY_WALK_DUMP, type, NULL, 0, out); }

void sy_agg_delete(sy_agg *a, int type, char **names, size_t n, sy_buf *out)
{
    walk_all(a, SY_WALK_DELETE, type, names, n, out);
}

void sy_agg_keys(sy_agg *a, const char *prefix, sy_buf *out)
{
    char *p = (char *)prefix;
    walk_all(a, SY_WALK_KEYS, 0, &p, prefix ? 1 : 0, out);
}
