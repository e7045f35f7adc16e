/*
 * mc.h - the trace tool's memcached client: one connection, one get (or
 * multi-get) at a time, every wait bounded.
 *
 * The socket is non-blocking from the connect on; each connect, send and
 * read waits in poll() for at most timeout_ms, and the whole exchange for
 * at most total_ms.  cancel_fd (-1: none), once readable, ends any wait at
 * once (ECANCELED): a page being made on an admin worker thread must not
 * hold up the admin's shutdown.  Values are read by their announced
 * length, those over a cap skipped.
 */
#ifndef SY_TRACES_MC_H
#define SY_TRACES_MC_H

#include <stddef.h>
#include <stdint.h>

typedef struct mc {
    int fd;
    int cancel_fd;      /* readable: give up now (the admin is stopping); -1: none */
    int timeout_ms;     /* each connect, send and read */
    uint64_t deadline;  /* CLOCK_MONOTONIC ms for the whole exchange; 0: none */
    size_t max_value;   /* larger values are skipped, not parsed */
    size_t budget;      /* bytes of values still to parse (SIZE_MAX: no limit) */
    char buf[65536];
    size_t off, len;
    char err[512];
} mc;

/* Resolves and connects to addr ("HOST:PORT", "[V6]:PORT", "HOST" or
 * "[V6]"; port 11211); timeout_ms for each step, total_ms for the whole
 * exchange (0: none), values over max_value skipped.  Set m->cancel_fd
 * before.  0, or -1 with the reason in m->err. */
int mc_open(mc *m, const char *addr, int timeout_ms, int total_ms, size_t max_value);
void mc_close(mc *m);
/* Sends n bytes; 0 or -1 (m->err). */
int mc_write(mc *m, const char *p, size_t n);

typedef int (*value_fn)(void *ctx, const char *key, const char *data, size_t len);
/* Reads the answer to a get: each VALUE goes to fn (values over
 * m->max_value, or over what is left of m->budget, are skipped and counted
 * in *skipped), until END.  0, or -1 (m->err, or fn's -1). */
int mc_values(mc *m, value_fn fn, void *ctx, size_t *skipped);

#endif
