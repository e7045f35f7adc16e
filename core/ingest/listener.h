/*
 * listener.h - listen URLs, the sockets behind them, and their counters.
 *
 *   udp://HOST:PORT        datagrams
 *   tcp://HOST:PORT        newline-framed stream
 *   unix:///path/to.sock   newline-framed stream on a unix socket
 *   unixgram:///path       datagrams on a unix socket
 *
 * HOST is an IPv4 literal, a name, an IPv6 literal in brackets ("[::1]"),
 * or empty or "*" for every address (IPv6 and IPv4 where possible).
 *
 * sy_listener_parse fills in the address and the defaults; the caller may
 * then change the options before sy_listener_open binds the socket(s).  The
 * reader threads (reader.h) use the sockets and update the counters; any
 * thread may read the counters at any time.
 */
#ifndef SY_LISTENER_H
#define SY_LISTENER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum sy_listen_kind {
    SY_LISTEN_UDP,
    SY_LISTEN_TCP,
    SY_LISTEN_UNIX,       /* unix stream */
    SY_LISTEN_UNIXGRAM,   /* unix datagram */
} sy_listen_kind;

#define SY_LISTENER_NAME_MAX 320
#define SY_LISTENER_MAX_THREADS 64

#define SY_LISTENER_DEFAULT_RCVBUF (32u << 20)
#define SY_LISTENER_DEFAULT_MAX_LINE (64u << 10)
#define SY_LISTENER_DEFAULT_MAX_CONNECTIONS 4096u
#define SY_LISTENER_DEFAULT_IDLE_TIMEOUT_MS 300000u
#define SY_LISTENER_DEFAULT_MODE 0666u

/* Updated by the reader threads with relaxed atomics, read by anyone. */
typedef struct sy_listener_stats {
    _Atomic uint64_t received;           /* datagrams, or stream reads that returned data */
    _Atomic uint64_t bytes;
    _Atomic uint64_t dropped;            /* records that did not fit the ring (datagrams; stream data only at shutdown) */
    _Atomic uint64_t lines_too_long;     /* truncated datagrams, over-long stream lines skipped */
    _Atomic uint64_t partial_discarded;  /* partial lines thrown away when we closed a connection (idle, error, shutdown) */
    _Atomic uint64_t paused;             /* times a stream connection stopped being read because the ring was full */
    _Atomic uint64_t connections_accepted;
    _Atomic uint64_t connections_rejected;  /* closed at once: over max_connections */
    _Atomic uint64_t connections_open;      /* gauge */
    _Atomic uint64_t idle_closed;
    _Atomic uint64_t evicted;               /* closed, idlest first, to make room at max_connections */
} sy_listener_stats;

/* A plain copy of the counters, for reporting. */
typedef struct sy_listener_counters {
    uint64_t received, bytes, dropped, lines_too_long, partial_discarded, paused;
    uint64_t connections_accepted, connections_rejected, connections_open, idle_closed, evicted;
} sy_listener_counters;

typedef struct sy_listener {
    char name[SY_LISTENER_NAME_MAX];   /* the URL, for logs */
    sy_listen_kind kind;
    uint16_t index;                    /* goes into sy_origin.listener; set by sy_readers_start */

    /* Address, from the URL. */
    char host[256];                    /* "" means every address */
    uint16_t port;                     /* 0 asks the kernel for a free port */
    char path[108];                    /* unix sockets */

    /* Options: defaults from sy_listener_parse, change before open. */
    size_t rcvbuf;                     /* datagram sockets: SO_RCVBUF wanted */
    unsigned threads;                  /* udp: sockets (SO_REUSEPORT), one reader thread each */
    size_t max_line;                   /* streams: longest line, newline not included */
    unsigned max_connections;          /* streams: per listener */
    unsigned idle_timeout_ms;          /* streams: 0 = never */
    unsigned mode;                     /* unix sockets: file permissions */

    /* State, set by sy_listener_open. */
    int nfds;
    int fds[SY_LISTENER_MAX_THREADS];
    uint16_t bound_port;               /* the port actually bound (udp/tcp) */
    int rcvbuf_granted;                /* SO_RCVBUF as the kernel reports it (Linux: double) */
    bool path_owned;                   /* we created the socket file and remove it at close */
    dev_t path_dev;
    ino_t path_ino;

    sy_listener_stats stats;
} sy_listener;

/* Parse a URL into *out (zeroed first, options set to the defaults).
 * Returns 0, or -1 with a message in err. */
int sy_listener_parse(const char *url, sy_listener *out, char *err, size_t errlen);

/* The options checks sy_listener_open makes before it opens anything
 * (threads only for udp, limits at least 1), for --check and reloads.
 * Returns 0, or -1 with a message in err. */
int sy_listener_check(const sy_listener *l, char *err, size_t errlen);

/* Create, configure and bind the socket(s); listen for streams.  On failure
 * nothing is left open.  Returns 0, or -1 with a message in err. */
int sy_listener_open(sy_listener *l, char *err, size_t errlen);

/* Close the sockets and remove the unix socket file we created.  Call it
 * after sy_readers_stop.  Safe to call twice, and on a listener that was
 * never opened. */
void sy_listener_close(sy_listener *l);

bool sy_listener_is_stream(const sy_listener *l);
const char *sy_listener_kind_name(sy_listen_kind kind);
void sy_listener_counters_read(const sy_listener *l, sy_listener_counters *out);

#endif
