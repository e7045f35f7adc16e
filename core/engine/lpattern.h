/*
 * lpattern.h - Lua 5.1 pattern matching that can be stopped.
 *
 * LuaJIT's string.find, match, gmatch and gsub backtrack inside one C call,
 * where the instruction-count hook that bounds the routing script never
 * runs: a pattern such as "^(.-)%.(.-)%.(.-)%.x$" against a long key from a
 * client could stall the engine for minutes.  This module is a matcher with
 * exactly LuaJIT 2.1's semantics (results, errors and their texts) that
 * counts its steps and asks a check function, every SY_LPATTERN_CHECK_STEPS
 * steps, whether to go on; the four string functions built on it replace
 * LuaJIT's in a Lua state.
 */
#ifndef SY_LPATTERN_H
#define SY_LPATTERN_H

struct lua_State;

/* Steps (pattern items tried, characters scanned) between two checks:
 * a check costs a clock read, a step a few nanoseconds. */
#define SY_LPATTERN_CHECK_STEPS 4096

/* NULL to go on; else why to stop, raised as the pattern function's Lua
 * error (the text is copied before the check is called again). */
typedef const char *(*sy_lpattern_check_fn)(struct lua_State *L, void *ud);

/*
 * Replace find, match, gmatch and gsub in L's `string` table (and in the
 * string metatable's __index, should that be another table, so that
 * s:match(p) is covered too) with bounded ones calling check(L, ud).
 * Call before any Lua code caches the originals.
 */
void sy_lpattern_install(struct lua_State *L, sy_lpattern_check_fn check, void *ud);

/* Push a new table { find, match, gmatch, gsub } of bounded functions,
 * installing nothing (for tests that compare them with LuaJIT's). */
void sy_lpattern_push(struct lua_State *L, sy_lpattern_check_fn check, void *ud);

#endif
