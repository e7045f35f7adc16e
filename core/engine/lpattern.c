/*
 * lpattern.c - Lua 5.1 patterns with a step budget, and the string
 * functions built on them.
 *
 * The matcher is a backtracking interpreter over the pattern text, like
 * Lua's own, and has to be: LuaJIT reports a malformed pattern only when
 * the match reaches the bad part ("a[" against "b" is simply no match),
 * limits the nesting of backtracking points (not the subject's length) to
 * 200 ("pattern too complex"), ends a pattern at its first NUL byte, and
 * all of that is behaviour a config may rely on.  What it adds is a step
 * counter: every SY_LPATTERN_CHECK_STEPS steps the check function decides
 * whether the call may go on; when it says no, the Lua function raises
 * that as an error.  Nothing is allocated during a match, so an error
 * (luaL_error unwinds the C stack) needs no cleanup.
 *
 * Character classes are ASCII only (LuaJIT's lj_char tables, not the C
 * library's locale): bytes 128-255 belong to no class but their
 * complements.
 */
#include "engine/lpattern.h"

#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MAX_CAPTURES 32 /* LUA_MAXCAPTURES */
#define MAX_NESTING 200 /* LJ_MAX_XLEVEL: open backtracking points */

/* capture.len while a capture is open, and for a position capture "()" */
#define CAP_OPEN (-1)
#define CAP_POSITION (-2)

typedef struct bound {
    sy_lpattern_check_fn check;
    void *ud;
} bound;

typedef struct matcher {
    lua_State *L;
    const char *subj, *end; /* the subject, [subj, end) */
    const bound *bound;
    unsigned steps;         /* since the last check */
    int nesting;
    int ncap;               /* captures begun, open or closed */
    struct {
        const char *at;
        ptrdiff_t len;      /* or CAP_OPEN, CAP_POSITION */
    } cap[MAX_CAPTURES];
} matcher;

static void fail(matcher *m, const char *msg) __attribute__((noreturn));
static void fail(matcher *m, const char *msg)
{
    luaL_error(m->L, "%s", msg);
    __builtin_unreachable(); /* luaL_error longjmps */
}

static void check_budget(matcher *m)
{
    m->steps = 0;
    const char *why = m->bound->check ? m->bound->check(m->L, m->bound->ud) : NULL;
    if (why)
        fail(m, why);
}

/* Charge n steps; the check runs once enough have gone by. */
static inline void charge(matcher *m, unsigned n)
{
    m->steps += n;
    if (m->steps >= SY_LPATTERN_CHECK_STEPS)
        check_budget(m);
}

static void matcher_init(matcher *m, lua_State *L, const bound *b, const char *s, size_t len)
{
    m->L = L;
    m->subj = s;
    m->end = s + len;
    m->bound = b;
    m->steps = 0;
    m->nesting = 0;
    m->ncap = 0;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_alnum(int c) { return is_alpha(c) || is_digit(c); }

/*
 * Is byte c in the class "%cl"?  The letters a c d g l p s u w x z name
 * classes, their capitals the complements; any other character after '%'
 * stands for itself, which is how "%." and "%%" work.  (Only A-Z and a-z
 * become a-z under | 0x20.)
 */
static int in_class(int c, int cl)
{
    int r;
    switch (cl | 0x20) {
    case 'a': r = is_alpha(c); break;
    case 'c': r = c < 0x20 || c == 0x7f; break;
    case 'd': r = is_digit(c); break;
    case 'g': r = c > 0x20 && c < 0x7f; break;
    case 'l': r = c >= 'a' && c <= 'z'; break;
    case 'p': r = c > 0x20 && c < 0x7f && !is_alnum(c); break;
    case 's': r = c == ' ' || (c >= '\t' && c <= '\r'); break;
    case 'u': r = c >= 'A' && c <= 'Z'; break;
    case 'w': r = is_alnum(c); break;
    case 'x': r = is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); break;
    case 'z': r = c == 0; break;
    default: return cl == c;
    }
    return (cl & 0x20) ? r : !r;
}

/*
 * Is c in the set that starts at '[' (set) and whose closing ']' is at
 * close?  Inside, "%x" is a class or an escaped character, "a-z" a range
 * (a '-' first or last is itself), a leading '^' the complement.
 */
static int in_set(int c, const char *set, const char *close)
{
    int want = 1;
    const char *p = set + 1;
    if (*p == '^') {
        want = 0;
        p++;
    }
    for (; p < close; p++) {
        unsigned char x = (unsigned char)*p;
        if (x == '%') {
            p++;
            if (in_class(c, (unsigned char)*p))
                return want;
        } else if (p[1] == '-' && p + 2 < close) {
            if (x <= c && c <= (unsigned char)p[2])
                return want;
            p += 2;
        } else if (x == c) {
            return want;
        }
    }
    return !want;
}

/*
 * Where the single-character item at p ends: after "%x", after a set's
 * closing ']', else after the character.  A set's first character is
 * always a member (so "[]]" and "[^]]" hold ']'), and "%]" does not
 * close it.  Malformed items are reported here, when first reached.
 */
static const char *item_end(matcher *m, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (*p == '\0')
            fail(m, "malformed pattern (ends with '%')");
        return p + 1;
    }
    if (c != '[')
        return p;
    if (*p == '^')
        p++;
    do {
        if (*p == '\0')
            fail(m, "malformed pattern (missing ']')");
        p += (*p == '%' && p[1] != '\0') ? 2 : 1;
    } while (*p != ']');
    return p + 1;
}

/* Does the item [p, ep) accept byte c? */
static int item_accepts(int c, const char *p, const char *ep)
{
    switch (*p) {
    case '.': return 1;
    case '%': return in_class(c, (unsigned char)p[1]);
    case '[': return in_set(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *match_here(matcher *m, const char *s, const char *p);

/*
 * A nested attempt, where the matcher may come back to try something
 * else.  LuaJIT allows 200 of them open at once; the same count here
 * gives "pattern too complex" for the same patterns and bounds the C
 * stack whatever the subject's length.
 */
static const char *attempt(matcher *m, const char *s, const char *p)
{
    if (++m->nesting > MAX_NESTING)
        fail(m, "pattern too complex");
    const char *r = match_here(m, s, p);
    m->nesting--;
    return r;
}

/* item* and item+: take as many as possible, give them back one by one. */
static const char *repeat_greedy(matcher *m, const char *s, const char *p, const char *ep)
{
    size_t n = 0;
    while (s + n < m->end && item_accepts((unsigned char)s[n], p, ep)) {
        n++;
        charge(m, 1);
    }
    for (;;) {
        const char *r = attempt(m, s + n, ep + 1);
        if (r || n == 0)
            return r;
        n--;
    }
}

/* item-: take one more only when the rest does not match. */
static const char *repeat_lazy(matcher *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = attempt(m, s, ep + 1);
        if (r)
            return r;
        if (s < m->end && item_accepts((unsigned char)*s, p, ep))
            s++;
        else
            return NULL;
    }
}

/* %bxy at s: from an x to the y that balances it. */
static const char *balanced(matcher *m, const char *s, const char *xy)
{
    if (xy[0] == '\0' || xy[1] == '\0')
        fail(m, "unbalanced pattern");
    if (s >= m->end || *s != xy[0])
        return NULL;
    int depth = 1;
    while (++s < m->end) {
        charge(m, 1);
        if (*s == xy[1]) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == xy[0]) {
            depth++;
        }
    }
    return NULL;
}

static const char *open_capture(matcher *m, const char *s, const char *p, ptrdiff_t kind)
{
    if (m->ncap >= MAX_CAPTURES)
        fail(m, "too many captures");
    m->cap[m->ncap].at = s;
    m->cap[m->ncap].len = kind;
    m->ncap++;
    const char *r = attempt(m, s, p);
    if (!r)
        m->ncap--;
    return r;
}

static const char *close_capture(matcher *m, const char *s, const char *p)
{
    int i = m->ncap - 1;
    while (i >= 0 && m->cap[i].len != CAP_OPEN)
        i--;
    if (i < 0)
        fail(m, "invalid pattern capture");
    m->cap[i].len = s - m->cap[i].at;
    const char *r = attempt(m, s, p);
    if (!r)
        m->cap[i].len = CAP_OPEN;
    return r;
}

/* %1-%9 (and %0, which is an error): the text of a closed capture again.
 * A position capture has no text and never matches. */
static const char *back_reference(matcher *m, const char *s, int digit)
{
    int i = digit - '1';
    if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_OPEN)
        fail(m, "invalid capture index");
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_POSITION || m->end - s < len || memcmp(m->cap[i].at, s, (size_t)len) != 0)
        return NULL;
    return s + len;
}

/*
 * Match the pattern p (NUL-terminated: LuaJIT stops at the first NUL) at
 * s.  The end of the match, or NULL.  Items that cannot backtrack loop
 * here; every place that may have to come back goes through attempt().
 */
static const char *match_here(matcher *m, const char *s, const char *p)
{
    for (;;) {
        charge(m, 1);
        switch (*p) {
        case '\0':
            return s;
        case '(':
            if (p[1] == ')')
                return open_capture(m, s, p + 2, CAP_POSITION);
            return open_capture(m, s, p + 1, CAP_OPEN);
        case ')':
            return close_capture(m, s, p + 1);
        case '$':
            if (p[1] == '\0')
                return s == m->end ? s : NULL;
            break; /* elsewhere '$' is an ordinary character */
        case '%':
            if (p[1] == 'b') {
                s = balanced(m, s, p + 2);
                if (!s)
                    return NULL;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                /* A frontier: the character before s (NUL at the start)
                 * is outside the set, the one at s (NUL at the end) in it. */
                p += 2;
                if (*p != '[')
                    fail(m, "missing '[' after '%f' in pattern");
                const char *ep = item_end(m, p);
                int before = s > m->subj ? (unsigned char)s[-1] : 0;
                int after = s < m->end ? (unsigned char)*s : 0;
                if (in_set(before, p, ep - 1) || !in_set(after, p, ep - 1))
                    return NULL;
                p = ep;
                continue;
            }
            if (is_digit((unsigned char)p[1])) {
                s = back_reference(m, s, (unsigned char)p[1]);
                if (!s)
                    return NULL;
                p += 2;
                continue;
            }
            break;
        }
        /* A single-character item and what may follow it. */
        const char *ep = item_end(m, p);
        int ok = s < m->end && item_accepts((unsigned char)*s, p, ep);
        switch (*ep) {
        case '?':
            if (ok) {
                const char *r = attempt(m, s + 1, ep + 1);
                if (r)
                    return r;
            }
            p = ep + 1;
            continue;
        case '*':
            return repeat_greedy(m, s, p, ep);
        case '+':
            return ok ? repeat_greedy(m, s + 1, p, ep) : NULL;
        case '-':
            return repeat_lazy(m, s, p, ep);
        default:
            if (!ok)
                return NULL;
            s++;
            p = ep;
        }
    }
}

/* Try p at every start from `from` (only there when anchored). */
static const char *search(matcher *m, const char **from, const char *p, int anchored)
{
    const char *s = *from;
    for (;;) {
        m->ncap = 0;
        m->nesting = 0;
        const char *e = attempt(m, s, p);
        if (e) {
            *from = s;
            return e;
        }
        if (anchored || s >= m->end)
            return NULL;
        s++;
    }
}

/* ---- results --------------------------------------------------------- */

/* Capture i, or the whole match [s, e) as capture 0 of a pattern that has
 * none (s NULL: find's caller wants no whole match). */
static void push_capture(matcher *m, int i, const char *s, const char *e)
{
    if (i >= m->ncap) {
        if (i != 0)
            fail(m, "invalid capture index");
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN)
        fail(m, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, (lua_Integer)(m->cap[i].at - m->subj) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].at, (size_t)len);
}

static int push_captures(matcher *m, const char *s, const char *e)
{
    int n = (m->ncap == 0 && s) ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* ---- the string functions --------------------------------------------- */

static const bound *get_bound(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* find's plain search is taken for any pattern without these bytes
 * (LuaJIT looks at the whole string, past NULs too). */
static int has_specials(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (p[i]) {
        case '^': case '$': case '*': case '+': case '?': case '.': case '(': case '[': case '%': case '-':
            return 1;
        }
    }
    return 0;
}

/*
 * init as LuaJIT reads it: an int32 converted the way x86 truncates a
 * double, so a value outside int32 (or NaN) becomes INT32_MIN, which then
 * means the start of the string.
 */
static int32_t opt_init(lua_State *L, int arg)
{
    if (lua_isnoneornil(L, arg))
        return 1;
    lua_Number n = luaL_checknumber(L, arg);
    if (n > -2147483649.0 && n < 2147483648.0)
        return (int32_t)n;
    return INT32_MIN;
}

/* Negative init counts from the end; before the start is the start and
 * past the end is the end (Lua 5.1: not "no match"). */
static size_t init_offset(int32_t init, size_t len)
{
    int64_t at = init < 0 ? (int64_t)init + (int64_t)len : (int64_t)init - 1;
    if (at < 0)
        at = 0;
    return (size_t)at > len ? len : (size_t)at;
}

static int find_or_match(lua_State *L, int find)
{
    size_t slen, plen;
    const char *s = luaL_checklstring(L, 1, &slen);
    const char *p = luaL_checklstring(L, 2, &plen);
    size_t start = init_offset(opt_init(L, 3), slen);
    if (find && (lua_toboolean(L, 4) || !has_specials(p, plen))) {
        /* memmem is linear in the worst case: no budget needed. */
        const char *hit = memmem(s + start, slen - start, p, plen);
        if (!hit) {
            lua_pushnil(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
        lua_pushinteger(L, (lua_Integer)(hit - s + (ptrdiff_t)plen));
        return 2;
    }
    matcher m;
    matcher_init(&m, L, get_bound(L), s, slen);
    int anchored = *p == '^';
    const char *from = s + start;
    const char *e = search(&m, &from, p + anchored, anchored);
    if (!e) {
        lua_pushnil(L);
        return 1;
    }
    if (!find)
        return push_captures(&m, from, e);
    lua_pushinteger(L, (lua_Integer)(from - s) + 1);
    lua_pushinteger(L, (lua_Integer)(e - s));
    return 2 + push_captures(&m, NULL, NULL);
}

static int l_find(lua_State *L) { return find_or_match(L, 1); }
static int l_match(lua_State *L) { return find_or_match(L, 0); }

/*
 * gmatch's iterator; upvalues: bound, subject, pattern, next offset.  A
 * '^' is an ordinary character here (as in Lua 5.1), and after an empty
 * match the next search starts one character further on.
 */
static int gmatch_next(lua_State *L)
{
    size_t slen;
    const char *s = lua_tolstring(L, lua_upvalueindex(2), &slen);
    const char *p = lua_tostring(L, lua_upvalueindex(3));
    size_t at = (size_t)lua_tointeger(L, lua_upvalueindex(4));
    if (at > slen)
        return 0;
    matcher m;
    matcher_init(&m, L, get_bound(L), s, slen);
    const char *from = s + at;
    const char *e = search(&m, &from, p, 0);
    if (!e)
        return 0;
    size_t next = (size_t)(e - s) + (e == from);
    lua_pushinteger(L, (lua_Integer)next);
    lua_replace(L, lua_upvalueindex(4));
    return push_captures(&m, from, e);
}

static int l_gmatch(lua_State *L)
{
    luaL_checklstring(L, 1, NULL);
    luaL_checklstring(L, 2, NULL);
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, gmatch_next, 4);
    return 1;
}

/*
 * gsub's replacement string: "%0"-"%9" are captures, '%' before anything
 * else is that character.  A '%' at the very end takes the string's
 * terminating NUL, as LuaJIT does ("x%" gives "x\0").
 */
static void add_template(matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
    size_t n;
    const char *r = lua_tolstring(m->L, 3, &n);
    for (size_t i = 0; i < n; i++) {
        if (r[i] != '%') {
            luaL_addchar(b, r[i]);
            continue;
        }
        char c = r[++i];
        if (!is_digit((unsigned char)c)) {
            luaL_addchar(b, c);
        } else if (c == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
            charge(m, (unsigned)((e - s) / 64));
        } else {
            push_capture(m, c - '1', s, e);
            luaL_addvalue(b);
        }
    }
    charge(m, (unsigned)(n / 64));
}

/* The replacement for the match [s, e), by the type of gsub's 3rd argument. */
static void add_replacement(matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    switch (lua_type(L, 3)) {
    case LUA_TFUNCTION: {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
        break;
    }
    case LUA_TTABLE:
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
        break;
    default:
        add_template(m, b, s, e);
        return;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, s, (size_t)(e - s)); /* nil or false: keep the match */
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    }
    size_t len;
    lua_tolstring(L, -1, &len);
    charge(m, (unsigned)(len / 64));
    luaL_addvalue(b);
}

static int l_gsub(lua_State *L)
{
    size_t slen;
    const char *s = luaL_checklstring(L, 1, &slen);
    const char *p = luaL_checkstring(L, 2);
    int rt = lua_type(L, 3);
    int max_n = luaL_optint(L, 4, (int)(slen + 1));
    if (!(rt == LUA_TNUMBER || rt == LUA_TSTRING || rt == LUA_TFUNCTION || rt == LUA_TTABLE))
        luaL_argerror(L, 3, "string/function/table expected");
    int anchored = *p == '^';
    p += anchored;
    matcher m;
    matcher_init(&m, L, get_bound(L), s, slen);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *at = s;
    int n = 0;
    while (n < max_n) {
        m.ncap = 0;
        m.nesting = 0;
        const char *e = attempt(&m, at, p);
        if (e) {
            n++;
            add_replacement(&m, &b, at, e);
        }
        if (e && e > at)
            at = e;
        else if (at < m.end)
            luaL_addchar(&b, *at++);
        else
            break;
        if (anchored)
            break;
    }
    luaL_addlstring(&b, at, (size_t)(m.end - at));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

/* ---- installing -------------------------------------------------------- */

static const luaL_Reg functions[] = {
    { "find", l_find }, { "match", l_match }, { "gmatch", l_gmatch }, { "gsub", l_gsub },
};

/* Set the four functions in the table at index t, sharing the bound at
 * index bi as their first upvalue. */
static void set_functions(lua_State *L, int t, int bi)
{
    for (size_t i = 0; i < sizeof functions / sizeof *functions; i++) {
        lua_pushvalue(L, bi);
        lua_pushcclosure(L, functions[i].func, 1);
        lua_setfield(L, t, functions[i].name);
    }
}

static void push_bound(lua_State *L, sy_lpattern_check_fn check, void *ud)
{
    bound *b = lua_newuserdata(L, sizeof *b);
    b->check = check;
    b->ud = ud;
}

void sy_lpattern_push(lua_State *L, sy_lpattern_check_fn check, void *ud)
{
    lua_newtable(L);
    push_bound(L, check, ud);
    set_functions(L, lua_gettop(L) - 1, lua_gettop(L));
    lua_pop(L, 1);
}

void sy_lpattern_install(lua_State *L, sy_lpattern_check_fn check, void *ud)
{
    int top = lua_gettop(L);
    push_bound(L, check, ud);
    int bi = lua_gettop(L);
    lua_getglobal(L, "string");
    int st = lua_gettop(L);
    if (lua_istable(L, st))
        set_functions(L, st, bi);
    /* In LuaJIT the metatable's __index is the string table itself; cover
     * a state where someone made it another table. */
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_getfield(L, -1, "__index");
        if (lua_istable(L, -1) && !lua_rawequal(L, -1, st))
            set_functions(L, lua_gettop(L), bi);
    }
    lua_settop(L, top);
}
