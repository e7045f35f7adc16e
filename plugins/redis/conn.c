/*
 * conn.c - the redis sink's connection to one node: resolve, connect,
 * handshake, stall check, reconnect with backoff.
 */
#include "redis.h"

#include <hiredis/adapters/libevent.h>

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
void resolver_abandon(node *nd)
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
node *node_new(redis_sink *r, const char *addr, int port, int seed)
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
void node_free(node *nd)
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
