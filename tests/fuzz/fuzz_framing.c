/*
 * fuzz_framing.c - stream framing, end to end through sy_agg_feed.
 *
 * A stream connection (core/ingest/reader.c) reads into a buffer of max_line + 1
 * bytes; after each read the complete lines at its front go to the ring as
 * one record, the partial last line waits for the next read, a line that
 * fills the whole buffer without a newline is counted and skipped up to the
 * next newline, and at EOF the last line goes too, newline or not.  Those
 * steps are core/ingest/framing.c's; this harness drives them as reader.c does
 * (conn_take/conn_flush/conn_push_final) with read sizes the fuzzer
 * chooses, and feeds each record, in its own exactly-sized heap block, to
 * sy_agg_feed as the engine does.
 *
 * The oracle: however the stream is cut into reads, the aggregates must be
 * those of its lines fed one by one (sy_agg_line), leaving out the lines
 * longer than max_line and, when the connection ends without EOF, the
 * unfinished last line.  Both aggregators take the same options and the
 * same sampling seed; their snapshots are compared value for value (timer
 * samples too, in order), and so are the line, sample and bad-line counts.
 * Only statsd.packets_received may differ: it counts records.
 *
 * Input: 2 bytes of options, 16 read sizes, then the stream.
 *   byte 0: max_line = byte + 1 when below 200, else 65536
 *   byte 1: bit 0 keyNameSanitize, bit 1 EOF at the end (else the last
 *           line is unfinished), bit 2 timerSampleLimit 3, bit 3 maxKeys 8,
 *           bits 4-5 deleteIdleStats / gaugesMaxTTL 2 (deletion only
 *           matters at a second snapshot, which the harness also takes)
 *   16 bytes: read sizes, used in turn (0: as much as fits)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/agg.h"
#include "ingest/framing.h"
#include "fuzz_common.h"
#include "util/log.h"
#include "ingest/parse.h"

#define HEADER 18

/* One connection as reader.c drives it: its frame, records going to an
 * aggregator. */
typedef struct conn_model {
    sy_agg *agg;
    const sy_origin *origin;
    sy_frame f;
    size_t records, too_long;
} conn_model;

static void push(conn_model *c, const char *p, size_t n)
{
    char *rec = fuzz_dup(p, n);
    sy_agg_feed(c->agg, rec, n, c->origin);
    free(rec);
    c->records++;
}

/* reader.c conn_take + conn_flush, after read() put n bytes in the frame
 * (the ring always has room here) */
static void model_take(conn_model *c, size_t n)
{
    size_t len;
    sy_frame_add(&c->f, n);
    const char *lines = sy_frame_lines(&c->f, &len);
    if (lines) {
        push(c, lines, len);
        sy_frame_taken(&c->f);
    }
    if (sy_frame_overlong(&c->f))
        c->too_long++;
}

/* reader.c conn_push_final */
static void model_final(conn_model *c)
{
    size_t len;
    const char *last = sy_frame_last(&c->f, &len);
    if (last)
        push(c, last, len);
    sy_frame_clear(&c->f);
}

static int item_cmp(const void *a, const void *b)
{
    const sy_snap_item *x = a, *y = b;
    if (x->type != y->type)
        return x->type < y->type ? -1 : 1;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int same(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

static int is_packets(const sy_snap_item *it)
{
    static const char k[] = "statsd.packets_received";
    return it->type == SY_T_COUNTER && it->key_len == sizeof k - 1 && memcmp(it->key, k, sizeof k - 1) == 0;
}

static void compare(sy_snapshot *a, sy_snapshot *b)
{
    FUZZ_CHECK(a && b, "no snapshot");
    qsort(a->items, a->n, sizeof *a->items, item_cmp);
    qsort(b->items, b->n, sizeof *b->items, item_cmp);
    FUZZ_CHECK(a->n == b->n, "framed: %zu aggregates, line by line: %zu", a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        sy_snap_item *x = &a->items[i], *y = &b->items[i];
        FUZZ_CHECK(item_cmp(x, y) == 0, "aggregate %zu: '%.*s' vs '%.*s'", i, (int)x->key_len, x->key,
                   (int)y->key_len, y->key);
        if (is_packets(x))
            continue;
        FUZZ_CHECK(same(x->value, y->value), "'%s' (type %d): framed %.17g, line by line %.17g", x->key,
                   x->type, x->value, y->value);
        FUZZ_CHECK(!x->timer == !y->timer, "'%s': timer data on one side only", x->key);
        if (x->timer) {
            sy_timer_data *s = x->timer, *t = y->timer;
            FUZZ_CHECK(s->n == t->n && s->seen == t->seen, "'%s': %u/%llu samples vs %u/%llu", x->key,
                       s->n, (unsigned long long)s->seen, t->n, (unsigned long long)t->seen);
            FUZZ_CHECK(same(s->count, t->count) && same(s->sum, t->sum) && same(s->sumsq, t->sumsq) &&
                       same(s->min, t->min) && same(s->max, t->max), "'%s': timer statistics differ", x->key);
            for (uint32_t k = 0; k < s->n; k++)
                FUZZ_CHECK(same(s->v[k], t->v[k]), "'%s': sample %u differs", x->key, k);
        }
    }
}

static sy_agg *new_agg(uint8_t flags)
{
    sy_agg_opts o = {
        .sanitize = flags & 1,
        .prefix_stats = "statsd",
        .flush_interval_ms = 10000,
        .timer_sample_limit = (flags & 4) ? 3 : 0,
        .max_keys = (flags & 8) ? 8 : 0,
        .gauges_max_ttl = (flags & 32) ? 2 : 1,
    };
    if (flags & 16)
        o.delete_counters = o.delete_timers = o.delete_sets = o.delete_gauges = 1;
    sy_agg *a = sy_agg_new(&o);
    if (!a)
        abort();
    sy_agg_set_sample_seed(a, 42);
    return a;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sy_log_level = SY_ERR; /* bad lines are logged (rate-limited): keep quiet */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER)
        return 0;
    size_t max_line = data[0] < 200 ? (size_t)data[0] + 1 : 65536;
    uint8_t flags = data[1];
    int eof = flags & 2;
    const uint8_t *sizes = data + 2;
    const char *stream = (const char *)data + HEADER;
    size_t slen = size - HEADER;

    sy_origin origin;
    memset(&origin, 0, sizeof origin);

    /* Framed: reads of the chosen sizes, records as the reader makes them. */
    conn_model c = { .agg = new_agg(flags), .origin = &origin };
    char *buf = malloc(max_line + 1);
    if (!buf)
        abort();
    sy_frame_init(&c.f, buf, max_line + 1);
    size_t off = 0, k = 0;
    while (off < slen) {
        size_t room;
        char *to = sy_frame_space(&c.f, &room);
        size_t want = sizes[k++ % 16];
        size_t n = want && want < room ? want : room;
        if (n > slen - off)
            n = slen - off;
        FUZZ_CHECK(n > 0, "the frame is full before a read");
        memcpy(to, stream + off, n);
        off += n;
        model_take(&c, n);
    }
    if (eof)
        model_final(&c);

    /* Line by line: what the stream means. */
    sy_agg *ref = new_agg(flags);
    size_t skipped = 0;
    const char *p = stream, *end = stream + slen;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl && !eof)
            break; /* unfinished, and the peer never closed */
        size_t len = (size_t)((nl ? nl : end) - p);
        if (len > max_line) {
            skipped++;
        } else if (len > 0) {
            char *line = fuzz_dup(p, len);
            sy_agg_line(ref, line, len, &origin);
            free(line);
        }
        if (!nl)
            break;
        p = nl + 1;
    }

    /* Every too-long line is counted once, except one still being skipped
     * when the stream ends without a newline. */
    FUZZ_CHECK(c.too_long == skipped || (c.too_long == skipped + 1 && c.f.discarding),
               "model skipped %zu lines, %zu are too long", c.too_long, skipped);

    const sy_agg_stats *sa = sy_agg_get_stats(c.agg), *sb = sy_agg_get_stats(ref);
    FUZZ_CHECK(sa->lines == sb->lines && sa->samples == sb->samples && sa->bad_lines == sb->bad_lines &&
               sa->keys_rejected == sb->keys_rejected,
               "framed: %llu lines %llu samples %llu bad; line by line: %llu %llu %llu",
               (unsigned long long)sa->lines, (unsigned long long)sa->samples,
               (unsigned long long)sa->bad_lines, (unsigned long long)sb->lines,
               (unsigned long long)sb->samples, (unsigned long long)sb->bad_lines);
    FUZZ_CHECK(sa->packets == c.records, "%llu packets counted for %zu records",
               (unsigned long long)sa->packets, c.records);

    /* Two flushes: the second applies statsd's clear/delete rules. */
    for (int round = 0; round < 2; round++) {
        sy_snapshot *x = sy_agg_snapshot(c.agg, 1000 + 10 * round);
        sy_snapshot *y = sy_agg_snapshot(ref, 1000 + 10 * round);
        compare(x, y);
        sy_snapshot_free(x);
        sy_snapshot_free(y);
    }
    free(buf);
    sy_agg_free(c.agg);
    sy_agg_free(ref);
    return 0;
}
