/*
 * repeater.h - the repeater sink's own header, shared by its files (not
 * part of the plugin ABI).  What the sink does: repeater.c.
 *
 *   repeater.c  settings, destinations, hashing, write, flush, close
 *   udp.c       the UDP queue and socket of a destination
 */
#ifndef SY_REPEATER_SINK_H
#define SY_REPEATER_SINK_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "switchyard_sink.h"
#include "lib/backoff.h"
#include "lib/chunkq.h"
#include "lib/hostproxy.h"
#include "lib/net.h"
#include "lib/settings.h"
#include "lib/keeplog.h"
#include "lib/linelog.h"
#include "lib/samplelog.h"
#include "lib/netq.h"
#include "lib/pace.h"
#include "lib/shard.h"

#define LOG_EVERY_MS 10000
#define DGRAMS_PER_CALL 64   /* datagrams handed to one sendmmsg */
#define CALLS_PER_EVENT 64   /* sendmmsg calls before yielding to the loop */
#define UDP_MAX_PAYLOAD 65507
#define PROBE_WAIT_MS 100    /* how long a UDP probe waits for an ICMP error */
#define MAX_DESTINATIONS 1024

enum { PROTO_UDP, PROTO_TCP };
enum { FLUSHED_NONE, FLUSHED_GAUGES, FLUSHED_ALL };
enum { ONDOWN_QUEUE, ONDOWN_REHASH };

typedef struct repeater repeater;

/*
 * One destination.  Its code (netq, or the UDP sender in udp.c) talks to
 * the host through the sink's hostproxy (lib/hostproxy), with `part` as its
 * host: the gauges (QUEUED, QUEUED_BYTES, CONNECTED) are kept per
 * destination and the host is given their sums.  So netq needs no change
 * to serve one of several destinations.
 */
typedef struct rdest {
    repeater *r;
    const sy_host_api *api;   /* &r->hp.api */
    sy_host *host;            /* hostproxy_host(&part) */
    hostproxy_part part;      /* its gauges; unconnected_since for rp_judge */
    size_t index;
    char label[300];          /* host:port as configured */

    netq *tq;                 /* TCP */

    /* UDP */
    net_addr addrs[NET_MAX_ADDRS];
    size_t naddrs, cur;
    int fd;
    sy_watch *watch;
    int watch_events;
    sy_timer *timer;          /* reopen after an error; a probe's wait */
    unsigned failures;
    int attempted;
    int icmp_down;            /* an ICMP error came back; not yet probed clean */
    int probing;              /* a probe is out, the timer waits for its answer */
    uint64_t rng;
    chunkq cq;                /* whole '\n'-terminated lines: a datagram is one
                                 contiguous run of a chunk */
    size_t lines;

    int down;                 /* as last judged by rp_judge */
    int full;                 /* its queue refused a line in the current batch */
    uint64_t sent_lines;      /* UDP: lines sent since it was made */
    pace pace;                /* whether a batch waits for its queue */
    uint64_t appended;        /* bytes queued since it was made */
    keeplog *kept;            /* the flushed values behind its queued lines
                                 (with `flushed`), for take_back */
    samplelog *ksamples;      /* the raw samples behind its queued lines, by
                                 each line's end (a sink with a spool) */
    linelog *klines;          /* the DogStatsD lines likewise */

    uint64_t drops_unlogged, refused_unlogged, rehashed_unlogged;
    uint64_t rehashed_total;  /* since it was last marked down */
} rdest;

struct repeater {
    const sy_host_api *api;
    sy_host *host;
    hostproxy hp;             /* the per-destination proxy, see rdest */
    int proto;
    int flushed;
    int on_down;
    uint64_t down_after_ms;

    rdest *d;
    size_t nd;
    shard *ring;              /* NULL with one destination */
    unsigned char *up;        /* nd flags, by rp_judge */
    size_t ndown;

    uint64_t min_ms, max_ms;
    size_t max_dgram, max_bytes;

    /* take_back_samples / take_back_lines: a sink with a disk spool keeps
     * copies (at most max_kept bytes a destination for each kind) */
    size_t max_kept;
    int keep_samples, keep_lines;
    int reclaimed;            /* the queues were walked for take_back */
    uint64_t unkept_samples, unkept_lines; /* not kept: the bound was hit */

    /* drops and errors are logged at a bounded rate */
    uint64_t last_log;        /* monotonic ms, 0 = never */
    uint64_t bad_unlogged;
    uint64_t unkept_unlogged;
};

/* repeater.c */
void rp_log(repeater *r, int force);


/* udp.c */
char *uq_reserve(rdest *d, size_t len);
void uq_commit_line(rdest *d, size_t len);
void uq_free(rdest *d);
const char *ud_where(const rdest *d, char *buf, size_t len);
void ud_publish(rdest *d);
void ud_update_watch(rdest *d);
void ud_close(rdest *d);
void ud_on_timer(void *arg);
void ud_send(rdest *d);

#endif
