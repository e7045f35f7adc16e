/*
 * router.c - protected, bounded calls into the routing script.
 *
 * Bounds: an instruction-count hook checks the clock and the Lua heap every
 * 1000 instructions and raises an error past the deadline or the memory
 * limit.  LuaJIT does not run hooks inside compiled traces, so the state
 * runs with the JIT off: routing is asked once per key, where the
 * interpreter is fast enough, and a runaway loop must always be stoppable.
 * Nor do hooks run inside one C call: the pattern functions (lpattern.c)
 * ask sy_lua_bound_check for the same bounds as they go.
 */
#include "engine/router.h"

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/clock.h"

struct sy_router {
    lua_State *L;
    int decide_ref, auth_ref;
    uint64_t all_sinks;
    size_t memory_limit;
    uint32_t timeout_ms;
    sy_router_stats st;
    char drop_reason[256];
};

static sy_ratelimit rl_err = SY_RATELIMIT_INIT(10000, 5);

/* The bounds of the call in progress on this thread. */
static __thread uint64_t deadline_ns;
static __thread size_t heap_limit_kb;
static __thread int bound_hit; /* 1 timeout, 2 memory */
static __thread uint32_t bound_ms;

/* Which bound the call in progress has passed (sets bound_hit): 0 none,
 * 1 the deadline, 2 the memory limit. */
static int bound_passed(lua_State *L)
{
    if (deadline_ns && sy_mono_ns() > deadline_ns)
        return bound_hit = 1;
    if (heap_limit_kb && (size_t)lua_gc(L, LUA_GCCOUNT, 0) > heap_limit_kb) {
        lua_gc(L, LUA_GCCOLLECT, 0);
        if ((size_t)lua_gc(L, LUA_GCCOUNT, 0) > heap_limit_kb)
            return bound_hit = 2;
    }
    return 0;
}

static void bound_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    switch (bound_passed(L)) {
    case 1:
        luaL_error(L, "ran too long (over %d ms)", (int)bound_ms);
        break;
    case 2:
        luaL_error(L, "used too much memory (over %d KiB)", (int)heap_limit_kb);
        break;
    }
}

/*
 * The hook never runs inside one C call, so the pattern functions
 * (core/engine/lpattern.c) ask this instead, every few thousand steps of a
 * match: the same deadline and heap limit, so luaTimeout (and a config's
 * setup limit) stops a backtracking pattern too, and the error is counted
 * like the hook's.
 */
const char *sy_lua_bound_check(lua_State *L, void *ud)
{
    static __thread char why[96];
    (void)ud;
    switch (bound_passed(L)) {
    case 1:
        snprintf(why, sizeof why, "pattern ran too long (over %d ms)", (int)bound_ms);
        return why;
    case 2:
        snprintf(why, sizeof why, "pattern used too much memory (over %d KiB)", (int)heap_limit_kb);
        return why;
    }
    return NULL;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* The heap of one config state, counted by its allocator. */
typedef struct lua_heap {
    size_t used;
    size_t limit; /* 0: none */
    int refused;  /* an allocation was refused in the current bounded call */
    lua_Alloc real; /* LuaJIT's own allocator, which does the work */
    void *real_ud;
} lua_heap;

/*
 * Every allocation of a config state comes here, so a memory limit holds
 * at the allocation itself, even against one huge piece made by a single
 * C call (string.rep, a concatenation) that the hook would see only
 * afterwards.  The limit is in force only inside a bounded call, where a
 * refused allocation is a caught "not enough memory" error; outside one
 * (arguments being pushed, results read) nothing may fail, or LuaJIT
 * would panic.
 */
static void *heap_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
    lua_heap *h = ud;
    if (nsize == 0) {
        h->used -= osize;
        return h->real(h->real_ud, p, osize, 0);
    }
    if (h->limit && nsize > osize && h->used - osize + nsize > h->limit) {
        h->refused = 1;
        return NULL;
    }
    void *q = h->real(h->real_ud, p, osize, nsize);
    if (q)
        h->used = h->used - osize + nsize;
    return q;
}

/* L's counter, or NULL for a state not made by sy_lua_newstate. */
static lua_heap *heap_of(lua_State *L)
{
    void *ud = NULL;
    return lua_getallocf(L, &ud) == heap_alloc ? ud : NULL;
}

int sy_lua_memory_refused(lua_State *L)
{
    lua_heap *h = heap_of(L);
    return h && h->refused;
}

/* The state keeps LuaJIT's own allocator underneath (its arena, apart from
 * malloc's heap: interleaving Lua's objects with the aggregator's entries
 * cost the engine a fifth of its speed in cache misses) and counts in
 * front of it, from the heap it already has. */
lua_State *sy_lua_newstate(void)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return NULL;
    /* The counter lives in the state itself, anchored in the registry:
     * freed with it, and never a malloc block that only LuaJIT's arena
     * points to (LeakSanitizer cannot see into that arena). */
    lua_heap *h = lua_newuserdata(L, sizeof *h);
    memset(h, 0, sizeof *h);
    lua_setfield(L, LUA_REGISTRYINDEX, "switchyard.heap");
    h->real = lua_getallocf(L, &h->real_ud);
    h->used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    lua_setallocf(L, heap_alloc, h);
    return L;
}

void sy_lua_close(lua_State *L)
{
    if (!L)
        return;
    /* Give LuaJIT its allocator back first (h goes with the state):
     * closing with its own, it frees its whole arena; with another it
     * would leave the arena behind. */
    lua_heap *h = heap_of(L);
    if (h)
        lua_setallocf(L, h->real, h->real_ud);
    lua_close(L);
}

int sy_lua_bounded_call(lua_State *L, int nargs, int nresults, uint32_t timeout_ms, size_t memory_limit)
{
    lua_heap *h = heap_of(L);
    if (h && memory_limit && h->used > memory_limit)
        lua_gc(L, LUA_GCCOLLECT, 0); /* last call's garbage: not this call's fault */
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    deadline_ns = timeout_ms ? sy_mono_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    bound_ms = timeout_ms;
    heap_limit_kb = memory_limit / 1024;
    bound_hit = 0;
    if (h) {
        h->limit = memory_limit;
        h->refused = 0;
    }
    lua_sethook(L, bound_hook, LUA_MASKCOUNT, 1000);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_sethook(L, NULL, 0, 0);
    if (h)
        h->limit = 0;
    deadline_ns = 0;
    heap_limit_kb = 0;
    if (rc != 0 && (rc == LUA_ERRMEM || (h && h->refused))) {
        /* The allocator refused (the script may have caught that and
         * raised something else): say which bound, as the hook would. */
        bound_hit = 2;
        lua_pop(L, 1);
        lua_gc(L, LUA_GCCOLLECT, 0);
        lua_pushfstring(L, "used too much memory (over %d KiB)", (int)(memory_limit / 1024));
    }
    lua_remove(L, base);
    return rc;
}

sy_router *sy_router_new(lua_State *L, int decide_ref, int auth_ref, uint64_t all_sinks,
                         size_t memory_limit, uint32_t timeout_ms)
{
    sy_router *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->L = L;
    r->decide_ref = decide_ref;
    r->auth_ref = auth_ref;
    r->all_sinks = all_sinks;
    r->memory_limit = memory_limit;
    r->timeout_ms = timeout_ms;
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    atomic_store(&r->st.memory_bytes, (uint64_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024u);
    return r;
}

void sy_router_free(sy_router *r)
{
    if (!r)
        return;
    sy_lua_close(r->L);
    free(r);
}

int sy_router_has_decide(const sy_router *r) { return r && r->decide_ref != LUA_NOREF && r->decide_ref != LUA_REFNIL; }
int sy_router_has_auth(const sy_router *r) { return r && r->auth_ref != LUA_NOREF && r->auth_ref != LUA_REFNIL; }
const sy_router_stats *sy_router_get_stats(const sy_router *r) { return &r->st; }

static void default_route(sy_router *r, sy_route *out)
{
    out->drop = NULL;
    out->sinks = r->all_sinks;
    out->raw = 0;
    out->rate = 1;
    out->renamed = 0;
    out->key_len = 0;
}

static void note_error(sy_router *r, const char *what, const char *subject, size_t slen)
{
    if (bound_hit == 1)
        atomic_fetch_add(&r->st.timeouts, 1);
    sy_log_limited(&rl_err, SY_WARN, "Lua %s failed for '%.*s': %s", what, (int)(slen > 200 ? 200 : slen),
                   subject, lua_tostring(r->L, -1));
    lua_pop(r->L, 1);
}

int sy_router_decide(sy_router *r, const char *key, size_t klen, const char *mtype,
                     const char *listener, const char *sender, sy_route *out)
{
    default_route(r, out);
    if (!sy_router_has_decide(r))
        return 0;
    lua_State *L = r->L;
    atomic_fetch_add_explicit(&r->st.decisions, 1, memory_order_relaxed);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->decide_ref);
    lua_pushlstring(L, key, klen);
    lua_pushstring(L, mtype);
    lua_pushstring(L, listener ? listener : "");
    lua_pushstring(L, sender ? sender : "");
    int rc = sy_lua_bounded_call(L, 4, 5, r->timeout_ms, r->memory_limit);
    atomic_store_explicit(&r->st.memory_bytes, (uint64_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024u,
                          memory_order_relaxed);
    if (rc != 0) {
        atomic_fetch_add(&r->st.decide_errors, 1);
        note_error(r, "route", key, klen);
        return -1;
    }
    /* drop_reason, sinks, raw, new_key, rate */
    int ok = 1;
    if (!lua_isnil(L, -5)) {
        snprintf(r->drop_reason, sizeof r->drop_reason, "%s",
                 lua_isstring(L, -5) ? lua_tostring(L, -5) : "dropped");
        out->drop = r->drop_reason;
        out->sinks = out->raw = 0;
    } else {
        out->sinks = (uint64_t)lua_tonumber(L, -4);
        out->raw = (uint64_t)lua_tonumber(L, -3);
        if (lua_isstring(L, -2)) {
            size_t n;
            const char *k = lua_tolstring(L, -2, &n);
            if (n == 0 || n >= SY_KEY_MAX) {
                ok = 0;
            } else {
                memcpy(out->key, k, n);
                out->key[n] = '\0';
                out->key_len = n;
                out->renamed = 1;
            }
        }
        double rate = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 1;
        if (!(rate > 0 && rate <= 1))
            ok = 0;
        out->rate = rate;
    }
    lua_pop(L, 5);
    if (!ok) {
        atomic_fetch_add(&r->st.decide_errors, 1);
        sy_log_limited(&rl_err, SY_WARN, "Lua route for '%.*s' answered a bad name or rate",
                       (int)(klen > 200 ? 200 : klen), key);
        default_route(r, out);
        return -1;
    }
    return 0;
}

int sy_router_authorize(sy_router *r, const char *token, size_t tlen, const char *sender,
                        const char *listener, char *ns, size_t nscap, size_t *nslen)
{
    *nslen = 0;
    if (!sy_router_has_auth(r))
        return 0;
    lua_State *L = r->L;
    atomic_fetch_add_explicit(&r->st.authorizations, 1, memory_order_relaxed);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->auth_ref);
    lua_pushlstring(L, token, tlen);
    lua_pushstring(L, sender ? sender : "");
    lua_pushstring(L, listener ? listener : "");
    int rc = sy_lua_bounded_call(L, 3, 2, r->timeout_ms, r->memory_limit);
    if (rc != 0) {
        atomic_fetch_add(&r->st.auth_errors, 1);
        note_error(r, "auth", token, tlen);
        return -1;
    }
    int allowed = lua_toboolean(L, -2);
    if (allowed && !lua_isnil(L, -1)) {
        /* A namespace must be a string that fits; anything else refuses
         * the line rather than letting it through unprefixed. */
        size_t n = 0;
        int t = lua_type(L, -1);
        const char *ns_s = (t == LUA_TSTRING || t == LUA_TNUMBER) ? lua_tolstring(L, -1, &n) : NULL;
        if (!ns_s || n + 1 >= nscap) {
            atomic_fetch_add(&r->st.auth_errors, 1);
            sy_log_limited(&rl_err, SY_WARN, "Lua auth for token '%.*s' answered a namespace that %s",
                           (int)(tlen > 64 ? 64 : tlen), token,
                           ns_s ? "is too long" : "is not a string or number");
            lua_pop(L, 2);
            return -1;
        }
        memcpy(ns, ns_s, n);
        ns[n] = '\0';
        *nslen = n;
    }
    lua_pop(L, 2);
    return allowed ? 1 : 0;
}
