/*
 * config.c - run lua/switchyard/config.lua and copy its answer into C.
 */
#include "config.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <luajit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output/sinkhost.h"
#include "util/log.h"
#include "engine/lpattern.h"
#include "util/numfmt.h"
#include "engine/router.h"

/* A config's own code (the chunk and its setup) gets this long. */
#define SETUP_TIMEOUT_MS 5000
#define SETUP_MEMORY_LIMIT (256u << 20)

static char *dup_field(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    char *s = lua_isstring(L, -1) ? strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return s;
}

static double num_field(lua_State *L, int idx, const char *key, double dflt)
{
    lua_getfield(L, idx, key);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

static int bool_field(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Numbers in lists and strings are kept as text the way a user wrote
 * them would read back (integers without ".0"). */
static char *value_text(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        char buf[SY_FMT_DOUBLE_MAX];
        sy_fmt_double(lua_tonumber(L, idx), buf);
        return strdup(buf);
    }
    return strdup(lua_tostring(L, idx));
}

static int read_settings(lua_State *L, int idx, sy_sink_conf *sc)
{
    size_t n = 0;
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1))
        n++;
    sc->settings = calloc(n ? n : 1, sizeof *sc->settings);
    if (!sc->settings)
        return -1;
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
        sy_setting *s = &sc->settings[sc->nsettings++];
        s->key = strdup(lua_tostring(L, -2));
        switch (lua_type(L, -1)) {
        case LUA_TBOOLEAN:
            s->type = SY_SET_BOOL;
            s->boolean = lua_toboolean(L, -1);
            break;
        case LUA_TNUMBER:
            s->type = SY_SET_NUMBER;
            s->num = lua_tonumber(L, -1);
            break;
        case LUA_TTABLE: {
            s->type = SY_SET_LIST;
            int len = (int)lua_objlen(L, -1);
            s->list = calloc((size_t)len + 1, sizeof *s->list);
            for (int i = 1; i <= len; i++) {
                lua_rawgeti(L, -1, i);
                s->list[s->list_len++] = value_text(L, -1);
                lua_pop(L, 1);
            }
            break;
        }
        default:
            s->type = SY_SET_STRING;
            s->str = strdup(lua_tostring(L, -1));
            break;
        }
    }
    return 0;
}

static char **string_list(lua_State *L, int idx, const char *key, size_t *n)
{
    lua_getfield(L, idx, key);
    size_t len = lua_objlen(L, -1);
    char **v = calloc(len + 1, sizeof *v);
    for (size_t i = 0; v && i < len; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        v[i] = value_text(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    *n = v ? len : 0;
    return v;
}

/* statsd's 'bin_' + bin.toString().replace('.', '_') */
static char *bin_name(double b)
{
    char num[SY_FMT_DOUBLE_MAX], out[64];
    if (isinf(b))
        strcpy(num, "inf");
    else
        sy_fmt_double(b, num);
    char *dot = strchr(num, '.');
    if (dot)
        *dot = '_';
    snprintf(out, sizeof out, "histogram.bin_%s", num);
    return strdup(out);
}

/* limits = { { kind = "tenant", value = "t1", maxKeys = N }, ... } as
 * config.lua leaves them (checked there). */
static void read_limits(lua_State *L, int t, sy_config *c)
{
    lua_getfield(L, t, "limits");
    size_t n = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
    if (n > SY_BUDGET_MAX)
        n = SY_BUDGET_MAX;
    c->limits = calloc(n ? n : 1, sizeof *c->limits);
    for (size_t i = 0; c->limits && i < n; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        char *kind = dup_field(L, -1, "kind");
        sy_limit *l = &c->limits[c->nlimits];
        l->kind = !kind ? -1 : !strcmp(kind, "tenant") ? SY_BUDGET_TENANT
                : !strcmp(kind, "prefix") ? SY_BUDGET_PREFIX : SY_BUDGET_LISTENER;
        free(kind);
        l->value = dup_field(L, -1, "value");
        l->max_keys = (uint64_t)num_field(L, -1, "maxKeys", 0);
        if (l->kind >= 0 && l->value)
            c->nlimits++;
        else
            free(l->value);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void read_config(lua_State *L, int t, sy_config *c)
{
    lua_getfield(L, t, "listen");
    c->nlisten = lua_objlen(L, -1);
    c->listen = calloc(c->nlisten ? c->nlisten : 1, sizeof *c->listen);
    for (size_t i = 0; i < c->nlisten; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        int e = lua_gettop(L);
        sy_listen_conf *l = &c->listen[i];
        l->url = dup_field(L, e, "url");
        l->receive_buffer = (long long)num_field(L, e, "receiveBuffer", -1);
        l->threads = (long long)num_field(L, e, "threads", -1);
        l->max_line = (long long)num_field(L, e, "maxLineLength", -1);
        l->max_connections = (long long)num_field(L, e, "maxConnections", -1);
        l->idle_timeout_ms = (long long)num_field(L, e, "idleTimeout", -1);
        l->mode = (long long)num_field(L, e, "mode", -1);
        l->auth = bool_field(L, e, "auth");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    sy_agg_opts *a = &c->agg;
    sy_flush_opts *f = &c->flush;
    uint32_t fi = (uint32_t)num_field(L, t, "flushInterval", 10000);
    a->flush_interval_ms = f->flush_interval_ms = fi;
    a->sanitize = f->sanitized = bool_field(L, t, "keyNameSanitize");
    a->delete_counters = bool_field(L, t, "deleteCounters");
    a->delete_timers = bool_field(L, t, "deleteTimers");
    a->delete_sets = bool_field(L, t, "deleteSets");
    a->delete_gauges = bool_field(L, t, "deleteGauges");
    a->gauges_max_ttl = (int)num_field(L, t, "gaugesMaxTTL", 1);
    f->prefix_stats = dup_field(L, t, "prefixStats");
    a->prefix_stats = f->prefix_stats;
    a->timer_sample_limit = (uint32_t)num_field(L, t, "timerSampleLimit", 100000);
    a->set_member_limit = (uint32_t)num_field(L, t, "setMemberLimit", 100000);
    a->max_keys = (size_t)num_field(L, t, "maxKeys", 0);
    a->ts_max_age_s = (uint32_t)num_field(L, t, "dogstatsdTimestampMaxAge", 600);
    a->ts_max_ahead_s = (uint32_t)num_field(L, t, "dogstatsdTimestampMaxAhead", 60);
    read_limits(L, t, c);
    f->flush_counts = bool_field(L, t, "flush_counts");

    lua_getfield(L, t, "percentThreshold");
    f->npct = lua_objlen(L, -1);
    f->pct = calloc(f->npct ? f->npct : 1, sizeof *f->pct);
    for (size_t i = 0; i < f->npct; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        f->pct[i] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    lua_getfield(L, t, "histogram");
    f->nhist = lua_objlen(L, -1);
    f->hist = calloc(f->nhist ? f->nhist : 1, sizeof *f->hist);
    for (size_t i = 0; i < f->nhist; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        sy_histogram *h = &f->hist[i];
        h->metric = dup_field(L, -1, "metric");
        lua_getfield(L, -1, "bins");
        h->nbins = lua_objlen(L, -1);
        h->bins = calloc(h->nbins ? h->nbins : 1, sizeof *h->bins);
        h->bin_names = calloc(h->nbins ? h->nbins : 1, sizeof *h->bin_names);
        for (size_t j = 0; j < h->nbins; j++) {
            lua_rawgeti(L, -1, (int)j + 1);
            h->bins[j] = lua_tonumber(L, -1);
            h->bin_names[j] = bin_name(h->bins[j]);
            lua_pop(L, 1);
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 1);

    f->calc = string_list(L, t, "calculatedTimerMetrics", &f->ncalc);

    lua_getfield(L, t, "graphite");
    int g = lua_gettop(L);
    f->legacy = bool_field(L, g, "legacyNamespace");
    f->global_prefix = dup_field(L, g, "globalPrefix");
    f->prefix_counter = dup_field(L, g, "prefixCounter");
    f->prefix_timer = dup_field(L, g, "prefixTimer");
    f->prefix_gauge = dup_field(L, g, "prefixGauge");
    f->prefix_set = dup_field(L, g, "prefixSet");
    f->global_suffix = dup_field(L, g, "globalSuffix");
    lua_pop(L, 1);

    /* Sinks in sink_order, so sinks[i] is bit i of every route mask. */
    lua_getfield(L, t, "sink_lines");
    int sl = lua_gettop(L);
    lua_getfield(L, t, "sinks");
    int s = lua_gettop(L);
    lua_getfield(L, t, "sink_order");
    int so = lua_gettop(L);
    c->nsinks = lua_objlen(L, so);
    c->sinks = calloc(c->nsinks ? c->nsinks : 1, sizeof *c->sinks);
    for (size_t i = 0; i < c->nsinks; i++) {
        sy_sink_conf *sc = &c->sinks[i];
        lua_rawgeti(L, so, (int)i + 1);
        sc->name = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        lua_getfield(L, s, sc->name);
        sc->plugin = dup_field(L, -1, "plugin");
        read_settings(L, lua_gettop(L), sc);
        lua_pop(L, 1);
        lua_getfield(L, sl, sc->name);
        sc->line = (int)num_field(L, -1, "", 0);
        sc->setting_lines = calloc(sc->nsettings ? sc->nsettings : 1, sizeof *sc->setting_lines);
        for (size_t k = 0; sc->setting_lines && k < sc->nsettings; k++)
            sc->setting_lines[k] = (int)num_field(L, -1, sc->settings[k].key, sc->line);
        lua_pop(L, 1);
    }
    lua_pop(L, 3);

    /* dogstatsdEvents: names (checked by config.lua) to a mask of sinks */
    lua_getfield(L, t, "dogstatsdEvents");
    for (int i = 1; lua_istable(L, -1) && i <= (int)lua_objlen(L, -1); i++) {
        lua_rawgeti(L, -1, i);
        const char *n = lua_tostring(L, -1);
        for (size_t k = 0; n && k < c->nsinks && k < 64; k++)
            if (strcmp(c->sinks[k].name, n) == 0)
                c->agg.dd_sinks |= 1ull << k;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    c->mgmt_address = dup_field(L, t, "mgmt_address");
    c->mgmt_port = (int)num_field(L, t, "mgmt_port", 0);
    c->http_address = dup_field(L, t, "httpAddress");
    char *health = dup_field(L, t, "healthStatus");
    c->health_up = !health || strcmp(health, "down") != 0;
    free(health);
    lua_getfield(L, t, "traces");
    if (lua_istable(L, -1)) {
        c->traces_memcached = dup_field(L, -1, "memcached");
        c->traces_prefix = dup_field(L, -1, "prefix");
    }
    lua_pop(L, 1);
    c->lua_memory_limit = (size_t)num_field(L, t, "luaMemoryLimit", 64 << 20);
    c->lua_timeout_ms = (uint32_t)num_field(L, t, "luaTimeout", 200);
    lua_getfield(L, t, "sampleSeed");
    c->has_sample_seed = lua_isnumber(L, -1);
    c->sample_seed = (uint64_t)lua_tonumber(L, -1);
    lua_pop(L, 1);
    c->decide_ref = c->auth_ref = LUA_NOREF;
    c->route_uses_origin = bool_field(L, t, "route_uses_origin");
    lua_getfield(L, t, "decide");
    c->decide_ref = lua_isfunction(L, -1) ? luaL_ref(L, LUA_REGISTRYINDEX) : (lua_pop(L, 1), LUA_NOREF);
    lua_getfield(L, t, "authorize");
    c->auth_ref = lua_isfunction(L, -1) ? luaL_ref(L, LUA_REGISTRYINDEX) : (lua_pop(L, 1), LUA_NOREF);

    c->plugin_dir = dup_field(L, t, "pluginPath");
    c->ring_size = (size_t)num_field(L, t, "ringSize", 64 << 20);
    c->shutdown_timeout_ms = (uint32_t)num_field(L, t, "shutdownTimeout", 10000);
    char *lvl = dup_field(L, t, "logLevel");
    c->log_level = lvl ? sy_log_level_parse(lvl) : SY_INFO;
    if (c->log_level < 0)
        c->log_level = SY_INFO;
    free(lvl);
}

static int refuse(lua_State *L)
{
    return luaL_error(L, "%s is not available in a switchyard config",
                      lua_tostring(L, lua_upvalueindex(1)));
}

/* Replaces lib.name with a function that refuses to run. */
static void take_away(lua_State *L, const char *lib, const char *name)
{
    lua_getglobal(L, lib);
    if (lua_istable(L, -1)) {
        lua_pushfstring(L, "%s.%s", lib, name);
        lua_pushcclosure(L, refuse, 1);
        lua_setfield(L, -2, name);
    }
    lua_pop(L, 1);
}

sy_config *sy_config_load(const char *file, const char *lua_dir, char *err, size_t errlen)
{
    sy_config *c = NULL;
    lua_State *L = sy_lua_newstate();
    if (!L) {
        snprintf(err, errlen, "cannot create a Lua state");
        return NULL;
    }
    luaL_openlibs(L);
    /* Hooks do not run inside compiled traces: keep the JIT off so a
     * runaway loop in a config can always be stopped. */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    /* Nor inside one C call: string.find and friends backtrack for as long
     * as a hostile key makes them, so they are replaced by ones that watch
     * the same bounds (setup's here, luaTimeout's once routing). */
    sy_lpattern_install(L, sy_lua_bound_check, NULL);
    /* The bounds of every call rest on the hook and on the JIT being off:
     * a config could otherwise undo both (debug.sethook(), jit.on()) and
     * then loop for ever. */
    take_away(L, "jit", "on");
    take_away(L, "debug", "sethook");
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", lua_dir, lua_dir);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);

    lua_getglobal(L, "require");
    lua_pushstring(L, "switchyard.config");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(err, errlen, "cannot load the switchyard Lua library from %s: %s", lua_dir,
                 lua_tostring(L, -1));
        goto out;
    }
    lua_getfield(L, -1, "load");
    if (file)
        lua_pushstring(L, file);
    else
        lua_pushnil(L);
    /* The config is a program: bound its setup like any routing call. */
    if (sy_lua_bounded_call(L, 1, 2, SETUP_TIMEOUT_MS, SETUP_MEMORY_LIMIT) != 0) {
        snprintf(err, errlen, "%s: %s", file ? file : "default config", lua_tostring(L, -1));
        goto out;
    }
    if (lua_isnil(L, -2)) {
        if (sy_lua_memory_refused(L)) /* caught by config.load's own pcall */
            snprintf(err, errlen, "%s: used too much memory (over %d KiB)",
                     file ? file : "default config", (int)(SETUP_MEMORY_LIMIT / 1024));
        else
            snprintf(err, errlen, "%s", lua_tostring(L, -1));
        goto out;
    }
    lua_pop(L, 1);
    c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    c->file = file ? strdup(file) : NULL;
    read_config(L, lua_gettop(L), c);
    lua_settop(L, 0);
    if (c->decide_ref != LUA_NOREF || c->auth_ref != LUA_NOREF) {
        c->L = L; /* kept for the router */
        L = NULL;
    }
out:
    sy_lua_close(L);
    return c;
}

uint64_t sy_config_all_sinks(const sy_config *c)
{
    return c->nsinks >= 64 ? ~0ull : ((1ull << c->nsinks) - 1);
}

lua_State *sy_config_take_lua(sy_config *c)
{
    lua_State *L = c->L;
    c->L = NULL;
    return L;
}

void sy_config_free(sy_config *c)
{
    if (!c)
        return;
    sy_lua_close(c->L);
    for (size_t i = 0; i < c->nlisten; i++)
        free(c->listen[i].url);
    free(c->listen);
    for (size_t i = 0; i < c->nlimits; i++)
        free(c->limits[i].value);
    free(c->limits);
    for (size_t i = 0; i < c->nsinks; i++) {
        free(c->sinks[i].name);
        free(c->sinks[i].plugin);
        sy_settings_free(c->sinks[i].settings, c->sinks[i].nsettings);
        free(c->sinks[i].setting_lines);
    }
    free(c->sinks);
    sy_flush_opts *f = &c->flush;
    free(f->pct);
    for (size_t i = 0; i < f->nhist; i++) {
        free(f->hist[i].metric);
        free(f->hist[i].bins);
        for (size_t j = 0; j < f->hist[i].nbins; j++)
            free(f->hist[i].bin_names[j]);
        free(f->hist[i].bin_names);
    }
    free(f->hist);
    for (size_t i = 0; i < f->ncalc; i++)
        free(f->calc[i]);
    free(f->calc);
    free(f->global_prefix);
    free(f->prefix_counter);
    free(f->prefix_timer);
    free(f->prefix_gauge);
    free(f->prefix_set);
    free(f->global_suffix);
    free(f->prefix_stats);
    free(c->plugin_dir);
    free(c->mgmt_address);
    free(c->http_address);
    free(c->traces_memcached);
    free(c->traces_prefix);
    free(c->file);
    free(c);
}
