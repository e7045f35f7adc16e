/*
 * ceiling.c - the receive ceiling: what one thread can take off a socket
 * when it does nothing else.
 *
 *   ceiling --udp 127.0.0.1:PORT [--rcvbuf BYTES] [--idle-timeout S] [--no-nap]
 *   ceiling --unixgram PATH      [--rcvbuf BYTES] [--idle-timeout S]
 *   ceiling --tcp 127.0.0.1:PORT [--idle-timeout S]
 *
 * Datagrams are read the way switchyard's reader reads them (core/ingest/reader.c
 * dgram_main: recvmmsg with MSG_DONTWAIT, 64 slots of 64 KiB + 1 with
 * sender addresses; when the socket is empty, a reader whose last wait
 * ended within NAP_US naps NAP_US instead of waiting, if its receive buffer
 * holds at least NAP_RCVBUF; otherwise poll()) and then only counted:
 * datagrams, bytes and lines (newlines, plus one for a datagram whose last
 * line has none).  No ring, no parsing.  --no-nap waits in poll() on every
 * empty read, as the ceiling did before switchyard's reader learnt to nap
 * (kept to compare).  TCP connections are read into one buffer and counted
 * the same way.  PORT 0 takes a free port.
 *
 * stdout: first {"listening": PORT} once the socket is bound, then one JSON
 * object with the counts and the process's CPU time (getrusage) on SIGUSR1
 * (a snapshot), and on SIGTERM/SIGINT or after --idle-timeout seconds
 * without data (once something arrived), which also end it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM_MAX (64u << 10)
#define STREAM_BUF (256u << 10)
#define MAX_CONNS 64
/* The same as core/ingest/reader.c's (bench.py checks that they agree). */
#define NAP_US 200
#define NAP_RCVBUF (4 << 20)

typedef struct counts {
    uint64_t datagrams, lines, bytes, reads, connections;
    double first, last;          /* CLOCK_MONOTONIC of the first and last data */
} counts;

static volatile sig_atomic_t stop_sig, snap_sig;
static counts C;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        snap_sig = 1;
    else
        stop_sig = 1;
}

static uint64_t count_newlines(const char *p, size_t n)
{
    uint64_t c = 0;
    const char *end = p + n;
    while ((p = memchr(p, '\n', (size_t)(end - p)))) {
        c++;
        p++;
    }
    return c;
}

static void report(const char *why)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"event\":\"%s\",\"datagrams\":%llu,\"lines\":%llu,\"bytes\":%llu,\"reads\":%llu,"
           "\"connections\":%llu,\"first\":%.6f,\"last\":%.6f,\"cpu_user\":%.6f,\"cpu_sys\":%.6f,"
           "\"maxrss_kb\":%ld}\n",
           why, (unsigned long long)C.datagrams, (unsigned long long)C.lines,
           (unsigned long long)C.bytes, (unsigned long long)C.reads,
           (unsigned long long)C.connections, C.first, C.last,
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss);
    fflush(stdout);
}

static void seen_data(void)
{
    double t = now_s();
    if (C.first == 0)
        C.first = t;
    C.last = t;
}

/* true when the loop should end: a stop signal, or idle too long. */
static bool should_stop(double idle_timeout)
{
    if (snap_sig) {
        snap_sig = 0;
        report("snapshot");
    }
    if (stop_sig)
        return true;
    return idle_timeout > 0 && C.last > 0 && now_s() - C.last > idle_timeout;
}

static int bind_inet(const char *hostport, int type)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host) {
        fprintf(stderr, "ceiling: bad address '%s'\n", hostport);
        return -1;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "ceiling: bad IPv4 address '%s'\n", host);
        return -1;
    }
    int fd = socket(AF_INET, type, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        fprintf(stderr, "ceiling: bind %s: %s\n", hostport, strerror(errno));
        return -1;
    }
    return fd;
}

static int bind_unix(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sun.sun_path) {
        fprintf(stderr, "ceiling: socket path too long\n");
        return -1;
    }
    strcpy(sun.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        fprintf(stderr, "ceiling: bind %s: %s\n", path, strerror(errno));
        return -1;
    }
    return fd;
}

/* SO_RCVBUFFORCE as root, else SO_RCVBUF (capped by rmem_max), as
 * switchyard's listener does; the size granted goes to stderr. */
static void set_rcvbuf(int fd, int want)
{
    if (want <= 0)
        return;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    int got = 0;
    socklen_t len = sizeof got;
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len);
    fprintf(stderr, "ceiling: receive buffer %d bytes (asked for %d)\n", got, want);
}

static void sleep_us(long us)
{
    struct timespec ts = { .tv_sec = 0, .tv_nsec = us * 1000 };
    nanosleep(&ts, NULL);
}

static int run_dgram(int fd, double idle_timeout, bool nap)
{
    int rcvbuf = 0;
    socklen_t rlen = sizeof rcvbuf;
    bool may_nap = nap && getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &rlen) == 0 &&
                   rcvbuf / 2 >= NAP_RCVBUF;
    bool busy = false, napped = false;
    static struct mmsghdr msgs[BATCH];
    static struct iovec iov[BATCH];
    static struct sockaddr_storage names[BATCH];
    char *buf = malloc((size_t)BATCH * (DGRAM_MAX + 1));
    if (!buf)
        return -1;
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = buf + (size_t)i * (DGRAM_MAX + 1);
        iov[i].iov_len = DGRAM_MAX + 1;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &names[i];
        msgs[i].msg_hdr.msg_namelen = sizeof names[i];
    }
    while (!should_stop(idle_timeout)) {
        int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n > 0) {
            for (int i = 0; i < n; i++) {
                size_t len = msgs[i].msg_len;
                const char *p = iov[i].iov_base;
                C.bytes += len;
                C.lines += count_newlines(p, len) + (len && p[len - 1] != '\n');
                msgs[i].msg_hdr.msg_namelen = sizeof names[i];
            }
            C.datagrams += (uint64_t)n;
            C.reads++;
            seen_data();
            napped = false;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fprintf(stderr, "ceiling: recvmmsg: %s\n", strerror(errno));
            free(buf);
            return -1;
        }
        if (may_nap && busy && !napped) {
            napped = true;
            sleep_us(NAP_US);
            continue;
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        double waited = now_s();
        int rc = poll(&p, 1, 100);
        busy = rc > 0 && now_s() - waited < NAP_US / 1e6;
        napped = false;
    }
    free(buf);
    return 0;
}

static int run_stream(int lfd, double idle_timeout)
{
    struct pollfd p[1 + MAX_CONNS];
    char last[1 + MAX_CONNS];        /* last byte read on each connection */
    int n = 1;
    char *buf = malloc(STREAM_BUF);
    if (!buf || listen(lfd, 64) < 0)
        return -1;
    p[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
    while (!should_stop(idle_timeout)) {
        if (poll(p, (nfds_t)n, 100) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && n < 1 + MAX_CONNS) {
            int c = accept(lfd, NULL, NULL);
            if (c >= 0) {
                p[n] = (struct pollfd){ .fd = c, .events = POLLIN };
                last[n] = '\n';
                n++;
                C.connections++;
            }
        }
        for (int i = 1; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(p[i].fd, buf, STREAM_BUF);
            if (r > 0) {
                C.bytes += (uint64_t)r;
                C.lines += count_newlines(buf, (size_t)r);
                C.reads++;
                last[i] = buf[r - 1];
                seen_data();
                continue;
            }
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (last[i] != '\n')
                C.lines++; /* a final line without its newline */
            close(p[i].fd);
            p[i] = p[n - 1];
            last[i] = last[n - 1];
            n--;
            i--;
        }
    }
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "udp", required_argument, 0, 'u' },  { "tcp", required_argument, 0, 't' },
        { "unixgram", required_argument, 0, 'g' }, { "rcvbuf", required_argument, 0, 'b' },
        { "idle-timeout", required_argument, 0, 'i' }, { "no-nap", no_argument, 0, 'n' },
        { 0, 0, 0, 0 },
    };
    const char *udp = NULL, *tcp = NULL, *ugram = NULL;
    long rcvbuf = 32L << 20;
    double idle = 0;
    bool nap = true;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'u': udp = optarg; break;
        case 't': tcp = optarg; break;
        case 'g': ugram = optarg; break;
        case 'b': rcvbuf = atol(optarg); break;
        case 'i': idle = atof(optarg); break;
        case 'n': nap = false; break;
        default:
            fprintf(stderr, "usage: ceiling (--udp H:P | --tcp H:P | --unixgram PATH) "
                            "[--rcvbuf BYTES] [--idle-timeout S] [--no-nap]\n");
            return 2;
        }
    }
    if (!!udp + !!tcp + !!ugram != 1) {
        fprintf(stderr, "ceiling: give exactly one of --udp, --tcp, --unixgram\n");
        return 2;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int fd = udp ? bind_inet(udp, SOCK_DGRAM) : tcp ? bind_inet(tcp, SOCK_STREAM) : bind_unix(ugram);
    if (fd < 0)
        return 1;
    if (!tcp)
        set_rcvbuf(fd, rcvbuf > INT_MAX / 2 ? INT_MAX / 2 : (int)rcvbuf);
    if (ugram) {
        printf("{\"listening\":\"%s\"}\n", ugram);
    } else {
        struct sockaddr_in sin;
        socklen_t len = sizeof sin;
        getsockname(fd, (struct sockaddr *)&sin, &len);
        printf("{\"listening\":%d}\n", ntohs(sin.sin_port));
    }
    fflush(stdout);
    int rc = tcp ? run_stream(fd, idle) : run_dgram(fd, idle, nap && !ugram);
    report(stop_sig ? "stopped" : "idle");
    close(fd);
    if (ugram)
        unlink(ugram);
    return rc < 0 ? 1 : 0;
}
