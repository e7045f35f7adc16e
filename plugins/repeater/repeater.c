/*
 * repeater.c - forwards raw samples (pass-through routes), and optionally
 * flushed values, as StatsD lines to another statsd or switchyard, over UDP
 * or TCP, with a bounded queue and reconnects.
 *
 * Raw samples become the line the sender could have sent to the next hop
 * itself:
 *
 *   NAME:TEXT|TYPE[|@RATE][|#TAGS]\n        TYPE is c, g, ms or s
 *
 * TEXT is the value as sent (a gauge delta keeps its sign, a set member
 * its text), RATE is the effective sample rate (the sender's @rate times a
 * route's :sample), and NAME is the routed name.  A routed name carries
 * its tags graphite-style ("api.req;env=prod"), and when the sender used
 * DogStatsD tags ("api.req:1|c|#env:prod") those ";env=prod" parts were
 * made from them.  Sending both the name as it is and "|#env:prod" would
 * tag the key twice downstream ("api.req;env=prod;env=prod"), so when a
 * sample has DogStatsD tags the parts of the name made from them are cut
 * off and the tags are sent as they came: the next hop rebuilds the very
 * same key, and a trace sink there still sees the tags exactly as the
 * client wrote them.  Graphite-style tags written in the name itself are
 * kept in the name.
 *
 * Flushed values (setting `flushed`) are already final for their interval:
 * a counter's rate, a timer's mean or upper_90, a set's count.  Sent as
 * counters or timers they would be aggregated a second time downstream
 * (a rate divided by the flush interval again, statistics of statistics),
 * so they are sent as gauges, which the next hop stores unchanged.  A
 * negative value is written as "NAME:0|g" then "NAME:-V|g", because a
 * leading '-' makes a gauge line a delta.  The name is the full flushed
 * name ("stats.gauges.x"), so the next hop adds its own prefixes to it.
 *
 * Several destinations (a relay tier): with `destinations`, keys are spread
 * over several downstream statsd or switchyard instances by consistent
 * hashing, so that every sample of one key reaches the same aggregator
 * (a timer's percentiles and a set's count need all of a key's samples in
 * one place).  What is hashed is the routed name exactly as the sink gets
 * it, tags included ("api.req;env=prod"): that is the key the next hop
 * aggregates under (it rebuilds the very same key from the line), so
 * hashing it keeps every sample of one downstream key together, and keys
 * that differ only in a tag still spread over the tier.  A flushed value
 * (setting `flushed`) is placed by its full flushed name.
 *
 * `hashing` chooses how (see lib/shard.h):
 *   "ketama" (default)  a ring of 160 points per destination, laid out as
 *                       libketama does (md5 of "HOST:PORT-i"), named by
 *                       the "HOST:PORT" text as configured.  Adding or
 *                       removing any destination moves about 1/N of the
 *                       keys; the order of the list does not matter; a
 *                       down destination's keys go to the next
 *                       destinations round the ring, spread over them.
 *   "jump"              jump consistent hash over the list's order:
 *                       exact balance and exactly minimal movement, but
 *                       only when destinations are appended to or removed
 *                       from the END of the list (removing one in the
 *                       middle moves most keys).
 *
 * Each destination has its own connection, its own queue (each bounded by
 * maxQueueBytes) and its own reconnect backoff.  A destination is down
 * when, over TCP, it has not been connected for downAfterMs (since the
 * start, or since its connection was lost: connects keep failing), and,
 * over UDP, from an ICMP error (port unreachable and the like: nothing
 * listening) until a probe (an empty datagram, which statsd and switchyard
 * ignore) is no longer answered with one; a UDP destination whose socket
 * cannot even be opened is down after downAfterMs too.  `onDown` says what
 * happens to its share of the keys meanwhile:
 *   "queue" (default)   it waits in the destination's own queue and is
 *                       delivered when the destination is back; what does
 *                       not fit is dropped and counted (DROPPED);
 *   "rehash"            new samples of its keys go to the next up
 *                       destination (ketama: round the ring; jump: a
 *                       re-jump), so nothing waits on it; no other key
 *                       moves.  Lines queued for it before it was marked
 *                       down stay in its queue.  The moved samples are
 *                       counted per destination and logged (at most every
 *                       10 s, at info level, with the running total): the
 *                       sink statistics have no member for them, so SENT,
 *                       DROPPED and QUEUED keep their meaning (a rehashed
 *                       sample is sent, once, by the destination it went
 *                       to).  When every destination is down, keys stay
 *                       with their own destination (queued).
 *   Once it is back, its keys return to it: for one flush interval a
 *   key's samples may then be split between two aggregators.
 *
 * Statistics over several destinations: SENT, DROPPED, ERRORS and
 * RECONNECTS add up over them, QUEUED and QUEUED_BYTES are the sums of
 * their queues, and CONNECTED is the number of destinations connected
 * (for UDP: with a socket open and not answered with ICMP errors).
 *
 * UDP: one non-blocking socket connect()ed to each destination.  Lines are
 * packed into datagrams of at most maxDatagramBytes (a line longer than
 * that goes alone) and sent with sendmmsg when the socket is writable;
 * EAGAIN keeps the queue.  An ICMP error for an earlier datagram (nothing
 * listening) is counted and stops the sending: the socket is closed and,
 * after the reconnect backoff, opened again with a probe, an empty
 * datagram; when no ICMP error answers it within PROBE_WAIT_MS the queue
 * is sent again (nothing that was queued is lost; datagrams sent before
 * the first ICMP error came back are, as UDP goes).  Other persistent
 * errors close the socket and open it again with backoff, keeping the
 * queue.
 * TCP: lib/netq (reconnects with backoff, lines never cut in two).
 *
 * The queue is bounded in bytes.  A batch that does not fit the queue of a
 * destination that is connected and moving waits (SY_RETRY: the host holds
 * it, within retryMaxMetrics, and offers it again as the queue drains; see
 * lib/pace.h), so a flush or a burst larger than the queue is not cut
 * while the next hop keeps up.  When a destination is down or stuck, the
 * rest of a batch for it that its queue cannot take is dropped and
 * counted.  SENT counts lines, not datagrams.
 *
 * Settings:
 *   host              address or name, IPv4 or IPv6   (default "127.0.0.1")
 *   port              (default 8125)
 *   destinations      instead of host and port (giving both is an error):
 *                     a list of "HOST:PORT" ("[IPV6]:PORT"), or one such
 *                     string; each listed once
 *   hashing           "ketama" (default), "statsd" (statsd proxy's ring) or
 *                     "jump", with destinations
 *   onDown            "queue" (default) or "rehash", with destinations
 *   downAfterMs       how long a TCP destination (or a UDP one whose
 *                     socket cannot be opened) may stay unconnected
 *                     before it counts as down        (default 5000)
 *   protocol          "udp" (default) or "tcp", for every destination
 *   maxQueueBytes     queue bound, per destination    (default 16 MiB)
 *   maxDatagramBytes  UDP payload size to pack up to  (default 1432)
 *   reconnectMinMs    first reconnect delay           (default 100)
 *   reconnectMaxMs    reconnect delay cap             (default 30000)
 *   connectTimeoutMs  one TCP connect attempt         (default 5000)
 *   flushed           "none" (default), "gauges" (flushed gauges only) or
 *                     "all" (every flushed value, switchyard's own too)
 *   maxKeptBytes      with a disk spool: the copies of raw samples and of
 *                     DogStatsD lines kept for take_back, per destination
 *                     and kind                        (default 64 MiB)
 *
 * take_back (a sink with `spool = { dir = ... }`): what the queues still
 * hold when shutdownTimeout runs out goes back to the host's spool:
 * flushed values from the keep log (lib/keeplog), raw samples from a copy
 * of each one kept beside its line (lib/samplelog, numbered by the line's
 * end in bytes appended, forgotten once the queue has sent past it), and
 * DogStatsD events and service checks the same way (lib/linelog).  A
 * sample or line that finds its copy log full (maxKeptBytes) is sent as
 * usual but not kept; that is counted and logged, and at shutdown such
 * lines stay in the queue and are counted as dropped at close.
 *
 * Addresses are resolved once, at start.
 */
#include "repeater.h"

static const char *const repeater_settings[] = {
    "host", "port", "destinations", "hashing", "onDown", "downAfterMs", "protocol",
    "maxQueueBytes", "maxDatagramBytes", "reconnectMinMs", "reconnectMaxMs",
    "connectTimeoutMs", "flushed", "maxKeptBytes", NULL
};

/* ------------------------------------------------------------------ */
/* Destinations                                                        */
/* ------------------------------------------------------------------ */

/* Judges which destinations are down (once per batch) and logs the
 * changes.  TCP: not connected for downAfterMs.  UDP: answered with ICMP
 * errors, or without a socket for downAfterMs. */
static void rp_judge(repeater *r)
{
    if (r->nd < 2)
        return;
    uint64_t now = r->api->monotonic_ms(r->host);
    size_t ndown = 0;
    for (size_t i = 0; i < r->nd; i++) {
        rdest *d = &r->d[i];
        int connected = r->proto == PROTO_TCP ? netq_connected(d->tq) : d->part.connected != 0;
        int down = (r->proto == PROTO_UDP && d->icmp_down) ||
                   (!connected && now - d->part.unconnected_since >= r->down_after_ms);
        if (down && !d->down) {
            d->rehashed_total = 0;
            r->api->log(r->host, SY_LOG_WARN,
                        "destination %s is down (%s): %s", d->label,
                        r->proto == PROTO_TCP ? "not connected" : d->icmp_down
                            ? "ICMP errors, nothing listening?" : "no socket",
                        r->on_down == ONDOWN_REHASH
                            ? "its keys go to the next destinations on the ring until it is back"
                            : "its keys wait in its queue until it is back");
        } else if (!down && d->down) {
            if (d->rehashed_unlogged || d->rehashed_total)
                r->api->log(r->host, SY_LOG_INFO,
                            "destination %s is back; %llu samples of its keys went to other "
                            "destinations meanwhile", d->label,
                            (unsigned long long)(d->rehashed_total + d->rehashed_unlogged));
            else
                r->api->log(r->host, SY_LOG_INFO, "destination %s is back", d->label);
            d->rehashed_total += d->rehashed_unlogged;
            d->rehashed_unlogged = 0;
        }
        d->down = down;
        r->up[i] = !down;
        ndown += down;
    }
    r->ndown = ndown;
}

/* The destination of a key, for the current batch.  When the key's own
 * destination is down and the key goes elsewhere (onDown = "rehash"),
 * that is counted for its own, which *from is set to (else NULL). */
static rdest *rp_pick(repeater *r, const char *key, size_t len, rdest **from)
{
    *from = NULL;
    if (r->nd == 1)
        return &r->d[0];
    if (r->on_down == ONDOWN_REHASH && r->ndown) {
        size_t own;
        size_t i = shard_pick_up(r->ring, key, len, r->up, &own);
        if (i != own) {
            *from = &r->d[own];
            (*from)->rehashed_unlogged++;
        }
        return &r->d[i];
    }
    return &r->d[shard_pick(r->ring, key, len)];
}

/* Drops, refusals, bad names and rehashed samples are logged at most
 * every LOG_EVERY_MS, with the count since the last message: a dead
 * destination must not flood the log. */
void rp_log(repeater *r, int force)
{
    uint64_t now = r->api->monotonic_ms(r->host);
    if (!force && r->last_log && now - r->last_log < LOG_EVERY_MS)
        return;
    for (size_t i = 0; i < r->nd; i++) {
        rdest *d = &r->d[i];
        char where[400];
        size_t qbytes = r->proto == PROTO_TCP ? netq_bytes(d->tq) : d->cq.bytes;
        if (d->drops_unlogged && r->nd == 1)
            r->api->log(r->host, SY_LOG_WARN, "queue full (%zu bytes): %llu lines dropped",
                        qbytes, (unsigned long long)d->drops_unlogged);
        else if (d->drops_unlogged)
            r->api->log(r->host, SY_LOG_WARN,
                        "queue for %s full (%zu bytes): %llu lines dropped", d->label,
                        qbytes, (unsigned long long)d->drops_unlogged);
        if (d->refused_unlogged)
            r->api->log(r->host, SY_LOG_WARN,
                        "%s: %llu sends answered with an ICMP error, such as port unreachable "
                        "(is anything listening there?)",
                        ud_where(d, where, sizeof(where)), (unsigned long long)d->refused_unlogged);
        if (d->rehashed_unlogged) {
            d->rehashed_total += d->rehashed_unlogged;
            r->api->log(r->host, SY_LOG_INFO,
                        "%llu samples of the keys of %s (down) went to other destinations "
                        "(%llu since it went down)", (unsigned long long)d->rehashed_unlogged,
                        d->label, (unsigned long long)d->rehashed_total);
        }
        d->drops_unlogged = d->refused_unlogged = d->rehashed_unlogged = 0;
    }
    if (r->bad_unlogged)
        r->api->log(r->host, SY_LOG_WARN,
                    "%llu lines dropped: a name that is empty or holds ':', '|#' or a line "
                    "break, a value that is not finite, or a datagram too big to send",
                    (unsigned long long)r->bad_unlogged);
    if (r->unkept_unlogged)
        r->api->log(r->host, SY_LOG_WARN,
                    "keep log full (maxKeptBytes %zu a destination): %llu raw samples or "
                    "DogStatsD lines not kept (%llu samples and %llu lines so far), lost if "
                    "unsent at shutdown", r->max_kept, (unsigned long long)r->unkept_unlogged,
                    (unsigned long long)r->unkept_samples, (unsigned long long)r->unkept_lines);
    r->bad_unlogged = r->unkept_unlogged = 0;
    r->last_log = now;
}

static int rp_unlogged(const repeater *r)
{
    if (r->bad_unlogged || r->unkept_unlogged)
        return 1;
    for (size_t i = 0; i < r->nd; i++)
        if (r->d[i].drops_unlogged || r->d[i].refused_unlogged || r->d[i].rehashed_unlogged)
            return 1;
    return 0;
}

/* Room for a line, or NULL when its queue is full (then the rest of the
 * batch for that destination is dropped too, keeping its order). */
static char *rp_reserve(rdest *d, size_t len)
{
    if (d->full)
        return NULL;
    char *p = d->r->proto == PROTO_TCP ? netq_reserve(d->tq, len) : uq_reserve(d, len);
    if (!p)
        d->full = 1;
    return p;
}

static uint64_t rp_done(const rdest *d);

/* The copies of raw samples and lines whose line the queue has sent are
 * forgotten (before each batch: the copies stay about what the queue
 * holds). */
static void rp_release_kept(repeater *r)
{
    for (size_t i = 0; i < r->nd && (r->keep_samples || r->keep_lines); i++) {
        uint64_t done = rp_done(&r->d[i]);
        if (r->d[i].ksamples)
            samplelog_release(r->d[i].ksamples, done);
        if (r->d[i].klines)
            linelog_release(r->d[i].klines, done);
    }
}

static void rp_commit(rdest *d, size_t len)
{
    d->appended += len;
    if (d->r->proto == PROTO_TCP)
        netq_commit(d->tq, len);
    else
        uq_commit_line(d, len);
}

/* Whether a batch needing `need` bytes (at most) of every destination's
 * queue waits (lib/pace.h).  Every destination is looked at, so that each
 * one's clock is kept. */
static int rp_must_wait(repeater *r, size_t need)
{
    uint64_t now = r->api->monotonic_ms(r->host);
    int wait = 0;
    for (size_t i = 0; i < r->nd; i++) {
        rdest *d = &r->d[i];
        if (r->proto == PROTO_TCP)
            wait |= pace_wait(&d->pace, now, netq_connected(d->tq), netq_sent(d->tq),
                              netq_bytes(d->tq), r->max_bytes, need);
        else
            wait |= pace_wait(&d->pace, now, d->part.connected != 0 && !d->icmp_down,
                              d->sent_lines, d->cq.bytes, r->max_bytes, need);
    }
    return wait;
}

/* After a batch: write when possible. */
static void rp_kick(repeater *r)
{
    for (size_t i = 0; i < r->nd; i++) {
        rdest *d = &r->d[i];
        d->full = 0;
        if (r->proto == PROTO_TCP) {
            netq_kick(d->tq);
        } else {
            ud_update_watch(d);
            ud_publish(d);
        }
    }
}

/* The end of every write: what it dropped or found bad counted (and
 * logged at a bounded rate), then the destinations kicked. */
static void rp_batch_done(repeater *r, size_t dropped, size_t bad)
{
    if (dropped || bad) {
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)(dropped + bad));
        r->bad_unlogged += bad;
    }
    if (rp_unlogged(r))
        rp_log(r, 0);
    rp_kick(r);
}

/* ------------------------------------------------------------------ */
/* Settings                                                            */
/* ------------------------------------------------------------------ */

static int string_setting(const sy_host_api *api, sy_host *host, const char *key,
                          const char *dflt, const char **out, char *err, size_t errlen)
{
    if (api->setting_string(host, key, dflt, out) < 0) {
        snprintf(err, errlen, "setting '%s' must be a string", key);
        return -1;
    }
    return 0;
}

/* One destination: "HOST:PORT" or "[IPV6]:PORT" into host (size hlen)
 * and port.  -1 with err set. */
static int parse_destination(const char *text, char *host, size_t hlen, int *port,
                             char *err, size_t errlen)
{
    const char *colon, *h = text;
    size_t n;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "setting 'destinations': '%s' is not [ADDRESS]:PORT", text);
            return -1;
        }
        h = text + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon) {
            snprintf(err, errlen, "setting 'destinations': '%s' is not HOST:PORT", text);
            return -1;
        }
        n = (size_t)(colon - text);
        if (memchr(text, ':', n)) {
            snprintf(err, errlen, "setting 'destinations': '%s': write an IPv6 address "
                     "in brackets, [ADDRESS]:PORT", text);
            return -1;
        }
    }
    if (n == 0 || n >= hlen) {
        snprintf(err, errlen, "setting 'destinations': '%s' has %s host", text,
                 n ? "too long a" : "no");
        return -1;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    long v = 0;
    const char *p = colon + 1;
    for (; *p >= '0' && *p <= '9' && v <= 65535; p++)
        v = v * 10 + (*p - '0');
    if (p == colon + 1 || *p || v < 1 || v > 65535) {
        snprintf(err, errlen, "setting 'destinations': '%s': the port must be a number "
                 "from 1 to 65535", text);
        return -1;
    }
    *port = (int)v;
    return 0;
}

static void repeater_free(repeater *r)
{
    for (size_t i = 0; i < r->nd; i++) {
        rdest *d = &r->d[i];
        keeplog_free(d->kept);
        samplelog_free(d->ksamples);
        linelog_free(d->klines);
        if (d->tq)
            netq_free(d->tq);
        if (r->proto == PROTO_UDP) {
            ud_close(d);
            if (d->timer)
                r->api->timer_free(d->timer);
            uq_free(d);
        }
    }
    shard_free(r->ring);
    free(r->up);
    free(r->d);
    free(r);
}


/* init, and with state NULL the check: every setting and destination is
 * judged the same way, and the check stops before any address is looked
 * up or any socket, queue or timer is made. */
static int repeater_setup(const sy_host_api *api, sy_host *host, void **state,
                          char *err, size_t errlen)
{
    const char *proto, *flushed, *hashing, *on_down;
    int64_t maxq, maxd, down_after, maxkept;
    reconnect_settings rs;
    char **names = NULL;
    int n = 0;

    if (SY_SINK_CHECK_API(api, format_number, err, errlen) != 0)
        return -1;
    if (string_setting(api, host, "protocol", "udp", &proto, err, errlen) ||
        string_setting(api, host, "flushed", "none", &flushed, err, errlen) ||
        string_setting(api, host, "hashing", "ketama", &hashing, err, errlen) ||
        string_setting(api, host, "onDown", "queue", &on_down, err, errlen))
        return -1;
    if (int_setting(api, host, "maxQueueBytes", 16 << 20, 1024, INT64_MAX, &maxq, err, errlen) ||
        int_setting(api, host, "maxDatagramBytes", 1432, 64, UDP_MAX_PAYLOAD, &maxd, err, errlen) ||
        reconnect_settings_read(api, host, &rs, err, errlen) ||
        int_setting(api, host, "downAfterMs", 5000, 0, 86400000, &down_after, err, errlen) ||
        int_setting(api, host, "maxKeptBytes", 64 << 20, 0, (int64_t)1 << 40, &maxkept, err,
                    errlen))
        return -1;

    repeater *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->api = api;
    r->host = host;
    r->max_bytes = (size_t)maxq;
    r->max_dgram = (size_t)maxd;
    r->min_ms = rs.min_ms;
    r->max_ms = rs.max_ms;
    r->down_after_ms = (uint64_t)down_after;
    hostproxy_init(&r->hp, api, host, 0);

    if (strcmp(proto, "udp") == 0) {
        r->proto = PROTO_UDP;
    } else if (strcmp(proto, "tcp") == 0) {
        r->proto = PROTO_TCP;
    } else {
        snprintf(err, errlen, "setting 'protocol' must be \"udp\" or \"tcp\", not \"%s\"", proto);
        goto fail;
    }
    if (strcmp(flushed, "none") == 0) {
        r->flushed = FLUSHED_NONE;
    } else if (strcmp(flushed, "gauges") == 0) {
        r->flushed = FLUSHED_GAUGES;
    } else if (strcmp(flushed, "all") == 0) {
        r->flushed = FLUSHED_ALL;
    } else {
        snprintf(err, errlen, "setting 'flushed' must be \"none\", \"gauges\" or \"all\", not \"%s\"",
                 flushed);
        goto fail;
    }
    shard_method method;
    if (strcmp(hashing, "ketama") == 0) {
        method = SHARD_KETAMA;
    } else if (strcmp(hashing, "jump") == 0) {
        method = SHARD_JUMP;
    } else if (strcmp(hashing, "statsd") == 0) {
        method = SHARD_STATSD;
    } else {
        snprintf(err, errlen, "setting 'hashing' must be \"ketama\", \"statsd\" or \"jump\", not \"%s\"",
                 hashing);
        goto fail;
    }
    if (strcmp(on_down, "queue") == 0) {
        r->on_down = ONDOWN_QUEUE;
    } else if (strcmp(on_down, "rehash") == 0) {
        r->on_down = ONDOWN_REHASH;
    } else {
        snprintf(err, errlen, "setting 'onDown' must be \"queue\" or \"rehash\", not \"%s\"",
                 on_down);
        goto fail;
    }

    n = destinations_read(api, host, 8125, MAX_DESTINATIONS, "\"HOST:PORT\"", &names, err,
                          errlen);
    if (n < 0)
        goto fail;
    r->d = calloc((size_t)n, sizeof(*r->d));
    r->up = malloc((size_t)n);
    if (!r->d || !r->up) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    memset(r->up, 1, (size_t)n);
    if (n > 1) {
        r->ring = shard_new(method, (const char *const *)names, (size_t)n);
        if (!r->ring) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    int i;
    if (!state) {
        for (i = 0; i < n; i++) {
            char addr[300];
            int port;
            if (parse_destination(names[i], addr, sizeof(addr), &port, err, errlen) != 0)
                goto fail;
        }
        for (i = 0; i < n; i++)
            free(names[i]);
        free(names);
        repeater_free(r);
        return 0;
    }
    /* The copies serve only take_back_samples / take_back_lines, which
     * the host calls for a sink with a disk spool, and only a host of ABI
     * 1.5 / 1.6 or later: otherwise nothing is kept. */
    const char *spool_dir = NULL;
    if (api->setting_string(host, "spool.dir", NULL, &spool_dir) != 0 || !spool_dir)
        maxkept = 0;
    r->max_kept = (size_t)maxkept;
    r->keep_samples = r->max_kept && api->abi_minor >= 5;
    r->keep_lines = r->max_kept && api->abi_minor >= 6;
    uint64_t now = api->monotonic_ms(host);
    api->stat_set(host, SY_STAT_CONNECTED, 0);
    for (i = 0; i < n; i++) {
        rdest *d = &r->d[i];
        char addr[300];
        int port;
        d->r = r;
        d->api = &r->hp.api;
        hostproxy_part_init(&r->hp, &d->part);
        d->host = hostproxy_host(&d->part);
        d->index = (size_t)i;
        d->fd = -1;
        d->rng = backoff_seed(now, (uint64_t)(uintptr_t)d);
        snprintf(d->label, sizeof(d->label), "%s", names[i]);
        if (parse_destination(names[i], addr, sizeof(addr), &port, err, errlen) != 0)
            goto fail;
        r->nd = (size_t)i + 1; /* repeater_free frees what exists so far */
        if ((r->flushed != FLUSHED_NONE && !(d->kept = keeplog_new())) ||
            (r->keep_samples && !(d->ksamples = samplelog_new(r->max_kept))) ||
            (r->keep_lines && !(d->klines = linelog_new(r->max_kept)))) {
            snprintf(err, errlen, "out of memory");
            goto fail_dests;
        }
        if (r->proto == PROTO_TCP) {
            netq_config cfg = {
                .host = addr,
                .port = port,
                .max_bytes = (size_t)maxq,
                .reconnect_min_ms = rs.min_ms,
                .reconnect_max_ms = rs.max_ms,
                .connect_timeout_ms = rs.connect_timeout_ms,
            };
            d->tq = netq_new(&r->hp.api, d->host, &cfg, err, errlen);
            if (!d->tq)
                goto fail_dests;
        } else {
            int na = net_resolve(addr, port, SOCK_DGRAM, d->addrs, NET_MAX_ADDRS, NULL, 0, err,
                                 errlen);
            if (na < 0)
                goto fail_dests;
            d->naddrs = (size_t)na;
            d->timer = d->api->timer_new(d->host, ud_on_timer, d);
            if (!d->timer) {
                snprintf(err, errlen, "cannot create a timer");
                goto fail_dests;
            }
            ud_publish(d);
            d->api->timer_start(d->timer, 0); /* open from the loop, not from init */
        }
    }
    if (n > 1)
        api->log(host, SY_LOG_INFO, "spreading keys over %d destinations (%s hashing of the "
                 "routed name; onDown = \"%s\")", n, hashing, on_down);
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    *state = r;
    return 0;
fail_dests:
    if (n > 1) {
        /* name the destination: netq's and getaddrinfo's messages name
         * the host but not always the entry */
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s", err);
        snprintf(err, errlen, "destination '%s': %s", r->d[i].label, tmp);
    }
fail:
    for (int k = 0; k < n; k++)
        free(names[k]);
    free(names);
    repeater_free(r);
    return -1;
}

static int repeater_init(const sy_host_api *api, sy_host *host, void **state,
                         char *err, size_t errlen)
{
    return repeater_setup(api, host, state, err, errlen);
}

static int repeater_check(const sy_host_api *api, sy_host *host, char *err, size_t errlen)
{
    return repeater_setup(api, host, NULL, err, errlen);
}

/* What a name may not hold to stay one StatsD line with the same key:
 * a line break, the ':' that ends the name, or the "|#" that starts the
 * tags. */
static int name_ok(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\n' || c == '\r' || c == ':' || c == '\0' ||
            (c == '|' && i + 1 < len && s[i + 1] == '#'))
            return 0;
    }
    return 1;
}

static int text_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\n' || s[i] == '\r' || s[i] == '|' || s[i] == '\0')
            return 0;
    return 1;
}

/*
 * How much of a routed name to send when the sample has DogStatsD tags:
 * the key was built as NAME + ";tag" per tag (a tag's first ';' became
 * '_', its first ':' became '='), so the name loses as many ';'-parts from
 * its end as those tags produced.  Counting ';' rather than comparing text
 * keeps this right whatever keyNameSanitize did to the tags.  Returns the
 * length to keep, or 0 when the name does not end in that many parts
 * (then it goes unchanged and the tags are not sent).
 */
static size_t untagged_len(const sy_sample *s)
{
    size_t parts = 1, semis = 0;
    for (uint32_t i = 0; i < s->tags_len; i++) {
        if (s->tags[i] == ',') {
            parts += semis > 1 ? semis - 1 : 0;
            parts++;
            semis = 0;
        } else if (s->tags[i] == ';') {
            semis++;
        }
    }
    parts += semis > 1 ? semis - 1 : 0;
    for (size_t i = s->name_len; i > 0; i--) {
        if (s->name[i - 1] == ';' && --parts == 0)
            return i - 1;
    }
    return 0;
}

static const char *type_text(uint8_t t, size_t *len)
{
    switch (t) {
    case SY_SAMPLE_COUNTER: *len = 1; return "c";
    case SY_SAMPLE_GAUGE: *len = 1; return "g";
    case SY_SAMPLE_TIMER: *len = 2; return "ms";
    case SY_SAMPLE_SET: *len = 1; return "s";
    }
    return NULL;
}

static sy_status repeater_write_samples(void *state, const sy_sample_batch *b)
{
    repeater *r = state;
    char rate[32];
    size_t i, bad = 0, dropped = 0;
    const char *last_key = NULL;
    size_t last_len = 0;
    rdest *d = &r->d[0], *from = NULL;

    /* the longest line a sample can make, "NAME:TEXT|ms|@RATE|#TAGS\n",
     * with RATE at most 24 characters */
    size_t need = 0;
    for (i = 0; i < b->count; i++) {
        const sy_sample *s = &b->samples[i];
        need += (size_t)s->name_len + s->text_len + s->tags_len + 8 + (s->rate != 1.0 ? 26 : 0);
    }
    if (rp_must_wait(r, need))
        return SY_RETRY;
    rp_judge(r);
    rp_release_kept(r);
    for (i = 0; i < b->count; i++) {
        const sy_sample *s = &b->samples[i];
        size_t tlen;
        const char *type = type_text(s->type, &tlen);
        size_t nlen = s->name_len, glen = 0;
        if (s->tags_len) {
            nlen = untagged_len(s);
            if (nlen)
                glen = s->tags_len;
            else
                nlen = s->name_len;
        }
        if (!type || !name_ok(s->name, nlen) || !text_ok(s->text, s->text_len) ||
            memchr(s->tags, '\n', glen) || memchr(s->tags, '\r', glen)) {
            bad++;
            continue;
        }
        /* the key is the whole routed name, tags included; samples of one
         * key often come in a row: hash once */
        if (r->nd > 1) {
            if (last_key && last_len == s->name_len &&
                memcmp(last_key, s->name, last_len) == 0) {
                if (from)
                    from->rehashed_unlogged++;
            } else {
                d = rp_pick(r, s->name, s->name_len, &from);
                last_key = s->name;
                last_len = s->name_len;
            }
        }
        size_t rlen = 0;
        if (s->rate != 1.0)
            rlen = r->api->format_number(s->rate, rate);
        size_t len = nlen + 1 + s->text_len + 1 + tlen + (rlen ? 2 + rlen : 0) +
                     (glen ? 2 + glen : 0) + 1;
        char *p = rp_reserve(d, len);
        if (!p) {
            dropped++;
            d->drops_unlogged++;
            continue;
        }
        char *o = p;
        memcpy(o, s->name, nlen);
        o += nlen;
        *o++ = ':';
        memcpy(o, s->text, s->text_len);
        o += s->text_len;
        *o++ = '|';
        memcpy(o, type, tlen);
        o += tlen;
        if (rlen) {
            *o++ = '|';
            *o++ = '@';
            memcpy(o, rate, rlen);
            o += rlen;
        }
        if (glen) {
            *o++ = '|';
            *o++ = '#';
            memcpy(o, s->tags, glen);
            o += glen;
        }
        *o = '\n';
        rp_commit(d, len);
        /* numbered by its line's end: gone once the queue sent past it */
        if (d->ksamples && samplelog_add(d->ksamples, d->appended, s, 0) != 0) {
            r->unkept_samples++;
            r->unkept_unlogged++;
        }
    }
    rp_batch_done(r, dropped, bad);
    return SY_OK;
}

/*
 * What a DogStatsD line is hashed by: an event's title ("_e{5,4}:title|
 * text", the title's length as given), a service check's name ("_sc|name|
 * 0"), else the whole line.  So one event title or one check always goes
 * to the same destination, in order, and a downstream agent sees a check's
 * status changes as they happened.
 */
static const char *dd_key(const char *s, size_t len, size_t *klen)
{
    *klen = len;
    if (len > 4 && memcmp(s, "_sc|", 4) == 0) {
        const char *end = memchr(s + 4, '|', len - 4);
        *klen = end ? (size_t)(end - (s + 4)) : len - 4;
        return s + 4;
    }
    if (len > 3 && memcmp(s, "_e{", 3) == 0) {
        size_t i = 3, t = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && t < len)
            t = t * 10 + (size_t)(s[i++] - '0');
        const char *colon = memchr(s, ':', len);
        if (colon && colon > s + i && t <= len - (size_t)(colon + 1 - s)) {
            *klen = t;
            return colon + 1;
        }
    }
    return s;
}

/* ABI 1.3: DogStatsD events and service checks, forwarded verbatim, one
 * line each; a queue that is full drops the line (counted): the host
 * holds no copy of lines for a retry.  With a spool (ABI 1.6: the host
 * keeps the lines a plugin answers SY_RETRY to on disk), a batch that
 * must wait for a queue that is draining (lib/pace.h) answers SY_RETRY
 * instead, as batches of samples do. */
static sy_status repeater_write_lines(void *state, const char *const *lines, const uint32_t *lens,
                                     size_t n)
{
    repeater *r = state;
    size_t bad = 0, dropped = 0;
    if (r->keep_lines) {
        size_t need = 0;
        for (size_t i = 0; i < n; i++)
            need += (size_t)lens[i] + 1;
        if (rp_must_wait(r, need))
            return SY_RETRY;
    }
    rp_judge(r);
    rp_release_kept(r);
    for (size_t i = 0; i < n; i++) {
        const char *s = lines[i];
        size_t len = lens[i];
        /* a line break would split it; over UDP it must fit a datagram (a
         * line longer than maxDatagram goes alone, as for samples) */
        if (len == 0 || memchr(s, '\n', len) ||
            (r->proto == PROTO_UDP && len > UDP_MAX_PAYLOAD)) {
            bad++;
            continue;
        }
        rdest *from, *d = &r->d[0];
        if (r->nd > 1) {
            size_t klen;
            const char *key = dd_key(s, len, &klen);
            d = rp_pick(r, key, klen, &from);
        }
        char *p = rp_reserve(d, len + 1);
        if (!p) {
            dropped++;
            d->drops_unlogged++;
            continue;
        }
        memcpy(p, s, len);
        p[len] = '\n';
        rp_commit(d, len + 1);
        if (d->klines && linelog_add(d->klines, d->appended, s, (uint32_t)len) != 0) {
            r->unkept_lines++;
            r->unkept_unlogged++;
        }
    }
    rp_batch_done(r, dropped, bad);
    return SY_OK;
}

/* The position (in bytes appended) below which everything was sent: a
 * queue holds whole lines, the one being written included. */
static uint64_t rp_done(const rdest *d)
{
    return d->appended - (d->r->proto == PROTO_TCP ? netq_bytes(d->tq) : d->cq.bytes);
}

/* One flushed value as gauge lines: "NAME:V|g", or "NAME:0|g" and
 * "NAME:-V|g" for a negative V.  0, or -1 when the queue is full. */
static int append_gauge(rdest *d, const sy_metric *m, int64_t ts)
{
    char num[32];
    size_t vlen = d->r->api->format_number(m->value, num);
    int neg = num[0] == '-';
    /* both lines or neither: a lone "0" would set the gauge to 0 */
    if (neg) {
        size_t queued = d->r->proto == PROTO_TCP ? netq_bytes(d->tq) : d->cq.bytes;
        if (queued + 2 * (size_t)m->name_len + vlen + 9 > d->r->max_bytes) {
            d->full = 1;
            return -1;
        }
    }
    uint64_t start = d->appended;
    for (int pass = neg ? 0 : 1; pass < 2; pass++) {
        const char *v = pass == 0 ? "0" : num;
        size_t l = pass == 0 ? 1 : vlen;
        size_t ll = m->name_len + 1 + l + 3;
        char *p = rp_reserve(d, ll);
        if (!p)
            return -1;
        memcpy(p, m->name, m->name_len);
        p += m->name_len;
        *p++ = ':';
        memcpy(p, v, l);
        p += l;
        memcpy(p, "|g\n", 3);
        rp_commit(d, ll);
    }
    /* out of memory: the value is still sent, only not handed back */
    (void)keeplog_add(d->kept, ts, m, start, d->appended);
    return 0;
}

static sy_status repeater_write(void *state, const sy_metric_batch *b)
{
    repeater *r = state;
    size_t i, bad = 0, skipped = 0, taken = 0, dropped = 0;

    if (r->flushed == FLUSHED_NONE)
        return SY_SKIP;
    /* "NAME:V|g\n" with V at most 24 characters, and a negative gauge
     * also "NAME:0|g\n" before it */
    size_t need = 0;
    for (i = 0; i < b->count; i++) {
        const sy_metric *m = &b->metrics[i];
        if (r->flushed == FLUSHED_ALL || m->kind == SY_KIND_GAUGE)
            need += ((size_t)m->name_len + 28) * (signbit(m->value) ? 2 : 1);
    }
    if (rp_must_wait(r, need))
        return SY_RETRY;
    rp_judge(r);
    for (i = 0; i < r->nd; i++)
        keeplog_release(r->d[i].kept, rp_done(&r->d[i]));
    for (i = 0; i < b->count; i++) {
        const sy_metric *m = &b->metrics[i];
        if (r->flushed == FLUSHED_GAUGES && m->kind != SY_KIND_GAUGE) {
            skipped++;
            continue;
        }
        if (!name_ok(m->name, m->name_len) || !isfinite(m->value)) {
            bad++;
            continue;
        }
        rdest *from, *d = rp_pick(r, m->name, m->name_len, &from);
        if (append_gauge(d, m, b->timestamp) != 0) {
            dropped++;
            d->drops_unlogged++;
            continue;
        }
        taken++;
    }
    rp_batch_done(r, dropped, bad);
    return taken || dropped || bad ? SY_OK : SY_SKIP;
}

static sy_status repeater_flush(void *state, int final)
{
    repeater *r = state;
    for (size_t i = 0; i < r->nd; i++) {
        if (r->proto == PROTO_TCP)
            netq_kick(r->d[i].tq);
        else
            ud_send(&r->d[i]);
    }
    if (rp_unlogged(r))
        rp_log(r, final);
    return SY_OK;
}

static size_t repeater_pending(void *state)
{
    repeater *r = state;
    size_t n = 0;
    for (size_t i = 0; i < r->nd; i++)
        n += r->proto == PROTO_TCP ? netq_lines(r->d[i].tq) : r->d[i].lines;
    return n;
}

/*
 * take_back: the flushed values behind the queued gauge lines come back
 * from the keep log exactly (name, kind, value, flush time), raw samples
 * and DogStatsD lines from their copies (take_back_samples,
 * take_back_lines).  The first of the three calls walks every queue once
 * (rp_reclaim): a line whose value, sample or line is kept leaves the
 * queue, the others (kept nowhere: no spool, a full copy log, out of
 * memory) go back into it in order and are counted as dropped at close.
 * A line being written when the time ran out counts as not sent: the
 * receiver discards a cut line.
 */
typedef struct rest {
    keeplog *kept;
    keeplog_cursor cur;
    samplelog *ksamples;
    samplelog_cursor scur;
    linelog *klines;
    linelog_cursor lcur;
    uint64_t pos;
    char *buf;
    size_t len, cap;
    size_t left;        /* lines that go back into the queue */
    size_t lost;        /* lines that could not be kept (out of memory) */
} rest;

static void rest_line(void *ctx, const char *line, size_t len)
{
    rest *t = ctx;
    uint64_t start = t->pos;
    t->pos += len + 1;
    if (t->kept && keeplog_covers(t->kept, &t->cur, start, t->pos))
        return;
    if (t->ksamples && samplelog_holds(t->ksamples, &t->scur, t->pos))
        return;
    if (t->klines && linelog_holds(t->klines, &t->lcur, t->pos))
        return;
    t->left++;
    if (t->len + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 65536;
        while (cap < t->len + len + 1)
            cap *= 2;
        char *n = realloc(t->buf, cap);
        if (!n) {
            t->lost++;
            return;
        }
        t->buf = n;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, line, len);
    t->buf[t->len + len] = '\n';
    t->len += len + 1;
}

static void rp_reclaim(repeater *r)
{
    if (r->reclaimed)
        return;
    r->reclaimed = 1;
    rp_release_kept(r);
    size_t left = 0;
    for (size_t i = 0; i < r->nd; i++) {
        rdest *d = &r->d[i];
        if (!d->kept && !d->ksamples && !d->klines)
            continue; /* nothing can be handed back: the queue stays as it is */
        rest t = { .kept = d->kept, .ksamples = d->ksamples, .klines = d->klines,
                   .pos = rp_done(d) };
        if (r->proto == PROTO_TCP) {
            netq_take(d->tq, rest_line, &t);
        } else {
            for (chunkq_chunk *c = d->cq.head; c; c = c->next) {
                const char *p = c->data + c->start, *e = c->data + c->end;
                while (p < e) {
                    const char *nl = memchr(p, '\n', (size_t)(e - p));
                    const char *end = nl ? nl : e;
                    rest_line(&t, p, (size_t)(end - p));
                    p = nl ? nl + 1 : e;
                }
            }
            chunkq_clear(&d->cq);
            d->lines = 0;
        }
        /* what is not handed back goes back into the queue, in order */
        for (size_t off = 0; off < t.len;) {
            const char *nl = memchr(t.buf + off, '\n', t.len - off);
            size_t ll = (size_t)(nl - (t.buf + off)) + 1;
            char *p = r->proto == PROTO_TCP ? netq_reserve(d->tq, ll) : uq_reserve(d, ll);
            if (!p) {
                t.lost++;
            } else {
                memcpy(p, t.buf + off, ll);
                rp_commit(d, ll);
            }
            off += ll;
        }
        free(t.buf);
        if (t.lost)
            r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)t.lost);
        if (r->proto == PROTO_TCP)
            netq_kick(d->tq);
        else
            ud_publish(d);
        left += t.left;
    }
    if (left && (r->keep_samples || r->keep_lines))
        r->api->log(r->host, SY_LOG_WARN, "%zu queued lines cannot be handed back to the spool "
                    "(%llu raw samples and %llu DogStatsD lines were not kept: maxKeptBytes "
                    "%zu full); they are lost", left, (unsigned long long)r->unkept_samples,
                    (unsigned long long)r->unkept_lines, r->max_kept);
}

static size_t repeater_take_back(void *state, void (*keep)(void *ctx, const sy_metric_batch *b),
                                 void *ctx)
{
    repeater *r = state;
    size_t total = 0;
    rp_reclaim(r);
    for (size_t i = 0; i < r->nd; i++)
        if (r->d[i].kept)
            total += keeplog_take(r->d[i].kept, keep, ctx);
    return total;
}

static size_t repeater_take_back_samples(void *state,
                                         void (*keep)(void *ctx, const sy_sample_batch *b),
                                         void *ctx)
{
    repeater *r = state;
    size_t total = 0;
    rp_reclaim(r);
    for (size_t i = 0; i < r->nd; i++)
        if (r->d[i].ksamples)
            total += samplelog_take(r->d[i].ksamples, keep, ctx);
    return total;
}

static size_t repeater_take_back_lines(void *state,
                                       void (*keep)(void *ctx, const char *const *lines,
                                                    const uint32_t *lens, size_t n),
                                       void *ctx)
{
    repeater *r = state;
    size_t total = 0;
    rp_reclaim(r);
    for (size_t i = 0; i < r->nd; i++)
        if (r->d[i].klines)
            total += linelog_take(r->d[i].klines, keep, ctx);
    return total;
}

static void repeater_close(void *state)
{
    repeater *r = state;
    size_t left = repeater_pending(r);
    if (left)
        r->api->stat_add(r->host, SY_STAT_DROPPED, (int64_t)left);
    repeater_free(r);
}

SY_SINK_EXPORT = {
    SY_SINK_HEADER,
    .name = "repeater",
    .version = "1.4",
    .description = "forwards raw samples (and optionally flushed values) as StatsD lines "
                   "over UDP or TCP, to one destination or spread over several by "
                   "consistent hashing, with bounded queues and reconnects",
    .settings = repeater_settings,
    .init = repeater_init,
    .check = repeater_check,
    .write = repeater_write,
    .write_samples = repeater_write_samples,
    .flush = repeater_flush,
    .pending = repeater_pending,
    .close = repeater_close,
    .write_lines = repeater_write_lines,
    .take_back = repeater_take_back,
    .take_back_samples = repeater_take_back_samples,
    .take_back_lines = repeater_take_back_lines,
};
