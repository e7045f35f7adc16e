/*
 * carbonname.h - whether a name can go on a carbon plaintext line.
 */
#ifndef SY_CARBONNAME_H
#define SY_CARBONNAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A carbon line cannot carry whitespace in a name: it would shift the
 * fields, or with '\n' inject a line.  Refused: any byte <= ' ', and 0x7f.
 * Every name of a flush passes here, so eight bytes are looked at a time:
 * (w - 0x21..) & ~w & 0x80.. is non-zero exactly when a byte of w is
 * below 0x21, and the same test on w ^ 0x7f.. (below 0x01) when one is
 * 0x7f; bytes from 0x80 up set neither (~w clears their high bit). */
static inline int carbon_name_ok(const char *name, size_t len)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    if (len == 0)
        return 0;
    if (len < 8) {
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
                return 0;
        return 1;
    }
    /* the last word overlaps the one before when len is not a multiple of 8 */
    for (size_t i = 0;; i += 8) {
        if (i > len - 8)
            i = len - 8;
        uint64_t w, d;
        memcpy(&w, name + i, 8);
        d = w ^ (ones * 0x7f);
        if ((((w - ones * 0x21) & ~w) | ((d - ones) & ~d)) & highs)
            return 0;
        if (i == len - 8)
            return 1;
    }
}

#endif
