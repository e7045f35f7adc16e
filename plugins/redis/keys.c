/*
 * keys.c - the redis sink's key names and Redis Cluster hash slots.
 */
#include "redis.h"

/* The key "<prefix><mid><name><tail>" in the scratch buffer; NULL when out
 * of memory. */
const char *make_key(redis_sink *r, const char *mid, const char *name, size_t name_len,
                     const char *tail, size_t *len)
{
    size_t ml = strlen(mid), tl = strlen(tail);
    size_t need = r->prefix_len + ml + name_len + tl + 1;
    if (need > r->keycap) {
        size_t cap = need < 256 ? 256 : need * 2;
        char *p = realloc(r->keybuf, cap);
        if (!p)
            return NULL;
        r->keybuf = p;
        r->keycap = cap;
    }
    memcpy(r->keybuf, r->prefix, r->prefix_len);
    memcpy(r->keybuf + r->prefix_len, mid, ml);
    memcpy(r->keybuf + r->prefix_len + ml, name, name_len);
    memcpy(r->keybuf + r->prefix_len + ml + name_len, tail, tl);
    *len = need - 1;
    r->keybuf[*len] = '\0';
    return r->keybuf;
}

/* A group's key, "<prefix><what>:{G}". */
const char *group_key(redis_sink *r, const char *what, uint32_t g, size_t *len)
{
    char mid[48];
    snprintf(mid, sizeof mid, "%s:{%u}", what, (unsigned)g);
    return make_key(r, mid, "", 0, "", len);
}

/* ------------------------------------------------------------------ */
/* Hash slots                                                           */
/* ------------------------------------------------------------------ */

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, the cluster
 * specification's checksum. */
void crc16_init(redis_sink *r)
{
    for (unsigned i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (int j = 0; j < 8; j++)
            c = (uint16_t)((c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1);
        r->crctab[i] = c;
    }
}

static uint16_t crc16(const redis_sink *r, const char *s, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++)
        crc = (uint16_t)((crc << 8) ^ r->crctab[((crc >> 8) ^ (uint8_t)s[i]) & 0xff]);
    return crc;
}

/* The slot of a key: only the part between the first '{' and the next '}'
 * is hashed when there is such a part and it is not empty. */
uint16_t key_slot(const redis_sink *r, const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close && close > key + from)
            return crc16(r, key + from, (size_t)(close - key - from)) & (NSLOTS - 1);
    }
    return crc16(r, key, len) & (NSLOTS - 1);
}
