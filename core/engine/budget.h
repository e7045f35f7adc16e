/*
 * budget.h - series budgets: caps on the number of keys per tenant, per
 * name prefix or per listener, beside the global maxKeys.
 *
 *   limits = { { tenant = "t1", maxKeys = 10000 }, { prefix = "debug.", maxKeys = 1000 },
 *              { listener = "udp://127.0.0.1:8125", maxKeys = 50000 } }
 *
 * A budget is charged when the engine creates a key's entry (its own
 * aggregate, or the routing alias of a renamed or per-sender key), never
 * per sample, so admitted keys keep flowing.  A new key that would take a
 * budget past its maxKeys is dropped, counted per budget and logged (the
 * first time, then at most once per 10 s per budget).  The entries that
 * carry a charge are remembered here (entry pointer -> budgets charged),
 * so that a charge is given back exactly when its entry is deleted.
 *
 * A reload keeps each budget's count when the new config has a budget of
 * the same kind and value; a lowered maxKeys does not evict admitted keys,
 * it refuses new ones until deletions bring the count under it.  A budget
 * new in a config starts at 0: keys admitted before it are not counted.
 *
 * The engine thread is the only writer; the admin and output threads read
 * the counts (sy_budgets_each) under the set's lock.
 */
#ifndef SY_BUDGET_H
#define SY_BUDGET_H

#include <stddef.h>
#include <stdint.h>

enum { SY_BUDGET_TENANT = 0, SY_BUDGET_PREFIX = 1, SY_BUDGET_LISTENER = 2 };
#define SY_BUDGET_MAX 64 /* budgets per config: one bit each in a charge */

/* One `limits` entry of a config. */
typedef struct sy_limit {
    int kind;          /* SY_BUDGET_* */
    char *value;       /* the tenant, prefix or listener URL */
    uint64_t max_keys;
} sy_limit;

typedef struct sy_budgets sy_budgets;

sy_budgets *sy_budgets_new(void);
void sy_budgets_free(sy_budgets *b);

/* Take a config's limits (copied).  Counts and charges carry over to the
 * budget of the same kind and value; others are forgotten. */
int sy_budgets_configure(sy_budgets *b, const sy_limit *limits, size_t n);
size_t sy_budgets_count(const sy_budgets *b);

/* May a new key be created?  The budgets that apply to it (by its tenant,
 * the namespace of its token, "" without one; its name; its listener's
 * URL) must all have room.  1: yes, and those budgets now count it (*mask
 * says which; give it to an entry with sy_budgets_attach, or back with
 * sy_budgets_uncount).  0: no; the refusal is counted and logged. */
int sy_budgets_admit(sy_budgets *b, const char *key, size_t klen, const char *tenant,
                     size_t tenant_len, const char *listener, uint64_t *mask);
/* Remember that `entry` carries the charge `mask`; -1 when out of memory
 * (the charge is then given back). */
int sy_budgets_attach(sy_budgets *b, const void *entry, uint64_t mask);
/* Forget entry's charge and return it, still counted (to move it to the
 * entry that replaces this one). */
uint64_t sy_budgets_detach(sy_budgets *b, const void *entry);
void sy_budgets_uncount(sy_budgets *b, uint64_t mask);
/* The entry is deleted: its charge is given back. */
static inline void sy_budgets_release(sy_budgets *b, const void *entry)
{
    sy_budgets_uncount(b, sy_budgets_detach(b, entry));
}

/* For /metrics and the self-metrics (any thread): each budget's label
 * ("tenant=t1", "prefix=debug.", "listener=udp://..."), its kind's name,
 * maxKeys, keys counted and new keys dropped so far. */
typedef void (*sy_budget_fn)(void *ctx, const char *label, const char *kind, uint64_t max_keys,
                             uint64_t keys, uint64_t dropped);
void sy_budgets_each(sy_budgets *b, sy_budget_fn fn, void *ctx);
/* The same as Prometheus text (switchyard_budget_keys, _max_keys,
 * _dropped_total by budget and kind); malloc'd, NULL when there are no
 * budgets. */
char *sy_budgets_prometheus(sy_budgets *b);

#endif
