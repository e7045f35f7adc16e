/*
 * test_spool.c - the disk spool (core/spool.c): records come back in order
 * and byte for byte across segment rotations, the position survives a
 * reopen (what was handed out but not committed comes again: at least
 * once; the records on disk are counted by the ticks after the open, and
 * replay does not wait for that), a damaged or truncated record is skipped and counted and the rest
 * read, a full spool drops per whenFull, and raw samples and raw lines
 * (DogStatsD events, service checks) have records of their own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "output/spool.h"

static char root[256];

static int setup(void **state)
{
    snprintf(root, sizeof root, "/tmp/sy-test-spool-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static sy_spool_opts opts(const char *sub, uint64_t max, uint64_t seg, int newest)
{
    sy_spool_opts o;
    memset(&o, 0, sizeof o);
    snprintf(o.dir, sizeof o.dir, "%s/%s", root, sub);
    o.max_bytes = max;
    o.segment_bytes = seg;
    o.fsync = SY_FSYNC_NEVER;
    o.drop_newest = newest;
    return o;
}

/* Batch i: 1 + i % 50 values named "k.<i>.<j>", value i * 1000 + j. */
static void append_batch(sy_spool *sp, int i, size_t *dropped)
{
    sy_metric m[64];
    char names[64][32];
    size_t n = 1 + (size_t)(i % 50);
    for (size_t j = 0; j < n; j++) {
        snprintf(names[j], sizeof names[j], "k.%d.%zu", i, j);
        m[j] = (sy_metric){ .name = names[j], .name_len = (uint32_t)strlen(names[j]),
                            .kind = (uint8_t)(j % 5), .value = i * 1000.0 + (double)j + 0.25 };
    }
    sy_metric_batch b = { .metrics = m, .count = n, .timestamp = 1700000000 + i };
    if (sy_spool_append(sp, &b, dropped) < 0)
        assert_int_equal(*dropped, n); /* refused whole (whenFull = dropNewest) */
}

static int check_batch(const sy_metric_batch *b, int i)
{
    size_t n = 1 + (size_t)(i % 50);
    if (b->count != n || b->timestamp != 1700000000 + i)
        return 0;
    for (size_t j = 0; j < n; j++) {
        char name[64];
        snprintf(name, sizeof name, "k.%d.%zu", i, j);
        if (strcmp(b->metrics[j].name, name) != 0 || b->metrics[j].name_len != strlen(name) ||
            b->metrics[j].kind != j % 5 || b->metrics[j].value != i * 1000.0 + (double)j + 0.25)
            return 0;
    }
    return 1;
}

/* The record index a batch came from, from its timestamp. */
static int index_of(const sy_metric_batch *b) { return (int)(b->timestamp - 1700000000); }

static int count_segments(const char *sub)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/s", root, sub);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".seg") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void test_crc32c(void **state)
{
    assert_int_equal(sy_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(sy_crc32c(0, "", 0), 0);
    assert_int_equal(sy_crc32c_table(0, "123456789", 9), 0xE3069283u);
    /* the instruction (where the CPU has it) and the table agree on every
     * length and alignment, and when a CRC is continued */
    unsigned char buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof buf; len += 7) {
            assert_int_equal(sy_crc32c(0, buf + off, len), sy_crc32c_table(0, buf + off, len));
            uint32_t half = sy_crc32c(0, buf + off, len / 2);
            assert_int_equal(sy_crc32c(half, buf + off + len / 2, len - len / 2),
                             sy_crc32c_table(0, buf + off, len));
        }
}

static void test_sizes(void **state)
{
    uint64_t v;
    assert_int_equal(sy_spool_parse_size("4GiB", &v), 0);
    assert_true(v == 4ull << 30);
    assert_int_equal(sy_spool_parse_size("512 KiB", &v), 0);
    assert_true(v == 512ull << 10);
    assert_int_equal(sy_spool_parse_size("10MB", &v), 0);
    assert_true(v == 10000000ull);
    assert_int_equal(sy_spool_parse_size("123", &v), 0);
    assert_true(v == 123);
    assert_int_equal(sy_spool_parse_size("1.5GiB", &v), -1);
    assert_int_equal(sy_spool_parse_size("GiB", &v), -1);
    assert_int_equal(sy_spool_parse_size("99999999999999999999", &v), -1);
    assert_int_equal(sy_spool_parse_size("20000000TiB", &v), -1);
}

static void test_order(void **state)
{
    char err[256];
    sy_spool_opts o = opts("order", 64 << 20, 64 << 10, 0);
    sy_spool *sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    size_t dropped;
    for (int i = 0; i < 2000; i++)
        append_batch(sp, i, &dropped);
    assert_true(count_segments("order") > 5); /* rotated */
    sy_spool_stats st;
    sy_spool_stats_get(sp, &st);
    assert_int_equal(st.records, 2000);
    assert_int_equal(st.oldest_ts, 1700000000);
    sy_metric_batch b;
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(sy_spool_peek(sp, &b), 1);
        assert_true(check_batch(&b, i));
        sy_spool_advance(sp);
        if (i % 100 == 0)
            sy_spool_commit(sp);
    }
    assert_int_equal(sy_spool_peek(sp, &b), 0);
    assert_false(sy_spool_has_records(sp));
    sy_spool_commit(sp);
    assert_int_equal(count_segments("order"), 0);
    sy_spool_stats_get(sp, &st);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.corrupt, 0);
    assert_int_equal(st.replayed, st.spooled);
    /* appending after everything was replayed starts a new segment */
    append_batch(sp, 7, &dropped);
    assert_int_equal(sy_spool_peek(sp, &b), 1);
    assert_true(check_batch(&b, 7));
    sy_spool_close(sp);
}

static void test_reopen(void **state)
{
    char err[256];
    sy_spool_opts o = opts("reopen", 64 << 20, 64 << 10, 0);
    sy_spool *sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    /* a second open of the same directory by another process would be
     * refused by the lock; in this one it is shared */
    size_t dropped;
    for (int i = 0; i < 300; i++)
        append_batch(sp, i, &dropped);
    sy_metric_batch b;
    for (int i = 0; i < 120; i++) {
        assert_int_equal(sy_spool_peek(sp, &b), 1);
        sy_spool_advance(sp);
    }
    sy_spool_commit(sp);
    for (int i = 0; i < 30; i++) { /* handed out, never committed */
        assert_int_equal(sy_spool_peek(sp, &b), 1);
        sy_spool_advance(sp);
    }
    sy_spool_close(sp);
    sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    /* opening counts nothing: the ticks do, a step each, and replay does
     * not wait for them */
    assert_true(sy_spool_counting(sp));
    sy_spool_stats st;
    sy_spool_stats_get(sp, &st);
    assert_int_equal(st.records, 0);
    for (int i = 120; i < 130; i++) {
        assert_int_equal(sy_spool_peek(sp, &b), 1);
        assert_true(check_batch(&b, i));
        sy_spool_advance(sp);
    }
    int ticks = 0;
    while (sy_spool_counting(sp) && ticks < 1000) {
        sy_spool_tick(sp, 0);
        ticks++;
    }
    assert_false(sy_spool_counting(sp));
    sy_spool_stats_get(sp, &st);
    assert_int_equal(st.records, 170);
    for (int i = 130; i < 300; i++) {
        assert_int_equal(sy_spool_peek(sp, &b), 1);
        assert_true(check_batch(&b, i));
        sy_spool_advance(sp);
    }
    assert_int_equal(sy_spool_peek(sp, &b), 0);
    sy_spool_close(sp);
}

static void segment_path(const char *sub, char *out, size_t cap)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/%s/s", root, sub);
    DIR *d = opendir(dir);
    struct dirent *e;
    out[0] = '\0';
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".seg"))
            snprintf(out, cap, "%s/%s", dir, e->d_name);
    if (d)
        closedir(d);
}

/* Damage (flip bytes at `at` of the file) or cut (`cut` bytes off the end)
 * a one-segment spool of 40 records, then read it. */
static void damaged(const char *sub, long at, long cut, int *seen, size_t *nseen, int64_t *corrupt)
{
    char err[256], path[700];
    sy_spool_opts o = opts(sub, 64 << 20, 16 << 20, 0);
    sy_spool *sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    size_t dropped;
    for (int i = 0; i < 40; i++)
        append_batch(sp, i, &dropped);
    sy_spool_close(sp);
    segment_path(sub, path, sizeof path);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    if (at >= 0) {
        fseek(f, size * at / 100, SEEK_SET);
        fwrite("\xde\xad\xbe\xef", 1, 4, f);
    }
    fclose(f);
    if (cut)
        assert_int_equal(truncate(path, size - cut), 0);
    sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    sy_metric_batch b;
    *nseen = 0;
    while (sy_spool_peek(sp, &b)) {
        assert_true(check_batch(&b, index_of(&b)));
        seen[(*nseen)++] = index_of(&b);
        sy_spool_advance(sp);
    }
    sy_spool_stats st;
    sy_spool_stats_get(sp, &st);
    *corrupt = st.corrupt;
    sy_spool_close(sp);
}

static void test_corrupt(void **state)
{
    int seen[64];
    size_t n;
    int64_t corrupt;
    damaged("corrupt", 50, 0, seen, &n, &corrupt);
    assert_int_equal(n, 39);
    assert_int_equal(corrupt, 1);
    for (size_t i = 1; i < n; i++)
        assert_true(seen[i] > seen[i - 1]); /* in order, one missing */
    assert_int_equal(seen[0], 0);
    assert_int_equal(seen[n - 1], 39);
}

static void test_truncated(void **state)
{
    int seen[64];
    size_t n;
    int64_t corrupt;
    damaged("truncated", -1, 7, seen, &n, &corrupt);
    assert_int_equal(n, 39);
    assert_int_equal(corrupt, 1);
    assert_int_equal(seen[38], 38);
}

static void fill_full(const char *sub, int newest, int *first, int64_t *dropped_total,
                      int64_t *bytes)
{
    char err[256];
    sy_spool_opts o = opts(sub, 256 << 10, 64 << 10, newest);
    sy_spool *sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    size_t dropped, sum = 0;
    for (int i = 0; i < 2000; i++) {
        append_batch(sp, i, &dropped);
        sum += dropped;
    }
    sy_spool_stats st;
    sy_spool_stats_get(sp, &st);
    assert_int_equal((int64_t)sum, st.dropped);
    *dropped_total = st.dropped;
    *bytes = st.bytes;
    sy_metric_batch b;
    assert_int_equal(sy_spool_peek(sp, &b), 1);
    *first = index_of(&b);
    /* what is left reads back whole and in order */
    int last = -1;
    size_t values = 0;
    while (sy_spool_peek(sp, &b)) {
        assert_true(check_batch(&b, index_of(&b)));
        assert_true(index_of(&b) > last);
        last = index_of(&b);
        values += b.count;
        sy_spool_advance(sp);
    }
    /* nothing silently lost: kept + dropped = given */
    size_t given = 0;
    for (int i = 0; i < 2000; i++)
        given += 1 + (size_t)(i % 50);
    assert_int_equal(values + (size_t)st.dropped, given);
    sy_spool_close(sp);
}

static void test_full(void **state)
{
    int first;
    int64_t dropped, bytes;
    fill_full("oldest", 0, &first, &dropped, &bytes);
    assert_true(dropped > 0);
    assert_true(bytes <= 256 << 10);
    assert_true(first > 0);
    fill_full("newest", 1, &first, &dropped, &bytes);
    assert_true(dropped > 0);
    assert_true(bytes <= 256 << 10);
    assert_int_equal(first, 0);
}

/* Raw samples (pass-through) have records of their own between metric
 * records: they come back in order, every field exact, across a reopen,
 * and count as values. */
static void test_samples(void **state)
{
    char err[256];
    sy_spool_opts o = opts("samples", 64 << 20, 64 << 10, 0);
    sy_spool *sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    size_t dropped;
    append_batch(sp, 3, &dropped);
    sy_sample x[3] = {
        { .name = "a.b;env=prod", .name_len = 12, .text = "-5", .text_len = 2,
          .tags = "env:prod", .tags_len = 8, .value = -5, .rate = 1.0,
          .type = SY_SAMPLE_GAUGE, .is_delta = 1 },
        { .name = "t", .name_len = 1, .text = "12.5", .text_len = 4, .tags = "", .tags_len = 0,
          .value = 12.5, .rate = 0.1, .type = SY_SAMPLE_TIMER },
        { .name = "u", .name_len = 1, .text = "alice", .text_len = 5, .tags = "", .tags_len = 0,
          .value = 0, .rate = 1.0, .type = SY_SAMPLE_SET },
    };
    sy_sample_batch sb = { .samples = x, .count = 3 };
    assert_int_equal(sy_spool_append_samples(sp, &sb, 1700000100, &dropped), 0);
    /* the same with the clients' times (DogStatsD |T, ABI 1.4) */
    const int64_t times[3] = { 1700000000123, -1, INT64_MAX };
    sy_sample_batch st_b = { .samples = x, .count = 3, .timestamps_ms = times };
    assert_int_equal(sy_spool_append_samples(sp, &st_b, 1700000101, &dropped), 0);
    append_batch(sp, 4, &dropped);
    sy_spool_close(sp);

    sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    while (sy_spool_counting(sp))
        sy_spool_tick(sp, 0);
    sy_spool_stats st;
    sy_spool_stats_get(sp, &st);
    assert_int_equal(st.records, 4);
    sy_metric_batch b;
    sy_sample_batch got;
    assert_int_equal(sy_spool_peek_any(sp, &b, &got), 1);
    assert_true(check_batch(&b, 3));
    sy_spool_advance(sp);
    assert_int_equal(sy_spool_peek_any(sp, &b, &got), 2);
    assert_int_equal(got.count, 3);
    for (size_t i = 0; i < 3; i++) {
        const sy_sample *g = &got.samples[i], *w = &x[i];
        assert_int_equal(g->name_len, w->name_len);
        assert_memory_equal(g->name, w->name, w->name_len);
        assert_int_equal(g->text_len, w->text_len);
        assert_memory_equal(g->text, w->text, w->text_len);
        assert_int_equal(g->tags_len, w->tags_len);
        if (w->tags_len)
            assert_memory_equal(g->tags, w->tags, w->tags_len);
        assert_true(g->value == w->value && g->rate == w->rate);
        assert_int_equal(g->type, w->type);
        assert_int_equal(g->is_delta, w->is_delta);
    }
    assert_null(got.timestamps_ms);
    sy_spool_advance(sp);
    assert_int_equal(sy_spool_peek_any(sp, &b, &got), 2);
    assert_int_equal(got.count, 3);
    assert_non_null(got.timestamps_ms);
    for (size_t i = 0; i < 3; i++) {
        assert_true(got.timestamps_ms[i] == times[i]);
        assert_memory_equal(got.samples[i].name, x[i].name, x[i].name_len);
        assert_true(got.samples[i].value == x[i].value);
    }
    sy_spool_advance(sp);
    assert_int_equal(sy_spool_peek_any(sp, &b, &got), 1);
    assert_true(check_batch(&b, 4));
    sy_spool_advance(sp);
    assert_int_equal(sy_spool_peek_any(sp, &b, &got), 0);
    sy_spool_stats_get(sp, &st);
    assert_int_equal(st.replayed, 4 + 3 + 3 + 5);
    sy_spool_close(sp);
}

/* The only segment of spool `sub`: flips one byte inside record `k`'s
 * payload (the records walked by their headers). */
static void damage_record(const char *sub, int k)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/s/%020d.seg", root, sub, 1);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    long off = 0;
    for (int i = 0; i < k; i++) {
        unsigned char h[12];
        assert_int_equal(fseek(f, off, SEEK_SET), 0);
        assert_int_equal(fread(h, 1, 12, f), 12);
        off += 12 + (long)((uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 |
                           (uint32_t)h[7] << 24);
    }
    unsigned char c;
    assert_int_equal(fseek(f, off + 12 + 17, SEEK_SET), 0);
    assert_int_equal(fread(&c, 1, 1, f), 1);
    c ^= 0x5a;
    assert_int_equal(fseek(f, off + 12 + 17, SEEK_SET), 0);
    assert_int_equal(fwrite(&c, 1, 1, f), 1);
    fclose(f);
}

/* DogStatsD events and service checks (write_lines) have records of their
 * own between the others: they come back byte for byte and in order
 * across a reopen, counted apart from values (lines_spooled,
 * lines_replayed); a damaged one is skipped and counted, and the record
 * after it still read. */
static void test_lines(void **state)
{
    char err[256];
    sy_spool_opts o = opts("lines", 64 << 20, 64 << 10, 0);
    sy_spool *sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    size_t dropped;
    append_batch(sp, 5, &dropped);
    static const char ev[] = "_e{5,4}:title|text|#env:prod";
    static const char sc[] = "_sc|db.up|0|m:ok \\n";
    static const char bin[] = { '_', 's', 'c', '|', 'x', '\0', '\xff', '|', '1' };
    const char *lines[3] = { ev, sc, bin };
    const uint32_t lens[3] = { sizeof ev - 1, sizeof sc - 1, sizeof bin };
    assert_int_equal(sy_spool_append_lines(sp, lines, lens, 3, 1700000200, &dropped), 0);
    assert_int_equal(dropped, 0);
    append_batch(sp, 6, &dropped);
    assert_int_equal(sy_spool_append_lines(sp, lines + 1, lens + 1, 1, 1700000201, &dropped), 0);
    append_batch(sp, 7, &dropped);
    sy_spool_stats st;
    sy_spool_stats_get(sp, &st);
    assert_int_equal(st.lines_spooled, 4);
    assert_int_equal(st.spooled, 6 + 7 + 8);
    sy_spool_close(sp);

    sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    while (sy_spool_counting(sp))
        sy_spool_tick(sp, 0);
    sy_spool_stats_get(sp, &st);
    assert_int_equal(st.records, 5);
    sy_metric_batch b;
    sy_sample_batch sb;
    const char *const *gl;
    const uint32_t *gn;
    size_t n;
    assert_int_equal(sy_spool_peek_any(sp, &b, &sb), 1);
    assert_true(check_batch(&b, 5));
    sy_spool_advance(sp);
    assert_int_equal(sy_spool_peek_any(sp, &b, &sb), 3);
    sy_spool_peeked_lines(sp, &gl, &gn, &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(gn[i], lens[i]);
        assert_memory_equal(gl[i], lines[i], lens[i]);
    }
    sy_spool_advance(sp);
    /* sy_spool_peek (values only) says what the record is, too */
    assert_int_equal(sy_spool_peek(sp, &b), 1);
    assert_true(check_batch(&b, 6));
    sy_spool_advance(sp);
    assert_int_equal(sy_spool_peek(sp, &b), 3);
    sy_spool_peeked_lines(sp, &gl, &gn, &n);
    assert_int_equal(n, 1);
    assert_memory_equal(gl[0], sc, sizeof sc - 1);
    sy_spool_advance(sp);
    assert_int_equal(sy_spool_peek_any(sp, &b, &sb), 1);
    assert_true(check_batch(&b, 7));
    sy_spool_advance(sp);
    assert_int_equal(sy_spool_peek_any(sp, &b, &sb), 0);
    sy_spool_stats_get(sp, &st);
    assert_int_equal(st.lines_replayed, 4);
    assert_int_equal(st.replayed, 6 + 7 + 8);
    assert_int_equal(st.corrupt, 0);
    sy_spool_close(sp);

    /* a byte of the first lines record (the second record) damaged on
     * disk: it is skipped and counted, everything else comes back */
    o = opts("lines_bad", 64 << 20, 64 << 10, 0);
    sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    append_batch(sp, 5, &dropped);
    assert_int_equal(sy_spool_append_lines(sp, lines, lens, 3, 1700000200, &dropped), 0);
    assert_int_equal(sy_spool_append_lines(sp, lines + 1, lens + 1, 1, 1700000201, &dropped), 0);
    append_batch(sp, 6, &dropped);
    sy_spool_close(sp);
    damage_record("lines_bad", 1);
    sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    assert_int_equal(sy_spool_peek_any(sp, &b, &sb), 1);
    assert_true(check_batch(&b, 5));
    sy_spool_advance(sp);
    assert_int_equal(sy_spool_peek_any(sp, &b, &sb), 3);
    sy_spool_peeked_lines(sp, &gl, &gn, &n);
    assert_int_equal(n, 1);
    assert_memory_equal(gl[0], sc, sizeof sc - 1);
    sy_spool_advance(sp);
    assert_int_equal(sy_spool_peek_any(sp, &b, &sb), 1);
    assert_true(check_batch(&b, 6));
    sy_spool_advance(sp);
    assert_int_equal(sy_spool_peek_any(sp, &b, &sb), 0);
    sy_spool_stats_get(sp, &st);
    assert_int_equal(st.corrupt, 1);
    assert_int_equal(st.lines_replayed, 1);
    sy_spool_close(sp);
}

/* The batch indices replay hands out from here on (advancing, no commit). */
static int drain_indices(sy_spool *sp, int *out, int cap)
{
    sy_metric_batch b;
    int n = 0;
    while (n < cap && sy_spool_peek(sp, &b) == 1) {
        assert_true(check_batch(&b, index_of(&b)));
        out[n++] = index_of(&b);
        sy_spool_advance(sp);
    }
    return n;
}

/* Records put behind the mark (what a plugin hands back at shutdown) are
 * replayed before what was appended after the mark, in-process and after
 * a reopen: into an empty spool, and behind records replay had handed
 * out (not committed); a mark replay went past refuses an insert. */
static void test_insert(void **state)
{
    char err[256];
    size_t dropped;
    int got[64];
    sy_spool_opts o = opts("insert", 64 << 20, 64 << 10, 0);
    sy_spool *sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    sy_spool_mark(sp);
    assert_true(sy_spool_marked(sp));
    for (int i = 10; i < 20; i++)
        append_batch(sp, i, &dropped);
    assert_int_equal(sy_spool_insert_begin(sp), 0);
    for (int i = 0; i < 10; i++)
        append_batch(sp, i, &dropped);
    sy_spool_insert_end(sp);
    assert_false(sy_spool_marked(sp));
    sy_spool_stats st;
    sy_spool_stats_get(sp, &st);
    assert_int_equal(st.oldest_ts, 1700000000);
    sy_spool_close(sp);
    sp = sy_spool_open("s", &o, err, sizeof err);
    assert_non_null(sp);
    assert_int_equal(drain_indices(sp, got, 64), 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(got[i], i);
    sy_spool_commit(sp);
    assert_int_equal(count_segments("insert"), 0);

    /* 20..24 handed out, not committed; then the mark, 30..34 appended,
     * 25..29 inserted: after a reopen 20..24 come again, then 25..34 */
    for (int i = 20; i < 25; i++)
        append_batch(sp, i, &dropped);
    assert_int_equal(drain_indices(sp, got, 64), 5);
    sy_spool_mark(sp);
    for (int i = 30; i < 35; i++)
        append_batch(sp, i, &dropped);
    assert_int_equal(sy_spool_insert_begin(sp), 0);
    for (int i = 25; i < 30; i++)
        append_batch(sp, i, &dropped);
    sy_spool_insert_end(sp);
    assert_int_equal(drain_indices(sp, got, 64), 10); /* in-process: 25..34 */
    for (int i = 0; i < 10; i++)
        assert_int_equal(got[i], 25 + i);
    sy_spool_close(sp);
    sp = sy_spool_open("s", &o, err, sizeof err);
    assert_int_equal(drain_indices(sp, got, 64), 15);
    for (int i = 0; i < 15; i++)
        assert_int_equal(got[i], 20 + i);
    sy_spool_commit(sp);

    /* a record handed out after the mark: no insert any more */
    sy_spool_mark(sp);
    append_batch(sp, 40, &dropped);
    append_batch(sp, 41, &dropped);
    assert_int_equal(drain_indices(sp, got, 1), 1);
    assert_false(sy_spool_marked(sp));
    assert_int_equal(sy_spool_insert_begin(sp), -1);
    sy_spool_close(sp);
}

/* A reload's lower maxBytes: met at once, the oldest (dropOldest) or the
 * newest (dropNewest) whole segments dropped and counted; what is left
 * replays in order. */
static void test_set_opts(void **state)
{
    char err[256];
    size_t dropped;
    int got[2000];
    for (int newest = 0; newest < 2; newest++) {
        sy_spool_opts o = opts(newest ? "shrink_n" : "shrink_o", 64 << 20, 64 << 10, newest);
        sy_spool *sp = sy_spool_open("s", &o, err, sizeof err);
        assert_non_null(sp);
        for (int i = 0; i < 1000; i++)
            append_batch(sp, i, &dropped);
        sy_spool_stats st;
        sy_spool_stats_get(sp, &st);
        assert_true(st.bytes > 512 << 10);
        o.max_bytes = 256 << 10;
        uint64_t lost = sy_spool_set_opts(sp, &o);
        sy_spool_stats_get(sp, &st);
        assert_true(lost > 0);
        assert_int_equal((int64_t)lost, st.dropped);
        assert_true(st.bytes <= 256 << 10);
        int n = drain_indices(sp, got, 2000);
        assert_true(n > 0 && n < 1000);
        for (int i = 1; i < n; i++)
            assert_int_equal(got[i], got[i - 1] + 1);
        if (newest)
            assert_int_equal(got[0], 0);
        else
            assert_int_equal(got[n - 1], 999);
        /* the values dropped plus those left are the values appended */
        uint64_t left = 0, all = 0;
        for (int i = 0; i < n; i++)
            left += 1 + (uint64_t)(got[i] % 50);
        for (int i = 0; i < 1000; i++)
            all += 1 + (uint64_t)(i % 50);
        assert_int_equal(left + lost, all);
        sy_spool_close(sp);
    }
}

/* A reload's new dir: the segments are renamed there with their order,
 * the replay position (handed out: in-process; committed: after a reopen)
 * and the counters; refused when the new spool holds segments. */
static void test_adopt(void **state)
{
    char err[256];
    size_t dropped;
    int got[400];
    sy_spool_opts oa = opts("adopt_a", 64 << 20, 64 << 10, 0);
    sy_spool_opts ob = opts("adopt_b", 64 << 20, 64 << 10, 0);
    sy_spool *a = sy_spool_open("s", &oa, err, sizeof err);
    assert_non_null(a);
    for (int i = 0; i < 300; i++)
        append_batch(a, i, &dropped);
    assert_int_equal(drain_indices(a, got, 100), 100);
    sy_spool_commit(a);
    assert_int_equal(drain_indices(a, got, 20), 20); /* 100..119 handed out */
    int segs = count_segments("adopt_a");
    assert_true(segs > 2);
    sy_spool *b = sy_spool_open("s", &ob, err, sizeof err);
    assert_non_null(b);
    assert_int_equal(sy_spool_adopt(b, a, err, sizeof err), segs);
    assert_int_equal(count_segments("adopt_a"), 0);
    assert_int_equal(count_segments("adopt_b"), segs);
    sy_spool_stats st;
    sy_spool_stats_get(b, &st);
    assert_true(st.spooled > 0 && st.replayed > 0);
    assert_int_equal(drain_indices(b, got, 400), 180);
    assert_int_equal(got[0], 120);
    assert_int_equal(got[179], 299);
    sy_spool_close(b);
    b = sy_spool_open("s", &ob, err, sizeof err);
    assert_int_equal(drain_indices(b, got, 400), 200);
    assert_int_equal(got[0], 100);
    /* a spool with segments of its own takes none */
    append_batch(a, 5, &dropped);
    assert_int_equal(sy_spool_adopt(b, a, err, sizeof err), -1);
    assert_non_null(strstr(err, "already holds"));
    sy_spool_close(a);
    sy_spool_close(b);

    /* the mark moves too: an insert after the move still goes ahead of
     * what was appended after the mark */
    sy_spool_opts oc = opts("adopt_c", 64 << 20, 64 << 10, 0);
    sy_spool_opts od = opts("adopt_d", 64 << 20, 64 << 10, 0);
    sy_spool *c = sy_spool_open("s", &oc, err, sizeof err);
    for (int i = 0; i < 5; i++)
        append_batch(c, i, &dropped);
    assert_int_equal(drain_indices(c, got, 400), 5);
    sy_spool_mark(c);
    for (int i = 10; i < 15; i++)
        append_batch(c, i, &dropped);
    sy_spool *dd = sy_spool_open("s", &od, err, sizeof err);
    assert_true(sy_spool_adopt(dd, c, err, sizeof err) > 0);
    assert_true(sy_spool_marked(dd));
    assert_int_equal(sy_spool_insert_begin(dd), 0);
    for (int i = 5; i < 10; i++)
        append_batch(dd, i, &dropped);
    sy_spool_insert_end(dd);
    sy_spool_close(dd);
    sy_spool_close(c);
    dd = sy_spool_open("s", &od, err, sizeof err);
    assert_int_equal(drain_indices(dd, got, 400), 15);
    for (int i = 0; i < 15; i++)
        assert_int_equal(got[i], i);
    sy_spool_close(dd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_insert),
        cmocka_unit_test(test_set_opts),
        cmocka_unit_test(test_adopt),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
