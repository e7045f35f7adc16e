/*
 * status.c - reload results, shared by the signal thread, the output
 * thread (self-metrics) and the admin interface.
 */
#include "admin/status.h"
#include "util/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

sy_status_info sy_reload_status = { .last_reload_ok = -1 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char last_error[1024];

void sy_status_reload_result(int ok, const char *why)
{
    atomic_store(&sy_reload_status.last_reload_ms, (int64_t)sy_wall_ms());
    atomic_fetch_add(ok ? &sy_reload_status.reloads_ok : &sy_reload_status.reloads_failed, 1);
    atomic_store(&sy_reload_status.last_reload_ok, ok);
    pthread_mutex_lock(&lock);
    snprintf(last_error, sizeof last_error, "%s", ok ? "" : (why ? why : "unknown"));
    pthread_mutex_unlock(&lock);
}

void sy_status_reload_error(char *buf, size_t cap)
{
    pthread_mutex_lock(&lock);
    snprintf(buf, cap, "%s", last_error);
    pthread_mutex_unlock(&lock);
}
