/*
 * metrics.c - the admin's /metrics page: every counter of the listeners,
 * rings, sinks, spools, aggregator, routing, reloads, budgets, shadows,
 * taps and the admin itself, in the Prometheus text exposition format.
 * Apart from admin.c because it is long and only reads.
 */
#include "admin/admin_internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/status.h"
#include "admin/tap.h"
#include "admin/top.h"
#include "engine/agg.h"
#include "engine/budget.h"
#include "engine/engine.h"
#include "engine/shadow.h"
#include "output/output.h"
#include "output/sinkhost.h"
#include "util/log.h"

/* A Prometheus label value: backslash, quote and newline escaped. */
static void label(struct evbuffer *out, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"')
            evbuffer_add_printf(out, "\\%c", *p);
        else if (*p == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, p, 1);
    }
}

static void metric_head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct sink_metrics_ctx {
    struct evbuffer *out;
    int which;
};

static void sink_metric(void *ctx, const char *name, const char *plugin, const sy_sink_stats *st)
{
    struct sink_metrics_ctx *c = ctx;
    static const char *const names[] = { "switchyard_sink_queued", "switchyard_sink_queued_bytes",
                                         "switchyard_sink_sent_total", "switchyard_sink_dropped_total",
                                         "switchyard_sink_errors_total", "switchyard_sink_reconnects_total",
                                         "switchyard_sink_connected", "switchyard_sink_adjusted_total" };
    long long v[] = { st->queued, st->queued_bytes, st->sent, st->dropped + st->metrics_dropped_by_host,
                      st->errors + st->write_errors, st->reconnects, st->connected, st->adjusted };
    evbuffer_add_printf(c->out, "%s{sink=\"", names[c->which]);
    label(c->out, name);
    evbuffer_add_printf(c->out, "\",plugin=\"");
    label(c->out, plugin);
    evbuffer_add_printf(c->out, "\"} %lld\n", v[c->which]);
}

/* The disk spool of each sink that has one (spool.h). */
static void spool_metric(void *ctx, const char *name, const char *plugin, const sy_sink_stats *st)
{
    struct sink_metrics_ctx *c = ctx;
    static const char *const names[] = { "switchyard_spool_bytes", "switchyard_spool_records",
                                         "switchyard_spool_oldest_age_seconds",
                                         "switchyard_spool_spooled_total",
                                         "switchyard_spool_replayed_total",
                                         "switchyard_spool_dropped_total",
                                         "switchyard_spool_corrupt_total",
                                         "switchyard_spool_lines_spooled_total",
                                         "switchyard_spool_lines_replayed_total" };
    if (!st->spool)
        return;
    long long age = st->spool_oldest_ts ? (long long)time(NULL) - st->spool_oldest_ts : 0;
    long long v[] = { st->spool_bytes, st->spool_records, age < 0 ? 0 : age, st->spool_spooled,
                      st->spool_replayed, st->spool_dropped, st->spool_corrupt,
                      st->spool_lines_spooled, st->spool_lines_replayed };
    evbuffer_add_printf(c->out, "%s{sink=\"", names[c->which]);
    label(c->out, name);
    evbuffer_add_printf(c->out, "\",plugin=\"");
    label(c->out, plugin);
    evbuffer_add_printf(c->out, "\"} %lld\n", v[c->which]);
}

static void spool_count(void *ctx, const char *name, const char *plugin, const sy_sink_stats *st)
{
    (void)name, (void)plugin;
    *(size_t *)ctx += st->spool != 0;
}

/* /metrics in the Prometheus text exposition format (version 0.0.4). */
void sy_admin_http_metrics(struct evhttp_request *req, void *arg)
{
    sy_admin *a = arg;
    if (!sy_admin_http_method_ok(req))
        return;
    struct evbuffer *out = evbuffer_new();
    const sy_agg_stats *st = sy_engine_stats(a->d.engine);
    sy_listen_info *li = sy_engine_listen_info(a->d.engine);

    metric_head(out, "switchyard_uptime_seconds", "gauge", "Seconds since start.");
    evbuffer_add_printf(out, "switchyard_uptime_seconds %lld\n", (long long)(time(NULL) - a->start));

    static const struct { const char *name, *help; int off; } lstats[] = {
        { "switchyard_listener_received_total", "Datagrams or stream reads received.", 0 },
        { "switchyard_listener_bytes_total", "Bytes received.", 1 },
        { "switchyard_listener_dropped_total", "Datagrams dropped because the ring was full.", 2 },
        { "switchyard_listener_lines_too_long_total", "Over-long lines or datagrams skipped.", 3 },
        { "switchyard_listener_connections_open", "Open stream connections.", 4 },
        { "switchyard_listener_partial_discarded_total", "Partial lines lost when a stream connection was closed.", 5 },
        { "switchyard_listener_idle_closed_total", "Stream connections closed after idleTimeout.", 6 },
        { "switchyard_listener_evicted_total",
          "Idle stream connections closed, the idlest first, to serve a new one at maxConnections.", 7 },
    };
    for (size_t k = 0; k < sizeof lstats / sizeof *lstats; k++) {
        metric_head(out, lstats[k].name, lstats[k].off == 4 ? "gauge" : "counter", lstats[k].help);
        for (size_t i = 0; i < a->d.nlisteners; i++) {
            sy_listener_counters c;
            sy_listener_counters_read(&a->d.listeners[i], &c);
            uint64_t v[] = { c.received, c.bytes, c.dropped, c.lines_too_long, c.connections_open,
                             c.partial_discarded, c.idle_closed, c.evicted };
            evbuffer_add_printf(out, "%s{listener=\"", lstats[k].name);
            label(out, a->d.listeners[i].name);
            evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)v[lstats[k].off]);
        }
    }
    metric_head(out, "switchyard_listener_auth_rejected_total", "counter",
                "Lines refused for a missing or wrong token.");
    for (size_t i = 0; i < a->d.nlisteners; i++) {
        evbuffer_add_printf(out, "switchyard_listener_auth_rejected_total{listener=\"");
        label(out, a->d.listeners[i].name);
        evbuffer_add_printf(out, "\"} %llu\n", li ? (unsigned long long)atomic_load(&li[i].auth_rejected) : 0ull);
    }
    metric_head(out, "switchyard_ring_used_bytes", "gauge", "Bytes waiting in a reader's ring.");
    for (size_t i = 0; i < a->d.nrings; i++)
        evbuffer_add_printf(out, "switchyard_ring_used_bytes{ring=\"%zu\"} %zu\n", i, sy_ring_used(a->d.rings[i]));
    metric_head(out, "switchyard_ring_capacity_bytes", "gauge", "Size of a reader's ring.");
    for (size_t i = 0; i < a->d.nrings; i++)
        evbuffer_add_printf(out, "switchyard_ring_capacity_bytes{ring=\"%zu\"} %zu\n", i,
                            sy_ring_capacity(a->d.rings[i]));

    static const char *const sinkhelp[] = { "Metrics queued in a sink.", "Bytes queued in a sink.",
                                            "Metrics delivered by a sink.", "Metrics a sink gave up on.",
                                            "Write or protocol errors of a sink.", "Reconnection attempts of a sink.",
                                            "1 when a sink is connected.",
                                            ("Items a sink kept with a client's value corrected to a bound "
                                             "(memcache_traces: trace starts clamped).") };
    static const char *const sinknames[] = { "switchyard_sink_queued", "switchyard_sink_queued_bytes",
                                             "switchyard_sink_sent_total", "switchyard_sink_dropped_total",
                                             "switchyard_sink_errors_total", "switchyard_sink_reconnects_total",
                                             "switchyard_sink_connected", "switchyard_sink_adjusted_total" };
    for (int k = 0; k < 8; k++) {
        metric_head(out, sinknames[k], (k == 0 || k == 1 || k == 6) ? "gauge" : "counter", sinkhelp[k]);
        struct sink_metrics_ctx c = { out, k };
        sy_output_report_sinks(a->d.output, sink_metric, &c);
    }
    static const struct { const char *name, *type, *help; } spoolm[] = {
        { "switchyard_spool_bytes", "gauge", "Bytes of a sink's disk spool on disk." },
        { "switchyard_spool_records", "gauge", "Batches in a sink's disk spool not yet replayed." },
        { "switchyard_spool_oldest_age_seconds", "gauge",
          "Age of the oldest flush waiting in a sink's disk spool (0: none)." },
        { "switchyard_spool_spooled_total", "counter", "Values written to a sink's disk spool." },
        { "switchyard_spool_replayed_total", "counter", "Values replayed from a sink's disk spool." },
        { "switchyard_spool_dropped_total", "counter",
          "Values a full disk spool gave up (whenFull; also in switchyard_sink_dropped_total)." },
        { "switchyard_spool_corrupt_total", "counter",
          "Damaged stretches of a disk spool skipped on replay." },
        { "switchyard_spool_lines_spooled_total", "counter",
          "DogStatsD event and service check lines written to a sink's disk spool." },
        { "switchyard_spool_lines_replayed_total", "counter",
          "DogStatsD event and service check lines replayed from a sink's disk spool." },
    };
    /* only when a sink has a spool: a family without samples is not one */
    size_t nspools = 0;
    sy_output_report_sinks(a->d.output, spool_count, &nspools);
    for (int k = 0; k < (int)(sizeof spoolm / sizeof spoolm[0]) && nspools; k++) {
        metric_head(out, spoolm[k].name, spoolm[k].type, spoolm[k].help);
        struct sink_metrics_ctx c = { out, k };
        sy_output_report_sinks(a->d.output, spool_metric, &c);
    }

    static const struct { const char *name, *help; int gauge; } astats[] = {
        { "switchyard_packets_total", "Reads handed to the aggregator (statsd's packets_received).", 0 },
        { "switchyard_lines_total", "Lines parsed (statsd's metrics_received).", 0 },
        { "switchyard_samples_total", "Values aggregated or routed.", 0 },
        { "switchyard_bad_lines_total", "Malformed lines or values (statsd's bad_lines_seen).", 0 },
        { "switchyard_keys_too_long_total", "Lines refused for a key longer than 8191 bytes, tags included (also bad lines).", 0 },
        { "switchyard_sets_estimated_total", "Sets whose count was estimated: more than setMemberLimit members in an interval.", 0 },
        { "switchyard_keys", "Keys in the aggregation table.", 1 },
        { "switchyard_keys_rejected_total", "Samples refused by the maxKeys limit.", 0 },
        { "switchyard_route_dropped_total", "Samples a route dropped.", 0 },
        { "switchyard_route_sampled_out_total", "Samples a route's sample() left out.", 0 },
        { "switchyard_passthrough_total", "Raw samples handed to pass-through sinks.", 0 },
        { "switchyard_passthrough_dropped_total", "Raw samples lost before the pass-through sinks: "
          "more than a batch holds (1M samples, 64 MiB) arrived before the output took it.", 0 },
        { "switchyard_lua_errors_total", "Routing decisions that failed (default route used).", 0 },
        { "switchyard_route_predecided_total", "Decisions a reload made before it was applied, then used.", 0 },
        { "switchyard_route_predecide_misses_total", "Keys a reload had not decided beforehand (first seen while it was prepared), decided by Lua after it.", 0 },
        { "switchyard_dogstatsd_events_total", "DogStatsD events (_e{...}) received (forwarded to the dogstatsdEvents sinks, if any).", 0 },
        { "switchyard_dogstatsd_service_checks_total", "DogStatsD service checks (_sc|...) received (forwarded to the dogstatsdEvents sinks, if any).", 0 },
        { "switchyard_dogstatsd_forwarded_total", "DogStatsD events and service checks handed to the dogstatsdEvents sinks.", 0 },
        { "switchyard_dogstatsd_dropped_total", "DogStatsD events and service checks not forwarded: longer than 65536 bytes, or more than a raw batch holds arrived before the output took it.", 0 },
        { "switchyard_dogstatsd_container_ids_total", "DogStatsD container IDs (|c:ID) skipped.", 0 },
        { "switchyard_dogstatsd_timestamps_total", "DogStatsD timestamps (|T...) read: statsd aggregation puts the sample in the current interval; pass-through sinks that take timestamps get it.", 0 },
        { "switchyard_dogstatsd_timestamps_outside_total", "DogStatsD timestamps outside [now - dogstatsdTimestampMaxAge, now + dogstatsdTimestampMaxAhead]: ignored, the sample takes its arrival time.", 0 },
    };
    uint64_t av[] = { atomic_load(&st->packets), atomic_load(&st->lines), atomic_load(&st->samples),
                      atomic_load(&st->bad_lines), atomic_load(&st->keys_too_long),
                      atomic_load(&st->sets_estimated), atomic_load(&st->keys), atomic_load(&st->keys_rejected),
                      atomic_load(&st->routed_drops), atomic_load(&st->sampled_out),
                      atomic_load(&st->passed_through), atomic_load(&st->raw_dropped),
                      atomic_load(&st->route_errors),
                      atomic_load(&st->predecided), atomic_load(&st->predecide_misses),
                      atomic_load(&st->dd_events), atomic_load(&st->dd_service_checks),
                      atomic_load(&st->dd_forwarded), atomic_load(&st->dd_dropped),
                      atomic_load(&st->dd_containers), atomic_load(&st->dd_timestamps),
                      atomic_load(&st->dd_ts_outside) };
    for (size_t k = 0; k < sizeof astats / sizeof *astats; k++) {
        metric_head(out, astats[k].name, astats[k].gauge ? "gauge" : "counter", astats[k].help);
        evbuffer_add_printf(out, "%s %llu\n", astats[k].name, (unsigned long long)av[k]);
    }
    char *budgets = sy_budgets_prometheus(st->budgets);
    if (budgets) {
        evbuffer_add(out, budgets, strlen(budgets));
        free(budgets);
    }
    char *shadows = sy_shadow_prometheus();
    if (shadows) {
        evbuffer_add(out, shadows, strlen(shadows));
        free(shadows);
    }
    const sy_engine_pauses *ps = sy_engine_get_pauses(a->d.engine);
    static const char *const causes[] = { "admin", "flush", "reload" };
    metric_head(out, "switchyard_engine_pause_max_seconds", "gauge",
                "Longest time the engine left the rings undrained at once, by cause, since start.");
    for (int k = 0; k < SY_PAUSE_CAUSES; k++)
        evbuffer_add_printf(out, "switchyard_engine_pause_max_seconds{cause=\"%s\"} %.6f\n", causes[k],
                            (double)atomic_load(&ps->max_us[k]) / 1e6);
    metric_head(out, "switchyard_engine_pause_cpu_max_seconds", "gauge",
                "Most CPU time the engine spent in one such pause, by cause, since start.");
    for (int k = 0; k < SY_PAUSE_CAUSES; k++)
        evbuffer_add_printf(out, "switchyard_engine_pause_cpu_max_seconds{cause=\"%s\"} %.6f\n", causes[k],
                            (double)atomic_load(&ps->max_cpu_us[k]) / 1e6);
    metric_head(out, "switchyard_engine_pause_seconds_total", "counter",
                "Time the engine left the rings undrained, by cause.");
    for (int k = 0; k < SY_PAUSE_CAUSES; k++)
        evbuffer_add_printf(out, "switchyard_engine_pause_seconds_total{cause=\"%s\"} %.6f\n", causes[k],
                            (double)atomic_load(&ps->total_us[k]) / 1e6);
    metric_head(out, "switchyard_engine_batch_descheduled_max_seconds", "gauge",
                "Longest time a batch of ingest spent descheduled (its wall time less the engine's "
                "CPU time in it; one batch in 64 is timed): what the scheduler alone costs the "
                "engine, the yardstick for the pauses above; during=\"reload\" while a reload was "
                "being prepared.");
    evbuffer_add_printf(out, "switchyard_engine_batch_descheduled_max_seconds{during=\"none\"} %.6f\n",
                        (double)atomic_load(&ps->batch_off_max_us[0]) / 1e6);
    evbuffer_add_printf(out, "switchyard_engine_batch_descheduled_max_seconds{during=\"reload\"} %.6f\n",
                        (double)atomic_load(&ps->batch_off_max_us[1]) / 1e6);
    static const struct { const char *name, *help; } wstats[] = {
        { "switchyard_admin_walks_total", "Console questions that walk the key table (dumps, deletes, keys)." },
        { "switchyard_admin_walks_refused_total", "Such questions refused: too many in progress." },
        { "switchyard_admin_walk_slices_total", "Slices of their replies the engine wrote between batches." },
        { "switchyard_admin_walk_waits_total", "Times a walk waited for a console client to read its reply." },
        { "switchyard_admin_write_timeouts_total", "Console clients closed for reading nothing of a reply." },
    };
    uint64_t wv[] = { atomic_load(&ps->walks), atomic_load(&ps->walks_refused), atomic_load(&ps->slices),
                      atomic_load(&a->walk_waits), atomic_load(&a->write_timeouts) };
    for (size_t k = 0; k < sizeof wstats / sizeof *wstats; k++) {
        metric_head(out, wstats[k].name, "counter", wstats[k].help);
        evbuffer_add_printf(out, "%s %llu\n", wstats[k].name, (unsigned long long)wv[k]);
    }
    size_t pending = 0, nconn = 0;
    for (conn *c = a->conns; c; c = c->next, nconn++)
        pending += evbuffer_get_length(bufferevent_get_output(c->bev));
    metric_head(out, "switchyard_admin_walks_in_progress", "gauge", "Console questions about the keys being answered.");
    evbuffer_add_printf(out, "switchyard_admin_walks_in_progress %d\n", sy_engine_walks_in_progress(a->d.engine));
    metric_head(out, "switchyard_admin_console_connections", "gauge", "Open console connections.");
    evbuffer_add_printf(out, "switchyard_admin_console_connections %zu\n", nconn);
    metric_head(out, "switchyard_admin_console_pending_bytes", "gauge",
                "Console replies written but not yet taken by the clients' sockets.");
    evbuffer_add_printf(out, "switchyard_admin_console_pending_bytes %zu\n", pending);
    const sy_tap_stats *ts = sy_tap_get_stats();
    metric_head(out, "switchyard_taps_open", "gauge", "Live taps open (console `tap`, HTTP /tap).");
    evbuffer_add_printf(out, "switchyard_taps_open %d\n", atomic_load(&sy_tap_on));
    metric_head(out, "switchyard_taps_total", "counter", "Live taps opened.");
    evbuffer_add_printf(out, "switchyard_taps_total %llu\n", (unsigned long long)atomic_load(&ts->opened));
    metric_head(out, "switchyard_tap_refused_total", "counter",
                "Taps refused: too many open (busy), or a bad glob or N (bad).");
    evbuffer_add_printf(out, "switchyard_tap_refused_total{reason=\"busy\"} %llu\n"
                        "switchyard_tap_refused_total{reason=\"bad\"} %llu\n",
                        (unsigned long long)atomic_load(&ts->refused_busy),
                        (unsigned long long)atomic_load(&ts->refused_bad));
    metric_head(out, "switchyard_tap_lines_total", "counter", "Tapped lines written to clients.");
    evbuffer_add_printf(out, "switchyard_tap_lines_total %llu\n", (unsigned long long)atomic_load(&ts->lines));
    metric_head(out, "switchyard_tap_skipped_total", "counter",
                "Matching lines a tap skipped: over its rate, its queue full, its client slow, "
                "or its queue being read at that instant.");
    evbuffer_add_printf(out, "switchyard_tap_skipped_total{reason=\"rate\"} %llu\n"
                        "switchyard_tap_skipped_total{reason=\"queue\"} %llu\n"
                        "switchyard_tap_skipped_total{reason=\"slow_client\"} %llu\n"
                        "switchyard_tap_skipped_total{reason=\"busy\"} %llu\n",
                        (unsigned long long)atomic_load(&ts->skipped_rate),
                        (unsigned long long)atomic_load(&ts->skipped_queue),
                        (unsigned long long)atomic_load(&ts->skipped_slow),
                        (unsigned long long)atomic_load(&ts->skipped_busy));
    metric_head(out, "switchyard_top_refused_total", "counter",
                "top and /top questions refused for their arguments (N, by, depth).");
    evbuffer_add_printf(out, "switchyard_top_refused_total %llu\n", (unsigned long long)sy_top_refused());
    metric_head(out, "switchyard_lua_memory_bytes", "gauge", "Heap of the routing script.");
    evbuffer_add_printf(out, "switchyard_lua_memory_bytes %llu\n",
                        (unsigned long long)sy_engine_lua_memory(a->d.engine));
    metric_head(out, "switchyard_reload_prepare_seconds", "gauge",
                "The last reload: from its arrival to applied, while the old rules routed.");
    evbuffer_add_printf(out, "switchyard_reload_prepare_seconds %.3f\n",
                        (double)sy_engine_reload_ms(a->d.engine) / 1000.0);
    metric_head(out, "switchyard_reload_longest_slice_seconds", "gauge",
                "The last reload: the engine's longest pause for it between two batches (its start, a "
                "slice copying keys to the reload's thread, or the swap); the rules run on that "
                "thread.");
    evbuffer_add_printf(out, "switchyard_reload_longest_slice_seconds %.6f\n",
                        (double)sy_engine_reload_slice_us(a->d.engine) / 1e6);
    metric_head(out, "switchyard_reloads_total", "counter", "Config reloads by result.");
    evbuffer_add_printf(out, "switchyard_reloads_total{result=\"ok\"} %llu\n",
                        (unsigned long long)atomic_load(&sy_reload_status.reloads_ok));
    evbuffer_add_printf(out, "switchyard_reloads_total{result=\"failed\"} %llu\n",
                        (unsigned long long)atomic_load(&sy_reload_status.reloads_failed));
    metric_head(out, "switchyard_last_reload_success", "gauge",
                "1 if the last reload succeeded, 0 if it failed, -1 before any.");
    evbuffer_add_printf(out, "switchyard_last_reload_success %d\n", atomic_load(&sy_reload_status.last_reload_ok));
    metric_head(out, "switchyard_admin_console_lines_too_long_total", "counter",
                "Admin console lines over 8192 bytes refused (ERROR) and skipped.");
    evbuffer_add_printf(out, "switchyard_admin_console_lines_too_long_total %llu\n",
                        (unsigned long long)a->console_too_long);
    metric_head(out, "switchyard_admin_http_refused_total", "counter",
                "Admin HTTP requests refused, by status: 400 malformed, 404 no such path, 405 or "
                "501 not GET or HEAD, 413 a body, 414 a request line over 8192 bytes, 431 a "
                "header section over 8192 bytes.");
    for (int code = 400; code <= 501; code++) {
        int slot = sy_admin_refused_slot(code);
        if (slot >= 0 && (code == 400 || code == 404 || code == 405 || code == 413 || code == 414 ||
                          code == 431 || code == 501 ||
                          a->http_refused[slot]))
            evbuffer_add_printf(out, "switchyard_admin_http_refused_total{code=\"%d\"} %llu\n",
                                code, (unsigned long long)a->http_refused[slot]);
    }
    metric_head(out, "switchyard_traces_busy_total", "counter",
                "/traces requests refused with 503: the most pages were being made at once.");
    evbuffer_add_printf(out, "switchyard_traces_busy_total %llu\n", atomic_load(&a->traces_busy));
    metric_head(out, "switchyard_traces_cut_total", "counter",
                "/traces pages whose tables were cut to their bounds.");
    evbuffer_add_printf(out, "switchyard_traces_cut_total %llu\n", atomic_load(&a->traces_cut));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    sy_admin_http_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

