/*
 * md5.h - MD5 (RFC 1321), self-contained, for the carbon_ch hash ring
 * (carbon places metrics by the first two bytes of an MD5 digest).  Not for
 * anything security-related.
 */
#ifndef SY_PLUGIN_MD5_H
#define SY_PLUGIN_MD5_H

#include <stddef.h>
#include <stdint.h>

#define SY_MD5_DIGEST_LEN 16

typedef struct sy_md5_ctx {
    uint32_t h[4];
    uint64_t len;            /* bytes hashed so far */
    unsigned char buf[64];   /* a partial block: len % 64 bytes */
} sy_md5_ctx;

void sy_md5_init(sy_md5_ctx *c);
void sy_md5_update(sy_md5_ctx *c, const void *data, size_t len);
void sy_md5_final(sy_md5_ctx *c, unsigned char out[SY_MD5_DIGEST_LEN]);

/* The digest of one buffer. */
void sy_md5(const void *data, size_t len, unsigned char out[SY_MD5_DIGEST_LEN]);

#endif
