/*
 * status.h - process-wide facts other threads report: reload results.
 */
#ifndef SY_STATUS_H
#define SY_STATUS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sy_status_info {
    _Atomic uint64_t reloads_ok;
    _Atomic uint64_t reloads_failed;
    _Atomic int64_t last_reload_ms;   /* wall clock of the last attempt */
    _Atomic int last_reload_ok;       /* 1 ok, 0 failed, -1 none yet */
} sy_status_info;

extern sy_status_info sy_reload_status;

/* The reason the last reload failed ("" when it did not). */
void sy_status_reload_result(int ok, const char *why);
void sy_status_reload_error(char *buf, size_t cap);

#endif
