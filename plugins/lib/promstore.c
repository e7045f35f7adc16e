/*
 * promstore.c - see promstore.h.
 *
 * Series live in one hash table keyed by "FAMILY\0(NAME\0VALUE\0)*" (labels
 * sorted by name) and are also linked into their family, so a page is
 * written family by family.  Families have a table of their own, keyed by
 * the exposed name, which is how a name used with two types is caught.
 */
#include "promstore.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_COUNTER, T_GAUGE, T_SUMMARY, T_HISTOGRAM };

static const char *const type_names[] = { "counter", "gauge", "summary", "histogram" };

/* The chain link of the two hash tables (series by key, families by
 * name); the first member of both, so a link is its node. */
typedef struct hlink {
    struct hlink *next;
    uint64_t hash;
} hlink;

typedef struct htab {
    hlink **b;
    size_t cap; /* a power of two */
} htab;

typedef struct family {
    hlink link; /* first */
    struct family *next, *prev;
    struct series *first, *last;
    size_t nseries;
    int type;
    size_t name_len;
    char name[];
} family;

typedef struct agebucket {
    double *v;
    size_t n, cap;
    uint64_t seen;
} agebucket;

typedef struct series {
    hlink link; /* first */
    struct series *next, *prev;
    family *fam;
    uint64_t last_ms;
    int64_t ts_ms;       /* the newest client time of its samples, 0: none */
    int64_t out_ms;      /* the time it was last shown or sent with */
    int out_stamped;     /* ... written on the sample (not a scrape's own time) */
    size_t key_len;
    size_t nlabels;
    prom_label *labels;  /* into key */
    double value;        /* counter, gauge; an observer's sum */
    double count;        /* observers */
    double *hcounts;     /* histogram: nbuckets + 1, not cumulative */
    agebucket *ages;     /* summary: age_buckets */
    int cur_age;
    uint64_t cur_start;
    char key[];
} series;

struct promstore {
    promstore_config cfg;
    htab sh;     /* series */
    htab fh;     /* families */
    size_t nfam;
    family *fam_first, *fam_last;
    promstore_stats st;
    uint64_t rng;
    char *scratch;
    size_t scratch_cap;
    double *qbuf;
    size_t qcap;
    char le[PROMSTORE_MAX_BUCKETS + 1][32];
    char qtext[PROMSTORE_MAX_QUANTILES][32];
};

static const char *const drop_names[PROMSTORE_DROP_COUNT] = {
    "series_limit", "set", "negative_counter", "type_conflict", "bad_utf8", "bad_name",
    "no_memory",
};

const char *promstore_drop_name(int reason)
{
    return reason >= 0 && reason < PROMSTORE_DROP_COUNT ? drop_names[reason] : "unknown";
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* --- settings --- */

static int read_number_list(const sy_host_api *api, sy_host *host, const char *key, double *out,
                            size_t max, size_t *n, char *err, size_t errlen)
{
    int len = api->setting_list_len(host, key);
    if (len < 0) {
        const char *s;
        double d;
        if (api->setting_string(host, key, NULL, &s) == 1 &&
            api->setting_number(host, key, 0, &d) == 1) {
            *n = 0;
            return 1; /* absent */
        }
        snprintf(err, errlen, "setting '%s' must be a list of numbers", key);
        return -1;
    }
    if ((size_t)len > max || len == 0) {
        snprintf(err, errlen, "setting '%s' has %d entries; give 1 to %zu", key, len, max);
        return -1;
    }
    for (int i = 0; i < len; i++) {
        const char *s = api->setting_list_string(host, key, i);
        char *end;
        double d = s ? strtod(s, &end) : NAN;
        if (!s || end == s || *end || !isfinite(d)) {
            snprintf(err, errlen, "setting '%s': entry %d must be a finite number", key, i + 1);
            return -1;
        }
        out[i] = d;
    }
    *n = (size_t)len;
    return 0;
}

int promstore_read_config(const sy_host_api *api, sy_host *host, promstore_config *cfg,
                          char *err, size_t errlen)
{
    double ttl, max_age;
    int64_t max_series, age_buckets, samples;
    memset(cfg, 0, sizeof(*cfg));
    if (api->setting_number(host, "ttl", 0, &ttl) < 0 || !(ttl >= 0) || ttl > 1e9) {
        snprintf(err, errlen, "setting 'ttl' must be a number of seconds >= 0 (0: never expire)");
        return -1;
    }
    if (api->setting_int(host, "maxSeries", 100000, &max_series) < 0 || max_series < 1 ||
        max_series > 100000000) {
        snprintf(err, errlen, "setting 'maxSeries' must be a whole number from 1 to 100000000");
        return -1;
    }
    if (api->setting_number(host, "summaryMaxAge", 600, &max_age) < 0 || !(max_age >= 1) ||
        max_age > 86400 * 7) {
        snprintf(err, errlen, "setting 'summaryMaxAge' must be from 1 to 604800 seconds");
        return -1;
    }
    if (api->setting_int(host, "summaryAgeBuckets", 5, &age_buckets) < 0 || age_buckets < 1 ||
        age_buckets > 60) {
        snprintf(err, errlen, "setting 'summaryAgeBuckets' must be a whole number from 1 to 60");
        return -1;
    }
    if (api->setting_int(host, "summarySamples", 100, &samples) < 0 || samples < 1 ||
        samples > 100000) {
        snprintf(err, errlen, "setting 'summarySamples' must be a whole number from 1 to 100000");
        return -1;
    }
    cfg->ttl_ms = (uint64_t)(ttl * 1000);
    cfg->max_series = (size_t)max_series;
    cfg->max_age_ms = (uint64_t)(max_age * 1000);
    cfg->age_buckets = (int)age_buckets;
    cfg->summary_samples = (size_t)samples;

    int rc = read_number_list(api, host, "buckets", cfg->buckets, PROMSTORE_MAX_BUCKETS,
                              &cfg->nbuckets, err, errlen);
    if (rc < 0)
        return -1;
    for (size_t i = 1; i < cfg->nbuckets; i++)
        if (!(cfg->buckets[i] > cfg->buckets[i - 1])) {
            snprintf(err, errlen, "setting 'buckets' must be in ascending order");
            return -1;
        }
    rc = read_number_list(api, host, "quantiles", cfg->quantiles, PROMSTORE_MAX_QUANTILES,
                          &cfg->nquantiles, err, errlen);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        cfg->nquantiles = 3;
        cfg->quantiles[0] = 0.5;
        cfg->quantiles[1] = 0.9;
        cfg->quantiles[2] = 0.99;
    }
    for (size_t i = 0; i < cfg->nquantiles; i++)
        if (!(cfg->quantiles[i] > 0 && cfg->quantiles[i] < 1)) {
            snprintf(err, errlen, "setting 'quantiles': each must be between 0 and 1");
            return -1;
        }
    return 0;
}

/* --- names --- */

/* Length of the valid UTF-8 character at p, or 0. */
static size_t utf8_char(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, min = 0x10000;
    else
        return 0;
    if (left < n)
        return 0;
    unsigned cp = c & (0x3F >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int utf8_valid(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_char((const unsigned char *)s + i, len - i);
        if (!n)
            return 0;
        i += n;
    }
    return 1;
}

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

size_t promstore_escape_name(const char *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    int prev_dash = 0;
    if (len && in[0] >= '0' && in[0] <= '9')
        out[o++] = '_';
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (name_char(c)) {
            out[o++] = (char)c;
            prev_dash = 0;
            i++;
            continue;
        }
        size_t n = utf8_char((const unsigned char *)in + i, len - i);
        i += n ? n : 1;
        if (c == '-' && prev_dash)
            continue; /* "--" is one '_' */
        out[o++] = '_';
        prev_dash = c == '-';
    }
    out[o] = '\0';
    return o;
}

size_t promstore_format_value(const sy_host_api *api, double v, char *buf)
{
    if (isnan(v))
        return (size_t)snprintf(buf, 32, "NaN");
    if (isinf(v))
        return (size_t)snprintf(buf, 32, v > 0 ? "+Inf" : "-Inf");
    return api->format_number(v, buf);
}

/* --- the hash tables --- */

static int htab_init(htab *t, size_t cap)
{
    t->b = calloc(cap, sizeof(*t->b));
    t->cap = cap;
    return t->b ? 0 : -1;
}

static hlink *htab_chain(const htab *t, uint64_t h)
{
    return t->b[h & (t->cap - 1)];
}

static void htab_insert(htab *t, hlink *l, uint64_t h)
{
    l->hash = h;
    l->next = t->b[h & (t->cap - 1)];
    t->b[h & (t->cap - 1)] = l;
}

static void htab_remove(htab *t, hlink *l)
{
    hlink **pp = &t->b[l->hash & (t->cap - 1)];
    while (*pp && *pp != l)
        pp = &(*pp)->next;
    if (*pp)
        *pp = l->next;
}

/* Doubles the table; without memory it stays (its chains get longer). */
static void htab_grow(htab *t)
{
    size_t ncap = t->cap * 2;
    hlink **nb = calloc(ncap, sizeof(*nb));
    if (!nb)
        return;
    for (size_t i = 0; i < t->cap; i++) {
        for (hlink *l = t->b[i], *nx; l; l = nx) {
            nx = l->next;
            l->next = nb[l->hash & (ncap - 1)];
            nb[l->hash & (ncap - 1)] = l;
        }
    }
    free(t->b);
    t->b = nb;
    t->cap = ncap;
}

/* --- the store --- */

promstore *promstore_new(const promstore_config *cfg, const sy_host_api *api)
{
    promstore *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = *cfg;
    if (htab_init(&s->sh, 1024) < 0 || htab_init(&s->fh, 256) < 0) {
        promstore_free(s);
        return NULL;
    }
    s->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)s;
    for (size_t i = 0; i < cfg->nbuckets; i++)
        promstore_format_value(api, cfg->buckets[i], s->le[i]);
    snprintf(s->le[cfg->nbuckets], sizeof(s->le[0]), "+Inf");
    for (size_t i = 0; i < cfg->nquantiles; i++)
        promstore_format_value(api, cfg->quantiles[i], s->qtext[i]);
    return s;
}

static void series_free(const promstore *s, series *x)
{
    for (int i = 0; x->ages && i < s->cfg.age_buckets; i++)
        free(x->ages[i].v);
    free(x->ages);
    free(x->hcounts);
    free(x->labels);
    free(x);
}

void promstore_free(promstore *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->sh.b && i < s->sh.cap; i++) {
        for (hlink *l = s->sh.b[i], *nx; l; l = nx) {
            nx = l->next;
            series_free(s, (series *)l);
        }
    }
    for (family *f = s->fam_first; f;) {
        family *nf = f->next;
        free(f);
        f = nf;
    }
    free(s->sh.b);
    free(s->fh.b);
    free(s->scratch);
    free(s->qbuf);
    free(s);
}

const promstore_stats *promstore_get_stats(const promstore *s)
{
    return &s->st;
}

static family *family_find(promstore *s, const char *name, size_t len, uint64_t h)
{
    for (hlink *l = htab_chain(&s->fh, h); l; l = l->next) {
        family *f = (family *)l;
        if (l->hash == h && f->name_len == len && memcmp(f->name, name, len) == 0)
            return f;
    }
    return NULL;
}

static family *family_find_str(promstore *s, const char *name, size_t len)
{
    return family_find(s, name, len, fnv1a(name, len));
}

static int ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* Whether a new family would share exposed names with an existing one:
 * a summary or histogram NAME writes NAME_sum, NAME_count (NAME_bucket),
 * which a parser would take for the other family's samples. */
static int family_clash(promstore *s, const char *name, size_t len, int type)
{
    static const char *const parts[] = { "_sum", "_count", "_bucket" };
    if (type == T_SUMMARY || type == T_HISTOGRAM) {
        char *tmp = malloc(len + 8);
        int clash = 0;
        if (!tmp)
            return 1;
        for (int i = 0; i < 3 && !clash; i++) {
            size_t pl = strlen(parts[i]);
            memcpy(tmp, name, len);
            memcpy(tmp + len, parts[i], pl);
            clash = family_find_str(s, tmp, len + pl) != NULL;
        }
        free(tmp);
        if (clash)
            return 1;
    }
    for (int i = 0; i < 3; i++) {
        if (!ends_with(name, len, parts[i]))
            continue;
        family *f = family_find_str(s, name, len - strlen(parts[i]));
        if (f && (f->type == T_SUMMARY || f->type == T_HISTOGRAM))
            return 1;
    }
    return 0;
}

static family *family_new(promstore *s, const char *name, size_t len, uint64_t h, int type)
{
    family *f = calloc(1, sizeof(*f) + len + 1);
    if (!f)
        return NULL;
    memcpy(f->name, name, len);
    f->name_len = len;
    f->type = type;
    htab_insert(&s->fh, &f->link, h);
    f->prev = s->fam_last;
    if (s->fam_last)
        s->fam_last->next = f;
    else
        s->fam_first = f;
    s->fam_last = f;
    if (++s->nfam > s->fh.cap)
        htab_grow(&s->fh);
    return f;
}

static void family_remove(promstore *s, family *f)
{
    htab_remove(&s->fh, &f->link);
    if (f->prev)
        f->prev->next = f->next;
    else
        s->fam_first = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        s->fam_last = f->prev;
    s->nfam--;
    free(f);
}

static void series_remove(promstore *s, series *x)
{
    htab_remove(&s->sh, &x->link);
    family *f = x->fam;
    if (x->prev)
        x->prev->next = x->next;
    else
        f->first = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        f->last = x->prev;
    series_free(s, x);
    s->st.series--;
    if (--f->nseries == 0)
        family_remove(s, f);
}

static uint64_t next_rand(promstore *s)
{
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return s->rng = x;
}

/* Moves a summary's window to now: age buckets older than max_age are
 * emptied and reused. */
static void ages_rotate(promstore *s, series *x, uint64_t now)
{
    int nb = s->cfg.age_buckets;
    uint64_t w = s->cfg.max_age_ms / (uint64_t)nb;
    if (w == 0)
        w = 1;
    if (now < x->cur_start)
        return; /* the clock went back: keep the buckets */
    if (now - x->cur_start >= s->cfg.max_age_ms + w) {
        for (int i = 0; i < nb; i++)
            x->ages[i].n = x->ages[i].seen = 0;
        x->cur_age = 0;
        x->cur_start = now;
        return;
    }
    while (now >= x->cur_start + w) {
        x->cur_age = (x->cur_age + 1) % nb;
        x->ages[x->cur_age].n = x->ages[x->cur_age].seen = 0;
        x->cur_start += w;
    }
}

static void summary_observe(promstore *s, series *x, double v, uint64_t now)
{
    ages_rotate(s, x, now);
    agebucket *b = &x->ages[x->cur_age];
    b->seen++;
    if (b->n < s->cfg.summary_samples) {
        if (b->n == b->cap) {
            size_t ncap = b->cap ? b->cap * 2 : 8;
            if (ncap > s->cfg.summary_samples)
                ncap = s->cfg.summary_samples;
            double *nv = realloc(b->v, ncap * sizeof(*nv));
            if (!nv)
                return; /* the quantiles miss it; sum and count have it */
            b->v = nv;
            b->cap = ncap;
        }
        b->v[b->n++] = v;
    } else {
        /* a uniform reservoir of what this age bucket saw */
        uint64_t j = next_rand(s) % b->seen;
        if (j < b->n)
            b->v[j] = v;
    }
}

typedef struct tag {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
    size_t order;
} tag;

static int tag_cmp(const void *a, const void *b)
{
    const tag *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int reserve_scratch(promstore *s, size_t need)
{
    if (need <= s->scratch_cap)
        return 0;
    size_t ncap = s->scratch_cap ? s->scratch_cap : 4096;
    while (ncap < need)
        ncap *= 2;
    char *n = realloc(s->scratch, ncap);
    if (!n)
        return -1;
    s->scratch = n;
    s->scratch_cap = ncap;
    return 0;
}

static int drop(promstore *s, int reason)
{
    s->st.dropped[reason]++;
    return -1;
}

/* A label name Prometheus keeps for itself (__*), or that the type's own
 * series use (quantile on a summary, le on a histogram). */
static int reserved_label(const char *en, size_t elen, int type)
{
    return (elen >= 2 && en[0] == '_' && en[1] == '_') ||
           (type == T_SUMMARY && elen == 8 && memcmp(en, "quantile", 8) == 0) ||
           (type == T_HISTOGRAM && elen == 2 && memcmp(en, "le", 2) == 0);
}

int promstore_add(promstore *s, const sy_sample *x, uint64_t now)
{
    return promstore_add_at(s, x, now, 0);
}

int promstore_add_at(promstore *s, const sy_sample *x, uint64_t now, int64_t ts_ms)
{
    const char *semi = memchr(x->name, ';', x->name_len);
    size_t nlen = semi ? (size_t)(semi - x->name) : x->name_len;
    int type;
    double v = x->value;
    double times = 1;

    switch (x->type) {
    case SY_SAMPLE_COUNTER:
        type = T_COUNTER;
        v = x->rate == 1 ? v : v / x->rate;
        if (v < 0)
            return drop(s, PROMSTORE_DROP_NEGATIVE_COUNTER);
        break;
    case SY_SAMPLE_GAUGE:
        type = T_GAUGE;
        break;
    case SY_SAMPLE_TIMER:
        type = s->cfg.nbuckets ? T_HISTOGRAM : T_SUMMARY;
        v /= 1000;
        if (x->rate < 1) {
            times = floor(1 / x->rate);
            if (times < 1)
                times = 1;
        }
        break;
    default:
        return drop(s, PROMSTORE_DROP_SET);
    }
    if (nlen == 0)
        return drop(s, PROMSTORE_DROP_BAD_NAME);
    if (!utf8_valid(x->name, nlen) || !utf8_valid(x->tags, x->tags_len))
        return drop(s, PROMSTORE_DROP_BAD_UTF8);

    /* The key: the family name, then sorted label names and values. */
    size_t ntext = x->name_len - nlen; /* the name's own ";k=v" tags */
    size_t keymax = nlen + 2 * ((size_t)x->tags_len + ntext) + 16 + 4 * PROMSTORE_MAX_LABELS;
    size_t need = keymax + x->tags_len + ntext + 2 * PROMSTORE_MAX_LABELS + 16;
    if (reserve_scratch(s, need) != 0)
        return drop(s, PROMSTORE_DROP_NO_MEMORY);
    char *key = s->scratch;
    size_t flen = promstore_escape_name(x->name, nlen, key);
    if (type == T_COUNTER && !ends_with(key, flen, "_total")) {
        memcpy(key + flen, "_total", 7);
        flen += 6;
    }
    size_t klen = flen + 1;
    if (s->cfg.reserved_prefix &&
        strncmp(key, s->cfg.reserved_prefix, strlen(s->cfg.reserved_prefix)) == 0)
        return drop(s, PROMSTORE_DROP_BAD_NAME);

    /* Tags: escaped names go into the key buffer's tail first. */
    tag tags[PROMSTORE_MAX_LABELS];
    size_t ntags = 0;
    char *names = key + keymax;
    size_t names_used = 0;
    const char *p = x->tags, *end = x->tags + x->tags_len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *t = p;
        p = comma ? comma + 1 : end;
        if (t < stop && *t == '#')
            t++;
        const char *colon = memchr(t, ':', (size_t)(stop - t));
        if (!colon || colon == t || colon + 1 == stop) {
            s->st.tag_errors++;
            continue;
        }
        char *en = names + names_used;
        size_t elen = promstore_escape_name(t, (size_t)(colon - t), en);
        if (reserved_label(en, elen, type) || ntags == PROMSTORE_MAX_LABELS) {
            s->st.tag_errors++;
            continue;
        }
        names_used += elen + 1;
        tags[ntags] = (tag){ en, elen, colon + 1, (size_t)(stop - colon - 1), ntags };
        ntags++;
    }
    /* Then the routed name's own tags (";k=v", Graphite's form): a label a
     * route set (route :label) or a tag written in the name.  A name the
     * DogStatsD tags already gave keeps their value, as sent (the name
     * holds it sanitised). */
    for (const char *q = semi, *nend = x->name + x->name_len; q && q < nend;) {
        const char *t = q + 1;
        const char *next = memchr(t, ';', (size_t)(nend - t));
        const char *stop = next ? next : nend;
        q = next;
        const char *eq = memchr(t, '=', (size_t)(stop - t));
        if (!eq || eq == t || eq + 1 == stop)
            continue;
        char *en = names + names_used;
        size_t elen = promstore_escape_name(t, (size_t)(eq - t), en);
        int have = 0;
        for (size_t i = 0; i < ntags && !have; i++)
            have = tags[i].name_len == elen && memcmp(tags[i].name, en, elen) == 0;
        if (have)
            continue;
        /* A reserved name, or one beyond the bound, is left out without a
         * count: a tag the client sent was counted above, as a DogStatsD
         * tag, and its name copy here would count it twice. */
        if (reserved_label(en, elen, type) || ntags == PROMSTORE_MAX_LABELS)
            continue;
        names_used += elen + 1;
        tags[ntags] = (tag){ en, elen, eq + 1, (size_t)(stop - eq - 1), ntags };
        ntags++;
    }
    qsort(tags, ntags, sizeof(tags[0]), tag_cmp);
    size_t nl = 0;
    for (size_t i = 0; i < ntags; i++) {
        /* of tags with one name the last one sent wins */
        if (i + 1 < ntags && tags[i + 1].name_len == tags[i].name_len &&
            memcmp(tags[i + 1].name, tags[i].name, tags[i].name_len) == 0)
            continue;
        memmove(key + klen, tags[i].name, tags[i].name_len);
        klen += tags[i].name_len;
        key[klen++] = '\0';
        memcpy(key + klen, tags[i].value, tags[i].value_len);
        klen += tags[i].value_len;
        key[klen++] = '\0';
        nl++;
    }

    uint64_t h = fnv1a(key, klen);
    series *se = NULL;
    for (hlink *l = htab_chain(&s->sh, h); l && !se; l = l->next) {
        series *c = (series *)l;
        if (l->hash == h && c->key_len == klen && memcmp(c->key, key, klen) == 0)
            se = c;
    }
    if (se && se->fam->type != type)
        return drop(s, PROMSTORE_DROP_TYPE_CONFLICT);
    if (!se) {
        uint64_t fh = fnv1a(key, flen);
        family *f = family_find(s, key, flen, fh);
        if (f && f->type != type)
            return drop(s, PROMSTORE_DROP_TYPE_CONFLICT);
        if (s->st.series >= s->cfg.max_series)
            return drop(s, PROMSTORE_DROP_SERIES_LIMIT);
        if (!f && family_clash(s, key, flen, type))
            return drop(s, PROMSTORE_DROP_TYPE_CONFLICT);
        se = calloc(1, sizeof(*se) + klen);
        if (!se)
            return drop(s, PROMSTORE_DROP_NO_MEMORY);
        memcpy(se->key, key, klen);
        se->key_len = klen;
        se->nlabels = nl;
        if (nl) {
            se->labels = malloc(nl * sizeof(*se->labels));
            if (!se->labels) {
                free(se);
                return drop(s, PROMSTORE_DROP_NO_MEMORY);
            }
            const char *q = se->key + flen + 1;
            for (size_t i = 0; i < nl; i++) {
                se->labels[i].name = q;
                q += strlen(q) + 1;
                se->labels[i].value = q;
                q += strlen(q) + 1;
            }
        }
        if (type == T_HISTOGRAM) {
            se->hcounts = calloc(s->cfg.nbuckets + 1, sizeof(*se->hcounts));
            if (!se->hcounts) {
                series_free(s, se);
                return drop(s, PROMSTORE_DROP_NO_MEMORY);
            }
        } else if (type == T_SUMMARY) {
            se->ages = calloc((size_t)s->cfg.age_buckets, sizeof(*se->ages));
            if (!se->ages) {
                series_free(s, se);
                return drop(s, PROMSTORE_DROP_NO_MEMORY);
            }
            se->cur_start = now;
        }
        if (!f && !(f = family_new(s, key, flen, fh, type))) {
            series_free(s, se);
            return drop(s, PROMSTORE_DROP_NO_MEMORY);
        }
        se->fam = f;
        se->prev = f->last;
        if (f->last)
            f->last->next = se;
        else
            f->first = se;
        f->last = se;
        f->nseries++;
        htab_insert(&s->sh, &se->link, h);
        if (++s->st.series > s->sh.cap)
            htab_grow(&s->sh);
    }

    se->last_ms = now;
    if (!ts_ms) {
        se->ts_ms = 0;
    } else if (ts_ms <= se->out_ms) {
        s->st.ts_late++;
        se->ts_ms = 0;
    } else if (ts_ms > se->ts_ms) {
        se->ts_ms = ts_ms;
    }
    switch (type) {
    case T_COUNTER:
        se->value += v;
        break;
    case T_GAUGE:
        if (x->is_delta)
            se->value += v;
        else
            se->value = v;
        break;
    case T_HISTOGRAM: {
        size_t i = 0;
        while (i < s->cfg.nbuckets && !(v <= s->cfg.buckets[i]))
            i++;
        se->hcounts[i] += times;
        se->value += v * times;
        se->count += times;
        break;
    }
    default:
        summary_observe(s, se, v, now);
        se->value += v * times;
        se->count += times;
        break;
    }
    s->st.taken++;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void visit_summary(promstore *s, series *x, uint64_t now, const promstore_visitor *v,
                          void *arg, int64_t ts)
{
    const char *name = x->fam->name;
    ages_rotate(s, x, now);
    size_t n = 0;
    for (int i = 0; i < s->cfg.age_buckets; i++)
        n += x->ages[i].n;
    if (n > s->qcap) {
        double *nb = realloc(s->qbuf, n * sizeof(*nb));
        if (nb) {
            s->qbuf = nb;
            s->qcap = n;
        } else {
            n = 0;
        }
    }
    if (n) {
        size_t k = 0;
        for (int i = 0; i < s->cfg.age_buckets; i++) {
            if (x->ages[i].n)
                memcpy(s->qbuf + k, x->ages[i].v, x->ages[i].n * sizeof(double));
            k += x->ages[i].n;
        }
        qsort(s->qbuf, n, sizeof(double), cmp_double);
    }
    for (size_t q = 0; q < s->cfg.nquantiles; q++) {
        double val = NAN;
        if (n) {
            double r = ceil(s->cfg.quantiles[q] * (double)n);
            size_t idx = r < 1 ? 0 : (size_t)r - 1;
            if (idx >= n)
                idx = n - 1;
            val = s->qbuf[idx];
        }
        prom_label e = { "quantile", s->qtext[q] };
        v->sample(arg, name, "", x->labels, x->nlabels, &e, val, ts);
    }
    v->sample(arg, name, "_sum", x->labels, x->nlabels, NULL, x->value, ts);
    v->sample(arg, name, "_count", x->labels, x->nlabels, NULL, x->count, ts);
}

/* The time a series goes out with: its client's time, else the visit's
 * (0), but always after the time it last went out with, so that a
 * receiver gets each series in order.  `stale`: its last word (a stale
 * marker), never at a time that already holds a value.  A scrape's own
 * time is the scraper's: a series last shown without a time on the page
 * is never given one (two scrapes in one millisecond, or a wall clock set
 * back, would otherwise stamp it). */
static int64_t series_stamp(const series *x, uint64_t now, int stale, int own_times)
{
    if (x->ts_ms && !stale)
        return x->ts_ms;
    if (x->out_ms && x->out_ms >= (int64_t)now && (own_times || x->out_stamped))
        return x->out_ms + 1;
    return 0;
}

/* One series' samples, as a page shows them. */
static void visit_series(promstore *s, family *f, series *x, uint64_t now,
                         const promstore_visitor *v, void *arg, int stale)
{
    int64_t ts = series_stamp(x, now, stale, v->own_times);
    if (v->emits) {
        int64_t out = ts ? ts : (int64_t)now;
        if (out > x->out_ms) {
            x->out_ms = out;
            x->out_stamped = ts != 0;
        }
    }
    switch (f->type) {
    case T_COUNTER:
    case T_GAUGE:
        v->sample(arg, f->name, "", x->labels, x->nlabels, NULL, x->value, ts);
        break;
    case T_HISTOGRAM: {
        double cum = 0;
        for (size_t i = 0; i <= s->cfg.nbuckets; i++) {
            cum += x->hcounts[i];
            prom_label e = { "le", s->le[i] };
            v->sample(arg, f->name, "_bucket", x->labels, x->nlabels, &e, cum, ts);
        }
        v->sample(arg, f->name, "_sum", x->labels, x->nlabels, NULL, x->value, ts);
        v->sample(arg, f->name, "_count", x->labels, x->nlabels, NULL, x->count, ts);
        break;
    }
    default:
        visit_summary(s, x, now, v, arg, ts);
        break;
    }
}

void promstore_visit(promstore *s, uint64_t now, const promstore_visitor *v, void *arg)
{
    for (family *f = s->fam_first; f; f = f->next) {
        v->family(arg, f->name, type_names[f->type]);
        for (series *x = f->first; x; x = x->next)
            if (!(v->unsent_only && x->ts_ms && x->ts_ms <= x->out_ms))
                visit_series(s, f, x, now, v, arg, 0);
    }
}

size_t promstore_expire_visit(promstore *s, uint64_t now, const promstore_visitor *v, void *arg)
{
    if (!s->cfg.ttl_ms)
        return 0;
    size_t n = 0;
    for (family *f = s->fam_first; f;) {
        family *nf = f->next;
        for (series *x = f->first; x;) {
            series *nx = x->next;
            int last = nx == NULL;
            if (now >= x->last_ms && now - x->last_ms >= s->cfg.ttl_ms) {
                if (v)
                    visit_series(s, f, x, now, v, arg, 1);
                series_remove(s, x); /* may free f with its last series */
                n++;
            }
            if (last)
                break;
            x = nx;
        }
        f = nf;
    }
    s->st.expired += n;
    return n;
}

size_t promstore_expire(promstore *s, uint64_t now)
{
    return promstore_expire_visit(s, now, NULL, NULL);
}
