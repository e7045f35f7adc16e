/*
 * keyslice.h - the live key table copied to another thread a slice at a
 * time.
 *
 * Two things ask a new config about every live key without holding up
 * ingest: a reload being prepared (engine.c) and a shadow reload
 * (shadow.c).  Both run the new rules on a thread of their own; the
 * engine only copies keys for them, a chunk at a time, between two
 * batches and only when that thread asks (sy_keyslice_wanted, one atomic
 * load).  A chunk holds at most KEYSLICE_ITEMS keys and KEYSLICE_BYTES
 * of names, and the engine visits at most KEYSLICE_VISIT entries for it: a
 * pause of a fraction of a millisecond.  When the table grows meanwhile
 * the walk starts again; with `dedup` a set of the keys already copied (8
 * bytes a key) keeps each key copied once, else the asking thread skips
 * the keys it knows.
 *
 * The chunk belongs to the asking thread from sy_keyslice_next returning
 * 1 until it asks again: the engine fills it only when asked.
 */
#ifndef SY_KEYSLICE_H
#define SY_KEYSLICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/agg.h"

/* What the engine copies. */
enum {
    /* each key's routing entry with the decision in force, then the token
     * cache (a shadow reload's comparison) */
    SY_KEYSLICE_DECISIONS = 0,
    /* each key as a new config will look it up (with its origin when
     * that config's rules look at the sender): a reload's preparation */
    SY_KEYSLICE_KEYS = 1,
};

/* One key; strings are offsets into the chunk's arena, NUL-terminated. */
typedef struct sy_keyslice_item {
    int type, drop, current;
    uint32_t key, klen, lookup, lookup_len, name, name_len, listener, sender;
    uint64_t sinks, raw;
    double rate;
} sy_keyslice_item;

/* One token the running config answered, with what it answered. */
typedef struct sy_keyslice_token {
    uint32_t token, tlen, listener, sender, ns, nslen;
    int allowed;
} sy_keyslice_token;

typedef struct sy_keyslice {
    /* set by sy_keyslice_init */
    int mode, next_uses_origin, dedup;
    atomic_int *wanted_flag;  /* also set while asking (the owner's cheap look), or NULL */
    void (*wake)(void *);     /* wakes the engine */
    void *wake_ctx;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_int wanted;
    /* the exchange (lock) */
    int want, filled, stopped;
    /* the chunk (the asking thread's between two asks) */
    int walk_done;            /* the last chunk */
    int table_origin;         /* the running table keeps origins */
    sy_keyslice_item *items;
    size_t nitems;
    sy_keyslice_token *tokens;
    size_t ntokens, cap_tokens;
    char *arena;
    size_t used, arena_cap;
    /* the engine's walk */
    size_t cursor, cap, tok_cursor;
    uint64_t *seen;
    size_t seen_cap, nseen, seen_want;
    /* the engine's cost */
    uint64_t engine_us, slices, slice_max_us, slice_max_cpu_us;
} sy_keyslice;

void sy_keyslice_init(sy_keyslice *ks, int mode, int next_uses_origin, int dedup,
                      atomic_int *wanted_flag, void (*wake)(void *), void *wake_ctx);
void sy_keyslice_destroy(sy_keyslice *ks);

/* The asking thread: asks for the next chunk and waits for it.  1 with
 * the chunk in ks (items, tokens, walk_done), 0 once stopped. */
int sy_keyslice_next(sy_keyslice *ks);
/* Any thread: the asker stops waiting (and asks no more). */
void sy_keyslice_stop(sy_keyslice *ks);

/* The engine, between two batches. */
static inline int sy_keyslice_wanted(sy_keyslice *ks)
{
    return atomic_load_explicit(&ks->wanted, memory_order_relaxed);
}
void sy_keyslice_serve(sy_keyslice *ks, sy_agg *a);

static inline const char *sy_keyslice_str(const sy_keyslice *ks, uint32_t off)
{
    return ks->arena + off;
}

#endif
