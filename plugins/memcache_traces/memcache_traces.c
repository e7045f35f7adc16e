/*
 * memcache_traces.c - appstats-style request traces, stored in memcached.
 *
 * Timers tagged with a trace id are grouped into traces; each finished
 * trace is written to memcached the way App Engine's appstats does it, for
 * `switchyard traces` (core/traces.c) to list and show.  The pure logic
 * (keys, tags, grouping, JSON) is in lib/trace_model.c.
 *
 * Spans.  A span is one timer sample (ms, h or d) with DogStatsD tags:
 *
 *   api.req:120|ms|#trace:9f2c,root,method:GET,path:/x,status:200
 *   db.query:5|ms|#trace:9f2c,off:1
 *
 *   trace:ID  the trace (the first trace tag counts; at most 200 bytes).
 *             A sample without one is not a span: skipped (SY_SKIP).
 *   off:N     the span's start in ms after the trace's start, a
 *             non-negative decimal; a span without off starts at 0.
 *   root      (or root:true, root:1, root:yes) the span of the whole
 *             request; its value is the request's duration, and its
 *             method:, path: and status: tags describe the trace (those
 *             tags on other spans stay span tags only).
 *   Every other tag stays with its span, as sent.  The span's name is the
 *   metric key (the routed name up to its first ';', where switchyard
 *   appends tags) and its duration the value in ms; @rate is ignored.
 *
 * Start time.  A span is sent when it ends, so a span arriving at wall
 * time A (the host's now_ms when the batch is handed over) started at
 * about A - dur, and its trace at about A - dur - off.  A trace starts at
 * that estimate for its root (root arrival minus the request's duration),
 * or, without a root, at the earliest estimate of its spans; rounded down
 * to whole ms.  switchyard's own queues add well under a slot's 100 ms.
 * Both numbers are the client's, so each estimate is kept within
 * [A - maxTraceMs, A] (default 600000, ten minutes): a root of 1e308 ms
 * would otherwise start its trace in 1970, in slot 000000, and a large
 * off would let a client pick the slot it overwrites from all 1000.  A
 * trace whose start was moved so is still written, at the nearest end of
 * the window, and counted (statistic `adjusted`, one per trace; a warning
 * at most every 10 s names the last one).  Within the window a client
 * still chooses its slot, as it can by timing its sends.
 *
 * Closing.  A trace is closed and written
 *   - rootWaitMs (default 100) after its root arrived, so that spans
 *     reordered behind the root (datagrams, several reader threads) still
 *     join it; 0 closes it at the end of the batch that brought the root;
 *   - timeoutMs (default 10000) after its first span, when no root came;
 *   - early when a bound needs room: the oldest goes first, preferring one
 *     whose root was already seen ("evicted");
 *   - at shutdown ("shutdown").
 * The records' "closed" field says which.  A span whose trace was closed
 * less than timeoutMs ago is dropped as late (counted), rather than
 * opening a one-span fragment that would later take a slot.  Recently
 * closed ids are remembered in a fixed table (16384 entries), so under
 * very heavy load this is best effort.
 *
 * Bounds.  At most maxSpans (1000) spans per trace, one place being kept
 * for the root; the rest are counted in "spans_dropped".  At most
 * maxOpenTraces (10000) open traces, using at most maxBytes (64 MiB); a
 * new trace or span beyond either closes the oldest trace early.  A record
 * is at most maxItemBytes (1000000: memcached's default item limit is
 * 1 MiB, key and header included); a full record that would be larger
 * leaves out its last spans (counted in its spans_dropped).  Finished
 * traces wait in a queue of at most maxQueueBytes (64 MiB); one that does
 * not fit is dropped and counted.  This sink never answers SY_RETRY.
 *
 * Keys.  The start time in ms picks one of 1000 slots,
 * ((ms / 100) % 1000) * 100, written %06d ("000000" .. "099900"):
 *
 *   <prefix>:NNNNNN:full   every span, for `switchyard traces show`
 *   <prefix>:NNNNNN:part   the summary, for the index
 *
 * prefix defaults to "switchyard:traces".  As in appstats, traces starting
 * in the same 100 ms share a slot and the one written last wins; memcached
 * holds at most 1000 traces; the reader checks a full record's start time
 * against the one it was asked for, because the slot may have been reused
 * since the index was read.
 *
 * Records are JSON objects, "version": 1 (newlines added here):
 *
 *   part  {"version":1,"trace":"9f2c","start":1700000000003,"duration":120,
 *          "method":"GET","path":"/x","status":"200","root":true,
 *          "closed":"root","span_count":4,"spans_dropped":0,
 *          "stats":[{"name":"api.req","count":1,"total":120},
 *                   {"name":"db.query","count":3,"total":15}],
 *          "stats_truncated":false}
 *   full  {the same members up to "closed",
 *          "spans":[{"name":"api.req","off":0,"dur":120,"root":true,
 *                    "tags":["method:GET","path:/x","status:200"]},
 *                   {"name":"db.query","off":1,"dur":5,"tags":[]}, ...],
 *          "span_count":4,"spans_dropped":0}
 *
 * start is whole ms since the epoch; duration, off, dur and total are ms
 * as JavaScript writes numbers; method, path and status are strings (cut
 * at 1024 bytes) or null; closed is root, timeout, evicted or shutdown.
 * Spans are ordered root first, then by off, then by arrival; stats (one
 * per span name, over the stored spans) by name.  In each record
 * span_count + spans_dropped is the number of spans received.  Names, tags
 * and ids are client data: quotes, backslashes and control bytes are
 * escaped and invalid UTF-8 becomes U+FFFD, so a record is always JSON.
 *
 * Writing.  `set <key> 0 <expire> <bytes>\r\n<json>\r\n`, expire in
 * seconds (default 3600; 0 never expires; at most 30 days, past which
 * memcached would read an absolute time).  The full record is set first
 * and the part only once memcached has answered STORED for the full, so a
 * part always has its full behind it.  Commands are pipelined (up to
 * 256 KiB ahead) and every reply is read and matched in order: STORED for
 * the part counts the trace's spans as sent; SERVER_ERROR, NOT_STORED and
 * the like drop that trace (counted, logged at a bounded rate); ERROR and
 * CLIENT_ERROR drop it and reconnect, since the stream may be out of step;
 * anything else is a protocol error (reconnect).  When a connection breaks,
 * every trace not confirmed is written again, full first, on the next one
 * (a set can be repeated).  No reply for replyTimeoutMs counts as a broken
 * connection.
 *
 * The client uses only the host's fd watches and timers (libevent events
 * on the output loop): non-blocking connect with connectTimeoutMs,
 * reconnects with jittered exponential backoff from reconnectMinMs to
 * reconnectMaxMs, nothing that blocks.  The address is resolved once, in
 * init (which may block).
 *
 * Statistics count spans (samples): sent = spans of traces whose part was
 * stored; dropped = spans given up on (bad, late, over a bound, queue
 * full, refused by memcached, left at close); queued = spans of finished
 * traces not yet confirmed; errors, reconnects and connected as graphite;
 * adjusted counts traces, those whose start was clamped (above).
 * write() (aggregated metrics) is not for this sink: SY_SKIP.
 *
 * Settings:
 *   host, port        memcached              (default 127.0.0.1, 11211)
 *   prefix            key prefix             (default "switchyard:traces")
 *   expire            seconds                (default 3600)
 *   timeoutMs         close without root     (default 10000)
 *   rootWaitMs        close after the root   (default 100)
 *   maxTraceMs        earliest start before arrival (default 600000)
 *   maxSpans          per trace              (default 1000)
 *   maxOpenTraces     open at once           (default 10000)
 *   maxBytes          memory of open traces  (default 64 MiB)
 *   maxItemBytes      largest record         (default 1000000)
 *   maxQueueBytes     finished traces queue  (default 64 MiB)
 *   reconnectMinMs, reconnectMaxMs, connectTimeoutMs  (100, 30000, 5000)
 *   replyTimeoutMs    no reply: reconnect    (default 10000)
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "switchyard_sink.h"
#include "lib/netconn.h"
#include "lib/settings.h"
#include "lib/trace_model.h"

#define LOG_EVERY_MS 10000
#define MAX_IOV 64
#define WINDOW_BYTES (256 * 1024) /* written ahead of the replies */
#define IN_SIZE 4096              /* longest reply line kept */
#define READS_PER_EVENT 16
#define MAX_EXPIRE 2592000        /* 30 days: memcached's relative limit */

/* One finished trace: its two set commands, the full one first. */
typedef struct rec {
    struct rec *next;
    uint32_t spans;
    uint8_t part;        /* 0: the full command is the next to go, 1: the part */
    size_t full_len, part_len;
    char data[];
} rec;

typedef struct rlist {
    rec *head, *tail;
} rlist;


/* Why spans were dropped, for the periodic log line. */
enum { D_BAD, D_LATE, D_SPANS, D_MEMORY, D_QUEUE, D_TOO_LARGE, D_REFUSED, D_COUNT };
static const char *const drop_names[D_COUNT] = {
    "bad (negative or non-numeric duration, or a trace id over 200 bytes)",
    "late (their trace was already written)",
    "over maxSpans",
    "over maxBytes",
    "queue full (maxQueueBytes)",
    "over maxItemBytes",
    "refused by memcached",
};

typedef struct mct {
    const sy_host_api *api;
    sy_host *host;
    char prefix[256];
    int64_t expire;
    size_t max_item, max_queue;

    tm_table *table;
    sy_timer *close_timer;
    uint64_t close_at;           /* monotonic ms the timer is set for, 0 = off */
    tm_buf full, part;           /* scratch for building records */

    /* memcached connection (lib/netconn; its timer is the reply timeout
     * while connected) */
    netconn *conn;
    uint64_t reply_timeout_ms;

    /* Finished traces: each is in exactly one list.  inflight is in the
     * order the commands were (or will be) written; `cursor` is its first
     * record not completely written (NULL: all written), cursor_off the
     * bytes of it already written.  Replies answer inflight's head. */
    rlist unsent, ready, inflight;
    rec *cursor;
    size_t cursor_off, unwritten;
    size_t q_bytes, q_spans;
    char in[IN_SIZE];
    size_t in_len;

    uint64_t drops[D_COUNT];
    uint64_t clamped_unlogged;   /* traces whose start was clamped, since the last log */
    char clamped_last[160];       /* the last one's id (printable) and claim */
    uint64_t reply_errors_unlogged;
    char last_reply_error[128];
    uint64_t last_log;           /* monotonic ms, 0 = never */
} mct;

static const char *const mct_settings[] = {
    "host", "port", "prefix", "expire", "timeoutMs", "rootWaitMs", "maxTraceMs", "maxSpans",
    "maxOpenTraces", "maxBytes", "maxItemBytes", "maxQueueBytes", "reconnectMinMs",
    "reconnectMaxMs", "connectTimeoutMs", "replyTimeoutMs", NULL
};

static void mc_send(mct *m);

/* --- record lists --- */

static void rl_push(rlist *l, rec *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static rec *rl_pop(rlist *l)
{
    rec *r = l->head;
    if (r) {
        l->head = r->next;
        if (!l->head)
            l->tail = NULL;
        r->next = NULL;
    }
    return r;
}

/* Puts all of `front` before `l`; front is left empty. */
static void rl_prepend(rlist *l, rlist *front)
{
    if (!front->head)
        return;
    front->tail->next = l->head;
    if (!l->tail)
        l->tail = front->tail;
    l->head = front->head;
    front->head = front->tail = NULL;
}

static const char *rec_cmd(const rec *r, size_t *len)
{
    if (r->part) {
        *len = r->part_len;
        return r->data + r->full_len;
    }
    *len = r->full_len;
    return r->data;
}

/* --- statistics and logs --- */

static void publish(mct *m)
{
    m->api->stat_set(m->host, SY_STAT_QUEUED, (int64_t)m->q_spans);
    m->api->stat_set(m->host, SY_STAT_QUEUED_BYTES, (int64_t)m->q_bytes);
}

static void drop(mct *m, int why, uint64_t spans)
{
    if (!spans)
        return;
    m->drops[why] += spans;
    m->api->stat_add(m->host, SY_STAT_DROPPED, (int64_t)spans);
}

/* Drops and refused writes are logged at most every LOG_EVERY_MS, with
 * the counts since the last message: a broken client must not flood the
 * log. */
static void log_counts(mct *m, int force)
{
    uint64_t now = m->api->monotonic_ms(m->host);
    if (!force && m->last_log && now - m->last_log < LOG_EVERY_MS)
        return;
    int any = 0;
    for (int i = 0; i < D_COUNT; i++) {
        if (!m->drops[i])
            continue;
        m->api->log(m->host, SY_LOG_WARN, "%llu spans dropped: %s",
                    (unsigned long long)m->drops[i], drop_names[i]);
        m->drops[i] = 0;
        any = 1;
    }
    if (m->clamped_unlogged) {
        m->api->log(m->host, SY_LOG_WARN, "traces whose start the client's numbers put outside "
                    "[arrival - maxTraceMs, arrival], clamped to it: %llu (the last: %s)",
                    (unsigned long long)m->clamped_unlogged, m->clamped_last);
        m->clamped_unlogged = 0;
        any = 1;
    }
    if (m->reply_errors_unlogged) {
        m->api->log(m->host, SY_LOG_WARN, "memcached refused %llu writes, the last with \"%s\"",
                    (unsigned long long)m->reply_errors_unlogged, m->last_reply_error);
        m->reply_errors_unlogged = 0;
        any = 1;
    }
    if (any || !m->last_log)
        m->last_log = now;
}

static void rec_free_done(mct *m, rec *r)
{
    m->q_bytes -= r->full_len + r->part_len;
    m->q_spans -= r->spans;
    free(r);
}

/* --- the memcached connection --- */

static void mc_update_watch(mct *m)
{
    netconn_want(m->conn, SY_WATCH_READ | (m->cursor ? SY_WATCH_WRITE : 0));
}

/* Everything not confirmed goes back to the front of `unsent`, full record
 * first: after a reconnect memcached may be a new, empty one. */
static void mc_requeue(mct *m)
{
    for (rec *r = m->inflight.head; r; r = r->next)
        r->part = 0;
    for (rec *r = m->ready.head; r; r = r->next)
        r->part = 0;
    rl_prepend(&m->unsent, &m->ready);
    rl_prepend(&m->unsent, &m->inflight);
    m->cursor = NULL;
    m->cursor_off = m->unwritten = 0;
    m->in_len = 0;
}

/* why: NULL when the peer closed the connection. */
static void mc_lost(mct *m, const char *why)
{
    netconn_lost(m->conn, why, "; unconfirmed traces will be written again");
    publish(m);
}

/* Moves records into inflight until WINDOW_BYTES wait to be written:
 * parts whose full was stored first, so the index catches up, then new
 * traces. */
static void mc_schedule_writes(mct *m)
{
    while (m->unwritten < WINDOW_BYTES) {
        rec *r = rl_pop(&m->ready);
        if (!r)
            r = rl_pop(&m->unsent);
        if (!r)
            break;
        size_t len;
        rec_cmd(r, &len);
        int was_idle = !m->inflight.head;
        rl_push(&m->inflight, r);
        if (!m->cursor) {
            m->cursor = r;
            m->cursor_off = 0;
        }
        m->unwritten += len;
        if (was_idle)
            netconn_timer_start(m->conn, m->reply_timeout_ms);
    }
}

static void mc_send(mct *m)
{
    if (!netconn_connected(m->conn))
        return;
    mc_schedule_writes(m);
    while (m->cursor) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        size_t total = 0, off = m->cursor_off;
        for (rec *r = m->cursor; r && n < MAX_IOV; r = r->next) {
            size_t len;
            const char *p = rec_cmd(r, &len);
            iov[n].iov_base = (char *)p + off;
            iov[n].iov_len = len - off;
            total += iov[n].iov_len;
            n++;
            off = 0;
        }
        ssize_t w = netconn_writev(m->conn, iov, n);
        if (w < 0) {
            mc_lost(m, strerror(errno));
            return;
        }
        size_t left = (size_t)w;
        m->unwritten -= left;
        while (left && m->cursor) {
            size_t len;
            rec_cmd(m->cursor, &len);
            size_t rest = len - m->cursor_off;
            if (left < rest) {
                m->cursor_off += left;
                left = 0;
            } else {
                left -= rest;
                m->cursor = m->cursor->next;
                m->cursor_off = 0;
            }
        }
        if ((size_t)w < total)
            break; /* the socket buffer is full: wait until writable */
        mc_schedule_writes(m);
    }
    mc_update_watch(m);
}

static int starts_with(const char *line, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && memcmp(line, word, n) == 0 && (len == n || line[n] == ' ');
}

/* The reply to inflight's head.  0 to go on reading, -1 when the
 * connection was dropped. */
static int mc_reply(mct *m, const char *line, size_t len)
{
    rec *r = m->inflight.head;
    if (!r || r == m->cursor) {
        /* nothing asked, or an answer before the command was complete:
         * the stream is out of step */
        if (r && (starts_with(line, len, "SERVER_ERROR") || starts_with(line, len, "CLIENT_ERROR"))) {
            /* e.g. "object too large": memcached answers before reading
             * the data; this trace would fail again, so it goes */
            rl_pop(&m->inflight);
            m->cursor = r->next;
            m->cursor_off = 0;
            drop(m, D_REFUSED, r->spans);
            snprintf(m->last_reply_error, sizeof(m->last_reply_error), "%.*s",
                     (int)(len < 100 ? len : 100), line);
            m->reply_errors_unlogged++;
            rec_free_done(m, r);
        }
        char why[160];
        snprintf(why, sizeof(why), "unexpected reply \"%.*s\"", (int)(len < 100 ? len : 100), line);
        mc_lost(m, why);
        return -1;
    }
    if (len == 6 && memcmp(line, "STORED", 6) == 0) {
        rl_pop(&m->inflight);
        if (!r->part) {
            r->part = 1;
            rl_push(&m->ready, r);
        } else {
            m->api->stat_add(m->host, SY_STAT_SENT, r->spans);
            rec_free_done(m, r);
        }
        return 0;
    }
    int resync = len == 5 && memcmp(line, "ERROR", 5) == 0;
    resync |= starts_with(line, len, "CLIENT_ERROR");
    if (resync || starts_with(line, len, "SERVER_ERROR") || starts_with(line, len, "NOT_STORED") ||
        starts_with(line, len, "EXISTS") || starts_with(line, len, "NOT_FOUND")) {
        rl_pop(&m->inflight);
        m->api->stat_add(m->host, SY_STAT_ERRORS, 1);
        drop(m, D_REFUSED, r->spans);
        snprintf(m->last_reply_error, sizeof(m->last_reply_error), "%.*s",
                 (int)(len < 100 ? len : 100), line);
        m->reply_errors_unlogged++;
        rec_free_done(m, r);
        log_counts(m, 0);
        if (resync) {
            mc_lost(m, "memcached did not understand a command");
            return -1;
        }
        return 0;
    }
    char why[160];
    snprintf(why, sizeof(why), "unexpected reply \"%.*s\"", (int)(len < 100 ? len : 100), line);
    mc_lost(m, why);
    return -1;
}

static void mc_read(mct *m)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t r = recv(netconn_fd(m->conn), m->in + m->in_len, sizeof(m->in) - m->in_len,
                         MSG_DONTWAIT);
        if (r == 0) {
            mc_lost(m, NULL);
            return;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                mc_lost(m, strerror(errno));
            return;
        }
        m->in_len += (size_t)r;
        size_t pos = 0;
        int got = 0;
        for (;;) {
            char *nl = memchr(m->in + pos, '\n', m->in_len - pos);
            if (!nl)
                break;
            size_t len = (size_t)(nl - (m->in + pos));
            if (len && m->in[pos + len - 1] == '\r')
                len--;
            if (mc_reply(m, m->in + pos, len) < 0)
                return;
            got = 1;
            pos = (size_t)(nl - m->in) + 1;
        }
        memmove(m->in, m->in + pos, m->in_len - pos);
        m->in_len -= pos;
        if (m->in_len == sizeof(m->in)) {
            mc_lost(m, "a reply line longer than 4096 bytes");
            return;
        }
        if (got) {
            /* progress: the reply timeout starts again, or stops */
            if (m->inflight.head)
                netconn_timer_start(m->conn, m->reply_timeout_ms);
            else
                netconn_timer_stop(m->conn);
            publish(m);
        }
    }
}

/* The connection's events (lib/netconn). */
static void mc_on_connected(void *arg)
{
    mct *m = arg;
    netconn_want(m->conn, SY_WATCH_READ);
    mc_send(m);
}

static void mc_on_closed(void *arg)
{
    mc_requeue(arg);
}

static void mc_on_events(void *arg, int events)
{
    mct *m = arg;
    if (events & SY_WATCH_READ) {
        mc_read(m);
        if (!netconn_connected(m->conn))
            return;
    }
    /* replies may have made parts ready: write whenever connected */
    mc_send(m);
}

/* The reply timeout. */
static void mc_on_timer(void *arg)
{
    mct *m = arg;
    if (m->inflight.head) {
        char why[64];
        snprintf(why, sizeof(why), "no reply for %llu ms", (unsigned long long)m->reply_timeout_ms);
        mc_lost(m, why);
    }
}

static size_t mc_queued(void *arg)
{
    mct *m = arg;
    size_t queued = 0;
    for (rec *r = m->unsent.head; r; r = r->next)
        queued++;
    return queued;
}

static const netconn_handler mc_handler = {
    .connected = mc_on_connected,
    .closed = mc_on_closed,
    .events = mc_on_events,
    .timer = mc_on_timer,
    .queued = mc_queued,
};

/* --- traces to records --- */

/* A trace whose start was clamped: counted, and remembered for the log
 * line (its id is client text: cut, and anything unprintable shown as
 * '?'). */
static void count_clamped(mct *m, const tm_trace *tr)
{
    double claimed;
    if (!tm_trace_start_clamped(tr, &claimed))
        return;
    m->api->stat_add(m->host, SY_STAT_ADJUSTED, 1);
    m->clamped_unlogged++;
    size_t len, k;
    const char *id = tm_trace_id(tr, &len);
    char safe[41];
    for (k = 0; k < len && k < sizeof(safe) - 1; k++)
        safe[k] = id[k] >= 0x20 && id[k] < 0x7f ? id[k] : '?';
    safe[k] = '\0';
    char num[32];
    if (isfinite(claimed))
        m->api->format_number(claimed, num);
    else
        snprintf(num, sizeof(num), "infinitely many"); /* off of 400 digits */
    snprintf(m->clamped_last, sizeof(m->clamped_last), "trace %s%s, %s ms before arrival", safe,
             len > k ? "..." : "", num);
}

/* Builds both commands of a closed trace and queues them; frees it. */
static void enqueue(mct *m, tm_trace *tr)
{
    uint32_t n = tm_trace_span_count(tr), written = 0;
    if (n == 0) { /* every span was dropped, and counted then */
        tm_trace_free(tr);
        return;
    }
    count_clamped(m, tr);
    tm_buf_reset(&m->full);
    tm_buf_reset(&m->part);
    if (tm_trace_json_full(tr, &m->full, m->max_item, m->api->format_number, &written) < 0 ||
        tm_trace_json_part(tr, &m->part, m->max_item, m->api->format_number) < 0) {
        drop(m, D_TOO_LARGE, n);
        tm_trace_free(tr);
        return;
    }
    drop(m, D_TOO_LARGE, n - written);
    uint64_t start = tm_trace_start(tr);
    tm_trace_free(tr);

    char kf[TM_KEY_MAX + 1], kp[TM_KEY_MAX + 1], hf[TM_KEY_MAX + 64], hp[TM_KEY_MAX + 64];
    tm_key(kf, sizeof(kf), m->prefix, start, "full"); /* the prefix was checked in init */
    tm_key(kp, sizeof(kp), m->prefix, start, "part");
    int lf = snprintf(hf, sizeof(hf), "set %s 0 %lld %zu\r\n", kf, (long long)m->expire, m->full.len);
    int lp = snprintf(hp, sizeof(hp), "set %s 0 %lld %zu\r\n", kp, (long long)m->expire, m->part.len);
    size_t full_len = (size_t)lf + m->full.len + 2, part_len = (size_t)lp + m->part.len + 2;
    size_t size = full_len + part_len;
    if (m->q_bytes + size > m->max_queue) {
        drop(m, D_QUEUE, written);
        return;
    }
    rec *r = malloc(sizeof(*r) + size);
    if (!r) {
        drop(m, D_MEMORY, written);
        return;
    }
    char *p = r->data;
    memcpy(p, hf, (size_t)lf);
    p += lf;
    memcpy(p, m->full.p, m->full.len);
    p += m->full.len;
    memcpy(p, "\r\n", 2);
    p += 2;
    memcpy(p, hp, (size_t)lp);
    p += lp;
    memcpy(p, m->part.p, m->part.len);
    p += m->part.len;
    memcpy(p, "\r\n", 2);
    r->next = NULL;
    r->spans = written;
    r->part = 0;
    r->full_len = full_len;
    r->part_len = part_len;
    rl_push(&m->unsent, r);
    m->q_bytes += size;
    m->q_spans += written;
}

static void take_closed(mct *m)
{
    tm_trace *tr;
    while ((tr = tm_table_pop_closed(m->table)))
        enqueue(m, tr);
}

/* Sets the close timer for the next trace to close, if it changed. */
static void arm_close_timer(mct *m)
{
    uint64_t d = tm_table_next_deadline(m->table);
    if (d == m->close_at)
        return;
    m->close_at = d;
    if (!d) {
        m->api->timer_stop(m->close_timer);
        return;
    }
    uint64_t now = m->api->monotonic_ms(m->host);
    m->api->timer_start(m->close_timer, d > now ? d - now : 0);
}

static void after_change(mct *m)
{
    take_closed(m);
    arm_close_timer(m);
    mc_send(m);
    publish(m);
}

static void on_close_timer(void *arg)
{
    mct *m = arg;
    m->close_at = 0;
    tm_table_expire(m->table, m->api->monotonic_ms(m->host));
    after_change(m);
}

/* --- the plugin --- */

static void mct_close(void *state);

/* init, and with state NULL the check: every setting is judged the same
 * way, and the check stops before the trace table, the address lookup and
 * the timers. */
static int mct_setup(const sy_host_api *api, sy_host *host, void **state, char *err,
                     size_t errlen)
{
    const char *addr, *prefix;
    int64_t port, expire, timeout, root_wait, max_trace, max_spans, max_open, max_bytes, max_item,
        max_queue;
    int64_t rto;
    reconnect_settings rs;

    if (SY_SINK_CHECK_API(api, format_number, err, errlen) != 0)
        return -1;
    if (api->setting_string(host, "host", "127.0.0.1", &addr) < 0) {
        snprintf(err, errlen, "setting 'host' must be a string");
        return -1;
    }
    if (api->setting_string(host, "prefix", "switchyard:traces", &prefix) < 0) {
        snprintf(err, errlen, "setting 'prefix' must be a string");
        return -1;
    }
    if (!*addr) {
        snprintf(err, errlen, "setting 'host' is empty");
        return -1;
    }
    if (!tm_prefix_ok(prefix)) {
        snprintf(err, errlen, "setting 'prefix' must be 1 to 200 bytes with no space or "
                 "control character (it starts memcached keys)");
        return -1;
    }
    if (int_setting(api, host, "port", 11211, 1, 65535, &port, err, errlen) ||
        int_setting(api, host, "expire", 3600, 0, MAX_EXPIRE, &expire, err, errlen) ||
        int_setting(api, host, "timeoutMs", 10000, 1, 86400000, &timeout, err, errlen) ||
        int_setting(api, host, "rootWaitMs", 100, 0, 86400000, &root_wait, err, errlen) ||
        int_setting(api, host, "maxTraceMs", 600000, 1, 86400000, &max_trace, err, errlen) ||
        int_setting(api, host, "maxSpans", 1000, 1, 1000000, &max_spans, err, errlen) ||
        int_setting(api, host, "maxOpenTraces", 10000, 1, 10000000, &max_open, err, errlen) ||
        int_setting(api, host, "maxBytes", 64 << 20, 4096, INT64_MAX, &max_bytes, err, errlen) ||
        int_setting(api, host, "maxItemBytes", 1000000, 1024, 1 << 30, &max_item, err, errlen) ||
        int_setting(api, host, "maxQueueBytes", 64 << 20, 1024, INT64_MAX, &max_queue, err, errlen) ||
        reconnect_settings_read(api, host, &rs, err, errlen) ||
        int_setting(api, host, "replyTimeoutMs", 10000, 1, 3600000, &rto, err, errlen))
        return -1;
    if (root_wait > timeout) {
        snprintf(err, errlen, "rootWaitMs (%lld) is above timeoutMs (%lld)",
                 (long long)root_wait, (long long)timeout);
        return -1;
    }
    if (!state)
        return 0;

    mct *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->api = api;
    m->host = host;
    snprintf(m->prefix, sizeof(m->prefix), "%s", prefix);
    m->expire = expire;
    m->max_item = (size_t)max_item;
    m->max_queue = (size_t)max_queue;
    m->reply_timeout_ms = (uint64_t)rto;

    tm_limits lim = {
        .max_spans = (uint32_t)max_spans,
        .max_open = (uint32_t)max_open,
        .max_bytes = (size_t)max_bytes,
        .timeout_ms = (uint64_t)timeout,
        .root_wait_ms = (uint64_t)root_wait,
        .max_trace_ms = (uint64_t)max_trace,
    };
    if (!(m->table = tm_table_new(&lim))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    m->close_timer = api->timer_new(host, on_close_timer, m);
    if (!m->close_timer) {
        snprintf(err, errlen, "cannot create a timer");
        goto fail;
    }
    char bound[64];
    snprintf(bound, sizeof(bound), "%zu bytes of traces", m->max_queue);
    netconn_config nc = {
        .host = addr,
        .port = (int)port,
        .reconnect_min_ms = rs.min_ms,
        .reconnect_max_ms = rs.max_ms,
        .connect_timeout_ms = rs.connect_timeout_ms,
        .service = "memcached at ",
        .noun = "traces",
        .bound = bound,
    };
    /* resolves, and connects from the loop, not from init */
    if (!(m->conn = netconn_new(api, host, &nc, &mc_handler, m, err, errlen)))
        goto fail;
    publish(m);
    *state = m;
    return 0;
fail:
    mct_close(m);
    return -1;
}

static int mct_init(const sy_host_api *api, sy_host *host, void **state, char *err, size_t errlen)
{
    return mct_setup(api, host, state, err, errlen);
}

static int mct_check(const sy_host_api *api, sy_host *host, char *err, size_t errlen)
{
    return mct_setup(api, host, NULL, err, errlen);
}

static sy_status mct_write(void *state, const sy_metric_batch *b)
{
    return SY_SKIP; /* aggregates are not traces */
}

static sy_status mct_write_samples(void *state, const sy_sample_batch *b)
{
    mct *m = state;
    uint64_t wall = m->api->now_ms(m->host), mono = m->api->monotonic_ms(m->host);
    size_t taken = 0;
    for (size_t i = 0; i < b->count; i++) {
        const sy_sample *s = &b->samples[i];
        if (s->type != SY_SAMPLE_TIMER || !s->tags_len)
            continue;
        int r = tm_table_add(m->table, s->name, s->name_len, s->tags, s->tags_len, s->value,
                             wall, mono);
        if (r == TM_NO_TRACE)
            continue;
        taken++;
        switch (r) {
        case TM_BAD: drop(m, D_BAD, 1); break;
        case TM_LATE: drop(m, D_LATE, 1); break;
        case TM_OVER_SPANS: drop(m, D_SPANS, 1); break;
        case TM_NO_MEMORY: drop(m, D_MEMORY, 1); break;
        default: break;
        }
        take_closed(m); /* traces closed early to make room */
    }
    if (!taken)
        return SY_SKIP;
    tm_table_expire(m->table, mono);
    after_change(m);
    return SY_OK;
}

static sy_status mct_flush(void *state, int final)
{
    mct *m = state;
    uint64_t mono = m->api->monotonic_ms(m->host);
    if (final)
        tm_table_close_all(m->table, mono);
    else
        tm_table_expire(m->table, mono);
    after_change(m);
    log_counts(m, final);
    return SY_OK;
}

static size_t mct_pending(void *state)
{
    mct *m = state;
    return m->q_spans + tm_table_open_spans(m->table);
}

static void free_list(rlist *l)
{
    rec *r;
    while ((r = rl_pop(l)))
        free(r);
}

static void mct_close(void *state)
{
    mct *m = state;
    if (!m)
        return;
    if (m->table) {
        uint64_t left = m->q_spans + tm_table_open_spans(m->table);
        if (left) {
            m->api->stat_add(m->host, SY_STAT_DROPPED, (int64_t)left);
            m->api->log(m->host, SY_LOG_WARN, "closing with %llu spans not written",
                        (unsigned long long)left);
        }
    }
    log_counts(m, 1);
    netconn_free(m->conn);
    if (m->close_timer)
        m->api->timer_free(m->close_timer);
    free_list(&m->unsent);
    free_list(&m->ready);
    free_list(&m->inflight);
    tm_table_free(m->table);
    tm_buf_free(&m->full);
    tm_buf_free(&m->part);
    free(m);
}

SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "memcache_traces",
    .version = "1.0",
    .description = "appstats-style request traces from trace-tagged timers, stored in memcached",
    .settings = mct_settings,
    .init = mct_init,
    .check = mct_check,
    .write = mct_write,
    .write_samples = mct_write_samples,
    .flush = mct_flush,
    .pending = mct_pending,
    .close = mct_close,
};
