/*
 * agg_sets.c - statsd sets: each set's members as 64-bit hashes in an
 * open-addressing table, folded into a HyperLogLog sketch past
 * setMemberLimit (agg_internal.h says why), and the count a flush takes.
 */
#include "engine/agg_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hash.h"
#include "util/log.h"

/* HyperLogLog (Flajolet et al. 2007): the first HLL_P bits of the hash
 * pick a register, which keeps the longest run of leading zeros (plus one)
 * seen in the rest. */
static void hll_add(uint8_t *reg, uint64_t h)
{
    uint32_t i = (uint32_t)(h >> (64 - HLL_P));
    uint64_t rest = (h << HLL_P) | (1ull << (HLL_P - 1)); /* never all zero */
    uint8_t rank = (uint8_t)(__builtin_clzll(rest) + 1);
    if (rank > reg[i])
        reg[i] = rank;
}

/* The raw estimate with the small-range correction (linear counting while
 * registers are still empty); 64-bit hashes need no large-range one.
 * Standard error about 1.04 / sqrt(HLL_M), 0.8%. */
static double hll_count(const uint8_t *reg)
{
    double sum = 0;
    uint32_t zeros = 0;
    for (uint32_t i = 0; i < HLL_M; i++) {
        sum += ldexp(1.0, -reg[i]);
        zeros += reg[i] == 0;
    }
    double m = HLL_M, est = 0.7213 / (1 + 1.079 / m) * m * m / sum;
    if (est <= 2.5 * m && zeros)
        est = m * log(m / zeros);
    return est;
}

/* A set's count for the flush: exact, or estimated past the limit (never
 * below the members counted exactly before it). */
double sy_agg_hset_count(const sy_hset *s)
{
    if (!s->hll)
        return s->n;
    double est = round(hll_count(s->hll));
    return est > s->n ? est : s->n;
}

static sy_ratelimit rl_sets = SY_RATELIMIT_INIT(10000, 3);

/* The set reached setMemberLimit: fold its members into a sketch. */
static void hset_to_hll(sy_agg *a, sy_entry *e, sy_hset *s)
{
    s->hll = calloc(HLL_M, 1);
    if (!s->hll)
        return; /* stays exact, and grows: memory is short anyway */
    for (uint32_t i = 0; i < s->cap; i++)
        if (s->slots[i])
            hll_add(s->hll, s->slots[i]);
    free(s->slots);
    s->slots = NULL;
    s->cap = 0;
    atomic_fetch_add_explicit(&a->st.sets_estimated, 1, memory_order_relaxed);
    sy_log_limited(&rl_sets, SY_WARN,
                   "set '%.*s' has more than %u members this interval (setMemberLimit): its count "
                   "is estimated (HyperLogLog, about 0.8%% error) until the next flush",
                   (int)(e->key_len > 200 ? 200 : e->key_len), e->key, a->o.set_member_limit);
}

/* Adds a member (its text) to the set entry e. */
void sy_agg_set_insert(sy_agg *a, sy_entry *e, const char *text, size_t len)
{
    sy_hset *s = e->u.set;
    if (!s) {
        s = e->u.set = calloc(1, sizeof *s);
        if (!s)
            return;
    }
    uint64_t h = sy_hash(text, len, a->seed ^ 0x5e75e75e75e75e7ull);
    if (!h)
        h = 1;
    if (s->hll) {
        hll_add(s->hll, h);
        return;
    }
    if (a->o.set_member_limit && s->n >= a->o.set_member_limit) {
        /* full: a member already counted changes nothing; a new one
         * makes the count an estimate */
        for (uint32_t j = (uint32_t)h & (s->cap - 1); s->slots[j]; j = (j + 1) & (s->cap - 1))
            if (s->slots[j] == h)
                return;
        hset_to_hll(a, e, s);
        if (s->hll) {
            hll_add(s->hll, h);
            return;
        }
    }
    if ((s->n + 1) * 4 > s->cap * 3) {
        uint32_t ncap = s->cap ? s->cap * 2 : 8;
        uint64_t *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return;
        for (uint32_t i = 0; i < s->cap; i++) {
            if (!s->slots[i])
                continue;
            uint32_t j = (uint32_t)s->slots[i] & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = ns;
        s->cap = ncap;
    }
    uint32_t j = (uint32_t)h & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == h)
            return;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = h;
    s->n++;
}

/* Empties a set for the next interval: a small table is kept for reuse. */
void sy_agg_hset_clear(sy_hset *s)
{
    free(s->hll);
    s->hll = NULL;
    if (s->cap > 64) {
        free(s->slots);
        s->slots = NULL;
        s->cap = 0;
    } else if (s->slots) {
        memset(s->slots, 0, s->cap * sizeof *s->slots);
    }
    s->n = 0;
}

void sy_agg_hset_free(sy_hset *s)
{
    if (!s)
        return;
    free(s->slots);
    free(s->hll);
    free(s);
}
