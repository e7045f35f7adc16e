/*
 * flush.c - statsd's process_metrics and graphite naming, in C.
 *
 * Floating-point results must equal statsd's to the last bit, so every sum
 * is taken in the order statsd takes it (sorted values, left to right) and
 * the build disables FMA contraction (-ffp-contract=off).  One deliberate
 * difference: for a negative threshold that covers every value statsd
 * reads cumulativeValues[-1] and emits NaN; switchyard emits the sum.
 */
#include "output/flush.h"
#include "util/clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/numfmt.h"
#include "ingest/parse.h"

#define BATCH_MAX 2048
#define NAMES_MIN_BYTES (256 * 1024)

/* Cumulative sums need 2n doubles per timer; the flusher keeps one buffer
 * for all its timers. */
typedef struct scratch_buf {
    double *p;
    size_t cap;
} scratch_buf;

struct sy_flusher {
    const sy_flush_opts *o;
    /* namespaces, each empty or ending in '.' */
    char *ns_counter, *ns_counts, *ns_timer, *ns_gauge, *ns_set;
    char *ns_stats;        /* "stats.statsd" (no trailing dot) */
    char *numstats_name;
    char *suffix;          /* "" or ".suffix" */
    size_t suffix_len;
    /* The last key's namespace and (sanitised) name, and where its tags
     * start: a timer's 14 values, a counter's two, are one key, whose
     * name is made once (see emit_key). */
    char *pre;
    size_t pre_len;
    const char *pre_ns, *pre_key, *pre_tags;
    size_t pre_klen, pre_tags_len;
    /* the batch being filled */
    sy_metric m[BATCH_MAX];
    size_t n;
    char *names;
    size_t used;
    size_t names_cap;
    size_t name_max;  /* the longest name this config can produce */
    scratch_buf scratch;
    sy_flush_emit_fn emit;
    void *ctx;
    uint64_t sinks;   /* of the batch being filled */
    int64_t ts;
    sy_flush_result *res;
};

/* Join non-empty parts with '.', and end with '.' when anything was
 * joined: statsd's namespace.concat(...).join('.'). */
static char *join_ns(const char *a, const char *b)
{
    char buf[4096];
    size_t n = 0;
    buf[0] = '\0';
    if (a && *a)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s.", a);
    if (b && *b && n < sizeof buf)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s.", b);
    return strdup(buf);
}

sy_flusher *sy_flusher_new(const sy_flush_opts *o)
{
    sy_flusher *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->o = o;
    char buf[4096];
    const char *ps = o->prefix_stats ? o->prefix_stats : "statsd";
    if (o->legacy) {
        f->ns_counter = strdup("stats.");
        f->ns_counts = strdup("stats_counts.");
        f->ns_timer = strdup("stats.timers.");
        f->ns_gauge = strdup("stats.gauges.");
        f->ns_set = strdup("stats.sets.");
        snprintf(buf, sizeof buf, "stats.%s", ps);
        f->ns_stats = strdup(buf);
        snprintf(buf, sizeof buf, "%s.numStats", ps);
        f->numstats_name = strdup(buf);
    } else {
        const char *gp = o->global_prefix;
        f->ns_counter = join_ns(gp, o->prefix_counter);
        f->ns_counts = strdup(f->ns_counter);
        f->ns_timer = join_ns(gp, o->prefix_timer);
        f->ns_gauge = join_ns(gp, o->prefix_gauge);
        f->ns_set = join_ns(gp, o->prefix_set);
        /* statsd: format(globalNamespace, prefixStats, ...) keeps an empty
         * prefixStats as an empty part ("stats..numStats"). */
        snprintf(buf, sizeof buf, "%s%s%s", gp && *gp ? gp : "", gp && *gp ? "." : "", ps);
        f->ns_stats = strdup(buf);
        snprintf(buf, sizeof buf, "%s.numStats", f->ns_stats);
        f->numstats_name = strdup(buf);
    }
    if (o->global_suffix) {
        snprintf(buf, sizeof buf, ".%s", o->global_suffix);
        f->suffix = strdup(buf);
    } else {
        f->suffix = strdup("");
    }
    /* A name is a namespace, the key (tags included), up to two stat
     * parts, the suffix: size the arena so any name fits. */
    size_t ns = strlen(f->ns_stats) + 600;
    const char *nss[] = { f->ns_counter, f->ns_counts, f->ns_timer, f->ns_gauge, f->ns_set };
    for (size_t i = 0; i < 5; i++)
        if (nss[i] && strlen(nss[i]) > ns)
            ns = strlen(nss[i]);
    f->name_max = ns + SY_KEY_MAX + 256 + strlen(f->suffix) + strlen(f->numstats_name);
    f->names_cap = f->name_max * 4 > NAMES_MIN_BYTES ? f->name_max * 4 : NAMES_MIN_BYTES;
    f->names = malloc(f->names_cap);
    f->suffix_len = strlen(f->suffix);
    f->pre = malloc(f->name_max);
    if (!f->pre || !f->ns_counter || !f->ns_counts || !f->ns_timer || !f->ns_gauge || !f->ns_set ||
        !f->ns_stats || !f->numstats_name || !f->suffix || !f->names) {
        sy_flusher_free(f);
        return NULL;
    }
    return f;
}

void sy_flusher_free(sy_flusher *f)
{
    if (!f)
        return;
    free(f->ns_counter);
    free(f->ns_counts);
    free(f->ns_timer);
    free(f->ns_gauge);
    free(f->ns_set);
    free(f->ns_stats);
    free(f->numstats_name);
    free(f->suffix);
    free(f->names);
    free(f->pre);
    free(f->scratch.p);
    free(f);
}

static void batch_flush(sy_flusher *f)
{
    if (f->n) {
        sy_metric_batch b = { .metrics = f->m, .count = f->n, .timestamp = f->ts };
        f->emit(f->ctx, &b, f->sinks);
    }
    f->n = 0;
    f->used = 0;
}

/* A Graphite line is the name, a space, the value, a space, a 10-digit
 * time and a newline; values average a few characters. */
#define LINE_OVERHEAD 18

/* The next values go to `sinks`: a batch holds one destination set. */
static void route_to(sy_flusher *f, uint64_t sinks)
{
    if (sinks != f->sinks) {
        batch_flush(f);
        f->sinks = sinks;
    }
}

/* Append one value; `name` is assembled by the caller in the batch arena
 * at f->names + f->used. */
static void push(sy_flusher *f, size_t name_len, uint8_t kind, double value)
{
    sy_metric *m = &f->m[f->n++];
    m->name = f->names + f->used;
    m->name_len = (uint32_t)name_len;
    m->kind = kind;
    m->value = value;
    f->names[f->used + name_len] = '\0';
    f->used += name_len + 1;
    f->res->metrics++;
    f->res->bytes += name_len + LINE_OVERHEAD;
    if (f->n == BATCH_MAX || f->names_cap - f->used < f->name_max)
        batch_flush(f);
}

static inline char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* The namespace and the key's name (sanitised when keyNameSanitize was
 * off at ingress: the graphite backend does it here, not to the tags)
 * into f->pre, and where the key's ;tags start.  Kept for the next value
 * of the same key and namespace: the snapshot's keys do not move while it
 * is flushed, and sy_flusher_next forgets the key at each call. */
static void key_prefix(sy_flusher *f, const char *ns, const char *key, size_t klen)
{
    const char *semi = memchr(key, ';', klen);
    size_t name_len = semi ? (size_t)(semi - key) : klen;
    char *p = put(f->pre, ns, strlen(ns));
    if (f->o->sanitized) {
        p = put(p, key, name_len);
    } else {
        int in_space = 0;
        for (size_t i = 0; i < name_len; i++) {
            unsigned char c = (unsigned char)key[i];
            size_t u = c >= 0xC2 ? sy_utf8_space((const unsigned char *)key + i, name_len - i) : 0;
            if (u)
                i += u - 1;
            if (u || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
                if (!in_space)
                    *p++ = '_';
                in_space = 1;
                continue;
            }
            in_space = 0;
            if (c == '/')
                *p++ = '-';
            else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '_' || c == '-' || c == '.' || c == ';' || c == '=')
                *p++ = (char)c;
        }
    }
    f->pre_len = (size_t)(p - f->pre);
    f->pre_ns = ns;
    f->pre_key = key;
    f->pre_klen = klen;
    f->pre_tags = semi;
    f->pre_tags_len = semi ? klen - name_len : 0;
}

/* statsd's graphite format(): namespace + key name + stat parts + suffix +
 * the key's ;tags. */
static void emit_key(sy_flusher *f, const char *ns, const char *key, size_t klen,
                     const char *stat1, const char *stat2, uint8_t kind, double value)
{
    if (key != f->pre_key || klen != f->pre_klen || ns != f->pre_ns)
        key_prefix(f, ns, key, klen);
    char *start = f->names + f->used;
    char *p = put(start, f->pre, f->pre_len);
    if (stat1) {
        *p++ = '.';
        p = put(p, stat1, strlen(stat1));
    }
    if (stat2) {
        *p++ = '.';
        p = put(p, stat2, strlen(stat2));
    }
    p = put(p, f->suffix, f->suffix_len);
    if (f->pre_tags)
        p = put(p, f->pre_tags, f->pre_tags_len);
    push(f, (size_t)(p - start), kind, value);
}

/* A name under the stats namespace: "stats.statsd" + "." + rel + suffix. */
static void emit_stats(sy_flusher *f, const char *rel, double value)
{
    char *start = f->names + f->used;
    char *p = put(start, f->ns_stats, strlen(f->ns_stats));
    *p++ = '.';
    size_t rl = strlen(rel);
    if (rl > 512)
        rl = 512;
    p = put(p, rel, rl);
    p = put(p, f->suffix, strlen(f->suffix));
    push(f, (size_t)(p - start), SY_KIND_INTERNAL, value);
}

static void emit_plain(sy_flusher *f, const char *name, double value)
{
    char *start = f->names + f->used;
    char *p = put(start, name, strlen(name));
    p = put(p, f->suffix, strlen(f->suffix));
    push(f, (size_t)(p - start), SY_KIND_INTERNAL, value);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Below this many values qsort is quicker than the radix sort's passes. */
#define RADIX_MIN 256

/* A double's bits as an unsigned integer in the same order as the number:
 * a negative one has every bit flipped (larger magnitude, smaller key), a
 * positive one only its sign bit set.  True for every double but NaN. */
static uint64_t radix_key(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return (b >> 63) ? ~b : b | (1ull << 63);
}

static double radix_value(uint64_t k)
{
    uint64_t b = (k >> 63) ? k & ~(1ull << 63) : ~k;
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

/*
 * Sort n timer values in numeric order: an LSD radix sort on their bits,
 * one byte a pass, skipping the bytes every value shares (timer values are
 * mostly small numbers: their top bytes rarely differ).  keys and tmp are
 * n each.  The values are never NaN (the parser takes finite decimals
 * only), so the order is qsort's; the one difference is that -0 comes
 * before 0 where qsort leaves them as they were, and no flushed figure
 * tells them apart (both print as 0, and add up alike).
 */
__attribute__((noinline)) /* its keys share memory with the caller's doubles */
static void sort_values(double *v, size_t n, uint64_t *keys, uint64_t *tmp)
{
    size_t hist[8][256];
    memset(hist, 0, sizeof hist);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = radix_key(v[i]);
        keys[i] = k;
        for (int b = 0; b < 8; b++)
            hist[b][(k >> (8 * b)) & 0xff]++;
    }
    for (int b = 0; b < 8; b++) {
        size_t *h = hist[b];
        if (h[(keys[0] >> (8 * b)) & 0xff] == n)
            continue; /* every key has this byte */
        size_t at = 0;
        for (int d = 0; d < 256; d++) {
            size_t c = h[d];
            h[d] = at;
            at += c;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t k = keys[i];
            tmp[h[(k >> (8 * b)) & 0xff]++] = k;
        }
        uint64_t *t = keys;
        keys = tmp;
        tmp = t;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = radix_value(keys[i]);
}

/* JavaScript's Math.round for the non-negative values used here. */
static double js_round(double x)
{
    double r = floor(x);
    return (x - r >= 0.5) ? r + 1 : r;
}

/* calculatedTimerMetrics: "mean_90" and "mean_top10" are filtered as
 * "mean_percent", using statsd's regex /_(top)?\d+$/. */
static int timer_stat_wanted(const sy_flush_opts *o, const char *stat)
{
    if (!o->ncalc)
        return 1;
    char clean[128];
    size_t len = strlen(stat), d = len;
    while (d > 0 && stat[d - 1] >= '0' && stat[d - 1] <= '9')
        d--;
    const char *want = stat;
    if (d < len) {
        size_t cut = 0;
        if (d >= 4 && memcmp(stat + d - 4, "_top", 4) == 0)
            cut = d - 4;
        else if (d >= 1 && stat[d - 1] == '_')
            cut = d - 1;
        else
            cut = (size_t)-1;
        if (cut != (size_t)-1 && cut < sizeof clean - 10) {
            memcpy(clean, stat, cut);
            memcpy(clean + cut, "_percent", 9);
            want = clean;
        }
    }
    for (size_t i = 0; i < o->ncalc; i++)
        if (strcmp(o->calc[i], want) == 0)
            return 1;
    return 0;
}

/* The five names of one percentile's statistics ("count_90", "mean_90",
 * "upper_90" or "lower_90", "sum_90", "sum_squares_90"), made once per
 * percentile and thread.  Made per timer and flush with snprintf, they
 * cost about 640 instructions each: a tenth of a timers-only load's
 * instructions per metric (tests/bench/profile.py --mix timers). */
typedef struct pct_names {
    double pct;
    char n[5][80];
} pct_names;

static void pct_names_make(pct_names *p, double pct)
{
    char pn[64];
    char num[SY_FMT_DOUBLE_MAX];
    sy_fmt_double(pct, num);
    /* statsd's clean_pct: ('' + pct).replace('.', '_').replace('-', 'top') */
    size_t j = 0;
    int dot = 0, dash = 0;
    for (const char *q = num; *q && j < sizeof pn - 4; q++) {
        if (*q == '.' && !dot) { pn[j++] = '_'; dot = 1; }
        else if (*q == '-' && !dash) { memcpy(pn + j, "top", 3); j += 3; dash = 1; }
        else pn[j++] = *q;
    }
    pn[j] = '\0';
    p->pct = pct;
    snprintf(p->n[0], sizeof p->n[0], "count_%s", pn);
    snprintf(p->n[1], sizeof p->n[1], "mean_%s", pn);
    snprintf(p->n[2], sizeof p->n[2], "%s_%s", pct > 0 ? "upper" : "lower", pn);
    snprintf(p->n[3], sizeof p->n[3], "sum_%s", pn);
    snprintf(p->n[4], sizeof p->n[4], "sum_squares_%s", pn);
}

static const pct_names *pct_names_of(double pct)
{
    static __thread pct_names cache[32], spare;
    static __thread size_t ncache;
    for (size_t i = 0; i < ncache; i++)
        if (memcmp(&cache[i].pct, &pct, sizeof pct) == 0)
            return &cache[i];
    pct_names *p = ncache < sizeof cache / sizeof cache[0] ? &cache[ncache++] : &spare;
    pct_names_make(p, pct);
    return p;
}

static void timer_stats(const sy_flush_opts *o, const char *key, sy_timer_data *t,
                        sy_timer_stat_fn out, void *ctx, scratch_buf *sb);

void sy_timer_stats(const sy_flush_opts *o, const char *key, sy_timer_data *t,
                    sy_timer_stat_fn out, void *ctx)
{
    scratch_buf sb = { 0 };
    timer_stats(o, key, t, out, ctx, &sb);
    free(sb.p);
}

static void timer_stats(const sy_flush_opts *o, const char *key, sy_timer_data *t,
                        sy_timer_stat_fn out, void *ctx, scratch_buf *sb)
{
    double fi = o->flush_interval_ms / 1000.0;
#define OUT(stat, val) do { if (timer_stat_wanted(o, stat)) out(ctx, stat, val); } while (0)
    if (!t || t->n == 0) {
        double c = t ? t->count : 0;
        /* statsd: current_timer_data["count"] = current_timer_data["count_ps"] = 0
         * assigns count_ps first. */
        OUT("count_ps", c / fi);
        OUT("count", c);
        return;
    }
    double *v = t->v;
    size_t count = t->n;
    if (sb->cap < count * 2) {
        free(sb->p);
        sb->cap = count * 2 > 1024 ? count * 2 : 1024;
        sb->p = malloc(sb->cap * sizeof *sb->p);
        if (!sb->p) {
            sb->cap = 0;
            return;
        }
    }
    /* The scratch buffer is free until the cumulative sums: the radix
     * sort's keys go there first (malloc'd memory; sort_values is not
     * inlined, so no access to the keys moves past the sums). */
    if (count >= RADIX_MIN)
        sort_values(v, count, (uint64_t *)(void *)sb->p, (uint64_t *)(void *)(sb->p + count));
    else
        qsort(v, count, sizeof *v, cmp_double);
    double *cum = sb->p, *cumsq = sb->p + count;
    double min = v[0], max = v[count - 1];
    cum[0] = min;
    cumsq[0] = min * min;
    for (size_t i = 1; i < count; i++) {
        cum[i] = v[i] + cum[i - 1];
        cumsq[i] = (v[i] * v[i]) + cumsq[i - 1];
    }
    int complete = t->seen == t->n;
    double sum = min, sumsq = min * min, mean = min, bound = max;
    /* Past timerSampleLimit the values are a uniform reservoir: thresholds
     * are taken from it, and counts and sums scaled to every sample seen. */
    double scale = complete ? 1 : (double)t->seen / (double)count;
    for (size_t k = 0; k < o->npct; k++) {
        double pct = o->pct[k];
        int dup = 0;
        for (size_t j = 0; j < k; j++)
            dup |= o->pct[j] == pct; /* statsd's values live in an object */
        if (dup)
            continue;
        double in = (double)count;
        if (count > 1) {
            in = js_round(fabs(pct) / 100 * (double)count);
            if (in == 0)
                continue;
            size_t ni = (size_t)in;
            if (pct > 0) {
                bound = v[ni - 1];
                sum = cum[ni - 1];
                sumsq = cumsq[ni - 1];
            } else {
                bound = v[count - ni];
                sum = cum[count - 1] - (ni < count ? cum[count - ni - 1] : 0);
                sumsq = cumsq[count - 1] - (ni < count ? cumsq[count - ni - 1] : 0);
            }
            mean = sum / in;
        }
        const pct_names *pn = pct_names_of(pct);
        if (!complete)
            in = js_round(fabs(pct) / 100 * (double)t->seen);
        OUT(pn->n[0], in);
        OUT(pn->n[1], mean);
        OUT(pn->n[2], bound);
        OUT(pn->n[3], sum * scale);
        OUT(pn->n[4], sumsq * scale);
    }
    double n_all, std;
    if (complete) {
        sum = cum[count - 1];
        sumsq = cumsq[count - 1];
        mean = sum / (double)count;
        double diffs = 0;
        for (size_t i = 0; i < count; i++)
            diffs += (v[i] - mean) * (v[i] - mean);
        std = sqrt(diffs / (double)count);
        n_all = (double)count;
    } else {
        /* Over the sample limit: exact totals, statistics from moments. */
        n_all = (double)t->seen;
        sum = t->sum;
        sumsq = t->sumsq;
        mean = sum / n_all;
        double var = sumsq / n_all - mean * mean;
        std = var > 0 ? sqrt(var) : 0;
        min = t->min;
        max = t->max;
    }
    (void)n_all;
    size_t mid = count / 2;
    double median = (count % 2) ? v[mid] : (v[mid - 1] + v[mid]) / 2;
    OUT("std", std);
    OUT("upper", max);
    OUT("lower", min);
    OUT("count", t->count);
    OUT("count_ps", t->count / fi);
    OUT("sum", sum);
    OUT("sum_squares", sumsq);
    OUT("mean", mean);
    OUT("median", median);

    const sy_histogram *h = NULL;
    for (size_t k = 0; k < o->nhist && key; k++) {
        if (strstr(key, o->hist[k].metric)) {
            h = &o->hist[k];
            break;
        }
    }
    if (h && h->nbins && timer_stat_wanted(o, "histogram")) {
        size_t i = 0;
        for (size_t b = 0; b < h->nbins; b++) {
            double freq = 0;
            for (; i < count && (isinf(h->bins[b]) || v[i] < h->bins[b]); i++)
                freq += 1;
            out(ctx, h->bin_names[b], freq);
        }
    }
#undef OUT
}

/* How many values timer_stats gives for this timer, without computing
 * them: the same choices (an idle timer, thresholds that cover no value,
 * repeated thresholds, calculatedTimerMetrics, the first histogram whose
 * metric is in the key), no sort and no name. */
size_t sy_timer_values(const sy_flush_opts *o, const char *key, const sy_timer_data *t)
{
    size_t n = 0;
    if (!t || t->n == 0)
        return (size_t)timer_stat_wanted(o, "count_ps") + (size_t)timer_stat_wanted(o, "count");
    size_t count = t->n;
    for (size_t k = 0; k < o->npct; k++) {
        double pct = o->pct[k];
        int dup = 0;
        for (size_t j = 0; j < k; j++)
            dup |= o->pct[j] == pct;
        if (dup || (count > 1 && js_round(fabs(pct) / 100 * (double)count) == 0))
            continue;
        const pct_names *pn = pct_names_of(pct);
        for (int i = 0; i < 5; i++)
            n += (size_t)timer_stat_wanted(o, pn->n[i]);
    }
    static const char *const plain[] = { "std", "upper", "lower", "count", "count_ps",
                                         "sum", "sum_squares", "mean", "median" };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        n += (size_t)timer_stat_wanted(o, plain[i]);
    for (size_t k = 0; k < o->nhist && key; k++) {
        if (strstr(key, o->hist[k].metric)) {
            if (o->hist[k].nbins && timer_stat_wanted(o, "histogram"))
                n += o->hist[k].nbins;
            break;
        }
    }
    return n;
}

struct timer_ctx {
    sy_flusher *f;
    const sy_snap_item *it;
};

static void timer_out(void *ctx, const char *stat, double value)
{
    struct timer_ctx *tc = ctx;
    emit_key(tc->f, tc->f->ns_timer, tc->it->key, tc->it->key_len, stat, NULL, SY_KIND_TIMER, value);
}

/* The phases of a flush, in statsd's order. */
enum { PH_EXTRA, PH_COUNTER, PH_TIMER, PH_GAUGE, PH_SET, PH_TAIL, PH_DONE };

/* Values of one item (already routed). */
static void emit_item(sy_flusher *f, const sy_snap_item *it, sy_flush_cursor *c)
{
    const sy_flush_opts *o = f->o;
    double fi = o->flush_interval_ms / 1000.0;
    switch (it->type) {
    case SY_T_COUNTER:
        if (o->legacy) {
            emit_key(f, f->ns_counter, it->key, it->key_len, NULL, NULL, SY_KIND_COUNTER, it->value / fi);
            if (o->flush_counts)
                emit_key(f, f->ns_counts, it->key, it->key_len, NULL, NULL, SY_KIND_COUNTER, it->value);
        } else {
            emit_key(f, f->ns_counter, it->key, it->key_len, "rate", NULL, SY_KIND_COUNTER, it->value / fi);
            if (o->flush_counts)
                emit_key(f, f->ns_counter, it->key, it->key_len, "count", NULL, SY_KIND_COUNTER, it->value);
        }
        break;
    case SY_T_TIMER: {
        int64_t t0 = (int64_t)sy_mono_ns();
        struct timer_ctx tc = { f, it };
        timer_stats(o, it->key, it->timer, timer_out, &tc, &f->scratch);
        c->timer_ns += (int64_t)sy_mono_ns() - t0;
        break;
    }
    case SY_T_GAUGE:
        emit_key(f, f->ns_gauge, it->key, it->key_len, NULL, NULL, SY_KIND_GAUGE, it->value);
        break;
    default:
        emit_key(f, f->ns_set, it->key, it->key_len, "count", NULL, SY_KIND_SET, it->value);
        break;
    }
}

static const int phase_type[] = { -1, SY_T_COUNTER, SY_T_TIMER, SY_T_GAUGE, SY_T_SET };

int sy_flusher_next(sy_flusher *f, const sy_snapshot *s, const sy_extra_metric *extra,
                    size_t nextra, uint64_t mask, sy_flush_cursor *c, size_t min_values,
                    sy_flush_emit_fn emit, void *ctx)
{
    int64_t t0 = (int64_t)sy_mono_ns();
    f->emit = emit;
    f->ctx = ctx;
    f->ts = s->ts;
    f->res = &c->res;
    f->n = 0;
    f->used = 0;
    f->sinks = 0;
    f->pre_key = NULL;
    size_t start = c->res.metrics;
    while (c->phase != PH_DONE && c->res.metrics - start < min_values) {
        if (c->phase == PH_EXTRA) {
            /* switchyard's own values first: a flush too large for a
             * sink's queue loses its tail, and the drop counters must not
             * be in it */
            if (s->internal_sinks & mask) {
                route_to(f, s->internal_sinks & mask);
                for (size_t i = 0; i < nextra; i++)
                    emit_stats(f, extra[i].name, extra[i].value);
            }
            c->phase++;
            c->i = 0;
            continue;
        }
        if (c->phase == PH_TAIL) {
            c->res.num_stats = s->counters + s->timers + s->gauges + s->sets;
            if (!c->fixed) {
                c->res.processing_ms = (double)(c->timer_ns / 1000000);
                c->calc_ms = (double)((c->ns + (int64_t)sy_mono_ns() - t0) / 1000000);
            }
            if (s->internal_sinks & mask) {
                route_to(f, s->internal_sinks & mask);
                emit_plain(f, f->numstats_name, (double)c->res.num_stats);
                emit_stats(f, "graphiteStats.calculationtime", c->calc_ms);
                emit_stats(f, "processing_time", c->res.processing_ms);
            }
            c->phase = PH_DONE;
            break;
        }
        int type = phase_type[c->phase];
        for (; c->i < s->n && c->res.metrics - start < min_values; c->i++) {
            const sy_snap_item *it = &s->items[c->i];
            if (it->type != type || !(it->sinks & mask))
                continue;
            route_to(f, it->sinks & mask);
            emit_item(f, it, c);
        }
        if (c->i >= s->n) {
            c->phase++;
            c->i = 0;
        }
    }
    batch_flush(f);
    c->ns += (int64_t)sy_mono_ns() - t0;
    return c->phase != PH_DONE;
}

void sy_flusher_run(sy_flusher *f, const sy_snapshot *s, const sy_extra_metric *extra,
                    size_t nextra, sy_flush_emit_fn emit, void *ctx, sy_flush_result *res)
{
    sy_flush_cursor c;
    memset(&c, 0, sizeof c);
    while (sy_flusher_next(f, s, extra, nextra, UINT64_MAX, &c, SIZE_MAX, emit, ctx))
        ;
    *res = c.res;
}

/* The rest of a flush for `mask`, counted and not made: what a sink that
 * cannot take it would otherwise cost the output (names, timer
 * statistics) for values it drops.  The cursor ends done; its res.metrics
 * and res.bytes stay what was made. */
size_t sy_flusher_skip(sy_flusher *f, const sy_snapshot *s, size_t nextra, uint64_t mask,
                       sy_flush_cursor *c)
{
    size_t n = 0;
    while (c->phase != PH_DONE) {
        if (c->phase == PH_EXTRA) {
            if (s->internal_sinks & mask)
                n += nextra;
        } else if (c->phase == PH_TAIL) {
            c->res.num_stats = s->counters + s->timers + s->gauges + s->sets;
            if (s->internal_sinks & mask)
                n += 3;
        } else {
            int type = phase_type[c->phase];
            for (; c->i < s->n; c->i++) {
                const sy_snap_item *it = &s->items[c->i];
                if (it->type != type || !(it->sinks & mask))
                    continue;
                if (type == SY_T_COUNTER)
                    n += f->o->flush_counts ? 2 : 1;
                else if (type == SY_T_TIMER)
                    n += sy_timer_values(f->o, it->key, it->timer);
                else
                    n++;
            }
        }
        c->phase++;
        c->i = 0;
    }
    return n;
}
