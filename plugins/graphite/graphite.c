/*
 * graphite.c - the carbon plaintext sink: one "NAME VALUE TS\n" line per
 * metric over TCP, to one carbon or spread over several with carbon's own
 * consistent hash.
 *
 * Lines go into a bounded queue (lib/netq) that a reconnecting client
 * writes out; each destination has its own queue and connection.  When a
 * queue is full the metrics for it are dropped and counted: the queues are
 * the bound.  (Only a flush larger than the queue of a carbon that keeps up
 * is paced with SY_RETRY rather than cut: see must_wait.)  A carbon being down at
 * start, or going away and coming back, only fills its own queue; the
 * other destinations are unaffected.
 *
 * Settings:
 *   host              carbon's address or name   (default "127.0.0.1")
 *   port              (default 2003)
 *   destinations      several carbons instead of host/port: a list of
 *                     "HOST:PORT" or "HOST:PORT:INSTANCE" (IPv6 as
 *                     "[ADDR]:PORT[:INSTANCE]"), written exactly like
 *                     carbon-relay's DESTINATIONS; giving it together with
 *                     host or port is an error
 *   hashing           "carbon_ch" (default) or "fnv1a_ch": which of carbon's
 *                     consistent hash rings places the metrics
 *   replicas          ring entries per destination (default 100, what carbon
 *                     uses; any other value places metrics differently)
 *   maxQueueBytes     queue bound in bytes, per destination (default 64 MiB)
 *   reconnectMinMs    first reconnect delay      (default 100)
 *   reconnectMaxMs    reconnect delay cap        (default 30000)
 *   connectTimeoutMs  one connect attempt        (default 5000)
 *
 * With several destinations each metric goes to the node that carbon-relay
 * (RELAY_METHOD = consistent-hashing, REPLICATION_FACTOR = 1) with the same
 * DESTINATIONS, in the same order, would send it to, so switchyard can take
 * a relay's place in front of an existing cluster without moving data:
 *   - the ring is keyed on (HOST, INSTANCE) as written, never on the port
 *     and never on a resolved address: "localhost:2004" and
 *     "127.0.0.1:2004" are different nodes, and two destinations that
 *     differ only in the port need different instances (carbon-relay
 *     refuses them too);
 *   - the order of the list matters (carbon moves a ring entry whose
 *     position is taken by an earlier one);
 *   - the whole name is hashed, ;tags included as sent (carbon-relay's
 *     default TAG_RELAY_NORMALIZED = False);
 *   - fnv1a_ch places a node by its INSTANCE alone, so give every
 *     destination a distinct instance with it.
 * The sink's statistics cover all destinations: sent, dropped, errors and
 * reconnects are sums, queued and queued bytes are totals, and connected
 * is 1 only while every destination is connected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard_sink.h"
#include "lib/settings.h"
#include "lib/carbonname.h"
#include "lib/chring.h"
#include "lib/hostproxy.h"
#include "lib/netq.h"
#include "lib/pace.h"

#define LOG_EVERY_MS 10000
#define MAX_DESTINATIONS 1024

struct graphite;

/* One carbon.  Its netq talks to the host through the sink's hostproxy
 * (lib/hostproxy), with `part` as its host, so that the gauges netq
 * publishes (queued lines and bytes, connected) are combined across
 * destinations instead of each queue overwriting the others'. */
typedef struct dest {
    struct graphite *g;
    hostproxy_part part;
    netq *q;
    char *server;             /* as written: part of the ring key */
    char *instance;           /* NULL: none (Python's None) */
    int port;
    char label[600];          /* the destination as written, for logs */
    int full;                 /* refused a line during the current batch */
    pace pace;                /* whether a batch waits for this queue */
    uint64_t drops_unlogged;
} dest;

typedef struct graphite {
    const sy_host_api *api;
    sy_host *host;
    hostproxy hp;             /* connected: 1 only while every carbon is */
    dest *d;
    int nd;
    chring *ring;             /* NULL with one destination */
    uint64_t last_drop_log;   /* monotonic ms, 0 = never */
    uint64_t bad_unlogged;
} graphite;

static const char *const graphite_settings[] = {
    "host", "port", "destinations", "hashing", "replicas",
    "maxQueueBytes", "reconnectMinMs", "reconnectMaxMs", "connectTimeoutMs",
    NULL
};

/* --- settings --- */

static void graphite_free(graphite *g)
{
    for (int i = 0; i < g->nd; i++) {
        netq_free(g->d[i].q);
        g->d[i].q = NULL;
    }
    for (int i = 0; i < g->nd; i++) {
        free(g->d[i].server);
        free(g->d[i].instance);
    }
    free(g->d);
    chring_free(g->ring);
    free(g);
}

static int printable_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

static int same_node(const dest *a, const dest *b)
{
    if (strcmp(a->server, b->server) != 0)
        return 0;
    if (!a->instance || !b->instance)
        return !a->instance && !b->instance;
    return strcmp(a->instance, b->instance) == 0;
}

/* g->d from the destinations' texts: HOST:PORT[:INSTANCE], distinct nodes. */
static int fill_destinations(graphite *g, char **texts, int n, char *err, size_t errlen)
{
    g->d = calloc((size_t)n, sizeof(*g->d));
    if (!g->d) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const char *text = texts[i];
        char perr[400];
        chring_dest cd;
        if (chring_parse_dest(text, &cd, perr, sizeof(perr)) != 0) {
            snprintf(err, errlen, "destinations[%d]: %s", i + 1, perr);
            return -1;
        }
        if (!printable_ascii(cd.server) || (cd.has_instance && !printable_ascii(cd.instance))) {
            snprintf(err, errlen, "destinations[%d] '%s': the host and instance must be "
                     "printable ASCII without spaces", i + 1, text);
            return -1;
        }
        dest *d = &g->d[g->nd++];
        d->g = g;
        d->port = cd.port;
        d->server = strdup(cd.server);
        d->instance = cd.has_instance ? strdup(cd.instance) : NULL;
        if (!d->server || (cd.has_instance && !d->instance)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        int w = snprintf(d->label, sizeof(d->label), strchr(cd.server, ':') ? "[%s]:%d" : "%s:%d",
                         cd.server, cd.port);
        if (cd.has_instance && w > 0 && (size_t)w < sizeof(d->label))
            snprintf(d->label + w, sizeof(d->label) - (size_t)w, ":%s", cd.instance);
        for (int j = 0; j < i; j++)
            if (same_node(&g->d[j], d)) {
                snprintf(err, errlen, "destinations[%d] '%s' and [%d] '%s' are the same node: "
                         "carbon keys its ring on (host, instance), not on the port, so "
                         "give them different instances", j + 1, g->d[j].label, i + 1, d->label);
                return -1;
            }
    }
    return 0;
}

/* Fills g->d from `destinations` (a list, or one string) or host/port. */
static int read_destinations(graphite *g, char *err, size_t errlen)
{
    char **texts;
    int n = destinations_read(g->api, g->host, 2003, MAX_DESTINATIONS,
                              "\"HOST:PORT\" or \"HOST:PORT:INSTANCE\"", &texts, err, errlen);
    if (n < 0)
        return -1;
    int rc = fill_destinations(g, texts, n, err, errlen);
    destinations_free(texts, n);
    return rc;
}

static int build_ring(graphite *g, char *err, size_t errlen)
{
    const sy_host_api *api = g->api;
    const char *hashing;
    int64_t replicas;
    chring_hash type;

    if (api->setting_string(g->host, "hashing", "carbon_ch", &hashing) < 0) {
        snprintf(err, errlen, "setting 'hashing' must be a string");
        return -1;
    }
    if (strcmp(hashing, "carbon_ch") == 0) {
        type = CHRING_CARBON_CH;
    } else if (strcmp(hashing, "fnv1a_ch") == 0) {
        type = CHRING_FNV1A_CH;
    } else {
        snprintf(err, errlen, "setting 'hashing' is '%s'; it must be \"carbon_ch\" or "
                 "\"fnv1a_ch\"", hashing);
        return -1;
    }
    if (int_setting(api, g->host, "replicas", 100, 1, 10000, &replicas, err, errlen))
        return -1;
    if (g->nd < 2)
        return 0;

    g->ring = chring_new(type, (int)replicas);
    if (!g->ring) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < g->nd; i++)
        if (chring_add(g->ring, g->d[i].server, g->d[i].instance, i) != 0) {
            snprintf(err, errlen, "cannot add %s to the hash ring (out of memory)", g->d[i].label);
            return -1;
        }

    if (type == CHRING_FNV1A_CH)
        for (int i = 0; i < g->nd; i++)
            for (int j = 0; j < i; j++) {
                const char *a = g->d[i].instance, *b = g->d[j].instance;
                if ((!a && !b) || (a && b && strcmp(a, b) == 0)) {
                    api->log(g->host, SY_LOG_WARN, "fnv1a_ch places a node by its instance "
                             "alone, and %s and %s have the same one: give every destination "
                             "a distinct instance", g->d[j].label, g->d[i].label);
                    i = j = g->nd; /* once */
                }
            }
    for (int i = 0; i < g->nd; i++) {
        char key[600];
        chring_node_key(g->d[i].server, g->d[i].instance, key, sizeof(key));
        api->log(g->host, SY_LOG_INFO, "destination %d of %d: %s, %s ring node %s", i + 1, g->nd,
                 g->d[i].label, hashing, key);
    }
    return 0;
}

/* init, and with state NULL the check: every setting is read and judged
 * the same way, and the check stops before the first queue is made (a
 * queue resolves its address and schedules a connect). */
static int graphite_setup(const sy_host_api *api, sy_host *host, void **state,
                          char *err, size_t errlen)
{
    int64_t maxq;
    reconnect_settings rs;

    if (SY_SINK_CHECK_API(api, format_number, err, errlen) != 0)
        return -1;
    if (int_setting(api, host, "maxQueueBytes", 64 << 20, 1024, INT64_MAX, &maxq, err, errlen) ||
        reconnect_settings_read(api, host, &rs, err, errlen))
        return -1;

    graphite *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->api = api;
    g->host = host;
    if (read_destinations(g, err, errlen) != 0 || build_ring(g, err, errlen) != 0) {
        graphite_free(g);
        return -1;
    }
    if (!state) {
        graphite_free(g);
        return 0;
    }
    hostproxy_init(&g->hp, api, host, 1);
    for (int i = 0; i < g->nd; i++)
        hostproxy_part_init(&g->hp, &g->d[i].part);
    for (int i = 0; i < g->nd; i++) {
        dest *d = &g->d[i];
        netq_config cfg = {
            .host = d->server,
            .port = d->port,
            .max_bytes = (size_t)maxq,
            .reconnect_min_ms = rs.min_ms,
            .reconnect_max_ms = rs.max_ms,
            .connect_timeout_ms = rs.connect_timeout_ms,
        };
        char qerr[400];
        d->q = netq_new(&g->hp.api, hostproxy_host(&d->part), &cfg, qerr, sizeof(qerr));
        if (!d->q) {
            if (g->nd > 1)
                snprintf(err, errlen, "%s: %s", d->label, qerr);
            else
                snprintf(err, errlen, "%s", qerr);
            graphite_free(g);
            return -1;
        }
    }
    *state = g;
    return 0;
}

static int graphite_init(const sy_host_api *api, sy_host *host, void **state,
                         char *err, size_t errlen)
{
    return graphite_setup(api, host, state, err, errlen);
}

static int graphite_check(const sy_host_api *api, sy_host *host, char *err, size_t errlen)
{
    return graphite_setup(api, host, NULL, err, errlen);
}

/* --- writing --- */

/* Drops are logged at most every LOG_EVERY_MS, with the count since the
 * last message: a dead carbon must not flood the log. */
static void graphite_log_drops(graphite *g)
{
    uint64_t now = g->api->monotonic_ms(g->host);
    if (g->last_drop_log && now - g->last_drop_log < LOG_EVERY_MS)
        return;
    for (int i = 0; i < g->nd; i++) {
        dest *d = &g->d[i];
        if (!d->drops_unlogged)
            continue;
        g->api->log(g->host, SY_LOG_WARN,
                    "queue for %s full (%zu bytes, %zu lines waiting): %llu metrics dropped",
                    d->label, netq_bytes(d->q), netq_lines(d->q),
                    (unsigned long long)d->drops_unlogged);
        d->drops_unlogged = 0;
    }
    if (g->bad_unlogged)
        g->api->log(g->host, SY_LOG_WARN,
                    "%llu metrics dropped: empty name, or a space or control character in it",
                    (unsigned long long)g->bad_unlogged);
    g->bad_unlogged = 0;
    g->last_drop_log = now;
}

static int drops_unlogged(const graphite *g)
{
    if (g->bad_unlogged)
        return 1;
    for (int i = 0; i < g->nd; i++)
        if (g->d[i].drops_unlogged)
            return 1;
    return 0;
}

/*
 * A flush can be larger than a queue (1M keys are 2M lines, ~100 MB) while
 * carbon takes it easily: such a flush is paced (lib/pace.h).  A batch
 * that does not fit the queue of a destination that is connected and
 * moving is answered SY_RETRY before any of it is queued; a carbon that is
 * down or stuck gets what its queue holds, and the rest is dropped.
 */
static int must_wait(graphite *g, const sy_metric_batch *b, int tslen)
{
    uint64_t now = g->api->monotonic_ms(g->host);
    /* At most: name, ' ', a number (24 characters at most), ' ', ts, '\n';
     * the whole batch is counted against each destination. */
    size_t need = 0;
    for (size_t i = 0; i < b->count; i++)
        need += (size_t)b->metrics[i].name_len + 26 + (size_t)tslen + 1;
    int wait = 0;
    for (int i = 0; i < g->nd; i++) {
        dest *d = &g->d[i];
        /* every destination is looked at, so each one's clock is kept */
        wait |= pace_wait(&d->pace, now, netq_connected(d->q), netq_sent(d->q),
                          netq_bytes(d->q), netq_max_bytes(d->q), need);
    }
    return wait;
}

static sy_status graphite_write(void *state, const sy_metric_batch *b)
{
    graphite *g = state;
    char ts[24], num[32];
    int tslen = snprintf(ts, sizeof(ts), "%lld", (long long)b->timestamp);
    size_t bad = 0, full = 0;

    if (must_wait(g, b, tslen))
        return SY_RETRY;

    for (size_t i = 0; i < b->count; i++) {
        const sy_metric *m = &b->metrics[i];
        if (!carbon_name_ok(m->name, m->name_len)) {
            bad++;
            continue;
        }
        dest *d = g->ring ? &g->d[chring_lookup(g->ring, m->name, m->name_len)] : &g->d[0];
        /* once a queue refuses a line the rest of the batch for it is
         * dropped too, so what it does carry has no holes */
        char *p = NULL;
        size_t nlen = 0, len = 0;
        if (!d->full) {
            nlen = g->api->format_number(m->value, num);
            len = (size_t)m->name_len + 1 + nlen + 1 + (size_t)tslen + 1;
            p = netq_reserve(d->q, len);
        }
        if (!p) {
            d->full = 1;
            d->drops_unlogged++;
            full++;
            continue;
        }
        memcpy(p, m->name, m->name_len);
        p += m->name_len;
        *p++ = ' ';
        memcpy(p, num, nlen);
        p += nlen;
        *p++ = ' ';
        memcpy(p, ts, (size_t)tslen);
        p += tslen;
        *p = '\n';
        netq_commit_lines(d->q, len, 1);
    }
    for (int i = 0; i < g->nd; i++) {
        g->d[i].full = 0;
        netq_kick(g->d[i].q);
    }
    if (full + bad) {
        g->api->stat_add(g->host, SY_STAT_DROPPED, (int64_t)(full + bad));
        g->bad_unlogged += bad;
        graphite_log_drops(g);
    }
    return SY_OK;
}

static sy_status graphite_write_samples(void *state, const sy_sample_batch *b)
{
    return SY_SKIP; /* carbon stores aggregates, not raw samples */
}

static sy_status graphite_flush(void *state, int final)
{
    graphite *g = state;
    for (int i = 0; i < g->nd; i++)
        netq_kick(g->d[i].q);
    if (drops_unlogged(g))
        graphite_log_drops(g);
    return SY_OK;
}

static size_t graphite_pending(void *state)
{
    graphite *g = state;
    size_t n = 0;
    for (int i = 0; i < g->nd; i++)
        n += netq_lines(g->d[i].q);
    return n;
}

/* take_back: the queued lines ("NAME VALUE TS") turned back into values,
 * in batches of one flush time. */
#define TB_VALUES 2048
#define TB_NAMES (256 * 1024)

typedef struct take_ctx {
    void (*keep)(void *ctx, const sy_metric_batch *b);
    void *ctx;
    sy_metric m[TB_VALUES];
    size_t n, used, total;
    int64_t ts;
    char names[TB_NAMES];
} take_ctx;

static void take_flush(take_ctx *t)
{
    if (t->n) {
        sy_metric_batch b = { .metrics = t->m, .count = t->n, .timestamp = t->ts };
        t->keep(t->ctx, &b);
        t->total += t->n;
    }
    t->n = t->used = 0;
}

static void take_line(void *ctx, const char *line, size_t len)
{
    take_ctx *t = ctx;
    const char *sp2 = memrchr(line, ' ', len);
    const char *sp1 = sp2 ? memrchr(line, ' ', (size_t)(sp2 - line)) : NULL;
    if (!sp1 || sp1 == line || (size_t)(sp1 - line) + 1 > TB_NAMES)
        return; /* not a line this sink wrote */
    char num[64], tsb[32];
    size_t nl = (size_t)(sp2 - sp1 - 1), tl = len - (size_t)(sp2 - line) - 1;
    if (nl >= sizeof num || tl >= sizeof tsb)
        return;
    memcpy(num, sp1 + 1, nl);
    num[nl] = '\0';
    memcpy(tsb, sp2 + 1, tl);
    tsb[tl] = '\0';
    int64_t ts = strtoll(tsb, NULL, 10);
    size_t name_len = (size_t)(sp1 - line);
    if (t->n == TB_VALUES || t->used + name_len + 1 > TB_NAMES || (t->n && ts != t->ts))
        take_flush(t);
    t->ts = ts;
    char *name = t->names + t->used;
    memcpy(name, line, name_len);
    name[name_len] = '\0';
    t->used += name_len + 1;
    /* written by format_number: digits, '.', 'e', signs, or NaN/Infinity,
     * which strtod reads in the C locale the daemon runs in */
    t->m[t->n++] = (sy_metric){ .name = name, .name_len = (uint32_t)name_len,
                                .kind = SY_KIND_INTERNAL, .value = strtod(num, NULL) };
}

static size_t graphite_take_back(void *state, void (*keep)(void *ctx, const sy_metric_batch *b),
                                 void *ctx)
{
    graphite *g = state;
    take_ctx *t = malloc(sizeof *t);
    if (!t)
        return 0;
    t->keep = keep;
    t->ctx = ctx;
    t->n = t->used = t->total = 0;
    t->ts = 0;
    for (int i = 0; i < g->nd; i++) {
        netq_take(g->d[i].q, take_line, t);
        take_flush(t);
    }
    size_t total = t->total;
    free(t);
    return total;
}

static void graphite_close(void *state)
{
    graphite *g = state;
    size_t left = graphite_pending(g);
    if (left)
        g->api->stat_add(g->host, SY_STAT_DROPPED, (int64_t)left);
    graphite_free(g);
}

SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "graphite",
    .version = "1.1",
    .description = "carbon plaintext protocol over TCP to one carbon or several (carbon's "
                   "consistent hashing), with bounded queues and reconnects",
    .settings = graphite_settings,
    .init = graphite_init,
    .check = graphite_check,
    .write = graphite_write,
    .write_samples = graphite_write_samples,
    .flush = graphite_flush,
    .pending = graphite_pending,
    .close = graphite_close,
    .take_back = graphite_take_back,
};
