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
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "engine.h"
#include "listener.h"
#include "log.h"
#include "output.h"
#include "reader.h"
#include "sinkhost.h"

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
            "      --check FILE    check a config (syntax, options, plugins) and exit\n"
            "  -l, --log-level L   error, warn, info or debug (overrides the config)\n"
            "  -V, --version       print the version and exit\n"
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

static void find_dir(char *out, size_t cap, const char *env, const char *beside, const char *installed)
{
    const char *e = getenv(env);
    char dir[PATH_MAX];
    if (e && *e) {
        snprintf(out, cap, "%s", e);
        return;
    }
    exe_dir(dir, sizeof dir - 32);
    snprintf(out, cap, "%.*s/%s", (int)(cap - 32), dir, beside);
    if (!is_dir(out))
        snprintf(out, cap, "%s", installed);
}

/* Turn the config's listen entries into opened listeners. */
static int open_listeners(const sy_config *c, sy_listener *ls, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->nlisten; i++) {
        const sy_listen_conf *lc = &c->listen[i];
        sy_listener *l = &ls[i];
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
    }
    for (size_t i = 0; i < c->nlisten; i++) {
        if (sy_listener_open(&ls[i], err, errlen) < 0) {
            for (size_t j = 0; j < i; j++)
                sy_listener_close(&ls[j]);
            return -1;
        }
    }
    return 0;
}

/* --check: everything start-up would refuse, without opening sockets. */
static int check(const char *file, const char *lua_dir, const char *plugin_default)
{
    char err[1024];
    sy_config *c = sy_config_load(file, lua_dir, err, sizeof err);
    if (!c) {
        fprintf(stderr, "switchyard: %s\n", err);
        return 1;
    }
    int rc = 0;
    const char *pdir = c->plugin_dir ? c->plugin_dir : plugin_default;
    for (size_t i = 0; i < c->nlisten && rc == 0; i++) {
        sy_listener l;
        if (sy_listener_parse(c->listen[i].url, &l, err, sizeof err) < 0) {
            fprintf(stderr, "switchyard: %s: listen: %s\n", file, err);
            rc = 1;
        }
    }
    for (size_t i = 0; i < c->nsinks && rc == 0; i++) {
        const sy_sink_conf *sc = &c->sinks[i];
        const sy_sink_plugin *p = sy_plugin_load(pdir, sc->plugin, err, sizeof err);
        if (!p || sy_sink_check_settings(p, sc->name, sc->settings, sc->nsettings, err, sizeof err) < 0) {
            fprintf(stderr, "switchyard: %s: sinks.%s: %s\n", file, sc->name, err);
            rc = 1;
        }
    }
    if (rc == 0)
        printf("%s: OK\n", file);
    sy_config_free(c);
    sy_plugin_unload_all();
    return rc;
}

int main(int argc, char **argv)
{
    const char *config_file = NULL, *check_file = NULL, *level = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
            config_file = argv[++i];
        } else if (!strcmp(a, "--check") && i + 1 < argc) {
            check_file = argv[++i];
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
    find_dir(lua_dir, sizeof lua_dir, "SWITCHYARD_LUA_DIR", "lua", SY_PREFIX "/share/switchyard/lua");
    find_dir(plugin_dir, sizeof plugin_dir, "SWITCHYARD_PLUGIN_DIR", "plugins",
             SY_PREFIX "/lib/switchyard/plugins");
    if (check_file)
        return check(check_file, lua_dir, plugin_dir);

    /* Every thread inherits this mask; only this thread takes signals. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[1024];
    int rc = 1;
    sy_listener *listeners = NULL;
    sy_readers *readers = NULL;
    sy_engine *engine = NULL;
    sy_output *output = NULL;
    sy_notify notify = { .fd = -1 };
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
    engine = sy_engine_new(&c->agg, rings, nrings, &notify, output);
    if (!engine) {
        sy_log(SY_ERR, "out of memory");
        goto out;
    }
    sy_output_set_sources(output, listeners, nopen, sy_engine_stats(engine));
    if (sy_engine_start(engine) < 0 || sy_output_start(output) < 0) {
        sy_log(SY_ERR, "cannot start threads");
        goto out;
    }
    for (size_t i = 0; i < nopen; i++)
        sy_log(SY_INFO, "listening on %s", listeners[i].name);

    for (;;) {
        int sig;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            sy_log(SY_WARN, "SIGHUP: reloading the config is not supported yet; still running the old one");
            continue;
        }
        sy_log(SY_INFO, "%s: stopping; flushing everything received", strsignal(sig));
        break;
    }

    /* Pipeline order: nothing accepted before the signal is lost. */
    sy_readers_stop(readers);
    sy_engine_finish(engine);
    if (sy_output_join(output) < 0)
        sy_log(SY_WARN, "some sinks still had data queued at shutdownTimeout");
    sy_log(SY_INFO, "stopped");
    rc = 0;
out:
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
    sy_plugin_unload_all();
    return rc;
}
