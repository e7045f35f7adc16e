/*
 * traces.h - `switchyard traces`: the reader for the appstats-style traces
 * that the memcache_traces sink stores in memcached.
 *
 *   switchyard traces [--memcached HOST:PORT] [--prefix P] [--limit N]
 *       lists recent traces, newest first, from one multi-get of all 1000
 *       part keys, then totals per path and per span name;
 *   switchyard traces [--memcached HOST:PORT] [--prefix P] show START_MS
 *       prints one trace's spans, after checking that the full record in
 *       its slot still has that start time.
 *
 * The record formats are described in plugins/memcache_traces.c, the keys
 * and slots defined in plugins/lib/trace_format.h.  The command line and
 * the admin endpoint's /traces page (below) share the reading (mc.c: a
 * non-blocking socket, every wait bounded by poll; the page is made on a
 * worker thread of the admin, never on its event loop).  Only the name
 * lookup, for a HOST that is not an address, is not bounded.
 */
#ifndef SY_TRACES_H
#define SY_TRACES_H

#include <stddef.h>
#include <stdint.h>

#include "tools/traces/record.h"

/* argv[0] is "traces".  Exit status: 0 done, 1 the trace asked for is no
 * longer stored, 2 bad usage or memcached could not be read. */
int sy_traces_main(int argc, char **argv);

struct evbuffer;
struct evkeyvalq;

/*
 * The admin HTTP endpoint's /traces dashboard, the same listing as an HTML
 * page (inline CSS, no script, nothing loaded from elsewhere):
 *
 *   /traces              recent traces newest first (start, method, path,
 *                        status, duration, spans; each links to its
 *                        detail page), then totals per path and per span
 *                        name; ?limit=N rows (default 100, 0: all)
 *   /traces?show=START   one trace's spans as a timeline of bars, after
 *                        checking that its slot still holds that start
 *
 * The query is read leniently: empty pairs ("?a=b&") are skipped, unknown
 * keys ignored, the first of repeated keys counts.
 *
 * memcached: "HOST:PORT" from the config's traces.memcached (NULL: not
 * configured), prefix: traces.prefix (NULL: the sink's default).  uri is
 * the request's URI (path and query).  Writes the page into out and its
 * headers (Content-Type and the like) into headers, and returns the HTTP
 * status: 200; 400 a bad query; 404 not configured, or the trace is no
 * longer stored; 500 a bad prefix; 503 memcached could not be read.
 * Everything read from memcached is HTML-escaped, and each table is cut to
 * a bound of rows and bytes (200 rows per totals table, 1000 spans on a
 * timeline, 1 MiB of HTML per table), the page saying what was left out;
 * *cut (may be NULL) is set to 1 when something was.
 *
 * Blocking, bounded to 2 s per connect, send or read and 5 s in all:
 * call it off the admin loop (core/admin/admin.c runs it on a worker thread).
 * cancel_fd, when not -1, is polled with memcached's socket: once it is
 * readable the fetch gives up at once (a 503 page), so a stopping admin
 * need not wait out the timeout.  Uses no global state: several pages
 * may be made at once on different threads.
 */
int sy_traces_http(const char *memcached, const char *prefix, const char *uri, int cancel_fd,
                   struct evbuffer *out, struct evkeyvalq *headers, int *cut);

#endif
