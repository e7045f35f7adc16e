/*
 * influxdb.c - InfluxDB line protocol, POSTed to /write over HTTP
 * (InfluxDB 1.x, 2.x's v1 API, VictoriaMetrics, Telegraf's http_listener)
 * or sent in datagrams to InfluxDB 1.x's UDP listener.
 *
 * Data model.  A flushed value's name is split into a measurement, a field
 * and tags:
 *   - the tags are the ;k=v pairs after the name (DogStatsD tags, or
 *     Graphite tags written in the key);
 *   - with layout "statistic" (the default), a timer statistic or a set's
 *     count is a field of the metric's measurement: the last dot-separated
 *     part of the name is the field, the rest the measurement, so
 *     stats.timers.api.latency.mean_90;env=prod becomes
 *       stats.timers.api.latency,env=prod mean_90=12.5 1700000000
 *     and every statistic of one timer in one flush is one line;
 *   - counters, gauges and switchyard's own values are one field, `value`,
 *     of a measurement named by the whole name (counters' rate and count
 *     are separate names in every statsd namespace, legacy or not);
 *   - with layout "value" every flushed value is the field `value` of a
 *     measurement named by the whole name, nothing split.
 * All values are floats.  A raw sample of a pass-through route is one
 * point of the measurement named by the routed name, at the time the sink
 * received it, with a `metric_type` tag (counter, gauge, timing, set) and
 * the fields value (a set: member, a string), rate (when sampled) and
 * delta=true for a signed gauge.  With precision u or ns each sample gets
 * a time of its own, so samples of one series never overwrite each other.
 *
 * What the line protocol cannot carry is adjusted or refused, never sent
 * to fail a whole batch: a tag without a value ("root") gets the value
 * "true"; a tag with an empty key or value, a second tag with the same
 * key, and the tag key "time" (InfluxDB refuses it) are left out and the
 * value counted as adjusted; a name with a newline or carriage return, a
 * backslash that would change meaning (before a backslash or a character
 * that needs escaping, or at the end of a part: InfluxDB 1.x and 2.x read
 * those differently), a measurement that is empty or starts with '#' (a
 * comment line), and NaN or infinite values are dropped and counted.  All
 * of these are logged at most every 10 s with their counts.
 *
 * Lines wait in a bounded queue (lib/lineq).  HTTP: lib/httpq POSTs them in
 * batches, one request at a time, retrying 429, 5xx and lost connections
 * with backoff and dropping what a 4xx refuses.  UDP: lines are packed
 * into datagrams of at most maxDatagramBytes.  A flush larger than the
 * queue waits while the server takes it (lib/pace.h); a server that is
 * down or stuck gets what the queue holds, and the rest is dropped and
 * counted.
 *
 * take_back (a sink with `spool = { dir = ... }`): when shutdownTimeout
 * runs out, the queued lines of flushed values go back to the host's
 * spool from the keep log (lib/keeplog), and those of raw samples from a
 * copy of each sample kept beside its line (lib/samplelog, with the
 * client's DogStatsD time, at most maxKeptBytes, default 64 MiB; a sample
 * that finds it full is sent as usual, not kept, counted and logged, and
 * its line is lost at shutdown).  Replayed after a restart, a sample with
 * a client time is stored at that time; one without gets the time of its
 * replay, as at its first arrival.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/http.h>

#include "switchyard_sink.h"
#include "lib/net.h"
#include "lib/settings.h"
#include "lib/httpq.h"
#include "lib/keeplog.h"
#include "lib/lineq.h"
#include "lib/pace.h"
#include "lib/samplelog.h"

#define LOG_EVERY_MS 10000
#define MAX_TAGS 64          /* per point; more are left out (adjusted) */
#define MAX_FIELDS 256       /* per line; more start a new line */

static const char *const influx_settings[] = {
    "url", "precision", "layout", "maxQueueBytes", "batchLines", "batchBytes",
    "retryMinMs", "retryMaxMs", "timeoutMs", "maxDatagramBytes", "maxKeptBytes", NULL
};

enum layout { LAYOUT_STATISTIC, LAYOUT_VALUE };

typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct influx {
    const sy_host_api *api;
    sy_host *host;
    int udp;
    int layout;
    int64_t ts_mult;             /* seconds -> the precision's unit */
    int64_t ms_div, ms_mult;     /* milliseconds -> the precision's unit */
    char precision[4];
    lineq *q;
    httpq *http;
    pace pace;

    /* UDP */
    int fd;
    sy_watch *watch;
    int watching;
    size_t dgram_max;
    uint64_t udp_sent;
    char dest[300];

    /* the line being assembled */
    char *line;
    size_t line_len, line_cap;
    uint32_t line_values;
    char *key;                   /* its measurement and tags, raw */
    size_t key_len, key_cap;
    int64_t key_ts;
    int64_t last_sample_ts;      /* u and ns: the last raw sample's time */

    /* take_back: the flushed values behind the queued lines (keeplog),
     * numbered by line; the values of the line being assembled, as
     * indexes into the batch being written (NULL for raw samples) */
    keeplog *kept;
    uint64_t lines_in;           /* lines committed since init */
    const sy_metric_batch *cur_batch;
    uint32_t cur_idx[MAX_FIELDS];
    uint32_t cur_n;
    /* take_back_samples: a copy of each raw sample behind a queued line,
     * numbered by its line's number + 1 (a sink with a spool only) */
    samplelog *ksamples;
    size_t max_kept;
    uint64_t unkept, unkept_unlogged;
    int reclaimed;               /* the queue was walked for take_back */

    /* counts not yet logged */
    uint64_t full_unlogged, bad_unlogged, nan_unlogged, adjusted_unlogged, send_err_unlogged;
    int last_send_errno;
    uint64_t last_log;
} influx;

/* --- settings --- */

/* "udp://HOST:PORT" */
static int udp_url_parse(const char *url, http_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct evhttp_uri *u = evhttp_uri_parse(url);
    if (!u) {
        snprintf(err, errlen, "setting 'url': '%s' is not a URL", url);
        return -1;
    }
    int rc = -1;
    const char *host = evhttp_uri_get_host(u), *path = evhttp_uri_get_path(u);
    int port = evhttp_uri_get_port(u);
    if (!host || !*host || strlen(host) >= sizeof(out->host) || port < 1 || port > 65535 ||
        (path && *path && strcmp(path, "/") != 0) || evhttp_uri_get_query(u)) {
        snprintf(err, errlen, "setting 'url': '%s' must be udp://HOST:PORT (the UDP "
                 "listener's database and precision are set in its own config)", url);
        goto out;
    }
    net_unbracket(out->host, sizeof(out->host), host);
    out->port = port;
    rc = 0;
out:
    evhttp_uri_free(u);
    return rc;
}

static int has_param(const char *target, const char *name)
{
    const char *q = strchr(target, '?');
    size_t n = strlen(name);
    while (q) {
        q++;
        if (strncmp(q, name, n) == 0 && q[n] == '=')
            return 1;
        q = strchr(q, '&');
    }
    return 0;
}

static void influx_free(influx *s)
{
    keeplog_free(s->kept);
    samplelog_free(s->ksamples);
    httpq_free(s->http);
    if (s->watch)
        s->api->watch_free(s->watch);
    if (s->fd >= 0)
        close(s->fd);
    lineq_free(s->q);
    free(s->line);
    free(s->key);
    free(s);
}

static int udp_open(influx *s, const http_url *u, char *err, size_t errlen)
{
    net_addr addr;
    if (net_resolve(u->host, u->port, SOCK_DGRAM, &addr, 1, NULL, 0, err, errlen) < 0)
        return -1;
    if (net_connect(&addr, SOCK_DGRAM, &s->fd) < 0) {
        snprintf(err, errlen, "cannot open a UDP socket to %s: %s", s->dest, strerror(errno));
        return -1;
    }
    return 0;
}

static void udp_on_writable(int fd, int events, void *arg);

/* init, and with state NULL the check: every setting is judged, nothing
 * is resolved, opened or scheduled. */
static int influx_setup(const sy_host_api *api, sy_host *host, void **state, char *err,
                        size_t errlen)
{
    const char *url, *precision, *layout;
    int64_t maxq, blines, bbytes, rmin, rmax, tmo, dgram, maxkept;
    http_url u;
    int udp = 0, lay;

    if (SY_SINK_CHECK_API(api, format_number, err, errlen) != 0)
        return -1;
    if (api->setting_string(host, "url", NULL, &url) < 0 || !url || !*url) {
        snprintf(err, errlen, "setting 'url' is required: \"http://HOST:PORT/write?db=NAME\" "
                 "or \"udp://HOST:PORT\"");
        return -1;
    }
    if (api->setting_string(host, "precision", "s", &precision) < 0) {
        snprintf(err, errlen, "setting 'precision' must be a string");
        return -1;
    }
    int64_t mult;
    if (strcmp(precision, "s") == 0)
        mult = 1;
    else if (strcmp(precision, "ms") == 0)
        mult = 1000;
    else if (strcmp(precision, "u") == 0)
        mult = 1000000;
    else if (strcmp(precision, "ns") == 0)
        mult = 1000000000;
    else {
        snprintf(err, errlen, "setting 'precision' is '%s'; it must be \"s\", \"ms\", \"u\" "
                 "or \"ns\"", precision);
        return -1;
    }
    if (api->setting_string(host, "layout", "statistic", &layout) < 0) {
        snprintf(err, errlen, "setting 'layout' must be a string");
        return -1;
    }
    if (strcmp(layout, "statistic") == 0) {
        lay = LAYOUT_STATISTIC;
    } else if (strcmp(layout, "value") == 0) {
        lay = LAYOUT_VALUE;
    } else {
        snprintf(err, errlen, "setting 'layout' is '%s'; it must be \"statistic\" or \"value\"",
                 layout);
        return -1;
    }
    if (int_setting(api, host, "maxQueueBytes", 64 << 20, 4096, INT64_MAX, &maxq, err, errlen) ||
        int_setting(api, host, "batchLines", 5000, 1, 1000000, &blines, err, errlen) ||
        int_setting(api, host, "batchBytes", 1 << 20, 1024, 1 << 30, &bbytes, err, errlen) ||
        int_setting(api, host, "retryMinMs", 100, 1, 3600000, &rmin, err, errlen) ||
        int_setting(api, host, "retryMaxMs", 30000, 1, 3600000, &rmax, err, errlen) ||
        int_setting(api, host, "timeoutMs", 10000, 1, 3600000, &tmo, err, errlen) ||
        int_setting(api, host, "maxDatagramBytes", 1432, 512, 65507, &dgram, err, errlen) ||
        int_setting(api, host, "maxKeptBytes", 64 << 20, 0, (int64_t)1 << 40, &maxkept, err,
                    errlen))
        return -1;
    if (rmax < rmin) {
        snprintf(err, errlen, "retryMaxMs (%lld) is below retryMinMs (%lld)", (long long)rmax,
                 (long long)rmin);
        return -1;
    }

    char target[sizeof(u.target)];
    if (strncmp(url, "udp://", 6) == 0) {
        udp = 1;
        if (udp_url_parse(url, &u, err, errlen) != 0)
            return -1;
    } else {
        char uerr[400];
        if (http_url_parse(url, &u, uerr, sizeof(uerr)) != 0) {
            snprintf(err, errlen, "setting 'url': %s", uerr);
            return -1;
        }
        if (has_param(u.target, "precision")) {
            snprintf(err, errlen, "setting 'url': give the precision with the 'precision' "
                     "setting, not in the URL (the sink writes its timestamps in it)");
            return -1;
        }
        int w = snprintf(target, sizeof(target), "%s%cprecision=%s", u.target,
                         strchr(u.target, '?') ? '&' : '?', precision);
        if (w < 0 || (size_t)w >= sizeof(u.target)) {
            snprintf(err, errlen, "setting 'url' is too long");
            return -1;
        }
        memcpy(u.target, target, (size_t)w + 1);
        if (strncmp(u.target, "/write?", 7) == 0 && !has_param(u.target, "db")) {
            snprintf(err, errlen, "setting 'url': InfluxDB's /write needs the database, "
                     "as /write?db=NAME");
            return -1;
        }
    }
    if (!state)
        return 0;

    influx *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->api = api;
    s->host = host;
    s->fd = -1;
    s->udp = udp;
    s->layout = lay;
    s->ts_mult = mult;
    s->ms_mult = mult >= 1000 ? mult / 1000 : 1;
    s->ms_div = mult >= 1000 ? 1 : 1000;
    snprintf(s->precision, sizeof(s->precision), "%s", precision);
    s->dgram_max = (size_t)dgram;
    snprintf(s->dest, sizeof(s->dest), strchr(u.host, ':') ? "[%s]:%d" : "%s:%d", u.host,
             u.port);
    s->q = lineq_new((size_t)maxq);
    s->kept = keeplog_new();
    /* the copies serve only take_back_samples, which a host of ABI 1.5 or
     * later calls for a sink with a disk spool: otherwise none is kept */
    const char *spool_dir = NULL;
    if (api->setting_string(host, "spool.dir", NULL, &spool_dir) != 0 || !spool_dir ||
        api->abi_minor < 5)
        maxkept = 0;
    s->max_kept = (size_t)maxkept;
    if (s->max_kept && !(s->ksamples = samplelog_new(s->max_kept))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!s->q || !s->kept) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (udp) {
        if (udp_open(s, &u, err, errlen) != 0)
            goto fail;
        s->watch = api->watch_new(host, s->fd, udp_on_writable, s);
        if (!s->watch) {
            snprintf(err, errlen, "cannot watch the UDP socket");
            goto fail;
        }
        api->stat_set(host, SY_STAT_CONNECTED, 1);
    } else {
        httpq_config cfg = {
            .url = &u,
            .content_type = "text/plain; charset=utf-8",
            .batch_lines = (size_t)blines,
            .batch_bytes = (size_t)bbytes,
            .retry_min_ms = (uint64_t)rmin,
            .retry_max_ms = (uint64_t)rmax,
            .timeout_ms = (uint64_t)tmo,
        };
        s->http = httpq_new(api, host, &cfg, s->q, err, errlen);
        if (!s->http)
            goto fail;
    }
    api->log(host, SY_LOG_INFO, "line protocol to %s%s%s, precision %s, layout %s",
             udp ? "udp://" : "http://", s->dest, udp ? "" : u.target, precision, layout);
    *state = s;
    return 0;
fail:
    influx_free(s);
    return -1;
}

static int influx_init(const sy_host_api *api, sy_host *host, void **state, char *err,
                       size_t errlen)
{
    return influx_setup(api, host, state, err, errlen);
}

static int influx_check(const sy_host_api *api, sy_host *host, char *err, size_t errlen)
{
    return influx_setup(api, host, NULL, err, errlen);
}

/* --- UDP --- */

static void udp_update_watch(influx *s, int want)
{
    if (want != s->watching) {
        s->api->watch_set(s->watch, want ? SY_WATCH_WRITE : 0);
        s->watching = want;
    }
}

/* Packs whole lines into datagrams and sends them until the queue is empty
 * or the socket is full.  A datagram the network refuses (nobody listens:
 * ECONNREFUSED from an earlier datagram's ICMP) is counted as an error and
 * sent once more; one that cannot be sent at all (too big) is dropped. */
static void udp_send(influx *s)
{
    int refused = 0;
    while (lineq_lines(s->q)) {
        lineq_run run = lineq_peek(s->q, SIZE_MAX, s->dgram_max);
        ssize_t w = send(s->fd, run.data, run.bytes, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w >= 0) {
            lineq_pop(s->q, &run);
            s->udp_sent += run.values;
            s->api->stat_add(s->host, SY_STAT_SENT, (int64_t)run.values);
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
            udp_update_watch(s, 1);
            goto out;
        }
        s->api->stat_add(s->host, SY_STAT_ERRORS, 1);
        s->send_err_unlogged++;
        s->last_send_errno = errno;
        if (errno == ECONNREFUSED && !refused++)
            continue;
        lineq_pop(s->q, &run);
        s->api->stat_add(s->host, SY_STAT_DROPPED, (int64_t)run.values);
    }
    udp_update_watch(s, 0);
out:
    s->api->stat_set(s->host, SY_STAT_QUEUED, (int64_t)lineq_values(s->q));
    s->api->stat_set(s->host, SY_STAT_QUEUED_BYTES, (int64_t)lineq_bytes(s->q));
}

static void udp_on_writable(int fd, int events, void *arg)
{
    udp_send(arg);
}

/* --- logging --- */

static void influx_log(influx *s, int force)
{
    uint64_t now = s->api->monotonic_ms(s->host);
    if (!(s->full_unlogged | s->bad_unlogged | s->nan_unlogged | s->adjusted_unlogged |
          s->send_err_unlogged | s->unkept_unlogged))
        return;
    if (!force && s->last_log && now - s->last_log < LOG_EVERY_MS)
        return;
    if (s->full_unlogged)
        s->api->log(s->host, SY_LOG_WARN, "queue for %s full (%zu bytes, %zu lines waiting): "
                    "%llu values dropped", s->dest, lineq_bytes(s->q), lineq_lines(s->q),
                    (unsigned long long)s->full_unlogged);
    if (s->bad_unlogged)
        s->api->log(s->host, SY_LOG_WARN, "%llu values dropped: the name cannot be written in "
                    "line protocol (a newline, a backslash before a backslash, a separator or "
                    "the end of a part, or an empty measurement)",
                    (unsigned long long)s->bad_unlogged);
    if (s->nan_unlogged)
        s->api->log(s->host, SY_LOG_WARN, "%llu values dropped: NaN or infinite",
                    (unsigned long long)s->nan_unlogged);
    if (s->adjusted_unlogged)
        s->api->log(s->host, SY_LOG_INFO, "%llu values written without some of their tags "
                    "(an empty key or value, a repeated key, the key \"time\", or more than %d)",
                    (unsigned long long)s->adjusted_unlogged, MAX_TAGS);
    if (s->send_err_unlogged)
        s->api->log(s->host, SY_LOG_WARN, "%llu datagrams to %s failed: %s",
                    (unsigned long long)s->send_err_unlogged, s->dest,
                    strerror(s->last_send_errno));
    if (s->unkept_unlogged)
        s->api->log(s->host, SY_LOG_WARN, "keep log full (maxKeptBytes %zu, %zu samples kept): "
                    "%llu raw samples not kept (%llu so far), lost if unsent at shutdown",
                    s->max_kept, samplelog_count(s->ksamples),
                    (unsigned long long)s->unkept_unlogged, (unsigned long long)s->unkept);
    s->full_unlogged = s->bad_unlogged = s->nan_unlogged = 0;
    s->adjusted_unlogged = s->send_err_unlogged = s->unkept_unlogged = 0;
    s->last_log = now;
}

/* --- line protocol --- */

/* Room for n more bytes in the line being assembled. */
static int line_room(influx *s, size_t n)
{
    if (s->line_cap - s->line_len >= n)
        return 0;
    size_t cap = s->line_cap ? s->line_cap : 4096;
    while (cap - s->line_len < n)
        cap *= 2;
    char *p = realloc(s->line, cap);
    if (!p)
        return -1;
    s->line = p;
    s->line_cap = cap;
    return 0;
}

/* Whether a part (measurement, tag key or value, field key) can be
 * written so that every reader of the line protocol reads it back the
 * same: no newline, carriage return or NUL, and a backslash only before an
 * ordinary character.  `eq` says whether '=' is escaped in this part. */
static int part_ok(const char *p, size_t n, int eq)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\n' || c == '\r' || c == '\0')
            return 0;
        if (c == '\\') {
            if (i + 1 == n)
                return 0;
            char d = p[i + 1];
            if (d == '\\' || d == ',' || d == ' ' || d == '"' || (eq && d == '='))
                return 0;
        }
    }
    return 1;
}

/* Appends a part with ',' and ' ' (and '=' when eq) escaped; the caller
 * made room for 2n bytes. */
static void put_escaped(influx *s, const char *p, size_t n, int eq)
{
    char *o = s->line + s->line_len;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == ',' || c == ' ' || (eq && c == '='))
            *o++ = '\\';
        *o++ = c;
    }
    s->line_len = (size_t)(o - s->line);
}

static void put_raw(influx *s, const char *p, size_t n)
{
    memcpy(s->line + s->line_len, p, n);
    s->line_len += n;
}

/* Splits ";k=v;k2;..." into tags; returns how many, and counts those left
 * out in *adjusted.  -1: a tag that cannot be written. */
static int split_tags(const char *p, size_t n, span *keys, span *vals, int *adjusted)
{
    static const char true_text[] = "true";
    int nt = 0;
    size_t i = 0;
    *adjusted = 0;
    while (i < n) {
        if (p[i] == ';') {
            i++;
            continue;
        }
        size_t start = i;
        while (i < n && p[i] != ';')
            i++;
        const char *t = p + start, *eq = memchr(t, '=', i - start);
        span k = { t, eq ? (size_t)(eq - t) : i - start };
        span v = eq ? (span){ eq + 1, (size_t)(p + i - eq - 1) } : (span){ true_text, 4 };
        if (k.n == 0 || v.n == 0 || (k.n == 4 && memcmp(k.p, "time", 4) == 0) ||
            nt == MAX_TAGS) {
            *adjusted = 1;
            continue;
        }
        if (!part_ok(k.p, k.n, 1) || !part_ok(v.p, v.n, 1))
            return -1;
        int dup = 0;
        for (int j = 0; j < nt && !dup; j++)
            dup = keys[j].n == k.n && memcmp(keys[j].p, k.p, k.n) == 0;
        if (dup) {
            *adjusted = 1;
            continue;
        }
        keys[nt] = k;
        vals[nt] = v;
        nt++;
    }
    return nt;
}

/* Queues the line being assembled, if any. */
static void line_end(influx *s)
{
    if (!s->line_values)
        return;
    char ts[32];
    int tl = snprintf(ts, sizeof(ts), " %lld\n", (long long)s->key_ts);
    size_t len = s->line_len + (size_t)tl;
    char *p = lineq_reserve(s->q, len);
    if (!p) {
        s->full_unlogged += s->line_values;
        s->api->stat_add(s->host, SY_STAT_DROPPED, s->line_values);
    } else {
        memcpy(p, s->line, s->line_len);
        memcpy(p + s->line_len, ts, (size_t)tl);
        lineq_commit(s->q, len, s->line_values);
        /* out of memory: the values are still sent, only not handed back */
        for (uint32_t i = 0; s->cur_batch && i < s->cur_n; i++)
            (void)keeplog_add(s->kept, s->cur_batch->timestamp,
                              &s->cur_batch->metrics[s->cur_idx[i]], s->lines_in,
                              s->lines_in + 1);
        s->lines_in++;
    }
    s->cur_n = 0;
    s->line_len = 0;
    s->line_values = 0;
    s->key_len = 0;
}

/* Starts a line for measurement `m` with the tags in `tags` (";k=v..."),
 * unless the line being assembled has the same ones and time (then the
 * field is added to it).  0, or -1 when the point cannot be written. */
static int line_begin(influx *s, span m, span tags, int64_t ts)
{
    size_t kl = m.n + tags.n;
    if (s->line_values && s->line_values < MAX_FIELDS && ts == s->key_ts && kl == s->key_len &&
        memcmp(s->key, m.p, m.n) == 0 && memcmp(s->key + m.n, tags.p, tags.n) == 0) {
        return line_room(s, 1) == 0 ? (s->line[s->line_len++] = ',', 0) : -1;
    }
    line_end(s);
    if (m.n == 0 || m.p[0] == '#' || !part_ok(m.p, m.n, 0))
        return -1;
    span keys[MAX_TAGS], vals[MAX_TAGS];
    int adjusted;
    int nt = split_tags(tags.p, tags.n, keys, vals, &adjusted);
    if (nt < 0)
        return -1;
    if (line_room(s, 2 * kl + (size_t)nt * 2 + 2) != 0)
        return -1;
    if (kl > s->key_cap) {
        char *k = realloc(s->key, kl);
        if (!k)
            return -1;
        s->key = k;
        s->key_cap = kl;
    }
    put_escaped(s, m.p, m.n, 0);
    for (int i = 0; i < nt; i++) {
        s->line[s->line_len++] = ',';
        put_escaped(s, keys[i].p, keys[i].n, 1);
        s->line[s->line_len++] = '=';
        put_escaped(s, vals[i].p, vals[i].n, 1);
    }
    s->line[s->line_len++] = ' ';
    memcpy(s->key, m.p, m.n);
    memcpy(s->key + m.n, tags.p, tags.n);
    s->key_len = kl;
    s->key_ts = ts;
    if (adjusted) {
        s->api->stat_add(s->host, SY_STAT_ADJUSTED, 1);
        s->adjusted_unlogged++;
    }
    return 0;
}

/* Appends field=number to the line begun; f is a field key that passed
 * part_ok. */
static int put_field(influx *s, span f, double v)
{
    char num[32];
    size_t nl = s->api->format_number(v, num);
    if (line_room(s, 2 * f.n + 1 + nl) != 0)
        return -1;
    put_escaped(s, f.p, f.n, 1);
    s->line[s->line_len++] = '=';
    put_raw(s, num, nl);
    s->line_values++;
    return 0;
}

/* Appends field="text" (quotes and backslashes escaped). */
static int put_string_field(influx *s, span f, const char *t, size_t n)
{
    if (line_room(s, 2 * f.n + 3 + 2 * n) != 0)
        return -1;
    put_escaped(s, f.p, f.n, 1);
    s->line[s->line_len++] = '=';
    s->line[s->line_len++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '"' || t[i] == '\\')
            s->line[s->line_len++] = '\\';
        s->line[s->line_len++] = t[i];
    }
    s->line[s->line_len++] = '"';
    return 0;
}

/* Splits a flushed name into measurement, field and tags (see the top). */
static void split_name(const influx *s, const char *name, size_t len, int kind, span *m,
                       span *field, span *tags)
{
    static const span value = { "value", 5 };
    const char *semi = memchr(name, ';', len);
    size_t base = semi ? (size_t)(semi - name) : len;
    *tags = (span){ name + base, len - base };
    *m = (span){ name, base };
    *field = value;
    if (s->layout == LAYOUT_STATISTIC && (kind == SY_KIND_TIMER || kind == SY_KIND_SET)) {
        const char *dot = NULL;
        for (size_t i = base; i > 0; i--)
            if (name[i - 1] == '.') {
                dot = name + i - 1;
                break;
            }
        if (dot && dot > name && (size_t)(dot - name) + 1 < base) {
            *m = (span){ name, (size_t)(dot - name) };
            *field = (span){ dot + 1, base - (size_t)(dot - name) - 1 };
        }
    }
}

/* The batch's values, in the units of the queue's bound: bytes, at most
 * (a name escaped doubles at worst). */
static size_t batch_need(const sy_metric_batch *b)
{
    size_t need = 0;
    for (size_t i = 0; i < b->count; i++)
        need += 2 * (size_t)b->metrics[i].name_len + 60;
    return need;
}

static int must_wait(influx *s, size_t need)
{
    uint64_t now = s->api->monotonic_ms(s->host);
    int connected = s->udp ? 1 : httpq_connected(s->http);
    uint64_t sent = s->udp ? s->udp_sent : httpq_sent(s->http);
    return pace_wait(&s->pace, now, connected, sent, lineq_bytes(s->q), lineq_max_bytes(s->q),
                     need);
}

static void influx_kick(influx *s)
{
    if (s->udp)
        udp_send(s);
    else
        httpq_kick(s->http);
}

static sy_status influx_write(void *state, const sy_metric_batch *b)
{
    influx *s = state;
    if (must_wait(s, batch_need(b)))
        return SY_RETRY;
    int64_t ts = b->timestamp * s->ts_mult;
    uint64_t bad = 0, nan = 0;
    keeplog_release(s->kept, s->lines_in - lineq_lines(s->q));
    if (s->ksamples)
        samplelog_release(s->ksamples, s->lines_in - lineq_lines(s->q));
    s->cur_batch = b;
    s->cur_n = 0;
    for (size_t i = 0; i < b->count; i++) {
        const sy_metric *m = &b->metrics[i];
        if (!isfinite(m->value)) {
            nan++;
            continue;
        }
        span ms, field, tags;
        split_name(s, m->name, m->name_len, m->kind, &ms, &field, &tags);
        if (!part_ok(field.p, field.n, 1) || line_begin(s, ms, tags, ts) != 0 ||
            put_field(s, field, m->value) != 0) {
            /* a line begun for this value alone is abandoned; a field
             * cannot fail once its line holds others (the key was
             * checked), short of memory */
            if (s->line_values == 0)
                s->line_len = s->key_len = 0;
            else if (s->line[s->line_len - 1] == ',')
                s->line_len--;
            bad++;
        } else {
            s->cur_idx[s->cur_n++] = (uint32_t)i;
        }
    }
    line_end(s);
    s->cur_batch = NULL;
    if (bad + nan) {
        s->api->stat_add(s->host, SY_STAT_DROPPED, (int64_t)(bad + nan));
        s->bad_unlogged += bad;
        s->nan_unlogged += nan;
    }
    influx_kick(s);
    influx_log(s, 0);
    return SY_OK;
}

static sy_status influx_write_samples(void *state, const sy_sample_batch *b)
{
    influx *s = state;
    size_t need = 0;
    for (size_t i = 0; i < b->count; i++)
        need += 2 * ((size_t)b->samples[i].name_len + b->samples[i].text_len) + 100;
    if (must_wait(s, need))
        return SY_RETRY;
    uint64_t now = s->api->now_ms(s->host);
    int64_t now_ts = (int64_t)(now / (uint64_t)s->ms_div) * s->ms_mult;
    uint64_t bad = 0, nan = 0;
    const int64_t *cts = sy_host_has_timestamps(s->api) ? b->timestamps_ms : NULL;
    if (s->ksamples)
        samplelog_release(s->ksamples, s->lines_in - lineq_lines(s->q));
    static const span f_value = { "value", 5 }, f_member = { "member", 6 },
                      f_rate = { "rate", 4 }, f_delta = { "delta", 5 };
    for (size_t i = 0; i < b->count; i++) {
        const sy_sample *x = &b->samples[i];
        const char *type;
        switch (x->type) {
        case SY_SAMPLE_COUNTER: type = ";metric_type=counter"; break;
        case SY_SAMPLE_GAUGE: type = ";metric_type=gauge"; break;
        case SY_SAMPLE_TIMER: type = ";metric_type=timing"; break;
        default: type = ";metric_type=set"; break;
        }
        if (x->type != SY_SAMPLE_SET && (!isfinite(x->value) || !isfinite(x->rate))) {
            nan++;
            continue;
        }
        const char *semi = memchr(x->name, ';', x->name_len);
        size_t base = semi ? (size_t)(semi - x->name) : x->name_len;
        /* the tags, then metric_type (split_tags keeps the first of a key) */
        char tagbuf[16384];
        size_t tl = x->name_len - base, yl = strlen(type);
        if (tl + yl > sizeof(tagbuf)) {
            bad++;
            continue;
        }
        memcpy(tagbuf, x->name + base, tl);
        memcpy(tagbuf + tl, type, yl);
        /* With u and ns every sample gets a time of its own (one unit
         * after the last when the clock has not moved), so that samples
         * of one series never overwrite each other. */
        int64_t ts = now_ts;
        if (cts && cts[i] > 0) {
            /* the client's DogStatsD time: the point is stored at it, and
             * a second sample of the series at that time replaces it */
            ts = cts[i] / s->ms_div * s->ms_mult;
        } else if (s->ts_mult >= 1000000) {
            if (ts <= s->last_sample_ts)
                ts = s->last_sample_ts + 1;
            s->last_sample_ts = ts;
        }
        line_end(s); /* every sample is a line of its own */
        int rc = line_begin(s, (span){ x->name, base }, (span){ tagbuf, tl + yl }, ts);
        if (rc == 0) {
            if (x->type == SY_SAMPLE_SET)
                rc = put_string_field(s, f_member, x->text, x->text_len);
            else
                rc = put_field(s, f_value, x->value);
            if (rc == 0 && x->rate != 1.0 && x->type != SY_SAMPLE_GAUGE) {
                s->line[s->line_len++] = ',';
                rc = put_field(s, f_rate, x->rate);
                s->line_values--; /* one sample, one value */
            }
            if (rc == 0 && x->is_delta && line_room(s, 12) == 0) {
                s->line[s->line_len++] = ',';
                put_raw(s, f_delta.p, f_delta.n);
                put_raw(s, "=true", 5);
            }
            if (s->line_values == 0)
                s->line_values = 1; /* a set's member */
        }
        if (rc != 0) {
            s->line_len = s->line_values = 0;
            s->key_len = 0;
            bad++;
            continue;
        }
        uint64_t before = s->lines_in;
        line_end(s);
        /* queued: a copy for take_back_samples, numbered by its line + 1 */
        if (s->ksamples && s->lines_in != before &&
            samplelog_add(s->ksamples, s->lines_in, x, cts ? cts[i] : 0) != 0) {
            s->unkept++;
            s->unkept_unlogged++;
        }
    }
    if (bad + nan) {
        s->api->stat_add(s->host, SY_STAT_DROPPED, (int64_t)(bad + nan));
        s->bad_unlogged += bad;
        s->nan_unlogged += nan;
    }
    influx_kick(s);
    influx_log(s, 0);
    return SY_OK;
}

static sy_status influx_flush(void *state, int final)
{
    influx *s = state;
    influx_kick(s);
    influx_log(s, final);
    return SY_OK;
}

static size_t influx_pending(void *state)
{
    influx *s = state;
    return (size_t)lineq_values(s->q);
}

/*
 * take_back: the queued lines of flushed values are dropped from the queue
 * and their values handed back from the keep log exactly as they came
 * (the lines cannot be read back: a timer's statistics share one line,
 * names are escaped, tags reordered); the lines of raw samples likewise
 * from their copies (take_back_samples).  The first of the two calls
 * removes both kinds from the queue (influx_reclaim); a line kept nowhere
 * stays queued (counted as dropped at close).  httpq_free never calls
 * back, so the run of a request still in flight may be cut here.
 */
typedef struct take_ctx {
    influx *s;
    keeplog_cursor cur;
    samplelog_cursor scur;
    uint64_t first;     /* the number of the queue's first line */
    size_t left;        /* lines kept nowhere */
} take_ctx;

static int line_kept(void *ctx, size_t index)
{
    take_ctx *t = ctx;
    uint64_t n = t->first + index;
    if (keeplog_covers(t->s->kept, &t->cur, n, n + 1))
        return 1;
    if (t->s->ksamples && samplelog_holds(t->s->ksamples, &t->scur, n + 1))
        return 1;
    t->left++;
    return 0;
}

static void influx_reclaim(influx *s)
{
    if (s->reclaimed)
        return;
    s->reclaimed = 1;
    take_ctx t = { .s = s, .first = s->lines_in - lineq_lines(s->q) };
    keeplog_release(s->kept, t.first);
    if (s->ksamples)
        samplelog_release(s->ksamples, t.first);
    lineq_remove_if(s->q, line_kept, &t);
    if (t.left && s->ksamples)
        s->api->log(s->host, SY_LOG_WARN, "%zu queued lines cannot be handed back to the spool "
                    "(%llu raw samples were not kept: maxKeptBytes %zu full); they are lost",
                    t.left, (unsigned long long)s->unkept, s->max_kept);
}

static size_t influx_take_back(void *state, void (*keep)(void *ctx, const sy_metric_batch *b),
                               void *ctx)
{
    influx *s = state;
    influx_reclaim(s);
    return keeplog_take(s->kept, keep, ctx);
}

static size_t influx_take_back_samples(void *state,
                                       void (*keep)(void *ctx, const sy_sample_batch *b),
                                       void *ctx)
{
    influx *s = state;
    influx_reclaim(s);
    return s->ksamples ? samplelog_take(s->ksamples, keep, ctx) : 0;
}

static void influx_close(void *state)
{
    influx *s = state;
    uint64_t left = lineq_values(s->q);
    if (left) {
        s->api->stat_add(s->host, SY_STAT_DROPPED, (int64_t)left);
        s->api->log(s->host, SY_LOG_WARN, "closing with %llu values not delivered to %s",
                    (unsigned long long)left, s->dest);
    }
    influx_log(s, 1);
    influx_free(s);
}

SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "influxdb",
    .version = "1.2",
    .description = "InfluxDB line protocol over HTTP (/write, batched, retried) or UDP, "
                   "with DogStatsD tags as Influx tags",
    .settings = influx_settings,
    .init = influx_init,
    .check = influx_check,
    .write = influx_write,
    .write_samples = influx_write_samples,
    .flush = influx_flush,
    .pending = influx_pending,
    .close = influx_close,
    .take_back = influx_take_back,
    .take_back_samples = influx_take_back_samples,
    .features = SY_SINK_FEATURE_TIMESTAMPS,
};
