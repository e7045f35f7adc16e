/*
 * test_reader.c - listeners and reader threads on loopback sockets.
 *
 * Every test binds port 0 (or a socket in a fresh temporary directory),
 * sends with ordinary client sockets, and consumes the rings itself with
 * sy_ring_peek/sy_ring_release, the way the aggregator does.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ingest/listener.h"
#include "util/log.h"
#include "ingest/reader.h"
#include "ingest/ring.h"

#define WAIT_MS 5000

/* ---- a consumer that keeps every record ----------------------------- */

typedef struct record {
    sy_origin origin;
    size_t off, len;
} record;

typedef struct rig {
    sy_listener l[4];
    size_t n;
    sy_readers *rs;
    sy_ring **rings;
    size_t nrings;
    record *recs;
    size_t nrecs, caprecs;
    char *data;
    size_t len, cap;
} rig;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static sy_listener *rig_add(rig *g, const char *url)
{
    char err[256] = "";
    assert_true(g->n < 4);
    int rc = sy_listener_parse(url, &g->l[g->n], err, sizeof err);
    if (rc != 0)
        fail_msg("parse %s: %s", url, err);
    return &g->l[g->n++];
}

static void rig_start(rig *g, size_t ring_capacity)
{
    char err[256] = "";
    for (size_t i = 0; i < g->n; i++)
        if (sy_listener_open(&g->l[i], err, sizeof err) != 0)
            fail_msg("open: %s", err);
    g->rs = sy_readers_start(g->l, g->n, ring_capacity, NULL, err, sizeof err);
    if (!g->rs)
        fail_msg("start: %s", err);
    g->nrings = sy_readers_rings(g->rs, &g->rings);
}

/* Move every queued record into the rig; returns how many were taken. */
static size_t rig_poll(rig *g)
{
    size_t taken = 0;
    for (size_t i = 0; i < g->nrings; i++) {
        const void *p;
        const sy_origin *o;
        size_t len;
        while ((p = sy_ring_peek(g->rings[i], &o, &len))) {
            if (g->len + len > g->cap) {
                g->cap = (g->len + len) * 2 + 4096;
                g->data = realloc(g->data, g->cap);
                assert_non_null(g->data);
            }
            if (g->nrecs == g->caprecs) {
                g->caprecs = g->caprecs * 2 + 64;
                g->recs = realloc(g->recs, g->caprecs * sizeof *g->recs);
                assert_non_null(g->recs);
            }
            memcpy(g->data + g->len, p, len);
            g->recs[g->nrecs++] = (record){ .origin = *o, .off = g->len, .len = len };
            g->len += len;
            sy_ring_release(g->rings[i]);
            taken++;
        }
    }
    return taken;
}

/* Consume until `bytes` payload bytes have arrived in total. */
static void rig_wait_bytes(rig *g, size_t bytes)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (rig_poll(g), g->len < bytes) {
        if (now_ms() > end)
            fail_msg("timed out: %zu of %zu bytes arrived", g->len, bytes);
        sleep_ms(1);
    }
}

static void wait_counter(_Atomic uint64_t *c, uint64_t want)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(c) < want) {
        if (now_ms() > end)
            fail_msg("timed out: counter at %llu, want %llu",
                     (unsigned long long)atomic_load(c), (unsigned long long)want);
        sleep_ms(1);
    }
}

/* The payloads of one listener (and one sender port, unless port < 0),
 * concatenated and NUL-terminated.  Caller frees. */
static char *rig_text(rig *g, uint16_t listener, int port, size_t *len)
{
    char *s = malloc(g->len + 1);
    size_t n = 0;
    assert_non_null(s);
    for (size_t i = 0; i < g->nrecs; i++) {
        record *r = &g->recs[i];
        if (r->origin.listener != listener || (port >= 0 && r->origin.port != port))
            continue;
        memcpy(s + n, g->data + r->off, r->len);
        n += r->len;
    }
    s[n] = '\0';
    if (len)
        *len = n;
    return s;
}

static void rig_free(rig *g)
{
    sy_readers_free(g->rs);
    for (size_t i = 0; i < g->n; i++)
        sy_listener_close(&g->l[i]);
    free(g->recs);
    free(g->data);
    memset(g, 0, sizeof *g);
}

/* ---- clients ---------------------------------------------------------- */

static int udp_client(int family, uint16_t port, uint16_t *local_port)
{
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (void *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        in6->sin6_addr = in6addr_loopback;
        len = sizeof *in6;
    } else {
        struct sockaddr_in *in = (void *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *in;
    }
    int fd = socket(family, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    int sndbuf = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
    if (local_port) {
        len = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &len);
        *local_port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return fd;
}

static int tcp_client(uint16_t port, uint16_t *local_port)
{
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    assert_true(fd >= 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&in, sizeof in) != 0)
        fail_msg("connect: %s", strerror(errno));
    if (local_port) {
        socklen_t len = sizeof in;
        getsockname(fd, (struct sockaddr *)&in, &len);
        *local_port = ntohs(in.sin_port);
    }
    return fd;
}

static int unix_client(const char *path, int type)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, type, 0);
    assert_true(fd >= 0);
    strcpy(sun.sun_path, path);
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
        fail_msg("connect %s: %s", path, strerror(errno));
    return fd;
}

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("write: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static void send_str(int fd, const char *s)
{
    write_all(fd, s, strlen(s));
}

/* Did the server close this connection?  Waits up to WAIT_MS. */
static bool peer_closed(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    char c;
    if (poll(&p, 1, WAIT_MS) <= 0)
        return false;
    ssize_t n = read(fd, &c, 1);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static char tmpdir[64];

static int setup_tmpdir(void **state)
{
    strcpy(tmpdir, "/tmp/sy-test-reader-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmpdir(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Leave a socket file behind, as a crashed process would. */
static void make_stale_socket(const char *path, int type)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, type, 0);
    strcpy(sun.sun_path, path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    close(fd);
}

/* ---- tests ------------------------------------------------------------ */

static void test_parse(void **state)
{
    sy_listener l;
    char err[256];

    assert_int_equal(sy_listener_parse("udp://127.0.0.1:8125", &l, err, sizeof err), 0);
    assert_int_equal(l.kind, SY_LISTEN_UDP);
    assert_string_equal(l.host, "127.0.0.1");
    assert_int_equal(l.port, 8125);
    assert_string_equal(l.name, "udp://127.0.0.1:8125");
    assert_int_equal(l.rcvbuf, 32u << 20);
    assert_int_equal(l.threads, 1);

    assert_int_equal(sy_listener_parse("tcp://localhost:0", &l, err, sizeof err), 0);
    assert_int_equal(l.kind, SY_LISTEN_TCP);
    assert_string_equal(l.host, "localhost");
    assert_int_equal(l.port, 0);
    assert_int_equal(l.max_line, 65536);
    assert_int_equal(l.max_connections, 4096);
    assert_int_equal(l.idle_timeout_ms, 300000);

    assert_int_equal(sy_listener_parse("udp://[::1]:8125", &l, err, sizeof err), 0);
    assert_string_equal(l.host, "::1");
    assert_int_equal(sy_listener_parse("UDP://[fe80::1%lo]:1", &l, err, sizeof err), 0);
    assert_string_equal(l.host, "fe80::1%lo");
    assert_int_equal(sy_listener_parse("udp://:8125", &l, err, sizeof err), 0);
    assert_string_equal(l.host, "");
    assert_int_equal(sy_listener_parse("tcp://*:8125", &l, err, sizeof err), 0);
    assert_string_equal(l.host, "");

    assert_int_equal(sy_listener_parse("unix:///run/sy.sock", &l, err, sizeof err), 0);
    assert_int_equal(l.kind, SY_LISTEN_UNIX);
    assert_string_equal(l.path, "/run/sy.sock");
    assert_int_equal(l.mode, 0666);
    assert_int_equal(sy_listener_parse("unixgram:///run/sy.dgram", &l, err, sizeof err), 0);
    assert_int_equal(l.kind, SY_LISTEN_UNIXGRAM);
    assert_string_equal(l.path, "/run/sy.dgram");

    static const char *const bad[] = {
        "", "8125", "foo://1.2.3.4:1", "udp://127.0.0.1", "udp://127.0.0.1:",
        "udp://::1:8125", "udp://[::1:8125", "udp://[::1]8125", "udp://[]:1",
        "udp://[nonsense]:1", "udp://h:99999", "udp://h:123456", "udp://h:12x",
        "udp://h:-1", "tcp://a b:1", "tcp://host/x:1", "unix://", "unixgram://",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (sy_listener_parse(bad[i], &l, err, sizeof err) != -1)
            fail_msg("accepted bad URL '%s'", bad[i]);
        assert_true(err[0] != '\0');
    }
    char longpath[200] = "unix:///";
    memset(longpath + 8, 'a', 150);
    longpath[158] = '\0';
    assert_int_equal(sy_listener_parse(longpath, &l, err, sizeof err), -1);

    /* Bad options are refused at open, with a message. */
    assert_int_equal(sy_listener_parse("tcp://127.0.0.1:0", &l, err, sizeof err), 0);
    l.threads = 2;
    assert_int_equal(sy_listener_open(&l, err, sizeof err), -1);
    assert_non_null(strstr(err, "udp"));
}

static void test_udp(void **state)
{
    rig g = { 0 };
    rig_add(&g, "tcp://127.0.0.1:0");                 /* index 0: not used here */
    sy_listener *l = rig_add(&g, "udp://127.0.0.1:0"); /* index 1 */
    rig_start(&g, 1 << 20);
    assert_int_equal(l->index, 1);
    assert_true(l->bound_port != 0);
    /* Root (as in CI) gets all 32 MiB via SO_RCVBUFFORCE; Linux reports double. */
    if (geteuid() == 0)
        assert_true(l->rcvbuf_granted >= 2 * (32 << 20));

    uint16_t src;
    int fd = udp_client(AF_INET, l->bound_port, &src);
    send_str(fd, "single:1|c");
    /* Many lines in one datagram. */
    char multi[8192];
    size_t mlen = 0;
    for (int i = 0; i < 300; i++)
        mlen += (size_t)snprintf(multi + mlen, sizeof multi - mlen, "k%d:%d|c\n", i, i);
    write_all(fd, multi, mlen);
    /* The largest datagram IPv4 carries. */
    size_t biglen = 65507;
    char *big = malloc(biglen);
    for (size_t i = 0; i < biglen; i++)
        big[i] = (i % 61 == 60) ? '\n' : (char)('a' + i % 26);
    write_all(fd, big, biglen);

    size_t total = strlen("single:1|c") + mlen + biglen;
    rig_wait_bytes(&g, total);
    assert_int_equal(g.nrecs, 3);
    assert_int_equal(g.recs[0].len, 10);
    assert_memory_equal(g.data + g.recs[0].off, "single:1|c", 10);
    assert_int_equal(g.recs[1].len, mlen);
    assert_memory_equal(g.data + g.recs[1].off, multi, mlen);
    assert_int_equal(g.recs[2].len, biglen);
    assert_memory_equal(g.data + g.recs[2].off, big, biglen);
    for (size_t i = 0; i < 3; i++) {
        sy_origin *o = &g.recs[i].origin;
        assert_int_equal(o->listener, 1);
        assert_int_equal(o->family, AF_INET);
        assert_int_equal(o->port, src);
        assert_memory_equal(o->addr, "\x7f\0\0\1", 4);
    }
    sy_listener_counters c;
    sy_listener_counters_read(l, &c);
    assert_int_equal(c.received, 3);
    assert_int_equal(c.bytes, total);
    assert_int_equal(c.dropped, 0);
    assert_int_equal(c.lines_too_long, 0);

    close(fd);
    free(big);
    rig_free(&g);
}

/* threads = 4: four SO_REUSEPORT sockets on one port, four rings. */
static void test_udp_threads(void **state)
{
    rig g = { 0 };
    sy_listener *l = rig_add(&g, "udp://127.0.0.1:0");
    l->threads = 4;
    rig_start(&g, 1 << 20);
    assert_int_equal(l->nfds, 4);
    assert_int_equal(g.nrings, 4);

    /* Different source ports spread over the sockets. */
    char msg[32];
    size_t total = 0;
    for (int i = 0; i < 64; i++) {
        int fd = udp_client(AF_INET, l->bound_port, NULL);
        int n = snprintf(msg, sizeof msg, "t%d:1|c", i);
        write_all(fd, msg, (size_t)n);
        total += (size_t)n;
        close(fd);
    }
    rig_wait_bytes(&g, total);
    assert_int_equal(g.nrecs, 64);
    for (size_t i = 0; i < g.nrings; i++)
        assert_int_equal(sy_ring_used(g.rings[i]), 0);
    assert_int_equal(atomic_load(&l->stats.received), 64);
    rig_free(&g);
}

static void test_udp6(void **state)
{
    rig g = { 0 };
    char err[256];
    sy_listener *l = rig_add(&g, "udp://[::1]:0");
    if (sy_listener_open(l, err, sizeof err) != 0) {
        print_message("no IPv6 loopback (%s), skipping\n", err);
        skip();
    }
    g.rs = sy_readers_start(g.l, g.n, 1 << 20, NULL, err, sizeof err);
    assert_non_null(g.rs);
    g.nrings = sy_readers_rings(g.rs, &g.rings);

    uint16_t src;
    int fd = udp_client(AF_INET6, l->bound_port, &src);
    send_str(fd, "v6:1|c");
    rig_wait_bytes(&g, 6);
    assert_int_equal(g.nrecs, 1);
    assert_int_equal(g.recs[0].origin.family, AF_INET6);
    assert_int_equal(g.recs[0].origin.port, src);
    assert_memory_equal(g.recs[0].origin.addr, &in6addr_loopback, 16);
    close(fd);
    rig_free(&g);
}

/* A wildcard listener is dual-stack where possible; IPv4 senders still show
 * up as AF_INET, not as IPv4-mapped IPv6. */
static void test_udp_wildcard(void **state)
{
    rig g = { 0 };
    sy_listener *l = rig_add(&g, "udp://:0");
    rig_start(&g, 1 << 20);
    int fd = udp_client(AF_INET, l->bound_port, NULL);
    send_str(fd, "any:1|c");
    rig_wait_bytes(&g, 7);
    assert_int_equal(g.recs[0].origin.family, AF_INET);
    assert_memory_equal(g.recs[0].origin.addr, "\x7f\0\0\1", 4);
    close(fd);
    rig_free(&g);
}

/* The ring is never consumed while sending: every datagram is either queued
 * or counted as dropped. */
static void test_udp_full_ring(void **state)
{
    rig g = { 0 };
    sy_listener *l = rig_add(&g, "udp://127.0.0.1:0");
    rig_start(&g, 4096);
    int fd = udp_client(AF_INET, l->bound_port, NULL);
    char msg[100];
    memset(msg, 'x', sizeof msg);
    const int sent = 500;
    for (int i = 0; i < sent; i++)
        write_all(fd, msg, sizeof msg);
    wait_counter(&l->stats.received, sent);
    size_t pushed = rig_poll(&g);
    sy_listener_counters c;
    sy_listener_counters_read(l, &c);
    assert_int_equal(c.received, sent);
    assert_true(c.dropped > 0);
    assert_true(pushed > 0);
    assert_int_equal(pushed + c.dropped, sent);
    /* With room again, datagrams are queued again. */
    send_str(fd, "after:1|c");
    rig_wait_bytes(&g, pushed * sizeof msg + 9);
    close(fd);
    rig_free(&g);
}

/* Lines split at arbitrary points across writes come out whole: a record
 * only ever holds complete lines, except a final line at EOF. */
static void test_tcp_split(void **state)
{
    rig g = { 0 };
    sy_listener *l = rig_add(&g, "tcp://127.0.0.1:0");
    rig_start(&g, 1 << 20);
    assert_true(l->bound_port != 0);

    uint16_t src;
    int fd = tcp_client(l->bound_port, &src);
    /* Wait for each piece to be read, so the partial line really is kept
     * between reads. */
    static const char *const pieces[] = { "foo:1|c\nba", "r:2", "|c\nbaz:", "3|c\n", "last:4|c" };
    uint64_t bytes = 0;
    for (size_t i = 0; i < 5; i++) {
        send_str(fd, pieces[i]);
        bytes += strlen(pieces[i]);
        wait_counter(&l->stats.bytes, bytes);
    }
    rig_poll(&g);
    char *text = rig_text(&g, 0, src, NULL);
    assert_string_equal(text, "foo:1|c\nbar:2|c\nbaz:3|c\n");
    free(text);
    for (size_t i = 0; i < g.nrecs; i++) {
        assert_int_equal(g.data[g.recs[i].off + g.recs[i].len - 1], '\n');
        assert_int_equal(g.recs[i].origin.family, AF_INET);
        assert_int_equal(g.recs[i].origin.port, src);
        assert_memory_equal(g.recs[i].origin.addr, "\x7f\0\0\1", 4);
    }
    /* "bar:2|c\n" arrived in three reads but is one line of one record. */
    bool found = false;
    for (size_t i = 0; i < g.nrecs; i++)
        found |= memmem(g.data + g.recs[i].off, g.recs[i].len, "bar:2|c\n", 8) != NULL;
    assert_true(found);

    /* The last line has no newline: it arrives when the client closes. */
    close(fd);
    rig_wait_bytes(&g, bytes);
    text = rig_text(&g, 0, src, NULL);
    assert_string_equal(text, "foo:1|c\nbar:2|c\nbaz:3|c\nlast:4|c");
    free(text);
    assert_int_equal(g.recs[g.nrecs - 1].len, 8);
    wait_counter(&l->stats.connections_accepted, 1);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&l->stats.connections_open) != 0 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&l->stats.connections_open), 0);
    assert_int_equal(atomic_load(&l->stats.partial_discarded), 0);

    /* Random splits of many lines, on a second connection. */
    size_t cap = 200000, len = 0;
    char *all = malloc(cap);
    for (int i = 0; len < cap - 64; i++)
        len += (size_t)snprintf(all + len, cap - len, "metric.%d.%s:%d|ms\n", i,
                                i % 7 ? "x" : "a.longer.name.here", i * 13);
    fd = tcp_client(l->bound_port, &src);
    srand(42);
    for (size_t off = 0; off < len;) {
        size_t n = 1 + (size_t)rand() % 3000;
        if (n > len - off)
            n = len - off;
        write_all(fd, all + off, n);
        off += n;
        if (rand() % 8 == 0)
            sleep_ms(1);
    }
    close(fd);
    size_t before = g.nrecs;
    rig_wait_bytes(&g, bytes + len);
    size_t got;
    text = rig_text(&g, 0, src, &got);
    assert_int_equal(got, len);
    assert_memory_equal(text, all, len);
    for (size_t i = before; i < g.nrecs; i++)
        assert_int_equal(g.data[g.recs[i].off + g.recs[i].len - 1], '\n');
    free(text);
    free(all);
    rig_free(&g);
}

/* max_line = 100: a line of 100 bytes passes, 101 is skipped and counted,
 * and the connection goes on. */
static void test_tcp_too_long(void **state)
{
    rig g = { 0 };
    sy_listener *l = rig_add(&g, "tcp://127.0.0.1:0");
    l->max_line = 100;
    rig_start(&g, 1 << 20);
    int fd = tcp_client(l->bound_port, NULL);

    char exact[102], over[102], huge[400];
    memset(exact, 'e', 100);
    exact[100] = '\n';
    exact[101] = '\0';
    memset(over, 'o', 101);
    over[101] = '\0';
    memset(huge, 'h', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';

    uint64_t bytes = 0;
#define SEND(s) do { send_str(fd, s); bytes += strlen(s); wait_counter(&l->stats.bytes, bytes); } while (0)
    SEND("ok:1|c\n");
    SEND(exact);
    SEND(over);          /* 101 bytes, no newline yet: too long */
    SEND("\nmid:1|c\n");
    SEND(huge);          /* 399 bytes over several reads */
    SEND(huge);
    SEND("tail\nafter:1|c\n");
#undef SEND
    const char *want_head = "ok:1|c\n";
    size_t want_len = strlen(want_head) + 101 + strlen("mid:1|c\n") + strlen("after:1|c\n");
    rig_wait_bytes(&g, want_len);
    char *text = rig_text(&g, 0, -1, NULL);
    char want[512];
    snprintf(want, sizeof want, "%s%smid:1|c\nafter:1|c\n", want_head, exact);
    assert_string_equal(text, want);
    free(text);
    assert_int_equal(atomic_load(&l->stats.lines_too_long), 2);
    assert_int_equal(atomic_load(&l->stats.connections_open), 1);
    close(fd);
    rig_free(&g);
}

/* Unix stream: a stale socket file is replaced, the mode applied, records
 * carry AF_UNIX, and the file is gone after close. */
static void test_unix_stream(void **state)
{
    char path[128], url[160];
    struct stat st;
    snprintf(path, sizeof path, "%s/stream.sock", tmpdir);
    snprintf(url, sizeof url, "unix://%s", path);
    make_stale_socket(path, SOCK_STREAM);

    rig g = { 0 };
    sy_listener *l = rig_add(&g, url);
    l->mode = 0640;
    rig_start(&g, 1 << 20);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0640);

    /* A second listener on the same live socket is refused. */
    sy_listener other;
    char err[256];
    assert_int_equal(sy_listener_parse(url, &other, err, sizeof err), 0);
    assert_int_equal(sy_listener_open(&other, err, sizeof err), -1);
    assert_non_null(strstr(err, "in use"));

    int fd = unix_client(path, SOCK_STREAM);
    send_str(fd, "u:1|c\nu:");
    wait_counter(&l->stats.bytes, 8);
    send_str(fd, "2|c\nend:3|c");
    close(fd);
    rig_wait_bytes(&g, 19);
    char *text = rig_text(&g, 0, -1, NULL);
    assert_string_equal(text, "u:1|c\nu:2|c\nend:3|c");
    free(text);
    for (size_t i = 0; i < g.nrecs; i++) {
        assert_int_equal(g.recs[i].origin.family, AF_UNIX);
        assert_int_equal(g.recs[i].origin.port, 0);
    }
    rig_free(&g);
    assert_int_equal(lstat(path, &st), -1);
    assert_int_equal(errno, ENOENT);

    /* A regular file is never replaced. */
    int f = open(path, O_CREAT | O_WRONLY, 0644);
    close(f);
    assert_int_equal(sy_listener_parse(url, &other, err, sizeof err), 0);
    assert_int_equal(sy_listener_open(&other, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a socket"));
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    unlink(path);
}

static void test_unixgram(void **state)
{
    char path[128], url[160];
    struct stat st;
    snprintf(path, sizeof path, "%s/dgram.sock", tmpdir);
    snprintf(url, sizeof url, "unixgram://%s", path);
    make_stale_socket(path, SOCK_DGRAM);

    rig g = { 0 };
    sy_listener *l = rig_add(&g, url);
    l->mode = 0600;
    rig_start(&g, 1 << 20);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);

    int fd = unix_client(path, SOCK_DGRAM);
    int sndbuf = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    send_str(fd, "g:1|c");
    send_str(fd, "g:2|c\ng:3|c\n");
    /* Over 64 KiB: counted as too long, not queued. */
    size_t biglen = 70000;
    char *big = malloc(biglen);
    memset(big, 'b', biglen);
    assert_int_equal(send(fd, big, biglen, 0), (ssize_t)biglen);
    send_str(fd, "g:4|c");
    rig_wait_bytes(&g, 5 + 12 + 5);
    wait_counter(&l->stats.received, 4);
    assert_int_equal(g.nrecs, 3);
    char *text = rig_text(&g, 0, -1, NULL);
    assert_string_equal(text, "g:1|cg:2|c\ng:3|c\ng:4|c");
    free(text);
    assert_int_equal(g.recs[0].origin.family, AF_UNIX);
    assert_int_equal(atomic_load(&l->stats.lines_too_long), 1);
    free(big);
    close(fd);
    rig_free(&g);
    assert_int_equal(lstat(path, &st), -1);
}

typedef struct writer_arg {
    int fd;
    const char *data;
    size_t len;
    atomic_bool done;
} writer_arg;

static void *writer_main(void *arg)
{
    writer_arg *w = arg;
    write_all(w->fd, w->data, w->len);
    close(w->fd);
    atomic_store(&w->done, true);
    return NULL;
}

/* A small ring and a consumer that stops: the connection is paused, not
 * dropped; once the consumer drains, every byte arrives in order. */
static void test_tcp_backpressure(void **state)
{
    rig g = { 0 };
    sy_listener *l = rig_add(&g, "tcp://127.0.0.1:0");
    l->max_line = 1024;
    rig_start(&g, 16384);

    size_t cap = 4u << 20, len = 0;
    char *all = malloc(cap);
    for (int i = 0; len < cap - 200; i++) {
        int width = 1 + (i * 37) % 150;
        len += (size_t)snprintf(all + len, cap - len, "bp.%d:%d|c|#pad:%.*s\n", i, i, width,
                                "------------------------------------------------------------"
                                "------------------------------------------------------------"
                                "------------------------------------------------------------");
    }
    writer_arg w = { .fd = tcp_client(l->bound_port, NULL), .data = all, .len = len };
    /* A small send buffer (no autotuning) so the writer really blocks. */
    int sndbuf = 65536;
    setsockopt(w.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, writer_main, &w), 0);

    /* Not consuming: the ring fills and the reader pauses. */
    wait_counter(&l->stats.paused, 1);
    sleep_ms(100);
    assert_true(sy_ring_used(g.rings[0]) > 16384 / 2);
    assert_false(atomic_load(&w.done));

    rig_wait_bytes(&g, len);
    pthread_join(tid, NULL);
    assert_int_equal(g.len, len);
    assert_memory_equal(g.data, all, len);
    for (size_t i = 0; i < g.nrecs; i++)
        assert_int_equal(g.data[g.recs[i].off + g.recs[i].len - 1], '\n');
    sy_listener_counters c;
    sy_listener_counters_read(l, &c);
    assert_int_equal(c.dropped, 0);
    assert_int_equal(c.lines_too_long, 0);
    assert_int_equal(c.bytes, len);
    assert_true(c.paused >= 1);
    print_message("backpressure: %zu bytes in %zu records, paused %llu times\n", len, g.nrecs,
                  (unsigned long long)c.paused);
    free(all);
    rig_free(&g);
}

static void test_connection_limit(void **state)
{
    rig g = { 0 };
    sy_listener *l = rig_add(&g, "tcp://127.0.0.1:0");
    l->max_connections = 2;
    rig_start(&g, 1 << 20);

    int a = tcp_client(l->bound_port, NULL);
    int b = tcp_client(l->bound_port, NULL);
    wait_counter(&l->stats.connections_open, 2);
    int c = tcp_client(l->bound_port, NULL);
    assert_true(peer_closed(c));
    wait_counter(&l->stats.connections_rejected, 1);
    assert_int_equal(atomic_load(&l->stats.connections_open), 2);
    close(c);

    /* The accepted ones work; closing one makes room. */
    send_str(a, "a:1|c\n");
    send_str(b, "b:1|c\n");
    rig_wait_bytes(&g, 12);
    close(a);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&l->stats.connections_open) != 1 && now_ms() < end)
        sleep_ms(1);
    int d = tcp_client(l->bound_port, NULL);
    send_str(d, "d:1|c\n");
    rig_wait_bytes(&g, 18);
    assert_int_equal(atomic_load(&l->stats.connections_accepted), 3);
    assert_int_equal(atomic_load(&l->stats.connections_rejected), 1);
    close(b);
    close(d);
    rig_free(&g);
}

static void test_idle_timeout(void **state)
{
    rig g = { 0 };
    sy_listener *l = rig_add(&g, "tcp://127.0.0.1:0");
    l->idle_timeout_ms = 300;
    rig_start(&g, 1 << 20);

    int idle = tcp_client(l->bound_port, NULL);
    int busy = tcp_client(l->bound_port, NULL);
    send_str(idle, "half");
    /* The busy one sends every 30 ms for 600 ms and stays open. */
    for (int i = 0; i < 20; i++) {
        send_str(busy, "x:1|c\n");
        sleep_ms(30);
    }
    assert_true(peer_closed(idle));
    assert_int_equal(atomic_load(&l->stats.idle_closed), 1);
    assert_int_equal(atomic_load(&l->stats.partial_discarded), 1);
    assert_int_equal(atomic_load(&l->stats.connections_open), 1);
    rig_wait_bytes(&g, 120);
    char *text = rig_text(&g, 0, -1, NULL);
    assert_null(strstr(text, "half"));
    free(text);
    close(idle);
    close(busy);
    rig_free(&g);
}

/* Stop reads what the kernel already holds: complete lines are queued, a
 * final line only from a peer that has closed; new connections are refused. */
static void test_shutdown_drain(void **state)
{
    rig g = { 0 };
    sy_listener *t = rig_add(&g, "tcp://127.0.0.1:0");
    sy_listener *u = rig_add(&g, "udp://127.0.0.1:0");
    rig_start(&g, 1 << 20);
    uint16_t tport = t->bound_port;

    uint16_t open_port, closed_port;
    int open_fd = tcp_client(tport, &open_port);
    int closed_fd = tcp_client(tport, &closed_port);
    wait_counter(&t->stats.connections_open, 2);
    send_str(open_fd, "a:1|c\nb:2|c\npart");
    send_str(closed_fd, "x:1|c\nfin:2|c");
    shutdown(closed_fd, SHUT_WR);
    int ufd = udp_client(AF_INET, u->bound_port, NULL);
    for (int i = 0; i < 100; i++)
        send_str(ufd, "udp:1|c");

    uint64_t t0 = now_ms();
    sy_readers_stop(g.rs);
    uint64_t took = now_ms() - t0;
    assert_true(took < 1000);

    rig_poll(&g);
    char *text = rig_text(&g, 0, open_port, NULL);
    assert_string_equal(text, "a:1|c\nb:2|c\n");
    free(text);
    text = rig_text(&g, 0, closed_port, NULL);
    assert_string_equal(text, "x:1|c\nfin:2|c");
    free(text);
    assert_int_equal(atomic_load(&t->stats.partial_discarded), 1);
    assert_int_equal(atomic_load(&t->stats.connections_open), 0);
    assert_int_equal(atomic_load(&u->stats.received), 100);
    size_t n;
    text = rig_text(&g, 1, -1, &n);
    assert_int_equal(n, 700);
    free(text);
    assert_true(peer_closed(open_fd));

    /* Nothing listens any more. */
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(tport),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&in, sizeof in), -1);
    assert_int_equal(errno, ECONNREFUSED);
    close(fd);
    close(open_fd);
    close(closed_fd);
    close(ufd);
    rig_free(&g);
}

/* Stop is prompt even when nothing ever arrives. */
static void test_stop_idle(void **state)
{
    rig g = { 0 };
    rig_add(&g, "udp://127.0.0.1:0");
    rig_add(&g, "tcp://127.0.0.1:0");
    rig_start(&g, 1 << 20);
    sleep_ms(20);
    uint64_t t0 = now_ms();
    sy_readers_stop(g.rs);
    assert_true(now_ms() - t0 < 500);
    sy_readers_stop(g.rs); /* twice is fine */
    rig_free(&g);
}

int main(void)
{
    sy_log_level = SY_WARN;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_udp),
        cmocka_unit_test(test_udp_threads),
        cmocka_unit_test(test_udp6),
        cmocka_unit_test(test_udp_wildcard),
        cmocka_unit_test(test_udp_full_ring),
        cmocka_unit_test(test_tcp_split),
        cmocka_unit_test(test_tcp_too_long),
        cmocka_unit_test(test_unix_stream),
        cmocka_unit_test(test_unixgram),
        cmocka_unit_test(test_tcp_backpressure),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_shutdown_drain),
        cmocka_unit_test(test_stop_idle),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
