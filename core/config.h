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

#include "agg.h"
#include "flush.h"
#include "sinkhost.h"

typedef struct sy_listen_conf {
    char *url;
    /* -1 where the config leaves the listener's default */
    long long receive_buffer, threads, max_line, max_connections, idle_timeout_ms, mode;
} sy_listen_conf;

typedef struct sy_sink_conf {
    char *name;
    char *plugin;
    sy_setting *settings; /* every key of the sink's table, `plugin` included */
    size_t nsettings;
} sy_sink_conf;

typedef struct sy_config {
    char *file;            /* NULL for the built-in default */
    sy_listen_conf *listen;
    size_t nlisten;
    sy_agg_opts agg;
    sy_flush_opts flush;
    sy_sink_conf *sinks;
    size_t nsinks;
    char *plugin_dir;      /* NULL: next to the binary, else the installed one */
    size_t ring_size;
    uint32_t shutdown_timeout_ms;
    int log_level;
} sy_config;

/* Load `file` (NULL: the built-in default) with the Lua library in
 * lua_dir.  On error returns NULL with "file:line: key: problem" in err. */
sy_config *sy_config_load(const char *file, const char *lua_dir, char *err, size_t errlen);
void sy_config_free(sy_config *c);

#endif
