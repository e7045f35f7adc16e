/*
 * testing.h - the core without sockets or threads, for rule specs.
 *
 * lua/switchyard/testing.lua loads build/libswitchyard.so through LuaJIT's
 * FFI and drives these functions: the same parser, router, aggregator and
 * flush code as the daemon, with time given by the caller and every sink
 * replaced by a recorder.  Plain C types only, so the FFI cdef is short.
 */
#ifndef SY_TESTING_H
#define SY_TESTING_H

#include <stddef.h>
#include <stdint.h>

typedef struct sy_test sy_test;

/* Load a config file (checks run, sinks are not opened).  lua_dir holds
 * the switchyard Lua modules.  NULL with err filled on failure. */
sy_test *sy_test_new(const char *config_file, const char *lua_dir, char *err, size_t errlen);
void sy_test_free(sy_test *t);

/* One packet (several lines allowed) as if it arrived on `listener` (a
 * listen URL of the config, or NULL for the first) from `sender` (an IP
 * address, or NULL). */
int sy_test_feed(sy_test *t, const char *data, size_t len, const char *listener, const char *sender);

/* Flush as the daemon would at `now_s` (seconds); what each sink would
 * receive replaces the previous results.  Raw (pass-through) samples
 * gathered since the last flush are included. */
int sy_test_flush(sy_test *t, int64_t now_s);

size_t sy_test_result_count(const sy_test *t);
/* Result i: the sink's name, the metric's full name and value. */
int sy_test_result(const sy_test *t, size_t i, const char **sink, const char **name, double *value);

size_t sy_test_raw_count(const sy_test *t);
/* Raw sample i: sink, name, value text, type ('c', 'g', 't', 's'), rate, raw tags. */
int sy_test_raw(const sy_test *t, size_t i, const char **sink, const char **name, const char **text,
                int *type, double *rate, const char **tags);

/* Counters: "bad_lines", "keys_too_long", "sets_estimated", "samples", "dropped" (by routes), "sampled_out",
 * "auth_rejected", "route_errors", "keys". */
double sy_test_stat(const sy_test *t, const char *name);

#endif
