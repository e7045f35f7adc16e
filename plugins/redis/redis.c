/*
 * redis.c - stores each flush in Redis: the latest value of every metric,
 * a time series per metric, an index of names, and optionally a stream.
 * Writes to one server, or to a Redis Cluster (cluster = true).
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
 * Redis Cluster schema (cluster = true).  Every key has a hash tag, every
 * command has exactly one key, and each command goes to the master owning
 * its key's slot.  A single KEYlatest hash would live on one master and
 * take half of every flush's work, so the index is cut into clusterGroups
 * groups (default 16), each with its own hash tag:
 *
 *   ZADD, ZREMRANGEBYSCORE, EXPIRE on KEYts:{NAME}    the series, as
 *                       above; the tag is the name (up to a '}' in it),
 *                       so the series spread over every slot
 *   HSET KEYlatest:{G}     NAME VALUE
 *   HSET KEYlatest_ts:{G}  NAME TS
 *   SADD KEYnames:{G}      NAME
 *   XADD KEYstream:{G} MAXLEN ~ streamMaxLen * name NAME value VALUE ts TS
 *
 * G, the metric's group, is the slot of its series key modulo clusterGroups
 * (a decimal number, 0 to clusterGroups - 1).  A group's four keys share
 * the tag {G}: they are in one slot, on one master, and are written
 * together.  So a metric's latest value is found with two commands:
 *   CLUSTER KEYSLOT "switchyard:ts:{stats.gauges.g}"    7465
 *   HGET "switchyard:latest:{9}" stats.gauges.g           7465 % 16 = 9
 * and its series directly (redis-cli -c follows the redirect):
 *   ZRANGEBYSCORE "switchyard:ts:{stats.gauges.g}" 1700000000 +inf
 * Every name and every latest value: SSCAN / HGETALL the clusterGroups keys
 * KEYnames:{0} ... KEYnames:{15}.  clusterGroups = 1 keeps one hash and one
 * set (on one master); changing clusterGroups leaves names already indexed
 * in their old group.  A prefix must not contain '{' in cluster mode (it
 * would become the hash tag and put every key in one slot).
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
 * into blocks of up to BLOCK_METRICS metrics of one flush, and a block into
 * operations (below); their commands are pipelined, and the block is done
 * when every reply is in.  One server is written to as a cluster of one
 * node with one group: the same operations, queues and replies, with the
 * one-server keys, and no redirects (an error reply is an error).  At most
 * `maxPending` metrics are awaiting replies; the rest, and everything
 * written while disconnected, waits in a queue of at most
 * `maxQueueMetrics` metrics (older data first; new data beyond the bound
 * is dropped and counted while Redis is down or not answering; while it
 * answers, a batch that does not fit waits instead: see must_wait).  A
 * broken connection puts its unanswered commands back at the head of the
 * queue, and a new connection replays the queue before anything newer.
 *
 * In cluster mode: the slot map comes from CLUSTER SLOTS, asked of a seed
 * (`nodes`, or host/port) and then of any connected master (a seed that
 * serves no slot is not reconnected after a failure while a map is known;
 * it is tried again when no connected node can give the map); it is loaded
 * again every clusterRefreshMs, and (at most once a second) after a MOVED,
 * a CLUSTERDOWN, an unserved slot, or the loss of a master.  There is one
 * connection per master, each with the reconnect, backoff, handshake and
 * stall logic of the one-server mode, and its own queue.  A block is cut
 * into operations: one per metric (its series commands) and one per group
 * present in the block (the group's index commands, and its XADDs); each
 * goes to the queue of the master owning its slot and is pipelined there
 * (maxPending metrics' worth awaiting replies per master).  The queue of a
 * master that is down or busy keeps at most maxQueueMetrics metrics' worth
 * of new ops (a series op counts one, a group op the metrics it indexes;
 * ops put back after a lost connection or a redirect are always taken);
 * beyond it that master's share of new data is dropped while the other
 * masters go on.  Ops whose slot no master serves wait, bounded the same
 * way, for the next map.  Replies:
 *   -MOVED slot host:port   the slot map entry is updated (connecting to
 *                           the new master if need be), the command is sent
 *                           there, and a full reload is asked for
 *   -ASK slot host:port     ASKING then the command on that node, once,
 *                           without touching the map
 *   -TRYAGAIN, -CLUSTERDOWN, -LOADING, -MASTERDOWN
 *                           sent again later (backoff from reconnectMinMs
 *                           to reconnectMaxMs, reset by a success)
 *   -READONLY               (a master turned replica) sent again after
 *                           the next map load
 * An operation redirected MAX_REDIRECTS (16) times is given up (dropped).
 * Only the commands redirected are sent again, except a group's XADDs,
 * which go again together (a stream entry may repeat).  An operation sent
 * again after a redirect may land after a newer flush's for the same key:
 * the latest value can then be one flush old until the next flush.  The
 * number of MOVED and ASK redirects followed is logged (at most every 10
 * s while they happen, and at close).  A metric counts as sent when all of
 * its commands and its groups' were answered without an error, as
 * dropped when any of them was given up.
 *
 * Statistics: sent = metrics all of whose commands were answered without
 * an error; queued = metrics waiting in the queue (pending() adds those
 * awaiting replies; in cluster mode, metrics with any operation queued);
 * dropped = the queue was full, or Redis answered an error for one of the
 * metric's commands (Redis refusing the data, e.g. WRONGTYPE or OOM, so it
 * is not retried), or still queued at close; errors = error replies,
 * failed handshakes, lost or stalled connections; reconnects = connection
 * attempts after a failure; connected = 1 when connected (in cluster mode:
 * a slot map is loaded and every master in it is connected).
 *
 * Without cluster = true, Redis Cluster redirections (-MOVED) are error
 * replies.
 *
 * hiredis 0.14 has no timeouts in its async API, so this sink keeps its
 * own: connectTimeoutMs covers resolve, connect and the handshake (AUTH,
 * SELECT, PING); stallTimeoutMs drops a connection on which commands are
 * outstanding but no reply has arrived for that long.
 *
 * Settings:
 *   host              address, name, or /path of a unix socket (127.0.0.1)
 *   port              (default 6379)
 *   cluster           Redis Cluster mode           (default false)
 *   nodes             cluster seeds: a list of "HOST:PORT" (or one such
 *                     string); default host:port
 *   clusterGroups     index groups, 1 to 16384     (default 16)
 *   clusterRefreshMs  slot map reload period       (default 30000)
 *   username          for AUTH username password (Redis 6 ACLs; optional)
 *   password          AUTH on connect when set
 *   database          SELECT on connect when not 0 (default 0; cluster: 0)
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
#include "lib/backoff.h"
#include "lib/pace.h"
#include "lib/settings.h"

#define BLOCK_METRICS 256      /* metrics per block (one pipelined group) */
#define LOG_EVERY_MS 10000
#define MAX_ADDRS 8
#define NUM_LEN 32             /* format_number's buffer */
#define NSLOTS 16384           /* Redis Cluster hash slots */
#define MAX_NODES 1000         /* known cluster nodes (seeds + masters) */
#define RELOAD_MIN_MS 1000     /* slot map reloads asked for by errors */
#define MAX_REDIRECTS 16       /* per operation, against redirect loops */

typedef struct redis_sink redis_sink;
typedef struct node node;
typedef struct op op;

/* One queued or in-flight group of metrics, all of one flush, copied with
 * their names into one allocation. */
typedef struct block {
    struct block *next;
    int64_t ts;
    uint32_t count;
    size_t size;          /* bytes allocated, for SY_STAT_QUEUED_BYTES */
    double *values;
    uint32_t *name_off;
    uint32_t *name_len;
    uint8_t *bad;         /* per metric: one of its commands failed */
    char *names;
    /* once dispatched */
    op *ops;              /* series ops [0, count), then group ops */
    uint32_t *order;      /* metric indexes grouped by group */
    uint32_t nops;
    uint32_t ops_left;    /* ops not finished */
    uint32_t ops_queued;  /* ops in a node's queue or in limbo */
    struct block *lprev, *lnext; /* the list of dispatched blocks */
} block;

/* The commands of one metric's series, or of one group's index entries
 * for the metrics of one block in that group.  All its keys are in one
 * slot.  One server is a cluster of one node with one group: a block is
 * one group op and a series op per metric, all for that node. */
enum op_kind { OP_SERIES, OP_GROUP };
/* command bits: series */
#define C_ZADD 0
#define C_ZREM 1
#define C_EXPIRE 2
/* command bits: group */
#define C_HLATEST 0
#define C_HTS 1
#define C_SADD 2
#define C_XADD 3              /* all the group's XADDs */

struct op {
    op *next;                 /* in a node's queue or in limbo */
    block *blk;
    uint32_t index;           /* series: the metric; group: start in order[] */
    uint32_t len;             /* metrics covered: 1, or the group's count */
    uint32_t cost;            /* metrics' worth against maxPending and the
                                 node's queue: len (one server: a group op
                                 costs 0, so a block costs its metrics) */
    uint32_t group;
    uint32_t issued, replies; /* commands written / replies in, this send */
    node *ask_node;           /* -ASK target seen in this send */
    uint16_t slot;
    uint8_t kind;
    uint8_t want;             /* command bits to send next */
    uint8_t sent;             /* command bits of the current send */
    uint8_t redo;             /* command bits to send again */
    uint8_t asking;           /* next send: ASKING before each command */
    uint8_t retry;            /* TRYAGAIN, CLUSTERDOWN, ... seen in this send;
                                 in limbo: waits for the backoff, not the map */
    uint8_t reroute;          /* READONLY seen: wait for the next map */
    uint8_t lost;             /* the connection broke during this send */
    uint8_t redirected;       /* -MOVED or -ASK seen in this send */
    uint8_t hops;             /* sends redirected */
};

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

/* One server and the connection to it: the only one, or a cluster node. */
struct node {
    redis_sink *r;
    node *next;               /* the sink's list of nodes */
    char *addr;
    int port;
    int addr_is_numeric, addr_is_path;
    int is_seed;              /* from the settings: never forgotten */
    int dormant;              /* a seed serving nothing: not reconnecting */
    uint32_t owned;           /* cluster: slots it serves in the map */
    uint32_t refs;            /* ops about to follow an -ASK to it */

    enum conn_state state;
    redisAsyncContext *ac;
    sy_timer *timer;          /* reconnect delay, connect timeout, stall check */
    int drop_requested;
    int handshake_left;       /* handshake replies still expected */
    int handshake_failed;
    unsigned attempts;        /* failures since the last good connection */
    int ever_connected;       /* a connection was attempted */
    int ever_ready;
    resolver *res;
    sy_watch *res_watch;
    char peer[INET6_ADDRSTRLEN + 8];   /* what we connect to, for messages */
    size_t cmds_out;          /* commands awaiting replies */
    uint64_t last_progress;   /* monotonic ms of the last reply */
    size_t requeued;          /* metrics put back since the last connect */
    pace pace;                /* whether a batch waits for its queue */

    /* operations waiting for this node, oldest first */
    op *qhead, *qtail;
    op *requeue_at;           /* put the next op sent back after this one */
    size_t queued;            /* metrics' worth in the queue */
    size_t outstanding;       /* metrics' worth awaiting replies */
    int pumping;              /* node_pump is running: do not enter it again */

    limiter conn_log;         /* connect and handshake failures */
    limiter lost_log;         /* connections lost or stalled */
    int said_down;            /* a failure was logged: log the next "connected" */
};

struct redis_sink {
    const sy_host_api *api;
    sy_host *host;
    int closed;
    int checking;       /* a settings check: judge everything, start nothing */

    /* settings */
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
    int cluster;
    uint32_t groups;
    uint64_t refresh_ms;

    node *nodes;              /* every node; one without cluster */
    size_t nnodes;
    node *single;             /* the node without cluster */
    uint64_t rng;

    /* blocks not cut into ops yet: one server, those its node has no room
     * for; cluster, those waiting for the first map */
    block *qhead, *qtail;     /* oldest first */
    size_t queued;            /* metrics in the queue */
    size_t queued_bytes;
    size_t outstanding;       /* metrics in dispatched blocks not finished */

    /* cluster (gstamp and gidx also for one server, with one group) */
    node **slots;             /* the slot map: the master of each slot */
    node **newslots;          /* scratch for a reload */
    uint16_t *gslot;          /* the slot of each group's keys */
    uint32_t *gstamp, *gidx;  /* scratch for cutting a block into groups */
    uint32_t stamp;
    int map_ready;            /* a map was loaded */
    int fetching;             /* CLUSTER SLOTS awaiting its reply */
    node *fetch_node;
    int reload_wanted;        /* asked for while fetching */
    uint64_t last_fetch;
    uint64_t map_timer_at;    /* when the map timer fires (monotonic ms) */
    sy_timer *map_timer;      /* reloads, and forgetting unused nodes */
    unsigned fetch_rr;
    op *lhead, *ltail;        /* limbo: ops with no master, or to retry */
    size_t limbo;             /* metrics' worth in limbo */
    int limbo_armed;
    sy_timer *limbo_timer;
    unsigned retry_attempts;
    block *live;              /* dispatched blocks */
    size_t cq_metrics, cq_bytes;  /* blocks with an op queued */
    uint64_t moved, asked, map_loads;
    uint16_t crctab[256];

    /* scratch for building commands */
    const char **argv;
    size_t *argvlen;
    char (*nums)[NUM_LEN];
    char *keybuf;
    size_t keycap;

    /* bounded logging */
    limiter err_log;          /* error replies */
    limiter drop_log;         /* queue full (counts metrics) */
    limiter redir_log;        /* cluster redirects followed */
    limiter retry_log;        /* TRYAGAIN, CLUSTERDOWN, ... */
    limiter map_log;          /* slot map changes */
    limiter map_err_log;      /* slot map failures */
};

static const char *const redis_settings[] = {
    "host", "port", "username", "password", "database", "prefix", "retention", "stream",
    "streamMaxLen", "maxPending", "maxQueueMetrics", "stallTimeoutMs", "connectTimeoutMs",
    "reconnectMinMs", "reconnectMaxMs", "cluster", "nodes", "clusterGroups",
    "clusterRefreshMs", NULL
};

static void start_connect(node *nd);
static void node_pump(node *nd);
static void pump_all(redis_sink *r);
static void request_reload(redis_sink *r);
static void update_connected(redis_sink *r);
static void dispatch_block(redis_sink *r, block *blk);

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
    r->api->stat_set(r->host, SY_STAT_QUEUED, (int64_t)(r->queued + r->cq_metrics));
    r->api->stat_set(r->host, SY_STAT_QUEUED_BYTES, (int64_t)(r->queued_bytes + r->cq_bytes));
}

/* The key "<prefix><mid><name><tail>" in the scratch buffer; NULL when out
 * of memory. */
static const char *make_key(redis_sink *r, const char *mid, const char *name, size_t name_len,
                            const char *tail, size_t *len)
{
    size_t ml = strlen(mid), tl = strlen(tail);
    size_t need = r->prefix_len + ml + name_len + tl + 1;
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
    memcpy(r->keybuf + r->prefix_len + ml + name_len, tail, tl);
    *len = need - 1;
    r->keybuf[*len] = '\0';
    return r->keybuf;
}

/* A group's key, "<prefix><what>:{G}". */
static const char *group_key(redis_sink *r, const char *what, uint32_t g, size_t *len)
{
    char mid[48];
    snprintf(mid, sizeof mid, "%s:{%u}", what, (unsigned)g);
    return make_key(r, mid, "", 0, "", len);
}

/* ------------------------------------------------------------------ */
/* Hash slots                                                           */
/* ------------------------------------------------------------------ */

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, the cluster
 * specification's checksum. */
static void crc16_init(redis_sink *r)
{
    for (unsigned i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (int j = 0; j < 8; j++)
            c = (uint16_t)((c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1);
        r->crctab[i] = c;
    }
}

static uint16_t crc16(const redis_sink *r, const char *s, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++)
        crc = (uint16_t)((crc << 8) ^ r->crctab[((crc >> 8) ^ (uint8_t)s[i]) & 0xff]);
    return crc;
}

/* The slot of a key: only the part between the first '{' and the next '}'
 * is hashed when there is such a part and it is not empty. */
static uint16_t key_slot(const redis_sink *r, const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close && close > key + from)
            return crc16(r, key + from, (size_t)(close - key - from)) & (NSLOTS - 1);
    }
    return crc16(r, key, len) & (NSLOTS - 1);
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

static void block_free(block *blk)
{
    free(blk->ops); /* the ops and order[] share one allocation */
    free(blk);
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

/* ------------------------------------------------------------------ */
/* Operations and their queues                                          */
/* ------------------------------------------------------------------ */

static void note_error_reply(redis_sink *r, const redisReply *rep)
{
    r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
    limited(r, &r->err_log, SY_LOG_WARN, "Redis answered an error",
            rep->str ? rep->str : "(no text)");
}

static void set_arg(redis_sink *r, int i, const char *s, size_t len)
{
    r->argv[i] = s;
    r->argvlen[i] = len;
}

/* A metric's series key: KEYts:NAME, or KEYts:{NAME} in a cluster. */
static const char *series_key(redis_sink *r, const block *blk, uint32_t i, size_t *len)
{
    const char *name = blk->names + blk->name_off[i];
    return r->cluster ? make_key(r, "ts:{", name, blk->name_len[i], "}", len)
                      : make_key(r, "ts:", name, blk->name_len[i], "", len);
}

/* An index key: KEYlatest, ..., or KEYlatest:{G}, ... in a cluster. */
static const char *index_key(redis_sink *r, const char *what, uint32_t g, size_t *len)
{
    return r->cluster ? group_key(r, what, g, len) : make_key(r, what, "", 0, "", len);
}

static uint8_t op_all_bits(const redis_sink *r, int kind)
{
    if (kind == OP_SERIES)
        return (1u << C_ZADD) | (1u << C_ZREM) | (1u << C_EXPIRE);
    return (uint8_t)((1u << C_HLATEST) | (1u << C_HTS) | (1u << C_SADD) |
                     (r->stream ? 1u << C_XADD : 0u));
}

/* Which command of the current send the k-th reply answers; *sub is the
 * XADD's position among the group's members. */
static int op_cmd_at(const op *o, uint32_t k, uint32_t *sub)
{
    *sub = 0;
    for (int b = 0; b < 4; b++) {
        if (!(o->sent & (1u << b)))
            continue;
        uint32_t c = (o->kind == OP_GROUP && b == C_XADD) ? o->len : 1;
        if (k < c) {
            *sub = k;
            return b;
        }
        k -= c;
    }
    return 0; /* not reached: replies never outnumber commands */
}

/* The op's metrics are given up on (counted as dropped when the block is
 * finished). */
static void op_mark_bad(op *o)
{
    block *blk = o->blk;
    if (o->kind == OP_SERIES)
        blk->bad[o->index] = 1;
    else
        for (uint32_t j = 0; j < o->len; j++)
            blk->bad[blk->order[o->index + j]] = 1;
}

static void block_finish(redis_sink *r, block *blk)
{
    if (blk->lprev)
        blk->lprev->lnext = blk->lnext;
    else
        r->live = blk->lnext;
    if (blk->lnext)
        blk->lnext->lprev = blk->lprev;
    r->outstanding -= blk->count;
    size_t failed = 0;
    for (uint32_t i = 0; i < blk->count; i++)
        failed += blk->bad[i];
    if (blk->count > failed) {
        r->api->stat_add(r->host, SY_STAT_SENT, (int64_t)(blk->count - failed));
        r->retry_attempts = 0;
    }
    if (!r->cluster)
        r->single->attempts = 0; /* the server takes data: the next failure starts the backoff anew */
    if (failed)
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)failed);
    block_free(blk);
}

/* Every command of the op was answered (or given up): the op is finished,
 * and perhaps its block.  Never touch the op afterwards. */
static void op_done(redis_sink *r, op *o)
{
    block *blk = o->blk;
    if (--blk->ops_left == 0)
        block_finish(r, blk);
}

static void op_drop(redis_sink *r, op *o, const char *where, size_t queued)
{
    char text[200];
    snprintf(text, sizeof text, "%s: %zu metrics' worth queued (maxQueueMetrics %zu)", where,
             queued, r->max_queue);
    limited_n(r, &r->drop_log, SY_LOG_WARN, "metrics dropped", text, o->len);
    op_mark_bad(o);
    op_done(r, o);
}

/* An op enters or leaves a queue (a node's or limbo): the block counts as
 * queued while any of its ops is. */
static void op_q_enter(redis_sink *r, op *o)
{
    block *blk = o->blk;
    if (blk->ops_queued++ == 0) {
        r->cq_metrics += blk->count;
        r->cq_bytes += blk->size;
    }
}

static void op_q_leave(redis_sink *r, op *o)
{
    block *blk = o->blk;
    if (--blk->ops_queued == 0) {
        r->cq_metrics -= blk->count;
        r->cq_bytes -= blk->size;
    }
}

/* A dormant seed is needed again (it serves slots, or ops wait for it,
 * or no other node can give the map): connect now. */
static void node_wake(node *nd)
{
    if (!nd->dormant || nd->r->closed)
        return;
    nd->dormant = 0;
    nd->r->api->timer_start(nd->timer, 0);
}

static void nq_append(node *nd, op *o)
{
    o->next = NULL;
    if (nd->qtail)
        nd->qtail->next = o;
    else
        nd->qhead = o;
    nd->qtail = o;
    nd->queued += o->cost;
    op_q_enter(nd->r, o);
    node_wake(nd);
}

/* An op sent before (lost, redirected, retried) goes before the newer
 * ones, behind those put back before it. */
static void nq_requeue(node *nd, op *o)
{
    if (nd->requeue_at) {
        o->next = nd->requeue_at->next;
        nd->requeue_at->next = o;
        if (nd->qtail == nd->requeue_at)
            nd->qtail = o;
    } else {
        o->next = nd->qhead;
        nd->qhead = o;
        if (!nd->qtail)
            nd->qtail = o;
    }
    nd->requeue_at = o;
    nd->queued += o->cost;
    op_q_enter(nd->r, o);
    node_wake(nd);
}

static op *nq_pop(node *nd)
{
    op *o = nd->qhead;
    if (!o)
        return NULL;
    nd->qhead = o->next;
    if (!nd->qhead)
        nd->qtail = NULL;
    if (nd->requeue_at == o)
        nd->requeue_at = NULL;
    o->next = NULL;
    nd->queued -= o->cost;
    op_q_leave(nd->r, o);
    return o;
}

static void nq_push_front(node *nd, op *o)
{
    o->next = nd->qhead;
    nd->qhead = o;
    if (!nd->qtail)
        nd->qtail = o;
    nd->queued += o->cost;
    op_q_enter(nd->r, o);
}

static void arm_limbo(redis_sink *r, int retry)
{
    if (r->closed || r->limbo_armed)
        return;
    uint64_t d = 1000;
    if (retry) {
        d = r->reconnect_min_ms;
        for (unsigned i = 0; i < r->retry_attempts && d < r->reconnect_max_ms; i++)
            d *= 2;
        if (d > r->reconnect_max_ms)
            d = r->reconnect_max_ms;
        r->retry_attempts++;
    }
    r->limbo_armed = 1;
    r->api->timer_start(r->limbo_timer, d);
}

/* Ops that cannot go anywhere now: no master serves their slot (they go
 * again after the next map load), or the cluster said to try again (after
 * the backoff).  Bounded like a node's queue. */
static void limbo_add(redis_sink *r, op *o, int retry)
{
    o->retry = (uint8_t)retry;
    if (r->limbo + o->len > r->max_queue) {
        op_drop(r, o, "waiting for the cluster", r->limbo);
        return;
    }
    o->next = NULL;
    if (r->ltail)
        r->ltail->next = o;
    else
        r->lhead = o;
    r->ltail = o;
    r->limbo += o->len;
    op_q_enter(r, o);
    arm_limbo(r, retry);
}

/* The node an op goes to: the master of its slot, or the one server. */
static node *op_target(redis_sink *r, const op *o)
{
    return r->cluster ? r->slots[o->slot] : r->single;
}

/* An op that was sent before goes to the master of its slot, ahead of
 * newer ops there. */
static void route_again(redis_sink *r, op *o)
{
    node *t = op_target(r, o);
    if (!t) {
        limbo_add(r, o, 0);
        request_reload(r);
        return;
    }
    nq_requeue(t, o);
    node_pump(t);
}

static int node_can_send(node *nd, size_t n);

/* A new op: to the master of its slot, unless that one's queue is full
 * (one server: its blocks were bounded before they were cut into ops). */
static void route_new(redis_sink *r, op *o)
{
    node *t = op_target(r, o);
    if (!t) {
        limbo_add(r, o, 0);
        request_reload(r);
        return;
    }
    int direct = !t->qhead && node_can_send(t, o->cost);
    if (!direct && r->cluster && t->queued + o->cost > r->max_queue) {
        op_drop(r, o, t->peer[0] ? t->peer : t->addr, t->queued);
        return;
    }
    nq_append(t, o);
    if (direct)
        node_pump(t); /* only sends: the op finishes later, in its replies */
}

static void on_limbo_timer(void *arg)
{
    redis_sink *r = arg;
    r->limbo_armed = 0;
    op *o = r->lhead;
    r->lhead = r->ltail = NULL;
    r->limbo = 0;
    while (o) {
        op *next = o->next;
        op_q_leave(r, o);
        route_again(r, o);
        o = next;
    }
    update_queue_stats(r);
}

static void on_op_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* One command of an op, after ASKING when the op follows an -ASK. */
static int op_issue(node *nd, op *o, int argc, int asking)
{
    redis_sink *r = nd->r;
    if (asking) {
        const char *a[] = { "ASKING" };
        size_t al[] = { 6 };
        if (redisAsyncCommandArgv(nd->ac, NULL, NULL, 1, a, al) != REDIS_OK)
            return -1;
    }
    if (redisAsyncCommandArgv(nd->ac, on_op_reply, o, argc, r->argv, r->argvlen) != REDIS_OK)
        return -1;
    if (nd->cmds_out++ == 0)
        nd->last_progress = now_ms(r);
    o->issued++;
    return 0;
}

/* Writes the op's wanted commands (see the cluster schema at the top).  0
 * when they went out (or some did: the rest is sent again once the replies
 * are in); -1 when none did (the op is untouched). */
static int op_send(node *nd, op *o)
{
    redis_sink *r = nd->r;
    block *blk = o->blk;
    char ts[24], cutoff[24], ttl[24], maxlen[24], member[24 + 1 + NUM_LEN];
    size_t tslen = (size_t)snprintf(ts, sizeof ts, "%lld", (long long)blk->ts);
    size_t numlen[BLOCK_METRICS];
    const char *key;
    size_t klen;
    uint8_t bits = o->want, done = 0;
    int asking = o->asking;

    o->sent = bits;
    o->want = 0;
    o->asking = 0;
    o->issued = o->replies = 0;
    o->redo = o->retry = o->reroute = o->lost = o->redirected = 0;
    o->ask_node = NULL;

    if (o->kind == OP_SERIES) {
        uint32_t i = o->index;
        size_t cutlen = (size_t)snprintf(cutoff, sizeof cutoff, "%lld",
                                         (long long)(blk->ts - r->retention));
        size_t ttllen = (size_t)snprintf(ttl, sizeof ttl, "%lld",
                                         (long long)(2 * r->retention));
        numlen[0] = r->api->format_number(blk->values[i], r->nums[0]);
        key = series_key(r, blk, i, &klen);
        if (!key)
            goto fail;
        memcpy(member, ts, tslen);
        member[tslen] = ':';
        memcpy(member + tslen + 1, r->nums[0], numlen[0]);
        set_arg(r, 1, key, klen);
        if (bits & (1u << C_ZADD)) {
            set_arg(r, 0, "ZADD", 4);
            set_arg(r, 2, ts, tslen);
            set_arg(r, 3, member, tslen + 1 + numlen[0]);
            if (op_issue(nd, o, 4, asking) < 0)
                goto fail;
            done |= 1u << C_ZADD;
        }
        if (bits & (1u << C_ZREM)) {
            set_arg(r, 0, "ZREMRANGEBYSCORE", 16);
            set_arg(r, 2, "-inf", 4);
            set_arg(r, 3, cutoff, cutlen);
            if (op_issue(nd, o, 4, asking) < 0)
                goto fail;
            done |= 1u << C_ZREM;
        }
        if (bits & (1u << C_EXPIRE)) {
            set_arg(r, 0, "EXPIRE", 6);
            set_arg(r, 2, ttl, ttllen);
            if (op_issue(nd, o, 3, asking) < 0)
                goto fail;
            done |= 1u << C_EXPIRE;
        }
    } else {
        const uint32_t *mem = blk->order + o->index;
        uint32_t n = o->len, j;
        for (j = 0; j < n; j++)
            numlen[j] = r->api->format_number(blk->values[mem[j]], r->nums[j]);
        if (bits & (1u << C_HLATEST)) {
            if (!(key = index_key(r, "latest", o->group, &klen)))
                goto fail;
            set_arg(r, 0, "HSET", 4);
            set_arg(r, 1, key, klen);
            for (j = 0; j < n; j++) {
                set_arg(r, 2 + 2 * (int)j, blk->names + blk->name_off[mem[j]],
                        blk->name_len[mem[j]]);
                set_arg(r, 3 + 2 * (int)j, r->nums[j], numlen[j]);
            }
            if (op_issue(nd, o, 2 + 2 * (int)n, asking) < 0)
                goto fail;
            done |= 1u << C_HLATEST;
        }
        if (bits & (1u << C_HTS)) {
            if (!(key = index_key(r, "latest_ts", o->group, &klen)))
                goto fail;
            set_arg(r, 0, "HSET", 4);
            set_arg(r, 1, key, klen);
            for (j = 0; j < n; j++) {
                set_arg(r, 2 + 2 * (int)j, blk->names + blk->name_off[mem[j]],
                        blk->name_len[mem[j]]);
                set_arg(r, 3 + 2 * (int)j, ts, tslen);
            }
            if (op_issue(nd, o, 2 + 2 * (int)n, asking) < 0)
                goto fail;
            done |= 1u << C_HTS;
        }
        if (bits & (1u << C_SADD)) {
            if (!(key = index_key(r, "names", o->group, &klen)))
                goto fail;
            set_arg(r, 0, "SADD", 4);
            set_arg(r, 1, key, klen);
            for (j = 0; j < n; j++)
                set_arg(r, 2 + (int)j, blk->names + blk->name_off[mem[j]],
                        blk->name_len[mem[j]]);
            if (op_issue(nd, o, 2 + (int)n, asking) < 0)
                goto fail;
            done |= 1u << C_SADD;
        }
        if (bits & (1u << C_XADD)) {
            size_t mllen = (size_t)snprintf(maxlen, sizeof maxlen, "%lld",
                                            (long long)r->stream_maxlen);
            if (!(key = index_key(r, "stream", o->group, &klen)))
                goto fail;
            set_arg(r, 0, "XADD", 4);
            set_arg(r, 1, key, klen);
            set_arg(r, 2, "MAXLEN", 6);
            set_arg(r, 3, "~", 1);
            set_arg(r, 4, maxlen, mllen);
            set_arg(r, 5, "*", 1);
            set_arg(r, 6, "name", 4);
            set_arg(r, 8, "value", 5);
            set_arg(r, 10, "ts", 2);
            set_arg(r, 11, ts, tslen);
            for (j = 0; j < n; j++) {
                set_arg(r, 7, blk->names + blk->name_off[mem[j]], blk->name_len[mem[j]]);
                set_arg(r, 9, r->nums[j], numlen[j]);
                if (op_issue(nd, o, 12, asking) < 0)
                    goto fail;
            }
            done |= 1u << C_XADD;
        }
    }
    nd->outstanding += o->cost;
    return 0;

fail:
    if (o->issued == 0) {
        o->want = bits;
        o->asking = (uint8_t)asking;
        o->sent = 0;
        return -1;
    }
    /* the callbacks of what went out finish the op; the rest goes again */
    o->redo |= (uint8_t)(bits & ~done);
    if (asking) {
        o->ask_node = nd;
        nd->refs++;
    }
    nd->outstanding += o->cost;
    nd->drop_requested = 1;
    r->api->timer_start(nd->timer, 0);
    return 0;
}

static int node_can_send(node *nd, size_t n)
{
    redis_sink *r = nd->r;
    return nd->state == ST_READY && !nd->drop_requested &&
           (nd->outstanding + n <= r->max_pending || nd->outstanding == 0);
}

/* Sends a node's queued ops, oldest first, while its connection has room;
 * one server: then cuts the sink's queued blocks into ops for it, as room
 * allows.  Ops routed meanwhile (by dispatch_block) only join the queue:
 * this loop sends them, so the pump never recurses. */
static void node_pump(node *nd)
{
    redis_sink *r = nd->r;
    if (nd->pumping)
        return;
    nd->pumping = 1;
    for (;;) {
        while (nd->qhead && node_can_send(nd, nd->qhead->cost)) {
            op *o = nq_pop(nd);
            if (op_send(nd, o) < 0) {
                nq_push_front(nd, o);
                nd->drop_requested = 1;
                r->api->timer_start(nd->timer, 0);
                break;
            }
        }
        if (r->cluster || nd->qhead || !r->qhead || !node_can_send(nd, r->qhead->count))
            break;
        dispatch_block(r, queue_pop(r));
    }
    nd->pumping = 0;
    update_queue_stats(r);
}

/* Sends what waits, on every node. */
static void pump_all(redis_sink *r)
{
    for (node *nd = r->nodes; nd; nd = nd->next)
        if (nd->qhead || (!r->cluster && r->qhead))
            node_pump(nd);
    update_queue_stats(r);
}

/* "host:port" (host may be empty, or [an IPv6 address]); 0 when valid. */
static int parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || p < 1 || p > 65535)
        return -1;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
        s++;
        hl -= 2;
    }
    if (hl >= hostlen)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static node *node_new(redis_sink *r, const char *addr, int port, int seed);

/* The node at host:port, made (and connecting) when not known yet. */
static node *node_get(redis_sink *r, const char *host, int port)
{
    for (node *nd = r->nodes; nd; nd = nd->next)
        if (nd->port == port && strcmp(nd->addr, host) == 0)
            return nd;
    if (r->nnodes >= MAX_NODES)
        return NULL;
    return node_new(r, host, port, 0);
}

static void map_set(redis_sink *r, unsigned slot, node *t)
{
    if (r->slots[slot])
        r->slots[slot]->owned--;
    r->slots[slot] = t;
    if (t) {
        t->owned++;
        node_wake(t);
    }
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* An error reply to command c of op o, from node nd. */
static void op_error(node *nd, op *o, int c, uint32_t sub, const redisReply *rep)
{
    redis_sink *r = nd->r;
    const char *s = rep->str ? rep->str : "";
    int ask = starts(s, "ASK ");

    if (!r->cluster) {
        /* one server: -MOVED and the rest are plain error replies */
    } else if ((ask || starts(s, "MOVED ")) && o->hops < MAX_REDIRECTS) {
        char *end, host[INET6_ADDRSTRLEN + 64];
        int port;
        unsigned long slot = strtoul(s + (ask ? 4 : 6), &end, 10);
        if (end != s + (ask ? 4 : 6) && *end == ' ' && slot < NSLOTS &&
            parse_hostport(end + 1, host, sizeof host, &port) == 0) {
            /* an empty host: the one this node was reached at */
            node *t = node_get(r, host[0] ? host : nd->addr, port);
            if (t) {
                char text[200];
                o->redo |= (uint8_t)(1u << c);
                o->redirected = 1;
                if (ask) {
                    if (o->ask_node)
                        o->ask_node->refs--;
                    o->ask_node = t;
                    t->refs++;
                    r->asked++;
                } else {
                    if (slot != o->slot)
                        o->slot = (uint16_t)slot; /* the cluster knows best */
                    if (r->slots[slot] != t)
                        map_set(r, (unsigned)slot, t);
                    r->moved++;
                    request_reload(r);
                }
                snprintf(text, sizeof text, "%s (%llu MOVED, %llu ASK in all)", s,
                         (unsigned long long)r->moved, (unsigned long long)r->asked);
                limited(r, &r->redir_log, SY_LOG_INFO, "following cluster redirects", text);
                return;
            }
        }
    } else if (starts(s, "READONLY")) {
        /* a master turned replica: its slots are elsewhere now */
        o->redo |= (uint8_t)(1u << c);
        o->reroute = 1;
        r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
        limited(r, &r->retry_log, SY_LOG_WARN, "cluster busy, writing again later", s);
        request_reload(r);
        return;
    } else if (starts(s, "TRYAGAIN") || starts(s, "CLUSTERDOWN") || starts(s, "LOADING") ||
               starts(s, "MASTERDOWN")) {
        o->redo |= (uint8_t)(1u << c);
        o->retry = 1;
        r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
        limited(r, &r->retry_log, SY_LOG_WARN, "cluster busy, writing again later", s);
        if (!starts(s, "TRYAGAIN"))
            request_reload(r);
        return;
    }
    note_error_reply(r, rep);
    if (o->kind == OP_GROUP && c == C_XADD)
        o->blk->bad[o->blk->order[o->index + sub]] = 1;
    else
        op_mark_bad(o);
}

/* Every reply of the op's send is in: done, or sent again where the
 * cluster said. */
static void op_settle(redis_sink *r, op *o)
{
    if (!o->redo) {
        op_done(r, o);
        return;
    }
    o->want = o->redo;
    o->redo = 0;
    if (o->redirected)
        o->hops++;
    if (o->ask_node) {
        node *t = o->ask_node;
        o->ask_node = NULL;
        t->refs--;
        o->asking = 1;
        nq_requeue(t, o);
        node_pump(t);
    } else if (o->retry) {
        limbo_add(r, o, 1);
    } else if (o->reroute) {
        limbo_add(r, o, 0);
    } else {
        route_again(r, o);
    }
}

static void on_op_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    node *nd = ac->data;
    redis_sink *r = nd->r;
    op *o = privdata;
    redisReply *rep = reply;
    uint32_t sub;
    int c = op_cmd_at(o, o->replies++, &sub);

    if (nd->cmds_out)
        nd->cmds_out--;
    if (!rep) {
        /* the connection is going: nothing more is written on it */
        o->lost = 1;
        o->redo |= (uint8_t)(1u << c);
        nd->drop_requested = 1;
    } else {
        nd->last_progress = now_ms(r);
        if (rep->type == REDIS_REPLY_ERROR)
            op_error(nd, o, c, sub, rep);
    }
    if (o->replies < o->issued)
        return;
    nd->outstanding -= o->cost;
    if (o->lost)
        nd->requeued += o->cost;
    op_settle(r, o);
    if (rep && ac == nd->ac && nd->state == ST_READY)
        node_pump(nd);
    update_queue_stats(r);
}

/* Cuts a block into ops and sends each to its master (see the schema);
 * one server: one group, and every op to it. */
static void dispatch_block(redis_sink *r, block *blk)
{
    uint32_t n = blk->count, i, k, ng = 0;
    uint16_t slot[BLOCK_METRICS];
    uint32_t grp[BLOCK_METRICS], gcount[BLOCK_METRICS], gnum[BLOCK_METRICS];
    uint32_t start[BLOCK_METRICS], pos[BLOCK_METRICS];

    if (++r->stamp == 0) {
        memset(r->gstamp, 0, r->groups * sizeof *r->gstamp);
        r->stamp = 1;
    }
    for (i = 0; i < n; i++) {
        slot[i] = 0;
        if (r->cluster) {
            size_t klen;
            const char *key = series_key(r, blk, i, &klen);
            if (!key)
                goto oom;
            slot[i] = key_slot(r, key, klen);
        }
        uint32_t g = grp[i] = slot[i] % r->groups;
        if (r->gstamp[g] != r->stamp) {
            r->gstamp[g] = r->stamp;
            r->gidx[g] = ng;
            gcount[ng] = 0;
            gnum[ng] = g;
            ng++;
        }
        gcount[r->gidx[g]]++;
    }
    op *ops = calloc(1, (n + ng) * sizeof(op) + n * sizeof(uint32_t));
    if (!ops)
        goto oom;
    blk->ops = ops;
    blk->order = (uint32_t *)(ops + n + ng);
    for (k = 0, i = 0; k < ng; k++) {
        start[k] = pos[k] = i;
        i += gcount[k];
    }
    for (i = 0; i < n; i++)
        blk->order[pos[r->gidx[grp[i]]]++] = i;
    for (i = 0; i < n; i++) {
        op *o = &ops[i];
        o->blk = blk;
        o->kind = OP_SERIES;
        o->slot = slot[i];
        o->index = i;
        o->len = o->cost = 1;
        o->want = op_all_bits(r, OP_SERIES);
    }
    for (k = 0; k < ng; k++) {
        op *o = &ops[n + k];
        o->blk = blk;
        o->kind = OP_GROUP;
        o->group = gnum[k];
        o->slot = r->cluster ? r->gslot[gnum[k]] : 0;
        o->index = start[k];
        o->len = gcount[k];
        o->cost = r->cluster ? o->len : 0;
        o->want = op_all_bits(r, OP_GROUP);
    }
    blk->nops = blk->ops_left = n + ng;
    blk->ops_queued = 0;
    blk->lprev = NULL;
    blk->lnext = r->live;
    if (r->live)
        r->live->lprev = blk;
    r->live = blk;
    r->outstanding += n;
    /* ops only finish here when dropped; the block is freed with its last
     * op, so nothing of it is touched after the last route_new.  The
     * groups' ops go first: a server gets a block's index commands, then
     * its series. */
    uint32_t nops = n + ng;
    for (k = 0; k < nops; k++)
        route_new(r, &ops[(k + n) % nops]);
    return;
oom:
    r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)n);
    limited_n(r, &r->drop_log, SY_LOG_WARN, "metrics dropped", "out of memory", n);
    block_free(blk);
}

/* ------------------------------------------------------------------ */
/* Cluster: the slot map                                                */
/* ------------------------------------------------------------------ */

static void arm_map_timer(redis_sink *r, uint64_t after)
{
    if (r->closed)
        return;
    uint64_t at = now_ms(r) + after;
    if (r->map_timer_at && r->map_timer_at <= at)
        return; /* already due earlier */
    r->map_timer_at = at;
    r->api->timer_start(r->map_timer, after);
}

/* A reload soon, at most one per RELOAD_MIN_MS. */
static void request_reload(redis_sink *r)
{
    if (!r->cluster || r->closed)
        return;
    if (r->fetching) {
        r->reload_wanted = 1;
        return;
    }
    uint64_t now = now_ms(r), next = r->last_fetch + RELOAD_MIN_MS;
    arm_map_timer(r, !r->last_fetch || next <= now ? 0 : next - now);
}

/* 1 when every master in the map is connected. */
static void update_connected(redis_sink *r)
{
    int ok = r->map_ready;
    if (!r->cluster) {
        ok = r->single->state == ST_READY;
    } else {
        for (node *nd = r->nodes; nd && ok; nd = nd->next)
            if (nd->owned && nd->state != ST_READY)
                ok = 0;
    }
    r->api->stat_set(r->host, SY_STAT_CONNECTED, ok);
}

/* Moves the ops a node holds for slots it no longer serves, and retries
 * limbo, after the map changed.  Ops following an -ASK stay put. */
static void reroute_all(redis_sink *r)
{
    op *moved = NULL, **mtail = &moved;
    for (node *nd = r->nodes; nd; nd = nd->next) {
        op *o = nd->qhead, *prev = NULL, *cursor = nd->requeue_at, *newcursor = NULL;
        nd->qhead = nd->qtail = NULL;
        while (o) {
            op *next = o->next;
            o->next = NULL;
            if (o->asking || r->slots[o->slot] == nd) {
                if (prev)
                    prev->next = o;
                else
                    nd->qhead = o;
                prev = nd->qtail = o;
                if (o == cursor)
                    newcursor = o;
            } else {
                if (o == cursor)
                    newcursor = prev;
                nd->queued -= o->cost;
                op_q_leave(r, o);
                *mtail = o;
                mtail = &o->next;
            }
            o = next;
        }
        nd->requeue_at = newcursor;
    }
    /* limbo: the ops that had no master; those told to try again wait for
     * their backoff */
    op *keep = NULL, *klast = NULL;
    for (op *o = r->lhead; o;) {
        op *next = o->next;
        o->next = NULL;
        if (o->retry) {
            if (klast)
                klast->next = o;
            else
                keep = o;
            klast = o;
        } else {
            r->limbo -= o->len;
            op_q_leave(r, o);
            *mtail = o;
            mtail = &o->next;
        }
        o = next;
    }
    r->lhead = keep;
    r->ltail = klast;
    for (op *o = moved; o;) {
        op *next = o->next;
        route_again(r, o);
        o = next;
    }
}

/* The reply to CLUSTER SLOTS, from node nd: [[start, end, [host, port,
 * id, ...], replicas...], ...].  1 when it was taken as the new map. */
static int apply_map(redis_sink *r, node *nd, const redisReply *rep)
{
    char why[300];
    if (rep->type != REDIS_REPLY_ARRAY) {
        snprintf(why, sizeof why, "%s", rep->type == REDIS_REPLY_ERROR && rep->str ? rep->str
                                                                                : "not a list");
        goto bad;
    }
    memset(r->newslots, 0, NSLOTS * sizeof *r->newslots);
    unsigned covered = 0;
    for (size_t e = 0; e < rep->elements; e++) {
        const redisReply *x = rep->element[e];
        if (x->type != REDIS_REPLY_ARRAY || x->elements < 3 ||
            x->element[0]->type != REDIS_REPLY_INTEGER ||
            x->element[1]->type != REDIS_REPLY_INTEGER ||
            x->element[2]->type != REDIS_REPLY_ARRAY || x->element[2]->elements < 2 ||
            x->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            x->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
            snprintf(why, sizeof why, "unexpected reply shape");
            goto bad;
        }
        long long from = x->element[0]->integer, to = x->element[1]->integer;
        long long port = x->element[2]->element[1]->integer;
        const char *host = x->element[2]->element[0]->str;
        if (from < 0 || to >= NSLOTS || from > to || port < 1 || port > 65535) {
            snprintf(why, sizeof why, "bad range %lld-%lld or port %lld", from, to, port);
            goto bad;
        }
        /* an empty or unknown endpoint: the address this node was reached at */
        if (!host[0] || strcmp(host, "?") == 0)
            host = nd->addr;
        node *t = node_get(r, host, (int)port);
        if (!t) {
            snprintf(why, sizeof why, "too many nodes or out of memory");
            goto bad;
        }
        for (long long s = from; s <= to; s++) {
            if (!r->newslots[s])
                covered++;
            r->newslots[s] = t;
        }
    }
    if (!covered) {
        snprintf(why, sizeof why, "no slot is served (is the cluster made?)");
        goto bad;
    }
    int changed = memcmp(r->newslots, r->slots, NSLOTS * sizeof *r->slots) != 0;
    int first = !r->map_ready;
    for (node *n = r->nodes; n; n = n->next)
        n->owned = 0;
    memcpy(r->slots, r->newslots, NSLOTS * sizeof *r->slots);
    unsigned masters = 0;
    for (unsigned s = 0; s < NSLOTS; s++)
        if (r->slots[s] && r->slots[s]->owned++ == 0) {
            masters++;
            node_wake(r->slots[s]);
        }
    r->map_loads++;
    r->map_ready = 1;
    if (first || changed) {
        char text[200];
        snprintf(text, sizeof text, "%u masters, %u of %u slots served (asked %s)", masters,
                 covered, NSLOTS, nd->peer);
        if (first)
            r->api->log(r->host, SY_LOG_INFO, "cluster slot map loaded: %s", text);
        else
            limited(r, &r->map_log, SY_LOG_INFO, "cluster slot map changed", text);
    }
    reroute_all(r);
    if (first) {
        block *blk;
        while ((blk = queue_pop(r)))
            dispatch_block(r, blk);
    }
    update_connected(r);
    pump_all(r);
    return 1;
bad:
    r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
    {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot load the cluster slot map from %s", nd->peer);
        limited(r, &r->map_err_log, SY_LOG_WARN, msg, why);
    }
    return 0;
}

static void on_slots(redisAsyncContext *ac, void *reply, void *privdata)
{
    node *nd = ac->data;
    redis_sink *r = nd->r;
    redisReply *rep = reply;
    if (nd->cmds_out)
        nd->cmds_out--;
    if (r->closed)
        return;
    r->fetching = 0;
    r->fetch_node = NULL;
    int ok = 0;
    if (rep) {
        nd->last_progress = now_ms(r);
        ok = apply_map(r, nd, rep);
    }
    r->map_timer_at = 0;
    arm_map_timer(r, ok && !r->reload_wanted ? r->refresh_ms : RELOAD_MIN_MS);
    r->reload_wanted = 0;
}

/* Asks a connected node (a master first, in turn) for the slot map. */
static void fetch_map(redis_sink *r)
{
    node *pick = NULL, *any = NULL;
    unsigned i = 0, want = r->fetch_rr++;
    size_t ready = 0;
    for (node *nd = r->nodes; nd; nd = nd->next)
        if (nd->state == ST_READY && !nd->drop_requested && nd->owned)
            ready++;
    for (node *nd = r->nodes; nd; nd = nd->next) {
        if (nd->state != ST_READY || nd->drop_requested)
            continue;
        if (!any)
            any = nd;
        if (nd->owned && i++ == want % (ready ? ready : 1))
            pick = nd;
    }
    if (!pick)
        pick = any;
    const char *argv[] = { "CLUSTER", "SLOTS" };
    size_t len[] = { 7, 5 };
    if (!pick || redisAsyncCommandArgv(pick->ac, on_slots, NULL, 2, argv, len) != REDIS_OK) {
        /* nothing connected: the seeds are needed again */
        for (node *nd = r->nodes; nd; nd = nd->next)
            node_wake(nd);
        arm_map_timer(r, 200);
        return;
    }
    if (pick->cmds_out++ == 0)
        pick->last_progress = now_ms(r);
    r->fetching = 1;
    r->fetch_node = pick;
    r->last_fetch = now_ms(r);
}

static void node_free(node *nd);

/* The map timer: forgets nodes that serve nothing and hold nothing, then
 * loads the map. */
static void on_map_timer(void *arg)
{
    redis_sink *r = arg;
    r->map_timer_at = 0;
    node **pp = &r->nodes;
    while (*pp) {
        node *nd = *pp;
        if (!nd->is_seed && !nd->owned && !nd->refs && !nd->qhead && !nd->outstanding &&
            !nd->cmds_out && r->fetch_node != nd) {
            *pp = nd->next;
            r->nnodes--;
            node_free(nd);
            continue;
        }
        pp = &nd->next;
    }
    if (r->fetching) {
        r->reload_wanted = 1;
        return;
    }
    fetch_map(r);
}

/* ------------------------------------------------------------------ */
/* The connection                                                       */
/* ------------------------------------------------------------------ */

static void schedule_reconnect(node *nd)
{
    redis_sink *r = nd->r;
    if (nd->state == ST_CLOSED)
        return;
    nd->state = ST_IDLE;
    nd->drop_requested = 0;
    update_connected(r);
    if (r->cluster && nd->is_seed && r->map_ready && !nd->owned && !nd->qhead && !nd->refs &&
        !nd->outstanding) {
        /* a seed the map does not need: back when nothing else answers */
        nd->dormant = 1;
        r->api->timer_stop(nd->timer);
        return;
    }
    nd->attempts++;
    uint64_t d = backoff_delay(nd->attempts, r->reconnect_min_ms, r->reconnect_max_ms, &r->rng);
    r->api->timer_start(nd->timer, d);
}

static void resolver_unref(resolver *res)
{
    if (atomic_fetch_sub(&res->refs, 1) == 1) {
        close(res->efd);
        free(res);
    }
}

/* Stops waiting for a resolution in progress; the thread finishes alone. */
static void resolver_abandon(node *nd)
{
    if (!nd->res)
        return;
    nd->r->api->watch_free(nd->res_watch);
    nd->res_watch = NULL;
    resolver_unref(nd->res);
    nd->res = NULL;
}

/* Closes the connection now (never from inside a hiredis callback): the
 * callbacks of unanswered blocks (or cluster ops) run with NULL replies and
 * queue them again. */
static void drop_connection(node *nd)
{
    redisAsyncContext *ac = nd->ac;
    resolver_abandon(nd);
    nd->ac = NULL;
    if (nd->state != ST_CLOSED)
        nd->state = ST_IDLE;
    update_connected(nd->r);
    if (ac)
        redisAsyncFree(ac);
    nd->cmds_out = 0;
}

/* A connection attempt or the connection itself failed: log it (bounded),
 * close what is left and try again after the backoff. */
static void connection_failed(node *nd, const char *why, int was_ready)
{
    redis_sink *r = nd->r;
    drop_connection(nd); /* first: it puts unanswered blocks back */
    if (was_ready) {
        char msg[300], text[400];
        r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
        snprintf(msg, sizeof msg, "connection to %s lost", nd->peer);
        snprintf(text, sizeof text, "%s; %zu unanswered metrics to be written again, "
                 "%zu queued in all", why, nd->requeued, nd->queued + (r->cluster ? 0 : r->queued));
        nd->said_down |= limited(r, &nd->lost_log, SY_LOG_WARN, msg, text);
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot connect to %s", nd->peer);
        nd->said_down |= limited(r, &nd->conn_log, SY_LOG_WARN, msg, why);
    }
    if (r->cluster && nd->owned)
        request_reload(r); /* a failover may have moved its slots */
    schedule_reconnect(nd);
}

static void become_ready(node *nd)
{
    redis_sink *r = nd->r;
    nd->state = ST_READY;
    nd->requeue_at = NULL;
    nd->requeued = 0;
    update_connected(r);
    /* the first connection, and the first after a logged failure: the
     * failure messages are bounded, so these are too */
    if (nd->said_down || !nd->ever_ready) {
        if (r->cluster)
            r->api->log(r->host, SY_LOG_INFO, "connected to cluster node %s; %zu metrics' worth "
                        "queued for it", nd->peer, nd->queued);
        else
            r->api->log(r->host, SY_LOG_INFO, "connected to %s, database %lld; %zu metrics "
                        "queued", nd->peer, (long long)r->database, r->queued + nd->queued);
    }
    nd->said_down = 0;
    nd->ever_ready = 1;
    nd->last_progress = now_ms(r);
    uint64_t period = r->stall_ms / 4;
    r->api->timer_start(nd->timer, period < 50 ? 50 : period > 1000 ? 1000 : period);
    if (r->cluster && !r->map_ready)
        request_reload(r);
    node_pump(nd);
}

/* Replies to AUTH, SELECT and PING.  Any error fails the handshake. */
static void on_handshake_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    node *nd = ac->data;
    redis_sink *r = nd->r;
    redisReply *rep = reply;
    const char *what = privdata;

    if (!rep || ac != nd->ac)
        return; /* the connection is going away; its owner deals with it */
    nd->last_progress = now_ms(r);
    if (rep->type == REDIS_REPLY_ERROR) {
        if (!nd->handshake_failed) {
            nd->handshake_failed = 1;
            r->api->stat_add(r->host, SY_STAT_ERRORS, 1);
            char msg[300];
            snprintf(msg, sizeof msg, "%s on %s failed", what, nd->peer);
            nd->said_down |= limited(r, &nd->conn_log, SY_LOG_ERROR, msg,
                                     rep->str ? rep->str : "");
        }
        nd->drop_requested = 1;
        r->api->timer_start(nd->timer, 0);
        return;
    }
    if (--nd->handshake_left == 0 && !nd->handshake_failed)
        become_ready(nd);
}

static void handshake_cmd(node *nd, const char *what, int argc, const char **argv)
{
    size_t len[4];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(nd->ac, on_handshake_reply, (void *)what, argc, argv, len) ==
        REDIS_OK)
        nd->handshake_left++;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    node *nd = ac->data;
    redis_sink *r = nd->r;
    if (ac != nd->ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context itself right after this callback */
        nd->ac = NULL;
        connection_failed(nd, ac->c.errstr[0] ? ac->c.errstr : "connect failed", 0);
        return;
    }
    char db[24];
    snprintf(db, sizeof db, "%lld", (long long)r->database);
    nd->handshake_left = 0;
    nd->handshake_failed = 0;
    if (r->password && r->username) {
        const char *argv[] = { "AUTH", r->username, r->password };
        handshake_cmd(nd, "AUTH", 3, argv);
    } else if (r->password) {
        const char *argv[] = { "AUTH", r->password };
        handshake_cmd(nd, "AUTH", 2, argv);
    }
    if (r->database) {
        const char *argv[] = { "SELECT", db };
        handshake_cmd(nd, "SELECT", 2, argv);
    }
    const char *argv[] = { "PING" };
    handshake_cmd(nd, "PING", 1, argv);
    if (!nd->handshake_left) {
        nd->drop_requested = 1;
        r->api->timer_start(nd->timer, 0);
    }
}

/* Called after hiredis has run every outstanding callback with NULL. */
static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    node *nd = ac->data;
    if (ac != nd->ac)
        return; /* we closed it ourselves */
    nd->ac = NULL;
    int was_ready = nd->state == ST_READY;
    nd->cmds_out = 0;
    connection_failed(nd, ac->c.errstr[0] ? ac->c.errstr : "closed", was_ready);
}

static void connect_to(node *nd, const char *ip)
{
    redis_sink *r = nd->r;
    redisAsyncContext *ac;
    if (nd->addr_is_path) {
        snprintf(nd->peer, sizeof nd->peer, "%s", nd->addr);
        ac = redisAsyncConnectUnix(nd->addr);
    } else {
        snprintf(nd->peer, sizeof nd->peer, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip,
                 nd->port);
        ac = redisAsyncConnect(ip, nd->port);
    }
    nd->state = ST_CONNECTING;
    if (!ac) {
        connection_failed(nd, "out of memory", 0);
        return;
    }
    if (ac->err) {
        char why[200];
        snprintf(why, sizeof why, "%s", ac->c.errstr);
        redisAsyncFree(ac);
        connection_failed(nd, why, 0);
        return;
    }
    ac->data = nd;
    if (redisLibeventAttach(ac, r->api->event_base(r->host)) != REDIS_OK) {
        redisAsyncFree(ac);
        connection_failed(nd, "cannot attach to the event loop", 0);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    nd->ac = ac;
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
    node *nd = arg;
    resolver *res = nd->res;
    uint64_t v;
    ssize_t rd = read(fd, &v, sizeof v);
    (void)rd;
    if (!res || nd->state != ST_RESOLVING ||
        !atomic_load_explicit(&res->done, memory_order_acquire))
        return;
    char ip[INET6_ADDRSTRLEN];
    int rc = res->rc, n = res->naddrs;
    if (n)
        memcpy(ip, res->addrs[nd->attempts % (unsigned)n], sizeof ip);
    resolver_abandon(nd);
    if (rc != 0 || n == 0) {
        snprintf(nd->peer, sizeof nd->peer, "%s:%d", nd->addr, nd->port);
        connection_failed(nd, rc ? gai_strerror(rc) : "no IPv4 or IPv6 address", 0);
        return;
    }
    connect_to(nd, ip);
}

/* Resolves the name in a thread; on_resolved continues on the loop. */
static void start_resolve(node *nd)
{
    redis_sink *r = nd->r;
    size_t hl = strlen(nd->addr);
    resolver *res = calloc(1, sizeof *res + hl + 1);
    const char *why = "out of memory";
    if (!res)
        goto fail;
    memcpy(res->host, nd->addr, hl + 1);
    atomic_init(&res->refs, 2);
    atomic_init(&res->done, 0);
    res->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (res->efd < 0) {
        why = strerror(errno);
        free(res);
        goto fail;
    }
    nd->res_watch = r->api->watch_new(r->host, res->efd, on_resolved, nd);
    if (!nd->res_watch) {
        close(res->efd);
        free(res);
        goto fail;
    }
    r->api->watch_set(nd->res_watch, SY_WATCH_READ);
    nd->res = res;
    nd->state = ST_RESOLVING;

    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t, &attr, resolve_thread, res);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        atomic_store(&res->refs, 1); /* no thread holds it */
        resolver_abandon(nd);
        why = strerror(e);
        goto fail;
    }
    return;
fail:
    snprintf(nd->peer, sizeof nd->peer, "%s:%d", nd->addr, nd->port);
    connection_failed(nd, why, 0);
}

static void start_connect(node *nd)
{
    redis_sink *r = nd->r;
    if (nd->ever_connected)
        r->api->stat_add(r->host, SY_STAT_RECONNECTS, 1);
    nd->ever_connected = 1;
    nd->drop_requested = 0;
    r->api->timer_start(nd->timer, r->connect_timeout_ms);
    if (nd->addr_is_numeric || nd->addr_is_path)
        connect_to(nd, nd->addr);
    else
        start_resolve(nd);
}

/* A node's timer: what it means depends on the state. */
static void on_timer(void *arg)
{
    node *nd = arg;
    redis_sink *r = nd->r;
    if (nd->drop_requested && nd->state != ST_IDLE) {
        connection_failed(nd, nd->handshake_failed ? "handshake failed"
                                                   : "hiredis refused a command",
                          nd->state == ST_READY);
        return;
    }
    switch (nd->state) {
    case ST_IDLE:
        start_connect(nd);
        break;
    case ST_RESOLVING:
    case ST_CONNECTING:
        connection_failed(nd, nd->state == ST_RESOLVING ? "timed out resolving the name"
                                                        : "timed out (connectTimeoutMs)", 0);
        break;
    case ST_READY: {
        uint64_t now = now_ms(r);
        if (nd->cmds_out && now - nd->last_progress >= r->stall_ms) {
            char why[120];
            snprintf(why, sizeof why, "no reply for %llu ms with %zu commands outstanding",
                     (unsigned long long)(now - nd->last_progress), nd->cmds_out);
            connection_failed(nd, why, 1);
            return;
        }
        uint64_t period = r->stall_ms / 4;
        r->api->timer_start(nd->timer, period < 50 ? 50 : period > 1000 ? 1000 : period);
        break;
    }
    case ST_CLOSED:
        break;
    }
}

/* A node, connecting as soon as the loop runs. */
static node *node_new(redis_sink *r, const char *addr, int port, int seed)
{
    node *nd = calloc(1, sizeof *nd);
    if (!nd)
        return NULL;
    nd->r = r;
    nd->port = port;
    nd->is_seed = seed;
    if (!(nd->addr = strdup(addr)) || !(nd->timer = r->api->timer_new(r->host, on_timer, nd))) {
        free(nd->addr);
        free(nd);
        return NULL;
    }
    unsigned char tmp[sizeof(struct in6_addr)];
    nd->addr_is_path = addr[0] == '/';
    nd->addr_is_numeric = inet_pton(AF_INET, addr, tmp) == 1 || inet_pton(AF_INET6, addr, tmp) == 1;
    if (nd->addr_is_numeric)
        snprintf(nd->peer, sizeof nd->peer, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
    else if (nd->addr_is_path)
        snprintf(nd->peer, sizeof nd->peer, "%s", addr);
    else
        snprintf(nd->peer, sizeof nd->peer, "%s:%d", addr, port);
    nd->state = ST_IDLE;
    /* append: seeds keep the order they were given in */
    node **pp = &r->nodes;
    while (*pp)
        pp = &(*pp)->next;
    *pp = nd;
    r->nnodes++;
    r->api->timer_start(nd->timer, 0);
    return nd;
}

/* Closes a node that is not in the list any more and holds no op. */
static void node_free(node *nd)
{
    redis_sink *r = nd->r;
    nd->state = ST_CLOSED;
    if (nd->timer)
        r->api->timer_free(nd->timer);
    nd->timer = NULL;
    resolver_abandon(nd);
    if (nd->ac) {
        redisAsyncContext *ac = nd->ac;
        nd->ac = NULL;
        redisAsyncFree(ac);
    }
    free(nd->addr);
    free(nd);
}

/* ------------------------------------------------------------------ */
/* The plugin                                                           */
/* ------------------------------------------------------------------ */

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
    while (r->nodes) {
        node *nd = r->nodes;
        r->nodes = nd->next;
        node_free(nd);
    }
    if (r->map_timer)
        r->api->timer_free(r->map_timer);
    if (r->limbo_timer)
        r->api->timer_free(r->limbo_timer);
    free(r->username);
    free(r->password);
    free(r->prefix);
    free(r->argv);
    free(r->argvlen);
    free(r->nums);
    free(r->keybuf);
    free(r->slots);
    free(r->newslots);
    free(r->gslot);
    free(r->gstamp);
    free(r->gidx);
    free(r);
}

/* One seed, "HOST:PORT"; -1 with err set. */
static int add_seed(redis_sink *r, const char *s, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (!s || parse_hostport(s, host, sizeof host, &port) < 0 || !host[0]) {
        snprintf(err, errlen, "setting 'nodes': \"%s\" is not HOST:PORT", s ? s : "(not a string)");
        return -1;
    }
    if (host[0] == '/') {
        snprintf(err, errlen, "setting 'nodes': cluster nodes are reached over TCP, not %s", host);
        return -1;
    }
    if (r->checking)
        return 0;
    for (node *nd = r->nodes; nd; nd = nd->next)
        if (nd->port == port && strcmp(nd->addr, host) == 0)
            return 0;
    if (!node_new(r, host, port, 1)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Cluster mode's settings and tables; -1 with err set. */
static int cluster_init(redis_sink *r, const char *addr, int port, char *err, size_t errlen)
{
    const sy_host_api *api = r->api;
    int64_t groups, refresh;
    if (int_setting(api, r->host, "clusterGroups", 16, 1, NSLOTS, &groups, err, errlen) ||
        int_setting(api, r->host, "clusterRefreshMs", 30000, 100, 86400000, &refresh, err,
                    errlen))
        return -1;
    if (r->database) {
        snprintf(err, errlen, "setting 'database' must be 0 with cluster = true (a cluster "
                 "has only database 0)");
        return -1;
    }
    if (strchr(r->prefix, '{')) {
        snprintf(err, errlen, "setting 'prefix' must not contain '{' with cluster = true (it "
                 "would be the hash tag of every key)");
        return -1;
    }
    int n = api->setting_list_len(r->host, "nodes");
    if (n == 0) {
        snprintf(err, errlen, "setting 'nodes' is an empty list");
        return -1;
    }
    if (n > 0) {
        for (int i = 0; i < n; i++)
            if (add_seed(r, api->setting_list_string(r->host, "nodes", i), err, errlen) < 0)
                return -1;
    } else {
        const char *one;
        int rc = api->setting_string(r->host, "nodes", NULL, &one);
        if (rc < 0) {
            snprintf(err, errlen, "setting 'nodes' must be a list of \"HOST:PORT\" strings");
            return -1;
        }
        if (rc == 0) {
            if (add_seed(r, one, err, errlen) < 0)
                return -1;
        } else {
            char seed[300];
            if (addr[0] == '/') {
                snprintf(err, errlen, "setting 'host': cluster nodes are reached over TCP");
                return -1;
            }
            snprintf(seed, sizeof seed, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
            if (add_seed(r, seed, err, errlen) < 0)
                return -1;
        }
    }
    if (r->checking)
        return 0;
    r->groups = (uint32_t)groups;
    r->refresh_ms = (uint64_t)refresh;
    r->slots = calloc(NSLOTS, sizeof *r->slots);
    r->newslots = calloc(NSLOTS, sizeof *r->newslots);
    r->gslot = calloc(r->groups, sizeof *r->gslot);
    r->gstamp = calloc(r->groups, sizeof *r->gstamp);
    r->gidx = calloc(r->groups, sizeof *r->gidx);
    r->map_timer = api->timer_new(r->host, on_map_timer, r);
    r->limbo_timer = api->timer_new(r->host, on_limbo_timer, r);
    if (!r->slots || !r->newslots || !r->gslot || !r->gstamp || !r->gidx || !r->map_timer ||
        !r->limbo_timer) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (uint32_t g = 0; g < r->groups; g++) {
        size_t klen;
        const char *key = group_key(r, "latest", g, &klen);
        if (!key) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        r->gslot[g] = key_slot(r, key, klen);
    }
    return 0;
}

/* init, and with state NULL the check: every setting is judged the same
 * way, and the check makes no node, timer or connection. */
static int redis_setup(const sy_host_api *api, sy_host *host, void **state, char *err,
                       size_t errlen)
{
    int64_t port, db, retention, maxlen, maxpend, maxq, stall;
    reconnect_settings rs;
    redis_sink *r;
    char *addr = NULL;

    if (SY_SINK_CHECK_API(api, format_number, err, errlen) != 0)
        return -1;
    if (!(r = calloc(1, sizeof *r))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->api = api;
    r->host = host;
    r->checking = !state;
    crc16_init(r);
    if (str_setting(api, host, "host", "127.0.0.1", &addr, err, errlen) ||
        str_setting(api, host, "username", NULL, &r->username, err, errlen) ||
        str_setting(api, host, "password", NULL, &r->password, err, errlen) ||
        str_setting(api, host, "prefix", "switchyard:", &r->prefix, err, errlen))
        goto fail;
    if (!addr[0]) {
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
    if (api->setting_bool(host, "cluster", 0, &r->cluster) < 0) {
        snprintf(err, errlen, "setting 'cluster' must be true or false");
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
        reconnect_settings_read(api, host, &rs, err, errlen))
        goto fail;
    r->database = db;
    r->prefix_len = strlen(r->prefix);
    r->retention = retention;
    r->stream_maxlen = maxlen;
    r->max_pending = (size_t)maxpend;
    r->max_queue = (size_t)maxq;
    r->stall_ms = (uint64_t)stall;
    r->connect_timeout_ms = rs.connect_timeout_ms;
    r->reconnect_min_ms = rs.min_ms;
    r->reconnect_max_ms = rs.max_ms;

    if (r->cluster) {
        if (cluster_init(r, addr, (int)port, err, errlen) < 0)
            goto fail;
    } else {
        r->groups = 1; /* one server: one group */
        const char *v;
        if (api->setting_list_len(host, "nodes") >= 0 ||
            api->setting_string(host, "nodes", NULL, &v) <= 0) {
            snprintf(err, errlen, "setting 'nodes' needs cluster = true");
            goto fail;
        }
    }
    if (r->checking) {
        free(addr);
        redis_free(r);
        return 0;
    }
    r->argv = calloc(2 + 2 * BLOCK_METRICS, sizeof *r->argv);
    r->argvlen = calloc(2 + 2 * BLOCK_METRICS, sizeof *r->argvlen);
    r->nums = calloc(BLOCK_METRICS, sizeof *r->nums);
    if (!r->cluster) {
        r->gstamp = calloc(1, sizeof *r->gstamp);
        r->gidx = calloc(1, sizeof *r->gidx);
    }
    if (!r->argv || !r->argvlen || !r->nums || !r->gstamp || !r->gidx) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    r->rng = backoff_seed(api->monotonic_ms(host), (uint64_t)(uintptr_t)r);
    r->drop_log.show_count = 1;
    r->redir_log.show_count = 1;
    api->stat_set(host, SY_STAT_CONNECTED, 0);

    /* the one node connects as soon as the loop runs */
    if (!r->cluster && !(r->single = node_new(r, addr, (int)port, 1))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    free(addr);
    *state = r;
    return 0;
fail:
    free(addr);
    redis_free(r);
    return -1;
}

static int redis_init(const sy_host_api *api, sy_host *host, void **state, char *err,
                      size_t errlen)
{
    return redis_setup(api, host, state, err, errlen);
}

static int redis_check(const sy_host_api *api, sy_host *host, char *err, size_t errlen)
{
    return redis_setup(api, host, NULL, err, errlen);
}

/*
 * A flush can be larger than maxQueueMetrics while Redis keeps up with it:
 * such a flush is paced (lib/pace.h).  A batch that does not fit the queue
 * of a connection that is ready and moving (a reply came within
 * PACE_STALL_MS, or nothing waits) is answered SY_RETRY before any of it
 * is taken; the host holds it (retryMaxMetrics) and offers it again as the
 * replies come in.  A Redis that is down or stopped answering gets what its
 * queue holds, and the rest is dropped, as before.  In cluster mode each
 * master is looked at with the whole batch counted against it, twice (its
 * series ops and its groups' ops), and nothing waits for a first map.
 */
static int node_must_wait(node *nd, uint64_t now, size_t queued, size_t need)
{
    return pace_wait(&nd->pace, now, nd->state == ST_READY && !nd->drop_requested,
                     nd->last_progress, queued, nd->r->max_queue, need);
}

static int must_wait(redis_sink *r, size_t n)
{
    uint64_t now = now_ms(r);
    if (!r->cluster)
        return node_must_wait(r->single, now, r->queued + r->single->queued, n);
    if (!r->map_ready)
        return 0;
    int wait = 0;
    for (node *nd = r->nodes; nd; nd = nd->next)
        if (nd->owned)
            wait |= node_must_wait(nd, now, nd->queued, 2 * n);
    return wait;
}

/*
 * Cuts the batch into blocks.  A block goes straight to the nodes (cut into
 * ops, each bounded by its node's queue) when a cluster has its map, or
 * when the one server has room; otherwise it waits in the sink's queue,
 * which keeps at most maxQueueMetrics metrics (the one server's queued ops
 * count too); the rest of the batch is dropped.
 */
static sy_status redis_write(void *state, const sy_metric_batch *b)
{
    redis_sink *r = state;
    node *one = r->cluster ? NULL : r->single;
    size_t i = 0, oom = 0;
    size_t per_block = r->max_pending < BLOCK_METRICS ? r->max_pending : BLOCK_METRICS;

    if (must_wait(r, b->count))
        return SY_RETRY;
    while (i < b->count) {
        size_t n = b->count - i < per_block ? b->count - i : per_block;
        int direct = one ? !r->qhead && !one->qhead && node_can_send(one, n) : r->map_ready;
        if (!direct) {
            size_t queued = r->queued + (one ? one->queued : 0);
            size_t room = r->max_queue > queued ? r->max_queue - queued : 0;
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
        if (direct)
            dispatch_block(r, blk);
        else
            queue_append(r, blk);
    }
    size_t dropped = b->count - i;
    if (dropped) {
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)dropped);
        char text[160];
        if (one)
            snprintf(text, sizeof text, "%zu queued (maxQueueMetrics %zu), %zu awaiting replies%s",
                     r->queued + one->queued, r->max_queue, one->outstanding,
                     oom ? ", out of memory" : "");
        else
            snprintf(text, sizeof text, "%zu queued before the slot map is known "
                     "(maxQueueMetrics %zu)%s", r->queued, r->max_queue,
                     oom ? ", out of memory" : "");
        limited_n(r, &r->drop_log, SY_LOG_WARN, "metrics dropped", text, dropped);
    }
    pump_all(r);
    return SY_OK;
}

static sy_status redis_flush(void *state, int final)
{
    redis_sink *r = state;
    pump_all(r);
    if (r->cluster) {
        update_connected(r);
        limited_flush(r, &r->redir_log, SY_LOG_INFO, "following cluster redirects");
        limited_flush(r, &r->retry_log, SY_LOG_WARN, "cluster busy, writing again later");
    }
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
    r->closed = 1;
    /* every connection first: unanswered ops and blocks come back to the
     * queues; no node sends any more (all are closed before any context is
     * freed, as ops lost on one may be routed to another) */
    for (node *nd = r->nodes; nd; nd = nd->next)
        nd->state = ST_CLOSED;
    for (node *nd = r->nodes; nd; nd = nd->next) {
        r->api->timer_free(nd->timer);
        nd->timer = NULL;
        resolver_abandon(nd);
        if (nd->ac) {
            redisAsyncContext *ac = nd->ac;
            nd->ac = NULL;
            redisAsyncFree(ac);
        }
    }
    size_t left = r->queued + r->outstanding;
    if (left) {
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)left);
        if (r->cluster)
            r->api->log(r->host, SY_LOG_WARN, "closing with %zu metrics not written to the "
                        "cluster: dropped", left);
        else
            r->api->log(r->host, SY_LOG_WARN, "closing with %zu metrics not written to %s: "
                        "dropped", left, r->single->peer[0] ? r->single->peer : r->single->addr);
    }
    if (r->cluster)
        r->api->log(r->host, SY_LOG_INFO, "cluster redirects followed: %llu MOVED, %llu ASK; "
                    "slot map loaded %llu times", (unsigned long long)r->moved,
                    (unsigned long long)r->asked, (unsigned long long)r->map_loads);
    while (r->qhead)
        free(queue_pop(r));
    while (r->live) {
        block *blk = r->live;
        r->live = blk->lnext;
        block_free(blk);
    }
    r->cq_metrics = r->cq_bytes = 0;
    update_queue_stats(r);
    r->api->stat_set(r->host, SY_STAT_CONNECTED, 0);
    redis_free(r);
}

SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "redis",
    .version = "1.1",
    .description = "latest values, per-metric time series and an optional stream in Redis "
                   "or a Redis Cluster",
    .settings = redis_settings,
    .init = redis_init,
    .check = redis_check,
    .write = redis_write,
    .write_samples = NULL,
    .flush = redis_flush,
    .pending = redis_pending,
    .close = redis_close,
};
