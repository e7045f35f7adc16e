/*
 * keeplog.c - see keeplog.h.  Each entry in the log (entrylog.h) is the
 * fixed part and its NUL-terminated name.
 */
#include "keeplog.h"
#include "entrylog.h"

#include <stdlib.h>
#include <string.h>

#define TAKE_VALUES 2048

typedef struct entry {
    uint64_t start, end;
    int64_t ts;
    double value;
    uint32_t name_len;
    uint8_t kind;
    char name[];
} entry;

struct keeplog {
    entrylog log;
};

static size_t entry_bytes(uint32_t name_len)
{
    return sizeof(entry) + name_len + 1;
}

keeplog *keeplog_new(void)
{
    return calloc(1, sizeof(keeplog));
}

void keeplog_free(keeplog *k)
{
    if (!k)
        return;
    entrylog_clear(&k->log);
    free(k);
}

int keeplog_add(keeplog *k, int64_t ts, const sy_metric *m, uint64_t start, uint64_t end)
{
    entry *e = entrylog_append(&k->log, entry_bytes(m->name_len));
    if (!e)
        return -1;
    e->start = start;
    e->end = end;
    e->ts = ts;
    e->value = m->value;
    e->name_len = m->name_len;
    e->kind = m->kind;
    memcpy(e->name, m->name, m->name_len);
    e->name[m->name_len] = '\0';
    return 0;
}

void keeplog_release(keeplog *k, uint64_t done)
{
    const entry *e;
    while ((e = entrylog_front(&k->log)) && e->end <= done)
        entrylog_pop(&k->log, entry_bytes(e->name_len));
}

int keeplog_covers(const keeplog *k, keeplog_cursor *cur, uint64_t start, uint64_t end)
{
    entrylog_pos p = { cur->chunk, cur->off };
    const entry *e;
    while ((e = entrylog_at(&k->log, &p))) {
        if (e->end > start) {
            cur->chunk = p.chunk;
            cur->off = p.off;
            return e->start <= start && end <= e->end;
        }
        entrylog_next(&p, entry_bytes(e->name_len));
    }
    cur->chunk = NULL;
    cur->off = 0;
    return 0;
}

size_t keeplog_take(keeplog *k, keeplog_keep_fn keep, void *ctx)
{
    sy_metric *m = malloc(TAKE_VALUES * sizeof(*m));
    size_t total = 0, n = 0;
    int64_t ts = 0;
    if (!m)
        return 0;
    entrylog_pos p = { 0 };
    for (const entry *e; (e = entrylog_at(&k->log, &p)); entrylog_next(&p, entry_bytes(e->name_len))) {
        if (n && (n == TAKE_VALUES || e->ts != ts)) {
            sy_metric_batch b = { .metrics = m, .count = n, .timestamp = ts };
            keep(ctx, &b);
            total += n;
            n = 0;
        }
        ts = e->ts;
        m[n++] = (sy_metric){ .name = e->name, .name_len = e->name_len, .kind = e->kind,
                              .value = e->value };
    }
    if (n) {
        sy_metric_batch b = { .metrics = m, .count = n, .timestamp = ts };
        keep(ctx, &b);
        total += n;
    }
    free(m);
    entrylog_clear(&k->log);
    return total;
}

size_t keeplog_count(const keeplog *k)
{
    return k->log.count;
}

size_t keeplog_bytes(const keeplog *k)
{
    return k->log.bytes;
}
