/*
 * remote_write.c - Prometheus remote write 1.0: the series the prometheus
 * sink would show on its page, pushed to a receiver (Prometheus with
 * --web.enable-remote-write-receiver, VictoriaMetrics, Mimir, Thanos,
 * Cortex) as snappy-compressed protobuf over HTTP POST.
 *
 * Raw samples (routes with :passthrough, or passthrough = true) go into the
 * same cumulative state as the prometheus sink's (lib/promstore, one place
 * for names, labels and values).  At every flush the whole state is taken
 * as a snapshot stamped with the flush time, cut into requests of at most
 * maxSamplesPerSend samples (WriteRequest, compiled from
 * plugins/proto/remote.proto by protoc-c), each snappy-compressed into a
 * bounded queue (maxQueueBytes).  One request is in flight at a time, so
 * a receiver sees every series' samples in time order:
 *   - 2xx: sent;
 *   - 5xx, 429, or no answer (refused, reset, timeoutMs): the same request
 *     again after a backoff (retryMinMs doubling to retryMaxMs, with
 *     jitter), for as long as it takes; the queue bounds what waits;
 *   - any other status (400: a rejected sample, 404: a wrong url): never
 *     retried; counted as errors and its samples as dropped, logged with
 *     the receiver's message at most every 10 s.
 * When a snapshot does not fit the queue, lib/pace decides as for the
 * graphite sink: a receiver that is taking requests (one succeeded in the
 * last 2 s, or the queue was empty) makes the snapshot wait, which for
 * cumulative series means it is skipped, and the next flush's snapshot
 * carries the same totals (logged as skipped, not counted as
 * dropped); a receiver that is down or stuck gets what the queue holds and
 * the rest of the snapshot is dropped and counted.  Repeating a request is
 * harmless: receivers keep one value per series and timestamp.
 *
 * take_back_samples (ABI 1.5): the raw samples folded into requests the
 * receiver has not acknowledged are kept beside the queue
 * (lib/samplelog, at most maxKeptBytes): each is numbered with the
 * snapshot that first carries it, and forgotten when the last request of
 * a snapshot that was queued whole and carries it (or a later one) is
 * acknowledged or refused for good.  At shutdown, when shutdownTimeout
 * ran out, a sink with a disk spool hands them back, so after a restart
 * they are added to the fresh state instead of lost.
 *
 * The HTTP client is libevent's evhttp on the host's event base; the
 * receiver's name is resolved once, in init.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <snappy-c.h>

#include "remote.pb-c.h"
#include "switchyard_sink.h"
#include "lib/net.h"
#include "lib/pace.h"
#include "lib/promstore.h"
#include "lib/samplelog.h"

#define LOG_EVERY_MS 10000

typedef struct batch {
    struct batch *next;
    size_t len;
    size_t samples;
    uint64_t done_seq;  /* the last request of snapshot done_seq, queued
                           whole: its answer releases the kept samples */
    char body[];
} batch;

typedef struct rw {
    const sy_host_api *api;
    sy_host *host;
    promstore *store;
    char url[512];
    char addr[64];      /* resolved, numeric */
    char hosthdr[300];  /* Host: as written in the url */
    char path[512];
    int port;
    size_t max_per_send, max_queue;
    uint64_t retry_min, retry_max, timeout_ms;

    struct evhttp_connection *conn;
    sy_timer *retry_timer;
    int in_flight;
    int waiting;        /* a retry is scheduled */
    unsigned failures;
    uint64_t sent_requests; /* for pace: grows when a request succeeds */
    pace pace;
    int connected;      /* -1 until the first answer or failure: not
                           published till then (a sink host with a disk
                           spool sends nothing to a plugin that says it is
                           disconnected, and this one learns it by sending) */

    batch *head, *tail;
    size_t q_bytes, q_samples;

    /* raw samples behind unacknowledged requests, for take_back_samples */
    samplelog *kept;
    size_t max_kept;
    uint64_t snap_seq;       /* snapshots taken into the queue */
    uint64_t released_seq;   /* samples numbered up to here are forgotten */
    uint64_t unkept_seq;     /* the last snapshot number a sample was not kept for */
    uint64_t un_unkept;      /* not kept since the last log line */

    /* the snapshot being cut into requests */
    Prometheus__TimeSeries *ts;
    Prometheus__Sample *smp;
    Prometheus__Label *labels;
    size_t nts, nlabels, labels_cap;
    size_t *lab_start;
    char *names;
    size_t names_used, names_cap;
    uint64_t snap_ms;
    int snap_full;      /* the queue refused a request of this snapshot */
    size_t snap_dropped;

    uint64_t last_log;
    uint64_t un_dropped, un_deferred, un_rejected, un_retried;
    int last_status;
    char last_reply[200];
    uint64_t logged[PROMSTORE_DROP_COUNT];
    uint64_t logged_tag_errors;
    uint64_t logged_ts_late;
} rw;

static const char *const rw_settings[] = {
    "url", "maxSamplesPerSend", "maxQueueBytes", "retryMinMs", "retryMaxMs", "timeoutMs",
    "maxKeptBytes", PROMSTORE_SETTINGS, NULL
};

static void send_next(rw *r);

/* --- the queue --- */

static void publish(rw *r)
{
    r->api->stat_set(r->host, SY_STAT_QUEUED, (int64_t)r->q_samples);
    r->api->stat_set(r->host, SY_STAT_QUEUED_BYTES, (int64_t)r->q_bytes);
    if (r->connected >= 0)
        r->api->stat_set(r->host, SY_STAT_CONNECTED, r->connected);
}

static void pop(rw *r)
{
    batch *b = r->head;
    if (b->done_seq > r->released_seq) {
        r->released_seq = b->done_seq;
        samplelog_release(r->kept, b->done_seq);
    }
    r->head = b->next;
    if (!r->head)
        r->tail = NULL;
    r->q_bytes -= b->len;
    r->q_samples -= b->samples;
    free(b);
}

/* --- encoding a snapshot --- */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need)
        ncap *= 2;
    void *n = realloc(*p, ncap * elem);
    if (!n)
        return -1;
    *p = n;
    *cap = ncap;
    return 0;
}

/* Encodes the time series gathered so far into one request in the queue
 * (or counts them dropped), and starts over. */
static void cut(rw *r)
{
    if (!r->nts)
        return;
    size_t n = r->nts;
    Prometheus__TimeSeries **tsp = malloc(n * sizeof(*tsp));
    Prometheus__Sample **smpp = malloc(n * sizeof(*smpp));
    Prometheus__Label **labp = malloc((r->nlabels ? r->nlabels : 1) * sizeof(*labp));
    int ok = tsp && smpp && labp;
    for (size_t i = 0; ok && i < r->nlabels; i++)
        labp[i] = &r->labels[i];
    for (size_t i = 0; ok && i < n; i++) {
        /* names were kept as offsets while the arena could move */
        size_t end = i + 1 < n ? r->lab_start[i + 1] : r->nlabels;
        for (size_t k = r->lab_start[i]; k < end; k++) {
            r->labels[k].name = r->names + (size_t)(uintptr_t)r->labels[k].name;
            r->labels[k].value = r->names + (size_t)(uintptr_t)r->labels[k].value;
        }
        r->ts[i].labels = labp + r->lab_start[i];
        r->ts[i].n_labels = end - r->lab_start[i];
        smpp[i] = &r->smp[i];
        r->ts[i].samples = smpp + i;
        r->ts[i].n_samples = 1;
        tsp[i] = &r->ts[i];
    }
    batch *b = NULL;
    if (ok && !r->snap_full) {
        Prometheus__WriteRequest wr = PROMETHEUS__WRITE_REQUEST__INIT;
        wr.n_timeseries = n;
        wr.timeseries = tsp;
        size_t plen = prometheus__write_request__get_packed_size(&wr);
        uint8_t *packed = malloc(plen ? plen : 1);
        size_t clen = snappy_max_compressed_length(plen);
        if (packed && (b = malloc(sizeof(*b) + clen))) {
            prometheus__write_request__pack(&wr, packed);
            if (snappy_compress((const char *)packed, plen, b->body, &clen) == SNAPPY_OK &&
                r->q_bytes + clen <= r->max_queue) {
                batch *small = realloc(b, sizeof(*b) + clen);
                if (small)
                    b = small;
                b->len = clen;
                b->samples = n;
                b->done_seq = 0;
                b->next = NULL;
                if (r->tail)
                    r->tail->next = b;
                else
                    r->head = b;
                r->tail = b;
                r->q_bytes += clen;
                r->q_samples += n;
            } else {
                free(b);
                b = NULL;
            }
        }
        free(packed);
    }
    if (!b) {
        /* once the queue refuses one request of a snapshot, the rest of it
         * is dropped too, so what is sent has no holes within a flush */
        r->snap_full = 1;
        r->snap_dropped += n;
    }
    free(tsp);
    free(smpp);
    free(labp);
    r->nts = r->nlabels = r->names_used = 0;
}

/* A string into the names arena; its offset (the arena may move). */
static size_t keep(rw *r, const char *a, const char *b, int *err)
{
    size_t la = strlen(a), lb = b ? strlen(b) : 0;
    size_t need = r->names_used + la + lb + 1;
    if (grow((void **)&r->names, &r->names_cap, need, 1) != 0) {
        *err = 1;
        return 0;
    }
    size_t off = r->names_used;
    memcpy(r->names + off, a, la);
    if (lb)
        memcpy(r->names + off + la, b, lb);
    r->names[off + la + lb] = '\0';
    r->names_used = need;
    return off;
}

static void snap_family(void *arg, const char *name, const char *type)
{
    (void)arg;
    (void)name;
    (void)type;
}

static int label_before(const char *a, const char *b)
{
    return strcmp(a, b) < 0;
}

static void snap_sample(void *arg, const char *name, const char *suffix, const prom_label *labels,
                        size_t nl, const prom_label *extra, double value, int64_t ts_ms)
{
    rw *r = arg;
    if (r->nts == r->max_per_send)
        cut(r);
    if (r->snap_full) {
        r->snap_dropped++;
        return;
    }
    size_t want = r->nlabels + nl + 2;
    int err = 0;
    if (grow((void **)&r->labels, &r->labels_cap, want, sizeof(*r->labels)) != 0) {
        r->snap_dropped++;
        return;
    }
    /* __name__, the series' labels and the extra one, sorted by name */
    const char *lname[PROMSTORE_MAX_LABELS + 2], *lval[PROMSTORE_MAX_LABELS + 2];
    const char *lsuf[PROMSTORE_MAX_LABELS + 2];
    size_t k = 0;
    lname[k] = "__name__", lval[k] = name, lsuf[k++] = suffix;
    for (size_t i = 0; i < nl; i++)
        lname[k] = labels[i].name, lval[k] = labels[i].value, lsuf[k++] = NULL;
    if (extra)
        lname[k] = extra->name, lval[k] = extra->value, lsuf[k++] = NULL;
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && label_before(lname[j], lname[j - 1]); j--) {
            const char *t = lname[j]; lname[j] = lname[j - 1]; lname[j - 1] = t;
            t = lval[j]; lval[j] = lval[j - 1]; lval[j - 1] = t;
            t = lsuf[j]; lsuf[j] = lsuf[j - 1]; lsuf[j - 1] = t;
        }
    size_t first = r->nlabels;
    for (size_t i = 0; i < k && !err; i++) {
        Prometheus__Label *l = &r->labels[r->nlabels++];
        prometheus__label__init(l);
        l->name = (char *)(uintptr_t)keep(r, lname[i], NULL, &err);
        l->value = (char *)(uintptr_t)keep(r, lval[i], lsuf[i], &err);
    }
    if (err) {
        r->nlabels = first;
        r->snap_dropped++;
        return;
    }
    prometheus__time_series__init(&r->ts[r->nts]);
    prometheus__sample__init(&r->smp[r->nts]);
    r->smp[r->nts].value = value;
    r->smp[r->nts].timestamp = ts_ms ? ts_ms : (int64_t)r->snap_ms; /* a client's, or the snapshot's */
    r->lab_start[r->nts] = first;
    r->nts++;
}

/* Counts the samples a snapshot would have (to ask pace first). */
typedef struct counter {
    size_t n;
} counter;

static void count_family(void *arg, const char *name, const char *type)
{
    (void)arg;
    (void)name;
    (void)type;
}

static void count_sample(void *arg, const char *name, const char *suffix, const prom_label *labels,
                         size_t nl, const prom_label *extra, double value, int64_t ts_ms)
{
    ((counter *)arg)->n++;
}

static void log_now(rw *r, int force);

/* Expired series get Prometheus's stale marker (a NaN with this bit
 * pattern), so queries stop showing them at once instead of after 5
 * minutes; it goes out with the next snapshot. */
static double stale_nan(void)
{
    union { uint64_t u; double d; } x = { .u = 0x7ff0000000000002ull };
    return x.d;
}

static void stale_sample(void *arg, const char *name, const char *suffix,
                         const prom_label *labels, size_t nl, const prom_label *extra,
                         double value, int64_t ts_ms)
{
    snap_sample(arg, name, suffix, labels, nl, extra, stale_nan(), ts_ms);
}

/* Takes the state as of now into the queue. */
static void snapshot(rw *r)
{
    uint64_t now = r->api->now_ms(r->host);
    r->snap_ms = now;
    r->snap_full = 0;
    r->snap_dropped = 0;
    promstore_visitor sv = { snap_family, stale_sample, 1, 0, 1 };
    promstore_expire_visit(r->store, now, &sv, r);
    counter c = { 0 };
    promstore_visitor cv = { count_family, count_sample, 0, 1, 1 };
    promstore_visit(r->store, now, &cv, &c);
    if (!c.n && !r->nts)
        return;
    /* about 10 bytes a sample compressed, at least: pace on that guess */
    if (!r->nts && pace_wait(&r->pace, r->api->monotonic_ms(r->host), r->connected > 0,
                             r->sent_requests, r->q_bytes, r->max_queue, c.n * 10)) {
        r->un_deferred += c.n;
        return;
    }
    batch *before = r->tail;
    r->snap_seq++;
    promstore_visitor v = { snap_family, snap_sample, 1, 1, 1 };
    promstore_visit(r->store, now, &v, r);
    cut(r);
    if (!r->snap_dropped && r->tail && r->tail != before)
        r->tail->done_seq = r->snap_seq;
    if (r->snap_dropped) {
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)r->snap_dropped);
        r->un_dropped += r->snap_dropped;
    }
    publish(r);
}

/* --- sending --- */

static void log_now(rw *r, int force)
{
    const promstore_stats *st = promstore_get_stats(r->store);
    uint64_t now = r->api->monotonic_ms(r->host);
    if (!force && r->last_log && now - r->last_log < LOG_EVERY_MS)
        return;
    char msg[400];
    size_t used = 0;
    for (int i = 0; i < PROMSTORE_DROP_COUNT; i++) {
        uint64_t d = st->dropped[i] - r->logged[i];
        if (d && used < sizeof(msg))
            used += (size_t)snprintf(msg + used, sizeof(msg) - used, "%s%llu %s", used ? ", " : "",
                                     (unsigned long long)d, promstore_drop_name(i));
        r->logged[i] = st->dropped[i];
    }
    uint64_t te = st->tag_errors - r->logged_tag_errors;
    r->logged_tag_errors = st->tag_errors;
    uint64_t late = st->ts_late - r->logged_ts_late;
    r->logged_ts_late = st->ts_late;
    int any = used || te || late || r->un_dropped || r->un_deferred || r->un_rejected ||
              r->un_retried || r->un_unkept;
    if (!any)
        return;
    r->last_log = now;
    if (used)
        r->api->log(r->host, SY_LOG_WARN, "samples refused: %s (%zu series now)", msg, st->series);
    if (te)
        r->api->log(r->host, SY_LOG_WARN, "%llu tags dropped (no ':value', an empty name or "
                    "value, or a reserved name)", (unsigned long long)te);
    if (late)
        r->api->log(r->host, SY_LOG_WARN, "%llu DogStatsD timestamps ignored (counted in adjusted): "
                    "not after the time their series was last sent with, so the samples go out "
                    "at the next snapshot's time", (unsigned long long)late);
    if (r->un_rejected)
        r->api->log(r->host, SY_LOG_WARN, "%s refused %llu samples with HTTP %d (not retried): %s",
                    r->url, (unsigned long long)r->un_rejected, r->last_status, r->last_reply);
    if (r->un_retried)
        r->api->log(r->host, SY_LOG_WARN, "%s: %llu failed requests (last: %s), retrying with "
                    "backoff", r->url, (unsigned long long)r->un_retried, r->last_reply);
    if (r->un_dropped)
        r->api->log(r->host, SY_LOG_WARN, "queue full (%zu bytes, %zu samples waiting): %llu "
                    "samples dropped", r->q_bytes, r->q_samples,
                    (unsigned long long)r->un_dropped);
    if (r->un_unkept)
        r->api->log(r->host, SY_LOG_WARN, "keep log full (maxKeptBytes %zu, %zu samples kept): "
                    "%llu raw samples not kept, lost if unsent at shutdown", r->max_kept,
                    samplelog_count(r->kept), (unsigned long long)r->un_unkept);
    if (r->un_deferred)
        r->api->log(r->host, SY_LOG_INFO, "receiver busy: %llu samples of snapshots skipped "
                    "while the queue drains (the next snapshot carries their totals)",
                    (unsigned long long)r->un_deferred);
    r->un_dropped = r->un_deferred = r->un_rejected = r->un_retried = r->un_unkept = 0;
}

static void on_retry(void *arg)
{
    rw *r = arg;
    r->waiting = 0;
    send_next(r);
}

static void keep_reply(rw *r, struct evhttp_request *req)
{
    r->last_reply[0] = '\0';
    struct evbuffer *in = req ? evhttp_request_get_input_buffer(req) : NULL;
    size_t n = in ? evbuffer_get_length(in) : 0;
    if (n > sizeof(r->last_reply) - 1)
        n = sizeof(r->last_reply) - 1;
    if (n)
        evbuffer_copyout(in, r->last_reply, n);
    r->last_reply[n] = '\0';
    /* the receiver's text goes into our log: printable ASCII only */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)r->last_reply[i] < ' ' || (unsigned char)r->last_reply[i] > '~')
            r->last_reply[i] = ' ';
}

static void on_done(struct evhttp_request *req, void *arg)
{
    rw *r = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    r->in_flight = 0;
    r->last_status = code;
    if (code >= 200 && code < 300) {
        r->api->stat_add(r->host, SY_STAT_SENT, (int64_t)r->head->samples);
        pop(r);
        r->failures = 0;
        r->sent_requests++;
        r->connected = 1;
    } else if (code == 0 || code == 429 || code >= 500) {
        keep_reply(r, req);
        if (code == 0) {
            snprintf(r->last_reply, sizeof(r->last_reply), "no answer (refused, reset or timed out)");
        } else {
            char body[sizeof(r->last_reply)];
            memcpy(body, r->last_reply, sizeof(body));
            snprintf(r->last_reply, sizeof(r->last_reply), "HTTP %d: %.150s", code, body);
        }
        r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
        r->api->stat_add(r->host, SY_STAT_RECONNECTS, 1);
        r->connected = 0;
        r->un_retried++;
        if (r->failures < 30)
            r->failures++;
        uint64_t d = r->retry_min << (r->failures - 1 < 20 ? r->failures - 1 : 20);
        if (d > r->retry_max || d == 0)
            d = r->retry_max;
        d = d / 2 + (uint64_t)rand() % (d / 2 + 1);
        r->waiting = 1;
        r->api->timer_start(r->retry_timer, d);
        publish(r);
        /* the first failure after a success is told at once (at most one
         * a second), the rest at the usual bounded rate */
        log_now(r, r->failures == 1 &&
                       r->api->monotonic_ms(r->host) - r->last_log >= 1000);
        return;
    } else {
        keep_reply(r, req);
        r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)r->head->samples);
        r->un_rejected += r->head->samples;
        pop(r);
        r->connected = 1; /* it answered */
        log_now(r, 0);
    }
    publish(r);
    send_next(r);
}

static void send_next(rw *r)
{
    if (r->in_flight || r->waiting || !r->head)
        return;
    struct evhttp_request *req = evhttp_request_new(on_done, r);
    if (!req)
        goto later;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", r->hosthdr);
    evhttp_add_header(h, "Content-Type", "application/x-protobuf");
    evhttp_add_header(h, "Content-Encoding", "snappy");
    evhttp_add_header(h, "X-Prometheus-Remote-Write-Version", "0.1.0");
    evhttp_add_header(h, "User-Agent", "switchyard/" "1.0");
    if (evbuffer_add(evhttp_request_get_output_buffer(req), r->head->body, r->head->len) != 0) {
        evhttp_request_free(req);
        goto later;
    }
    if (evhttp_make_request(r->conn, req, EVHTTP_REQ_POST, r->path) != 0)
        goto later; /* libevent freed the request */
    r->in_flight = 1;
    return;
later:
    r->waiting = 1;
    r->api->timer_start(r->retry_timer, r->retry_min);
}

/* --- lifecycle --- */

static void rw_free(rw *r)
{
    if (!r)
        return;
    if (r->conn)
        evhttp_connection_free(r->conn);
    if (r->retry_timer)
        r->api->timer_free(r->retry_timer);
    while (r->head)
        pop(r);
    promstore_free(r->store);
    samplelog_free(r->kept);
    free(r->ts);
    free(r->smp);
    free(r->labels);
    free(r->lab_start);
    free(r->names);
    free(r);
}

static int int_setting(const sy_host_api *api, sy_host *host, const char *key, int64_t dflt,
                       int64_t lo, int64_t hi, int64_t *out, char *err, size_t errlen)
{
    if (api->setting_int(host, key, dflt, out) < 0 || *out < lo || *out > hi) {
        snprintf(err, errlen, "setting '%s' must be a whole number from %lld to %lld", key,
                 (long long)lo, (long long)hi);
        return -1;
    }
    return 0;
}

static int rw_setup(const sy_host_api *api, sy_host *host, void **state, char *err,
                    size_t errlen)
{
    const char *url;
    int64_t per_send, maxq, rmin, rmax, tmo, maxkept;
    promstore_config cfg;

    if (SY_SINK_CHECK_API(api, format_number, err, errlen) != 0)
        return -1;
    if (api->setting_string(host, "url", NULL, &url) < 0 || !url || !*url) {
        snprintf(err, errlen, "setting 'url' is required: \"http://HOST:PORT/api/v1/write\"");
        return -1;
    }
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *uhost = u ? evhttp_uri_get_host(u) : NULL;
    if (!u || !scheme || strcmp(scheme, "http") != 0 || !uhost || !*uhost || strlen(url) >= 512 ||
        evhttp_uri_get_userinfo(u) || evhttp_uri_get_fragment(u)) {
        snprintf(err, errlen, "setting 'url' must be \"http://HOST[:PORT]/PATH\" (https is not "
                 "supported: put a TLS proxy in front)");
        if (u)
            evhttp_uri_free(u);
        return -1;
    }
    if (int_setting(api, host, "maxSamplesPerSend", 2000, 1, 1000000, &per_send, err, errlen) ||
        int_setting(api, host, "maxQueueBytes", 64 << 20, 1024, (int64_t)1 << 40, &maxq, err,
                    errlen) ||
        int_setting(api, host, "retryMinMs", 100, 1, 3600000, &rmin, err, errlen) ||
        int_setting(api, host, "retryMaxMs", 30000, 1, 3600000, &rmax, err, errlen) ||
        int_setting(api, host, "timeoutMs", 10000, 1, 3600000, &tmo, err, errlen) ||
        int_setting(api, host, "maxKeptBytes", 64 << 20, 0, (int64_t)1 << 40, &maxkept, err,
                    errlen) ||
        promstore_read_config(api, host, &cfg, err, errlen) != 0) {
        evhttp_uri_free(u);
        return -1;
    }
    if (rmax < rmin) {
        snprintf(err, errlen, "retryMaxMs (%lld) is below retryMinMs (%lld)", (long long)rmax,
                 (long long)rmin);
        evhttp_uri_free(u);
        return -1;
    }
    if (!state) {
        evhttp_uri_free(u);
        return 0;
    }

    rw *r = calloc(1, sizeof(*r));
    if (!r) {
        evhttp_uri_free(u);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->api = api;
    r->host = host;
    r->connected = -1;
    snprintf(r->url, sizeof(r->url), "%s", url);
    r->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    if (evhttp_uri_get_port(u) > 0)
        snprintf(r->hosthdr, sizeof(r->hosthdr), strchr(uhost, ':') ? "[%s]:%d" : "%s:%d", uhost,
                 r->port);
    else
        snprintf(r->hosthdr, sizeof(r->hosthdr), strchr(uhost, ':') ? "[%s]" : "%s", uhost);
    const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
    snprintf(r->path, sizeof(r->path), "%s%s%s", path && *path ? path : "/", query ? "?" : "",
             query ? query : "");
    r->max_per_send = (size_t)per_send;
    r->max_queue = (size_t)maxq;
    r->retry_min = (uint64_t)rmin;
    r->retry_max = (uint64_t)rmax;
    r->timeout_ms = (uint64_t)tmo;
    /* The kept samples serve only take_back, which the host calls for a
     * sink with a disk spool: without one nothing is kept. */
    const char *spool_dir = NULL;
    if (api->setting_string(host, "spool.dir", NULL, &spool_dir) != 0 || !spool_dir)
        maxkept = 0;
    r->max_kept = (size_t)maxkept;

    /* init may block: resolve the receiver once, here */
    net_addr na;
    if (net_resolve(uhost, r->port, SOCK_STREAM, &na, 1, NULL, 0, err, errlen) < 0) {
        evhttp_uri_free(u);
        rw_free(r);
        return -1;
    }
    snprintf(r->addr, sizeof(r->addr), "%s", na.ip);
    evhttp_uri_free(u);

    r->ts = calloc(r->max_per_send, sizeof(*r->ts));
    r->smp = calloc(r->max_per_send, sizeof(*r->smp));
    r->lab_start = calloc(r->max_per_send, sizeof(*r->lab_start));
    r->store = promstore_new(&cfg, api);
    r->kept = samplelog_new(r->max_kept);
    struct event_base *base = api->event_base(host);
    r->retry_timer = api->timer_new(host, on_retry, r);
    if (!r->ts || !r->smp || !r->lab_start || !r->store || !r->kept || !base || !r->retry_timer ||
        !(r->conn = evhttp_connection_base_new(base, NULL, r->addr, (uint16_t)r->port))) {
        snprintf(err, errlen, "%s", base ? "out of memory" : "the host gave no event base");
        rw_free(r);
        return -1;
    }
    struct timeval tv = { (time_t)(r->timeout_ms / 1000), (suseconds_t)(r->timeout_ms % 1000) * 1000 };
    evhttp_connection_set_timeout_tv(r->conn, &tv);
    evhttp_connection_set_retries(r->conn, 0);
    /* what a receiver answers is read whole: bound it */
    evhttp_connection_set_max_headers_size(r->conn, 16384);
    evhttp_connection_set_max_body_size(r->conn, 65536);
    api->log(host, SY_LOG_INFO, "remote write to %s (%s:%d), at most %zu samples a request, "
             "queue %zu bytes", r->url, r->addr, r->port, r->max_per_send, r->max_queue);
    publish(r);
    *state = r;
    return 0;
}

static int rw_init(const sy_host_api *api, sy_host *host, void **state, char *err, size_t errlen)
{
    return rw_setup(api, host, state, err, errlen);
}

static int rw_check(const sy_host_api *api, sy_host *host, char *err, size_t errlen)
{
    return rw_setup(api, host, NULL, err, errlen);
}

static sy_status rw_write(void *state, const sy_metric_batch *b)
{
    return SY_SKIP; /* cumulative series come from raw samples */
}

static sy_status rw_write_samples(void *state, const sy_sample_batch *b)
{
    rw *r = state;
    uint64_t now = r->api->now_ms(r->host);
    int64_t refused = 0;
    const int64_t *ts = sy_host_has_timestamps(r->api) ? b->timestamps_ms : NULL;
    uint64_t late = promstore_get_stats(r->store)->ts_late;
    for (size_t i = 0; i < b->count; i++) {
        if (promstore_add_at(r->store, &b->samples[i], now, ts ? ts[i] : 0) != 0) {
            refused++;
            continue;
        }
        /* carried from the next snapshot on */
        if (r->max_kept &&
            samplelog_add(r->kept, r->snap_seq + 1, &b->samples[i], ts ? ts[i] : 0) != 0) {
            r->unkept_seq = r->snap_seq + 1;
            r->un_unkept++;
        }
    }
    if (r->un_unkept)
        log_now(r, 0);
    late = promstore_get_stats(r->store)->ts_late - late;
    if (late) {
        r->api->stat_add(r->host, SY_STAT_ADJUSTED, (int64_t)late);
        log_now(r, 0);
    }
    if (refused) {
        r->api->stat_add(r->host, SY_STAT_DROPPED, refused);
        log_now(r, 0);
    }
    return SY_OK;
}

static sy_status rw_flush(void *state, int final)
{
    rw *r = state;
    snapshot(r);
    send_next(r);
    log_now(r, final);
    return SY_OK;
}

static size_t rw_pending(void *state)
{
    rw *r = state;
    return r->q_samples;
}

/* Shutdown with the receiver behind: the raw samples of every request not
 * acknowledged go back to the host (its spool).  When all of them were
 * kept, the queue is forgotten (they will be sent again, from the
 * spool); otherwise it stays and close counts it as dropped. */
static size_t rw_take_back_samples(void *state,
                                   void (*give)(void *ctx, const sy_sample_batch *b), void *ctx)
{
    rw *r = state;
    size_t kept = samplelog_count(r->kept), bytes = samplelog_bytes(r->kept);
    size_t n = samplelog_take(r->kept, give, ctx);
    if (n)
        r->api->log(r->host, SY_LOG_INFO, "handing back %zu raw samples of requests not "
                    "acknowledged (%zu bytes in the keep log, %.1f a sample)", n, bytes,
                    kept ? (double)bytes / (double)kept : 0.0);
    if (r->unkept_seq > r->released_seq) {
        r->api->log(r->host, SY_LOG_WARN, "%zu raw samples handed back at shutdown; some "
                    "were not kept (maxKeptBytes %zu full): the queued requests (%zu samples) "
                    "are lost", n, r->max_kept, r->q_samples);
        return n;
    }
    while (r->head)
        pop(r);
    publish(r);
    return n;
}

static void rw_close(void *state)
{
    rw *r = state;
    if (r->q_samples)
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)r->q_samples);
    rw_free(r);
}

SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "remote_write",
    .version = "1.0",
    .description = "Prometheus remote write 1.0 (protobuf, snappy, HTTP POST) of the series the "
                   "prometheus sink shows",
    .settings = rw_settings,
    .init = rw_init,
    .check = rw_check,
    .write = rw_write,
    .write_samples = rw_write_samples,
    .flush = rw_flush,
    .pending = rw_pending,
    .close = rw_close,
    .features = SY_SINK_FEATURE_TIMESTAMPS,
    .take_back_samples = rw_take_back_samples,
};
