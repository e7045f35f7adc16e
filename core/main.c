/*
 * main.c - the switchyard daemon: command line, start-up, signals and an
 * orderly shutdown.
 *
 * Threads: one reader per datagram socket and one for all stream sockets
 * (reader.c), the engine that aggregates (engine.c), the output loop that
 * writes to the sinks (output.c), and this one, which only waits for
 * signals.  Shutdown runs in pipeline order so that nothing accepted is
 * lost: stop the readers (they queue what the kernel already holds), let
 * the engine drain the rings and make a final flush, let the output loop
 * write it and drain the sinks (bounded by shutdownTimeout).
 */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lua.h>

#include "admin/admin.h"
#include "config.h"
#include "engine/engine.h"
#include "ingest/listener.h"
#include "util/log.h"
#include "output/output.h"
#include "ingest/reader.h"
#include "engine/router.h"
#include "output/sinkhost.h"
#include "admin/status.h"
#include "tools/traces/traces.h"
#include "engine/shadow.h"
#include "output/spool.h"

#ifndef SY_VERSION
#define SY_VERSION "0.0.0"
#endif
#ifndef SY_PREFIX
#define SY_PREFIX "/usr/local"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: switchyard [-c FILE] [options]\n"
            "\n"
            "A StatsD-compatible metrics router.  Without -c it runs the built-in\n"
            "default config: UDP and TCP on 127.0.0.1:8125, each flush printed.\n"
            "\n"
            "  -c, --config FILE   run with this config (a Lua file returning a table)\n"
            "      --check FILE    check a config as start-up and a reload would (syntax,\n"
            "                      options, listeners, plugins and sink settings, checks),\n"
            "                      opening nothing, and exit\n"
            "      --dry-run       with -c: read StatsD lines on stdin and print where\n"
            "                      each value would go (sinks, name, rate, or why dropped)\n"
            "  -l, --log-level L   error, warn, info or debug (overrides the config)\n"
            "  -V, --version       print the version and exit\n"
            "\n"
            "  switchyard traces [--memcached HOST:PORT] [--prefix P] [--limit N] [show START_MS]\n"
            "                      list recent request traces stored by the memcache_traces sink\n"
            "  switchyard diff -c NEW.lua [--admin HOST:PORT]\n"
            "                      what NEW.lua would change in the running daemon's routing\n"
            "                      (a shadow reload; NEW.lua must be beside its config)\n"
            "  -h, --help          print this help and exit\n");
}

/* The directory of the running binary, so a build tree finds its own
 * plugins and Lua library with no settings. */
static void exe_dir(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0) {
        snprintf(out, cap, ".");
        return;
    }
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The environment, else beside the binary (a build tree), else relative
 * to it as installed (PREFIX/bin -> PREFIX/<relative>: installs can move),
 * else the compiled-in prefix. */
static void find_dir(char *out, size_t cap, const char *env, const char *beside, const char *relative,
                     const char *installed)
{
    const char *e = getenv(env);
    char dir[PATH_MAX];
    if (e && *e) {
        snprintf(out, cap, "%s", e);
        return;
    }
    exe_dir(dir, sizeof dir - 64);
    snprintf(out, cap, "%.*s/%s", (int)(cap - 64), dir, beside);
    if (is_dir(out))
        return;
    snprintf(out, cap, "%.*s/../%s", (int)(cap - 64), dir, relative);
    if (is_dir(out))
        return;
    snprintf(out, cap, "%s", installed);
}

/* One listen entry as a listener, not opened: the URL parsed and the
 * config's options applied.  0, or -1 with err filled. */
static int listener_from_conf(const sy_listen_conf *lc, sy_listener *l, char *err, size_t errlen)
{
    if (sy_listener_parse(lc->url, l, err, errlen) < 0)
        return -1;
    if (lc->receive_buffer > 0)
        l->rcvbuf = (size_t)lc->receive_buffer;
    if (lc->threads > 0)
        l->threads = (unsigned)lc->threads;
    if (lc->max_line > 0)
        l->max_line = (size_t)lc->max_line;
    if (lc->max_connections > 0)
        l->max_connections = (unsigned)lc->max_connections;
    if (lc->idle_timeout_ms >= 0)
        l->idle_timeout_ms = (unsigned)lc->idle_timeout_ms;
    if (lc->mode >= 0)
        l->mode = (unsigned)lc->mode;
    return 0;
}

/* Turn the config's listen entries into opened listeners. */
static int open_listeners(const sy_config *c, sy_listener *ls, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->nlisten; i++)
        if (listener_from_conf(&c->listen[i], &ls[i], err, errlen) < 0)
            return -1;
    for (size_t i = 0; i < c->nlisten; i++) {
        if (sy_listener_open(&ls[i], err, errlen) < 0) {
            for (size_t j = 0; j < i; j++)
                sy_listener_close(&ls[j]);
            return -1;
        }
    }
    return 0;
}

static int line_of_setting(const sy_sink_conf *sc, const char *key)
{
    for (size_t k = 0; k < sc->nsettings; k++)
        if (strcmp(sc->settings[k].key, key) == 0)
            return sc->setting_lines[k];
    return sc->line;
}

/* The setting a message about a sink names ("... setting 'port' ..."),
 * so the error can point at its line; -1 when it names none. */
static int setting_named_in(const sy_sink_conf *sc, const char *msg)
{
    const char *first = NULL;
    int which = -1;
    for (size_t k = 0; k < sc->nsettings; k++) {
        char quoted[160];
        snprintf(quoted, sizeof quoted, "'%s'", sc->settings[k].key);
        const char *at = strstr(msg, quoted);
        if (at && (!first || at < first)) {
            first = at;
            which = (int)k;
        }
    }
    return which;
}

/*
 * Everything start-up (or a reload) would refuse, without opening sockets,
 * connecting or starting threads: listen URLs and their options, the
 * admin addresses, plugins (loading, ABI) and every sink's settings, the
 * plugin's own checks included.  The config's own rules and checks already
 * ran when it was loaded.  --check, start-up and reloads all call this, so
 * a config --check accepts is not refused later for what it says.  0, or -1
 * with err filled.
 */
static int validate(const sy_config *c, const char *file, const char *plugin_default, char *err,
                    size_t errlen)
{
    char why[1024];
    const char *pdir = c->plugin_dir ? c->plugin_dir : plugin_default;
    if (!file)
        file = "default config";
    for (size_t i = 0; i < c->nlisten; i++) {
        sy_listener l;
        if (listener_from_conf(&c->listen[i], &l, why, sizeof why) < 0 ||
            sy_listener_check(&l, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s: listen: %s", file, why);
            return -1;
        }
    }
    if (sy_admin_check(c, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", file, why);
        return -1;
    }
    for (size_t i = 0; i < c->nsinks; i++) {
        const sy_sink_conf *sc = &c->sinks[i];
        const sy_sink_plugin *p = sy_plugin_load(pdir, sc->plugin, why, sizeof why);
        if (!p) {
            snprintf(err, errlen, "%s:%d: sinks.%s.plugin: %s", file, line_of_setting(sc, "plugin"),
                     sc->name, why);
            return -1;
        }
        /* Name the first unknown key with its line. */
        for (size_t k = 0; p->settings && k < sc->nsettings; k++) {
            if (sy_sink_check_settings(p, sc->name, &sc->settings[k], 1, why, sizeof why) < 0) {
                snprintf(err, errlen, "%s:%d: sinks.%s.%s: %s", file, sc->setting_lines[k], sc->name,
                         sc->settings[k].key, why);
                return -1;
            }
        }
        if (i < 64 && ((c->agg.dd_sinks >> i) & 1) && !sy_sink_plugin_takes_lines(p)) {
            snprintf(err, errlen, "%s: dogstatsdEvents: sink '%s' cannot take DogStatsD events: "
                     "its plugin '%s' has no write_lines (ABI 1.3)", file, sc->name, sc->plugin);
            return -1;
        }
        if (sy_sink_check(p, sc->name, sc->settings, sc->nsettings, why, sizeof why) < 0) {
            int k = setting_named_in(sc, why);
            if (k >= 0)
                snprintf(err, errlen, "%s:%d: sinks.%s.%s: %s", file, sc->setting_lines[k],
                         sc->name, sc->settings[k].key, why);
            else
                snprintf(err, errlen, "%s:%d: sinks.%s: %s", file, sc->line, sc->name, why);
            return -1;
        }
    }
    return 0;
}

/* --check */
static int check(const char *file, const char *lua_dir, const char *plugin_default)
{
    char err[2048];
    sy_config *c = sy_config_load(file, lua_dir, err, sizeof err);
    int rc = 1;
    if (!c)
        fprintf(stderr, "switchyard: %s\n", err);
    else if (validate(c, file, plugin_default, err, sizeof err) < 0)
        fprintf(stderr, "switchyard: %s\n", err);
    else {
        printf("%s: OK\n", file);
        rc = 0;
    }
    sy_config_free(c);
    sy_plugin_unload_all();
    return rc;
}

/* Sink names of a mask, comma-separated. */
static void mask_names(const sy_config *c, uint64_t mask, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->nsinks && i < 64; i++)
        if ((mask >> i) & 1)
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s", n ? "," : "", c->sinks[i].name);
    if (n == 0)
        snprintf(out, cap, "(none)");
}

/*
 * --dry-run: what the routing does with each line on stdin, through the
 * real parser and the real router.  Tokens are not checked here (there is
 * no sender); the rules see listener "" and sender "".
 */
static int dry_run(const char *file, const char *lua_dir)
{
    char err[2048];
    sy_config *c = sy_config_load(file, lua_dir, err, sizeof err);
    if (!c) {
        fprintf(stderr, "switchyard: %s\n", err);
        return 1;
    }
    int decide = c->decide_ref, auth = c->auth_ref;
    struct lua_State *L = sy_config_take_lua(c);
    sy_router *r = L ? sy_router_new(L, decide, auth, sy_config_all_sinks(c), c->lua_memory_limit,
                                     c->lua_timeout_ms) : NULL;
    static const char *const tnames[] = { [SY_SAMPLE_COUNTER] = "c", [SY_SAMPLE_TIMER] = "ms",
                                          [SY_SAMPLE_GAUGE] = "g", [SY_SAMPLE_SET] = "s" };
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    char key[SY_KEY_MAX], names[1024], raw[1024];
    while ((len = getline(&line, &cap, stdin)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        sy_line it;
        int klen = sy_parse_begin(&it, line, (size_t)len, key, c->agg.sanitize);
        if (klen == -2)
            continue;
        if (klen == SY_PARSE_TOO_LONG) {
            printf("%s\n  bad line: key longer than %d bytes, tags included (counted in "
                   "bad_lines_seen)\n", line, SY_KEY_MAX - 1);
            continue;
        }
        if (klen == SY_PARSE_EVENT || klen == SY_PARSE_SERVICE_CHECK) {
            printf("%s\n  DogStatsD %s: counted (switchyard_dogstatsd_%s_total), ", line,
                   klen == SY_PARSE_EVENT ? "event" : "service check",
                   klen == SY_PARSE_EVENT ? "events" : "service_checks");
            if (c->agg.dd_sinks) {
                mask_names(c, c->agg.dd_sinks, names, sizeof names);
                printf("forwarded as received to %s (dogstatsdEvents)\n", names);
            } else {
                printf("not forwarded (no dogstatsdEvents sinks)\n");
            }
            continue;
        }
        if (klen < 0) {
            printf("%s\n  bad line (counted in bad_lines_seen)\n", line);
            continue;
        }
        printf("%s\n", line);
        sy_sample smp;
        int rc;
        while ((rc = sy_parse_next(&it, &smp)) != 0) {
            if (rc < 0) {
                printf("  bad value (counted in bad_lines_seen)\n");
                continue;
            }
            sy_route route;
            int err_rc = sy_router_decide(r, key, (size_t)klen, tnames[smp.type], "", "", &route);
            if (!r)
                route = (sy_route){ .sinks = sy_config_all_sinks(c), .rate = 1 };
            const char *name = route.renamed ? route.key : key;
            if (route.drop) {
                printf("  %s|%s dropped: %s\n", key, tnames[smp.type], route.drop);
                continue;
            }
            mask_names(c, route.sinks, names, sizeof names);
            printf("  %s|%s -> %s as %s", key, tnames[smp.type], names, name);
            if (route.rate < 1)
                printf(", sampled at %g", route.rate);
            if (route.raw) {
                mask_names(c, route.raw, raw, sizeof raw);
                printf(", raw samples to %s", raw);
            }
            printf("%s\n", err_rc < 0 ? " (the script failed: default route)" : "");
        }
    }
    free(line);
    sy_router_free(r);
    sy_config_free(c);
    return 0;
}

/* What a reload needs; SIGHUP and the admin console share it. */
typedef struct reloader {
    const char *file, *lua_dir, *plugin_dir;
    sy_engine *engine;
    sy_admin *_Atomic admin; /* its `config` reply follows each reload */
    pthread_mutex_t lock; /* one reload at a time */
    char *fixed[4];       /* what a reload does not change, as started */
} reloader;

/* The settings a reload leaves as they are (the sockets stay open): the
 * listeners with their options, the rings, the two admin addresses.  Each
 * as text, so that a reload that changes one can say so. */
static const char *const fixed_names[4] = { "listen", "ringSize", "mgmt_address/mgmt_port",
                                            "httpAddress" };

static char *fixed_setting(const sy_config *c, int what)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    if (what == 0) {
        for (size_t i = 0; i < c->nlisten; i++) {
            const sy_listen_conf *l = &c->listen[i];
            fprintf(f, "%s %lld %lld %lld %lld %lld %lld %d\n", l->url, l->receive_buffer, l->threads,
                    l->max_line, l->max_connections, l->idle_timeout_ms, l->mode, l->auth);
        }
    } else if (what == 1) {
        fprintf(f, "%zu", c->ring_size);
    } else if (what == 2) {
        fprintf(f, "%s %d", c->mgmt_address ? c->mgmt_address : "", c->mgmt_port);
    } else {
        fprintf(f, "%s", c->http_address ? c->http_address : "");
    }
    fclose(f);
    return text;
}

/* Say which of them a reloaded config changes: they take effect at the
 * next restart, and a silent difference would look like a reload that
 * did not happen. */
static void warn_fixed(const reloader *r, const sy_config *c)
{
    for (int i = 0; i < 4; i++) {
        char *now = fixed_setting(c, i);
        if (now && r->fixed[i] && strcmp(now, r->fixed[i]) != 0)
            sy_log(SY_WARN, "reload: %s changed in %s; it is not changed by a reload and takes "
                   "effect at the next restart", fixed_names[i], r->file);
        free(now);
    }
}

/* Load and check the file beside the running config; only a config that
 * passes everything replaces it.  1 on success, else 0 and why. */
static int do_reload(void *ctx, char *why, size_t cap)
{
    reloader *r = ctx;
    char err[2048];
    if (!r->file) {
        snprintf(why, cap, "running the built-in default config: nothing to reload");
        sy_log(SY_WARN, "reload: %s", why);
        return 0;
    }
    pthread_mutex_lock(&r->lock);
    sy_log(SY_INFO, "reloading %s", r->file);
    sy_config *c = sy_config_load(r->file, r->lua_dir, err, sizeof err);
    int ok = c && validate(c, r->file, r->plugin_dir, err, sizeof err) == 0;
    if (ok) {
        warn_fixed(r, c);
        sy_admin_config_changed(atomic_load(&r->admin), c);
        sy_shadow_set_running(c);
        sy_engine_reload(r->engine, c);
        sy_status_reload_result(1, NULL);
    } else {
        sy_config_free(c);
        sy_status_reload_result(0, err);
        sy_log(SY_ERR, "reload failed, still running the old config: %s", err);
        snprintf(why, cap, "%s", err);
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

/*
 * A shadow reload's config (shadow.h), loaded and checked as a reload's.
 * Only a file in the running config's directory: whoever reaches the
 * console may have the daemon run Lua from it, so not from anywhere.
 */
static sy_config *shadow_load(void *ctx, const char *file, char *err, size_t cap)
{
    reloader *r = ctx;
    char want[PATH_MAX], got[PATH_MAX];
    if (!r->file) {
        snprintf(err, cap, "running the built-in default config: there is no config directory");
        return NULL;
    }
    if (!realpath(r->file, want) || !realpath(file, got)) {
        snprintf(err, cap, "%s: %s", file, strerror(errno));
        return NULL;
    }
    char *ws = strrchr(want, '/'), *gs = strrchr(got, '/');
    struct stat st;
    if (!ws || !gs || ws - want != gs - got || strncmp(want, got, (size_t)(ws - want)) != 0 ||
        stat(got, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, cap, "%s: a shadow config must be a file in the running config's directory "
                 "(%.*s)", file, ws ? (int)(ws - want) : 0, want);
        return NULL;
    }
    pthread_mutex_lock(&r->lock); /* not beside a reload (plugins load) */
    sy_config *c = sy_config_load(got, r->lua_dir, err, cap);
    if (c && validate(c, got, r->plugin_dir, err, cap) < 0) {
        sy_config_free(c);
        c = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    return c;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "traces") == 0)
        return sy_traces_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "diff") == 0)
        return sy_diff_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "spool") == 0)
        return sy_spool_tool(argc - 1, argv + 1);

    /*
     * Return flush-sized memory to the system once it has been sent.  A
     * flush of 1M keys queues ~100 MB of Graphite lines in 64 KiB chunks;
     * freed, they stayed in the heap (glibc raises its mmap threshold each
     * time a large block is freed, so later chunks came from the heap too)
     * and the daemon kept the flush's size for good: 219 MB for 1M idle
     * keys instead of 118.  A fixed threshold at the chunk size maps such
     * blocks on their own and unmaps them on free.
     */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);

    const char *config_file = NULL, *check_file = NULL, *level = NULL;
    int dry = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
            config_file = argv[++i];
        } else if (!strcmp(a, "--check") && i + 1 < argc) {
            check_file = argv[++i];
        } else if (!strcmp(a, "--dry-run")) {
            dry = 1;
        } else if ((!strcmp(a, "-l") || !strcmp(a, "--log-level")) && i + 1 < argc) {
            level = argv[++i];
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("switchyard %s (sink ABI %d.%d)\n", SY_VERSION, SY_SINK_ABI_MAJOR, SY_SINK_ABI_MINOR);
            return 0;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "switchyard: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    char lua_dir[PATH_MAX], plugin_dir[PATH_MAX];
    find_dir(lua_dir, sizeof lua_dir, "SWITCHYARD_LUA_DIR", "lua", "share/switchyard/lua",
             SY_PREFIX "/share/switchyard/lua");
    find_dir(plugin_dir, sizeof plugin_dir, "SWITCHYARD_PLUGIN_DIR", "plugins", "lib/switchyard/plugins",
             SY_PREFIX "/lib/switchyard/plugins");
    if (check_file)
        return check(check_file, lua_dir, plugin_dir);
    if (dry)
        return dry_run(config_file, lua_dir);

    /* Every thread inherits this mask; only this thread takes signals. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    sy_log_capture_libevent();

    char err[1024];
    int rc = 1;
    sy_listener *listeners = NULL;
    sy_readers *readers = NULL;
    sy_engine *engine = NULL;
    sy_output *output = NULL;
    sy_admin *admin = NULL;
    sy_notify notify = { .fd = -1 };
    reloader rl = { .file = config_file, .lua_dir = lua_dir, .lock = PTHREAD_MUTEX_INITIALIZER };
    size_t nopen = 0;

    sy_config *c = sy_config_load(config_file, lua_dir, err, sizeof err);
    if (!c) {
        sy_log(SY_ERR, "%s", err);
        return 1;
    }
    sy_log_level = level ? sy_log_level_parse(level) : c->log_level;
    if (sy_log_level < 0) {
        sy_log_level = SY_INFO;
        sy_log(SY_ERR, "unknown log level '%s'", level);
        goto out;
    }
    sy_log(SY_INFO, "switchyard %s starting with %s", SY_VERSION, config_file ? config_file : "the built-in default config");

    /* The same checks as --check and a reload, before anything opens: a
     * bad setting is reported with its file and line, not as a sink that
     * failed to start. */
    if (validate(c, config_file, plugin_dir, err, sizeof err) < 0) {
        sy_log(SY_ERR, "%s", err);
        goto out;
    }
    output = sy_output_new(c, c->plugin_dir ? c->plugin_dir : plugin_dir, err, sizeof err);
    if (!output) {
        sy_log(SY_ERR, "%s", err);
        goto out;
    }
    listeners = calloc(c->nlisten ? c->nlisten : 1, sizeof *listeners);
    if (!listeners || open_listeners(c, listeners, err, sizeof err) < 0) {
        sy_log(SY_ERR, "%s", listeners ? err : "out of memory");
        goto out;
    }
    nopen = c->nlisten;
    if (sy_notify_init(&notify) < 0) {
        sy_log(SY_ERR, "eventfd: %s", strerror(errno));
        goto out;
    }
    readers = sy_readers_start(listeners, nopen, c->ring_size, &notify, err, sizeof err);
    if (!readers) {
        sy_log(SY_ERR, "%s", err);
        goto out;
    }
    sy_ring **rings;
    size_t nrings = sy_readers_rings(readers, &rings);
    engine = sy_engine_new(c, rings, nrings, listeners, nopen, &notify, output);
    if (!engine) {
        sy_log(SY_ERR, "out of memory");
        goto out;
    }
    sy_output_set_sources(output, listeners, nopen, sy_engine_listen_info(engine), rings, nrings,
                          sy_engine_stats(engine));
    if (sy_engine_start(engine) < 0 || sy_output_start(output) < 0) {
        sy_log(SY_ERR, "cannot start threads");
        goto out;
    }
    for (size_t i = 0; i < nopen; i++)
        sy_log(SY_INFO, "listening on %s", listeners[i].name);
    rl.plugin_dir = c->plugin_dir ? c->plugin_dir : plugin_dir;
    rl.engine = engine;
    for (int i = 0; i < 4; i++)
        rl.fixed[i] = fixed_setting(c, i);
    sy_admin_deps ad = { .conf = c, .engine = engine, .output = output, .listeners = listeners,
                         .nlisteners = nopen, .rings = rings, .nrings = nrings,
                         .reload = config_file ? do_reload : NULL, .reload_ctx = &rl,
                         .traces_page = sy_traces_http };
    admin = sy_admin_start(&ad, err, sizeof err);
    if (!admin) {
        sy_log(SY_ERR, "%s", err);
        goto out;
    }
    atomic_store(&rl.admin, admin);
    sy_shadow_set_running(c);
    sy_shadow_setup(shadow_load, &rl, sy_engine_wake, engine);

    for (;;) {
        int sig;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            /* Signals that arrive meanwhile wait in the mask: a burst of
             * SIGHUPs collapses into one pending signal, and the engine
             * keeps only the newest config it has not applied yet. */
            char why[2048];
            do_reload(&rl, why, sizeof why);
            continue;
        }
        sy_log(SY_INFO, "%s: stopping; flushing everything received", strsignal(sig));
        break;
    }

    /* Pipeline order: nothing accepted before the signal is lost. */
    atomic_store(&rl.admin, NULL);
    sy_admin_stop(admin);
    admin = NULL;
    sy_shadow_shutdown();
    sy_readers_stop(readers);
    sy_engine_finish(engine);
    if (sy_output_join(output) < 0)
        sy_log(SY_WARN, "some sinks still had data queued at shutdownTimeout");
    sy_log(SY_INFO, "stopped");
    rc = 0;
out:
    sy_admin_stop(admin);
    sy_shadow_shutdown();
    if (readers)
        sy_readers_stop(readers);
    if (engine)
        sy_engine_finish(engine);
    if (output)
        sy_output_join(output);
    sy_readers_free(readers);
    for (size_t i = 0; i < nopen; i++)
        sy_listener_close(&listeners[i]);
    free(listeners);
    sy_engine_free(engine);
    sy_output_free(output);
    sy_notify_destroy(&notify);
    sy_config_free(c);
    for (int i = 0; i < 4; i++)
        free(rl.fixed[i]);
    sy_plugin_unload_all();
    return rc;
}
