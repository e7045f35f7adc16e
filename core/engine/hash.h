/*
 * hash.h - a small, fast 64-bit hash for keys and set members (multiply-
 * and-fold, 8 bytes at a time).  Not for hostile-collision resistance:
 * the seed is chosen at start-up so a client cannot pre-compute collisions.
 */
#ifndef SY_HASH_H
#define SY_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t sy_mix64(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* The last len (< 8) bytes as one word, with fixed-size loads only (a
 * memcpy of a variable length is a library call, on every key): 4..7
 * bytes as two overlapping 4-byte loads, 1..3 as three single bytes.  For
 * a given len every byte is in it, so different tails of one length give
 * different words (the length itself is mixed in by the caller). */
static inline uint64_t sy_hash_tail(const unsigned char *p, size_t len)
{
    if (len >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + len - 4, 4);
        return (uint64_t)lo | ((uint64_t)hi << 32);
    }
    if (len)
        return (uint64_t)p[0] | ((uint64_t)p[len >> 1] << 8) | ((uint64_t)p[len - 1] << 16);
    return 0;
}

static inline uint64_t sy_hash(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ ((uint64_t)len * 0x9E3779B97F4A7C15ull);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = sy_mix64(h ^ w, 0xa0761d6478bd642full);
        p += 8;
        len -= 8;
    }
    uint64_t w = sy_hash_tail(p, len);
    h = sy_mix64(h ^ w ^ ((uint64_t)len << 59), 0xe7037ed1a0b428dbull);
    return sy_mix64(h, 0x8ebc6af09c88c6e3ull);
}

#endif
