/*
 * ops.c - the redis sink's send path: blocks cut into operations, each
 * node's queue of them, writing their commands and reading the replies
 * (redirects and retries in a cluster).  One server is a cluster of one.
 */
#include "redis.h"

/* ------------------------------------------------------------------ */
/* Blocks and the queue                                                 */
/* ------------------------------------------------------------------ */

block *block_new(const sy_metric_batch *b, size_t from, size_t n)
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

void block_free(block *blk)
{
    free(blk->ops); /* the ops and order[] share one allocation */
    free(blk);
}

void queue_append(redis_sink *r, block *blk)
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

block *queue_pop(redis_sink *r)
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

void op_q_leave(redis_sink *r, op *o)
{
    block *blk = o->blk;
    if (--blk->ops_queued == 0) {
        r->cq_metrics -= blk->count;
        r->cq_bytes -= blk->size;
    }
}

/* A dormant seed is needed again (it serves slots, or ops wait for it,
 * or no other node can give the map): connect now. */
void node_wake(node *nd)
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
void route_again(redis_sink *r, op *o)
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

void on_limbo_timer(void *arg)
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

/* HSET on the group's index `what`, one field per member of the op: the
 * metric's name, set to its formatted value (r->nums, numlen) or, when
 * `one` is given, to that one text for all (the flush time). */
static int issue_hset(node *nd, op *o, const char *what, const size_t *numlen, const char *one,
                      size_t onelen, int asking)
{
    redis_sink *r = nd->r;
    const block *blk = o->blk;
    const uint32_t *mem = blk->order + o->index;
    size_t klen;
    const char *key = index_key(r, what, o->group, &klen);
    if (!key)
        return -1;
    set_arg(r, 0, "HSET", 4);
    set_arg(r, 1, key, klen);
    for (uint32_t j = 0; j < o->len; j++) {
        set_arg(r, 2 + 2 * (int)j, blk->names + blk->name_off[mem[j]], blk->name_len[mem[j]]);
        if (one)
            set_arg(r, 3 + 2 * (int)j, one, onelen);
        else
            set_arg(r, 3 + 2 * (int)j, r->nums[j], numlen[j]);
    }
    return op_issue(nd, o, 2 + 2 * (int)o->len, asking);
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
            if (issue_hset(nd, o, "latest", numlen, NULL, 0, asking) < 0)
                goto fail;
            done |= 1u << C_HLATEST;
        }
        if (bits & (1u << C_HTS)) {
            if (issue_hset(nd, o, "latest_ts", NULL, ts, tslen, asking) < 0)
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

int node_can_send(node *nd, size_t n)
{
    redis_sink *r = nd->r;
    return nd->state == ST_READY && !nd->drop_requested &&
           (nd->outstanding + n <= r->max_pending || nd->outstanding == 0);
}

/* Sends a node's queued ops, oldest first, while its connection has room;
 * one server: then cuts the sink's queued blocks into ops for it, as room
 * allows.  Ops routed meanwhile (by dispatch_block) only join the queue:
 * this loop sends them, so the pump never recurses. */
void node_pump(node *nd)
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
void pump_all(redis_sink *r)
{
    for (node *nd = r->nodes; nd; nd = nd->next)
        if (nd->qhead || (!r->cluster && r->qhead))
            node_pump(nd);
    update_queue_stats(r);
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
void dispatch_block(redis_sink *r, block *blk)
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
