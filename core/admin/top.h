/*
 * top.h - the hottest keys of the current interval, and key counts per
 * name prefix, tenant and listener: the console's `top [N] [by=samples|
 * bytes|keys] [depth=K]` and GET /top?n=&by=&depth= (JSON).
 *
 * The engine fills one as an admin walk (agg.h's SY_WALK_TOP) visits the
 * key table a slice at a time between batches, so ingest never waits for
 * more than a slice; the figures are what each key held when the walk
 * reached it.  Memory is bounded whatever the table: N keys (at most
 * SY_TOP_N_MAX) are kept, and SY_TOP_PREFIXES distinct prefixes; keys
 * under further prefixes are counted as "(other)".
 */
#ifndef SY_TOP_H
#define SY_TOP_H

#include <stddef.h>
#include <stdint.h>

#include "engine/agg.h"

#define SY_TOP_N_DEFAULT 10
#define SY_TOP_N_MAX 1000 /* top.c's messages say these numbers */
#define SY_TOP_DEPTH_DEFAULT 1
#define SY_TOP_DEPTH_MAX 8
#define SY_TOP_PREFIXES 10000

enum { SY_TOP_SAMPLES = 0, SY_TOP_BYTES = 1, SY_TOP_KEYS = 2 };

typedef struct sy_top sy_top;

/* Reads `N`, `by=...`, `depth=K` (console words, or the canonical three
 * that sy_top_args writes); 0, or -1 with why in err. */
int sy_top_parse(char *const *args, size_t nargs, size_t *n, int *by, int *depth, char *err,
                 size_t errlen);
/* Arguments refused by sy_top_parse so far (any thread). */
uint64_t sy_top_refused(void);
/* The canonical arguments ("N", "by", "K") into three buffers of 16. */
void sy_top_args(size_t n, int by, int depth, char out[3][16]);

sy_top *sy_top_new(size_t n, int by, int depth, int json);
/* One key: its type (agg.h's sy_mtype), its samples and bytes of the
 * interval, the listener and tenant it was first seen from (indices into
 * the name tables given to sy_top_finish; 0xff: none for listeners, 0:
 * none for tenants). */
void sy_top_add(sy_top *t, const char *key, size_t klen, int type, uint32_t samples, uint32_t bytes,
                uint8_t listener, uint8_t tenant);
/* The reply; names tables of 256 (NULL entries: unknown).  The listeners'
 * and tenants' keys are those first seen from each (sy_top_add); their
 * samples and bytes come from arr, charged as they arrived (NULL: the
 * keys' own). */
void sy_top_finish(sy_top *t, sy_buf *out, const char *const *listeners, const char *const *tenants,
                   const sy_top_arrivals *arr);
void sy_top_free(sy_top *t);

#endif
