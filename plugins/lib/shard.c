/*
 * shard.c - a ketama ring and jump consistent hash.  See shard.h.
 */
#include "shard.h"

#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "md5.h"
#include "ringpoint.h"

#define JUMP_RETRIES 64

struct shard {
    shard_method method;
    size_t n;
    char **names;
    ring_point *pts; /* ketama: sorted by (pos, node name) */
    size_t npts;
};

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t shard_ketama_position(const char *key, size_t len)
{
    unsigned char d[SY_MD5_DIGEST_LEN];
    sy_md5(key, len, d);
    return le32(d);
}

uint64_t shard_jump_key(const char *key, size_t len)
{
    unsigned char d[SY_MD5_DIGEST_LEN];
    sy_md5(key, len, d);
    return (uint64_t)le32(d) | (uint64_t)le32(d + 4) << 32;
}

/* Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm"
 * (2014), as published. */
int32_t shard_jump(uint64_t key, int32_t buckets)
{
    int64_t b = -1, j = 0;
    while (j < buckets) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
    }
    return (int32_t)b;
}

/* qsort has no context argument in C11: the names are reached through a
 * file-scope pointer for the one sort in shard_new (the plugin's callbacks
 * never run concurrently, but init of two instances could: guard it). */
static __thread char **sort_names;

static int point_cmp(const void *a, const void *b)
{
    const ring_point *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    int c = strcmp(sort_names[x->node], sort_names[y->node]);
    if (c)
        return c;
    return x->node < y->node ? -1 : x->node > y->node;
}

/* Position, then the listed order of the nodes: what JavaScript's stable
 * sort by position gives (points were made node by node; two equal
 * points of one node are interchangeable). */
static int point_cmp_stable(const void *a, const void *b)
{
    const ring_point *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return x->node < y->node ? -1 : x->node > y->node;
}

void shard_free(shard *s)
{
    if (!s)
        return;
    if (s->names)
        for (size_t i = 0; i < s->n; i++)
            free(s->names[i]);
    free(s->names);
    free(s->pts);
    free(s);
}

/* The ring's points, unsorted: for each node, `digests` md5 digests of
 * "NAME-i", each giving `per` points (bytes 4j..4j+3, little-endian). */
static int make_points(shard *s, size_t digests, int per)
{
    s->npts = s->n * digests * (size_t)per;
    s->pts = malloc((s->npts ? s->npts : 1) * sizeof(*s->pts));
    if (!s->pts)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t nlen = strlen(s->names[i]);
        char *key = malloc(nlen + 24);
        if (!key)
            return -1;
        for (size_t d = 0; d < digests; d++) {
            int klen = snprintf(key, nlen + 24, "%s-%zu", s->names[i], d);
            unsigned char dig[SY_MD5_DIGEST_LEN];
            sy_md5(key, (size_t)klen, dig);
            for (int j = 0; j < per; j++) {
                s->pts[k].pos = le32(dig + 4 * j);
                s->pts[k].node = (uint32_t)i;
                k++;
            }
        }
        free(key);
    }
    return 0;
}

shard *shard_new(shard_method method, const char *const *names, size_t n)
{
    if (n == 0 || n > SHARD_MAX_NODES || (method != SHARD_KETAMA && method != SHARD_JUMP && method != SHARD_STATSD))
        return NULL;
    shard *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->method = method;
    s->n = n;
    s->names = calloc(n, sizeof(*s->names));
    if (!s->names)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (!(s->names[i] = strdup(names[i])))
            goto fail;
    if (method == SHARD_KETAMA) {
        /* libketama: 40 digests a node, each giving 4 points */
        if (make_points(s, SHARD_KETAMA_DIGESTS, 4) < 0)
            goto fail;
        sort_names = s->names;
        qsort(s->pts, s->npts, sizeof(*s->pts), point_cmp);
        sort_names = NULL;
    } else if (method == SHARD_STATSD) {
        /* hashring's continuum(): weight 100 each, so the share of a node
         * is 100 / (100 n), times 40 vnodes, times n, floored; evaluated
         * left to right in doubles, as JavaScript does (1/3 * 40 * 3 is
         * 39.99999999999999 there too).  One point per digest (replicas
         * 0 is taken as 1). */
        double pct = 100.0 / (100.0 * (double)n);
        if (make_points(s, (size_t)floor(pct * 40.0 * (double)n), 1) < 0)
            goto fail;
        /* stable by position: equal positions keep the listed order */
        qsort(s->pts, s->npts, sizeof(*s->pts), point_cmp_stable);
    }
    return s;
fail:
    shard_free(s);
    return NULL;
}

size_t shard_nodes(const shard *s)
{
    return s->n;
}

/* The index of the first point at or after position h, wrapping to 0. */
static size_t ketama_index(const shard *s, uint32_t h)
{
    size_t at = ring_lower_bound(s->pts, s->npts, h);
    return at == s->npts ? 0 : at;
}

/* hashring's find(), step for step (its answer differs from the plain
 * search above only for a key at position 0 or on a run of equal points). */
static size_t statsd_index(const shard *s, uint32_t h)
{
    long size = (long)s->npts, low = 0, high = size;
    for (;;) {
        long mid = (low + high) >> 1;
        if (mid == size)
            return 0;
        uint32_t middle = s->pts[mid].pos;
        uint32_t prev = mid == 0 ? 0 : s->pts[mid - 1].pos;
        if (h <= middle && h > prev)
            return (size_t)mid;
        if (middle < h)
            low = mid + 1;
        else
            high = mid - 1;
        if (low > high)
            return 0;
    }
}

static size_t ring_index(const shard *s, uint32_t h)
{
    return s->method == SHARD_STATSD ? statsd_index(s, h) : ketama_index(s, h);
}

size_t shard_pick(const shard *s, const char *key, size_t len)
{
    if (s->n == 1)
        return 0;
    if (s->method == SHARD_JUMP)
        return (size_t)shard_jump(shard_jump_key(key, len), (int32_t)s->n);
    return s->pts[ring_index(s, shard_ketama_position(key, len))].node;
}

/* splitmix64: derives the seeds of the re-jumps from the key's own. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

size_t shard_pick_up(const shard *s, const char *key, size_t len, const unsigned char *up,
                     size_t *own_out)
{
    *own_out = 0;
    if (s->n == 1)
        return 0;
    if (s->method == SHARD_JUMP) {
        uint64_t k = shard_jump_key(key, len);
        size_t own = (size_t)shard_jump(k, (int32_t)s->n);
        *own_out = own;
        if (up[own])
            return own;
        for (int a = 0; a < JUMP_RETRIES; a++) {
            k = mix64(k);
            size_t b = (size_t)shard_jump(k, (int32_t)s->n);
            if (up[b])
                return b;
        }
        for (size_t i = 1; i < s->n; i++) {
            size_t b = (own + i) % s->n;
            if (up[b])
                return b;
        }
        return own;
    }
    size_t at = ring_index(s, shard_ketama_position(key, len));
    size_t own = s->pts[at].node;
    *own_out = own;
    if (up[own])
        return own;
    for (size_t i = 1; i < s->npts; i++) {
        size_t node = s->pts[(at + i) % s->npts].node;
        if (up[node])
            return node;
    }
    return own;
}
