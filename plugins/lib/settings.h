/*
 * settings.h - reading a plugin's settings, shared by the built-in sinks.
 */
#ifndef SY_PLUGIN_SETTINGS_H
#define SY_PLUGIN_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "switchyard_sink.h"

/* Reads a whole-number setting (dflt when absent) and checks it lies in
 * [lo, hi]; 0, or -1 with a message naming the key in err. */
int int_setting(const sy_host_api *api, sy_host *host, const char *key, int64_t dflt,
                int64_t lo, int64_t hi, int64_t *out, char *err, size_t errlen);

/* The reconnect settings every client with a connection to keep shares:
 * reconnectMinMs (default 100), reconnectMaxMs (30000) and
 * connectTimeoutMs (5000), each from 1 ms to an hour, and
 * reconnectMaxMs not below reconnectMinMs. */
typedef struct reconnect_settings {
    uint64_t min_ms, max_ms, connect_timeout_ms;
} reconnect_settings;

/* 0, or -1 with a message naming the key in err. */
int reconnect_settings_read(const sy_host_api *api, sy_host *host, reconnect_settings *out,
                            char *err, size_t errlen);

/* The destinations of a sink that sends to one or several: the setting
 * `destinations`, a list of strings or one string, or else host (default
 * 127.0.0.1) and port (default_port) as one "HOST:PORT" (an IPv6 address
 * in brackets).  Refused: both given, an empty list, more than max, an
 * entry that is not a string, the same entry twice, an empty host.  form
 * names an entry's shape in the messages ("\"HOST:PORT\"").  The count,
 * at least 1, with the entries (copies) in *out for destinations_free;
 * or -1 with a message naming the key in err.  Entries are not parsed. */
int destinations_read(const sy_host_api *api, sy_host *host, int default_port, int max,
                      const char *form, char ***out, char *err, size_t errlen);
void destinations_free(char **list, int n);

#endif
