/*
 * fuzz_config.c - a config file, as the daemon loads it, and then used.
 *
 * Each input is written to a file ($TMPDIR, removed right after) and given
 * to sy_config_load, as `switchyard -c`, `--check` and a reload do.  Lua
 * errors of every kind are fine (the loader must only answer NULL and a
 * message); what must not happen is a crash, a sanitizer report (UBSan
 * included: numbers from the config are converted to C integers), or a
 * hang or a heap beyond the loader's own bounds (5 s and 256 MiB of setup;
 * run.sh sets libFuzzer's -timeout and -rss_limit_mb above them).
 *
 * A config that loads is then used the way the engine uses one (engine.c,
 * testing.c): its routing and auth functions become a router, an
 * aggregator gets its options, and a fixed set of packets (every type,
 * tags, rates, tokens, names its routes may rename) arrives on each of its
 * listeners from two senders, then two flushes run through its graphite
 * naming, percentiles and histograms.  The router's bounds are capped at
 * 100 ms and 64 MiB per call, whatever the config asks, so one slow route
 * cannot stall the fuzzer.
 *
 * The Lua directory given to the loader is tests/fuzz/lua, whose
 * switchyard/config.lua runs the real one with the parts of the standard
 * library that reach outside the process (os.exit, os.execute, writing
 * files, io.popen, the FFI, ...) taken away.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/agg.h"
#include "config.h"
#include "output/flush.h"
#include "fuzz_common.h"
#include "util/log.h"
#include "engine/router.h"

#define ROUTER_TIMEOUT_MS 100
#define ROUTER_MEMORY (64u << 20)

static char tmpdir[4096], lua_dir[4096];

static const char packet[] =
    "api.requests:1|c\n"
    "api.requests:2|c|@0.5\n"
    "db.query:12|ms|@0.1\n"
    "db.query:3|ms:7|ms:1e3|h:4|d\n"
    "queue.depth:42|g\nqueue.depth:+3|g\nqueue.depth:-1|g\n"
    "users:alice|s\nusers:bob|s\n"
    "api.req:1|c|#env:prod,region:eu\n"
    "api.latency:120|ms|#trace:9f2c,root\n"
    "legacy.db.query:3|c\n"
    "debug.x:1|c\n"
    "s3cret.metric.name:1|c\n"
    "tenant1.api.x:5|ms\n"
    "open.a.b:1|c\n"
    "ops.host.lat:3|ms\n"
    "stats.counters.x:1|c\n"
    "statsd.bad_lines_seen:1|c\n"
    "x:1|q\n"
    ":1|c\n"
    "a b/c\xc2\xa0" "d:1|c\r\n";

/* The engine's sinks, replaced by a count. */
static void emit(void *ctx, const sy_metric_batch *b, uint64_t sinks)
{
    (void)sinks;
    for (size_t i = 0; i < b->count; i++)
        /* NUL-terminated, as the sink ABI says (a config's prefixes and
         * namespaces may hold NULs of their own, so strlen can be less). */
        FUZZ_CHECK(b->metrics[i].name && b->metrics[i].name[b->metrics[i].name_len] == '\0' &&
                   strlen(b->metrics[i].name) <= b->metrics[i].name_len,
                   "metric %zu: name length %u", i, b->metrics[i].name_len);
    *(size_t *)ctx += b->count;
}

static void use(sy_config *c)
{
    int decide = c->decide_ref, auth = c->auth_ref;
    struct lua_State *L = sy_config_take_lua(c);
    size_t mem = c->lua_memory_limit < ROUTER_MEMORY ? c->lua_memory_limit : ROUTER_MEMORY;
    uint32_t ms = c->lua_timeout_ms < ROUTER_TIMEOUT_MS ? c->lua_timeout_ms : ROUTER_TIMEOUT_MS;
    sy_router *router = L ? sy_router_new(L, decide, auth, sy_config_all_sinks(c), mem, ms) : NULL;
    sy_agg *agg = sy_agg_new(&c->agg);
    sy_flusher *fl = sy_flusher_new(&c->flush);
    size_t nl = c->nlisten ? c->nlisten : 1;
    sy_listen_info *linfo = calloc(nl, sizeof *linfo);
    FUZZ_CHECK(agg && fl && linfo, "out of memory setting up");
    for (size_t i = 0; i < c->nlisten; i++) {
        linfo[i].name = c->listen[i].url;
        linfo[i].auth = c->listen[i].auth;
    }
    sy_agg_set_routing(agg, router, sy_config_all_sinks(c), c->route_uses_origin, linfo, c->nlisten);
    sy_agg_set_sample_seed(agg, c->has_sample_seed ? c->sample_seed : 1);

    for (size_t i = 0; i < nl && i < 4; i++) {
        for (int s = 0; s < 2; s++) {
            sy_origin o;
            memset(&o, 0, sizeof o);
            o.listener = (uint16_t)i;
            o.family = 2; /* AF_INET */
            o.addr[0] = s ? 10 : 127;
            o.addr[3] = 1;
            char *p = fuzz_dup(packet, sizeof packet - 1);
            sy_agg_feed(agg, p, sizeof packet - 1, &o);
            free(p);
        }
    }
    for (int round = 0; round < 2; round++) {
        sy_snapshot *s = sy_agg_snapshot(agg, 1700000000 + 10 * round);
        FUZZ_CHECK(s, "no snapshot");
        size_t n = 0;
        sy_flush_result res;
        sy_flusher_run(fl, s, NULL, 0, emit, &n, &res);
        FUZZ_CHECK(n == res.metrics, "%zu metrics emitted, the flush says %zu", n, res.metrics);
        sy_snapshot_free(s);
        sy_raw_batch_free(sy_agg_take_raw(agg));
    }
    sy_agg_free(agg);
    sy_flusher_free(fl);
    sy_router_free(router);
    free(linfo);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sy_log_level = SY_ERR;
    const char *tmp = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s", tmp && *tmp ? tmp : "/tmp");
    snprintf(lua_dir, sizeof lua_dir, "%s/tests/fuzz/lua", fuzz_src_root());
    return 0;
}

/* Each input is a file of its own, removed as soon as it is loaded:
 * libFuzzer leaves with _Exit, so nothing could clean up after it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char file[4200];
    snprintf(file, sizeof file, "%s/sy-fuzz-config-XXXXXX.lua", tmpdir);
    int fd = mkstemps(file, 4);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        fprintf(stderr, "fuzz_config: cannot write %s: %s\n", file, strerror(errno));
        abort();
    }
    char err[1024];
    err[0] = '\0';
    sy_config *c = sy_config_load(file, lua_dir, err, sizeof err);
    unlink(file);
    if (!c) {
        FUZZ_CHECK(err[0] != '\0', "a refused config without a message");
        return 0;
    }
    use(c);
    sy_config_free(c);
    return 0;
}
