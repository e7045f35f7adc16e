/*
 * hostproxy.h - one sink, several destinations, each served by a client
 * written for a sink of its own (lib/netq, the repeater's UDP sender).
 *
 * A hostproxy is a copy of the host's API whose functions take one
 * destination's hostproxy_part as the sy_host and pass everything on to the
 * real host, except the gauges QUEUED, QUEUED_BYTES and CONNECTED: each part
 * sets its own, and the host is given them combined, the sums of the
 * queues and, for CONNECTED, the number of parts connected or (with
 * all_connected) 1 only while every part is.  So a client needs no change
 * to serve one of several destinations.  Shared by graphite and the
 * repeater.
 */
#ifndef SY_PLUGIN_HOSTPROXY_H
#define SY_PLUGIN_HOSTPROXY_H

#include <stddef.h>
#include <stdint.h>

#include "switchyard_sink.h"

typedef struct hostproxy hostproxy;

/* One destination's gauges, as its client last set them. */
typedef struct hostproxy_part {
    hostproxy *hp;
    int64_t queued, queued_bytes, connected;
    uint64_t unconnected_since; /* monotonic ms: made, or CONNECTED last went to 0 */
} hostproxy_part;

struct hostproxy {
    sy_host_api api;          /* give &hp->api and hostproxy_host(part) to a client */
    const sy_host_api *real;
    sy_host *host;
    int all_connected;
    size_t nparts;
    int64_t queued, queued_bytes, connected; /* sums over the parts */
};

/* Fills hp from the host's API (the members up to its struct_size). */
void hostproxy_init(hostproxy *hp, const sy_host_api *api, sy_host *host, int all_connected);

/* Adds a part, not connected; make every part before any client sets a
 * gauge, so that all_connected counts them all. */
void hostproxy_part_init(hostproxy *hp, hostproxy_part *p);

/* The part as the sy_host its client is given. */
static inline sy_host *hostproxy_host(hostproxy_part *p)
{
    return (sy_host *)(void *)p;
}

#endif
