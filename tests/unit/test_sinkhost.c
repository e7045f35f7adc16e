/*
 * test_sinkhost.c - the plugin host, the graphite and console plugins, and
 * the netq client they share.
 *
 * The real plugins are loaded from SY_PLUGIN_DIR (default build/plugins).
 * Graphite is tested against a TCP listener this test opens on 127.0.0.1
 * at a port chosen at run time; the listener is closed and reopened to
 * play a carbon that goes away.  The host's retry list is tested with a
 * fake plugin defined here.  lib/netq.c is compiled into this test so
 * that a connection can be broken exactly in the middle of a line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/log.h"
#include "output/sinkhost.h"

#include "lib/backoff.c"
#include "lib/net.c"
#include "lib/chunkq.c"
#include "lib/netconn.c"
#include "lib/netq.c" /* plugins/lib, for the mid-line test */

#define TS 1700000000

/* SY_PLUGIN_DIR, else the plugins beside this test's build directory
 * (BUILD/tests/test_sinkhost -> BUILD/plugins), else build/plugins. */
static char plugin_dir_buf[4096];

static const char *plugin_dir(void)
{
    const char *d = getenv("SY_PLUGIN_DIR");
    if (d && *d)
        return d;
    return plugin_dir_buf[0] ? plugin_dir_buf : "build/plugins";
}

static void find_plugin_dir(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');
    char probe[4200];
    if (!slash)
        return;
    snprintf(plugin_dir_buf, sizeof(plugin_dir_buf), "%.*s/../plugins", (int)(slash - argv0),
             argv0);
    snprintf(probe, sizeof(probe), "%s/graphite.so", plugin_dir_buf);
    if (access(probe, R_OK) != 0)
        plugin_dir_buf[0] = '\0';
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static sy_setting set_str(const char *k, const char *v)
{
    return (sy_setting){ .key = (char *)k, .type = SY_SET_STRING, .str = (char *)v };
}

static sy_setting set_num(const char *k, double v)
{
    return (sy_setting){ .key = (char *)k, .type = SY_SET_NUMBER, .num = v };
}

static sy_setting set_bool(const char *k, int v)
{
    return (sy_setting){ .key = (char *)k, .type = SY_SET_BOOL, .boolean = v };
}

static sy_sink_stats stats_of(sy_sink *s)
{
    sy_sink_stats st;
    sy_sink_stats_get(s, &st);
    return st;
}

/* ------------------------------------------------------------------ */
/* A TCP server playing carbon                                          */
/* ------------------------------------------------------------------ */

typedef struct conn {
    int fd;
    char *data;
    size_t len, cap;
    int eof;
} conn;

typedef struct srv {
    int lfd;
    int port;
    conn c[16];
    int n;
    int paused; /* do not read (to fill the sender's buffers) */
} srv;

/* port 0: any free port.  rcvbuf > 0: a small receive buffer. */
static void srv_listen(srv *s, int port, int rcvbuf)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rcvbuf > 0)
        setsockopt(s->lfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    socklen_t len = sizeof(a);
    getsockname(s->lfd, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
}

static void srv_close_listener(srv *s)
{
    if (s->lfd >= 0)
        close(s->lfd);
    s->lfd = -1;
}

static void srv_close_conn(srv *s, int i)
{
    if (s->c[i].fd >= 0)
        close(s->c[i].fd);
    s->c[i].fd = -1;
}

static void srv_free(srv *s)
{
    srv_close_listener(s);
    for (int i = 0; i < s->n; i++) {
        srv_close_conn(s, i);
        free(s->c[i].data);
    }
    memset(s, 0, sizeof(*s));
    s->lfd = -1;
}

static void srv_poll(srv *s)
{
    while (s->lfd >= 0 && s->n < 16) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        s->c[s->n++] = (conn){ .fd = fd };
    }
    if (s->paused)
        return;
    for (int i = 0; i < s->n; i++) {
        conn *c = &s->c[i];
        while (c->fd >= 0 && !c->eof) {
            if (c->cap - c->len < 65536) {
                c->cap = c->cap * 2 + 65536;
                c->data = realloc(c->data, c->cap);
                assert_non_null(c->data);
            }
            ssize_t r = read(c->fd, c->data + c->len, c->cap - c->len);
            if (r > 0)
                c->len += (size_t)r;
            else if (r == 0 || (errno != EAGAIN && errno != EINTR))
                c->eof = 1;
            else
                break;
        }
    }
}

/* Reads at most n bytes of connection i, even while paused. */
static void srv_read_some(srv *s, int i, size_t n)
{
    conn *c = &s->c[i];
    if (c->cap - c->len < n) {
        c->cap = c->cap * 2 + n + 65536;
        c->data = realloc(c->data, c->cap);
        assert_non_null(c->data);
    }
    ssize_t r = read(c->fd, c->data + c->len, n);
    if (r > 0)
        c->len += (size_t)r;
}

/* Whole lines of every connection, in order; a connection's unterminated
 * tail is ignored, as carbon does.  Returns the count; *out is a malloc'd
 * array of malloc'd strings. */
static size_t srv_lines(srv *s, char ***out)
{
    size_t n = 0, cap = 1024;
    char **v = malloc(cap * sizeof(*v));
    for (int i = 0; i < s->n; i++) {
        const char *p = s->c[i].data, *end = p + s->c[i].len, *nl;
        while (p && p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
            if (n == cap)
                v = realloc(v, (cap *= 2) * sizeof(*v));
            v[n++] = strndup(p, (size_t)(nl - p));
            p = nl + 1;
        }
    }
    *out = v;
    return n;
}

static void lines_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static size_t srv_count_lines(srv *s)
{
    char **v;
    size_t n = srv_lines(s, &v);
    lines_free(v, n);
    return n;
}

/* A port nobody listens on (bound, then released). */
static int free_port(void)
{
    srv s = { .lfd = -1 };
    srv_listen(&s, 0, 0);
    int p = s.port;
    srv_close_listener(&s);
    return p;
}

/* Runs the loop (and the server) until cond holds or timeout_ms pass. */
static int pump(struct event_base *base, srv *s, int (*cond)(void *), void *arg, int timeout_ms)
{
    uint64_t end = mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        if (s)
            srv_poll(s);
        if (cond && cond(arg))
            return 1;
        if (mono_ms() >= end)
            return 0;
        usleep(500);
    }
}

/* ------------------------------------------------------------------ */
/* Batches                                                              */
/* ------------------------------------------------------------------ */

typedef struct mbatch {
    sy_metric *m;
    char (*names)[48];
    sy_metric_batch b;
} mbatch;

/* prefix.NNNNN with value NNNNN, for i in [from, from + n) */
static void mb_make(mbatch *x, const char *prefix, int from, int n)
{
    x->m = calloc((size_t)n, sizeof(*x->m));
    x->names = calloc((size_t)n, sizeof(*x->names));
    for (int i = 0; i < n; i++) {
        int len = snprintf(x->names[i], sizeof(x->names[i]), "%s.%05d", prefix, from + i);
        x->m[i] = (sy_metric){ .name = x->names[i], .name_len = (uint32_t)len,
                               .kind = SY_KIND_COUNTER, .value = from + i };
    }
    x->b = (sy_metric_batch){ .metrics = x->m, .count = (size_t)n, .timestamp = TS };
}

static void mb_free(mbatch *x)
{
    free(x->m);
    free(x->names);
}

static void expect_line(const char *line, const char *prefix, int i)
{
    char want[96];
    snprintf(want, sizeof(want), "%s.%05d %d %d", prefix, i, i, TS);
    if (strcmp(line, want) != 0)
        fail_msg("line \"%s\", want \"%s\"", line, want);
}

/* ------------------------------------------------------------------ */
/* Loading and validation                                               */
/* ------------------------------------------------------------------ */

static int nop_init(const sy_host_api *api, sy_host *h, void **st, char *err, size_t len)
{
    *st = NULL;
    return 0;
}
static sy_status nop_write(void *st, const sy_metric_batch *b) { return SY_OK; }
static sy_status nop_flush(void *st, int final) { return SY_OK; }
static void nop_close(void *st) {}

static const sy_sink_plugin good_plugin = {
    SY_SINK_HEADER,
    .name = "good",
    .init = nop_init,
    .write = nop_write,
    .flush = nop_flush,
    .close = nop_close,
};

static void test_validate(void **unused)
{
    char err[512];
    sy_sink_plugin p = good_plugin;
    assert_int_equal(sy_plugin_validate(&p, "good", err, sizeof(err)), 0);

    p.abi_major = 2;
    assert_int_equal(sy_plugin_validate(&p, "future", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "plugin 'future' was built for switchyard sink ABI 2"));
    assert_non_null(strstr(err, "this switchyard speaks ABI 1"));
    assert_non_null(strstr(err, "rebuild the plugin against the installed switchyard_sink.h"));

    p = good_plugin;
    p.struct_size = (uint32_t)offsetof(sy_sink_plugin, close);
    assert_int_equal(sy_plugin_validate(&p, "old", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "rebuild"));

    p = good_plugin;
    p.struct_size = (uint32_t)sizeof(sy_sink_plugin) + 64; /* a newer minor: fine */
    p.abi_minor = 7;
    assert_int_equal(sy_plugin_validate(&p, "newer", err, sizeof(err)), 0);

    p = good_plugin;
    p.flush = NULL;
    assert_int_equal(sy_plugin_validate(&p, "noflush", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'flush'"));

    assert_int_equal(sy_plugin_validate(NULL, "none", err, sizeof(err)), -1);
}

static void test_load(void **unused)
{
    char err[1024];
    const sy_sink_plugin *g = sy_plugin_load(plugin_dir(), "graphite", err, sizeof(err));
    if (!g)
        fail_msg("%s", err);
    assert_string_equal(g->name, "graphite");
    assert_ptr_equal(sy_plugin_load(plugin_dir(), "graphite", err, sizeof(err)), g);
    const sy_sink_plugin *c = sy_plugin_load(plugin_dir(), "console", err, sizeof(err));
    assert_non_null(c);
    assert_ptr_not_equal(c, g);

    assert_null(sy_plugin_load(plugin_dir(), "graphit", err, sizeof(err)));
    assert_non_null(strstr(err, "no plugin 'graphit' in "));
    assert_non_null(strstr(err, "(available: "));
    assert_non_null(strstr(err, "console"));
    assert_non_null(strstr(err, "did you mean 'graphite'?"));

    assert_null(sy_plugin_load(plugin_dir(), "../graphite", err, sizeof(err)));
    assert_non_null(strstr(err, "invalid plugin name"));
    assert_null(sy_plugin_load("/nonexistent-dir", "graphite", err, sizeof(err)));
    assert_non_null(strstr(err, "no plugin 'graphite'"));

    /* a file that is not a shared object: dlopen's own message */
    char dir[] = "/tmp/sy-plugins-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/junk.so", dir);
    FILE *f = fopen(path, "w");
    fputs("not an ELF file\n", f);
    fclose(f);
    assert_null(sy_plugin_load(dir, "junk", err, sizeof(err)));
    assert_non_null(strstr(err, "cannot load plugin 'junk'"));
    unlink(path);
    rmdir(dir);
}

static void test_check_settings(void **unused)
{
    char err[1024];
    const sy_sink_plugin *g = sy_plugin_load(plugin_dir(), "graphite", err, sizeof(err));
    assert_non_null(g);

    sy_setting ok[] = { set_str("plugin", "graphite"), set_str("host", "127.0.0.1"),
                        set_num("port", 2003), set_num("retryMaxMetrics", 10) };
    assert_int_equal(sy_sink_check_settings(g, "carbon", ok, 4, err, sizeof(err)), 0);

    sy_setting typo[] = { set_str("plugin", "graphite"), set_num("prot", 2003) };
    assert_int_equal(sy_sink_check_settings(g, "carbon", typo, 2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "sink 'carbon': unknown setting 'prot' for plugin 'graphite'"));
    assert_non_null(strstr(err, "port"));

    sy_setting badplugin[] = { set_num("plugin", 1) };
    assert_int_equal(sy_sink_check_settings(g, "carbon", badplugin, 1, err, sizeof(err)), -1);
    sy_setting badretry[] = { set_num("retryMaxMetrics", -1) };
    assert_int_equal(sy_sink_check_settings(g, "carbon", badretry, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "retryMaxMetrics"));

    /* open applies the same check */
    struct event_base *base = event_base_new();
    assert_null(sy_sink_open(base, "carbon", g, typo, 2, err, sizeof(err)));
    assert_non_null(strstr(err, "unknown setting 'prot'"));
    /* and a plugin's own refusal names the sink */
    sy_setting badport[] = { set_num("port", 70000) };
    assert_null(sy_sink_open(base, "carbon", g, badport, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "sink 'carbon'"));
    assert_non_null(strstr(err, "port"));
    sy_setting strport[] = { set_str("port", "2003") };
    assert_null(sy_sink_open(base, "carbon", g, strport, 1, err, sizeof(err)));
    event_base_free(base);
}

/* What a plugin's check saw of the host, for test_sink_check. */
static struct {
    int calls;
    int timer_null, watch_null, base_null;
    int64_t port;
} check_seen;

static void never(void *arg) {}
static void never_fd(int fd, int ev, void *arg) {}

static int probe_check(const sy_host_api *api, sy_host *h, char *err, size_t len)
{
    check_seen.calls++;
    check_seen.timer_null = api->timer_new(h, never, NULL) == NULL;
    check_seen.watch_null = api->watch_new(h, 0, never_fd, NULL) == NULL;
    check_seen.base_null = api->event_base(h) == NULL;
    api->log(h, SY_LOG_INFO, "an info line a check does not show");
    if (api->setting_int(h, "port", 1, &check_seen.port) < 0)
        return -1; /* no message: the host's own is used */
    if (check_seen.port > 10) {
        snprintf(err, len, "setting 'port' is too big");
        return -1;
    }
    return 0;
}

static void test_sink_check(void **unused)
{
    char err[1024];
    static const char *const keys[] = { "port", NULL };
    sy_sink_plugin p = good_plugin;
    p.settings = keys;
    p.check = probe_check;

    memset(&check_seen, 0, sizeof(check_seen));
    sy_setting ok[] = { set_str("plugin", "probe"), set_num("port", 5) };
    assert_int_equal(sy_sink_check(&p, "s", ok, 2, err, sizeof(err)), 0);
    assert_int_equal(check_seen.calls, 1);
    assert_int_equal(check_seen.port, 5);
    /* nothing can be started from a check */
    assert_true(check_seen.timer_null);
    assert_true(check_seen.watch_null);
    assert_true(check_seen.base_null);

    sy_setting big[] = { set_num("port", 50) };
    assert_int_equal(sy_sink_check(&p, "s", big, 1, err, sizeof(err)), -1);
    assert_string_equal(err, "sink 's': setting 'port' is too big");

    sy_setting str[] = { set_str("port", "abc") };
    assert_int_equal(sy_sink_check(&p, "s", str, 1, err, sizeof(err)), -1);
    assert_string_equal(err, "sink 's': setting 'port' must be a whole number, not a string");

    /* the key check runs first, with a hint */
    check_seen.calls = 0;
    sy_setting typo[] = { set_num("prot", 5) };
    assert_int_equal(sy_sink_check(&p, "s", typo, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown setting 'prot' for plugin 'good'; did you mean 'port'?"));
    assert_int_equal(check_seen.calls, 0);
    sy_setting far[] = { set_num("zzzzzz", 5) };
    assert_int_equal(sy_sink_check(&p, "s", far, 1, err, sizeof(err)), -1);
    assert_null(strstr(err, "did you mean"));

    /* A plugin built against ABI 1.0: its descriptor ends at close, so
     * whatever lies beyond (here a check that would refuse) is not read. */
    p.struct_size = (uint32_t)offsetof(sy_sink_plugin, check);
    assert_int_equal(sy_plugin_validate(&p, "old", err, sizeof(err)), 0);
    assert_int_equal(sy_sink_check(&p, "s", big, 1, err, sizeof(err)), 0);
    assert_int_equal(check_seen.calls, 0);
    /* and so does one that leaves check NULL */
    p = good_plugin;
    assert_int_equal(sy_sink_check(&p, "s", big, 1, err, sizeof(err)), 0);

    /* the real plugins refuse in a check what init refuses */
    const sy_sink_plugin *g = sy_plugin_load(plugin_dir(), "graphite", err, sizeof(err));
    assert_non_null(g);
    sy_setting gbad[] = { set_str("plugin", "graphite"), set_str("port", "abc") };
    assert_int_equal(sy_sink_check(g, "carbon", gbad, 2, err, sizeof(err)), -1);
    assert_string_equal(err, "sink 'carbon': setting 'port' must be a whole number, not a string");
    sy_setting gok[] = { set_str("plugin", "graphite"), set_num("port", 2003) };
    assert_int_equal(sy_sink_check(g, "carbon", gok, 2, err, sizeof(err)), 0);

    /* ABI 1.3 write_lines: read only when struct_size covers it */
    assert_int_equal(sy_sink_plugin_takes_lines(g), 0);
    const sy_sink_plugin *rp = sy_plugin_load(plugin_dir(), "repeater", err, sizeof(err));
    assert_non_null(rp);
    assert_int_equal(sy_sink_plugin_takes_lines(rp), 1);
    p = *rp;
    p.struct_size = (uint32_t)(offsetof(sy_sink_plugin, take_back) + sizeof(p.take_back));
    assert_int_equal(sy_sink_plugin_takes_lines(&p), 0); /* a 1.2 plugin */
}

static void test_settings_free(void **unused)
{
    sy_setting *s = calloc(3, sizeof(*s));
    s[0] = (sy_setting){ .key = strdup("a"), .type = SY_SET_STRING, .str = strdup("x") };
    s[1] = (sy_setting){ .key = strdup("b"), .type = SY_SET_NUMBER, .num = 1 };
    s[2] = (sy_setting){ .key = strdup("c"), .type = SY_SET_LIST, .list_len = 2 };
    s[2].list = calloc(3, sizeof(char *));
    s[2].list[0] = strdup("1");
    s[2].list[1] = strdup("two");
    sy_settings_free(s, 3);
    sy_settings_free(NULL, 0);
}

/* ------------------------------------------------------------------ */
/* A fake plugin for the host's own behaviour                           */
/* ------------------------------------------------------------------ */

typedef struct fake {
    const sy_host_api *api;
    sy_host *host;
    int always_retry;
    int retry_left;
    int error_next;
    int flush_retry_left;
    int flushes, final_flushes, closed;
    size_t pending;
    char got[64][48];
    int ngot;
    int nwrites;
} fake;

static fake *the_fake;

static int fake_init(const sy_host_api *api, sy_host *h, void **st, char *err, size_t len)
{
    int fail = 0;
    api->setting_bool(h, "failInit", 0, &fail);
    if (fail) {
        snprintf(err, len, "told to fail");
        return -1;
    }
    fake *f = calloc(1, sizeof(*f));
    f->api = api;
    f->host = h;
    the_fake = f;
    *st = f;
    return 0;
}

static void fake_record(fake *f, const char *name, size_t len)
{
    if (f->ngot < 64)
        snprintf(f->got[f->ngot++], sizeof(f->got[0]), "%.*s", (int)len, name);
}

static sy_status fake_answer(fake *f)
{
    if (f->error_next) {
        f->error_next--;
        f->api->log(f->host, SY_LOG_ERROR, "the fake says no");
        return SY_ERROR;
    }
    if (f->always_retry)
        return SY_RETRY;
    if (f->retry_left) {
        f->retry_left--;
        return SY_RETRY;
    }
    return SY_OK;
}

static sy_status fake_write(void *st, const sy_metric_batch *b)
{
    fake *f = st;
    sy_status r = fake_answer(f);
    if (r != SY_OK)
        return r;
    f->nwrites++;
    for (size_t i = 0; i < b->count; i++)
        fake_record(f, b->metrics[i].name, b->metrics[i].name_len);
    return SY_OK;
}

static sy_status fake_write_samples(void *st, const sy_sample_batch *b)
{
    fake *f = st;
    sy_status r = fake_answer(f);
    if (r != SY_OK)
        return r;
    for (size_t i = 0; i < b->count; i++) {
        char buf[48];
        snprintf(buf, sizeof(buf), "%.*s=%.*s", (int)b->samples[i].name_len, b->samples[i].name,
                 (int)b->samples[i].text_len, b->samples[i].text);
        fake_record(f, buf, strlen(buf));
    }
    return SY_OK;
}

static sy_status fake_flush(void *st, int final)
{
    fake *f = st;
    if (f->flush_retry_left) {
        f->flush_retry_left--;
        return SY_RETRY;
    }
    f->flushes++;
    f->final_flushes += final;
    return SY_OK;
}

static size_t fake_pending(void *st)
{
    return ((fake *)st)->pending;
}

static void fake_close(void *st)
{
    free(st);
    the_fake = NULL;
}

static const sy_sink_plugin fake_plugin = {
    SY_SINK_HEADER,
    .name = "fake",
    .settings = NULL, /* anything goes */
    .init = fake_init,
    .write = fake_write,
    .write_samples = fake_write_samples,
    .flush = fake_flush,
    .pending = fake_pending,
    .close = fake_close,
};

static int fired;
static void on_timer(void *arg)
{
    fired++;
}

static int watch_events_seen;
static void on_watch(int fd, int events, void *arg)
{
    char c;
    watch_events_seen |= events;
    if (read(fd, &c, 1) < 0)
        watch_events_seen |= 0x100;
}

static int fired_cond(void *arg)
{
    return fired >= *(int *)arg;
}

static void test_host_api(void **unused)
{
    char err[512];
    struct event_base *base = event_base_new();
    char *list[] = { "a", "2" };
    sy_setting s[] = {
        set_str("name", "x"), set_num("n", 42), set_num("f", 1.5), set_bool("b", 1),
        (sy_setting){ .key = "l", .type = SY_SET_LIST, .list = list, .list_len = 2 },
        set_num("big", 1e30),
    };
    sy_sink *sink = sy_sink_open(base, "probe", &fake_plugin, s, 6, err, sizeof(err));
    if (!sink)
        fail_msg("%s", err);
    fake *f = the_fake;
    const sy_host_api *api = f->api;
    sy_host *h = f->host;

    assert_string_equal(sy_sink_name(sink), "probe");
    assert_string_equal(api->instance_name(h), "probe");
    assert_int_equal(api->abi_major, SY_SINK_ABI_MAJOR);
    assert_int_equal(api->struct_size, sizeof(sy_host_api));

    const char *str;
    assert_int_equal(api->setting_string(h, "name", "d", &str), 0);
    assert_string_equal(str, "x");
    assert_int_equal(api->setting_string(h, "missing", "d", &str), 1);
    assert_string_equal(str, "d");
    assert_int_equal(api->setting_string(h, "n", "d", &str), -1);

    int64_t i64;
    assert_int_equal(api->setting_int(h, "n", 7, &i64), 0);
    assert_int_equal(i64, 42);
    assert_int_equal(api->setting_int(h, "missing", 7, &i64), 1);
    assert_int_equal(i64, 7);
    assert_int_equal(api->setting_int(h, "f", 7, &i64), -1);
    assert_int_equal(api->setting_int(h, "big", 7, &i64), -1);
    assert_int_equal(api->setting_int(h, "name", 7, &i64), -1);

    double d;
    assert_int_equal(api->setting_number(h, "f", 0, &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(api->setting_number(h, "missing", 2.5, &d), 1);
    assert_true(d == 2.5);
    assert_int_equal(api->setting_number(h, "b", 0, &d), -1);

    int b;
    assert_int_equal(api->setting_bool(h, "b", 0, &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(api->setting_bool(h, "missing", 1, &b), 1);
    assert_int_equal(b, 1);
    assert_int_equal(api->setting_bool(h, "n", 0, &b), -1);

    assert_int_equal(api->setting_list_len(h, "l"), 2);
    assert_string_equal(api->setting_list_string(h, "l", 0), "a");
    assert_string_equal(api->setting_list_string(h, "l", 1), "2");
    assert_null(api->setting_list_string(h, "l", 2));
    assert_null(api->setting_list_string(h, "l", -1));
    assert_int_equal(api->setting_list_len(h, "name"), -1);
    assert_int_equal(api->setting_list_len(h, "missing"), -1);

    char num[32];
    assert_int_equal(api->format_number(0.1, num), 3);
    assert_string_equal(num, "0.1");
    api->format_number(1e21, num);
    assert_string_equal(num, "1e+21");

    /* escape_text: the console's escaping, whole characters while 4 bytes
     * are left; too small a buffer takes nothing */
    char esc[16];
    size_t used;
    assert_int_equal(api->escape_text("a\rEND\x1b\xff", 7, esc, sizeof esc, &used), 14);
    assert_int_equal(used, 7);
    assert_memory_equal(esc, "a\\rEND\\x1B\\xFF", 14);
    assert_int_equal(api->escape_text("a\rb", 3, esc, 5, &used), 3); /* "a\\r", then < 4 left */
    assert_int_equal(used, 2);
    assert_int_equal(api->escape_text("ab", 2, esc, 3, &used), 0);
    assert_int_equal(used, 0);

    uint64_t now = api->now_ms(h);
    assert_true(now / 1000 >= (uint64_t)time(NULL) - 1 && now / 1000 <= (uint64_t)time(NULL) + 1);
    uint64_t m1 = api->monotonic_ms(h), m2 = api->monotonic_ms(h);
    assert_true(m2 >= m1);

    api->stat_add(h, SY_STAT_SENT, 5);
    api->stat_add(h, SY_STAT_SENT, 2);
    api->stat_set(h, SY_STAT_QUEUED, 9);
    api->stat_set(h, SY_STAT_CONNECTED, 1);
    api->stat_add(h, 99, 1);  /* ignored */
    api->stat_set(h, -1, 1);  /* ignored */
    sy_sink_stats st = stats_of(sink);
    assert_int_equal(st.sent, 7);
    assert_int_equal(st.queued, 9);
    assert_int_equal(st.connected, 1);

    /* timers: one-shot, re-armable, stoppable */
    fired = 0;
    sy_timer *t = api->timer_new(h, on_timer, NULL);
    assert_non_null(t);
    api->timer_start(t, 5);
    int one = 1, two = 2;
    assert_true(pump(base, NULL, fired_cond, &one, 1000));
    pump(base, NULL, NULL, NULL, 30);
    assert_int_equal(fired, 1);
    api->timer_start(t, 5);
    assert_true(pump(base, NULL, fired_cond, &two, 1000));
    api->timer_start(t, 10);
    api->timer_stop(t);
    pump(base, NULL, NULL, NULL, 40);
    assert_int_equal(fired, 2);
    api->timer_free(t);

    /* watches */
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    sy_watch *w = api->watch_new(h, p[0], on_watch, NULL);
    assert_non_null(w);
    watch_events_seen = 0;
    api->watch_set(w, SY_WATCH_READ);
    assert_int_equal(write(p[1], "x", 1), 1);
    pump(base, NULL, NULL, NULL, 30);
    assert_int_equal(watch_events_seen, SY_WATCH_READ);
    watch_events_seen = 0;
    api->watch_set(w, 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    pump(base, NULL, NULL, NULL, 30);
    assert_int_equal(watch_events_seen, 0);
    api->watch_set(w, SY_WATCH_READ);
    pump(base, NULL, NULL, NULL, 30);
    assert_int_equal(watch_events_seen, SY_WATCH_READ);
    /* leave it: close frees what a plugin forgot */
    sy_timer *forgotten = api->timer_new(h, on_timer, NULL);
    api->timer_start(forgotten, 100000);

    assert_ptr_equal(api->event_base(h), base);
    sy_sink_close(sink);
    close(p[0]);
    close(p[1]);

    /* init failing: a message naming the sink and the plugin's reason */
    sy_setting failing[] = { set_bool("failInit", 1) };
    assert_null(sy_sink_open(base, "broken", &fake_plugin, failing, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "sink 'broken'"));
    assert_non_null(strstr(err, "told to fail"));
    event_base_free(base);
}

static int held_empty(void *arg)
{
    return stats_of(arg).retry_held == 0;
}

static void test_retry(void **unused)
{
    char err[512];
    struct event_base *base = event_base_new();
    sy_setting s[] = { set_num("retryMaxMetrics", 5) };
    sy_sink *sink = sy_sink_open(base, "flaky", &fake_plugin, s, 1, err, sizeof(err));
    assert_non_null(sink);
    fake *f = the_fake;

    /* borrowed names: overwritten after each write, so the host must copy */
    char names[3][2][8] = { { "a1", "a2" }, { "b1", "b2" }, { "c1", "c2" } };
    sy_metric m[3][2];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            m[i][j] = (sy_metric){ .name = names[i][j], .name_len = 2, .value = i };

    f->always_retry = 1;
    for (int i = 0; i < 3; i++) {
        sy_metric_batch b = { .metrics = m[i], .count = 2, .timestamp = TS + i };
        sy_sink_write(sink, &b);
        memset(names[i], 'X', sizeof(names[i]));
    }
    sy_sink_stats st = stats_of(sink);
    assert_int_equal(st.retry_held, 5);           /* a1 a2 b1 b2 c1 */
    assert_int_equal(st.metrics_dropped_by_host, 1); /* c2: beyond the bound */
    assert_int_equal(st.batches_retried, 3);
    assert_int_equal(sy_sink_pending(sink), 5);
    assert_int_equal(f->ngot, 0);

    /* a flush while batches are held: flushed now, and again after them */
    sy_sink_flush(sink, 0);
    assert_int_equal(f->flushes, 1);

    f->always_retry = 0;
    assert_true(pump(base, NULL, held_empty, sink, 1000));
    assert_int_equal(f->ngot, 5);
    const char *want[] = { "a1", "a2", "b1", "b2", "c1" };
    for (int i = 0; i < 5; i++)
        assert_string_equal(f->got[i], want[i]);
    assert_int_equal(f->flushes, 2);

    /* RETRY once: held, and offered again before the next batch */
    f->ngot = 0;
    f->retry_left = 1;
    char n1[] = "d1", n2[] = "e1";
    sy_metric md = { .name = n1, .name_len = 2 }, me = { .name = n2, .name_len = 2 };
    sy_metric_batch bd = { .metrics = &md, .count = 1, .timestamp = TS };
    sy_metric_batch be = { .metrics = &me, .count = 1, .timestamp = TS };
    sy_sink_write(sink, &bd);
    assert_int_equal(stats_of(sink).retry_held, 1);
    sy_sink_write(sink, &be);
    assert_int_equal(stats_of(sink).retry_held, 0);
    assert_int_equal(f->ngot, 2);
    assert_string_equal(f->got[0], "d1");
    assert_string_equal(f->got[1], "e1");

    /* SY_ERROR: counted as dropped by the host */
    f->error_next = 1;
    sy_sink_write(sink, &bd);
    st = stats_of(sink);
    assert_int_equal(st.metrics_dropped_by_host, 2);
    assert_int_equal(st.write_errors, 1);

    /* samples: not NUL-terminated, copied when held */
    f->ngot = 0;
    f->retry_left = 1;
    char raw[] = "tmr:12.5";
    sy_sample smp = { .name = raw, .name_len = 3, .text = raw + 4, .text_len = 4,
                      .value = 12.5, .rate = 1, .type = SY_SAMPLE_TIMER };
    sy_sample_batch sb = { .samples = &smp, .count = 1 };
    sy_sink_write_samples(sink, &sb);
    memset(raw, 'Z', sizeof(raw) - 1);
    assert_int_equal(stats_of(sink).retry_held, 1);
    assert_true(pump(base, NULL, held_empty, sink, 1000));
    assert_int_equal(f->ngot, 1);
    assert_string_equal(f->got[0], "tmr=12.5");

    /* a flush answered SY_RETRY is called again later */
    f->flush_retry_left = 1;
    int before = f->flushes;
    sy_sink_flush(sink, 0);
    assert_int_equal(f->flushes, before);
    pump(base, NULL, NULL, NULL, 150);
    assert_int_equal(f->flushes, before + 1);

    /* drain: nothing pending, the final flush exactly once */
    assert_int_equal(sy_sinks_drain(base, &sink, 1, 1000), 0);
    assert_int_equal(f->final_flushes, 1);
    sy_sink_close(sink);

    /* drain that cannot finish: held batches stay, the plugin still gets
     * its one final flush, and the held metrics count as dropped at close */
    sink = sy_sink_open(base, "stuck", &fake_plugin, NULL, 0, err, sizeof(err));
    assert_non_null(sink);
    f = the_fake;
    f->always_retry = 1;
    sy_sink_write(sink, &bd);
    f->pending = 3;
    uint64_t t0 = mono_ms();
    assert_int_equal(sy_sinks_drain(base, &sink, 1, 150), -1);
    assert_true(mono_ms() - t0 >= 140);
    assert_int_equal(f->final_flushes, 1);
    assert_int_equal(sy_sink_pending(sink), 4);
    sy_sink_flush(sink, 1); /* after the final flush: ignored */
    assert_int_equal(f->final_flushes, 1);
    sy_sink_close(sink);
    event_base_free(base);
}

/* ABI 1.4: the clients' DogStatsD times reach a plugin that asks for
 * them (SY_SINK_FEATURE_TIMESTAMPS), also when a batch was held for a
 * retry; a plugin without the flag, or built before 1.4 (its struct_size
 * ends before `features`), gets NULL. */
static int64_t ts_seen[8];
static int ts_calls, ts_null;

static sy_status ts_write_samples(void *st, const sy_sample_batch *b)
{
    fake *f = st;
    sy_status r = fake_answer(f);
    if (r != SY_OK)
        return r;
    ts_calls++;
    if (!sy_host_has_timestamps(f->api) || !b->timestamps_ms) {
        ts_null++;
        return SY_OK;
    }
    for (size_t i = 0; i < b->count && i < 8; i++)
        ts_seen[i] = b->timestamps_ms[i];
    return SY_OK;
}

static void test_sample_timestamps(void **unused)
{
    char err[256];
    struct event_base *base = event_base_new();
    sy_sink_plugin with = fake_plugin, without = fake_plugin, old = fake_plugin;
    with.write_samples = without.write_samples = old.write_samples = ts_write_samples;
    with.features = SY_SINK_FEATURE_TIMESTAMPS;
    old.features = SY_SINK_FEATURE_TIMESTAMPS; /* beyond its struct_size: never read */
    old.struct_size = (uint32_t)offsetof(sy_sink_plugin, features);
    sy_sample smp[2] = {
        { .name = "a", .name_len = 1, .text = "1", .text_len = 1, .rate = 1, .type = SY_SAMPLE_GAUGE },
        { .name = "b", .name_len = 1, .text = "2", .text_len = 1, .rate = 1, .type = SY_SAMPLE_GAUGE },
    };
    int64_t ts[2] = { 1700000000000, 0 };
    sy_sample_batch sb = { .samples = smp, .count = 2, .timestamps_ms = ts };

    sy_sink *sink = sy_sink_open(base, "ts", &with, NULL, 0, err, sizeof(err));
    assert_non_null(sink);
    assert_true(sy_sink_plugin_takes_timestamps(&with));
    ts_calls = ts_null = 0;
    memset(ts_seen, 0xff, sizeof(ts_seen));
    sy_sink_write_samples(sink, &sb);
    assert_int_equal(ts_calls, 1);
    assert_int_equal(ts_null, 0);
    assert_true(ts_seen[0] == 1700000000000 && ts_seen[1] == 0);
    /* held for a retry: the times are copied with the samples */
    the_fake->retry_left = 1;
    memset(ts_seen, 0xff, sizeof(ts_seen));
    sy_sink_write_samples(sink, &sb);
    ts[0] = 5; /* the caller's array is borrowed: gone after the call */
    assert_int_equal(stats_of(sink).retry_held, 2);
    assert_true(pump(base, NULL, held_empty, sink, 1000));
    assert_int_equal(ts_calls, 2);
    assert_true(ts_seen[0] == 1700000000000 && ts_seen[1] == 0);
    assert_int_equal(sy_sinks_drain(base, &sink, 1, 100), 0);
    sy_sink_close(sink);

    const sy_sink_plugin *others[] = { &without, &old };
    for (int k = 0; k < 2; k++) {
        sink = sy_sink_open(base, "nots", others[k], NULL, 0, err, sizeof(err));
        assert_non_null(sink);
        assert_false(sy_sink_plugin_takes_timestamps(others[k]));
        ts_calls = ts_null = 0;
        sy_sink_write_samples(sink, &sb);
        assert_int_equal(ts_calls, 1);
        assert_int_equal(ts_null, 1);
        assert_int_equal(sy_sinks_drain(base, &sink, 1, 100), 0);
        sy_sink_close(sink);
    }
    event_base_free(base);
}

/* ABI 1.6: a sink with a disk spool keeps the DogStatsD lines its plugin
 * answers SY_RETRY or SY_ERROR to (and those written while the spool holds
 * any), replays them through write_lines in order, and at shutdown asks
 * for what the plugin's queue holds with take_back_lines, which a plugin
 * built before 1.6 (struct_size ending before it) never gets. */
static sy_status fake_write_lines(void *st, const char *const *lines, const uint32_t *lens,
                                  size_t n)
{
    fake *f = st;
    sy_status r = fake_answer(f);
    if (r != SY_OK)
        return r;
    for (size_t i = 0; i < n; i++)
        fake_record(f, lines[i], lens[i]);
    return SY_OK;
}

static int take_back_lines_calls;

static size_t fake_take_back_lines(void *st,
                                   void (*keep)(void *ctx, const char *const *lines,
                                                const uint32_t *lens, size_t n),
                                   void *ctx)
{
    static const char *const kept[2] = { "_sc|kept.a|0", "_sc|kept.b|1" };
    static const uint32_t lens[2] = { 12, 12 };
    take_back_lines_calls++;
    keep(ctx, kept, lens, 2);
    ((fake *)st)->pending = 0;
    return 2;
}

static int64_t lines_want;

static int lines_replayed(void *arg)
{
    return stats_of(arg).spool_lines_replayed >= lines_want;
}

static void test_lines_spool(void **unused)
{
    char err[512], dir[64], sub[128];
    snprintf(dir, sizeof(dir), "/tmp/sy-test-sinkhost-XXXXXX");
    assert_non_null(mkdtemp(dir));
    struct event_base *base = event_base_new();
    sy_sink_plugin lp = fake_plugin;
    lp.write_lines = fake_write_lines;
    lp.take_back_lines = fake_take_back_lines;
    snprintf(sub, sizeof(sub), "%s/new", dir);
    sy_setting s[] = { set_str("spool.dir", sub) };
    sy_sink *sink = sy_sink_open(base, "ev", &lp, s, 1, err, sizeof(err));
    assert_non_null(sink);
    fake *f = the_fake;

    /* SY_RETRY: spooled, not dropped; the next lines queue behind them */
    const char *a[3] = { "_e{1,1}:a|b", "_sc|x|0", "_sc|y|2" };
    const uint32_t al[3] = { 11, 7, 7 };
    const char *z[1] = { "_sc|z|3" };
    const uint32_t zl[1] = { 7 };
    f->retry_left = 1;
    sy_sink_write_lines(sink, a, al, 3);
    sy_sink_write_lines(sink, z, zl, 1);
    sy_sink_stats st = stats_of(sink);
    assert_int_equal(st.spool_lines_spooled, 4);
    assert_int_equal(st.metrics_dropped_by_host, 0);
    assert_int_equal(f->ngot, 0);
    lines_want = 4;
    assert_true(pump(base, NULL, lines_replayed, sink, 2000));
    assert_int_equal(f->ngot, 4);
    assert_string_equal(f->got[0], "_e{1,1}:a|b");
    assert_string_equal(f->got[1], "_sc|x|0");
    assert_string_equal(f->got[2], "_sc|y|2");
    assert_string_equal(f->got[3], "_sc|z|3");

    /* SY_ERROR: spooled too, offered again by replay */
    f->error_next = 1;
    sy_sink_write_lines(sink, z, zl, 1);
    assert_int_equal(stats_of(sink).spool_lines_spooled, 5);
    lines_want = 5;
    assert_true(pump(base, NULL, lines_replayed, sink, 2000));
    assert_int_equal(f->ngot, 5);
    assert_int_equal(stats_of(sink).metrics_dropped_by_host, 0);

    /* shutdown with lines in the plugin's queue: taken back and spooled */
    f->pending = 2;
    take_back_lines_calls = 0;
    assert_int_equal(sy_sinks_drain(base, &sink, 1, 50), 0);
    assert_int_equal(take_back_lines_calls, 1);
    assert_int_equal(stats_of(sink).spool_lines_spooled, 7);
    sy_sink_close(sink);

    /* a plugin built before 1.6: take_back_lines is never read */
    sy_sink_plugin old = lp;
    old.struct_size = (uint32_t)offsetof(sy_sink_plugin, take_back_lines);
    snprintf(sub, sizeof(sub), "%s/old", dir);
    sy_setting so[] = { set_str("spool.dir", sub) };
    sink = sy_sink_open(base, "ev", &old, so, 1, err, sizeof(err));
    assert_non_null(sink);
    the_fake->pending = 2;
    assert_int_equal(sy_sinks_drain(base, &sink, 1, 50), -1);
    assert_int_equal(take_back_lines_calls, 1);
    assert_int_equal(stats_of(sink).spool_lines_spooled, 0);
    sy_sink_close(sink);
    event_base_free(base);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* A plugin without write_samples: samples are skipped, not dropped. */
static void test_no_samples(void **unused)
{
    char err[256];
    struct event_base *base = event_base_new();
    sy_sink *sink = sy_sink_open(base, "plain", &good_plugin, NULL, 0, err, sizeof(err));
    assert_non_null(sink);
    sy_sample smp = { .name = "x", .name_len = 1, .text = "1", .text_len = 1, .rate = 1,
                      .type = SY_SAMPLE_COUNTER };
    sy_sample_batch sb = { .samples = &smp, .count = 1 };
    sy_sink_write_samples(sink, &sb);
    sy_sink_stats st = stats_of(sink);
    assert_int_equal(st.metrics_dropped_by_host, 0);
    assert_int_equal(st.retry_held, 0);
    assert_int_equal(sy_sinks_drain(base, &sink, 1, 100), 0);
    sy_sink_close(sink);
    event_base_free(base);
}

/* ------------------------------------------------------------------ */
/* graphite                                                             */
/* ------------------------------------------------------------------ */

typedef struct wait_lines {
    srv *s;
    size_t n;
} wait_lines;

static int have_lines(void *arg)
{
    wait_lines *w = arg;
    return srv_count_lines(w->s) >= w->n;
}

static int sink_idle(void *arg)
{
    return sy_sink_pending(arg) == 0;
}

static int sink_disconnected(void *arg)
{
    return stats_of(arg).connected == 0;
}

static int sink_connected(void *arg)
{
    return stats_of(arg).connected == 1;
}

static sy_sink *open_graphite(struct event_base *base, int port, double max_queue, char *err,
                              size_t errlen)
{
    const sy_sink_plugin *g = sy_plugin_load(plugin_dir(), "graphite", err, errlen);
    assert_non_null(g);
    sy_setting s[] = { set_str("plugin", "graphite"), set_str("host", "127.0.0.1"),
                       set_num("port", port), set_num("maxQueueBytes", max_queue),
                       set_num("reconnectMinMs", 10), set_num("reconnectMaxMs", 50),
                       set_num("connectTimeoutMs", 1000) };
    sy_sink *sink = sy_sink_open(base, "carbon", g, s, 7, err, errlen);
    if (!sink)
        fail_msg("%s", err);
    return sink;
}

static void test_graphite_lines(void **unused)
{
    char err[512];
    struct event_base *base = event_base_new();
    srv s = { .lfd = -1 };
    srv_listen(&s, 0, 0);
    sy_sink *sink = open_graphite(base, s.port, 1 << 20, err, sizeof(err));

    sy_metric m[] = {
        { .name = "a.b", .name_len = 3, .value = 1 },
        { .name = "c.d;tag=x", .name_len = 9, .value = 0.1 },
        { .name = "bad name", .name_len = 8, .value = 1 },
        { .name = "e", .name_len = 1, .value = -3e21 },
        { .name = "nl\nx", .name_len = 4, .value = 1 },
        { .name = "f", .name_len = 1, .value = 150 },
    };
    sy_metric_batch b = { .metrics = m, .count = 6, .timestamp = TS };
    sy_sink_write(sink, &b);
    sy_sink_flush(sink, 0);
    wait_lines w = { &s, 4 };
    assert_true(pump(base, &s, have_lines, &w, 3000));
    assert_true(pump(base, &s, sink_idle, sink, 1000));
    pump(base, &s, NULL, NULL, 20);
    assert_int_equal(s.n, 1);
    const char *want = "a.b 1 1700000000\n"
                       "c.d;tag=x 0.1 1700000000\n"
                       "e -3e+21 1700000000\n"
                       "f 150 1700000000\n";
    assert_int_equal(s.c[0].len, strlen(want));
    assert_memory_equal(s.c[0].data, want, strlen(want));

    sy_sink_stats st = stats_of(sink);
    assert_int_equal(st.sent, 4);
    assert_int_equal(st.dropped, 2); /* the names with whitespace */
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(st.connected, 1);
    assert_int_equal(st.reconnects, 0);

    /* samples are not carbon's business */
    sy_sample smp = { .name = "x", .name_len = 1, .text = "1", .text_len = 1, .rate = 1,
                      .type = SY_SAMPLE_COUNTER };
    sy_sample_batch sb = { .samples = &smp, .count = 1 };
    sy_sink_write_samples(sink, &sb);
    assert_int_equal(stats_of(sink).metrics_dropped_by_host, 0);

    assert_int_equal(sy_sinks_drain(base, &sink, 1, 1000), 0);
    sy_sink_close(sink);
    srv_free(&s);
    event_base_free(base);
}

static void test_graphite_down_at_start(void **unused)
{
    char err[512];
    struct event_base *base = event_base_new();
    int port = free_port();
    sy_sink *sink = open_graphite(base, port, 1 << 20, err, sizeof(err));

    mbatch b[3];
    for (int i = 0; i < 3; i++) {
        mb_make(&b[i], "down", i * 100, 100);
        uint64_t t0 = mono_ms();
        sy_sink_write(sink, &b[i].b);
        sy_sink_flush(sink, 0);
        assert_true(mono_ms() - t0 < 50); /* never waits for carbon */
        pump(base, NULL, NULL, NULL, 60);
    }
    sy_sink_stats st = stats_of(sink);
    assert_int_equal(st.connected, 0);
    assert_true(st.errors >= 2);
    assert_true(st.reconnects >= 1);
    assert_int_equal(st.queued, 300);
    assert_int_equal(sy_sink_pending(sink), 300);

    /* the drain cannot finish while carbon is away */
    assert_int_equal(sy_sinks_drain(base, &sink, 1, 100), -1);

    srv s = { .lfd = -1 };
    srv_listen(&s, port, 0);
    wait_lines w = { &s, 300 };
    assert_true(pump(base, &s, have_lines, &w, 5000));
    pump(base, &s, NULL, NULL, 50);

    char **lines;
    size_t n = srv_lines(&s, &lines);
    assert_int_equal(n, 300); /* once each */
    for (size_t i = 0; i < n; i++)
        expect_line(lines[i], "down", (int)i);
    lines_free(lines, n);
    st = stats_of(sink);
    assert_int_equal(st.sent, 300);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.connected, 1);
    assert_int_equal(st.dropped, 0);

    sy_sink_close(sink);
    for (int i = 0; i < 3; i++)
        mb_free(&b[i]);
    srv_free(&s);
    event_base_free(base);
}

/* Carbon goes away while idle and comes back: what fits in the queue
 * arrives, the rest is counted as dropped, sent + dropped = written. */
static void test_graphite_queue_bound(void **unused)
{
    char err[512];
    struct event_base *base = event_base_new();
    srv s = { .lfd = -1 };
    srv_listen(&s, 0, 0);
    int port = s.port;
    sy_sink *sink = open_graphite(base, port, 2048, err, sizeof(err));

    mbatch b1, b2;
    mb_make(&b1, "before", 0, 10);
    sy_sink_write(sink, &b1.b);
    sy_sink_flush(sink, 0);
    wait_lines w = { &s, 10 };
    assert_true(pump(base, &s, have_lines, &w, 3000));

    srv_close_conn(&s, 0);
    srv_close_listener(&s);
    assert_true(pump(base, NULL, sink_disconnected, sink, 3000));

    /* "after.00000 0 1700000000\n" is 25..29 bytes: about 75 fit in 2048 */
    mb_make(&b2, "after", 0, 200);
    sy_sink_write(sink, &b2.b);
    sy_sink_flush(sink, 0);
    sy_sink_stats st = stats_of(sink);
    int64_t dropped = st.dropped;
    assert_true(dropped > 100 && dropped < 150);
    assert_int_equal(st.queued, 200 - dropped);
    assert_true(st.queued_bytes <= 2048);

    srv_listen(&s, port, 0);
    assert_true(pump(base, &s, sink_idle, sink, 5000));
    w.n = 10 + (size_t)(200 - dropped);
    assert_true(pump(base, &s, have_lines, &w, 3000));
    pump(base, &s, NULL, NULL, 30);

    char **lines;
    size_t n = srv_lines(&s, &lines);
    assert_int_equal(n, 10 + (size_t)(200 - dropped));
    for (size_t i = 0; i < 10; i++)
        expect_line(lines[i], "before", (int)i);
    for (size_t i = 10; i < n; i++)
        expect_line(lines[i], "after", (int)i - 10); /* the oldest are kept */
    lines_free(lines, n);

    st = stats_of(sink);
    assert_int_equal(st.sent + st.dropped, 210);
    assert_int_equal(st.sent, (int64_t)n);
    assert_true(st.reconnects >= 1);

    sy_sink_close(sink);
    mb_free(&b1);
    mb_free(&b2);
    srv_free(&s);
    event_base_free(base);
}

/* Carbon dies mid-stream with data unread (the kernel answers RST): only
 * whole, correct lines arrive, none twice, the stream resumes after the
 * reconnect, and every line is accounted for. */
static void test_graphite_reset_midstream(void **unused)
{
    char err[512];
    struct event_base *base = event_base_new();
    srv s = { .lfd = -1 };
    srv_listen(&s, 0, 4096);
    sy_sink *sink = open_graphite(base, s.port, 8 << 20, err, sizeof(err));
    assert_true(pump(base, &s, sink_connected, sink, 3000));

    /* more than the kernel's autotuned send buffer (at most 4 MiB) takes */
    const int total = 200000;
    mbatch b;
    mb_make(&b, "mid", 0, total);
    s.paused = 1;
    sy_sink_write(sink, &b.b);
    sy_sink_flush(sink, 0);
    pump(base, &s, NULL, NULL, 100); /* fills the socket buffers */
    assert_true(sy_sink_pending(sink) > 0);

    /* read a little, then vanish with data unread */
    s.paused = 0;
    srv_read_some(&s, 0, 1000);
    assert_true(s.c[0].len > 0);
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(s.c[0].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    srv_close_conn(&s, 0);

    assert_true(pump(base, &s, sink_idle, sink, 10000));
    pump(base, &s, NULL, NULL, 50);

    char **lines;
    size_t n = srv_lines(&s, &lines);
    char *seen = calloc((size_t)total, 1);
    int last = -1;
    for (size_t i = 0; i < n; i++) {
        int k = -1;
        assert_int_equal(sscanf(lines[i], "mid.%d", &k), 1);
        assert_true(k >= 0 && k < total);
        expect_line(lines[i], "mid", k);
        assert_int_equal(seen[k], 0);
        seen[k] = 1;
        assert_true(k > last); /* in order */
        last = k;
    }
    assert_int_equal(last, total - 1);
    lines_free(lines, n);
    free(seen);

    sy_sink_stats st = stats_of(sink);
    assert_int_equal(st.sent + st.dropped, total);
    assert_true((int64_t)n <= st.sent);
    assert_true(st.errors >= 1);
    assert_true(st.reconnects >= 1);
    assert_true(s.n >= 2);

    sy_sink_close(sink);
    mb_free(&b);
    srv_free(&s);
    event_base_free(base);
}

/* ------------------------------------------------------------------ */
/* netq: a connection broken exactly in the middle of a line            */
/* ------------------------------------------------------------------ */

static netq *probe_q;
static int probe_port;
static uint64_t probe_connect_timeout; /* 0: netq's default */

static int nqp_init(const sy_host_api *api, sy_host *h, void **st, char *err, size_t len)
{
    netq_config cfg = { .host = "127.0.0.1", .port = probe_port, .max_bytes = 8 << 20,
                        .reconnect_min_ms = 10, .reconnect_max_ms = 50,
                        .connect_timeout_ms = probe_connect_timeout };
    probe_q = netq_new(api, h, &cfg, err, len);
    *st = probe_q;
    return probe_q ? 0 : -1;
}
static size_t nqp_pending(void *st) { return netq_lines(st); }
static void nqp_close(void *st) { netq_free(st); }

static const sy_sink_plugin netq_probe = {
    SY_SINK_HEADER,
    .name = "netq-probe",
    .init = nqp_init,
    .write = nop_write,
    .flush = nop_flush,
    .pending = nqp_pending,
    .close = nqp_close,
};

static int probe_partial(void *arg)
{
    return netconn_connected(probe_q->conn) && probe_q->wr_off > 0;
}

static void test_netq_midline(void **unused)
{
    char err[512];
    struct event_base *base = event_base_new();
    srv s = { .lfd = -1 };
    srv_listen(&s, 0, 4096);
    probe_port = s.port;
    sy_sink *sink = sy_sink_open(base, "probe", &netq_probe, NULL, 0, err, sizeof(err));
    assert_non_null(sink);
    assert_true(pump(base, &s, sink_connected, sink, 3000));

    /* fill the socket until the kernel takes part of a line; a small
     * fixed send buffer keeps the kernel from taking everything */
    int sndbuf = 16384;
    setsockopt(netconn_fd(probe_q->conn), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    const int total = 20000;
    char line[64];
    s.paused = 1;
    for (int i = 0; i < total; i++) {
        int len = snprintf(line, sizeof(line), "mid.%05d %d %d\n", i, i, TS);
        assert_int_equal(netq_append(probe_q, line, (size_t)len), 0);
    }
    netq_kick(probe_q);
    int tries = 0;
    while (!pump(base, &s, probe_partial, NULL, 200)) {
        /* the kernel stopped at a line boundary: take a few bytes */
        assert_true(++tries < 50);
        srv_read_some(&s, 0, 7);
    }
    size_t partial = probe_q->wr_off;
    size_t queued_before = netq_lines(probe_q);

    /* the connection breaks now (as if a write failed): the sent part of
     * the line is still delivered on the old connection, then FIN */
    nq_lost(probe_q, ECONNRESET);
    assert_int_equal(probe_q->wr_off, 0);
    assert_int_equal(netq_lines(probe_q), queued_before);

    s.paused = 0;
    assert_true(pump(base, &s, sink_idle, sink, 10000));
    pump(base, &s, NULL, NULL, 50);
    assert_true(s.n == 2);

    /* the old connection ends with the partial line, unterminated */
    conn *c1 = &s.c[0];
    assert_true(c1->len > partial);
    assert_true(c1->data[c1->len - partial - 1] == '\n');
    assert_true(memchr(c1->data + c1->len - partial, '\n', partial) == NULL);

    /* every line exactly once, in order; the cut line whole on the new one */
    char **lines;
    size_t n = srv_lines(&s, &lines);
    assert_int_equal(n, (size_t)total);
    for (size_t i = 0; i < n; i++)
        expect_line(lines[i], "mid", (int)i);
    lines_free(lines, n);
    assert_memory_equal(s.c[1].data, c1->data + c1->len - partial, partial);

    sy_sink_stats st = stats_of(sink);
    assert_int_equal(st.sent, total);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.errors, 1);

    sy_sink_close(sink);
    srv_free(&s);
    event_base_free(base);
}

/* netq's queue by itself: the bound, whole lines, chunk boundaries. */
static void test_netq_queue(void **unused)
{
    char err[512];
    struct event_base *base = event_base_new();
    probe_port = free_port();
    sy_sink *sink = sy_sink_open(base, "probe", &netq_probe, NULL, 0, err, sizeof(err));
    assert_non_null(sink);
    netq *q = probe_q;
    q->max_bytes = 3 * CHUNKQ_SIZE + 100;

    /* lines of 1000 bytes: a chunk holds 65, never a line across chunks */
    char line[1000];
    memset(line, 'x', sizeof(line));
    line[sizeof(line) - 1] = '\n';
    size_t ok = 0;
    while (netq_append(q, line, sizeof(line)) == 0)
        ok++;
    assert_int_equal(ok, (3 * CHUNKQ_SIZE + 100) / 1000);
    assert_int_equal(netq_lines(q), ok);
    assert_int_equal(netq_bytes(q), ok * 1000);
    for (chunkq_chunk *c = q->cq.head; c; c = c->next)
        assert_true((c->end - c->start) % 1000 == 0);

    /* a big line gets its own chunk */
    q->max_bytes = 1 << 20;
    char *big = malloc(200000);
    memset(big, 'y', 200000);
    big[199999] = '\n';
    assert_int_equal(netq_append(q, big, 200000), 0);
    assert_int_equal(netq_lines(q), ok + 1);
    assert_int_equal(netq_append(q, big, 200000), 0);
    /* beyond the bound: refused */
    q->max_bytes = netq_bytes(q) + 10;
    assert_int_equal(netq_append(q, line, sizeof(line)), -1);
    assert_null(netq_reserve(q, 11));
    assert_non_null(netq_reserve(q, 10));
    free(big);

    /* released by a writer: feed nq_written directly */
    size_t lines = netq_lines(q), bytes = netq_bytes(q);
    nq_written(q, 1500); /* one line and a half */
    assert_int_equal(netq_lines(q), lines - 1);
    assert_int_equal(netq_bytes(q), bytes - 1000);
    assert_int_equal(q->wr_off, 500);
    nq_written(q, 500 + 64 * 1000);
    assert_int_equal(netq_lines(q), lines - 66);
    assert_int_equal(q->wr_off, 0);
    assert_int_equal(stats_of(sink).sent, 66);

    sy_sink_close(sink);
    event_base_free(base);
}

static int probe_connecting(void *arg)
{
    return probe_q->conn->state == NC_CONNECTING;
}

static int sink_has_error(void *arg)
{
    return stats_of(arg).errors >= 1;
}

/* A destination that never answers the SYN (its accept queue is full):
 * the attempt is abandoned after connect_timeout_ms and retried. */
static void test_netq_connect_timeout(void **unused)
{
    char err[512];
    struct event_base *base = event_base_new();
    srv s = { .lfd = -1 };
    srv_listen(&s, 0, 0);
    listen(s.lfd, 0);
    /* fill the accept queue (never accepted) */
    int filler[2];
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s.port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        filler[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(filler[i], (struct sockaddr *)&a, sizeof(a));
    }
    usleep(20000);
    probe_port = s.port;
    probe_connect_timeout = 150;
    sy_sink *sink = sy_sink_open(base, "probe", &netq_probe, NULL, 0, err, sizeof(err));
    probe_connect_timeout = 0;
    assert_non_null(sink);
    assert_true(pump(base, NULL, probe_connecting, NULL, 1000));
    uint64_t t0 = mono_ms();
    pump(base, NULL, NULL, NULL, 60);
    assert_int_equal(probe_q->conn->state, NC_CONNECTING); /* still waiting */
    assert_int_equal(stats_of(sink).errors, 0);
    assert_true(pump(base, NULL, sink_has_error, sink, 2000));
    uint64_t waited = mono_ms() - t0;
    assert_true(waited >= 130 && waited < 1000);
    assert_int_equal(stats_of(sink).connected, 0);
    assert_true(pump(base, NULL, probe_connecting, NULL, 1000)); /* and again */

    sy_sink_close(sink);
    close(filler[0]);
    close(filler[1]);
    srv_free(&s);
    event_base_free(base);
}

/* IPv6, and a name with several addresses where only one listens. */
static void test_graphite_ipv6_and_names(void **unused)
{
    char err[512];
    struct event_base *base = event_base_new();
    const sy_sink_plugin *g = sy_plugin_load(plugin_dir(), "graphite", err, sizeof(err));
    assert_non_null(g);

    int fd6 = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    if (fd6 >= 0 && bind(fd6, (struct sockaddr *)&a6, sizeof(a6)) == 0 && listen(fd6, 4) == 0) {
        socklen_t len = sizeof(a6);
        getsockname(fd6, (struct sockaddr *)&a6, &len);
        srv s6 = { .lfd = fd6, .port = ntohs(a6.sin6_port) };
        sy_setting set[] = { set_str("host", "::1"), set_num("port", s6.port) };
        sy_sink *sink = sy_sink_open(base, "carbon6", g, set, 2, err, sizeof(err));
        if (!sink)
            fail_msg("%s", err);
        sy_metric m = { .name = "six", .name_len = 3, .value = 6 };
        sy_metric_batch b = { .metrics = &m, .count = 1, .timestamp = TS };
        sy_sink_write(sink, &b);
        sy_sink_flush(sink, 0);
        wait_lines w = { &s6, 1 };
        assert_true(pump(base, &s6, have_lines, &w, 3000));
        assert_int_equal(s6.c[0].len, strlen("six 6 1700000000\n"));
        assert_memory_equal(s6.c[0].data, "six 6 1700000000\n", s6.c[0].len);
        sy_sink_close(sink);
        srv_free(&s6);
    } else {
        if (fd6 >= 0)
            close(fd6);
        print_message("no IPv6 loopback here: IPv6 part skipped\n");
    }

    /* "localhost" may resolve to ::1 and 127.0.0.1; only IPv4 listens */
    srv s = { .lfd = -1 };
    srv_listen(&s, 0, 0);
    sy_setting set[] = { set_str("host", "localhost"), set_num("port", s.port),
                         set_num("reconnectMinMs", 10), set_num("reconnectMaxMs", 50) };
    sy_sink *sink = sy_sink_open(base, "carbon", g, set, 4, err, sizeof(err));
    if (!sink)
        fail_msg("%s", err);
    sy_metric m = { .name = "four", .name_len = 4, .value = 4 };
    sy_metric_batch b = { .metrics = &m, .count = 1, .timestamp = TS };
    sy_sink_write(sink, &b);
    wait_lines w = { &s, 1 };
    assert_true(pump(base, &s, have_lines, &w, 3000));
    assert_int_equal(s.c[0].len, strlen("four 4 1700000000\n"));
    assert_memory_equal(s.c[0].data, "four 4 1700000000\n", s.c[0].len);
    sy_sink_close(sink);
    srv_free(&s);

    /* a name that does not resolve: init fails and says so */
    sy_setting bad[] = { set_str("host", "no-such-host.invalid") };
    assert_null(sy_sink_open(base, "carbon", g, bad, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot resolve 'no-such-host.invalid'"));
    event_base_free(base);
}

/* ------------------------------------------------------------------ */
/* console                                                              */
/* ------------------------------------------------------------------ */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_console(void **unused)
{
    char err[512];
    struct event_base *base = event_base_new();
    const sy_sink_plugin *p = sy_plugin_load(plugin_dir(), "console", err, sizeof(err));
    assert_non_null(p);

    char path[] = "/tmp/sy-console-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    sy_setting s[] = { set_str("plugin", "console"), set_str("path", path) };
    sy_sink *sink = sy_sink_open(base, "screen", p, s, 2, err, sizeof(err));
    if (!sink)
        fail_msg("%s", err);

    sy_metric m[] = {
        { .name = "a.b", .name_len = 3, .value = 1 },
        { .name = "c", .name_len = 1, .value = 0.5 },
    };
    sy_metric_batch b = { .metrics = m, .count = 2, .timestamp = TS };
    sy_sink_write(sink, &b);
    char raw[] = "g:+3c:1s:bob";
    sy_sample smp[] = {
        { .name = raw, .name_len = 1, .text = raw + 2, .text_len = 2, .value = 3, .rate = 1,
          .type = SY_SAMPLE_GAUGE, .is_delta = 1 },
        { .name = raw + 4, .name_len = 1, .text = raw + 6, .text_len = 1, .value = 1,
          .rate = 0.1, .type = SY_SAMPLE_COUNTER },
        { .name = raw + 7, .name_len = 1, .text = raw + 9, .text_len = 3, .rate = 1,
          .type = SY_SAMPLE_SET },
        { .name = "t", .name_len = 1, .text = "20", .text_len = 2, .value = 20, .rate = 1,
          .type = SY_SAMPLE_TIMER },
    };
    sy_sample_batch sb = { .samples = smp, .count = 4 };
    sy_sink_write_samples(sink, &sb);
    assert_int_equal(sy_sink_pending(sink), 6);
    assert_string_equal(slurp(path), ""); /* buffered until the flush */
    sy_sink_flush(sink, 0);
    assert_int_equal(sy_sink_pending(sink), 0);
    assert_string_equal(slurp(path), "a.b 1 1700000000\n"
                                     "c 0.5 1700000000\n"
                                     "sample g:+3|g\n"
                                     "sample c:1|c|@0.1\n"
                                     "sample s:bob|s\n"
                                     "sample t:20|ms\n");
    assert_int_equal(stats_of(sink).sent, 6);
    assert_int_equal(sy_sinks_drain(base, &sink, 1, 100), 0);
    sy_sink_close(sink);
    unlink(path);

    sy_setting bad[] = { set_str("stream", "stdlog") };
    assert_null(sy_sink_open(base, "screen", p, bad, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "stream"));
    sy_setting nodir[] = { set_str("path", "/nonexistent-dir/out.txt") };
    assert_null(sy_sink_open(base, "screen", p, nodir, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent-dir/out.txt"));

    /* stdout: opens and closes without closing the process's stdout */
    sy_setting out[] = { set_str("stream", "stdout") };
    sink = sy_sink_open(base, "screen", p, out, 1, err, sizeof(err));
    assert_non_null(sink);
    sy_sink_close(sink);
    assert_true(fcntl(STDOUT_FILENO, F_GETFD) >= 0);
    event_base_free(base);
}

int main(int argc, char **argv)
{
    find_plugin_dir(argv[0]);
    const char *lvl = getenv("SY_LOG_LEVEL");
    sy_log_level = lvl ? sy_log_level_parse(lvl) : SY_ERR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_check_settings),
        cmocka_unit_test(test_sink_check),
        cmocka_unit_test(test_settings_free),
        cmocka_unit_test(test_host_api),
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_no_samples),
        cmocka_unit_test(test_lines_spool),
        cmocka_unit_test(test_graphite_lines),
        cmocka_unit_test(test_graphite_down_at_start),
        cmocka_unit_test(test_graphite_queue_bound),
        cmocka_unit_test(test_graphite_reset_midstream),
        cmocka_unit_test(test_netq_midline),
        cmocka_unit_test(test_netq_queue),
        cmocka_unit_test(test_netq_connect_timeout),
        cmocka_unit_test(test_graphite_ipv6_and_names),
        cmocka_unit_test(test_console),
        cmocka_unit_test(test_sample_timestamps),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sy_plugin_unload_all();
    return rc;
}
