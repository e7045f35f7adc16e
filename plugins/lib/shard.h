/*
 * shard.h - picks one of N destinations for a key so that every key always
 * goes to the same destination, and a change in the set of destinations
 * moves as few keys as possible.  Used by the repeater sink to spread
 * metric keys over several downstream aggregators.
 *
 * Two methods:
 *
 * SHARD_KETAMA (the default) - a consistent hash ring laid out as
 *   libketama lays it out for servers of equal weight (the scheme
 *   twemproxy's ketama distribution uses too):
 *     - a node is named by a string (the repeater uses "HOST:PORT" as
 *       configured); its ring points come from md5("NAME-i") for
 *       i = 0..39, each digest giving 4 points (bytes 4j..4j+3 read
 *       little-endian, j = 0..3): 160 points per node;
 *     - a key's position is the first 4 bytes of md5(key), little-endian;
 *     - a key belongs to the node of the first point at or after its
 *       position, wrapping round to the first point;
 *     - two points at the same position (rare) are ordered by node name,
 *       so the placement does not depend on the order nodes are listed in.
 *   Adding or removing a node moves about 1/N of the keys, whichever
 *   node it is; when a node is down its keys can go to the next node
 *   round the ring (shard_pick_up), which spreads them over the others.
 *
 *   This is also the layout of npm's `hashring` package with its default
 *   options (tests/integration/test_relay_tier.py checks placement
 *   against it).
 *
 * SHARD_STATSD - the ring of statsd's own proxy (proxy.js, which builds
 *   npm `hashring` with replicas 0, so a tier of switchyards and statsd
 *   proxies in front of the same aggregators sends each key to the same
 *   one):
 *     - one point per digest (bytes 0..3, little-endian) of md5("NAME-i")
 *       for i below floor(1/n * 40 * n) as JavaScript's doubles compute
 *       it: 40 points per node, 39 for some node counts (3, 6, 7, ...);
 *     - points at the same position keep the order the nodes are listed
 *       in (JavaScript's sort is stable);
 *     - a key (the name before its ':' in statsd; the routed key here) is
 *       found with hashring's own binary search: the first point at or
 *       after its position, wrapping round to the first point.
 *
 * SHARD_JUMP - Lamping and Veach's jump consistent hash of the first 8
 *   bytes of md5(key) (little-endian): nodes are numbered by their place
 *   in the list; perfectly balanced and exactly minimal movement, but only
 *   when nodes are added or removed at the END of the list (removing one
 *   in the middle renumbers the rest and moves most keys).  A down node's
 *   keys are re-jumped with derived seeds until an up node is hit.
 */
#ifndef SY_PLUGIN_SHARD_H
#define SY_PLUGIN_SHARD_H

#include <stddef.h>
#include <stdint.h>

typedef enum shard_method { SHARD_KETAMA = 0, SHARD_JUMP = 1, SHARD_STATSD = 2 } shard_method;

#define SHARD_KETAMA_DIGESTS 40  /* per node; 4 points each */
#define SHARD_KETAMA_POINTS (SHARD_KETAMA_DIGESTS * 4)
#define SHARD_MAX_NODES 4096

typedef struct shard shard;

/* n node names (copied; for SHARD_JUMP only their order matters).  NULL
 * when n is 0 or above SHARD_MAX_NODES, or out of memory. */
shard *shard_new(shard_method method, const char *const *names, size_t n);
void shard_free(shard *s);
size_t shard_nodes(const shard *s);

/* The node (0..n-1) a key belongs to. */
size_t shard_pick(const shard *s, const char *key, size_t len);

/* The node a key goes to when up[i] == 0 marks node i down: its own when
 * up, else (ketama) the next up node round the ring, (jump) the first up
 * node among re-jumps with derived seeds.  Every key of an up node stays
 * where it is.  When no node is up, the key's own node.  *own is set to
 * the key's own node (shard_pick's answer). */
size_t shard_pick_up(const shard *s, const char *key, size_t len, const unsigned char *up,
                     size_t *own);

/* The pieces, for tests. */
uint32_t shard_ketama_position(const char *key, size_t len);
uint64_t shard_jump_key(const char *key, size_t len);
int32_t shard_jump(uint64_t key, int32_t buckets);

#endif
