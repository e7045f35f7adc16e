/*
 * admin.c - statsd's management console, switchyard's own commands, and
 * the HTTP endpoint, on one libevent loop of their own.
 *
 * The console speaks statsd's line protocol and replies, so operator
 * scripts written for statsd keep working: stats, counters, timers,
 * gauges, delcounters, deltimers, delgauges, health [up|down], config,
 * help, quit; plus reload, sinks, listeners, keys, and the live tap and
 * top (tapstream.h, top.h; also as HTTP /tap and /top).
 */
#include "admin/admin.h"
#include "admin/admin_internal.h"
#include "engine/budget.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/agg.h"
#include "engine/shadow.h"
#include "util/log.h"
#include "util/numfmt.h"
#include "output/sinkhost.h"
#include "admin/status.h"
#include "admin/tap.h"
#include "admin/tapstream.h"
#include "admin/top.h"

/* A /top request: its walk's reply is the JSON document, sent whole. */
typedef struct http_top {
    struct http_top *next;
    struct evhttp_request *req;
    sy_walk *walk;
    sy_buf body;
} http_top;

static sy_ratelimit rl_refused = SY_RATELIMIT_INIT(10000, 5);

/* The admin whose listeners report accept errors, and whose HTTP answers
 * are counted (http_watch_out).  evhttp passes its own argument to those
 * callbacks, not ours, and a process has one admin interface. */
static sy_admin *the_admin;

static time_t now_s(void) { return time(NULL); }

/* ---- console ------------------------------------------------------- */

static void reply(struct bufferevent *bev, const char *s, size_t n)
{
    bufferevent_write(bev, s, n);
}

static void reply_buf(struct bufferevent *bev, sy_buf *b)
{
    if (b->len)
        reply(bev, b->p, b->len);
    sy_buf_free(b);
}

static void sink_stats_line(void *ctx, const char *name, const char *plugin, const sy_sink_stats *st)
{
    sy_buf *b = ctx;
    sy_buf_printf(b, "%s.sent: %lld\n%s.dropped: %lld\n%s.queued: %lld\n%s.connected: %lld\n",
                  name, (long long)st->sent, name, (long long)(st->dropped + st->metrics_dropped_by_host),
                  name, (long long)st->queued, name, (long long)st->connected);
    (void)plugin;
}

/* statsd's `stats`: uptime, its message counters, each backend's status. */
static void cmd_stats(sy_admin *a, sy_buf *b)
{
    time_t now = now_s();
    const sy_agg_stats *st = sy_engine_stats(a->d.engine);
    int64_t last_ms = atomic_load(&st->last_msg_ms);
    sy_buf_printf(b, "uptime: %lld\n", (long long)(now - a->start));
    sy_buf_printf(b, "messages.last_msg_seen: %lld\n",
                  (long long)(now - (last_ms ? (time_t)(last_ms / 1000) : a->start)));
    sy_buf_printf(b, "messages.bad_lines_seen: %llu\n", (unsigned long long)atomic_load(&st->bad_lines));
    sy_output_report_sinks(a->d.output, sink_stats_line, b);
    sy_buf_printf(b, "END\n\n");
}

static void sink_table_line(void *ctx, const char *name, const char *plugin, const sy_sink_stats *st)
{
    sy_buf_printf(ctx, "%s plugin=%s state=%s queued=%lld queued_bytes=%lld sent=%lld dropped=%lld "
                  "errors=%lld reconnects=%lld retry_held=%lld adjusted=%lld\n",
                  name, plugin, st->connected ? "connected" : "disconnected", (long long)st->queued,
                  (long long)st->queued_bytes, (long long)st->sent,
                  (long long)(st->dropped + st->metrics_dropped_by_host),
                  (long long)(st->errors + st->write_errors), (long long)st->reconnects,
                  (long long)st->retry_held, (long long)st->adjusted);
    if (st->spool)
        sy_buf_printf(ctx, "%s spool bytes=%lld records=%lld oldest_flush=%lld spooled=%lld "
                      "replayed=%lld dropped=%lld corrupt=%lld lines_spooled=%lld lines_replayed=%lld\n", name,
                      (long long)st->spool_bytes, (long long)st->spool_records,
                      (long long)st->spool_oldest_ts, (long long)st->spool_spooled,
                      (long long)st->spool_replayed, (long long)st->spool_dropped,
                      (long long)st->spool_corrupt, (long long)st->spool_lines_spooled,
                      (long long)st->spool_lines_replayed);
}

static void cmd_listeners(sy_admin *a, sy_buf *b)
{
    sy_listen_info *li = sy_engine_listen_info(a->d.engine);
    for (size_t i = 0; i < a->d.nlisteners; i++) {
        sy_listener_counters c;
        sy_listener_counters_read(&a->d.listeners[i], &c);
        sy_buf_printf(b, "%s received=%llu bytes=%llu dropped=%llu lines_too_long=%llu",
                      a->d.listeners[i].name, (unsigned long long)c.received,
                      (unsigned long long)c.bytes, (unsigned long long)c.dropped,
                      (unsigned long long)c.lines_too_long);
        if (sy_listener_is_stream(&a->d.listeners[i]))
            sy_buf_printf(b, " connections_open=%llu connections_accepted=%llu "
                          "connections_rejected=%llu idle_closed=%llu paused=%llu partial_discarded=%llu "
                          "evicted=%llu",
                          (unsigned long long)c.connections_open,
                          (unsigned long long)c.connections_accepted,
                          (unsigned long long)c.connections_rejected,
                          (unsigned long long)c.idle_closed, (unsigned long long)c.paused,
                          (unsigned long long)c.partial_discarded, (unsigned long long)c.evicted);
        if (li && li[i].auth)
            sy_buf_printf(b, " auth_rejected=%llu", (unsigned long long)atomic_load(&li[i].auth_rejected));
        sy_buf_printf(b, "\n");
    }
    for (size_t i = 0; i < a->d.nrings; i++)
        sy_buf_printf(b, "ring.%zu used=%zu capacity=%zu\n", i, sy_ring_used(a->d.rings[i]),
                      sy_ring_capacity(a->d.rings[i]));
    sy_buf_printf(b, "END\n\n");
}

/* statsd's helpers.writeConfig: "prop: value", "prop > sub: value". */
/* The `config` reply for config c, written when it starts to run (at
 * start, and by each reload that succeeds), so that the console always
 * shows the running config without reading one the engine may free.  The
 * listeners are the ones open: a reload does not reopen them. */
static void describe_config(sy_admin *a, const sy_config *c, sy_buf *b)
{
    char num[SY_FMT_DOUBLE_MAX];
    sy_buf_printf(b, "\n");
    sy_buf_printf(b, "configFile: %s\n", c->file ? c->file : "(built-in default)");
    for (size_t i = 0; i < a->d.nlisteners; i++)
        sy_buf_printf(b, "listen > %zu: %s\n", i, a->d.listeners[i].name);
    sy_buf_printf(b, "flushInterval: %u\n", c->flush.flush_interval_ms);
    for (size_t i = 0; i < c->flush.npct; i++) {
        sy_fmt_double(c->flush.pct[i], num);
        sy_buf_printf(b, "percentThreshold > %zu: %s\n", i, num);
    }
    sy_buf_printf(b, "deleteCounters: %s\ndeleteTimers: %s\ndeleteSets: %s\ndeleteGauges: %s\n",
                  c->agg.delete_counters ? "true" : "false", c->agg.delete_timers ? "true" : "false",
                  c->agg.delete_sets ? "true" : "false", c->agg.delete_gauges ? "true" : "false");
    sy_buf_printf(b, "gaugesMaxTTL: %d\nflush_counts: %s\nprefixStats: %s\nkeyNameSanitize: %s\n",
                  c->agg.gauges_max_ttl, c->flush.flush_counts ? "true" : "false",
                  c->flush.prefix_stats, c->agg.sanitize ? "true" : "false");
    sy_buf_printf(b, "graphite > legacyNamespace: %s\n", c->flush.legacy ? "true" : "false");
    sy_buf_printf(b, "graphite > globalPrefix: %s\n", c->flush.global_prefix);
    for (size_t i = 0; i < c->nsinks; i++)
        sy_buf_printf(b, "sinks > %s: %s\n", c->sinks[i].name, c->sinks[i].plugin);
    sy_buf_printf(b, "routing: %s\n", c->decide_ref >= 0 || c->L ? "lua" : "every sink");
}

void sy_admin_config_changed(sy_admin *a, const sy_config *c)
{
    if (!a)
        return;
    sy_buf b = { 0 };
    describe_config(a, c, &b);
    pthread_mutex_lock(&a->conf_lock);
    sy_buf_free(&a->conf_text);
    a->conf_text = b;
    pthread_mutex_unlock(&a->conf_lock);
}

static void cmd_config(sy_admin *a, sy_buf *b)
{
    pthread_mutex_lock(&a->conf_lock);
    sy_buf_printf(b, "%.*s", (int)a->conf_text.len, a->conf_text.p ? a->conf_text.p : "");
    pthread_mutex_unlock(&a->conf_lock);
}

static int split_args(char *line, char **argv, int max)
{
    int n = 0;
    for (char *tok = strtok(line, " \t"); tok && n < max; tok = strtok(NULL, " \t"))
        argv[n++] = tok;
    return n;
}

static const int type_of[] = { [0] = SY_T_COUNTER, [1] = SY_T_TIMER, [2] = SY_T_GAUGE };

static sy_ratelimit rl_walks = SY_RATELIMIT_INIT(10000, 2);
static sy_ratelimit rl_slow = SY_RATELIMIT_INIT(10000, 2);

static void walk_ready(void *arg)
{
    sy_admin *a = arg;
    uint64_t one = 1;
    ssize_t rc = write(a->walk_fd, &one, sizeof one);
    (void)rc;
}

/* A question for the key table: its reply is streamed as the engine
 * writes it (walk_flow); this connection reads no command meanwhile. */
static void start_walk(conn *c, int what, int type, char **args, size_t nargs, int end)
{
    sy_admin *a = c->a;
    c->walk = sy_engine_walk(a->d.engine, what, type, args, nargs, walk_ready, a);
    if (!c->walk) {
        sy_log_limited(&rl_walks, SY_WARN, "admin: %d questions about the key table in progress: "
                       "one more refused (switchyard_admin_walks_refused_total)", SY_WALK_MAX);
        static const char busy[] = "ERROR: too many questions about the keys in progress; try again\nEND\n\n";
        reply(c->bev, busy, sizeof busy - 1);
        return;
    }
    c->walk_end = end;
    c->waiting = 0;
}

static void pump(conn *c);

/* The tap has given its lines: take commands again. */
static void tap_done(void *arg)
{
    conn *c = arg;
    c->tap = NULL;
    if (!c->eof)
        bufferevent_enable(c->bev, EV_READ);
    pump(c);
}

/* `tap GLOB [N]`: streams until N lines, a line from the client, or the
 * end of its input (tapstream.h). */
static void start_tap(conn *c, int argc, char **argv)
{
    char err[256], msg[320];
    long n = SY_TAP_N_DEFAULT;
    if (argc > 2) {
        char *end;
        n = strtol(argv[2], &end, 10);
        if (*end)
            n = -1;
    }
    if (argc < 2 || argc > 3) {
        static const char usage[] = "ERROR: tap GLOB [N]\nEND\n\n";
        reply(c->bev, usage, sizeof usage - 1);
        return;
    }
    c->tap = sy_tapstream_console(c->a->base, c->bev, argv[1], n, tap_done, c, err, sizeof err);
    if (!c->tap) {
        int len = snprintf(msg, sizeof msg, "ERROR: tap: %s\nEND\n\n", err);
        reply(c->bev, msg, (size_t)len);
    }
}

/* One command line; returns 0 to close the connection. */
static int command(conn *c, char *line)
{
    sy_admin *a = c->a;
    struct bufferevent *bev = c->bev;
    char *argv[64];
    int argc = split_args(line, argv, 64);
    sy_buf b = { 0 };
    if (argc == 0)
        return 1;
    const char *cmd = argv[0];
    static const char *const dumps[] = { "counters", "timers", "gauges" };
    static const char *const dels[] = { "delcounters", "deltimers", "delgauges" };
    for (int t = 0; t < 3; t++) {
        if (strcmp(cmd, dumps[t]) == 0) {
            start_walk(c, SY_WALK_DUMP, type_of[t], NULL, 0, 1);
            return 1;
        }
        if (strcmp(cmd, dels[t]) == 0) {
            start_walk(c, SY_WALK_DELETE, type_of[t], argv + 1, (size_t)argc - 1, 0);
            return 1;
        }
    }
    if (strcmp(cmd, "help") == 0) {
        sy_buf_printf(&b, "Commands: stats, counters, timers, gauges, delcounters, deltimers, delgauges, "
                          "health, config, quit, reload, sinks, listeners, keys, tap, top\n\n");
    } else if (strcmp(cmd, "config") == 0) {
        cmd_config(a, &b);
    } else if (strcmp(cmd, "health") == 0) {
        if (argc > 1 && strcasecmp(argv[1], "up") == 0)
            atomic_store(&a->health_up, 1);
        else if (argc > 1 && strcasecmp(argv[1], "down") == 0)
            atomic_store(&a->health_up, 0);
        sy_buf_printf(&b, "health: %s\n", atomic_load(&a->health_up) ? "up" : "down");
    } else if (strcmp(cmd, "stats") == 0) {
        cmd_stats(a, &b);
    } else if (strcmp(cmd, "quit") == 0) {
        return 0;
    } else if (strcmp(cmd, "reload") == 0 && argc > 1 && strcmp(argv[1], "--shadow") == 0) {
        /* shadow.h: the report comes when ready (on_walk_ready), this
         * connection reads no command meanwhile */
        char why[512];
        if (argc != 3)
            sy_buf_printf(&b, "shadow: refused: usage: reload --shadow FILE\nEND\n\n");
        else if (!(c->shadow = sy_shadow_start(argv[2], walk_ready, a, why, sizeof why)))
            sy_buf_printf(&b, "shadow: refused: %s\nEND\n\n", why);
    } else if (strcmp(cmd, "reload") == 0) {
        char why[2048];
        if (!a->d.reload)
            sy_buf_printf(&b, "reload: failed: nothing to reload (built-in default config)\nEND\n\n");
        else if (a->d.reload(a->d.reload_ctx, why, sizeof why))
            sy_buf_printf(&b, "reload: ok\nEND\n\n");
        else
            sy_buf_printf(&b, "reload: failed: %s\nEND\n\n", why);
    } else if (strcmp(cmd, "sinks") == 0) {
        sy_output_report_sinks(a->d.output, sink_table_line, &b);
        sy_buf_printf(&b, "END\n\n");
    } else if (strcmp(cmd, "listeners") == 0) {
        cmd_listeners(a, &b);
    } else if (strcmp(cmd, "keys") == 0) {
        start_walk(c, SY_WALK_KEYS, 0, argv + 1, argc > 1 ? 1 : 0, 0);
    } else if (strcmp(cmd, "tap") == 0) {
        start_tap(c, argc, argv);
    } else if (strcmp(cmd, "top") == 0) {
        size_t n;
        int by, depth;
        char err[128], args[3][16];
        if (sy_top_parse(argv + 1, (size_t)argc - 1, &n, &by, &depth, err, sizeof err) < 0) {
            sy_buf_printf(&b, "ERROR: top [N] [by=samples|bytes|keys] [depth=K]: %s\nEND\n\n", err);
        } else {
            sy_top_args(n, by, depth, args);
            char *targs[3] = { args[0], args[1], args[2] };
            start_walk(c, SY_WALK_TOP, 0, targs, 3, 0);
        }
    } else {
        sy_buf_printf(&b, "ERROR\n");
    }
    reply_buf(bev, &b);
    return 1;
}

static void conn_free(conn *c)
{
    sy_walk_cancel(c->walk);
    sy_shadow_abandon(c->shadow);
    sy_tapstream_stop(c->tap, 0);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
}

/* After `quit`: close once what was said has been written. */
static void close_when_written(struct bufferevent *bev, void *arg)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg);
static void on_read(struct bufferevent *bev, void *arg);

/* No more commands on this connection: close it once the replies are out. */
static void finish(conn *c)
{
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bufferevent_setcb(c->bev, NULL, close_when_written, on_event, c);
    close_when_written(c->bev, c);
}

/* The client has read enough of its replies: take commands again. */
static void on_drained(struct bufferevent *bev, void *arg)
{
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_setcb(bev, on_read, NULL, on_event, arg);
    bufferevent_enable(bev, EV_READ);
    pump(arg); /* lines that were already buffered */
}

/* A line longer than MAX_COMMAND: answered ERROR once and counted.  When
 * its newline has not arrived yet (unfinished), what came is dropped and
 * the rest, up to the newline, is skipped as it arrives, so that its tail
 * is never read as a command of its own. */
static void line_too_long(conn *c, int unfinished)
{
    c->a->console_too_long++;
    sy_log_limited(&rl_refused, SY_WARN, "admin console: a command line longer than %d bytes "
                   "refused (ERROR) and skipped to its end", MAX_COMMAND);
    bufferevent_write(c->bev, "ERROR\n", 6);
    if (unfinished) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        c->discarding = 1;
    }
}

/* Skips what is left of an over-long line; 1 once its newline is found
 * (and dropped), 0 while the line goes on. */
static int skip_rest(conn *c, struct evbuffer *in)
{
    if (!c->discarding)
        return 1;
    struct evbuffer_ptr nl = evbuffer_search(in, "\n", 1, NULL);
    if (nl.pos < 0) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return 0;
    }
    evbuffer_drain(in, (size_t)nl.pos + 1);
    c->discarding = 0;
    return 1;
}

/*
 * Answers the complete command lines buffered, while fewer than
 * MAX_PENDING_OUT bytes of replies are pending and no walk streams its
 * reply; after the client's EOF, a last line without its newline too
 * (as statsd), and then closes once the replies are out.
 */
static void pump(conn *c)
{
    struct bufferevent *bev = c->bev;
    struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
    for (;;) {
        if (c->tap) {
            /* While a tap streams, a line from the client (or its end)
             * stops it; nothing else is read meanwhile. */
            struct evbuffer_ptr nl = evbuffer_search(in, "\n", 1, NULL);
            if (nl.pos < 0 && !c->eof) {
                if (evbuffer_get_length(in) > MAX_COMMAND)
                    evbuffer_drain(in, evbuffer_get_length(in));
                return;
            }
            evbuffer_drain(in, nl.pos >= 0 ? (size_t)nl.pos + 1 : evbuffer_get_length(in));
            sy_tapstream_stop(c->tap, 1);
            c->tap = NULL;
            continue;
        }
        if (c->walk || c->shadow) {
            /* The walk's end calls this again.  Meanwhile the kernel's
             * buffers push back on a client that sends more. */
            bufferevent_disable(bev, EV_READ);
            return;
        }
        if (evbuffer_get_length(out) >= MAX_PENDING_OUT) {
            /* A client that sends commands without reading the replies
             * would make them pile up here without bound: stop reading its
             * commands until half of what is pending has been written. */
            bufferevent_disable(bev, EV_READ);
            bufferevent_setwatermark(bev, EV_WRITE, MAX_PENDING_OUT / 2, 0);
            bufferevent_setcb(bev, on_read, on_drained, on_event, c);
            return;
        }
        if (!skip_rest(c, in))
            return;
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (line && n > MAX_COMMAND) { /* arrived whole, in one read */
            free(line);
            line_too_long(c, 0);
            continue;
        }
        if (line) {
            int keep = command(c, line);
            free(line);
            if (!keep) {
                finish(c);
                return;
            }
            continue;
        }
        size_t len = evbuffer_get_length(in);
        if (c->eof) {
            /* The last line, without its newline (the input buffer takes
             * no more bytes once reading has ended, so it is taken out). */
            line = len && len <= MAX_COMMAND ? malloc(len + 1) : NULL;
            if (line) {
                evbuffer_remove(in, line, len);
                line[len] = '\0';
                if (line[len - 1] == '\r')
                    line[len - 1] = '\0';
                int keep = command(c, line);
                free(line);
                if (keep)
                    continue;
            }
            evbuffer_drain(in, evbuffer_get_length(in));
            finish(c);
            return;
        }
        if (len > MAX_COMMAND)
            line_too_long(c, 1);
        return;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    pump(arg);
}

static void on_walk_drained(struct bufferevent *bev, void *arg);

/* Streams what the engine has written of a walk's reply, and asks for
 * more while the client keeps up. */
static void walk_flow(conn *c)
{
    sy_buf b = { 0 };
    int done = sy_walk_take(c->walk, &b);
    if (b.len)
        reply(c->bev, b.p, b.len);
    sy_buf_free(&b);
    if (done) {
        c->walk = NULL;
        if (c->walk_end)
            reply(c->bev, "END\n\n", 5);
        if (!c->eof)
            bufferevent_enable(c->bev, EV_READ);
        pump(c);
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) < WALK_PENDING_OUT) {
        sy_walk_more(c->walk);
        return;
    }
    /* A slow reader: the walk waits (the engine keeps its cursor, nothing
     * more), until half of what is pending has been written. */
    c->waiting = 1;
    atomic_fetch_add_explicit(&c->a->walk_waits, 1, memory_order_relaxed);
    sy_log_limited(&rl_slow, SY_INFO, "admin: a console client reads its reply slowly; "
                   "the walk waits with %u bytes pending (switchyard_admin_walk_waits_total)",
                   WALK_PENDING_OUT);
    bufferevent_setwatermark(c->bev, EV_WRITE, WALK_PENDING_OUT / 2, 0);
    bufferevent_setcb(c->bev, on_read, on_walk_drained, on_event, c);
}

static void on_walk_drained(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_setcb(bev, on_read, NULL, on_event, c);
    c->waiting = 0;
    if (c->walk)
        walk_flow(c);
}

/* The engine has written a slice of some walk. */
static void on_walk_ready(evutil_socket_t fd, short what, void *arg)
{
    sy_admin *a = arg;
    uint64_t v;
    ssize_t rc = read(fd, &v, sizeof v);
    (void)rc;
    (void)what;
    for (conn *c = a->conns, *next; c; c = next) {
        next = c->next; /* walk_flow may close c */
        if (c->walk && !c->waiting)
            walk_flow(c);
        else if (c->shadow) {
            sy_buf b = { 0 };
            if (!sy_shadow_take(c->shadow, &b))
                continue;
            c->shadow = NULL;
            reply_buf(c->bev, &b);
            if (!c->eof)
                bufferevent_enable(c->bev, EV_READ);
            pump(c);
        }
    }
    for (http_top **link = &a->tops; *link;) {
        http_top *t = *link;
        if (!sy_walk_take(t->walk, &t->body)) {
            sy_walk_more(t->walk); /* top's reply comes at the end: no backlog */
            link = &t->next;
            continue;
        }
        *link = t->next;
        struct evbuffer *out = evbuffer_new();
        if (out) {
            evbuffer_add(out, t->body.p, t->body.len);
            int err = t->body.len > 5 && memcmp(t->body.p, "ERROR", 5) == 0;
            evhttp_add_header(evhttp_request_get_output_headers(t->req), "Content-Type",
                              err ? "text/plain" : "application/json");
            evhttp_send_reply(t->req, err ? 400 : 200, err ? "Bad Request" : "OK", out);
            evbuffer_free(out);
        } else {
            evhttp_send_error(t->req, 500, NULL);
        }
        sy_buf_free(&t->body);
        free(t);
    }
}

static sy_ratelimit rl_stuck = SY_RATELIMIT_INIT(10000, 2);

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_TIMEOUT) {
        atomic_fetch_add_explicit(&c->a->write_timeouts, 1, memory_order_relaxed);
        sy_log_limited(&rl_stuck, SY_WARN, "admin: a console client read nothing of its reply for "
                       "%d s: closed (switchyard_admin_write_timeouts_total)", WRITE_TIMEOUT_S);
        conn_free(c);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        conn_free(c);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        /* The client has said all it will (`echo stats | nc -N host 8126`):
         * as statsd, answer what it sent, a last line without its newline
         * included, and close once the replies are out; freeing the
         * connection now would drop what is still queued. */
        c->eof = 1;
        pump(c);
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    sy_admin *a = arg;
    (void)l;
    (void)sa;
    (void)len;
    conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(c);
        close(fd);
        return;
    }
    c->a = a;
    c->bev = bev;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    /* Only runs while a reply waits to be written (libevent's write
     * timeout): an idle client is not affected. */
    struct timeval wt = { WRITE_TIMEOUT_S, 0 };
    bufferevent_set_timeouts(bev, NULL, &wt);
    bufferevent_setcb(bev, on_read, NULL, on_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* ---- HTTP ---------------------------------------------------------- */

/* evhttp_send_reply, but a HEAD answer has the headers of the GET answer
 * and no body: libevent 2.1 would send the body after them. */
void sy_admin_http_reply(struct evhttp_request *req, int code, const char *reason, struct evbuffer *body)
{
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        char len[32];
        snprintf(len, sizeof len, "%zu", evbuffer_get_length(body));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", len);
        evbuffer_drain(body, evbuffer_get_length(body));
    }
    evhttp_send_reply(req, code, reason, body);
}

/*
 * Every endpoint only reads state: GET and HEAD.  Another method gets 405
 * with an Allow header (a body never gets this far: HTTP_MAX_BODY makes
 * libevent answer 413 first).  0 when refused (and answered).
 */
int sy_admin_http_method_ok(struct evhttp_request *req)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
        return 1;
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "method not allowed: only GET and HEAD\n");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    sy_admin_http_reply(req, 405, "Method Not Allowed", out);
    evbuffer_free(out);
    return 0;
}

/* The slot of http_refused for an HTTP status, or -1 if not a refusal. */
int sy_admin_refused_slot(int code)
{
    return code >= 400 && code <= 499 ? code - 400 : code == 501 ? 100 : -1;
}

/* Counts a refusal by status, and logs it at a bounded rate (a wrong
 * path is not worth a line). */
static void http_count_refusal(int fd, int code)
{
    sy_admin *a = the_admin;
    int slot = sy_admin_refused_slot(code);
    if (!a || slot < 0)
        return;
    a->http_refused[slot]++;
    if (code == 404)
        return;
    char who[INET6_ADDRSTRLEN + 8] = "?";
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, who, sizeof who, NULL, 0, NI_NUMERICHOST);
    const char *why = code == 413 ? " (a body: no endpoint takes one)"
                      : code == 414 ? " (its request line is over the limit)"
                      : code == 431 ? " (its header section is over the limit)"
                      : code == 400 ? " (malformed)"
                      : code == 405 || code == 501 ? " (GET and HEAD only)" : "";
    sy_log_limited(&rl_refused, SY_WARN, "admin HTTP: refused a request from %s with %d%s; the "
                   "request line and the headers may have %d bytes each", who, code, why,
                   HTTP_MAX_HEADERS);
}

/*
 * Watches what an HTTP connection writes, to count its refusals (4xx, and
 * 501 for a method libevent does not know): libevent answers the requests
 * it refuses itself without calling back (libevent 2.1: 413 for a body
 * over HTTP_MAX_BODY, 400 for a malformed request), so the status line it
 * writes is the one place where they all show.  Every answer starts with
 * its status line, written by one add.
 */
static void http_watch_out(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct bufferevent *bev = arg;
    char line[13];
    struct evbuffer_ptr at;
    if (info->n_added < sizeof line || evbuffer_ptr_set(buf, &at, info->orig_size, EVBUFFER_PTR_SET) < 0 ||
        evbuffer_copyout_from(buf, &at, line, sizeof line) != (ev_ssize_t)sizeof line ||
        memcmp(line, "HTTP/1.", 7) != 0 || line[12] != ' ')
        return;
    int code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    http_count_refusal(bufferevent_getfd(bev), code);
}

/* evhttp's connections: the head guard watches each one's input (httphead.c:
 * 414 and 431 for an over-long request line or header section), and its
 * output is watched for the refusals evhttp writes itself. */
static struct bufferevent *http_new_bev(struct event_base *base, void *arg)
{
    (void)arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev) {
        sy_admin_head_guard(bev, http_count_refusal);
        evbuffer_add_cb(bufferevent_get_output(bev), http_watch_out, bev);
    }
    return bev;
}

static void http_health(struct evhttp_request *req, void *arg)
{
    sy_admin *a = arg;
    if (!sy_admin_http_method_ok(req))
        return;
    struct evbuffer *out = evbuffer_new();
    int up = atomic_load(&a->health_up);
    evbuffer_add_printf(out, "%s\n", up ? "up" : "down");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    sy_admin_http_reply(req, up ? 200 : 503, up ? "OK" : "Service Unavailable", out);
    evbuffer_free(out);
}

static sy_ratelimit rl_top = SY_RATELIMIT_INIT(10000, 2);

/* GET /top?n=N&by=samples|bytes|keys&depth=K: top.h's figures as JSON,
 * made by a walk of the key table in slices (as the console's dumps). */
static void http_top_cb(struct evhttp_request *req, void *arg)
{
    sy_admin *a = arg;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        if (!sy_admin_http_method_ok(req))
            return;
        /* HEAD: the walk is not worth making for no body */
        struct evbuffer *none = evbuffer_new();
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
        sy_admin_http_reply(req, 200, "OK", none);
        evbuffer_free(none);
        return;
    }
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (query)
        evhttp_parse_query_str(query, &q);
    char words[3][80], *argv[3], err[128];
    size_t argc = 0;
    static const char *const keys[] = { "n", "by", "depth" };
    for (int i = 0; i < 3; i++) {
        const char *v = evhttp_find_header(&q, keys[i]);
        if (v) {
            snprintf(words[argc], sizeof words[argc], "%s=%s", keys[i], v);
            argv[argc] = words[argc];
            argc++;
        }
    }
    evhttp_clear_headers(&q);
    size_t n;
    int by, depth;
    if (sy_top_parse(argv, argc, &n, &by, &depth, err, sizeof err) < 0) {
        sy_admin_reply_text(req, 400, err);
        return;
    }
    char args[3][16];
    sy_top_args(n, by, depth, args);
    char *targs[3] = { args[0], args[1], args[2] };
    http_top *t = calloc(1, sizeof *t);
    if (t)
        t->walk = sy_engine_walk(a->d.engine, SY_WALK_TOP, 1, targs, 3, walk_ready, a);
    if (!t || !t->walk) {
        free(t);
        sy_log_limited(&rl_top, SY_WARN, "admin: /top refused (503): %d questions about the key "
                       "table in progress (switchyard_admin_walks_refused_total)", SY_WALK_MAX);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        sy_admin_reply_text(req, 503, "busy: too many questions about the keys in progress; try again");
        return;
    }
    t->req = req;
    t->next = a->tops;
    a->tops = t;
}

static void http_other(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "not found: try /health, /metrics or /traces\n");
    sy_admin_http_reply(req, 404, "Not Found", out);
    evbuffer_free(out);
}

/* ---- lifecycle ----------------------------------------------------- */

static sy_ratelimit rl_accept = SY_RATELIMIT_INIT(10000, 2);

static void resume_listeners(evutil_socket_t fd, short what, void *arg)
{
    sy_admin *a = arg;
    if (a->mgmt)
        evconnlistener_enable(a->mgmt);
    if (a->http_sock)
        evconnlistener_enable(evhttp_bound_socket_get_listener(a->http_sock));
}


/* Out of descriptors (or another accept error): stop accepting for a
 * second instead of retrying accept() in a tight loop. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)arg;
    sy_admin *a = the_admin;
    if (!a)
        return;
    int err = EVUTIL_SOCKET_ERROR();
    sy_log_limited(&rl_accept, SY_WARN, "admin: accept failed (%s); pausing for a second",
                   evutil_socket_error_to_string(err));
    if (a->mgmt)
        evconnlistener_disable(a->mgmt);
    if (a->http_sock)
        evconnlistener_disable(evhttp_bound_socket_get_listener(a->http_sock));
    struct timeval tv = { 1, 0 };
    event_add(a->resume_ev, &tv);
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host && *host ? host : NULL, ps, &hints, &res) != 0)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* httpAddress "HOST:PORT" (HOST may be "[v6]" or empty) into its parts;
 * -1 when the port is not 0-65535. */
static int http_split(const char *addr, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(addr, ':');
    char *end;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || end == colon + 1 || *end || p < 0 || p > 65535)
        return -1;
    size_t hl = (size_t)(colon - addr);
    if (hl >= cap)
        hl = cap - 1;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    *port = (int)p;
    return 0;
}

int sy_admin_check(const sy_config *c, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char host[256];
    int port;
    if (c->mgmt_port && resolve(c->mgmt_address, c->mgmt_port, &ss, &len) < 0) {
        snprintf(err, errlen, "mgmt_address: cannot resolve '%s'", c->mgmt_address);
        return -1;
    }
    if (c->http_address) {
        if (http_split(c->http_address, host, sizeof host, &port) < 0) {
            snprintf(err, errlen, "httpAddress: '%s' is not HOST:PORT with a port up to 65535",
                     c->http_address);
            return -1;
        }
        if (host[0] && resolve(host, port, &ss, &len) < 0) {
            snprintf(err, errlen, "httpAddress: cannot resolve '%s'", host);
            return -1;
        }
    }
    return 0;
}

static int bound_port(evutil_socket_t fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    sy_admin *a = arg;
    uint64_t v;
    ssize_t rc = read(fd, &v, sizeof v);
    (void)rc;
    event_base_loopbreak(a->base);
}

static void *run(void *arg)
{
    sy_admin *a = arg;
    event_base_loop(a->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

sy_admin *sy_admin_start(const sy_admin_deps *deps, char *err, size_t errlen)
{
    sy_admin *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->d = *deps;
    a->stop_fd = a->jobs_fd = a->cancel_fd = -1;
    a->walk_fd = -1;
    a->start = now_s();
    atomic_init(&a->health_up, deps->conf->health_up);
    pthread_mutex_init(&a->conf_lock, NULL);
    pthread_mutex_init(&a->jobs_lock, NULL);
    sy_admin_config_changed(a, deps->conf);
    const sy_config *c = deps->conf;
    if (!c->mgmt_port && !c->http_address)
        return a;
    a->base = event_base_new();
    a->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->stop_ev = a->base && a->stop_fd >= 0 ? event_new(a->base, a->stop_fd, EV_READ, on_stop, a) : NULL;
    a->resume_ev = a->base ? event_new(a->base, -1, 0, resume_listeners, a) : NULL;
    a->jobs_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->cancel_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->jobs_ev = a->base && a->jobs_fd >= 0
                     ? event_new(a->base, a->jobs_fd, EV_READ | EV_PERSIST, sy_admin_on_jobs_done, a)
                     : NULL;
    a->walk_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->walk_ev = a->base && a->walk_fd >= 0
                 ? event_new(a->base, a->walk_fd, EV_READ | EV_PERSIST, on_walk_ready, a) : NULL;
    the_admin = a;
    if (!a->stop_ev || !a->resume_ev || !a->jobs_ev || !a->walk_ev || a->cancel_fd < 0 ||
        event_add(a->stop_ev, NULL) < 0 || event_add(a->jobs_ev, NULL) < 0 ||
        event_add(a->walk_ev, NULL) < 0) {
        snprintf(err, errlen, "admin: cannot create an event loop");
        goto fail;
    }
    if (c->mgmt_port) {
        struct sockaddr_storage ss;
        socklen_t len;
        if (resolve(c->mgmt_address, c->mgmt_port, &ss, &len) < 0) {
            snprintf(err, errlen, "admin: cannot resolve mgmt_address '%s'", c->mgmt_address);
            goto fail;
        }
        a->mgmt = evconnlistener_new_bind(a->base, on_accept, a,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                          64, (struct sockaddr *)&ss, (int)len);
        if (!a->mgmt) {
            snprintf(err, errlen, "admin: cannot listen on %s:%d: %m", c->mgmt_address, c->mgmt_port);
            goto fail;
        }
        evconnlistener_set_error_cb(a->mgmt, on_accept_error);
        a->mgmt_port = bound_port(evconnlistener_get_fd(a->mgmt));
        sy_log(SY_INFO, "admin console on %s:%d", c->mgmt_address, a->mgmt_port);
    }
    if (c->http_address) {
        char host[256];
        int port = 0;
        if (http_split(c->http_address, host, sizeof host, &port) < 0) {
            snprintf(err, errlen, "admin: httpAddress '%s' is not HOST:PORT", c->http_address);
            goto fail;
        }
        a->http = evhttp_new(a->base);
        a->http_sock = a->http ? evhttp_bind_socket_with_handle(a->http, host[0] ? host : "0.0.0.0", (uint16_t)port) : NULL;
        if (!a->http_sock) {
            snprintf(err, errlen, "admin: cannot serve HTTP on %s", c->http_address);
            goto fail;
        }
        evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(a->http_sock), on_accept_error);
        evhttp_set_max_headers_size(a->http, HTTP_EVHTTP_HEADERS);
        evhttp_set_max_body_size(a->http, HTTP_MAX_BODY);
        /* Every method libevent knows reaches sy_admin_http_method_ok, which
         * answers 405 with an Allow header (libevent's own refusal of a
         * method is a bare 501 or 405). */
        evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
        evhttp_set_bevcb(a->http, http_new_bev, NULL);
        evhttp_set_cb(a->http, "/health", http_health, a);
        evhttp_set_cb(a->http, "/metrics", sy_admin_http_metrics, a);
        evhttp_set_cb(a->http, "/traces", sy_admin_http_traces, a);
        evhttp_set_cb(a->http, "/tap", sy_tapstream_http, a);
        evhttp_set_cb(a->http, "/top", http_top_cb, a);
        evhttp_set_gencb(a->http, http_other, a);
        a->http_port = bound_port(evhttp_bound_socket_get_fd(a->http_sock));
        sy_log(SY_INFO, "admin HTTP on %s (port %d): /health /metrics /traces /tap /top", c->http_address, a->http_port);
    }
    if (pthread_create(&a->thread, NULL, run, a) != 0) {
        snprintf(err, errlen, "admin: cannot start a thread");
        goto fail;
    }
    a->started = 1;
    return a;
fail:
    sy_admin_stop(a);
    return NULL;
}

int sy_admin_mgmt_port(const sy_admin *a) { return a ? a->mgmt_port : 0; }
int sy_admin_http_port(const sy_admin *a) { return a ? a->http_port : 0; }

void sy_admin_stop(sy_admin *a)
{
    if (!a)
        return;
    if (a->started) {
        uint64_t one = 1;
        /* pages being made give up on memcached at once */
        ssize_t rc = write(a->cancel_fd, &one, sizeof one);
        rc = write(a->stop_fd, &one, sizeof one);
        (void)rc;
        pthread_join(a->thread, NULL);
    }
    if (the_admin == a)
        the_admin = NULL; /* the loop that read it has ended */
    /* The loop has ended: nothing links or unlinks jobs any more.  Wait
     * for each worker (cancelled, it returns within a poll) and drop its
     * page; its request goes with evhttp_free below. */
    for (traces_job *j = a->jobs, *next; j; j = next) {
        next = j->next;
        pthread_join(j->thread, NULL);
        sy_admin_traces_job_free(j);
    }
    a->jobs = NULL;
    while (a->conns)
        conn_free(a->conns); /* their walks are cancelled: the engine drops them */
    while (a->tops) {
        http_top *t = a->tops; /* its request goes with evhttp_free below */
        a->tops = t->next;
        sy_walk_cancel(t->walk);
        sy_buf_free(&t->body);
        free(t);
    }
    if (a->walk_ev)
        event_free(a->walk_ev);
    if (a->walk_fd >= 0)
        close(a->walk_fd);
    if (a->stop_fd >= 0)
        close(a->stop_fd);
    if (a->jobs_fd >= 0)
        close(a->jobs_fd);
    if (a->cancel_fd >= 0)
        close(a->cancel_fd);
    if (a->mgmt)
        evconnlistener_free(a->mgmt);
    if (a->http)
        evhttp_free(a->http);
    sy_admin_head_guard_free();
    if (a->stop_ev)
        event_free(a->stop_ev);
    if (a->resume_ev)
        event_free(a->resume_ev);
    if (a->jobs_ev)
        event_free(a->jobs_ev);
    if (a->base)
        event_base_free(a->base);
    sy_buf_free(&a->conf_text);
    pthread_mutex_destroy(&a->conf_lock);
    pthread_mutex_destroy(&a->jobs_lock);
    free(a);
}
