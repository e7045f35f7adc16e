/*
 * graphite.c - the carbon plaintext sink: one "NAME VALUE TS\n" line per
 * metric over TCP.
 *
 * Lines go into a bounded queue (lib/netq) that a reconnecting client
 * writes out.  When the queue is full the rest of the batch is dropped and
 * counted: the queue is the bound, so this sink never answers SY_RETRY.
 * Carbon being down at start, or going away and coming back, only fills
 * the queue.
 *
 * Settings:
 *   host              carbon's address or name   (default "127.0.0.1")
 *   port              (default 2003)
 *   maxQueueBytes     queue bound in bytes       (default 64 MiB)
 *   reconnectMinMs    first reconnect delay      (default 100)
 *   reconnectMaxMs    reconnect delay cap        (default 30000)
 *   connectTimeoutMs  one connect attempt        (default 5000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard_sink.h"
#include "lib/netq.h"

#define LOG_EVERY_MS 10000

typedef struct graphite {
    const sy_host_api *api;
    sy_host *host;
    netq *q;
    uint64_t last_drop_log;   /* monotonic ms, 0 = never */
    uint64_t drops_unlogged;
    uint64_t bad_unlogged;
} graphite;

static const char *const graphite_settings[] = {
    "host", "port", "maxQueueBytes", "reconnectMinMs", "reconnectMaxMs", "connectTimeoutMs",
    NULL
};

/* Reads a whole-number setting and checks its range; -1 with err set. */
static int int_setting(const sy_host_api *api, sy_host *host, const char *key, int64_t dflt,
                       int64_t lo, int64_t hi, int64_t *out, char *err, size_t errlen)
{
    if (api->setting_int(host, key, dflt, out) < 0) {
        snprintf(err, errlen, "setting '%s' must be a whole number", key);
        return -1;
    }
    if (*out < lo || *out > hi) {
        snprintf(err, errlen, "setting '%s' is %lld, it must be between %lld and %lld", key,
                 (long long)*out, (long long)lo, (long long)hi);
        return -1;
    }
    return 0;
}

static int graphite_init(const sy_host_api *api, sy_host *host, void **state,
                         char *err, size_t errlen)
{
    const char *addr;
    int64_t port, maxq, rmin, rmax, cto;

    if (api->abi_major != SY_SINK_ABI_MAJOR ||
        api->struct_size < offsetof(sy_host_api, format_number) + sizeof(void *)) {
        snprintf(err, errlen, "the host's API is too old for this plugin");
        return -1;
    }
    if (api->setting_string(host, "host", "127.0.0.1", &addr) < 0) {
        snprintf(err, errlen, "setting 'host' must be a string");
        return -1;
    }
    if (!*addr) {
        snprintf(err, errlen, "setting 'host' is empty");
        return -1;
    }
    if (int_setting(api, host, "port", 2003, 1, 65535, &port, err, errlen) ||
        int_setting(api, host, "maxQueueBytes", 64 << 20, 1024, INT64_MAX, &maxq, err, errlen) ||
        int_setting(api, host, "reconnectMinMs", 100, 1, 3600000, &rmin, err, errlen) ||
        int_setting(api, host, "reconnectMaxMs", 30000, 1, 3600000, &rmax, err, errlen) ||
        int_setting(api, host, "connectTimeoutMs", 5000, 1, 3600000, &cto, err, errlen))
        return -1;
    if (rmax < rmin) {
        snprintf(err, errlen, "reconnectMaxMs (%lld) is below reconnectMinMs (%lld)",
                 (long long)rmax, (long long)rmin);
        return -1;
    }

    graphite *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->api = api;
    g->host = host;
    netq_config cfg = {
        .host = addr,
        .port = (int)port,
        .max_bytes = (size_t)maxq,
        .reconnect_min_ms = (uint64_t)rmin,
        .reconnect_max_ms = (uint64_t)rmax,
        .connect_timeout_ms = (uint64_t)cto,
    };
    g->q = netq_new(api, host, &cfg, err, errlen);
    if (!g->q) {
        free(g);
        return -1;
    }
    *state = g;
    return 0;
}

/* Drops are logged at most every LOG_EVERY_MS, with the count since the
 * last message: a dead carbon must not flood the log. */
static void graphite_log_drops(graphite *g)
{
    uint64_t now = g->api->monotonic_ms(g->host);
    if (g->last_drop_log && now - g->last_drop_log < LOG_EVERY_MS)
        return;
    if (g->drops_unlogged)
        g->api->log(g->host, SY_LOG_WARN,
                    "queue full (%zu bytes, %zu lines waiting): %llu metrics dropped",
                    netq_bytes(g->q), netq_lines(g->q), (unsigned long long)g->drops_unlogged);
    if (g->bad_unlogged)
        g->api->log(g->host, SY_LOG_WARN,
                    "%llu metrics dropped: empty name, or a space or control character in it",
                    (unsigned long long)g->bad_unlogged);
    g->drops_unlogged = g->bad_unlogged = 0;
    g->last_drop_log = now;
}

/* A carbon line cannot carry whitespace in a name: it would shift the
 * fields, or with '\n' inject a line. */
static int name_ok(const char *name, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
            return 0;
    return 1;
}

static sy_status graphite_write(void *state, const sy_metric_batch *b)
{
    graphite *g = state;
    char ts[24], num[32];
    int tslen = snprintf(ts, sizeof(ts), "%lld", (long long)b->timestamp);
    size_t i, bad = 0;

    for (i = 0; i < b->count; i++) {
        const sy_metric *m = &b->metrics[i];
        if (!name_ok(m->name, m->name_len)) {
            bad++;
            continue;
        }
        size_t nlen = g->api->format_number(m->value, num);
        size_t len = (size_t)m->name_len + 1 + nlen + 1 + (size_t)tslen + 1;
        char *p = netq_reserve(g->q, len);
        if (!p)
            break;
        memcpy(p, m->name, m->name_len);
        p += m->name_len;
        *p++ = ' ';
        memcpy(p, num, nlen);
        p += nlen;
        *p++ = ' ';
        memcpy(p, ts, (size_t)tslen);
        p += tslen;
        *p = '\n';
        netq_commit(g->q, len);
    }
    size_t dropped = b->count - i + bad;
    if (dropped) {
        g->api->stat_add(g->host, SY_STAT_DROPPED, (int64_t)dropped);
        g->drops_unlogged += b->count - i;
        g->bad_unlogged += bad;
        graphite_log_drops(g);
    }
    netq_kick(g->q);
    return SY_OK;
}

static sy_status graphite_write_samples(void *state, const sy_sample_batch *b)
{
    return SY_SKIP; /* carbon stores aggregates, not raw samples */
}

static sy_status graphite_flush(void *state, int final)
{
    graphite *g = state;
    netq_kick(g->q);
    if (g->drops_unlogged || g->bad_unlogged)
        graphite_log_drops(g);
    return SY_OK;
}

static size_t graphite_pending(void *state)
{
    return netq_lines(((graphite *)state)->q);
}

static void graphite_close(void *state)
{
    graphite *g = state;
    size_t left = netq_lines(g->q);
    if (left)
        g->api->stat_add(g->host, SY_STAT_DROPPED, (int64_t)left);
    netq_free(g->q);
    free(g);
}

SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "graphite",
    .version = "1.0",
    .description = "carbon plaintext protocol over TCP, with a bounded queue and reconnects",
    .settings = graphite_settings,
    .init = graphite_init,
    .write = graphite_write,
    .write_samples = graphite_write_samples,
    .flush = graphite_flush,
    .pending = graphite_pending,
    .close = graphite_close,
};
