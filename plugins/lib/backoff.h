/*
 * backoff.h - the delay before a network client's next attempt after
 * consecutive failures: doubling from min_ms up to max_ms, minus up to a
 * quarter of random jitter so that many clients do not retry in step.
 * Shared by lib/netq (reconnects) and lib/httpq (retried POSTs).
 */
#ifndef SY_PLUGIN_BACKOFF_H
#define SY_PLUGIN_BACKOFF_H

#include <stdint.h>

/* A jitter source seeded from anything that differs between clients
 * (a clock, an address); never 0. */
uint64_t backoff_seed(uint64_t a, uint64_t b);

/* The delay after `failures` consecutive failures (1 = the first). */
uint64_t backoff_delay(unsigned failures, uint64_t min_ms, uint64_t max_ms, uint64_t *rng);

#endif
