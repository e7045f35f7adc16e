/* settings.c - see settings.h. */
#include "settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int int_setting(const sy_host_api *api, sy_host *host, const char *key, int64_t dflt,
                int64_t lo, int64_t hi, int64_t *out, char *err, size_t errlen)
{
    if (api->setting_int(host, key, dflt, out) < 0) {
        snprintf(err, errlen, "setting '%s' must be a whole number", key);
        return -1;
    }
    if (*out < lo || *out > hi) {
        snprintf(err, errlen, "setting '%s' is %lld, it must be between %lld and %lld", key,
                 (long long)*out, (long long)lo, (long long)hi);
        return -1;
    }
    return 0;
}

int reconnect_settings_read(const sy_host_api *api, sy_host *host, reconnect_settings *out,
                            char *err, size_t errlen)
{
    int64_t rmin, rmax, cto;
    if (int_setting(api, host, "reconnectMinMs", 100, 1, 3600000, &rmin, err, errlen) ||
        int_setting(api, host, "reconnectMaxMs", 30000, 1, 3600000, &rmax, err, errlen) ||
        int_setting(api, host, "connectTimeoutMs", 5000, 1, 3600000, &cto, err, errlen))
        return -1;
    if (rmax < rmin) {
        snprintf(err, errlen, "setting 'reconnectMaxMs' is %lld, it must not be below "
                 "reconnectMinMs (%lld)", (long long)rmax, (long long)rmin);
        return -1;
    }
    out->min_ms = (uint64_t)rmin;
    out->max_ms = (uint64_t)rmax;
    out->connect_timeout_ms = (uint64_t)cto;
    return 0;
}

int destinations_read(const sy_host_api *api, sy_host *host, int default_port, int max,
                      const char *form, char ***out, char *err, size_t errlen)
{
    const char *addr, *one = NULL;
    int64_t port;
    int has_host, has_port, n;

    has_host = api->setting_string(host, "host", "127.0.0.1", &addr);
    if (has_host < 0) {
        snprintf(err, errlen, "setting 'host' must be a string");
        return -1;
    }
    has_port = api->setting_int(host, "port", default_port, &port);
    if (has_port < 0) {
        snprintf(err, errlen, "setting 'port' must be a whole number");
        return -1;
    }
    if (port < 1 || port > 65535) {
        snprintf(err, errlen, "setting 'port' is %lld, it must be between 1 and 65535",
                 (long long)port);
        return -1;
    }
    n = api->setting_list_len(host, "destinations");
    if (n < 0) {
        int rc = api->setting_string(host, "destinations", NULL, &one);
        if (rc < 0) {
            snprintf(err, errlen, "setting 'destinations' must be a list of %s strings, or "
                     "one such string", form);
            return -1;
        }
        n = rc == 0 ? 1 : 0;
    }
    if (n > 0 || one) {
        if (has_host == 0 || has_port == 0) {
            snprintf(err, errlen, "setting 'destinations' and setting '%s' are both given: "
                     "use host and port for one destination, or destinations",
                     has_host == 0 ? "host" : "port");
            return -1;
        }
    } else if (n == 0 && api->setting_list_len(host, "destinations") == 0) {
        snprintf(err, errlen, "setting 'destinations' is an empty list");
        return -1;
    }
    if (n > max) {
        snprintf(err, errlen, "setting 'destinations' lists %d destinations, at most %d "
                 "are allowed", n, max);
        return -1;
    }
    if (n == 0) {
        if (!*addr) {
            snprintf(err, errlen, "setting 'host' is empty");
            return -1;
        }
        n = 1;
    }
    char **list = calloc((size_t)n, sizeof(*list));
    if (!list) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char buf[300];
        const char *t;
        if (one) {
            t = one;
        } else if (api->setting_list_len(host, "destinations") > 0) {
            t = api->setting_list_string(host, "destinations", i);
            if (!t) {
                snprintf(err, errlen, "setting 'destinations': entry %d is not a %s string",
                         i + 1, form);
                goto fail;
            }
        } else {
            snprintf(buf, sizeof(buf), strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, (int)port);
            t = buf;
        }
        if (!(list[i] = strdup(t))) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(list[j], list[i]) == 0) {
                snprintf(err, errlen, "setting 'destinations' lists '%s' twice", list[i]);
                i++;
                n = i;
                goto fail;
            }
    }
    *out = list;
    return n;
fail:
    destinations_free(list, n);
    return -1;
}

void destinations_free(char **list, int n)
{
    if (!list)
        return;
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}
