/*
 * log.h - leveled logging to stderr, and a rate limiter for anything a
 * client can trigger (bad lines, rejected tokens): one noisy client must
 * never be able to flood the log.
 */
#ifndef SY_LOG_H
#define SY_LOG_H

#include <stdarg.h>
#include <stdint.h>
#include <stdatomic.h>

enum { SY_ERR = 0, SY_WARN = 1, SY_INFO = 2, SY_DEBUG = 3 };

extern int sy_log_level;

void sy_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sy_vlog(int level, const char *fmt, va_list ap);
/* "error" | "warn" | "info" | "debug" -> level, or -1. */
int sy_log_level_parse(const char *name);

/* At most `burst` messages per `period_ms`; the first message after a quiet
 * spell says how many were suppressed.  Safe to share between threads. */
typedef struct sy_ratelimit {
    uint32_t period_ms;
    uint32_t burst;
    _Atomic uint64_t window_start;
    atomic_uint in_window;
    atomic_ulong suppressed;
} sy_ratelimit;

#define SY_RATELIMIT_INIT(period, burst_) { .period_ms = (period), .burst = (burst_) }

void sy_log_limited(sy_ratelimit *rl, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Send libevent's own log messages through a rate limiter. */
void sy_log_capture_libevent(void);

#endif
