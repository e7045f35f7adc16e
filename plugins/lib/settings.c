/* settings.c - see settings.h. */
#include "settings.h"

#include <stdio.h>

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
