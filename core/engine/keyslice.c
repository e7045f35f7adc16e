/* keyslice.c - see keyslice.h. */
#include "engine/keyslice.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/hash.h"
#include "util/clock.h"

#define KEYSLICE_ITEMS 1024
#define KEYSLICE_BYTES (512u << 10)
#define KEYSLICE_VISIT 8192

void sy_keyslice_init(sy_keyslice *ks, int mode, int next_uses_origin, int dedup,
                      atomic_int *wanted_flag, void (*wake)(void *), void *wake_ctx)
{
    memset(ks, 0, sizeof *ks);
    ks->mode = mode;
    ks->next_uses_origin = next_uses_origin;
    ks->dedup = dedup;
    ks->wanted_flag = wanted_flag;
    ks->wake = wake;
    ks->wake_ctx = wake_ctx;
    pthread_mutex_init(&ks->lock, NULL);
    pthread_cond_init(&ks->cond, NULL);
}

void sy_keyslice_destroy(sy_keyslice *ks)
{
    free(ks->items);
    free(ks->tokens);
    free(ks->arena);
    free(ks->seen);
    pthread_mutex_destroy(&ks->lock);
    pthread_cond_destroy(&ks->cond);
}

static void set_wanted(sy_keyslice *ks, int v)
{
    atomic_store(&ks->wanted, v);
    if (ks->wanted_flag)
        atomic_store(ks->wanted_flag, v);
}

/* The set of keys copied: 0 is never a stored hash.  Sized for the whole
 * table when the walk begins, so that it is not rehashed during a slice
 * unless the table grows a lot meanwhile. */
static int seen_reserve(sy_keyslice *ks, size_t want)
{
    if (want <= ks->seen_cap && (ks->nseen + 1) * 2 <= ks->seen_cap)
        return 0;
    size_t ncap = ks->seen_cap ? ks->seen_cap * 2 : 4096;
    while (ncap < want)
        ncap *= 2;
    uint64_t *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < ks->seen_cap; i++) {
        if (!ks->seen[i])
            continue;
        size_t k = ks->seen[i] & (ncap - 1);
        while (ns[k])
            k = (k + 1) & (ncap - 1);
        ns[k] = ks->seen[i];
    }
    free(ks->seen);
    ks->seen = ns;
    ks->seen_cap = ncap;
    return 0;
}

/* 1 when (type, lookup) was not copied before (or the set is out of
 * memory: copied twice rather than not at all). */
static int seen_add(sy_keyslice *ks, int type, const char *lookup, size_t len)
{
    if (!ks->dedup)
        return 1;
    uint64_t h = sy_hash(lookup, len, 0x243F6A8885A308D3ull) ^ ((uint64_t)(type + 1) * 0x9E3779B97F4A7C15ull);
    if (!h)
        h = 1;
    if (seen_reserve(ks, 0) < 0)
        return 1;
    size_t k = h & (ks->seen_cap - 1);
    while (ks->seen[k]) {
        if (ks->seen[k] == h)
            return 0;
        k = (k + 1) & (ks->seen_cap - 1);
    }
    ks->seen[k] = h;
    ks->nseen++;
    return 1;
}

static uint32_t arena_put(sy_keyslice *ks, const char *s, size_t n)
{
    if (ks->used + n + 1 > ks->arena_cap) {
        size_t ncap = ks->arena_cap ? ks->arena_cap : 64 * 1024;
        while (ncap < ks->used + n + 1)
            ncap *= 2;
        char *na = realloc(ks->arena, ncap);
        if (!na)
            return UINT32_MAX;
        ks->arena = na;
        ks->arena_cap = ncap;
    }
    uint32_t off = (uint32_t)ks->used;
    memcpy(ks->arena + off, s, n);
    ks->arena[off + n] = '\0';
    ks->used += n + 1;
    return off;
}

/* The next item, or NULL when out of memory. */
static sy_keyslice_item *item_new(sy_keyslice *ks)
{
    if (!ks->items && !(ks->items = malloc(KEYSLICE_ITEMS * sizeof *ks->items)))
        return NULL;
    return &ks->items[ks->nitems];
}

static void copy_decision(void *ctx, const sy_key_decision *d)
{
    sy_keyslice *ks = ctx;
    if (!seen_add(ks, d->type, d->lookup, d->lookup_len))
        return;
    sy_keyslice_item *it = item_new(ks);
    if (!it)
        return;
    *it = (sy_keyslice_item){ .type = d->type, .drop = d->drop, .current = d->current, .sinks = d->sinks,
                              .raw = d->raw, .rate = d->rate, .klen = (uint32_t)d->klen,
                              .name_len = (uint32_t)d->name_len };
    it->key = arena_put(ks, d->key, d->klen);
    it->lookup = it->key;
    it->lookup_len = it->klen;
    it->name = arena_put(ks, d->name, d->name_len);
    it->listener = arena_put(ks, d->listener, strlen(d->listener));
    it->sender = arena_put(ks, d->sender, strlen(d->sender));
    if (it->key == UINT32_MAX || it->name == UINT32_MAX || it->listener == UINT32_MAX ||
        it->sender == UINT32_MAX)
        return;
    ks->nitems++;
}

static void copy_key(void *ctx, int type, const char *key, size_t klen, const char *lookup,
                     size_t lookup_len, const char *listener, const char *sender)
{
    sy_keyslice *ks = ctx;
    if (!seen_add(ks, type, lookup, lookup_len))
        return;
    sy_keyslice_item *it = item_new(ks);
    if (!it)
        return;
    *it = (sy_keyslice_item){ .type = type, .current = 1, .klen = (uint32_t)klen,
                              .lookup_len = (uint32_t)lookup_len };
    /* the lookup bytes start with the key (then a NUL and the origin) */
    it->lookup = arena_put(ks, lookup, lookup_len);
    it->key = it->lookup;
    it->name = it->key;
    it->name_len = it->klen;
    it->listener = arena_put(ks, listener, strlen(listener));
    it->sender = arena_put(ks, sender, strlen(sender));
    if (it->lookup == UINT32_MAX || it->listener == UINT32_MAX || it->sender == UINT32_MAX)
        return;
    ks->nitems++;
}

static void copy_token(void *ctx, const sy_token_decision *d)
{
    sy_keyslice *ks = ctx;
    if (ks->ntokens == ks->cap_tokens) {
        /* a chunk is about KEYSLICE_ITEMS tokens and the last bucket's chain */
        size_t ncap = ks->cap_tokens ? ks->cap_tokens * 2 : KEYSLICE_ITEMS;
        sy_keyslice_token *nt = realloc(ks->tokens, ncap * sizeof *nt);
        if (!nt)
            return;
        ks->tokens = nt;
        ks->cap_tokens = ncap;
    }
    sy_keyslice_token *t = &ks->tokens[ks->ntokens];
    *t = (sy_keyslice_token){ .tlen = (uint32_t)d->tlen, .nslen = (uint32_t)d->nslen, .allowed = d->allowed };
    t->token = arena_put(ks, d->token, d->tlen);
    t->ns = arena_put(ks, d->ns, d->nslen);
    t->listener = arena_put(ks, d->listener, strlen(d->listener));
    t->sender = arena_put(ks, d->sender, strlen(d->sender));
    if (t->token == UINT32_MAX || t->ns == UINT32_MAX || t->listener == UINT32_MAX ||
        t->sender == UINT32_MAX)
        return;
    ks->ntokens++;
}

void sy_keyslice_serve(sy_keyslice *ks, sy_agg *a)
{
    /* Never wait for the asking thread: it holds the lock only for a
     * moment, but may be descheduled meanwhile; then it is served in the
     * next gap (wanted stays set). */
    if (pthread_mutex_trylock(&ks->lock) != 0)
        return;
    if (!ks->want || ks->stopped) {
        set_wanted(ks, 0);
        pthread_mutex_unlock(&ks->lock);
        return;
    }
    uint64_t t0 = sy_mono_us(), c0 = sy_thread_cpu_us();
    ks->nitems = 0;
    ks->ntokens = 0;
    ks->used = 0;
    ks->table_origin = sy_agg_uses_origin(a);
    if (sy_agg_table_cap(a) != ks->cap) {
        /* new, or the table grew: walk it (again) */
        ks->cap = sy_agg_table_cap(a);
        ks->cursor = 0;
        size_t need = sy_agg_key_count(a) * 2 + 2;
        if (ks->dedup && (need > ks->seen_cap || (ks->nseen + need / 2) * 2 > ks->seen_cap)) {
            /* The set for the whole table is made (and its pages touched)
             * on the asking thread, not in this slice: an empty chunk. */
            ks->seen_want = need + ks->nseen * 2;
            ks->cap = 0; /* back here next time, the set then sized */
            goto filled;
        }
    }
    size_t visited = 0;
    if (ks->mode == SY_KEYSLICE_KEYS) {
        while (ks->cursor < ks->cap && visited < KEYSLICE_VISIT && ks->nitems + 16 <= KEYSLICE_ITEMS &&
               ks->used < KEYSLICE_BYTES)
            visited += sy_agg_walk_keys(a, &ks->cursor, 16, ks->next_uses_origin, copy_key, ks);
        ks->walk_done = ks->cursor >= ks->cap;
    } else {
        while (ks->cursor < ks->cap && visited < KEYSLICE_VISIT && ks->nitems + 8 <= KEYSLICE_ITEMS &&
               ks->used < KEYSLICE_BYTES)
            visited += sy_agg_walk_decisions(a, &ks->cursor, 8, copy_decision, ks);
        /* then the tokens the running config has answered (tenants) */
        while (ks->cursor >= ks->cap && !sy_agg_tokens_walked(ks->tok_cursor) && visited < KEYSLICE_VISIT &&
               ks->ntokens < KEYSLICE_ITEMS && ks->used < KEYSLICE_BYTES)
            visited += sy_agg_walk_tokens(a, &ks->tok_cursor, 64, copy_token, ks);
        ks->walk_done = ks->cursor >= ks->cap && sy_agg_tokens_walked(ks->tok_cursor);
    }
filled:
    ks->want = 0;
    ks->filled = 1;
    set_wanted(ks, 0);
    uint64_t us = sy_mono_us() - t0;
    ks->engine_us += us;
    ks->slices++;
    if (us > ks->slice_max_us) {
        ks->slice_max_us = us;
        ks->slice_max_cpu_us = sy_thread_cpu_us() - c0;
    }
    pthread_mutex_unlock(&ks->lock);
    pthread_cond_broadcast(&ks->cond);
}

/* Waits for the engine to fill the chunk asked for; 0 when stopped. */
static int wait_chunk(sy_keyslice *ks)
{
    pthread_mutex_lock(&ks->lock);
    if (ks->stopped) {
        pthread_mutex_unlock(&ks->lock);
        return 0;
    }
    ks->want = 1;
    ks->filled = 0;
    set_wanted(ks, 1);
    pthread_mutex_unlock(&ks->lock);
    if (ks->wake)
        ks->wake(ks->wake_ctx);
    pthread_mutex_lock(&ks->lock);
    while (!ks->filled && !ks->stopped) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ks->cond, &ks->lock, &ts);
    }
    int filled = ks->filled;
    if (!filled) {
        ks->want = 0;
        set_wanted(ks, 0);
    }
    pthread_mutex_unlock(&ks->lock);
    return filled;
}

int sy_keyslice_next(sy_keyslice *ks)
{
    for (;;) {
        if (!wait_chunk(ks))
            return 0;
        if (!ks->seen_want)
            return 1;
        /* the engine waits for nothing meanwhile: it fills only when asked */
        seen_reserve(ks, ks->seen_want);
        for (size_t p = 0; ks->seen && p < ks->seen_cap; p += 512)
            ((volatile uint64_t *)ks->seen)[p] |= 0; /* touch its pages here */
        ks->seen_want = 0;
    }
}

void sy_keyslice_stop(sy_keyslice *ks)
{
    pthread_mutex_lock(&ks->lock);
    ks->stopped = 1;
    ks->want = 0;
    set_wanted(ks, 0);
    pthread_cond_broadcast(&ks->cond);
    pthread_mutex_unlock(&ks->lock);
}
