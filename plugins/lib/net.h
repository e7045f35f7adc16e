/*
 * net.h - the socket plumbing every network sink needs, in one place:
 * resolving a host and port to addresses, starting a non-blocking connect
 * (its timeout is the caller's timer, since only the caller owns one on the
 * host's loop) and reading how it ended, and the "host:port" texts used in
 * log lines.  The delay between attempts is lib/backoff.
 *
 * Users: lib/netq (TCP line queue), lib/httpq (HTTP POSTs), the repeater's
 * UDP path, memcache_traces, influxdb's UDP path and remote_write.
 */
#ifndef SY_PLUGIN_NET_H
#define SY_PLUGIN_NET_H

#include <arpa/inet.h>
#include <stddef.h>
#include <sys/socket.h>

#define NET_MAX_ADDRS 16

typedef struct net_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char ip[INET6_ADDRSTRLEN];      /* "10.0.0.5", "::1" */
    char text[INET6_ADDRSTRLEN + 8]; /* "10.0.0.5:2003", "[::1]:2003" */
} net_addr;

/* "host:port", or "[host]:port" when host is an IPv6 address. */
void net_label(char *buf, size_t len, const char *host, int port);

/* host without the brackets of "[v6 address]" (as URLs write it); it is
 * cut to len - 1 bytes. */
void net_unbracket(char *buf, size_t len, const char *host);

/* Resolves host and port (getaddrinfo, which blocks: call it from init)
 * to at most max IPv4 and IPv6 addresses for socktype (SOCK_STREAM or
 * SOCK_DGRAM), in getaddrinfo's order.  The count (at least 1), or -1 with
 * a message naming host in err.  When list is not NULL it receives the
 * addresses as text, comma-separated, for a log line. */
int net_resolve(const char *host, int port, int socktype, net_addr *out, size_t max,
                char *list, size_t listlen, char *err, size_t errlen);

/* Opens a non-blocking, close-on-exec socket of socktype to a (TCP ones
 * with keepalive) and starts connect().  1: connected at once (always so
 * for UDP); 0: in progress, wait until *fd is writable, then ask
 * net_connect_result, and give up when the caller's timeout fires;
 * -1: failed, errno says why and no socket is left open. */
int net_connect(const net_addr *a, int socktype, int *fd);

/* How a connect that was in progress ended: 0 or an errno value. */
int net_connect_result(int fd);

#endif
