/*
 * console.c - prints each flush, for people and for tests.
 *
 * Metrics are printed as carbon lines, "NAME VALUE TS\n", exactly what the
 * graphite sink would send.  Raw samples of pass-through routes are printed
 * as statsd lines behind a "sample " prefix, so the two never mix up:
 *
 *   sample NAME:TEXT|TYPE[|@RATE]\n     TYPE is c, g, ms or s
 *
 * (a gauge delta keeps its sign in TEXT; @RATE only when it is not 1).
 * NAME and TEXT are escaped as the admin console shows keys (control
 * characters as \r, \t, \x1B..., backslash doubled), so a client's bytes
 * can neither fake a line nor drive the terminal.
 *
 * Output goes through a buffered stdio stream and is flushed at each flush.
 * A terminal or a file is assumed to keep up: this sink does not queue.
 *
 * Settings:
 *   stream  "stdout" (default) or "stderr"
 *   path    append to this file instead (created if missing)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "switchyard_sink.h"

#define BUF_SIZE (64 * 1024)

typedef struct console {
    const sy_host_api *api;
    sy_host *host;
    FILE *f;
    char *what;          /* "stdout", "stderr" or the path, for messages */
    size_t buffered;     /* lines written since the last fflush */
} console;

static const char *const console_settings[] = { "stream", "path", NULL };

/* init, and with state NULL the check: the settings are judged the same
 * way, and the check stops before the file is opened (or created). */
static int console_setup(const sy_host_api *api, sy_host *host, void **state,
                         char *err, size_t errlen)
{
    const char *stream, *path;
    int fd = -1, std = -1;
    console *c = NULL;

    if (SY_SINK_CHECK_API(api, escape_text, err, errlen) != 0)
        return -1;
    if (api->setting_string(host, "stream", "stdout", &stream) < 0) {
        snprintf(err, errlen, "setting 'stream' must be a string");
        return -1;
    }
    if (api->setting_string(host, "path", NULL, &path) < 0) {
        snprintf(err, errlen, "setting 'path' must be a string");
        return -1;
    }
    if (!path || !*path) {
        if (strcmp(stream, "stdout") == 0)
            std = STDOUT_FILENO;
        else if (strcmp(stream, "stderr") == 0)
            std = STDERR_FILENO;
        else {
            snprintf(err, errlen, "setting 'stream' must be \"stdout\" or \"stderr\", not \"%s\"",
                     stream);
            return -1;
        }
    }
    if (!state)
        return 0;
    c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->api = api;
    c->host = host;
    if (std < 0) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
            goto fail;
        }
        c->what = strdup(path);
    } else {
        /* our own descriptor and stdio buffer: closing the sink never
         * closes the process's stdout, and nothing else shares the buffer */
        fd = fcntl(std, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
            snprintf(err, errlen, "cannot use %s: %s", stream, strerror(errno));
            goto fail;
        }
        c->what = strdup(stream);
    }
    if (!c->what || !(c->f = fdopen(fd, "w"))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    fd = -1;
    setvbuf(c->f, NULL, _IOFBF, BUF_SIZE);
    *state = c;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(c->what);
    free(c);
    return -1;
}

static int console_init(const sy_host_api *api, sy_host *host, void **state,
                        char *err, size_t errlen)
{
    return console_setup(api, host, state, err, errlen);
}

static int console_check(const sy_host_api *api, sy_host *host, char *err, size_t errlen)
{
    return console_setup(api, host, NULL, err, errlen);
}

/* Client text (names, set members) escaped as the admin console shows it:
 * with keyNameSanitize off a name may hold a CR, a TAB or a terminal
 * escape, which would fake lines or rewrite the screen. */
static void put_text(console *c, const char *s, size_t len)
{
    char buf[512];
    while (len) {
        size_t used, n = c->api->escape_text(s, len, buf, sizeof buf, &used);
        fwrite(buf, 1, n, c->f);
        s += used;
        len -= used;
    }
}

static sy_status console_write(void *state, const sy_metric_batch *b)
{
    console *c = state;
    char num[32];
    for (size_t i = 0; i < b->count; i++) {
        const sy_metric *m = &b->metrics[i];
        c->api->format_number(m->value, num);
        put_text(c, m->name, m->name_len);
        fprintf(c->f, " %s %lld\n", num, (long long)b->timestamp);
    }
    c->buffered += b->count;
    return SY_OK;
}

static const char *sample_type(uint8_t t)
{
    switch (t) {
    case SY_SAMPLE_COUNTER: return "c";
    case SY_SAMPLE_GAUGE: return "g";
    case SY_SAMPLE_TIMER: return "ms";
    case SY_SAMPLE_SET: return "s";
    }
    return "?";
}

static sy_status console_write_samples(void *state, const sy_sample_batch *b)
{
    console *c = state;
    char rate[32];
    for (size_t i = 0; i < b->count; i++) {
        const sy_sample *s = &b->samples[i];
        fputs("sample ", c->f);
        put_text(c, s->name, s->name_len);
        fputc(':', c->f);
        put_text(c, s->text, s->text_len);
        fputc('|', c->f);
        fputs(sample_type(s->type), c->f);
        if (s->rate != 1.0) {
            c->api->format_number(s->rate, rate);
            fputs("|@", c->f);
            fputs(rate, c->f);
        }
        fputc('\n', c->f);
    }
    c->buffered += b->count;
    return SY_OK;
}

static sy_status console_flush(void *state, int final)
{
    console *c = state;
    size_t n = c->buffered;
    c->buffered = 0;
    if (fflush(c->f) != 0 || ferror(c->f)) {
        int e = errno;
        clearerr(c->f);
        c->api->stat_add(c->host, SY_STAT_ERRORS, 1);
        c->api->stat_add(c->host, SY_STAT_DROPPED, (int64_t)n);
        c->api->log(c->host, SY_LOG_ERROR, "cannot write to %s: %s", c->what, strerror(e));
        return SY_ERROR;
    }
    c->api->stat_add(c->host, SY_STAT_SENT, (int64_t)n);
    return SY_OK;
}

static size_t console_pending(void *state)
{
    return ((console *)state)->buffered;
}

static void console_close(void *state)
{
    console *c = state;
    fclose(c->f);
    free(c->what);
    free(c);
}

SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "console",
    .version = "1.0",
    .description = "prints each flush as carbon lines (and raw samples as statsd lines)",
    .settings = console_settings,
    .init = console_init,
    .check = console_check,
    .write = console_write,
    .write_samples = console_write_samples,
    .flush = console_flush,
    .pending = console_pending,
    .close = console_close,
};
