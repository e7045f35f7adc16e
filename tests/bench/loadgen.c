/*
 * loadgen.c - StatsD load generator for the benchmarks.
 *
 *   loadgen --udp 127.0.0.1:8125 [options]      connected UDP socket, sendmmsg
 *   loadgen --unixgram PATH [options]           connected Unix datagram socket, sendmmsg
 *   loadgen --tcp 127.0.0.1:8125 [options]      one TCP connection per thread
 *   loadgen --unix PATH [options]               one Unix stream connection per thread
 *
 *   --keys N          distinct keys (default 10000): PREFIX.kNNNN
 *   --key-prefix P    first part of every key (default "bench")
 *   --key-offset O    numbering starts at O (default 0), for disjoint key sets
 *   --mix SPEC        type weights, e.g. c=70,ms=20,g=5,s=5 (default c=1)
 *   --sampled N       every Nth timer line carries `|@0.1` (default 0: none)
 *   --tagged N        keys whose number is a multiple of N carry three
 *                     DogStatsD tags, `|#env:prod,host:hNN,route:/api/vN`
 *                     (default 0: none); a third of the lines for N = 3
 *   --per N           metrics per datagram (default 1; 0 = as many as fit)
 *   --max-bytes B     datagram payload limit (default 1432)
 *   --rate R          metrics per second, all threads together (token
 *                     bucket); 0 = flat out (default)
 *   --duration S      stop after S seconds (default 5 unless --count)
 *   --count N         stop after exactly N metrics (and no later than
 *                     --duration if that is given too)
 *   --threads T       sending threads, one socket each (default 1)
 *
 * Everything is formatted once, before the clock starts: a pool of
 * datagrams that walks the key space in order, each line `key:value|type`.
 * The send loop only hands pointers into that pool to sendmmsg (datagrams)
 * or send (streams, where a chunk is a run of consecutive datagrams, each
 * line ending in '\n').  Counts are exact: a datagram counts once sendmmsg
 * says it was sent, a stream chunk once send() has taken all of it.
 *
 * Gauge values and set members are the only text that changes: a 12-digit
 * number, VAR_BASE + the line's sequence number over the whole run (times
 * --threads, plus the thread's index), written into the pool just before a
 * datagram is sent again.  So every set member is sent once, and the
 * distinct members a server counts, summed over its flushes, must equal the
 * set lines sent; and a gauge's last value says which of its lines came
 * last.  What a sink should add up is printed too: `sink_units` is the sum
 * of every counter's value (1), every timer's count (1, or 10 with @0.1)
 * and every set's distinct members; with one thread, `gauge_keys` and
 * `gauge_last_sum` are the gauges sent and the sum of their last values.
 *
 * The last line on stdout is one JSON object: sent_metrics, sent_datagrams
 * (for streams, writes), sent_bytes, seconds, per-type counts, send errors
 * and the generator's own CPU time.  Exit status 1 if sending failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64                 /* datagrams per sendmmsg */
#define CHUNK (64u << 10)        /* stream bytes per send */
#define MAX_ERRORS_IN_A_ROW 100000
#define VAR_W 12                 /* digits of a gauge value or set member */
#define VAR_BASE 100000000000ull /* the smallest 12-digit number */
#define SAMPLE_RATE_INV 10       /* |@0.1 */

enum { T_C, T_MS, T_G, T_S, NTYPES };
static const char *const type_code[NTYPES] = { "c", "ms", "g", "s" };
static const char *const type_json[NTYPES] = { "counters", "timers", "gauges", "sets" };

enum proto { P_UDP, P_UNIXGRAM, P_TCP, P_UNIX };
static const char *const proto_name[] = { "udp", "unixgram", "tcp", "unix" };

/* One pre-formatted datagram: text[off, off + len) ends with '\n'; a
 * datagram is sent without that last newline, a stream chunk with it. */
typedef struct dgram {
    size_t off;
    uint32_t len;
    uint32_t first;              /* index of its first metric */
    uint32_t n;                  /* metrics in it */
    uint32_t tc[NTYPES];         /* of which per type */
    uint32_t sampled;            /* timers with |@0.1 */
    uint32_t tagged;
    uint32_t var_first, nvar;    /* its gauge values and set members in P.var */
} dgram;

/* A gauge value or set member: where its digits are in the pool's text,
 * and the line's index in the pool. */
typedef struct var_field {
    size_t off;
    uint32_t m;
} var_field;

typedef struct pool {
    char *text;
    size_t text_len, text_cap;
    dgram *d;
    size_t nd, d_cap;
    uint32_t *line_end;          /* per metric: end of its line (after '\n'), from its datagram's start */
    uint8_t *mtype;
    uint8_t *mflags;             /* per metric: M_SAMPLED, M_TAGGED */
    size_t nm, m_cap;
    var_field *var;
    size_t nvar, var_cap;
} pool;

#define M_SAMPLED 1
#define M_TAGGED 2

typedef struct stats {
    uint64_t metrics, datagrams, bytes, errors;
    uint64_t tc[NTYPES];
    uint64_t sampled, tagged;
} stats;

typedef struct opts {
    enum proto proto;
    char addr[256];
    uint64_t keys, key_offset;
    char prefix[128];
    unsigned weight[NTYPES];
    unsigned per;
    unsigned max_bytes;
    double rate;
    double duration;
    uint64_t count;
    unsigned threads;
    unsigned sample_every, tag_every;
} opts;

typedef struct worker {
    pthread_t tid;
    int fd;
    unsigned index;
    char *text;                  /* the pool's text, or its own copy (several threads) */
    uint64_t *stamp;             /* per datagram: pass + 1 its values are written for */
    int64_t *sent_pass;          /* per datagram: pass it was last sent in (-1: never) */
    uint32_t *sent_n;            /* and how many of its metrics then */
    size_t start;                /* first datagram of the pool it sends */
    uint64_t quota;              /* metrics, 0 = no limit */
    bool idle;                   /* --count smaller than --threads: nothing to send */
    double rate;                 /* metrics/s for this thread, 0 = flat out */
    stats st;
    char err[256];
} worker;

static opts O;
static pool P;
static pthread_barrier_t start_barrier;
static double t_start;
static volatile sig_atomic_t interrupted;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        die("out of memory");
    return p;
}

/* ---- the pool -------------------------------------------------------- */

static unsigned digits(uint64_t v)
{
    unsigned d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* The type of metric m: weighted round robin (the type furthest behind its
 * share goes next), so any stretch of the pool has the configured mix. */
static int next_type(uint64_t *given, uint64_t m)
{
    unsigned total = 0;
    for (int t = 0; t < NTYPES; t++)
        total += O.weight[t];
    int best = -1;
    double best_deficit = 0;
    for (int t = 0; t < NTYPES; t++) {
        if (!O.weight[t])
            continue;
        double deficit = (double)(m + 1) * O.weight[t] / total - (double)given[t];
        if (best < 0 || deficit > best_deficit) {
            best = t;
            best_deficit = deficit;
        }
    }
    given[best]++;
    return best;
}

/* The key number of pool metric m. */
static uint64_t key_of(uint64_t m)
{
    return O.key_offset + m % O.keys;
}

/* Format metric m into buf: key m % keys, a timer value that depends on m,
 * and for a gauge or set VAR_W digits to be written before each send (their
 * offset in *var_at, else -1).  Returns the length, or -1 if it does not fit. */
static int format_metric(char *buf, size_t cap, uint64_t m, int type, bool sampled, int *var_at)
{
    uint64_t k = key_of(m);
    unsigned w = digits(O.key_offset + O.keys - 1);
    size_t n = (size_t)snprintf(buf, cap, "%s.k%0*llu:", O.prefix, (int)w, (unsigned long long)k);
    *var_at = -1;
    if (n >= cap)
        return -1;
    switch (type) {
    case T_C:
        n += (size_t)snprintf(buf + n, cap - n, "1|c");
        break;
    case T_MS:
        n += (size_t)snprintf(buf + n, cap - n, "%llu|ms%s", (unsigned long long)(m * 37 % 1000),
                              sampled ? "|@0.1" : "");
        break;
    default:
        if (type == T_S && n < cap)
            buf[n++] = 'u';
        *var_at = (int)n;
        n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%llu|%s", VAR_BASE, type_code[type]);
        break;
    }
    if (n < cap && O.tag_every && k % O.tag_every == 0)
        n += (size_t)snprintf(buf + n, cap - n, "|#env:prod,host:h%02llu,route:/api/v%llu",
                              (unsigned long long)(k / O.tag_every % 100), (unsigned long long)(k % 4 + 1));
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "\n");
    return n < cap ? (int)n : -1;
}

/* Write the gauge values and set members of datagram d for pass `pass` of
 * the pool by thread w into w's text. */
static void stamp_dgram(char *text, const dgram *d, uint64_t pass, unsigned thread)
{
    for (uint32_t j = d->var_first; j < d->var_first + d->nvar; j++) {
        const var_field *v = &P.var[j];
        uint64_t x = VAR_BASE + (pass * P.nm + v->m) * O.threads + thread;
        char *p = text + v->off + VAR_W;
        for (int i = 0; i < VAR_W; i++) {
            *--p = (char)('0' + x % 10);
            x /= 10;
        }
    }
}

/*
 * Build datagrams from metric 0 on until every key has appeared and there
 * are at least BATCH datagrams (so one sendmmsg never sends a datagram
 * twice).  When --per divides --keys, one pass over the pool sends every key
 * equally often.
 */
static void pool_build(void)
{
    uint64_t given[NTYPES] = { 0 };
    char line[1024];
    uint64_t m = 0;

    while (m < O.keys || P.nd < BATCH) {
        if (P.nd == P.d_cap) {
            P.d_cap = P.d_cap ? P.d_cap * 2 : 1024;
            P.d = xrealloc(P.d, P.d_cap * sizeof *P.d);
        }
        dgram *d = &P.d[P.nd];
        memset(d, 0, sizeof *d);
        d->off = P.text_len;
        d->first = (uint32_t)P.nm;
        d->var_first = (uint32_t)P.nvar;
        for (;;) {
            if (O.per && d->n == O.per)
                break;
            uint64_t saved[NTYPES];
            memcpy(saved, given, sizeof saved);
            int t = next_type(given, m);
            bool sampled = t == T_MS && O.sample_every && given[T_MS] % O.sample_every == 0;
            bool tagged = O.tag_every && key_of(m) % O.tag_every == 0;
            int var_at;
            int len = format_metric(line, sizeof line, m, t, sampled, &var_at);
            if (len <= 0)
                die("key too long");
            /* The datagram is sent without its last '\n'. */
            if (d->len + (uint32_t)len - 1 > O.max_bytes) {
                memcpy(given, saved, sizeof saved);
                if (d->n == 0)
                    die("one metric (%d bytes) does not fit in --max-bytes %u", len - 1, O.max_bytes);
                break;
            }
            if (P.text_len + (size_t)len > P.text_cap) {
                P.text_cap = P.text_cap ? P.text_cap * 2 : 1 << 20;
                P.text = xrealloc(P.text, P.text_cap);
            }
            if (P.nm == P.m_cap) {
                P.m_cap = P.m_cap ? P.m_cap * 2 : 4096;
                P.line_end = xrealloc(P.line_end, P.m_cap * sizeof *P.line_end);
                P.mtype = xrealloc(P.mtype, P.m_cap);
                P.mflags = xrealloc(P.mflags, P.m_cap);
            }
            if (var_at >= 0) {
                if (P.nvar == P.var_cap) {
                    P.var_cap = P.var_cap ? P.var_cap * 2 : 4096;
                    P.var = xrealloc(P.var, P.var_cap * sizeof *P.var);
                }
                P.var[P.nvar++] = (var_field){ .off = P.text_len + (size_t)var_at, .m = (uint32_t)P.nm };
                d->nvar++;
            }
            memcpy(P.text + P.text_len, line, (size_t)len);
            P.text_len += (size_t)len;
            d->len += (uint32_t)len;
            P.line_end[P.nm] = d->len;
            P.mtype[P.nm] = (uint8_t)t;
            P.mflags[P.nm] = (uint8_t)((sampled ? M_SAMPLED : 0) | (tagged ? M_TAGGED : 0));
            P.nm++;
            d->n++;
            d->tc[t]++;
            d->sampled += sampled;
            d->tagged += tagged;
            m++;
            if (!O.per && m >= O.keys && P.nd + 1 >= BATCH)
                break; /* filling by bytes: end the pool on a key-cycle boundary */
        }
        P.nd++;
    }
}

/* ---- sending --------------------------------------------------------- */

static int parse_hostport(const char *s, struct sockaddr_in *sin)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

static int open_socket(char *err, size_t errlen)
{
    bool stream = O.proto == P_TCP || O.proto == P_UNIX;
    int fd;
    if (O.proto == P_UDP || O.proto == P_TCP) {
        struct sockaddr_in sin;
        if (parse_hostport(O.addr, &sin) < 0) {
            snprintf(err, errlen, "bad address '%s' (want IPv4:PORT)", O.addr);
            return -1;
        }
        fd = socket(AF_INET, stream ? SOCK_STREAM : SOCK_DGRAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
            snprintf(err, errlen, "connect %s: %s", O.addr, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        if (stream) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
    } else {
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        if (strlen(O.addr) >= sizeof sun.sun_path) {
            snprintf(err, errlen, "socket path too long");
            return -1;
        }
        strcpy(sun.sun_path, O.addr);
        fd = socket(AF_UNIX, stream ? SOCK_STREAM : SOCK_DGRAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
            snprintf(err, errlen, "connect %s: %s", O.addr, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
    }
    /* A receiver that stops reading must not hang the generator forever. */
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (!stream) {
        int sz = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
    return fd;
}

static void count_whole(stats *st, const dgram *d)
{
    st->metrics += d->n;
    for (int t = 0; t < NTYPES; t++)
        st->tc[t] += d->tc[t];
    st->sampled += d->sampled;
    st->tagged += d->tagged;
}

/* The first `n` metrics of d: their byte length (with the last '\n') and
 * their per-type counts. */
static uint32_t count_prefix(stats *st, const dgram *d, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        st->tc[P.mtype[d->first + i]]++;
        st->sampled += P.mflags[d->first + i] & M_SAMPLED ? 1 : 0;
        st->tagged += P.mflags[d->first + i] & M_TAGGED ? 1 : 0;
    }
    st->metrics += n;
    return P.line_end[d->first + n - 1];
}

/* How many datagrams from `pos` on make up the next batch, with the last
 * one possibly cut to `*cut` metrics (0: whole) so that the quota is met
 * exactly. */
static size_t plan_batch(const worker *w, size_t pos, size_t max_dgrams, size_t max_bytes,
                         bool contiguous, uint64_t sent, uint32_t *cut)
{
    size_t k = 0, bytes = 0;
    uint64_t left = w->quota ? w->quota - sent : UINT64_MAX;
    *cut = 0;
    while (k < max_dgrams) {
        const dgram *d = &P.d[(pos + k) % P.nd];
        if (k && bytes + d->len > max_bytes)
            break;
        if (k && contiguous && (pos + k) % P.nd == 0)
            break; /* a stream chunk is one send: stop at the pool's end */
        if (left <= d->n) {
            if (left < d->n)
                *cut = (uint32_t)left;
            k++;
            break;
        }
        left -= d->n;
        bytes += d->len;
        k++;
    }
    return k;
}

/* Datagram `abs` of w's walk (its pool position abs % P.nd, pass
 * abs / P.nd) is about to be sent: write its values for that pass. */
static void prepare_dgram(worker *w, uint64_t abs)
{
    size_t i = (size_t)(abs % P.nd);
    uint64_t pass = abs / P.nd;
    if (P.d[i].nvar && w->stamp[i] != pass + 1) {
        stamp_dgram(w->text, &P.d[i], pass, w->index);
        w->stamp[i] = pass + 1;
    }
}

/* Datagram `abs` went out with its first n metrics. */
static void note_sent(worker *w, uint64_t abs, uint32_t n)
{
    size_t i = (size_t)(abs % P.nd);
    w->sent_pass[i] = (int64_t)(abs / P.nd);
    w->sent_n[i] = n;
}

/* Token bucket: wait until `n` more metrics are allowed.  Returns false when
 * the duration ran out while waiting. */
static bool pace(const worker *w, uint64_t sent, uint64_t n, double burst)
{
    if (w->rate <= 0)
        return true;
    for (;;) {
        double now = now_s();
        if (O.duration > 0 && now - t_start >= O.duration)
            return false;
        double due = t_start + ((double)(sent + n) - burst) / w->rate;
        if (now >= due)
            return true;
        double wait = due - now;
        sleep_s(wait > 0.01 ? 0.01 : wait);
    }
}

static bool time_up(void)
{
    return interrupted || (O.duration > 0 && now_s() - t_start >= O.duration);
}

static void send_datagrams(worker *w)
{
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    uint64_t abs = w->start;     /* datagrams walked, from the pool's start */
    unsigned errors_in_a_row = 0;
    double avg = (double)P.nm / (double)P.nd;
    size_t kmax = BATCH;
    if (w->rate > 0) {
        /* About a millisecond's worth per call, so pacing stays smooth. */
        double per_ms = w->rate / 1000.0 / avg;
        kmax = per_ms < 1 ? 1 : per_ms > BATCH ? BATCH : (size_t)per_ms;
    }
    double burst = (double)kmax * avg;

    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    while (!time_up() && !(w->quota && w->st.metrics >= w->quota)) {
        uint32_t cut;
        size_t pos = (size_t)(abs % P.nd);
        size_t k = plan_batch(w, pos, kmax, SIZE_MAX, false, w->st.metrics, &cut);
        uint64_t batch_metrics = 0;
        for (size_t i = 0; i < k; i++) {
            const dgram *d = &P.d[(pos + i) % P.nd];
            uint32_t n = (i == k - 1 && cut) ? cut : d->n;
            prepare_dgram(w, abs + i);
            iov[i].iov_base = w->text + d->off;
            iov[i].iov_len = (n == d->n ? d->len : P.line_end[d->first + n - 1]) - 1;
            batch_metrics += n;
        }
        if (!pace(w, w->st.metrics, batch_metrics, burst))
            break;
        int sent = sendmmsg(w->fd, msgs, (unsigned)k, 0);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            w->st.errors++;
            if (++errors_in_a_row >= MAX_ERRORS_IN_A_ROW) {
                snprintf(w->err, sizeof w->err, "sendmmsg: %s (%u times in a row)", strerror(errno),
                         errors_in_a_row);
                return;
            }
            if (errno == ENOBUFS || errno == EAGAIN)
                sleep_s(0.0001);
            continue; /* ECONNREFUSED: an earlier datagram found no receiver */
        }
        errors_in_a_row = 0;
        for (int i = 0; i < sent; i++) {
            const dgram *d = &P.d[(pos + (size_t)i) % P.nd];
            bool is_cut = (size_t)i == k - 1 && cut;
            if (is_cut)
                count_prefix(&w->st, d, cut);
            else
                count_whole(&w->st, d);
            note_sent(w, abs + (uint64_t)i, is_cut ? cut : d->n);
            w->st.bytes += iov[i].iov_len;
        }
        w->st.datagrams += (uint64_t)sent;
        abs += (uint64_t)sent;
    }
}

/* Write all of buf; false (with w->err set) on error or a 10 s stall. */
static bool write_all(worker *w, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = send(w->fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(w->err, sizeof w->err, "send: %s",
                     errno == EAGAIN ? "stalled for 10 s" : strerror(errno));
            w->st.errors++;
            return false;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static void send_stream(worker *w)
{
    uint64_t abs = w->start;
    double avg = (double)P.nm / (double)P.nd;
    size_t max_bytes = CHUNK;
    if (w->rate > 0) {
        double bytes_per_ms = w->rate / 1000.0 * ((double)P.text_len / (double)P.nm);
        if (bytes_per_ms < max_bytes)
            max_bytes = bytes_per_ms < 1 ? 1 : (size_t)bytes_per_ms;
    }
    double burst = (double)max_bytes / ((double)P.text_len / (double)P.nm);
    if (burst < avg)
        burst = avg;

    while (!time_up() && !(w->quota && w->st.metrics >= w->quota)) {
        uint32_t cut;
        size_t pos = (size_t)(abs % P.nd);
        size_t k = plan_batch(w, pos, SIZE_MAX, max_bytes, true, w->st.metrics, &cut);
        uint64_t chunk_metrics = 0;
        size_t bytes = 0;
        for (size_t i = 0; i < k; i++) {
            const dgram *d = &P.d[pos + i];
            uint32_t n = (i == k - 1 && cut) ? cut : d->n;
            prepare_dgram(w, abs + i);
            chunk_metrics += n;
            bytes += n == d->n ? d->len : P.line_end[d->first + n - 1];
        }
        if (!pace(w, w->st.metrics, chunk_metrics, burst))
            break;
        if (!write_all(w, w->text + P.d[pos].off, bytes))
            return;
        for (size_t i = 0; i < k; i++) {
            const dgram *d = &P.d[pos + i];
            bool is_cut = i == k - 1 && cut;
            if (is_cut)
                count_prefix(&w->st, d, cut);
            else
                count_whole(&w->st, d);
            note_sent(w, abs + i, is_cut ? cut : d->n);
        }
        w->st.bytes += bytes;
        w->st.datagrams++;
        abs += k;
    }
    /* A clean end of stream: the receiver sees EOF after the last line. */
    shutdown(w->fd, SHUT_WR);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(&start_barrier);
    if (w->idle)
        return NULL;
    if (O.proto == P_TCP || O.proto == P_UNIX)
        send_stream(w);
    else
        send_datagrams(w);
    return NULL;
}

/* ---- main ------------------------------------------------------------ */

/* With one thread: how many gauge keys were sent, and the sum of each one's
 * last value (its line with the highest sequence number), for the sink to
 * compare with the last values it received. */
static void gauge_last(const worker *w, uint64_t *nkeys, uint64_t *sum)
{
    uint64_t *last = calloc(O.keys, sizeof *last);
    if (!last)
        die("out of memory");
    *nkeys = *sum = 0;
    for (size_t i = 0; i < P.nd; i++) {
        const dgram *d = &P.d[i];
        if (!d->tc[T_G] || w->sent_pass[i] < 0)
            continue;
        for (uint32_t j = 0; j < d->n; j++) {
            uint32_t m = d->first + j;
            if (P.mtype[m] != T_G)
                continue;
            /* Metrics past a cut were last sent whole one pass earlier. */
            int64_t pass = w->sent_pass[i] - (j < w->sent_n[i] ? 0 : 1);
            if (pass < 0)
                continue;
            uint64_t v = VAR_BASE + (uint64_t)pass * P.nm + m;
            uint64_t k = m % O.keys;
            if (v > last[k])
                last[k] = v;
        }
    }
    for (uint64_t k = 0; k < O.keys; k++) {
        if (last[k]) {
            (*nkeys)++;
            *sum += last[k];
        }
    }
    free(last);
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void parse_mix(const char *spec)
{
    memset(O.weight, 0, sizeof O.weight);
    char *copy = strdup(spec), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            die("--mix: '%s' is not TYPE=WEIGHT", tok);
        *eq = '\0';
        int t;
        for (t = 0; t < NTYPES; t++)
            if (!strcmp(tok, type_code[t]))
                break;
        if (t == NTYPES)
            die("--mix: unknown type '%s' (c, ms, g, s)", tok);
        O.weight[t] = (unsigned)atoi(eq + 1);
    }
    free(copy);
    unsigned total = 0;
    for (int t = 0; t < NTYPES; t++)
        total += O.weight[t];
    if (!total)
        die("--mix: every weight is 0");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen (--udp H:P | --tcp H:P | --unix PATH | --unixgram PATH)\n"
            "               [--keys N] [--key-prefix P] [--key-offset O] [--mix c=1,ms=0,g=0,s=0]\n"
            "               [--per N] [--max-bytes B] [--rate R] [--duration S] [--count N]\n"
            "               [--threads T] [--sampled N] [--tagged N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "udp", required_argument, 0, 'u' },      { "tcp", required_argument, 0, 't' },
        { "unix", required_argument, 0, 'x' },     { "unixgram", required_argument, 0, 'g' },
        { "keys", required_argument, 0, 'k' },     { "key-prefix", required_argument, 0, 'P' },
        { "key-offset", required_argument, 0, 'o' }, { "mix", required_argument, 0, 'm' },
        { "per", required_argument, 0, 'n' },      { "max-bytes", required_argument, 0, 'b' },
        { "rate", required_argument, 0, 'r' },     { "duration", required_argument, 0, 'd' },
        { "count", required_argument, 0, 'c' },    { "threads", required_argument, 0, 'T' },
        { "sampled", required_argument, 0, 'S' },  { "tagged", required_argument, 0, 'G' },
        { "help", no_argument, 0, 'h' },           { 0, 0, 0, 0 },
    };
    bool have_addr = false;
    O.keys = 10000;
    strcpy(O.prefix, "bench");
    O.weight[T_C] = 1;
    O.per = 1;
    O.max_bytes = 1432;
    O.threads = 1;
    O.duration = -1;

    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'u': case 't': case 'x': case 'g':
            O.proto = c == 'u' ? P_UDP : c == 't' ? P_TCP : c == 'x' ? P_UNIX : P_UNIXGRAM;
            snprintf(O.addr, sizeof O.addr, "%s", optarg);
            have_addr = true;
            break;
        case 'k': O.keys = strtoull(optarg, NULL, 10); break;
        case 'P': snprintf(O.prefix, sizeof O.prefix, "%s", optarg); break;
        case 'o': O.key_offset = strtoull(optarg, NULL, 10); break;
        case 'm': parse_mix(optarg); break;
        case 'n': O.per = (unsigned)atoi(optarg); break;
        case 'b': O.max_bytes = (unsigned)atoi(optarg); break;
        case 'r': O.rate = atof(optarg); break;
        case 'd': O.duration = atof(optarg); break;
        case 'c': O.count = strtoull(optarg, NULL, 10); break;
        case 'T': O.threads = (unsigned)atoi(optarg); break;
        case 'S': O.sample_every = (unsigned)atoi(optarg); break;
        case 'G': O.tag_every = (unsigned)atoi(optarg); break;
        default: usage();
        }
    }
    if (!have_addr || optind != argc || O.keys == 0 || O.threads == 0 || O.max_bytes == 0)
        usage();
    if (O.duration < 0)
        O.duration = O.count ? 0 : 5;

    pool_build();

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    worker *ws = calloc(O.threads, sizeof *ws);
    if (!ws)
        die("out of memory");
    for (unsigned i = 0; i < O.threads; i++) {
        worker *w = &ws[i];
        w->index = i;
        w->text = P.text;
        if (O.threads > 1) {
            w->text = xrealloc(NULL, P.text_len);
            memcpy(w->text, P.text, P.text_len);
        }
        w->stamp = calloc(P.nd, sizeof *w->stamp);
        w->sent_pass = malloc(P.nd * sizeof *w->sent_pass);
        w->sent_n = calloc(P.nd, sizeof *w->sent_n);
        if (!w->stamp || !w->sent_pass || !w->sent_n)
            die("out of memory");
        for (size_t j = 0; j < P.nd; j++)
            w->sent_pass[j] = -1;
        w->start = P.nd * i / O.threads;
        w->quota = O.count ? O.count / O.threads + (i < O.count % O.threads ? 1 : 0) : 0;
        w->idle = O.count && !w->quota;
        w->rate = O.rate > 0 ? O.rate / O.threads : 0;
        w->fd = open_socket(w->err, sizeof w->err);
        if (w->fd < 0)
            die("%s", w->err);
    }

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    pthread_barrier_init(&start_barrier, NULL, O.threads + 1);
    for (unsigned i = 0; i < O.threads; i++)
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0)
            die("pthread_create failed");
    t_start = now_s();
    pthread_barrier_wait(&start_barrier);
    for (unsigned i = 0; i < O.threads; i++)
        pthread_join(ws[i].tid, NULL);
    double seconds = now_s() - t_start;
    getrusage(RUSAGE_SELF, &ru1);

    stats tot = { 0 };
    const char *err = NULL;
    for (unsigned i = 0; i < O.threads; i++) {
        tot.metrics += ws[i].st.metrics;
        tot.datagrams += ws[i].st.datagrams;
        tot.bytes += ws[i].st.bytes;
        tot.errors += ws[i].st.errors;
        for (int t = 0; t < NTYPES; t++)
            tot.tc[t] += ws[i].st.tc[t];
        tot.sampled += ws[i].st.sampled;
        tot.tagged += ws[i].st.tagged;
        if (ws[i].err[0] && !err)
            err = ws[i].err;
        close(ws[i].fd);
    }
    double cpu_user = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                      (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6;
    double cpu_sys = (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                     (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;

    printf("{\"proto\":\"%s\",\"threads\":%u,\"keys\":%llu,\"per_datagram\":%u,\"pool_datagrams\":%zu,"
           "\"sent_metrics\":%llu,\"sent_datagrams\":%llu,\"sent_bytes\":%llu,\"seconds\":%.6f,",
           proto_name[O.proto], O.threads, (unsigned long long)O.keys, O.per, P.nd,
           (unsigned long long)tot.metrics, (unsigned long long)tot.datagrams,
           (unsigned long long)tot.bytes, seconds);
    for (int t = 0; t < NTYPES; t++)
        printf("\"%s\":%llu,", type_json[t], (unsigned long long)tot.tc[t]);
    /* Every timer line counts 1 at the sink, or SAMPLE_RATE_INV with @0.1;
     * every set line adds one distinct member. */
    uint64_t units = tot.tc[T_C] + tot.tc[T_MS] + (SAMPLE_RATE_INV - 1) * tot.sampled + tot.tc[T_S];
    printf("\"timers_sampled\":%llu,\"tagged\":%llu,\"sink_units\":%llu,",
           (unsigned long long)tot.sampled, (unsigned long long)tot.tagged, (unsigned long long)units);
    if (O.threads == 1 && tot.tc[T_G]) {
        uint64_t nkeys, sum;
        gauge_last(&ws[0], &nkeys, &sum);
        printf("\"gauge_keys\":%llu,\"gauge_last_sum\":%llu,", (unsigned long long)nkeys,
               (unsigned long long)sum);
    }
    printf("\"send_errors\":%llu,\"rate_target\":%.0f,\"metrics_per_s\":%.1f,"
           "\"cpu_user\":%.6f,\"cpu_sys\":%.6f,\"error\":",
           (unsigned long long)tot.errors, O.rate, seconds > 0 ? (double)tot.metrics / seconds : 0.0,
           cpu_user, cpu_sys);
    if (err) {
        putchar('"');
        for (const char *p = err; *p; p++)
            if (*p != '"' && *p != '\\')
                putchar(*p);
        printf("\"}\n");
    } else {
        printf("null}\n");
    }
    fflush(stdout);
    for (unsigned i = 0; i < O.threads; i++) {
        if (ws[i].text != P.text)
            free(ws[i].text);
        free(ws[i].stamp);
        free(ws[i].sent_pass);
        free(ws[i].sent_n);
    }
    free(ws);
    return err ? 1 : 0;
}
