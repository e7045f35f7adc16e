/* hostproxy.c - see hostproxy.h. */
#include "hostproxy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PART(h) ((hostproxy_part *)(void *)(h))
#define REAL(h) (PART(h)->hp->real)
#define HOST(h) (PART(h)->hp->host)

__attribute__((format(printf, 3, 4)))
static void hp_log(sy_host *h, int level, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    REAL(h)->log(HOST(h), level, "%s", buf);
}

static const char *hp_instance_name(sy_host *h)
{
    return REAL(h)->instance_name(HOST(h));
}

static int hp_setting_string(sy_host *h, const char *key, const char *dflt, const char **out)
{
    return REAL(h)->setting_string(HOST(h), key, dflt, out);
}

static int hp_setting_int(sy_host *h, const char *key, int64_t dflt, int64_t *out)
{
    return REAL(h)->setting_int(HOST(h), key, dflt, out);
}

static int hp_setting_number(sy_host *h, const char *key, double dflt, double *out)
{
    return REAL(h)->setting_number(HOST(h), key, dflt, out);
}

static int hp_setting_bool(sy_host *h, const char *key, int dflt, int *out)
{
    return REAL(h)->setting_bool(HOST(h), key, dflt, out);
}

static int hp_setting_list_len(sy_host *h, const char *key)
{
    return REAL(h)->setting_list_len(HOST(h), key);
}

static const char *hp_setting_list_string(sy_host *h, const char *key, int i)
{
    return REAL(h)->setting_list_string(HOST(h), key, i);
}

static sy_timer *hp_timer_new(sy_host *h, void (*cb)(void *arg), void *arg)
{
    return REAL(h)->timer_new(HOST(h), cb, arg);
}

static sy_watch *hp_watch_new(sy_host *h, int fd, void (*cb)(int fd, int events, void *arg),
                              void *arg)
{
    return REAL(h)->watch_new(HOST(h), fd, cb, arg);
}

static struct event_base *hp_event_base(sy_host *h)
{
    return REAL(h)->event_base(HOST(h));
}

static uint64_t hp_now_ms(sy_host *h)
{
    return REAL(h)->now_ms(HOST(h));
}

static uint64_t hp_monotonic_ms(sy_host *h)
{
    return REAL(h)->monotonic_ms(HOST(h));
}

static void hp_stat_add(sy_host *h, int stat, int64_t delta)
{
    REAL(h)->stat_add(HOST(h), stat, delta);
}

static void hp_stat_set(sy_host *h, int stat, int64_t value)
{
    hostproxy_part *p = PART(h);
    hostproxy *hp = p->hp;
    switch (stat) {
    case SY_STAT_CONNECTED:
        value = value ? 1 : 0;
        if (p->connected && !value)
            p->unconnected_since = hp->real->monotonic_ms(hp->host);
        hp->connected += value - p->connected;
        p->connected = value;
        value = hp->all_connected ? hp->connected == (int64_t)hp->nparts : hp->connected;
        break;
    case SY_STAT_QUEUED:
        hp->queued += value - p->queued;
        p->queued = value;
        value = hp->queued;
        break;
    case SY_STAT_QUEUED_BYTES:
        hp->queued_bytes += value - p->queued_bytes;
        p->queued_bytes = value;
        value = hp->queued_bytes;
        break;
    default:
        break;
    }
    hp->real->stat_set(hp->host, stat, value);
}

void hostproxy_init(hostproxy *hp, const sy_host_api *api, sy_host *host, int all_connected)
{
    /* timer_start/stop/free, watch_set/free, format_number and escape_text
     * take no host and are used as they are */
    size_t n = api->struct_size < sizeof(hp->api) ? api->struct_size : sizeof(hp->api);
    memset(hp, 0, sizeof(*hp));
    memcpy(&hp->api, api, n);
    hp->api.struct_size = n;
    hp->api.log = hp_log;
    hp->api.instance_name = hp_instance_name;
    hp->api.setting_string = hp_setting_string;
    hp->api.setting_int = hp_setting_int;
    hp->api.setting_number = hp_setting_number;
    hp->api.setting_bool = hp_setting_bool;
    hp->api.setting_list_len = hp_setting_list_len;
    hp->api.setting_list_string = hp_setting_list_string;
    hp->api.timer_new = hp_timer_new;
    hp->api.watch_new = hp_watch_new;
    hp->api.event_base = hp_event_base;
    hp->api.now_ms = hp_now_ms;
    hp->api.monotonic_ms = hp_monotonic_ms;
    hp->api.stat_add = hp_stat_add;
    hp->api.stat_set = hp_stat_set;
    hp->real = api;
    hp->host = host;
    hp->all_connected = all_connected;
}

void hostproxy_part_init(hostproxy *hp, hostproxy_part *p)
{
    memset(p, 0, sizeof(*p));
    p->hp = hp;
    p->unconnected_since = hp->real->monotonic_ms(hp->host);
    hp->nparts++;
}
