/*
 * tap.h - the live tap: incoming lines that match a glob, each with the
 * decision taken for it, streamed to an admin client.
 *
 * The engine thread produces, the admin thread consumes.  Each tap is a
 * fixed slot (SY_TAP_MAX of them) holding its glob, its bounds and a
 * fixed queue of formatted lines.  The engine only ever try-locks a slot:
 * when the admin holds it, or the queue is full, or the tap's rate is
 * spent, the line is skipped and counted, so ingest never waits for an
 * admin client.  With no tap open the only cost on the hot path is one
 * load of sy_tap_on (see agg.c).
 */
#ifndef SY_TAP_H
#define SY_TAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SY_TAP_MAX 4           /* taps open at once; more are refused */
#define SY_TAP_GLOB_MAX 256    /* bytes of a glob */
#define SY_TAP_N_DEFAULT 100   /* lines of a tap unless asked */
#define SY_TAP_N_MAX 100000    /* lines a tap may ask for */
#define SY_TAP_RATE 200        /* lines a second per tap; more are skipped */
#define SY_TAP_QUEUE 256       /* formatted lines waiting per tap */
#define SY_TAP_LINE 1024       /* bytes of one tapped line (cut beyond) */
#define SY_TAP_CLIENT_BUF (64u << 10) /* a client with this much unread skips lines */
#define SY_TAP_SECONDS 600     /* the longest a tap stays open */

/* Taps open: the hot path's one test. */
extern _Atomic int sy_tap_on;

enum {
    SY_TAP_ROUTED = 0,      /* aggregated (and/or passed through) */
    SY_TAP_SAMPLED_OUT,     /* left out by the route's sample() */
    SY_TAP_DROPPED,         /* a route dropped it (reason) */
    SY_TAP_REFUSED,         /* auth: missing or refused token */
    SY_TAP_BAD,             /* not a valid line */
    SY_TAP_LIMIT,           /* a new key refused by maxKeys */
    SY_TAP_BUDGET,          /* a new key refused by a series budget (limits) */
};

/* One line (or one sample of it) and what became of it. */
typedef struct sy_tap_event {
    const char *line;       /* as received, token removed */
    size_t len;
    const char *key;        /* what the glob is matched against */
    size_t klen;
    int outcome;
    const char *reason;     /* SY_TAP_DROPPED / REFUSED, else NULL */
    uint64_t sinks, raw;    /* aggregated to, passed through to */
    double rate;            /* the route's sample rate (1: all) */
    const char *name;       /* the final name */
    size_t nlen;
    const char *tenant;     /* the token's namespace, or NULL */
    size_t tlen;
    const char *listener;
    const char *sender;     /* "" when none */
} sy_tap_event;

/* Engine thread: hand an event to every open tap whose glob matches. */
void sy_tap_emit(const sy_tap_event *ev);
/* Engine thread: the sink names of the routing in use (bit i is sink i
 * of the config); the names are copied. */
struct sy_config;
void sy_tap_set_sinks(const struct sy_config *c);

/* Admin thread.  Opens a tap; its id, or -1 with why in err (too many
 * open, a glob too long or empty, n out of range). */
int sy_tap_open(const char *glob, long n, char *err, size_t errlen);
/* Appends what the engine has queued, up to about max bytes, to out (a
 * growing buffer: see agg.h's sy_buf; passed as void to keep this header
 * free of it).  With skip, the lines are dropped and counted instead (the
 * client is slow).  1 once the tap has given its n lines and all is
 * taken. */
struct sy_buf;
int sy_tap_read(int id, struct sy_buf *out, size_t max, int skip);
/* Closes the tap, appending its summary line to out (may be NULL). */
void sy_tap_close(int id, struct sy_buf *out);

/* For /metrics (any thread). */
typedef struct sy_tap_stats {
    _Atomic uint64_t opened, refused_busy, refused_bad;
    _Atomic uint64_t lines;        /* lines given to clients */
    _Atomic uint64_t skipped_rate, skipped_queue, skipped_slow, skipped_busy;
} sy_tap_stats;
const sy_tap_stats *sy_tap_get_stats(void);

/* Globs as route.glob has them: `*` any run but '.', `**` any run.
 * Matched in time linear in the key (bit-parallel, with a cache of the
 * sets of states met: see tap.c), whatever the glob.  A match writes to
 * the glob's cache: one thread at a time (the engine's, for a tap). */
typedef struct sy_glob sy_glob;
sy_glob *sy_glob_new(const char *glob, size_t len);
int sy_glob_match(sy_glob *g, const char *s, size_t len);
void sy_glob_free(sy_glob *g);
/* How often the cache was emptied, and keys that finished without it. */
void sy_glob_counts(const sy_glob *g, uint64_t *resets, uint64_t *plain);

#endif
