/*
 * config.h - the daemon's settings, read from a Lua config file.
 *
 * lua/switchyard/config.lua checks the user's table and fills in every
 * default (so the rules live in one readable place); this module copies
 * the result into plain C structs that the threads read without Lua.
 */
#ifndef SY_CONFIG_H
#define SY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "engine/agg.h"    /* sy_agg_opts, held by value */
#include "output/flush.h"   /* sy_flush_opts, held by value */

struct sy_setting;
#include "engine/budget.h"

typedef struct sy_listen_conf {
    char *url;
    /* -1 where the config leaves the listener's default */
    long long receive_buffer, threads, max_line, max_connections, idle_timeout_ms, mode;
    int auth;              /* lines must start with a token */
} sy_listen_conf;

typedef struct sy_sink_conf {
    char *name;
    char *plugin;
    struct sy_setting *settings; /* every key of the sink's table, `plugin` included */
    size_t nsettings;
    int line;             /* where the sink is written in the file (0: unknown) */
    int *setting_lines;   /* per setting */
} sy_sink_conf;

typedef struct sy_config {
    char *file;            /* NULL for the built-in default */
    sy_listen_conf *listen;
    size_t nlisten;
    sy_agg_opts agg;
    sy_limit *limits;      /* series budgets (`limits`) */
    size_t nlimits;
    sy_flush_opts flush;
    sy_sink_conf *sinks;
    size_t nsinks;
    char *plugin_dir;      /* NULL: next to the binary, else the installed one */
    size_t ring_size;
    uint32_t shutdown_timeout_ms;
    int log_level;

    /* Routing: the config's Lua state, kept when it defines routes, route
     * or auth (NULL otherwise: no Lua on the hot path at all).  The engine's
     * router takes it over (sy_config_take_lua). */
    struct lua_State *L;
    int decide_ref, auth_ref;
    int route_uses_origin;  /* the rules look at the listener or sender */
    size_t lua_memory_limit;
    uint32_t lua_timeout_ms;
    int has_sample_seed;
    uint64_t sample_seed;

    /* admin */
    char *mgmt_address;    /* statsd's management console */
    int mgmt_port;         /* 0: off */
    char *http_address;    /* HOST:PORT for /health, /metrics, /traces; NULL: off */
    int health_up;
    char *traces_memcached;
    char *traces_prefix;
} sy_config;

/* Load `file` (NULL: the built-in default) with the Lua library in
 * lua_dir.  On error returns NULL with "file:line: key: problem" in err. */
sy_config *sy_config_load(const char *file, const char *lua_dir, char *err, size_t errlen);
void sy_config_free(sy_config *c);

/* The mask of every sink: the default route. */
uint64_t sy_config_all_sinks(const sy_config *c);

/* Hand the Lua state to the caller (the router); the config keeps none. */
struct lua_State *sy_config_take_lua(sy_config *c);

#endif
