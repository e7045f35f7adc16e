/*
 * notify.c - eventfd wake-ups that cost nothing while the consumer is busy.
 */
#include "ingest/notify.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int sy_notify_init(sy_notify *n)
{
    n->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    atomic_init(&n->sleeping, 0);
    return n->fd < 0 ? -1 : 0;
}

void sy_notify_destroy(sy_notify *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}

/* The seq_cst exchange pairs with the fence in sy_notify_prepare: either the
 * consumer sees the new work on its re-check, or we see it sleeping. */
void sy_notify_wake(sy_notify *n)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&n->sleeping, memory_order_relaxed) &&
        atomic_exchange(&n->sleeping, 0)) {
        uint64_t one = 1;
        ssize_t rc = write(n->fd, &one, sizeof one);
        (void)rc; /* EAGAIN means a wake-up is already pending */
    }
}

void sy_notify_prepare(sy_notify *n)
{
    atomic_store(&n->sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst);
}

void sy_notify_cancel(sy_notify *n)
{
    atomic_store(&n->sleeping, 0);
}

void sy_notify_nap(sy_notify *n, int timeout_ms)
{
    struct pollfd p = { .fd = n->fd, .events = POLLIN };
    if (poll(&p, 1, timeout_ms) > 0) {
        uint64_t v;
        ssize_t rc = read(n->fd, &v, sizeof v);
        (void)rc;
    }
}

void sy_notify_wait(sy_notify *n, int timeout_ms)
{
    sy_notify_nap(n, timeout_ms);
    atomic_store(&n->sleeping, 0);
}
