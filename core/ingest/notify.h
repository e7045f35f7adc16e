/*
 * notify.h - wake a sleeping consumer without a syscall per item.
 *
 * The consumer announces it is about to sleep, checks its queues once more,
 * then waits on an eventfd.  Producers write the eventfd only while the
 * consumer is (about to be) asleep, so a busy pipeline makes no syscalls.
 */
#ifndef SY_NOTIFY_H
#define SY_NOTIFY_H

#include <stdatomic.h>

typedef struct sy_notify {
    int fd;               /* eventfd */
    atomic_int sleeping;
} sy_notify;

int sy_notify_init(sy_notify *n);
void sy_notify_destroy(sy_notify *n);
/* Producer: after publishing work. */
void sy_notify_wake(sy_notify *n);
/* Consumer: sy_notify_prepare, re-check for work, then sy_notify_wait
 * (which returns after a wake, or after timeout_ms; -1 waits forever). */
void sy_notify_prepare(sy_notify *n);
void sy_notify_wait(sy_notify *n, int timeout_ms);
/* Consumer found work after prepare: cancel the sleep. */
void sy_notify_cancel(sy_notify *n);
/* Consumer: wait up to timeout_ms without asking producers to wake it;
 * only a direct write to fd (a stop, a reload, a query) ends it early. */
void sy_notify_nap(sy_notify *n, int timeout_ms);

#endif
