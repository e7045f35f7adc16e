/*
 * linelog.c - see linelog.h.  Each entry in the log (entrylog.h) is its
 * number and length followed by the line's bytes.
 */
#include "linelog.h"

#include <stdlib.h>
#include <string.h>

#define TAKE_LINES 2048

typedef struct line_entry {
    uint64_t seq;
    uint32_t len;
    char data[];
} line_entry;

struct linelog {
    entrylog log;
    size_t max_bytes;
};

static size_t size_of_len(uint32_t len)
{
    return sizeof(line_entry) + len;
}

size_t linelog_entry_bytes(uint32_t len)
{
    return entrylog_size(size_of_len(len));
}

linelog *linelog_new(size_t max_bytes)
{
    linelog *l = calloc(1, sizeof(*l));
    if (l)
        l->max_bytes = max_bytes;
    return l;
}

void linelog_free(linelog *l)
{
    if (!l)
        return;
    entrylog_clear(&l->log);
    free(l);
}

int linelog_add(linelog *l, uint64_t seq, const char *line, uint32_t len)
{
    if (l->log.bytes + linelog_entry_bytes(len) > l->max_bytes)
        return -1;
    line_entry *e = entrylog_append(&l->log, size_of_len(len));
    if (!e)
        return -1;
    e->seq = seq;
    e->len = len;
    memcpy(e->data, line, len);
    return 0;
}

void linelog_release(linelog *l, uint64_t seq)
{
    const line_entry *e;
    while ((e = entrylog_front(&l->log)) && e->seq <= seq)
        entrylog_pop(&l->log, size_of_len(e->len));
}

int linelog_holds(const linelog *l, linelog_cursor *c, uint64_t seq)
{
    const line_entry *e;
    while ((e = entrylog_at(&l->log, c)) && e->seq < seq)
        entrylog_next(c, size_of_len(e->len));
    return e && e->seq == seq;
}

size_t linelog_take(linelog *l, linelog_keep_fn keep, void *ctx)
{
    const char **lines = malloc(TAKE_LINES * sizeof(*lines));
    uint32_t *lens = malloc(TAKE_LINES * sizeof(*lens));
    size_t total = 0, n = 0;
    if (!lines || !lens) {
        free(lines);
        free(lens);
        return 0;
    }
    entrylog_pos p = { 0 };
    for (const line_entry *e; (e = entrylog_at(&l->log, &p)); entrylog_next(&p, size_of_len(e->len))) {
        if (n == TAKE_LINES) {
            keep(ctx, lines, lens, n);
            total += n;
            n = 0;
        }
        lines[n] = e->data;
        lens[n++] = e->len;
    }
    if (n) {
        keep(ctx, lines, lens, n);
        total += n;
    }
    free(lines);
    free(lens);
    entrylog_clear(&l->log);
    return total;
}

size_t linelog_count(const linelog *l)
{
    return l->log.count;
}

size_t linelog_bytes(const linelog *l)
{
    return l->log.bytes;
}
