/*
 * log.c - leveled logging to stderr, one write(2) per message so lines from
 * different threads never interleave.
 */
#include "util/log.h"

#include <event2/event.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"

int sy_log_level = SY_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int sy_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return SY_WARN;
    return -1;
}

void sy_vlog(int level, const char *fmt, va_list ap)
{
    if (level > sy_log_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2);
    line[len++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, len);
    (void)rc;
}

void sy_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sy_vlog(level, fmt, ap);
    va_end(ap);
}

/* A fixed window: cheap, lock-free, and good enough to keep a flood out of
 * the log.  Races at a window boundary may let a message or two extra
 * through, never a flood. */
void sy_log_limited(sy_ratelimit *rl, int level, const char *fmt, ...)
{
    if (level > sy_log_level)
        return;
    uint64_t now = sy_mono_ms();
    uint64_t start = atomic_load(&rl->window_start);
    if (now - start >= rl->period_ms &&
        atomic_compare_exchange_strong(&rl->window_start, &start, now)) {
        atomic_store(&rl->in_window, 0);
        unsigned long missed = atomic_exchange(&rl->suppressed, 0);
        if (missed)
            sy_log(level, "(%lu similar messages suppressed)", missed);
    }
    if (atomic_fetch_add(&rl->in_window, 1) >= rl->burst) {
        atomic_fetch_add(&rl->suppressed, 1);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    sy_vlog(level, fmt, ap);
    va_end(ap);
}

/* libevent's own warnings (e.g. accept() failing over and over) go through
 * a rate limiter like everything a client can trigger. */
static sy_ratelimit rl_libevent = SY_RATELIMIT_INIT(10000, 5);

static void libevent_log(int severity, const char *msg)
{
    int level = severity >= EVENT_LOG_ERR ? SY_ERR : severity >= EVENT_LOG_WARN ? SY_WARN : SY_DEBUG;
    sy_log_limited(&rl_libevent, level, "libevent: %s", msg);
}

void sy_log_capture_libevent(void)
{
    event_set_log_callback(libevent_log);
}
