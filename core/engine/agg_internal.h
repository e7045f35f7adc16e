/*
 * agg_internal.h - the aggregator's key table, shared by agg.c (ingest,
 * routing, snapshots), agg_sets.c (sets) and agg_walk.c (the admin's
 * walks over the table).
 * Not for other modules: they use agg.h.
 */
#ifndef SY_AGG_INTERNAL_H
#define SY_AGG_INTERNAL_H

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/agg.h"
#include "engine/budget.h"
#include "engine/predecide.h"
#include "ingest/parse.h"

/* Sets hold 64-bit hashes of their members: exact for every practical
 * purpose (a collision needs ~4e9 members) at 8 bytes a member.  Past
 * setMemberLimit members in one interval the hashes are folded into a
 * HyperLogLog sketch (HLL_M one-byte registers, 16 KiB) and the count is
 * estimated from there on, so that a client cannot grow one set without
 * bound; statsd itself keeps every member and prints the exact count. */
#define HLL_P 14
#define HLL_M (1u << HLL_P)

typedef struct sy_hset {
    uint64_t *slots;
    uint8_t *hll;             /* past the limit: the sketch, slots freed */
    uint32_t n, cap;
} sy_hset;

#define ALIAS 4        /* alias entries use type + ALIAS */
#define F_KEEP 1       /* never deleted, only reset (statsd's own counters) */
#define F_RETIRE 2     /* rerouted since a reload: flushed once more, then deleted */
#define F_OWN 4        /* its route is its own key's decision (not only a rename target) */
#define F_TOUCHED 8    /* seen since the last flush (routing cache entries expire) */
#define F_BUDGET 16    /* counts against series budgets (budget.h) */

typedef struct sy_entry {
    /* An entry is either in the table, and then on its type's list in the
     * order entries were created (statsd's key order, which the admin
     * walks follow), or on a list of dead entries waiting to be freed;
     * never both, so the two share their space.  The hash is not kept: a
     * removal computes it again, so the list costs no memory. */
    union {
        struct sy_entry *next;
        struct sy_entry *next_dead;
    };
    union {
        struct sy_entry *prev;
        uint64_t dead_hash; /* on a flush's dead list: its slot's hash */
    };
    union {
        double value;
        sy_timer_data *timer;
        sy_hset *set;
        uint32_t target_len;  /* aliases: the target key follows key[] */
    } u;
    int16_t ttl;        /* gauges: idle flushes left; -1 = never expires */
    uint8_t listener;   /* top: the listener it was first seen from */
    uint8_t tenant;     /* top: the tenant (sy_agg.tenants) it was first
                         * seen from, 0 = none */
    uint32_t samples;   /* top: samples and bytes of the interval */
    uint32_t bytes;
    uint32_t epoch;     /* routing epoch of the decision below */
    uint32_t route;     /* index into sy_agg.routes */
    uint16_t key_len;
    uint8_t type;
    uint8_t flags;
    char key[];
} sy_entry;

/* The README's memory per key counts on this (x86-64). */
_Static_assert(sizeof(void *) != 8 || offsetof(sy_entry, key) == 48, "an entry's header is 48 bytes");

/* One distinct routing decision; keys share them. */
typedef struct route_info {
    uint64_t sinks, raw;
    double rate;
    int drop;
    const char *why;    /* the drop's reason, for the tap (reason_intern) */
} route_info;

/* A cached token decision (per token and sender). */
#define TOK_BUCKETS 4096 /* the token cache's hash buckets */
typedef struct tok_entry {
    struct tok_entry *next;
    uint64_t hash;
    int allowed;
    uint16_t len, nslen;
    char data[];  /* key bytes, then the namespace */
} tok_entry;

typedef struct slot {
    uint64_t hash;
    sy_entry *e;
} slot;

/* The batched feed (agg.c's feed_batched): a record's lines are parsed
 * PF_AHEAD lines before they are applied; their entries are prefetched
 * PF_ENTRY lines before, a timer's or set's data PF_DATA lines before and
 * the place of a timer's next value PF_VALUE lines before. */
#define PF_AHEAD 16
#define PF_ENTRY 10
#define PF_DATA 5
#define PF_VALUE 2
/* ... from this many keys on (sy_agg_set_batch_keys): below it the table
 * stays in the caches and the look-ahead only adds instructions. */
#define PF_BATCH_KEYS 65536

typedef struct sy_pf_line {
    const char *line;
    size_t len;
    sy_line it;        /* after its first value */
    sy_sample s;       /* the first value, when rc > 0 */
    int klen, rc;      /* sy_parse_begin's and the first sy_parse_next's answers */
    uint64_t kh;       /* sy_hash of the key */
    uint64_t h;        /* ... with the first value's type: its slot */
    sy_entry *e;       /* the entry of that hash, when one was found */
} sy_pf_line;

/* Tenants told apart by top (index 0 is "no tenant", the last one "any
 * other"), and drop reasons told apart by the tap (more show "dropped"). */
#define SY_TENANTS_MAX 64
#define SY_REASONS_MAX 64

/* One list per entry type (aliases included), in creation order. */
#define NLISTS (2 * ALIAS)

struct sy_agg {
    sy_agg_opts o;
    char *prefix_stats;
    slot *slots;
    size_t cap, n;      /* cap is a power of two */
    sy_entry *head[NLISTS], *tail[NLISTS];
    size_t count[NLISTS];
    struct sy_agg_walk *walks; /* admin walks in progress (their cursors) */
    uint64_t seed;
    uint64_t rng;
    int64_t old_ts;
    sy_entry *e_packets, *e_metrics, *e_bad;
    sy_entry *e_lag;
    sy_agg_stats st;
    char key[SY_KEY_MAX + 64];
    sy_pf_line pf[PF_AHEAD];
    size_t batch_keys;         /* the batched feed from this many keys on */
    char pf_keys[PF_AHEAD][SY_KEY_MAX + 64];

    /* routing */
    sy_router *router;       /* NULL: every key takes the default route */
    uint64_t all_sinks;
    int uses_origin;
    sy_listen_info *listeners;
    size_t nlisteners;
    uint32_t epoch;
    route_info *routes;
    uint32_t nroutes, cap_routes;
    sy_raw_batch *raw;
    int64_t cur_ts_ms;       /* the client's time of the sample being applied, or 0 */
    tok_entry **toks;        /* token cache: chained hash, TOK_BUCKETS */
    size_t ntoks;
    sy_entry *deleted;       /* deleted by the admin: freed with the next snapshot */
    sy_predecided *pre;      /* the applied reload's decisions, made before it */
    int pre_flushes;         /* flushes left before pre is let go */
    /* Tenants (token namespaces) as top counts them, by index; and the
     * drop reasons the tap shows, both bounded (see tenant_of). */
    char *tenants[SY_TENANTS_MAX];
    uint8_t ntenants, tenant;  /* tenant: of the line being fed */
    uint8_t listener;          /* of the record being fed (0xff: none) */
    char *reasons[SY_REASONS_MAX];
    size_t nreasons;
    /* top's samples and bytes per listener and tenant as they arrive (a
     * key's own are under those it was first seen from): the interval's
     * running totals, charged to the listener and tenant in force when
     * either changes (top_attribute), not per sample.  (The two running
     * totals are kept apart: side by side, gcc adds them as one vector,
     * 7 instructions a sample instead of 2.) */
    uint64_t top_samples, top_mark_samples, top_bytes, top_mark_bytes;
    sy_top_arrivals arrivals;
    const sy_origin *origin; /* of the record being fed */
    char sender[INET6_ADDRSTRLEN];
    int sender_ready;

    /* series budgets (budget.h) */
    sy_budgets *budgets;
    uint64_t charge;         /* admitted for the key being created, not yet attached */
    int refused;             /* the key being resolved was refused by a budget */
    const char *tenant_ns;   /* the current line's token namespace (budgets) */
    size_t tenant_len;
};

/* top: charges the samples and bytes since the last charge to the
 * listener and tenant in force (agg.c). */
void sy_agg_top_charge(sy_agg *a);

static inline uint64_t type_hash(uint64_t h, int type)
{
    return h ^ ((uint64_t)(type + 1) * 0x9E3779B97F4A7C15ull);
}

/* Takes e out of the table and its type's list (agg.c). */
void sy_agg_table_remove(sy_agg *a, sy_entry *e);
/* An entry leaves its list: no walk may point at it any more (agg_walk.c). */
void sy_agg_walks_forget(sy_agg *a, sy_entry *e);


/* Everything about a record's origin that a rule or an auth hook may look
 * at: the listener, the address family and the address (19 bytes).  The
 * family is part of it because an IPv4 address is stored in the first 4 of
 * the 16 address bytes, which alone would equal the IPv6 address
 * AABB:CCDD::. */
#define ORIGIN_KEY_LEN 19

/* agg.c's own helpers, for agg_snapshot.c. */
void sy_agg_mark_dead(sy_agg *a, sy_snapshot *s, sy_entry *e, uint64_t h);
uint32_t sy_agg_decide(sy_agg *a, int type, const char *key, size_t klen, sy_route *r);
sy_entry *sy_agg_lookup_internal(sy_agg *a, int type, const char *key, size_t len);
void sy_agg_slots_remove(sy_agg *a, sy_entry *e, uint64_t h);
void sy_agg_entry_free(sy_entry *e);
int sy_agg_table_grow(sy_agg *a);
/* Sets (agg_sets.c): add a member's text to a set entry, a set's count
 * for the flush, empty it for the next interval, free it (NULL is fine). */
void sy_agg_set_insert(sy_agg *a, sy_entry *e, const char *text, size_t len);
double sy_agg_hset_count(const sy_hset *s);
void sy_agg_hset_clear(sy_hset *s);
void sy_agg_hset_free(sy_hset *s);
/* Empties the token cache (agg_setup.c). */
void sy_agg_tokens_clear(sy_agg *a);

#endif
