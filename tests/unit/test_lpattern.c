/*
 * test_lpattern.c - core/engine/lpattern.c: LuaJIT's semantics, and the bound.
 *
 * A C test rather than a busted spec because busted's LuaJIT cannot reach
 * the routing state, while here the bounded functions are installed with
 * the very call the config loader makes (sy_lpattern_install) into a
 * state of their own, next to LuaJIT's originals; and because this file
 * also runs in the ASan+UBSan build (make san), where a matcher reading
 * past a subject is caught: the states use a malloc allocator when LuaJIT
 * allows it (GC64), so every Lua string is a heap block of its own.
 *
 *   - differential: tests/unit/lpattern_diff.lua (found from $SY_ROOT or
 *     the current directory) compares every result and error of find,
 *     match, gmatch and gsub on hand-written cases and random pairs
 *     ($SY_LPATTERN_PAIRS, default 5000; $SY_LPATTERN_SEED, default the time,
 *     printed so a failure can be replayed);
 *   - the check: called during long matches, honoured by all four
 *     functions and by s:method() calls, not called by short ones;
 *   - the bound end to end in C: "^(.-)%.(.-)%.(.-)%.(.-)%.x$" against
 *     600 dots (many seconds for LuaJIT's own string.match) stops
 *     at a deadline; through sy_router_decide it is a counted timeout,
 *     answered with the default route, and the router works on after;
 *     a gsub whose output outgrows the heap limit is stopped too;
 *   - long subjects (1 MB): same results as LuaJIT, no deep recursion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "engine/lpattern.h"
#include "engine/router.h"

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

static lua_State *new_state(void)
{
    lua_State *L = lua_newstate(heap_alloc, NULL);
    if (!L) /* LuaJIT without GC64 only runs on its own allocator */
        L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    return L;
}

/* Push a table of LuaJIT's own find/match/gmatch/gsub. */
static void push_originals(lua_State *L)
{
    static const char *const names[] = { "find", "match", "gmatch", "gsub" };
    lua_newtable(L);
    lua_getglobal(L, "string");
    for (int i = 0; i < 4; i++) {
        lua_getfield(L, -1, names[i]);
        lua_setfield(L, -3, names[i]);
    }
    lua_pop(L, 1);
}

typedef struct counter {
    unsigned calls;
    unsigned stop_at; /* stop on this call (0: never) */
} counter;

static const char *count_check(lua_State *L, void *ud)
{
    (void)L;
    counter *c = ud;
    c->calls++;
    return c->stop_at && c->calls >= c->stop_at ? "stopped by the test" : NULL;
}

static const char *deadline_check(lua_State *L, void *ud)
{
    (void)L;
    return now_ns() > *(uint64_t *)ud ? "pattern ran too long (test deadline)" : NULL;
}

/* Run a chunk; its first result must be true, else fail with the second. */
static void run_lua(lua_State *L, const char *code)
{
    if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, 2, 0) != 0)
        fail_msg("Lua: %s", lua_tostring(L, -1));
    if (!lua_toboolean(L, -2))
        fail_msg("Lua check failed: %s", lua_tostring(L, -1));
    lua_pop(L, 2);
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static void test_differential(void **state)
{
    (void)state;
    lua_State *L = new_state();
    push_originals(L);
    int orig = lua_gettop(L);
    counter c = { 0, 0 };
    sy_lpattern_install(L, count_check, &c);

    const char *root = getenv("SY_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/unit/lpattern_diff.lua", root && *root ? root : ".");
    if (luaL_loadfile(L, path) != 0 || lua_pcall(L, 0, 1, 0) != 0)
        fail_msg("%s (set SY_ROOT to the repository)", lua_tostring(L, -1));
    lua_pushvalue(L, orig);
    lua_getglobal(L, "string");
    long seed = env_long("SY_LPATTERN_SEED", (long)time(NULL)); /* printed below */
    long pairs = env_long("SY_LPATTERN_PAIRS", 5000);
    lua_pushnumber(L, (lua_Number)seed);
    lua_pushnumber(L, (lua_Number)pairs);
    if (lua_pcall(L, 4, 3, 0) != 0)
        fail_msg("lpattern_diff.lua: %s", lua_tostring(L, -1));
    long ncmp = (long)lua_tointeger(L, -3), nbad = (long)lua_tointeger(L, -2);
    print_message("lpattern: %ld comparisons (%ld random pairs, seed %ld), %ld differences\n%s\n",
                  ncmp, pairs, seed, nbad, lua_tostring(L, -1));
    assert_true(ncmp > 10000 + 10 * pairs); /* the harness really ran */
    assert_int_equal(nbad, 0);
    lua_close(L);
}

static void test_check_stops_all_four(void **state)
{
    (void)state;
    lua_State *L = new_state();
    push_originals(L);
    lua_setglobal(L, "orig");
    counter c = { 0, 1 };
    sy_lpattern_install(L, count_check, &c);
    run_lua(L,
            "local s = string.rep('x', 20000)\n"
            "local function stopped(f)\n"
            "  local ok, err = pcall(f)\n"
            "  return not ok and tostring(err):find('stopped by the test', 1, true) ~= nil\n"
            "end\n"
            "assert(string.find ~= orig.find and getmetatable('').__index.find == string.find)\n"
            "local checks = {\n"
            "  stopped(function() return s:match('.-y') end),\n"
            "  stopped(function() return string.find(s, '.-y') end),\n"
            "  stopped(function() return s:find('x*y') end),\n"
            "  stopped(function() for _ in s:gmatch('.-y') do end end),\n"
            "  stopped(function() return s:gsub('.-y', '') end),\n"
            "  stopped(function() return s:gsub('x', '%0%0') end),\n"
            "}\n"
            "for i, ok in ipairs(checks) do\n"
            "  if not ok then return false, 'call ' .. i .. ' was not stopped' end\n"
            "end\n"
            "return true\n");
    unsigned calls = c.calls;
    assert_true(calls >= 6);
    /* a short match never reaches the check; a plain find needs none */
    run_lua(L,
            "local k = 'api.web01.requests.count'\n"
            "local a, b = k:match('^api%.([^.]+)%.(.+)$')\n"
            "return a == 'web01' and b == 'requests.count' and\n"
            "  select(2, k:gsub('%.', '/')) == 3 and\n"
            "  string.rep('x', 100000):find('xy', 1, true) == nil, 'short matches'\n");
    assert_int_equal(c.calls, calls);
    lua_close(L);
}

static void test_hostile_pattern_deadline(void **state)
{
    (void)state;
    lua_State *L = new_state();
    uint64_t deadline = 0;
    sy_lpattern_install(L, deadline_check, &deadline);
    uint64_t t0 = now_ns();
    deadline = t0 + 50 * 1000000ull;
    if (luaL_loadstring(L, "return (string.rep('.', 600)):match('^(.-)%.(.-)%.(.-)%.(.-)%.x$')") != 0)
        fail_msg("%s", lua_tostring(L, -1));
    int rc = lua_pcall(L, 0, 1, 0);
    double ms = (double)(now_ns() - t0) / 1e6;
    print_message("hostile pattern stopped after %.1f ms (deadline 50 ms)\n", ms);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(lua_tostring(L, -1), "pattern ran too long"));
    assert_true(ms < 2000); /* 50 ms plus slack for a loaded machine */
    lua_close(L);
}

/* The router's own bound: a timeout, the default route, and a working
 * router afterwards. */
static void test_router_counts_pattern_timeout(void **state)
{
    (void)state;
    lua_State *L = new_state();
    sy_lpattern_install(L, sy_lua_bound_check, NULL);
    if (luaL_loadstring(L,
                        "return function(key)\n"
                        "  if key:match('^(.-)%.(.-)%.(.-)%.(.-)%.x$') then return nil, 1, 0, nil, 1 end\n"
                        "  return nil, 2, 0, nil, 1\n"
                        "end\n") != 0 ||
        lua_pcall(L, 0, 1, 0) != 0)
        fail_msg("%s", lua_tostring(L, -1));
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    sy_router *r = sy_router_new(L, ref, LUA_NOREF, 7, 64u << 20, 50);
    assert_non_null(r);
    sy_route out;
    char key[700];
    memset(key, '.', 600);
    key[600] = '\0';
    uint64_t t0 = now_ns();
    int rc = sy_router_decide(r, key, 600, "c", "", "", &out);
    double ms = (double)(now_ns() - t0) / 1e6;
    print_message("route with a hostile key answered after %.1f ms (luaTimeout 50)\n", ms);
    assert_int_equal(rc, -1);
    assert_int_equal(out.sinks, 7); /* the default route */
    assert_null(out.drop);
    assert_true(ms < 2000);
    const sy_router_stats *st = sy_router_get_stats(r);
    assert_int_equal(atomic_load(&st->timeouts), 1);
    assert_int_equal(atomic_load(&st->decide_errors), 1);

    assert_int_equal(sy_router_decide(r, "a.b.c.d.x", 9, "c", "", "", &out), 0);
    assert_int_equal(out.sinks, 1);
    assert_int_equal(sy_router_decide(r, "plain", 5, "c", "", "", &out), 0);
    assert_int_equal(out.sinks, 2);
    assert_int_equal(atomic_load(&st->timeouts), 1);
    sy_router_free(r);
}

/* The heap limit too: gsub's output grows inside one C call. */
static void test_bounded_call_memory(void **state)
{
    (void)state;
    lua_State *L = new_state();
    sy_lpattern_install(L, sy_lua_bound_check, NULL);
    if (luaL_loadstring(L, "local s = string.rep('a', 100000)\n"
                           "return #s:gsub('', string.rep('b', 1000))\n") != 0)
        fail_msg("%s", lua_tostring(L, -1));
    int rc = sy_lua_bounded_call(L, 0, 1, 10000, 8u << 20); /* 100 MB wanted, 8 MB allowed */
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(lua_tostring(L, -1), "pattern used too much memory"));
    lua_close(L);
}

/* Outside a bounded call the check never stops anything. */
static void test_unbounded_outside_calls(void **state)
{
    (void)state;
    lua_State *L = new_state();
    sy_lpattern_install(L, sy_lua_bound_check, NULL);
    run_lua(L, "local s = string.rep('a', 3000)\n"
               "return s:find('a-$') == 1, 'long match outside a bounded call'\n");
    lua_close(L);
}

static void test_long_subjects(void **state)
{
    (void)state;
    lua_State *L = new_state();
    push_originals(L);
    lua_setglobal(L, "orig");
    counter c = { 0, 0 };
    sy_lpattern_install(L, count_check, &c);
    run_lua(L,
            "local big = string.rep('a', 1000000)\n"
            "local nest = string.rep('(', 100000) .. string.rep(')', 100000)\n"
            "local cases = {\n"
            "  { big .. 'b', '.-b' }, { big .. 'b', '^(a*)b$' }, { big, 'a-$' }, { big, '(.*)' },\n"
            "  { big, '^(a+)(a+)$' }, { big, string.rep('a?', 150) }, { nest, '%b()' },\n"
            "  { nest .. 'x', '%b()x' }, { big, '%f[a]' }, { big, '(a)%1' }, { big, 'b' },\n"
            "}\n"
            "for i, c in ipairs(cases) do\n"
            "  local a = { pcall(orig.find, c[1], c[2]) }\n"
            "  local b = { pcall(string.find, c[1], c[2]) }\n"
            "  for k = 1, math.max(#a, #b) do\n"
            "    local x, y = a[k], b[k]\n"
            "    if type(x) == 'string' then x = #x end\n"
            "    if type(y) == 'string' then y = #y end\n"
            "    if x ~= y then return false, 'case ' .. i .. ' result ' .. k .. ': ' .. tostring(x) .. ' vs ' .. tostring(y) end\n"
            "  end\n"
            "end\n"
            "local n1 = select(2, orig.gsub(big, 'a', 'bb'))\n"
            "local s2, n2 = string.gsub(big, 'a', 'bb')\n"
            "return n1 == n2 and #s2 == 2000000, 'gsub on a long subject'\n");
    assert_true(c.calls > 100); /* the long matches were counted */
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_check_stops_all_four),
        cmocka_unit_test(test_hostile_pattern_deadline),
        cmocka_unit_test(test_router_counts_pattern_timeout),
        cmocka_unit_test(test_bounded_call_memory),
        cmocka_unit_test(test_unbounded_outside_calls),
        cmocka_unit_test(test_long_subjects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
