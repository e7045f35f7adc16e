/*
 * spool.c - a sink's disk spool; see spool.h for the format and the rules.
 */
#include "output/spool_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/log.h"

#define SCAN_STEP_BYTES (4u << 20) /* counted a tick at start-up (1 GiB: 256 ticks) */

/* ------------------------------------------------------------------ */
/* CRC32C (Castagnoli), reflected: the SSE4.2 crc32 instruction where the
 * CPU has it (8 bytes an instruction), else a table a byte at a time    */
/* ------------------------------------------------------------------ */

static uint32_t crc_table[256];
static int crc_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
#if defined(__x86_64__)
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
/* The instruction works on the register as is: the caller inverts. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p,
                                                             size_t len)
{
    uint64_t c = crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

/* The table alone, for the unit test's comparison of the two. */
uint32_t sy_crc32c_table(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t sy_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
#if defined(__x86_64__)
    if (crc_hw)
        return ~crc32c_hw(~crc, data, len);
#endif
    return sy_crc32c_table(crc, data, len);
}

/* ------------------------------------------------------------------ */
/* Settings                                                             */
/* ------------------------------------------------------------------ */

int sy_spool_key(const char *key)
{
    return key && strncmp(key, "spool.", 6) == 0;
}

int sy_spool_parse_size(const char *text, uint64_t *out)
{
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    uint64_t v = 0;
    while (isdigit((unsigned char)*p)) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    while (isspace((unsigned char)*p))
        p++;
    static const struct { const char *u; uint64_t m; } units[] = {
        { "", 1 }, { "B", 1 }, { "KiB", 1ull << 10 }, { "MiB", 1ull << 20 },
        { "GiB", 1ull << 30 }, { "TiB", 1ull << 40 }, { "KB", 1000 }, { "kB", 1000 },
        { "MB", 1000000 }, { "GB", 1000000000 }, { "TB", 1000000000000ull },
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(p, units[i].u) == 0) {
            if (v > UINT64_MAX / units[i].m)
                return -1;
            *out = v * units[i].m;
            return 0;
        }
    return -1;
}

static int size_setting(const char *sink, const sy_setting *st, uint64_t *out, char *err,
                        size_t errlen)
{
    if (st->type == SY_SET_NUMBER && st->num >= 0 && st->num < 1.8e19 &&
        st->num == (double)(uint64_t)st->num) {
        *out = (uint64_t)st->num;
        return 0;
    }
    if (st->type == SY_SET_STRING && sy_spool_parse_size(st->str, out) == 0)
        return 0;
    snprintf(err, errlen, "sink '%s': setting '%s' must be a size: a whole number of bytes "
             "or a string such as \"4GiB\", \"512MiB\", \"10MB\"", sink, st->key);
    return -1;
}

static int opts_read(const char *sink, const sy_setting *s, size_t n, sy_spool_opts *o,
                     char *err, size_t errlen, int whole);

int sy_spool_opts_read(const char *sink, const sy_setting *s, size_t n, sy_spool_opts *o,
                       char *err, size_t errlen)
{
    return opts_read(sink, s, n, o, err, errlen, 1);
}

int sy_spool_keys_check(const char *sink, const sy_setting *s, size_t n, char *err,
                        size_t errlen)
{
    sy_spool_opts o;
    return opts_read(sink, s, n, &o, err, errlen, 0) < 0 ? -1 : 0;
}

static int opts_read(const char *sink, const sy_setting *s, size_t n, sy_spool_opts *o,
                     char *err, size_t errlen, int whole)
{
    int any = 0, have_dir = 0, have_seg = 0;
    memset(o, 0, sizeof *o);
    o->max_bytes = 4ull << 30;
    o->segment_bytes = 64ull << 20;
    o->fsync = SY_FSYNC_INTERVAL;
    o->fsync_interval_ms = 1000;
    for (size_t i = 0; i < n; i++) {
        const sy_setting *st = &s[i];
        if (!sy_spool_key(st->key))
            continue;
        any = 1;
        const char *k = st->key + 6;
        if (strcmp(k, "dir") == 0) {
            if (st->type != SY_SET_STRING || !st->str[0] || strlen(st->str) >= sizeof o->dir - 130) {
                snprintf(err, errlen, "sink '%s': setting 'spool.dir' must be a directory path "
                         "(a non-empty string shorter than 380 bytes)", sink);
                return -1;
            }
            snprintf(o->dir, sizeof o->dir, "%s", st->str);
            have_dir = 1;
        } else if (strcmp(k, "maxBytes") == 0) {
            if (size_setting(sink, st, &o->max_bytes, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "segmentBytes") == 0) {
            if (size_setting(sink, st, &o->segment_bytes, err, errlen) < 0)
                return -1;
            have_seg = 1;
        } else if (strcmp(k, "fsync") == 0) {
            if (st->type == SY_SET_STRING && strcmp(st->str, "never") == 0)
                o->fsync = SY_FSYNC_NEVER;
            else if (st->type == SY_SET_STRING && strcmp(st->str, "interval") == 0)
                o->fsync = SY_FSYNC_INTERVAL;
            else if (st->type == SY_SET_STRING && strcmp(st->str, "always") == 0)
                o->fsync = SY_FSYNC_ALWAYS;
            else {
                snprintf(err, errlen, "sink '%s': setting 'spool.fsync' must be \"never\", "
                         "\"interval\" or \"always\"", sink);
                return -1;
            }
        } else if (strcmp(k, "fsyncInterval") == 0) {
            if (st->type != SY_SET_NUMBER || st->num < 1 || st->num > 3600000 ||
                st->num != (double)(uint64_t)st->num) {
                snprintf(err, errlen, "sink '%s': setting 'spool.fsyncInterval' must be a whole "
                         "number of milliseconds from 1 to 3600000", sink);
                return -1;
            }
            o->fsync_interval_ms = (uint64_t)st->num;
        } else if (strcmp(k, "whenFull") == 0) {
            if (st->type == SY_SET_STRING && strcmp(st->str, "dropOldest") == 0)
                o->drop_newest = 0;
            else if (st->type == SY_SET_STRING && strcmp(st->str, "dropNewest") == 0)
                o->drop_newest = 1;
            else {
                snprintf(err, errlen, "sink '%s': setting 'spool.whenFull' must be "
                         "\"dropOldest\" or \"dropNewest\"", sink);
                return -1;
            }
        } else if (strcmp(k, "mode") == 0) {
            if (st->type == SY_SET_STRING && strcmp(st->str, "fallback") == 0)
                o->always = 0;
            else if (st->type == SY_SET_STRING && strcmp(st->str, "always") == 0)
                o->always = 1;
            else {
                snprintf(err, errlen, "sink '%s': setting 'spool.mode' must be \"fallback\" "
                         "or \"always\"", sink);
                return -1;
            }
        } else {
            snprintf(err, errlen, "sink '%s': unknown setting '%s' (the spool knows dir, "
                     "maxBytes, segmentBytes, fsync, fsyncInterval, whenFull, mode)", sink,
                     st->key);
            return -1;
        }
    }
    if (!any)
        return 1;
    if (!whole)
        return 0;
    if (!have_dir) {
        snprintf(err, errlen, "sink '%s': a spool needs 'dir' (spool = { dir = \"...\" })", sink);
        return -1;
    }
    if (!have_seg && o->segment_bytes > o->max_bytes / 4)
        o->segment_bytes = o->max_bytes / 4;
    if (o->segment_bytes < (64u << 10)) {
        snprintf(err, errlen, "sink '%s': the spool's segmentBytes must be at least 64KiB "
                 "(and maxBytes at least twice that)", sink);
        return -1;
    }
    if (o->max_bytes < 2 * o->segment_bytes) {
        snprintf(err, errlen, "sink '%s': the spool's maxBytes must be at least twice its "
                 "segmentBytes", sink);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Segments                                                             */
/* ------------------------------------------------------------------ */

static void seg_name(const sy_spool *sp, uint64_t seq, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%020" PRIu64 ".seg", sp->path, seq);
}

static uint64_t total_bytes(const sy_spool *sp)
{
    uint64_t t = 0;
    for (size_t i = 0; i < sp->nseg; i++)
        t += sp->seg[i].bytes;
    return t;
}

static int64_t records_left(const sy_spool *sp)
{
    int64_t n = 0;
    for (size_t i = 0; i < sp->nseg; i++) {
        if (sp->seg[i].seq < sp->h_seq || sp->seg[i].scan_end)
            continue; /* passed, or not counted yet */
        n += (int64_t)sp->seg[i].records;
        if (sp->seg[i].seq == sp->h_seq)
            n -= (int64_t)sp->h_rec;
    }
    return n < 0 ? 0 : n;
}

static segment *seg_find(sy_spool *sp, uint64_t seq)
{
    for (size_t i = 0; i < sp->nseg; i++)
        if (sp->seg[i].seq == seq)
            return &sp->seg[i];
    return NULL;
}

static int rd_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static int grow(unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    unsigned char *b = realloc(*buf, n);
    if (!b)
        return -1;
    *buf = b;
    *cap = n;
    return 0;
}

/* Whether the payload holds exactly the `count` values it announces (a
 * record of raw samples has SAMPLES_FLAG set in its count, one of raw
 * lines LINES_FLAG alone). */
static int payload_check(const unsigned char *p, uint64_t len, int64_t *ts, uint32_t *count)
{
    if (len < 12)
        return -1;
    *ts = (int64_t)get64(p);
    *count = get32(p + 8);
    uint64_t off = 12;
    uint32_t n = *count & COUNT_MASK;
    for (uint32_t i = 0; i < n; i++) {
        if (rec_is_lines(*count)) {
            if (len - off < LINE_FIXED)
                return -1;
            uint32_t ll = get32(p + off);
            off += LINE_FIXED;
            if (len - off < ll)
                return -1;
            off += ll;
            continue;
        }
        if (*count & SAMPLES_FLAG) {
            if (len - off < SAMPLE_FIXED)
                return -1;
            uint64_t var = (uint64_t)get32(p + off + 18) + get32(p + off + 22) +
                           get32(p + off + 26);
            off += SAMPLE_FIXED;
            if (len - off < var)
                return -1;
            off += var;
            continue;
        }
        if (len - off < VALUE_FIXED)
            return -1;
        uint32_t nl = get32(p + off + 9);
        off += VALUE_FIXED;
        if (len - off < nl)
            return -1;
        off += nl;
    }
    if ((*count & SAMPLES_FLAG) && (*count & TIMES_FLAG)) {
        if (len - off != (uint64_t)n * 8)
            return -1;
        off += (uint64_t)n * 8;
    }
    return off == len ? 0 : -1;
}

/* A valid record at `off` of fd (file size `size`): its total length, or 0. */
uint64_t sy_spool_record_at(sy_spool *sp, int fd, uint64_t off, uint64_t size, int64_t *ts,
                            uint32_t *count)
{
    unsigned char h[HDR];
    if (size - off < HDR || rd_at(fd, h, HDR, off) < 0 || get32(h) != MAGIC)
        return 0;
    uint64_t len = get32(h + 4);
    if (len > MAX_PAYLOAD || size - off - HDR < len)
        return 0;
    if (grow(&sp->buf, &sp->bufcap, (size_t)len + 1) < 0 || rd_at(fd, sp->buf, len, off + HDR) < 0)
        return 0;
    if (sy_crc32c(0, sp->buf, len) != get32(h + 8))
        return 0;
    if (payload_check(sp->buf, len, ts, count) < 0)
        return 0;
    return HDR + len;
}

/* The next offset after `off` where a valid record starts, or `size`. */
uint64_t sy_spool_resync(sy_spool *sp, int fd, uint64_t off, uint64_t size)
{
    unsigned char chunk[65536];
    uint64_t pos = off + 1;
    while (pos + HDR <= size) {
        size_t want = size - pos < sizeof chunk ? (size_t)(size - pos) : sizeof chunk;
        if (rd_at(fd, chunk, want, pos) < 0)
            return size;
        for (size_t i = 0; i + 4 <= want; i++) {
            if (get32(chunk + i) != MAGIC)
                continue;
            int64_t ts;
            uint32_t cnt;
            if (sy_spool_record_at(sp, fd, pos + i, size, &ts, &cnt))
                return pos + i;
        }
        pos += want > 3 ? want - 3 : 1;
    }
    return size;
}

static void stats_update(sy_spool *sp);

static void write_position(sy_spool *sp)
{
    char line[POS_LEN + 1];
    snprintf(line, sizeof line, "%020" PRIu64 " %020" PRIu64 "\n", sp->c_seq, sp->c_off);
    if (pwrite(sp->pos_fd, line, POS_LEN, 0) != POS_LEN)
        sy_log_limited(&sp->rl, SY_ERR, "spool %s: cannot write its position: %s", sp->path,
                       strerror(errno));
    if (sp->o.fsync == SY_FSYNC_ALWAYS)
        fdatasync(sp->pos_fd);
}

static int seg_cmp(const void *a, const void *b)
{
    uint64_t x = ((const segment *)a)->seq, y = ((const segment *)b)->seq;
    return (x > y) - (x < y);
}

static int mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

/* Reads the directory's segments into sp->seg, sorted. */
int sy_spool_list_segments(sy_spool *sp)
{
    DIR *d = opendir(sp->path);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l != 24 || strcmp(e->d_name + 20, ".seg") != 0)
            continue;
        char *end;
        uint64_t seq = strtoull(e->d_name, &end, 10);
        if (end != e->d_name + 20)
            continue;
        if (sp->nseg == sp->capseg) {
            size_t nc = sp->capseg ? sp->capseg * 2 : 16;
            segment *ns = realloc(sp->seg, nc * sizeof *ns);
            if (!ns) {
                closedir(d);
                return -1;
            }
            sp->seg = ns;
            sp->capseg = nc;
        }
        char name[1100];
        struct stat stt;
        seg_name(sp, seq, name, sizeof name);
        if (stat(name, &stt) < 0)
            continue;
        sp->seg[sp->nseg++] = (segment){ .seq = seq, .bytes = (uint64_t)stt.st_size };
    }
    closedir(d);
    if (sp->nseg > 1)
        qsort(sp->seg, sp->nseg, sizeof *sp->seg, seg_cmp);
    return 0;
}

sy_spool *sy_spool_new(const char *path)
{
    sy_spool *sp = calloc(1, sizeof *sp);
    if (!sp)
        return NULL;
    snprintf(sp->path, sizeof sp->path, "%s", path);
    sp->lock_fd = sp->pos_fd = sp->wfd = sp->rfd = sp->scan_fd = -1;
    sp->rl.period_ms = 10000;
    sp->rl.burst = 5;
    return sp;
}

void sy_spool_free(sy_spool *sp)
{
    if (sp->wfd >= 0)
        close(sp->wfd);
    if (sp->rfd >= 0)
        close(sp->rfd);
    if (sp->scan_fd >= 0)
        close(sp->scan_fd);
    if (sp->pos_fd >= 0)
        close(sp->pos_fd);
    if (sp->lock_fd >= 0)
        close(sp->lock_fd);
    free(sp->seg);
    free(sp->buf);
    free(sp->sbuf);
    free(sp->vals);
    free(sp->smp);
    free(sp->smp_ts);
    free(sp->lines);
    free(sp->line_lens);
    free(sp->wbuf);
    free(sp);
}

/* Opens segment `seq` for reading (cached). */
int sy_spool_read_fd(sy_spool *sp, uint64_t seq)
{
    if (sp->rfd >= 0 && sp->rfd_seq == seq)
        return sp->rfd;
    if (sp->rfd >= 0)
        close(sp->rfd);
    char name[1100];
    seg_name(sp, seq, name, sizeof name);
    sp->rfd = open(name, O_RDONLY | O_CLOEXEC);
    sp->rfd_seq = seq;
    return sp->rfd;
}

static sy_spool *open_spools; /* output thread only */

sy_spool *sy_spool_open(const char *sink, const sy_spool_opts *o, char *err, size_t errlen)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", o->dir, sink);
    for (sy_spool *it = open_spools; it; it = it->next)
        if (strcmp(it->path, path) == 0) {
            if (memcmp(&it->o, o, sizeof *o) != 0) {
                /* a reload reopened the sink while the one it replaces
                 * still drains: both use the new settings */
                sy_spool_set_opts(it, o);
                sy_log(SY_INFO, "spool %s: already open; its new settings apply now", path);
            }
            it->refs++;
            return it;
        }
    sy_spool *sp = sy_spool_new(path);
    if (!sp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sp->o = *o;
    if (mkdirs(path) < 0) {
        snprintf(err, errlen, "cannot create the spool directory %s: %s", path, strerror(errno));
        goto fail;
    }
    char name[1100];
    snprintf(name, sizeof name, "%s/lock", path);
    sp->lock_fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (sp->lock_fd < 0 || flock(sp->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "cannot lock the spool %s (%s): is another switchyard using it?",
                 path, strerror(errno));
        goto fail;
    }
    snprintf(name, sizeof name, "%s/position", path);
    sp->pos_fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (sp->pos_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", name, strerror(errno));
        goto fail;
    }
    char line[POS_LEN + 1] = { 0 };
    ssize_t got = pread(sp->pos_fd, line, POS_LEN, 0);
    uint64_t pseq = 0, poff = 0;
    if (got > 0 && sscanf(line, "%" SCNu64 " %" SCNu64, &pseq, &poff) != 2)
        pseq = poff = 0;
    if (sy_spool_list_segments(sp) < 0) {
        snprintf(err, errlen, "cannot read the spool directory %s: %s", path, strerror(errno));
        goto fail;
    }
    /* segments before the position were replayed (deleting them was cut
     * short): delete them now */
    size_t first = 0;
    while (first < sp->nseg && sp->seg[first].seq < pseq) {
        seg_name(sp, sp->seg[first].seq, name, sizeof name);
        unlink(name);
        first++;
    }
    if (first) {
        memmove(sp->seg, sp->seg + first, (sp->nseg - first) * sizeof *sp->seg);
        sp->nseg -= first;
    }
    if (sp->nseg && sp->seg[0].seq == pseq && poff <= sp->seg[0].bytes)
        sp->c_off = poff;
    else
        sp->c_off = 0;
    sp->c_seq = sp->nseg ? sp->seg[0].seq : pseq + 1;
    sp->next_seq = sp->nseg ? sp->seg[sp->nseg - 1].seq + 1 : pseq + 1;
    /* records and values are counted later, a step per tick: replay needs
     * only the bytes, and a large spool must not hold up the start */
    for (size_t i = 0; i < sp->nseg; i++) {
        sp->seg[i].records = sp->seg[i].values = 0;
        sp->seg[i].scan_end = sp->seg[i].bytes;
    }
    if (sp->nseg) {
        sp->scanning = 1;
        sp->scan_seq = sp->seg[0].seq;
        sp->scan_off = sp->c_off;
        sp->scan_start_ms = sy_mono_ms();
    }
    sp->h_seq = sp->c_seq;
    sp->h_off = sp->c_off;
    stats_update(sp);
    sp->refs = 1;
    sp->next = open_spools;
    open_spools = sp;
    if (sp->nseg)
        sy_log(SY_INFO, "spool %s: %zu segments (%" PRIu64 " bytes) to replay; their records "
               "are counted in the background", path, sp->nseg, total_bytes(sp));
    return sp;
fail:
    sy_spool_free(sp);
    return NULL;
}

void sy_spool_close(sy_spool *sp)
{
    if (!sp || --sp->refs > 0)
        return;
    for (sy_spool **pp = &open_spools; *pp; pp = &(*pp)->next)
        if (*pp == sp) {
            *pp = sp->next;
            break;
        }
    if (sp->dirty && sp->wfd >= 0)
        fdatasync(sp->wfd);
    if (sp->pos_fd >= 0)
        fdatasync(sp->pos_fd);
    sy_spool_free(sp);
}

/* The flush time of the next record to hand out, without checking it. */
static int64_t head_ts(sy_spool *sp)
{
    uint64_t seq = sp->h_seq, off = sp->h_off;
    for (size_t i = 0; i < sp->nseg; i++) {
        segment *g = &sp->seg[i];
        if (g->seq < seq)
            continue;
        if (g->seq > seq)
            off = 0;
        if (off + HDR + 8 <= g->bytes) {
            unsigned char b[HDR + 8];
            int fd = sy_spool_read_fd(sp, g->seq);
            if (fd >= 0 && rd_at(fd, b, sizeof b, off) == 0 && get32(b) == MAGIC)
                return (int64_t)get64(b + HDR);
            return 0;
        }
    }
    return 0;
}

static void stats_update(sy_spool *sp)
{
    atomic_store(&sp->st_bytes, (int64_t)total_bytes(sp));
    atomic_store(&sp->st_records, records_left(sp));
    atomic_store(&sp->st_oldest, head_ts(sp));
}

static void seg_delete(sy_spool *sp, size_t i)
{
    char name[1100];
    if (sp->rfd >= 0 && sp->rfd_seq == sp->seg[i].seq) {
        close(sp->rfd);
        sp->rfd = -1;
    }
    if (i == sp->nseg - 1 && sp->wfd >= 0) {
        close(sp->wfd);
        sp->wfd = -1;
    }
    seg_name(sp, sp->seg[i].seq, name, sizeof name);
    if (unlink(name) < 0 && errno != ENOENT)
        sy_log_limited(&sp->rl, SY_ERR, "spool %s: cannot delete %s: %s", sp->path, name,
                       strerror(errno));
    memmove(sp->seg + i, sp->seg + i + 1, (sp->nseg - i - 1) * sizeof *sp->seg);
    sp->nseg--;
}

/* Starts a new segment for appending. */
static int rotate(sy_spool *sp)
{
    if (sp->wfd >= 0) {
        if (sp->dirty && sp->o.fsync != SY_FSYNC_NEVER)
            fdatasync(sp->wfd);
        close(sp->wfd);
        sp->wfd = -1;
    }
    if (sp->nseg == sp->capseg) {
        size_t nc = sp->capseg ? sp->capseg * 2 : 16;
        segment *ns = realloc(sp->seg, nc * sizeof *ns);
        if (!ns)
            return -1;
        sp->seg = ns;
        sp->capseg = nc;
    }
    char name[1100];
    uint64_t seq = sp->next_seq++;
    seg_name(sp, seq, name, sizeof name);
    sp->wfd = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (sp->wfd < 0) {
        sy_log_limited(&sp->rl, SY_ERR, "spool %s: cannot create %s: %s", sp->path, name,
                       strerror(errno));
        return -1;
    }
    sp->seg[sp->nseg++] = (segment){ .seq = seq };
    if (sp->nseg == 1) {
        /* an empty spool: replay starts here */
        sp->c_seq = sp->h_seq = seq;
        sp->c_off = sp->h_off = 0;
        sp->h_rec = sp->h_vals = 0;
        write_position(sp);
    }
    return 0;
}

static void scan_step(sy_spool *sp, uint64_t budget);

/* whenFull = dropOldest: the oldest segment goes, whatever replay had
 * handed out of it (it is in the plugin already). */
static void drop_head(sy_spool *sp)
{
    while (sp->scanning && sp->seg[0].scan_end)
        scan_step(sp, SCAN_STEP_BYTES); /* its values, for the count */
    segment *g = &sp->seg[0];
    uint64_t vals = g->values, recs = g->records;
    if (sp->h_seq == g->seq) {
        vals = vals > sp->h_vals ? vals - sp->h_vals : 0;
        recs = recs > sp->h_rec ? recs - sp->h_rec : 0;
    } else if (sp->h_seq > g->seq) {
        vals = recs = 0;
    }
    atomic_fetch_add(&sp->st_dropped, (int64_t)vals);
    sy_log_limited(&sp->rl, SY_WARN, "spool %s full (maxBytes %" PRIu64 "): the oldest segment, "
                   "%" PRIu64 " records of %" PRIu64 " values, is dropped (whenFull = dropOldest)",
                   sp->path, sp->o.max_bytes, recs, vals);
    seg_delete(sp, 0);
    uint64_t next = sp->nseg ? sp->seg[0].seq : sp->next_seq;
    if (sp->h_seq < next) {
        sp->h_seq = next;
        sp->h_off = sp->h_rec = sp->h_vals = 0;
        sp->peeked = 0;
    }
    if (sp->c_seq < next) {
        sp->c_seq = next;
        sp->c_off = 0;
        write_position(sp);
    }
}

/* Room for one record of `len` payload bytes holding `count` values:
 * makes space per whenFull and picks the segment.  0, or -1 with the
 * values counted as dropped (*dropped). */
static int record_room(sy_spool *sp, uint64_t len, size_t count, size_t *dropped)
{
    *dropped = 0;
    uint64_t need = HDR + len;
    if (len > MAX_PAYLOAD || need > sp->o.max_bytes) {
        *dropped = count;
        atomic_fetch_add(&sp->st_dropped, (int64_t)count);
        sy_log_limited(&sp->rl, SY_WARN, "spool %s: a batch of %zu values is larger than "
                       "the spool; dropped", sp->path, count);
        return -1;
    }
    if (total_bytes(sp) + need > sp->o.max_bytes) {
        if (sp->o.drop_newest) {
            *dropped = count;
            atomic_fetch_add(&sp->st_dropped, (int64_t)count);
            sy_log_limited(&sp->rl, SY_WARN, "spool %s full (maxBytes %" PRIu64 "): newest "
                           "values dropped (whenFull = dropNewest)", sp->path, sp->o.max_bytes);
            return -1;
        }
        int64_t before = atomic_load(&sp->st_dropped);
        while (total_bytes(sp) + need > sp->o.max_bytes) {
            if (sp->inserting && sp->seg[0].seq >= sp->mark_seq) {
                /* only what is newer than the handed-back records is left */
                *dropped = count;
                atomic_fetch_add(&sp->st_dropped, (int64_t)count);
                sy_log_limited(&sp->rl, SY_WARN, "spool %s full (maxBytes %" PRIu64 "): "
                               "values handed back at shutdown dropped", sp->path,
                               sp->o.max_bytes);
                return -1;
            }
            if (!sp->inserting && sp->nseg <= 1 && rotate(sp) < 0)
                return -1;
            drop_head(sp);
        }
        *dropped = (size_t)(atomic_load(&sp->st_dropped) - before);
    }
    if (sp->inserting && sp->wfd < 0) {
        *dropped += count; /* the inserted segment could not be written */
        atomic_fetch_add(&sp->st_dropped, (int64_t)count);
        return -1;
    }
    if (!sp->inserting && (sp->wfd < 0 || sp->seg[sp->nseg - 1].bytes >= sp->o.segment_bytes)) {
        if (rotate(sp) < 0) {
            *dropped += count;
            atomic_fetch_add(&sp->st_dropped, (int64_t)count);
            return -1;
        }
    }
    if (grow(&sp->wbuf, &sp->wbufcap, (size_t)need) < 0) {
        *dropped += count;
        atomic_fetch_add(&sp->st_dropped, (int64_t)count);
        return -1;
    }
    return 0;
}

/* Writes the record whose payload (`len` bytes, `count` values) is in
 * sp->wbuf after the header; `spooled` counts them (values and samples,
 * or lines). */
static int record_write(sy_spool *sp, uint64_t len, size_t count, int64_t ts, size_t *dropped,
                        _Atomic int64_t *spooled)
{
    uint64_t need = HDR + len;
    put32(sp->wbuf, MAGIC);
    put32(sp->wbuf + 4, (uint32_t)len);
    put32(sp->wbuf + 8, sy_crc32c(0, sp->wbuf + HDR, len));
    segment *g = sp->inserting ? seg_find(sp, sp->mark_seq) : &sp->seg[sp->nseg - 1];
    size_t off = 0;
    while (off < need) {
        ssize_t w = write(sp->wfd, sp->wbuf + off, (size_t)need - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            /* a torn tail is skipped as corrupt by the reader; count the
             * batch as lost here */
            sy_log_limited(&sp->rl, SY_ERR, "spool %s: write failed (%s): %zu values dropped",
                           sp->path, strerror(errno), count);
            g->bytes += off;
            *dropped += count;
            atomic_fetch_add(&sp->st_dropped, (int64_t)count);
            /* start a new segment next time rather than append after garbage */
            close(sp->wfd);
            sp->wfd = -1;
            stats_update(sp);
            return -1;
        }
        off += (size_t)w;
    }
    g->bytes += need;
    g->records++;
    g->values += count;
    sp->dirty = 1;
    if (sp->o.fsync == SY_FSYNC_ALWAYS) {
        fdatasync(sp->wfd);
        sp->dirty = 0;
    }
    atomic_fetch_add(spooled, (int64_t)count);
    atomic_store(&sp->st_bytes, (int64_t)total_bytes(sp));
    atomic_fetch_add(&sp->st_records, 1);
    if (atomic_load(&sp->st_oldest) == 0)
        atomic_store(&sp->st_oldest, ts);
    return 0;
}

int sy_spool_append(sy_spool *sp, const sy_metric_batch *b, size_t *dropped)
{
    uint64_t len = 12;
    for (size_t i = 0; i < b->count; i++)
        len += VALUE_FIXED + b->metrics[i].name_len;
    if (record_room(sp, len, b->count, dropped) < 0)
        return -1;
    unsigned char *p = sp->wbuf + HDR;
    put64(p, (uint64_t)b->timestamp);
    put32(p + 8, (uint32_t)b->count);
    p += 12;
    for (size_t i = 0; i < b->count; i++) {
        const sy_metric *m = &b->metrics[i];
        uint64_t bits;
        memcpy(&bits, &m->value, 8);
        p[0] = m->kind;
        put64(p + 1, bits);
        put32(p + 9, m->name_len);
        memcpy(p + VALUE_FIXED, m->name, m->name_len);
        p += VALUE_FIXED + m->name_len;
    }
    return record_write(sp, len, b->count, b->timestamp, dropped, &sp->st_spooled);
}

int sy_spool_append_samples(sy_spool *sp, const sy_sample_batch *b, int64_t now_s,
                            size_t *dropped)
{
    uint64_t len = 12;
    for (size_t i = 0; i < b->count; i++)
        len += SAMPLE_FIXED + (uint64_t)b->samples[i].name_len + b->samples[i].text_len +
               b->samples[i].tags_len;
    if (b->timestamps_ms)
        len += (uint64_t)b->count * 8;
    if (b->count > COUNT_MASK) {
        *dropped = b->count;
        atomic_fetch_add(&sp->st_dropped, (int64_t)b->count);
        return -1;
    }
    if (record_room(sp, len, b->count, dropped) < 0)
        return -1;
    unsigned char *p = sp->wbuf + HDR;
    put64(p, (uint64_t)now_s);
    put32(p + 8, (uint32_t)b->count | SAMPLES_FLAG | (b->timestamps_ms ? TIMES_FLAG : 0));
    p += 12;
    for (size_t i = 0; i < b->count; i++) {
        const sy_sample *x = &b->samples[i];
        uint64_t bits;
        p[0] = x->type;
        p[1] = x->is_delta;
        memcpy(&bits, &x->value, 8);
        put64(p + 2, bits);
        memcpy(&bits, &x->rate, 8);
        put64(p + 10, bits);
        put32(p + 18, x->name_len);
        put32(p + 22, x->text_len);
        put32(p + 26, x->tags_len);
        p += SAMPLE_FIXED;
        memcpy(p, x->name, x->name_len);
        p += x->name_len;
        memcpy(p, x->text, x->text_len);
        p += x->text_len;
        memcpy(p, x->tags, x->tags_len);
        p += x->tags_len;
    }
    if (b->timestamps_ms)
        for (size_t i = 0; i < b->count; i++, p += 8)
            put64(p, (uint64_t)b->timestamps_ms[i]);
    return record_write(sp, len, b->count, now_s, dropped, &sp->st_spooled);
}

int sy_spool_append_lines(sy_spool *sp, const char *const *lines, const uint32_t *lens, size_t n,
                          int64_t now_s, size_t *dropped)
{
    uint64_t len = 12;
    for (size_t i = 0; i < n; i++)
        len += LINE_FIXED + (uint64_t)lens[i];
    if (n > COUNT_MASK) {
        *dropped = n;
        atomic_fetch_add(&sp->st_dropped, (int64_t)n);
        return -1;
    }
    if (record_room(sp, len, n, dropped) < 0)
        return -1;
    unsigned char *p = sp->wbuf + HDR;
    put64(p, (uint64_t)now_s);
    put32(p + 8, (uint32_t)n | LINES_FLAG);
    p += 12;
    for (size_t i = 0; i < n; i++) {
        put32(p, lens[i]);
        memcpy(p + LINE_FIXED, lines[i], lens[i]);
        p += LINE_FIXED + lens[i];
    }
    return record_write(sp, len, n, now_s, dropped, &sp->st_lines_spooled);
}

int sy_spool_has_records(const sy_spool *sp)
{
    if (!sp->nseg)
        return 0;
    const segment *last = &sp->seg[sp->nseg - 1];
    return sp->h_seq < last->seq || sp->h_off < last->bytes;
}

/* Decodes the raw samples of the record in sp->buf into sp->smp. */
static int decode_samples(sy_spool *sp, uint32_t flags_count, sy_sample_batch *sb)
{
    uint32_t count = flags_count & COUNT_MASK;
    if (count > sp->smpcap) {
        sy_sample *n = realloc(sp->smp, count * sizeof *n);
        if (!n)
            return -1;
        sp->smp = n;
        int64_t *t = realloc(sp->smp_ts, count * sizeof *t);
        if (!t)
            return -1;
        sp->smp_ts = t;
        sp->smpcap = count;
    }
    const unsigned char *p = sp->buf + 12;
    for (uint32_t i = 0; i < count; i++) {
        sy_sample *x = &sp->smp[i];
        uint64_t bits;
        x->type = p[0];
        x->is_delta = p[1];
        bits = get64(p + 2);
        memcpy(&x->value, &bits, 8);
        bits = get64(p + 10);
        memcpy(&x->rate, &bits, 8);
        x->name_len = get32(p + 18);
        x->text_len = get32(p + 22);
        x->tags_len = get32(p + 26);
        p += SAMPLE_FIXED;
        x->name = (const char *)p;
        x->text = x->name + x->name_len;
        x->tags = x->text + x->text_len;
        p += (size_t)x->name_len + x->text_len + x->tags_len;
    }
    memset(sb, 0, sizeof *sb);
    if (flags_count & TIMES_FLAG) {
        for (uint32_t i = 0; i < count; i++, p += 8)
            sp->smp_ts[i] = (int64_t)get64(p);
        sb->timestamps_ms = sp->smp_ts;
    }
    sb->samples = sp->smp;
    sb->count = count;
    return 0;
}

/* Decodes the raw lines of the record in sp->buf. */
static int decode_lines(sy_spool *sp, uint32_t flags_count)
{
    uint32_t count = flags_count & COUNT_MASK;
    if (count > sp->linecap) {
        const char **l = realloc(sp->lines, count * sizeof *l);
        if (!l)
            return -1;
        sp->lines = l;
        uint32_t *n = realloc(sp->line_lens, count * sizeof *n);
        if (!n)
            return -1;
        sp->line_lens = n;
        sp->linecap = count;
    }
    const unsigned char *p = sp->buf + 12;
    for (uint32_t i = 0; i < count; i++) {
        sp->line_lens[i] = get32(p);
        sp->lines[i] = (const char *)p + LINE_FIXED;
        p += LINE_FIXED + sp->line_lens[i];
    }
    sp->nlines = count;
    return 0;
}

void sy_spool_peeked_lines(const sy_spool *sp, const char *const **lines, const uint32_t **lens,
                           size_t *n)
{
    *lines = (const char *const *)sp->lines;
    *lens = sp->line_lens;
    *n = sp->nlines;
}

int sy_spool_peek(sy_spool *sp, sy_metric_batch *b)
{
    sy_sample_batch sb;
    return sy_spool_peek_any(sp, b, &sb);
}

int sy_spool_peek_any(sy_spool *sp, sy_metric_batch *b, sy_sample_batch *sb)
{
    while (sp->nseg) {
        segment *g = seg_find(sp, sp->h_seq);
        if (!g) {
            /* (only after damage) go to the first segment after it */
            size_t i = 0;
            while (i < sp->nseg && sp->seg[i].seq < sp->h_seq)
                i++;
            if (i == sp->nseg)
                return 0;
            sp->h_seq = sp->seg[i].seq;
            sp->h_off = sp->h_rec = sp->h_vals = 0;
            continue;
        }
        if (sp->h_off >= g->bytes) {
            if (g == &sp->seg[sp->nseg - 1])
                return 0;
            sp->h_seq = g[1].seq;
            sp->h_off = sp->h_rec = sp->h_vals = 0;
            continue;
        }
        int fd = sy_spool_read_fd(sp, g->seq);
        int64_t ts;
        uint32_t count;
        uint64_t len = fd >= 0 ? sy_spool_record_at(sp, fd, sp->h_off, g->bytes, &ts, &count) : 0;
        if (!len) {
            uint64_t to = fd >= 0 ? sy_spool_resync(sp, fd, sp->h_off, g->bytes) : g->bytes;
            atomic_fetch_add(&sp->st_corrupt, 1);
            sy_log_limited(&sp->rl, SY_WARN, "spool %s: a damaged stretch of %" PRIu64
                           " bytes in segment %" PRIu64 " at offset %" PRIu64 " is skipped",
                           sp->path, to - sp->h_off, g->seq, sp->h_off);
            sp->h_off = to;
            continue;
        }
        if (rec_is_lines(count)) {
            if (decode_lines(sp, count) < 0)
                return 0;
            sp->peeked = 1;
            sp->peek_len = len;
            return 3;
        }
        if (count & SAMPLES_FLAG) {
            if (decode_samples(sp, count, sb) < 0)
                return 0;
            sp->peeked = 1;
            sp->peek_len = len;
            return 2;
        }
        if (count > sp->valcap) {
            sy_metric *nv = realloc(sp->vals, count * sizeof *nv);
            if (!nv)
                return 0;
            sp->vals = nv;
            sp->valcap = count;
        }
        /* the plugin gets NUL-terminated names: every value is decoded
         * first, then each name's terminator overwrites the byte after it
         * (the next value's kind, already read) */
        unsigned char *p = sp->buf + 12;
        for (uint32_t i = 0; i < count; i++) {
            sy_metric *m = &sp->vals[i];
            uint64_t bits = get64(p + 1);
            m->kind = p[0];
            memcpy(&m->value, &bits, 8);
            m->name_len = get32(p + 9);
            m->name = (const char *)p + VALUE_FIXED;
            p += VALUE_FIXED + m->name_len;
        }
        /* sp->buf has one spare byte after the payload */
        for (uint32_t i = 0; i < count; i++)
            ((char *)sp->vals[i].name)[sp->vals[i].name_len] = '\0';
        b->metrics = sp->vals;
        b->count = count;
        b->timestamp = ts;
        sp->peeked = 1;
        sp->peek_len = len;
        return 1;
    }
    return 0;
}

void sy_spool_advance(sy_spool *sp)
{
    if (!sp->peeked)
        return;
    sp->peeked = 0;
    sp->mark_seq = 0; /* replay went past the mark: nothing older may go there */
    sp->h_off += sp->peek_len;
    sp->h_rec++;
    /* count before the buffer is reused: the record's values */
    uint32_t flags = get32(sp->buf + 8), count = flags & COUNT_MASK;
    sp->h_vals += count;
    atomic_fetch_add(rec_is_lines(flags) ? &sp->st_lines_replayed : &sp->st_replayed,
                     (int64_t)count);
    atomic_store(&sp->st_records, records_left(sp));
    atomic_store(&sp->st_oldest, head_ts(sp));
}

void sy_spool_commit(sy_spool *sp)
{
    if (sp->c_seq == sp->h_seq && sp->c_off == sp->h_off)
        return;
    /* segments wholly before the handed position are done */
    while (sp->nseg && sp->seg[0].seq < sp->h_seq)
        seg_delete(sp, 0);
    sp->c_seq = sp->h_seq;
    sp->c_off = sp->h_off;
    /* everything replayed: the last segment goes too, and the next append
     * starts a new one */
    if (sp->nseg == 1 && sp->seg[0].seq == sp->c_seq && sp->c_off >= sp->seg[0].bytes) {
        sp->c_seq = sp->h_seq = sp->next_seq;
        sp->c_off = sp->h_off = sp->h_rec = sp->h_vals = 0;
        write_position(sp);
        seg_delete(sp, 0);
    } else {
        write_position(sp);
    }
    stats_update(sp);
}

/*
 * Counts the records and values of what was on disk at start-up, about
 * `budget` bytes at a time, oldest segment first; replay does not wait for
 * it (it reads records as they come), only the records gauge and the
 * values a dropOldest reports do.  A segment deleted meanwhile is skipped.
 * It reads with its own descriptor and buffer, so a record replay has
 * peeked stays as it was.
 */
static void scan_step(sy_spool *sp, uint64_t budget)
{
    unsigned char *keep_buf = sp->buf;
    size_t keep_cap = sp->bufcap;
    sp->buf = sp->sbuf;
    sp->bufcap = sp->sbufcap;
    while (sp->scanning && budget) {
        segment *g = NULL;
        for (size_t i = 0; i < sp->nseg && !g; i++)
            if (sp->seg[i].seq >= sp->scan_seq && sp->seg[i].scan_end)
                g = &sp->seg[i];
        if (!g) {
            sp->scanning = 0;
            sy_log(SY_INFO, "spool %s: %" PRId64 " records to replay (counted in %llu ms)",
                   sp->path, records_left(sp),
                   (unsigned long long)(sy_mono_ms() - sp->scan_start_ms));
            break;
        }
        if (g->seq != sp->scan_seq) {
            sp->scan_seq = g->seq;
            sp->scan_off = 0;
        }
        if (sp->scan_fd < 0 || sp->scan_fd_seq != g->seq) {
            char name[1100];
            if (sp->scan_fd >= 0)
                close(sp->scan_fd);
            seg_name(sp, g->seq, name, sizeof name);
            sp->scan_fd = open(name, O_RDONLY | O_CLOEXEC);
            sp->scan_fd_seq = g->seq;
        }
        if (sp->scan_fd < 0 || sp->scan_off >= g->scan_end) {
            g->scan_end = 0;
            continue;
        }
        int64_t ts;
        uint32_t cnt;
        uint64_t len = sy_spool_record_at(sp, sp->scan_fd, sp->scan_off, g->scan_end, &ts, &cnt);
        if (!len) {
            len = sy_spool_resync(sp, sp->scan_fd, sp->scan_off, g->scan_end) - sp->scan_off;
        } else {
            g->records++;
            g->values += cnt & COUNT_MASK;
        }
        sp->scan_off += len;
        budget -= len < budget ? len : budget;
    }
    sp->sbuf = sp->buf;
    sp->sbufcap = sp->bufcap;
    sp->buf = keep_buf;
    sp->bufcap = keep_cap;
    atomic_store(&sp->st_records, records_left(sp));
}

int sy_spool_counting(const sy_spool *sp)
{
    return sp->scanning;
}

void sy_spool_tick(sy_spool *sp, uint64_t now_ms)
{
    if (sp->scanning)
        scan_step(sp, SCAN_STEP_BYTES);
    if (sp->o.fsync != SY_FSYNC_INTERVAL || now_ms - sp->last_sync_ms < sp->o.fsync_interval_ms)
        return;
    sp->last_sync_ms = now_ms;
    if (sp->dirty && sp->wfd >= 0)
        fdatasync(sp->wfd);
    fdatasync(sp->pos_fd);
    sp->dirty = 0;
}

void sy_spool_stats_get(const sy_spool *sp, sy_spool_stats *out)
{
    sy_spool *m = (sy_spool *)sp;
    out->bytes = atomic_load(&m->st_bytes);
    out->records = atomic_load(&m->st_records);
    out->oldest_ts = atomic_load(&m->st_oldest);
    out->replayed = atomic_load(&m->st_replayed);
    out->spooled = atomic_load(&m->st_spooled);
    out->dropped = atomic_load(&m->st_dropped);
    out->corrupt = atomic_load(&m->st_corrupt);
    out->lines_spooled = atomic_load(&m->st_lines_spooled);
    out->lines_replayed = atomic_load(&m->st_lines_replayed);
}

/* ------------------------------------------------------------------ */
/* Older records behind newer ones: the mark and the inserted segment   */
/* ------------------------------------------------------------------ */

/* Closes the segment being appended to (synced per fsync): the next
 * append starts a new one. */
static void close_writer(sy_spool *sp)
{
    if (sp->wfd < 0)
        return;
    if (sp->dirty && sp->o.fsync != SY_FSYNC_NEVER)
        fdatasync(sp->wfd);
    sp->dirty = 0;
    close(sp->wfd);
    sp->wfd = -1;
}

/*
 * Segments are replayed in the order of their numbers, so records put in
 * a segment numbered below the ones appended later are replayed before
 * them.  sy_spool_mark keeps one number free at the end of the spool:
 * appends from then on start a new segment above it.  The mark holds
 * while replay hands out nothing (a record handed out is newer than the
 * mark, since nothing was left to hand out when it was set).
 */
void sy_spool_mark(sy_spool *sp)
{
    if (sp->inserting || (sp->mark_seq && sp->mark_seq + 1 == sp->next_seq))
        return; /* marked, and nothing appended since */
    close_writer(sp);
    sp->mark_seq = sp->next_seq++;
}

int sy_spool_marked(const sy_spool *sp)
{
    return sp->mark_seq != 0;
}

int sy_spool_insert_begin(sy_spool *sp)
{
    if (!sp->mark_seq || sp->inserting)
        return -1;
    close_writer(sp);
    if (sp->nseg == sp->capseg) {
        size_t nc = sp->capseg ? sp->capseg * 2 : 16;
        segment *ns = realloc(sp->seg, nc * sizeof *ns);
        if (!ns)
            return -1;
        sp->seg = ns;
        sp->capseg = nc;
    }
    char name[1100];
    seg_name(sp, sp->mark_seq, name, sizeof name);
    int fd = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        sy_log_limited(&sp->rl, SY_ERR, "spool %s: cannot create %s: %s", sp->path, name,
                       strerror(errno));
        return -1;
    }
    size_t i = 0;
    while (i < sp->nseg && sp->seg[i].seq < sp->mark_seq)
        i++;
    memmove(sp->seg + i + 1, sp->seg + i, (sp->nseg - i) * sizeof *sp->seg);
    sp->seg[i] = (segment){ .seq = sp->mark_seq };
    sp->nseg++;
    sp->wfd = fd;
    sp->inserting = 1;
    /* replay (and the next start) must not begin past it */
    if (sp->c_seq > sp->mark_seq || sp->nseg == 1) {
        sp->c_seq = sp->mark_seq;
        sp->c_off = 0;
        write_position(sp);
    }
    if (sp->h_seq > sp->mark_seq || sp->nseg == 1) {
        sp->h_seq = sp->mark_seq;
        sp->h_off = sp->h_rec = sp->h_vals = 0;
        sp->peeked = 0;
    }
    return 0;
}

void sy_spool_insert_end(sy_spool *sp)
{
    if (!sp->inserting)
        return;
    close_writer(sp);
    sp->inserting = 0;
    segment *g = seg_find(sp, sp->mark_seq);
    sp->mark_seq = 0;
    if (g && g->bytes == 0)
        seg_delete(sp, (size_t)(g - sp->seg));
    stats_update(sp);
}

/* ------------------------------------------------------------------ */
/* A reload's new settings                                              */
/* ------------------------------------------------------------------ */

/* Counts the records and values of one segment not counted yet (what was
 * on disk at start-up), for a trim that drops it. */
static void seg_count(sy_spool *sp, segment *g)
{
    char name[1100];
    seg_name(sp, g->seq, name, sizeof name);
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    uint64_t off = 0;
    while (fd >= 0 && off < g->scan_end) {
        int64_t ts;
        uint32_t cnt;
        uint64_t len = sy_spool_record_at(sp, fd, off, g->scan_end, &ts, &cnt);
        if (!len) {
            len = sy_spool_resync(sp, fd, off, g->scan_end) - off;
        } else {
            g->records++;
            g->values += cnt & COUNT_MASK;
        }
        off += len;
    }
    if (fd >= 0)
        close(fd);
    g->scan_end = 0;
    sp->peeked = 0; /* sp->buf was reused */
}

/* whenFull = dropNewest, for a reload that lowered maxBytes: the newest
 * segment goes (what dropNewest would have refused). */
static void drop_tail(sy_spool *sp)
{
    segment *g = &sp->seg[sp->nseg - 1];
    if (g->scan_end)
        seg_count(sp, g);
    uint64_t vals = g->values, seq = g->seq;
    if (sp->h_seq == seq)
        vals = vals > sp->h_vals ? vals - sp->h_vals : 0;
    else if (sp->h_seq > seq)
        vals = 0;
    atomic_fetch_add(&sp->st_dropped, (int64_t)vals);
    seg_delete(sp, sp->nseg - 1);
    if (sp->h_seq >= seq) {
        sp->peeked = 0;
        if (sp->nseg) {
            segment *p = &sp->seg[sp->nseg - 1];
            sp->h_seq = p->seq;
            sp->h_off = p->bytes;
            sp->h_rec = p->records;
            sp->h_vals = p->values;
        } else {
            sp->h_seq = sp->next_seq;
            sp->h_off = sp->h_rec = sp->h_vals = 0;
        }
    }
    if (sp->c_seq > sp->h_seq || (sp->c_seq == sp->h_seq && sp->c_off > sp->h_off)) {
        sp->c_seq = sp->h_seq;
        sp->c_off = sp->h_off;
        write_position(sp);
    }
}

uint64_t sy_spool_set_opts(sy_spool *sp, const sy_spool_opts *o)
{
    int64_t before = atomic_load(&sp->st_dropped);
    size_t segs = sp->nseg;
    sp->o = *o;
    if (o->fsync == SY_FSYNC_ALWAYS && sp->dirty && sp->wfd >= 0) {
        fdatasync(sp->wfd);
        sp->dirty = 0;
    }
    while (sp->nseg && total_bytes(sp) > o->max_bytes) {
        if (o->drop_newest)
            drop_tail(sp);
        else
            drop_head(sp);
    }
    uint64_t dropped = (uint64_t)(atomic_load(&sp->st_dropped) - before);
    if (segs != sp->nseg)
        sy_log(SY_WARN, "spool %s: maxBytes lowered to %" PRIu64 " by a reload: %zu segments "
               "of %" PRIu64 " values dropped (whenFull = %s); %" PRIu64 " bytes left",
               sp->path, o->max_bytes, segs - sp->nseg, dropped,
               o->drop_newest ? "dropNewest: the newest" : "dropOldest: the oldest",
               total_bytes(sp));
    stats_update(sp);
    return dropped;
}

const sy_spool_opts *sy_spool_opts_of(const sy_spool *sp)
{
    return &sp->o;
}

int sy_spool_shared(const sy_spool *sp)
{
    return sp->refs > 1;
}

int sy_spool_empty(const sy_spool *sp)
{
    return sp->nseg == 0;
}

/* A number of src's (a segment's, a position's, the mark's) as dst's:
 * shifted so that the first becomes base, gaps and order kept. */
static uint64_t map_seq(uint64_t seq, uint64_t first, uint64_t base)
{
    return seq >= first ? seq - first + base : base;
}

int64_t sy_spool_adopt(sy_spool *dst, sy_spool *src, char *err, size_t errlen)
{
    if (!src->nseg)
        return 0;
    if (src->inserting || dst->inserting) {
        snprintf(err, errlen, "a shutdown is writing to it");
        return -1;
    }
    if (dst->nseg) {
        snprintf(err, errlen, "%s already holds %zu segments of its own", dst->path, dst->nseg);
        return -1;
    }
    struct stat a, b;
    if (stat(src->path, &a) < 0 || stat(dst->path, &b) < 0 || a.st_dev != b.st_dev) {
        snprintf(err, errlen, "%s is on another filesystem than %s (segments are moved by "
                 "rename, never copied on the output thread)", dst->path, src->path);
        return -1;
    }
    segment *ns = malloc(src->nseg * sizeof *ns);
    if (!ns) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    close_writer(src);
    if (src->rfd >= 0)
        close(src->rfd);
    if (src->scan_fd >= 0)
        close(src->scan_fd);
    src->rfd = src->scan_fd = -1;
    /* numbers shift by one amount, so the mark (a free number between
     * segments, see sy_spool_mark) still sorts where it did */
    uint64_t base = dst->next_seq, first = src->seg[0].seq;
    if (src->mark_seq && src->mark_seq < first)
        first = src->mark_seq;
    if (src->c_seq < first)
        first = src->c_seq;
    char from[1100], to[1100];
    size_t moved = 0;
    for (; moved < src->nseg; moved++) {
        seg_name(src, src->seg[moved].seq, from, sizeof from);
        seg_name(dst, map_seq(src->seg[moved].seq, first, base), to, sizeof to);
        if (rename(from, to) < 0)
            break;
        ns[moved] = src->seg[moved];
        ns[moved].seq = map_seq(src->seg[moved].seq, first, base);
    }
    if (moved < src->nseg) {
        snprintf(err, errlen, "cannot move %s to %s: %s", from, to, strerror(errno));
        while (moved--) { /* put back what was moved */
            seg_name(src, src->seg[moved].seq, from, sizeof from);
            seg_name(dst, ns[moved].seq, to, sizeof to);
            if (rename(to, from) < 0)
                sy_log(SY_ERR, "spool: cannot move %s back to %s: %s", to, from,
                       strerror(errno));
        }
        free(ns);
        return -1;
    }
    free(dst->seg);
    dst->seg = ns;
    dst->nseg = dst->capseg = src->nseg;
    dst->next_seq = map_seq(src->next_seq, first, base);
    dst->mark_seq = src->mark_seq ? map_seq(src->mark_seq, first, base) : 0;
    dst->c_seq = map_seq(src->c_seq, first, base);
    dst->c_off = src->c_off;
    dst->h_seq = map_seq(src->h_seq, first, base);
    dst->h_off = src->h_off;
    dst->h_rec = src->h_rec;
    dst->h_vals = src->h_vals;
    dst->peeked = 0;
    if (src->scanning) {
        dst->scan_seq = map_seq(src->scan_seq, first, base);
        dst->scan_off = src->scan_off;
        dst->scanning = 1;
        dst->scan_start_ms = src->scan_start_ms;
    }
    write_position(dst);
    fdatasync(dst->pos_fd);
    /* the counters go on where they were (they are the sink's) */
    atomic_fetch_add(&dst->st_spooled, atomic_load(&src->st_spooled));
    atomic_fetch_add(&dst->st_replayed, atomic_load(&src->st_replayed));
    atomic_fetch_add(&dst->st_dropped, atomic_load(&src->st_dropped));
    atomic_fetch_add(&dst->st_corrupt, atomic_load(&src->st_corrupt));
    int64_t n = (int64_t)src->nseg;
    src->nseg = 0;
    src->scanning = 0;
    src->mark_seq = 0;
    src->c_seq = src->h_seq = src->next_seq;
    src->c_off = src->h_off = src->h_rec = src->h_vals = 0;
    write_position(src);
    stats_update(src);
    stats_update(dst);
    return n;
}
