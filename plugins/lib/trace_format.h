/*
 * trace_format.h - how appstats-style traces are laid out in memcached,
 * defined once for their writer (the memcache_traces sink, through
 * trace_model.h) and their reader (`switchyard traces` and the admin's
 * /traces page, core/tools/traces/).
 *
 * A trace is stored twice, under "<prefix>:NNNNNN:part" (the summary, for
 * the index) and "<prefix>:NNNNNN:full" (every span), where NNNNNN is the
 * slot of its start time: ((ms / 100) % 1000) * 100, six digits.  A slot
 * holds the last trace that started in its 100 ms and is reused every
 * 100 s.  Both records are JSON objects whose "version" is TM_VERSION.
 *
 * Header-only, so that the reader needs none of the sink's code.
 */
#ifndef SY_TRACE_FORMAT_H
#define SY_TRACE_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TM_SLOTS 1000      /* appstats' KEY_MODULUS */
#define TM_SLOT_MS 100     /* appstats' KEY_DISTANCE: one slot per 100 ms */
#define TM_SLOT_DIGITS 6   /* a slot in a key: 000000 .. 099900 */
#define TM_KEY_MAX 250     /* memcached's longest key */
#define TM_PREFIX_MAX 200  /* longest key prefix */
#define TM_VERSION 1       /* the "version" of both records */
#define TM_DEFAULT_PREFIX "switchyard:traces"
#define TM_PART "part"     /* the kinds of record, the key's last part */
#define TM_FULL "full"
/* A key from its prefix, slot and kind. */
#define TM_KEY_FMT "%s:%06u:%s"

/* appstats' slot: ((ms / 100) % 1000) * 100, so 0 .. 99900. */
static inline unsigned tm_slot(uint64_t start_ms)
{
    return (unsigned)(((start_ms / TM_SLOT_MS) % TM_SLOTS) * TM_SLOT_MS);
}

/* A prefix memcached accepts in a key: 1..200 bytes, no space, control
 * byte or DEL.  1 when fine. */
static inline int tm_prefix_ok(const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 0 || n > TM_PREFIX_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)prefix[i] <= ' ' || prefix[i] == 0x7f)
            return 0;
    return 1;
}

/* Records hold UTF-8: the writer escapes what is not, the reader shows it
 * as '?'.  The length of the valid UTF-8 sequence starting at s[0] (a
 * byte >= 0x80), or 0 when it is not one.  The ranges are those of RFC
 * 3629 §4, so overlong forms, surrogates and code points past U+10FFFF are
 * refused. */
static inline size_t tm_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

#endif
