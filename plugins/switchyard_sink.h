/*
 * switchyard_sink.h - the public ABI for switchyard sink plugins.
 *
 * This header is all a sink author needs.  A plugin is a shared object that
 * exports one symbol, SY_SINK_SYMBOL, a `const sy_sink_plugin` that names the
 * ABI it was built against.  The host refuses a plugin whose abi_major differs
 * from its own, or whose struct_size is smaller than the host needs, and says
 * to rebuild the plugin against the installed header.
 *
 * Lifecycle of one sink instance (a name in the config's `sinks` table):
 *
 *   check   (optional, ABI 1.1) validates the settings and starts nothing;
 *           `switchyard --check`, start-up and every reload call it first
 *   init    once, with the instance's settings; returns the plugin's state
 *   write   each flush, zero or more times, with a borrowed batch of values
 *   write_samples   for pass-through routes, with borrowed raw samples
 *   flush   after the last batch of a flush (final = 1 once, at shutdown)
 *   pending polled after the final flush until it returns 0 or time is up
 *   take_back  (optional, ABI 1.2) time is up and the sink has a disk
 *           spool: what is still queued is handed back to be spooled
 *   write_lines (optional, ABI 1.3) raw DogStatsD lines (events and
 *           service checks) for a sink named in `dogstatsdEvents`
 *   features (ABI 1.4) SY_SINK_FEATURE_TIMESTAMPS: write_samples gets
 *           the clients' DogStatsD timestamps beside the samples
 *   take_back_samples (optional, ABI 1.5) as take_back, for raw samples
 *           of pass-through routes the sink has not delivered
 *   take_back_lines (optional, ABI 1.6) as take_back, for DogStatsD
 *           lines (write_lines) the sink has not delivered
 *   close   once
 *
 * Threading rules:
 *   - Every callback of one instance runs on the host's output loop thread,
 *     never two at once.  Several instances of one plugin may exist; keep
 *     all state in the state pointer, none in globals.
 *   - Callbacks never block: no blocking connect, read, write or DNS.  Use
 *     the host's fd watches and timers (or the event_base, for libraries
 *     with a libevent adapter) and non-blocking sockets.
 *   - Callbacks never call into Lua and never keep a batch pointer after
 *     they return: batches and the strings in them are borrowed.
 *
 * Return codes of write/write_samples/flush:
 *   SY_OK     taken (copied into the sink's own queue, or written)
 *   SY_SKIP   deliberately not taken (e.g. a kind the sink does not store);
 *             not counted as a failure
 *   SY_RETRY  cannot take it now (queue full); the host keeps a copy (at
 *             most `retryMaxMetrics` metrics per sink, a host setting;
 *             beyond it they are counted as dropped) and offers it again
 *             every 100 ms and before any newer batch, so order is kept
 *   SY_ERROR  failed for good; the host counts the batch as dropped and
 *             logs the plugin's last message at a bounded rate
 *
 * Versioning: adding a member at the end of sy_host_api or sy_sink_plugin is
 * a minor change (check struct_size / api->struct_size before using a newer
 * member); anything else bumps SY_SINK_ABI_MAJOR.
 */
#ifndef SWITCHYARD_SINK_H
#define SWITCHYARD_SINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SY_SINK_ABI_MAJOR 1
#define SY_SINK_ABI_MINOR 6 /* 1: SY_STAT_ADJUSTED, the host's escape_text;
                             * 2: take_back; 3: write_lines;
                             * 4: features, sy_sample_batch.timestamps_ms;
                             * 5: take_back_samples; 6: take_back_lines,
                             * write_lines' SY_RETRY/SY_ERROR kept by a
                             * host with a spool */

/* The name of the one symbol a plugin exports. */
#define SY_SINK_SYMBOL "switchyard_sink"

struct event_base;

typedef enum sy_status {
    SY_ERROR = -1,
    SY_OK = 0,
    SY_RETRY = 1,
    SY_SKIP = 2
} sy_status;

enum sy_log_level { SY_LOG_ERROR = 0, SY_LOG_WARN = 1, SY_LOG_INFO = 2, SY_LOG_DEBUG = 3 };

/* What a flushed value measures, for sinks that store kinds differently. */
enum sy_metric_kind {
    SY_KIND_COUNTER = 0,  /* a counter's rate or count */
    SY_KIND_TIMER = 1,    /* one statistic of a timer (mean, upper_90, ...) */
    SY_KIND_GAUGE = 2,
    SY_KIND_SET = 3,      /* a set's count */
    SY_KIND_INTERNAL = 4  /* switchyard's or statsd's own metrics */
};

/* One flushed value.  `name` is the full name exactly as Graphite receives
 * it (prefixes, suffix and ;tags applied) and is NUL-terminated. */
typedef struct sy_metric {
    const char *name;
    uint32_t name_len;
    uint8_t kind;
    double value;
} sy_metric;

typedef struct sy_metric_batch {
    const sy_metric *metrics;
    size_t count;
    int64_t timestamp; /* the flush time, seconds since the epoch */
} sy_metric_batch;

/* Sample types, as they appear on the wire. */
enum sy_sample_type {
    SY_SAMPLE_COUNTER = 'c',
    SY_SAMPLE_GAUGE = 'g',
    SY_SAMPLE_TIMER = 't', /* ms, h and d */
    SY_SAMPLE_SET = 's'
};

/* One raw sample of a pass-through route.  `name` is the routed name
 * (with ;tags, sanitised as Graphite sees it); `text` is the value as sent
 * (a set member, or a number with its sign kept so gauge deltas can be
 * forwarded); `tags` is the DogStatsD tag text exactly as sent ("trace:9f2c,
 * root,path:/x"), empty when there were none.  None is NUL-terminated. */
typedef struct sy_sample {
    const char *name;
    uint32_t name_len;
    const char *text;
    uint32_t text_len;
    const char *tags;
    uint32_t tags_len;
    double value;
    double rate;       /* 1.0 unless the sender gave @rate */
    uint8_t type;      /* enum sy_sample_type */
    uint8_t is_delta;  /* a gauge value written with a leading + or - */
} sy_sample;

typedef struct sy_sample_batch {
    const sy_sample *samples;
    size_t count;
    /* ABI 1.4.  NULL, or per sample the time the client gave it (a
     * DogStatsD "|T1700000000" field, inside the host's window) in ms
     * since the epoch, 0 for a sample without one (its time is its
     * arrival).  The host fills it only for a plugin whose `features`
     * has SY_SINK_FEATURE_TIMESTAMPS, and only a host of ABI 1.4 or later
     * has the member: read it only when sy_host_has_timestamps(api). */
    const int64_t *timestamps_ms;
} sy_sample_batch;

/* Whether the host's sy_sample_batch has timestamps_ms (ABI 1.4). */
#define sy_host_has_timestamps(api) ((api)->abi_major == 1 && (api)->abi_minor >= 4)

/* Well-known per-instance statistics, reported by the admin interface and
 * sent as switchyard's own metrics. */
enum sy_stat {
    SY_STAT_SENT = 0,       /* counter: metrics delivered to the destination */
    SY_STAT_DROPPED = 1,    /* counter: metrics given up on (queue full, ...) */
    SY_STAT_ERRORS = 2,     /* counter: write or protocol errors */
    SY_STAT_RECONNECTS = 3, /* counter: connection attempts after a failure */
    SY_STAT_QUEUED = 4,     /* gauge: metrics waiting in the sink's queue */
    SY_STAT_QUEUED_BYTES = 5, /* gauge: bytes waiting in the sink's queue */
    SY_STAT_CONNECTED = 6,  /* gauge: 1 when connected to the destination */
    /* counter: accepted, but with a client's value corrected to a bound
     * (e.g. memcache_traces: traces whose start time was clamped); the
     * sink's documentation says what it counts.  ABI 1.1: a 1.0 host
     * ignores it. */
    SY_STAT_ADJUSTED = 7,
    SY_STAT_COUNT = 8
};

enum sy_watch_events { SY_WATCH_READ = 2, SY_WATCH_WRITE = 4 };

typedef struct sy_host sy_host;   /* one per sink instance; opaque */
typedef struct sy_timer sy_timer;
typedef struct sy_watch sy_watch;

/*
 * Services the host offers a plugin.  Passed to init; valid until close.
 * Setting getters return 0 when the value was found, 1 when the key is
 * absent (the default is stored), and -1 when it has the wrong type (the
 * host has already reported it, naming the sink and the key).
 */
typedef struct sy_host_api {
    uint32_t abi_major;
    uint32_t abi_minor;
    size_t struct_size;

    void (*log)(sy_host *h, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    const char *(*instance_name)(sy_host *h);

    int (*setting_string)(sy_host *h, const char *key, const char *dflt, const char **out);
    int (*setting_int)(sy_host *h, const char *key, int64_t dflt, int64_t *out);
    int (*setting_number)(sy_host *h, const char *key, double dflt, double *out);
    int (*setting_bool)(sy_host *h, const char *key, int dflt, int *out);
    /* Lists of strings or numbers (e.g. several destinations): the length,
     * or -1 when the key is missing or not a list (nothing is reported, so
     * a plugin may accept a string or a list); then element i (0-based) as
     * a string (numbers are converted). */
    int (*setting_list_len)(sy_host *h, const char *key);
    const char *(*setting_list_string)(sy_host *h, const char *key, int i);

    /* One-shot timers on the output loop; starting a started timer
     * re-arms it. */
    sy_timer *(*timer_new)(sy_host *h, void (*cb)(void *arg), void *arg);
    void (*timer_start)(sy_timer *t, uint64_t after_ms);
    void (*timer_stop)(sy_timer *t);
    void (*timer_free)(sy_timer *t);

    /* Readiness watches on non-blocking fds; events is a mask of
     * sy_watch_events (0 pauses the watch). */
    sy_watch *(*watch_new)(sy_host *h, int fd, void (*cb)(int fd, int events, void *arg), void *arg);
    void (*watch_set)(sy_watch *w, int events);
    void (*watch_free)(sy_watch *w);

    /* The output loop itself, for libraries with a libevent adapter. */
    struct event_base *(*event_base)(sy_host *h);

    uint64_t (*now_ms)(sy_host *h);       /* wall clock */
    uint64_t (*monotonic_ms)(sy_host *h); /* for timeouts and backoff */

    void (*stat_add)(sy_host *h, int stat, int64_t delta);
    void (*stat_set)(sy_host *h, int stat, int64_t value);

    /* A value as statsd (JavaScript) writes it: the shortest text that
     * reads back as the same double ("0.1", "150", "1e+21").  buf must
     * hold 32 bytes; returns the length, buf is NUL-terminated. */
    size_t (*format_number)(double v, char *buf);

    /* ABI 1.1.  Client text (a name, a set member) as the admin console
     * shows it, for sinks whose output a person reads: control characters,
     * DEL and C1 escaped (\r, \t, \x1B), backslash doubled, each byte of
     * malformed UTF-8 as \xHH.  Writes whole characters while 4 bytes of buf are left
     * (cap must be at least 4), sets *used to the bytes of s consumed, and
     * returns the bytes written; call again with the rest of s. */
    size_t (*escape_text)(const char *s, size_t len, char *buf, size_t cap, size_t *used);
} sy_host_api;

typedef struct sy_sink_plugin {
    /* Never move these three: the host reads them before anything else. */
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size;

    const char *name;        /* the `plugin = "..."` name */
    const char *version;
    const char *description;
    /* NULL-terminated list of the settings this plugin reads, so that a
     * misspelt key is an error at --check; NULL accepts anything.  The
     * host itself owns `plugin`. */
    const char *const *settings;

    /* 0 on success; otherwise non-zero with the reason in err (the host
     * prefixes it with the sink's name). */
    int (*init)(const sy_host_api *api, sy_host *host, void **state,
                char *err, size_t errlen);
    sy_status (*write)(void *state, const sy_metric_batch *batch);
    sy_status (*write_samples)(void *state, const sy_sample_batch *batch); /* may be NULL */
    sy_status (*flush)(void *state, int final);
    /* metrics not yet handed to the destination; may be NULL (none).
     * Required callbacks: init, write, flush, close. */
    size_t (*pending)(void *state);
    void (*close)(void *state);

    /* ABI 1.1; may be NULL.  The host reads it only when struct_size
     * covers it, so a plugin built against 1.0 still loads (and gets only
     * the key check).  Reads and validates every setting exactly as init
     * would, and refuses what init would refuse, but opens nothing: no
     * socket, file, timer, thread, no DNS lookup.  `switchyard --check`,
     * start-up and each reload call it before init, so a config that
     * passes --check is not refused later for its settings.  In a check
     * the host's timer_new, watch_new and event_base return NULL, and log
     * shows only warnings and errors.  0, or non-zero with the reason in
     * err (the host prefixes the sink's name). */
    int (*check)(const sy_host_api *api, sy_host *host, char *err, size_t errlen);

    /* ABI 1.2; may be NULL (read only when struct_size covers it).  At
     * shutdown, when shutdownTimeout ran out with values still queued, a
     * host that can keep them (a sink with a disk spool) asks for them
     * back: the plugin passes what it has not delivered to keep(), oldest
     * first, in batches it owns (borrowed by keep for the call; names
     * NUL-terminated), forgets them, and returns how many values it
     * handed back.  A plugin whose queue no longer knows a value's kind
     * gives SY_KIND_INTERNAL.  Called at most once, after the final
     * flush; close follows. */
    size_t (*take_back)(void *state, void (*keep)(void *ctx, const sy_metric_batch *b),
                        void *ctx);

    /* ABI 1.3; may be NULL (read only when struct_size covers it).  Raw
     * DogStatsD lines the core does not aggregate (events `_e{...}` and
     * service checks `_sc|...`), to forward as they are: lines[i] is
     * lens[i] bytes exactly as the client sent it (a listener's token
     * removed), without its newline and not NUL-terminated; borrowed for
     * the call.  Called only for sinks named in the config's
     * `dogstatsdEvents`, which --check refuses for a plugin without it.
     * SY_OK or SY_SKIP: taken; SY_RETRY and SY_ERROR: not taken.  The
     * host holds no copy for a retry: a sink with a disk spool (host ABI
     * 1.6 or later) appends the n lines to it, replayed through
     * write_lines in order; without one they are counted as dropped.
     * While the spool holds anything (or the sink is down or stuck) the
     * lines go to the spool without calling write_lines, as batches
     * do. */
    sy_status (*write_lines)(void *state, const char *const *lines, const uint32_t *lens,
                             size_t n);

    /* ABI 1.4 (read only when struct_size covers it): a mask of
     * SY_SINK_FEATURE_*.  SY_SINK_FEATURE_TIMESTAMPS: write_samples wants
     * the clients' sample times (sy_sample_batch.timestamps_ms); a plugin
     * without it gets NULL there, as statsd-exact sinks should. */
    uint32_t features;

    /* ABI 1.5; may be NULL (read only when struct_size covers it).  The
     * same as take_back, for raw samples (write_samples) the sink took
     * and has not delivered: passed to keep() oldest first, in batches it
     * owns (borrowed for the call; timestamps_ms NULL or per sample, as
     * write_samples got them), then forgotten; returns how many samples.
     * The host spools them as raw samples, replayed through
     * write_samples.  Called at most once, after take_back (when the
     * plugin has it), before close. */
    size_t (*take_back_samples)(void *state,
                                void (*keep)(void *ctx, const sy_sample_batch *b), void *ctx);

    /* ABI 1.6; may be NULL (read only when struct_size covers it).  The
     * same as take_back, for DogStatsD lines (write_lines) the sink took
     * and has not delivered: passed to keep() oldest first, in batches it
     * owns (lines[i] is lens[i] bytes without a newline, borrowed for the
     * call), then forgotten; returns how many lines.  The host spools
     * them as raw lines, replayed through write_lines.  Called at most
     * once, after take_back_samples (when the plugin has it), before
     * close.  A host older than 1.6 never calls it: a plugin that keeps
     * copies for it may look at api->abi_minor to know whether anyone
     * will ask. */
    size_t (*take_back_lines)(void *state,
                              void (*keep)(void *ctx, const char *const *lines,
                                           const uint32_t *lens, size_t n),
                              void *ctx);
} sy_sink_plugin;

#define SY_SINK_FEATURE_TIMESTAMPS 1u

/* Fill the three leading members; use as the first initialiser:
 *   SY_SINK_EXPORT = { SY_SINK_HEADER, .name = "jsonl", ... };  */
#define SY_SINK_HEADER \
    .abi_major = SY_SINK_ABI_MAJOR, .abi_minor = SY_SINK_ABI_MINOR, \
    .struct_size = (uint32_t)sizeof(sy_sink_plugin)

#define SY_SINK_EXPORT \
    __attribute__((visibility("default"))) const sy_sink_plugin switchyard_sink

/*
 * The check every init (and check) starts with: the host must speak this
 * major version and its API must reach `newest`, the newest sy_host_api
 * member the plugin calls (format_number for a 1.0 host, escape_text for
 * 1.1).  0, or -1 with a message in err:
 *
 *   if (SY_SINK_CHECK_API(api, format_number, err, errlen) != 0)
 *       return -1;
 *
 * A header-only helper: it adds nothing to the ABI (no member, no symbol),
 * so the ABI version is unchanged by it.
 */
#define SY_SINK_API_END(member) \
    (offsetof(sy_host_api, member) + sizeof(((const sy_host_api *)0)->member))
#define SY_SINK_CHECK_API(api, newest, err, errlen) \
    sy_sink_check_api((api), SY_SINK_API_END(newest), (err), (errlen))

static inline int sy_sink_check_api(const sy_host_api *api, size_t needed, char *err,
                                    size_t errlen)
{
    static const char msg[] = "the host's API is too old for this plugin";
    size_t i = 0;
    if (api->abi_major == SY_SINK_ABI_MAJOR && api->struct_size >= needed)
        return 0;
    if (errlen == 0)
        return -1;
    for (; i + 1 < errlen && msg[i]; i++)
        err[i] = msg[i];
    err[i] = '\0';
    return -1;
}

#ifdef __cplusplus
}
#endif

#endif /* SWITCHYARD_SINK_H */
