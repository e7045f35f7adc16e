/*
 * sumsink.c - a Graphite plaintext sink that adds up what arrives.
 *
 *   sumsink [--port PORT] [--gap-ms MS]
 *
 * Listens on 127.0.0.1 (PORT 0, the default, takes a free port) for any
 * number of connections (statsd opens one per flush, switchyard keeps one),
 * and for each line `name value ts`:
 *
 *   stats.counters.G.<rest>.count   adds value to group G's "counters"
 *   stats.timers.G.<rest>.count     adds value to group G's "timers"
 *   stats.sets.G.<rest>.count       adds value to group G's "sets": with
 *                                   members never repeated across
 *                                   flushes, the members that arrived
 *   stats.gauges.G.<rest>           keeps the last value per name; the
 *                                   group reports how many names and the
 *                                   sum of their last values
 *   stats.<anything else but counters/timers/gauges/sets>, and the
 *   counters of group "statsd"      are remembered by name (last value,
 *                                   sum, count and largest value): the
 *                                   daemons' own metrics
 *
 * Graphite tags after the name (`name;tag=v`, where switchyard puts the
 * DogStatsD tags) are ignored for the `.count` test and the group.
 *
 * G is the first part of the key, so a load generator's --key-prefix names
 * a group and several streams can be told apart.  Arrivals are grouped into
 * bursts (a read more than --gap-ms after the previous one starts a new
 * burst), with their monotonic and wall-clock start and end: one burst is
 * one flush.
 *
 * stdout: {"listening": PORT} once bound.  A connection whose first line is
 * `#stats` gets the totals as one JSON object and is closed; SIGTERM/SIGINT
 * print the same object on stdout and end the sink.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256
#define CONN_BUF (1u << 20)
#define MAX_GROUPS 64
#define MAX_WATCH 2048
#define NAME_MAX_LEN 200

typedef struct group {
    char name[64];
    double counters, timers, sets;
    uint64_t counter_lines, timer_lines, set_lines, gauge_lines;
} group;

/* The last value of one gauge, in an open-addressing table by name. */
typedef struct gauge {
    char *name;                  /* NULL: free slot */
    size_t len;
    group *g;
    double last;
} gauge;

typedef struct watch {
    char name[NAME_MAX_LEN];
    double last, sum, max;
    uint64_t n;
} watch;

typedef struct burst {
    double m0, m1, r0, r1;       /* monotonic / wall clock of first and last read */
    uint64_t lines, bytes;
} burst;

typedef struct conn {
    int fd;
    size_t len;
    bool first_line_seen;
    bool control;
    char *buf;
} conn;

static volatile sig_atomic_t stop_sig;
static group groups[MAX_GROUPS];
static size_t ngroups;
static watch watches[MAX_WATCH];
static size_t nwatches;
static burst *bursts;
static size_t nbursts, bursts_cap;
static uint64_t total_lines, total_bytes, bad_lines, connections, dropped_watches;
static double gap_s = 0.2;
static gauge *gauges;
static size_t ngauges, gauges_cap;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double real_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_sig = 1;
}

static group *group_get(const char *name, size_t len)
{
    for (size_t i = 0; i < ngroups; i++)
        if (strlen(groups[i].name) == len && !memcmp(groups[i].name, name, len))
            return &groups[i];
    if (ngroups == MAX_GROUPS || len >= sizeof groups[0].name)
        return NULL;
    group *g = &groups[ngroups++];
    memcpy(g->name, name, len);
    g->name[len] = '\0';
    return g;
}

static void watch_add(const char *name, size_t len, double v)
{
    if (len >= NAME_MAX_LEN)
        return;
    for (size_t i = 0; i < nwatches; i++) {
        if (!strncmp(watches[i].name, name, len) && watches[i].name[len] == '\0') {
            watches[i].last = v;
            watches[i].sum += v;
            if (v > watches[i].max)
                watches[i].max = v;
            watches[i].n++;
            return;
        }
    }
    if (nwatches == MAX_WATCH) {
        dropped_watches++;
        return;
    }
    watch *w = &watches[nwatches++];
    memcpy(w->name, name, len);
    w->name[len] = '\0';
    w->last = w->sum = w->max = v;
    w->n = 1;
}

static uint64_t hash_name(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static gauge *gauge_slot(gauge *table, size_t cap, const char *name, size_t len)
{
    size_t i = (size_t)hash_name(name, len) & (cap - 1);
    while (table[i].name && (table[i].len != len || memcmp(table[i].name, name, len)))
        i = (i + 1) & (cap - 1);
    return &table[i];
}

/* Remember the last value of gauge `name` (of group g). */
static void gauge_set(group *g, const char *name, size_t len, double v)
{
    if ((ngauges + 1) * 2 > gauges_cap) {
        size_t cap = gauges_cap ? gauges_cap * 2 : 1024;
        gauge *t = calloc(cap, sizeof *t);
        if (!t) {
            fprintf(stderr, "sumsink: out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < gauges_cap; i++)
            if (gauges[i].name)
                *gauge_slot(t, cap, gauges[i].name, gauges[i].len) = gauges[i];
        free(gauges);
        gauges = t;
        gauges_cap = cap;
    }
    gauge *s = gauge_slot(gauges, gauges_cap, name, len);
    if (!s->name) {
        s->name = malloc(len);
        if (!s->name) {
            fprintf(stderr, "sumsink: out of memory\n");
            exit(1);
        }
        memcpy(s->name, name, len);
        s->len = len;
        s->g = g;
        ngauges++;
    }
    s->last = v;
}

static bool starts(const char *p, size_t len, const char *lit, size_t litlen)
{
    return len >= litlen && !memcmp(p, lit, litlen);
}

#define LIT(s) s, sizeof(s) - 1

/* Add the key's `.count` under its group: name is "stats.<kind>.G.rest.count"
 * with `skip` the length of "stats.<kind>.". */
static group *count_group(const char *name, size_t len, size_t skip)
{
    if (len < skip + 7 || memcmp(name + len - 6, ".count", 6) != 0)
        return NULL;
    const char *g = name + skip;
    const char *dot = memchr(g, '.', len - skip - 6);
    if (!dot)
        return NULL;
    return group_get(g, (size_t)(dot - g));
}

static void take_line(const char *p, size_t len)
{
    total_lines++;
    const char *sp = memchr(p, ' ', len);
    if (!sp) {
        bad_lines++;
        return;
    }
    size_t nlen = (size_t)(sp - p);
    char num[64];
    const char *v = sp + 1;
    const char *vend = memchr(v, ' ', len - nlen - 1);
    size_t vlen = vend ? (size_t)(vend - v) : len - nlen - 1;
    if (vlen == 0 || vlen >= sizeof num) {
        bad_lines++;
        return;
    }
    memcpy(num, v, vlen);
    num[vlen] = '\0';
    char *end;
    double value = strtod(num, &end);
    if (*end) {
        bad_lines++;
        return;
    }
    group *g;
    /* Graphite tags after the name do not change what the line counts. */
    const char *semi = memchr(p, ';', nlen);
    size_t full_len = nlen;
    if (semi)
        nlen = (size_t)(semi - p);
    if (starts(p, nlen, LIT("stats.counters."))) {
        if ((g = count_group(p, nlen, sizeof "stats.counters." - 1))) {
            g->counters += value;
            g->counter_lines++;
            if (!strcmp(g->name, "statsd"))
                watch_add(p, nlen, value); /* packets_received, bad_lines_seen, ... */
        }
    } else if (starts(p, nlen, LIT("stats.timers."))) {
        if ((g = count_group(p, nlen, sizeof "stats.timers." - 1))) {
            g->timers += value;
            g->timer_lines++;
        }
    } else if (starts(p, nlen, LIT("stats.sets."))) {
        if ((g = count_group(p, nlen, sizeof "stats.sets." - 1))) {
            g->sets += value;
            g->set_lines++;
        }
    } else if (starts(p, nlen, LIT("stats.gauges."))) {
        const char *gname = p + sizeof "stats.gauges." - 1;
        const char *dot = memchr(gname, '.', nlen - (sizeof "stats.gauges." - 1));
        if (dot && (g = group_get(gname, (size_t)(dot - gname)))) {
            g->gauge_lines++;
            gauge_set(g, p, full_len, value);
        }
    } else {
        watch_add(p, full_len, value);
    }
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

static void report(FILE *f)
{
    fprintf(f, "{\"lines\":%llu,\"bytes\":%llu,\"bad_lines\":%llu,\"connections\":%llu,"
               "\"now\":%.6f,\"now_real\":%.6f,\"groups\":{",
            (unsigned long long)total_lines, (unsigned long long)total_bytes,
            (unsigned long long)bad_lines, (unsigned long long)connections, mono_s(), real_s());
    for (size_t i = 0; i < ngroups; i++) {
        const group *g = &groups[i];
        /* Gauge values are whole numbers here (the load generator's); their
         * sum is exact in 64 bits where a double's would round. */
        uint64_t gauge_keys = 0, gauge_sum = 0;
        for (size_t j = 0; j < gauges_cap; j++) {
            if (gauges[j].name && gauges[j].g == g) {
                gauge_keys++;
                gauge_sum += gauges[j].last > 0 ? (uint64_t)gauges[j].last : 0;
            }
        }
        fprintf(f, "%s", i ? "," : "");
        json_str(f, g->name);
        fprintf(f, ":{\"counters\":%.17g,\"timers\":%.17g,\"sets\":%.17g,\"counter_lines\":%llu,"
                   "\"timer_lines\":%llu,\"set_lines\":%llu,\"gauge_lines\":%llu,\"gauge_keys\":%llu,"
                   "\"gauge_last_sum\":%llu}",
                g->counters, g->timers, g->sets, (unsigned long long)g->counter_lines,
                (unsigned long long)g->timer_lines, (unsigned long long)g->set_lines,
                (unsigned long long)g->gauge_lines, (unsigned long long)gauge_keys,
                (unsigned long long)gauge_sum);
    }
    fprintf(f, "},\"watch\":{");
    for (size_t i = 0; i < nwatches; i++) {
        fprintf(f, "%s", i ? "," : "");
        json_str(f, watches[i].name);
        fprintf(f, ":[%.17g,%.17g,%llu,%.17g]", watches[i].last, watches[i].sum,
                (unsigned long long)watches[i].n, watches[i].max);
    }
    fprintf(f, "},\"watch_overflow\":%llu,\"bursts\":[", (unsigned long long)dropped_watches);
    for (size_t i = 0; i < nbursts; i++)
        fprintf(f, "%s[%.6f,%.6f,%.6f,%.6f,%llu,%llu]", i ? "," : "", bursts[i].m0, bursts[i].m1,
                bursts[i].r0, bursts[i].r1, (unsigned long long)bursts[i].lines,
                (unsigned long long)bursts[i].bytes);
    fprintf(f, "]}\n");
    fflush(f);
}

/* Answer a `#stats` request on fd (blocking, then the caller closes it). */
static void answer(int fd)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return;
    report(m);
    fclose(m);
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
        if (n <= 0 && errno != EINTR)
            break;
        if (n > 0)
            off += (size_t)n;
    }
    free(text);
}

static void note_arrival(size_t bytes, uint64_t lines)
{
    double m = mono_s();
    if (!nbursts || m - bursts[nbursts - 1].m1 > gap_s) {
        if (nbursts == bursts_cap) {
            bursts_cap = bursts_cap ? bursts_cap * 2 : 256;
            bursts = realloc(bursts, bursts_cap * sizeof *bursts);
            if (!bursts) {
                fprintf(stderr, "sumsink: out of memory\n");
                exit(1);
            }
        }
        double r = real_s();
        bursts[nbursts++] = (burst){ .m0 = m, .m1 = m, .r0 = r, .r1 = r };
    }
    burst *b = &bursts[nbursts - 1];
    b->m1 = m;
    b->r1 = real_s();
    b->lines += lines;
    b->bytes += bytes;
}

/* Consume the complete lines in c->buf.  Returns false when the connection
 * turned out to be a control request (answered; close it). */
static bool take_lines(conn *c, size_t fresh)
{
    char *p = c->buf, *end = c->buf + c->len;
    uint64_t before = total_lines;
    char *nl;
    while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
        size_t len = (size_t)(nl - p);
        if (len && p[len - 1] == '\r')
            len--;
        if (!c->first_line_seen) {
            c->first_line_seen = true;
            if (len == 6 && !memcmp(p, "#stats", 6)) {
                answer(c->fd);
                return false;
            }
        }
        if (len)
            take_line(p, len);
        p = nl + 1;
    }
    c->len = (size_t)(end - p);
    memmove(c->buf, p, c->len);
    total_bytes += fresh;
    note_arrival(fresh, total_lines - before);
    return true;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "port", required_argument, 0, 'p' }, { "gap-ms", required_argument, 0, 'g' }, { 0, 0, 0, 0 },
    };
    int port = 0, c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'p': port = atoi(optarg); break;
        case 'g': gap_s = atof(optarg) / 1000.0; break;
        default:
            fprintf(stderr, "usage: sumsink [--port PORT] [--gap-ms MS]\n");
            return 2;
        }
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 128) < 0) {
        fprintf(stderr, "sumsink: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    socklen_t slen = sizeof sin;
    getsockname(lfd, (struct sockaddr *)&sin, &slen);
    printf("{\"listening\":%d}\n", ntohs(sin.sin_port));
    fflush(stdout);

    struct pollfd p[1 + MAX_CONNS];
    conn conns[1 + MAX_CONNS];
    int n = 1;
    p[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
    while (!stop_sig) {
        if (poll(p, (nfds_t)n, 200) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && n < 1 + MAX_CONNS) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0) {
                conns[n] = (conn){ .fd = fd, .buf = malloc(CONN_BUF) };
                if (!conns[n].buf) {
                    close(fd);
                } else {
                    p[n] = (struct pollfd){ .fd = fd, .events = POLLIN };
                    n++;
                    connections++;
                }
            }
        }
        for (int i = 1; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            conn *k = &conns[i];
            bool keep = true;
            if (k->len == CONN_BUF) {
                bad_lines++; /* a line longer than the buffer: skip it */
                k->len = 0;
            }
            ssize_t r = read(k->fd, k->buf + k->len, CONN_BUF - k->len);
            if (r > 0) {
                k->len += (size_t)r;
                keep = take_lines(k, (size_t)r);
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                if (k->len) {
                    take_line(k->buf, k->len); /* a last line without '\n' */
                    k->len = 0;
                }
                keep = false;
            }
            if (!keep) {
                close(k->fd);
                free(k->buf);
                p[i] = p[n - 1];
                conns[i] = conns[n - 1];
                n--;
                i--;
            }
        }
    }
    report(stdout);
    for (int i = 1; i < n; i++) {
        close(conns[i].fd);
        free(conns[i].buf);
    }
    close(lfd);
    free(bursts);
    return 0;
}
