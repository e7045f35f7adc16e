/*
 * spool.h - a sink's disk spool: flush batches kept in append-only segment
 * files while the sink cannot take them, replayed in order later.
 *
 * Layout of a spool directory (one per sink: <spool.dir>/<sink name>/):
 *
 *   00000000000000000001.seg   segments, appended to, rotated at
 *   00000000000000000002.seg   segmentBytes, deleted once replayed
 *   position                   "SEQ OFFSET\n": where replay resumes
 *
 * Segments are replayed in the order of their numbers, which may have
 * gaps: a number kept free by sy_spool_mark takes, later, records older
 * than the segments after it (see below).
 *   lock                       flock()ed while a daemon has it open
 *
 * A record is one batch as the sink host handed it to the plugin:
 *
 *   u32 magic "SYSP", u32 payload length, u32 CRC32C of the payload,
 *   payload: i64 flush time, u32 count, then per value
 *            u8 kind, f64 value (little-endian IEEE), u32 name length, name
 *
 * or one batch of raw samples (pass-through), with the count's top bit
 * set and the time it was spooled for the flush time, per sample
 *            u8 type, u8 is_delta, f64 value, f64 rate, u32 name length,
 *            u32 text length, u32 tags length, name, text, tags
 * (the count's second bit set too: then each sample's client time, i64 ms,
 * follows them all),
 *
 * or one batch of raw lines (DogStatsD events and service checks, for
 * write_lines), with the count's second bit set alone and the time it was
 * spooled for the flush time, per line
 *            u32 length, the line's bytes (no newline)
 *
 * A switchyard from before a record type reads such a record as damaged:
 * it is skipped and counted as corrupt, never handed to the wrong entry.
 *
 * Reading hands records out one at a time (sy_spool_peek / _advance); the
 * position file moves only at sy_spool_commit, which the host calls once
 * the plugin has nothing pending, so what a crash interrupts is replayed
 * again: delivery is at least once.  A record whose header, length or CRC
 * is wrong is skipped up to the next valid record (counted as corrupt).
 *
 * Everything runs on the output thread except sy_spool_stats, which any
 * thread may call.
 */
#ifndef SY_SPOOL_H
#define SY_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "output/sinkhost.h"
#include "switchyard_sink.h"

enum sy_spool_fsync { SY_FSYNC_NEVER = 0, SY_FSYNC_INTERVAL = 1, SY_FSYNC_ALWAYS = 2 };

typedef struct sy_spool_opts {
    char dir[512];            /* the spool.dir setting (the sink's name is added) */
    uint64_t max_bytes;       /* on disk, every segment counted */
    uint64_t segment_bytes;
    int fsync;                /* enum sy_spool_fsync */
    uint64_t fsync_interval_ms;
    int drop_newest;          /* whenFull = "dropNewest" (default dropOldest) */
    int always;               /* mode = "always": every batch goes through the
                                 spool (write-through); default "fallback" */
} sy_spool_opts;

/* Reads the host-owned `spool.*` settings of a sink.  1 when the sink has
 * none (no spool), 0 with *o filled, -1 with a message naming the sink and
 * key.  `spool.dir` is required once any spool key is given.  Sizes are
 * numbers of bytes or strings with a unit ("4GiB", "512 KiB", "10MB"). */
int sy_spool_opts_read(const char *sink, const sy_setting *s, size_t n, sy_spool_opts *o,
                       char *err, size_t errlen);
/* Only each key's own value, for a check of one setting at a time. */
int sy_spool_keys_check(const char *sink, const sy_setting *s, size_t n, char *err,
                        size_t errlen);

/* Whether a key belongs to the spool ("spool.maxBytes"). */
int sy_spool_key(const char *key);

/* "4GiB" -> 4294967296; -1 when the text is not a size. */
int sy_spool_parse_size(const char *text, uint64_t *out);

typedef struct sy_spool sy_spool;

/* Opens (creating) <o->dir>/<sink>/, takes its lock, finds its segments
 * and where replay resumes.  NULL with a message on failure. */
sy_spool *sy_spool_open(const char *sink, const sy_spool_opts *o, char *err, size_t errlen);
void sy_spool_close(sy_spool *sp);

/* Appends one batch.  When the spool is full, whenFull decides: the oldest
 * segments are deleted, or this batch is refused; *dropped gets the values
 * given up either way (counted in the spool's dropped total too).
 * 0 appended, -1 not (full, or a write error, logged at a bounded rate). */
int sy_spool_append(sy_spool *sp, const sy_metric_batch *b, size_t *dropped);
/* The same for a batch of raw samples, stamped with now_s. */
int sy_spool_append_samples(sy_spool *sp, const sy_sample_batch *b, int64_t now_s,
                            size_t *dropped);

/* The same for a batch of raw lines (write_lines), stamped with now_s;
 * *dropped counts lines. */
int sy_spool_append_lines(sy_spool *sp, const char *const *lines, const uint32_t *lens, size_t n,
                          int64_t now_s, size_t *dropped);

/* 1 while records wait for replay (handed out or not). */
int sy_spool_has_records(const sy_spool *sp);

/* The next record not yet handed out, decoded into *b (valid until the
 * next call).  1 when there is one, 0 when none; corrupt records on the
 * way are skipped and counted. */
int sy_spool_peek(sy_spool *sp, sy_metric_batch *b);
/* The same for any kind of record: 1 with a metric batch in *b, 2 with
 * raw samples in *sb (names, texts and tags not NUL-terminated), 3 with
 * raw lines (sy_spool_peeked_lines gives them), 0 none.  sy_spool_peek
 * returns 2 and 3 too, leaving *b unset. */
int sy_spool_peek_any(sy_spool *sp, sy_metric_batch *b, sy_sample_batch *sb);
/* The raw lines of the record peek_any returned 3 for (valid until the
 * next peek). */
void sy_spool_peeked_lines(const sy_spool *sp, const char *const **lines, const uint32_t **lens,
                           size_t *n);
/* The peeked record was handed to the plugin (or given up on). */
void sy_spool_advance(sy_spool *sp);
/* Everything handed out so far is delivered: move the position file and
 * delete the segments replay has passed. */
void sy_spool_commit(sy_spool *sp);
/* fsync = "interval": sync what is due; and while what was on disk at
 * start-up is being counted, count the next 4 MiB of it.  Call often. */
void sy_spool_tick(sy_spool *sp, uint64_t now_ms);
/* 1 while that count runs: until then the records gauge counts only the
 * segments done (replay does not wait for it). */
int sy_spool_counting(const sy_spool *sp);

typedef struct sy_spool_stats {
    int64_t bytes;         /* on disk now */
    int64_t records;       /* not yet handed to the plugin */
    int64_t oldest_ts;     /* flush time of the next record; 0 when none */
    int64_t replayed;      /* values and samples handed to the plugin from the spool */
    int64_t spooled;       /* values and samples written to the spool */
    int64_t dropped;       /* values, samples and lines given up: the spool was full */
    int64_t corrupt;       /* damaged stretches skipped */
    int64_t lines_spooled; /* raw lines (events, service checks) written */
    int64_t lines_replayed; /* ... and handed to the plugin */
} sy_spool_stats;

void sy_spool_stats_get(const sy_spool *sp, sy_spool_stats *out);

/* Older records behind newer ones (a plugin's queue handed back at
 * shutdown, after the host spooled the flushes that came later):
 * sy_spool_mark, when nothing is left to hand out, keeps the end of the
 * spool as the place for them (appends from then on start a new segment);
 * the mark holds until replay hands out a record (sy_spool_marked).
 * Between sy_spool_insert_begin (-1 when no mark holds) and _insert_end,
 * sy_spool_append and _append_samples write there: replayed after what
 * was handed out before the mark and before everything appended since. */
void sy_spool_mark(sy_spool *sp);
int sy_spool_marked(const sy_spool *sp);
int sy_spool_insert_begin(sy_spool *sp);
void sy_spool_insert_end(sy_spool *sp);

/* A reload's new settings for the same directory: they apply from now on,
 * and a lower maxBytes is met at once, per whenFull (the oldest or the
 * newest whole segments go, counted as dropped and logged).  Returns the
 * values dropped. */
uint64_t sy_spool_set_opts(sy_spool *sp, const sy_spool_opts *o);
const sy_spool_opts *sy_spool_opts_of(const sy_spool *sp);
/* Whether a reload's new sink and the one it replaces both have it open. */
int sy_spool_shared(const sy_spool *sp);
/* No segment left (everything replayed and committed). */
int sy_spool_empty(const sy_spool *sp);
/* A reload moved the spool to another directory: src's segments are
 * renamed into dst (which must hold none, on the same filesystem) with
 * their order, replay position and counters.  The segments moved, or -1
 * with a message (nothing moved). */
int64_t sy_spool_adopt(sy_spool *dst, sy_spool *src, char *err, size_t errlen);

uint32_t sy_crc32c(uint32_t crc, const void *data, size_t len);
uint32_t sy_crc32c_table(uint32_t crc, const void *data, size_t len); /* no SSE4.2 */

/* `switchyard spool ls|cat DIR`: lists or prints a spool directory (a
 * sink's, or the spool.dir holding several) without changing it. */
int sy_spool_tool(int argc, char **argv);

#endif
