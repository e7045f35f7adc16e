/*
 * slotmap.c - the redis sink's Redis Cluster slot map: loading and applying it.
 */
#include "redis.h"

/* "host:port" (host may be empty, or [an IPv6 address]); 0 when valid. */
int parse_hostport(const char *s, char *host, size_t hostlen, int *port)
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


/* The node at host:port, made (and connecting) when not known yet. */
node *node_get(redis_sink *r, const char *host, int port)
{
    for (node *nd = r->nodes; nd; nd = nd->next)
        if (nd->port == port && strcmp(nd->addr, host) == 0)
            return nd;
    if (r->nnodes >= MAX_NODES)
        return NULL;
    return node_new(r, host, port, 0);
}

void map_set(redis_sink *r, unsigned slot, node *t)
{
    if (r->slots[slot])
        r->slots[slot]->owned--;
    r->slots[slot] = t;
    if (t) {
        t->owned++;
        node_wake(t);
    }
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
void request_reload(redis_sink *r)
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
void update_connected(redis_sink *r)
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


/* The map timer: forgets nodes that serve nothing and hold nothing, then
 * loads the map. */
void on_map_timer(void *arg)
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
