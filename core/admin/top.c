/*
 * top.c - top's figures, gathered as a walk visits the key table (top.h).
 */
#include "admin/top.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdatomic.h>

#include "engine/hash.h"
#include "util/log.h"
#include "admin/inspect.h"

typedef struct top_key {
    char *key;
    uint32_t klen;
    uint8_t type, listener, tenant;
    uint64_t samples, bytes;
} top_key;

typedef struct group {
    char *name;        /* prefixes: owned; NULL = a free slot */
    size_t len;
    uint64_t keys, samples, bytes;
} group;

#define PREFIX_SLOTS 16384 /* power of two, SY_TOP_PREFIXES at most 61% full */

struct sy_top {
    size_t n;
    int by, depth, json;
    top_key *heap;      /* the n hottest so far, a min-heap on the measure */
    size_t nheap;
    group *prefixes;    /* open addressing, PREFIX_SLOTS */
    size_t nprefixes;
    group other;        /* keys under prefixes past SY_TOP_PREFIXES */
    group listeners[256], tenants[256];
    uint64_t keys, samples, bytes;
};

static const char *const by_names[] = { "samples", "bytes", "keys" };
static const char *const type_names[] = { "c", "ms", "g", "s" };

static _Atomic uint64_t refused;
static sy_ratelimit rl_refused = SY_RATELIMIT_INIT(10000, 2);

uint64_t sy_top_refused(void) { return atomic_load(&refused); }

static int refuse(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s", why);
    atomic_fetch_add(&refused, 1);
    sy_log_limited(&rl_refused, SY_WARN, "admin: top refused: %s (switchyard_top_refused_total)", why);
    return -1;
}

int sy_top_parse(char *const *args, size_t nargs, size_t *n, int *by, int *depth, char *err,
                 size_t errlen)
{
    *n = SY_TOP_N_DEFAULT;
    *by = SY_TOP_SAMPLES;
    *depth = SY_TOP_DEPTH_DEFAULT;
    for (size_t i = 0; i < nargs; i++) {
        const char *a = args[i];
        char *end;
        if (strncmp(a, "by=", 3) == 0) {
            int found = -1;
            for (int b = 0; b < 3; b++)
                if (strcmp(a + 3, by_names[b]) == 0)
                    found = b;
            if (found < 0)
                return refuse(err, errlen, "by=samples, by=bytes or by=keys");
            *by = found;
        } else if (strncmp(a, "depth=", 6) == 0) {
            long d = strtol(a + 6, &end, 10);
            if (a[6] == '\0' || *end || d < 1 || d > SY_TOP_DEPTH_MAX)
                return refuse(err, errlen, "depth is 1 to 8 name components");
            *depth = (int)d;
        } else {
            const char *v = strncmp(a, "n=", 2) == 0 ? a + 2 : a;
            long k = strtol(v, &end, 10);
            if (*v == '\0' || *end || k < 1 || k > SY_TOP_N_MAX)
                return refuse(err, errlen, "N is 1 to 1000 keys");
            *n = (size_t)k;
        }
    }
    return 0;
}

void sy_top_args(size_t n, int by, int depth, char out[3][16])
{
    snprintf(out[0], 16, "%zu", n);
    snprintf(out[1], 16, "by=%s", by_names[by]);
    snprintf(out[2], 16, "depth=%d", depth);
}

sy_top *sy_top_new(size_t n, int by, int depth, int json)
{
    sy_top *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->n = n;
    t->by = by;
    t->depth = depth;
    t->json = json;
    t->heap = calloc(n, sizeof *t->heap);
    t->prefixes = calloc(PREFIX_SLOTS, sizeof *t->prefixes);
    if (!t->heap || !t->prefixes) {
        sy_top_free(t);
        return NULL;
    }
    return t;
}

void sy_top_free(sy_top *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nheap; i++)
        free(t->heap[i].key);
    free(t->heap);
    if (t->prefixes)
        for (size_t i = 0; i < PREFIX_SLOTS; i++)
            free(t->prefixes[i].name);
    free(t->prefixes);
    free(t);
}

/* What a key is ranked by: its bytes for by=bytes, else its samples. */
static uint64_t measure(const sy_top *t, uint64_t samples, uint64_t bytes)
{
    return t->by == SY_TOP_BYTES ? bytes : samples;
}

static int key_less(const sy_top *t, const top_key *x, const top_key *y)
{
    uint64_t a = measure(t, x->samples, x->bytes), b = measure(t, y->samples, y->bytes);
    if (a != b)
        return a < b;
    /* ties: the later name is the lesser, so that the output is stable */
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c > 0 : x->klen > y->klen;
}

static void sift_down(sy_top *t, size_t i)
{
    top_key *h = t->heap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->nheap && key_less(t, &h[l], &h[m]))
            m = l;
        if (r < t->nheap && key_less(t, &h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        top_key tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

static void sift_up(sy_top *t, size_t i)
{
    top_key *h = t->heap;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!key_less(t, &h[i], &h[p]))
            return;
        top_key tmp = h[i];
        h[i] = h[p];
        h[p] = tmp;
        i = p;
    }
}

static void add_key(sy_top *t, const top_key *k)
{
    if (t->nheap == t->n && !key_less(t, &t->heap[0], k))
        return;
    char *copy = malloc(k->klen + 1);
    if (!copy)
        return;
    memcpy(copy, k->key, k->klen);
    copy[k->klen] = '\0';
    if (t->nheap == t->n) {
        free(t->heap[0].key);
        t->heap[0] = *k;
        t->heap[0].key = copy;
        sift_down(t, 0);
    } else {
        t->heap[t->nheap] = *k;
        t->heap[t->nheap].key = copy;
        sift_up(t, t->nheap++);
    }
}

static void group_add(group *g, uint64_t samples, uint64_t bytes)
{
    g->keys++;
    g->samples += samples;
    g->bytes += bytes;
}

static void add_prefix(sy_top *t, const char *key, size_t klen, uint64_t samples, uint64_t bytes)
{
    size_t len = 0;
    int parts = 0;
    while (len < klen) {
        const char *dot = memchr(key + len, '.', klen - len);
        if (!dot || ++parts == t->depth) {
            len = dot ? (size_t)(dot - key) : klen;
            break;
        }
        len = (size_t)(dot - key) + 1;
    }
    size_t mask = PREFIX_SLOTS - 1;
    for (size_t i = sy_hash(key, len, 0x70b) & mask;; i = (i + 1) & mask) {
        group *g = &t->prefixes[i];
        if (!g->name) {
            if (t->nprefixes >= SY_TOP_PREFIXES || !(g->name = malloc(len + 1))) {
                group_add(&t->other, samples, bytes);
                return;
            }
            memcpy(g->name, key, len);
            g->name[len] = '\0';
            g->len = len;
            t->nprefixes++;
        } else if (g->len != len || memcmp(g->name, key, len) != 0) {
            continue;
        }
        group_add(g, samples, bytes);
        return;
    }
}

void sy_top_add(sy_top *t, const char *key, size_t klen, int type, uint32_t samples, uint32_t bytes,
                uint8_t listener, uint8_t tenant)
{
    t->keys++;
    t->samples += samples;
    t->bytes += bytes;
    top_key k = { .key = (char *)key, .klen = (uint32_t)klen, .type = (uint8_t)type,
                  .listener = listener, .tenant = tenant, .samples = samples, .bytes = bytes };
    add_key(t, &k);
    add_prefix(t, key, klen, samples, bytes);
    group_add(&t->listeners[listener], samples, bytes);
    group_add(&t->tenants[tenant], samples, bytes);
}

/* Groups ranked by keys, or by the key measure. */
static uint64_t group_measure(const sy_top *t, const group *g)
{
    return t->by == SY_TOP_KEYS ? g->keys : measure(t, g->samples, g->bytes);
}

static const sy_top *sort_top;
static int group_cmp(const void *x, const void *y)
{
    const group *a = *(const group *const *)x, *b = *(const group *const *)y;
    uint64_t ma = group_measure(sort_top, a), mb = group_measure(sort_top, b);
    if (ma != mb)
        return ma < mb ? 1 : -1;
    return strcmp(a->name, b->name);
}

static int key_cmp(const void *x, const void *y)
{
    const top_key *a = x, *b = y;
    return key_less(sort_top, a, b) ? 1 : key_less(sort_top, b, a) ? -1 : 0;
}

/* A JSON string: `"`, `\` and control bytes escaped, and bytes of 0x80
 * and above as \u00XX, so the document stays valid whatever a key holds. */
static void json_str(sy_buf *out, const char *s, size_t n)
{
    sy_buf_add(out, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            sy_buf_printf(out, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            sy_buf_printf(out, "\\u%04x", c);
        else
            sy_buf_add(out, (const char *)&c, 1);
    }
    sy_buf_add(out, "\"", 1);
}

static void text_str(sy_buf *out, const char *s)
{
    sy_inspect_escape_buf(out, s, strlen(s), SY_ESC_BYTES);
}

static void put_name(sy_top *t, sy_buf *out, const char *s)
{
    if (t->json)
        json_str(out, s, strlen(s));
    else
        text_str(out, s);
}

/* One table of groups: the n largest. */
static void put_groups(sy_top *t, sy_buf *out, const char *title, const char *field, group **gs, size_t ng,
                       const char *note)
{
    sort_top = t;
    qsort(gs, ng, sizeof *gs, group_cmp);
    size_t shown = ng < t->n ? ng : t->n;
    if (t->json) {
        sy_buf_printf(out, ",\"%s\":[", title);
        for (size_t i = 0; i < shown; i++) {
            sy_buf_printf(out, "%s{\"%s\":", i ? "," : "", field);
            put_name(t, out, gs[i]->name);
            sy_buf_printf(out, ",\"keys\":%llu,\"samples\":%llu,\"bytes\":%llu}",
                          (unsigned long long)gs[i]->keys, (unsigned long long)gs[i]->samples,
                          (unsigned long long)gs[i]->bytes);
        }
        sy_buf_printf(out, "],\"%s_total\":%zu", title, ng);
        return;
    }
    sy_buf_printf(out, "%s (%zu of %zu%s):\n", title, shown, ng, note);
    for (size_t i = 0; i < shown; i++) {
        sy_buf_printf(out, "  %10llu keys %10llu samples %12llu bytes  ", (unsigned long long)gs[i]->keys,
                      (unsigned long long)gs[i]->samples, (unsigned long long)gs[i]->bytes);
        put_name(t, out, gs[i]->name);
        sy_buf_add(out, "\n", 1);
    }
}

void sy_top_finish(sy_top *t, sy_buf *out, const char *const *listeners, const char *const *tenants,
                   const sy_top_arrivals *arr)
{
    /* listeners and tenants: keys where first seen, samples and bytes as
     * they arrived */
    const char *arrived = arr ? "; keys where first seen, samples and bytes where they arrived" : "";
    for (int i = 0; arr && i < 256; i++) {
        t->listeners[i].samples = arr->lsamples[i];
        t->listeners[i].bytes = arr->lbytes[i];
        t->tenants[i].samples = arr->tsamples[i];
        t->tenants[i].bytes = arr->tbytes[i];
    }
    sort_top = t;
    qsort(t->heap, t->nheap, sizeof *t->heap, key_cmp);
    if (t->json)
        sy_buf_printf(out, "{\"by\":\"%s\",\"depth\":%d,\"n\":%zu,\"keys_total\":%llu,\"samples_total\":%llu,"
                      "\"bytes_total\":%llu,\"attribution\":{\"keys\":\"first_seen\",\"samples\":\"arrival\","
                      "\"bytes\":\"arrival\"},\"keys\":[", by_names[t->by], t->depth, t->n,
                      (unsigned long long)t->keys, (unsigned long long)t->samples,
                      (unsigned long long)t->bytes);
    else
        sy_buf_printf(out, "top %zu by %s, prefixes of %d component%s: %llu keys, %llu samples, %llu "
                      "bytes this interval\nkeys:\n", t->n, by_names[t->by], t->depth,
                      t->depth == 1 ? "" : "s", (unsigned long long)t->keys,
                      (unsigned long long)t->samples, (unsigned long long)t->bytes);
    for (size_t i = 0; i < t->nheap; i++) {
        const top_key *k = &t->heap[i];
        const char *l = listeners[k->listener] ? listeners[k->listener] : "-";
        const char *tn = tenants[k->tenant] ? tenants[k->tenant] : "-";
        if (t->json) {
            sy_buf_printf(out, "%s{\"key\":", i ? "," : "");
            json_str(out, k->key, k->klen);
            sy_buf_printf(out, ",\"type\":\"%s\",\"samples\":%llu,\"bytes\":%llu,\"tenant\":",
                          type_names[k->type & 3], (unsigned long long)k->samples,
                          (unsigned long long)k->bytes);
            put_name(t, out, tn);
            sy_buf_add(out, ",\"listener\":", 12);
            put_name(t, out, l);
            sy_buf_add(out, "}", 1);
        } else {
            sy_buf_printf(out, "  %10llu samples %12llu bytes  %-2s ", (unsigned long long)k->samples,
                          (unsigned long long)k->bytes, type_names[k->type & 3]);
            sy_inspect_escape_buf(out, k->key, k->klen, SY_ESC_BYTES);
            sy_buf_add(out, "  tenant=", 9);
            put_name(t, out, tn);
            sy_buf_add(out, " listener=", 10);
            put_name(t, out, l);
            sy_buf_add(out, "\n", 1);
        }
    }
    if (t->json)
        sy_buf_add(out, "]", 1);
    /* prefixes, with "(other)" when the table was full */
    group **gs = malloc((t->nprefixes + 1 + 512) * sizeof *gs);
    if (!gs) {
        sy_buf_printf(out, t->json ? "}\n" : "ERROR: out of memory\nEND\n\n");
        return;
    }
    size_t ng = 0;
    for (size_t i = 0; i < PREFIX_SLOTS; i++)
        if (t->prefixes[i].name)
            gs[ng++] = &t->prefixes[i];
    if (t->other.keys) {
        t->other.name = "(other)";
        gs[ng++] = &t->other;
    }
    put_groups(t, out, "prefixes", "prefix", gs, ng, "");
    t->other.name = NULL;
    ng = 0;
    for (int i = 0; i < 256; i++)
        if (t->tenants[i].keys || t->tenants[i].samples || t->tenants[i].bytes) {
            t->tenants[i].name = (char *)(i == 0 ? "-" : tenants[i] ? tenants[i] : "(other)");
            gs[ng++] = &t->tenants[i];
        }
    put_groups(t, out, "tenants", "tenant", gs, ng, arrived);
    ng = 0;
    for (int i = 0; i < 256; i++)
        if (t->listeners[i].keys || t->listeners[i].samples || t->listeners[i].bytes) {
            t->listeners[i].name = (char *)(listeners[i] ? listeners[i] : "-");
            gs[ng++] = &t->listeners[i];
        }
    put_groups(t, out, "listeners", "listener", gs, ng, arrived);
    for (int i = 0; i < 256; i++)
        t->tenants[i].name = t->listeners[i].name = NULL;
    free(gs);
    sy_buf_add(out, t->json ? "}\n" : "END\n\n", t->json ? 2 : 5);
}
