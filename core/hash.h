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
    uint64_t w = 0;
    memcpy(&w, p, len);
    h = sy_mix64(h ^ w ^ ((uint64_t)len << 59), 0xe7037ed1a0b428dbull);
    return sy_mix64(h, 0x8ebc6af09c88c6e3ull);
}

#endif
