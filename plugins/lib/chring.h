/*
 * chring.h - Graphite carbon's ConsistentHashRing (carbon/hashing.py, as
 * carbon-relay's consistent-hashing router uses it), reproduced exactly so
 * that a metric lands on the node carbon-relay would pick.
 *
 * carbon_ch (carbon's default):
 *   - a node is the tuple (server, instance); the port is NOT part of it.
 *     Its key text is Python's str() of that tuple, e.g.
 *       ('127.0.0.1', 'a')      or, with no instance,   ('10.0.0.1', None)
 *   - each node gets `replicas` (carbon: 100) ring entries; entry i is at
 *     position int(md5("%s:%d" % (node, i)).hexdigest()[:4], 16), i.e. the
 *     first two bytes of the MD5 digest, big-endian (0..65535);
 *   - when that position is already taken (by any node, including this
 *     node's earlier entries) it is moved up by one until free -- carbon
 *     1.x does this (carbon-c-relay's old carbon_ch did not), so the order
 *     nodes are added in matters, and a position may exceed 65535;
 *   - a metric goes to the first entry whose position is >= the metric's
 *     own position (md5 of the whole metric name, same two bytes), or to
 *     the first entry when there is none (bisect_left, wrapping round).
 * fnv1a_ch: the same, except that positions are FNV-1a 32 folded to 16 bits
 *   ((h >> 16) ^ (h & 0xffff)) and entry i's key is "%d-%s" % (i, instance):
 *   only the instance, as text ("None" when there is none), names a node.
 *
 * Node ids are the caller's (e.g. an index into its destinations).
 */
#ifndef SY_PLUGIN_CHRING_H
#define SY_PLUGIN_CHRING_H

#include <stddef.h>
#include <stdint.h>

typedef enum chring_hash {
    CHRING_CARBON_CH = 0,
    CHRING_FNV1A_CH = 1
} chring_hash;

typedef struct chring chring;

/* NULL when out of memory or replicas < 1. */
chring *chring_new(chring_hash type, int replicas);
void chring_free(chring *r);

/* Adds a node (instance NULL is Python's None; "" is an empty instance,
 * which carbon distinguishes).  0, or -1 when out of memory, the key
 * text would not fit or node_id is negative.  Adding the same (server, instance) twice is the
 * caller's mistake (carbon-relay refuses it). */
int chring_add(chring *r, const char *server, const char *instance, int node_id);

/* The node id for a key (a metric name), or -1 when the ring is empty. */
int chring_lookup(const chring *r, const char *key, size_t len);

/* A key's position on the ring (0..65535) for the given hash. */
uint32_t chring_position(chring_hash type, const char *key, size_t len);

/* Python's str((server, instance)) into buf (NUL-terminated); returns the
 * length it needs (like snprintf).  Exact for ASCII text; bytes >= 0x80 are
 * copied as they are (what Python does for printable non-ASCII characters,
 * but not for non-printable ones). */
size_t chring_node_key(const char *server, const char *instance, char *buf, size_t len);

/* One DESTINATIONS entry, split as carbon's util.parseDestination does:
 * "HOST:PORT", "HOST:PORT:INSTANCE", "[IPV6]:PORT[:INSTANCE]"; the text is
 * stripped of surrounding white space first; the host is what precedes the
 * first ':' (or is inside the brackets), the instance is everything after
 * the ':' that follows the port (so "h:2004:" has the empty instance "",
 * not none).  Unlike carbon it also insists on a non-empty host and a port
 * of 1..65535 written in digits. */
typedef struct chring_dest {
    char server[256];
    char instance[256];
    int has_instance;
    int port;
} chring_dest;

/* 0, or -1 with the reason in err. */
int chring_parse_dest(const char *text, chring_dest *d, char *err, size_t errlen);

size_t chring_entries(const chring *r);
/* Entry i in ring order: its position and node id. */
void chring_entry(const chring *r, size_t i, uint32_t *pos, int *node_id);

#endif
