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
#include "redis.h"

static const char *const redis_settings[] = {
    "host", "port", "username", "password", "database", "prefix", "retention", "stream",
    "streamMaxLen", "maxPending", "maxQueueMetrics", "stallTimeoutMs", "connectTimeoutMs",
    "reconnectMinMs", "reconnectMaxMs", "cluster", "nodes", "clusterGroups",
    "clusterRefreshMs", NULL
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */
/* ------------------------------------------------------------------ */

uint64_t now_ms(redis_sink *r)
{
    return r->api->monotonic_ms(r->host);
}

/* Counts n events and logs when the last message is LOG_EVERY_MS old;
 * `text` (may be NULL) is kept as the latest example.  1 when it logged. */
int limited_n(redis_sink *r, limiter *l, int level, const char *what, const char *text,
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

int limited(redis_sink *r, limiter *l, int level, const char *what, const char *text)
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

void update_queue_stats(redis_sink *r)
{
    r->api->stat_set(r->host, SY_STAT_QUEUED, (int64_t)(r->queued + r->cq_metrics));
    r->api->stat_set(r->host, SY_STAT_QUEUED_BYTES, (int64_t)(r->queued_bytes + r->cq_bytes));
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
    return r->handed_back ? 0 : r->queued + r->outstanding;
}

/*
 * take_back: every block not finished, oldest first: the dispatched ones
 * (r->live holds the newest first), then the queue.  A block is copied
 * from the batch as it came (names, values, flush time), so it goes back
 * exactly; the sink stores no kind, so the kind is SY_KIND_INTERNAL.  A
 * block some of whose commands were answered is handed back whole: a
 * second write of a flush changes nothing (see the top; only a stream gets
 * a repeated entry).  The blocks stay where they are until close, which
 * then counts nothing as dropped: hiredis still holds callbacks for the
 * commands in flight, and close tears those down as always.
 */
static size_t redis_take_back(void *state, void (*keep)(void *ctx, const sy_metric_batch *b),
                              void *ctx)
{
    redis_sink *r = state;
    sy_metric m[BLOCK_METRICS];
    size_t total = 0;
    block *oldest = r->live;
    while (oldest && oldest->lnext)
        oldest = oldest->lnext;
    for (int pass = 0; pass < 2; pass++) {
        for (block *blk = pass == 0 ? oldest : r->qhead; blk;
             blk = pass == 0 ? blk->lprev : blk->next) {
            for (uint32_t i = 0; i < blk->count; i++)
                m[i] = (sy_metric){ .name = blk->names + blk->name_off[i],
                                    .name_len = blk->name_len[i], .kind = SY_KIND_INTERNAL,
                                    .value = blk->values[i] };
            sy_metric_batch b = { .metrics = m, .count = blk->count, .timestamp = blk->ts };
            keep(ctx, &b);
            total += blk->count;
        }
    }
    r->handed_back = 1;
    return total;
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
    size_t left = r->handed_back ? 0 : r->queued + r->outstanding;
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
    .version = "1.2",
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
    .take_back = redis_take_back,
};
