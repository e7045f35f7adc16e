/*
 * ringpoint.h - the points of a consistent hash ring, kept sorted by
 * position, and the search on them.  carbon's ring (chring.c) and the
 * ketama/hashring rings (shard.c) differ in how they place points, not in
 * how a position finds one.
 */
#ifndef SY_RINGPOINT_H
#define SY_RINGPOINT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ring_point {
    uint32_t pos;
    uint32_t node; /* the ring's index of the node */
} ring_point;

/* The index of the first of pts[0..n) with pos >= p (n when none: the
 * caller wraps to 0).  Python's bisect_left over (pos, node) tuples with
 * (p,) gives the same index, since a shorter tuple sorts first. */
static inline size_t ring_lower_bound(const ring_point *pts, size_t n, uint32_t p)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pts[mid].pos < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

#endif
