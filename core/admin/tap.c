/*
 * tap.c - the live tap (see tap.h).
 */
#include "admin/tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/agg.h"
#include "config.h"
#include "util/log.h"

/* ---- globs --------------------------------------------------------- */

/* A glob of up to SY_TAP_GLOB_MAX bytes has at most that many tokens, so
 * its states (tokens matched so far, 0..k) fit in GW words. */
#define GW ((SY_TAP_GLOB_MAX + 1 + 63) / 64)
#define DFA_SETS 1024      /* sets of states cached, at most */
#define DFA_NEXT 32767     /* transitions cached: sets x byte classes */
#define DFA_INDEX 2048     /* the sets' hash index (a power of two) */
#define DFA_MISSES 256     /* transitions computed in one key; then no cache */
#define DFA_DEAD (-2)      /* a transition to the empty set: no match */

/*
 * The matcher runs the glob's states bit-parallel (one bit per token
 * matched so far, one step per byte of the key: linear in the key), and
 * caches the sets of states it meets with their transitions, a lazy DFA:
 * a key whose sets are cached costs one table load a byte whatever the
 * glob.  Bytes the glob treats alike share a class (those not in it, '.',
 * and one per literal byte), so the cache holds as many sets as fit in
 * DFA_NEXT transitions (1024 for a glob of few distinct bytes, 127 for
 * the most varied); it is emptied when full.  A key that needs more than
 * DFA_MISSES new transitions finishes without it, so a glob and keys made
 * to defeat the cache cost the bit-parallel steps plus those misses.
 */
struct sy_glob {
    int k;                   /* tokens */
    int nw;                  /* words of states: (k + 1 + 63) / 64 */
    size_t nlit;             /* bytes before the first star: a quick test */
    char lit0[SY_TAP_GLOB_MAX];
    uint8_t cls[256];        /* each byte's class: 0 not in the glob, 1 '.', 2.. */
    int ncls;
    uint64_t lit[256][GW];   /* per class: states whose next token is that byte */
    uint64_t star[GW];       /* states whose next token is `*` */
    uint64_t star2[GW];      /* ... `**` */
    uint64_t stars[GW];      /* either */
    /* the cache; set 0 is the start */
    int nsets, maxsets;
    uint64_t set[DFA_SETS][GW];
    uint64_t hash[DFA_SETS];
    uint8_t accept[DFA_SETS];
    int16_t index[DFA_INDEX];  /* 1 + a set's number, by hash; 0 empty */
    int16_t next[DFA_NEXT];    /* per set, per class: the next set's row
                                * (number times ncls), -1 not computed
                                * yet, DFA_DEAD */
    uint64_t resets, plain;    /* cache emptied; keys finished without it */
};

static void bit_set(uint64_t *w, int i) { w[i / 64] |= 1ull << (i % 64); }

/* One byte (of class c): literal tokens that match it move their state up
 * one, stars keep theirs (`*` not on a '.'), then a star's state also
 * passes on with no byte; stars never follow stars, so one pass is that
 * closure.  Word by word, with the carries of both shifts.  Returns 0 for
 * the empty set. */
static uint64_t step(const sy_glob *g, const uint64_t *d, int c, uint64_t *nd)
{
    const uint64_t *lit = g->lit[c], *stay = c == 1 ? g->star2 : g->stars;
    uint64_t carry = 0, ccarry = 0, any = 0;
    /* all GW words, unrolled: the words past nw are 0 and stay so */
#pragma GCC unroll 8
    for (int w = 0; w < GW; w++) {
        uint64_t m = d[w] & lit[w];
        uint64_t x = (m << 1) | carry | (d[w] & stay[w]);
        carry = m >> 63;
        uint64_t cl = x & g->stars[w];
        x |= (cl << 1) | ccarry;
        ccarry = cl >> 63;
        nd[w] = x;
        any |= x;
    }
    return any;
}

static uint64_t set_hash(const sy_glob *g, const uint64_t *d)
{
    uint64_t h = 0;
    for (int w = 0; w < g->nw; w++)
        h = (h ^ d[w]) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

static int is_accepting(const sy_glob *g, const uint64_t *d) { return (d[g->k / 64] >> (g->k % 64)) & 1; }

static int dfa_add(sy_glob *g, const uint64_t *d, uint64_t h)
{
    int i = g->nsets++;
    memcpy(g->set[i], d, (size_t)g->nw * 8);
    g->hash[i] = h;
    g->accept[i] = (uint8_t)is_accepting(g, d);
    memset(&g->next[i * g->ncls], 0xff, (size_t)g->ncls * sizeof *g->next);
    size_t j = h & (DFA_INDEX - 1);
    while (g->index[j])
        j = (j + 1) & (DFA_INDEX - 1);
    g->index[j] = (int16_t)(i + 1);
    return i;
}

/* The cache's number of set d, added if new; *from (the set a transition
 * leaves) is renumbered when the cache has to be emptied to make room. */
static int dfa_find(sy_glob *g, const uint64_t *d, int *from)
{
    uint64_t h = set_hash(g, d);
    for (size_t j = h & (DFA_INDEX - 1); g->index[j]; j = (j + 1) & (DFA_INDEX - 1)) {
        int i = g->index[j] - 1;
        if (g->hash[i] == h && memcmp(g->set[i], d, (size_t)g->nw * 8) == 0)
            return i;
    }
    if (g->nsets == g->maxsets) {
        uint64_t keep[GW], start[GW];
        memcpy(keep, g->set[*from], sizeof keep);
        memcpy(start, g->set[0], sizeof start);
        uint64_t kh = g->hash[*from], sh = g->hash[0];
        g->nsets = 0;
        memset(g->index, 0, sizeof g->index);
        dfa_add(g, start, sh); /* the start stays set 0 */
        *from = *from == 0 ? 0 : dfa_add(g, keep, kh);
        g->resets++;
    }
    return dfa_add(g, d, h);
}

sy_glob *sy_glob_new(const char *glob, size_t len)
{
    if (len == 0 || len > SY_TAP_GLOB_MAX)
        return NULL;
    sy_glob *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    int k = 0;
    while (g->nlit < len && glob[g->nlit] != '*')
        g->nlit++;
    memcpy(g->lit0, glob, g->nlit);
    g->cls['.'] = 1;
    g->ncls = 2;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)glob[i];
        if (c != '*' && c != '.' && !g->cls[c])
            g->cls[c] = (uint8_t)g->ncls++;
    }
    for (size_t i = 0; i < len;) {
        if (glob[i] != '*') {
            bit_set(g->lit[g->cls[(unsigned char)glob[i]]], k++);
            i++;
            continue;
        }
        /* A run of stars is one token: `*` alone, `**` otherwise (two
         * stars in a row would match what one `**` does). */
        size_t run = 0;
        while (i < len && glob[i] == '*')
            i++, run++;
        bit_set(run == 1 ? g->star : g->star2, k++);
    }
    g->k = k;
    g->nw = (k + 1 + 63) / 64;
    for (int w = 0; w < GW; w++)
        g->stars[w] = g->star[w] | g->star2[w];
    g->maxsets = DFA_NEXT / g->ncls < DFA_SETS ? DFA_NEXT / g->ncls : DFA_SETS;
    /* the start: state 0 and, when the glob starts with a star, state 1 */
    uint64_t d[GW] = { 1 };
    if (g->stars[0] & 1)
        d[0] |= 2;
    dfa_add(g, d, set_hash(g, d));
    return g;
}

void sy_glob_free(sy_glob *g) { free(g); }

void sy_glob_counts(const sy_glob *g, uint64_t *resets, uint64_t *plain)
{
    *resets = g->resets;
    *plain = g->plain;
}

int sy_glob_match(sy_glob *g, const char *s, size_t len)
{
    /* Most keys differ from a glob in its first bytes: no need to run
     * the states for them. */
    if (len < g->nlit || memcmp(s, g->lit0, g->nlit) != 0)
        return 0;
    const int16_t *next = g->next;
    const uint8_t *cls = g->cls;
    const unsigned char *u = (const unsigned char *)s;
    int row = 0, misses = 0; /* the current set's row in next */
    size_t i = 0;
    for (; i < len; i++) {
        int nx = next[row + cls[u[i]]];
        if (__builtin_expect(nx < 0, 0)) {
            if (nx == DFA_DEAD)
                return 0;
            if (++misses > DFA_MISSES)
                break;
            uint64_t nd[GW];
            int st = row / g->ncls, c = cls[u[i]];
            if (!step(g, g->set[st], c, nd)) {
                g->next[st * g->ncls + c] = DFA_DEAD;
                return 0;
            }
            nx = dfa_find(g, nd, &st) * g->ncls;
            g->next[st * g->ncls + c] = (int16_t)nx;
        }
        row = nx;
    }
    int st = row / g->ncls;
    if (i == len)
        return g->accept[st];
    /* too many new sets for the cache in this key: the plain steps */
    g->plain++;
    uint64_t d[GW], nd[GW];
    memcpy(d, g->set[st], sizeof d);
    for (; i < len; i++) {
        if (!step(g, d, cls[u[i]], nd))
            return 0;
        memcpy(d, nd, sizeof d);
    }
    return is_accepting(g, d);
}

/* ---- taps ---------------------------------------------------------- */

typedef struct tap_slot {
    pthread_mutex_t lock;   /* the engine only try-locks it */
    int open;               /* claimed by an admin client */
    int full;               /* gave its n lines: takes no more */
    sy_glob *glob;
    uint64_t n, given;      /* lines asked for, lines queued so far */
    uint64_t sec, in_sec;   /* the rate's second, and lines in it */
    uint64_t shown, skipped_rate, skipped_queue, skipped_slow;
    size_t head, count;     /* the queue */
    uint16_t len[SY_TAP_QUEUE];
    char line[SY_TAP_QUEUE][SY_TAP_LINE];
} tap_slot;

_Atomic int sy_tap_on;
static atomic_int slot_open[SY_TAP_MAX]; /* the engine's lock-free look */
static tap_slot *slots[SY_TAP_MAX];      /* made at first use, kept */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static sy_tap_stats stats;

/* The routing's sink names (engine thread only). */
static char **sink_names;
static size_t nsink_names;

const sy_tap_stats *sy_tap_get_stats(void) { return &stats; }

void sy_tap_set_sinks(const sy_config *c)
{
    size_t n = c->nsinks;
    for (size_t i = 0; i < nsink_names; i++)
        free(sink_names[i]);
    free(sink_names);
    sink_names = n ? calloc(n, sizeof *sink_names) : NULL;
    nsink_names = sink_names ? n : 0;
    for (size_t i = 0; i < nsink_names; i++)
        sink_names[i] = strdup(c->sinks[i].name ? c->sinks[i].name : "?");
}

/* Appends s escaped: bytes below 0x20, 0x7f and `\` as \xNN, so that one
 * tapped line is one line of output whatever the client sent. */
static size_t put_escaped_(char *o, size_t at, size_t cap, const char *s, size_t n, int quoted)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && at + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\' || (quoted ? c == '"' : c == ' ')) {
            o[at++] = '\\';
            o[at++] = 'x';
            o[at++] = hex[c >> 4];
            o[at++] = hex[c & 15];
        } else {
            o[at++] = (char)c;
        }
    }
    return at;
}

/* Unquoted (the line, names): spaces escaped too, so fields split on
 * spaces; quoted (reasons): `"` escaped instead. */
static size_t put_escaped(char *o, size_t at, size_t cap, const char *s, size_t n)
{
    return put_escaped_(o, at, cap, s, n, 0);
}

static size_t put(char *o, size_t at, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (at + n >= cap)
        n = cap - at - 1;
    memcpy(o + at, s, n);
    return at + n;
}

static size_t put_sinks(char *o, size_t at, size_t cap, uint64_t mask)
{
    int first = 1;
    for (size_t i = 0; i < 64 && mask; i++) {
        if (!(mask & (1ull << i)))
            continue;
        mask &= ~(1ull << i);
        if (!first)
            at = put(o, at, cap, ",");
        first = 0;
        at = put(o, at, cap, i < nsink_names ? sink_names[i] : "?");
    }
    if (first)
        at = put(o, at, cap, "-");
    return at;
}

static const char *const outcome_names[] = { "routed", "sampled-out", "dropped", "refused", "bad",
                                             "refused-by-maxKeys", "refused-by-budget" };

/* The line as a client sees it: LINE TAB decision key=value... */
static size_t format(char *o, size_t cap, const sy_tap_event *ev)
{
    char num[64];
    size_t at = put_escaped(o, 0, cap - 64, ev->line, ev->len);
    at = put(o, at, cap, "\t");
    at = put(o, at, cap, outcome_names[ev->outcome]);
    if (ev->reason) {
        at = put(o, at, cap, " reason=\"");
        at = put_escaped_(o, at, cap - 1, ev->reason, strlen(ev->reason), 1);
        at = put(o, at, cap, "\"");
    }
    if (ev->outcome == SY_TAP_ROUTED || ev->outcome == SY_TAP_SAMPLED_OUT || ev->outcome == SY_TAP_LIMIT) {
        at = put(o, at, cap, " sinks=");
        at = put_sinks(o, at, cap, ev->sinks);
        if (ev->raw) {
            at = put(o, at, cap, " passthrough=");
            at = put_sinks(o, at, cap, ev->raw);
        }
        if (ev->rate < 1) {
            snprintf(num, sizeof num, " sample=%.17g", ev->rate);
            at = put(o, at, cap, num);
        }
    }
    if (ev->name) {
        at = put(o, at, cap, " name=");
        at = put_escaped(o, at, cap, ev->name, ev->nlen);
    }
    at = put(o, at, cap, " tenant=");
    if (ev->tenant && ev->tlen)
        at = put_escaped(o, at, cap, ev->tenant, ev->tlen);
    else
        at = put(o, at, cap, "-");
    at = put(o, at, cap, " listener=");
    at = put(o, at, cap, ev->listener && *ev->listener ? ev->listener : "-");
    at = put(o, at, cap, " sender=");
    at = put(o, at, cap, ev->sender && *ev->sender ? ev->sender : "-");
    o[at++] = '\n';
    return at;
}

static uint64_t now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return (uint64_t)t.tv_sec;
}

void sy_tap_emit(const sy_tap_event *ev)
{
    for (int i = 0; i < SY_TAP_MAX; i++) {
        if (!atomic_load_explicit(&slot_open[i], memory_order_acquire))
            continue;
        tap_slot *s = slots[i];
        if (pthread_mutex_trylock(&s->lock) != 0) {
            /* the admin is taking lines out: skip rather than wait */
            atomic_fetch_add_explicit(&stats.skipped_busy, 1, memory_order_relaxed);
            continue;
        }
        if (s->open && !s->full && sy_glob_match(s->glob, ev->key, ev->klen)) {
            uint64_t sec = now_s();
            if (sec != s->sec) {
                s->sec = sec;
                s->in_sec = 0;
            }
            if (s->in_sec >= SY_TAP_RATE) {
                s->skipped_rate++;
                atomic_fetch_add_explicit(&stats.skipped_rate, 1, memory_order_relaxed);
            } else if (s->count == SY_TAP_QUEUE) {
                s->skipped_queue++;
                atomic_fetch_add_explicit(&stats.skipped_queue, 1, memory_order_relaxed);
            } else {
                size_t at = (s->head + s->count) % SY_TAP_QUEUE;
                s->len[at] = (uint16_t)format(s->line[at], SY_TAP_LINE, ev);
                s->count++;
                s->in_sec++;
                if (++s->given >= s->n)
                    s->full = 1;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
}

static sy_ratelimit rl_refused = SY_RATELIMIT_INIT(10000, 2);
static sy_ratelimit rl_skipped = SY_RATELIMIT_INIT(10000, 2);

int sy_tap_open(const char *glob, long n, char *err, size_t errlen)
{
    size_t glen = strlen(glob);
    if (glen == 0 || glen > SY_TAP_GLOB_MAX || n < 1 || n > SY_TAP_N_MAX) {
        atomic_fetch_add(&stats.refused_bad, 1);
        if (glen == 0 || glen > SY_TAP_GLOB_MAX)
            snprintf(err, errlen, "a glob of 1 to %d bytes, please (this one has %zu)",
                     SY_TAP_GLOB_MAX, glen);
        else
            snprintf(err, errlen, "N is 1 to %d lines", SY_TAP_N_MAX);
        sy_log_limited(&rl_refused, SY_WARN, "admin: a tap refused: %s (switchyard_tap_refused_total)",
                       err);
        return -1;
    }
    pthread_mutex_lock(&open_lock);
    int id = -1;
    for (int i = 0; i < SY_TAP_MAX && id < 0; i++)
        if (!atomic_load(&slot_open[i]))
            id = i;
    if (id < 0) {
        pthread_mutex_unlock(&open_lock);
        atomic_fetch_add(&stats.refused_busy, 1);
        snprintf(err, errlen, "%d taps are open already; try again later", SY_TAP_MAX);
        sy_log_limited(&rl_refused, SY_WARN, "admin: a tap refused: %d are open "
                       "(switchyard_tap_refused_total)", SY_TAP_MAX);
        return -1;
    }
    if (!slots[id]) {
        slots[id] = calloc(1, sizeof *slots[id]);
        if (slots[id])
            pthread_mutex_init(&slots[id]->lock, NULL);
    }
    sy_glob *g = sy_glob_new(glob, glen);
    tap_slot *s = slots[id];
    if (!s || !g) {
        pthread_mutex_unlock(&open_lock);
        sy_glob_free(g);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    s->glob = g;
    s->n = (uint64_t)n;
    s->given = s->sec = s->in_sec = 0;
    s->shown = s->skipped_rate = s->skipped_queue = s->skipped_slow = 0;
    s->head = s->count = 0;
    s->full = 0;
    s->open = 1;
    pthread_mutex_unlock(&s->lock);
    atomic_store_explicit(&slot_open[id], 1, memory_order_release);
    atomic_fetch_add(&sy_tap_on, 1);
    pthread_mutex_unlock(&open_lock);
    atomic_fetch_add(&stats.opened, 1);
    return id;
}

int sy_tap_read(int id, sy_buf *out, size_t max, int skip)
{
    tap_slot *s = slots[id];
    /* A few lines per hold of the lock, so the engine's try-lock rarely
     * finds it taken. */
    char tmp[16][SY_TAP_LINE];
    uint16_t lens[16];
    size_t taken = 0;
    for (;;) {
        size_t k = 0;
        pthread_mutex_lock(&s->lock);
        while (k < 16 && s->count && taken < max) {
            memcpy(tmp[k], s->line[s->head], s->len[s->head]);
            lens[k] = s->len[s->head];
            taken += lens[k];
            k++;
            s->head = (s->head + 1) % SY_TAP_QUEUE;
            s->count--;
        }
        if (skip) {
            s->skipped_slow += k;
        } else {
            s->shown += k;
        }
        int done = s->full && s->count == 0;
        pthread_mutex_unlock(&s->lock);
        if (skip)
            atomic_fetch_add_explicit(&stats.skipped_slow, k, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&stats.lines, k, memory_order_relaxed);
        for (size_t i = 0; i < k && !skip; i++)
            sy_buf_add(out, tmp[i], lens[i]);
        if (k == 0 || taken >= max)
            return done;
    }
}

void sy_tap_close(int id, sy_buf *out)
{
    tap_slot *s = slots[id];
    pthread_mutex_lock(&open_lock);
    atomic_store_explicit(&slot_open[id], 0, memory_order_release);
    pthread_mutex_lock(&s->lock);
    s->open = 0;
    sy_glob *g = s->glob;
    s->glob = NULL;
    if (out)
        sy_buf_printf(out, "tap: %llu lines shown; skipped: %llu over the rate (%d/s), %llu for a "
                      "full queue, %llu for a slow reader\n",
                      (unsigned long long)s->shown, (unsigned long long)s->skipped_rate, SY_TAP_RATE,
                      (unsigned long long)s->skipped_queue, (unsigned long long)s->skipped_slow);
    uint64_t skipped = s->skipped_rate + s->skipped_queue + s->skipped_slow;
    uint64_t slow = s->skipped_slow;
    pthread_mutex_unlock(&s->lock);
    if (skipped)
        sy_log_limited(&rl_skipped, SY_INFO, "admin: a tap skipped %llu matching lines (%llu for a slow "
                       "reader; switchyard_tap_skipped_total)", (unsigned long long)skipped,
                       (unsigned long long)slow);
    atomic_fetch_sub(&sy_tap_on, 1);
    pthread_mutex_unlock(&open_lock);
    sy_glob_free(g);
}
