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
} dgram;

typedef struct pool {
    char *text;
    size_t text_len, text_cap;
    dgram *d;
    size_t nd, d_cap;
    uint32_t *line_end;          /* per metric: end of its line (after '\n'), from its datagram's start */
    uint8_t *mtype;
    size_t nm, m_cap;
} pool;

typedef struct stats {
    uint64_t metrics, datagrams, bytes, errors;
    uint64_t tc[NTYPES];
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
} opts;

typedef struct worker {
    pthread_t tid;
    int fd;
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

/* Format metric m into buf: key m % keys, a value that depends on m. */
static int format_metric(char *buf, size_t cap, uint64_t m, int type)
{
    uint64_t k = O.key_offset + m % O.keys;
    unsigned w = digits(O.key_offset + O.keys - 1);
    switch (type) {
    case T_C:
        return snprintf(buf, cap, "%s.k%0*llu:1|c\n", O.prefix, (int)w, (unsigned long long)k);
    case T_MS:
        return snprintf(buf, cap, "%s.k%0*llu:%llu|ms\n", O.prefix, (int)w, (unsigned long long)k,
                        (unsigned long long)(m * 37 % 1000));
    case T_G:
        return snprintf(buf, cap, "%s.k%0*llu:%llu|g\n", O.prefix, (int)w, (unsigned long long)k,
                        (unsigned long long)(m % 100));
    default:
        return snprintf(buf, cap, "%s.k%0*llu:u%llu|s\n", O.prefix, (int)w, (unsigned long long)k,
                        (unsigned long long)(m % 1000));
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
    char line[512];
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
        for (;;) {
            if (O.per && d->n == O.per)
                break;
            uint64_t saved[NTYPES];
            memcpy(saved, given, sizeof saved);
            int t = next_type(given, m);
            int len = format_metric(line, sizeof line, m, t);
            if (len <= 0 || (size_t)len >= sizeof line)
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
            }
            memcpy(P.text + P.text_len, line, (size_t)len);
            P.text_len += (size_t)len;
            d->len += (uint32_t)len;
            P.line_end[P.nm] = d->len;
            P.mtype[P.nm] = (uint8_t)t;
            P.nm++;
            d->n++;
            d->tc[t]++;
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
}

/* The first `n` metrics of d: their byte length (with the last '\n') and
 * their per-type counts. */
static uint32_t count_prefix(stats *st, const dgram *d, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        st->tc[P.mtype[d->first + i]]++;
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
    size_t pos = w->start;
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
        size_t k = plan_batch(w, pos, kmax, SIZE_MAX, false, w->st.metrics, &cut);
        uint64_t batch_metrics = 0;
        for (size_t i = 0; i < k; i++) {
            const dgram *d = &P.d[(pos + i) % P.nd];
            uint32_t n = (i == k - 1 && cut) ? cut : d->n;
            iov[i].iov_base = P.text + d->off;
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
            if ((size_t)i == k - 1 && cut)
                count_prefix(&w->st, d, cut);
            else
                count_whole(&w->st, d);
            w->st.bytes += iov[i].iov_len;
        }
        w->st.datagrams += (uint64_t)sent;
        pos = (pos + (size_t)sent) % P.nd;
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
    size_t pos = w->start;
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
        size_t k = plan_batch(w, pos, SIZE_MAX, max_bytes, true, w->st.metrics, &cut);
        uint64_t chunk_metrics = 0;
        size_t bytes = 0;
        for (size_t i = 0; i < k; i++) {
            const dgram *d = &P.d[pos + i];
            uint32_t n = (i == k - 1 && cut) ? cut : d->n;
            chunk_metrics += n;
            bytes += n == d->n ? d->len : P.line_end[d->first + n - 1];
        }
        if (!pace(w, w->st.metrics, chunk_metrics, burst))
            break;
        if (!write_all(w, P.text + P.d[pos].off, bytes))
            return;
        for (size_t i = 0; i < k; i++) {
            const dgram *d = &P.d[pos + i];
            if (i == k - 1 && cut)
                count_prefix(&w->st, d, cut);
            else
                count_whole(&w->st, d);
        }
        w->st.bytes += bytes;
        w->st.datagrams++;
        pos = (pos + k) % P.nd;
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
            "               [--threads T]\n");
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
    free(ws);
    return err ? 1 : 0;
}
