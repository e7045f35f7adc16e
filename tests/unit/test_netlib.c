/*
 * test_netlib.c - the plugins' shared network pieces (plugins/lib):
 *
 *   - net: host:port labels, resolving (numeric, a name, none), and a
 *     non-blocking connect to a listening and to a closed loopback port;
 *   - chunkq: lines never span two chunks, dropping from the front frees
 *     whole chunks and keeps one spare;
 *   - hostproxy: each part's gauges are its own, the host sees the sums,
 *     and CONNECTED is a count or (all_connected) 1 only while every part
 *     is connected; other calls reach the host with its own sy_host.
 *
 * The unit test rule links only the core library, so the helpers are
 * compiled in here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../plugins/lib/net.c"
#include "../../plugins/lib/chunkq.c"
#include "../../plugins/lib/hostproxy.c"

static void test_net_label(void **unused)
{
    char buf[64];
    net_label(buf, sizeof buf, "carbon", 2003);
    assert_string_equal(buf, "carbon:2003");
    net_label(buf, sizeof buf, "::1", 2003);
    assert_string_equal(buf, "[::1]:2003");
    net_unbracket(buf, sizeof buf, "[::1]");
    assert_string_equal(buf, "::1");
    net_unbracket(buf, sizeof buf, "influx.example");
    assert_string_equal(buf, "influx.example");
    net_unbracket(buf, sizeof buf, "[]"); /* nothing inside: kept */
    assert_string_equal(buf, "[]");
    net_unbracket(buf, 4, "[abcdef]");
    assert_string_equal(buf, "abc");
}

static void test_net_resolve(void **unused)
{
    net_addr a[NET_MAX_ADDRS];
    char list[256], err[256];
    int n = net_resolve("127.0.0.1", 8125, SOCK_DGRAM, a, NET_MAX_ADDRS, list, sizeof list, err,
                        sizeof err);
    assert_int_equal(n, 1);
    assert_string_equal(a[0].ip, "127.0.0.1");
    assert_string_equal(a[0].text, "127.0.0.1:8125");
    assert_string_equal(list, "127.0.0.1:8125");
    assert_int_equal(a[0].ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&a[0].ss)->sin_port), 8125);

    n = net_resolve("::1", 2003, SOCK_STREAM, a, NET_MAX_ADDRS, NULL, 0, err, sizeof err);
    if (n > 0) /* a host without IPv6 says so instead */
        assert_string_equal(a[0].text, "[::1]:2003");

    /* "localhost": at least one address, every one a loopback one */
    n = net_resolve("localhost", 1, SOCK_STREAM, a, NET_MAX_ADDRS, NULL, 0, err, sizeof err);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++)
        assert_true(strcmp(a[i].ip, "127.0.0.1") == 0 || strcmp(a[i].ip, "::1") == 0);

    /* at most max */
    n = net_resolve("localhost", 1, SOCK_STREAM, a, 1, NULL, 0, err, sizeof err);
    assert_int_equal(n, 1);

    n = net_resolve("no-such-host.invalid", 1, SOCK_STREAM, a, NET_MAX_ADDRS, NULL, 0, err,
                    sizeof err);
    assert_int_equal(n, -1);
    assert_non_null(strstr(err, "cannot resolve 'no-such-host.invalid'"));
}

/* Waits until fd is writable; the connect's result. */
static int finish_connect(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    assert_int_equal(poll(&p, 1, 5000), 1);
    return net_connect_result(fd);
}

static void test_net_connect(void **unused)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sin;
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    int port = ntohs(sin.sin_port);

    net_addr a;
    char err[256];
    assert_int_equal(net_resolve("127.0.0.1", port, SOCK_STREAM, &a, 1, NULL, 0, err, sizeof err),
                     1);
    int fd = -1;
    int rc = net_connect(&a, SOCK_STREAM, &fd);
    assert_true(rc == 0 || rc == 1);
    assert_true(fd >= 0);
    if (rc == 0)
        assert_int_equal(finish_connect(fd), 0);
    int one = 0;
    socklen_t ol = sizeof one;
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, &ol), 0);
    assert_int_equal(one, 1);
    close(fd);

    /* the port closed: refused, now or when the connect ends */
    close(lfd);
    fd = -1;
    rc = net_connect(&a, SOCK_STREAM, &fd);
    if (rc < 0) {
        assert_int_equal(errno, ECONNREFUSED);
        assert_int_equal(fd, -1); /* nothing left open */
    } else {
        assert_int_equal(finish_connect(fd), ECONNREFUSED);
        close(fd);
    }

    /* UDP: connected at once */
    assert_int_equal(net_resolve("127.0.0.1", port, SOCK_DGRAM, &a, 1, NULL, 0, err, sizeof err),
                     1);
    fd = -1;
    assert_int_equal(net_connect(&a, SOCK_DGRAM, &fd), 1);
    assert_true(fd >= 0);
    close(fd);
}

static void test_chunkq(void **unused)
{
    chunkq q = { 0 };
    char line[1000];
    memset(line, 'x', sizeof line);
    size_t n = 0;
    /* 3 chunks' worth of 1000-byte lines: none across two chunks */
    while (q.bytes + sizeof line <= 3 * CHUNKQ_SIZE) {
        char *p = chunkq_reserve(&q, sizeof line);
        assert_non_null(p);
        memcpy(p, line, sizeof line);
        chunkq_commit(&q, sizeof line);
        n++;
    }
    size_t chunks = 0, bytes = 0;
    for (chunkq_chunk *c = q.head; c; c = c->next) {
        assert_int_equal((c->end - c->start) % sizeof line, 0);
        bytes += c->end - c->start;
        chunks++;
    }
    assert_int_equal(bytes, n * sizeof line);
    assert_int_equal(chunks, 4); /* 65 lines a chunk */

    /* a line longer than a chunk gets a chunk of its size */
    char *big = chunkq_reserve(&q, CHUNKQ_SIZE + 10);
    assert_non_null(big);
    assert_int_equal(q.tail->size, CHUNKQ_SIZE + 10);
    chunkq_commit(&q, CHUNKQ_SIZE + 10);

    /* dropping the first chunk's lines frees it into the spare */
    chunkq_chunk *first = q.head;
    chunkq_drop_front(&q, first->end - first->start);
    assert_ptr_not_equal(q.head, first);
    assert_ptr_equal(q.spare, first);
    /* a part of a chunk only moves its start */
    chunkq_drop_front(&q, sizeof line);
    assert_int_equal(q.head->start, sizeof line);
    assert_int_equal(q.bytes, (n - 66) * sizeof line + CHUNKQ_SIZE + 10);

    chunkq_clear(&q);
    assert_null(q.head);
    assert_null(q.spare);
    assert_int_equal(q.bytes, 0);
    /* usable again */
    assert_non_null(chunkq_reserve(&q, 10));
    chunkq_commit(&q, 10);
    assert_int_equal(q.bytes, 10);
    chunkq_clear(&q);
}

/* A fake host: the last value of each gauge, the host each call came with. */
static int64_t host_stat[16];
static sy_host *host_seen;
static char host_log[256];

static void fake_log(sy_host *h, int level, const char *fmt, ...)
{
    va_list ap;
    host_seen = h;
    va_start(ap, fmt);
    vsnprintf(host_log, sizeof host_log, fmt, ap);
    va_end(ap);
}

static void fake_stat_set(sy_host *h, int stat, int64_t v)
{
    host_seen = h;
    host_stat[stat] = v;
}

static void fake_stat_add(sy_host *h, int stat, int64_t d)
{
    host_seen = h;
    host_stat[stat] += d;
}

static uint64_t fake_clock = 1000;

static uint64_t fake_monotonic(sy_host *h)
{
    return fake_clock;
}

static void test_hostproxy(void **unused)
{
    sy_host_api api = { .abi_major = SY_SINK_ABI_MAJOR, .struct_size = sizeof(sy_host_api),
                        .log = fake_log, .stat_set = fake_stat_set, .stat_add = fake_stat_add,
                        .monotonic_ms = fake_monotonic };
    sy_host *real = (sy_host *)(void *)&api; /* any pointer: the proxy passes it on */

    for (int all = 0; all < 2; all++) {
        hostproxy hp;
        hostproxy_part p[3];
        memset(host_stat, 0, sizeof host_stat);
        hostproxy_init(&hp, &api, real, all);
        for (int i = 0; i < 3; i++)
            hostproxy_part_init(&hp, &p[i]);
        const sy_host_api *px = &hp.api;

        px->stat_set(hostproxy_host(&p[0]), SY_STAT_QUEUED, 5);
        px->stat_set(hostproxy_host(&p[1]), SY_STAT_QUEUED, 7);
        px->stat_set(hostproxy_host(&p[0]), SY_STAT_QUEUED, 2);
        assert_int_equal(host_stat[SY_STAT_QUEUED], 9);
        assert_ptr_equal(host_seen, real);
        px->stat_set(hostproxy_host(&p[2]), SY_STAT_QUEUED_BYTES, 100);
        px->stat_set(hostproxy_host(&p[1]), SY_STAT_QUEUED_BYTES, 50);
        assert_int_equal(host_stat[SY_STAT_QUEUED_BYTES], 150);
        assert_int_equal(p[1].queued_bytes, 50);

        px->stat_set(hostproxy_host(&p[0]), SY_STAT_CONNECTED, 1);
        px->stat_set(hostproxy_host(&p[1]), SY_STAT_CONNECTED, 1);
        assert_int_equal(host_stat[SY_STAT_CONNECTED], all ? 0 : 2);
        px->stat_set(hostproxy_host(&p[2]), SY_STAT_CONNECTED, 5); /* any non-zero is 1 */
        assert_int_equal(host_stat[SY_STAT_CONNECTED], all ? 1 : 3);
        fake_clock = 2000;
        px->stat_set(hostproxy_host(&p[1]), SY_STAT_CONNECTED, 0);
        assert_int_equal(host_stat[SY_STAT_CONNECTED], all ? 0 : 2);
        assert_int_equal(p[1].unconnected_since, 2000);
        assert_int_equal(p[0].unconnected_since, 1000); /* since it was made */
        fake_clock = 1000;

        /* counters are added, anything else passes through */
        px->stat_add(hostproxy_host(&p[2]), SY_STAT_SENT, 4);
        px->stat_add(hostproxy_host(&p[0]), SY_STAT_SENT, 1);
        assert_int_equal(host_stat[SY_STAT_SENT], 5);
        px->log(hostproxy_host(&p[1]), SY_LOG_INFO, "part %d", 1);
        assert_ptr_equal(host_seen, real);
        assert_string_equal(host_log, "part 1");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_label),
        cmocka_unit_test(test_net_resolve),
        cmocka_unit_test(test_net_connect),
        cmocka_unit_test(test_chunkq),
        cmocka_unit_test(test_hostproxy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
