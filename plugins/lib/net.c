/* net.c - see net.h. */
#include "net.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void net_label(char *buf, size_t len, const char *host, int port)
{
    snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

void net_unbracket(char *buf, size_t len, const char *host)
{
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']')
        snprintf(buf, len, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(buf, len, "%s", host);
}

int net_resolve(const char *host, int port, int socktype, net_addr *out, size_t max,
                char *list, size_t listlen, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = socktype };
    struct addrinfo *res = NULL;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    size_t n = 0, off = 0;
    if (list && listlen)
        list[0] = '\0';
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(out[0].ss))
            continue;
        net_addr *a = &out[n++];
        memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
        a->len = ai->ai_addrlen;
        snprintf(a->ip, sizeof(a->ip), "?");
        if (ai->ai_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, a->ip, sizeof(a->ip));
            snprintf(a->text, sizeof(a->text), "%s:%d", a->ip, port);
        } else {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, a->ip,
                      sizeof(a->ip));
            snprintf(a->text, sizeof(a->text), "[%s]:%d", a->ip, port);
        }
        if (list && off < listlen) {
            int w = snprintf(list + off, listlen - off, "%s%s", off ? ", " : "", a->text);
            if (w > 0)
                off += (size_t)w;
        }
    }
    freeaddrinfo(res);
    if (n == 0) {
        snprintf(err, errlen, "'%s' has no IPv4 or IPv6 address", host);
        return -1;
    }
    return (int)n;
}

int net_connect(const net_addr *a, int socktype, int *fd)
{
    int s = socket(a->ss.ss_family, socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    if (socktype == SOCK_STREAM) {
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    }
    if (connect(s, (const struct sockaddr *)&a->ss, a->len) == 0) {
        *fd = s;
        return 1;
    }
    if (errno == EINPROGRESS) {
        *fd = s;
        return 0;
    }
    int e = errno;
    close(s);
    errno = e;
    return -1;
}

int net_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    return err;
}
