/*
 * router.h - the Lua side of routing, as the core sees it.
 *
 * A router owns one Lua state (the config's) and answers two questions:
 * where does this key go (decide), and may this token send (authorize).
 * Both are asked once per key or token and cached by the caller; samples of
 * a known key never enter Lua.  Every call is protected, bounded in time
 * and memory, and an error is counted and answered with the default route.
 */
#ifndef SY_ROUTER_H
#define SY_ROUTER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest/parse.h"

struct lua_State;

typedef struct sy_route {
    const char *drop;   /* why the key is dropped, or NULL to keep it */
    uint64_t sinks;     /* sinks that get its aggregates */
    uint64_t raw;       /* sinks that get its raw samples (pass-through) */
    double rate;        /* fraction of samples kept (1 = all) */
    int renamed;        /* key[] holds the new key */
    char key[SY_KEY_MAX];
    size_t key_len;
} sy_route;

typedef struct sy_router_stats {
    _Atomic uint64_t decisions;
    _Atomic uint64_t decide_errors;
    _Atomic uint64_t authorizations;
    _Atomic uint64_t auth_errors;
    _Atomic uint64_t timeouts;
    _Atomic uint64_t memory_bytes; /* gauge: the Lua state's heap */
} sy_router_stats;

typedef struct sy_router sy_router;

/* Takes ownership of L.  decide_ref/auth_ref are registry references
 * (LUA_NOREF when absent).  all_sinks is the default route's mask. */
sy_router *sy_router_new(struct lua_State *L, int decide_ref, int auth_ref, uint64_t all_sinks,
                         size_t memory_limit, uint32_t timeout_ms);
void sy_router_free(sy_router *r);

int sy_router_has_decide(const sy_router *r);
int sy_router_has_auth(const sy_router *r);
const sy_router_stats *sy_router_get_stats(const sy_router *r);

/* 0 with *out filled; -1 on an error in the script (counted, logged at a
 * bounded rate; *out is the default route). mtype is "c", "ms", "g", "s". */
int sy_router_decide(sy_router *r, const char *key, size_t klen, const char *mtype,
                     const char *listener, const char *sender, sy_route *out);

/* 1 allowed (ns filled, possibly empty), 0 refused, -1 script error
 * (refused). */
int sy_router_authorize(sy_router *r, const char *token, size_t tlen, const char *sender,
                        const char *listener, char *ns, size_t nscap, size_t *nslen);

/* Run fn(L, arg) with the same time and memory bounds as a routing call
 * (used while loading a config).  Returns lua_pcall's status. */
int sy_lua_bounded_call(struct lua_State *L, int nargs, int nresults, uint32_t timeout_ms,
                        size_t memory_limit);

/* A Lua state whose allocator enforces the memory_limit of each bounded
 * call at every allocation; close it with sy_lua_close. */
struct lua_State *sy_lua_newstate(void);
void sy_lua_close(struct lua_State *L);
/* 1 when the last bounded call on L had an allocation refused (even if
 * the script caught the error). */
int sy_lua_memory_refused(struct lua_State *L);

/* For sy_lpattern_install: NULL while the bounded call in progress on
 * this thread is within its bounds (or none is), else why to stop. */
const char *sy_lua_bound_check(struct lua_State *L, void *ud);

#endif
