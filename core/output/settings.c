/*
 * settings.c - a sink's settings as the host keeps them: copies, lookup by
 * key, and the check of every key against what the plugin reads (with the
 * closest known key named for a misspelt one).  Apart from sinkhost.c,
 * which drives the plugins, because none of it runs after a sink starts.
 */
#include "output/sinkhost.h"
#include "output/settings.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/edit.h"
#include "output/spool.h"


static void setting_clear(sy_setting *st)
{
    free(st->key);
    free(st->str);
    if (st->list) {
        for (int i = 0; i < st->list_len; i++)
            free(st->list[i]);
        free(st->list);
    }
}

void sy_settings_free(sy_setting *s, size_t n)
{
    if (!s)
        return;
    for (size_t i = 0; i < n; i++)
        setting_clear(&s[i]);
    free(s);
}

/* Deep copy, so that the sink owns its settings whatever the config loader
 * does with its own array afterwards. */
sy_setting *sy_settings_dup(const sy_setting *s, size_t n)
{
    sy_setting *d = calloc(n ? n : 1, sizeof(*d));
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        d[i].type = s[i].type;
        d[i].num = s[i].num;
        d[i].boolean = s[i].boolean;
        d[i].key = strdup(s[i].key ? s[i].key : "");
        if (!d[i].key)
            goto fail;
        if (s[i].str && !(d[i].str = strdup(s[i].str)))
            goto fail;
        if (s[i].list_len > 0 && s[i].list) {
            d[i].list = calloc((size_t)s[i].list_len, sizeof(char *));
            if (!d[i].list)
                goto fail;
            d[i].list_len = s[i].list_len;
            for (int j = 0; j < s[i].list_len; j++)
                if (!(d[i].list[j] = strdup(s[i].list[j] ? s[i].list[j] : "")))
                    goto fail;
        }
    }
    return d;
fail:
    sy_settings_free(d, n);
    return NULL;
}

const sy_setting *sy_settings_find(const sy_setting *s, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].key && strcmp(s[i].key, key) == 0)
            return &s[i];
    return NULL;
}

const char *sy_setting_type_name(sy_setting_type t)
{
    switch (t) {
    case SY_SET_STRING: return "a string";
    case SY_SET_NUMBER: return "a number";
    case SY_SET_BOOL: return "a boolean";
    case SY_SET_LIST: return "a list";
    }
    return "an unknown type";
}

int sy_setting_is_whole(double v)
{
    return isfinite(v) && v == floor(v) && v >= -9223372036854775808.0 &&
           v < 9223372036854775808.0;
}

/* The key the plugin (or the host) knows that is closest to a misspelt
 * one, or NULL when none is close: at most two edits, and fewer edits than
 * the key has letters (so "ab" is not a hint for "db"). */
static const char *closest_key(const sy_sink_plugin *p, const char *key)
{
    static const char *const host_keys[] = { "plugin", "retryMaxMetrics", "passthrough", "spool",
                                             NULL };
    const char *best = NULL;
    size_t best_d = 3, len = strlen(key);
    for (int pass = 0; pass < 2; pass++)
        for (const char *const *k = pass ? host_keys : p->settings; k && *k; k++) {
            size_t d = sy_edit_distance(key, *k);
            if (d < best_d && d < len) {
                best_d = d;
                best = *k;
            }
        }
    return best;
}

/* Appends "a, b, c" (the plugin's declared keys) to buf. */
static void known_keys(const sy_sink_plugin *p, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (const char *const *k = p->settings; *k && off < len; k++) {
        int w = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", *k);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

int sy_sink_check_settings(const sy_sink_plugin *p, const char *instance,
                           const sy_setting *s, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const sy_setting *st = &s[i];
        if (!st->key) {
            snprintf(err, errlen, "sink '%s': a setting without a name", instance);
            return -1;
        }
        if (strcmp(st->key, "plugin") == 0) {
            if (st->type != SY_SET_STRING) {
                snprintf(err, errlen, "sink '%s': setting 'plugin' must be a string, not %s",
                         instance, sy_setting_type_name(st->type));
                return -1;
            }
            continue;
        }
        if (strcmp(st->key, "retryMaxMetrics") == 0) {
            if (st->type != SY_SET_NUMBER || !sy_setting_is_whole(st->num) || st->num < 0) {
                snprintf(err, errlen,
                         "sink '%s': setting 'retryMaxMetrics' must be a whole number >= 0",
                         instance);
                return -1;
            }
            continue;
        }
        if (strcmp(st->key, "passthrough") == 0) {
            /* read by the config: every kept sample reaches this sink raw */
            if (st->type != SY_SET_BOOL) {
                snprintf(err, errlen, "sink '%s': setting 'passthrough' must be true or false",
                         instance);
                return -1;
            }
            continue;
        }
        if (sy_spool_key(st->key))
            continue; /* the host's too: checked below */
        if (strcmp(st->key, "spool") == 0) {
            snprintf(err, errlen, "sink '%s': setting 'spool' must be a table, e.g. spool = "
                     "{ dir = \"/var/lib/switchyard/spool\", maxBytes = \"4GiB\" }", instance);
            return -1;
        }
        if (!p->settings)
            continue;
        int found = 0;
        for (const char *const *k = p->settings; *k; k++)
            if (strcmp(*k, st->key) == 0) {
                found = 1;
                break;
            }
        if (!found) {
            char known[512];
            const char *hint = closest_key(p, st->key);
            known_keys(p, known, sizeof(known));
            snprintf(err, errlen,
                     "sink '%s': unknown setting '%s' for plugin '%s'%s%s%s (known: %s%splugin, "
                     "retryMaxMetrics, passthrough, spool)",
                     instance, st->key, p->name ? p->name : "?", hint ? "; did you mean '" : "",
                     hint ? hint : "", hint ? "'?" : "", known, known[0] ? ", " : "");
            return -1;
        }
    }
    return sy_spool_keys_check(instance, s, n, err, errlen);
}

