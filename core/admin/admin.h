/*
 * admin.h - the operator's view: statsd's management console over TCP and
 * an HTTP endpoint (/health, /metrics, /traces).
 *
 * Runs on a thread of its own, so a slow or stuck admin client never
 * touches ingest.  Questions about the key table are asked of the engine
 * (sy_engine_walk), which answers a slice at a time between two batches.
 * /traces pages, which wait on memcached, are made on worker threads (at
 * most two at once), so they never hold the admin loop either.
 */
#ifndef SY_ADMIN_H
#define SY_ADMIN_H

#include <stddef.h>

#include "config.h"
#include "engine/engine.h"
#include "ingest/listener.h"
#include "output/output.h"

typedef struct sy_admin sy_admin;

/* Reload the config; 1 on success, else 0 with the reason in why. */
typedef int (*sy_admin_reload_fn)(void *ctx, char *why, size_t cap);

struct evbuffer;
struct evkeyvalq;
typedef int (*sy_admin_traces_fn)(const char *memcached, const char *prefix, const char *uri,
                                  int cancel_fd, struct evbuffer *out, struct evkeyvalq *headers,
                                  int *cut);

typedef struct sy_admin_deps {
    const sy_config *conf;       /* the config at start (admin addresses; `config` until a reload) */
    sy_engine *engine;
    sy_output *output;
    sy_listener *listeners;
    size_t nlisteners;
    sy_ring **rings;
    size_t nrings;
    sy_admin_reload_fn reload;
    void *reload_ctx;
    /* Makes a /traces page: the trace tool's sy_traces_http
     * (tools/traces/traces.h), which the daemon links and the core library
     * does not; NULL: /traces answers 404. */
    sy_admin_traces_fn traces_page;
} sy_admin_deps;

/* Opens the configured admin sockets (none configured: returns an admin
 * that does nothing) and starts its thread; NULL with err on failure. */
sy_admin *sy_admin_start(const sy_admin_deps *deps, char *err, size_t errlen);
void sy_admin_stop(sy_admin *a);
/* What sy_admin_start would refuse in the config's admin addresses, found
 * without binding: for --check and start-up.  0, or -1 with err. */
int sy_admin_check(const sy_config *c, char *err, size_t errlen);
/* A reload succeeded: `config` shows c from now on.  Call it before c is
 * handed to the engine (which may free it); a NULL admin is ignored. */
void sy_admin_config_changed(sy_admin *a, const sy_config *c);
/* The TCP and HTTP ports actually bound (0 when off). */
int sy_admin_mgmt_port(const sy_admin *a);
int sy_admin_http_port(const sy_admin *a);

#endif
