/*
 * chring.c - carbon's consistent hash ring.  See chring.h, and
 * carbon/hashing.py (ConsistentHashRing) and carbon/routers.py
 * (ConsistentHashingRouter) in graphite-carbon 1.1.
 */
#include "chring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md5.h"
#include "ringpoint.h"

#define KEY_MAX 2048

struct chring {
    chring_hash type;
    int replicas;
    ring_point *e; /* sorted by position */
    size_t n, cap;
};

static uint32_t fnv1a32(const char *p, size_t len)
{
    uint32_t h = 0x811c9dc5u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x01000193u;
    }
    return h;
}

uint32_t chring_position(chring_hash type, const char *key, size_t len)
{
    if (type == CHRING_FNV1A_CH) {
        uint32_t h = fnv1a32(key, len);
        return (h >> 16) ^ (h & 0xffffu);
    }
    unsigned char d[SY_MD5_DIGEST_LEN];
    sy_md5(key, len, d);
    return (uint32_t)d[0] << 8 | d[1]; /* int(hexdigest()[:4], 16) */
}

/* Python 3's repr() of a str, for ASCII: single quotes unless the text
 * holds a ' and no ", backslash escapes for \\, the quote, \t \n \r, and
 * \xNN for the other control characters and DEL. */
static size_t py_repr(const char *s, char *out, size_t off, size_t cap)
{
#define PUT(ch) do { if (off + 1 < cap) out[off] = (ch); off++; } while (0)
    char q = '\'';
    if (strchr(s, '\'') && !strchr(s, '"'))
        q = '"';
    PUT(q);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '\\' || c == (unsigned char)q) {
            PUT('\\');
            PUT((char)c);
        } else if (c == '\t') {
            PUT('\\');
            PUT('t');
        } else if (c == '\n') {
            PUT('\\');
            PUT('n');
        } else if (c == '\r') {
            PUT('\\');
            PUT('r');
        } else if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            PUT('\\');
            PUT('x');
            PUT(hex[c >> 4]);
            PUT(hex[c & 15]);
        } else {
            PUT((char)c);
        }
    }
    PUT(q);
#undef PUT
    return off;
}

static size_t put_text(const char *s, char *out, size_t off, size_t cap)
{
    for (; *s; s++, off++)
        if (off + 1 < cap)
            out[off] = *s;
    return off;
}

size_t chring_node_key(const char *server, const char *instance, char *buf, size_t len)
{
    size_t off = put_text("(", buf, 0, len);
    off = py_repr(server, buf, off, len);
    off = put_text(", ", buf, off, len);
    off = instance ? py_repr(instance, buf, off, len) : put_text("None", buf, off, len);
    off = put_text(")", buf, off, len);
    if (len)
        buf[off < len ? off : len - 1] = '\0';
    return off;
}

chring *chring_new(chring_hash type, int replicas)
{
    if (replicas < 1)
        return NULL;
    chring *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->type = type;
    r->replicas = replicas;
    return r;
}

void chring_free(chring *r)
{
    if (!r)
        return;
    free(r->e);
    free(r);
}

int chring_add(chring *r, const char *server, const char *instance, int node_id)
{
    char node[KEY_MAX], key[KEY_MAX + 32];
    if (node_id < 0)
        return -1;
    if (chring_node_key(server, instance, node, sizeof(node)) >= sizeof(node))
        return -1;
    if (r->n + (size_t)r->replicas > r->cap) {
        size_t cap = r->n + (size_t)r->replicas;
        ring_point *e = realloc(r->e, cap * sizeof(*e));
        if (!e)
            return -1;
        r->e = e;
        r->cap = cap;
    }
    for (int i = 0; i < r->replicas; i++) {
        int klen;
        if (r->type == CHRING_FNV1A_CH)
            klen = snprintf(key, sizeof(key), "%d-%s", i, instance ? instance : "None");
        else
            klen = snprintf(key, sizeof(key), "%s:%d", node, i);
        if (klen < 0 || (size_t)klen >= sizeof(key))
            return -1;
        uint32_t pos = chring_position(r->type, key, (size_t)klen);
        /* carbon: while position in [r[0] for r in self.ring]: position += 1 */
        size_t at = ring_lower_bound(r->e, r->n, pos);
        while (at < r->n && r->e[at].pos == pos) {
            pos++;
            at++;
        }
        memmove(&r->e[at + 1], &r->e[at], (r->n - at) * sizeof(*r->e));
        r->e[at].pos = pos;
        r->e[at].node = (uint32_t)node_id;
        r->n++;
    }
    return 0;
}

int chring_lookup(const chring *r, const char *key, size_t len)
{
    if (r->n == 0)
        return -1;
    size_t at = ring_lower_bound(r->e, r->n, chring_position(r->type, key, len));
    return (int)r->e[at == r->n ? 0 : at].node;
}

size_t chring_entries(const chring *r)
{
    return r->n;
}

void chring_entry(const chring *r, size_t i, uint32_t *pos, int *node_id)
{
    *pos = r->e[i].pos;
    *node_id = (int)r->e[i].node;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Copies [p, p + n) into out (size cap) as a string; -1 when too long. */
static int copy_part(const char *p, size_t n, char *out, size_t cap)
{
    if (n >= cap)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int chring_parse_dest(const char *text, chring_dest *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    const char *s = text, *e = text + strlen(text);
    while (s < e && is_space(*s))
        s++;
    while (e > s && is_space(e[-1]))
        e--;

    const char *host, *host_end, *port;
    if (s < e && *s == '[') {
        /* s.rfind(']:') */
        const char *b = NULL;
        for (const char *p = e - 2; p >= s; p--)
            if (p[0] == ']' && p[1] == ':') {
                b = p;
                break;
            }
        if (!b) {
            snprintf(err, errlen, "'%s': an address in brackets must be followed by ]:PORT", text);
            return -1;
        }
        host = s + 1;
        host_end = b;
        port = b + 2;
    } else {
        const char *c = memchr(s, ':', (size_t)(e - s));
        if (!c) {
            snprintf(err, errlen, "'%s' is not HOST:PORT or HOST:PORT:INSTANCE", text);
            return -1;
        }
        host = s;
        host_end = c;
        port = c + 1;
    }
    if (host_end <= host) {
        snprintf(err, errlen, "'%s' has no host", text);
        return -1;
    }
    if (copy_part(host, (size_t)(host_end - host), d->server, sizeof(d->server))) {
        snprintf(err, errlen, "'%s': the host is too long", text);
        return -1;
    }
    const char *port_end = memchr(port, ':', (size_t)(e - port));
    if (port_end) {
        d->has_instance = 1;
        if (copy_part(port_end + 1, (size_t)(e - port_end - 1), d->instance, sizeof(d->instance))) {
            snprintf(err, errlen, "'%s': the instance is too long", text);
            return -1;
        }
    } else {
        port_end = e;
    }
    long v = 0;
    const char *p = port;
    for (; p < port_end && *p >= '0' && *p <= '9' && v <= 65535; p++)
        v = v * 10 + (*p - '0');
    if (p == port || p != port_end || v < 1 || v > 65535) {
        snprintf(err, errlen, "'%s': the port must be a number from 1 to 65535", text);
        return -1;
    }
    d->port = (int)v;
    return 0;
}
