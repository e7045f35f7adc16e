/*
 * predecide.h - a new config's routing decisions, made before it is applied.
 *
 * A reload used to bump the routing epoch at once, so that every live key
 * went back through Lua the next time it was seen: at 1M keys and 3.5-5 us
 * a decision that held the engine for seconds while the rings overflowed.
 * Now the engine keeps routing with the old config while the new one is
 * asked about every live key on a thread of the reload's own (the engine
 * copies the keys for it a chunk at a time between batches, keyslice.h),
 * and the answers are kept here.  When every key has an answer the new config
 * is applied, and the aggregator takes each key's new decision from this
 * table instead of calling Lua (see sy_agg_use_predecided).
 *
 * Entries are keyed by the metric type and the bytes the aggregator looks
 * a key up by (the key, and its origin when the rules look at the sender),
 * held as a 64-bit hash and a 32-bit check from an independent seed: no
 * key bytes are copied, and two keys are confused with odds of about
 * 1e-17 at a million keys.  An entry costs 16 bytes in a table kept at
 * most 70% full, plus its new name when the rules rename it.  Decisions
 * that rename nothing are shared between keys, and a dropping one holds
 * the index of its reason, kept once (the tap shows it after the swap):
 * so the reasons cost nothing per key.
 */
#ifndef SY_PREDECIDE_H
#define SY_PREDECIDE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/router.h"

/* Distinct drop reasons a table keeps; drops with more take a generic one. */
#define SY_PREDECIDE_REASONS 256

typedef struct sy_predecided sy_predecided;

/* Sized for `keys` entries, so that filling it never stops to rehash (at
 * a million keys a rehash would be a pause of tens of ms). */
sy_predecided *sy_predecided_new(size_t keys);
void sy_predecided_free(sy_predecided *p);

/* 1 when (type, bytes) has a decision. */
int sy_predecided_has(const sy_predecided *p, int type, const char *k, size_t len);

/* Keep r as the decision of (type, bytes); -1 when out of memory. */
int sy_predecided_put(sy_predecided *p, int type, const char *k, size_t len, const sy_route *r);

/* 1 with *r filled (r->key holds the new name when renamed), 0 when none. */
int sy_predecided_get(const sy_predecided *p, int type, const char *k, size_t len, sy_route *r);

size_t sy_predecided_count(const sy_predecided *p);
/* Bytes the table holds (slots, decisions, names, reasons). */
size_t sy_predecided_bytes(const sy_predecided *p);
/* Drops given the generic reason: more distinct reasons than are kept. */
uint64_t sy_predecided_reasons_cut(const sy_predecided *p);

#endif
