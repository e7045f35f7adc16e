/*
 * redis.h - the redis sink's own header, shared by its files (not part of
 * the plugin ABI).  What the sink does and the keys it writes: redis.c.
 *
 *   redis.c    settings, init, write, flush, close; the bounded log lines
 *   keys.c     key names and hash slots
 *   ops.c      blocks, operations and their queues, commands and replies
 *   slotmap.c  the cluster slot map
 *   conn.c     the connection to a node
 */
#ifndef SY_REDIS_SINK_H
#define SY_REDIS_SINK_H

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
    int handed_back;    /* take_back gave the queued and unanswered metrics
                           to the host's spool: nothing is pending any more */
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

/* redis.c */
uint64_t now_ms(redis_sink *r);
int limited_n(redis_sink *r, limiter *l, int level, const char *what, const char *text,
               uint64_t n);
int limited(redis_sink *r, limiter *l, int level, const char *what, const char *text);
void update_queue_stats(redis_sink *r);

/* keys.c */
const char *make_key(redis_sink *r, const char *mid, const char *name, size_t name_len,
                     const char *tail, size_t *len);
const char *group_key(redis_sink *r, const char *what, uint32_t g, size_t *len);
void crc16_init(redis_sink *r);
uint16_t key_slot(const redis_sink *r, const char *key, size_t len);

/* ops.c */
block *block_new(const sy_metric_batch *b, size_t from, size_t n);
void block_free(block *blk);
void queue_append(redis_sink *r, block *blk);
block *queue_pop(redis_sink *r);
void op_q_leave(redis_sink *r, op *o);
void node_wake(node *nd);
void route_again(redis_sink *r, op *o);
void on_limbo_timer(void *arg);
int node_can_send(node *nd, size_t n);
void node_pump(node *nd);
void pump_all(redis_sink *r);
void dispatch_block(redis_sink *r, block *blk);

/* slotmap.c */
int parse_hostport(const char *s, char *host, size_t hostlen, int *port);
node *node_get(redis_sink *r, const char *host, int port);
void map_set(redis_sink *r, unsigned slot, node *t);
void request_reload(redis_sink *r);
void update_connected(redis_sink *r);
void on_map_timer(void *arg);

/* conn.c */
void resolver_abandon(node *nd);
node *node_new(redis_sink *r, const char *addr, int port, int seed);
void node_free(node *nd);

#endif
