/*
 * entrylog.h - a first-in, first-out log of variable-size entries, the
 * storage under keeplog (flushed values) and samplelog (raw samples).
 *
 * Entries are appended to a list of 256 KiB chunks (a larger entry gets a
 * chunk of its own), 8-byte aligned, and leave from the front.  The caller
 * knows each entry's size (from its own header); the log only counts them.
 */
#ifndef SY_ENTRYLOG_H
#define SY_ENTRYLOG_H

#include <stddef.h>

typedef struct entrylog_chunk entrylog_chunk;

typedef struct entrylog {
    entrylog_chunk *first, *last;
    size_t count, bytes;
} entrylog;

/* A place in the log: zeroed, it is the front. */
typedef struct entrylog_pos {
    entrylog_chunk *chunk;
    size_t off;
} entrylog_pos;

/* The size an entry of `bytes` takes (8-byte aligned). */
static inline size_t entrylog_size(size_t bytes)
{
    return (bytes + 7) & ~(size_t)7;
}

/* Room for one more entry of entrylog_size(bytes) at the end, counted;
 * NULL when out of memory. */
void *entrylog_append(entrylog *l, size_t bytes);

/* The entry at *p (the front when *p is zeroed), or NULL at the end; after
 * it, entrylog_next moves *p past an entry of `bytes`. */
void *entrylog_at(const entrylog *l, entrylog_pos *p);
void entrylog_next(entrylog_pos *p, size_t bytes);

/* The first entry, or NULL; entrylog_pop removes it (its `bytes` given). */
void *entrylog_front(const entrylog *l);
void entrylog_pop(entrylog *l, size_t bytes);

/* Everything forgotten, the memory freed. */
void entrylog_clear(entrylog *l);

#endif
