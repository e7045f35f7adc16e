/*
 * plugin.c - finds, loads and checks sink plugins (sinkhost.h:
 * sy_plugin_load, sy_plugin_validate, sy_plugin_unload_all).  Each shared
 * object is opened once and kept until exit; sinkhost.c runs instances.
 */
#include "output/sinkhost.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/edit.h"
#include "util/log.h"

/* ------------------------------------------------------------------ */
/* Loading                                                              */
/* ------------------------------------------------------------------ */

typedef struct loaded_plugin {
    struct loaded_plugin *next;
    char *path;
    void *handle;
    const sy_sink_plugin *desc;
} loaded_plugin;

static pthread_mutex_t plugins_lock = PTHREAD_MUTEX_INITIALIZER;
static loaded_plugin *plugins;

int sy_plugin_validate(const sy_sink_plugin *p, const char *name, char *err, size_t errlen)
{
    const size_t need = offsetof(sy_sink_plugin, close) + sizeof(void *);
    if (!name)
        name = "?";
    if (!p) {
        snprintf(err, errlen, "plugin '%s' has no descriptor", name);
        return -1;
    }
    if (p->abi_major != SY_SINK_ABI_MAJOR) {
        snprintf(err, errlen,
                 "plugin '%s' was built for switchyard sink ABI %u, this switchyard speaks "
                 "ABI %d: rebuild the plugin against the installed switchyard_sink.h",
                 name, (unsigned)p->abi_major, SY_SINK_ABI_MAJOR);
        return -1;
    }
    if (p->struct_size < need) {
        snprintf(err, errlen,
                 "plugin '%s' has a %u-byte descriptor, this switchyard needs at least %zu: "
                 "rebuild the plugin against the installed switchyard_sink.h",
                 name, (unsigned)p->struct_size, need);
        return -1;
    }
    const char *missing = !p->init ? "init" : !p->write ? "write" : !p->flush ? "flush"
                        : !p->close ? "close" : NULL;
    if (missing) {
        snprintf(err, errlen, "plugin '%s' lacks the required callback '%s'", name, missing);
        return -1;
    }
    return 0;
}

/* Plugin names become file names: no '/', no leading '.', nothing odd. */
static int plugin_name_ok(const char *name)
{
    if (!name || !*name || name[0] == '.' || strlen(name) > 128)
        return 0;
    for (const char *c = name; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.')
            return 0;
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "no plugin 'graphit' in DIR (available: console, graphite); did you mean
 * 'graphite'?" */
static void missing_plugin_message(const char *dir, const char *name, char *err, size_t errlen)
{
    char *names[256];
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "no plugin '%s': cannot open the plugin directory %s: %s",
                 name, dir, strerror(errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) && n < sizeof(names) / sizeof(names[0])) {
        size_t l = strlen(e->d_name);
        if (l > 3 && strcmp(e->d_name + l - 3, ".so") == 0 && e->d_name[0] != '.') {
            names[n] = strndup(e->d_name, l - 3);
            if (names[n])
                n++;
        }
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);

    char avail[1024];
    size_t off = 0;
    const char *best = NULL;
    size_t best_d = 3; /* suggest only close matches */
    avail[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (off < sizeof(avail)) {
            int w = snprintf(avail + off, sizeof(avail) - off, "%s%s", i ? ", " : "", names[i]);
            if (w > 0)
                off += (size_t)w;
        }
        size_t dist = sy_edit_distance(name, names[i]);
        if (dist < best_d) {
            best_d = dist;
            best = names[i];
        }
    }
    if (n == 0)
        snprintf(err, errlen, "no plugin '%s' in %s (the directory has no plugins)", name, dir);
    else if (best)
        snprintf(err, errlen, "no plugin '%s' in %s (available: %s); did you mean '%s'?",
                 name, dir, avail, best);
    else
        snprintf(err, errlen, "no plugin '%s' in %s (available: %s)", name, dir, avail);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
}

const sy_sink_plugin *sy_plugin_load(const char *plugin_dir, const char *name,
                                     char *err, size_t errlen)
{
    const sy_sink_plugin *desc = NULL;
    void *handle = NULL;
    loaded_plugin *lp = NULL;
    char *path = NULL;

    if (!plugin_name_ok(name)) {
        snprintf(err, errlen,
                 "invalid plugin name '%s' (letters, digits, '_', '-' and '.' only)",
                 name ? name : "");
        return NULL;
    }
    if (!plugin_dir || !*plugin_dir)
        plugin_dir = ".";
    if (asprintf(&path, "%s/%s.so", plugin_dir, name) < 0) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    pthread_mutex_lock(&plugins_lock);
    for (loaded_plugin *it = plugins; it; it = it->next)
        if (strcmp(it->path, path) == 0) {
            desc = it->desc;
            goto out;
        }

    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            missing_plugin_message(plugin_dir, name, err, errlen);
        else
            snprintf(err, errlen, "cannot read plugin '%s' at %s: %s", name, path,
                     strerror(errno));
        goto out;
    }
    dlerror();
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        snprintf(err, errlen, "cannot load plugin '%s' from %s: %s", name, path,
                 why ? why : "unknown dlopen error");
        goto out;
    }
    const sy_sink_plugin *p = dlsym(handle, SY_SINK_SYMBOL);
    if (!p) {
        snprintf(err, errlen, "%s is not a switchyard sink plugin: it exports no '%s' symbol",
                 path, SY_SINK_SYMBOL);
        goto out;
    }
    if (sy_plugin_validate(p, name, err, errlen) != 0)
        goto out;
    lp = calloc(1, sizeof(*lp));
    if (!lp) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    lp->path = path;
    lp->handle = handle;
    lp->desc = p;
    lp->next = plugins;
    plugins = lp;
    path = NULL;
    handle = NULL;
    desc = p;
    sy_log(SY_DEBUG, "loaded sink plugin '%s' %s from %s", name,
           p->version ? p->version : "", lp->path);
out:
    pthread_mutex_unlock(&plugins_lock);
    if (handle)
        dlclose(handle);
    free(path);
    return desc;
}

void sy_plugin_unload_all(void)
{
    pthread_mutex_lock(&plugins_lock);
    while (plugins) {
        loaded_plugin *lp = plugins;
        plugins = lp->next;
        dlclose(lp->handle);
        free(lp->path);
        free(lp);
    }
    pthread_mutex_unlock(&plugins_lock);
}

