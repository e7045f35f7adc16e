/*
 * jsonl.c - an example switchyard sink built out of tree: appends every
 * flushed metric, and every raw sample of a pass-through route, to a file
 * as one JSON object per line.
 *
 *   {"name":"stats.gauges.queue.depth","value":42,"ts":1700000000}
 *   {"sample":"api.req","value":"120","type":"ms","rate":0.5,"tags":"env:prod"}
 *
 * Settings:
 *   path   the file to append to (required; created if missing)
 *   fsync  true: fsync the file at each flush (default false)
 *
 * It needs nothing but the installed header (see the Makefile beside it):
 *   cc $(pkg-config --cflags switchyard-sink) -fPIC -shared -o jsonl.so jsonl.c
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <switchyard_sink.h>

typedef struct jsonl {
    const sy_host_api *api;
    sy_host *host;
    FILE *f;
    char *path;
    int fsync;
    size_t buffered; /* lines written since the last successful flush */
} jsonl;

/* The settings this plugin reads: the host rejects any other key at
 * --check, so a misspelt "fsnyc" is an error instead of being ignored. */
static const char *const jsonl_settings[] = { "path", "fsync", NULL };

/* Reads and judges the settings; init and check share it, so --check
 * refuses exactly what init would.  0, or -1 with err set. */
static int jsonl_settings_read(const sy_host_api *api, sy_host *host, const char **path,
                               int *do_fsync, char *err, size_t errlen)
{
    /* The host passes its own API; a plugin built against a newer minor
     * version must not call members the host does not have. */
    if (SY_SINK_CHECK_API(api, format_number, err, errlen) != 0)
        return -1;
    if (api->setting_string(host, "path", NULL, path) < 0) {
        snprintf(err, errlen, "setting 'path' must be a string");
        return -1;
    }
    if (!*path || !**path) {
        snprintf(err, errlen, "setting 'path' is required (the file to append to)");
        return -1;
    }
    if (api->setting_bool(host, "fsync", 0, do_fsync) < 0) {
        snprintf(err, errlen, "setting 'fsync' must be true or false");
        return -1;
    }
    return 0;
}

/* `switchyard --check`, start-up and reloads call this before init: the
 * settings only, and no file is opened (or created). */
static int jsonl_check(const sy_host_api *api, sy_host *host, char *err, size_t errlen)
{
    const char *path;
    int do_fsync;
    return jsonl_settings_read(api, host, &path, &do_fsync, err, errlen);
}

static int jsonl_init(const sy_host_api *api, sy_host *host, void **state,
                      char *err, size_t errlen)
{
    const char *path;
    int do_fsync;

    if (jsonl_settings_read(api, host, &path, &do_fsync, err, errlen) < 0)
        return -1;

    jsonl *j = calloc(1, sizeof(*j));
    if (!j || !(j->path = strdup(path))) {
        free(j);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (!(j->f = fdopen(fd, "a"))) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    setvbuf(j->f, NULL, _IOFBF, 64 * 1024);
    j->api = api;
    j->host = host;
    j->fsync = do_fsync;
    *state = j;
    return 0;
fail:
    free(j->path);
    free(j);
    return -1;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2, min = 0x80, cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3, min = 0x800, cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4, min = 0x10000, cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* A JSON string.  Metric names are bytes, not necessarily UTF-8 (switchyard
 * keeps what the client sent), so a byte that is not part of valid UTF-8
 * becomes U+FFFD: the line stays valid JSON. */
static void put_string(FILE *f, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    putc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            putc('\\', f);
            putc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else if (c < 0x80) {
            putc(c, f);
        } else {
            size_t n = utf8_len(p + i, len - i);
            if (n) {
                fwrite(p + i, 1, n, f);
                i += n - 1;
            } else {
                fputs("\\ufffd", f);
            }
        }
    }
    putc('"', f);
}

/* A JSON number; JSON has no NaN or Infinity, so those become null. */
static void put_number(jsonl *j, double v)
{
    char num[32];
    if (!isfinite(v)) {
        fputs("null", j->f);
        return;
    }
    j->api->format_number(v, num); /* shortest text that reads back as v */
    fputs(num, j->f);
}

/* write: one borrowed batch of flushed metrics.  Everything it needs is
 * copied into the stdio buffer before returning: the batch and its names
 * belong to the host. */
static sy_status jsonl_write(void *state, const sy_metric_batch *b)
{
    jsonl *j = state;
    for (size_t i = 0; i < b->count; i++) {
        const sy_metric *m = &b->metrics[i];
        fputs("{\"name\":", j->f);
        put_string(j->f, m->name, m->name_len);
        fputs(",\"value\":", j->f);
        put_number(j, m->value);
        fprintf(j->f, ",\"ts\":%lld}\n", (long long)b->timestamp);
    }
    if (ferror(j->f)) {
        j->api->log(j->host, SY_LOG_ERROR, "cannot write to %s: %s", j->path, strerror(errno));
        return SY_ERROR; /* the host counts the batch as dropped */
    }
    j->buffered += b->count;
    return SY_OK;
}

static const char *type_name(uint8_t t)
{
    switch (t) {
    case SY_SAMPLE_COUNTER: return "c";
    case SY_SAMPLE_GAUGE: return "g";
    case SY_SAMPLE_TIMER: return "ms";
    case SY_SAMPLE_SET: return "s";
    }
    return "?";
}

/* write_samples: raw samples of pass-through routes.  The strings are
 * not NUL-terminated: always use the lengths. */
static sy_status jsonl_write_samples(void *state, const sy_sample_batch *b)
{
    jsonl *j = state;
    for (size_t i = 0; i < b->count; i++) {
        const sy_sample *s = &b->samples[i];
        fputs("{\"sample\":", j->f);
        put_string(j->f, s->name, s->name_len);
        fputs(",\"value\":", j->f);
        put_string(j->f, s->text, s->text_len);
        fprintf(j->f, ",\"type\":\"%s\"", type_name(s->type));
        if (s->rate != 1.0) {
            fputs(",\"rate\":", j->f);
            put_number(j, s->rate);
        }
        if (s->is_delta)
            fputs(",\"delta\":true", j->f);
        if (s->tags_len) {
            fputs(",\"tags\":", j->f);
            put_string(j->f, s->tags, s->tags_len);
        }
        fputs("}\n", j->f);
    }
    if (ferror(j->f)) {
        j->api->log(j->host, SY_LOG_ERROR, "cannot write to %s: %s", j->path, strerror(errno));
        return SY_ERROR;
    }
    j->buffered += b->count;
    return SY_OK;
}

/* flush: after the last batch of each flush (final = 1 once, at
 * shutdown).  Here the buffered lines reach the file. */
static sy_status jsonl_flush(void *state, int final)
{
    jsonl *j = state;
    size_t n = j->buffered;
    (void)final; /* a file needs nothing more at shutdown than at any flush */
    j->buffered = 0;
    if (fflush(j->f) != 0 || ferror(j->f) || (j->fsync && fsync(fileno(j->f)) != 0)) {
        int e = errno;
        clearerr(j->f);
        j->api->stat_add(j->host, SY_STAT_ERRORS, 1);
        j->api->stat_add(j->host, SY_STAT_DROPPED, (int64_t)n);
        j->api->log(j->host, SY_LOG_ERROR, "cannot write to %s: %s", j->path, strerror(e));
        return SY_ERROR;
    }
    j->api->stat_add(j->host, SY_STAT_SENT, (int64_t)n);
    return SY_OK;
}

/* pending: what has been taken but is not in the file yet.  The host
 * polls it after the final flush, until 0 or its shutdown timeout. */
static size_t jsonl_pending(void *state)
{
    return ((jsonl *)state)->buffered;
}

static void jsonl_close(void *state)
{
    jsonl *j = state;
    fclose(j->f);
    free(j->path);
    free(j);
}

/* The one exported symbol.  SY_SINK_HEADER fills abi_major, abi_minor and
 * struct_size from the header this file was compiled with; the host
 * refuses a mismatch and says to rebuild. */
SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "jsonl",
    .version = "1.0",
    .description = "appends flushed metrics and raw samples to a file as JSON lines",
    .settings = jsonl_settings,
    .init = jsonl_init,
    .check = jsonl_check,   /* may be NULL; read only by hosts of ABI 1.1 on */
    .write = jsonl_write,
    .write_samples = jsonl_write_samples,
    .flush = jsonl_flush,
    .pending = jsonl_pending,
    .close = jsonl_close,
};
