/* backoff.c - see backoff.h. */
#include "backoff.h"

uint64_t backoff_seed(uint64_t a, uint64_t b)
{
    return (a ^ b) | 1;
}

/* xorshift64*: jitter only, no need for more */
static uint64_t backoff_next(uint64_t *rng)
{
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    return *rng * 2685821657736338717ULL;
}

uint64_t backoff_delay(unsigned failures, uint64_t min_ms, uint64_t max_ms, uint64_t *rng)
{
    unsigned shift = failures ? failures - 1 : 0;
    uint64_t d = max_ms;
    if (shift < 40 && (min_ms << shift) >> shift == min_ms && (min_ms << shift) < max_ms)
        d = min_ms << shift;
    d -= backoff_next(rng) % (d / 4 + 1);
    return d < min_ms ? min_ms : d;
}
