/*
 * listener.c - listen URLs and the sockets behind them.
 *
 * Everything here runs once at start (or reload) on the main thread; the
 * reader threads only use the file descriptors and the counters.
 */
#include "ingest/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"
#include "util/fail.h"

#define LISTEN_BACKLOG 4096

static const struct {
    const char *scheme;
    sy_listen_kind kind;
} schemes[] = {
    { "udp", SY_LISTEN_UDP },
    { "tcp", SY_LISTEN_TCP },
    { "unix", SY_LISTEN_UNIX },
    { "unixgram", SY_LISTEN_UNIXGRAM },
};

const char *sy_listener_kind_name(sy_listen_kind kind)
{
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (schemes[i].kind == kind)
            return schemes[i].scheme;
    return "?";
}

bool sy_listener_is_stream(const sy_listener *l)
{
    return l->kind == SY_LISTEN_TCP || l->kind == SY_LISTEN_UNIX;
}

static bool is_datagram(const sy_listener *l)
{
    return !sy_listener_is_stream(l);
}

/* "HOST:PORT" or "[V6]:PORT"; an empty host or "*" means every address. */
static int parse_hostport(sy_listener *l, const char *s, char *err, size_t errlen)
{
    const char *host, *host_end, *port;

    if (s[0] == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        if (!host_end)
            return sy_fail(err, errlen, "%s: missing ']' after the IPv6 address", l->name);
        if (host_end[1] != ':')
            return sy_fail(err, errlen, "%s: expected ':PORT' after ']'", l->name);
        port = host_end + 2;
        if (host_end == host)
            return sy_fail(err, errlen, "%s: empty IPv6 address", l->name);
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return sy_fail(err, errlen, "%s: missing ':PORT'", l->name);
        if (memchr(s, ':', (size_t)(colon - s)))
            return sy_fail(err, errlen, "%s: an IPv6 address must be in brackets, e.g. udp://[::1]:8125",
                        l->name);
        host = s;
        host_end = colon;
        port = colon + 1;
    }

    size_t hlen = (size_t)(host_end - host);
    if (hlen >= sizeof l->host)
        return sy_fail(err, errlen, "%s: host name too long", l->name);
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c >= 0x7f || c == '/' || c == '[' || c == ']' || c == '@' || c == '?')
            return sy_fail(err, errlen, "%s: bad character in host name", l->name);
    }
    memcpy(l->host, host, hlen);
    l->host[hlen] = '\0';
    if (strcmp(l->host, "*") == 0)
        l->host[0] = '\0';
    if (s[0] == '[') {
        /* Catch typos now rather than at open; allow a zone ("fe80::1%eth0"). */
        char tmp[sizeof l->host];
        struct in6_addr a6;
        memcpy(tmp, l->host, hlen + 1);
        char *zone = strchr(tmp, '%');
        if (zone)
            *zone = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return sy_fail(err, errlen, "%s: '%s' is not an IPv6 address", l->name, l->host);
    }

    if (!*port)
        return sy_fail(err, errlen, "%s: missing port", l->name);
    unsigned long v = 0;
    for (const char *p = port; *p; p++) {
        if (*p < '0' || *p > '9' || p - port >= 5)
            return sy_fail(err, errlen, "%s: bad port '%s'", l->name, port);
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > 65535)
        return sy_fail(err, errlen, "%s: port %lu out of range", l->name, v);
    l->port = (uint16_t)v;
    return 0;
}

int sy_listener_parse(const char *url, sy_listener *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < SY_LISTENER_MAX_THREADS; i++)
        out->fds[i] = -1;
    out->rcvbuf = SY_LISTENER_DEFAULT_RCVBUF;
    out->threads = 1;
    out->max_line = SY_LISTENER_DEFAULT_MAX_LINE;
    out->max_connections = SY_LISTENER_DEFAULT_MAX_CONNECTIONS;
    out->idle_timeout_ms = SY_LISTENER_DEFAULT_IDLE_TIMEOUT_MS;
    out->mode = SY_LISTENER_DEFAULT_MODE;

    if (!url || !*url)
        return sy_fail(err, errlen, "empty listen URL");
    if (strlen(url) >= sizeof out->name)
        return sy_fail(err, errlen, "listen URL too long (%zu bytes)", strlen(url));
    strcpy(out->name, url);

    const char *sep = strstr(url, "://");
    if (!sep)
        return sy_fail(err, errlen, "%s: expected SCHEME://ADDRESS (udp, tcp, unix or unixgram)", url);
    size_t slen = (size_t)(sep - url);
    const char *rest = sep + 3;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        if (strlen(schemes[i].scheme) != slen || strncasecmp(url, schemes[i].scheme, slen) != 0)
            continue;
        out->kind = schemes[i].kind;
        if (out->kind == SY_LISTEN_UDP || out->kind == SY_LISTEN_TCP)
            return parse_hostport(out, rest, err, errlen);
        if (!*rest)
            return sy_fail(err, errlen, "%s: missing socket path (unix:///path/to.sock)", url);
        if (strlen(rest) >= sizeof out->path)
            return sy_fail(err, errlen, "%s: socket path longer than %zu bytes", url,
                        sizeof out->path - 1);
        strcpy(out->path, rest);
        return 0;
    }
    return sy_fail(err, errlen, "%s: unknown scheme '%.*s' (udp, tcp, unix or unixgram)", url,
                (int)slen, url);
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
}

/*
 * Ask for a large receive buffer: the kernel default loses datagrams in
 * any burst (Etsy statsd's trap).  Without privileges Linux caps SO_RCVBUF
 * at net.core.rmem_max; SO_RCVBUFFORCE bypasses that for root
 * (CAP_NET_ADMIN).  getsockopt reports double the size asked for (the
 * kernel adds room for its bookkeeping), so compare against half.
 */
static void set_rcvbuf(sy_listener *l, int fd, bool log)
{
    if (l->rcvbuf == 0)
        return;
    int want = l->rcvbuf > INT_MAX / 2 ? INT_MAX / 2 : (int)l->rcvbuf;
    int got = 0;
    socklen_t len = sizeof got;

    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want) != 0 && log)
        sy_log(SY_WARN, "%s: SO_RCVBUF %d: %s", l->name, want, strerror(errno));
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len);
    int forced = 0;
    if (got / 2 < want) {
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) == 0) {
            len = sizeof got;
            getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len);
        } else {
            forced = errno;
        }
    }
    l->rcvbuf_granted = got;
    if (!log)
        return;
    if (got / 2 >= want)
        sy_log(SY_INFO, "%s: receive buffer %d bytes (the kernel reports %d: Linux reports double)",
               l->name, want, got);
    else
        sy_log(SY_WARN, "%s: receive buffer: asked for %d bytes, the kernel granted %d "
               "(reported %d: Linux reports double)%s%s; raise net.core.rmem_max or run as root",
               l->name, want, got / 2, got, forced ? "; SO_RCVBUFFORCE: " : "",
               forced ? strerror(forced) : "");
}

/* One bound socket for an IP listener, or -1 with err set. */
static int bind_inet(sy_listener *l, const struct sockaddr *sa, socklen_t salen, bool dualstack,
                     bool first, char *err, size_t errlen)
{
    int type = is_datagram(l) ? SOCK_DGRAM : SOCK_STREAM;
    int one = 1, zero = 0;
    char addr[INET6_ADDRSTRLEN + 16];

    format_addr(sa, addr, sizeof addr);
    int fd = socket(sa->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sy_fail(err, errlen, "%s: socket: %s", l->name, strerror(errno));
        return -1;
    }
    if (sa->sa_family == AF_INET6 && dualstack)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l->threads > 1 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        sy_fail(err, errlen, "%s: SO_REUSEPORT: %s", l->name, strerror(errno));
        goto fail;
    }
    if (type == SOCK_DGRAM)
        set_rcvbuf(l, fd, first);
    if (bind(fd, sa, salen) != 0) {
        sy_fail(err, errlen, "%s: bind %s: %s", l->name, addr, strerror(errno));
        goto fail;
    }
    if (type == SOCK_STREAM && listen(fd, LISTEN_BACKLOG) != 0) {
        sy_fail(err, errlen, "%s: listen %s: %s", l->name, addr, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

static void close_fds(sy_listener *l)
{
    for (int i = 0; i < l->nfds; i++) {
        if (l->fds[i] >= 0)
            close(l->fds[i]);
        l->fds[i] = -1;
    }
    l->nfds = 0;
}

/*
 * Bind the first address the host resolves to (or [::] dual-stack, then
 * 0.0.0.0, for a wildcard), then l->threads - 1 more sockets on exactly the
 * same address and port, so port 0 works with SO_REUSEPORT too.
 */
static int open_inet(sy_listener *l, char *err, size_t errlen)
{
    struct sockaddr_storage bound;
    socklen_t boundlen = sizeof bound;
    int fd = -1;

    if (!l->host[0]) {
        struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(l->port),
                                    .sin6_addr = IN6ADDR_ANY_INIT };
        struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = htons(l->port),
                                   .sin_addr.s_addr = htonl(INADDR_ANY) };
        fd = bind_inet(l, (struct sockaddr *)&in6, sizeof in6, true, true, err, errlen);
        if (fd < 0)
            fd = bind_inet(l, (struct sockaddr *)&in4, sizeof in4, false, true, err, errlen);
    } else {
        struct addrinfo hints = {
            .ai_family = AF_UNSPEC,
            .ai_socktype = is_datagram(l) ? SOCK_DGRAM : SOCK_STREAM,
            .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
        };
        struct addrinfo *res = NULL;
        char port[8];
        snprintf(port, sizeof port, "%u", l->port);
        int rc = getaddrinfo(l->host, port, &hints, &res);
        if (rc != 0)
            return sy_fail(err, errlen, "%s: cannot resolve '%s': %s", l->name, l->host,
                        rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
            fd = bind_inet(l, ai->ai_addr, ai->ai_addrlen, false, true, err, errlen);
        freeaddrinfo(res);
    }
    if (fd < 0)
        return -1;
    l->fds[l->nfds++] = fd;

    if (getsockname(fd, (struct sockaddr *)&bound, &boundlen) != 0) {
        sy_fail(err, errlen, "%s: getsockname: %s", l->name, strerror(errno));
        goto fail;
    }
    l->bound_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                      : ((struct sockaddr_in *)&bound)->sin_port);
    for (unsigned i = 1; i < l->threads; i++) {
        bool dual = bound.ss_family == AF_INET6 && !l->host[0];
        fd = bind_inet(l, (struct sockaddr *)&bound, boundlen, dual, false, err, errlen);
        if (fd < 0)
            goto fail;
        l->fds[l->nfds++] = fd;
    }

    char addr[INET6_ADDRSTRLEN + 16];
    format_addr((struct sockaddr *)&bound, addr, sizeof addr);
    if (l->threads > 1)
        sy_log(SY_INFO, "%s: listening on %s (%u SO_REUSEPORT sockets)", l->name, addr, l->threads);
    else
        sy_log(SY_INFO, "%s: listening on %s", l->name, addr);
    return 0;
fail:
    close_fds(l);
    return -1;
}

/* Is something still serving this socket file?  Only a successful connect
 * says yes; a refused one means the file was left behind by a dead process. */
static bool unix_alive(const struct sockaddr_un *sun, int type)
{
    int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
    bool alive = rc == 0 || errno == EAGAIN || errno == EINPROGRESS;
    close(fd);
    return alive;
}

/*
 * Replace a stale socket file but never anything else.  The mode is set on
 * the socket before bind: Linux creates the file with the socket inode's
 * mode minus the umask, so the file never exists with looser permissions
 * than asked for; chmod after bind then adds back what the umask removed.
 */
static int open_unix(sy_listener *l, char *err, size_t errlen)
{
    int type = l->kind == SY_LISTEN_UNIX ? SOCK_STREAM : SOCK_DGRAM;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct stat st;
    int fd = -1;

    strcpy(sun.sun_path, l->path);
    if (lstat(l->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return sy_fail(err, errlen, "%s: %s exists and is not a socket; not replacing it",
                        l->name, l->path);
        if (unix_alive(&sun, type))
            return sy_fail(err, errlen, "%s: %s is in use by another process", l->name, l->path);
        if (unlink(l->path) != 0 && errno != ENOENT)
            return sy_fail(err, errlen, "%s: cannot remove stale socket %s: %s", l->name, l->path,
                        strerror(errno));
        sy_log(SY_INFO, "%s: replaced stale socket file %s", l->name, l->path);
    } else if (errno != ENOENT) {
        return sy_fail(err, errlen, "%s: %s: %s", l->name, l->path, strerror(errno));
    }

    fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sy_fail(err, errlen, "%s: socket: %s", l->name, strerror(errno));
    if (fchmod(fd, l->mode & 07777) != 0)
        sy_log(SY_DEBUG, "%s: fchmod on socket: %s", l->name, strerror(errno));
    if (type == SOCK_DGRAM)
        set_rcvbuf(l, fd, true);
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        sy_fail(err, errlen, "%s: bind %s: %s", l->name, l->path, strerror(errno));
        goto fail;
    }
    if (lstat(l->path, &st) != 0) {
        sy_fail(err, errlen, "%s: %s vanished after bind: %s", l->name, l->path, strerror(errno));
        goto fail_unlink;
    }
    l->path_owned = true;
    l->path_dev = st.st_dev;
    l->path_ino = st.st_ino;
    if (chmod(l->path, l->mode & 07777) != 0) {
        sy_fail(err, errlen, "%s: chmod %o %s: %s", l->name, l->mode, l->path, strerror(errno));
        goto fail_unlink;
    }
    if (type == SOCK_STREAM && listen(fd, LISTEN_BACKLOG) != 0) {
        sy_fail(err, errlen, "%s: listen: %s", l->name, strerror(errno));
        goto fail_unlink;
    }
    l->fds[l->nfds++] = fd;
    sy_log(SY_INFO, "%s: listening on %s (mode %04o)", l->name, l->path, l->mode & 07777);
    return 0;
fail_unlink:
    unlink(l->path);
    l->path_owned = false;
fail:
    close(fd);
    return -1;
}

int sy_listener_check(const sy_listener *l, char *err, size_t errlen)
{
    if (l->threads > SY_LISTENER_MAX_THREADS)
        return sy_fail(err, errlen, "%s: threads = %u, at most %d", l->name, l->threads,
                    SY_LISTENER_MAX_THREADS);
    if (l->threads > 1 && l->kind != SY_LISTEN_UDP)
        return sy_fail(err, errlen, "%s: threads > 1 needs SO_REUSEPORT and works for udp only",
                    l->name);
    if (sy_listener_is_stream(l)) {
        if (l->max_line == 0)
            return sy_fail(err, errlen, "%s: max_line must be at least 1", l->name);
        if (l->max_connections == 0)
            return sy_fail(err, errlen, "%s: max_connections must be at least 1", l->name);
    }
    return 0;
}

int sy_listener_open(sy_listener *l, char *err, size_t errlen)
{
    if (l->nfds > 0)
        return sy_fail(err, errlen, "%s: already open", l->name);
    if (l->threads == 0)
        l->threads = 1;
    if (sy_listener_check(l, err, errlen) < 0)
        return -1;
    if (l->kind == SY_LISTEN_UDP || l->kind == SY_LISTEN_TCP)
        return open_inet(l, err, errlen);
    return open_unix(l, err, errlen);
}

void sy_listener_close(sy_listener *l)
{
    struct stat st;

    close_fds(l);
    /* Only remove the file if it is still ours: another instance may have
     * replaced it since. */
    if (l->path_owned && lstat(l->path, &st) == 0 && st.st_dev == l->path_dev &&
        st.st_ino == l->path_ino)
        unlink(l->path);
    l->path_owned = false;
}

void sy_listener_counters_read(const sy_listener *l, sy_listener_counters *out)
{
    /* The counters are only ever modified through atomics; loading them
     * from a const listener is fine. */
    sy_listener_stats *s = (sy_listener_stats *)&l->stats;
    out->received = atomic_load_explicit(&s->received, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&s->dropped, memory_order_relaxed);
    out->lines_too_long = atomic_load_explicit(&s->lines_too_long, memory_order_relaxed);
    out->partial_discarded = atomic_load_explicit(&s->partial_discarded, memory_order_relaxed);
    out->paused = atomic_load_explicit(&s->paused, memory_order_relaxed);
    out->connections_accepted = atomic_load_explicit(&s->connections_accepted, memory_order_relaxed);
    out->connections_rejected = atomic_load_explicit(&s->connections_rejected, memory_order_relaxed);
    out->connections_open = atomic_load_explicit(&s->connections_open, memory_order_relaxed);
    out->idle_closed = atomic_load_explicit(&s->idle_closed, memory_order_relaxed);
    out->evicted = atomic_load_explicit(&s->evicted, memory_order_relaxed);
}
