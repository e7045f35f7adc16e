/*
 * redis.c - stores each flush in Redis: the latest value of every metric,
 * a time series per metric, an index of names, and optionally a stream.
 *
 * Schema (KEY is the `prefix` setting, "switchyard:" by default; NAME is the
 * metric's full name exactly as Graphite receives it; TS is the flush time
 * in seconds since the epoch; VALUE is the number as statsd writes it, e.g.
 * "0.1", "150", "1e+21"):
 *
 *   HSET KEYlatest     NAME VALUE      the latest value of every metric
 *   HSET KEYlatest_ts  NAME TS         ... and the flush it came from
 *   SADD KEYnames      NAME            every name ever stored
 *   ZADD KEYts:NAME    TS "TS:VALUE"   one time series per metric: score
 *                                      TS, member "TS:VALUE" (unique per
 *                                      flush, so equal values in different
 *                                      flushes stay separate points)
 *   ZREMRANGEBYSCORE KEYts:NAME -inf (TS - retention)   trimmed on each
 *                                      write, once per metric per flush
 *   EXPIRE KEYts:NAME  (2 * retention) a metric no longer sent vanishes
 *   XADD KEYstream MAXLEN ~ streamMaxLen * name NAME value VALUE ts TS
 *                                      only with stream = true
 *
 * Reading it back with redis-cli:
 *   HGET switchyard:latest stats.gauges.g
 *   ZRANGEBYSCORE switchyard:ts:stats.gauges.g 1700000000 +inf
 *   SSCAN switchyard:names 0 MATCH stats.timers.*
 *   XREAD COUNT 100 STREAMS switchyard:stream 0
 * (the value of a ZRANGE member is the text after its first ':').
 * KEYlatest, KEYlatest_ts and KEYnames never expire: a name that is no
 * longer sent stays in them until removed by hand.
 *
 * Delivery is at least once.  Metrics whose replies have not all come back
 * when the connection breaks are written again on the next connection.  A
 * second write of the same flush sets the same hash fields to the same
 * values, adds the same set and sorted-set members (no duplicate point)
 * and only trims the same range again, so the only visible effect of a
 * duplicate is a repeated stream entry.
 *
 * How it runs: hiredis's async API on the host's output loop (libevent
 * adapter); nothing blocks.  A name that is not a numeric address is
 * resolved by a short-lived thread (getaddrinfo blocks).  Metrics are cut
 * into blocks of up to BLOCK_METRICS metrics of one flush; a block's
 * commands are pipelined, and the block is done when every reply is in.
 * At most `maxPending` metrics are awaiting replies; the rest, and
 * everything written while disconnected, waits in a queue of at most
 * `maxQueueMetrics` metrics (older data first; new data beyond the bound
 * is dropped and counted).  A broken connection puts its unanswered blocks
 * back at the head of the queue, and a new connection replays the queue
 * before anything newer.
 *
 * Statistics: sent = metrics all of whose commands were answered without
 * an error; queued = metrics waiting in the queue (pending() adds those
 * awaiting replies); dropped = the queue was full, or Redis answered an
 * error for one of the metric's commands (Redis refusing the data, e.g.
 * WRONGTYPE or OOM, so it is not retried), or still queued at close;
 * errors = error replies, failed handshakes, lost or stalled connections;
 * reconnects = connection attempts after a failure.
 *
 * One server: Redis Cluster redirections (-MOVED) are error replies here.
 *
 * hiredis 0.14 has no timeouts in its async API, so this sink keeps its
 * own: connectTimeoutMs covers resolve, connect and the handshake (AUTH,
 * SELECT, PING); stallTimeoutMs drops a connection on which commands are
 * outstanding but no reply has arrived for that long.
 *
 * Settings:
 *   host              address, name, or /path of a unix socket (127.0.0.1)
 *   port              (default 6379)
 *   username          for AUTH username password (Redis 6 ACLs; optional)
 *   password          AUTH on connect when set
 *   database          SELECT on connect when not 0 (default 0)
 *   prefix            key prefix                  (default "switchyard:")
 *   retention         seconds of time series kept (default 86400)
 *   stream            also XADD to KEYstream      (default false)
 *   streamMaxLen      approximate stream length   (default 100000)
 *   maxPending        metrics awaiting replies    (default 100000)
 *   maxQueueMetrics   metrics waiting to be sent  (default 1000000)
 *   stallTimeoutMs    no reply for this long with commands outstanding:
 *                     reconnect                   (default 10000)
 *   connectTimeoutMs  resolve + connect + handshake (default 5000)
 *   reconnectMinMs    first reconnect delay       (default 100)
 *   reconnectMaxMs    reconnect delay cap         (default 30000)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "switchyard_sink.h"

#define BLOCK_METRICS 256      /* metrics per block (one pipelined group) */
#define BLOCK_GLOBAL_CMDS 3    /* HSET latest, HSET latest_ts, SADD names */
#define LOG_EVERY_MS 10000
#define MAX_ADDRS 8
#define NUM_LEN 32             /* format_number's buffer */

/* One queued or in-flight group of metrics, all of one flush, copied with
 * their names into one allocation. */
typedef struct block {
    struct block *next;
    int64_t ts;
    uint32_t count;
    uint32_t issued;      /* commands written on the connection */
    uint32_t replies;     /* replies (real or NULL) received */
    uint8_t lost;         /* the connection broke before every reply came */
    uint8_t all_failed;   /* a command covering every metric failed */
    size_t size;          /* bytes allocated, for SY_STAT_QUEUED_BYTES */
    double *values;
    uint32_t *name_off;
    uint32_t *name_len;
    uint8_t *bad;         /* per metric: one of its commands failed */
    char *names;
} block;

/* A getaddrinfo running in a thread.  Two references: the sink's and the
 * thread's; the last one closes the eventfd and frees it, so the thread
 * never writes to a closed descriptor even when the sink gave up on it. */
typedef struct resolver {
    atomic_int refs;
    atomic_int done;      /* set (release) once rc and addrs are filled */
    int efd;
    int rc;               /* getaddrinfo's result */
    int naddrs;
    char addrs[MAX_ADDRS][INET6_ADDRSTRLEN];
    char host[];
} resolver;

enum conn_state {
    ST_IDLE,        /* waiting to (re)connect */
    ST_RESOLVING,
    ST_CONNECTING,  /* TCP connect and handshake */
    ST_READY,
    ST_CLOSED
};

/* A rate-limited log line: at most one per LOG_EVERY_MS, with a count. */
typedef struct limiter {
    uint64_t last;
    uint64_t count;
    int show_count;       /* say the count even when it is 1 */
    char text[200];
} limiter;

typedef struct redis_sink {
    const sy_host_api *api;
    sy_host *host;

    /* settings */
    char *addr;
    int port;
    char *username, *password;
    int64_t database;
    char *prefix;
    size_t prefix_len;
    int64_t retention;
    int stream;
    int64_t stream_maxlen;
    size_t max_pending;
    size_t max_queue;
    uint64_t stall_ms, connect_timeout_ms, reconnect_min_ms, reconnect_max_ms;
    int addr_is_numeric, addr_is_path;

    /* connection */
    enum conn_state state;
    redisAsyncContext *ac;
    sy_timer *timer;          /* reconnect delay, connect timeout, stall check */
    int drop_requested;
    int handshake_left;       /* handshake replies still expected */
    int handshake_failed;
    unsigned attempts;        /* failures since the last good connection */
    int ever_connected;       /* a connection was attempted */
    int ever_ready;
    uint64_t rng;
    resolver *res;
    sy_watch *res_watch;
    char peer[INET6_ADDRSTRLEN + 8];   /* what we connect to, for messages */

    /* data */
    block *qhead, *qtail;     /* waiting to be sent, oldest first */
    block *requeue_at;        /* put the next block lost back after this one */
    size_t queued;            /* metrics in the queue */
    size_t queued_bytes;
    size_t outstanding;       /* metrics in blocks awaiting replies */
    size_t requeued;          /* metrics put back since the last connect */
    size_t cmds_out;          /* commands awaiting replies */
    uint64_t last_progress;   /* monotonic ms of the last reply */

    /* scratch for building commands */
    const char **argv;
    size_t *argvlen;
    char (*nums)[NUM_LEN];
    char *keybuf;
    size_t keycap;

    /* bounded logging */
    limiter err_log;          /* error replies */
    limiter drop_log;         /* queue full (counts metrics) */
    limiter conn_log;         /* connect and handshake failures */
    limiter lost_log;         /* connections lost or stalled */
    int said_down;            /* a failure was logged: log the next "connected" */
} redis_sink;

static const char *const redis_settings[] = {
    "host", "port", "username", "password", "database", "prefix", "retention", "stream",
    "streamMaxLen", "maxPending", "maxQueueMetrics", "stallTimeoutMs", "connectTimeoutMs",
    "reconnectMinMs", "reconnectMaxMs", NULL
};

static void start_connect(redis_sink *r);
static void pump(redis_sink *r);

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */
/* ------------------------------------------------------------------ */

static uint64_t now_ms(redis_sink *r)
{
    return r->api->monotonic_ms(r->host);
}

/* Counts n events and logs when the last message is LOG_EVERY_MS old;
 * `text` (may be NULL) is kept as the latest example.  1 when it logged. */
static int limited_n(redis_sink *r, limiter *l, int level, const char *what, const char *text,
                      uint64_t n)
{
    uint64_t now = now_ms(r);
    l->count += n;
    if (text)
        snprintf(l->text, sizeof l->text, "%s", text);
    if (l->last && now - l->last < LOG_EVERY_MS)
        return 0;
    if (l->count > 1 || l->show_count)
        r->api->log(r->host, level, "%s (%llu since the last message)%s%s", what,
                    (unsigned long long)l->count, l->text[0] ? ": " : "", l->text);
    else
        r->api->log(r->host, level, "%s%s%s", what, l->text[0] ? ": " : "", l->text);
    l->count = 0;
    l->last = now;
    return 1;
}

static int limited(redis_sink *r, limiter *l, int level, const char *what, const char *text)
{
    return limited_n(r, l, level, what, text, 1);
}

/* Logs what a limiter held back once its period is over. */
static void limited_flush(redis_sink *r, limiter *l, int level, const char *what)
{
    if (!l->count || now_ms(r) - l->last < LOG_EVERY_MS)
        return;
    limited_n(r, l, level, what, NULL, 0);
}

static void update_queue_stats(redis_sink *r)
{
    r->api->stat_set(r->host, SY_STAT_QUEUED, (int64_t)r->queued);
    r->api->stat_set(r->host, SY_STAT_QUEUED_BYTES, (int64_t)r->queued_bytes);
}

/* xorshift64, for the reconnect jitter. */
static uint64_t next_rand(redis_sink *r)
{
    uint64_t x = r->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return r->rng = x;
}

/* The key "<prefix><mid><name>" in the scratch buffer; NULL when out of
 * memory. */
static const char *make_key(redis_sink *r, const char *mid, const char *name, size_t name_len,
                            size_t *len)
{
    size_t ml = strlen(mid);
    size_t need = r->prefix_len + ml + name_len + 1;
    if (need > r->keycap) {
        size_t cap = need < 256 ? 256 : need * 2;
        char *p = realloc(r->keybuf, cap);
        if (!p)
            return NULL;
        r->keybuf = p;
        r->keycap = cap;
    }
    memcpy(r->keybuf, r->prefix, r->prefix_len);
    memcpy(r->keybuf + r->prefix_len, mid, ml);
    memcpy(r->keybuf + r->prefix_len + ml, name, name_len);
    *len = need - 1;
    r->keybuf[*len] = '\0';
    return r->keybuf;
}

/* ------------------------------------------------------------------ */
/* Blocks and the queue                                                 */
/* ------------------------------------------------------------------ */

static block *block_new(const sy_metric_batch *b, size_t from, size_t n)
{
    size_t names = 0;
    for (size_t i = 0; i < n; i++)
        names += (size_t)b->metrics[from + i].name_len + 1;
    size_t size = sizeof(block) + n * (sizeof(double) + 2 * sizeof(uint32_t) + 1) + names;
    block *blk = malloc(size);
    if (!blk)
        return NULL;
    memset(blk, 0, sizeof *blk);
    blk->ts = b->timestamp;
    blk->count = (uint32_t)n;
    blk->size = size;
    blk->values = (double *)(blk + 1);
    blk->name_off = (uint32_t *)(blk->values + n);
    blk->name_len = blk->name_off + n;
    blk->bad = (uint8_t *)(blk->name_len + n);
    blk->names = (char *)(blk->bad + n);
    memset(blk->bad, 0, n);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const sy_metric *m = &b->metrics[from + i];
        blk->values[i] = m->value;
        blk->name_off[i] = (uint32_t)off;
        blk->name_len[i] = m->name_len;
        memcpy(blk->names + off, m->name, m->name_len);
        blk->names[off + m->name_len] = '\0';
        off += (size_t)m->name_len + 1;
    }
    return blk;
}

static void queue_append(redis_sink *r, block *blk)
{
    blk->next = NULL;
    if (r->qtail)
        r->qtail->next = blk;
    else
        r->qhead = blk;
    r->qtail = blk;
    r->queued += blk->count;
    r->queued_bytes += blk->size;
}

/* Puts a block whose connection broke back at the head of the queue,
 * behind the blocks of the same connection put back before it, so the
 * replay keeps the original order. */
static void queue_requeue(redis_sink *r, block *blk)
{
    blk->issued = blk->replies = 0;
    blk->lost = blk->all_failed = 0;
    memset(blk->bad, 0, blk->count);
    if (r->requeue_at) {
        blk->next = r->requeue_at->next;
        r->requeue_at->next = blk;
        if (r->qtail == r->requeue_at)
            r->qtail = blk;
    } else {
        blk->next = r->qhead;
        r->qhead = blk;
        if (!r->qtail)
            r->qtail = blk;
    }
    r->requeue_at = blk;
    r->queued += blk->count;
    r->queued_bytes += blk->size;
}

static block *queue_pop(redis_sink *r)
{
    block *blk = r->qhead;
    if (!blk)
        return NULL;
    r->qhead = blk->next;
    if (!r->qhead)
        r->qtail = NULL;
    blk->next = NULL;
    r->queued -= blk->count;
    r->queued_bytes -= blk->size;
    return blk;
}

static void queue_push_front(redis_sink *r, block *blk)
{
    blk->next = r->qhead;
    r->qhead = blk;
    if (!r->qtail)
        r->qtail = blk;
    r->queued += blk->count;
    r->queued_bytes += blk->size;
}

/* ------------------------------------------------------------------ */
/* Replies                                                              */
/* ------------------------------------------------------------------ */

static void note_error_reply(redis_sink *r, const redisReply *rep)
{
    r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
    limited(r, &r->err_log, SY_LOG_WARN, "Redis answered an error",
            rep->str ? rep->str : "(no text)");
}

/* Every reply of a block is in: count it, or queue it again when its
 * connection broke. */
static void block_done(redis_sink *r, block *blk)
{
    r->outstanding -= blk->count;
    if (blk->lost) {
        r->requeued += blk->count;
        queue_requeue(r, blk);
        update_queue_stats(r);
        return;
    }
    size_t failed = 0;
    if (blk->all_failed)
        failed = blk->count;
    else
        for (uint32_t i = 0; i < blk->count; i++)
            failed += blk->bad[i];
    if (blk->count > failed)
        r->api->stat_add(r->host, SY_STAT_SENT, (int64_t)(blk->count - failed));
    r->attempts = 0; /* the server takes data: the next failure starts the backoff anew */
    if (failed)
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)failed);
    free(blk);
}

/* The reply to one command of a block.  Replies come in the order the
 * commands were written, so the reply's position says which metric it
 * belongs to.  A NULL reply means the connection is gone (hiredis calls
 * every outstanding callback that way before it frees the context). */
static void on_block_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_sink *r = ac->data;
    block *blk = privdata;
    redisReply *rep = reply;
    uint32_t k = blk->replies++;

    r->cmds_out--;
    if (!rep) {
        blk->lost = 1;
    } else {
        r->last_progress = now_ms(r);
        if (rep->type == REDIS_REPLY_ERROR) {
            note_error_reply(r, rep);
            if (k < BLOCK_GLOBAL_CMDS)
                blk->all_failed = 1;
            else
                blk->bad[(k - BLOCK_GLOBAL_CMDS) / (3u + (r->stream ? 1u : 0u))] = 1;
        }
    }
    if (blk->replies == blk->issued) {
        block_done(r, blk);
        if (rep && ac == r->ac && r->state == ST_READY)
            pump(r);
    }
}

/* ------------------------------------------------------------------ */
/* Writing a block                                                      */
/* ------------------------------------------------------------------ */

/* One command of a block; -1 when hiredis refused it (the connection is
 * going away). */
static int issue(redis_sink *r, block *blk, int argc)
{
    if (redisAsyncCommandArgv(r->ac, on_block_reply, blk, argc, r->argv, r->argvlen) != REDIS_OK)
        return -1;
    if (r->cmds_out++ == 0)
        r->last_progress = now_ms(r);
    blk->issued++;
    return 0;
}

static void set_arg(redis_sink *r, int i, const char *s, size_t len)
{
    r->argv[i] = s;
    r->argvlen[i] = len;
}

/* Writes a block's commands (see the schema at the top).  0 when every
 * command went out; -1 when none did (the block is untouched and the
 * caller keeps it).  When only some went out, the block is marked lost so
 * that it is queued again once the replies (NULL ones) are in. */
static int block_send(redis_sink *r, block *blk)
{
    char ts[24], cutoff[24], ttl[24], maxlen[24], member[24 + 1 + NUM_LEN];
    size_t tslen = (size_t)snprintf(ts, sizeof ts, "%lld", (long long)blk->ts);
    size_t cutlen = (size_t)snprintf(cutoff, sizeof cutoff, "%lld",
                                     (long long)(blk->ts - r->retention));
    size_t ttllen = (size_t)snprintf(ttl, sizeof ttl, "%lld", (long long)(2 * r->retention));
    size_t mllen = (size_t)snprintf(maxlen, sizeof maxlen, "%lld", (long long)r->stream_maxlen);
    size_t numlen[BLOCK_METRICS];
    size_t klen;
    const char *key;
    uint32_t n = blk->count, i;

    blk->issued = blk->replies = 0;
    for (i = 0; i < n; i++)
        numlen[i] = r->api->format_number(blk->values[i], r->nums[i]);

    /* HSET latest NAME VALUE ... */
    key = make_key(r, "latest", "", 0, &klen);
    if (!key)
        return -1;
    set_arg(r, 0, "HSET", 4);
    set_arg(r, 1, key, klen);
    for (i = 0; i < n; i++) {
        set_arg(r, 2 + 2 * (int)i, blk->names + blk->name_off[i], blk->name_len[i]);
        set_arg(r, 3 + 2 * (int)i, r->nums[i], numlen[i]);
    }
    if (issue(r, blk, 2 + 2 * (int)n) < 0)
        return -1;

    /* HSET latest_ts NAME TS ... */
    key = make_key(r, "latest_ts", "", 0, &klen);
    if (!key)
        goto partial;
    set_arg(r, 1, key, klen);
    for (i = 0; i < n; i++)
        set_arg(r, 3 + 2 * (int)i, ts, tslen);
    if (issue(r, blk, 2 + 2 * (int)n) < 0)
        goto partial;

    /* SADD names NAME ... */
    key = make_key(r, "names", "", 0, &klen);
    if (!key)
        goto partial;
    set_arg(r, 0, "SADD", 4);
    set_arg(r, 1, key, klen);
    for (i = 0; i < n; i++)
        set_arg(r, 2 + (int)i, blk->names + blk->name_off[i], blk->name_len[i]);
    if (issue(r, blk, 2 + (int)n) < 0)
        goto partial;

    for (i = 0; i < n; i++) {
        const char *name = blk->names + blk->name_off[i];
        key = make_key(r, "ts:", name, blk->name_len[i], &klen);
        if (!key)
            goto partial;
        memcpy(member, ts, tslen);
        member[tslen] = ':';
        memcpy(member + tslen + 1, r->nums[i], numlen[i]);

        set_arg(r, 0, "ZADD", 4);
        set_arg(r, 1, key, klen);
        set_arg(r, 2, ts, tslen);
        set_arg(r, 3, member, tslen + 1 + numlen[i]);
        if (issue(r, blk, 4) < 0)
            goto partial;

        set_arg(r, 0, "ZREMRANGEBYSCORE", 16);
        set_arg(r, 2, "-inf", 4);
        set_arg(r, 3, cutoff, cutlen);
        if (issue(r, blk, 4) < 0)
            goto partial;

        set_arg(r, 0, "EXPIRE", 6);
        set_arg(r, 2, ttl, ttllen);
        if (issue(r, blk, 3) < 0)
            goto partial;

        if (r->stream) {
            key = make_key(r, "stream", "", 0, &klen);
            if (!key)
                goto partial;
            set_arg(r, 0, "XADD", 4);
            set_arg(r, 1, key, klen);
            set_arg(r, 2, "MAXLEN", 6);
            set_arg(r, 3, "~", 1);
            set_arg(r, 4, maxlen, mllen);
            set_arg(r, 5, "*", 1);
            set_arg(r, 6, "name", 4);
            set_arg(r, 7, name, blk->name_len[i]);
            set_arg(r, 8, "value", 5);
            set_arg(r, 9, r->nums[i], numlen[i]);
            set_arg(r, 10, "ts", 2);
            set_arg(r, 11, ts, tslen);
            if (issue(r, blk, 12) < 0)
                goto partial;
        }
    }
    r->outstanding += n;
    return 0;

partial:
    /* some callbacks hold the block: it completes (lost) through them */
    blk->lost = 1;
    r->outstanding += n;
    r->drop_requested = 1;
    r->api->timer_start(r->timer, 0);
    return 0;
}

/* Room on the connection for n more metrics.  A block larger than the
 * whole bound still goes out alone, so a small maxPending cannot wedge. */
static int can_send(redis_sink *r, size_t n)
{
    return r->state == ST_READY && !r->drop_requested &&
           (r->outstanding + n <= r->max_pending || r->outstanding == 0);
}

/* Sends queued blocks, oldest first, while the connection has room. */
static void pump(redis_sink *r)
{
    while (r->qhead && can_send(r, r->qhead->count)) {
        block *blk = queue_pop(r);
        if (block_send(r, blk) < 0) {
            queue_push_front(r, blk);
            r->drop_requested = 1;
            r->api->timer_start(r->timer, 0);
            break;
        }
    }
    update_queue_stats(r);
}

/* ------------------------------------------------------------------ */
/* The connection                                                       */
/* ------------------------------------------------------------------ */

static uint64_t backoff_ms(redis_sink *r)
{
    uint64_t d = r->reconnect_min_ms;
    for (unsigned i = 0; i < r->attempts && d < r->reconnect_max_ms; i++)
        d *= 2;
    if (d > r->reconnect_max_ms)
        d = r->reconnect_max_ms;
    /* full delay at most, half at least: many switchyards restarting
     * together do not reconnect in lockstep */
    uint64_t half = d / 2;
    return half + (half ? next_rand(r) % (d - half + 1) : 0);
}

static void schedule_reconnect(redis_sink *r)
{
    if (r->state == ST_CLOSED)
        return;
    r->state = ST_IDLE;
    r->drop_requested = 0;
    r->api->stat_set(r->host, SY_STAT_CONNECTED, 0);
    uint64_t d = backoff_ms(r);
    r->attempts++;
    r->api->timer_start(r->timer, d);
}

static void resolver_unref(resolver *res)
{
    if (atomic_fetch_sub(&res->refs, 1) == 1) {
        close(res->efd);
        free(res);
    }
}

/* Stops waiting for a resolution in progress; the thread finishes alone. */
static void resolver_abandon(redis_sink *r)
{
    if (!r->res)
        return;
    r->api->watch_free(r->res_watch);
    r->res_watch = NULL;
    resolver_unref(r->res);
    r->res = NULL;
}

/* Closes the connection now (never from inside a hiredis callback): the
 * callbacks of unanswered blocks run with NULL replies and queue them
 * again. */
static void drop_connection(redis_sink *r)
{
    redisAsyncContext *ac = r->ac;
    resolver_abandon(r);
    r->ac = NULL;
    r->state = ST_IDLE;
    r->api->stat_set(r->host, SY_STAT_CONNECTED, 0);
    if (ac)
        redisAsyncFree(ac);
    r->cmds_out = 0;
}

/* A connection attempt or the connection itself failed: log it (bounded),
 * close what is left and try again after the backoff. */
static void connection_failed(redis_sink *r, const char *why, int was_ready)
{
    drop_connection(r); /* first: it puts unanswered blocks back */
    if (was_ready) {
        char msg[300], text[400];
        r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
        snprintf(msg, sizeof msg, "connection to %s lost", r->peer);
        snprintf(text, sizeof text, "%s; %zu unanswered metrics to be written again, "
                 "%zu queued in all", why, r->requeued, r->queued);
        r->said_down |= limited(r, &r->lost_log, SY_LOG_WARN, msg, text);
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot connect to %s", r->peer);
        r->said_down |= limited(r, &r->conn_log, SY_LOG_WARN, msg, why);
    }
    schedule_reconnect(r);
}

static void become_ready(redis_sink *r)
{
    r->state = ST_READY;
    r->requeue_at = NULL;
    r->requeued = 0;
    r->api->stat_set(r->host, SY_STAT_CONNECTED, 1);
    /* the first connection, and the first after a logged failure: the
     * failure messages are bounded, so these are too */
    if (r->said_down || !r->ever_ready)
        r->api->log(r->host, SY_LOG_INFO, "connected to %s, database %lld; %zu metrics queued",
                    r->peer, (long long)r->database, r->queued);
    r->said_down = 0;
    r->ever_ready = 1;
    r->last_progress = now_ms(r);
    uint64_t period = r->stall_ms / 4;
    r->api->timer_start(r->timer, period < 50 ? 50 : period > 1000 ? 1000 : period);
    pump(r);
}

/* Replies to AUTH, SELECT and PING.  Any error fails the handshake. */
static void on_handshake_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_sink *r = ac->data;
    redisReply *rep = reply;
    const char *what = privdata;

    if (!rep || ac != r->ac)
        return; /* the connection is going away; its owner deals with it */
    r->last_progress = now_ms(r);
    if (rep->type == REDIS_REPLY_ERROR) {
        if (!r->handshake_failed) {
            r->handshake_failed = 1;
            r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
            char msg[300];
            snprintf(msg, sizeof msg, "%s on %s failed", what, r->peer);
            r->said_down |= limited(r, &r->conn_log, SY_LOG_ERROR, msg, rep->str ? rep->str : "");
        }
        r->drop_requested = 1;
        r->api->timer_start(r->timer, 0);
        return;
    }
    if (--r->handshake_left == 0 && !r->handshake_failed)
        become_ready(r);
}

static void handshake_cmd(redis_sink *r, const char *what, int argc, const char **argv)
{
    size_t len[4];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(r->ac, on_handshake_reply, (void *)what, argc, argv, len) ==
        REDIS_OK)
        r->handshake_left++;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    redis_sink *r = ac->data;
    if (ac != r->ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context itself right after this callback */
        r->ac = NULL;
        connection_failed(r, ac->c.errstr[0] ? ac->c.errstr : "connect failed", 0);
        return;
    }
    char db[24];
    snprintf(db, sizeof db, "%lld", (long long)r->database);
    r->handshake_left = 0;
    r->handshake_failed = 0;
    if (r->password && r->username) {
        const char *argv[] = { "AUTH", r->username, r->password };
        handshake_cmd(r, "AUTH", 3, argv);
    } else if (r->password) {
        const char *argv[] = { "AUTH", r->password };
        handshake_cmd(r, "AUTH", 2, argv);
    }
    if (r->database) {
        const char *argv[] = { "SELECT", db };
        handshake_cmd(r, "SELECT", 2, argv);
    }
    const char *argv[] = { "PING" };
    handshake_cmd(r, "PING", 1, argv);
    if (!r->handshake_left) {
        r->drop_requested = 1;
        r->api->timer_start(r->timer, 0);
    }
}

/* Called after hiredis has run every outstanding callback with NULL. */
static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    redis_sink *r = ac->data;
    if (ac != r->ac)
        return; /* we closed it ourselves */
    r->ac = NULL;
    int was_ready = r->state == ST_READY;
    r->cmds_out = 0;
    connection_failed(r, ac->c.errstr[0] ? ac->c.errstr : "closed", was_ready);
}

static void connect_to(redis_sink *r, const char *ip)
{
    redisAsyncContext *ac;
    if (r->addr_is_path) {
        snprintf(r->peer, sizeof r->peer, "%s", r->addr);
        ac = redisAsyncConnectUnix(r->addr);
    } else {
        snprintf(r->peer, sizeof r->peer, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, r->port);
        ac = redisAsyncConnect(ip, r->port);
    }
    r->state = ST_CONNECTING;
    if (!ac) {
        connection_failed(r, "out of memory", 0);
        return;
    }
    if (ac->err) {
        char why[200];
        snprintf(why, sizeof why, "%s", ac->c.errstr);
        redisAsyncFree(ac);
        connection_failed(r, why, 0);
        return;
    }
    ac->data = r;
    if (redisLibeventAttach(ac, r->api->event_base(r->host)) != REDIS_OK) {
        redisAsyncFree(ac);
        connection_failed(r, "cannot attach to the event loop", 0);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
}

static void *resolve_thread(void *arg)
{
    resolver *res = arg;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai, *p;
    res->rc = getaddrinfo(res->host, NULL, &hints, &ai);
    if (res->rc == 0) {
        /* IPv4 first: hiredis tries IPv4 before IPv6 for names too */
        for (int pass = 0; pass < 2; pass++)
            for (p = ai; p && res->naddrs < MAX_ADDRS; p = p->ai_next) {
                const void *a;
                if (pass == 0 && p->ai_family == AF_INET)
                    a = &((struct sockaddr_in *)p->ai_addr)->sin_addr;
                else if (pass == 1 && p->ai_family == AF_INET6)
                    a = &((struct sockaddr_in6 *)p->ai_addr)->sin6_addr;
                else
                    continue;
                if (inet_ntop(p->ai_family, a, res->addrs[res->naddrs], INET6_ADDRSTRLEN))
                    res->naddrs++;
            }
        freeaddrinfo(ai);
    }
    atomic_store_explicit(&res->done, 1, memory_order_release);
    uint64_t one = 1;
    ssize_t w = write(res->efd, &one, sizeof one);
    (void)w;
    resolver_unref(res);
    return NULL;
}

static void on_resolved(int fd, int events, void *arg)
{
    redis_sink *r = arg;
    resolver *res = r->res;
    uint64_t v;
    ssize_t rd = read(fd, &v, sizeof v);
    (void)rd;
    if (!res || r->state != ST_RESOLVING ||
        !atomic_load_explicit(&res->done, memory_order_acquire))
        return;
    char ip[INET6_ADDRSTRLEN];
    int rc = res->rc, n = res->naddrs;
    if (n)
        memcpy(ip, res->addrs[r->attempts % (unsigned)n], sizeof ip);
    resolver_abandon(r);
    if (rc != 0 || n == 0) {
        snprintf(r->peer, sizeof r->peer, "%s:%d", r->addr, r->port);
        connection_failed(r, rc ? gai_strerror(rc) : "no IPv4 or IPv6 address", 0);
        return;
    }
    connect_to(r, ip);
}

/* Resolves the name in a thread; on_resolved continues on the loop. */
static void start_resolve(redis_sink *r)
{
    size_t hl = strlen(r->addr);
    resolver *res = calloc(1, sizeof *res + hl + 1);
    const char *why = "out of memory";
    if (!res)
        goto fail;
    memcpy(res->host, r->addr, hl + 1);
    atomic_init(&res->refs, 2);
    atomic_init(&res->done, 0);
    res->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (res->efd < 0) {
        why = strerror(errno);
        free(res);
        goto fail;
    }
    r->res_watch = r->api->watch_new(r->host, res->efd, on_resolved, r);
    if (!r->res_watch) {
        close(res->efd);
        free(res);
        goto fail;
    }
    r->api->watch_set(r->res_watch, SY_WATCH_READ);
    r->res = res;
    r->state = ST_RESOLVING;

    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t, &attr, resolve_thread, res);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        atomic_store(&res->refs, 1); /* no thread holds it */
        resolver_abandon(r);
        why = strerror(e);
        goto fail;
    }
    return;
fail:
    snprintf(r->peer, sizeof r->peer, "%s:%d", r->addr, r->port);
    connection_failed(r, why, 0);
}

static void start_connect(redis_sink *r)
{
    if (r->ever_connected)
        r->api->stat_add(r->host, SY_STAT_RECONNECTS, 1);
    r->ever_connected = 1;
    r->drop_requested = 0;
    r->api->timer_start(r->timer, r->connect_timeout_ms);
    if (r->addr_is_numeric || r->addr_is_path)
        connect_to(r, r->addr);
    else
        start_resolve(r);
}

/* The one timer: what it means depends on the state. */
static void on_timer(void *arg)
{
    redis_sink *r = arg;
    if (r->drop_requested && r->state != ST_IDLE) {
        connection_failed(r, r->handshake_failed ? "handshake failed"
                                                 : "hiredis refused a command",
                          r->state == ST_READY);
        return;
    }
    switch (r->state) {
    case ST_IDLE:
        start_connect(r);
        break;
    case ST_RESOLVING:
    case ST_CONNECTING:
        connection_failed(r, r->state == ST_RESOLVING ? "timed out resolving the name"
                                                      : "timed out (connectTimeoutMs)", 0);
        break;
    case ST_READY: {
        uint64_t now = now_ms(r);
        if (r->cmds_out && now - r->last_progress >= r->stall_ms) {
            char why[120];
            snprintf(why, sizeof why, "no reply for %llu ms with %zu commands outstanding",
                     (unsigned long long)(now - r->last_progress), r->cmds_out);
            connection_failed(r, why, 1);
            return;
        }
        uint64_t period = r->stall_ms / 4;
        r->api->timer_start(r->timer, period < 50 ? 50 : period > 1000 ? 1000 : period);
        break;
    }
    case ST_CLOSED:
        break;
    }
}

/* ------------------------------------------------------------------ */
/* The plugin                                                           */
/* ------------------------------------------------------------------ */

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

/* A string setting copied (NULL stays NULL); -1 with err set. */
static int str_setting(const sy_host_api *api, sy_host *host, const char *key, const char *dflt,
                       char **out, char *err, size_t errlen)
{
    const char *v;
    *out = NULL;
    if (api->setting_string(host, key, dflt, &v) < 0) {
        snprintf(err, errlen, "setting '%s' must be a string", key);
        return -1;
    }
    if (v && !(*out = strdup(v))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void redis_free(redis_sink *r)
{
    free(r->addr);
    free(r->username);
    free(r->password);
    free(r->prefix);
    free(r->argv);
    free(r->argvlen);
    free(r->nums);
    free(r->keybuf);
    free(r);
}

static int redis_init(const sy_host_api *api, sy_host *host, void **state, char *err,
                      size_t errlen)
{
    int64_t port, db, retention, maxlen, maxpend, maxq, stall, cto, rmin, rmax;
    redis_sink *r;

    if (api->abi_major != SY_SINK_ABI_MAJOR ||
        api->struct_size < offsetof(sy_host_api, format_number) + sizeof(void *)) {
        snprintf(err, errlen, "the host's API is too old for this plugin");
        return -1;
    }
    if (!(r = calloc(1, sizeof *r))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->api = api;
    r->host = host;
    if (str_setting(api, host, "host", "127.0.0.1", &r->addr, err, errlen) ||
        str_setting(api, host, "username", NULL, &r->username, err, errlen) ||
        str_setting(api, host, "password", NULL, &r->password, err, errlen) ||
        str_setting(api, host, "prefix", "switchyard:", &r->prefix, err, errlen))
        goto fail;
    if (!r->addr[0]) {
        snprintf(err, errlen, "setting 'host' is empty");
        goto fail;
    }
    if (r->username && !r->password) {
        snprintf(err, errlen, "setting 'username' needs 'password' too");
        goto fail;
    }
    if (api->setting_bool(host, "stream", 0, &r->stream) < 0) {
        snprintf(err, errlen, "setting 'stream' must be true or false");
        goto fail;
    }
    if (int_setting(api, host, "port", 6379, 1, 65535, &port, err, errlen) ||
        int_setting(api, host, "database", 0, 0, INT32_MAX, &db, err, errlen) ||
        int_setting(api, host, "retention", 86400, 1, INT32_MAX, &retention, err, errlen) ||
        int_setting(api, host, "streamMaxLen", 100000, 1, INT64_MAX / 2, &maxlen, err, errlen) ||
        int_setting(api, host, "maxPending", 100000, 1, INT32_MAX, &maxpend, err, errlen) ||
        int_setting(api, host, "maxQueueMetrics", 1000000, 0, INT64_MAX / 2, &maxq, err,
                    errlen) ||
        int_setting(api, host, "stallTimeoutMs", 10000, 1, 86400000, &stall, err, errlen) ||
        int_setting(api, host, "connectTimeoutMs", 5000, 1, 3600000, &cto, err, errlen) ||
        int_setting(api, host, "reconnectMinMs", 100, 1, 3600000, &rmin, err, errlen) ||
        int_setting(api, host, "reconnectMaxMs", 30000, 1, 3600000, &rmax, err, errlen))
        goto fail;
    if (rmax < rmin) {
        snprintf(err, errlen, "reconnectMaxMs (%lld) is below reconnectMinMs (%lld)",
                 (long long)rmax, (long long)rmin);
        goto fail;
    }
    r->port = (int)port;
    r->database = db;
    r->prefix_len = strlen(r->prefix);
    r->retention = retention;
    r->stream_maxlen = maxlen;
    r->max_pending = (size_t)maxpend;
    r->max_queue = (size_t)maxq;
    r->stall_ms = (uint64_t)stall;
    r->connect_timeout_ms = (uint64_t)cto;
    r->reconnect_min_ms = (uint64_t)rmin;
    r->reconnect_max_ms = (uint64_t)rmax;

    unsigned char tmp[sizeof(struct in6_addr)];
    r->addr_is_path = r->addr[0] == '/';
    r->addr_is_numeric = inet_pton(AF_INET, r->addr, tmp) == 1 ||
                         inet_pton(AF_INET6, r->addr, tmp) == 1;

    r->argv = calloc(2 + 2 * BLOCK_METRICS, sizeof *r->argv);
    r->argvlen = calloc(2 + 2 * BLOCK_METRICS, sizeof *r->argvlen);
    r->nums = calloc(BLOCK_METRICS, sizeof *r->nums);
    r->timer = api->timer_new(host, on_timer, r);
    if (!r->argv || !r->argvlen || !r->nums || !r->timer) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    r->rng = api->monotonic_ms(host) ^ ((uint64_t)(uintptr_t)r << 16) ^ 0x9e3779b97f4a7c15ull;
    if (!r->rng)
        r->rng = 1;
    r->drop_log.show_count = 1;
    r->state = ST_IDLE;
    api->stat_set(host, SY_STAT_CONNECTED, 0);
    api->timer_start(r->timer, 0); /* connect as soon as the loop runs */
    *state = r;
    return 0;
fail:
    if (r->timer)
        api->timer_free(r->timer);
    redis_free(r);
    return -1;
}

static sy_status redis_write(void *state, const sy_metric_batch *b)
{
    redis_sink *r = state;
    size_t i = 0, oom = 0;
    size_t per_block = r->max_pending < BLOCK_METRICS ? r->max_pending : BLOCK_METRICS;

    while (i < b->count) {
        size_t n = b->count - i < per_block ? b->count - i : per_block;
        int direct = !r->qhead && can_send(r, n);
        if (!direct) {
            size_t room = r->max_queue > r->queued ? r->max_queue - r->queued : 0;
            if (room == 0)
                break;
            if (n > room)
                n = room;
        }
        block *blk = block_new(b, i, n);
        if (!blk) {
            oom = b->count - i;
            break;
        }
        i += n;
        if (direct && block_send(r, blk) == 0)
            continue;
        queue_append(r, blk);
        if (direct) { /* hiredis refused: the connection is going away */
            r->drop_requested = 1;
            r->api->timer_start(r->timer, 0);
        }
    }
    size_t dropped = b->count - i;
    if (dropped) {
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)dropped);
        char text[160];
        snprintf(text, sizeof text, "%zu queued (maxQueueMetrics %zu), %zu awaiting replies%s",
                 r->queued, r->max_queue, r->outstanding, oom ? ", out of memory" : "");
        limited_n(r, &r->drop_log, SY_LOG_WARN, "metrics dropped", text, dropped);
    }
    update_queue_stats(r);
    return SY_OK;
}

static sy_status redis_flush(void *state, int final)
{
    redis_sink *r = state;
    pump(r);
    limited_flush(r, &r->err_log, SY_LOG_WARN, "Redis answered an error");
    limited_flush(r, &r->drop_log, SY_LOG_WARN, "metrics dropped");
    return SY_OK;
}

static size_t redis_pending(void *state)
{
    redis_sink *r = state;
    return r->queued + r->outstanding;
}

static void redis_close(void *state)
{
    redis_sink *r = state;
    r->state = ST_CLOSED;
    r->api->timer_free(r->timer);
    r->timer = NULL;
    resolver_abandon(r);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* unanswered blocks come back to the queue */
    }
    if (r->queued) {
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)r->queued);
        r->api->log(r->host, SY_LOG_WARN, "closing with %zu metrics not written to %s: dropped",
                    r->queued, r->peer[0] ? r->peer : r->addr);
    }
    while (r->qhead)
        free(queue_pop(r));
    update_queue_stats(r);
    r->api->stat_set(r->host, SY_STAT_CONNECTED, 0);
    redis_free(r);
}

SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "redis",
    .version = "1.0",
    .description = "latest values, per-metric time series and an optional stream in Redis",
    .settings = redis_settings,
    .init = redis_init,
    .write = redis_write,
    .write_samples = NULL,
    .flush = redis_flush,
    .pending = redis_pending,
    .close = redis_close,
};
