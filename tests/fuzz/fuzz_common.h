/*
 * fuzz_common.h - what the libFuzzer harnesses share.
 *
 * FUZZ_CHECK is the harnesses' assert: a broken invariant prints what broke
 * and aborts, which libFuzzer records as a crash (with the input saved),
 * exactly like a sanitizer report.  It stays on with NDEBUG.
 *
 * fuzz_dup gives a piece of the input its own heap block of exactly its
 * length, so ASan sees a read one byte past the end of a line (the input
 * as a whole is already such a block; its lines are not).
 */
#ifndef SY_FUZZ_COMMON_H
#define SY_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_CHECK /* tests/unit/test_fuzz_regressions.c makes it a cmocka failure */
#define FUZZ_CHECK(cond, ...)                                                        \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "\nINVARIANT FAILED at %s:%d: %s\n    ", __FILE__,        \
                    __LINE__, #cond);                                                \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            abort();                                                                 \
        }                                                                            \
    } while (0)
#endif

/* A copy of p[0..len) in a block of exactly len bytes (1 when len is 0,
 * never read).  Aborts when out of memory: that is the harness's problem. */
static inline char *fuzz_dup(const void *p, size_t len)
{
    char *c = malloc(len ? len : 1);
    if (!c)
        abort();
    if (len)
        memcpy(c, p, len);
    else
        c[0] = '\0';
    return c;
}

/* A byte stream the harness takes its choices from (split points, flags);
 * it gives zeros once used up, so every input is valid. */
typedef struct fuzz_bytes {
    const uint8_t *p;
    size_t n;
} fuzz_bytes;

static inline uint8_t fuzz_u8(fuzz_bytes *b)
{
    if (!b->n)
        return 0;
    b->n--;
    return *b->p++;
}

static inline uint16_t fuzz_u16(fuzz_bytes *b)
{
    uint16_t hi = fuzz_u8(b);
    return (uint16_t)(hi << 8 | fuzz_u8(b));
}

#ifndef SY_SRC_ROOT
#define SY_SRC_ROOT "."
#endif

/* Where the switchyard Lua library and this harness's files are: the
 * source root compiled in, or $SY_ROOT. */
static inline const char *fuzz_src_root(void)
{
    const char *r = getenv("SY_ROOT");
    return r && *r ? r : SY_SRC_ROOT;
}

#endif
