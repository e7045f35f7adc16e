/*
 * spool_tool.c - `switchyard spool ls|cat DIR`: lists or prints a spool
 * directory (a sink's, or the spool.dir holding several) without changing
 * it, reading the segments with spool.c's own record reader
 * (output/spool_internal.h).
 */
#include "output/spool_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/inspect.h"
#include "util/numfmt.h"

static void fmt_time(int64_t ts, char *out, size_t cap)
{
    time_t t = (time_t)ts;
    struct tm tm;
    if (!ts || !gmtime_r(&t, &tm))
        snprintf(out, cap, "-");
    else
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Names may hold any byte: print them as the console does. */
static void print_name(FILE *f, const char *s, size_t len)
{
    char buf[256];
    while (len) {
        size_t used = 0;
        size_t w = sy_inspect_escape(buf, sizeof buf, s, len, SY_ESC_BYTES, &used, NULL);
        fwrite(buf, 1, w, f);
        if (!used)
            break;
        s += used;
        len -= used;
    }
}

/* A raw sample as the StatsD line it came as (NAME:TEXT|TYPE[|@RATE]
 * [|#TAGS]), escaped as names are, then "# sample TS". */
static void print_sample(const unsigned char *p, int64_t ts)
{
    uint32_t nl = get32(p + 18), tl = get32(p + 22), gl = get32(p + 26);
    const char *name = (const char *)p + SAMPLE_FIXED;
    uint64_t bits = get64(p + 10);
    double rate;
    memcpy(&rate, &bits, 8);
    print_name(stdout, name, nl);
    putchar(':');
    print_name(stdout, name + nl, tl);
    switch (p[0]) {
    case SY_SAMPLE_COUNTER: fputs("|c", stdout); break;
    case SY_SAMPLE_GAUGE: fputs("|g", stdout); break;
    case SY_SAMPLE_TIMER: fputs("|ms", stdout); break;
    default: fputs("|s", stdout); break;
    }
    if (rate != 1.0) {
        char num[32];
        sy_fmt_double(rate, num);
        printf("|@%s", num);
    }
    if (gl) {
        fputs("|#", stdout);
        print_name(stdout, name + nl + tl, gl);
    }
    printf(" # sample %" PRId64 "\n", ts);
}

/* One spool directory (a sink's): ls or cat it.  Returns 1 when it held
 * damage, 0 when clean, -1 when it cannot be read. */
static int tool_one(const char *path, int cat)
{
    sy_spool *sp = sy_spool_new(path);
    if (!sp)
        return -1;
    if (sy_spool_list_segments(sp) < 0) {
        fprintf(stderr, "switchyard spool: cannot read %s: %s\n", path, strerror(errno));
        sy_spool_free(sp);
        return -1;
    }
    char name[1100], line[POS_LEN + 1] = { 0 };
    uint64_t pseq = 0, poff = 0;
    snprintf(name, sizeof name, "%s/position", path);
    int pfd = open(name, O_RDONLY | O_CLOEXEC);
    if (pfd >= 0) {
        if (pread(pfd, line, POS_LEN, 0) > 0 &&
            sscanf(line, "%" SCNu64 " %" SCNu64, &pseq, &poff) != 2)
            pseq = poff = 0;
        close(pfd);
    }
    int damaged = 0;
    if (!cat)
        printf("%s: %zu segments, replay resumes at segment %" PRIu64 " offset %" PRIu64 "\n",
               path, sp->nseg, pseq, poff);
    uint64_t trec = 0, tval = 0, tlines = 0, tbytes = 0;
    for (size_t i = 0; i < sp->nseg; i++) {
        segment *g = &sp->seg[i];
        int fd = sy_spool_read_fd(sp, g->seq);
        uint64_t off = g->seq == pseq ? poff : 0, recs = 0, vals = 0, lines = 0, bad = 0;
        int64_t oldest = 0, newest = 0;
        if (g->seq < pseq)
            off = g->bytes; /* replayed, not yet deleted */
        while (fd >= 0 && off < g->bytes) {
            int64_t ts;
            uint32_t count;
            uint64_t len = sy_spool_record_at(sp, fd, off, g->bytes, &ts, &count);
            if (!len) {
                uint64_t to = sy_spool_resync(sp, fd, off, g->bytes);
                bad++;
                if (cat)
                    printf("# corrupt: %" PRIu64 " bytes skipped in segment %" PRIu64
                           " at offset %" PRIu64 "\n", to - off, g->seq, off);
                off = to;
                continue;
            }
            recs++;
            if (rec_is_lines(count))
                lines += count & COUNT_MASK;
            else
                vals += count & COUNT_MASK;
            if (!oldest || ts < oldest)
                oldest = ts;
            if (ts > newest)
                newest = ts;
            if (cat && rec_is_lines(count)) {
                /* an event or service check as the client sent it */
                const unsigned char *p = sp->buf + 12;
                for (uint32_t k = 0; k < (count & COUNT_MASK); k++) {
                    uint32_t ll = get32(p);
                    print_name(stdout, (const char *)p + LINE_FIXED, ll);
                    printf(" # line %" PRId64 "\n", ts);
                    p += LINE_FIXED + ll;
                }
            } else if (cat && (count & SAMPLES_FLAG)) {
                const unsigned char *p = sp->buf + 12;
                for (uint32_t k = 0; k < (count & COUNT_MASK); k++) {
                    print_sample(p, ts);
                    p += SAMPLE_FIXED + get32(p + 18) + get32(p + 22) + get32(p + 26);
                }
            } else if (cat) {
                const unsigned char *p = sp->buf + 12;
                for (uint32_t k = 0; k < count; k++) {
                    uint64_t bits = get64(p + 1);
                    double v;
                    char num[32];
                    memcpy(&v, &bits, 8);
                    uint32_t nl = get32(p + 9);
                    print_name(stdout, (const char *)p + VALUE_FIXED, nl);
                    sy_fmt_double(v, num);
                    printf(" %s %" PRId64 "\n", num, ts);
                    p += VALUE_FIXED + nl;
                }
            }
            off += len;
        }
        damaged |= bad > 0;
        trec += recs;
        tval += vals;
        tlines += lines;
        tbytes += g->bytes;
        if (!cat) {
            char a[32], b[32];
            fmt_time(oldest, a, sizeof a);
            fmt_time(newest, b, sizeof b);
            printf("  %020" PRIu64 ".seg  %10" PRIu64 " bytes  %8" PRIu64 " records  %10" PRIu64
                   " values  %s .. %s", g->seq, g->bytes, recs, vals, a, b);
            if (lines)
                printf("  %" PRIu64 " lines", lines);
            if (!bad)
                putchar('\n');
            if (bad)
                printf("  %" PRIu64 " DAMAGED stretches\n", bad);
        }
    }
    if (!cat && tlines)
        printf("  total: %" PRIu64 " records, %" PRIu64 " values and %" PRIu64 " lines to "
               "replay, %" PRIu64 " bytes on disk\n", trec, tval, tlines, tbytes);
    else if (!cat)
        printf("  total: %" PRIu64 " records, %" PRIu64 " values to replay, %" PRIu64
               " bytes on disk\n", trec, tval, tbytes);
    sy_spool_free(sp);
    return damaged;
}

int sy_spool_tool(int argc, char **argv)
{
    /* argv: "spool", "ls"|"cat", DIR */
    if (argc != 3 || (strcmp(argv[1], "ls") != 0 && strcmp(argv[1], "cat") != 0)) {
        fprintf(stderr, "usage: switchyard spool ls|cat DIR\n"
                        "  DIR is a sink's spool (spool.dir/<sink>) or spool.dir itself\n");
        return 2;
    }
    int cat = strcmp(argv[1], "cat") == 0;
    const char *dir = argv[2];
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "switchyard spool: cannot open %s: %s\n", dir, strerror(errno));
        return 1;
    }
    /* a sink's directory holds a position file; spool.dir holds sinks' */
    char name[1100];
    struct stat st;
    snprintf(name, sizeof name, "%s/position", dir);
    int rc = 0;
    if (stat(name, &st) == 0) {
        int r = tool_one(dir, cat);
        rc = r < 0 ? 1 : r;
    } else {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(name, sizeof name, "%s/%s/position", dir, e->d_name);
            if (stat(name, &st) != 0)
                continue;
            snprintf(name, sizeof name, "%s/%s", dir, e->d_name);
            int r = tool_one(name, cat);
            if (r != 0)
                rc = 1;
        }
    }
    closedir(d);
    return rc;
}
