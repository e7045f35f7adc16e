/*
 * samplelog.c - see samplelog.h.  Each entry in the log (entrylog.h) is
 * the fixed part followed by the name, text and tags; release and take
 * walk from the front.
 */
#include "samplelog.h"
#include "entrylog.h"

#include <stdlib.h>
#include <string.h>

#define TAKE_SAMPLES 2048

typedef struct entry {
    uint64_t seq;
    int64_t ts_ms;
    double value, rate;
    uint32_t name_len, text_len, tags_len;
    uint8_t type, is_delta;
    char data[]; /* name, text, tags */
} entry;

struct samplelog {
    entrylog log;
    size_t max_bytes;
};

static size_t entry_bytes(size_t text)
{
    return sizeof(entry) + text;
}

size_t samplelog_entry_bytes(const sy_sample *x)
{
    return entrylog_size(entry_bytes((size_t)x->name_len + x->text_len + x->tags_len));
}

samplelog *samplelog_new(size_t max_bytes)
{
    samplelog *l = calloc(1, sizeof(*l));
    if (l)
        l->max_bytes = max_bytes;
    return l;
}

void samplelog_free(samplelog *l)
{
    if (!l)
        return;
    entrylog_clear(&l->log);
    free(l);
}

int samplelog_add(samplelog *l, uint64_t seq, const sy_sample *x, int64_t ts_ms)
{
    if (l->log.bytes + samplelog_entry_bytes(x) > l->max_bytes)
        return -1;
    entry *e = entrylog_append(&l->log, entry_bytes((size_t)x->name_len + x->text_len + x->tags_len));
    if (!e)
        return -1;
    e->seq = seq;
    e->ts_ms = ts_ms;
    e->value = x->value;
    e->rate = x->rate;
    e->name_len = x->name_len;
    e->text_len = x->text_len;
    e->tags_len = x->tags_len;
    e->type = x->type;
    e->is_delta = x->is_delta;
    memcpy(e->data, x->name, x->name_len);
    memcpy(e->data + x->name_len, x->text, x->text_len);
    memcpy(e->data + x->name_len + x->text_len, x->tags, x->tags_len);
    return 0;
}

static size_t size_of(const entry *e)
{
    return entry_bytes((size_t)e->name_len + e->text_len + e->tags_len);
}

void samplelog_release(samplelog *l, uint64_t seq)
{
    const entry *e;
    while ((e = entrylog_front(&l->log)) && e->seq <= seq)
        entrylog_pop(&l->log, size_of(e));
}

size_t samplelog_take(samplelog *l, samplelog_keep_fn keep, void *ctx)
{
    sy_sample *s = malloc(TAKE_SAMPLES * sizeof(*s));
    int64_t *ts = malloc(TAKE_SAMPLES * sizeof(*ts));
    size_t total = 0, n = 0;
    if (!s || !ts) {
        free(s);
        free(ts);
        return 0;
    }
    entrylog_pos p = { 0 };
    for (const entry *e; (e = entrylog_at(&l->log, &p)); entrylog_next(&p, size_of(e))) {
        if (n == TAKE_SAMPLES) {
            sy_sample_batch b = { .samples = s, .count = n, .timestamps_ms = ts };
            keep(ctx, &b);
            total += n;
            n = 0;
        }
        ts[n] = e->ts_ms;
        s[n++] = (sy_sample){ .name = e->data, .name_len = e->name_len,
                              .text = e->data + e->name_len, .text_len = e->text_len,
                              .tags = e->data + e->name_len + e->text_len,
                              .tags_len = e->tags_len, .value = e->value, .rate = e->rate,
                              .type = e->type, .is_delta = e->is_delta };
    }
    if (n) {
        sy_sample_batch b = { .samples = s, .count = n, .timestamps_ms = ts };
        keep(ctx, &b);
        total += n;
    }
    free(s);
    free(ts);
    entrylog_clear(&l->log);
    return total;
}

int samplelog_holds(const samplelog *l, samplelog_cursor *c, uint64_t seq)
{
    const entry *e;
    while ((e = entrylog_at(&l->log, c)) && e->seq < seq)
        entrylog_next(c, size_of(e));
    return e && e->seq == seq;
}

size_t samplelog_count(const samplelog *l)
{
    return l->log.count;
}

size_t samplelog_bytes(const samplelog *l)
{
    return l->log.bytes;
}
