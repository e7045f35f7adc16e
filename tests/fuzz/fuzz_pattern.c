/*
 * fuzz_pattern.c - core/engine/lpattern.c against LuaJIT's own pattern functions.
 *
 * switchyard's matcher runs on keys that clients choose (route.match, and
 * any pattern a route function uses), so it must be memory-safe on any
 * subject and any pattern, and agree with LuaJIT everywhere: a config
 * written against LuaJIT's string.match must route the same.
 *
 * Each input is one call: find, match, gmatch or gsub, on a subject and a
 * pattern (and gsub's replacement, or find's init and plain flag) taken
 * from the input.  The bounded function runs first, with a budget of
 * CHECKS checks (about CHECKS * SY_LPATTERN_CHECK_STEPS steps); a call
 * that spends it is a backtracking pattern the bound exists for, and is
 * not compared (LuaJIT's would take as long).  Otherwise LuaJIT's runs on
 * the same arguments, and every result must be equal: the values, their
 * count, and an error's text; gmatch is compared iteration by iteration.
 *
 * The Lua state uses malloc for every block (GC64 LuaJIT allows it), so a
 * read past a subject's end is an ASan report.
 *
 * Input: byte 0 picks the function (low 2 bits) and find's plain flag
 * (bit 2); byte 1 is find's init (signed, -64..63) or gsub's max-n (0: none);
 * byte 2 is the pattern's length, byte 3 the replacement's; then the
 * pattern, the replacement, and the rest is the subject.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fuzz_common.h"
#include "engine/lpattern.h"

#define CHECKS 64

static lua_State *L;
static int compare_ref;
static int checks_left;

static const char *budget(lua_State *Ls, void *ud)
{
    (void)Ls;
    (void)ud;
    return --checks_left < 0 ? "fuzz budget spent" : NULL;
}

static void *heap(void *ud, void *p, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(p);
        return NULL;
    }
    return realloc(p, nsize);
}

/* compare(mine, orig, fn, s, p, arg): nil when they agree, else a report. */
static const char COMPARE[] =
    "local mine, orig, fn, s, p, arg, plain = ...\n"
    "local function pack(...) return { n = select('#', ...), ... } end\n"
    "local function show(t)\n"
    "  local o = {}\n"
    "  for i = 1, t.n do o[#o + 1] = type(t[i]) .. ':' .. tostring(t[i]) end\n"
    "  return table.concat(o, ', ')\n"
    "end\n"
    "local function same(a, b)\n"
    "  if a.n ~= b.n then return false end\n"
    "  for i = 1, a.n do\n"
    "    if type(a[i]) ~= type(b[i]) or a[i] ~= b[i] then return false end\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "local function call(lib)\n"
    "  if fn == 'find' then return pack(pcall(lib.find, s, p, arg, plain)) end\n"
    "  if fn == 'match' then return pack(pcall(lib.match, s, p, arg)) end\n"
    "  if fn == 'gsub' then\n"
    "    return pack(pcall(lib.gsub, s, p, arg.repl, arg.n))\n"
    "  end\n"
    "  local ok, it = pcall(lib.gmatch, s, p)\n"
    "  if not ok then return pack(false, it) end\n"
    "  local all = { n = 0 }\n"
    "  for _ = 1, 200 do\n"
    "    local r = pack(pcall(it))\n"
    "    all.n = all.n + 1; all[all.n] = show(r)\n"
    "    if not r[1] or r[2] == nil then break end\n"
    "  end\n"
    "  return pack(true, table.concat(all, ' | '))\n"
    "end\n"
    "local a = call(mine)\n"
    "if not a[1] and tostring(a[2]):find('fuzz budget spent', 1, true) then return nil end\n"
    "if fn == 'gmatch' and a[2] and a[2]:find('fuzz budget spent', 1, true) then return nil end\n"
    "local b = call(orig)\n"
    "if same(a, b) then return nil end\n"
    "return string.format('%s(%q, %q): switchyard {%s}, LuaJIT {%s}', fn, s, p, show(a), show(b))\n";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LuaJIT tags its pointers, so LeakSanitizer cannot see that the state's
 * blocks are reachable: close it at exit, and nothing is left over. */
static void close_state(void)
{
    lua_close(L);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit(close_state);
    L = lua_newstate(heap, NULL);
    if (!L)
        L = luaL_newstate(); /* LuaJIT without GC64: its own allocator */
    if (!L)
        abort();
    luaL_openlibs(L);
    if (luaL_loadbuffer(L, COMPARE, sizeof COMPARE - 1, "=compare") != 0) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        abort();
    }
    compare_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const fns[] = { "find", "match", "gmatch", "gsub" };
    if (size < 4)
        return 0;
    int fn = data[0] & 3, plain = (data[0] >> 2) & 1;
    int arg = (int)(int8_t)data[1];
    size_t plen = data[2], rlen = data[3] % 16;
    if (4 + plen + rlen > size)
        return 0;
    const char *pat = (const char *)data + 4, *repl = pat + plen, *subj = repl + rlen;
    size_t slen = size - 4 - plen - rlen;

    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, compare_ref);
    sy_lpattern_push(L, budget, NULL);
    lua_getglobal(L, "string");
    lua_pushstring(L, fns[fn]);
    lua_pushlstring(L, subj, slen);
    lua_pushlstring(L, pat, plen);
    if (fn == 3) {
        lua_newtable(L);
        lua_pushlstring(L, repl, rlen);
        lua_setfield(L, -2, "repl");
        if (arg > 0) {
            lua_pushinteger(L, arg);
            lua_setfield(L, -2, "n");
        }
    } else {
        lua_pushinteger(L, arg);
    }
    lua_pushboolean(L, plain);
    checks_left = CHECKS;
    int rc = lua_pcall(L, 7, 1, 0);
    FUZZ_CHECK(rc == 0, "the comparison itself failed: %s", lua_tostring(L, -1));
    FUZZ_CHECK(lua_isnil(L, -1), "%s", lua_tostring(L, -1));
    lua_settop(L, top);
    static unsigned runs;
    if (++runs % 1024 == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
