/*
 * md5.c - MD5 as specified in RFC 1321, written for switchyard from the
 * RFC's description (no code copied).  See md5.h.
 */
#include "md5.h"

#include <string.h>

/* K[i] = floor(abs(sin(i + 1)) * 2^32) */
static const uint32_t K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

/* Per-round left-rotation amounts, four per round. */
static const unsigned char S[4][4] = {
    { 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 }, { 6, 10, 15, 21 },
};

static inline uint32_t rotl(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void md5_block(uint32_t h[4], const unsigned char *p)
{
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = (uint32_t)p[i * 4] | (uint32_t)p[i * 4 + 1] << 8 | (uint32_t)p[i * 4 + 2] << 16 |
               (uint32_t)p[i * 4 + 3] << 24;

    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    /* The four rounds differ in the mixing function and in the order the
     * message words are taken; one loop each lets the compiler unroll. */
#define STEP(f, g)                                                   \
    do {                                                             \
        uint32_t x = a + (f) + K[i] + m[g];                          \
        a = d;                                                       \
        d = c;                                                       \
        c = b;                                                       \
        b = b + rotl(x, S[i >> 4][i & 3]);                           \
    } while (0)
    int i = 0;
    for (; i < 16; i++)
        STEP((b & c) | (~b & d), i);
    for (; i < 32; i++)
        STEP((d & b) | (~d & c), (5 * i + 1) & 15);
    for (; i < 48; i++)
        STEP(b ^ c ^ d, (3 * i + 5) & 15);
    for (; i < 64; i++)
        STEP(c ^ (b | ~d), (7 * i) & 15);
#undef STEP
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

void sy_md5_init(sy_md5_ctx *c)
{
    c->h[0] = 0x67452301;
    c->h[1] = 0xefcdab89;
    c->h[2] = 0x98badcfe;
    c->h[3] = 0x10325476;
    c->len = 0;
}

void sy_md5_update(sy_md5_ctx *c, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t have = (size_t)(c->len & 63);
    c->len += len;
    if (have) {
        size_t take = 64 - have < len ? 64 - have : len;
        memcpy(c->buf + have, p, take);
        p += take;
        len -= take;
        if (have + take < 64)
            return;
        md5_block(c->h, c->buf);
    }
    for (; len >= 64; p += 64, len -= 64)
        md5_block(c->h, p);
    if (len)
        memcpy(c->buf, p, len);
}

void sy_md5_final(sy_md5_ctx *c, unsigned char out[SY_MD5_DIGEST_LEN])
{
    uint64_t bits = c->len * 8;
    size_t have = (size_t)(c->len & 63);
    c->buf[have++] = 0x80;
    if (have > 56) {
        memset(c->buf + have, 0, 64 - have);
        md5_block(c->h, c->buf);
        have = 0;
    }
    memset(c->buf + have, 0, 56 - have);
    for (int i = 0; i < 8; i++)
        c->buf[56 + i] = (unsigned char)(bits >> (8 * i));
    md5_block(c->h, c->buf);
    for (int i = 0; i < 4; i++) {
        out[i * 4] = (unsigned char)c->h[i];
        out[i * 4 + 1] = (unsigned char)(c->h[i] >> 8);
        out[i * 4 + 2] = (unsigned char)(c->h[i] >> 16);
        out[i * 4 + 3] = (unsigned char)(c->h[i] >> 24);
    }
}

void sy_md5(const void *data, size_t len, unsigned char out[SY_MD5_DIGEST_LEN])
{
    sy_md5_ctx c;
    sy_md5_init(&c);
    sy_md5_update(&c, data, len);
    sy_md5_final(&c, out);
}
