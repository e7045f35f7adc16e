/*
 * traces.c - `switchyard traces`, the reader of the traces stored by the
 * memcache_traces sink (formats: plugins/memcache_traces.c).
 *
 * Listing reads all 1000 `<prefix>:NNNNNN:part` keys with one multi-get,
 * keeps the records that decode, are version 1 and whose start time
 * belongs to the slot they were found in, and prints them newest first,
 * followed by totals over all of them per path and per span name.
 * Showing reads `<prefix>:NNNNNN:full` for the slot of START_MS and prints
 * it only if its start is START_MS: as in appstats, a slot is reused every
 * 100 seconds, so the full record may belong to a newer trace by now.
 *
 * The admin endpoint's /traces page (sy_traces_http) shares the fetching,
 * the checks and the totals with the command line and renders them as
 * HTML: the listing with links to `?show=START_MS`, and one trace's spans
 * as a timeline of bars placed by offset and duration.
 *
 * Everything read from memcached is untrusted: the JSON decoder
 * (record.c) is bounded, values are read by their announced length with a
 * cap (mc.c), and strings are printed with control characters and invalid
 * UTF-8 replaced, so a record cannot drive the terminal; on the page they
 * are HTML-escaped as well, and the page runs no script.
 */
#include "tools/traces/traces.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "lib/trace_format.h" /* plugins/lib: the keys and slots the sink writes */
#include "tools/traces/mc.h"
#include "tools/traces/record.h"
#include "tools/traces/text.h"
#include "util/numfmt.h"

#define DEFAULT_ADDR "127.0.0.1:11211"
#define DEFAULT_PREFIX TM_DEFAULT_PREFIX
#define DEFAULT_LIMIT 20
#define TIMEOUT_MS 5000
#define MAX_VALUE (64u << 20) /* larger values are skipped, not parsed */

/* ------------------------------------------------------------------ */
/* list: fetching and totals, shared by the CLI and the /traces page    */
/* ------------------------------------------------------------------ */

typedef struct listing {
    const char *prefix;
    size_t prefix_len;
    sy_trace_rec *recs;      /* newest first once fetched */
    size_t n;
    size_t ignored;
    char last_reason[256];
    size_t skipped;          /* values over the size cap */
} listing;

/* The slot of a part key we asked for, or -1. */
static int key_slot(const listing *l, const char *key)
{
    size_t n = strlen(key);
    if (n != l->prefix_len + 2 + TM_SLOT_DIGITS + strlen(TM_PART) ||
        memcmp(key, l->prefix, l->prefix_len) != 0)
        return -1;
    const char *p = key + l->prefix_len;
    if (p[0] != ':' || strcmp(p + 1 + TM_SLOT_DIGITS, ":" TM_PART) != 0 ||
        strspn(p + 1, "0123456789") < TM_SLOT_DIGITS)
        return -1;
    return atoi(p + 1);
}

static int on_part(void *ctx, const char *key, const char *data, size_t len)
{
    listing *l = ctx;
    char err[200];
    int slot = key_slot(l, key);
    if (slot < 0)
        return 0; /* not one of ours: memcached would not send it */
    sy_trace_rec *r = sy_traces_grow((void **)&l->recs, &l->n, sizeof(*r));
    if (!r)
        return -1;
    if (sy_trace_rec_parse(data, len, r, err, sizeof(err)) < 0) {
        l->n--;
        l->ignored++;
        snprintf(l->last_reason, sizeof(l->last_reason), "%s: %s", key, err);
        return 0;
    }
    if ((int)tm_slot(r->start) != slot) {
        snprintf(l->last_reason, sizeof(l->last_reason),
                 "%s: start %llu belongs to slot %06u", key, (unsigned long long)r->start,
                 tm_slot(r->start));
        sy_trace_rec_free(r);
        l->n--;
        l->ignored++;
    }
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    const sy_trace_rec *x = a, *y = b;
    if (x->start != y->start)
        return x->start > y->start ? -1 : 1;
    return strcmp(x->trace ? x->trace : "", y->trace ? y->trace : "");
}

static void listing_free(listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        sy_trace_rec_free(&l->recs[i]);
    free(l->recs);
    l->recs = NULL;
    l->n = 0;
}

/* Reads every part record under l->prefix with one multi-get and sorts
 * what decodes newest first.  0, or -1 with the reason in err (l is then
 * empty). */
static int list_fetch(listing *l, const char *addr, int timeout_ms, int total_ms,
                      size_t max_value, size_t max_total, int cancel_fd, char *err,
                      size_t errlen)
{
    size_t cap = TM_SLOTS * (l->prefix_len + 4 + TM_SLOT_DIGITS + strlen(TM_PART)) + 8;
    char *cmd = malloc(cap);
    mc m = { .fd = -1, .cancel_fd = cancel_fd };
    int rc = -1;
    if (!cmd) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t n = 0;
    memcpy(cmd, "get", 3);
    n = 3;
    for (unsigned s = 0; s < TM_SLOTS; s++)
        n += (size_t)snprintf(cmd + n, cap - n, " " TM_KEY_FMT, l->prefix, s * TM_SLOT_MS, TM_PART);
    memcpy(cmd + n, "\r\n", 2);
    n += 2;

    int opened = mc_open(&m, addr, timeout_ms, total_ms, max_value);
    m.budget = max_total ? max_total : SIZE_MAX;
    if (opened < 0 || mc_write(&m, cmd, n) < 0 || mc_values(&m, on_part, l, &l->skipped) < 0) {
        snprintf(err, errlen, "%s", m.err[0] ? m.err : "out of memory");
        listing_free(l);
        goto out;
    }
    if (l->n > 1)
        qsort(l->recs, l->n, sizeof(*l->recs), newest_first);
    rc = 0;
out:
    mc_close(&m);
    free(cmd);
    return rc;
}

typedef struct total {
    const char *name;  /* borrowed from a record; NULL for "no path" */
    double count, total;
} total;

static int by_total(const void *a, const void *b)
{
    const total *x = a, *y = b;
    if (x->total != y->total)
        return x->total > y->total ? -1 : 1;
    return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

static int by_name(const void *a, const void *b)
{
    const total *x = a, *y = b;
    if (!x->name || !y->name)
        return !x->name - !y->name;
    return strcmp(x->name, y->name);
}

/* Sums rows with equal names (sorts by name first), then sorts by total. */
static size_t merge_totals(total *t, size_t n)
{
    if (!n)
        return 0;
    qsort(t, n, sizeof(*t), by_name);
    size_t w = 0;
    for (size_t i = 1; i < n; i++) {
        if (by_name(&t[w], &t[i]) == 0) {
            t[w].count += t[i].count;
            t[w].total += t[i].total;
        } else {
            t[++w] = t[i];
        }
    }
    n = w + 1;
    qsort(t, n, sizeof(*t), by_total);
    return n;
}

/* Totals over every record of a listing: per path (count of traces, sum
 * of their durations) and per span name (from each record's stats).
 * Names are borrowed from the listing. */
typedef struct totals {
    total *paths, *names;
    size_t np, nn;
} totals;

static void totals_free(totals *t)
{
    free(t->paths);
    free(t->names);
    memset(t, 0, sizeof(*t));
}

static int totals_compute(const listing *l, totals *t)
{
    memset(t, 0, sizeof(*t));
    size_t nnames = 0;
    for (size_t i = 0; i < l->n; i++)
        nnames += l->recs[i].nstats;
    t->paths = calloc(l->n ? l->n : 1, sizeof(*t->paths));
    t->names = calloc(nnames ? nnames : 1, sizeof(*t->names));
    if (!t->paths || !t->names) {
        totals_free(t);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        t->paths[i] = (total){ l->recs[i].path, 1, l->recs[i].duration };
        for (size_t s = 0; s < l->recs[i].nstats; s++) {
            const sy_trace_stat *st = &l->recs[i].stats[s];
            t->names[k++] = (total){ st->name, st->count, st->total };
        }
    }
    t->np = merge_totals(t->paths, l->n);
    t->nn = merge_totals(t->names, k);
    return 0;
}

/* ------------------------------------------------------------------ */
/* show: fetching one full record, shared by the CLI and the page       */
/* ------------------------------------------------------------------ */

typedef struct fetched {
    char *data;
    size_t len;
    int found;
} fetched;

static int on_full(void *ctx, const char *key, const char *data, size_t len)
{
    fetched *f = ctx;
    (void)key;
    if (f->found)
        return 0;
    f->data = malloc(len + 1);
    if (!f->data)
        return -1;
    memcpy(f->data, data, len + 1);
    f->len = len;
    f->found = 1;
    return 0;
}

enum { FULL_OK = 0, FULL_GONE = 1, FULL_ERROR = 2 };

/* Reads the full record of the trace that started at `start`.  FULL_OK
 * with it in *out; FULL_GONE when its slot is empty, unreadable or holds
 * another trace by now (why says which, to be shown in parentheses);
 * FULL_ERROR when memcached could not be read (why says why). */
static int full_fetch(const char *addr, const char *prefix, uint64_t start, int timeout_ms,
                      int total_ms, size_t max_value, int cancel_fd, sy_trace_rec *out,
                      char *why, size_t whylen)
{
    char cmd[600];
    mc m = { .fd = -1, .cancel_fd = cancel_fd };
    fetched f = { 0 };
    size_t skipped = 0;
    int rc = FULL_ERROR;
    unsigned slot = tm_slot(start);
    memset(out, 0, sizeof(*out));
    snprintf(cmd, sizeof(cmd), "get " TM_KEY_FMT "\r\n", prefix, slot, TM_FULL);
    if (mc_open(&m, addr, timeout_ms, total_ms, max_value) < 0 ||
        mc_write(&m, cmd, strlen(cmd)) < 0 || mc_values(&m, on_full, &f, &skipped) < 0) {
        snprintf(why, whylen, "%s", m.err[0] ? m.err : "out of memory");
        goto out;
    }
    rc = FULL_GONE;
    if (!f.found) {
        if (skipped)
            snprintf(why, whylen, "slot %06u holds a record over %zu bytes", slot, max_value);
        else
            snprintf(why, whylen, "slot %06u is empty", slot);
        goto out;
    }
    char err[256];
    if (sy_trace_rec_parse(f.data, f.len, out, err, sizeof(err)) < 0) {
        snprintf(why, whylen, "slot %06u holds a record that cannot be read: %s", slot, err);
        goto out;
    }
    if (out->start != start) {
        snprintf(why, whylen, "slot now holds %llu", (unsigned long long)out->start);
        sy_trace_rec_free(out);
        goto out;
    }
    rc = FULL_OK;
out:
    mc_close(&m);
    free(f.data);
    return rc;
}

/* ------------------------------------------------------------------ */
/* the command line's output                                            */
/* ------------------------------------------------------------------ */

static int name_col(const total *t, size_t n, int min)
{
    int w = min;
    for (size_t i = 0; i < n; i++) {
        int tw = sy_text_width(t[i].name);
        if (tw > w)
            w = tw;
    }
    return w > 60 ? 60 : w;
}

static void print_list(const listing *l, const char *addr, long limit)
{
    size_t shown = limit > 0 && (size_t)limit < l->n ? (size_t)limit : l->n;
    printf("%zu trace%s stored under %s at %s; %s%zu, newest first\n\n", l->n,
           l->n == 1 ? "" : "s", l->prefix, addr, shown < l->n ? "the latest " : "all ",
           shown);
    printf("%-24s  %-13s  %10s  %5s  %-6s  %-7s  %s\n", "START (UTC)", "START_MS", "DURATION",
           "SPANS", "STATUS", "METHOD", "PATH");
    for (size_t i = 0; i < shown; i++) {
        const sy_trace_rec *r = &l->recs[i];
        char when[80], dur[32];
        sy_text_time(r->start, when, sizeof(when));
        sy_text_ms(r->duration, dur, sizeof(dur));
        printf("%-24s  %-13llu  %7s ms  %5.0f  ", when, (unsigned long long)r->start, dur,
               r->span_count);
        sy_text_put(stdout, r->status, 6, 6);
        fputs("  ", stdout);
        sy_text_put(stdout, r->method, 7, 7);
        fputs("  ", stdout);
        sy_text_put(stdout, r->path, 0, 120);
        fputc('\n', stdout);
    }

    /* totals over every record read, not only those listed */
    totals t;
    if (totals_compute(l, &t) < 0) {
        fprintf(stderr, "switchyard traces: out of memory for the totals\n");
        return;
    }
    int w = name_col(t.paths, t.np, 4);
    printf("\nby path (over %zu trace%s)\n", l->n, l->n == 1 ? "" : "s");
    printf("%-*s  %7s  %12s  %10s\n", w, "PATH", "COUNT", "TOTAL_MS", "MEAN_MS");
    for (size_t i = 0; i < t.np; i++) {
        char tot[32], mean[32];
        sy_text_ms(t.paths[i].total, tot, sizeof(tot));
        sy_text_ms(t.paths[i].count ? t.paths[i].total / t.paths[i].count : 0, mean, sizeof(mean));
        sy_text_put(stdout, t.paths[i].name, w, w);
        printf("  %7.0f  %12s  %10s\n", t.paths[i].count, tot, mean);
    }
    w = name_col(t.names, t.nn, 9);
    printf("\nby span name\n");
    printf("%-*s  %7s  %12s\n", w, "SPAN NAME", "COUNT", "TOTAL_MS");
    for (size_t i = 0; i < t.nn; i++) {
        char tot[32];
        sy_text_ms(t.names[i].total, tot, sizeof(tot));
        sy_text_put(stdout, t.names[i].name, w, w);
        printf("  %7.0f  %12s\n", t.names[i].count, tot);
    }
    totals_free(&t);
}

static int do_list(const char *addr, const char *prefix, long limit)
{
    listing l = { .prefix = prefix, .prefix_len = strlen(prefix) };
    char err[600];
    if (list_fetch(&l, addr, TIMEOUT_MS, 0, MAX_VALUE, 0, -1, err, sizeof(err)) < 0) {
        fprintf(stderr, "switchyard traces: %s\n", err);
        return 2;
    }
    if (l.n == 0)
        printf("no traces stored under %s at %s\n", prefix, addr);
    else
        print_list(&l, addr, limit);
    if (l.ignored)
        fprintf(stderr, "switchyard traces: %zu record%s ignored (last: %s)\n", l.ignored,
                l.ignored == 1 ? "" : "s", l.last_reason);
    if (l.skipped)
        fprintf(stderr, "switchyard traces: %zu record%s over %u bytes skipped\n", l.skipped,
                l.skipped == 1 ? "" : "s", MAX_VALUE);
    listing_free(&l);
    return 0;
}

static void print_trace(const sy_trace_rec *r)
{
    char when[80], dur[32];
    sy_text_time(r->start, when, sizeof(when));
    sy_text_ms(r->duration, dur, sizeof(dur));
    fputs("trace     ", stdout);
    sy_text_put(stdout, r->trace, 0, 0);
    printf("\nstart     %s (%llu)\n", when, (unsigned long long)r->start);
    fputs("request   ", stdout);
    sy_text_put(stdout, r->method, 0, 0);
    fputc(' ', stdout);
    sy_text_put(stdout, r->path, 0, 0);
    fputs("  status ", stdout);
    sy_text_put(stdout, r->status, 0, 0);
    printf("\nduration  %s ms%s\n", dur, r->root ? "" : " (no root span: the extent of the spans)");
    fputs("closed    ", stdout);
    sy_text_put(stdout, r->closed, 0, 0);
    printf("\nspans     %zu stored, %.0f dropped\n\n", r->nspans, r->spans_dropped);

    int w = 4;
    for (size_t i = 0; i < r->nspans; i++) {
        int tw = sy_text_width(r->spans[i].name);
        if (tw > w)
            w = tw;
    }
    if (w > 60)
        w = 60;
    printf("%10s  %10s  %-*s  %s\n", "OFFSET_MS", "DUR_MS", w, "NAME", "TAGS");
    for (size_t i = 0; i < r->nspans; i++) {
        const sy_trace_span *s = &r->spans[i];
        char off[32], d[32];
        sy_text_ms(s->off, off, sizeof(off));
        sy_text_ms(s->dur, d, sizeof(d));
        printf("%10s  %10s  ", off, d);
        if (!s->root && !s->ntags) {
            sy_text_put(stdout, s->name, 0, w);
            fputc('\n', stdout);
            continue;
        }
        sy_text_put(stdout, s->name, w, w);
        fputs("  ", stdout);
        if (s->root)
            fputs(s->ntags ? "root," : "root", stdout);
        for (size_t k = 0; k < s->ntags; k++) {
            if (k)
                fputc(',', stdout);
            sy_text_put(stdout, s->tags[k], 0, 0);
        }
        fputc('\n', stdout);
    }
}

static int do_show(const char *addr, const char *prefix, uint64_t start)
{
    sy_trace_rec r;
    char why[800];
    int rc = full_fetch(addr, prefix, start, TIMEOUT_MS, 0, MAX_VALUE, -1, &r, why, sizeof(why));
    if (rc == FULL_ERROR) {
        fprintf(stderr, "switchyard traces: %s\n", why);
        return 2;
    }
    if (rc == FULL_GONE) {
        printf("trace %llu is no longer stored (%s)\n", (unsigned long long)start, why);
        return 1;
    }
    print_trace(&r);
    sy_trace_rec_free(&r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* the /traces page                                                     */
/* ------------------------------------------------------------------ */

/* A page is made on a worker thread (core/admin/admin.c), so the admin loop
 * never waits for it; a reader still wants an answer soon, so memcached
 * gets a short leash: each step 2 s, the whole exchange 5 s, and values
 * of at most 4 MiB each and 64 MiB in all (memcached's items are 1 MiB
 * unless raised).  What is read is client data, so the page is bounded
 * too: each table to a number of rows and to HTTP_TABLE_BYTES of HTML,
 * saying on the page what was left out. */
#define HTTP_TIMEOUT_MS 2000
#define HTTP_TOTAL_MS 5000
#define HTTP_MAX_VALUE (4u << 20)
#define HTTP_MAX_TOTAL ((size_t)64 << 20) /* all part records of one listing */
#define HTTP_DEFAULT_LIMIT 100
#define HTML_MAX_CHARS 1024 /* longer client text is cut, with an ellipsis */
#define HTTP_TOTALS_ROWS 200   /* rows of a totals table (the largest totals) */
#define HTTP_TIMELINE_SPANS 1000 /* spans drawn on one trace's timeline */
#define HTTP_SPAN_TAGS 20      /* tags shown per span */
#define HTTP_TABLE_BYTES ((size_t)1 << 20) /* HTML of one table */

/* Client text as HTML: & < > " ' escaped, control characters and invalid
 * UTF-8 shown as '?' (as the command line does), cut at `max` characters
 * with an ellipsis (0: no limit).  NULL prints a grey dash. */
static void h_text(struct evbuffer *o, const char *str, size_t max)
{
    if (!str) {
        evbuffer_add_printf(o, "<span class=\"none\">-</span>");
        return;
    }
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str), i, nchars = 0, chars = 0;
    int subst;
    for (i = 0; i < n; nchars++)
        i += sy_text_next_char(s, n, i, &subst);
    size_t keep = max && nchars > max ? max - 1 : nchars;
    for (i = 0; i < n && chars < keep; chars++) {
        size_t l = sy_text_next_char(s, n, i, &subst);
        if (subst)
            evbuffer_add(o, "?", 1);
        else if (s[i] == '&')
            evbuffer_add(o, "&amp;", 5);
        else if (s[i] == '<')
            evbuffer_add(o, "&lt;", 4);
        else if (s[i] == '>')
            evbuffer_add(o, "&gt;", 4);
        else if (s[i] == '"')
            evbuffer_add(o, "&quot;", 6);
        else if (s[i] == '\'')
            evbuffer_add(o, "&#39;", 5);
        else
            evbuffer_add(o, s + i, l);
        i += l;
    }
    if (keep < nchars)
        evbuffer_add(o, "\xE2\x80\xA6", 3); /* U+2026 */
}

/* part as a percentage of whole, clamped to 0..100 (0 when whole is not
 * positive). */
static double pct_of(double part, double whole)
{
    double v = whole > 0 ? part / whole * 100 : 0;
    if (!(v >= 0))
        return 0;
    return v > 100 ? 100 : v;
}

/* A percentage (0..100) with three decimals, without the C library's
 * locale. */
static void fmt_pct(double v, char *out, size_t cap)
{
    long long t = (long long)(v * 1000 + 0.5);
    snprintf(out, cap, "%lld.%03lld", t / 1000, t % 1000);
}

static void h_ms(struct evbuffer *o, double v)
{
    char b[32];
    sy_text_ms(v, b, sizeof(b));
    evbuffer_add_printf(o, "%s", b);
}

static const char PAGE_CSS[] =
    "body{font:14px/1.45 \"DejaVu Sans\",system-ui,sans-serif;margin:20px 28px;color:#1f2933;"
    "background:#fff}"
    "h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:26px 0 8px}"
    "p{margin:6px 0}.sub,.note{color:#616e7c}.note{font-size:12px}h2 .sub{font-weight:400}"
    "a{color:#1d4ed8;text-decoration:none}a:hover{text-decoration:underline}"
    "table{border-collapse:collapse}"
    "th,td{padding:4px 10px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}"
    "th{background:#f5f7fa;font-weight:600;white-space:nowrap}"
    ".num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".mono,td.path,td.name{font-family:\"DejaVu Sans Mono\",monospace;overflow-wrap:anywhere}"
    "td.path,td.name{max-width:42em}"
    ".s4{color:#b45309;font-weight:600}.s5{color:#b91c1c;font-weight:600}"
    ".none{color:#9aa5b1}"
    "dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:10px 0}"
    "dl.meta dt{color:#616e7c}dl.meta dd{margin:0;overflow-wrap:anywhere}"
    ".timeline{border:1px solid #e4e7eb;border-radius:4px;padding:4px 0;margin-top:8px}"
    ".axis,.span{display:flex;align-items:center}"
    ".span{border-top:1px solid #f0f2f5}"
    ".label{flex:0 0 36%;box-sizing:border-box;padding:3px 10px;font-size:12px;"
    "overflow-wrap:anywhere}"
    ".label .name{font-family:\"DejaVu Sans Mono\",monospace;font-weight:600}"
    ".label .when{color:#616e7c;margin-left:6px;white-space:nowrap}"
    ".label .tags{display:block;color:#52606d;font-family:\"DejaVu Sans Mono\",monospace}"
    ".track{position:relative;flex:1 1 auto;height:20px;margin-right:16px;background:#f5f7fa}"
    ".axis .track{background:none;height:18px}"
    ".tick{position:absolute;top:0;font-size:11px;color:#616e7c;white-space:nowrap}"
    ".bar{position:absolute;top:3px;bottom:3px;min-width:2px;background:#2563eb}"
    ".span.root .bar{background:#16a34a}";

static void page_begin(struct evbuffer *o, struct evkeyvalq *headers, const char *title_plain,
                       const char *title_client)
{
    if (headers) {
        evhttp_add_header(headers, "Content-Type", "text/html; charset=utf-8");
        evhttp_add_header(headers, "Cache-Control", "no-store");
        evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
        evhttp_add_header(headers, "Referrer-Policy", "no-referrer");
        /* No script, no outside resource: only the inline style runs. */
        evhttp_add_header(headers, "Content-Security-Policy",
                          "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                          "form-action 'none'; frame-ancestors 'none'");
    }
    evbuffer_add_printf(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                           "<meta name=\"viewport\" content=\"width=device-width\">"
                           "<title>%s", title_plain);
    if (title_client) {
        evbuffer_add_printf(o, " ");
        h_text(o, title_client, 120);
    }
    evbuffer_add_printf(o, " - switchyard</title><style>%s</style></head>\n<body>\n", PAGE_CSS);
}

static void page_end(struct evbuffer *o)
{
    evbuffer_add_printf(o, "</body></html>\n");
}

/* A page with a heading and a message; `why` is escaped. */
static int page_message(struct evbuffer *o, struct evkeyvalq *headers, int status,
                        const char *heading, const char *text, const char *why, int back)
{
    page_begin(o, headers, heading, NULL);
    evbuffer_add_printf(o, "<h1>%s</h1>\n<p class=\"message\">%s", heading, text);
    if (why) {
        evbuffer_add_printf(o, " <span class=\"why mono\">");
        h_text(o, why, HTML_MAX_CHARS);
        evbuffer_add_printf(o, "</span>");
    }
    evbuffer_add_printf(o, "</p>\n");
    if (back)
        evbuffer_add_printf(o, "<p><a href=\"/traces\">&larr; all traces</a></p>\n");
    page_end(o);
    return status;
}

/* The status's class: s4 or s5 for 4xx and 5xx, from its first byte. */
static const char *status_class(const char *status)
{
    if (status && status[0] == '4')
        return "status s4";
    if (status && status[0] == '5')
        return "status s5";
    return "status";
}

/* Rows stop at max_rows, or once the table (begun at byte `begun` of the
 * page) holds HTTP_TABLE_BYTES: a row's cells are cut to HTML_MAX_CHARS,
 * but a thousand of them would still make a page of megabytes. */
static int table_full(struct evbuffer *o, size_t begun, size_t rows, size_t max_rows)
{
    return rows >= max_rows || evbuffer_get_length(o) - begun >= HTTP_TABLE_BYTES;
}

/* The note under a table that was cut: what it shows of how many, and the
 * bounds. */
static void cut_note(struct evbuffer *o, const char *id, size_t shown, size_t n,
                     const char *what, const char *which, size_t max_rows)
{
    evbuffer_add_printf(o, "<p class=\"note cut\" id=\"%s-cut\">%zu of %zu %s shown (%s); "
                           "%zu more left out: a table holds at most %zu rows and %zu KiB on "
                           "this page.</p>\n", id, shown, n, what, which, n - shown, max_rows,
                        HTTP_TABLE_BYTES >> 10);
}

/* A totals table, cut to HTTP_TOTALS_ROWS rows (the largest totals: t is
 * sorted so); 1 when rows were left out. */
static int html_totals(struct evbuffer *o, const char *id, const char *cell, const char *heading,
                       const char *col, const char *what, const total *t, size_t n, size_t over)
{
    evbuffer_add_printf(o, "<h2>%s", heading);
    if (over)
        evbuffer_add_printf(o, " <span class=\"sub\">(over %zu trace%s)</span>", over,
                            over == 1 ? "" : "s");
    evbuffer_add_printf(o, "</h2>\n<table id=\"%s\"><thead><tr><th>%s</th><th class=\"num\">Count"
                           "</th><th class=\"num\">Total (ms)</th><th class=\"num\">Mean (ms)</th>"
                           "</tr></thead><tbody>\n", id, col);
    size_t begun = evbuffer_get_length(o), i;
    for (i = 0; i < n && !table_full(o, begun, i, HTTP_TOTALS_ROWS); i++) {
        evbuffer_add_printf(o, "<tr><td class=\"%s\">", cell);
        h_text(o, t[i].name, HTML_MAX_CHARS);
        evbuffer_add_printf(o, "</td><td class=\"num\">%.0f</td><td class=\"num\">", t[i].count);
        h_ms(o, t[i].total);
        evbuffer_add_printf(o, "</td><td class=\"num\">");
        h_ms(o, t[i].count ? t[i].total / t[i].count : 0);
        evbuffer_add_printf(o, "</td></tr>\n");
    }
    evbuffer_add_printf(o, "</tbody></table>\n");
    if (i < n)
        cut_note(o, id, i, n, what, "the largest totals", HTTP_TOTALS_ROWS);
    return i < n;
}

static int http_list(struct evbuffer *o, struct evkeyvalq *headers, const char *addr,
                     const char *prefix, size_t limit, int cancel_fd, int *cut)
{
    listing l = { .prefix = prefix, .prefix_len = strlen(prefix) };
    char err[600];
    if (list_fetch(&l, addr, HTTP_TIMEOUT_MS, HTTP_TOTAL_MS, HTTP_MAX_VALUE, HTTP_MAX_TOTAL,
                   cancel_fd, err, sizeof(err)) < 0)
        return page_message(o, headers, 503, "Traces unavailable",
                            "The traces cannot be read from memcached:", err, 0);
    totals t;
    if (totals_compute(&l, &t) < 0) {
        listing_free(&l);
        return page_message(o, headers, 500, "Traces unavailable",
                            "Out of memory for the totals.", NULL, 0);
    }
    size_t shown = limit && limit < l.n ? limit : l.n;
    page_begin(o, headers, "Traces", NULL);
    evbuffer_add_printf(o, "<h1>Traces</h1>\n<p class=\"sub\" id=\"summary\">");
    if (l.n == 0) {
        evbuffer_add_printf(o, "No traces stored under <span class=\"mono\">");
    } else {
        evbuffer_add_printf(o, "%zu trace%s stored under <span class=\"mono\">", l.n,
                            l.n == 1 ? "" : "s");
    }
    h_text(o, prefix, 0);
    evbuffer_add_printf(o, "</span> at <span class=\"mono\">");
    h_text(o, addr, 0);
    if (l.n)
        evbuffer_add_printf(o, "</span>; %s%zu, newest first.</p>\n",
                            shown < l.n ? "the latest " : "all ", shown);
    else
        evbuffer_add_printf(o, "</span>.</p>\n");

    evbuffer_add_printf(o, "<h2>Recent traces</h2>\n<table id=\"traces\"><thead><tr>"
                           "<th>Start (UTC)</th><th>Method</th><th>Path</th><th>Status</th>"
                           "<th class=\"num\">Duration (ms)</th><th class=\"num\">Spans</th>"
                           "</tr></thead><tbody>\n");
    size_t begun = evbuffer_get_length(o), i;
    for (i = 0; i < shown && !table_full(o, begun, i, TM_SLOTS); i++) {
        const sy_trace_rec *r = &l.recs[i];
        char when[80];
        sy_text_time(r->start, when, sizeof(when));
        evbuffer_add_printf(o, "<tr data-start=\"%llu\"><td class=\"start\">"
                               "<a href=\"/traces?show=%llu\">%s</a></td><td class=\"method\">",
                            (unsigned long long)r->start, (unsigned long long)r->start, when);
        h_text(o, r->method, 64);
        evbuffer_add_printf(o, "</td><td class=\"path\">");
        h_text(o, r->path, HTML_MAX_CHARS);
        evbuffer_add_printf(o, "</td><td class=\"%s\">", status_class(r->status));
        h_text(o, r->status, 64);
        evbuffer_add_printf(o, "</td><td class=\"num duration\">");
        h_ms(o, r->duration);
        evbuffer_add_printf(o, "</td><td class=\"num spans\">%.0f", r->span_count);
        if (r->spans_dropped > 0)
            evbuffer_add_printf(o, " <span class=\"note\">(+%.0f dropped)</span>", r->spans_dropped);
        evbuffer_add_printf(o, "</td></tr>\n");
    }
    evbuffer_add_printf(o, "</tbody></table>\n");
    if (i < shown) {
        cut_note(o, "traces", i, shown, "traces", "the newest", TM_SLOTS);
        *cut = 1;
    } else if (shown < l.n) {
        evbuffer_add_printf(o, "<p class=\"note\"><a href=\"/traces?limit=0\">show all %zu</a></p>\n",
                            l.n);
    }

    *cut |= html_totals(o, "by-path", "path", "By path", "Path", "paths", t.paths, t.np, l.n);
    *cut |= html_totals(o, "by-name", "name", "By span name", "Span name", "span names", t.names,
                        t.nn, 0);

    if (l.ignored) {
        evbuffer_add_printf(o, "<p class=\"note\" id=\"ignored\">%zu record%s ignored (last: ",
                            l.ignored, l.ignored == 1 ? "" : "s");
        h_text(o, l.last_reason, HTML_MAX_CHARS);
        evbuffer_add_printf(o, ")</p>\n");
    }
    if (l.skipped)
        evbuffer_add_printf(o, "<p class=\"note\" id=\"skipped\">%zu record%s skipped: over %u "
                               "bytes, or past %zu MiB in all</p>\n", l.skipped,
                            l.skipped == 1 ? "" : "s", HTTP_MAX_VALUE, HTTP_MAX_TOTAL >> 20);
    evbuffer_add_printf(o, "<p class=\"note\">As in appstats, a slot holds the last trace that "
                           "started in its 100 ms and is reused every 100 s.</p>\n");
    page_end(o);
    totals_free(&t);
    listing_free(&l);
    return 200;
}

static int http_show(struct evbuffer *o, struct evkeyvalq *headers, const char *addr,
                     const char *prefix, uint64_t start, int cancel_fd, int *cut)
{
    sy_trace_rec r;
    char why[800];
    int rc = full_fetch(addr, prefix, start, HTTP_TIMEOUT_MS, HTTP_TOTAL_MS, HTTP_MAX_VALUE,
                        cancel_fd, &r, why, sizeof(why));
    if (rc == FULL_ERROR)
        return page_message(o, headers, 503, "Traces unavailable",
                            "The trace cannot be read from memcached:", why, 1);
    if (rc == FULL_GONE) {
        char text[200];
        snprintf(text, sizeof(text), "Trace %llu is no longer stored: its slot is reused every "
                 "100 seconds, or its record expired.", (unsigned long long)start);
        return page_message(o, headers, 404, "Trace no longer stored", text, why, 1);
    }

    /* The scale: the trace's duration, or further if a span ends later
     * (no root, or children outliving it). */
    double scale = r.duration > 0 ? r.duration : 0;
    for (size_t i = 0; i < r.nspans; i++) {
        double end = r.spans[i].off + r.spans[i].dur;
        if (end > scale && end < 9e15)
            scale = end;
    }
    char when[80];
    sy_text_time(r.start, when, sizeof(when));
    page_begin(o, headers, "Trace", r.path);
    evbuffer_add_printf(o, "<p><a href=\"/traces\">&larr; all traces</a></p>\n<h1 id=\"request\">"
                           "<span class=\"method\">");
    h_text(o, r.method, 64);
    evbuffer_add_printf(o, "</span> <span class=\"path mono\">");
    h_text(o, r.path, HTML_MAX_CHARS);
    evbuffer_add_printf(o, "</span> <span class=\"%s\">", status_class(r.status));
    h_text(o, r.status, 64);
    evbuffer_add_printf(o, "</span></h1>\n<dl class=\"meta\"><dt>trace</dt><dd class=\"mono\" "
                           "id=\"trace-id\">");
    h_text(o, r.trace, HTML_MAX_CHARS);
    evbuffer_add_printf(o, "</dd><dt>start</dt><dd>%s (%llu)</dd><dt>duration</dt>"
                           "<dd id=\"duration\">", when, (unsigned long long)r.start);
    h_ms(o, r.duration);
    evbuffer_add_printf(o, " ms%s</dd><dt>closed</dt><dd>",
                        r.root ? "" : " (no root span: the extent of the spans)");
    h_text(o, r.closed, 64);
    evbuffer_add_printf(o, "</dd><dt>spans</dt><dd>%zu stored, %.0f dropped</dd></dl>\n",
                        r.nspans, r.spans_dropped);

    evbuffer_add_printf(o, "<h2>Timeline</h2>\n<div class=\"timeline\" id=\"timeline\" "
                           "data-scale=\"");
    h_ms(o, scale);
    evbuffer_add_printf(o, "\">\n<div class=\"axis\"><div class=\"label\"></div><div class=\"track\">");
    for (int k = 0; k <= 4; k++) {
        char pos[32];
        fmt_pct(k * 25.0, pos, sizeof(pos));
        evbuffer_add_printf(o, "<span class=\"tick\" style=\"left:%s%%;transform:translateX(%s)\">",
                            pos, k == 0 ? "0" : k == 4 ? "-100%" : "-50%");
        h_ms(o, scale * k / 4);
        evbuffer_add_printf(o, " ms</span>");
    }
    evbuffer_add_printf(o, "</div></div>\n");
    size_t begun = evbuffer_get_length(o), i;
    for (i = 0; i < r.nspans && !table_full(o, begun, i, HTTP_TIMELINE_SPANS); i++) {
        const sy_trace_span *s = &r.spans[i];
        char left[32], width[32];
        double lp = pct_of(s->off, scale), wp = pct_of(s->dur, scale);
        if (lp + wp > 100) /* never past the right edge */
            wp = 100 - lp;
        fmt_pct(lp, left, sizeof(left));
        fmt_pct(wp, width, sizeof(width));
        evbuffer_add_printf(o, "<div class=\"span%s\"><div class=\"label\"><span class=\"name\">",
                            s->root ? " root" : "");
        h_text(o, s->name, 200);
        evbuffer_add_printf(o, "</span><span class=\"when\">+");
        h_ms(o, s->off);
        evbuffer_add_printf(o, " ms, ");
        h_ms(o, s->dur);
        evbuffer_add_printf(o, " ms</span>");
        if (s->root || s->ntags) {
            evbuffer_add_printf(o, "<span class=\"tags\">%s", s->root ? "root" : "");
            for (size_t k = 0; k < s->ntags && k < HTTP_SPAN_TAGS; k++) {
                if (k || s->root)
                    evbuffer_add_printf(o, ", ");
                h_text(o, s->tags[k], 200);
            }
            if (s->ntags > HTTP_SPAN_TAGS) {
                evbuffer_add_printf(o, ", <span class=\"note\">%zu more tags</span>",
                                    s->ntags - HTTP_SPAN_TAGS);
                *cut = 1;
            }
            evbuffer_add_printf(o, "</span>");
        }
        evbuffer_add_printf(o, "</div><div class=\"track\"><div class=\"bar\" style=\"left:%s%%;"
                               "width:%s%%\" data-off=\"", left, width);
        h_ms(o, s->off);
        evbuffer_add_printf(o, "\" data-dur=\"");
        h_ms(o, s->dur);
        evbuffer_add_printf(o, "\" title=\"");
        h_text(o, s->name, 200);
        evbuffer_add_printf(o, ": +");
        h_ms(o, s->off);
        evbuffer_add_printf(o, " ms, ");
        h_ms(o, s->dur);
        evbuffer_add_printf(o, " ms\"></div></div></div>\n");
    }
    evbuffer_add_printf(o, "</div>\n");
    if (i < r.nspans) {
        cut_note(o, "timeline", i, r.nspans, "spans", "in the stored order", HTTP_TIMELINE_SPANS);
        *cut = 1;
    }
    if (r.spans_dropped > 0)
        evbuffer_add_printf(o, "<p class=\"note\">%.0f span%s not stored (over a bound).</p>\n",
                            r.spans_dropped, r.spans_dropped == 1 ? "" : "s");
    page_end(o);
    sy_trace_rec_free(&r);
    return 200;
}

static int whole(const char *s, unsigned long long max, unsigned long long *out);
static const char *prefix_problem(const char *prefix);

/* The first value of `key` in a query string, decoded (malloc'd; NULL when
 * absent or out of memory).  Lenient as browsers and scripts are: empty
 * pairs ("a=b&", "&&") are skipped and a pair without '=' has an empty
 * value; libevent's own parser refuses both. */
static char *query_value(const char *query, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t nlen = eq ? (size_t)(eq - p) : n;
        if (n && nlen == klen && memcmp(p, key, klen) == 0) {
            size_t vlen = eq ? n - nlen - 1 : 0;
            char *raw = strndup(eq ? eq + 1 : "", vlen);
            size_t dlen = 0;
            char *v = raw ? evhttp_uridecode(raw, 1, &dlen) : NULL;
            free(raw);
            for (size_t i = 0; v && i < dlen; i++)
                if (v[i] == '\0')
                    v[i] = '?'; /* %00 must not shorten what is checked */
            return v;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

int sy_traces_http(const char *memcached, const char *prefix, const char *uri, int cancel_fd,
                   struct evbuffer *out, struct evkeyvalq *headers, int *cut)
{
    int cut_here = 0;
    if (!cut)
        cut = &cut_here;
    *cut = 0;
    if (!prefix)
        prefix = DEFAULT_PREFIX;
    if (!memcached || !*memcached)
        return page_message(out, headers, 404, "Traces are not configured",
                            "This switchyard does not know where the traces are. Point it at the "
                            "memcached that a <code>memcache_traces</code> sink writes to, in the "
                            "config: <code>traces = { memcached = \"HOST:PORT\", prefix = "
                            "\"switchyard:traces\" }</code> (prefix: the sink's, if it sets one), "
                            "then restart.", NULL, 0);
    const char *bad = prefix_problem(prefix);
    if (bad)
        return page_message(out, headers, 500, "Traces are misconfigured",
                            "The config's <code>traces.prefix</code> cannot be used:", bad, 0);

    struct evhttp_uri *u = evhttp_uri_parse(uri ? uri : "/traces");
    if (!u)
        return page_message(out, headers, 400, "Bad request", "The address cannot be read.",
                            NULL, 1);
    const char *query = evhttp_uri_get_query(u);
    char *show = query_value(query, "show"), *lim = query_value(query, "limit");
    unsigned long long start = 0, limit = HTTP_DEFAULT_LIMIT;
    int rc;
    if (show && whole(show, 9007199254740992ULL, &start) < 0)
        rc = page_message(out, headers, 400, "Bad request",
                          "<code>show</code> wants a trace's start time in ms since the epoch, "
                          "as listed; not", show, 1);
    else if (lim && whole(lim, 1000000, &limit) < 0)
        rc = page_message(out, headers, 400, "Bad request",
                          "<code>limit</code> wants a whole number (0 for all); not", lim, 1);
    else if (show)
        rc = http_show(out, headers, memcached, prefix, start, cancel_fd, cut);
    else
        rc = http_list(out, headers, memcached, prefix, (size_t)limit, cancel_fd, cut);
    free(show);
    free(lim);
    evhttp_uri_free(u);
    return rc;
}

/* ------------------------------------------------------------------ */
/* command line                                                         */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: switchyard traces [--memcached HOST:PORT] [--prefix P] [--limit N]\n"
            "       switchyard traces [--memcached HOST:PORT] [--prefix P] show START_MS\n"
            "\n"
            "Reads the request traces that the memcache_traces sink stores in memcached.\n"
            "Without a command, lists the stored traces newest first (at most N, default\n"
            "%d; 0 for all), then totals per path and per span name over all of them.\n"
            "`show START_MS` prints every span of the trace that started at START_MS.\n"
            "\n"
            "  --memcached HOST:PORT  memcached's address (default %s)\n"
            "  --prefix P             the sink's key prefix (default \"%s\")\n"
            "  --limit N              traces to list\n"
            "\n"
            "Exit status: 0 done, 1 the trace is no longer stored, 2 an error.\n",
            DEFAULT_LIMIT, DEFAULT_ADDR, DEFAULT_PREFIX);
}

/* "--name VALUE" or "--name=VALUE": the value, advancing *i; NULL when
 * argv[*i] is not this option. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

/* What is wrong with a key prefix (it goes into memcached commands), or
 * NULL. */
static const char *prefix_problem(const char *prefix)
{
    if (tm_prefix_ok(prefix))
        return NULL;
    size_t plen = strlen(prefix);
    if (plen == 0 || plen > TM_PREFIX_MAX || strpbrk(prefix, " \t\r\n"))
        return "must be 1 to 200 bytes without spaces";
    return "has a control character";
}

static int whole(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 19)
        return -1;
    unsigned long long v = strtoull(s, NULL, 10);
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int sy_traces_main(int argc, char **argv)
{
    const char *addr = DEFAULT_ADDR, *prefix = DEFAULT_PREFIX, *show = NULL, *v;
    unsigned long long limit = DEFAULT_LIMIT, start = 0;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((v = opt_value(argc, argv, &i, "--memcached", &missing))) {
            addr = v;
        } else if ((v = opt_value(argc, argv, &i, "--prefix", &missing))) {
            prefix = v;
        } else if ((v = opt_value(argc, argv, &i, "--limit", &missing))) {
            if (whole(v, 1000000, &limit) < 0) {
                fprintf(stderr, "switchyard traces: --limit wants a whole number, not '%s'\n", v);
                return 2;
            }
        } else if (!missing && !strcmp(a, "show") && !show) {
            if (i + 1 >= argc) {
                fprintf(stderr, "switchyard traces: show wants START_MS\n");
                usage(stderr);
                return 2;
            }
            show = argv[++i];
            if (whole(show, 9007199254740992ULL, &start) < 0) {
                fprintf(stderr, "switchyard traces: START_MS is a start time in ms since the "
                        "epoch, as listed; not '%s'\n", show);
                return 2;
            }
        } else {
            fprintf(stderr, "switchyard traces: %s '%s'\n",
                    missing ? "no value for" : "unknown argument", a);
            usage(stderr);
            return 2;
        }
    }
    const char *bad = prefix_problem(prefix);
    if (bad) {
        fprintf(stderr, "switchyard traces: --prefix %s\n", bad);
        return 2;
    }
    if (show)
        return do_show(addr, prefix, start);
    return do_list(addr, prefix, (long)limit);
}
