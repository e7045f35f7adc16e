/*
 * mc.c - the trace tool's memcached client (mc.h).
 */
#include "tools/traces/mc.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/clock.h"

#define MAX_LINE 4096

/* ------------------------------------------------------------------ */
/* memcached                                                            */
/* ------------------------------------------------------------------ */

/* How long the next wait may take: the per-operation timeout, cut to what
 * is left of the deadline; 0 when the deadline has passed. */
static int mc_wait_ms(const mc *m)
{
    if (!m->deadline)
        return m->timeout_ms;
    uint64_t now = sy_mono_ms();
    if (now >= m->deadline)
        return 0;
    uint64_t left = m->deadline - now;
    return left < (uint64_t)m->timeout_ms ? (int)left : m->timeout_ms;
}

/* Waits until fd is ready for `events`: 1 ready, 0 timed out, -1 error
 * (ECANCELED when m->cancel_fd became readable: a page being made on a
 * worker thread must not hold up the admin's shutdown for its timeout). */
static int mc_poll(const mc *m, int fd, short events)
{
    struct pollfd pfd[2] = { { .fd = fd, .events = events },
                             { .fd = m->cancel_fd, .events = POLLIN } };
    nfds_t n = m->cancel_fd >= 0 ? 2 : 1;
    for (;;) {
        int ms = mc_wait_ms(m);
        if (ms <= 0)
            return 0;
        int r = poll(pfd, n, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0 && n == 2 && pfd[1].revents) {
            errno = ECANCELED;
            return -1;
        }
        return r;
    }
}

/* HOST:PORT, [V6]:PORT, HOST or [V6] (port 11211). */
static int split_addr(const char *a, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon;
    size_t hlen;
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        if (!close)
            return -1;
        hlen = (size_t)(close - a - 1);
        if (hlen >= hcap)
            return -1;
        memcpy(host, a + 1, hlen);
        host[hlen] = '\0';
        colon = close[1] == ':' ? close + 1 : NULL;
        if (!colon && close[1])
            return -1;
    } else {
        colon = strrchr(a, ':');
        if (colon && strchr(a, ':') != colon)
            return -1; /* a bare IPv6 address needs brackets */
        hlen = colon ? (size_t)(colon - a) : strlen(a);
        if (hlen == 0 || hlen >= hcap)
            return -1;
        memcpy(host, a, hlen);
        host[hlen] = '\0';
    }
    const char *p = colon ? colon + 1 : "11211";
    size_t plen = strlen(p);
    if (plen == 0 || plen >= pcap || strspn(p, "0123456789") != plen || atoi(p) < 1 ||
        atoi(p) > 65535)
        return -1;
    memcpy(port, p, plen + 1);
    return 0;
}

/* Connects the non-blocking fd, waiting in mc_poll (the step's timeout
 * and the exchange's deadline); fd stays non-blocking for what follows. */
static int connect_timeout(const mc *m, int fd, const struct sockaddr *sa, socklen_t len)
{
    if (connect(fd, sa, len) < 0) {
        if (errno != EINPROGRESS)
            return -1;
        int r = mc_poll(m, fd, POLLOUT);
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int e = 0;
        socklen_t el = sizeof(e);
        if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
            return -1;
        if (e) {
            errno = e;
            return -1;
        }
    }
    return 0;
}

/* timeout_ms for each step, total_ms for the whole exchange (0: none). */
int mc_open(mc *m, const char *addr, int timeout_ms, int total_ms, size_t max_value)
{
    char host[256], port[16];
    m->fd = -1;
    m->off = m->len = 0;
    m->err[0] = '\0';
    m->timeout_ms = timeout_ms;
    m->deadline = total_ms > 0 ? sy_mono_ms() + (uint64_t)total_ms : 0;
    m->max_value = max_value;
    m->budget = SIZE_MAX;
    if (split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0) {
        snprintf(m->err, sizeof(m->err), "'%s' is not HOST:PORT", addr);
        return -1;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(m->err, sizeof(m->err), "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    int e = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect_timeout(m, fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            m->fd = fd;
            break;
        }
        e = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (m->fd < 0) {
        snprintf(m->err, sizeof(m->err), "cannot connect to memcached at %s: %s", addr,
                 strerror(e));
        return -1;
    }
    return 0;
}

void mc_close(mc *m)
{
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}

int mc_write(mc *m, const char *p, size_t n)
{
    while (n) {
        int ready = mc_poll(m, m->fd, POLLOUT);
        if (ready <= 0) {
            snprintf(m->err, sizeof(m->err), "cannot send to memcached: %s",
                     ready == 0 ? "timed out" : strerror(errno));
            return -1;
        }
        ssize_t w = send(m->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue; /* poll again, within the same bounds */
            snprintf(m->err, sizeof(m->err), "cannot send to memcached: %s", strerror(errno));
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int mc_fill(mc *m)
{
    if (m->off) {
        memmove(m->buf, m->buf + m->off, m->len - m->off);
        m->len -= m->off;
        m->off = 0;
    }
    for (;;) {
        int ready = mc_poll(m, m->fd, POLLIN);
        if (ready <= 0) {
            snprintf(m->err, sizeof(m->err), "cannot read from memcached: %s",
                     ready == 0 ? "timed out" : strerror(errno));
            return -1;
        }
        ssize_t r = recv(m->fd, m->buf + m->len, sizeof(m->buf) - m->len, 0);
        if (r > 0) {
            m->len += (size_t)r;
            return 0;
        }
        if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue; /* poll again, within the same bounds */
        snprintf(m->err, sizeof(m->err), "cannot read from memcached: %s",
                 r == 0 ? "connection closed" : strerror(errno));
        return -1;
    }
}

/* One reply line, without its CRLF, NUL-terminated in place. */
static int mc_line(mc *m, char **line, size_t *len)
{
    for (;;) {
        char *s = m->buf + m->off;
        char *nl = memchr(s, '\n', m->len - m->off);
        if (nl) {
            size_t n = (size_t)(nl - s);
            if (n && s[n - 1] == '\r')
                n--;
            s[n] = '\0';
            *line = s;
            *len = n;
            m->off = (size_t)(nl - m->buf) + 1;
            return 0;
        }
        if (m->len - m->off >= MAX_LINE) {
            snprintf(m->err, sizeof(m->err), "memcached sent a line longer than %d bytes",
                     MAX_LINE);
            return -1;
        }
        if (mc_fill(m) < 0)
            return -1;
    }
}

/* n bytes into dst (NULL: discard them). */
static int mc_read(mc *m, char *dst, size_t n)
{
    while (n) {
        if (m->off == m->len && mc_fill(m) < 0)
            return -1;
        size_t k = m->len - m->off < n ? m->len - m->off : n;
        if (dst) {
            memcpy(dst, m->buf + m->off, k);
            dst += k;
        }
        m->off += k;
        n -= k;
    }
    return 0;
}

/* Reads the answer to a get: each VALUE goes to fn (values over
 * m->max_value, or over what is left of m->budget, are skipped and counted
 * in *skipped), until END. */
int mc_values(mc *m, value_fn fn, void *ctx, size_t *skipped)
{
    char *line;
    for (;;) {
        size_t len;
        if (mc_line(m, &line, &len) < 0)
            return -1;
        if (!strcmp(line, "END"))
            return 0;
        char key[256];
        unsigned long long flags, bytes;
        char *p = line;
        if (strncmp(p, "VALUE ", 6) != 0) {
            snprintf(m->err, sizeof(m->err), "memcached answered \"%.200s\"", line);
            return -1;
        }
        p += 6;
        size_t klen = strcspn(p, " ");
        if (klen == 0 || klen >= sizeof(key) || p[klen] != ' ')
            goto bad;
        memcpy(key, p, klen);
        key[klen] = '\0';
        p += klen + 1;
        char *e;
        errno = 0;
        if (*p < '0' || *p > '9') /* strtoull would take a sign or spaces */
            goto bad;
        flags = strtoull(p, &e, 10);
        if (*e != ' ' || errno)
            goto bad;
        p = e + 1;
        if (*p < '0' || *p > '9')
            goto bad;
        bytes = strtoull(p, &e, 10);
        if ((*e != '\0' && *e != ' ') || errno)
            goto bad;
        (void)flags;
        if (bytes > m->max_value || bytes > m->budget) {
            if (mc_read(m, NULL, (size_t)bytes) < 0)
                return -1;
            (*skipped)++;
        } else {
            char *data = malloc((size_t)bytes + 1);
            if (!data) {
                snprintf(m->err, sizeof(m->err), "out of memory");
                return -1;
            }
            if (mc_read(m, data, (size_t)bytes) < 0) {
                free(data);
                return -1;
            }
            data[bytes] = '\0';
            if (m->budget != SIZE_MAX)
                m->budget -= (size_t)bytes;
            int rc = fn(ctx, key, data, (size_t)bytes);
            free(data);
            if (rc < 0)
                return -1;
        }
        char crlf[2];
        if (mc_read(m, crlf, 2) < 0)
            return -1;
        if (crlf[0] != '\r' || crlf[1] != '\n') {
            snprintf(m->err, sizeof(m->err), "a value from memcached is not followed by CRLF");
            return -1;
        }
    }
bad:
    snprintf(m->err, sizeof(m->err), "cannot read memcached's reply \"%.200s\"", line);
    return -1;
}
