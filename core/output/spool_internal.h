/*
 * spool_internal.h - what spool.c shares with the `switchyard spool ls|cat`
 * tool (core/tools/spool/spool_tool.c): the record format's constants, the
 * spool's state and the few readers the tool walks a directory with.  Not
 * an interface: the format itself is described in spool.h.
 */
#ifndef SY_SPOOL_INTERNAL_H
#define SY_SPOOL_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "output/spool.h"
#include "util/log.h"

#define MAGIC 0x50535953u          /* "SYSP" read as little-endian bytes */
#define HDR 12                     /* magic, length, crc */
#define MAX_PAYLOAD (256u << 20)   /* a sanity bound for resync */
#define VALUE_FIXED 13             /* kind, double, name length */
#define SAMPLE_FIXED 30            /* type, delta, value, rate, three lengths */
#define SAMPLES_FLAG 0x80000000u   /* in a record's count: raw samples */
#define TIMES_FLAG 0x40000000u     /* ... followed by each one's client time, ms */
#define LINES_FLAG 0x40000000u     /* alone (without SAMPLES_FLAG): raw lines */
#define KIND_MASK 0xc0000000u      /* the two flags */
#define COUNT_MASK 0x3fffffffu     /* the count itself */
#define LINE_FIXED 4               /* a raw line's length */

/* A record's count says its kind: values, raw samples (with or without
 * their clients' times) or raw lines. */
static inline int rec_is_lines(uint32_t count)
{
    return (count & KIND_MASK) == LINES_FLAG;
}
#define POS_LEN 42                 /* "%020llu %020llu\n" */

typedef struct segment {
    uint64_t seq;
    uint64_t bytes;     /* file size */
    uint64_t records;   /* counted from where this process started reading it */
    uint64_t values;
    uint64_t scan_end;  /* found at start-up: records and values are counted
                           up to here in the background; 0 once done */
} segment;

struct sy_spool {
    struct sy_spool *next; /* open spools, so that a reload's new instance
                            * shares the retiring one's (same path) */
    int refs;
    char path[1024];
    sy_spool_opts o;
    int lock_fd, pos_fd;
    segment *seg;
    size_t nseg, capseg;
    int wfd;               /* the last segment, for appending; -1 none */
    int rfd;               /* the segment being read; -1 none */
    uint64_t rfd_seq;
    uint64_t next_seq;
    /* committed: the position file; handed: the next record to hand out.
     * Both are in segments still on disk (the committed one is seg[0]). */
    uint64_t c_seq, c_off;
    uint64_t h_seq, h_off;
    uint64_t h_rec, h_vals; /* records and values advanced within h_seq */
    /* the peeked record */
    int peeked;
    uint64_t peek_len;     /* bytes of the record, header included */
    unsigned char *buf;
    size_t bufcap;
    sy_metric *vals;
    size_t valcap;
    sy_sample *smp;        /* a peeked record of raw samples */
    int64_t *smp_ts;       /* ... and their clients' times, when it has them */
    size_t smpcap;
    const char **lines;    /* a peeked record of raw lines */
    uint32_t *line_lens;
    size_t nlines, linecap;
    unsigned char *wbuf;
    size_t wbufcap;
    int dirty;             /* written since the last fsync */
    uint64_t last_sync_ms;
    /* counting what was on disk at start-up, a step per tick (see
     * scan_step): the segment and offset reached, with a reader and a
     * record buffer of its own */
    int scanning;
    uint64_t scan_seq, scan_off;
    int scan_fd;
    uint64_t scan_fd_seq;
    unsigned char *sbuf;
    size_t sbufcap;
    uint64_t scan_start_ms;
    /* sy_spool_mark: the segment number kept free for older records, 0
     * when none is (or replay has handed out a record since); while
     * sy_spool_insert_begin is in force appends go to that segment */
    uint64_t mark_seq;
    int inserting;
    sy_ratelimit rl;

    _Atomic int64_t st_bytes, st_records, st_oldest, st_replayed, st_spooled, st_dropped,
        st_corrupt, st_lines_spooled, st_lines_replayed;
};

static inline uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* A spool for `path` that owns nothing yet: no lock, no open files. */
sy_spool *sy_spool_new(const char *path);
/* Closes what it holds and frees it. */
void sy_spool_free(sy_spool *sp);
/* Reads the directory's segments into sp->seg, sorted. */
int sy_spool_list_segments(sy_spool *sp);
/* Opens segment `seq` for reading (cached in sp->rfd). */
int sy_spool_read_fd(sy_spool *sp, uint64_t seq);
/* A valid record at `off` of fd (file size `size`), read into sp->buf:
 * its total length, or 0. */
uint64_t sy_spool_record_at(sy_spool *sp, int fd, uint64_t off, uint64_t size, int64_t *ts,
                            uint32_t *count);
/* The next offset after `off` where a valid record starts, or `size`. */
uint64_t sy_spool_resync(sy_spool *sp, int fd, uint64_t off, uint64_t size);

#endif
